"""The risk state of a young person: the one definition the banner, the Summary and the Flag share.

Two facts, each answered here only (docs/design/thrive-framework.md, clinical safety notes; docs/design/fhir-model.md, Flag):

* **Getting Risk Support**: the current grouping (the newest agreed, not entered in error) is
  ``getting-risk-support``.
* **An active, in-date safety plan**: the safety plan's status is ``active`` and its agreed review
  date (``period.end``) has not passed. By local convention a plan is out of date after its review
  date; it is still the plan in place, so pages show it as "review overdue" rather than hide it.

Pages show each fact that holds, at first glance (the every-page banner). The
``risk-support-alert`` Flag ("Getting Risk Support: safety plan in place") is active exactly while
BOTH hold; it is derived from the records, never the source of truth.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, date, datetime

from .records import PatientRecords, is_safety_plan, parse_when

RISK_SUPPORT = "getting-risk-support"


@dataclass(frozen=True)
class RiskState:
    risk_support: bool
    plan_id: str | None = None
    plan_review: date | None = None
    plan_in_date: bool = False

    @property
    def has_plan(self) -> bool:
        """There is an active safety plan (in date or not)."""
        return self.plan_id is not None

    @property
    def plan_active(self) -> bool:
        """An active safety plan whose review date has not passed."""
        return self.has_plan and self.plan_in_date

    @property
    def plan_overdue(self) -> bool:
        """An active safety plan past its review date."""
        return self.has_plan and not self.plan_in_date

    @property
    def flag_wanted(self) -> bool:
        """The ``risk-support-alert`` Flag should be active: Getting Risk Support AND an in-date plan."""
        return self.risk_support and self.plan_active

    @property
    def any(self) -> bool:
        """Something the banner must show."""
        return self.risk_support or self.has_plan


def today_utc() -> date:
    return datetime.now(UTC).date()


def assess(grouping_code: str | None, plan: dict | None, today: date | None = None) -> RiskState:
    """The risk state given the current grouping code and the safety plan resource (either may be
    the one about to be saved, so a journey can ask "what will be true after this save?")."""
    today = today or today_utc()
    risk_support = grouping_code == RISK_SUPPORT
    if not plan or plan.get("status") != "active" or not is_safety_plan(plan):
        return RiskState(risk_support)
    end = parse_when((plan.get("period") or {}).get("end"))
    review = end.date() if isinstance(end, datetime) else end
    return RiskState(
        risk_support,
        plan_id=plan.get("id"),
        plan_review=review,
        plan_in_date=review is None or review >= today,
    )


def of_records(recs: PatientRecords, today: date | None = None) -> RiskState:
    """The risk state of what is saved now."""
    grouping = recs.current_grouping
    plan = recs.safety_plan
    return assess(grouping.code if grouping else None, plan.resource if plan else None, today)
