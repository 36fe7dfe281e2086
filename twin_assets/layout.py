"""Reads the layout sources in ``data/sources`` into plain local-frame geometry.

The TOML files are the documented inputs of the inventory build; every
feature carries its ``source``.  Points are ``[x, y]`` metres in the local
frame or ``"@anchor"`` (a published point of anchors.toml).
"""
from __future__ import annotations

import os
import tomllib
from dataclasses import dataclass, field
from pathlib import Path

from .geo import LocalFrame

REPO_ROOT = Path(__file__).resolve().parents[1]


def data_dir() -> Path:
    """Where ``data/`` lives: SCENIC_TWIN_DATA or the repository's own folder."""
    return Path(os.environ.get("SCENIC_TWIN_DATA", REPO_ROOT / "data"))


def sources_dir() -> Path:
    return REPO_ROOT / "data" / "sources"


class LayoutError(ValueError):
    pass


@dataclass
class Layout:
    frame: LocalFrame
    anchors: dict[str, dict]
    layout: dict
    zones: dict
    furniture: dict
    route: dict
    anchor_xy: dict[str, tuple[float, float]] = field(default_factory=dict)

    def point(self, p, where: str = "") -> tuple[float, float]:
        if isinstance(p, str):
            if not p.startswith("@") or p[1:] not in self.anchor_xy:
                raise LayoutError(f"{where}: unknown anchor {p!r}")
            return self.anchor_xy[p[1:]]
        if not (isinstance(p, (list, tuple)) and len(p) == 2):
            raise LayoutError(f"{where}: a point is [x, y] or '@anchor', got {p!r}")
        return (float(p[0]), float(p[1]))

    def points(self, ps, where: str = "") -> list[tuple[float, float]]:
        return [self.point(p, f"{where}[{i}]") for i, p in enumerate(ps)]


def load(src: Path | None = None) -> Layout:
    src = src or sources_dir()
    read = lambda name: tomllib.loads((src / name).read_text(encoding="utf-8"))
    anchors = read("anchors.toml")
    layout = read("layout.toml")
    origin = anchors[layout["frame"]["origin"]]
    frame = LocalFrame(origin["lon"], origin["lat"])
    lay = Layout(frame, anchors, layout, read("zones.toml"), read("furniture.toml"), read("route.toml"))
    for name, a in anchors.items():
        x, y = frame.to_xy(a["lon"], a["lat"])
        lay.anchor_xy[name] = (float(x), float(y))
    return lay
