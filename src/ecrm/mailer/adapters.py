"""The one small interface every mailer adapter implements, and the outbox adapter.

The sync (``ecrm.mailer.sync``) computes the diff in SQL and hands an adapter batches of one action
for one audience; the adapter reports a result per member. Whatever an adapter does, it must never
change an existing contact's subscription status: adds and removes are list/tag membership only.
"""

from __future__ import annotations

import csv
import hashlib
import io
from dataclasses import dataclass
from datetime import date
from pathlib import Path
from typing import Protocol

import psycopg

from .config import MailerConfig
from .outbox import _write_atomic, day_folder, write_outbox

ACTIONS = ("add", "update", "remove")


@dataclass(frozen=True)
class Member:
    email: str
    email_hash: str     # sha256 of the normalized address: the state key
    customer_id: str
    first_name: str | None
    segment: str
    attrs_hash: str


@dataclass(frozen=True)
class MemberResult:
    email_hash: str
    result: str                  # sent | rejected | esp_suppressed | skipped
    error: str | None = None
    suppress: bool = False       # the ESP says this address must never be added again (compliance state, blocklist)
    esp_id: str | None = None    # the ESP's id of the contact, when it told us

    @property
    def applied(self) -> bool:
        """Does the ESP now reflect the change (so state moves on)? Rejected members stay pending."""
        return self.result in ("sent", "skipped")


class Adapter(Protocol):
    name: str
    target: str  # state key: which ESP account/list the state describes

    def preflight(self, audiences: list[str]) -> None:
        """Check credentials and resolve/create the audiences' lists or tags; raise before anything is sent."""

    def begin(self, conn: psycopg.Connection, day: date) -> dict:
        """Called once the plan is known and not a dry run; returns facts for the report."""

    def apply(self, audience: str, action: str, members: list[Member], idempotency_key: str) -> list[MemberResult]:
        """Send one batch; raise on a whole-batch failure (then nothing of it is marked as pushed)."""

    def end(self, conn: psycopg.Connection, day: date, run_id: int) -> dict:
        """Called after the batches; returns facts for the report."""

    def close(self) -> None: ...


class OutboxAdapter:
    """Files for ESPs that import them: outbox/<day>/<audience>.csv with the full audience as pushed
    (the simulator sends campaigns to it) + manifest.json, plus changes.csv with the day's adds,
    updates and removes. Everything is rendered from mailer.audience_state and the audit tables after
    the batches are committed, so the files only ever hold members that passed the push-time checks,
    and a rerun rewrites byte-identical files (unchanged files are not even touched)."""

    name = "outbox"

    def __init__(self, config: MailerConfig) -> None:
        self.outbox = Path(config.outbox)
        self.target = config.target or "outbox"
        self.manifest: dict = {}

    def preflight(self, audiences: list[str]) -> None:
        return None

    def begin(self, conn: psycopg.Connection, day: date) -> dict:
        return {"outbox": str(self.outbox / day.isoformat())}

    def apply(self, audience: str, action: str, members: list[Member], idempotency_key: str) -> list[MemberResult]:
        return [MemberResult(m.email_hash, "sent") for m in members]  # end() writes the files from state

    def end(self, conn: psycopg.Connection, day: date, run_id: int) -> dict:
        audiences: dict[str, list[tuple]] = {a: [] for (a,) in conn.execute(
            "select distinct audience from published.audience_members where as_of_date = %s", (day,))}
        for audience, *row in conn.execute(
                "select audience, customer_id, email, first_name, segment from mailer.audience_state "
                "where target = %s and is_member order by audience, customer_id", (self.target,)):
            if audience in audiences:
                audiences[audience].append(tuple(row))
        changes = conn.execute(
            """
            select c.action, c.audience, c.customer_id, s.email, s.first_name, c.segment, coalesce(c.reason, '')
            from mailer.sync_changes as c
            inner join mailer.sync_runs as r on r.run_id = c.run_id and r.audience = c.audience
            left join mailer.audience_state as s
                on s.target = r.target and s.audience = c.audience and s.email_hash = c.email_hash
            where r.target = %s and r.day = %s and c.result = 'sent'
            order by c.audience, c.action, c.customer_id, c.email_hash
            """, (self.target, day)).fetchall()
        buffer = io.StringIO()
        writer = csv.writer(buffer, lineterminator="\n")
        writer.writerow(("action", "audience", "customer_id", "email", "first_name", "segment", "reason"))
        writer.writerows(changes)
        data = buffer.getvalue().encode()
        folder = day_folder(self.outbox, day)
        _write_atomic(folder / "changes.csv", data)
        self.manifest = write_outbox(self.outbox, day, audiences, {"changes": {
            "file": "changes.csv", "rows": len(changes), "sha256": hashlib.sha256(data).hexdigest()}})
        return {"manifest": self.manifest}

    def close(self) -> None:
        return None


def adapter_from_config(config: MailerConfig) -> Adapter:
    """The adapter ECRM_MAILER names (outbox by default)."""
    if config.adapter == "listmonk":
        from .listmonk import ListmonkAdapter

        return ListmonkAdapter(config)
    if config.adapter == "mailchimp":
        from .mailchimp import MailchimpAdapter

        return MailchimpAdapter(config)
    return OutboxAdapter(config)
