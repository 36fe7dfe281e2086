"""``scenic-twin replay DIR --alerts``: a recording through the engine AND the alert runtime.

The pipeline is driven the way :class:`indicators.service.Service`
drives it live, but over a recording (a directory written by
:func:`indicators.feeds.simulator.write_recording`) and in event time:

    recording ─> Engine (catalog + inventory) ─> AlertRuntime ─> store (SQLite)
                   every tick                      every ``alerts_every`` of event time

* batches come in arrival order (:func:`indicators.engine.replay.read_batches`);
  after each batch every tick the watermark allows is computed;
* the alert rules are evaluated on the first tick and then on the first tick
  at least ``alerts_every`` (15 s, the service's interval) after the previous
  evaluation, with that tick's values and the feed records (staff positions,
  warnings, AI video, gate counts, external cases) that ARRIVED since the
  previous evaluation - staff positions matter: cases are dispatched to the
  nearest available person by walking distance;
* the wiring is :class:`indicators.pipeline.Pipeline`, the same object the
  live service drives, so both decide the same alerts for the same events;
* rules = the catalog defaults (:func:`indicators.pipeline.rule_defaults`) plus
  the overrides document: ``thresholds`` if given, else the latest threshold
  version saved in the store (what the service uses);
* compound rules, plans and case routing come from ``data/alerts``; the zone
  forecast watches ``crowd.load_rate:zone=Z@now`` of every zone; places from
  the inventory;
* the runtime's clock is the replay's event time (the time of the tick being
  evaluated), so a replay reads no wall clock and the same recording into an
  empty store gives the same store;
* at the end the watermark is moved past the last event, so the last ticks
  are computed and evaluated too.

Robustness: malformed records of the recording (``malformed.jsonl``) are
counted and skipped, a batch the engine refuses (missing columns, wrong
types) is counted and skipped, feed rows the runtime cannot use (a staff row
without an id, a warning without a signal ...) are dropped before it sees
them, and an evaluation that still raises is logged, counted and retried
without the feed rows - a replay never stops on bad input.

The store keeps what the runtime wrote (``scenic-twin alerts|cases|plans
--store FILE``).  A tick at or before the store's last tick is ignored by the
runtime: replay into a fresh store (the summary's ``store_last_tick_before``
says whether it was).
"""
from __future__ import annotations

import json
import logging
import os
import sys
import tempfile
from collections import Counter
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any, Callable, Iterator, Mapping, Sequence

import pyarrow as pa
import pyarrow.compute as pc

from indicators.engine.replay import recording_span, read_batches

log = logging.getLogger(__name__)

__all__ = ["replay_alerts", "Collector", "drive", "feed_ticks", "force_last", "wants_tick", "add_cli_arguments",
           "run_cli"]

_EPOCH = datetime(1970, 1, 1, tzinfo=timezone.utc)
_FIRED = ("firing", "tier_up", "refiring")
def _iso(t: datetime | None) -> str | None:
    return None if t is None else t.astimezone(timezone.utc).isoformat().replace("+00:00", "Z")


def _batches(directory: Path, counters: Counter) -> Iterator[tuple[str, Any]]:
    """(kind, payload) in arrival order.  If ``malformed.jsonl`` itself cannot be
    parsed, the typed files are replayed without it (its lines all count as
    malformed)."""
    try:
        it = read_batches(directory)
        first = next(it, None)
    except ValueError as e:                                # e.g. a JSON line that is not JSON
        bad = directory / "malformed.jsonl"
        if not bad.exists():
            raise
        log.warning("unreadable %s (%s): replaying the typed feeds without it", bad, e)
        counters["malformed"] += sum(1 for line in bad.read_text(encoding="utf-8", errors="replace").splitlines()
                                     if line.strip())
        with tempfile.TemporaryDirectory(prefix="replay-alerts-") as tmp:
            for p in directory.iterdir():
                if p.name != "malformed.jsonl":
                    os.symlink(p.resolve(), Path(tmp) / p.name)
            yield from read_batches(tmp)
        return
    if first is None:
        return
    yield first
    yield from it


