"""Paging a search: one reader of a Bundle's ``next`` link for every client (the sync worker's
FhirClient users, the audit listing, reporting's search input, the clinician Summary)."""

from __future__ import annotations

from thrive_fhir.client.fhir_http import next_link

BASE = "https://fhir.example.nhs.uk/fhir"


def _page(*links):
    return {"resourceType": "Bundle", "type": "searchset", "link": list(links)}


def test_next_link_is_read_from_the_links():
    bundle = _page({"relation": "self", "url": f"{BASE}/Goal"}, {"relation": "next", "url": f"{BASE}/Goal?_cursor=9"})
    assert next_link(bundle) == f"{BASE}/Goal?_cursor=9"
    assert next_link(bundle, BASE + "/") == f"{BASE}/Goal?_cursor=9"


def test_the_last_page_and_odd_shapes_have_no_next():
    assert next_link(_page({"relation": "self", "url": f"{BASE}/Goal"})) is None
    assert next_link({"resourceType": "Bundle"}) is None
    assert next_link(None) is None
    assert next_link(_page("next", {"relation": "next", "url": 7})) is None


def test_a_next_link_off_the_base_is_not_followed_with_our_token():
    for elsewhere in ("https://evil.example/fhir/Goal?p=2", f"{BASE}-other/Goal?p=2", "https://fhir.example.nhs.uk/x"):
        bundle = _page({"relation": "next", "url": elsewhere})
        assert next_link(bundle) == elsewhere  # without a base the caller guards (EhrClient does)
        assert next_link(bundle, BASE) is None
