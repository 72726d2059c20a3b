"""The local services directory: which agencies and services exist in this locality, and which
THRIVE groupings each service is for.

Why a file: every locality has its own local offer (docs/design/thrive-framework.md, "typical local offer"), and
it changes when a service opens or closes, not when the software is released. A site keeps one JSON
file (``example-directory.json`` is the shape, with invented services) and points the app's
``directory`` config field (``smart_app.config``; or the ``THRIVE_DIRECTORY`` environment variable)
at it. The file is checked fully on load, so a typo in a grouping code
or a service pointing at an unknown organisation stops start-up with one clear line instead of
showing clinicians a half-empty list.

The services become FHIR Organization and HealthcareService resources (profile
``thrive-local-offer``) through :func:`to_fhir`, so signposting and referrals can point at them.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal, overload

from thrive_fhir import canonical

EXAMPLE_PATH = Path(__file__).with_name("example-directory.json")
#: Where the loaded directory lives: ``app.extensions[DIRECTORY_KEY]`` (set by ``smart_app.journeys``).
DIRECTORY_KEY = "thrive_directory"

#: The kinds of agency a directory may list (the agency types of ``thrive_fhir.builders.people``);
#: used for wording and for matching agencies to the people who took part in a shared decision.
AGENCY_KINDS = {
    "camhs": "Children and young people's mental health service",
    "nhs-trust": "NHS service",
    "school": "School or college",
    "social-care": "Children's social care",
    "youth-justice": "Youth justice",
    "voluntary-sector": "Voluntary or community sector",
    "local-authority": "Local authority",
    "other": "Other agency",
}

_KEY_RE = re.compile(r"^[a-z0-9][a-z0-9-]{0,62}$")
_SITE_RE = re.compile(r"^[a-z0-9][a-z0-9-]{0,40}$")
_PHONE_RE = re.compile(r"^[0-9+][0-9 ]{5,19}$")


class DirectoryError(ValueError):
    """The directory file cannot be used; the message names the entry and what is wrong."""


@dataclass(frozen=True)
class Agency:
    """An organisation in the locality: a provider of services, and/or someone a plan is shared with."""

    key: str
    name: str
    kind: str
    phone: str | None = None
    website: str | None = None
    ods: str | None = None

    @property
    def kind_label(self) -> str:
        return AGENCY_KINDS[self.kind]


@dataclass(frozen=True)
class Service:
    """One service of the local offer. ``code`` is a code in the site's local-offer CodeSystem."""

    code: str
    name: str
    agency: Agency
    groupings: tuple[str, ...]
    description: str
    phone: str | None = None
    website: str | None = None

    def serves(self, grouping: str | None) -> bool:
        return grouping in self.groupings


@dataclass(frozen=True)
class Directory:
    site: str
    locality: str
    agencies: tuple[Agency, ...]
    services: tuple[Service, ...]
    _by_key: dict = field(default_factory=dict, repr=False, compare=False)

    def agency(self, key: str) -> Agency | None:
        return self._by_key.get(("agency", key))

    def service(self, code: str) -> Service | None:
        return self._by_key.get(("service", code))

    @property
    def code_system(self) -> str:
        """The site's local-offer CodeSystem (docs/design/fhir-model.md 1.2)."""
        return canonical.local_offer_cs(self.site)

    def services_for(self, grouping: str | None) -> tuple[list[Service], list[Service]]:
        """Services mapped to ``grouping`` first, then all the others (both in file order).

        The others are still offered: the grouping guides, the people decide (needs-led, no wrong
        door), so nothing is hidden because of the grouping.
        """
        matched = [s for s in self.services if s.serves(grouping)]
        others = [s for s in self.services if not s.serves(grouping)]
        return matched, others


@overload
def _text(entry: dict, name: str, where: str, *, required: Literal[True] = True) -> str: ...
@overload
def _text(entry: dict, name: str, where: str, *, required: bool) -> str | None: ...
def _text(entry: dict, name: str, where: str, *, required: bool = True) -> str | None:
    value = entry.get(name)
    if value is None and not required:
        return None
    if not isinstance(value, str) or not value.strip():
        raise DirectoryError(f"{where}: '{name}' must be a non-empty string")
    return value.strip()


