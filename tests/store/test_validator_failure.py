"""A validator that fails on a resource makes that write a 422 saying so (not stored), never a 500.

The failure is injected (the validator's own bugs are fixed in thrive_fhir/validation): this pins the
store's boundary, whatever the validator does next."""

from __future__ import annotations

import json
import uuid

import pytest
from werkzeug.test import Client

from tests.support.store_data import patient
from thrive_fhir.store import create_app
from thrive_fhir.store.validation_hook import project_validator

JSON = {"Content-Type": "application/fhir+json"}


@pytest.fixture
def client(tmp_path, monkeypatch):
    app = create_app(f"sqlite:///{tmp_path}/s.db")
    validator = project_validator()
    real = validator.issues

    def issues(resource, *args, **kwargs):
        if resource.get("gender") == "other":
            raise AttributeError("injected validator bug")
        return real(resource, *args, **kwargs)

    monkeypatch.setattr(validator, "issues", issues)
    return Client(app)


def test_validator_failure_is_a_422_and_nothing_is_stored(client):
    pid = str(uuid.uuid4())
    body = {**patient(pid), "gender": "other"}
    resp = client.put(f"/Patient/{pid}", data=json.dumps(body), headers=JSON)
    assert resp.status_code == 422, resp.get_data(as_text=True)
    assert "validator failed" in json.dumps(resp.get_json())
    assert client.get(f"/Patient/{pid}").status_code == 404
    tx = {
        "resourceType": "Bundle",
        "type": "transaction",
        "entry": [
            {"resource": patient(), "request": {"method": "POST", "url": "Patient"}},
            {"resource": body, "request": {"method": "PUT", "url": f"Patient/{pid}"}},
        ],
    }
    resp = client.post("/", data=json.dumps(tx), headers=JSON)
    assert resp.status_code == 422 and "Bundle.entry[1]" in json.dumps(resp.get_json())
    assert client.get(f"/Patient/{pid}").status_code == 404
    ok = client.put(f"/Patient/{pid}", data=json.dumps(patient(pid)), headers=JSON)
    assert ok.status_code == 201
