"""One way to open the project's databases: SQLite (the embedded default) or PostgreSQL (the
platform, issue 12), with the same SQL and a versioned schema.

The stores (:mod:`indicators.alerts.store`, :mod:`indicators.access.store`) write their SQL once,
in the subset both take (TEXT/INTEGER/BIGINT/DOUBLE PRECISION columns, ISO 8601 UTC text times,
keys computed by the writer, ``INSERT … ON CONFLICT``), with ``?`` placeholders.  :func:`connect`
returns a :class:`Database` whose cursors turn ``?`` into psycopg's ``%s``, and whose
:meth:`Database.write` transaction serialises writers the way SQLite's ``BEGIN IMMEDIATE`` does -
on PostgreSQL with a transaction-scoped advisory lock per schema - so a check-then-write (the
login throttle: a failure counts from the moment the attempt starts) holds with several processes
on one database.

Each store lives in its own PostgreSQL schema (``access``; ``area_<area>`` for an area's alerts),
so the two stores' ``audit`` and ``meta`` tables never meet, and areas stay apart.

Migrations: a store passes its ordered list of steps (step *n* brings the schema from version
*n-1* to *n*; the first creates it); :meth:`Database.migrate` applies the missing ones, each in
one write transaction with the new version recorded in ``meta``, and refuses a database written
by a newer program instead of guessing.
"""
from __future__ import annotations

import hashlib
import os
import re
import sqlite3
import threading
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Iterator, Sequence

POSTGRES_PREFIXES = ("postgresql://", "postgres://")
_SCHEMA = re.compile(r"^[a-z_][a-z0-9_]{0,62}$")


class SchemaTooNew(RuntimeError):
    """The database was written by a newer scenic-twin."""


def is_postgres(target: Any) -> bool:
    return isinstance(target, str) and target.startswith(POSTGRES_PREFIXES)


def schema_name(name: str) -> str:
    """A PostgreSQL schema for a store or an area id (``canton-tower`` -> ``area_canton_tower``)."""
    s = name.replace("-", "_").lower()
    if not _SCHEMA.match(s):
        raise ValueError(f"{name!r} cannot name a PostgreSQL schema")
    return s


class _Cursor:
    """A psycopg cursor that takes ``?`` placeholders (and returns itself from execute, like sqlite3)."""

    def __init__(self, cur) -> None:
        self._cur = cur

    def execute(self, q: str, args: Sequence[Any] = ()) -> "_Cursor":
        self._cur.execute(q.replace("?", "%s"), tuple(args))
        return self

    def executemany(self, q: str, rows) -> "_Cursor":
        self._cur.executemany(q.replace("?", "%s"), [tuple(r) for r in rows])
        return self

    def fetchone(self):
        return self._cur.fetchone()

    def fetchall(self):
        return self._cur.fetchall()

    def __iter__(self):
        return iter(self._cur.fetchall())

    @property
    def rowcount(self) -> int:
        return self._cur.rowcount

    @property
    def description(self):
        return self._cur.description


