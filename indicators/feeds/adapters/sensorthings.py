"""OGC SensorThings API (1.0/1.1) JSON -> ``facility`` and ``weather`` rows.

Facility sensors (lamps, hydrants, manhole covers, bins) and small weather
stations in the scenic area can be read through a SensorThings server.
Accepted bodies: a Thing with its Datastreams and their Observations (deep
insert or ``$expand``); a Datastream with Observations; an Observation with
its Datastream expanded; a single Observation; or a collection
``{"value": [...]}`` of any of these.  FeatureOfInterest, Location, Sensor
and ObservedProperty bodies carry no observation and are noted.

Where a row comes from
----------------------
* ``asset_id`` / ``station_id``: the Thing's ``@iot.id``, else its name,
  else its description (noted); an Observation or Datastream without its
  Thing uses the Datastream's id or name (noted).
* the quantity: the ObservedProperty's name (else the Datastream's name).
* time: ``phenomenonTime`` (the end of an interval), else ``resultTime``.
* the value: ``result`` as a float; booleans give 1/0; anything else
  (text, objects, NaN) is rejected.

Weather or facility
-------------------
An observed property that names an outdoor weather quantity goes to
``weather``: wind gust -> ``gust_ms``, wind speed -> ``wind_speed_ms``,
temperature -> ``temperature_c``, humidity -> ``humidity_pct``, rain /
rainfall / precipitation -> ``rain_1h_mm`` (accumulation period assumed an
hour, noted), visibility -> ``visibility_m``.  A temperature of water,
soil, a road surface, a room or a device is a facility reading, not
weather.  Observations of one Thing at one instant are merged into one
weather row (``event_id`` ``<station>@<time>``).  Other weather-like
quantities (pressure, wind direction) have no column and stay facility
metrics.

Everything else is a ``facility`` row.  Its ``metric`` is the
``FACILITY_METRICS`` name when the property obviously is that quantity
(see ``FACILITY_SYNONYMS``; e.g. "Bin fill level" -> ``bin_fill``,
"Hydrant pressure" -> ``hydrant_pressure_mpa``), converted to that metric's
unit from the Datastream's unitOfMeasurement symbol; otherwise the
property name in lower snake case ("Luminous Flux" -> ``luminous_flux``),
value as sent, and a note says the metric is outside FACILITY_METRICS.
``event_id`` is ``observation/<@iot.id>`` when the server gave one, else
``<asset>/<metric>@<time>``.
"""
from __future__ import annotations

import json
import re
from dataclasses import dataclass
from datetime import datetime

from indicators.feeds.schemas import FACILITY_METRICS

from .base import (INVALID, Collector, Parsed, as_number, convert, iso, load_json,
                   parse_time_or_interval, plural, snake)

WEATHER_QUANTITIES = (  # column, pattern on the property name, unit of the column
    ("gust_ms", re.compile(r"\bgusts?\b"), "m/s"),
    ("wind_speed_ms", re.compile(r"\bwind\s*speed\b|\bwindspeed\b"), "m/s"),
    ("temperature_c", re.compile(r"\btemperature\b"), "celsius"),
    ("humidity_pct", re.compile(r"\bhumidity\b"), "%"),
    ("rain_1h_mm", re.compile(r"\brain(?:fall)?\b|\bprecipitation\b"), "mm"),
    ("visibility_m", re.compile(r"\bvisibility\b"), "m"),
)
_NOT_OUTDOOR_AIR = re.compile(r"\b(?:water|soil|road|surface|body|room|indoor|internal|cpu|"
                              r"device|battery|pipe|dew|core|engine|oil|cabinet)\b")

FACILITY_SYNONYMS: dict[str, tuple[str, ...]] = {
    "lamp_on": ("lamp on", "lamp state", "lamp status", "lamp power state", "light on",
                "light state", "streetlight state", "streetlight power state"),
    "lamp_power_w": ("lamp power", "lamp power consumption", "light power"),
    "hydrant_pressure_mpa": ("hydrant pressure", "fire hydrant pressure", "hydrant water pressure"),
    "cover_tilt_deg": ("cover tilt", "manhole cover tilt", "well cover tilt"),
    "cover_displacement_mm": ("cover displacement", "manhole cover displacement",
                              "well cover displacement"),
    "well_water_level_m": ("well water level", "manhole water level"),
    "camera_online": ("camera online",),
    "lift_running": ("lift running", "elevator running"),
    "escalator_running": ("escalator running",),
    "toilet_occupancy": ("toilet occupancy", "restroom occupancy"),
    "bin_fill": ("bin fill", "bin fill level", "waste bin fill level", "bin filling level",
                 "waste container filling level"),
}
METRIC_UNITS = {  # FACILITY_METRICS unit -> key of base.UNITS (None: a state, no conversion)
    "lamp_power_w": "W", "hydrant_pressure_mpa": "MPa", "cover_tilt_deg": "degree",
    "cover_displacement_mm": "mm", "well_water_level_m": "m", "toilet_occupancy": "ratio",
    "bin_fill": "ratio",
}
assert set(FACILITY_SYNONYMS) == set(FACILITY_METRICS)
_SYNONYM = {s: metric for metric, names in FACILITY_SYNONYMS.items()
            for s in names + (metric.replace("_", " "),)}


