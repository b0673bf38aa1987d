"""Turn ReportData into the report's files: index.html (self-contained, charts drawn by an inlined
vega-embed), email.html (no script: charts as inlined PNG, tables with inline styles; for browsers and
previews) and email.eml (the same HTML with the charts as cid: parts plus a text part: the message
to send, see ecrm.report.mail)."""

from __future__ import annotations

import base64
import json
import os
import re
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, date
from importlib.metadata import version
from pathlib import Path

import jinja2
from upath import UPath

from ..settings import PLACEHOLDER_REPORT_FROM, PLACEHOLDER_REPORT_TO, is_local, report_currency
from . import charts as chart_specs
from . import mail
from .data import LIFECYCLE_ORDER, SEGMENT_ORDER, ReportData

TEMPLATES = Path(__file__).parent / "templates"
HOLDOUT_TARGET_LIFT = 0.02  # dbt var holdout_target_lift: what holdout_needed_for_target_lift is computed for


# --- numbers as a marketer reads them ----------------------------------------------------------------

def fmt(value, kind: str) -> str:
    if value is None:
        return "n/a"
    if kind == "int":
        return f"{round(value):,}"
    if kind == "money":
        return f"{value:,.2f} {report_currency()}"
    if kind == "pct":
        return f"{value * 100:.1f}%"
    if kind == "num":
        return f"{value:,.2f}"
    return str(value)


def change(now, before, kind: str) -> dict:
    """How `now` compares with `before`: text (signed, in % or percentage points for shares) and a direction."""
    if now is None or before is None:
        return {"text": "n/a", "dir": "flat", "before": fmt(before, kind)}
    diff = now - before
    if kind == "pct":
        text = f"{diff * 100:+.1f} pp"
    elif before:
        text = f"{diff / abs(before) * 100:+.1f}%"
    else:
        text = "new" if diff else "±0"
    return {"text": text, "dir": "up" if diff > 0 else "down" if diff < 0 else "flat", "before": fmt(before, kind)}


def metric(key: str, label: str, kind: str, values: dict[date, float | None], days: dict[str, date],
           scope: str) -> dict:
    """One figure of the day with its date range and its comparison with the day before and a week before."""
    now = values.get(days["day"])
    return {"key": key, "label": label, "kind": kind, "raw": now, "value": fmt(now, kind), "scope": scope,
            "prev_day": change(now, values.get(days["prev_day"]), kind),
            "prev_week": change(now, values.get(days["prev_week"]), kind)}


def _series(rows: dict[date, dict], column: str) -> dict[date, float | None]:
    return {d: (r or {}).get(column) for d, r in rows.items()}


# --- the view model ----------------------------------------------------------------------------------

