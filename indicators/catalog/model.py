"""The indicator catalog as data: families, classes and areas read from TOML, strictly checked.

``data/catalog/families.toml`` declares *families*; a family expands over
inventory entities (zones, gates, cameras, routes ...) and vocabularies (the
24 video algorithms, warning signals, case categories) into indicators (see
:mod:`.expand`).  Code holds only the few *kinds* of statistic that compute
them (:mod:`indicators.engine`).

:func:`read_families` checks the file the way Prometheus' ``rulefmt`` checks
rule files: every problem is collected with its file and path
(``families.toml: family[12].thresholds.red: must be above orange for
direction 'above'``) and all of them are reported at once in a
:class:`CatalogError`.  Checks that need the inventory (does that asset
type exist?) run in :func:`indicators.catalog.expand.expand` and report the
same way.

The feed model (:data:`FEEDS`) says what each feed kind can be attributed
to - a video event has a zone, a camera and an algorithm; a facility
reading belongs to an asset of a class in a zone - so a family that asks for
something its feed cannot give is refused here, not discovered by a dead
indicator later.
"""
from __future__ import annotations

import math
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from indicators.feeds.scenarios import parse_hhmm
from indicators.feeds.schemas import FACILITY_METRICS, SCHEMAS

from .ids import FAMILY_RE, SCOPE_KEYS, VALUE_RE, IdError, Window, parse_window
from .schedule import SCHEDULE_KINDS, Schedule

__all__ = ["Problem", "CatalogError", "Thresholds", "Family", "FacilityClass", "FamilyFile", "Compute",
           "FEEDS", "FeedModel", "KINDS", "SCOPE_KINDS", "LEVELS", "SIDES", "ZONE_ATTRS", "SEGMENT_ATTRS", "TIERS",
           "read_families", "parse_families", "default_families_path"]

REPO_ROOT = Path(__file__).resolve().parents[2]
TIERS = ("blue", "yellow", "orange", "red")
LEVELS = ("city", "district", "scenic_area")
SIDES = ("government", "enterprise", "society")
SCOPE_KINDS = {            # scope kind -> the scope keys that name such an entity
    "area": ("area",), "zone": ("zone",), "asset": ("gate", "asset"), "route": ("route",),
    "segment": ("segment",), "station": ("station", "stop"), "camera": ("camera",),
}
ZONE_ATTRS = ("capacity_instantaneous", "capacity_daily", "effective_area_m2", "area_m2", "average_stay_h",
              "open_hours")
SEGMENT_ATTRS = ("capacity_vph", "free_flow_speed_kmh")
"""A road segment's figures (:mod:`.segments`): what it carries, veh/h, and its free-flow speed, km/h."""
THRESHOLD_SCALES = ZONE_ATTRS + SEGMENT_ATTRS + ("class_assets",)
DEPARTMENT_FROM = ("@zone", "@asset", "@class", "@department")


def default_families_path() -> Path:
    return REPO_ROOT / "data" / "catalog" / "families.toml"


@dataclass(frozen=True)
class Problem:
    """One thing wrong in a catalog file, with where it is."""

    file: str
    path: str
    message: str

    def __str__(self) -> str:
        return f"{self.file}: {self.path}: {self.message}" if self.path else f"{self.file}: {self.message}"


class CatalogError(ValueError):
    """The catalog is wrong; ``problems`` lists every problem found."""

    def __init__(self, problems: list[Problem]) -> None:
        self.problems = list(problems)
        super().__init__(f"{len(self.problems)} catalog problem(s):\n  " + "\n  ".join(map(str, self.problems)))


# ----------------------------------------------------------------- feed model
@dataclass(frozen=True)
class FeedModel:
    """What records of one feed kind can be attributed to and measured by.

    ``dims``: scope keys an event can be counted under (window/today kinds);
    ``entities``: things whose *latest* value is tracked, each with the scope
    keys it belongs to; ``values``: numeric columns (or derived ones the
    encoder adds, like a gate's ``net`` = entries - exits); ``filters``:
    columns a family may filter on, with the allowed tests.
    """

    dims: frozenset[str]
    entities: dict[str, frozenset[str]] = field(default_factory=dict)
    values: frozenset[str] = frozenset()
    filters: dict[str, tuple[str, ...]] = field(default_factory=dict)


