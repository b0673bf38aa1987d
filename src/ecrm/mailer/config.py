"""Mailer configuration from the environment (ECRM_MAILER*, ECRM_LISTMONK_*, ECRM_MAILCHIMP_*).

One frozen object so the sync, the adapters and the tests agree; secrets (API tokens) come from the
environment only and are never logged (``__repr__`` masks them).
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field, fields, replace
from pathlib import Path

ADAPTERS = ("outbox", "listmonk", "mailchimp")
MAILCHIMP_MAX_BATCH = 500  # Mailchimp's limit for POST /lists/{id} and static-segment member lists


def _bool(value: str | None, default: bool = False) -> bool:
    if value is None or value == "":
        return default
    return value.strip().lower() in ("1", "true", "yes", "on")


@dataclass(frozen=True)
class MailerConfig:
    adapter: str = "outbox"
    outbox: Path = Path("data/outbox")
    dry_run: bool = False
    max_remove_share: float = 0.20   # circuit breaker: refuse a sync removing more than this share of an audience
    breaker_min_members: int = 10    # ... of at least this many pushed members (2 of 2 leaving is no incident)
    batch_size: int = 500            # members per API call (Mailchimp allows at most 500)
    concurrency: int = 4             # batches in flight at once
    timeout: float = 30.0            # seconds per HTTP request (connect, read, write)
    max_retries: int = 5             # retries on 429 / 5xx / timeouts / connection errors
    backoff_base: float = 1.0        # first retry waits ~base seconds, doubling, with jitter
    backoff_max: float = 60.0        # cap for one wait (also caps Retry-After)
    target: str | None = None        # state key override (e.g. when the ESP moves host but keeps its data)
    listmonk_url: str | None = None
    listmonk_user: str | None = None
    listmonk_token: str | None = field(default=None, repr=False)
    listmonk_auth: str = "token"     # "token" (listmonk >= v4 API users) or "basic" (older admin login)
    listmonk_list_prefix: str = "ecrm-"
    mailchimp_api_key: str | None = field(default=None, repr=False)
    mailchimp_server: str | None = None
    mailchimp_list_id: str | None = None
    mailchimp_url: str | None = None  # override of https://<server>.api.mailchimp.com/3.0 (tests, proxies)
    mailchimp_tag_prefix: str = "ecrm-"
    mailchimp_status_if_new: str = "subscribed"

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None, **overrides) -> MailerConfig:
        from ..settings import get_settings, storage_path

        env = os.environ if env is None else env
        get = env.get
        config = cls(
            adapter=(get("ECRM_MAILER") or "outbox").strip().lower(),
            outbox=storage_path(get("ECRM_OUTBOX") or get_settings().outbox),
            dry_run=_bool(get("ECRM_MAILER_DRY_RUN")),
            max_remove_share=float(get("ECRM_MAILER_MAX_REMOVE_SHARE") or 0.20),
            breaker_min_members=int(get("ECRM_MAILER_BREAKER_MIN_MEMBERS") or 10),
            batch_size=int(get("ECRM_MAILER_BATCH_SIZE") or 500),
            concurrency=int(get("ECRM_MAILER_CONCURRENCY") or 4),
            timeout=float(get("ECRM_MAILER_TIMEOUT") or 30),
            max_retries=int(get("ECRM_MAILER_MAX_RETRIES") or 5),
            backoff_base=float(get("ECRM_MAILER_BACKOFF_BASE") or 1.0),
            backoff_max=float(get("ECRM_MAILER_BACKOFF_MAX") or 60),
            target=get("ECRM_MAILER_TARGET") or None,
            listmonk_url=get("ECRM_LISTMONK_URL") or None,
            listmonk_user=get("ECRM_LISTMONK_USER") or None,
            listmonk_token=get("ECRM_LISTMONK_TOKEN") or None,
            listmonk_auth=(get("ECRM_LISTMONK_AUTH") or "token").lower(),
            listmonk_list_prefix=get("ECRM_LISTMONK_LIST_PREFIX", "ecrm-"),
            mailchimp_api_key=get("ECRM_MAILCHIMP_API_KEY") or None,
            mailchimp_server=get("ECRM_MAILCHIMP_SERVER") or None,
            mailchimp_list_id=get("ECRM_MAILCHIMP_LIST_ID") or None,
            mailchimp_url=get("ECRM_MAILCHIMP_URL") or None,
            mailchimp_tag_prefix=get("ECRM_MAILCHIMP_TAG_PREFIX", "ecrm-"),
            mailchimp_status_if_new=get("ECRM_MAILCHIMP_STATUS_IF_NEW") or "subscribed",
        )
        return config.with_(**overrides) if overrides else config.validated()

    def with_(self, **changes) -> MailerConfig:
        return replace(self, **changes).validated()

    def validated(self) -> MailerConfig:
        if self.adapter not in ADAPTERS:
            raise ValueError(f"ECRM_MAILER={self.adapter!r}: expected one of {', '.join(ADAPTERS)}")
        if not 0 <= self.max_remove_share <= 1:
            raise ValueError("ECRM_MAILER_MAX_REMOVE_SHARE must be between 0 and 1")
        if not 1 <= self.batch_size <= MAILCHIMP_MAX_BATCH:
            raise ValueError(f"ECRM_MAILER_BATCH_SIZE must be between 1 and {MAILCHIMP_MAX_BATCH}")
        if self.concurrency < 1 or self.max_retries < 0 or self.timeout <= 0:
            raise ValueError("ECRM_MAILER_CONCURRENCY >= 1, ECRM_MAILER_MAX_RETRIES >= 0, ECRM_MAILER_TIMEOUT > 0")
        if self.listmonk_auth not in ("token", "basic"):
            raise ValueError("ECRM_LISTMONK_AUTH must be 'token' or 'basic'")
        if self.mailchimp_status_if_new not in ("subscribed", "pending"):
            raise ValueError("ECRM_MAILCHIMP_STATUS_IF_NEW must be 'subscribed' or 'pending'")
        return self

    def describe(self) -> dict:
        """The configuration without secrets, for logs and the audit table."""
        secret = {"listmonk_token", "mailchimp_api_key"}
        return {f.name: (("***" if getattr(self, f.name) else None) if f.name in secret else str(getattr(self, f.name)))
                for f in fields(self)}
