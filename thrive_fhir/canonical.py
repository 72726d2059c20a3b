"""Canonical URLs, identifier systems and fixed codes: the one home for every URL the project mints.

Canonical URLs and identifier systems must never change once anything is published (a changed
system would split one young person's history in two in every agency's store), so they live here
and nowhere else. The FSH sources in ``profiles/`` use the same base; a test checks the two agree.
"""

from __future__ import annotations

import uuid

#: The project's canonical base. Chosen once; see README "Canonical URLs".
BASE = "https://thrive-fhir.org/fhir"

#: Version of the profiles and terminology published from ``profiles/``.
IG_VERSION = "0.1.0"

#: UUIDv5 namespace for deterministic resource ids: ``uuid5(NAMESPACE_URL, BASE)``.
ID_NAMESPACE = uuid.uuid5(uuid.NAMESPACE_URL, BASE)


def cs(name: str) -> str:
    """Canonical URL of one of our CodeSystems."""
    return f"{BASE}/CodeSystem/{name}"


def vs(name: str) -> str:
    """Canonical URL of one of our ValueSets."""
    return f"{BASE}/ValueSet/{name}"


def sd(name: str) -> str:
    """Canonical URL of one of our StructureDefinitions (profiles and extensions)."""
    return f"{BASE}/StructureDefinition/{name}"


def id_system(kind: str) -> str:
    """Business identifier system for a kind of record the app creates (docs/design/fhir-model.md section 4)."""
    return f"{BASE}/Id/{kind}"


# --- our CodeSystems -------------------------------------------------------------------------
CS_GROUPING = cs("thrive-grouping")
CS_GROUPING_VARIANTS = cs("thrive-grouping-variants")
CS_CONCEPTS = cs("thrive-concepts")
CS_INVOLVEMENT = cs("involvement")
CS_CHANGE_REASON = cs("grouping-change-reason")
CS_SAFETY_PLAN_SECTION = cs("safety-plan-section")
CS_SDM_PARTICIPANT = cs("sdm-participant")
CS_DECISION_COMPETENCE = cs("decision-competence")
CM_GROUPING_VARIANTS = f"{BASE}/ConceptMap/thrive-grouping-variants"

# --- our ValueSets ---------------------------------------------------------------------------
VS_GROUPING = vs("thrive-grouping")
VS_INVOLVEMENT = vs("involvement")
VS_CHANGE_REASON = vs("grouping-change-reason")
VS_GBO_SCORE = vs("gbo-goal-score")
VS_GBO_SCORE_ANY = vs("gbo-goal-score-any")
VS_SAFETY_PLAN_SECTION = vs("safety-plan-section")
VS_SDM_PARTICIPANT = vs("sdm-participant")
VS_DECISION_COMPETENCE = vs("decision-competence")
VS_LOCAL_OFFER = vs("local-offer")
VS_GROUPING_METHOD = vs("grouping-method")  # shared-decision-making | decided-without-agreement
VS_REQUEST_CATEGORY = vs("request-category")  # signposting | referral (ServiceRequest.category)
VS_RECORDED_OBSERVATION_STATUS = vs("recorded-observation-status")  # final|amended|corrected|entered-in-error

# --- our profiles ----------------------------------------------------------------------------
PROFILE_GROUPING = sd("thrive-grouping-observation")
PROFILE_GBO_GOAL = sd("thrive-gbo-goal")
PROFILE_GBO_SCORE = sd("thrive-gbo-score")
PROFILE_SAFETY_PLAN = sd("thrive-safety-plan")
PROFILE_CONSENT = sd("thrive-sharing-consent")
EXT_DECISION_COMPETENCE = sd("sharing-decision-competence")  # on the sharing Consent
PROFILE_SIGNPOSTING = sd("thrive-signposting")
PROFILE_REFERRAL_TASK = sd("thrive-referral-task")
PROFILE_PROVENANCE = sd("thrive-provenance")
PROFILE_EPISODE = sd("thrive-episode")
PROFILE_CARE_TEAM = sd("thrive-care-team")
PROFILE_LOCAL_OFFER = sd("thrive-local-offer")
PROFILE_RISK_FLAG = sd("thrive-risk-flag")
PROFILE_READ_AUDIT = sd("thrive-read-audit")
PROFILE_AGENCY_CONFIRMATION = sd("thrive-agency-confirmation")  # an agency confirms a safety plan item