FEEDS: dict[str, FeedModel] = {
    "crowd": FeedModel(frozenset({"area", "zone"}), {"zone": frozenset({"area", "zone"})},
                       frozenset({"count"}), {"cell_id": ("null",)}),
    "gate": FeedModel(frozenset({"area", "zone", "gate"}), {},
                      frozenset({"entries", "exits", "net"})),
    "video": FeedModel(frozenset({"area", "zone", "camera", "algorithm"}), {},
                       frozenset({"events", "object_count"})),
    "facility": FeedModel(frozenset(), {"asset_metric": frozenset({"area", "zone", "asset", "camera", "class"})},
                          frozenset({"value"})),
    "bus": FeedModel(frozenset({"area", "route", "stop"}), {},
                     frozenset({"events", "delay_s", "occupancy_pct", "speed_mps"})),
    "station": FeedModel(frozenset({"area", "station"}), {"station": frozenset({"area", "station"})},
                         frozenset({"entries", "exits", "platform_persons", "control_level"})),
    "traffic": FeedModel(frozenset({"area", "segment"}), {"segment": frozenset({"area", "segment"})},
                         frozenset({"speed_kmh", "flow_vph", "occupancy_pct"})),
    "weather": FeedModel(frozenset({"area"}), {"weather_station": frozenset({"area"})},
                         frozenset({"temperature_c", "rain_1h_mm", "wind_speed_ms", "gust_ms", "humidity_pct",
                                    "visibility_m"})),
    "warning": FeedModel(frozenset({"area", "signal"})),
    "case": FeedModel(frozenset({"area", "category", "zone", "department"})),
    "staff": FeedModel(frozenset({"area", "asset"}), {"staff": frozenset({"area"})}, frozenset({"status"})),
}
assert set(FEEDS) == set(SCHEMAS), "every feed kind of the schemas needs a feed model"
STAFF_STATUSES = ("available", "busy", "offline")

# compute kind -> (allowed params, required params, window kinds it accepts)
KINDS: dict[str, tuple[frozenset[str], frozenset[str], frozenset[str]]] = {
    "latest": (frozenset({"kind", "entity", "value", "where", "agg", "cond", "post", "class", "metric"}),
               frozenset({"entity", "value"}), frozenset({"now"})),
    "window": (frozenset({"kind", "value", "stat", "where", "post"}), frozenset({"value", "stat"}),
               frozenset({"trailing"})),
    "today": (frozenset({"kind", "value", "stat", "where", "post"}), frozenset({"value"}), frozenset({"today"})),
    "visits_today": (frozenset({"kind", "entity", "value", "where", "stay", "post"}),
                     frozenset({"entity", "value", "stay"}), frozenset({"today"})),
    "distinct": (frozenset({"kind", "of", "post"}), frozenset({"of"}), frozenset({"trailing"})),
    "change": (frozenset({"kind", "entity", "value", "where"}), frozenset({"entity", "value"}),
               frozenset({"trailing"})),
    "forecast": (frozenset({"kind", "of", "lookback_s"}), frozenset({"of", "lookback_s"}), frozenset({"ahead"})),
    "case": (frozenset({"kind", "stat", "deadline_s", "joint"}), frozenset({"stat"}), frozenset({"now", "today"})),
    "warning": (frozenset({"kind", "stat"}), frozenset({"stat"}), frozenset({"now"})),
    "visit_age": (frozenset({"kind", "radius_m"}), frozenset({"radius_m"}), frozenset({"now"})),
}
AGGS = ("value", "sum", "mean", "min", "max", "count_where", "percent_where")
WINDOW_STATS = ("count", "sum", "mean", "max", "min")
CASE_STATS = {"open": "now", "overdue": "now", "opened": "today", "close_rate": "today", "time_to_close": "today"}
WARNING_STATS = ("level", "highest", "active")
COND_OPS = ("<", "<=", ">", ">=", "==", "!=")
POST_OPS = ("divide_by", "multiply", "per_minute", "headway", "bins")


# -------------------------------------------------------------- data classes
@dataclass(frozen=True)
class Thresholds:
    """Four-tier default thresholds (blue < yellow < orange < red in severity).

    ``direction`` ``above``: a tier is reached when the value is >= its
    threshold; ``below``: when it is <= it.  A tier may be left out (None),
    e.g. a binary "running" status has only an orange tier.  ``scale`` names
    an inventory quantity the numbers are fractions of (a zone's capacity,
    the number of assets of a class in the scope, a road segment's capacity
    or free-flow speed); expansion multiplies it in.
    """

    direction: str
    blue: float | None = None
    yellow: float | None = None
    orange: float | None = None
    red: float | None = None
    scale: str | None = None
    min_failed: tuple[tuple[str, int], ...] = ()
    """For a share of a class's assets in a zone (``below``, in %): per tier, how
    many of the zone's assets must be failed before the tier can be reached.
    Expansion lowers the tier's threshold to ``100 × (n - k) / n`` for a zone of
    ``n`` assets (a tier no zone of that size can reach is left out): one of a
    footbridge's five cameras down is 80 %, not a red alarm."""

    def tiers(self) -> tuple[float | None, ...]:
        return (self.blue, self.yellow, self.orange, self.red)

    def scaled(self, factor: float) -> "Thresholds":
        f = (lambda x: None if x is None else x * factor)
        return Thresholds(self.direction, f(self.blue), f(self.yellow), f(self.orange), f(self.red), None,
                          self.min_failed)

    def capped(self, n_assets: int) -> "Thresholds":
        """The tiers for a zone of ``n_assets`` assets under :attr:`min_failed`."""
        if not self.min_failed:
            return self
        vals = dict(zip(TIERS, self.tiers()))
        for t, k in self.min_failed:
            if vals[t] is None:
                continue
            if n_assets <= 0 or k > n_assets:
                vals[t] = None
            else:       # rounded up to 0.01 %: k failed of n must reach it (1 of 3 is 33.333… <= 33.34)
                vals[t] = min(vals[t], math.ceil(10000.0 * (n_assets - k) / n_assets) / 100.0)
        return Thresholds(self.direction, *(vals[t] for t in TIERS), self.scale, ())


