"""The store's limits on what a client sends, in one place (docs/store-vs-sekmet.md lists them).

Each limit exists because something below it has a hard edge: a database integer column, SQLite's
expression-tree depth and bound-parameter count, Python's recursion in the walkers that read a
resource. A value past a limit is the client's problem and is answered 400/404/413 with an
OperationOutcome naming the limit, never a database error surfacing as a 500.
"""

from __future__ import annotations

#: ``resource_versions.version_id`` is a 32-bit INTEGER on PostgreSQL: no version can be larger.
MAX_VERSION_ID = 2**31 - 1
#: ``resource_versions.seq`` (the ``_history`` cursor) is a signed 64-bit integer on both databases.
MAX_SEQ = 2**63 - 1
#: Search values in one search (all parameters, every comma alternative counted). Each is a few bound
#: parameters: SQLite allows 32,766 per statement and PostgreSQL's protocol 65,535.
MAX_SEARCH_TERMS = 2000
#: Nesting of a request's JSON (objects and arrays). FHIR resources nest a few tens of levels deep
#: (a Bundle entry's resource's extension's value...); the recursive walkers (reference rewriting,
#: indexing, validation) need a bound well inside Python's recursion limit.
MAX_JSON_DEPTH = 200


def bounded_int(text: str, maximum: int) -> int | None:
    """``text`` as a non-negative integer of ASCII digits no larger than ``maximum``, else None.

    ``str.isdigit`` alone is not enough: it accepts '²', which ``int`` refuses."""
    if not text or not text.isascii() or not text.isdigit() or len(text) > 20:
        return None
    value = int(text)
    return value if value <= maximum else None