@dataclass(frozen=True)
class _Stream:
    """What every observation of one Datastream shares."""

    label: str  # for messages: "datastream 'Air temperature' of thing 'ws-1'"
    asset_id: str
    kind: str  # "weather" or "facility"
    column: str  # weather column or facility metric
    unit: str | None  # the Datastream's unit symbol as sent
    target: str | None  # key of base.UNITS to convert into, None for no conversion


def parse(data: bytes, source: str | None = None) -> Parsed:
    c = Collector(source or "sensorthings")
    doc = load_json(data, c)
    if doc is INVALID:
        return c.result()
    if isinstance(doc, dict) and isinstance(doc.get("value"), list):
        items = [(f"value[{i}]", x) for i, x in enumerate(doc["value"])]
        if doc.get("@iot.nextLink"):
            c.note("the collection is paged (@iot.nextLink); only this page was read")
    elif isinstance(doc, dict):
        items = [("", doc)]
    elif isinstance(doc, list):
        items = [(f"[{i}]", x) for i, x in enumerate(doc)]
    else:
        c.reject(data, "the JSON is not a SensorThings entity or collection", "payload")
        return c.result()
    weather: dict[tuple[str, datetime], dict] = {}
    for where, item in items:
        _item(item, where, c, weather)
    for (station, t), columns in weather.items():
        c.row("weather", event_id=f"{station}@{iso(t)}", event_time=t, station_id=station,
              **columns)
    return c.result()


_NO_OBSERVATIONS = (  # key that marks an entity type -> its name, for notes
    ("feature", "FeatureOfInterest"), ("location", "Location"), ("metadata", "Sensor"),
    ("definition", "ObservedProperty"),
)


def _dump(raw) -> str:
    return json.dumps(raw, ensure_ascii=False, default=repr)


def _join(where: str, part: str) -> str:
    return f"{where}.{part}" if where else part


def _item(item, where: str, c: Collector, weather: dict) -> None:
    if not isinstance(item, dict):
        c.reject(repr(item), f"{where or 'the body'} is not a JSON object", where or "payload")
    elif "result" in item or ("phenomenonTime" in item and "Datastreams" not in item):
        stream = _stream(item.get("Datastream"), None, c)
        if stream is None:
            label = f"observation {where}" if where else "the observation"
            c.reject(_dump(item), f"{label} has no expanded Datastream with an ObservedProperty, "
                     "so its quantity is unknown (ask the server for "
                     "$expand=Datastream($expand=ObservedProperty,Thing))",
                     _join(where, "Datastream"))
            return
        _observation(item, where, stream, c, weather)
    elif any(k in item for k in ("Observations", "ObservedProperty", "unitOfMeasurement")):
        _datastream(item, None, where, c, weather)
    elif any(k in item for k in ("Datastreams", "Locations", "HistoricalLocations")):
        _thing(item, where, c, weather)
    elif kind := next((k for key, k in _NO_OBSERVATIONS if key in item), None):
        c.count(kind, lambda n, k=kind: f"{plural(n, k)} read: it carries no observation, "
                                        "nothing to load")
    else:
        c.reject(_dump(item), f"{where or 'the body'} is not a SensorThings entity: it has none "
                 "of result, Datastreams, Observations, ObservedProperty, feature, location",
                 where or "payload")


def _thing_id(thing: dict, c: Collector) -> str | None:
    for key in ("@iot.id", "name"):
        v = thing.get(key)
        if isinstance(v, (str, int)) and not isinstance(v, bool) and str(v):
            return str(v)
    desc = thing.get("description")
    if isinstance(desc, str) and desc:
        c.note(f"a Thing has neither @iot.id nor name; its description {desc!r} is the asset id")
        return desc
    return None


def _thing(thing: dict, where: str, c: Collector, weather: dict) -> None:
    streams = thing.get("Datastreams")
    if streams is None:
        c.note(f"Thing {thing.get('name') or thing.get('@iot.id') or where!r} came without "
               "Datastreams; nothing to load")
        return
    if not isinstance(streams, list):
        c.reject(_dump(thing), "the Thing's Datastreams is not an array", _join(where, "Datastreams"))
        return
    asset_id = _thing_id(thing, c)
    if asset_id is None:
        c.reject(_dump(thing), "the Thing has no @iot.id, name or description to use as asset id",
                 where or "Thing")
        return
    for j, ds in enumerate(streams):
        _datastream(ds, asset_id, _join(where, f"Datastreams[{j}]"), c, weather)


