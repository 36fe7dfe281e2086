"""Dead-letter store: every record that was not accepted, with the reason.

Bad data is never dropped silently.  Rejected records (validation failures,
parse errors of adapters and front ends, unknown kinds) go to the table
``dead_letters``; events that arrived after their kind's watermark go to the
separate table ``late_events`` - kept aside, neither merged into the indicator
stream nor dropped, so that an operator can replay or inspect them.

SQLite in WAL mode with ``synchronous=FULL``: a ``put`` that returned survives
a crash.  One connection, guarded by a lock (safe from several threads).

``counts()`` returns ``{(kind, reason_code): n}`` over both tables, the late
ones under the code ``'late'``.  Reason codes are short and stable (see
:data:`indicators.feeds.validate.REASON_CODES`).
"""
from __future__ import annotations

import os
import sqlite3
import threading
from datetime import datetime, timezone
from typing import Any, Iterable

from .validate import LATE, PARSE_ERROR, reason_code, to_raw

__all__ = ["DeadLetterStore"]

_SCHEMA = """
CREATE TABLE IF NOT EXISTS dead_letters (
    id          INTEGER PRIMARY KEY AUTOINCREMENT,
    received_at TEXT NOT NULL,          -- ISO 8601 UTC
    kind        TEXT NOT NULL,
    source      TEXT,
    reason_code TEXT NOT NULL,
    reason      TEXT NOT NULL,
    "where"     TEXT,
    raw         TEXT NOT NULL           -- JSON of the record, <= 4 KiB
);
CREATE INDEX IF NOT EXISTS dead_letters_kind ON dead_letters(kind, reason_code);
CREATE TABLE IF NOT EXISTS late_events (
    id          INTEGER PRIMARY KEY AUTOINCREMENT,
    received_at TEXT NOT NULL,
    kind        TEXT NOT NULL,
    source      TEXT,
    event_id    TEXT NOT NULL,
    event_time  TEXT NOT NULL,          -- ISO 8601 UTC
    watermark   TEXT NOT NULL,          -- the kind's watermark when it arrived
    raw         TEXT NOT NULL,
    UNIQUE (kind, event_id)             -- re-sent late events are kept once
);
CREATE INDEX IF NOT EXISTS dead_letters_received ON dead_letters(received_at);
CREATE INDEX IF NOT EXISTS late_events_received ON late_events(received_at);
"""


def _iso(dt: datetime | None) -> str:
    if dt is None:
        dt = datetime.now(timezone.utc)
    if dt.tzinfo is None:
        dt = dt.replace(tzinfo=timezone.utc)
    return dt.astimezone(timezone.utc).isoformat(timespec="milliseconds").replace("+00:00", "Z")


