"""Reports from a live FHIR server: Bulk Data $export (with _since increments), Backend Services
auth, and paging searches for servers without $export.

Against the real store process (``thrive store serve``) and sekmet-fhir (an independent server
with a real SMART Backend Services token endpoint).
"""

from __future__ import annotations

import json
import time
import uuid
from datetime import date
from pathlib import Path

import pytest
import requests

from tests.support.servers import OwnStoreProcess
from thrive_fhir.reporting.bulk_client import download
from thrive_fhir.reporting.engine import DuckEngine
from thrive_fhir.reporting.reports import Options, run_report
from thrive_fhir.reporting.sources import NdjsonFolder

TYPES = [
    "Observation",
    "EpisodeOfCare",
    "PractitionerRole",
    "Organization",
    "Goal",
    "CarePlan",
    "Consent",
    "Task",
    "HealthcareService",
    "ServiceRequest",
]
JSON = {"Content-Type": "application/fhir+json", "Accept": "application/fhir+json"}


def _load(base: str, folder) -> int:
    resources = []
    for path in sorted(folder.glob("*.ndjson")):
        resources += [json.loads(line) for line in path.read_text().splitlines()]
    for i in range(0, len(resources), 250):
        bundle = {
            "resourceType": "Bundle",
            "type": "transaction",
            "entry": [
                {"resource": r, "request": {"method": "PUT", "url": f"{r['resourceType']}/{r['id']}"}}
                for r in resources[i : i + 250]
            ],
        }
        resp = requests.post(base, json=bundle, headers=JSON, timeout=120)
        assert resp.status_code == 200, resp.text[:500]
    return len(resources)


@pytest.fixture(scope="module")
def store(tmp_path_factory, population):
    folder, truth = population(40, 1)
    server = OwnStoreProcess(tmp_path_factory.mktemp("store"), validate=False).start()
    try:
        _load(server.base_url, folder)
        yield server, folder, truth
    finally:
        server.stop()


def _report(folder, name, **opts):
    return {
        r.get("grouping") or r.get("indicator"): r
        for r in run_report(DuckEngine(NdjsonFolder.open(folder)), name, Options(**opts)).rows
    }


@pytest.mark.slow
def test_export_then_since_increment_from_the_store(store, tmp_path):
    server, _, truth = store
    out = tmp_path / "export"
    first = download(server.base_url, out, types=TYPES)
    assert first["method"] == "bulk" and first["counts"]["Observation"] == truth["resources"]["Observation"]
    rows = _report(out, "groupings", end=date(2026, 1, 1))
    assert {g: r["decisions"] for g, r in rows.items() if g != "total"} == truth["groupings"]["decisions"]
    outcomes = _report(out, "outcomes")
    assert outcomes["reliable_improvement"]["n"] == truth["gbo"]["paired"]["reliable_improvement"]

    # A later decision: a young person moves to Getting Risk Support; only it comes in the increment.
    time.sleep(1.1)
    since = first["transactionTime"]
    latest = max(
        (
            json.loads(line)
            for line in (store[1] / "Observation.ndjson").read_text().splitlines()
            if 'thrive-grouping"' in line and "getting-risk-support" not in line
        ),
        key=lambda o: o["effectiveDateTime"],
    )
    new = dict(
        latest,
        id=str(uuid.uuid4()),
        effectiveDateTime="2025-12-30T10:00:00Z",
        derivedFrom=[{"reference": f"Observation/{latest['id']}"}],
        valueCodeableConcept={
            "coding": [
                {"system": "https://thrive-fhir.org/fhir/CodeSystem/thrive-grouping", "code": "getting-risk-support"}
            ]
        },
    )
    new.pop("meta", None)
    assert (
        requests.put(f"{server.base_url}/Observation/{new['id']}", json=new, headers=JSON, timeout=30).status_code
        == 201
    )
    second = download(server.base_url, out, types=TYPES, since=since)
    assert second["counts"] == {"Observation": 1}
    after = _report(out, "groupings", end=date(2026, 1, 1))
    assert after["getting-risk-support"]["decisions"] == truth["groupings"]["decisions"]["getting-risk-support"] + 1
    assert after["total"]["current"] == rows["total"]["current"]  # same episodes, one moved
    assert after["getting-risk-support"]["current"] == rows["getting-risk-support"]["current"] + 1