class Collector:
    """Builds the summary from the runtime's tick results."""

    def __init__(self) -> None:
        self.fired: list[dict] = []
        self.by_tier: dict[str, Counter] = {"threshold": Counter(), "compound": Counter(), "forecast": Counter()}
        self.new_alerts: dict[str, Counter] = {"threshold": Counter(), "compound": Counter(), "forecast": Counter()}
        self.data_quality: Counter = Counter()
        self.plans: list[dict] = []
        self.cases: dict[str, dict] = {}
        self.forecasts: list[dict] = []
        self.first_fired: dict[str, list[tuple[datetime, str]]] = {}   # threshold rule -> [(at, tier)]

    @staticmethod
    def _group(rule_id: str) -> str:
        if rule_id.startswith("forecast:"):
            return "forecast"
        if rule_id.startswith("compound:"):
            return "compound"
        return "threshold"

    def add(self, res, runtime) -> None:
        for e in res.events:
            g = self._group(e.rule_id)
            if e.kind in ("no_data", "error"):
                self.data_quality[e.kind] += 1
            if e.kind not in _FIRED:
                continue
            tier = e.to_tier or "none"
            self.by_tier[g][tier] += 1
            if e.kind == "firing":
                self.new_alerts[g][tier] += 1
            rec = {"alert_id": e.alert_id, "rule_id": e.rule_id, "kind": e.kind, "tier": e.to_tier,
                   "at": _iso(e.at), "value": e.value}
            if g == "forecast":
                d = dict(e.details)
                rec.update(zone=d.get("zone"), lead_min=d.get("lead_min"), predicted=d.get("predicted"),
                           threshold=d.get("threshold"))
                self.forecasts.append({"alert_id": e.alert_id, "rule_id": e.rule_id,
                                       "indicator_id": e.rule_id[len("forecast:"):], "zone": d.get("zone"),
                                       "kind": e.kind, "tier": d.get("tier") or e.to_tier, "at": e.at,
                                       "lead_min": d.get("lead_min"), "predicted": d.get("predicted"),
                                       "threshold": d.get("threshold")})
            elif g == "threshold":
                self.first_fired.setdefault(e.rule_id, []).append((e.at, e.to_tier or ""))
            self.fired.append(rec)
        for pe in res.plan_events:
            if pe.kind in ("activated", "level_raised"):
                inst = runtime.plans.get(pe.plan_id)
                trig = dict(inst.trigger) if inst is not None and inst.instance_id == pe.instance_id else {}
                self.plans.append({"plan_id": pe.plan_id, "instance_id": pe.instance_id, "event": pe.kind,
                                   "level": pe.level, "at": _iso(pe.at), "compound": trig.get("compound"),
                                   "trigger_alert": trig.get("alert_id")})
        for s in res.case_steps:
            c = runtime.cases.get(s.case_id)
            rec = self.cases.setdefault(s.case_id, {"case_id": s.case_id, "dispatches": []})
            if c is not None:
                top = c.suggested[0] if c.suggested else {}
                rec.update(category=c.category, source=c.source, priority=c.priority, zone_id=c.zone_id,
                           opened_at=_iso(c.opened_at), place_zh=c.place_zh, place_en=c.place_en,
                           status=c.status, departments=list(c.departments), assignee=c.assignee,
                           suggested=[dict(x) for x in c.suggested],
                           staff_id=top.get("staff_id"), walking_m=top.get("walking_m"),
                           straight_m=top.get("straight_m"))
            if s.step == "dispatch":
                rec["dispatches"].append({"department": s.department, "at": _iso(s.at),
                                          "staff_id": dict(s.details).get("staff")})

    def forecast_leads(self) -> list[dict]:
        """Each forecast alert firing (or raise) with the predicted lead, and - when
        the zone's threshold alert later fired at that tier or higher - the
        actual lead (threshold firing minus forecast firing)."""
        from indicators.alerts import RANK
        out = []
        for f in self.forecasts:
            need = RANK.get(f["tier"] or "", 0)
            later = [at for at, tier in self.first_fired.get(f["indicator_id"], [])
                     if RANK.get(tier, 0) >= need and at >= f["at"]]
            reached = min(later) if later else None
            out.append({k: (_iso(v) if isinstance(v, datetime) else v) for k, v in f.items()}
                       | {"reached_at": _iso(reached),
                          "actual_lead_min": None if reached is None
                          else round((reached - f["at"]).total_seconds() / 60.0, 2)})
        return out


