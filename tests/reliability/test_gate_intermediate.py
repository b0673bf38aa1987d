"""Issue 20, defect 4 (gate part): the gate audits the intermediate tables that feed the audiences,
so a build that left a duplicated key or a dropped table behind cannot be published."""

from __future__ import annotations

from test_quality_gate import DAY2, assert_blocked

from ecrm.intervals import day_interval


def test_a_duplicated_page_view_blocks_publish(gate_day2):
    """Two concurrent builds appended the same page views twice: dbt's own test is gone with the
    build, and every mart still looks fine; the gate names the intermediate table's check."""
    _, conn, _ = gate_day2
    page_view_id = conn.execute(
        "insert into intermediate.int_web_page_views select * from intermediate.int_web_page_views "
        "where view_date = %s order by page_view_id limit 1 returning page_view_id", (DAY2,)).fetchone()[0]
    message = assert_blocked(gate_day2, {"intermediate_keys.int_web_page_views_page_view_id_unique"})
    assert "1 row(s)" in message and page_view_id in message
    quarantined = conn.execute("select table_name, row_key, row_data->>'copies' from ops.quality_quarantine "
                               "where run_date = %s and expectation = 'int_web_page_views_page_view_id_unique'",
                               (DAY2,)).fetchall()
    assert quarantined == [("intermediate.int_web_page_views", {"page_view_id": page_view_id}, "2")]


def test_a_duplicated_customer_in_an_intermediate_table_blocks_publish(gate_day2):
    """int_customer_email_flags has a unique index; a build that lost it (dropped and recreated the
    table) lets duplicates in, and dim_customers would fan out. The gate catches it either way."""
    _, conn, _ = gate_day2
    for (index,) in conn.execute("select indexrelid::regclass::text from pg_index "
                                 "where indrelid = 'intermediate.int_customer_email_flags'::regclass").fetchall():
        conn.execute(f"drop index {index}")
    conn.execute("insert into intermediate.int_customer_email_flags select * from "
                 "intermediate.int_customer_email_flags order by customer_id limit 1")
    assert_blocked(gate_day2, {"intermediate_keys.int_customer_email_flags_customer_id_unique"})


def test_a_dropped_intermediate_table_blocks_publish(gate_day2):
    _, conn, _ = gate_day2
    conn.execute("drop table intermediate.int_customer_web_activity cascade")
    message = assert_blocked(gate_day2, {"intermediate_keys.intermediate_tables_exist",
                                         "intermediate_keys.int_customer_web_activity_customer_id_unique"})
    assert "int_customer_web_activity" in message


def test_page_views_outside_the_rebuilt_days_are_not_rescanned(gate_day2):
    """The page-view check reads only [run_date - web_lookback_days, run_date] (the days a build
    rewrites), so its cost does not grow with the history: an old duplicate is dbt's business."""
    from ecrm.pipeline import publish_segments

    url, conn, outbox = gate_day2
    conn.execute("create temp table old_copy as select * from intermediate.int_web_page_views "
                 "order by page_view_id limit 1")
    conn.execute("update old_copy set view_date = view_date - 30")
    conn.execute("insert into intermediate.int_web_page_views select * from old_copy")
    publish_segments(*day_interval(DAY2), url=url)
    assert (outbox / DAY2.isoformat() / "manifest.json").exists()
