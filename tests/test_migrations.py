"""`ecrm warehouse migrate`: a fresh warehouse is created by the migrations, an old one (made by the
code before migrations) is upgraded in place with its rows, a second run applies nothing and locks no
table, a changed migration is refused, and stages on a warehouse never migrated say what to run."""

from __future__ import annotations

import shutil
import threading
from datetime import UTC, date, datetime
from pathlib import Path
from urllib.parse import quote

import psycopg
import pytest

from ecrm.warehouse.migrate import (
    MIGRATIONS_DIR,
    MigrationError,
    WarehouseNotMigrated,
    migrate,
    migrations,
    require_migrated,
)

OLD_SCHEMA = Path(__file__).parent / "data" / "pre_migration_schema.sql"
SCHEMAS = ["raw", "quarantine", "ops", "mailer", "published"]
DAY = date(2026, 10, 1)
SHIPPED = [m.file for m in migrations()]  # 0001_initial.sql and any later ones


def schema_of(url: str) -> dict[str, list]:
    """Tables, columns (in order, with types, nullability and defaults), indexes, constraints, views,
    functions and sequences of the warehouse's own schemas."""
    queries = {
        "columns": "select table_schema, table_name, ordinal_position, column_name, data_type, is_nullable, "
                   "column_default, is_identity from information_schema.columns where table_schema = any(%(s)s)",
        "indexes": "select schemaname, tablename, indexname, indexdef from pg_indexes where schemaname = any(%(s)s)",
        "constraints": "select n.nspname, c.conrelid::regclass::text, c.conname, pg_get_constraintdef(c.oid) "
                       "from pg_constraint c join pg_namespace n on n.oid = c.connamespace where n.nspname = any(%(s)s)",
        "views": "select schemaname, viewname, definition from pg_views where schemaname = any(%(s)s)",
        "functions": "select n.nspname, p.proname, pg_get_functiondef(p.oid) from pg_proc p "
                     "join pg_namespace n on n.oid = p.pronamespace where n.nspname = any(%(s)s)",
        "sequences": "select sequence_schema, sequence_name, data_type from information_schema.sequences "
                     "where sequence_schema = any(%(s)s)",
    }
    with psycopg.connect(url) as conn:
        return {name: sorted(conn.execute(sql, {"s": SCHEMAS}).fetchall(), key=str) for name, sql in queries.items()}


def test_a_fresh_warehouse_is_created_by_0001_and_recorded(bare_db_url):
    applied = migrate(bare_db_url)
    assert [m.file for m in applied] == SHIPPED and SHIPPED[0] == "0001_initial.sql"
    with psycopg.connect(bare_db_url) as conn:
        rows = conn.execute("select version, name, checksum from ops.schema_migrations order by 1").fetchall()
        tables = {r[0] for r in conn.execute("select table_schema || '.' || table_name from information_schema.tables "
                                             "where table_schema = any(%s)", (SCHEMAS,))}
    assert rows == [(m.version, m.name, m.checksum) for m in applied]
    assert {"raw.orders", "quarantine.rejected_rows", "ops.load_ledger", "ops.stage_runs", "ops.build_runs",
            "ops.quality_results", "ops.publish_runs", "ops.source_watermarks", "published.audience_members",
            "mailer.sync_runs", "mailer.member_history"} <= tables
    assert "ops.schema_version" not in tables
    with psycopg.connect(bare_db_url) as conn:
        require_migrated(conn)  # the stages' check passes


def test_a_second_migrate_applies_nothing_and_waits_on_no_table(bare_db_url):
    migrate(bare_db_url)
    with psycopg.connect(bare_db_url) as holder:
        tables = [r[0] for r in holder.execute(
            "select format('%%I.%%I', table_schema, table_name) from information_schema.tables where table_schema = "
            "any(%s) and table_type = 'BASE TABLE' and table_name <> 'schema_migrations'", (SCHEMAS,))]
        holder.execute(f"lock table {', '.join(tables)} in access exclusive mode")  # as a long load or build would
        impatient = f"{bare_db_url}?options={quote('-c lock_timeout=2000')}"  # fails instead of waiting
        assert migrate(impatient) == []
    with psycopg.connect(bare_db_url) as conn:
        assert conn.execute("select count(*) from ops.schema_migrations").fetchone()[0] == len(SHIPPED)


def test_two_first_migrates_at_once_apply_0001_once(bare_db_url):
    barrier, results, errors = threading.Barrier(2), [], []

    def run() -> None:
        barrier.wait()
        try:
            results.append([m.file for m in migrate(bare_db_url)])
        except Exception as exc:  # noqa: BLE001 - reported below
            errors.append(exc)

    threads = [threading.Thread(target=run) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=120)
    assert errors == []
    assert sorted(results) == [[], SHIPPED]


