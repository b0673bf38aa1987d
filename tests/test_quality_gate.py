"""The quality gate against a real PostgreSQL: each kind of bad day is blocked, nothing is published
or pushed, yesterday's published segments stay, and a clean day passes.

One realistic warehouse is built per module (simulator → loaders → dbt, no Airflow): day 1 is
built, gated and published; day 2 is built but not yet published. Every test works on its own
copy of that database (`create database ... template`), injects one kind of bad data with SQL
and runs the real stage function `ecrm.pipeline.publish_segments` for day 2.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import uuid
from datetime import UTC, date, datetime, time, timedelta
from pathlib import Path

import psycopg
import pytest

from ecrm.intervals import day_interval

ROOT = Path(__file__).resolve().parents[1]
START = date(2026, 10, 1)
DAY1, DAY2 = START, START + timedelta(days=1)
PUBLISHED = {"published.audience_members": "audience, customer_id", "published.customer_segments": "customer_id",
             "published.segment_summary": "segment"}


def digest(conn: psycopg.Connection, table: str, order_by: str) -> str:
    rows = conn.execute(f"select * from {table} order by {order_by}").fetchall()
    return hashlib.sha256(repr(rows).encode()).hexdigest()


@pytest.fixture(scope="module")
def base(warehouse, tmp_path_factory):
    """Day 1 built and published, day 2 built; returns the template database's name."""
    from ecrm.pipeline import SOURCES, build_marts, ingest_initial, ingest_interval, publish_segments
    from ecrm.simulate import ShopSimulator

    data = tmp_path_factory.mktemp("qg-data")
    gx_dir = data / "expectations"  # a copy of the GX context: results and Data Docs stay out of the repo
    shutil.copytree(ROOT / "expectations", gx_dir, ignore=shutil.ignore_patterns("uncommitted"))
    saved = {k: os.environ.get(k) for k in ("ECRM_DATA_DIR", "ECRM_LANDING", "ECRM_OUTBOX", "ECRM_GX_PROJECT_DIR")}
    os.environ.update({"ECRM_DATA_DIR": str(data), "ECRM_LANDING": str(data / "landing"),
                       "ECRM_OUTBOX": str(data / "outbox"), "ECRM_GX_PROJECT_DIR": str(gx_dir)})
    name = "qg_base"
    url = warehouse.create_database(name)
    sim = ShopSimulator(landing=data / "landing", outbox=data / "outbox", truth=data / "truth", start=START,
                        customers=600, seed=11)
    sim.write_initial()
    ingest_initial(START, url=url)
    for day in (DAY1, DAY2):
        sim.write_day(day)
        for source in SOURCES:
            ingest_interval(source, *day_interval(day), url=url)
        build_marts(*day_interval(day), url=url)
        if day == DAY1:
            publish_segments(*day_interval(day), url=url)  # a clean day passes and publishes
    yield name
    for key, value in saved.items():
        if value is None:
            os.environ.pop(key, None)
        else:
            os.environ[key] = value


@pytest.fixture
def day2(warehouse, base, tmp_path, monkeypatch):
    """A private copy of the base warehouse and an empty outbox; yields (url, conn, outbox)."""
    name = f"qg_{uuid.uuid4().hex[:10]}"
    with psycopg.connect(warehouse.url("postgres"), autocommit=True) as admin:
        admin.execute("select pg_terminate_backend(pid) from pg_stat_activity "
                      "where datname = %s and pid <> pg_backend_pid()", (base,))
        admin.execute(f'create database "{name}" template "{base}"')
    outbox = tmp_path / "outbox"
    monkeypatch.setenv("ECRM_OUTBOX", str(outbox))
    url = warehouse.url(name)
    with psycopg.connect(url, autocommit=True) as conn:
        yield url, conn, outbox
    with psycopg.connect(warehouse.url("postgres"), autocommit=True) as admin:
        admin.execute(f'drop database if exists "{name}" with (force)')


def published_state(conn) -> dict[str, str]:
    return {t: digest(conn, t, o) for t, o in PUBLISHED.items()}


def run_day(url: str, day: date = DAY2) -> dict:
    from ecrm.pipeline import publish_segments

    return publish_segments(*day_interval(day), url=url)


