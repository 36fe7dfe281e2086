"""Expansion of families into indicators over the inventory and the vocabularies.

A family's ``expand`` table names, per scope key, which members it runs over:

* ``"all"`` - every member: all 17 management zones, all 24 video
  algorithms, every gate, camera, road segment, bus route (from the bus stops'
  ``attrs.routes``), case category, warning signal, owning department ...;
* ``["a", "b"]`` - just these members (each must exist);
* zone only: ``{ space = ["walkway", "bridge"] }`` (zones of these space
  classes), ``{ containing = ["gate"] }`` (zones holding at least one asset of
  these types) and ``"with_class"`` (zones holding an asset of the row's
  facility class - used with ``class = "all"``);
* asset-like keys: ``{ types = ["fire_hydrant"] }`` (assets of these types).

The indicators are the cartesian product in the canonical key order, kept
where the joint tests hold, times the family's windows.  Thresholds with a
``scale`` are multiplied by the scope's inventory figure (a zone's capacity,
the number of assets of the class in the zone, a road segment's capacity or
free-flow speed - :mod:`.segments`) and departments written
``@zone`` / ``@asset`` / ``@class`` become the owner named in the inventory.

:func:`load_catalog` runs it all and returns a :class:`Catalog`; every
problem, from the file or from the inventory, is reported together.
"""
from __future__ import annotations

import json
from collections import Counter
from dataclasses import dataclass, field
from functools import cached_property
from itertools import product
from pathlib import Path
from typing import Any, Iterable

import numpy as np

from indicators.feeds.schemas import CASE_CATEGORIES, VIDEO_ALGORITHMS, WARNING_SIGNALS

from .ids import VALUE_RE, IndicatorId, Window, format as format_id
from .model import (
    REPO_ROOT, CatalogError, FacilityClass, Family, FamilyFile, Problem, SEGMENT_ATTRS, Thresholds, ZONE_ATTRS,
    read_families,
)
from .segments import RoadSpec, Segment, segments_of

__all__ = ["Dimensions", "Indicator", "Catalog", "expand", "load_catalog", "snapshot_path", "read_snapshot",
           "write_snapshot", "ASSET_KEYS"]

ASSET_KEYS = {"gate": ("gate",), "camera": ("cctv_camera",), "stop": ("bus_stop",),
              "station": ("metro_station", "tram_stop"), "segment": ("road",), "asset": None}


def snapshot_path() -> Path:
    return REPO_ROOT / "data" / "catalog" / "indicator_ids.txt"


@dataclass(frozen=True)
class Dimensions:
    """Members of every scope key, taken from the inventory and the feed vocabularies.

    The position of a member in ``members[key]`` is its dense integer code in
    the engine.  Per-asset facts (type, zone, owner, position) are parallel
    arrays indexed by the asset's code in ``members["asset"]``.
    """

    members: dict[str, tuple[str, ...]]
    zone_attrs: dict[str, dict[str, Any]]
    asset_type: np.ndarray            # object, per asset code
    asset_zone: np.ndarray            # object ('' when none)
    asset_dept: np.ndarray            # object
    asset_lon: np.ndarray             # float64 (representative point)
    asset_lat: np.ndarray
    classes: dict[str, FacilityClass]
    areas: dict[str, str]
    stop_routes: dict[str, tuple[str, ...]]
    department_aliases: dict[str, str] = field(default_factory=dict)
    segments: dict[str, Segment] = field(default_factory=dict)
    """Per road segment its class, lanes, design speed and capacity (:mod:`.segments`)."""
    segment_problems: tuple[Problem, ...] = ()

    def code(self, key: str) -> dict[str, int]:
        return self._codes[key]

    @cached_property
    def _codes(self) -> dict[str, dict[str, int]]:
        return {k: {m: i for i, m in enumerate(v)} for k, v in self.members.items()}

    def assets_of(self, types: Iterable[str]) -> np.ndarray:
        """Codes (in ``members['asset']``) of the assets of these types."""
        return np.flatnonzero(np.isin(self.asset_type, list(types)))

    @cached_property
    def site(self) -> tuple[float, float]:
        """(latitude, longitude) of the scenic area - its inventory asset's point -
        where operating schedules compute sunset and sunrise."""
        a = self.code("asset")[next(iter(self.areas.values()))]
        return float(self.asset_lat[a]), float(self.asset_lon[a])

    def class_assets(self, cls: str, zone: str | None = None) -> np.ndarray:
        c = self.classes[cls]
        idx = self.assets_of(c.asset_types)
        if zone is not None:
            idx = idx[self.asset_zone[idx] == zone]
        return idx

    @classmethod
    def from_inventory(cls, gdf, file: FamilyFile, roads: RoadSpec | None = None) -> "Dimensions":
        inv = gdf.sort_values("asset_id", kind="stable").reset_index(drop=True)
        attrs = [json.loads(a) if isinstance(a, str) and a else {} for a in inv["attrs"]]
        types = inv["type"].to_numpy(dtype=object)
        zone_rows = np.flatnonzero(types == "management_zone")
        zone_attrs = {}
        for i in zone_rows:
            a = attrs[i]
            zone_attrs[inv.at[i, "zone_id"]] = {**{k: a.get(k) for k in ZONE_ATTRS}, "space": a.get("space"),
                                                "department": inv.at[i, "department"]}
        stop_routes = {inv.at[i, "asset_id"]: tuple(str(r) for r in attrs[i].get("routes", []))
                       for i in np.flatnonzero(types == "bus_stop")}
        # a representative point per asset (points as is; lines/polygons by their centroid-ish point)
        geom = inv.geometry
        pts = geom.representative_point()
        members = {
            "area": tuple(sorted(file.areas)),
            "zone": tuple(sorted(zone_attrs)),
            "asset": tuple(inv["asset_id"]),
            "class": tuple(file.classes),
            "algorithm": tuple(VIDEO_ALGORITHMS),
            "signal": tuple(WARNING_SIGNALS),
            "category": tuple(CASE_CATEGORIES),
            "department": tuple(sorted(set(inv["department"].dropna()) - {""})),
            "route": tuple(sorted({r for rs in stop_routes.values() for r in rs})),
        }
        for key, tys in ASSET_KEYS.items():
            if tys is not None:
                members[key] = tuple(inv["asset_id"][np.isin(types, tys)])
        zone_col = inv["zone_id"].fillna("").to_numpy(dtype=object)
        road_rows = np.flatnonzero(np.isin(types, ASSET_KEYS["segment"]))
        segments, seg_problems = segments_of(inv["asset_id"].to_numpy(dtype=object)[road_rows],
                                             [attrs[i] for i in road_rows], roads)
        return cls(members, zone_attrs, types, zone_col, inv["department"].fillna("").to_numpy(dtype=object),
                   pts.x.to_numpy(dtype=float), pts.y.to_numpy(dtype=float), dict(file.classes),
                   dict(file.areas), stop_routes, dict(file.department_aliases),
                   segments=segments, segment_problems=tuple(seg_problems))


