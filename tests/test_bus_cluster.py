"""A 3-node NATS JetStream cluster loses the node that leads an area's feed stream, by SIGKILL,
in the middle of ingestion (issue 12): every batch the ingestor acknowledged is in the stream
exactly once, the sender's retries of unacknowledged batches store nothing twice, and the area's
engine gives the values of the same recording ingested with no failure."""
from __future__ import annotations

import faulthandler
import sys
import threading
import time
from datetime import datetime, timedelta, timezone

import numpy as np
import pytest

from indicators.bus import names
from indicators.bus.jetstream import Bus, BusUnavailable, JetStreamSink, JetStreamSource
from indicators.bus.server import cluster
from indicators.bus.worker import read_values, run_worker
from indicators.feeds.deadletter import DeadLetterStore
from indicators.feeds.ingest import Ingestor
from indicators.feeds.simulator import SimClock, simulate

START = datetime(2026, 4, 15, 19, 0, tzinfo=timezone(timedelta(hours=8)))
N_IND = 1373


@pytest.fixture
def nodes(tmp_path):
    servers = cluster(tmp_path / "nats", 3)
    try:
        for s in servers:
            s.ready(60)
        yield servers
    finally:
        for s in servers:
            s.stop()


class Sender(threading.Thread):
    """A feed front: each batch through the ingestor, retried as an HTTP client retries a 5xx
    until it is acknowledged; notes what was acknowledged and when."""

    def __init__(self, bus: Bus, area: str, batches, dead, pause_s: float = 0.0) -> None:
        super().__init__(daemon=True)
        self.clock = SimClock(START)
        self.ing = Ingestor(JetStreamSink(bus, area), DeadLetterStore(dead), clock=self.clock)
        self.batches, self.pause = batches, pause_s
        self.accepted = 0
        self.ack_times: list[float] = []
        self.retries = 0
        self.error: BaseException | None = None

    def run(self) -> None:
        try:
            for b in self.batches:
                self.clock.set(b.arrival)
                for attempt in range(400):
                    try:
                        r = self.ing.submit(b.kind, b.payload)       # returned: acknowledged
                        break
                    except Exception:
                        self.retries += 1
                        time.sleep(0.25)
                else:
                    raise RuntimeError("a batch was never acknowledged")
                self.accepted += r.accepted
                self.ack_times.append(time.monotonic())
                if self.pause:
                    time.sleep(self.pause)
        except BaseException as e:          # reported by the test
            self.error = e


def stored_ids(bus: Bus, area: str) -> list[str]:
    return [e for _, _, t in JetStreamSource(bus, area).replay(0) for e in t.column("event_id").to_pylist()]


