"""A finished day of tick history merged into one part (History.compact_days): what the
operator's after-action queries read is the same, tick for tick, before and after; a merge cut
short doubles nothing; retention and crash recovery treat the merged day as the hours it was."""
from __future__ import annotations

import shutil
from datetime import datetime, timedelta, timezone

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
import pytest

from indicators.engine.history import DAY_DIR, History, _Row, parts

CST = timezone(timedelta(hours=8))
DAY0 = datetime(2025, 10, 1, tzinfo=CST)                       # local midnight
MS = lambda d: int(d.timestamp() * 1000)                       # noqa: E731
IDS = [f"fam.{i:03d}:zone=z{i % 7}@now" for i in range(90)][::-1]   # not in string order
STEP_S = 60


def _fill(h: History, hours: int, seed: int = 3) -> None:
    """``hours`` of one tick a minute from DAY0: a third of the values change each tick, some go
    missing for a while, the quality moves too; flushed every 20 ticks (3 parts an hour)."""
    rng = np.random.default_rng(seed)
    vals = rng.normal(size=len(IDS)).round(3)
    for k in range(hours * 3600 // STEP_S):
        change = rng.random(len(IDS)) < 0.3
        vals = np.where(change, rng.normal(size=len(IDS)).round(3), vals)
        v = vals.copy()
        if k % 50 < 5:
            v[:4] = np.nan
        q = np.where(np.isnan(v), 2, (k // 30) % 2).astype(np.int8)
        h.append(_Row(MS(DAY0) + k * STEP_S * 1000, v, q))
    h.flush()


def _all(h: History, hours: int, ids=None) -> pa.Table:
    return h.query(ids, DAY0, DAY0 + timedelta(hours=hours))


def _files(root):
    return sorted(str(f.relative_to(root)) for f in root.rglob("*.parquet"))


@pytest.fixture
def two_days(tmp_path):
    h = History(tmp_path / "h", IDS, flush_ticks=20, decimals=[3] * len(IDS))
    _fill(h, 54)                                               # two whole days and 6 hours of a third
    return h


def test_a_finished_day_becomes_one_part_and_reads_back_tick_for_tick(two_days, tmp_path):
    h, root = two_days, tmp_path / "h"
    end_of_day2 = MS(DAY0 + timedelta(days=2))
    assert h.compact_days(end_of_day2) == 0                    # its hours are not compacted yet
    h.compact(end_of_day2, limit=100)
    before = _all(h, 54)
    few = [IDS[3], IDS[40], IDS[-1]]
    before_few = _all(h, 54, few)
    assert len(parts(root)) == 48 + 6 * 3                      # an hour a part, today's hours in parts
    assert h.compact_days(end_of_day2, limit=1) == 1           # one a call
    assert h.compact_days(end_of_day2, limit=5) == 1
    assert h.compact_days(end_of_day2, limit=5) == 0
    files = _files(root)
    assert [f for f in files if f"/{DAY_DIR}/" in f] == [
        f"date=2025-10-01/{DAY_DIR}/part-{MS(DAY0)}-{MS(DAY0 + timedelta(days=1)) - STEP_S * 1000}.parquet",
        f"date=2025-10-02/{DAY_DIR}/part-{MS(DAY0 + timedelta(days=1))}-{end_of_day2 - STEP_S * 1000}.parquet"]
    assert not any(f.startswith(("date=2025-10-01/hour", "date=2025-10-02/hour")) for f in files)
    assert sum(f.startswith("date=2025-10-03/hour") for f in files) == 6 * 3      # the running day untouched
    after = _all(h, 54)
    assert after.equals(before)                                # values, missing values, quality, times
    assert _all(h, 54, few).equals(before_few)                 # a few ids read their row groups only
    # the day part keeps the row groups' id ranges, so a query of one id reads a fraction of it
    day = pq.ParquetFile(root / [f for f in files if f"/{DAY_DIR}/" in f][0])
    assert day.num_row_groups > 1
    # a range inside a merged day
    mid = h.query([IDS[5]], DAY0 + timedelta(hours=30, minutes=7), DAY0 + timedelta(hours=31))
    ms = before.column("tick_time").cast(pa.int64())
    want = before.filter(pc.and_(pc.equal(before.column("indicator"), IDS[5]), pc.and_(
        pc.greater_equal(ms, MS(DAY0 + timedelta(hours=30, minutes=7))),
        pc.less_equal(ms, MS(DAY0 + timedelta(hours=31))))))
    assert mid.num_rows == 54 and mid.equals(want)


def test_a_merge_cut_short_doubles_nothing_and_the_next_one_tidies_up(two_days, tmp_path):
    h, root = two_days, tmp_path / "h"
    end = MS(DAY0 + timedelta(days=1))
    h.compact(end, limit=100)
    want = _all(h, 54)
    saved = tmp_path / "saved"
    shutil.copytree(root / "date=2025-10-01", saved)
    assert h.compact_days(end) == 1
    for old in saved.rglob("*.parquet"):                       # kill -9 before the hours were deleted
        dest = root / "date=2025-10-01" / old.relative_to(saved)
        dest.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(old, dest)
    assert len(_files(root)) > len(parts(root))
    assert _all(h, 54).equals(want)
    assert h.compact(end, limit=100) == 0                      # hours of a merged day are not redone
    assert h.compact_days(end) == 0                            # tidies: deletes the covered hours
    assert not list((root / "date=2025-10-01").glob("hour=*"))
    assert _all(h, 54).equals(want)


def test_retention_drops_a_merged_day_once_all_of_it_is_past_and_recovery_keeps_it(two_days, tmp_path):
    h, root = two_days, tmp_path / "h"
    h.compact(MS(DAY0 + timedelta(days=2)), limit=100)
    h.compact_days(MS(DAY0 + timedelta(days=2)), limit=5)
    h.retention = timedelta(days=1)
    h.prune(DAY0 + timedelta(days=1, hours=23))                # day 1 ended 23 h before: kept
    assert (root / "date=2025-10-01" / DAY_DIR).is_dir()
    h.prune(DAY0 + timedelta(days=2, hours=1))                 # all of day 1 is 25 h back: dropped
    assert not (root / "date=2025-10-01").exists()
    assert (root / "date=2025-10-02" / DAY_DIR).is_dir()
    # a restart from a checkpoint inside the running day drops only what is after it
    cut = MS(DAY0 + timedelta(days=2, hours=3))
    h.drop_after(cut)
    assert (root / "date=2025-10-02" / DAY_DIR).is_dir()
    assert max(last for _, last, _ in parts(root)) <= cut


def test_a_day_with_a_part_of_another_catalog_stays_in_hours(tmp_path):
    """An hour written before an upgrade that dropped an indicator: merging would lose its
    values, so the day stays in hours (and reads as before)."""
    old = History(tmp_path / "h", IDS[:50] + ["gone.indicator"], flush_ticks=60, decimals=[3] * 51)
    _fill_hours = lambda h, a, b: [h.append(_Row(MS(DAY0) + k * STEP_S * 1000,   # noqa: E731
                                                 np.full(len(h.ids), float(k)), np.zeros(len(h.ids), np.int8)))
                                   for k in range(a, b)]
    _fill_hours(old, 0, 60)                                    # the first hour, before an upgrade
    old.flush()
    new = History(tmp_path / "h", IDS, flush_ticks=20, decimals=[3] * len(IDS))
    _fill_hours(new, 60, 24 * 60)
    new.flush()
    new.compact(MS(DAY0 + timedelta(days=1)), limit=100)
    before = _all(new, 24)
    assert new.compact_days(MS(DAY0 + timedelta(days=1))) == 0
    assert not (tmp_path / "h" / "date=2025-10-01" / DAY_DIR).exists()
    assert _all(new, 24).equals(before)
    assert before.num_rows == 24 * 60 * len(IDS)


def test_the_service_merges_a_finished_day_off_its_step_loop(tmp_path):
    """A checkpoint starts the merge of the days its engine checkpoint covered a day ago in a
    thread of its own (the last day stays in hours for the /config backtest); the history reads
    the same after it."""
    from indicators.feeds.simulator import Faults, simulate
    from indicators.service import Service, ServiceConfig
    start = datetime(2026, 10, 1, 11, 0, tzinfo=CST)
    s = Service(ServiceConfig(var=tmp_path, scenario="national-day", speed=60, simulate=False),
                publish=lambda snap: None)
    s.sim_clock.set(start)
    n = len(s.history.ids)
    rng = np.random.default_rng(0)
    first = datetime(2026, 9, 29, tzinfo=CST)                  # two whole days before the run
    for k in range(0, 2 * 24 * 60, 2):
        s.history.append(_Row(MS(first) + k * 60_000, rng.integers(0, 50, n).astype(float), np.zeros(n, np.int8)))
    s.history.flush()
    s.history.compact(MS(first + timedelta(days=2)), limit=100)
    wanted = [s.history.ids[0].as_py(), s.history.ids[700].as_py()]
    before = s.history.query(wanted, first, first + timedelta(days=2))
    for batch in simulate("national-day", start, timedelta(minutes=4), 7, faults=Faults.off()):
        s.sim_clock.set(batch.arrival)
        s.ingestor.submit(batch.kind, batch.payload, source="test")
    assert s.step() > 0
    s.checkpoint()
    assert s._day_merge is not None
    s._day_merge.join(60)
    for _ in range(3):                                         # one day a checkpoint
        s.checkpoint()
        s._day_merge.join(60)
    days = sorted(p.parent.parent.name for p in (tmp_path / "history").rglob(f"{DAY_DIR}/part-*.parquet"))
    assert days == ["date=2026-09-29"]                         # 09-30 ended 11 h before the run: not yet
    assert s.history.query(wanted, first, first + timedelta(days=2)).equals(before)
    assert before.num_rows == 2 * 24 * 30 * 2
    s.stop()


def test_every_indicator_a_slice_at_a_time_reads_as_the_whole_part_and_as_the_hours(two_days, tmp_path):
    """The backtest and `thresholds learn` read every indicator tick by tick: from a merged day an
    hour's slice at a time (the whole day would be ~1 GB at the catalog's size), the same ticks
    and values as from the hours, from any start."""
    from indicators.engine.history import part_matrix, part_slices
    from indicators.thresholds.backtest import history_ticks
    h, root = two_days, tmp_path / "h"
    h.compact(MS(DAY0 + timedelta(days=2)), limit=100)
    start = MS(DAY0 + timedelta(hours=13, minutes=31))
    read = lambda: [(t.time_ms, t.values.copy(), t.quality.copy()) for t in history_ticks(root, IDS, start)]  # noqa: E731
    hours = read()
    assert h.compact_days(MS(DAY0 + timedelta(days=2)), limit=5) == 2
    days = read()
    assert [t for t, _, _ in days] == [t for t, _, _ in hours]
    assert 0 <= hours[0][0] - start < STEP_S * 1000             # from the first tick at or after the start
    for (_, v1, q1), (_, v2, q2) in zip(hours, days):
        np.testing.assert_array_equal(v1, v2)
        np.testing.assert_array_equal(q1, q2)
    day = parts(root)[0][2]
    assert f"/{DAY_DIR}/" in str(day)
    pos = {i: k for k, i in enumerate(IDS)}
    whole = part_matrix(day, pos, len(IDS), 2)
    for at in (None, start):
        got = list(part_slices(day, pos, len(IDS), 2, start_ms=at, ticks_per_slice=97))
        assert len(got) > 5 and all(len(g[0]) <= 97 for g in got)
        k = 0 if at is None else int(np.searchsorted(whole[0], at))
        np.testing.assert_array_equal(np.concatenate([g[0] for g in got]), whole[0][k:])
        np.testing.assert_array_equal(np.vstack([g[1] for g in got]), whole[1][k:])
        np.testing.assert_array_equal(np.vstack([g[2] for g in got]), whole[2][k:])


def test_a_backtest_reading_while_the_service_compacts_gets_every_tick_once(tmp_path):
    """The /config backtest reads the running service's history while the service merges minutes
    into hours and hours into days: a part listed at the start may be gone when its turn comes.
    The reader lists again and goes on after the last tick it gave: every tick once, in order."""
    from indicators.thresholds.backtest import history_ticks
    h = History(tmp_path / "h", IDS, flush_ticks=20, decimals=[3] * len(IDS))
    _fill(h, 50)
    root = tmp_path / "h"
    start = MS(DAY0 + timedelta(hours=2, minutes=5))
    want = [(t.time_ms, t.values.copy(), t.quality.copy()) for t in history_ticks(root, IDS, start)]
    got = []
    reader = history_ticks(root, IDS, start)
    for k, t in enumerate(reader):
        got.append((t.time_ms, t.values.copy(), t.quality.copy()))
        if k == 30:                               # inside the first hour's parts: compact every hour
            h.compact(MS(DAY0 + timedelta(hours=50)), limit=100)
        if k == 24 * 60:                          # inside the second day: merge both finished days
            assert h.compact_days(MS(DAY0 + timedelta(days=2)), limit=5) == 2
    assert [t for t, _, _ in got] == [t for t, _, _ in want]
    for (_, v1, q1), (_, v2, q2) in zip(got, want):
        np.testing.assert_array_equal(v1, v2)
        np.testing.assert_array_equal(q1, q2)
