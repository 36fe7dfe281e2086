"""The engine's state: a few kinds of statistic, each a small class over arrays.

Every class follows one protocol (River's ``update`` / ``get``, but on
arrays, and with time passed in):

* ``update(batch, rows, ctx)`` - apply the events of *one tick* (``batch``:
  a dict of equal-length arrays from :mod:`.encode`, or None; ``rows``: the
  tick's :class:`RowCache`) at tick time ``ctx.T``.  Events of a tick are
  always newer than everything applied before: the engine applies ticks in
  order, after their events can no longer arrive;
* read methods or attributes the evaluators (:mod:`.plan`) use;
* ``state()`` / ``load()`` - all arrays, for checkpoints.

Kinds: :class:`Latest` (latest value per entity and column),
:class:`Windows` (stacked rings of one-tick buckets with running counts and
sums), :class:`Extremes` (ring of per-tick maxima or minima with block
extremes), :class:`Today` (sums since local midnight), :class:`Visits`
(person-time since midnight), :class:`Distinct` (last-seen time per (row,
vehicle)), :class:`Cases` (the case loop), :class:`Warnings` (signal
levels), :class:`VisitAge` (last staff visit of checkpoints),
:class:`Series` (per-tick history for changes and forecasts).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import numpy as np

from .encode import CLOSED, NO_EXPIRY
from .kernels import last_per_entity

__all__ = ["TickCtx", "Latest", "Block", "RowCache", "Windows", "Extremes", "Today", "Visits", "Distinct", "Cases",
           "Warnings", "VisitAge", "Series", "tie_key"]

EMPTY_TIME = -1


@dataclass(frozen=True)
class TickCtx:
    """The tick being computed: ``T`` (epoch ms), its number ``k`` = T // tick,
    the tick length and the start of the local day containing ``T``."""

    T: int
    k: int
    tick_ms: int
    day_start: int


def tie_key(t: np.ndarray, tie: np.ndarray, ctx: TickCtx) -> np.ndarray:
    """(time within the tick, the event's ``tie`` = top 41 bits of its id hash) packed
    in an int64: larger = newer, equal times broken by the hash, never by arrival."""
    return ((t - (ctx.T - ctx.tick_ms)) << np.int64(41)) | tie


def newest(ent: np.ndarray, t: np.ndarray, tie: np.ndarray, ctx: TickCtx, n: int,
           et: np.ndarray | None = None, held: np.ndarray | None = None) -> np.ndarray:
    """Mask of the rows holding the newest event of their entity (``ent`` valid codes < ``n``).

    ``et``: the events' own times, when the engine moved late rows into the next tick (the
    service's engine, ``behind="next_tick"``: their ``t`` is the tick's start, no longer their
    time).  Then the newest is judged by ``et``, and a row older than the event its entity
    holds already (``held``, per entity) is no newer value: a message that arrives after a
    newer one of the same signal, case or sensor does not replace it."""
    if et is None:
        return last_per_entity(ent, tie_key(t, tie, ctx), n)
    key = np.empty(len(et), dtype=np.int64)
    key[np.lexsort((tie, et))] = np.arange(len(et))
    win = last_per_entity(ent, key, n)
    if held is not None:
        win &= et >= held[ent]
    return win


def own_times(b: dict, rows: np.ndarray, t: np.ndarray) -> tuple[np.ndarray | None, np.ndarray]:
    """(``et`` of the rows or None, the time to keep for each row): the events' own times where
    the engine moved late rows into the next tick, else their tick times ``t``."""
    et = b.get("et")
    if et is None:
        return None, t
    et = et[rows]
    return et, et


def _grow(a: np.ndarray, n: int, fill) -> np.ndarray:
    if len(a) >= n:
        return a
    out = np.full((max(n, 2 * len(a), 16),) + a.shape[1:], fill, dtype=a.dtype)
    out[:len(a)] = a
    return out


class Latest:
    """Latest value of each entity in one or more value columns, with its event time.

    ``entity(batch)`` gives the entity code per event (-1: not tracked); a
    NaN value or an event failing ``where`` is no reading for that column, so
    each column keeps its own latest reading.  Entities may be dynamic
    (weather stations, staff): the arrays grow.  ``version`` increases
    whenever a value changes, so readers can skip an unchanged table.
    """

    def __init__(self, n: int, entity: Callable[[dict], np.ndarray], columns: list[str],
                 where: Callable[[dict], np.ndarray] | None = None) -> None:
        self.n = n
        self.entity = entity
        self.columns = list(columns)
        self.where = where
        C = len(self.columns)
        self.value = np.full((max(n, 1), C), np.nan)
        self.time = np.full((max(n, 1), C), EMPTY_TIME, dtype=np.int64)
        self.version = 0
        self._best_t = self._best_tie = np.zeros(0, dtype=np.int64)   # scratch of the compiled update

    def col(self, name: str) -> int:
        if name not in self.columns:
            self.columns.append(name)
            self.value = np.concatenate([self.value, np.full((len(self.value), 1), np.nan)], axis=1)
            self.time = np.concatenate([self.time, np.full((len(self.time), 1), EMPTY_TIME, dtype=np.int64)], axis=1)
        return self.columns.index(name)

    def ensure(self, n: int) -> None:
        if n > len(self.value):
            self.value = _grow(self.value, n, np.nan)
            self.time = _grow(self.time, n, EMPTY_TIME)
        self.n = max(self.n, n)

    def update(self, b: dict | None, rc: RowCache | None, ctx: TickCtx) -> None:
        if not b:
            return
        ent = self.entity(b)
        ok = ent >= 0
        if self.where is not None:
            ok &= self.where(b)
        C = len(self.columns)
        if C == 1:                                   # the common case: one compiled pass, no gathers
            self._update_one(b, ent, ok)
            return
        stacked = np.stack([b[c] for c in self.columns], axis=1)
        m = ok[:, None] & ~np.isnan(stacked)
        if not m.any():
            return
        r, c = np.nonzero(m)
        cell = ent[r] * C + c
        vals = stacked[r, c]
        self.ensure(int(ent[r].max()) + 1)
        t = b["t"][r]
        et, when = own_times(b, r, t)
        held = self.time.reshape(-1)
        win = newest(cell, t, b["tie"][r], ctx, len(self.value) * C, et, held)
        cell = cell[win]
        self.value.reshape(-1)[cell] = vals[win]
        held[cell] = when[win]
        self.version += 1

    def _update_one(self, b: dict, ent: np.ndarray, ok: np.ndarray) -> None:
        """:meth:`update` for one value column, in one compiled pass and one back: what the
        stacked path computes (:func:`newest`, the time kept by :func:`own_times`)."""
        from .compiled import latest_apply, latest_top
        v = b[self.columns[0]]
        top = latest_top(ent, ok, v)
        if top < 0:
            return
        self.ensure(top + 1)
        if len(self._best_t) < len(self.value):
            self._best_t = np.full(len(self.value), np.iinfo(np.int64).min, dtype=np.int64)
            self._best_tie = np.zeros(len(self.value), dtype=np.int64)
        et = b.get("et")                             # events at their own times, moved into this tick
        latest_apply(ent, ok, v, b["t"] if et is None else et, b["tie"], et is not None,
                     self._best_t, self._best_tie, self.value[:, 0], self.time[:, 0])
        self.version += 1

    def state(self) -> dict:
        return {"value": self.value[:self.n], "time": self.time[:self.n]}

    def load(self, st: dict) -> None:
        if "value" not in st:
            return
        self.n = len(st["value"])
        C = len(self.columns)
        self.value = np.full((max(self.n, 1), C), np.nan)
        self.time = np.full((max(self.n, 1), C), EMPTY_TIME, dtype=np.int64)
        self.value[:self.n] = st["value"]
        self.time[:self.n] = st["time"]
        self.version += 1


@dataclass(frozen=True)
class Block:
    """Rows of one (key set, value column, filter) inside a stacked state."""

    keys: tuple[str, ...]
    value: str
    where: str | None
    offset: int
    rows: int


class RowCache:
    """Dense scope rows of a tick's events, computed once per key set."""

    def __init__(self, b: dict, sizes: Callable[[tuple[str, ...]], tuple[int, ...]]) -> None:
        self.b = b
        self.sizes = sizes
        self.cache: dict[tuple[str, ...], np.ndarray] = {}

    def rows(self, keys: tuple[str, ...]) -> np.ndarray:
        r = self.cache.get(keys)
        if r is None:
            b = self.b
            n = len(b["t"])
            r = np.zeros(n, dtype=np.intp)
            ok = np.ones(n, dtype=bool)
            for key, size in zip(keys, self.sizes(keys)):
                if key == "area":
                    continue
                code = b[key]
                ok &= code >= 0
                r = r * size + code
            r = np.where(ok, r, -1)
            self.cache[keys] = r
        return r

    def stacked(self, blocks: list[Block], filters: dict[str, Callable[[dict], np.ndarray]]):
        """(rows + block offsets, values) of every valid (event, block) pair."""
        rows, vals = [], []
        for bl in blocks:
            r = self.rows(bl.keys)
            v = self.b[bl.value]
            m = (r >= 0) & ~np.isnan(v)
            if bl.where is not None:
                m &= filters[bl.where](self.b)
            rows.append(r[m] + bl.offset)
            vals.append(v[m])
        if len(rows) == 1:
            return rows[0], vals[0]
        return np.concatenate(rows), np.concatenate(vals)


