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


