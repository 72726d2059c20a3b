"""A small FHIR client for the launching EHR, holding the launch's access token server-side.

Rules it enforces: the bearer token goes only to URLs under the EHR's FHIR base (TS-10), and every
URL is built from checked segments, so an id taken from a token response or an EHR answer (say
``../../x``) can never move the request outside that base; a 401 gets one refresh and one retry,
then :class:`EhrSessionEnded` (TS-09); a 403 is a permission answer and is not retried; no
redirects, explicit timeouts.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import date
from typing import Any

import requests

from thrive_fhir.canonical import NHS_NUMBER
from thrive_fhir.client.fhir_http import InvalidFhirPath, checked_relative_path, resource_path

from .tokens import refresh_launch_tokens

TIMEOUT = (5, 20)


class EhrError(Exception):
    """The EHR answered with an error; ``status`` and ``outcome`` (OperationOutcome or None)."""

    def __init__(self, status: int, message: str, outcome: dict | None = None):
        super().__init__(message)
        self.status = status
        self.outcome = outcome


class EhrSessionEnded(EhrError):
    """The EHR no longer accepts this launch's token and it could not be refreshed."""


class EhrForbidden(EhrError):
    """The EHR refused this request for this user (permission, not session)."""


class EhrRefused(EhrError):
    """The app refused to send this request at all (a URL outside the base, an invalid id)."""


_shared_http = requests.Session()


class EhrClient:
    def __init__(
        self,
        base: str,
        token: Callable[[], str | None],
        *,
        reg=None,
        refresh: Callable[[str], bool] | None = None,
        http: requests.Session | None = None,
    ):
        self.base = base.rstrip("/")
        self._token = token
        self._refresh = refresh
        self.reg = reg
        self.http = http or _shared_http

    @classmethod
    def for_launch(cls, app_state, record) -> EhrClient:
        sessions = app_state.sessions

        def refresh(rejected_token: str) -> bool:
            current = sessions.get_launch(record.launch_id)
            return bool(current and current.has_refresh_token and refresh_launch_tokens(current, rejected_token))

        return cls(
            record.iss,
            lambda: sessions.access_token(record.launch_id),
            reg=app_state.config.ehr_for_iss(record.iss),
            refresh=refresh,
        )

    def url(self, path_or_url: str) -> str:
        """The absolute URL for a relative ``Type/id…`` path, or an absolute URL under the base;
        rebuilt from checked segments either way (dot segments, encoded slashes: refused)."""
        if "://" in path_or_url:
            if not (path_or_url == self.base or path_or_url.startswith((self.base + "/", self.base + "?"))):
                raise EhrRefused(0, "refusing to send the EHR token outside the EHR's FHIR base")
            path_or_url = path_or_url[len(self.base) :]
        try:
            rest = checked_relative_path(path_or_url)
        except InvalidFhirPath:
            raise EhrRefused(0, "refusing a URL that is not a plain FHIR path") from None
        url = f"{self.base}/{rest}" if rest and not rest.startswith("?") else self.base + rest
        if self.reg is not None and not self.reg.url_allowed(url, pinned=False):
            raise EhrRefused(0, "refusing to use an insecure URL")
        return url

    def request(self, method: str, path: str, *, json: Any = None, params=None, headers=None) -> requests.Response:
        url = self.url(path)
        for attempt in (1, 2):
            token = self._token()
            if not token:
                raise EhrSessionEnded(401, "Your session with the EHR has ended.")
            hdrs = {"Accept": "application/fhir+json", "Authorization": f"Bearer {token}", **(headers or {})}
            if json is not None:
                hdrs["Content-Type"] = "application/fhir+json"
            try:
                resp = self.http.request(
                    method, url, json=json, params=params, headers=hdrs, timeout=TIMEOUT, allow_redirects=False
                )
            except requests.RequestException:
                raise EhrError(0, "The EHR did not respond.") from None
            if resp.status_code == 401 and attempt == 1 and self._refresh and self._refresh(token):
                continue
            if resp.status_code == 401:
                raise EhrSessionEnded(401, "Your session with the EHR has ended.")
            if resp.status_code == 403:
                raise EhrForbidden(403, "The EHR did not allow this.", _outcome(resp))
            if resp.status_code >= 400:
                raise EhrError(resp.status_code, f"The EHR answered {resp.status_code}.", _outcome(resp))
            return resp
        raise EhrSessionEnded(401, "Your session with the EHR has ended.")  # pragma: no cover

    def read(self, resource_type: str, resource_id: str) -> Any:
        """GET ``Type/id``. The JSON body as sent: callers check its shape (it is the EHR's word)."""
        return self.request("GET", _path(resource_type, resource_id)).json()

    def search(self, resource_type: str, **params: str) -> Any:
        return self.request("GET", _path(resource_type), params=params).json()

    def create(self, resource: dict) -> dict:
        resp = self.request("POST", _path(resource.get("resourceType")), json=resource)
        return resp.json() if resp.content else {}

    def update(self, resource: dict, if_match: str | None = None) -> dict:
        headers = {"If-Match": if_match} if if_match else None
        resp = self.request(
            "PUT", _path(resource.get("resourceType"), resource.get("id")), json=resource, headers=headers
        )
        return resp.json() if resp.content else {}


