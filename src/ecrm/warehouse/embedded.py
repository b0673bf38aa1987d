"""An embedded PostgreSQL warehouse in a project folder, for the demo, the tests and laptops.

Why this shape (see docs/decisions.md): the binaries come from the `pgserver` wheel (PostgreSQL
16, bundled, so a machine with nothing but Python works) unless ECRM_PG_BIN points elsewhere; we
run initdb/pg_ctl ourselves instead of pgserver's own manager because that one listens on a unix
socket only and silently creates a system user when run as root. PostgreSQL refuses to run as
root, so when we are root the server runs as the unprivileged `postgres` (or `nobody`) user.
The server listens on 127.0.0.1 only, on a free port, with trust auth: a local development
warehouse, never a production one (point ECRM_WAREHOUSE_URL at that).
"""

from __future__ import annotations

import importlib.util
import os
import pwd
import shutil
import socket
import stat
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

import psycopg

DATABASE = "ecrm"
SUPERUSER = "postgres"

# Memory for an analytics workload instead of PostgreSQL's OLTP defaults (work_mem 4MB, 128MB
# buffers): the daily models aggregate and sort hundreds of thousands of customers, which spilled
# to disk by the megabyte; random_page_cost 1.1 because the data sits on SSD or in the page cache.
# docker-compose.yml's warehouse runs with the same settings (tests/test_compose.py checks).
SERVER_SETTINGS = {
    "shared_buffers": "1GB",
    "work_mem": "64MB",
    "maintenance_work_mem": "512MB",
    "effective_cache_size": "8GB",
    "random_page_cost": "1.1",
}


def find_pg_bin() -> Path:
    """ECRM_PG_BIN, else pgserver's bundled binaries, else the newest Debian-style system install."""
    if os.environ.get("ECRM_PG_BIN"):
        return Path(os.environ["ECRM_PG_BIN"])
    spec = importlib.util.find_spec("pgserver")
    if spec and spec.submodule_search_locations:
        bundled = Path(next(iter(spec.submodule_search_locations))) / "pginstall" / "bin"
        if (bundled / "postgres").exists():
            return bundled
    system = sorted(Path("/usr/lib/postgresql").glob("*/bin"), key=lambda p: int(p.parent.name))
    if system:
        return system[-1]
    if shutil.which("pg_ctl"):
        return Path(shutil.which("pg_ctl")).parent  # type: ignore[arg-type]
    raise RuntimeError("no PostgreSQL binaries: install the `pgserver` wheel or set ECRM_PG_BIN")


def _service_user() -> pwd.struct_passwd | None:
    """The user the server runs as: ourselves, or an unprivileged one when we are root."""
    if os.geteuid() != 0:
        return None
    for name in ("postgres", "nobody"):
        try:
            return pwd.getpwnam(name)
        except KeyError:
            continue
    raise RuntimeError("running as root and no unprivileged user (postgres, nobody) exists")


