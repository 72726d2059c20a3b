"""Read a FHIR server into a folder of NDJSON: Bulk Data ``$export``, or paging searches.

``$export`` (FHIR Bulk Data Access 2.0): kick-off ``GET [base]/$export`` with
``Prefer: respond-async`` (``_type``, ``_since``), poll the ``Content-Location`` until 200 (honouring
``Retry-After``, showing ``X-Progress``), then download each output file. With Backend Services auth
(:class:`thrive_fhir.client.backend_services.BackendServicesAuth`) every call carries the token,
and file downloads too when the manifest says ``requiresAccessToken``.

A server that answers the kick-off with 404/405/501 (no ``$export``) is read by searches instead:
``GET [base]/Type?_count=N`` following ``next`` links, ``_lastUpdated=gt<since>`` for ``_since``.

Each run writes ``<Type>.<run>.ndjson`` plus a line in ``_export_runs.json``, so runs with
``--since`` can go into the same folder; :mod:`.engine` then keeps the newest version of each
resource (by ``meta.lastUpdated``). Deletions are not carried by ``$export``: a full export
(no ``since``) into a fresh folder is the way to drop them.
"""

from __future__ import annotations

import json
import re
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from urllib.parse import urlencode

import requests

from ..client.fhir_http import FhirClient, NoAuth, TokenError, next_link

STATE_FILE = "_export_runs.json"
NO_EXPORT = (404, 405, 501)
#: What an export manifest may give as a file's resource type (it becomes part of a file name).
_RESOURCE_TYPE = re.compile(r"[A-Z][A-Za-z]{0,63}")


class BulkError(Exception):
    """The server could not be read: one sentence for the user (never a token)."""


def make_auth(base: str, auth: dict | object | None):
    """An ``Auth`` for :class:`FhirClient`: given, or built from --client-id/--key/--kid options."""
    if auth is None:
        return NoAuth()
    if not isinstance(auth, dict):
        return auth
    from ..client.backend_services import BackendServicesAuth, discover_token_url

    try:
        pem = Path(auth["key_file"]).read_bytes()
    except OSError as exc:
        raise BulkError(f"cannot read the private key {auth['key_file']}: {exc.strerror}") from None
    try:
        token_url = auth.get("token_url") or discover_token_url(base)
        return BackendServicesAuth(
            token_url=token_url,
            client_id=auth["client_id"],
            private_key_pem=pem,
            kid=auth.get("kid") or auth["client_id"],
            alg=auth.get("alg") or "RS384",
            scope=auth.get("scope") or "system/*.rs",
        )
    except TokenError as exc:
        raise BulkError(f"Backend Services authorisation failed ({exc.kind})") from None


def download(
    base: str,
    folder: Path,
    *,
    types: list[str] | None = None,
    since: str | None = None,
    auth=None,
    progress: Callable[[str], None] | None = None,
    mode: str = "auto",
    page_size: int = 500,
    timeout: float = 3600.0,
    session: requests.Session | None = None,
) -> dict:
    """Fill ``folder`` from the server at ``base``; return a summary (``method``, ``files``, counts)."""
    say = progress or (lambda _m: None)
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    client = FhirClient(base, make_auth(base, auth), session=session, user_agent="thrive-report", read_timeout=120.0)
    run = datetime.now(UTC).strftime("%Y%m%dT%H%M%S%fZ")
    try:
        result = None
        if mode in ("auto", "bulk"):
            result = _bulk(client, folder, run, types, since, say, timeout, mode == "bulk")
        if result is None:
            if not types:
                raise BulkError("the server has no $export; name the resource types to read by search")
            result = _search(client, folder, run, types, since, say, page_size)
    finally:
        client.close()
    state_path = folder / STATE_FILE
    runs = json.loads(state_path.read_text()) if state_path.exists() else []
    runs.append({"run": run, "since": since, **{k: v for k, v in result.items() if k != "files"}})
    state_path.write_text(json.dumps(runs, indent=1))
    return result


def _header(reply, name: str) -> str | None:
    """A response header, whatever its case (HTTP header names are case-insensitive; some servers,
    e.g. sekmet-fhir, send them in lower case)."""
    for k, v in reply.headers.items():
        if k.lower() == name.lower():
            return v
    return None


def _check(reply, what: str) -> None:
    if reply.kind == "auth" or reply.status in (401, 403):
        raise BulkError(f"the server refused {what} (HTTP {reply.status or 401}: check the client id, key and scopes)")
    if not reply.status:
        raise BulkError(f"cannot reach the server for {what} ({reply.error})")
    if reply.status >= 400:
        detail = ""
        if reply.body and reply.body.get("resourceType") == "OperationOutcome":
            detail = "; ".join(i.get("diagnostics", "") for i in reply.body.get("issue", []) if i.get("diagnostics"))
        raise BulkError(f"{what} failed: HTTP {reply.status}" + (f" ({detail[:200]})" if detail else ""))


