"""Buses and AI-video events for the wall: newest position per vehicle by event
time (late records do not move a bus backwards), and horizons that forget."""
from datetime import datetime, timedelta, timezone

import pyarrow as pa

from indicators.live_objects import LiveObjects

T0 = datetime(2026, 10, 1, 11, 0, tzinfo=timezone.utc)


def bus(vid, minutes, lon, delay=None):
    return {"vehicle_id": vid, "route_id": "262", "event_time": T0 + timedelta(minutes=minutes),
            "lon": lon, "lat": 23.1, "delay_s": delay, "occupancy_pct": None}


def test_a_late_position_does_not_move_the_bus_back_and_old_buses_are_forgotten():
    lo = LiveObjects(bus_horizon=timedelta(minutes=10))
    lo.offer("bus", pa.Table.from_pylist([bus("a", 5, 113.32), bus("b", 0, 113.30)]))
    lo.offer("bus", pa.Table.from_pylist([bus("a", 3, 113.31, delay=700)]))        # late: older than what we have
    (a, b) = lo.buses(T0 + timedelta(minutes=6))
    assert (a.vehicle_id, a.lon, a.delay_s) == ("a", 113.32, None)
    assert b.vehicle_id == "b"
    assert [x.vehicle_id for x in lo.buses(T0 + timedelta(minutes=12))] == ["a"]   # b last seen 12 min ago


def test_rows_without_a_position_are_skipped_not_fatal():
    lo = LiveObjects()
    lo.offer("bus", pa.Table.from_pylist([bus("a", 1, None), {**bus("c", 1, 113.3), "vehicle_id": None}]))
    assert lo.buses(T0) == ()


def test_video_events_keep_the_last_quarter_hour():
    lo = LiveObjects(video_horizon=timedelta(minutes=15))
    rows = [{"event_time": T0 + timedelta(minutes=m), "camera_id": "cam-1", "algorithm": "fall",
             "confidence": 0.9, "lon": None, "lat": None} for m in (0, 10, 20)]
    lo.offer("video", pa.Table.from_pylist(rows))
    assert [e.at for e in lo.video(T0 + timedelta(minutes=21))] == [T0 + timedelta(minutes=10), T0 + timedelta(minutes=20)]
