"""Append-only durable log of accepted feed batches.

One directory holds segment files ``seg-<first seq, 20 digits>.log`` and a
``LOCK`` file (one writer process at a time, ``flock``).  A segment is a run of
frames; a frame is one accepted batch::

    offset  size  field
    0       4     magic  b"STF1"
    4       1     format version (1)
    5       1     K = length of the kind name (1..255)
    6       2     flags (0)
    8       8     seq            u64 little-endian, 1, 2, 3, ... with no gaps
    16      8     N = payload length in bytes, u64 LE
    24      4     body CRC-32 (zlib) of kind bytes + payload
    28      4     header CRC-32 of bytes 0..27
    32      K     kind (ASCII, e.g. b"crowd")
    32+K    N     payload: the batch as an Arrow IPC *stream*

The header has its own CRC so that a torn length field is never trusted.

Retention: :meth:`FeedLog.prune` deletes whole sealed segments from the front
of the log, only those whose frames are all covered by the caller (the
engine's checkpoint) and last written before a cut-off.  It first records the
first sequence number kept in ``FIRST`` (written atomically), so recovery
still proves that nothing is missing between ``FIRST`` and the end.
``append`` writes the whole frame and ``fsync``s the file before it returns
(and the directory when it created a segment), so a returned sequence number
is durable: acknowledge a batch only after ``append`` returned.

Recovery on open: every frame of every segment is checked (magic, header CRC,
body CRC, seq continuity).  A bad frame at the end of the *last* segment, with
nothing valid after it, is the torn tail of a write interrupted by a crash: it
is cut off (``truncate`` + ``fsync``) and the number of dropped bytes is
reported in :attr:`FeedLog.recovery`.  A bad frame anywhere else means damage
to data that was once acknowledged; it is not silently repaired:
:class:`CorruptLogError` is raised.  After ``kill -9`` at any point every
append that returned is there after reopening, exactly once (a frame is
either whole and valid, or cut off).

On Linux ``os.fsync`` reaches the device; on macOS it would need
``F_FULLFSYNC`` for the same guarantee.
"""
from __future__ import annotations

import errno
import fcntl
import io
import os
import re
import struct
import threading
import zlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterator

import pyarrow as pa

__all__ = ["FeedLog", "CorruptLogError", "LogLockedError", "Recovery", "MAGIC",
           "HEADER", "DEFAULT_SEGMENT_BYTES", "encode_frame"]

MAGIC = b"STF1"
VERSION = 1
HEADER = struct.Struct("<4sBBHQQII")       # 32 bytes
assert HEADER.size == 32
DEFAULT_SEGMENT_BYTES = 64 * 1024 * 1024
_SEG_RE = re.compile(r"^seg-(\d{20})\.log$")
_READ_CHUNK = 1 << 20


class CorruptLogError(RuntimeError):
    """A frame that was acknowledged once is damaged (not a torn tail)."""


class LogLockedError(RuntimeError):
    """Another process holds the log's writer lock."""


@dataclass
class Recovery:
    """What opening the log found."""

    segments: int = 0
    frames: int = 0
    dropped_bytes: int = 0              # torn tail cut off the last segment
    truncated_segment: str | None = None
    notes: list[str] = field(default_factory=list)


def _seg_name(first_seq: int) -> str:
    return f"seg-{first_seq:020d}.log"


def encode_frame(seq: int, kind: str, payload: bytes | memoryview | pa.Buffer) -> list[bytes | memoryview]:
    """Header + kind + payload buffers of one frame (written with ``writev``)."""
    kb = kind.encode("ascii")
    if not 1 <= len(kb) <= 255:
        raise ValueError(f"kind name must be 1-255 ASCII bytes: {kind!r}")
    body = memoryview(payload)
    body_crc = zlib.crc32(body, zlib.crc32(kb))
    head = HEADER.pack(MAGIC, VERSION, len(kb), 0, seq, body.nbytes, body_crc, 0)
    head_crc = zlib.crc32(head[:28])
    head = head[:28] + struct.pack("<I", head_crc)
    return [head, kb, body]


