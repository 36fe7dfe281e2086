"""CLI commands of the feeds: simulate, ingest, bench ingest (registered into `scenic-twin`).

* ``scenic-twin simulate`` records a scenario of ``data/scenarios.toml`` to a
  folder (one Parquet file per feed kind, ``malformed.jsonl``,
  ``manifest.json``) with a progress bar on stderr and a JSON summary on
  stdout.
* ``scenic-twin ingest FILE`` reads one file (GTFS-Realtime, CAP, SensorThings,
  NGSI-LD, JSON lines, Arrow IPC, Parquet - e.g. a recording's
  ``<kind>.parquet``) into the feed log and dead-letter store under
  ``--data`` and says what was accepted and what was rejected, and why.
* ``scenic-twin gtfs load FILE.zip`` reads a static GTFS, prints a summary and
  stores its ids in ``<var>/feeds/gtfs_static.json``, where ``ingest`` finds
  them to check the trip, route and stop ids of GTFS-Realtime files
  (``ingest --gtfs FILE.zip`` uses a zip for one run instead).
* ``scenic-twin bench ingest`` runs :func:`indicators.feeds.bench.run_ingest_bench`
  plus a GTFS-Realtime case.

Exit codes of ``ingest``: 0 everything accepted (duplicates and late events
are not errors), 1 some records rejected or conflicting, 2 the file cannot be
read at all.
"""
from __future__ import annotations

import argparse
import json
import os
import re
import sys
import time
from datetime import datetime, timedelta
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[2]
_DUR = re.compile(r"(\d+(?:\.\d+)?)\s*([smhd])")
_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400}
_JSONL = (".jsonl", ".ndjson")
_ARROW = (".arrow", ".arrows", ".feather", ".ipc")
_PARQUET = (".parquet", ".pq")
FORMAT_CHOICES = ("auto", "gtfs-rt", "cap", "sensorthings", "ngsi-ld", "counts-csv", "jsonl", "arrow", "parquet")
_CSV = (".csv", ".tsv")


class _Unreadable(Exception):
    """The file cannot be read at all (exit 2)."""


def parse_duration(text: str) -> timedelta:
    """``30m``, ``1h``, ``1d``, ``1h30m``, ``90s`` as a timedelta."""
    t = (text or "").strip().lower().replace(" ", "")
    parts = _DUR.findall(t)
    if not t or not parts or "".join(n + u for n, u in parts) != t:
        raise argparse.ArgumentTypeError(f"cannot read duration {text!r}: write e.g. 30m, 1h, 1d or 1h30m")
    secs = sum(float(n) * _UNITS[u] for n, u in parts)
    if secs <= 0:
        raise argparse.ArgumentTypeError("the duration must be positive")
    return timedelta(seconds=secs)


def format_duration(d: timedelta) -> str:
    """A timedelta the way ``--duration`` takes it (``1h30m``)."""
    secs = int(d.total_seconds())
    out = ""
    for unit, n in (("d", 86400), ("h", 3600), ("m", 60), ("s", 1)):
        if secs >= n:
            out += f"{secs // n}{unit}"
            secs %= n
    return out or "0s"


def _parse_start(text: str) -> datetime:
    try:
        t = datetime.fromisoformat(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"cannot read start {text!r}: write ISO 8601, e.g. 2026-10-01T08:00+08:00") from None
    if t.tzinfo is None:
        raise argparse.ArgumentTypeError(f"start {text!r} has no UTC offset: add one, e.g. +08:00 (Guangzhou time)")
    return t


def _parse_faults(text: str):
    from .simulator import Faults
    try:
        return Faults.parse(text)
    except ValueError as e:
        raise argparse.ArgumentTypeError(str(e)) from None


def data_dir(arg: str | None) -> Path:
    """``--data``, else ``SCENIC_TWIN_VAR``, else the repository's ``var/``."""
    if arg:
        return Path(arg)
    env = os.environ.get("SCENIC_TWIN_VAR")
    return Path(env) if env else REPO_ROOT / "var"