def _datastream(ds, asset_id: str | None, where: str, c: Collector, weather: dict) -> None:
    if not isinstance(ds, dict):
        c.reject(repr(ds), f"{where} is not a JSON object", where)
        return
    stream = _stream(ds, asset_id, c)
    if stream is None:
        c.reject(_dump(ds), f"{where}: the Datastream has neither an ObservedProperty name nor "
                 "its own name, so its quantity is unknown", _join(where, "ObservedProperty"))
        return
    observations = ds.get("Observations")
    if not observations:
        c.count("empty", lambda n: f"{plural(n, 'Datastream')} came without Observations")
        return
    if not isinstance(observations, list):
        c.reject(_dump(ds), f"{where}: Observations is not an array", _join(where, "Observations"))
        return
    for k, obs in enumerate(observations):
        w = _join(where, f"Observations[{k}]")
        if isinstance(obs, dict):
            _observation(obs, w, stream, c, weather)
        else:
            c.reject(repr(obs), f"{w} is not a JSON object", w)


def _stream(ds, asset_id: str | None, c: Collector) -> _Stream | None:
    """The shared facts of a Datastream, or None when its quantity is unknown."""
    if not isinstance(ds, dict):
        return None
    prop = ds.get("ObservedProperty") if isinstance(ds.get("ObservedProperty"), dict) else {}
    name = next((n for n in (prop.get("name"), ds.get("name")) if isinstance(n, str) and n.strip()),
                None)
    if name is None:
        return None
    if asset_id is None:
        thing = ds.get("Thing")
        asset_id = _thing_id(thing, c) if isinstance(thing, dict) else None
        if asset_id is None:
            fallback = ds.get("@iot.id", ds.get("name"))
            if fallback is None or isinstance(fallback, (dict, list, bool)):
                return None
            asset_id = str(fallback)
            c.note(f"Datastream {asset_id!r} came without its Thing; the Datastream id is the "
                   "asset id")
    uom = ds.get("unitOfMeasurement") if isinstance(ds.get("unitOfMeasurement"), dict) else {}
    unit = next((u for u in (uom.get("symbol"), uom.get("name"))
                 if isinstance(u, str) and u.strip()), None)
    words = " ".join(snake(name).split("_"))
    label = f"datastream {name!r} of thing {asset_id!r}"
    if not _NOT_OUTDOOR_AIR.search(words):
        for column, pattern, target in WEATHER_QUANTITIES:
            if pattern.search(words):
                return _Stream(label, asset_id, "weather", column, unit, target)
    metric = _SYNONYM.get(words)
    if metric is not None:
        return _Stream(label, asset_id, "facility", metric, unit, METRIC_UNITS.get(metric))
    metric = snake(name)
    c.note(f"metric {metric!r}" + (f" (unit {unit!r})" if unit else "")
           + " is not one of FACILITY_METRICS; loaded under that name (the facility table "
           "records no unit)")
    return _Stream(label, asset_id, "facility", metric, unit, None)


def _observation(obs: dict, where: str, s: _Stream, c: Collector, weather: dict) -> None:
    raw = _dump(obs)
    t = None
    for key in ("phenomenonTime", "resultTime"):
        text = obs.get(key)
        if isinstance(text, str) and text:
            start, end = parse_time_or_interval(text, c)
            t = end or start
            if t is None:
                c.reject(raw, f"{where}: {key} {text!r} of {s.label} is not a date-time",
                         _join(where, key))
                return
            break
    if t is None:
        c.reject(raw, f"{where}: observation of {s.label} has no phenomenonTime or resultTime",
                 _join(where, "phenomenonTime"))
        return
    result = obs.get("result")
    value = float(result) if isinstance(result, bool) else as_number(result)
    if value is None:
        c.reject(raw, f"{where}: result {result!r} of {s.label} is not a number",
                 _join(where, "result"))
        return
    if s.target is not None:
        converted = convert(value, s.unit, s.target)
        if converted is None:
            c.reject(raw, f"{where}: unit {s.unit!r} of {s.label} cannot be converted to "
                     f"{s.target}", _join(where, "result"))
            return
        if not s.unit:
            c.note(f"{s.label} states no unit; {s.target} assumed")
        value = converted
    if s.kind == "weather":
        if s.column == "rain_1h_mm":
            c.note("SensorThings precipitation is read as the last hour's rain (rain_1h_mm)")
        columns = weather.setdefault((s.asset_id, t), {})
        if s.column in columns and columns[s.column] != value:
            c.note(f"two {s.column} values for station {s.asset_id!r} at {iso(t)}; the first kept")
            return
        columns[s.column] = value
        return
    oid = obs.get("@iot.id")
    event_id = (f"observation/{oid}" if isinstance(oid, (str, int)) and not isinstance(oid, bool)
                else f"{s.asset_id}/{s.column}@{iso(t)}")
    c.row("facility", event_id=event_id, event_time=t, asset_id=s.asset_id, asset_type=None,
          metric=s.column, value=value)