def test_an_old_warehouse_is_upgraded_in_place_and_keeps_its_rows(bare_db_url, db_url):
    """A warehouse made by the code before migrations (its DDL frozen in tests/data) with rows in it:
    migrate brings it to exactly the schema a fresh warehouse gets, and every row stays."""
    with psycopg.connect(bare_db_url, autocommit=True) as conn:
        conn.execute(OLD_SCHEMA.read_text())
        conn.execute("insert into ops.schema_version (schema_hash) values ('an old hash')")
        conn.execute("insert into raw.customers values ('c-1', 'a@example.com', 'Ann', 'DE', %s, %s, true, 'c.csv', 2, 7)",
                     (datetime(2026, 1, 1, tzinfo=UTC), datetime(2026, 1, 2, tzinfo=UTC)))
        conn.execute("insert into ops.load_ledger (source, file, file_size, checksum, interval_start, interval_end, "
                     "status, folder, quarantined_by_code) values ('shop', 'customers.csv', 10, 'abc', %s, %s, "
                     "'succeeded', 'shop/2026-10-01', '{\"too_late\": 1}')",
                     (datetime(2026, 10, 1, tzinfo=UTC), datetime(2026, 10, 2, tzinfo=UTC)))
        conn.execute("insert into ops.stage_runs (stage, run_date, detail) values ('build_marts', %s, '{}')", (DAY,))
        conn.execute("insert into published.audience_members values ('vip', 'c-1', 'a@example.com', 'Ann', "
                     "'Champions', %s)", (DAY,))
        conn.execute("insert into mailer.sync_runs (run_id, audience, day, adapter, target, dry_run, status, "
                     "members_before, members_after, adds, updates, removes, excluded) values "
                     "(1, 'vip', %s, 'outbox', 'outbox', false, 'abandoned', 0, 1, 1, 0, 0, 0)", (DAY,))
        # the old tables' own columns: later migrations may add columns (with defaults) beside them
        columns = {t: ", ".join(c for (c,) in conn.execute(
            "select column_name from information_schema.columns where table_schema || '.' || table_name = %s "
            "order by ordinal_position", (t,))) for t in ("raw.customers", "ops.load_ledger", "ops.stage_runs",
                                                         "published.audience_members", "mailer.sync_runs")}
        before = {t: conn.execute(f"select {c} from {t} order by 1").fetchall() for t, c in columns.items()}
    assert [m.file for m in migrate(bare_db_url)] == SHIPPED
    assert schema_of(bare_db_url) == schema_of(db_url)  # db_url: a fresh database, migrated
    with psycopg.connect(bare_db_url) as conn:
        after = {t: conn.execute(f"select {c} from {t} order by 1").fetchall() for t, c in columns.items()}
    assert after == before
    assert migrate(bare_db_url) == []


FORECAST_TABLES = ["fct_clv_model_fits", "fct_customer_predictions_daily", "fct_clv_forecast_daily",
                   "fct_clv_backtest_runs", "fct_clv_backtest"]


def forecast_columns(url: str) -> list[tuple]:
    with psycopg.connect(url) as conn:
        return conn.execute("select table_name, column_name, data_type, is_nullable, column_default from "
                            "information_schema.columns where table_schema = 'marts' order by 1, ordinal_position").fetchall()


def test_the_forecast_tables_exist_before_the_first_build_and_old_ones_are_upgraded(bare_db_url, db_url):
    """dbt reads the forecast as a source: a fresh warehouse has its tables before any forecast ran.
    A warehouse whose first forecast created the fits table in its first version (the fit's duration
    in the mart, no penalizer) gets today's shape and keeps its fits."""
    assert sorted({t for t, *_ in forecast_columns(db_url)}) == sorted(FORECAST_TABLES)
    with psycopg.connect(bare_db_url, autocommit=True) as conn:
        conn.execute("create schema marts; create table marts.fct_clv_model_fits (fit_date date not null, "
                     "model text not null check (model in ('bgnbd', 'gamma_gamma')), parameters jsonb not null, "
                     "time_unit text not null, log_likelihood double precision not null, customers integer not null, "
                     "distinct_summaries integer not null, converged boolean not null, calibration_start date, "
                     "calibration_end date not null, fit_seconds double precision, primary key (fit_date, model))")
        conn.execute("insert into marts.fct_clv_model_fits values (%s, 'bgnbd', '{\"r\": 0.24}', 'day', -9.5, 10, 8, "
                     "true, null, %s, 0.4)", (DAY, DAY))
    migrate(bare_db_url)
    assert forecast_columns(bare_db_url) == forecast_columns(db_url)
    with psycopg.connect(bare_db_url) as conn:
        assert conn.execute("select fit_date, parameters, penalizer from marts.fct_clv_model_fits").fetchall() == \
            [(DAY, {"r": 0.24}, 0.0)]


@pytest.fixture
def migrations_copy(tmp_path) -> Path:
    folder = tmp_path / "migrations"
    folder.mkdir()
    for entry in MIGRATIONS_DIR.iterdir():
        if entry.name.endswith(".sql"):
            (folder / entry.name).write_bytes(entry.read_bytes())
    return folder


