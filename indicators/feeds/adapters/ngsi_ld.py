"""FIWARE NGSI-LD smart data models -> ``crowd``, ``traffic``, ``weather``, ``facility``.

Accepts one entity or an array of them, in any of the representations the
Smart Data Models examples use: NGSI-LD normalized (``{"type": "Property",
"value": …}``, ``{"type": "Relationship", "object": …}``, date-times as
``{"@type": "DateTime", "@value": …}``), NGSI-v2 normalized (``{"type":
"Number", "value": …}``) and key-values.  A notification (``{"data":
[…]}``) and a GeoJSON FeatureCollection of entities are unwrapped.

Ids
---
Inventory ids are local names, so an ``urn:ngsi-ld:<Type>:`` prefix is cut
from entity and relationship ids: the normalized and key-values forms of
the same entity then give the same zone, segment or asset id.

Time
----
``event_time`` is the observedAt of the attribute that makes the row (or,
in NGSI-v2, its ``timestamp`` / ``TimeInstant`` metadata), else the end of
the observation period (``dateObservedTo``, else ``dateObserved`` — the end
when it is an ISO interval), else ``observationDateTime``; parking adds
``occupancyModified`` last.  A time without offset is read as UTC (noted).
``event_id`` is ``<entity id>@<event_time>`` (facility rows add
``/<metric>``).

Notes about an entity are written only when it gives a row: an entity that
is then rejected leaves its reject, not a note saying how it was read.

Mapping
-------
* **CrowdFlowObserved** -> ``crowd``: ``zone_id`` = refRoadSegment, else
  the entity id; ``count`` = peopleCount, else peopleCountTowards +
  peopleCountAway.  peopleCount is the number of people who *passed*
  during the observation period — a flow — while ``crowd.count`` means
  people present; a note says so every time.  ``occupancy`` (the share of
  time the walkway was occupied) gives no number of persons: an entity
  with only that is rejected.
* **TrafficFlowObserved** -> ``traffic``: ``segment_id`` = refRoadSegment,
  else the entity id; ``speed_kmh`` = averageVehicleSpeed (km/h, or
  converted from its unitCode); ``flow_vph`` = intensity × 3600 / period
  seconds, the period from dateObservedFrom/To (or a dateObserved
  interval), empty and noted without one; ``occupancy_pct`` = occupancy
  × 100 when ≤ 1 (the model's 0–1 ratio), else taken as a percentage.
* **WeatherObserved** -> ``weather``: ``station_id`` = stationCode, else
  refPointOfInterest, refDevice, the entity id (noted: example ids embed
  a time stamp).  temperature °C, relativeHumidity × 100 when ≤ 1,
  windSpeed m/s, gust from windGust/gustSpeed when present, visibility
  when numeric (metres; the model's word scale "poor"… is noted, not
  converted), precipitation into ``rain_1h_mm`` (the model states no
  accumulation period: noted).
* **Streetlight** -> ``facility`` metric ``lamp_on``: powerState on/low ->
  1, off -> 0 (low is dimmed but lit); without powerState, a status of
  on/off (older feeds) is used.  bootingUp or the model's condition
  statuses (ok, defectiveLamp, …) do not say whether the lamp is lit: such
  an entity is rejected; a condition other than ok is also noted.
* **OffStreetParking**, **OnStreetParking** -> ``facility`` (asset_id the
  entity id, asset_type ``parking``): ``parking_free_spaces`` =
  availableSpotNumber; ``parking_occupancy`` (0–1) = occupancy (the model's
  0–1 share), else percentageOccupancy / 100, else occupiedSpotNumber /
  totalSpotNumber, else (total − available) / total (derived values
  noted).  Spot numbers must be whole, ≥ 0 and not above totalSpotNumber,
  else the entity is rejected naming the attribute; an occupancy that
  disagrees with the spot numbers by more than 2 points is noted.
* **ParkingSpot** -> ``facility`` ``parking_occupancy`` of the one spot
  (asset_type ``parking_spot``): status occupied -> 1, free -> 0; closed or
  unknown do not say whether a vehicle is there: rejected.
* **WaterQualityObserved** (the river) -> ``facility``, one row per
  attribute present (asset_type ``water_quality``; asset_id refPointOfInterest,
  else refDevice, else the entity id, noted): temperature ->
  ``water_temperature_c``, pH -> ``water_ph``, O2 -> ``dissolved_oxygen_mg_l``,
  turbidity -> ``turbidity_ntu``, conductivity -> ``water_conductivity_us_cm``.
  Without a unitCode an attribute is in the model's default unit (°C, mg/L,
  FTU read as NTU, S/m — converted, noted); a conductivity above 20 S/m
  without unitCode is impossible for river water and is rejected as a
  probable µS/cm reading sent without its unit.  One unusable attribute is
  rejected alone (located ``entity[i].<attribute>``); the others still give
  rows.  Measurands without a facility metric (NO3, NH4, …) are noted.
* every other type: no feed kind; counted in a note per type.
"""
from __future__ import annotations

