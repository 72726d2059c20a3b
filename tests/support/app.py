"""Helpers for testing the clinician app: a launch context without OAuth (journey and page tests),
browser and axe-core helpers, a realistic seeded plan, and the live stack (sandbox + two app
instances on loopback). Test code only: it lives under tests/ so nothing here ships in the wheel.

    from smart_app import create_app
    from tests.support.app import make_launch, test_config

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
import os
import re
import secrets
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC
from pathlib import Path
from typing import Any

from smart_app import create_app
from smart_app.context import COOKIE_NAME
from smart_app.scopes import requested_scopes
from smart_app.sessions import new_binding

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
            from werkzeug.datastructures import MultiDict

            form = MultiDict([*list(data), ("csrf_token", self.csrf_token)])
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
REPO = Path(__file__).resolve().parents[2]
AXE_JS = REPO / "node_modules" / "axe-core" / "axe.min.js"
SCREENSHOTS = REPO / "test-artifacts" / "screenshots"
#: Debian's Chromium unless THRIVE_CHROMIUM names another build (Playwright never downloads one here).
CHROMIUM = os.environ.get("THRIVE_CHROMIUM", "/usr/bin/chromium")
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
        [
            {"id": v["id"], "impact": v["impact"], "help": v["help"], "nodes": [n["target"] for n in v["nodes"][:3]]}
            for v in bad
        ],
        indent=1,
    )
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
    from datetime import datetime, timedelta

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
    now = datetime.now(UTC).replace(microsecond=0)
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

    first = b.build_grouping(
        b.GroupingDecision(
            local_id=new_local_id(),
            grouping="getting-help",
            subject=subject,
            episode=episode,
            agreed_at=t0,
            recorded_at=t0,
            clinician=clinician,
            yp_involvement="agreed",
            participants=(subject,),
            source_ods=ods,
            yp_words="I want to go to school without panicking",
        )
    )
    save(first)
    out["groupings"] = [first["id"]]
    if risk:
        second_at = now - timedelta(days=7)
        second = b.build_grouping(
            b.GroupingDecision(
                local_id=new_local_id(),
                grouping="getting-risk-support",
                subject=subject,
                episode=episode,
                agreed_at=second_at,
                recorded_at=second_at,
                clinician=clinician,
                yp_involvement="partly-agreed",
                participants=(subject,),
                source_ods=ods,
                previous=b.PreviousGrouping(
                    observation=f"Observation/{first['id']}", grouping="getting-help", agreed_at=t0
                ),
                change_reason="risk-increased",
                note="Therapy paused; focus on keeping safe with school.",
            )
        )
        save(second)
        out["groupings"].append(second["id"])

    out["goals"] = []
    texts = ["To be able to stay in school for the whole day", "To sleep better most nights", "To see my friends again"]
    for slot, series in enumerate(scores, start=1):
        start = t0.date()
        goal = b.build_goal(
            b.GoalInput(
                local_id=new_local_id(),
                slot=slot,
                description=texts[slot - 1],
                subject=subject,
                start_date=start,
                expressed_by=subject,
                source_ods=ods,
            )
        )
        save(goal)
        out["goals"].append(goal["id"])
        for i, value in enumerate(series):
            when = t0 + timedelta(days=14 * i + 1)
            score = b.build_gbo_score(
                b.GoalScoreInput(
                    local_id=new_local_id(),
                    goal=f"Goal/{goal['id']}",
                    slot=slot,
                    score=value,
                    rater=subject,
                    subject=subject,
                    episode=episode,
                    effective=when,
                    goal_start_date=start,
                    source_ods=ods,
                )
            )
            save(score)

    plan = b.build_safety_plan(
        b.SafetyPlanInput(
            local_id=new_local_id(),
            subject=subject,
            start_date=now.date() - timedelta(days=7),
            review_date=now.date() + timedelta(days=60),
            created=now - timedelta(days=7),
            author=clinician,
            contributors=(subject,),
            source_ods=ods,
            items=(
                b.SafetyPlanItem(
                    section="warning-signs",
                    text="Staying in my room, not answering messages",
                    performer_refs=(subject,),
                ),
                b.SafetyPlanItem(
                    section="internal-coping", text="Music with headphones, walking the dog", performer_refs=(subject,)
                ),
                b.SafetyPlanItem(
                    section="professionals-agencies",
                    text="CAMHS duty line 01632 960000 (example)",
                    performer_refs=(org_ref,),
                ),
                # what each agency the plan is shared with will do (the agency may confirm it)
                *(
                    b.SafetyPlanItem(
                        section="agency-actions", text="A quiet room at break times, every day", performer_refs=(org,)
                    )
                    for org in share_with
                ),
            ),
        )
    )
    save(plan)
    out["safety_plan"] = plan["id"]

    team = b.build_care_team(
        b.CareTeamInput(
            local_id=new_local_id(),
            subject=subject,
            source_ods=ods,
            members=(
                b.CareTeamMember(member=clinician, role="Lead clinician", on_behalf_of=org_ref),
                b.CareTeamMember(member=subject, role="Young person"),
            ),
        )
    )
    save(team)

    signpost = b.build_signposting(
        b.SignpostInput(
            local_id=new_local_id(),
            kind="signposting",
            offer=b.Coded(canonical.local_offer_cs("example"), "peer-support", "Peer support group (example)"),
            subject=subject,
            episode=episode,
            authored_on=now - timedelta(days=6),
            requester=clinician,
            performer=org_ref,
            reason=f"Observation/{out['groupings'][-1]}",
            source_ods=ods,
        )
    )
    save(signpost)

    if share_with:
        consent = b.build_consent(
            b.ConsentInput(
                local_id=new_local_id(),
                subject=subject,
                performer=(subject,),
                agencies=tuple(share_with),
                custodian=org_ref,
                plan=f"CarePlan/{plan['id']}",
                date_time=now - timedelta(days=1),
                start_date=now.date() - timedelta(days=1),
                end_date=now.date() + timedelta(days=180),
                source_ods=ods,
            )
        )
        save(consent)
        out["consent"] = consent["id"]
    return out


# --- a live stack: sandbox EHR + auth server + the app on loopback ports ------------------------
def nhs_test_number(n: int) -> str:
    """A valid NHS number from the 999 test range (modulus-11 check digit)."""
    from thrive_fhir import ids

    for tail in range(n, 1_000_000):
        first_nine = f"999{tail:06d}"
        check = ids.nhs_number_check_digit(first_nine)
        if check is not None:
            return first_nine + str(check)
    raise AssertionError("unreachable")


@contextmanager
def live_stack(
    tmp: Path,
    *,
    agency_org_ref: str | None = None,
    n_patients: int = 2,
    database_url: str | None = None,
    journeys: bool = False,
    threaded_server=None,
    write_back_grouping: bool = False,
    need_patient_picker: bool = False,
):
    """Start the sandbox (EHR page, auth server, EHR FHIR store on SQLite) and two app instances
    registered with it (``thrive-app`` auto-approves; ``thrive-app-consent`` shows the consent page),
    all on free loopback ports; seed ``n_patients`` Patients in the EHR. Yields a namespace with
    ``app``, ``ro_app``, ``app_origin``, ``ro_origin``, ``sandbox_origin``, ``fhir_base``,
    ``authority``, ``patients``, ``ehr_launch_url(patient, user=..., origin=...)`` and
    ``ehr_search(resource_type, **params)`` (reads the EHR store with a system token).
    ``write_back_grouping``: the apps also write agreed groupings into the EHR.
    ``need_patient_picker``: standalone launches without a patient open the in-app picker (SA-04)."""
    from types import SimpleNamespace
    from urllib.parse import urlencode

    import requests

    from thrive_fhir import canonical
    from thrive_fhir.sandbox.keys import SigningKey, jwks
    from thrive_fhir.sandbox.registry import Client, Registry
    from thrive_fhir.sandbox.server import ServerThread, build_sandbox

    tmp = Path(tmp)
    app_server = ServerThread(name="app")
    ro_server = ServerThread(name="app-ro")
    sandbox_server = ServerThread(name="sandbox")
    app_origin, ro_origin = app_server.origin, ro_server.origin
    try:
        key = SigningKey.generate("RS384")
        key_file = tmp / "app-key.pem"
        key_file.write_bytes(key.private_pem())
        scopes = frozenset(
            "launch launch/patient openid fhirUser online_access offline_access patient/*.cruds user/*.rs user/Task.rus "
            "user/Provenance.crs".split()
        )
        registry = Registry()
        registry.add(
            Client(
                "thrive-app",
                "private_key_jwt",
                name="THRIVE care plan",
                auto_approve=True,
                redirect_uris=(app_origin + "/callback",),
                launch_url=app_origin + "/launch",
                scopes=scopes,
                jwks=jwks(key),
                organization="RXX01",
            )
        )
        registry.add(
            Client(
                "thrive-app-consent",
                "private_key_jwt",
                name="THRIVE care plan (consent)",
                redirect_uris=(ro_origin + "/callback",),
                launch_url=ro_origin + "/launch",
                scopes=scopes,
                jwks=jwks(key),
                organization="RXX01",
            )
        )
        sandbox = build_sandbox(
            f"sqlite:///{tmp}/ehr.db", sandbox_server.origin, registry=registry, app_launch_url=app_origin + "/launch"
        )
        sandbox_server.start(sandbox.wsgi)

        admin = sandbox.authority.mint_internal_token(sandbox.fhir_base, "system/Patient.cruds")
        patients = []
        for i in range(n_patients):
            pid = f"live-patient-{i + 1}"
            body = {
                "resourceType": "Patient",
                "id": pid,
                "name": [{"given": [["Alex", "Billie", "Charlie", "Dee"][i % 4]], "family": f"Sandbox-{i + 1}"}],
                "birthDate": f"201{i % 10}-05-0{i % 9 + 1}",
                "gender": "female" if i % 2 else "male",
                "identifier": [{"system": canonical.NHS_NUMBER, "value": nhs_test_number(i * 7 + 1)}],
            }
            r = requests.put(
                f"{sandbox.fhir_base}/Patient/{pid}",
                json=body,
                timeout=10,
                headers={"Authorization": f"Bearer {admin}", "Content-Type": "application/fhir+json"},
            )
            if r.status_code not in (200, 201):
                raise RuntimeError(f"seeding the sandbox failed: {r.status_code}")
            patients.append(pid)

        def app_config(client_id: str, origin: str, db: str) -> dict:
            return {
                "secret_key": secrets.token_urlsafe(32),
                "database_url": database_url if (database_url and db == "app.db") else f"sqlite:///{tmp}/{db}",
                "ods_code": "RXX01",
                "public_base_url": origin,
                "journeys": journeys,
                "write_back_grouping": write_back_grouping,
                "ehr": [
                    {
                        "name": "Sandbox EHR",
                        "iss": sandbox.fhir_base,
                        "client_id": client_id,
                        "auth_method": "private_key_jwt",
                        "private_key_file": str(key_file),
                        "key_id": key.kid,
                        "online_access": True,
                        "allow_insecure_loopback": True,
                        "need_patient_picker": need_patient_picker,
                        "frame_ancestors": [sandbox_server.origin],
                    }
                ],
                "standalone": [
                    {
                        "key": "school",
                        "name": "Sandbox High School",
                        "iss": sandbox.fhir_base,
                        **({"organization": agency_org_ref} if agency_org_ref else {}),
                    }
                ],
            }

        app = create_app(app_config("thrive-app", app_origin, "app.db"))
        ro_app = create_app(app_config("thrive-app-consent", ro_origin, "app-ro.db"))
        app_server.start(app)
        ro_server.start(ro_app)

        def ehr_launch_url(patient: str, user: str = "clinician", origin: str = app_origin) -> str:
            """What the sandbox EHR page puts in its iframe: <app>/launch?iss=...&launch=<one-time handle>."""
            handle = sandbox.authority.mint_launch(patient, user, sandbox.fhir_base)
            return f"{origin}/launch?" + urlencode({"iss": sandbox.fhir_base, "launch": handle})

        def ehr_search(resource_type: str, **params: str) -> list[dict]:
            """What the EHR store holds (a system token, as an EHR administrator would look)."""
            token = sandbox.authority.mint_internal_token(sandbox.fhir_base, f"system/{resource_type}.rs")
            r = requests.get(
                f"{sandbox.fhir_base}/{resource_type}",
                params=params,
                timeout=10,
                headers={"Authorization": f"Bearer {token}", "Accept": "application/fhir+json"},
            )
            r.raise_for_status()
            return [
                e["resource"] for e in r.json().get("entry", []) if e.get("search", {}).get("mode", "match") == "match"
            ]

        yield SimpleNamespace(
            app=app,
            ro_app=ro_app,
            app_origin=app_origin,
            ro_origin=ro_origin,
            sandbox_origin=sandbox_server.origin,
            fhir_base=sandbox.fhir_base,
            authority=sandbox.authority,
            patients=patients,
            key=key,
            tmp=tmp,
            ehr_launch_url=ehr_launch_url,
            ehr_search=ehr_search,
        )
    finally:
        for server in (app_server, ro_server, sandbox_server):
            server.stop()


def serve_app_process(tmp_path: Path) -> tuple[Any, str]:
    """``thrive app serve`` as an operator starts it, in its own process on a free loopback port, from
    a minimal config file (one EHR, journeys off): returns (the process, its origin) once /healthz
    answers. Output is piped (stdout and stderr merged) for the test to read; the caller stops it."""
    import subprocess
    import sys

    from tests.support.servers import free_port, wait_up

    THRIVE = [sys.executable, "-c", "from thrive_fhir.cli import main; main()"]

    cfg = tmp_path / "app.toml"
    (tmp_path / "secret").write_text("s" * 48)
    cfg.write_text(
        'secret_key_file = "secret"\n'
        f'database_url = "sqlite:///{tmp_path}/app.db"\n'
        "journeys = false\n"
        "[[ehr]]\n"
        'iss = "https://ehr.example.test/fhir"\nclient_id = "thrive-app"\nauth_method = "public"\n'
    )
    port = free_port()
    proc = subprocess.Popen(
        [*THRIVE, "app", "serve", "--config", str(cfg), "--port", str(port)],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    origin = f"http://127.0.0.1:{port}"
    try:
        wait_up(origin + "/healthz", timeout=60, proc=proc)
    except RuntimeError:
        proc.kill()
        raise AssertionError("app did not start: " + (proc.stdout.read() if proc.stdout else "")) from None
    return proc, origin