def feed_ticks(ticks, pipes: Sequence[Any], now: dict, on_result: Callable[[int, Any], None], state: dict) -> None:
    """Hand each tick to every pipeline in turn (the clock ``now["t"]`` is the
    tick's time); ``on_result(i, result)`` gets each evaluation that ran."""
    for t in ticks:
        state["ticks"] += 1
        if state["first"] is None:
            state["first"] = t.time
        state["last"] = t.time
        now["t"] = t.time
        for i, pipe in enumerate(pipes):
            res = pipe.on_tick(t)
            if res is not None and not res.skipped:
                on_result(i, res)


def _ms(t: datetime) -> int:
    return (t - _EPOCH) // timedelta(milliseconds=1)


def wants_tick(pipe: Any, T: int) -> bool:
    """Whether ``pipe`` reads the tick at ``T`` (epoch ms): its own ``wants(T)``
    if it has one; for a :class:`~indicators.pipeline.Pipeline`, its first tick
    (which starts the warm-up) and every tick it is due at
    (:meth:`~indicators.pipeline.Pipeline.due`, without moving its state);
    anything else reads every tick."""
    own = getattr(pipe, "wants", None)
    if own is not None:
        return bool(own(T))
    cadence = getattr(pipe, "cadence", None)
    if cadence is None or not hasattr(pipe, "first_tick"):
        return True
    if pipe.first_tick is None:
        return True
    if pipe.last_eval is None:
        return timedelta(milliseconds=T - _ms(pipe.first_tick)) >= cadence.warmup
    return timedelta(milliseconds=T - _ms(pipe.last_eval)) >= cadence.every


class _Feeder:
    """The replay's side of the live service's loop: batches into the engine and
    the pipelines, and the ticks each pipeline reads into it.

    Consecutive batches are ingested together when that decides exactly what
    one at a time would (:class:`~indicators.engine.engine.BatchRun`), and the
    engine evaluates only the ticks some pipeline reads (``Engine.ticks(...,
    want=...)``: every state still takes every tick).  The pipelines get each
    batch's feed rows before the first tick that batch let through, as they
    would one batch at a time; rows of one kind that meet no evaluation in
    between are handed over as one table (the runtime concatenates them
    anyway)."""

    def __init__(self, engine, pipes: Sequence[Any], now: dict, on_result: Callable[[int, Any], None],
                 counters: Counter, state: dict) -> None:
        self.engine, self.pipes, self.now, self.on_result = engine, list(pipes), now, on_result
        self.counters, self.state = counters, state
        self.offers: dict[str, list[pa.Table]] = {}
        self.final: int | None = None              # the last tick of the recording: always evaluated
        self.last_tick = None                      # the last tick handed to the pipelines
        self.runs = self.batches = self.evaluated = self.ingest_calls = 0
        self.max_ms: int | None = None             # the newest event time of the batches the engine took

    # --------------------------------------------------------------- ticks
    def _want(self, T: int) -> bool:
        st = self.state
        st["ticks"] += 1
        if st["first_ms"] is None:
            st["first_ms"] = T
        st["last_ms"] = T
        return T == self.final or any(wants_tick(p, T) for p in self.pipes)

    def ticks(self, to: datetime) -> None:
        for t in self.engine.ticks(to, want=self._want):
            self.hand(t)

    def hand(self, t) -> None:
        self.flush_offers()
        self.evaluated += 1
        self.last_tick = t
        self.now["t"] = t.time
        for i, pipe in enumerate(self.pipes):
            res = pipe.on_tick(t)
            if res is not None and not res.skipped:
                self.on_result(i, res)

    # --------------------------------------------------------------- feed rows
    def offer(self, kind: str, table: pa.Table) -> None:
        self.offers.setdefault(kind, []).append(table)

    def flush_offers(self) -> None:
        for kind, tables in self.offers.items():
            table = tables[0] if len(tables) == 1 else pa.concat_tables(tables, promote_options="default")
            for pipe in self.pipes:
                pipe.offer(kind, table)
        self.offers = {}

    # --------------------------------------------------------------- batches
    def _newest(self, m: int | None) -> None:
        if m is not None:
            self.max_ms = m if self.max_ms is None else max(self.max_ms, m)

    def one(self, kind: str, table: pa.Table, m: int | None = None) -> None:
        """One batch on its own, as the service takes it (``m``: its newest event
        time); a batch the engine refuses is counted and skipped."""
        self.batches += 1
        self.ingest_calls += 1
        try:
            self.engine.ingest(kind, table)
        except Exception as e:                              # a batch the engine cannot read
            log.warning("skipped a %s batch the engine refused: %s", kind, e)
            self.counters["rejected_batches"] += 1
            self.counters["rejected_rows"] += getattr(table, "num_rows", 0) or 0
            return
        self._newest(m)
        self.offer(kind, table)
        self.ticks(_FAR)

    def run(self, run, ms: list[int | None]) -> None:
        """Ingest a :class:`~indicators.engine.engine.BatchRun` (``ms``: each
        batch's newest event time), then hand out each batch's feed rows and
        ticks in arrival order."""
        items = run.items
        if not items:
            return
        if len(items) == 1:
            self.one(*items[0], ms[0])
            return
        try:
            newest = self.engine.ingest_many(items)
        except Exception:                                   # some batch is bad: one by one, as live
            for (kind, table), m in zip(items, ms):
                self.one(kind, table, m)
            return
        self.runs += 1
        self.ingest_calls += 1
        self.batches += len(items)
        for (kind, table), wm, m in zip(items, run.watermarks(newest), ms):
            self._newest(m)
            self.offer(kind, table)
            if wm is not None:
                self.ticks(_EPOCH + timedelta(milliseconds=wm))


