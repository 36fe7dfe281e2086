"""The Canton Tower as a twisted hyperboloid-like lattice shell.

Published geometry (shared/geodata/FACTS.md): 600 m in all, a 454 m main
tower and a 146 m mast; base ellipse ~80 x 60 m, top ellipse 54 x 40.5 m,
the top rotated 135 degrees against the base; 24 inclined columns and 46
rings.  Straight columns from a point of the base ellipse to the matching
point of the rotated top ellipse sweep a ruled surface whose cross-section
narrows to a waist above mid-height, which is the tower's defining shape.
(The top plane's 15 degree tilt is left out.)
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class TowerSpec:
    base_long_m: float = 80.0
    base_short_m: float = 60.0
    top_long_m: float = 54.0
    top_short_m: float = 40.5
    main_height_m: float = 454.0
    mast_height_m: float = 146.0
    twist_deg: float = 135.0
    columns: int = 24
    rings: int = 46
    azimuth_deg: float = 0.0   # orientation of the base's long axis, from east

    @property
    def total_height_m(self) -> float:
        return self.main_height_m + self.mast_height_m


def _section(spec: TowerSpec, theta: np.ndarray, s: np.ndarray) -> np.ndarray:
    """Points of the shell: parameter angle theta, height fraction s in [0, 1]."""
    az = np.radians(spec.azimuth_deg)
    tw = np.radians(spec.twist_deg)
    bx, by = spec.base_long_m / 2 * np.cos(theta), spec.base_short_m / 2 * np.sin(theta)
    tx0, ty0 = spec.top_long_m / 2 * np.cos(theta), spec.top_short_m / 2 * np.sin(theta)
    tx = tx0 * np.cos(tw) - ty0 * np.sin(tw)
    ty = tx0 * np.sin(tw) + ty0 * np.cos(tw)
    x = (1 - s) * bx + s * tx
    y = (1 - s) * by + s * ty
    xr = x * np.cos(az) - y * np.sin(az)
    yr = x * np.sin(az) + y * np.cos(az)
    return np.stack([xr, yr, s * spec.main_height_m], axis=-1)


def lattice(spec: TowerSpec = TowerSpec()) -> list[np.ndarray]:
    """Polylines (n x 3, metres): the columns, the rings and the mast."""
    out = []
    s = np.linspace(0, 1, 24)
    for i in range(spec.columns):
        th = np.full_like(s, 2 * np.pi * i / spec.columns)
        out.append(_section(spec, th, s))
    th = np.linspace(0, 2 * np.pi, 65)
    for k in range(spec.rings):
        out.append(_section(spec, th, np.full_like(th, k / (spec.rings - 1))))
    out.append(np.array([[0, 0, spec.main_height_m], [0, 0, spec.total_height_m]], dtype=float))
    return out


def shell_mesh(spec: TowerSpec = TowerSpec(), around: int = 48, up: int = 46):
    """Triangle mesh of the shell: (positions [n,3] float32, normals, indices uint32)."""
    th = np.linspace(0, 2 * np.pi, around, endpoint=False)
    s = np.linspace(0, 1, up)
    T, S = np.meshgrid(th, s)
    pos = _section(spec, T, S).reshape(-1, 3)
    idx = []
    for k in range(up - 1):
        for i in range(around):
            a = k * around + i
            b = k * around + (i + 1) % around
            c = a + around
            d = b + around
            idx += [a, b, d, a, d, c]
    idx = np.asarray(idx, dtype=np.uint32)
    # normals: horizontal outward direction is good enough for a lattice shell
    n = pos.copy()
    n[:, 2] = 0
    n /= np.linalg.norm(n, axis=1, keepdims=True) + 1e-9
    return pos.astype(np.float32), n.astype(np.float32), idx


def width_profile(spec: TowerSpec = TowerSpec(), samples: int = 91):
    """(height, smallest width) pairs: where the waist is and how narrow."""
    th = np.linspace(0, np.pi, 360)
    out = []
    for s in np.linspace(0, 1, samples):
        p = _section(spec, th, np.full_like(th, s))
        q = _section(spec, th + np.pi, np.full_like(th, s))
        d = np.hypot(p[:, 0] - q[:, 0], p[:, 1] - q[:, 1])
        out.append((s * spec.main_height_m, float(d.min())))
    return out