def view(data: ReportData) -> dict:
    days = data.days
    d = f"{days['day']:%a %d %b %Y}"
    h = data.headline
    share = {k: {"attributed_revenue_share": (r or {}).get("attributed_revenue_share"),
                 "organic_revenue_share": None if (r or {}).get("attributed_revenue_share") is None
                 else 1 - r["attributed_revenue_share"]} for k, r in h.items()}
    window = f"orders in the 365 days to {days['day']:%d %b}"
    headline = [
        metric("customers", "Customers", "int", _series(h, "customers"), days, f"known at the end of {d}"),
        metric("active_customers", "Active customers", "int", _series(h, "active_customers"), days,
               f"ordered in the RFM window ({window})"),
        metric("orders", "Orders", "int", _series(h, "orders"), days, f"valid orders placed on {d} (UTC)"),
        metric("revenue", "Revenue", "money", _series(h, "revenue"), days, f"valid orders placed on {d}"),
        metric("average_order_value", "Average order value", "money", _series(h, "average_order_value"), days,
               f"revenue / orders, {d}"),
        metric("email_revenue_share", "Revenue from e-mail", "pct", _series(share, "attributed_revenue_share"), days,
               f"last-touch attributed share of {d}'s revenue"),
        metric("organic_revenue_share", "Revenue organic", "pct", _series(share, "organic_revenue_share"), days,
               f"not attributed to an e-mail, {d}"),
        metric("top20_share", "Revenue from the top 20%", "pct", _series(h, "top_customers_revenue_share"), days,
               f"share of the RFM window's revenue ({window}) from the top 20% of buyers"),
    ]

    prev = data.segments_prev
    colour = dict(zip(SEGMENT_ORDER, chart_specs.SEGMENT_COLOURS, strict=True))  # the segments chart's colours
    segments = []
    for r in data.segments_today:
        before = {days["day"]: r["customers"], **{k: (v.get(r["segment"]) or {}).get("customers") for k, v in prev.items()}}
        m = metric(f"segment:{r['segment']}", r["segment"], "int", before, days, "")
        segments.append({**r, "colour": colour.get(r["segment"], "#bababa"),
                         "customers_fmt": fmt(r["customers"], "int"), "share_fmt": fmt(r["customer_share"], "pct"),
                         "revenue_fmt": fmt(r["revenue"], "money"), "revenue_share_fmt": fmt(r["revenue_share"], "pct"),
                         "contactable_fmt": fmt(r["contactable_customers"], "int"),
                         "prev_day": m["prev_day"], "prev_week": m["prev_week"]})
    total = data.segments_today[0] if data.segments_today else {}

    moves = sorted((m for m in data.movements if m["customers"]), key=lambda m: (-m["customers"], m["from_segment"],
                                                                                 m["to_segment"]))
    rank = {s: i for i, s in enumerate(SEGMENT_ORDER)}
    flows = []
    for m in moves[:5]:
        up = rank.get(m["to_segment"], 99) < rank.get(m["from_segment"], 99)
        verb = "moved up" if up else "slipped"
        if m["from_segment"] == "Prospect":
            verb = "placed a first order and moved"
        who = f"{m['customers']:,} customer{'' if m['customers'] == 1 else 's'}"
        flows.append({**m, "up": up, "text": f"{who} {verb} from {m['from_segment']} to {m['to_segment']}",
                      "before": f"{m['customers_week_before']:,} the 7 days before"})
    moved = sum(m["customers"] for m in data.movements)
    moved_before = sum(m["customers_week_before"] for m in data.movements)
    matrix_from = sorted({m["from_segment"] for m in moves}, key=lambda s: rank.get(s, 99))
    matrix_to = sorted({m["to_segment"] for m in moves}, key=lambda s: rank.get(s, 99))
    cell = {(m["from_segment"], m["to_segment"]): m["customers"] for m in moves}

    lifecycle = [{"stage": chart_specs.STAGE_LABELS[s], **metric(f"lifecycle:{s}", chart_specs.STAGE_LABELS[s], "int",
                                                                   {k: v.get(s) for k, v in data.lifecycle.items()},
                                                                   days, "")}
                 for s in LIFECYCLE_ORDER]

    campaigns = []
    for c in data.campaigns:
        def ratio(n, c=c):
            return f"{c[n]:,} / {c['delivered']:,} ({fmt(c[n] / c['delivered'] if c['delivered'] else None, 'pct')})"
        lift = None if c["absolute_lift"] is None else (
            f"{c['absolute_lift'] * 100:+.2f} pp [{c['absolute_lift_ci_lower'] * 100:+.2f}, "
            f"{c['absolute_lift_ci_upper'] * 100:+.2f}]")
        campaigns.append({**c, "label": chart_specs.campaign_label(c),
                          "delivered_fmt": f"{c['delivered']:,} / {c['recipients']:,}",
                          "opens_fmt": ratio("human_openers"), "clicks_fmt": ratio("clickers"),
                          "orders_fmt": ratio("converters"), "attributed_orders_fmt": fmt(c["attributed_orders"], "int"),
                          "revenue_fmt": fmt(c["attributed_revenue"], "money"),
                          "holdout_fmt": f"{c['holdout_converters']:,} / {c['holdout_customers']:,}",
                          "lift_fmt": lift or "n/a", "detectable": _detectable(c),
                          "significant": c["absolute_lift_ci_lower"] is not None and (
                              c["absolute_lift_ci_lower"] > 0 or c["absolute_lift_ci_upper"] < 0)})
    open_windows = sum(not c["is_attribution_window_complete"] for c in data.campaigns)

    # The site section shows the last complete web-log day (data.site_days): the run date holds only
    # the hours before the log's rotation until the next file arrives. A partial day is never compared.
    sd = data.site_days or days
    complete = data.site_complete or dict.fromkeys(sd.values(), True)
    s = f"{sd['day']:%a %d %b %Y}"
    w = data.web
    site = [
        metric("sessions", "Sessions", "int", _series(w, "sessions"), sd, f"sessions started on {s} (UTC)"),
        metric("visitors", "Visitors", "int", _series(w, "visitors"), sd, f"distinct visitors, {s}"),
        metric("new_visitors", "New visitors", "int", _series(w, "new_visitors"), sd, f"first session ever, {s}"),
        metric("returning_visitors", "Returning visitors", "int", _series(w, "returning_visitors"), sd,
               f"seen before, {s}"),
        metric("bounce_rate", "Bounce rate", "pct", _series(w, "bounce_rate"), sd, f"one-page sessions, {s}"),
        metric("pages_per_session", "Pages per session", "num", _series(w, "pages_per_session"), sd, s),
        metric("session_conversion_rate", "Session → order", "pct", _series(w, "session_conversion_rate"), sd,
               f"sessions with an order, {s}"),
    ]
    pages = [{**p, "views_fmt": fmt(p["page_views"], "int"), "visitors_fmt": fmt(p["unique_visitors"], "int"),
              "prev_day": change(p["page_views"], p["page_views_prev_day"], "int"),
              "prev_week": change(p["page_views"], p["page_views_prev_week"], "int")} for p in data.top_pages]
    not_compared = {"text": "not compared", "dir": "flat", "before": "a partial day"}
    for row in site + pages:
        for key in ("prev_day", "prev_week"):
            if not complete.get(sd[key], False) or not complete.get(sd["day"], False):
                row[key] = not_compared
    site_notes = []
    partial = data.partial.get("web_logs")
    if partial:
        until = partial["covered_until"]
        covered = f"until {until.astimezone(UTC):%H:%M} UTC" if until else "not at all yet"
        site_notes.append(f"{days['day']:%d %b} is partial: the web log covers it {covered}; the rest arrives "
                          f"with the next rotated file." + (f" Shown: {sd['day']:%d %b}, the last complete day."
                                                            if sd["day"] != days["day"] else ""))
    if sd["day"] == days["day"] and not complete.get(sd["day"], True):
        site_notes.append(f"No complete day yet: {sd['day']:%d %b} is shown as partial and not compared.")
    for key, label in (("prev_day", "the day before"), ("prev_week", "the week before")):
        if complete.get(sd["day"], False) and not complete.get(sd[key], False):
            site_notes.append(f"{sd[key]:%d %b} ({label}) is not complete in the warehouse: not compared.")
    email_partial = data.partial.get("email_events")
    email_note = None
    if email_partial:
        until = email_partial["covered_until"]
        email_note = (f"E-mail events of {days['day']:%d %b} are partial (loaded until "
                      f"{until.astimezone(UTC):%H:%M} UTC): opens, clicks and buyers of the day still grow with the next export."
                      if until else f"No e-mail event of {days['day']:%d %b} is loaded yet.")

    loads = []
    for source in sorted({r["source"] for rows in data.loads.values() for r in rows}):
        per_day = {k: next((r for r in rows if r["source"] == source), None) for k, rows in data.loads.items()}
        today = per_day.get(days["day"]) or {}
        m = metric(f"loaded:{source}", source, "int", _series(per_day, "rows_loaded"), days, "")
        loads.append({"source": source, "files": today.get("files", 0), "loaded": m,
                      "quarantined": fmt(today.get("rows_quarantined"), "int"),
                      "quarantined_raw": today.get("rows_quarantined")})
    gate_today = data.gate.get(days["day"])
    gate = {k: data.gate.get(v) for k, v in days.items()}
    findings = [{**f, "level": "blocking" if f["blocking"] else f"withholds the {f['withheld']}" if f.get("withheld")
                 else "warning"} for f in data.gate_findings]
    withheld = data.withheld or {}
    forecast_withheld = None
    if "forecast" in withheld:
        kept = withheld["forecast"].get("audiences") or {}
        forecast_withheld = {"reason": withheld["forecast"].get("reason", ""),
                             "audiences": ", ".join(f"{a} ({fmt(n, 'int')} members kept)" for a, n in kept.items())}

    rewards = _rewards(data)

    return {"day": days["day"], "day_long": d, "currency": report_currency(),
            "prev_day": days["prev_day"], "prev_week": days["prev_week"],
            "headline": headline, "segments": segments, "segment_total": total,
            "flows": flows, "moved": moved, "moved_before": moved_before,
            "since7": days["day"].toordinal() - 6, "matrix_from": matrix_from, "matrix_to": matrix_to, "cell": cell,
            "lifecycle": lifecycle, "campaigns": campaigns, "campaigns_as_of": data.campaigns_as_of,
            "open_windows": open_windows, "site": site, "pages": pages, "loads": loads,
            "site_days": sd, "site_notes": site_notes, "email_note": email_note,
            "quarantine_codes": data.quarantine_codes, "gate_today": gate_today, "gate": gate, "findings": findings,
            "audiences": data.audiences, "published": data.published, "read_as": data.read_as,
            "backtest": data.backtest, "forecast_withheld": forecast_withheld, **rewards,
            "date": date}


