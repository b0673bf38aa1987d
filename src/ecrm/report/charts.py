"""The report's charts as Vega-Lite specs (altair), drawn by vega-embed in the browser and rendered to
PNG by vl-convert for the e-mail. Data goes in as small aggregated lists (never customer rows)."""

from __future__ import annotations

from datetime import date

import altair as alt

from ..settings import report_currency
from .data import LIFECYCLE_ORDER, SEGMENT_ORDER, ReportData

WIDTH = 620
SEGMENT_COLOURS = ["#1b7837", "#5aae61", "#a6dba0", "#74add1", "#4575b4", "#fee090", "#fdae61",
                   "#d73027", "#f46d43", "#a50026", "#762a83", "#bababa"]
STAGE_LABELS = {"prospect": "Prospect", "new": "New", "active": "Active", "at_risk": "At risk",
                "lapsed": "Lapsed", "lost": "Lost"}


def _iso(value) -> str:
    return value.isoformat() if isinstance(value, date) else str(value)


def _values(rows: list[dict]) -> alt.Data:
    return alt.Data(values=[{k: _iso(v) if isinstance(v, date) else v for k, v in r.items()} for r in rows])


def _spec(chart: alt.TopLevelMixin) -> dict:
    spec = chart.configure_view(stroke=None).configure_axis(labelFontSize=11, titleFontSize=11).to_dict()
    spec.pop("$schema", None)  # a URL vega-embed never fetches; the page carries no outside reference at all
    return spec


def campaign_label(c: dict) -> str:
    variant = f" [{c['variant']}]" if c.get("variant") else ""
    status = "" if c["is_attribution_window_complete"] else " (window open)"
    return f"{c['campaign_name']}{variant} · {c['sent_date'].strftime('%d %b')}{status}"


def backtest_label(group: int, top: int = 7) -> str:
    """0 … 6, and "7+" for the last group (7 or more calibration repeat purchases)."""
    return f"{group}+" if group >= top else str(group)


