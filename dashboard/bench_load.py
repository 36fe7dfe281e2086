"""`scenic-twin bench load`: many wall screens on WebSockets and many feed gateways at once.

Starts `scenic-twin run` (a busy National Day evening by default, accelerated) on
a free port with a temporary state folder, then drives it from this process
with plain clients, no browser:

* a **wall client** speaks Dash's WebSocket protocol as the page does: it
  opens ``/_dash-ws-callback`` with its own session cookie (a device token,
  one per client, as unattended screens log in) and the page's Origin, sends
  the ``callback_request`` that starts the persistent push (the key of its callback
  is read from ``/_dash-dependencies``) and reads the ``set_props`` messages
  it pushes.  Every push carries ``at``, the server's clock when it queued
  the push; *push latency* = arrival − ``at`` (same machine, same clock).
  It offers permessage-deflate, as browsers do.
* an **ingest client** is a feed gateway: it POSTs one JSON-lines batch of
  crowd records (one per management zone, event times at the server's
  simulated clock) to ``/ingest/crowd`` every ``--ingest-every`` seconds with
  the bearer token; *ingest latency* is the request's round trip.
* a **stalled client** is a wall whose link stopped: it starts the push,
  takes the first one, then reads nothing more (a small receive buffer and
  no compression, so the kernel buffers fill within seconds).  The server
  must drop to the latest state for it and go on serving the others.

Three phases of ``--seconds`` each, in one process against one server:

1. baseline: 1 wall client + 1 ingest client;
2. load: ``--walls`` wall clients + ``--ingest-clients`` ingest clients;
3. load + ``--slow`` stalled clients.

It prints push and ingest latency (p50/p95/p99) per phase, the ratios load /
baseline and stalled / load, pushes per second per client, the server's RSS
per connection (before the walls connect and once all took their first push)
and its RSS during phase 3, what was queued for a stalled client when it
read again, the close codes, errors and 429s, and the CPU of the server and
of this process (the clients share the machine with the server: read the
bench CPU before the latencies).

A ratio compares the same work per request (the same batch, the same push
callback); the load phases do it for more clients at once, which is the
point.  The pushes' content follows the simulation (the mean push size per
phase is printed: when it differs, so does the work per push).
"""
from __future__ import annotations

import argparse
import asyncio
import json
import math
import os
import random
import re
import resource
import secrets
import socket
import subprocess
import sys
import tempfile
import time
from collections import Counter
from datetime import datetime, timedelta
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

PUSH_RE = re.compile(rb'"componentId":"live-state","props":\{"data":\{"beat":(-?\d+),"at":(\d+)')
"""A live-state push inside a server message (a message may be a JSON array batching several)."""
HEARTBEAT_EVERY_S = 30.0          # what Dash's WebSocket worker sends
STALLED_RCVBUF = 4096             # the stalled clients' socket receive buffer (bytes)
STEADY_S = 6.0                    # a stalled socket's queue this long flat: the server drops for it
CONNECTS_AT_ONCE = 25             # WebSocket handshakes in flight at once (screens do not all start together)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _pct(xs: list[float], q: float) -> float | None:
    """Nearest-rank percentile (None for no samples)."""
    if not xs:
        return None
    s = sorted(xs)
    return s[max(0, min(len(s) - 1, math.ceil(q * len(s)) - 1))]


def _rss_kb(pid: int) -> int | None:
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1])
    except OSError:
        return None
    return None


