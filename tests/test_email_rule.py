"""One e-mail rule (ecrm.email_rule) and every place that applies it, checked against one corpus,
tests/data/email_addresses.csv: the Python rule, dbt's is_valid_email macro (run by dbt against
PostgreSQL), the quality gate's GX expectation (run by GX against PostgreSQL) and the mailer's push
plan. An address the marts and the gate accept is never refused at push, and the other way round;
an apostrophe (o'brien@...) is valid everywhere and reaches both ESPs intact."""

from __future__ import annotations

import csv
import json
import re
from datetime import date

import pytest

from conftest import ROOT
from ecrm.email_rule import EMAIL_PATTERN, is_valid_email, normalize

CORPUS = [(row["address"], row["valid"] == "true", row["why"])
          for row in csv.DictReader((ROOT / "tests/data/email_addresses.csv").open(encoding="utf-8"))]
VALID = {address for address, valid, _ in CORPUS if valid}
D1 = date(2026, 10, 1)


def test_the_corpus_covers_both_sides_and_the_apostrophe():
    assert len(VALID) >= 10 and len(CORPUS) - len(VALID) >= 15
    assert "o'brien@example.ie" in VALID


@pytest.mark.parametrize(("address", "valid", "why"), CORPUS, ids=[why for *_, why in CORPUS])
def test_the_python_rule(address, valid, why):
    assert is_valid_email(address) is valid, why


def _macro_pattern() -> str:
    """The pattern dbt's macro compiles to (rendered with Jinja, the SQL literal read back)."""
    import jinja2

    text = (ROOT / "dbt_project/macros/is_valid_email.sql").read_text()
    sql = jinja2.Environment().from_string(text + "{{ is_valid_email('email') }}").render()
    [literal] = re.findall(r"~ '((?:[^']|'')*)'", sql)
    return literal.replace("''", "'")


def test_dbt_macro_holds_the_same_pattern():
    assert _macro_pattern() == EMAIL_PATTERN


def _sql_values(addresses) -> str:
    return ", ".join("('" + a.replace("'", "''") + "')" for a in addresses)


def test_dbt_macro_run_by_dbt_follows_the_corpus(db_url):
    from ecrm.transform import run_dbt

    sql = ("select address, {{ is_valid_email('lower(trim(address))') }} as valid "
           f"from (values {_sql_values(a for a, *_ in CORPUS)}) as corpus (address)")
    result = run_dbt(["show", "--inline", sql, "--limit", "-1", "--quiet"], db_url)
    table = result.result.results[0].agate_table
    seen = {row["address"]: row["valid"] for row in table.rows}
    assert seen == {address: valid for address, valid, _ in CORPUS}


def _gx_email_expectations() -> list[tuple[str, dict]]:
    found = []
    for path in sorted((ROOT / "expectations/gx/expectations").glob("*.json")):
        for expectation in json.loads(path.read_text())["expectations"]:
            kwargs = expectation.get("kwargs", {})
            if "regex" in kwargs and kwargs.get("column") == "email":
                found.append((f"{path.stem}.{expectation['meta']['name']}", kwargs))
    return found


def test_every_gx_email_expectation_holds_the_same_pattern():
    found = _gx_email_expectations()
    assert {name for name, _ in found} >= {"audience_members.email_valid", "dim_customers.email_valid",
                                           "raw_customers.email_valid"}
    assert {name: kwargs["regex"] for name, kwargs in found} == dict.fromkeys((n for n, _ in found), EMAIL_PATTERN)


