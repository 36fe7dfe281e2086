"""The embedded deployment: feeds in, values, history and view state out; a restart resumes."""
from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pyarrow.compute as pc

from indicators.feeds.simulator import Faults, SimClock, simulate
from indicators.pipeline import zone_indicator
from indicators.service import Service, ServiceConfig

START = datetime(2026, 10, 1, 11, 0, tzinfo=timezone(timedelta(hours=8)))


def feed(service: Service, minutes: int, offset: int = 0) -> None:
    t0 = START + timedelta(minutes=offset)
    for batch in simulate("national-day", t0, timedelta(minutes=minutes), 7, faults=Faults.off()):
        service.sim_clock.set(batch.arrival)
        service.ingestor.submit(batch.kind, batch.payload, source="test")


def make(tmp_path, published):
    cfg = ServiceConfig(var=tmp_path, scenario="national-day", speed=60, simulate=False)
    s = Service(cfg, publish=published.append)
    s.sim_clock.set(START)
    return s


def test_values_history_and_view_state_then_restart_resumes(tmp_path):
    published: list[dict] = []
    s = make(tmp_path, published)
    feed(s, 12)
    assert s.step() > 0
    snap = published[-1]
    loads = [snap.value(zone_indicator("crowd.load_rate", z)) for z in s.pipeline.zones]
    assert len(loads) == 17 and all(v is not None for v in loads) and max(loads) > 10
    assert snap.final_as_of == s.engine.last_tick and snap.feeds["crowd"].last_event is not None
    # the screens get the newest tick at once, marked provisional until 2 minutes of lateness pass
    assert snap.provisional and snap.as_of >= snap.final_as_of + timedelta(minutes=1)
    s.checkpoint()
    last = s.engine.last_tick
    hist = s.history.query(["crowd.load_rate:zone=west_plaza@now"], START, START + timedelta(hours=1))
    assert hist.num_rows > 0
    s.feed_log.close() if hasattr(s.feed_log, "close") else None
    s.dead.close()
    s.alert_store.close()

    # restart on the same state folder: resumes after the checkpoint, no duplicate ticks in history
    published2: list[dict] = []
    s2 = make(tmp_path, published2)
    assert s2.engine.last_tick == last
    feed(s2, 6, offset=12)
    assert s2.step() > 0
    s2.checkpoint()
    h = s2.history.query(["crowd.load_rate:zone=west_plaza@now"], START, START + timedelta(hours=1))
    times = h.column("tick_time")
    assert pc.count_distinct(times).as_py() == h.num_rows, "a tick was written to history twice"
    assert h.num_rows > hist.num_rows


def test_alerts_wait_for_the_warm_up_then_evaluate_with_the_feed_records(tmp_path):
    cfg = ServiceConfig(var=tmp_path, scenario="national-day", speed=60, simulate=False,
                        alerts_warmup=timedelta(minutes=5))
    published: list[dict] = []
    s = Service(cfg, publish=published.append)
    s.sim_clock.set(START)
    feed(s, 4)
    s.step()
    assert s.alert_store.active_alerts() == [] and s.pipeline._pending, "no evaluation during the warm-up"
    for minute in range(4, 16):
        feed(s, 1, offset=minute)
        s.step()
    assert s.pipeline._pending == {}, "the feed records since the last evaluation went to the alert runtime"
    active = s.alert_store.active_alerts()
    assert active, "after the warm-up the rules are evaluated"
    assert {a.alert_id for a in published[-1].alerts} == {a.alert_id for a in active}, \
        "the snapshot carries the active alerts the store holds"


def test_a_failing_engine_step_shows_as_degraded_while_its_thread_lives(tmp_path, monkeypatch):
    """The wall's health banner: a step that raises is reported (the live thread used to mask it)."""
    import threading
    s = make(tmp_path, [])
    calls = []

    def broken():
        calls.append(1)
        s.stop_event.set()                          # one turn of the loop is enough
        raise RuntimeError("disk full")
    monkeypatch.setattr(s, "step", broken)
    monkeypatch.setattr(s, "_keep_time", lambda: None)
    alive = threading.Event()
    s._threads["engine"] = threading.Thread(target=alive.wait, daemon=True)
    s._threads["engine"].start()
    s._loop()
    h = s.health()["engine"]
    assert calls and h["ok"] is False and h["problem"] == "step_failed" and "disk full" in h["reason"]
    alive.set()
    s._threads["engine"].join(5)
    h = s.health()["engine"]
    assert h["ok"] is False and h["problem"] == "stopped"


def test_a_silent_bus_feed_is_an_outage_only_while_some_route_runs(tmp_path):
    """Routes 262 and 468 run 06:00-23:00 (data/catalog, [routes]): after the last bus the
    unattended wall must not say the bus feed stopped, and in the morning silence counts from
    the start of service, not from last night's last bus."""
    s = make(tmp_path, [])
    cst = timezone(timedelta(hours=8))
    last_bus = datetime(2026, 10, 1, 22, 59, tzinfo=cst)
    s._feed_seen["bus"] = (last_bus, last_bus)

    def bus_at(h, m):
        s.sim_clock.set(datetime(2026, 10, 2, h, m, tzinfo=cst) if h < 23 else datetime(2026, 10, 1, h, m, tzinfo=cst))
        return s.build_snapshot().feeds["bus"]

    assert bus_at(23, 30).stale is False and bus_at(3, 0).stale is False        # no route runs
    assert bus_at(6, 1).stale is False                                          # a minute into service
    assert bus_at(6, 3).stale is True                                           # 3 min in, no bus yet
    assert bus_at(6, 3).age_s == 180.0
    arrived = datetime(2026, 10, 2, 6, 2, tzinfo=cst)
    s._feed_seen["bus"] = (arrived, arrived)
    assert bus_at(6, 3).stale is False and bus_at(6, 3).age_s == 60.0
    assert bus_at(6, 5).stale is True                                           # the usual 2-minute limit
    s.alert_store.close()
