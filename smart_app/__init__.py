"""The clinician SMART-on-FHIR app (Flask): EHR launch inside the chart, standalone launch for
agency staff, the Summary page, and the clinical journeys registered by ``smart_app.journeys``.

    from smart_app import create_app
    app = create_app({"database_url": "sqlite:///app.db", "secret_key": "…32+ chars…", "ehr": [...]})

See ``smart_app.config`` for the configuration format and ``smart_app.context`` for what journey
blueprints use.
"""

from __future__ import annotations

import importlib
import mimetypes
import threading
from collections import OrderedDict
from pathlib import Path

import sqlalchemy as sa
from flask import Flask, abort, g, render_template, request, send_from_directory, url_for
from jinja2 import ChainableUndefined, ChoiceLoader, FileSystemLoader, PackageLoader
from markupsafe import Markup

from thrive_fhir.client.smart_launch import SmartClient
from thrive_fhir.localstore import LocalStore

from . import context, errors, security
from .config import AppConfig, ConfigError, load_config_file, parse_config
from .context import audience_allows, read_only_reason
from .launch.routes import bp as launch_bp
from .notification_receiver import bp as notifications_bp
from .sessions import SessionStore
from .shared_changes import SharedChanges
from .state import EXTENSION, AppState
from .summary import bp as summary_bp
from .summary.agency import bp as agency_bp
from .summary.picker import bp as picker_bp
from .writeback import WriteBacks

__all__ = ["AppConfig", "AppState", "ConfigError", "create_app"]

#: NHS.UK frontend files the pages use, served from node_modules (never committed to the repo).
_FRONTEND_FILES = {"nhsuk-frontend.min.css", "nhsuk-frontend.min.js"}

mimetypes.add_type("text/javascript", ".mjs")


def _frontend_dir(config: AppConfig) -> Path:
    if config.nhsuk_frontend_dir:
        return Path(config.nhsuk_frontend_dir)
    here = Path(__file__).resolve().parent
    for root in (here.parent, Path.cwd()):
        candidate = root / "node_modules" / "nhsuk-frontend" / "dist" / "nhsuk"
        if candidate.is_dir():
            return candidate
    return here.parent / "node_modules" / "nhsuk-frontend" / "dist" / "nhsuk"


def create_app(config: dict | AppConfig | str | Path | None = None) -> Flask:
    """Build the app. ``config``: a dict (see ``smart_app.config``), a parsed AppConfig, or a path
    to a TOML/JSON/YAML file. Creates the database tables it needs (local store + sessions)."""
    if isinstance(config, (str, Path)):
        cfg = load_config_file(config)
    elif isinstance(config, AppConfig):
        cfg = config
    else:
        cfg = parse_config(config)

    app = Flask(__name__)
    app.config.update(
        SECRET_KEY=cfg.secret_key,
        TESTING=cfg.testing,
        MAX_CONTENT_LENGTH=1 * 1024 * 1024,
        # Flask's own session is not used for anything (TS-01); keep its cookie inert anyway.
        SESSION_COOKIE_SECURE=True,
        SESSION_COOKIE_SAMESITE="None",
        SESSION_COOKIE_PARTITIONED=True,
        SESSION_COOKIE_HTTPONLY=True,
    )
    app.jinja_options = {
        **app.jinja_options,
        # NHS.UK frontend macros read optional nested params; ChainableUndefined is what they expect.
        "undefined": ChainableUndefined,
        # The NHS.UK macros live in .jinja files, which Flask does not autoescape by default; without
        # this, text passed to them (a young person's words in a textarea) is written out raw (XSS).
        "autoescape": True,
        "loader": ChoiceLoader(
            [FileSystemLoader(str(Path(__file__).parent / "templates")), PackageLoader("nhsuk_frontend_jinja")]
        ),
    }

    store = LocalStore(cfg.database_url)
    store.migrate()
    sessions_engine = store.engine
    if store.engine.dialect.name == "sqlite":
        # Session reads must not queue behind the local store's BEGIN IMMEDIATE write lock.
        sessions_engine = sa.create_engine(cfg.database_url, connect_args={"timeout": 30})
    sessions = SessionStore(sessions_engine, cfg.secret_key)
    sessions.create_tables()
    writebacks = WriteBacks(sessions_engine)
    writebacks.create_tables()
    changes = SharedChanges(sessions_engine)
    changes.create_tables()
    state = AppState(
        config=cfg, sessions=sessions, local_store=store, smart=SmartClient(), writebacks=writebacks, changes=changes
    )
    app.extensions[EXTENSION] = state

    context.install(app)
    security.install_csrf(app)
    security.install_headers(app)
    security.install_logging(app)
    _install_assets(app, _frontend_dir(cfg))
    errors.install(app)
    _install_template_globals(app)

    app.register_blueprint(launch_bp)
    app.register_blueprint(summary_bp)
    app.register_blueprint(agency_bp)
    app.register_blueprint(picker_bp)
    app.register_blueprint(notifications_bp)
    context.register_nav(app, "summary.index", "Summary", order=10)

    journeys = None
    if cfg.journeys:
        try:
            journeys = importlib.import_module("smart_app.journeys")
        except ModuleNotFoundError as exc:
            if exc.name != "smart_app.journeys":
                raise
    if journeys is not None and hasattr(journeys, "register"):
        journeys.register(app)

    # Compile the busiest templates now rather than on a clinician's first launch.
    for name in ("summary/index.html", "errors/message.html"):
        app.jinja_env.get_template(name)

    @app.get("/")
    def index():
        return render_template("base/home.html")

    @app.get("/healthz")
    def healthz():
        return {"status": "ok"}

    return app


