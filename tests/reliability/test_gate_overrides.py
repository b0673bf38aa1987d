"""Issue 20, defect 7: gate severity overrides are never silent.

Every override in force is recorded with the run's rows of ops.quality_results (default and
effective severity, source, who, why); an unknown or misspelled name and a bare name that several
suites share are errors; the safety checks (holdout, suppression, consent) cannot be downgraded.
The name checks read the suites' JSON only, so most tests here need no warehouse.
"""

from __future__ import annotations

import json
import logging
import shutil

import pytest
from test_quality_gate import DAY1, DAY2, ROOT, published_state, run_day

from ecrm.quality.config import GateConfigError, load_config
from ecrm.quality.gate import resolve_overrides

SAFETY = ("audience_members.no_suppressed_member", "audience_members.no_holdout_member",
          "audience_members.member_is_contactable", "audience_members.no_flow_holdout_member")


@pytest.fixture
def repo_gate(monkeypatch, tmp_path):
    """The repository's suites, an empty gate.yml of our own (so the repo's file cannot interfere)."""
    monkeypatch.setenv("ECRM_GX_PROJECT_DIR", str(ROOT / "expectations"))
    config = tmp_path / "gate.yml"
    config.write_text("settings: {}\nseverity: {}\n")
    monkeypatch.setenv("ECRM_GATE_CONFIG", str(config))
    monkeypatch.delenv("ECRM_GATE_SEVERITY", raising=False)
    return config


def resolve():
    return resolve_overrides(load_config())


def test_a_misspelled_check_is_an_error_naming_the_near_matches(repo_gate, monkeypatch):
    monkeypatch.setenv("ECRM_GATE_SEVERITY", "raw_orders.volume_vs_trailing7d=warning")
    with pytest.raises(GateConfigError) as info:
        resolve()
    assert "raw_orders.volume_vs_trailing7d" in str(info.value)
    assert "did you mean raw_orders.volume_vs_trailing_7d" in str(info.value)


def test_an_unknown_suite_in_gate_yml_is_an_error(repo_gate):
    repo_gate.write_text("severity:\n  raw_order.orders_of_day_not_empty: warning\n")
    with pytest.raises(GateConfigError, match=r"raw_order\.orders_of_day_not_empty \(file .*gate\.yml\) is not a "
                                              r"check.*did you mean raw_orders\.orders_of_day_not_empty"):
        resolve()


def test_a_bare_name_of_several_suites_is_an_error_asking_for_suite_dot_check(repo_gate, monkeypatch):
    monkeypatch.setenv("ECRM_GATE_SEVERITY", "volume_vs_trailing_7d=warning")
    with pytest.raises(GateConfigError) as info:
        resolve()
    message = str(info.value)
    assert "volume_vs_trailing_7d" in message and "name one of" in message
    for suite in ("raw_orders", "raw_customers", "raw_web_requests", "raw_email_events", "customer_segments"):
        assert f"{suite}.volume_vs_trailing_7d" in message


def test_a_bare_name_of_one_suite_resolves_to_it(repo_gate, monkeypatch):
    monkeypatch.setenv("ECRM_GATE_SEVERITY", "orders_of_day_not_empty=warning:no orders expected, shop closed")
    [(key, override)] = resolve().items()
    assert key == ("raw_orders", "orders_of_day_not_empty")
    assert (override.from_severity, override.to_severity, override.reason) == (
        "blocking", "warning", "no orders expected, shop closed")


@pytest.mark.parametrize("written", [*SAFETY, "no_holdout_member", "member_is_contactable"])
def test_a_safety_check_cannot_be_downgraded(repo_gate, monkeypatch, written):
    monkeypatch.setenv("ECRM_GATE_SEVERITY", f"{written}=warning:we know what we are doing")
    with pytest.raises(GateConfigError, match="is a safety check .* cannot be downgraded"):
        resolve()


def test_a_safety_check_cannot_be_downgraded_in_gate_yml_either(repo_gate):
    repo_gate.write_text("severity:\n  audience_members.no_suppressed_member: {severity: warning, reason: test}\n")
    with pytest.raises(GateConfigError, match="no_suppressed_member .* cannot be downgraded"):
        resolve()


def test_a_safety_check_may_be_named_blocking(repo_gate, monkeypatch):
    monkeypatch.setenv("ECRM_GATE_SEVERITY", "audience_members.no_holdout_member=blocking")
    assert resolve()[("audience_members", "no_holdout_member")].to_severity == "blocking"


def test_the_safety_checks_are_marked_in_the_suite_json():
    suite = json.loads((ROOT / "expectations/gx/expectations/audience_members.json").read_text())
    marked = {f"audience_members.{e['meta']['name']}" for e in suite["expectations"] if e["meta"].get("safety")}
    assert marked == set(SAFETY)


