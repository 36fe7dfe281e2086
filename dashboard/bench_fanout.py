"""`scenic-twin bench fanout`: wall screens spread over web workers, event to screen.

Starts a local NATS server, a front (`scenic-twin run --bus`, a busy National Day evening,
accelerated) and two web workers (`scenic-twin web --bus`, sharing the front's accounts), then
connects wall clients that speak Dash's WebSocket protocol as the page does (the client of
`scenic-twin bench load`: own device session each, the persistent push callback).

Every push carries ``built``, the wall time the front built the snapshot it comes from, so
*event → screen* = arrival − built covers the whole way: the front's snapshot, the bus (pickle,
zlib, NATS), the web worker's view models and its WebSocket.  Same machine, same clock.

Two phases of ``--seconds`` each, in one run against the same front:

1. baseline: all ``--walls`` clients on the front itself (one process serves screens, as
   `scenic-twin run` does on one machine);
2. fan-out: the same number of clients, half on each web worker (the front serves none).

The work per push is the same in both phases (same push callback, same views, same simulation);
the fan-out phase adds the hop over NATS and spreads the screens over two more processes.  It
prints p50/p95/p99 of event → screen per phase and per worker, pushes per client per second, the
CPU of each process and the number of CPUs (clients, front, workers and NATS share them).
"""
from __future__ import annotations

import argparse
import asyncio
import json
import os
import re
import subprocess
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

from .bench_load import _cpu_s, _free_port, _pct, _self_cpu_s

ROOT = Path(__file__).resolve().parents[1]
FAN_RE = re.compile(rb'"live-state","props":\{"data":\{"beat":(-?\d+),"at":(\d+),"built":(\d+)')
GOAL_P95_MS = 1000.0


def _start(cmd: list[str], env: dict, log: Path, url: str, what: str, timeout: float = 180.0):
    import httpx
    fh = open(log, "wb")
    p = subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=fh, stderr=subprocess.STDOUT, start_new_session=True)
    end = time.monotonic() + timeout
    while True:
        try:
            h = httpx.get(url + "/healthz", timeout=2, trust_env=False)
            if h.status_code == 200 and h.json().get("snapshot"):
                return p, fh
        except httpx.HTTPError:
            pass
        if p.poll() is not None or time.monotonic() > end:
            p.kill()
            fh.close()
            raise RuntimeError(f"{what} did not start (or showed no snapshot within {timeout:.0f} s); its log "
                               f"ends with:\n{log.read_text(errors='replace')[-2000:]}")
        time.sleep(0.5)


class Client:
    """One wall screen on one server."""

    def __init__(self, idx: int, token: str, base: str, key: str, server: str) -> None:
        self.idx, self.token, self.base, self.key, self.server = idx, token, base, key, server
        self.samples: list[float] = []          # event → screen, ms (inside the window)
        self.queue_ms: list[float] = []         # queued by the server → arrival, ms
        self.pushes = 0
        self.failed: str | None = None
        self.window = False

    async def run(self, gate: asyncio.Semaphore, stop: asyncio.Event) -> None:
        from websockets.asyncio.client import connect
        try:
            async with gate:
                ws = await connect(self.base.replace("http", "ws", 1) + "/_dash-ws-callback", origin=self.base,
                                   additional_headers={"Cookie": f"st_session={self.token}"}, proxy=None,
                                   ping_interval=None, max_size=None, open_timeout=60, close_timeout=3)
            await ws.send(json.dumps({
                "type": "callback_request", "requestId": f"fan-{self.idx}", "rendererId": f"fan-{self.idx}",
                "payload": {"output": self.key, "outputs": [], "inputs": [], "state": [], "changedPropIds": []}}))
            last_hb = time.monotonic()
            while not stop.is_set():
                try:
                    data = await asyncio.wait_for(ws.recv(decode=False), timeout=1.0)
                except asyncio.TimeoutError:
                    continue
                now_ms = time.time() * 1000
                for _beat, at, built in FAN_RE.findall(data):
                    self.pushes += 1
                    if self.window and int(built):
                        self.samples.append(now_ms - int(built))
                        self.queue_ms.append(now_ms - int(at))
                if time.monotonic() - last_hb > 20:
                    last_hb = time.monotonic()
                    await ws.send('{"type":"heartbeat"}')
            await ws.close()
        except Exception as e:                    # counted and reported, never silent
            self.failed = f"{type(e).__name__}: {str(e)[:120]}"


