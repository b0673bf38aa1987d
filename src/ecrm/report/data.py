"""The report's figures: SQL over the daily marts, read as the BI role.

Every query reads `marts.*` or `published.*` under `set role ecrm_bi_reader` (when the role exists
and the login may take it), so the report proves that what BI can see is enough; only the data
health section reads `ops.*` (load ledger, gate results) as the connecting login. No query selects
an identifier beyond customer ids, and no customer-level row leaves the database: every query
aggregates (per day, segment, stage, campaign, page, percentile).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from decimal import Decimal

import psycopg
from psycopg import errors
from psycopg.rows import dict_row

BI_ROLE = "ecrm_bi_reader"  # dbt var bi_reader_role
GATE_CHECKPOINT = "publish_gate"
TREND_DAYS = 90     # segment sizes and the Pareto share over time
SHORT_TREND_DAYS = 30  # revenue, site and campaigns
MOVE_DAYS = 7       # segment movements

# Best to worst: moving down this list is "slipping", up it is "moving up".
SEGMENT_ORDER = ["Champions", "Loyal", "Potential Loyalist", "New", "Promising", "Need Attention",
                 "About to Sleep", "Can't Lose Them", "At Risk", "Hibernating", "Lost", "Prospect"]
LIFECYCLE_ORDER = ["prospect", "new", "active", "at_risk", "lapsed", "lost"]


class ReportDataMissing(RuntimeError):
    """The marts hold nothing for the day: build it first (`ecrm build DAY`)."""


@dataclass
class ReportData:
    day: date
    read_as: str
    days: dict[str, date]                       # day, prev_day, prev_week
    headline: dict[date, dict] = field(default_factory=dict)
    revenue_daily: list[dict] = field(default_factory=list)
    segments_today: list[dict] = field(default_factory=list)
    segments_prev: dict[date, dict[str, dict]] = field(default_factory=dict)
    segment_series: list[dict] = field(default_factory=list)
    movements: list[dict] = field(default_factory=list)
    pareto_curve: list[dict] = field(default_factory=list)
    pareto_series: list[dict] = field(default_factory=list)
    lifecycle: dict[date, dict[str, int]] = field(default_factory=dict)
    campaigns: list[dict] = field(default_factory=list)
    campaigns_as_of: date | None = None
    # the site section's days: the last complete web day on or before `day` and the days it is
    # compared with (marts.fct_source_completeness_daily); only complete days are compared
    site_days: dict[str, date] = field(default_factory=dict)
    site_complete: dict[date, bool] = field(default_factory=dict)
    # the newest day of each source when it is partial: {source: {"day", "reason", "covered_until"}}
    partial: dict[str, dict] = field(default_factory=dict)
    web: dict[date, dict] = field(default_factory=dict)
    web_series: list[dict] = field(default_factory=list)
    top_pages: list[dict] = field(default_factory=list)
    audiences: list[dict] | None = None
    # the lifetime-value backtest on or before the day: {"run": fct_clv_backtest_runs row, "groups": [...]}
    backtest: dict | None = None
    loads: dict[date, list[dict]] = field(default_factory=dict)
    quarantine_codes: list[dict] = field(default_factory=list)
    gate: dict[date, dict] = field(default_factory=dict)
    gate_findings: list[dict] = field(default_factory=list)
    published: dict | None = None
    # discounts and loyalty (issue 29): codes and discount campaigns of the last 30 days, the loyalty
    # ledger of the last 90 days and members vs other buyers on the day (empty: no codes, no program)
    codes: list[dict] = field(default_factory=list)
    discount_campaigns: list[dict] = field(default_factory=list)
    loyalty_series: list[dict] = field(default_factory=list)
    loyalty_groups: list[dict] = field(default_factory=list)
    # what the day's publish withheld (ops.publish_runs.withheld), e.g. {"forecast": {"reason", "checks",
    # "audiences": {name: members kept}}}: the forecast could not be trusted, its audiences stayed frozen
    withheld: dict | None = None


def _rows(conn: psycopg.Connection, query: str, params: dict) -> list[dict]:
    with conn.cursor(row_factory=dict_row) as cur:
        return [{k: float(v) if isinstance(v, Decimal) else v for k, v in row.items()}
                for row in cur.execute(query, params).fetchall()]


def _take_bi_role(conn: psycopg.Connection) -> str:
    """`set role` to the BI reader when possible; returns the role the marts are read as."""
    if conn.execute("select exists (select 1 from pg_roles where rolname = %s)", (BI_ROLE,)).fetchone()[0]:
        try:
            conn.execute(f'set role "{BI_ROLE}"')
            return BI_ROLE
        except errors.InsufficientPrivilege:
            pass
    return conn.execute("select current_user").fetchone()[0]


def _require_marts(conn: psycopg.Connection, day: date) -> None:
    """A warehouse never built has no marts: say so, instead of the BI role's `permission denied for schema`."""
    from ..warehouse.migrate import require_migrated

    require_migrated(conn)
    if conn.execute("select to_regclass('marts.fct_segment_summary_daily') is null").fetchone()[0]:
        raise ReportDataMissing(f"the warehouse has no marts yet: load and build the day first (ecrm build {day})")


