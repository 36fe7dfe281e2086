"""`scenic-twin bench load` at toy size: what a user of the bench relies on - every wall client gets
pushes in every phase, the ingest requests are taken, stalled clients do not stop the others, the
server's memory stays bounded.  Counts are asserted, never milliseconds (the machine is shared)."""
import json
import subprocess
import sys

from conftest import ROOT


def test_bench_load_small():
    out = subprocess.run([sys.executable, "-m", "dashboard.cli", "bench", "load", "--walls", "5",
                          "--ingest-clients", "2", "--slow", "2", "--seconds", "4", "--stall-wait", "0",
                          "--warmup", "0", "--json"], cwd=ROOT, capture_output=True, text=True, timeout=85)
    assert out.returncode == 0, out.stderr[-3000:]
    r = json.loads(out.stdout)
    assert "phase 3/3" in out.stderr                 # progress on stderr while it runs
    phases = r["phases"]
    assert list(phases) == ["baseline", "load", "stalled"]
    assert phases["baseline"]["wall_clients"] == 1 and phases["load"]["wall_clients"] == 5
    for name, ph in phases.items():
        push, ingest = ph["push"], ph["ingest"]
        assert push["clients_without_push"] == 0, (name, push)
        assert push["pushes"] >= ph["wall_clients"] * 2, (name, push)
        assert ingest["requests"] > 0 and set(ingest["status"]) == {"200"}, (name, ingest)
        assert ingest["records"]["accepted"] > 0 and ingest["records"]["rejected_count"] == 0, (name, ingest)
        assert ingest["records"]["late"] == 0, (name, ingest)
    # the stalled clients did not stop the others: they keep their push rate (a generous bound)
    load, stalled = phases["load"]["push"], phases["stalled"]["push"]
    assert stalled["per_client_per_s_min"] >= 0.5 * load["per_client_per_s_mean"], (load, stalled)
    st = r["stalled_clients"]
    assert st["clients"] == 2 and st["failed"] == 0 and st["pushes_before_stalling_mean"] >= 1
    assert r["rss"]["per_connection_kb"] is not None
    assert r["rss"]["phase3_growth_mb"] < 200, r["rss"]
    assert r["errors"] == {} and r["closes"] == {}, (r["errors"], r["closes"])
    for k in ("push_p95_load_vs_baseline", "ingest_p95_load_vs_baseline", "push_p95_stalled_vs_load"):
        assert r["ratios"][k] is not None, k