def test_a_later_migration_is_applied_once_and_stages_wait_for_it(bare_db_url, migrations_copy):
    migrate(bare_db_url, migrations_copy)
    have, later = len(SHIPPED), f"{len(SHIPPED) + 1:04d}_campaign_owner.sql"
    (migrations_copy / later).write_text("alter table raw.email_campaigns add column owner text;\n")
    with psycopg.connect(bare_db_url) as conn, pytest.raises(WarehouseNotMigrated) as refused:
        require_migrated(conn, migrations_copy)
    assert str(refused.value) == (f"warehouse at migration {have:04d}, this code needs {have + 1:04d}: "
                                  "run `ecrm warehouse migrate`")
    assert [m.file for m in migrate(bare_db_url, migrations_copy)] == [later]
    assert migrate(bare_db_url, migrations_copy) == []
    with psycopg.connect(bare_db_url) as conn:
        require_migrated(conn, migrations_copy)
        assert conn.execute("select owner from raw.email_campaigns").fetchall() == []
        assert [r[0] for r in conn.execute("select version from ops.schema_migrations order by 1")] == \
            list(range(1, have + 2))


def test_a_changed_migration_is_an_error_naming_the_file(bare_db_url, migrations_copy):
    migrate(bare_db_url, migrations_copy)
    path = migrations_copy / "0001_initial.sql"
    path.write_text(path.read_text().replace("create schema if not exists raw;",
                                             "create schema if not exists raw;\ncreate schema if not exists extra;"))
    with pytest.raises(MigrationError, match=r"0001_initial\.sql was changed after it was applied"):
        migrate(bare_db_url, migrations_copy)
    with psycopg.connect(bare_db_url) as conn:
        assert conn.execute("select to_regnamespace('extra')").fetchone()[0] is None


def test_a_gap_in_the_numbering_is_an_error(migrations_copy):
    shutil.copy(migrations_copy / "0001_initial.sql", migrations_copy / f"{len(SHIPPED) + 2:04d}_later.sql")
    with pytest.raises(MigrationError, match="without gaps"):
        migrate("postgresql://unused", migrations_copy)


def _stages(url: str, tmp_path: Path):
    """Each stage that used to create its tables, called on `url` as a test or the CLI would."""
    from ecrm import pipeline, transform
    from ecrm.intervals import day_interval
    from ecrm.load.ingest import ingest
    from ecrm.mailer.config import MailerConfig
    from ecrm.mailer.sync import sync_audiences
    from ecrm.predict.stage import run as predict
    from ecrm.publish import publish
    from ecrm.quality import gate

    def with_conn(fn):
        def call():
            with psycopg.connect(url, autocommit=True) as conn:
                fn(conn)
        return call

    def build_lock():
        with transform.build_lock(url, DAY):
            pass

    return {
        "ingest": with_conn(lambda c: ingest(c, "weblogs", tmp_path, day_interval(DAY))),
        "stages_done": lambda: pipeline.stages_done(["build_marts"], DAY, url),
        "build": build_lock,
        "predict": with_conn(lambda c: predict(c, DAY)),
        "gate": with_conn(lambda c: gate.enforce(c, url, DAY)),
        "publish": with_conn(lambda c: publish(c, DAY)),
        "push": with_conn(lambda c: sync_audiences(c, DAY, config=MailerConfig(adapter="outbox",
                                                                               outbox=tmp_path / "out"))),
    }


@pytest.mark.parametrize("stage", ["ingest", "stages_done", "build", "predict", "gate", "publish", "push"])
def test_a_stage_on_a_warehouse_never_migrated_says_what_to_run(bare_db_url, tmp_path, stage):
    with pytest.raises(WarehouseNotMigrated, match=r"^warehouse not migrated: run `ecrm warehouse migrate`$"):
        _stages(bare_db_url, tmp_path)[stage]()
    with psycopg.connect(bare_db_url) as conn:  # and it created nothing
        assert conn.execute("select count(*) from pg_namespace where nspname = any(%s)",
                            ([*SCHEMAS, "marts"],)).fetchone()[0] == 0


def test_cli_migrate_prints_the_versions_and_nothing_else(bare_db_url, monkeypatch, capsys):
    from ecrm.cli import main

    monkeypatch.setenv("ECRM_WAREHOUSE_URL", bare_db_url)
    main(["warehouse", "migrate"])
    latest = f"warehouse at migration {len(SHIPPED):04d}"
    assert capsys.readouterr().out.splitlines() == [*(f"applied {f}" for f in SHIPPED), latest]
    main(["warehouse", "migrate"])
    out = capsys.readouterr().out
    assert out.splitlines() == [f"{latest} (up to date, nothing applied)"]
    assert "postgres" not in out and "127.0.0.1" not in out