class Database:
    """One connection, used by one store behind its own lock."""

    def __init__(self, conn, dialect: str, schema: str | None = None, target: str = "") -> None:
        self.conn, self.dialect, self.schema, self.target = conn, dialect, schema, target
        self._lock = threading.RLock()
        # the advisory lock that serialises this schema's writers (a 63-bit key from its name)
        self._lock_key = int.from_bytes(hashlib.sha256((schema or "").encode()).digest()[:8], "big") >> 1

    @property
    def postgres(self) -> bool:
        return self.dialect == "postgresql"

    def cursor(self):
        return _Cursor(self.conn.cursor()) if self.postgres else self.conn.cursor()

    def execute(self, q: str, args: Sequence[Any] = ()):
        """A statement outside a write transaction (a read); on PostgreSQL its implicit transaction
        is ended at once, so a long-lived connection holds no snapshot between calls."""
        with self._lock:
            try:
                cur = self.cursor().execute(q, tuple(args))
                desc = cur.description
                rows = cur.fetchall() if desc is not None else []
            except BaseException:
                if self.postgres:
                    self.conn.rollback()
                raise
            if self.postgres:
                self.conn.commit()
            return _Rows(rows)

    @contextmanager
    def write(self) -> Iterator[Any]:
        """One write transaction, serialised with every other writer of the schema: durable when the
        block returns (SQLite synchronous=FULL; PostgreSQL's commit), rolled back when it raises."""
        with self._lock:
            cur = self.cursor()
            if self.postgres:
                cur.execute("SELECT pg_advisory_xact_lock(?)", (self._lock_key,))
            else:
                cur.execute("BEGIN IMMEDIATE")
            try:
                yield cur
                if self.postgres:
                    self.conn.commit()
                else:
                    cur.execute("COMMIT")
            except BaseException:
                if self.postgres:
                    self.conn.rollback()
                else:
                    cur.execute("ROLLBACK")
                raise

    def ping(self) -> None:
        """Raise when no write could be taken now (SQLite locked or read-only; PostgreSQL gone)."""
        with self._lock:
            cur = self.cursor()
            if self.postgres:
                cur.execute("SELECT 1")
                self.conn.rollback()
            else:
                cur.execute("BEGIN IMMEDIATE")
                cur.execute("ROLLBACK")

    def close(self) -> None:
        with self._lock:
            self.conn.close()

    # -------------------------------------------------------------- versions
    def version(self) -> int:
        """The schema version recorded in ``meta`` (0: a new database)."""
        try:
            rows = self.execute("SELECT content FROM meta WHERE name = 'schema_version'").fetchall()
        except Exception:
            if self.postgres:
                self.conn.rollback()
            return 0
        return int(rows[0][0]) if rows else 0

    def migrate(self, steps: Sequence[Sequence[str]], *, store: str) -> int:
        """Apply the steps this database lacks (see the module docstring); returns the version."""
        have, want = self.version(), len(steps)
        if have > want:
            raise SchemaTooNew(f"the {store} database {self.describe()} was written by a newer scenic-twin "
                               f"(schema {have}; this program knows up to {want}): upgrade the program, or "
                               "restore a backup taken before the upgrade")
        for n in range(have + 1, want + 1):
            with self.write() as cur:
                for stmt in steps[n - 1]:
                    cur.execute(stmt)
                cur.execute("INSERT INTO meta (name, content) VALUES ('schema_version', ?) ON CONFLICT (name) "
                            "DO UPDATE SET content = excluded.content", (str(n),))
        return want

    def describe(self) -> str:
        if self.postgres:
            return f"(PostgreSQL schema {self.schema})"
        return f"({self.target})"


class _Rows:
    def __init__(self, rows: list) -> None:
        self._rows = rows

    def fetchall(self) -> list:
        return self._rows

    def fetchone(self):
        return self._rows[0] if self._rows else None


def connect(target: str | os.PathLike[str], *, schema: str) -> Database:
    """A SQLite file (``:memory:`` too; WAL, synchronous=FULL) or a ``postgresql://`` URL, where
    the store's tables live in ``schema`` (created when missing)."""
    t = os.fspath(target)
    if is_postgres(t):
        import psycopg                     # a dependency for the platform's PostgreSQL store
        schema = schema_name(schema)
        try:
            with psycopg.connect(t, autocommit=True, connect_timeout=10) as admin:
                admin.execute(f'CREATE SCHEMA IF NOT EXISTS "{schema}"')
            conn = psycopg.connect(t, options=f"-c search_path={schema}", connect_timeout=10)
        except psycopg.OperationalError as e:
            where = re.sub(r"://[^@/]*@", "://…@", t)          # never print the password
            raise ConnectionError(f"cannot open the PostgreSQL store at {where}: {str(e).strip()[:300]}; "
                                  "check that the server runs and the URL, user and password are right") from e
        return Database(conn, "postgresql", schema, t)
    if t != ":memory:":
        Path(t).parent.mkdir(parents=True, exist_ok=True)
    conn = sqlite3.connect(t, check_same_thread=False, isolation_level=None)
    conn.execute("PRAGMA journal_mode=WAL")
    conn.execute("PRAGMA synchronous=FULL")
    conn.execute("PRAGMA busy_timeout=10000")
    return Database(conn, "sqlite", None, t)
