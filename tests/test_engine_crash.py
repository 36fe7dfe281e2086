"""Crash safety of the engine: checkpoint + feed-log replay after ``kill -9``.

Once per session a small recording (``national-day`` 19:00-19:25, the
evening peak, faults on at the default rates: late, out-of-order,
duplicated and missing records) is appended into a :class:`FeedLog`, and
one uninterrupted engine over the whole log gives the reference: the final
values and qualities, the ingest counters and a digest of every tick.

Each trial runs a child process (tests/_engine_crash_child.py) that replays
the log into an engine, checkpointing every few batches; the parent SIGKILLs
it at a seeded random moment - after a random number of batches plus a
random delay, or right after a random ``CKPT-BEGIN`` line (plus a shorter
delay) so that the kill lands while the checkpoint file is being written.
Half the trials run a second child that restores the first one's checkpoint
and is killed in turn.  Then the parent restarts: a fresh engine restores
the checkpoint (if any), replays the log after the covered sequence number -
sometimes from a few batches too early, which the engine must skip - and
flushes the end.  Required, exactly:

* the restored state is the reference's state at the restored tick;
* every tick computed after the restart is the reference's tick (values and
  qualities, NaN-aware), consecutive from the restored tick to the
  reference's last one: no gap, no tick twice;
* the final values/qualities and the ingest counters (accepted, duplicates,
  late, unknown) equal the reference's: no batch counted twice or missed.

The checker is shown to fail on a restart without replay and on a replay
with one batch missing.
"""
from __future__ import annotations

import hashlib
import os
import random
import subprocess
import sys
import time
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path

import numpy as np
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))
import _engine_crash_child as child  # noqa: E402

from indicators.feeds.log import FeedLog  # noqa: E402
from indicators.feeds.simulator import Faults, simulate  # noqa: E402

CHILD = str(Path(__file__).resolve().parent / "_engine_crash_child.py")
TRIALS = 20
SEED = 20251001
SIM_SEED = 11


def _digest(values: np.ndarray, quality: np.ndarray) -> str:
    v = np.where(np.isnan(values), np.inf, values)          # NaN-aware: every NaN is the same "no data"
    nan = np.isnan(values).astype(np.uint8)
    return hashlib.sha1(v.tobytes() + nan.tobytes() + quality.astype(np.int8).tobytes()).hexdigest()


@dataclass
class World:
    inventory: object
    catalog: object
    log_dir: Path
    last_seq: int
    end_ms: int
    values: np.ndarray
    quality: np.ndarray
    stats: dict
    digests: dict[int, str]          # tick time (ms) -> digest
    last_tick: int
    tick_ms: int
    initial: str                     # digest of a fresh engine's values (before any tick)


@pytest.fixture(scope="module")
def world(tmp_path_factory) -> World:
    inventory, catalog = child.load()
    d = tmp_path_factory.mktemp("engine-crash")
    log_dir = d / "log"
    end_ms = 0
    # the fixture's own durability is not under test: no fsync per batch
    with FeedLog(log_dir, fsync=False) as log:
        for b in simulate(child.SCENARIO, child.SIM_START, timedelta(minutes=child.SIM_MINUTES), SIM_SEED,
                          faults=Faults()):
            if b.kind == "malformed":             # the log holds what ingestion accepted: typed batches
                continue
            log.append(b.kind, b.payload)
            t = b.payload.column("event_time").cast("int64").to_numpy()
            if len(t):
                end_ms = max(end_ms, int(t.max()))
        last_seq = log.last_seq
        ref = child.make_engine(catalog, inventory)
        initial = _digest(ref.values, ref.quality)
        digests: dict[int, str] = {}

        def keep(t) -> None:
            assert t.time_ms not in digests, "the reference computed a tick twice"
            digests[t.time_ms] = _digest(t.values, t.quality)
        child.feed(ref, log, 1, on_tick=keep)
        child.finish(ref, end_ms, on_tick=keep)
    late = sum(s["late"] for s in ref.stats.values())
    dups = sum(s["duplicates"] for s in ref.stats.values())
    assert late > 0 and dups > 0, "the recording should exercise late and duplicate records"
    return World(inventory, catalog, log_dir, last_seq, end_ms, ref.values.copy(), ref.quality.copy(),
                 {k: dict(v) for k, v in ref.stats.items()}, digests, ref.clock.last_tick, ref.tick_ms, initial)


# ------------------------------------------------------------------ restart + checks
@dataclass
class Restart:
    covered: int | None
    restored_tick: int | None
    restored_digest: str | None
    ticks: list = field(default_factory=list)      # (time_ms, digest) computed after the restore
    engine: object = None