# ---------------------------------------------------------------- simulate

def _cmd_simulate(args) -> int:
    from .simulator import GENERATOR_VERSION, scenario_catalog, simulate, write_recording
    cat = scenario_catalog(args.scenarios)
    if args.list:
        for sc in cat:
            print(f"{sc.name:18s} {sc.description}  [default start {sc.start.isoformat()}]")
        return 0
    if not args.scenario:
        print("scenic-twin simulate: give --scenario NAME (see --list)", file=sys.stderr)
        return 2
    if args.scenario not in cat:
        print(f"scenic-twin simulate: unknown scenario {args.scenario!r}; known: {', '.join(cat.names)}",
              file=sys.stderr)
        return 2
    if not args.out:
        print("scenic-twin simulate: give --out DIR for the recording", file=sys.stderr)
        return 2
    sc = cat[args.scenario]
    if args.out and Path(args.out).exists() and any(Path(args.out).glob("*.parquet")) and not args.force:
        print(f"scenic-twin simulate: {args.out} already holds a recording; use another --out or --force",
              file=sys.stderr)
        return 2
    start = args.start or sc.start
    kinds = [k.strip() for k in args.kinds.split(",")] if args.kinds else None
    t0 = time.perf_counter()
    try:
        sim = simulate(sc, start, args.duration, args.seed, faults=args.faults, kinds=kinds)
    except ValueError as e:
        print(f"scenic-twin simulate: {e}", file=sys.stderr)
        return 2
    manifest = {"scenario": sc.name, "description": sc.description, "seed": args.seed,
                "start": sim.start.isoformat().replace("+00:00", "Z"),
                "start_local": sim.start.astimezone(sc.start.tzinfo).isoformat(),
                "duration": format_duration(args.duration), "duration_s": int(args.duration.total_seconds()),
                "generator": GENERATOR_VERSION, "faults": sim.faults.as_dict(),
                "kinds": list(sim.kinds), "scenario_file": str(cat.path)}
    man = write_recording(args.out, sim, manifest=manifest, progress=not args.quiet)
    secs = time.perf_counter() - t0
    total = sum(man["counts"].values()) + man["malformed"]
    summary = {**man, "out": str(Path(args.out).resolve()), "seconds": round(secs, 3),
               "records": total, "records_per_s": round(total / secs) if secs else None}
    print(json.dumps(summary, ensure_ascii=False, indent=None if args.compact else 2))
    return 0


# ---------------------------------------------------------------- ingest

def _kind_from_table(table, name: str, kind: str | None) -> str:
    from .schemas import SCHEMAS
    if kind:
        return kind
    meta = table.schema.metadata or {}
    k = meta.get(b"scenic_twin.kind")
    if k is not None:
        k = k.decode("utf-8", "replace")
        if k not in SCHEMAS:
            raise _Unreadable(f"the schema metadata says kind {k!r}, which is not a feed kind "
                              f"({', '.join(SCHEMAS)}); give --kind")
        return k
    stem = name.lower()
    for k in sorted(SCHEMAS, key=len, reverse=True):
        if stem.startswith(k):
            return k
    raise _Unreadable(f"cannot tell the feed kind of {name}: no schema metadata 'scenic_twin.kind' and the "
                      f"file name does not start with a kind; give --kind ({', '.join(SCHEMAS)})")


def _read_table(data: bytes, fmt: str):
    import pyarrow as pa
    import pyarrow.parquet as pq
    errors = []
    if fmt == "parquet":
        try:
            t = pq.read_table(pa.BufferReader(data))
            t.validate(full=True)
            return t
        except Exception as e:
            raise _Unreadable(f"not a readable Parquet file ({type(e).__name__}: {str(e)[:200]})") from None
    for opener in (pa.ipc.open_file, pa.ipc.open_stream):
        try:
            t = opener(pa.BufferReader(data)).read_all()
            t.validate(full=True)
            return t
        except Exception as e:
            errors.append(f"{type(e).__name__}: {str(e)[:120]}")
    raise _Unreadable("not an Arrow IPC file or stream (" + "; ".join(errors) + ")")


