"""A throwaway PostgreSQL 15 cluster for the tests: started once per session in a temp folder on a
free loopback port, one fresh database per test, stopped and removed at the end.

The server refuses to run as root, so initdb and pg_ctl run as the `postgres` user (`runuser`) when
the tests run as root. Where the binaries live: TEST_PG_BIN, else the Debian package's
/usr/lib/postgresql/15/bin (`.ci/run` and `make test` install the package when it is missing).

A cluster that cannot start FAILS the tests that need it: a skip would hide that the PostgreSQL
backend went untested. TEST_POSTGRES=0 is the one explicit way to leave PostgreSQL out
(then only the SQLite variants run).
"""

from __future__ import annotations

import itertools
import os
import shutil
import socket
import subprocess
import tempfile
import time
from pathlib import Path


def _binaries() -> Path:
    """TEST_PG_BIN, else PostgreSQL 15's Debian folder, else the newest one installed."""
    if os.environ.get("TEST_PG_BIN"):
        return Path(os.environ["TEST_PG_BIN"])
    default = Path("/usr/lib/postgresql/15/bin")
    found = sorted(
        (p for p in Path("/usr/lib/postgresql").glob("*/bin") if p.parent.name.isdigit()),
        key=lambda p: int(p.parent.name),
    )
    return default if default.exists() or not found else found[-1]


PG_BIN = _binaries()


def wanted() -> bool:
    """False only when TEST_POSTGRES=0 says to leave PostgreSQL out."""
    return os.environ.get("TEST_POSTGRES", "1").lower() not in ("0", "false", "no", "off")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class Cluster:
    """One running cluster: `database()` makes an empty database and returns its URL."""

    def __init__(self, durable: bool = False) -> None:
        """`durable`: fsync and synchronous commits as a production server has them (benchmarks);
        the tests' cluster skips them, a throwaway cluster has nothing to lose."""
        for tool in ("initdb", "pg_ctl"):
            if not (PG_BIN / tool).exists():
                raise RuntimeError(
                    f"PostgreSQL binaries not found in {PG_BIN} (install the Debian package `postgresql`,"
                    " or set TEST_PG_BIN; TEST_POSTGRES=0 leaves PostgreSQL out)"
                )
        self.root = Path(tempfile.mkdtemp(prefix="seenext-pg-"))
        self.data = self.root / "data"
        self.socket_dir = self.root / "sock"
        self.data.mkdir()
        self.socket_dir.mkdir()
        self.as_postgres = os.geteuid() == 0
        if self.as_postgres:
            shutil.chown(self.root, "postgres")
            for sub in (self.data, self.socket_dir):
                shutil.chown(sub, "postgres")
        self.port = _free_port()
        self._names = itertools.count()
        self._run(
            str(PG_BIN / "initdb"), "-D", str(self.data), "-A", "trust", "-U", "postgres", "-E", "UTF8",
            "--no-sync", "--no-instructions",
        )  # fmt: skip
        options = f"-p {self.port} -k {self.socket_dir} -c listen_addresses=127.0.0.1 -c max_connections=200"
        if not durable:
            options += " -c fsync=off -c synchronous_commit=off -c full_page_writes=off"
        self._run(
            str(PG_BIN / "pg_ctl"), "-D", str(self.data), "-l", str(self.root / "server.log"),
            "-o", options, "-w", "-t", "60", "start",
        )  # fmt: skip
        self.admin_url = f"postgresql://postgres@127.0.0.1:{self.port}/postgres"

    def _run(self, *argv: str) -> None:
        command = ["runuser", "-u", "postgres", "--", *argv] if self.as_postgres else list(argv)
        done = subprocess.run(command, capture_output=True, text=True, timeout=120, check=False)
        if done.returncode != 0:
            log = self.root / "server.log"
            tail = log.read_text()[-2000:] if log.exists() else ""
            raise RuntimeError(f"{' '.join(argv[:1])} failed: {done.stdout}{done.stderr}{tail}")

    def database(self) -> str:
        """A new empty database on the cluster; its URL."""
        import psycopg

        name = f"t{os.getpid()}_{next(self._names)}"
        with psycopg.connect(self.admin_url, autocommit=True) as conn:
            conn.execute(f'CREATE DATABASE "{name}"')
        return f"postgresql://postgres@127.0.0.1:{self.port}/{name}"

    def drop(self, url: str) -> None:
        import psycopg

        name = url.rsplit("/", 1)[1]
        with psycopg.connect(self.admin_url, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')

    def stop(self) -> None:
        try:
            self._run(str(PG_BIN / "pg_ctl"), "-D", str(self.data), "-m", "immediate", "-w", "stop")
        finally:
            time.sleep(0.1)
            shutil.rmtree(self.root, ignore_errors=True)
