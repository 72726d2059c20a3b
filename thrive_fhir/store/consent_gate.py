"""Consent enforcement in the store: what a request made with an agency token may see and change.

Why in the store: the Consent is a record, and a record enforces nothing. Any client holding an
agency worker's token could otherwise read every young person in the shared store, whatever the app
in front shows. So the store decides, next to the data, on every path that returns or changes a
resource: read, vread, search (and its ``_include``/``_revinclude``), ``_history``, conditional
operations, transaction/batch entries and writes. ``$export`` and export downloads are refused to
agency tokens outright (a bulk copy is not what an agency's access is for).

Which tokens are agency tokens (docs/consent-enforcement.md): the store is told its *custodians*,
the organisations that hold the record (the trust's deployment, its sync worker). A token whose
``organization`` (the claim the authorization server adds, :attr:`Grant.organization`) is not a
custodian, or that names a user (``fhirUser``) but no organisation at all, is an agency token for
that organisation. A token naming neither a user nor an organisation never gets here from a store
that verifies tokens itself: with custodians configured, token verification refuses it (401,
``AuthSettings.require_organization``). Only an in-process verifier can vouch for one (the sandbox's,
for its own patient directory), and then it is not gated. Without custodians the gate is off, as for
a store that is only an EHR's own API.

The rule itself is :mod:`thrive_fhir.consent_rule`. The store keeps what it says for every current
Consent in ``consent_shares`` (patient, organisation, start, end), written in the same transaction
as the Consent, and compares the period with now on each request: withdrawal takes effect with the
write that withdraws, expiry at the moment it passes. Searches are narrowed in SQL by
``patient_key IN (SELECT patient_key FROM consent_shares WHERE organization = ? AND <period covers
now>)`` on an index led by the organisation, so the filter costs about one index probe per agency
rather than a check per row.

What an agency token sees: resources in the compartment of a young person shared with it, plus
resources of the *directory* types (Organization, Practitioner, HealthcareService, ...) that hold
no one's health data. Anything else, including resources of types the store files under no patient,
is hidden (fail closed). Hidden resources answer exactly as missing ones: the same 404 and body.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import DateTime, String, bindparam, func, select, text
from sqlalchemy.engine import Connection, Engine

from ..consent_rule import shares
from ..smart_scopes import Grant
from . import rawsql
from .errors import FhirError
from .fhirdates import utcnow
from .schema import consent_shares
from .search import Cond

#: Types that hold no one's health data, visible to agency tokens without a consent.
DIRECTORY_TYPES = frozenset(
    {
        "Organization",
        "Practitioner",
        "PractitionerRole",
        "HealthcareService",
        "Location",
        "Endpoint",
        "CodeSystem",
        "ValueSet",
        "ConceptMap",
        "Questionnaire",
        "StructureDefinition",
        "NamingSystem",
        "OperationDefinition",
        "SearchParameter",
        "CapabilityStatement",
        "PlanDefinition",
        "ActivityDefinition",
    }
)

#: Types agency tokens never see: an AuditEvent of a search can name several young people, and its
#: compartment is only the first of them; agencies have no need to read the audit trail.
HIDDEN_TYPES = frozenset({"AuditEvent"})

#: The young people shared with one organisation now (parameters: organisation, now, now).
SHARED_PATIENTS = (
    "SELECT consent_shares.patient_key FROM consent_shares WHERE consent_shares.organization = ? "
    "AND (consent_shares.starts IS NULL OR consent_shares.starts <= ?) "
    "AND (consent_shares.ends IS NULL OR consent_shares.ends >= ?)"
)

NOT_SHARED_WRITE = "The young person's record is not shared with your organisation"


@dataclass(frozen=True)
class Agency:
    """The organisation an agency token acts for (None: a user token naming no organisation)."""

    organization: str | None
    user: str | None
    client_id: str


class ConsentGate:
    """Per-store consent enforcement. ``custodians`` None = off (every method lets everything through)."""

    def __init__(self, engine: Engine, custodians: list[str] | tuple[str, ...] | None):
        self.engine = engine
        self.custodians = frozenset(custodians) if custodians is not None else None
        self.sql = rawsql.Runner(engine)
        self.postgres = engine.dialect.name == "postgresql"

    # --- set-up ----------------------------------------------------------------------------------

    def install(self) -> None:
        """Fill ``consent_shares`` (created with the schema) from the current Consents when it is
        empty (a database written before this table existed). Idempotent; rows duplicated by a concurrent
        writer during the fill are harmless (the filter is an IN)."""
        with self.engine.begin() as conn:
            if conn.execute(select(func.count()).select_from(consent_shares)).scalar_one():
                return
            rows = conn.execute(
                text(
                    "SELECT res_id, patient_key, content FROM resource_versions "
                    "WHERE res_type = 'Consent' AND is_current AND NOT deleted "
                    "AND patient_key IS NOT NULL"
                )
            ).all()
            values = [
                {
                    "consent_id": rid,
                    "patient_key": pkey,
                    "organization": s.organization,
                    "starts": s.starts,
                    "ends": s.ends,
                }
                for rid, pkey, content in rows
                for s in shares(json.loads(content))
            ]
            if values:
                conn.execute(consent_shares.insert(), values)

    # --- who is gated ----------------------------------------------------------------------------

    def agency(self, grant: Grant | None) -> Agency | None:
        """The agency a token acts for, or None when the token is not consent-gated."""
        if self.custodians is None or grant is None:
            return None
        if grant.organization in self.custodians:
            return None
        if grant.organization is None and grant.user is None:
            return None  # vouched for by an in-process verifier (see the module docstring)
        return Agency(grant.organization, grant.user, grant.client_id)

    # --- reads -----------------------------------------------------------------------------------

    def search_condition(self, grant: Grant | None, rtype: str) -> Cond | None:
        """The SQL condition narrowing a search of ``rtype`` to what the token may see (None: no narrowing)."""
        agency = self.agency(grant)
        if agency is None or rtype in DIRECTORY_TYPES:
            return None
        if agency.organization is None or rtype in HIDDEN_TYPES:
            return Cond("1 = 0", ())
        now = utcnow()
        # A Patient's patient_key is its own id: testing res_id lets the database drive the search
        # from the few shared young people through the (res_type, res_id) index instead of walking
        # every Patient in id order and testing each.
        column = "resource_versions.res_id" if rtype == "Patient" else "resource_versions.patient_key"
        if self.postgres:  # PostgreSQL: the shared set first (an InitPlan), then index probes for it
            return Cond(f"{column} = ANY(ARRAY({SHARED_PATIENTS}))", (agency.organization, now, now))
        return Cond(f"{column} IN ({SHARED_PATIENTS})", (agency.organization, now, now))

    def row_condition(self, grant: Grant | None) -> Cond | None:
        """As :meth:`search_condition` for statements over rows of any type (``_history``)."""
        agency = self.agency(grant)
        if agency is None:
            return None
        directory = ", ".join(f"'{t}'" for t in sorted(DIRECTORY_TYPES))  # constants, not client input
        hidden = ", ".join(f"'{t}'" for t in sorted(HIDDEN_TYPES))
        if agency.organization is None:
            return Cond(f"(resource_versions.patient_key IS NULL AND resource_versions.res_type IN ({directory}))", ())
        now = utcnow()
        return Cond(
            f"((resource_versions.patient_key IS NULL AND resource_versions.res_type IN ({directory})) "
            f"OR (resource_versions.patient_key IN ({SHARED_PATIENTS}) "
            f"AND resource_versions.res_type NOT IN ({hidden})))",
            (agency.organization, now, now),
        )

    def history_clause(self, grant: Grant | None):
        """:meth:`row_condition` as a SQLAlchemy clause for the Core-built ``_history`` statement."""
        cond = self.row_condition(grant)
        if cond is None:
            return None
        sql, binds = cond.sql, []
        for i, value in enumerate(cond.params):
            sql = sql.replace("?", f":cg{i}", 1)
            binds.append(bindparam(f"cg{i}", value, type_=DateTime if isinstance(value, datetime) else String))
        return text(sql).bindparams(*binds)

    def hides(self, grant: Grant | None, rtype: str, patient_key: str | None, dbapi=None) -> bool:
        """True when the token may not see a resource of ``rtype`` in ``patient_key``'s compartment."""
        agency = self.agency(grant)
        if agency is None:
            return False
        if rtype in HIDDEN_TYPES:
            return True
        if patient_key is None:
            return rtype not in DIRECTORY_TYPES
        return patient_key not in self.shared_among(agency, [patient_key], dbapi)

    def shared_among(self, agency: Agency, patient_keys: list[str], dbapi=None) -> set[str]:
        """Those of ``patient_keys`` shared with the agency now (one query)."""
        keys = sorted({k for k in patient_keys if k})
        if not keys or agency.organization is None:
            return set()
        now = utcnow()
        out: set[str] = set()
        for start in range(0, len(keys), 500):
            chunk = keys[start : start + 500]
            query = (
                SHARED_PATIENTS + f" AND consent_shares.patient_key IN ({rawsql.placeholders(len(chunk))})",
                (agency.organization, now, now, *chunk),
            )
            if dbapi is not None:
                rows = self.sql.fetch(dbapi, *query)
            else:
                with self.sql.reading(snapshot=False) as raw:
                    rows = self.sql.fetch(raw, *query)
            out.update(r[0] for r in rows)
        return out

    def visible_rows(self, grant: Grant | None, rows: list, dbapi=None, shared_already=frozenset()) -> list:
        """``rows`` (with ``res_type`` and ``patient_key``) the token may see, in order.

        ``shared_already``: young people this request has just found shared (a search's own matches,
        narrowed by :meth:`search_condition`); not asked again, so the plan view's ``_include`` of the
        young person's own Goals costs no query."""
        agency = self.agency(grant)
        if agency is None:
            return rows
        unknown = [r.patient_key for r in rows if r.patient_key and r.patient_key not in shared_already]
        shared = set(shared_already) | self.shared_among(agency, unknown, dbapi)
        return [
            r
            for r in rows
            if r.res_type not in HIDDEN_TYPES
            and (r.patient_key in shared if r.patient_key else r.res_type in DIRECTORY_TYPES)
        ]

    def refuse_export(self, grant: Grant | None) -> None:
        if self.agency(grant) is not None:
            raise FhirError(403, "Bulk export is not available to agency access tokens", "forbidden")

    # --- writes ----------------------------------------------------------------------------------

    def check_write(self, grant: Grant | None, op, old_patient: str | None) -> None:
        """Refuse a write by an agency token that touches a young person not shared with it.

        ``op`` is a :class:`~thrive_fhir.store.writes.WriteOp` as ``writes.apply`` prepared it. An
        existing resource the token may not see answers 404 with the body of a read of a missing id;
        content placed in a young person's record that is not shared is a 403 that reads the same
        whether or not that young person exists. (A delete of a hidden resource is a 404 where a
        delete of a missing one is a 204: agency tokens are never granted delete.)
        """
        if self.agency(grant) is None:
            return
        # The content first: refused the same whether or not a resource with this id exists.
        if op.method != "DELETE" and self.hides(grant, op.rtype, op.patient_key):
            refused = FhirError(403, NOT_SHARED_WRITE, "forbidden")
            refused.audit_patient = op.patient_key  # for the AuditEvent only, never in the answer
            raise refused
        exists = op.status == 200 or (op.method == "DELETE" and not op.noop)  # as writes.apply set them
        if exists and self.hides(grant, op.rtype, old_patient):
            if op.if_match is not None:  # exactly what If-Match on a missing resource answers
                raise FhirError(
                    412, f'If-Match W/"{op.if_match}" does not match the current version (none)', "conflict"
                )
            raise FhirError(404, f"{op.rtype}/{op.rid} is not known", "not-found")