def _cpu_s(pid: int) -> float | None:
    """User + system CPU seconds of a process (Linux /proc)."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    except (OSError, IndexError, ValueError):
        return None


def _self_cpu_s() -> float:
    r = resource.getrusage(resource.RUSAGE_SELF)
    return r.ru_utime + r.ru_stime


def _zones() -> list[str]:
    import pandas as pd

    from twin_assets import inventory as inv
    gdf = pd.read_parquet(inv.inventory_path(), columns=["type", "zone_id"])
    zones = sorted(gdf.loc[gdf["type"] == "management_zone", "zone_id"].dropna().unique())
    if not zones:
        raise RuntimeError("the inventory has no management zones to send crowd records for: "
                           "rebuild it with `scenic-twin assets build`")
    return zones


class Phase:
    """What the clients saw during one measurement window."""

    def __init__(self, name: str):
        self.name = name
        self.t0 = self.t1 = 0.0
        self.push_ms: list[float] = []
        self.push_bytes = 0
        self.push_msgs = 0
        self.pushes: Counter = Counter()            # wall client index -> pushes received in the window
        self.beats: dict[int, list[int]] = {}      # wall client index -> beats received
        self.ingest_ms: list[float] = []
        self.status: Counter = Counter()
        self.receipt: Counter = Counter()
        self.errors: Counter = Counter()
        self.cpu: dict[str, float | None] = {}
        self.n_walls = self.n_ingest = 0
        self.wall_ids: list[int] = []

    @property
    def seconds(self) -> float:
        return max(1e-9, self.t1 - self.t0)


class Bench:
    def __init__(self, base: str, pid: int, push_key: str, tokens: list[str], ingest_token: str, zones: list[str],
                 speed: float, ingest_every: float, out):
        self.base, self.pid, self.push_key = base, pid, push_key
        self.host = base.split("//", 1)[1]
        self.tokens, self.ingest_token, self.zones = tokens, ingest_token, zones
        self.speed, self.ingest_every, self.out = speed, ingest_every, out
        self.window: Phase | None = None
        self.sim: tuple[float, datetime] | None = None     # (monotonic, server clock) at the last /healthz
        self.closes: Counter = Counter()                   # "<phase>: code" -> count (normal wall clients)
        self.errors: Counter = Counter()
        self.rss: list[tuple[float, str, int]] = []         # (monotonic, label, kB)
        self.label = "setup"
        self.sent_records = 0
        self.stall_extra = 0.0
        self.stalled_ports: dict[int, "Wall"] = {}        # local port -> stalled client
        self.sendq_end = 0.0                                # mean server send queue per stalled socket, phase 3 end

    # ---------------------------------------------------------------- server clock for the records
    def sim_now(self) -> datetime:
        t, now = self.sim
        # /healthz shows the last snapshot's time; the clock runs on at ``speed`` (extrapolate a little only)
        return now + timedelta(seconds=min(3.0, time.monotonic() - t) * self.speed)

    async def poll_clock(self, stop: asyncio.Event) -> None:
        import httpx
        async with httpx.AsyncClient(base_url=self.base, timeout=10, trust_env=False) as c:
            while not stop.is_set():
                try:
                    h = (await c.get("/healthz")).json()
                    if h.get("now"):
                        self.sim = (time.monotonic(), datetime.fromisoformat(h["now"]))
                except Exception:                           # the next poll tries again
                    pass
                await _sleep(stop, 1.0)

    async def sample_rss(self, stop: asyncio.Event) -> None:
        while not stop.is_set():
            kb = _rss_kb(self.pid)
            if kb is not None:
                self.rss.append((time.monotonic(), self.label, kb))
            await _sleep(stop, 0.5)

    # ---------------------------------------------------------------- a measurement window
    async def measure(self, name: str, seconds: float, walls: list["Wall"], ingest: list["Ingest"]) -> Phase:
        ph = Phase(name)
        cpu_server, cpu_self = _cpu_s(self.pid), _self_cpu_s()
        ph.t0 = time.monotonic()
        self.window, self.label = ph, name
        end = ph.t0 + seconds
        next_note = ph.t0 + 5
        while True:
            now = time.monotonic()
            if now >= end:
                break
            await asyncio.sleep(min(0.25, end - now))
            if self.stalled_ports:
                q = _server_send_queues(int(self.host.rsplit(":", 1)[1]), set(self.stalled_ports))
                for p, w in self.stalled_ports.items():
                    w.note_queue(q.get(p, 0))
                self.sendq_end = sum(q.values()) / max(1, len(self.stalled_ports))
            if time.monotonic() >= next_note:
                next_note += 5
                rss = _rss_kb(self.pid)
                print(f"  {name}: {time.monotonic() - ph.t0:4.0f}/{seconds:g} s  pushes {sum(ph.pushes.values())}"
                      f"  ingest requests {len(ph.ingest_ms)} (429: {ph.status.get(429, 0)})"
                      f"  server RSS {rss / 1024 if rss else float('nan'):.0f} MB", file=self.out, flush=True)
        self.window = None
        ph.t1 = time.monotonic()
        cs = _cpu_s(self.pid)
        ph.cpu = {"server_pct_of_a_core": None if cs is None or cpu_server is None
                  else round(100 * (cs - cpu_server) / ph.seconds, 1),
                  "bench_pct_of_a_core": round(100 * (_self_cpu_s() - cpu_self) / ph.seconds, 1)}
        ph.n_walls = len(walls)
        ph.n_ingest = len(ingest)
        ph.wall_ids = [w.idx for w in walls]
        return ph

    def batch(self, client: int) -> bytes:
        # per-cell counts (cell_id set): validated, reference-checked, de-duplicated, logged and fed to
        # the engine like zone totals, but they leave the zone totals the wall shows to the simulator,
        # so the pushes do not grow with the number of ingest clients (a ratio compares the same work)
        at = self.sim_now().isoformat()
        lines = []
        for z in self.zones:
            lines.append(json.dumps({"event_id": "bench-" + secrets.token_hex(8), "event_time": at, "zone_id": z,
                                     "cell_id": f"bench-{client}", "count": random.randint(5, 300)}))
        self.sent_records += len(lines)
        return "\n".join(lines).encode()


async def _sleep(stop: asyncio.Event, s: float) -> None:
    try:
        await asyncio.wait_for(stop.wait(), timeout=s)
    except asyncio.TimeoutError:
        pass


class Wall:
    """One wall screen's WebSocket (or a stalled one)."""

    def __init__(self, idx: int, token: str, stalled: bool = False):
        self.idx, self.token, self.stalled = idx, token, stalled
        self.first = asyncio.Event()          # set at the first push (or on failure)
        self.failed: str | None = None
        self.close_code: int | None = None
        self.ws = None
        self.task: asyncio.Task | None = None
        self.resume = asyncio.Event()         # stalled: read again
        self.before_stall: list[int] = []     # stalled: beats received before it stopped reading
        self.queued: list[int] = []           # stalled: beats that had been queued for it, read after resuming
        self.queued_bytes = 0
        self.after_resume = 0                 # stalled: pushes sent after it read again
        self.resumed_beat: int | None = None  # stalled: the beat of the first push sent after it read again
        self.total = 0
        self.closing = False                  # the bench closes it (its close code is not the server's doing)
        self.sendq_max = 0                    # stalled: the most the server's kernel held for it (bytes)
        self.steady_after: float | None = None  # stalled: seconds of stall until the server's queue stopped growing
        self.grew_at: float | None = None     # stalled: when the server's send queue to it last grew
        self.stalled_at: float | None = None

    def note_queue(self, n: int) -> None:
        if n > self.sendq_max + 1024 or self.grew_at is None:
            self.grew_at = time.monotonic()
        self.sendq_max = max(self.sendq_max, n)

    def start(self, b: Bench, gate: asyncio.Semaphore) -> None:
        self.task = asyncio.create_task(self._run(b, gate))

    async def _connect(self, b: Bench):
        from websockets.asyncio.client import connect
        kw = dict(origin=b.base, additional_headers={"Cookie": f"st_session={self.token}"}, proxy=None,
                  ping_interval=None, max_size=None, open_timeout=60, close_timeout=3)
        if not self.stalled:
            return await connect(b.base.replace("http", "ws", 1) + "/_dash-ws-callback", **kw)
        # a stalled link: a small receive buffer, no compression (raw pushes fill the buffers within
        # seconds), and the library stops reading from the socket once one message waits unread
        sock = socket.socket()
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, STALLED_RCVBUF)
        sock.setblocking(False)
        host, port = b.host.rsplit(":", 1)
        await asyncio.get_running_loop().sock_connect(sock, (host, int(port)))
        return await connect(b.base.replace("http", "ws", 1) + "/_dash-ws-callback", sock=sock, compression=None,
                             max_queue=1, **kw)

    async def _run(self, b: Bench, gate: asyncio.Semaphore) -> None:
        from websockets.exceptions import ConnectionClosed, InvalidStatus
        try:
            async with gate:
                self.ws = await self._connect(b)
            await self.ws.send(json.dumps({
                "type": "callback_request", "requestId": f"bench-{self.idx}-push", "rendererId": f"bench-{self.idx}",
                "payload": {"output": b.push_key, "outputs": [], "inputs": [], "state": [], "changedPropIds": []}}))
            if self.stalled:
                await self._stalled(b)
            else:
                await self._read(b)
        except InvalidStatus as e:
            self.failed = f"handshake refused: HTTP {e.response.status_code}"
        except ConnectionClosed as e:
            self.close_code = e.rcvd.code if e.rcvd is not None else 1006
            if not self.first.is_set():
                self.failed = f"closed before the first push ({self.close_code})"
        except (OSError, asyncio.TimeoutError) as e:
            self.failed = f"{type(e).__name__}: {e}"
        except asyncio.CancelledError:
            pass
        finally:
            if self.failed:
                b.errors[("stalled " if self.stalled else "wall ") + self.failed] += 1
            if self.close_code is not None and not self.closing:
                b.closes[f"{'stalled' if self.stalled else 'wall'} client in {b.label}: {self.close_code}"] += 1
            self.first.set()

    async def _read(self, b: Bench) -> None:
        ws, last_hb = self.ws, time.monotonic()
        while True:
            data = await ws.recv(decode=False)
            now_ms = time.time() * 1000
            found = PUSH_RE.findall(data)
            if found:
                self.total += len(found)
                self.first.set()
                ph = b.window
                if ph is not None:
                    ph.push_msgs += 1
                    ph.push_bytes += len(data)
                    beats = ph.beats.setdefault(self.idx, [])
                    for beat, at in found:
                        ph.push_ms.append(now_ms - int(at))
                        beats.append(int(beat))
                    ph.pushes[self.idx] += len(found)
            elif b'"error"' in data or b'"callback_response"' in data:
                # the push callback ended or failed: say what the server said
                b.errors["server message: " + data[:200].decode("utf-8", "replace")] += 1
            if time.monotonic() - last_hb >= HEARTBEAT_EVERY_S:
                last_hb = time.monotonic()
                await ws.send('{"type":"heartbeat"}')

    async def _stalled(self, b: Bench) -> None:
        ws = self.ws
        while not self.before_stall:
            data = await ws.recv(decode=False)
            self.before_stall += [int(beat) for beat, _ in PUSH_RE.findall(data)]
        self.stalled_at = time.monotonic()
        self.first.set()
        await self.resume.wait()                 # the link is dead: nothing is read from here on
        resumed_ms = time.time() * 1000
        try:                                     # the link is back: read what was queued, quickly
            ws.transport.get_extra_info("socket").setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 1 << 20)
        except (OSError, AttributeError):
            pass
        # read until the first push sent after resuming (order is kept: everything queued before it
        # has arrived), or until nothing comes for 2 s
        end = time.monotonic() + 60.0
        while time.monotonic() < end and not self.after_resume:
            try:
                data = await asyncio.wait_for(ws.recv(decode=False), timeout=2.0)
            except asyncio.TimeoutError:
                break
            for beat, at in PUSH_RE.findall(data):
                if int(at) < resumed_ms:         # queued while it was not reading
                    self.queued.append(int(beat))
                    self.queued_bytes += len(data)
                else:
                    self.after_resume += 1
                    self.resumed_beat = int(beat)