def _format_of(path: Path, data: bytes, fmt: str) -> str:
    if fmt != "auto":
        return fmt
    name = path.name.lower()
    if name.endswith(_JSONL):
        return "jsonl"
    if name.endswith(_ARROW):
        return "arrow"
    if name.endswith(_PARQUET):
        return "parquet"
    if name.endswith(_CSV):
        return "counts-csv"
    if data[:4] == b"PAR1":
        return "parquet"
    if data[:4] == b"PK\x03\x04":
        raise _Unreadable("it is a ZIP archive (a static GTFS feed?), not a feed message; load a static GTFS "
                          "with `scenic-twin gtfs load FILE.zip` (or give it to ingest as --gtfs), or unpack "
                          "it and ingest the feed files, or give a GTFS-Realtime .pb")
    if data[:6] == b"ARROW1":
        return "arrow"
    from .adapters import detect_format, gtfs_rt
    if gtfs_rt.looks_like_json(data):
        return "gtfs-rt"
    try:
        return detect_format(data, path.name)
    except ValueError as e:
        raise _Unreadable(f"cannot tell the format ({e}); give --format "
                          f"({', '.join(FORMAT_CHOICES[1:])})") from None


def _cmd_ingest(args) -> int:
    from .deadletter import DeadLetterStore
    from .ingest import Ingestor
    from .log import FeedLog, LogLockedError
    from .schemas import SCHEMAS
    path = Path(args.file)
    try:
        data = path.read_bytes()
    except OSError as e:
        print(f"scenic-twin ingest: cannot read {path}: {e.strerror or e}. Check the path and its permissions.",
              file=sys.stderr)
        return 2
    if not data.strip():
        print(f"scenic-twin ingest: {path} is empty: nothing to ingest", file=sys.stderr)
        return 2
    if args.kind and args.kind not in SCHEMAS:
        print(f"scenic-twin ingest: --kind {args.kind!r} is not a feed kind ({', '.join(SCHEMAS)})", file=sys.stderr)
        return 2
    fmt = args.format
    base = data_dir(args.data) / "feeds"
    try:
        fmt = _format_of(path, data, args.format)
    except _Unreadable as e:
        print(f"scenic-twin ingest: cannot read {path}: {e}", file=sys.stderr)
        return 2
    try:
        static = _static_for(fmt, args.gtfs, base)
    except ValueError as e:
        print(f"scenic-twin ingest: {e}", file=sys.stderr)
        return 2
    source = args.source or f"file:{path.name}"
    try:
        mapping = _mapping_for(fmt, args.mapping, path, base)
    except ValueError as e:
        print(f"scenic-twin ingest: {e}", file=sys.stderr)
        return 2
    try:
        work = _prepare(data, fmt, path, args.kind, static, source, mapping, base / ALERTS_FILE)
    except _Unreadable as e:
        print(f"scenic-twin ingest: cannot read {path}: {e}", file=sys.stderr)
        return 2
    try:
        log = FeedLog(base / "log")
    except LogLockedError as e:
        print(f"scenic-twin ingest: {e}: stop the process that holds it (a running dashboard?) or use "
              f"--data DIR", file=sys.stderr)
        return 2
    dead = DeadLetterStore(base / "dead-letters.sqlite")
    try:
        from twin_assets import inventory as inv

        from .ingest import references_from_inventory
        # the same reference check as the service: ids must name zones and assets the inventory has
        ing = Ingestor(log, dead, references=references_from_inventory(inv.load()))
        receipt, notes = work(ing, source)
    finally:
        log.close()
        dead.close()
    if receipt.received and not (receipt.accepted or receipt.duplicates or receipt.late) and \
            all(b.code == "parse_error" for b in receipt.rejected):
        # nothing in the file could be decoded as records of its format
        print(f"scenic-twin ingest: cannot read {path} as {fmt}: {receipt.rejected[0].reason}. "
              f"If it is in another format, give --format ({', '.join(FORMAT_CHOICES[1:])}); the refused "
              f"payload is kept in {base / 'dead-letters.sqlite'}.", file=sys.stderr)
        if args.json:
            print(json.dumps({"file": str(path), "format": fmt, "data": str(base), **receipt.to_dict(),
                              "notes": notes, "unreadable": True}, ensure_ascii=False, indent=2))
        return 2
    out = receipt.to_dict()
    out = {"file": str(path), "format": fmt, "data": str(base), **out, "notes": notes}
    if args.json:
        print(json.dumps(out, ensure_ascii=False, indent=2))
    else:
        print(f"{path}: {fmt}: " + ", ".join(f"{k} {v}" for k, v in _counts(receipt)))
        for b in receipt.rejected[:50]:
            where = f" ({b.where})" if b.where else ""
            print(f"  rejected {b.kind}{where} [{b.code}]: {b.reason}")
        if len(receipt.rejected) > 50:
            print(f"  … and {len(receipt.rejected) - 50} more (see the dead-letter store in {base})")
        for n in notes:
            print(f"  note: {n}")
    if receipt.rejected:
        print(f"scenic-twin ingest: {len(receipt.rejected)} record(s) rejected and kept in the dead-letter store "
              f"{base / 'dead-letters.sqlite'} with the reasons above", file=sys.stderr)
        return 1
    return 0


