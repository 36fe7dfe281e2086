"""`scenic-twin bench fanout` end to end on a small scale: screens connected to web workers get the
front's pushes (through NATS), and the report says how long the way took."""
from __future__ import annotations

import io

from dashboard.bench_fanout import run


def test_screens_on_two_web_workers_get_the_fronts_pushes():
    r = run(walls=6, seconds=4, speed=60, warmup=2, out=io.StringIO())
    for name in ("baseline", "fanout"):
        ph = r["phases"][name]
        assert ph["failed"] == {} and ph["samples"] >= 6, ph
        assert 0 < ph["event_to_screen_ms"]["p50"] <= ph["event_to_screen_ms"]["p95"] <= ph["event_to_screen_ms"]["p99"]
    assert set(r["phases"]["fanout"]["per_server_p95_ms"]) == {"web1", "web2"}
    assert set(r["phases"]["baseline"]["per_server_p95_ms"]) == {"front"}
    assert r["server_log_errors"] == []
