"""The Summary page: current grouping, goals and progress, safety plan, signposts, sharing, care team."""

from __future__ import annotations

from flask import render_template, request

from ..context import COOKIE_NAME, current_launch, launch_blueprint, launch_required, state
from .chart import progress_chart
from .data import build_summary

bp = launch_blueprint("summary", __name__)


@bp.get("/summary")
@launch_required
def index():
    launch = current_launch()
    if launch.mode != "ehr":
        from flask import redirect

        return redirect(launch.url_for("agency.index"), code=303)
    summary = build_summary(
        launch.local_store, launch.patient_ref, patient_name=(launch.banner or {}).get("name")
    )
    # The every-page risk alert reads the same facts: reuse them instead of querying again.
    from flask import g

    g.risk_status = {
        "risk_support": summary.risk_support,
        "safety_plan": summary.safety_plan is not None,
        "safety_plan_id": summary.safety_plan_id,
        "safety_plan_review": summary.safety_plan.review_display if summary.safety_plan else None,
        "safety_plan_href": "#safety-plan",
    }
    drafts = state().sessions.drafts_for(request.cookies.get(COOKIE_NAME), launch.record)
    return render_template(
        "summary/index.html",
        summary=summary,
        charts={g.id: progress_chart(g) for g in summary.goals},
        drafts=drafts,
    )