async def _phase(name: str, clients: list[Client], seconds: float, pids: dict[str, int], out) -> dict:
    stop = asyncio.Event()
    gate = asyncio.Semaphore(25)
    tasks = [asyncio.create_task(c.run(gate, stop)) for c in clients]
    t_conn = time.monotonic()
    while sum(1 for c in clients if c.pushes or c.failed) < len(clients) and time.monotonic() - t_conn < 120:
        await asyncio.sleep(0.2)
    print(f"  {name}: {sum(1 for c in clients if c.pushes)}/{len(clients)} clients pushed to in "
          f"{time.monotonic() - t_conn:.1f} s; measuring {seconds:g} s …", file=out, flush=True)
    cpu0 = {k: _cpu_s(p) for k, p in pids.items()}
    self0, t0 = _self_cpu_s(), time.monotonic()
    for c in clients:
        c.window = True
    await asyncio.sleep(seconds)
    for c in clients:
        c.window = False
    dt = time.monotonic() - t0
    cpu = {k: None if cpu0[k] is None or _cpu_s(p) is None else round(100 * (_cpu_s(p) - cpu0[k]) / dt)
           for k, p in pids.items()}
    cpu["clients"] = round(100 * (_self_cpu_s() - self0) / dt)
    stop.set()
    await asyncio.gather(*tasks, return_exceptions=True)
    lat = [x for c in clients for x in c.samples]
    per_server: dict[str, list[float]] = {}
    for c in clients:
        per_server.setdefault(c.server, []).extend(c.samples)
    return {"clients": len(clients), "failed": dict(Counter(c.failed for c in clients if c.failed)),
            "samples": len(lat), "pushes_per_client_per_s": round(len(lat) / max(1, len(clients)) / dt, 2),
            "event_to_screen_ms": {"p50": _r(_pct(lat, 0.5)), "p95": _r(_pct(lat, 0.95)), "p99": _r(_pct(lat, 0.99))},
            "queued_to_screen_p95_ms": _r(_pct([x for c in clients for x in c.queue_ms], 0.95)),
            "per_server_p95_ms": {k: _r(_pct(v, 0.95)) for k, v in per_server.items()},
            "cpu_pct_of_a_core": cpu}


def _r(x):
    return None if x is None else round(x, 1)


def run(walls: int = 200, seconds: float = 30.0, speed: float = 60.0, scenario: str = "national-day",
        start: str = "2026-10-01T18:00+08:00", warmup: float | None = None, out=None) -> dict:
    out = out or sys.stderr           # looked up at the call (a test's captured stream)
    import httpx

    from indicators.access.store import AccessStore
    from indicators.bus.server import NatsServer
    if walls < 2 or seconds <= 0:
        raise ValueError("at least 2 wall clients and a positive --seconds")
    area = "canton-tower"
    with tempfile.TemporaryDirectory(prefix="bench-fanout-") as tmp:
        tmp = Path(tmp)
        var = tmp / "front"
        with AccessStore.open(var / "access.sqlite") as store:
            tokens = [store.issue_device_token(f"fanout-wall-{i}", by="bench-fanout") for i in range(2 * walls)]
        nats = NatsServer(tmp / "nats").start().ready()
        procs: list[tuple[subprocess.Popen, object]] = []
        env = {k: v for k, v in os.environ.items() if not k.startswith("SCENIC_TWIN_RATE_")}
        try:
            ports = [_free_port() for _ in range(3)]
            urls = [f"http://127.0.0.1:{p}" for p in ports]
            t0 = time.monotonic()
            cmd = [sys.executable, "-m", "dashboard.cli"]
            procs.append(_start(cmd + ["run", "--port", str(ports[0]), "--var", str(var), "--bus", nats.url,
                                       "--area", area, "--speed", str(speed), "--scenario", scenario, "--start", start],
                                env, tmp / "front.log", urls[0], "the front"))
            for i in (1, 2):
                procs.append(_start(cmd + ["web", "--port", str(ports[i]), "--bus", nats.url, "--area", area,
                                           "--var", str(var)], env, tmp / f"web{i}.log", urls[i], f"web worker {i}"))
            print(f"bench fanout: front and 2 web workers ready in {time.monotonic() - t0:.0f} s", file=out,
                  flush=True)
            deps = httpx.get(urls[1] + "/_dash-dependencies", timeout=10, trust_env=False).json()
            keys = [c["output"] for c in deps if c.get("persistent")]
            if len(keys) != 1:
                raise RuntimeError("expected one persistent push callback; update dashboard/bench_fanout.py")
            warm = min(60.0, 20 * 60 / speed + 5) if warmup is None else warmup
            print(f"  warming up {warm:.0f} s (alerts in the pushes) …", file=out, flush=True)
            time.sleep(warm)
            pids = {"front": procs[0][0].pid, "web1": procs[1][0].pid, "web2": procs[2][0].pid, "nats": nats.proc.pid}
            base = [Client(i, tokens[i], urls[0], keys[0], "front") for i in range(walls)]
            fan = [Client(walls + i, tokens[walls + i], urls[1 + i % 2], keys[0], f"web{1 + i % 2}")
                   for i in range(walls)]
            phases = {"baseline": asyncio.run(_phase("baseline (all on the front)", base, seconds, pids, out)),
                      "fanout": asyncio.run(_phase("fan-out (half on each web worker)", fan, seconds, pids, out))}
        finally:
            for p, fh in procs:
                p.terminate()
            for p, fh in procs:
                try:
                    p.wait(20)
                except subprocess.TimeoutExpired:
                    p.kill()
                fh.close()
            nats.stop()
            errors = [ln for f in ("front.log", "web1.log", "web2.log") if (tmp / f).exists()
                      for ln in (tmp / f).read_text(errors="replace").splitlines()
                      if "Traceback" in ln or "ERROR" in ln][:20]
    b, f = phases["baseline"]["event_to_screen_ms"], phases["fanout"]["event_to_screen_ms"]
    return {"config": {"walls": walls, "seconds": seconds, "speed": speed, "scenario": scenario, "start": start,
                       "warmup_s": warm,
                       "cpus": os.cpu_count(), "cpus_usable": len(os.sched_getaffinity(0))},
            "phases": phases,
            "ratio_p95_fanout_vs_baseline": None if not b["p95"] or f["p95"] is None else round(f["p95"] / b["p95"], 2),
            "goal_p95_ms": GOAL_P95_MS, "goal_met": f["p95"] is not None and f["p95"] <= GOAL_P95_MS,
            "server_log_errors": errors}


