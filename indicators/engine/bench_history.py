"""``scenic-twin bench history``: the tick history's disk per day and a 30-day query of one indicator.

One hour of ticks (the engine over synthetic feeds, or the first full hour of a service's
``var/history`` with ``--source``) is stored three ways, in this run, on the same ticks:

* **every tick** - each tick's 1,373 values (the history as it was first built);
* **changes, 30 s parts** - a key frame and the changes, one part per checkpoint, exact floats
  (the history before issue 13's compaction);
* **quantised, compacted** - what the service writes now: values to 3 decimals of their unit
  (6 for fine units), by indicator, delta-encoded, one part an hour.

It prints bytes per hour and per day of each and the ratios, the largest difference between a
stored value and the engine's, then copies the quantised hour into ``--days`` days of hourly
partitions (tick times shifted) and times :meth:`History.query` of one indicator over all of
them (every tick of it, forward-filled from the changes), against reading the same files'
rows of that indicator with ``pyarrow.dataset`` and a filter on the id (the raw read: what a
generic reader does; it forward-fills nothing, and it reads every row group, not only those
the stored id ranges name).
Then it merges each day's hours into one part (:meth:`History.compact_days`, what the
service does with a finished day), timing each merge, and times the same query and raw read
over the merged days.
"""
from __future__ import annotations

import argparse
import json
import shutil
import sys
import tempfile
import time
from datetime import datetime, timedelta, timezone
from zoneinfo import ZoneInfo
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.dataset as ds
import pyarrow.parquet as pq

from .history import (_EPOCH, History, TICK_RUNS_KEY, _atomic_parquet, _tick_runs, part_matrix, parts,
                      ticks_table, unit_decimals)
from .plan import QUALITY_NAMES

HOUR_MS = 3_600_000


class _Tick:
    __slots__ = ("time_ms", "values", "quality")

    def __init__(self, time_ms, values, quality):
        self.time_ms, self.values, self.quality = time_ms, values, quality


def _engine_hour(catalog, seed: int, say, seconds: int = 3600) -> list[_Tick]:
    from .engine import Engine
    from .synthetic import arrival_order, synthetic_feeds
    start = datetime(2025, 10, 1, 12, 0, tzinfo=timezone.utc)             # 20:00 local
    say("  generating one hour of synthetic feeds ...")
    feeds = synthetic_feeds(catalog, start - timedelta(minutes=15), 900 + seconds + 5, seed=seed, scale=0.3,
                            max_delay_ms=500)
    eng = Engine(catalog, tick=timedelta(seconds=1), allowed_lateness=timedelta(seconds=2),
                 start=start - timedelta(minutes=15, milliseconds=1))
    out: list[_Tick] = []
    say(f"  the engine over it (15 min warm-up, then {seconds:,} ticks) ...")
    lo = int(start.timestamp() * 1000)
    hi = lo + seconds * 1000
    for kind, t in arrival_order(feeds, 1000):
        eng.ingest(kind, t)
        for tk in eng.ticks(start + timedelta(days=1)):
            if lo < tk.time_ms <= hi:
                out.append(_Tick(tk.time_ms, tk.values.copy(), tk.quality.copy()))
    return out


def _source_hour(catalog, source: Path) -> list[_Tick]:
    pos = {i: k for k, i in enumerate(catalog.ids)}
    no_data = QUALITY_NAMES.index("no_data")
    by_hour: dict[Path, list] = {}
    for _, _, f in parts(source):
        if f.parent.name.startswith("hour="):        # not a merged day: the recent days stay in hours
            by_hour.setdefault(f.parent, []).append(f)
    full = [d for d, fs in sorted(by_hour.items())]
    for d in full[1:-1] or full:                      # not the first or last hour: they may be partial
        ticks = []
        for f in by_hour[d]:
            times, values, quality = part_matrix(f, pos, len(pos), no_data)
            ticks.extend(_Tick(int(t), values[k], quality[k]) for k, t in enumerate(times.tolist()))
        if len(ticks) >= 600:
            return ticks
    raise SystemExit(f"{source}: no hour with ≥ 600 ticks of history; give a service's var/history after a run")


def _size(root: Path) -> int:
    return sum(f.stat().st_size for f in root.rglob("*.parquet"))


