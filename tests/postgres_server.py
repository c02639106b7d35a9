"""A real PostgreSQL server on 127.0.0.1 for the outbox tests, started from Debian's
`postgresql` package in a temporary folder and stopped after the session.

Postgres refuses to run as root, so as root (a CI container) it runs as the package's
`postgres` user. Where no server binaries are installed, `missing()` says why, for a skip."""

import glob
import os
import shutil
import socket
import subprocess
import tempfile
import uuid
from pathlib import Path

import psycopg

USER = "marketing"


def _bin_dir() -> Path | None:
    on_path = shutil.which("initdb")
    if on_path:
        return Path(on_path).resolve().parent
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"))
    return Path(found[-1]).parent if found else None


def missing() -> str | None:
    """Why a server cannot be started here, or None."""
    if _bin_dir() is None:
        return "PostgreSQL is not installed (apt-get install postgresql; .ci/run does)"
    if os.geteuid() == 0 and shutil.which("runuser") is None:
        return "running as root without runuser, and Postgres refuses to run as root"
    return None


class PostgresServer:
    """`with PostgresServer() as pg:` then `pg.new_database()` gives a fresh, empty database."""

    def __init__(self, *, durable: bool = False) -> None:
        """`durable`: commits wait for the disk, as a production server's do (the tests do
        not need it; a benchmark of commits does)."""
        self.durable = durable
        bin_dir = _bin_dir()
        assert bin_dir is not None, missing()
        self.bin = bin_dir
        self.folder = Path(tempfile.mkdtemp(prefix="marketing-pg-"))
        self.port = _free_port()
        self.host = "127.0.0.1"

    def __enter__(self) -> "PostgresServer":
        data = self.folder / "data"
        if os.geteuid() == 0:
            shutil.chown(self.folder, "postgres")
        self._run("initdb", "-D", str(data), "-A", "trust", "-U", USER, "-E", "UTF8", "--no-sync")
        options = f"-h {self.host} -p {self.port} -k {self.folder}"
        if not self.durable:
            options += " -F -c fsync=off"
        self._run(
            "pg_ctl", "-D", str(data), "-o", options, "-l", str(self.folder / "log"), "-w", "start"
        )
        return self

    def __exit__(self, *exc: object) -> None:
        self._run("pg_ctl", "-D", str(self.folder / "data"), "-m", "immediate", "stop", check=False)
        shutil.rmtree(self.folder, ignore_errors=True)

    def dsn(self, dbname: str = "postgres") -> str:
        return f"host={self.host} port={self.port} user={USER} dbname={dbname}"

    def new_database(self) -> str:
        """A new empty database; returns its connection string."""
        name = f"t_{uuid.uuid4().hex[:12]}"
        with psycopg.connect(self.dsn(), autocommit=True) as conn:
            conn.execute(f"create database {name}")
        return self.dsn(name)

    def _run(self, tool: str, *args: str, check: bool = True) -> None:
        command = [str(self.bin / tool), *args]
        if os.geteuid() == 0:
            command = ["runuser", "-u", "postgres", "--", *command]
        done = subprocess.run(command, capture_output=True, text=True, timeout=120)
        if check and done.returncode != 0:
            log = self.folder / "log"
            tail = log.read_text()[-2000:] if log.exists() else ""
            raise RuntimeError(f"{tool} failed: {done.stderr.strip()} {tail}")


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])
