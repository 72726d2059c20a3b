"""A Bulk Data export manifest is the server's word: an output entry that would write outside the
download folder, or that has no file URL, is a BulkError (one readable line), not a file written
elsewhere or a KeyError. Error branches, so ``responses`` stands in for the server."""

from __future__ import annotations

import pytest
import responses

from thrive_fhir.reporting.bulk_client import BulkError, download

BASE = "https://fhir.example.test/fhir"


def _serve(output: object) -> None:
    responses.get(f"{BASE}/$export", status=202, headers={"Content-Location": f"{BASE}/status/1"})
    responses.get(
        f"{BASE}/status/1",
        json={"transactionTime": "2026-01-01T00:00:00Z", "requiresAccessToken": False, "output": output},
    )
    responses.get(f"{BASE}/files/1.ndjson", body='{"resourceType":"Patient","id":"p1"}\n')


@responses.activate
@pytest.mark.parametrize(
    "output",
    [
        [{"type": "../../escaped", "url": f"{BASE}/files/1.ndjson"}],
        [{"type": "Patient"}],
        [{"type": "Patient", "url": 7}],
        ["Patient"],
        {"type": "Patient", "url": f"{BASE}/files/1.ndjson"},
    ],
    ids=["type-with-a-path", "no-url", "url-not-text", "entry-not-an-object", "output-not-a-list"],
)
def test_unusable_manifest_output_is_a_bulk_error_and_writes_nothing_outside(tmp_path, output):
    folder = tmp_path / "export" / "inner"
    _serve(output)
    with pytest.raises(BulkError, match="manifest"):
        download(BASE, folder, mode="bulk")
    written = {p.relative_to(tmp_path) for p in tmp_path.rglob("*") if p.is_file()}
    assert all(p.parts[:2] == ("export", "inner") for p in written), written


@responses.activate
def test_usable_manifest_is_downloaded(tmp_path):
    _serve([{"type": "Patient", "url": f"{BASE}/files/1.ndjson"}])
    result = download(BASE, tmp_path, mode="bulk")
    assert result["counts"] == {"Patient": 1}
    assert [p.name.split(".")[0] for p in tmp_path.glob("*.ndjson")] == ["Patient"]
