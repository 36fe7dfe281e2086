"""``scenic-twin bench engine``: the engine's whole tick against baselines doing the same work, in one run.

Per size (events per 1 s tick, default 10k and 100k), one process, one core, the same
synthetic feeds (every feed kind, every entity; :mod:`.synthetic`) arriving tick by tick:

* **engine** - the whole tick: ingest (validation, encoding, lateness, de-duplication by
  ``event_id``) and advance (every window, all 1,373 indicators, their thresholds' inputs);
* **polars** and **duckdb** - per tick: append the tick's events, de-duplicate them by
  ``event_id`` against the events held, drop the events older than the longest window, and
  recompute every windowed count / sum / mean family of the catalog by its keys.  That is
  *less* work than the engine's tick: they compute the window families only (the report
  says how many of the 1,373 indicators those are); the engine's latest-state, facility,
  case, warning and forecast indicators have no counterpart there.  A ratio below 1 is the
  engine being faster while doing more;
* **floor** - one vectorised read of the same columns from the same Arrow batches: what no
  engine can beat.

Ratios compare totals over the same measured ticks (after the same warm-up, so every side
holds the same window contents).  Machines here are shared and noisy: read the ratios,
measured side by side, not the absolute times.
"""
from __future__ import annotations

import argparse
import gc
import json
import os
import platform
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
SKIP_COLUMNS = ("arrival_time", "source", "description", "headline")
GOALS = {"floor": 3.0, "polars": 0.1, "duckdb": 0.1, "p99_ms": {10_000: 1.0, 100_000: 10.0}}


def _import_polars():
    """polars with one thread, as the engine and duckdb (``SET threads = 1``) have: its pool is
    sized once, at its first import, from ``POLARS_MAX_THREADS`` (default: every core).  A
    process that imported polars before keeps its pool; the report says how many threads it had."""
    if "polars" not in sys.modules:
        os.environ.setdefault("POLARS_MAX_THREADS", "1")
    import polars
    return polars


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
    return [ticks[s] for s in sorted(ticks)]


def _floor(batches) -> float:
    """Seconds to read every column the engine reads, once, vectorised."""
    t0 = time.perf_counter()
    acc = 0.0
    for tick in batches:
        for _kind, t in tick:
            for name in t.column_names:
                if name in SKIP_COLUMNS:
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


# ------------------------------------------------------------------ what the baselines recompute
_KEY_COLUMN = {"zone": "zone_id", "gate": "gate_id", "camera": "camera_id", "algorithm": "algorithm",
               "route": "route_id", "stop": "stop_id", "station": "station_id", "segment": "segment_id"}


def _window_specs(catalog):
    """The windowed count/sum/mean families as (feed, group-by columns, value, window s, stat, totals only),
    and how many catalog indicators they are."""
    specs, covered = [], 0
    for f in catalog.families:
        c = f.compute
        if c.kind == "window" and c.get("stat") in ("count", "sum", "mean"):
            for w in f.windows:
                specs.append((f.feed, [_KEY_COLUMN[k] for k in f.keys if k != "area"], c.get("value"), w.seconds,
                              c.get("stat"), c.get("where") == {"cell_id": "null"}))
                covered += sum(1 for i in catalog.of_family(f.id) if i.window.seconds == w.seconds)
    return specs, covered


def _value_expr(value: str | None) -> str:
    return {"net": "entries - exits", "events": "1.0", None: "1.0"}.get(value, value)


