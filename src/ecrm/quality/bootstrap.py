"""Write the GX file context in expectations/gx/ (run once; the JSON it writes is then the source).

`python -m ecrm.quality.bootstrap` recreates the suites from scratch. After that, data people
edit expectations/gx/expectations/*.json directly (docs/quality.md); this module is kept as the
record of how the context was made and to rebuild it after a GX upgrade.

Conventions of the suites:
- one suite per checked table; the day's rows of the raw tables and of the daily marts come from
  SQL query assets restricted with ops.gate_day_start()/ops.gate_day_end()/ops.gate_run_date(),
  which read the run date the gate sets on every connection (see gate.py);
- every expectation has meta.name (stable, used in ops.quality_results and in overrides) and
  meta.severity (blocking | warning; expectations/gate.yml or ECRM_GATE_SEVERITY override it);
- suite meta names the table and its row key, which the quarantine uses (an expectation's own
  meta.table / meta.row_key win: the intermediate_keys suite checks several tables);
- meta.safety = true marks a check that can never be downgraded (gate.SAFETY_CHECKS);
- custom SQL (UnexpectedRowsExpectation) always ends in a LIMIT: GX fetches every row it returns;
- in custom SQL with a JOIN, `{batch}` always has an alias (`{batch} b`): GX then pastes the batch as
  a bare `(subquery)`, which PostgreSQL accepts in FROM only from 16 on (without a JOIN, GX adds
  `AS subselect` itself). tests/reliability/test_gx_batch_alias.py holds both the JSON and this file to it.
"""

from __future__ import annotations

import shutil

from ..email_rule import EMAIL_PATTERN
from ..predict.bounds import PARAMETER_BOUNDS
from ..settings import get_settings
from .gate import CHECKPOINT, SAFETY_CHECKS, gx_context

SEGMENTS = ["Champions", "Loyal", "Potential Loyalist", "New", "Promising", "Need Attention", "About to Sleep",
            "At Risk", "Can't Lose Them", "Hibernating", "Lost", "Prospect"]
# the RFM audiences (seeds/audiences.csv, loyal_reward with its reward cooldown), the forecast's and the
# lifecycle flows' (seeds/flows.csv, docs/flows.md)
AUDIENCES = ["winback", "vip", "nurture", "loyal_reward", "high_value_at_risk", "flow_winback", "flow_welcome", "flow_reengage",
             "flow_vip_thanks", "flow_churn_save", "flow_nudge_60d"]
DISCOUNT_TYPES = ["percentage", "fixed_amount", "shipping", "unknown"]  # stg_shop__order_discounts
FORECAST_AUDIENCES = ["high_value_at_risk"]  # picked by the forecast (no segment of seeds/audiences.csv)
DAY = "{ts} >= ops.gate_day_start() and {ts} < ops.gate_day_end()"
# Share of all customers each segment may hold on a day: (segment, min, max). Edit in the JSON.
SHARE_BOUNDS = [("Champions", 0, 0.3), ("Loyal", 0, 0.3), ("Potential Loyalist", 0, 0.3), ("New", 0, 0.3),
                ("Promising", 0, 0.3), ("Need Attention", 0, 0.3), ("About to Sleep", 0, 0.3), ("At Risk", 0, 0.3),
                ("Can't Lose Them", 0, 0.2), ("Hibernating", 0, 0.4), ("Lost", 0, 0.6), ("Prospect", 0, 0.9)]


# The intermediate tables that feed dim_customers, the RFM snapshot and the sync audiences, with their
# keys: (table, key columns, where). int_web_page_views has no unique index (append-only increments),
# so its check is bounded to the days a build rewrites (web_lookback_days, as dbt's var); the others
# are whole tables (most have a unique index, which two concurrent builds can still drop).
INTERMEDIATE_KEYS = [
    ("int_web_page_views", "page_view_id",
     "t.view_date between b.run_date - ops.gate_setting('web_lookback_days')::int and b.run_date"),
    ("int_web_visitors_identified", "visitor_id", None),
    ("int_customer_web_activity", "customer_id", None),
    ("int_customer_email_flags", "customer_id", None),
    ("int_customer_email_engagement", "customer_id", None),
    ("int_customer_orders_summarized", "customer_id", None),
    ("int_customer_order_windows", "customer_id", None),
    ("int_orders_as_of", "order_id", None),
]
INTERMEDIATE_QUERY = "select ops.gate_run_date() as run_date"


def intermediate_expectations() -> list:
    """The `intermediate_keys` suite: every table present, one row per key (blocking)."""
    from great_expectations import expectations as gxe

    names = ", ".join(f"('{t}')" for t, _, _ in INTERMEDIATE_KEYS)
    out = [gxe.UnexpectedRowsExpectation(
        description="Every intermediate table that feeds the audiences exists (a concurrent build can drop one).",
        unexpected_rows_query=f"select t.name, b.run_date from (values {names}) t(name) cross join {{batch}} b "
                              "where to_regclass('intermediate.' || t.name) is null limit 20",
        meta={"name": "intermediate_tables_exist", "severity": "blocking", "table": "intermediate"})]
    for table, key, where in INTERMEDIATE_KEYS:
        out.append(gxe.UnexpectedRowsExpectation(
            description=f"One row per {key} in intermediate.{table}"
                        + (" (the days a build rewrites: run_date - web_lookback_days .. run_date)." if where
                           else "."),
            unexpected_rows_query=f"select t.{key}, count(*) as copies from intermediate.{table} t "
                                  f"cross join {{batch}} b {f'where {where} ' if where else ''}"
                                  f"group by t.{key} having count(*) > 1 limit 1000",
            meta={"name": f"{table}_{key}_unique", "severity": "blocking", "table": f"intermediate.{table}",
                  "row_key": [key]}))
    return out


