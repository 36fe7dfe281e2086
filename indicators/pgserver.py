"""A throwaway local PostgreSQL server for tests and developers (Debian's ``postgresql`` package).

``PgServer(directory).start()`` runs ``initdb`` and ``pg_ctl`` of the newest installed version
(``/usr/lib/postgresql/<version>/bin``) on a data folder under ``directory``, listening on
127.0.0.1 at a free port and on a socket in that folder.  Authentication is ``trust`` for local
connections: this cluster holds test data only and is never reachable from another machine; a
deployment runs PostgreSQL as its operators do (deploy/).

PostgreSQL refuses to run as root; as root, the server runs as Debian's ``postgres`` system user
(``runuser``), which owns the folder.
"""
from __future__ import annotations

import glob
import os
import shutil
import socket
import subprocess
import time
from pathlib import Path

SUPERUSER = "scenic"


def pg_bin() -> Path:
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"), key=lambda p: int(Path(p).parts[4]))
    if not found:
        raise FileNotFoundError("PostgreSQL's initdb not found under /usr/lib/postgresql: install Debian's "
                                "postgresql package (./scripts/test installs it)")
    return Path(found[-1]).parent


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class PgServer:
    def __init__(self, directory: str | os.PathLike, *, port: int | None = None) -> None:
        self.dir = Path(directory)
        self.data = self.dir / "pgdata"
        self.port = port or _free_port()
        self.bin = pg_bin()
        self._as_root = os.geteuid() == 0

    def _run(self, *cmd: str, timeout: float = 120) -> None:
        argv = list(cmd)
        if self._as_root:
            argv = ["runuser", "-u", "postgres", "--", *argv]
        r = subprocess.run(argv, capture_output=True, text=True, timeout=timeout)
        if r.returncode:
            raise RuntimeError(f"{Path(cmd[0]).name} failed ({r.returncode}): {(r.stderr or r.stdout)[-1500:]}")

    @property
    def url(self) -> str:
        return f"postgresql://{SUPERUSER}@127.0.0.1:{self.port}/postgres"

    def url_of(self, database: str) -> str:
        return f"postgresql://{SUPERUSER}@127.0.0.1:{self.port}/{database}"

    def start(self) -> "PgServer":
        self.dir.mkdir(parents=True, exist_ok=True)
        if self._as_root:
            shutil.chown(self.dir, "postgres", "postgres")
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
        import psycopg
        with psycopg.connect(self.url, autocommit=True) as c:
            c.execute(f'CREATE DATABASE "{name}"')
        return self.url_of(name)

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
        if (self.data / "postmaster.pid").exists():
            try:
                self._run(str(self.bin / "pg_ctl"), "-D", str(self.data), "-m", "fast", "-w", "stop", timeout=60)
            except Exception:
                pass
