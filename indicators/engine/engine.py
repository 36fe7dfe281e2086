"""The indicator engine: feed batches in, all 1,373 values per tick out.

Event time throughout.  :meth:`Engine.ingest` takes a batch of one feed kind
(an Arrow table of ``SCHEMAS[kind]``):

1. encodes it to dense columns (:mod:`.encode`);
2. drops *late* events - older than the watermark (newest event time seen,
   of any feed, minus ``allowed_lateness``) or at or before a tick already
   computed - and counts them (``stats["late"]``), never silently;
3. drops *duplicates* by ``event_id`` among events not yet late
   (replays repeat; :class:`~.kernels.SeenSet`);
4. keeps the rest pending until their tick is computed.

:meth:`Engine.advance` computes every tick boundary ``T`` (multiples of
``tick`` since the epoch) up to ``min(to, watermark)``: it applies the
pending events with time in ``(T - tick, T]`` to the states, then evaluates
every family (:mod:`.plan`).  Because a tick is only computed once nothing
older than it can still be accepted, a tick's values do not depend on the
order or batching in which its events arrived: shuffled input within the
lateness, with duplicates, gives identical values.

Each :class:`Tick` carries the values (float64, NaN = no data), qualities
(``OK`` / ``STALE`` / ``NO_DATA`` / ``IDLE``) and which indicators changed since the
previous tick.  Subscribers get only the changes of each tick;
:meth:`Engine.changes` returns what changed since it was last called.

:meth:`Engine.checkpoint` writes the whole state atomically (temp file,
fsync, rename, fsync of the directory) with the feed-log sequence number it
covers; :meth:`Engine.restore` loads it.  Restart = restore + replay the
log after that sequence number; batches at or below it are skipped, so
replaying from too early is harmless.

No clock is read anywhere: time comes in with the events and the ``to``
arguments.
"""
from __future__ import annotations

import copy
import hashlib
import io
import json
import os
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any, Callable, Iterator
from zoneinfo import ZoneInfo

import numpy as np
import pyarrow as pa

from indicators.catalog.expand import Catalog
from indicators.feeds.schemas import ALLOWED_LATENESS, SCHEMAS
from twin_assets.fsio import atomic_write

from .encode import PRIMARY, Encoder
from .compiled import time_order
from .kernels import Forecaster, LinearTrend, SeenSet
from .plan import IDLE, NO_DATA, OK, QUALITY_NAMES, STALE, Plan
from .state import RowCache, TickCtx

__all__ = ["Engine", "BatchRun", "Tick", "Changes", "IngestResult", "OK", "STALE", "NO_DATA", "IDLE", "QUALITY_NAMES",
           "DEFAULT_LATENESS", "CHECKPOINT_VERSION"]

# A tick waits this long for its stragglers, so values lag event time by it: the feeds' one allowed
# lateness (indicators.feeds.schemas.ALLOWED_LATENESS), which the ingestor judges records by.
DEFAULT_LATENESS = ALLOWED_LATENESS
CHECKPOINT_VERSION = 2
_EPOCH = datetime(1970, 1, 1, tzinfo=timezone.utc)
_MAX_TICKS_PER_CHUNK = 3600


def _ms(dt: datetime) -> int:
    if dt.tzinfo is None:
        raise ValueError("naive datetime: pass an aware time (UTC or with an offset)")
    return (dt - _EPOCH) // timedelta(milliseconds=1)


def _dt(ms: int) -> datetime:
    return _EPOCH + timedelta(milliseconds=int(ms))


@dataclass(frozen=True)
class Tick:
    """All indicator values at one tick boundary.

    ``values[i]`` / ``quality[i]`` belong to ``catalog.indicators[i]``;
    ``changed`` lists the indices whose value or quality differs from the
    previous tick (all of them on the first tick).
    """

    time_ms: int
    values: np.ndarray
    quality: np.ndarray
    changed: np.ndarray

    @property
    def time(self) -> datetime:
        return _dt(self.time_ms)


@dataclass(frozen=True)
class Changes:
    """Indicators whose value or quality changed, as of ``time_ms``."""

    time_ms: int | None
    index: np.ndarray
    values: np.ndarray
    quality: np.ndarray

    def __len__(self) -> int:
        return len(self.index)


@dataclass(frozen=True)
class IngestResult:
    """What one :meth:`Engine.ingest` did with a batch."""

    accepted: int
    duplicates: int
    late: int
    unknown: int          # accepted, but not attributable (an id the inventory does not know)
    skipped: bool = False  # feed_seq already covered by a restored checkpoint


@dataclass
class _Clock:
    last_tick: int | None = None       # last computed tick boundary (ms)
    max_t: int | None = None           # newest accepted event time (ms)
    wm_floor: int | None = None        # watermark raised by heartbeat()
    covered_seq: int | None = None


