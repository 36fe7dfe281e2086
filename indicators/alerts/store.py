"""The alert store: alerts, transitions, cases and their steps, plans and their
steps, threshold versions, the notification outbox and the audit trail.

One interface, :class:`AlertStore`, over :mod:`indicators.sqlstore`.  The
default is SQLite in WAL mode with ``synchronous=FULL`` (a write that returned
survives ``kill -9`` and a power cut); the same SQL runs on PostgreSQL
(``open_store(url, area=...)`` with a ``postgresql://`` URL, driver
``psycopg``; each area's tables in the schema ``area_<area id>``, ``-`` as
``_``) because it keeps to the common subset:

* types TEXT, INTEGER, BIGINT, DOUBLE PRECISION only (no AUTOINCREMENT, no
  SERIAL, no JSON/BOOLEAN/TIMESTAMP types: times are ISO 8601 UTC text
  ``YYYY-MM-DDTHH:MM:SS.mmmZ``, which sorts correctly, JSON is TEXT, flags are
  0/1 INTEGER);
* ``CREATE TABLE/INDEX IF NOT EXISTS``, composite primary keys;
* ``INSERT … ON CONFLICT (key) DO NOTHING`` and ``ON CONFLICT (key) DO UPDATE
  SET col = excluded.col WHERE table.seq <= excluded.seq`` (SQLite ≥ 3.24,
  PostgreSQL ≥ 9.5);
* placeholders written ``?`` and turned into ``%s`` for psycopg.

Idempotence: every record carries a unique key computed from what it records
(``<alert_id>#<seq>``, ``<case_id>#<seq>``, ``<instance_id>#<seq>``), so a write
retried after a crash (the runtime re-running a tick, a client re-sending a
step) inserts nothing twice; snapshots are guarded by their ``seq`` so an old
retry never overwrites a newer state.  Everything of one tick or one user
action is ONE transaction (:meth:`AlertStore.apply`).
"""
from __future__ import annotations

import json
import os
import threading
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Iterable, Iterator, Mapping, Sequence

from indicators import sqlstore

from .cases import Case, CaseStep, case_from_dict, case_to_dict
from .plans import PlanEvent, PlanInstance, instance_from_dict, instance_to_dict
from .state import AlertState, Event, state_from_dict, state_to_dict

SCHEMA_VERSION = 1