#: Subscriptions (R5 Backport IG on R4): the topic "a young person's shared plan changed". A change to
#: any plan resource in a young person's compartment (grouping, goals, scores, safety plan, referral,
#: Task, Consent, CareTeam) raises one event whose focus is the changed resource and whose additional
#: context is the Patient. Notifications are ``id-only``: references, never health data.
TOPIC_SHARED_PLAN_CHANGED = f"{BASE}/SubscriptionTopic/shared-plan-changed"
#: The Backport IG's own canonicals (hl7.fhir.uv.subscriptions-backport, R4).
BACKPORT_SD = "http://hl7.org/fhir/uv/subscriptions-backport/StructureDefinition"

# --- the five groupings (display, plain-language definition live in the CodeSystem) ------------
GROUPINGS = (
    "thriving",
    "getting-advice",
    "getting-help",
    "getting-more-help",
    "getting-risk-support",
)

# --- external systems ------------------------------------------------------------------------
SNOMED = "http://snomed.info/sct"
NHS_NUMBER = "https://fhir.nhs.uk/Id/nhs-number"
ODS_ORG = "https://fhir.nhs.uk/Id/ods-organization-code"
SDS_USER = "https://fhir.nhs.uk/Id/sds-user-id"
OBS_CATEGORY = "http://terminology.hl7.org/CodeSystem/observation-category"
EXT_EPISODE = "http://hl7.org/fhir/StructureDefinition/workflow-episodeOfCare"
EXT_GOAL_ACCEPTANCE = "http://hl7.org/fhir/StructureDefinition/goal-acceptance"
EXT_PERTAINS_TO_GOAL = "http://hl7.org/fhir/StructureDefinition/resource-pertainsToGoal"

#: GBO goal score codes we write, by goal slot (docs/design/fhir-model.md 1.6, the 2024 family).
GBO_SCORE_CODES = {
    1: ("1638531000000102", "Goal-Based Outcomes tool goal progress chart - goal 1 score"),
    2: ("1638541000000106", "Goal-Based Outcomes tool goal progress chart - goal 2 score"),
    3: ("1638551000000109", "Goal-Based Outcomes tool goal progress chart - goal 3 score"),
}
#: Older GBO codes: read and report, never write.
GBO_SCORE_CODES_LEGACY = {
    "1034351000000101": 1,
    "1034361000000103": 2,
    "1034371000000105": 3,
    "959951000000108": None,  # generic: says no slot, cannot be paired per goal
}
SNOMED_CRISIS_PLAN = ("736253002", "Mental health crisis plan")

#: The local information-sharing agreement a sharing Consent rests on (Consent.policy.uri).
SHARING_POLICY = f"{BASE}/policy/information-sharing-agreement-v1"

# --- more external systems (UK Core, NHS) used by the people/organisation builders ------------
ODS_SITE = "https://fhir.nhs.uk/Id/ods-site-code"
SDS_ROLE_PROFILE = "https://fhir.nhs.uk/Id/sds-role-profile-id"
EXT_NHS_NUMBER_VERIFICATION = "https://fhir.hl7.org.uk/StructureDefinition/Extension-UKCore-NHSNumberVerificationStatus"
CS_NHS_NUMBER_VERIFICATION = "https://fhir.hl7.org.uk/CodeSystem/UKCore-NHSNumberVerificationStatusEngland"


def ukcore(resource_type: str) -> str:
    """Canonical URL of a UK Core profile, for resources we do not profile ourselves."""
    return f"https://fhir.hl7.org.uk/StructureDefinition/UKCore-{resource_type}"


def local_offer_cs(site: str) -> str:
    """CodeSystem of one site's local offer (docs/design/fhir-model.md 1.2: ``local-offer-<site>``)."""
    return cs(f"local-offer-{site}")


#: Reliable change on the GBO scale (NHS England CYP outcome metric).
GBO_RELIABLE_CHANGE = 3


def source_uri(ods_code: str) -> str:
    """``meta.source`` for resources sent by the deployment of one organisation."""
    return f"{BASE}/source/{ods_code}"
