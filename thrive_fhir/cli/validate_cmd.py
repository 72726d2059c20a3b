"""``thrive validate PATH...``: validate FHIR JSON files, Bundles and NDJSON against the profiles.

One line per problem (``file[:line]: Type/id: path: message``), a summary line, and an exit
status scripts can use: 0 all valid, 1 anything invalid or unreadable, 2 usage error, 3 the
validator itself failed on some resource (a defect of ours, reported as an ``internal-error`` line
for that resource; the run goes on with the next one). 3 wins over 1: "invalid" must mean the
resource was checked and found wrong. NDJSON is
streamed line by line (a 1 GB export is never held in memory); cross-resource rules still run
across the whole file, on slim projections of the few resources they need.

Found in a directory, a ``.json`` file whose top-level object has no ``resourceType`` (such as the
``ground_truth.json`` that ``thrive synth`` writes next to its NDJSON) is skipped with one
``skipped:`` line on stderr; a file named on the command line is always validated.
"""

from __future__ import annotations

import json
import logging
import sys
from pathlib import Path

import click

JSON_SUFFIXES = {".json"}
EXIT_INTERNAL = 3
INTERNAL_RULE = "internal-error"  # == thrive_fhir.validation.INTERNAL_RULE (not imported: keeps --help fast)
NDJSON_SUFFIXES = {".ndjson", ".jsonl"}


def _collect(paths: tuple[str, ...]) -> list[tuple[Path, bool]]:
    """``(file, found_in_a_directory)`` for every file to validate, in order."""
    files: list[tuple[Path, bool]] = []
    for raw in paths:
        p = Path(raw)
        if not p.exists():
            raise click.UsageError(f"path does not exist: {raw}")
        if p.is_dir():
            found = sorted(
                f for f in p.rglob("*") if f.is_file() and f.suffix.lower() in JSON_SUFFIXES | NDJSON_SUFFIXES
            )
            files.extend((f, True) for f in found)
        else:
            files.append((p, False))
    return files


class _Report:
    def __init__(self, fmt: str, out):
        self.fmt = fmt
        self.out = out
        self.resources = 0
        self.invalid = 0
        self.errors = 0
        self.warnings = 0
        self.files = 0
        self.internal = 0  # resources the validator failed on (exit 3)

    def emit(self, where: str, line: int | None, key: str, issues: list[tuple]):
        from thrive_fhir.validation import is_internal

        bad = any(i[0] in ("error", "fatal") for i in issues)
        self.internal += any(is_internal(i) for i in issues)
        self.resources += 1
        self.invalid += bad
        loc = f"{where}:{line}" if line is not None else where
        for sev, _code, expr, text in issues:
            if sev in ("error", "fatal"):
                self.errors += 1
            elif sev == "warning":
                self.warnings += 1
            else:
                continue
            if self.fmt == "text":
                label = "" if sev in ("error", "fatal") else f"{sev}: "
                self.out.write(f"{loc}: {key}: {expr or '-'}: {label}{text}\n")
        if self.fmt == "json":
            from thrive_fhir.validation.outcome import outcome

            record = {"file": where, "line": line, "resource": key, "outcome": outcome(issues)}
            self.out.write(json.dumps(record, ensure_ascii=False) + "\n")

    def extra(self, where: str, line: int | None, key: str, issue: tuple, was_valid: bool):
        """A cross-resource issue found after the resource was first reported."""
        sev, _code, expr, text = issue
        if sev in ("error", "fatal"):
            self.errors += 1
            if was_valid:
                self.invalid += 1
        loc = f"{where}:{line}" if line is not None else where
        if self.fmt == "text":
            self.out.write(f"{loc}: {key}: {expr or '-'}: {text}\n")
        else:
            from thrive_fhir.validation.outcome import outcome

            self.out.write(
                json.dumps(
                    {"file": where, "line": line, "resource": key, "outcome": outcome([issue])}, ensure_ascii=False
                )
                + "\n"
            )


class _Echo:
    """File-like wrapper over click.echo (handles encodings and CliRunner capture)."""

    def write(self, text: str) -> None:
        click.echo(text, nl=False)


def _key(res) -> str:
    if isinstance(res, dict):
        rt = res.get("resourceType") if isinstance(res.get("resourceType"), str) else "?"
        rid = res.get("id") if isinstance(res.get("id"), str) else "-"
        return f"{rt}/{rid}"
    return "-"


def _validate_json_file(v, path: Path, report: _Report, max_bytes: int, skip_non_fhir: bool = False) -> bool:
    """Validate one JSON document; False when it was skipped as not a FHIR resource (directory mode)."""
    from thrive_fhir.validation.raw import parse_json_bytes

    size = path.stat().st_size
    if size > max_bytes:
        report.emit(
            str(path),
            None,
            "-",
            [
                (
                    "fatal",
                    "too-long",
                    None,
                    f"too-long: file is {size:,} bytes; the limit is {max_bytes:,} (--max-bytes)",
                )
            ],
        )
        return True
    try:
        data = path.read_bytes()
    except OSError as exc:
        report.emit(str(path), None, "-", [("fatal", "exception", None, f"io: cannot read file: {exc.strerror}")])
        return True
    res, issue = parse_json_bytes(data, max_bytes)
    if issue is not None:
        report.emit(str(path), None, "-", [issue])
        return True
    if skip_non_fhir and isinstance(res, dict) and "resourceType" not in res:
        click.echo(f"skipped: {path}: not a FHIR resource", err=True)
        return False
    report.emit(str(path), None, _key(res), v.issues(res))
    return True