def _phone(entry: dict, where: str) -> str | None:
    phone = _text(entry, "phone", where, required=False)
    if phone is not None and not _PHONE_RE.match(phone):
        raise DirectoryError(f"{where}: 'phone' {phone!r} is not a phone number (digits and spaces)")
    return phone


def _website(entry: dict, where: str) -> str | None:
    site = _text(entry, "website", where, required=False)
    if site is not None and not site.startswith("https://"):
        raise DirectoryError(f"{where}: 'website' must start with https://")
    return site


def _unique_key(entry: object, name: str, kind: str, where: str, index: dict) -> str:
    """An entry's own key (``key`` of an organisation, ``code`` of a service): lower-case letters,
    digits and '-', and not used by an earlier entry of the same kind."""
    if not isinstance(entry, dict):
        raise DirectoryError(f"{where}: must be an object")
    value = entry.get(name)
    if not isinstance(value, str) or not _KEY_RE.match(value):
        raise DirectoryError(f"{where}: '{name}' must be lower-case letters, digits and '-'")
    if (kind, value) in index:
        raise DirectoryError(f"{where}: {name} {value!r} is used twice")
    return value


def parse(data: object, *, source: str = "directory") -> Directory:
    """Check a decoded directory document and build a :class:`Directory`."""
    if not isinstance(data, dict):
        raise DirectoryError(f"{source}: the top level must be a JSON object")
    site = data.get("site")
    if not isinstance(site, str) or not _SITE_RE.match(site):
        raise DirectoryError(f"{source}: 'site' must be a short lower-case code such as 'example'")
    locality = _text(data, "locality", source)
    raw_agencies = data.get("organisations")
    raw_services = data.get("services")
    if not isinstance(raw_agencies, list) or not raw_agencies:
        raise DirectoryError(f"{source}: 'organisations' must be a non-empty list")
    if not isinstance(raw_services, list):
        raise DirectoryError(f"{source}: 'services' must be a list")

    index: dict = {}
    agencies: list[Agency] = []
    for i, entry in enumerate(raw_agencies):
        where = f"{source}: organisations[{i}]"
        key = _unique_key(entry, "key", "agency", where, index)
        kind = entry.get("kind")
        if kind not in AGENCY_KINDS:
            raise DirectoryError(f"{where}: 'kind' must be one of {', '.join(AGENCY_KINDS)}")
        ods = entry.get("ods")
        if ods is not None and (not isinstance(ods, str) or not re.match(r"^[A-Z0-9]{3,10}$", ods)):
            raise DirectoryError(f"{where}: 'ods' must be 3 to 10 capital letters or digits")
        agency = Agency(
            key=key,
            name=_text(entry, "name", where),
            kind=kind,
            phone=_phone(entry, where),
            website=_website(entry, where),
            ods=ods,
        )
        index[("agency", key)] = agency
        agencies.append(agency)

    services: list[Service] = []
    for i, entry in enumerate(raw_services):
        where = f"{source}: services[{i}]"
        code = _unique_key(entry, "code", "service", where, index)
        owner = index.get(("agency", entry.get("organisation")))
        if not isinstance(owner, Agency):
            raise DirectoryError(f"{where}: 'organisation' {entry.get('organisation')!r} is not in 'organisations'")
        groupings = entry.get("groupings")
        if not isinstance(groupings, list) or not groupings:
            raise DirectoryError(f"{where}: 'groupings' must list at least one THRIVE grouping code")
        for g in groupings:
            if g not in canonical.GROUPINGS:
                raise DirectoryError(
                    f"{where}: {g!r} is not a THRIVE grouping code (use one of {', '.join(canonical.GROUPINGS)})"
                )
        service = Service(
            code=code,
            name=_text(entry, "name", where),
            agency=owner,
            # keep the CodeSystem's order, whatever order the file used: groupings are not ranked
            groupings=tuple(g for g in canonical.GROUPINGS if g in groupings),
            description=_text(entry, "description", where),
            phone=_phone(entry, where),
            website=_website(entry, where),
        )
        index[("service", code)] = service
        services.append(service)

    return Directory(site=site, locality=locality, agencies=tuple(agencies), services=tuple(services), _by_key=index)


