"""Crash safety of the feed log.

* ``kill -9`` trials: a child process (tests/_crash_writer.py) ingests
  batches and prints each acknowledged batch after ``submit`` returned; the
  parent SIGKILLs it at a random moment (seeded), restarts it (it re-sends a
  few batches, which must come back as duplicates), kills it again, then
  reopens the log and checks that every acknowledged event is there and that
  no event id appears twice.
* deterministic torn tails: a frame cut at every point of its header and at
  many points of its body is dropped on reopen (and reported), damage to
  acknowledged frames is refused, appends continue after recovery.
"""
from __future__ import annotations

import os
import random
import subprocess
import sys
from pathlib import Path

import pyarrow as pa
import pytest

from indicators.feeds.log import HEADER, CorruptLogError, FeedLog, LogLockedError

sys.path.insert(0, str(Path(__file__).resolve().parent))
import _crash_writer as writer  # noqa: E402

WRITER = str(Path(__file__).resolve().parent / "_crash_writer.py")
TRIALS = 20
CYCLES = 2


def _ids(log: FeedLog) -> list[str]:
    return [e for _, _, t in log.replay() for e in t.column("event_id").to_pylist()]


def _ack(line: bytes) -> tuple[int, int, int]:
    """(batch, events, seq) of an ``ACK`` line; seq -1 when all were duplicates."""
    _, b, n, seq = line.split()
    return int(b), int(n), -1 if seq == b"None" else int(seq)


def _run_cycle(d: Path, seed: int, first: int, rng: random.Random, err_path: Path) -> list[tuple[int, int, int]]:
    """Start the writer, let it acknowledge a random number of batches, wait a
    random extra moment, SIGKILL it.  Returns the acknowledged (batch, n, seq)."""
    with open(err_path, "ab") as err:
        proc = subprocess.Popen([sys.executable, WRITER, str(d), str(seed), str(first)],
                                stdout=subprocess.PIPE, stderr=err, env={**os.environ, "PYTHONHASHSEED": "0"})
    acks: list[tuple[int, int, int]] = []
    try:
        assert proc.stdout is not None
        ready = proc.stdout.readline()
        assert ready.startswith(b"READY"), err_path.read_text()
        for _ in range(rng.randint(0, 12)):
            line = proc.stdout.readline()
            assert line.startswith(b"ACK"), err_path.read_text()
            acks.append(_ack(line))
        try:
            proc.wait(timeout=rng.uniform(0.0, 0.04))          # the random moment
            pytest.fail("writer exited by itself: " + err_path.read_text())
        except subprocess.TimeoutExpired:
            pass
    finally:
        proc.kill()                                            # SIGKILL
        rest = proc.stdout.read() if proc.stdout else b""
        proc.wait()
    for line in rest.split(b"\n"):
        parts = line.split()
        if len(parts) == 4 and parts[0] == b"ACK":             # only complete lines count
            acks.append(_ack(line))
    assert proc.returncode == -9
    return acks


@pytest.mark.slow
def test_kill_9_never_loses_or_duplicates_acknowledged_events(tmp_path):
    rng = random.Random(20250501)
    torn_tails = 0
    for trial in range(TRIALS):
        d = tmp_path / f"trial{trial}"
        d.mkdir()
        seed = rng.randrange(1_000_000)
        acked: dict[int, int] = {}
        next_batch = 0
        for _ in range(CYCLES):
            first = max(0, next_batch - rng.randint(0, 3))     # re-send a few batches
            for b, n, seq in _run_cycle(d, seed, first, rng, tmp_path / "writer.err"):
                assert n == writer.batch_size(seed, b)
                acked[b] = n
                next_batch = max(next_batch, b + 1)
        with FeedLog(d / "log", segment_bytes=writer.SEGMENT_BYTES) as log:
            torn_tails += log.recovery.dropped_bytes > 0
            ids = _ids(log)
            seqs = [s for s, _, _ in log.replay()]
        assert seqs == list(range(1, len(seqs) + 1))
        assert len(ids) == len(set(ids)), f"trial {trial}: an event id appears twice"
        present = set(ids)
        for b, n in acked.items():
            missing = [j for j in range(n) if f"b{b}-{j}" not in present]
            assert not missing, f"trial {trial}: acknowledged batch {b} lost {len(missing)} events"
        # beyond the acknowledged batches at most the one in flight per kill
        batches = {e.split("-")[0] for e in present}
        assert len(batches - {f"b{b}" for b in acked}) <= CYCLES
    print(f"{TRIALS} trials, {torn_tails} reopened with a torn tail")