def assert_blocked(day2, expected: set[str], day: date = DAY2) -> str:
    """Run the stage for `day`; it must raise naming `expected`, and publish and push nothing."""
    from ecrm.quality.gate import QualityGateFailed

    url, conn, outbox = day2
    before = published_state(conn)
    publish_runs = conn.execute("select count(*) from ops.publish_runs").fetchone()[0]
    with pytest.raises(QualityGateFailed) as info:
        run_day(url, day)
    message = str(info.value)
    failed = {f"{r.suite}.{r.expectation}" for r in info.value.failed}
    assert expected <= failed, (expected, failed)
    for name in expected:
        assert name in message
    # yesterday's published tables untouched, nothing pushed, the failure recorded for the day
    assert published_state(conn) == before
    assert {d for (d,) in conn.execute("select distinct snapshot_date from published.customer_segments")} == {DAY1}
    assert conn.execute("select count(*) from ops.publish_runs").fetchone()[0] == publish_runs
    assert not (outbox / day.isoformat()).exists()
    recorded = {f"{s}.{e}" for s, e in conn.execute(
        "select suite, expectation from ops.quality_results where run_date = %s and not passed and blocking", (day,))}
    assert expected <= recorded
    return message


def test_clean_day_passes_and_publishes(day2):
    url, conn, outbox = day2
    detail = run_day(url)
    assert detail["checks_passed"] <= detail["checks"] and detail["checks"] > 60
    failed_blocking = conn.execute("select suite, expectation, observed_value from ops.quality_results "
                                   "where run_date = %s and blocking and not passed", (DAY2,)).fetchall()
    assert failed_blocking == []
    suites = {s for (s,) in conn.execute("select distinct suite from ops.quality_results where run_date = %s",
                                         (DAY2,))}
    assert {"raw_orders", "raw_customers", "raw_order_lines", "raw_web_requests", "raw_email_events",
            "dim_customers", "customer_segments", "segment_summary", "audience_members", "predictions",
            "discount_performance", "discount_campaigns", "loyalty_daily"} <= suites
    assert {d for (d,) in conn.execute("select distinct snapshot_date from published.customer_segments")} == {DAY2}
    assert conn.execute("select count(*) from published.customer_segments").fetchone()[0] == conn.execute(
        "select count(*) from marts.fct_customer_rfm_daily where snapshot_date = %s", (DAY2,)).fetchone()[0]
    assert conn.execute("select count(*) from published.segment_summary").fetchone()[0] == 12
    assert (outbox / DAY2.isoformat() / "manifest.json").exists()
    # the forecast audience is published and pushed like the others (compliance checked by the same suite)
    members = dict(conn.execute("select audience, count(*) from published.audience_members group by 1").fetchall())
    assert members.get("high_value_at_risk", 0) > 0, members
    assert (outbox / DAY2.isoformat() / "high_value_at_risk.csv").exists()
    # The day's quarantine, by source and reason code, beside the checks (informational, never blocking).
    by_code = dict(conn.execute("select expectation, observed_value::bigint from ops.quality_results "
                                "where run_date = %s and suite = 'quarantine' and passed and not blocking",
                                (DAY2,)).fetchall())
    in_quarantine = dict(conn.execute(
        "select q.source || '.' || q.reason_code, count(*) from quarantine.rejected_rows q join ops.load_ledger l "
        "on l.load_id = q._load_id where l.status = 'succeeded' and l.interval_start = %s group by 1",
        (datetime.combine(DAY2, time(0), tzinfo=UTC),)).fetchall())
    assert by_code == in_quarantine and by_code


def test_web_logs_that_stop_hours_before_midnight_are_blocked(day2, capfd):
    """A web log that ends in the afternoon of the day before (a crashed rotation, a lost file) blocks the
    day: its sessions and conversions would be wrong. The check reads its own batch, so GX has nothing
    to print about a query outside the batch (the demo printed that line ~100 times)."""
    _, conn, _ = day2
    day1_start, day2_start = day_interval(DAY1)[0], day_interval(DAY2)[0]
    conn.execute("delete from raw.web_requests where requested_at >= %s", (day1_start + timedelta(hours=12),))
    assert_blocked(day2, {"raw_web_requests.logs_cover_the_day"})
    assert "should contain the {batch}" not in capfd.readouterr().out
    assert conn.execute("select max(requested_at) from raw.web_requests").fetchone()[0] < day2_start


