"""The scenic area's local time, in one place.

Guangzhou keeps China Standard Time (UTC+8, no daylight saving).  Times are
UTC inside the engine, the stores and the feeds; they become local only
where a person reads them (a screen, a message, a report) or where a rule
speaks of local hours (calendars, opening hours, "today", sunset and
sunrise - :func:`sun_times`, which the simulator's lamps and the lamps'
operating schedule in the catalog both use).
"""
from __future__ import annotations

from datetime import datetime, timezone
from zoneinfo import ZoneInfo

import numpy as np

TZ_NAME = "Asia/Shanghai"
LOCAL = ZoneInfo(TZ_NAME)


def to_local(t: datetime) -> datetime:
    """``t`` (timezone-aware) in local time."""
    if t.tzinfo is None:
        raise ValueError("a naive datetime has no known zone; pass an aware one (UTC inside the system)")
    return t.astimezone(LOCAL)


def fmt_local(t: datetime | None, *, date: bool = True, seconds: bool = True, empty: str = "—") -> str:
    """``2026-10-01 19:22:05`` (or ``19:22`` …) in local time; ``empty`` for None."""
    if t is None:
        return empty
    f = ("%Y-%m-%d " if date else "") + ("%H:%M:%S" if seconds else "%H:%M")
    return to_local(t).strftime(f)


def utc(t: datetime) -> datetime:
    """``t`` as UTC (aware)."""
    if t.tzinfo is None:
        raise ValueError("a naive datetime has no known zone; pass an aware one")
    return t.astimezone(timezone.utc)


UTC_OFFSET_MIN = 480
"""China Standard Time is UTC+8 all year: local minutes = UTC minutes + 480."""


def sun_times(day_of_year, lat: float, lon: float) -> tuple[np.ndarray, np.ndarray]:
    """Sunrise and sunset on local day(s) ``day_of_year`` (1-366) at ``lat``/``lon``
    (degrees), in minutes after local (UTC+8) midnight.

    NOAA's general solar position approximation (the fractional-year series
    for the equation of time and the declination; a sunrise is the upper limb
    at the horizon with refraction, zenith 90.833 degrees) - within a minute
    or two at Guangzhou's latitude, where there is no polar day or night.
    """
    doy = np.asarray(day_of_year, dtype=np.float64)
    g = 2 * np.pi / 365 * (doy - 1 + 0.5)
    eqtime = 229.18 * (0.000075 + 0.001868 * np.cos(g) - 0.032077 * np.sin(g)
                       - 0.014615 * np.cos(2 * g) - 0.040849 * np.sin(2 * g))
    decl = (0.006918 - 0.399912 * np.cos(g) + 0.070257 * np.sin(g) - 0.006758 * np.cos(2 * g)
            + 0.000907 * np.sin(2 * g) - 0.002697 * np.cos(3 * g) + 0.00148 * np.sin(3 * g))
    la = np.radians(lat)
    ha = np.degrees(np.arccos(np.clip(np.cos(np.radians(90.833)) / (np.cos(la) * np.cos(decl))
                                      - np.tan(la) * np.tan(decl), -1, 1)))
    rise = 720 - 4 * (lon + ha) - eqtime + UTC_OFFSET_MIN
    sset = 720 - 4 * (lon - ha) - eqtime + UTC_OFFSET_MIN
    return rise, sset
