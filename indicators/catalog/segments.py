"""Road segments: class, lanes and design speed, and what each can carry.

The traffic families judge every road by its own size (docs/catalog.md,
"Traffic: each road by its own capacity"): a flow is compared with the
segment's capacity, a speed with its free-flow speed.  What a segment is
comes from where the roads are defined, ``data/sources/layout.toml``: each
road ``[[line]]`` carries

* ``road_class`` - ``expressway`` 快速路, ``arterial`` 主干路, ``collector``
  次干路 or ``local`` 支路 (CJJ 37-2012 城市道路工程设计规范);
* ``lanes`` - motor-vehicle lanes, both directions together (a detector
  reports the whole road);
* ``design_speed_kmh`` - one of its class's design speeds, taken as the
  free-flow speed;

each as ``{ value, source }``, and ``[road_capacity]`` says what one lane
carries at a design speed (CJJ 37-2012 tables 4.2.1/4.2.2, design capacity)
and the share of it a signalised lane keeps (``signal_factor``; expressways
have no signals).  So

    capacity_vph        = lanes x lane design capacity(design speed) x signal factor
    free_flow_speed_kmh = design_speed_kmh

A road asset whose inventory ``attrs`` carry ``road_class``, ``lanes`` and
``design_speed_kmh`` (a survey import) uses those.  Every problem is
reported with its file and path (``layout.toml: line[road_yiyuan].lanes:
must be a whole number >= 1, not 0``), as the catalog reports its own.
"""
from __future__ import annotations

import json
import math
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable

from .model import SEGMENT_ATTRS, Problem

__all__ = ["ROAD_CLASSES", "SEGMENT_ATTRS", "RoadSpec", "Segment", "default_layout_path", "line_of", "read_roads",
           "segments_of"]

ROAD_CLASSES = {"expressway": "快速路", "arterial": "主干路", "collector": "次干路", "local": "支路"}
ROAD_FIELDS = ("road_class", "lanes", "design_speed_kmh")


def default_layout_path() -> Path:
    from twin_assets.layout import sources_dir
    return sources_dir() / "layout.toml"


def line_of(asset_id: str) -> str:
    """The layout line of a road asset: ``road-road_yiyuan-0001`` -> ``road_yiyuan``."""
    body = asset_id.split("-", 1)[1] if "-" in asset_id else asset_id
    return body.rsplit("-", 1)[0]


@dataclass(frozen=True)
class Segment:
    """One road segment and what it is judged by."""

    segment_id: str
    road_class: str
    lanes: int
    design_speed_kmh: float
    lane_capacity_vph: float          # one lane, the signal factor applied
    where: str                        # where the figures come from (file and path)
    sources: dict[str, str] = field(default_factory=dict, hash=False, compare=False)

    @property
    def capacity_vph(self) -> float:
        return self.lanes * self.lane_capacity_vph

    @property
    def free_flow_speed_kmh(self) -> float:
        return self.design_speed_kmh

    def attr(self, name: str) -> float:
        if name not in SEGMENT_ATTRS:
            raise KeyError(f"{name!r} is not a segment attribute ({', '.join(SEGMENT_ATTRS)})")
        return float(getattr(self, name))


