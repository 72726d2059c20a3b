"""Test helpers: a launch context without OAuth, for journey and page tests.

    from smart_app import create_app
    from smart_app.testing import make_launch, test_config

    app = create_app(test_config(tmp_path))
    launch = make_launch(app, patient_id="pat-1", user_ref="Practitioner/pr-1")
    client = launch.client()                     # Flask test client with the binding cookie
    client.get(launch.url("goals/"))            # -> /l/<launch_id>/goals/
    launch.post(client, "goals/", data={...})   # adds the CSRF token (and a same-origin Origin)

A launch made here has no EHR tokens unless ``access_token`` is given, so ``ehr_client`` calls fail
with EhrSessionEnded; pass ``ehr_base`` + ``access_token`` to point it at a real (sandbox) EHR.
"""

from __future__ import annotations

import json
import re
import secrets
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from thrive_fhir.client.smart_scopes import requested_scopes

from .context import COOKIE_NAME
from .sessions import new_binding

#: Scopes of a normal clinician launch (every write granted).
FULL_SCOPES = requested_scopes("ehr", "v2")
#: Scopes of a launch where the EHR granted only reads (read-only mode).
READ_ONLY_SCOPES = "launch openid fhirUser patient/Patient.r"
TEST_ISS = "https://ehr.test.invalid/fhir"
TEST_ORIGIN = "https://localhost"


def test_config(tmp_path: Path | str | None = None, **overrides: Any) -> dict:
    """A minimal config dict: SQLite in ``tmp_path`` (or memory-backed file), one fake EHR."""
    db = f"sqlite:///{Path(tmp_path) / 'app.db'}" if tmp_path else "sqlite:///:memory:"
    config = {
        "testing": True,
        "secret_key": secrets.token_urlsafe(32),
        "database_url": db,
        "ods_code": "RXX",
        "ehr": [
            {
                "iss": TEST_ISS,
                "client_id": "thrive-app",
                "auth_method": "public",
                "frame_ancestors": ["https://ehr-ui.test.invalid"],
            }
        ],
    }
    config.update(overrides)
    return config


test_config.__test__ = False  # a helper, not a pytest test


@dataclass
class TestLaunch:
    __test__ = False  # not a pytest test class
    app: Any
    launch_id: str
    binding: str
    csrf_token: str
    patient_id: str

    def url(self, suffix: str = "") -> str:
        """``/l/<launch_id>/<suffix>``."""
        return f"/l/{self.launch_id}/{suffix.lstrip('/')}"

    def client(self):
        """A test client (https://localhost) carrying this launch's binding cookie."""
        client = self.app.test_client()
        client.set_cookie(COOKIE_NAME, self.binding, domain="localhost", secure=True)
        return client

    def post(self, client, suffix: str, data: dict | list | None = None, **kwargs: Any):
        """POST a form under this launch with the CSRF token and a same-origin Origin header."""
        if isinstance(data, list):
            form = list(data) + [("csrf_token", self.csrf_token)]
        else:
            form = {**(data or {}), "csrf_token": self.csrf_token}
        headers = {"Origin": TEST_ORIGIN, **kwargs.pop("headers", {})}
        return client.post(self.url(suffix), data=form, headers=headers, base_url=TEST_ORIGIN, **kwargs)

    @property
    def record(self):
        return self.app.extensions["thrive"].sessions.get_launch(self.launch_id)


def make_launch(
    app,
    *,
    patient_id: str = "pat-test-1",
    scopes: str = FULL_SCOPES,
    user_ref: str | None = "Practitioner/pr-test-1",
    practitioner_role_ref: str | None = None,
    organization_ref: str | None = None,
    mode: str = "ehr",
    iss: str | None = None,
    banner: dict | None = None,
    need_patient_banner: bool = True,
    access_token: str | None = None,
    refresh_token: str | None = None,
    expires_in: int | None = None,
    token_endpoint: str | None = None,
    binding: str | None = None,
    standalone_key: str | None = None,
    encounter_id: str | None = None,
) -> TestLaunch:
    """Create a launch context directly in the session store (no OAuth, no network)."""
    state = app.extensions["thrive"]
    if iss is None:
        iss = next(iter(state.config.ehrs.values())).iss if state.config.ehrs else TEST_ISS
    if organization_ref is None:
        from thrive_fhir import canonical, ids

        organization_ref = f"Organization/{ids.deterministic_id(canonical.ODS_ORG, state.config.ods_code)}"
    binding = binding or new_binding()
    launch_id = state.sessions.create_launch(
        binding,
        mode=mode,
        iss=iss,
        max_hours=state.config.session_max_hours,
        access_token=access_token,
        refresh_token=refresh_token,
        expires_in=expires_in,
        banner=banner
        or {
            "name": "TESTER, Sam",
            "nhs_number": "9990000018",
            "nhs_number_display": "999 000 0018",
            "birth_date": "2010-05-01",
            "gender": "other",
        },
        patient_id=patient_id,
        encounter_id=encounter_id,
        user_ref=user_ref,
        practitioner_role_ref=practitioner_role_ref,
        organization_ref=organization_ref,
        scopes=scopes,
        need_patient_banner=need_patient_banner,
        token_endpoint=token_endpoint,
        standalone_key=standalone_key,
    )
    record = state.sessions.get_launch(launch_id)
    return TestLaunch(app, launch_id, binding, record.csrf_token, patient_id)


