"""Moving and momentary things the wall draws: buses on their routes and recent
AI-video events at their cameras, kept from the feed batches as they arrive.

Late and out-of-order records are normal: a vehicle keeps its newest position
by event time, and the lists forget what is older than their horizon (in the
service's clock, simulated time in a simulation).
"""
from __future__ import annotations

import math
from collections import deque
from dataclasses import dataclass
from datetime import datetime, timedelta


@dataclass(frozen=True)
class BusPosition:
    vehicle_id: str
    route_id: str
    at: datetime
    lon: float
    lat: float
    delay_s: float | None
    occupancy_pct: float | None


@dataclass(frozen=True)
class VideoEvent:
    at: datetime
    camera_id: str
    algorithm: str
    confidence: float
    lon: float | None
    lat: float | None


def _num(v) -> float | None:
    return None if v is None or (isinstance(v, float) and math.isnan(v)) else float(v)


class LiveObjects:
    """Latest bus positions and the last ``video_horizon`` of AI-video events."""

    def __init__(self, bus_horizon: timedelta = timedelta(minutes=10),
                 video_horizon: timedelta = timedelta(minutes=15), video_max: int = 400) -> None:
        self.bus_horizon = bus_horizon
        self.video_horizon = video_horizon
        self._buses: dict[str, BusPosition] = {}
        self._video: deque[VideoEvent] = deque(maxlen=video_max)

    def offer(self, kind: str, table) -> None:
        if kind == "bus":
            for r in table.select([c for c in ("vehicle_id", "route_id", "event_time", "lon", "lat", "delay_s",
                                               "occupancy_pct") if c in table.schema.names]).to_pylist():
                lon, lat, vid = _num(r.get("lon")), _num(r.get("lat")), r.get("vehicle_id")
                if vid is None or lon is None or lat is None or r.get("event_time") is None:
                    continue
                old = self._buses.get(vid)
                if old is None or r["event_time"] >= old.at:
                    self._buses[vid] = BusPosition(vid, str(r.get("route_id") or ""), r["event_time"], lon, lat,
                                                   _num(r.get("delay_s")), _num(r.get("occupancy_pct")))
        elif kind == "video":
            cols = [c for c in ("event_time", "camera_id", "algorithm", "confidence", "lon", "lat")
                    if c in table.schema.names]
            for r in table.select(cols).to_pylist():
                if r.get("event_time") is None or not r.get("camera_id") or not r.get("algorithm"):
                    continue
                self._video.append(VideoEvent(r["event_time"], str(r["camera_id"]), str(r["algorithm"]),
                                              _num(r.get("confidence")) or 0.0, _num(r.get("lon")), _num(r.get("lat"))))

    def buses(self, now: datetime) -> tuple[BusPosition, ...]:
        cut = now - self.bus_horizon
        for vid in [v for v, b in self._buses.items() if b.at < cut]:
            del self._buses[vid]
        return tuple(sorted(self._buses.values(), key=lambda b: b.vehicle_id))

    def video(self, now: datetime) -> tuple[VideoEvent, ...]:
        cut = now - self.video_horizon
        return tuple(e for e in self._video if cut <= e.at <= now + timedelta(minutes=2))
