"""The one small interface every mailer adapter implements, and the values it trades in.

The sync (``ecrm.mailer.sync``) computes the diff in SQL and hands an adapter batches of one action
for one audience; the adapter reports a result per member. Whatever an adapter does, it must never
change an existing contact's subscription status: adds and removes are list/tag membership only.
Adapters import this module; ``ecrm.mailer.adapters`` (the factory) imports the adapters.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date
from typing import Protocol

import psycopg

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
