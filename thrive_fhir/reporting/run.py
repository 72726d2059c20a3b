"""The glue the CLI calls: open a source (folder or server), run views or reports, write files."""

from __future__ import annotations

import contextlib
import shutil
import tempfile
from pathlib import Path
from typing import Callable, Iterator

from .compiler import ViewError
from .engine import DuckEngine, check_output, write_output
from .sources import NdjsonFolder, SourceError


class RunError(ValueError):
    """Anything the user must fix (source, output, options): one readable sentence."""


@contextlib.contextmanager
def open_source(source: str, *, types: list[str] | None = None, since: str | None = None,
                auth: dict | None = None, progress: Callable[[str], None] | None = None,
                keep: Path | None = None) -> Iterator[NdjsonFolder]:
    """A folder of NDJSON for ``source``: the folder itself, or a fresh download from a server.

    From a server, Bulk Data ``$export`` is tried first (with ``types`` as ``_type`` and ``since``
    as ``_since``); a server without ``$export`` is read by paging searches. The download goes to
    ``keep`` if given, otherwise to a temporary folder removed afterwards.
    """
    if source.startswith(("http://", "https://")):
        from .bulk_client import BulkError, download

        folder = Path(keep) if keep else Path(tempfile.mkdtemp(prefix="thrive-report-"))
        try:
            try:
                download(source, folder, types=types, since=since, auth=auth, progress=progress)
                yield NdjsonFolder.open_or_empty(folder)
            except (BulkError, SourceError) as exc:
                raise RunError(str(exc)) from None
        finally:
            if keep is None:
                shutil.rmtree(folder, ignore_errors=True)
        return
    try:
        folder = NdjsonFolder.open(source)
    except SourceError as exc:
        raise RunError(str(exc)) from None
    yield folder


def run_view_to_file(view: dict, folder: NdjsonFolder, out: Path, *, engine: str = "duckdb",
                     master: str | None = None) -> int:
    """Run one view and write its rows; return the row count."""
    try:
        check_output(out)
    except SourceError as exc:
        raise RunError(str(exc)) from None
    if engine == "spark":
        from .spark import SparkEngine

        with SparkEngine(folder, master=master) as spark:
            return spark.write_view(view, out)
    eng = DuckEngine(folder)
    try:
        name = eng.materialise(view)
        write_output(eng, f'SELECT * FROM "{name}"', out, tables=[name])
        return eng.con.execute(f'SELECT count(*) FROM "{name}"').fetchone()[0]
    except SourceError as exc:
        raise RunError(str(exc)) from None
    except ViewError:
        raise


def engine_for(folder: NdjsonFolder) -> DuckEngine:
    return DuckEngine(folder)
