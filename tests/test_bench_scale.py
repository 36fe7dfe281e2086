"""`scenic-twin bench scale` at toy size: both sides run as real processes against a real
nats-server, do the same work and give the same values; the JSON carries what a reader of the
bench relies on.  Counts are asserted, never seconds (the machine is shared)."""
import json
import subprocess
import sys

from conftest import ROOT


def test_bench_scale_small():
    out = subprocess.run([sys.executable, "-m", "dashboard.cli", "bench", "scale", "--minutes", "4", "--json"],
                         cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr[-3000:]
    r = json.loads(out.stdout)
    assert "side B: every process ready; go" in out.stderr          # progress on stderr while it runs

    assert r["identical_values"] is True, r["identical"]
    assert r["same_work"] is True
    ratio = r["ratio"]["pipeline"]
    assert isinstance(ratio, (int, float)) and ratio > 0
    assert r["machine"]["usable_cores"] >= 1 and r["machine"]["cpu_count"] >= 1

    A, B = r["sides"]["A"], r["sides"]["B"]
    assert A["processes"] == {"ingest": 1, "workers": 1, "nats_servers": 1}
    assert B["processes"] == {"ingest": 2, "workers": 2, "nats_servers": 1}
    assert A["areas"] == ["canton-tower-copy-1", "canton-tower-copy-2"]
    assert B["areas"] == ["canton-tower-copy-3", "canton-tower-copy-4"]
    for k in ("events", "batches", "feed_messages", "ticks"):
        assert A[k] == B[k] > 0, k
    assert r["work"]["A"] == r["work"]["B"]
    # every event of the recording reached both areas of each side (the simulator's faults make some
    # duplicates, late or rejected: received counts them all)
    assert A["events_received"] == 2 * (r["recording"]["events"] + r["recording"]["malformed_records"])
    # every worker computed up to the recording's end and every tick is in the values streams once
    for side in (A, B):
        for a, p in side["per_area"].items():
            assert p["engine"]["messages"] == p["ingest"]["feed_messages"] == p["ingest"]["last_seq"], a
            assert p["engine"]["ticks_published"] == r["ticks_in_values_streams"][a] > 100, a
            assert p["engine"]["dead_lettered"] == 0, a
        assert side["seconds"] > 0 and side["events_per_s"] > 0
        assert side["cpu_s"]["workers"] and all(v is not None for v in side["cpu_s"]["workers"].values())