def _validate_ndjson_file(v, path: Path, report: _Report, max_bytes: int):
    from thrive_fhir.validation import app_rules
    from thrive_fhir.validation.raw import parse_json_bytes

    slims: list[tuple] = []  # (slim resource, prefix, fullUrl)
    where: list[tuple[int, str, bool]] = []
    try:
        fh = open(path, "rb")
    except OSError as exc:
        report.emit(str(path), None, "-", [("fatal", "exception", None, f"io: cannot read file: {exc.strerror}")])
        return
    with fh:
        for lineno, line in enumerate(fh, start=1):
            if not line.strip():
                continue
            res, issue = parse_json_bytes(line.rstrip(b"\r\n"), max_bytes)
            if issue is not None:
                report.emit(str(path), lineno, "-", [issue])
                continue
            issues = v.issues(res)
            report.emit(str(path), lineno, _key(res), issues)
            s = app_rules.slim(res)
            if s is not None:
                slims.append((s, res.get("resourceType"), None))
                where.append((lineno, _key(res), not any(i[0] in ("error", "fatal") for i in issues)))
    for idx, issue in app_rules.cross(slims):
        lineno, key, was_valid = where[idx]
        report.extra(str(path), lineno, key, issue, was_valid)  # noqa: S610 - our Report.extra, not Django's QuerySet.extra
        where[idx] = (lineno, key, False)


@click.command(name="validate")
@click.argument("paths", nargs=-1, type=click.Path())
@click.option(
    "--format",
    "fmt",
    type=click.Choice(["text", "json"]),
    default="text",
    show_default=True,
    help="text: one line per problem; json: one OperationOutcome record per resource (NDJSON).",
)
@click.option(
    "--max-bytes",
    type=click.IntRange(min=1),
    default=None,
    help="Largest JSON document (or NDJSON line) accepted, in bytes [default: 10 MB].",
)
def validate(paths: tuple[str, ...], fmt: str, max_bytes: int | None) -> None:
    """Validate FHIR R4 JSON resources, Bundles (.json) and NDJSON (.ndjson, one resource per line)
    against R4 and the THRIVE profiles. Directories are searched recursively; there, .json files
    that are not FHIR resources (no resourceType) are skipped with a note on stderr.

    Prints one line per problem as FILE[:LINE]: TYPE/ID: PATH: MESSAGE and a summary.

    \b
    Exit status:
      0  all valid
      1  something invalid or unreadable
      2  usage error
      3  the validator failed on some resource (internal-error lines; a defect to
         report; the other resources were still checked), or could not start
         (the HL7 R4 core package is missing)
    """
    if not paths:
        raise click.UsageError("give at least one file or directory to validate")
    files = _collect(paths)
    from thrive_fhir.r4core import R4CoreMissing
    from thrive_fhir.validation import DEFAULT_MAX_BYTES, Validator

    limit = max_bytes or DEFAULT_MAX_BYTES
    try:
        v = Validator.default()
    except R4CoreMissing as exc:
        click.echo(f"error: {exc}", err=True)
        sys.exit(EXIT_INTERNAL)
    report = _Report(fmt, _Echo())
    for f, in_directory in files:
        try:
            if f.suffix.lower() in NDJSON_SUFFIXES:
                _validate_ndjson_file(v, f, report, limit)
            elif not _validate_json_file(v, f, report, limit, skip_non_fhir=in_directory):
                continue
        except Exception as exc:
            logging.getLogger(__name__).debug("validate failed on %s", f, exc_info=True)
            report.emit(
                str(f),
                None,
                "-",
                [
                    (
                        "fatal",
                        "exception",
                        None,
                        f"{INTERNAL_RULE}: the validator failed on this file "
                        f"({type(exc).__name__}); the rest of it was not checked",
                    )
                ],
            )
        report.files += 1
    summary = (
        f"{report.resources} resource{'s' if report.resources != 1 else ''} in {report.files} "
        f"file{'s' if report.files != 1 else ''}: {report.resources - report.invalid} valid, "
        f"{report.invalid} invalid ({report.errors} error{'s' if report.errors != 1 else ''}, "
        f"{report.warnings} warning{'s' if report.warnings != 1 else ''})"
    )
    if report.internal:
        summary += f"; the validator failed on {report.internal} (exit 3)"
    click.echo(summary, err=(fmt == "json"))
    sys.exit(EXIT_INTERNAL if report.internal else 1 if report.invalid else 0)