class _Polars:
    name = "polars"

    def __init__(self, specs):
        pl = _import_polars()
        self.pl, self.specs = pl, specs
        self.threads = pl.thread_pool_size()
        self.longest = max(s[3] for s in specs) * 1000
        self.frames: dict = {}
        self.rows, self.T = 0, None

    def tick(self, tick) -> None:
        pl = self.pl
        for kind, t in tick:
            df = pl.from_arrow(t.drop_columns([c for c in ("departments",) if c in t.column_names]))
            df = df.with_columns(pl.col("event_time").dt.epoch("ms").alias("t"))
            df = df.unique("event_id", keep="first", maintain_order=True)
            held = self.frames.get(kind)
            if held is not None:
                df = df.join(held.select("event_id"), on="event_id", how="anti")
                self.frames[kind] = pl.concat([held, df], how="diagonal_relaxed")
            else:
                self.frames[kind] = df
            if df.height:
                hi = int(df["t"].max())
                self.T = hi if self.T is None else max(self.T, hi)
        if self.T is None:
            return
        T = self.T
        for kind in list(self.frames):
            self.frames[kind] = self.frames[kind].filter(pl.col("t") > T - self.longest)
        rows = 0
        for feed, by, value, w, stat, total_only in self.specs:
            df = self.frames.get(feed)
            if df is None:
                continue
            d = df.filter(pl.col("t") > T - w * 1000)
            if total_only:
                d = d.filter(pl.col("cell_id").is_null())
            if _value_expr(value) == "1.0":          # every event counts 1
                agg = {"count": pl.len(), "sum": pl.len().cast(pl.Float64), "mean": pl.lit(1.0)}[stat]
            else:
                v = pl.sql_expr(_value_expr(value))
                agg = {"count": pl.len(), "sum": v.sum(), "mean": v.mean()}[stat]
            rows += (d.group_by(by).agg(agg) if by else d.select(agg)).height
        self.rows = rows


class _DuckDB:
    name = "duckdb"

    def __init__(self, specs, schemas: dict[str, pa.Schema]):
        import duckdb
        self.db = duckdb.connect()
        self.db.execute("SET threads = 1")         # one core, as the engine
        self.threads = 1
        self.specs = specs
        self.longest = max(s[3] for s in specs) * 1000
        self.rows, self.T, self.kinds = 0, None, list(schemas)
        for kind, schema in schemas.items():
            empty = pa.Table.from_batches([], schema=schema)
            self.db.register("empty_", empty)
            self.db.execute(f'CREATE TABLE "{kind}" AS SELECT *, epoch_ms(event_time) AS t FROM empty_')
            self.db.unregister("empty_")
        self.queries = []
        for feed, by, value, w, stat, total_only in specs:
            if feed not in schemas:
                continue
            agg = {"count": "COUNT(*)", "sum": f"SUM({_value_expr(value)})", "mean": f"AVG({_value_expr(value)})"}[stat]
            cols = ", ".join(by)
            where = f"t > ? - {w * 1000}" + (" AND cell_id IS NULL" if total_only else "")
            self.queries.append(f'SELECT {cols + ", " if cols else ""}{agg} FROM "{feed}" WHERE {where}'
                                + (f" GROUP BY {cols}" if cols else ""))

    def tick(self, tick) -> None:
        for kind, t in tick:
            t = t.drop_columns([c for c in ("departments",) if c in t.column_names])
            self.db.register("new_", t)
            self.db.execute(f'INSERT INTO "{kind}" BY NAME SELECT DISTINCT ON (event_id) *, '
                            f'epoch_ms(event_time) AS t FROM new_ n WHERE NOT EXISTS '
                            f'(SELECT 1 FROM "{kind}" h WHERE h.event_id = n.event_id)')
            hi = self.db.execute("SELECT MAX(epoch_ms(event_time)) FROM new_").fetchall()[0][0]
            self.db.unregister("new_")
            if hi is not None:
                self.T = int(hi) if self.T is None else max(self.T, int(hi))
        if self.T is None:
            return
        for kind in self.kinds:
            self.db.execute(f'DELETE FROM "{kind}" WHERE t <= ?', (self.T - self.longest,))
        rows = 0
        for q in self.queries:
            rows += len(self.db.execute(q, (self.T,)).fetchall())
        self.rows = rows


# ------------------------------------------------------------------ the run
def _timed(side, batches, warmup: int) -> tuple[list[float], int]:
    """Whole-tick seconds of the measured ticks (the warm-up ticks fill the windows first)."""
    out, rows = [], 0
    gc.collect()
    gc.disable()
    try:
        for i, tick in enumerate(batches):
            t0 = time.perf_counter()
            side.tick(tick)
            if i >= warmup:
                out.append(time.perf_counter() - t0)
                rows += side.rows
    finally:
        gc.enable()
    return out, rows