@dataclass(frozen=True)
class Compute:
    """How a family is computed: one statistic kind and its parameters."""

    kind: str
    params: dict[str, Any] = field(hash=False, compare=True)

    def get(self, key: str, default: Any = None) -> Any:
        return self.params.get(key, default)


@dataclass(frozen=True)
class FacilityClass:
    """A class of street furniture watched by one sensor metric, with its anomaly test.

    ``schedule``: when its assets are expected to work (None: always), with
    other schedules for the assets of some zones (``zone_schedule``);
    ``silent_after_s``: an asset whose newest reading is older than this is
    *not reporting* - a data-quality matter, neither available nor failed.
    """

    name: str
    name_zh: str
    name_en: str
    asset_types: tuple[str, ...]
    metric: str
    anomaly_op: str
    anomaly_value: float
    department: str
    silent_after_s: int = 900
    schedule: Schedule | None = None
    zone_schedule: dict[str, Schedule] = field(default_factory=dict, hash=False)

    def schedule_for(self, zone: str | None) -> Schedule | None:
        """The operating schedule of the class's assets in ``zone`` (None: always expected)."""
        return self.zone_schedule.get(zone, self.schedule) if zone else self.schedule


@dataclass(frozen=True)
class Family:
    """One declared family (see the module docstring of :mod:`.expand` for expansion)."""

    index: int
    id: str
    name_zh: str
    name_en: str
    description: str
    unit: str
    scope: str
    expand: dict[str, Any] = field(hash=False)
    windows: tuple[Window, ...]
    source: tuple[str, ...]
    level: str
    side: str
    department: str
    freshness_s: int
    thresholds: Thresholds
    compute: Compute

    @property
    def feed(self) -> str:
        return self.source[0]

    @property
    def keys(self) -> tuple[str, ...]:
        """Scope keys of this family's ids, in canonical order."""
        return tuple(k for k in SCOPE_KEYS if k in self.expand)


@dataclass(frozen=True)
class FamilyFile:
    """The parsed, checked content of ``families.toml``."""

    file: str
    expected_total: int
    areas: dict[str, str]
    classes: dict[str, FacilityClass]
    families: tuple[Family, ...]
    department_aliases: dict[str, str] = field(default_factory=dict)
    route_service: dict[str, Schedule] = field(default_factory=dict)
    """Service hours of the bus routes: outside them a route's indicators are idle."""


# ----------------------------------------------------------------- checking
class _Checker:
    """Collects problems with their paths while reading one TOML document."""

    def __init__(self, file: str) -> None:
        self.file = file
        self.problems: list[Problem] = []

    def add(self, path: str, message: str) -> None:
        self.problems.append(Problem(self.file, path, message))

    def table(self, node: Any, path: str) -> dict | None:
        if not isinstance(node, dict):
            self.add(path, f"must be a table, not {_tname(node)}")
            return None
        return node

    def keys(self, node: dict, path: str, allowed: frozenset[str] | set[str], required: frozenset[str] | set[str]) -> None:
        for k in sorted(set(node) - set(allowed)):
            self.add(f"{path}.{k}" if path else k, f"unknown field (allowed: {', '.join(sorted(allowed))})")
        for k in sorted(set(required) - set(node)):
            self.add(f"{path}.{k}" if path else k, "missing")

    def string(self, node: dict, key: str, path: str, *, choices: tuple[str, ...] | None = None,
               pattern=None, empty_ok: bool = False) -> str | None:
        if key not in node:
            return None
        v = node[key]
        p = f"{path}.{key}"
        if not isinstance(v, str):
            self.add(p, f"must be a string, not {_tname(v)}")
            return None
        if not v.strip() and not empty_ok:
            self.add(p, "must not be empty")
            return None
        if choices is not None and v not in choices:
            self.add(p, f"{v!r} is not one of {', '.join(choices)}")
            return None
        if pattern is not None and not pattern.match(v):
            self.add(p, f"{v!r} does not match {pattern.pattern}")
            return None
        return v

    def number(self, node: dict, key: str, path: str, *, positive: bool = False, integer: bool = False) -> float | None:
        if key not in node:
            return None
        v = node[key]
        p = f"{path}.{key}"
        if isinstance(v, bool) or not isinstance(v, (int, float)) or (isinstance(v, float) and not math.isfinite(v)):
            self.add(p, f"must be a finite number, not {v!r}")
            return None
        if integer and not isinstance(v, int):
            self.add(p, f"must be a whole number, not {v!r}")
            return None
        if positive and v <= 0:
            self.add(p, f"must be positive, not {v!r}")
            return None
        return v


def _tname(v: Any) -> str:
    return {dict: "a table", list: "an array", str: "a string", bool: "a boolean"}.get(type(v), type(v).__name__)


def read_families(path: str | Path | None = None) -> FamilyFile:
    """Read and check ``families.toml``; raise :class:`CatalogError` listing every problem."""
    path = Path(path or default_families_path())
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as e:
        raise CatalogError([Problem(path.name, "", f"cannot read: {e.strerror or e}")]) from None
    return parse_families(text, file=path.name)


