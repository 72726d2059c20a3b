"""A columnar cache of flattened views: the NDJSON is parsed once, later runs read Parquet.

Parsing the JSON lines is most of a report's cost (DuckDB's ``read_json`` over 3.9 GB of
Observations: ~15 CPU-s before a single view column is computed). A report run over the same
export again (another report, another period, ``--by``) needs the same flattened rows, so
:class:`ViewCache` keeps the rows of each view query as a Parquet file, and a later run that asks
for the same query over the same, unchanged files reads that file instead (a few flat columns:
well under a second for 4M rows).

What is cached is the *result of one SQL query* (a view, or the shared scan of several views, see
:meth:`.engine.DuckEngine.materialise_many`), keyed by a hash of that query's text, the DuckDB
version, and a fingerprint of every input file (resolved path, device, inode, size, mtime and
ctime in nanoseconds, and a hash of its first and last 64 KiB). So:

- a different view, column set or compiler output is a different query: a different entry, never
  a wrong one;
- an input file changed, replaced, added or removed changes the key: the run parses the NDJSON
  again (never stale rows), and storing the new entry removes the entries of the old versions of
  those files;
- a file that changes *while* it is read is not cached (fingerprints are taken before and after).

Entries are written to a temporary name and renamed, so a crash or a concurrent run never leaves a
half-written file under a valid name. The cache holds row-level health data (references, dates,
scores): its folder is created private (mode 0700, files 0600), outside the source folder; the
default is ``$XDG_CACHE_HOME/thrive-fhir/views`` (``~/.cache/thrive-fhir/views``).
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import time
from pathlib import Path

#: Bump when the layout of an entry changes (old entries are then never read).
FORMAT = 1
#: The end of a run's hold on an entry (:meth:`ViewCache.hold`).
_HELD = ".held.parquet"
_SAMPLE = 64 * 1024


def default_cache_dir() -> Path:
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(base) / "thrive-fhir" / "views"


def fingerprint(path: Path) -> list:
    """What identifies one version of a file without reading all of it."""
    st = os.stat(path)
    h = hashlib.blake2b(digest_size=16)
    with open(path, "rb") as f:
        h.update(f.read(_SAMPLE))
        if st.st_size > _SAMPLE:
            f.seek(max(_SAMPLE, st.st_size - _SAMPLE))
            h.update(f.read(_SAMPLE))
    return [str(Path(path).resolve()), st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns, st.st_ctime_ns, h.hexdigest()]


class ViewCache:
    """Parquet files of query results in ``folder``, keyed by query and input files."""

    def __init__(self, folder: str | Path | None = None):
        self.folder = Path(folder) if folder is not None else default_cache_dir()
        #: What the last :meth:`path_for` did, per entry: "hit", "built" or "not kept" (for messages).
        self.events: list[tuple[str, Path]] = []

    def _key(self, sql: str, prints: list[list]) -> str:
        import duckdb

        text = json.dumps([FORMAT, duckdb.__version__, sql, prints])
        return hashlib.sha256(text.encode()).hexdigest()[:40]

    def path_for(self, con, sql: str, files: list[Path]) -> tuple[Path, bool]:
        """A Parquet file holding the rows of ``sql`` (which reads ``files``): the cached one, or
        one written now. The flag says whether the file may be removed after this run (it was
        written while an input changed, so it is not kept under any key)."""
        before = [fingerprint(p) for p in files]
        key = self._key(sql, before)
        target = self.folder / f"{key}.parquet"
        if target.is_file():
            self.events.append(("hit", target))
            return target, False
        self.folder.mkdir(parents=True, exist_ok=True, mode=0o700)
        tmp = self.folder / f".{key}.{os.getpid()}.{time.monotonic_ns()}.tmp"
        tmp.touch(mode=0o600)
        try:
            quoted = str(tmp).replace("'", "''")
            con.execute(f"COPY ({sql}) TO '{quoted}' (FORMAT PARQUET)")
            if [fingerprint(p) for p in files] != before:
                self.events.append(("not kept", tmp))
                return tmp, True
            os.chmod(tmp, 0o600)
            os.replace(tmp, target)
        except BaseException:
            with contextlib.suppress(OSError):
                tmp.unlink()
            raise
        manifest = {"format": FORMAT, "files": before, "created": time.time()}
        (self.folder / f"{key}.json").write_text(json.dumps(manifest))
        os.chmod(self.folder / f"{key}.json", 0o600)
        self._evict_stale(key, before)
        self._remove_orphan_holds()
        self.events.append(("built", target))
        return target, False

    def hold(self, entry: Path) -> Path:
        """A name for ``entry`` that stays readable for this run: a hard link beside it, which
        another run evicting the entry (its input files changed, :meth:`_evict_stale`) leaves in
        place. Before, such a run removed the file under this run's views and its next report
        query failed. :meth:`release` it when done; a run that dies leaves its links to the next
        build's clean-up (:meth:`_remove_orphan_holds`). On a filesystem without hard links, the
        entry itself. Raises FileNotFoundError when the entry is already gone."""
        link = entry.with_name(f".{entry.stem}.{os.getpid()}.{time.monotonic_ns()}{_HELD}")
        try:
            os.link(entry, link)
        except FileNotFoundError:
            raise
        except OSError:  # no hard links here (some network and FAT filesystems)
            return entry
        return link

    def release(self, held: Path) -> None:
        """Drop a :meth:`hold` (the entry itself stays)."""
        if held.name.endswith(_HELD):
            with contextlib.suppress(OSError):
                held.unlink()

    def _remove_orphan_holds(self) -> None:
        """Remove the holds of runs that are no longer running (a crash, a kill)."""
        if os.name != "posix":  # os.kill(pid, 0) is a probe only on POSIX (on Windows it kills)
            return
        for link in self.folder.glob(f".*{_HELD}"):
            try:
                pid = int(link.name.split(".")[2])
            except (IndexError, ValueError):
                continue
            if pid == os.getpid():
                continue
            try:
                os.kill(pid, 0)
            except ProcessLookupError:
                with contextlib.suppress(OSError):
                    link.unlink()
            except OSError:  # running, as another user
                continue

    def _evict_stale(self, keep: str, prints: list[list]) -> None:
        """Remove the entries made from earlier versions of these files (and those whose input
        files are gone), so a folder that is re-exported does not grow the cache run after run."""
        ours = {p[0]: p for p in prints}
        for manifest in self.folder.glob("*.json"):
            key = manifest.stem
            if key == keep:
                continue
            try:
                theirs = json.loads(manifest.read_text())["files"]
            except (OSError, ValueError, KeyError, TypeError):
                continue
            stale = any(p[0] in ours and ours[p[0]] != p for p in theirs) or any(
                not os.path.exists(p[0]) for p in theirs
            )
            if stale:
                for path in (self.folder / f"{key}.parquet", manifest):
                    with contextlib.suppress(OSError):
                        path.unlink()