def test_killing_the_stream_leader_mid_ingest_loses_no_acknowledged_event(nodes, tmp_path):
    batches = [b for b in simulate("normal-weekday", START, timedelta(minutes=40), 6) if b.kind != "malformed"]
    urls = ",".join(s.url for s in nodes)
    faulthandler.dump_traceback_later(240, exit=False, file=sys.stderr)     # where it hangs, if it does
    try:
        with Bus(urls) as bus:
            killed, calm = "canton-tower-copy-181", "canton-tower-copy-182"
            bus.ensure_area(killed, replicas=3)
            bus.ensure_area(calm, replicas=3)
            send = Sender(bus, killed, batches, tmp_path / "dead1.sqlite", pause_s=0.01)
            send.start()
            while len(send.ack_times) < len(batches) // 3 and send.is_alive():
                time.sleep(0.02)
            leader = bus.call(bus.js.stream_info(names.feed_stream(killed))).cluster.leader
            victim = next(s for s in nodes if s.name == leader)
            before = len(send.ack_times)
            t_kill = time.monotonic()
            victim.kill()                                      # SIGKILL, mid-ingest
            while len(send.ack_times) <= before + 2 and send.is_alive() and time.monotonic() - t_kill < 120:
                time.sleep(0.02)
            stall = send.ack_times[before] - t_kill if len(send.ack_times) > before else None
            victim.start().ready(60)                           # the node comes back and catches up
            send.join(240)
            assert not send.is_alive(), "ingest did not finish"
            assert send.error is None, repr(send.error)
            print(f"\nleader {leader} killed after {before} of {len(batches)} batches; publishing stalled "
                  f"{stall:.1f} s; {send.retries} retried submissions")

            # the same recording into another area of the healthy cluster: the reference
            ref = Sender(bus, calm, batches, tmp_path / "dead2.sqlite")
            ref.run()
            assert ref.error is None

            got, want = stored_ids(bus, killed), stored_ids(bus, calm)
            assert len(got) == len(set(got))                   # a retried batch is stored once
            assert sorted(got) == sorted(want)                 # everything acknowledged is there
            assert len(got) == send.accepted == ref.accepted > 10_000

            run_worker(bus, [killed, calm], exit_when_idle_s=2.0, checkpoint_every_s=10)
            a, b = read_values(bus, killed, N_IND), read_values(bus, calm, N_IND)
            assert a.time_ms == b.time_ms and a.time_ms is not None
            assert np.array_equal(a.values, b.values, equal_nan=True) and np.array_equal(a.quality, b.quality)
    finally:
        faulthandler.cancel_dump_traceback_later()


def test_a_replay_that_loses_the_stream_leader_midway_gives_every_message_once(nodes, tmp_path):
    """An engine rebuilding its state replays its area's stream; the node leading the stream dies
    in the middle: the replay waits for the new leader and goes on after the last message it
    gave, nothing twice, nothing missing."""
    batches = [b for b in simulate("normal-weekday", START, timedelta(minutes=10), 6) if b.kind != "malformed"]
    with Bus(",".join(s.url for s in nodes)) as bus:
        area = "canton-tower-copy-183"
        bus.ensure_area(area, replicas=3)
        send = Sender(bus, area, batches, tmp_path / "dead.sqlite")
        send.run()
        assert send.error is None
        want = [(seq, feed) for seq, feed, _ in JetStreamSource(bus, area).replay(0)]
        assert len(want) > 20
        src = JetStreamSource(bus, area, batch=4)              # small fetches: the kill lands mid-replay
        got = []
        for seq, feed, _ in src.replay(0):
            got.append((seq, feed))
            if len(got) == 8:
                leader = bus.call(bus.js.stream_info(names.feed_stream(area))).cluster.leader
                next(s for s in nodes if s.name == leader).kill()
        assert got == want


def test_an_area_asked_for_three_replicas_waits_for_the_cluster_to_have_three_nodes(tmp_path):
    """A worker that starts with its cluster (the nodes come up one after another) must not die
    on JetStream's "no suitable peers for placement": it waits for the nodes to join; when they
    never come, it says what is missing."""
    servers = cluster(tmp_path / "nats", 3, start=False)
    try:
        for s in servers[:2]:
            s.start()
        for s in servers[:2]:
            s.ready(60)                                     # two of three: a meta leader, no third peer
        with Bus(",".join(s.url for s in servers[:2])) as bus:
            with pytest.raises(BusUnavailable, match=r"cannot place 3 replicas.*start the cluster's missing nodes"):
                bus.ensure_area("canton-tower-copy-184", replicas=3, placement_wait_s=2)
            late = threading.Timer(2.0, servers[2].start)   # the third node comes up while we wait
            late.start()
            t0 = time.monotonic()
            bus.ensure_area("canton-tower-copy-184", replicas=3)
            waited = time.monotonic() - t0
            late.join()
            info = bus.call(bus.js.stream_info(names.feed_stream("canton-tower-copy-184")))
            assert info.config.num_replicas == 3
            assert waited >= 1.5, f"placed 3 replicas on 2 nodes? ({waited:.1f} s)"
    finally:
        for s in servers:
            s.stop()
