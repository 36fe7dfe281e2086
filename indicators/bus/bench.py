"""`scenic-twin bench scale`: ingest + engine throughput of two scenic areas with one engine worker
and with two, measured in one run against one local NATS server (issue 12).

One recording (the built-in simulator, ``normal-weekday``, an evening from 17:00) is made once and
kept in memory as its feed batches.  Then two sides do the same work, one after the other:

A (baseline)  areas ``canton-tower-copy-1`` and ``-2``: ONE ingest process publishes the recording
              into both (an :class:`~indicators.feeds.ingest.Ingestor` per area writing into a
              :class:`~.jetstream.JetStreamSink`, as a feed front does) and ONE engine worker
              process (:func:`~.worker.run_worker`) computes both areas.
B (scale-out) fresh areas ``-3`` and ``-4``, the same recording: two ingest processes (one per
              area) and two worker processes (one area each), all at once.

Every ingest and worker process is a real OS process (``multiprocessing`` spawn), so the GIL does
not decide the result; each is started and ready (connected, inventory and catalog loaded,
consumer created, recording decoded) before the clock starts.  The clock runs from the moment
the ingest processes are told to go until the last tick of every area is in its VALUES stream:
the recording's end is known (the newest stored event time minus the allowed lateness gives the
last tick the engine can compute), and the worker has also acknowledged every feed message.
Throughput = events stored in the feed streams (and computed by the engines) per second of that
wall time; the headline is B's ÷ A's.  Ingest alone (until every ingest process had its last
batch acknowledged by JetStream) is given too, and the CPU seconds each process used in the
window, from which the ideal ratio on this machine follows: B cannot take less than its CPU work
divided by the usable cores (the NATS server, the ingest processes and the bench itself compete
with the workers for them), nor less than its busiest process needs.

Same work check: the values of copy-1 and copy-3 (and of copy-2 and copy-4) are read back from
their VALUES streams (:func:`~.worker.read_values`) and compared tick by tick and at the end;
the bench fails (exit 1) when they differ or when the two sides did not do the same work.

The machine may be shared: the CPU that other processes used during each side is measured
(/proc/stat less this bench's processes) and printed; above a quarter of a core the figures are
flagged as unreliable, with the ideal ratio for the cores that were left.

Exit codes: 0 done, 1 the sides gave different values or work, 2 the bench could not run (a
process failed, a timeout, no nats-server), 130 interrupted (every process it started is stopped).
"""
from __future__ import annotations

import argparse
import json
import os
import signal
import sys
import tempfile
import time
import traceback
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any, Callable

SCENARIO = "normal-weekday"
DEFAULT_START = "2026-04-15T17:00+08:00"   # a Wednesday evening
DEFAULT_MINUTES = 420                       # ≈ 2-4 min for the whole bench on 2 cores
MIN_MINUTES = 3                             # values lag event time by the allowed lateness (2 min)
SIDE_A = ("canton-tower-copy-1", "canton-tower-copy-2")
SIDE_B = ("canton-tower-copy-3", "canton-tower-copy-4")
GOAL = 1.8
GOAL_CORES = 4
POLL_S = 0.1                                # how often the end of a side is looked for
STUCK_S = 15.0                              # every message applied, end tick missing this long: fail
READY_TIMEOUT_S = 300.0


class BenchFailed(RuntimeError):
    """The bench could not run to its end (a process failed, a timeout); the message says why."""


