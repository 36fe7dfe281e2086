"""The embedded default deployment: feeds, engine and alerts in one process.

    simulator (live) ─┐
    HTTP /ingest ─────┼─> Ingestor ─> FeedLog (fsync) ─> Engine ─> Pipeline (alert runtime) ─> store
    drop folder ──────┘        └─> dead-letter / late          └─> Snapshot ─> publish (the views)

State lives under one folder (``var/`` by default, ``SCENIC_TWIN_VAR``):
``feeds/`` (the durable feed log), ``deadletter.sqlite``, ``engine.ckpt``
(checkpoint with the feed-log sequence it covers), ``history/`` and
``alerts.sqlite``.  On the platform (``ServiceConfig.bus``/``store``, issue 12) the feed log is
the area's JetStream stream and the alert store a PostgreSQL schema; the rest is the same.
A restart restores the engine checkpoint and replays the
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

from . import kpis, localtime
from .live_objects import LiveObjects
from .snapshot import FeedFreshness, Snapshot, feed_limit_s

log = logging.getLogger("scenic_twin.service")
UTC = timezone.utc

CLOSED_KEPT = 50
"""Recently closed cases kept in the snapshot (the case board's last column)."""
TREND_POINTS = 240
"""KPI trend samples kept (one per alert evaluation, 15 s of event time: one hour)."""
PATROL_WINDOW_H = 12.0
"""The console's patrol list and gaps cover the last 12 hours: a rolling window, not the
calendar day, so a night shift's patrols do not vanish from it at midnight."""


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
    # the local feed log: whole segments the engine checkpoint covers, last written longer ago
    # than this (wall clock), are deleted; a restart replays from the checkpoint, not from them
    feed_log_retention: timedelta = timedelta(days=7)
    # rejected records and late events (service clock), pruned once an hour
    deadletter_retention: timedelta = timedelta(days=30)
    quiet_after_s: float = 5.0       # wall seconds without any batch before the clock moves the watermark
    # the platform's shared parts (issue 12); None = the embedded default (local files)
    bus: str | None = None           # nats://… : the feed log is the area's JetStream stream
    area: str = "canton-tower"       # the scenic area this front serves (its stream, its store schema)
    store: str | None = None         # postgresql://… : alerts, cases, plans, thresholds in PostgreSQL
    # provisional values: a second engine without lateness publishes each tick as soon as its
    # events are in; the screens show them marked provisional until the final tick (2 minutes of
    # allowed lateness later) replaces them.  Alerts, trends and history take final ticks only.
    provisional: bool = True

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
        from indicators.engine.history import History, unit_decimals
        from indicators.feeds.deadletter import DeadLetterStore
        from indicators.feeds.ingest import Ingestor
        from indicators.feeds.log import FeedLog
        from indicators.feeds.simulator import SimClock
        from indicators.pipeline import Cadence, Pipeline

        self.cfg = cfg
        self.publish = publish
        self.audit = audit
        cfg.var.mkdir(parents=True, exist_ok=True)
        self._health: dict[str, dict[str, Any]] = {}
        self.recovery_notes: list[str] = []        # what start-up had to repair, for the log and /readyz
        self.inventory, self.catalog = self._load_inventory(load_catalog)
        self.lock = threading.RLock()
        self.stop_event = threading.Event()
        self._wake = threading.Event()          # set by a batch (and by stop): the engine steps early

        self.live_objects = LiveObjects()
        self.bus = None
        self.stop_event_hooks: list[Callable[[], Any]] = []
        if cfg.bus:
            # the durable feed log is the area's JetStream stream: an ingest is acknowledged only once
            # JetStream stored it (on a quorum of replicas); engine workers and this front read it
            from indicators.bus.jetstream import Bus, JetStreamSink
            self.bus = Bus(cfg.bus)
            self.bus.ensure_area(cfg.area)
            self.feed_log = JetStreamSink(self.bus, cfg.area)
        else:
            # zstd inside each frame's Arrow IPC stream; frames written without it still read
            self.feed_log = FeedLog(cfg.var / "feeds", compression="zstd")
        self.dead = DeadLetterStore(cfg.var / "deadletter.sqlite")
        self._dead_pruned: datetime | None = None
        last = self._last_event_time()
        now = datetime.now(UTC).replace(second=0, microsecond=0)
        begin = cfg.start or now
        self.sim_start = max(begin, last + timedelta(minutes=1)) if last else begin
        self.sim_clock = SimClock(self.sim_start)
        self.clock: Callable[[], datetime] = self.sim_clock if cfg.simulated_time else (lambda: datetime.now(UTC))
        from indicators.feeds.ingest import references_from_inventory
        # a record naming a zone, gate, camera or asset the inventory does not have is dead-lettered
        self.ingestor = Ingestor(self.feed_log, self.dead, clock=self.clock,
                                 references=references_from_inventory(self.inventory))

        self.engine = Engine(self.catalog, self.inventory, tick=cfg.tick, behind="next_tick")
        # a checkpoint names the log position it covers: one of a local log and one of a stream
        # are not interchangeable (switching a state folder between them replays instead)
        self.ckpt = cfg.var / (f"engine.{cfg.area}.bus.ckpt" if cfg.bus else "engine.ckpt")
        covered = None
        if self.ckpt.exists():
            try:
                covered = self.engine.restore(self.ckpt)
            except Exception as e:
                # a damaged checkpoint, or one taken with another catalog (a new inventory): the
                # feed log holds everything it summarised - start afresh and replay the whole log
                aside = self.ckpt.with_name(f"engine.ckpt.unusable-{int(time.time())}")
                log.warning("the engine checkpoint cannot be used (%s: %s); kept as %s, replaying the whole "
                            "feed log", type(e).__name__, e, aside.name)
                self.ckpt.replace(aside)
                self.engine = Engine(self.catalog, self.inventory, tick=cfg.tick, behind="next_tick")
                self.recovery_notes.append(f"engine checkpoint unusable ({type(e).__name__}: {str(e)[:200]}); "
                                           f"kept as {aside.name}; state rebuilt from the feed log")
        end = self.feed_log.last_seq or 0
        if covered is not None and covered > end:
            # the log is shorter than the checkpoint says (a new stream, a restored older log): the
            # checkpoint summarises events the log no longer has - rebuild from what the log holds
            log.warning("the engine checkpoint covers feed seq %d but the log ends at %d; replaying the log",
                        covered, end)
            self.recovery_notes.append(f"engine checkpoint ahead of the feed log ({covered} > {end}); "
                                       "state rebuilt from the feed log")
            self.engine = Engine(self.catalog, self.inventory, tick=cfg.tick, behind="next_tick")
            covered = None
        replayed = 0
        for seq, kind, table in self.feed_log.replay((covered or 0) + 1):
            self.engine.ingest(kind, table, feed_seq=seq)
            replayed += 1
        log.info("engine restored at feed seq %s, replayed %d batches", covered, replayed)
        self.fresh = self._fresh_engine() if cfg.provisional else None
        self.fresh_latest = None
        self.fresh_peek = None           # the open tick, peeked at (Engine.peek): the newest events on screen
        self._peek_due = 0               # batches since the last peek
        self._last_peek = 0.0
        self.history = History(cfg.var / "history", self.catalog.ids, retention=cfg.history_retention,
                               decimals=[unit_decimals(i.family.unit) for i in self.catalog.indicators])
        # ticks after the checkpoint are recomputed: drop what was written of them
        last_tick = self.engine.last_tick
        self.history.drop_after(None if last_tick is None else int(last_tick.timestamp() * 1000))

        self.alert_store = (ast.open_store(cfg.store, area=cfg.area) if cfg.store
                            else ast.open_store(cfg.var / "alerts.sqlite"))
        self.notifier = ListNotifier(keep=1000)
        self.pipeline = Pipeline(self.catalog, self.inventory, self.alert_store, self.clock, self.notifier,
                                 cadence=Cadence(cfg.alerts_every, cfg.alerts_warmup),
                                 reject=lambda records: self.dead.put(records, received_at=self.clock()))
        self.alerts = self.pipeline.runtime
        self.ingestor.subscribe(self._on_batch)
        from indicators.patrols import PatrolStore, route_from_inventory
        self.route = route_from_inventory(self.inventory, inv.frame())
        self.patrol_log = PatrolStore(cfg.var / "patrols.sqlite", self.route)
        from indicators.photos import PhotoStore
        self.photos = PhotoStore(cfg.var / "photos")

        self._kpis = kpis.KpiSet(self.catalog.ids)
        self._trends: dict[str, deque] = {k: deque(maxlen=TREND_POINTS) for k in self._kpis.names}
        self._feed_seen: dict[str, tuple[datetime | None, datetime]] = {}
        self._closed: deque = deque(maxlen=CLOSED_KEPT)
        self._last_batch_wall = time.monotonic()
        self._clock_mark: tuple[float, datetime] | None = None
        self._clock_set: datetime | None = None
        self._last_ckpt = time.monotonic()
        self._day_merge: threading.Thread | None = None
        self._version = 0
        self.latest = None
        self.snapshot: Snapshot | None = None
        self._threads: dict[str, threading.Thread] = {}
        self._last_step_mono: float | None = None

    LAST_GOOD = "inventory.last-good.parquet"

    def _load_inventory(self, load_catalog):
        """The inventory and the catalog over it.  A good one is kept as the last good copy in the
        state folder; when the inventory on disk cannot be read or builds no catalog (a bad survey
        import, a damaged file), the service starts on the last good copy and says why (health
        ``inventory``, /readyz, the wall's banner) instead of not starting at all."""
        import shutil
        from twin_assets.fsio import atomic_write
        keep = self.cfg.var / self.LAST_GOOD
        try:
            gdf = inv.load()
            catalog = load_catalog(inventory=gdf)
        except Exception as e:
            if not keep.exists():
                raise
            why = f"{type(e).__name__}: {e}"[:400]
            log.error("the inventory cannot be used (%s); starting on the last good copy %s", why, keep)
            gdf = inv.load(keep)
            catalog = load_catalog(inventory=gdf)
            self._health["inventory"] = {
                "ok": False, "problem": "inventory_fallback",
                "reason": f"the asset inventory cannot be used ({why}); running on the last good copy: "
                          "fix or re-import the inventory and restart"}
            return gdf, catalog
        src = inv.inventory_path()
        try:
            if not keep.exists() or keep.stat().st_size != src.stat().st_size or \
                    keep.read_bytes() != src.read_bytes():
                atomic_write(keep, lambda tmp: shutil.copyfile(src, tmp))
        except OSError:
            log.exception("keeping the last good inventory failed")
        return gdf, catalog

    # ------------------------------------------------------------ feeding
    def _fresh_engine(self):
        """The provisional engine: a copy of the final one (same windows, same state) that ticks
        as soon as an event past a tick boundary arrives.  An event behind its computed tick goes
        into its next tick there (``behind="next_tick"``), so a provisional value can differ from
        the final one by the late events; the final tick is what alerts and history keep."""
        import copy
        fresh = copy.deepcopy(self.engine)
        fresh.lateness_ms = 0
        return fresh

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
            if self.fresh is not None:
                self.fresh.ingest(kind, table)
                self._peek_due += 1
            self.pipeline.offer(kind, table)
            self.live_objects.offer(kind, table)
            newest = pc.max(table.column("event_time")).as_py() if table.num_rows else None
            prev = self._feed_seen.get(kind, (None, None))[0]
            if newest is not None and prev is not None and newest < prev:
                newest = prev
            self._feed_seen[kind] = (newest or prev, self.clock())
            self._last_batch_wall = time.monotonic()
        if self._peeking:
            self._wake.set()             # an early step: its values on the screens now, not at the next beat

    # ------------------------------------------------------------ ticking
    def step(self) -> int:
        """Compute every tick the watermark allows, evaluate alerts on the due
        ones, publish a snapshot.  Returns the number of ticks computed."""
        with self.lock:
            wm = self.engine.watermark
            ticks = list(self.engine.ticks(wm)) if wm is not None else []
            if ticks:
                self.history.extend(ticks)      # under the lock: a checkpoint (stop) flushes it too
            if self.fresh is not None:
                self._advance_fresh()
        if ticks:
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

    def _advance_fresh(self) -> None:
        """Bring the provisional engine up to its watermark, computing the values of its last tick
        only (its states take every tick's events; nobody reads the ticks in between)."""
        fresh = self.fresh
        # its clock is the service's: a tick is complete for the screens once the clock has passed
        # its end, whether or not a later event came (one that comes after goes to its next tick
        # there; the final engine puts it where it belongs)
        fresh.heartbeat(self.clock())
        wm = fresh.watermark
        if wm is None:
            return
        last = fresh.tick_limit(wm)
        for t in fresh.ticks(wm, want=lambda T: T == last):
            self.fresh_latest = t
        # early firing: the tick the newest events fall in, with the events in so far (its end may be
        # up to a tick away); at most every PEEK_EVERY_S and only when a batch came since the last peek
        mono = time.monotonic()
        if self._peeking and self._peek_due and mono - self._last_peek >= self.PEEK_EVERY_S:
            self._peek_due = 0
            self._last_peek = mono
            self.fresh_peek = fresh.peek()

    PEEK_EVERY_S = 0.2                   # a peek costs a copy of the window state and one tick (~5 ms)
    STEP_EVERY_S = 0.5                   # the engine's beat; a batch brings a peek's step forward

    @property
    def _peeking(self) -> bool:
        """Peek at the open tick only when the clock runs at about real time: faster, a tick ends
        within a fraction of the beat anyway (at 30x every 33 ms) and the beat shows it."""
        return self.fresh is not None and self.cfg.speed <= 2.0

    def _until_next_step(self, began: float) -> float:
        """Seconds to the next step (the last began at ``began``): the beat, or sooner when a batch
        came and a peek is due."""
        mono = time.monotonic()
        wait = began + self.STEP_EVERY_S - mono
        if self._peeking and self._peek_due:
            wait = min(wait, self._last_peek + self.PEEK_EVERY_S - mono)
        return wait

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

    def _buses_expected(self, now: datetime) -> tuple[bool, datetime | None]:
        """(whether some bus route is in service at ``now``, since when the earliest of those runs).
        Routes run to the catalog's timetables (``route_service``); with a route that has none, buses
        are always expected (True, None).  Call under ``self.lock`` (the engine's duty table)."""
        routes = self.catalog.dims.members.get("route", ())
        service = getattr(self.catalog.file, "route_service", {}) or {}
        if not routes or any(r not in service for r in routes):
            return True, None
        duty = self.engine.plan.duty
        ks = [duty.index(service[r]) for r in routes]
        is_open, since, _ = duty.at(int(now.timestamp() * 1000))
        running = [k for k in ks if is_open[k]]
        if not running:
            return False, None
        return True, datetime.fromtimestamp(int(min(since[k] for k in running)) / 1000, UTC)

    def build_snapshot(self) -> Snapshot:
        """The current state as one immutable snapshot (see :mod:`indicators.snapshot`)."""
        from indicators.engine.plan import QUALITY_NAMES
        rt = self.alerts
        now = self.clock()
        with self.lock:
            tick, provisional = self.latest, False
            final_as_of = None if tick is None else tick.time
            for fresh in (self.fresh_latest, self.fresh_peek):
                if fresh is not None and (tick is None or fresh.time_ms > tick.time_ms):
                    tick, provisional = fresh, True      # ahead of the final tick (ServiceConfig.provisional)
            # a peeked tick holds the events up to now: its end may still be ahead of the clock
            as_of = None if tick is None else min(tick.time, now) if provisional else tick.time
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
                limit, since = feed_limit_s(kind), arr
                if kind == "bus" and limit is not None:
                    expected, opened = self._buses_expected(now)
                    if not expected:
                        limit = None         # no route runs now: a silent bus feed is the timetable
                    elif opened is not None and (since is None or opened > since):
                        since = opened       # silence counts from the first route's start of service
                feeds[kind] = FeedFreshness(kind, ev, arr, limit,
                                            None if since is None else max(0.0, (now - since).total_seconds()))
            self._version += 1
            return Snapshot(
                version=self._version, now=now, as_of=as_of, values=values,
                provisional=provisional, final_as_of=final_as_of,
                kpis={} if tick is None else self._kpis.compute(tick.values),
                alerts=alerts, rules=self.pipeline.rules, cases=cases, plans=tuple(rt.plans.values()),
                plan_defs=rt.plan_defs, warnings=dict(rt.warnings), staff=tuple(rt.staff.values()),
                feeds=feeds, health=self.health(), trends={k: tuple(v) for k, v in self._trends.items()},
                buses=self.live_objects.buses(now), video_events=self.live_objects.video(now),
                thresholds_version=self.pipeline.thresholds_version,
                incidents={a.alert_id: k for a in alerts if (k := rt.incident_of(a.rule_id)) is not None},
                built_ms=int(time.time() * 1000))

    DEGRADED_ONLY = frozenset({"inventory"})
    MIN_FREE_BYTES = 200 * 1024 * 1024       # below this the state folder's disk is "nearly full"
    ENGINE_STALL_S = 30.0                    # no engine step for this long: not ready

    def readiness(self) -> dict[str, Any]:
        """Whether the service can take and keep data now, per component, with the reason:
        the state folder's disk headroom and writability, the alert store, the engine's last
        step, each supervised thread, each feed's freshness.  ``ready`` is False when any
        component that loses data or stops the screens is down; a stale feed is reported
        but is the feed owner's matter, not the service's readiness."""
        import shutil
        comps: dict[str, dict[str, Any]] = {}
        try:
            free = shutil.disk_usage(self.cfg.var).free
            comps["disk"] = {"ok": free >= self.MIN_FREE_BYTES, "free_mb": round(free / 1e6, 1),
                             "reason": "" if free >= self.MIN_FREE_BYTES else
                             f"the state folder has {free / 1e6:.1f} MB free; at least "
                             f"{self.MIN_FREE_BYTES / 1e6:.0f} MB are needed: free space or move the state folder"}
        except OSError as e:
            comps["disk"] = {"ok": False, "reason": f"the state folder cannot be measured: {e.strerror or e}"}
        probe = self.cfg.var / ".ready-probe"
        try:
            with open(probe, "wb") as f:
                f.write(b"ok")
                f.flush()
                os.fsync(f.fileno())
            probe.unlink()
            comps["state_folder"] = {"ok": True, "reason": ""}
        except OSError as e:
            comps["state_folder"] = {"ok": False, "reason": f"cannot write in the state folder: {e.strerror or e}"}
        try:
            self.alert_store.ping()
            comps["alert_store"] = {"ok": True, "reason": ""}
        except Exception as e:
            comps["alert_store"] = {"ok": False, "reason": f"the alert store does not answer: {e}"}
        if self.bus is not None:
            try:
                self.feed_log.last_seq           # a stream-info round trip to the JetStream cluster
                comps["bus"] = {"ok": True, "reason": ""}
            except Exception as e:
                comps["bus"] = {"ok": False, "reason": f"NATS JetStream does not answer ({type(e).__name__}: {e}); "
                                                      "feeds cannot be acknowledged: check the NATS cluster"}
        age = time.monotonic() - self._last_step_mono if self._last_step_mono else None
        for name, h in self.health().items():
            comps[name] = dict(h)
        if "engine" in self._threads and age is not None and age > self.ENGINE_STALL_S:
            comps["engine"] = {"ok": False, "problem": "stalled",
                               "reason": f"no engine step for {age:.0f} s (the engine thread may be stuck)"}
        snap = self.snapshot
        feeds = {k: {"stale": f.stale, "age_s": None if f.age_s is None else round(f.age_s)}
                 for k, f in (snap.feeds.items() if snap is not None else ())}
        # running on the last good inventory is degraded, not unready: data is taken and kept
        ready = all(c.get("ok", True) for name, c in comps.items() if name not in self.DEGRADED_ONLY)
        rec = getattr(self.feed_log, "recovery", None)
        notes = list(self.recovery_notes) + list(getattr(rec, "notes", []) or [])
        return {"ready": ready, "components": comps, "feeds": feeds, "recovered_at_start": notes,
                "stale_feeds": sorted(k for k, f in feeds.items() if f["stale"])}

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
               lonlat: tuple[float, float] | None = None, zone_id: str | None = None,
               xy: tuple[float, float] | None = None, photo: str | None = None):
        """A report made by a person (a patrol phone): ``request_id`` is the phone's
        idempotency key, so a report sent twice is one case.  ``photo``: the checksum
        /patrol/photo answered for an uploaded photo."""
        photos = self._photos(photo)
        if (not isinstance(request_id, str) or not 1 <= len(request_id) <= 80 or not request_id.isascii()
                or not request_id.isprintable() or " " in request_id):
            raise ActionError("a report needs its request id (1-80 ASCII characters, no spaces) so that a "
                              "resend is one case")
        cfg = self.alerts.case_cfg
        if cfg is not None and category not in cfg.categories:
            raise ActionError(f"unknown case type {category!r}")
        if xy is not None:
            x0, y0, x1, y1 = self._bounds
            if not (x0 <= xy[0] <= x1 and y0 <= xy[1] <= y1):
                raise ActionError("the reported position is outside the scenic area")
        return self.act(by, "case.report", "case", f"manual:{request_id}",
                        lambda: self.alerts.report(request_id=request_id, category=category, by=by,
                                                   description=description, lonlat=lonlat, zone_id=zone_id, xy=xy,
                                                   photos=photos),
                        detail={"request_id": request_id, **({"photo": photo} if photo else {})})

    def _photos(self, photo: Any) -> tuple[str, ...]:
        if photo in (None, ""):
            return ()
        if not self.photos.exists(photo):
            raise ActionError("the photo was not uploaded (or not kept): upload it again, or send without it")
        return (photo,)

    @property
    def _bounds(self) -> tuple[float, float, float, float]:
        b = self.__dict__.get("_bounds_cache")
        if b is None:
            import numpy as np
            x0, y0, x1, y1 = self.inventory.total_bounds
            xs, ys = inv.frame().to_xy(np.array([x0, x1]), np.array([y0, y1]))
            b = self.__dict__["_bounds_cache"] = (float(xs[0]), float(ys[0]), float(xs[1]), float(ys[1]))
        return b

    # ------------------------------------------------------------ patrol phones
    PATROL_STEPS = ("accept", "arrive", "handle")

    def patrol_case_step(self, case_id: str, step: str, *, by: str, staff_id: str, note: str = "",
                         xy: tuple[float, float] | None = None, photo: str | None = None):
        """A patrol officer moves a case assigned to them: accept → arrive → handled.
        Refused for a case that is not theirs, or for a step that is the console's."""
        if step not in self.PATROL_STEPS:
            raise ActionError(f"a patrol phone takes the steps {', '.join(self.PATROL_STEPS)}, not {step!r}")
        case = self.case_state(case_id)
        if case is None:
            raise ActionError(f"no case {case_id!r}")
        if case.assignee != staff_id:
            raise ActionError(f"case {case_id} is not assigned to {staff_id}")
        photos = self._photos(photo)
        rt = self.alerts
        fns = {"accept": lambda: rt.accept_case(case_id, by=by, note=note),
               "arrive": lambda: rt.arrive_case(case_id, by=by, note=note, xy=xy),
               "handle": lambda: rt.handle_case(case_id, by=by, note=note, photos=photos)}
        return self.act(by, f"case.{step}", "case", case_id, fns[step], before=case,
                        detail={"note": note, "from": "patrol phone", "staff_id": staff_id})

    def patrol_progress(self, patrol_id: str, *, by: str, intervals, checkpoints, anomalies=(),
                        mode: str = "virtual", ended: bool = False):
        """A phone's patrol report (see :mod:`indicators.patrols`); the start and the end are audited."""
        from indicators.patrols import PatrolError
        first = self.patrol_log.get(patrol_id) is None
        try:
            rec = self.patrol_log.progress(patrol_id, username=by, now=self.clock(), intervals=intervals,
                                           checkpoints=checkpoints, anomalies=anomalies, mode=mode, ended=ended)
        except PatrolError as e:
            raise ActionError(str(e)) from None
        if self.audit is not None and (first or ended):
            try:
                self.audit(by, "patrol.end" if ended else "patrol.start", "patrol", patrol_id, after=rec.to_dict())
            except Exception:
                log.exception("audit of patrol %s failed", patrol_id)
        return rec

    def patrols(self, day=None, *, hours: float = PATROL_WINDOW_H) -> dict[str, Any]:
        """The patrols of a local ``day``, or (no day) of the last ``hours`` on the service clock -
        what the console shows, so that a night shift's patrols stay listed past midnight - and
        the route segments none of them covered."""
        if day is not None:
            recs, since = self.patrol_log.day(day), None
        else:
            since = self.clock() - timedelta(hours=hours)
            recs = self.patrol_log.since(since)
        return {"day": day.isoformat() if day is not None else None,
                "since": since.isoformat() if since is not None else None, "hours": None if day else hours,
                "route": self.route.route_id, "length_m": round(self.route.length_m, 1),
                "segments": [s.id for s in self.route.segments], "patrols": [r.to_dict() for r in recs],
                "gaps": [s.id for s in self.patrol_log.uncovered(recs)]}

    def case_step(self, case_id: str, step: str, *, by: str, note: str = "", to_staff: str | None = None,
                  passed: bool = True):
        """Move a case along 立案 → 派遣 → 处置 → 核查 → 结案 (``step``: dispatch,
        accept, arrive, handle, verify, rework, close)."""
        rt = self.alerts
        fns = {
            "dispatch": lambda: rt.dispatch_case(case_id, by=by, to_staff=to_staff or None, note=note),
            "accept": lambda: rt.accept_case(case_id, by=by, note=note),
            "arrive": lambda: rt.arrive_case(case_id, by=by, note=note),
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

    # ------------------------------------------------------------ thresholds (the supervisors' /config page)
    # The rules in force are the catalog defaults under the shipped document under the latest
    # version saved in the alert store (indicators.thresholds).  Reads use the store's latest
    # version; writes go through indicators.thresholds (validation, stale-version check, audit)
    # and are applied to the running pipeline at once, so the next evaluation uses them.

    BACKTEST_BUDGET_S = 4.0
    """The page waits at most about this long for a backtest: the window is shortened to fit."""
    BACKTEST_MAX_HOURS = 24.0
    # The cost per hour of tick history is measured by the service itself (one rule, stored ticks, no
    # engine): ~0.75 s an hour on the idle 2-core machine, half reading Parquet, half the alert
    # pipeline; ~2.6 s an hour while the same process simulates National Day at 30x.
    BACKTEST_FIXED_S = 0.3
    """The part of a backtest's time that does not grow with the window (two pipelines built)."""

    def _thresholds(self) -> dict[str, Any]:
        """Per-service state of the threshold methods, made on first use: the book (built from
        the service's own catalog and inventory, ~10 ms, instead of ``default_book()``'s 2 s
        reload), the rules of the latest saved version, the backtest lock and cost estimate."""
        st = self.__dict__.get("_th_state")
        if st is None:
            from indicators.thresholds import Book
            with self.lock:
                st = self.__dict__.get("_th_state")
                if st is None:
                    st = {"book": Book.from_catalog(self.catalog, self.inventory, baseline=self.pipeline.baseline),
                          "rules": (None, None), "bt_lock": threading.Lock(), "bt_s_per_hour": None,
                          "pos": {iid: k for k, iid in enumerate(self.pipeline.ids)}}
                    self.__dict__["_th_state"] = st
        return st

    def threshold_book(self):
        """The :class:`indicators.thresholds.Book` of this service's catalog."""
        return self._thresholds()["book"]

    def _threshold_doc(self) -> tuple[int, Any, Any]:
        """(latest saved version (0: none), its document, the rules it builds), rules cached by version."""
        from indicators.thresholds import content
        st = self._thresholds()
        version, doc = content(self.alert_store, None)
        cached_version, rules = st["rules"]
        if rules is None or cached_version != version:
            rules = st["book"].rules(doc)
            st["rules"] = (version, rules)
        return version, doc, rules

    def _live_value(self, indicator_id: str) -> tuple[float | None, str]:
        """The indicator's value and quality in the latest engine tick."""
        from indicators.engine.plan import QUALITY_NAMES
        tick = self.latest
        k = self._thresholds()["pos"].get(indicator_id)
        if tick is None or k is None:
            return None, "no_data"
        v = float(tick.values[k])
        return (None if v != v else v), QUALITY_NAMES[int(tick.quality[k])]

    def _threshold_audit(self):
        """The audit hook for threshold writes; a failing audit is logged, never undoes a save."""
        if self.audit is None:
            return None

        def audit(actor, action, object_type, object_id, **kw):
            try:
                self.audit(actor, action, object_type, object_id, **kw)
            except Exception:
                log.exception("audit of %s %s %s failed", action, object_type, object_id)
        return audit

    def threshold_search(self, **filters) -> list[dict[str, Any]]:
        """The rules matching ``text``, ``family``, ``zone``, ``feed``, ``level``, ``side``
        (:meth:`indicators.thresholds.Book.search`) under the latest saved version, each with
        the indicator's latest ``value`` and ``quality``."""
        book = self.threshold_book()
        _, doc, _ = self._threshold_doc()
        rows = book.search(doc, **{k: v for k, v in filters.items() if v not in (None, "")})
        for r in rows:
            r["value"], r["quality"] = self._live_value(r["id"])
        return rows

    def threshold_describe(self, rule_id: str) -> dict[str, Any]:
        """One rule as it is in force and where each part comes from
        (:meth:`indicators.thresholds.Book.describe`), with ``loaded_version`` - the saved
        version it was read from (0: none), what a save must name as ``expected_version`` -
        and the latest ``value`` / ``quality``."""
        book = self.threshold_book()
        version, doc, rules = self._threshold_doc()
        d = book.describe(rule_id, doc, version=version or None, rules=rules)
        d["loaded_version"] = version
        d["value"], d["quality"] = self._live_value(d["indicator_id"])
        d["calendars"] = sorted((book.effective(doc).get("calendars") or {}))   # what a new profile may name
        return d

    @staticmethod
    def _reason_problem():
        from indicators.thresholds import FieldProblem
        return FieldProblem("reason", "comment", "a reason is required: it is kept with the version and shown "
                                                 "in the audit")

    def save_threshold(self, rule_id: str, change, *, by: str, reason: str, expected_version: int):
        """Save ``change`` (an :class:`indicators.thresholds.Change`) to one rule as a new
        version and apply it from the next evaluation.  ``expected_version``: the version the
        supervisor loaded.  Raises :class:`indicators.thresholds.Refused` (no reason, problems
        by field, nothing changed) or :class:`indicators.thresholds.StaleVersion` (someone saved
        since; it says who and what); both are audited as refused."""
        from indicators.thresholds import Refused, content, set_rule, validate_change
        book = self.threshold_book()
        audit = self._threshold_audit()
        reason = (reason or "").strip()
        if not reason:
            # set_rule would refuse too, but only after the change's own problems: say everything at once
            try:
                _, doc = content(self.alert_store, expected_version)
            except KeyError:
                doc = None
            _, problems = validate_change(rule_id, change, doc, book=book)
            problems = [self._reason_problem(), *problems]
            if audit is not None:
                audit(by, "thresholds.save", "thresholds", f"v{expected_version}", before=None, after=None,
                      detail={"rule": rule_id, "refused": [p.as_dict() for p in problems]}, outcome="refused")
            raise Refused(problems)
        with self.lock:
            try:
                v = set_rule(self.alert_store, rule_id, change, author=by, reason=reason,
                             expected_version=expected_version, audit=audit, book=book)
            except KeyError as e:                        # expected_version names no version
                raise ActionError(str(e).strip("'\"")) from None
            self.pipeline.reload_thresholds()            # the next evaluation uses it
        self._publish()
        return v

    def rollback_thresholds(self, version: int, *, by: str, reason: str, expected_version: int):
        """Save the document of ``version`` again as a new version (0: back to the shipped
        defaults) and apply it from the next evaluation.  Refusals as :meth:`save_threshold`."""
        from indicators.thresholds import Refused, rollback
        book = self.threshold_book()
        audit = self._threshold_audit()
        reason = (reason or "").strip()
        if not reason:
            if audit is not None:
                audit(by, "thresholds.rollback", "thresholds", f"v{expected_version}", before=None, after=None,
                      detail={"rollback_to": version, "refused": [self._reason_problem().as_dict()]},
                      outcome="refused")
            raise Refused([self._reason_problem()])
        with self.lock:
            try:
                v = rollback(self.alert_store, version, by, reason, book=book, expected_version=expected_version,
                             audit=audit)
            except KeyError as e:
                raise ActionError(str(e).strip("'\"")) from None
            self.pipeline.reload_thresholds()
        self._publish()
        return v

    def threshold_history(self) -> list[dict[str, Any]]:
        """Every saved version, oldest first: version, author, at, reason and ``changes`` from the
        version before (path, kind, old, new).  A document holds only what supervisors set, so
        where one side of a change is unset (the catalog's or shipped value applied), that change
        also carries the value in force then: ``old_in_force`` / ``new_in_force`` (the page says
        "红色触发值 100% → 95%", not "set to 95%").  Versions never change: worked out once each."""
        from indicators.alerts.rules import RuleError
        from indicators.thresholds.versions import change_dict, diff
        st = self._thresholds()
        book, known = st["book"], st.setdefault("history", {})
        out, prev, prev_rules = [], {}, None
        for v in self.alert_store.threshold_versions():
            changes = known.get(v.version)
            rules = None
            if changes is None:
                changes = [change_dict(c) for c in diff(prev, v.content)]
                if any(c["old"] is None or c["new"] is None for c in changes):
                    try:
                        before = prev_rules if prev_rules is not None else book.rules(prev)
                        rules = book.rules(v.content)
                    except RuleError:                   # a document that no longer builds: no values
                        before = rules = None
                    for c in changes:
                        for side, in_force in (("old", before), ("new", rules)):
                            if c[side] is None and in_force is not None:
                                value = _in_force(in_force, c["path"])
                                if value is not None:
                                    c[f"{side}_in_force"] = value
                known[v.version] = changes
            out.append({"version": v.version, "author": v.author, "at": v.created_at, "reason": v.comment,
                        "changes": changes})
            prev, prev_rules = v.content, rules
        return out

    def threshold_diff(self, a: int, b: int | None = None) -> list[dict[str, Any]]:
        """What changed from version ``a`` to ``b`` (None: the latest; 0: the shipped defaults)."""
        from indicators.thresholds import content
        from indicators.thresholds.versions import change_dict, diff
        try:
            _, da = content(self.alert_store, a)
            _, db = content(self.alert_store, b)
        except KeyError as e:
            raise ActionError(str(e).strip("'\"")) from None
        return [change_dict(c) for c in diff(da, db)]

    def backtest_threshold(self, rule_id: str, change, hours: float = 6) -> dict[str, Any]:
        """What the current rule and the rule with ``change`` would have raised over the last
        ``hours`` of this service's tick history (``var/history``), evaluated like the live
        pipeline (same cadence, same baseline), this one rule only - its numbers are exact, it
        is the fast way (:func:`indicators.thresholds.backtest` with ``only``).

        Bounded in time: the window is cut to what fits in :attr:`BACKTEST_BUDGET_S` at the cost
        per hour this service measured on its own runs (the first run measures on the last hour
        before it decides; ``window.capped`` says when the window was cut); one backtest runs at
        a time (on two cores two would each take twice as long).  Returns the window covered,
        the counts of both sides (``alerts``, ``by_max_tier``, ``fired_by_tier``), the value at
        each evaluation (``series``) and each side's tier thresholds in force at those times
        (``lines``: profiles switch by calendar).  Raises ``Refused`` for an invalid change,
        :class:`ActionError` when there is no history yet."""
        from indicators.thresholds import FieldProblem, Refused, UnknownRule, backtest, validate_change
        st = self._thresholds()
        book = st["book"]
        try:
            rid = book.resolve(rule_id)
        except UnknownRule as e:
            raise Refused([FieldProblem("id", "id", str(e))]) from None
        version, current, rules_now = self._threshold_doc()
        proposed, problems = validate_change(rid, change, current, book=book)
        if problems:
            raise Refused(problems)
        source = self.cfg.var / "history"
        if not any(source.glob("date=*/*/part-*.parquet")):                # hours and merged days
            raise ActionError("no tick history yet: the service writes it as it runs (a minute of ticks at a time)")
        requested = max(0.0, float(hours))

        def run(window_h: float) -> dict[str, Any]:
            return backtest(source, current, proposed, focus=[rid], days=window_h / 24, catalog=self.catalog,
                            inventory=self.inventory, alerts_every=self.cfg.alerts_every,
                            baseline=self.pipeline.baseline, only=[rid])

        def covered_h(r: dict[str, Any]) -> float:
            if r["first_tick"] is None:
                return 0.0
            a, b = (datetime.fromisoformat(r[k].replace("Z", "+00:00")) for k in ("first_tick", "last_tick"))
            return (b - a).total_seconds() / 3600

        def learn(r: dict[str, Any]) -> None:
            """The cost per hour seen now: taken at once when it is higher (the machine is busier:
            the live engine and simulator share its two cores), approached slowly when lower."""
            h = covered_h(r)
            if h >= 0.25:                      # shorter windows say little about the cost per hour
                seen = max(0.05, (r["elapsed_s"] - self.BACKTEST_FIXED_S) / h)
                old = st["bt_s_per_hour"]
                st["bt_s_per_hour"] = seen if old is None or seen > old else 0.7 * old + 0.3 * seen

        t0 = time.perf_counter()
        with st["bt_lock"]:
            r = None
            window = min(requested, self.BACKTEST_MAX_HOURS)
            if st["bt_s_per_hour"] is None:
                # not measured in this process yet: measure on (at most) the last hour first, so that
                # even the first backtest stays near the budget on a busy machine
                window = min(window, 1.0)
                r = run(window)
                learn(r)
            spent = time.perf_counter() - t0
            fits = (self.BACKTEST_BUDGET_S - spent - self.BACKTEST_FIXED_S) / (st["bt_s_per_hour"] or 1.0)
            wanted = min(requested, self.BACKTEST_MAX_HOURS, max(0.25, fits))
            if r is None or wanted > window * 1.2:
                window = wanted
                r = run(window)
                learn(r)
        first = None if r["first_tick"] is None else datetime.fromisoformat(r["first_tick"].replace("Z", "+00:00"))
        last = None if r["last_tick"] is None else datetime.fromisoformat(r["last_tick"].replace("Z", "+00:00"))
        covered = covered_h(r)
        rule_now, rule_new = rules_now[rid], book.rules(proposed)[rid]
        series = r["series"].get(rid, [])
        lines: dict[str, dict[str, list]] = {"current": {}, "proposed": {}}
        for side, rule in (("current", rule_now), ("proposed", rule_new)):
            for t, _ in series:
                in_force = {tier.name: tier.threshold for tier in
                            rule.active(datetime.fromisoformat(t.replace("Z", "+00:00")))[1]}
                for name in ("blue", "yellow", "orange", "red"):
                    lines[side].setdefault(name, []).append(in_force.get(name))
        empty = {"alerts": 0, "by_max_tier": {}, "fired_by_tier": {}}
        return {
            "rule": rid, "version": version, "direction": rule_now.direction,
            "window": {"requested_hours": requested, "hours": window, "capped": window < requested,
                       "first": first, "last": last, "covered_hours": covered, "ticks": r["ticks"],
                       "evaluations": r["evaluations"]},
            "elapsed_s": round(time.perf_counter() - t0, 3), "budget_s": self.BACKTEST_BUDGET_S,
            "s_per_hour": st["bt_s_per_hour"],
            "current": r["current"]["per_rule"].get(rid, empty), "proposed": r["proposed"]["per_rule"].get(rid, empty),
            "series": series, "lines": {k: {n: v for n, v in d.items() if any(x is not None for x in v)}
                                        for k, d in lines.items()},
        }

    # ------------------------------------------------------------ running
    RESTART_BACKOFF_S = (1.0, 2.0, 5.0, 10.0, 30.0, 60.0)

    def start(self) -> None:
        """Start the simulator (if configured) and the step loop in daemon threads, each
        supervised: a component that stops or fails is restarted with back-off."""
        if self.cfg.simulate:
            self._threads["simulator"] = threading.Thread(target=self._supervise, args=("simulator", self._simulate),
                                                          name="simulator", daemon=True)
        self._threads["engine"] = threading.Thread(target=self._loop, name="engine", daemon=True)
        if self.bus is not None:
            from indicators.bus.gateway import RawIntake
            self.raw_intake = RawIntake(self.bus, self.cfg.area, self.ingestor)
            self.stop_event_hooks.append(self.raw_intake.stop)
            self._threads["gateways"] = threading.Thread(target=self.raw_intake.run, name="gateways", daemon=True)
        for th in self._threads.values():
            th.start()

    def _supervise(self, name: str, run: Callable[[], Any]) -> None:
        """Run ``run`` until the service stops; when it raises or returns early, count it, say
        why in the health, wait (1 s, 2 s, 5 s … 60 s; back to 1 s after 10 minutes of good
        running) and start it again.  A full disk or a bug must not leave a dead component
        behind a healthy-looking process."""
        failures, streak = 0, 0
        while not self.stop_event.is_set():
            began = time.monotonic()
            try:
                run()
                if self.stop_event.is_set():
                    return
                problem = f"{name} stopped by itself"
            except Exception as e:
                log.exception("%s failed", name)
                problem = f"{name} failed: {type(e).__name__}: {e}"[:300]
            failures += 1
            streak = 0 if time.monotonic() - began > 600 else streak + 1
            wait = self.RESTART_BACKOFF_S[min(streak, len(self.RESTART_BACKOFF_S)) - 1]
            self._health[name] = {"ok": False, "problem": "restarting", "reason": problem,
                                  "restarts": failures, "retry_in_s": wait}
            if self.stop_event.wait(wait):
                return
            self._health[name] = {"ok": True, "problem": "", "reason": "", "restarts": failures}

    def _simulate(self) -> None:
        """The built-in simulator, from where the feed log ends (a restart goes on, not back)."""
        from indicators.feeds.simulator import run_live
        last = self._last_event_time()
        start = max(self.sim_start, last + timedelta(minutes=1)) if last else self.sim_start
        run_live(self.ingestor, self.cfg.scenario, start=start, speed=self.cfg.speed,
                 seed=self.cfg.seed, stop_event=self.stop_event,
                 sim_clock=self.sim_clock if self.cfg.simulated_time else None,
                 inventory=self.inventory)

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
                if self.fresh is not None:
                    self.fresh.heartbeat(self.clock())

    def _loop(self) -> None:
        while not self.stop_event.is_set():
            began = time.monotonic()
            try:
                self._keep_time()
                self.step()
                self._last_step_mono = time.monotonic()
                self._health["engine"] = {"ok": True, "problem": "", "reason": ""}
            except Exception as e:
                log.exception("engine step failed; continuing")
                self._peek_due = 0       # a failed step is retried at the beat, not at once
                self._health["engine"] = {"ok": False, "problem": "step_failed", "reason": f"engine step failed: {e}"}
            # the next step at the beat, or sooner when a batch comes (_on_batch wakes this)
            while not self.stop_event.is_set() and (wait := self._until_next_step(began)) > 0:
                self._wake.wait(wait)
                self._wake.clear()

    def checkpoint(self) -> None:
        """History first, then the engine: after a crash between the two, the
        history parts past the engine's checkpoint are dropped on restart."""
        with self.lock:
            self.history.flush()
            self.history.prune(self.engine.last_tick or datetime.now(UTC))
            self.engine.checkpoint(self.ckpt)
            covered = self.engine.last_tick
            covered_seq = self.engine.clock.covered_seq
        from indicators.feeds.log import FeedLog
        if covered_seq is not None and isinstance(self.feed_log, FeedLog):
            try:
                self.feed_log.prune(covered_seq, time.time() - self.cfg.feed_log_retention.total_seconds())
            except OSError:
                log.exception("feed log retention failed; the segments stay")
        now = self.clock()
        if self._dead_pruned is None or now - self._dead_pruned >= timedelta(hours=1):
            try:
                self.dead.prune(now - self.cfg.deadletter_retention)
            except Exception:
                log.exception("dead-letter retention failed; the rows stay")
            self._dead_pruned = now
        # a finished hour the checkpoint covers becomes one part (one key frame): ~1 s of work an
        # hour, at most 4 hours a checkpoint (older hours left by an earlier version follow a few at a time)
        if covered is not None:
            try:
                self.history.compact(int(covered.timestamp() * 1000), limit=4)
            except Exception:
                log.exception("tick history compaction failed; the parts stay as they are")
            # a day finished a day ago (every hour compacted) becomes one part: seconds of work once a
            # day, off the step loop so the wall stays live meanwhile; the last day stays in hours, where
            # the /config backtest reads a few hours of every indicator cheaply
            if not self.stop_event.is_set() and (self._day_merge is None or not self._day_merge.is_alive()):
                self._day_merge = threading.Thread(target=self._merge_days, args=(int(covered.timestamp() * 1000),),
                                                   name="history-days", daemon=True)
                self._day_merge.start()
        self._last_ckpt = time.monotonic()

    def _merge_days(self, before_ms: int) -> None:
        try:
            self.history.compact_days(before_ms - 86_400_000, limit=1)
        except Exception:
            log.exception("merging a day of tick history failed; its hours stay as they are")

    def stop(self) -> None:
        """Stop the threads (each finishes its step), then take the last checkpoint."""
        self.stop_event.set()
        self._wake.set()
        for hook in self.stop_event_hooks:
            hook()
        for th in self._threads.values():
            if th is not threading.current_thread():
                th.join(timeout=15)
        self.checkpoint()
        if self.bus is not None:
            self.bus.close()


def _in_force(rules, path: str) -> float | None:
    """The value a change's path names (``override[ID].tiers.red``, ``….tiers.red.recover``,
    ``….for``, ``….keep_firing_for``) in a built rule set; None for anything else."""
    import re
    m = re.match(r"^override\[(?P<id>[^\]]+)\]\.(?P<rest>.+)$", path)
    rule = rules.get(m["id"]) if m else None
    if rule is None:
        return None
    rest = m["rest"]
    if rest == "for":
        return rule.pending_s
    if rest == "keep_firing_for":
        return rule.keep_firing_s
    t = re.match(r"^tiers\.(\w+)(?:\.(threshold|recover))?$", rest)
    tier = next((x for x in rule.tiers if t and x.name == t[1]), None)
    if tier is None:
        return None
    return tier.recover if t[2] == "recover" else tier.threshold


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