def _mapping_for(fmt: str, mapping: str | None, path: Path, base: Path):
    """What ``--mapping`` gives the format: a CSV of counts needs one (its columns and gates);
    SensorThings takes one (Datastreams only linked) beside what earlier messages taught;
    other formats none.  ValueError with what to do."""
    if fmt == "counts-csv":
        from .adapters import counts_csv
        if not mapping:
            raise ValueError(f"{path} is a CSV of counts: give --mapping FILE.toml saying its time zone, date and "
                             f"hour columns and which columns are which gate's entries and exits (the format is "
                             f"in docs/feeds.md, 'Counts exported as a wide CSV')")
        try:
            return counts_csv.load_mapping(mapping)
        except ValueError as e:
            raise ValueError(f"--mapping: {e}") from None
    if fmt == "sensorthings":
        from .adapters import sensorthings
        registry = sensorthings.DatastreamRegistry(base / DATASTREAMS_FILE)
        registry.get_all()                                  # a corrupt registry says so now
        try:
            return registry, sensorthings.load_datastream_mapping(mapping) if mapping else {}
        except ValueError as e:
            raise ValueError(f"--mapping: {e}") from None
    if mapping:
        raise ValueError(f"--mapping is for CSV counts and SensorThings Datastreams, not {fmt}")
    return None


def _counts(receipt) -> list[tuple[str, int]]:
    """What happened to the file's records, in the order the help explains them."""
    conflicting = receipt.conflicting
    return [("accepted", receipt.accepted), ("updated", receipt.updated), ("ended", receipt.ended),
            ("duplicate", receipt.duplicates), ("conflicting", conflicting), ("late", receipt.late),
            ("rejected", len(receipt.rejected) - conflicting)]


def _static_for(fmt: str, zip_arg: str | None, base: Path):
    """The static GTFS the GTFS-RT ids are checked against: ``--gtfs``, else
    the one ``gtfs load`` stored, else None.  ValueError when unusable."""
    if fmt != "gtfs-rt":
        return None
    from .gtfs_static import GtfsError, load_static, read_stored
    if zip_arg:
        try:
            return load_static(zip_arg)
        except GtfsError as e:
            raise ValueError(f"--gtfs: {e}") from None
    stored = base / STATIC_FILE
    if not stored.is_file():
        return None
    try:
        return read_stored(stored)
    except ValueError as e:
        raise ValueError(f"{e}; load it again with `scenic-twin gtfs load FILE.zip` or remove it") from None