def _detectable(c: dict) -> str:
    """What the campaign's holdout can tell, in words: the smallest lift it detects (80% power), and the
    holdout that would detect the target lift (dbt var holdout_target_lift, 2 pp)."""
    mde, needed = c.get("minimum_detectable_lift"), c.get("holdout_needed_for_target_lift")
    if mde is None:
        return "no conversion yet: nothing to detect"
    text = f"this holdout can only detect lifts above {mde * 100:.1f} pp"
    if mde > HOLDOUT_TARGET_LIFT:
        text += (f"; {HOLDOUT_TARGET_LIFT * 100:.0f} pp would need a holdout of {needed:,}" if needed
                 else f"; {HOLDOUT_TARGET_LIFT * 100:.0f} pp needs a larger audience, not only a larger holdout")
    return text


def _interval(value, lower, upper, kind: str) -> str:
    if value is None:
        return "n/a"
    return f"{fmt(value, kind)} [{fmt(lower, kind)}, {fmt(upper, kind)}]"


def _rewards(data: ReportData) -> dict:
    """The "Discounts and loyalty" section: codes used, what each discount campaign added against its
    holdout (95% CI; a campaign whose window is open is marked), the loyalty liability over 90 days."""
    codes = [{**c, "orders_fmt": fmt(c["orders"], "int"), "net_fmt": fmt(c["net_revenue"], "money"),
              "discount_fmt": fmt(c["discount_given"], "money")} for c in data.codes]
    campaigns = []
    for c in data.discount_campaigns:
        lower, upper = c["return_per_discount_ci_lower"], c["return_per_discount_ci_upper"]
        verdict = ("paid for itself" if lower is not None and lower > 0 else
                   "gave away more than it brought" if upper is not None and upper < 0 else "not conclusive yet")
        campaigns.append({**c, "label": f"{c['discount_code']} · {c['campaign_name']}",
                          "groups_fmt": f"{c['treated_customers']:,} / {c['holdout_customers']:,}",
                          "orders_fmt": _interval(c["incremental_orders"], c["incremental_orders_ci_lower"],
                                                  c["incremental_orders_ci_upper"], "num"),
                          "net_fmt": _interval(c["incremental_net_revenue"], c["incremental_net_revenue_ci_lower"],
                                               c["incremental_net_revenue_ci_upper"], "money"),
                          "return_fmt": _interval(c["return_per_discount"], lower, upper, "num"),
                          "discount_fmt": fmt(c["discount_given"], "money"), "verdict": verdict})
    series = data.loyalty_series
    loyalty = None
    if series:
        first, last = series[0], series[-1]
        last30 = [r for r in series if r["ledger_date"].toordinal() > data.day.toordinal() - 30]
        groups = {g["customer_group"]: g for g in data.loyalty_groups}
        loyalty = {"liability_fmt": fmt(last["outstanding_liability"], "money"),
                   "liability": last["outstanding_liability"], "points_fmt": fmt(last["outstanding_points"], "int"),
                   "members_fmt": fmt(last["members"], "int"), "since": first["ledger_date"],
                   "liability_then_fmt": fmt(first["outstanding_liability"], "money"),
                   "earned_fmt": fmt(sum(r["points_earned"] for r in last30), "int"),
                   "redeemed_fmt": fmt(sum(r["points_redeemed"] for r in last30), "int"),
                   "expired_fmt": fmt(sum(r["points_expired"] for r in last30), "int"),
                   "member_repeat_fmt": fmt((groups.get("member") or {}).get("repeat_rate"), "pct"),
                   "other_repeat_fmt": fmt((groups.get("non_member") or {}).get("repeat_rate"), "pct")}
    return {"codes": codes, "discount_campaigns": campaigns, "loyalty": loyalty,
            "discount_windows_open": sum(not c["is_window_complete"] for c in data.discount_campaigns)}


