"""Application rules that FHIRPath invariants cannot express (docs/design/fhir-model.md "(app)" lines).

Single-resource rules run on every resource that claims one of our profiles (or, for the GBO and
grouping rules, looks like one by its codes); cross-resource rules run when ``validate_set`` or a
Bundle brings the other resource into the same batch. Each issue names its rule:

==============================  =============================================================
``app-future-date``             effective/issued/authoredOn/recorded/dateTime/created/startDate in the future
``app-effective-after-issued``  grouping/GBO Observation: effectiveDateTime after issued
``app-patient``                 Consent.patient / the safety plan's subject must reference a Patient
``app-note-required``           a grouping decided without agreement needs a note saying why
``app-max-active-goals``        at most three goals proposed/accepted/active/on-hold per young person per episode
``app-slot-reused``             a goal-slot code is never reused for a different goal in one episode
``app-gbo-code-mismatch``       GBO score code must equal its Goal's target measure
``app-gbo-subject-mismatch``    GBO score and its Goal are about the same young person
``app-score-before-goal``       GBO score effective must not be before the Goal's startDate
``app-derivedfrom-mismatch``    derivedFrom target: a grouping, same subject, earlier effective
``app-change-reason-required``  grouping differs from the one it replaces: grouping-change-reason required
``app-one-active-safety-plan``  one active safety plan per young person in a batch
==============================  =============================================================
"""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta

from .. import canonical as c

OUR_PROFILES = {
    c.PROFILE_GROUPING,
    c.PROFILE_GBO_GOAL,
    c.PROFILE_GBO_SCORE,
    c.PROFILE_SAFETY_PLAN,
    c.PROFILE_CONSENT,
    c.PROFILE_SIGNPOSTING,
    c.PROFILE_REFERRAL_TASK,
    c.PROFILE_PROVENANCE,
    c.PROFILE_EPISODE,
    c.PROFILE_CARE_TEAM,
    c.PROFILE_LOCAL_OFFER,
    c.PROFILE_RISK_FLAG,
    c.PROFILE_READ_AUDIT,
    c.PROFILE_AGENCY_CONFIRMATION,
}
ACTIVE_GOAL = {"proposed", "accepted", "active", "on-hold"}
GBO_CODES = {code for code, _ in c.GBO_SCORE_CODES.values()}
DATE_FIELDS = (
    "effectiveDateTime",
    "effectiveInstant",
    "issued",
    "authoredOn",
    "recorded",
    "dateTime",
    "created",
    "startDate",
    "occurrenceDateTime",
)
# dates without a time zone may be "today" somewhere on Earth while already tomorrow in UTC
_TZ_SLACK = timedelta(hours=14)


def _items(value) -> list | tuple:
    """The elements of a JSON array, or nothing when the value is missing or not an array.

    App rules run on resources the structural walk may already have refused (a number where a
    list belongs); they must add their own findings, never crash on such input.
    """
    return value if type(value) is list else ()


def _text(value) -> str | None:
    """A JSON string as is; anything else (a list, a number where a code belongs) as None."""
    return value if type(value) is str else None


def profiles_of(res: dict) -> set[str]:
    meta = res.get("meta")
    ps = meta.get("profile") if type(meta) is dict else None
    if type(ps) is not list:
        return set()
    return {p.split("|", 1)[0] for p in ps if type(p) is str}


def _codes(cc, system=None) -> set:
    out = set()
    if type(cc) is dict:
        for cd in _items(cc.get("coding")):
            if type(cd) is dict and (system is None or cd.get("system") == system):
                out.add((_text(cd.get("system")), _text(cd.get("code"))))
    return out


def kind_of(res: dict) -> str | None:
    """Which of our resource kinds this is, by profile or by its codes."""
    profs = profiles_of(res)
    rt = res.get("resourceType")
    if rt == "Observation":
        if c.PROFILE_GROUPING in profs or (c.CS_CONCEPTS, "thrive-grouping") in _codes(res.get("code")):
            return "grouping"
        if c.PROFILE_GBO_SCORE in profs or (
            {cd for _s, cd in _codes(res.get("code"), c.SNOMED)} & GBO_CODES and res.get("focus")
        ):
            return "gbo-score"
    elif rt == "Goal":
        cats = set()
        for cat in _items(res.get("category")):
            cats |= _codes(cat)
        if c.PROFILE_GBO_GOAL in profs or (c.CS_CONCEPTS, "gbo-goal") in cats:
            return "gbo-goal"
    elif rt == "CarePlan":
        if c.PROFILE_SAFETY_PLAN in profs:
            return "safety-plan"
    elif rt == "Consent":
        if c.PROFILE_CONSENT in profs:
            return "consent"
    if profs & OUR_PROFILES:
        return "ours"
    return None