def add_intermediate_suite(url: str | None = None) -> None:
    """Add the `intermediate_keys` suite to the existing context and the checkpoint (run once)."""
    from datetime import date

    import great_expectations as gx

    from ..warehouse import resolve_url
    from .config import load_config
    from .gate import gate_url, set_warehouse_url

    url = url or resolve_url()
    context = gx_context(get_settings().expectations_dir)
    set_warehouse_url(context, gate_url(url, date(2000, 1, 1), load_config()))
    source = context.data_sources.get("warehouse")
    asset = source.add_query_asset(name="intermediate@run_date", query=INTERMEDIATE_QUERY)
    suite = context.suites.add(gx.ExpectationSuite(name="intermediate_keys", meta={"table": "intermediate"}))
    for expectation in intermediate_expectations():
        suite.add_expectation(expectation)
    definition = context.validation_definitions.add(gx.ValidationDefinition(
        name="intermediate_keys", data=asset.add_batch_definition_whole_table("run_date"), suite=suite))
    checkpoint = context.checkpoints.get(CHECKPOINT)
    checkpoint.validation_definitions = [*checkpoint.validation_definitions, definition]
    checkpoint.save()


# The forecast's parameters must be positive, finite and not absurd: (model, parameter, min, max).
# BG/NBD in days (alpha is a time scale: a customer's typical wait between purchases lies around
# alpha / r days); Gamma-Gamma q > 1 (else the expected order value is undefined). Edit in the JSON.
PREDICTIONS_QUERY = "select * from marts.fct_customer_predictions_daily where snapshot_date = ops.gate_run_date()"
PREDICTION_NUMBERS = ["p_alive", "expected_orders_30d", "expected_orders_90d", "expected_orders_365d",
                      "expected_order_value", "clv_12m"]


def predictions_expectations() -> list:
    """The `predictions` suite: the run date's forecast (marts.fct_customer_predictions_daily) and the
    fits it used (blocking: dim_customers and the high_value_at_risk audience are built from it).

    The checks of whether the fit can be trusted at all (it converged, its parameters are in bounds,
    its churn bands are not degenerate) carry meta.withholds = "forecast": their failure withholds
    only what depends on the forecast (docs/quality.md, "Withheld forecast"), not the whole publish."""
    from great_expectations import expectations as gxe

    def meta(name: str, severity: str = "blocking") -> dict:
        return {"name": name, "severity": severity}

    def rows(name: str, description: str, query: str, severity: str = "blocking",
             withholds: str | None = None) -> gxe.Expectation:
        assert "limit" in query.lower(), name
        return gxe.UnexpectedRowsExpectation(description=description, unexpected_rows_query=query,
                                             meta=meta(name, severity) | ({"withholds": withholds} if withholds else {}))

    finite = " or ".join(f"{c} in ('NaN', 'Infinity', '-Infinity')" for c in PREDICTION_NUMBERS)
    fits_used = "select distinct fit_date from {batch} b"  # aliased: the query joins (docs/quality.md)
    return [
        gxe.ExpectTableRowCountToBeBetween(min_value=1, meta=meta("predictions_of_day_not_empty")),
        rows("every_buyer_is_scored", "Every customer with a valid order by the end of the run date has the day's "
             "forecast (a missing or partial day would leave dim_customers' p_alive empty).",
             "select o.customer_id from intermediate.int_orders_as_of o left join {batch} b using (customer_id) "
             "where o.is_valid_order and b.customer_id is null limit 1000"),
        gxe.ExpectColumnValuesToBeBetween(column="p_alive", min_value=0, max_value=1, meta=meta("p_alive_in_range")),
        *[gxe.ExpectColumnValuesToBeBetween(column=c, min_value=0, meta=meta(f"{c}_not_negative"))
          for c in PREDICTION_NUMBERS[1:]],
        gxe.ExpectColumnValuesToNotBeNull(column="p_alive", meta=meta("p_alive_not_null")),
        rows("numbers_are_finite", "No prediction is NaN or infinite (a failed fit's numerics).",
             f"select customer_id, {', '.join(PREDICTION_NUMBERS)} from {{batch}} where {finite} limit 1000"),
        gxe.ExpectColumnValuesToBeInSet(column="churn_risk", value_set=["low", "medium", "high"],
                                        meta=meta("churn_risk_accepted")),
        rows("not_all_in_one_churn_band", "Not every customer is in one churn-risk band, once at least "
             "churn_band_min_repeat_buyers customers bought more than once (a one-time buyer's p_alive is 1).",
             "select min(churn_risk) as band, count(*) as customers from {batch} "
             "having count(distinct churn_risk) = 1 and count(*) filter (where repeat_purchases > 0) "
             ">= ops.gate_setting('churn_band_min_repeat_buyers') limit 1", withholds="forecast"),
        rows("fits_converged", "The fits the day's forecast used (its fit_date: the run date, or the last refit "
             "within ECRM_CLV_REFIT_DAYS) exist for both models and converged.",
             "with used as (" + fits_used + "), models (model) as (values ('bgnbd'), ('gamma_gamma')) "
             "select u.fit_date, m.model, f.converged from used u cross join models m "
             "left join marts.fct_clv_model_fits f on f.fit_date = u.fit_date and f.model = m.model "
             "where f.converged is not true limit 20", withholds="forecast"),
        rows("parameters_within_bounds", "Every fitted parameter is a finite number within its bounds "
             "(edit the VALUES list to change them).",
             "with used as (" + fits_used + "), bounds (model, parameter, min_value, max_value) as (values "
             + ", ".join(f"('{m}', '{k}', {lo}, {hi})" for m, k, lo, hi in PARAMETER_BOUNDS)
             + ") select f.fit_date, b.model, b.parameter, f.parameters ->> b.parameter as value "
             "from used u join marts.fct_clv_model_fits f on f.fit_date = u.fit_date "
             "join bounds b on b.model = f.model cross join lateral (select case when (f.parameters ->> b.parameter) "
             "~ '^-?[0-9]+(\\.[0-9]+)?([eE][+-]?[0-9]+)?$' then (f.parameters ->> b.parameter)::float8 end as number) n "
             "where n.number is null or n.number not between b.min_value and b.max_value limit 20",
             withholds="forecast"),
        rows("dim_customers_carries_the_days_forecast", "dim_customers' p_alive, clv_12m and churn_risk are the "
             "run date's forecast (it is built after the forecast, in the build's second dbt invocation).",
             "select c.customer_id from marts.dim_customers c left join {batch} b using (customer_id) "
             "where c.p_alive is distinct from b.p_alive or c.clv_12m is distinct from b.clv_12m "
             "or c.churn_risk is distinct from b.churn_risk limit 1000"),
        rows("high_value_at_risk_members_match_the_forecast", "Every member of the high_value_at_risk audience has "
             "a high churn risk in the day's forecast.",
             "select m.customer_id, b.churn_risk from sync.sync_audience_members m left join {batch} b "
             "using (customer_id) where m.audience = 'high_value_at_risk' and b.churn_risk is distinct from "
             "'high' limit 1000"),
    ]