DDL: tuple[str, ...] = (
    """CREATE TABLE IF NOT EXISTS alert_states (
    alert_id     TEXT PRIMARY KEY,
    rule_id      TEXT NOT NULL,
    scope        TEXT NOT NULL,
    status       TEXT NOT NULL,
    tier         TEXT,
    active       INTEGER NOT NULL,
    seq          BIGINT NOT NULL,
    updated_at   TEXT NOT NULL,
    state_json   TEXT NOT NULL
)""",
    "CREATE INDEX IF NOT EXISTS alert_states_active ON alert_states (active, rule_id, scope)",
    """CREATE TABLE IF NOT EXISTS alert_events (
    event_key    TEXT PRIMARY KEY,
    alert_id     TEXT NOT NULL,
    rule_id      TEXT NOT NULL,
    scope        TEXT NOT NULL,
    seq          BIGINT NOT NULL,
    occurred_at  TEXT NOT NULL,
    kind         TEXT NOT NULL,
    actor        TEXT NOT NULL,
    reason       TEXT NOT NULL,
    from_status  TEXT,
    to_status    TEXT,
    from_tier    TEXT,
    to_tier      TEXT,
    value        DOUBLE PRECISION,
    silenced     INTEGER NOT NULL,
    details_json TEXT NOT NULL
)""",
    "CREATE INDEX IF NOT EXISTS alert_events_alert ON alert_events (alert_id, seq)",
    "CREATE INDEX IF NOT EXISTS alert_events_time ON alert_events (occurred_at)",
    """CREATE TABLE IF NOT EXISTS cases (
    case_id      TEXT PRIMARY KEY,
    category     TEXT NOT NULL,
    priority     TEXT NOT NULL,
    status       TEXT NOT NULL,
    source       TEXT NOT NULL,
    source_ref   TEXT NOT NULL,
    zone_id      TEXT,
    opened_at    TEXT NOT NULL,
    due_at       TEXT,
    closed_at    TEXT,
    seq          BIGINT NOT NULL,
    case_json    TEXT NOT NULL
)""",
    "CREATE INDEX IF NOT EXISTS cases_status ON cases (status, opened_at)",
    """CREATE TABLE IF NOT EXISTS case_steps (
    step_key     TEXT PRIMARY KEY,
    case_id      TEXT NOT NULL,
    seq          BIGINT NOT NULL,
    step         TEXT NOT NULL,
    status       TEXT NOT NULL,
    occurred_at  TEXT NOT NULL,
    actor        TEXT NOT NULL,
    note         TEXT NOT NULL,
    department   TEXT,
    details_json TEXT NOT NULL
)""",
    "CREATE INDEX IF NOT EXISTS case_steps_case ON case_steps (case_id, seq)",
    """CREATE TABLE IF NOT EXISTS plan_instances (
    instance_id  TEXT PRIMARY KEY,
    plan_id      TEXT NOT NULL,
    level        TEXT NOT NULL,
    status       TEXT NOT NULL,
    opened_at    TEXT NOT NULL,
    closed_at    TEXT,
    seq          BIGINT NOT NULL,
    instance_json TEXT NOT NULL
)""",
    "CREATE INDEX IF NOT EXISTS plan_instances_status ON plan_instances (status, plan_id)",
    """CREATE TABLE IF NOT EXISTS plan_steps (
    instance_id  TEXT NOT NULL,
    step_id      TEXT NOT NULL,
    level        TEXT NOT NULL,
    department   TEXT NOT NULL,
    due_at       TEXT NOT NULL,
    done_at      TEXT,
    done_by      TEXT,
    note         TEXT,
    PRIMARY KEY (instance_id, step_id)
)""",
    """CREATE TABLE IF NOT EXISTS plan_events (
    event_key    TEXT PRIMARY KEY,
    instance_id  TEXT NOT NULL,
    plan_id      TEXT NOT NULL,
    seq          BIGINT NOT NULL,
    occurred_at  TEXT NOT NULL,
    kind         TEXT NOT NULL,
    actor        TEXT NOT NULL,
    note         TEXT NOT NULL,
    level        TEXT NOT NULL,
    step_id      TEXT,
    details_json TEXT NOT NULL
)""",
    "CREATE INDEX IF NOT EXISTS plan_events_instance ON plan_events (instance_id, seq)",
    """CREATE TABLE IF NOT EXISTS threshold_versions (
    version      INTEGER PRIMARY KEY,
    author       TEXT NOT NULL,
    created_at   TEXT NOT NULL,
    comment      TEXT NOT NULL,
    content_json TEXT NOT NULL
)""",
    """CREATE TABLE IF NOT EXISTS outbox (
    message_key  TEXT PRIMARY KEY,
    created_at   TEXT NOT NULL,
    channel      TEXT NOT NULL,
    recipients_json TEXT NOT NULL,
    text_zh      TEXT NOT NULL,
    text_en      TEXT NOT NULL,
    severity     TEXT,
    silenced     INTEGER NOT NULL,
    sent_at      TEXT
)""",
    "CREATE INDEX IF NOT EXISTS outbox_unsent ON outbox (sent_at, created_at)",
    """CREATE TABLE IF NOT EXISTS audit (
    audit_key    TEXT PRIMARY KEY,
    occurred_at  TEXT NOT NULL,
    actor        TEXT NOT NULL,
    action       TEXT NOT NULL,
    object_type  TEXT NOT NULL,
    object_id    TEXT NOT NULL,
    details_json TEXT NOT NULL
)""",
    "CREATE INDEX IF NOT EXISTS audit_time ON audit (occurred_at)",
    """CREATE TABLE IF NOT EXISTS meta (
    name         TEXT PRIMARY KEY,
    content      TEXT NOT NULL
)""",
)