# --- files ---------------------------------------------------------------------------------------------

def vega_bundle(cache_dir: Path) -> str:
    """vega + vega-lite + vega-embed as one classic script (window.vegaEmbed), from vl-convert.

    vl-convert bundles it on first use (~10 s), so it is cached per vl-convert version."""
    path = cache_dir / f"vega-embed-bundle-{version('vl-convert-python')}.js"
    if path.exists():
        return path.read_text(encoding="utf-8")
    import vl_convert as vlc

    bundle = vlc.javascript_bundle()
    cache_dir.mkdir(parents=True, exist_ok=True)
    _write(path, bundle)
    return bundle


def _write(path: Path | UPath, text: str | bytes) -> None:
    """Replace `path` whole: locally through a temp file and a rename, on object storage (ECRM_REPORTS is
    a URL) by one PUT, which readers also see whole or not at all."""
    if not is_local(path):
        path.write_bytes(text.encode("utf-8") if isinstance(text, str) else text)
        return
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    with os.fdopen(fd, "wb") as f:
        f.write(text.encode("utf-8") if isinstance(text, str) else text)
    os.chmod(tmp, 0o644)
    os.replace(tmp, path)


def _script_safe(text: str) -> str:
    """Text that can sit inside <script> (no early </script>, no HTML comment opener)."""
    return re.sub(r"</(script)", r"<\\/\1", text, flags=re.IGNORECASE).replace("<!--", "<\\!--")