def build(data: ReportData) -> dict[str, dict]:
    """Chart id -> Vega-Lite spec; a chart whose data is empty is left out (the template says so)."""
    charts: dict[str, dict] = {}
    segment_scale = alt.Scale(domain=SEGMENT_ORDER, range=SEGMENT_COLOURS)

    if data.revenue_daily:
        rows = [{"order_date": r["order_date"], "channel": channel, "revenue": r[column] or 0}
                for r in data.revenue_daily
                for channel, column in (("E-mail (last touch)", "attributed_revenue"), ("Organic", "organic_revenue"))]
        charts["revenue"] = _spec(alt.Chart(_values(rows), title="Revenue per day, e-mail vs organic").mark_bar().encode(
            x=alt.X("order_date:T", title=None, axis=alt.Axis(format="%d %b")),
            y=alt.Y("sum(revenue):Q", title=f"Revenue ({report_currency()})"),
            color=alt.Color("channel:N", title=None, scale=alt.Scale(range=["#d95f02", "#7570b3"]),
                            legend=alt.Legend(orient="top")),
            tooltip=["order_date:T", "channel:N", alt.Tooltip("revenue:Q", format=",.2f")],
        ).properties(width=WIDTH, height=200))

    if data.segment_series:
        charts["segments"] = _spec(alt.Chart(_values(data.segment_series),
                                             title="Customers per segment (last 90 days)").mark_area().encode(
            x=alt.X("snapshot_date:T", title=None, axis=alt.Axis(format="%d %b")),
            y=alt.Y("customers:Q", stack="zero", title="Customers"),
            color=alt.Color("segment:N", scale=segment_scale, sort=SEGMENT_ORDER, title="Segment"),
            order=alt.Order("order:Q"),
            tooltip=["snapshot_date:T", "segment:N", alt.Tooltip("customers:Q", format=",")],
        ).transform_calculate(order=f"indexof({SEGMENT_ORDER!r}, datum.segment)").properties(width=WIDTH, height=260))

    moves = [m for m in data.movements if m["customers"]]
    if moves:
        base = alt.Chart(_values(moves), title="Customers moving between segments (7 days)").encode(
            x=alt.X("to_segment:N", sort=SEGMENT_ORDER, title="to", axis=alt.Axis(labelAngle=-35, orient="top")),
            y=alt.Y("from_segment:N", sort=SEGMENT_ORDER, title="from"))
        charts["movements"] = _spec((base.mark_rect().encode(
            color=alt.Color("customers:Q", scale=alt.Scale(scheme="blues"), title="Customers"),
            tooltip=["from_segment:N", "to_segment:N", alt.Tooltip("customers:Q", format=",")])
            + base.mark_text(fontSize=10).encode(text=alt.Text("customers:Q", format=","))
        ).properties(width=WIDTH - 120, height=300))

    if data.pareto_curve:
        curve = alt.Chart(_values(data.pareto_curve), title=f"Revenue concentration on {data.day:%d %b %Y}").mark_line(
            color="#7570b3").encode(
            x=alt.X("customer_pct:Q", title="Top % of buyers (by revenue in the RFM window)",
                    scale=alt.Scale(domain=[0, 100])),
            y=alt.Y("revenue_share:Q", title="Share of revenue", axis=alt.Axis(format="%"),
                    scale=alt.Scale(domain=[0, 1])),
            tooltip=["customer_pct:Q", alt.Tooltip("revenue_share:Q", format=".1%")])
        marker = alt.Chart(alt.Data(values=[{"x": 20}])).mark_rule(strokeDash=[4, 4], color="#999").encode(x="x:Q")
        charts["pareto"] = _spec((curve + marker).properties(width=WIDTH // 2 - 20, height=220))
    if data.pareto_series:
        charts["pareto_trend"] = _spec(alt.Chart(_values(data.pareto_series),
                                                 title="Top-20% share over time").mark_line(point=True).encode(
            x=alt.X("snapshot_date:T", title=None, axis=alt.Axis(format="%d %b")),
            y=alt.Y("top_customers_revenue_share:Q", title="Share of revenue", axis=alt.Axis(format="%"),
                    scale=alt.Scale(zero=False)),
            tooltip=["snapshot_date:T", alt.Tooltip("top_customers_revenue_share:Q", format=".1%")],
        ).properties(width=WIDTH // 2 - 20, height=220))

    today = data.lifecycle.get(data.day, {})
    if any(today.values()):
        rows = [{"stage": STAGE_LABELS[s], "order": i, "customers": today.get(s, 0)}
                for i, s in enumerate(LIFECYCLE_ORDER)]
        base = alt.Chart(_values(rows), title=f"Lifecycle stages on {data.day:%d %b %Y}").encode(
            y=alt.Y("stage:N", sort=[STAGE_LABELS[s] for s in LIFECYCLE_ORDER], title=None),
            x=alt.X("customers:Q", title="Customers"))
        charts["lifecycle"] = _spec((base.mark_bar(color="#4575b4") + base.mark_text(align="left", dx=3).encode(
            text=alt.Text("customers:Q", format=","))).properties(width=WIDTH - 120, height=180))

    groups = (data.backtest or {}).get("groups") or []
    if groups:
        labels = [backtest_label(g["calibration_repeat_purchases"]) for g in groups]
        rows = [{"repeat_purchases": label, "series": series, "orders": g[column], "customers": g["customers"]}
                for label, g in zip(labels, groups, strict=True)
                for series, column in (("Predicted", "predicted_orders_mean"), ("Actual", "actual_orders_mean"))]
        run = data.backtest["run"]
        charts["backtest"] = _spec(alt.Chart(
            _values(rows), title=f"Backtest: orders per customer in the {run['holdout_days']} days to "
                                 f"{run['snapshot_date']:%d %b}, predicted vs actual").mark_line(point=True).encode(
            x=alt.X("repeat_purchases:O", sort=labels, title="Repeat purchases in the calibration period",
                    axis=alt.Axis(labelAngle=0)),
            y=alt.Y("orders:Q", title="Purchase days per customer"),
            color=alt.Color("series:N", title=None, scale=alt.Scale(domain=["Predicted", "Actual"],
                                                                    range=["#7570b3", "#d95f02"]),
                            legend=alt.Legend(orient="top")),
            tooltip=["repeat_purchases:O", "series:N", alt.Tooltip("orders:Q", format=".3f"),
                     alt.Tooltip("customers:Q", format=",")],
        ).properties(width=WIDTH - 120, height=220))

    if data.campaigns:
        labels = [campaign_label(c) for c in data.campaigns]
        rows = [{"campaign": label, "step": step, "order": i, "rate": (c[num] / c["delivered"]) if c["delivered"] else 0,
                 "count": c[num], "delivered": c["delivered"]}
                for label, c in zip(labels, data.campaigns, strict=True)
                for i, (step, num) in enumerate((("Human opens", "human_openers"), ("Clicks", "clickers"),
                                                 ("Buyers", "converters")))]
        charts["campaign_funnel"] = _spec(alt.Chart(_values(rows), title="Campaign funnel (share of delivered)")
                                          .mark_bar().encode(
            y=alt.Y("campaign:N", sort=labels, title=None),
            yOffset=alt.YOffset("step:N", sort=["Human opens", "Clicks", "Buyers"]),
            x=alt.X("rate:Q", title="Share of delivered", axis=alt.Axis(format="%")),
            color=alt.Color("step:N", sort=["Human opens", "Clicks", "Buyers"], title=None,
                            scale=alt.Scale(range=["#9ecae1", "#4292c6", "#08519c"]),
                            legend=alt.Legend(orient="top")),
            tooltip=["campaign:N", "step:N", alt.Tooltip("count:Q", format=","), alt.Tooltip("delivered:Q", format=","),
                     alt.Tooltip("rate:Q", format=".2%")],
        ).properties(width=WIDTH - 260, height=alt.Step(8)))
        lifts = [{"campaign": label, "lift": c["absolute_lift"], "lower": c["absolute_lift_ci_lower"],
                  "upper": c["absolute_lift_ci_upper"],
                  "status": "final" if c["is_attribution_window_complete"] else "window open (not final)"}
                 for label, c in zip(labels, data.campaigns, strict=True) if c["absolute_lift"] is not None]
        if lifts:
            base = alt.Chart(_values(lifts), title="Conversion lift over holdout, with 95% CI").encode(
                y=alt.Y("campaign:N", sort=labels, title=None))
            colour = alt.Color("status:N", title=None, scale=alt.Scale(
                domain=["final", "window open (not final)"], range=["#1b7837", "#bababa"]),
                legend=alt.Legend(orient="top"))
            zero = alt.Chart(alt.Data(values=[{"x": 0}])).mark_rule(color="#666").encode(x="x:Q")
            charts["campaign_lift"] = _spec((
                base.mark_errorbar(ticks=True).encode(
                    x=alt.X("lower:Q", title="Absolute lift in conversion (percentage points)",
                            axis=alt.Axis(format="%")), x2="upper:Q", color=colour)
                + base.mark_point(filled=True, size=60).encode(
                    x="lift:Q", color=colour, tooltip=["campaign:N", alt.Tooltip("lift:Q", format=".2%"),
                                                       alt.Tooltip("lower:Q", format=".2%"),
                                                       alt.Tooltip("upper:Q", format=".2%"), "status:N"])
                + zero).properties(width=WIDTH - 260, height=alt.Step(22)))

    if data.loyalty_series:
        charts["loyalty_liability"] = _spec(alt.Chart(_values(data.loyalty_series),
                                                      title="Loyalty points outstanding, as money owed").mark_area(
            line=True, opacity=0.3, color="#8856a7").encode(
            x=alt.X("ledger_date:T", title=None, axis=alt.Axis(format="%d %b")),
            y=alt.Y("outstanding_liability:Q", title=f"Liability ({report_currency()})"),
            tooltip=["ledger_date:T", alt.Tooltip("outstanding_liability:Q", format=",.2f"),
                     alt.Tooltip("outstanding_points:Q", format=","), alt.Tooltip("members:Q", format=",")],
        ).properties(width=WIDTH, height=180))

    if data.web_series:
        rows = [{"kpi_date": r["kpi_date"], "visitors": kind, "count": r[column] or 0}
                for r in data.web_series for kind, column in (("New", "new_visitors"), ("Returning", "returning_visitors"))]
        charts["site"] = _spec(alt.Chart(_values(rows), title="Visitors per day, new vs returning").mark_bar().encode(
            x=alt.X("kpi_date:T", title=None, axis=alt.Axis(format="%d %b")),
            y=alt.Y("sum(count):Q", title="Visitors"),
            color=alt.Color("visitors:N", title=None, scale=alt.Scale(range=["#66c2a5", "#3288bd"]),
                            legend=alt.Legend(orient="top")),
            tooltip=["kpi_date:T", "visitors:N", alt.Tooltip("count:Q", format=",")],
        ).properties(width=WIDTH, height=200))
    return charts


def to_png(spec: dict) -> bytes:
    import vl_convert as vlc

    return vlc.vegalite_to_png(spec, scale=1.5)