_UPSERT_ALERT = (
    "INSERT INTO alert_states (alert_id, rule_id, scope, status, tier, active, seq, updated_at, state_json) "
    "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT (alert_id) DO UPDATE SET "
    "rule_id = excluded.rule_id, scope = excluded.scope, status = excluded.status, tier = excluded.tier, "
    "active = excluded.active, seq = excluded.seq, updated_at = excluded.updated_at, "
    "state_json = excluded.state_json WHERE alert_states.seq <= excluded.seq")
_INSERT_EVENT = (
    "INSERT INTO alert_events (event_key, alert_id, rule_id, scope, seq, occurred_at, kind, actor, reason, "
    "from_status, to_status, from_tier, to_tier, value, silenced, details_json) "
    "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT (event_key) DO NOTHING")
_UPSERT_CASE = (
    "INSERT INTO cases (case_id, category, priority, status, source, source_ref, zone_id, opened_at, due_at, "
    "closed_at, seq, case_json) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT (case_id) DO UPDATE SET "
    "category = excluded.category, priority = excluded.priority, status = excluded.status, "
    "zone_id = excluded.zone_id, due_at = excluded.due_at, closed_at = excluded.closed_at, seq = excluded.seq, "
    "case_json = excluded.case_json WHERE cases.seq <= excluded.seq")
_INSERT_CASE_STEP = (
    "INSERT INTO case_steps (step_key, case_id, seq, step, status, occurred_at, actor, note, department, "
    "details_json) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT (step_key) DO NOTHING")
_UPSERT_PLAN = (
    "INSERT INTO plan_instances (instance_id, plan_id, level, status, opened_at, closed_at, seq, instance_json) "
    "VALUES (?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT (instance_id) DO UPDATE SET level = excluded.level, "
    "status = excluded.status, closed_at = excluded.closed_at, seq = excluded.seq, "
    "instance_json = excluded.instance_json WHERE plan_instances.seq <= excluded.seq")
_UPSERT_PLAN_STEP = (
    "INSERT INTO plan_steps (instance_id, step_id, level, department, due_at, done_at, done_by, note) "
    "VALUES (?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT (instance_id, step_id) DO UPDATE SET "
    "done_at = excluded.done_at, done_by = excluded.done_by, note = excluded.note "
    "WHERE plan_steps.done_at IS NULL")
_INSERT_PLAN_EVENT = (
    "INSERT INTO plan_events (event_key, instance_id, plan_id, seq, occurred_at, kind, actor, note, level, "
    "step_id, details_json) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT (event_key) DO NOTHING")
_INSERT_OUTBOX = (
    "INSERT INTO outbox (message_key, created_at, channel, recipients_json, text_zh, text_en, severity, silenced, "
    "sent_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT (message_key) DO NOTHING")
_INSERT_AUDIT = (
    "INSERT INTO audit (audit_key, occurred_at, actor, action, object_type, object_id, details_json) "
    "VALUES (?, ?, ?, ?, ?, ?, ?) ON CONFLICT (audit_key) DO NOTHING")
_UPSERT_META = ("INSERT INTO meta (name, content) VALUES (?, ?) ON CONFLICT (name) DO UPDATE SET "
                "content = excluded.content")
_INSERT_VERSION = ("INSERT INTO threshold_versions (version, author, created_at, comment, content_json) "
                   "VALUES (?, ?, ?, ?, ?)")

WRITE_STATEMENTS: tuple[str, ...] = (_UPSERT_ALERT, _INSERT_EVENT, _UPSERT_CASE, _INSERT_CASE_STEP, _UPSERT_PLAN,
                                     _UPSERT_PLAN_STEP, _INSERT_PLAN_EVENT, _INSERT_OUTBOX, _INSERT_AUDIT,
                                     _UPSERT_META, _INSERT_VERSION)