_DT = re.compile(r"(\d{4})(?:-(\d{2})(?:-(\d{2})(?:T(\d{2}):(\d{2})(?::(\d{2})(?:\.\d+)?)?(Z|[+-]\d{2}:\d{2})?)?)?)?$")


def instant_range(value) -> tuple[datetime, datetime] | None:
    """Earliest and latest UTC instant a FHIR date/dateTime/instant string can mean."""
    if type(value) is not str:
        return None
    m = _DT.match(value)
    if not m:
        return None
    y, mo, d, h, mi, s, tz = m.groups()
    try:
        if h is not None:
            dt = datetime(int(y), int(mo), int(d), int(h), int(mi), int(s or 0), tzinfo=UTC)
            if tz and tz != "Z":
                sign = 1 if tz[0] == "+" else -1
                dt -= sign * timedelta(hours=int(tz[1:3]), minutes=int(tz[4:6]))
            hi = dt + (timedelta(seconds=1) if s is not None else timedelta(minutes=1))
            return dt, hi - timedelta(microseconds=1)
        lo = datetime(int(y), int(mo or 1), int(d or 1), tzinfo=UTC)
        if d is not None:
            hi = lo + timedelta(days=1)
        elif mo is not None:
            hi = datetime(int(y) + (int(mo) == 12), int(mo) % 12 + 1, 1, tzinfo=UTC)
        else:
            hi = datetime(int(y) + 1, 1, 1, tzinfo=UTC)
        return lo - _TZ_SLACK, hi + _TZ_SLACK - timedelta(microseconds=1)
    except ValueError:
        return None


def ref_key(ref) -> str | None:
    """'Patient/x' for a Reference (relative or absolute URL); urn:uuid references as they are."""
    if type(ref) is not dict:
        return None
    r = ref.get("reference")
    if type(r) is not str:
        return None
    if r.startswith("urn:"):
        return r
    parts = r.split("/")
    if len(parts) >= 4 and parts[-2] == "_history":
        parts = parts[:-2]
    return "/".join(parts[-2:]) if len(parts) >= 2 else r


def episode_of(res: dict) -> str | None:
    for ext in _items(res.get("extension")):
        if type(ext) is dict and ext.get("url") == c.EXT_EPISODE:
            return ref_key(ext.get("valueReference"))
    return None


def _grouping_code(obs):
    v = obs.get("valueCodeableConcept")
    codes = [cd for s, cd in _codes(v, c.CS_GROUPING)]
    return codes[0] if codes else None


def _components(obs, code):
    return [
        comp
        for comp in _items(obs.get("component"))
        if (type(comp) is dict and (c.CS_CONCEPTS, code) in _codes(comp.get("code")))
        or (type(comp) is dict and code in {cd for _s, cd in _codes(comp.get("code"))})
    ]


# -- single-resource rules ----------------------------------------------------------------------
def single(res: dict, prefix: str, now: datetime) -> list[tuple]:
    kind = kind_of(res)
    if kind is None:
        return []
    issues = []
    # fast path: any value whose day is before yesterday (string order = date order) is not future
    safe = (now - timedelta(days=1)).strftime("%Y-%m-%d")
    for f in DATE_FIELDS:
        val = res.get(f)
        if val is None or (type(val) is str and val[:10] < safe and len(val) >= 10):
            continue
        rng = instant_range(val)
        if rng and rng[0] > now:
            issues.append(
                ("error", "business-rule", f"{prefix}.{f}", f"app-future-date: {f} {res.get(f)} is in the future")
            )
    if kind in ("grouping", "gbo-score"):
        eff, iss = instant_range(res.get("effectiveDateTime")), instant_range(res.get("issued"))
        if eff and iss and eff[0] > iss[1]:
            issues.append(
                (
                    "error",
                    "business-rule",
                    f"{prefix}.effectiveDateTime",
                    f"app-effective-after-issued: issued ({res.get('issued')}) is before effectiveDateTime "
                    f"({res.get('effectiveDateTime')})",
                )
            )
    if kind == "grouping":
        if (c.CS_CONCEPTS, "decided-without-agreement") in _codes(res.get("method")) and not res.get("note"):
            issues.append(
                (
                    "error",
                    "business-rule",
                    f"{prefix}.note",
                    "app-note-required: a grouping decided without agreement needs a note saying why",
                )
            )
    # absence is the profiles' cardinality error; here: present but not naming a Patient
    if kind == "safety-plan" and "subject" in res:
        k = ref_key(res.get("subject"))
        if not (k and (k.startswith("Patient/") or k.startswith("urn:"))):
            issues.append(
                (
                    "error",
                    "business-rule",
                    f"{prefix}.subject",
                    "app-patient: a safety plan must name the young person (subject = Patient)",
                )
            )
    if kind == "consent" and "patient" in res:
        k = ref_key(res.get("patient"))
        if not (k and (k.startswith("Patient/") or k.startswith("urn:"))):
            issues.append(
                (
                    "error",
                    "business-rule",
                    f"{prefix}.patient",
                    "app-patient: a sharing consent must name the young person (patient = Patient)",
                )
            )
    return issues


