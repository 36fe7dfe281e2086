"""The platform's parts around the bus (issue 12), against a real nats-server: a message no worker
can read is put aside with its reason and the area goes on; the front (`scenic-twin run --bus`)
keeps its feed log in the area's stream and gives the same values as an engine worker."""
from __future__ import annotations

from datetime import datetime, timedelta, timezone

import numpy as np
import pytest

from indicators.bus import names
from indicators.bus.jetstream import Bus, JetStreamSink, JetStreamSource
from indicators.bus.server import NatsServer
from indicators.bus.worker import read_values, run_worker
from indicators.feeds.deadletter import DeadLetterStore
from indicators.feeds.ingest import Ingestor
from indicators.feeds.simulator import SimClock, simulate

START = datetime(2026, 4, 15, 18, 0, tzinfo=timezone(timedelta(hours=8)))
N_IND = 1373


def evening(minutes: int, seed: int = 1):
    return [b for b in simulate("normal-weekday", START, timedelta(minutes=minutes), seed) if b.kind != "malformed"]


def final_values(bus: Bus, area: str):
    lv = read_values(bus, area, N_IND)
    return lv.time_ms, lv.values, lv.quality


def test_a_message_no_worker_can_read_is_put_aside_with_its_reason_and_the_area_goes_on(bus, tmp_path):
    batches = evening(8)
    half = len(batches) // 2
    clean, dirty = "canton-tower-copy-141", "canton-tower-copy-142"
    for area in (clean, dirty):
        bus.ensure_area(area)
        clock = SimClock(START)
        ing = Ingestor(JetStreamSink(bus, area), DeadLetterStore(tmp_path / f"{area}.sqlite"), clock=clock)
        for i, b in enumerate(batches):
            if area == dirty and i == half:
                # a gateway publishing JSON straight to the subject, and a subject of no feed kind
                bus.call(bus.js.publish(names.feed_subject(area, "crowd"), b'{"level": 0.4}',
                                        stream=names.feed_stream(area)))
                bus.call(bus.js.publish(names.feed_subject(area, "gossip"), b"hello",
                                        stream=names.feed_stream(area)))
            clock.set(b.arrival)
            ing.submit(b.kind, b.payload)
    status = {s["area"]: s for s in run_worker(bus, [clean, dirty], exit_when_idle_s=1.5, checkpoint_every_s=5)}
    assert status[dirty]["dead_lettered"] == 2 and status[clean]["dead_lettered"] == 0
    assert status[dirty]["applied_seq"] == bus.last_seq(names.feed_stream(dirty))   # went past them
    a, b = final_values(bus, clean), final_values(bus, dirty)
    assert a[0] == b[0] and a[0] is not None
    assert np.array_equal(a[1], b[1], equal_nan=True) and np.array_equal(a[2], b[2])
    dead = [bus.call(bus.js.get_msg(names.dead_stream(dirty), s)) for s in (1, 2)]
    assert bus.last_seq(names.dead_stream(dirty)) == 2
    assert dead[0].data == b'{"level": 0.4}' and "not an Arrow IPC feed batch" in dead[0].headers["Scenic-Reason"]
    assert dead[1].headers["Scenic-Subject"] == names.feed_subject(dirty, "gossip")
    assert "names no feed kind" in dead[1].headers["Scenic-Reason"]
    # a restarted worker does not put them aside again (its checkpoint covers them)
    again = run_worker(bus, [dirty], exit_when_idle_s=1.0, checkpoint_every_s=5)
    assert again[0]["dead_lettered"] == 0 and bus.last_seq(names.dead_stream(dirty)) == 2


def _front(var, url: str, area: str):
    from indicators.service import Service, ServiceConfig
    return Service(ServiceConfig(var=var, simulate=False, start=START, bus=url, area=area))


