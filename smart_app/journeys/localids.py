"""Local record ids for what one form submission creates.

Why derive them: a double-clicked Save, or a browser re-posting a form, must create ONE record. The
form carries a random UUIDv4 token minted when it was drawn; the record it creates takes that token
as its local id, so the FHIR id (``uuid5`` of the business identifier) is the same on every
re-post and the second save finds the first instead of adding a twin. A form that creates several
records (a rating per goal, a referral and its Task) derives one id per record from the token.

Derived ids keep the UUIDv4 shape the builders require (version and variant bits set) while being
a pure function of their inputs.
"""

from __future__ import annotations

import hashlib
import uuid


def derived_uuid4(*parts: str) -> str:
    """A stable UUIDv4-shaped id from ``parts`` (e.g. the form token and a goal id)."""
    digest = hashlib.sha256("|".join(parts).encode("utf-8")).digest()
    return str(uuid.UUID(bytes=digest[:16], version=4))
