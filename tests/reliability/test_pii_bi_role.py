"""Defect 8 (PII): visitor_id is a keyed hash, and the BI role reads marts without identifiers.

One warehouse built by the real pipeline (simulator -> ingest -> dbt build -> publish -> next day's
dbt run), then: visitor_id is HMAC-SHA256 under the warehouse's key (not md5(ip|ua)), stable across
builds, follows ECRM_VISITOR_KEY (which never reaches dbt's log); a login granted ecrm_bi_reader
cannot select e-mail or first name anywhere, nor raw/quarantine/ops/mailer/intermediate/sync,
but reads every other mart column; ecrm_marketing_ops reads the identifiers."""

from __future__ import annotations

import hashlib
import hmac
import json
import os
import uuid
from datetime import date, timedelta
from pathlib import Path

import psycopg
import pytest
from psycopg import errors

ROOT = Path(__file__).resolve().parents[2]
START = date(2026, 10, 1)
PII = ("email", "first_name")


def _dbt_run(day: date, url: str, *extra: str) -> None:
    from ecrm.transform import run_dbt

    run_dbt(["run", "--vars", json.dumps({"run_date": day.isoformat()}), "--quiet", *extra], url)


def _visitors(url: str) -> list[tuple]:
    """(page_view_id, visitor_id, address, agent) of every page view, with its raw log line."""
    with psycopg.connect(url) as conn:
        return conn.execute("""
            select p.page_view_id, p.visitor_id, s.ip_address::text, coalesce(s.user_agent, '')
            from intermediate.int_web_page_views as p
            inner join staging.stg_web__requests as s on s.request_id = p.page_view_id
            order by p.page_view_id""").fetchall()


def _hmac(key: bytes, address: str, agent: str) -> str:
    return hmac.new(key, f"{address}|{agent}".encode(), hashlib.sha256).hexdigest()[:32]


@pytest.fixture(scope="module")
def built(warehouse, tmp_path_factory):
    """Day 1 built, tested and published, day 2 built: (url, visitor ids after day 1)."""
    from ecrm import pipeline, transform
    from ecrm.intervals import day_interval
    from ecrm.publish import publish
    from ecrm.simulate import ShopSimulator

    data = tmp_path_factory.mktemp("pii")
    saved = {k: os.environ.get(k) for k in ("ECRM_DATA_DIR", "ECRM_LANDING", "ECRM_OUTBOX", "ECRM_VISITOR_KEY")}
    os.environ.update({"ECRM_DATA_DIR": str(data), "ECRM_LANDING": str(data / "landing"),
                       "ECRM_OUTBOX": str(data / "outbox")})
    os.environ.pop("ECRM_VISITOR_KEY", None)
    try:
        # web logs of their whole UTC day (not rotated at 06:25): the first day's build has every page view
        sim = ShopSimulator(landing=data / "landing", outbox=data / "outbox", truth=data / "truth", start=START,
                            customers=300, seed=20, delivery="shop,email")
        sim.write_initial()
        url = warehouse.create_database(f"pii_{uuid.uuid4().hex[:8]}")
        pipeline.ingest_initial(START, url=url)
        for offset in range(2):
            day = START + timedelta(days=offset)
            sim.write_day(day)
            for source in pipeline.SOURCES:
                pipeline.ingest_interval(source, *day_interval(day), url=url)
            if offset == 0:
                transform.build(day, url)  # models, unit tests and data tests
                first = _visitors(url)
                with psycopg.connect(url, autocommit=True) as conn:
                    publish(conn, day)
            else:
                _dbt_run(day, url)  # grants again after the publish step created published.*
        yield url, first
    finally:
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


def _stored_key(url: str) -> tuple[bytes, str]:
    with psycopg.connect(url) as conn:
        value, origin = conn.execute("select value, origin from ops.secrets where name = 'visitor_id'").fetchone()
    return bytes(value), origin


def test_visitor_id_is_a_keyed_hash_stable_across_builds(built):
    url, first = built
    key, origin = _stored_key(url)
    assert origin == "generated" and len(key) == 64 and len(set(key)) > 16
    views = _visitors(url)
    assert len(first) > 100 and len(views) > len(first)
    for _, visitor, address, agent in views:
        assert visitor != hashlib.md5(f"{address}|{agent}".encode()).hexdigest(), "unsalted md5 is reversible"
        assert visitor == _hmac(key, address, agent)
    # the second day's build kept the first day's visitor ids (the key did not change)
    assert [v for v in views if v[0] in {f[0] for f in first}] == first
    with psycopg.connect(url) as conn:  # sessions carry the same ids
        assert conn.execute("select count(*) from marts.fct_web_sessions s where not exists (select 1 from "
                            "intermediate.int_web_page_views p where p.visitor_id = s.visitor_id)").fetchone()[0] == 0


