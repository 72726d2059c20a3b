"""``thrive demo``: every part of THRIVE-FHIR on this machine, with no external services.

DEVELOPMENT AND TESTING ONLY. One process owns everything it starts: the sandbox EHR (EHR page,
SMART authorization server, EHR FHIR store), the shared cross-agency FHIR store and the clinician
SMART app run on threads; the sync worker runs as a child process in its own process group. Ctrl-C
or SIGTERM stops all of them (see ``runner.Stopper``).

Working folder (default ``./var/demo``)::

    keys/sandbox-auth.pem  keys/app-client.pem  keys/sync-client.pem    private keys (0600)
    clients.json         sandbox client registry (the app and the sync worker)
    ehr.db  shared.db     the two FHIR stores (SQLite)
    app.json  app-secret  app.db                                       SMART app config and data
    sync.toml  sync.log                                                 sync worker config and log
    synth/                synthetic population (NDJSON) used to seed the stores

Ports: ``--port-base`` P gives the sandbox P, the app P+1, the shared store P+2 and the sync
worker's metrics P+3 (0 = any free ports, used by the smoke test).

This module sits above both the library (``thrive_fhir``) and the app (``smart_app``): it is the one
place that imports both, so neither of them has to import the other (see docs/architecture.md).
"""

from __future__ import annotations

import json
import os
import secrets
import shutil
import subprocess
import sys
import threading
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, date
from pathlib import Path
from typing import Any

import requests

import smart_app
from thrive_fhir.sandbox import DEV_ONLY_NOTICE
from thrive_fhir.sandbox.clientkit import assertion_form
from thrive_fhir.sandbox.keys import SigningKey, jwks
from thrive_fhir.sandbox.patient_lookup import PatientLookup
from thrive_fhir.sandbox.registry import (
    SCHOOL_REF,
    TRUST_ODS,
    TRUST_REF,
    Client,
    Registry,
    SandboxUser,
    practitioner_id,
)
from thrive_fhir.sandbox.runner import Stopper, start_child, stop_child
from thrive_fhir.sandbox.seed import EHR_TYPES, SeedError, load, organization_for, practitioner_for, read_ndjson
from thrive_fhir.sandbox.server import ServerThread, build_sandbox, create_store, free_port, protected_store

APP_CLIENT_ID = "thrive-app"
SYNC_CLIENT_ID = "thrive-sync"
#: The app's own Backend Services client: the clinician Summary reads the shared record with it.
APP_BACKEND_CLIENT_ID = "thrive-app-backend"
APP_BACKEND_SCOPES = "system/*.rs"
#: Asked for only when the app subscribes to the shared store's changes (smart_app.subscribe).
APP_SUBSCRIPTION_SCOPE = "system/Subscription.cruds"
DEMO_ODS = TRUST_ODS  # the synthetic population's trust
APP_SCOPES = (
    "launch launch/patient openid fhirUser online_access offline_access patient/*.cruds user/*.rs "
    "user/Task.rus user/Provenance.crs"  # an agency worker who picks the young person in the app (user/ scopes)
)
SYNC_SCOPES = "system/*.crus"
#: The agency for the whole loop of the demo (the clinician shares the plan with it, refers to one of
#: its services and names it in the safety plan; its worker accepts and confirms): an agency of the
#: app's services directory, so the clinician's forms offer it, unlike the synthetic population's.
LOOP_AGENCY_KEY = "exampleshire-council"
LOOP_USER_ID = "social-worker"
LOOP_STANDALONE_KEY = "social-care"


class DemoError(RuntimeError):
    """The demo cannot start; the message is one readable line."""


@dataclass
class Part:
    name: str
    status: str  # running | skipped | failed
    url: str | None = None
    detail: str = ""


