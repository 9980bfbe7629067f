"""Throwaway PostgreSQL and MariaDB servers for the tests: real servers, started in a temporary
folder on a free port, stopped and deleted afterwards.

As root (CI) the servers run as ``nobody`` through ``setpriv``: neither server agrees to run as
root, and the test data should not be owned by it. Each server gets an admin account that may
do anything (``text2sql``, no password, for loading data) and a password account
(``reader``/``READER_PASSWORD``) for the password paths. Nothing here listens beyond
127.0.0.1.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

PG_BIN_DIRS = sorted(Path("/usr/lib/postgresql").glob("*/bin"), reverse=True)
ADMIN = "text2sql"
READER = "reader"
READER_PASSWORD = "reader-pw-7f3a"  # a throwaway account of a throwaway local server


@dataclass
class Server:
    kind: str  # postgresql | mysql
    host: str
    port: int
    folder: Path
    samples: dict[str, str] = field(default_factory=dict)  # db_id -> URL, once loaded
    startup_s: float = 0.0

    def url(self, database: str, user: str = ADMIN, password: str | None = None) -> str:
        scheme = "postgresql+psycopg" if self.kind == "postgresql" else "mysql+pymysql"
        auth = f"{user}:{password}" if password else user
        return f"{scheme}://{auth}@{self.host}:{self.port}/{database}"

    def server_url(self, user: str = ADMIN) -> str:
        """The server without a database (what scripts/load_sample_dbs.py takes)."""
        return self.url("", user).rstrip("/")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _as_user() -> list[str]:
    """Command prefix that drops root to ``nobody``; nothing when not root."""
    if os.geteuid() != 0:
        return []
    return ["setpriv", "--reuid=nobody", "--regid=nogroup", "--clear-groups"]


def _own(folder: Path) -> None:
    if os.geteuid() == 0:
        shutil.chown(folder, "nobody", "nogroup")


def _run(cmd: list[str], **kw) -> subprocess.CompletedProcess:
    return subprocess.run(_as_user() + cmd, capture_output=True, text=True, check=True, **kw)


def postgres_bin() -> Path | None:
    return next((d for d in PG_BIN_DIRS if (d / "initdb").is_file()), None)


def mariadb_bin() -> Path | None:
    found = shutil.which("mariadbd") or (
        "/usr/sbin/mariadbd" if Path("/usr/sbin/mariadbd").is_file() else None
    )
    return Path(found) if found and shutil.which("mariadb-install-db") else None


@contextlib.contextmanager
def postgres_server() -> Iterator[Server]:
    bindir = postgres_bin()
    if bindir is None:
        raise RuntimeError("PostgreSQL binaries not found (apt-get install postgresql)")
    folder = Path(tempfile.mkdtemp(prefix="t2s-pg-"))
    os.chmod(folder, 0o755)
    _own(folder)
    data, port = folder / "data", free_port()
    try:
        _run([str(bindir / "initdb"), "-D", str(data), "-U", ADMIN, "--auth=trust",
              "-E", "UTF8", "--no-locale", "--no-sync"])  # fmt: skip
        # The reader must give its password; everyone else is trusted (local test server).
        (data / "pg_hba.conf").write_text(
            f"host all {READER} 127.0.0.1/32 scram-sha-256\n"
            "host all all 127.0.0.1/32 trust\nlocal all all trust\n"
        )
        options = (f"-c listen_addresses=127.0.0.1 -p {port} -k {folder} -c fsync=off "
                   "-c synchronous_commit=off -c full_page_writes=off")  # fmt: skip
        _run([str(bindir / "pg_ctl"), "-D", str(data), "-o", options, "-l",
              str(folder / "log"), "-w", "-t", "60", "start"])  # fmt: skip
        server = Server("postgresql", "127.0.0.1", port, folder)
        admin_sql(server, f"CREATE ROLE {READER} LOGIN PASSWORD '{READER_PASSWORD}'")
        yield server
    finally:
        with contextlib.suppress(Exception):
            _run([str(bindir / "pg_ctl"), "-D", str(data), "-m", "immediate", "-w", "stop"])
        shutil.rmtree(folder, ignore_errors=True)


@contextlib.contextmanager
def mariadb_server() -> Iterator[Server]:
    mariadbd = mariadb_bin()
    if mariadbd is None:
        raise RuntimeError("MariaDB not found (apt-get install mariadb-server)")
    folder = Path(tempfile.mkdtemp(prefix="t2s-maria-"))
    os.chmod(folder, 0o755)
    _own(folder)
    data, sock, port = folder / "data", folder / "mysqld.sock", free_port()
    common = ["--no-defaults", f"--datadir={data}"]
    proc = None
    try:
        _run(["mariadb-install-db", *common, "--auth-root-authentication-method=normal",
              "--skip-test-db", "--skip-name-resolve"], timeout=120)  # fmt: skip
        proc = subprocess.Popen(
            _as_user()
            + [
                str(mariadbd),
                *common,
                f"--socket={sock}",
                f"--port={port}",
                "--bind-address=127.0.0.1",
                "--skip-name-resolve",
                f"--pid-file={folder / 'mysqld.pid'}",
                f"--log-error={folder / 'log'}",
                "--innodb-buffer-pool-size=32M",
                "--innodb-log-file-size=8M",
                "--innodb-flush-log-at-trx-commit=0",
                "--skip-log-bin",
            ],  # fmt: skip
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        _wait_for_socket(sock, proc, folder / "log")
        import pymysql

        con = pymysql.connect(unix_socket=str(sock), user="root", autocommit=True)
        try:
            with con.cursor() as cur:
                for stmt in (
                    f"CREATE USER '{ADMIN}'@'%'",
                    f"GRANT ALL ON *.* TO '{ADMIN}'@'%' WITH GRANT OPTION",
                    f"CREATE USER '{READER}'@'%' IDENTIFIED BY '{READER_PASSWORD}'",
                ):
                    cur.execute(stmt)
        finally:
            con.close()
        yield Server("mysql", "127.0.0.1", port, folder)
    finally:
        if proc is not None:
            proc.terminate()
            try:
                proc.wait(30)
            except subprocess.TimeoutExpired:
                proc.kill()
        shutil.rmtree(folder, ignore_errors=True)


def _wait_for_socket(sock: Path, proc: subprocess.Popen, log: Path) -> None:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            tail = log.read_text(errors="replace")[-1500:] if log.is_file() else ""
            raise RuntimeError(f"mariadbd exited with {proc.returncode}: {tail}")
        if sock.exists():
            return
        time.sleep(0.1)
    raise RuntimeError("mariadbd did not start within 60 s")


def admin_sql(server: Server, *statements: str, database: str | None = None) -> None:
    """Run statements as the admin account (autocommit): setup only, never the code under test."""
    if server.kind == "postgresql":
        import psycopg

        with psycopg.connect(
            host=server.host, port=server.port, user=ADMIN, dbname=database or "postgres",
            autocommit=True,
        ) as con:  # fmt: skip
            for stmt in statements:
                con.execute(stmt)
        return
    import pymysql

    con = pymysql.connect(
        host=server.host, port=server.port, user=ADMIN, database=database, autocommit=True
    )
    try:
        with con.cursor() as cur:
            for stmt in statements:
                cur.execute(stmt)
    finally:
        con.close()


# --- pytest fixtures (imported by conftest.py, so each server starts once per session) -----


def _load_samples(target: str) -> dict[str, str]:
    """scripts/load_sample_dbs.py into ``target``: {db_id: URL}."""
    import json
    import sys

    repo = Path(__file__).resolve().parent.parent
    out = subprocess.run(
        [sys.executable, str(repo / "scripts" / "load_sample_dbs.py"), target],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert out.returncode == 0, out.stderr[-2000:]
    return {r["db_id"]: r["url"] for r in map(json.loads, out.stdout.splitlines())}


def _server_fixture(start, found, what: str):
    import pytest

    @pytest.fixture(scope="session")
    def fixture():
        if not found():
            pytest.skip(f"{what} is not installed here (.ci/run installs it with apt-get)")
        started = time.monotonic()
        with start() as server:
            server.samples = _load_samples(server.server_url())
            server.startup_s = time.monotonic() - started
            yield server

    return fixture


pg_server = _server_fixture(postgres_server, postgres_bin, "PostgreSQL")
maria_server = _server_fixture(mariadb_server, mariadb_bin, "MariaDB")


def duckdb_samples_fixture():
    import pytest

    @pytest.fixture(scope="session")
    def duck_samples(tmp_path_factory) -> dict[str, str]:
        return _load_samples("duckdb:///" + str(tmp_path_factory.mktemp("duckdb-samples")))

    return duck_samples


duck_samples = duckdb_samples_fixture()
