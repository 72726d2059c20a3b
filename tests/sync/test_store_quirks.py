"""The worker against single quirks of real servers, each emulated by our store's quirks mode:
empty error bodies under return=minimal, versions only from the entry answers, a token that grants only
its first wildcard scope, and a limit on updates per Bundle."""

from __future__ import annotations

import json

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from tests.support.sync_quirks import QuirksStoreProcess, create_patients
from tests.support.sync_synthetic import Scenario
from tests.support.sync_workers import drain, make_worker
from thrive_fhir.localstore import ChangeSet, LocalStore
from thrive_fhir.localstore import models as m
from thrive_fhir.localstore import outbox as queue
from thrive_fhir.store.quirks import Quirks, QuirksError, first_wildcard_only
from thrive_fhir.sync import admin


def _store(url):
    s = LocalStore(url)
    s.migrate()
    return s


def _bad_observation(store, pid):
    bad = {
        "resourceType": "Observation",
        "id": "7d1c5b9e-3f0a-4c8e-9d1b-2a6f4e8c0b13",
        "status": "final",
        "code": {"text": "x"},
        "subject": {"reference": f"Patient/{pid}"},
        "valueInteger": "not a number",
    }
    with store.session() as s:
        store.record(
            s,
            ChangeSet(
                patient_key=f"Patient/{pid}", author_ref="PractitionerRole/a", organization_ref="Organization/b"
            ).put(bad),
        )


def test_quirk_names_parse_and_unknown_ones_are_refused():
    q = Quirks.parse("medplum")
    assert (q.batch_transactions, q.server_ids, q.empty_errors, q.first_scope, q.max_updates) == (
        True,
        True,
        True,
        True,
        50,
    )
    assert Quirks.parse("server-ids, max-updates=7").max_updates == 7
    with pytest.raises(QuirksError):
        Quirks.parse("teleport")
    assert first_wildcard_only("system/*.rs system/*.cu openid") == "system/*.rs openid"


def test_token_endpoint_without_a_token_book_is_a_404_not_a_crash():
    """first-scope built by hand without a TokenBook (wrap() always gives one): no token endpoint."""
    from thrive_fhir.store.quirks import TOKEN_PATH, QuirksMiddleware

    def inner(environ, start_response):  # never reached
        raise AssertionError("the token request must not reach the store")

    middleware = QuirksMiddleware(inner, Quirks(first_scope=True))
    answer = middleware.handle({"REQUEST_METHOD": "POST", "PATH_INFO": TOKEN_PATH})
    assert answer.status == 404
    assert json.loads(answer.body)["resourceType"] == "OperationOutcome"


@pytest.fixture(scope="module")
def empty_errors_store(tmp_path_factory):
    server = QuirksStoreProcess(tmp_path_factory.mktemp("empty"), "empty-errors").start()
    yield server
    server.stop()


@pytest.mark.parametrize("prefer", ["OperationOutcome", "minimal"])
def test_dead_letter_keeps_the_stores_reason_unless_asked_for_minimal(empty_errors_store, sqlite_url, prefer):
    base = empty_errors_store.base_url
    store = _store(sqlite_url)
    [pid] = create_patients(base, 1)
    sc = Scenario(store, [pid])
    sc.new_goal(pid)
    _bad_observation(store, pid)
    drain([make_worker(store, base, prefer_return=prefer)])
    fig = queue.figures(store)
    assert (fig["sent"], fig["dead"]) == (1, 1)
    [dead] = admin.list_rows(store, "dead")
    detail = admin.show_row(store, dead["id"])
    with store.engine.connect() as c:
        versions = [r.store_version for r in c.execute(m.sync_resource_state.select()).all()]
    if prefer == "OperationOutcome":
        assert detail["outcome"]["resourceType"] == "OperationOutcome"
        assert "no OperationOutcome" not in detail["last_error"]
        assert versions and all(versions)  # learned from the entries' ETags
    else:
        assert detail["outcome"] is None and "the store sent no OperationOutcome" in detail["last_error"]
        assert not any(versions)  # the quirk: nothing to learn versions from under return=minimal
    store.dispose()