def parse_families(text: str, *, file: str = "families.toml") -> FamilyFile:
    """Parse and check the text of a families file (see :func:`read_families`)."""
    c = _Checker(file)
    try:
        doc = tomllib.loads(text)
    except tomllib.TOMLDecodeError as e:
        raise CatalogError([Problem(file, "", f"not valid TOML: {e}")]) from None

    c.keys(doc, "", {"schema_version", "expected_total", "areas", "classes", "department_aliases", "routes", "family"},
           {"schema_version", "expected_total", "areas", "family"})
    if "schema_version" in doc and doc["schema_version"] != 1:
        c.add("schema_version", f"unsupported version {doc['schema_version']!r} (this code reads 1)")
    expected = c.number(doc, "expected_total", "", positive=True, integer=True)

    areas: dict[str, str] = {}
    if "areas" in doc and c.table(doc["areas"], "areas") is not None:
        for k, v in doc["areas"].items():
            if not VALUE_RE.match(k):
                c.add(f"areas.{k}", f"area id must match {VALUE_RE.pattern}")
            elif not isinstance(v, str) or not v:
                c.add(f"areas.{k}", "must be the inventory asset id of the scenic_area")
            else:
                areas[k] = v
        if not doc["areas"]:
            c.add("areas", "declare at least one area")

    aliases: dict[str, str] = {}
    if "department_aliases" in doc and c.table(doc["department_aliases"], "department_aliases") is not None:
        for k, v in doc["department_aliases"].items():
            if not isinstance(v, str) or not VALUE_RE.match(v):
                c.add(f"department_aliases.{k}", f"must name an inventory department id, not {v!r}")
            else:
                aliases[k] = v

    classes: dict[str, FacilityClass] = {}
    if "classes" in doc and c.table(doc["classes"], "classes") is not None:
        for name, node in doc["classes"].items():
            cls = _read_class(c, name, node)
            if cls is not None:
                classes[name] = cls

    # [routes.<route id>] service = { kind = "hours", hours = [...], source }: when the route runs
    route_service: dict[str, Schedule] = {}
    if "routes" in doc and c.table(doc["routes"], "routes") is not None:
        for rid, node in doc["routes"].items():
            p = f"routes.{rid}"
            if c.table(node, p) is None:
                continue
            c.keys(node, p, {"service"}, {"service"})
            if "service" in node:
                sch = _read_schedule(c, node["service"], f"{p}.service")
                if sch is not None:
                    route_service[str(rid)] = sch

    fams: list[Family] = []
    raw = doc.get("family", [])
    if "family" in doc and not isinstance(raw, list):
        c.add("family", "must be an array of tables ([[family]])")
        raw = []
    seen: dict[str, int] = {}
    for i, node in enumerate(raw):
        fid = node.get("id") if isinstance(node, dict) else None
        if isinstance(fid, str) and fid in seen:
            c.add(f"family[{i}].id", f"{fid!r} is already declared by family[{seen[fid]}]")
        f = _read_family(c, i, node, classes)
        if isinstance(fid, str):
            seen.setdefault(fid, i)
        if f is not None and seen[f.id] == i:
            fams.append(f)
    by_id = {f.id: f for f in fams}
    for f in fams:                      # references between families
        if f.compute.kind != "forecast":
            continue
        of = f.compute.get("of")
        target = by_id.get(of)
        p = f"family[{f.index}].compute.of"
        if target is None:
            c.add(p, f"no family {of!r} in this file")
        elif target.compute.kind != "latest" or target.feed != "crowd" or set(target.expand) != {"zone"}:
            c.add(p, f"{of!r} is not a per-zone latest crowd family (a forecast extends one, e.g. crowd.load_rate)")
        elif target.expand != f.expand:
            c.add(f"family[{f.index}].expand", f"a forecast expands over the same zones as {of!r}")
    if c.problems:
        raise CatalogError(c.problems)
    return FamilyFile(file, int(expected or 0), areas, classes, tuple(fams), aliases, route_service)


CLASS_FIELDS = {"name_zh", "name_en", "asset_types", "metric", "anomaly", "department", "silent_after_s",
                "schedule", "zone_schedule"}
CLASS_REQUIRED = {"name_zh", "name_en", "asset_types", "metric", "anomaly", "department", "silent_after_s"}