"""Every write the store issues (a test parses them with a PostgreSQL parser)."""


MIGRATIONS: tuple[tuple[str, ...], ...] = (DDL,)
"""Schema versions in order: step n brings a database from version n-1 to n (see indicators.sqlstore)."""
assert len(MIGRATIONS) == SCHEMA_VERSION


class VersionConflict(RuntimeError):
    """Someone saved thresholds since the version the editor started from."""


def iso(dt: datetime | None) -> str | None:
    """UTC ISO 8601 with milliseconds and 'Z' (sortable text)."""
    if dt is None:
        return None
    if dt.tzinfo is None:
        dt = dt.replace(tzinfo=timezone.utc)
    return dt.astimezone(timezone.utc).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def _dt(s: str | None) -> datetime | None:
    return datetime.fromisoformat(s.replace("Z", "+00:00")) if s else None


def _json(x: Any) -> str:
    return json.dumps(x, ensure_ascii=False, sort_keys=True, default=str)


@dataclass(frozen=True)
class ThresholdVersion:
    version: int
    author: str
    created_at: datetime
    comment: str
    content: Mapping[str, Any]


@dataclass
class Batch:
    """Everything one tick or one user action writes, in ONE transaction."""

    alerts: list[AlertState] = field(default_factory=list)
    events: list[Event] = field(default_factory=list)
    cases: list[Case] = field(default_factory=list)
    case_steps: list[CaseStep] = field(default_factory=list)
    plans: list[PlanInstance] = field(default_factory=list)
    plan_events: list[PlanEvent] = field(default_factory=list)
    messages: list[Any] = field(default_factory=list)
    meta: dict[str, str] = field(default_factory=dict)

    def __bool__(self) -> bool:
        return any((self.alerts, self.events, self.cases, self.case_steps, self.plans, self.plan_events,
                    self.messages, self.meta))

    def extend(self, other: "Batch") -> None:
        for k in ("alerts", "events", "cases", "case_steps", "plans", "plan_events", "messages"):
            getattr(self, k).extend(getattr(other, k))
        self.meta.update(other.meta)


