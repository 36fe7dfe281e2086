"""CLI commands of the indicators: ``catalog``, ``replay``, ``alarms report``, ``bench engine`` (registered into
``scenic-twin``).

``alarms report`` lives here, not in :mod:`indicators.alerts.cli`, because it drives the engine and the
alert pipeline (application layer); its figures are the pure :mod:`indicators.alerts.report`.
"""
from __future__ import annotations

import argparse
import json
import re
import sys
from datetime import timedelta

__all__ = ["register", "parse_duration", "run_alarm_report"]

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


def _cmd_bench_replay(args) -> int:
    from indicators import bench_replay
    return bench_replay.main(args)


# --------------------------------------------------------------------------- alarms report
class _ReportProgress:
    """Progress lines on stderr for ``alarms report`` (a line every ``every_s`` of
    wall clock: simulated time reached, share done, alerts so far, elapsed, left)."""

    def __init__(self, lo_ms, hi_ms, alerts, *, stream=sys.stderr, enabled: bool = True, every_s: float = 15.0):
        import time
        self.lo, self.hi, self.alerts = lo_ms, hi_ms, alerts
        self.stream, self.enabled, self.every = stream, enabled and stream is not None, every_s
        self.clock = time.perf_counter
        self.t0 = self.last = self.clock()

    def update(self, t_ms, ticks: int, force: bool = False) -> None:
        now = self.clock()
        if not self.enabled or t_ms is None or (not force and now - self.last < self.every):
            return
        from datetime import datetime, timezone
        from indicators.localtime import fmt_local
        self.last = now
        el = now - self.t0
        frac = None
        if self.lo is not None and self.hi and self.hi > self.lo:
            frac = min(1.0, max(0.0, (t_ms - self.lo) / (self.hi - self.lo)))
        when = fmt_local(datetime.fromtimestamp(t_ms / 1000, timezone.utc))
        left = f", ~{el / frac - el:.0f} s left" if frac and frac < 1 else ""
        share = f" ({100 * frac:.0f} %)" if frac is not None else ""
        self.stream.write(f"alarms report: simulated {when} local{share}, {ticks} ticks, {self.alerts()} alerts "
                          f"so far, {el:.0f} s elapsed{left}\n")
        self.stream.flush()

    def done(self) -> None:
        pass