def _copy_month(tmp: Path, catalog, decimals, days: int, say) -> tuple[History, datetime]:
    """The quantised hour copied into ``days`` days of hourly partitions, tick times shifted hour
    by hour, from a local midnight (so the days are whole)."""
    say(f"  copying the hour into {days} days of partitions ...")
    (one,) = [f for _, _, f in parts(tmp / "quantised")][:1] or [None]
    base = pq.read_table(one)
    meta = base.schema.metadata
    runs = json.loads(meta[TICK_RUNS_KEY])
    first = runs[0][0]
    month = tmp / "month"
    hist = History(month, catalog.ids, decimals=decimals, retention=timedelta(days=days + 2))
    t_start = datetime(2025, 9, 1, tzinfo=ZoneInfo("Asia/Shanghai"))
    origin = int(t_start.timestamp() * 1000)
    for h in range(days * 24):
        shift = origin + h * HOUR_MS - (first - first % HOUR_MS)
        tt = pa.array(base.column("tick_time").cast(pa.int64()).to_numpy() + shift, pa.int64()).cast(
            pa.timestamp("ms", tz="UTC"))
        new_runs = [[a + shift, s, c] for a, s, c in runs]
        t = base.set_column(1, "tick_time", tt).replace_schema_metadata(
            {**meta, TICK_RUNS_KEY: json.dumps(new_runs).encode()})
        times = np.concatenate([a + s * np.arange(c) for a, s, c in new_runs])
        date, hour = hist._partition(int(times[0]))
        _atomic_parquet(t, month / date / hour / f"part-{int(times[0])}-{int(times[-1])}.parquet")
        if h % 24 == 23:
            say(f"    {h // 24 + 1}/{days} days")
    return hist, t_start


def _timed_query(hist: History, wanted: str, start: datetime, days: int, layout: str, say) -> dict:
    """:meth:`History.query` of one indicator over the days (best of 3), and the same files' rows
    of it read by ``pyarrow.dataset`` with a filter."""
    say(f"  query {wanted} over {days} days, {layout} (3 runs each) ...")
    end = start + timedelta(days=days)
    ours, floor = [], []
    rows = 0
    for _ in range(3):
        t0 = time.perf_counter()
        rows = hist.query([wanted], start, end).num_rows
        ours.append(time.perf_counter() - t0)
        t0 = time.perf_counter()
        files = [str(f) for _, _, f in parts(hist.root)]
        raw = ds.dataset(files, format="parquet").to_table(
            columns=["tick_time", "value"], filter=ds.field("indicator") == wanted)
        floor.append(time.perf_counter() - t0)
    return {"indicator": wanted, "days": days, "layout": layout, "files": len(parts(hist.root)), "rows": rows,
            "ours_s": round(min(ours), 3), "raw_read_s": round(min(floor), 3), "raw_rows": raw.num_rows,
            "ratio_to_raw_read": round(min(ours) / min(floor), 2), "goal_s": 1.0}


def _month(tmp: Path, catalog, decimals, days: int, say) -> tuple[dict, dict, dict]:
    """The month in hours: the query; each day merged (timed); the month merged: the query again."""
    hist, start = _copy_month(tmp, catalog, decimals, days, say)
    wanted = "crowd.load_rate:zone=tower_base@now"
    if wanted not in catalog.ids:
        wanted = catalog.ids[0]
    in_hours = _timed_query(hist, wanted, start, days, "hourly parts", say)
    bytes_hours = _size(hist.root)
    say("  merging each day's 24 hourly parts into one ...")
    took = []
    far = int((start + timedelta(days=days) - _EPOCH).total_seconds() * 1000) + HOUR_MS
    while True:
        t0 = time.perf_counter()
        if not hist.compact_days(far, limit=1):
            break
        took.append(time.perf_counter() - t0)
    merge = {"days": len(took), "s_per_day_p50": round(float(np.median(took)), 2) if took else None,
             "s_per_day_max": round(max(took), 2) if took else None,
             "mb_per_day_hours": round(bytes_hours / days / 1e6, 2),
             "mb_per_day_merged": round(_size(hist.root) / days / 1e6, 2)}
    return in_hours, merge, _timed_query(hist, wanted, start, days, "a part a day", say)


