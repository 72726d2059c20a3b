"""Property: for random sharing Consents, a subscription created with an agency token is given
events only about young people shared with that agency now, and every event about one who is; a
custodian's subscription is given every event. Real SQLite database, the real write path (Consents
indexed by writes.apply, events recorded in the write's transaction) and the real planner.

The oracle is written independently of thrive_fhir.consent_rule, in day offsets (as
test_consent_property.py): shared today when active, naming the organisation, started on or before
today and ending on or after today.
"""

from __future__ import annotations

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import text

from tests.support.consent_data import AGENCY_SCOPES, CUSTODIAN, ORG_A, ORG_B, WORKER_A, consent, day, task
from thrive_fhir.store.consent_gate import ConsentGate
from thrive_fhir.store.fhirdates import utcnow
from thrive_fhir.store.schema import create_schema, make_engine
from thrive_fhir.store.subscriptions import events
from thrive_fhir.store.writes import WriteOp, apply

PATIENTS = ["yp-1", "yp-2", "yp-3"]
one_consent = st.fixed_dictionaries(
    {
        "org": st.sampled_from([ORG_A, ORG_B]),
        "status": st.sampled_from(["active", "active", "inactive"]),
        "start": st.sampled_from([None, -2, 2]),
        "end": st.sampled_from([None, -1, 0, 2]),
    }
)


def shared_today(c: dict) -> bool:
    return c["status"] == "active" and (c["start"] is None or c["start"] <= 0) and (c["end"] is None or c["end"] >= 0)


def test_planned_events_follow_the_consent_rule(tmp_path):
    engine = make_engine(f"sqlite:///{tmp_path / 'prop.db'}")
    create_schema(engine)
    writer = engine.execution_options(write=True, subscription_events=True)
    gate = ConsentGate(engine, [CUSTODIAN])

    @settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
    @given(st.lists(st.lists(one_consent, max_size=2), min_size=len(PATIENTS), max_size=len(PATIENTS)))
    def check(consents_per_patient):
        with engine.begin() as conn:
            for table in (
                "resource_versions",
                "search_index",
                "consent_shares",
                "subscriptions",
                "subscription_events",
                "subscription_deliveries",
            ):
                conn.execute(text(f"DELETE FROM {table}"))
            for sid, client, org, user, scopes in (
                ("agency", "thrive-app", ORG_A, WORKER_A, AGENCY_SCOPES),
                ("trust", "trust-app", CUSTODIAN, None, "system/*.cruds"),
            ):
                conn.execute(
                    text(
                        "INSERT INTO subscriptions (id, owner_client, owner_org, owner_user, owner_scopes, endpoint, "
                        "headers, content, filters, status, events_total, delivered_through, failures, base, created) "
                        "VALUES (:i, :c, :o, :u, :s, 'http://x/', '[]', 'id-only', '[]', 'active', 0, 0, 0, 'http://s', :t)"
                    ),
                    {"i": sid, "c": client, "o": org, "u": user, "s": scopes, "t": utcnow()},
                )
        with writer.begin() as conn:
            ops = []
            for pid, consents in zip(PATIENTS, consents_per_patient, strict=True):
                for n, c in enumerate(consents):
                    resource = consent(
                        f"c-{pid}-{n}",
                        pid,
                        [c["org"]],
                        status=c["status"],
                        start=None if c["start"] is None else day(c["start"]),
                        end=None if c["end"] is None else day(c["end"]),
                    )
                    ops.append(WriteOp("PUT", "Consent", resource["id"], resource))
                ops.append(WriteOp("PUT", "Task", f"t-{pid}", task(f"t-{pid}", pid, ORG_A)))
            apply(conn, ops, utcnow(), "http://s")
        with writer.begin() as conn:
            while events.plan(conn, gate, postgres=False) >= events.PLAN_BATCH:
                pass
        with engine.connect() as conn:
            got = conn.execute(
                text("SELECT sub_id, res_type, res_id, patient_key, number FROM subscription_deliveries")
            ).all()
        shared = {
            pid
            for pid, consents in zip(PATIENTS, consents_per_patient, strict=True)
            if any(c["org"] == ORG_A and shared_today(c) for c in consents)
        }
        agency = [r for r in got if r.sub_id == "agency"]
        assert {r.patient_key for r in agency} <= shared  # never an unshared young person
        assert {r.res_id for r in agency if r.res_type == "Task"} == {f"t-{pid}" for pid in shared}
        assert sorted(r.number for r in agency) == list(range(1, len(agency) + 1))
        trust = [r for r in got if r.sub_id == "trust"]
        assert len(trust) == len(ops)  # the custodian sees every young person it holds
        assert sorted(r.number for r in trust) == list(range(1, len(ops) + 1))

    check()
    engine.dispose()
