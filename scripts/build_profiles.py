#!/usr/bin/env python3
"""Compile the FSH in ``profiles/`` with SUSHI and write the committed JSON.

Writes (deterministic: SUSHI's key order, 2-space indent, UTF-8, trailing newline):
  profiles/generated/StructureDefinition-<id>.json   profiles, with snapshots
  terminology/{CodeSystem,ValueSet,ConceptMap}-<id>.json
  terminology/expansions/ValueSet-<id>.json           our ValueSets with an ``expansion`` computed by
                                                      thrive_fhir.terminology (what the validator reads)
  profiles/examples/<Type>-<id>.json                  the valid example instances

``--check`` builds into a temporary folder and exits 1, listing every file that differs from the
committed one (or is missing, or is stale): the CI drift check, so nobody edits generated files by
hand. Needs Node's SUSHI from package-lock.json (node_modules/.bin/sushi) and the R4 core package in
the FHIR package cache (scripts/setup.sh). Runs offline; SUSHI's warnings about the automatically
added packages hl7.fhir.uv.tools.r4, hl7.terminology.r4 and hl7.fhir.uv.extensions.r4 are expected
offline and not shown.
"""

from __future__ import annotations

import argparse
import json
import re
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from thrive_fhir.canonical import BASE  # noqa: E402
from thrive_fhir.terminology.expansion import expanded_valueset  # noqa: E402
from thrive_fhir.terminology.loader import Terminology  # noqa: E402

PROFILES = ROOT / "profiles"
SUSHI = ROOT / "node_modules" / ".bin" / "sushi"
TERMINOLOGY_TYPES = ("CodeSystem", "ValueSet", "ConceptMap")

#: Output folders and the file patterns this script owns in them (stale matches are removed).
MANAGED = {
    "profiles/generated": ("StructureDefinition-*.json",),
    "terminology": tuple(f"{t}-*.json" for t in TERMINOLOGY_TYPES),
    "terminology/expansions": ("ValueSet-*.json",),
    "profiles/examples": ("*.json",),
}

_EXPECTED_OFFLINE = re.compile(
    r"Failed to load automatically-provided (hl7\.fhir\.uv\.tools|hl7\.terminology|hl7\.fhir\.uv\.extensions)"
)


class BuildFailed(RuntimeError):
    pass


def dump(resource: dict) -> bytes:
    """The one serialisation of committed JSON."""
    return (json.dumps(resource, indent=2, ensure_ascii=False) + "\n").encode("utf-8")


def run_sushi(out: Path) -> tuple[list[dict], list[str]]:
    """Run SUSHI into ``out``; return (resources, unexpected warning lines). Raise on errors."""
    if not SUSHI.exists():
        raise BuildFailed(f"SUSHI not found at {SUSHI}: run scripts/setup.sh (npm ci)")
    proc = subprocess.run(
        [str(SUSHI), "build", str(PROFILES), "--out", str(out), "--snapshot"],
        capture_output=True,
        text=True,
        cwd=ROOT,
    )
    log = proc.stdout + proc.stderr
    errors = re.search(r"(\d+) Errors?", log)
    if proc.returncode != 0 or (errors and int(errors.group(1)) > 0):
        lines = [ln for ln in log.splitlines() if ln.startswith(("error", "  File:", "  Line:"))]
        raise BuildFailed("SUSHI failed:\n" + "\n".join(lines or log.splitlines()[-30:]))
    warnings = []
    lines = log.splitlines()
    for i, line in enumerate(lines):
        if line.startswith("warn") and not _EXPECTED_OFFLINE.search(line):
            detail = [ln for ln in lines[i + 1 : i + 3] if ln.startswith("  ")]
            warnings.append(" ".join([line, *(d.strip() for d in detail)]))
    resources = [
        json.loads(p.read_text(encoding="utf-8")) for p in sorted((out / "fsh-generated" / "resources").glob("*.json"))
    ]
    return resources, warnings


def render(resources: list[dict]) -> dict[str, bytes]:
    """Map of repo-relative path -> file bytes for everything the build produces."""
    files: dict[str, bytes] = {}
    for res in resources:
        kind, rid = res["resourceType"], res["id"]
        if kind == "StructureDefinition":
            rel = f"profiles/generated/StructureDefinition-{rid}.json"
        elif kind in TERMINOLOGY_TYPES and str(res.get("url", "")).startswith(BASE + "/"):
            rel = f"terminology/{kind}-{rid}.json"
        else:
            rel = f"profiles/examples/{kind}-{rid}.json"
        if rel in files:
            raise BuildFailed(f"two resources would be written to {rel}")
        files[rel] = dump(res)
    term = Terminology(r for r in resources if r["resourceType"] in TERMINOLOGY_TYPES)
    for url, vs in sorted(term.valuesets.items()):
        if url.startswith(BASE + "/"):
            files[f"terminology/expansions/ValueSet-{vs['id']}.json"] = dump(expanded_valueset(term, url))
    return files


def committed() -> dict[str, bytes]:
    found: dict[str, bytes] = {}
    for folder, patterns in MANAGED.items():
        for pattern in patterns:
            for path in (ROOT / folder).glob(pattern):
                found[path.relative_to(ROOT).as_posix()] = path.read_bytes()
    return found


def build() -> tuple[dict[str, bytes], list[str]]:
    with tempfile.TemporaryDirectory(prefix="thrive-sushi-") as tmp:
        resources, warnings = run_sushi(Path(tmp))
    return render(resources), warnings


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--check", action="store_true", help="do not write; exit 1 listing files that differ from the committed ones"
    )
    args = parser.parse_args(argv)
    try:
        files, warnings = build()
    except BuildFailed as exc:
        print(exc, file=sys.stderr)
        return 2
    for w in warnings:
        print(f"SUSHI {w}", file=sys.stderr)
    old = committed()
    changed = sorted(p for p in files if old.get(p) != files[p])
    stale = sorted(p for p in old if p not in files)
    if args.check:
        if changed or stale:
            print("Generated FHIR JSON differs from the committed files; run scripts/build_profiles.py:")
            for p in changed:
                print(f"  {'changed' if p in old else 'missing'}: {p}")
            for p in stale:
                print(f"  stale:   {p}")
            return 1
        print(f"OK: {len(files)} generated files match the committed ones")
        return 0
    for p in changed:
        target = ROOT / p
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(files[p])
    for p in stale:
        (ROOT / p).unlink()
    print(f"wrote {len(changed)} file(s), removed {len(stale)} stale, {len(files)} generated in all")
    return 0


if __name__ == "__main__":
    sys.exit(main())
