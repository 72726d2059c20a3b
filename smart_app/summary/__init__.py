"""The Summary page: current grouping, goals and progress, safety plan, signposts, sharing, care team."""

from __future__ import annotations

import logging

from flask import render_template, request

from ..context import COOKIE_NAME, current_launch, launch_blueprint, launch_required, state
from .data import build_summary

log = logging.getLogger("smart_app.summary")

bp = launch_blueprint("summary", __name__, audience="any")  # an agency launch is sent to its shared plan


@bp.app_template_filter("when_text")
def when_text(value) -> str:
    """A date or time in the app's one style ("4 March 2025 at 3:30pm"; ``smart_app.wording``),
    for pages that must work with the journeys switched off."""
    from ..wording import datetime_text

    return datetime_text(value)


@bp.get("/summary")
@launch_required
def index():
    launch = current_launch()
    if launch.mode != "ehr":
        from flask import redirect

        return redirect(launch.url_for("agency.index"), code=303)
    # The young person's shared history (with a [shared_store] configured): the store's record merged
    # with local saves not yet synced, cached per launch (freshness rule in shared_history).
    from .. import records
    from .shared_history import for_launch

    shared = for_launch(launch)
    summary = None
    if shared is not None:
        try:
            summary = build_summary(
                launch.local_store,
                launch.patient_ref,
                patient_name=(launch.banner or {}).get("name"),
                launch=launch,
                shared=shared,
            )
        except Exception as exc:  # something in the shared record we cannot draw: never a 500, show ours
            log.warning("the shared record could not be drawn on the Summary (%s)", type(exc).__name__)
            shared.status, summary = "unavailable", None
        else:
            # The page and the every-page risk banner share the request's one records snapshot: here
            # the merged one, so a risk grouping recorded by another team shows in the banner too.
            records.use_snapshot(launch.local_store, launch.patient_ref, shared.records)
    if summary is None:
        summary = build_summary(
            launch.local_store, launch.patient_ref, patient_name=(launch.banner or {}).get("name"), launch=launch
        )
    drafts = state().sessions.drafts_for(request.cookies.get(COOKIE_NAME), launch.record)
    return render_template(
        "summary/index.html",
        summary=summary,
        drafts=drafts,
        shared=shared,
    )


@bp.get("/summary/shared-status")
@launch_required
def shared_status():
    """Whether the launch's shared read is still in flight (the Summary's "still loading" note polls
    this with script, then reloads; no store request is made here)."""
    from .shared_history import loading

    return {"loading": loading(current_launch())}
