"""The `scenic-twin` command.  Every subcommand has --help."""
from __future__ import annotations

import argparse
import json
import sys
from datetime import datetime
from pathlib import Path


def _cmd_assets_build(args) -> int:
    from twin_assets import inventory as inv
    from twin_assets.build import build
    print("building the inventory from data/sources …", file=sys.stderr)
    gdf, report = build()
    path = inv.write(gdf, args.out)
    print(f"wrote {len(gdf)} assets to {path}", file=sys.stderr)
    if report["dropped_in_water_or_building_or_too_close"]:
        print("placements skipped (in water, in a building or too close to another of the same type): "
              + json.dumps(report["dropped_in_water_or_building_or_too_close"]), file=sys.stderr)
    return 0


def _cmd_assets_summary(args) -> int:
    from twin_assets import inventory as inv
    s = inv.summary(inv.load(args.inventory))
    if args.json:
        print(json.dumps(s, ensure_ascii=False, indent=2))
    else:
        print(f"{s['total_assets']} assets; route {s['route']['length_m']} m; {len(s['zones'])} zones")
        for t, n in s["counts_by_type"].items():
            print(f"  {t:20s} {n:6d}")
        for z in s["zones"]:
            print(f"  zone {z['zone_id']:26s} {z['area_m2']:10.0f} m2  C1={z['capacity_instantaneous']:6d}"
                  f"  C2={z['capacity_daily']:7d}")
    return 0


def _cmd_assets_import(args) -> int:
    import tomllib

    from indicators.alerts import DATA_DIR as ALERT_DATA
    from indicators.catalog import load_catalog
    from twin_assets.importer import ImportRefused, import_file
    departments = set(tomllib.loads((ALERT_DATA / "departments.toml").read_text(encoding="utf-8"))["departments"])
    try:
        # the same check the service runs at start: the catalog must build over the merged inventory
        result = import_file(args.file, replace=args.replace, out=args.out, departments=departments,
                             check=lambda merged: load_catalog(inventory=merged))
    except ImportRefused as e:
        print(f"refused {args.file}: {len(e.problems)} problem(s); nothing was written", file=sys.stderr)
        for p in e.problems:
            print(f"  {p}", file=sys.stderr)
        if args.json:
            print(json.dumps({"accepted": False, "problems": [str(p) for p in e.problems]}, ensure_ascii=False))
        return 2
    if args.json:
        print(json.dumps(result, ensure_ascii=False))
    else:
        print(f"imported {result['imported']} assets; the inventory now holds {result['total']}")
    return 0


LOOPBACK = ("127.0.0.1", "localhost", "::1")


def _cmd_run(args) -> int:
    import os

    import uvicorn
    from dashboard.app import create_app
    from dashboard.live import SnapshotHub
    from dashboard.security import INGEST_TOKEN_ENV, ingest_guard
    from indicators.access.store import AccessStore
    from indicators.feeds.http import make_ingest_router
    from indicators.service import Service, ServiceConfig
    from twin_assets import inventory as inv
    if args.host not in LOOPBACK and not os.environ.get(INGEST_TOKEN_ENV):
        print(f"scenic-twin: refusing to listen on {args.host} without an ingest token: anyone on the network "
              f"could inject feed records.  Set {INGEST_TOKEN_ENV} to a long random secret (feeds then send "
              f"'Authorization: Bearer <token>'), and SCENIC_TWIN_HOSTS to the host names the screens use; "
              "logins are always required.", file=sys.stderr)
        return 2
    if not inv.inventory_path().exists():
        _cmd_assets_build(argparse.Namespace(out=None))
    hub = SnapshotHub()
    cfg = ServiceConfig(scenario=args.scenario, speed=args.speed, seed=args.seed, simulate=not args.no_simulate,
                        start=datetime.fromisoformat(args.start) if args.start else None)
    if cfg.start is not None and cfg.start.tzinfo is None:
        print("scenic-twin: --start needs a time zone, e.g. 2026-10-01T19:00+08:00", file=sys.stderr)
        return 2
    if args.var:
        cfg.var = Path(args.var)
    from indicators.bus import names
    cfg.bus = args.bus or os.environ.get(names.ENV_BUS) or None
    cfg.store = args.store or os.environ.get(names.ENV_STORE) or None
    try:
        cfg.area = names.check_area(args.area or os.environ.get(names.ENV_AREA) or names.HOME_AREA)
    except ValueError as e:
        print(f"scenic-twin: {e}", file=sys.stderr)
        return 2
    if cfg.store and not cfg.store.startswith(("postgresql://", "postgres://")):
        print(f"scenic-twin: --store {cfg.store!r}: give a postgresql://USER:PASSWORD@HOST:5432/DB URL "
              "(without --store the state folder's SQLite files are used)", file=sys.stderr)
        return 2
    access = AccessStore.open(cfg.store or cfg.var / "access.sqlite")
    first = access.bootstrap_admin()
    if first:
        print("\nFirst start: created the account 'admin' (role admin).  Its one-time password, shown only "
              f"now:\n\n    {first}\n\nLog in at /login and add operators with `scenic-twin users add`.\n",
              file=sys.stderr)
    where = f"state in {cfg.var}" + (f", feeds on {cfg.bus} (area {cfg.area})" if cfg.bus else "") + \
        (", store in PostgreSQL" if cfg.store else "")
    print(f"starting the engine ({where}) …", file=sys.stderr)
    from indicators.bus.jetstream import BusUnavailable
    try:
        service = Service(cfg, publish=hub.publish, audit=access.record)
    except BusUnavailable as e:
        print(f"scenic-twin: {e}", file=sys.stderr)
        return 3
    host_on_bus = None
    if service.bus is not None:
        # web workers of this area (`scenic-twin web`) get every snapshot and forward their writes here
        from indicators.bus.remote import ServiceHost
        host_on_bus = ServiceHost(service, service.bus, cfg.area)
        service.publish = lambda snap: (hub.publish(snap), host_on_bus.publish(snap))
    app = create_app(hub=hub, service=service, access=access, hosts=_allowed_hosts(args.host))
    app.server.include_router(make_ingest_router(service.ingestor), dependencies=ingest_guard())
    service.start()
    feeds = f"simulated feeds: {cfg.scenario} at {cfg.speed:g}x" if cfg.simulate else "no simulator"
    print(f"scenic-twin dashboard on http://{args.host}:{args.port} ({feeds}; POST feeds to /ingest/KIND)",
          file=sys.stderr)
    try:
        uvicorn.run(app.server, host=args.host, port=args.port, log_level="warning")
    finally:
        if host_on_bus is not None:
            host_on_bus.close()
        service.stop()
    return 0


