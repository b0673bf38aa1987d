"""Issue 20, defect 8 (gate part): a failing gate names ids, counts and fingerprints, never an
e-mail address: not in the raised message, not in any log record, not in ops.quality_results, and
ops.quality_quarantine keeps the row key (customer_id) with identifying columns fingerprinted."""

from __future__ import annotations

import logging
from datetime import timedelta

from test_quality_gate import DAY2, assert_blocked

from ecrm.intervals import day_interval
from ecrm.quality.gate import fingerprint, scrub


def test_a_failing_gate_never_prints_an_address(gate_day2, caplog):
    _, conn, _ = gate_day2
    caplog.set_level(logging.DEBUG)  # every logger, every level
    # an unsubscribed member (the ESP sent the address in upper case, dbt missed it) ...
    customer_id, email = conn.execute("select customer_id, email from sync.sync_audience_members "
                                      "order by customer_id limit 1").fetchone()
    conn.execute("insert into raw.email_events (event_id, event, email, occurred_at, _file, _line, _load_id) "
                 "values ('injected-unsub', 'unsubscribe', %s, %s, 'injected', 1, 0)",
                 (email.upper(), day_interval(DAY2)[0] + timedelta(hours=12)))
    # ... and a member whose address is not valid (the regex check samples the bad values)
    bad_id = conn.execute("update sync.sync_audience_members set email = 'Not Valid@@example' where customer_id = "
                          "(select customer_id from sync.sync_audience_members where customer_id <> %s "
                          "order by customer_id limit 1) returning customer_id", (customer_id,)).fetchone()[0]
    message = assert_blocked(gate_day2, {"audience_members.no_suppressed_member", "audience_members.email_valid"})

    assert "@" not in message
    assert customer_id in message  # the row key names who it is
    assert fingerprint("Not Valid@@example") in message  # and the bad value is traceable by its fingerprint
    leaked = [r.getMessage() for r in caplog.records if "@" in r.getMessage()]
    assert leaked == []
    text_columns = conn.execute("select suite, expectation, observed_value, override_reason from ops.quality_results "
                                "where run_date = %s", (DAY2,)).fetchall()
    assert [row for row in text_columns if "@" in repr(row)] == []
    quarantined = conn.execute("select expectation, row_key, row_data::text, reason from ops.quality_quarantine "
                               "where run_date = %s and suite = 'audience_members'", (DAY2,)).fetchall()
    assert {e for e, *_ in quarantined} >= {"no_suppressed_member", "email_valid"}
    # row key and row: no '@' at all; the reason describes the check (the address regex has an '@')
    assert [row for row in quarantined if "@" in repr(row[1:3])] == []
    assert [row for row in quarantined if email in repr(row).lower() or "not valid" in repr(row).lower()] == []
    keys = {(e, k["customer_id"]) for e, k, *_ in quarantined}
    assert ("no_suppressed_member", customer_id) in keys and ("email_valid", bad_id) in keys


def test_scrub_fingerprints_anything_around_an_at_sign():
    text = "e.g. ['ann@example.com', 'x@', '@y', {'email': \"Bob.Smith+1@mail.example.org\"}]"
    scrubbed = scrub(text)
    assert "@" not in scrubbed
    assert fingerprint("ann@example.com") in scrubbed and fingerprint("Bob.Smith+1@mail.example.org") in scrubbed
