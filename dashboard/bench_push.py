"""`scenic-twin bench push`: event → value on the wall, in real browsers, at real-time speed.

Starts `scenic-twin run` at 1× (the simulator feeding the normal-weekday scenario in real
time, provisional values on as by default), opens ``--clients`` wall screens in headless Chromium
(Debian's, through Playwright; each its own device token, as unattended walls log in) and then,
``--rounds`` times, posts one weather observation to ``/ingest/weather`` as a gateway would: both
stations report the same air temperature, a value no round used before, so the wall's
temperature tile (the mean of the stations) must show exactly it.  Each page's MutationObserver
notes the moment the tile first shows the value; *event → DOM* is that moment minus the moment
the gateway sent the observation (``event_time`` is the same moment: same machine, same clock).

The path measured is the whole one: HTTP ingest (validation, de-duplication, the fsync'd feed log),
the engines, the snapshot, the view models, the WebSocket push, the page's merge and render.
Goal (issue 13): p95 ≤ 0.5 s with 20 screens.

``--no-3d`` opens the screens with WebGL switched off (the twin's 3D scene does not mount; every
tile, list and the push are as always): on a machine without a GPU, twenty scenes drawn in
software take every core and the figure would be the test machine's, not the server's.  The
output says which way it ran.
"""
from __future__ import annotations

import argparse
import json
import os
import secrets
import sys
import tempfile
import time
from datetime import datetime, timezone
from pathlib import Path

from dashboard.bench_fanout import _start
from dashboard.bench_load import _free_port, _pct
from dashboard.bench_wall import FLAGS

GOAL_P95_MS = 500.0
STATIONS = ("aws-canton_tower-base", "aws-canton_tower-top")      # data/scenarios.toml weather.stations
WATCH = """(want) => {
  window.__seen = null;
  const hit = () => {
    const v = document.querySelector('[data-kpi=temperature] .st-kpi-value');
    if (window.__seen === null && v && v.textContent.startsWith(want + ' ')) window.__seen = performance.timeOrigin + performance.now();
  };
  if (window.__obs) window.__obs.disconnect();
  window.__obs = new MutationObserver(hit);
  window.__obs.observe(document.body, {subtree: true, childList: true, characterData: true});
  hit();
}"""


def _value(k: int) -> str:
    """The round's temperature as the tile prints it: 12.1, 12.2, … (cool, no alert; never a simulated value
    in the same second)."""
    return f"{12.0 + 0.1 * (k % 40 + 1):.1f}"