def _read_class(c: _Checker, name: str, node: Any) -> FacilityClass | None:
    p = f"classes.{name}"
    if not VALUE_RE.match(name):
        c.add(p, f"class name must match {VALUE_RE.pattern}")
    if c.table(node, p) is None:
        return None
    n0 = len(c.problems)
    c.keys(node, p, CLASS_FIELDS, CLASS_REQUIRED)
    zh = c.string(node, "name_zh", p)
    en = c.string(node, "name_en", p)
    metric = c.string(node, "metric", p, choices=tuple(FACILITY_METRICS))
    dept = c.string(node, "department", p, pattern=VALUE_RE)
    types = node.get("asset_types")
    if "asset_types" in node and (not isinstance(types, list) or not types or not all(isinstance(t, str) for t in types)):
        c.add(f"{p}.asset_types", "must be a non-empty array of inventory asset types")
    an = node.get("anomaly")
    op = val = None
    if "anomaly" in node and c.table(an, f"{p}.anomaly") is not None:
        c.keys(an, f"{p}.anomaly", {"op", "value"}, {"op", "value"})
        op = c.string(an, "op", f"{p}.anomaly", choices=COND_OPS)
        val = c.number(an, "value", f"{p}.anomaly")
    silent = None
    if "silent_after_s" in node and c.table(node["silent_after_s"], f"{p}.silent_after_s") is not None:
        q = f"{p}.silent_after_s"
        c.keys(node["silent_after_s"], q, {"value", "source"}, {"value", "source"})
        silent = c.number(node["silent_after_s"], "value", q, positive=True, integer=True)
        c.string(node["silent_after_s"], "source", q)
    schedule = _read_schedule(c, node["schedule"], f"{p}.schedule") if "schedule" in node else None
    zone_schedule: dict[str, Schedule] = {}
    if "zone_schedule" in node and c.table(node["zone_schedule"], f"{p}.zone_schedule") is not None:
        for zone, sn in node["zone_schedule"].items():
            if not VALUE_RE.match(zone):
                c.add(f"{p}.zone_schedule.{zone}", f"a zone id must match {VALUE_RE.pattern}")
            sch = _read_schedule(c, sn, f"{p}.zone_schedule.{zone}")
            if sch is not None:
                zone_schedule[zone] = sch
    if len(c.problems) > n0:
        return None
    return FacilityClass(name, zh, en, tuple(types), metric, op, float(val), dept, int(silent), schedule,
                         zone_schedule)


def _read_schedule(c: _Checker, node: Any, p: str) -> Schedule | None:
    """``{ kind = "hours", hours = ["09:30", "22:30"], source }`` or
    ``{ kind = "night", after_sunset_min, before_sunrise_min, source }`` (see :mod:`.schedule`)."""
    if c.table(node, p) is None:
        return None
    n0 = len(c.problems)
    kind = c.string(node, "kind", p, choices=SCHEDULE_KINDS)
    if "kind" not in node:
        c.add(f"{p}.kind", f"missing (one of {', '.join(SCHEDULE_KINDS)})")
    c.string(node, "source", p)
    if kind == "hours":
        c.keys(node, p, {"kind", "hours", "source"}, {"kind", "hours", "source"})
        hours = node.get("hours")
        mins: list[int] = []
        if "hours" in node:
            if not isinstance(hours, list) or len(hours) != 2:
                c.add(f"{p}.hours", "must be [\"HH:MM\", \"HH:MM\"] (opening, closing; local time)")
            else:
                for j, h in enumerate(hours):
                    try:
                        mins.append(parse_hhmm(h))
                    except ValueError as e:
                        c.add(f"{p}.hours[{j}]", str(e))
                if len(mins) == 2 and mins[0] % 1440 == mins[1] % 1440:
                    c.add(f"{p}.hours", "opening and closing are the same time: leave the schedule out "
                                        "for an asset expected to work all day")
        if len(c.problems) > n0:
            return None
        return Schedule("hours", start_min=mins[0], end_min=mins[1], source=node["source"])
    if kind == "night":
        c.keys(node, p, {"kind", "after_sunset_min", "before_sunrise_min", "source"},
               {"kind", "after_sunset_min", "before_sunrise_min", "source"})
        after = c.number(node, "after_sunset_min", p)
        before = c.number(node, "before_sunrise_min", p)
        for k, v in (("after_sunset_min", after), ("before_sunrise_min", before)):
            if v is not None and not -180 <= v <= 180:
                c.add(f"{p}.{k}", f"must be within 3 hours of the sun time, not {v!r}")
        if len(c.problems) > n0:
            return None
        return Schedule("night", after_sunset_min=float(after), before_sunrise_min=float(before),
                        source=node["source"])
    return None


def _read_thresholds(c: _Checker, node: Any, p: str) -> Thresholds | None:
    if c.table(node, p) is None:
        return None
    n0 = len(c.problems)
    c.keys(node, p, {"direction", "scale", "min_failed", *TIERS}, {"direction"})
    direction = c.string(node, "direction", p, choices=("above", "below"))
    scale = c.string(node, "scale", p, choices=THRESHOLD_SCALES)
    min_failed: list[tuple[str, int]] = []
    if "min_failed" in node and c.table(node["min_failed"], f"{p}.min_failed") is not None:
        last = 0
        for t in TIERS:
            k = node["min_failed"].get(t)
            if k is None:
                continue
            if not isinstance(k, int) or isinstance(k, bool) or k < 1 or k < last:
                c.add(f"{p}.min_failed.{t}", f"must be a whole number >= 1 and >= the milder tiers', not {k!r}")
                continue
            last = k
            min_failed.append((t, k))
        for t in node["min_failed"]:
            if t not in TIERS:
                c.add(f"{p}.min_failed.{t}", f"unknown tier (one of {', '.join(TIERS)})")
        if node.get("direction") != "below":
            c.add(f"{p}.min_failed", "only for a share of working assets (direction 'below')")
    vals = {t: c.number(node, t, p) for t in TIERS}
    given = [(t, v) for t, v in vals.items() if v is not None]
    if not given and not any(t in node for t in TIERS):
        c.add(p, "needs at least one tier of blue, yellow, orange, red")
    if direction:
        for (t0, v0), (t1, v1) in zip(given, given[1:]):
            if direction == "above" and not v1 > v0:
                c.add(f"{p}.{t1}", f"must be above {t0} for direction 'above' ({v1!r} <= {v0!r})")
            if direction == "below" and not v1 < v0:
                c.add(f"{p}.{t1}", f"must be below {t0} for direction 'below' ({v1!r} >= {v0!r})")
    if len(c.problems) > n0:
        return None
    return Thresholds(direction, *(None if vals[t] is None else float(vals[t]) for t in TIERS), scale,
                      tuple(min_failed))