def run_alarm_report(recording_dir, *, frm=None, to=None, store=None, thresholds=None, progress: bool = True,
                     catalog=None, inventory=None, alerts_every: timedelta = timedelta(seconds=15),
                     warmup: timedelta | None = None, stream=sys.stderr) -> dict:
    """Run the recording at ``recording_dir`` through a fresh engine and the alert
    runtime exactly as the live service drives them (:class:`indicators.pipeline.Pipeline`,
    its cadence and 15-minute warm-up, :func:`indicators.replay_alerts.drive`) into
    an alert store - ``store`` (a new SQLite file, kept) or a temporary one in
    memory - and return :func:`indicators.alerts.report.alarm_report` of what the
    runtime produced, plus the run: the simulated span, the evaluations, the
    wall-clock time.

    ``frm`` / ``to``: the counted window (``HH:MM`` local time or ISO 8601,
    :func:`~indicators.alerts.report.resolve_window`); the whole recording runs
    anyway (the warm-up and the indicators' windows need it).  ``thresholds``:
    a saved-version document, layered over the shipped one.  Priorities: red =
    urgent, orange = high, yellow and blue = low."""
    import time
    from collections import Counter
    from datetime import datetime, timezone
    from pathlib import Path

    from twin_assets import inventory as inv

    from indicators.alerts.report import Names, alarm_report, resolve_window
    from indicators.alerts.store import AlertStore
    from indicators.catalog import load_catalog
    from indicators.engine import DEFAULT_LATENESS, Engine
    from indicators.engine.replay import recording_span
    from indicators.localtime import fmt_local
    from indicators.pipeline import Cadence, Pipeline
    from indicators.replay_alerts import drive

    t0 = time.perf_counter()
    directory = Path(recording_dir)
    if not directory.is_dir():
        raise FileNotFoundError(f"no recording at {directory} (a folder written by `scenic-twin simulate`)")
    manifest = {}
    if (directory / "manifest.json").is_file():
        manifest = json.loads((directory / "manifest.json").read_text(encoding="utf-8"))
    if store is not None and Path(store).exists():
        raise FileExistsError(f"{store} exists: the report runs into a new alert store (give a new file, or none "
                              "for a temporary one)")
    inventory = inv.load() if inventory is None else inventory
    catalog = load_catalog(inventory=inventory) if catalog is None else catalog
    lo, hi = recording_span(directory)
    epoch = datetime(1970, 1, 1, tzinfo=timezone.utc)
    start = None if lo is None else epoch + timedelta(milliseconds=lo - 1)
    engine = Engine(catalog, inventory, allowed_lateness=DEFAULT_LATENESS, start=start)
    cadence = Cadence(every=alerts_every) if warmup is None else Cadence(every=alerts_every, warmup=warmup)
    now = {"t": start or epoch}
    messages: list[dict] = []

    class _Notifier:
        def send(self, m) -> None:
            messages.append({"channel": m.channel, "created_at": m.created_at})

    events, case_steps, plan_events = [], [], []
    evaluated: dict = {"first": None, "last": None}
    fired: set[str] = set()                 # alert ids that fired so far (for the progress lines)
    with AlertStore.open(":memory:" if store is None else store) as st:
        pipe = Pipeline(catalog, inventory, st, lambda: now["t"], _Notifier(), cadence=cadence,
                        **({} if thresholds is None else {"thresholds": thresholds}))

        def on_result(_i, res) -> None:
            evaluated["first"] = evaluated["first"] or res.tick
            evaluated["last"] = res.tick
            events.extend(res.events)
            fired.update(e.alert_id for e in res.events if e.kind == "firing")
            case_steps.extend(res.case_steps)
            plan_events.extend(res.plan_events)

        if progress and stream is not None:
            span = (f"{fmt_local(epoch + timedelta(milliseconds=lo))} – {fmt_local(epoch + timedelta(milliseconds=hi))}"
                    f" local" if lo is not None and hi is not None else "an empty recording")
            stream.write(f"alarms report: {directory} ({span}) through the engine and the alert runtime "
                         f"({cadence.every.total_seconds():g} s cadence, {cadence.warmup.total_seconds() / 60:g} min "
                         f"warm-up)\n")
            stream.flush()
        bar = _ReportProgress(lo, hi, lambda: len(fired), stream=stream, enabled=progress)
        counters: Counter = Counter()
        state = drive(directory, engine, [pipe], now, on_result, counters, bar)
        cases = [{"case_id": c.case_id, "source": c.source, "category": c.category, "priority": c.priority,
                  "opened_at": c.opened_at} for c in st.cases()]
        names = Names.build(pipe.rules, inventory=inventory, catalog=catalog, config=pipe.config)
        if evaluated["first"] is None:
            raise ValueError(f"the recording ({state['ticks']} ticks) is shorter than the warm-up "
                             f"({cadence.warmup.total_seconds() / 60:g} min): no alert evaluation ran")
        first_eval, last_eval = evaluated["first"], evaluated["last"]
        w_from, w_to = resolve_window(first_eval, last_eval, frm, to, anchor=state["first"])
        report = alarm_report(events, start=w_from, end=w_to, cases=cases, plan_events=plan_events,
                              case_steps=case_steps, messages=messages, names=names,
                              edge_s=cadence.every.total_seconds())
        version = pipe.thresholds_version
        evaluations = pipe.evaluations
    wall = time.perf_counter() - t0
    first, last = state["first"], state["last"]
    sim_s = (last - first).total_seconds() if first and last else 0.0
    iso = lambda t: None if t is None else t.astimezone(timezone.utc).isoformat().replace("+00:00", "Z")  # noqa: E731
    report = {
        "recording": str(directory), "scenario": manifest.get("scenario"), "seed": manifest.get("seed"),
        "store": None if store is None else str(store),
        "thresholds": "document given" if thresholds is not None else
                      (f"version {version}" if version else "shipped defaults"),
        "span": {"first_tick": iso(first), "last_tick": iso(last), "first_tick_local": fmt_local(first),
                 "last_tick_local": fmt_local(last), "simulated_h": round(sim_s / 3600, 3), "ticks": state["ticks"],
                 "warmup_min": cadence.warmup.total_seconds() / 60, "alerts_every_s": cadence.every.total_seconds(),
                 "first_evaluation": iso(first_eval), "first_evaluation_local": fmt_local(first_eval),
                 "last_evaluation": iso(last_eval), "evaluations": evaluations},
        **report,
        "input": {"malformed_skipped": counters["malformed"], "rejected_batches": counters["rejected_batches"],
                  "unusable_event_rows": pipe.unusable_rows, "alert_errors": pipe.errors},
        "run": {"wall_s": round(wall, 1), "speed_x": round(sim_s / wall, 1) if wall > 0 else None},
    }
    if progress and stream is not None:
        stream.write(f"alarms report: done in {wall:.0f} s ({report['run']['speed_x']}× simulated time)\n")
        stream.flush()
    return report


