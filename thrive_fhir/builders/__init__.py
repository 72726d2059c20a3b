"""Typed builders: app data in, profiled FHIR R4 JSON (plain dicts) out.

Every ``build_*`` takes a frozen dataclass of app data (references as ``"Type/id"`` strings,
datetimes timezone-aware, dates as ``date``) and returns a resource carrying ``meta.profile``, the
business identifier ``{BASE}/Id/<kind>|<local uuid4>`` and the deterministic id
``thrive_fhir.ids.resource_id(kind, local_id)`` (docs/design/fhir-model.md section 4). Bad input raises
:class:`BuildError` with the input field and a sentence a form can show; a builder never returns a
resource the validator would reject.
"""

from ._common import BuildError, Coded, Record
from .care import (
    CareTeamInput,
    CareTeamMember,
    EpisodeInput,
    LocalOfferInput,
    RiskFlagInput,
    build_care_team,
    build_episode,
    build_local_offer,
    build_risk_flag,
)
from .consent import ConsentInput, build_consent, withdraw_all
from .goals import (
    GoalAcceptance,
    GoalClosing,
    GoalInput,
    GoalScoreInput,
    build_gbo_score,
    build_goal,
    check_goal_slots,
    close_goal,
)
from .grouping import GroupingDecision, PreviousGrouping, build_grouping, canonical_grouping
from .people import (
    OrganizationInput,
    PatientInput,
    PractitionerInput,
    PractitionerRoleInput,
    RelatedPersonInput,
    build_organization,
    build_patient,
    build_practitioner,
    build_practitioner_role,
    build_related_person,
)
from .provenance import ProvenanceInput, SourceRecord, build_provenance
from .safety_plan import SafetyPlanInput, SafetyPlanItem, build_safety_plan
from .signposting import ReferralTaskInput, SignpostInput, build_referral_task, build_signposting

__all__ = [name for name in dir() if not name.startswith("_")]
