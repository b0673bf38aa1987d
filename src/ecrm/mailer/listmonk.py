"""listmonk REST API adapter (https://listmonk.app/docs/apis/): one private single-opt-in list per
ecrm audience, named ``<prefix><audience>``.

listmonk has no "upsert member" call that is safe for suppressed contacts, so every batch first looks
its addresses up (``GET /api/subscribers`` with an ``subscribers.email IN (...)`` query) and then:

- add: unknown address -> ``POST /api/subscribers`` (a *new* subscriber, status enabled, on our list);
  known and blocklisted, or with an ``unsubscribed`` subscription to our list -> not added, recorded as
  ``esp_suppressed`` and never tried again; otherwise ``PUT /api/subscribers/lists`` with
  ``action: add`` and **no status**, which inserts a missing subscription and leaves an existing
  one's status as it is (listmonk's add-subscribers-to-lists: ``ON CONFLICT ... status =
  CASE WHEN $3 != '' THEN $3 ELSE subscriber_lists.status END``).
- remove: ``PUT /api/subscribers/lists`` with ``action: remove`` (deletes the subscription row, no
  status change), except for subscriptions already ``unsubscribed``: those rows are kept, because
  deleting them would erase listmonk's record of the opt-out.
- update: ``PUT /api/subscribers/{id}`` with name and merged attribs, no status, and the subscriber's
  current list ids (that call replaces list memberships), only for enabled subscribers without any
  unsubscribed subscription; others are skipped (their attributes do not matter: they get no mail).

Never used: ``/api/subscription`` and the public subscription form (they re-subscribe), ``action:
unsubscribe``, blocklisting, deleting subscribers.
"""

from __future__ import annotations

from urllib.parse import urlsplit

from .config import MailerConfig
from .http import EspClient, EspRequestError, MailerError
from .types import Member, MemberResult


