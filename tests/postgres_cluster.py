"""A real PostgreSQL cluster for tests: initdb into a temporary directory, a free loopback port,
its unix socket in that directory, run as a non-root user (initdb refuses root).

One cluster serves a whole test session; each test gets a database of its own
(:meth:`PostgresCluster.new_database`), which costs a few tens of milliseconds.
"""

from __future__ import annotations

import glob
import os
import pwd
import shutil
import subprocess
import tempfile
import uuid
from dataclasses import dataclass, field
from pathlib import Path

import psycopg

from tests.servers import free_port

# Tests run as root in CI: the cluster runs as Debian's postgres user, or as this one (made
# when missing). The superuser inside the cluster is SUPERUSER, whatever the system user.
SYSTEM_USER_FALLBACK = "teleconsult-test"
SUPERUSER = "teleconsult"


def postgres_bin() -> Path:
    """The directory of initdb, pg_ctl and postgres (Debian: /usr/lib/postgresql/<v>/bin)."""
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/pg_ctl"), key=_version)
    if found:
        return Path(found[-1]).parent
    pg_ctl = shutil.which("pg_ctl")
    if pg_ctl is None:
        raise RuntimeError("PostgreSQL is not installed (scripts/test.sh installs it)")
    return Path(pg_ctl).resolve().parent


def _version(path: str) -> int:
    digits = Path(path).parent.parent.name
    return int(digits) if digits.isdigit() else 0


def _system_user() -> str | None:
    """Who runs the cluster: None (ourselves) unless we are root."""
    if os.geteuid() != 0:
        return None
    for name in ("postgres", SYSTEM_USER_FALLBACK):
        try:
            pwd.getpwnam(name)
            return name
        except KeyError:
            continue
    subprocess.run(
        [
            "useradd",
            "--system",
            "--no-create-home",
            "--shell",
            "/usr/sbin/nologin",
            SYSTEM_USER_FALLBACK,
        ],
        check=True,
    )
    return SYSTEM_USER_FALLBACK


@dataclass
class PostgresCluster:
    directory: Path = field(default_factory=lambda: Path(tempfile.mkdtemp(prefix="tc-pg-")))
    port: int = 0
    # A test of what survives a crash needs commits flushed as PostgreSQL's defaults do;
    # the others trade that for speed.
    durable: bool = False
    _user: str | None = None

    @property
    def data(self) -> Path:
        return self.directory / "data"

    def dsn(self, database: str = "postgres") -> str:
        return f"host=127.0.0.1 port={self.port} user={SUPERUSER} dbname={database}"

    def _run(self, *args: str) -> None:
        command = [str(postgres_bin() / args[0]), *args[1:]]
        if self._user is not None:
            command = ["runuser", "-u", self._user, "--", *command]
        subprocess.run(command, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)

    def start(self) -> PostgresCluster:
        self._user = _system_user()
        if self._user is not None:
            info = pwd.getpwnam(self._user)
            os.chown(self.directory, info.pw_uid, info.pw_gid)
        self.directory.chmod(0o700)
        if not self.data.exists():
            self._run(
                "initdb",
                "-D",
                str(self.data),
                "-A",
                "trust",
                "-U",
                SUPERUSER,
                "-E",
                "UTF8",
                "--no-locale",
                "--no-sync",
            )
        self.port = self.port or free_port()
        options = f"-p {self.port} -k {self.directory} -c listen_addresses=127.0.0.1"
        if not self.durable:
            # Durability is not what most tests measure: no fsync keeps them quick. (With
            # synchronous_commit off, a commit acknowledged just before an immediate stop
            # is lost: the WAL writer had not written it yet.)
            options += " -c fsync=off -c synchronous_commit=off -c full_page_writes=off"
        from tests.conftest import deadline  # conftest imports this module

        # -w: pg_ctl returns once the server accepts connections (or fails after its timeout).
        self._run(
            "pg_ctl",
            "-D",
            str(self.data),
            "-o",
            options,
            "-l",
            str(self.directory / "postgres.log"),
            "-w",
            "-t",
            str(int(deadline(60))),
            "start",
        )
        return self

    def stop(self, mode: str = "fast") -> None:
        """``fast``: a clean shutdown; ``immediate``: as a crash (recovery at the next start)."""
        if self.data.exists() and (self.data / "postmaster.pid").exists():
            self._run("pg_ctl", "-D", str(self.data), "-m", mode, "-w", "stop")

    def remove(self) -> None:
        self.stop()
        shutil.rmtree(self.directory, ignore_errors=True)

    def new_database(self) -> str:
        """A fresh, empty database; answers its DSN."""
        name = f"t_{uuid.uuid4().hex[:16]}"
        with psycopg.connect(self.dsn(), autocommit=True) as conn:
            conn.execute(f"CREATE DATABASE {name}")
        return self.dsn(name)