@dataclass(frozen=True)
class RoadSpec:
    """The road part of ``layout.toml``: design speeds per class, lane capacities,
    the signal factor and each road line's figures (``lines``: line id ->
    {field: (value, source)}); ``problems``: what is wrong in it."""

    file: str
    design_speeds: dict[str, tuple[int, ...]]
    lane_capacity: dict[str, dict[int, float]]          # "expressway" | "other" -> design speed -> pcu/h
    signal_factor: float
    lines: dict[str, dict[str, tuple[Any, str]]]
    problems: tuple[Problem, ...] = ()

    def lane_capacity_vph(self, road_class: str, design_speed: float) -> float | None:
        table = self.lane_capacity.get("expressway" if road_class == "expressway" else "other", {})
        cap = table.get(int(design_speed)) if float(design_speed).is_integer() else None
        if cap is None:
            return None
        return cap * (1.0 if road_class == "expressway" else self.signal_factor)

    def check(self, road_class: Any, lanes: Any, speed: Any, path: str, file: str | None = None) -> list[Problem]:
        """Problems of one road's three figures (``file`` and ``path`` name where they are)."""
        out: list[Problem] = []
        file = self.file if file is None else file
        if road_class not in ROAD_CLASSES:
            out.append(Problem(file, f"{path}.road_class",
                               f"{road_class!r} is not one of {', '.join(ROAD_CLASSES)}"))
        if isinstance(lanes, bool) or not isinstance(lanes, int) or lanes < 1:
            out.append(Problem(file, f"{path}.lanes", f"must be a whole number >= 1, not {lanes!r}"))
        if isinstance(speed, bool) or not isinstance(speed, (int, float)) or not math.isfinite(speed) or speed <= 0:
            out.append(Problem(file, f"{path}.design_speed_kmh", f"must be a positive number, not {speed!r}"))
        elif road_class in ROAD_CLASSES:
            allowed = self.design_speeds.get(road_class, ())
            if allowed and speed not in allowed:
                out.append(Problem(file, f"{path}.design_speed_kmh",
                                   f"{speed!r} km/h is not a design speed of a {road_class} road "
                                   f"(CJJ 37-2012: {', '.join(map(str, allowed))})"))
            elif self.lane_capacity_vph(road_class, speed) is None:
                out.append(Problem(file, f"{path}.design_speed_kmh",
                                   f"no lane capacity for {speed!r} km/h in [road_capacity].lane_design_capacity_pcu_h"))
        return out


def _sourced(node: Any, key: str, path: str, file: str, problems: list[Problem]) -> tuple[Any, str] | None:
    """``key = { value = ..., source = "..." }`` of ``node``, or None with a problem."""
    if key not in node:
        problems.append(Problem(file, f"{path}.{key}", "missing"))
        return None
    v = node[key]
    if not isinstance(v, dict) or set(v) != {"value", "source"}:
        problems.append(Problem(file, f"{path}.{key}", "write { value = ..., source = \"where it comes from\" }"))
        return None
    if not isinstance(v["source"], str) or not v["source"].strip():
        problems.append(Problem(file, f"{path}.{key}.source", "must say where the value comes from"))
        return None
    return v["value"], v["source"]