def test_duplicated_customer_is_blocked(day2):
    _, conn, _ = day2
    conn.execute("alter table marts.fct_customer_rfm_daily drop constraint if exists fct_customer_rfm_daily_pkey")
    for (constraint,) in conn.execute(
            "select conname from pg_constraint where conrelid = 'marts.fct_customer_rfm_daily'::regclass "
            "and contype in ('p', 'u')").fetchall():
        conn.execute(f'alter table marts.fct_customer_rfm_daily drop constraint "{constraint}"')
    conn.execute("insert into marts.fct_customer_rfm_daily select * from marts.fct_customer_rfm_daily "
                 "where snapshot_date = %s and customer_id = (select min(customer_id) from marts.fct_customer_rfm_daily "
                 "where snapshot_date = %s)", (DAY2, DAY2))
    assert_blocked(day2, {"customer_segments.one_row_per_customer"})
    keys = conn.execute("select row_key from ops.quality_quarantine where run_date = %s "
                        "and expectation = 'one_row_per_customer'", (DAY2,)).fetchall()
    assert len(keys) == 2 and keys[0] == keys[1]


def test_null_emails_are_blocked_and_quarantined(day2):
    _, conn, _ = day2
    conn.execute("alter table sync.sync_audience_members alter column email drop not null")
    conn.execute("update sync.sync_audience_members set email = null where customer_id in "
                 "(select customer_id from sync.sync_audience_members order by customer_id limit 3)")
    assert_blocked(day2, {"audience_members.email_not_null"})
    quarantined = conn.execute(
        "select table_name, row_key, row_data->>'email', reason from ops.quality_quarantine "
        "where run_date = %s and expectation = 'email_not_null'", (DAY2,)).fetchall()
    assert len(quarantined) == 3
    assert all(t == "sync.sync_audience_members" and k["customer_id"] and e is None for t, k, e, _ in quarantined)


def test_ten_times_the_orders_is_blocked(day2):
    _, conn, _ = day2
    usual = conn.execute("select count(*)::numeric / count(distinct (created_at at time zone 'UTC')::date) "
                         "from raw.orders where created_at >= %s and created_at < %s",
                         (day_interval(DAY2 - timedelta(days=7))[0], day_interval(DAY2)[0])).fetchone()[0]
    copies = max(1, int(usual * 10))
    conn.execute("delete from raw.order_lines where order_id in (select order_id from raw.orders "
                 "where created_at >= %s and created_at < %s)", day_interval(DAY2))
    conn.execute("delete from raw.orders where created_at >= %s and created_at < %s", day_interval(DAY2))
    conn.execute(
        "insert into raw.orders select 'spike-' || g || '-' || o.order_id, o.customer_id, o.email, "
        "%s::timestamptz + (g || ' minutes')::interval, %s::timestamptz + (g || ' minutes')::interval, o.status, "
        "o.currency, o.total_amount, o.discount_amount, o.coupon_code, o._file, o._line, o._load_id "
        "from generate_series(1, %s) g cross join lateral (select * from raw.orders order by order_id limit 1) o",
        (day_interval(DAY2)[0], day_interval(DAY2)[0], copies))
    conn.execute("insert into raw.order_lines select o.order_id, 1, 'p1', 'Product', 'misc', 1, o.total_amount, 0, "
                 "o.updated_at, o._file, o._line, o._load_id from raw.orders o where o.order_id like 'spike-%%'")
    message = assert_blocked(day2, {"raw_orders.volume_vs_trailing_7d"})
    assert "rows_today" in message  # the observed value shows the day's count and the trailing average


def test_a_planned_spike_passes_when_configured_as_a_warning(day2, monkeypatch):
    """Severity is configuration: a known sale day can make the volume check warn instead of block."""
    url, conn, outbox = day2
    conn.execute(
        "insert into raw.orders select 'sale-' || g || '-' || o.order_id, o.customer_id, o.email, "
        "%s::timestamptz + (g || ' seconds')::interval, %s::timestamptz + (g || ' seconds')::interval, o.status, "
        "o.currency, o.total_amount, o.discount_amount, o.coupon_code, o._file, o._line, o._load_id "
        "from generate_series(1, 60) g cross join lateral (select * from raw.orders order by order_id limit 1) o",
        (day_interval(DAY2)[0], day_interval(DAY2)[0]))
    conn.execute("insert into raw.order_lines select o.order_id, 1, 'p1', 'Product', 'misc', 1, o.total_amount, 0, "
                 "o.updated_at, o._file, o._line, o._load_id from raw.orders o where o.order_id like 'sale-%%'")
    monkeypatch.setenv("ECRM_GATE_SEVERITY", "raw_orders.volume_vs_trailing_7d=warning")
    run_day(url)
    warned = conn.execute("select blocking from ops.quality_results where run_date = %s and suite = 'raw_orders' "
                          "and expectation = 'volume_vs_trailing_7d' and not passed", (DAY2,)).fetchall()
    assert warned == [(False,)]
    assert (outbox / DAY2.isoformat() / "manifest.json").exists()


