"""What every journey view shares: the directory, the form token, rendering with errors, and the
friendly answers to a conflict, a resent form or a builder's refusal."""

from __future__ import annotations

from datetime import UTC, date, datetime

from flask import current_app, redirect, render_template, request

from smart_app.directory import DIRECTORY_KEY, agency_ref
from thrive_fhir.builders import BuildError

from .formkit import FormErrors, new_token
from .saving import Conflict


def directory():
    """The locality's services directory, loaded once when the app starts (see ``register``)."""
    return current_app.extensions[DIRECTORY_KEY]


def other_agencies(launch) -> list:
    """The directory's agencies except the launch's own organisation: those a plan can be shared
    with, who can take part in a decision, join the care team or hold a safety plan item."""
    d = directory()
    return [a for a in d.agencies if agency_ref(d, a) != launch.organization_ref]


def today() -> date:
    return datetime.now(UTC).date()


def now() -> datetime:
    # full precision: two decisions in one second must still be ordered (derivedFrom, effective)
    return datetime.now(UTC)


def render(template: str, *, status: int = 200, errors: FormErrors | None = None, values: dict | None = None, **ctx):
    """Render a journey page. ``values`` redraws the form with what was typed; a fresh page gets a
    new idempotency token, a redrawn one keeps the posted token so a fixed-up resend still counts
    as the same submission."""
    values = dict(values or {})
    if not values.get("token"):
        values["token"] = new_token()
    return render_template(template, errors=errors or FormErrors(), values=values, **ctx), status


def build_error_to_form(exc: BuildError, mapping: dict[str, str], errors: FormErrors, fallback: str) -> None:
    """Show a builder's refusal next to the form field it is about (``mapping``: builder field
    prefix -> form field id); anything unmapped goes on ``fallback``."""
    field = exc.field.split("[", 1)[0].split(".", 1)[0]
    errors.add(mapping.get(exc.field, mapping.get(field, fallback)), exc.message.rstrip("."))


#: Success messages by key. A redirect carries only the key (``?saved=grouping``), never free text
#: and never health data: Flask's cookie session is not used by this app (docs/design/smart-launch.md TS-01).
SAVED_MESSAGES = {
    "grouping": "The grouping has been recorded.",
    "goal": "The goal has been added.",
    "ratings": "The ratings have been saved.",
    "discussion": "The discussion has been recorded.",
    "goal-closed": "The goal has been closed.",
    "safety-plan": "The safety plan has been saved.",
    "signposting": "The signposting has been recorded.",
    "referral": "The referral has been sent.",
    "consent": "The sharing agreement has been saved.",
    "withdrawn": "Sharing has been withdrawn.",
    "ending": "The ending of help has been recorded.",
    "care-team": "The care team has been updated.",
    "care-team-removed": "They have been removed from the care team.",
    "duplicate": "This was already saved. Nothing was saved twice.",
}


def saved_message() -> str | None:
    return SAVED_MESSAGES.get(request.args.get("saved", ""))


def done(launch, endpoint: str, key: str, outcome: str = "saved", **values):
    """Post/redirect/get: a saved form never re-posts on refresh."""
    return redirect(launch.url_for(endpoint, saved="duplicate" if outcome == "duplicate" else key, **values), code=303)


def conflict_page(template: str, conflict: Conflict, **ctx):
    """Both versions side by side, nothing saved (HTTP 409 so scripts can tell)."""
    return render(template, status=409, conflict=conflict, **ctx)
