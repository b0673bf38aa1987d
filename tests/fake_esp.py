"""Local stand-ins for the Mailchimp Marketing API and the listmonk API: real HTTP on 127.0.0.1,
an ephemeral port, a thread per request. They keep just enough state to check what the mailer did:

- ``requests``: every request (method, path, query, raw body) — to assert no suppressed address is sent;
- ``applied``: every write that took effect, e.g. ("upsert", email) — to assert exactly-once delivery;
- ``violations``: anything a careful client must never do (send ``status`` for an existing Mailchimp
  member, turn an unsubscribed listmonk subscription back on, call /api/subscription, ...).

Faults are injected per write request (POST/PUT): ``faults`` is a queue of ("status", code, headers)
or ("slow", seconds) — slow applies the write, then answers too late for the client's timeout — and
``fail_after_writes = n`` answers 503 to every write after n successful ones (an ESP outage mid-sync);
with ``outage_writes = m`` too, the outage ends after m such answers (the ESP comes back).
``write_delay = s`` answers every write s seconds after applying it (a slow ESP: a SIGKILLed client
leaves applied but unconfirmed batches behind); ``faults_injected`` counts the faults served.
Writes carrying an ``Idempotency-Key`` seen before are answered from the cache without applying again.
"""

from __future__ import annotations

import base64
import json
import re
import threading
import time
from collections import deque
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlsplit


