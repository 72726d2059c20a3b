"""Load synthetic NDJSON into a FHIR store through its own API (PUT per resource).

Going through the API rather than the database means seeded data gets exactly the indexing,
versioning and validation an app's writes get. Ids come from the synthetic data, so loading the
same files twice updates rather than duplicates.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from werkzeug.test import Client as WsgiClient

from thrive_fhir.canonical import ODS_ORG

from .registry import SandboxUser

#: Resources others point at go first, so a store that checks references finds their targets.
LOAD_ORDER = (
    "Organization",
    "Location",
    "HealthcareService",
    "Practitioner",
    "PractitionerRole",
    "Patient",
    "RelatedPerson",
    "EpisodeOfCare",
    "CareTeam",
    "Encounter",
    "Consent",
)
#: What the sandbox EHR holds: the provider's own directory and demographics. The shared
#: cross-agency store gets everything the synthetic population has.
EHR_TYPES = frozenset(
    {"Organization", "Location", "HealthcareService", "Practitioner", "PractitionerRole", "Patient", "RelatedPerson"}
)


class SeedError(RuntimeError):
    """A resource could not be stored; the message names it (never its content)."""


@dataclass
class SeedReport:
    loaded: dict[str, int] = field(default_factory=dict)

    @property
    def total(self) -> int:
        return sum(self.loaded.values())

    def summary(self) -> str:
        return ", ".join(f"{n} {t}" for t, n in sorted(self.loaded.items())) or "nothing"


def read_ndjson(folder: Path) -> Iterator[dict[str, Any]]:
    """Every resource in ``folder/*.ndjson``, in :data:`LOAD_ORDER` then alphabetical by type."""
    resources: list[dict[str, Any]] = []
    for path in sorted(folder.glob("*.ndjson")):
        with path.open(encoding="utf-8") as fh:
            for n, line in enumerate(fh, 1):
                if not line.strip():
                    continue
                try:
                    res = json.loads(line)
                except json.JSONDecodeError:
                    raise SeedError(f"{path.name} line {n} is not JSON") from None
                if isinstance(res, dict) and res.get("resourceType") and res.get("id"):
                    resources.append(res)
    rank = {t: i for i, t in enumerate(LOAD_ORDER)}
    resources.sort(key=lambda r: (rank.get(r["resourceType"], len(rank)), r["resourceType"]))
    return iter(resources)


def practitioner_for(user: SandboxUser) -> dict[str, Any]:
    """A Practitioner resource for a sandbox user, so ``fhirUser`` resolves in the stores."""
    display = user.name.partition(" (")[0]
    *given, family = display.split()
    name: dict[str, Any] = {"use": "official", "text": display, "family": family}
    if given and given[0] in ("Dr", "Mr", "Ms", "Mx", "Mrs"):
        name["prefix"] = [given.pop(0)]
    name["given"] = given
    return {"resourceType": "Practitioner", "id": user.fhirUser.split("/", 1)[1], "active": True, "name": [name]}


def organization_for(reference: str) -> dict[str, Any] | None:
    """A minimal Organization for a sandbox user's organisation (the synthetic data may refine it)."""
    from .registry import SANDBOX_ORGANIZATIONS

    if reference not in SANDBOX_ORGANIZATIONS:
        return None
    name, ods = SANDBOX_ORGANIZATIONS[reference]
    org: dict[str, Any] = {
        "resourceType": "Organization",
        "id": reference.split("/", 1)[1],
        "active": True,
        "name": name,
    }
    if ods:
        org["identifier"] = [{"system": ODS_ORG, "value": ods}]
    return org


def load(
    store_app: Any,
    base_url: str,
    token: Callable[[], str],
    resources: Iterable[dict[str, Any]],
    *,
    types: frozenset[str] | None = None,
) -> SeedReport:
    """PUT each resource (of ``types``, or all) into the store app mounted at ``base_url``."""
    client = WsgiClient(store_app)
    script = urlsplit(base_url).path
    report = SeedReport()
    bearer = token()
    for res in resources:
        rtype = res["resourceType"]
        if types is not None and rtype not in types:
            continue
        for attempt in range(2):
            resp = client.put(
                f"/{rtype}/{res['id']}",
                data=json.dumps(res),
                headers={
                    "Authorization": f"Bearer {bearer}",
                    "Content-Type": "application/fhir+json",
                    "Accept": "application/fhir+json",
                },
                environ_overrides={"SCRIPT_NAME": script},
            )
            if resp.status_code == 401 and attempt == 0:
                bearer = token()  # the short-lived seeding token ran out on a large load
                continue
            break
        if resp.status_code not in (200, 201):
            detail = _diagnostics(resp.get_data(as_text=True))
            raise SeedError(f"storing {rtype}/{res['id']} failed with HTTP {resp.status_code}{detail}")
        report.loaded[rtype] = report.loaded.get(rtype, 0) + 1
    return report


def _diagnostics(text: str) -> str:
    try:
        issues = json.loads(text).get("issue") or []
    except (ValueError, AttributeError):
        return ""
    msgs = [i["diagnostics"] for i in issues if isinstance(i, dict) and isinstance(i.get("diagnostics"), str)]
    msgs = [m for m in msgs if m]
    return f": {msgs[0][:300]}" if msgs else ""