# ----------------------------------------------------------------- torn tails


def _table(prefix: str, n: int = 5) -> pa.Table:
    return pa.table({"event_id": [f"{prefix}{i}" for i in range(n)], "x": list(range(n))})


def _segments(d: Path) -> list[Path]:
    return sorted(d.glob("seg-*.log"))


def test_torn_last_frame_is_cut_at_any_point(tmp_path):
    src = tmp_path / "src"
    with FeedLog(src) as log:
        log.append("crowd", _table("a"))
        log.append("video", _table("b"))
        end2 = _segments(src)[0].stat().st_size
        log.append("crowd", _table("c", 50))
    full = _segments(src)[0].read_bytes()
    frame3 = len(full) - end2
    cuts = list(range(1, HEADER.size + 8)) + list(range(HEADER.size + 8, frame3, max(1, frame3 // 60)))
    for cut in cuts:
        d = tmp_path / f"cut{cut}"
        d.mkdir()
        (d / _segments(src)[0].name).write_bytes(full[:end2 + cut])
        with FeedLog(d) as log:
            assert log.last_seq == 2
            assert log.recovery.dropped_bytes == cut
            assert [(s, k) for s, k, _ in log.replay()] == [(1, "crowd"), (2, "video")]
            assert log.append("staff", _table("d")) == 3          # appends continue
        with FeedLog(d) as log:
            assert log.recovery.dropped_bytes == 0
            assert _ids(log) == [f"a{i}" for i in range(5)] + [f"b{i}" for i in range(5)] + \
                [f"d{i}" for i in range(5)]


def test_garbage_after_the_last_frame_is_dropped(tmp_path):
    with FeedLog(tmp_path) as log:
        log.append("crowd", _table("a"))
    seg = _segments(tmp_path)[0]
    size = seg.stat().st_size
    with open(seg, "ab") as f:
        f.write(os.urandom(777))
    with FeedLog(tmp_path) as log:
        assert log.recovery.dropped_bytes == 777
        assert log.last_seq == 1 and seg.stat().st_size == size


@pytest.mark.parametrize("where", ["header", "body"])
def test_damage_to_an_acknowledged_frame_is_refused(tmp_path, where):
    with FeedLog(tmp_path) as log:
        log.append("crowd", _table("a"))
        log.append("crowd", _table("b"))
    seg = _segments(tmp_path)[0]
    data = bytearray(seg.read_bytes())
    data[9 if where == "header" else HEADER.size + 40] ^= 0xFF       # inside frame 1
    seg.write_bytes(bytes(data))
    with pytest.raises(CorruptLogError):
        FeedLog(tmp_path)


def test_damage_in_a_sealed_segment_is_refused(tmp_path):
    with FeedLog(tmp_path, segment_bytes=1024) as log:
        for i in range(6):
            log.append("crowd", _table(f"s{i}", 20))
    segs = _segments(tmp_path)
    assert len(segs) >= 3
    with open(segs[0], "ab") as f:          # a torn tail is impossible in a sealed segment
        f.write(b"\0" * 10)
    with pytest.raises(CorruptLogError):
        FeedLog(tmp_path, segment_bytes=1024)


def test_segments_roll_and_replay_from_a_seq(tmp_path):
    with FeedLog(tmp_path, segment_bytes=2048) as log:
        for i in range(20):
            assert log.append("crowd", _table(f"r{i}", 10)) == i + 1
        assert len(_segments(tmp_path)) > 3
        assert [s for s, _, _ in log.replay(15)] == [15, 16, 17, 18, 19, 20]
    with FeedLog(tmp_path, segment_bytes=2048) as log:
        assert log.last_seq == 20 and log.recovery.frames == 20
        assert [s for s, _, _ in log.replay(21)] == []
        tables = [t for _, _, t in log.replay(7)]
        assert tables[0].column("event_id").to_pylist() == [f"r6{i}" for i in range(10)]


def test_torn_first_frame_of_a_new_segment(tmp_path):
    with FeedLog(tmp_path, segment_bytes=1024) as log:
        for i in range(4):
            log.append("crowd", _table(f"s{i}", 20))
        last = log.last_seq
    segs = _segments(tmp_path)
    assert int(segs[-1].stem.split("-")[1]) == last          # the last frame opened a segment
    with open(segs[-1], "r+b") as f:
        f.truncate(HEADER.size // 2)        # the newest segment holds only a torn frame
    with FeedLog(tmp_path, segment_bytes=1024) as log:
        assert log.last_seq == last - 1
        assert log.append("crowd", _table("z")) == last


def test_one_writer_at_a_time(tmp_path):
    with FeedLog(tmp_path):
        with pytest.raises(LogLockedError):
            FeedLog(tmp_path)
    with FeedLog(tmp_path) as log:          # free again after close
        assert log.last_seq == 0


def test_retention_deletes_only_covered_old_segments_and_a_restart_still_proves_nothing_is_missing(tmp_path):
    """The service prunes the feed log at each checkpoint: whole sealed segments the engine covers
    and older than the retention go; the rest replays as before, also after reopening; a prune cut
    short after FIRST is finished on open; a segment missing after FIRST is refused."""
    import time
    with FeedLog(tmp_path, segment_bytes=2048, compression="zstd") as log:
        for i in range(20):
            log.append("crowd", _table(f"p{i}", 10))
        segs = _segments(tmp_path)
        assert len(segs) > 3
        assert log.prune(covered_seq=20, before=time.time() - 3600) == 0          # too recent
        second = int(segs[1].stem.split("-")[1])
        assert log.prune(covered_seq=second - 2, before=time.time() + 1) == 0     # not covered
        third = int(segs[2].stem.split("-")[1])
        assert log.prune(covered_seq=third - 1, before=time.time() + 1) == 2      # the first two
        assert log.first_seq == third
        assert [s for s, _, _ in log.replay(0)] == list(range(third, 21))
        assert log.prune(covered_seq=10**6, before=time.time() + 1) == len(segs) - 3   # never the open one
        kept = log.first_seq
    with FeedLog(tmp_path, segment_bytes=2048) as log:
        assert log.last_seq == 20 and log.first_seq == kept
        assert [s for s, _, _ in log.replay(0)] == list(range(kept, 21))
        assert log.append("crowd", _table("after", 3)) == 21
    # a prune cut short: FIRST written, the older segments still there -> finished on open
    cut = tmp_path / "cut"
    with FeedLog(cut, segment_bytes=2048) as log:
        for i in range(20):
            log.append("crowd", _table(f"c{i}", 10))
    segs = _segments(cut)
    start = int(segs[2].stem.split("-")[1])
    (cut / "FIRST").write_text(f"{start}\n")
    with FeedLog(cut, segment_bytes=2048) as log:
        assert [s for s, _, _ in log.replay(0)] == list(range(start, 21))
        assert any("prune" in n for n in log.recovery.notes) and len(_segments(cut)) == len(segs) - 2
    # FIRST says 5 but the log starts later: segments are missing
    (tmp_path / "FIRST").write_text("5\n")
    with pytest.raises(CorruptLogError, match="missing"):
        FeedLog(tmp_path, segment_bytes=2048)
