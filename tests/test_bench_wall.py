"""`scenic-twin bench wall` runs end to end and reports what the README quotes.
(The numbers themselves are the benchmark's business, never asserted here.)"""
import json
import subprocess
import sys

import pytest

from conftest import ROOT

pytestmark = pytest.mark.browser


def test_bench_wall_reports_heap_pushes_and_liveness():
    out = subprocess.run([sys.executable, "-m", "dashboard.cli", "bench", "wall", "--minutes", "1.5", "--every", "20",
                          "--json"], cwd=ROOT, capture_output=True, text=True, timeout=600)
    assert out.returncode == 0, out.stderr[-3000:]
    r = json.loads(out.stdout)
    for k in ("heap_growth_mb_per_h", "heap_first_mb", "heap_last_mb", "push_bytes", "pushes",
              "push_mb_per_wall_hour", "push_mb_per_simulated_hour", "dom_nodes_last", "samples"):
        assert k in r, k
    assert r["pushes"] > 0 and r["push_bytes"] > 0 and len(r["samples"]) >= 4
    assert r["live_at_end"] is True
    assert "heap" in out.stderr            # progress on stderr while it runs
