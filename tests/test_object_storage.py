"""A whole day with the landing zone, the outbox and the reports on object storage: a local S3 server
(moto in server mode, on 127.0.0.1) reached through s3fs as a real bucket would be, configured only by
the environment (ECRM_LANDING/_OUTBOX/_REPORTS=s3://..., AWS_ENDPOINT_URL, fake credentials). The day
runs through the pipeline's stage functions, as the DAG tasks call them; what users read is then
checked in the bucket, and the local working folders are checked to hold none of it."""

from __future__ import annotations

import csv
import hashlib
import io
import json
import os
import shutil
import socket
from datetime import date

import psycopg
import pytest

from conftest import ROOT
from ecrm.intervals import day_interval

pytestmark = pytest.mark.slow

START = date(2026, 10, 1)
BUCKET = "ecrm-test"
# fake credentials, and no profile or config of the machine's user
ENV = {"AWS_ACCESS_KEY_ID": "test", "AWS_SECRET_ACCESS_KEY": "test", "AWS_DEFAULT_REGION": "us-east-1",
       "AWS_CONFIG_FILE": os.devnull, "AWS_SHARED_CREDENTIALS_FILE": os.devnull}
UNSET = ("AWS_SESSION_TOKEN", "AWS_PROFILE")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture(scope="module")
def s3(tmp_path_factory):
    """A moto S3 server on a free local port; the environment points s3fs (botocore) at it."""
    import s3fs
    from moto.server import ThreadedMotoServer

    port = free_port()
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    env = {**ENV, "AWS_ENDPOINT_URL": f"http://127.0.0.1:{port}"}
    saved = {k: os.environ.get(k) for k in (*env, *UNSET)}
    os.environ.update(env)
    for key in UNSET:
        os.environ.pop(key, None)
    s3fs.S3FileSystem.clear_instance_cache()
    fs = s3fs.S3FileSystem()
    fs.mkdir(BUCKET)
    try:
        yield fs
    finally:
        s3fs.S3FileSystem.clear_instance_cache()
        server.stop()
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value


@pytest.fixture(scope="module")
def day_on_s3(s3, warehouse, tmp_path_factory):
    """Simulate a small shop locally, upload its landing files, run the day with every output on s3://."""
    from ecrm.pipeline import SOURCES, build_marts, ingest_initial, ingest_interval, publish_segments
    from ecrm.report import write_report
    from ecrm.simulate import ShopSimulator

    sim_dir, work = tmp_path_factory.mktemp("sim"), tmp_path_factory.mktemp("work")
    sim = ShopSimulator(landing=sim_dir / "landing", outbox=sim_dir / "outbox", truth=sim_dir / "truth",
                        start=START, customers=300, seed=11)
    sim.write_initial()
    sim.write_day(START)
    s3.put(str(sim_dir / "landing"), f"{BUCKET}/landing", recursive=True)

    # A worker: the installed package and a copy of the dbt project and the suites (ECRM_HOME), no checkout.
    home = tmp_path_factory.mktemp("home")
    shutil.copytree(ROOT / "dbt_project", home / "dbt_project", ignore=shutil.ignore_patterns("target", "logs"))
    shutil.copytree(ROOT / "expectations", home / "expectations", ignore=shutil.ignore_patterns("uncommitted"))
    env = {"ECRM_HOME": str(home), "ECRM_DATA_DIR": str(work / "data"), "ECRM_LANDING": f"s3://{BUCKET}/landing",
           "ECRM_OUTBOX": f"s3://{BUCKET}/outbox", "ECRM_REPORTS": f"s3://{BUCKET}/reports",
           "XDG_CACHE_HOME": str(tmp_path_factory.mktemp("cache")), "ECRM_MAILER": "outbox"}
    # GX's results and dbt's artifacts: scratch in the worker's copy (ECRM_HOME)
    unset = ("ECRM_GX_PROJECT_DIR", "DBT_TARGET_PATH", "DBT_LOG_PATH")
    saved = {k: os.environ.get(k) for k in (*env, *unset)}
    cwd = os.getcwd()
    os.environ.update(env)
    for key in unset:
        os.environ.pop(key, None)
    os.chdir(work)
    try:
        url = warehouse.create_database("object_storage")
        ingest_initial(START, url=url)
        loads = {source: ingest_interval(source, *day_interval(START), url=url) for source in SOURCES}
        build_marts(*day_interval(START), url=url)
        pushed = publish_segments(*day_interval(START), url=url)
        report = write_report(START, url)
    finally:
        os.chdir(cwd)
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value
    yield {"url": url, "work": work, "home": home, "sim_dir": sim_dir, "loads": loads, "pushed": pushed,
           "report": report, "fs": s3}


