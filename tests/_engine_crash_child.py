"""Child process of tests/test_engine_crash.py: replay a feed log into an engine until killed.

    python tests/_engine_crash_child.py LOG_DIR CKPT EVERY

Builds the engine exactly as the parent does (:func:`make_engine`), restores
``CKPT`` when it exists, prints ``READY <covered seq> <last tick ms>``, then
feeds the log after the covered sequence number batch by batch with
:func:`feed` (ingest with ``feed_seq``, then every tick the watermark
allows) and prints, flushed:

* ``B <seq>`` after each batch and its ticks;
* every ``EVERY`` batches ``CKPT-BEGIN <seq>``, writes the checkpoint, then
  ``CKPT <covered seq>`` - the parent kills some children right after a
  ``CKPT-BEGIN`` so that the SIGKILL lands while the checkpoint is written;
* ``DONE`` at the end of the log.

The same functions run the parent's reference and restarts, so the child and
the parent agree on the protocol (the tick grid start, the lateness, when
ticks are computed, how the end of the log is flushed).
"""
from __future__ import annotations

import sys
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Callable

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

FAR = datetime(9999, 1, 1, tzinfo=timezone.utc)
EPOCH = datetime(1970, 1, 1, tzinfo=timezone.utc)
TICK = timedelta(seconds=1)
LATENESS = timedelta(minutes=2)
SCENARIO = "national-day"
SIM_START = datetime.fromisoformat("2026-10-01T19:00:00+08:00")
SIM_MINUTES = 25
START = SIM_START - timedelta(milliseconds=1)       # the tick grid: first tick = SIM_START


def load():
    """(inventory, catalog) - once per process."""
    from indicators.catalog import load_catalog
    from twin_assets import inventory as inv
    inventory = inv.load()
    return inventory, load_catalog(inventory=inventory)


def make_engine(catalog, inventory):
    from indicators.engine import Engine
    return Engine(catalog, inventory, tick=TICK, allowed_lateness=LATENESS, start=START)


def feed(engine, log, from_seq: int, on_tick: Callable | None = None,
         on_batch: Callable[[int], None] | None = None) -> int:
    """Ingest the log's batches with seq >= ``from_seq`` (batches the engine's
    checkpoint covers are skipped by the engine itself); after each batch
    compute every tick the watermark allows.  Returns the last seq fed."""
    last = from_seq - 1
    for seq, kind, table in log.replay(from_seq):
        engine.ingest(kind, table, feed_seq=seq)
        for t in engine.ticks(FAR):
            if on_tick is not None:
                on_tick(t)
        last = seq
        if on_batch is not None:
            on_batch(seq)
    return last


def finish(engine, end_ms: int, on_tick: Callable | None = None):
    """The end of the log: nothing more will come - flush the last ticks."""
    end = EPOCH + timedelta(milliseconds=end_ms)
    engine.heartbeat(end + LATENESS)
    last = None
    for t in engine.ticks(end):
        last = t
        if on_tick is not None:
            on_tick(t)
    return last


def main() -> None:
    log_dir, ckpt, every = Path(sys.argv[1]), Path(sys.argv[2]), int(sys.argv[3])
    from indicators.feeds.log import FeedLog
    inventory, catalog = load()
    engine = make_engine(catalog, inventory)
    covered = engine.restore(ckpt) if ckpt.exists() else None
    out = sys.stdout
    out.write(f"READY {covered} {engine.clock.last_tick}\n")
    out.flush()
    n = 0

    def on_batch(seq: int) -> None:
        nonlocal n
        n += 1
        out.write(f"B {seq}\n")
        out.flush()
        if n % every == 0:
            out.write(f"CKPT-BEGIN {seq}\n")
            out.flush()
            c = engine.checkpoint(ckpt)
            out.write(f"CKPT {c}\n")
            out.flush()

    with FeedLog(log_dir, fsync=False) as log:
        feed(engine, log, (covered or 0) + 1, on_batch=on_batch)
    out.write("DONE\n")
    out.flush()


if __name__ == "__main__":
    main()
