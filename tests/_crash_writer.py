"""Child process of tests/test_ingest_crash.py: ingest batches until killed.

    python tests/_crash_writer.py LOG_DIR SEED FIRST_BATCH

Opens the log (recovering it), prints ``READY <last_seq> <dropped_bytes>``,
then submits batches FIRST_BATCH, FIRST_BATCH+1, ... of crowd events with ids
``b<batch>-<j>`` through an :class:`Ingestor` and prints
``ACK <batch> <n> <seq>`` - flushed - only after ``submit`` returned, i.e.
after the log append was fsync-ed.  Batch sizes vary (1 to ~20k rows) so that
the parent's SIGKILL lands in all phases: encoding, writing, fsync, segment
roll.  Batches re-sent after a restart must come back as duplicates.
"""
from __future__ import annotations

import random
import sys
from datetime import datetime, timedelta, timezone
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import pyarrow as pa  # noqa: E402

from indicators.feeds.deadletter import DeadLetterStore  # noqa: E402
from indicators.feeds.ingest import Ingestor  # noqa: E402
from indicators.feeds.log import FeedLog  # noqa: E402
from indicators.feeds.schemas import SCHEMAS  # noqa: E402

NOW = datetime(2025, 5, 1, 12, 0, tzinfo=timezone.utc)
SEGMENT_BYTES = 256 * 1024


def batch_size(seed: int, batch: int) -> int:
    """Deterministic size of a batch (the parent recomputes it)."""
    r = random.Random(seed * 1_000_003 + batch).random()
    return 1 + int(r * r * 20_000)


def make_batch(seed: int, batch: int) -> pa.Table:
    n = batch_size(seed, batch)
    t0 = int(NOW.timestamp() * 1000) - 60_000
    return pa.table({
        "event_id": [f"b{batch}-{j}" for j in range(n)],
        "event_time": pa.array([t0 + j % 60_000 for j in range(n)], pa.int64()).cast(pa.timestamp("ms", tz="UTC")),
        "source": pa.array(["crash-writer"] * n),
        "zone_id": pa.array([f"z{j % 17}" for j in range(n)]),
        "cell_id": pa.nulls(n, pa.string()),
        "count": pa.array([j % 500 for j in range(n)], pa.int32()),
    }, schema=SCHEMAS["crowd"])


def main() -> None:
    log_dir, seed, first = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
    log = FeedLog(Path(log_dir) / "log", segment_bytes=SEGMENT_BYTES)
    dead = DeadLetterStore(Path(log_dir) / "dead.sqlite")
    ing = Ingestor(log, dead, allowed_lateness=timedelta(days=3650), clock=lambda: NOW)
    out = sys.stdout
    out.write(f"READY {log.last_seq} {log.recovery.dropped_bytes}\n")
    out.flush()
    batch = first
    while True:
        r = ing.submit("crowd", make_batch(seed, batch), source="crash-writer")
        out.write(f"ACK {batch} {r.accepted + r.duplicates} {r.seq}\n")
        out.flush()
        batch += 1


if __name__ == "__main__":
    main()
