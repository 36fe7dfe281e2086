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
by a newer program instead of guessing.  The version is read again under the writers' lock, so
two processes opening a database at once apply each step once.

A lost PostgreSQL connection (the server restarted, a failover, a proxy that dropped it) is
opened again once, at the next statement, and that statement is run again when nothing of it
can have been committed (a read, or the first statement of a write transaction); a write
transaction the loss interrupted raises, rolled back by the server, and the caller decides.
When the reconnect fails too, :class:`ConnectionError` says where and why.  Writers wait for
each other's lock at most ``LOCK_WAIT_S`` (as SQLite's ``busy_timeout``).
"""
from __future__ import annotations

import hashlib
import os
import re
import sqlite3
import threading
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Callable, Iterator, Sequence

POSTGRES_PREFIXES = ("postgresql://", "postgres://")
_SCHEMA = re.compile(r"^[a-z_][a-z0-9_]{0,62}$")
LOCK_WAIT_S = 10
"""How long a writer waits for another's transaction (SQLite busy_timeout, PostgreSQL lock_timeout)."""


class SchemaTooNew(RuntimeError):
    """The database was written by a newer scenic-twin."""


def is_postgres(target: Any) -> bool:
    return isinstance(target, str) and target.startswith(POSTGRES_PREFIXES)


ENV_STORE = "SCENIC_TWIN_STORE"     # the platform's postgresql://… URL (indicators.bus.names lists it)
ENV_AREA = "SCENIC_TWIN_AREA"
HOME_AREA = "canton-tower"


def cli_target(given: str | None, default_file: Path) -> str | Path:
    """Where a command-line tool finds a store: ``--store`` as given (a file path or a
    ``postgresql://`` URL), else ``SCENIC_TWIN_STORE`` (the platform's URL, as the servers read
    it), else the state folder's SQLite file ``default_file``."""
    if given:
        return given if is_postgres(given) else Path(given)
    return os.environ.get(ENV_STORE) or default_file


def cli_area(given: str | None) -> str:
    """The scenic area a command-line tool reads on PostgreSQL: ``--area``, else
    ``SCENIC_TWIN_AREA``, else the home area (a SQLite file holds one area: no matter there)."""
    area = given or os.environ.get(ENV_AREA) or HOME_AREA
    schema_name(area)
    return area


def describe(target: str | Path) -> str:
    """A store's place for a message: the path, or the URL without its password."""
    return _masked(target) if is_postgres(target) else str(target)


def exists(target: str | Path, *, schema: str) -> bool:
    """Whether the store is there: the SQLite file, or the store's schema with its ``meta``
    table in the PostgreSQL database (looked at, nothing created)."""
    if not is_postgres(target):
        return Path(target).exists()
    import psycopg
    try:
        with psycopg.connect(str(target), connect_timeout=10) as c:
            return bool(c.execute("SELECT to_regclass(%s) IS NOT NULL", (f'"{schema_name(schema)}".meta',))
                        .fetchone()[0])
    except psycopg.OperationalError as e:
        raise ConnectionError(f"cannot open the PostgreSQL store at {_masked(target)}: {_oneline(e)[:300]}; "
                              "check that the server runs and the URL, user and password are right") from e


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

    def __init__(self, conn, dialect: str, schema: str | None = None, target: str = "",
                 reopen: Callable[[], Any] | None = None) -> None:
        self.conn, self.dialect, self.schema, self.target = conn, dialect, schema, target
        self._reopen = reopen               # PostgreSQL: opens the connection again after a loss
        self._closed = False
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
            for attempt in (1, 2):
                try:
                    cur = self.cursor().execute(q, tuple(args))
                    desc = cur.description
                    rows = cur.fetchall() if desc is not None else []
                except BaseException as e:
                    if not self.postgres:
                        raise
                    self._rollback()
                    if attempt == 1 and self._lost(e):
                        self._reconnect(e)
                        continue
                    raise
                if self.postgres:
                    self.conn.commit()
                return _Rows(rows)

    @contextmanager
    def write(self) -> Iterator[Any]:
        """One write transaction, serialised with every other writer of the schema: durable when the
        block returns (SQLite synchronous=FULL; PostgreSQL's commit), rolled back when it raises."""
        with self._lock:
            if self.postgres:
                for attempt in (1, 2):
                    try:
                        cur = self.cursor()
                        cur.execute("SELECT pg_advisory_xact_lock(?)", (self._lock_key,))
                        break
                    except BaseException as e:
                        self._rollback()
                        if attempt == 1 and self._lost(e):
                            self._reconnect(e)
                            continue
                        raise
            else:
                cur = self.cursor()
                cur.execute("BEGIN IMMEDIATE")
            try:
                yield cur
                if self.postgres:
                    self.conn.commit()
                else:
                    cur.execute("COMMIT")
            except BaseException:
                if self.postgres:
                    self._rollback()
                else:
                    cur.execute("ROLLBACK")
                raise

    def ping(self) -> None:
        """Raise when no write could be taken now (SQLite locked or read-only; PostgreSQL gone and
        not back after one reconnect)."""
        with self._lock:
            if self.postgres:
                self.execute("SELECT 1")
                return
            cur = self.cursor()
            cur.execute("BEGIN IMMEDIATE")
            cur.execute("ROLLBACK")

    # -------------------------------------------------------------- a lost connection
    def _rollback(self) -> None:
        """End a failed PostgreSQL transaction; nothing to do on a connection that is gone."""
        try:
            self.conn.rollback()
        except Exception:
            pass

    def _lost(self, e: BaseException) -> bool:
        """Whether ``e`` came from a connection that is gone (rather than from the statement)."""
        if self._reopen is None or self._closed or not isinstance(e, Exception):
            return False                    # (a store used after close() is an error, not a loss)
        import psycopg
        return isinstance(e, psycopg.OperationalError) and bool(self.conn.closed or self.conn.broken)

    def _reconnect(self, cause: BaseException) -> None:
        try:
            self.conn.close()
        except Exception:
            pass
        try:
            self.conn = self._reopen()
        except ConnectionError as e:
            raise ConnectionError(f"the connection to the PostgreSQL store {self.describe()} was lost "
                                  f"({_oneline(cause)[:200]}) and opening it again failed: {e}") from cause

    def close(self) -> None:
        with self._lock:
            self._closed = True
            self.conn.close()

    # -------------------------------------------------------------- versions
    def _has_meta(self, cur) -> bool:
        if self.postgres:       # the connection's search_path is the store's schema alone
            return cur.execute("SELECT to_regclass('meta') IS NOT NULL").fetchone()[0]
        return bool(cur.execute("SELECT COUNT(*) FROM sqlite_master WHERE type = 'table' AND name = 'meta'")
                    .fetchone()[0])

    def _version(self, cur) -> int:
        if not self._has_meta(cur):
            return 0
        row = cur.execute("SELECT content FROM meta WHERE name = 'schema_version'").fetchone()
        return int(row[0]) if row else 0

    def version(self) -> int:
        """The schema version recorded in ``meta`` (0: a new database)."""
        with self._lock:
            return self._version(_Reads(self))

    def migrate(self, steps: Sequence[Sequence[str]], *, store: str) -> int:
        """Apply the steps this database lacks (see the module docstring); returns the version."""
        want = len(steps)
        have = self.version()
        self._refuse_newer(have, want, store)
        if have == want:
            return want                            # up to date: opening writes nothing
        while True:
            with self.write() as cur:
                have = self._version(cur)          # again, under the lock: another process may have been first
                self._refuse_newer(have, want, store)
                if have == want:
                    return want
                for stmt in steps[have]:
                    cur.execute(stmt)
                cur.execute("INSERT INTO meta (name, content) VALUES ('schema_version', ?) ON CONFLICT (name) "
                            "DO UPDATE SET content = excluded.content", (str(have + 1),))

    def _refuse_newer(self, have: int, want: int, store: str) -> None:
        if have > want:
            raise SchemaTooNew(f"the {store} database {self.describe()} was written by a newer scenic-twin "
                               f"(schema {have}; this program knows up to {want}): upgrade the program, or "
                               "restore a backup taken before the upgrade")

    def describe(self) -> str:
        if self.postgres:
            return f"({_masked(self.target)}, schema {self.schema})"
        return f"({self.target})"