class Ingest:
    """One feed gateway posting a crowd batch every ``every`` seconds."""

    def __init__(self, idx: int):
        self.idx = idx
        self.task: asyncio.Task | None = None

    def start(self, b: Bench, stop: asyncio.Event) -> None:
        self.task = asyncio.create_task(self._run(b, stop))

    async def _run(self, b: Bench, stop: asyncio.Event) -> None:
        import httpx
        headers = {"Authorization": f"Bearer {b.ingest_token}", "Content-Type": "application/x-ndjson",
                   "X-Feed-Source": f"bench-load-{self.idx}"}
        loop = asyncio.get_running_loop()
        async with httpx.AsyncClient(base_url=b.base, headers=headers, timeout=60, trust_env=False) as c:
            await _sleep(stop, random.uniform(0, b.ingest_every))
            while not stop.is_set():
                due = loop.time() + b.ingest_every
                body = b.batch(self.idx)
                ph = b.window
                t0 = time.perf_counter()
                try:
                    r = await c.post("/ingest/crowd", content=body)
                except httpx.HTTPError as e:
                    if ph is not None and ph is b.window:
                        ph.errors[type(e).__name__] += 1
                    await _sleep(stop, 0.5)
                    continue
                ms = (time.perf_counter() - t0) * 1000
                if ph is not None and ph is b.window:
                    ph.ingest_ms.append(ms)
                    ph.status[r.status_code] += 1
                    if r.status_code in (200, 207, 422):
                        try:
                            rec = r.json()
                            for k in ("accepted", "duplicates", "late", "rejected_count"):
                                ph.receipt[k] += int(rec.get(k) or 0)
                        except ValueError:
                            ph.errors["receipt is not JSON"] += 1
                await _sleep(stop, max(0.0, due - loop.time()))