class ListmonkAdapter:
    name = "listmonk"

    def __init__(self, config: MailerConfig) -> None:
        if not (config.listmonk_url and config.listmonk_user and config.listmonk_token):
            raise MailerError("ECRM_MAILER=listmonk needs ECRM_LISTMONK_URL, ECRM_LISTMONK_USER and ECRM_LISTMONK_TOKEN")
        self.prefix = config.listmonk_list_prefix
        self.target = config.target or f"listmonk:{urlsplit(config.listmonk_url).netloc}"
        self.lists: dict[str, int] = {}
        if config.listmonk_auth == "basic":
            headers, auth = None, (config.listmonk_user, config.listmonk_token)
        else:
            headers, auth = {"Authorization": f"token {config.listmonk_user}:{config.listmonk_token}"}, None
        self.client = EspClient(
            "listmonk", config.listmonk_url, timeout=config.timeout, max_retries=config.max_retries,
            backoff_base=config.backoff_base, backoff_max=config.backoff_max, concurrency=config.concurrency,
            headers=headers, auth=auth, credential_hint="ECRM_LISTMONK_USER / ECRM_LISTMONK_TOKEN (an API user)")

    # -- set-up -------------------------------------------------------------------------------------
    def preflight(self, audiences: list[str]) -> None:
        data = self.client.request("GET", "/api/lists", params={"per_page": "all", "minimal": "true"}).json()["data"]
        rows = data.get("results", []) if isinstance(data, dict) else data
        existing = {row["name"]: int(row["id"]) for row in rows}
        for audience in audiences:
            name = self.prefix + audience
            if name not in existing:
                created = self.client.request("POST", "/api/lists", idempotency_key=f"ecrm-list-{name}", json={
                    "name": name, "type": "private", "optin": "single", "tags": ["ecrm"],
                    "description": f"ecrm audience {audience}: managed by the warehouse mailer sync"})
                existing[name] = int(created.json()["data"]["id"])
            self.lists[audience] = existing[name]

    def begin(self, conn, day) -> dict:
        return {"lists": dict(self.lists)}

    def end(self, conn, day, run_id) -> dict:
        return {}

    def close(self) -> None:
        self.client.close()

    # -- helpers ------------------------------------------------------------------------------------
    def _lookup(self, emails: list[str]) -> dict[str, dict]:
        """Existing subscribers by address. listmonk's query is an SQL expression: an address may hold
        a quote (o'brien@example.com, valid by ecrm.email_rule), doubled inside the string literal."""
        found: dict[str, dict] = {}
        for i in range(0, len(emails), 100):  # keep the query string short
            chunk = emails[i:i + 100]
            quoted = ",".join("'" + e.replace("'", "''") + "'" for e in chunk)
            data = self.client.request("GET", "/api/subscribers", params={
                "query": f"subscribers.email IN ({quoted})", "per_page": "all"}).json()["data"]
            for row in data.get("results") or []:
                found[str(row["email"]).lower()] = row
        return found

    @staticmethod
    def _subscription(subscriber: dict, list_id: int) -> str | None:
        for lst in subscriber.get("lists") or []:
            if int(lst["id"]) == list_id:
                return lst.get("subscription_status")
        return None

    @staticmethod
    def _attribs(m: Member, existing: dict | None = None) -> dict:
        return {**(existing or {}), "customer_id": m.customer_id, "segment": m.segment}

    @staticmethod
    def _name(m: Member) -> str:
        return m.first_name or m.email.split("@", 1)[0]

    # -- actions ------------------------------------------------------------------------------------
    def apply(self, audience: str, action: str, members: list[Member], idempotency_key: str) -> list[MemberResult]:
        list_id = self.lists[audience]
        found = self._lookup([m.email for m in members])
        if action == "add":
            return self._add(list_id, members, found, idempotency_key)
        if action == "remove":
            return self._remove(list_id, members, found, idempotency_key)
        return self._update(list_id, members, found, idempotency_key)

    def _add(self, list_id: int, members: list[Member], found: dict, key: str) -> list[MemberResult]:
        results: dict[str, MemberResult] = {}
        to_list: list[tuple[Member, int]] = []
        for m in members:
            sub = found.get(m.email)
            if sub is None:
                try:
                    created = self.client.request("POST", "/api/subscribers", idempotency_key=f"{key}-{m.email_hash[:16]}",
                                                  json={"email": m.email, "name": self._name(m), "status": "enabled",
                                                        "lists": [list_id], "attribs": self._attribs(m),
                                                        "preconfirm_subscriptions": False})
                except EspRequestError as exc:
                    if exc.status != 409:  # 409: created meanwhile (or by a retried request): treat as existing
                        results[m.email_hash] = MemberResult(m.email_hash, "rejected", str(exc))
                        continue
                    sub = self._lookup([m.email]).get(m.email)
                    if sub is None:
                        results[m.email_hash] = MemberResult(m.email_hash, "rejected", str(exc))
                        continue
                else:
                    results[m.email_hash] = MemberResult(m.email_hash, "sent", esp_id=str(created.json()["data"]["id"]))
                    continue
            status = self._subscription(sub, list_id)
            if sub.get("status") == "blocklisted" or status == "unsubscribed":
                why = "blocklisted" if sub.get("status") == "blocklisted" else "unsubscribed from the list"
                results[m.email_hash] = MemberResult(m.email_hash, "esp_suppressed", f"listmonk: {why}",
                                                     suppress=True, esp_id=str(sub["id"]))
            elif status is not None:
                results[m.email_hash] = MemberResult(m.email_hash, "sent", esp_id=str(sub["id"]))  # already on it
            else:
                to_list.append((m, int(sub["id"])))
        if to_list:
            self.client.request("PUT", "/api/subscribers/lists", idempotency_key=key + "-lists", json={
                "ids": [sid for _, sid in to_list], "action": "add", "target_list_ids": [list_id]})
            for m, sid in to_list:
                results[m.email_hash] = MemberResult(m.email_hash, "sent", esp_id=str(sid))
        return [results[m.email_hash] for m in members]

    def _remove(self, list_id: int, members: list[Member], found: dict, key: str) -> list[MemberResult]:
        results, ids = [], []
        for m in members:
            sub = found.get(m.email)
            status = self._subscription(sub, list_id) if sub else None
            if sub is None or status is None:
                results.append(MemberResult(m.email_hash, "sent", "not on the list any more"))
            elif status == "unsubscribed":
                results.append(MemberResult(m.email_hash, "skipped", "kept: unsubscribed subscription is not deleted",
                                            esp_id=str(sub["id"])))
            else:
                ids.append(int(sub["id"]))
                results.append(MemberResult(m.email_hash, "sent", esp_id=str(sub["id"])))
        if ids:
            self.client.request("PUT", "/api/subscribers/lists", idempotency_key=key, json={
                "ids": ids, "action": "remove", "target_list_ids": [list_id]})
        return results

    def _update(self, list_id: int, members: list[Member], found: dict, key: str) -> list[MemberResult]:
        results = []
        for m in members:
            sub = found.get(m.email)
            if sub is None:
                results.append(MemberResult(m.email_hash, "rejected", "listmonk: subscriber no longer exists"))
                continue
            lists = sub.get("lists") or []
            if sub.get("status") != "enabled" or any(lst.get("subscription_status") == "unsubscribed" for lst in lists):
                results.append(MemberResult(m.email_hash, "skipped", "not updated: subscriber is not fully subscribed",
                                            esp_id=str(sub["id"])))
                continue
            self.client.request("PUT", f"/api/subscribers/{sub['id']}", idempotency_key=f"{key}-{m.email_hash[:16]}",
                                json={"email": sub["email"], "name": self._name(m),
                                      "attribs": self._attribs(m, sub.get("attribs")),
                                      "lists": [int(lst["id"]) for lst in lists], "preconfirm_subscriptions": False})
            results.append(MemberResult(m.email_hash, "sent", esp_id=str(sub["id"])))
        return results