FAMILY_FIELDS = {"id", "name_zh", "name_en", "description", "unit", "scope", "expand", "windows", "source",
                 "level", "side", "department", "freshness_s", "thresholds", "compute"}


def _read_family(c: _Checker, i: int, node: Any, classes: dict[str, FacilityClass]) -> Family | None:
    p = f"family[{i}]"
    if c.table(node, p) is None:
        return None
    n0 = len(c.problems)
    c.keys(node, p, FAMILY_FIELDS, FAMILY_FIELDS)
    fid = c.string(node, "id", p, pattern=FAMILY_RE)
    zh = c.string(node, "name_zh", p)
    en = c.string(node, "name_en", p)
    desc = c.string(node, "description", p)
    unit = c.string(node, "unit", p)
    scope = c.string(node, "scope", p, choices=tuple(SCOPE_KINDS))
    level = c.string(node, "level", p, choices=LEVELS)
    side = c.string(node, "side", p, choices=SIDES)
    dept = c.string(node, "department", p)
    if dept is not None and not (dept in DEPARTMENT_FROM or VALUE_RE.match(dept)):
        c.add(f"{p}.department", f"{dept!r} is neither a department id nor one of {', '.join(DEPARTMENT_FROM)}")
    fresh = c.number(node, "freshness_s", p, positive=True, integer=True)

    source: tuple[str, ...] = ()
    if "source" in node:
        s = node["source"]
        if not isinstance(s, list) or not s or not all(isinstance(x, str) for x in s):
            c.add(f"{p}.source", "must be a non-empty array of feed kinds")
        else:
            for j, x in enumerate(s):
                if x not in FEEDS:
                    c.add(f"{p}.source[{j}]", f"unknown feed {x!r} (one of {', '.join(FEEDS)})")
            source = tuple(s)

    windows: list[Window] = []
    if "windows" in node:
        w = node["windows"]
        if not isinstance(w, list) or not w:
            c.add(f"{p}.windows", "must be a non-empty array like [\"5m\", \"1h\"]")
        else:
            for j, x in enumerate(w):
                try:
                    windows.append(parse_window(x))
                except IdError as e:
                    c.add(f"{p}.windows[{j}]", str(e))
            if len(set(windows)) != len(windows):
                c.add(f"{p}.windows", "a window is listed twice")

    expand: dict[str, Any] = {}
    if "expand" in node and c.table(node["expand"], f"{p}.expand") is not None:
        expand = dict(node["expand"])
        for k in expand:
            if k not in SCOPE_KEYS:
                c.add(f"{p}.expand.{k}", f"unknown scope key (one of {', '.join(SCOPE_KEYS)})")
        if not expand:
            c.add(f"{p}.expand", "expand over at least one scope key")
        if scope and not any(k in expand for k in SCOPE_KINDS[scope]):
            c.add(f"{p}.expand", f"a family of scope {scope!r} must expand over "
                                 f"{' or '.join(SCOPE_KINDS[scope])}")

    thresholds = _read_thresholds(c, node["thresholds"], f"{p}.thresholds") if "thresholds" in node else None
    compute = None
    if "compute" in node:
        compute = _read_compute(c, node["compute"], f"{p}.compute", source, expand, windows, classes)
    has_class = "class" in expand or (isinstance(node.get("compute"), dict) and "class" in node["compute"])
    if thresholds and thresholds.scale == "class_assets" and not has_class:
        c.add(f"{p}.thresholds.scale", "'class_assets' needs a facility class (expand.class or compute.class)")
    if thresholds and thresholds.min_failed and not (has_class and "zone" in expand):
        c.add(f"{p}.thresholds.min_failed", "counts a zone's assets of a class: the family must expand over zone "
                                            "and name the class (expand.class or compute.class)")
    if thresholds and thresholds.scale in ZONE_ATTRS and "zone" not in expand:
        c.add(f"{p}.thresholds.scale", f"{thresholds.scale!r} is a zone attribute: the family must expand over zone")
    if (thresholds and thresholds.scale in SEGMENT_ATTRS and "segment" not in expand
            and not ("area" in expand and source[:1] == ("traffic",))):
        c.add(f"{p}.thresholds.scale",
              f"{thresholds.scale!r} is a road segment attribute: the family must expand over segment "
              f"(or over area and read the traffic feed: then the area's segments together)")
    if dept == "@zone" and "zone" not in expand:
        c.add(f"{p}.department", "'@zone' needs a family that expands over zone")
    if dept == "@class" and not has_class:
        c.add(f"{p}.department", "'@class' needs a facility class (expand.class or compute.class)")
    if dept == "@department" and "department" not in expand:
        c.add(f"{p}.department", "'@department' needs a family that expands over department")
    if dept == "@asset" and not ({"gate", "asset", "camera", "station", "stop", "segment"} & set(expand)):
        c.add(f"{p}.department", "'@asset' needs a family that expands over an asset key")
    if len(c.problems) > n0:
        return None
    return Family(i, fid, zh, en, desc, unit, scope, expand, tuple(windows), source, level, side, dept,
                  int(fresh), thresholds, compute)


