"""A small FHIR REST client for the sync worker: timeouts, error classes, Retry-After, auth refresh.

It never raises for an HTTP answer: every call returns a :class:`Reply` whose ``kind`` is one of the
classes of docs/design/sync.md's table, so the worker's decisions live in one place (``thrive_fhir.sync``).
It never logs bodies or headers (they carry health data and tokens).
"""

from __future__ import annotations

import email.utils
import json
import re
import time
from dataclasses import dataclass, field
from typing import Protocol
from urllib.parse import quote

import requests
from requests.adapters import HTTPAdapter

FHIR_JSON = "application/fhir+json"

# Error classes (docs/design/sync.md "Error classes").
OK = "ok"
TRANSIENT = "transient"
CONFLICT = "conflict"
PAYLOAD = "payload"
AUTH = "auth"
FORBIDDEN = "forbidden"
NOT_FOUND = "not-found"  # only for reads: the resource is not there (not an error for the worker)

TRANSIENT_STATUSES = frozenset({408, 425, 429, 500, 502, 503, 504})
PAYLOAD_STATUSES = frozenset({400, 404, 405, 410, 413, 415, 422})

# --- ids and URLs built from segments ----------------------------------------------------------
#: The FHIR id rule (R4 datatypes: ``[A-Za-z0-9\-\.]{1,64}``).
FHIR_ID_RE = re.compile(r"[A-Za-z0-9\-.]{1,64}")
RESOURCE_TYPE_RE = re.compile(r"[A-Z][A-Za-z]{1,63}")
#: A path segment a FHIR client may send after the base: a type, an id, ``_history``, ``$op``.
_SEGMENT_RE = re.compile(r"[A-Za-z0-9\-._$]{1,64}")


class InvalidFhirPath(ValueError):
    """An id, type or path segment that must not go into a FHIR URL (it would leave the base)."""


def is_fhir_id(value: object) -> bool:
    """``value`` is a string that obeys the FHIR id rule and is not a dot segment.

    ``.`` and ``..`` match the R4 id pattern, but in a URL they climb out of the FHIR base, so
    they are refused as well: an id that comes from another system (a token response, an EHR
    answer) must never decide which URL our bearer token is sent to."""
    return isinstance(value, str) and bool(FHIR_ID_RE.fullmatch(value)) and value.strip(".") != ""


def check_id(value: object) -> str:
    """``value`` if :func:`is_fhir_id`, else :class:`InvalidFhirPath`."""
    if not is_fhir_id(value):
        raise InvalidFhirPath("not a FHIR id")
    return value  # type: ignore[return-value]


def resource_path(resource_type: object, resource_id: object | None = None, *rest: str) -> str:
    """``Type[/id[/rest...]]`` built from checked segments, never by joining raw strings."""
    if not isinstance(resource_type, str) or not RESOURCE_TYPE_RE.fullmatch(resource_type):
        raise InvalidFhirPath("not a FHIR resource type")
    segments = [resource_type]
    if resource_id is not None:
        segments.append(check_id(resource_id))
    segments += rest
    return join_segments(segments)


def join_segments(segments) -> str:
    """Join path segments after checking each: no empty or dot segments, no ``/``, ``?`` or ``%``."""
    out = []
    for seg in segments:
        if not isinstance(seg, str) or not _SEGMENT_RE.fullmatch(seg) or seg.strip(".") == "":
            raise InvalidFhirPath("not a FHIR path segment")
        out.append(quote(seg, safe="$"))
    return "/".join(out)


def checked_relative_path(path: str) -> str:
    """A relative ``Type/id...[?query]`` whose path part passes :func:`join_segments` (the query
    is left as it is: it cannot change the path). ``""`` (the base itself) is allowed."""
    path_part, sep, query = path.partition("?")
    path_part = path_part.strip("/")
    checked = join_segments(path_part.split("/")) if path_part else ""
    return checked + (sep + query if sep else "")


class Auth(Protocol):
    """Supplies the Authorization header; ``invalidate`` drops a token the server refused."""

    def header(self) -> dict[str, str]: ...

    def invalidate(self) -> None: ...


class NoAuth:
    def header(self) -> dict[str, str]:
        return {}

    def invalidate(self) -> None:
        return None


