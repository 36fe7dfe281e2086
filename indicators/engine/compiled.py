"""Compiled kernels (numba) for the engine's string work: event-id hashing and id lookup.

Strings reach the engine as Arrow columns; these kernels read the Arrow buffers directly (the
offsets and the UTF-8 bytes), one pass per column, no Python object per row:

* :func:`hash_column` - the 64-bit hash of every string of a column, bit for bit the hash that
  :func:`indicators.engine.kernels.hash_strings` has always computed (its word-at-a-time rounds
  and murmur3 finaliser), so de-duplication state in a checkpoint stays valid across versions.
* :func:`set_contains` / :func:`set_insert` - the de-duplication set's probes (linear probing
  over non-zero uint64 keys), the first of twins in a batch being the new one.
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

_M1 = np.uint64(0xFF51AFD7ED558CCD)
_M2 = np.uint64(0xC4CEB9FE1A85EC53)
_GOLD = np.uint64(0x9E3779B97F4A7C15)


@njit(cache=True, nogil=True, inline="always")
def _hash_one(data, start, length, salt):
    h = (np.uint64(length) + salt) * _GOLD
    k = 0
    while k < length:
        w = np.uint64(0)
        m = min(8, length - k)
        for b in range(m):                                   # little-endian word of bytes k .. k+7
            w |= np.uint64(data[start + k + b]) << np.uint64(8 * b)
        x = (h ^ w) * _M1
        x ^= x >> np.uint64(32)
        h = x
        k += 8
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
def _hash_rows(data, offsets, valid, salt):
    n = len(offsets) - 1
    out = np.empty(n, dtype=np.uint64)
    for i in range(n):
        a = offsets[i]
        ln = offsets[i + 1] - a if valid[i] else 0           # a null hashes like ""
        out[i] = _hash_one(data, a, ln, salt)
    return out


@njit(cache=True, nogil=True)
def _build(data, offsets, salt, size):
    keys = np.zeros(size, dtype=np.uint64)
    slots = np.full(size, -1, dtype=np.int64)                # the entry in each slot
    mask = size - 1
    for e in range(len(offsets) - 1):
        h = _hash_one(data, offsets[e], offsets[e + 1] - offsets[e], salt)
        s = np.int64(h & np.uint64(mask))
        while keys[s] != 0:
            s = (s + 1) & mask
        keys[s] = h
        slots[s] = e
    return keys, slots


@njit(cache=True, nogil=True)
def _probe(data, offsets, valid, keys, slots, vdata, voffsets, vcodes, salt):
    n = len(offsets) - 1
    mask = len(keys) - 1
    out = np.full(n, -1, dtype=np.int64)
    for i in range(n):
        if not valid[i]:
            continue
        a = offsets[i]
        ln = offsets[i + 1] - a
        h = _hash_one(data, a, ln, salt)
        s = np.int64(h & np.uint64(mask))
        while keys[s] != 0:
            if keys[s] == h:
                e = slots[s]
                va = voffsets[e]
                if voffsets[e + 1] - va == ln:
                    same = True
                    for b in range(ln):
                        if data[a + b] != vdata[va + b]:
                            same = False
                            break
                    if same:
                        out[i] = vcodes[e]
                        break
            s = (s + 1) & mask
    return out


@njit(cache=True, nogil=True)
def set_contains(keys, h):
    """For an open-addressing set of non-zero uint64 keys (linear probing): which of ``h`` it holds."""
    mask = len(keys) - 1
    out = np.zeros(len(h), dtype=np.bool_)
    for i in range(len(h)):
        s = np.int64(h[i] & np.uint64(mask))
        while keys[s] != 0:
            if keys[s] == h[i]:
                out[i] = True
                break
            s = (s + 1) & mask
    return out


@njit(cache=True, nogil=True)
def set_insert(keys, h):
    """Insert ``h`` into the set; True for each row whose key was not there (the first of twins)."""
    mask = len(keys) - 1
    out = np.zeros(len(h), dtype=np.bool_)
    for i in range(len(h)):
        s = np.int64(h[i] & np.uint64(mask))
        while True:
            k = keys[s]
            if k == 0:
                keys[s] = h[i]
                out[i] = True
                break
            if k == h[i]:
                break
            s = (s + 1) & mask
    return out


def _buffers(arr: pa.Array) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(bytes, offsets rebased to the bytes, validity) of a string array, no copies but the validity."""
    if pa.types.is_large_string(arr.type):
        arr = arr.cast(pa.string())
    n = len(arr)
    bufs = arr.buffers()
    offsets = np.frombuffer(bufs[1], dtype=np.int32, count=n + 1, offset=arr.offset * 4)
    data = np.frombuffer(bufs[2], dtype=np.uint8) if bufs[2] is not None and bufs[2].size else np.zeros(1, np.uint8)
    if arr.null_count:
        valid = np.asarray(arr.is_valid().to_numpy(zero_copy_only=False), dtype=np.bool_)
    else:
        valid = np.ones(n, dtype=np.bool_)
    return data, offsets, valid


def hash_column(arr: pa.Array, salt: int = 0) -> np.ndarray:
    """64-bit hashes of a plain string array (see the module docstring)."""
    if len(arr) == 0:
        return np.zeros(0, dtype=np.uint64)
    data, offsets, valid = _buffers(arr)
    return _hash_rows(data, offsets, valid, np.uint64(salt & 0xFFFFFFFFFFFFFFFF))


class Lookup:
    """Strings to codes: ``entries[i]`` has code ``codes[i]`` (a member, or another spelling of one)."""

    def __init__(self, entries: list[str], codes: list[int]) -> None:
        self.n = len(entries)
        arr = pa.array(entries, pa.string())
        data, offsets, _ = _buffers(arr)
        self._keep = arr                                      # the buffers the views point into
        self.vdata, self.voffsets = data, offsets.astype(np.int64)
        self.vcodes = np.asarray(codes, dtype=np.int64)
        size = 1 << max(4, int(2 * max(1, self.n) - 1).bit_length())
        self.keys, self.slots = _build(data, offsets, np.uint64(0), size)

    def codes(self, arr: pa.Array) -> np.ndarray:
        """Each row's code (-1: not an entry, or null); ``arr`` a plain string array."""
        if len(arr) == 0:
            return np.zeros(0, dtype=np.intp)
        data, offsets, valid = _buffers(arr)
        return _probe(data, offsets, valid, self.keys, self.slots, self.vdata, self.voffsets, self.vcodes,
                      np.uint64(0)).astype(np.intp)


__all__ = ["Lookup", "hash_column", "set_contains", "set_insert"]