def test_a_wrong_discount_or_loyalty_figure_warns_and_never_holds_the_audiences(day2):
    """The discount and loyalty suites check what marketing reads about codes and points; a wrong row is
    recorded as a failed warning and the day still publishes and pushes: those marts feed no audience."""
    url, conn, outbox = day2
    conn.execute(
        "insert into marts.fct_discount_performance_daily (order_date, discount_code, discount_type, orders, customers, "
        "new_customers, returning_customers, gross_revenue, net_revenue, discount_given, avg_order_value) "
        "values (%s, 'BROKEN50', 'bogus', 2, 5, 1, 1, 40.00, 45.00, 60.00, 22.50)", (DAY2,))
    # 500 points outstanding that no ledger event of raw.loyalty_events (empty: no program) explains
    conn.execute("insert into marts.fct_loyalty_daily (ledger_date, points_earned, points_redeemed, points_expired, "
                 "points_adjusted, outstanding_points, outstanding_liability, redemptions, tier_changes, "
                 "active_members, new_members, members, as_of_date) values (%s, 500, 0, 0, 0, 500, 5.00, 0, 0, 1, 1, 1, %s)",
                 (DAY2, DAY2))
    run_day(url)
    failed = dict(conn.execute("select suite || '.' || expectation, blocking from ops.quality_results "
                               "where run_date = %s and suite in ('discount_performance', 'loyalty_daily') "
                               "and not passed", (DAY2,)).fetchall())
    assert failed == {"discount_performance.discount_type_accepted": False,
                      "discount_performance.customers_are_new_or_returning": False,
                      "discount_performance.discount_within_gross": False,
                      "loyalty_daily.outstanding_is_the_ledgers_sum": False}
    assert (outbox / DAY2.isoformat() / "manifest.json").exists()
    assert {d for (d,) in conn.execute("select distinct snapshot_date from published.customer_segments")} == {DAY2}


def test_a_day_without_orders_is_blocked(day2):
    _, conn, _ = day2
    conn.execute("delete from raw.order_lines where order_id in (select order_id from raw.orders "
                 "where created_at >= %s and created_at < %s)", day_interval(DAY2))
    conn.execute("delete from raw.orders where (created_at >= %s and created_at < %s) "
                 "or (updated_at >= %s and updated_at < %s)", (*day_interval(DAY2), *day_interval(DAY2)))
    assert_blocked(day2, {"raw_orders.orders_of_day_not_empty"})


def test_a_holdout_member_in_an_audience_is_blocked(day2):
    _, conn, _ = day2
    added = conn.execute(
        "insert into sync.sync_audience_members (audience, customer_id, email, first_name, segment, snapshot_date) "
        "select 'vip', c.customer_id, c.email, c.first_name, 'Champions', %s from marts.dim_customers c "
        "where c.is_holdout and c.customer_id not in (select customer_id from sync.sync_audience_members "
        "where audience = 'vip') order by c.customer_id limit 1 returning customer_id", (DAY2,)).fetchall()
    assert added
    assert_blocked(day2, {"audience_members.no_holdout_member"})
    keys = [k for (k,) in conn.execute("select row_key from ops.quality_quarantine where run_date = %s "
                                       "and expectation = 'no_holdout_member'", (DAY2,))]
    assert {"audience": "vip", "customer_id": added[0][0]} in keys