import json
import re
from datetime import datetime

from indicators.feeds.schemas import FACILITY_METRICS as FACILITY_UNIT

from .base import (INVALID, UNIT_CODES, Collector, Parsed, as_number, iso, load_json,
                   parse_instant, parse_time_or_interval, plural)
from .sensorthings import convert_unit as convert

_META_KEYS = {"type", "value", "object", "metadata", "observedAt", "unitCode", "datasetId",
              "createdAt", "modifiedAt", "deletedAt", "instanceId", "providedBy", "@context"}
_URN = re.compile(r"\Aurn:ngsi-ld:[^:]+:(.+)\Z")
_MISSING = object()


def parse(data: bytes, source: str | None = None) -> Parsed:
    c = Collector(source or "ngsi-ld")
    doc = load_json(data, c)
    if doc is INVALID:
        return c.result()
    entities = _entities(doc, c)
    if entities is None:
        c.reject(data, "the JSON is neither an NGSI entity, an array of entities, a notification "
                 "nor a GeoJSON FeatureCollection of entities", "payload")
        return c.result()
    for i, raw in enumerate(entities):
        if not isinstance(raw, dict):
            c.reject(repr(raw), f"entity {i} is not a JSON object", f"entity[{i}]")
            continue
        eid, etype = raw.get("id"), raw.get("type")
        if not isinstance(eid, str) or not eid or not isinstance(etype, str) or not etype:
            c.reject(_dump(raw), f"entity {i} has no string 'id' and 'type', so it cannot be "
                     "identified", f"entity[{i}]")
            continue
        type_name = re.split(r"[/#:]", etype)[-1]
        handler = HANDLERS.get(type_name)
        if handler is None:
            c.count(f"type:{type_name}",
                    lambda n, t=type_name: f"{plural(n, 'entity', 'entities')} of unsupported type "
                                           f"'{t}' skipped (the twin has no feed kind for it)")
            continue
        handler(_Entity(raw, i, c), c)
    return c.result()


def _entities(doc, c: Collector) -> list | None:
    if isinstance(doc, list):
        return doc
    if not isinstance(doc, dict):
        return None
    if "id" in doc and "type" in doc and doc.get("type") != "FeatureCollection":
        return [doc]
    if isinstance(doc.get("data"), list):
        c.note("NGSI notification: its 'data' entities were read")
        return doc["data"]
    if doc.get("type") == "FeatureCollection" and isinstance(doc.get("features"), list):
        return [{"id": f.get("id"), **f.get("properties", {})} if isinstance(f, dict) else f
                for f in doc["features"]]
    return None


def _dump(raw) -> str:
    try:
        return json.dumps(raw, ensure_ascii=False)
    except (TypeError, ValueError):
        return repr(raw)


def local_id(ref: str) -> str:
    """``urn:ngsi-ld:RoadSegment:west_1`` -> ``west_1``; other ids unchanged."""
    m = _URN.match(ref)
    return m.group(1) if m else ref