def _bulk(client: FhirClient, folder: Path, run: str, types, since, say, timeout, required: bool) -> dict | None:
    params = {}
    if types:
        params["_type"] = ",".join(types)
    if since:
        params["_since"] = since
    path = "$export" + (f"?{urlencode(params)}" if params else "")
    reply = client.request("GET", path, headers={"Prefer": "respond-async"})
    if reply.status in NO_EXPORT and not required:
        say("the server has no $export: reading by paging searches")
        return None
    _check(reply, "the $export kick-off")
    status_url = _header(reply, "Content-Location")
    if reply.status != 202 or not status_url:
        raise BulkError(f"the $export kick-off answered HTTP {reply.status} without a status URL")
    deadline = time.monotonic() + timeout
    last = None
    while True:
        reply = client.request("GET", status_url)
        if reply.status == 202:
            note = _header(reply, "X-Progress") or "in progress"
            if note != last:
                say(f"export: {note}")
                last = note
            if time.monotonic() > deadline:
                raise BulkError("the export did not finish in time")
            time.sleep(min(max(reply.retry_after or 1.0, 0.2), 10.0))
            continue
        _check(reply, "the export status")
        break
    manifest = reply.body or {}
    needs_token = bool(manifest.get("requiresAccessToken"))
    files: list[str] = []
    counts: dict[str, int] = {}
    outputs = manifest.get("output", [])
    if not isinstance(outputs, list):
        raise BulkError("the export manifest's 'output' is not a list")
    for n, out in enumerate(outputs, 1):
        rtype = (out.get("type") or "Unknown") if isinstance(out, dict) else None
        url = out.get("url") if isinstance(out, dict) else None
        # The type names the file written in ``folder``: a server's "../x" must not write elsewhere.
        if not isinstance(rtype, str) or not _RESOURCE_TYPE.fullmatch(rtype) or not isinstance(url, str) or not url:
            raise BulkError(f"the export manifest's output {n} is unusable (it needs a resource 'type' and a 'url')")
        target = folder / f"{rtype}.{run}-{n}.ndjson"
        lines = _fetch_file(client, url, target, needs_token)
        counts[rtype] = counts.get(rtype, 0) + lines
        files.append(str(target))
        say(f"downloaded {rtype}: {lines} resources")
    return {"method": "bulk", "transactionTime": manifest.get("transactionTime"), "counts": counts, "files": files}


def _fetch_file(client: FhirClient, url: str, target: Path, needs_token: bool) -> int:
    headers = {"Accept": "application/fhir+ndjson"}
    for attempt in (1, 2):
        if needs_token:
            try:
                headers.update(client.auth.header())
            except TokenError as exc:
                raise BulkError(f"Backend Services authorisation failed ({exc.kind})") from None
        try:
            resp = client.session.get(url, headers=headers, stream=True, timeout=client.timeout)
        except requests.RequestException as exc:
            raise BulkError(f"cannot download an export file ({type(exc).__name__})") from None
        if resp.status_code == 401 and needs_token and attempt == 1:
            client.auth.invalidate()
            continue
        if resp.status_code != 200:
            raise BulkError(f"downloading an export file failed: HTTP {resp.status_code}")
        lines = 0
        with open(target, "wb") as fh:
            for chunk in resp.iter_content(1 << 20):
                fh.write(chunk)
                lines += chunk.count(b"\n")
        return lines
    raise BulkError("downloading an export file failed: HTTP 401")


def _search(client: FhirClient, folder: Path, run: str, types, since, say, page_size) -> dict:
    files, counts = [], {}
    for rtype in types:
        params = {"_count": str(page_size)}
        if since:
            params["_lastUpdated"] = f"gt{since}"
        # The next page's URL; None once the last page is read.
        url: str | None = f"{rtype}?{urlencode(params)}"
        target = folder / f"{rtype}.{run}-search.ndjson"
        n = 0
        seen_urls = set()
        with open(target, "w", encoding="utf-8") as fh:
            while url:
                reply = client.request("GET", url)
                if reply.status == 404 or (reply.status == 400 and n == 0 and rtype not in ("Patient",)):
                    # a type this server does not hold (or search it refuses): nothing to read
                    if reply.status == 404:
                        break
                _check(reply, f"searching {rtype}")
                bundle = reply.body or {}
                for entry in bundle.get("entry", []):
                    res = entry.get("resource")
                    if (
                        res
                        and entry.get("search", {}).get("mode", "match") == "match"
                        and res.get("resourceType") == rtype
                    ):
                        fh.write(json.dumps(res, ensure_ascii=False, separators=(",", ":")))
                        fh.write("\n")
                        n += 1
                url = next_link(bundle, client.base_url)  # never a link off the server (our token)
                if url in seen_urls:  # a server that links a page to itself would loop forever
                    break
                if url:
                    seen_urls.add(url)
        counts[rtype] = n
        files.append(str(target))
        say(f"searched {rtype}: {n} resources")
    return {"method": "search", "counts": counts, "files": files}