async def _wait_first(b: Bench, walls: list[Wall], timeout: float, what: str) -> None:
    t0 = time.monotonic()
    pending = [w.first.wait() for w in walls]
    try:
        await asyncio.wait_for(asyncio.gather(*pending), timeout=timeout)
    except asyncio.TimeoutError:
        n = sum(not w.first.is_set() for w in walls)
        b.errors[f"{what}: no first push within {timeout:g} s"] += n
    ok = sum(w.first.is_set() and not w.failed for w in walls)
    print(f"  {what}: {ok}/{len(walls)} connected and pushed to in {time.monotonic() - t0:.1f} s",
          file=b.out, flush=True)


async def _close(walls: list[Wall]) -> None:
    async def one(w: Wall):
        w.closing = True
        if w.ws is not None:
            try:
                await asyncio.wait_for(w.ws.close(), timeout=3)
            except Exception:
                pass
        if w.task is not None:
            w.task.cancel()
            try:
                await w.task
            except BaseException:
                pass
    await asyncio.gather(*(one(w) for w in walls))


async def _stop_ingest(stop: asyncio.Event, clients: list[Ingest]) -> None:
    stop.set()
    await asyncio.gather(*(c.task for c in clients if c.task is not None), return_exceptions=True)


def _server_send_queues(port: int, client_ports: set[int]) -> dict[int, int]:
    """Bytes in the server's kernel send queue of its sockets to ``client_ports`` (from /proc/net/tcp):
    what a stalled client has not taken, outside the server's RSS."""
    out: dict[int, int] = {}
    try:
        with open("/proc/net/tcp") as f:
            next(f)
            for line in f:
                parts = line.split()
                local, remote, queues = parts[1], parts[2], parts[4]
                if int(local.rsplit(":", 1)[1], 16) == port:
                    rport = int(remote.rsplit(":", 1)[1], 16)
                    if rport in client_ports:
                        out[rport] = out.get(rport, 0) + int(queues.split(":")[0], 16)
    except (OSError, ValueError, IndexError, StopIteration):
        pass
    return out


def _local_port(w: "Wall") -> int | None:
    try:
        return w.ws.transport.get_extra_info("sockname")[1]
    except Exception:
        return None


async def _stall_on(b: Bench, st: list["Wall"], limit: float) -> None:
    """Keep the stalled clients stalled (the load goes on, unmeasured) until the server stopped
    queueing for every one of them - its kernel send queue to them no longer grows although the
    others still get pushes (it drops to the latest state), or it closed them - at most ``limit`` s."""
    port = int(b.host.rsplit(":", 1)[1])
    ports = {p: w for w in st if (p := _local_port(w)) is not None}
    b.label = "stall continues"
    t0 = time.monotonic()
    print(f"  stall continues (unmeasured) until the server stops queueing for the stalled clients, "
          f"at most {limit:g} s", file=b.out, flush=True)
    note = t0 + 5
    steady: list[int] = []
    while time.monotonic() - t0 < limit:
        await asyncio.sleep(0.5)
        now = time.monotonic()
        q = _server_send_queues(port, set(ports))
        for p, w in ports.items():
            w.note_queue(q.get(p, 0))
        steady = [p for p, w in ports.items() if w.grew_at is not None and now - w.grew_at >= STEADY_S]
        if now >= note:
            note += 5
            mb = sum(q.values()) / max(1, len(q)) / 1e6
            print(f"  stall continues: {now - t0:3.0f} s, server send queue {mb:.2f} MB per stalled socket, "
                  f"{len(steady)}/{len(ports)} no longer growing", file=b.out, flush=True)
        if len(steady) == len(ports):
            break
    for p, w in ports.items():
        if p in steady and w.grew_at is not None and w.stalled_at is not None:
            w.steady_after = round(w.grew_at - w.stalled_at, 1)
    b.stall_extra = round(time.monotonic() - t0, 1)