def test_an_unsubscribed_address_in_an_audience_is_blocked(day2):
    """dbt missed the unsubscribe (say, the ESP sent the address in upper case): the gate still sees it."""
    _, conn, _ = day2
    customer_id, email = conn.execute("select customer_id, email from sync.sync_audience_members "
                                      "order by customer_id limit 1").fetchone()
    conn.execute("insert into raw.email_events (event_id, event, email, occurred_at, _file, _line, _load_id) "
                 "values ('injected-unsub', 'unsubscribe', %s, %s, 'injected', 1, 0)",
                 (email.upper(), day_interval(DAY2)[0] + timedelta(hours=12)))
    assert_blocked(day2, {"audience_members.no_suppressed_member"})
    rows = conn.execute("select row_data->>'customer_id', row_data->>'event' from ops.quality_quarantine "
                        "where run_date = %s and expectation = 'no_suppressed_member'", (DAY2,)).fetchall()
    assert (customer_id, "unsubscribe") in rows


def test_a_corrupt_forecast_row_is_blocked_and_quarantined(day2):
    """One customer's prediction out of range (p_alive 1.7, negative expected orders): the publish stops,
    as for any other failed check, and the row is quarantined with its key."""
    _, conn, _ = day2
    customer_id = conn.execute("select min(customer_id) from marts.fct_customer_predictions_daily "
                               "where snapshot_date = %s", (DAY2,)).fetchone()[0]
    conn.execute("update marts.fct_customer_predictions_daily set p_alive = 1.7, expected_orders_30d = -0.5 "
                 "where snapshot_date = %s and customer_id = %s", (DAY2, customer_id))
    assert_blocked(day2, {"predictions.p_alive_in_range", "predictions.expected_orders_30d_not_negative",
                          "predictions.dim_customers_carries_the_days_forecast"})
    keys = [k for (k,) in conn.execute("select row_key from ops.quality_quarantine where run_date = %s "
                                       "and expectation = 'p_alive_in_range'", (DAY2,))]
    assert keys == [{"snapshot_date": DAY2.isoformat(), "customer_id": customer_id}]


def _withheld(conn, day: date = DAY2) -> dict[str, str]:
    return dict(conn.execute("select expectation, observed_value from ops.quality_results where run_date = %s "
                             "and not passed and not blocking and withheld = 'forecast'", (day,)).fetchall())


def test_an_unconverged_or_absurd_fit_withholds_the_forecast(day2):
    """An untrusted fit withholds the forecast (its audience), not the whole publish (issue 26, defect 7;
    tests/reliability/test_forecast_withheld.py)."""
    url, conn, _ = day2
    conn.execute("update marts.fct_clv_model_fits set converged = false where fit_date = %s and model = 'gamma_gamma'",
                 (DAY2,))
    conn.execute("update marts.fct_clv_model_fits set parameters = jsonb_set(parameters, '{alpha}', '1e9') "
                 "where fit_date = %s and model = 'bgnbd'", (DAY2,))
    detail = run_day(url)
    withheld = _withheld(conn)
    assert set(withheld) == {"fits_converged", "parameters_within_bounds"} and "alpha" in withheld["parameters_within_bounds"]
    assert detail["withheld"]["forecast"]["checks"] == ["predictions.fits_converged",
                                                       "predictions.parameters_within_bounds"]


def test_everyone_in_one_churn_band_withholds_the_forecast(day2):
    url, conn, _ = day2
    conn.execute("update marts.fct_customer_predictions_daily set churn_risk = 'low' where snapshot_date = %s", (DAY2,))
    conn.execute("update marts.dim_customers set churn_risk = 'low' where churn_risk is not null")  # the same
    conn.execute("delete from sync.sync_audience_members where audience = 'high_value_at_risk'")  # day's bands
    run_day(url)
    assert set(_withheld(conn)) == {"not_all_in_one_churn_band"}


def test_rerunning_an_old_day_checks_that_day(day2):
    """Publishing day 1 again while the built tables hold day 2 must be refused, not publish day 2 as day 1."""
    _, conn, _ = day2
    message = assert_blocked(day2, {"audience_members.built_for_run_date", "dim_customers.built_for_run_date"},
                             day=DAY1)
    assert str(DAY1) in message
    observed = conn.execute("select observed_value from ops.quality_results where run_date = %s "
                            "and suite = 'audience_members' and expectation = 'built_for_run_date'",
                            (DAY1,)).fetchone()[0]
    assert str(DAY2) in observed


def _gate_results(url: str, engine: str, monkeypatch, day: date = DAY2) -> dict[str, tuple]:
    """(suite.check) -> (column, observed, passed) from the checkpoint run by `engine` (nothing recorded)."""
    from ecrm.quality.gate import run_checkpoint

    monkeypatch.setenv("ECRM_GATE_ENGINE", engine)
    rows, _ = run_checkpoint(url, day)
    results = {f"{r.suite}.{r.expectation}": (r.column, r.observed, r.passed) for r in rows}
    assert len(results) == len(rows)  # one result per check
    return results