def load(conn: psycopg.Connection, day: date) -> ReportData:
    """Every figure of `day`'s report (conn: autocommit, any login that can read marts and ops)."""
    p = {"d": day, "d1": day - timedelta(days=1), "d7": day - timedelta(days=7),
         "since90": day - timedelta(days=TREND_DAYS - 1), "since30": day - timedelta(days=SHORT_TREND_DAYS - 1),
         "since7": day - timedelta(days=MOVE_DAYS - 1), "since14": day - timedelta(days=2 * MOVE_DAYS - 1),
         "start": datetime.combine(day, time(0), tzinfo=UTC)}
    p["starts"] = [datetime.combine(p[k], time(0), tzinfo=UTC) for k in ("d", "d1", "d7")]
    compare = [p["d"], p["d1"], p["d7"]]
    _require_marts(conn, day)
    try:
        read_as = _take_bi_role(conn)
        data = ReportData(day=day, read_as=read_as, days={"day": p["d"], "prev_day": p["d1"], "prev_week": p["d7"]})
        _marts(conn, data, p, compare)
        data.backtest = _backtest(conn, p)
        _rewards(conn, data, p)
        data.audiences = _published(conn)
    finally:
        conn.execute("reset role")
    _ops(conn, data, p, compare)
    return data


def _marts(conn, data: ReportData, p: dict, compare: list[date]) -> None:
    summary = _rows(conn, """
        select snapshot_date, segment, customers, contactable_customers, holdout_customers, revenue,
               total_customers, total_revenue, customer_share, revenue_share
        from marts.fct_segment_summary_daily where snapshot_date = any(%(days)s)""", {**p, "days": compare})
    if not any(r["snapshot_date"] == p["d"] for r in summary):
        raise ReportDataMissing(f"marts.fct_segment_summary_daily holds no rows for {p['d']}: build the day first "
                                f"(ecrm build {p['d']})")
    by_day: dict[date, dict[str, dict]] = {d: {} for d in compare}
    for r in summary:
        by_day[r["snapshot_date"]][r["segment"]] = r
    rank = {s: i for i, s in enumerate(SEGMENT_ORDER)}
    data.segments_today = sorted(by_day[p["d"]].values(), key=lambda r: rank.get(r["segment"], 99))
    data.segments_prev = {d: by_day[d] for d in compare[1:]}

    heads = _rows(conn, """
        with days as (select unnest(%(days)s::date[]) as day)
        select
            days.day,
            (select max(s.total_customers) from marts.fct_segment_summary_daily as s
             where s.snapshot_date = days.day) as customers,
            k.active_customers, k.top_customers, k.top_customers_revenue, k.total_revenue as rfm_window_revenue,
            k.top_customers_revenue_share,
            a.orders, a.revenue, a.attributed_orders, a.attributed_revenue, a.organic_orders, a.organic_revenue,
            a.attributed_revenue_share,
            round(a.revenue / nullif(a.orders, 0), 2) as average_order_value
        from days
        left join marts.fct_rfm_kpis_daily as k on k.snapshot_date = days.day
        left join marts.fct_attribution_daily as a on a.order_date = days.day""", {**p, "days": compare})
    data.headline = {r["day"]: r for r in heads}
    data.revenue_daily = _rows(conn, """
        select order_date, orders, revenue, attributed_revenue, organic_revenue
        from marts.fct_attribution_daily where order_date between %(since30)s and %(d)s order by order_date""", p)

    data.segment_series = _rows(conn, """
        select snapshot_date, segment, customers from marts.fct_segment_summary_daily
        where snapshot_date between %(since90)s and %(d)s order by snapshot_date, segment""", p)
    data.movements = _rows(conn, """
        select from_segment, to_segment,
               count(*) filter (where transition_date >= %(since7)s) as customers,
               count(*) filter (where transition_date < %(since7)s) as customers_week_before
        from marts.fct_segment_transitions
        where transition_date between %(since14)s and %(d)s
        group by from_segment, to_segment""", p)

    # The Pareto curve in 100 points: the share of the window's revenue from the top k% of buyers.
    data.pareto_curve = _rows(conn, """
        with ranked as (
            select monetary, row_number() over (order by monetary desc, customer_id) as rn,
                   count(*) over () as n
            from marts.fct_customer_rfm_daily where snapshot_date = %(d)s and frequency > 0
        ),
        pct as (
            select ceil(rn * 100.0 / n)::int as customer_pct, sum(monetary) as revenue from ranked group by 1
        )
        select customer_pct, round(sum(revenue) over (order by customer_pct)
                                   / nullif(sum(revenue) over (), 0), 6) as revenue_share
        from pct order by customer_pct""", p)
    data.pareto_series = _rows(conn, """
        select snapshot_date, active_customers, top_customers, top_customers_revenue, total_revenue,
               top_customers_revenue_share
        from marts.fct_rfm_kpis_daily where snapshot_date between %(since90)s and %(d)s order by snapshot_date""", p)

    stages = _rows(conn, """
        select snapshot_date, lifecycle_stage, count(*) as customers from marts.fct_customer_rfm_daily
        where snapshot_date = any(%(days)s) group by snapshot_date, lifecycle_stage""", {**p, "days": compare})
    data.lifecycle = {d: dict.fromkeys(LIFECYCLE_ORDER, 0) for d in compare}
    for r in stages:
        data.lifecycle[r["snapshot_date"]][r["lifecycle_stage"]] = r["customers"]

    data.campaigns = _rows(conn, """
        select campaign_id, campaign_name, audience, variant, sent_at, sent_date, as_of_date,
               is_attribution_window_complete, recipients, delivered, human_openers, clickers, converters,
               attributed_orders, attributed_revenue, open_rate, click_rate, conversion_rate,
               holdout_customers, holdout_converters, treated_conversion_rate, holdout_conversion_rate,
               absolute_lift, absolute_lift_ci_lower, absolute_lift_ci_upper, relative_lift,
               minimum_detectable_lift, holdout_needed_for_target_lift
        from marts.fct_campaign_kpis where sent_date between %(since30)s and %(d)s
        order by sent_at, campaign_id""", p)
    data.campaigns_as_of = data.campaigns[0]["as_of_date"] if data.campaigns else None

    w = _site_days(conn, data, p)
    web = _rows(conn, """
        select kpi_date, sessions, visitors, new_visitors, returning_visitors, page_views, pages_per_session,
               bounced_sessions, bounce_rate, converting_sessions, session_conversion_rate, engaged_sessions,
               avg_session_duration_seconds
        from marts.fct_web_kpis_daily where kpi_date = any(%(days)s)""", {**w, "days": [w["d"], w["d1"], w["d7"]]})
    # only whole days are compared: a partial day is left out (n/a), never shown as if whole
    data.web = {r["kpi_date"]: r for r in web if data.site_complete.get(r["kpi_date"], False)
                or r["kpi_date"] == w["d"]}
    data.web_series = _rows(conn, """
        select kpi_date, sessions, new_visitors, returning_visitors, session_conversion_rate
        from marts.fct_web_kpis_daily where kpi_date between %(since30)s and %(d)s order by kpi_date""", w)
    if not data.site_complete.get(w["d"], False):
        data.web_series = [r for r in data.web_series if r["kpi_date"] != w["d"]]
    data.top_pages = _rows(conn, """
        select t.page_rank, t.path, t.page_views, t.unique_visitors, t.entrances, t.exits,
               case when %(c1)s then y.page_views end as page_views_prev_day,
               case when %(c7)s then w.page_views end as page_views_prev_week
        from marts.fct_web_pages_daily as t
        left join marts.fct_web_pages_daily as y on y.view_date = %(d1)s and y.path = t.path
        left join marts.fct_web_pages_daily as w on w.view_date = %(d7)s and w.path = t.path
        where t.view_date = %(d)s and t.page_rank <= 10 order by t.page_rank""",
                           {**w, "c1": data.site_complete[w["d1"]], "c7": data.site_complete[w["d7"]]})