class DeadLetterStore:
    """SQLite store of rejected records and late events."""

    def __init__(self, path: str | os.PathLike[str]) -> None:
        self.path = os.fspath(path)
        if self.path != ":memory:":
            parent = os.path.dirname(os.path.abspath(self.path))
            os.makedirs(parent, exist_ok=True)
        self._lock = threading.Lock()
        self._db = sqlite3.connect(self.path, check_same_thread=False, isolation_level=None)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=FULL")
        self._db.executescript(_SCHEMA)

    # ------------------------------------------------------------- writing
    def put(self, items: Iterable[Any], *, source: str | None = None, received_at: datetime | None = None,
            kind: str | None = None) -> int:
        """Store rejected records; returns how many.

        ``items`` are :class:`~indicators.feeds.validate.BadRecord` or any
        object with ``raw``, ``reason`` and optionally ``kind``, ``code``,
        ``where``, ``source`` (e.g. an adapter's ``Reject``).  Items without a
        code get one from their reason sentence (default ``parse_error``).
        ``kind`` is used for items that carry none.
        """
        rows = []
        at = _iso(received_at)
        for it in items:
            reason = str(getattr(it, "reason", "") or "no reason given")
            code = getattr(it, "code", "") or reason_code(reason, PARSE_ERROR)
            k = getattr(it, "kind", None) or kind or "(unknown)"
            where = getattr(it, "where", None)
            src = getattr(it, "source", None) or source
            raw = to_raw(getattr(it, "raw", ""))
            rows.append((at, str(k), src, code, reason, None if where is None else str(where), raw))
        if not rows:
            return 0
        with self._lock:
            self._db.execute("BEGIN IMMEDIATE")
            try:
                self._db.executemany(
                    'INSERT INTO dead_letters (received_at, kind, source, reason_code, reason, "where", raw) '
                    "VALUES (?, ?, ?, ?, ?, ?, ?)", rows)
                self._db.execute("COMMIT")
            except BaseException:
                self._db.execute("ROLLBACK")
                raise
        return len(rows)

    def put_late(self, kind: str, records: Iterable[dict[str, Any]], *, watermark: datetime,
                 source: str | None = None, received_at: datetime | None = None) -> int:
        """Keep late events aside; returns how many were new (a re-sent late
        event with the same ``(kind, event_id)`` is kept once)."""
        at = _iso(received_at)
        wm = _iso(watermark)
        rows = []
        for r in records:
            et = r.get("event_time")
            rows.append((at, kind, r.get("source") or source, str(r.get("event_id")),
                         _iso(et) if isinstance(et, datetime) else str(et), wm, to_raw(r)))
        if not rows:
            return 0
        with self._lock:
            before = self._db.total_changes
            self._db.execute("BEGIN IMMEDIATE")
            try:
                self._db.executemany(
                    "INSERT OR IGNORE INTO late_events (received_at, kind, source, event_id, event_time, "
                    "watermark, raw) VALUES (?, ?, ?, ?, ?, ?, ?)", rows)
                self._db.execute("COMMIT")
            except BaseException:
                self._db.execute("ROLLBACK")
                raise
            return self._db.total_changes - before

    # ------------------------------------------------------------- reading
    def prune(self, before: datetime) -> int:
        """Delete dead letters and late events received before ``before`` (the retention: the
        feed's owner has had them for that long); returns how many rows went."""
        cut = _iso(before)
        with self._lock:
            self._db.execute("BEGIN IMMEDIATE")
            try:
                n = self._db.execute("DELETE FROM dead_letters WHERE received_at < ?", (cut,)).rowcount
                n += self._db.execute("DELETE FROM late_events WHERE received_at < ?", (cut,)).rowcount
                self._db.execute("COMMIT")
            except BaseException:
                self._db.execute("ROLLBACK")
                raise
        return n

    def counts(self) -> dict[tuple[str, str], int]:
        """``{(kind, reason_code): n}`` of dead letters, plus ``(kind, 'late')``."""
        with self._lock:
            out = {(k, c): n for k, c, n in self._db.execute(
                "SELECT kind, reason_code, COUNT(*) FROM dead_letters GROUP BY kind, reason_code")}
            for k, n in self._db.execute("SELECT kind, COUNT(*) FROM late_events GROUP BY kind"):
                out[(k, LATE)] = out.get((k, LATE), 0) + n
        return out

    def list(self, kind: str | None = None, limit: int = 100, *, code: str | None = None) -> list[dict[str, Any]]:
        """Newest dead letters first, as dicts (``raw`` is the JSON text)."""
        q = 'SELECT id, received_at, kind, source, reason_code, reason, "where", raw FROM dead_letters'
        cond, args = [], []
        if kind is not None:
            cond.append("kind = ?")
            args.append(kind)
        if code is not None:
            cond.append("reason_code = ?")
            args.append(code)
        if cond:
            q += " WHERE " + " AND ".join(cond)
        q += " ORDER BY id DESC LIMIT ?"
        args.append(int(limit))
        cols = ("id", "received_at", "kind", "source", "code", "reason", "where", "raw")
        with self._lock:
            return [dict(zip(cols, row)) for row in self._db.execute(q, args)]

    def list_late(self, kind: str | None = None, limit: int = 100) -> list[dict[str, Any]]:
        """Newest late events first, as dicts."""
        q = "SELECT id, received_at, kind, source, event_id, event_time, watermark, raw FROM late_events"
        args: list[Any] = []
        if kind is not None:
            q += " WHERE kind = ?"
            args.append(kind)
        q += " ORDER BY id DESC LIMIT ?"
        args.append(int(limit))
        cols = ("id", "received_at", "kind", "source", "event_id", "event_time", "watermark", "raw")
        with self._lock:
            return [dict(zip(cols, row)) for row in self._db.execute(q, args)]

    def late_ids(self, kind: str) -> set[str]:
        """Event ids of the late events of ``kind``."""
        with self._lock:
            return {r[0] for r in self._db.execute("SELECT event_id FROM late_events WHERE kind = ?", (kind,))}

    def close(self) -> None:
        with self._lock:
            self._db.close()

    def __enter__(self) -> "DeadLetterStore":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

