"""The clinical journeys of the clinician SMART app (one blueprint per journey).

``register(app)`` is called by ``smart_app.create_app``. It loads the locality's services
directory (the config's ``directory`` field; else ``app.config["THRIVE_DIRECTORY"]`` or the
environment variable of the same name; else the invented example directory), registers the blueprints and their navigation entries, and the
few template filters the journey pages use.

Journeys: grouping (shared decision), goals (GBO), safety plan, care team, signposting and
referral, sharing consent, ending help. Each one saves through :mod:`smart_app.journeys.saving` (one local
transaction with its outbox row; resends and conflicting edits never overwrite).
"""

from __future__ import annotations

import os
from datetime import UTC, datetime

from flask import Blueprint
from markupsafe import Markup, escape


def register(app) -> None:
    from smart_app import directory as directory_mod
    from smart_app.context import register_nav

    from . import care_team, consent, ending, goals, grouping, safety_plan, signposting
    from .common import DIRECTORY_KEY

    path = (
        app.extensions["thrive"].config.directory
        or app.config.get("THRIVE_DIRECTORY")
        or os.environ.get("THRIVE_DIRECTORY")
    )
    app.extensions[DIRECTORY_KEY] = directory_mod.load(path)

    assets = Blueprint("journey_assets", __name__, static_folder="static", static_url_path="/journeys-static")
    app.register_blueprint(assets)
    for module in (grouping, goals, safety_plan, care_team, signposting, consent, ending):
        app.register_blueprint(module.bp)
    register_nav(app, "grouping.index", "Grouping", order=20)
    register_nav(app, "goals.index", "Goals", order=30)
    register_nav(app, "safety_plan.index", "Safety plan", order=40)
    register_nav(app, "care_team.index", "Care team", order=45)
    register_nav(app, "signposting.index", "Services", order=50)
    register_nav(app, "consent.index", "Sharing", order=60)
    register_nav(app, "ending.index", "Ending help", order=70)

    app.jinja_env.filters["error_link"] = error_link
    app.jinja_env.filters["journey_datetime"] = journey_datetime
    app.jinja_env.filters["journey_date"] = journey_date
    app.jinja_env.filters["multiline"] = multiline
    app.jinja_env.filters["epoch_datetime"] = epoch_datetime
    from .formkit import FormErrors, new_token

    app.jinja_env.globals["new_token"] = new_token
    app.jinja_env.globals["none_errors"] = FormErrors()


def error_link(item: tuple[str, str]) -> dict:
    """(field id, message) -> an error-summary entry linking to the field."""
    field_id, message = item
    return {"text": message, "href": f"#{field_id}"}


def journey_datetime(value) -> str:
    """'4 March 2025 at 3:30pm' (UK style, as the NHS style guide writes dates and times)."""
    from smart_app.wording import datetime_text

    if isinstance(value, str):
        from smart_app.records import parse_when

        value = parse_when(value)
    return datetime_text(value)


def journey_date(value) -> str:
    from smart_app.wording import date_text

    if isinstance(value, str):
        from smart_app.records import parse_when

        value = parse_when(value)
    return date_text(value)


def multiline(text: str | None) -> Markup:
    """Keep the line breaks people typed, safely."""
    if not text:
        return Markup("")
    return Markup("<br>").join(escape(line) for line in str(text).split("\n"))


def epoch_datetime(value) -> str:
    """A local-store save time (UTC epoch seconds) in words."""
    from datetime import timezone

    if isinstance(value, (int, float)):
        return journey_datetime(datetime.fromtimestamp(value, tz=UTC))
    return journey_datetime(value)
