"""The column-wise fast paths (pyarrow: shop CSV, web logs, e-mail events) give exactly what the line-by-line
parsers give (`fast=False`) on every hostile file of the bad-input corpus and of the line-count
test: same rows, same rejects, same line numbers."""

from __future__ import annotations

import pytest
from test_bad_inputs import CASES, Day
from test_line_counts import DAY, FORMATS

from ecrm.intervals import day_interval
from ecrm.load.ingest import SOURCES
from ecrm.sources import email, shop, weblogs


def _parser(source: str, name: str):
    """(parse function, window) of the file kind that loads `name`."""
    for kind, patterns in SOURCES[source]:
        stem = patterns[0].split(".")[0].rstrip("*")
        if name.startswith(stem):
            return kind, kind.window
    raise LookupError(name)


def _twin(path, source: str, interval) -> tuple:
    kind, window = _parser(source, path.name)
    if source == "weblogs":
        return (list(weblogs.parse_access_log(path, window(interval))),
                list(weblogs.parse_access_log(path, window(interval), fast=False)))
    if source == "email":
        return (list(email.parse_events(path, window(interval))),
                list(email.parse_events(path, window(interval), fast=False)))
    spec = shop.SPECS[kind.name]
    return (list(shop.parse_csv(spec, path, window(interval))),
            list(shop.parse_csv(spec, path, window(interval), fast=False)))


def _constant(content: bytes):
    return lambda _day: content


TWINS = [(c.id, c.source, c.file, c.body) for c in CASES
         if not c.fails and (c.source == "weblogs" or (c.source == "shop" and ".csv" in c.file)
                             or (c.source == "email" and c.file.startswith("events") and ".csv" not in c.file))]
for fmt, (source, make) in FORMATS.items():
    if fmt in ("shop-csv", "web-combined", "web-nginx-json", "email-jsonl"):
        TWINS += [(f"{fmt}-{n}", source, name, _constant(content))
                  for n, (name, content, _) in enumerate(make())]


@pytest.mark.parametrize("index", range(len(TWINS)), ids=[t[0] for t in TWINS])
def test_fast_path_equals_line_by_line_parser(tmp_path, copy_values, index):
    case_id, source, name, body = TWINS[index]
    day = Day(DAY)  # the line-count files hold timestamps of DAY
    path = tmp_path / name
    path.write_bytes(body(day))
    fast, slow = _twin(path, source, day_interval(day.day))
    assert copy_values(fast) == copy_values(slow)
