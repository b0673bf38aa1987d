"""Defect 10: the embedded warehouse when the venv sits in a folder the server's user cannot enter.

Run as root (CI is root), PostgreSQL runs as `postgres`, which cannot read a venv under /root or a
0700 `mktemp -d` folder: the binaries must be copied, with the `pgserver.libs` they load through
RPATH $ORIGIN/../../../pgserver.libs, to a copy keyed by version and content. These tests fail
loudly when not run as root (the scenario needs a second user)."""

from __future__ import annotations

import os
import shutil
import stat
import subprocess
import sys
import tempfile
from pathlib import Path

import psycopg
import pytest

from ecrm.warehouse import embedded
from ecrm.warehouse.embedded import EmbeddedWarehouse, pg_copy_dir, shared_pg_copy

ROOT = Path(__file__).resolve().parents[2]


def _pgserver_site() -> Path:
    import pgserver

    return Path(pgserver.__file__).resolve().parent.parent


def _private_site(version: str = "0.1.4") -> tuple[Path, Path]:
    """A 0700 folder holding pgserver's install and libraries at their wheel layout; returns (folder, bin)."""
    assert os.geteuid() == 0, "these tests reproduce a root-run embedded warehouse: run them as root (CI does)"
    private = Path(tempfile.mkdtemp(prefix="ecrm-private-"))
    assert stat.S_IMODE(private.stat().st_mode) == 0o700
    site = _pgserver_site()
    target = private / "site-packages"
    shutil.copytree(site / "pgserver" / "pginstall", target / "pgserver" / "pginstall", symlinks=True)
    shutil.copytree(site / "pgserver.libs", target / "pgserver.libs", symlinks=True)
    dist = target / f"pgserver-{version}.dist-info"
    dist.mkdir()
    (dist / "METADATA").write_text(f"Metadata-Version: 2.1\nName: pgserver\nVersion: {version}\n")
    return private, target / "pgserver" / "pginstall" / "bin"


@pytest.fixture
def private_site():
    private, pg_bin = _private_site()
    yield private, pg_bin
    shutil.rmtree(private, ignore_errors=True)


def _service_user():
    user = embedded._service_user()
    assert user is not None and user.pw_uid != 0
    return user


def test_a_venv_in_a_0700_folder_still_starts_a_server(private_site, tmp_path, monkeypatch):
    private, pg_bin = private_site
    monkeypatch.setenv("ECRM_PG_BIN", str(pg_bin))
    wh = EmbeddedWarehouse(tmp_path / "wh")
    try:
        assert wh.pg_bin != pg_bin, "the service user cannot reach the venv: a copy must be used"
        assert wh.pg_bin.is_relative_to(pg_copy_dir(pg_bin, wh.user))
        # the copy keeps the wheel's layout: RPATH $ORIGIN/../../../pgserver.libs resolves
        assert (wh.pg_bin / ".." / ".." / ".." / "pgserver.libs").resolve().is_dir()
        with psycopg.connect(wh.start()) as conn:
            assert conn.execute("select 6 * 7").fetchone()[0] == 42
        pid = int((wh.pgdata / "postmaster.pid").read_text().split()[0])
        assert os.stat(f"/proc/{pid}").st_uid == wh.user.pw_uid
    finally:
        wh.destroy()


def test_the_copy_is_keyed_by_version_and_content(private_site):
    private, pg_bin = private_site
    user = _service_user()
    first = pg_copy_dir(pg_bin, user)
    assert user.pw_name in first.name and "pgserver0.1.4" in first.name
    # a later pgserver: a new copy, never the old binaries
    dist = pg_bin.parents[2] / "pgserver-0.1.4.dist-info"
    dist.rename(pg_bin.parents[2] / "pgserver-0.2.0.dist-info")
    (pg_bin.parents[2] / "pgserver-0.2.0.dist-info" / "METADATA").write_text("Name: pgserver\nVersion: 0.2.0\n")
    upgraded = pg_copy_dir(pg_bin, user)
    assert upgraded != first and "pgserver0.2.0" in upgraded.name
    # same version, changed files (a rebuilt wheel): a new copy too
    (pg_bin.parent / "share" / "extra.txt").write_text("changed")
    assert pg_copy_dir(pg_bin, user) not in (first, upgraded)


def test_the_copy_is_complete_checked_and_shared(private_site):
    """Made in a staging folder and renamed: concurrent starters end on one complete copy."""
    private, pg_bin = private_site
    user = _service_user()
    (pg_bin.parent / "share" / "marker").write_text(private.name)  # a copy of its own for this test
    target = pg_copy_dir(pg_bin, user)
    try:
        from concurrent.futures import ThreadPoolExecutor

        with ThreadPoolExecutor(4) as pool:
            bins = list(pool.map(lambda _: shared_pg_copy(pg_bin, user), range(4)))
        assert len(set(bins)) == 1 and bins[0] == target / "pgserver" / "pginstall" / "bin"
        assert not [p for p in target.parent.glob(f".{target.name}.*")], "staging folders left behind"
        for program in ("initdb", "postgres", "pg_ctl"):
            result = subprocess.run([str(bins[0] / program), "--version"], user=user.pw_uid, group=user.pw_gid,
                                    extra_groups=[], capture_output=True, text=True, cwd="/")
            assert result.returncode == 0, (program, result.stderr)
        st = target.stat()
        assert st.st_uid == 0 and not st.st_mode & (stat.S_IWGRP | stat.S_IWOTH)
    finally:
        shutil.rmtree(target, ignore_errors=True)


def test_a_clone_in_a_0700_folder_runs_the_embedded_warehouse(tmp_path):
    """`git clone` of this repository into a `mktemp -d` folder, its venv's pgserver there too, started
    by root through the clone's own code (ECRM_HOME, PYTHONPATH): the first start must work."""
    private, _ = _private_site()
    try:
        clone = private / "repo"
        subprocess.run(["git", "clone", "--quiet", "--no-hardlinks", str(ROOT), str(clone)], check=True)
        site = clone / ".venv" / "lib" / "site-packages"
        site.parent.mkdir(parents=True)
        (private / "site-packages").rename(site)
        env = {**os.environ, "ECRM_HOME": str(clone), "PYTHONPATH": str(clone / "src"),
               "ECRM_PG_BIN": str(site / "pgserver" / "pginstall" / "bin")}
        env.pop("ECRM_WAREHOUSE_URL", None)
        script = ("import ecrm, psycopg; from ecrm.warehouse import resolve_url; "
                  "from ecrm.warehouse.embedded import EmbeddedWarehouse; from ecrm.settings import get_settings; "
                  f"assert ecrm.__file__.startswith({str(clone)!r}), ecrm.__file__; "
                  "url = resolve_url(); print(psycopg.connect(url).execute('select 42').fetchone()[0]); "
                  "EmbeddedWarehouse(get_settings().embedded_dir).destroy()")
        result = subprocess.run([sys.executable, "-c", script], env=env, capture_output=True, text=True,
                                cwd=clone, timeout=300)
        assert result.returncode == 0, result.stderr[-3000:]
        assert result.stdout.strip().endswith("42")
    finally:
        shutil.rmtree(private, ignore_errors=True)