# ------------------------------------------------------------------ small helpers
def _proc_cpu_s(pid: int | None) -> float | None:
    """User + system CPU seconds of a live process (Linux /proc), None when unreadable."""
    if pid is None:
        return None
    try:
        with open(f"/proc/{pid}/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    except (OSError, IndexError, ValueError):
        return None


def _self_cpu_s() -> float:
    import resource
    r = resource.getrusage(resource.RUSAGE_SELF)
    return r.ru_utime + r.ru_stime


def _machine_busy_s() -> float | None:
    """CPU seconds every process of the machine used so far, all cores (Linux /proc/stat)."""
    try:
        with open("/proc/stat") as f:
            v = [int(x) for x in f.readline().split()[1:9]]
    except (OSError, ValueError):
        return None
    user, nice, system, idle, iowait, irq, softirq, steal = v
    return (user + nice + system + irq + softirq + steal) / os.sysconf("SC_CLK_TCK")


def _usable_cores() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        return os.cpu_count() or 1


def _loadavg() -> float | None:
    try:
        return round(os.getloadavg()[0], 2)
    except OSError:
        return None


def _r(x: float | None, n: int = 2) -> float | None:
    return None if x is None else round(x, n)


def _sub(a: float | None, b: float | None) -> float | None:
    return None if a is None or b is None else a - b


# ------------------------------------------------------------------ the recording
def make_recording(minutes: int, *, start: datetime, seed: int = 0) -> dict:
    """The simulated evening as the batches a feed front would receive, in arrival order:
    ``items`` = [(kind, arrival, payload)] where payload is Arrow IPC bytes of the batch's table
    (what crosses to the ingest processes) or, for ``malformed``, the list of broken records."""
    from indicators.feeds.simulator import MALFORMED, simulate
    from .jetstream import table_bytes
    items: list[tuple[str, datetime, Any]] = []
    events = malformed = 0
    by_kind: dict[str, int] = {}
    sim = simulate(SCENARIO, start, timedelta(minutes=minutes), seed)
    for b in sim:
        if b.kind == MALFORMED:
            items.append((b.kind, b.arrival, list(b.payload)))
            malformed += len(b.payload)
        else:
            items.append((b.kind, b.arrival, table_bytes(b.payload)))
            events += b.payload.num_rows
            by_kind[b.kind] = by_kind.get(b.kind, 0) + b.payload.num_rows
    return {"items": items, "start": sim.start, "minutes": minutes, "seed": seed, "batches": len(items),
            "events": events, "malformed_records": malformed, "events_by_kind": dict(sorted(by_kind.items())),
            "bytes": sum(len(p) for k, _, p in items if isinstance(p, bytes))}


# ------------------------------------------------------------------ child processes
class _ParentWatch:
    """``is_set()`` of the parent's event, or True once the parent is gone (an orphan stops)."""

    def __init__(self, event, parent: int) -> None:
        self.event = event
        self.parent = parent

    def is_set(self) -> bool:
        return self.event.is_set() or os.getppid() != self.parent

    def wait(self, timeout: float | None = None) -> bool:
        deadline = None if timeout is None else time.monotonic() + timeout
        while not self.is_set():
            left = 0.5 if deadline is None else min(0.5, deadline - time.monotonic())
            if left <= 0:
                return False
            self.event.wait(left)
        return True


def _ingest_child(label: str, url: str, areas: list[str], items: list, dead_dir: str, parent: int,
                  go, stop, out) -> None:
    """One feed front for ``areas``: every batch of the recording into each area's ingestor, in
    turn (a front of several areas), with the ingestor's clock at the batch's arrival."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)           # the parent cleans up on Ctrl-C
    try:
        import pyarrow as pa

        from indicators.feeds.deadletter import DeadLetterStore
        from indicators.feeds.ingest import Ingestor, references_from_inventory
        from indicators.feeds.simulator import MALFORMED, SimClock
        from twin_assets import inventory as inv

        from .jetstream import Bus, JetStreamSink, table_of

        class CountingSink(JetStreamSink):
            """What the ingestor stored: rows, batches, the newest event time, the last sequence."""
            rows = batches = last = 0
            max_ms: int | None = None

            def append(self, kind, table):
                seq = super().append(kind, table)
                self.rows += table.num_rows
                self.batches += 1
                self.last = seq
                if table.num_rows and "event_time" in table.column_names:
                    col = table.column("event_time").cast(pa.timestamp("ms", tz="UTC")).cast(pa.int64())
                    hi = max((v for v in col.to_pylist() if v is not None), default=None)
                    if hi is not None:
                        self.max_ms = hi if self.max_ms is None else max(self.max_ms, hi)
                return seq

        work = [(k, at, payload if k == MALFORMED else table_of(payload)) for k, at, payload in items]
        refs = references_from_inventory(inv.load())
        bus = Bus(url, name=f"bench-scale-{label}")
        fronts = []
        for a in areas:
            clock = SimClock(work[0][1])
            sink = CountingSink(bus, a)
            dead = DeadLetterStore(Path(dead_dir) / f"dead-{a}.sqlite")
            fronts.append((a, clock, sink, dead, Ingestor(sink, dead, clock=clock, references=refs)))
        out.put(("ready", label, os.getpid()))
        if not _ParentWatch(go, parent).wait() or stop.is_set() or os.getppid() != parent:
            return
        cpu0 = _self_cpu_s()
        received = {a: {"accepted": 0, "duplicates": 0, "late": 0, "rejected": 0, "batches": 0} for a in areas}
        for kind, at, payload in work:
            if stop.is_set():
                return
            for a, clock, sink, dead, ing in fronts:
                clock.set(at)
                if kind == MALFORMED:                   # as run_live: dict records of their kind
                    by_kind: dict[str, list[dict]] = {}
                    for rec in payload:
                        by_kind.setdefault(str(rec.get("kind", "(unknown)")), []).append(rec)
                    receipts = [ing.submit(k, recs, source="sim") for k, recs in by_kind.items()]
                else:
                    receipts = [ing.submit(kind, payload)]
                r = received[a]
                for rc in receipts:
                    r["accepted"] += rc.accepted
                    r["duplicates"] += rc.duplicates
                    r["late"] += rc.late
                    r["rejected"] += len(rc.rejected)
                r["batches"] += 1
        done_at = time.time()
        cpu = _self_cpu_s() - cpu0
        areas_out = {a: {**received[a], "stored_rows": sink.rows, "appends": sink.batches,
                         "feed_messages": sink.published, "last_seq": sink.last, "max_event_ms": sink.max_ms}
                     for a, clock, sink, dead, ing in fronts}
        for *_, dead, _ in fronts:
            dead.close()
        bus.close()
        out.put(("done", label, {"done_at": done_at, "cpu_s": cpu, "areas": areas_out}))
    except BaseException:
        out.put(("error", label, traceback.format_exc()))
        raise SystemExit(1)


def _worker_child(label: str, url: str, areas: list[str], checkpoint_every_s: float, parent: int,
                  stop, out) -> None:
    """An engine worker process: :func:`run_worker` on ``areas`` until the parent says stop."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    try:
        from .jetstream import Bus
        from .worker import run_worker
        said = []

        def report(line: str) -> None:
            if not said:                                 # run_worker's first line: every area set up
                said.append(line)
                out.put(("ready", label, os.getpid()))
        with Bus(url, name=f"bench-scale-{label}") as bus:
            st = run_worker(bus, list(areas), checkpoint_every_s=checkpoint_every_s,
                            stop=_ParentWatch(stop, parent), report=report)
        out.put(("done", label, {"status": st}))
    except BaseException:
        out.put(("error", label, traceback.format_exc()))
        raise SystemExit(1)


# ------------------------------------------------------------------ one side
class _Side:
    """Start one side's processes, time it, stop them; ``run()`` returns its figures."""

    def __init__(self, name: str, url: str, bus, nats_pid: int | None, recording: dict,
                 ingest_groups: list[list[str]], worker_groups: list[list[str]], tmp: Path, *,
                 checkpoint_every_s: float, timeout_s: float, say: Callable[[str], None]) -> None:
        import multiprocessing as mp
        self.name, self.url, self.bus, self.nats_pid = name, url, bus, nats_pid
        self.recording, self.tmp, self.say = recording, tmp, say
        self.ingest_groups, self.worker_groups = ingest_groups, worker_groups
        self.areas = [a for g in ingest_groups for a in g]
        self.checkpoint_every_s, self.timeout_s = checkpoint_every_s, timeout_s
        self.ctx = mp.get_context("spawn")
        self.out = self.ctx.Queue()
        self.go, self.stop = self.ctx.Event(), self.ctx.Event()
        self.procs: dict[str, Any] = {}
        self.closed = False
        self.msgs: dict[str, dict[str, Any]] = {"ready": {}, "done": {}}

    # -------------------------------------------------------------- process plumbing
    def _start(self, label: str, target, args: tuple) -> None:
        p = self.ctx.Process(target=target, args=args, name=f"bench-scale-{label}", daemon=True)
        p.start()
        self.procs[label] = p

    def _drain(self, timeout: float = 0.0) -> bool:
        """Take the children's messages; raises on a child's error.  True if one came."""
        import queue
        got = False
        while True:
            try:
                kind, label, body = self.out.get(timeout=timeout) if timeout and not got else self.out.get_nowait()
            except queue.Empty:
                return got
            got = True
            if kind == "error":
                raise BenchFailed(f"side {self.name}: process {label} failed:\n{body}")
            self.msgs[kind][label] = body

    def _check_alive(self, labels) -> None:
        for lb in labels:
            p = self.procs[lb]
            if p.exitcode is not None and lb not in self.msgs["done"]:
                self._drain()
                raise BenchFailed(f"side {self.name}: process {lb} (pid {p.pid}) exited with code {p.exitcode} "
                                  "before its work was done")

    def _wait_ready(self, labels: list[str]) -> None:
        deadline = time.monotonic() + READY_TIMEOUT_S
        while not all(lb in self.msgs["ready"] for lb in labels):
            if time.monotonic() > deadline:
                raise BenchFailed(f"side {self.name}: {', '.join(lb for lb in labels if lb not in self.msgs['ready'])} "
                                  f"not ready after {READY_TIMEOUT_S:g} s")
            self._drain(0.2)
            self._check_alive(labels)

    def close(self) -> None:
        """Stop every child (asked first, then terminated, then killed); once."""
        if self.closed:
            return
        self.closed = True
        self.stop.set()
        self.go.set()                                   # an ingest process waiting to start sees stop
        deadline = time.monotonic() + 60
        for p in self.procs.values():
            while p.is_alive() and time.monotonic() < deadline:
                try:
                    self._drain(0.2)                    # a child's last put must not block its exit
                except BenchFailed:
                    pass
                p.join(0.05)
        for p in self.procs.values():
            if p.is_alive():
                p.terminate()
                p.join(5)
            if p.is_alive():
                p.kill()
                p.join(5)
        self.out.close()
        self.out.cancel_join_thread()

    # -------------------------------------------------------------- the end
    def _last_tick(self, area: str) -> int | None:
        from nats.js.errors import NotFoundError

        from . import names
        try:
            m = self.bus.call(self.bus.js.get_last_msg(names.values_stream(area), names.values_subject(area)))
        except NotFoundError:
            return None
        tick = (m.headers or {}).get("Scenic-Tick")
        if tick is not None:
            return int(tick)
        from .jetstream import table_of
        return int(table_of(m.data).schema.metadata[b"time_ms"])

    def _applied_all(self, area: str, last_seq: int) -> bool:
        from . import names
        info = self.bus.call(self.bus.js.consumer_info(names.feed_stream(area), names.engine_consumer(area)))
        return int(info.ack_floor.stream_seq or 0) >= last_seq

    # -------------------------------------------------------------- run
    def run(self) -> dict:
        from indicators.engine.engine import DEFAULT_LATENESS
        tick_ms = 1000
        lateness_ms = DEFAULT_LATENESS // timedelta(milliseconds=1)
        parent = os.getpid()
        load_before = _loadavg()
        workers = [f"worker-{i + 1}" for i in range(len(self.worker_groups))]
        ingests = [f"ingest-{i + 1}" for i in range(len(self.ingest_groups))]
        self.say(f"side {self.name}: starting {len(workers)} engine worker process(es) "
                 f"({'; '.join(', '.join(g) for g in self.worker_groups)}) and {len(ingests)} ingest process(es)")
        for lb, g in zip(workers, self.worker_groups):
            self._start(lb, _worker_child, (lb, self.url, g, self.checkpoint_every_s, parent, self.stop, self.out))
        self._wait_ready(workers)
        for lb, g in zip(ingests, self.ingest_groups):
            self._start(lb, _ingest_child, (lb, self.url, g, self.recording["items"], str(self.tmp), parent,
                                            self.go, self.stop, self.out))
        self._wait_ready(ingests)
        pids = {lb: self.msgs["ready"][lb] for lb in workers}
        cpu0 = {lb: _proc_cpu_s(pid) for lb, pid in pids.items()}
        nats0, self0, busy0 = _proc_cpu_s(self.nats_pid), _self_cpu_s(), _machine_busy_s()

        self.say(f"side {self.name}: every process ready; go")
        t0 = time.time()
        self.go.set()
        end_tick: dict[str, int] = {}
        last_seq: dict[str, int] = {}
        seen_tick: dict[str, int | None] = {a: None for a in self.areas}
        ticked: dict[str, float] = {}                   # area -> when its end tick was seen
        finished: dict[str, float] = {}                 # area -> when its end tick and every ack were seen
        next_check: dict[str, float] = {}
        stuck: dict[str, float] = {}
        ingest_done_at = None
        next_note = time.monotonic() + 5.0
        deadline = time.monotonic() + self.timeout_s
        while len(finished) < len(self.areas):
            self._drain()
            self._check_alive(workers + ingests)
            if ingest_done_at is None and all(lb in self.msgs["done"] for lb in ingests):
                ingest_done_at = max(self.msgs["done"][lb]["done_at"] for lb in ingests)
                for lb in ingests:
                    for a, st in self.msgs["done"][lb]["areas"].items():
                        last_seq[a] = st["last_seq"]
                        mx = st["max_event_ms"]
                        end_tick[a] = -1 if mx is None else (mx - lateness_ms) // tick_ms * tick_ms
                self.say(f"side {self.name}: ingest done after {ingest_done_at - t0:.1f} s; the engines end at "
                         f"{self._ticks_text(end_tick)}")
            for a in self.areas:
                if a in finished:
                    continue
                if a not in ticked:
                    seen_tick[a] = self._last_tick(a)
                    if a in end_tick and (seen_tick[a] or -1) >= end_tick[a]:
                        ticked[a] = time.time()
                    elif a in end_tick and time.monotonic() >= next_check.get(a, 0.0):
                        # every message applied and still short of the end: it will not come
                        next_check[a] = time.monotonic() + 1.0
                        if self._applied_all(a, last_seq[a]):
                            stuck.setdefault(a, time.monotonic())
                            if time.monotonic() - stuck[a] > STUCK_S:
                                raise BenchFailed(
                                    f"side {self.name}: the worker of {a} applied every feed message but its last "
                                    f"tick stays at {self._ticks_text({a: seen_tick[a]})}, short of the end the "
                                    f"recording gives ({self._ticks_text({a: end_tick[a]})}); see "
                                    "indicators/bus/bench.py (_Side.run) and the engine's watermark")
                if a in ticked and self._applied_all(a, last_seq[a]):
                    finished[a] = time.time()
            now = time.monotonic()
            if now > deadline:
                raise BenchFailed(f"side {self.name}: not done after {self.timeout_s:g} s (last ticks "
                                  f"{self._ticks_text(seen_tick, end_tick)}); raise --timeout or lower --minutes")
            if now >= next_note and len(finished) < len(self.areas):
                self.say(f"side {self.name}: {time.time() - t0:.0f} s: last tick "
                         f"{self._ticks_text(seen_tick, end_tick)}"
                         + ("" if ingest_done_at is not None else "; ingest running"))
                next_note = now + 5.0
            if len(finished) < len(self.areas):
                time.sleep(POLL_S)
        t_end = max(finished.values())
        cpu1 = {lb: _proc_cpu_s(pid) for lb, pid in pids.items()}
        nats1, self1, busy1 = _proc_cpu_s(self.nats_pid), _self_cpu_s(), _machine_busy_s()
        seconds = t_end - t0
        self.stop.set()
        deadline = time.monotonic() + 120
        while not all(lb in self.msgs["done"] for lb in workers):
            if time.monotonic() > deadline:
                raise BenchFailed(f"side {self.name}: the workers did not stop within 120 s")
            self._drain(0.2)
            self._check_alive(workers)
        self.say(f"side {self.name}: {seconds:.1f} s (ingest {ingest_done_at - t0:.1f} s)")
        return self._figures(seconds, t0, ingest_done_at, workers, ingests, cpu0, cpu1, nats0, nats1,
                             self1 - self0, _sub(busy1, busy0), load_before, end_tick)

    @staticmethod
    def _ticks_text(seen: dict[str, int | None], end: dict[str, int] | None = None) -> str:
        from datetime import timezone
        tz = timezone(timedelta(hours=8))                # Guangzhou time, as the recording's start

        def hms(t: int | None) -> str:
            return "—" if t is None or t < 0 else datetime.fromtimestamp(t / 1000, tz).strftime("%H:%M:%S")
        return ", ".join(f"copy-{a.rsplit('-', 1)[-1]} {hms(t)}" + (f"/{hms(end[a])}" if end and a in end else "")
                         for a, t in seen.items())

    def _figures(self, seconds, t0, ingest_done_at, workers, ingests, cpu0, cpu1, nats0, nats1, bench_cpu,
                 machine_cpu, load_before, end_tick) -> dict:
        done = self.msgs["done"]
        per_area: dict[str, dict] = {}
        for lb in ingests:
            for a, st in done[lb]["areas"].items():
                per_area[a] = {"ingest": st}
        for lb in workers:
            for st in done[lb]["status"]:
                per_area[st["area"]]["engine"] = {k: st[k] for k in ("messages", "ticks_published",
                                                                     "ticks_republished", "dead_lettered",
                                                                     "last_tick")}
        for a in per_area:
            per_area[a]["end_tick_ms"] = end_tick.get(a)
        events = sum(p["ingest"]["stored_rows"] for p in per_area.values())
        received = sum(p["ingest"]["accepted"] + p["ingest"]["duplicates"] + p["ingest"]["late"]
                       + p["ingest"]["rejected"] for p in per_area.values())
        ingest_s = ingest_done_at - t0
        worker_cpu = {lb: _r(_sub(cpu1[lb], cpu0[lb])) for lb in workers}
        ingest_cpu = {lb: _r(done[lb]["cpu_s"]) for lb in ingests}
        nats_cpu = _r(_sub(nats1, nats0))
        parts = [*worker_cpu.values(), *ingest_cpu.values(), nats_cpu, bench_cpu]
        total_cpu = None if any(x is None for x in parts) else sum(parts)
        others = None if machine_cpu is None or total_cpu is None else max(0.0, machine_cpu - total_cpu)
        return {
            "areas": list(self.areas),
            "processes": {"ingest": len(ingests), "workers": len(workers), "nats_servers": 1},
            "groups": {"ingest": self.ingest_groups, "workers": self.worker_groups},
            "load_average_before": load_before,
            "seconds": round(seconds, 3),
            "events": events, "events_received": received,
            "batches": sum(p["ingest"]["batches"] for p in per_area.values()),
            "feed_messages": sum(p["ingest"]["feed_messages"] for p in per_area.values()),
            "ticks": sum(p["engine"]["ticks_published"] for p in per_area.values()),
            "events_per_s": round(events / seconds, 1) if seconds > 0 else None,
            "ingest": {"seconds": round(ingest_s, 3),
                       "events_per_s": round(events / ingest_s, 1) if ingest_s > 0 else None},
            "engine": {"behind_ingest_s": round(seconds - ingest_s, 3),
                       "cpu_s": _r(sum(worker_cpu.values())) if None not in worker_cpu.values() else None,
                       "events_per_cpu_s": (round(events / sum(worker_cpu.values()), 1)
                                            if None not in worker_cpu.values() and sum(worker_cpu.values()) > 0
                                            else None)},
            "cpu_s": {"workers": worker_cpu, "ingest": ingest_cpu, "nats": nats_cpu, "bench": _r(bench_cpu),
                      "total": _r(total_cpu), "machine": _r(machine_cpu), "other_processes": _r(others)},
            "other_processes_cores": _r(others / seconds) if others is not None and seconds > 0 else None,
            "per_area": per_area,
        }


# ------------------------------------------------------------------ same values
def _values_digest(bus, area: str, n: int) -> dict:
    """Every tick of ``area``'s values stream replayed: the count, a digest of every tick's full
    values and qualities, and the final values."""
    import hashlib

    import numpy as np

    from .worker import read_values
    h = hashlib.blake2b(digest_size=16)

    def on_tick(lv) -> None:
        h.update(np.int64(lv.time_ms).tobytes())
        h.update(lv.values.tobytes())
        h.update(lv.quality.tobytes())
    lv = read_values(bus, area, n, on_tick=on_tick)
    return {"ticks": lv.applied, "stale": lv.stale, "last_tick_ms": lv.time_ms, "digest": h.hexdigest(),
            "values": lv.values, "quality": lv.quality}


def _same(a: dict, b: dict) -> bool:
    import numpy as np
    return (a["ticks"] == b["ticks"] and a["last_tick_ms"] == b["last_tick_ms"] and a["digest"] == b["digest"]
            and np.array_equal(a["values"], b["values"], equal_nan=True)
            and np.array_equal(a["quality"], b["quality"]))


def _work(side: dict) -> dict:
    """What a side did, per area position (1st, 2nd), to compare the sides."""
    out = []
    for a in side["areas"]:
        p = side["per_area"][a]
        out.append({k: p["ingest"][k] for k in ("stored_rows", "appends", "feed_messages", "accepted", "duplicates",
                                                "late", "rejected", "batches")}
                   | {"messages": p["engine"]["messages"], "ticks": p["engine"]["ticks_published"],
                      "end_tick_ms": p["end_tick_ms"]})
    return {"areas": out}


def _ideal(A: dict, B: dict, cores: float) -> tuple[float | None, float | None]:
    """The best B ÷ A this machine allows, and the shortest time B could take: side B's CPU work
    (its workers, ingest processes, the NATS server and the bench) cannot be done in less than
    that work spread over ``cores``, nor faster than its busiest single process."""
    cpu_b = B["cpu_s"]["total"]
    procs = [*B["cpu_s"]["workers"].values(), *B["cpu_s"]["ingest"].values(), B["cpu_s"]["nats"]]
    if cpu_b is None or None in procs or cores <= 0:
        return None, None
    floor_b = max(cpu_b / cores, *procs)
    return (round(A["seconds"] / floor_b, 2) if floor_b > 0 else None), round(floor_b, 2)


# ------------------------------------------------------------------ the bench
def run_scale_bench(minutes: int = DEFAULT_MINUTES, *, seed: int = 0, start: str = DEFAULT_START,
                    checkpoint_every_s: float = 0.0, timeout_s: float = 1800.0,
                    say: Callable[[str], None] = lambda s: None) -> dict:
    """Run both sides (see the module docstring); returns the result (``identical_values``,
    ``same_work``, ``ratio`` …).  Raises :class:`BenchFailed` when it cannot finish.  The child
    processes are spawned: a script calling this needs an ``if __name__ == "__main__":`` guard."""
    if minutes < MIN_MINUTES:
        raise ValueError(f"--minutes must be at least {MIN_MINUTES}: values lag event time by the allowed "
                         "lateness (2 min), so a shorter recording gives (almost) no ticks")
    t_all = time.monotonic()
    start_dt = datetime.fromisoformat(start)
    if start_dt.tzinfo is None:
        raise ValueError(f"start {start!r} has no UTC offset: add one, e.g. +08:00")
    ckpt = checkpoint_every_s if checkpoint_every_s > 0 else 1e9
    machine = {"cpu_count": os.cpu_count(), "usable_cores": _usable_cores(), "load_average_start": _loadavg()}
    say(f"bench scale: {machine['usable_cores']} usable core(s) (os.cpu_count() {machine['cpu_count']}), "
        f"load average {machine['load_average_start']}")
    t = time.perf_counter()
    say(f"bench scale: simulating {minutes} min of {SCENARIO} from {start_dt.isoformat()} …")
    rec = make_recording(minutes, start=start_dt, seed=seed)
    rec_s = time.perf_counter() - t
    say(f"bench scale: recording of {rec['events']:,} events in {rec['batches']:,} batches "
        f"({rec['bytes'] / 2**20:.1f} MiB Arrow IPC, {rec['malformed_records']} malformed records) in {rec_s:.1f} s")

    from .jetstream import Bus
    from .server import NatsServer
    sides: dict[str, dict] = {}
    with tempfile.TemporaryDirectory(prefix="bench-scale-") as tmp:
        tmp_p = Path(tmp)
        server = NatsServer(tmp_p / "nats").start()
        side_objs: list[_Side] = []
        try:
            server.ready()
            say(f"bench scale: NATS with JetStream on {server.url} (pid {server.proc.pid})")
            with Bus(server.url, name="bench-scale") as bus:
                for a in (*SIDE_A, *SIDE_B):
                    bus.ensure_area(a)
                for name, ingest_groups, worker_groups in (
                        ("A", [list(SIDE_A)], [list(SIDE_A)]),
                        ("B", [[SIDE_B[0]], [SIDE_B[1]]], [[SIDE_B[0]], [SIDE_B[1]]])):
                    d = tmp_p / f"side-{name}"
                    d.mkdir()
                    side = _Side(name, server.url, bus, server.proc.pid, rec, ingest_groups, worker_groups, d,
                                 checkpoint_every_s=ckpt, timeout_s=timeout_s, say=say)
                    side_objs.append(side)
                    try:
                        sides[name] = side.run()
                    finally:
                        side.close()
                say("bench scale: reading back the four VALUES streams to compare them …")
                from .worker import load_area
                n = len(load_area(SIDE_A[0]).catalog.ids)
                digests = {a: _values_digest(bus, a, n) for a in (*SIDE_A, *SIDE_B)}
        finally:
            for s in side_objs:
                s.close()
            server.stop()

    pairs = list(zip(SIDE_A, SIDE_B))
    identical = {f"{a} = {b}": _same(digests[a], digests[b]) for a, b in pairs}
    A, B = sides["A"], sides["B"]
    work_a, work_b = _work(A), _work(B)
    same_work = work_a == work_b and all(A[k] == B[k] for k in ("events", "batches", "feed_messages", "ticks"))
    ticks_in_streams = {a: digests[a]["ticks"] for a in digests}
    cores = machine["usable_cores"]
    ideal, floor_b = _ideal(A, B, cores)
    others_b = B["other_processes_cores"]
    ideal_loaded = None if others_b is None else _ideal(A, B, max(0.5, cores - others_b))[0]
    ratio = round(B["events_per_s"] / A["events_per_s"], 2) if A["events_per_s"] and B["events_per_s"] else None
    ingest_ratio = (round(B["ingest"]["events_per_s"] / A["ingest"]["events_per_s"], 2)
                    if A["ingest"]["events_per_s"] and B["ingest"]["events_per_s"] else None)
    applies = cores >= GOAL_CORES
    return {
        "config": {"scenario": SCENARIO, "start": start_dt.isoformat(), "minutes": minutes, "seed": seed,
                   "tick_s": 1, "checkpoint_every_s": checkpoint_every_s or None,
                   "sides": {"A": {"areas": list(SIDE_A), "ingest_processes": 1, "workers": 1},
                             "B": {"areas": list(SIDE_B), "ingest_processes": 2, "workers": 2}}},
        "machine": machine,
        "recording": {k: rec[k] for k in ("minutes", "batches", "events", "malformed_records", "events_by_kind",
                                          "bytes")} | {"simulate_s": round(rec_s, 2)},
        "sides": sides,
        "ratio": {"pipeline": ratio, "ingest": ingest_ratio, "ideal_on_this_machine": ideal,
                  "b_seconds_at_least": floor_b, "ideal_given_other_load": ideal_loaded,
                  "of_ideal": round(ratio / ideal, 2) if ratio and ideal else None,
                  "goal": GOAL, "goal_cores": GOAL_CORES, "goal_applies": applies,
                  "goal_met": (ratio >= GOAL) if applies and ratio is not None else None},
        "identical_values": all(identical.values()),
        "identical": identical,
        "ticks_in_values_streams": ticks_in_streams,
        "same_work": same_work,
        "work": {"A": work_a, "B": work_b},
        "seconds_total": round(time.monotonic() - t_all, 1),
    }


# ------------------------------------------------------------------ report
def format_report(r: dict) -> str:
    c, m, rec, q = r["config"], r["machine"], r["recording"], r["ratio"]
    A, B = r["sides"]["A"], r["sides"]["B"]
    lines = [
        f"bench scale: {c['scenario']} from {c['start']}, {c['minutes']} min (seed {c['seed']}): "
        f"{rec['events']:,} events in {rec['batches']:,} batches per area, into 2 areas per side",
        f"  cores: os.cpu_count() {m['cpu_count']}, usable (sched_getaffinity) {m['usable_cores']}; "
        f"load average at start {m['load_average_start']} (other jobs share the machine)",
        "",
        f"  {'side':<34}{'seconds':>9}{'events/s':>11}{'ingest s':>10}{'ingest ev/s':>13}{'engine +s':>10}"
        f"{'CPU s':>8}  CPU s: workers / ingest / NATS / bench",
    ]
    for name, s, label in (("A", A, "A: 1 ingest, 1 worker (2 areas)"), ("B", B, "B: 2 ingest, 2 workers (1 each)")):
        cpu = s["cpu_s"]
        lines.append(
            f"  {label:<34}{s['seconds']:>9.1f}{s['events_per_s'] or 0:>11,.0f}{s['ingest']['seconds']:>10.1f}"
            f"{s['ingest']['events_per_s'] or 0:>13,.0f}{s['engine']['behind_ingest_s']:>10.1f}"
            f"{cpu['total'] if cpu['total'] is not None else float('nan'):>8.1f}  "
            f"{' + '.join(f'{v:.1f}' for v in cpu['workers'].values())} / "
            f"{' + '.join(f'{v:.1f}' for v in cpu['ingest'].values())} / {cpu['nats']} / {cpu['bench']}")
    lines += [
        *(f"  work, side {n}: {s['events']:,} events stored ({s['events_received']:,} received), {s['batches']:,} "
          f"batches, {s['feed_messages']:,} feed messages, {s['ticks']:,} ticks" for n, s in (("A", A), ("B", B))),
        f"  same work on both sides: {'yes' if r['same_work'] else 'NO'}",
        "  (seconds: from the ingest processes' start to the last tick of every area in its VALUES stream; "
        "engine +s: how long after the ingest the engines finished)",
        "",
        f"ratio B ÷ A, ingest + engine: {q['pipeline']}×   (the ingest part alone, while the engines run: "
        f"{q['ingest']}×)",
    ]
    cores = m["usable_cores"]
    if q["goal_applies"]:
        lines.append(f"  goal ≥ {q['goal']}× with {cores} usable cores: {'met' if q['goal_met'] else 'NOT met'}; "
                     f"ideal here ≈ {q['ideal_on_this_machine']}× ({q['of_ideal']} of it reached)")
    else:
        lines.append(f"  goal ≥ {q['goal']}× applies from {q['goal_cores']} cores; this machine has {cores} usable: "
                     f"the ingest processes, the workers and the NATS server share them")
        lines.append(f"  ideal on this machine ≈ {q['ideal_on_this_machine']}×: side B needed {B['cpu_s']['total']} "
                     f"CPU-s (its 4 processes and the NATS server), which {cores} cores cannot do in less than "
                     f"{q['b_seconds_at_least']} s; B took {B['seconds']:.1f} s ({q['of_ideal']} of the ideal)")
    busy = {n: s["other_processes_cores"] for n, s in (("A", A), ("B", B))}
    if None not in busy.values():
        lines.append(f"  other processes on the machine used {busy['A']:.2f} cores on average during A, "
                     f"{busy['B']:.2f} during B" + (
                         f": the machine was busy with other jobs (with the cores they left B, the ideal is "
                         f"≈ {q['ideal_given_other_load']}×); the figures are not reliable, run it again on a quiet "
                         "machine" if max(busy.values()) > 0.25 else ""))
    lines.append(f"identical values: {'yes' if r['identical_values'] else 'no'} ("
                 + "; ".join(f"{k}: {'same' if v else 'DIFFERENT'}" for k, v in r["identical"].items())
                 + f"; every tick compared, {min(r['ticks_in_values_streams'].values()):,} per area)")
    lines.append(f"total {r['seconds_total']:.0f} s")
    return "\n".join(lines)


# ------------------------------------------------------------------ CLI
def _cmd(args) -> int:
    say = (lambda s: None) if args.quiet else (lambda s: print(s, file=sys.stderr, flush=True))

    def on_term(*_):
        raise KeyboardInterrupt
    old = signal.signal(signal.SIGTERM, on_term)
    try:
        r = run_scale_bench(args.minutes, seed=args.seed, start=args.start, checkpoint_every_s=args.checkpoint_every,
                            timeout_s=args.timeout, say=say)
    except KeyboardInterrupt:
        print("scenic-twin bench scale: interrupted; the NATS server and every child process were stopped",
              file=sys.stderr)
        return 130
    except (BenchFailed, ValueError, FileNotFoundError) as e:
        print(f"scenic-twin bench scale: {e}", file=sys.stderr)
        return 2
    finally:
        signal.signal(signal.SIGTERM, old)
    print(json.dumps(r, ensure_ascii=False, indent=2) if args.json else format_report(r))
    if not r["identical_values"] or not r["same_work"]:
        print("scenic-twin bench scale: the two sides did not give the same "
              + ("values" if not r["identical_values"] else "work") + " (see above)", file=sys.stderr)
        return 1
    return 0


def add_parser(bench_sub) -> None:
    b = bench_sub.add_parser(
        "scale", help="ingest + engine throughput of 2 areas: 2 engine workers ÷ 1 worker, on a local NATS server",
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    b.add_argument("--minutes", type=int, default=DEFAULT_MINUTES,
                   help=f"simulated minutes in the recording (default {DEFAULT_MINUTES}: the whole bench ≈ 2-4 min "
                        f"on 2 cores; at least {MIN_MINUTES})")
    b.add_argument("--start", default=DEFAULT_START, help=f"simulated start (default {DEFAULT_START})")
    b.add_argument("--seed", type=int, default=0, help="simulator seed (default 0)")
    b.add_argument("--checkpoint-every", type=float, default=0.0, metavar="S",
                   help="workers checkpoint every S seconds during the run (default 0: only after it, so both "
                        "sides do the same work)")
    b.add_argument("--timeout", type=float, default=1800.0, metavar="S", help="give up a side after S seconds")
    b.add_argument("--json", action="store_true", help="print the result as JSON")
    b.add_argument("--quiet", action="store_true", help="no progress on stderr")
    b.set_defaults(func=_cmd)
