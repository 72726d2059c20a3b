"""Small-number suppression for outputs that leave the organisation.

Primary: a count from 1 to 7 is shown as ``*`` (0 is shown: it reveals no one). Secondary: in a
group of cells that add up to a total shown elsewhere (the categories of one report, within one
``--by`` value), a single suppressed cell could be recovered by subtraction, so the next smallest
cell of the group is suppressed too. Percentages and intervals computed from a suppressed count
are suppressed with it.
"""

from __future__ import annotations

from dataclasses import dataclass

LOW, HIGH = 1, 7
MASK = "*"


@dataclass
class Table:
    """A small report table: ``rows`` of dicts, the count columns, and how cells add up.

    ``additive``: count columns whose cells, within one group, sum to the group's ``total`` row.
    ``derived``: column -> the count column it is computed from (percent, CI bounds, means).
    ``group_by``: columns that identify a group (the ``--by`` value); ``total_key`` (column, value)
    marks the total row of each group.
    """

    columns: list[str]
    rows: list[dict]
    counts: list[str]
    additive: list[str]
    derived: dict[str, str]
    group_by: list[str]
    total_key: tuple[str, str] | None = None


def _small(v) -> bool:
    return isinstance(v, int) and LOW <= v <= HIGH


def suppress(table: Table) -> Table:
    """Return a copy of ``table`` with small numbers masked (primary and secondary)."""
    rows = [dict(r) for r in table.rows]
    masked: set[tuple[int, str]] = set()
    for i, r in enumerate(rows):
        for c in table.counts:
            if _small(r.get(c)):
                masked.add((i, c))
    # Secondary suppression, repeated until stable (masking one cell can expose another group).
    changed = True
    while changed:
        changed = False
        groups: dict[tuple, list[int]] = {}
        for i, r in enumerate(rows):
            if table.total_key and r.get(table.total_key[0]) == table.total_key[1]:
                continue
            groups.setdefault(tuple(r.get(g) for g in table.group_by), []).append(i)
        for c in table.additive:
            for members in groups.values():
                hidden = [i for i in members if (i, c) in masked]
                if len(hidden) != 1:
                    continue
                candidates = [
                    i for i in members if (i, c) not in masked and isinstance(rows[i].get(c), int) and rows[i][c] > 0
                ]
                if not candidates:
                    # Only zeros left: the total itself would give the hidden cell away.
                    total_rows = [
                        i
                        for i, r in enumerate(rows)
                        if table.total_key
                        and r.get(table.total_key[0]) == table.total_key[1]
                        and tuple(r.get(g) for g in table.group_by)
                        == tuple(rows[members[0]].get(g) for g in table.group_by)
                    ]
                    for t in total_rows:
                        if (t, c) not in masked:
                            masked.add((t, c))
                            changed = True
                    continue
                pick = min(candidates, key=lambda i: rows[i][c])
                masked.add((pick, c))
                changed = True
    for i, c in masked:
        rows[i][c] = MASK
        for d, src in table.derived.items():
            if src == c:
                rows[i][d] = MASK
    return Table(table.columns, rows, table.counts, table.additive, table.derived, table.group_by, table.total_key)