async def _drive(b: Bench, walls: int, ingest_clients: int, slow: int, seconds: float, stall_wait: float,
                 warmup: float) -> dict:
    bg_stop = asyncio.Event()
    bg = [asyncio.create_task(b.poll_clock(bg_stop)), asyncio.create_task(b.sample_rss(bg_stop))]
    gate = asyncio.Semaphore(CONNECTS_AT_ONCE)
    try:
        while b.sim is None:
            await asyncio.sleep(0.2)
        if warmup > 0:
            # the alert rules are first evaluated after 15 simulated minutes (then the pushes carry
            # the alert list): every phase must see the same kind of pushes
            print(f"warm-up: {warmup:g} s for the server's first alert evaluation (15 simulated minutes)",
                  file=b.out, flush=True)
            await asyncio.sleep(warmup)
        # ---- 1. baseline
        print(f"phase 1/3 baseline: 1 wall client + 1 ingest client, {seconds:g} s", file=b.out, flush=True)
        w0 = [Wall(0, b.tokens[0])]
        for w in w0:
            w.start(b, gate)
        await _wait_first(b, w0, 60, "baseline wall")
        stop1 = asyncio.Event()
        i0 = [Ingest(0)]
        for c in i0:
            c.start(b, stop1)
        p1 = await b.measure("baseline", seconds, w0, i0)
        await _stop_ingest(stop1, i0)
        await _close(w0)
        await asyncio.sleep(1.5)
        b.label = "before walls"
        rss_before = _rss_kb(b.pid)

        # ---- 2. load
        print(f"phase 2/3 load: {walls} wall clients + {ingest_clients} ingest clients, {seconds:g} s",
              file=b.out, flush=True)
        ws = [Wall(i, b.tokens[i]) for i in range(1, walls + 1)]
        for w in ws:
            w.start(b, gate)
        await _wait_first(b, ws, max(60.0, walls * 0.5), "wall clients")
        await asyncio.sleep(1.0)
        rss_connected = _rss_kb(b.pid)
        stop2 = asyncio.Event()
        ing = [Ingest(i) for i in range(1, ingest_clients + 1)]
        for c in ing:
            c.start(b, stop2)
        p2 = await b.measure("load", seconds, ws, ing)

        # ---- 3. load + stalled clients
        print(f"phase 3/3 load + {slow} stalled wall clients, {seconds:g} s", file=b.out, flush=True)
        b.label = "stalled connect"
        rss_p3_start = _rss_kb(b.pid)
        st = [Wall(walls + 1 + i, b.tokens[walls + 1 + i], stalled=True) for i in range(slow)]
        for w in st:
            w.start(b, gate)
        if st:
            await _wait_first(b, st, 60, "stalled clients")
            b.stalled_ports = {p: w for w in st if (p := _local_port(w)) is not None}
        p3 = await b.measure("stalled", seconds, ws, ing)
        rss_p3_end = _rss_kb(b.pid)
        if st and stall_wait > 0:
            await _stall_on(b, st, stall_wait)
        await _stop_ingest(stop2, ing)
        b.label = "teardown"
        for w in st:
            w.resume.set()
        await asyncio.gather(*(w.task for w in st if w.task is not None), return_exceptions=True)
        await _close(ws + st)
    finally:
        bg_stop.set()
        await asyncio.gather(*bg, return_exceptions=True)
    return _report(b, [p1, p2, p3], ws, st, rss_before, rss_connected, rss_p3_start, rss_p3_end, walls)


def _missed(beats: list[int]) -> int:
    """Beats (snapshots) between a client's first and last push that it did not receive."""
    if not beats:
        return 0
    return (max(beats) - min(beats) + 1) - len(set(beats))


def _stall_span(w: "Wall") -> int:
    """Snapshots from a stalled client's first push to the last one before it read again."""
    got = w.before_stall + w.queued
    if not got:
        return 0
    last = w.resumed_beat - 1 if w.resumed_beat is not None else max(got)
    return max(0, last - min(got) + 1)


def _r(x, n=1):
    return None if x is None else round(x, n)


def _ratio(a, b):
    return None if a is None or not b else round(a / b, 2)


def _phase_dict(ph: Phase) -> dict:
    per_client = [ph.pushes.get(i, 0) / ph.seconds for i in ph.wall_ids]
    req = sum(ph.status.values())
    return {
        "seconds": round(ph.seconds, 1), "wall_clients": ph.n_walls, "ingest_clients": ph.n_ingest,
        "push": {"pushes": len(ph.push_ms), "p50_ms": _r(_pct(ph.push_ms, 0.5)), "p95_ms": _r(_pct(ph.push_ms, 0.95)),
                 "p99_ms": _r(_pct(ph.push_ms, 0.99)), "max_ms": _r(max(ph.push_ms, default=None)),
                 "per_client_per_s_mean": _r(sum(per_client) / len(per_client), 2) if per_client else None,
                 "per_client_per_s_min": _r(min(per_client), 2) if per_client else None,
                 "clients_without_push": sum(1 for i in ph.wall_ids if not ph.pushes.get(i)),
                 "mean_message_kb": _r(ph.push_bytes / ph.push_msgs / 1024, 1) if ph.push_msgs else None,
                 "missed_beats": sum(_missed(v) for v in ph.beats.values()),
                 "beats_per_client_mean": _r(sum(len(v) for v in ph.beats.values()) / max(1, len(ph.beats)), 1)},
        "ingest": {"requests": req, "per_s": _r(req / ph.seconds, 1), "p50_ms": _r(_pct(ph.ingest_ms, 0.5)),
                   "p95_ms": _r(_pct(ph.ingest_ms, 0.95)), "p99_ms": _r(_pct(ph.ingest_ms, 0.99)),
                   "status": {str(k): v for k, v in sorted(ph.status.items())}, "http_429": ph.status.get(429, 0),
                   "records": dict(ph.receipt), "errors": dict(ph.errors)},
        "cpu": ph.cpu,
    }