_FAR = datetime(9999, 1, 1, tzinfo=timezone.utc)


def drive(directory: Path, engine, pipes: Sequence[Any], now: dict, on_result: Callable[[int, Any], None],
          counters: Counter, bar=None) -> dict:
    """The replay loop, in one pass: the recording's batches in arrival order
    into ``engine`` and every pipeline (:meth:`~indicators.pipeline.Pipeline.offer`),
    after each batch every tick the watermark allows through every pipeline;
    at the end the watermark past the last event and the last tick evaluated
    (forced).  What the pipelines see is exactly what the live service's
    loop would hand them for these batches (``tests/test_replay_live.py``);
    the work is less (see :class:`_Feeder`): runs of batches ingested
    together, and only the ticks a pipeline reads evaluated.

    Several pipelines see exactly the same ticks and feed rows, so the engine
    runs once for all of them (the threshold backtest compares two rule sets
    this way).  Bad batches are counted in ``counters`` and skipped.  Returns
    ``{"ticks", "first", "last", "evaluated", "batches", "runs", "ingest_calls"}``:
    ticks computed, the first and last tick time, ticks evaluated (handed to
    the pipelines), batches ingested, the runs of several batches and the
    engine ingest calls (runs plus batches ingested alone)."""
    from indicators.engine.kernels import to_ms
    from indicators.feeds.schemas import SCHEMAS

    state: dict = {"ticks": 0, "first_ms": None, "last_ms": None}
    feeder = _Feeder(engine, pipes, now, on_result, counters, state)
    run, ms = engine.batch_run(), []
    for kind, payload in _batches(directory, counters):
        if kind not in SCHEMAS:
            counters["malformed"] += len(payload) if hasattr(payload, "__len__") else 1
            continue
        try:
            table = payload if isinstance(payload, pa.Table) else pa.Table.from_batches([payload])
            if table.num_rows == 0:
                continue
            col = table.column("event_time")
            t = to_ms(col)
        except Exception:                                   # the engine will say what is wrong with it
            feeder.run(run, ms)
            feeder.one(kind, payload)
            run, ms = engine.batch_run(), []
            continue
        m = int(t.max()) if col.null_count == 0 else pc.max(col.cast(pa.int64())).as_py()    # nulls ignored
        if not run.add(kind, table, t):
            feeder.run(run, ms)
            run, ms = engine.batch_run(), []
            run.add(kind, table, t)
            if bar is not None:
                bar.update(engine.clock.last_tick, state["ticks"])
        ms.append(m)
    feeder.run(run, ms)
    max_ms = feeder.max_ms
    if max_ms is not None:                                  # the end of the recording: nothing more will come
        end = _EPOCH + timedelta(milliseconds=max_ms)
        engine.heartbeat(end + timedelta(milliseconds=engine.lateness_ms))
        before = engine.clock.last_tick
        feeder.final = engine.tick_limit(end)
        feeder.ticks(end)
        final = feeder.last_tick
        if final is not None and engine.clock.last_tick != before and final.time_ms == engine.clock.last_tick:
            force_last(final, pipes, now, on_result)
    feeder.flush_offers()
    if bar is not None:
        bar.update(engine.clock.last_tick, state["ticks"], force=True)
        bar.done()
    dt = lambda ms: None if ms is None else _EPOCH + timedelta(milliseconds=ms)   # noqa: E731
    return {"ticks": state["ticks"], "first": dt(state["first_ms"]), "last": dt(state["last_ms"]),
            "evaluated": feeder.evaluated, "batches": feeder.batches, "runs": feeder.runs,
            "ingest_calls": feeder.ingest_calls}