def read_roads(path: str | Path | None = None, *, text: str | None = None) -> RoadSpec:
    """Read the roads of ``layout.toml`` (default: the repository's); never raises
    for content - problems are in ``RoadSpec.problems``."""
    path = Path(path) if path is not None else default_layout_path()
    file = path.name
    problems: list[Problem] = []
    try:
        doc = tomllib.loads(text if text is not None else path.read_text(encoding="utf-8"))
    except (OSError, tomllib.TOMLDecodeError) as e:
        return RoadSpec(file, {}, {}, 1.0, {}, (Problem(file, "", f"cannot read: {e}"),))

    speeds: dict[str, tuple[int, ...]] = {}
    caps: dict[str, dict[int, float]] = {}
    factor = 1.0
    rc = doc.get("road_capacity")
    if not isinstance(rc, dict):
        problems.append(Problem(file, "road_capacity", "missing: the lane capacities by design speed (CJJ 37-2012)"))
    else:
        for k in sorted(set(rc) - {"design_speeds_kmh", "lane_design_capacity_pcu_h", "signal_factor"}):
            problems.append(Problem(file, f"road_capacity.{k}", "unknown field (allowed: design_speeds_kmh, "
                                                                "lane_design_capacity_pcu_h, signal_factor)"))
        got = _sourced(rc, "design_speeds_kmh", "road_capacity", file, problems)
        if got is not None:
            for cls, vals in (got[0] if isinstance(got[0], dict) else {}).items():
                p = f"road_capacity.design_speeds_kmh.value.{cls}"
                if cls not in ROAD_CLASSES:
                    problems.append(Problem(file, p, f"{cls!r} is not one of {', '.join(ROAD_CLASSES)}"))
                elif not isinstance(vals, list) or not all(isinstance(x, int) and x > 0 for x in vals):
                    problems.append(Problem(file, p, "must be an array of design speeds in km/h"))
                else:
                    speeds[cls] = tuple(vals)
            if not isinstance(got[0], dict):
                problems.append(Problem(file, "road_capacity.design_speeds_kmh.value", "must be a table class -> speeds"))
        got = _sourced(rc, "lane_design_capacity_pcu_h", "road_capacity", file, problems)
        if got is not None:
            tbl = got[0] if isinstance(got[0], dict) else {}
            if not isinstance(got[0], dict):
                problems.append(Problem(file, "road_capacity.lane_design_capacity_pcu_h.value",
                                        "must be a table: expressway / other -> { design speed = pcu/h }"))
            for grp, row in tbl.items():
                p = f"road_capacity.lane_design_capacity_pcu_h.value.{grp}"
                if grp not in ("expressway", "other"):
                    problems.append(Problem(file, p, "is neither 'expressway' nor 'other'"))
                    continue
                if not isinstance(row, dict):
                    problems.append(Problem(file, p, "must be a table { design speed = pcu/h }"))
                    continue
                caps[grp] = {}
                for spd, cap in row.items():
                    if not str(spd).isdigit():
                        problems.append(Problem(file, f"{p}.{spd}", "a design speed in km/h (a whole number)"))
                    elif isinstance(cap, bool) or not isinstance(cap, (int, float)) or not cap > 0:
                        problems.append(Problem(file, f"{p}.{spd}", f"must be a positive number of pcu/h, not {cap!r}"))
                    else:
                        caps[grp][int(spd)] = float(cap)
        got = _sourced(rc, "signal_factor", "road_capacity", file, problems)
        if got is not None:
            v = got[0]
            if isinstance(v, bool) or not isinstance(v, (int, float)) or not 0 < v <= 1:
                problems.append(Problem(file, "road_capacity.signal_factor.value", f"must be in (0, 1], not {v!r}"))
            else:
                factor = float(v)

    spec = RoadSpec(file, speeds, caps, factor, {})
    lines: dict[str, dict[str, tuple[Any, str]]] = {}
    for ln in doc.get("line", []):
        if not isinstance(ln, dict) or ln.get("class") != "road":
            continue
        p = f"line[{ln.get('id')}]"
        n0 = len(problems)
        vals = {k: _sourced(ln, k, p, file, problems) for k in ROAD_FIELDS}
        if len(problems) == n0:
            problems += spec.check(*(vals[k][0] for k in ROAD_FIELDS), p)
        if len(problems) == n0:
            lines[str(ln.get("id"))] = vals
    return RoadSpec(file, speeds, caps, factor, lines, tuple(problems))


def segments_of(segment_ids: Iterable[str], attrs: Iterable[Any], spec: RoadSpec | None = None
                ) -> tuple[dict[str, Segment], list[Problem]]:
    """The :class:`Segment` of each road asset (ids with their inventory attrs, a
    dict or JSON text), and the problems of those that cannot be described:
    the inventory's own figures first, else the layout line of the road."""
    spec = read_roads() if spec is None else spec
    out: dict[str, Segment] = {}
    problems: list[Problem] = list(spec.problems)
    for sid, a in zip(segment_ids, attrs):
        a = json.loads(a) if isinstance(a, str) and a else (a if isinstance(a, dict) else {})
        if all(k in a for k in ROAD_FIELDS):
            where = f"inventory {sid} attrs"
            bad = spec.check(a["road_class"], a["lanes"], a["design_speed_kmh"], f"{sid}.attrs", "inventory")
            if bad:
                problems += bad
                continue
            cls, lanes, v = a["road_class"], a["lanes"], a["design_speed_kmh"]
            srcs = {k: "inventory attrs" for k in ROAD_FIELDS}
        else:
            line = line_of(sid)
            where = f"{spec.file} line[{line}]"
            vals = spec.lines.get(line)
            if vals is None:
                if not any(p.path.startswith(f"line[{line}]") for p in spec.problems):
                    problems.append(Problem(spec.file, f"line[{line}]",
                                            f"road segment {sid!r} has no road_class, lanes and design_speed_kmh "
                                            f"(neither here nor in its inventory attrs)"))
                continue
            cls, lanes, v = (vals[k][0] for k in ROAD_FIELDS)
            srcs = {k: vals[k][1] for k in ROAD_FIELDS}
        lane_cap = spec.lane_capacity_vph(cls, v)
        out[sid] = Segment(sid, cls, int(lanes), float(v), float(lane_cap), where, srcs)
    return out, problems