def add_predictions_suite(url: str | None = None) -> None:
    """Add the `predictions` suite to the existing context and the checkpoint (run once)."""
    from datetime import date

    import great_expectations as gx

    from ..warehouse import resolve_url
    from .config import load_config
    from .gate import gate_url, set_warehouse_url

    url = url or resolve_url()
    context = gx_context(get_settings().expectations_dir)
    set_warehouse_url(context, gate_url(url, date(2000, 1, 1), load_config()))
    source = context.data_sources.get("warehouse")
    asset = source.add_query_asset(name="marts.fct_customer_predictions_daily@run_date", query=PREDICTIONS_QUERY)
    suite = context.suites.add(gx.ExpectationSuite(name="predictions", meta={
        "table": "marts.fct_customer_predictions_daily", "row_key": ["snapshot_date", "customer_id"]}))
    for expectation in predictions_expectations():
        suite.add_expectation(expectation)
    definition = context.validation_definitions.add(gx.ValidationDefinition(
        name="predictions", data=asset.add_batch_definition_whole_table("run_date"), suite=suite))
    checkpoint = context.checkpoints.get(CHECKPOINT)
    checkpoint.validation_definitions = [*checkpoint.validation_definitions, definition]
    checkpoint.save()


def day(ts: str) -> str:
    return DAY.format(ts=ts)


# A web log rotated at 06:25 local time delivers the first hours of the run date with the rest of
# the day before: the complete day the run date's files close is the previous one (docs/formats.md).
PREVIOUS_DAY = "{ts} >= ops.gate_day_start() - interval '1 day' and {ts} < ops.gate_day_start()"


def volume_query(table: str, ts: str, tolerance: str = "volume_tolerance", today_filter: str | None = None,
                 lag_days: int = 0) -> str:
    """One row (today, trailing average) when today's rows (the batch: the run date, or the day
    `lag_days` before it) are off the average of the 7 days before that day."""
    today = f"select count(*) as n from {{batch}} b where {today_filter or 'true'}"
    end = f"ops.gate_day_start() - interval '{lag_days} days'" if lag_days else "ops.gate_day_start()"
    return (
        f"with daily as (select ({ts} at time zone 'UTC')::date as day, count(*) as n from {table} "
        f"where {ts} >= {end} - interval '7 days' and {ts} < {end} group by 1), "
        "history as (select avg(n) as avg_n, count(*) as days from daily), "
        f"today as ({today}) "
        "select today.n as rows_today, round(history.avg_n, 1) as trailing_7d_avg, history.days as history_days, "
        f"ops.gate_setting('{tolerance}') as tolerance from today cross join history "
        "where history.days >= ops.gate_setting('volume_min_history_days') "
        "and abs(today.n - history.avg_n) > ops.gate_setting('volume_min_rows') "
        f"and (today.n > history.avg_n * ops.gate_setting('{tolerance}') "
        f"or today.n < history.avg_n / ops.gate_setting('{tolerance}')) limit 1")


def stage_loaded(stage: str) -> str:
    """Freshness: the day's load of the source was recorded (no {batch}: it is about the ledger)."""
    return (f"select '{stage}' as stage, ops.gate_run_date() as run_date, (select count(*) from {{batch}}) "
            "as rows_of_day where not exists (select 1 from ops.stage_runs s "
            f"where s.stage = '{stage}' and s.run_date = ops.gate_run_date()) limit 1")


