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

Changes only
------------
Most of the 1,373 values do not change from one 1-second tick to the next,
so a part stores its first tick whole (a key frame: every file stands alone,
and pruning or dropping files never loses the state a later file needs) and
after it only the values whose value or quality changed.  The tick times of
the part are in its schema metadata (``scenic_twin.ticks``, JSON), so a tick
in which nothing changed is still a tick.  :func:`part_matrix` reads a part
back into one row per tick - exactly the values stored, NaN for no data - and
also reads the older parts that stored every tick (no metadata).

Quantised, indicator-major, compacted
-------------------------------------
Given ``decimals`` (one per indicator: the service takes them from each
family's unit, :func:`unit_decimals`), a part stores each value as an integer
count of ``10**-decimals`` of its unit (``value`` int64, exact to half a step:
0.0005 of a percent point, a person, a degree), its rows sorted by indicator
and then time, the values delta-encoded: one indicator's successive values are
close, so their differences pack into a few bits.  The decimals are in the
column ``decimals`` (one run per indicator).  Rows go by id (string order)
and each row group's first and last id are in the metadata, so a query of a
few indicators over 30 days reads one row group of each hour.  :meth:`History.compact`
rewrites a finished hour's parts (one per flush, each with a key frame) as
one part with one key frame; it writes the new file before it deletes the old
ones, and a part whose ticks another part of its hour covers is skipped by
every reader (:func:`parts`) and deleted by the next compaction, so a crash in
between loses and doubles nothing.

A finished day
--------------
:meth:`History.compact_days` merges a finished day's hourly parts into one part,
``<root>/date=2025-10-01/day/part-<first>-<last>.parquet``, the same format (rows
by indicator then time, the row groups' id ranges in the metadata): a query of one
indicator over 30 days opens 30 files instead of 720.  The merge streams: it counts
each id's rows first (the ``indicator`` column alone), so the row groups' id ranges
are known before the first row is written, then copies the rows a row group's worth
of ids at a time, reading each hour's row groups once, in order; it holds about one
row group of each hour (~10 MB) whatever the day holds.  Each hour's key frame is kept, so the day reads back
tick for tick as the hours did.  A day part covers the hour parts it was made of, and
readers skip covered parts, so a crash before they are deleted doubles nothing.
Retention drops a merged day when all of it is past the retention.
"""
from __future__ import annotations

import json
import os
import re
import shutil
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Iterable, Iterator, Sequence
from zoneinfo import ZoneInfo

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from twin_assets.fsio import atomic_write

from .plan import QUALITY_NAMES

__all__ = ["History", "ticks_table", "changes_table", "part_matrix", "part_slices", "parts", "unit_decimals", "SCHEMA"]

FORMAT_KEY = b"scenic_twin.history"
TICKS_KEY = b"scenic_twin.ticks"
TICK_RUNS_KEY = b"scenic_twin.tick_runs"
ROW_GROUPS_KEY = b"scenic_twin.row_groups"
ROW_GROUP_ROWS = 16_384

# Decimals kept of a value, by its family's unit: a thousandth of the unit, a millionth where the
# unit is large against the values it measures (a pressure in MPa, a ratio, a density)
FINE_UNITS = {"ratio 0-1": 6, "MPa": 6, "persons/m2": 6, "persons/m/min": 6}
DEFAULT_DECIMALS = 3
_SAFE = 2.0 ** 52            # integers below this are exact in a float64


def unit_decimals(unit: str) -> int:
    """How many decimals of ``unit`` the tick history keeps (exact to half the last one)."""
    return FINE_UNITS.get(unit, DEFAULT_DECIMALS)

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


class _Row:
    __slots__ = ("time_ms", "values", "quality")

    def __init__(self, time_ms: int, values: np.ndarray, quality: np.ndarray) -> None:
        self.time_ms, self.values, self.quality = time_ms, values, quality


def changes_table(ticks: Sequence, ids: pa.Array, decimals: np.ndarray | None = None) -> pa.Table:
    """The ticks as a key frame (the first tick, every indicator) plus the changes after it
    (value or quality differs from the tick before; NaN equals NaN), with the tick times in the
    schema metadata.  With ``decimals`` (per indicator) the values are quantised first, and a
    change is a change of the stored value; the rows go indicator by indicator.
    :func:`part_matrix` gives the ticks back."""
    if not ticks:
        return SCHEMA.empty_table()
    values = np.stack([t.values for t in ticks])                     # K x N
    quality = np.stack([t.quality for t in ticks]).astype(np.int8)
    if decimals is not None:
        return _quantised_changes(ticks, ids, values, quality, np.asarray(decimals, np.int64))
    keep = np.ones_like(quality, dtype=bool)
    if len(ticks) > 1:
        a, b = values[1:], values[:-1]
        same = (a == b) | (np.isnan(a) & np.isnan(b))
        keep[1:] = ~same | (quality[1:] != quality[:-1])
    rows, cols = np.nonzero(keep)                                    # tick-major: time order
    times = np.array([t.time_ms for t in ticks], dtype=np.int64)
    vals = values[rows, cols]
    table = pa.Table.from_arrays([
        pa.DictionaryArray.from_arrays(pa.array(cols.astype(np.int16), pa.int16()), ids),
        pa.array(times[rows], pa.int64()).cast(pa.timestamp("ms", tz="UTC")),
        pa.array(vals, pa.float64(), mask=np.isnan(vals)),
        pa.DictionaryArray.from_arrays(pa.array(quality[rows, cols], pa.int8()), pa.array(QUALITY_NAMES)),
    ], schema=SCHEMA)
    return table.replace_schema_metadata({FORMAT_KEY: b"changes", TICKS_KEY: json.dumps(times.tolist()).encode()})


def _quantised_changes(ticks, ids: pa.Array, values: np.ndarray, quality: np.ndarray,
                       decimals: np.ndarray) -> pa.Table:
    # fewer decimals for an indicator whose values would not stay exact as integers (none in practice)
    biggest = np.nanmax(np.abs(np.where(np.isfinite(values), values, 0.0)), axis=0)
    while True:
        over = biggest * 10.0 ** decimals >= _SAFE
        if not over.any():
            break
        decimals = np.where(over, decimals - 1, decimals)
    missing = ~np.isfinite(values)
    q = np.rint(np.where(missing, 0.0, values) * 10.0 ** decimals).astype(np.int64)
    keep = np.ones_like(quality, dtype=bool)
    if len(ticks) > 1:
        keep[1:] = (q[1:] != q[:-1]) | (missing[1:] != missing[:-1]) | (quality[1:] != quality[:-1])
    rows, cols = np.nonzero(keep)
    names = ids.to_pylist()
    rank = np.argsort(np.argsort(np.array(names, dtype=object)))        # id order (strings)
    order = np.lexsort((rows, rank[cols]))                            # by id, then time
    cols, rows = cols[order], rows[order]
    times = np.array([t.time_ms for t in ticks], dtype=np.int64)
    table = pa.Table.from_arrays([
        pa.DictionaryArray.from_arrays(pa.array(cols.astype(np.int16), pa.int16()), ids),
        pa.array(times[rows], pa.int64()).cast(pa.timestamp("ms", tz="UTC")),
        pa.array(q[rows, cols], pa.int64(), mask=missing[rows, cols]),
        pa.DictionaryArray.from_arrays(pa.array(quality[rows, cols], pa.int8()), pa.array(QUALITY_NAMES)),
        pa.array(decimals[cols].astype(np.int8), pa.int8()),
    ], names=SCHEMA.names + ["decimals"])
    # each row group's first and last id: a reader of a few indicators reads only their groups
    groups = [[names[cols[a]], names[cols[min(a + ROW_GROUP_ROWS, len(cols)) - 1]]]
              for a in range(0, len(cols), ROW_GROUP_ROWS)]
    return table.replace_schema_metadata({
        FORMAT_KEY: b"changes-q", TICK_RUNS_KEY: json.dumps(_tick_runs(times)).encode(),
        ROW_GROUPS_KEY: json.dumps(groups, separators=(",", ":")).encode()})


def part_matrix(path: str | os.PathLike, pos: dict[str, int], n: int, no_data: int
                ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """One part file as ``(tick times ms [K], values [K, n], quality codes [K, n])`` with the
    indicators placed by ``pos`` (id -> column; ids not in it are skipped, columns no stored
    id fills are no data).  Reads the changes-only parts and the older every-tick parts; of a
    quantised part, only the row groups that hold the ids asked for when they are a few."""
    got = list(part_slices(path, pos, n, no_data))
    if len(got) == 1:
        return got[0]
    return (np.zeros(0, np.int64), np.full((0, n), np.nan), np.full((0, n), no_data, np.int8))


def _decode(t: pa.Table, keys: pa.Array, col_of: np.ndarray, no_data: int, fmt: bytes | None
            ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Rows of a part's row groups as (column of the id, tick ms, value, quality code), only the
    rows of the ids asked for (``keys``, placed at ``col_of``)."""
    t = t.unify_dictionaries().combine_chunks()
    ind = t.column("indicator").combine_chunks()
    found = pc.index_in(ind.dictionary, value_set=keys).fill_null(len(keys))
    where = col_of[np.asarray(found.to_numpy(zero_copy_only=False), np.intp)][ind.indices.to_numpy()]
    mine = where >= 0
    if not mine.all():
        t, where = t.filter(pa.array(mine)), where[mine]
    q = t.column("quality").combine_chunks()
    qmap = np.array([QUALITY_NAMES.index(x) if x in QUALITY_NAMES else no_data
                     for x in q.dictionary.to_pylist()] or [no_data], np.int8)
    qual = qmap[q.indices.to_numpy()]
    if fmt == b"changes-q":                          # integer steps of 10**-decimals[indicator]
        col = t.column("value").combine_chunks()
        scale = 10.0 ** t.column("decimals").to_numpy().astype(np.float64)
        val = np.asarray(col.fill_null(0).to_numpy(), np.float64) / scale
        if col.null_count:
            val[np.asarray(col.is_null())] = np.nan
    else:
        val = t.column("value").to_numpy(zero_copy_only=False).astype(np.float64)      # nulls -> nan
    return where, t.column("tick_time").cast(pa.int64()).to_numpy(), val, qual


def part_slices(path: str | os.PathLike, pos: dict[str, int], n: int, no_data: int, *,
                start_ms: int | None = None, ticks_per_slice: int | None = None
                ) -> Iterator[tuple[np.ndarray, np.ndarray, np.ndarray]]:
    """:func:`part_matrix` from ``start_ms`` on, ``ticks_per_slice`` ticks at a time (None: all
    in one): a merged day of every indicator is 86,400 ticks x 1,373 values, ~1 GB as one
    matrix; read an hour at a time, its rows are read once and the whole day's reading peaks at
    ~0.6 GB (measured on a bench-history day: 8.5 M rows)."""
    pf = pq.ParquetFile(path)
    meta = pf.schema_arrow.metadata or {}
    fmt = meta.get(FORMAT_KEY)
    groups = json.loads(meta[ROW_GROUPS_KEY]) if ROW_GROUPS_KEY in meta else None
    if groups is not None and len(pos) <= 64:       # only the row groups that hold the ids asked for
        wanted = sorted(pos)
        sel = [g for g, (a, b) in enumerate(groups) if any(a <= w <= b for w in wanted)]
    else:
        sel = list(range(pf.num_row_groups))
    keys = pa.array(list(pos), pa.string())
    col_of = np.array(list(pos.values()) + [-1], np.int32)
    # a few row groups at a time into compact arrays, rows of other ids dropped at once: a merged day
    # of every indicator is 8.5 M rows, and its Arrow columns would be held twice over otherwise
    got = [_decode(pf.read_row_groups(sel[k:k + 8]), keys, col_of, no_data, fmt) for k in range(0, len(sel), 8)]
    if got:
        where, ms, val, qual = (np.concatenate(x) for x in zip(*got))
    else:
        where, ms, val, qual = (np.zeros(0, np.int32), np.zeros(0, np.int64), np.zeros(0), np.zeros(0, np.int8))
    del got
    changes = fmt in (b"changes", b"changes-q")
    if fmt == b"changes-q":
        times = _from_runs(json.loads(meta[TICK_RUNS_KEY]))
    else:
        times = np.array(json.loads(meta[TICKS_KEY]), np.int64) if changes else np.unique(ms)
    row = np.searchsorted(times, ms).astype(np.int32)          # each stored row's tick
    del ms
    src = np.flatnonzero(where >= 0)
    first = 0 if start_ms is None else int(np.searchsorted(times, start_ms))
    step = max(1, ticks_per_slice or len(times))
    if step < len(times) - first:                  # slices: the rows in time order (a day part's are by id)
        src = src[np.argsort(row[src], kind="stable")]
    at = row[src]
    # changes: each tick takes the newest stored row of its column up to it (a column's rows are
    # in time order, so the newest is the largest row number), carried over from slice to slice
    carry = np.full(n, -1, np.int64)
    if changes and first:
        before = src[:int(np.searchsorted(at, first))] if step < len(times) - first else src[at < first]
        np.maximum.at(carry, where[before], before)
    for s0 in range(first, len(times), step):
        e = min(s0 + step, len(times))
        if step < len(times) - first:
            rows = src[int(np.searchsorted(at, s0)):int(np.searchsorted(at, e))]
        else:
            rows = src[(at >= s0) & (at < e)]
        stamp = np.full((e - s0, n), -1, np.int64)
        if changes:
            stamp[0] = carry
        stamp[row[rows] - s0, where[rows]] = rows
        if changes:
            np.maximum.accumulate(stamp, axis=0, out=stamp)
            carry = stamp[-1].copy()
        have = stamp >= 0
        values = np.full((e - s0, n), np.nan)
        quality = np.full((e - s0, n), no_data, np.int8)
        values[have] = val[stamp[have]]
        quality[have] = qual[stamp[have]]
        yield times[s0:e], values, quality


def _atomic_parquet(table: pa.Table, path: Path) -> None:
    if (table.schema.metadata or {}).get(FORMAT_KEY) == b"changes-q":
        write = lambda tmp: pq.write_table(   # noqa: E731
            table, tmp, compression="zstd", use_dictionary=["indicator", "quality", "decimals"],
            row_group_size=ROW_GROUP_ROWS,
            column_encoding={"value": "DELTA_BINARY_PACKED", "tick_time": "DELTA_BINARY_PACKED"})
    else:
        write = lambda tmp: pq.write_table(table, tmp, compression="zstd")   # noqa: E731
    atomic_write(path, write)


DAY_DIR = "day"


def _found(d: Path) -> list[tuple[int, int, Path]]:
    if not d.is_dir():
        return []
    return sorted((int(m.group(1)), int(m.group(2)), f) for f in d.iterdir() if (m := _PART.match(f.name)))


def _uncovered(found: list[tuple[int, int, Path]]) -> list[tuple[int, int, Path]]:
    """``found`` without the parts another part covers (left behind by a compaction cut short);
    of two parts with the same ticks, a day part covers the hour part."""
    # by first tick, the longest (and of equals the day part) first: a part is covered when one
    # before it in this order reaches as far
    order = sorted(found, key=lambda p: (p[0], -p[1], p[2].parent.name != DAY_DIR))
    out, reach = [], None
    for first, last, f in order:
        if reach is not None and last <= reach:
            continue
        out.append((first, last, f))
        reach = last if reach is None else max(reach, last)
    return sorted(out)


def _hour_parts(d: Path) -> list[tuple[int, int, Path]]:
    """The part files of one hour folder as (first ms, last ms, path), in time order, without the
    parts another part covers (left behind by a compaction cut short)."""
    return _uncovered(_found(d))


def _date_parts(date_dir: Path) -> list[tuple[int, int, Path]]:
    """The parts of one date folder (its day part and its hours'), in time order, each tick once."""
    found = _found(date_dir / DAY_DIR)
    for d in sorted(date_dir.glob("hour=*")):
        found.extend(_found(d))
    return sorted(_uncovered(sorted(found)))


def parts(root: str | os.PathLike) -> list[tuple[int, int, Path]]:
    """Every part under ``root`` as (first tick ms, last tick ms, path), in time order, each tick once."""
    out = []
    for d in sorted(Path(root).glob("date=*")):
        if d.is_dir():
            out.extend(_date_parts(d))
    return sorted(out)


def _tick_runs(times: np.ndarray) -> list[list[int]]:
    """Tick times as runs [first, step, count] (an hour of 1 s ticks is one run)."""
    runs: list[list[int]] = []
    for t in times.tolist():
        if runs:
            first, step, count = runs[-1]
            if count == 1:
                runs[-1] = [first, t - first, 2]
                continue
            if t == first + step * count:
                runs[-1][2] += 1
                continue
        runs.append([t, 0, 1])
    return runs


def _from_runs(runs) -> np.ndarray:
    return (np.concatenate([f + s * np.arange(c, dtype=np.int64) for f, s, c in runs]) if runs
            else np.zeros(0, np.int64))


def _read_all(read, files: list[Path]) -> list:
    if len(files) > 4:                                       # the Parquet reads run outside the GIL
        from concurrent.futures import ThreadPoolExecutor
        with ThreadPoolExecutor(max_workers=min(4, os.cpu_count() or 1)) as ex:
            return list(ex.map(read, files))
    return [read(f) for f in files]


def _next_day(day: datetime) -> datetime:
    """The local midnight after ``day`` (a local midnight; aware arithmetic is wall-clock)."""
    return day + timedelta(days=1)


def _positions(col: pa.ChunkedArray, ids: pa.Array) -> np.ndarray:
    """Each row's id as its position in ``ids`` (-1: not one of them), chunk by chunk (a Parquet
    reader may give each row group a dictionary of its own)."""
    out = []
    for chunk in col.chunks:
        if not pa.types.is_dictionary(chunk.type):
            chunk = chunk.dictionary_encode()
        at = pc.index_in(chunk.dictionary, value_set=ids).fill_null(-1).to_numpy(zero_copy_only=False)
        out.append(np.append(at.astype(np.int64), -1)[chunk.indices.fill_null(-1).to_numpy(zero_copy_only=False)])
    return np.concatenate(out) if out else np.zeros(0, np.int64)


class _Cursor:
    """Reads one part's row groups in order, once each, giving its rows a block of ids at a time."""

    def __init__(self, pf: pq.ParquetFile, rank: np.ndarray, ids: pa.Array) -> None:
        self.pf, self.rank, self.ids = pf, rank, ids
        self.next = 0
        self.held: list[tuple[np.ndarray, np.ndarray, pa.Table]] = []   # (ranks, positions, rows)

    def _read(self) -> bool:
        if self.next >= self.pf.num_row_groups:
            return False
        t = self.pf.read_row_group(self.next)
        self.next += 1
        at = _positions(t.column("indicator"), self.ids)
        self.held.append((self.rank[at], at, t.drop_columns(["indicator"])))
        return True

    def take_below(self, b: int):
        """Its rows of ids ranked below ``b`` (the rows are by rank), or None."""
        while (not self.held or self.held[-1][0][-1] < b) and self._read():
            pass
        if not self.held:
            return None
        r = np.concatenate([h[0] for h in self.held])
        at = np.concatenate([h[1] for h in self.held])
        t = pa.concat_tables([h[2] for h in self.held])
        cut = int(np.searchsorted(r, b, side="left"))
        self.held = [(r[cut:], at[cut:], t.slice(cut))] if cut < len(r) else []
        return (r[:cut], at[:cut], t.slice(0, cut)) if cut else None


def _merge_parts(files: Sequence[Path], ids: pa.Array, path: Path) -> bool:
    """Write the quantised parts ``files`` (in time order, each rows by id then time) as one
    part at ``path``: rows by id then time, the row groups' id ranges in the metadata, the tick
    runs of all of them.  Streams a block of ids at a time.  False (nothing written) when a part
    is of another format or holds an id that is not one of ``ids``."""
    pfs = [pq.ParquetFile(f) for f in files]
    names = ids.to_pylist()
    n = len(names)
    by_name = np.argsort(np.array(names, dtype=object), kind="stable")   # position in id order -> id
    rank = np.append(np.empty(n, np.int64), -1)                          # id -> its place in id order
    rank[by_name] = np.arange(n)
    counts = np.zeros(n, np.int64)
    times = []
    for pf in pfs:
        meta = pf.schema_arrow.metadata or {}
        if meta.get(FORMAT_KEY) != b"changes-q" or ROW_GROUPS_KEY not in meta:
            return False
        times.append(_from_runs(json.loads(meta[TICK_RUNS_KEY])))
        for g in range(pf.num_row_groups):
            at = _positions(pf.read_row_group(g, columns=["indicator"]).column(0), ids)
            if (at < 0).any():
                return False
            counts += np.bincount(at, minlength=n)
    if not counts.sum():
        return False
    in_order = counts[by_name]                      # rows of each id, in id order
    ends = np.cumsum(in_order)
    total = int(ends[-1]) if n else 0
    groups = []                                     # the row groups as written below
    a = 0
    while a < n:
        b = max(int(np.searchsorted(ends, (ends[a - 1] if a else 0) + ROW_GROUP_ROWS, side="right")), a + 1)
        rows = int(ends[b - 1] - (ends[a - 1] if a else 0))
        start = int(ends[a - 1]) if a else 0
        for k in range(0, rows, ROW_GROUP_ROWS):
            lo = int(np.searchsorted(ends, start + k, side="right"))
            hi = int(np.searchsorted(ends, start + min(k + ROW_GROUP_ROWS, rows) - 1, side="right"))
            groups.append([names[by_name[lo]], names[by_name[hi]]])
        a = b
    all_times = np.concatenate(times) if times else np.zeros(0, np.int64)
    schema = pfs[0].schema_arrow.with_metadata({
        FORMAT_KEY: b"changes-q", TICK_RUNS_KEY: json.dumps(_tick_runs(all_times)).encode(),
        ROW_GROUPS_KEY: json.dumps(groups, separators=(",", ":")).encode()})

    def write(tmp: str) -> None:
        cursors = [_Cursor(pf, rank, ids) for pf in pfs]
        with pq.ParquetWriter(tmp, schema, compression="zstd", use_dictionary=["indicator", "quality", "decimals"],
                              column_encoding={"value": "DELTA_BINARY_PACKED",
                                               "tick_time": "DELTA_BINARY_PACKED"}) as w:
            a = 0
            while a < n:              # a block of ids (in id order) at a time, a row group each
                b = max(int(np.searchsorted(ends, (ends[a - 1] if a else 0) + ROW_GROUP_ROWS, side="right")), a + 1)
                pieces = [p for c in cursors if (p := c.take_below(b)) is not None]
                if pieces:                # hours in time order, then stably by id
                    r = np.concatenate([p[0] for p in pieces])
                    order = np.argsort(r, kind="stable")
                    at = np.concatenate([p[1] for p in pieces])[order]
                    rest = pa.concat_tables([p[2] for p in pieces]).unify_dictionaries().combine_chunks()
                    rest = rest.take(pa.array(order))
                    t = rest.add_column(0, schema.field("indicator"), pa.DictionaryArray.from_arrays(
                        pa.array(at.astype(np.int16), pa.int16()), ids)).select(schema.names)
                    for k in range(0, t.num_rows, ROW_GROUP_ROWS):
                        w.write_table(t.slice(k, ROW_GROUP_ROWS), row_group_size=ROW_GROUP_ROWS)
                a = b
    atomic_write(path, write)
    return True


class History:
    """Append ticks, flush them to hourly partitions, prune by age, query ranges."""

    def __init__(self, root: str | os.PathLike, ids: Sequence[str], *, retention: timedelta = timedelta(days=30),
                 flush_ticks: int = 60, tz: str = "Asia/Shanghai", decimals: Sequence[int] | None = None) -> None:
        """``decimals``: per indicator, how many decimals of its unit to keep (quantised parts);
        None keeps every value exactly (float64)."""
        self.root = Path(root)
        self.ids = pa.array(list(ids), pa.string())
        if decimals is not None and len(decimals) != len(self.ids):
            raise ValueError(f"decimals: {len(decimals)} for {len(self.ids)} indicators")
        self.decimals = None if decimals is None else np.asarray(decimals, np.int8)
        self.retention = retention
        self.flush_ticks = flush_ticks
        self.tz = ZoneInfo(tz)
        self._buf: list = []
        self._hour: tuple[str, str] | None = None
        self._unmergeable: set[str] = set()                 # days compact_days leaves in hours

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
        _atomic_parquet(changes_table(self._buf, self.ids, self.decimals), path)
        self._buf = []
        return path

    def compact(self, before_ms: int, *, limit: int = 4) -> int:
        """Rewrite each hour that ended by ``before_ms`` and has more than one part as one part
        (one key frame), at most ``limit`` hours a call; delete parts a compaction left covered.
        Returns how many hours were rewritten.  Give it a time the engine's checkpoint covers:
        a restart drops parts past the checkpoint, and a whole hour must not be among them."""
        done = 0
        pos = {i: k for k, i in enumerate(self.ids.to_pylist())}
        no_data = QUALITY_NAMES.index("no_data")
        for start, d in self._hours():
            if done >= limit:
                break
            if (start + timedelta(hours=1) - _EPOCH) // timedelta(milliseconds=1) > before_ms:
                continue
            if _found(d.parent / DAY_DIR):
                continue                                     # merged into its day: compact_days tidies up
            live = _hour_parts(d)
            for f in set(d.glob("part-*.parquet")) - {p for _, _, p in live}:
                f.unlink()                                   # covered by a part written before a crash
            if len(live) < 2:
                continue
            mats = [part_matrix(f, pos, len(pos), no_data) for _, _, f in live]
            times = np.concatenate([m[0] for m in mats])
            values = np.vstack([m[1] for m in mats])
            quality = np.vstack([m[2] for m in mats])
            ticks = [_Row(int(t), values[k], quality[k]) for k, t in enumerate(times.tolist())]
            path = d / f"part-{live[0][0]}-{live[-1][1]}.parquet"
            _atomic_parquet(changes_table(ticks, self.ids, self.decimals), path)
            for _, _, f in live:
                if f != path:
                    f.unlink()
            done += 1
        return done

    def compact_days(self, before_ms: int, *, limit: int = 1) -> int:
        """Merge each local day that ended by ``before_ms`` and is in more than one part into one
        day part, at most ``limit`` days a call; delete the parts a merge left covered.  A day with
        a part of another kind (an older format, another set of indicators) stays in hours, and so
        does a day that retention drops within a day (so :meth:`prune` never races a merge).
        Returns how many days were merged.  Like :meth:`compact`, give it a time the engine's
        checkpoint covers."""
        done = 0
        for date_dir in sorted(self.root.glob("date=*")):
            if done >= limit:
                break
            try:
                day = datetime.strptime(date_dir.name[5:], "%Y-%m-%d").replace(tzinfo=self.tz)
            except ValueError:
                continue
            day_end = (_next_day(day) - _EPOCH) // timedelta(milliseconds=1)
            if day_end > before_ms:
                continue
            if timedelta(milliseconds=before_ms - day_end) >= self.retention - timedelta(days=1):
                continue                                     # retention drops it soon: not worth it
            live = _date_parts(date_dir)
            merged = [p for p in live if p[2].parent.name == DAY_DIR]
            if merged:                                       # tidy up after a merge cut short
                self._drop_covered(date_dir, live)
                continue
            if len(live) < 2 or date_dir.name in self._unmergeable:
                continue
            if any(len(_hour_parts(d)) > 1 for d in date_dir.glob("hour=*")):
                continue                                     # an hour not yet compacted: compact() first
            path = date_dir / DAY_DIR / f"part-{live[0][0]}-{live[-1][1]}.parquet"
            if not _merge_parts([f for _, _, f in live], self.ids, path):
                self._unmergeable.add(date_dir.name)         # not tried again by this process
                continue
            self._drop_covered(date_dir, _date_parts(date_dir))
            done += 1
        return done

    @staticmethod
    def _drop_covered(date_dir: Path, live: list[tuple[int, int, Path]]) -> None:
        keep = {f for _, _, f in live}
        for d in [date_dir / DAY_DIR, *sorted(date_dir.glob("hour=*"))]:
            for _, _, f in _found(d):
                if f not in keep:
                    f.unlink()
            if d.is_dir() and not any(d.iterdir()):
                d.rmdir()

    def drop_after(self, ms: int | None) -> int:
        """Delete part files holding ticks after ``ms`` (None: all of them).

        After a crash the engine resumes from its checkpoint and recomputes
        the ticks after it; parts written past the checkpoint would then be
        there twice.  Returns how many files were deleted."""
        n = 0
        for d in [d for _, d in self._hours()] + [d for _, d in self._days()]:
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

    def _days(self) -> list[tuple[datetime, Path]]:
        """The merged days: (local midnight, the day folder)."""
        out = []
        for d in sorted(self.root.glob(f"date=*/{DAY_DIR}")):
            try:
                out.append((datetime.strptime(d.parent.name[5:], "%Y-%m-%d").replace(tzinfo=self.tz), d))
            except ValueError:
                continue
        return out

    def prune(self, now: datetime) -> int:
        """Delete hour partitions that ended before ``now - retention``, and merged days all of
        which did; return how many."""
        cutoff = now - self.retention
        n = 0
        for start, d in self._hours():
            if start + timedelta(hours=1) <= cutoff:
                shutil.rmtree(d)
                n += 1
                if not any(d.parent.iterdir()):
                    d.parent.rmdir()
        for start, d in self._days():
            if _next_day(start) <= cutoff:
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
        for date_dir in sorted(self.root.glob("date=*")):
            try:
                day = datetime.strptime(date_dir.name[5:], "%Y-%m-%d").replace(tzinfo=self.tz)
            except ValueError:
                continue
            if _next_day(day) < start or day > end:
                continue
            files.extend(f for first, last, f in _date_parts(date_dir) if last >= lo and first <= hi)
        empty = pa.table({"indicator": pa.array([], pa.string()),
                          "tick_time": pa.array([], pa.timestamp("ms", tz="UTC")),
                          "value": pa.array([], pa.float64()), "quality": pa.array([], pa.string())})
        stored = self.ids.to_pylist()
        known = set(stored)
        want = stored if ids is None else [i for i in dict.fromkeys(ids) if i in known]
        pos = {i: k for k, i in enumerate(want)}
        no_data = QUALITY_NAMES.index("no_data")
        n = len(want)
        if not files or not n:
            return empty
        read = lambda f: part_matrix(f, pos, n, no_data)     # noqa: E731
        try:
            mats = _read_all(read, files)
        except FileNotFoundError:          # a compaction replaced parts as they were listed: list again
            files = [f for first, last, f in parts(self.root) if last >= lo and first <= hi]
            mats = _read_all(read, files)
        if not mats:
            return empty
        times = np.concatenate([m[0] for m in mats])
        values = np.vstack([m[1] for m in mats])
        quality = np.vstack([m[2] for m in mats])
        sel = (times >= lo) & (times <= hi)
        times, values, quality = times[sel], values[sel], quality[sel]
        k = len(times)
        if not k:
            return empty
        vals = values.reshape(-1)
        table = pa.table({
            "indicator": pa.DictionaryArray.from_arrays(
                pa.array(np.tile(np.arange(n, dtype=np.int32), k)), pa.array(want, pa.string())).cast(pa.string()),
            "tick_time": pa.array(np.repeat(times, n), pa.int64()).cast(pa.timestamp("ms", tz="UTC")),
            "value": pa.array(vals, pa.float64(), mask=np.isnan(vals)),
            "quality": pa.DictionaryArray.from_arrays(
                pa.array(quality.reshape(-1).astype(np.int32)), pa.array(QUALITY_NAMES)).cast(pa.string())})
        by_name = np.argsort(np.array(want, dtype=object))           # columns in id order
        in_time = not (np.diff(times) <= 0).any()                   # parts in time order (always, so far)
        if in_time and (by_name == np.arange(n)).all():
            return table
        if in_time:
            order = (np.arange(k, dtype=np.int64)[:, None] * n + by_name[None, :]).reshape(-1)
        else:
            order = np.lexsort((np.tile(np.argsort(by_name), k), np.repeat(times, n)))
        return table.take(pa.array(order))
