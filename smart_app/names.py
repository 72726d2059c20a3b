"""People and organisations by name, never by raw id: the one home for "who is Practitioner/3e23…?".

Pages name the clinician who saved a plan, who took part in a decision, who holds a safety plan
item, who rated a goal. A reference such as ``Practitioner/3e233738…`` means nothing to a clinician
or a young person, so every page asks :class:`Names`, which tries, in order:

1. names known without a read: the young person (from the launch's patient banner), the
   locality's agencies and services (the services directory);
2. the young person's records snapshot and the local store (people saved with the plan), and the
   people and organisations read from the shared store with the young person's shared history
   (``shared``: other teams and agencies, :mod:`smart_app.summary.shared_history`);
3. this launch's cache (a name looked up once is kept for the whole launch, not per page);
4. the launching EHR (the signed-in user's own ``fhirUser`` resource, and other staff, parents or
   organisations where the EHR granted a read of that type), with the launch's token;
5. a plain description of the role ("A member of staff", "A parent or carer"), never the id.

An EHR that is down, refuses or whose session has ended only means step 5: a name is never worth
an error page. Failures are remembered for the launch too, so a page never waits on them twice.
"""

from __future__ import annotations

import threading
from collections import OrderedDict

#: Launches whose names are kept (process memory; oldest launch dropped first).
_MAX_LAUNCHES = 512
_cache: OrderedDict[str, dict[str, str | None]] = OrderedDict()
_lock = threading.Lock()

#: What a reference of each type is called when no name can be found.
FALLBACK = {
    "Practitioner": "A member of staff",
    "PractitionerRole": "A member of staff",
    "RelatedPerson": "A parent or carer",
    "Organization": "An organisation",
    "HealthcareService": "A service",
    "Patient": "The young person",
    "CareTeam": "The care team",
    "Device": "This app",
}

#: Types the EHR is asked about (a name is all that is used from the answer).
_EHR_TYPES = ("Practitioner", "PractitionerRole", "RelatedPerson", "Organization")


def spoken_name(banner_name: str | None) -> str | None:
    """A banner name ("TESTER, Sam", the EHR style of the patient banner) as people say it
    ("Sam Tester"), for the young person's own printed copy. Other forms are kept as they are."""
    if not banner_name:
        return None
    if ", " in banner_name:
        family, given = banner_name.split(", ", 1)
        if family.isupper():
            family = family.title()
        return f"{given} {family}".strip()
    return banner_name


def person_name(resource: dict | None) -> str | None:
    """A readable name for Practitioner, RelatedPerson, Patient, Organization, HealthcareService…"""
    if not resource:
        return None
    if isinstance(resource.get("name"), str):
        return resource["name"] or None
    names = resource.get("name") or []
    if names and isinstance(names, list):
        n = next((x for x in names if x.get("use") == "official"), names[0])
        if n.get("text"):
            return n["text"]
        given = " ".join(n.get("given", []))
        parts = [p for p in (n.get("prefix") and " ".join(n["prefix"]), given, n.get("family")) if p]
        if parts:
            return " ".join(parts)
    return None


def launch_cache(launch_id: str) -> dict[str, str | None]:
    with _lock:
        found = _cache.get(launch_id)
        if found is None:
            found = _cache[launch_id] = {}
            while len(_cache) > _MAX_LAUNCHES:
                _cache.popitem(last=False)
        else:
            _cache.move_to_end(launch_id)
        return found


