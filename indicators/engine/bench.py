"""``scenic-twin bench engine``: the engine against baselines measured in the same run.

One run, one process, one core:

* **engine** - ingest + advance of synthetic feeds (every feed kind, every
  entity; :mod:`.synthetic`) at ``--events-per-tick`` events per 1 s tick:
  events/s, and tick latency (``advance`` of one tick, all 1,373 indicators)
  p50 / p99, plus ingest time per tick;
* **floor** - one vectorised read of the same columns from the same Arrow
  batches (times, ids, keys, values): what no engine can beat;
* **polars** - the trailing windows recomputed per tick by polars group-bys
  over the events still in the window (count / sum / mean by the same keys);
  compared with the engine's tick;
* **python loop** - the same window updates done per event in Python (the
  model of per-item stream operators), on a sample, as events/s.

Machines are noisy (the same code varies up to 2x between runs): read the
ratios, which are measured in one run, not the absolute times.
"""
from __future__ import annotations

import argparse
import gc
import json
import sys
import time
from collections import defaultdict
from datetime import datetime, timedelta, timezone

import numpy as np
import pyarrow as pa

from indicators.catalog import load_catalog

from .engine import Engine
from .synthetic import arrival_order, synthetic_feeds

__all__ = ["run_engine_bench", "format_report", "main"]

START = datetime(2025, 10, 1, 4, 0, tzinfo=timezone.utc)       # 12:00 local


