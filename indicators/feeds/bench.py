"""Ingest throughput bench (not a test): ``python -m indicators.feeds.bench``.

Measures events/s of the whole ingest path - decode, validate, de-duplicate,
late split, append to a :class:`FeedLog` in a temporary directory with
``fsync`` - for

* ``arrow_ipc``: Arrow IPC stream bytes -> :meth:`Ingestor.submit` per
  record batch;
* ``jsonl``: JSON-lines bytes -> ``pyarrow.json.read_json`` ->
  :meth:`Ingestor.submit` (via :meth:`Ingestor.submit_ndjson`, the HTTP path),
  one chunk of lines per batch;

each with its ratio to the *floor*: a plain
``pyarrow.ipc.open_stream(bytes).read_all()`` of the same events measured in
the same run (ratio 10 = ten times the time of just decoding the IPC bytes).

``extra_cases`` lets an integrator add cases (e.g. GTFS-RT protobuf):
``{name: factory}`` where ``factory()`` returns ``(data, run)`` and
``run(data, ingestor) -> int`` ingests ``data`` into the fresh ingestor it is
given and returns the number of events it carried.  Their ratio is taken per
event against the floor.

Run it with ``-m`` from the repository root (running the file directly would
put this folder first on ``sys.path``, where ``http.py`` shadows the standard
library's ``http``).
"""
from __future__ import annotations

import argparse
import gc
import os
import shutil
import sys
import tempfile
import time
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Callable

import numpy as np
import pyarrow as pa

from .deadletter import DeadLetterStore
from .ingest import Ingestor
from .log import FeedLog
from .schemas import SCHEMAS, VIDEO_ALGORITHMS

__all__ = ["run_ingest_bench", "format_report", "make_events", "main"]

KIND = "video"
_T0 = datetime(2025, 5, 1, 12, 0, tzinfo=timezone.utc)

ExtraCase = Callable[[], tuple[bytes, Callable[[bytes, Ingestor], int]]]


def make_events(n: int, seed: int = 7) -> pa.Table:
    """``n`` valid video-alarm events with unique ids, one minute of time."""
    rng = np.random.default_rng(seed)
    t_ms = int(_T0.timestamp() * 1000) + np.sort(rng.integers(0, 60_000, n))
    algos = np.array(VIDEO_ALGORITHMS, dtype=object)
    cols = {
        "event_id": pa.array(np.char.add("v-", np.arange(n).astype(str)).astype(object), pa.string()),
        "event_time": pa.array(t_ms.astype("int64")).cast(pa.timestamp("ms", tz="UTC")),
        "source": pa.array(np.full(n, "bench", dtype=object), pa.string()),
        "camera_id": pa.array(np.char.add("cam-", rng.integers(0, 400, n).astype(str)).astype(object), pa.string()),
        "algorithm": pa.array(algos[rng.integers(0, len(algos), n)], pa.string()),
        "confidence": pa.array(rng.random(n).astype("float32")),
        "zone_id": pa.array(np.char.add("z", rng.integers(0, 30, n).astype(str)).astype(object), pa.string()),
        "object_count": pa.array(rng.integers(0, 50, n).astype("int32")),
        "lon": pa.array(113.3245 + rng.random(n) * 0.01),
        "lat": pa.array(23.1066 + rng.random(n) * 0.01),
    }
    return pa.Table.from_pydict(cols, schema=SCHEMAS[KIND])


def _ipc_bytes(table: pa.Table, batch_rows: int) -> bytes:
    sink = pa.BufferOutputStream()
    with pa.ipc.new_stream(sink, table.schema) as w:
        for b in table.to_batches(max_chunksize=batch_rows):
            w.write_batch(b)
    return sink.getvalue().to_pybytes()


def _jsonl_chunks(table: pa.Table, batch_rows: int) -> list[bytes]:
    """JSON lines, ``batch_rows`` lines per chunk (event times as ISO 'Z')."""
    d = table.to_pydict()
    out = []
    ids, cams, algos, zones = d["event_id"], d["camera_id"], d["algorithm"], d["zone_id"]
    conf, cnt, lon, lat = d["confidence"], d["object_count"], d["lon"], d["lat"]
    times = [t.strftime("%Y-%m-%dT%H:%M:%S.") + f"{t.microsecond // 1000:03d}Z" for t in d["event_time"]]
    for start in range(0, table.num_rows, batch_rows):
        lines = []
        for i in range(start, min(start + batch_rows, table.num_rows)):
            lines.append(
                f'{{"event_id":"{ids[i]}","event_time":"{times[i]}","source":"bench","camera_id":"{cams[i]}",'
                f'"algorithm":"{algos[i]}","confidence":{conf[i]:.6f},"zone_id":"{zones[i]}",'
                f'"object_count":{cnt[i]},"lon":{lon[i]:.7f},"lat":{lat[i]:.7f}}}')
        out.append(("\n".join(lines) + "\n").encode())
    return out


class _Fresh:
    """A fresh log + dead-letter store + ingestor in a temporary directory."""

    def __enter__(self) -> Ingestor:
        self.dir = Path(tempfile.mkdtemp(prefix="scenic-bench-"))
        self.log = FeedLog(self.dir / "log")
        self.dead = DeadLetterStore(self.dir / "dead.sqlite")
        return Ingestor(self.log, self.dead, allowed_lateness=timedelta(hours=1),
                        clock=lambda: _T0 + timedelta(minutes=2))

    def __exit__(self, *exc: object) -> None:
        self.log.close()
        self.dead.close()
        shutil.rmtree(self.dir, ignore_errors=True)


