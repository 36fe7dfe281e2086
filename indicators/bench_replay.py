"""``scenic-twin bench replay``: the one-pass ``replay --alerts`` against the same work done the live way.

Both sides run one recording through a fresh engine and a fresh
:class:`~indicators.pipeline.Pipeline` (the shipped thresholds, the
service's 15 s cadence and 15 min warm-up, an in-memory alert store), in
this process, one after the other:

* **live** - :func:`live_loop`: what :class:`indicators.service.Service`
  does with each accepted batch (``engine.ingest`` + ``pipeline.offer``,
  ``Service._on_batch``) and at each step (every tick the watermark allows,
  each handed to ``pipeline.on_tick``, ``Service.step``), one step after
  every batch: every tick's 1,373 values computed;
* **replay** - :func:`indicators.replay_alerts.drive`: runs of batches
  ingested together, only the ticks the pipeline reads evaluated.

It prints both wall times, the ratio, simulated hours per wall second and
the work each side did (batches, engine ingest calls, ticks computed, ticks
evaluated, alert evaluations, alert events), and whether both decided the
same alerts (every alert event and the final alert states).
"""
from __future__ import annotations

import json
import sys
import tempfile
import time
from collections import Counter
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any, Callable

__all__ = ["live_loop", "run", "add_arguments", "main"]

_EPOCH = datetime(1970, 1, 1, tzinfo=timezone.utc)


def live_loop(directory: Path, engine, pipe, now: dict, on_result: Callable[[Any], None], *,
              progress: Callable[[int | None], None] | None = None) -> dict:
    """The live service's loop over a recording's batches (arrival order): each
    batch into the engine and the pipeline (``Service._on_batch``), then every
    tick the watermark allows, each handed to the pipeline with the clock at the
    tick's time (``Service.step``).  At the end the watermark is moved past the
    last event and the last tick is evaluated (forced), as the replay does, so
    that both end on the same evaluation.  Batches the engine refuses are
    skipped.  Returns the work done."""
    import pyarrow as pa
    import pyarrow.compute as pc

    from indicators.engine.replay import read_batches
    from indicators.feeds.schemas import SCHEMAS

    work = {"batches": 0, "ingest_calls": 0, "ticks": 0, "evaluated": 0}
    max_ms = None

    def step(limit) -> Any:
        last = None
        for t in engine.ticks(limit):
            work["ticks"] += 1
            work["evaluated"] += 1                     # every tick's values are computed live
            now["t"] = t.time
            res = pipe.on_tick(t)
            if res is not None and not res.skipped:
                on_result(res)
            last = t
        return last

    for kind, payload in read_batches(directory):
        if kind not in SCHEMAS:
            continue
        table = payload if isinstance(payload, pa.Table) else pa.Table.from_batches([payload])
        if table.num_rows == 0:
            continue
        work["batches"] += 1
        try:
            work["ingest_calls"] += 1
            engine.ingest(kind, table)
        except Exception:
            continue
        pipe.offer(kind, table)
        m = pc.max(table.column("event_time").cast(pa.int64())).as_py()
        if m is not None:
            max_ms = m if max_ms is None else max(max_ms, m)
        wm = engine.watermark
        if wm is not None:
            step(wm)
        if progress is not None:
            progress(engine.clock.last_tick)
    if max_ms is not None:
        end = _EPOCH + timedelta(milliseconds=max_ms)
        engine.heartbeat(end + timedelta(milliseconds=engine.lateness_ms))
        final = step(end)
        if final is not None and pipe.last_eval != final.time:
            now["t"] = final.time
            res = pipe.on_tick(final, force=True)
            if res is not None and not res.skipped:
                on_result(res)
    return work


class _Bar:
    """A progress line on stderr at most every ``every_s`` of wall clock."""

    def __init__(self, label: str, lo: int | None, hi: int | None, stream, every_s: float = 5.0) -> None:
        self.label, self.lo, self.hi, self.stream, self.every = label, lo, hi, stream, every_s
        self.t0 = self.last = time.perf_counter()

    def __call__(self, t_ms: int | None, *_: Any, force: bool = False) -> None:
        now = time.perf_counter()
        if self.stream is None or t_ms is None or (not force and now - self.last < self.every):
            return
        self.last = now
        frac = (t_ms - self.lo) / (self.hi - self.lo) if self.lo is not None and self.hi and self.hi > self.lo else 0
        self.stream.write(f"bench replay: {self.label} {100 * min(max(frac, 0), 1):3.0f} % of the recording, "
                          f"{now - self.t0:.0f} s\n")
        self.stream.flush()

    # the replay's Progress protocol
    def update(self, t_ms, ticks, force: bool = False) -> None:
        self(t_ms, force=force)

    def done(self) -> None:
        pass