def _cmd_alarms_report(args) -> int:
    from indicators.alerts.report import parse_time_spec
    try:                                   # a bad --from/--to is refused before the run, not after it
        for spec in (args.frm, args.to):
            if spec is not None:
                parse_time_spec(spec)
    except ValueError as e:
        print(f"scenic-twin alarms report: {e}", file=sys.stderr)
        return 2
    thresholds = None
    if args.thresholds:
        from pathlib import Path
        thresholds = json.loads(Path(args.thresholds).read_text(encoding="utf-8"))
    try:
        r = run_alarm_report(args.dir, frm=args.frm, to=args.to, store=args.store, thresholds=thresholds,
                             progress=not args.quiet)
    except (ValueError, FileExistsError) as e:
        print(f"scenic-twin alarms report: {e}", file=sys.stderr)
        return 2
    if args.json:
        print(json.dumps(r, ensure_ascii=False, indent=2, default=str))
    else:
        from indicators.alerts.report import render_text
        print("\n".join(render_text(r)))
    return 0


def register(sub, bench_sub) -> None:
    """Add ``catalog``, ``replay``, ``alarms report``, ``bench engine`` and ``bench replay`` to the ``scenic-twin``
    parser."""
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

    a = sub.add_parser("alarms", help="alarm-management figures (ISA-18.2 / EEMUA 191) of a recording",
                       description="Alarm management: what the alert runtime would put in front of the control "
                                   "room.")
    asub = a.add_subparsers(dest="alarms_command", required=True, metavar="WHAT")
    ar = asub.add_parser(
        "report", help="run a recording through the engine and the alert runtime; alerts per hour, floods, "
                       "priorities, bad actors, chattering and standing alerts, cases, plans, messages",
        description=("Run a recording (written by `scenic-twin simulate`) through the engine and the alert runtime "
                     "exactly as the live service does (15 s cadence, 15 min warm-up, the shipped default "
                     "thresholds) into a temporary alert store, and print the alarm-management figures: alerts "
                     "raised per hour (mean, worst hour), the worst 10 minutes, the share of 10-minute periods in "
                     "flood (> 10 alerts) and of manageable hours (<= 6 alerts), alerts by tier and priority "
                     "(red = urgent, orange = high, yellow and blue = low), the top 10 bad actors (rule x place), "
                     "chattering (>= 3 activations in 10 min or >= 5 in 60 min) and standing (> 24 h) alerts, "
                     "cases opened by source, plans opened, messages sent by kind, escalations; the simulated "
                     "span and the wall-clock time.  An alert is an episode that reached firing, counted at its "
                     "first firing.  Progress lines on stderr."),
        epilog="Example: scenic-twin alarms report /tmp/rec --from 18:00 --to 22:00 --json")
    ar.add_argument("dir", help="recording directory")
    ar.add_argument("--json", action="store_true", help="print one JSON object with every figure")
    ar.add_argument("--from", dest="frm", default=None, metavar="HH:MM",
                    help="count from this local time (Asia/Shanghai; or ISO 8601); default: the end of the warm-up")
    ar.add_argument("--to", default=None, metavar="HH:MM",
                    help="count until this local time (the first after --from; or ISO 8601); default: the end")
    ar.add_argument("--store", default=None,
                    help="keep the alert store the run writes in this NEW SQLite file (default: a temporary one)")
    ar.add_argument("--thresholds", default=None,
                    help="a threshold document (JSON: calendars, override - e.g. `thresholds learn --out`), "
                         "layered over the shipped one as the service layers a saved version")
    ar.add_argument("--quiet", action="store_true", help="no progress lines on stderr")
    ar.set_defaults(func=_cmd_alarms_report)

    from indicators.engine import bench
    b = bench_sub.add_parser("engine", help="indicator engine: events/s, tick latency, ratios to baselines",
                             description=("Synthetic feeds at --events-per-tick through the engine; prints "
                                          "events/s per core, the whole tick's p50/p99 (ingest + advance, all "
                                          "1,373 indicators) and its ratios to a vectorised read of the same "
                                          "columns (floor) and to polars and duckdb doing append, "
                                          "de-duplication, expiry and a recompute of the window families (less "
                                          "work: the report says which), all measured in this run."))
    bench.add_arguments(b)
    b.set_defaults(func=_cmd_bench_engine)

    from indicators.engine import bench_history
    bh = bench_sub.add_parser(
        "history", help="tick history: disk per day three ways, accuracy, a 30-day query of one indicator",
        description=("One hour of ticks stored as every tick, as changes in 30 s parts and as the service stores "
                     "them now (quantised, compacted): bytes per hour and day, ratios, the largest error; then "
                     "the hour copied into --days days of partitions and a query of one indicator over them "
                     "timed against the raw read of its stored rows. Progress on stderr."))
    bench_history.add_arguments(bh)
    bh.set_defaults(func=bench_history.main_args)

    from indicators.engine import bench_cost
    bc = bench_sub.add_parser(
        "cost", help="tick time and memory against events per tick (1k/10k/100k) and scenic areas (1/3/10)",
        description=("Each cell in a process of its own: synthetic feeds at the rate, one engine per area (copies "
                     "of the Canton Tower area), the whole tick of every area on one core; tick p50/p99, share of "
                     "a core, resident memory and the engines' part of it. Progress on stderr."))
    bench_cost.add_arguments(bc)
    bc.set_defaults(func=bench_cost.main_args)

    from indicators import bench_replay
    br = bench_sub.add_parser(
        "replay", help="replay --alerts against the same work done the live way: wall times, ratio, work",
        description=("Run one recording through the engine and the alert pipeline twice in this process: the "
                     "one-pass replay (runs of batches ingested together, only the ticks the alert rules read "
                     "evaluated) and the live service's loop (each batch alone, every tick computed and handed "
                     "to the pipeline). Prints both wall times, the ratio, simulated hours per wall second, the "
                     "work each side did, and whether both decided the same alerts (exit 1 if not). Progress on "
                     "stderr."),
        epilog="Example: scenic-twin bench replay /tmp/nw   (or: --scenario national-day --duration 2h)")
    bench_replay.add_arguments(br)
    br.set_defaults(func=_cmd_bench_replay)
