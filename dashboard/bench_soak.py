"""`scenic-twin bench soak`: the server left running for a simulated day (or more), measured.

Starts `scenic-twin run` on a fresh state folder (embedded defaults: simulated feeds, SQLite),
accelerated ``--speed`` times, and samples until ``--hours`` of simulated time have passed:
the server's resident memory (VmRSS), the size of its state folder (by top-level entry: tick
history, feed log, stores, checkpoints …) and the simulated clock it reports on /healthz.

Growth is the least-squares slope over the samples after ``--warmup-hours`` (caches, windows and
the day's first partitions fill in the first hours), both per simulated hour - what the data
makes grow, the figure for a real-time server - and per hour of this run's wall time (what a
leak in time, not in data, would show).  A third slope is that of each simulated hour's lowest
sample (the *floor*): what the server keeps, without the passing peaks of an hour's compaction, a
backtest or the allocator holding freed memory for a while - a leak raises the floor, a peak does
not.  A day's load curve moves memory too (the evening's crowds and events): run two days with
``--warmup-hours 24`` to compare a day with the day before.  The speed the server actually kept is printed too: a
server that falls behind shows less data per real hour, not less growth per simulated hour.
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from datetime import datetime
from pathlib import Path

from dashboard.bench_fanout import _start
from dashboard.bench_load import _free_port, _rss_kb
from dashboard.bench_wall import _slope_per_hour

GOAL_RSS_MB_PER_H = 1.0


def _sizes(var: Path) -> dict[str, int]:
    """Bytes under each top-level entry of the state folder."""
    out: dict[str, int] = {}
    for entry in var.iterdir():
        total = 0
        if entry.is_file():
            total = entry.stat().st_size
        else:
            for dirpath, _dirs, files in os.walk(entry):
                for f in files:
                    try:
                        total += os.stat(os.path.join(dirpath, f)).st_size
                    except OSError:           # a part renamed or pruned meanwhile
                        pass
        out[entry.name] = total
    return out


def _open_cases(var: Path) -> int | None:
    """Cases not closed, read from the alert store (read-only): an unattended server's work queue
    grows - nobody closes a case in a soak - and with it what the service holds (the console lists 200)."""
    import sqlite3
    path = var / "alerts.sqlite"
    if not path.exists():
        return None
    try:
        with sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=2) as db:
            return int(db.execute("SELECT COUNT(*) FROM cases WHERE status <> 'closed'").fetchone()[0])
    except sqlite3.Error:
        return None


def _sim_now(base: str) -> datetime | None:
    import httpx
    try:
        h = httpx.get(base + "/healthz", timeout=5, trust_env=False).json()
    except (httpx.HTTPError, ValueError):
        return None
    return datetime.fromisoformat(h["now"]) if h.get("now") else None


def run(hours: float = 24.0, speed: float = 240.0, scenario: str = "normal-weekday",
        start: str = "2026-04-15T00:00+08:00", warmup_hours: float = 2.0, every_s: float | None = None,
        out=None) -> dict:
    """Run the soak; returns the samples and the growth figures."""
    out = out or sys.stderr           # looked up at the call (a test's captured stream)
    if hours <= warmup_hours:
        raise ValueError(f"--hours ({hours:g}) must be longer than the warm-up ({warmup_hours:g} h)")
    every = every_s or max(1.0, 1800.0 / speed)         # a sample every 30 simulated minutes by default
    samples: list[dict] = []
    with tempfile.TemporaryDirectory(prefix="scenic-soak-") as tmp:
        var = Path(tmp) / "var"
        port = _free_port()
        base = f"http://127.0.0.1:{port}"
        env = dict(os.environ, PYTHONUNBUFFERED="1")
        cmd = [sys.executable, "-m", "dashboard.cli", "run", "--port", str(port), "--var", str(var),
               "--speed", f"{speed:g}", "--scenario", scenario, "--start", start]
        print(f"soak: {hours:g} simulated hours of {scenario} at {speed:g}x (about "
              f"{hours * 3600 / speed / 60:.1f} min), state folder {var}", file=out, flush=True)
        proc, log = _start(cmd, env, Path(tmp) / "server.log", base, "the server")
        t0 = time.monotonic()
        sim0 = _sim_now(base)
        try:
            while True:
                time.sleep(every)
                if proc.poll() is not None:
                    raise RuntimeError(f"the server exited ({proc.returncode}) after "
                                       f"{time.monotonic() - t0:.0f} s; its log ends with:\n"
                                       f"{(Path(tmp) / 'server.log').read_text(errors='replace')[-2000:]}")
                now = _sim_now(base)
                rss = _rss_kb(proc.pid)
                if now is None or rss is None:
                    continue
                sizes = _sizes(var)
                sim_h = (now - sim0).total_seconds() / 3600
                samples.append({"real_s": round(time.monotonic() - t0, 1), "sim_h": round(sim_h, 3),
                                "rss_mb": round(rss / 1024, 1), "disk_mb": round(sum(sizes.values()) / 1e6, 2),
                                "open_cases": _open_cases(var),
                                "by_entry_mb": {k: round(v / 1e6, 2) for k, v in sorted(sizes.items())}})
                s = samples[-1]
                print(f"  {s['sim_h']:6.2f} simulated h ({s['real_s']:6.0f} s): RSS {s['rss_mb']:7.1f} MB, "
                      f"state folder {s['disk_mb']:8.2f} MB", file=out, flush=True)
                if sim_h >= hours:
                    break
        finally:
            proc.terminate()
            try:
                proc.wait(30)
            except subprocess.TimeoutExpired:
                proc.kill()
            log.close()
    return summarise(samples, hours=hours, speed=speed, scenario=scenario, warmup_hours=warmup_hours)


def summarise(samples: list[dict], *, hours: float, speed: float, scenario: str, warmup_hours: float) -> dict:
    """Growth per simulated and per real hour after the warm-up (least squares), disk per simulated day."""
    after = [s for s in samples if s["sim_h"] >= warmup_hours]
    rss_sim = _slope_per_hour([(s["sim_h"] * 3600, s["rss_mb"]) for s in after])
    rss_real = _slope_per_hour([(s["real_s"], s["rss_mb"]) for s in after])
    disk_sim = _slope_per_hour([(s["sim_h"] * 3600, s["disk_mb"]) for s in after])
    floor: dict[int, tuple[float, float]] = {}
    for s in after:
        h = int(s["sim_h"])
        if h not in floor or s["rss_mb"] < floor[h][1]:
            floor[h] = (s["sim_h"] * 3600, s["rss_mb"])
    rss_floor = _slope_per_hour(list(floor.values())) if len(floor) >= 3 else None
    last = samples[-1] if samples else None
    kept = (last["sim_h"] * 3600 / last["real_s"]) if last and last["real_s"] else None
    by_day = {}
    if len(after) >= 2:
        a, b = after[0], after[-1]
        span = b["sim_h"] - a["sim_h"]
        if span > 0:
            by_day = {k: round((v - a["by_entry_mb"].get(k, 0.0)) / span * 24, 2) for k, v in b["by_entry_mb"].items()}
    return {"scenario": scenario, "hours": hours, "speed": speed, "speed_kept": round(kept, 1) if kept else None,
            "warmup_hours": warmup_hours, "samples": samples,
            "rss_mb_per_sim_hour": None if rss_sim is None else round(rss_sim, 3),
            "rss_mb_per_real_hour": None if rss_real is None else round(rss_real, 3),
            "rss_floor_mb_per_sim_hour": None if rss_floor is None else round(rss_floor, 3),
            "disk_mb_per_sim_day": None if disk_sim is None else round(disk_sim * 24, 2),
            "disk_mb_per_sim_day_by_entry": by_day,
            "rss_mb_end": last["rss_mb"] if last else None, "disk_mb_end": last["disk_mb"] if last else None,
            "open_cases": [after[0].get("open_cases"), last.get("open_cases")] if after else None,
            "goal_rss_mb_per_hour": GOAL_RSS_MB_PER_H}


def text(r: dict) -> str:
    def f(x, unit):
        return "n/a" if x is None else f"{x:+.2f} {unit}"
    lines = [f"soak: {r['hours']:g} simulated hours of {r['scenario']} at {r['speed']:g}x "
             f"(kept {r['speed_kept'] or 0:g}x), {len(r['samples'])} samples, warm-up {r['warmup_hours']:g} h",
             f"  RSS after warm-up: {f(r['rss_mb_per_sim_hour'], 'MB per simulated hour')}, "
             f"{f(r['rss_mb_per_real_hour'], 'MB per hour of this run')} (goal ≤ {r['goal_rss_mb_per_hour']:g} MB/h); "
             f"{r['rss_mb_end']} MB at the end",
             f"  RSS floor (each simulated hour's lowest sample): {f(r.get('rss_floor_mb_per_sim_hour'), 'MB per simulated hour')}",
             f"  open cases after the warm-up → at the end: {' → '.join(str(x) for x in (r.get('open_cases') or []))} "
             f"(nobody closes them in a soak; the console lists 200, the overdue first)",
             f"  state folder: {f(r['disk_mb_per_sim_day'], 'MB per simulated day')}; {r['disk_mb_end']} MB at the end"]
    for k, v in sorted(r["disk_mb_per_sim_day_by_entry"].items(), key=lambda kv: -kv[1]):
        if v:
            lines.append(f"    {k:28s} {v:+9.2f} MB per simulated day")
    return "\n".join(lines)


def _cmd(args) -> int:
    try:
        r = run(args.hours, args.speed, args.scenario, args.start, args.warmup_hours, args.every)
    except (RuntimeError, ValueError) as e:
        print(f"scenic-twin bench soak: {e}", file=sys.stderr)
        return 2
    print(json.dumps(r, indent=2, ensure_ascii=False) if args.json else text(r))
    return 0


def register(bench_sub) -> None:
    p = bench_sub.add_parser("soak", help="the server for a simulated day: RSS and state-folder growth per hour",
                             description=__doc__.split("\n\n")[1])
    p.add_argument("--hours", type=float, default=24.0, help="simulated hours to run (default 24)")
    p.add_argument("--speed", type=float, default=240.0, help="simulated seconds per second (default 240)")
    p.add_argument("--scenario", default="normal-weekday", help="simulator scenario (default normal-weekday)")
    p.add_argument("--start", default="2026-04-15T00:00+08:00", help="simulated start, ISO with zone")
    p.add_argument("--warmup-hours", type=float, default=2.0, help="simulated hours left out of the slopes (default 2)")
    p.add_argument("--every", type=float, default=None, help="seconds between samples (default: 30 simulated minutes)")
    p.add_argument("--json", action="store_true", help="print JSON")
    p.set_defaults(func=_cmd)