class Windows:
    """Trailing-window counts and sums of events, for stacked row blocks: rings of one-tick buckets.

    Ring slot ``k % N`` holds tick ``k``'s bucket; a window of ``w`` ticks at
    tick ``k`` covers ticks ``k-w+1 .. k`` - event times in (T - w, T].
    Counts and sums are running totals (add the new bucket, subtract the one
    that leaves): exact, because values are quantised.  ``dirty[w]`` says
    whether window ``w`` changed at the last tick; ``changes[w]`` counts the
    ticks at which it changed, so a reader that skipped ticks (a replay
    evaluates only the ticks its alert rules read) knows whether to re-read.
    """

    def __init__(self, blocks: list[Block], windows: list[int], filters: dict) -> None:
        self.blocks = blocks
        self.filters = filters
        self.R = sum(b.rows for b in blocks)
        self.windows = sorted(set(windows))
        self.N = self.windows[-1]
        self.cnt = np.zeros((self.N, self.R))
        self.sum = np.zeros((self.N, self.R))
        self.run_cnt = {w: np.zeros(self.R) for w in self.windows}
        self.run_sum = {w: np.zeros(self.R) for w in self.windows}
        self.dirty = {w: True for w in self.windows}
        self.changes = {w: 0 for w in self.windows}
        self.k = -1
        self.last_event_k = -(1 << 60)
        self._zero = np.zeros(self.R)

    def update(self, b: dict | None, rc: RowCache | None, ctx: TickCtx) -> None:
        k = ctx.k
        rows = v = None
        if rc is not None:
            rows, v = rc.stacked(self.blocks, self.filters)
            if not len(rows):
                rows = None
        if rows is None and k - self.last_event_k > self.N and self.k >= 0:
            self.k = k
            for w in self.windows:
                self.dirty[w] = False
            return
        first = self.k + 1 if self.k >= 0 else k
        for step in range(first, k + 1):
            self._step(step, rows if step == k else None, v if step == k else None)
        self.k = k
        if rows is not None:
            self.last_event_k = k

    def _step(self, k: int, rows, v) -> None:
        p = k % self.N
        if rows is not None:
            c = np.bincount(rows, minlength=self.R).astype(np.float64)
            s = np.bincount(rows, weights=v, minlength=self.R)
        else:
            c = s = self._zero
        new_any = rows is not None
        for w in self.windows:
            old = (k - w) % self.N
            oc = self.cnt[old]
            self.dirty[w] = new_any or bool(oc.any())
            if self.dirty[w]:
                self.changes[w] += 1
                self.run_cnt[w] += c - oc
                self.run_sum[w] += s - self.sum[old]
        self.cnt[p] = c
        self.sum[p] = s

    def state(self) -> dict:
        st = {"cnt": self.cnt, "sum": self.sum, "k": np.array([self.k, self.last_event_k], dtype=np.int64)}
        for w in self.windows:
            st[f"run_cnt.{w}"] = self.run_cnt[w]
            st[f"run_sum.{w}"] = self.run_sum[w]
        return st

    def load(self, st: dict) -> None:
        self.cnt, self.sum = np.array(st["cnt"]), np.array(st["sum"])
        self.k, self.last_event_k = (int(x) for x in st["k"])
        for w in self.windows:
            self.run_cnt[w] = np.array(st[f"run_cnt.{w}"])
            self.run_sum[w] = np.array(st[f"run_sum.{w}"])
            self.dirty[w] = True
            self.changes[w] += 1


