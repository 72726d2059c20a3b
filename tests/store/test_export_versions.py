"""``$export`` writes the version of each resource that was current at the job's transactionTime.

The export of a type is held back (by wrapping the in-process exporter) until the test has updated
and deleted resources after the kick-off: the race the issue found, made certain instead of likely.
"""

from __future__ import annotations

import json
import threading
import time
import uuid

import requests

from tests.support.store_data import observation, patient

JSON = {"Content-Type": "application/fhir+json", "Accept": "application/fhir+json"}
ASYNC = {"Accept": "application/fhir+json", "Prefer": "respond-async"}


def _wait_manifest(status_url: str) -> dict:
    deadline = time.time() + 60
    while (poll := requests.get(status_url)).status_code == 202:
        assert time.time() < deadline
        time.sleep(0.05)
    assert poll.status_code == 200, poll.text
    return poll.json()


def _exported(manifest: dict, rtype: str) -> dict[str, dict]:
    out = {}
    for item in manifest["output"]:
        if item["type"] == rtype:
            for line in requests.get(item["url"]).text.splitlines():
                res = json.loads(line)
                out[res["id"]] = res
    return out


def test_export_holds_the_versions_current_at_transaction_time(ours, monkeypatch):
    pid = str(uuid.uuid4())
    assert requests.put(ours.url(f"Patient/{pid}"), json=patient(pid), headers=JSON).status_code == 201
    made = [
        requests.post(ours.url("Observation"), json=observation(f"Patient/{pid}"), headers=JSON).json()
        for _ in range(12)
    ]
    exporter = ours.app.exporter
    real = exporter.export_type
    release = threading.Event()

    def held(rtype, *args, **kwargs):
        if rtype == "Observation":
            assert release.wait(30)
        return real(rtype, *args, **kwargs)

    monkeypatch.setattr(exporter, "export_type", held)
    kick = requests.get(ours.url("$export?_type=Observation"), headers=ASYNC)
    assert kick.status_code == 202
    time.sleep(0.01)  # the kick-off instant is behind us: every write below is after transactionTime
    updated, deleted = made[:8], made[8:10]
    for obs in updated:
        changed = {**obs, "valueInteger": 9}
        assert requests.put(ours.url(f"Observation/{obs['id']}"), json=changed, headers=JSON).status_code == 200
    for obs in deleted:
        assert requests.delete(ours.url(f"Observation/{obs['id']}")).status_code in (200, 204)
    late = requests.post(ours.url("Observation"), json=observation(f"Patient/{pid}"), headers=JSON).json()
    release.set()
    manifest = _wait_manifest(kick.headers["Content-Location"])
    got = _exported(manifest, "Observation")
    for obs in made:  # every one existed at transactionTime, as version 1
        assert obs["id"] in got, "a resource changed after kick-off is missing from the export"
        assert got[obs["id"]]["meta"]["versionId"] == "1"
        assert got[obs["id"]].get("valueInteger") == obs.get("valueInteger")
    assert late["id"] not in got  # created after transactionTime
    assert manifest["transactionTime"] < late["meta"]["lastUpdated"]


def test_export_leaves_out_resources_deleted_before_kickoff(ours):
    pid = str(uuid.uuid4())
    requests.put(ours.url(f"Patient/{pid}"), json=patient(pid), headers=JSON)
    gone = requests.post(ours.url("Observation"), json=observation(f"Patient/{pid}"), headers=JSON).json()
    kept = requests.post(ours.url("Observation"), json=observation(f"Patient/{pid}"), headers=JSON).json()
    requests.put(ours.url(f"Observation/{kept['id']}"), json={**kept, "valueInteger": 7}, headers=JSON)
    assert requests.delete(ours.url(f"Observation/{gone['id']}")).status_code in (200, 204)
    kick = requests.get(ours.url("$export?_type=Observation"), headers=ASYNC)
    got = _exported(_wait_manifest(kick.headers["Content-Location"]), "Observation")
    assert gone["id"] not in got
    assert got[kept["id"]]["meta"]["versionId"] == "2" and got[kept["id"]]["valueInteger"] == 7
