"""Reading patients from a FHIR store for the EHR page and the standalone patient picker.

Named a *lookup*, not a directory: in this project "directory" is the local-offer directory of
services (the clinician app's services directory) and the synthetic organisations (``thrive_fhir/synth/directory``);
this module only finds patients for the development sandbox (docs/architecture.md, "Words").

The sandbox reads its own EHR store through the store's real FHIR API with a short-lived
``system/Patient.rs`` token it mints for itself, so the page sees exactly what an app would (and
exercises the same token check). A store in this process is called directly through WSGI; one in
another process over HTTP.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from typing import Any
from urllib.parse import urlsplit

import requests
from werkzeug.test import Client as WsgiClient

from thrive_fhir.canonical import NHS_NUMBER

_FHIR_ID = re.compile(r"[A-Za-z0-9\-.]{1,64}")


class PatientLookupError(RuntimeError):
    """The FHIR store did not answer as expected (message is safe to show)."""


def _name(patient: dict[str, Any]) -> str:
    for name in patient.get("name") or []:
        if name.get("text"):
            return name["text"]
        parts = [*(name.get("given") or []), name.get("family") or ""]
        text = " ".join(p for p in parts if p)
        if text:
            return text
    return "(no name recorded)"


def summarise(patient: dict[str, Any]) -> dict[str, Any]:
    """The few fields a patient list and banner show."""
    nhs = next((i.get("value") for i in patient.get("identifier") or [] if i.get("system") == NHS_NUMBER), None)
    return {
        "id": patient.get("id"),
        "name": _name(patient),
        "birthDate": patient.get("birthDate"),
        "gender": patient.get("gender"),
        "nhs": nhs,
    }


class PatientLookup:
    """Patient search and read against one FHIR base, authorised by ``token()``."""

    def __init__(self, base_url: str, token: Callable[[], str], wsgi_app: Any = None, timeout: float = 10.0) -> None:
        self.base_url = base_url.rstrip("/")
        self._token = token
        self._wsgi = WsgiClient(wsgi_app) if wsgi_app is not None else None
        self._timeout = timeout

    def with_token(self, token: Callable[[], str]) -> PatientLookup:
        """The same lookup read with another token (the standalone picker reads as the signed-in
        user, so a store that enforces sharing Consents lists only the young people they may see)."""
        other = object.__new__(PatientLookup)
        other.__dict__.update(self.__dict__)
        other._token = token
        return other

    def _get(self, path: str, params: dict[str, str] | None = None) -> tuple[int, dict[str, Any]]:
        headers = {"Authorization": f"Bearer {self._token()}", "Accept": "application/fhir+json"}
        if self._wsgi is not None:
            base_path = urlsplit(self.base_url).path
            resp = self._wsgi.get(
                path, query_string=params or {}, headers=headers, environ_overrides={"SCRIPT_NAME": base_path}
            )
            status, text = resp.status_code, resp.get_data(as_text=True)
        else:
            try:
                r = requests.get(f"{self.base_url}{path}", params=params, headers=headers, timeout=self._timeout)
            except requests.RequestException:
                raise PatientLookupError("the FHIR store did not answer") from None
            status, text = r.status_code, r.text
        if status == 404:
            return status, {}
        if status != 200:
            raise PatientLookupError(f"the FHIR store answered HTTP {status}")
        try:
            return status, json.loads(text)
        except ValueError:
            raise PatientLookupError("the FHIR store answered with something that is not JSON") from None

    def search(self, text: str | None = None, count: int = 100) -> list[dict[str, Any]]:
        params = {"_count": str(count)}
        if text:
            params["name"] = text
        _, bundle = self._get("/Patient", params)
        out = [
            summarise(e["resource"])
            for e in bundle.get("entry") or []
            if (e.get("resource") or {}).get("resourceType") == "Patient"
        ]
        return sorted(out, key=lambda p: p["name"].lower())

    def __call__(self, text: str | None = None) -> list[dict[str, Any]]:
        return self.search(text)

    def get(self, patient_id: str) -> dict[str, Any] | None:
        if not _FHIR_ID.fullmatch(patient_id or ""):
            return None
        status, resource = self._get(f"/Patient/{patient_id}")
        if status == 404 or resource.get("resourceType") != "Patient":
            return None
        return summarise(resource)
