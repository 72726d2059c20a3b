"""Reading an OAuth token response that another server wrote: every member is hostile input.

Both token clients (the app's SMART launch client and the sync worker's Backend Services client)
read ``expires_in``, tokens and scope strings from a JSON body they do not control. A huge
``expires_in`` (10**12) overflowed the app's expiry arithmetic; ``inf`` would cache a token forever;
a list where a string belongs ended up in headers. These helpers give each member one bounded
meaning, in one place.
"""

from __future__ import annotations

import math
from typing import Any

#: Assumed lifetime when ``expires_in`` is missing or unusable, in seconds (SMART: 300 is typical).
DEFAULT_EXPIRES_IN = 300
#: Longest access-token lifetime believed, in seconds; longer claims are capped to this.
MAX_EXPIRES_IN = 24 * 3600
#: Longest token or scope string kept (Epic's tokens are JWTs of a few KB; nothing legitimate is near).
MAX_TOKEN_LENGTH = 64 * 1024


def expires_in_seconds(value: Any, default: int = DEFAULT_EXPIRES_IN, maximum: int = MAX_EXPIRES_IN) -> int:
    """``expires_in`` as whole seconds in ``1..maximum``; missing, unusable or non-positive values
    give ``default``. A number sent as a decimal string (``"3600"``) is accepted."""
    if isinstance(value, bool):
        return default
    if isinstance(value, str):
        text = value.strip()
        value = int(text) if text.isdigit() and len(text) <= 12 else None
    if isinstance(value, float):
        value = int(value) if math.isfinite(value) else None
    if not isinstance(value, int) or value <= 0:
        return default
    return min(value, maximum)


def bounded_string(value: Any, max_length: int = MAX_TOKEN_LENGTH) -> str | None:
    """``value`` if it is a non-empty string no longer than ``max_length``, else None."""
    if isinstance(value, str) and value.strip() and len(value) <= max_length:
        return value
    return None
