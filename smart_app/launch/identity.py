"""Who this launch is about: the Patient read once at launch, and whether it confirms an identity.

A young person's plan is never shown without their confirmed identity (wrong-patient hazard). The
EHR's answer is hostile input: a 500, an HTML error page, malformed JSON, a list, a Patient with
identifiers given as bare strings, or another patient's record must all stop here, with a page that
says what happened and offers to read the record again, never a plan under a banner that reads
only "Patient".

A confirmed identity is a Patient resource whose ``id`` is the one the EHR put in the launch, whose
``name`` and ``identifier`` have the FHIR shape, and which names the young person. The NHS number
is shown when the record has one (and the banner says when it has none).
"""

from __future__ import annotations

import logging
from typing import Any

from .ehr_client import EhrClient, EhrError, EhrForbidden, EhrSessionEnded, banner_from_patient

log = logging.getLogger("smart_app.launch.identity")


class IdentityProblem(Exception):
    """The Patient read did not confirm who this is; ``str(exc)`` is a plain sentence for the page."""


def identity_confirmed(banner: Any) -> bool:
    """True when ``banner`` (as stored on the launch) came from a confirming Patient read."""
    return (
        isinstance(banner, dict)
        and not banner.get("unconfirmed")
        and isinstance(banner.get("name"), str)
        and bool(banner["name"].strip())
    )


def unconfirmed(reason: str) -> dict:
    """What the launch stores when the read failed: no identity, and why (shown on the page)."""
    return {"name": None, "unconfirmed": reason}


def _shape_problem(patient: Any, patient_id: str) -> str | None:
    """Why ``patient`` is not a well-formed Patient for ``patient_id`` (None when it is)."""
    if not isinstance(patient, dict) or patient.get("resourceType") != "Patient":
        return "The EHR's answer was not a patient record."
    if patient.get("id") != patient_id:
        return "The EHR sent a different young person's record from the one the app was opened for."
    for key in ("name", "identifier"):
        value = patient.get(key)
        if value is not None and (not isinstance(value, list) or not all(isinstance(v, dict) for v in value)):
            return "The EHR's patient record is not in a form the app can read."
    for name in patient.get("name") or []:
        if not isinstance(name.get("given", []), list) or not all(isinstance(v, str) for v in name.get("given", [])):
            return "The EHR's patient record is not in a form the app can read."
    return None


def read_identity(client: EhrClient, patient_id: str) -> dict:
    """Read ``Patient/<patient_id>`` and return the banner facts; :class:`IdentityProblem` when the
    answer does not confirm who this is."""
    try:
        patient = client.read("Patient", patient_id)
    except EhrSessionEnded:
        raise IdentityProblem(
            "The EHR no longer accepts this sign-in, so the app could not read the young person's details."
        ) from None
    except EhrForbidden:
        raise IdentityProblem("The EHR did not allow the app to read the young person's details.") from None
    except EhrError as exc:
        if exc.status:
            raise IdentityProblem(
                f"The EHR answered with an error (HTTP {exc.status}) when the app asked for the young person's details."
            ) from None
        raise IdentityProblem("The EHR did not respond when the app asked for the young person's details.") from None
    except ValueError:  # JSON decoding: an HTML error page, a truncated body
        raise IdentityProblem(
            "The EHR's answer about the young person could not be read (it was not FHIR JSON)."
        ) from None
    problem = _shape_problem(patient, patient_id)
    if problem:
        raise IdentityProblem(problem)
    banner = banner_from_patient(patient)
    if not banner.get("name"):
        raise IdentityProblem(
            "The EHR's record for this young person has no name, so the app cannot show whose plan this is."
        )
    return banner


def identity_or_problem(client: EhrClient, patient_id: str) -> dict:
    """:func:`read_identity`, with a problem turned into an :func:`unconfirmed` banner (logged
    without any patient data)."""
    try:
        return read_identity(client, patient_id)
    except IdentityProblem as exc:
        log.warning("patient identity not confirmed at launch: %s", exc)
        return unconfirmed(str(exc))