class _EngineSide:
    name = "engine"

    def __init__(self, catalog):
        # events arrive up to 0.9 s after their time, in 1 s batches: 2 s lateness takes every one of
        # them, as the baselines do (a shorter one would drop some as late - less work, a flattering ratio)
        self.engine = Engine(catalog, tick=timedelta(seconds=1), allowed_lateness=timedelta(seconds=2))
        self.rows, self.ingest_s = 0, []
        self.n = len(catalog)
        self._end = START + timedelta(days=1)

    def tick(self, tick) -> None:
        t0 = time.perf_counter()
        for kind, t in tick:
            self.engine.ingest(kind, t)
        self.ingest_s.append(time.perf_counter() - t0)
        done = self.engine.advance(self._end)
        self.rows = self.n if done is not None else 0


def _ms(xs, q) -> float:
    return 1000 * float(np.percentile(xs, q))


def run_size(catalog, events_per_tick: int, seconds: int, *, warmup: int, seed: int, baselines=("polars", "duckdb"),
             say=lambda m: None) -> dict:
    say(f"{events_per_tick:,} events per tick: generating {seconds + warmup} s of synthetic feeds ...")
    batches = _per_tick_batches(catalog, seconds + warmup, events_per_tick, seed)
    measured = batches[warmup:]
    n_events = sum(t.num_rows for tick in measured for _, t in tick)
    specs, covered = _window_specs(catalog)
    say(f"  engine: {len(batches)} ticks ...")
    eng = _EngineSide(catalog)
    eng_t, _ = _timed(eng, batches, warmup)
    say("  floor (vectorised read) ...")
    floor = min(_floor(measured) for _ in range(3))
    total = sum(eng_t)
    out = {
        "events_per_tick": n_events / len(measured), "ticks": len(measured), "warmup_ticks": warmup,
        "events": n_events,
        "engine": {"threads": 1, "work": f"ingest (validate, encode, lateness, de-duplicate by event_id) + advance "
                           f"(every window, all {len(catalog):,} indicators)",
                   "indicators_per_tick": len(catalog),
                   "tick_ms_p50": _ms(eng_t, 50), "tick_ms_p99": _ms(eng_t, 99),
                   "ingest_ms_p50": _ms(eng.ingest_s[warmup:], 50),
                   "advance_ms_p50": _ms([a - b for a, b in zip(eng_t, eng.ingest_s[warmup:])], 50),
                   "events_per_s": n_events / total, "late": sum(s["late"] for s in eng.engine.stats.values())},
        "floor": {"work": "one vectorised read of the same columns", "ms_per_tick": 1000 * floor / len(measured),
                  "events_per_s": n_events / floor},
        "ratio": {"floor": total / floor},
    }
    for name in baselines:
        say(f"  {name}: append, de-duplicate, recompute {len(specs)} window specs ...")
        if name == "polars":
            side = _Polars(specs)
        else:
            schemas: dict[str, list[pa.Schema]] = defaultdict(list)
            for tick in batches:
                for kind, t in tick:
                    schemas[kind].append(t.drop_columns([c for c in ("departments",) if c in t.column_names]).schema)
            side = _DuckDB(specs, {k: pa.unify_schemas(v) for k, v in schemas.items()})
        ts, rows = _timed(side, batches, warmup)
        out[name] = {"work": f"append + de-duplicate by event_id + drop expired + recompute {len(specs)} window "
                             f"specs (count/sum/mean families: {covered:,} of the {len(catalog):,} indicators)",
                     "indicators_covered": covered, "window_specs": len(specs), "threads": side.threads,
                     "group_rows_per_tick": rows / len(ts),
                     "tick_ms_p50": _ms(ts, 50), "tick_ms_p99": _ms(ts, 99)}
        out["ratio"][name] = total / sum(ts)
    return out