class FakeEsp:
    def __init__(self) -> None:
        self.lock = threading.RLock()
        self.requests: list[tuple[str, str, str, str]] = []
        self.applied: list[tuple] = []
        self.violations: list[str] = []
        self.faults: deque = deque()
        self.fail_after_writes: int | None = None
        self.outage_writes: int | None = None
        self.writes_ok = 0
        self.replays = 0
        self.write_delay = 0.0
        self.faults_injected = 0
        self.auth_ok = True
        self._idempotent: dict[str, tuple[int, object]] = {}
        self._server: ThreadingHTTPServer | None = None

    # -- server plumbing ----------------------------------------------------------------------------
    def start(self) -> FakeEsp:
        fake = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"
            disable_nagle_algorithm = True  # with keep-alive, Nagle + delayed ACKs cost ~40 ms per request
            wbufsize = 1 << 16              # headers and body leave in one write (flushed per request)

            def log_message(self, *args) -> None:
                pass

            def _serve(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                raw = self.rfile.read(length).decode() if length else ""
                parts = urlsplit(self.path)
                status, body, headers, delay = fake.dispatch(self.command, parts.path, parts.query, raw, self.headers)
                if delay:
                    time.sleep(delay)
                data = json.dumps(body).encode()
                try:
                    self.send_response(status)
                    for k, v in (headers or {}).items():
                        self.send_header(k, v)
                    self.send_header("Content-Type", "application/json")
                    self.send_header("Content-Length", str(len(data)))
                    self.end_headers()
                    self.wfile.write(data)
                except (BrokenPipeError, ConnectionResetError):
                    pass

            do_GET = do_POST = do_PUT = do_DELETE = do_PATCH = _serve

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        threading.Thread(target=self._server.serve_forever, daemon=True).start()
        return self

    @property
    def url(self) -> str:
        host, port = self._server.server_address[:2]
        return f"http://{host}:{port}"

    def stop(self) -> None:
        if self._server:
            self._server.shutdown()
            self._server.server_close()

    def bodies(self) -> str:
        """Everything clients sent (paths, query strings and bodies), for "never sent" assertions."""
        with self.lock:
            return "\n".join(f"{m} {p}?{q} {b}" for m, p, q, b in self.requests)

    def count(self, op: str) -> dict[str, int]:
        counts: dict[str, int] = {}
        with self.lock:
            for entry in self.applied:
                if entry[0] == op:
                    counts[entry[-1]] = counts.get(entry[-1], 0) + 1
        return counts

    # -- request handling ---------------------------------------------------------------------------
    def authorized(self, headers) -> bool:
        raise NotImplementedError

    def route(self, method: str, path: str, query: dict, body: object) -> tuple[int, object]:
        raise NotImplementedError

    def dispatch(self, method, path, query_string, raw, headers):
        with self.lock:
            self.requests.append((method, path, query_string, raw))
        if not self.auth_ok or not self.authorized(headers):
            return 401, {"title": "API Key Invalid", "status": 401, "message": "invalid credentials"}, None, 0
        query = {k: v[0] for k, v in parse_qs(query_string).items()}
        body = json.loads(raw) if raw else None
        if method == "GET":
            with self.lock:
                status, out = self.route(method, path, query, body)
            return status, out, None, 0
        delay = self.write_delay
        with self.lock:
            if self.fail_after_writes is not None and self.writes_ok >= self.fail_after_writes:
                self.faults_injected += 1
                if self.outage_writes is not None:
                    self.outage_writes -= 1
                    if self.outage_writes <= 0:
                        self.fail_after_writes = self.outage_writes = None
                return 503, {"title": "Service Unavailable"}, None, 0
            if self.faults:
                fault = self.faults.popleft()
                self.faults_injected += 1
                if fault[0] == "status":
                    return fault[1], {"title": f"injected {fault[1]}"}, (fault[2] if len(fault) > 2 else None), 0
                if fault[0] == "slow":
                    delay = max(delay, fault[1])
            key = headers.get("Idempotency-Key")
            if key and key in self._idempotent:
                self.replays += 1
                status, out = self._idempotent[key]
                return status, out, None, delay
            status, out = self.route(method, path, query, body)
            if status < 300:
                self.writes_ok += 1
                if key:
                    self._idempotent[key] = (status, out)
        return status, out, None, delay


class FakeMailchimp(FakeEsp):
    """``/3.0/lists/{list_id}``: batch member upsert; ``/segments``: static tags."""

    def __init__(self, api_key: str = "k-test123-us1", list_id: str = "L1") -> None:
        super().__init__()
        self.api_key = api_key
        self.list_id = list_id
        self.members: dict[str, dict] = {}       # email -> {"status", "merge_fields"}
        self.segments: dict[int, dict] = {}      # id -> {"name", "members": set}
        self.member_errors: dict[str, tuple[str, str]] = {}  # email -> (error_code, error) inside a 200

    def authorized(self, headers) -> bool:
        value = headers.get("Authorization", "")
        if not value.startswith("Basic "):
            return False
        return base64.b64decode(value[6:]).decode().partition(":")[2] == self.api_key

    def tag_members(self, name: str) -> set[str]:
        return next((s["members"] for s in self.segments.values() if s["name"] == name), set())

    def route(self, method, path, query, body):
        base = f"/3.0/lists/{self.list_id}"
        if not path.startswith(base):
            self.violations.append(f"unexpected {method} {path}")
            return 404, {"title": "Resource Not Found"}
        rest = path[len(base):]
        if method == "GET" and rest == "":
            return 200, {"id": self.list_id, "name": "Shop"}
        if method == "GET" and rest == "/segments":
            return 200, {"segments": [{"id": i, "name": s["name"]} for i, s in self.segments.items()]}
        if method == "POST" and rest == "/segments":
            sid = len(self.segments) + 1
            self.segments[sid] = {"name": body["name"], "members": set(body.get("static_segment") or [])}
            return 200, {"id": sid, "name": body["name"]}
        if method == "POST" and rest == "":
            return self._batch(body)
        match = re.fullmatch(r"/segments/(\d+)", rest)
        if method == "POST" and match and int(match.group(1)) in self.segments:
            return self._tag(int(match.group(1)), body)
        self.violations.append(f"unexpected {method} {path}")
        return 404, {"title": "Resource Not Found"}

    def _batch(self, body):
        members = body.get("members") or []
        if len(members) > 500:
            self.violations.append(f"batch of {len(members)} members")
            return 400, {"title": "Invalid Resource", "detail": "at most 500 members"}
        new, updated, errors = [], [], []
        for item in members:
            email = item["email_address"].lower()
            if "status" in item:
                self.violations.append(f"status sent for {email}")
            if email in self.member_errors:
                code, message = self.member_errors[email]
                errors.append({"email_address": email, "error": message, "error_code": code})
                continue
            if email in self.members:
                if body.get("update_existing"):
                    self.members[email]["merge_fields"] = item.get("merge_fields", {})
                updated.append({"email_address": email, "status": self.members[email]["status"]})
            else:
                self.members[email] = {"status": item.get("status_if_new", "subscribed"),
                                       "merge_fields": item.get("merge_fields", {})}
                new.append({"email_address": email, "status": self.members[email]["status"]})
            self.applied.append(("upsert", email))
        return 200, {"new_members": new, "updated_members": updated, "errors": errors,
                     "total_created": len(new), "total_updated": len(updated), "error_count": len(errors)}

    def _tag(self, sid, body):
        added, removed, errors = [], [], []
        for email in body.get("members_to_add") or []:
            if email not in self.members:
                errors.append({"email_addresses": [email], "error": "not a list member"})
                continue
            self.segments[sid]["members"].add(email)
            added.append(email)
            self.applied.append(("tag", sid, email))
        for email in body.get("members_to_remove") or []:
            self.segments[sid]["members"].discard(email)
            removed.append(email)
            self.applied.append(("untag", sid, email))
        return 200, {"members_added": [{"email_address": e} for e in added],
                     "members_removed": [{"email_address": e} for e in removed], "errors": errors,
                     "total_added": len(added), "total_removed": len(removed), "error_count": len(errors)}


class FakeListmonk(FakeEsp):
    """``/api/lists``, ``/api/subscribers`` (query, create, update) and ``/api/subscribers/lists``."""

    def __init__(self, user: str = "ecrm", token: str = "secret-token") -> None:
        super().__init__()
        self.user, self.token = user, token
        self.lists: dict[int, str] = {}
        self.subscribers: dict[int, dict] = {}   # id -> {"email", "name", "status", "attribs", "lists": {id: status}}
        self._by_email: dict[str, dict] = {}

    def authorized(self, headers) -> bool:
        return headers.get("Authorization") == f"token {self.user}:{self.token}"

    def by_email(self, email: str) -> dict | None:
        return self._by_email.get(email)

    def add_subscriber(self, email: str, status: str = "enabled", lists: dict[int, str] | None = None) -> int:
        sid = len(self.subscribers) + 1
        self.subscribers[sid] = {"id": sid, "email": email, "name": email, "status": status, "attribs": {},
                                 "lists": dict(lists or {})}
        self._by_email[email] = self.subscribers[sid]
        return sid

    def list_members(self, name: str) -> dict[str, str]:
        lid = next((i for i, n in self.lists.items() if n == name), None)
        return {s["email"]: s["lists"][lid] for s in self.subscribers.values() if lid in s["lists"]}

    def _out(self, s: dict) -> dict:
        return {"id": s["id"], "email": s["email"], "name": s["name"], "status": s["status"], "attribs": s["attribs"],
                "lists": [{"id": lid, "name": self.lists.get(lid), "subscription_status": st}
                          for lid, st in s["lists"].items()]}

    def route(self, method, path, query, body):
        if path == "/api/lists" and method == "GET":
            return 200, {"data": [{"id": i, "name": n} for i, n in self.lists.items()]}
        if path == "/api/lists" and method == "POST":
            lid = len(self.lists) + 1
            self.lists[lid] = body["name"]
            return 200, {"data": {"id": lid, "name": body["name"]}}
        if path == "/api/subscribers" and method == "GET":
            # listmonk runs the query as SQL: each address is a string literal, a quote in it doubled
            literals = re.findall(r"'((?:[^']|'')*)'", query.get("query", ""))
            emails = {literal.replace("''", "'") for literal in literals}
            rows = [self._out(self._by_email[e]) for e in sorted(emails) if e in self._by_email]
            return 200, {"data": {"results": rows, "total": len(rows)}}
        if path == "/api/subscribers" and method == "POST":
            if self.by_email(body["email"]):
                return 409, {"message": "E-mail already exists."}
            sid = self.add_subscriber(body["email"], body.get("status", "enabled"),
                                      {lid: "unconfirmed" for lid in body.get("lists") or []})
            self.subscribers[sid].update(name=body.get("name"), attribs=body.get("attribs") or {})
            self.applied.append(("create", body["email"]))
            return 200, {"data": self._out(self.subscribers[sid])}
        if path == "/api/subscribers/lists" and method == "PUT":
            return self._manage_lists(body)
        match = re.fullmatch(r"/api/subscribers/(\d+)", path)
        if match and method == "PUT" and int(match.group(1)) in self.subscribers:
            s = self.subscribers[int(match.group(1))]
            if body.get("status") and body["status"] != s["status"]:
                self.violations.append(f"status change {s['status']} -> {body['status']} for {s['email']}")
            wanted = body.get("lists") or []
            s["lists"] = {lid: s["lists"].get(lid, "unconfirmed") for lid in wanted}  # keeps unsubscribed rows
            s.update(name=body.get("name") or s["name"], attribs=body.get("attribs") or s["attribs"])
            self.applied.append(("update", s["email"]))
            return 200, {"data": self._out(s)}
        self.violations.append(f"unexpected {method} {path}")
        return 404, {"message": "not found"}

    def _manage_lists(self, body):
        action, status = body.get("action"), body.get("status") or ""
        if action not in ("add", "remove"):
            self.violations.append(f"lists action {action}")
            return 400, {"message": "invalid action"}
        for sid in body["ids"]:
            s = self.subscribers[sid]
            for lid in body["target_list_ids"]:
                if action == "add":
                    before = s["lists"].get(lid)
                    after = status or before or "unconfirmed"  # listmonk: empty status keeps an existing one
                    if before == "unsubscribed" and after != "unsubscribed":
                        self.violations.append(f"re-subscribed {s['email']}")
                    if s["status"] == "blocklisted":
                        self.violations.append(f"added blocklisted {s['email']}")
                    s["lists"][lid] = after
                    self.applied.append(("list_add", lid, s["email"]))
                else:
                    s["lists"].pop(lid, None)
                    self.applied.append(("list_remove", lid, s["email"]))
        return 200, {"data": True}
