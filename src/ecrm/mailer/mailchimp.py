"""Mailchimp Marketing API adapter: one Mailchimp audience (list), one static tag per ecrm audience.

Calls (https://mailchimp.com/developer/marketing/api/):
- add/update: ``POST /lists/{list_id}`` "batch subscribe or unsubscribe" with ``update_existing: true``,
  ``status_if_new`` for contacts Mailchimp has never seen, and never a ``status`` field, so an existing
  contact's status (unsubscribed, cleaned, pending...) is never touched; at most 500 members per call.
  Per-member failures come back inside the 200 as ``errors``.
- tag membership: ``POST /lists/{list_id}/segments/{tag_id}`` with ``members_to_add`` / ``members_to_remove``
  (at most 500 each). Removing from the audience is removing the tag: no archive, no unsubscribe.
"""

from __future__ import annotations

import hashlib

from .config import MAILCHIMP_MAX_BATCH, MailerConfig
from .http import EspClient, EspRequestError, MailerError, redact
from .types import Member, MemberResult

# Mailchimp's words for "this contact may not be (re)subscribed": never try again, suppress locally.
_COMPLIANCE_MARKERS = ("compliance state", "unsubscribed", "cleaned", "permanently deleted", "forgotten")


def subscriber_hash(email: str) -> str:
    """Mailchimp's member id: md5 of the lower-cased address."""
    return hashlib.md5(email.lower().encode()).hexdigest()


class MailchimpAdapter:
    name = "mailchimp"

    def __init__(self, config: MailerConfig) -> None:
        if not (config.mailchimp_api_key and config.mailchimp_list_id):
            raise MailerError("ECRM_MAILER=mailchimp needs ECRM_MAILCHIMP_API_KEY and ECRM_MAILCHIMP_LIST_ID")
        server = config.mailchimp_server or config.mailchimp_api_key.rpartition("-")[2]
        base = config.mailchimp_url or f"https://{server}.api.mailchimp.com/3.0"
        self.list_id = config.mailchimp_list_id
        self.tag_prefix = config.mailchimp_tag_prefix
        self.status_if_new = config.mailchimp_status_if_new
        self.target = config.target or f"mailchimp:{self.list_id}"
        self.batch_size = min(config.batch_size, MAILCHIMP_MAX_BATCH)
        self.tags: dict[str, int] = {}
        self.client = EspClient(
            "mailchimp", base, timeout=config.timeout, max_retries=config.max_retries,
            backoff_base=config.backoff_base, backoff_max=config.backoff_max, concurrency=config.concurrency,
            auth=("ecrm", config.mailchimp_api_key), credential_hint="ECRM_MAILCHIMP_API_KEY / ECRM_MAILCHIMP_SERVER")

    def preflight(self, audiences: list[str]) -> None:
        self.client.request("GET", f"/lists/{self.list_id}", params={"fields": "id,name"})
        found = self.client.request("GET", f"/lists/{self.list_id}/segments",
                                    params={"type": "static", "count": 1000, "fields": "segments.id,segments.name"})
        existing = {s["name"]: int(s["id"]) for s in found.json().get("segments", [])}
        for audience in audiences:
            name = self.tag_prefix + audience
            if name not in existing:
                existing[name] = self._create_tag(name)
            self.tags[audience] = existing[name]

    def _create_tag(self, name: str) -> int:
        """Create a static segment (tag); if a timed-out earlier attempt already created it, find that one."""
        try:
            created = self.client.request("POST", f"/lists/{self.list_id}/segments", json={"name": name, "static_segment": []},
                                          idempotency_key=f"ecrm-tag-{self.list_id}-{name}")
            return int(created.json()["id"])
        except EspRequestError:
            found = self.client.request("GET", f"/lists/{self.list_id}/segments",
                                        params={"type": "static", "count": 1000, "fields": "segments.id,segments.name"})
            for segment in found.json().get("segments", []):
                if segment["name"] == name:
                    return int(segment["id"])
            raise

    def begin(self, conn, day) -> dict:
        return {"list_id": self.list_id}

    def end(self, conn, day, run_id) -> dict:
        return {}

    def close(self) -> None:
        self.client.close()

    def apply(self, audience: str, action: str, members: list[Member], idempotency_key: str) -> list[MemberResult]:
        if len(members) > MAILCHIMP_MAX_BATCH:
            raise MailerError(f"mailchimp: {len(members)} members in one call, the API allows {MAILCHIMP_MAX_BATCH}")
        tag_path = f"/lists/{self.list_id}/segments/{self.tags[audience]}"
        if action == "remove":
            self.client.request("POST", tag_path, json={"members_to_remove": [m.email for m in members]},
                                idempotency_key=idempotency_key + "-untag")
            # not-on-the-list errors mean the tag is already gone: the desired state holds
            return [MemberResult(m.email_hash, "sent") for m in members]
        body = {
            "members": [{"email_address": m.email, "status_if_new": self.status_if_new,
                         "merge_fields": {"FNAME": m.first_name or "", "SEGMENT": m.segment, "CUSTID": m.customer_id}}
                        for m in members],
            "update_existing": True,
        }
        response = self.client.request("POST", f"/lists/{self.list_id}", json=body, idempotency_key=idempotency_key)
        errors = {str(e.get("email_address", "")).lower(): e for e in response.json().get("errors") or []}
        results, to_tag = [], []
        for m in members:
            problem = errors.get(m.email)
            if problem is None:
                results.append(MemberResult(m.email_hash, "sent", esp_id=subscriber_hash(m.email)))
                to_tag.append(m.email)
                continue
            message = redact(f"{problem.get('error_code') or 'error'}: {problem.get('error') or ''}".strip())
            compliance = any(marker in message.lower() for marker in _COMPLIANCE_MARKERS)
            results.append(MemberResult(m.email_hash, "esp_suppressed" if compliance else "rejected", message,
                                        suppress=compliance))
        if action == "add" and to_tag:
            self.client.request("POST", tag_path, json={"members_to_add": to_tag},
                                idempotency_key=idempotency_key + "-tag")
        return results