class Extremes:
    """Trailing-window maximum (or minimum) of one block of rows: a ring of per-tick extremes.

    The ring is cut into blocks of ``S`` slots with a cached extreme per
    block, so a tick re-reduces one block and the block extremes instead of
    the whole ring (an hour at 1 s ticks is 3,600 slots).
    """

    def __init__(self, block: Block, windows: list[int], largest: bool, filters: dict) -> None:
        self.block = block
        self.filters = filters
        self.R = block.rows
        self.windows = sorted(set(windows))
        self.N = self.windows[-1]
        self.largest = largest
        self.empty = -np.inf if largest else np.inf
        self.S = max(1, int(np.sqrt(self.N)))
        self.B = -(-self.N // self.S)
        self.ring = np.full((self.B * self.S, self.R), self.empty)
        self.blocks = np.full((self.B, self.R), self.empty)
        self.k = -1
        self.last_event_k = -(1 << 60)
        self.dirty = True                  # changed at the last tick
        self.changes = 1                   # ticks at which it changed (for readers that skip ticks)

    def _reduce(self, a: np.ndarray, axis: int = 0) -> np.ndarray:
        return a.max(axis=axis) if self.largest else a.min(axis=axis)

    def update(self, b: dict | None, rc: RowCache | None, ctx: TickCtx) -> None:
        k = ctx.k
        rows = v = None
        if rc is not None:
            rows, v = rc.stacked([self.block], self.filters)
            rows = rows - self.block.offset
            if not len(rows):
                rows = None
        if rows is None and k - self.last_event_k > self.N and self.k >= 0:
            self.k = k
            self.dirty = False
            return
        first = self.k + 1 if self.k >= 0 else k
        self.dirty = rows is not None or len(self.windows) > 1
        touched = set()
        for step in range(first, k + 1):
            p = step % self.N
            if not self.dirty and np.isfinite(self.ring[p]).any():
                self.dirty = True
            bucket = np.full(self.R, self.empty)
            if step == k and rows is not None:
                (np.maximum if self.largest else np.minimum).at(bucket, rows, v)
            self.ring[p] = bucket
            touched.add(p // self.S)
        for blk in touched:
            self.blocks[blk] = self._reduce(self.ring[blk * self.S:(blk + 1) * self.S])
        self.k = k
        if rows is not None:
            self.last_event_k = k
        self.changes += self.dirty

    def get(self, w: int) -> np.ndarray:
        if self.k - self.last_event_k >= self.N:
            return np.full(self.R, np.nan)
        if w == self.N:
            m = self._reduce(self.blocks)
        else:
            m = self._reduce(self.ring[(self.k - np.arange(w)) % self.N])
        return np.where(np.isinf(m), np.nan, m)

    def state(self) -> dict:
        return {"ring": self.ring[:self.N], "k": np.array([self.k, self.last_event_k], dtype=np.int64)}

    def load(self, st: dict) -> None:
        self.ring[:self.N] = st["ring"]
        self.k, self.last_event_k = (int(x) for x in st["k"])
        for blk in range(self.B):
            self.blocks[blk] = self._reduce(self.ring[blk * self.S:(blk + 1) * self.S])
        self.dirty = True
        self.changes += 1


class Today:
    """Sums per row (stacked blocks) of events since local midnight (events at midnight belong to the new day)."""

    def __init__(self, blocks: list[Block], filters: dict) -> None:
        self.blocks = blocks
        self.filters = filters
        self.R = sum(b.rows for b in blocks)
        self.acc = np.zeros(self.R)
        self.day_start = np.iinfo(np.int64).min
        self.dirty = True                  # changed at the last tick
        self.changes = 1                   # ticks at which it changed (for readers that skip ticks)

    def update(self, b: dict | None, rc: RowCache | None, ctx: TickCtx) -> None:
        self.dirty = False
        if ctx.day_start != self.day_start:
            self.acc[:] = 0.0
            self.day_start = ctx.day_start
            self.dirty = True
            self.changes += 1
        if rc is None:
            return
        late_day = rc.b["t"] >= ctx.day_start
        if not late_day.all():                      # the tick straddles midnight
            sub = RowCache({k: v[late_day] for k, v in rc.b.items()}, rc.sizes)
            rows, v = sub.stacked(self.blocks, self.filters)
        else:
            rows, v = rc.stacked(self.blocks, self.filters)
        if len(rows):
            self.acc += np.bincount(rows, weights=v, minlength=self.R)
            self.dirty = True
            self.changes += 1

    def state(self) -> dict:
        return {"acc": self.acc, "day_start": np.array([self.day_start], dtype=np.int64)}

    def load(self, st: dict) -> None:
        self.acc = np.array(st["acc"])
        self.day_start = int(st["day_start"][0])
        self.dirty = True
        self.changes += 1


class Visits:
    """Person-seconds present since local midnight, per entity of a :class:`Latest`.

    At every tick ``T`` after the day's start it adds (latest value) x (tick
    length) for each entity that has a value: a right Riemann sum of
    presence over the ticks of the day.
    """

    def __init__(self, latest: Latest, col: int) -> None:
        self.latest = latest
        self.col = col
        self.acc = np.zeros(len(latest.value))
        self.day_start = np.iinfo(np.int64).min

    def after(self, ctx: TickCtx) -> None:
        if ctx.day_start != self.day_start:
            self.acc = np.zeros(len(self.latest.value))
            self.day_start = ctx.day_start
        if ctx.T > ctx.day_start:
            v = self.latest.value[:, self.col]
            self.acc[:len(v)] += np.where(np.isnan(v), 0.0, v) * (ctx.tick_ms / 1000.0)

    def state(self) -> dict:
        return {"acc": self.acc, "day_start": np.array([self.day_start], dtype=np.int64)}

    def load(self, st: dict) -> None:
        self.acc = np.array(st["acc"])
        self.day_start = int(st["day_start"][0])


class Distinct:
    """Distinct vehicles per row in trailing windows: last-seen time per (row, vehicle)."""

    def __init__(self, rows: int, row: Callable[[dict], np.ndarray]) -> None:
        self.R = rows
        self.row = row
        self.seen = np.full((rows, 16), EMPTY_TIME, dtype=np.int64)

    def update(self, b: dict | None, rc: RowCache | None, ctx: TickCtx) -> None:
        if not b or len(b["t"]) == 0:
            return
        rows, veh = self.row(b), b["vehicle"]
        m = (rows >= 0) & (veh >= 0)
        if not m.any():
            return
        rows, veh, t = rows[m], veh[m], b["t"][m]
        V = self.seen.shape[1]
        need = int(veh.max()) + 1
        if need > V:
            grown = np.full((self.R, max(need, 2 * V)), EMPTY_TIME, dtype=np.int64)
            grown[:, :V] = self.seen
            self.seen, V = grown, grown.shape[1]
        flat = self.seen.reshape(-1)
        np.maximum.at(flat, rows * V + veh, t)

    def count(self, T: int, w_ms: int) -> np.ndarray:
        return (self.seen > T - w_ms).sum(axis=1).astype(np.float64)

    def state(self) -> dict:
        return {"seen": self.seen}

    def load(self, st: dict) -> None:
        self.seen = np.array(st["seen"], dtype=np.int64)


class Cases:
    """The case loop (立案 → 派遣 → 处置 → 核查 → 结案), one row per case id.

    ``opened`` = earliest event time of the case's records; the *current*
    record is the newest (time, then id hash) and gives status, category,
    zone and departments; ``closed_at`` = time of the current record when it
    says closed.  At the first tick of a new local day, cases closed before
    it are forgotten (they count in no indicator any more).
    """

    FIELDS = (("opened", np.int64, np.iinfo(np.int64).max), ("time", np.int64, EMPTY_TIME),
              ("status", np.int64, -1), ("category", np.int64, -1), ("zone", np.int64, -1),
              ("depts", np.uint64, 0), ("ndept", np.int64, 0))

    def __init__(self, codec) -> None:
        self.codec = codec               # the dynamic case-id codec (pruned together)
        self.n = 0
        for name, dt, fill in self.FIELDS:
            setattr(self, name, np.full(16, fill, dtype=dt))
        self.day_start = np.iinfo(np.int64).min
        self.version = 0

    def _ensure(self, n: int) -> None:
        if n > len(self.opened):
            for name, dt, fill in self.FIELDS:
                setattr(self, name, _grow(getattr(self, name), n, fill))
        self.n = max(self.n, n)

    def update(self, b: dict | None, rc: RowCache | None, ctx: TickCtx) -> None:
        self._ensure(len(self.codec))
        if not b or len(b["t"]) == 0:
            return
        case = b["case"]
        m = case >= 0
        if not m.any():
            return
        case, t = case[m], b["t"][m]
        et, when = own_times(b, m, t)
        np.minimum.at(self.opened, case, when)
        win = newest(case, t, b["tie"][m], ctx, len(self.opened), et, self.time)
        c = case[win]
        self.version += 1
        self.time[c] = when[win]
        for f in ("status", "category", "zone", "depts", "ndept"):
            getattr(self, f)[c] = b[f][m][win]

    def roll_day(self, day_start: int, pending: np.ndarray) -> np.ndarray | None:
        """Start a new local day: forget cases closed before it.

        Returns the code map old -> new (None if nothing changed) for the
        case codes of events not yet applied (``pending``); a pending record
        of a forgotten case gets a fresh code: it opens a new case, exactly
        as if it had arrived after the forgetting.
        """
        first = self.day_start == np.iinfo(np.int64).min
        self.day_start = day_start
        self._ensure(len(self.codec))
        n = self.n
        drop = (self.status[:n] == CLOSED) & (self.time[:n] < day_start)
        if first or not drop.any():
            return None
        keep = np.flatnonzero(~drop)
        revive = np.unique(pending[(pending >= 0) & (pending < n)])
        revive = revive[drop[revive]]
        remap = np.full(len(self.codec), -1, dtype=np.intp)
        remap[keep] = np.arange(len(keep))
        remap[revive] = len(keep) + np.arange(len(revive))
        extra = np.arange(n, len(self.codec))                 # encoded, never applied yet: keep as is
        remap[extra] = len(keep) + len(revive) + np.arange(len(extra))
        for name, dt, fill in self.FIELDS:
            a = getattr(self, name)
            fresh = np.full(max(16, len(keep) + len(revive) + len(extra)), fill, dtype=dt)
            fresh[:len(keep)] = a[keep]
            setattr(self, name, fresh)
        values = np.asarray(self.codec.values, dtype=object)
        order = np.concatenate([keep, revive, extra]).astype(np.intp)
        self.codec.load(values[order].astype(str) if len(order) else np.zeros(0, dtype="<U1"))
        self.n = len(keep)
        self.version += 1
        self._ensure(len(self.codec))
        return remap

    # ----------------------------------------------------------- reading
    def view(self) -> dict[str, np.ndarray]:
        n = self.n
        return {name: getattr(self, name)[:n] for name, _, _ in self.FIELDS}

    def state(self) -> dict:
        st = self.view()
        st["day_start"] = np.array([self.day_start], dtype=np.int64)
        return st

    def load(self, st: dict) -> None:
        self.n = len(st["opened"])
        for name, dt, fill in self.FIELDS:
            a = np.full(max(16, self.n), fill, dtype=dt)
            a[:self.n] = st[name]
            setattr(self, name, a)
        self.day_start = int(st["day_start"][0])
        self.version += 1


class Warnings:
    """Current record per warning signal: its level (0 cancelled, 1 white .. 5 red) and expiry."""

    def __init__(self, n_signals: int) -> None:
        self.level = np.zeros(n_signals)
        self.expires = np.full(n_signals, NO_EXPIRY, dtype=np.int64)
        self.time = np.full(n_signals, EMPTY_TIME, dtype=np.int64)
        self.version = 0

    def update(self, b: dict | None, rc: RowCache | None, ctx: TickCtx) -> None:
        if not b or len(b["t"]) == 0:
            return
        sig = b["signal"]
        m = sig >= 0
        if not m.any():
            return
        sig, t = sig[m], b["t"][m]
        et, when = own_times(b, m, t)
        win = newest(sig, t, b["tie"][m], ctx, len(self.level), et, self.time)
        s = sig[win]
        self.level[s] = b["level"][m][win]
        self.expires[s] = b["expires"][m][win]
        self.time[s] = when[win]
        self.version += 1

    def levels(self, T: int) -> np.ndarray:
        return np.where(self.expires > T, self.level, 0.0)

    def state(self) -> dict:
        return {"level": self.level, "expires": self.expires, "time": self.time}

    def load(self, st: dict) -> None:
        self.level, self.expires, self.time = (np.array(st[k]) for k in ("level", "expires", "time"))
        self.version += 1


class VisitAge:
    """When a staff position was last reported within ``radius_m`` of each checkpoint."""

    def __init__(self, lon: np.ndarray, lat: np.ndarray, radius_m: float) -> None:
        self.lat0 = float(np.mean(lat)) if len(lat) else 0.0
        self.kx = 111_320.0 * np.cos(np.radians(self.lat0))
        self.ky = 110_540.0
        self.x, self.y = lon * self.kx, lat * self.ky
        self.r2 = radius_m * radius_m
        self.last = np.full(len(lon), EMPTY_TIME, dtype=np.int64)

    def update(self, b: dict | None, rc: RowCache | None, ctx: TickCtx) -> None:
        if not b or len(b["t"]) == 0:
            return
        ok = ~np.isnan(b["lon"]) & ~np.isnan(b["lat"])
        if not ok.any():
            return
        px, py, t = b["lon"][ok] * self.kx, b["lat"][ok] * self.ky, b["t"][ok]
        d2 = (px[:, None] - self.x[None, :]) ** 2 + (py[:, None] - self.y[None, :]) ** 2
        hit = np.where(d2 <= self.r2, t[:, None], EMPTY_TIME).max(axis=0)
        np.maximum(self.last, hit, out=self.last)

    def state(self) -> dict:
        return {"last": self.last}

    def load(self, st: dict) -> None:
        self.last = np.array(st["last"], dtype=np.int64)


class Series:
    """The last ``L`` per-tick values of some rows (NaN = no value that tick)."""

    def __init__(self, length: int, rows: int) -> None:
        self.L = length
        self.ring = np.full((length, rows), np.nan)
        self.k = -1

    def record(self, k: int, values: np.ndarray) -> None:
        if self.k >= 0 and k - self.k > 1:        # ticks skipped: those samples are unknown
            gap = min(k - self.k - 1, self.L)
            self.ring[(self.k + 1 + np.arange(gap)) % self.L] = np.nan
        self.ring[k % self.L] = values
        self.k = k

    def at(self, k: int) -> np.ndarray:
        """Values recorded at tick ``k`` (NaN if older than the ring or never recorded)."""
        if k < 0 or self.k - k >= self.L or k > self.k:
            return np.full(self.ring.shape[1], np.nan)
        return self.ring[k % self.L]

    def chronological(self) -> np.ndarray:
        """All ``L`` samples, oldest first, ending at the last recorded tick."""
        i = (self.k + 1) % self.L                  # the oldest sample's row
        return self.ring if i == 0 else np.concatenate((self.ring[i:], self.ring[:i]))

    def state(self) -> dict:
        return {"ring": self.ring, "k": np.array([self.k], dtype=np.int64)}

    def load(self, st: dict) -> None:
        self.ring = np.array(st["ring"])
        self.k = int(st["k"][0])
