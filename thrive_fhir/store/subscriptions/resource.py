"""The stored Subscription resource: its status and error follow the delivery state.

The resource is kept in ``resource_versions`` like any other (so ``_history`` shows when it became
active or failed), with channel header values hidden (spec.masked); the delivery state itself lives
in the ``subscriptions`` table.
"""

from __future__ import annotations

import json

from sqlalchemy.engine import Connection

from .. import rawsql
from ..fhirdates import utcnow
from ..writes import WriteOp, apply


def set_resource_status(conn: Connection, sub_id: str, status: str, base: str, error: str | None) -> None:
    """Write a new version of Subscription/``sub_id`` with ``status`` (and ``error``, or none)."""
    sql, dbapi = rawsql.for_connection(conn)
    rows = sql.fetch(
        dbapi,
        "SELECT content FROM resource_versions WHERE res_type = 'Subscription' AND res_id = ? AND is_current "
        "AND NOT deleted",
        (sub_id,),
    )
    if not rows:
        return
    resource = json.loads(rows[0][0])
    resource["status"] = status
    if error:
        resource["error"] = error
    else:
        resource.pop("error", None)
    apply(conn, [WriteOp("PUT", "Subscription", sub_id, resource)], utcnow(), base)