def _report(b: Bench, phases: list[Phase], ws: list[Wall], st: list[Wall], rss_before, rss_connected,
            rss_p3_start, rss_p3_end, walls: int) -> dict:
    p = {ph.name: _phase_dict(ph) for ph in phases}
    p3 = phases[2]
    s3 = [kb for t, label, kb in b.rss if label == "stalled" or label == "stalled connect"]
    mid = p3.t0 + p3.seconds / 2
    half = [kb for t, label, kb in b.rss if label == "stalled" and t >= mid]
    stalled = {
        "clients": len(st),
        "failed": sum(1 for w in st if w.failed),
        "pushes_before_stalling_mean": _r(sum(len(w.before_stall) for w in st) / len(st), 1) if st else None,
        "queued_when_resumed_mean": _r(sum(len(w.queued) for w in st) / len(st), 1) if st else None,
        "queued_when_resumed_max": max((len(w.queued) for w in st), default=None),
        "queued_kb_max": _r(max((w.queued_bytes for w in st), default=0) / 1024, 1) if st else None,
        # beats of the stall the server never queued for it (dropped to the latest state)
        "beats_dropped_mean": _r(sum(_stall_span(w) - len(set(w.before_stall + w.queued)) for w in st) / len(st), 1)
        if st else None,
        "beats_during_stall_mean": _r(sum(_stall_span(w) for w in st) / len(st), 1) if st else None,
        "drained_to_a_fresh_push": sum(1 for w in st if w.resumed_beat is not None),
        "closed_by_server": sum(1 for w in st if w.close_code is not None and not w.closing),
        "close_codes": dict(Counter(str(w.close_code) for w in st if w.close_code is not None and not w.closing)),
        "server_send_queue_end_of_phase3_mb": _r(b.sendq_end / 1e6, 2),
        "server_send_queue_max_mb": _r(max((w.sendq_max for w in st), default=0) / 1e6, 2) if st else None,
        "stalled_on_s": b.stall_extra,
        "server_stopped_queueing_for": sum(1 for w in st if w.steady_after is not None),
        "server_stopped_queueing_after_s_max": max((w.steady_after for w in st if w.steady_after is not None),
                                                   default=None),
    }
    kb = lambda x: None if x is None else round(x / 1024, 1)  # noqa: E731
    s2 = [v for t, label, v in b.rss if label == "load"]
    mean2 = sum(s2) / len(s2) if s2 else None
    rss = {
        "before_walls_mb": kb(rss_before), "walls_connected_mb": kb(rss_connected),
        "per_connection_kb": None if rss_before is None or rss_connected is None or not walls
        else round((rss_connected - rss_before) / walls, 1),
        "load_mean_mb": kb(mean2), "load_min_mb": kb(min(s2, default=None) if s2 else None),
        "load_max_mb": kb(max(s2, default=None) if s2 else None),
        "per_connection_kb_load_mean": None if rss_before is None or mean2 is None or not walls
        else round((mean2 - rss_before) / walls, 1),
        "phase3_start_mb": kb(rss_p3_start), "phase3_end_mb": kb(rss_p3_end),
        "phase3_max_mb": kb(max(s3, default=None) if s3 else None),
        "phase3_growth_mb": None if rss_p3_start is None or rss_p3_end is None else kb(rss_p3_end - rss_p3_start),
        "phase3_last_half_growth_mb": kb(half[-1] - half[0]) if len(half) >= 2 else None,
    }
    base, load, slow = p["baseline"], p["load"], p["stalled"]
    ratios = {
        "push_p50_load_vs_baseline": _ratio(load["push"]["p50_ms"], base["push"]["p50_ms"]),
        "push_p95_load_vs_baseline": _ratio(load["push"]["p95_ms"], base["push"]["p95_ms"]),
        "ingest_p50_load_vs_baseline": _ratio(load["ingest"]["p50_ms"], base["ingest"]["p50_ms"]),
        "ingest_p95_load_vs_baseline": _ratio(load["ingest"]["p95_ms"], base["ingest"]["p95_ms"]),
        "push_p95_stalled_vs_load": _ratio(slow["push"]["p95_ms"], load["push"]["p95_ms"]),
        "ingest_p95_stalled_vs_load": _ratio(slow["ingest"]["p95_ms"], load["ingest"]["p95_ms"]),
        "pushes_per_client_stalled_vs_load": _ratio(slow["push"]["per_client_per_s_mean"],
                                                    load["push"]["per_client_per_s_mean"]),
    }
    return {"phases": p, "ratios": ratios, "rss": rss, "stalled_clients": stalled,
            "closes": dict(b.closes), "errors": dict(b.errors), "records_sent": b.sent_records}


# ------------------------------------------------------------------------------ server
def _start_server(tmp: Path, port: int, speed: float, scenario: str, start: str | None, env: dict):
    import httpx
    var = tmp / "var"
    log_path = tmp / "server.log"
    log = open(log_path, "wb")
    cmd = [sys.executable, "-m", "dashboard.cli", "run", "--port", str(port), "--var", str(var),
           "--speed", str(speed), "--scenario", scenario]
    if start:
        cmd += ["--start", start]
    server = subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT)
    base = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 180
    while True:
        try:
            h = httpx.get(base + "/healthz", timeout=2, trust_env=False)
            if h.status_code == 200 and h.json().get("snapshot"):
                break
        except httpx.HTTPError:
            pass
        if server.poll() is not None or time.monotonic() > deadline:
            server.kill()
            log.close()
            tail = log_path.read_text(errors="replace")[-2000:]
            raise RuntimeError(f"the bench server did not start (or made no snapshot within 180 s); its log ends "
                               f"with:\n{tail}\nrun `scenic-twin run --speed {speed:g}` by hand to see why")
        time.sleep(0.5)
    return server, log