def _read_compute(c: _Checker, node: Any, p: str, source: tuple[str, ...], expand: dict, windows: list[Window],
                  classes: dict[str, FacilityClass]) -> Compute | None:
    if c.table(node, p) is None:
        return None
    kind = c.string(node, "kind", p, choices=tuple(KINDS))
    if kind is None:
        if "kind" not in node:
            c.add(f"{p}.kind", "missing")
        return None
    fp = p.rsplit(".compute", 1)[0]          # the family's own path
    allowed, required, window_kinds = KINDS[kind]
    c.keys(node, p, allowed, required | {"kind"})
    for j, w in enumerate(windows):
        if w.kind not in window_kinds:
            c.add(f"{fp}.windows[{j}]",
                  f"kind {kind!r} computes windows of kind {'/'.join(sorted(window_kinds))}, not {w}")
    feed = source[0] if source else None
    fm = FEEDS.get(feed) if feed else None
    keys = set(expand)

    def need_dims(dims: frozenset[str], what: str) -> None:
        for k in sorted(keys - dims):
            if k not in SCOPE_KEYS:
                continue                      # reported as an unknown scope key already
            c.add(f"{fp}.expand.{k}", f"{what} cannot be attributed to {k!r} "
                                      f"(it can be to: {', '.join(sorted(dims)) or 'nothing'})")

    if fm is not None:
        if kind in ("latest", "change", "visits_today"):
            ent = c.string(node, "entity", p)
            if ent is not None and ent not in fm.entities:
                c.add(f"{p}.entity", f"feed {feed!r} tracks no entity {ent!r} "
                                     f"(it tracks: {', '.join(fm.entities) or 'none'})")
            elif ent is not None:
                need_dims(fm.entities[ent], f"the latest {ent} of feed {feed!r}")
        elif kind in ("window", "today", "distinct", "case", "warning"):
            need_dims(fm.dims, f"an event of feed {feed!r}")
        if "value" in node:
            v = c.string(node, "value", p)
            if v is not None and v not in fm.values:
                c.add(f"{p}.value", f"feed {feed!r} has no value {v!r} (one of {', '.join(sorted(fm.values)) or 'none'})")
        if "where" in node and c.table(node["where"], f"{p}.where") is not None:
            for col, test in node["where"].items():
                if col not in fm.filters:
                    c.add(f"{p}.where.{col}", f"feed {feed!r} cannot be filtered on {col!r}")
                elif test not in fm.filters[col]:
                    c.add(f"{p}.where.{col}", f"test {test!r} is not one of {', '.join(fm.filters[col])}")
    expected_feed = {"case": "case", "warning": "warning", "visit_age": "staff", "distinct": "bus"}.get(kind)
    if expected_feed and feed and feed != expected_feed:
        c.add(f"{p}.kind", f"kind {kind!r} reads feed {expected_feed!r}, but source is {feed!r}")
    if kind == "visit_age" and "asset" not in keys:
        c.add(f"{p}.kind", "visit_age expands over checkpoint assets (expand.asset)")

    if kind == "latest":
        agg = c.string(node, "agg", p, choices=AGGS) or "value"
        if agg in ("count_where", "percent_where"):
            cond = node.get("cond")
            if cond is None:
                c.add(f"{p}.cond", f"agg {agg!r} needs cond (\"anomaly\", \"normal\" or {{ op, value }})")
            elif isinstance(cond, str):
                if cond not in ("anomaly", "normal"):
                    c.add(f"{p}.cond", f"{cond!r} is not 'anomaly', 'normal' or a table {{ op, value }}")
                elif "class" not in keys and "class" not in node:
                    c.add(f"{p}.cond", f"{cond!r} uses a facility class's anomaly test: name the class "
                                       f"(expand.class or compute.class)")
            elif c.table(cond, f"{p}.cond") is not None:
                c.keys(cond, f"{p}.cond", {"op", "value", "scale"}, {"op", "value"})
                c.string(cond, "op", f"{p}.cond", choices=COND_OPS)
                if "scale" in cond:             # the value is a fraction of each segment's own figure
                    c.string(cond, "scale", f"{p}.cond", choices=SEGMENT_ATTRS)
                    if node.get("entity") != "segment":
                        c.add(f"{p}.cond.scale", f"a cond scaled by a road segment figure needs entity 'segment', "
                                                 f"not {node.get('entity')!r}")
                if isinstance(cond.get("value"), str):
                    if feed != "staff" or cond["value"] not in STAFF_STATUSES:
                        c.add(f"{p}.cond.value", f"{cond['value']!r}: a word is only allowed for staff status "
                                                 f"({', '.join(STAFF_STATUSES)})")
                else:
                    c.number(cond, "value", f"{p}.cond")
        elif "cond" in node:
            c.add(f"{p}.cond", f"only agg count_where / percent_where take a cond, not {agg!r}")
        if agg == "percent_where" and node.get("entity") != "asset_metric":
            c.add(f"{p}.agg", "percent_where is a share of inventory assets: entity must be asset_metric")
        if node.get("entity") == "asset_metric":
            if ("class" in keys) == ("class" in node):
                c.add(f"{p}.class", "facility readings belong to a class: name it in compute.class "
                                    "or expand over class (exactly one of the two)")
            elif "class" in node and node["class"] not in classes:
                c.add(f"{p}.class", f"unknown class {node['class']!r} (declared: {', '.join(classes) or 'none'})")
            if "metric" in node and node["metric"] not in FACILITY_METRICS:
                c.add(f"{p}.metric", f"unknown metric {node['metric']!r} (one of {', '.join(FACILITY_METRICS)})")
        else:
            for k in ("class", "metric"):
                if k in node:
                    c.add(f"{p}.{k}", "only facility readings (entity asset_metric) take a class or metric")
    if kind == "window":
        st = c.string(node, "stat", p, choices=WINDOW_STATS)
        if st == "count" and node.get("value") != "events":
            c.add(f"{p}.value", "stat 'count' counts events: value must be 'events'")
        if st in ("sum", "mean", "max", "min") and node.get("value") == "events":
            c.add(f"{p}.value", f"stat {st!r} needs a numeric column, not 'events'")
    if kind == "today":
        c.string(node, "stat", p, choices=("sum",))
    if kind == "visits_today":
        c.string(node, "stay", p, choices=ZONE_ATTRS)
    if kind == "distinct":
        c.string(node, "of", p, choices=("vehicle",))
    if kind == "forecast":
        c.string(node, "of", p, pattern=FAMILY_RE)
        c.number(node, "lookback_s", p, positive=True, integer=True)
    if kind == "case":
        st = c.string(node, "stat", p, choices=tuple(CASE_STATS))
        if st in ("overdue", "close_rate"):
            if "deadline_s" not in node:
                c.add(f"{p}.deadline_s", f"{st} needs deadline_s")
            c.number(node, "deadline_s", p, positive=True, integer=True)
        elif "deadline_s" in node:
            c.add(f"{p}.deadline_s", f"only stats 'overdue' and 'close_rate' take a deadline, not {st!r}")
        if st is not None:
            for j, w in enumerate(windows):
                if w.kind != CASE_STATS[st]:
                    c.add(f"{fp}.windows[{j}]",
                          f"case stat {st!r} is computed @{CASE_STATS[st]}, not @{w}")
        if "joint" in node and not isinstance(node["joint"], bool):
            c.add(f"{p}.joint", "must be true or false")
    if kind == "warning":
        st = c.string(node, "stat", p, choices=WARNING_STATS)
        if st == "level" and "signal" not in keys:
            c.add(f"{p}.stat", "stat 'level' is per signal: expand over signal")
        if st in ("highest", "active") and "signal" in keys:
            c.add(f"{p}.stat", f"stat {st!r} is over all signals: do not expand over signal")
    if kind == "visit_age":
        c.number(node, "radius_m", p, positive=True)
    if "post" in node:
        _read_post(c, node["post"], f"{p}.post", keys, kind)
    return Compute(kind, dict(node))


