"""Reading Subscription notification Bundles (thrive_fhir.client.notifications): the R4 backport
shape of the wire contract, other servers' variants, and bad input refused with a reason."""

from __future__ import annotations

import copy

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tests.support.notifications import notification, r4b_notification
from thrive_fhir import canonical
from thrive_fhir.client.notifications import EVENT, HANDSHAKE, NotificationError, parse, relative_ref


def test_an_event_notification_gives_numbers_times_focus_and_patient():
    note = parse(
        notification(
            "sub-1",
            events=[(4, "Task/t1", "Patient/p1"), (5, "Observation/o1", "Patient/p2")],
            since_start=5,
            base="https://store.example/fhir",
        )
    )
    assert note.type == EVENT and note.subscription == "sub-1" and note.status == "active"
    assert note.topic == canonical.TOPIC_SHARED_PLAN_CHANGED and note.events_since_start == 5
    assert [(e.number, e.focus, e.patient) for e in note.events] == [
        (4, "Task/t1", "Patient/p1"),
        (5, "Observation/o1", "Patient/p2"),
    ]
    assert all(e.timestamp and e.timestamp.endswith("Z") for e in note.events)


def test_handshake_and_r4b_subscription_status_variant():
    assert parse(notification("s", HANDSHAKE, since_start=0)).events == ()
    note = parse(r4b_notification("s2", EVENT, events=[(7, "Goal/g", "Patient/p")], since_start=7))
    assert note.subscription == "s2" and note.events_since_start == 7 and note.events[0].patient == "Patient/p"
    r5 = r4b_notification("s3", EVENT, events=[(1, "Patient/p9", None)])
    r5["type"] = "subscription-notification"
    assert parse(r5).events[0].patient == "Patient/p9"  # a focus that is the Patient names them


def test_primitives_with_extensions_absolute_refs_and_integer_counters_are_understood():
    b = notification("sub-1", events=[(2, "Task/t1", "Patient/p1")], since_start=2)
    params = b["entry"][0]["resource"]["parameter"]
    counter = next(p for p in params if p["name"] == "events-since-subscription-start")
    counter.pop("valueString")
    counter["_valueString"] = {"extension": [{"url": "http://example.org/x", "valueCode": "unknown"}]}
    event = next(p for p in params if p["name"] == "notification-event")
    number = next(p for p in event["part"] if p["name"] == "event-number")
    number.pop("valueString")
    number["valueInteger"] = 2
    focus = next(p for p in event["part"] if p["name"] == "focus")
    focus["valueReference"]["reference"] = "https://other.example/fhir/Task/t1/_history/3"
    note = parse(b)
    assert note.events_since_start is None and note.events[0].number == 2 and note.events[0].focus == "Task/t1"


def test_a_full_resource_entry_names_the_patient_when_the_context_does_not():
    b = notification("s", events=[(1, "Task/t1", None)])
    b["entry"][1]["resource"] = {"resourceType": "Task", "id": "t1", "for": {"reference": "Patient/p5"}}
    assert parse(b).events[0].patient == "Patient/p5"
    assert parse(notification("s", events=[(1, "Task/t1", None)])).events[0].patient is None


@pytest.mark.parametrize(
    "mutate",
    [
        lambda b: b.update(resourceType="Parameters"),
        lambda b: b.update(type="transaction"),
        lambda b: b.update(entry="nope"),
        lambda b: b.update(entry=[]),
        lambda b: b["entry"][0].update(resource={"resourceType": "Patient"}),
        lambda b: b["entry"][0]["resource"].update(parameter={"name": "type"}),
        lambda b: [
            p.update(valueCode="sometimes") for p in b["entry"][0]["resource"]["parameter"] if p["name"] == "type"
        ],
        lambda b: [
            q.update(valueString="-3")
            for p in b["entry"][0]["resource"]["parameter"]
            if p["name"] == "notification-event"
            for q in p["part"]
            if q["name"] == "event-number"
        ],
        lambda b: [
            q.update(valueString="twelve")
            for p in b["entry"][0]["resource"]["parameter"]
            if p["name"] == "notification-event"
            for q in p["part"]
            if q["name"] == "event-number"
        ],
    ],
)
def test_what_is_not_a_notification_is_refused_with_a_reason(mutate):
    b = notification("s", events=[(1, "Task/t1", "Patient/p1")], since_start=1)
    mutate(b)
    with pytest.raises(NotificationError):
        parse(b)


def test_relative_ref():
    assert relative_ref("Task/a") == "Task/a"
    assert relative_ref("http://x/fhir/Patient/p-1/_history/2") == "Patient/p-1"
    assert relative_ref("not a ref") is None and relative_ref(None) is None and relative_ref("Task/../x") is None


_json = st.recursive(
    st.none() | st.booleans() | st.integers() | st.text(max_size=8),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=12), inner, max_size=4),
    max_leaves=20,
)


@settings(max_examples=200, deadline=None)
@given(_json, st.integers(0, 3))
def test_any_json_is_a_notification_or_a_notification_error(junk, where):
    b = notification("s", events=[(1, "Task/t1", "Patient/p1")], since_start=1)
    target = copy.deepcopy(b)
    if where == 0:
        target = junk
    elif where == 1:
        target["entry"][0]["resource"]["parameter"][-1] = junk
    elif where == 2:
        target["entry"][0]["resource"]["parameter"][-1]["part"] = junk
    else:
        target["entry"] = [junk]
    try:
        parse(target)
    except NotificationError:
        pass


def test_a_part_named_by_a_list_is_refused_not_a_type_error():
    b = notification("s", events=[(1, "Task/t1", "Patient/p1")])
    event = b["entry"][0]["resource"]["parameter"][-1]
    event["part"].append({"name": ["focus"], "valueString": "x"})
    assert parse(b).events[0].focus == "Task/t1"


def test_status_and_events_answers_are_read_too():
    """``$status`` answers a searchset holding the status; ``$events`` a history Bundle of type query-event."""
    status = notification("s9", "query-status", since_start=12, bundle_type="searchset")
    status["entry"].insert(0, {"resource": {"resourceType": "OperationOutcome"}, "search": {"mode": "outcome"}})
    note = parse(status)
    assert note.type == "query-status" and note.events_since_start == 12 and note.subscription == "s9"
    events = parse(notification("s9", "query-event", events=[(11, "Task/t", "Patient/p"), (12, "Goal/g", "Patient/q")]))
    assert events.numbers == [11, 12]
