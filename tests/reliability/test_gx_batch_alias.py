"""Every GX custom query gives the day's batch an alias, so the gate runs on PostgreSQL 14 and 15.

GX pastes a query asset's batch into `{batch}` as a parenthesised subquery: with the alias
`AS subselect` when the query has no JOIN, bare when it has one (the author is to alias it).
PostgreSQL accepts a subquery in FROM without an alias only from 16 on; on 15 the gate failed
with `subquery in FROM must have an alias`. These tests substitute `{batch}` exactly as GX does
(its own function) and check that every derived table then has an alias, for the suites the gate
reads (expectations/gx/expectations/*.json) and for the queries bootstrap.py writes into them.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from types import SimpleNamespace

import pytest

ROOT = Path(__file__).resolve().parents[2]
SUITES = sorted((ROOT / "expectations" / "gx" / "expectations").glob("*.json"))
SENTINEL = "SELECT 4242 AS sentinel_batch"
# What may follow a derived table in FROM when it has no alias (SQL keywords, punctuation).
NOT_AN_ALIAS = {"where", "union", "except", "intersect", "group", "having", "order", "limit", "offset", "fetch",
                "window", "join", "left", "right", "full", "inner", "cross", "natural", "on", "using", "for",
                "lateral", "select", "from", "and", "or", "as"}


def substitute(query: str) -> str:
    """`query` with `{batch}` replaced as GX 1.x does for a query asset on PostgreSQL."""
    import sqlalchemy as sa
    from great_expectations.expectations.metrics.query_metric_provider import QueryMetricProvider
    from sqlalchemy.dialects import postgresql

    batch = sa.select(sa.literal_column("4242").label("sentinel_batch")).subquery()
    engine = SimpleNamespace(engine=SimpleNamespace(dialect=postgresql.dialect()), dialect_name="postgresql")
    out = QueryMetricProvider._get_substituted_batch_subquery_from_query_and_batch_selectable(query, batch, engine)
    assert SENTINEL in out, out  # the substitution still works the way this test assumes
    return out


def unaliased_batches(query: str) -> list[str]:
    """The text after each substituted batch that is not an alias (empty when every batch has one)."""
    found = []
    for match in re.finditer(re.escape(f"({SENTINEL})") + r"\s*(AS\s+)?(\w+|\S)?", substitute(query), re.I):
        word = (match[2] or "").lower()
        if not (match[1] or re.fullmatch(r"[a-z_]\w*", word)) or word in NOT_AN_ALIAS:
            found.append(match[0][:80])
    return found


def suite_queries() -> list[tuple[str, str]]:
    out = []
    for path in SUITES:
        for expectation in json.loads(path.read_text())["expectations"]:
            query = expectation["kwargs"].get("unexpected_rows_query")
            if query:
                out.append((f"{path.stem}.{expectation['meta']['name']}", query))
    return out


def bootstrap_queries() -> list[tuple[str, str]]:
    """The queries bootstrap.py generates without a warehouse (the others are literal strings in build())."""
    from ecrm.quality import bootstrap

    out = [(f"bootstrap.{e.meta['name']}", e.unexpected_rows_query)
           for e in [*bootstrap.predictions_expectations(), *bootstrap.intermediate_expectations()]
           if getattr(e, "unexpected_rows_query", None)]
    out.append(("bootstrap.volume_query", bootstrap.volume_query("raw.orders", "created_at")))
    out.append(("bootstrap.stage_loaded", bootstrap.stage_loaded("ingest_email")))
    return out


def test_the_suites_have_custom_queries():
    assert len(suite_queries()) > 40


@pytest.mark.parametrize(("name", "query"), suite_queries(), ids=[n for n, _ in suite_queries()])
def test_every_batch_in_a_suite_query_has_an_alias(name, query):
    assert not unaliased_batches(query), (
        f"{name}: a subquery in FROM without an alias fails on PostgreSQL 14 and 15; in a query with a JOIN "
        "write `{batch} b` (GX aliases it itself only when the query has no JOIN)")


@pytest.mark.parametrize(("name", "query"), bootstrap_queries(), ids=[n for n, _ in bootstrap_queries()])
def test_every_batch_in_a_bootstrap_query_has_an_alias(name, query):
    assert not unaliased_batches(query), name


def test_bootstrap_writes_the_queries_of_the_suites():
    """bootstrap.py and the JSON stay in sync: a fix made in one is made in the other."""
    in_suites = {q for _, q in suite_queries()}
    generated = [(n, q) for n, q in bootstrap_queries() if n not in ("bootstrap.volume_query", "bootstrap.stage_loaded")]
    assert [n for n, q in generated if q not in in_suites] == []


def test_an_unaliased_batch_in_a_join_query_is_caught():
    """The check itself: the PostgreSQL 15 failure's shape is found, GX's own alias is accepted."""
    assert unaliased_batches("with used as (select distinct d from {batch}) select 1 from used u join t on true")
    assert not unaliased_batches("with used as (select distinct d from {batch} b) select 1 from used u join t on true")
    assert not unaliased_batches("select d from {batch} where d is null limit 1")
    assert unaliased_batches("select 1 from t cross join {batch} where true")
