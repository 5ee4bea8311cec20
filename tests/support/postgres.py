"""A throwaway PostgreSQL server for tests: initdb into a temporary folder, start `postgres` on a
free loopback port, hand out fresh databases, remove everything at the end.

Runs the server as the `postgres` system user when the tests run as root (postgres refuses root).
Use `require_postgres()` in fixtures: it skips with the reason when the binaries are missing, and
fails instead under CI (CI=true), where a missing service is a broken setup.
"""

from __future__ import annotations

import glob
import itertools
import logging
import os
import pwd
import shutil
import socket
import subprocess
import tempfile
import time
from pathlib import Path

log = logging.getLogger(__name__)

SUPERUSER = "qc"
PREFIX = "qc-pg-"  # temporary folders of test servers
OWNER_FILE = "owner.pid"  # the test process that started the server
START_TIMEOUT_S = 30


class PostgresUnavailable(RuntimeError):
    """The PostgreSQL binaries (or a user to run them as) are missing."""


def find_bindir() -> Path:
    """Folder holding initdb/pg_ctl/postgres: $QC_PG_BINDIR, Debian's layout, or the PATH."""
    candidates = [os.environ.get("QC_PG_BINDIR", "")]
    candidates += sorted(glob.glob("/usr/lib/postgresql/*/bin"), key=_version_key, reverse=True)
    on_path = shutil.which("pg_ctl")
    if on_path:
        candidates.append(str(Path(on_path).parent))
    for folder in filter(None, candidates):
        if all((Path(folder) / exe).exists() for exe in ("initdb", "pg_ctl", "postgres")):
            return Path(folder)
    raise PostgresUnavailable(
        "PostgreSQL binaries not found (looked in $QC_PG_BINDIR, /usr/lib/postgresql/*/bin and "
        "PATH); install them with `apt-get install postgresql`"
    )


def _version_key(path: str) -> float:
    try:
        return float(Path(path).parent.name)
    except ValueError:
        return 0.0


def free_port() -> int:
    """A TCP port free on 127.0.0.1 right now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class PostgresServer:
    """One server in a temporary folder; start(), create_database(), stop()."""

    def __init__(self) -> None:
        self.bindir = find_bindir()
        self.run_as = _run_as_user()
        self.port = free_port()
        self.root = Path(tempfile.mkdtemp(prefix=PREFIX))
        self.data = self.root / "data"
        self._names = itertools.count(1)
        self._started = False

    def _cmd(self, exe: str, *args: str) -> list[str]:
        cmd = [str(self.bindir / exe), *args]
        return ["runuser", "-u", self.run_as, "--", *cmd] if self.run_as else cmd

    def start(self) -> PostgresServer:
        """initdb and start; raises RuntimeError with the server log if it does not come up."""
        reap_stale(self)
        (self.root / OWNER_FILE).write_text(str(os.getpid()))
        if self.run_as:
            pw = pwd.getpwnam(self.run_as)
            os.chown(self.root, pw.pw_uid, pw.pw_gid)
        os.chmod(self.root, 0o700)
        _check(
            self._cmd(
                "initdb",
                "-D",
                str(self.data),
                "-U",
                SUPERUSER,
                "--auth=trust",
                "--no-sync",
                "-E",
                "UTF8",
                "--locale=C",
            ),
            "initdb",
        )
        options = (
            f"-c listen_addresses=127.0.0.1 -c port={self.port} -k {self.root} "
            "-c fsync=off -c synchronous_commit=off -c full_page_writes=off -c max_connections=200"
        )
        _check(
            self._cmd(
                "pg_ctl",
                "-D",
                str(self.data),
                "-l",
                str(self.root / "log"),
                "-o",
                options,
                "-w",
                "-t",
                str(START_TIMEOUT_S),
                "start",
            ),
            "pg_ctl start",
            log_file=self.root / "log",
        )
        self._started = True
        log.info("PostgreSQL test server on 127.0.0.1:%d (%s)", self.port, self.root)
        return self

    def url(self, database: str = "postgres") -> str:
        """SQLAlchemy URL (psycopg 3) of a database on this server."""
        return f"postgresql+psycopg://{SUPERUSER}@127.0.0.1:{self.port}/{database}"

    def create_database(self, prefix: str = "qc_test") -> str:
        """Create an empty database and return its URL."""
        import psycopg

        name = f"{prefix}_{next(self._names)}"
        dsn = f"host=127.0.0.1 port={self.port} user={SUPERUSER} dbname=postgres"
        with psycopg.connect(dsn, autocommit=True) as conn:
            conn.execute(f'CREATE DATABASE "{name}"')
        return self.url(name)

    def stop(self) -> None:
        """Stop the server and delete its folder."""
        if self._started:
            subprocess.run(
                self._cmd("pg_ctl", "-D", str(self.data), "-m", "immediate", "stop"),
                capture_output=True,
                check=False,
                cwd="/",
            )
            self._started = False
        shutil.rmtree(self.root, ignore_errors=True)


def reap_stale(server: PostgresServer) -> None:
    """Stop and delete servers whose test run was killed before it could stop them."""
    for folder in Path(tempfile.gettempdir()).glob(f"{PREFIX}*"):
        owner = folder / OWNER_FILE
        try:
            pid = int(owner.read_text())
        except (OSError, ValueError):
            continue
        if folder == server.root or _alive(pid):
            continue
        log.info("stopping a PostgreSQL test server left by process %d (%s)", pid, folder)
        subprocess.run(
            server._cmd("pg_ctl", "-D", str(folder / "data"), "-m", "immediate", "stop"),
            capture_output=True,
            check=False,
            cwd="/",
        )
        shutil.rmtree(folder, ignore_errors=True)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _run_as_user() -> str | None:
    """None when not root; else the unprivileged user to run the server as."""
    if os.geteuid() != 0:
        return None
    for name in (os.environ.get("QC_PG_USER"), "postgres", "nobody"):
        if not name:
            continue
        try:
            pwd.getpwnam(name)
        except KeyError:
            continue
        if shutil.which("runuser") is None:
            raise PostgresUnavailable("running as root and `runuser` is missing")
        return name
    raise PostgresUnavailable("running as root and no unprivileged user to run postgres as")


def _check(cmd: list[str], what: str, log_file: Path | None = None) -> None:
    proc = subprocess.run(cmd, capture_output=True, text=True, check=False, cwd="/")
    if proc.returncode != 0:
        extra = ""
        if log_file is not None and log_file.exists():
            extra = log_file.read_text(errors="replace")[-2000:]
        raise RuntimeError(f"{what} failed ({proc.returncode}): {proc.stderr[-2000:]}{extra}")


def require_postgres() -> PostgresServer:
    """Start a server, or skip the test (fail under CI=true) when PostgreSQL is missing."""
    import pytest

    try:
        return PostgresServer().start()
    except PostgresUnavailable as exc:
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail(f"CI=true and PostgreSQL is unavailable: {exc}", pytrace=False)
        pytest.skip(f"PostgreSQL unavailable: {exc}")
    raise AssertionError("unreachable")  # pragma: no cover


def wait_ready(server: PostgresServer, timeout: float = 10.0) -> None:
    """Wait until the server accepts connections (pg_ctl -w normally did already)."""
    import psycopg

    deadline = time.monotonic() + timeout
    while True:
        try:
            psycopg.connect(
                f"host=127.0.0.1 port={server.port} user={SUPERUSER} dbname=postgres",
                connect_timeout=2,
            ).close()
            return
        except psycopg.OperationalError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.1)