def test_the_gate_expectation_run_by_gx_follows_the_corpus(conn, db_url):
    """The audience suite's blocking check, as the gate runs it: GX against PostgreSQL (its `~`)."""
    import great_expectations as gx
    import great_expectations.expectations as gxe

    from ecrm.quality.gate import _gx_url

    conn.execute("create table email_corpus (email text)")
    conn.execute(f"insert into email_corpus select lower(trim(a)) from (values {_sql_values(a for a, *_ in CORPUS)}) "
                 "as c (a)")
    kwargs = dict(_gx_email_expectations())["audience_members.email_valid"]
    context = gx.get_context(mode="ephemeral")
    source = context.data_sources.add_postgres("corpus", connection_string=_gx_url(db_url))
    batch = source.add_table_asset("email_corpus", table_name="email_corpus").add_batch_definition_whole_table(
        "all").get_batch()
    result = batch.validate(gxe.ExpectColumnValuesToMatchRegex(**kwargs), result_format="COMPLETE")
    refused = set(result.result["unexpected_list"])
    assert refused == {normalize(a) for a, valid, _ in CORPUS if not valid}
    assert not refused & {normalize(a) for a in VALID}


def test_the_mailer_plan_blocks_exactly_the_invalid_addresses(conn, tmp_path):
    """dbt's flag is set true for everyone here: what is tested is the mailer's own re-check at push."""
    from mailer_world import World

    from ecrm.mailer.config import MailerConfig
    from ecrm.mailer.sync import sync_audiences

    world = World(conn)
    ids = {address: f"c-{i:03d}" for i, (address, *_) in enumerate(CORPUS)}
    conn.cursor().executemany(
        "insert into marts.dim_customers (customer_id, email, first_name, accepts_marketing, is_valid_email, "
        "is_suppressed, is_holdout) values (%s, %s, 'A', true, true, false, false)",
        [(cid, address) for address, cid in ids.items()])
    world.publish(D1, {f"a{i:03d}": [cid] for i, cid in enumerate(ids.values())})  # one audience each: no duplicates
    report = sync_audiences(conn, D1, config=MailerConfig(outbox=tmp_path, dry_run=True))
    outcome = {c["customer_id"]: (c["action"], c["reason"]) for c in report["plan"]}
    assert outcome == {cid: ("add", None) if address in VALID else ("blocked", "invalid_email")
                       for address, cid in ids.items()}


def test_an_apostrophe_reaches_listmonk_and_mailchimp_intact(conn, tmp_path):
    """listmonk's look-up is an SQL expression (the quote doubled inside the literal); Mailchimp gets JSON."""
    from fake_esp import FakeListmonk, FakeMailchimp
    from mailer_world import World

    from ecrm.mailer.config import MailerConfig
    from ecrm.mailer.sync import sync_audiences

    world = World(conn)
    [cid] = world.customers(1)
    conn.execute("update marts.dim_customers set email = 'o''brien@example.ie' where customer_id = %s", (cid,))
    world.publish(D1, {"vip": [cid]})
    listmonk, mailchimp = FakeListmonk().start(), FakeMailchimp().start()
    try:
        listmonk.lists = {1: "ecrm-vip"}
        known = listmonk.add_subscriber("o'brien@example.ie")  # already a subscriber: must be found, not re-created
        common = {"outbox": tmp_path, "timeout": 2.0, "max_retries": 3}
        report = sync_audiences(conn, D1, config=MailerConfig(
            adapter="listmonk", listmonk_url=listmonk.url, listmonk_user=listmonk.user,
            listmonk_token=listmonk.token, **common))
        assert report["status"] == "succeeded"
        assert listmonk.count("create") == {} and listmonk.list_members("ecrm-vip") == {"o'brien@example.ie": "unconfirmed"}
        assert listmonk.subscribers[known]["lists"] == {1: "unconfirmed"} and listmonk.violations == []
        report = sync_audiences(conn, D1, config=MailerConfig(
            adapter="mailchimp", mailchimp_api_key=mailchimp.api_key, mailchimp_list_id=mailchimp.list_id,
            mailchimp_url=f"{mailchimp.url}/3.0", **common))
        assert report["status"] == "succeeded"
        assert mailchimp.count("upsert") == {"o'brien@example.ie": 1}
        assert mailchimp.tag_members("ecrm-vip") == {"o'brien@example.ie"} and mailchimp.violations == []
    finally:
        listmonk.stop()
        mailchimp.stop()
