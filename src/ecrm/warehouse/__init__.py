"""The warehouse: connection, the visitor key, the embedded local server; its tables are created by
versioned migrations (ecrm.warehouse.migrate, `ecrm warehouse migrate`)."""

from __future__ import annotations

import hashlib
import logging

import psycopg

log = logging.getLogger(__name__)


def visitor_key_bytes(key: str) -> bytes:
    """The 64-byte HMAC-SHA256 key block of a key string (RFC 2104: hashed when longer, zero-padded)."""
    raw = key.encode()
    if len(raw) > 64:
        raw = hashlib.sha256(raw).digest()
    return raw.ljust(64, b"\0")


def ensure_visitor_key(conn: psycopg.Connection, key: str | None = None) -> str:
    """Make sure ops.secrets holds the visitor_id key; returns its origin ('env' or 'generated').

    ECRM_VISITOR_KEY (settings.visitor_key) wins and is stored through a bound parameter (never in
    SQL text, dbt vars or logs); unset, a key is generated once on the server and kept. A changed
    ECRM_VISITOR_KEY replaces the stored key: every visitor_id changes, so the web models need a
    full refresh (logged; docs/marts.md).
    """
    from ..settings import get_settings

    key = key if key is not None else get_settings().visitor_key
    row = conn.execute("select fingerprint from ops.secrets where name = 'visitor_id'").fetchone()
    if key:
        fingerprint = hashlib.md5(key.encode()).hexdigest()
        if row is None or row[0] != fingerprint:
            conn.execute(
                "insert into ops.secrets (name, value, fingerprint, origin) values ('visitor_id', %s, %s, 'env') "
                "on conflict (name) do update set value = excluded.value, fingerprint = excluded.fingerprint, "
                "origin = 'env', updated_at = now()", (visitor_key_bytes(key), fingerprint))
            if row is not None:
                log.warning("ECRM_VISITOR_KEY changed: every visitor_id changes; rebuild the web models with "
                            "`dbt run --full-refresh --select int_web_page_views+` (docs/marts.md)")
        return "env"
    if row is None:
        conn.execute(
            "insert into ops.secrets (name, value, fingerprint, origin) "
            "select 'visitor_id', g.value, md5(encode(g.value, 'hex')), 'generated' from (select sha512(convert_to("
            "gen_random_uuid()::text || gen_random_uuid()::text || gen_random_uuid()::text || "
            "gen_random_uuid()::text, 'UTF8')) as value) as g on conflict (name) do nothing")
    return conn.execute("select origin from ops.secrets where name = 'visitor_id'").fetchone()[0]


def connect(url: str) -> psycopg.Connection:
    return psycopg.connect(url, autocommit=True)


def resolve_url(settings=None) -> str:
    """ECRM_WAREHOUSE_URL when set, else the embedded warehouse (started, or reused, on demand)."""
    from ..settings import get_settings
    from .embedded import EmbeddedWarehouse

    settings = settings or get_settings()
    if settings.warehouse_url:
        return settings.warehouse_url
    return EmbeddedWarehouse(settings.embedded_dir).start()