def force_last(final, pipes: Sequence[Any], now: dict, on_result: Callable[[int, Any], None]) -> None:
    """Evaluate the last tick too, in every pipeline that has not evaluated it."""
    for i, pipe in enumerate(pipes):
        if pipe.last_eval != final.time:
            now["t"] = final.time
            res = pipe.on_tick(final, force=True)
            if res is not None and not res.skipped:
                on_result(i, res)


def replay_alerts(recording_dir: str | os.PathLike, store_path: str | os.PathLike, *,
                  tick: timedelta = timedelta(seconds=1), alerts_every: timedelta = timedelta(seconds=15),
                  progress: bool = True, lateness: timedelta | None = None,
                  thresholds: Mapping[str, Any] | None = None, catalog=None, inventory=None,
                  notifier=None, warmup: timedelta = timedelta(0)) -> dict:
    """Run the recording in ``recording_dir`` through a fresh engine and an alert
    runtime writing to the store at ``store_path``; return a summary (see the
    module docstring for the wiring).

    ``thresholds``: an overrides document (calendars, profiles, tiers) to use
    instead of the store's latest threshold version.  ``notifier``: receives
    every message (default: kept in memory and counted by channel).
    ``warmup``: no alert evaluation before the first tick plus this much event
    time (the feed records of the warm-up are handed over at the first
    evaluation).  Default none, like a cold start of the service: indicators
    of slow feeds (hydrants and bins report every 15 min) are then "no data" or,
    for the availability family, "not available" until every asset reported.

    The summary: ``ticks``, ``evaluations``, ``alerts`` (per group threshold /
    compound / forecast: firings, tier raises and refirings by tier, and new
    alerts by tier; ``fired``: every such event), ``plans`` (opened or raised:
    plan, level, when, compound rule), ``cases`` (created, dispatched, each with
    the suggested staff member and walking distance), ``forecasts`` (forecast
    alerts with the predicted and the actual lead time), ``messages`` by
    channel, ``malformed_skipped`` / ``rejected_batches`` / ``alert_errors``,
    the engine's ingest ``stats``.
    """
    from twin_assets import inventory as inv

    from indicators.catalog import load_catalog
    from indicators.engine import DEFAULT_LATENESS, Engine
    from indicators.engine.replay import Progress
    from indicators.pipeline import Cadence, Pipeline

    from indicators.alerts.runtime import ListNotifier
    from indicators.alerts.store import open_store

    directory = Path(recording_dir)
    if not directory.is_dir():
        raise FileNotFoundError(f"no recording at {directory}")
    lateness = DEFAULT_LATENESS if lateness is None else lateness
    inventory = inv.load() if inventory is None else inventory
    catalog = load_catalog(inventory=inventory) if catalog is None else catalog

    lo, hi = recording_span(directory)
    # the tick grid starts just before the recording's first event, whatever order batches come in
    start = None if lo is None else _EPOCH + timedelta(milliseconds=lo - 1)
    engine = Engine(catalog, inventory, tick=tick, allowed_lateness=lateness, start=start)

    with open_store(store_path) as store:
        before = store.meta("last_tick")
        if before:
            print(f"replay --alerts: the store {store_path} already has ticks up to {before}; "
                  "ticks at or before it are ignored", file=sys.stderr)

        now = {"t": start or _EPOCH}
        sink = notifier if notifier is not None else ListNotifier()
        sent_by_channel: Counter = Counter()

        class _Counting:
            def send(self, m) -> None:
                sink.send(m)
                sent_by_channel[m.channel] += 1

        pipe = Pipeline(catalog, inventory, store, lambda: now["t"], _Counting(),
                        cadence=Cadence(every=alerts_every, warmup=warmup),
                        **({} if thresholds is None else {"thresholds": thresholds}))
        version = pipe.thresholds_version
        runtime = pipe.runtime
        counters: Counter = Counter()
        col = Collector()
        bar = Progress(lo, hi, enabled=progress)
        state = drive(directory, engine, [pipe], now, lambda _i, res: col.add(res, runtime), counters, bar)
        counters["unusable_event_rows"] = pipe.unusable_rows
        counters["alert_errors"] = pipe.errors

        cases = list(col.cases.values())
        dispatched = [c for c in cases if c["dispatches"]]
        summary = {
            "recording": str(directory), "store": str(store_path), "store_last_tick_before": before,
            "thresholds_version": version, "ticks": state["ticks"], "evaluations": pipe.evaluations,
            "first_tick": _iso(state["first"]), "last_tick": _iso(state["last"]),
            "alerts_every_s": alerts_every.total_seconds(), "warmup_s": warmup.total_seconds(),
            "alerts": {g: {"fired_by_tier": dict(col.by_tier[g]), "new_by_tier": dict(col.new_alerts[g])}
                       for g in col.by_tier}
            | {"data_quality": dict(col.data_quality), "fired": col.fired},
            "plans": col.plans,
            "cases": {"created": len(cases), "dispatched": len(dispatched),
                      "with_staff": sum(1 for c in dispatched if c.get("assignee")), "list": cases},
            "forecasts": col.forecast_leads(),
            "messages": dict(sent_by_channel),
            "malformed_skipped": counters["malformed"], "rejected_batches": counters["rejected_batches"],
            "rejected_rows": counters["rejected_rows"], "unusable_event_rows": counters["unusable_event_rows"],
            "alert_errors": counters["alert_errors"],
            "stats": engine.stats,
        }
        return summary


