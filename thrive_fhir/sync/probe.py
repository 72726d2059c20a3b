"""``thrive sync check``: find out what a shared store really does before the worker writes to it.

Servers differ in ways that decide how the worker must talk to them (client-assigned ids, atomic
transactions, If-Match, conditional update, search, Bundle size, the scope a token really grants), and
some differences lose data silently when guessed wrong (a transaction applied as a batch). So each is
tried on throwaway ``Organization`` resources marked as probes (identifier system below, name saying
they are safe to delete), every one of which is deleted again at the end.

Organization because every FHIR server stores it, it has no required elements and supports
``identifier`` search everywhere; no health data is involved.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from urllib.parse import quote

from .. import canonical
from ..client.fhir_http import OK, FhirClient, Reply
from .worker import header

PROBE_SYSTEM = canonical.id_system("sync-probe")
SIZES = (10, 50, 100)


@dataclass
class Finding:
    name: str
    ok: bool | None  # None: could not tell
    detail: str


@dataclass
class ProbeReport:
    findings: list[Finding] = field(default_factory=list)
    settings: dict = field(default_factory=dict)
    problems: list[str] = field(default_factory=list)
    leftovers: list[str] = field(default_factory=list)

    def add(self, name: str, ok: bool | None, detail: str) -> None:
        self.findings.append(Finding(name, ok, detail))

    def get(self, name: str) -> bool | None:
        return next((f.ok for f in self.findings if f.name == name), None)

    @property
    def usable(self) -> bool:
        return not self.problems


class Probe:
    def __init__(self, client: FhirClient, *, requested_scope: str = "", granted_scope: str | None = None):
        self.client = client
        self.run = uuid.uuid4().hex[:12]
        self.created: list[str] = []  # "Organization/<id>" to delete at the end
        self.requested_scope = requested_scope
        self.granted_scope = granted_scope
        self._n = 0

    # --- helpers ---------------------------------------------------------------------------------
    def _org(self, with_id: str | None = None) -> tuple[dict, str]:
        self._n += 1
        value = f"{self.run}-{self._n}"
        org = {
            "resourceType": "Organization",
            "active": False,
            "name": "thrive sync check probe (safe to delete)",
            "identifier": [{"system": PROBE_SYSTEM, "value": value}],
        }
        if with_id:
            org["id"] = with_id
        return org, value

    def _criteria(self, value: str) -> str:
        return "identifier=" + quote(f"{PROBE_SYSTEM}|{value}", safe="")

    def _remember(self, reply: Reply) -> str | None:
        rid = _id_from(reply)
        if rid and f"Organization/{rid}" not in self.created:
            self.created.append(f"Organization/{rid}")
        return rid

    def _find(self, value: str) -> list[str]:
        r = self.client.request("GET", f"Organization?{self._criteria(value)}")
        if r.kind != OK:
            return []
        ids = [e["resource"]["id"] for e in (r.body or {}).get("entry") or [] if (e.get("resource") or {}).get("id")]
        for rid in ids:
            if f"Organization/{rid}" not in self.created:
                self.created.append(f"Organization/{rid}")
        return ids

    # --- the probes ------------------------------------------------------------------------------
    def check(self) -> ProbeReport:
        report = ProbeReport()
        try:
            self._probe(report)
        finally:
            self._cleanup(report)
        self._advise(report)
        return report

    def _probe(self, report: ProbeReport) -> None:
        c = self.client
        read = c.request("GET", "Organization?_count=1")
        report.add("read", read.kind == OK, f"search answered HTTP {read.status or read.error}")
        # 1. client-assigned ids
        cid = str(uuid.uuid4())
        org, _ = self._org(cid)
        r = c.request("PUT", f"Organization/{cid}", org, {"Prefer": "return=OperationOutcome"})
        client_ids = r.kind == OK
        if client_ids:
            self._remember(r)
        report.add("client-ids", client_ids, f"PUT Organization/<new uuid> answered HTTP {r.status or r.error}")
        write_forbidden = r.status == 403
        # 2. conditional update creates (and finds the same resource the second time)
        org, value = self._org()
        r1 = c.request("PUT", f"Organization?{self._criteria(value)}", org, {"Prefer": "return=OperationOutcome"})
        first = self._remember(r1) if r1.kind == OK else None
        r2 = (
            c.request("PUT", f"Organization?{self._criteria(value)}", org, {"Prefer": "return=OperationOutcome"})
            if first
            else r1
        )
        second = _id_from(r2) if r2.kind == OK else None
        cond = bool(first) and (second in (None, first)) and len(self._find(value)) == 1
        report.add(
            "conditional-update",
            cond,
            f"PUT Organization?identifier= answered HTTP {r1.status or r1.error}"
            + (f", then {r2.status}" if first else ""),
        )
        write_forbidden = write_forbidden or r1.status == 403
        # 3. If-None-Exist
        org, value = self._org()
        r1 = c.request(
            "POST", "Organization", org, {"If-None-Exist": self._criteria(value), "Prefer": "return=OperationOutcome"}
        )
        first = self._remember(r1) if r1.kind == OK else None
        r2 = (
            c.request(
                "POST",
                "Organization",
                org,
                {"If-None-Exist": self._criteria(value), "Prefer": "return=OperationOutcome"},
            )
            if first
            else r1
        )
        ine = bool(first) and r2.kind == OK and len(self._find(value)) == 1
        report.add(
            "if-none-exist",
            ine,
            f"POST with If-None-Exist twice answered HTTP {r1.status or r1.error}"
            + (f", then {r2.status}" if first else ""),
        )
        target = next(iter(self.created), None)
        etag_seen = bool(header(r1, "ETag")) or bool(((r1.body or {}).get("meta") or {}).get("versionId"))
        report.add(
            "etag",
            etag_seen,
            "writes answer with ETag or meta.versionId"
            if etag_seen
            else "writes answer without ETag (versions must come from the returned resource)",
        )
        # 4. If-Match is honoured
        if target:
            body = c.request("GET", target).body or {"resourceType": "Organization", "id": target.split("/")[1]}
            r = c.request("PUT", target, body, {"If-Match": 'W/"999999"'})
            report.add(
                "if-match", r.status in (409, 412), f"PUT with a stale If-Match answered HTTP {r.status or r.error}"
            )
        else:
            report.add("if-match", None, "no probe resource could be written")
        # 5. atomic transactions: one good entry and one that must fail
        if target:
            org, value = self._org()
            stale = c.request("GET", target).body or {}
            bundle = {
                "resourceType": "Bundle",
                "type": "transaction",
                "entry": [
                    {
                        "fullUrl": f"urn:uuid:{uuid.uuid4()}",
                        "resource": org,
                        "request": {"method": "POST", "url": "Organization"},
                    },
                    {"resource": stale, "request": {"method": "PUT", "url": target, "ifMatch": 'W/"999999"'}},
                ],
            }
            r = c.request("POST", "", bundle, {"Prefer": "return=OperationOutcome"})
            leaked = self._find(value)
            atomic = r.kind != OK and not leaked
            kind = (r.body or {}).get("type") if isinstance(r.body, dict) else None
            report.add(
                "atomic-transactions",
                atomic,
                f"a transaction with one failing entry answered HTTP {r.status or r.error}"
                + (f" ({kind})" if kind else "")
                + ("; the good entry was kept: NOT atomic" if leaked else ""),
            )
        else:
            report.add("atomic-transactions", None, "no probe resource could be written")
        # 6. searches the worker relies on when an answer was lost
        pid = str(uuid.uuid4())
        r = c.request("GET", f"Provenance?_id={pid}&_count=1")
        report.add("provenance-_id-search", r.kind == OK, f"Provenance?_id= answered HTTP {r.status or r.error}")
        r = c.request("GET", f"Provenance?target=Organization/{pid}&_count=1")
        report.add("provenance-target-search", r.kind == OK, f"Provenance?target= answered HTTP {r.status or r.error}")
        # 7. the largest Bundle accepted (of the sizes tried)
        largest = 0
        for n in SIZES:
            entries = []
            for _ in range(n):
                org, _v = self._org()
                entries.append(
                    {
                        "fullUrl": f"urn:uuid:{uuid.uuid4()}",
                        "resource": org,
                        "request": {"method": "POST", "url": "Organization"},
                    }
                )
            r = c.request(
                "POST", "", {"resourceType": "Bundle", "type": "batch", "entry": entries}, {"Prefer": "return=minimal"}
            )
            for e in (r.body or {}).get("entry") or [] if isinstance(r.body, dict) else []:
                rid = _id_from_location(((e.get("response") or {}).get("location")) or "")
                if rid and f"Organization/{rid}" not in self.created:
                    self.created.append(f"Organization/{rid}")
            statuses = (
                [_status((e.get("response") or {}).get("status")) for e in (r.body or {}).get("entry") or []]
                if isinstance(r.body, dict)
                else []
            )
            if r.kind == OK and len(statuses) == n and all(200 <= s < 300 for s in statuses):
                largest = n
            else:
                break
        report.add(
            "bundle-size",
            largest > 0,
            f"largest Bundle accepted: {largest or 'none'} of {', '.join(map(str, SIZES))} tried",
        )
        report.settings["max_entries"] = max(2, min(50, largest or 2))
        # 8. the scope
        writes = not write_forbidden and (client_ids or report.get("conditional-update") or report.get("if-none-exist"))
        granted = f"; token response says: {self.granted_scope}" if self.granted_scope else ""
        report.add(
            "scope",
            bool(writes) and read.kind == OK,
            f"requested {self.requested_scope or '(none)'}: reads {'allowed' if read.kind == OK else 'REFUSED'}, "
            f"writes {'allowed' if writes else 'REFUSED (403)' if write_forbidden else 'not shown'}{granted}",
        )
        if write_forbidden:
            report.problems.append(
                "the token may read but not write: Medplum applies only the FIRST wildcard scope; "
                'request one scope that allows writing, e.g. [auth] scope = "system/*.cruds"'
            )

    def _cleanup(self, report: ProbeReport) -> None:
        for ref in reversed(self.created):
            r = self.client.request("DELETE", ref)
            if r.kind != OK and r.status not in (404, 410):
                report.leftovers.append(ref)

    def _advise(self, report: ProbeReport) -> None:
        s = report.settings
        if report.get("client-ids"):
            s["id_mode"] = "deterministic"
        elif report.get("conditional-update"):
            s["id_mode"], s["identifier_create"] = "identifier", "conditional-update"
        elif report.get("if-none-exist"):
            s["id_mode"], s["identifier_create"] = "identifier", "if-none-exist"
        else:
            report.problems.append(
                "the store accepts neither client-assigned ids nor creates by identifier: "
                "no mode can create resources without risking duplicates"
            )
        if s.get("id_mode") == "deterministic" and not report.get("provenance-_id-search"):
            report.problems.append("Provenance?_id= search is refused: lost answers could not be checked")
        if s.get("id_mode") == "identifier" and not report.get("provenance-target-search"):
            report.problems.append("Provenance?target= search is refused: lost answers could not be checked")
        if report.get("if-match") is False:
            report.problems.append("If-Match is ignored: another agency's edit would be overwritten; do not sync")
        s["atomic_transactions"] = bool(report.get("atomic-transactions"))
        s["prefer_return"] = "OperationOutcome" if report.get("etag") else "representation"


def _status(text) -> int:
    try:
        return int(str(text or "").split(" ", 1)[0])
    except ValueError:
        return 0


def _id_from_location(loc: str) -> str | None:
    segs = [s for s in loc.split("?", 1)[0].split("/") if s]
    if "_history" in segs:
        segs = segs[: segs.index("_history")]
    return segs[-1] if len(segs) >= 2 else None


def _id_from(reply: Reply) -> str | None:
    body = reply.body if isinstance(reply.body, dict) else {}
    if body.get("resourceType") == "Organization" and body.get("id"):
        return str(body["id"])
    return _id_from_location(header(reply, "Location") or header(reply, "Content-Location") or "")


def render(report: ProbeReport) -> list[str]:
    mark = {True: "yes", False: "NO", None: "unknown"}
    lines = [f"{f.name:26} {mark[f.ok]:8} {f.detail}" for f in report.findings]
    if report.leftovers:
        lines.append(f"could not delete {len(report.leftovers)} probe resource(s): {', '.join(report.leftovers)}")
    else:
        lines.append("probe resources deleted")
    if report.problems:
        lines += [f"problem: {p}" for p in report.problems]
    s = report.settings
    order = ["id_mode", "identifier_create", "atomic_transactions", "prefer_return", "max_entries"]
    use = ", ".join(f"{k} = {str(s[k]).lower() if isinstance(s[k], bool) else s[k]}" for k in order if k in s)
    lines.append(("use: " if report.usable else "closest settings (NOT safe until the problems are fixed): ") + use)
    return lines