def run(clients: int = 20, rounds: int = 30, every: float = 2.0, out=None, scene: bool = True) -> dict:
    out = out or sys.stderr           # looked up at the call: a test's captured stream is not the import's
    import httpx
    from playwright.sync_api import sync_playwright

    from indicators.access.store import AccessStore
    if clients < 1 or rounds < 1 or every <= 0:
        raise ValueError("--clients and --rounds must be at least 1, --every above 0")
    port = _free_port()
    base = f"http://127.0.0.1:{port}"
    ingest_token = secrets.token_urlsafe(32)
    with tempfile.TemporaryDirectory(prefix="bench-push-") as tmp:
        var = Path(tmp) / "var"
        with AccessStore.open(var / "access.sqlite") as store:
            tokens = [store.issue_device_token(f"bench-push-{i}", by="bench-push") for i in range(clients)]
        env = {k: v for k, v in os.environ.items() if not k.startswith("SCENIC_TWIN_RATE_")}
        env["SCENIC_TWIN_INGEST_TOKEN"] = ingest_token
        print(f"bench push: server at 1x (real time), {clients} wall screens in Chromium"
              f"{'' if scene else ' without the 3D scene'}, {rounds} observations {every:g} s apart", file=out, flush=True)
        server, log = _start([sys.executable, "-m", "dashboard.cli", "run", "--port", str(port), "--var", str(var),
                              "--speed", "1"], env, Path(tmp) / "server.log", base, "the server")
        samples: list[float] = []
        missed = 0
        try:
            with sync_playwright() as p:
                # 20 screens in one browser: none of them is a background tab to be throttled (each stands for
                # a wall screen of its own, in the foreground)
                browser = p.chromium.launch(executable_path="/usr/bin/chromium", headless=True, args=FLAGS + [
                    "--disable-background-timer-throttling", "--disable-renderer-backgrounding",
                    "--disable-backgrounding-occluded-windows"] + ([] if scene else ["--disable-webgl", "--disable-3d-apis"]))
                pages = []
                for i, token in enumerate(tokens):
                    ctx = browser.new_context(viewport={"width": 1280, "height": 720}, bypass_csp=True)
                    page = ctx.new_page()
                    page.goto(base + "/wall")
                    page.click("details summary")
                    page.fill("input[name=device_token]", token)
                    page.click("button[type=submit]")
                    pages.append(page)
                for page in pages:
                    page.wait_for_function("document.querySelector('[data-kpi=temperature] .st-kpi-value') !== null",
                                           timeout=180_000)
                print(f"  {len(pages)} walls show the temperature tile; measuring …", file=out, flush=True)
                headers = {"Authorization": f"Bearer {ingest_token}", "Content-Type": "application/x-ndjson"}
                with httpx.Client(base_url=base, headers=headers, timeout=30, trust_env=False) as c:
                    for k in range(rounds):
                        want = _value(k)
                        for page in pages:
                            page.evaluate(WATCH, want)
                        time.sleep(every * (0.5 + (k * 0.37) % 0.5))    # a different phase of the tick each round
                        sent = time.time()
                        at = datetime.fromtimestamp(sent, timezone.utc).isoformat()
                        body = "\n".join(json.dumps({"event_id": f"bench-push-{k}-{s}", "event_time": at,
                                                     "station_id": s, "temperature_c": float(want)})
                                         for s in STATIONS)
                        r = c.post("/ingest/weather", content=body.encode())
                        if r.status_code != 200:
                            raise RuntimeError(f"/ingest/weather answered {r.status_code}: {r.text[:300]}")
                        deadline = time.monotonic() + 15
                        seen: list[float | None] = [None] * len(pages)
                        while time.monotonic() < deadline and any(s is None for s in seen):
                            for i, page in enumerate(pages):
                                if seen[i] is None:
                                    seen[i] = page.evaluate("window.__seen")
                            time.sleep(0.05)
                        got = [s - sent * 1000 for s in seen if s is not None]
                        missed += sum(1 for s in seen if s is None)
                        samples += got
                        print(f"  round {k + 1}/{rounds}: {want} °C on {len(got)}/{len(pages)} walls, "
                              f"p50 {_pct(got, 0.5) or 0:.0f} ms, max {max(got, default=0):.0f} ms", file=out, flush=True)
                browser.close()
        finally:
            server.terminate()
            try:
                server.wait(30)
            except Exception:
                server.kill()
            log.close()
    return {"clients": clients, "rounds": rounds, "samples": len(samples), "missed": missed,
            "event_to_dom_ms": {q: None if _pct(samples, v) is None else round(_pct(samples, v), 1)
                                for q, v in (("p50", 0.5), ("p95", 0.95), ("p99", 0.99))},
            "max_ms": round(max(samples), 1) if samples else None, "goal_p95_ms": GOAL_P95_MS,
            "cores": os.cpu_count(), "scene_3d": scene}


def text(r: dict) -> str:
    e = r["event_to_dom_ms"]
    return (f"bench push: {r['clients']} wall screens (Chromium{'' if r.get('scene_3d', True) else ', no 3D scene'}), "
            f"{r['rounds']} observations at real-time speed, "
            f"{r['samples']} samples, {r['missed']} not shown within 15 s\n"
            f"  event → DOM  p50 {e['p50']} ms  p95 {e['p95']} ms  p99 {e['p99']} ms  max {r['max_ms']} ms "
            f"(goal p95 ≤ {r['goal_p95_ms']:g} ms; {r['cores']} cores shared by the server and the browsers)")


def _cmd(args) -> int:
    try:
        r = run(args.clients, args.rounds, args.every, scene=not args.no_3d)
    except (RuntimeError, ValueError) as e:
        print(f"scenic-twin bench push: {e}", file=sys.stderr)
        return 2
    print(json.dumps(r, indent=2) if args.json else text(r))
    return 0


def register(bench_sub) -> None:
    p = bench_sub.add_parser("push", help="event → value on the wall in Chromium at real-time speed (p50/p95/p99)",
                             description=__doc__.split("\n\n")[1])
    p.add_argument("--clients", type=int, default=20, help="wall screens (default 20)")
    p.add_argument("--rounds", type=int, default=30, help="observations sent (default 30)")
    p.add_argument("--every", type=float, default=2.0, help="seconds between observations, about (default 2)")
    p.add_argument("--no-3d", action="store_true",
                   help="screens without the twin's 3D scene (WebGL off): the server and the push, not software drawing")
    p.add_argument("--json", action="store_true", help="print JSON")
    p.set_defaults(func=_cmd)