@dataclass(frozen=True)
class Indicator:
    """One expanded indicator: its id, family and resolved defaults."""

    index: int
    id: IndicatorId
    text: str
    family: Family
    thresholds: Thresholds
    department: str

    @property
    def scope(self) -> dict[str, str]:
        return dict(self.id.scope)

    @property
    def window(self) -> Window:
        return self.id.window


@dataclass(frozen=True)
class Catalog:
    """The expanded catalog: families, dimensions and the indicators in id order."""

    file: FamilyFile
    dims: Dimensions
    indicators: tuple[Indicator, ...]
    by_text: dict[str, int] = field(repr=False)

    @property
    def families(self) -> tuple[Family, ...]:
        return self.file.families

    @property
    def ids(self) -> list[str]:
        return [i.text for i in self.indicators]

    def __len__(self) -> int:
        return len(self.indicators)

    def index(self, indicator_id: str | IndicatorId) -> int:
        """Position of an id in the engine's value arrays."""
        text = indicator_id if isinstance(indicator_id, str) else format_id(indicator_id)
        try:
            return self.by_text[text]
        except KeyError:
            raise KeyError(f"no indicator {text!r} in the catalog") from None

    def of_family(self, family_id: str) -> list[Indicator]:
        return [i for i in self.indicators if i.family.id == family_id]

    def summary(self) -> dict[str, Any]:
        """Total and counts by family, scope, feed, level and side (``scenic-twin catalog --json``)."""
        def count(key) -> dict[str, int]:
            c = Counter(key(i) for i in self.indicators)
            return dict(sorted(c.items()))
        return {
            "total": len(self.indicators),
            "expected_total": self.file.expected_total,
            "families": len(self.families),
            "by_family": {f.id: sum(1 for i in self.indicators if i.family is f) for f in self.families},
            "by_scope": count(lambda i: i.family.scope),
            "by_feed": count(lambda i: i.family.feed),
            "by_level": count(lambda i: i.family.level),
            "by_side": count(lambda i: i.family.side),
            "by_kind": count(lambda i: i.family.compute.kind),
        }