class StaticBearer:
    """A fixed bearer token from configuration (e.g. a store behind a gateway that issues long-lived keys)."""

    def __init__(self, token: str):
        self._token = token

    def header(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self._token}"}

    def invalidate(self) -> None:
        return None

    def __repr__(self) -> str:  # never print the token
        return "StaticBearer(***)"


@dataclass
class Reply:
    """The store's answer, classified. ``status`` is 0 when no HTTP answer arrived."""

    kind: str
    status: int = 0
    body: dict | None = None
    headers: dict[str, str] = field(default_factory=dict)
    retry_after: float | None = None
    # True when the request may have reached the store and been applied although we got no answer
    # (timeout or connection lost after sending).
    ambiguous: bool = False
    error: str = ""

    @property
    def ok(self) -> bool:
        return self.kind == OK


def classify(status: int) -> str:
    """Map an HTTP status to an error class (docs/design/sync.md table)."""
    if 200 <= status < 300:
        return OK
    if status in TRANSIENT_STATUSES or status >= 500:
        return TRANSIENT
    if status in (409, 412):
        return CONFLICT
    if status == 401:
        return AUTH
    if status == 403:
        return FORBIDDEN
    return PAYLOAD


def parse_retry_after(value: str | None, now: float | None = None) -> float | None:
    """Seconds to wait from a Retry-After header (delta-seconds or HTTP-date); None if absent/garbled."""
    if not value:
        return None
    value = value.strip()
    if value.isdigit():
        return float(value)
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if when is None:
        return None
    return max(0.0, when.timestamp() - (now if now is not None else time.time()))


def environment_session(base_url: str) -> requests.Session:
    """A Session for one server whose proxy and CA bundle settings are read from the environment
    once, here, as requests would read them for ``base_url``, instead of on every request.

    requests scans ``os.environ`` for proxies on each request (about 0.8 ms of CPU here, a large part
    of a small search's client time); a client that only ever talks to one server gets the same
    proxy (or none, under ``no_proxy``) and the same ``REQUESTS_CA_BUNDLE`` every time. It also
    skips ``~/.netrc``, which would replace the bearer token this client sends."""
    session = requests.Session()
    settings = session.merge_environment_settings(base_url, {}, None, None, None)
    session.trust_env = False
    session.proxies = settings["proxies"]
    session.verify = settings["verify"]
    return session