def _serialize(table: pa.Table, options: pa.ipc.IpcWriteOptions | None) -> pa.Buffer:
    sink = pa.BufferOutputStream()
    with pa.ipc.new_stream(sink, table.schema, options=options) as w:
        w.write_table(table)
    return sink.getvalue()


@dataclass
class _Frame:
    offset: int
    seq: int
    kind: str
    payload_offset: int
    payload_len: int

    @property
    def end(self) -> int:
        return self.payload_offset + self.payload_len


def _parse_header(buf: bytes) -> tuple[int, int, int, int] | None:
    """(kind_len, seq, payload_len, body_crc) of a 32-byte header, or None."""
    if len(buf) < HEADER.size:
        return None
    magic, version, klen, _flags, seq, plen, body_crc, head_crc = HEADER.unpack(buf[:HEADER.size])
    if magic != MAGIC or version != VERSION or klen == 0:
        return None
    if zlib.crc32(buf[:28]) != head_crc:
        return None
    return klen, seq, plen, body_crc


def _read_frame_at(f: io.BufferedReader, offset: int, size: int) -> _Frame | None:
    """The valid frame starting at ``offset`` (CRCs checked), else None."""
    f.seek(offset)
    head = f.read(HEADER.size)
    parsed = _parse_header(head)
    if parsed is None:
        return None
    klen, seq, plen, body_crc = parsed
    end = offset + HEADER.size + klen + plen
    if end > size:
        return None
    kb = f.read(klen)
    crc = zlib.crc32(kb)
    remaining = plen
    while remaining:
        chunk = f.read(min(_READ_CHUNK, remaining))
        if not chunk:
            return None
        crc = zlib.crc32(chunk, crc)
        remaining -= len(chunk)
    if crc != body_crc:
        return None
    try:
        kind = kb.decode("ascii")
    except UnicodeDecodeError:
        return None
    return _Frame(offset, seq, kind, offset + HEADER.size + klen, plen)


def _find_valid_frame_after(path: Path, start: int, size: int) -> _Frame | None:
    """Scan for any valid frame after ``start`` (tells damage from a torn tail)."""
    with open(path, "rb") as f:
        pos = start + 1
        while pos < size:
            f.seek(pos)
            window = f.read(_READ_CHUNK + len(MAGIC))
            if not window:
                return None
            i = window.find(MAGIC)
            while i != -1:
                fr = _read_frame_at(f, pos + i, size)
                if fr is not None:
                    return fr
                i = window.find(MAGIC, i + 1)
            pos += _READ_CHUNK
    return None


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _write_all(fd: int, bufs: list[bytes | memoryview]) -> None:
    views = [memoryview(b).cast("B") for b in bufs if len(memoryview(b))]
    while views:
        n = os.writev(fd, views[:1024])
        while n and views:
            if n >= len(views[0]):
                n -= len(views[0])
                views.pop(0)
            else:
                views[0] = views[0][n:]
                n = 0