class _Bad(Exception):
    """An attribute of the entity is unusable; the entity becomes a Reject."""

    def __init__(self, attr: str, reason: str):
        super().__init__(reason)
        self.attr, self.reason = attr, reason


class _Entity:
    """Attribute access that looks the same whatever the representation."""

    def __init__(self, raw: dict, index: int, c: Collector):
        self.raw, self.index, self.c = raw, index, c
        self.id: str = raw["id"]
        self.label = f"entity {index} ({self.id})"

    def attr(self, name: str) -> tuple[object, dict | None]:
        """(value, normalized attribute object or None); value is _MISSING."""
        v = self.raw.get(name, _MISSING)
        if isinstance(v, list) and v and all(isinstance(x, dict) and ("value" in x or "object" in x)
                                             for x in v):
            # multi-attribute: several instances told apart by datasetId
            v = next((x for x in v if "datasetId" not in x), v[0])
            self.c.note(f"attribute '{name}' has several instances (datasetId); the default "
                        "one was read")
        meta = None
        if isinstance(v, dict) and ("value" in v or "object" in v) and set(v) <= _META_KEYS:
            meta, v = v, v.get("value", v.get("object"))
        if isinstance(v, dict) and "@value" in v:
            v = v["@value"]
        return v, meta

    def has(self, name: str) -> bool:
        return self.attr(name)[0] not in (_MISSING, None)

    def number(self, name: str) -> float | None:
        v, _ = self.attr(name)
        if v is _MISSING or v is None:
            return None
        n = as_number(v)
        if n is None:
            raise _Bad(name, f"attribute '{name}' is not a number ({v!r})")
        return n

    def text(self, name: str) -> str | None:
        v, _ = self.attr(name)
        if isinstance(v, list) and v and isinstance(v[0], str):
            v = v[0]
        return v if isinstance(v, str) and v else None

    def ref(self, name: str) -> str | None:
        v = self.text(name)
        return local_id(v) if v else None

    def unit(self, name: str) -> str | None:
        _, meta = self.attr(name)
        code = meta.get("unitCode") if meta else None
        return UNIT_CODES.get(code, code) if isinstance(code, str) and code.strip() else None

    def observed_at(self, name: str) -> str | None:
        """The attribute's own time: NGSI-LD observedAt, or NGSI-v2
        ``metadata.timestamp`` / ``metadata.TimeInstant``."""
        _, meta = self.attr(name)
        if not meta:
            return None
        if isinstance(meta.get("observedAt"), str):
            return meta["observedAt"]
        md = meta.get("metadata")
        if isinstance(md, dict):
            for key in ("timestamp", "TimeInstant"):
                v = md.get(key)
                v = v.get("value") if isinstance(v, dict) else v
                if isinstance(v, str):
                    return v
        return None

    def time(self, name: str) -> tuple[datetime | None, datetime | None] | None:
        """(start, end) of a date-time attribute, None when absent."""
        v, _ = self.attr(name)
        if v is _MISSING or v is None:
            return None
        start, end = parse_time_or_interval(v, self.c) if isinstance(v, str) else (None, None)
        if start is None and end is None:
            raise _Bad(name, f"attribute '{name}' is not a date-time ({v!r})")
        return start, end

    def period_s(self) -> float | None:
        """Length of the observation period in seconds, when the entity says."""
        start = self.time("dateObservedFrom")
        end = self.time("dateObservedTo")
        if start and end and start[0] and end[1]:
            return (end[1] - start[0]).total_seconds()
        observed = self.time("dateObserved")
        if observed and observed[0] and observed[1] and observed[0] != observed[1]:
            return (observed[1] - observed[0]).total_seconds()
        return None

    def event_time(self, main: str, extra: tuple[str, ...] = ()) -> datetime:
        """When the reading of ``main`` was made (see the module docstring);
        ``extra`` names further entity-level times tried last."""
        text = self.observed_at(main)
        if text is not None:
            t = parse_instant(text, self.c)
            if t is None:
                raise _Bad(main, f"observedAt of '{main}' is not a date-time ({text!r})")
            return t
        names = ("dateObservedTo", "dateObserved", "observationDateTime", "TimeInstant") + extra
        for name in names:
            span = self.time(name)
            if span and (span[1] or span[0]):
                return span[1] or span[0]
        raise _Bad("dateObserved", "it gives no observation time ("
                   + ", ".join(n for n in names if n != "TimeInstant")
                   + f" or observedAt of '{main}')")

    def reject(self, bad: _Bad) -> None:
        self.c.reject(_dump(self.raw), f"{self.label}: {bad.reason}",
                      f"entity[{self.index}].{bad.attr}")