def test_folded_checks_fail_for_exactly_the_rows_gx_failed(day2, monkeypatch):
    """Issue 30: the gate validates each suite's checks in one scan of its table instead of GX's query per
    check. On a clean day and on a day with one bad row in each of three tables (a negative order amount
    and an order updated before it was created in raw.orders, an R score of 9 in the day's segments, a
    malformed address in an audience), every check gives the same verdict and the same observed value
    as GX's own run of the same suites, only the checks those rows break fail, and the stage blocks
    naming them and quarantines exactly those rows."""
    url, conn, _ = day2
    folded, by_gx = _gate_results(url, "folded", monkeypatch), _gate_results(url, "gx", monkeypatch)
    assert folded == by_gx
    assert len(folded) > 100

    start, end = day_interval(DAY2)
    bad_amount, bad_update = [o for (o,) in conn.execute(
        "select order_id from raw.orders where created_at >= %s and created_at < %s order by order_id limit 2",
        (start, end))]
    conn.execute("update raw.orders set total_amount = -5 where order_id = %s", (bad_amount,))
    conn.execute("update raw.orders set updated_at = created_at - interval '1 hour' where order_id = %s", (bad_update,))
    customer = conn.execute("select min(customer_id) from marts.fct_customer_rfm_daily where snapshot_date = %s",
                            (DAY2,)).fetchone()[0]
    conn.execute("update marts.fct_customer_rfm_daily set r_score = 9 where snapshot_date = %s and customer_id = %s",
                 (DAY2, customer))
    audience, member = conn.execute("select audience, customer_id from sync.sync_audience_members "
                                    "order by audience, customer_id limit 1").fetchone()
    conn.execute("update sync.sync_audience_members set email = 'no-at-sign.example.com' "
                 "where audience = %s and customer_id = %s", (audience, member))
    bad = {"raw_orders.total_amount_in_range", "raw_orders.updated_not_before_created",
           "customer_segments.r_score_in_range", "audience_members.email_valid"}

    folded, by_gx = _gate_results(url, "folded", monkeypatch), _gate_results(url, "gx", monkeypatch)
    assert folded == by_gx
    assert {name for name, (_, _, passed) in folded.items() if not passed} == bad
    orders = conn.execute("select count(*) from raw.orders where created_at >= %s and created_at < %s "
                          "or updated_at >= %s and updated_at < %s", (start, end, start, end)).fetchone()[0]
    assert folded["raw_orders.total_amount_in_range"] == (
        "total_amount", f"1 of {orders} unexpected, e.g. [Decimal('-5.00')]", False)
    assert folded["raw_orders.updated_not_before_created"] == (None, "1", False)
    assert folded["customer_segments.r_score_in_range"][1].startswith("1 of ")
    assert folded["customer_segments.r_score_in_range"][1].endswith(" unexpected, e.g. [9]")
    assert folded["audience_members.email_valid"][1].endswith(", e.g. ['sha256:"
                                                               f"{hashlib.sha256(b'no-at-sign.example.com').hexdigest()[:12]}']")

    monkeypatch.setenv("ECRM_GATE_ENGINE", "folded")
    monkeypatch.setenv("ECRM_GATE_DATA_DOCS", "1")
    assert_blocked(day2, bad)
    # GX's Data Docs render the folded results like any checkpoint run's: the failed amount check's page
    site = Path(os.environ["ECRM_GX_PROJECT_DIR"]) / "gx" / "uncommitted" / "data_docs" / "local_site"
    pages = [p.read_text() for p in (site / "validations" / "raw_orders").rglob("*.html")]
    assert any("total_amount" in page and "1 unexpected values found" in page and "-5.0" in page
               for page in pages), len(pages)
    quarantined = {(e, json_key) for e, json_key in conn.execute(
        "select expectation, row_key::text from ops.quality_quarantine where run_date = %s", (DAY2,))}
    assert {e for e, _ in quarantined} == {name.split(".")[1] for name in bad}
    assert ("total_amount_in_range", f'{{"order_id": "{bad_amount}"}}') in quarantined
    assert ("updated_not_before_created", f'{{"order_id": "{bad_update}"}}') in quarantined