class Names:
    """Resolves references to display names (see the module docstring for the order)."""

    FALLBACK = FALLBACK

    def __init__(
        self,
        store=None,
        patient_ref: str | None = None,
        patient_name: str | None = None,
        records=None,
        known: dict[str, str] | None = None,
        *,
        launch=None,
        shared: dict[str, dict] | None = None,
    ):
        self.store = store
        self.records = records
        self.shared = shared or {}
        self.launch = launch
        self.cache: dict[str, str] = dict(known or {})
        self.launch_cache = launch_cache(launch.launch_id) if launch is not None else {}
        if patient_ref:
            self.cache[patient_ref] = patient_name or "The young person"

    @classmethod
    def for_launch(cls, launch, records=None) -> Names:
        """Names for pages of ``launch`` (its patient, directory, local store, EHR and cache)."""
        from . import records as rec

        if records is None and launch.patient_ref:
            records = rec.of(launch.local_store, launch.patient_ref)
        return cls(
            launch.local_store,
            launch.patient_ref,
            (launch.banner or {}).get("name"),
            records,
            known_names(),
            launch=launch,
        )

    def __call__(self, ref: dict | str | None) -> str:
        if not ref:
            return ""
        if isinstance(ref, dict):
            if ref.get("display"):
                return ref["display"]
            ref = ref.get("reference") or ""
        if ref in self.cache:
            return self.cache[ref]
        name = self.lookup(ref)
        if not name and self.launch is not None and self.launch.mode == "ehr" and ref == self.launch.organization_ref:
            name = "Your organisation"  # the launching organisation, when the directory and the EHR do not name it
        if not name:
            kind = ref.split("/", 1)[0] if "/" in ref else ""
            name = FALLBACK.get(kind, "Someone")
        self.cache[ref] = name
        return name

    def lookup(self, ref: str) -> str | None:
        """The name of ``ref`` if one can be found, else None."""
        if "/" not in ref:
            return None
        rtype, rid = ref.split("/", 1)
        if ref in self.launch_cache:
            return self.launch_cache[ref]
        resource = None
        found = self.records.get(ref) if self.records is not None else None
        if found is not None:
            resource = found.resource
        elif ref in self.shared:
            resource = self.shared[ref]
        elif self.store is not None:
            try:
                resource = self.store.current(rtype, rid)
            except Exception:  # a store problem only costs the name
                resource = None
        name = self._name_of(rtype, resource) if resource else None
        if name is None and self.launch is not None:
            name = self._from_ehr(rtype, rid, ref)
            self.launch_cache[ref] = name  # a miss too: never wait on the EHR twice for one person
        elif name is not None and self.launch is not None:
            self.launch_cache[ref] = name
        return name

    def _name_of(self, rtype: str, resource: dict) -> str | None:
        if rtype == "PractitionerRole":
            who = (
                self.lookup(resource["practitioner"]["reference"])
                if (resource.get("practitioner") or {}).get("reference")
                else None
            )
            org_ref = (resource.get("organization") or {}).get("reference")
            org = (self.cache.get(org_ref) or self.lookup(org_ref)) if org_ref else None
            role = _concept_text((resource.get("code") or [None])[0])
            name = ", ".join(p for p in (who, role, org) if p)
            return name or None
        return person_name(resource)

    def _from_ehr(self, rtype: str, rid: str, ref: str) -> str | None:
        launch = self.launch
        if launch.mode != "ehr" or rtype not in _EHR_TYPES:
            return None
        own = ref in (launch.user_ref, launch.practitioner_role_ref)
        if not own and not launch.scopes.allows(rtype, "r", contexts=("patient", "user")):
            return None
        try:
            resource = _lookup_client(launch).read(rtype, rid)
        except Exception:  # EHR down, refused, session ended: a name is not worth an error page
            return None
        if not isinstance(resource, dict) or resource.get("resourceType") != rtype:
            return None
        return self._name_of(rtype, resource)


def _lookup_client(launch):
    """An EHR client for name look-ups that never refreshes the token: a 401 on a look-up (some
    EHRs answer 401 for a type outside the grant) must cost only the name, never end the session
    through a failed refresh."""
    from .context import state
    from .launch.ehr_client import EhrClient

    sessions = state().sessions
    return EhrClient(launch.iss, lambda: sessions.access_token(launch.launch_id), reg=launch.registration)


def _concept_text(cc: dict | None) -> str:
    if not cc:
        return ""
    if cc.get("text"):
        return cc["text"]
    for c in cc.get("coding", []):
        if c.get("display"):
            return c["display"]
    return ""


def known_names() -> dict[str, str]:
    """Directory agencies and services by reference (they are not in the local store)."""
    from flask import current_app, has_app_context

    from .directory import DIRECTORY_KEY, names_by_ref

    if not has_app_context() or DIRECTORY_KEY not in current_app.extensions:
        return {}
    return names_by_ref(current_app.extensions[DIRECTORY_KEY])
