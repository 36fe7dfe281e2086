"""``scenic-twin replay DIR --out FILE.parquet``: a recording through the engine, every tick written.

A recording is a directory of ``<kind>.parquet`` files (the columns of
``SCHEMAS[kind]`` plus ``arrival_time``), as written by
:func:`indicators.feeds.simulator.write_recording`.  Batches are fed to the
engine in arrival order (the simulator's :func:`read_recording` when it is
installed, else a plain merge of the files by arrival time); after each
batch every tick the watermark allows is computed and written.  At the end
the watermark is moved past the last event so the last ticks are written
too.  Output: the long table of :func:`~.history.ticks_table` (indicator,
tick_time, value, quality), one row group per ``ticks_per_group`` ticks.
"""
from __future__ import annotations

import sys
import time
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Callable, Iterator

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from indicators.catalog import Catalog, load_catalog
from indicators.feeds.schemas import SCHEMAS

from .engine import Engine
from .history import SCHEMA, ticks_table

__all__ = ["replay", "read_batches", "Progress"]

_EPOCH = datetime(1970, 1, 1, tzinfo=timezone.utc)


def read_batches(directory: str | Path) -> Iterator[tuple[str, object]]:
    """(kind, table) in arrival order; ``("malformed", records)`` items are passed through."""
    d = Path(directory)
    if not d.is_dir():
        raise FileNotFoundError(f"no recording at {d}")
    try:
        from indicators.feeds.simulator import read_recording
    except ImportError:                                   # the simulator is optional for replaying
        read_recording = None
    if read_recording is not None:
        for b in read_recording(d):
            yield b[0], b[1]
        return
    tables = {}
    for kind in SCHEMAS:
        p = d / f"{kind}.parquet"
        if p.exists():
            tables[kind] = pq.read_table(p)
    from .synthetic import arrival_order
    yield from arrival_order(tables, 60_000)


class Progress:
    """A one-line progress bar on stderr (no dependency), by event time covered."""

    def __init__(self, start_ms: int | None, end_ms: int | None, *, stream=sys.stderr, enabled: bool = True) -> None:
        self.start, self.end = start_ms, end_ms
        self.stream = stream
        self.enabled = enabled and stream is not None
        self.last = 0.0

    def update(self, t_ms: int | None, ticks: int, force: bool = False) -> None:
        now = time.monotonic()
        if not self.enabled or (not force and now - self.last < 0.2) or t_ms is None:
            return
        self.last = now
        when = (_EPOCH + timedelta(milliseconds=t_ms)).strftime("%Y-%m-%d %H:%M:%S")
        if self.start is not None and self.end and self.end > self.start:
            frac = min(1.0, max(0.0, (t_ms - self.start) / (self.end - self.start)))
            bar = "#" * int(frac * 30)
            self.stream.write(f"\rreplay [{bar:<30}] {frac * 100:5.1f}% {when}Z {ticks} ticks")
        else:
            self.stream.write(f"\rreplay {when}Z {ticks} ticks")
        self.stream.flush()

    def done(self) -> None:
        if self.enabled:
            self.stream.write("\n")
            self.stream.flush()


def _as_ms(x) -> int:
    if isinstance(x, datetime):
        x = x if x.tzinfo else x.replace(tzinfo=timezone.utc)
        return (x - _EPOCH) // timedelta(milliseconds=1)
    return int(x)


def recording_span(directory: Path) -> tuple[int | None, int | None]:
    """Event-time span of a recording from its files' statistics (no full read; for the progress bar)."""
    lo = hi = None
    for kind in SCHEMAS:
        p = directory / f"{kind}.parquet"
        if not p.exists():
            continue
        try:
            md = pq.ParquetFile(p).metadata
        except Exception:                                  # an unreadable file: the reader will say so
            continue
        col = md.schema.to_arrow_schema().get_field_index("event_time")
        if col < 0:
            continue
        for rg in range(md.num_row_groups):
            st = md.row_group(rg).column(col).statistics
            if st is not None and st.has_min_max:
                a, b = _as_ms(st.min), _as_ms(st.max)
                lo = a if lo is None else min(lo, a)
                hi = b if hi is None else max(hi, b)
    return lo, hi


def replay(directory: str | Path, out: str | Path, *, tick: timedelta = timedelta(seconds=1),
           lateness: timedelta = timedelta(minutes=2), catalog: Catalog | None = None,
           progress: bool = True, ticks_per_group: int = 600,
           on_tick: Callable | None = None) -> dict:
    """Run the recording in ``directory`` through a fresh engine; write every tick to ``out``."""
    directory = Path(directory)
    catalog = catalog or load_catalog()
    lo, hi = recording_span(directory)
    # the tick grid starts just before the recording's first event, whatever order the batches come in
    start = None if lo is None else _EPOCH + timedelta(milliseconds=lo - 1)
    engine = Engine(catalog, tick=tick, allowed_lateness=lateness, start=start)
    ids = pa.array(catalog.ids, pa.string())
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    bar = Progress(lo, hi, enabled=progress)
    far = datetime(9999, 1, 1, tzinfo=timezone.utc)
    buf: list = []
    n_ticks = 0
    first_tick = None
    malformed = 0
    max_ms = None
    with pq.ParquetWriter(out, SCHEMA, compression="zstd") as w:
        def emit(ticks) -> None:
            nonlocal n_ticks, buf, first_tick
            for t in ticks:
                if first_tick is None:
                    first_tick = t.time_ms
                buf.append(t)
                n_ticks += 1
                if on_tick is not None:
                    on_tick(t)
                if len(buf) >= ticks_per_group:
                    w.write_table(ticks_table(buf, ids))
                    buf = []
        for kind, payload in read_batches(directory):
            if kind not in SCHEMAS:
                malformed += len(payload) if hasattr(payload, "__len__") else 1
                continue
            if payload.num_rows == 0:
                continue
            engine.ingest(kind, payload)
            hi_b = int(np.asarray(payload.column("event_time").cast(pa.int64())).max())
            max_ms = hi_b if max_ms is None else max(max_ms, hi_b)
            emit(engine.ticks(far))
            bar.update(engine.clock.last_tick, n_ticks)
        if max_ms is not None:                          # the end of the recording: nothing more will come
            end = _EPOCH + timedelta(milliseconds=max_ms)
            engine.heartbeat(end + lateness)
            emit(engine.ticks(end))
        if buf:
            w.write_table(ticks_table(buf, ids))
    bar.update(engine.clock.last_tick, n_ticks, force=True)
    bar.done()
    return {"ticks": n_ticks, "indicators": len(catalog), "rows": n_ticks * len(catalog), "out": str(out),
            "malformed_skipped": malformed, "stats": engine.stats,
            "first_tick_ms": first_tick, "last_tick_ms": engine.clock.last_tick}