class FeedLog:
    """Durable, append-only log of ``(seq, kind, Arrow table)`` frames.

    ``append`` is thread-safe; ``replay`` may run while appends go on (it
    reads up to the end of what was committed when it started).
    """

    def __init__(self, directory: str | os.PathLike[str], *, segment_bytes: int = DEFAULT_SEGMENT_BYTES,
                 compression: str | None = None, fsync: bool = True) -> None:
        if segment_bytes < 1024:
            raise ValueError("segment_bytes must be at least 1024")
        self.directory = Path(directory)
        self.directory.mkdir(parents=True, exist_ok=True)
        self.segment_bytes = segment_bytes
        self._fsync = fsync
        self._options = pa.ipc.IpcWriteOptions(compression=compression) if compression else None
        self._lock = threading.RLock()
        self._lock_fd = os.open(self.directory / "LOCK", os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(self._lock_fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as e:
            os.close(self._lock_fd)
            if e.errno in (errno.EWOULDBLOCK, errno.EAGAIN, errno.EACCES):
                raise LogLockedError(f"{self.directory} is open for writing by another process") from e
            raise
        self._segments: list[tuple[int, Path]] = []     # (first seq, path)
        self._fd: int | None = None
        self._size = 0                                    # committed size of the last segment
        self._last_seq = 0
        self.recovery = Recovery()
        try:
            self._recover()
        except BaseException:
            self.close()
            raise

    # ------------------------------------------------------------ recovery
    def _recover(self) -> None:
        names = sorted(p for p in self.directory.iterdir() if _SEG_RE.match(p.name))
        rec = self.recovery
        rec.segments = len(names)
        expected = self._first_kept()
        if names and expected > 1:
            first = int(_SEG_RE.match(names[0].name).group(1))  # type: ignore[union-attr]
            if first < expected:                 # a prune was cut short after FIRST: finish it
                starts = [int(_SEG_RE.match(p.name).group(1)) for p in names]  # type: ignore[union-attr]
                for k, p in enumerate(names[:-1]):
                    if starts[k + 1] <= expected:          # every frame of it is before FIRST
                        p.unlink()
                names = [p for p in names if p.exists()]
                rec.segments = len(names)
                rec.notes.append(f"finished a prune: the log starts at seq {expected}")
            first = int(_SEG_RE.match(names[0].name).group(1))  # type: ignore[union-attr]
            if first > expected:
                raise CorruptLogError(f"{names[0].name}: the log should start at seq {expected} (FIRST), "
                                      f"segments before it are missing")
            expected = first
        for k, path in enumerate(names):
            first = int(_SEG_RE.match(path.name).group(1))  # type: ignore[union-attr]
            last_segment = k == len(names) - 1
            size = path.stat().st_size
            offset = 0
            with open(path, "rb") as f:
                while offset < size:
                    fr = _read_frame_at(f, offset, size)
                    if fr is not None and fr.seq != expected:
                        raise CorruptLogError(
                            f"{path.name} @ {offset}: frame seq {fr.seq}, expected {expected}")
                    if fr is None:
                        if not last_segment:
                            raise CorruptLogError(f"{path.name} @ {offset}: damaged frame in a sealed segment")
                        later = _find_valid_frame_after(path, offset, size)
                        if later is not None:
                            raise CorruptLogError(
                                f"{path.name} @ {offset}: damaged frame followed by a valid frame "
                                f"(seq {later.seq} @ {later.offset}); refusing to drop acknowledged data")
                        break
                    if offset == 0 and fr.seq != first:
                        raise CorruptLogError(f"{path.name} starts with seq {fr.seq}, its name says {first}")
                    rec.frames += 1
                    expected += 1
                    offset = fr.end
            if offset < size:
                with open(path, "r+b") as f:
                    f.truncate(offset)
                    f.flush()
                    os.fsync(f.fileno())
                rec.dropped_bytes += size - offset
                rec.truncated_segment = path.name
                rec.notes.append(f"cut a torn tail of {size - offset} bytes off {path.name} at {offset}")
                size = offset
            if size == 0 and first != expected:
                raise CorruptLogError(f"empty segment {path.name} does not continue at seq {expected}")
            self._segments.append((first, path))
            if last_segment:
                self._size = size
        self._last_seq = expected - 1
        if self._segments:
            self._fd = os.open(self._segments[-1][1], os.O_WRONLY | os.O_APPEND)

    # -------------------------------------------------------------- writing
    @property
    def last_seq(self) -> int:
        """Sequence number of the last durable frame (0 when empty)."""
        return self._last_seq

    def append(self, kind: str, table: pa.Table) -> int:
        """Write ``table`` as one frame, ``fsync``, return its sequence number."""
        if not isinstance(table, pa.Table):
            if isinstance(table, pa.RecordBatch):
                table = pa.Table.from_batches([table])
            else:
                raise TypeError(f"append needs a pyarrow Table, not {type(table).__name__}")
        payload = _serialize(table, self._options)
        with self._lock:
            if self._lock_fd < 0:
                raise ValueError("log is closed")
            seq = self._last_seq + 1
            bufs = encode_frame(seq, kind, payload)
            frame_len = sum(len(memoryview(b).cast("B")) for b in bufs)
            if self._fd is None or (self._size > 0 and self._size + frame_len > self.segment_bytes):
                self._roll(seq)
            assert self._fd is not None
            start = self._size
            try:
                _write_all(self._fd, bufs)
                if self._fsync:
                    os.fsync(self._fd)
            except BaseException:
                # leave no partial frame behind a later good one
                try:
                    os.ftruncate(self._fd, start)
                    os.fsync(self._fd)
                except OSError:
                    pass
                raise
            self._size = start + frame_len
            self._last_seq = seq
            return seq

    def _roll(self, first_seq: int) -> None:
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None
        path = self.directory / _seg_name(first_seq)
        self._fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_EXCL, 0o644)
        self._segments.append((first_seq, path))
        self._size = 0
        if self._fsync:
            _fsync_dir(self.directory)

    # ------------------------------------------------------------ retention
    def _first_kept(self) -> int:
        try:
            return int((self.directory / "FIRST").read_text().strip() or 1)
        except FileNotFoundError:
            return 1
        except ValueError as e:
            raise CorruptLogError(f"{self.directory / 'FIRST'}: not a sequence number ({e})") from e

    @property
    def first_seq(self) -> int:
        """Sequence number of the oldest frame kept (1 until a prune)."""
        with self._lock:
            return self._segments[0][0] if self._segments else self._last_seq + 1

    def prune(self, covered_seq: int, before: float) -> int:
        """Delete sealed segments from the front whose frames are all ``<= covered_seq`` and that
        were last written before ``before`` (epoch seconds); never the segment being written.
        Returns how many segments were deleted."""
        with self._lock:
            drop = 0
            for k in range(len(self._segments) - 1):
                nxt = self._segments[k + 1][0]
                if nxt - 1 > covered_seq or self._segments[k][1].stat().st_mtime >= before:
                    break
                drop = k + 1
            if not drop:
                return 0
            first = self._segments[drop][0]
            tmp = self.directory / "FIRST.tmp"
            with open(tmp, "w") as f:
                f.write(f"{first}\n")
                f.flush()
                if self._fsync:
                    os.fsync(f.fileno())
            os.replace(tmp, self.directory / "FIRST")
            for _, path in self._segments[:drop]:
                path.unlink()
            if self._fsync:
                _fsync_dir(self.directory)
            self._segments = self._segments[drop:]
            return drop

    # -------------------------------------------------------------- reading
    def replay(self, from_seq: int = 0) -> Iterator[tuple[int, str, pa.Table]]:
        """Yield ``(seq, kind, table)`` for every frame with seq >= from_seq,
        in order, up to what was committed when the call started."""
        with self._lock:
            segments = list(self._segments)
            last_size = self._size
            last_seq = self._last_seq
        if from_seq > last_seq:
            return
        for k, (first, path) in enumerate(segments):
            nxt = segments[k + 1][0] if k + 1 < len(segments) else None
            if nxt is not None and nxt <= from_seq:
                continue
            size = last_size if k == len(segments) - 1 else path.stat().st_size
            with open(path, "rb") as f:
                offset = 0
                while offset < size:
                    f.seek(offset)
                    parsed = _parse_header(f.read(HEADER.size))
                    if parsed is None:
                        raise CorruptLogError(f"{path.name} @ {offset}: bad frame header during replay")
                    klen, seq, plen, body_crc = parsed
                    kb = f.read(klen)
                    end = offset + HEADER.size + klen + plen
                    if seq >= from_seq and seq <= last_seq:
                        payload = f.read(plen)
                        if len(payload) != plen or zlib.crc32(payload, zlib.crc32(kb)) != body_crc:
                            raise CorruptLogError(f"{path.name} @ {offset}: bad frame body during replay")
                        table = pa.ipc.open_stream(payload).read_all()
                        yield seq, kb.decode("ascii"), table
                    offset = end

    # -------------------------------------------------------------- closing
    def close(self) -> None:
        with self._lock:
            if self._fd is not None:
                os.close(self._fd)
                self._fd = None
            if self._lock_fd >= 0:
                try:
                    fcntl.flock(self._lock_fd, fcntl.LOCK_UN)
                finally:
                    os.close(self._lock_fd)
                    self._lock_fd = -1

    def __enter__(self) -> "FeedLog":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"FeedLog({str(self.directory)!r}, last_seq={self._last_seq}, segments={len(self._segments)})"
