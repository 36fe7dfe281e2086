"""Tick history: every tick's values as Parquet partitions by local date and hour, with retention.

Layout (local time, Asia/Shanghai - what an operator looks for in an
after-action review)::

    <root>/date=2025-10-01/hour=20/part-<first tick ms>-<last tick ms>.parquet

Each file is a long table ``indicator`` (dictionary-encoded id),
``tick_time`` (timestamp ms UTC), ``value`` (float64, null = no data),
``quality`` (dictionary: ok / stale / no_data / idle).  Ticks are buffered and
written ``flush_ticks`` at a time (and at each hour boundary); a file is
written to a temporary name, fsync-ed and renamed, so a reader never sees
half a file.  :meth:`History.prune` deletes hours older than the retention
(``now`` is a parameter).  :meth:`History.query` reads ids over a time range.
"""
from __future__ import annotations

import os
import re
import shutil
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Iterable, Sequence
from zoneinfo import ZoneInfo

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from twin_assets.fsio import atomic_write

from .plan import QUALITY_NAMES

__all__ = ["History", "ticks_table", "SCHEMA"]

SCHEMA = pa.schema([
    pa.field("indicator", pa.dictionary(pa.int16(), pa.string()), nullable=False),
    pa.field("tick_time", pa.timestamp("ms", tz="UTC"), nullable=False),
    pa.field("value", pa.float64()),
    pa.field("quality", pa.dictionary(pa.int8(), pa.string()), nullable=False),
])
_PART = re.compile(r"^part-(\d+)-(\d+)\.parquet$")
_EPOCH = datetime(1970, 1, 1, tzinfo=timezone.utc)


def ticks_table(ticks: Sequence, ids: pa.Array) -> pa.Table:
    """Long table of ticks (objects with ``time_ms``, ``values``, ``quality``) over indicator ``ids``."""
    n = len(ids)
    k = len(ticks)
    if k == 0:
        return SCHEMA.empty_table()
    values = np.concatenate([t.values for t in ticks])
    quality = np.concatenate([t.quality for t in ticks]).astype(np.int8)
    times = np.repeat(np.array([t.time_ms for t in ticks], dtype=np.int64), n)
    ind = np.tile(np.arange(n, dtype=np.int16), k)
    return pa.Table.from_arrays([
        pa.DictionaryArray.from_arrays(pa.array(ind, pa.int16()), ids),
        pa.array(times, pa.int64()).cast(pa.timestamp("ms", tz="UTC")),
        pa.array(values, pa.float64(), mask=np.isnan(values)),
        pa.DictionaryArray.from_arrays(pa.array(quality, pa.int8()), pa.array(QUALITY_NAMES)),
    ], schema=SCHEMA)


def _atomic_parquet(table: pa.Table, path: Path) -> None:
    atomic_write(path, lambda tmp: pq.write_table(table, tmp, compression="zstd"))


class History:
    """Append ticks, flush them to hourly partitions, prune by age, query ranges."""

    def __init__(self, root: str | os.PathLike, ids: Sequence[str], *, retention: timedelta = timedelta(days=30),
                 flush_ticks: int = 60, tz: str = "Asia/Shanghai") -> None:
        self.root = Path(root)
        self.ids = pa.array(list(ids), pa.string())
        self.retention = retention
        self.flush_ticks = flush_ticks
        self.tz = ZoneInfo(tz)
        self._buf: list = []
        self._hour: tuple[str, str] | None = None

    def _partition(self, ms: int) -> tuple[str, str]:
        local = (_EPOCH + timedelta(milliseconds=ms)).astimezone(self.tz)
        return f"date={local:%Y-%m-%d}", f"hour={local:%H}"

    def append(self, tick) -> None:
        part = self._partition(tick.time_ms)
        if self._buf and part != self._hour:
            self.flush()
        self._hour = part
        self._buf.append(tick)
        if len(self._buf) >= self.flush_ticks:
            self.flush()

    def extend(self, ticks: Iterable) -> None:
        for t in ticks:
            self.append(t)

    def flush(self) -> Path | None:
        if not self._buf:
            return None
        first, last = self._buf[0].time_ms, self._buf[-1].time_ms
        date, hour = self._partition(first)
        path = self.root / date / hour / f"part-{first}-{last}.parquet"
        _atomic_parquet(ticks_table(self._buf, self.ids), path)
        self._buf = []
        return path

    def drop_after(self, ms: int | None) -> int:
        """Delete part files holding ticks after ``ms`` (None: all of them).

        After a crash the engine resumes from its checkpoint and recomputes
        the ticks after it; parts written past the checkpoint would then be
        there twice.  Returns how many files were deleted."""
        n = 0
        for _, d in self._hours():
            for f in list(d.iterdir()):
                m = _PART.match(f.name)
                if m and (ms is None or int(m.group(2)) > ms):
                    f.unlink()
                    n += 1
        self._buf = [t for t in self._buf if ms is not None and t.time_ms <= ms]
        return n

    def _hours(self) -> list[tuple[datetime, Path]]:
        out = []
        for d in sorted(self.root.glob("date=*/hour=*")):
            try:
                day = datetime.strptime(d.parent.name[5:], "%Y-%m-%d")
                out.append((day.replace(hour=int(d.name[5:]), tzinfo=self.tz), d))
            except ValueError:
                continue
        return out

    def prune(self, now: datetime) -> int:
        """Delete hour partitions that ended before ``now - retention``; return how many."""
        cutoff = now - self.retention
        n = 0
        for start, d in self._hours():
            if start + timedelta(hours=1) <= cutoff:
                shutil.rmtree(d)
                n += 1
                if not any(d.parent.iterdir()):
                    d.parent.rmdir()
        return n

    def query(self, ids: Sequence[str] | None, start: datetime, end: datetime) -> pa.Table:
        """Rows of ``ids`` (None = all) with ``start <= tick_time <= end``, in time order."""
        files = []
        lo = (start - _EPOCH) // timedelta(milliseconds=1)
        hi = (end - _EPOCH) // timedelta(milliseconds=1)
        for hstart, d in self._hours():
            if hstart + timedelta(hours=1) < start or hstart > end:
                continue
            for f in sorted(d.iterdir()):
                m = _PART.match(f.name)
                if m and int(m.group(2)) >= lo and int(m.group(1)) <= hi:
                    files.append(f)
        if not files:
            return pa.table({"indicator": pa.array([], pa.string()),
                             "tick_time": pa.array([], pa.timestamp("ms", tz="UTC")),
                             "value": pa.array([], pa.float64()), "quality": pa.array([], pa.string())})
        t = pa.concat_tables([pq.read_table(f) for f in files]).unify_dictionaries() \
            if len(files) > 1 else pq.read_table(files[0])
        ms = pc.cast(t.column("tick_time"), pa.int64())
        keep = pc.and_(pc.greater_equal(ms, lo), pc.less_equal(ms, hi))
        ind = t.column("indicator").cast(pa.string())
        if ids is not None:
            keep = pc.and_(keep, pc.is_in(ind, value_set=pa.array(list(ids), pa.string())))
        out = pa.table({"indicator": ind, "tick_time": t.column("tick_time"), "value": t.column("value"),
                        "quality": t.column("quality").cast(pa.string())}).filter(keep)
        return out.sort_by([("tick_time", "ascending"), ("indicator", "ascending")])
