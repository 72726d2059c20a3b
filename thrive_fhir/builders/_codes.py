"""Code lists the builders check input against, with their systems.

The CodeSystems in ``profiles/`` are the source of truth; these tuples mirror them so a builder
can refuse a bad code without loading terminology, and a test (tests/foundation/test_builders_codes.py)
checks that the two agree.
"""

from __future__ import annotations

INVOLVEMENT = ("agreed", "partly-agreed", "not-agreed", "not-involved", "not-applicable")
CHANGE_REASONS = (
    "needs-changed",
    "goals-achieved",
    "not-benefiting",
    "risk-increased",
    "risk-reduced",
    "yp-or-family-choice",
    "service-change",
    "other",
)
GROUPING_METHODS = ("shared-decision-making", "decided-without-agreement")
SAFETY_PLAN_SECTIONS = (
    "warning-signs",
    "internal-coping",
    "social-distraction",
    "people-to-ask",
    "professionals-agencies",
    "safe-environment",
    "reasons-for-living",
    "agency-actions",
)
#: R4 goal-achievement (http://terminology.hl7.org/CodeSystem/goal-achievement).
GOAL_ACHIEVEMENT_SYSTEM = "http://terminology.hl7.org/CodeSystem/goal-achievement"
GOAL_ACHIEVEMENT = (
    "in-progress",
    "improving",
    "worsening",
    "no-change",
    "achieved",
    "sustaining",
    "not-achieved",
    "no-progress",
    "not-attainable",
)
GOAL_LIFECYCLE = (
    "proposed",
    "planned",
    "accepted",
    "active",
    "on-hold",
    "completed",
    "cancelled",
    "entered-in-error",
    "rejected",
)
#: Lifecycle states that count towards the three-goal limit (docs/design/fhir-model.md 2.3).
GOAL_OPEN = ("proposed", "accepted", "active", "on-hold")
GOAL_ACCEPTANCE = ("agree", "disagree", "pending")
