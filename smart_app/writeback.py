"""Writing the agreed grouping back into the launching EHR (config ``write_back_grouping``).

Some sites want the THRIVE grouping in the clinician's own record as well as in the shared store.
When the config asks for it AND the EHR granted Observation create (``patient/Observation.c`` or
wider; ``LaunchContext.write_back_grouping``), the grouping journey sends the grouping Observation to
the EHR with the launch's token, *after* the local save has committed. The local record is the
system of record: an EHR that is down, refuses, or whose session has ended never loses or blocks
the local save. The clinician gets a plain warning and a "Send to the EHR again" button; every send
that has not landed is remembered here (table ``app_ehr_writeback``, in the app's own database next
to the launch sessions) so the button survives a relaunch.

Each send is a conditional create (``If-None-Exist: identifier=<our business identifier>``), so a
retry after a lost answer does not add a second copy in an EHR that supports conditional create.
Only a short machine reason is stored (``unavailable``, ``session-ended``, ``forbidden``,
``http-422``), never resource content or EHR answers.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from datetime import UTC

import sqlalchemy as sa

log = logging.getLogger("smart_app.writeback")

metadata = sa.MetaData()

writebacks = sa.Table(
    "app_ehr_writeback",
    metadata,
    sa.Column("resource_type", sa.String(64), primary_key=True),
    sa.Column("resource_id", sa.String(64), primary_key=True),
    sa.Column("iss", sa.Text, primary_key=True),  # the EHR it is for (another EHR's launch never sends it)
    sa.Column("patient_key", sa.String(128), nullable=False, index=True),
    sa.Column("status", sa.String(16), nullable=False),  # pending | sent | failed
    sa.Column("attempts", sa.Integer, nullable=False, default=0),
    sa.Column("reason", sa.String(64)),  # short machine reason of the last failure
    sa.Column("ehr_ref", sa.String(256)),  # Observation/<id> as the EHR named it
    sa.Column("created_at", sa.Float, nullable=False),
    sa.Column("updated_at", sa.Float, nullable=False),
)

#: What the clinician reads for each stored reason (nothing else is ever shown).
REASONS = {
    "unavailable": "the EHR did not respond",
    "session-ended": "your session with the EHR has ended (relaunch the app from the patient's record, then send again)",
    "forbidden": "the EHR did not allow this app to add it to the record",
    "not-allowed": "this launch has no permission to add groupings to the EHR record",
    "pending": "it has not been sent yet",
    "error": "the EHR could not take it",
}


def reason_text(reason: str | None) -> str:
    if reason and reason.startswith("http-"):
        return f"the EHR refused it (answer {reason[5:]})"
    return REASONS.get(reason or "", REASONS["error"])


@dataclass(frozen=True)
class Pending:
    """A grouping that has not reached the EHR yet."""

    resource_id: str
    status: str
    attempts: int
    reason: str | None

    @property
    def reason_text(self) -> str:
        return reason_text(self.reason if self.status == "failed" else "pending")


class WriteBacks:
    """The record of grouping sends to EHRs (one row per resource per EHR)."""

    def __init__(self, engine: sa.Engine):
        self.engine = engine

    def create_tables(self) -> None:
        metadata.create_all(self.engine, checkfirst=True)

    def note_pending(self, resource: dict, patient_key: str, iss: str) -> None:
        """Remember a send before it is tried, so a crash mid-send still leaves the retry button."""
        now = time.time()
        try:
            with self.engine.begin() as conn:
                conn.execute(
                    writebacks.insert().values(
                        resource_type=resource["resourceType"],
                        resource_id=resource["id"],
                        iss=iss,
                        patient_key=patient_key,
                        status="pending",
                        attempts=0,
                        created_at=now,
                        updated_at=now,
                    )
                )
        except sa.exc.IntegrityError:
            pass  # known already (a retry): its row is updated when the attempt ends

    def record_attempt(
        self,
        resource: dict,
        patient_key: str,
        iss: str,
        *,
        ok: bool,
        reason: str | None = None,
        ehr_ref: str | None = None,
    ) -> None:
        key = {"resource_type": resource["resourceType"], "resource_id": resource["id"], "iss": iss}
        where = [writebacks.c[k] == v for k, v in key.items()]
        now = time.time()
        values = {
            "patient_key": patient_key,
            "status": "sent" if ok else "failed",
            "reason": None if ok else reason,
            "ehr_ref": ehr_ref,
            "updated_at": now,
        }
        with self.engine.begin() as conn:
            updated = conn.execute(
                writebacks.update().where(*where).values(**values, attempts=writebacks.c.attempts + 1)
            )
            if not updated.rowcount:
                conn.execute(writebacks.insert().values(**key, **values, attempts=1, created_at=now))

    def pending(self, patient_key: str, iss: str) -> dict[str, Pending]:
        """Groupings of ``patient_key`` not yet in the EHR ``iss``, by Observation id."""
        with self.engine.connect() as conn:
            rows = conn.execute(
                sa.select(
                    writebacks.c.resource_id, writebacks.c.status, writebacks.c.attempts, writebacks.c.reason
                ).where(
                    writebacks.c.patient_key == patient_key,
                    writebacks.c.iss == iss,
                    writebacks.c.resource_type == "Observation",
                    writebacks.c.status != "sent",
                )
            ).all()
        return {r.resource_id: Pending(r.resource_id, r.status, r.attempts, r.reason) for r in rows}

    def status(self, resource_type: str, resource_id: str, iss: str) -> str | None:
        with self.engine.connect() as conn:
            return conn.execute(
                sa.select(writebacks.c.status).where(
                    writebacks.c.resource_type == resource_type,
                    writebacks.c.resource_id == resource_id,
                    writebacks.c.iss == iss,
                )
            ).scalar()


def outcome_page(launch, reason: str, resource: dict, *, saved: str, what: str = "grouping"):
    """After a failed send: the redirect to show, or when the EHR session has ended, the page itself.

    The local save has committed either way. When the session with the EHR has ended, every launch
    page (the redirect target included) answers "session ended", so the clinician would never learn
    that the grouping was saved; they get the outcome in the answer to their own save instead."""
    from flask import redirect, render_template

    if reason == "session-ended" and not _launch_usable(launch):
        from .journeys import vocab

        code = next((c.get("code") for c in (resource.get("valueCodeableConcept") or {}).get("coding", [])), None)
        return render_template(
            "journeys/grouping/saved_not_sent.html",
            what=what,
            reason=reason_text(reason),
            grouping=vocab.grouping_display(code),
        ), 200
    return redirect(launch.url_for("grouping.index", saved=saved, ehr=f"failed-{reason}"), code=303)


def _launch_usable(launch) -> bool:
    """Will the next page of this launch still open (the session store has not ended it)?"""
    from datetime import datetime

    from .context import state

    record = state().sessions.get_launch(launch.launch_id)
    if record is None or record.ended:
        return False
    ends = record.ends_at
    if ends.tzinfo is None:
        ends = ends.replace(tzinfo=UTC)
    return ends > datetime.now(UTC)


def _business_identifier(resource: dict) -> str | None:
    from thrive_fhir import canonical

    for ident in resource.get("identifier", []):
        if ident.get("system", "").startswith(canonical.BASE + "/Id/") and ident.get("value"):
            return f"{ident['system']}|{ident['value']}"
    return None


def send(launch, resource: dict) -> str | None:
    """Create ``resource`` in the launch's EHR; record the outcome. Returns None when it landed,
    else the short reason (see :data:`REASONS`). Never raises for an EHR problem."""
    from .context import state
    from .launch.ehr_client import EhrError, EhrForbidden, EhrSessionEnded

    book: WriteBacks = state().writebacks
    if not launch.write_back_grouping:
        reason = "not-allowed"
    else:
        book.note_pending(resource, launch.patient_ref, launch.iss)
        body = {k: v for k, v in resource.items() if k != "id"}  # the EHR assigns its own id on create
        headers = {}
        identifier = _business_identifier(resource)
        if identifier:
            headers["If-None-Exist"] = f"identifier={identifier}"
        try:
            resp = launch.ehr_client.request("POST", resource["resourceType"], json=body, headers=headers)
        except EhrSessionEnded:
            reason = "session-ended"
        except EhrForbidden:
            reason = "forbidden"
        except EhrError as exc:
            reason = "unavailable" if exc.status == 0 else f"http-{exc.status}"
        else:
            location = resp.headers.get("Location", "")
            ehr_ref = None
            if "/_history/" in location:
                location = location.split("/_history/", 1)[0]
            parts = location.rstrip("/").split("/")
            if len(parts) >= 2 and parts[-2] == resource["resourceType"]:
                ehr_ref = f"{parts[-2]}/{parts[-1]}"
            book.record_attempt(resource, launch.patient_ref, launch.iss, ok=True, ehr_ref=ehr_ref)
            log.info("grouping written back to the EHR")
            return None
    log.warning("grouping write-back to the EHR failed: %s", reason)
    book.record_attempt(resource, launch.patient_ref, launch.iss, ok=False, reason=reason)
    return reason