# -- cross-resource rules -----------------------------------------------------------------------
def cross(items: list[tuple[dict, str, str | None]]) -> list[tuple[int, tuple]]:
    """``items``: (resource, path prefix, fullUrl or None). Returns (item index, issue) pairs."""
    index: dict[str, int] = {}
    for i, (res, _p, full) in enumerate(items):
        if type(res) is not dict:
            continue
        rid = res.get("id")
        if type(rid) is str and type(res.get("resourceType")) is str:
            index.setdefault(f"{res['resourceType']}/{rid}", i)
        if full:
            index.setdefault(full, i)
            if not full.startswith("urn:"):
                index.setdefault("/".join(full.split("/")[-2:]), i)
    kinds = [kind_of(r) if type(r) is dict else None for r, _p, _f in items]
    out: list[tuple[int, tuple]] = []
    out += _gbo_scores(items, kinds, index)
    out += _grouping_chain(items, kinds, index)
    out += _goal_limits(items, kinds, index)
    out += _safety_plans(items, kinds)
    return out


def _safety_plans(items, kinds):
    seen: dict[str, int] = {}
    out = []
    for i, (res, prefix, _f) in enumerate(items):
        if kinds[i] != "safety-plan" or res.get("status") != "active":
            continue
        subj = ref_key(res.get("subject"))
        if subj is None:
            continue
        if subj in seen:
            first = items[seen[subj]][0]
            out.append(
                (
                    i,
                    (
                        "error",
                        "business-rule",
                        prefix,
                        f"app-one-active-safety-plan: {subj} already has an active safety plan "
                        f"(CarePlan/{first.get('id')}); update that one instead of adding another",
                    ),
                )
            )
        else:
            seen[subj] = i
    return out


def _target(index, items, ref):
    k = ref_key(ref)
    if k is None:
        return None, None
    i = index.get(k)
    return (i, items[i][0]) if i is not None else (None, None)


def _gbo_scores(items, kinds, index):
    out = []
    for i, (res, prefix, _f) in enumerate(items):
        if kinds[i] != "gbo-score":
            continue
        focus = res.get("focus")
        if type(focus) is not list or not focus:
            continue
        _gi, goal = _target(index, items, focus[0])
        if goal is None or goal.get("resourceType") != "Goal":
            continue
        gcodes = set()
        for t in _items(goal.get("target")):
            if type(t) is dict:
                gcodes |= _codes(t.get("measure"), c.SNOMED)
        scodes = _codes(res.get("code"), c.SNOMED)
        if gcodes and not (gcodes & scodes):
            out.append(
                (
                    i,
                    (
                        "error",
                        "business-rule",
                        f"{prefix}.code",
                        f"app-gbo-code-mismatch: score code {sorted(cd for _s, cd in scodes)} differs from its "
                        f"Goal's target measure {sorted(cd for _s, cd in gcodes)}",
                    ),
                )
            )
        if ref_key(res.get("subject")) != ref_key(goal.get("subject")):
            out.append(
                (
                    i,
                    (
                        "error",
                        "business-rule",
                        f"{prefix}.subject",
                        "app-gbo-subject-mismatch: the score's subject differs from its Goal's subject",
                    ),
                )
            )
        eff, start = instant_range(res.get("effectiveDateTime")), instant_range(goal.get("startDate"))
        if eff and start and eff[1] < start[0]:
            out.append(
                (
                    i,
                    (
                        "error",
                        "business-rule",
                        f"{prefix}.effectiveDateTime",
                        f"app-score-before-goal: score date {res.get('effectiveDateTime')} is before the Goal's "
                        f"startDate {goal.get('startDate')}",
                    ),
                )
            )
    return out