@dataclass
class Demo:
    workdir: Path
    port_base: int = 8100
    patients: int = 25
    seed: bool = True
    seed_value: int = 42
    say: Callable[[str], Any] = print
    parts: list[Part] = field(default_factory=list)
    stopper: Stopper = field(default_factory=Stopper)
    children: list[subprocess.Popen] = field(default_factory=list)
    app: Any = None  # the SMART app (Flask), once started

    # -- set-up ------------------------------------------------------------------------------------

    def start(self) -> None:
        """Create the working folder, seed, and start every available part."""
        self.workdir.mkdir(parents=True, exist_ok=True)
        (self.workdir / "keys").mkdir(exist_ok=True)
        os.chmod(self.workdir / "keys", 0o700)
        try:
            self._start()
        except BaseException:
            self.stop()
            raise

    def _bind(self, offset: int, name: str) -> ServerThread:
        port = 0 if self.port_base == 0 else self.port_base + offset
        try:
            server = ServerThread("127.0.0.1", port, name=name)
        except OSError as exc:
            raise DemoError(
                f"port {port} for the {name} is in use or not allowed ({exc.strerror}); choose another --port-base"
            ) from None
        self.stopper.on_stop(name, server.stop)
        return server

    def _start(self) -> None:
        sandbox_srv = self._bind(0, "sandbox EHR")
        app_srv = self._bind(1, "SMART app")
        shared_srv = self._bind(2, "shared store")
        self.sandbox_origin, self.app_origin = sandbox_srv.origin, app_srv.origin
        self.shared_base = shared_srv.origin + "/fhir"
        keys = self.workdir / "keys"
        auth_key = SigningKey.load_or_create(keys / "sandbox-auth.pem", "RS256")
        self.app_key = SigningKey.load_or_create(keys / "app-client.pem", "RS384")
        self.sync_key = SigningKey.load_or_create(keys / "sync-client.pem", "RS384")
        registry = self._registry()
        (self.workdir / "clients.json").write_text(json.dumps(registry.to_dict(), indent=2) + "\n")

        ehr_db, shared_db = self.workdir / "ehr.db", self.workdir / "shared.db"
        fresh = not ehr_db.exists() or not shared_db.exists()
        # The EHR store is the trust's too: an agency worker's token reads nobody there (no Consents).
        self.sb = build_sandbox(
            f"sqlite:///{ehr_db}",
            self.sandbox_origin,
            registry=registry,
            key=auth_key,
            app_launch_url=f"{self.app_origin}/launch",
            extra_fhir_bases=[self.shared_base],
            consent_custodians=[TRUST_REF],
        )
        authority = self.sb.authority
        # The trust holds the shared record; every other organisation's token is an agency token and
        # sees only the young people whose sharing Consent names it (thrive_fhir.store.consent_gate).
        self.shared_store = create_store(
            f"sqlite:///{shared_db}",
            self.shared_base,
            authority.token_verifier(self.shared_base),
            consent_custodians=[TRUST_REF],
            # change notifications go only to the app's receiver (docs/subscriptions.md)
            subscription_endpoints=[f"{self.app_origin}/notifications/"],
        )
        self.stopper.on_stop("shared store notifications", self.shared_store.subscriptions.stop)
        authority.patient_lookups[self.shared_base] = PatientLookup(
            self.shared_base,
            lambda: authority.mint_internal_token(self.shared_base, "system/Patient.rs"),
            wsgi_app=self.shared_store,
        )
        shared_srv.start(protected_store(self.shared_store, authority))  # seeded over HTTP (thrive store import)
        if self.seed and fresh:
            self._seed()
        elif self.seed:
            self.say(f"Using the data already in {self.workdir} (delete the folder to start afresh).")
        sandbox_srv.start(self.sb.wsgi)
        self.parts.append(
            Part(
                "Sandbox EHR (EHR page, SMART auth, EHR FHIR store)",
                "running",
                f"{self.sandbox_origin}/ehr/",
                f"FHIR base {self.sb.fhir_base}",
            )
        )
        self.parts.append(
            Part(
                "Shared cross-agency FHIR store",
                "running",
                self.shared_base,
                "tokens from the sandbox auth server (Backend Services for the sync worker)",
            )
        )
        self._start_app(app_srv)
        self._start_sync()

    def _registry(self) -> Registry:
        registry = Registry()
        registry.add(
            Client(
                APP_CLIENT_ID,
                "private_key_jwt",
                name="THRIVE care plan (demo)",
                redirect_uris=(f"{self.app_origin}/callback",),
                launch_url=f"{self.app_origin}/launch",
                scopes=frozenset(APP_SCOPES.split()),
                jwks=jwks(self.app_key),
                organization=TRUST_REF,
            )
        )
        registry.add(
            Client(
                SYNC_CLIENT_ID,
                "private_key_jwt",
                name="THRIVE sync worker (demo)",
                grant_types=("client_credentials",),
                scopes=frozenset(SYNC_SCOPES.split()),
                jwks=jwks(self.sync_key),
                fhir_base=self.shared_base,
                organization=TRUST_REF,
                access_token_lifetime=300,
            )
        )
        registry.add(
            Client(  # read only, the app's key: the Summary's shared history (smart_app.summary.shared_history)
                APP_BACKEND_CLIENT_ID,
                "private_key_jwt",
                name="THRIVE care plan, shared record reader (demo)",
                grant_types=("client_credentials",),
                scopes=frozenset(f"{APP_BACKEND_SCOPES} {APP_SUBSCRIPTION_SCOPE}".split()),
                jwks=jwks(self.app_key),
                fhir_base=self.shared_base,
                organization=TRUST_REF,
                access_token_lifetime=300,
            )
        )
        loop_ref, loop_name = self.loop_agency
        registry.users[LOOP_USER_ID] = SandboxUser(
            LOOP_USER_ID,
            f"Kit Sandbox ({loop_name} social worker)",
            f"Practitioner/{practitioner_id(LOOP_USER_ID)}",
            loop_ref,
            "Agency staff",
        )
        return registry

    @property
    def loop_agency(self) -> tuple[str, str]:
        """(Organization reference, name) of the whole-loop agency in the app's services directory."""
        from smart_app.directory import agency_ref, load

        directory = load()
        agency = next(a for a in directory.agencies if a.key == LOOP_AGENCY_KEY)
        return agency_ref(directory, agency), agency.name

    # -- seeding -----------------------------------------------------------------------------------

    def _seed(self) -> None:
        authority = self.sb.authority
        orgs = {u.organization for u in authority.registry.users.values() if u.organization}
        users: list[dict[str, Any]] = [o for o in map(organization_for, sorted(orgs)) if o is not None]
        users += [practitioner_for(u) for u in authority.registry.users.values()]
        synth_dir = self.workdir / "synth"
        self.say(f"Generating {self.patients} synthetic patients (seed {self.seed_value}) ...")
        if synth_dir.exists():
            shutil.rmtree(synth_dir)
        proc = subprocess.run(  # noqa: S603 - our own thrive command line, no shell
            [
                *thrive_command(),
                "synth",
                "--patients",
                str(self.patients),
                "--seed",
                str(self.seed_value),
                "--out",
                str(synth_dir),
                "--as-of",
                date.today().isoformat(),
            ],  # dated up to yesterday: plans in date now
            capture_output=True,
            text=True,
            timeout=600,
        )
        if proc.returncode != 0:
            last = (proc.stderr.strip().splitlines() or ["no message"])[-1]
            raise DemoError(f"thrive synth failed: {last}")
        resources: list[dict[str, Any]] = list(read_ndjson(synth_dir))
        self._pick_agency(resources)
        try:
            started = time.monotonic()
            token = lambda: authority.mint_internal_token(self.sb.fhir_base, "system/*.cruds", lifetime=600)  # noqa: E731
            report = load(self.sb.store, self.sb.fhir_base, token, [*users, *resources], types=EHR_TYPES)
            self.say(f"Seeded the EHR store: {report.summary()} ({time.monotonic() - started:.1f} s)")
            # the app's services directory too: the agencies and services its referrals and plans name
            from smart_app.directory import load as load_directory
            from smart_app.directory import to_fhir

            self._import_shared([*users, *resources, *to_fhir(load_directory())])
        except SeedError as exc:
            raise DemoError(f"seeding failed: {exc}") from None

    def _import_shared(self, resources: list[dict[str, Any]]) -> None:
        """The shared store is filled the way a deployment would fill any FHIR server: ``thrive store
        import``'s loader, over HTTP, in reference order and transaction batches."""
        from thrive_fhir.client.fhir_http import FhirClient
        from thrive_fhir.client.ndjson_import import Importer, Unreachable, reference_order

        authority, base = self.sb.authority, self.shared_base

        class _FreshToken:  # a short-lived internal token per request: a large load outlives one
            def header(self) -> dict[str, str]:
                return {"Authorization": f"Bearer {authority.mint_internal_token(base, 'system/*.cruds')}"}

            def invalidate(self) -> None:
                return None

        started = time.monotonic()
        client = FhirClient(base, _FreshToken(), read_timeout=120, user_agent="thrive-demo-seed")
        try:
            report = Importer(client, batch_size=100).run(reference_order(resources))
        except Unreachable as exc:
            raise DemoError(f"seeding the shared store failed: {exc}") from None
        finally:
            client.close()
        if report.failures:
            first = report.failures[0]
            raise DemoError(f"seeding the shared store failed: {first.reference}: HTTP {first.status}: {first.message}")
        summary = ", ".join(f"{n} {t}" for t, n in sorted(report.loaded.items())) or "nothing"
        self.say(f"Seeded the shared store: {summary} ({time.monotonic() - started:.1f} s, by thrive store import)")

    def _pick_agency(self, resources: list[dict[str, Any]]) -> None:
        """Let the sandbox agency user act for the agency most young people currently share with,
        so the standalone (agency) view in the demo shows shared plans rather than only refusals."""
        today = date.today().isoformat()
        current: Counter[str] = Counter()
        ever: Counter[str] = Counter()
        for res in resources:
            provision = res.get("provision") or {}
            end = (provision.get("period") or {}).get("end")
            if res["resourceType"] != "Consent" or res.get("status") != "active" or provision.get("type") != "permit":
                continue
            for actor in provision.get("actor") or []:
                ref = (actor.get("reference") or {}).get("reference", "")
                if ref.startswith("Organization/") and ref != TRUST_REF:
                    ever[ref] += 1
                    if not end or end >= today:
                        current[ref] += 1
        counts = current or ever  # synthetic consents may all have ended by today's date
        if not counts:
            return
        ref = counts.most_common(1)[0][0]
        names = {f"Organization/{r['id']}": r.get("name") for r in resources if r["resourceType"] == "Organization"}
        self.agency_people = _shared_and_not(resources, ref)
        agency = self.sb.authority.registry.user("agency")
        if agency is not None:
            agency.organization = ref
            agency.name = f"Jo Sandbox ({names.get(ref) or 'partner agency'})"
        self.agency = (ref, names.get(ref) or "Partner agency")
        (self.workdir / "clients.json").write_text(json.dumps(self.sb.authority.registry.to_dict(), indent=2) + "\n")

    # -- the app and the sync worker ---------------------------------------------------------------

    def _start_app(self, server: ServerThread) -> None:
        secret = self.workdir / "app-secret"
        if not secret.exists():
            fd = os.open(secret, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            with os.fdopen(fd, "w") as fh:
                fh.write(secrets.token_urlsafe(48))
        notify_secret = self.workdir / "keys" / "notification-secret"
        if not notify_secret.exists():
            fd = os.open(notify_secret, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            with os.fdopen(fd, "w") as fh:
                fh.write(secrets.token_urlsafe(48))
        agency_ref, agency_name = getattr(self, "agency", (SCHOOL_REF, "Sandbox High School"))
        common = {
            "client_id": APP_CLIENT_ID,
            "auth_method": "private_key_jwt",
            "private_key_file": str(self.workdir / "keys" / "app-client.pem"),
            "key_id": self.app_key.kid,
            "auth_hosts": [self.sandbox_origin],
            "frame_ancestors": [self.sandbox_origin],
            "allow_insecure_loopback": True,
            "online_access": True,
        }
        config = {
            "secret_key_file": str(secret),
            "database_url": f"sqlite:///{self.workdir / 'app.db'}",
            "ods_code": DEMO_ODS,
            "public_base_url": self.app_origin,
            "ehr": [
                {"name": "Sandbox EHR (demo)", "iss": self.sb.fhir_base, **common},
                {"name": "Shared cross-agency record (demo)", "iss": self.shared_base, **common},
            ],
            "standalone": [
                {
                    "key": "agency",
                    "name": f"{agency_name} (demo agency)",
                    "iss": self.shared_base,
                    "organization": agency_ref,
                },
                {
                    "key": LOOP_STANDALONE_KEY,
                    "name": f"{self.loop_agency[1]} (demo: the whole loop)",
                    "iss": self.shared_base,
                    "organization": self.loop_agency[0],
                },
            ],
            # The clinician Summary also shows the shared record (other teams, agencies' Task updates).
            "shared_store": {
                "fhir_base": self.shared_base,
                "client_id": APP_BACKEND_CLIENT_ID,
                "private_key_file": str(self.workdir / "keys" / "app-client.pem"),
                "kid": self.app_key.kid,
                "alg": "RS384",
                "token_url": self.sb.authority.token_endpoint,
                "scope": APP_BACKEND_SCOPES,
                "allow_insecure_loopback": True,
                # the store tells the app when a young person's shared plan changes
                "notification_endpoint": f"{self.app_origin}/notifications/shared-plan",
                "notification_secret_file": str(notify_secret),
                "subscription_scope": APP_SUBSCRIPTION_SCOPE,
            },
        }
        path = self.workdir / "app.json"
        path.write_text(json.dumps(config, indent=2) + "\n")
        try:
            app = smart_app.create_app(path)
        except Exception as exc:  # report and carry on with the other parts
            self.parts.append(Part("SMART app", "failed", detail=f"could not start: {exc}"))
            return
        server.start(app)
        self.app = app
        self._subscribe(app)
        self.parts.append(
            Part(
                "SMART app",
                "running",
                f"{self.app_origin}/standalone",
                "EHR launch: open a patient on the EHR page and press Launch THRIVE",
            )
        )

    def _subscribe(self, app) -> None:
        """Subscribe the app to the shared store's changes, as ``thrive app serve`` does: a
        background loop that subscribes once the app is listening (the store's handshake is POSTed
        to it) and again if the notifications stop."""
        from smart_app.subscribe import keep_subscribed

        cfg = app.extensions["thrive"].config.shared_store
        if cfg is None or not cfg.notifications:
            return
        stop = threading.Event()
        loop = threading.Thread(
            target=keep_subscribed,
            args=(cfg, app.extensions["thrive"].changes, stop),
            kwargs={"first": 0.5},
            name="thrive-demo-subscribe",
            daemon=True,
        )
        loop.start()
        self.stopper.on_stop("app subscription", stop.set)

    def _start_sync(self) -> None:
        if not any(p.name == "SMART app" and p.status == "running" for p in self.parts):
            self.parts.append(
                Part(
                    "Sync worker",
                    "skipped",
                    detail="it pushes the SMART app's saved changes, and the app is not running",
                )
            )
            return
        self.metrics_port = free_port() if self.port_base == 0 else self.port_base + 3
        conf = self.workdir / "sync.toml"
        q = json.dumps
        conf.write_text(
            "\n".join(
                [
                    "# Written by thrive demo (development only).",
                    f"database_url = {q('sqlite:///' + str(self.workdir / 'app.db'))}",
                    f"fhir_base = {q(self.shared_base)}",
                    f"ods_code = {q(DEMO_ODS)}",
                    "poll_interval = 2.0",
                    f"metrics_port = {self.metrics_port}",
                    "",
                    "[auth]",
                    'type = "backend-services"',
                    f"client_id = {q(SYNC_CLIENT_ID)}",
                    f"private_key_file = {q(str(self.workdir / 'keys' / 'sync-client.pem'))}",
                    f"kid = {q(self.sync_key.kid)}",
                    'alg = "RS384"',
                    f"scope = {q('system/*.rs system/*.cu')}",
                    f"token_url = {q(self.sb.authority.token_endpoint)}",
                    "",
                ]
            )
        )
        try:
            proc = start_child(
                [*thrive_command(), "sync", "run", "--config", str(conf)], log_path=str(self.workdir / "sync.log")
            )
        except OSError as exc:
            self.parts.append(Part("Sync worker", "failed", detail=f"could not start: {exc.strerror}"))
            return
        self.children.append(proc)
        self.stopper.on_stop("sync worker", lambda: stop_child(proc))
        self.parts.append(
            Part(
                "Sync worker",
                "running",
                f"http://127.0.0.1:{self.metrics_port}/metrics",
                detail=f"pushes the app's outbox to the shared store; log {self.workdir / 'sync.log'}",
            )
        )

    # -- reporting, checking, stopping -------------------------------------------------------------

    def banner(self) -> str:
        lines = [f"*** {DEV_ONLY_NOTICE} ***", ""]
        for part in self.parts:
            where = f"  {part.url}" if part.url else ""
            lines.append(f"[{part.status:>7}] {part.name}{where}")
            if part.detail:
                lines.append(f"          {part.detail}")
        lines += self._agency_lines()
        lines += [
            "",
            f"Open the EHR page: {self.sandbox_origin}/ehr/  (pick a patient, press Launch THRIVE)",
            f"Working folder: {self.workdir}",
            "Press Ctrl-C to stop everything.",
        ]
        return "\n".join(lines)

    def _agency_lines(self) -> list[str]:
        """How to sign in as the demo agency worker, and whom to try (one shared, one not)."""
        if not any(p.name == "SMART app" and p.status == "running" for p in self.parts):
            return []
        _agency_ref, agency_name = getattr(self, "agency", (SCHOOL_REF, "Sandbox High School"))
        user = self.sb.authority.registry.user("agency")
        lines = [
            "",
            "Sign in as an agency worker (standalone launch against the shared store):",
            f"  open {self.app_origin}/standalone, choose '{agency_name} (demo agency)',",
            f"  sign in as user '{user.id if user else 'agency'}'"
            + (f" ({user.name})" if user else "")
            + ", then pick a young person:",
        ]
        shared, not_shared = getattr(self, "agency_people", (None, None))
        if shared:
            lines.append(f"  shared with {agency_name}:     {shared}")
        if not_shared:
            lines.append(f"  NOT shared with {agency_name}: {not_shared} (the store answers as if they did not exist)")
        loop_name = self.loop_agency[1]
        lines += [
            f"The whole loop, with {loop_name}:",
            f"  1. as the clinician, launch for any young person; on 'Sharing' tick {loop_name}; on 'Services' refer",
            f"     to one of its services; in the safety plan add what {loop_name} will do (held by it)",
            f"  2. the sync worker pushes the change; open {self.app_origin}/standalone, choose '{loop_name} (demo: the",
            f"     whole loop)', sign in as user '{LOOP_USER_ID}', pick the young person, accept the referral and",
            "     confirm the safety plan item",
            "  3. launch again as the clinician: the Summary shows the referral accepted and the item confirmed",
        ]
        lines.append(
            f"  The store's audit of agency reads: thrive audit --patient <id or NHS number> "
            f"--source {self.shared_base} --auth {self.workdir / 'sync.toml'}"
        )
        return lines

    def smoke_check(self, patience: float = 60.0) -> list[str]:
        """Ask every part a real question over HTTP; returns the failures (empty = all fine).

        Parts that failed to start count as failures; each check is retried until ``patience``
        runs out, because a child process (the sync worker) needs a few seconds to come up.
        """
        failures = [f"{p.name}: {p.detail}" for p in self.parts if p.status == "failed"]
        deadline = time.monotonic() + patience

        def check(name: str, fn: Callable[[], bool]) -> None:
            while True:
                try:
                    ok, why = fn(), "unexpected answer"
                except (requests.RequestException, ValueError, KeyError) as exc:
                    ok, why = False, type(exc).__name__
                if ok or time.monotonic() > deadline:
                    break
                time.sleep(0.5)
            self.say(f"  {'ok  ' if ok else 'FAIL'} {name}")
            if not ok:
                failures.append(f"{name}: {why}")

        get = lambda url, **kw: requests.get(url, timeout=10, allow_redirects=False, **kw)  # noqa: E731
        check("EHR page answers", lambda: get(f"{self.sandbox_origin}/ehr/").status_code == 200)
        check(
            "SMART discovery under the EHR FHIR base",
            lambda: (
                get(f"{self.sb.fhir_base}/.well-known/smart-configuration").json()["token_endpoint"]
                == self.sb.authority.token_endpoint
            ),
        )
        check(
            "EHR FHIR store refuses a request without a token",
            lambda: get(f"{self.sb.fhir_base}/Patient").status_code == 401,
        )

        def backend_read() -> bool:
            form = {
                "grant_type": "client_credentials",
                "scope": "system/*.rs",
                **assertion_form(self.sync_key, SYNC_CLIENT_ID, self.sb.authority.token_endpoint),
            }
            tok = requests.post(self.sb.authority.token_endpoint, data=form, timeout=10).json()["access_token"]
            return (
                get(
                    f"{self.shared_base}/Patient", params={"_count": "1"}, headers={"Authorization": f"Bearer {tok}"}
                ).status_code
                == 200
            )

        check("shared store answers a Backend Services token", backend_read)
        running = {p.name for p in self.parts if p.status == "running"}
        if "SMART app" in running:
            check(
                "SMART app answers /launch (400 without iss/launch)",
                lambda: get(f"{self.app_origin}/launch").status_code == 400,
            )
        if "Sync worker" in running:
            check(
                "sync worker serves its metrics",
                lambda: (
                    self.children[0].poll() is None
                    and get(f"http://127.0.0.1:{self.metrics_port}/metrics").status_code == 200
                ),
            )
        return failures

    def stop(self) -> None:
        self.stopper.stop_all(lambda msg: None)


def _shared_and_not(resources: list[dict[str, Any]], organization: str) -> tuple[str | None, str | None]:
    """("name, NHS number" of a young person whose Consent shares with ``organization`` today, and of
    one it does not), for the demo's sign-in instructions. Uses the same rule as the store."""
    from datetime import datetime

    from thrive_fhir.canonical import NHS_NUMBER
    from thrive_fhir.consent_rule import active_consent_for

    now = datetime.now(UTC)
    consents = [r for r in resources if r["resourceType"] == "Consent"]
    shared = not_shared = None
    for patient in (r for r in resources if r["resourceType"] == "Patient"):
        name = (
            " ".join(
                ((patient.get("name") or [{}])[0].get("given") or [])
                + [(patient.get("name") or [{}])[0].get("family", "")]
            ).strip()
            or patient["id"]
        )
        nhs = next((i.get("value") for i in patient.get("identifier") or [] if i.get("system") == NHS_NUMBER), None)
        label = f"{name}" + (f", NHS number {nhs}" if nhs else "") + f" (Patient/{patient['id']})"
        if active_consent_for(consents, f"Patient/{patient['id']}", organization, now):
            shared = shared or label
        else:
            not_shared = not_shared or label
        if shared and not_shared:
            break
    return shared, not_shared


def thrive_command() -> list[str]:
    """How to run ``thrive`` in a child process with this interpreter (works without the script)."""
    return [sys.executable, "-c", "from thrive_fhir.cli import main; main()"]