# --------------------------------------------------------------------------- CLI hook
def add_cli_arguments(parser) -> None:
    """Add ``--alerts`` and its options to the ``replay`` sub-command's parser
    (which already has ``dir``, ``--out``, ``--tick``, ``--lateness``, ``--quiet``,
    ``--json``); :func:`run_cli` runs them."""
    from indicators.alerts.rules import parse_duration
    parser.add_argument("--alerts", action="store_true",
                        help="also run the alert runtime (rules, compound rules and plans, cases, forecast) and "
                             "write what it decides to the alert store (--store)")
    parser.add_argument("--store", default=None, help="alert store (SQLite file) the runtime writes with --alerts; "
                                                      "replay into a fresh one")
    parser.add_argument("--alerts-every", type=lambda s: timedelta(seconds=parse_duration(s)),
                        default=timedelta(seconds=15), help="alert evaluation interval in event time (default 15s)")
    parser.add_argument("--alerts-warmup", type=lambda s: timedelta(seconds=parse_duration(s)),
                        default=timedelta(0), help="event time before the first alert evaluation (default 0s: "
                                                   "like a cold start of the service)")
    parser.add_argument("--thresholds", default=None,
                        help="overrides document (JSON: calendars, profiles, tiers) instead of the store's latest "
                             "threshold version")


def run_cli(args) -> int:
    """Run :func:`replay_alerts` from parsed ``replay --alerts`` arguments (the
    store: ``args.store``, else ``args.out``); prints a short summary to stderr
    and the whole summary as JSON with ``--json``."""
    thresholds = None
    if getattr(args, "thresholds", None):
        thresholds = json.loads(Path(args.thresholds).read_text(encoding="utf-8"))
    store = args.store or args.out
    kw = {}
    if getattr(args, "tick", None) is not None:
        kw["tick"] = args.tick
    if getattr(args, "lateness", None) is not None:
        kw["lateness"] = args.lateness
    r = replay_alerts(args.dir, store, alerts_every=getattr(args, "alerts_every", timedelta(seconds=15)),
                      progress=not getattr(args, "quiet", False), thresholds=thresholds,
                      warmup=getattr(args, "alerts_warmup", timedelta(0)), **kw)
    a = r["alerts"]
    print(f"{r['ticks']} ticks, {r['evaluations']} alert evaluations -> {store}: "
          f"alerts fired {a['threshold']['fired_by_tier']}, compound {a['compound']['fired_by_tier']}, "
          f"forecast {a['forecast']['fired_by_tier']}; {len(r['plans'])} plan activations/raises; "
          f"{r['cases']['created']} cases ({r['cases']['dispatched']} dispatched); "
          f"{r['malformed_skipped']} malformed records skipped", file=sys.stderr)
    if getattr(args, "json", False):
        print(json.dumps(r, ensure_ascii=False, indent=2, default=str))
    return 0
