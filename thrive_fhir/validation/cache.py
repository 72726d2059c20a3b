"""Find the validator's input files and cache the compiled tables on disk.

Compiling ~650 StructureDefinitions, ~1,300 ValueSets and ~240 FHIRPath expressions takes a few
seconds; unpickling the result takes a fraction of one. The cache key hashes the inputs (our
profile and terminology files by content, the immutable R4 core package by file names and sizes)
and this package's own source, so editing a profile or the compiler invalidates it.
"""

from __future__ import annotations

import hashlib
import os
import pickle
import tempfile
from pathlib import Path

from .. import project_data, r4core

PACKAGE_DIR = Path(__file__).resolve().parent
REPO_ROOT = project_data.CHECKOUT_ROOT  # kept for callers; the data may also come from the wheel
CACHE_FORMAT = 1


class Sources:
    """The files one validator is built from."""

    def __init__(self, core_dir: Path, profile_files: list[Path], term_files: list[Path], expansion_files: list[Path]):
        self.core_dir = Path(core_dir)
        self.profile_files = sorted(profile_files)
        self.term_files = sorted(term_files)
        self.expansion_files = sorted(expansion_files)

    @classmethod
    def default(cls, root: Path | None = None) -> Sources:
        """Our profiles and terminology from the checkout, or the copy packaged in the wheel
        (:mod:`thrive_fhir.project_data`), plus the R4 core package."""
        root = Path(root) if root else project_data.data_root()
        gen = root / "profiles" / "generated"
        term = root / "terminology"
        return cls(
            r4core.ensure(),
            list(gen.glob("StructureDefinition-*.json")) if gen.is_dir() else [],
            list(term.glob("*.json"))
            + (list(gen.glob("CodeSystem-*.json")) + list(gen.glob("ValueSet-*.json")) if gen.is_dir() else [])
            if term.is_dir() or gen.is_dir()
            else [],
            list((term / "expansions").glob("ValueSet-*.json")) if (term / "expansions").is_dir() else [],
        )

    def key(self) -> str:
        h = hashlib.sha256()
        h.update(f"format={CACHE_FORMAT}".encode())
        for f in sorted(PACKAGE_DIR.glob("*.py")):
            h.update(f.name.encode())
            h.update(f.read_bytes())
        for f in sorted(self.core_dir.glob("*.json")):
            if f.name.startswith(("StructureDefinition-", "ValueSet-", "CodeSystem-")):
                h.update(f"{f.name}:{f.stat().st_size}".encode())
        for group in (self.profile_files, self.term_files, self.expansion_files):
            h.update(b"|")
            for f in group:
                h.update(f.name.encode())
                h.update(hashlib.sha256(f.read_bytes()).digest())
        return h.hexdigest()[:24]


def cache_dir() -> Path:
    return Path(os.environ.get("THRIVE_CACHE_DIR") or Path.home() / ".cache" / "thrive-fhir") / "validation"


def load_or_build(sources: Sources, build):
    """Unpickle the tables for ``sources``, or ``build()`` and store them (atomically)."""
    key = sources.key()
    path = cache_dir() / f"tables-{key}.pickle"
    if path.is_file():
        try:
            with open(path, "rb") as fh:
                return pickle.load(fh), True  # noqa: S301 - our own cache file, written by this function
        except Exception:  # noqa: S110 - a stale or truncated cache (other version, killed write) is rebuilt below
            pass
    tables = build()
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".tables-")
        with os.fdopen(fd, "wb") as fh:
            pickle.dump(tables, fh, protocol=pickle.HIGHEST_PROTOCOL)
        os.replace(tmp, path)
    except OSError:
        pass  # read-only home: run uncached
    return tables, False
