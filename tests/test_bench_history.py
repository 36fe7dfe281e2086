"""`scenic-twin bench history` at toy size: the three stores hold the same ticks, the service's
form is the smallest and within half a step, and the query reads every tick of one indicator."""
from __future__ import annotations

from indicators.engine import bench_history


def test_the_bench_compares_the_three_forms_on_the_same_ticks_and_times_a_query_over_days():
    r = bench_history.run(days=2, seconds=240)
    assert r["ticks"] == 240
    mb = r["mb_per_day"]
    assert mb["quantised_compacted"] < mb["changes_30s_parts"] < mb["every_tick"]
    assert r["accuracy"]["max_error_in_steps"] <= 0.5 + 1e-9 and r["accuracy"]["missing_kept"]
    hours, days = r["query_hourly_parts"], r["query"]
    assert hours["files"] == 48 and days["files"] == 2      # a day's hours merged into one part
    assert r["day_merge"]["days"] == 2
    for q in (hours, days):
        assert q["rows"] == 48 * 240                        # every tick of the indicator, forward-filled
        assert 0 < q["raw_rows"] <= q["rows"] and q["ours_s"] > 0 and q["raw_read_s"] > 0
    assert days["raw_rows"] == hours["raw_rows"]            # the merge keeps every stored row