def run_engine_bench(sizes=(10_000, 100_000), seconds: dict[int, int] | int | None = None, *, warmup: int = 10,
                     seed: int = 7, baselines=("polars", "duckdb"), progress=None) -> dict:
    say = progress or (lambda msg: None)
    catalog = load_catalog()
    runs = []
    for size in sizes:
        s = seconds if isinstance(seconds, int) else (seconds or {}).get(size, max(15, 600_000 // size))
        runs.append(run_size(catalog, size, s, warmup=warmup, seed=seed, baselines=baselines, say=say))
    return {"machine": {"cores": os.cpu_count(), "python": platform.python_version(),
                        "processor": platform.machine(), "one_core": True},
            "indicators": len(catalog), "goals": {"ratio_floor_max": GOALS["floor"], "ratio_polars_max": GOALS["polars"],
                                                  "ratio_duckdb_max": GOALS["duckdb"],
                                                  "tick_ms_p99_max": {str(k): v for k, v in GOALS["p99_ms"].items()}},
            "runs": runs}


def format_report(r: dict) -> str:
    lines = [f"engine bench: {r['indicators']:,} indicators, one core of {r['machine']['cores']} "
             f"(ratios: our whole tick ÷ theirs over the same measured ticks; < 1 is faster)"]
    for run in r["runs"]:
        e, f = run["engine"], run["floor"]
        goal = GOALS["p99_ms"].get(round(run["events_per_tick"], -3))
        lines += [
            f"\n{run['events_per_tick']:,.0f} events per 1 s tick, {run['ticks']} measured ticks "
            f"(after {run['warmup_ticks']} warm-up ticks)",
            f"  engine  whole tick p50 {e['tick_ms_p50']:.2f} ms  p99 {e['tick_ms_p99']:.2f} ms"
            + (f" (goal ≤ {goal:g} ms)" if goal else "")
            + f"   ingest p50 {e['ingest_ms_p50']:.2f} ms, advance p50 {e['advance_ms_p50']:.2f} ms;"
              f" {e['events_per_s'] / 1e6:.2f} M events/s",
            f"          work: {e['work']}",
            f"  floor   {f['ms_per_tick']:.2f} ms per tick ({f['events_per_s'] / 1e6:.1f} M events/s)   "
            f"engine = {run['ratio']['floor']:.1f}× floor (goal ≤ {GOALS['floor']:g}×)",
        ]
        for name in ("polars", "duckdb"):
            if name in run:
                b = run[name]
                lines += [f"  {name:7s} whole tick p50 {b['tick_ms_p50']:.2f} ms  p99 {b['tick_ms_p99']:.2f} ms   "
                          f"engine = {run['ratio'][name]:.3f}× {name} (goal ≤ {GOALS[name]:g}×)"
                          + ("" if b["threads"] == 1 else f"  [{name} ran {b['threads']} threads: imported before "
                                                          f"the bench could give it one; not the same core count]"),
                          f"          work: {b['work']}; {b['group_rows_per_tick']:,.0f} group rows per tick"]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="scenic-twin bench engine")
    add_arguments(p)
    return run(p.parse_args(argv))


def _sizes(text: str) -> tuple[int, ...]:
    try:
        sizes = tuple(int(x) for x in text.split(","))
    except ValueError:
        sizes = ()
    if not sizes or min(sizes) < 100:
        raise argparse.ArgumentTypeError(f"{text!r}: events per tick, comma-separated, each ≥ 100 (e.g. 10000,100000)")
    return sizes


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--events-per-tick", type=_sizes, default=(10_000, 100_000), metavar="N[,N…]",
                   help="sizes to run, comma-separated (default 10000,100000)")
    p.add_argument("--seconds", type=int, default=None,
                   help="measured ticks per size (default: 60 at 10k, 15 at 100k; after 10 warm-up ticks)")
    p.add_argument("--baselines", default="polars,duckdb", help="which baselines to run (default polars,duckdb)")
    p.add_argument("--json", action="store_true", help="print the measurements as JSON")
    p.add_argument("--quiet", action="store_true")


def run(args) -> int:
    say = (lambda m: None) if args.quiet else (lambda m: print(m, file=sys.stderr, flush=True))
    baselines = tuple(b for b in args.baselines.split(",") if b)
    bad = [b for b in baselines if b not in ("polars", "duckdb")]
    if bad:
        print(f"scenic-twin bench engine: --baselines {','.join(bad)}: choose from polars, duckdb", file=sys.stderr)
        return 2
    for b in baselines:
        try:
            _import_polars() if b == "polars" else __import__(b)
        except ImportError:
            print(f"scenic-twin bench engine: the {b} baseline needs the test extras: "
                  f".venv/bin/pip install -e '.[test]' (or --baselines without {b})", file=sys.stderr)
            return 2
    r = run_engine_bench(args.events_per_tick, args.seconds, baselines=baselines, progress=say)
    print(json.dumps(r, indent=2) if args.json else format_report(r))
    return 0


if __name__ == "__main__":
    sys.exit(main())
