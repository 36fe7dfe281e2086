"""Fresh values on screen (issue 13): the service publishes each tick as soon as its events are in,
marked provisional, and replaces it with the final tick once the allowed lateness has passed.

* engine property: events arriving out of order (within the lateness) through the service's pair
  of engines - the final one (2 minutes of lateness) and its provisional copy (none) - give
  provisional ticks at once, and every final tick equals the same tick of an in-order replay (a
  fresh engine fed the events sorted by event time): provisional values never leak into it;
* service: the snapshots run ahead of the final tick by about the lateness and say so, and the
  final ticks (what alerts and history take) are bit for bit those of a service without
  provisional values fed the same stream.
"""
from __future__ import annotations

import copy
from datetime import datetime, timedelta, timezone

import numpy as np
import pyarrow as pa
import pytest

from indicators.catalog import load_catalog
from indicators.engine import Engine
from indicators.engine.synthetic import arrival_order, synthetic_feeds
from indicators.feeds.simulator import Faults, simulate
from indicators.service import Service, ServiceConfig

T0 = datetime(2025, 10, 1, 11, 0, tzinfo=timezone.utc)
LATENESS = timedelta(minutes=2)


@pytest.fixture(scope="module")
def catalog():
    return load_catalog()


def _in_order(catalog, tables: dict[str, pa.Table], slice_ms: int = 5000) -> Engine:
    """A fresh engine fed every event sorted by event time (slices of 5 s across all feeds)."""
    e = Engine(catalog, allowed_lateness=LATENESS, start=T0)
    sorted_ = {k: t.sort_by("event_time") for k, t in tables.items() if t.num_rows}
    times = {k: t.column("event_time").cast(pa.int64()).to_numpy() for k, t in sorted_.items()}
    lo = min(int(v.min()) for v in times.values())
    hi = max(int(v.max()) for v in times.values())
    for a in range(lo - lo % slice_ms, hi + 1, slice_ms):
        for k, t in sorted_.items():
            i, j = np.searchsorted(times[k], [a, a + slice_ms])
            if j > i:
                e.ingest(k, t.slice(i, j - i))
    return e


@pytest.mark.parametrize("seed", [2, 9, 23])
def test_provisional_ticks_come_at_once_and_every_final_tick_equals_the_in_order_replay(catalog, seed):
    tables = synthetic_feeds(catalog, T0, 300, seed=seed, scale=0.05, max_delay_ms=90_000)
    final = Engine(catalog, allowed_lateness=LATENESS, behind="next_tick", start=T0)
    fresh = copy.deepcopy(final)
    fresh.lateness_ms = 0
    finals, provisional, lead = {}, {}, []
    for kind, t in arrival_order(tables, 1000):
        final.ingest(kind, t)
        fresh.ingest(kind, t)
        for tick in final.ticks(final.watermark):
            finals[tick.time_ms] = (tick.values.copy(), tick.quality.copy())
        for tick in fresh.ticks(fresh.watermark):
            provisional[tick.time_ms] = tick.values.copy()
        if finals and provisional:
            lead.append((max(provisional) - max(finals)) / 1000)
    # the provisional engine is ahead by the lateness (give or take the arrival jitter)
    assert max(lead) >= 110
    assert sum(s.get("behind", 0) for s in final.stats.values()) == 0      # all within the lateness
    assert sum(s.get("behind", 0) for s in fresh.stats.values()) > 0       # the provisional one saw late ones
    replay = _in_order(catalog, tables)
    got = {t.time_ms: (t.values, t.quality)
           for t in replay.ticks(datetime.fromtimestamp(max(finals) / 1000, timezone.utc))}
    assert set(finals) <= set(got) and len(finals) > 100
    differed = 0
    for T, (values, quality) in finals.items():
        np.testing.assert_array_equal(values, got[T][0], err_msg=f"final tick {T}")
        np.testing.assert_array_equal(quality, got[T][1], err_msg=f"final tick {T}")
        if T in provisional and not np.array_equal(provisional[T], values, equal_nan=True):
            differed += 1
    # the late events did change some provisional values: what the final tick corrected
    assert differed > 0


# --------------------------------------------------------------------------- the service
START = datetime(2026, 10, 1, 19, 0, tzinfo=timezone(timedelta(hours=8)))


def _run(tmp_path, provisional: bool) -> tuple[list, dict]:
    published: list = []
    cfg = ServiceConfig(var=tmp_path, scenario="national-day", speed=60, simulate=False, provisional=provisional)
    s = Service(cfg, publish=published.append)
    s.sim_clock.set(START)
    finals: dict[int, tuple] = {}
    faults = Faults(late=0.0, out_of_order=0.05, duplicate=0.02, missing=0.0, malformed=0.0)
    for i, batch in enumerate(simulate("national-day", START, timedelta(minutes=8), 4, faults=faults)):
        s.sim_clock.set(batch.arrival)
        s.ingestor.submit(batch.kind, batch.payload, source="test")
        s.step()
        if s.latest is not None:
            finals[s.latest.time_ms] = (s.latest.values.copy(), s.latest.quality.copy())
    s.alert_store.close()
    return published, finals


