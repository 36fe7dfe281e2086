"""The embedded default deployment: feeds, engine and alerts in one process.

    simulator (live) ─┐
    HTTP /ingest ─────┼─> Ingestor ─> FeedLog (fsync) ─> Engine ─> AlertRuntime ─> store
    drop folder ──────┘        └─> dead-letter / late          └─> view publisher (LiveHub)

State lives under one folder (``var/`` by default, ``SCENIC_TWIN_VAR``):
``feeds/`` (the durable feed log), ``deadletter.sqlite``, ``engine.ckpt``
(checkpoint with the feed-log sequence it covers) and ``alerts.sqlite``.
A restart restores the engine checkpoint and replays the log after it, so
no value is double-counted or missed; the alert runtime rebuilds itself
from its store.  This class only wires the pieces; each is tested on its own.
"""
from __future__ import annotations

import logging
import math
import os
import threading
import time
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any, Callable

import numpy as np

from twin_assets import inventory as inv
from twin_assets.layout import REPO_ROOT

log = logging.getLogger("scenic_twin.service")
UTC = timezone.utc


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


def rule_defaults(catalog):
    """The catalog's default thresholds as alert-rule defaults."""
    from indicators.alerts.rules import RuleDefaults
    for ind in catalog.indicators:
        f, th = ind.family, ind.thresholds
        tiers = {t: v for t, v in zip(("blue", "yellow", "orange", "red"), th.tiers()) if v is not None}
        yield RuleDefaults(ind.text, th.direction, tiers, f.freshness_s, f.id, dict(ind.scope),
                           f.name_zh, f.name_en, f.unit)