def load(path: str | Path | None = None) -> Directory:
    """Read and check a directory file (the example one when ``path`` is None)."""
    path = Path(path) if path else EXAMPLE_PATH
    try:
        raw = path.read_bytes()
    except OSError as exc:
        raise DirectoryError(f"{path}: cannot read the directory file ({exc.strerror})") from None
    try:
        data = json.loads(raw.decode("utf-8"))
    except UnicodeDecodeError:
        raise DirectoryError(f"{path}: the directory file is not UTF-8 text") from None
    except json.JSONDecodeError as exc:
        raise DirectoryError(f"{path}: not valid JSON (line {exc.lineno}, column {exc.colno}: {exc.msg})") from None
    return parse(data, source=str(path.name))


# --- FHIR ------------------------------------------------------------------------------------
def agency_ref(directory: Directory, agency: Agency) -> str:
    """``Organization/<id>`` of a directory agency (stable across restarts and deployments)."""
    from thrive_fhir.builders import build_organization

    key = ("agency-ref", agency.key)
    if key not in directory._by_key:
        directory._by_key[key] = "Organization/" + build_organization(_org_input(directory, agency))["id"]
    return directory._by_key[key]


def names_by_ref(directory: Directory) -> dict[str, str]:
    """``{"Organization/…": agency name, "HealthcareService/…": service name}`` for every entry
    (the directory's agencies and services are not in the local store, but plans point at them)."""
    key = ("names-by-ref",)
    if key not in directory._by_key:
        names = {agency_ref(directory, a): a.name for a in directory.agencies}
        names.update({service_ref(directory, s): s.name for s in directory.services})
        directory._by_key[key] = names
    return directory._by_key[key]


def service_ref(directory: Directory, service: Service) -> str:
    """``HealthcareService/<id>`` of a directory service."""
    from thrive_fhir.ids import resource_id

    return "HealthcareService/" + resource_id("local-offer", _local_id(directory, "service", service.code))


def _local_id(directory: Directory, kind: str, key: str) -> str:
    from smart_app.journeys.localids import derived_uuid4

    # Derived, not random: reloading the file must give every agency and service the same id.
    return derived_uuid4("directory", directory.site, kind, key)


def _org_input(directory: Directory, agency: Agency):
    from thrive_fhir.builders import OrganizationInput

    return OrganizationInput(
        local_id=_local_id(directory, "agency", agency.key),
        name=agency.name,
        agency_type=agency.kind,
        ods_code=agency.ods,
        phone=agency.phone,
    )


def to_fhir(directory: Directory) -> list[dict]:
    """Every agency as an Organization and every service as a HealthcareService (thrive-local-offer).

    The resources have deterministic ids, so publishing them again (e.g. after editing the file)
    updates the same resources in the shared store instead of adding copies.
    """
    from thrive_fhir.builders import Coded, LocalOfferInput, build_local_offer, build_organization

    out: list[dict] = []
    org_refs: dict[str, str] = {}
    for agency in directory.agencies:
        org = build_organization(_org_input(directory, agency))
        org_refs[agency.key] = f"Organization/{org['id']}"
        out.append(org)
    for service in directory.services:
        out.append(
            build_local_offer(
                LocalOfferInput(
                    local_id=_local_id(directory, "service", service.code),
                    provided_by=org_refs[service.agency.key],
                    offer=Coded(system=directory.code_system, code=service.code, display=service.name),
                    name=service.name,
                    groupings=service.groupings,
                    phone=service.phone,
                    url=service.website,
                )
            )
        )
    return out