# ------------------------------------------------------------------ expansion
def _members(dims: Dimensions, fam: Family, key: str, sel: Any, problems: list[Problem], file: str) -> list[str] | None:
    p = f"family[{fam.index}].expand.{key}"
    allm = dims.members.get(key, ())
    if sel == "all":
        return list(allm)
    if sel == "with_class":
        if key != "zone":
            problems.append(Problem(file, p, "'with_class' selects zones"))
            return None
        if "class" not in fam.expand:
            problems.append(Problem(file, p, "'with_class' needs the family to expand over class too"))
            return None
        return list(allm)                          # filtered jointly below
    if isinstance(sel, list):
        missing = [m for m in sel if m not in allm]
        for m in missing:
            problems.append(Problem(file, p, f"{m!r} is not a known {key} "
                                             f"(known: {', '.join(allm[:8])}{' ...' if len(allm) > 8 else ''})"))
        if not sel:
            problems.append(Problem(file, p, "an empty list selects nothing"))
        return None if missing or not sel else list(sel)
    if isinstance(sel, dict) and len(sel) == 1:
        (how, arg), = sel.items()
        if key == "zone" and how == "space":
            spaces = {a["space"] for a in dims.zone_attrs.values()}
            bad = [s for s in arg if s not in spaces] if isinstance(arg, list) else [arg]
            if bad or not arg:
                problems.append(Problem(file, f"{p}.space", f"unknown space(s) {bad!r} (known: {', '.join(sorted(spaces))})"))
                return None
            return [z for z in allm if dims.zone_attrs[z]["space"] in arg]
        if key == "zone" and how == "containing":
            known = set(dims.asset_type)
            bad = [t for t in arg if t not in known] if isinstance(arg, list) else [arg]
            if bad or not arg:
                problems.append(Problem(file, f"{p}.containing", f"unknown asset type(s) {bad!r}"))
                return None
            zs = set(dims.asset_zone[dims.assets_of(arg)])
            return [z for z in allm if z in zs]
        if key in ASSET_KEYS and how == "types":
            known = set(dims.asset_type)
            bad = [t for t in arg if t not in known] if isinstance(arg, list) else [arg]
            if bad or not arg:
                problems.append(Problem(file, f"{p}.types", f"unknown asset type(s) {bad!r}"))
                return None
            idx = dims.assets_of(arg)
            chosen = set(np.asarray(dims.members["asset"], dtype=object)[idx])
            return [m for m in allm if m in chosen]
    problems.append(Problem(file, p, f"cannot select {sel!r}: write \"all\", a list of members"
                                     + (", { space = [...] }, { containing = [...] } or \"with_class\"" if key == "zone"
                                        else ", or { types = [...] }" if key in ASSET_KEYS else "")))
    return None


def _family_class(fam: Family, scope: dict[str, str]) -> str:
    """The facility class of a scope: from the id (expand.class) or from compute.class."""
    return scope.get("class") or fam.compute.get("class")


def _department(dims: Dimensions, fam: Family, scope: dict[str, str]) -> str:
    d = fam.department
    if d == "@zone":
        return dims.zone_attrs[scope["zone"]]["department"]
    if d == "@department":
        return scope["department"]
    if d == "@class":
        cls = _family_class(fam, scope)
        if "zone" in scope:      # the usual owner of this class's assets in the zone
            owners = Counter(dims.asset_dept[dims.class_assets(cls, scope["zone"])])
            if owners:
                return sorted(owners.items(), key=lambda kv: (-kv[1], kv[0]))[0][0]
        return dims.classes[cls].department
    if d == "@asset":
        for k in ("gate", "camera", "asset", "station", "stop", "segment"):
            if k in scope:
                return dims.asset_dept[dims.code("asset")[scope[k]]]
    return d


def _threshold_scale(dims: Dimensions, fam: Family, scope: dict[str, str]) -> float | None:
    """The scope's figure the family's thresholds are fractions of (None: the segment has none)."""
    s = fam.thresholds.scale
    if s is None:
        return 1.0
    if s == "class_assets":
        return float(len(dims.class_assets(_family_class(fam, scope), scope.get("zone"))))
    if s in SEGMENT_ATTRS:
        if "segment" in scope:
            seg = dims.segments.get(scope["segment"])
            return None if seg is None else seg.attr(s)
        vals = [seg.attr(s) for seg in dims.segments.values()]     # the area: its segments together
        if not vals or len(vals) < len(dims.members.get("segment", ())):
            return None
        return sum(vals) if s == "capacity_vph" else sum(vals) / len(vals)
    return float(dims.zone_attrs[scope["zone"]][s])