class _Deferred:
    """The rows, notes and rejects of one entity, kept until the entity is
    known to be good: a rejected entity leaves no note about how it was read."""

    def __init__(self, c: Collector):
        self.c, self.ops = c, []

    def row(self, kind: str, **values) -> None:
        self.ops.append(("row", (kind,), values))

    def note(self, text: str) -> None:
        self.ops.append(("note", (text,), {}))

    def count(self, key: str, render) -> None:
        self.ops.append(("count", (key, render), {}))

    def reject(self, raw, reason: str, where: str) -> None:
        self.ops.append(("reject", (raw, reason, where), {}))

    def commit(self) -> None:
        for name, args, kw in self.ops:
            getattr(self.c, name)(*args, **kw)


def _guarded(fn):
    """Run a mapper; an unusable attribute rejects the entity with its reason.
    The mapper's rows and notes reach the collector only when it succeeds."""
    def run(e: _Entity, c: Collector) -> None:
        d = _Deferred(c)
        try:
            fn(e, d)
        except _Bad as bad:
            e.reject(bad)
        else:
            d.commit()
    run.__doc__ = fn.__doc__
    return run


@_guarded
def _crowd_flow(e: _Entity, c: Collector) -> None:
    count = e.number("peopleCount")
    main = "peopleCount"
    if count is None:
        towards, away = e.number("peopleCountTowards"), e.number("peopleCountAway")
        if towards is None or away is None:
            why = (" — occupancy is the share of time the walkway was occupied and gives no "
                   "number of persons" if e.has("occupancy") else "")
            raise _Bad("peopleCount", f"it has no peopleCount (nor both peopleCountTowards and "
                                      f"peopleCountAway){why}")
        count, main = towards + away, "peopleCountTowards"
    if count < 0 or count != int(count) or count > 2**31 - 1:
        raise _Bad(main, f"attribute '{main}' is not a non-negative whole number ({count})")
    t = e.event_time(main)
    period = e.period_s()
    c.note("CrowdFlowObserved gives a flow — people who passed during the observation period"
           + (f" ({period:g} s)" if period else "") + " — read as crowd.count, which means "
           "people present")
    c.row("crowd", event_id=f"{e.id}@{iso(t)}", event_time=t,
          zone_id=e.ref("refRoadSegment") or local_id(e.id), cell_id=None, count=int(count))