# --- browser test helpers (Playwright + axe-core); imported lazily by tests only ---------------
REPO = Path(__file__).resolve().parents[1]
AXE_JS = REPO / "node_modules" / "axe-core" / "axe.min.js"
SCREENSHOTS = REPO / "test-artifacts" / "screenshots"
CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]


def screenshot(page, name: str) -> Path:
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    path = SCREENSHOTS / f"{re.sub(r'[^A-Za-z0-9_-]+', '-', name)}.png"
    page.screenshot(path=str(path), full_page=True)
    return path


_AXE_SOURCE: list[str] = []


def axe_check(target, *, name: str = "page", allow: tuple[str, ...] = ()) -> list[dict]:
    """Run axe-core (WCAG 2.x A/AA + best practice) in a Playwright page or frame; fail on any
    serious or critical violation. ``evaluate`` runs via DevTools, so the app's CSP does not block
    it. Returns all violations for further assertions."""
    if not _AXE_SOURCE:
        _AXE_SOURCE.append(AXE_JS.read_text(encoding="utf-8"))
    if not target.evaluate("() => typeof window.axe !== 'undefined'"):
        target.evaluate("src => { (0, eval)(src); }", _AXE_SOURCE[0])
    result = target.evaluate(
        """async () => await axe.run(document, {runOnly: {type: 'tag',
             values: ['wcag2a', 'wcag2aa', 'wcag21a', 'wcag21aa', 'wcag22aa', 'best-practice']}})"""
    )
    violations = result["violations"]
    bad = [v for v in violations if v.get("impact") in ("serious", "critical") and v["id"] not in allow]
    assert not bad, f"axe ({name}): " + json.dumps(
        [{"id": v["id"], "impact": v["impact"], "help": v["help"],
          "nodes": [n["target"] for n in v["nodes"][:3]]} for v in bad], indent=1)
    return violations




