"""Crash durability beyond kill -9 (issue 16): a disk that lost the end of a file.

The feed log is cut at every byte offset of its last frame and at offsets in the middle;
reopening keeps every complete frame before the cut, exactly once, and says how many bytes it
dropped.  The engine checkpoint cut anywhere (or taken with another catalog) does not stop the
service: it is put aside and the state is rebuilt from the feed log, to the same values."""
from __future__ import annotations

import random
import shutil
from datetime import datetime, timedelta, timezone

import pyarrow as pa
import pytest

from indicators.feeds.log import FeedLog

START = datetime(2026, 10, 1, 19, 0, tzinfo=timezone(timedelta(hours=8)))


def _table(i: int, rows: int = 3) -> pa.Table:
    return pa.table({"event_id": [f"e{i}-{j}" for j in range(rows)], "value": [float(i)] * rows})


@pytest.fixture(scope="module")
def written(tmp_path_factory):
    d = tmp_path_factory.mktemp("log")
    with FeedLog(d) as log:
        ends = []
        for i in range(1, 7):
            log.append("crowd", _table(i, rows=2 + i))
            ends.append((d / sorted(p.name for p in d.glob("seg-*.log"))[-1]).stat().st_size)
    seg = sorted(d.glob("seg-*.log"))[-1]
    return d, seg.name, [0] + ends            # frame k (1-based) spans ends[k-1] .. ends[k]


def _cut(src, seg, at, dst):
    shutil.copytree(src, dst)
    (dst / "LOCK").unlink(missing_ok=True)
    with open(dst / seg, "r+b") as f:
        f.truncate(at)


def _reopen(d):
    with FeedLog(d) as log:
        return [(seq, kind, t.column("event_id").to_pylist()) for seq, kind, t in log.replay(0)], log.recovery


def test_a_cut_anywhere_in_the_last_frame_keeps_every_frame_before_it(tmp_path, written):
    src, seg, ends = written
    first, last = ends[-2], ends[-1]
    for at in range(first, last):                    # every byte offset of the last frame
        d = tmp_path / f"c{at}"
        _cut(src, seg, at, d)
        frames, rec = _reopen(d)
        assert [s for s, _, _ in frames] == [1, 2, 3, 4, 5], at
        assert rec.dropped_bytes == at - first, at
        assert (d / seg).stat().st_size == first       # the torn tail is gone from the file too
        with FeedLog(d) as log:                        # and the log goes on from there
            assert log.append("crowd", _table(9)) == 6
        shutil.rmtree(d)


def test_a_cut_in_the_middle_keeps_what_came_before_it_and_says_what_it_dropped(tmp_path, written):
    src, seg, ends = written
    rng = random.Random(7)
    for at in sorted(rng.sample(range(1, ends[-2]), 40)):
        d = tmp_path / f"m{at}"
        _cut(src, seg, at, d)
        frames, rec = _reopen(d)
        whole = sum(1 for e in ends[1:] if e <= at)    # frames that end before the cut
        assert [s for s, _, _ in frames] == list(range(1, whole + 1)), at
        assert [len(ids) for _, _, ids in frames] == [2 + i for i in range(1, whole + 1)]
        assert rec.dropped_bytes == at - ends[whole], at
        assert any("torn tail" in n for n in rec.notes) == (at > ends[whole])
        shutil.rmtree(d)


# --------------------------------------------------------------------------- the engine checkpoint
def _service(var):
    from indicators.service import Service, ServiceConfig
    cfg = ServiceConfig(var=var, scenario="national-day", speed=60, simulate=False, start=START)
    return Service(cfg)


def _close(s):
    s.alert_store.close()
    s.feed_log.close()
    s.dead.close()


@pytest.fixture(scope="module")
def checkpointed(tmp_path_factory):
    from indicators.feeds.simulator import Faults, simulate
    var = tmp_path_factory.mktemp("var")
    s = _service(var)
    s.sim_clock.set(START)
    for batch in simulate("national-day", START, timedelta(minutes=8), 7, faults=Faults.off()):
        s.sim_clock.set(batch.arrival)
        s.ingestor.submit(batch.kind, batch.payload, source="test")
    s.step()
    s.checkpoint()
    _close(s)
    good = _service(var)                                   # the values a good checkpoint restores
    want = (good.engine.last_tick, good.engine.asset_readings("fire_hydrant-road_yuejiang_west-0001"))
    _close(good)
    assert want[1], "the hydrant has readings to compare"
    return var, want


@pytest.mark.parametrize("fraction", [0.0, 0.1, 0.5, 0.9, 0.999, None])
def test_a_damaged_engine_checkpoint_is_put_aside_and_the_state_rebuilt_from_the_log(tmp_path, checkpointed,
                                                                                      fraction):
    src, (last_tick, readings) = checkpointed
    var = tmp_path / "var"
    shutil.copytree(src, var)
    (var / "feeds" / "LOCK").unlink(missing_ok=True)
    ck = var / "engine.ckpt"
    if fraction is None:                                   # bytes flipped in the middle, length kept
        b = bytearray(ck.read_bytes())
        b[len(b) // 2: len(b) // 2 + 64] = bytes(64)
        ck.write_bytes(bytes(b))
    else:
        with open(ck, "r+b") as f:
            f.truncate(int(ck.stat().st_size * fraction))
    s = _service(var)
    try:
        notes = s.recovery_notes
        if notes:                                          # unreadable: rebuilt from the log
            assert "rebuilt from the feed log" in notes[0] and list(var.glob("engine.ckpt.unusable-*"))
        else:                                              # zeroed bytes inside an unused zip member
            assert fraction is None
        s.step()
        assert s.engine.last_tick >= last_tick
        got = s.engine.asset_readings("fire_hydrant-road_yuejiang_west-0001")
        assert {k: round(v[0], 6) for k, v in got.items()} == {k: round(v[0], 6) for k, v in readings.items()}
        assert "recovered_at_start" in s.readiness()
    finally:
        _close(s)