class FhirClient:
    """FHIR REST calls with connect/read timeouts, a pooled session and one retry after 401."""

    def __init__(
        self,
        base_url: str,
        auth: Auth | None = None,
        *,
        connect_timeout: float = 5.0,
        read_timeout: float = 30.0,
        session: requests.Session | None = None,
        user_agent: str = "thrive-fhir-sync",
    ):
        self.base_url = base_url.rstrip("/")
        self.auth = auth or NoAuth()
        self.timeout = (connect_timeout, read_timeout)
        self.session = session or requests.Session()
        adapter = HTTPAdapter(pool_connections=4, pool_maxsize=16, max_retries=0)
        self.session.mount("http://", adapter)
        self.session.mount("https://", adapter)
        self.user_agent = user_agent

    def _headers(self, extra: dict[str, str] | None) -> dict[str, str]:
        h = {"Accept": FHIR_JSON, "User-Agent": self.user_agent}
        h.update(self.auth.header())
        if extra:
            h.update(extra)
        return h

    def request(self, method: str, path: str, body: dict | None = None, headers: dict[str, str] | None = None) -> Reply:
        """One FHIR interaction; after a 401 the token is dropped, fetched again and the call retried once."""
        reply = self._once(method, path, body, headers)
        if reply.kind == AUTH:
            self.auth.invalidate()
            reply = self._once(method, path, body, headers)
        return reply

    def _once(self, method: str, path: str, body: dict | None, headers: dict[str, str] | None) -> Reply:
        if path.startswith(("http://", "https://")):
            url = path
        else:
            try:
                url = f"{self.base_url}/{checked_relative_path(path)}"
            except InvalidFhirPath:
                return Reply(PAYLOAD, error="invalid FHIR path")
        data = None
        extra = dict(headers or {})
        if body is not None:
            data = json.dumps(body, separators=(",", ":"), ensure_ascii=False).encode("utf-8")
            extra.setdefault("Content-Type", f"{FHIR_JSON}; charset=utf-8")
        try:
            hdrs = self._headers(extra)
        except TokenError as exc:
            return Reply(AUTH, error=f"token: {exc.kind}")
        try:
            resp = self.session.request(
                method, url, data=data, headers=hdrs, timeout=self.timeout, allow_redirects=False
            )
        except requests.ConnectTimeout:
            return Reply(TRANSIENT, error="connect timeout")
        except requests.ReadTimeout:
            return Reply(TRANSIENT, error="read timeout", ambiguous=True)
        except requests.ConnectionError as exc:
            # Refused before sending is harmless; reset after sending may follow a commit.
            refused = "refused" in str(exc).lower()
            return Reply(TRANSIENT, error="connection refused" if refused else "connection lost", ambiguous=not refused)
        except requests.RequestException as exc:
            return Reply(TRANSIENT, error=f"transport: {type(exc).__name__}", ambiguous=True)
        kind = classify(resp.status_code)
        parsed: dict | None = None
        if resp.content:
            try:
                parsed = resp.json()
            except ValueError:
                parsed = None
            if parsed is not None and not isinstance(parsed, dict):
                parsed = None
        return Reply(
            kind,
            status=resp.status_code,
            body=parsed,
            headers={k: v for k, v in resp.headers.items()},
            retry_after=parse_retry_after(resp.headers.get("Retry-After")),
            # 500/502/504 may come after the store (or the store behind a gateway) committed;
            # 408/425/429/503 mean "not processed".
            ambiguous=resp.status_code in (500, 502, 504) or resp.status_code > 504,
            error="" if kind == OK else f"HTTP {resp.status_code}",
        )

    # --- FHIR interactions -------------------------------------------------------------------
    def transaction(self, bundle: dict) -> Reply:
        # return=minimal: the worker needs each entry's ETag, not the resources echoed back; smaller
        # answers cost the store and us less.
        return self.request("POST", "", bundle, {"Prefer": "return=minimal"})

    def read(self, resource_type: str, resource_id: str) -> Reply:
        try:
            path = resource_path(resource_type, resource_id)
        except InvalidFhirPath:
            return Reply(PAYLOAD, error="invalid FHIR id")
        reply = self.request("GET", path)
        if reply.status in (404, 410):
            reply.kind = NOT_FOUND
        return reply

    def close(self) -> None:
        self.session.close()


class TokenError(Exception):
    """A token could not be obtained; ``kind`` is a short, token-free reason for logs and alerts."""

    def __init__(self, kind: str, detail: str = ""):
        super().__init__(f"{kind}: {detail}" if detail else kind)
        self.kind = kind
        self.detail = detail


#: HTTP statuses by which a server says it does not take a ``batch`` Bundle of searches (no system
#: endpoint, method not allowed, batch not supported): the caller then sends the searches one by one.
BATCH_REFUSED = frozenset({400, 403, 404, 405, 422, 501})


def search_batch(paths: list[str]) -> dict:
    """A ``batch`` Bundle of GET searches (``paths`` relative to the base), to POST to the base: one
    round trip for several searches, each answered by its own searchset entry, in order."""
    return {
        "resourceType": "Bundle",
        "type": "batch",
        "entry": [{"request": {"method": "GET", "url": p}} for p in paths],
    }


def next_link(bundle: object, base: str | None = None) -> str | None:
    """The ``next`` page of a searchset Bundle, or None on the last page.

    With ``base``, a next link outside that FHIR base is not followed (None): the caller sends its
    bearer token with the request, and a store must not be able to send it anywhere else.
    """
    links = bundle.get("link") if isinstance(bundle, dict) else None
    url = next(
        (link.get("url") for link in links or [] if isinstance(link, dict) and link.get("relation") == "next"), None
    )
    if not isinstance(url, str) or not url:
        return None
    if base is not None:
        base = base.rstrip("/")
        if not (url == base or url.startswith((base + "/", base + "?"))):
            return None
    return url


def version_from_etag(etag: str | None) -> str | None:
    """``W/"3"`` -> ``3``."""
    if not etag:
        return None
    v = etag.strip()
    if v.startswith("W/"):
        v = v[2:]
    return v.strip('"') or None
