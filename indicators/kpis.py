"""The headline figures of each indicator family (the wall's KPI tiles), as data.

Each KPI reduces a handful of catalog indicators to one number; which ones
is declared by family and window, so a new zone or camera joins its KPI
without code.  ``KpiSet.compute`` works on the engine's value array, so the
service can sample trends every evaluation at no real cost.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from indicators.catalog.ids import parse as parse_id


@dataclass(frozen=True)
class Kpi:
    name: str                 # key, also the i18n key suffix (kpi.<name>)
    group: str                # crowd | facility | traffic | weather | video | cases
    family: str               # catalog family whose indicators it reduces
    window: str               # the indicators' window (now, 1h, …)
    reduce: str               # sum | max | mean | first
    unit: str
    scope: tuple[tuple[str, str], ...] = ()   # only indicators with these scope pairs


KPIS: tuple[Kpi, ...] = (
    Kpi("present", "crowd", "crowd.count", "now", "sum", "persons"),
    Kpi("max_load", "crowd", "crowd.load_rate", "now", "max", "%"),
    Kpi("anomalies", "facility", "facility.anomalies", "now", "sum", "assets"),
    Kpi("cameras_offline", "facility", "facility.camera_online", "now", "offline", "cameras"),
    Kpi("area_speed", "traffic", "traffic.area_speed", "now", "first", "km/h"),
    Kpi("congested", "traffic", "traffic.congested_segments", "now", "first", "segments"),
    Kpi("temperature", "weather", "weather.temperature", "now", "first", "°C"),
    Kpi("rain_1h", "weather", "weather.rain_1h", "now", "first", "mm"),
    Kpi("video_events", "video", "video.zone_events", "1h", "sum", "events"),
    Kpi("cases_open", "cases", "case.area_open", "now", "first", "cases"),
    Kpi("cases_overdue", "cases", "case.overdue", "now", "sum", "cases"),
)
GROUPS = ("crowd", "facility", "traffic", "weather", "video", "cases")


class KpiSet:
    """The KPIs over one catalog's id order."""

    def __init__(self, ids: list[str], kpis: tuple[Kpi, ...] = KPIS):
        self.kpis = kpis
        self.names = [k.name for k in kpis]
        self._index: dict[str, np.ndarray] = {}
        parsed = [parse_id(i) for i in ids]
        for k in kpis:
            want = set(k.scope)
            self._index[k.name] = np.array(
                [n for n, p in enumerate(parsed)
                 if p.family == k.family and str(p.window) == k.window and want <= set(p.scope)], dtype=np.int64)

    def compute(self, values: np.ndarray) -> dict[str, float | None]:
        """KPI name -> value (None when none of its indicators has a value)."""
        out: dict[str, float | None] = {}
        for k in self.kpis:
            v = values[self._index[k.name]]
            v = v[~np.isnan(v)]
            if v.size == 0:
                out[k.name] = None
            elif k.reduce == "sum":
                out[k.name] = float(v.sum())
            elif k.reduce == "max":
                out[k.name] = float(v.max())
            elif k.reduce == "mean":
                out[k.name] = float(v.mean())
            elif k.reduce == "offline":
                out[k.name] = float((v < 0.5).sum())
            else:
                out[k.name] = float(v[0])
        return out
