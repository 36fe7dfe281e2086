"""The twin's local frame: metres east (x) and north (y) of an origin.

A local tangent plane is accurate to well under a metre over the 2-3 km of
the scenic area, which is far better than the sources (tens of metres), and
keeps all placement maths in plain metres.  deck.gl draws in the same frame
(COORDINATE_SYSTEM.METER_OFFSETS around the same origin).
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class LocalFrame:
    lon0: float
    lat0: float

    @property
    def m_per_deg_lat(self) -> float:
        p = math.radians(self.lat0)
        return 111132.92 - 559.82 * math.cos(2 * p) + 1.175 * math.cos(4 * p)

    @property
    def m_per_deg_lon(self) -> float:
        p = math.radians(self.lat0)
        return 111412.84 * math.cos(p) - 93.5 * math.cos(3 * p)

    def to_lonlat(self, x, y):
        """Local metres -> (lon, lat) degrees; works on scalars and arrays."""
        return (self.lon0 + np.asarray(x) / self.m_per_deg_lon,
                self.lat0 + np.asarray(y) / self.m_per_deg_lat)

    def to_xy(self, lon, lat):
        """(lon, lat) degrees -> local metres."""
        return ((np.asarray(lon) - self.lon0) * self.m_per_deg_lon,
                (np.asarray(lat) - self.lat0) * self.m_per_deg_lat)


def polyline_length(coords) -> float:
    a = np.asarray(coords, dtype=float)
    return float(np.hypot(*np.diff(a, axis=0).T).sum()) if len(a) > 1 else 0.0


def points_along(coords, spacing: float, start: float | None = None):
    """Points every ``spacing`` metres along a polyline, with unit tangents.

    Returns (xy [n,2], tangent [n,2], chainage [n]).  The first point sits at
    half a spacing from the start so that rules on touching lines do not
    stack assets on the shared vertex.
    """
    a = np.asarray(coords, dtype=float)
    seg = np.diff(a, axis=0)
    seglen = np.hypot(seg[:, 0], seg[:, 1])
    cum = np.concatenate([[0.0], np.cumsum(seglen)])
    total = cum[-1]
    first = spacing / 2 if start is None else start
    if total <= first:
        return np.zeros((0, 2)), np.zeros((0, 2)), np.zeros(0)
    s = np.arange(first, total, spacing)
    i = np.clip(np.searchsorted(cum, s, side="right") - 1, 0, len(seg) - 1)
    t = (s - cum[i]) / np.where(seglen[i] > 0, seglen[i], 1)
    xy = a[i] + seg[i] * t[:, None]
    tan = seg[i] / np.where(seglen[i] > 0, seglen[i], 1)[:, None]
    return xy, tan, s
