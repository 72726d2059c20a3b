"""The CapabilityStatement, generated from what the code implements (never hand-maintained).

Types come from the R4 core package; per-type search parameters, includes and interactions come from
``search_params`` and the router's own table, so the statement cannot claim more than the store does.
"""

from __future__ import annotations

from ..canonical import BACKPORT_SD, TOPIC_SHARED_PLAN_CHANGED
from .search_params import INCLUDES, PARAMS, params_for

TYPE_INTERACTIONS = ("read", "vread", "update", "delete", "history-instance", "history-type", "create", "search-type")
SYSTEM_INTERACTIONS = ("transaction", "batch", "history-system")
EXPORT_SYSTEM = "http://hl7.org/fhir/uv/bulkdata/OperationDefinition/export"
EXPORT_PATIENT = "http://hl7.org/fhir/uv/bulkdata/OperationDefinition/patient-export"
SMART_OAUTH = "http://fhir-registry.smarthealthit.org/StructureDefinition/oauth-uris"
TOPIC_CANONICAL_EXT = f"{BACKPORT_SD}/capabilitystatement-subscriptiontopic-canonical"
BACKPORT_OPS = "http://hl7.org/fhir/uv/subscriptions-backport/OperationDefinition"
PROFILE_BACKPORT_SUBSCRIPTION = f"{BACKPORT_SD}/backport-subscription"


def capability_statement(
    base: str,
    resource_types: frozenset[str],
    *,
    software_version: str,
    smart_configuration: dict | None,
    access_control: bool,
    subscriptions: bool = False,
) -> dict:
    resources = []
    for rtype in sorted(resource_types):
        params = [
            {"name": "_id", "type": "token", "documentation": "Resource.id"},
            {"name": "_lastUpdated", "type": "date", "documentation": "Resource.meta.lastUpdated"},
        ]
        params += [
            {"name": p.name, "type": p.type, "documentation": p.documentation} for p in params_for(rtype).values()
        ]
        entry = {
            "type": rtype,
            "interaction": [{"code": c} for c in TYPE_INTERACTIONS],
            "versioning": "versioned-update",
            "readHistory": True,
            "updateCreate": True,
            "conditionalCreate": True,
            "conditionalRead": "not-supported",
            "conditionalUpdate": True,
            "conditionalDelete": "single",
            "referencePolicy": ["literal", "local"],
            "searchParam": params,
        }
        includes = [i for i in INCLUDES if i.startswith(rtype + ":")]
        if includes:
            entry["searchInclude"] = includes
        revincludes = [i for i in INCLUDES if _may_target(i, rtype)]
        if revincludes:
            entry["searchRevInclude"] = revincludes
        if rtype == "Patient":
            entry["operation"] = [{"name": "export", "definition": EXPORT_PATIENT}]
        if rtype == "Subscription":
            entry = subscription_entry(subscriptions)
        resources.append(entry)
    rest: dict = {
        "mode": "server",
        "resource": resources,
        "interaction": [{"code": c} for c in SYSTEM_INTERACTIONS],
        "searchParam": [
            {"name": "_count", "type": "number"},
            {"name": "_sort", "type": "string", "documentation": "_id, -_id, _lastUpdated, -_lastUpdated"},
        ],
        "operation": [{"name": "export", "definition": EXPORT_SYSTEM}],
    }
    if subscriptions:
        rest["extension"] = [{"url": TOPIC_CANONICAL_EXT, "valueCanonical": TOPIC_SHARED_PLAN_CHANGED}]
    if access_control:
        security = {
            "service": [
                {
                    "coding": [
                        {
                            "system": "http://terminology.hl7.org/CodeSystem/restful-security-service",
                            "code": "SMART-on-FHIR",
                        }
                    ]
                }
            ],
            "description": "Bearer tokens required; SMART v2 (and v1) resource scopes enforced.",
        }
        if smart_configuration:
            ext = [
                {"url": name, "valueUri": smart_configuration[key]}
                for name, key in (("authorize", "authorization_endpoint"), ("token", "token_endpoint"))
                if smart_configuration.get(key)
            ]
            if ext:
                security["extension"] = [{"url": SMART_OAUTH, "extension": ext}]
        rest["security"] = security
    return {
        "resourceType": "CapabilityStatement",
        "status": "active",
        "date": "2025-01-01",
        "kind": "instance",
        "software": {"name": "THRIVE-FHIR embedded store", "version": software_version},
        "implementation": {"description": "THRIVE-FHIR embedded FHIR R4 server", "url": base},
        "fhirVersion": "4.0.1",
        "format": ["application/fhir+json", "json"],
        "rest": [rest],
    }


def subscription_entry(enabled: bool) -> dict:
    """Subscription as subscriptions/api.py serves it: the caller's own only, no conditional or
    Bundle writes, and (when the store delivers) the Backport IG's $status and $events."""
    entry: dict = {
        "type": "Subscription",
        "interaction": [
            {"code": c} for c in ("read", "vread", "update", "delete", "history-instance", "create", "search-type")
        ],
        "versioning": "versioned",
        "readHistory": True,
        "updateCreate": False,
        "conditionalCreate": False,
        "conditionalUpdate": False,
        "conditionalDelete": "not-supported",
        "searchParam": [
            {"name": "_id", "type": "token", "documentation": "Resource.id (the caller's own subscriptions only)"},
            {"name": "status", "type": "token", "documentation": "Subscription.status"},
        ],
        "documentation": "Only the client that created a Subscription sees it; channel headers are read back hidden.",
    }
    if enabled:
        entry["supportedProfile"] = [PROFILE_BACKPORT_SUBSCRIPTION]
        entry["operation"] = [
            {"name": "status", "definition": f"{BACKPORT_OPS}/backport-subscription-status"},
            {"name": "events", "definition": f"{BACKPORT_OPS}/backport-subscription-events"},
        ]
    return entry


def _may_target(include: str, rtype: str) -> bool:
    src, name = include.split(":")
    param = PARAMS[src][name]
    return param.target in (None, rtype)
