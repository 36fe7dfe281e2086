"""A throwaway local PostgreSQL server for tests and developers (Debian's ``postgresql`` package).

``PgServer(directory).start()`` runs ``initdb`` and ``pg_ctl`` of the newest installed version
(``/usr/lib/postgresql/<version>/bin``) on a data folder under ``directory``, listening on
127.0.0.1 at a free port and on a socket in that folder.  Authentication is ``trust``: any user
of this machine may connect as the superuser without a password.  That is acceptable only
because the cluster is throwaway, holds test data and listens on 127.0.0.1 alone; never keep
real data in it - a deployment runs PostgreSQL as its operators do, with passwords (deploy/).

PostgreSQL refuses to run as root; as root, the server runs as Debian's ``postgres`` system user
(``runuser -u postgres --``), which owns the folder (so the folder must be one that user can reach:
``tempfile.mkdtemp()`` is, pytest's root-only ``tmp_path`` is not).  Otherwise it runs as the
current user.

    server = PgServer(tempfile.mkdtemp()).start().ready()
    url = server.create_database("scratch")      # postgresql://scenic@127.0.0.1:<port>/scratch
    ...
    server.drop_database("scratch"); server.stop()
"""
from __future__ import annotations

import glob
import os
import pwd
import re
import shutil
import socket
import subprocess
import time
from pathlib import Path

SUPERUSER = "scenic"


SYSTEM_USER = "postgres"
"""The system user Debian's postgresql package creates; the server runs as it when we are root."""
_DBNAME = re.compile(r"^[a-z_][a-z0-9_]{0,62}$")