def test_representation_gives_versions_where_a_store_sends_no_etag(tmp_path, sqlite_url):
    server = QuirksStoreProcess(tmp_path / "s", "batch-transactions,server-ids,empty-errors").start()
    try:
        store = _store(sqlite_url)
        [pid] = create_patients(server.base_url, 1)
        sc = Scenario(store, [pid])
        g = sc.new_goal(pid)
        drain(
            [
                make_worker(
                    store,
                    server.base_url,
                    id_mode="identifier",
                    atomic_transactions=False,
                    prefer_return="representation",
                )
            ]
        )
        with store.engine.connect() as c:
            state = c.execute(
                m.sync_resource_state.select().where(m.sync_resource_state.c.resource_id == g["id"])
            ).first()
        assert state.store_version == "1" and state.store_id not in (None, g["id"])
        store.dispose()
    finally:
        server.stop()


@pytest.fixture(scope="module")
def rsa_pem():
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    return key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )


@pytest.fixture(scope="module")
def first_scope_store(tmp_path_factory):
    server = QuirksStoreProcess(tmp_path_factory.mktemp("scope"), "first-scope").start()
    yield server
    server.stop()


def _auth(base, pem, scope):
    from thrive_fhir.client.backend_services import BackendServicesAuth, discover_token_url

    return BackendServicesAuth(
        token_url=discover_token_url(base), client_id="thrive-sync", private_key_pem=pem, kid="k1", scope=scope
    )


@pytest.mark.parametrize("scope,sent", [("system/*.rs system/*.cu", False), ("system/*.cruds", True)])
def test_only_the_first_wildcard_scope_counts(first_scope_store, sqlite_url, rsa_pem, scope, sent):
    """Medplum applies the first wildcard scope only: read-then-write scopes make every write a 403."""
    base = first_scope_store.base_url
    auth = _auth(base, rsa_pem, "system/*.cruds")
    headers = auth.header()
    store = _store(sqlite_url)
    [pid] = create_patients(base, 1, headers=headers)
    sc = Scenario(store, [pid])
    sc.new_goal(pid)
    drain([make_worker(store, base, auth=_auth(base, rsa_pem, scope))])
    fig = queue.figures(store)
    if sent:
        assert (fig["sent"], fig["dead"]) == (1, 0)
    else:
        assert (fig["sent"], fig["dead"]) == (0, 1)
        [dead] = admin.list_rows(store, "dead")
        assert dead["last_status"] == 403
    store.dispose()


def test_bundles_over_the_update_limit_are_split(tmp_path, sqlite_url):
    server = QuirksStoreProcess(tmp_path / "s", "max-updates=6").start()
    try:
        store = _store(sqlite_url)
        patients = create_patients(server.base_url, 8)
        sc = Scenario(store, patients)
        for p in patients:
            sc.new_goal(p)
        drain([make_worker(store, server.base_url, max_entries=16)])
        fig = queue.figures(store)
        assert (fig["sent"], fig["dead"]) == (8, 0)
        store.dispose()
    finally:
        server.stop()


def test_server_preset_sets_the_scope_and_mode_and_the_file_still_wins(tmp_path):
    from thrive_fhir.sync.config import ConfigError, load_config

    cfg = load_config(None, env={}, server="medplum")
    assert (cfg.auth.scope, cfg.id_mode, cfg.prefer_return) == ("system/*.cruds", "identifier", "representation")
    f = tmp_path / "s.toml"
    f.write_text('server = "medplum"\nid_mode = "deterministic"\n[auth]\nscope = "system/*.*"\n')
    cfg = load_config(str(f), env={})
    assert (cfg.auth.scope, cfg.id_mode) == ("system/*.*", "deterministic")
    with pytest.raises(ConfigError):
        load_config(None, env={"THRIVE_SYNC_SERVER": "nope"})
    assert json.dumps(load_config(None, env={}).server) == '""'


def test_store_serve_refuses_an_unknown_quirk_in_one_line(tmp_path):
    from click.testing import CliRunner

    from thrive_fhir.cli.store_cmd import store as store_cli

    res = CliRunner().invoke(store_cli, ["serve", "--database", str(tmp_path / "s.db"), "--quirks", "medplum,teleport"])
    assert res.exit_code == 2
    assert "--quirks: unknown quirk 'teleport'" in res.output and "Traceback" not in res.output