def _reachable(path: Path, user: pwd.struct_passwd) -> bool:
    """Can `user` traverse every parent folder of `path`? (/root is 0700, for instance.)"""
    groups = {user.pw_gid} | set(os.getgrouplist(user.pw_name, user.pw_gid))
    for folder in [path, *path.parents]:
        if not folder.exists():
            continue
        st = folder.stat()
        if st.st_uid == user.pw_uid:
            ok = st.st_mode & stat.S_IXUSR
        elif st.st_gid in groups:
            ok = st.st_mode & stat.S_IXGRP
        else:
            ok = st.st_mode & stat.S_IXOTH
        if not ok:
            return False
    return True


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@dataclass
class EmbeddedWarehouse:
    """A PostgreSQL server whose data lives in `folder` (created on first start)."""

    folder: Path

    def __post_init__(self) -> None:
        self.folder = Path(self.folder).resolve()
        self.user = _service_user()
        self.pg_bin = find_pg_bin()
        if self.user and not _reachable(self.pg_bin, self.user):
            # The venv sits where the service user cannot read it: use a shared copy.
            copy = Path("/var/tmp") / f"ecrm-pginstall-{self.user.pw_name}"
            if not (copy / "bin" / "postgres").exists():
                shutil.copytree(self.pg_bin.parent, copy, dirs_exist_ok=True)
                for p in [copy, *copy.rglob("*")]:
                    p.chmod(p.stat().st_mode | stat.S_IROTH | (stat.S_IXOTH if p.is_dir() or os.access(p, os.X_OK) else 0))
            self.pg_bin = copy / "bin"
        self.runtime = self.folder
        if self.user and not _reachable(self.folder.parent, self.user):
            self.runtime = Path("/var/tmp") / ("ecrm-" + self.folder.as_posix().strip("/").replace("/", "_"))
            if not self.port_file.exists() and self.runtime.exists():
                # Left by an earlier folder of the same path (pytest reuses names): never reuse its data.
                self._run_stop_quietly()
                shutil.rmtree(self.runtime, ignore_errors=True)

    # -- paths ---------------------------------------------------------------------------
    @property
    def pgdata(self) -> Path:
        return self.runtime / "pgdata"

    @property
    def logfile(self) -> Path:
        return self.runtime / "log" / "postgres.log"

    @property
    def port_file(self) -> Path:
        return self.folder / "port"

    # -- commands ------------------------------------------------------------------------
    def _run(self, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        kwargs: dict = {}
        if self.user:
            kwargs = {"user": self.user.pw_uid, "group": self.user.pw_gid, "extra_groups": []}
        env = {**os.environ, "LC_ALL": "C", "HOME": str(self.runtime)}
        return subprocess.run(
            [str(self.pg_bin / args[0]), *args[1:]],
            check=check, capture_output=True, text=True, cwd=self.runtime, env=env, **kwargs,
        )

    def _prepare_folders(self) -> None:
        for folder in (self.folder, self.runtime, self.logfile.parent):
            folder.mkdir(parents=True, exist_ok=True)
            if self.user:
                os.chown(folder, self.user.pw_uid, self.user.pw_gid)

    def is_running(self) -> bool:
        if not (self.pgdata / "PG_VERSION").exists():
            return False
        return self._run("pg_ctl", "status", "-D", str(self.pgdata), check=False).returncode == 0

    @property
    def port(self) -> int:
        return int(self.port_file.read_text())

    def url(self, database: str = DATABASE) -> str:
        return f"postgresql://{SUPERUSER}@127.0.0.1:{self.port}/{database}"

    def start(self) -> str:
        """Start (or reuse) the server and make sure the `ecrm` database exists; returns its URL."""
        self._prepare_folders()
        if not (self.pgdata / "PG_VERSION").exists():
            self._run("initdb", "-D", str(self.pgdata), "-U", SUPERUSER, "--auth=trust",
                      "--encoding=UTF8", "--locale=C", "--no-sync")
        if not self.is_running():
            port = _free_port()
            self.port_file.write_text(str(port))
            settings = " ".join(f"-c {name}={value}" for name, value in SERVER_SETTINGS.items())
            # fsync off: a local, rebuildable warehouse (tests, demo, benchmarks), never production
            options = (f"-p {port} -c listen_addresses=127.0.0.1 -c unix_socket_directories='' "
                       f"-c fsync=off -c synchronous_commit=off -c max_connections=100 {settings}")
            result = self._run("pg_ctl", "start", "-w", "-t", "60", "-D", str(self.pgdata),
                               "-l", str(self.logfile), "-o", options, check=False)
            if result.returncode != 0:
                log = self.logfile.read_text()[-2000:] if self.logfile.exists() else ""
                raise RuntimeError(f"PostgreSQL did not start: {result.stderr}\n{log}")
        self.create_database(DATABASE)
        return self.url()

    def create_database(self, name: str) -> str:
        with psycopg.connect(self.url("postgres"), autocommit=True) as conn:
            exists = conn.execute("select 1 from pg_database where datname = %s", (name,)).fetchone()
            if not exists:
                conn.execute(f'create database "{name}"')
        return self.url(name)

    def stop(self) -> None:
        if self.is_running():
            self._run("pg_ctl", "stop", "-D", str(self.pgdata), "-m", "fast", "-w")

    def _run_stop_quietly(self) -> None:
        if (self.pgdata / "PG_VERSION").exists():
            self._run("pg_ctl", "stop", "-D", str(self.pgdata), "-m", "immediate", check=False)

    def destroy(self) -> None:
        """Stop the server and delete its data (tests and benchmarks clean up after themselves)."""
        self.stop()
        shutil.rmtree(self.runtime, ignore_errors=True)
        shutil.rmtree(self.folder, ignore_errors=True)

    def status(self) -> str:
        if self.is_running():
            return f"running on port {self.port} ({self.pg_bin}), data in {self.pgdata}"
        return "stopped"


def wait_until_ready(url: str, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while True:
        try:
            psycopg.connect(url, connect_timeout=2).close()
            return
        except psycopg.OperationalError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.2)
