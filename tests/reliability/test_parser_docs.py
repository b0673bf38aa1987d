"""Issue 26, defect 11: docs/formats.md states the parsers' rules (static asset suffixes, reason
codes, events, order statuses, currencies, machine-open agents, limits, the timestamp grammar's
examples, the page-view rule); each is read from the page and compared with the code's constants,
so the page cannot drift from the code again."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from ecrm.sources import REASON_CODES, common, email, loyalty, shop, weblogs

ROOT = Path(__file__).resolve().parents[2]
FORMATS = (ROOT / "docs" / "formats.md").read_text()


def _line_with(marker: str, text: str = FORMATS) -> str:
    """The (markdown-wrapped) paragraph line that holds `marker`, joined with its continuation lines."""
    start = text.index(marker)
    end = text.find("\n- ", start)
    end = min(e for e in (end, text.find("\n\n", start), len(text)) if e >= 0)
    return " ".join(text[start:end].split())


def _after(marker: str) -> str:
    return _line_with(marker)[len(marker):]


def test_static_asset_suffixes_are_the_parsers():
    documented = set(re.findall(r"(?<![\w/])\.[a-z0-9]+(?=[ `])", _after("or end in `")))
    assert documented == set(weblogs.STATIC_SUFFIXES)
    assert "`/static/`" in _line_with("- Static assets") and weblogs._STATIC.startswith("^/static/|")


def test_reason_code_table_is_the_registry():
    section = FORMATS[FORMATS.index("| `reason_code` |"):]
    section = section[section.index("| --- |"):section.index("\n\n")]
    documented = re.findall(r"^\| `([a-z0-9_]+)` \|", section, flags=re.MULTILINE)
    assert sorted(documented) == sorted(REASON_CODES)
    assert len(documented) == len(set(documented))


@pytest.mark.parametrize(("marker", "values"), [
    ("- `event` in `", email.EVENTS),
    ("- `status` in `", shop.ORDER_STATUSES),
    ("ISO 4217, one of `", common.CURRENCIES),
    ("- `event_type` in `", loyalty.EVENT_TYPES),
])
def test_documented_value_lists_are_the_parsers(marker, values):
    listed = _after(marker).split("`")[0]
    assert {v.strip() for v in listed.split(",")} == set(values)


def test_machine_open_agents_are_the_parsers():
    text = _line_with("names a known")
    assert set(re.findall(r"`([^`]+)`", text[text.index("image proxy"):])) == set(email.MACHINE_OPEN_AGENTS)


def test_limits_are_the_parsers():
    row = next(line for line in FORMATS.splitlines() if line.startswith("| `too_long` |"))
    numbers = [int(n.replace(",", "")) for n in re.findall(r"\b\d{1,3}(?:,\d{3})+\b|\b\d+\b", row)]
    assert numbers[:3] == [common.MAX_EMAIL, common.MAX_FIELD, common.MAX_LINE]
    assert f"unfinished after {common.READ_LIMIT // 1024} KB" in row
    assert f"first {common.LONG_LINE_PREFIX // 1024} KB" in row
    quote_rule = _line_with("Such a value must close within")
    assert f"within {shop.MAX_RECORD_LINES} lines and {common.MAX_LINE:,} characters" in quote_rule


def test_timestamp_grammar_examples_agree_with_check_ts():
    """Every timestamp the page shows in backticks is accepted or refused as the page says."""
    section = _line_with("- Timestamps (shop, campaigns'")
    accepted = ["2026-10-01T13:05:22+00:00"]  # the page's own example at the top
    refused = re.findall(r"`([0-9]{4}[^`]*)`", section[section.index("also reads"):])
    assert len(refused) >= 2
    for text in accepted:
        assert common.check_ts(text)
    for text in refused:
        with pytest.raises(ValueError):
            common.check_ts(text)
    for text in ("-23:59", "+00:00:30.5"):  # offsets the page names
        with pytest.raises(ValueError):
            common.check_ts(f"2030-01-01T10:00:00{text}")


def test_page_view_rule_is_the_macros():
    macro = (ROOT / "dbt_project" / "macros" / "is_page_view.sql").read_text()
    rule = macro[macro.index("{% macro is_page_view() -%}"):]
    assert all(part in rule for part in ("not is_bot", "not is_static", "http_method = 'GET'",
                                         "http_status between 200 and 399"))
    for page in (FORMATS, (ROOT / "docs" / "marts.md").read_text()):
        sentence = _line_with("a page view is" if "a page view is" in page else "A page view (the web marts) is", page)
        assert all(word in sentence for word in ("GET", "2xx/3xx", "bot", "static asset")), sentence
