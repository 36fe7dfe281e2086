"""Vectorised kernels of the indicator engine: no clock, no I/O.

Everything here takes whole arrays (a tick's events, all entities) and does
a fixed number of numpy passes over them - ``bincount`` with intp keys, a
``maximum.at`` where a per-group maximum is needed, never ``np.add.at``,
never a Python loop per event and never a sort on the tick path
(``shared/notes/performance.md``).  The string work (hashing, id lookup)
and the de-duplication set's probes are loops per row, compiled with numba
(:mod:`.compiled`).

* :func:`hash_strings` - 64-bit hashes of an Arrow string column, for
  de-duplication by ``event_id`` (stable across processes and versions, so
  a checkpoint taken by one process is valid in the next).
* :class:`SeenSet` - the ids seen within the lateness horizon: two
  generations of an open-addressing hash table.
* :func:`quantise` - values on a 2^-16 grid so that every sum the engine
  keeps is exact: running window sums never drift and the order events are
  added in cannot change a result (shuffled input gives identical values).
* :func:`last_per_entity` - which event of a tick is the newest per entity
  (by event time, ties broken by the id hash - never by arrival order).
* :class:`Codec` - id columns to dense intp codes against a vocabulary.
* :class:`LinearTrend` - the default load forecaster.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol, Sequence

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

__all__ = ["hash_strings", "SeenSet", "quantise", "QUANTUM", "last_per_entity", "Codec", "Forecaster",
           "LinearTrend", "to_float", "to_ms", "valid_mask", "compare"]

QUANTUM = 2.0 ** -16
FEW = 12             # a column of at most this many rows is coded by dict lookups (Codec.codes_of)


def hash_strings(arr: pa.Array | pa.ChunkedArray, salt: int = 0) -> np.ndarray:
    """Stable 64-bit hashes of a string column (never 0; nulls hash like "").

    Per string: ``h = (length + salt) * GOLD``; for each 8-byte little-endian
    word ``w`` of its bytes (the last one zero-padded) ``h = (h ^ w) * M1;
    h ^= h >> 32``; then the murmur3 64-bit finaliser of ``h ^ GOLD``, 0
    mapped to 1.  A string's hash depends only on its bytes, the salt and
    this definition (checkpoints stay valid across processes and versions;
    ``tests/test_codec.py`` pins it).  Compiled: one pass over the Arrow
    buffers (:func:`indicators.engine.compiled.hash_column`).
    """
    arr = one_chunk(arr)
    if pa.types.is_dictionary(arr.type):                 # hash the distinct values once
        hd = np.append(hash_strings(arr.dictionary, salt), hash_strings(pa.array([""]), salt))
        ind = arr.indices.fill_null(len(arr.dictionary)) if arr.null_count else arr.indices
        return hd[np.asarray(ind.to_numpy(zero_copy_only=False), dtype=np.intp)]
    from .compiled import hash_column
    return hash_column(arr, salt)


class _Table:
    """Open-addressing set of non-zero uint64 keys (linear probing, compiled probes), at most
    half full (linear probing's runs stay short), with a one-hash filter of two bits a slot:
    an id whose bit is clear is not in the set, no probe of the (large, uncached) table needed."""

    def __init__(self, capacity: int = 1 << 12) -> None:
        self._alloc(1 << max(4, int(2 * capacity - 1).bit_length()))

    def _alloc(self, size: int) -> None:
        self.keys = np.zeros(size, dtype=np.uint64)
        self.bits = np.zeros(max(1, size // 32), dtype=np.uint64)
        self.used = 0

    def clear(self) -> "_Table":
        """Empty the table in place (cheaper than a new one: no fresh pages to fault in)."""
        if self.used:
            self.keys.fill(0)
            self.bits.fill(0)
            self.used = 0
        return self

    @property
    def mask(self) -> int:
        return len(self.keys) - 1

    def reserve(self, more: int) -> None:
        """Room for ``more`` keys without passing half full."""
        if (self.used + more) * 2 > len(self.keys):
            self._grow(self.used + more)

    def insert_new(self, h: np.ndarray) -> np.ndarray:
        """Insert keys; True for each row that was not in the table and is the
        first of its value in ``h`` to be placed (later twins are False)."""
        from .compiled import set_insert
        self.reserve(len(h))
        new = set_insert(self.keys, self.bits, np.ascontiguousarray(h, dtype=np.uint64))
        self.used += int(new.sum())
        return new

    def _grow(self, need: int) -> None:
        old = self.keys[self.keys != 0]
        self._alloc(1 << max(4, int(need * 2 - 1).bit_length()))
        if len(old):
            self.insert_new(old)

    def members(self) -> np.ndarray:
        return self.keys[self.keys != 0].copy()


class SeenSet:
    """Event-id hashes seen and not yet late, in two generations.

    An id must be remembered until the watermark passes its event time (a
    re-send is late after that, so it can never be mistaken for new).  Ids
    go into the current generation, which also records the newest event time
    it holds.  :meth:`rotate` drops the previous generation once *all* its
    ids are older than the watermark and makes the current one previous - so
    an id is never forgotten early, and memory stays about two lateness
    horizons of events.
    """

    NEVER = np.iinfo(np.int64).min

    def __init__(self) -> None:
        self.cur, self.prev = _Table(), _Table(4)
        self.cur_max = self.prev_max = self.NEVER

    def add(self, h: np.ndarray, t: np.ndarray) -> np.ndarray:
        """True for ids not seen before (and the first of their value in ``h``)."""
        if len(h) == 0:
            return np.zeros(0, dtype=bool)
        from .compiled import seen_add
        self.cur.reserve(len(h))
        new = seen_add((self.prev.keys, self.prev.bits), (self.cur.keys, self.cur.bits),
                       np.ascontiguousarray(h, dtype=np.uint64))
        self.cur.used += int(np.count_nonzero(new))
        if new.any():
            self.cur_max = max(self.cur_max, int(t[new].max()))
        return new

    def rotate(self, watermark_ms: int | None) -> None:
        if watermark_ms is None or self.prev_max >= watermark_ms:
            return
        if self.cur_max < watermark_ms:            # everything seen is late already
            self.cur.clear()
            self.prev.clear()
            self.cur_max = self.prev_max = self.NEVER
            return
        # the old previous generation is all late: empty it and reuse it as the current one
        self.prev, self.cur = self.cur, self.prev.clear()
        self.prev_max, self.cur_max = self.cur_max, self.NEVER

    def __len__(self) -> int:
        return self.cur.used + self.prev.used

    def state(self) -> dict[str, np.ndarray]:
        return {"cur": self.cur.members(), "prev": self.prev.members(),
                "max": np.array([self.cur_max, self.prev_max], dtype=np.int64)}

    def load(self, st: dict[str, np.ndarray]) -> None:
        self.cur, self.prev = _Table(max(16, len(st["cur"]) * 2)), _Table(max(16, len(st["prev"]) * 2))
        self.cur.insert_new(np.asarray(st["cur"], dtype=np.uint64))
        self.prev.insert_new(np.asarray(st["prev"], dtype=np.uint64))
        self.cur_max, self.prev_max = (int(x) for x in st["max"])


def quantise(v: np.ndarray) -> np.ndarray:
    """Round to multiples of 2^-16 (about 1.5e-5 of the unit).

    Sums of such numbers are exact in float64 while they stay below 2^37
    (1.4e11), far above any window here, so add-then-subtract running sums
    return exactly to zero and addition order does not matter.
    """
    return np.round(v * 65536.0) / 65536.0


def one_chunk(col: pa.Array | pa.ChunkedArray) -> pa.Array:
    """A column as one Arrow array (its only chunk as it is; several combined)."""
    if isinstance(col, pa.ChunkedArray):
        return col.combine_chunks() if col.num_chunks != 1 else col.chunk(0)
    return col


def valid_mask(col: pa.Array | pa.ChunkedArray) -> np.ndarray:
    """True for each row of an Arrow column that holds a value: the validity bitmap unpacked as it
    is (a compute call and a boolean array's conversion cost several times as much)."""
    col = one_chunk(col)
    n = len(col)
    if col.null_count == 0:
        return np.ones(n, dtype=bool)
    if col.null_count == n:
        return np.zeros(n, dtype=bool)
    off = col.offset
    bits = np.frombuffer(col.buffers()[0], dtype=np.uint8)
    return np.unpackbits(bits, count=off + n, bitorder="little")[off:].view(np.bool_)


def to_float(col: pa.Array | pa.ChunkedArray) -> np.ndarray:
    """A numeric Arrow column as float64 with NaN for nulls."""
    col = one_chunk(col)
    if pa.types.is_integer(col.type) or pa.types.is_floating(col.type):
        # numpy widens exactly as Arrow's cast would, and a null becomes NaN, without a compute call
        return np.asarray(col.to_numpy(zero_copy_only=False), dtype=np.float64)
    col = col.cast(pa.float64())
    if col.null_count:
        col = pc.fill_null(col, float("nan"))
    return np.asarray(col.to_numpy(zero_copy_only=False), dtype=np.float64)


def to_ms(col: pa.Array | pa.ChunkedArray) -> np.ndarray:
    """A timestamp column as int64 epoch milliseconds."""
    col = one_chunk(col)
    if pa.types.is_timestamp(col.type) and col.type.unit != "ms":
        col = col.cast(pa.timestamp("ms", tz=col.type.tz))
    if pa.types.is_timestamp(col.type) and not col.null_count:
        return col.to_numpy().view(np.int64)                  # the int64 values as they are
    return np.asarray(col.cast(pa.int64()).to_numpy(zero_copy_only=False), dtype=np.int64)


def last_per_entity(ent: np.ndarray, key: np.ndarray, n: int) -> np.ndarray:
    """Mask of the events holding the largest ``key`` of their entity.

    ``key`` packs (event time, id hash) into one int64, so "newest, then the
    larger hash" wins whatever order the events arrived in.  One
    ``maximum.at`` over the tick's events; ``ent`` must be valid codes.
    """
    best = np.full(n, np.iinfo(np.int64).min, dtype=np.int64)
    np.maximum.at(best, ent, key)
    return key == best[ent]


def compare(values: np.ndarray, op: str, x: float | np.ndarray) -> np.ndarray:
    """``values op x`` with NaN compared as False."""
    with np.errstate(invalid="ignore"):
        if op == "<":
            return values < x
        if op == "<=":
            return values <= x
        if op == ">":
            return values > x
        if op == ">=":
            return values >= x
        if op == "==":
            return values == x
        if op == "!=":
            return (values != x) & ~np.isnan(values)
    raise ValueError(f"unknown comparison {op!r}")


class Codec:
    """Dense intp codes of an id column against a vocabulary.

    ``dynamic``: unknown values are appended (vehicles, cases, staff - things
    the inventory does not list), in the order they first appear; otherwise
    they code as -1, like nulls.  ``aliases``: other spellings of members.
    The rows are looked up in a compiled hash table of the vocabulary
    (:class:`indicators.engine.compiled.Lookup`): one pass over the column's
    bytes, no Python object per row or per distinct value.
    """

    def __init__(self, vocabulary: Sequence[str] = (), *, dynamic: bool = False,
                 aliases: dict[str, str] | None = None) -> None:
        self.values: list[str] = list(vocabulary)
        self.index: dict[str, int] = {v: i for i, v in enumerate(self.values)}
        self.dynamic = dynamic
        self.aliases = {a: self.index[v] for a, v in (aliases or {}).items()}   # other spellings of members
        self._lookup = None
        self._lookup_n = -1

    def __len__(self) -> int:
        return len(self.values)

    def _table(self):
        if self._lookup is None or self._lookup_n != len(self.values):
            from .compiled import Lookup
            extra = [a for a in self.aliases if a not in self.index]
            self._lookup = Lookup(self.values + extra, list(range(len(self.values))) + [self.aliases[a] for a in extra])
            self._lookup_n = len(self.values)
        return self._lookup

    def _codes(self, arr: pa.Array) -> np.ndarray:
        out = self._table().codes(arr)
        if self.dynamic:
            miss = np.flatnonzero(out < 0)
            if miss.size:
                vals = (arr.take(pa.array(miss)) if miss.size < len(arr) else arr).to_pylist()
                new = [u for u in dict.fromkeys(vals) if u is not None and u not in self.index]
                if new:
                    self._table()
                    first = len(self.values)
                    for u in new:                               # in the order they first appear
                        self.index[u] = len(self.values)
                        self.values.append(u)
                    self._lookup.add(new, list(range(first, len(self.values))))
                    self._lookup_n = len(self.values)
                    out[miss] = [-1 if u is None else self.index[u] for u in vals]
        return out

    def codes_of(self, vals: list) -> np.ndarray:
        """The codes of Python strings (None: -1), as :meth:`encode` gives them; for a few rows
        (:data:`FEW`) dict lookups cost less than the compiled table's set-up (buffer views, a
        kernel call)."""
        index, aliases = self.index, self.aliases
        out = []
        new = []
        for v in vals:
            c = index.get(v)
            if c is None:
                c = -1 if v is None else aliases.get(v, -1)
                if c < 0 and self.dynamic and v is not None:
                    c = index[v] = len(self.values)
                    self.values.append(v)
                    new.append(v)
            out.append(c)
        if new and self._lookup is not None and self._lookup_n == len(self.values) - len(new):
            self._lookup.add(new, [index[v] for v in new])     # the table learns them in place
            self._lookup_n = len(self.values)
        return np.array(out, dtype=np.intp)

    def encode(self, col: pa.Array | pa.ChunkedArray) -> np.ndarray:
        col = one_chunk(col)
        if len(col) == 0:
            return np.zeros(0, dtype=np.intp)
        if len(col) <= FEW and (pa.types.is_string(col.type) or pa.types.is_large_string(col.type)):
            return self.codes_of(col.to_pylist())
        if pa.types.is_dictionary(col.type):                   # look up the distinct values once
            d = col.dictionary
            if not pa.types.is_string(d.type):
                d = d.cast(pa.string())
            lut = np.append(self._codes(d), -1)
            ind = col.indices.fill_null(len(d)) if col.null_count else col.indices
            return lut[np.asarray(ind.to_numpy(zero_copy_only=False), dtype=np.intp)]
        if not pa.types.is_string(col.type):
            col = col.cast(pa.string())
        return self._codes(col)

    def state(self) -> np.ndarray:
        return np.array(self.values, dtype=object).astype(str) if self.values else np.zeros(0, dtype="<U1")

    def load(self, values: np.ndarray) -> None:
        self.values = [str(v) for v in values.tolist()]
        self.index = {v: i for i, v in enumerate(self.values)}
        self._lookup = None


_WEIGHTS: dict[tuple[bytes, bytes], np.ndarray] = {}


class Forecaster(Protocol):
    """Predicts a per-zone series ahead (the alerts issue may plug in another).

    ``predict(x_s, y, horizons_s)``: ``x_s`` the sample times in seconds
    relative to now (<= 0, oldest first), ``y`` shape (len(x_s), zones) with
    NaN where a zone had no value, ``horizons_s`` the seconds ahead wanted.
    Returns shape (len(horizons_s), zones); NaN where it cannot say.
    """

    def predict(self, x_s: np.ndarray, y: np.ndarray, horizons_s: np.ndarray) -> np.ndarray: ...


@dataclass(frozen=True)
class LinearTrend:
    """Least-squares straight line through the lookback samples, extended
    to each horizon and clipped at 0 (a load rate cannot be negative).
    Needs two samples at different times; else NaN."""

    min_samples: int = 2

    def predict(self, x_s: np.ndarray, y: np.ndarray, horizons_s: np.ndarray) -> np.ndarray:
        if len(x_s) >= self.min_samples and not np.isnan(y).any():
            # every sample present: each horizon's fitted value is a fixed linear combination of the samples
            return np.maximum(self._weights(x_s, horizons_s) @ y, 0.0)
        # gaps (samples before the engine started, a zone that started reporting later, one that
        # never did): each zone's line through its own samples
        return self._masked(x_s, y, horizons_s)

    @staticmethod
    def _weights(x_s: np.ndarray, horizons_s: np.ndarray) -> np.ndarray:
        key = (x_s.tobytes(), horizons_s.tobytes())
        w = _WEIGHTS.get(key)
        if w is None:
            n = len(x_s)
            dx = x_s - x_s.mean()
            sxx = (dx * dx).sum()
            if not sxx > 0:
                return np.full((len(horizons_s), n), np.nan)
            # y_hat(h) = mean(y) + slope * (h - mean(x)),  slope = sum(dx * y) / sxx
            w = np.full((len(horizons_s), n), 1.0 / n) + (horizons_s[:, None] - x_s.mean()) * dx[None, :] / sxx
            if len(_WEIGHTS) > 8:
                _WEIGHTS.clear()
            _WEIGHTS[key] = w
        return w

    def _masked(self, x_s: np.ndarray, y: np.ndarray, horizons_s: np.ndarray) -> np.ndarray:
        """Per zone (column) the least-squares line through its present samples: one compiled
        pass over the samples for all zones (:func:`indicators.engine.compiled.line_fit`), x
        centred on the samples' middle so that the sums stay small."""
        from .compiled import line_fit
        x0 = 0.5 * (x_s[0] + x_s[-1]) if len(x_s) else 0.0
        return line_fit(x_s - x0, y, horizons_s - x0, self.min_samples)