def _prepare(data: bytes, fmt: str, path: Path, kind: str | None, static=None, source: str | None = None,
             mapping=None, alerts_file: Path | None = None):
    """Parse the file now (so unreadable files fail before the log is opened);
    return ``work(ingestor, source) -> (receipt, notes)``.  ``source`` (the sender) goes on
    every row and every dead letter."""
    if fmt == "jsonl":
        return lambda ing, source: (ing.submit_ndjson(data, kind=kind, source=source), [])
    if fmt in ("arrow", "parquet"):
        table = _read_table(data, fmt)
        k = _kind_from_table(table, path.name, kind)
        notes = []
        extra = [c for c in table.column_names if c not in _schema_names(k)]
        if extra:
            notes.append(f"column(s) {', '.join(extra)} are not in the {k} schema and were ignored")
        return lambda ing, source: (ing.submit(k, table, source=source), notes)
    if fmt == "counts-csv":
        from .adapters import counts_csv
        parsed = counts_csv.parse(data, mapping, source=source)
        return lambda ing, source: (ing.submit_parsed(parsed, source=source), list(parsed.notes))
    if fmt == "sensorthings":
        return _prepare_sensorthings(data, source, mapping)
    from .adapters import parse
    parsed = parse(data, fmt, source=source) if static is None else _parse_gtfs_rt(data, static, source)
    if fmt == "gtfs-rt" and alerts_file is not None:
        return _with_vanished_alerts(data, parsed, source, alerts_file)
    return lambda ing, source: (ing.submit_parsed(parsed, source=source), list(parsed.notes))


DATASTREAMS_FILE = "sensorthings-datastreams.json"
ALERTS_FILE = "gtfs-rt-alerts.json"


def _with_vanished_alerts(data: bytes, parsed, source: str, alerts_file: Path):
    """GTFS-Realtime service alerts with their life: a full-dataset message that no longer
    carries an alert the previous one of the same source had ends its warning (a cancelled
    row referring to it).  The alerts in force per source are kept in ``alerts_file``."""
    import pyarrow as pa

    from twin_assets.fsio import atomic_write

    from .adapters import gtfs_rt
    from .schemas import SCHEMAS
    full, header_time = gtfs_rt.header(data)
    try:
        known = json.loads(alerts_file.read_text(encoding="utf-8")) if alerts_file.is_file() else {}
        if not isinstance(known, dict):
            known = {}
    except (OSError, ValueError):
        known = {}
    gone, now = gtfs_rt.ended_alerts(source, known.get(source, {}) if full else {}, parsed, header_time)

    def work(ing, source):
        receipt = ing.submit_parsed(parsed, source=source)
        notes = list(parsed.notes)
        if gone:
            r2 = ing.submit("warning", pa.Table.from_pylist(gone, schema=SCHEMAS["warning"]), source=source)
            from .ingest import Receipt
            receipt = Receipt.merge([receipt, r2])
            notes.append(f"{len(gone)} service alert(s) of the previous message are no longer in this full "
                         "feed: their warnings end")
        if full and header_time is not None:
            known[source] = now
            alerts_file.parent.mkdir(parents=True, exist_ok=True)
            atomic_write(alerts_file, lambda tmp: Path(tmp).write_text(json.dumps(known, ensure_ascii=False),
                                                                      encoding="utf-8"))
        return receipt, notes
    return work


def _prepare_sensorthings(data: bytes, source: str | None, mapping):
    """SensorThings with the Datastreams known so far: ``mapping`` = (registry, configured
    entries); what this message teaches is stored after it was ingested."""
    from .adapters import Parsed, Reject, sensorthings
    from .adapters.base import raw_text
    registry, configured = mapping
    try:
        parsed = sensorthings.parse(data, source, datastreams={**registry.get_all(), **configured})
    except Exception as exc:  # a bug must not stop the feed: report it as a reject
        parsed = Parsed(tables={}, notes=[], rejects=[Reject(
            raw=raw_text(data), where="payload",
            reason=f"the sensorthings adapter failed unexpectedly ({type(exc).__name__}: {exc}); "
                   "this is a fault in scenic-twin, please report it with this payload")])

    def work(ing, source):
        receipt = ing.submit_parsed(parsed, source=source)
        notes = list(parsed.notes)
        if parsed.learned_datastreams:
            registry.update(parsed.learned_datastreams)
            notes.append(f"{len(parsed.learned_datastreams)} Datastream(s) remembered in {registry.path}: later "
                         "messages that only link to them can be read")
        return receipt, notes
    return work