def test_a_safety_check_set_to_warning_in_the_suite_json_is_refused(repo_gate, monkeypatch, tmp_path):
    gx_dir = tmp_path / "expectations"
    shutil.copytree(ROOT / "expectations", gx_dir, ignore=shutil.ignore_patterns("uncommitted"))
    path = gx_dir / "gx/expectations/audience_members.json"
    suite = json.loads(path.read_text())
    for e in suite["expectations"]:
        if e["meta"]["name"] == "no_holdout_member":
            e["meta"]["severity"] = "warning"
            del e["meta"]["safety"]  # even unmarked: the list in gate.SAFETY_CHECKS is the floor
    path.write_text(json.dumps(suite))
    monkeypatch.setenv("ECRM_GX_PROJECT_DIR", str(gx_dir))
    with pytest.raises(GateConfigError, match="audience_members.no_holdout_member is a safety check"):
        resolve()


@pytest.mark.parametrize("text", ["raw_orders.volume_vs_trailing_7d", "raw_orders.volume_vs_trailing_7d=warn",
                                  "=warning"])
def test_a_malformed_override_is_an_error(repo_gate, monkeypatch, text):
    monkeypatch.setenv("ECRM_GATE_SEVERITY", text)
    with pytest.raises(GateConfigError, match="ECRM_GATE_SEVERITY"):
        load_config()


def test_items_are_split_at_semicolons_and_at_commas_before_a_name(repo_gate, monkeypatch):
    monkeypatch.setenv("ECRM_GATE_SEVERITY", "raw_orders.volume_vs_trailing_7d=warning:sale, planned by Ann; "
                                             "raw_customers.email_valid=blocking,raw_web_requests.method_accepted=warning")
    overrides = {o.check: (o.severity, o.reason) for o in load_config().overrides}
    assert overrides == {"raw_orders.volume_vs_trailing_7d": ("warning", "sale, planned by Ann"),
                         "raw_customers.email_valid": ("blocking", None),
                         "raw_web_requests.method_accepted": ("warning", None)}


# --- against a warehouse: the stage refuses before publishing, and records what it applied ---------

def test_the_holdout_leak_of_the_report_is_refused(gate_day2, monkeypatch):
    """The reproduction of the issue: a holdout customer in an audience plus
    ECRM_GATE_SEVERITY=...no_holdout_member=warning published the customer. Now nothing runs."""
    url, conn, outbox = gate_day2
    conn.execute(
        "insert into sync.sync_audience_members (audience, customer_id, email, first_name, segment, snapshot_date) "
        "select 'vip', c.customer_id, c.email, c.first_name, 'Champions', %s from marts.dim_customers c "
        "where c.is_holdout and c.customer_id not in (select customer_id from sync.sync_audience_members "
        "where audience = 'vip') order by c.customer_id limit 1", (DAY2,))
    monkeypatch.setenv("ECRM_GATE_SEVERITY", "audience_members.no_holdout_member=warning")
    before = published_state(conn)
    with pytest.raises(GateConfigError, match="no_holdout_member"):
        run_day(url)
    assert published_state(conn) == before
    assert {d for (d,) in conn.execute("select distinct snapshot_date from published.customer_segments")} == {DAY1}
    assert not (outbox / DAY2.isoformat()).exists()


def test_overrides_are_recorded_with_the_results_of_the_run(gate_day2, monkeypatch, tmp_path, caplog):
    url, conn, outbox = gate_day2
    config = tmp_path / "gate.yml"
    config.write_text((ROOT / "expectations/gate.yml").read_text().replace(
        "severity: {}", "severity:\n  raw_customers.volume_vs_trailing_7d: {severity: warning, reason: "
                        "\"signup campaign, ticket CRM-12\"}\n  raw_orders.order_id_unique: blocking"))
    monkeypatch.setenv("ECRM_GATE_CONFIG", str(config))
    monkeypatch.setenv("ECRM_GATE_SEVERITY", "raw_orders.volume_vs_trailing_7d=warning:Black Friday, planned")
    caplog.set_level(logging.WARNING, logger="ecrm.quality.gate")
    run_day(url)
    assert (outbox / DAY2.isoformat() / "manifest.json").exists()
    rows = conn.execute(
        "select suite || '.' || expectation, blocking, default_severity, override_severity, override_source, "
        "override_reason, override_by is not null from ops.quality_results "
        "where run_date = %s and override_source is not null order by 1", (DAY2,)).fetchall()
    assert rows == [
        ("raw_customers.volume_vs_trailing_7d", False, "warning", "warning", f"file {config}",
         "signup campaign, ticket CRM-12", True),
        ("raw_orders.order_id_unique", True, "blocking", "blocking", f"file {config}", None, True),
        ("raw_orders.volume_vs_trailing_7d", False, "blocking", "warning", "env ECRM_GATE_SEVERITY",
         "Black Friday, planned", True),
    ]
    # every other check ran at its suite's severity, and says so
    assert conn.execute("select count(*) from ops.quality_results where run_date = %s and default_severity is null",
                        (DAY2,)).fetchone()[0] == 0
    logged = [r.getMessage() for r in caplog.records if r.getMessage().startswith("quality gate override")]
    assert len(logged) == 1, logged  # only a change of severity is logged (the file's warning was one already)
    assert "raw_orders.volume_vs_trailing_7d blocking -> warning (env ECRM_GATE_SEVERITY" in logged[0]
    assert "reason: Black Friday, planned" in logged[0]