def run(walls: int = 200, ingest_clients: int = 50, slow: int = 20, seconds: float = 30.0, speed: float = 60.0,
        scenario: str = "national-day", start: str | None = "2026-10-01T18:00+08:00", ingest_every: float = 1.0,
        stall_wait: float = 60.0, warmup: float | None = None, out=None) -> dict:
    out = out or sys.stderr           # looked up at the call (a test's captured stream)
    import httpx

    from indicators.access.store import AccessStore
    if walls < 1 or ingest_clients < 1 or slow < 0 or seconds <= 0 or ingest_every <= 0:
        raise ValueError("walls and ingest clients must be at least 1, slow at least 0, seconds and "
                         "--ingest-every above 0")
    zones = _zones()
    if warmup is None:
        warmup = min(120.0, 20 * 60 / speed + 5)
    port = _free_port()
    offered = ingest_clients / ingest_every
    rate_ingest = f"{max(50.0, 4 * offered):g}/{max(200, int(8 * offered))}"
    ingest_token = secrets.token_urlsafe(32)
    with tempfile.TemporaryDirectory(prefix="bench-load-") as tmp:
        tmp = Path(tmp)
        # one device session per wall client (the callback limit is per account, as for real screens);
        # issued straight into the store, no login round trips (the login limit is not what is measured)
        with AccessStore.open(tmp / "var" / "access.sqlite") as store:
            tokens = [store.issue_device_token(f"bench-wall-{i}", by="bench-load") for i in range(walls + slow + 1)]
        env = {k: v for k, v in os.environ.items() if not k.startswith("SCENIC_TWIN_RATE_")}
        env["SCENIC_TWIN_INGEST_TOKEN"] = ingest_token
        env["SCENIC_TWIN_RATE_INGEST"] = rate_ingest
        print(f"bench load: server started with SCENIC_TWIN_RATE_INGEST={rate_ingest} (the ingest clients share "
              f"one address and token, {offered:g} requests/s offered: the limit is not what is measured)",
              file=out, flush=True)
        t0 = time.monotonic()
        server, log = _start_server(tmp, port, speed, scenario, start, env)
        print(f"  server pid {server.pid} on port {port} ready in {time.monotonic() - t0:.0f} s", file=out,
              flush=True)
        try:
            base = f"http://127.0.0.1:{port}"
            deps = httpx.get(base + "/_dash-dependencies", timeout=10, trust_env=False).json()
            keys = [c["output"] for c in deps if c.get("persistent")]
            if len(keys) != 1:
                raise RuntimeError(f"expected one persistent (push) callback in /_dash-dependencies, found "
                                   f"{len(keys)}: the app's live push changed; update dashboard/bench_load.py")
            b = Bench(base, server.pid, keys[0], tokens, ingest_token, zones, speed, ingest_every, out)
            result = asyncio.run(_drive(b, walls, ingest_clients, slow, seconds, stall_wait, warmup))
        finally:
            server.terminate()
            try:
                server.wait(20)
            except subprocess.TimeoutExpired:
                server.kill()
            log.close()
            server_log = (tmp / "server.log").read_text(errors="replace")
    result["config"] = {"walls": walls, "ingest_clients": ingest_clients, "slow": slow, "seconds": seconds,
                        "speed": speed, "scenario": scenario, "start": start, "ingest_every_s": ingest_every,
                        "stall_wait_s": stall_wait, "warmup_s": warmup, "records_per_request": len(zones), "rate_ingest_env": rate_ingest,
                        "cpus": os.cpu_count()}
    result["server_log_errors"] = [ln for ln in server_log.splitlines()
                                   if "Traceback" in ln or "ERROR" in ln or "Exception" in ln][:20]
    return result


# ------------------------------------------------------------------------------ CLI
def _ms(x):
    return "—" if x is None else f"{x:.0f} ms" if x >= 10 else f"{x:.1f} ms"


