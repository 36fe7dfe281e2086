"""Carrying capacity of a zone per LB/T 034-2014 (景区最大承载量核定导则).

instantaneous  C1 = effective area / area per visitor
daily          C2 = C1 x T / t     (T opening hours, t average stay)

A zone with a published daily figure (the tower: 22,000 a day) keeps it, and
its instantaneous capacity is derived back: C1 = C2 x t / T.
"""
from __future__ import annotations

import math
from dataclasses import dataclass


@dataclass(frozen=True)
class Capacity:
    effective_area_m2: float
    instantaneous: int
    daily: int


def instantaneous_capacity(effective_area_m2: float, area_per_visitor_m2: float) -> int:
    if area_per_visitor_m2 <= 0:
        raise ValueError("area per visitor must be positive")
    return math.floor(effective_area_m2 / area_per_visitor_m2)


def daily_capacity(instantaneous: int, open_hours: float, average_stay_h: float) -> int:
    if average_stay_h <= 0:
        raise ValueError("average stay must be positive")
    turnover = open_hours / average_stay_h
    return math.floor(instantaneous * turnover)


def zone_capacity(area_m2: float, effective_ratio: float, area_per_visitor_m2: float,
                  open_hours: float, average_stay_h: float,
                  published_daily: int | None = None) -> Capacity:
    effective = area_m2 * effective_ratio
    if published_daily is not None:
        inst = math.floor(published_daily * average_stay_h / open_hours)
        return Capacity(effective, inst, int(published_daily))
    inst = instantaneous_capacity(effective, area_per_visitor_m2)
    return Capacity(effective, inst, daily_capacity(inst, open_hours, average_stay_h))