class AlertStore:
    """See the module docstring.  Thread-safe (one connection behind a lock)."""

    def __init__(self, db: sqlstore.Database):
        self._db = db
        self.dialect = db.dialect
        self._lock = threading.RLock()
        db.migrate(MIGRATIONS, store="alert")

    # ------------------------------------------------------------------ plumbing
    @classmethod
    def open(cls, target: str | os.PathLike[str], *, area: str = "canton-tower") -> "AlertStore":
        """A SQLite file path (``:memory:`` too) or ``postgresql://…``, where the area's tables live
        in the schema ``area_<area>``."""
        return cls(sqlstore.connect(target, schema=f"area_{area}"))

    def _sql(self, q: str) -> str:
        return q                      # the connection's cursors take ? on both dialects

    def _tx(self):
        return self._db.write()

    def ping(self) -> None:
        """Raise when the store cannot take a write now (locked, read-only, gone): a write
        transaction begun and rolled back, nothing written."""
        self._db.ping()

    def _query(self, q: str, args: Sequence[Any] = ()) -> list[tuple]:
        return self._db.execute(q, args).fetchall()

    def close(self) -> None:
        self._db.close()

    def __enter__(self) -> "AlertStore":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # ------------------------------------------------------------------ writing
    def apply(self, batch: Batch) -> None:
        """Write a batch in one transaction.  When this returns, it is durable."""
        if not batch:
            return
        ex = lambda cur, q, rows: cur.executemany(self._sql(q), rows) if rows else None  # noqa: E731
        audit = []
        with self._tx() as cur:
            ex(cur, _UPSERT_ALERT, [(s.alert_id, s.rule_id, s.scope, s.status, s.tier, int(s.active), s.seq,
                                     iso(s.last_eval_at or s.status_since), _json(state_to_dict(s)))
                                    for s in batch.alerts if s.alert_id])
            ex(cur, _INSERT_EVENT, [(e.key, e.alert_id, e.rule_id, e.scope, e.seq, iso(e.at), e.kind, e.actor,
                                     e.reason, e.from_status, e.to_status, e.from_tier, e.to_tier, e.value,
                                     int(e.silenced), _json(e.details)) for e in batch.events])
            audit += [(f"alert:{e.key}", iso(e.at), e.actor, e.kind, "alert", e.alert_id,
                       _json({"reason": e.reason, "tier": e.to_tier, "status": e.to_status}))
                      for e in batch.events]
            ex(cur, _UPSERT_CASE, [(c.case_id, c.category, c.priority, c.status, c.source, c.source_ref, c.zone_id,
                                    iso(c.opened_at), iso(c.due_at), iso(c.closed_at), c.seq,
                                    _json(case_to_dict(c))) for c in batch.cases])
            ex(cur, _INSERT_CASE_STEP, [(s.key, s.case_id, s.seq, s.step, s.status, iso(s.at), s.actor, s.note,
                                         s.department, _json(s.details)) for s in batch.case_steps])
            audit += [(f"case:{s.key}", iso(s.at), s.actor, s.step, "case", s.case_id,
                       _json({"note": s.note, "status": s.status, "department": s.department}))
                      for s in batch.case_steps]
            ex(cur, _UPSERT_PLAN, [(p.instance_id, p.plan_id, p.level, p.status, iso(p.opened_at),
                                    iso(p.closed_at), p.seq, _json(instance_to_dict(p))) for p in batch.plans])
            ex(cur, _UPSERT_PLAN_STEP, [(p.instance_id, s.step_id, s.level, s.department, iso(s.due_at),
                                         iso(s.done_at), s.done_by, s.note) for p in batch.plans for s in p.steps])
            ex(cur, _INSERT_PLAN_EVENT, [(e.key, e.instance_id, e.plan_id, e.seq, iso(e.at), e.kind, e.actor,
                                          e.note, e.level, e.step_id, _json(e.details)) for e in batch.plan_events])
            audit += [(f"plan:{e.key}", iso(e.at), e.actor, e.kind, "plan", e.instance_id,
                       _json({"note": e.note, "step_id": e.step_id, "level": e.level})) for e in batch.plan_events]
            ex(cur, _INSERT_OUTBOX, [(m.key, iso(m.created_at), m.channel, _json(list(m.recipients)), m.text_zh,
                                      m.text_en, m.severity, int(m.silenced), None) for m in batch.messages])
            ex(cur, _UPSERT_META, list(batch.meta.items()))
            ex(cur, _INSERT_AUDIT, audit)

    def mark_sent(self, keys: Iterable[str], at: datetime) -> None:
        keys = list(keys)
        if not keys:
            return
        with self._tx() as cur:
            cur.executemany(self._sql("UPDATE outbox SET sent_at = ? WHERE message_key = ? AND sent_at IS NULL"),
                            [(iso(at), k) for k in keys])

    def save_threshold_version(self, content: Mapping[str, Any], *, author: str, comment: str, at: datetime,
                               expected_version: int | None = None) -> ThresholdVersion:
        """Store ``content`` as the next version.  With ``expected_version``,
        refuse (:class:`VersionConflict`) if the latest version is another."""
        with self._tx() as cur:
            cur.execute("SELECT MAX(version) FROM threshold_versions")
            latest = cur.fetchone()[0] or 0
            if expected_version is not None and expected_version != latest:
                raise VersionConflict(f"thresholds were saved as v{latest} since v{expected_version}; "
                                      f"reload, re-apply the change and save again")
            v = latest + 1
            cur.execute(self._sql(_INSERT_VERSION), (v, author, iso(at), comment or "", _json(content)))
            cur.execute(self._sql(_INSERT_AUDIT), (f"thresholds:v{v}", iso(at), f"user:{author}", "save_thresholds",
                                                   "thresholds", str(v), _json({"comment": comment})))
        return ThresholdVersion(v, author, at, comment or "", json.loads(_json(content)))

    # ------------------------------------------------------------------ reading
    def active_alerts(self) -> list[AlertState]:
        return [state_from_dict(json.loads(r[0])) for r in
                self._query("SELECT state_json FROM alert_states WHERE active = 1 ORDER BY rule_id, scope")]

    def alert(self, alert_id: str) -> AlertState | None:
        r = self._query("SELECT state_json FROM alert_states WHERE alert_id = ?", (alert_id,))
        return state_from_dict(json.loads(r[0][0])) if r else None

    def events(self, alert_id: str | None = None, limit: int = 10_000) -> list[dict[str, Any]]:
        cols = ("key", "alert_id", "rule_id", "scope", "seq", "at", "kind", "actor", "reason", "from_status",
                "to_status", "from_tier", "to_tier", "value", "silenced", "details")
        q = ("SELECT event_key, alert_id, rule_id, scope, seq, occurred_at, kind, actor, reason, from_status, "
             "to_status, from_tier, to_tier, value, silenced, details_json FROM alert_events")
        args: list[Any] = []
        if alert_id is not None:
            q += " WHERE alert_id = ?"
            args.append(alert_id)
        q += " ORDER BY occurred_at, alert_id, seq LIMIT ?"
        args.append(int(limit))
        out = []
        for r in self._query(q, args):
            d = dict(zip(cols, r))
            d["details"] = json.loads(d["details"])
            d["silenced"] = bool(d["silenced"])
            out.append(d)
        return out

    def cases(self, status: str | None = None, open_only: bool = False) -> list[Case]:
        q, args = "SELECT case_json FROM cases", []
        if status is not None:
            q += " WHERE status = ?"
            args.append(status)
        elif open_only:
            q += " WHERE status <> 'closed'"
        q += " ORDER BY opened_at, case_id"
        return [case_from_dict(json.loads(r[0])) for r in self._query(q, args)]

    def case(self, case_id: str) -> Case | None:
        r = self._query("SELECT case_json FROM cases WHERE case_id = ?", (case_id,))
        return case_from_dict(json.loads(r[0][0])) if r else None

    def _log_rows(self, table: str, cols: Sequence[str], select: str, key: str, value: str | None,
                  order: str) -> list[dict[str, Any]]:
        """Rows of an append-only log table as dicts, optionally for one ``key``; ``details`` decoded."""
        q, args = f"SELECT {select} FROM {table}", []
        if value is not None:
            q += f" WHERE {key} = ?"
            args.append(value)
        rows = [dict(zip(cols, r)) for r in self._query(q + f" ORDER BY {order}", args)]
        for d in rows:
            d["details"] = json.loads(d["details"])
        return rows

    def case_steps(self, case_id: str | None = None) -> list[dict[str, Any]]:
        return self._log_rows(
            "case_steps", ("key", "case_id", "seq", "step", "status", "at", "actor", "note", "department", "details"),
            "step_key, case_id, seq, step, status, occurred_at, actor, note, department, details_json",
            "case_id", case_id, "case_id, seq")

    def plans(self, active_only: bool = False) -> list[PlanInstance]:
        q = "SELECT instance_json FROM plan_instances"
        if active_only:
            q += " WHERE status = 'active'"
        q += " ORDER BY opened_at, instance_id"
        return [instance_from_dict(json.loads(r[0])) for r in self._query(q)]

    def plan_steps(self, instance_id: str) -> list[dict[str, Any]]:
        cols = ("instance_id", "step_id", "level", "department", "due_at", "done_at", "done_by", "note")
        return [dict(zip(cols, r)) for r in self._query(
            "SELECT instance_id, step_id, level, department, due_at, done_at, done_by, note FROM plan_steps "
            "WHERE instance_id = ? ORDER BY due_at, step_id", (instance_id,))]

    def plan_events(self, instance_id: str | None = None) -> list[dict[str, Any]]:
        return self._log_rows(
            "plan_events", ("key", "instance_id", "plan_id", "seq", "at", "kind", "actor", "note", "level",
                            "step_id", "details"),
            "event_key, instance_id, plan_id, seq, occurred_at, kind, actor, note, level, step_id, details_json",
            "instance_id", instance_id, "instance_id, seq")

    def threshold_versions(self) -> list[ThresholdVersion]:
        return [ThresholdVersion(v, a, _dt(t), c, json.loads(j)) for v, a, t, c, j in self._query(
            "SELECT version, author, created_at, comment, content_json FROM threshold_versions ORDER BY version")]

    def threshold_version(self, version: int | None = None) -> ThresholdVersion | None:
        """One version (None: the latest)."""
        if version is None:
            rows = self._query("SELECT version, author, created_at, comment, content_json FROM threshold_versions "
                               "ORDER BY version DESC LIMIT 1")
        else:
            rows = self._query("SELECT version, author, created_at, comment, content_json FROM threshold_versions "
                               "WHERE version = ?", (int(version),))
        if not rows:
            return None
        v, a, t, c, j = rows[0]
        return ThresholdVersion(v, a, _dt(t), c, json.loads(j))

    def unsent_messages(self) -> list[dict[str, Any]]:
        cols = ("key", "created_at", "channel", "recipients", "text_zh", "text_en", "severity", "silenced")
        out = []
        for r in self._query("SELECT message_key, created_at, channel, recipients_json, text_zh, text_en, "
                             "severity, silenced FROM outbox WHERE sent_at IS NULL ORDER BY created_at, "
                             "message_key"):
            d = dict(zip(cols, r))
            d["recipients"] = json.loads(d["recipients"])
            d["silenced"] = bool(d["silenced"])
            out.append(d)
        return out

    def audit(self, limit: int = 1000) -> list[dict[str, Any]]:
        cols = ("key", "at", "actor", "action", "object_type", "object_id", "details")
        return [dict(zip(cols, r)) for r in self._query(
            "SELECT audit_key, occurred_at, actor, action, object_type, object_id, details_json FROM audit "
            "ORDER BY occurred_at, audit_key LIMIT ?", (int(limit),))]

    def meta(self, name: str) -> str | None:
        r = self._query("SELECT content FROM meta WHERE name = ?", (name,))
        return r[0][0] if r else None

    def counts(self) -> dict[str, int]:
        """Rows per table (for tests and the CLI)."""
        tables = ("alert_states", "alert_events", "cases", "case_steps", "plan_instances", "plan_steps",
                  "plan_events", "threshold_versions", "outbox", "audit")
        return {t: self._query(f"SELECT COUNT(*) FROM {t}")[0][0] for t in tables}


def default_store_path() -> Path:
    """``var/alerts.sqlite`` under SCENIC_TWIN_VAR (default: the repository's ``var/``)."""
    base = os.environ.get("SCENIC_TWIN_VAR")
    return Path(base) / "alerts.sqlite" if base else Path(__file__).resolve().parents[2] / "var" / "alerts.sqlite"


def open_store(target: str | os.PathLike[str] | None = None, *, area: str = "canton-tower") -> AlertStore:
    """The alert store of ``area`` at ``target``: a SQLite file (default :func:`default_store_path`;
    ``area`` changes nothing there, one file holds one area) or a ``postgresql://`` URL (the area's
    schema ``area_<area>``); created, or brought to this program's schema, if needed."""
    return AlertStore.open(target or default_store_path(), area=area)


__all__ = ["AlertStore", "Batch", "DDL", "SCHEMA_VERSION", "ThresholdVersion", "VersionConflict",
           "WRITE_STATEMENTS", "default_store_path", "iso", "open_store"]