def _restart(w: World, ckpt: Path | None, from_seq: int | None = None, skip_seq: int | None = None,
             replay: bool = True) -> Restart:
    """A fresh engine: restore ``ckpt`` (if it exists), replay the log from
    ``from_seq`` (default: after the covered seq), flush the end."""
    eng = child.make_engine(w.catalog, w.inventory)
    covered = eng.restore(ckpt) if ckpt is not None and ckpt.exists() else None
    r = Restart(covered, eng.clock.last_tick,
                _digest(eng.values, eng.quality) if eng.clock.last_tick is not None else None, engine=eng)
    on_tick = lambda t: r.ticks.append((t.time_ms, _digest(t.values, t.quality)))  # noqa: E731
    if replay:
        with FeedLog(w.log_dir, fsync=False) as log:
            start = (covered or 0) + 1 if from_seq is None else from_seq
            for seq, kind, table in log.replay(start):
                if seq == skip_seq:
                    continue
                eng.ingest(kind, table, feed_seq=seq)
                for t in eng.ticks(child.FAR):
                    on_tick(t)
    child.finish(eng, w.end_ms, on_tick=on_tick)
    return r


def _problems(w: World, r: Restart) -> list[str]:
    """Everything in which a restart differs from the uninterrupted reference."""
    out = []
    eng = r.engine
    if r.restored_tick is not None:
        # before the first tick (checkpoint taken while the watermark was still in the first minutes):
        # the state of a fresh engine
        want = w.digests.get(r.restored_tick, w.initial if r.restored_tick < min(w.digests) else None)
        if want != r.restored_digest:
            out.append(f"restored state differs from the reference at tick {r.restored_tick}")
    times = [t for t, _ in r.ticks]
    first = (r.restored_tick + w.tick_ms) if r.restored_tick is not None else min(w.digests)
    expected = list(range(first, w.last_tick + 1, w.tick_ms))
    if times != expected:
        missing = sorted(set(expected) - set(times))
        extra = sorted(set(times) - set(expected))
        twice = len(times) - len(set(times))
        out.append(f"ticks after restart: {len(missing)} missing (first {missing[:3]}), {len(extra)} unexpected, "
                   f"{twice} computed twice")
    bad = [t for t, d in r.ticks if w.digests.get(t) != d]
    if bad:
        out.append(f"{len(bad)} ticks differ from the reference, first at {bad[0]}")
    if not (np.array_equal(eng.values, w.values, equal_nan=True) and np.array_equal(eng.quality, w.quality)):
        diff = np.flatnonzero(~((eng.values == w.values) | (np.isnan(eng.values) & np.isnan(w.values)))
                              | (eng.quality != w.quality))
        out.append(f"final values differ in {len(diff)} indicators, e.g. "
                   f"{[w.catalog.ids[i] for i in diff[:3]]}")
    if eng.stats != w.stats:
        out.append("ingest counters differ: " + "; ".join(f"{k} {eng.stats.get(k)} != {v}" for k, v in w.stats.items()
                                                         if eng.stats.get(k) != v))
    if eng.covered_seq != w.last_seq:
        out.append(f"covered seq {eng.covered_seq} != last seq {w.last_seq}")
    return out


# ------------------------------------------------------------------ the child
@dataclass
class Cycle:
    mode: str
    batches_seen: int = 0                 # B lines read (complete)
    last_batch: int | None = None
    confirmed: int | None = None          # covered seq of the last CKPT line
    begun: int | None = None              # seq of the last CKPT-BEGIN line
    temp_left: bool = False               # a checkpoint temp file survived the kill: it landed mid-write
    ready_covered: int | None = None


def _cycle(w: World, ckpt: Path, every: int, rng: random.Random, err: Path) -> Cycle:
    """Start a child, kill it (SIGKILL) at a random moment, return what it reported."""
    with open(err, "ab") as e:
        proc = subprocess.Popen([sys.executable, CHILD, str(w.log_dir), str(ckpt), str(every)],
                                stdout=subprocess.PIPE, stderr=e, env={**os.environ, "PYTHONHASHSEED": "0"})
    assert proc.stdout is not None
    lines: list[bytes] = []
    try:
        ready = proc.stdout.readline()
        assert ready.startswith(b"READY"), err.read_text()
        covered = None if ready.split()[1] == b"None" else int(ready.split()[1])
        remaining = w.last_seq - (covered or 0)
        ckpts_left = (remaining - 30) // every
        mode = "checkpoint" if rng.random() < 0.5 and ckpts_left >= 1 else "batch"
        c = Cycle(mode, ready_covered=covered)
        if mode == "checkpoint":
            want, delay, tag = rng.randint(1, ckpts_left), rng.uniform(0.0, 0.02), b"CKPT-BEGIN"
        else:
            want, delay, tag = rng.randint(1, max(1, remaining - 30)), rng.uniform(0.0, 0.03), b"B"
        seen = 0
        while seen < want:
            line = proc.stdout.readline()
            assert line, "child ended early: " + err.read_text()[-2000:]
            lines.append(line)
            if line.split()[0] == tag:
                seen += 1
        try:
            proc.wait(timeout=delay)                     # the random moment (the only wait of the test)
            pytest.fail("the child finished before it was killed: " + err.read_text()[-2000:])
        except subprocess.TimeoutExpired:
            pass
    finally:
        proc.kill()                                      # SIGKILL
        rest = proc.stdout.read()
        proc.wait()
    assert proc.returncode == -9
    for line in lines + rest.split(b"\n"):
        parts = line.split()
        if len(parts) != 2:
            continue                                     # a torn last line does not count
        if parts[0] == b"B":
            c.batches_seen += 1
            c.last_batch = int(parts[1])
        elif parts[0] == b"CKPT":
            c.confirmed = int(parts[1])
        elif parts[0] == b"CKPT-BEGIN":
            c.begun = int(parts[1])
    c.temp_left = any(ckpt.parent.glob(f".{ckpt.name}.*.tmp"))
    return c