def _site_days(conn, data: ReportData, p: dict) -> dict:
    """The site section's days from marts.fct_source_completeness_daily: the last complete web-log day
    on or before the run date (the run date itself holds only the hours before the log's rotation
    until the next file arrives), the day before it and a week before, and which of them are complete.
    Also records each source's partial run day in data.partial. A warehouse without the mart (built
    before it existed) keeps the run date and counts every day as complete."""
    rows = None
    if conn.execute("select to_regclass('marts.fct_source_completeness_daily') is not null").fetchone()[0]:
        rows = _rows(conn, """
            select source, event_date as day, complete, reason, covered_until
            from marts.fct_source_completeness_daily where event_date between %(since30)s and %(d)s""", p)
    if rows is None:
        day = p["d"]
        known = None
    else:
        known = {(r["source"], r["day"]): r for r in rows}
        for source in ("web_logs", "email_events"):
            r = known.get((source, p["d"]))
            if r and not r["complete"]:
                data.partial[source] = r
        complete_days = [r["day"] for r in rows if r["source"] == "web_logs" and r["complete"]]
        day = max(complete_days, default=p["d"])
    w = {"d": day, "d1": day - timedelta(days=1), "d7": day - timedelta(days=7),
         "since30": day - timedelta(days=SHORT_TREND_DAYS - 1)}
    data.site_days = {"day": w["d"], "prev_day": w["d1"], "prev_week": w["d7"]}
    if known is None:
        data.site_complete = dict.fromkeys((w["d"], w["d1"], w["d7"]), True)
    else:
        # days before the mart's 30 days: read them alone (the week before can be older)
        for d in (w["d1"], w["d7"]):
            if ("web_logs", d) not in known:
                one = _rows(conn, "select source, event_date as day, complete, reason, covered_until from "
                                  "marts.fct_source_completeness_daily where source = 'web_logs' and "
                                  "event_date = %(x)s",
                            {"x": d})
                if one:
                    known[("web_logs", d)] = one[0]
        data.site_complete = {d: bool((known.get(("web_logs", d)) or {}).get("complete")) for d in
                              (w["d"], w["d1"], w["d7"])}
    return w