def _parse_gtfs_rt(data: bytes, static, source: str | None = None):
    """The GTFS-RT adapter with id checks, guarded as :func:`adapters.parse` guards it."""
    from .adapters import Parsed, Reject, gtfs_rt
    from .adapters.base import raw_text
    try:
        return gtfs_rt.parse(data, source, static=static)
    except Exception as exc:  # a bug must not stop the feed: report it as a reject
        return Parsed(tables={}, notes=[], rejects=[Reject(
            raw=raw_text(data), where="payload",
            reason=f"the gtfs-rt adapter failed unexpectedly ({type(exc).__name__}: {exc}); "
                   "this is a fault in scenic-twin, please report it with this payload")])


# ---------------------------------------------------------------- gtfs

STATIC_FILE = "gtfs_static.json"


def _cmd_gtfs_load(args) -> int:
    from .gtfs_static import GtfsError, load_static
    try:
        static = load_static(args.file)
    except GtfsError as e:
        print(f"scenic-twin gtfs load: {args.file} is not a usable static GTFS:", file=sys.stderr)
        for p in e.problems:
            print(f"  - {p}", file=sys.stderr)
        return 2
    store = data_dir(args.var) / "feeds" / STATIC_FILE
    try:
        static.save(store)
    except OSError as e:
        print(f"scenic-twin gtfs load: cannot write {store}: {e.strerror or e}", file=sys.stderr)
        return 2
    out = {**static.summary(), "stored": str(store)}
    if args.json:
        print(json.dumps(out, ensure_ascii=False, indent=2))
    else:
        span = f"{out['service_start']} to {out['service_end']}" if out["service_start"] else "none"
        print(f"{args.file}: {', '.join(static.agencies) or 'no agency name'}: {out['routes']} routes, "
              f"{out['trips']} trips, {out['stops']} stops; service {span}")
        print(f"stored in {store}: `scenic-twin ingest` checks GTFS-Realtime ids against it")
    return 0


def _schema_names(kind: str) -> set[str]:
    from .schemas import SCHEMAS
    return set(SCHEMAS[kind].names)


# ---------------------------------------------------------------- bench

def gtfs_rt_case(n: int, *, quiet: bool = False):
    """An ``extra_cases`` factory for the ingest bench: ``n`` VehiclePositions
    in one binary GTFS-Realtime FeedMessage, parsed by our adapter and
    submitted."""
    def factory():
        from google.transit import gtfs_realtime_pb2 as rt
        from . import bench
        from .adapters import parse
        if not quiet:
            print(f"\r[bench] building a GTFS-RT FeedMessage of {n:,} vehicle positions{'':<20}",
                  end="", file=sys.stderr, flush=True)
        feed = rt.FeedMessage()
        feed.header.gtfs_realtime_version = "2.0"
        t0 = int(bench._T0.timestamp())
        feed.header.timestamp = t0 + 60
        routes = ("262", "468", "tourist_1", "sightseeing_night")
        for i in range(n):
            e = feed.entity.add()
            e.id = f"v{i}"
            vp = e.vehicle
            vp.vehicle.id = f"bus-{i}"
            vp.trip.route_id = routes[i % 4]
            vp.trip.trip_id = f"{routes[i % 4]}-{i // 4}"
            vp.position.latitude = 23.1066 + (i % 1000) * 1e-5
            vp.position.longitude = 113.3245 + (i % 997) * 1e-5
            vp.position.bearing = float(i % 360)
            vp.position.speed = 6.0
            vp.timestamp = t0 + (i % 60)
            vp.occupancy_status = rt.VehiclePosition.MANY_SEATS_AVAILABLE
        data = feed.SerializeToString()

        def run(payload: bytes, ing) -> int:
            parsed = parse(payload, "gtfs-rt", source="bench")
            return ing.submit_parsed(parsed).accepted
        return data, run
    return factory


