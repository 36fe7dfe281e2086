"""The embedded default deployment: feeds, engine and alerts in one process.

    simulator (live) ─┐
    HTTP /ingest ─────┼─> Ingestor ─> FeedLog (fsync) ─> Engine ─> Pipeline (alert runtime) ─> store
    drop folder ──────┘        └─> dead-letter / late          └─> Snapshot ─> publish (the views)

State lives under one folder (``var/`` by default, ``SCENIC_TWIN_VAR``):
``feeds/`` (the durable feed log), ``deadletter.sqlite``, ``engine.ckpt``
(checkpoint with the feed-log sequence it covers), ``history/`` and
``alerts.sqlite``.  A restart restores the engine checkpoint and replays the
log after it, so no value is double-counted or missed; the alert runtime
rebuilds itself from its store.

This is the application layer: it wires the pieces (each tested on its own),
publishes a plain :class:`~indicators.snapshot.Snapshot` after every step and
every user action, and is the one door for writes (:meth:`Service.act`): an
alert acknowledged, a case moved, a plan step ticked, a threshold saved —
each runs under the service lock, is persisted by the store, is handed to
the audit hook with who / what / before / after, and is visible in the next
snapshot at once.  It knows nothing of the views.
"""
from __future__ import annotations

import logging
import os
import threading
import time
from collections import deque
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any, Callable

from twin_assets import inventory as inv
from twin_assets.layout import REPO_ROOT

from . import kpis
from .live_objects import LiveObjects
from .snapshot import FeedFreshness, Snapshot, feed_limit_s

log = logging.getLogger("scenic_twin.service")
UTC = timezone.utc

CLOSED_KEPT = 50
"""Recently closed cases kept in the snapshot (the case board's last column)."""
TREND_POINTS = 240
"""KPI trend samples kept (one per alert evaluation, 15 s of event time: one hour)."""


def var_dir() -> Path:
    return Path(os.environ.get("SCENIC_TWIN_VAR", REPO_ROOT / "var"))


@dataclass
class ServiceConfig:
    var: Path = field(default_factory=var_dir)
    scenario: str = "normal-weekday"
    speed: float = 1.0               # 1 = real time; 60 = a simulated minute per second
    seed: int = 0
    simulate: bool = True
    start: datetime | None = None    # simulated start (default: now, or after the last logged event)
    tick: timedelta = timedelta(seconds=1)
    alerts_every: timedelta = timedelta(seconds=15)   # evaluation interval of the alert rules
    alerts_warmup: timedelta = timedelta(minutes=15)  # no evaluation before every feed has reported once
    checkpoint_every_s: float = 30.0
    history_retention: timedelta = timedelta(days=30)
    quiet_after_s: float = 5.0       # wall seconds without any batch before the clock moves the watermark

    @property
    def simulated_time(self) -> bool:
        return self.speed != 1.0 or self.start is not None


class ActionError(ValueError):
    """A user action that cannot be done (unknown object, wrong state); the message says why."""