def expand(file: FamilyFile, dims: Dimensions) -> list[tuple[IndicatorId, Family, Thresholds, str]]:
    """All (id, family, thresholds, department) of the file, in declaration order; raise on any problem."""
    problems: list[Problem] = []
    name = file.file
    known_depts = set(dims.members["department"])
    for a, asset in file.areas.items():
        if asset not in dims.code("asset") or dims.asset_type[dims.code("asset")[asset]] != "scenic_area":
            problems.append(Problem(name, f"areas.{a}", f"{asset!r} is not a scenic_area asset of the inventory"))
    for alias, dept in file.department_aliases.items():
        if dept not in known_depts:
            problems.append(Problem(name, f"department_aliases.{alias}", f"{dept!r} owns nothing in the inventory"))
    for cname, cls in file.classes.items():
        for j, t in enumerate(cls.asset_types):
            if t not in set(dims.asset_type):
                problems.append(Problem(name, f"classes.{cname}.asset_types[{j}]", f"no asset of type {t!r} in the inventory"))
        if cls.department not in known_depts:
            problems.append(Problem(name, f"classes.{cname}.department", f"{cls.department!r} owns nothing in the inventory"))
        for zone in cls.zone_schedule:
            if zone not in dims.zone_attrs or not len(dims.class_assets(cname, zone)):
                problems.append(Problem(name, f"classes.{cname}.zone_schedule.{zone}",
                                        f"{zone!r} is no zone holding assets of the class"))
    for rid in file.route_service:
        if rid not in dims.members["route"]:
            problems.append(Problem(name, f"routes.{rid}", f"no stop of the inventory is served by route {rid!r}"))
    if any(f.thresholds.scale in SEGMENT_ATTRS for f in file.families):
        problems.extend(dims.segment_problems)          # the roads' class, lanes and design speed (layout.toml)
    out: list[tuple[IndicatorId, Family, Thresholds, str]] = []
    for fam in file.families:
        if not fam.department.startswith("@") and fam.department not in known_depts:
            problems.append(Problem(name, f"family[{fam.index}].department",
                                    f"{fam.department!r} owns nothing in the inventory"))
        keys = fam.keys
        lists = [_members(dims, fam, k, fam.expand[k], problems, name) for k in keys]
        if any(x is None for x in lists):
            continue
        n0 = len(out)
        for combo in product(*lists):
            scope = dict(zip(keys, combo))
            if fam.expand.get("zone") == "with_class" and not len(dims.class_assets(scope["class"], scope["zone"])):
                continue
            bad = [v for v in combo if not VALUE_RE.match(v)]
            if bad:
                problems.append(Problem(name, f"family[{fam.index}].expand",
                                        f"member {bad[0]!r} cannot be written in an id ({VALUE_RE.pattern})"))
                break
            th = fam.thresholds
            if th.scale is not None:
                factor = _threshold_scale(dims, fam, scope)
                if factor is None:
                    if not dims.segment_problems:
                        what = f"segment {scope['segment']!r}" if "segment" in scope else "a segment of the area"
                        problems.append(Problem(name, f"family[{fam.index}].thresholds.scale",
                                                f"{what} has no {th.scale}"))
                    continue
                th = th.scaled(factor)
                if fam.thresholds.scale in SEGMENT_ATTRS:       # veh/h and km/h: no float dust in the messages
                    th = Thresholds(th.direction, *(None if x is None else round(x, 3) for x in th.tiers()))
            if th.min_failed:       # a small zone's tiers need more than one failed asset
                th = th.capped(len(dims.class_assets(_family_class(fam, scope), scope.get("zone"))))
            dept = _department(dims, fam, scope)
            for w in fam.windows:
                out.append((IndicatorId.of(fam.id, scope, w), fam, th, dept))
        if len(out) == n0 and not problems:
            problems.append(Problem(name, f"family[{fam.index}].expand", "expands to no indicator"))
    if not problems and len(out) != file.expected_total:
        problems.append(Problem(name, "expected_total", f"the families expand to {len(out)} indicators, "
                                                        f"not {file.expected_total}"))
    if problems:
        raise CatalogError(problems)
    return out


def load_catalog(families: str | Path | FamilyFile | None = None, inventory=None,
                 roads: RoadSpec | None = None) -> Catalog:
    """Read, check and expand the catalog against the inventory (default: the repository's files);
    ``roads``: the roads' class, lanes and design speed (default: ``data/sources/layout.toml``)."""
    file = families if isinstance(families, FamilyFile) else read_families(families)
    if inventory is None or isinstance(inventory, (str, Path)):
        from twin_assets import inventory as inv
        inventory = inv.load(inventory)
    dims = Dimensions.from_inventory(inventory, file, roads)
    rows = expand(file, dims)
    rows.sort(key=lambda r: format_id(r[0]))
    indicators = tuple(Indicator(i, iid, format_id(iid), fam, th, dept) for i, (iid, fam, th, dept) in enumerate(rows))
    return Catalog(file, dims, indicators, {x.text: x.index for x in indicators})


def read_snapshot(path: str | Path | None = None) -> list[str]:
    """The reviewed id list (one id per line, sorted)."""
    text = Path(path or snapshot_path()).read_text(encoding="utf-8")
    return [line for line in text.splitlines() if line.strip()]


def write_snapshot(catalog: Catalog, path: str | Path | None = None) -> Path:
    path = Path(path or snapshot_path())
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(f"{t}\n" for t in catalog.ids), encoding="utf-8")
    return path