# --- seeding a realistic plan (tests, benchmark) ----------------------------------------------
def seed_plan(
    app,
    patient_id: str,
    *,
    risk: bool = True,
    share_with: tuple[str, ...] = (),
    scores: tuple[tuple[int, ...], ...] = ((2, 4, 6), (5, 5)),
    clinician: str = "Practitioner/pr-test-1",
) -> dict:
    """Save a synthetic plan for one young person through the builders and the local store:
    groupings Getting Help -> (Getting Risk Support), two GBO goals with ratings, an active safety
    plan, a signpost, a care team, and (with ``share_with``) a sharing Consent naming those
    Organizations. Returns the ids written. Everything is invented."""
    from datetime import date, datetime, timedelta, timezone

    from thrive_fhir import builders as b
    from thrive_fhir import canonical
    from thrive_fhir.ids import new_local_id
    from thrive_fhir.localstore import ChangeSet

    store = app.extensions["thrive"].local_store
    ods = app.extensions["thrive"].config.ods_code
    from thrive_fhir import ids

    org_ref = f"Organization/{ids.deterministic_id(canonical.ODS_ORG, ods)}"
    subject = f"Patient/{patient_id}"
    episode = f"EpisodeOfCare/eoc-{patient_id}"
    now = datetime.now(timezone.utc).replace(microsecond=0)
    t0 = now - timedelta(days=70)
    out: dict = {}

    def save(*resources: dict, activity: str = "create") -> None:
        with store.session() as s:
            cs = ChangeSet(patient_key=subject, author_ref=clinician, organization_ref=org_ref, activity=activity)
            for r in resources:
                cs.put(r)
            store.record(s, cs)

    people = [
        {"resourceType": "Practitioner", "id": clinician.split("/")[1], "name": [{"text": "Dr Rowan Example"}]},
        {"resourceType": "Organization", "id": org_ref.split("/")[1], "name": "Northshire CAMHS (example)"},
    ]
    for org in share_with:
        people.append({"resourceType": "Organization", "id": org.split("/")[1], "name": "Sandbox High School"})
    save(*people)

    first = b.build_grouping(b.GroupingDecision(
        local_id=new_local_id(), grouping="getting-help", subject=subject, episode=episode,
        agreed_at=t0, recorded_at=t0, clinician=clinician, yp_involvement="agreed",
        participants=(subject,), source_ods=ods, yp_words="I want to go to school without panicking"))
    save(first)
    out["groupings"] = [first["id"]]
    if risk:
        second_at = now - timedelta(days=7)
        second = b.build_grouping(b.GroupingDecision(
            local_id=new_local_id(), grouping="getting-risk-support", subject=subject, episode=episode,
            agreed_at=second_at, recorded_at=second_at, clinician=clinician, yp_involvement="partly-agreed",
            participants=(subject,), source_ods=ods,
            previous=b.PreviousGrouping(observation=f"Observation/{first['id']}", grouping="getting-help", agreed_at=t0),
            change_reason="risk-increased", note="Therapy paused; focus on keeping safe with school."))
        save(second)
        out["groupings"].append(second["id"])

    out["goals"] = []
    texts = ["To be able to stay in school for the whole day", "To sleep better most nights", "To see my friends again"]
    for slot, series in enumerate(scores, start=1):
        start = t0.date()
        goal = b.build_goal(b.GoalInput(local_id=new_local_id(), slot=slot, description=texts[slot - 1],
                                        subject=subject, start_date=start, expressed_by=subject, source_ods=ods))
        save(goal)
        out["goals"].append(goal["id"])
        for i, value in enumerate(series):
            when = t0 + timedelta(days=14 * i + 1)
            score = b.build_gbo_score(b.GoalScoreInput(
                local_id=new_local_id(), goal=f"Goal/{goal['id']}", slot=slot, score=value, rater=subject,
                subject=subject, episode=episode, effective=when, goal_start_date=start, source_ods=ods))
            save(score)

    plan = b.build_safety_plan(b.SafetyPlanInput(
        local_id=new_local_id(), subject=subject, start_date=now.date() - timedelta(days=7),
        review_date=now.date() + timedelta(days=60), created=now - timedelta(days=7), author=clinician,
        contributors=(subject,), source_ods=ods,
        items=(
            b.SafetyPlanItem(section="warning-signs", text="Staying in my room, not answering messages",
                             performer_refs=(subject,)),
            b.SafetyPlanItem(section="internal-coping", text="Music with headphones, walking the dog",
                             performer_refs=(subject,)),
            b.SafetyPlanItem(section="professionals-agencies", text="CAMHS duty line 01632 960000 (example)",
                             performer_refs=(org_ref,)),
        )))
    save(plan)
    out["safety_plan"] = plan["id"]

    team = b.build_care_team(b.CareTeamInput(
        local_id=new_local_id(), subject=subject, source_ods=ods,
        members=(b.CareTeamMember(member=clinician, role="Lead clinician", on_behalf_of=org_ref),
                 b.CareTeamMember(member=subject, role="Young person"))))
    save(team)

    signpost = b.build_signposting(b.SignpostInput(
        local_id=new_local_id(), kind="signposting",
        offer=b.Coded(canonical.local_offer_cs("example"), "peer-support", "Peer support group (example)"),
        subject=subject, episode=episode, authored_on=now - timedelta(days=6), requester=clinician,
        performer=org_ref, reason=f"Observation/{out['groupings'][-1]}", source_ods=ods))
    save(signpost)

    if share_with:
        consent = b.build_consent(b.ConsentInput(
            local_id=new_local_id(), subject=subject, performer=(subject,), agencies=tuple(share_with),
            custodian=org_ref, plan=f"CarePlan/{plan['id']}", date_time=now - timedelta(days=1),
            start_date=now.date() - timedelta(days=1), end_date=now.date() + timedelta(days=180), source_ods=ods))
        save(consent)
        out["consent"] = consent["id"]
    return out