def _backtest(conn, p: dict) -> dict | None:
    """The latest backtest of the forecast on or before the day (it runs with each refit), with its
    table per number of calibration repeat purchases; None before the first one."""
    try:
        runs = _rows(conn, """
            select snapshot_date, status, skipped_reason, calibration_start, calibration_end, holdout_days,
                   customers, converged
            from marts.fct_clv_backtest_runs where snapshot_date <= %(d)s
            order by snapshot_date desc limit 1""", p)
        if not runs:
            return None
        groups = _rows(conn, """
            select calibration_repeat_purchases, customers, predicted_orders_mean, actual_orders_mean
            from marts.fct_clv_backtest where snapshot_date = %(b)s
            order by calibration_repeat_purchases""", {"b": runs[0]["snapshot_date"]})
    except (errors.UndefinedTable, errors.InsufficientPrivilege):
        return None
    return {"run": runs[0], "groups": groups}


def _rewards(conn, data: ReportData, p: dict) -> None:
    """Discount codes and discount campaigns of the last 30 days, the loyalty ledger of the last 90."""
    data.codes = _rows(conn, """
        select discount_code, min(discount_type) as discount_type, sum(orders) as orders,
               sum(customers) as customer_days, sum(net_revenue) as net_revenue, sum(discount_given) as discount_given
        from marts.fct_discount_performance_daily where order_date between %(since30)s and %(d)s
        group by discount_code order by sum(orders) desc, discount_code limit 10""", p)
    data.discount_campaigns = _rows(conn, """
        select campaign_id, campaign_name, audience, discount_code, sent_at, is_window_complete,
               treated_customers, holdout_customers, discount_given,
               incremental_orders, incremental_orders_ci_lower, incremental_orders_ci_upper,
               incremental_net_revenue, incremental_net_revenue_ci_lower, incremental_net_revenue_ci_upper,
               return_per_discount, return_per_discount_ci_lower, return_per_discount_ci_upper
        from marts.fct_discount_campaigns where sent_date between %(since30)s and %(d)s
        order by sent_at, campaign_id""", p)
    data.loyalty_series = _rows(conn, """
        select ledger_date, points_earned, points_redeemed, points_expired, outstanding_points,
               outstanding_liability, members, active_members
        from marts.fct_loyalty_daily where ledger_date between %(since90)s and %(d)s order by ledger_date""", p)
    data.loyalty_groups = _rows(conn, """
        select customer_group, buyers, repeat_rate, revenue_365d_per_buyer
        from marts.fct_loyalty_members_vs_others where as_of_date = %(d)s order by customer_group""", p)