def _grouping_chain(items, kinds, index):
    out = []
    for i, (res, prefix, _f) in enumerate(items):
        if kinds[i] != "grouping":
            continue
        dfs = res.get("derivedFrom")
        if type(dfs) is not list or not dfs:
            continue
        pi, prev = _target(index, items, dfs[0])
        if prev is None:
            continue
        where = f"{prefix}.derivedFrom[0]"
        if kinds[pi] != "grouping":
            out.append(
                (
                    i,
                    (
                        "error",
                        "business-rule",
                        where,
                        "app-derivedfrom-mismatch: derivedFrom must point to the previous grouping Observation",
                    ),
                )
            )
            continue
        if ref_key(res.get("subject")) != ref_key(prev.get("subject")):
            out.append(
                (
                    i,
                    (
                        "error",
                        "business-rule",
                        where,
                        "app-derivedfrom-mismatch: the previous grouping is about a different young person",
                    ),
                )
            )
        a, b = instant_range(prev.get("effectiveDateTime")), instant_range(res.get("effectiveDateTime"))
        if a and b and a[0] >= b[1]:
            out.append(
                (
                    i,
                    (
                        "error",
                        "business-rule",
                        where,
                        f"app-derivedfrom-mismatch: the previous grouping ({prev.get('effectiveDateTime')}) is not "
                        f"earlier than this one ({res.get('effectiveDateTime')})",
                    ),
                )
            )
        g_now, g_prev = _grouping_code(res), _grouping_code(prev)
        if g_now and g_prev and g_now != g_prev and not _components(res, "grouping-change-reason"):
            out.append(
                (
                    i,
                    (
                        "error",
                        "business-rule",
                        f"{prefix}.component",
                        f"app-change-reason-required: the grouping changed from {g_prev} to {g_now}, so a "
                        "grouping-change-reason component is required",
                    ),
                )
            )
    return out


def _goal_limits(items, kinds, index):
    goal_idx = [i for i, k in enumerate(kinds) if k == "gbo-goal"]
    if not goal_idx:
        return []
    episode: dict[int, str] = {}
    # the support plan links goals to the episode (Goal may not carry the episode extension)
    for res, _p, _f in items:
        if type(res) is dict and res.get("resourceType") == "CarePlan":
            ep = episode_of(res)
            if ep:
                for g in _items(res.get("goal")):
                    gi, _ = _target(index, items, g)
                    if gi is not None:
                        episode.setdefault(gi, ep)
    for i, k in enumerate(kinds):
        if k == "gbo-score":
            res = items[i][0]
            ep = episode_of(res)
            focus = res.get("focus")
            if ep and type(focus) is list and focus:
                gi, _ = _target(index, items, focus[0])
                if gi is not None:
                    episode.setdefault(gi, ep)
    groups: dict[tuple, list[int]] = {}
    for i in goal_idx:
        goal = items[i][0]
        groups.setdefault((ref_key(goal.get("subject")), episode.get(i)), []).append(i)
    out = []
    for (_subj, ep), members in groups.items():
        members.sort(key=lambda i: (str(items[i][0].get("startDate", "")), str(items[i][0].get("id", ""))))
        active = [i for i in members if _text(items[i][0].get("lifecycleStatus")) in ACTIVE_GOAL]
        where = "in this episode" if ep else "(episode not known from this batch)"
        for n, i in enumerate(active[3:], start=4):
            out.append(
                (
                    i,
                    (
                        "error",
                        "business-rule",
                        items[i][1],
                        f"app-max-active-goals: this is goal number {n} open for the young person {where}; "
                        "at most three GBO goals may be open at once",
                    ),
                )
            )
        slots: dict[str, str] = {}
        for i in members:
            goal = items[i][0]
            gid = str(goal.get("id") or i)
            for ti, t in enumerate(_items(goal.get("target"))):
                if type(t) is not dict:
                    continue
                for _s, code in _codes(t.get("measure"), c.SNOMED):
                    other = slots.get(code)
                    if other is not None and other != gid:
                        out.append(
                            (
                                i,
                                (
                                    "error",
                                    "business-rule",
                                    f"{items[i][1]}.target[{ti}].measure",
                                    f"app-slot-reused: goal slot code {code} is already used by Goal/{other} "
                                    f"{where}; each goal needs its own slot",
                                ),
                            )
                        )
                    else:
                        slots[code] = gid
    return out


_SLIM_KEYS = (
    "resourceType",
    "id",
    "meta",
    "subject",
    "code",
    "focus",
    "effectiveDateTime",
    "derivedFrom",
    "valueCodeableConcept",
    "category",
    "lifecycleStatus",
    "startDate",
    "target",
    "goal",
    "status",
)


def slim(res) -> dict | None:
    """The parts of a resource the cross-resource rules read, or None if it takes no part.

    Lets the CLI stream a large NDJSON file yet still check cross-resource rules across it,
    holding a few hundred bytes per relevant resource instead of whole resources.
    """
    if type(res) is not dict:
        return None
    rt = res.get("resourceType")
    kind = kind_of(res)
    if kind not in ("grouping", "gbo-score", "gbo-goal", "safety-plan") and not (rt == "CarePlan" and res.get("goal")):
        return None
    out = {k: res[k] for k in _SLIM_KEYS if k in res}
    ep = episode_of(res)
    if ep:
        out["extension"] = [{"url": c.EXT_EPISODE, "valueReference": {"reference": ep}}]
    comps = [{"code": comp.get("code")} for comp in _items(res.get("component")) if type(comp) is dict]
    if comps:
        out["component"] = comps
    return out