class Engine:
    """Vectorised event-time engine of the catalog's indicators (see the module docstring).

    ``catalog``: the expanded catalog (its dimensions come from the
    inventory it was expanded against; ``inventory``, if given, is checked to
    be that one).  ``tick``: spacing of the computed boundaries (every
    trailing window and forecast lookback must be a multiple).
    ``forecaster``: see :class:`~.kernels.Forecaster`.  ``start``: the first
    tick boundary is the first one after it, and events at or before it are
    late.  Give it (or restore a checkpoint) whenever runs must agree tick for
    tick; without it the grid starts at the earliest event pending at the
    first :meth:`advance`, which depends on what has arrived by then.
    """

    def __init__(self, catalog: Catalog, inventory=None, *, tick: timedelta = timedelta(seconds=1),
                 allowed_lateness: timedelta = DEFAULT_LATENESS, forecaster: Forecaster | None = None,
                 tz: str = "Asia/Shanghai", start: datetime | None = None, behind: str = "drop") -> None:
        """``behind``: what to do with an event at or before the watermark.  ``"drop"`` (offline
        replays of recordings: the engine is their only judge) counts it late and never applies it.
        ``"next_tick"`` (the service, behind the ingestor, which already judged lateness and
        duplicates once for every record of the feed log): an event whose tick is computed already
        is applied at the next tick (counted ``behind``), any other at its own tick - nothing the
        log holds is dropped here."""
        if behind not in ("drop", "next_tick"):
            raise ValueError("behind must be 'drop' or 'next_tick'")
        self.behind = behind
        self.catalog = catalog
        if inventory is not None and set(inventory["asset_id"]) != set(catalog.dims.members["asset"]):
            raise ValueError("the inventory is not the one the catalog was expanded against")
        self.tick_ms = tick // timedelta(milliseconds=1)
        if self.tick_ms <= 0 or self.tick_ms > 3_600_000:
            raise ValueError("tick must be between 1 ms and 1 h")
        for f in catalog.families:
            for w in f.windows:
                if w.seconds and (w.seconds * 1000) % self.tick_ms:
                    raise ValueError(f"{f.id}@{w}: the window is not a multiple of the tick ({tick})")
            lb = f.compute.get("lookback_s")
            if lb and (lb * 1000) % self.tick_ms:
                raise ValueError(f"{f.id}: lookback {lb} s is not a multiple of the tick ({tick})")
        self.lateness_ms = allowed_lateness // timedelta(milliseconds=1)
        if self.lateness_ms < 0:
            raise ValueError("allowed_lateness must not be negative")
        self.tz = ZoneInfo(tz)
        self.encoder = Encoder(catalog.dims)
        self.plan = Plan(catalog, self.encoder, self.tick_ms, forecaster or LinearTrend())
        self.n = len(catalog)
        self.seen = SeenSet()
        self.clock = _Clock()
        if start is not None:
            self.clock.last_tick = (_ms(start) // self.tick_ms) * self.tick_ms
        self.pending: dict[str, list[dict[str, np.ndarray]]] = {k: [] for k in SCHEMAS}
        self.values = np.full(self.n, np.nan)
        self.quality = np.full(self.n, NO_DATA, dtype=np.int8)
        self._prev_values = np.full(self.n, np.nan)
        self._prev_quality = np.full(self.n, -1, dtype=np.int8)
        self._pub_values = np.full(self.n, np.nan)
        self._pub_quality = np.full(self.n, -1, dtype=np.int8)
        self._subs: list[Callable[[Changes], None]] = []
        self.stats: dict[str, dict[str, int]] = {k: {"accepted": 0, "duplicates": 0, "late": 0, "unknown": 0}
                                                 for k in SCHEMAS}
        self._day = (None, None)                   # (day start, next day start) in ms
        self._fingerprint = hashlib.sha256("\n".join(catalog.ids).encode()).hexdigest()

    # ------------------------------------------------------------- time
    @property
    def watermark_ms(self) -> int | None:
        """Events older than this are late (newest event time minus the lateness, or a heartbeat)."""
        wm = None if self.clock.max_t is None else self.clock.max_t - self.lateness_ms
        if self.clock.wm_floor is not None:
            wm = self.clock.wm_floor if wm is None else max(wm, self.clock.wm_floor)
        return wm

    @property
    def watermark(self) -> datetime | None:
        wm = self.watermark_ms
        return None if wm is None else _dt(wm)

    @property
    def last_tick(self) -> datetime | None:
        return None if self.clock.last_tick is None else _dt(self.clock.last_tick)

    @property
    def covered_seq(self) -> int | None:
        return self.clock.covered_seq

    def asset_readings(self, asset_id: str) -> dict[str, tuple[float, datetime]]:
        """The latest facility reading of each metric the catalog tracks for
        ``asset_id`` (lamp state, hydrant pressure, cover tilt …): metric ->
        (value, event time).  Empty for an asset no family reads."""
        from indicators.feeds.schemas import FACILITY_METRICS
        plan = self.plan
        codes = plan.dims.code("asset")
        st = next((v for k, v in plan.states.items() if k.startswith("latest:facility:asset_metric:")), None)
        if asset_id not in codes or st is None or "value" not in st.columns:
            return {}
        a, col, out = codes[asset_id], st.columns.index("value"), {}
        for m, metric in enumerate(FACILITY_METRICS):
            e = int(plan._facility_lut[a, m])
            if e < 0 or e >= len(st.value):
                continue
            v, t = float(st.value[e, col]), int(st.time[e, col])
            if not np.isnan(v):
                out[metric] = (v, _dt(t))
        return out

    def heartbeat(self, now: datetime) -> None:
        """The sources are known to be quiet up to ``now``: let the watermark reach
        ``now - allowed_lateness`` so ticks (and staleness) go on without events."""
        wm = _ms(now) - self.lateness_ms
        if self.clock.wm_floor is None or wm > self.clock.wm_floor:
            self.clock.wm_floor = wm

    def _day_start(self, T: int) -> int:
        lo, hi = self._day
        if lo is not None and lo <= T < hi:
            return lo
        local = _dt(T).astimezone(self.tz)
        midnight = local.replace(hour=0, minute=0, second=0, microsecond=0)
        nxt = (midnight + timedelta(days=1)).replace(hour=0, minute=0, second=0, microsecond=0)
        self._day = (_ms(midnight), _ms(nxt))
        return self._day[0]

    # ----------------------------------------------------------- ingest
    def ingest(self, kind: str, table: pa.Table | pa.RecordBatch, *, feed_seq: int | None = None) -> IngestResult:
        """Take one batch of ``kind`` (see the module docstring).  ``feed_seq``: the
        feed log's sequence number of this batch; batches a restored checkpoint
        already covers are skipped."""
        if kind not in SCHEMAS:
            raise ValueError(f"unknown feed kind {kind!r} (one of {', '.join(SCHEMAS)})")
        if feed_seq is not None and self.clock.covered_seq is not None and feed_seq <= self.clock.covered_seq:
            return IngestResult(0, 0, 0, 0, skipped=True)
        if isinstance(table, pa.RecordBatch):
            table = pa.Table.from_batches([table])
        have = set(table.schema.names)
        missing = [f for f in SCHEMAS[kind].names if f not in have]
        if missing:
            raise ValueError(f"{kind}: the table lacks column(s) {', '.join(missing)}")
        if table.num_rows == 0:
            if feed_seq is not None:
                self.clock.covered_seq = feed_seq
            return IngestResult(0, 0, 0, 0)
        b = self.encoder.encode(kind, table)
        t = b["t"]
        late = np.zeros(len(t), dtype=bool)
        wm = self.watermark_ms
        n_behind = 0
        if self.behind == "next_tick":
            # the ingestor judged lateness; a tick computed already cannot take the event, the next one does.
            # "et" keeps each event's own time: the latest-state states judge "newer" by it
            b["et"] = t
            lt = self.clock.last_tick
            if lt is not None:
                back = t <= lt
                n_behind = int(back.sum())
                if n_behind:
                    t = b["t"] = np.where(back, lt + 1, t)
            wm = None
        if wm is not None:
            # inclusive: a tick at the watermark may already be computed, so an
            # event there is late whether or not advance() ran in between
            late |= t <= wm
        if self.clock.last_tick is not None and self.behind == "drop":
            late |= t <= self.clock.last_tick
        n_late = int(np.count_nonzero(late))
        if n_late:
            on_time = np.flatnonzero(~late)
            new = self.seen.add(b["h"][on_time], t[on_time])
            keep, n_on = on_time[new], len(on_time)
        else:                                               # the usual batch: no row to leave out yet
            new = self.seen.add(b["h"], t)
            keep, n_on = (None if new.all() else np.flatnonzero(new)), len(t)
        n_keep = len(t) if keep is None else len(keep)
        n_dup = n_on - n_keep
        take = keep                                          # the rows kept (None: all), in time order: one gather
        tk = t[keep] if keep is not None else t
        if len(tk) > 1 and (tk[1:] < tk[:-1]).any():        # out of order: sort once here, so a tick slices views
            order = time_order(tk)
            take = keep[order] if keep is not None else order
        unknown = 0
        if n_keep:
            prim = b[PRIMARY[kind]]
            unknown = int(np.count_nonzero((prim if keep is None else prim[keep]) < 0))
            self.plan.prepare(kind, b)                       # before the gather: fewer columns to gather
            if take is not None:
                b = {k: v[take] for k, v in b.items()}
            self.pending[kind].append(b)
            hi = int(b["t"][-1])                             # in time order
            self.clock.max_t = hi if self.clock.max_t is None else max(self.clock.max_t, hi)
        self.seen.rotate(self.watermark_ms)
        if feed_seq is not None:
            self.clock.covered_seq = feed_seq
        st = self.stats[kind]
        st["accepted"] += n_keep
        st["duplicates"] += n_dup
        st["late"] += n_late
        st["unknown"] += unknown
        if n_behind:
            st["behind"] = st.get("behind", 0) + n_behind
        return IngestResult(n_keep, n_dup, n_late, unknown)

    def batch_run(self) -> "BatchRun":
        """Start collecting consecutive batches for :meth:`ingest_many`."""
        return BatchRun(self)

    def ingest_many(self, items: list[tuple[str, pa.Table]]) -> list[int | None]:
        """Take the batches of a :class:`BatchRun` in one pass: exactly what
        :meth:`ingest` of each in turn, with every tick the watermark allows
        computed in between, would have done (the run's conditions make every
        lateness, de-duplication and seen-set decision the same), at the cost
        of one encoding per feed kind instead of one per batch.

        Returns the newest accepted event time (ms) of each batch (None: none
        accepted), from which the watermark after each batch follows.  Raises
        like :meth:`ingest` on a batch it cannot read; then nothing but the
        dynamic codecs changed (they learn ids in the order the batches would
        have taught them), so the batches can be ingested one by one."""
        if self.behind != "drop":
            raise ValueError("ingest_many serves offline replays (behind='drop'); feed the service's engine "
                             "batch by batch with ingest()")
        if not items:
            return []
        order: dict[str, list[int]] = {}
        for i, (kind, table) in enumerate(items):
            if kind not in SCHEMAS:
                raise ValueError(f"unknown feed kind {kind!r} (one of {', '.join(SCHEMAS)})")
            missing = [f for f in SCHEMAS[kind].names if f not in table.schema.names]
            if missing:
                raise ValueError(f"{kind}: the table lacks column(s) {', '.join(missing)}")
            order.setdefault(kind, []).append(i)
        enc: dict[str, dict[str, np.ndarray]] = {}
        span: dict[int, tuple[int, int]] = {}             # batch -> its rows in its kind's concatenation
        for kind, idx in order.items():
            tables = [items[i][1] for i in idx]
            if len(tables) > 1:
                table = pa.concat_tables([t.select(tables[0].schema.names) for t in tables])
            else:
                table = tables[0]
            enc[kind] = self.encoder.encode(kind, table)
            off = 0
            for i, t in zip(idx, tables):
                span[i] = (off, off + t.num_rows)
                off += t.num_rows
        # lateness is judged against the watermark before the run (a run holds no event between
        # it and the watermark after the run), de-duplication in arrival order across kinds
        cut = self.watermark_ms
        if self.clock.last_tick is not None:
            cut = self.clock.last_tick if cut is None else max(cut, self.clock.last_tick)
        on_time = {k: (np.ones(len(b["t"]), dtype=bool) if cut is None else b["t"] > cut) for k, b in enc.items()}
        parts_h, parts_t, where = [], [], []
        for i, (kind, _) in enumerate(items):
            lo, hi = span[i]
            rows = lo + np.flatnonzero(on_time[kind][lo:hi])
            parts_h.append(enc[kind]["h"][rows])
            parts_t.append(enc[kind]["t"][rows])
            where.append((kind, rows))
        new = self.seen.add(np.concatenate(parts_h), np.concatenate(parts_t)) if parts_h else np.zeros(0, bool)
        keep_mask = {k: np.zeros(len(b["t"]), dtype=bool) for k, b in enc.items()}
        newest: list[int | None] = []
        at = 0
        for kind, rows in where:
            kept = rows[new[at:at + len(rows)]]
            at += len(rows)
            keep_mask[kind][kept] = True
            newest.append(int(enc[kind]["t"][kept].max()) if len(kept) else None)
        for kind, b in enc.items():
            keep = np.flatnonzero(keep_mask[kind])
            n_late = int((~on_time[kind]).sum())
            n_dup = int(on_time[kind].sum()) - len(keep)
            if len(keep) < len(b["t"]):
                b = {k: v[keep] for k, v in b.items()}
            unknown = int((b[PRIMARY[kind]] < 0).sum()) if len(keep) else 0
            if len(keep):
                t = b["t"]
                if len(t) > 1 and (t[1:] < t[:-1]).any():
                    o = np.argsort(t, kind="stable")
                    b = {k: v[o] for k, v in b.items()}
                self.plan.prepare(kind, b)
                self.pending[kind].append(b)
                hi = int(b["t"].max())
                self.clock.max_t = hi if self.clock.max_t is None else max(self.clock.max_t, hi)
            st = self.stats[kind]
            st["accepted"] += len(keep)
            st["duplicates"] += n_dup
            st["late"] += n_late
            st["unknown"] += unknown
        self.seen.rotate(self.watermark_ms)
        return newest

    # ---------------------------------------------------------- advance
    def advance(self, to: datetime) -> Tick | None:
        """Compute every tick up to ``min(to, watermark)``; return the last (None if none was due)."""
        last = None
        for last in self.ticks(to):
            pass
        return last

    def ticks(self, to: datetime, want: Callable[[int], bool] | None = None) -> Iterator[Tick]:
        """Like :meth:`advance`, yielding every tick (do not ingest while iterating).

        ``want(T)`` (tick time in epoch ms; None = every tick): which ticks to
        evaluate and yield.  The others are computed - every state takes its
        events tick by tick as always - but their 1,373 values are not, so a
        reader of a few ticks (the replay evaluates alerts every 15 s) pays
        for the states only.  A yielded tick's values are exactly those of the
        every-tick path (:meth:`Plan.skip <.plan.Plan.skip>`); its
        ``changed`` and the subscribers' changes are relative to the previous
        yielded tick.  ``want`` is asked just before each tick, after the
        previous yielded tick has been handled, so it may read what that did."""
        limit = self.tick_limit(to)
        if limit is None:
            return
        if self.clock.last_tick is None:
            first = self._earliest_pending()
            if first is None:
                return
            self.clock.last_tick = -(-first // self.tick_ms) * self.tick_ms - self.tick_ms
        while self.clock.last_tick < limit:
            end = min(limit, self.clock.last_tick + _MAX_TICKS_PER_CHUNK * self.tick_ms)
            yield from self._run(end, want)

    def peek(self) -> Tick | None:
        """The values of the tick the newest event falls in, computed now with the events in so
        far, *without* closing it: this engine stays exactly as it was (the tick is computed on a
        scratch copy of the state), so the tick is computed again, whole, when time passes its end.
        None when no event is pending past the last computed tick.

        This is early firing for the screens (the service's provisional engine: an event shows at
        the next step, not after its tick's end); alerts, trends and history never read it.  Cost:
        one copy of the window state (a few ms) and one tick."""
        c = self.clock
        if c.max_t is None or c.last_tick is None or c.max_t <= c.last_tick:
            return None
        T = -(-c.max_t // self.tick_ms) * self.tick_ms
        scratch = self.__dict__.get("_scratch")
        if scratch is None:
            self.__dict__["_scratch"] = None            # not part of the copy
            scratch = copy.deepcopy(self)
            scratch._subs = []                          # nobody hears a peek
            self.__dict__["_scratch"] = scratch
        scratch._load(self._state_arrays(), self._meta())
        scratch.clock.wm_floor = T if c.wm_floor is None else max(T, c.wm_floor)
        last = None
        for last in scratch.ticks(_dt(T), want=lambda t: t == T):
            pass
        return last

    def __deepcopy__(self, memo):
        """A copy without the scratch copy :meth:`peek` keeps."""
        cls = self.__class__
        out = cls.__new__(cls)
        memo[id(self)] = out
        for k, v in self.__dict__.items():
            out.__dict__[k] = None if k == "_scratch" else copy.deepcopy(v, memo)
        return out

    def tick_limit(self, to: datetime) -> int | None:
        """The last tick boundary (epoch ms) :meth:`ticks` would compute up to ``to`` (None: no watermark yet)."""
        wm = self.watermark_ms
        if wm is None:
            return None
        return min(_ms(to), wm) // self.tick_ms * self.tick_ms

    def _earliest_pending(self) -> int | None:
        ts = [int(b["t"].min()) for bs in self.pending.values() for b in bs if len(b["t"])]
        return min(ts) if ts else None

    def _take(self, end: int) -> dict[str, tuple[dict[str, np.ndarray], np.ndarray]]:
        """Pending events up to ``end`` per feed, ordered by tick, with the tick boundaries."""
        T0 = self.clock.last_tick
        K = (end - T0) // self.tick_ms
        out = {}
        for kind, chunks in self.pending.items():
            if not chunks:
                continue
            take, keep = [], []
            for c in chunks:                    # chunks are sorted by time: split them into views, no copy
                t = c["t"]
                if len(t) and t[-1] <= end:         # all of it due
                    take.append(c)
                    continue
                if len(t) and t[0] > end:           # none of it due yet
                    keep.append(c)
                    continue
                i = int(np.searchsorted(t, end, side="right"))
                if i == 0:
                    keep.append(c)
                elif i == len(t):
                    take.append(c)
                else:
                    take.append({k: v[:i] for k, v in c.items()})
                    keep.append({k: v[i:] for k, v in c.items()})
            self.pending[kind] = keep
            if not take:
                continue
            b = take[0] if len(take) == 1 else {k: np.concatenate([c[k] for c in take]) for k in take[0]}
            if K == 1:                                      # the usual advance: one tick takes them all
                out[kind] = (b, (0, len(b["t"])))
                continue
            j = (b["t"] - T0 - 1) // self.tick_ms          # 0 .. K-1: tick T0 + (j+1)*tick
            if len(j) > 1 and (np.diff(j) < 0).any():
                order = np.argsort(j, kind="stable")        # once per advance, not per tick
                b = {k: v[order] for k, v in b.items()}
                j = j[order]
            out[kind] = (b, np.searchsorted(j, np.arange(K + 1), side="left"))
        return out

    def _run(self, end: int, want: Callable[[int], bool] | None = None) -> Iterator[Tick]:
        taken = self._take(end)
        K = (end - self.clock.last_tick) // self.tick_ms
        T0 = self.clock.last_tick
        for i in range(K):
            T = T0 + (i + 1) * self.tick_ms
            if K == 1:
                batches = {kind: b for kind, (b, bounds) in taken.items()}
            else:
                batches = {kind: {k: v[bounds[i]:bounds[i + 1]] for k, v in b.items()}
                           for kind, (b, bounds) in taken.items() if bounds[i + 1] > bounds[i]}
            tick = self._compute(T, batches, taken, i, want is None or want(T))
            if tick is not None:
                yield tick

    def _compute(self, T: int, batches: dict[str, dict[str, np.ndarray]], taken, i: int,
                 evaluate: bool = True) -> Tick | None:
        day = self._day_start(T)
        ctx = TickCtx(T, T // self.tick_ms, self.tick_ms, day)
        plan = self.plan
        cases = plan.states.get("cases")
        if cases is not None and day != cases.day_start:
            self._roll_case_day(cases, day, batches, taken, i)
        for kind, b in batches.items():
            hi = int(b["t"].max())
            if hi > plan.feed_last.get(kind, -1):
                plan.feed_last[kind] = hi
        for kind, states in plan.by_feed.items():
            b = batches.get(kind)
            rc = RowCache(b, plan.sizes) if b is not None else None
            for st in states:
                st.update(b, rc, ctx)
        for v in plan.afters:
            v.after(ctx)
        for series, latest, col in plan.series_latest:
            series.record(ctx.k, latest.value[:series.ring.shape[1], col])
        if not evaluate:
            plan.skip(ctx, self.values, self.quality)
            self.clock.last_tick = T
            return None
        plan.evaluate(ctx, self.values, self.quality)
        values, quality = self.values, self.quality
        self.clock.last_tick = T
        changed = _changed(self._prev_values, self._prev_quality, values, quality)
        self._prev_values[:] = values
        self._prev_quality[:] = quality
        tick = Tick(T, values.copy(), quality.copy(), changed)
        if self._subs and len(changed):
            ch = Changes(T, changed, tick.values[changed], tick.quality[changed])
            for fn in list(self._subs):
                fn(ch)
        return tick

    def _roll_case_day(self, cases, day: int, batches, taken, i: int) -> None:
        """New local day: forget closed cases; re-code not-yet-applied case records."""
        parts = [c["case"] for c in self.pending["case"]]
        if "case" in taken:
            b, bounds = taken["case"]
            parts.append(b["case"][bounds[i]:])
        pend = np.concatenate(parts) if parts else np.zeros(0, dtype=np.intp)
        remap = cases.roll_day(day, pend)
        if remap is None:
            return
        def apply(a: np.ndarray) -> None:
            ok = a >= 0
            a[ok] = remap[a[ok]]
        for c in self.pending["case"]:
            apply(c["case"])
        if "case" in taken:
            b, bounds = taken["case"]
            apply(b["case"][bounds[i]:])           # views: this updates the tick slices too

    # --------------------------------------------------------- publishing
    def subscribe(self, fn: Callable[[Changes], None]) -> Callable[[], None]:
        """Call ``fn(changes)`` after every tick that changed something; returns an unsubscribe."""
        self._subs.append(fn)
        return lambda: self._subs.remove(fn) if fn in self._subs else None

    def changes(self) -> Changes:
        """Values and qualities that differ from what the previous call returned."""
        idx = _changed(self._pub_values, self._pub_quality, self.values, self.quality)
        self._pub_values[:] = self.values
        self._pub_quality[:] = self.quality
        return Changes(self.clock.last_tick, idx, self.values[idx].copy(), self.quality[idx].copy())

    # ------------------------------------------------------- checkpoints
    def _state_arrays(self) -> dict[str, np.ndarray]:
        out: dict[str, np.ndarray] = {}
        for name, st in self.plan.states.items():
            for k, v in st.state().items():
                out[f"state/{name}/{k}"] = np.asarray(v)
        for k, v in self.encoder.state().items():
            out[f"encoder/{k}"] = v
        for k, v in self.seen.state().items():
            out[f"seen/{k}"] = v
        for kind, chunks in self.pending.items():
            if chunks:
                b = chunks[0] if len(chunks) == 1 else {k: np.concatenate([c[k] for c in chunks]) for k in chunks[0]}
                for k, v in b.items():
                    out[f"pending/{kind}/{k}"] = v
        out["engine/values"] = self.values
        out["engine/quality"] = self.quality
        out["engine/prev_values"] = self._prev_values
        out["engine/prev_quality"] = self._prev_quality
        out["engine/pub_values"] = self._pub_values
        out["engine/pub_quality"] = self._pub_quality
        return out

    def _meta(self) -> dict[str, Any]:
        c = self.clock
        return {"version": CHECKPOINT_VERSION, "catalog": self._fingerprint, "tick_ms": self.tick_ms,
                "lateness_ms": self.lateness_ms, "last_tick": c.last_tick, "max_t": c.max_t,
                "wm_floor": c.wm_floor, "covered_seq": c.covered_seq, "feed_last": self.plan.feed_last,
                "stats": self.stats}

    def checkpoint(self, path: str | os.PathLike) -> int | None:
        """Write all state to ``path`` atomically; return the feed sequence number it covers."""
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        arrays = self._state_arrays()
        arrays["meta"] = np.array(json.dumps(self._meta()))

        def write(tmp: str) -> None:
            with open(tmp, "wb") as f:
                np.savez(f, **arrays)
        atomic_write(path, write)
        return self.clock.covered_seq

    def to_bytes(self) -> bytes:
        """The checkpoint as bytes (for a store that is not a local file: a JetStream object)."""
        arrays = self._state_arrays()
        arrays["meta"] = np.array(json.dumps(self._meta()))
        buf = io.BytesIO()
        np.savez(buf, **arrays)
        return buf.getvalue()

    def restore(self, path: "str | os.PathLike | bytes") -> int | None:
        """Load a checkpoint (a file, or what :meth:`to_bytes` gave) into this (freshly built)
        engine; return the feed sequence number it covers - replay the feed log after it."""
        src = io.BytesIO(path) if isinstance(path, (bytes, bytearray, memoryview)) else Path(path)
        with np.load(src, allow_pickle=False) as z:
            data = {k: z[k] for k in z.files}
        meta = json.loads(str(data.pop("meta")))
        return self._load(data, meta)

    def _load(self, data: dict[str, np.ndarray], meta: dict[str, Any]) -> int | None:
        if meta.get("version") != CHECKPOINT_VERSION:
            raise ValueError(f"checkpoint version {meta.get('version')} (this engine reads {CHECKPOINT_VERSION})")
        if meta["catalog"] != self._fingerprint:
            raise ValueError("the checkpoint was taken with another catalog")
        if meta["tick_ms"] != self.tick_ms or meta["lateness_ms"] != self.lateness_ms:
            raise ValueError("the checkpoint was taken with another tick or allowed lateness")
        groups: dict[str, dict[str, dict[str, np.ndarray]]] = {}
        for key, arr in data.items():
            top, rest = key.split("/", 1)          # our own file layout, not an indicator id
            if top in ("state", "pending"):
                name, field_ = rest.rsplit("/", 1)
                groups.setdefault(top, {}).setdefault(name, {})[field_] = arr
            else:
                groups.setdefault(top, {}).setdefault("", {})[rest] = arr
        self.encoder.load(groups.get("encoder", {}).get("", {}))
        for name, st in self.plan.states.items():
            st.load(groups.get("state", {}).get(name, {}))
        self.seen.load(groups["seen"][""])
        self.pending = {k: [] for k in SCHEMAS}
        for kind, b in groups.get("pending", {}).items():
            order = np.argsort(b["t"], kind="stable")      # the saved chunks were concatenated
            self.pending[kind] = [{k: v[order] for k, v in b.items()}]
        e = groups["engine"][""]
        self.values, self.quality = e["values"].copy(), e["quality"].copy()
        self._prev_values, self._prev_quality = e["prev_values"].copy(), e["prev_quality"].copy()
        self._pub_values, self._pub_quality = e["pub_values"].copy(), e["pub_quality"].copy()
        self.clock = _Clock(meta["last_tick"], meta["max_t"], meta["wm_floor"], meta["covered_seq"])
        self.plan.feed_last = {k: int(v) for k, v in meta["feed_last"].items()}
        self.plan.reset()
        self.stats = json.loads(json.dumps(meta["stats"]))
        return self.clock.covered_seq

    def snapshot(self) -> dict[str, Any]:
        """The whole state in memory, as a checkpoint holds it: fork what-if runs (tests, tools)."""
        return {"arrays": {k: np.array(v, copy=True) for k, v in self._state_arrays().items()},
                "meta": json.loads(json.dumps(self._meta()))}

    def load_snapshot(self, snap: dict[str, Any]) -> int | None:
        """Return to a :meth:`snapshot` (which stays reusable: the arrays are copied in)."""
        return self._load(snap["arrays"], snap["meta"])


class BatchRun:
    """Consecutive batches the engine can take in one :meth:`Engine.ingest_many`
    with the same outcome as one :meth:`Engine.ingest` each and every tick the
    watermark allows computed after each (what a replay does, batch by batch).

    A recording arrives in tens of thousands of batches of one or two rows;
    one at a time, the fixed cost per batch (encoding, hashing, the seen-set
    probe) is most of a replay.  A batch joins the run (:meth:`add`) only if
    that changes no decision:

    * every event of the run is either late already (at or before the
      watermark / last tick before the run: late one by one too) or newer
      than the highest watermark the run can reach (the newest event of the
      run minus the allowed lateness: on time one by one too), so lateness
      does not depend on where in the run an event came;
    * the seen set would not rotate inside the run (its older generation
      stays newer than the watermark before the last batch), so
      de-duplication in arrival order is the same;
    * the ticks the run lets through stay in the local day of the last tick
      computed before it (the new day's case roll re-codes case ids between
      batches).

    The events of each batch then reach the ticks they would have reached:
    :meth:`watermarks` gives the watermark after each batch.
    """

    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self.items: list[tuple[str, pa.Table]] = []
        e = engine
        self.floor = e.clock.wm_floor
        self.max_t0 = e.clock.max_t
        cut = e.watermark_ms
        if e.clock.last_tick is not None:
            cut = e.clock.last_tick if cut is None else max(cut, e.clock.last_tick)
        self.cut = cut
        self.newest = e.clock.max_t                  # newest event time the run may accept (an upper bound)
        self.oldest_on_time: int | None = None
        self.prev_max = e.seen.prev_max
        self.day = None if e.clock.last_tick is None else e._day_start(e.clock.last_tick)

    def _wm(self, newest: int | None) -> int | None:
        wm = None if newest is None else newest - self.engine.lateness_ms
        if self.floor is not None:
            wm = self.floor if wm is None else max(wm, self.floor)
        return wm

    def add(self, kind: str, table: pa.Table, t: np.ndarray) -> bool:
        """Add a batch (``t``: its event times in epoch ms, as the engine reads them)
        if the run stays exact; False: ingest the run first, then start a new one."""
        on = t if self.cut is None else t[t > self.cut]
        newest, oldest = self.newest, self.oldest_on_time
        if len(on):
            hi, lo = int(on.max()), int(on.min())
            newest = hi if newest is None else max(newest, hi)
            oldest = lo if oldest is None else min(oldest, lo)
        if self.items:
            e = self.engine
            if e.clock.last_tick is None or self.cut is None:
                return False                         # the tick grid is not fixed yet
            wm = self._wm(newest)
            if wm is not None and oldest is not None and oldest <= wm:
                return False                         # an event the run's own watermark could make late
            before = self._wm(self.newest)
            if before is not None and self.prev_max < before:
                return False                         # the seen set would rotate inside the run
            if wm is not None and e._day_start(wm // e.tick_ms * e.tick_ms) != self.day:
                return False                         # the run's ticks would cross local midnight
        self.items.append((kind, table))
        self.newest, self.oldest_on_time = newest, oldest
        return True

    def __len__(self) -> int:
        return len(self.items)

    def watermarks(self, newest: list[int | None]) -> list[int | None]:
        """The watermark after each batch, from :meth:`Engine.ingest_many`'s newest accepted times."""
        out, top = [], self.max_t0
        for m in newest:
            if m is not None:
                top = m if top is None else max(top, m)
            out.append(self._wm(top))
        return out


def _changed(pv: np.ndarray, pq: np.ndarray, v: np.ndarray, q: np.ndarray) -> np.ndarray:
    same = (pv == v) | (np.isnan(pv) & np.isnan(v))
    return np.flatnonzero(~same | (pq != q))