def _text(r: dict) -> str:
    c, p, q, rss, st = r["config"], r["phases"], r["ratios"], r["rss"], r["stalled_clients"]
    lines = [f"bench load: {c['walls']} wall clients, {c['ingest_clients']} ingest clients "
             f"({c['records_per_request']} crowd records per POST, one every {c['ingest_every_s']:g} s each), "
             f"{c['slow']} stalled clients; {c['seconds']:g} s per phase; {c['scenario']} at {c['speed']:g}x; "
             f"{c['cpus']} CPUs shared by server and clients",
             "",
             f"{'phase':<22}{'walls':>6}{'push/s/cl':>10}{'push p50':>10}{'p95':>9}{'p99':>9}{'msg KB':>8}"
             f"{'ingest/s':>10}{'ing p50':>9}{'p95':>9}{'429':>5}{'srv CPU':>9}{'bench CPU':>10}"]
    for name, label in (("baseline", "1 baseline"), ("load", "2 load"), ("stalled", f"3 load+{c['slow']} stalled")):
        ph = p[name]
        pu, ing = ph["push"], ph["ingest"]
        lines.append(f"{label:<22}{ph['wall_clients']:>6}{pu['per_client_per_s_mean'] or 0:>10.2f}"
                     f"{_ms(pu['p50_ms']):>10}{_ms(pu['p95_ms']):>9}{_ms(pu['p99_ms']):>9}"
                     f"{pu['mean_message_kb'] or 0:>8.1f}{ing['per_s'] or 0:>10.1f}{_ms(ing['p50_ms']):>9}"
                     f"{_ms(ing['p95_ms']):>9}{ing['http_429']:>5}"
                     f"{ph['cpu']['server_pct_of_a_core'] or 0:>8.0f}%{ph['cpu']['bench_pct_of_a_core']:>9.0f}%")
    lines += [
        "",
        f"ratios (same push callback, same request; the load phases serve more clients at once):",
        f"  push p95   load / baseline {q['push_p95_load_vs_baseline']}  (p50 {q['push_p50_load_vs_baseline']});"
        f"  ingest p95 load / baseline {q['ingest_p95_load_vs_baseline']}  (p50 {q['ingest_p50_load_vs_baseline']})",
        f"  with {c['slow']} stalled clients / load: push p95 {q['push_p95_stalled_vs_load']}, ingest p95 "
        f"{q['ingest_p95_stalled_vs_load']}, pushes per client per second {q['pushes_per_client_stalled_vs_load']}",
        f"server RSS: {rss['before_walls_mb']} MB before the walls, {rss['walls_connected_mb']} MB with "
        f"{c['walls']} connected: {rss['per_connection_kb']} KB per connection; during the load "
        f"{rss['load_min_mb']}-{rss['load_max_mb']} MB (mean {rss['load_mean_mb']}: "
        f"{rss['per_connection_kb_load_mean']} KB per wall client, ingest included)",
        f"  phase 3 (stalled clients): {rss['phase3_start_mb']} → {rss['phase3_end_mb']} MB (max "
        f"{rss['phase3_max_mb']}), growth {rss['phase3_growth_mb']} MB, in its last half "
        f"{rss['phase3_last_half_growth_mb']} MB",
    ]
    if st["clients"]:
        lines.append(f"stalled clients: the server's kernel send queue to each held {st['server_send_queue_end_of_phase3_mb']}"
                     f" MB at the end of phase 3 (outside its RSS), at most {st['server_send_queue_max_mb']} MB; "
                     f"stalled on {st['stalled_on_s']} s more (unmeasured): the server stopped queueing for "
                     f"{st['server_stopped_queueing_for']}/{st['clients']} (its send queue to them full after at most "
                     f"{st['server_stopped_queueing_after_s_max']} s of stall)")
        lines.append(f"  when they read again: {st['queued_when_resumed_mean']} pushes each (max "
                     f"{st['queued_when_resumed_max']}, {st['queued_kb_max']} KB) had been queued for them, out of "
                     f"{st['beats_during_stall_mean']} snapshots; {st['beats_dropped_mean']} dropped (drop to the "
                     f"latest state); closed by the server: {st['closed_by_server']} {st['close_codes']}")
    missed = {n: p[n]["push"]["missed_beats"] for n in p}
    lines.append(f"normal wall clients: snapshots not received {missed} (coalesced or dropped); "
                 f"without any push: { {n: p[n]['push']['clients_without_push'] for n in p} }")
    lines.append(f"ingest records: { {n: p[n]['ingest']['records'] for n in p} }")
    bad = {n: p[n]["ingest"]["status"] for n in p if set(p[n]["ingest"]["status"]) - {"200"}}
    if bad or r["closes"] or r["errors"] or r["server_log_errors"]:
        lines.append(f"problems: ingest statuses {bad}; closes {r['closes']}; errors {r['errors']}; "
                     f"server log {r['server_log_errors'][:5]}")
    else:
        lines.append("no errors, no unexpected closes, every ingest request answered 200")
    sizes = [p[n]["push"]["mean_message_kb"] for n in p if p[n]["push"]["mean_message_kb"]]
    if sizes and max(sizes) > 1.5 * min(sizes):
        lines.append(f"note: the mean push differs between phases ({min(sizes)}-{max(sizes)} KB, it follows the "
                     "simulation): the push ratios compare somewhat different work per push")
    bench_cpu = max(p[n]["cpu"]["bench_pct_of_a_core"] for n in p)
    if bench_cpu >= 80:
        lines.append(f"note: this process (the clients) used up to {bench_cpu:.0f}% of a core: the clients compete "
                     "with the server for the CPUs and part of the latency is the clients' own queueing")
    return "\n".join(lines)


def _cmd(args) -> int:
    print(f"bench load: {args.walls} wall clients, {args.ingest_clients} ingest clients, {args.slow} stalled; "
          f"3 phases of {args.seconds:g} s; {args.scenario} at {args.speed:g}x …", file=sys.stderr, flush=True)
    try:
        r = run(walls=args.walls, ingest_clients=args.ingest_clients, slow=args.slow, seconds=args.seconds,
                speed=args.speed, scenario=args.scenario, start=args.start or None, ingest_every=args.ingest_every,
                stall_wait=args.stall_wait, warmup=args.warmup)
    except (RuntimeError, ValueError) as e:
        print(f"scenic-twin bench load: {e}", file=sys.stderr)
        return 2
    print(json.dumps(r, ensure_ascii=False, indent=2) if args.json else _text(r))
    return 0


def register(bench_sub) -> None:
    b = bench_sub.add_parser("load", help="many wall clients on WebSockets and feed gateways at once: push and "
                                          "ingest latency, RSS per connection, stalled clients",
                             description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    b.add_argument("--walls", type=int, default=200, help="wall clients in phases 2 and 3 (default 200)")
    b.add_argument("--ingest-clients", type=int, default=50, help="ingest clients in phases 2 and 3 (default 50)")
    b.add_argument("--slow", type=int, default=20, help="stalled wall clients added in phase 3 (default 20)")
    b.add_argument("--seconds", type=float, default=30.0, help="measured seconds per phase (default 30)")
    b.add_argument("--ingest-every", type=float, default=1.0,
                   help="seconds between one ingest client's POSTs (default 1)")
    b.add_argument("--stall-wait", type=float, default=60.0,
                   help="after phase 3, keep the stalled clients stalled (unmeasured) until the server stops "
                        "queueing for them, at most this many seconds (default 60; 0 = no)")
    b.add_argument("--warmup", type=float, default=None,
                   help="seconds to wait before phase 1 so every phase sees alert lists in the pushes "
                        "(default: 20 simulated minutes, 25 s at 60x)")
    b.add_argument("--speed", type=float, default=60.0, help="simulation speed of the server (default 60)")
    b.add_argument("--scenario", default="national-day")
    b.add_argument("--start", default="2026-10-01T18:00+08:00",
                   help="simulated start (default a National Day evening; '' = now)")
    b.add_argument("--json", action="store_true")
    b.set_defaults(func=_cmd)
