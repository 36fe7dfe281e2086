"""`scenic-twin bench soak` (issue 13): the server left running, its memory and state folder
sampled against the simulated clock; growth is a slope after the warm-up."""
from __future__ import annotations

import json

from dashboard.bench_soak import summarise
from dashboard.cli import main


def _samples(rss_per_h: float, disk_per_h: float, hours: int = 8, speed: float = 100.0):
    return [{"real_s": h * 3600 / speed, "sim_h": float(h), "rss_mb": 300 + 40 * (h < 2) * h + rss_per_h * h,
             "disk_mb": 5 + disk_per_h * h, "by_entry_mb": {"history": 4 + disk_per_h * h, "alerts.sqlite": 1.0}}
            for h in range(hours + 1)]


def test_growth_is_the_slope_after_the_warm_up_per_simulated_and_per_real_hour():
    flat = summarise(_samples(0.0, 2.0), hours=8, speed=100, scenario="s", warmup_hours=2)
    assert abs(flat["rss_mb_per_sim_hour"]) < 1e-9          # the warm-up's 80 MB is not growth
    assert flat["disk_mb_per_sim_day"] == 48.0 and flat["disk_mb_per_sim_day_by_entry"]["history"] == 48.0
    assert flat["disk_mb_per_sim_day_by_entry"]["alerts.sqlite"] == 0.0 and flat["speed_kept"] == 100.0
    leak = summarise(_samples(3.0, 2.0), hours=8, speed=100, scenario="s", warmup_hours=2)
    assert round(leak["rss_mb_per_sim_hour"], 6) == 3.0 and round(leak["rss_mb_per_real_hour"], 6) == 300.0
    assert round(leak["rss_floor_mb_per_sim_hour"], 6) == 3.0


def test_the_floor_ignores_passing_peaks_and_shows_a_leak_under_them():
    """Four samples an hour; one in four is a 60 MB peak that comes and goes (a compaction), more of
    them late in the run: the least-squares slope reads it as growth, the hourly floor does not -
    and a real leak under the same peaks shows in the floor."""
    def samples(leak):
        return [{"real_s": q * 9.0, "sim_h": q / 4, "by_entry_mb": {}, "disk_mb": 1.0,
                 "rss_mb": 400 + leak * q / 4 + (60 if q % 4 == 1 and q > 24 else 0)} for q in range(4 * 12 + 1)]
    peaks = summarise(samples(0.0), hours=12, speed=400, scenario="s", warmup_hours=2)
    assert peaks["rss_mb_per_sim_hour"] > 1.0 and abs(peaks["rss_floor_mb_per_sim_hour"]) < 1e-9
    leak = summarise(samples(2.0), hours=12, speed=400, scenario="s", warmup_hours=2)
    assert round(leak["rss_floor_mb_per_sim_hour"], 6) == 2.0


def test_a_short_soak_of_the_real_server_reports_memory_and_disk_per_hour(capsys):
    assert main(["bench", "soak", "--hours", "1.5", "--speed", "600", "--warmup-hours", "0.5", "--every", "2",
                 "--json"]) == 0
    r = json.loads(capsys.readouterr().out)
    assert r["samples"][-1]["sim_h"] >= 1.5 and len(r["samples"]) >= 3
    assert r["rss_mb_end"] > 50 and r["disk_mb_end"] > 0
    assert r["rss_mb_per_sim_hour"] is not None and r["disk_mb_per_sim_day"] is not None
    assert "history" in r["samples"][-1]["by_entry_mb"]      # the tick history is where the state folder grows
    assert all(isinstance(x, int) and x >= 0 for x in r["open_cases"])   # read from the alert store


def test_a_soak_shorter_than_its_warm_up_is_refused(capsys):
    assert main(["bench", "soak", "--hours", "1", "--warmup-hours", "2"]) == 2
    assert "longer than the warm-up" in capsys.readouterr().err
