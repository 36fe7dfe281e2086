"""CLI commands of the indicators: ``catalog``, ``replay``, ``bench engine`` (registered into ``scenic-twin``)."""
from __future__ import annotations

import argparse
import json
import re
import sys
from datetime import timedelta

__all__ = ["register", "parse_duration"]

_DUR = re.compile(r"^(\d+(?:\.\d+)?)(ms|s|m|h)$")


def parse_duration(text: str) -> timedelta:
    """``500ms``, ``1s``, ``2m``, ``1h`` as a timedelta (for --tick and --lateness)."""
    m = _DUR.match(text.strip())
    if not m:
        raise argparse.ArgumentTypeError(f"{text!r} is not a duration like 500ms, 1s, 2m or 1h")
    n, unit = float(m.group(1)), m.group(2)
    return timedelta(milliseconds=n) if unit == "ms" else timedelta(seconds=n * {"s": 1, "m": 60, "h": 3600}[unit])


def _cmd_catalog(args) -> int:
    from indicators.catalog import CatalogError, load_catalog, read_snapshot, snapshot_path, write_snapshot
    try:
        cat = load_catalog(args.families, args.inventory)
    except CatalogError as e:
        for p in e.problems:
            print(str(p), file=sys.stderr)
        print(f"scenic-twin catalog: {len(e.problems)} problem(s)", file=sys.stderr)
        return 2
    s = cat.summary()
    status = 0
    if args.write_snapshot:
        print(f"wrote {len(cat)} ids to {write_snapshot(cat, args.snapshot)}", file=sys.stderr)
    if args.check:
        try:
            snap = read_snapshot(args.snapshot)
        except FileNotFoundError:
            snap = []
        ids = cat.ids
        missing, extra = sorted(set(ids) - set(snap)), sorted(set(snap) - set(ids))
        s["snapshot"] = {"path": str(args.snapshot or snapshot_path()), "matches": snap == ids,
                         "missing_from_snapshot": missing[:50], "not_in_catalog": extra[:50]}
        if snap != ids:
            status = 1
            print(f"the expansion differs from the snapshot: {len(missing)} new id(s), {len(extra)} gone "
                  f"(review, then `scenic-twin catalog --write-snapshot`)", file=sys.stderr)
            for i in missing[:20]:
                print(f"  + {i}", file=sys.stderr)
            for i in extra[:20]:
                print(f"  - {i}", file=sys.stderr)
    if args.json:
        print(json.dumps(s, ensure_ascii=False, indent=2))
        return status
    print(f"{s['total']} indicators in {s['families']} families (expected {s['expected_total']})")
    for f in cat.families:
        print(f"  {f.id:32s} {f.scope:8s} {','.join(str(w) for w in f.windows):10s} "
              f"{s['by_family'][f.id]:5d}  {f.name_zh}")
    for key in ("by_scope", "by_feed", "by_level", "by_side", "by_kind"):
        print(f"{key[3:]}: " + ", ".join(f"{k} {v}" for k, v in s[key].items()))
    if args.check:
        print("snapshot: " + ("matches" if s["snapshot"]["matches"] else "DIFFERS"))
    return status


def _cmd_replay(args) -> int:
    from indicators.engine.replay import replay
    r = replay(args.dir, args.out, tick=args.tick, lateness=args.lateness, progress=not args.quiet)
    late = sum(v["late"] for v in r["stats"].values())
    dups = sum(v["duplicates"] for v in r["stats"].values())
    print(f"wrote {r['ticks']} ticks x {r['indicators']} indicators = {r['rows']} rows to {r['out']} "
          f"({late} late and {dups} duplicate events dropped, {r['malformed_skipped']} malformed records skipped)",
          file=sys.stderr)
    if args.json and not args.alerts:
        print(json.dumps(r, indent=2, default=str))
    if args.alerts:
        # a second pass through a fresh engine feeds the alert runtime; its
        # store is what `scenic-twin alerts / cases / plans` read afterwards
        from indicators import replay_alerts as alert_replay
        from indicators.alerts.store import default_store_path
        args.store = args.store or str(default_store_path())
        return alert_replay.run_cli(args)
    return 0


def _cmd_bench_engine(args) -> int:
    from indicators.engine import bench
    return bench.run(args)


def register(sub, bench_sub) -> None:
    """Add ``catalog``, ``replay`` and ``bench engine`` to the ``scenic-twin`` parser."""
    c = sub.add_parser("catalog", help="the 1,373 indicators: totals, checks, snapshot",
                       description=("Read data/catalog/families.toml, check it (every problem with its path), "
                                    "expand it over the inventory and print the totals by family, scope, feed, "
                                    "data level and side."))
    c.add_argument("--json", action="store_true", help="print the summary as JSON")
    c.add_argument("--check", action="store_true",
                   help="also compare with the reviewed snapshot data/catalog/indicator_ids.txt (exit 1 if it differs)")
    c.add_argument("--write-snapshot", action="store_true", help="rewrite the snapshot from the expansion")
    c.add_argument("--families", default=None, help="families file (default data/catalog/families.toml)")
    c.add_argument("--snapshot", default=None, help="snapshot file (default data/catalog/indicator_ids.txt)")
    c.add_argument("--inventory", default=None, help="inventory (default data/inventory.parquet)")
    c.set_defaults(func=_cmd_catalog)

    r = sub.add_parser("replay", help="run a feed recording through the indicator engine",
                       description=("Run a recording (a directory of <kind>.parquet files with arrival_time, as "
                                    "`scenic-twin simulate` writes) through the engine and write every tick's "
                                    "values (indicator, tick_time, value, quality) to a Parquet file."))
    r.add_argument("dir", help="recording directory")
    r.add_argument("--out", required=True, help="output Parquet file")
    r.add_argument("--tick", type=parse_duration, default=timedelta(seconds=1), help="tick length (default 1s)")
    r.add_argument("--lateness", type=parse_duration, default=timedelta(minutes=2),
                   help="allowed lateness of events (default 2m: feeds deliver minute batches)")
    r.add_argument("--quiet", action="store_true", help="no progress bar")
    r.add_argument("--json", action="store_true", help="print a JSON summary")
    from indicators.replay_alerts import add_cli_arguments
    add_cli_arguments(r)
    r.set_defaults(func=_cmd_replay)

    from indicators.engine import bench
    b = bench_sub.add_parser("engine", help="indicator engine: events/s, tick latency, ratios to baselines",
                             description=("Synthetic feeds at --events-per-tick through the engine; prints "
                                          "events/s per core, tick latency p50/p99 for all 1,373 indicators and "
                                          "ratios to a vectorised read (floor), polars recomputing the windows "
                                          "and a per-event Python loop, all measured in this run."))
    bench.add_arguments(b)
    b.set_defaults(func=_cmd_bench_engine)