def _progress(msg: str, quiet: bool) -> None:
    if not quiet:
        print(f"\r[bench] {msg:<70}", end="", file=sys.stderr, flush=True)


def run_ingest_bench(n_events: int = 1_000_000, *, batch_rows: int = 100_000, repeat: int = 1,
                     extra_cases: dict[str, ExtraCase] | None = None, quiet: bool = False) -> dict:
    """Run the bench; returns a dict (see :func:`format_report`).  The best of
    ``repeat`` runs is kept per case."""
    _progress(f"generating {n_events:,} events", quiet)
    table = make_events(n_events)
    ipc = _ipc_bytes(table, batch_rows)
    chunks = _jsonl_chunks(table, batch_rows)
    del table
    gc.collect()

    def best(fn: Callable[[], int], label: str, runs: int = repeat) -> tuple[float, int]:
        times, count = [], 0
        for r in range(runs):
            _progress(f"{label} run {r + 1}/{runs}", quiet)
            gc.collect()
            t0 = time.perf_counter()
            count = fn()
            times.append(time.perf_counter() - t0)
        return min(times), count

    def floor() -> int:
        return pa.ipc.open_stream(ipc).read_all().num_rows

    def arrow_case() -> int:
        with _Fresh() as ing:
            n = 0
            for batch in pa.ipc.open_stream(ipc):
                n += ing.submit(KIND, batch, source="bench").accepted
            return n

    def jsonl_case() -> int:
        with _Fresh() as ing:
            return sum(ing.submit_ndjson(c, kind=KIND, source="bench").accepted for c in chunks)

    floor_s, floor_n = best(floor, "floor: ipc.open_stream().read_all()", max(repeat, 5))
    result: dict = {
        "n_events": n_events, "kind": KIND, "batch_rows": batch_rows, "repeat": repeat,
        "ipc_bytes": len(ipc), "jsonl_bytes": sum(map(len, chunks)),
        "floor": {"seconds": floor_s, "events_per_s": floor_n / floor_s if floor_s else float("inf")},
        "cases": {},
    }
    io_dir = Path(tempfile.mkdtemp(prefix="scenic-bench-io-"))

    def io_floor() -> int:
        """Writing the same IPC bytes to a file with one fsync: the I/O part
        any durable log pays (informational)."""
        with open(io_dir / "x", "wb") as f:
            f.write(ipc)
            f.flush()
            os.fsync(f.fileno())
        return floor_n

    try:
        io_s, _ = best(io_floor, "io floor: write + fsync of the IPC bytes", max(repeat, 3))
    finally:
        shutil.rmtree(io_dir, ignore_errors=True)
    result["io_floor"] = {"seconds": io_s, "events_per_s": floor_n / io_s if io_s else float("inf")}
    per_event_floor = floor_s / max(floor_n, 1)
    cases: dict[str, Callable[[], int]] = {"arrow_ipc": arrow_case, "jsonl": jsonl_case}
    for name, factory in (extra_cases or {}).items():
        data, run = factory()

        def extra(data: bytes = data, run: Callable[[bytes, Ingestor], int] = run) -> int:
            with _Fresh() as ing:
                return int(run(data, ing))
        cases[name] = extra
    for name, fn in cases.items():
        secs, n = best(fn, name)
        result["cases"][name] = {
            "seconds": secs, "events": n,
            "events_per_s": n / secs if secs else float("inf"),
            "ratio_to_floor": (secs / max(n, 1)) / per_event_floor if per_event_floor else float("inf"),
        }
    _progress("done", quiet)
    if not quiet:
        print(file=sys.stderr)
    return result


def format_report(r: dict) -> str:
    """A printable table of a :func:`run_ingest_bench` result."""
    lines = [
        f"ingest bench: {r['n_events']:,} {r['kind']} events, batches of {r['batch_rows']:,} rows, "
        f"best of {r['repeat']}",
        f"  IPC {r['ipc_bytes'] / 2**20:.1f} MiB, JSON lines {r['jsonl_bytes'] / 2**20:.1f} MiB",
        f"  {'case':<12} {'seconds':>9} {'events/s':>14} {'x floor':>9}",
        f"  {'floor':<12} {r['floor']['seconds']:>9.3f} {r['floor']['events_per_s']:>14,.0f} {1:>9.1f}",
    ]
    if "io_floor" in r:
        io = r["io_floor"]
        lines.append(f"  {'(io floor)':<12} {io['seconds']:>9.3f} {io['events_per_s']:>14,.0f} "
                     f"{io['seconds'] / r['floor']['seconds'] if r['floor']['seconds'] else float('inf'):>9.1f}")
    for name, c in r["cases"].items():
        lines.append(f"  {name:<12} {c['seconds']:>9.3f} {c['events_per_s']:>14,.0f} {c['ratio_to_floor']:>9.1f}")
    lines.append("  (floor = pyarrow.ipc.open_stream(bytes).read_all() of the same events, which is zero-copy; "
                 "io floor = writing those bytes to a file + fsync; the cases include decoding, validation, "
                 "de-duplication and an fsync-ed log append)")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--events", type=int, default=1_000_000)
    ap.add_argument("--batch-rows", type=int, default=100_000)
    ap.add_argument("--repeat", type=int, default=1)
    a = ap.parse_args(argv)
    print(format_report(run_ingest_bench(a.events, batch_rows=a.batch_rows, repeat=a.repeat)))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
