"""LocalStore: saves, optimistic locking, one outbox row in the caller's transaction, migrations."""

from __future__ import annotations

import json

import pytest
from sqlalchemy import func, inspect, select, text

from tests.support.sync_synthetic import AUTHOR, ORG, goal, score
from thrive_fhir.ids import new_local_id, resource_id
from thrive_fhir.localstore import ChangeSet, LocalStore, StaleVersion
from thrive_fhir.localstore import models as m

PID = "1c8f0a52-6a7e-4d0c-9a4e-0d6c2b7d5e11"
PKEY = f"Patient/{PID}"


def _cs(activity="create"):
    return ChangeSet(patient_key=PKEY, author_ref=AUTHOR, organization_ref=ORG, activity=activity)


def _count(store, table):
    with store.engine.connect() as c:
        return c.execute(select(func.count()).select_from(table)).scalar()


def test_record_writes_versions_provenance_and_one_outbox_row(local_store):
    g = goal(new_local_id(), PID, "Go to school three days a week")
    obs = score(PID, 4, g["id"])
    with local_store.session() as s:
        written = local_store.record(s, _cs().put(g, expected_local_version=0).put(obs))
    assert [(w.resource_type, w.version) for w in written] == [("Goal", 1), ("Observation", 1), ("Provenance", 1)]
    uid = written[0].outbox_uid
    prov = written[-1].resource
    assert prov["id"] == resource_id("provenance", uid)
    assert {t["reference"] for t in prov["target"]} == {f"Goal/{g['id']}", f"Observation/{obs['id']}"}
    assert prov["agent"][0]["who"]["reference"] == AUTHOR and prov["agent"][0]["onBehalfOf"]["reference"] == ORG
    assert _count(local_store, m.outbox) == 1
    with local_store.engine.connect() as c:
        row = c.execute(select(m.outbox)).one()
    assert row.status == "pending" and row.uid == uid and row.patient_key == PKEY
    assert json.loads(row.entries) == [
        ["Goal", g["id"], 1],
        ["Observation", obs["id"], 1],
        ["Provenance", prov["id"], 1],
    ]
    assert local_store.current("Goal", g["id"]) == g
    assert local_store.current_version("Goal", g["id"]) == 1


def test_update_makes_new_version_and_history(local_store):
    g = goal(new_local_id(), PID, "First wording")
    with local_store.session() as s:
        local_store.record(s, _cs().put(g, expected_local_version=0))
    g2 = dict(g, description={"text": "Second wording"})
    with local_store.session() as s:
        (w, _prov) = local_store.record(s, _cs("update").put(g2, expected_local_version=1))
    assert w.version == 2
    hist = local_store.history("Goal", g["id"])
    assert [h["version"] for h in hist] == [1, 2]
    assert hist[0]["resource"]["description"]["text"] == "First wording"
    assert local_store.current("Goal", g["id"])["description"]["text"] == "Second wording"
    assert [r["id"] for r in local_store.for_patient(PKEY, type="Goal")] == [g["id"]]
    assert {r["resourceType"] for r in local_store.for_patient(PKEY)} == {"Goal", "Provenance"}
    assert _count(local_store, m.outbox) == 2


def test_stale_version_raises_with_current_and_writes_nothing(local_store):
    g = goal(new_local_id(), PID, "Mine")
    with local_store.session() as s:
        local_store.record(s, _cs().put(g, expected_local_version=0))
    with local_store.session() as s:
        local_store.record(s, _cs("update").put(dict(g, description={"text": "Theirs"}), expected_local_version=1))
    with pytest.raises(StaleVersion) as err:
        with local_store.session() as s:
            local_store.record(
                s, _cs("update").put(dict(g, description={"text": "Late edit"}), expected_local_version=1)
            )
    assert err.value.current_version == 2
    assert err.value.current_resource["description"]["text"] == "Theirs"
    assert _count(local_store, m.outbox) == 2
    assert local_store.current_version("Goal", g["id"]) == 2
    with pytest.raises(StaleVersion) as err:
        with local_store.session() as s:
            local_store.record(s, _cs().put(g, expected_local_version=0))
    assert err.value.current_version == 2


def test_caller_failure_rolls_back_save_and_outbox_together(local_store):
    g = goal(new_local_id(), PID, "Never saved")
    with pytest.raises(RuntimeError):
        with local_store.session() as s:
            local_store.record(s, _cs().put(g))
            s.execute(text("SELECT 1"))
            raise RuntimeError("the form's own write failed")
    assert local_store.current("Goal", g["id"]) is None
    assert _count(local_store, m.outbox) == 0
    assert _count(local_store, m.local_resource_version) == 0


def test_bad_change_sets_are_refused(local_store):
    with pytest.raises(ValueError):
        _cs().put({"resourceType": "Goal"})
    g = goal(new_local_id(), PID, "x")
    with pytest.raises(ValueError):
        _cs().put(g).put(g)
    with pytest.raises(ValueError):
        with local_store.session() as s:
            local_store.record(s, _cs())
    with pytest.raises(ValueError):
        with local_store.session() as s:
            local_store.record(s, ChangeSet(patient_key="123", author_ref=AUTHOR, organization_ref=ORG).put(g))