@pytest.mark.slow
def test_kill_9_then_restore_and_replay_gives_the_reference_exactly(world, tmp_path):
    w = world
    rng = random.Random(SEED)
    t0 = time.perf_counter()
    mid_write = kills = early = 0
    modes = {"batch": 0, "checkpoint": 0}
    for trial in range(TRIALS):
        d = tmp_path / f"trial{trial}"
        d.mkdir()
        ckpt = d / "engine.ckpt"
        every = rng.randint(6, 20)
        cycles = []
        for n_cycle in range(1 if rng.random() < 0.65 else 2):
            if n_cycle and max(cycles[-1].begun or 0, cycles[-1].last_batch or 0) > w.last_seq - 40:
                break                                    # too little log left to kill a second child in
            before = ckpt.stat().st_mtime_ns if ckpt.exists() else None
            c = _cycle(w, ckpt, every, rng, tmp_path / "child.err")
            kills += 1
            modes[c.mode] += 1
            cycles.append(c)
            if c.temp_left:
                mid_write += 1
                for tmp in d.glob(".engine.ckpt.*.tmp"):     # a later child's kill is judged on its own
                    tmp.unlink()
            # what the child confirmed is on disk: the checkpoint covers at least that
            if c.confirmed is not None:
                assert ckpt.exists()
            if c.ready_covered is not None:
                assert before is not None
        last = cycles[-1]
        probe = child.make_engine(w.catalog, w.inventory)
        covered = probe.restore(ckpt) if ckpt.exists() else None
        lo = last.confirmed if last.confirmed is not None else last.ready_covered
        hi = last.begun if last.begun is not None else lo
        # atomic checkpoint: the file is the last confirmed one, or the one being written if its rename won
        assert covered in {lo, hi}, f"trial {trial}: checkpoint covers {covered}, expected {lo} or {hi}"
        from_seq = None
        if covered and rng.random() < 0.4:                       # replaying from too early is harmless
            from_seq = max(1, covered + 1 - rng.randint(1, 25))
            early += 1
        r = _restart(w, ckpt, from_seq=from_seq)
        assert r.covered == covered
        problems = _problems(w, r)
        assert not problems, f"trial {trial} ({[c.mode for c in cycles]}, covered {covered}): {problems}"
    took = time.perf_counter() - t0
    print(f"\n{TRIALS} trials, {kills} kills ({modes['batch']} after a random batch, {modes['checkpoint']} "
          f"after a random CKPT-BEGIN), {mid_write} landed while a checkpoint was written "
          f"(temp file left behind), {early} restarts replayed from too early; {took:.1f} s")
    assert mid_write >= 3, "too few kills landed while a checkpoint was being written"


@pytest.mark.slow
def test_the_checker_catches_a_missing_replay_and_a_gap(world, tmp_path):
    """Restoring a mid-run checkpoint without replaying the log after it, or
    replaying with one batch left out, must NOT pass the trial's checks."""
    w = world
    eng = child.make_engine(w.catalog, w.inventory)
    ckpt = tmp_path / "engine.ckpt"
    half = w.last_seq // 2
    with FeedLog(w.log_dir, fsync=False) as log:
        for seq, kind, table in log.replay(1):
            if seq > half:
                break
            eng.ingest(kind, table, feed_seq=seq)
            for _ in eng.ticks(child.FAR):
                pass
    assert eng.checkpoint(ckpt) == half
    good = _restart(w, ckpt)
    assert _problems(w, good) == []
    no_replay = _problems(w, _restart(w, ckpt, replay=False))
    assert any("final values differ" in p for p in no_replay), no_replay
    gap = _problems(w, _restart(w, ckpt, skip_seq=half + 3))
    assert any("differ" in p for p in gap), gap
