"""Fixtures for the journey tests: an app with the journeys on, a clinician launch, and helpers to
post forms and look at what reached the local store (resources, outbox rows, validity)."""

from __future__ import annotations

import json
import re
import uuid
from html import unescape

import pytest
from sqlalchemy import func, select

from smart_app import create_app
from tests.support.app import TEST_ORIGIN, make_launch, test_config


@pytest.fixture(scope="session")
def validator():
    from thrive_fhir.validation import Validator

    return Validator.default()


class Journey:
    """A clinician's session in the app, plus a window onto the local store."""

    def __init__(self, app, launch, validator):
        self.app = app
        self.launch = launch
        self.client = launch.client()
        self.validator = validator
        self.store = app.extensions["thrive"].local_store
        self.patient_ref = f"Patient/{launch.patient_id}"

    def get(self, path: str):
        return self.client.get(self.launch.url(path), base_url=TEST_ORIGIN)

    def post(self, path: str, data):
        """POST a form (dict, or list of pairs for repeated fields) with the launch's CSRF token."""
        from werkzeug.datastructures import MultiDict

        pairs = list(data.items()) if isinstance(data, dict) else list(data)
        form = MultiDict([*pairs, ("csrf_token", self.launch.csrf_token)])
        return self.client.post(self.launch.url(path), data=form, headers={"Origin": TEST_ORIGIN}, base_url=TEST_ORIGIN)

    def resources(self, rtype: str | None = None) -> list[dict]:
        return self.store.for_patient(self.patient_ref, rtype)

    def outbox_count(self) -> int:
        from thrive_fhir.localstore import models as m

        with self.store.engine.connect() as conn:
            return conn.execute(
                select(func.count()).select_from(m.outbox).where(m.outbox.c.patient_key == self.patient_ref)
            ).scalar()

    def assert_valid(self, resource: dict) -> None:
        oo = self.validator.validate(resource)
        problems = [i for i in oo.get("issue", []) if i.get("severity") in ("error", "fatal")]
        assert not problems, json.dumps(problems, indent=1)[:3000]

    def assert_all_valid(self) -> int:
        """Every resource in the local store for this patient validates; returns how many."""
        everything = self.resources()
        for r in everything:
            self.assert_valid(r)
        return len(everything)


@pytest.fixture(scope="module")
def japp(tmp_path_factory):
    """One app per test module (creating one runs the migrations); each test gets its own patient."""
    return create_app(test_config(tmp_path_factory.mktemp("journeys")))


@pytest.fixture
def journey(japp, validator):
    return Journey(japp, make_launch(japp, patient_id=f"pat-{uuid.uuid4().hex[:12]}"), validator)


@pytest.fixture
def read_only_journey(japp, validator):
    from tests.support.app import READ_ONLY_SCOPES

    pid = f"pat-{uuid.uuid4().hex[:12]}"
    return Journey(japp, make_launch(japp, patient_id=pid, scopes=READ_ONLY_SCOPES), validator)


def token() -> str:
    return str(uuid.uuid4())


def text_of(resp) -> str:
    """The page as plain text (tags dropped), for assertions about what a person reads."""
    return re.sub(r"\s+", " ", unescape(re.sub(r"<[^>]+>", " ", resp.get_data(as_text=True))))


def error_links(resp) -> list[str]:
    """Targets of the error summary's links, in order."""
    html = resp.get_data(as_text=True)
    summary = html.split('class="nhsuk-error-summary"', 1)
    if len(summary) < 2:
        return []
    block = summary[1].split("</ul>", 1)[0]
    return re.findall(r'href="#([^"]+)"', block)


def grouping_form(**overrides) -> list[tuple[str, str]]:
    """A complete, valid grouping form (young person and parent took part and agreed)."""
    base = {
        "token": token(),
        "previous_id": "",
        "yp_words": "I want to go back to school without feeling sick every morning",
        "needs": "Anxiety about school; sleep",
        "options": "Online support; school nurse; CBT with the MHST",
        "grouping": "getting-help",
        "yp_involvement": "agreed",
        "family_involvement": "agreed",
    }
    participants = overrides.pop("participants", ["young-person", "parent-carer", "clinician"])
    agencies = overrides.pop("agencies", [])
    base.update(overrides)
    form = [(k, v) for k, v in base.items() if v is not None]
    form += [("participants", p) for p in participants] + [("agencies", a) for a in agencies]
    return form


def safety_plan_form(version: int = 0, **overrides) -> dict:
    from datetime import date, timedelta

    review = date.today() + timedelta(days=90)
    form = {
        "token": token(),
        "version": str(version),
        "contributors": "young-person",
        "warning-signs-0-text": "Staying in my room, not answering messages",
        "warning-signs-0-holder": "young-person",
        "internal-coping-0-text": "Music with headphones, drawing",
        "internal-coping-0-holder": "young-person",
        "professionals-agencies-0-text": "24-hour line",
        "professionals-agencies-0-holder": "service:crisis-line",
        "reasons-for-living-0-text": "My dog",
        "reasons-for-living-0-holder": "",
        "review-day": str(review.day),
        "review-month": str(review.month),
        "review-year": str(review.year),
    }
    form.update(overrides)
    return {k: v for k, v in form.items() if v is not None}


def sharing_form(agencies, version: int = 0, **overrides) -> list[tuple[str, str]]:
    """A complete sharing agreement: the young person, competent to decide, agrees until 6 months on."""
    from datetime import date, timedelta

    end = date.today() + timedelta(days=180)
    form = {
        "token": token(),
        "version": str(version),
        "confirmed": "yes",
        "given_by": "young-person",
        "competence": "competent",
        "end-day": str(end.day),
        "end-month": str(end.month),
        "end-year": str(end.year),
    }
    form.update(overrides)
    return [(k, v) for k, v in form.items() if v is not None] + [("agencies", a) for a in agencies]