def pg_bin() -> Path:
    """``/usr/lib/postgresql/<newest version>/bin`` (it has ``initdb`` and ``pg_ctl``)."""
    found = [Path(p).parent for p in glob.glob("/usr/lib/postgresql/*/bin/initdb")
             if (Path(p).parent / "pg_ctl").exists() and Path(p).parts[4].isdigit()]
    if not found:
        raise FileNotFoundError("PostgreSQL's initdb and pg_ctl not found under /usr/lib/postgresql/*/bin: "
                                "install Debian's postgresql package (./scripts/test installs it: "
                                "apt-get install postgresql)")
    return max(found, key=lambda b: int(b.parts[4]))


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class PgServer:
    """One PostgreSQL cluster in ``directory`` (data in ``pgdata/``, log ``postgres.log``, socket
    there too), on 127.0.0.1:``port`` (a free one by default).  The superuser is ``scenic``."""

    def __init__(self, directory: str | os.PathLike, port: int | None = None) -> None:
        self.dir = Path(directory)
        self.data = self.dir / "pgdata"
        self.port = port or _free_port()
        self.bin = pg_bin()
        self._as_root = os.geteuid() == 0
        if self._as_root:
            try:
                pwd.getpwnam(SYSTEM_USER)
            except KeyError:
                raise RuntimeError(f"running as root, PostgreSQL must run as the {SYSTEM_USER!r} system user, which "
                                   "does not exist: Debian's postgresql package creates it (./scripts/test "
                                   "installs it), or run as an ordinary user") from None

    def _run(self, *cmd: str, timeout: float = 120) -> None:
        argv = list(cmd)
        if self._as_root:
            argv = ["runuser", "-u", SYSTEM_USER, "--", *argv]
        r = subprocess.run(argv, capture_output=True, text=True, timeout=timeout)
        if r.returncode:
            raise RuntimeError(f"{Path(cmd[0]).name} failed ({r.returncode}): {(r.stderr or r.stdout)[-1500:]}")

    @property
    def url(self) -> str:
        return f"postgresql://{SUPERUSER}@127.0.0.1:{self.port}/postgres"

    def url_of(self, database: str) -> str:
        return f"postgresql://{SUPERUSER}@127.0.0.1:{self.port}/{database}"

    def start(self) -> "PgServer":
        """initdb (the first time) and start the server; returns once it accepts connections."""
        self.dir.mkdir(parents=True, exist_ok=True)
        if self._as_root:
            shutil.chown(self.dir, SYSTEM_USER, SYSTEM_USER)
            if subprocess.run(["runuser", "-u", SYSTEM_USER, "--", "test", "-w", str(self.dir)]).returncode:
                raise RuntimeError(f"the {SYSTEM_USER} user cannot write {self.dir} (a folder above it is closed to "
                                   "other users): put the server in a folder from tempfile.mkdtemp()")
        if not (self.data / "PG_VERSION").exists():
            self._run(str(self.bin / "initdb"), "-D", str(self.data), "-U", SUPERUSER, "-A", "trust",
                      "-E", "UTF8", "--no-locale")
        self._run(str(self.bin / "pg_ctl"), "-D", str(self.data), "-l", str(self.dir / "postgres.log"), "-w",
                  "-t", "60", "-o", f"-p {self.port} -k {self.dir} -h 127.0.0.1 -c fsync=on "
                                    "-c synchronous_commit=on -c max_connections=300", "start")
        return self

    def ready(self, timeout: float = 30.0) -> "PgServer":
        import psycopg
        end = time.monotonic() + timeout
        while True:
            try:
                with psycopg.connect(self.url, connect_timeout=3):
                    return self
            except psycopg.OperationalError:
                if time.monotonic() > end:
                    raise
                time.sleep(0.2)

    def create_database(self, name: str) -> str:
        """A new, empty database; returns its URL."""
        import psycopg
        with psycopg.connect(self.url, autocommit=True) as c:
            c.execute(f'CREATE DATABASE "{_check_db(name)}"')
        return self.url_of(name)

    def drop_database(self, name: str) -> None:
        """Drop a database (if there), ending the sessions still connected to it."""
        import psycopg
        with psycopg.connect(self.url, autocommit=True) as c:
            c.execute(f'DROP DATABASE IF EXISTS "{_check_db(name)}" WITH (FORCE)')

    def kill(self) -> None:
        """SIGKILL the postmaster and every backend of it at once (the machine or the container
        dies), for tests of what survives that; returns when they are gone."""
        pid = int((self.data / "postmaster.pid").read_text().split()[0])
        kids = []
        for d in Path("/proc").iterdir():
            if d.name.isdigit():
                try:
                    if int((d / "stat").read_text().rsplit(")", 1)[1].split()[1]) == pid:
                        kids.append(int(d.name))
                except (OSError, ValueError, IndexError):
                    pass
        for p in [pid, *kids]:
            try:
                os.kill(p, 9)
            except ProcessLookupError:
                pass
        end = time.monotonic() + 30
        while time.monotonic() < end and any(Path(f"/proc/{p}").exists() and
                                             "Z" not in Path(f"/proc/{p}/stat").read_text().rsplit(")", 1)[1][:3]
                                             for p in [pid, *kids] if Path(f"/proc/{p}").exists()):
            time.sleep(0.05)
        # dead, but a zombie nobody reaps here (no init in this container) still holds its pid,
        # which the next postmaster would take for a live one: the lock file goes, as after a reboot
        (self.data / "postmaster.pid").unlink(missing_ok=True)
        for lock in self.dir.glob(".s.PGSQL.*"):
            lock.unlink(missing_ok=True)

    def stop(self) -> None:
        """Stop the server (fast: open sessions are ended); the data folder stays for :meth:`start`."""
        if (self.data / "postmaster.pid").exists():
            try:
                self._run(str(self.bin / "pg_ctl"), "-D", str(self.data), "-m", "fast", "-w", "stop", timeout=60)
            except Exception:
                pass


def _check_db(name: str) -> str:
    if not _DBNAME.match(name):
        raise ValueError(f"database name {name!r}: lower-case letters, digits and '_', at most 63")
    return name
