"""The data-team reports: SQL over the flattened views (tables made by :class:`.engine.DuckEngine`).

Every report returns a small :class:`.suppression.Table`: one row per category (and per ``--by``
value when asked), plus a ``total`` row so secondary suppression knows what adds up. Definitions
match those the synthetic population's ground truth is counted by (``thrive_fhir.synth.truth``),
so the tests can demand exact agreement:

- groupings: ``current`` = per episode, the grouping of the latest decision up to ``--to``;
  ``ever`` = young people with a decision of that grouping in the period; ``decisions`` = grouping
  Observations in the period.
- transitions: a decision with ``derivedFrom`` counts one (previous -> this) pair; days in the
  previous grouping = days between the two decisions.
- first-grouping: per episode with a grouping, days from the episode start to the first decision.
- outcomes: per goal and rater, first and last GBO score by time; change >= threshold is reliable
  improvement, <= -threshold reliable deterioration; N, % and the Wilson 95% interval.
- involvement: decisions by the young person's (and the family's) involvement code.
- risk-support: young people whose current grouping at ``--to`` is Getting Risk Support, with an
  active safety plan in date at ``--to``, shared (an active permit Consent in date naming the plan).
- referral-tasks: referral Task status by receiving organisation (the Task owner's provider).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import date, timedelta

from .. import canonical
from .suppression import Table

REPORTS = (
    "groupings",
    "transitions",
    "change-reasons",
    "first-grouping",
    "outcomes",
    "involvement",
    "risk-support",
    "referral-tasks",
)
#: Views each report needs (materialised once per run).
VIEWS = {
    "groupings": ("groupings", "practitioner_roles", "organisations"),
    "transitions": ("groupings", "practitioner_roles", "organisations"),
    "change-reasons": ("groupings", "practitioner_roles", "organisations"),
    "first-grouping": ("groupings", "episodes", "practitioner_roles", "organisations"),
    "outcomes": ("gbo_scores", "episodes", "practitioner_roles", "organisations"),
    "involvement": ("groupings", "practitioner_roles", "organisations"),
    "risk-support": ("groupings", "safety_plans", "consents", "episodes", "practitioner_roles", "organisations"),
    "referral-tasks": ("referral_tasks", "services", "organisations", "practitioner_roles", "referrals"),
}
#: The columns of a view each report reads (a view not named here: all of its columns). Unless
#: whole views are asked for (a ``.duckdb`` output keeps them), :func:`prepare` computes only these:
#: every column costs time and memory for every resource, and the views carry columns for other
#: reports (the groupings report reads 5 of the groupings view's 12, none of the dear
#: ``component.where(...)`` ones).
COLUMNS: dict[str, dict[str, tuple[str, ...]]] = {
    "groupings": {"groupings": ("patient", "episode", "grouping", "effective", "clinician")},
    "transitions": {"groupings": ("id", "previous", "grouping", "effective", "clinician")},
    "change-reasons": {"groupings": ("id", "previous", "grouping", "effective", "clinician", "change_reason")},
    "first-grouping": {"groupings": ("episode", "effective"), "episodes": ("id", "period_start", "care_manager")},
    "outcomes": {
        "gbo_scores": ("episode", "goal", "rater", "effective", "score"),
        "episodes": ("id", "status", "care_manager"),
    },
    "involvement": {"groupings": ("effective", "clinician", "yp_involvement", "family_involvement")},
    "risk-support": {"groupings": ("patient", "episode", "grouping", "effective", "clinician")},
}
BY = ("agency", "team", "month")
#: The ``--by`` values read through the staff table (a decision's clinician -> their agency or team).
_STAFF_BY = ("agency", "team")
OUTCOMES = ("reliable_improvement", "no_reliable_change", "reliable_deterioration")
Z95 = 1.959963984540054


class ReportError(ValueError):
    pass


@dataclass
class Options:
    start: date | None = None  # --from
    end: date | None = None  # --to (inclusive)
    by: str | None = None
    threshold: int = canonical.GBO_RELIABLE_CHANGE
    closed_only: bool = False

    @property
    def from_ts(self) -> str:
        return f"TIMESTAMPTZ '{(self.start or date(1, 1, 1)).isoformat()} 00:00:00+00'"

    @property
    def to_ts(self) -> str:
        """Exclusive upper bound: midnight UTC after the --to day."""
        end = (self.end + timedelta(days=1)) if self.end else date(9999, 12, 31)
        return f"TIMESTAMPTZ '{end.isoformat()} 00:00:00+00'"

    @property
    def to_day(self) -> str:
        return f"'{(self.end or date(9999, 12, 30)).isoformat()}'"


def wilson(k: int, n: int, z: float = Z95) -> tuple[float, float]:
    """Wilson score interval for k successes in n (as proportions)."""
    if n == 0:
        return (math.nan, math.nan)
    p = k / n
    denom = 1 + z * z / n
    centre = (p + z * z / (2 * n)) / denom
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / denom
    return (max(0.0, centre - half), min(1.0, centre + half))


def _ts(col: str) -> str:
    return f"TRY_CAST({col} AS TIMESTAMPTZ)"


_STAFF = """staff AS (
    SELECT r.id AS role, coalesce(o.name, r.organisation, 'unknown') AS agency, coalesce(r.role, 'unknown') AS team
    FROM practitioner_roles r LEFT JOIN organisations o ON o.id = r.organisation)"""


def _dim(by: str | None, role_col: str, ts_col: str) -> str:
    if by is None:
        return "'all'"
    if by == "month":
        return f"strftime({ts_col}, '%Y-%m')"
    return f"coalesce((SELECT s.{by} FROM staff s WHERE s.role = {role_col}), 'unknown')"


def _table(engine, sql: str) -> list[dict]:
    cur = engine.con.execute(sql)
    names = ["by" if d[0] == "by_" else d[0] for d in cur.description]
    return [dict(zip(names, r)) for r in cur.fetchall()]


def _order(rows: list[dict], key: str, order: tuple[str, ...]) -> list[dict]:
    pos = {k: i for i, k in enumerate(order)}
    return sorted(rows, key=lambda r: (str(r.get("by", "")), pos.get(r[key], len(pos)), str(r[key])))


def _add_totals(rows: list[dict], key: str, counts: list[str], by: bool, totals: dict | None = None) -> list[dict]:
    out = list(rows)
    groups: dict = {}
    for r in rows:
        groups.setdefault(r.get("by"), []).append(r)
    for b, members in groups.items():
        t = {key: "total"}
        if by:
            t["by"] = b
        for c in counts:
            t[c] = sum(r[c] for r in members if isinstance(r[c], int))
        if totals and b in totals:
            t.update(totals[b])
        out.append(t)
    return out


def _fill(rows: list[dict], key: str, categories: tuple[str, ...], counts: list[str], by: bool) -> list[dict]:
    """Every category appears (with 0) in every --by group, so a missing row never hides a count."""
    seen = {(r.get("by"), r[key]) for r in rows}
    # key=str as in _order: the groups sort as text whatever the database gave.
    groups = sorted({r.get("by") for r in rows}, key=str) if by else [None]
    out = list(rows)
    for b in groups:
        for c in categories:
            if (b if by else None, c) not in {(s[0] if by else None, s[1]) for s in seen}:
                r = {key: c, **{k: 0 for k in counts}}
                if by:
                    r["by"] = b
                out.append(r)
    return out


def groupings(engine, o: Options) -> Table:
    by = o.by is not None
    dim = _dim(o.by, "g.clinician", "g.ts")
    g = f"SELECT *, {_ts('effective')} AS ts FROM groupings"
    base = f"WITH {_STAFF}, g AS ({g})"
    if o.by == "month":
        current = f"""{base}, months AS (SELECT DISTINCT date_trunc('month', ts) AS m FROM g WHERE ts >= {o.from_ts} AND ts < {o.to_ts}),
            latest AS (SELECT strftime(m, '%Y-%m') AS by_, coalesce(g.episode, g.patient) AS ep, arg_max(g.grouping, g.ts) AS grouping
                       FROM months JOIN g ON g.ts < m + INTERVAL 1 MONTH AND g.ts < {o.to_ts} GROUP BY 1, 2)
            SELECT by_, grouping, count(*)::BIGINT AS current FROM latest GROUP BY 1, 2"""
    elif by:
        current = f"""{base}, latest AS (SELECT coalesce(episode, patient) AS ep,
                       arg_max(struct_pack(grouping := grouping, clinician := clinician, ts := ts), ts) AS g FROM g
                       WHERE ts < {o.to_ts} GROUP BY 1)
            SELECT {_dim(o.by, "(latest.g).clinician", "(latest.g).ts")} AS by_, (latest.g).grouping AS grouping, count(*)::BIGINT AS current
            FROM latest GROUP BY 1, 2"""
    else:  # only the grouping of the latest decision is needed (not its clinician or time)
        current = f"""{base}, latest AS (SELECT coalesce(episode, patient) AS ep, arg_max(grouping, ts) AS grouping FROM g
                       WHERE ts < {o.to_ts} GROUP BY 1)
            SELECT 'all' AS by_, grouping, count(*)::BIGINT AS current FROM latest GROUP BY 1, 2"""
    # Per grouping, and (GROUPING(grouping) = 1) all groupings together: the total of "ever" is
    # distinct young people, not the sum of the rows. One pass over the decisions for both.
    period = f"""{base}, p AS (SELECT {dim} AS by_, g.grouping, g.patient FROM g WHERE g.ts >= {o.from_ts} AND g.ts < {o.to_ts})
        SELECT by_, grouping, count(DISTINCT patient)::BIGINT AS ever, count(*)::BIGINT AS decisions,
               GROUPING(grouping) AS all_groupings
        FROM p GROUP BY GROUPING SETS ((by_, grouping), (by_))"""
    rows: dict[tuple, dict] = {}
    for r in _table(engine, current):
        rows.setdefault(
            (r["by"], r["grouping"]),
            {"by": r["by"], "grouping": r["grouping"], "current": 0, "ever": 0, "decisions": 0},
        )["current"] = r["current"]
    totals: dict = {}
    for r in _table(engine, period):
        if r.pop("all_groupings"):
            totals[r["by"] if by else None] = {"ever": r["ever"]}
            continue
        d = rows.setdefault(
            (r["by"], r["grouping"]),
            {"by": r["by"], "grouping": r["grouping"], "current": 0, "ever": 0, "decisions": 0},
        )
        d["ever"], d["decisions"] = r["ever"], r["decisions"]
    out = list(rows.values())
    if not by:
        for r in out:
            r.pop("by")
    counts = ["current", "ever", "decisions"]
    out = _fill(out, "grouping", canonical.GROUPINGS, counts, by)
    out = _add_totals(_order(out, "grouping", canonical.GROUPINGS), "grouping", counts, by, totals)
    cols = (["by"] if by else []) + ["grouping"] + counts
    return Table(cols, out, counts, ["current", "decisions"], {}, ["by"] if by else [], ("grouping", "total"))


def _transitions_sql(o: Options) -> str:
    return f"""WITH {_STAFF}, g AS (SELECT *, {_ts("effective")} AS ts FROM groupings),
        t AS (SELECT cur.*, prev.grouping AS from_grouping, date_diff('day', CAST(prev.ts AS DATE), CAST(cur.ts AS DATE)) AS days
              FROM g AS cur JOIN g AS prev ON prev.id = cur.previous
              WHERE cur.ts >= {o.from_ts} AND cur.ts < {o.to_ts})"""


def transitions(engine, o: Options) -> Table:
    by = o.by is not None
    sql = f"""{_transitions_sql(o)}
        SELECT {_dim(o.by, "t.clinician", "t.ts")} AS by_, from_grouping, t.grouping AS to_grouping, count(*)::BIGINT AS transitions,
               round(avg(days), 1) AS mean_days_in_previous, median(days)::DOUBLE AS median_days_in_previous
        FROM t GROUP BY 1, 2, 3"""
    rows = _table(engine, sql)
    pos = {k: i for i, k in enumerate(canonical.GROUPINGS)}
    rows.sort(key=lambda r: (str(r["by"]), pos.get(r["from_grouping"], 9), pos.get(r["to_grouping"], 9)))
    for r in rows:
        if not by:
            r.pop("by")
    groups: dict = {}
    for r in rows:
        groups.setdefault(r.get("by"), []).append(r)
    for b, members in groups.items():
        t = {
            "from_grouping": "total",
            "to_grouping": "total",
            "transitions": sum(r["transitions"] for r in members),
            "mean_days_in_previous": None,
            "median_days_in_previous": None,
        }
        if by:
            t["by"] = b
        rows.append(t)
    cols = (["by"] if by else []) + [
        "from_grouping",
        "to_grouping",
        "transitions",
        "mean_days_in_previous",
        "median_days_in_previous",
    ]
    return Table(
        cols,
        rows,
        ["transitions"],
        ["transitions"],
        {"mean_days_in_previous": "transitions", "median_days_in_previous": "transitions"},
        ["by"] if by else [],
        ("from_grouping", "total"),
    )


def change_reasons(engine, o: Options) -> Table:
    by = o.by is not None
    sql = f"""{_transitions_sql(o)}
        SELECT {_dim(o.by, "t.clinician", "t.ts")} AS by_, t.change_reason AS reason, count(*)::BIGINT AS changes
        FROM t WHERE t.change_reason IS NOT NULL GROUP BY 1, 2 ORDER BY 1, 2"""
    rows = _table(engine, sql)
    if not by:
        for r in rows:
            r.pop("by")
    rows = _add_totals(rows, "reason", ["changes"], by)
    cols = (["by"] if by else []) + ["reason", "changes"]
    return Table(cols, rows, ["changes"], ["changes"], {}, ["by"] if by else [], ("reason", "total"))


def first_grouping(engine, o: Options) -> Table:
    by = o.by is not None
    sql = f"""WITH {_STAFF}, g AS (SELECT *, {_ts("effective")} AS ts FROM groupings),
        first AS (SELECT episode, min(ts) AS first_ts FROM g WHERE episode IS NOT NULL GROUP BY 1),
        e AS (SELECT e.*, CAST(e.period_start AS DATE) AS start_day, f.first_ts,
                     date_diff('day', CAST(e.period_start AS DATE), CAST(f.first_ts AS DATE)) AS days
              FROM episodes e JOIN first f ON f.episode = e.id
              WHERE f.first_ts >= {o.from_ts} AND f.first_ts < {o.to_ts})
        SELECT {_dim(o.by, "e.care_manager", "e.first_ts")} AS by_, count(*)::BIGINT AS episodes, sum(days)::BIGINT AS total_days,
               round(avg(days), 1) AS mean_days, median(days)::DOUBLE AS median_days,
               quantile_cont(days, 0.9)::DOUBLE AS p90_days
        FROM e GROUP BY 1 ORDER BY 1"""
    rows = _table(engine, sql)
    for r in rows:
        r["measure"] = "first contact to first agreed grouping"
        if not by:
            r.pop("by")
    cols = (["by"] if by else []) + ["measure", "episodes", "total_days", "mean_days", "median_days", "p90_days"]
    derived = {"total_days": "episodes", "mean_days": "episodes", "median_days": "episodes", "p90_days": "episodes"}
    return Table(cols, rows, ["episodes"], ["episodes"] if by else [], derived, [], None)


def _needs_episodes(o: Options) -> bool:
    """Whether the outcomes report reads the episodes (their status or care manager's agency)."""
    return o.closed_only or o.by in ("agency", "team")


def outcomes(engine, o: Options) -> Table:
    by = o.by is not None
    thr = int(o.threshold)
    closed = "AND e.status = 'finished'" if o.closed_only else ""
    if _needs_episodes(o):
        scores = f"""SELECT s.goal, s.rater, s.score, {_ts("s.effective")} AS ts, e.care_manager
                       FROM gbo_scores s LEFT JOIN episodes e ON e.id = s.episode
                       WHERE s.score IS NOT NULL AND s.goal IS NOT NULL {closed}"""
    else:  # the episode's care manager and status are not asked for: no join of every score
        scores = f"""SELECT s.goal, s.rater, s.score, {_ts("s.effective")} AS ts, NULL AS care_manager
                       FROM gbo_scores s WHERE s.score IS NOT NULL AND s.goal IS NOT NULL"""
    sql = f"""WITH {_STAFF}, s AS ({scores}),
        pairs AS (SELECT goal, rater, count(*) AS n, arg_min(score, ts) AS first_score, arg_max(score, ts) AS last_score,
                         max(ts) AS last_ts, any_value(care_manager) AS care_manager
                  FROM s GROUP BY goal, rater HAVING count(*) >= 2),
        c AS (SELECT *, CASE WHEN last_score - first_score >= {thr} THEN 'reliable_improvement'
                             WHEN last_score - first_score <= -{thr} THEN 'reliable_deterioration'
                             ELSE 'no_reliable_change' END AS indicator
              FROM pairs WHERE last_ts >= {o.from_ts} AND last_ts < {o.to_ts})
        SELECT {_dim(o.by, "c.care_manager", "c.last_ts")} AS by_, indicator, count(*)::BIGINT AS n FROM c GROUP BY 1, 2"""
    raw = _table(engine, sql)
    groups: dict = {}
    for r in raw:
        groups.setdefault(r["by"], {})[r["indicator"]] = r["n"]
    rows = []
    for b in sorted(groups, key=str):
        counts = groups[b]
        total = sum(counts.values())
        for ind in OUTCOMES:
            k = counts.get(ind, 0)
            lo, hi = wilson(k, total)
            row = {
                "indicator": ind,
                "n": k,
                "paired_goals": total,
                "percent": round(100 * k / total, 1) if total else None,
                "ci_low": round(100 * lo, 1) if total else None,
                "ci_high": round(100 * hi, 1) if total else None,
            }
            if by:
                row["by"] = b
            rows.append(row)
        t = {
            "indicator": "total",
            "n": total,
            "paired_goals": total,
            "percent": 100.0 if total else None,
            "ci_low": None,
            "ci_high": None,
        }
        if by:
            t["by"] = b
        rows.append(t)
    if not rows:
        rows = [
            {"indicator": ind, "n": 0, "paired_goals": 0, "percent": None, "ci_low": None, "ci_high": None}
            for ind in (*OUTCOMES, "total")
        ]
    cols = (["by"] if by else []) + ["indicator", "n", "paired_goals", "percent", "ci_low", "ci_high"]
    # paired_goals repeats the group's total on every row: a small total is masked like any count.
    return Table(
        cols,
        rows,
        ["n", "paired_goals"],
        ["n"],
        {"percent": "n", "ci_low": "n", "ci_high": "n"},
        ["by"] if by else [],
        ("indicator", "total"),
    )


def involvement(engine, o: Options) -> Table:
    by = o.by is not None
    sql = f"""WITH {_STAFF}, g AS (SELECT *, {_ts("effective")} AS ts FROM groupings WHERE {_ts("effective")} >= {o.from_ts} AND {_ts("effective")} < {o.to_ts}),
        u AS (SELECT {_dim(o.by, "g.clinician", "g.ts")} AS by_, 'young-person' AS who, coalesce(yp_involvement, 'not-recorded') AS involvement FROM g
              UNION ALL
              SELECT {_dim(o.by, "g.clinician", "g.ts")} AS by_, 'family' AS who, coalesce(family_involvement, 'not-recorded') FROM g)
        SELECT by_, who, involvement, count(*)::BIGINT AS decisions FROM u GROUP BY 1, 2, 3"""
    rows = _table(engine, sql)
    order = ("agreed", "partly-agreed", "not-agreed", "not-involved", "not-applicable", "not-recorded")
    pos = {k: i for i, k in enumerate(order)}
    rows.sort(key=lambda r: (str(r["by"]), r["who"] != "young-person", pos.get(r["involvement"], 99)))
    totals: dict = {}
    for r in rows:
        totals[(r["by"], r["who"])] = totals.get((r["by"], r["who"]), 0) + r["decisions"]
    for r in rows:
        t = totals[(r["by"], r["who"])]
        r["percent"] = round(100 * r["decisions"] / t, 1) if t else None
    for (b, who), t in totals.items():
        rows.append({"by": b, "who": who, "involvement": "total", "decisions": t, "percent": 100.0})
    if not by:
        for r in rows:
            r.pop("by")
    cols = (["by"] if by else []) + ["who", "involvement", "decisions", "percent"]
    return Table(
        cols,
        rows,
        ["decisions"],
        ["decisions"],
        {"percent": "decisions"},
        (["by"] if by else []) + ["who"],
        ("involvement", "total"),
    )


def risk_support(engine, o: Options) -> Table:
    by = o.by is not None
    if o.by == "month":
        raise ReportError("risk-support is a count on the --to day; --by month does not apply (use agency or team)")
    day = o.to_day
    sql = f"""WITH {_STAFF}, g AS (SELECT *, {_ts("effective")} AS ts FROM groupings WHERE {_ts("effective")} < {o.to_ts}),
        latest AS (SELECT coalesce(episode, patient) AS ep, arg_max(grouping, ts) AS grouping, any_value(patient) AS patient,
                          arg_max(clinician, ts) AS clinician
                   FROM g GROUP BY 1),
        grs AS (SELECT * FROM latest WHERE grouping = 'getting-risk-support'),
        plans AS (SELECT * FROM safety_plans WHERE status = 'active'
                    AND (period_start IS NULL OR left(period_start, 10) <= {day}) AND (period_end IS NULL OR {day} <= left(period_end, 10))),
        shared AS (SELECT DISTINCT plan FROM consents WHERE status = 'active' AND provision_type = 'permit'
                    AND (period_start IS NULL OR left(period_start, 10) <= {day}) AND (period_end IS NULL OR {day} <= left(period_end, 10))),
        yp AS (SELECT grs.*, EXISTS (SELECT 1 FROM plans p WHERE p.patient = grs.patient) AS has_plan,
                      EXISTS (SELECT 1 FROM plans p JOIN shared s ON s.plan = p.id WHERE p.patient = grs.patient) AS has_shared_plan
               FROM grs)
        SELECT {_dim(o.by, "yp.clinician", "NULL")} AS by_,
               count(*)::BIGINT AS in_risk_support,
               count(*) FILTER (WHERE has_plan)::BIGINT AS with_in_date_plan,
               count(*) FILTER (WHERE has_shared_plan)::BIGINT AS with_shared_in_date_plan
        FROM yp GROUP BY 1 ORDER BY 1"""
    rows = _table(engine, sql) or [
        {"by": "all", "in_risk_support": 0, "with_in_date_plan": 0, "with_shared_in_date_plan": 0}
    ]
    for r in rows:
        n = r["in_risk_support"]
        r["percent_shared"] = round(100 * r["with_shared_in_date_plan"] / n, 1) if n else None
        if not by:
            r.pop("by")
    cols = (["by"] if by else []) + [
        "in_risk_support",
        "with_in_date_plan",
        "with_shared_in_date_plan",
        "percent_shared",
    ]
    return Table(
        cols,
        rows,
        ["in_risk_support", "with_in_date_plan", "with_shared_in_date_plan"],
        [],
        {"percent_shared": "with_shared_in_date_plan"},
        [],
        None,
    )


def referral_tasks(engine, o: Options) -> Table:
    by = o.by is not None
    if o.by == "month":
        dim = "strftime(t.ts, '%Y-%m')"
    elif o.by:
        dim = "coalesce((SELECT s." + o.by + " FROM staff s WHERE s.role = t.requester), 'unknown')"
    else:
        dim = "'all'"
    sql = f"""WITH {_STAFF}, t AS (SELECT *, {_ts("authored_on")} AS ts FROM referral_tasks
                                   WHERE {_ts("authored_on")} >= {o.from_ts} AND {_ts("authored_on")} < {o.to_ts}),
        SELECT {dim} AS by_,
               coalesce(org.name, svc.organisation, t.owner, 'unknown') AS receiving_organisation, t.status, count(*)::BIGINT AS tasks
        FROM t LEFT JOIN services svc ON svc.id = t.owner LEFT JOIN organisations org ON org.id = svc.organisation
        GROUP BY 1, 2, 3 ORDER BY 1, 2, 3"""
    rows = _table(engine, sql)
    totals: dict = {}
    for r in rows:
        totals[(r["by"], r["receiving_organisation"])] = (
            totals.get((r["by"], r["receiving_organisation"]), 0) + r["tasks"]
        )
    for (b, org), t in totals.items():
        rows.append({"by": b, "receiving_organisation": org, "status": "total", "tasks": t})
    if not by:
        for r in rows:
            r.pop("by")
    cols = (["by"] if by else []) + ["receiving_organisation", "status", "tasks"]
    return Table(
        cols, rows, ["tasks"], ["tasks"], {}, (["by"] if by else []) + ["receiving_organisation"], ("status", "total")
    )


BUILDERS = {
    "groupings": groupings,
    "transitions": transitions,
    "change-reasons": change_reasons,
    "first-grouping": first_grouping,
    "outcomes": outcomes,
    "involvement": involvement,
    "risk-support": risk_support,
    "referral-tasks": referral_tasks,
}


def _column_names(node: object) -> set[str]:
    """Every column name a view (or select) declares."""
    if not isinstance(node, dict):
        return set()
    names = {c["name"] for c in node.get("column") or [] if isinstance(c, dict) and isinstance(c.get("name"), str)}
    for key in ("select", "unionAll"):
        for sub in node.get(key) or []:
            names |= _column_names(sub)
    return names


#: Columns of :data:`COLUMNS` that a report reads only with some options: (report, view, column)
#: -> whether ``options`` read it. A plain run (no ``--by``) does not compute them: at 1M + 3M
#: Observations the clinician and the scores' episode are the dearest columns of the shared scan
#: (a list searched per resource), and only a breakdown by agency or team, or ``--closed-only``,
#: reads them. risk-support is not here: its SQL reads the clinician whatever the options.
OPTIONAL_COLUMNS = {
    ("groupings", "groupings", "clinician"): lambda o: o.by in _STAFF_BY,
    ("transitions", "groupings", "clinician"): lambda o: o.by in _STAFF_BY,
    ("change-reasons", "groupings", "clinician"): lambda o: o.by in _STAFF_BY,
    ("involvement", "groupings", "clinician"): lambda o: o.by in _STAFF_BY,
    ("outcomes", "gbo_scores", "episode"): _needs_episodes,
}


def _reads(name: str, view: str, options: Options | None) -> tuple[str, ...] | None:
    """The columns of ``view`` report ``name`` reads with ``options`` (None: with any options;
    a None result: all of the view's columns)."""
    cols = COLUMNS.get(name, {}).get(view)
    if cols is None or options is None:
        return cols
    return tuple(c for c in cols if OPTIONAL_COLUMNS.get((name, view, c), lambda o: True)(options))


def _views(name: str, options: Options | None) -> tuple[str, ...]:
    """The views report ``name`` reads with ``options`` (None: with any options)."""
    if name == "outcomes" and options is not None and not _needs_episodes(options):
        return tuple(v for v in VIEWS[name] if v != "episodes")
    return VIEWS[name]


def prepare(engine, names: list[str], *, whole_views: bool = False, options: Options | None = None) -> None:
    """Materialise, in one go, the views the reports ``names`` need and ``engine`` lacks: views of
    the same resource type then share one read of its NDJSON (groupings and outcomes both read
    the Observations). Call it before running several reports on one engine.

    Views hold only the columns the reports read (:data:`COLUMNS`) unless ``whole_views``; a view
    already made keeps its columns, and is made again (with them) if a later report reads more.
    With ``options``, only the views and columns the reports read with those options (the
    outcomes report reads the episodes only for ``--closed-only`` or ``--by agency|team``; see
    :data:`OPTIONAL_COLUMNS`); on an engine with a cache, the columns of any options.
    """
    from .compiler import only_columns
    from .engine import load_shipped_view

    for name in names:
        if name not in BUILDERS:
            raise ReportError(f"unknown report {name!r} (choose from {', '.join(REPORTS)})")
    # Views kept in a cache serve later runs with other options: they hold what any options read,
    # so that a --by agency after a plain run reads the cache instead of parsing the NDJSON again.
    column_options = None if getattr(engine, "cache", None) is not None else options
    need: dict[str, set[str] | None] = {}  # view -> columns (None: all)
    for n in names:
        for v in _views(n, options):
            reads = None if whole_views else _reads(n, v, column_options)
            if reads is None or (v in need and need[v] is None):
                need[v] = None
            else:
                need[v] = (need.get(v) or set()) | set(reads)
    wanted = []
    for v, cols in need.items():
        view = load_shipped_view(v)
        have = engine.tables.get(v)
        got = {c.name for c in have.columns} if have is not None else set()
        if cols is not None:
            view = only_columns(view, cols | got)
        if have is None or not got >= _column_names({"select": view.get("select")}):
            wanted.append(view)
    if wanted:
        engine.materialise_many(wanted)


def run_report(engine, name: str, options: Options, *, whole_views: bool = False) -> Table:
    """Materialise the views ``name`` needs (if not yet; see :func:`prepare`) and build the report table."""
    if name not in BUILDERS:
        raise ReportError(f"unknown report {name!r} (choose from {', '.join(REPORTS)})")
    if options.by is not None and options.by not in BY:
        raise ReportError(f"--by must be one of {', '.join(BY)}")
    prepare(engine, [name], whole_views=whole_views, options=options)
    return BUILDERS[name](engine, options)
