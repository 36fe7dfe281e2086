"""Synthetic feeds of the Canton Tower scenic area, for demos, tests and replays.

:func:`simulate` plays a scenario of ``data/scenarios.toml`` (a normal
weekday, National Day, a typhoon ...) over the real inventory and yields the
records every feed kind of :data:`~indicators.feeds.schemas.SCHEMAS` would
deliver, *in arrival order*, one :class:`Batch` per kind and simulated
minute.  What the feeds carry and in which ranges is documented in
``docs/feeds.md``.

How it is built, and why
------------------------
* **Exogenous drivers first.**  Per simulated minute the scenario gives the
  visitor arrival rate (daily total x an hourly profile, damped by rain and
  wind, zero when a typhoon closes the area), the rain and wind, the warning
  signals in force, road demand and whether it is dark.  Area-wide people
  present follow from arrivals and an exponential stay (Little's law, one
  scalar recursion per minute); the tower, the station concourse and the
  tram platform have their own models from their published figures and the
  rest is shared among zones by capacity x attractiveness.
* **Zones are stochastic, feeds are consistent.**  Each zone's count moves
  toward its target with binomial departures and Poisson arrivals; the gate
  counters of a zone count exactly those arrivals and departures (times the
  zone's counter coverage), the station turnstiles count the station's
  entries and exits, the AI-video crowd alarms and the crowd-safety cases
  follow the zones' load rates.
* **Vectorised per minute.**  Every feed is generated for all its entities
  at once with numpy (Poisson matrices for video, masks for the facility
  sensors that are due this minute); Python loops run per minute, per bus
  trip or per case, never per record of the big feeds.
* **Deterministic.**  One ``numpy.random.Generator`` per feed kind, seeded
  from ``(seed, kind)``; the fault injector has its own, so switching faults
  on does not change the underlying events.  No clock is read.
* **Faults** (:class:`Faults`) are applied between generation and arrival:
  late (10-30 min after the event), out of order (1-3 min), duplicated
  (same ``event_id`` re-sent), missing (dropped) and malformed (a dict with a
  wrong type, a missing field, an out-of-range value, or garbage) - the last
  cannot live in a typed table and come as ``("malformed", [dict, ...])``.

:func:`write_recording` / :func:`read_recording` store and replay a stream
(one Parquet file per kind with an ``arrival_time`` column, malformed
records as JSON lines, a manifest); :func:`run_live` paces a scenario by
wall time into an :class:`~indicators.feeds.ingest.Ingestor`.
"""
from __future__ import annotations

import heapq
import json
import math
import os
import sys
import threading
import time
from collections import Counter
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta, timezone
from functools import lru_cache
from pathlib import Path
from typing import Any, Callable, Iterable, Iterator

import numpy as np

from twin_assets.geo import LocalFrame
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from indicators.localtime import sun_times

from .scenarios import LOCAL, Catalog, Scenario, load as load_scenarios, parse_hhmm
from .schemas import FACILITY_METRICS, FEED_KINDS, SCHEMAS, TS, VIDEO_ALGORITHMS, WARNING_COLOURS

__all__ = ["simulate", "Simulation", "Faults", "Batch", "SimClock", "write_recording", "read_recording",
           "run_live", "GENERATOR_VERSION", "MALFORMED", "ARRIVAL_COLUMN", "scenario_catalog"]

GENERATOR_VERSION = "scenic-twin-sim/1"
MALFORMED = "malformed"
ARRIVAL_COLUMN = "arrival_time"
KIND_METADATA_KEY = b"scenic_twin.kind"
_MIN_MS = 60_000
_DAY_MIN = 1440
_UTC = timezone.utc
_EPOCH = datetime(1970, 1, 1, tzinfo=_UTC)
_KIND_ORDER = {k: i for i, k in enumerate(FEED_KINDS + (MALFORMED,))}
_SOURCES = {
    "crowd": "sim:signalling", "gate": "sim:gate-counter", "video": "sim:ai-video", "facility": "sim:iot",
    "bus": "sim:gtfs-rt", "station": "sim:metro-afc", "traffic": "sim:traffic", "weather": "sim:aws",
    "warning": "sim:cap", "case": "sim:case", "staff": "sim:staff-gps",
}
_ALG_INDEX = {a: i for i, a in enumerate(VIDEO_ALGORITHMS)}
_CTX = ("road", "riverside", "footbridge", "plaza")
_COLOUR_INDEX = {c: i for i, c in enumerate(WARNING_COLOURS)}


# ================================================================== faults

@dataclass(frozen=True)
class Faults:
    """Rates (0-1, per record) of the delivery faults a real feed shows.

    ``late``: arrives 10-30 min after its event time (beyond any sane
    allowed lateness); ``out_of_order``: held back 40-170 s, so it arrives
    after newer records; ``duplicate``: re-sent with the same ``event_id``
    up to 2.5 min later; ``missing``: never arrives; ``malformed``: arrives as
    a broken dict instead of the record.  ``Faults.off()`` gives a clean
    stream.
    """

    late: float = 0.005
    out_of_order: float = 0.01
    duplicate: float = 0.005
    missing: float = 0.005
    malformed: float = 0.002

    def __post_init__(self) -> None:
        for k, v in self.as_dict().items():
            if not isinstance(v, (int, float)) or not 0.0 <= float(v) <= 1.0 or math.isnan(v):
                raise ValueError(f"fault rate {k}={v!r} must be a number between 0 and 1")
        if self.missing + self.malformed > 1.0:
            raise ValueError("missing + malformed must not exceed 1")

    @classmethod
    def off(cls) -> "Faults":
        return cls(0.0, 0.0, 0.0, 0.0, 0.0)

    @classmethod
    def parse(cls, text: str) -> "Faults":
        """``"late=0.01,duplicate=0.02"`` (others keep their defaults), ``"off"`` or ``"default"``."""
        text = (text or "").strip()
        if text.lower() in ("off", "none", "0"):
            return cls.off()
        if text.lower() in ("", "default", "on"):
            return cls()
        names = {"late": "late", "out_of_order": "out_of_order", "out-of-order": "out_of_order",
                 "ooo": "out_of_order", "duplicate": "duplicate", "duplicates": "duplicate",
                 "missing": "missing", "malformed": "malformed"}
        kw: dict[str, float] = {}
        for part in text.split(","):
            if not part.strip():
                continue
            key, sep, val = part.partition("=")
            key = key.strip().lower()
            if not sep or key not in names:
                raise ValueError(f"cannot read fault {part.strip()!r}: write name=rate with name one of "
                                 "late, out_of_order, duplicate, missing, malformed (or 'off')")
            try:
                kw[names[key]] = float(val.strip().rstrip("%")) / (100.0 if val.strip().endswith("%") else 1.0)
            except ValueError:
                raise ValueError(f"fault rate {val.strip()!r} of {key} is not a number") from None
        return cls(**kw)

    def as_dict(self) -> dict[str, float]:
        return {"late": self.late, "out_of_order": self.out_of_order, "duplicate": self.duplicate,
                "missing": self.missing, "malformed": self.malformed}

    def any(self) -> bool:
        return any(v > 0 for v in self.as_dict().values())


class Batch(tuple):
    """``(kind, payload)`` - a typed table, or for ``"malformed"`` a list of
    dicts - plus ``arrival_ms``: when each row/record arrived (epoch ms,
    non-decreasing).  Unpacks like a plain pair.

    A batch is delivered when its last record has arrived (:attr:`arrival`),
    like a gateway flushing what came in during a minute; a stream yields
    batches in delivery order.  Row arrivals of different kinds interleave
    within a minute; :func:`read_recording` merges them row by row."""

    def __new__(cls, kind: str, payload: Any, arrival_ms: np.ndarray) -> "Batch":
        self = super().__new__(cls, (kind, payload))
        self.arrival_ms = np.asarray(arrival_ms, dtype=np.int64)
        return self

    @property
    def kind(self) -> str:
        return self[0]

    @property
    def payload(self) -> Any:
        return self[1]

    @property
    def arrival(self) -> datetime:
        """Arrival of the batch's last record (when the whole batch is in)."""
        return _dt(int(self.arrival_ms[-1])) if len(self.arrival_ms) else _EPOCH

    def __repr__(self) -> str:
        n = self[1].num_rows if isinstance(self[1], pa.Table) else len(self[1])
        return f"Batch({self[0]!r}, {n} rows, arrival {self.arrival.isoformat()})"


# ================================================================== helpers

def _dt(ms: int) -> datetime:
    return _EPOCH + timedelta(milliseconds=int(ms))


def _ms(t: datetime) -> int:
    if t.tzinfo is None:
        raise ValueError("times must be aware (give a UTC offset, e.g. +08:00)")
    return (t - _EPOCH) // timedelta(milliseconds=1)


def _ts(ms: np.ndarray) -> pa.Array:
    return pa.array(np.asarray(ms, dtype=np.int64)).cast(TS)


def _str(values: Iterable[str]) -> pa.Array:
    return pa.array(list(values), pa.string())


def _ms_text(ms: np.ndarray) -> pa.Array:
    return pa.array(np.asarray(ms, dtype=np.int64)).cast(pa.string())


def _join(*parts: pa.Array | str, sep: str) -> pa.Array:
    return pc.binary_join_element_wise(*parts, sep)


def _table(kind: str, cols: dict[str, Any], n: int) -> pa.Table:
    """A table of exactly ``SCHEMAS[kind]``: numpy/Arrow columns cast to the
    field types, absent nullable columns null."""
    schema = SCHEMAS[kind]
    arrays = []
    for f in schema:
        v = cols.get(f.name)
        if v is None:
            if not f.nullable:
                raise ValueError(f"{kind}: required column {f.name} not generated")
            arrays.append(pa.nulls(n, f.type))
        elif isinstance(v, (pa.Array, pa.ChunkedArray)):
            arrays.append(v if v.type == f.type else v.cast(f.type))
        elif isinstance(v, str):
            arrays.append(pa.repeat(pa.scalar(v, f.type), n) if n else pa.array([], f.type))
        else:
            arr = np.asarray(v)
            if pa.types.is_timestamp(f.type):
                arrays.append(_ts(arr))
            elif arr.dtype == object:
                arrays.append(pa.array(arr, f.type))
            else:
                arrays.append(pa.array(arr.astype(f.type.to_pandas_dtype(), copy=False), f.type))
    return pa.Table.from_arrays(arrays, schema=schema)