@pytest.mark.slow
def test_paging_search_reads_the_same_as_export(store, tmp_path):
    server, _, truth = store
    out = tmp_path / "search"
    result = download(server.base_url, out, types=TYPES, mode="search", page_size=100)
    assert result["method"] == "search"
    bulk = download(server.base_url, tmp_path / "bulk", types=TYPES)
    assert result["counts"] == {t: bulk["counts"].get(t, 0) for t in TYPES}
    assert result["counts"]["Observation"] >= truth["resources"]["Observation"] > 100  # several pages
    for name in ("groupings", "outcomes", "referral-tasks"):
        assert _report(out, name, end=date(2026, 1, 1)) == _report(tmp_path / "bulk", name, end=date(2026, 1, 1))


@pytest.mark.slow
def test_cli_report_from_a_server_url(store, tmp_path):
    from click.testing import CliRunner

    from thrive_fhir.cli import cli

    server, _, truth = store
    out = tmp_path / "outcomes.csv"
    result = CliRunner().invoke(
        cli, ["report", "outcomes", "--source", server.base_url, "--out", str(out), "--no-suppression"]
    )
    assert result.exit_code == 0, result.output
    lines = dict(line.split(",", 2)[:2] for line in out.read_text().splitlines()[1:])
    assert int(lines["reliable_improvement"]) == truth["gbo"]["paired"]["reliable_improvement"]


def test_unreachable_server_is_one_readable_line(tmp_path):
    from click.testing import CliRunner

    from tests.support.servers import free_port
    from thrive_fhir.cli import cli

    result = CliRunner().invoke(
        cli, ["report", "groupings", "--source", f"http://127.0.0.1:{free_port()}", "--out", str(tmp_path / "g.csv")]
    )
    assert result.exit_code == 1
    assert "cannot reach the server" in result.output and "Traceback" not in result.output


@pytest.mark.slow
def test_cli_since_needs_a_download_folder_and_adds_to_it(store, tmp_path):
    from click.testing import CliRunner

    from thrive_fhir.cli import cli

    server, _, truth = store
    out, keep = tmp_path / "g.csv", tmp_path / "keep"
    refused = CliRunner().invoke(
        cli, ["report", "groupings", "--source", server.base_url, "--out", str(out), "--since", "2020-01-01T00:00:00Z"]
    )
    assert refused.exit_code == 2 and "--download" in refused.output
    first = CliRunner().invoke(
        cli,
        [
            "report",
            "groupings",
            "--source",
            server.base_url,
            "--out",
            str(out),
            "--download",
            str(keep),
            "--no-suppression",
        ],
    )
    assert first.exit_code == 0, first.output
    runs = json.loads((keep / "_export_runs.json").read_text())
    again = CliRunner().invoke(
        cli,
        [
            "report",
            "groupings",
            "--source",
            server.base_url,
            "--out",
            str(out),
            "--download",
            str(keep),
            "--since",
            runs[-1]["transactionTime"],
            "--no-suppression",
        ],
    )
    assert again.exit_code == 0, again.output
    total = dict(line.split(",")[0:4:3] for line in out.read_text().splitlines()[1:])["total"]
    assert int(total) >= sum(truth["groupings"]["decisions"].values())  # nothing lost: the increment adds to the first


@pytest.mark.slow
def test_cli_view_run_from_a_server_url(store, tmp_path):
    from click.testing import CliRunner

    from thrive_fhir.cli import cli

    server, _, truth = store
    out = tmp_path / "episodes.csv"
    import thrive_fhir.reporting

    view = str(Path(thrive_fhir.reporting.__file__).parent / "views" / "episodes.json")
    result = CliRunner().invoke(cli, ["view", "run", view, "--source", server.base_url, "--out", str(out)])
    assert result.exit_code == 0, result.output
    assert len(out.read_text().splitlines()) - 1 == sum(truth["episodes"].values())