def test_the_front_keeps_its_feed_log_in_the_stream_and_computes_what_a_worker_computes(bus, nats, tmp_path):
    area = "canton-tower-copy-151"
    batches = evening(10, seed=2)
    svc = _front(tmp_path / "front", nats.url, area)
    try:
        assert isinstance(svc.feed_log, JetStreamSink)
        accepted = 0
        for b in batches:
            svc.sim_clock.set(b.arrival)
            accepted += svc.ingestor.submit(b.kind, b.payload).accepted
            svc.step()
        held = sum(t.num_rows for _, _, t in JetStreamSource(bus, area).replay(0))
        assert held == accepted > 1000                  # what was acknowledged is in the stream
        ready = svc.readiness()
        assert ready["components"]["bus"]["ok"]
        front_tick = svc.latest
    finally:
        svc.stop()
    # an engine worker reading the same stream gives the same values at the same tick
    run_worker(bus, [area], exit_when_idle_s=1.5, checkpoint_every_s=5)
    seen = {}
    read_values(bus, area, N_IND, on_tick=lambda lv: seen.__setitem__(lv.time_ms, (lv.values.copy(),
                                                                                   lv.quality.copy())))
    vals, qual = seen[front_tick.time_ms]
    assert np.array_equal(vals, front_tick.values, equal_nan=True) and np.array_equal(qual, front_tick.quality)

    # a restarted front resumes from its checkpoint; one with a lost state folder rebuilds from the stream
    for var in (tmp_path / "front", tmp_path / "lost"):
        again = _front(var, nats.url, area)
        try:
            again.step()                                # a rebuilt engine computes its ticks again
            assert again.engine.last_tick == front_tick.time
            again.sim_clock.set(batches[-1].arrival)
            r = again.ingestor.submit(batches[-1].kind, batches[-1].payload)
            assert r.accepted == 0                      # the stream knows it: a re-sent batch is a duplicate
            assert bus.last_seq(names.feed_stream(area)) == held_seq(bus, area)
        finally:
            again.stop()


def held_seq(bus: Bus, area: str) -> int:
    return max(s for s, _, _ in JetStreamSource(bus, area).replay(0))


def test_raw_records_from_gateways_are_validated_by_the_front_and_acknowledged_once_stored(bus, tmp_path):
    import json
    from indicators.bus.gateway import RawIntake
    area = "canton-tower-copy-161"
    bus.ensure_area(area)
    now = datetime(2025, 5, 1, 12, 0, tzinfo=timezone.utc)
    dead = DeadLetterStore(tmp_path / "dead.sqlite")
    ing = Ingestor(JetStreamSink(bus, area), dead, clock=lambda: now)

    def rec(i, **kw):
        r = {"event_id": f"g{i}", "event_time": "2025-05-01T11:58:00Z", "zone_id": "z-plaza", "count": i}
        r.update(kw)
        return json.dumps(r)
    good = "\n".join(rec(i) for i in range(5)).encode()
    mixed = (rec(5) + "\n" + rec(6, count="many") + "\n").encode()
    for subject, body in ((names.raw_subject(area, "crowd"), good), (names.raw_subject(area, "crowd"), mixed),
                          (names.raw_subject(area, "crowd"), good),          # a gateway re-sending
                          (names.raw_subject(area, "gossip"), b"not json")):
        bus.call(bus.js.publish(subject, body, stream=names.raw_stream(area)))
    intake = RawIntake(bus, area, ing)
    while intake.poll(timeout=1.0):
        pass
    assert intake.status() == {"messages": 4, "accepted": 6, "rejected": 2}
    ids = [e for _, _, t in JetStreamSource(bus, area).replay(0) for e in t.column("event_id").to_pylist()]
    assert sorted(ids) == [f"g{i}" for i in range(6)]                 # stored once, validated
    reasons = {(k, c) for (k, c) in dead.counts()}
    assert len(reasons) == 2                                          # the bad count and the unparsable line
    # all acknowledged: a new reader of the durable consumer finds nothing left
    assert RawIntake(bus, area, ing).poll(timeout=1.0) == 0


def test_a_wrong_bus_password_is_named_as_such_and_never_printed(tmp_path):
    from indicators.bus.jetstream import BusUnavailable

    class Guarded(NatsServer):
        def _config(self):
            return super()._config() + 'authorization { user: scenic, password: "s3cret-pw" }\n'
    s = Guarded(tmp_path / "guarded").start().ready()
    try:
        with pytest.raises(BusUnavailable) as e:
            Bus(f"nats://scenic:wrong-pw@127.0.0.1:{s.port}", timeout=3)
        assert "refused the user or password" in str(e.value) and "wrong-pw" not in str(e.value)
        with Bus(f"nats://scenic:s3cret-pw@127.0.0.1:{s.port}", timeout=3) as ok:
            ok.ensure_area("canton-tower-copy-191")
    finally:
        s.stop()
