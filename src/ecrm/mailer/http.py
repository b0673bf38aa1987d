"""HTTP for the ESP adapters: timeouts, retries with exponential backoff and jitter on 429/5xx and
transport errors (honouring Retry-After), and errors that say what to fix.

Retries resend the same body with the same ``Idempotency-Key`` header. Listmonk and Mailchimp ignore
the header, but every call we make is idempotent in effect (add-to-list of a member already on the
list and an upsert with the same attributes change nothing), so a retry after a timeout whose
request did reach the ESP cannot double anything; servers that honour the key deduplicate outright.

Nothing here logs an address, a token or a key: httpx logs every request URL at INFO (and httpcore
the traffic at DEBUG), and listmonk's subscriber look-up carries addresses in the query string, so
the client raises those two loggers to WARNING; our own lines name method, path (never the query)
and status, and ESP answers quoted in errors pass through ``redact``.
"""

from __future__ import annotations

import email.utils
import hashlib
import logging
import random
import re
import time
from datetime import UTC, datetime

import httpx

log = logging.getLogger(__name__)

# Loggers of the HTTP stack that write request URLs / traffic; WARNING keeps their warnings and errors.
QUIET_LOGGERS = ("httpx", "httpcore")
_ADDRESS = re.compile(r"[^\s\"'<>(),;:\[\]]+(@|%40)[^\s\"'<>(),;:\[\]]+", re.IGNORECASE)


def quiet_http_loggers() -> None:
    """httpx logs each request's full URL at INFO: keep it (and httpcore) at WARNING or above, set on
    the loggers themselves (not inherited), so a root logger set to INFO or DEBUG later changes nothing."""
    for name in QUIET_LOGGERS:
        logger = logging.getLogger(name)
        if logger.level < logging.WARNING:  # NOTSET (inherit) included
            logger.setLevel(logging.WARNING)


def redact(text: str) -> str:
    """Replace e-mail addresses (also URL-encoded) by a short hash, for errors and logs."""
    return _ADDRESS.sub(lambda m: "<address " + hashlib.sha256(m.group(0).lower().encode()).hexdigest()[:12] + ">",
                        text)


class MailerError(RuntimeError):
    """A sync that did not complete; nothing beyond the committed batches is marked as pushed."""


class EspAuthError(MailerError):
    """401/403: wrong or missing credentials, or a token without the needed permission. Never retried."""


class EspUnavailable(MailerError):
    """The ESP could not be reached or kept failing (429/5xx/timeouts) after all retries."""


class EspRequestError(MailerError):
    """The ESP refused a request (4xx other than 401/403/429): a bug or a misconfiguration, not retried."""

    def __init__(self, message: str, status: int, body: str) -> None:
        super().__init__(message)
        self.status = status
        self.body = body


def retry_after_seconds(value: str | None, now: float | None = None) -> float | None:
    """Parse Retry-After: delta-seconds or an HTTP date (RFC 9110 10.2.3)."""
    if not value:
        return None
    value = value.strip()
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return max(0.0, when.timestamp() - (now if now is not None else datetime.now(UTC).timestamp()))


class EspClient:
    """A thin wrapper over one shared ``httpx.Client`` (thread-safe; one connection pool sized to the
    sync's concurrency)."""

    def __init__(self, name: str, base_url: str, *, timeout: float, max_retries: int, backoff_base: float,
                 backoff_max: float, concurrency: int, headers: dict[str, str] | None = None,
                 auth: httpx.Auth | tuple[str, str] | None = None, credential_hint: str = "") -> None:
        self.name = name
        self.base_url = base_url.rstrip("/")
        self.max_retries = max_retries
        self.backoff_base = backoff_base
        self.backoff_max = backoff_max
        self.credential_hint = credential_hint
        self.requests_sent = 0
        self.retries = 0
        quiet_http_loggers()
        self._client = httpx.Client(
            base_url=self.base_url, timeout=httpx.Timeout(timeout), auth=auth,
            headers={"User-Agent": "ecrm-mailer/0.1", "Accept": "application/json", **(headers or {})},
            limits=httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency))

    def close(self) -> None:
        self._client.close()

    def _backoff(self, attempt: int) -> float:
        # "equal jitter": half deterministic, half random, so parallel workers spread out but always wait
        cap = min(self.backoff_max, self.backoff_base * (2 ** attempt))
        return cap / 2 + random.uniform(0, cap / 2)

    def request(self, method: str, path: str, *, json: object = None, params: dict | None = None,
                idempotency_key: str | None = None) -> httpx.Response:
        headers = {"Idempotency-Key": idempotency_key} if idempotency_key else None
        problem = ""
        for attempt in range(self.max_retries + 1):
            try:
                self.requests_sent += 1
                response = self._client.request(method, path, json=json, params=params, headers=headers)
            except httpx.TimeoutException as exc:
                problem = f"timed out ({type(exc).__name__})"
                delay = self._backoff(attempt)
            except httpx.TransportError as exc:
                problem = f"cannot connect: {redact(str(exc))}"
                delay = self._backoff(attempt)
            else:
                status = response.status_code
                if status in (401, 403):
                    raise EspAuthError(
                        f"{self.name}: {method} {self.base_url}{path} was refused with HTTP {status} "
                        f"({_snippet(response)}). Check {self.credential_hint or 'the credentials'}; nothing was "
                        "marked as pushed.")
                if status == 429 or status >= 500:
                    problem = f"HTTP {status} ({_snippet(response)})"
                    after = retry_after_seconds(response.headers.get("Retry-After"))
                    delay = min(self.backoff_max, after) if after is not None else self._backoff(attempt)
                elif status >= 400:
                    raise EspRequestError(f"{self.name}: {method} {path} was rejected with HTTP {status}: "
                                          f"{_snippet(response)}", status, response.text)
                else:
                    return response
            if attempt == self.max_retries:
                break
            self.retries += 1
            log.warning("%s: %s %s %s; retry %d/%d in %.2fs", self.name, method, path, problem, attempt + 1,
                        self.max_retries, delay)
            time.sleep(delay)
        raise EspUnavailable(f"{self.name}: {method} {self.base_url}{path} failed after {self.max_retries + 1} "
                             f"attempts: {problem}. Nothing beyond the batches already confirmed was marked as "
                             "pushed; the next run resumes from there.")


def _snippet(response: httpx.Response, limit: int = 200) -> str:
    text = redact(response.text.strip().replace("\n", " "))
    return text[:limit] + ("..." if len(text) > limit else "") if text else response.reason_phrase