def test_ecrm_visitor_key_sets_the_key_and_stays_out_of_dbt_logs(built, warehouse, monkeypatch):
    from ecrm.transform import DbtBuildFailed
    from ecrm.warehouse import ensure_visitor_key

    url, _ = built
    name = f"pii_key_{uuid.uuid4().hex[:8]}"
    with psycopg.connect(warehouse.url("postgres"), autocommit=True) as conn:
        conn.execute(f'create database "{name}" template "{url.rsplit("/", 1)[1]}"')
    clone = warehouse.url(name)
    secret = f"visitor-key-{uuid.uuid4().hex}"
    monkeypatch.setenv("ECRM_VISITOR_KEY", secret)
    # dbt alone refuses a key the warehouse does not hold (no silent mix of two keys' ids)
    with pytest.raises(DbtBuildFailed):
        _dbt_run(START + timedelta(days=1), clone, "--select", "int_web_page_views")
    with psycopg.connect(clone, autocommit=True) as conn:
        ensure_visitor_key(conn)  # stores the key (any ingest does)
    _dbt_run(START + timedelta(days=1), clone, "--full-refresh", "--select", "int_web_page_views+")
    key, origin = _stored_key(clone)
    assert origin == "env" and key == secret.encode().ljust(64, b"\0")
    views = _visitors(clone)
    assert views and all(v[1] == hmac.new(secret.encode(), f"{v[2]}|{v[3]}".encode(), hashlib.sha256)
                         .hexdigest()[:32] for v in views)
    assert {v[1] for v in views}.isdisjoint({v[1] for v in _visitors(url)})
    logs = ROOT / "dbt_project" / "logs"
    for path in logs.glob("*.log*"):
        assert secret not in path.read_text(errors="replace"), f"the visitor key leaked into {path}"


@pytest.fixture(scope="module")
def logins(built, warehouse):
    """A BI login (granted ecrm_bi_reader) and a marketing ops login (granted ecrm_marketing_ops)."""
    url, _ = built
    suffix = uuid.uuid4().hex[:8]
    names = {"bi": f"bi_login_{suffix}", "ops": f"mops_login_{suffix}"}
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute(f"create role {names['bi']} login; grant ecrm_bi_reader to {names['bi']}")
        conn.execute(f"create role {names['ops']} login; grant ecrm_marketing_ops to {names['ops']}")
        # a mailer schema (the mailer state) as the owner creates it: nobody granted BI anything there
        conn.execute("create schema if not exists mailer; create table if not exists mailer.pii_probe (email text)")
    urls = {k: url.replace("postgres@", f"{v}@", 1) for k, v in names.items()}
    yield urls
    with psycopg.connect(url, autocommit=True) as conn:
        for role in names.values():
            conn.execute(f"drop owned by {role}; drop role {role}")


def _denied(url: str, sql: str) -> bool:
    with psycopg.connect(url, autocommit=True) as conn:
        try:
            conn.execute(sql)
        except errors.InsufficientPrivilege:
            return True
    return False


def _relations(url: str, schema: str) -> dict[str, list[str]]:
    with psycopg.connect(url) as conn:
        rows = conn.execute("select c.relname, array_agg(a.attname::text order by a.attnum) from pg_class c "
                            "join pg_namespace n on n.oid = c.relnamespace join pg_attribute a on a.attrelid = c.oid "
                            "and a.attnum > 0 and not a.attisdropped where n.nspname = %s and c.relkind in "
                            "('r', 'v', 'm', 'p') group by c.relname", (schema,)).fetchall()
    return dict(rows)


def test_bi_reads_marts_without_identifiers(built, logins):
    url, _ = built
    bi = logins["bi"]
    for table in ("marts.dim_customers", "marts.fct_campaign_recipients", "published.audience_members"):
        schema, name = table.split(".")
        present = [c for c in PII if c in _relations(url, schema)[name]]
        assert "email" in present, table
        for column in present:
            assert _denied(bi, f"select {column} from {table} limit 1"), f"BI reads {table}.{column}"
        assert _denied(bi, f"select count(*) from {table} where email like '%%@%%'"), "filtering by e-mail"
        assert _denied(bi, f"select * from {table} limit 1")
    checked = 0
    for schema in ("marts", "published"):
        relations = _relations(url, schema)
        assert relations, schema
        for table, columns in relations.items():
            allowed = [c for c in columns if c not in PII]
            with psycopg.connect(bi) as conn:
                conn.execute(f"select {', '.join(allowed)} from {schema}.{table} limit 5").fetchall()
            checked += 1
    assert checked >= 12  # 13 marts models and 3 published tables
    with psycopg.connect(bi) as conn:
        assert conn.execute("select count(*) from marts.dim_customers").fetchone()[0] > 0
        assert conn.execute("select count(*) from published.audience_members").fetchone()[0] > 0
    with psycopg.connect(url) as conn:  # no default privileges could hand BI a whole new table
        assert conn.execute("select count(*) from pg_default_acl d join pg_namespace n on n.oid = d.defaclnamespace "
                            "where n.nspname in ('marts', 'published') "
                            "and d.defaclacl::text like '%%ecrm_bi_reader%%'").fetchone()[0] == 0


def test_bi_reaches_nothing_else(built, logins):
    bi = logins["bi"]
    for table in ("raw.customers", "raw.web_requests", "quarantine.rejected_rows", "ops.load_ledger",
                  "ops.secrets", "mailer.pii_probe", "intermediate.int_web_page_views",
                  "staging.stg_shop__customers", "sync.sync_audience_members"):
        assert _denied(bi, f"select 1 from {table} limit 1"), f"BI reads {table}"


def test_marketing_ops_reads_the_identifiers(built, logins):
    ops = logins["ops"]
    with psycopg.connect(ops) as conn:
        for table in ("marts.dim_customers", "marts.fct_campaign_recipients", "published.audience_members"):
            emails = conn.execute(f"select email from {table} where email is not null limit 5").fetchall()
            assert all("@" in e for e, in emails), table
            if table != "marts.fct_campaign_recipients":  # no campaign is sent in the first two days
                assert emails, table
        assert conn.execute("select count(first_name) from marts.dim_customers").fetchone()[0] > 0
    assert _denied(ops, "select 1 from raw.customers limit 1")
    assert _denied(ops, "select 1 from ops.secrets limit 1")
