"""Where the resources come from: a folder of NDJSON files (plain or gzip).

Bulk Data ``$export`` and paging searches (:mod:`.bulk_client`) both end here: they download
NDJSON into a folder, and reports read the folder. Files are matched to resource types by name
(``Observation.ndjson``, ``Observation.000.ndjson.gz``, ``1.Observation.ndjson`` as some servers
write them); a file whose name names no type is read for every view and filtered by
``resourceType``, so any NDJSON layout works.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path

_SUFFIXES = (".ndjson", ".ndjson.gz", ".jsonl", ".jsonl.gz")
_TYPE_NAME = re.compile(r"^[A-Z][A-Za-z]+$")


class SourceError(ValueError):
    """The input cannot be read (missing folder, no NDJSON, unreachable server): one sentence."""


@dataclass
class NdjsonFolder:
    folder: Path
    by_type: dict[str, list[Path]] = field(default_factory=dict)
    untyped: list[Path] = field(default_factory=list)
    #: Written by several export runs (full, then _since increments): versions must be deduplicated.
    incremental: bool = False

    @classmethod
    def open(cls, folder: str | Path) -> NdjsonFolder:
        folder = Path(folder)
        if not folder.is_dir():
            raise SourceError(f"{folder} is not a folder of NDJSON files")
        src = cls(folder)
        files = sorted(p for p in folder.rglob("*") if p.is_file() and p.name.endswith(_SUFFIXES))
        if not files:
            raise SourceError(f"{folder} holds no .ndjson or .ndjson.gz files")
        src.incremental = (folder / "_export_runs.json").is_file()
        for p in files:
            parts = [x for x in p.name.split(".") if _TYPE_NAME.match(x)]
            if len(parts) == 1:
                src.by_type.setdefault(parts[0], []).append(p)
            else:
                src.untyped.append(p)
        return src

    @classmethod
    def open_or_empty(cls, folder: str | Path) -> NdjsonFolder:
        """A downloaded folder that may legitimately hold nothing (an empty export)."""
        folder = Path(folder)
        try:
            return cls.open(folder)
        except SourceError:
            if folder.is_dir():
                return cls(folder)
            raise

    def files_for(self, resource_type: str) -> list[Path]:
        return self.by_type.get(resource_type, []) + self.untyped