@_guarded
def _traffic_flow(e: _Entity, c: Collector) -> None:
    speed = e.number("averageVehicleSpeed")
    if speed is None:
        raise _Bad("averageVehicleSpeed", "it has no averageVehicleSpeed, and traffic rows need "
                                          "a speed")
    unit = e.unit("averageVehicleSpeed")
    kmh = convert(speed, unit, "km/h")
    if kmh is None:
        raise _Bad("averageVehicleSpeed", f"unitCode '{unit}' of averageVehicleSpeed is not a "
                                          "speed unit we convert")
    if kmh < 0:
        raise _Bad("averageVehicleSpeed", f"averageVehicleSpeed is negative ({speed})")
    flow = None
    intensity = e.number("intensity")
    if intensity is not None:
        period = e.period_s()
        if period and period > 0:
            flow = intensity * 3600.0 / period
        else:
            c.count("no-period", lambda n: f"{plural(n, 'traffic flow entity', 'traffic flow entities')}"
                                           " without an observation period: intensity cannot "
                                           "be scaled to an hour, flow_vph left empty")
    occupancy = e.number("occupancy")
    if occupancy is not None:
        occupancy = occupancy * 100.0 if occupancy <= 1 else occupancy
        if not 0 <= occupancy <= 100:
            raise _Bad("occupancy", f"occupancy {occupancy:g} % is outside 0–100")
    t = e.event_time("averageVehicleSpeed")
    c.row("traffic", event_id=f"{e.id}@{iso(t)}", event_time=t,
          segment_id=e.ref("refRoadSegment") or local_id(e.id),
          speed_kmh=kmh, flow_vph=flow, occupancy_pct=occupancy)


_WEATHER_FIELDS = (  # column, attribute names, target unit
    ("temperature_c", ("temperature",), "celsius"),
    ("wind_speed_ms", ("windSpeed",), "m/s"),
    ("gust_ms", ("windGust", "gustSpeed"), "m/s"),
    ("rain_1h_mm", ("precipitation",), "mm"),
)


@_guarded
def _weather(e: _Entity, c: Collector) -> None:
    row: dict = {}
    main = None
    for column, names, target in _WEATHER_FIELDS:
        for name in names:
            v = e.number(name)
            if v is None:
                continue
            unit = e.unit(name)
            converted = convert(v, unit, target)
            if converted is None:
                raise _Bad(name, f"unitCode '{unit}' of '{name}' cannot be converted to {target}")
            row[column] = converted
            main = main or name
            break
    humidity = e.number("relativeHumidity")
    if humidity is not None:
        row["humidity_pct"] = humidity * 100.0 if humidity <= 1 else humidity
        main = main or "relativeHumidity"
    visibility, _ = e.attr("visibility")
    if visibility not in (_MISSING, None):
        if as_number(visibility) is not None:
            row["visibility_m"] = as_number(visibility)
        else:
            c.note(f"WeatherObserved visibility given as a word ({visibility!r}) is not converted "
                   "to metres")
    if not row:
        raise _Bad("temperature", "it carries none of temperature, relativeHumidity, "
                                  "precipitation, windSpeed, gust or numeric visibility")
    if "rain_1h_mm" in row:
        c.note("WeatherObserved precipitation states no accumulation period; read as rain_1h_mm")
    station = e.text("stationCode") or e.ref("refPointOfInterest") or e.ref("refDevice")
    if station is None:
        station = local_id(e.id)
        c.note(f"{e.label} names no stationCode, refPointOfInterest or refDevice; "
               "station_id is the entity id")
    t = e.event_time(main)
    c.row("weather", event_id=f"{e.id}@{iso(t)}", event_time=t, station_id=station, **row)


_LAMP_STATES = {"on": 1.0, "low": 1.0, "off": 0.0, True: 1.0, False: 0.0}


@_guarded
def _streetlight(e: _Entity, c: Collector) -> None:
    state, _ = e.attr("powerState")
    main = "powerState"
    status = e.text("status")
    if state in (_MISSING, None) and status and status.lower() in ("on", "off"):
        state, main = status.lower(), "status"
    elif status and status != "ok":
        e.c.count(f"status:{status}", lambda n, s=status: f"{plural(n, 'streetlight')} report "
                                                       f"status '{s}' (not loaded: no facility "
                                                       "metric for lamp faults)")
    key = state.lower() if isinstance(state, str) else state
    if state in (_MISSING, None):
        raise _Bad("powerState", "it has no powerState"
                   + (f"; status '{status}' describes the lamp's condition, not whether it is lit"
                      if status else ""))
    if not isinstance(key, (str, bool)) or key not in _LAMP_STATES:
        raise _Bad(main, f"{main} {state!r} does not say whether the lamp is lit "
                         "(expected on, low or off)")
    t = e.event_time(main)
    c.row("facility", event_id=f"{e.id}@{iso(t)}/lamp_on", event_time=t,
          asset_id=local_id(e.id), asset_type="streetlight", metric="lamp_on",
          value=_LAMP_STATES[key])


