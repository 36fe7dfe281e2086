"""Compiled kernels (numba) for the engine's string work: event-id hashing and id lookup.

Strings reach the engine as Arrow columns; these kernels read the Arrow buffers directly (the
offsets and the UTF-8 bytes), one pass per column, no Python object per row:

* :func:`hash_column` - the 64-bit hash of every string of a column, bit for bit the hash that
  :func:`indicators.engine.kernels.hash_strings` has always computed (its word-at-a-time rounds
  and murmur3 finaliser), so de-duplication state in a checkpoint stays valid across versions.
* :func:`set_insert` / :func:`seen_add` - the de-duplication sets' probes
  (linear probing over non-zero uint64 keys, with a filter of two bits a slot that spares a new
  id most probes; ``seen_add`` both generations in one pass), the first of twins in a batch being
  the new one.
* :func:`latest_apply` - a tick's newest reading of each entity written into a latest-value
  state (the common case: one value column, event times not moved).
* :func:`line_fit` - per series the least-squares line through the samples it has (the load
  forecast with gaps), one pass over the samples for all series.
* :func:`time_order` - the stable order of a batch's event times (a counting sort over the
  batch's few seconds of milliseconds).
* :class:`Lookup` - an open-addressing table of a vocabulary's hashes (members and their other
  spellings); :meth:`Lookup.codes` gives each row of a column its member's code, every hit
  confirmed by comparing the bytes, -1 where the string is no member (or null).

Compiled on first use and cached next to this file (``cache=True``; when that folder is not
writable numba compiles in memory each run, a second or two).
"""
from __future__ import annotations

import numpy as np
import pyarrow as pa
from numba import njit

from .kernels import valid_mask

_M1 = np.uint64(0xFF51AFD7ED558CCD)
_M2 = np.uint64(0xC4CEB9FE1A85EC53)
_GOLD = np.uint64(0x9E3779B97F4A7C15)


# Every helper a kernel calls per row takes scalars only: a compiled call with an array argument
# costs the array's reference count (tens of ns a call, measured: hashing a column went from 48 to
# 7 ns a row once its word reads stopped being calls), so the per-row work over arrays is written
# out in the kernel's own loop.

@njit(cache=True, nogil=True, inline="always")
def _join(lo, hi, r):
    """The little-endian word that starts ``r`` bytes into word ``lo`` (``hi`` the word after)."""
    if r == 0:
        return lo
    return (lo >> np.uint64(8 * r)) | (hi << np.uint64(64 - 8 * r))


@njit(cache=True, nogil=True, inline="always")
def _masked(w, rem):
    if rem < 8:
        return w & ((np.uint64(1) << np.uint64(8 * rem)) - np.uint64(1))
    return w


@njit(cache=True, nogil=True, inline="always")
def _round(h, w):
    x = (h ^ w) * _M1
    return x ^ (x >> np.uint64(32))


@njit(cache=True, nogil=True, inline="always")
def _finish(h):
    h ^= _GOLD
    h ^= h >> np.uint64(33)
    h *= _M1
    h ^= h >> np.uint64(33)
    h *= _M2
    h ^= h >> np.uint64(33)
    if h == 0:
        h = np.uint64(1)                                     # 0 marks an empty slot
    return h


@njit(cache=True, nogil=True)
def _word_at_end(raw, p):
    """The word of bytes p .. p+7 read byte by byte: for the last bytes of a buffer, where the
    word after (which the fast read takes) does not exist.  Rare: a call is fine here."""
    w = np.uint64(0)
    for b in range(min(8, len(raw) - p)):
        w |= np.uint64(raw[p + b]) << np.uint64(8 * b)
    return w


@njit(cache=True, nogil=True)
def _hash_rows(w64, raw, offsets, valid, salt):
    n = len(offsets) - 1
    nw = len(w64)
    out = np.empty(n, dtype=np.uint64)
    for i in range(n):
        a = np.int64(offsets[i])
        ln = np.int64(offsets[i + 1]) - a if valid[i] else np.int64(0)   # a null hashes like ""
        h = (np.uint64(ln) + salt) * _GOLD
        k = np.int64(0)
        if ((a + ln) >> 3) + 1 < nw:                         # every word and the one after exist
            while k < ln:
                q = (a + k) >> 3
                h = _round(h, _masked(_join(w64[q], w64[q + 1], (a + k) & 7), ln - k))
                k += 8
        else:
            while k < ln:
                h = _round(h, _masked(_word_at_end(raw, a + k), ln - k))
                k += 8
        out[i] = _finish(h)
    return out


