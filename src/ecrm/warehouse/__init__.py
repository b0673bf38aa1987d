"""The warehouse: connection, schema of raw/quarantine/ops, and the embedded local server."""

from __future__ import annotations

from importlib.resources import files

import psycopg

SCHEMA_SQL = files(__package__).joinpath("schema.sql").read_text()


def apply_schema(conn: psycopg.Connection) -> None:
    """Create raw.*, quarantine.* and ops.* if missing (idempotent; cheap when nothing to do)."""
    with conn.transaction():
        conn.execute("select pg_advisory_xact_lock(hashtext('ecrm-schema'))")
        conn.execute(SCHEMA_SQL)


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
