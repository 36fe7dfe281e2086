"""The indicator engine: order independence, duplicates, lateness, checkpoints, changes, history, replay, kernels."""
from __future__ import annotations

from datetime import datetime, timedelta, timezone

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from indicators.catalog import load_catalog
from indicators.engine import IDLE, NO_DATA, OK, STALE, Engine
from indicators.engine.history import History
from indicators.engine.kernels import SeenSet, hash_strings, last_per_entity
from indicators.engine.synthetic import arrival_order, synthetic_feeds, to_table

START = datetime(2025, 10, 1, 15, 55, tzinfo=timezone.utc)       # 23:55 local: the run crosses midnight
TICK = timedelta(seconds=1)
LATE = timedelta(seconds=20)
ANCHOR = START - timedelta(milliseconds=1)      # the tick grid starts here in every run (ticks after it)


@pytest.fixture(scope="module")
def catalog(inventory):
    return load_catalog(inventory=inventory)


@pytest.fixture(scope="module")
def feeds(catalog):
    return synthetic_feeds(catalog, START, 480, seed=11)


def _end(tables) -> datetime:
    hi = max(int(np.asarray(t.column("event_time").cast(pa.int64())).max()) for t in tables.values())
    return datetime(1970, 1, 1, tzinfo=timezone.utc) + timedelta(milliseconds=hi)


def run(engine: Engine, batches, end: datetime, *, seqs=None) -> list:
    ticks = []
    far = end + timedelta(days=1)
    for i, (kind, table) in enumerate(batches):
        engine.ingest(kind, table, feed_seq=None if seqs is None else seqs[i])
        ticks.extend(engine.ticks(far))
    engine.heartbeat(end + engine.lateness_ms * timedelta(milliseconds=1))
    ticks.extend(engine.ticks(end))
    return ticks


def same_ticks(a: list, b: list) -> None:
    assert [t.time_ms for t in a] == [t.time_ms for t in b]
    for x, y in zip(a, b):
        np.testing.assert_array_equal(x.values, y.values, err_msg=f"tick {x.time}")
        np.testing.assert_array_equal(x.quality, y.quality, err_msg=f"tick {x.time}")