@njit(cache=True, nogil=True)
def _place(tab, h, meta, code):
    mask = len(tab) // 3 - 1
    s = np.int64(h & np.uint64(mask))
    while tab[3 * s] != 0:
        s = (s + 1) & mask
    tab[3 * s] = h
    tab[3 * s + 1] = meta
    tab[3 * s + 2] = code


@njit(cache=True, nogil=True)
def _insert(tab, words, at, raw, offsets, hashes, codes):
    """Put entries (no member yet; ``hashes`` their hashes) into a lookup table: three words a
    slot (hash, the entry's first word in ``words`` << 32 | its byte length, its code), so a probe
    finds all it needs in one cache line; their bytes go into ``words`` from word ``at`` on, each
    entry from a word boundary and zero-padded to whole words.  Returns the next free word."""
    for e in range(len(offsets) - 1):
        a = offsets[e]
        ln = offsets[e + 1] - a
        k = 0
        while k < ln:
            words[at + (k >> 3)] = _masked(_word_at_end(raw, a + k), ln - k)
            k += 8
        _place(tab, hashes[e], (np.uint64(at) << np.uint64(32)) | np.uint64(ln), np.uint64(codes[e]))
        at += (ln + 7) >> 3
    return at


@njit(cache=True, nogil=True)
def _rehash(old, new):
    """Every slot of ``old`` into the (larger, empty) table ``new``; the hashes are kept, so the
    entries' bytes need not be read."""
    for s in range(len(old) // 3):
        if old[3 * s] != 0:
            _place(new, old[3 * s], old[3 * s + 1], old[3 * s + 2])


@njit(cache=True, nogil=True)
def _probe_at_end(raw, a, ln, tab, words):
    """The code of the ``ln`` bytes at ``a`` (-1: no member), read byte by byte: for the last
    bytes of a buffer."""
    h = (np.uint64(ln)) * _GOLD
    k = 0
    while k < ln:
        h = _round(h, _masked(_word_at_end(raw, a + k), ln - k))
        k += 8
    h = _finish(h)
    mask = len(tab) // 3 - 1
    s = np.int64(h & np.uint64(mask))
    while tab[3 * s] != 0:
        if tab[3 * s] == h and np.int64(tab[3 * s + 1] & np.uint64(0xFFFFFFFF)) == ln:
            base = np.int64(tab[3 * s + 1] >> np.uint64(32))
            same = True
            k = 0
            while k < ln:
                if _masked(_word_at_end(raw, a + k), ln - k) != words[base + (k >> 3)]:
                    same = False
                    break
                k += 8
            if same:
                return np.int64(tab[3 * s + 2])
        s = (s + 1) & mask
    return np.int64(-1)


_CACHED_SLOTS = 4096          # a lookup table of up to this many slots (96 KB) stays in the core's caches


@njit(cache=True, nogil=True)
def _probe(w64, raw, offsets, valid, tab, words):
    """Each row's code (-1: no member, or null); a hit only when the row's bytes equal the
    entry's, not the hash alone.  A row equal to the row before takes its code without a lookup:
    feeds send runs (a gateway one metric for a whole class of assets, an NGSI-LD entity or a
    SensorThings thing all its readings together, one camera its events).  The hash is
    :func:`_hash_rows`' with salt 0.

    A table of a large vocabulary (more than :data:`_CACHED_SLOTS`; 10,000 assets: ~1 MB with
    their bytes) is mostly out of the core's caches when a feed batch arrives: it is probed in
    three passes, every row's hash, then a read of every row's slot and of the first word of the
    entry there, then the probes.  The second pass's reads do not wait on each other, so the
    memory system fetches many at once and the probes find them cached (a 9,000-row batch of
    asset ids inside a tick while other work fills the shared cache: ~1.0 → 0.6 ms measured; on
    a quiet machine no change).  A small table stays cached: its rows
    are hashed as they are probed, and a run of equal rows is hashed once."""
    n = len(offsets) - 1
    nw = len(w64)
    mask = len(tab) // 3 - 1
    out = np.full(n, -1, dtype=np.int64)
    big = mask + 1 > _CACHED_SLOTS
    touched = np.uint64(0)
    if big:
        hs = _hash_rows(w64, raw, offsets, valid, np.uint64(0))
        for i in range(n):
            s = 3 * np.int64(hs[i] & np.uint64(mask))
            touched ^= tab[s] ^ words[np.int64(tab[s + 1] >> np.uint64(32))]
    else:
        hs = np.zeros(0, dtype=np.uint64)
    prev_a = np.int64(0)
    prev_ln = np.int64(-1)
    prev_code = np.int64(-1)
    for i in range(n):
        if not valid[i]:
            continue
        a = np.int64(offsets[i])
        ln = np.int64(offsets[i + 1]) - a
        if ((a + ln) >> 3) + 1 >= nw:                        # the last bytes of the buffer
            out[i] = _probe_at_end(raw, a, ln, tab, words)
            prev_a, prev_ln, prev_code = a, ln, out[i]
            continue
        if ln == prev_ln and ((prev_a + ln) >> 3) + 1 < nw:  # the row before, compared from its end
            k = ((ln - 1) >> 3) << 3
            while k >= 0:
                q, p = (a + k) >> 3, (prev_a + k) >> 3
                if _masked(_join(w64[q], w64[q + 1], (a + k) & 7) ^ _join(w64[p], w64[p + 1], (prev_a + k) & 7),
                           ln - k) != 0:
                    break
                k -= 8
            if k < 0:
                out[i] = prev_code
                continue
        if big:
            h = hs[i]
        else:
            h = np.uint64(ln) * _GOLD
            k = np.int64(0)
            while k < ln:
                q = (a + k) >> 3
                h = _round(h, _masked(_join(w64[q], w64[q + 1], (a + k) & 7), ln - k))
                k += 8
            h = _finish(h)
        s = np.int64(h & np.uint64(mask))
        while tab[3 * s] != 0:
            if tab[3 * s] == h and np.int64(tab[3 * s + 1] & np.uint64(0xFFFFFFFF)) == ln:
                base = np.int64(tab[3 * s + 1] >> np.uint64(32))
                k = np.int64(0)
                while k < ln:                                # the bytes, not only the hash
                    q = (a + k) >> 3
                    if _masked(_join(w64[q], w64[q + 1], (a + k) & 7), ln - k) != words[base + (k >> 3)]:
                        break
                    k += 8
                if k >= ln:
                    out[i] = np.int64(tab[3 * s + 2])
                    break
            s = (s + 1) & mask
        prev_a, prev_ln, prev_code = a, ln, out[i]
    return out, touched                                      # (returned, so the reads are kept)


@njit(cache=True, nogil=True)
def _set_insert(keys, bits, h):
    """Put ``h`` into an open-addressing set of non-zero uint64 keys (linear probing): True for
    each key it did not hold and now does (the first of twins in ``h`` is the new one), its filter
    bit set (a power-of-two number of bits, indexed by the hash's high half: the slot is its low
    bits)."""
    mask = len(keys) - 1
    fmask = np.uint64(len(bits) * 64 - 1)
    out = np.zeros(len(h), dtype=np.bool_)
    for i in range(len(h)):
        x = h[i]
        s = np.int64(x & np.uint64(mask))
        while keys[s] != 0 and keys[s] != x:
            s = (s + 1) & mask
        if keys[s] == 0:
            keys[s] = x
            j = np.int64((x >> np.uint64(32)) & fmask)
            bits[j >> 6] |= np.uint64(1) << np.uint64(j & 63)
            out[i] = True
    return out


@njit(cache=True, nogil=True)
def _seen_add(prev, prev_bits, cur, cur_bits, h):
    pmask = len(prev) - 1
    cmask = len(cur) - 1
    pf = np.uint64(len(prev_bits) * 64 - 1)
    cf = np.uint64(len(cur_bits) * 64 - 1)
    out = np.zeros(len(h), dtype=np.bool_)
    touched = np.uint64(0)
    for i in range(len(h)):                 # every slot read first: the reads do not wait on each other
        touched ^= cur[np.int64(h[i] & np.uint64(cmask))]
    for i in range(len(h)):
        x = h[i]
        j = np.int64((x >> np.uint64(32)) & pf)
        if prev_bits[j >> 6] & (np.uint64(1) << np.uint64(j & 63)):   # the filter spares most new ids the probe
            s = np.int64(x & np.uint64(pmask))
            while prev[s] != 0 and prev[s] != x:
                s = (s + 1) & pmask
            if prev[s] != 0:
                continue
        s = np.int64(x & np.uint64(cmask))
        while cur[s] != 0 and cur[s] != x:
            s = (s + 1) & cmask
        if cur[s] == 0:
            cur[s] = x
            j = np.int64((x >> np.uint64(32)) & cf)
            cur_bits[j >> 6] |= np.uint64(1) << np.uint64(j & 63)
            out[i] = True
    return out, touched


_NEVER = np.iinfo(np.int64).min


@njit(cache=True, nogil=True)
def _latest_top(ent, ok, v):
    top = -1
    for i in range(len(ent)):
        if ent[i] > top and ok[i] and not np.isnan(v[i]):
            top = ent[i]
    return top


@njit(cache=True, nogil=True)
def _latest_apply(ent, ok, v, t, tie, held_check, best_t, best_tie, value, time):
    n = len(ent)
    for i in range(n):
        e = ent[i]
        if e >= 0 and ok[i] and not np.isnan(v[i]):
            if t[i] > best_t[e] or (t[i] == best_t[e] and tie[i] > best_tie[e]):
                best_t[e] = t[i]
                best_tie[e] = tie[i]
    changed = 0
    for i in range(n - 1, -1, -1):                        # from the end: of equal keys the last row's
        e = ent[i]
        if e >= 0 and ok[i] and not np.isnan(v[i]) and t[i] == best_t[e] and tie[i] == best_tie[e]:
            best_t[e] = _NEVER                               # done with: the scratch is clean again
            if held_check and t[i] < time[e]:
                continue
            value[e] = v[i]
            time[e] = t[i]
            changed += 1
    return changed


@njit(cache=True, nogil=True)
def _facility_judge(r, sched, silent, maint, value, time, col, dopen, dsince, T, R, due):
    n = len(r)
    idx = np.empty(n, dtype=np.intp)
    cnt = np.zeros(R, dtype=np.int64)
    newest = np.full(R, np.int64(-1), dtype=np.int64)
    n_silent = np.zeros(R, dtype=np.int64)
    m = 0
    for e in range(n):
        row = r[e]
        s = sched[e]
        if row < 0 or not dopen[s]:
            continue
        w = maint[e]
        mv = value[w, col]
        back = np.int64(-1)                                 # plan.NEVER: no work order known
        if not np.isnan(mv):
            if mv >= 0.5:
                continue                                    # under an open work order
            back = time[w, col]                             # back in service since then
        start = max(dsince[s], back)
        t = time[e, col]
        if not np.isnan(value[e, col]) and t >= start and T - t <= silent[e]:
            idx[m] = e
            m += 1
            cnt[row] += 1
            if t > newest[row]:
                newest[row] = t
            if t + silent[e] + 1 < due:
                due = t + silent[e] + 1
        elif T - start > silent[e]:
            n_silent[row] += 1
        elif start + silent[e] + 1 < due:                  # waiting for its first reading
            due = start + silent[e] + 1
    return idx[:m], cnt, newest, n_silent, due


def facility_judge(r, sched, silent, maint, value, time, col: int, dopen, dsince, T: int, R: int, due: int):
    """One pass of :class:`indicators.engine.plan._FacilityView` over its entities (``r`` the row of
    each, -1 none; ``sched`` its schedule; ``silent`` its grace in ms; ``maint`` its maintenance
    entity; ``value`` / ``time`` the latest table, column ``col``): (the judged entities, per row
    their count, their newest reading time (-1: none) and the count of silent ones, the time the
    judgement next changes by itself - ``due`` at the latest)."""
    idx, cnt, newest, n_silent, due = _facility_judge(r, sched, silent, maint, value, time, np.int64(col), dopen,
                                                      dsince, np.int64(T), np.int64(R), np.int64(due))
    return idx, cnt, newest, n_silent, int(due)


@njit(cache=True, nogil=True)
def _facility_values(ent, sched, silent, maint, value, time, col, dopen, dsince, T, pos, raw, newest, idle, due):
    for i in range(len(ent)):
        s = sched[i]
        w = maint[i]
        mv = value[w, col]
        working = True
        back = np.int64(-1)                                 # plan.NEVER: no work order known
        if not np.isnan(mv):
            working = mv < 0.5
            back = time[w, col]
        start = max(dsince[s], back)
        expected = dopen[s] and working
        v = value[ent[i], col]
        t = time[ent[i], col]
        p = pos[i]
        if expected and not np.isnan(v) and t >= start:
            raw[p] = v
            newest[p] = t
            idle[p] = False
            continue
        raw[p] = np.nan
        newest[p] = -1
        waiting = expected and T - start <= silent[i]
        idle[p] = waiting or not expected
        if waiting and start + silent[i] + 1 < due:
            due = start + silent[i] + 1
    return due


def facility_values(ent, sched, silent, maint, value, time, col: int, dopen, dsince, T: int, pos, raw, newest, idle,
                    due: int) -> int:
    """:class:`indicators.engine.plan.FacilityValue` in one pass: each slot's latest reading
    (entity ``ent``, schedule ``sched``, grace ``silent`` ms, maintenance entity ``maint``) into
    ``raw`` / ``newest`` / ``idle`` at ``pos`` when its schedule is open, it is working and the
    reading was taken since the later of the window's opening and its return to service; else no
    value, idle while closed, under a work order or within its grace.  Returns the time the
    judgement next changes by itself (``due`` at the latest)."""
    return int(_facility_values(ent, sched, silent, maint, value, time, np.int64(col), dopen, dsince, np.int64(T),
                                pos, raw, newest, idle, np.int64(due)))


def latest_top(ent: np.ndarray, ok: np.ndarray, v: np.ndarray) -> int:
    """The largest code of a row that is a reading (code >= 0, ``ok``, value not NaN); -1: none."""
    return int(_latest_top(ent, ok, v))


def latest_apply(ent, ok, v, t, tie, held_check: bool, best_t, best_tie, value, time) -> int:
    """The newest reading of each entity into ``value`` / ``time`` (per entity code), in one pass
    over a tick's rows and one back: newest by event time ``t``, then ``tie`` (the id hash's
    bits), of rows equal in both the last - what :func:`indicators.engine.state.newest` and a
    fancy-indexed assignment give.  ``held_check``: a reading older than the time the entity
    holds is no newer value (events at their own times, moved into a later tick).
    ``best_t`` / ``best_tie``: scratch of at least ``len(value)`` int64, ``best_t`` holding
    int64's minimum, left so.  Returns the number of entities written."""
    return int(_latest_apply(ent, ok, v, t, tie, held_check, best_t, best_tie, value, time))


def set_insert(keys: np.ndarray, bits: np.ndarray, h: np.ndarray) -> np.ndarray:
    """Insert ``h`` into the set ``keys`` (and its filter ``bits``); True for each row whose key
    was not there."""
    return _set_insert(keys, bits, h)


def seen_add(prev: tuple[np.ndarray, np.ndarray], cur: tuple[np.ndarray, np.ndarray], h: np.ndarray) -> np.ndarray:
    """One pass of de-duplication over two sets, each (keys, filter bits): True for each of ``h``
    that neither ``prev`` nor ``cur`` held, now put into ``cur``; the first of twins in ``h`` is
    the new one.  ``cur`` must have room for every row."""
    return _seen_add(prev[0], prev[1], cur[0], cur[1], h)[0]


@njit(cache=True, nogil=True)
def _counting_order(t, lo, span):
    counts = np.zeros(span + 1, dtype=np.int64)
    for i in range(len(t)):
        counts[t[i] - lo + 1] += 1
    for k in range(1, span + 1):
        counts[k] += counts[k - 1]
    order = np.empty(len(t), dtype=np.intp)
    for i in range(len(t)):
        j = t[i] - lo
        order[counts[j]] = i
        counts[j] += 1
    return order


def time_order(t: np.ndarray) -> np.ndarray:
    """The stable order of event times ``t`` (int64 ms): a counting sort when they span at most a
    few times as many milliseconds as there are events (a feed batch: a second or two), else
    numpy's stable sort."""
    n = len(t)
    if n < 64:
        return np.argsort(t, kind="stable")
    lo, hi = int(t.min()), int(t.max())
    if hi - lo > 4 * n + 4096:
        return np.argsort(t, kind="stable")
    return _counting_order(np.ascontiguousarray(t, dtype=np.int64), lo, hi - lo + 1)


def _buffers(arr: pa.Array) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """(the bytes' whole 8-byte words, the bytes, offsets into them, validity) of a string array:
    views of Arrow's buffers (the words copied only when the bytes do not start on 8 bytes)."""
    if pa.types.is_large_string(arr.type):
        arr = arr.cast(pa.string())
    n = len(arr)
    bufs = arr.buffers()
    offsets = np.frombuffer(bufs[1], dtype=np.int32, count=n + 1, offset=arr.offset * 4)
    data = bufs[2]
    if data is None or data.size == 0:                       # no bytes at all: nulls and "" only
        raw, w64 = np.zeros(0, np.uint8), np.zeros(0, np.uint64)
    else:
        raw = np.frombuffer(data, dtype=np.uint8)
        whole = len(raw) >> 3
        if data.address % 8 == 0:
            w64 = np.frombuffer(data, dtype=np.uint64, count=whole)
        else:
            w64 = np.frombuffer(raw[:whole * 8].tobytes(), dtype=np.uint64)
    return w64, raw, offsets, valid_mask(arr)


def hash_column(arr: pa.Array, salt: int = 0) -> np.ndarray:
    """64-bit hashes of a plain string array (see the module docstring)."""
    if len(arr) == 0:
        return np.zeros(0, dtype=np.uint64)
    w64, raw, offsets, valid = _buffers(arr)
    return _hash_rows(w64, raw, offsets, valid, np.uint64(salt & 0xFFFFFFFFFFFFFFFF))


class Lookup:
    """Strings to codes: ``entries[i]`` has code ``codes[i]`` (a member, or another spelling of one).

    ``size``: the table's slots (a power of two above the entries; default: at most half full).
    :meth:`add` puts more entries in (a dynamic vocabulary learning ids), growing the table
    when it would pass half full - never rebuilt from the strings."""

    def __init__(self, entries: list[str], codes: list[int], size: int | None = None) -> None:
        size = size or 1 << max(4, int(2 * max(1, len(entries)) - 1).bit_length())
        if size & (size - 1) or size <= len(entries):
            raise ValueError(f"a lookup of {len(entries)} entries needs a power-of-two size above that, not {size}")
        self.n, self.at = 0, 0
        self.tab = np.zeros(3 * size, dtype=np.uint64)
        self.words = np.zeros(16, dtype=np.uint64)
        self._put(entries, codes)

    def add(self, entries: list[str], codes: list[int]) -> None:
        """More entries (none of them one already): the table doubles while it would be more than
        half full."""
        size = len(self.tab) // 3
        if (self.n + len(entries)) * 2 > size:
            while (self.n + len(entries)) * 2 > size:
                size *= 2
            tab = np.zeros(3 * size, dtype=np.uint64)
            _rehash(self.tab, tab)
            self.tab = tab
        self._put(entries, codes)

    def _put(self, entries: list[str], codes: list[int]) -> None:
        if not entries:
            return
        if any(c < 0 for c in codes):
            raise ValueError("a lookup's codes are >= 0 (-1 means: no member)")
        arr = pa.array(entries, pa.string())
        w64, raw, offsets, valid = _buffers(arr)
        need = self.at + int(((np.diff(offsets) + 7) >> 3).sum()) + 1
        if need > len(self.words):
            words = np.zeros(max(need, 2 * len(self.words)), dtype=np.uint64)
            words[:self.at] = self.words[:self.at]
            self.words = words
        self.at = int(_insert(self.tab, self.words, np.int64(self.at), raw, offsets,
                              _hash_rows(w64, raw, offsets, valid, np.uint64(0)), np.asarray(codes, dtype=np.int64)))
        self.n += len(entries)

    def codes(self, arr: pa.Array) -> np.ndarray:
        """Each row's code (-1: not an entry, or null); ``arr`` a plain string array."""
        if len(arr) == 0:
            return np.zeros(0, dtype=np.intp)
        w64, raw, offsets, valid = _buffers(arr)
        return _probe(w64, raw, offsets, valid, self.tab, self.words)[0].astype(np.intp, copy=False)


@njit(cache=True, nogil=True)
def _line_fit(xc, y, hc, min_samples):
    rows, cols = y.shape
    n = np.zeros(cols)
    sx = np.zeros(cols)
    sy = np.zeros(cols)
    sxx = np.zeros(cols)
    sxy = np.zeros(cols)
    for r in range(rows):                      # row by row: the samples as they lie in memory
        x = xc[r]
        for c in range(cols):
            v = y[r, c]
            if not np.isnan(v):
                n[c] += 1.0
                sx[c] += x
                sy[c] += v
                sxx[c] += x * x
                sxy[c] += x * v
    out = np.full((len(hc), cols), np.nan)
    for c in range(cols):
        if n[c] < min_samples:
            continue
        mx = sx[c] / n[c]
        my = sy[c] / n[c]
        d = sxx[c] - n[c] * mx * mx
        if not d > 0:
            continue
        slope = (sxy[c] - n[c] * mx * my) / d
        for k in range(len(hc)):
            out[k, c] = max(my + slope * (hc[k] - mx), 0.0)
    return out


def line_fit(xc: np.ndarray, y: np.ndarray, hc: np.ndarray, min_samples: int = 2) -> np.ndarray:
    """Per column of ``y`` (samples x series, NaN: no sample) the least-squares line through its
    samples at times ``xc``, at the times ``hc``, clipped at 0; NaN for a series with fewer than
    ``min_samples`` samples or all at one time.  One pass over the samples."""
    return _line_fit(np.ascontiguousarray(xc, dtype=np.float64), np.ascontiguousarray(y, dtype=np.float64),
                     np.ascontiguousarray(hc, dtype=np.float64), int(min_samples))


def warm_up() -> None:
    """Load every kernel now (numba's runtime and the cached machine code: ~40 MB and a few
    hundred ms, once a process), so that a measurement of what engines hold or take does not
    count it."""
    words = pa.array(["warm", "up", None])
    hash_column(words)
    lk = Lookup(["warm"], [0])
    lk.add(["up"], [1])
    lk.codes(words)
    keys, bits = np.zeros(16, np.uint64), np.zeros(1, np.uint64)
    set_insert(keys, bits, np.array([3], np.uint64))
    seen_add((keys, bits), (np.zeros(16, np.uint64), np.zeros(1, np.uint64)), np.array([5], np.uint64))
    time_order(np.arange(100, dtype=np.int64)[::-1].copy())
    ent, ok, v, t = np.array([0, -1]), np.ones(2, np.bool_), np.array([1.0, np.nan]), np.array([5, 6])
    latest_top(ent, ok, v)
    latest_apply(ent, ok, v, t, t, False, np.full(1, _NEVER), np.zeros(1, np.int64), np.zeros(1), np.zeros(1, np.int64))
    one, ix = np.zeros(1, np.intp), np.zeros(1, np.int64)
    table, times = np.zeros((1, 2)), np.zeros((1, 2), np.int64)
    facility_judge(one, one, ix, one, table, times, 0, np.ones(1, np.bool_), ix, 5, 1, 9)
    facility_values(one, one, ix, one, table, times, 0, np.ones(1, np.bool_), ix, 5, one, np.zeros(1), ix.copy(),
                    np.zeros(1, np.bool_), 9)
    line_fit(np.array([-1.0, 0.0]), np.array([[1.0], [2.0]]), np.array([5.0]))


__all__ = ["Lookup", "facility_judge", "facility_values", "hash_column", "line_fit", "latest_apply", "latest_top", "seen_add", "set_insert", "time_order",
           "warm_up"]