class _Reads:
    """``execute`` of a :class:`Database` as a cursor (reads outside a transaction)."""

    def __init__(self, db: Database) -> None:
        self._db = db

    def execute(self, q: str, args: Sequence[Any] = ()):
        return self._db.execute(q, args)


class _Rows:
    def __init__(self, rows: list) -> None:
        self._rows = rows

    def fetchall(self) -> list:
        return self._rows

    def fetchone(self):
        return self._rows[0] if self._rows else None


def _oneline(e: BaseException) -> str:
    return " ".join(str(e).split())


def _masked(url: str) -> str:
    """A URL without its password (never printed)."""
    return re.sub(r"(?i)(password=)[^&\s]*", r"\1…", re.sub(r"(:/+)[^@/]*@", r"\1…@", url))


def connect(target: str | os.PathLike[str], *, schema: str) -> Database:
    """A SQLite file (``:memory:`` too; WAL, synchronous=FULL) or a ``postgresql://`` URL, where
    the store's tables live in ``schema`` (created when missing)."""
    t = os.fspath(target)
    if is_postgres(t):
        import psycopg                     # a dependency for the platform's PostgreSQL store
        schema = schema_name(schema)
        where = _masked(t)
        from psycopg.conninfo import conninfo_to_dict
        # the store's settings after any the URL brings (?options=…), which they would otherwise replace
        options = " ".join(filter(None, (conninfo_to_dict(t).get("options"), f"-c search_path={schema}",
                                         f"-c lock_timeout={LOCK_WAIT_S * 1000}")))

        def opener():
            try:
                return psycopg.connect(t, connect_timeout=10, options=options)
            except psycopg.OperationalError as e:
                raise ConnectionError(f"cannot open the PostgreSQL store at {where}: {_oneline(e)[:300]}; "
                                      "check that the server runs and the URL, user and password are right") from e
        conn = opener()
        try:
            # an operator may have made the schema (and given no CREATE on the database): look first
            if conn.execute("SELECT COUNT(*) FROM pg_namespace WHERE nspname = %s", (schema,)).fetchone()[0] == 0:
                try:
                    conn.execute(f'CREATE SCHEMA IF NOT EXISTS "{schema}"')
                except psycopg.errors.UniqueViolation:
                    conn.rollback()        # another process created it at the same moment
            conn.commit()
        except BaseException:
            conn.close()
            raise
        return Database(conn, "postgresql", schema, t, reopen=opener)
    if re.match(r"(?i)^postgres(ql)?:/[^/]", t):
        raise ValueError(f"{_masked(t)!r} is a PostgreSQL URL that lost a slash (it went through a file path): "
                         "pass the URL as it was given, postgresql://…")
    if t != ":memory:":
        Path(t).parent.mkdir(parents=True, exist_ok=True)
    conn = sqlite3.connect(t, check_same_thread=False, isolation_level=None)
    conn.execute("PRAGMA journal_mode=WAL")
    conn.execute("PRAGMA synchronous=FULL")
    conn.execute(f"PRAGMA busy_timeout={LOCK_WAIT_S * 1000}")
    return Database(conn, "sqlite", None, t)