def _text(r: dict) -> str:
    c = r["config"]
    lines = [f"bench fanout: {c['walls']} wall clients, {c['seconds']:g} s per phase, {c['scenario']} at "
             f"{c['speed']:g}x; {c['cpus_usable']} CPUs shared by the clients, the front, 2 web workers and NATS", "",
             f"{'phase':<12}{'clients':>8}{'push/s/cl':>10}{'p50':>9}{'p95':>9}{'p99':>9}   per server p95   CPU % of a core"]
    for name, ph in r["phases"].items():
        e = ph["event_to_screen_ms"]
        lines.append(f"{name:<12}{ph['clients']:>8}{ph['pushes_per_client_per_s']:>10}{e['p50']:>8}ms{e['p95']:>7}ms"
                     f"{e['p99']:>7}ms   {ph['per_server_p95_ms']}   {ph['cpu_pct_of_a_core']}")
        if ph["failed"]:
            lines.append(f"  failed clients: {ph['failed']}")
    lines += ["", f"event → screen p95, fan-out / baseline: {r['ratio_p95_fanout_vs_baseline']} "
                  f"(the same pushes; fan-out adds the NATS hop and two processes)",
              f"goal: p95 ≤ {r['goal_p95_ms']:.0f} ms through the web workers: {'met' if r['goal_met'] else 'NOT met'}"]
    if r["server_log_errors"]:
        lines.append(f"errors in the server logs: {r['server_log_errors'][:5]}")
    return "\n".join(lines)


def _cmd(args) -> int:
    try:
        r = run(walls=args.walls, seconds=args.seconds, speed=args.speed, scenario=args.scenario, start=args.start,
                warmup=args.warmup)
    except (RuntimeError, ValueError) as e:
        print(f"scenic-twin bench fanout: {e}", file=sys.stderr)
        return 2
    print(json.dumps(r, ensure_ascii=False, indent=2) if args.json else _text(r))
    return 0


def register(bench_sub) -> None:
    b = bench_sub.add_parser("fanout", help="wall clients spread over 2 web workers: event → screen latency",
                             description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    b.add_argument("--walls", type=int, default=200, help="wall clients in each phase (default 200)")
    b.add_argument("--seconds", type=float, default=30.0, help="measured seconds per phase (default 30)")
    b.add_argument("--speed", type=float, default=60.0, help="simulation speed of the front (default 60)")
    b.add_argument("--scenario", default="national-day")
    b.add_argument("--start", default="2026-10-01T18:00+08:00")
    b.add_argument("--warmup", type=float, default=None,
                   help="seconds before the first phase (default: 20 simulated minutes, so alerts are in the pushes)")
    b.add_argument("--json", action="store_true")
    b.set_defaults(func=_cmd)