def _spots(e: _Entity, name: str) -> float | None:
    v = e.number(name)
    if v is not None and (v < 0 or v != int(v)):
        raise _Bad(name, f"attribute '{name}' is not a whole number of spots ≥ 0 ({v:g})")
    return v


@_guarded
def _parking(e: _Entity, c) -> None:
    total = _spots(e, "totalSpotNumber")
    free = _spots(e, "availableSpotNumber")
    occupied = _spots(e, "occupiedSpotNumber")
    if total is not None:
        for name, v in (("availableSpotNumber", free), ("occupiedSpotNumber", occupied)):
            if v is not None and v > total:
                raise _Bad(name, f"{name} {v:g} is more than totalSpotNumber {total:g}")
    occ, main = e.number("occupancy"), "occupancy"
    if occ is not None and not 0 <= occ <= 1:
        raise _Bad("occupancy", f"occupancy {occ:g} is outside 0–1 (the model's share of occupied "
                                "spots)")
    if occ is None and (pct := e.number("percentageOccupancy")) is not None:
        if not 0 <= pct <= 100:
            raise _Bad("percentageOccupancy", f"percentageOccupancy {pct:g} is outside 0–100")
        occ, main = pct / 100.0, "percentageOccupancy"
    derived = None
    if total:
        if occupied is not None:
            derived, how = occupied / total, "occupiedSpotNumber / totalSpotNumber"
        elif free is not None:
            derived, how = (total - free) / total, "(totalSpotNumber − availableSpotNumber) / totalSpotNumber"
    if occ is None and derived is not None:
        occ, main = derived, ("occupiedSpotNumber" if occupied is not None else "availableSpotNumber")
        c.count("parking-derived", lambda n, how=how: f"{plural(n, 'parking entity', 'parking entities')}"
                                                      f" without occupancy: parking_occupancy = {how}")
    elif occ is not None and derived is not None and abs(occ - derived) > 0.02:
        c.note(f"{e.label}: {main} {occ:.2f} disagrees with {how} = {derived:.2f}; {main} used")
    if free is None and occ is None:
        raise _Bad("availableSpotNumber", "it gives neither availableSpotNumber nor an occupancy "
                                          "(occupancy, percentageOccupancy, or occupied / total "
                                          "spot numbers)")
    anchor = "availableSpotNumber" if free is not None else main
    t = e.event_time(anchor, extra=("occupancyModified",))
    asset = local_id(e.id)
    if free is not None:
        c.row("facility", event_id=f"{e.id}@{iso(t)}/parking_free_spaces", event_time=t,
              asset_id=asset, asset_type="parking", metric="parking_free_spaces", value=free)
    if occ is not None:
        c.row("facility", event_id=f"{e.id}@{iso(t)}/parking_occupancy", event_time=t,
              asset_id=asset, asset_type="parking", metric="parking_occupancy", value=occ)


_SPOT_STATES = {"occupied": 1.0, "free": 0.0}


@_guarded
def _parking_spot(e: _Entity, c) -> None:
    status = e.text("status")
    if status is None:
        raise _Bad("status", "it has no status (occupied or free)")
    if status.lower() not in _SPOT_STATES:
        raise _Bad("status", f"status {status!r} does not say whether a vehicle is in the spot "
                             "(expected occupied or free)")
    t = e.event_time("status")
    c.row("facility", event_id=f"{e.id}@{iso(t)}/parking_occupancy", event_time=t,
          asset_id=local_id(e.id), asset_type="parking_spot", metric="parking_occupancy",
          value=_SPOT_STATES[status.lower()])


