"""Embedded PostGIS: initialise and run a private PostgreSQL cluster under the data directory.

PostgreSQL refuses to run as root, so when we are root the cluster is owned by and run as the
``postgres`` system user (created by the Debian package). The cluster listens on loopback only, on a
private port, with a socket directory inside the cluster, and trusts local connections.
"""

from __future__ import annotations

import logging
import os
import pwd
import shutil
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

from amberwatch.errors import AmberWatchError

log = logging.getLogger(__name__)

DB_NAME = "amberwatch"
DB_USER = "amberwatch"


class EmbeddedDatabaseError(AmberWatchError):
    pass


@dataclass
class EmbeddedPostgres:
    """A PostgreSQL cluster in ``root`` (``root/pgdata``), listening on 127.0.0.1:``port``."""

    root: Path
    port: int
    bin_dir: Path = Path("/usr/lib/postgresql/15/bin")

    @property
    def pgdata(self) -> Path:
        return self.root / "pgdata"

    @property
    def socket_dir(self) -> Path:
        return self.root / "socket"

    @property
    def url(self) -> str:
        return f"postgresql+psycopg2://{DB_USER}@127.0.0.1:{self.port}/{DB_NAME}"

    # -- helpers ---------------------------------------------------------------------------------
    def _run_as(self) -> str | None:
        """The user to run PostgreSQL as (None = ourselves)."""
        if os.geteuid() != 0:
            return None
        try:
            pwd.getpwnam("postgres")
        except KeyError as err:
            raise EmbeddedDatabaseError(
                "running as root but there is no 'postgres' system user: install postgresql-15 or set "
                "AMBERWATCH_DATABASE_URL"
            ) from err
        return "postgres"

    def _cmd(self, *args: str) -> list[str]:
        user = self._run_as()
        return (["runuser", "-u", user, "--"] if user else []) + list(args)

    def _exe(self, name: str) -> str:
        exe = self.bin_dir / name
        if not exe.exists():
            raise EmbeddedDatabaseError(
                f"{exe} not found: install PostgreSQL 15 with PostGIS (make install) or set AMBERWATCH_DATABASE_URL"
            )
        return str(exe)

    def _chown(self, path: Path) -> None:
        user = self._run_as()
        if user:
            shutil.chown(path, user, user)

    def is_running(self) -> bool:
        if not (self.pgdata / "postmaster.pid").exists():
            return False
        res = subprocess.run(self._cmd(self._exe("pg_ctl"), "status", "-D", str(self.pgdata)), capture_output=True)
        return res.returncode == 0

    def running_port(self) -> int | None:
        """The port of the running postmaster (line 4 of postmaster.pid), if any."""
        try:
            lines = (self.pgdata / "postmaster.pid").read_text().splitlines()
            return int(lines[3])
        except (OSError, IndexError, ValueError):
            return None

    # -- lifecycle -------------------------------------------------------------------------------
    def init(self) -> bool:
        """Create the cluster if missing. Returns True when it was created now."""
        if (self.pgdata / "PG_VERSION").exists():
            return False
        self.root.mkdir(parents=True, exist_ok=True)
        for d in (self.root, self.socket_dir):
            d.mkdir(parents=True, exist_ok=True)
            self._chown(d)
        # the postgres user must be able to reach the data directory
        for parent in self.root.resolve().parents:
            mode = parent.stat().st_mode
            if not mode & 0o001:
                log.warning("%s is not world-traversable; the postgres user may not reach the cluster", parent)
        log.info("initialising embedded PostgreSQL cluster in %s", self.pgdata)
        res = subprocess.run(
            self._cmd(self._exe("initdb"), "-D", str(self.pgdata), "-U", DB_USER, "--auth=trust",
                      "--encoding=UTF8", "--locale=C.UTF-8"),
            capture_output=True, text=True,
        )
        if res.returncode != 0:
            raise EmbeddedDatabaseError(f"initdb failed: {res.stderr.strip() or res.stdout.strip()}")
        with open(self.pgdata / "postgresql.conf", "a") as conf:
            conf.write(
                "\n# AmberWatch embedded cluster\n"
                "listen_addresses = '127.0.0.1'\n"
                f"port = {self.port}\n"
                f"unix_socket_directories = '{self.socket_dir}'\n"
                "max_connections = 100\nshared_buffers = 256MB\nwork_mem = 32MB\n"
                # PostGIS functions' high declared costs make the planner JIT-compile plain bbox scans (hundreds
                # of ms for a count that runs in tens); docs/operations.md "Database settings"
                "jit = off\n"
                "fsync = on\nsynchronous_commit = off\nlogging_collector = off\n"
            )
        return True

    def start(self, timeout: float = 30.0) -> None:
        created = self.init()
        if self.is_running():
            running_port = self.running_port()
            if running_port is not None and running_port != self.port:
                log.info("embedded PostgreSQL of %s already runs on port %d (not %d): using it", self.root,
                         running_port, self.port)
                self.port = running_port
            log.info("embedded PostgreSQL already running on port %d", self.port)
        else:
            log.info("starting embedded PostgreSQL on 127.0.0.1:%d", self.port)
            logfile = self.root / "postgres.log"
            logfile.touch(exist_ok=True)
            self._chown(logfile)
            res = subprocess.run(
                # -p: the configured port wins over the one written into postgresql.conf at initdb time
                self._cmd(self._exe("pg_ctl"), "start", "-w", "-t", str(int(timeout)), "-D", str(self.pgdata),
                          "-l", str(logfile), "-o", f"-p {int(self.port)}"),
                capture_output=True, text=True,
            )
            if res.returncode != 0:
                tail = logfile.read_text(errors="replace")[-2000:]
                raise EmbeddedDatabaseError(f"could not start embedded PostgreSQL: {res.stderr.strip()}\n{tail}")
        self._wait_ready(timeout)
        if created or not self._database_exists():
            self._create_database()

    def _psql(self, sql: str, db: str = "postgres") -> subprocess.CompletedProcess:
        return subprocess.run(
            self._cmd(self._exe("psql"), "-h", str(self.socket_dir), "-p", str(self.port), "-U", DB_USER,
                      "-d", db, "-tAc", sql),
            capture_output=True, text=True,
        )

    def _wait_ready(self, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self._psql("select 1").returncode == 0:
                return
            time.sleep(0.2)
        raise EmbeddedDatabaseError(f"embedded PostgreSQL did not accept connections within {timeout:.0f} s")

    def _database_exists(self) -> bool:
        res = self._psql(f"select 1 from pg_database where datname = '{DB_NAME}'")
        return res.stdout.strip() == "1"

    def _create_database(self) -> None:
        if not self._database_exists():
            res = self._psql(f"create database {DB_NAME}")
            if res.returncode != 0:
                raise EmbeddedDatabaseError(f"could not create database: {res.stderr.strip()}")
        res = self._psql("create extension if not exists postgis", db=DB_NAME)
        if res.returncode != 0:
            raise EmbeddedDatabaseError(
                f"PostGIS is not available ({res.stderr.strip()}): install postgresql-15-postgis-3 (make install)"
            )

    def stop(self) -> None:
        if not self.is_running():
            return
        log.info("stopping embedded PostgreSQL")
        subprocess.run(self._cmd(self._exe("pg_ctl"), "stop", "-m", "fast", "-w", "-D", str(self.pgdata)),
                       capture_output=True)
