"""Load NDJSON (for example ``thrive synth`` output) into any FHIR R4 server, in reference order.

Why each step:
- *Reference order*: servers that check references (HAPI with referential integrity, Medplum, our
  store's own profiles for some links) refuse a resource whose target is not there yet. Types are
  ordered so that a type comes after every type its resources point at (a topological order of the
  references actually present; cycles are broken by a fixed list, directory types first), and within
  a type a resource comes after the ones of the same type it points at (``partOf``, ``hasMember``).
- *Transaction batches*: one round trip per N resources, all or nothing per batch. Resources keep
  their ids (``PUT Type/id``), so loading the same files twice updates instead of duplicating; a
  resource without an id is created (``POST``).
- *A failed batch is retried resource by resource*, so one bad resource does not cost its 99
  neighbours, and each failure is reported with the server's own OperationOutcome text.
- Transient answers (429, 503, time-outs) are retried with back-off, honouring ``Retry-After``.

The whole input is read into memory to order it (fine for the synthetic populations and demo data
this is for; a multi-gigabyte export wants a streaming loader per type).
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .fhir_http import OK, TRANSIENT, FhirClient

#: Tie-breaker when references form a cycle: resources others commonly point at first.
PREFERRED = (
    "Organization",
    "Location",
    "HealthcareService",
    "Practitioner",
    "PractitionerRole",
    "Device",
    "Patient",
    "RelatedPerson",
    "EpisodeOfCare",
    "CareTeam",
    "Encounter",
    "Goal",
    "CarePlan",
    "Consent",
    "ServiceRequest",
    "Observation",
    "QuestionnaireResponse",
    "Task",
    "Flag",
    "Provenance",
)


class InputError(ValueError):
    """The input cannot be read; the message is one line naming the file and line (never content)."""


class Unreachable(RuntimeError):
    """The server gave no HTTP answer (or only transient ones) after every retry: stop, say why."""


@dataclass
class Failure:
    reference: str  # Type/id (or Type/(new) for a create)
    status: int
    message: str


@dataclass
class ImportReport:
    loaded: dict[str, int] = field(default_factory=dict)
    failures: list[Failure] = field(default_factory=list)
    batches: int = 0

    @property
    def total(self) -> int:
        return sum(self.loaded.values())


def read_input(path: Path) -> list[dict[str, Any]]:
    """Resources from ``path`` (a ``.ndjson`` file, or every ``*.ndjson`` in a folder)."""
    files = sorted(path.glob("*.ndjson")) if path.is_dir() else [path]
    if not files:
        raise InputError(f"{path}: no .ndjson files in this folder")
    out: list[dict[str, Any]] = []
    for f in files:
        try:
            fh = f.open(encoding="utf-8")
        except OSError as exc:
            raise InputError(f"{f}: {exc.strerror}") from None
        with fh:
            try:
                for n, line in enumerate(fh, 1):
                    if not line.strip():
                        continue
                    try:
                        res = json.loads(line)
                    except ValueError:
                        raise InputError(f"{f.name} line {n}: not JSON") from None
                    if not isinstance(res, dict) or not isinstance(res.get("resourceType"), str):
                        raise InputError(f"{f.name} line {n}: not a FHIR resource (no resourceType)")
                    out.append(res)
            except UnicodeDecodeError:
                raise InputError(f"{f.name}: not UTF-8 text") from None
    return out


def _references(node, out: set[str]) -> set[str]:
    if isinstance(node, dict):
        for key, value in node.items():
            if key == "reference" and isinstance(value, str):
                parts = value.split("/")
                if len(parts) >= 2 and parts[-2][:1].isupper() and "_history" not in parts:
                    out.add(f"{parts[-2]}/{parts[-1]}")
                elif len(parts) >= 4 and parts[-2] == "_history":
                    out.add(f"{parts[-4]}/{parts[-3]}")
            else:
                _references(value, out)
    elif isinstance(node, list):
        for item in node:
            _references(item, out)
    return out


def reference_order(resources: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """``resources`` reordered so targets come before the resources that point at them."""
    by_key = {f"{r['resourceType']}/{r['id']}": r for r in resources if isinstance(r.get("id"), str)}
    refs = {id(r): {k for k in _references(r, set()) if k in by_key} for r in resources}
    types = sorted({r["resourceType"] for r in resources})
    needs: dict[str, set[str]] = {t: set() for t in types}
    for r in resources:
        for k in refs[id(r)]:
            target = k.split("/", 1)[0]
            if target != r["resourceType"]:
                needs[r["resourceType"]].add(target)
    rank = {t: i for i, t in enumerate(PREFERRED)}
    order: list[str] = []
    remaining = set(types)
    while remaining:
        ready = [t for t in remaining if not (needs[t] & remaining)]
        if not ready:  # a cycle: take the most "directory-like" type of it
            ready = [min(remaining, key=lambda t: (rank.get(t, len(rank)), t))]
        ready.sort(key=lambda t: (rank.get(t, len(rank)), t))
        order.append(ready[0])
        remaining.discard(ready[0])
    out: list[dict[str, Any]] = []
    for t in order:
        of_type = [r for r in resources if r["resourceType"] == t]
        placed: set[int] = set()
        visiting: set[int] = set()

        def place(r, t=t):
            if id(r) in placed or id(r) in visiting:
                return
            visiting.add(id(r))
            for k in sorted(refs[id(r)]):
                if k.startswith(t + "/"):
                    place(by_key[k])
            visiting.discard(id(r))
            placed.add(id(r))
            out.append(r)

        for r in of_type:
            place(r)
    return out


def _entry(r: dict[str, Any]) -> dict[str, Any]:
    if isinstance(r.get("id"), str) and r["id"]:
        return {
            "fullUrl": f"{r['resourceType']}/{r['id']}",
            "resource": r,
            "request": {"method": "PUT", "url": f"{r['resourceType']}/{r['id']}"},
        }
    return {"resource": r, "request": {"method": "POST", "url": r["resourceType"]}}


def _ref(r: dict[str, Any]) -> str:
    return f"{r['resourceType']}/{r['id']}" if r.get("id") else f"{r['resourceType']}/(new)"


def outcome_text(body, fallback: str) -> str:
    if isinstance(body, dict) and body.get("resourceType") == "OperationOutcome":
        texts = [
            str(i.get("diagnostics") or (i.get("details") or {}).get("text") or i.get("code") or "")
            for i in body.get("issue") or []
            if isinstance(i, dict)
        ]
        texts = [t for t in texts if t]
        if texts:
            return "; ".join(texts)[:500]
    return fallback


class Importer:
    """Sends ordered resources to ``client`` in transaction batches of ``batch_size``."""

    def __init__(
        self,
        client: FhirClient,
        *,
        batch_size: int = 100,
        retries: int = 4,
        sleep: Callable[[float], None] = time.sleep,
    ):
        self.client = client
        self.batch_size = batch_size
        self.retries = retries
        self.sleep = sleep

    def _send(self, method: str, path: str, body: dict | None):
        attempt = 0
        while True:
            reply = self.client.request(method, path, body, {"Prefer": "return=minimal"})
            if reply.kind != TRANSIENT or (reply.ambiguous and method == "POST" and path):
                return reply
            if attempt >= self.retries:
                break
            self.sleep(min(30.0, reply.retry_after if reply.retry_after is not None else 0.5 * 2**attempt))
            attempt += 1
        if reply.status == 0 or reply.status in (429, 503):
            raise Unreachable(f"{self.client.base_url}: {reply.error or 'no answer'} after {self.retries + 1} attempts")
        return reply

    def run(
        self, resources: Iterable[dict[str, Any]], progress: Callable[[int], None] = lambda n: None
    ) -> ImportReport:
        report = ImportReport()
        items = list(resources)
        for start in range(0, len(items), self.batch_size):
            batch = items[start : start + self.batch_size]
            report.batches += 1
            bundle = {"resourceType": "Bundle", "type": "transaction", "entry": [_entry(r) for r in batch]}
            reply = self._send("POST", "", bundle)
            if reply.kind == OK:
                for r in batch:
                    report.loaded[r["resourceType"]] = report.loaded.get(r["resourceType"], 0) + 1
            else:
                self._one_by_one(batch, report)
            progress(len(batch))
        return report

    def _one_by_one(self, batch: list[dict[str, Any]], report: ImportReport) -> None:
        """After a failed transaction: each resource on its own, so the failures are named."""
        for r in batch:
            entry = _entry(r)
            reply = self._send(entry["request"]["method"], entry["request"]["url"], r)
            if reply.kind == OK:
                report.loaded[r["resourceType"]] = report.loaded.get(r["resourceType"], 0) + 1
            else:
                fallback = reply.error or f"HTTP {reply.status}"
                report.failures.append(Failure(_ref(r), reply.status, outcome_text(reply.body, fallback)))


__all__ = ["Failure", "ImportReport", "Importer", "InputError", "Unreachable", "read_input", "reference_order"]