def test_the_day_loads_from_the_bucket(day_on_s3):
    with psycopg.connect(day_on_s3["url"]) as conn:
        ledger = conn.execute("select source, count(*), sum(rows_read), sum(rows_loaded + rows_quarantined) "
                              "from ops.load_ledger where status = 'succeeded' group by source").fetchall()
    assert {"orders", "web_logs", "email_events"} <= {source for source, *_ in ledger}
    for source, files, read, accounted in ledger:
        assert files > 0 and read == accounted, source
    assert all(load["files"] for load in day_on_s3["loads"].values())


def test_outbox_files_and_manifest_are_in_the_bucket(day_on_s3):
    fs, day = day_on_s3["fs"], START.isoformat()
    folder = f"{BUCKET}/outbox/{day}"
    manifest = json.loads(fs.cat_file(f"{folder}/manifest.json"))
    with psycopg.connect(day_on_s3["url"]) as conn:
        published: dict[str, list[tuple]] = {}
        for audience, *row in conn.execute(
                "select audience, customer_id, email, coalesce(first_name, ''), segment "
                "from published.audience_members where as_of_date = %s order by 1, 2, 3", (START,)):
            published.setdefault(audience, []).append(tuple(row))
    assert published and set(manifest["audiences"]) == set(published)
    assert manifest["as_of_date"] == day
    for audience, entry in manifest["audiences"].items():
        data = fs.cat_file(f"{folder}/{entry['file']}")
        assert hashlib.sha256(data).hexdigest() == entry["sha256"]
        rows = list(csv.reader(io.StringIO(data.decode())))
        assert tuple(rows[0]) == ("customer_id", "email", "first_name", "segment")
        assert sorted(tuple(r) for r in rows[1:]) == sorted(published[audience]), audience
        assert entry["rows"] == len(published[audience])
    assert fs.exists(f"{folder}/changes.csv")
    assert day_on_s3["pushed"]["outbox"] == f"s3://{folder}"


def test_report_is_in_the_bucket(day_on_s3):
    fs, day = day_on_s3["fs"], START.isoformat()
    for name in ("index.html", "email.html", "email.eml"):
        assert fs.size(f"{BUCKET}/reports/{day}/{name}") > 0, name
    index = fs.cat_file(f"{BUCKET}/reports/{day}/index.html").decode()
    assert index.startswith("<!doctype html>") or "<html" in index[:500]
    assert day_on_s3["report"]["index"] == f"s3://{BUCKET}/reports/{day}/index.html"


def test_nothing_of_it_is_written_locally(day_on_s3):
    work = day_on_s3["work"]
    local = sorted(str(p.relative_to(work)) for p in work.rglob("*"))
    outputs = [p for p in local if p.split(os.sep)[-1] in ("manifest.json", "changes.csv", "index.html",
                                                           "email.html", "email.eml")
               or p.endswith(".csv") or p.split(os.sep)[0:2] in (["data", "outbox"], ["data", "reports"])]
    assert not outputs, outputs


def test_the_worker_used_its_own_copy_of_the_project(day_on_s3):
    """dbt and GX ran from ECRM_HOME (a copy), not from the repository the package was installed from."""
    home = day_on_s3["home"]
    assert (home / "dbt_project" / "target" / "manifest.json").exists()
    assert list((home / "expectations" / "gx" / "uncommitted" / "validations").rglob("*.json"))


def test_the_simulator_writes_to_a_url_too(day_on_s3, tmp_path):
    """`ecrm simulate` with ECRM_LANDING=s3://...: the same files as in a local folder, byte for byte."""
    from ecrm.simulate import ShopSimulator

    fs, local = day_on_s3["fs"], day_on_s3["sim_dir"] / "landing"
    sim = ShopSimulator(landing=f"s3://{BUCKET}/simulated", outbox=f"s3://{BUCKET}/outbox", truth=tmp_path / "truth",
                        start=START, customers=300, seed=11)
    sim.write_initial()
    sim.write_day(START)
    expected = {str(p.relative_to(local)): p.read_bytes() for p in local.rglob("*") if p.is_file()}
    written = {key.removeprefix(f"{BUCKET}/simulated/"): fs.cat_file(key)
               for key in fs.find(f"{BUCKET}/simulated")}
    assert expected and written == expected