def _published(conn) -> list[dict] | None:
    """The audiences pushed to the mailer (None: published.* not readable, e.g. before the first publish)."""
    try:
        return _rows(conn, """
            select audience, segment, as_of_date, count(*) as members from published.audience_members
            group by audience, segment, as_of_date order by audience, segment""", {})
    except (errors.UndefinedTable, errors.InsufficientPrivilege, errors.InvalidSchemaName):
        return None


def _ops(conn, data: ReportData, p: dict, compare: list[date]) -> None:
    """Data health, from ops.* (as the connecting login: the load ledger and the gate's results)."""
    if conn.execute("select to_regclass('ops.load_ledger') is not null").fetchone()[0]:
        loads = _rows(conn, """
            with latest as (
                select distinct on (source, file, interval_start) source, interval_start, rows_loaded,
                       rows_quarantined
                from ops.load_ledger where status = 'succeeded' and interval_start = any(%(starts)s)
                order by source, file, interval_start, load_id desc
            )
            select (interval_start at time zone 'UTC')::date as day, source, count(*) as files,
                   coalesce(sum(rows_loaded), 0) as rows_loaded, coalesce(sum(rows_quarantined), 0) as rows_quarantined
            from latest group by 1, source order by source""", p)
        data.loads = {d: [r for r in loads if r["day"] == d] for d in compare}
    if conn.execute("select to_regclass('ops.quality_results') is not null").fetchone()[0]:
        gate = _rows(conn, """
            select run_date, count(*) as checks, count(*) filter (where passed) as passed,
                   count(*) filter (where not passed and blocking) as failed,
                   count(*) filter (where not passed and not blocking and withheld is null) as warnings,
                   count(*) filter (where not passed and withheld is not null) as withheld
            from ops.quality_results
            where run_date = any(%(days)s) and checkpoint = %(cp)s and suite <> 'quarantine'
            group by run_date""", {**p, "days": compare, "cp": GATE_CHECKPOINT})
        data.gate = {r["run_date"]: r for r in gate}
        data.gate_findings = _rows(conn, """
            select suite, expectation, column_name, observed_value, blocking, override_severity, withheld
            from ops.quality_results
            where run_date = %(d)s and checkpoint = %(cp)s and suite <> 'quarantine' and not passed
            order by blocking desc, suite, expectation""", {**p, "cp": GATE_CHECKPOINT})
        data.quarantine_codes = _rows(conn, """
            select split_part(expectation, '.', 1) as source, split_part(expectation, '.', 2) as reason,
                   observed_value::bigint as lines
            from ops.quality_results
            where run_date = %(d)s and checkpoint = %(cp)s and suite = 'quarantine'
            order by observed_value::bigint desc, expectation limit 10""", {**p, "cp": GATE_CHECKPOINT})
    if conn.execute("select to_regclass('ops.stage_runs') is not null").fetchone()[0]:
        # The publish stage's row (the DAG's report runs after the publish, beside the push); days
        # published before the three-stage split have only the whole unit's row.
        rows = _rows(conn, "select finished_at, detail from ops.stage_runs where stage in ('publish', "
                           "'publish_segments') and run_date = %(d)s order by stage = 'publish' desc limit 1", p)
        data.published = rows[0] if rows else None
    if conn.execute("select to_regclass('ops.publish_runs') is not null").fetchone()[0]:
        rows = _rows(conn, "select withheld from ops.publish_runs where as_of_date = %(d)s", p)
        data.withheld = rows[0]["withheld"] if rows else None
