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

import hashlib
import importlib.util
import logging
import os
import pwd
import shutil
import socket
import stat
import subprocess
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import psycopg

log = logging.getLogger(__name__)

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


# Where shared copies of the binaries go when the service user cannot reach the venv.
COPY_ROOT = Path("/var/tmp")


def _install_layout(pg_bin: Path) -> tuple[Path, list[Path]]:
    """(base, folders to copy, relative to base) for the install holding `pg_bin`.

    pgserver's binaries load libpq & co. from the wheel's `pgserver.libs` through
    RPATH $ORIGIN/../../../pgserver.libs, so a copy must keep `pgserver/pginstall` and
    `pgserver.libs` side by side under one base (site-packages). Other installs are copied whole.
    """
    install = pg_bin.parent
    site = install.parent.parent
    if install.parent.name == "pgserver" and (site / "pgserver.libs").is_dir():
        return site, [Path("pgserver") / install.name, Path("pgserver.libs")]
    return install.parent, [Path(install.name)]


def _install_version(pg_bin: Path) -> str:
    """pgserver's version when the binaries come from its wheel (its dist-info sits beside it)."""
    site = pg_bin.parent.parent.parent
    for metadata in sorted(site.glob("pgserver-*.dist-info/METADATA")):
        for line in metadata.read_text().splitlines():
            if line.startswith("Version:"):
                return "pgserver" + line.split(":", 1)[1].strip()
    return "pg"


def _install_digest(base: Path, parts: list[Path]) -> str:
    """A short hash of every file's path, size and mtime: a changed install gets a new copy."""
    h = hashlib.sha256()
    for part in parts:
        for path in sorted((base / part).rglob("*")):
            st = path.lstat()
            h.update(f"{path.relative_to(base)}\0{st.st_size}\0{st.st_mtime_ns}\0{stat.S_IFMT(st.st_mode)}\n".encode())
    return h.hexdigest()[:12]


def pg_copy_dir(pg_bin: Path, user: pwd.struct_passwd) -> Path:
    """The shared copy's folder, keyed by user, version and content (never reused across them)."""
    base, parts = _install_layout(pg_bin)
    name = f"ecrm-pginstall-{user.pw_name}-{_install_version(pg_bin)}-{_install_digest(base, parts)}"
    return COPY_ROOT / name


def _check_binaries(pg_bin: Path, user: pwd.struct_passwd) -> None:
    """Run initdb/postgres/pg_ctl --version as the service user: the libraries resolve, the files can run."""
    for program in ("initdb", "postgres", "pg_ctl"):
        result = subprocess.run([str(pg_bin / program), "--version"], capture_output=True, text=True,
                                user=user.pw_uid, group=user.pw_gid, extra_groups=[], cwd="/", check=False)
        if result.returncode != 0:
            raise RuntimeError(f"{pg_bin / program} --version exited {result.returncode} as {user.pw_name}: "
                               f"{(result.stderr or result.stdout).strip()[:500]}")


def _trusted(folder: Path) -> bool:
    """Ours and writable by nobody else (the copy lives in a world-writable folder)."""
    st = folder.lstat()
    return stat.S_ISDIR(st.st_mode) and st.st_uid == os.geteuid() and not st.st_mode & (stat.S_IWGRP | stat.S_IWOTH)


def shared_pg_copy(pg_bin: Path, user: pwd.struct_passwd) -> Path:
    """A copy of the binaries and the libraries they load where `user` can run them; returns its bin/.

    The copy is made in a temporary folder, checked (`--version` as `user`), then renamed into
    place, so a process never sees half a copy and two processes starting at once both end up on
    one complete copy (the loser of the rename drops its own).
    """
    base, parts = _install_layout(pg_bin)
    target = pg_copy_dir(pg_bin, user)
    copied_bin = target / parts[0] / "bin"
    if target.exists():
        if not _trusted(target):
            raise RuntimeError(f"{target} is not owned by us or is writable by others: remove it")
        return copied_bin
    staging = Path(tempfile.mkdtemp(prefix=f".{target.name}.", dir=COPY_ROOT))
    try:
        for part in parts:
            shutil.copytree(base / part, staging / part, symlinks=True)
        for p in [staging, *staging.rglob("*")]:
            if p.is_symlink():
                continue
            mode = p.stat().st_mode
            readable = mode | stat.S_IRUSR | stat.S_IRGRP | stat.S_IROTH
            if p.is_dir() or mode & stat.S_IXUSR:
                readable |= stat.S_IXUSR | stat.S_IXGRP | stat.S_IXOTH
            p.chmod(readable & ~(stat.S_IWGRP | stat.S_IWOTH))
        _check_binaries(staging / parts[0] / "bin", user)
        try:
            staging.rename(target)
        except OSError:
            if not target.exists():
                raise
            # another process renamed its complete copy first: use that one
        else:
            log.info("copied PostgreSQL binaries to %s (the venv is not reachable by %s)", target, user.pw_name)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    if not _trusted(target):
        raise RuntimeError(f"{target} is not owned by us or is writable by others: remove it")
    return copied_bin


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
            # The venv sits where the service user cannot read it (a clone in /root, a 0700
            # mktemp folder): run a shared, verified copy of the binaries and their libraries.
            self.pg_bin = shared_pg_copy(self.pg_bin, self.user)
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
        if self._run("pg_ctl", "status", "-D", str(self.pgdata), check=False).returncode != 0:
            return False
        return not self._crashed()

    def _crashed(self) -> bool:
        """pg_ctl (and the postmaster's own lock-file check) only ask whether the pid exists: a
        postmaster that was killed (OOM, kill -9) and never reaped by its parent is a zombie, which
        would make `start` reuse a dead server and a new postmaster refuse the stale lock file."""
        try:
            pid = (self.pgdata / "postmaster.pid").read_text().split()[0]
            state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
        except (OSError, IndexError):
            return False  # no /proc (not Linux) or no pid file: trust pg_ctl
        return state == "Z"

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
            if self._crashed():
                (self.pgdata / "postmaster.pid").unlink()  # its postmaster is dead: the lock is stale
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