def _allowed_hosts(listen: str) -> tuple[str, ...]:
    import os

    from indicators.bus import names
    hosts = set(LOOPBACK) | {"[::1]"}
    if listen not in ("0.0.0.0", "::"):
        hosts.add(listen)
    hosts |= {h.strip().lower() for h in os.environ.get(names.ENV_HOSTS, "").split(",") if h.strip()}
    return tuple(sorted(hosts))


def _cmd_web(args) -> int:
    """A web worker: the dashboard of one area, fed by the area's front over NATS."""
    import os

    import uvicorn
    from dashboard.app import create_app
    from dashboard.live import SnapshotHub
    from indicators.access.store import AccessStore
    from indicators.bus import names
    from indicators.bus.jetstream import Bus, BusUnavailable
    from indicators.bus.remote import RemoteService
    bus_url = args.bus or os.environ.get(names.ENV_BUS)
    store = args.store or os.environ.get(names.ENV_STORE)
    try:
        area = names.check_area(args.area or os.environ.get(names.ENV_AREA) or names.HOME_AREA)
    except ValueError as e:
        print(f"scenic-twin web: {e}", file=sys.stderr)
        return 2
    if not bus_url or not (store or args.var):
        print(f"scenic-twin web: a web worker needs the bus and the shared store: pass --bus nats://… and "
              f"--store postgresql://… (or set {names.ENV_BUS} and {names.ENV_STORE}; on the front's own machine "
              "--var FRONT_STATE_FOLDER shares its SQLite accounts instead); one machine needs no web worker: "
              "`scenic-twin run` serves the dashboard itself", file=sys.stderr)
        return 2
    try:
        bus = Bus(bus_url)
    except BusUnavailable as e:
        print(f"scenic-twin web: {e}", file=sys.stderr)
        return 3
    hub = SnapshotHub()
    # sessions and accounts shared by every worker (and the front)
    access = AccessStore.open(store or Path(args.var) / "access.sqlite")
    remote = RemoteService(bus, area, hub.publish)
    remote.start()
    app = create_app(hub=hub, service=remote, access=access, hosts=_allowed_hosts(args.host))
    print(f"scenic-twin web worker on http://{args.host}:{args.port} (area {area}, live state from its front "
          f"over {bus_url})", file=sys.stderr)
    try:
        uvicorn.run(app.server, host=args.host, port=args.port, log_level="warning")
    finally:
        remote.stop()
        bus.close()
    return 0


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="scenic-twin", description=(
        "Digital-twin operations dashboard of the Canton Tower (广州塔) scenic area."))
    sub = p.add_subparsers(dest="command", required=True, metavar="COMMAND")

    run = sub.add_parser("run", help="run the dashboard with live simulated feeds, engine and alerts (the main job)",
                         description=("Run the simulator live, the indicator engine, the alerts and the dashboard on "
                                      "http://HOST:PORT, on embedded defaults (state in var/)."))
    run.add_argument("--host", default="127.0.0.1")
    run.add_argument("--port", type=int, default=8050)
    run.add_argument("--scenario", default="normal-weekday", help="simulated scenario (see `scenic-twin simulate --list`)")
    run.add_argument("--speed", type=float, default=1.0, help="simulation speed: 1 = real time, 60 = a minute a second")
    run.add_argument("--seed", type=int, default=0)
    run.add_argument("--start", default=None,
                     help="simulated start time, ISO with zone (default: now), e.g. 2026-10-01T19:00+08:00")
    run.add_argument("--no-simulate", action="store_true", help="no simulator: feeds come only over HTTP or files")
    run.add_argument("--var", default=None, help="state folder (default var/ or SCENIC_TWIN_VAR)")
    run.add_argument("--bus", default=None, metavar="URL",
                     help="NATS JetStream server URL(s), comma-separated: the feed log becomes the area's stream "
                          "(default SCENIC_TWIN_BUS; none: a local log in the state folder)")
    run.add_argument("--area", default=None,
                     help="the scenic area this front serves (default SCENIC_TWIN_AREA or canton-tower)")
    run.add_argument("--store", default=None, metavar="URL",
                     help="postgresql://… for alerts, cases, plans, thresholds, users and audit "
                          "(default SCENIC_TWIN_STORE; none: SQLite files in the state folder)")
    run.set_defaults(func=_cmd_run)

    web = sub.add_parser("web", help="a web worker: serves the dashboard of an area whose front runs elsewhere",
                         description=("Serve the dashboard of one scenic area from its front's live state over NATS "
                                      "(several web workers behind a load balancer; the front is "
                                      "`scenic-twin run --bus … --store …`).  Writes are forwarded to the front; "
                                      "sessions live in the shared PostgreSQL store."))
    web.add_argument("--host", default="127.0.0.1")
    web.add_argument("--port", type=int, default=8050)
    web.add_argument("--bus", default=None, metavar="URL", help="NATS server URL(s) (default SCENIC_TWIN_BUS)")
    web.add_argument("--area", default=None, help="the scenic area (default SCENIC_TWIN_AREA or canton-tower)")
    web.add_argument("--store", default=None, metavar="URL",
                     help="the shared store, postgresql://… (default SCENIC_TWIN_STORE)")
    web.add_argument("--var", default=None,
                     help="instead of --store, on the front's machine: its state folder (shares its SQLite accounts)")
    web.set_defaults(func=_cmd_web)

    assets = sub.add_parser("assets", help="the asset inventory: build, summary, import",
                            description="The asset inventory (data/inventory.parquet).")
    asub = assets.add_subparsers(dest="assets_command", required=True, metavar="ACTION")
    b = asub.add_parser("build", help="rebuild the inventory from data/sources",
                        description="Deterministically rebuild data/inventory.parquet from data/sources/*.toml.")
    b.add_argument("--out", default=None, help="write here instead of data/inventory.parquet")
    b.set_defaults(func=_cmd_assets_build)
    s = asub.add_parser("summary", help="totals, counts per type, zones with capacities, route, bbox",
                        description="Summarise the inventory.")
    s.add_argument("--json", action="store_true", help="print JSON")
    s.add_argument("--inventory", default=None, help="inventory file (default data/inventory.parquet)")
    s.set_defaults(func=_cmd_assets_summary)
    i = asub.add_parser("import", help="import a surveyed inventory (GeoJSON or GeoParquet)",
                        description=("Import a surveyed inventory.  Every row is validated; a bad file is "
                                     "refused with every problem listed (row and field) and nothing is written."))
    i.add_argument("file")
    i.add_argument("--replace", action="store_true",
                   help="replace assets with the same ids (default: an id already present is an error)")
    i.add_argument("--out", default=None, help="write here instead of data/inventory.parquet")
    i.add_argument("--json", action="store_true")
    i.set_defaults(func=_cmd_assets_import)

    bench = sub.add_parser("bench", help="benchmarks that print ratios against baselines run in the same process",
                           description="Benchmarks.  Each prints ratios against a baseline measured in the same run.")
    bench_sub = bench.add_subparsers(dest="bench_command", required=True, metavar="WHAT")

    from indicators.feeds.cli import register as register_feeds
    register_feeds(sub, bench_sub)
    from indicators.cli import register as register_engine
    register_engine(sub, bench_sub)
    from indicators.alerts.cli import register as register_alerts
    register_alerts(sub, bench_sub)
    from indicators.access.cli import register as register_access
    register_access(sub)
    from indicators.thresholds.cli import register as register_thresholds
    register_thresholds(sub)
    from dashboard.bench_wall import register as register_bench_wall
    register_bench_wall(bench_sub)
    from dashboard.bench_load import register as register_bench_load
    register_bench_load(bench_sub)
    from dashboard.bench_fanout import register as register_bench_fanout
    register_bench_fanout(bench_sub)
    from dashboard.bench_soak import register as register_bench_soak
    register_bench_soak(bench_sub)
    from dashboard.bench_push import register as register_bench_push
    register_bench_push(bench_sub)
    from indicators.bus.cli import register as register_bus
    register_bus(sub, bench_sub)
    return p


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    try:
        return args.func(args) or 0
    except FileNotFoundError as e:
        print(f"scenic-twin: {e}", file=sys.stderr)
        return 2
    except BrokenPipeError:          # `scenic-twin … | head`: the reader left, not an error
        sys.stderr.close()
        return 0


if __name__ == "__main__":
    sys.exit(main())