def _per_tick_batches(catalog, seconds: int, events_per_tick: int, seed: int):
    """Synthetic feeds scaled to about ``events_per_tick`` events per second, as per-second batch lists."""
    scale = 1.0
    for _ in range(4):                       # the mix is not linear in scale (every asset reports once at least)
        probe = synthetic_feeds(catalog, START, 120, seed=seed, scale=scale)
        rate = sum(t.num_rows for t in probe.values()) / 120
        scale *= events_per_tick / rate
    tables = synthetic_feeds(catalog, START, seconds, seed=seed, scale=scale, max_delay_ms=900)
    ticks: dict[int, list] = defaultdict(list)
    for kind, t in arrival_order(tables, 1000):
        sec = int(t.column("arrival_time")[0].value // 1000)
        ticks[sec].append((kind, t))
    return [ticks[s] for s in sorted(ticks)], sum(t.num_rows for t in tables.values())


def _floor(batches) -> float:
    """Seconds to read every column the engine reads, once, vectorised."""
    t0 = time.perf_counter()
    acc = 0.0
    for tick in batches:
        for _kind, t in tick:
            for name in t.column_names:
                if name in ("arrival_time", "source", "description", "headline"):
                    continue
                col = t.column(name).combine_chunks()
                if pa.types.is_timestamp(col.type):
                    acc += float(np.asarray(col.cast(pa.int64()).to_numpy(zero_copy_only=False)).sum())
                elif pa.types.is_string(col.type):
                    buf = col.buffers()[2]
                    if buf is not None:
                        acc += float(np.frombuffer(buf, dtype=np.uint8).sum())
                elif pa.types.is_list(col.type):
                    acc += float(len(col))
                else:
                    acc += float(np.nansum(col.to_numpy(zero_copy_only=False)))
    return time.perf_counter() - t0


# the windowed families as (feed, keys, value, window seconds, stat) - what the baselines recompute
def _window_specs(catalog):
    specs = []
    for f in catalog.families:
        c = f.compute
        if c.kind == "window" and c.get("stat") in ("count", "sum", "mean"):
            for w in f.windows:
                specs.append((f.feed, f.keys, c.get("value"), w.seconds, c.get("stat"),
                              c.get("where") == {"cell_id": "null"}))
    return specs


_KEY_COLUMN = {"zone": "zone_id", "gate": "gate_id", "camera": "camera_id", "algorithm": "algorithm",
               "route": "route_id", "stop": "stop_id", "station": "station_id", "segment": "segment_id"}


def _polars_ticks(batches, specs, n_ticks: int) -> list[float]:
    """Per tick: append the tick's events, drop those older than the longest window, group-by every window."""
    import polars as pl
    frames: dict[str, pl.DataFrame] = {}
    longest = max(s[3] for s in specs) * 1000
    out = []
    for i, tick in enumerate(batches[:n_ticks]):
        t0 = time.perf_counter()
        T = None
        for kind, t in tick:
            df = pl.from_arrow(t.drop_columns([c for c in ("departments",) if c in t.column_names]))
            df = df.with_columns(pl.col("event_time").dt.epoch("ms").alias("t"))
            if kind == "gate":
                df = df.with_columns((pl.col("entries") - pl.col("exits")).alias("net"))
            if kind in ("video", "bus"):
                df = df.with_columns(pl.lit(1.0).alias("events"))
            frames[kind] = pl.concat([frames[kind], df], how="diagonal_relaxed") if kind in frames else df
            hi = int(df["t"].max())
            T = hi if T is None else max(T, hi)
        if T is None:
            continue
        for kind in list(frames):
            frames[kind] = frames[kind].filter(pl.col("t") > T - longest)
        for feed, keys, value, w, stat, total_only in specs:
            df = frames.get(feed)
            if df is None:
                continue
            d = df.filter(pl.col("t") > T - w * 1000)
            if total_only:
                d = d.filter(pl.col("cell_id").is_null())
            by = [_KEY_COLUMN[k] for k in keys if k != "area"]
            agg = {"count": pl.len(), "sum": pl.col(value).sum(), "mean": pl.col(value).mean()}[stat]
            (d.group_by(by).agg(agg) if by else d.select(agg))
        out.append(time.perf_counter() - t0)
    return out


def _python_loop(batches, specs, max_events: int) -> tuple[int, float]:
    """The same window counts/sums updated one event at a time with dicts (a sample of events)."""
    rings: dict[tuple, dict] = {s: defaultdict(float) for s in specs}
    by_feed = defaultdict(list)
    for s in specs:
        by_feed[s[0]].append(s)
    n = 0
    t0 = time.perf_counter()
    for tick in batches:
        for kind, t in tick:
            rows = t.to_pylist()
            for r in rows:
                ts = r["event_time"].timestamp()
                for spec in by_feed.get(kind, ()):
                    feed, keys, value, w, stat, total_only = spec
                    if total_only and r.get("cell_id") is not None:
                        continue
                    key = tuple(r.get(_KEY_COLUMN.get(k, ""), "") for k in keys)
                    v = 1.0 if value == "events" else (r.get(value) if value != "net" else r["entries"] - r["exits"])
                    if v is None:
                        continue
                    ring = rings[spec]
                    bucket = (key, int(ts))
                    ring[bucket] += v
                    ring[(key, "n", int(ts))] += 1
                n += 1
                if n >= max_events:
                    return n, time.perf_counter() - t0
    return n, time.perf_counter() - t0


def run_engine_bench(events_per_tick: int = 10_000, seconds: int = 120, *, warmup: int = 20, seed: int = 7,
                     polars_ticks: int = 30, loop_events: int = 50_000, progress=None) -> dict:
    say = progress or (lambda msg: None)
    catalog = load_catalog()
    say("generating synthetic feeds ...")
    batches, total = _per_tick_batches(catalog, seconds + warmup, events_per_tick, seed)
    engine = Engine(catalog, tick=timedelta(seconds=1), allowed_lateness=timedelta(seconds=1))
    say(f"{total} events in {len(batches)} one-second ticks; running the engine ...")
    ingest_t, tick_t, n_events = [], [], 0
    gc.collect()
    gc.disable()
    try:
        for i, tick in enumerate(batches):
            t0 = time.perf_counter()
            for kind, t in tick:
                engine.ingest(kind, t)
            t1 = time.perf_counter()
            engine.advance(START + timedelta(days=1))
            t2 = time.perf_counter()
            if i >= warmup:
                ingest_t.append(t1 - t0)
                tick_t.append(t2 - t1)
                n_events += sum(t.num_rows for _, t in tick)
    finally:
        gc.enable()
    measured = batches[warmup:]
    say("floor (vectorised read) ...")
    floor = min(_floor(measured) for _ in range(3))
    specs = _window_specs(catalog)
    say("polars recompute of the windows ...")
    pol = _polars_ticks(batches, specs, warmup + polars_ticks)[warmup:]
    say("python per-event loop ...")
    n_loop, t_loop = _python_loop(measured, specs, loop_events)
    total_engine = sum(ingest_t) + sum(tick_t)
    eng_window_tick = float(np.median(tick_t))
    return {
        "events_per_tick_target": events_per_tick,
        "events_per_tick_mean": n_events / max(1, len(tick_t)),
        "ticks": len(tick_t),
        "indicators": len(catalog),
        "engine_events_per_s": n_events / total_engine,
        "tick_ms_p50": 1000 * float(np.percentile(tick_t, 50)),
        "tick_ms_p99": 1000 * float(np.percentile(tick_t, 99)),
        "ingest_ms_per_tick_p50": 1000 * float(np.percentile(ingest_t, 50)),
        "ingest_ms_per_tick_p99": 1000 * float(np.percentile(ingest_t, 99)),
        "floor_events_per_s": n_events / floor,
        "ratio_engine_to_floor": total_engine / floor,
        "polars_tick_ms_p50": 1000 * float(np.median(pol)) if pol else None,
        "ratio_engine_tick_to_polars": eng_window_tick / float(np.median(pol)) if pol else None,
        "window_specs_recomputed_by_polars": len(specs),
        "python_loop_events_per_s": n_loop / t_loop,
        "ratio_python_loop_to_engine": (n_loop / t_loop) / (n_events / total_engine),
        "late": sum(s["late"] for s in engine.stats.values()),
    }


def format_report(r: dict) -> str:
    lines = [
        f"engine bench: {r['indicators']} indicators, {r['events_per_tick_mean']:.0f} events per 1 s tick "
        f"over {r['ticks']} ticks (one core)",
        f"  engine (ingest + advance)   {r['engine_events_per_s'] / 1e6:8.3f} M events/s",
        f"  tick latency                p50 {r['tick_ms_p50']:.3f} ms   p99 {r['tick_ms_p99']:.3f} ms   (goal p99 <= 1 ms)",
        f"  ingest per tick             p50 {r['ingest_ms_per_tick_p50']:.3f} ms   p99 {r['ingest_ms_per_tick_p99']:.3f} ms",
        f"  floor (vectorised read)     {r['floor_events_per_s'] / 1e6:8.3f} M events/s   "
        f"engine = {r['ratio_engine_to_floor']:.1f} x floor   (goal <= 3 x)",
        f"  polars window recompute     p50 {r['polars_tick_ms_p50']:.3f} ms per tick for "
        f"{r['window_specs_recomputed_by_polars']} windows   engine tick = {r['ratio_engine_tick_to_polars']:.3f} x polars"
        f"   (goal <= 0.2 x)",
        f"  python per-event loop       {r['python_loop_events_per_s'] / 1e6:8.3f} M events/s   "
        f"= {r['ratio_python_loop_to_engine']:.3f} x engine",
    ]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="scenic-twin bench engine")
    add_arguments(p)
    return run(p.parse_args(argv))


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--events-per-tick", type=int, default=10_000)
    p.add_argument("--seconds", type=int, default=120, help="measured ticks (after 20 warm-up ticks)")
    p.add_argument("--json", action="store_true", help="print the measurements as JSON")
    p.add_argument("--quiet", action="store_true")


def run(args) -> int:
    say = (lambda m: None) if args.quiet else (lambda m: print(m, file=sys.stderr))
    r = run_engine_bench(args.events_per_tick, args.seconds, progress=say)
    print(json.dumps(r, indent=2) if args.json else format_report(r))
    return 0


if __name__ == "__main__":
    sys.exit(main())