def test_the_screens_run_ahead_marked_provisional_and_the_final_ticks_do_not_change(tmp_path):
    shown, finals = _run(tmp_path / "p", provisional=True)
    ahead = [(p.as_of - p.final_as_of).total_seconds() for p in shown if p.provisional and p.final_as_of]
    assert ahead and max(ahead) >= 100, ahead
    assert all(p.as_of >= p.final_as_of for p in shown if p.final_as_of and p.as_of)
    plain, plain_finals = _run(tmp_path / "f", provisional=False)
    assert not any(p.provisional for p in plain) and all(p.as_of == p.final_as_of for p in plain)
    assert set(finals) == set(plain_finals) and len(finals) > 20
    for T, (values, quality) in finals.items():
        np.testing.assert_array_equal(values, plain_finals[T][0], err_msg=f"final tick {T}")
        np.testing.assert_array_equal(quality, plain_finals[T][1], err_msg=f"final tick {T}")


def test_a_peek_shows_the_open_tick_now_and_leaves_the_engine_as_it_was(catalog):
    """Early firing: ``peek`` computes the tick the newest events fall in with the events in so
    far - the same values that tick would have if it closed now - and the engine goes on exactly
    as an engine that never peeked (same ticks, same changes)."""
    tables = synthetic_feeds(catalog, T0, 30, seed=5, scale=0.05)
    peeked = Engine(catalog, allowed_lateness=timedelta(0), behind="next_tick", start=T0)
    plain = copy.deepcopy(peeked)
    heard = []
    peeked.subscribe(lambda ch: heard.append(ch.time_ms))
    peeks = closed = 0
    for kind, t in arrival_order(tables, 300):        # batches of 0.3 s: ticks are open between them
        for e in (peeked, plain):
            e.ingest(kind, t)
        p = peeked.peek()
        if p is not None:
            # what the tick would be if it closed with exactly these events
            now = copy.deepcopy(plain)
            now.clock.wm_floor = p.time_ms
            last = None
            for last in now.ticks(datetime.fromtimestamp(p.time_ms / 1000, timezone.utc)):
                pass
            assert last is not None and last.time_ms == p.time_ms
            np.testing.assert_array_equal(p.values, last.values)
            np.testing.assert_array_equal(p.quality, last.quality)
            peeks += 1
            assert not heard or max(heard) <= peeked.clock.last_tick < p.time_ms   # nobody hears a peek
        a = list(peeked.ticks(peeked.watermark))
        b = list(plain.ticks(plain.watermark))
        assert [x.time_ms for x in a] == [x.time_ms for x in b]
        for x, y in zip(a, b):
            np.testing.assert_array_equal(x.values, y.values)
            np.testing.assert_array_equal(x.changed, y.changed)
        closed += len(a)
    assert peeks > 20 and closed > 20
    assert heard


def test_at_real_time_an_observation_is_on_screen_at_the_next_step_before_its_tick_ends(tmp_path, monkeypatch):
    """The wall's temperature shows a new observation at the step after it came (the service peeks
    at the open tick), not once the clock has passed the tick's end; "as of" never runs ahead of
    the clock; and when the tick closes it keeps the value."""
    monkeypatch.setattr(Service, "PEEK_EVERY_S", 0.0)
    published: list = []
    s = Service(ServiceConfig(var=tmp_path, speed=1, start=START, simulate=False), publish=published.append)
    stations = ("aws-canton_tower-base", "aws-canton_tower-top")

    def observe(at, celsius, k):
        r = s.ingestor.submit("weather", [{"event_id": f"t{k}-{st}", "event_time": at, "station_id": st,
                                            "temperature_c": celsius} for st in stations], source="test")
        assert r.accepted == 2, r

    for k in range(5):
        s.sim_clock.set(START + timedelta(seconds=k, milliseconds=500))
        observe(START + timedelta(seconds=k, milliseconds=400), 20.0, k)
        s.step()
    assert s.snapshot.kpis["temperature"] == 20.0
    at = START + timedelta(seconds=5, milliseconds=300)
    s.sim_clock.set(at + timedelta(milliseconds=50))              # 0.65 s before the tick's end
    observe(at, 12.3, 5)
    s.step()
    snap = s.snapshot
    assert snap.provisional and snap.kpis["temperature"] == pytest.approx(12.3, abs=1e-3)
    assert s.fresh_latest.time < at < s.fresh_peek.time           # shown from the open tick
    assert snap.as_of == snap.now                                   # the values hold the events up to now
    s.sim_clock.set(START + timedelta(seconds=6, milliseconds=100))
    s.step()
    assert s.fresh_latest.time > at and s.snapshot.kpis["temperature"] == pytest.approx(12.3, abs=1e-3)
    assert s.snapshot.as_of == s.fresh_latest.time <= s.snapshot.now
    s.alert_store.close()


def test_a_failing_step_is_retried_at_the_beat_not_in_a_tight_loop(tmp_path):
    """A batch waiting for a peek brings the next step forward; when the step fails, the loop
    must not retry at once again and again (a busy loop flooding the log), but at the beat."""
    import threading
    import time
    s = Service(ServiceConfig(var=tmp_path, speed=1, start=START, simulate=False))
    calls = []

    def broken():
        calls.append(time.monotonic())
        raise RuntimeError("boom")
    s.step = broken
    s._peek_due = 3                       # batches came: a peek is due
    th = threading.Thread(target=s._loop)
    th.start()
    time.sleep(1.2)
    s.stop_event.set()
    s._wake.set()
    th.join(5)
    assert 2 <= len(calls) <= 4, len(calls)          # at 0, 0.5 and 1.0 s
    assert s.health()["engine"]["problem"] == "step_failed"
    s.alert_store.close()