def _install_assets(app: Flask, frontend: Path) -> None:
    """Serve the NHS.UK frontend CSS/JS and its images straight from node_modules."""

    @app.get("/assets/<path:filename>")
    def nhsuk_asset(filename: str):
        if filename in _FRONTEND_FILES:
            folder = frontend
        elif filename.startswith(("images/", "manifest.json")):
            folder = frontend / "assets"
        else:
            abort(404)
        response = send_from_directory(folder, filename, max_age=3600)
        return response

    @app.get("/favicon.ico")
    def favicon():
        # browsers ask for /favicon.ico whatever the page says; answer with the NHS.UK one, not a 404
        return send_from_directory(frontend / "assets" / "images", "favicon.ico", max_age=86400)


def _nav_items(app: Flask, launch) -> list[dict]:
    items = []
    if launch is not None and launch.patient_id:
        for _order, endpoint, label in app.extensions["thrive"].nav:
            if not audience_allows(endpoint.split(".", 1)[0], launch.mode):
                continue
            try:
                href = url_for(endpoint, launch_id=launch.launch_id)
            except Exception:  # noqa: S112  a page that cannot be linked for this launch is left out of the menu, not a 500
                continue
            items.append({"text": label, "href": href, "current": request.endpoint == endpoint})
    return items


def _install_template_globals(app: Flask) -> None:
    def risk_banner():
        """What the every-page risk banner shows (``smart_app.risk``), from the request's records
        snapshot. Agency launches see it only on the shared plan, after the consent check: the
        banner must not tell an agency without consent that a young person is at risk."""
        launch = g.get("launch")
        if launch is None or not launch.patient_ref:
            return None
        if launch.mode != "ehr" and not g.get("shared_plan_allowed"):
            return None
        if "risk_banner" not in g:
            from . import records, risk

            state = risk.of_records(records.of(launch.local_store, launch.patient_ref))
            href = None
            if state.has_plan:
                href = (
                    url_for("summary.index", launch_id=launch.launch_id) if launch.mode == "ehr" else ""
                ) + "#safety-plan"
            g.risk_banner = {
                "risk_support": state.risk_support,
                "plan_active": state.plan_active,
                "plan_overdue": state.plan_overdue,
                "plan_review": state.plan_review.strftime("%-d %B %Y") if state.plan_review else None,
                "safety_plan_href": href,
            }
        return g.risk_banner

    app.jinja_env.globals["risk_banner"] = risk_banner

    headers: OrderedDict = OrderedDict()
    header_lock = threading.Lock()

    def page_header():
        """The rendered NHS.UK header, kept per (launch, page): it depends only on those."""
        launch = g.get("launch")
        key = (launch.launch_id if launch is not None else None, request.endpoint)
        with header_lock:
            html = headers.get(key)
            if html is not None:
                headers.move_to_end(key)
                return html
        nav_items = _nav_items(app, launch)
        service_href = url_for("summary.index", launch_id=launch.launch_id) if launch is not None else "/"
        # render_template autoescapes .html templates, so its output is already safe markup
        html = Markup(render_template("base/header.html", service_href=service_href, nav_items=nav_items))  # noqa: S704
        with header_lock:
            headers[key] = html
            while len(headers) > 2048:
                headers.popitem(last=False)
        return html

    app.jinja_env.globals["page_header"] = page_header

    @app.context_processor
    def _globals():
        state = app.extensions["thrive"]
        launch = g.get("launch")
        return {
            "app_name": state.config.app_name,
            "launch": launch,
            "read_only_reason": read_only_reason(launch) if launch is not None and not launch.can_write else None,
        }