def run(days: int = 30, source: Path | None = None, seed: int = 5, progress=None, seconds: int = 3600) -> dict:
    from indicators.catalog import load_catalog
    say = progress or (lambda m: None)
    catalog = load_catalog()
    ids = pa.array(catalog.ids, pa.string())
    decimals = [unit_decimals(i.family.unit) for i in catalog.indicators]
    ticks = _source_hour(catalog, source) if source else _engine_hour(catalog, seed, say, seconds)
    k = len(ticks)
    tmp = Path(tempfile.mkdtemp(prefix="bench-history-"))
    try:
        say(f"  storing {k:,} ticks three ways ...")
        every = tmp / "every"
        every.mkdir()
        for a in range(0, k, 60):
            chunk = ticks[a:a + 60]
            pq.write_table(ticks_table(chunk, ids), every / f"part-{chunk[0].time_ms}.parquet", compression="zstd")
        parts30 = History(tmp / "changes", catalog.ids, flush_ticks=30)
        parts30.extend(ticks)
        parts30.flush()
        q = History(tmp / "quantised", catalog.ids, flush_ticks=30, decimals=decimals)
        q.extend(ticks)
        q.flush()
        t0 = time.perf_counter()
        q.compact(ticks[-1].time_ms + HOUR_MS, limit=3)
        compact_s = time.perf_counter() - t0
        per_day = 86_400 / k
        sizes = {"every_tick": _size(every), "changes_30s_parts": _size(tmp / "changes"),
                 "quantised_compacted": _size(tmp / "quantised")}
        # accuracy: every stored value against the engine's
        pos = {i: j for j, i in enumerate(catalog.ids)}
        no_data = QUALITY_NAMES.index("no_data")
        got = np.vstack([part_matrix(f, pos, len(pos), no_data)[1] for _, _, f in parts(tmp / "quantised")])
        want = np.vstack([t.values for t in ticks])
        step = 10.0 ** -np.array(decimals, np.float64)
        both = ~np.isnan(want)
        err = np.abs(np.where(both, got - want, 0.0)) / step
        same_missing = bool((np.isnan(got) == np.isnan(want)).all())

        in_hours, merge, in_days = _month(tmp, catalog, decimals, days, say)
        return {
            "ticks": k, "source": str(source) if source else "engine over synthetic feeds (seed %d)" % seed,
            "bytes_per_hour": {n: round(v * 3600 / k) for n, v in sizes.items()},
            "mb_per_day": {n: round(v * per_day / 1e6, 2) for n, v in sizes.items()},
            "ratio_every_tick_to_quantised": round(sizes["every_tick"] / sizes["quantised_compacted"], 1),
            "ratio_changes_to_quantised": round(sizes["changes_30s_parts"] / sizes["quantised_compacted"], 1),
            "compact_s_per_hour": round(compact_s * 3600 / k, 2),
            "accuracy": {"max_error_in_steps": float(err.max()), "missing_kept": same_missing,
                         "steps": "10^-3 of the unit; 10^-6 for " + ", ".join(sorted(
                             {i.family.unit for i in catalog.indicators if unit_decimals(i.family.unit) == 6}))},
            "query": in_days, "query_hourly_parts": in_hours, "day_merge": {**merge, "hour_of_ticks": k},
        }
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--days", type=int, default=30, help="days of history the query reads, in hourly parts and then merged "
                                                         "a part a day (default 30)")
    p.add_argument("--source", type=Path, help="a service's var/history: take its first full hour instead of "
                                              "the engine over synthetic feeds")
    p.add_argument("--json", action="store_true", help="print the result as JSON")


def main_args(a: argparse.Namespace) -> int:
    if a.days < 1:
        print("--days: at least 1", file=sys.stderr)
        return 2
    r = run(a.days, a.source, progress=lambda m: print(m, file=sys.stderr, flush=True))
    if a.json:
        print(json.dumps(r, indent=2))
        return 0
    print(f"one hour = {r['ticks']:,} ticks ({r['source']})")
    for n, mb in r["mb_per_day"].items():
        print(f"  {n:22s} {r['bytes_per_hour'][n] / 1e6:7.2f} MB/h  {mb:8.2f} MB/day")
    print(f"  every tick ÷ quantised: {r['ratio_every_tick_to_quantised']}×; "
          f"changes in 30 s parts ÷ quantised: {r['ratio_changes_to_quantised']}×; "
          f"compaction {r['compact_s_per_hour']} s per hour")
    acc = r["accuracy"]
    print(f"  largest error {acc['max_error_in_steps']:.3f} of a step ({acc['steps']}); "
          f"no data kept as no data: {acc['missing_kept']}")
    dm = r["day_merge"]
    print(f"  merging a day's hourly parts into one: {dm['s_per_day_p50']} s per day (p50; max {dm['s_per_day_max']} s); "
          f"{dm['mb_per_day_hours']} MB a day in hours, {dm['mb_per_day_merged']} MB merged")
    for qr in (r["query_hourly_parts"], r["query"]):
        print(f"query of {qr['indicator']} over {qr['days']} days, {qr['layout']} ({qr['files']} files, "
              f"{qr['rows']:,} ticks): {qr['ours_s']:.3f} s (goal ≤ {qr['goal_s']} s); raw read of its "
              f"{qr['raw_rows']:,} stored rows with pyarrow.dataset {qr['raw_read_s']:.3f} s "
              f"({qr['ratio_to_raw_read']}× that generic read)")
    return 0