def environment() -> jinja2.Environment:
    env = jinja2.Environment(loader=jinja2.FileSystemLoader(TEMPLATES),
                             autoescape=jinja2.select_autoescape(enabled_extensions=("html.j2",),
                                                                 default_for_string=True),
                             undefined=jinja2.StrictUndefined, trim_blocks=True, lstrip_blocks=True)
    env.filters["fmt"] = fmt
    return env


def subject(model: dict) -> str:
    gate = model["gate_today"]
    warning = (" – quality gate FAILED, do not act on today's segments" if gate and gate["failed"]
               else "" if gate else " – not audited by the quality gate")
    return f"CRM daily report – {model['day_long']}{warning}"


def render(data: ReportData, out_dir: Path | UPath, cache_dir: Path, sender: str = PLACEHOLDER_REPORT_FROM,
           recipients: str = PLACEHOLDER_REPORT_TO, seconds: dict[str, float] | None = None,
           ) -> dict[str, Path | UPath]:
    """Write index.html, email.html and email.eml into out_dir; `seconds` (if given) receives the time of
    each part: model (specs and view), charts (PNGs), bundle (vega-embed, cached), templates, mail, write."""
    seconds = {} if seconds is None else seconds
    clock = time.perf_counter()

    def lap(part: str) -> None:
        nonlocal clock
        now = time.perf_counter()
        seconds[part] = round(now - clock, 3)
        clock = now

    specs = chart_specs.build(data)
    model = view(data)
    lap("model")
    with ThreadPoolExecutor(max_workers=4) as pool:
        pngs = dict(zip(specs, pool.map(chart_specs.to_png, specs.values()), strict=True))
    lap("charts")
    bundle = _script_safe(vega_bundle(cache_dir))
    lap("bundle")
    env = environment()
    template = env.get_template("report.html.j2")
    index = template.render(**model, email=False, charts={k: None for k in specs},
                            specs_json=json.dumps(specs, separators=(",", ":")).replace("<", "\\u003c"),
                            vega_bundle=bundle)
    email = template.render(**model, email=True, specs_json="", vega_bundle="",
                            charts={k: "data:image/png;base64," + base64.b64encode(v).decode() for k, v in pngs.items()})
    mailed = template.render(**model, email=True, specs_json="", vega_bundle="",
                             charts={k: "cid:" + mail.content_id(k, data.day) for k in pngs})
    text = env.get_template("report.txt.j2").render(**model)
    lap("templates")
    eml = mail.message(day=data.day, subject=subject(model), html=mailed, text=text, pngs=pngs, sender=sender,
                       recipients=recipients).as_bytes()
    lap("mail")
    paths = {"index": out_dir / "index.html", "email": out_dir / "email.html", "eml": out_dir / "email.eml"}
    _write(paths["email"], email)
    _write(paths["eml"], eml)
    _write(paths["index"], index)
    lap("write")
    return paths