class Service:
    """Runs the pipeline; ``publish`` receives the view state after each step."""

    def __init__(self, cfg: ServiceConfig, publish: Callable[[dict], Any] = lambda _: None):
        from indicators.alerts import routing, runtime as art, store as ast
        from indicators.alerts.rules import build_rules
        from indicators.catalog import load_catalog
        from indicators.engine.engine import Engine
        from indicators.feeds.deadletter import DeadLetterStore
        from indicators.feeds.ingest import Ingestor
        from indicators.feeds.log import FeedLog
        from indicators.feeds.simulator import SimClock

        self.cfg = cfg
        self.publish = publish
        cfg.var.mkdir(parents=True, exist_ok=True)
        self.inventory = inv.load()
        self.catalog = load_catalog(inventory=self.inventory)
        self.lock = threading.RLock()
        self.stop_event = threading.Event()

        self.feed_log = FeedLog(cfg.var / "feeds")
        self.dead = DeadLetterStore(cfg.var / "deadletter.sqlite")
        last = self._last_event_time()
        now = datetime.now(UTC).replace(second=0, microsecond=0)
        begin = cfg.start or now
        self.sim_start = max(begin, last + timedelta(minutes=1)) if last else begin
        self.sim_clock = SimClock(self.sim_start)
        simulated_time = cfg.speed != 1.0 or cfg.start is not None
        clock = self.sim_clock if simulated_time else (lambda: datetime.now(UTC))
        self.ingestor = Ingestor(self.feed_log, self.dead, clock=clock)

        self.engine = Engine(self.catalog, self.inventory, tick=cfg.tick)
        self.ckpt = cfg.var / "engine.ckpt"
        covered = self.engine.restore(self.ckpt) if self.ckpt.exists() else None
        replayed = 0
        for seq, kind, table in self.feed_log.replay((covered or 0) + 1):
            self.engine.ingest(kind, table, feed_seq=seq)
            replayed += 1
        log.info("engine restored at feed seq %s, replayed %d batches", covered, replayed)
        from indicators.engine.history import History
        self.history = History(cfg.var / "history", self.catalog.ids, retention=cfg.history_retention)
        # ticks after the checkpoint are recomputed: drop what was written of them
        last = self.engine.last_tick
        self.history.drop_after(None if last is None else int(last.timestamp() * 1000))
        self._pending: dict[str, list] = {}
        self.ingestor.subscribe(self._on_batch)

        places = routing.places_from_inventory(self.inventory, inv.frame())
        acfg = art.load_config(zones=list(places.zones))
        self.alert_store = ast.open_store(cfg.var / "alerts.sqlite")
        doc = self.alert_store.threshold_version()
        self.rules = build_rules(list(rule_defaults(self.catalog)), doc.content if doc else None)
        zones = list(places.zones)
        self.alerts = art.AlertRuntime(
            self.alert_store, self.rules, acfg.compound, acfg.plans, clock, art.ListNotifier(),
            cases=acfg.cases, places=places,
            forecast=art.ForecastSetup(zones, [f"crowd.load_rate:zone={z}@now" for z in zones]))
        self._last_alert_eval: datetime | None = None
        self._first_tick: datetime | None = None
        self._last_ckpt = time.monotonic()
        self._ids = self.catalog.ids
        self._index = {i: k for k, i in enumerate(self._ids)}
        zrows = self.inventory[self.inventory["type"] == "management_zone"]
        self._zones = list(zrows["zone_id"])
        self.latest = None

    # ------------------------------------------------------------ feeding
    def _last_event_time(self) -> datetime | None:
        last = None
        for _, _, table in self.feed_log.replay(max(1, (self.feed_log.last_seq or 0) - 200)):
            t = table.column("event_time")
            if len(t):
                m = max(x for x in t.to_pylist() if x is not None)
                last = m if last is None or m > last else last
        return last

    def _on_batch(self, seq: int, kind: str, table) -> None:
        with self.lock:
            self.engine.ingest(kind, table, feed_seq=seq)
            self._pending.setdefault(kind, []).append(table)

    # ------------------------------------------------------------ ticking
    def step(self) -> int:
        """Compute every tick the watermark allows, evaluate alerts, publish. Returns ticks computed."""
        import pyarrow as pa
        from indicators.engine.plan import QUALITY_NAMES
        with self.lock:
            wm = self.engine.watermark
            if wm is None:
                return 0
            ticks = list(self.engine.ticks(wm))
            if not ticks:
                return 0
        self.history.extend(ticks)
        last = ticks[-1]
        self.latest = last
        t = last.time
        self._first_tick = self._first_tick or ticks[0].time
        # slow feeds (hydrants, bins) report every 15 min: evaluating before they
        # have would raise a flood of no-data alerts on every start
        warm = t - self._first_tick >= self.cfg.alerts_warmup
        if warm and (self._last_alert_eval is None or t - self._last_alert_eval >= self.cfg.alerts_every):
            with self.lock:   # the feed records since the last evaluation (staff positions, video, cases …)
                events = {k: pa.concat_tables(v) for k, v in self._pending.items()}
                self._pending = {}
            values = {i: (None if math.isnan(v) else float(v), QUALITY_NAMES[q])
                      for i, v, q in zip(self._ids, last.values.tolist(), last.quality.tolist())}
            self.alerts.on_tick(t, values, events)
            self._last_alert_eval = t
        self.publish(self.view_state(last))
        if time.monotonic() - self._last_ckpt > self.cfg.checkpoint_every_s:
            self.checkpoint()
        return len(ticks)

    def view_state(self, tick) -> dict:
        """What the wall display shows: zones by load and tier, headline numbers."""
        from dashboard.scene import TIER_COLOURS
        vals, qual = tick.values, tick.quality
        zones, present = {}, 0.0
        for z in self._zones:
            i = self._index.get(f"crowd.load_rate:zone={z}@now")
            c = self._index.get(f"crowd.count:zone={z}@now")
            if i is None:
                continue
            load = None if math.isnan(vals[i]) else round(float(vals[i]), 1)
            rule = self.rules.get(self._ids[i])
            tier = "nodata" if load is None else _tier(rule, load, tick.time)
            zones[z] = {"load": load, "tier": tier, "color": list(TIER_COLOURS[tier]),
                        "quality": ("ok", "stale", "no_data")[int(qual[i])]}
            if c is not None and not math.isnan(vals[c]):
                present += float(vals[c])
        core = [z for z in ("west_plaza", "tower_base", "waterfront_steps", "riverside_central", "haixin_bridge")
                if zones.get(z, {}).get("load") is not None]
        local = tick.time.astimezone(timezone(timedelta(hours=8)))
        return {"as_of": local.strftime("%Y-%m-%d %H:%M:%S"), "present": int(present),
                "core_load": (max(zones[z]["load"] for z in core) if core else None),
                "alerts": sum(1 for a in self.alert_store.active_alerts() if a.status == "firing"),
                "zones": zones}

    # ------------------------------------------------------------ running
    def start(self) -> None:
        """Start the simulator (if configured) and the step loop in daemon threads."""
        if self.cfg.simulate:
            threading.Thread(target=self._simulate, name="simulator", daemon=True).start()
        threading.Thread(target=self._loop, name="engine", daemon=True).start()

    def _simulate(self) -> None:
        from indicators.feeds.simulator import run_live
        try:
            run_live(self.ingestor, self.cfg.scenario, start=self.sim_start, speed=self.cfg.speed,
                     seed=self.cfg.seed, stop_event=self.stop_event,
                     sim_clock=self.sim_clock if (self.cfg.speed != 1.0 or self.cfg.start) else None,
                     inventory=self.inventory)
        except Exception:
            log.exception("simulator stopped")

    def _loop(self) -> None:
        while not self.stop_event.is_set():
            try:
                self.step()
            except Exception:
                log.exception("engine step failed; continuing")
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


def _tier(rule, value: float, now: datetime) -> str:
    if rule is None:
        return "none"
    rank, tier, _ = rule.classify(value, 0, now)
    return tier.name if tier is not None else "none"