def build(url: str | None = None, only: list[str] | None = None) -> None:  # noqa: PLR0915 - one list of suites reads better than many functions
    """Rewrite expectations/gx. GX tests the connection and the query assets while adding them, so it
    needs a warehouse (any day's data will do): `url`, else ECRM_WAREHOUSE_URL or the embedded one.

    `only`: add just these suites (their assets, validation definitions and checkpoint entries) to the
    existing context and leave every other file as it is, edits included: how a new suite joins JSON
    that data people have edited since (`python -m ecrm.quality.bootstrap URL suite ...`)."""
    from datetime import date

    import great_expectations as gx
    from great_expectations import expectations as gxe

    from ..warehouse import resolve_url
    from ..warehouse.migrate import migrate
    from .config import load_config
    from .gate import gate_url, set_warehouse_url

    url = url or resolve_url()
    migrate(url)  # the ops.gate_* functions the query assets call
    root = get_settings().expectations_dir
    if not only:
        shutil.rmtree(root / "gx", ignore_errors=True)
    context = gx_context(root)
    set_warehouse_url(context, gate_url(url, date(2000, 1, 1), load_config()))
    source = (context.data_sources.get("warehouse") if only else
              context.data_sources.add_postgres(name="warehouse", connection_string="${ECRM_GX_WAREHOUSE_URL}"))

    def meta(name: str, severity: str = "blocking") -> dict:
        return {"name": name, "severity": severity}

    def columns(cols: str, name: str = "schema_has_columns") -> gxe.Expectation:
        return gxe.ExpectTableColumnsToMatchSet(column_set=cols.split(","), exact_match=False, meta=meta(name))

    def not_null(col: str, severity: str = "blocking") -> gxe.Expectation:
        return gxe.ExpectColumnValuesToNotBeNull(column=col, meta=meta(f"{col}_not_null", severity))

    def between(col: str, lo=None, hi=None, severity: str = "blocking") -> gxe.Expectation:
        return gxe.ExpectColumnValuesToBeBetween(column=col, min_value=lo, max_value=hi,
                                                 meta=meta(f"{col}_in_range", severity))

    def in_set(col: str, values: list, severity: str = "blocking") -> gxe.Expectation:
        return gxe.ExpectColumnValuesToBeInSet(column=col, value_set=values, meta=meta(f"{col}_accepted", severity))

    def rows(name: str, description: str, query: str, severity: str = "blocking") -> gxe.Expectation:
        assert "limit" in query.lower(), name
        return gxe.UnexpectedRowsExpectation(description=description, unexpected_rows_query=query,
                                             meta=meta(name, severity))

    suites: list[tuple[str, object, dict, list]] = []

    # assets are added when their suite is (GX refuses an asset name twice in `only` mode)
    def query_asset(name: str, query: str):
        return lambda: source.add_query_asset(name=name, query=query)

    def table_asset(schema: str, table: str):
        return lambda: source.add_table_asset(name=f"{schema}.{table}", schema_name=schema, table_name=table)

    # ---- raw.orders: the orders created or updated on the run date -------------------------------
    suites.append(("raw_orders", query_asset(
        "raw.orders@run_date",
        f"select * from raw.orders where {day('created_at')} or {day('updated_at')}"),
        {"table": "raw.orders", "row_key": ["order_id"]}, [
        columns("order_id,customer_id,email,created_at,updated_at,status,currency,total_amount,discount_amount"),
        gxe.ExpectTableRowCountToBeBetween(min_value=1, meta=meta("orders_of_day_not_empty")),
        not_null("order_id"), not_null("customer_id"), not_null("email"), not_null("created_at"),
        gxe.ExpectColumnValuesToBeUnique(column="order_id", meta=meta("order_id_unique")),
        in_set("status", ["placed", "paid", "shipped", "cancelled", "refunded"]),
        gxe.ExpectColumnValuesToMatchRegex(column="currency", regex="^[A-Z]{3}$", meta=meta("currency_iso_4217")),
        between("total_amount", 0, 100000), between("discount_amount", 0, 100000),
        rows("updated_not_before_created", "An order is never updated before it was created.",
             "select order_id, created_at, updated_at from {batch} where updated_at < created_at limit 1000"),
        rows("customer_is_known", "Every order's customer is in raw.customers (guest checkouts create one).",
             "select b.order_id, b.customer_id from {batch} b left join raw.customers c using (customer_id) "
             "where c.customer_id is null limit 1000"),
        rows("volume_vs_trailing_7d", "Orders created on the run date within the tolerance of the trailing "
             "7-day average (expectations/gate.yml: volume_tolerance, volume_min_rows).",
             volume_query("raw.orders", "created_at", today_filter=day("b.created_at"))),
    ]))
    # ---- raw.customers: customers who signed up or changed on the run date -----------------------
    suites.append(("raw_customers", query_asset(
        "raw.customers@run_date",
        f"select * from raw.customers where {day('signed_up_at')} or {day('updated_at')}"),
        {"table": "raw.customers", "row_key": ["customer_id"]}, [
        columns("customer_id,email,first_name,country,signed_up_at,updated_at,accepts_marketing"),
        not_null("customer_id"), not_null("email"), not_null("accepts_marketing"),
        gxe.ExpectColumnValuesToBeUnique(column="customer_id", meta=meta("customer_id_unique")),
        gxe.ExpectColumnValuesToMatchRegex(column="email", regex=EMAIL_PATTERN, mostly=0.99,
                                           meta=meta("email_valid", "warning")),
        rows("email_not_shared", "No two customer records share an e-mail address (a duplicated customer "
             "would be mailed twice).",
             "select b.customer_id, b.email, c.customer_id as other_customer_id from {batch} b "
             "join raw.customers c on lower(trim(c.email)) = lower(trim(b.email)) "
             "and c.customer_id <> b.customer_id limit 1000", "warning"),
        rows("signed_up_not_in_future", "No sign-up after the end of the run date.",
             "select customer_id, signed_up_at from {batch} where signed_up_at >= ops.gate_day_end() limit 1000"),
        rows("volume_vs_trailing_7d", "Sign-ups on the run date within the tolerance of the trailing 7-day average.",
             volume_query("raw.customers", "signed_up_at", today_filter=day("b.signed_up_at")), "warning"),
    ]))
    # ---- raw.order_lines: the lines of the day's orders and lines changed that day ---------------
    suites.append(("raw_order_lines", query_asset(
        "raw.order_lines@run_date",
        f"select l.* from raw.order_lines l where {day('l.updated_at')} or l.order_id in "
        f"(select order_id from raw.orders where {day('created_at')})"),
        {"table": "raw.order_lines", "row_key": ["order_id", "line_number"]}, [
        columns("order_id,line_number,product_id,product_name,category,quantity,unit_price,discount_amount"),
        not_null("order_id"), not_null("product_id"),
        gxe.ExpectCompoundColumnsToBeUnique(column_list=["order_id", "line_number"],
                                            meta=meta("one_row_per_order_line")),
        between("quantity", 1, 1000), between("unit_price", 0, 100000), between("discount_amount", 0, 100000),
        rows("order_is_known", "Every line belongs to a loaded order.",
             "select b.order_id, b.line_number from {batch} b left join raw.orders o using (order_id) "
             "where o.order_id is null limit 1000"),
        rows("every_order_has_lines", "Every order created on the run date has at least one line.",
             "select o.order_id from raw.orders o left join {batch} b using (order_id) "
             f"where {day('o.created_at')} and b.order_id is null limit 1000"),
    ]))
    # ---- raw.web_requests: the access log lines of the last complete day (the day before the run date)
    suites.append(("raw_web_requests", query_asset(
        "raw.web_requests@previous_day", "select * from raw.web_requests where "
        + PREVIOUS_DAY.format(ts="requested_at")),
        {"table": "raw.web_requests", "row_key": ["_file", "_line"]}, [
        columns("requested_at,remote_addr,method,path,status,bytes_sent,user_agent,is_bot,is_static,customer_token"),
        rows("requests_of_day_not_empty", "The day before the run date has requests, once its own logs were "
             "loaded (a shop's first day has no day before).",
             "select ops.gate_run_date() - 1 as day where not exists (select 1 from {batch}) and exists "
             "(select 1 from ops.stage_runs s where s.stage = 'ingest_weblogs' and s.run_date = ops.gate_run_date() - 1) "
             "limit 1"),
        not_null("remote_addr"), not_null("path"), not_null("is_bot"),
        between("status", 100, 599), between("bytes_sent", 0, None),
        in_set("method", ["GET", "POST", "HEAD", "PUT", "DELETE", "OPTIONS", "PATCH"], "warning"),
        rows("logs_cover_the_day", "The run date's logs were loaded (ops.stage_runs) and close the day before "
             "(the last request loaded is at most freshness_hours before the run date starts, UTC).",
             "select max(requested_at) as last_request, ops.gate_day_start() as day_start from (select requested_at "
             "from {batch} union all select requested_at from raw.web_requests where requested_at >= ops.gate_day_start()) "
             "as loaded having max(requested_at) is null or max(requested_at) < ops.gate_day_start() "
             "- make_interval(hours => ops.gate_setting('freshness_hours')::int) "
             "or not exists (select 1 from ops.stage_runs s where s.stage = 'ingest_weblogs' "
             "and s.run_date = ops.gate_run_date()) limit 1"),
        rows("volume_vs_trailing_7d", "Requests of the day before the run date within the tolerance of the "
             "average of the 7 days before it.",
             volume_query("raw.web_requests", "requested_at", lag_days=1)),
    ]))
    # ---- raw.email_events: the day's ESP events (a day without a campaign may have none) ----------
    suites.append(("raw_email_events", query_asset(
        "raw.email_events@run_date", f"select * from raw.email_events where {day('occurred_at')}"),
        {"table": "raw.email_events", "row_key": ["event_id"]}, [
        columns("event_id,event,email,occurred_at,campaign_id,customer_id,bounce_type"),
        not_null("event_id"), not_null("event"), not_null("email"),
        gxe.ExpectColumnValuesToBeUnique(column="event_id", meta=meta("event_id_unique")),
        in_set("event", ["processed", "delivered", "open", "click", "bounce", "unsubscribe", "spamreport",
                         "dropped", "deferred", "group_unsubscribe", "group_resubscribe"]),
        in_set("bounce_type", ["hard", "soft", "blocked"]),
        rows("bounce_has_type", "Every bounce says whether it was hard or soft (hard bounces suppress).",
             "select event_id, email from {batch} where event = 'bounce' and bounce_type is null limit 1000"),
        rows("customer_is_known", "Events that name a customer name a known one.",
             "select b.event_id, b.customer_id from {batch} b left join raw.customers c using (customer_id) "
             "where b.customer_id is not null and c.customer_id is null limit 1000", "warning"),
        rows("email_loaded", "The day's ESP export was loaded (ops.stage_runs).",
             stage_loaded("ingest_email")),
        rows("volume_vs_trailing_7d", "Events on the run date within the tolerance of the trailing 7-day average.",
             volume_query("raw.email_events", "occurred_at"), "warning"),
    ]))
    # ---- marts.dim_customers: everybody as of the run date ------------------------------------------
    suites.append(("dim_customers", table_asset("marts", "dim_customers"),
                   {"table": "marts.dim_customers", "row_key": ["customer_id"]}, [
        columns("customer_id,email,first_name,accepts_marketing,is_valid_email,is_suppressed,is_holdout,"
                "is_contactable,lifecycle_stage,as_of_date"),
        gxe.ExpectTableRowCountToBeBetween(min_value=1, meta=meta("customers_not_empty")),
        not_null("customer_id"), not_null("email"),
        gxe.ExpectColumnValuesToBeUnique(column="customer_id", meta=meta("customer_id_unique")),
        gxe.ExpectColumnValuesToMatchRegex(column="email", regex=EMAIL_PATTERN, mostly=0.98,
                                           meta=meta("email_valid", "warning")),
        in_set("lifecycle_stage", ["prospect", "new", "active", "at_risk", "lapsed"]),
        between("order_count", 0, None), between("net_revenue", 0, None),
        rows("built_for_run_date", "dim_customers was built as of the run date (freshness).",
             "select as_of_date, count(*) as customers from {batch} "
             "where as_of_date is distinct from ops.gate_run_date() group by as_of_date limit 10"),
    ]))
    # ---- the day's RFM segments (published as published.customer_segments) ------------------------
    suites.append(("customer_segments", query_asset(
        "marts.fct_customer_rfm_daily@run_date",
        "select * from marts.fct_customer_rfm_daily where snapshot_date = ops.gate_run_date()"),
        {"table": "marts.fct_customer_rfm_daily", "row_key": ["snapshot_date", "customer_id"]}, [
        columns("snapshot_date,customer_id,recency_days,frequency,monetary,r_score,f_score,m_score,rfm_cell,"
                "segment,is_holdout,is_contactable"),
        gxe.ExpectTableRowCountToBeBetween(min_value=1, meta=meta("segments_of_day_not_empty")),
        not_null("customer_id"), not_null("segment"),
        gxe.ExpectColumnValuesToBeUnique(column="customer_id", meta=meta("one_row_per_customer")),
        in_set("segment", SEGMENTS),
        between("r_score", 1, 5), between("f_score", 1, 5), between("m_score", 1, 5),
        between("recency_days", 0, None), between("frequency", 0, None), between("monetary", 0, None),
        rows("member_is_known_customer", "Every segment member is a known customer (marts.dim_customers).",
             "select s.customer_id, s.segment from {batch} s left join marts.dim_customers c using (customer_id) "
             "where c.customer_id is null limit 1000"),
        rows("every_customer_has_a_segment", "Every customer of marts.dim_customers has a segment on the day.",
             "select c.customer_id from marts.dim_customers c left join {batch} s using (customer_id) "
             "where s.customer_id is null limit 1000"),
        rows("segment_share_in_bounds", "Each segment's share of the day's customers lies within its bounds "
             "(edit the VALUES list to change them).",
             "with bounds (segment, min_share, max_share) as (values "
             + ", ".join(f"('{s.replace(chr(39), chr(39) * 2)}', {lo}, {hi})" for s, lo, hi in SHARE_BOUNDS)
             + "), shares as (select s.segment, count(*)::numeric / sum(count(*)) over () as share "
             "from {batch} s group by s.segment) "
             "select b.segment, round(coalesce(sh.share, 0), 4) as share, b.min_share, b.max_share "
             "from bounds b left join shares sh using (segment) "
             "where coalesce(sh.share, 0) < b.min_share or coalesce(sh.share, 0) > b.max_share limit 20"),
        rows("segment_share_shift_vs_previous_day", "No segment's share moves more than segment_share_max_shift "
             "from the previous snapshot.",
             "with today as (select s.segment, count(*)::numeric / sum(count(*)) over () as share from {batch} s "
             "group by s.segment), before as (select segment, count(*)::numeric / sum(count(*)) over () as share "
             "from marts.fct_customer_rfm_daily where snapshot_date = ops.gate_run_date() - 1 group by segment) "
             "select segment, round(coalesce(t.share, 0), 4) as share, round(coalesce(b.share, 0), 4) as previous "
             "from today t full join before b using (segment) where exists (select 1 from before) "
             "and abs(coalesce(t.share, 0) - coalesce(b.share, 0)) > ops.gate_setting('segment_share_max_shift') "
             "limit 20", "warning"),
        rows("volume_vs_trailing_7d", "Customers in the day's snapshot within segments_volume_tolerance of the "
             "trailing 7 snapshots' average.",
             "with daily as (select snapshot_date, count(*) as n from marts.fct_customer_rfm_daily "
             "where snapshot_date >= ops.gate_run_date() - 7 and snapshot_date < ops.gate_run_date() group by 1), "
             "history as (select avg(n) as avg_n, count(*) as days from daily), "
             "today as (select count(*) as n from {batch} b) "
             "select today.n as rows_today, round(history.avg_n, 1) as trailing_7d_avg, history.days as history_days "
             "from today cross join history where history.days >= 1 "
             "and (today.n > history.avg_n * ops.gate_setting('segments_volume_tolerance') "
             "or today.n < history.avg_n / ops.gate_setting('segments_volume_tolerance')) limit 1"),
    ]))
    # ---- the day's segment summary (published as published.segment_summary) ------------------------
    suites.append(("segment_summary", query_asset(
        "marts.fct_segment_summary_daily@run_date",
        "select * from marts.fct_segment_summary_daily where snapshot_date = ops.gate_run_date()"),
        {"table": "marts.fct_segment_summary_daily", "row_key": ["snapshot_date", "segment"]}, [
        gxe.ExpectTableRowCountToBeBetween(min_value=len(SEGMENTS), max_value=len(SEGMENTS),
                                           meta=meta("one_row_per_segment")),
        in_set("segment", SEGMENTS), between("customer_share", 0, 1), between("customers", 0, None),
        rows("matches_segments", "The summary counts the same customers as the day's segments.",
             "select b.segment, b.customers, count(r.customer_id) as segment_rows from {batch} b "
             "left join marts.fct_customer_rfm_daily r on r.snapshot_date = b.snapshot_date "
             "and r.segment = b.segment group by b.segment, b.customers "
             "having b.customers <> count(r.customer_id) limit 20"),
    ]))
    # ---- sync.sync_audience_members: what the mailer will push -------------------------------------
    suites.append(("audience_members", table_asset("sync", "sync_audience_members"),
                   {"table": "sync.sync_audience_members", "row_key": ["audience", "customer_id"]}, [
        columns("audience,customer_id,email,first_name,segment,snapshot_date"),
        not_null("email"),
        gxe.ExpectColumnValuesToMatchRegex(column="email", regex=EMAIL_PATTERN, meta=meta("email_valid")),
        not_null("customer_id"),
        gxe.ExpectCompoundColumnsToBeUnique(column_list=["audience", "customer_id"],
                                            meta=meta("one_row_per_audience_member")),
        gxe.ExpectCompoundColumnsToBeUnique(column_list=["audience", "email"],
                                            meta=meta("one_row_per_audience_email")),
        in_set("audience", AUDIENCES), in_set("segment", SEGMENTS),
        rows("built_for_run_date", "The audiences were built for the run date (freshness): a rerun of an older "
             "day must never publish another day's audiences.",
             "select snapshot_date, count(*) as members from {batch} "
             "where snapshot_date is distinct from ops.gate_run_date() group by snapshot_date limit 10"),
        rows("no_suppressed_member",
             "No unsubscribed, hard-bounced or complained address in an audience: checked against the raw ESP "
             "events up to the end of the run date (by customer id or address) as well as dim_customers.",
             "select m.audience, m.customer_id, m.email, e.event, e.occurred_at from {batch} m "
             "join raw.email_events e on (e.customer_id = m.customer_id or lower(trim(e.email)) = m.email) "
             "and e.occurred_at < ops.gate_day_end() "
             "and (e.event in ('unsubscribe', 'spamreport', 'group_unsubscribe') "
             "or (e.event = 'bounce' and e.bounce_type = 'hard')) "
             "union all select m.audience, m.customer_id, m.email, 'dim_customers.is_suppressed', null "
             "from {batch} m join marts.dim_customers c using (customer_id) where c.is_suppressed limit 1000"),
        rows("no_holdout_member",
             "No holdout customer in an audience: the holdout hash is recomputed here (holdout_pct), and "
             "dim_customers.is_holdout and sync.sync_holdout_members are checked too.",
             "select m.audience, m.customer_id, m.email from {batch} m "
             "left join marts.dim_customers c using (customer_id) "
             "where (('x' || substr(md5('holdout:' || m.customer_id), 1, 8))::bit(32)::bigint % 100) "
             "< ops.gate_setting('holdout_pct') or c.is_holdout "
             "or exists (select 1 from sync.sync_holdout_members h where h.customer_id = m.customer_id) limit 1000"),
        rows("no_flow_holdout_member", "No flow holdout in a flow audience, and every member of a flow audience "
             "entered that flow within its window (marts.fct_flow_entrants): a member whose entry of that flow is "
             "held out, or whose (customer, flow) hash falls below the holdout percent recorded at entry, is "
             "unexpected.",
             "select m.audience, m.customer_id, m.email from {batch} m join seeds.flows f on f.audience = m.audience "
             "where not exists (select 1 from marts.fct_flow_entrants e where e.customer_id = m.customer_id "
             "and e.flow = f.flow and not e.is_flow_holdout and e.entry_date <= ops.gate_run_date() "
             "and e.entry_date > ops.gate_run_date() - f.window_days) "
             "or exists (select 1 from marts.fct_flow_entrants h where h.customer_id = m.customer_id "
             "and h.flow = f.flow and (h.is_flow_holdout or (('x' || substr(md5('flow:' || h.flow || ':' "
             "|| h.customer_id), 1, 8))::bit(32)::bigint % 100) < h.flow_holdout_pct)) limit 1000"),
        rows("one_flow_per_customer_per_day", "At most one flow entered per customer and day (the highest-priority "
             "one): no pushed member entered two flows on the run date.",
             "select m.customer_id, count(distinct e.flow) as flows_entered from {batch} m "
             "join marts.fct_flow_entrants e on e.customer_id = m.customer_id and e.entry_date = ops.gate_run_date() "
             "group by m.customer_id having count(distinct e.flow) > 1 limit 1000"),
        rows("member_is_contactable", "Every member gave marketing consent and has a valid address (dim_customers).",
             "select m.audience, m.customer_id, m.email from {batch} m join marts.dim_customers c using (customer_id) "
             "where not (c.accepts_marketing and c.is_valid_email) limit 1000"),
        rows("member_is_known_customer", "Every audience member is a known customer.",
             "select m.customer_id from {batch} m left join marts.dim_customers c using (customer_id) "
             "where c.customer_id is null limit 1000"),
        rows("segment_matches_audience", "Each member's segment belongs to the audience (seeds/audiences.csv; "
             "the forecast audiences pick any segment: the predictions suite checks them; a flow audience of "
             "seeds/flows.csv takes any segment) and is the member's segment of the day.",
             "select m.audience, m.customer_id, m.segment from {batch} m "
             "left join seeds.audiences a on a.audience = m.audience and a.segment = m.segment "
             "left join marts.fct_customer_rfm_daily r on r.snapshot_date = ops.gate_run_date() "
             "and r.customer_id = m.customer_id "
             "where (a.audience is null and m.audience <> all(array["
             + ", ".join(f"'{a}'" for a in FORECAST_AUDIENCES) + "]) "
             "and m.audience not in (select f.audience from seeds.flows f)) "
             "or r.segment is distinct from m.segment limit 1000"),
        gxe.ExpectTableRowCountToBeBetween(min_value=1, meta=meta("audiences_not_empty", "warning")),
        rows("volume_vs_previous_publishes", "Members within the tolerance of the average of the last 7 publishes.",
             "with history as (select avg(members) as avg_n, count(*) as days from ops.publish_runs "
             "where as_of_date >= ops.gate_run_date() - 7 and as_of_date < ops.gate_run_date()), "
             "today as (select count(*) as n from {batch} b) "
             "select today.n as rows_today, round(history.avg_n, 1) as trailing_7d_avg from today cross join history "
             "where history.days >= ops.gate_setting('volume_min_history_days') "
             "and abs(today.n - history.avg_n) > ops.gate_setting('volume_min_rows') "
             "and (today.n > history.avg_n * ops.gate_setting('volume_tolerance') "
             "or today.n < history.avg_n / ops.gate_setting('volume_tolerance')) limit 1", "warning"),
    ]))

    # ---- the day's lifetime-value forecast and the fits it used --------------------------------------
    suites.append(("predictions", query_asset("marts.fct_customer_predictions_daily@run_date", PREDICTIONS_QUERY),
                   {"table": "marts.fct_customer_predictions_daily", "row_key": ["snapshot_date", "customer_id"]},
                   predictions_expectations()))

    # ---- discounts (issue 29): what marketing reads about codes; warnings, they feed no push ---------
    suites.append(("discount_performance", query_asset(
        "marts.fct_discount_performance_daily@run_date",
        "select * from marts.fct_discount_performance_daily where order_date = ops.gate_run_date()"),
        {"table": "marts.fct_discount_performance_daily", "row_key": ["order_date", "discount_code"]}, [
        columns("order_date,discount_code,discount_type,orders,customers,new_customers,returning_customers,"
                "gross_revenue,net_revenue,discount_given,avg_order_value"),
        not_null("discount_code", "warning"), not_null("orders", "warning"),
        in_set("discount_type", DISCOUNT_TYPES, "warning"),
        gxe.ExpectCompoundColumnsToBeUnique(column_list=["order_date", "discount_code"],
                                            meta=meta("one_row_per_code_and_day", "warning")),
        between("orders", 1, None, "warning"), between("discount_given", 0, None, "warning"),
        between("net_revenue", 0, None, "warning"),
        rows("customers_are_new_or_returning", "Every customer of a code's orders is new or returning, once.",
             "select discount_code, customers, new_customers, returning_customers from {batch} "
             "where customers <> new_customers + returning_customers limit 20", "warning"),
        rows("discount_within_gross", "A code never takes off more than the orders were worth before discounts, "
             "and net revenue is gross revenue less the discounts.",
             "select discount_code, gross_revenue, net_revenue, discount_given from {batch} "
             "where discount_given > gross_revenue or net_revenue > gross_revenue limit 20", "warning"),
    ]))
    suites.append(("discount_campaigns", query_asset(
        "marts.fct_discount_campaigns@run_date",
        "select * from marts.fct_discount_campaigns where computed_for_date = ops.gate_run_date()"),
        {"table": "marts.fct_discount_campaigns", "row_key": ["campaign_id"]}, [
        not_null("campaign_id", "warning"), not_null("discount_code", "warning"),
        gxe.ExpectColumnValuesToBeUnique(column="campaign_id", meta=meta("one_row_per_campaign", "warning")),
        between("treated_customers", 0, None, "warning"), between("holdout_customers", 0, None, "warning"),
        between("discount_given", 0, None, "warning"),
        rows("intervals_hold_their_estimate", "Each 95% interval contains its estimate (lower <= estimate <= upper).",
             "select campaign_id from {batch} where incremental_orders_per_treated_ci_lower > "
             "incremental_orders_per_treated or incremental_orders_per_treated > incremental_orders_per_treated_ci_upper "
             "or incremental_net_revenue_ci_lower > incremental_net_revenue "
             "or incremental_net_revenue > incremental_net_revenue_ci_upper "
             "or pull_forward_orders_per_treated_30d_ci_lower > pull_forward_orders_per_treated_30d "
             "or pull_forward_orders_per_treated_30d > pull_forward_orders_per_treated_30d_ci_upper limit 20", "warning"),
        rows("windows_complete_in_order", "The 60 days after a window end after its 30 days, which end after the "
             "window itself: a later period is never complete before an earlier one.",
             "select campaign_id from {batch} where (is_60d_after_complete and not is_30d_after_complete) "
             "or (is_30d_after_complete and not is_window_complete) limit 20", "warning"),
    ]))

    # ---- loyalty (issue 29): the run date's row of the points ledger mart; warnings, it feeds no push -
    suites.append(("loyalty_daily", query_asset(
        "marts.fct_loyalty_daily@run_date",
        "select * from marts.fct_loyalty_daily where ledger_date = ops.gate_run_date()"),
        {"table": "marts.fct_loyalty_daily", "row_key": ["ledger_date"]}, [
        gxe.ExpectTableRowCountToBeBetween(min_value=0, max_value=1, meta=meta("one_row_per_day", "warning")),
        between("points_earned", 0, None, "warning"), between("points_redeemed", 0, None, "warning"),
        between("points_expired", 0, None, "warning"), between("outstanding_points", 0, None, "warning"),
        rows("outstanding_is_the_ledgers_sum", "The outstanding points are the signed sum of every ledger event "
             "loaded up to the end of the run date (raw.loyalty_events, independent of dbt).",
             "select b.ledger_date, b.outstanding_points, l.total from {batch} b cross join "
             "(select coalesce(sum(points), 0) as total from raw.loyalty_events "
             "where occurred_at < ops.gate_day_end()) l where b.outstanding_points <> l.total limit 1", "warning"),
    ]))

    # ---- the intermediate tables behind the audiences: present, one row per key --------------------
    suites.append(("intermediate_keys", query_asset("intermediate@run_date", INTERMEDIATE_QUERY),
                   {"table": "intermediate"}, intermediate_expectations()))

    unknown = set(only or ()) - {name for name, *_ in suites}
    if unknown:
        raise ValueError(f"no suite named {', '.join(sorted(unknown))}")
    definitions = []
    for name, add_asset, suite_meta, expectations in suites:
        if only and name not in only:
            continue
        asset = add_asset()
        suite = context.suites.add(gx.ExpectationSuite(name=name, meta=suite_meta))
        for expectation in expectations:
            if f"{name}.{expectation.meta['name']}" in SAFETY_CHECKS:
                expectation.meta["safety"] = True
            suite.add_expectation(expectation)
        batch = asset.add_batch_definition_whole_table("run_date" if "@" in asset.name else "whole_table")
        definitions.append(context.validation_definitions.add(
            gx.ValidationDefinition(name=name, data=batch, suite=suite)))
    if only:
        checkpoint = context.checkpoints.get(CHECKPOINT)
        checkpoint.validation_definitions = [*checkpoint.validation_definitions, *definitions]
        checkpoint.save()
        return
    context.checkpoints.add(gx.Checkpoint(
        # Data Docs are built by the gate once per run (gate.run_checkpoint), not by an action per validation.
        name=CHECKPOINT, validation_definitions=definitions, actions=[],
        result_format={"result_format": "SUMMARY"}))
    context.variables.progress_bars = {"globally": False}
    context.variables.save()


if __name__ == "__main__":
    import sys

    build(sys.argv[1] if len(sys.argv) > 1 else None, sys.argv[2:] or None)
