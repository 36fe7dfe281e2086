"""`scenic-twin bench cost` at toy size: one cell per rate × areas, each in its own process, every
event on time, and more areas cost more."""
from __future__ import annotations

from indicators.engine import bench_cost


def test_each_cell_reports_tick_time_and_memory_and_more_areas_cost_more():
    r = bench_cost.run(sizes=(300,), areas=(1, 3), seconds=4, warmup=2)
    one, three = r["cells"]
    assert (one["areas"], three["areas"]) == (1, 3)
    assert one["ticks"] == three["ticks"] >= 4 and one["late"] == three["late"] == 0
    assert three["events_per_tick_per_area"] == one["events_per_tick_per_area"] > 0
    assert three["tick_ms_p50"] > one["tick_ms_p50"] > 0
    assert three["engines_mb"] >= 0 and one["rss_mb"] > 0