def _cmd_bench_ingest(args) -> int:
    from .bench import format_report, run_ingest_bench
    n_gtfs = args.gtfs_events if args.gtfs_events is not None else min(args.events, 200_000)
    extra = {"gtfs_rt": gtfs_rt_case(n_gtfs, quiet=args.quiet)} if n_gtfs > 0 else {}
    result = run_ingest_bench(args.events, batch_rows=args.batch_rows, repeat=args.repeat, extra_cases=extra,
                              quiet=args.quiet)
    if args.json:
        print(json.dumps(result, indent=2))
    else:
        print(format_report(result))
    return 0


# ---------------------------------------------------------------- wiring

def register(sub, bench_sub) -> None:
    """Add this package's subcommands to the `scenic-twin` parser."""
    from .simulator import Faults
    d = Faults()
    s = sub.add_parser(
        "simulate", help="record a simulated scenario (every feed kind) to a folder",
        description=("Simulate the scenic area's feeds for a scenario of data/scenarios.toml and write a "
                     "recording: <kind>.parquet per feed kind (rows in arrival order, plus an arrival_time "
                     "column), malformed.jsonl and manifest.json.  Progress on stderr, a JSON summary on stdout.  "
                     "The same arguments give the same recording."),
        epilog=("Default start: the scenario's own date and time (see --list), e.g. "
                "2026-10-01T08:00+08:00 for national-day.  Faults default to "
                f"late={d.late},out_of_order={d.out_of_order},duplicate={d.duplicate},"
                f"missing={d.missing},malformed={d.malformed}; --faults off gives a clean stream."))
    s.add_argument("--scenario", help="scenario name (see --list)")
    s.add_argument("--list", action="store_true", help="list the scenarios with a line of description each")
    s.add_argument("--start", type=_parse_start, default=None,
                   help="ISO 8601 start with a UTC offset (default: the scenario's documented start)")
    s.add_argument("--duration", type=parse_duration, default=timedelta(hours=1),
                   help="how long to simulate: 30m, 1h, 1d, 1h30m (default 1h)")
    s.add_argument("--seed", type=int, default=0, help="random seed (default 0)")
    s.add_argument("--out", help="output folder of the recording")
    s.add_argument("--faults", type=_parse_faults, default=Faults(),
                   help="fault rates, e.g. late=0.01,out_of_order=0.02,duplicate=0.01,missing=0,malformed=0.005, "
                        "or 'off'")
    s.add_argument("--kinds", default=None, help="only these feed kinds, comma separated (default: all)")
    s.add_argument("--scenarios", default=None, help="scenario file (default data/scenarios.toml)")
    s.add_argument("--force", action="store_true", help="overwrite a recording already in --out")
    s.add_argument("--quiet", action="store_true", help="no progress bar")
    s.add_argument("--compact", action="store_true", help="one-line JSON summary")
    s.set_defaults(func=_cmd_simulate)

    i = sub.add_parser(
        "ingest", help="ingest a feed file into the feed log (GTFS-RT, CAP, SensorThings, NGSI-LD, JSONL, Arrow, Parquet)",
        description=("Parse FILE and submit it to the ingestor whose durable log and dead-letter store live in "
                     "--data (default var/ under the repository, or SCENIC_TWIN_VAR).  Prints for the file: "
                     "accepted (new records; of them, updated: records that update one sent before - a warning's "
                     "Update, a case's next step - and ended: records that end one - a cancelled warning or "
                     "all-clear, a closed case), duplicate (an event id already taken, same content: dropped), "
                     "conflicting (an event id already taken with other content: the first is kept, this one "
                     "kept aside with both payloads), late (older than the allowed lateness: kept aside, not "
                     "merged) and rejected (with the reason and where), then the adapters' notes.  Exit codes: "
                     "0 every record was taken or was a plain duplicate or late; 1 some records were rejected "
                     "or conflicting (all kept in the dead-letter store with their reasons); 2 the file cannot "
                     "be read at all (nothing ingested)."),
        epilog=("JSON lines need a 'kind' on every line unless --kind is given; Arrow IPC and Parquet files take "
                "their kind from the schema metadata 'scenic_twin.kind', --kind, or a file name starting with the "
                "kind (crowd.parquet, crowd-2026-10-01.parquet) - a recording's files work as they are."))
    i.add_argument("file")
    i.add_argument("--format", choices=FORMAT_CHOICES, default="auto", help="file format (default: detect)")
    i.add_argument("--kind", default=None, help="feed kind of a JSONL / Arrow / Parquet file")
    i.add_argument("--data", default=None, help="folder of the feed log and dead-letter store (default var/)")
    i.add_argument("--source", default=None, help="sending system recorded with the rows (default file:<name>)")
    i.add_argument("--json", action="store_true", help="print the receipt as JSON")
    i.add_argument("--mapping", default=None, metavar="FILE.toml",
                   help="how to read the file: for a CSV of counts (wide: date, hour, a column per sensor) its "
                        "time zone, columns and gates (required); for SensorThings, Datastreams the messages only "
                        "link to (docs/feeds.md)")
    i.add_argument("--gtfs", default=None, metavar="FILE.zip",
                   help="static GTFS to check GTFS-Realtime trip, route and stop ids against (default: the one "
                        "`scenic-twin gtfs load` stored in --data, if any)")
    i.set_defaults(func=_cmd_ingest)

    g = sub.add_parser("gtfs", help="static GTFS: load the schedule GTFS-Realtime ids are checked against",
                       description="Static GTFS, the schedule GTFS-Realtime feeds refer to by id.")
    gsub = g.add_subparsers(dest="gtfs_command", required=True, metavar="WHAT")
    gl = gsub.add_parser(
        "load", help="read a static GTFS zip, print a summary and store its ids for `ingest`",
        description=("Read FILE.zip (agency, stops, routes, trips, stop_times and calendar or calendar_dates; "
                     "at the top of the zip or together in one folder), print its agency, the number of routes, "
                     "trips and stops and the service date range, and store the ids in "
                     f"<var>/feeds/{STATIC_FILE}.  `scenic-twin ingest` then rejects GTFS-Realtime records that "
                     "name a trip, route or stop the schedule does not have.  Exit 2, listing every problem, when "
                     "the zip lacks a required file or column."))
    gl.add_argument("file", metavar="FILE.zip")
    gl.add_argument("--var", "--data", dest="var", default=None,
                    help="state folder, the same as ingest's --data (default var/ or SCENIC_TWIN_VAR)")
    gl.add_argument("--json", action="store_true", help="print the summary as JSON")
    gl.set_defaults(func=_cmd_gtfs_load)

    b = bench_sub.add_parser(
        "ingest", help="ingest throughput: Arrow IPC, JSON lines and GTFS-RT against the pyarrow read floor",
        description=("Ingest throughput (decode, validate, de-duplicate, fsync-ed log append) of Arrow IPC, JSON "
                     "lines and GTFS-Realtime (our adapter), each as events/s and as a ratio to a plain "
                     "pyarrow IPC read of the same events measured in the same run.  Progress on stderr."))
    b.add_argument("--events", type=int, default=200_000, help="events per case (default 200,000)")
    b.add_argument("--gtfs-events", type=int, default=None,
                   help="vehicle positions in the GTFS-RT case (default min(--events, 200,000); 0 skips it)")
    b.add_argument("--batch-rows", type=int, default=100_000, help="rows per submitted batch (default 100,000)")
    b.add_argument("--repeat", type=int, default=1, help="runs per case, the best is kept (default 1)")
    b.add_argument("--json", action="store_true", help="print the result as JSON")
    b.add_argument("--quiet", action="store_true", help="no progress on stderr")
    b.set_defaults(func=_cmd_bench_ingest)