_WATER = (  # attribute, metric, target unit (sensorthings.convert_unit), the model's default unit
    ("temperature", "water_temperature_c", "celsius", "°C"),
    ("pH", "water_ph", "pH", None),
    ("O2", "dissolved_oxygen_mg_l", "mg/L", "mg/L"),
    ("turbidity", "turbidity_ntu", "NTU", "FTU"),
    ("conductivity", "water_conductivity_us_cm", "µS/cm", "S/m"),
)
_WATER_CODES = {"M1": "mg/l", "H29": "µg/l", "G42": "µs/cm", "H61": "ms/cm", "D10": "s/m",
                "H43": "s/cm", "G43": "µs/m"}
#: WaterQualityObserved measurands the twin has no metric for (noted when present)
_WATER_OTHER = ("Chla", "Cl-", "NH3", "NH4", "NO3", "PC", "PE", "PO4", "bod", "cod", "conductance",
                "enterococci", "escherichiaColi", "orp", "salinity", "tds", "tss")
_MAX_CONDUCTIVITY_S_M = 20.0  # sea water is about 5 S/m; more, without a unit, is µS/cm sent bare


@_guarded
def _water_quality(e: _Entity, c) -> None:
    readings = []
    for name, metric, target, default in _WATER:
        try:
            v = e.number(name)
        except _Bad as bad:
            c.reject(_dump(e.raw), f"{e.label}: {bad.reason}", f"entity[{e.index}].{bad.attr}")
            continue
        if v is None:
            continue
        code = e.unit(name)
        unit = _WATER_CODES.get(code.upper(), code) if code else None
        if unit is None and default in ("FTU", "S/m"):
            if name == "conductivity" and v > _MAX_CONDUCTIVITY_S_M:
                c.reject(_dump(e.raw), f"{e.label}: conductivity {v:g} has no unitCode, so it would be "
                         f"in the model's default S/m, which is impossible for river water; it is "
                         "probably µS/cm: send unitCode G42 (µS/cm) or D10 (S/m)",
                         f"entity[{e.index}].conductivity")
                continue
            c.count(f"water-default:{name}", lambda n, name=name, default=default, metric=metric:
                    f"WaterQualityObserved {name} without unitCode read in the model's default unit "
                    f"{default}" + (" (formazin units, equal to NTU)" if default == "FTU"
                                    else f", converted to {FACILITY_UNIT[metric]}"))
            unit = default.lower()
        value = convert(v, unit, target)
        if value is None:
            c.reject(_dump(e.raw), f"{e.label}: unitCode '{code}' of '{name}' cannot be converted to "
                     f"{target}", f"entity[{e.index}].{name}")
            continue
        readings.append((name, metric, value))
    others = [n for n in _WATER_OTHER if e.has(n)]
    if not readings:
        if any(op[0] == "reject" for op in c.ops):
            return
        raise _Bad("temperature", "it carries none of temperature, pH, O2, turbidity or conductivity"
                   + (f" (only {', '.join(others)}, which have no facility metric)" if others else ""))
    if others:
        c.count("water-other:" + ",".join(others), lambda n, o=", ".join(others):
                f"WaterQualityObserved {o}: no facility metric, not read")
    asset = e.ref("refPointOfInterest") or e.ref("refDevice")
    if asset is None:
        asset = local_id(e.id)
        c.note(f"{e.label} names no refPointOfInterest or refDevice; asset_id is the entity id")
    for name, metric, value in readings:
        t = e.event_time(name)
        c.row("facility", event_id=f"{e.id}@{iso(t)}/{metric}", event_time=t, asset_id=asset,
              asset_type="water_quality", metric=metric, value=value)


HANDLERS = {
    "CrowdFlowObserved": _crowd_flow,
    "TrafficFlowObserved": _traffic_flow,
    "WeatherObserved": _weather,
    "Streetlight": _streetlight,
    "OffStreetParking": _parking,
    "OnStreetParking": _parking,
    "ParkingSpot": _parking_spot,
    "WaterQualityObserved": _water_quality,
}