def test_migrate_is_idempotent_and_matches_models(db_url):
    store = LocalStore(db_url)
    store.migrate()
    store.migrate()
    insp = inspect(store.engine)
    for table in m.metadata.sorted_tables:
        assert {c["name"] for c in insp.get_columns(table.name)} == {c.name for c in table.columns}, table.name
        assert {i["name"] for i in insp.get_indexes(table.name)} >= {i.name for i in table.indexes}, table.name
    assert "thrive_localstore_version" in insp.get_table_names()
    store.dispose()


# --- Provenance: the profiled builder's, for every kind of save -------------------------------------
def _validator():
    from thrive_fhir.validation.validator import Validator

    return Validator.default()


def test_every_provenance_the_store_writes_is_valid_thrive_provenance(local_store):
    v = _validator()
    g = goal(new_local_id(), PID, "Feel calmer at school")
    audit = {
        "resourceType": "AuditEvent",
        "id": "0c5a3b1e-8f2d-4c6a-9e7b-1d3f5a7c9e20",
        "recorded": "2025-01-15T10:00:00Z",
        "type": {"system": "http://terminology.hl7.org/CodeSystem/audit-event-type", "code": "rest"},
        "agent": [{"requestor": True, "who": {"reference": AUTHOR}}],
        "source": {"observer": {"display": "app"}},
    }
    saves = [
        _cs().put(g, expected_local_version=0).put(score(PID, 3, g["id"])),
        ChangeSet(
            patient_key=PKEY,
            author_ref="Practitioner/pr-1",
            organization_ref=ORG,
            activity="update",
            informants=(PKEY, "RelatedPerson/rp-1"),
        ).put(dict(g, description={"text": "Calmer"}), expected_local_version=1),
        ChangeSet(patient_key=PKEY, author_ref=AUTHOR, organization_ref=ORG, reason="Agency read").put(audit),
    ]
    provs = []
    for cs in saves:
        with local_store.session() as s:
            provs.append(local_store.record(s, cs)[-1])
    for p in provs:
        prov = p.resource
        assert v.is_valid(prov), v.validate(prov)
        assert prov["id"] == resource_id("provenance", p.outbox_uid)  # the id the worker searches for
        assert [a["type"]["coding"][0]["code"] for a in prov["agent"]][:2] == ["author", "assembler"]
    first, update, audited = (p.resource for p in provs)
    assert first["activity"]["coding"][0]["code"] == "CREATE" and update["activity"]["coding"][0]["code"] == "UPDATE"
    # the local record behind each written resource, with the version the save wrote
    assert [e["what"]["identifier"]["value"] for e in first["entity"]] == [
        g["identifier"][0]["value"],
        saves[0].items[1][0]["identifier"][0]["value"],
    ]
    assert update["entity"][0]["what"]["display"].endswith("version 2")
    assert [a["who"]["reference"] for a in update["agent"][2:]] == [PKEY, "RelatedPerson/rp-1"]
    assert "entity" not in audited  # an AuditEvent has no local business identifier


def test_save_with_author_the_profile_refuses_writes_nothing(local_store):
    g = goal(new_local_id(), PID, "Never saved")
    for author, org in (("Organization/o-1", ORG), (AUTHOR, ""), ("not a reference", ORG)):
        with pytest.raises(ValueError):
            with local_store.session() as s:
                local_store.record(s, ChangeSet(patient_key=PKEY, author_ref=author, organization_ref=org).put(g))
    assert _count(local_store, m.outbox) == 0 and local_store.current("Goal", g["id"]) is None


# --- reads: history with authors, current resources with versions ---------------------------------
def test_history_names_each_versions_author_and_time(local_store):
    g = goal(new_local_id(), PID, "v1")
    with local_store.session() as s:
        local_store.record(s, _cs().put(g, expected_local_version=0))
    with local_store.session() as s:
        local_store.record(
            s,
            ChangeSet(patient_key=PKEY, author_ref="Practitioner/pr-2", organization_ref=ORG, activity="update").put(
                dict(g, description={"text": "v2"}), expected_local_version=1
            ),
        )
    hist = local_store.history("Goal", g["id"])
    assert [(h["version"], h["author_ref"], h["resource"]["description"]["text"]) for h in hist] == [
        (1, AUTHOR, "v1"),
        (2, "Practitioner/pr-2", "v2"),
    ]
    assert hist[0]["saved_at"] <= hist[1]["saved_at"] and all(h["organization_ref"] == ORG for h in hist)
    assert local_store.history("Goal", "no-such-goal") == []


def test_for_patient_versioned_pairs_each_resource_with_its_version(local_store):
    g = goal(new_local_id(), PID, "v1")
    obs = score(PID, 5, g["id"])
    with local_store.session() as s:
        local_store.record(s, _cs().put(g, expected_local_version=0).put(obs))
    with local_store.session() as s:
        local_store.record(s, _cs("update").put(dict(g, description={"text": "v2"}), expected_local_version=1))
    rows = local_store.for_patient_versioned(PKEY)
    by_ref = {f"{r.resource_type}/{r.resource_id}": r for r in rows}
    assert by_ref[f"Goal/{g['id']}"].version == 2 and by_ref[f"Goal/{g['id']}"].resource["description"]["text"] == "v2"
    assert by_ref[f"Observation/{obs['id']}"].version == 1
    assert [r.resource_type for r in rows] == sorted(r.resource_type for r in rows)
    assert [r.resource_id for r in local_store.for_patient_versioned(PKEY, type="Goal")] == [g["id"]]
    assert local_store.for_patient_versioned("Patient/nobody") == []