def index_consent_writes(conn: Connection, ops) -> None:
    """Keep ``consent_shares`` in step with the Consents written by ``ops`` (inside their transaction)."""
    consents = [op for op in ops if op.rtype == "Consent" and not op.noop]
    if not consents:
        return
    sql, dbapi = rawsql.for_connection(conn)
    ids = [op.rid for op in consents]
    for start in range(0, len(ids), 400):
        chunk = ids[start : start + 400]
        sql.run(
            dbapi,
            f"DELETE FROM consent_shares WHERE consent_id IN ({rawsql.placeholders(len(chunk))})",  # noqa: S608 - only '?' placeholders and our own SQL are interpolated; values are bound
            tuple(chunk),
        )
    for op in consents:
        if op.method == "DELETE" or op.resource is None or not op.patient_key:
            continue
        for share in shares({**op.resource, "resourceType": "Consent"}):
            sql.run(
                dbapi,
                "INSERT INTO consent_shares (consent_id, patient_key, organization, starts, ends) "
                "VALUES (?, ?, ?, ?, ?)",
                (op.rid, op.patient_key, share.organization, share.starts, share.ends),
            )


__all__ = [
    "DIRECTORY_TYPES",
    "HIDDEN_TYPES",
    "SHARED_PATIENTS",
    "Agency",
    "ConsentGate",
    "consent_shares",
    "index_consent_writes",
]