def _path(resource_type: object, resource_id: object | None = None) -> str:
    try:
        return resource_path(resource_type, resource_id)
    except InvalidFhirPath:
        raise EhrRefused(0, "refusing an invalid FHIR resource type or id") from None


def _outcome(resp: requests.Response) -> dict | None:
    try:
        body = resp.json()
    except ValueError:
        return None
    return body if isinstance(body, dict) and body.get("resourceType") == "OperationOutcome" else None


def _format_nhs_number(value: str) -> str:
    return f"{value[:3]} {value[3:6]} {value[6:]}" if len(value) == 10 and value.isdigit() else value


def _strings(value: object) -> list[str]:
    return [v for v in value if isinstance(v, str)] if isinstance(value, list) else []


def _dicts(value: object) -> list[dict]:
    return [v for v in value if isinstance(v, dict)] if isinstance(value, list) else []


def banner_from_patient(patient: object, today: date | None = None) -> dict:
    """The few facts the banner shows, taken from a FHIR Patient. Never raises: parts of the
    wrong shape are left out (``smart_app.launch.identity`` decides whether what is left is a
    confirmed identity)."""
    patient = patient if isinstance(patient, dict) else {}
    name = None
    names = _dicts(patient.get("name"))
    official = next((n for n in names if n.get("use") == "official"), names[0] if names else None)
    if official:
        text = official.get("text")
        if isinstance(text, str) and text.strip():
            name = text.strip()
        else:
            given = " ".join(_strings(official.get("given"))).strip()
            family = official.get("family") if isinstance(official.get("family"), str) else ""
            name = f"{family.upper()}, {given}".strip(", ") if family else given or None
    nhs = next(
        (
            i["value"]
            for i in _dicts(patient.get("identifier"))
            if i.get("system") == NHS_NUMBER and isinstance(i.get("value"), str) and i["value"].strip()
        ),
        None,
    )
    birth = patient.get("birthDate") if isinstance(patient.get("birthDate"), str) else None
    gender = patient.get("gender") if isinstance(patient.get("gender"), str) else None
    banner = {
        "name": name,
        "nhs_number": nhs,
        "nhs_number_display": _format_nhs_number(nhs) if nhs else None,
        "birth_date": birth,
        "gender": gender,
    }
    if birth and len(birth) == 10:
        try:
            born = date.fromisoformat(birth)
            today = today or date.today()
            banner["birth_date_display"] = born.strftime("%-d %B %Y")
            years = today.year - born.year - ((today.month, today.day) < (born.month, born.day))
            banner["age"] = f"{years} years"
        except ValueError:
            pass
    return banner
