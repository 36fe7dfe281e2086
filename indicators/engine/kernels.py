"""Vectorised kernels of the indicator engine: pure numpy, no clock, no I/O.

Everything here takes whole arrays (a tick's events, all entities) and does
a fixed number of numpy passes over them - ``bincount`` with intp keys, a
``maximum.at`` where a per-group maximum is needed, never ``np.add.at``,
never a Python loop per event and never a sort on the tick path
(``shared/notes/performance.md``).

* :func:`hash_strings` - 64-bit hashes of an Arrow string column, for
  de-duplication by ``event_id`` (stable across processes and versions, so
  a checkpoint taken by one process is valid in the next).
* :class:`SeenSet` - the ids seen within the lateness horizon: two
  generations of an open-addressing hash table probed in vectorised rounds.
* :func:`quantise` - values on a 2^-16 grid so that every sum the engine
  keeps is exact: running window sums never drift and the order events are
  added in cannot change a result (shuffled input gives identical values).
* :func:`last_per_entity` - which event of a tick is the newest per entity
  (by event time, ties broken by the id hash - never by arrival order).
* :class:`Codec` - dictionary encoding of id columns to dense intp codes.
* :class:`LinearTrend` - the default load forecaster.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol, Sequence

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

__all__ = ["hash_strings", "SeenSet", "quantise", "QUANTUM", "last_per_entity", "Codec", "Forecaster",
           "LinearTrend", "to_float", "to_ms", "compare"]

QUANTUM = 2.0 ** -16
_M1 = np.uint64(0xFF51AFD7ED558CCD)
_M2 = np.uint64(0xC4CEB9FE1A85EC53)
_GOLD = np.uint64(0x9E3779B97F4A7C15)
_ALL = np.uint64(0xFFFFFFFFFFFFFFFF)


def _mix(h: np.ndarray) -> np.ndarray:
    """The murmur3 64-bit finaliser (in place-ish; returns the mixed array)."""
    h ^= h >> np.uint64(33)
    h *= _M1
    h ^= h >> np.uint64(33)
    h *= _M2
    h ^= h >> np.uint64(33)
    return h


_WORD_MASKS = np.array([0] + [(1 << (8 * i)) - 1 for i in range(1, 8)] + [(1 << 64) - 1], dtype=np.uint64)


def hash_strings(arr: pa.Array | pa.ChunkedArray, salt: int = 0) -> np.ndarray:
    """Stable 64-bit hashes of a string column (never 0; nulls hash like "").

    Reads the Arrow buffers directly: eight bytes at a time through an
    unaligned uint64 view of the data buffer, so the cost is
    ``ceil(max length / 8)`` vectorised passes, not one Python call per id.
    A string's hash depends only on its bytes, the salt and this code
    (checkpoints stay valid across processes and library versions).
    """
    if isinstance(arr, pa.ChunkedArray):
        arr = arr.combine_chunks() if arr.num_chunks != 1 else arr.chunk(0)
    if pa.types.is_dictionary(arr.type):                 # hash the distinct values once
        hd = np.append(hash_strings(arr.dictionary, salt), hash_strings(pa.array([""]), salt))
        ind = arr.indices.fill_null(len(arr.dictionary)) if arr.null_count else arr.indices
        return hd[np.asarray(ind.to_numpy(zero_copy_only=False), dtype=np.intp)]
    if pa.types.is_large_string(arr.type):
        arr = arr.cast(pa.string())
    n = len(arr)
    if n == 0:
        return np.zeros(0, dtype=np.uint64)
    bufs = arr.buffers()
    offsets = np.frombuffer(bufs[1], dtype=np.int32, count=n + 1, offset=arr.offset * 4)
    start = offsets[:-1].astype(np.intp)
    length = (offsets[1:] - offsets[:-1]).astype(np.intp)
    if arr.null_count:
        length = np.where(np.asarray(arr.is_valid()), length, 0)
    longest = int(length.max())
    data = np.frombuffer(bufs[2], dtype=np.uint8) if bufs[2] is not None else np.zeros(0, np.uint8)
    padded = np.zeros(len(data) + longest + 8, dtype=np.uint8)
    padded[:len(data)] = data
    words = np.ndarray(shape=(len(padded) - 7,), dtype="<u8", buffer=padded, strides=(1,))
    h = (length.astype(np.uint64) + np.uint64(salt & 0xFFFFFFFFFFFFFFFF)) * _GOLD
    for k in range(0, longest, 8):
        rem = length - k
        w = words[start + k] & _WORD_MASKS[np.clip(rem, 0, 8)]     # the string's bytes k .. k+7, zero-padded
        x = (h ^ w) * _M1
        x ^= x >> np.uint64(32)
        h = np.where(rem > 0, x, h)                                 # a string's rounds depend on its own length
    h = _mix(h ^ _GOLD)
    h[h == 0] = np.uint64(1)                            # 0 marks an empty slot in SeenSet
    return h


class _Table:
    """Open-addressing set of non-zero uint64 keys, probed in vectorised rounds."""

    def __init__(self, capacity: int = 1 << 12) -> None:
        size = 1 << max(4, int(4 * capacity - 1).bit_length())
        self.keys = np.zeros(size, dtype=np.uint64)
        self.owner = np.empty(size, dtype=np.intp)     # scratch: which row claimed a slot this round
        self.used = 0

    def clear(self) -> "_Table":
        """Empty the table in place (cheaper than a new one: no fresh pages to fault in)."""
        if self.used:
            self.keys.fill(0)
            self.used = 0
        return self

    @property
    def mask(self) -> int:
        return len(self.keys) - 1

    def _slots(self, h: np.ndarray) -> np.ndarray:
        """Home slots as intp (indexing with uint64 would convert on every use)."""
        return (h & np.uint64(self.mask)).astype(np.intp)

    def contains(self, h: np.ndarray) -> np.ndarray:
        found = np.zeros(len(h), dtype=bool)
        idx = np.arange(len(h))
        slot = self._slots(h)
        hv = h
        while idx.size:
            k = self.keys[slot]
            hit = k == hv
            found[idx[hit]] = True
            go = np.flatnonzero(~hit & (k != 0))
            idx, slot = idx[go], (slot[go] + 1) & self.mask
            hv = h[idx]
        return found

    def insert_new(self, h: np.ndarray) -> np.ndarray:
        """Insert keys; True for each row that was not in the table and is the
        first of its value in ``h`` to be placed (later twins are False)."""
        if (self.used + len(h)) * 4 > len(self.keys):      # load <= 1/4 keeps probe runs short
            self._grow(self.used + len(h))
        keys, owner, mask = self.keys, self.owner, self.mask
        new = np.zeros(len(h), dtype=bool)
        idx = np.arange(len(h))
        slot = self._slots(h)
        hv = h
        while idx.size:
            empty = np.flatnonzero(keys[slot] == 0)
            if empty.size:
                es, ei = slot[empty], idx[empty]
                owner[es[::-1]] = ei[::-1]                 # one claimant per empty slot wins (the first row,
                won = owner[es] == ei                      # as numpy assigns repeated indices in order)
                wi = ei[won]
                keys[es[won]] = h[wi]
                new[wi] = True
                self.used += len(wi)
            # done: the slot now holds the row's key (it won, a twin won, or the key was there already)
            go = np.flatnonzero(keys[slot] != hv)
            idx, slot = idx[go], (slot[go] + 1) & mask
            hv = h[idx]
        return new

    def _grow(self, need: int) -> None:
        old = self.keys[self.keys != 0]
        size = 1 << max(4, int(need * 8 - 1).bit_length())
        self.keys = np.zeros(size, dtype=np.uint64)
        self.owner = np.empty(size, dtype=np.intp)
        self.used = 0
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
        fresh = ~self.prev.contains(h) if self.prev.used else np.ones(len(h), dtype=bool)
        new = np.zeros(len(h), dtype=bool)
        idx = np.flatnonzero(fresh)
        new[idx] = self.cur.insert_new(h[idx])
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


def to_float(col: pa.Array | pa.ChunkedArray) -> np.ndarray:
    """A numeric Arrow column as float64 with NaN for nulls."""
    col = col.cast(pa.float64())
    if col.null_count:
        col = pc.fill_null(col, float("nan"))
    return np.asarray(col.to_numpy(zero_copy_only=False), dtype=np.float64)


def to_ms(col: pa.Array | pa.ChunkedArray) -> np.ndarray:
    """A timestamp column as int64 epoch milliseconds."""
    if pa.types.is_timestamp(col.type) and col.type.unit != "ms":
        col = col.cast(pa.timestamp("ms", tz=col.type.tz))
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
    the inventory does not list); otherwise they code as -1.  The column is
    dictionary-encoded by Arrow; Python touches only its distinct values.
    """

    SMALL = 48
    """Up to this many distinct values a batch is looked up in the Python dict; above, by hash."""

    def __init__(self, vocabulary: Sequence[str] = (), *, dynamic: bool = False,
                 aliases: dict[str, str] | None = None) -> None:
        self.values: list[str] = list(vocabulary)
        self.index: dict[str, int] = {v: i for i, v in enumerate(self.values)}
        self.dynamic = dynamic
        self.aliases = {a: self.index[v] for a, v in (aliases or {}).items()}   # other spellings of members
        self._by_hash: tuple[int, np.ndarray, np.ndarray, pa.Array] | None = None

    def __len__(self) -> int:
        return len(self.values)

    def _hash_index(self) -> tuple[np.ndarray, np.ndarray, pa.Array] | None:
        """(sorted hashes of the vocabulary, their codes, the vocabulary as Arrow), rebuilt when
        the vocabulary grew; None when two members share a hash (then the dict serves)."""
        n = len(self.values)
        if self._by_hash is None or self._by_hash[0] != n:
            vocab = pa.array(self.values, pa.string())
            h = hash_strings(vocab)
            order = np.argsort(h, kind="stable")
            hs = h[order]
            if n > 1 and (hs[1:] == hs[:-1]).any():
                self._by_hash = (n, None, None, vocab)             # type: ignore[assignment]
            else:
                self._by_hash = (n, hs, order.astype(np.intp), vocab)
        _, hs, codes, vocab = self._by_hash
        return None if hs is None else (hs, codes, vocab)

    def _lookup(self, dictionary: pa.Array) -> np.ndarray:
        """The code of each distinct value (-1 unknown), vectorised: the values' hashes found in
        the vocabulary's sorted hashes, each hit confirmed by comparing the strings (a hash
        collision is looked up in the dict instead); misses of a dynamic codec or with aliases
        go through the dict (and a dynamic codec learns them)."""
        out = np.full(len(dictionary), -1, dtype=np.intp)
        hx = self._hash_index()
        if hx is not None and len(hx[0]):
            hs, codes, vocab = hx
            h = hash_strings(dictionary)
            pos = np.minimum(np.searchsorted(hs, h), len(hs) - 1)
            hit = np.flatnonzero(hs[pos] == h)
            if hit.size:
                cand = codes[pos[hit]]
                same = pc.equal(dictionary.take(pa.array(hit)), vocab.take(pa.array(cand)))
                same = np.asarray(same.fill_null(False).to_numpy(zero_copy_only=False), dtype=bool)
                out[hit[same]] = cand[same]
        miss = np.flatnonzero(out < 0)
        # a static codec's miss is final (its members' hashes are distinct, so a value whose hash
        # matched another member's is no member); new values, aliases or shared hashes need the dict
        if miss.size and (self.dynamic or self.aliases or hx is None):
            vals = dictionary.take(pa.array(miss)).to_pylist()
            index, aliases = self.index, self.aliases
            for k, u in zip(miss.tolist(), vals):
                if not isinstance(u, str):
                    continue
                c = index.get(u, aliases.get(u, -1))
                if c < 0 and self.dynamic:
                    c = index[u] = len(self.values)
                    self.values.append(u)
                out[k] = c
        return out

    def encode(self, col: pa.Array | pa.ChunkedArray) -> np.ndarray:
        if isinstance(col, pa.ChunkedArray):
            col = col.combine_chunks() if col.num_chunks != 1 else col.chunk(0)
        if len(col) == 0:
            return np.zeros(0, dtype=np.intp)
        # Python touches only the batch's distinct values (a dict lookup each): Arrow's ``index_in``
        # would rebuild a hash set of the whole vocabulary on every call (~0.6 ms for the 10k assets,
        # whatever the batch size)
        if pa.types.is_dictionary(col.type):
            if not pa.types.is_string(col.type.value_type):
                col = col.dictionary_decode().cast(pa.string())
        elif not pa.types.is_string(col.type):
            col = col.cast(pa.string())
        d = col if pa.types.is_dictionary(col.type) else pc.dictionary_encode(col)
        n_uniq = len(d.dictionary)
        if n_uniq > self.SMALL:
            lut = np.append(self._lookup(d.dictionary), -1)
        else:
            uniq = d.dictionary.to_pylist()
            if self.dynamic:
                for u in uniq:
                    if u is not None and u not in self.index:
                        self.index[u] = len(self.values)
                        self.values.append(u)
            index, aliases = self.index, self.aliases
            lut = np.array([index.get(u, aliases.get(u, -1)) if isinstance(u, str) else -1 for u in uniq] + [-1],
                           dtype=np.intp)
        ind = d.indices
        if ind.null_count:
            ind = pc.fill_null(ind, n_uniq)
        return lut[np.asarray(ind.to_numpy(zero_copy_only=False), dtype=np.intp)]

    def state(self) -> np.ndarray:
        return np.array(self.values, dtype=object).astype(str) if self.values else np.zeros(0, dtype="<U1")

    def load(self, values: np.ndarray) -> None:
        self.values = [str(v) for v in values.tolist()]
        self.index = {v: i for i, v in enumerate(self.values)}
        self._by_hash = None


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
        gap = np.isnan(y)
        if gap.any():
            rows = ~gap.all(axis=1)                  # drop samples no zone has (e.g. before the engine started)
            x_s, y, gap = x_s[rows], y[rows], gap[rows]
        if len(x_s) >= self.min_samples and not gap.any():
            # every sample present: each horizon's fitted value is a fixed linear combination of the samples
            return np.maximum(self._weights(x_s, horizons_s) @ y, 0.0)
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
        ok = ~np.isnan(y)
        w = ok.astype(np.float64)
        n = w.sum(axis=0)
        x = np.broadcast_to(x_s[:, None], y.shape)
        yz = np.where(ok, y, 0.0)
        with np.errstate(invalid="ignore", divide="ignore"):
            mx = (w * x).sum(axis=0) / n
            my = yz.sum(axis=0) / n
            dx = np.where(ok, x - mx, 0.0)
            sxx = (dx * dx).sum(axis=0)
            slope = (dx * (yz - my)).sum(axis=0) / sxx
            out = my + slope * (horizons_s[:, None] - mx)
        bad = (n < self.min_samples) | ~(sxx > 0)
        out[:, bad] = np.nan
        return np.maximum(out, 0.0)
