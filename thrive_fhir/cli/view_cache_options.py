"""``--cache`` and ``--cache-dir`` for the commands that flatten views over NDJSON (``thrive report``,
``thrive view run``): one definition of the options, of when a cache is used, and of what is said
when one was written (the cache itself: :mod:`thrive_fhir.reporting.cache`)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import click

from ..reporting.cache import ViewCache


def cache_options(command: Callable) -> Callable:
    """Add ``--cache`` (as ``use_cache``) and ``--cache-dir`` (as ``cache_dir``) to ``command``."""
    command = click.option(
        "--cache-dir",
        type=click.Path(path_type=Path, file_okay=False),
        default=None,
        help="Like --cache, in this folder.",
    )(command)
    return click.option(
        "--cache",
        "use_cache",
        is_flag=True,
        help="Keep the flattened views as Parquet in ~/.cache/thrive-fhir/views ($XDG_CACHE_HOME) so later "
        "runs over the same, unchanged NDJSON skip parsing it (row-level data: a private folder).",
    )(command)


def view_cache_for(
    use_cache: bool, cache_dir: Path | None, engine: str, source: str, download_dir: Path | None = None
) -> ViewCache | None:
    """The cache asked for, or None: only with ``--cache``/``--cache-dir``, only on DuckDB, and not
    for a server's download that is removed after the run (its files are gone, so would be its key)."""
    if not (use_cache or cache_dir) or engine != "duckdb":
        return None
    if source.startswith(("http://", "https://")) and download_dir is None:
        return None
    return ViewCache(cache_dir)


def say_if_built(cache: ViewCache | None, progress: Callable[[str], object]) -> None:
    """One line when this run wrote cache entries, so the user knows where row-level data now is."""
    if cache is not None and any(event == "built" for event, _ in cache.events):
        progress(f"flattened views cached in {cache.folder} (later runs over the same files read them)")