def shuffled_with_duplicates(tables, lateness_ms: int, seed: int):
    """Every event arrives up to ``lateness`` after its time, in random order, some twice, in random batches."""
    rng = np.random.default_rng(seed)
    rows = []
    for kind, t in tables.items():
        t = t.drop_columns(["arrival_time"])
        n = t.num_rows
        et = np.asarray(t.column("event_time").cast(pa.int64()))
        dup = rng.random(n) < 0.05
        idx = np.concatenate([np.arange(n), np.flatnonzero(dup)])
        arrival = et[idx] + rng.integers(0, lateness_ms // 2, len(idx))
        rows.append((kind, t.take(idx), arrival))
    batches = []
    for kind, t, arrival in rows:
        order = np.argsort(arrival, kind="stable")
        t, arrival = t.take(order), arrival[order]
        # deliveries every 2 s of arrival time, each split again at random: a row waits < 2 s for its batch
        bucket = arrival // 2000
        for b in np.unique(bucket):
            idx = np.flatnonzero(bucket == b)
            rng.shuffle(idx)                                  # out of order inside a delivery
            for part in np.array_split(idx, int(rng.integers(1, 4))):
                if len(part):
                    batches.append((int(arrival[part].max()), float(rng.random()), kind, t.take(part)))
    batches.sort(key=lambda x: (x[0], x[1]))
    return [(k, t) for _, _, k, t in batches]


@pytest.fixture(scope="module")
def in_order(catalog, feeds):
    eng = Engine(catalog, tick=TICK, allowed_lateness=LATE, start=ANCHOR)
    return run(eng, arrival_order(feeds, 1000), _end(feeds)), eng


def test_shuffled_within_lateness_with_duplicates_gives_identical_values(catalog, feeds, in_order):
    ticks, _ = in_order
    eng = Engine(catalog, tick=TICK, allowed_lateness=LATE, start=ANCHOR)
    batches = shuffled_with_duplicates(feeds, LATE // timedelta(milliseconds=1), seed=5)
    got = run(eng, batches, _end(feeds))
    assert len(ticks) > 400
    same_ticks(ticks, got)
    assert sum(s["duplicates"] for s in eng.stats.values()) > 100
    assert sum(s["late"] for s in eng.stats.values()) == 0
    q = ticks[-1].quality
    assert np.mean(q == OK) > 0.9
    # idle = nothing expected (a bus route out of service, lamps by day): not a missing value
    ok = np.mean((q == OK) | (q == IDLE))
    assert ok > 0.95, "the synthetic feeds should give almost every indicator a value"


def test_checkpoint_restore_then_continue_equals_uninterrupted(catalog, feeds, in_order, tmp_path):
    ticks, _ = in_order
    batches = list(arrival_order(feeds, 1000))
    half = len(batches) // 2
    eng = Engine(catalog, tick=TICK, allowed_lateness=LATE, start=ANCHOR)
    far = _end(feeds) + timedelta(days=1)
    before = []
    for i, (kind, t) in enumerate(batches[:half]):
        eng.ingest(kind, t, feed_seq=i + 1)
        before.extend(eng.ticks(far))
    covered = eng.checkpoint(tmp_path / "engine.ckpt")
    assert covered == half
    assert not list(tmp_path.glob(".*.tmp")), "no temporary file left behind"

    fresh = Engine(catalog, tick=TICK, allowed_lateness=LATE, start=ANCHOR)
    assert fresh.restore(tmp_path / "engine.ckpt") == half
    # a restart replays the log from too early: batches the checkpoint covers are skipped
    after = run(fresh, batches, _end(feeds), seqs=list(range(1, len(batches) + 1)))
    same_ticks(ticks, before + after)


def test_restore_keeps_duplicate_detection(catalog, feeds, tmp_path):
    batches = list(arrival_order(feeds, 1000))[:40]
    eng = Engine(catalog, tick=TICK, allowed_lateness=timedelta(minutes=10), start=ANCHOR)
    for kind, t in batches:
        eng.ingest(kind, t)
    eng.checkpoint(tmp_path / "c.ckpt")
    fresh = Engine(catalog, tick=TICK, allowed_lateness=timedelta(minutes=10), start=ANCHOR)
    fresh.restore(tmp_path / "c.ckpt")
    kind, t = batches[-1]
    r = fresh.ingest(kind, t)
    assert r.accepted == 0 and r.duplicates == t.num_rows


def test_restore_refuses_another_catalog_or_tick(catalog, tmp_path):
    eng = Engine(catalog, tick=TICK)
    eng.checkpoint(tmp_path / "c.ckpt")
    with pytest.raises(ValueError, match="another tick"):
        Engine(catalog, tick=timedelta(seconds=2)).restore(tmp_path / "c.ckpt")


def _crowd(catalog, rows):
    """A crowd table from (event id, ms, zone, count) rows."""
    return to_table("crowd", {"event_id": np.array([r[0] for r in rows], dtype=object),
                              "event_time": [r[1] for r in rows], "source": np.array(["t"] * len(rows), dtype=object),
                              "zone_id": np.array([r[2] for r in rows], dtype=object),
                              "cell_id": np.array([None] * len(rows), dtype=object),
                              "count": [r[3] for r in rows]})


def test_late_events_are_counted_and_never_applied(catalog):
    t0 = (START - datetime(1970, 1, 1, tzinfo=timezone.utc)) // timedelta(milliseconds=1)
    eng = Engine(catalog, tick=TICK, allowed_lateness=timedelta(seconds=5))
    i = catalog.index("crowd.count:zone=west_plaza@now")
    eng.ingest("crowd", _crowd(catalog, [("a", t0, "west_plaza", 100), ("b", t0 + 30_000, "west_plaza", 200)]))
    tick = eng.advance(START + timedelta(minutes=1))
    assert tick.time_ms == t0 + 25_000 and tick.values[i] == 100
    r = eng.ingest("crowd", _crowd(catalog, [("c", t0 + 10_000, "west_plaza", 999),     # older than the watermark
                                              ("d", t0 + 26_000, "west_plaza", 300)]))   # within the lateness
    assert (r.accepted, r.late) == (1, 1) and eng.stats["crowd"]["late"] == 1
    eng.heartbeat(START + timedelta(minutes=2))
    ticks = list(eng.ticks(START + timedelta(seconds=40)))
    by_t = {t.time_ms - t0: t.values[i] for t in ticks}
    assert by_t[26_000] == 300 and by_t[30_000] == 200 and 999 not in by_t.values()


def test_behind_the_ticks_the_service_engine_applies_at_the_next_tick_what_the_ingestor_accepted(catalog):
    """In the service the ingestor alone judges lateness (one rule, docs/feeds.md): an event it
    accepted whose tick the engine has computed already is applied at the next tick and counted
    ``behind`` - not dropped, as an offline replay's engine (its own judge) would."""
    t0 = (START - datetime(1970, 1, 1, tzinfo=timezone.utc)) // timedelta(milliseconds=1)
    i = catalog.index("crowd.count:zone=west_plaza@now")
    eng = Engine(catalog, tick=TICK, allowed_lateness=timedelta(seconds=5), behind="next_tick")
    eng.ingest("crowd", _crowd(catalog, [("a", t0, "west_plaza", 100), ("b", t0 + 30_000, "west_plaza", 200)]))
    tick = eng.advance(START + timedelta(minutes=1))
    assert tick.time_ms == t0 + 25_000 and tick.values[i] == 100
    r = eng.ingest("crowd", _crowd(catalog, [("c", t0 + 10_000, "west_plaza", 999),     # its tick is computed
                                              ("d", t0 + 28_000, "west_plaza", 300)]))   # its tick is not
    assert (r.accepted, r.late) == (2, 0) and eng.stats["crowd"]["behind"] == 1
    eng.heartbeat(START + timedelta(minutes=2))
    by_t = {t.time_ms - t0: t.values[i] for t in eng.ticks(START + timedelta(seconds=40))}
    assert by_t[26_000] == 999 and by_t[28_000] == 300 and by_t[30_000] == 200   # 999: at the next tick
    with pytest.raises(ValueError):
        eng.ingest_many([("crowd", _crowd(catalog, [("e", t0 + 40_000, "west_plaza", 1)]))])


def _warning(rows):
    """A warning table from (event id, ms, signal, colour, status) rows."""
    return to_table("warning", {"event_id": np.array([r[0] for r in rows], dtype=object),
                                "event_time": [r[1] for r in rows], "source": np.array(["t"] * len(rows), dtype=object),
                                "signal": np.array([r[2] for r in rows], dtype=object),
                                "colour": np.array([r[3] for r in rows], dtype=object),
                                "status": np.array([r[4] for r in rows], dtype=object)})


def test_behind_the_ticks_an_older_message_does_not_replace_a_newer_one(catalog):
    """The service's engine applies an event whose tick is computed at the next tick; a message
    that is older than the one its signal (or zone, sensor, case) holds is no newer value: a
    yellow rainstorm signal sent before the red one but delivered after it must not downgrade
    the wall to yellow.  An older message of another signal, or a newer one, still applies."""
    t0 = (START - datetime(1970, 1, 1, tzinfo=timezone.utc)) // timedelta(milliseconds=1)
    rain = catalog.index("warning.level:area=canton_tower,signal=rainstorm@now")
    fog = catalog.index("warning.level:area=canton_tower,signal=fog@now")
    crowd = catalog.index("crowd.count:zone=west_plaza@now")
    eng = Engine(catalog, tick=TICK, allowed_lateness=timedelta(seconds=5), behind="next_tick")
    eng.ingest("warning", _warning([("r-red", t0 + 20_000, "rainstorm", "red", "issued")]))
    eng.ingest("crowd", _crowd(catalog, [("n", t0 + 20_000, "west_plaza", 500)]))
    eng.ingest("crowd", _crowd(catalog, [("x", t0 + 40_000, "east_plaza", 1)]))      # the clock goes on
    eng.advance(START + timedelta(minutes=1))                                          # ticks to 35 s done
    eng.ingest("warning", _warning([("r-yellow", t0 + 12_000, "rainstorm", "yellow", "updated"),  # older
                                    ("f-blue", t0 + 12_000, "fog", "blue", "issued")]))
    eng.ingest("crowd", _crowd(catalog, [("o", t0 + 15_000, "west_plaza", 90)]))     # older than 500
    eng.heartbeat(START + timedelta(minutes=2))
    last = [t for t in eng.ticks(START + timedelta(seconds=45))][-1]
    assert last.values[rain] == 5 and last.values[fog] == 2 and last.values[crowd] == 500
    eng.ingest("warning", _warning([("r-orange", t0 + 50_000, "rainstorm", "orange", "updated")]))  # newer
    eng.heartbeat(START + timedelta(minutes=3))
    assert [t for t in eng.ticks(START + timedelta(seconds=60))][-1].values[rain] == 4


def test_an_event_at_the_watermark_is_late_whether_or_not_advance_ran(catalog):
    t0 = (START - datetime(1970, 1, 1, tzinfo=timezone.utc)) // timedelta(milliseconds=1)
    i = catalog.index("crowd.count:zone=west_plaza@now")
    finals = []
    for advance_between in (True, False):
        eng = Engine(catalog, tick=TICK, allowed_lateness=timedelta(seconds=120))
        eng.ingest("crowd", _crowd(catalog, [("a", t0 + 10_000, "west_plaza", 100),
                                              ("b", t0 + 200_000, "west_plaza", 100)]))
        if advance_between:
            eng.advance(START + timedelta(minutes=10))
        r = eng.ingest("crowd", _crowd(catalog, [("c", t0 + 80_000, "west_plaza", 5000)]))   # == watermark
        assert r.late == 1
        eng.heartbeat(START + timedelta(minutes=10))
        finals.append([t.values[i] for t in eng.ticks(START + timedelta(seconds=100))][-1])
    assert finals[0] == finals[1] == 100


def test_unknown_ids_are_counted(catalog):
    eng = Engine(catalog, tick=TICK)
    t0 = (START - datetime(1970, 1, 1, tzinfo=timezone.utc)) // timedelta(milliseconds=1)
    r = eng.ingest("crowd", _crowd(catalog, [("a", t0, "atlantis", 5), ("b", t0, "west_plaza", 5)]))
    assert r.unknown == 1 and r.accepted == 2


def test_staleness_follows_time_without_events(catalog):
    t0 = (START - datetime(1970, 1, 1, tzinfo=timezone.utc)) // timedelta(milliseconds=1)
    eng = Engine(catalog, tick=TICK, allowed_lateness=timedelta(0))
    i = catalog.index("crowd.count:zone=west_plaza@now")
    eng.ingest("crowd", _crowd(catalog, [("a", t0, "west_plaza", 100)]))
    assert eng.advance(START).quality[i] == OK
    fresh_s = catalog.indicators[i].family.freshness_s
    eng.heartbeat(START + timedelta(seconds=fresh_s + 5))
    ticks = list(eng.ticks(START + timedelta(seconds=fresh_s + 5)))
    q = {t.time_ms - t0: t.quality[i] for t in ticks}
    assert q[fresh_s * 1000] == OK and q[fresh_s * 1000 + 1000] == STALE
    assert ticks[-1].values[i] == 100, "a stale value keeps its last value"
    j = catalog.index("crowd.count:zone=tower_base@now")
    assert ticks[-1].quality[j] == NO_DATA and np.isnan(ticks[-1].values[j])


def test_changes_and_subscribers_get_only_what_changed(catalog):
    t0 = (START - datetime(1970, 1, 1, tzinfo=timezone.utc)) // timedelta(milliseconds=1)
    eng = Engine(catalog, tick=TICK, allowed_lateness=timedelta(0))
    got = []
    eng.subscribe(got.append)
    eng.ingest("crowd", _crowd(catalog, [("a", t0, "west_plaza", 100)]))
    eng.advance(START)
    first = eng.changes()
    assert len(first) == len(catalog)                       # everything is new the first time
    assert len(eng.changes()) == 0                          # nothing since
    eng.ingest("crowd", _crowd(catalog, [("b", t0 + 1000, "west_plaza", 120)]))
    tick = eng.advance(START + timedelta(seconds=1))
    ch = eng.changes()
    names = {catalog.indicators[k].family.id for k in ch.index}
    assert "crowd.count" in names and "crowd.load_rate" in names and "video.events" not in names
    assert set(got[-1].index) == set(tick.changed) and len(got[-1]) < 200
    i = catalog.index("crowd.count:zone=west_plaza@now")
    assert ch.values[list(ch.index).index(i)] == 120


def test_history_persists_queries_and_prunes(catalog, in_order, tmp_path):
    ticks, _ = in_order
    h = History(tmp_path / "hist", catalog.ids, retention=timedelta(hours=2), flush_ticks=100)
    h.extend(ticks)
    h.flush()
    parts = sorted(p.relative_to(tmp_path / "hist").parts[:2] for p in (tmp_path / "hist").rglob("*.parquet"))
    assert ("date=2025-10-01", "hour=23") in parts and ("date=2025-10-02", "hour=00") in parts
    ids = ["crowd.count:zone=west_plaza@now", "video.events:zone=west_plaza,algorithm=fall@15m"]
    t = h.query(ids, ticks[10].time, ticks[20].time)
    assert t.num_rows == 2 * 11
    got = t.filter(pa.compute.equal(t.column("indicator"), ids[0])).column("value").to_numpy(zero_copy_only=False)
    want = [ticks[k].values[catalog.index(ids[0])] for k in range(10, 21)]
    np.testing.assert_array_equal(got, want)
    assert set(t.column("quality").to_pylist()) <= {"ok", "stale", "no_data"}
    assert h.prune(ticks[-1].time + timedelta(hours=2, minutes=30)) == 1      # the 23:00 hour is gone
    assert h.query(ids, ticks[0].time, ticks[20].time).num_rows == 0


def test_history_stores_changes_only_and_gives_every_tick_back_exactly(catalog, in_order, tmp_path):
    """A part holds its first tick whole and then only what changed; read back, every tick of
    every indicator is what the engine computed (NaN as NaN), and parts in the older every-tick
    form still read."""
    from indicators.engine.history import ticks_table
    ticks, _ = in_order
    ids = pa.array(catalog.ids, pa.string())
    h = History(tmp_path / "hist", catalog.ids, flush_ticks=60)
    h.extend(ticks)
    h.flush()

    def canon(t):
        t = t.select(["indicator", "tick_time", "value", "quality"])
        t = pa.table({"indicator": t.column("indicator").cast(pa.string()), "tick_time": t.column("tick_time"),
                      "value": t.column("value"), "quality": t.column("quality").cast(pa.string())})
        return t.sort_by([("tick_time", "ascending"), ("indicator", "ascending")])

    want = canon(ticks_table(ticks, ids))
    got = canon(h.query(None, ticks[0].time, ticks[-1].time))
    assert got.num_rows == want.num_rows == len(ticks) * len(catalog.ids)
    for col in ("indicator", "tick_time", "quality"):
        assert got.column(col).equals(want.column(col)), col
    np.testing.assert_array_equal(got.column("value").to_numpy(zero_copy_only=False),
                                  want.column("value").to_numpy(zero_copy_only=False))
    stored = sum(pq.read_metadata(f).num_rows for f in (tmp_path / "hist").rglob("*.parquet"))
    assert stored < want.num_rows / 3, (stored, want.num_rows)      # most values do not change each tick
    # an every-tick part written before this format
    old = tmp_path / "old" / "date=2025-10-01" / "hour=23"
    old.mkdir(parents=True)
    few = [t for t in ticks if t.time_ms < ticks[0].time_ms + 20_000]
    pq.write_table(ticks_table(few, ids), old / f"part-{few[0].time_ms}-{few[-1].time_ms}.parquet")
    back = History(tmp_path / "old", catalog.ids).query(None, few[0].time, few[-1].time)
    np.testing.assert_array_equal(canon(back).column("value").to_numpy(zero_copy_only=False),
                                  canon(ticks_table(few, ids)).column("value").to_numpy(zero_copy_only=False))


def test_replay_writes_every_tick(catalog, feeds, in_order, tmp_path):
    from indicators.engine.replay import replay
    rec = tmp_path / "rec"
    rec.mkdir()
    small = synthetic_feeds(catalog, START, 120, seed=3, max_delay_ms=5000)
    for kind, t in small.items():
        pq.write_table(t, rec / f"{kind}.parquet")
    seen = []
    r = replay(rec, tmp_path / "out.parquet", tick=TICK, lateness=LATE, catalog=catalog, progress=False,
               on_tick=seen.append)
    out = pq.read_table(tmp_path / "out.parquet")
    assert r["ticks"] == len(seen) >= 110 and out.num_rows == len(seen) * len(catalog)
    assert out.schema.names == ["indicator", "tick_time", "value", "quality"]
    last = out.filter(pa.compute.equal(out.column("tick_time"), out.column("tick_time")[-1]))
    assert last.num_rows == len(catalog)


# ------------------------------------------------------------- kernels
def test_id_hash_is_stable_across_versions():
    # checkpoints remember hashes of event ids: changing the hash breaks de-duplication across a restart
    h = hash_strings(pa.array(["crowd:west_plaza@1759334400000", "", "a"]), 3)
    assert h.tolist() == HASHES


HASHES = [11219331047684618584, 15689549541921401604, 12269968357516741004]


@settings(max_examples=60, deadline=None)
@given(st.lists(st.lists(st.integers(0, 40), max_size=30), min_size=1, max_size=8))
def test_seen_set_agrees_with_a_python_set(batches):
    s = SeenSet()
    seen: set[int] = set()
    for b in batches:
        h = np.array([x * 0x9E3779B97F4A7C15 % (2 ** 64) or 1 for x in b], dtype=np.uint64)
        new = s.add(h, np.zeros(len(h), dtype=np.int64))
        want = []
        for x in h.tolist():
            want.append(x not in seen)
            seen.add(x)
        assert new.tolist() == want


def test_seen_set_remembers_the_previous_generation_through_its_filter():
    """60,000 ids in the previous generation set a good part of its filter's bits: a re-sent one
    must be found behind a set bit, a fresh one (clear bit or a false positive) taken as new."""
    g = np.random.default_rng(11)
    old, fresh = (g.integers(1, 2 ** 63, 60_000, dtype=np.int64).astype(np.uint64) for _ in range(2))
    s = SeenSet()
    assert s.add(old, np.full(len(old), 1_000, dtype=np.int64)).all()
    s.rotate(500)                                            # the generation becomes the previous one
    assert s.prev.used == 60_000 and s.cur.used == 0
    mixed = np.concatenate([fresh[:30_000], old[::2], fresh[:10]])
    new = s.add(mixed, np.full(len(mixed), 3_000, dtype=np.int64))
    assert new[:30_000].all() and not new[30_000:].any()
    assert not s.add(old, np.full(len(old), 3_000, dtype=np.int64)).any()
    assert s.add(fresh[30_000:], np.full(30_000, 3_000, dtype=np.int64)).all()


@settings(max_examples=80, deadline=None)
@given(st.lists(st.tuples(st.integers(0, 5), st.integers(0, 1000)), min_size=1, max_size=60, unique_by=lambda x: x))
def test_last_per_entity_picks_the_largest_key(pairs):
    ent = np.array([p[0] for p in pairs], dtype=np.intp)
    key = np.array([p[1] for p in pairs], dtype=np.int64)
    win = last_per_entity(ent, key, 6)
    best = {}
    for e, k in pairs:
        best[e] = max(best.get(e, -1), k)
    assert sorted(zip(ent[win].tolist(), key[win].tolist())) == sorted(best.items())


def _values(t):
    t = t.sort_by([("tick_time", "ascending"), ("indicator", "ascending")])
    return (t.column("indicator").to_pylist(), t.column("tick_time").to_pylist(),
            t.column("value").to_numpy(zero_copy_only=False), t.column("quality").to_pylist())


def test_quantised_history_keeps_each_value_to_half_its_last_decimal_and_compacts_an_hour_into_one_part(
        catalog, in_order, tmp_path):
    """The service's history: values to 3 decimals of their unit (6 for fine units), rows by
    indicator, and a finished hour rewritten as one part; read back, every tick is there once,
    within half a step of what the engine computed, and compaction changes nothing read."""
    from indicators.engine.history import unit_decimals
    ticks, _ = in_order
    decimals = [unit_decimals(i.family.unit) for i in catalog.indicators]
    assert {3, 6} <= set(decimals)
    exact = History(tmp_path / "exact", catalog.ids, flush_ticks=30)
    h = History(tmp_path / "q", catalog.ids, flush_ticks=30, decimals=decimals)
    for x in (exact, h):
        x.extend(ticks)
        x.flush()
    ind, tt, want, qual = _values(exact.query(None, ticks[0].time, ticks[-1].time))
    ind2, tt2, got, qual2 = _values(h.query(None, ticks[0].time, ticks[-1].time))
    assert ind2 == ind and tt2 == tt and qual2 == qual
    np.testing.assert_array_equal(np.isnan(got), np.isnan(want))
    step = 10.0 ** -np.array([decimals[catalog.index(i)] for i in ind])
    ok = ~np.isnan(want)
    assert (np.abs(got[ok] - want[ok]) <= step[ok] / 2 + 1e-12).all()
    before = h.query(None, ticks[0].time, ticks[-1].time)
    files = sorted((tmp_path / "q").rglob("*.parquet"))
    assert len(files) > 2
    end_ms = ticks[-1].time_ms + 3_600_000
    assert h.compact(end_ms, limit=10) >= 1
    hours = {f.parent for f in files}
    assert all(len(list(d.glob("*.parquet"))) == 1 for d in hours)       # one part an hour
    after = h.query(None, ticks[0].time, ticks[-1].time)
    assert _values(after)[:2] == _values(before)[:2]
    np.testing.assert_array_equal(_values(after)[2], _values(before)[2])
    # a few ids read only their row groups, and read the same
    assert max(pq.ParquetFile(f).num_row_groups for f in (tmp_path / "q").rglob("*.parquet")) > 1
    few = ["crowd.count:zone=west_plaza@now", "video.events:zone=west_plaza,algorithm=fall@15m", catalog.ids[-1]]
    sub = h.query(few, ticks[0].time, ticks[-1].time)
    whole = after.filter(pa.compute.is_in(after.column("indicator"), pa.array(few)))
    assert sub.num_rows == whole.num_rows == 3 * len(ticks)
    assert _values(sub)[:2] == _values(whole)[:2] and _values(sub)[3] == _values(whole)[3]
    np.testing.assert_array_equal(_values(sub)[2], _values(whole)[2])
    size = lambda d: sum(f.stat().st_size for f in d.rglob("*.parquet"))   # noqa: E731
    assert size(tmp_path / "q") < size(tmp_path / "exact") / 2, (size(tmp_path / "q"), size(tmp_path / "exact"))


def test_a_compaction_cut_short_leaves_no_tick_twice_and_the_next_one_tidies_up(catalog, in_order, tmp_path):
    """kill -9 between writing an hour's new part and deleting its old parts: readers skip the
    covered parts, the next compaction deletes them."""
    import shutil
    from indicators.engine.history import parts
    ticks, _ = in_order
    h = History(tmp_path / "h", catalog.ids, flush_ticks=40, decimals=[3] * len(catalog.ids))
    h.extend(ticks)
    h.flush()
    want = h.query(None, ticks[0].time, ticks[-1].time)
    saved = tmp_path / "saved"
    shutil.copytree(tmp_path / "h", saved)
    h.compact(ticks[-1].time_ms + 3_600_000, limit=10)
    for old in saved.rglob("*.parquet"):                   # the old parts back, as if never deleted
        shutil.copy(old, tmp_path / "h" / old.relative_to(saved))
    assert len(list((tmp_path / "h").rglob("*.parquet"))) > len(parts(tmp_path / "h"))
    got = h.query(None, ticks[0].time, ticks[-1].time)
    assert got.num_rows == want.num_rows
    np.testing.assert_array_equal(_values(got)[2], _values(want)[2])
    h.compact(ticks[-1].time_ms + 3_600_000, limit=10)
    assert len(list((tmp_path / "h").rglob("*.parquet"))) == len(parts(tmp_path / "h"))


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_the_compiled_facility_judgement_is_the_rule_written_out(seed):
    """Per facility entity (asset, metric): judged when its row exists, its schedule is open, it
    is not under an open work order (maintenance reading >= 0.5) and its reading was taken since
    the later of the window's opening and its return to service, at most its grace old; silent
    when expected but not judged and the window (or the return) is older than the grace; else it
    waits. The judgement changes by itself at the earliest of the next schedule change, a judged
    reading turning stale and a waiting entity's grace running out."""
    from indicators.engine.compiled import facility_judge
    g = np.random.default_rng(seed)
    n, R, S, T = 3000, 40, 4, 10_000_000
    r = np.where(g.random(n) < 0.1, -1, g.integers(0, R, n)).astype(np.intp)
    sched = g.integers(0, S, n).astype(np.intp)
    silent = g.choice([60_000, 300_000, 900_000], n).astype(np.int64)
    maint = g.integers(0, n, n).astype(np.intp)
    value = np.where(g.random((n, 2)) < 0.2, np.nan, g.choice([0.0, 0.3, 0.5, 1.0, 7.0], (n, 2)))
    time = T - g.integers(-5, 2_000_000, (n, 2)).astype(np.int64)
    dopen = np.array([True, True, False, True])
    dsince = np.array([-(1 << 62), T - 200_000, T + 5_000, T - 1_000_000], dtype=np.int64)
    col = 1
    idx, cnt, newest, n_silent, due = facility_judge(r, sched, silent, maint, value, time, col, dopen, dsince,
                                                     T, R, T + 3_600_000)
    val, tm = value[:, col], time[:, col]
    mv, mt = value[maint, col], time[maint, col]
    known = ~np.isnan(mv)
    start = np.maximum(dsince[sched], np.where(known, mt, -1))
    expected = (r >= 0) & dopen[sched] & ~(known & (mv >= 0.5))
    fresh = ~np.isnan(val) & (tm >= start) & (T - tm <= silent)
    judged = expected & fresh
    silent_now = expected & ~fresh & (T - start > silent)
    waiting = expected & ~fresh & ~silent_now
    assert judged.sum() > 100 and silent_now.sum() > 100 and waiting.sum() > 10
    assert list(idx) == list(np.flatnonzero(judged))
    assert (cnt == np.bincount(r[judged], minlength=R)).all()
    assert (n_silent == np.bincount(r[silent_now], minlength=R)).all()
    want_newest = np.full(R, -1, dtype=np.int64)
    np.maximum.at(want_newest, r[judged], tm[judged])
    assert (newest == want_newest).all()
    assert due == min(T + 3_600_000, int((tm[judged] + silent[judged]).min()) + 1,
                      int((start[waiting] + silent[waiting]).min()) + 1)


@pytest.mark.parametrize("seed", [0, 1])
def test_the_compiled_single_asset_values_are_the_rule_written_out(seed):
    """A single scheduled asset's value (a lift's state): its latest reading when its schedule is
    open, it is not under an open work order and the reading was taken since the later of the
    window's opening and its return to service; else no value - idle while closed, under a work
    order or still within its grace since the window opened, no_data after that."""
    from indicators.engine.compiled import facility_values
    g = np.random.default_rng(seed)
    n, m, T = 400, 900, 10_000_000
    ent = g.integers(0, m, n).astype(np.intp)
    sched = g.integers(0, 4, n).astype(np.intp)
    silent = g.choice([60_000, 300_000], n).astype(np.int64)
    maint = g.integers(0, m, n).astype(np.intp)
    value = np.where(g.random((m, 2)) < 0.2, np.nan, g.choice([0.0, 0.3, 0.5, 1.0, 3.0], (m, 2)))
    time = T - g.integers(-5, 2_000_000, (m, 2)).astype(np.int64)
    dopen = np.array([True, True, False, True])
    dsince = np.array([-(1 << 62), T - 200_000, T + 5_000, T - 1_000_000], dtype=np.int64)
    pos = g.permutation(2 * n)[:n]
    raw, newest, idle = np.full(2 * n, 9.0), np.full(2 * n, 9, dtype=np.int64), np.zeros(2 * n, dtype=bool)
    due = facility_values(ent, sched, silent, maint, value, time, 0, dopen, dsince, T, pos, raw, newest, idle,
                          T + 3_600_000)
    v, tm = value[ent, 0], time[ent, 0]
    mv, mt = value[maint, 0], time[maint, 0]
    known = ~np.isnan(mv)
    start = np.maximum(dsince[sched], np.where(known, mt, -1))
    expected = dopen[sched] & ~(known & (mv >= 0.5))
    seen = expected & ~np.isnan(v) & (tm >= start)
    waiting = expected & ~seen & (T - start <= silent)
    assert seen.sum() > 30 and waiting.sum() > 5 and (~seen & ~waiting).sum() > 50
    assert np.array_equal(raw[pos], np.where(seen, v, np.nan), equal_nan=True)
    assert (newest[pos] == np.where(seen, tm, -1)).all()
    assert (idle[pos] == (~seen & (~expected | waiting))).all()
    rest = np.setdiff1d(np.arange(2 * n), pos)
    assert (raw[rest] == 9.0).all() and (newest[rest] == 9).all() and not idle[rest].any()
    assert due == min(T + 3_600_000, int((start[waiting] + silent[waiting]).min()) + 1)
