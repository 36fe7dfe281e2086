"""`scenic-twin bench wall`: one wall screen left running, measured.

Starts `scenic-twin run` (a busy National Day evening by default, accelerated),
opens /wall in headless Chromium (Debian's, via Playwright) and samples, over
the run: the JS heap after a forced garbage collection, the bytes the page
received over its WebSocket (the pushes) and over HTTP after the first load,
the DOM node count and whether "data as of" still moves.  Bytes pushed are
counted in the page (the JSON of every live-state push it merges, before any
WebSocket compression): Dash's socket is not visible to the CDP network
events here.

The run is accelerated (``--speed``): the server produces ``speed`` simulated
hours of data per hour, so pushes per wall-clock hour are what a screen
receives at that speed.  Bytes per *simulated* hour is the estimate for a
real-time wall (at 1× one simulated hour is one hour); both are printed and
named.  The heap goal of issue 8 is growth ≤ 2 MB per hour after GC.
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
FLAGS = ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking",
         "--disable-component-update", "--disable-sync", "--enable-unsafe-swiftshader"]


def _free_port() -> int:
    import socket
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _slope_per_hour(samples: list[tuple[float, float]]) -> float | None:
    """Least-squares slope of (seconds, MB) in MB per hour."""
    if len(samples) < 2:
        return None
    n = len(samples)
    mx = sum(t for t, _ in samples) / n
    my = sum(v for _, v in samples) / n
    den = sum((t - mx) ** 2 for t, _ in samples)
    return None if den == 0 else sum((t - mx) * (v - my) for t, v in samples) / den * 3600


def run(minutes: float, every: float, speed: float, scenario: str, start: str, out=None) -> dict:
    out = out or sys.stderr           # looked up at the call (a test's captured stream)
    import httpx
    from playwright.sync_api import sync_playwright
    port = _free_port()
    base = f"http://127.0.0.1:{port}"
    with tempfile.TemporaryDirectory(prefix="bench-wall-") as tmp:
        var = Path(tmp) / "var"
        env = {k: v for k, v in os.environ.items() if k != "SCENIC_TWIN_INGEST_TOKEN"}
        # an unattended wall logs in with a device token (a password session ends after 30 idle minutes)
        made = subprocess.run([sys.executable, "-m", "dashboard.cli", "users", "device-token", "bench-wall",
                               "--store", str(var / "access.sqlite")], cwd=ROOT, env=env, capture_output=True,
                              text=True, check=True)
        device_token = made.stdout.strip().splitlines()[-1]
        log = open(Path(tmp) / "server.log", "wb")
        server = subprocess.Popen([sys.executable, "-m", "dashboard.cli", "run", "--port", str(port), "--var", str(var),
                                   "--speed", str(speed), "--scenario", scenario, "--start", start],
                                  cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT)
        try:
            deadline = time.monotonic() + 120
            while True:
                try:
                    if httpx.get(base + "/healthz", timeout=2).status_code == 200:
                        break
                except httpx.HTTPError:
                    pass
                if server.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError(f"the server did not start; see {log.name}")
                time.sleep(0.5)
            with sync_playwright() as p:
                browser = p.chromium.launch(executable_path="/usr/bin/chromium", args=FLAGS, headless=True)
                # bypass_csp: the probes below are evaluated strings, which the pages' CSP forbids
                page = browser.new_page(viewport={"width": 1920, "height": 1080}, bypass_csp=True)
                cdp = page.context.new_cdp_session(page)
                cdp.send("Network.enable")
                counts = {"ws": 0, "http": 0, "frames": 0}
                loaded = {"done": False}
                cdp.on("Network.webSocketFrameReceived",
                       lambda e: counts.__setitem__("ws", counts["ws"] + len(e["response"]["payloadData"])) or
                       counts.__setitem__("frames", counts["frames"] + 1))
                cdp.on("Network.loadingFinished",
                       lambda e: counts.__setitem__("http", counts["http"] + int(e.get("encodedDataLength", 0)))
                       if loaded["done"] else None)
                page.goto(base + "/wall")
                page.click("details summary")
                page.fill("input[name=device_token]", device_token)
                page.click("button[type=submit]")
                page.wait_for_function("Number(document.getElementById('twin-deck')?.dataset.frames || 0) >= 1",
                                       timeout=120_000)
                page.wait_for_function("document.querySelector('#kpi-panel .st-kpi-tile') !== null", timeout=120_000)
                loaded["done"] = True
                t0, ws0 = time.monotonic(), counts["ws"]
                push0 = page.evaluate("window.scenicWall.pushBytes || 0")
                heap, samples, dom = [], [], []
                asof_changes, last_asof, last_change = 0, None, time.monotonic()
                end = t0 + minutes * 60
                while True:
                    cdp.send("HeapProfiler.collectGarbage")
                    used = cdp.send("Runtime.getHeapUsage")["usedSize"] / 1e6
                    nodes = page.evaluate("document.getElementsByTagName('*').length")
                    asof = page.evaluate("document.getElementById('asof').innerText")
                    now = time.monotonic()
                    if asof != last_asof:
                        asof_changes, last_asof, last_change = asof_changes + 1, asof, now
                    heap.append((now - t0, used))
                    dom.append(nodes)
                    pushed = page.evaluate("window.scenicWall.pushBytes || 0") - push0
                    samples.append({"s": round(now - t0), "heap_mb": round(used, 2), "push_bytes": pushed,
                                    "dom_nodes": nodes, "asof": asof})
                    print(f"  {now - t0:6.0f} s  heap {used:6.2f} MB  pushed {pushed / 1e6:7.2f} MB  "
                          f"DOM {nodes}  data as of {asof}", file=out, flush=True)
                    if now >= end:
                        break
                    page.wait_for_timeout(int(min(every, max(1, end - now)) * 1000))
                hours = (time.monotonic() - t0) / 3600
                growth = _slope_per_hour(heap[2:] if len(heap) > 4 else heap)
                result = {
                    "speed": speed, "scenario": scenario, "minutes": round(hours * 60, 1),
                    "heap_first_mb": round(heap[0][1], 2), "heap_last_mb": round(heap[-1][1], 2),
                    "heap_growth_mb_per_h": None if growth is None else round(growth, 2),
                    "push_bytes": pushed, "pushes": page.evaluate("window.scenicWall.pushes || 0"),
                    "push_mb_per_wall_hour": round(pushed / 1e6 / hours, 2),
                    "push_mb_per_simulated_hour": round(pushed / 1e6 / hours / speed, 3),
                    "http_bytes_after_load": counts["http"],
                    "dom_nodes_first": dom[0], "dom_nodes_last": dom[-1],
                    "live_at_end": time.monotonic() - last_change < 60,
                    "samples": samples,
                }
                browser.close()
                return result
        finally:
            server.terminate()
            try:
                server.wait(20)
            except subprocess.TimeoutExpired:
                server.kill()
            log.close()


def _cmd(args) -> int:
    print(f"bench wall: {args.minutes:g} min of wall-clock time, {args.scenario} from {args.start} at {args.speed:g}x "
          f"(a sample every {args.every:g} s) …", file=sys.stderr)
    r = run(args.minutes, args.every, args.speed, args.scenario, args.start)
    if args.json:
        print(json.dumps(r, ensure_ascii=False, indent=2))
        return 0
    g = r["heap_growth_mb_per_h"]
    print(f"JS heap after GC: {r['heap_first_mb']} → {r['heap_last_mb']} MB, growth {g} MB/h "
          f"({'within' if g is not None and g <= 2 else 'over'} the 2 MB/h goal)")
    print(f"pushed (JSON payload of the live-state pushes, before WebSocket compression): "
          f"{r['push_mb_per_wall_hour']} MB per wall-clock hour at {r['speed']:g}x; "
          f"{r['push_mb_per_simulated_hour']} MB per simulated hour (the estimate for a real-time wall); "
          f"{r['pushes']} pushes")
    print(f"HTTP after the first load: {r['http_bytes_after_load']} bytes; DOM nodes {r['dom_nodes_first']} → "
          f"{r['dom_nodes_last']}; still live at the end: {r['live_at_end']}")
    return 0


def register(bench_sub) -> None:
    b = bench_sub.add_parser("wall", help="a wall screen left running: JS heap after GC, bytes pushed, DOM size",
                             description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    b.add_argument("--minutes", type=float, default=60.0, help="wall-clock minutes to run (default 60)")
    b.add_argument("--every", type=float, default=60.0, help="seconds between samples")
    b.add_argument("--speed", type=float, default=60.0, help="simulation speed of the server (default 60)")
    b.add_argument("--scenario", default="national-day")
    b.add_argument("--start", default="2026-10-01T18:00+08:00")
    b.add_argument("--json", action="store_true")
    b.set_defaults(func=_cmd)