def _read_post(c: _Checker, post: Any, p: str, keys: set[str], kind: str) -> None:
    if not isinstance(post, list):
        c.add(p, "must be an array of steps like [{ divide_by = \"capacity_instantaneous\" }]")
        return
    for j, step in enumerate(post):
        q = f"{p}[{j}]"
        if c.table(step, q) is None:
            continue
        if len(step) != 1 or next(iter(step)) not in POST_OPS:
            c.add(q, f"a step is one of {', '.join(POST_OPS)}")
            continue
        op, arg = next(iter(step.items()))
        if op == "divide_by":
            if arg not in ZONE_ATTRS:
                c.add(f"{q}.divide_by", f"{arg!r} is not a zone attribute ({', '.join(ZONE_ATTRS)})")
            elif "zone" not in keys:
                c.add(f"{q}.divide_by", "dividing by a zone attribute needs a family that expands over zone")
        elif op == "multiply":
            if isinstance(arg, bool) or not isinstance(arg, (int, float)) or not math.isfinite(arg) or arg == 0:
                c.add(f"{q}.multiply", f"must be a finite non-zero number, not {arg!r}")
        elif op in ("per_minute", "headway"):
            if arg is not True:
                c.add(f"{q}.{op}", "write true")
            elif kind not in ("window", "distinct"):
                c.add(f"{q}.{op}", f"{op} needs a trailing window (kind window or distinct), not kind {kind!r}")
        elif op == "bins":
            if (not isinstance(arg, list) or not arg
                    or not all(isinstance(x, (int, float)) and not isinstance(x, bool) for x in arg)
                    or any(b <= a for a, b in zip(arg, arg[1:]))):
                c.add(f"{q}.bins", "must be an increasing array of numbers")
