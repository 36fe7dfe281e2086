"""The wall's camera tour (``data/tour.toml``), resolved to coordinates for the page."""
from __future__ import annotations

import tomllib
from pathlib import Path
from typing import Any

DATA = Path(__file__).resolve().parents[1] / "data"


class TourError(ValueError):
    """The tour file is wrong; the message says where and what to change."""


def load_tour(path: Path | None = None, anchors: Path | None = None) -> dict[str, Any]:
    """The tour as the page uses it: timings and stops with longitude and latitude."""
    path = path or DATA / "tour.toml"
    anchors = anchors or DATA / "sources" / "anchors.toml"
    doc = tomllib.loads(path.read_text(encoding="utf-8"))
    points = tomllib.loads(anchors.read_text(encoding="utf-8"))
    out = {}
    for key, lo, hi in (("dwell_s", 3, 3600), ("fly_s", 0, 60), ("resume_after_s", 5, 3600), ("hot_zones", 0, 20)):
        v = doc.get(key)
        if not isinstance(v, (int, float)) or not lo <= v <= hi:
            raise TourError(f"{path}: {key} must be a number from {lo} to {hi}, not {v!r}")
        out[key] = v
    stops = []
    for i, s in enumerate(doc.get("stop", [])):
        a = points.get(s.get("anchor"))
        if a is None:
            raise TourError(f"{path}: stop {i + 1} names anchor {s.get('anchor')!r}, which "
                            f"{anchors.name} does not have")
        stops.append({"name": s["anchor"], "longitude": float(a["lon"]), "latitude": float(a["lat"]),
                      "zoom": float(s.get("zoom", 17)), "pitch": float(s.get("pitch", 50)),
                      "bearing": float(s.get("bearing", 0))})
    out["stops"] = stops
    return out