def _side(directory: Path, catalog, inventory, which: str, stream) -> dict:
    from indicators.alerts.store import AlertStore
    from indicators.engine import DEFAULT_LATENESS, Engine
    from indicators.engine.replay import recording_span
    from indicators.pipeline import Cadence, Pipeline
    from indicators.replay_alerts import drive

    lo, hi = recording_span(directory)
    start = None if lo is None else _EPOCH + timedelta(milliseconds=lo - 1)
    engine = Engine(catalog, inventory, allowed_lateness=DEFAULT_LATENESS, start=start)
    now = {"t": start or _EPOCH}
    messages: list = []

    class _Notifier:
        def send(self, m) -> None:
            messages.append(m.channel)

    events: list[tuple] = []
    bar = _Bar(which, lo, hi, stream)
    with AlertStore.open(":memory:") as st:
        pipe = Pipeline(catalog, inventory, st, lambda: now["t"], _Notifier(), cadence=Cadence())

        def on_result(res) -> None:
            events.extend((e.alert_id, e.kind, e.at.isoformat(), e.to_tier) for e in res.events)

        t0 = time.perf_counter()
        if which == "live":
            work = live_loop(directory, engine, pipe, now, on_result, progress=bar)
        else:
            counters: Counter = Counter()
            r = drive(directory, engine, [pipe], now, lambda _i, res: on_result(res), counters, bar)
            work = {k: r[k] for k in ("batches", "ingest_calls", "runs", "ticks", "evaluated")}
        wall = time.perf_counter() - t0
        states = sorted((s.rule_id, s.alert_id, s.status, s.tier, s.fired_at.isoformat() if s.fired_at else None)
                        for s in pipe.runtime.states.values())
        work |= {"evaluations": pipe.evaluations, "alert_events": len(events), "messages": len(messages)}
    sim_h = (hi - lo) / 3.6e6 if lo is not None and hi is not None else 0.0
    return {"wall_s": wall, "sim_h": sim_h, "work": work, "events": events, "states": states,
            "stats": {k: dict(v) for k, v in engine.stats.items()}}


def run(directory: str | Path, *, stream=sys.stderr) -> dict:
    """Time both sides on the recording at ``directory``; return the figures."""
    from twin_assets import inventory as inv

    from indicators.catalog import load_catalog

    directory = Path(directory)
    inventory = inv.load()
    catalog = load_catalog(inventory=inventory)
    out: dict[str, Any] = {"recording": str(directory)}
    for which in ("replay", "live"):
        if stream is not None:
            stream.write(f"bench replay: {which} side ...\n")
            stream.flush()
        out[which] = _side(directory, catalog, inventory, which, stream)
    rp, lv = out["replay"], out["live"]
    out["same_alerts"] = rp["events"] == lv["events"] and rp["states"] == lv["states"]
    out["same_ingest_stats"] = rp["stats"] == lv["stats"]
    out["ratio_live_over_replay"] = lv["wall_s"] / rp["wall_s"] if rp["wall_s"] > 0 else None
    for side in (rp, lv):
        side["sim_h_per_wall_s"] = side["sim_h"] / side["wall_s"] if side["wall_s"] > 0 else None
        side["x_real_time"] = side["sim_h"] * 3600 / side["wall_s"] if side["wall_s"] > 0 else None
        side["wall_s_per_24h"] = 24 * side["wall_s"] / side["sim_h"] if side["sim_h"] > 0 else None
    return out


def _print(r: dict) -> None:
    rp, lv = r["replay"], r["live"]
    print(f"recording {r['recording']}: {rp['sim_h']:.2f} simulated hours")
    for name, s, what in (
            ("live  ", lv, "every batch ingested alone, every tick's 1,373 values computed and handed over"),
            ("replay", rp, "runs of batches ingested together, only the ticks the alert rules read evaluated")):
        w = s["work"]
        print(f"  {name} {s['wall_s']:7.1f} s  {s['x_real_time']:6.0f}x real time  "
              f"{s['sim_h_per_wall_s']:6.3f} simulated h per wall s  (24 h in {s['wall_s_per_24h']:.0f} s)")
        print(f"         {what}:")
        runs = f" ({w['runs']} runs of several batches)" if "runs" in w else ""
        print(f"         {w['batches']} batches, {w['ingest_calls']} engine ingest calls{runs}"
              f"; {w['ticks']} ticks computed, {w['evaluated']} evaluated; {w['evaluations']} alert evaluations; "
              f"{w['alert_events']} alert events, {w['messages']} messages")
    print(f"  live / replay: {r['ratio_live_over_replay']:.2f}x")
    print(f"  same alert events and final alert states: {'yes' if r['same_alerts'] else 'NO'}; "
          f"same engine ingest counts: {'yes' if r['same_ingest_stats'] else 'NO'}")


def add_arguments(p) -> None:
    p.add_argument("recording", nargs="?", default=None,
                   help="recording directory (scenic-twin simulate --out); default: simulate one into a temporary "
                        "folder from --scenario/--start/--duration/--seed")
    p.add_argument("--scenario", default="normal-weekday")
    p.add_argument("--start", default="2026-04-15T17:00+08:00", help="ISO time with offset (default %(default)s)")
    p.add_argument("--duration", default="1h", help="simulated span when simulating (default %(default)s)")
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--json", action="store_true", help="print the figures as JSON (without the event lists)")


def main(args) -> int:
    from indicators.cli import parse_duration

    def go(directory) -> int:
        r = run(directory, stream=sys.stderr)
        if args.json:
            slim = {k: ({kk: vv for kk, vv in v.items() if kk not in ("events", "states")} if isinstance(v, dict)
                        else v) for k, v in r.items()}
            print(json.dumps(slim, indent=2, default=str))
        else:
            _print(r)
        return 0 if r["same_alerts"] else 1

    if args.recording:
        return go(Path(args.recording))
    from indicators.feeds.simulator import simulate, write_recording
    with tempfile.TemporaryDirectory(prefix="bench-replay-") as tmp:
        sys.stderr.write(f"bench replay: simulating {args.scenario} from {args.start} for {args.duration} ...\n")
        items = simulate(args.scenario, datetime.fromisoformat(args.start), parse_duration(args.duration), args.seed)
        write_recording(Path(tmp) / "rec", items, manifest={"scenario": args.scenario, "seed": args.seed},
                        progress=False)
        return go(Path(tmp) / "rec")
