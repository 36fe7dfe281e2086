"""``scenic-twin bench cost``: what a machine needs as the work grows - tick time and memory against
events per tick (1k, 10k, 100k per area) and against the number of scenic areas (1, 3, 10).

Each cell runs in a process of its own (so that memory is that cell's, not what an earlier cell
left in the allocator): synthetic feeds at the cell's rate, one :class:`Engine` per area (every
area is a copy of the Canton Tower area, as the platform's synthetic areas are, and gets the same
batches: each engine does the full work of its area), warm-up ticks, then the measured ticks.
A tick is every area's ingest and advance, one after another on one core (the process does not
spread areas over cores; ``scenic-twin worker`` processes do).  Memory: the process's resident
set after the run (it includes the run's feeds, held in memory and reported apart as
``input_mb``: a live service streams them), and the engines' part of it: its growth from before the
engines were built (after the compiled kernels were loaded: numba's runtime, ~40 MB, is the
process's, paid once whatever the areas), with freed memory handed back to the system before each
reading.
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from datetime import datetime, timedelta, timezone

import numpy as np

SIZES = (1_000, 10_000, 100_000)
AREAS = (1, 3, 10)


def _rss_mb() -> float:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 1e6


def _settle() -> float:
    """Resident MB once freed memory has gone back to the system (glibc's heap, Arrow's pool):
    without it, memory the feed generation freed and the engines then reused reads as negative growth."""
    import ctypes
    import gc

    import pyarrow as pa
    gc.collect()
    try:
        pa.default_memory_pool().release_unused()
    except AttributeError:
        pass
    try:
        ctypes.CDLL("libc.so.6").malloc_trim(0)
    except OSError:
        pass
    return _rss_mb()


def cell(events_per_tick: int, areas: int, seconds: int, warmup: int, seed: int = 7) -> dict:
    """One cell, in this process."""
    import gc

    from indicators.catalog import load_catalog

    from .bench import _per_tick_batches
    from .compiled import warm_up
    from .engine import Engine
    catalog = load_catalog()
    batches = _per_tick_batches(catalog, seconds + warmup, events_per_tick, seed)
    input_mb = sum(t.nbytes for tick in batches for _, t in tick) / 1e6
    warm_up()                                 # the compiled kernels' runtime is the process's, not an engine's
    before = _settle()
    # as in bench engine: events arrive up to 0.9 s late in 1 s batches; 2 s lateness takes them all
    engines = [Engine(catalog, tick=timedelta(seconds=1), allowed_lateness=timedelta(seconds=2))
               for _ in range(areas)]
    far = datetime(2100, 1, 1, tzinfo=timezone.utc)        # advance as far as the watermark allows
    times = []
    gc.disable()
    try:
        for i, tick in enumerate(batches):
            t0 = time.perf_counter()
            for eng in engines:
                for kind, t in tick:
                    eng.ingest(kind, t)
                eng.advance(far)
            if i >= warmup:
                times.append(time.perf_counter() - t0)
    finally:
        gc.enable()
    after = _settle()
    events = sum(t.num_rows for tick in batches[warmup:] for _, t in tick)
    late = sum(s["late"] for eng in engines for s in eng.stats.values())
    return {"events_per_tick_per_area": round(events / max(1, len(times))), "areas": areas,
            "ticks": len(times), "tick_ms_p50": 1000 * float(np.percentile(times, 50)),
            "tick_ms_p99": 1000 * float(np.percentile(times, 99)),
            "share_of_a_core": float(np.mean(times)) / 1.0,          # a tick is 1 s of event time
            "rss_mb": round(after, 1), "input_mb": round(input_mb, 1), "engines_mb": round(after - before, 1),
            "late": late}


def run(sizes=SIZES, areas=AREAS, seconds: int | None = None, warmup: int = 5, progress=None) -> dict:
    """Every cell in a child process; the table as a dict."""
    say = progress or (lambda m: None)
    cells = []
    for size in sizes:
        for n in areas:
            s = seconds or max(8, min(30, 300_000 // size))
            say(f"  {size:,} events per tick per area × {n} area(s), {s} ticks ...")
            out = subprocess.run([sys.executable, "-m", "indicators.engine.bench_cost", "--cell", str(size), str(n),
                                  "--seconds", str(s), "--warmup", str(warmup)],
                                 capture_output=True, text=True, check=False)
            if out.returncode != 0:
                raise RuntimeError(f"cell {size}×{n} failed: {out.stderr.strip()[-600:]}")
            cells.append(json.loads(out.stdout))
    return {"machine": {"cores": os.cpu_count(), "one_core_per_process": True}, "cells": cells}


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--events-per-tick", default=",".join(str(s) for s in SIZES),
                   help="events per 1 s tick per area, comma-separated (default 1000,10000,100000)")
    p.add_argument("--areas", default=",".join(str(a) for a in AREAS),
                   help="numbers of scenic areas, comma-separated (default 1,3,10)")
    p.add_argument("--seconds", type=int, default=None, help="measured ticks per cell (default: by size)")
    p.add_argument("--json", action="store_true", help="print the result as JSON")


def _ints(text: str, what: str) -> tuple[int, ...]:
    try:
        v = tuple(int(x) for x in text.split(","))
    except ValueError:
        v = ()
    if not v or min(v) < 1:
        raise SystemExit(f"{what}: positive integers, comma-separated (got {text!r})")
    return v


def main_args(a: argparse.Namespace) -> int:
    r = run(_ints(a.events_per_tick, "--events-per-tick"), _ints(a.areas, "--areas"), a.seconds,
            progress=lambda m: print(m, file=sys.stderr, flush=True))
    if a.json:
        print(json.dumps(r, indent=2))
        return 0
    print(f"tick time (all areas, one core) and memory; {r['machine']['cores']} cores on this machine")
    print(f"{'events/tick/area':>16} {'areas':>5} {'tick p50':>9} {'tick p99':>9} {'core':>6} {'RSS':>8} {'of it feeds':>11} {'engines':>8}")
    for c in r["cells"]:
        print(f"{c['events_per_tick_per_area']:>16,} {c['areas']:>5} {c['tick_ms_p50']:>7.1f}ms {c['tick_ms_p99']:>7.1f}ms "
              f"{100 * c['share_of_a_core']:>5.0f}% {c['rss_mb']:>6.0f}MB {c['input_mb']:>9.0f}MB {c['engines_mb']:>6.0f}MB")
    return 0


if __name__ == "__main__":
    ap = argparse.ArgumentParser(prog="python -m indicators.engine.bench_cost")
    ap.add_argument("--cell", nargs=2, type=int, metavar=("EVENTS", "AREAS"))
    ap.add_argument("--seconds", type=int, default=10)
    ap.add_argument("--warmup", type=int, default=5)
    args = ap.parse_args()
    if args.cell:
        print(json.dumps(cell(args.cell[0], args.cell[1], args.seconds, args.warmup)))
    else:
        ap.print_help()