def _hourly_to_minutes(hourly: list[float], smooth: bool = True) -> np.ndarray:
    """24 hourly weights -> 1440 per-minute weights summing to 1 (piecewise
    linear between hour centres, periodic; or stepwise)."""
    h = np.asarray(hourly, dtype=float)
    if h.shape != (24,):
        raise ValueError("an hourly profile needs 24 values")
    mins = np.arange(_DAY_MIN) + 0.5
    if smooth:
        xp = np.concatenate([[-30.0], np.arange(24) * 60 + 30.0, [_DAY_MIN + 30.0]])
        fp = np.concatenate([[h[-1]], h, [h[0]]])
        w = np.interp(mins, xp, fp)
    else:
        w = h[(mins // 60).astype(int)]
    s = w.sum()
    return w / s if s > 0 else w


def _window_mask(mod: np.ndarray, window: list[str] | None) -> np.ndarray:
    """Minutes of day inside a local ``["HH:MM", "HH:MM"]`` window (may wrap midnight)."""
    if not window:
        return np.ones_like(mod, dtype=bool)
    a, b = parse_hhmm(window[0]), parse_hhmm(window[1])
    return (mod >= a) & (mod < b) if a <= b else (mod >= a) | (mod < b)


def scenario_catalog(path: str | os.PathLike[str] | None = None) -> Catalog:
    """The scenario catalogue (cached per file; default ``data/scenarios.toml``)."""
    from .scenarios import scenarios_path
    p = Path(path) if path is not None else scenarios_path()
    return _catalog(str(p.resolve()), p.stat().st_mtime_ns if p.exists() else 0)


@lru_cache(maxsize=4)
def _catalog(path: str, mtime_ns: int) -> Catalog:
    return load_scenarios(path)


# ================================================================== the world

class _Group:
    """Assets of one type: ids, zone index, position and attributes."""

    def __init__(self, rows, zone_index: dict[str, int], frame: LocalFrame) -> None:
        self.ids = [r.asset_id for r in rows]
        self.n = len(self.ids)
        self.zone = np.array([zone_index.get(r.zone_id, -1) for r in rows], dtype=np.int64)
        pts = [r.geometry.representative_point() if r.geometry.geom_type != "Point" else r.geometry for r in rows]
        self.lon = np.array([p.x for p in pts], dtype=float)
        self.lat = np.array([p.y for p in pts], dtype=float)
        self.x, self.y = frame.to_xy(self.lon, self.lat)
        self.attrs = [json.loads(r.attrs) if isinstance(r.attrs, str) else dict(r.attrs or {}) for r in rows]
        self.index = {a: i for i, a in enumerate(self.ids)}
        self.ids_pa = _str(self.ids)


class _Polyline:
    """A polyline in local metres with distance lookups."""

    def __init__(self, xy: np.ndarray) -> None:
        self.xy = np.asarray(xy, dtype=float)
        seg = np.diff(self.xy, axis=0)
        self.seglen = np.hypot(seg[:, 0], seg[:, 1])
        self.cum = np.concatenate([[0.0], np.cumsum(self.seglen)])
        self.length = float(self.cum[-1])
        self.heading = (np.degrees(np.arctan2(seg[:, 0], seg[:, 1])) + 360) % 360

    def at(self, s: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """x, y and heading (deg from north) at distances ``s``."""
        s = np.clip(np.asarray(s, dtype=float), 0, self.length)
        x = np.interp(s, self.cum, self.xy[:, 0])
        y = np.interp(s, self.cum, self.xy[:, 1])
        k = np.clip(np.searchsorted(self.cum, s, side="right") - 1, 0, len(self.seglen) - 1)
        return x, y, self.heading[k]

    def project(self, x: float, y: float) -> tuple[float, float]:
        """(distance along, distance off) of the nearest point to (x, y)."""
        a = self.xy[:-1]
        d = np.diff(self.xy, axis=0)
        L2 = np.maximum((d ** 2).sum(axis=1), 1e-9)
        t = np.clip(((x - a[:, 0]) * d[:, 0] + (y - a[:, 1]) * d[:, 1]) / L2, 0, 1)
        px, py = a[:, 0] + t * d[:, 0], a[:, 1] + t * d[:, 1]
        off = np.hypot(px - x, py - y)
        k = int(np.argmin(off))
        return float(self.cum[k] + t[k] * self.seglen[k]), float(off[k])


class World:
    """Everything the simulator needs from the inventory, as arrays."""

    def __init__(self, gdf) -> None:
        typ = gdf["type"].to_numpy()
        minx, miny, maxx, maxy = gdf.total_bounds
        self.frame = LocalFrame((minx + maxx) / 2, (miny + maxy) / 2)
        self.sun_lat, self.sun_lon = float(self.frame.lat0), float(self.frame.lon0)
        zrows = list(gdf[typ == "management_zone"].itertuples())
        if not zrows:
            raise ValueError("the inventory has no management_zone rows")
        self.zone_ids = [r.zone_id for r in zrows]
        self.Z = len(self.zone_ids)
        self.zone_index = {z: i for i, z in enumerate(self.zone_ids)}
        za = [json.loads(r.attrs) for r in zrows]
        self.c1 = np.array([a["capacity_instantaneous"] for a in za], dtype=float)
        self.space = [a.get("space", "") for a in za]
        self.zone_name = [r.name_zh for r in zrows]
        self.zone_ids_pa = _str(self.zone_ids)
        rp = [r.geometry.representative_point() for r in zrows]
        self.zone_lon = np.array([p.x for p in rp])
        self.zone_lat = np.array([p.y for p in rp])

        def group(*types: str) -> _Group:
            return _Group(list(gdf[np.isin(typ, types)].itertuples()), self.zone_index, self.frame)

        self.cams = group("cctv_camera")
        self.hydrants = group("fire_hydrant")
        self.lamps = group("lamp_pole")
        self.covers = group("manhole_cover")
        self.lifts = group("lift")
        self.escalators = group("escalator")
        self.toilets = group("toilet")
        self.bins = group("bin")
        self.gates = group("gate", "turnstile")
        self.gate_type = [("turnstile" if a.startswith("turnstile") else "gate") for a in self.gates.ids]
        self.stops = group("bus_stop")
        self.metro = group("metro_station")
        self.trams = group("tram_stop")
        self.roads = group("road")
        self.road_line = {self._line_id(a): i for i, a in enumerate(self.roads.ids)}
        rrows = list(gdf[typ == "road"].itertuples())
        self.road_poly = [_Polyline(np.column_stack(self.frame.to_xy(*np.asarray(r.geometry.coords).T)))
                          for r in rrows]
        self.line_name = {self._line_id(r.asset_id): r.name_zh
                          for r in gdf[np.isin(typ, ("road", "walkway", "bridge"))].itertuples()}
        self.road_width = np.array([a.get("width_m", 14) for a in self.roads.attrs], dtype=float)
        prow = gdf[typ == "patrol_route"]
        if len(prow):
            self.patrol = _Polyline(np.column_stack(self.frame.to_xy(*np.asarray(prow.iloc[0].geometry.coords).T)))
        else:   # no route: walk the first road
            self.patrol = self.road_poly[0]
        self.camera_ctx = np.array([self._camera_ctx(a, self.space[z] if z >= 0 else "")
                                    for a, z in zip(self.cams.attrs, self.cams.zone)], dtype=np.int64)
        # points per zone where things happen (cases, staff posts)
        pool_types = ("bin", "lamp_pole", "bench", "signage", "cctv_camera", "gate", "turnstile", "toilet",
                      "bike_parking", "life_buoy", "first_aid", "broadcast_speaker", "checkpoint", "lift",
                      "escalator", "metro_station", "tram_stop", "pier")
        sub = gdf[np.isin(typ, pool_types)]
        pts_zone = sub["zone_id"].to_numpy()
        px = np.array([g.x for g in sub.geometry])
        py = np.array([g.y for g in sub.geometry])
        self.zone_pool: list[tuple[np.ndarray, np.ndarray]] = []
        for i, z in enumerate(self.zone_ids):
            m = pts_zone == z
            if m.any():
                self.zone_pool.append((px[m], py[m]))
            else:
                self.zone_pool.append((self.zone_lon[i:i + 1], self.zone_lat[i:i + 1]))
        # the facility asset table: every asset a facility metric may be about
        fac = [self.cams, self.hydrants, self.lamps, self.covers, self.lifts, self.escalators, self.toilets, self.bins]
        names = ["cctv_camera", "fire_hydrant", "lamp_pole", "manhole_cover", "lift", "escalator", "toilet", "bin"]
        self.fac_offset = {}
        off = 0
        ids, types = [], []
        for nm, g in zip(names, fac):
            self.fac_offset[nm] = off
            ids += g.ids
            types += [nm] * g.n
            off += g.n
        self.fac_ids = _str(ids)
        self.fac_types = _str(types)
        self.fac_keys = _str(f"facility:{a}" for a in ids)

    @staticmethod
    def _line_id(asset_id: str) -> str:
        body = asset_id.split("-", 1)[1] if "-" in asset_id else asset_id
        return body.rsplit("-", 1)[0]

    @staticmethod
    def _camera_ctx(a: dict, space: str) -> int:
        line = a.get("line") or ""
        if line.startswith("road_") or line in ("guangzhou_bridge", "liede_bridge"):
            return 0
        if line.startswith("promenade") or line.startswith("walk"):
            return 1
        if line in ("haixin_bridge", "huangpuchong_footbridge") or space == "bridge":
            return 2
        if space == "walkway" and not line:
            return 0
        return 3


@lru_cache(maxsize=1)
def _default_world() -> World:
    from twin_assets import inventory as inv
    return World(inv.load())


# ================================================================== exogenous drivers

class _Knots:
    """Episode knots ``[["dN HH:MM", value], ...]`` -> value per epoch minute (0 outside)."""

    def __init__(self, scenario: Scenario, key: str, anchor: date) -> None:
        knots = scenario.get(key, []) or []
        self.t = np.array([_ms(scenario.at_time(k[0], anchor)) // _MIN_MS for k in knots], dtype=float)
        self.v = np.array([float(k[1]) for k in knots], dtype=float)
        order = np.argsort(self.t, kind="stable")
        self.t, self.v = self.t[order], self.v[order]

    def __call__(self, minutes: np.ndarray) -> np.ndarray:
        if len(self.t) == 0:
            return np.zeros(len(minutes))
        out = np.interp(minutes, self.t, self.v)
        out[(minutes < self.t[0]) | (minutes > self.t[-1])] = 0.0
        return out


@dataclass
class _Signal:
    ms: int
    signal: str
    colour: str
    status: str


class _Drivers:
    """Closed-form drivers of any minute, and the recursions (people present)
    that need the minutes before."""

    def __init__(self, sc: Scenario, world: World, start_ms: int) -> None:
        self.sc = sc
        self.w = world
        self.anchor = sc.episode_anchor(_dt(start_ms))
        p = sc.get
        self.daily = float(p("crowd.daily_visitors"))
        prof = list(p("crowd.arrival_profile"))
        self.arr_w0 = _hourly_to_minutes(prof)                      # without a show's evening boost
        boost = p("crowd.evening_boost")
        if boost:
            h0, h1, f = int(boost[0]), int(boost[1]), float(boost[2])
            prof = [v * (f if h0 <= h < h1 else 1.0) for h, v in enumerate(prof)]
        self.arr_w = _hourly_to_minutes(prof)                       # per minute of day, sums to 1
        # the evening boost is per day of arrivals: the share outside the boost hours stays the day's
        self.arr_w0 = self.arr_w0 * (self.arr_w[0] / self.arr_w0[0]) if self.arr_w0[0] > 0 else self.arr_w0
        # day types: the traffic profile and the bridge's reservations follow the calendar
        self.day_type_fixed = p("calendar.day_type", "calendar")
        self.holidays = {date.fromisoformat(str(d)) for d in (p("calendar.statutory_holidays", []) or [])}
        self.traffic_profiles = {k: np.asarray(p(f"traffic.{k}_profile", p("traffic.demand_profile")), dtype=float)
                                 for k in ("weekday", "weekend", "holiday")}
        # visitors leave with the last public transport
        self.last_departure = parse_hhmm(p("crowd.last_departure", "23:59"))
        self.first_departure = parse_hhmm(p("crowd.first_departure", "06:00"))
        self.night_stay = float(p("crowd.after_last_departure_stay_min", self.stay0_default(p)))
        # the light show: cancelled when its viewing zones pass the safe load
        show = p("crowd.show") or {}
        self.show = None
        if show:
            zp_ = p("crowd.zones", {}) or {}
            self.show = {"hours": (parse_hhmm(show["hours"][0]), parse_hhmm(show["hours"][1])),
                         "zones": np.array([z in show["zones"] for z in world.zone_ids]),
                         # the viewing zones the operator can close: the managed ones (not the city streets)
                         "watch": np.array([z in show["zones"] and bool(zp_.get(z, {}).get("entry_control", True))
                                            for z in world.zone_ids]),
                         "cancel_load": float(show["cancel_load"]), "after": int(show["cancel_after_min"])}
        self.show_cancelled: dict[int, int] = {}                    # local day -> epoch minute of the cancellation
        self._over_run = 0
        self.tower_w = _hourly_to_minutes(p("tower.arrival_profile"), smooth=False)
        self.comm_w = _hourly_to_minutes(p("station.commuter_profile"), smooth=False)
        self.rain = _Knots(sc, "weather.rain_mm_h", self.anchor)
        self.wind_extra = _Knots(sc, "weather.wind_extra_ms", self.anchor)
        self.stay0 = float(p("crowd.mean_stay_min"))
        self.rain_half = float(p("crowd.rain_half_mm"))
        self.wind_half = float(p("crowd.wind_half_ms"))
        self.wind_base = float(p("weather.wind_ms"))
        self.closure_factor = float(p("crowd.closure_factor"))
        # warning timeline
        sig = []
        for w in p("warnings", []) or []:
            sig.append(_Signal(_ms(sc.at_time(w["at"], self.anchor)), w["signal"], w["colour"], w["status"]))
        sig.sort(key=lambda s: s.ms)
        self.signals = sig
        cf = sc.get("closure_from")
        self.closure_colour = _COLOUR_INDEX[cf] if cf else None
        # zones
        zp = p("crowd.zones", {}) or {}
        Z = world.Z
        self.attract = np.array([float(zp.get(z, {}).get("attract", 0.3)) for z in world.zone_ids])
        self.stay_z = np.array([float(zp.get(z, {}).get("stay_min", 30)) for z in world.zone_ids])
        self.gate_cov = np.array([float(zp.get(z, {}).get("gate_coverage", 1.0)) for z in world.zone_ids])
        self.zone_open = [zp.get(z, {}).get("open") for z in world.zone_ids]
        zb = p("crowd.zone_boost")
        self.zone_boost = None
        if zb:
            m = np.array([z in zb["zones"] for z in world.zone_ids])
            self.zone_boost = (int(zb["hours"][0]), int(zb["hours"][1]), float(zb["factor"]), m)
        zi = world.zone_index
        self.z_tower = zi.get("canton_tower_interior", -1)
        self.z_conc = zi.get("metro_concourse", -1)
        self.z_tram = zi.get("tram_platform", -1)
        special = [z for z in (self.z_tower, self.z_conc, self.z_tram) if z >= 0]
        self.generic = np.ones(Z, dtype=bool)
        self.generic[special] = False
        # tower
        self.tower_daily = float(p("tower.daily_visitors"))
        self.tower_open = p("tower.open")
        self.lift_cap_min = float(p("tower.lift_capacity_per_h")) / 60.0
        self.tower_stay = float(p("tower.stay_min"))
        # station
        self.comm_daily = float(p("station.commuters_daily"))
        self.metro_share = float(p("station.metro_visitor_share"))
        self.l3_frac = float(p("station.l3_fraction"))
        self.metro_service = p("station.service")
        self.tram_daily = [float(v) for v in p("station.tram_daily")]
        self.tram_service = p("station.tram_service")
        self.dwell = float(p("station.concourse_dwell_min"))
        self.shelter = float(p("crowd.shelter_gain"))
        # recursion state
        self._next: int | None = None
        self._P = 0.0
        self._PT = 0.0

    @staticmethod
    def stay0_default(p) -> float:
        return float(p("crowd.mean_stay_min"))

    # ---------------------------------------------------------- closed form
    def day_type(self, day: int) -> str:
        """``weekday``, ``weekend`` or ``holiday`` of a local day number (days since 1970-01-01)."""
        if self.day_type_fixed in ("weekday", "weekend", "holiday"):
            return self.day_type_fixed
        d = date(1970, 1, 1) + timedelta(days=int(day))
        if d in self.holidays:
            return "holiday"
        return "weekend" if d.weekday() >= 5 else "weekday"

    def holiday(self, minutes: np.ndarray) -> np.ndarray:
        _, day = self.local(minutes)
        u = np.unique(day)
        lut = {int(d): self.day_type(int(d)) == "holiday" for d in u}
        return np.array([lut[int(d)] for d in day], dtype=bool)

    def area_stay(self, minutes: np.ndarray, stayf: np.ndarray) -> np.ndarray:
        """Mean remaining stay (min) of the people present: the weather-shortened stay, but nobody
        stays past the last public transport (metro last departure, the bridge and the buses close
        before it): the stay is capped by the time left until then, and after it (until the first
        trains) the few who remain leave within ``after_last_departure_stay_min``."""
        mod, _ = self.local(minutes)
        st = self.stay0 * stayf
        a, b = self.first_departure, self.last_departure
        night = (mod >= b) | (mod < a)
        left = np.where(night, 0.0, b - mod)
        return np.where(night, np.minimum(st, self.night_stay), np.minimum(st, np.maximum(left, self.night_stay)))

    @staticmethod
    def local(minutes: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(minute of the local day, local day number) of epoch minutes."""
        lm = minutes + 480
        return lm % _DAY_MIN, lm // _DAY_MIN

    def colour_state(self, minutes: np.ndarray, signal: str) -> np.ndarray:
        """Colour index (-1 none) of ``signal`` in force at each minute."""
        out = np.full(len(minutes), -1, dtype=np.int64)
        for s in self.signals:
            if s.signal != signal:
                continue
            m = minutes * _MIN_MS >= s.ms
            out[m] = -1 if s.status == "cancelled" else _COLOUR_INDEX[s.colour]
        return out

    def closure(self, minutes: np.ndarray) -> np.ndarray:
        if self.closure_colour is None:
            return np.zeros(len(minutes), dtype=bool)
        return self.colour_state(minutes, "typhoon") >= self.closure_colour

    def rain_1h(self, minutes: np.ndarray) -> np.ndarray:
        """Rain of the last 60 minutes (mm) - the intensity knots integrated."""
        lo = int(minutes.min()) - 90
        grid = np.arange(lo, int(minutes.max()) + 1)
        c = np.concatenate([[0.0], np.cumsum(self.rain(grid) / 60.0)])
        idx = (minutes - lo + 1).astype(int)
        return c[idx] - c[np.maximum(idx - 60, 0)]

    def rain_90(self, minutes: np.ndarray) -> np.ndarray:
        lo = int(minutes.min()) - 120
        grid = np.arange(lo, int(minutes.max()) + 1)
        c = np.concatenate([[0.0], np.cumsum(self.rain(grid) / 60.0)])
        idx = (minutes - lo + 1).astype(int)
        return c[idx] - c[np.maximum(idx - 90, 0)]

    def wind(self, minutes: np.ndarray) -> np.ndarray:
        """Mean wind at street level (m/s), before station noise."""
        slow = 1 + 0.25 * np.sin(2 * np.pi * minutes / 377.0)
        return self.wind_base * slow + self.wind_extra(minutes)

    def weather_factor(self, minutes: np.ndarray) -> np.ndarray:
        r = self.rain_1h(minutes)
        wnd = self.wind(minutes)
        f = 1.0 / (1.0 + (r / self.rain_half) ** 2) / (1.0 + (wnd / self.wind_half) ** 3)
        return np.where(self.closure(minutes), np.minimum(f, self.closure_factor), f)

    def arrivals(self, minutes: np.ndarray, boost: bool = True) -> np.ndarray:
        """Visitor arrivals into the area per minute (``boost=False``: without a show's evening boost)."""
        mod, day = self.local(minutes)
        w = self.arr_w[mod]
        if not boost:
            w = self.arr_w0[mod]
        elif self.show_cancelled:                     # a cancelled show draws no more visitors that night
            cut = np.array([self.show_cancelled.get(int(d), np.iinfo(np.int64).max) for d in day])
            w = np.where(minutes >= cut, self.arr_w0[mod], w)
        return self.daily * w * self.weather_factor(minutes)

    def show_on(self, minutes: np.ndarray) -> np.ndarray:
        """Minutes when the show draws its crowd: its hours, unless cancelled that day."""
        if self.show is None:
            return np.zeros(len(minutes), dtype=bool)
        mod, day = self.local(minutes)
        a, b = self.show["hours"]
        on = (mod >= a) & (mod < b)
        cut = np.array([self.show_cancelled.get(int(d), np.iinfo(np.int64).max) for d in day])
        return on & (minutes < cut)

    def tower_arrivals(self, minutes: np.ndarray) -> np.ndarray:
        mod, _ = self.local(minutes)
        a, b = parse_hhmm(self.tower_open[0]), parse_hhmm(self.tower_open[1])
        lam = self.tower_daily * self.tower_w[mod]
        lam = np.minimum(lam * self.weather_factor(minutes) ** 0.3, self.lift_cap_min)
        lam[(mod < a) | (mod >= b - 30) | self.closure(minutes)] = 0.0
        return lam

    def traffic_demand(self, minutes: np.ndarray) -> np.ndarray:
        mod, day = self.local(minutes)
        x = np.empty(len(minutes))
        for d in np.unique(day):
            m = day == d
            prof = self.traffic_profiles[self.day_type(int(d))]
            x[m] = np.interp(mod[m] / 60.0, np.arange(25) - 0.0, np.append(prof, prof[0]))
        r = self.rain_1h(minutes)
        x = x * (1 - 0.1 * np.minimum(r / 50, 1))
        return np.where(self.closure(minutes), x * 0.3, x)

    def dark(self, minutes: np.ndarray, margin: float) -> np.ndarray:
        mod, day = self.local(minutes)
        doy = np.array([date.fromordinal(date(1970, 1, 1).toordinal() + int(d)).timetuple().tm_yday
                        for d in np.unique(day)])
        rise, sset = sun_times(doy, self.w.sun_lat, self.w.sun_lon)
        lut_r = dict(zip(np.unique(day).tolist(), rise))
        lut_s = dict(zip(np.unique(day).tolist(), sset))
        r = np.array([lut_r[d] for d in day.tolist()])
        s = np.array([lut_s[d] for d in day.tolist()])
        dark = (mod < r + margin) | (mod > s + margin)
        # heavy rain darkens the sky: photocells switch the lamps on
        return dark | (self.rain_1h(minutes) > 40)

    def zone_weights(self, minutes: np.ndarray) -> np.ndarray:
        """[n, Z] share of the generic crowd per zone (rows sum to 1)."""
        mod, _ = self.local(minutes)
        w = np.tile(self.w.c1 * self.attract * self.generic, (len(minutes), 1))
        for z, win in enumerate(self.zone_open):
            if win:
                w[~_window_mask(mod, win), z] = 0.0
        if self.zone_boost is not None:
            h0, h1, f, m = self.zone_boost
            ev = (mod >= h0 * 60) & (mod < h1 * 60)
            if self.show is not None:                 # a cancelled show draws nobody to the river
                _, day = self.local(minutes)
                cut = np.array([self.show_cancelled.get(int(d), np.iinfo(np.int64).max) for d in day])
                ev &= minutes < cut
            w[np.ix_(ev, m)] *= f
        s = w.sum(axis=1, keepdims=True)
        return w / np.where(s > 0, s, 1)

    def metro_expected(self, minutes: np.ndarray, dep: np.ndarray,
                       lam: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Expected metro (L3 + APM) entries and exits per minute: commuters,
        plus the metro's share of visitors leaving (entries) and arriving (exits)."""
        mod, _ = self.local(minutes)
        comm = self.comm_daily / 2 * self.comm_w[mod]
        on = _window_mask(mod, self.metro_service)
        ent = (comm + self.metro_share * dep) * on
        ext = (comm + self.metro_share * lam) * on
        return ent, ext

    def tram_expected(self, minutes: np.ndarray, k: int) -> np.ndarray:
        mod, _ = self.local(minutes)
        on = _window_mask(mod, self.tram_service)
        return self.tram_daily[k] / 2 * self.arr_w[mod] * on * self.weather_factor(minutes) ** 0.5

    # ------------------------------------------------------------ recursion
    def chunk(self, m0: int, n: int) -> dict[str, np.ndarray]:
        """Drivers of minutes [m0, m0 + n); must be called on consecutive chunks."""
        if self._next is None or self._next != m0:
            warm = 720
            mins = np.arange(m0 - warm, m0)
            lamT = self.tower_arrivals(mins)
            PT = 0.0
            tstay = self._tower_stay(mins)
            PTs = np.empty(warm)
            for i in range(warm):
                PT = PT * (1 - 1 / tstay[i]) + lamT[i]
                PTs[i] = PT
            stay = self.area_stay(mins, 0.3 + 0.7 * self.weather_factor(mins))
            self._over_run = 0
            P, _, _ = self._area(mins, float(self.arrivals(mins[:1])[0] * stay[0]), PTs)
            self._P, self._PT = P[-1], PT
        mins = np.arange(m0, m0 + n)
        wf = self.weather_factor(mins)
        stayf = 0.3 + 0.7 * wf
        lamT = self.tower_arrivals(mins)
        tstay = self._tower_stay(mins)
        PT = np.empty(n)
        prev = self._PT
        for i in range(n):
            prev = prev * (1 - 1 / tstay[i]) + lamT[i]
            PT[i] = prev
        P, dep, lam = self._area(mins, self._P, PT)
        self._P, self._PT = P[-1], PT[-1]
        self._next = m0 + n
        mod, day = self.local(mins)
        r1 = self.rain_1h(mins)
        ent, ext = self.metro_expected(mins, dep, lam)
        return {
            "minutes": mins, "mod": mod, "day": day, "lam": lam, "P": P, "dep": dep, "PT": PT, "wf": wf,
            "stayf": stayf, "rain_i": self.rain(mins), "rain_1h": r1, "rain_90": self.rain_90(mins),
            "wind": self.wind(mins), "closure": self.closure(mins), "zone_w": self.zone_weights(mins),
            "metro_ent": ent, "metro_ext": ext, "holiday": self.holiday(mins),
            "tram0": self.tram_expected(mins, 0), "tram1": self.tram_expected(mins, 1) if len(self.tram_daily) > 1 else np.zeros(n),
            "traffic": self.traffic_demand(mins),
        }

    def _area(self, mins: np.ndarray, P0: float, PT: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """People present in the area (Little's law, one step a minute), departures and arrivals.

        With a show, the operator watches its viewing zones: when the crowd that wants to be there
        (the zones' share of the people present, before entry control) stays above the safe load
        for ``cancel_after_min`` minutes, the show is cancelled for the night (as on 27-28 Nov 2018):
        its evening boost of arrivals and its pull on the riverside end from that minute."""
        n = len(mins)
        lam = self.arrivals(mins)
        stay = self.area_stay(mins, 0.3 + 0.7 * self.weather_factor(mins))
        watch = None
        if self.show is not None and self.show_on(mins).any():
            w = self.zone_weights(mins)
            zs = self.show["watch"]
            watch = (self.show_on(mins), w[:, zs].sum(axis=1) / self.w.c1[zs].sum())
        P = np.empty(n)
        dep = np.empty(n)
        prev = P0
        i = 0
        while i < n:
            d = prev / stay[i]
            dep[i] = d
            prev = prev - d + lam[i]
            P[i] = prev
            if watch is not None and not watch[0][i]:
                self._over_run = 0
            elif watch is not None:
                load = max(prev - PT[i], 0.0) * watch[1][i]
                self._over_run = self._over_run + 1 if load >= self.show["cancel_load"] else 0
                if self._over_run >= self.show["after"]:
                    _, day = self.local(mins[i:i + 1])
                    self.show_cancelled[int(day[0])] = int(mins[i]) + 1
                    lam[i + 1:] = self.arrivals(mins[i + 1:])
                    watch = None
            i += 1
        return P, dep, lam

    def _tower_stay(self, mins: np.ndarray) -> np.ndarray:
        mod, _ = self.local(mins)
        b = parse_hhmm(self.tower_open[1])
        st = np.full(len(mins), self.tower_stay)
        st[(mod >= b) | (mod < parse_hhmm(self.tower_open[0])) | self.closure(mins)] = 10.0
        return st


# ================================================================== the simulation

def _fill(weights: np.ndarray, people: float, limit: np.ndarray) -> tuple[np.ndarray, float]:
    """Share ``people`` among zones by ``weights`` with no zone above its ``limit``: a zone's
    excess goes to the zones with room, in proportion to their weights (people turned back at a
    full zone's cordon walk on to the next one).  Returns the targets and the people left over
    when every open zone is full (held outside)."""
    t = np.zeros(len(weights))
    free = weights > 0
    rem = float(people)
    for _ in range(len(weights)):
        s = weights[free].sum()
        if s <= 0 or rem <= 0:
            break
        alloc = np.where(free, rem * weights / s, 0.0)
        over = free & (alloc > limit)
        if not over.any():
            t[free] = alloc[free]
            rem = 0.0
            break
        t[over] = limit[over]
        rem -= float(limit[over].sum())
        free &= ~over
    return t, max(rem, 0.0)


class _Rngs:
    """One independent generator per feed kind (and one for faults)."""

    def __init__(self, seed: int) -> None:
        self.seed = int(seed)
        self._g = {k: np.random.default_rng([self.seed, 1000 + i]) for i, k in enumerate(FEED_KINDS)}
        # delivery (latency, faults) per kind too, so leaving a kind out changes no other kind
        self.latency = {k: np.random.default_rng([self.seed, 2000 + i]) for i, k in enumerate(FEED_KINDS)}
        self.faults = {k: np.random.default_rng([self.seed, 3000 + i]) for i, k in enumerate(FEED_KINDS)}
        self.setup = np.random.default_rng([self.seed, 7])
        self.damage = np.random.default_rng([self.seed, 8])
        self.outage = np.random.default_rng([self.seed, 9])

    def __getitem__(self, kind: str) -> np.random.Generator:
        return self._g[kind]

    def trip(self, *key: int) -> np.random.Generator:
        return np.random.default_rng([self.seed, 3, *key])


@dataclass
class _Case:
    case_id: str
    category: str
    zone: int
    lon: float
    lat: float
    description: str
    departments: list[str]
    events: list[tuple[int, str]] = field(default_factory=list)   # (ms, status)
    staff: int = -1


class Simulation:
    """The stream of one scenario run: iterate it for :class:`Batch` items.

    ``minutes_total`` (None when endless), ``minutes_done``, ``sim_time``,
    ``counts`` (records yielded per kind, duplicates included) and
    ``fault_counts`` tell where it is - used for progress bars and manifests.
    """

    def __init__(self, scenario: str | Scenario, start: datetime | None, duration: timedelta | None, seed: int,
                 *, inventory=None, faults: Faults | None = None, kinds: Iterable[str] | None = None,
                 scenarios_file: str | None = None) -> None:
        self.scenario = scenario if isinstance(scenario, Scenario) else scenario_catalog(scenarios_file)[scenario]
        sc = self.scenario
        start = sc.start if start is None else start
        if start.tzinfo is None:
            raise ValueError("start must be an aware datetime (e.g. 2026-10-01T08:00+08:00)")
        self.start_ms = (_ms(start) // _MIN_MS) * _MIN_MS          # whole minutes
        self.start = _dt(self.start_ms)
        if duration is not None and duration <= timedelta(0):
            raise ValueError("duration must be positive")
        self.minutes_total = None if duration is None else max(1, math.ceil(duration / timedelta(minutes=1)))
        self.seed = int(seed)
        self.faults = Faults() if faults is None else faults
        self.kinds = tuple(FEED_KINDS) if kinds is None else tuple(kinds)
        bad = [k for k in self.kinds if k not in SCHEMAS]
        if bad:
            raise ValueError(f"unknown feed kind(s) {bad}; known: {', '.join(FEED_KINDS)}")
        self.world = _default_world() if inventory is None else World(inventory)
        self.minutes_done = 0
        self.counts: Counter[str] = Counter()
        self.fault_counts: Counter[str] = Counter()
        self._gen = self._run()

    @property
    def sim_time(self) -> datetime:
        return _dt(self.start_ms + self.minutes_done * _MIN_MS)

    def __iter__(self) -> "Simulation":
        return self

    def __next__(self) -> Batch:
        return next(self._gen)

    # ------------------------------------------------------------ setup
    def _setup(self) -> None:
        w, sc, g = self.world, self.scenario, self.rng.setup
        self.drv = _Drivers(sc, w, self.start_ms)
        self.P = None                                    # zone counts
        self.phase = {k: g.integers(0, 8000, n) for k, n in (
            ("crowd", w.Z), ("gate", w.gates.n), ("station", 4), ("traffic", w.roads.n), ("weather", 2),
            ("fac", len(w.fac_ids)))}
        self.fac_off = g.integers(0, 60, len(w.fac_ids))
        self.hyd_base = g.uniform(*sc.num("facility.hydrant_pressure_mpa"), w.hydrants.n)
        self.well_depth = g.uniform(*sc.num("facility.well_depth_m"), w.covers.n)
        self.bin_rate = g.uniform(*sc.num("facility.bin_fill_per_h"), w.bins.n)
        self.bin_base = g.uniform(0.02, 0.15, w.bins.n)
        self.lamp_w = np.array([float(str(a.get("lamp", "LED 100 W")).split()[1]) if len(str(a.get("lamp", "")).split()) > 1
                                else 100.0 for a in w.lamps.attrs])
        self.road_factor = g.uniform(0.7, 1.1, w.roads.n)
        # entry control: a zone stops letting people in at its limit; the bridge's reservations on holidays
        zp = sc.get("crowd.zones", {}) or {}
        ctl = np.array([bool(zp.get(z, {}).get("entry_control", True)) for z in w.zone_ids])
        # (the tower, the station concourse and the tram platform have their own controls: lifts, gates)
        self.zone_limit = np.where(ctl & self.drv.generic, float(sc.num("crowd.entry_stop_load")) * w.c1, np.inf)
        self.reservation = None
        for z, zid in enumerate(w.zone_ids):
            rl = zp.get(zid, {}).get("reservation_load")
            if rl is not None:
                self.reservation = (z, float(rl) * float(w.c1[z]))
        self.held_back = 0.0
        self.free_speed, self.lanes, self.road_cap = self._road_figures()
        # gates: per zone the gate indices and fixed split weights
        self.gate_groups = {}
        for z in np.unique(w.gates.zone):
            idx = np.flatnonzero(w.gates.zone == z)
            self.gate_groups[int(z)] = (idx, g.dirichlet(np.full(len(idx), 8.0)))
        # cameras
        cam_zone = w.cams.zone
        self.cams_per_zone = np.maximum(np.bincount(cam_zone[cam_zone >= 0], minlength=w.Z), 1)
        algs = sc.num("video.algorithms")
        self.alg_rate = np.array([float(algs[a]["rate"]) for a in VIDEO_ALGORITHMS])
        self.alg_driver = [algs[a]["driver"] for a in VIDEO_ALGORITHMS]
        app = np.zeros((len(_CTX), len(VIDEO_ALGORITHMS)))
        for j, a in enumerate(VIDEO_ALGORITHMS):
            for c in algs[a]["on"]:
                app[_CTX.index(c), j] = 1.0
        self.cam_app = app[w.camera_ctx]                             # [C, A]
        self.cam_heading = np.array([float(a.get("heading_deg", 0.0)) for a in w.cams.attrs])
        self.cam_range = np.array([float(a.get("range_m", 50)) for a in w.cams.attrs])
        self.cam_fov = np.array([float(a.get("fov_deg", 90)) for a in w.cams.attrs])
        # failures (scheduled) and storm damage (latched)
        self.cam_offline_since = np.full(w.cams.n, np.iinfo(np.int64).max)
        # everyday outages: each camera and lamp alternates between working and failed (exponential
        # times, mean repair time mttr_h), at the long-run availability of [defaults.facility.outages]
        self.outages = {}
        for key, n in (("camera", w.cams.n), ("lamp", w.lamps.n)):
            o = sc.num(f"facility.outages.{key}")
            u, mttr = float(o["unavailable"]), float(o["mttr_h"]) * 60.0
            mtbf = mttr * (1 - u) / u if u > 0 else np.inf
            down = self.rng.outage.random(n) < u
            nxt = self.start_ms + (self.rng.outage.exponential(1.0, n) * np.where(down, mttr, mtbf) * _MIN_MS)
            self.outages[key] = {"down": down, "next": np.minimum(nxt, 2 ** 62).astype(np.int64),
                                 "since": np.where(down, self.start_ms - _MIN_MS, np.iinfo(np.int64).max),
                                 "mttr": mttr, "mtbf": mtbf}
        # work orders (the `maintenance` reading): repairs at the end of an everyday outage, and the
        # half-monthly planned maintenance of lifts and escalators; per group, which assets have one open
        self.work_open = {"camera": np.zeros(w.cams.n, bool), "lamp": np.zeros(w.lamps.n, bool),
                          "lift": np.zeros(w.lifts.n, bool), "escalator": np.zeros(w.escalators.n, bool)}
        self.lamp_dark_since = np.full(w.lamps.n, np.iinfo(np.int64).max)
        self.hyd_fail = np.full(w.hydrants.n, np.iinfo(np.int64).max)
        self.hyd_level = np.zeros(w.hydrants.n)
        self.cover_fail = np.full(w.covers.n, np.iinfo(np.int64).max)
        self.cover_level = np.zeros(w.covers.n)
        self.lift_stop = np.full(w.lifts.n, np.iinfo(np.int64).max)
        self.failure_cases: list[tuple[int, str, int, str]] = []   # (ms, group, index, effect)
        lamp_line = np.array([a.get("line", "") for a in w.lamps.attrs])
        for f in sc.get("failure", []) or []:
            t = _ms(sc.at_time(f["at"], self.drv.anchor))
            eff = f["effect"]
            level = float(f.get("level", 0) or 0)
            if eff == "lamp_dark":
                idx = np.flatnonzero(lamp_line == f["line"]) if f.get("line") else [w.lamps.index[f["asset"]]]
                self.lamp_dark_since[idx] = np.minimum(self.lamp_dark_since[idx], t)
                if len(idx):
                    self.failure_cases.append((t, "lamp_pole", int(idx[0]), eff))
                continue
            grp = {"pressure_loss": w.hydrants, "cover_displaced": w.covers, "camera_offline": w.cams,
                   "stopped": w.lifts}[eff]
            if f.get("asset") not in grp.index:
                raise ValueError(f"scenario {sc.name}: failure asset {f.get('asset')!r} is not a "
                                 f"{eff} asset of the inventory")
            i = grp.index[f["asset"]]
            if eff == "pressure_loss":
                self.hyd_fail[i], self.hyd_level[i] = t, level
            elif eff == "cover_displaced":
                self.cover_fail[i], self.cover_level[i] = t, level
            elif eff == "camera_offline":
                self.cam_offline_since[i] = t
            else:
                self.lift_stop[i] = t
            self.failure_cases.append((t, {"pressure_loss": "fire_hydrant", "cover_displaced": "manhole_cover",
                                           "camera_offline": "cctv_camera", "stopped": "lift"}[eff], i, eff))
        dmg = sc.get("storm_damage") or {}
        self.dmg_ramp = tuple(float(v) for v in dmg.get("wind_ramp_ms", (10.0, 20.0)))
        self.dmg = {k: float(v) for k, v in dmg.items() if k != "wind_ramp_ms"}
        self.dmg_u = {"cam": g.random(w.cams.n), "lamp": g.random(w.lamps.n), "cover": g.random(w.covers.n)}
        # stations: L3, APM, tram 0, tram 1
        st_ids = [i for i in w.metro.ids if "l3" in i] + [i for i in w.metro.ids if "apm" in i] + w.trams.ids
        self.station_ids = _str(st_ids[:4])
        self.n_st = len(st_ids[:4])
        self.queue = 0.0
        self.apm_skip = sc.get("station.apm_skip")
        self.throttle = sc.get("station.throttle")
        # cases and staff
        self.cases_heap: list[tuple[int, int, _Case, str]] = []
        self.case_seq = 0
        self.tier_announced = np.zeros(w.Z, dtype=np.int64)
        self._init_staff()
        self.signal_i = 0
        self.trip_cache: dict[tuple, dict | None] = {}
        self._init_bus()
        self.pending: dict[str, list[tuple[np.ndarray, pa.Table]]] = {}
        self.pending_bad: list[tuple[int, dict]] = []

    # ------------------------------------------------------------ main loop
    def _run(self) -> Iterator[Batch]:
        self.rng = _Rngs(self.seed)
        self._setup()
        chunk_n = 360
        m = self.start_ms // _MIN_MS
        end = None if self.minutes_total is None else m + self.minutes_total
        first = True
        while end is None or m < end:
            n = chunk_n if end is None else min(chunk_n, end - m)
            ex = self.drv.chunk(m, n)
            for i in range(n):
                self._minute(ex, i, first)
                first = False
                self.minutes_done += 1
                for b in self._flush((m + i + 1) * _MIN_MS):
                    yield b
            m += n
        for b in self._flush(None):
            yield b

    def _minute(self, ex: dict, i: int, first: bool) -> None:
        t0 = int(ex["minutes"][i]) * _MIN_MS
        k = set(self.kinds)
        self._update_outages(t0)
        self._update_failures(ex, i, t0)
        st = self._station(ex, i, t0)            # needed by crowd and gates
        cr = self._crowd(ex, i, t0, st)
        if "station" in k:
            self._emit("station", *st["out"])
        if "crowd" in k:
            self._emit("crowd", *cr["out"])
        if "gate" in k:
            self._emit("gate", *self._gate(cr, st, t0))
        if "video" in k:
            self._emit("video", *self._video(ex, i, t0))
        if "facility" in k:
            self._emit("facility", *self._facility(ex, i, t0))
        if "bus" in k:
            self._emit("bus", *self._bus(ex, i, t0))
        if "traffic" in k:
            self._emit("traffic", *self._traffic(ex, i, t0))
        if "weather" in k and (ex["minutes"][i] % int(self.scenario.num("weather.period_min")) == 0 or first):
            self._emit("weather", *self._weather(ex, i, t0))
        if "warning" in k:
            self._emit("warning", *self._warning(t0, first))
        case_rows = self._cases(ex, i, t0)
        if "case" in k:
            self._emit("case", *case_rows)
        if "staff" in k:
            self._emit("staff", *self._staff(ex, i, t0))

    # ------------------------------------------------------------ delivery
    def _emit(self, kind: str, table: pa.Table | None, event_ms: np.ndarray | None) -> None:
        """Latency and faults, then into the pending buffer until arrival."""
        if table is None or table.num_rows == 0:
            return
        n = table.num_rows
        lat = np.clip(np.exp(self.rng.latency[kind].normal(np.log(1500), 0.6, n)), 200, 20000).astype(np.int64)
        arrival = np.asarray(event_ms, dtype=np.int64) + lat
        f = self.faults
        if not f.any():
            self.pending.setdefault(kind, []).append((arrival, table))
            return
        fr = self.rng.faults[kind]
        r = fr.random((n, 5))
        missing = r[:, 0] < f.missing
        malformed = ~missing & (r[:, 1] < f.malformed)
        ok = ~missing & ~malformed
        late = ok & (r[:, 2] < f.late)
        ooo = ok & ~late & (r[:, 3] < f.out_of_order)
        dup = ok & (r[:, 4] < f.duplicate)
        arrival = arrival.copy()
        if late.any():
            arrival[late] += fr.integers(10 * _MIN_MS, 30 * _MIN_MS, int(late.sum()))
        if ooo.any():
            arrival[ooo] += fr.integers(40_000, 170_000, int(ooo.sum()))
        fc = self.fault_counts
        fc["missing"] += int(missing.sum())
        fc["malformed"] += int(malformed.sum())
        fc["late"] += int(late.sum())
        fc["out_of_order"] += int(ooo.sum())
        fc["duplicate"] += int(dup.sum())
        if ok.all():
            self.pending.setdefault(kind, []).append((arrival, table))
        elif ok.any():
            self.pending.setdefault(kind, []).append((arrival[ok], table.filter(pa.array(ok))))
        if dup.any():
            again = arrival[dup] + fr.integers(2_000, 150_000, int(dup.sum()))
            self.pending.setdefault(kind, []).append((again, table.filter(pa.array(dup))))
        if malformed.any():
            for a, rec in zip(arrival[malformed], self._corrupt(kind, table.filter(pa.array(malformed)))):
                self.pending_bad.append((int(a), rec))

    def _flush(self, cutoff: int | None) -> list[Batch]:
        """Everything that has arrived before ``cutoff`` (all when None), as
        one batch per kind sorted by arrival, batches in arrival order."""
        out = []
        for kind in list(self.pending):
            chunks = self.pending[kind]
            due_t, due_a, keep = [], [], []
            for a, t in chunks:
                if cutoff is None or a.max() < cutoff:
                    due_t.append(t)
                    due_a.append(a)
                elif a.min() >= cutoff:
                    keep.append((a, t))
                else:
                    m = a < cutoff
                    due_t.append(t.filter(pa.array(m)))
                    due_a.append(a[m])
                    keep.append((a[~m], t.filter(pa.array(~m))))
            if keep:
                self.pending[kind] = keep
            else:
                del self.pending[kind]
            if not due_t:
                continue
            table = pa.concat_tables(due_t) if len(due_t) > 1 else due_t[0]
            arr = np.concatenate(due_a)
            order = np.argsort(arr, kind="stable")
            if not np.array_equal(order, np.arange(len(order))):
                table = table.take(pa.array(order))
                arr = arr[order]
            out.append(Batch(kind, table, arr))
            self.counts[kind] += table.num_rows
        if self.pending_bad:
            due = [(a, r) for a, r in self.pending_bad if cutoff is None or a < cutoff]
            if due:
                self.pending_bad = [(a, r) for a, r in self.pending_bad if not (cutoff is None or a < cutoff)]
                due.sort(key=lambda x: x[0])
                out.append(Batch(MALFORMED, [r for _, r in due], np.array([a for a, _ in due])))
                self.counts[MALFORMED] += len(due)
        out.sort(key=lambda b: (int(b.arrival_ms[-1]), _KIND_ORDER[b.kind]))
        return out

    def _corrupt(self, kind: str, table: pa.Table) -> list[dict]:
        """Malformed versions of records: wrong type, missing field, out of range, or garbage."""
        g = self.rng.faults[kind]
        out = []
        schema = SCHEMAS[kind]
        required = [f.name for f in schema if not f.nullable]
        for rec in table.to_pylist():
            d = {k: (_iso(v) if isinstance(v, datetime) else v) for k, v in rec.items()}
            how = int(g.integers(0, 4))
            if how == 0:                                  # wrong type
                field_, val = _WRONG_TYPE[kind]
                d[field_] = val
                d["_fault"] = "wrong_type"
            elif how == 1:                                # a required field missing
                d.pop(required[int(g.integers(0, len(required)))], None)
                d["_fault"] = "missing_field"
            elif how == 2:                                # out of range
                field_, val = _OUT_OF_RANGE[kind]
                d[field_] = val
                d["_fault"] = "out_of_range"
            else:                                         # garbage
                d = {"garbage": bytes(g.integers(0, 256, 24, dtype=np.uint8)).hex(), "_fault": "garbage"}
            d["kind"] = kind
            out.append(d)
        return out

    # ------------------------------------------------------------ failures
    def _update_outages(self, t0: int) -> None:
        """Everyday outages: assets whose state changes this minute fail or come back."""
        g = self.rng.outage
        end = t0 + _MIN_MS
        for o in self.outages.values():
            while True:
                due = np.flatnonzero(o["next"] < end)
                if due.size == 0:
                    break
                now_down = ~o["down"][due]
                o["down"][due] = now_down
                o["since"][due] = np.where(now_down, np.maximum(o["next"][due], t0), np.iinfo(np.int64).max)
                mean = np.where(now_down, o["mttr"], o["mtbf"])
                step = np.clip(g.exponential(1.0, due.size) * mean * _MIN_MS, _MIN_MS, 2 ** 61)
                o["next"][due] = o["next"][due] + step.astype(np.int64)

    def _planned_maintenance(self, ex: dict, i: int) -> dict[str, np.ndarray]:
        """Lifts and escalators in their half-monthly maintenance this minute: asset k of a group
        on the local days where (day + k) is a multiple of the period, inside the group's window."""
        wo = self.scenario.num("facility.work_orders")
        every = int(wo["lift_every_days"])
        mod, day = int(ex["mod"][i]), int(ex["day"][i])
        out = {}
        for key, grp in (("lift", self.world.lifts), ("escalator", self.world.escalators)):
            inside = bool(_window_mask(np.array([mod]), wo[f"{key}_window"])[0])
            out[key] = ((day + np.arange(grp.n)) % every == 0) & inside
        return out

    def _work_orders(self, t0: int, planned: dict[str, np.ndarray]):
        """(outage key, inventory group, open now) per group: a repair's work order is open for the
        last ``repair_h`` of an everyday outage (until the asset works again), but not before the
        fault has lasted ``repair_h`` (found, a crew sent): an outage shorter than that came back
        by itself and has none; a planned one is open for its window."""
        repair = int(float(self.scenario.num("facility.work_orders")["repair_h"]) * 3_600_000)
        end = t0 + _MIN_MS
        for key, group in (("camera", "cctv_camera"), ("lamp", "lamp_pole")):
            o = self.outages[key]
            yield key, group, o["down"] & (o["next"] < end + repair) & (o["since"] < end - repair)
        yield "lift", "lift", planned["lift"]
        yield "escalator", "escalator", planned["escalator"]

    def _camera_online(self, t0: int) -> np.ndarray:
        return (self.cam_offline_since > t0) & ~self.outages["camera"]["down"]

    def _update_failures(self, ex: dict, i: int, t0: int) -> None:
        """Storm damage latches assets out as the wind rises (typhoon)."""
        if not self.dmg:
            return
        lo, hi = self.dmg_ramp
        s = float(np.clip((ex["wind"][i] - lo) / (hi - lo), 0.0, 1.0))
        if s <= 0:
            return
        for key, arr, frac in (("cam", self.cam_offline_since, self.dmg.get("camera_offline", 0.0)),
                               ("lamp", self.lamp_dark_since, self.dmg.get("lamp_dark", 0.0)),
                               ("cover", self.cover_fail, self.dmg.get("covers_displaced", 0.0))):
            hit = (self.dmg_u[key] < frac * s) & (arr > t0)
            if hit.any():
                arr[hit] = t0
                if key == "cover":
                    self.cover_level[hit] = self.rng.damage.uniform(15, 40, int(hit.sum()))
                grp = {"cam": "cctv_camera", "lamp": "lamp_pole", "cover": "manhole_cover"}[key]
                eff = {"cam": "camera_offline", "lamp": "lamp_dark", "cover": "cover_displaced"}[key]
                for j in np.flatnonzero(hit)[:3].tolist():       # a few become cases
                    self.failure_cases.append((t0, grp, j, eff))

    # ------------------------------------------------------------ station
    def _station(self, ex: dict, i: int, t0: int) -> dict:
        g = self.rng["station"]
        sc = self.scenario
        mod = int(ex["mod"][i])
        l3f = self.drv.l3_frac
        e_m, x_m = float(ex["metro_ent"][i]), float(ex["metro_ext"][i])
        exp_ent = np.array([e_m * l3f, e_m * (1 - l3f), ex["tram0"][i], ex["tram1"][i]])
        exp_ext = np.array([x_m * l3f, x_m * (1 - l3f), ex["tram0"][i], ex["tram1"][i]])
        skip = bool(self.apm_skip) and bool(_window_mask(np.array([mod]), self.apm_skip)[0])
        if skip:          # 飞站: APM riders re-route to Line 3
            exp_ent[0] += exp_ent[1]
            exp_ext[0] += 0.5 * exp_ext[1]
            exp_ent[1] = exp_ext[1] = 0.0
        ent = g.poisson(exp_ent).astype(float)
        ext = g.poisson(exp_ext).astype(float)
        # Line 3 entries limited by the gates (always) and the throttle (crowd control)
        n_turn = sum(1 for t in self.world.gate_type if t == "turnstile") or 16
        cap = n_turn * float(sc.num("station.turnstile_capacity_per_min")) - ext[0] - ext[1]
        throttled = bool(self.throttle) and bool(_window_mask(np.array([mod]), self.throttle)[0])
        if throttled:
            cap = min(cap, float(sc.num("station.throttle_per_min")))
        demand = ent[0] + self.queue
        served = min(demand, max(cap, 0.0))
        self.queue = demand - served
        ent[0] = served
        head = float(sc.num("station.headway_min"))
        plat = np.array([ent[0] * head + 0.4 * ext[0], ent[1] * head * 1.5 + 0.4 * ext[1],
                         ent[2] * float(sc.num("station.tram_platform_wait_min")),
                         ent[3] * float(sc.num("station.tram_platform_wait_min"))])
        plat *= g.uniform(0.9, 1.1, 4)
        thr = sc.num("station.control_thresholds")
        capp = np.array([float(sc.num("station.platform_capacity")), float(sc.num("station.apm_platform_capacity")),
                         1e9, 1e9])
        level = (plat[:, None] / capp[:, None] >= np.asarray(thr)[None, :]).sum(axis=1)
        # the concourse: people passing through, sheltering from rain, and the queue outside the gates
        shelter = 1 + self.drv.shelter * min(float(ex["rain_1h"][i]) / 50.0, 1.0)
        conc_target = (ent[0] + ent[1] + ext[0] + ext[1]) * self.drv.dwell * shelter + self.queue
        c1c = self.world.c1[self.drv.z_conc] if self.drv.z_conc >= 0 else 1000.0
        conc_load = conc_target / c1c
        conc_level = int((conc_load >= np.asarray(thr)).sum())
        level[0] = max(level[0], conc_level, 2 if throttled else 0)
        level[1] = 3 if skip else max(level[1], conc_level)
        if skip:
            plat[1] = 0.0
        tram_target = (ent[2] + ext[2]) * float(sc.num("station.tram_platform_wait_min")) / 2
        n = self.n_st
        ms = t0 + self.phase["station"][:n]
        ids = _join(_str(["station:" + s for s in self.station_ids.to_pylist()]), _ms_text(ms), sep="@")
        out = _table("station", {
            "event_id": ids, "event_time": ms, "source": _SOURCES["station"], "station_id": self.station_ids,
            "entries": ent[:n].astype(np.int32), "exits": ext[:n].astype(np.int32),
            "interval_s": np.full(n, 60, np.int32), "platform_persons": np.round(plat[:n]).astype(np.int32),
            "control_level": level[:n].astype(np.int8)}, n)
        return {"out": (out, ms), "ent": ent, "ext": ext, "conc_target": conc_target, "tram_target": tram_target}

    # ------------------------------------------------------------ crowd
    def _crowd(self, ex: dict, i: int, t0: int, st: dict) -> dict:
        g = self.rng["crowd"]
        w, d = self.world, self.drv
        P_total = float(ex["P"][i])
        target = np.zeros(w.Z)
        special = 0.0
        if d.z_tower >= 0:
            target[d.z_tower] = ex["PT"][i]
            special += ex["PT"][i]
        if d.z_conc >= 0:
            target[d.z_conc] = st["conc_target"]
            special += st["conc_target"]
        if d.z_tram >= 0:
            target[d.z_tram] = st["tram_target"]
            special += st["tram_target"]
        limit = self.zone_limit.copy()
        res = self.reservation is not None and bool(ex["holiday"][i])
        if res:
            zr, cap_r = self.reservation
            limit[zr] = min(limit[zr], cap_r)
        generic, self.held_back = _fill(ex["zone_w"][i], max(P_total - special, 0.0), limit)
        target += generic
        stay = d.stay_z * float(ex["stayf"][i])
        if d.z_tower >= 0:
            stay[d.z_tower] = d._tower_stay(ex["minutes"][i:i + 1])[0]
        if self.P is None:
            self.P = np.round(np.minimum(target, limit)).astype(np.int64)
        prev = self.P
        p_leave = np.clip(np.maximum(1.0 / np.maximum(stay, 1.0),
                                     (prev - target) / np.maximum(prev, 1)), 0.0, 1.0)
        D = g.binomial(prev, p_leave)
        A = g.poisson(np.maximum(target - prev * (1 - p_leave), 0.0))
        # entry control: the gates and cordons let nobody in past the limit (one in, one out)
        room = np.where(np.isfinite(limit), np.maximum(np.floor(limit) - (prev - D), 0), np.iinfo(np.int32).max)
        A = np.minimum(A, room.astype(np.int64))
        if res:                               # timed reservations: a slot's tickets are used through the slot
            A[zr] = min(int(A[zr]), int(math.ceil(cap_r / max(stay[zr], 1.0))))
        self.P = prev - D + A
        ms = t0 + self.phase["crowd"]
        ids = _join(_str("crowd:" + z for z in w.zone_ids), _ms_text(ms), sep="@")
        out = _table("crowd", {"event_id": ids, "event_time": ms, "source": _SOURCES["crowd"],
                               "zone_id": w.zone_ids_pa, "count": self.P.astype(np.int32)}, w.Z)
        self.load = self.P / w.c1
        return {"out": (out, ms), "A": A, "D": D}

    # ------------------------------------------------------------ gates
    def _gate(self, cr: dict, st: dict, t0: int) -> tuple[pa.Table, np.ndarray]:
        g = self.rng["gate"]
        w = self.world
        n = w.gates.n
        ent = np.zeros(n, dtype=np.int64)
        ext = np.zeros(n, dtype=np.int64)
        for z, (idx, pw) in self.gate_groups.items():
            if z == self.drv.z_conc:          # station turnstiles count the paid-area flows
                e, x = int(st["ent"][0] + st["ent"][1]), int(st["ext"][0] + st["ext"][1])
            else:
                cov = self.drv.gate_cov[z]
                e = int(g.binomial(cr["A"][z], cov)) if cov < 1 else int(cr["A"][z])
                x = int(g.binomial(cr["D"][z], cov)) if cov < 1 else int(cr["D"][z])
            ent[idx] = g.multinomial(e, pw)
            ext[idx] = g.multinomial(x, pw)
        ms = t0 + self.phase["gate"]
        ids = _join(_str("gate:" + a for a in w.gates.ids), _ms_text(ms), sep="@")
        zone = pc.take(w.zone_ids_pa, pa.array(np.maximum(w.gates.zone, 0)))
        return _table("gate", {"event_id": ids, "event_time": ms, "source": _SOURCES["gate"],
                               "gate_id": w.gates.ids_pa, "zone_id": zone, "entries": ent.astype(np.int32),
                               "exits": ext.astype(np.int32), "interval_s": np.full(n, 60, np.int32)}, n), ms

    # ------------------------------------------------------------ video
    def _video(self, ex: dict, i: int, t0: int) -> tuple[pa.Table | None, np.ndarray | None]:
        g = self.rng["video"]
        w, sc = self.world, self.scenario
        cz = w.cams.zone
        load = np.where(cz >= 0, self.load[np.maximum(cz, 0)], 0.1)
        hour = int(ex["mod"][i]) // 60
        crowd = 0.1 + 2.2 * load
        onset = float(sc.num("video.density_onset"))
        r1 = float(ex["rain_1h"][i])
        gust = float(ex["wind"][i]) * 1.6
        drivers = {
            "crowd": crowd,
            "density": np.minimum(np.maximum(load - onset, 0) / (1 - onset), 1.5),
            "vendor": crowd * (float(sc.num("video.night_vendor_gain")) if 17 <= hour < 23 else 1.0),
            "traffic": np.full(w.cams.n, float(ex["traffic"][i])),
            "rain": np.full(w.cams.n, r1 / 50.0),
            "rain_plus": np.full(w.cams.n, 1 + r1 / 10.0),
            "weather": np.full(w.cams.n, 1 + (gust / 15.0) ** 3 + r1 / 20.0),
            "none": np.ones(w.cams.n),
        }
        mult = np.column_stack([drivers[dv] for dv in self.alg_driver])          # [C, A]
        online = self._camera_online(t0).astype(float)
        lam = self.cam_app * mult * self.alg_rate[None, :] * online[:, None] / 60.0
        counts = g.poisson(lam)
        # a camera dropping offline reports itself once
        went_at = np.minimum(self.cam_offline_since, self.outages["camera"]["since"])
        newly = (went_at >= t0) & (went_at < t0 + _MIN_MS)
        counts[newly, _ALG_INDEX["camera_abnormal"]] += 1
        cam, alg = np.nonzero(counts)
        if cam.size == 0:
            return None, None
        reps = counts[cam, alg]
        cam = np.repeat(cam, reps)
        alg = np.repeat(alg, reps)
        n = cam.size
        ms = t0 + g.integers(0, _MIN_MS, n)
        went = newly[cam] & (alg == _ALG_INDEX["camera_abnormal"])
        ms[went] = np.clip(went_at[cam[went]], t0, t0 + _MIN_MS - 1)
        order = np.argsort(ms, kind="stable")
        cam, alg, ms = cam[order], alg[order], ms[order]
        lo, hi = sc.num("video.confidence")
        conf = lo + (hi - lo) * g.beta(4.0, 2.0, n)
        z = cz[cam]
        zl = np.where(z >= 0, self.P[np.maximum(z, 0)] / self.cams_per_zone[np.maximum(z, 0)], 1.0)
        crowdy = np.isin(alg, [_ALG_INDEX[a] for a in ("crowd_gathering", "crowd_density_over_limit",
                                                          "wrong_way_flow", "running")])
        objs = np.where(crowdy, np.maximum(2, g.poisson(np.maximum(zl * 0.3, 1.0))),
                        np.where(alg == _ALG_INDEX["queue_length"], g.poisson(15 + 60 * load[cam]),
                                 1 + g.poisson(0.4, n)))
        dist = g.uniform(0.2, 0.8, n) * self.cam_range[cam]
        bearing = np.radians(self.cam_heading[cam] + g.uniform(-0.5, 0.5, n) * self.cam_fov[cam])
        lon, lat = w.frame.to_lonlat(w.cams.x[cam] + dist * np.sin(bearing), w.cams.y[cam] + dist * np.cos(bearing))
        algs = pc.take(_ALG_PA, pa.array(alg))
        key = _join(pc.take(_str("video:" + c for c in w.cams.ids), pa.array(cam)), algs, sep="/")
        ids = _join(key, _join(_ms_text(ms), _ms_text(np.arange(n)), sep="."), sep="@")
        zone = pc.take(w.zone_ids_pa, pa.array(np.maximum(z, 0)))
        zone = pc.if_else(pa.array(z >= 0), zone, pa.nulls(n, pa.string()))
        return _table("video", {"event_id": ids, "event_time": ms, "source": _SOURCES["video"],
                                "camera_id": pc.take(w.cams.ids_pa, pa.array(cam)), "algorithm": algs,
                                "confidence": conf.astype(np.float32), "zone_id": zone,
                                "object_count": objs.astype(np.int32), "lon": lon, "lat": lat}, n), ms

    # ------------------------------------------------------------ facility
    def _facility(self, ex: dict, i: int, t0: int) -> tuple[pa.Table, np.ndarray]:
        g = self.rng["facility"]
        w, sc, d = self.world, self.scenario, self.drv
        m = int(ex["minutes"][i])
        mod = int(ex["mod"][i])
        off = self.fac_off
        parts_idx, parts_metric, parts_val = [], [], []

        def add(group: str, local_idx: np.ndarray, metric: str, values: np.ndarray) -> None:
            parts_idx.append(w.fac_offset[group] + np.asarray(local_idx, dtype=np.int64))
            parts_metric.append(np.full(len(local_idx), _METRIC_INDEX[metric]))
            parts_val.append(np.asarray(values, dtype=float))

        # work orders: a reading when one opens or closes (the maintenance system reports changes)
        planned = self._planned_maintenance(ex, i)
        for key, group, now_open in self._work_orders(t0, planned):
            was = self.work_open[key]
            for v, idx in ((1.0, np.flatnonzero(now_open & ~was)), (0.0, np.flatnonzero(was & ~now_open))):
                if idx.size:
                    add(group, idx, "maintenance", np.full(idx.size, v))
            self.work_open[key] = now_open
        # cameras: online every minute
        online = self._camera_online(t0).astype(float)
        add("cctv_camera", np.arange(w.cams.n), "camera_online", online)
        # lifts and escalators every minute (stopped while maintained)
        lift_zone = np.array([w.zone_ids[z] if z >= 0 else "" for z in w.lifts.zone])
        tower_lift = lift_zone == "canton_tower_interior"
        lift_on = np.where(tower_lift, _window_mask(np.array([mod]), sc.num("facility.lift_hours"))[0]
                           and not bool(ex["closure"][i]),
                           _window_mask(np.array([mod]), sc.num("facility.escalator_hours"))[0])
        lift_on = lift_on & (self.lift_stop > t0) & ~planned["lift"]
        add("lift", np.arange(w.lifts.n), "lift_running", lift_on.astype(float))
        esc_on = _window_mask(np.array([mod]), sc.num("facility.escalator_hours"))[0] & ~planned["escalator"]
        add("escalator", np.arange(w.escalators.n), "escalator_running", esc_on.astype(float))
        # toilets every minute
        tz = np.maximum(w.toilets.zone, 0)
        occ = np.clip(self.load[tz] * 0.9 + g.normal(0, 0.04, w.toilets.n), 0, 1)
        add("toilet", np.arange(w.toilets.n), "toilet_occupancy", occ)
        # lamps every 5 min (staggered)
        lo = off[w.fac_offset["lamp_pole"]:w.fac_offset["lamp_pole"] + w.lamps.n]
        due = np.flatnonzero((m + lo) % int(sc.num("facility.lamp_period_min")) == 0)
        if due.size:
            dark = bool(d.dark(np.array([m]), float(sc.num("facility.lamp_dusk_margin_min")))[0])
            lit = dark & (self.lamp_dark_since[due] > t0) & ~self.outages["lamp"]["down"][due]
            add("lamp_pole", due, "lamp_on", lit.astype(float))
            power = np.where(lit, self.lamp_w[due] * g.uniform(0.96, 1.02, due.size), g.uniform(0, 1.5, due.size))
            add("lamp_pole", due, "lamp_power_w", power)
        # hydrants every 15 min
        ho = off[w.fac_offset["fire_hydrant"]:w.fac_offset["fire_hydrant"] + w.hydrants.n]
        due = np.flatnonzero((m + ho) % int(sc.num("facility.hydrant_period_min")) == 0)
        if due.size:
            demand_dip = 0.015 if (7 <= mod // 60 < 9 or 18 <= mod // 60 < 21) else 0.0
            pr = self.hyd_base[due] - demand_dip + g.normal(0, 0.004, due.size)
            failed = self.hyd_fail[due] <= t0
            pr = np.where(failed, self.hyd_level[due] + g.normal(0, 0.004, due.size), pr)
            add("fire_hydrant", due, "hydrant_pressure_mpa", np.maximum(pr, 0.0))
        # manhole covers every 10 min
        co = off[w.fac_offset["manhole_cover"]:w.fac_offset["manhole_cover"] + w.covers.n]
        due = np.flatnonzero((m + co) % int(sc.num("facility.cover_period_min")) == 0)
        if due.size:
            failed = self.cover_fail[due] <= t0
            tilt = np.where(failed, self.cover_level[due] + g.normal(0, 1.0, due.size),
                            np.abs(g.normal(0, 0.4, due.size)))
            disp = np.where(failed, g.uniform(120, 260, due.size), np.abs(g.normal(0, 1.5, due.size)))
            add("manhole_cover", due, "cover_tilt_deg", np.clip(tilt, 0, 90))
            add("manhole_cover", due, "cover_displacement_mm", disp)
            net = np.array([w.covers.attrs[j].get("network") for j in due])
            wet = np.isin(net, ["storm", "sewage"])
            if wet.any():
                k = due[wet]
                rise = float(sc.num("facility.well_rise_m_per_mm")) * float(ex["rain_90"][i])
                rise = rise * np.where(net[wet] == "storm", 1.0, 0.6)
                lvl = np.maximum(self.well_depth[k] - rise + g.normal(0, 0.02, k.size), 0.0)
                add("manhole_cover", k, "well_water_level_m", lvl)
        # bins every 15 min
        bo = off[w.fac_offset["bin"]:w.fac_offset["bin"] + w.bins.n]
        due = np.flatnonzero((m + bo) % int(sc.num("facility.bin_period_min")) == 0)
        if due.size:
            rounds = np.asarray(sc.num("facility.bin_empty_hours"), dtype=float) * 60
            since = np.min(np.where(mod >= rounds, mod - rounds, mod + _DAY_MIN - rounds)) / 60.0
            zl = self.load[np.maximum(w.bins.zone[due], 0)]
            fill = np.clip(self.bin_base[due] + self.bin_rate[due] * since * (0.5 + 2 * zl), 0, 1)
            add("bin", due, "bin_fill", fill)
        idx = np.concatenate(parts_idx)
        metric = np.concatenate(parts_metric)
        val = np.concatenate(parts_val)
        n = idx.size
        ms = t0 + (self.phase["fac"][idx] * 6) % 50_000
        mt = pc.take(_METRIC_PA, pa.array(metric))
        ids = _join(_join(pc.take(w.fac_keys, pa.array(idx)), mt, sep="/"), _ms_text(ms), sep="@")
        return _table("facility", {"event_id": ids, "event_time": ms, "source": _SOURCES["facility"],
                                   "asset_id": pc.take(w.fac_ids, pa.array(idx)),
                                   "asset_type": pc.take(w.fac_types, pa.array(idx)),
                                   "metric": mt, "value": val}, n), ms

    # ------------------------------------------------------------ traffic
    def _road_figures(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Free-flow speed (km/h), lanes and capacity (veh/h) of each road: the figures the
        catalog judges it by (:mod:`indicators.catalog.segments`: class, lanes and design speed
        in data/sources/layout.toml, capacity = lanes x CJJ 37 lane capacity x signal factor), so
        a road's simulated flow stays within what its lanes carry.  A road the data does not
        describe falls back to [defaults.traffic] by its carriageway width."""
        from indicators.catalog.segments import segments_of
        w, sc = self.world, self.scenario
        widths = w.road_width
        fs = sc.num("traffic.free_speed_kmh")
        free = np.select([widths < 14, widths < 20, widths < 30], fs[:3], fs[3]).astype(float)
        lanes = np.clip(np.floor(widths / float(sc.num("traffic.lane_width_m")) / 2) * 2, 2, 8)
        cap = lanes * float(sc.num("traffic.lane_capacity_vph"))
        segs, _ = segments_of(list(w.roads.ids), list(w.roads.attrs))
        for i, sid in enumerate(w.roads.ids):
            s = segs.get(sid)
            if s is not None:
                free[i], lanes[i], cap[i] = s.free_flow_speed_kmh, s.lanes, s.capacity_vph
        return free, lanes, cap

    def _traffic(self, ex: dict, i: int, t0: int) -> tuple[pa.Table, np.ndarray]:
        g = self.rng["traffic"]
        w = self.world
        n = w.roads.n
        x = float(ex["traffic"][i]) * self.road_factor * g.normal(1.0, 0.04, n)
        rain = min(float(ex["rain_1h"][i]) / 50.0, 1.0)
        free = self.free_speed * (1 - (1 - float(self.scenario.num("traffic.rain_speed_factor"))) * rain)
        flow, speed = self._traffic_state(x, free)
        speed = np.maximum(speed * g.normal(1.0, 0.05, n), 2.0)
        density = flow / np.maximum(speed, 1) / self.lanes                       # veh/km/lane
        occ = np.clip(density * 5.5 / 10.0, 0, 100)                              # % of road covered
        ms = t0 + self.phase["traffic"]
        ids = _join(_str("traffic:" + a for a in w.roads.ids), _ms_text(ms), sep="@")
        return _table("traffic", {"event_id": ids, "event_time": ms, "source": _SOURCES["traffic"],
                                  "segment_id": w.roads.ids_pa, "speed_kmh": speed.astype(np.float32),
                                  "flow_vph": flow.astype(np.float32), "occupancy_pct": occ.astype(np.float32)}, n), ms

    def _traffic_state(self, x: np.ndarray, free: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Flow (veh/h) and speed (km/h) at demand ``x`` (fraction of capacity):
        BPR below capacity, a queue above it."""
        x = np.maximum(x, 0)
        under = x <= 1
        a, b = (float(v) for v in self.scenario.num("traffic.bpr"))
        q = float(self.scenario.num("traffic.queue_slowdown"))
        flow = np.where(under, x * self.road_cap, self.road_cap * np.maximum(0.55, 1 - 0.5 * (x - 1)))
        ratio = np.where(under, 1 + a * x ** b, (1 + a) * (1 + q * (x - 1)))     # travel time / free-flow
        return flow, free / ratio

    # ------------------------------------------------------------ weather
    def _weather(self, ex: dict, i: int, t0: int) -> tuple[pa.Table, np.ndarray]:
        g = self.rng["weather"]
        sc = self.scenario
        ids_ = list(sc.num("weather.stations"))[:2]
        mins = int(ex["minutes"][i])
        mod = int(ex["mod"][i])
        day = date(1970, 1, 1) + timedelta(days=int(ex["day"][i]))
        mm = np.asarray(sc.num("weather.monthly_mean_c"), dtype=float)
        doy = day.timetuple().tm_yday
        mean = np.interp(doy, np.arange(12) * 30.44 + 15, mm, period=365.25)
        r1 = float(ex["rain_1h"][i])
        temp = mean + float(sc.num("weather.diurnal_amplitude_c")) * math.sin(2 * math.pi * (mod / 60 - 9) / 24)
        temp -= 4.0 * min(r1 / 30.0, 1.0)
        wind = float(ex["wind"][i])
        n = len(ids_)
        temps = np.array([temp, temp + float(sc.num("weather.top_temp_offset_c"))])[:n] + g.normal(0, 0.2, n)
        # the wind's height profile (power law of GB 50009) and its gusts (peak factor x turbulence,
        # the turbulence falling with height): the same storm at the base and at the top of the tower
        z = np.asarray(sc.num("weather.station_height_m"), dtype=float)[:n]
        alpha = float(sc.num("weather.wind_profile_alpha"))
        ratio = (z / 10.0) ** alpha
        winds = wind * ratio * g.uniform(0.85, 1.15, n)
        turb = float(sc.num("weather.turbulence_10m")) * (z / 10.0) ** (-alpha)
        gfac = 1 + float(sc.num("weather.gust_peak_factor")) * turb * g.uniform(*sc.num("weather.gust_scatter"), n)
        hum = np.clip(75 - 2.5 * (temps - mean) + 20 * min(r1 / 20.0, 1.0) + g.normal(0, 2, n), 20, 100)
        vis = np.maximum(float(sc.num("weather.visibility_m")) / (1 + r1 / 6.0) * g.uniform(0.9, 1.1, n), 150)
        rain = np.maximum(r1 * g.uniform(0.95, 1.05, n), 0.0)
        ms = t0 + self.phase["weather"][:n]
        ids = _join(_str("weather:" + s for s in ids_), _ms_text(ms), sep="@")
        return _table("weather", {"event_id": ids, "event_time": ms, "source": _SOURCES["weather"],
                                  "station_id": _str(ids_), "temperature_c": temps.astype(np.float32),
                                  "rain_1h_mm": rain.astype(np.float32), "wind_speed_ms": winds.astype(np.float32),
                                  "gust_ms": (winds * gfac).astype(np.float32), "humidity_pct": hum.astype(np.float32),
                                  "visibility_m": vis.astype(np.float32)}, n), ms

    # ------------------------------------------------------------ warnings
    def _warning(self, t0: int, first: bool) -> tuple[pa.Table | None, np.ndarray | None]:
        sigs = self.drv.signals
        rows: list[tuple[int, _Signal, str]] = []
        if first:
            # signals already in force when the run starts are re-broadcast (a CAP feed lists active alerts)
            active: dict[str, _Signal] = {}
            while self.signal_i < len(sigs) and sigs[self.signal_i].ms < t0:
                s = sigs[self.signal_i]
                if s.status == "cancelled":
                    active.pop(s.signal, None)
                else:
                    active[s.signal] = s
                self.signal_i += 1
            for s in active.values():
                rows.append((t0, s, "updated"))
        prev_colour: dict[str, str] = {}
        for s in sigs[:self.signal_i]:
            prev_colour[s.signal] = s.colour
        while self.signal_i < len(sigs) and sigs[self.signal_i].ms < t0 + _MIN_MS:
            s = sigs[self.signal_i]
            rows.append((s.ms, s, s.status))
            self.signal_i += 1
        if not rows:
            return None, None
        text = self.scenario.num("text")
        area = text["area"]
        recs = {"event_id": [], "event_time": [], "signal": [], "colour": [], "status": [], "headline": [],
                "expires": []}
        for ms, s, status in rows:
            sz, cz = text["signal_zh"][s.signal], text["colour_zh"][s.colour]
            old = prev_colour.get(s.signal)
            if status == "cancelled":
                head = f"广州市气象台解除{sz}预警信号"
            elif status == "issued":
                head = f"广州市气象台发布{sz}{cz}预警信号，请注意防御"
            elif old and old != s.colour:
                verb = "升级" if _COLOUR_INDEX[s.colour] > _COLOUR_INDEX[old] else "降级"
                head = f"广州市气象台将{sz}{text['colour_zh'][old]}预警信号{verb}为{cz}，请注意防御"
            else:
                head = f"广州市气象台{sz}{cz}预警信号生效中，请注意防御"
            prev_colour[s.signal] = s.colour
            recs["event_id"].append(f"warning:{s.signal}/{s.colour}/{status}@{ms}")
            recs["event_time"].append(ms)
            recs["signal"].append(s.signal)
            recs["colour"].append(s.colour)
            recs["status"].append(status)
            recs["headline"].append(head)
            recs["expires"].append(None if status == "cancelled" else ms + 6 * 3600_000)
        n = len(rows)
        ms = np.array(recs["event_time"], dtype=np.int64)
        exp = pa.array(recs["expires"], pa.int64()).cast(TS)
        return _table("warning", {"event_id": _str(recs["event_id"]), "event_time": ms, "source": _SOURCES["warning"],
                                  "signal": _str(recs["signal"]), "colour": _str(recs["colour"]),
                                  "status": _str(recs["status"]), "area": area, "headline": _str(recs["headline"]),
                                  "expires": exp}, n), ms

    # ------------------------------------------------------------ cases
    def _cases(self, ex: dict, i: int, t0: int) -> tuple[pa.Table | None, np.ndarray | None]:
        g = self.rng["case"]
        sc, w = self.scenario, self.world
        text = sc.num("text")
        mod = int(ex["mod"][i])
        # ordinary cases: Poisson, shaped like visitor arrivals
        per_day = float(sc.num("cases.per_day"))
        rate = per_day * self.drv.arr_w[mod] * (0.3 + 0.7 * float(ex["wf"][i]))
        n_new = int(g.poisson(rate))
        weights = sc.num("cases.weights")
        cats = list(weights)
        pw = np.array([float(weights[c]) for c in cats])
        pw /= pw.sum()
        people = np.maximum(self.P.astype(float), 0) + 1
        streets = np.array([z.startswith("streets") for z in w.zone_ids])
        indoor = np.isin(w.zone_ids, sc.get("cases.indoor_zones", []) or [])
        outdoor_only = set(sc.get("cases.outdoor_only", []) or [])
        streets_only = set(sc.get("cases.streets_only", []) or [])
        for _ in range(n_new):
            cat = cats[int(g.choice(len(cats), p=pw))]
            zw = people * (streets if cat in streets_only else 1.0) * (~indoor if cat in outdoor_only else 1.0)
            z = int(g.choice(w.Z, p=zw / zw.sum()))
            place = self._place(g, text, z)
            desc = text["templates"][cat].format(place=place, asset="设施损坏", zone=w.zone_name[z], tier="三")
            self._open_case(g, t0 + int(g.integers(0, _MIN_MS)), cat, z, desc, None)
        # standing water in heavy rain
        r1 = float(ex["rain_1h"][i])
        if r1 > 30 and g.random() < r1 / 3000.0:
            z = int(g.choice(w.Z, p=(~np.isin(np.arange(w.Z), [self.drv.z_tower, self.drv.z_conc])) / (w.Z - 2)))
            self._open_case(g, t0 + int(g.integers(0, _MIN_MS)), "other", z,
                            f"{self._place(g, text, z)}路面积水严重，请设置警示并疏导行人", None)
        # crowd thresholds crossed (the platform's tier messages)
        tiers = np.asarray(sc.num("cases.crowd_case_tiers"), dtype=float)
        tier = (self.load[:, None] >= tiers[None, :]).sum(axis=1)
        for z in np.flatnonzero(tier > self.tier_announced).tolist():
            tz = text["tiers_zh"][int(tier[z]) - 1]
            desc = text["templates"]["crowd_safety"].format(zone=w.zone_name[z], tier=tz, place="", asset="")
            self._open_case(g, t0 + 1000, "crowd_safety", z, desc, None)
        self.tier_announced = np.where(tier > self.tier_announced, tier,
                                       np.where(self.load < np.concatenate([[0.0], tiers])[self.tier_announced] - 0.05,
                                                tier, self.tier_announced))
        # failures become facility-damage cases a few minutes later
        what = {"lamp_dark": "路灯不亮", "pressure_loss": "消火栓水压异常", "cover_displaced": "井盖移位",
                "camera_offline": "监控摄像机离线", "stopped": "电梯停运"}
        groups = {"lamp_pole": w.lamps, "fire_hydrant": w.hydrants, "manhole_cover": w.covers,
                  "cctv_camera": w.cams, "lift": w.lifts}
        keep = []
        for fms, grp, j, eff in self.failure_cases:
            if fms + 4 * _MIN_MS < t0 + _MIN_MS:
                if fms + 4 * _MIN_MS >= t0 - 60 * _MIN_MS:       # failures before the run are known already
                    gr = groups[grp]
                    z = int(gr.zone[j]) if gr.zone[j] >= 0 else 0
                    line = gr.attrs[j].get("line")
                    place = w.line_name.get(line) if line else None
                    place = place or self._place(g, text, z)
                    desc = text["templates"]["facility_damage"].format(place=place, asset=what[eff], zone="", tier="")
                    self._open_case(g, max(t0, fms + 4 * _MIN_MS), "facility_damage", z, desc,
                                    (float(gr.lon[j]), float(gr.lat[j])))
            else:
                keep.append((fms, grp, j, eff))
        self.failure_cases = keep
        # the light show cancelled for the crowd: the notice to the staff
        for cut in self.drv.show_cancelled.values():
            if t0 <= cut * _MIN_MS < t0 + _MIN_MS:
                zs = np.flatnonzero(self.drv.show["zones"])
                z = int(zs[np.argmax(self.load[zs])])
                self._open_case(g, cut * _MIN_MS + 1000, "crowd_safety", z, text["templates"]["show_cancelled"], None)
        # scheduled notices
        for nt in sc.get("notices", []) or []:
            nms = _ms(sc.at_time(nt["at"], self.drv.anchor))
            if t0 <= nms < t0 + _MIN_MS:
                z = w.zone_index.get(nt.get("zone"), 0)
                self._open_case(g, nms, nt["category"], z, nt["description"], None)
        # emit every status change due this minute
        rows = []
        while self.cases_heap and self.cases_heap[0][0] < t0 + _MIN_MS:
            ms, _, case, status = heapq.heappop(self.cases_heap)
            rows.append((ms, case, status))
            if status == "dispatched":
                self._assign_staff(case, ms)
            elif status == "verifying" and case.staff >= 0:
                self.staff_busy[case.staff] = False
        if not rows:
            return None, None
        ms = np.array([r[0] for r in rows], dtype=np.int64)
        return _table("case", {
            "event_id": _str(f"case:{c.case_id}/{s}" for _, c, s in rows), "event_time": ms,
            "source": _SOURCES["case"], "case_id": _str(c.case_id for _, c, _ in rows),
            "category": _str(c.category for _, c, _ in rows), "status": _str(s for _, _, s in rows),
            "zone_id": _str(w.zone_ids[c.zone] for _, c, _ in rows),
            "lon": np.array([c.lon for _, c, _ in rows]), "lat": np.array([c.lat for _, c, _ in rows]),
            "description": _str(c.description for _, c, _ in rows),
            "departments": pa.array([c.departments for _, c, _ in rows], pa.list_(pa.string()))}, len(rows)), ms

    def _place(self, g: np.random.Generator, text: dict, z: int) -> str:
        places = text["places"].get(self.world.zone_ids[z]) or [self.world.zone_name[z]]
        return places[int(g.integers(0, len(places)))]

    def _open_case(self, g: np.random.Generator, ms: int, cat: str, z: int, desc: str,
                   at: tuple[float, float] | None) -> None:
        sc, w = self.scenario, self.world
        if at is None:
            px, py = w.zone_pool[z]
            k = int(g.integers(0, len(px)))
            lon, lat = w.frame.to_lonlat(*(np.array(w.frame.to_xy(px[k], py[k])) + g.normal(0, 4, 2)))
            at = (float(lon), float(lat))
        self.case_seq += 1
        local = _dt(ms).astimezone(LOCAL)
        cid = f"C{local:%Y%m%d%H%M}-{ms % _MIN_MS // 1000:02d}{self.case_seq % 100:02d}"
        case = _Case(cid, cat, z, at[0], at[1], desc, list(sc.num("text")["departments"].get(cat, ["景区运营"])))
        t = ms
        for status, key in (("open", None), ("dispatched", "cases.dispatch_min"), ("handling", "cases.handle_min"),
                            ("verifying", "cases.verify_min"), ("closed", "cases.close_min")):
            if key:
                lo, hi = sc.num(key)
                t += int(g.uniform(lo, hi) * _MIN_MS)
            heapq.heappush(self.cases_heap, (t, self.case_seq * 10 + len(case.events), case, status))
            case.events.append((t, status))

    # ------------------------------------------------------------ staff
    def _init_staff(self) -> None:
        sc, w, g = self.scenario, self.world, self.rng.setup
        n = int(sc.num("staff.count"))
        walkers = min(int(sc.num("staff.route_walkers")), n)
        posts = list(sc.num("staff.posts"))
        self.staff_n = n
        self.staff_walker = np.arange(n) < walkers
        self.staff_s = np.linspace(0, 2 * w.patrol.length, walkers, endpoint=False) if walkers else np.zeros(0)
        self.staff_v = g.uniform(*sc.num("staff.walk_speed_ms"), n)
        post_xy = np.zeros((n, 2))
        for j in range(walkers, n):
            z = w.zone_index.get(posts[(j - walkers) % len(posts)], 0) if posts else 0
            px, py = w.zone_pool[z]
            k = int(g.integers(0, len(px)))
            post_xy[j] = w.frame.to_xy(px[k], py[k])
        self.staff_post = post_xy
        x, y, _ = w.patrol.at(self._pingpong(self.staff_s))
        self.staff_xy = post_xy.copy()
        self.staff_xy[:walkers, 0], self.staff_xy[:walkers, 1] = x, y
        self.staff_target = np.full((n, 2), np.nan)
        self.staff_busy = np.zeros(n, dtype=bool)
        # the night shift: half walkers, half posts
        k = int(sc.num("staff.night_on_duty"))
        night = np.zeros(n, dtype=bool)
        night[:min(k // 2, walkers)] = True
        night[walkers:walkers + (k - int(night.sum()))] = True
        self.staff_night = night
        self.staff_ids = _str(f"patrol-{j + 1:02d}" for j in range(n))

    def _pingpong(self, s: np.ndarray) -> np.ndarray:
        L = self.world.patrol.length
        s = np.mod(s, 2 * L)
        return np.where(s > L, 2 * L - s, s)

    def _assign_staff(self, case: _Case, ms: int) -> None:
        w = self.world
        free = ~self.staff_busy & self._on_duty(ms)
        if not free.any():
            return
        cx, cy = w.frame.to_xy(case.lon, case.lat)
        d = np.hypot(self.staff_xy[:, 0] - cx, self.staff_xy[:, 1] - cy)
        d[~free] = np.inf
        j = int(np.argmin(d))
        case.staff = j
        self.staff_busy[j] = True
        self.staff_target[j] = (cx, cy)

    def _on_duty(self, ms: int) -> np.ndarray:
        mod = ((ms // _MIN_MS) + 480) % _DAY_MIN
        day = bool(_window_mask(np.array([mod]), self.scenario.num("staff.day_shift"))[0])
        return np.ones(self.staff_n, dtype=bool) if day else self.staff_night

    def _staff(self, ex: dict, i: int, t0: int) -> tuple[pa.Table | None, np.ndarray | None]:
        g = self.rng["staff"]
        w = self.world
        period = int(self.scenario.num("staff.period_s"))
        out_t, out_ms = [], []
        for off in range(0, 60, period):
            tick = t0 + off * 1000
            on = self._on_duty(tick)
            busy = self.staff_busy
            # walkers on their route
            walk = self.staff_walker & ~busy
            nw = int(self.staff_walker.sum())
            if nw:
                self.staff_s = self.staff_s + np.where(walk[:nw], self.staff_v[:nw] * period, 0.0)
                x, y, _ = w.patrol.at(self._pingpong(self.staff_s))
                self.staff_xy[:nw][walk[:nw], 0] = x[walk[:nw]]
                self.staff_xy[:nw][walk[:nw], 1] = y[walk[:nw]]
            # posted staff wander around their post
            post = ~self.staff_walker & ~busy
            rel = self.staff_xy - self.staff_post
            rel = rel * 0.85 + g.normal(0, 3.0, rel.shape)
            self.staff_xy[post] = (self.staff_post + rel)[post]
            # busy staff head for their case
            if busy.any():
                tgt = self.staff_target[busy]
                cur = self.staff_xy[busy]
                vec = tgt - cur
                dist = np.hypot(vec[:, 0], vec[:, 1])
                step = np.minimum(dist, 1.4 * period)
                with np.errstate(invalid="ignore", divide="ignore"):
                    unit = np.where(dist[:, None] > 0, vec / dist[:, None], 0.0)
                self.staff_xy[busy] = cur + unit * step[:, None]
            # walkers back from a case rejoin the route where they are
            back = self.staff_walker & ~busy & ~np.isnan(self.staff_target[:, 0])
            for j in np.flatnonzero(back).tolist():
                s, _ = w.patrol.project(*self.staff_xy[j])
                self.staff_s[j] = s
                self.staff_target[j] = np.nan
            self.staff_target[~self.staff_walker & ~busy] = np.nan
            idx = np.flatnonzero(on)
            if idx.size == 0:
                continue
            offline = g.random(idx.size) < float(self.scenario.num("staff.offline_rate"))
            status = np.where(offline, "offline", np.where(busy[idx], "busy", "available"))
            lon, lat = w.frame.to_lonlat(self.staff_xy[idx, 0], self.staff_xy[idx, 1])
            ms = tick + (idx * 97) % 3000
            ids = _join(pc.take(_str("staff:" + s for s in self.staff_ids.to_pylist()), pa.array(idx)),
                        _ms_text(ms), sep="@")
            out_t.append(_table("staff", {"event_id": ids, "event_time": ms, "source": _SOURCES["staff"],
                                          "staff_id": pc.take(self.staff_ids, pa.array(idx)), "lon": lon, "lat": lat,
                                          "status": pa.array(status.tolist(), pa.string())}, idx.size))
            out_ms.append(ms)
        if not out_t:
            return None, None
        return pa.concat_tables(out_t), np.concatenate(out_ms)

    # ------------------------------------------------------------ buses
    def _init_bus(self) -> None:
        sc, w = self.scenario, self.world
        self.routes = []
        stops_of: dict[str, list[int]] = {}
        for j, a in enumerate(w.stops.attrs):
            for r in a.get("routes", []):
                stops_of.setdefault(str(r), []).append(j)
        for ri, (rid, rp) in enumerate((sc.get("bus.routes") or {}).items()):
            pts = []
            for road, direction in rp["path"]:
                if road not in w.road_line:
                    raise ValueError(f"scenario {sc.name}: bus route {rid} uses unknown road {road!r}")
                xy = w.road_poly[w.road_line[road]].xy
                pts.append(xy if direction == "forward" else xy[::-1])
            poly = _Polyline(np.vstack(pts))
            stops = []
            for j in stops_of.get(str(rid), []):
                s, off = poly.project(w.stops.x[j], w.stops.y[j])
                if off < 80:
                    stops.append((s, j))
            stops.sort()
            back = _Polyline(poly.xy[::-1])
            self.routes.append({
                "id": str(rid), "index": ri, "poly": [poly, back],
                "stops": [stops, sorted((poly.length - s, j) for s, j in stops)],
                "headway": float(rp["headway_min"]), "service": rp["service"], "fleet": int(rp["fleet"]),
                "tourist": not str(rid).isdigit()})
        self.bunch = sc.get("bus.bunching")
        sus = sc.get("bus_suspended_from")
        self.bus_suspend = _COLOUR_INDEX[sus] if sus else None
        # a normal day's peak arrival rate: buses are as full as that makes them, fuller on busier days
        self.lam_ref = float(sc.num("bus.reference_daily_visitors")) * float(self.drv.arr_w.max())
        self.comm_load = float(sc.num("bus.commuter_load_pct")) * float(sc.num("station.commuters_daily")) \
            / float(sc.num("bus.reference_commuters_daily"))

    def _trip(self, r: dict, d: int, day: int, k: int) -> dict | None:
        key = (r["index"], d, day, k)
        if key in self.trip_cache:
            return self.trip_cache[key]
        sc = self.scenario
        a, b = parse_hhmm(r["service"][0]), parse_hhmm(r["service"][1])
        H = r["headway"]
        sched_mod = a + k * H + (H / 2 if d else 0)
        if sched_mod >= b:
            self.trip_cache[key] = None
            return None
        sched_ms = int(((day * _DAY_MIN + sched_mod) - 480) * _MIN_MS)
        g = self.rng.trip(r["index"], d, day, k)
        m = np.array([sched_ms // _MIN_MS])
        if self.bus_suspend is not None and self.drv.colour_state(m, "typhoon")[0] >= self.bus_suspend:
            self.trip_cache[key] = None              # services suspended (typhoon)
            return None
        demand = float(self.drv.traffic_demand(m)[0])
        mean, sd = sc.num("bus.delay_s")
        congest = float(np.clip(demand - 0.7, 0, 1)) / 0.3
        delay = float(max(-60.0, g.normal(mean, sd))) + float(sc.num("bus.congestion_delay_s")) * min(congest, 1.5)
        delay += 240 * min(float(self.drv.rain_1h(m)[0]) / 50, 1)
        speed = float(sc.num("bus.speed_kmh")) / 3.6 * g.uniform(0.9, 1.1) / (1 + 0.6 * min(congest, 1.5))
        lam = float(self.drv.arrivals(m)[0])
        mod0 = int((sched_ms // _MIN_MS + 480) % _DAY_MIN)
        commute = (0.0 if r["tourist"] else self.comm_load * self.drv.comm_w[mod0] / self.drv.comm_w.max())
        occ = 15 + 40 * lam / self.lam_ref + commute + (15 if r["tourist"] else 0) + g.normal(0, 10)
        dmin, dmax = sc.num("bus.dwell_s")
        dwell = g.uniform(dmin, dmax, len(r["stops"][d]))
        bunched = 0
        bb = self.bunch
        if bb and str(bb.get("route")) == r["id"]:
            h0, h1 = bb["hours"]
            if h0 * 60 <= sched_mod < h1 * 60:
                if k % 2 == 1:                    # the late leader of a pair
                    gap = g.uniform(*bb["pair_gap_s"])
                    delay = H * 60 - gap + max(delay, 0) * 0.2
                    occ += 45
                    dwell = dwell * 1.5
                    bunched = 1
                else:                             # the follower, on time and empty
                    delay = max(delay, 0) * 0.2
                    occ -= 25
                    dwell = dwell * 0.5
                    bunched = 2
        stops = r["stops"][d]
        # time -> distance knots: drive, dwell at each stop, drive
        tk, sk = [0.0], [0.0]
        t, s_prev = 0.0, 0.0
        for (s, _), dw in zip(stops, dwell):
            t += (s - s_prev) / speed
            tk += [t, t + dw]
            sk += [s, s]
            t += dw
            s_prev = s
        t += (r["poly"][d].length - s_prev) / speed
        tk.append(t)
        sk.append(r["poly"][d].length)
        local = date(1970, 1, 1) + timedelta(days=day)
        trip = {"entry_ms": sched_ms + int(delay * 1000), "delay": int(delay), "tk": np.array(tk), "sk": np.array(sk),
                "dur_ms": int(t * 1000), "speed": speed, "occ": float(np.clip(occ, 0, 150)),
                "trip_id": f"{r['id']}-{d}-{local:%Y%m%d}-{int(sched_mod) // 60:02d}{int(sched_mod) % 60:02d}",
                "vehicle": f"{r['id']}-{(k * 2 + d) % r['fleet'] + 1:02d}", "phase": int(g.integers(0, 4000)),
                "bunched": bunched}
        self.trip_cache[key] = trip
        return trip

    def _bus(self, ex: dict, i: int, t0: int) -> tuple[pa.Table | None, np.ndarray | None]:
        g = self.rng["bus"]
        w, sc = self.world, self.scenario
        period = int(sc.num("bus.period_s"))
        rows = []
        lday = int(ex["day"][i])
        for r in self.routes:
            a = parse_hhmm(r["service"][0])
            H = r["headway"]
            for d in (0, 1):
                for day in (lday - 1, lday):
                    # trips scheduled in the last ~90 minutes can be in the area now
                    now_mod = (t0 // _MIN_MS + 480) - day * _DAY_MIN
                    k_hi = int((now_mod - a) // H) + 1
                    for k in range(max(0, k_hi - int(90 // H) - 2), k_hi + 1):
                        trip = self._trip(r, d, day, k)
                        if trip is None:
                            continue
                        for off in range(0, 60, period):
                            tick = t0 + off * 1000 + trip["phase"]
                            tau = (tick - trip["entry_ms"]) / 1000.0
                            if 0 <= tau <= trip["dur_ms"] / 1000.0:
                                rows.append((tick, r, d, trip, tau))
        if len(self.trip_cache) > 4000:
            self.trip_cache.clear()
        if not rows:
            return None, None
        rows.sort(key=lambda x: x[0])
        n = len(rows)
        ms = np.array([x[0] for x in rows], dtype=np.int64)
        lon = np.empty(n)
        lat = np.empty(n)
        bearing = np.empty(n)
        speed = np.empty(n)
        stop = []
        occ = np.empty(n)
        delay = np.empty(n, dtype=np.int64)
        for j, (tick, r, d, trip, tau) in enumerate(rows):
            s = float(np.interp(tau, trip["tk"], trip["sk"]))
            x, y, hd = r["poly"][d].at(np.array([s]))
            lo, la = w.frame.to_lonlat(x[0], y[0])
            lon[j], lat[j], bearing[j] = lo, la, hd[0]
            stops = r["stops"][d]
            dwelling = any(abs(s - ss) < 0.5 for ss, _ in stops) and tau > 0
            speed[j] = 0.0 if dwelling else trip["speed"] * float(g.uniform(0.85, 1.1))
            nxt = [jj for ss, jj in stops if ss >= s - 0.5]
            stop.append(w.stops.ids[nxt[0]] if nxt else None)
            occ[j] = trip["occ"]
            delay[j] = trip["delay"]
        thr = np.asarray(sc.num("bus.occupancy_status"), dtype=float)
        names = np.array(["EMPTY", "MANY_SEATS_AVAILABLE", "FEW_SEATS_AVAILABLE", "STANDING_ROOM_ONLY",
                          "CRUSHED_STANDING_ROOM_ONLY", "FULL"])
        status = names[(occ[:, None] >= thr[None, :]).sum(axis=1)]
        veh = [x[3]["vehicle"] for x in rows]
        ids = _join(_str("bus:" + v for v in veh), _ms_text(ms), sep="@")
        return _table("bus", {"event_id": ids, "event_time": ms, "source": _SOURCES["bus"], "vehicle_id": _str(veh),
                              "route_id": _str(x[1]["id"] for x in rows), "trip_id": _str(x[3]["trip_id"] for x in rows),
                              "stop_id": pa.array(stop, pa.string()), "lon": lon, "lat": lat,
                              "bearing": bearing.astype(np.float32), "speed_mps": speed.astype(np.float32),
                              "occupancy_status": pa.array(status.tolist(), pa.string()),
                              "occupancy_pct": occ.astype(np.float32), "delay_s": delay.astype(np.int32)}, n), ms


_ALG_PA = _str(VIDEO_ALGORITHMS)
_METRICS = tuple(FACILITY_METRICS)
_METRIC_INDEX = {m: i for i, m in enumerate(_METRICS)}
_METRIC_PA = _str(_METRICS)
#: (field, value) that breaks a record of each kind in a type / range check
_WRONG_TYPE = {
    "crowd": ("count", "about 300"), "gate": ("entries", "12,5"), "video": ("confidence", "high"),
    "facility": ("value", "n/a"), "bus": ("speed_mps", "fast"), "station": ("entries", "-"),
    "traffic": ("speed_kmh", "jam"), "weather": ("temperature_c", "28°C"),
    "warning": ("event_time", "2026-10-01 14:05:00"), "case": ("event_time", "昨天 14:05"),
    "staff": ("lon", "113°19'"),
}
_OUT_OF_RANGE = {
    "crowd": ("count", -42), "gate": ("entries", -5), "video": ("confidence", 1.7),
    "facility": ("event_time", "1999-12-31T23:59:00Z"), "bus": ("lat", 95.5), "station": ("exits", -3),
    "traffic": ("occupancy_pct", 180.0), "weather": ("humidity_pct", 140.0),
    "warning": ("event_time", "1999-12-31T23:59:00Z"), "case": ("lon", 200.0), "staff": ("lat", -95.0),
}


def _iso(t: datetime) -> str:
    return t.astimezone(_UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def simulate(scenario: str | Scenario, start: datetime | None, duration: timedelta | None, seed: int, *,
             inventory=None, faults: Faults | None = None, kinds: Iterable[str] | None = None) -> Simulation:
    """The feeds of ``scenario`` from ``start`` (aware; None = the scenario's
    default start; floored to the minute) for ``duration`` (None = endless),
    as :class:`Batch` items in arrival order: one batch per kind and minute,
    delivered when its last record has arrived, rows sorted by arrival.  Same arguments, same stream.
    ``kinds`` limits the output to some feed kinds (the world is simulated
    all the same, so the kept kinds do not change)."""
    return Simulation(scenario, start, duration, seed, inventory=inventory, faults=faults, kinds=kinds)


# ================================================================== recording

def _progress_line(done: int, total: int | None, t: datetime | None, rows: int) -> str:
    if total:
        frac = min(done / total, 1.0)
        bar = "#" * int(frac * 30)
        head = f"[{bar:<30}] {frac * 100:5.1f}% {done}/{total} min"
    else:
        head = f"{done} min"
    when = f" {t.astimezone(LOCAL):%Y-%m-%d %H:%M}" if t else ""
    return f"\rsimulating{when} {head} {rows:,} records"


def write_recording(out_dir: str | os.PathLike[str], items: Iterable[tuple[str, Any]], *, manifest: dict,
                    progress: bool = True, stream=None) -> dict:
    """Write a stream as ``<kind>.parquet`` (all schema columns + ``arrival_time``,
    rows in arrival order), ``malformed.jsonl`` and ``manifest.json``; returns
    the manifest.  Items are :class:`Batch` (or plain ``(kind, table)``
    pairs, which then arrive at their newest event time)."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    stream = sys.stderr if stream is None else stream
    writers: dict[str, pq.ParquetWriter] = {}
    buffers: dict[str, list[pa.Table]] = {}
    buffered: Counter[str] = Counter()
    counts: Counter[str] = Counter()
    bad_count = 0
    first_arrival = last_arrival = None
    total = getattr(items, "minutes_total", None)
    last_minute = -1
    tmp_bad = out / ".malformed.jsonl.tmp"

    def schema_for(kind: str) -> pa.Schema:
        return SCHEMAS[kind].append(pa.field(ARRIVAL_COLUMN, TS, nullable=False)).with_metadata(
            {KIND_METADATA_KEY: kind.encode(), b"scenic_twin.generator": GENERATOR_VERSION.encode()})

    def drain(kind: str) -> None:
        if not buffers.get(kind):
            return
        t = pa.concat_tables(buffers[kind])
        if kind not in writers:
            writers[kind] = pq.ParquetWriter(out / f".{kind}.parquet.tmp", schema_for(kind), compression="zstd")
        writers[kind].write_table(t, row_group_size=65_536)
        buffers[kind] = []
        buffered[kind] = 0

    with open(tmp_bad, "w", encoding="utf-8") as bad:
        for item in items:
            kind, payload = item[0], item[1]
            arr = getattr(item, "arrival_ms", None)
            if kind == MALFORMED:
                a = arr if arr is not None else np.zeros(len(payload), dtype=np.int64)
                for rec, ams in zip(payload, a):
                    line = dict(rec)
                    line[ARRIVAL_COLUMN] = _iso(_dt(int(ams)))
                    bad.write(json.dumps(line, ensure_ascii=False, default=str) + "\n")
                bad_count += len(payload)
                counts[MALFORMED] += len(payload)
            else:
                if kind not in SCHEMAS:
                    raise ValueError(f"unknown feed kind {kind!r} in the stream")
                table = payload if isinstance(payload, pa.Table) else pa.Table.from_batches([payload])
                table = table.select([f.name for f in SCHEMAS[kind]]).cast(SCHEMAS[kind])
                if arr is None:
                    newest = pc.max(table.column("event_time")).value
                    arr = np.full(table.num_rows, int(newest or 0), dtype=np.int64)
                table = table.append_column(pa.field(ARRIVAL_COLUMN, TS, nullable=False), _ts(arr))
                buffers.setdefault(kind, []).append(table)
                buffered[kind] += table.num_rows
                counts[kind] += table.num_rows
                if buffered[kind] >= 65_536:
                    drain(kind)
            if arr is not None and len(arr):
                first_arrival = int(arr[0]) if first_arrival is None else min(first_arrival, int(arr[0]))
                last_arrival = int(arr[-1]) if last_arrival is None else max(last_arrival, int(arr[-1]))
            done = getattr(items, "minutes_done", None)
            if progress and done is not None and done != last_minute:
                last_minute = done
                stream.write(_progress_line(done, total, getattr(items, "sim_time", None), sum(counts.values())))
                stream.flush()
    for kind in list(buffers):
        drain(kind)
    for kind in getattr(items, "kinds", FEED_KINDS):
        if kind not in writers:           # every kind gets its file, empty when nothing came
            writers[kind] = pq.ParquetWriter(out / f".{kind}.parquet.tmp", schema_for(kind), compression="zstd")
    for kind, wtr in writers.items():
        wtr.close()
        os.replace(out / f".{kind}.parquet.tmp", out / f"{kind}.parquet")
    os.replace(tmp_bad, out / "malformed.jsonl")
    if progress:
        stream.write(_progress_line(getattr(items, "minutes_done", 0) or 0, total,
                                    getattr(items, "sim_time", None), sum(counts.values())) + "\n")
        stream.flush()
    man = dict(manifest)
    man.setdefault("generator", GENERATOR_VERSION)
    man["counts"] = {k: counts.get(k, 0) for k in FEED_KINDS}
    man["malformed"] = bad_count
    fc = getattr(items, "fault_counts", None)
    man["fault_counts"] = dict(fc) if fc is not None else {"malformed": bad_count}
    faults = getattr(items, "faults", None)
    if isinstance(faults, Faults):
        man.setdefault("faults", faults.as_dict())
    man["first_arrival"] = _iso(_dt(first_arrival)) if first_arrival is not None else None
    man["last_arrival"] = _iso(_dt(last_arrival)) if last_arrival is not None else None
    man["files"] = sorted([f"{k}.parquet" for k in writers] + ["malformed.jsonl"])
    tmp = out / ".manifest.json.tmp"
    tmp.write_text(json.dumps(man, ensure_ascii=False, indent=2) + "\n", encoding="utf-8")
    os.replace(tmp, out / "manifest.json")
    return man


class _Cursor:
    """Reads one kind's recording in record batches, exposing the head arrival."""

    def __init__(self, kind: str, path: Path | None, records: list[dict] | None = None) -> None:
        self.kind = kind
        self.order = _KIND_ORDER.get(kind, 99)
        self.records = records
        if records is not None:
            self.arr = np.array([_ms(datetime.fromisoformat(r[ARRIVAL_COLUMN].replace("Z", "+00:00")))
                                 for r in records], dtype=np.int64)
            order = np.argsort(self.arr, kind="stable")
            self.arr = self.arr[order]
            self.records = [records[i] for i in order]
            self._batches = None
            self.table = None
        else:
            pf = pq.ParquetFile(path)
            self._batches = pf.iter_batches(batch_size=65_536)
            self.table = None
            self.arr = np.zeros(0, dtype=np.int64)
            self._load()
        self.pos = 0

    def _load(self) -> None:
        for rb in self._batches:
            if rb.num_rows == 0:
                continue
            t = pa.Table.from_batches([rb])
            arr = t.column(ARRIVAL_COLUMN).cast(pa.int64()).to_numpy()
            if np.any(np.diff(arr) < 0):                 # not written by us: sort this chunk
                order = np.argsort(arr, kind="stable")
                t, arr = t.take(pa.array(order)), arr[order]
            self.table, self.arr, self.pos = t, arr, 0
            return
        self.table, self.arr, self.pos = None, np.zeros(0, dtype=np.int64), 0

    def head(self) -> int | None:
        if self.pos < len(self.arr):
            return int(self.arr[self.pos])
        if self._batches is not None:
            self._load()
            if len(self.arr):
                return int(self.arr[0])
        return None

    def take_until(self, limit: int | None, inclusive: bool) -> Batch:
        side = "right" if inclusive else "left"
        end = len(self.arr) if limit is None else int(np.searchsorted(self.arr, limit, side=side))
        end = max(end, self.pos + 1)
        arr = self.arr[self.pos:end]
        if self.records is not None:
            recs = [{k: v for k, v in r.items() if k != ARRIVAL_COLUMN} for r in self.records[self.pos:end]]
            self.pos = end
            return Batch(MALFORMED, recs, arr)
        t = self.table.slice(self.pos, end - self.pos)
        self.pos = end
        t = t.drop_columns([ARRIVAL_COLUMN]).cast(SCHEMAS[self.kind])
        return Batch(self.kind, t, arr)


def read_recording(directory: str | os.PathLike[str]) -> Iterator[Batch]:
    """Replay a recording: :class:`Batch` items of all kinds merged by arrival
    time (ties: schema kind order), each table exactly ``SCHEMAS[kind]``."""
    d = Path(directory)
    if not d.is_dir():
        raise FileNotFoundError(f"no recording at {d}")
    cursors = []
    for kind in FEED_KINDS:
        p = d / f"{kind}.parquet"
        if p.exists():
            cursors.append(_Cursor(kind, p))
    bad = d / "malformed.jsonl"
    if bad.exists():
        recs = [json.loads(line) for line in bad.read_text(encoding="utf-8").splitlines() if line.strip()]
        if recs:
            cursors.append(_Cursor(MALFORMED, None, recs))
    while True:
        heads = [(c.head(), c.order, c) for c in cursors]
        heads = [h for h in heads if h[0] is not None]
        if not heads:
            return
        heads.sort(key=lambda h: (h[0], h[1]))
        _, order, cur = heads[0]
        if len(heads) > 1:
            nxt_t, nxt_o, _ = heads[1]
            batch = cur.take_until(nxt_t, inclusive=order < nxt_o)
        else:
            batch = cur.take_until(None, True)
        yield batch


# ================================================================== live

class SimClock:
    """A settable clock for an :class:`~indicators.feeds.ingest.Ingestor` that
    should judge lateness in simulated time: ``Ingestor(..., clock=sim_clock)``
    and ``run_live(..., sim_clock=sim_clock)``."""

    def __init__(self, t: datetime) -> None:
        self._t = t
        self._lock = threading.Lock()

    def set(self, t: datetime) -> None:
        with self._lock:
            self._t = t

    def __call__(self) -> datetime:
        with self._lock:
            return self._t


def run_live(ingestor, scenario: str | Scenario, *, start: datetime | None = None, speed: float = 1.0,
             seed: int = 0, stop_event: threading.Event, clock: Callable[[], float] = time.monotonic,
             sleep: Callable[[float], Any] | None = None, faults: Faults | None = None,
             duration: timedelta | None = None, sim_clock: SimClock | None = None,
             inventory=None, on_batch: Callable[[Batch, Any], None] | None = None) -> dict:
    """Feed a scenario into ``ingestor`` paced by wall time until ``stop_event``
    is set (or ``duration`` of simulated time has passed).

    ``speed`` 1 = real time, 60 = a simulated minute per second, ``inf`` = as
    fast as possible.  ``start`` defaults to the current minute (so an
    ingestor on the real clock accepts the events).  Each batch goes to
    :meth:`Ingestor.submit` when its last record has arrived; malformed
    records are submitted as dict records of their kind (and so are
    dead-lettered).  ``clock``/``sleep`` are injectable for tests (default:
    ``time.monotonic`` and ``stop_event.wait``).  Returns the totals.
    """
    if speed <= 0:
        raise ValueError("speed must be positive")
    if start is None:
        start = datetime.now(_UTC).replace(second=0, microsecond=0)
    sim = simulate(scenario, start, duration, seed, inventory=inventory, faults=faults)
    wait = sleep if sleep is not None else stop_event.wait
    wall0 = clock()
    t0 = sim.start_ms
    totals: Counter[str] = Counter()
    for batch in sim:
        due = (int(batch.arrival_ms[-1]) - t0) / 1000.0 / speed
        while not stop_event.is_set():
            left = due - (clock() - wall0)
            if left <= 0.001 or math.isinf(speed):     # below a millisecond: due now
                break
            wait(min(left, 1.0))
        if stop_event.is_set():
            break
        if sim_clock is not None:
            sim_clock.set(batch.arrival)
        kind, payload = batch
        if kind == MALFORMED:
            by_kind: dict[str, list[dict]] = {}
            for rec in payload:
                by_kind.setdefault(str(rec.get("kind", "(unknown)")), []).append(rec)
            receipts = [ingestor.submit(k, recs, source="sim") for k, recs in by_kind.items()]
        else:
            receipts = [ingestor.submit(kind, payload)]
        for rc in receipts:
            totals["accepted"] += rc.accepted
            totals["duplicates"] += rc.duplicates
            totals["late"] += rc.late
            totals["rejected"] += len(rc.rejected)
            if on_batch is not None:
                on_batch(batch, rc)
        totals["batches"] += 1
    return {"scenario": sim.scenario.name, "start": start.isoformat(), "minutes": sim.minutes_done,
            "sim_time": sim.sim_time.isoformat(), **totals}


# ================================================================== describing a run

def collect(items: Iterable[tuple[str, Any]]) -> tuple[dict[str, pa.Table], list[dict]]:
    """All tables of a stream concatenated per kind (arrival order), and the malformed records."""
    parts: dict[str, list[pa.Table]] = {k: [] for k in FEED_KINDS}
    bad: list[dict] = []
    for kind, payload in items:
        if kind == MALFORMED:
            bad.extend(payload)
        else:
            parts[kind].append(payload)
    tables = {k: (pa.concat_tables(v) if v else SCHEMAS[k].empty_table()) for k, v in parts.items()}
    return tables, bad


def describe(tables: dict[str, pa.Table], scenario: Scenario | None = None, world: World | None = None) -> dict:
    """The measures ``[scenarios.NAME.expect]`` states ranges for, computed from
    a (fault-free) run's tables: rows per kind per hour, people present,
    load rates, metro flows, warning sequence, failure signatures, bus
    headways, etc.  One function, so the tests, the docs and a reader of a
    recording measure the same way."""
    world = world or _default_world()
    c1 = dict(zip(world.zone_ids, world.c1))
    out: dict[str, Any] = {}
    hours = 1.0
    cr = tables["crowd"]
    if cr.num_rows:
        t = cr.column("event_time").cast(pa.int64()).to_numpy() // _MIN_MS
        span = (t.max() - t.min() + 1) / 60.0
        hours = max(span, 1 / 60)
        cnt = cr.column("count").to_numpy().astype(float)
        cap = np.array([c1.get(z, np.nan) for z in cr.column("zone_id").to_pylist()])
        load = cnt / cap
        per_min = np.bincount(t - t.min(), weights=cnt)
        out["area_present_mean"] = round(float(per_min.mean()), 0)
        q = max(1, len(per_min) // 6)
        out["area_present_change"] = round(float(per_min[-q:].mean() / max(per_min[:q].mean(), 1)), 3)
        out["max_load"] = round(float(np.nanmax(load)), 3)
        out["share_below_80"] = round(float(np.mean(load[~np.isnan(load)] < 0.8)), 3)
        zones = np.array(cr.column("zone_id").to_pylist())
        out["zones_over_100"] = int(len(set(zones[load > 1.0])))
        out["zones_at_capacity"] = int(len(set(zones[load >= 0.99])))
        for z in world.zone_ids:
            m = zones == z
            if m.any():
                out[f"load_max.{z}"] = round(float(np.nanmax(load[m])), 3)
    for k in FEED_KINDS:
        out[f"rows_per_hour.{k}"] = round(tables[k].num_rows / hours)
    st = tables["station"]
    if st.num_rows:
        sid = np.array(st.column("station_id").to_pylist())
        ent = st.column("entries").to_numpy()
        ext = st.column("exits").to_numpy()
        lvl = st.column("control_level").to_numpy()
        metro = np.char.startswith(sid.astype(str), "metro_station")
        out["metro_entries_exits_per_hour"] = round(float((ent[metro] + ext[metro]).sum()) / hours)
        out["control_level_max"] = int(lvl.max())
        apm = np.char.find(sid.astype(str), "apm") >= 0
        out["apm_skipped_minutes"] = int(((lvl == 3) & (ent + ext == 0) & apm).sum())
        plat = st.column("platform_persons").to_numpy()
        out["platform_persons_max"] = int(plat[metro].max()) if metro.any() else 0
    v = tables["video"]
    algs = Counter(v.column("algorithm").to_pylist()) if v.num_rows else Counter()
    out["video_per_hour"] = round(v.num_rows / hours)
    for a in ("crowd_density_over_limit", "standing_water", "camera_abnormal"):
        out[f"video.{a}"] = algs.get(a, 0)
    f = tables["facility"]
    if f.num_rows:
        metric = np.array(f.column("metric").to_pylist())
        val = f.column("value").to_numpy()
        ids = np.array(f.column("asset_id").to_pylist())
        fms = f.column("event_time").cast(pa.int64()).to_numpy() // _MIN_MS

        def vals(m: str) -> np.ndarray:
            return val[metric == m]
        hp = vals("hydrant_pressure_mpa")
        out["hydrant_min_mpa"] = round(float(hp.min()), 3) if hp.size else None
        out["hydrant_median_mpa"] = round(float(np.median(hp)), 3) if hp.size else None
        lm = metric == "lamp_on"
        if lm.any():
            # lamps dark while most lamps are lit (night)
            mins = fms[lm]
            lit_share = np.bincount(mins - mins.min(), weights=val[lm]) / np.maximum(np.bincount(mins - mins.min()), 1)
            night = lit_share[mins - mins.min()] > 0.5
            out["lamps_dark_at_night"] = int(len(set(ids[lm][night & (val[lm] < 0.5)])))
            out["lamps_lit_share"] = round(float(val[lm].mean()), 3)
        tilt = vals("cover_tilt_deg")
        out["cover_tilt_max"] = round(float(tilt.max()), 1) if tilt.size else None
        cm = metric == "camera_online"
        out["cameras_offline"] = int(len(set(ids[cm][val[cm] < 0.5])))
        wl = vals("well_water_level_m")
        out["well_level_min_m"] = round(float(wl.min()), 2) if wl.size else None
        lifts = metric == "lift_running"
        out["lifts_stopped"] = int(len(set(ids[lifts][val[lifts] < 0.5])))
    w = tables["weather"]
    if w.num_rows:
        out["rain_1h_max"] = round(float(pc.max(w.column("rain_1h_mm")).as_py()), 1)
        base = np.char.endswith(np.array(w.column("station_id").to_pylist()).astype(str), "base")
        gust = w.column("gust_ms").to_numpy()
        out["gust_max_ground"] = round(float(gust[base].max() if base.any() else gust.max()), 1)
    wr = tables["warning"]
    out["warning_sequence"] = [f"{s}:{c}:{st_}" for _, s, c, st_ in sorted(zip(
        wr.column("event_time").cast(pa.int64()).to_pylist(), wr.column("signal").to_pylist(),
        wr.column("colour").to_pylist(), wr.column("status").to_pylist()))]
    cs = tables["case"]
    if cs.num_rows:
        status = np.array(cs.column("status").to_pylist())
        out["cases_opened"] = int((status == "open").sum())
        cat = np.array(cs.column("category").to_pylist())
        out["cases_opened.facility_damage"] = int(((status == "open") & (cat == "facility_damage")).sum())
        out["cases_opened.crowd_safety"] = int(((status == "open") & (cat == "crowd_safety")).sum())
    else:
        out["cases_opened"] = 0
    b = tables["bus"]
    if b.num_rows and scenario is not None:
        routes = scenario.get("bus.routes") or {}
        ratios_min, ratios_max = {}, {}
        trip = np.array(b.column("trip_id").to_pylist())
        bms = b.column("event_time").cast(pa.int64()).to_numpy()
        rid = np.array(b.column("route_id").to_pylist())
        for r, rp in routes.items():
            H = float(rp["headway_min"]) * 60_000
            for d in ("0", "1"):
                m = (rid == str(r)) & np.char.startswith(trip.astype(str), f"{r}-{d}-")
                if not m.any():
                    continue
                first: dict[str, int] = {}
                for tid, ms in zip(trip[m], bms[m]):
                    first[tid] = min(first.get(tid, ms), ms)
                # only trips whose entry into the area was seen (not already inside at the start)
                seen = sorted(v_ for v_ in first.values() if v_ > bms.min() + 60_000)
                if len(seen) >= 3:
                    hw = np.diff(seen) / H
                    ratios_min[r] = min(ratios_min.get(r, 9.0), float(hw.min()))
                    ratios_max[r] = max(ratios_max.get(r, 0.0), float(hw.max()))
        for r in ratios_min:
            out[f"bus_headway_ratio_min.{r}"] = round(ratios_min[r], 2)
            out[f"bus_headway_ratio_max.{r}"] = round(ratios_max[r], 2)
        out["bus_delay_max_s"] = int(pc.max(b.column("delay_s")).as_py())
    return out
