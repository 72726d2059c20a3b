"""The ground-truth figures added for reporting (involvement, risk support) are counted right.

Recounted here directly from the written NDJSON in the plainest possible way.
"""

from __future__ import annotations

import json
from collections import Counter


def _read(folder, name):
    path = folder / f"{name}.ndjson"
    return [json.loads(line) for line in path.read_text().splitlines()] if path.exists() else []


def test_involvement_and_risk_support_recount(population):
    folder, truth = population(160, 7)
    as_of = truth["in_date"]["as_of"]
    groupings = [o for o in _read(folder, "Observation") if o["code"]["coding"][0]["code"] == "thrive-grouping"]
    inv = {"young-person": Counter(), "family": Counter()}
    for o in groupings:
        comps = {
            c["code"]["coding"][0]["code"]: c.get("valueCodeableConcept", {}).get("coding", [{}])[0].get("code")
            for c in o["component"]
        }
        inv["young-person"][comps.get("young-person-involvement", "not-recorded")] += 1
        inv["family"][comps.get("family-involvement", "not-recorded")] += 1
    assert truth["involvement"] == {k: dict(v) for k, v in inv.items()}

    latest = {}
    for o in groupings:
        ep = o["extension"][0]["valueReference"]["reference"]
        if ep not in latest or o["effectiveDateTime"] > latest[ep]["effectiveDateTime"]:
            latest[ep] = o
    grs_patients = [
        o["subject"]["reference"]
        for o in latest.values()
        if o["valueCodeableConcept"]["coding"][0]["code"] == "getting-risk-support"
    ]
    plans = [
        p
        for p in _read(folder, "CarePlan")
        if p["status"] == "active" and p["period"]["start"][:10] <= as_of <= p["period"]["end"][:10]
    ]
    shared = {
        d["reference"]["reference"]
        for c in _read(folder, "Consent")
        if c["status"] == "active"
        and c["provision"]["type"] == "permit"
        and c["provision"]["period"]["start"] <= as_of <= c["provision"]["period"]["end"]
        for d in c["provision"].get("data", [])
    }
    with_plan = [p for p in grs_patients if any(pl["subject"]["reference"] == p for pl in plans)]
    with_shared = [
        p
        for p in grs_patients
        if any(pl["subject"]["reference"] == p and f"CarePlan/{pl['id']}" in shared for pl in plans)
    ]
    assert truth["risk_support"] == {
        "in_risk_support": len(grs_patients),
        "with_in_date_plan": len(with_plan),
        "with_shared_in_date_plan": len(with_shared),
    }
    assert truth["risk_support"]["in_risk_support"] > 0