class Service:
    """Runs the pipeline; ``publish`` receives a :class:`Snapshot` after each step and action.

    ``audit(actor, action, object_type, object_id, before, after, detail)``
    is called after every successful write made through :meth:`act`.
    """

    def __init__(self, cfg: ServiceConfig, publish: Callable[[Snapshot], Any] = lambda _: None,
                 audit: Callable[..., Any] | None = None):
        from indicators.alerts import store as ast
        from indicators.alerts.runtime import ListNotifier
        from indicators.catalog import load_catalog
        from indicators.engine.engine import Engine
        from indicators.engine.history import History
        from indicators.feeds.deadletter import DeadLetterStore
        from indicators.feeds.ingest import Ingestor
        from indicators.feeds.log import FeedLog
        from indicators.feeds.simulator import SimClock
        from indicators.pipeline import Cadence, Pipeline

        self.cfg = cfg
        self.publish = publish
        self.audit = audit
        cfg.var.mkdir(parents=True, exist_ok=True)
        self.inventory = inv.load()
        self.catalog = load_catalog(inventory=self.inventory)
        self.lock = threading.RLock()
        self.stop_event = threading.Event()

        self.live_objects = LiveObjects()
        self.feed_log = FeedLog(cfg.var / "feeds")
        self.dead = DeadLetterStore(cfg.var / "deadletter.sqlite")
        last = self._last_event_time()
        now = datetime.now(UTC).replace(second=0, microsecond=0)
        begin = cfg.start or now
        self.sim_start = max(begin, last + timedelta(minutes=1)) if last else begin
        self.sim_clock = SimClock(self.sim_start)
        self.clock: Callable[[], datetime] = self.sim_clock if cfg.simulated_time else (lambda: datetime.now(UTC))
        self.ingestor = Ingestor(self.feed_log, self.dead, clock=self.clock)

        self.engine = Engine(self.catalog, self.inventory, tick=cfg.tick)
        self.ckpt = cfg.var / "engine.ckpt"
        covered = self.engine.restore(self.ckpt) if self.ckpt.exists() else None
        replayed = 0
        for seq, kind, table in self.feed_log.replay((covered or 0) + 1):
            self.engine.ingest(kind, table, feed_seq=seq)
            replayed += 1
        log.info("engine restored at feed seq %s, replayed %d batches", covered, replayed)
        self.history = History(cfg.var / "history", self.catalog.ids, retention=cfg.history_retention)
        # ticks after the checkpoint are recomputed: drop what was written of them
        last_tick = self.engine.last_tick
        self.history.drop_after(None if last_tick is None else int(last_tick.timestamp() * 1000))

        self.alert_store = ast.open_store(cfg.var / "alerts.sqlite")
        self.notifier = ListNotifier()
        self.pipeline = Pipeline(self.catalog, self.inventory, self.alert_store, self.clock, self.notifier,
                                 cadence=Cadence(cfg.alerts_every, cfg.alerts_warmup))
        self.alerts = self.pipeline.runtime
        self.ingestor.subscribe(self._on_batch)

        self._kpis = kpis.KpiSet(self.catalog.ids)
        self._trends: dict[str, deque] = {k: deque(maxlen=TREND_POINTS) for k in self._kpis.names}
        self._feed_seen: dict[str, tuple[datetime | None, datetime]] = {}
        self._closed: deque = deque(maxlen=CLOSED_KEPT)
        self._last_batch_wall = time.monotonic()
        self._clock_mark: tuple[float, datetime] | None = None
        self._clock_set: datetime | None = None
        self._last_ckpt = time.monotonic()
        self._version = 0
        self._health: dict[str, dict[str, Any]] = {}
        self.latest = None
        self.snapshot: Snapshot | None = None
        self._threads: dict[str, threading.Thread] = {}

    # ------------------------------------------------------------ feeding
    def _last_event_time(self) -> datetime | None:
        last = None
        for _, _, table in self.feed_log.replay(max(1, (self.feed_log.last_seq or 0) - 200)):
            t = table.column("event_time")
            if len(t):
                m = max((x for x in t.to_pylist() if x is not None), default=None)
                if m is not None:
                    last = m if last is None or m > last else last
        return last

    def _on_batch(self, seq: int, kind: str, table) -> None:
        import pyarrow.compute as pc
        with self.lock:
            self.engine.ingest(kind, table, feed_seq=seq)
            self.pipeline.offer(kind, table)
            self.live_objects.offer(kind, table)
            newest = pc.max(table.column("event_time")).as_py() if table.num_rows else None
            prev = self._feed_seen.get(kind, (None, None))[0]
            if newest is not None and prev is not None and newest < prev:
                newest = prev
            self._feed_seen[kind] = (newest or prev, self.clock())
            self._last_batch_wall = time.monotonic()

    # ------------------------------------------------------------ ticking
    def step(self) -> int:
        """Compute every tick the watermark allows, evaluate alerts on the due
        ones, publish a snapshot.  Returns the number of ticks computed."""
        with self.lock:
            wm = self.engine.watermark
            ticks = list(self.engine.ticks(wm)) if wm is not None else []
        if ticks:
            self.history.extend(ticks)
            self.latest = ticks[-1]
            for t in ticks:
                res = self.pipeline.on_tick(t)
                if res is not None:
                    self._sample_trends(t)
                    if res.skipped is False:
                        self.pipeline.reload_thresholds()     # a version saved elsewhere (CLI) applies next time
        self._publish()
        if time.monotonic() - self._last_ckpt > self.cfg.checkpoint_every_s:
            self.checkpoint()
        return len(ticks)

    def _sample_trends(self, tick) -> None:
        ms = tick.time_ms
        for name, v in self._kpis.compute(tick.values).items():
            self._trends[name].append((ms, v))

    def _publish(self) -> None:
        snap = self.build_snapshot()
        self.snapshot = snap
        try:
            self.publish(snap)
        except Exception:
            log.exception("publishing the snapshot failed")

    def build_snapshot(self) -> Snapshot:
        """The current state as one immutable snapshot (see :mod:`indicators.snapshot`)."""
        from indicators.engine.plan import QUALITY_NAMES
        rt = self.alerts
        now = self.clock()
        with self.lock:
            tick = self.latest
            values = {} if tick is None else {
                i: (None if v != v else float(v), QUALITY_NAMES[q])
                for i, v, q in zip(self.pipeline.ids, tick.values.tolist(), tick.quality.tolist())}
            alerts = tuple(sorted(rt.states.values(),
                                  key=lambda s: (-s.rank, -(s.started_at or now).timestamp())))
            open_cases = dict(rt.cases)
            for c in list(self._closed):
                if c.case_id in open_cases:
                    self._closed.remove(c)
            gone = [cid for cid in getattr(self, "_open_ids", set()) if cid not in open_cases]
            for cid in gone:
                c = self.alert_store.case(cid)
                if c is not None and c.status == "closed":
                    self._closed.appendleft(c)
            self._open_ids = set(open_cases)
            cases = tuple(sorted(open_cases.values(), key=lambda c: c.opened_at, reverse=True)) + tuple(self._closed)
            feeds = {}
            for kind in ("crowd", "gate", "video", "facility", "bus", "station", "traffic", "weather",
                         "warning", "case", "staff"):
                ev, arr = self._feed_seen.get(kind, (None, None))
                feeds[kind] = FeedFreshness(kind, ev, arr, feed_limit_s(kind),
                                            None if arr is None else max(0.0, (now - arr).total_seconds()))
            self._version += 1
            return Snapshot(
                version=self._version, now=now, as_of=None if tick is None else tick.time, values=values,
                alerts=alerts, rules=self.pipeline.rules, cases=cases, plans=tuple(rt.plans.values()),
                plan_defs=rt.plan_defs, warnings=dict(rt.warnings), staff=tuple(rt.staff.values()),
                feeds=feeds, health=self.health(), trends={k: tuple(v) for k, v in self._trends.items()},
                buses=self.live_objects.buses(now), video_events=self.live_objects.video(now),
                thresholds_version=self.pipeline.thresholds_version)

    def health(self) -> dict[str, dict[str, Any]]:
        out = dict(self._health)
        for name, th in self._threads.items():
            if not th.is_alive():           # a stopped thread outranks its last step's state
                out[name] = {"ok": False, "problem": "stopped", "reason": f"{name} thread stopped"}
            else:
                out.setdefault(name, {"ok": True, "problem": "", "reason": ""})
        return out

    # ------------------------------------------------------------ user actions (the one door for writes)
    def asset_readings(self, asset_id: str) -> dict[str, tuple[float, datetime]]:
        """The latest facility readings of one asset (for its details panel)."""
        with self.lock:
            return self.engine.asset_readings(asset_id)

    def act(self, actor: str, action: str, object_type: str, object_id: str, fn: Callable[[], Any], *,
            before: Any = None, detail: Any = None) -> Any:
        """Run one user write ``fn`` (persisted by the store in one transaction),
        audit it with before/after, publish a fresh snapshot; returns fn's result.
        Domain refusals (wrong state, unknown id) raise :class:`ActionError`."""
        from indicators.alerts.cases import CaseError
        from indicators.alerts.plans import PlanError
        from indicators.alerts.state import AlertActionError
        with self.lock:
            try:
                result = fn()
            except (CaseError, PlanError, AlertActionError, KeyError) as e:
                raise ActionError(str(e).strip("'\"")) from None
        if self.audit is not None:
            try:
                self.audit(actor, action, object_type, object_id, before=_plain(before), after=_plain(result),
                           detail=detail)
            except Exception:
                log.exception("audit of %s %s %s failed", action, object_type, object_id)
        self._publish()
        return result

    def alert_state(self, alert_id: str):
        return next((s for s in self.alerts.states.values() if s.alert_id == alert_id), None)

    def case_state(self, case_id: str):
        return self.alerts.cases.get(case_id) or self.alert_store.case(case_id)

    def acknowledge(self, alert_id: str, *, by: str, comment: str):
        return self.act(by, "alert.acknowledge", "alert", alert_id,
                        lambda: self.alerts.acknowledge(alert_id, by=by, comment=comment),
                        before=self.alert_state(alert_id), detail={"comment": comment})

    def assign(self, alert_id: str, *, assignee: str, by: str, comment: str = ""):
        return self.act(by, "alert.assign", "alert", alert_id,
                        lambda: self.alerts.assign(alert_id, assignee=assignee, by=by, comment=comment),
                        before=self.alert_state(alert_id), detail={"assignee": assignee, "comment": comment})

    def escalate(self, alert_id: str, *, by: str, comment: str):
        return self.act(by, "alert.escalate", "alert", alert_id,
                        lambda: self.alerts.escalate(alert_id, by=by, comment=comment),
                        before=self.alert_state(alert_id), detail={"comment": comment})

    def silence(self, alert_id: str, *, minutes: float, by: str, comment: str):
        if not comment or not comment.strip():
            raise ActionError("silencing an alert needs a reason")
        if not 0 < minutes <= 24 * 60:
            raise ActionError("a silence lasts between 1 minute and 24 hours")
        until = self.clock() + timedelta(minutes=minutes)
        return self.act(by, "alert.silence", "alert", alert_id,
                        lambda: self.alerts.silence(alert_id, until=until, by=by, comment=comment),
                        before=self.alert_state(alert_id), detail={"minutes": minutes, "comment": comment})

    def unsilence(self, alert_id: str, *, by: str, comment: str = ""):
        return self.act(by, "alert.unsilence", "alert", alert_id,
                        lambda: self.alerts.unsilence(alert_id, by=by, comment=comment),
                        before=self.alert_state(alert_id))

    def case_from_alert(self, alert_id: str, *, by: str, note: str = ""):
        """Open a case (立案) for an active alert: the category its family maps to, at its zone."""
        st = self.alert_state(alert_id)
        if st is None:
            raise ActionError(f"no active alert {alert_id}")
        rule = self.pipeline.rules.get(st.rule_id)
        family = getattr(rule, "family", "") or ""
        cfg = self.alerts.case_cfg
        category = (cfg.category_for_alert(family) if cfg else None) or "other"
        if cfg is not None and category not in cfg.categories:
            category = next(iter(cfg.categories))
        zone = (getattr(rule, "scope", {}) or {}).get("zone")
        from indicators.alerts.state import explain
        text = note or explain(st, rule).get("sentence_zh") or getattr(rule, "name_zh", "") or st.rule_id
        return self.act(by, "case.open", "case", f"manual:alert-{alert_id}",
                        lambda: self.alerts.report(request_id=f"alert-{alert_id}", category=category, by=by,
                                                   description=text, zone_id=zone,
                                                   xy=self.alerts._zone_point(zone) if zone else None),
                        detail={"alert_id": alert_id})

    def report(self, *, request_id: str, category: str, by: str, description: str = "",
               lonlat: tuple[float, float] | None = None, zone_id: str | None = None):
        return self.act(by, "case.report", "case", f"manual:{request_id}",
                        lambda: self.alerts.report(request_id=request_id, category=category, by=by,
                                                   description=description, lonlat=lonlat, zone_id=zone_id),
                        detail={"request_id": request_id})

    def case_step(self, case_id: str, step: str, *, by: str, note: str = "", to_staff: str | None = None,
                  passed: bool = True):
        """Move a case along 立案 → 派遣 → 处置 → 核查 → 结案 (``step``: dispatch,
        accept, handle, verify, rework, close)."""
        rt = self.alerts
        fns = {
            "dispatch": lambda: rt.dispatch_case(case_id, by=by, to_staff=to_staff or None, note=note),
            "accept": lambda: rt.accept_case(case_id, by=by, note=note),
            "handle": lambda: rt.handle_case(case_id, by=by, note=note),
            "verify": lambda: rt.verify_case(case_id, by=by, passed=True, note=note),
            "rework": lambda: rt.verify_case(case_id, by=by, passed=False, note=note),
            "close": lambda: rt.close_case(case_id, by=by, note=note),
        }
        if step not in fns:
            raise ActionError(f"unknown case step {step!r} (one of {', '.join(fns)})")
        if to_staff and to_staff not in rt.staff:
            raise ActionError(f"no patrol staff {to_staff!r} is reporting a position: pick one from the list")
        return self.act(by, f"case.{step}", "case", case_id, fns[step], before=self.case_state(case_id),
                        detail={"note": note, **({"to_staff": to_staff} if to_staff else {})})

    def plan_step(self, instance_id: str, step_id: str, *, by: str, note: str = ""):
        before = next((p for p in self.alerts.plans.values() if p.instance_id == instance_id), None)
        return self.act(by, "plan.step", "plan", instance_id,
                        lambda: self.alerts.complete_plan_step(instance_id, step_id, by=by, note=note),
                        before=before, detail={"step_id": step_id, "note": note})

    def close_plan(self, instance_id: str, *, by: str, note: str):
        before = next((p for p in self.alerts.plans.values() if p.instance_id == instance_id), None)
        return self.act(by, "plan.close", "plan", instance_id,
                        lambda: self.alerts.close_plan(instance_id, by=by, note=note), before=before,
                        detail={"note": note})

    # ------------------------------------------------------------ running
    def start(self) -> None:
        """Start the simulator (if configured) and the step loop in daemon threads."""
        if self.cfg.simulate:
            self._threads["simulator"] = threading.Thread(target=self._simulate, name="simulator", daemon=True)
        self._threads["engine"] = threading.Thread(target=self._loop, name="engine", daemon=True)
        for th in self._threads.values():
            th.start()

    def _simulate(self) -> None:
        from indicators.feeds.simulator import run_live
        try:
            run_live(self.ingestor, self.cfg.scenario, start=self.sim_start, speed=self.cfg.speed,
                     seed=self.cfg.seed, stop_event=self.stop_event,
                     sim_clock=self.sim_clock if self.cfg.simulated_time else None,
                     inventory=self.inventory)
        except Exception:
            log.exception("simulator stopped")

    def _keep_time(self) -> None:
        """Time goes on when the feeds are silent: a simulated clock nobody sets
        moves at the configured speed, and after ``quiet_after_s`` without any
        batch the engine's watermark follows the clock, so ticks, "data as of"
        and staleness go on instead of freezing at the last event."""
        mono = time.monotonic()
        if self.cfg.simulated_time:
            # the mark is (wall time, clock value) when the clock last moved by
            # someone else (the simulator); from there a quiet clock runs on
            # smoothly at the configured speed
            cur = self.sim_clock()
            if self._clock_mark is None or cur != self._clock_set:
                self._clock_mark = (mono, cur)
                self._clock_set = cur
            elif mono - self._clock_mark[0] > self.cfg.quiet_after_s:
                moved = self._clock_mark[1] + timedelta(seconds=(mono - self._clock_mark[0]) * self.cfg.speed)
                self.sim_clock.set(moved)
                self._clock_set = self.sim_clock()
        if mono - self._last_batch_wall > self.cfg.quiet_after_s:
            with self.lock:
                self.engine.heartbeat(self.clock())

    def _loop(self) -> None:
        while not self.stop_event.is_set():
            try:
                self._keep_time()
                self.step()
                self._health["engine"] = {"ok": True, "problem": "", "reason": ""}
            except Exception as e:
                log.exception("engine step failed; continuing")
                self._health["engine"] = {"ok": False, "problem": "step_failed", "reason": f"engine step failed: {e}"}
            self.stop_event.wait(0.5)

    def checkpoint(self) -> None:
        """History first, then the engine: after a crash between the two, the
        history parts past the engine's checkpoint are dropped on restart."""
        with self.lock:
            self.history.flush()
            self.history.prune(self.engine.last_tick or datetime.now(UTC))
            self.engine.checkpoint(self.ckpt)
        self._last_ckpt = time.monotonic()

    def stop(self) -> None:
        self.stop_event.set()
        self.checkpoint()


def _plain(x: Any) -> Any:
    """A JSON-able form of a domain object for the audit (None stays None)."""
    if x is None:
        return None
    from indicators.alerts.cases import Case, case_to_dict
    from indicators.alerts.plans import PlanInstance, instance_to_dict
    from indicators.alerts.state import AlertState, state_to_dict
    if isinstance(x, AlertState):
        d = state_to_dict(x)
        d.pop("evidence", None)
        return d
    if isinstance(x, Case):
        return case_to_dict(x)
    if isinstance(x, PlanInstance):
        return instance_to_dict(x)
    return x
