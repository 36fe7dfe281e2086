"""OGC SensorThings API (1.0/1.1) JSON -> ``facility`` and ``weather`` rows.

Facility sensors (lamps, hydrants, manhole covers, bins, car parks, river
water-quality probes) and small weather stations in the scenic area can be
read through a SensorThings server.  Accepted bodies: any entity or a
collection ``{"value": [...]}`` (or a bare array) of entities, as a server
returns them or as they are posted (deep insert).

What each entity gives
----------------------
Entities are recognised by their ``@iot.selfLink`` (``.../Things(1)``) when
there is one, else by the properties the standard gives each entity type.

* **Observation** -> one row (below).  ``phenomenonTime`` and ``result`` are
  mandatory: an Observation without either is rejected, saying which one is
  missing (``resultTime`` is when the result was produced, not when the
  phenomenon was observed, and is not used in place of it).
* **Datastream** with ``Observations`` -> a row per Observation; **Thing**
  with ``Datastreams`` (deep insert or ``$expand``) -> the same for each.
* **Thing**, **Sensor**, **Location**, **HistoricalLocation**,
  **ObservedProperty**, **FeatureOfInterest** that carry no Observation
  describe something rather than observe it: each type gets one note
  ("1 SensorThings Thing: it describes a device, no observation to
  ingest").  Sensor, Location and FeatureOfInterest must have an
  ``encodingType``: without one the entity is rejected, located at that
  property (nested ones too, e.g. ``Locations[0].encodingType``).
* A lone ``unitOfMeasurement`` object (name, symbol, definition) is part of
  a Datastream, not an entity: rejected as such.  A MultiDatastream (1.1
  extension, array results) is rejected: the twin reads single quantities.

Where a row comes from
----------------------
* ``asset_id`` / ``station_id``: the Thing's ``@iot.id``, else its name,
  else its description (noted); a Datastream without its Thing uses the
  Datastream's id or name (noted).  The notes are written only when a row
  is made with that id.
* the quantity: the ObservedProperty's name (else the Datastream's name).
* time: ``phenomenonTime`` (the end of an interval).
* the value: ``result`` as a float; booleans give 1/0; anything else
  (text, objects, NaN) is rejected.

Weather or facility
-------------------
An observed property that names an outdoor weather quantity goes to
``weather``: wind gust -> ``gust_ms``, wind speed -> ``wind_speed_ms``,
temperature -> ``temperature_c``, humidity -> ``humidity_pct``, rain /
rainfall / precipitation -> ``rain_1h_mm`` (accumulation period assumed an
hour, noted), visibility -> ``visibility_m``.  A temperature of water,
soil, a road surface, a room or a device is not weather.  Observations of
one Thing at one instant are merged into one weather row (``event_id``
``<station>@<time>``).

Everything else is a ``facility`` reading when the property obviously is
one of ``FACILITY_METRICS`` (see ``FACILITY_SYNONYMS``; e.g. "Bin fill
level" -> ``bin_fill``, "Hydrant pressure" -> ``hydrant_pressure_mpa``,
"Dissolved oxygen" -> ``dissolved_oxygen_mg_l``, "Free parking spaces" ->
``parking_free_spaces``), converted to that metric's unit from the
Datastream's unitOfMeasurement symbol (an absent unitOfMeasurement, which
the standard requires, is noted and the metric's unit assumed).  A property
that is neither (say "Luminous Flux") has no place in the twin: each of its
Observations is rejected with the property and unit named.
``event_id`` is ``observation/<@iot.id>`` when the server gave one, else
``<asset>/<metric>@<time>``.

Observations whose Datastream is only a link
--------------------------------------------
A server's Observation often names its Datastream without expanding it:
``"Datastream": {"@iot.id": 5}``, a ``@iot.selfLink`` or
``Datastream@iot.navigationLink`` ending in ``Datastreams(5)``.  Such an
Observation is read when the Datastream is known from

* an expanded Datastream earlier in the same payload,
* the ``datastreams`` mapping passed to :func:`parse`: what the caller
  learned from earlier payloads (:class:`DatastreamRegistry`) merged with
  what the user configured (:func:`load_datastream_mapping`).

The key of every mapping is the Datastream's **@iot.id as text**
(``5`` -> ``"5"``, ``"ds-a"`` -> ``"ds-a"``); ``Datastreams(5)``,
``Datastreams('ds-a')`` and full URLs ending in those are turned into the
same key (:func:`datastream_key`).  An entry is a dict with

* the id: ``asset`` (an inventory asset, facility rows), ``station`` (a
  weather station) or ``thing`` (either, decided by the quantity);
* the quantity: ``metric`` (a ``FACILITY_METRICS`` name or a weather column
  such as ``temperature_c``) or ``observed_property`` (a name, classified
  like an expanded ObservedProperty);
* ``unit`` (optional): the unit the results are in, converted to the
  metric's unit; without it the results are taken to be in that unit;
* ``learned`` (set by the adapter): the entry was learned from a message.

A configured entry (not ``learned``) wins over an expanded Datastream with
the same id, so a user can point a Thing's Datastream at the inventory's
asset id; a learned entry is used only for links.  What this payload
taught is returned as ``Parsed.learned_datastreams`` (entries with
``thing``, ``observed_property``, ``unit``, ``learned = True``) for the
caller to keep.  An Observation whose linked Datastream is unknown is
rejected with the TOML table to write, e.g.::

    [datastreams."5"]
    asset = "hydrant_w_03"
    metric = "hydrant_pressure_mpa"
    unit = "kPa"
"""
from __future__ import annotations

import json
import math
import os
import re
import tempfile
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

from indicators.feeds.schemas import FACILITY_METRICS

from .base import (INVALID, UNITS, Collector, Parsed, as_number, convert, iso, load_json,
                   parse_time_or_interval, plural, snake)

WEATHER_QUANTITIES = (  # column, pattern on the property name, unit of the column
    ("gust_ms", re.compile(r"\bgusts?\b"), "m/s"),
    ("wind_speed_ms", re.compile(r"\bwind\s*speed\b|\bwindspeed\b"), "m/s"),
    ("temperature_c", re.compile(r"\btemperature\b"), "celsius"),
    ("humidity_pct", re.compile(r"\bhumidity\b"), "%"),
    ("rain_1h_mm", re.compile(r"\brain(?:fall)?\b|\bprecipitation\b"), "mm"),
    ("visibility_m", re.compile(r"\bvisibility\b"), "m"),
)
WEATHER_COLUMNS = {column: target for column, _, target in WEATHER_QUANTITIES}
_NOT_OUTDOOR_AIR = re.compile(r"\b(?:water|soil|road|surface|body|room|indoor|internal|cpu|"
                              r"device|battery|pipe|dew|core|engine|oil|cabinet)\b")

FACILITY_SYNONYMS: dict[str, tuple[str, ...]] = {  # lower-case words, as snake() splits names
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
    "maintenance": ("maintenance", "under maintenance", "maintenance state", "work order open"),
    "parking_free_spaces": ("free parking spaces", "available parking spaces", "free spaces",
                            "available spaces", "available spot number", "free spots",
                            "parking free spaces"),
    "parking_occupancy": ("parking occupancy", "car park occupancy", "parking lot occupancy"),
    "water_temperature_c": ("water temperature", "river water temperature"),
    "water_ph": ("p h", "water p h", "p h value", "ph", "water ph"),
    "dissolved_oxygen_mg_l": ("dissolved oxygen", "dissolved oxygen concentration"),
    "turbidity_ntu": ("turbidity", "water turbidity"),
    "water_conductivity_us_cm": ("conductivity", "electrical conductivity", "electric conductivity",
                                 "water conductivity"),
}


def _scale(k: float):
    return lambda v: v * k


_SAME = _scale(1.0)
#: Units of the newer facility metrics, in the shape of ``base.UNITS``
#: (symbols in lower case and UN/CEFACT codes: M1 mg/L, H29 µg/L, G42 µS/cm,
#: H61 mS/cm, D10 S/m, H43 S/cm, C62 one).  Turbidity units calibrated on
#: formazin (NTU, FNU, FTU) are read as equal, as water agencies do.
EXTRA_UNITS: dict[str, dict] = {
    "mg/L": {**dict.fromkeys(["mg/l", "mg l-1", "mg·l-1", "mg.l-1", "m1", "ppm", "g/m3", "g/m³",
                              "milligram per litre", "milligram per liter"], _SAME),
             **dict.fromkeys(["µg/l", "μg/l", "ug/l", "h29"], _scale(1e-3)),
             **dict.fromkeys(["g/l", "gl"], _scale(1e3))},
    "NTU": dict.fromkeys(["ntu", "fnu", "ftu"], _SAME),
    "µS/cm": {**dict.fromkeys(["µs/cm", "μs/cm", "us/cm", "g42", "microsiemens per centimetre"], _SAME),
              **dict.fromkeys(["ms/cm", "h61"], _scale(1e3)),
              **dict.fromkeys(["s/m", "d10"], _scale(1e4)),
              **dict.fromkeys(["ms/m"], _scale(10.0)),
              **dict.fromkeys(["s/cm", "h43"], _scale(1e6)),
              **dict.fromkeys(["µs/m", "μs/m", "us/m", "g43"], _scale(0.01))},
    "pH": dict.fromkeys(["ph", "1", "c62", "ph unit", "ph units", "[ph]"], _SAME),
    "spaces": dict.fromkeys(["1", "c62", "space", "spaces", "spot", "spots", "{space}", "{spot}",
                             "h87", "vehicles"], _SAME),
}
METRIC_UNITS = {  # facility metric -> key of base.UNITS or EXTRA_UNITS (absent: a state, no unit)
    "lamp_power_w": "W", "hydrant_pressure_mpa": "MPa", "cover_tilt_deg": "degree",
    "cover_displacement_mm": "mm", "well_water_level_m": "m", "toilet_occupancy": "ratio",
    "bin_fill": "ratio", "parking_free_spaces": "spaces", "parking_occupancy": "ratio",
    "water_temperature_c": "celsius", "water_ph": "pH", "dissolved_oxygen_mg_l": "mg/L",
    "turbidity_ntu": "NTU", "water_conductivity_us_cm": "µS/cm",
}
assert set(FACILITY_SYNONYMS) == set(FACILITY_METRICS)
_SYNONYM = {s: metric for metric, names in FACILITY_SYNONYMS.items()
            for s in names + (metric.replace("_", " "),)}


def convert_unit(value: float, unit: str | None, target: str) -> float | None:
    """:func:`base.convert` extended to the targets of :data:`EXTRA_UNITS`."""
    if target in UNITS:
        return convert(value, unit, target)
    if not unit:
        return value
    fn = EXTRA_UNITS[target].get(unit.strip().lower())
    return None if fn is None else fn(value)


# --- Datastream keys and mappings ---------------------------------------------

_DS_LINK = re.compile(r"Datastreams\(\s*('(?:[^']|'')*'|[^()/']+?)\s*\)\s*/?\s*\Z")
_ENTRY_FIELDS = ("asset", "station", "thing", "metric", "observed_property", "unit", "learned", "name")
_TOML_EXAMPLE = 'asset = "<inventory asset id>", metric = "<facility metric>" (unit = "<unit>" if needed)'


def datastream_key(ref) -> str | None:
    """The canonical key of a Datastream: its ``@iot.id`` as text.

    ``5`` and ``"5"`` give ``"5"``; ``"Datastreams(5)"``,
    ``"Datastreams('ds-a')"`` and URLs ending in them give ``"5"`` /
    ``"ds-a"``; any other non-empty text is taken as the id itself.  ``None``
    for anything else (including a link that does not name a Datastream,
    such as ``Observations(7)/Datastream``)."""
    if isinstance(ref, bool) or ref is None:
        return None
    if isinstance(ref, int):
        return str(ref)
    if not isinstance(ref, str) or not ref.strip():
        return None
    text = ref.strip()
    m = _DS_LINK.search(text)
    if m:
        inner = m.group(1)
        if inner.startswith("'"):
            inner = inner[1:-1].replace("''", "'")
        return inner or None
    if "/" in text or "(" in text:
        return None  # a link, but not to a Datastream by id
    return text


def _check_entry(entry) -> tuple[str, str] | None:
    """(field, what is wrong) for an unusable mapping entry, else None."""
    if not isinstance(entry, Mapping):
        return "", "an entry must be a table of fields (asset/station/thing, metric/observed_property, unit)"
    for k in entry:
        if k not in _ENTRY_FIELDS:
            return k, f"unknown field; the fields are {', '.join(_ENTRY_FIELDS[:6])}"
    ids = [k for k in ("asset", "station", "thing") if k in entry]
    if len(ids) != 1:
        return "asset", ("give exactly one of asset (an inventory asset id), station (a weather "
                         "station id) or thing" + (f"; it has {', '.join(ids)}" if ids else ""))
    if not isinstance(entry[ids[0]], str) or not entry[ids[0]].strip():
        return ids[0], "must be a non-empty text"
    what = [k for k in ("metric", "observed_property") if k in entry]
    if len(what) != 1:
        return "metric", ("give exactly one of metric (a FACILITY_METRICS name or a weather column) "
                          "or observed_property (a name such as 'Water temperature')")
    if not isinstance(entry[what[0]], str) or not entry[what[0]].strip():
        return what[0], "must be a non-empty text"
    unit = entry.get("unit")
    if unit is not None and not isinstance(unit, str):
        return "unit", "must be a text, the unit symbol of the results (e.g. 'kPa')"
    if "learned" in entry and not isinstance(entry["learned"], bool):
        return "learned", "must be true or false"
    if what[0] == "metric":
        metric, kind = entry["metric"], ids[0]
        facility, weather = metric in FACILITY_METRICS, metric in WEATHER_COLUMNS
        if kind == "asset" and not facility:
            return "metric", (f"{metric!r} is not one of FACILITY_METRICS "
                              f"({', '.join(FACILITY_METRICS)})")
        if kind == "station" and not weather:
            return "metric", f"{metric!r} is not a weather column ({', '.join(WEATHER_COLUMNS)})"
        if not (facility or weather):
            return "metric", f"{metric!r} is neither one of FACILITY_METRICS nor a weather column"
        target = WEATHER_COLUMNS.get(metric) or METRIC_UNITS.get(metric)
        if unit and target and convert_unit(1.0, unit, target) is None:
            return "unit", f"{unit!r} cannot be converted to {target}, the unit of {metric}"
    return None


def load_datastream_mapping(path) -> dict[str, dict]:
    """The Datastreams a user configured in a TOML file, keyed by
    :func:`datastream_key`.  One table per Datastream::

        [datastreams."5"]                 # the Datastream's @iot.id
        asset = "hydrant_w_03"            # or station = "…" / thing = "…"
        metric = "hydrant_pressure_mpa"   # or observed_property = "Hydrant pressure"
        unit = "kPa"                      # optional: the unit of the results

    Raises ``ValueError`` with a sentence naming the file, the table and the
    field when the file cannot be read or an entry is unusable."""
    p = Path(path)
    try:
        doc = tomllib.loads(p.read_text(encoding="utf-8"))
    except OSError as exc:
        raise ValueError(f"cannot read the Datastream mapping {p}: {exc.strerror or exc}") from None
    except UnicodeDecodeError:
        raise ValueError(f"the Datastream mapping {p} is not UTF-8 text") from None
    except tomllib.TOMLDecodeError as exc:
        raise ValueError(f"the Datastream mapping {p} is not valid TOML: {exc}") from None
    extra = [k for k in doc if k != "datastreams"]
    if extra:
        raise ValueError(f"the Datastream mapping {p} has '{extra[0]}' at the top level; it holds "
                         'only [datastreams."<Datastream @iot.id>"] tables')
    table = doc.get("datastreams")
    if not isinstance(table, dict) or not table:
        raise ValueError(f"the Datastream mapping {p} has no [datastreams.\"<id>\"] table; write one "
                         f'per Datastream, e.g. [datastreams."5"] with {_TOML_EXAMPLE}')
    out: dict[str, dict] = {}
    for raw_key, entry in table.items():
        name = f'[datastreams."{raw_key}"]'
        key = datastream_key(raw_key)
        if key is None:
            raise ValueError(f"in the Datastream mapping {p}, table {name}: the key is not a "
                             "Datastream id (write the @iot.id, e.g. \"5\", or Datastreams(5))")
        if not isinstance(entry, dict):
            raise ValueError(f"in the Datastream mapping {p}, datastreams.{raw_key} is a value, not a "
                             f"table; write {name} with {_TOML_EXAMPLE}")
        if entry.get("learned"):
            raise ValueError(f"in the Datastream mapping {p}, table {name}, field 'learned': a "
                             "configured entry cannot be marked as learned")
        problem = _check_entry(entry)
        if problem:
            fld, why = problem
            raise ValueError(f"in the Datastream mapping {p}, table {name}"
                             + (f", field '{fld}'" if fld else "") + f": {why}")
        if key in out:
            raise ValueError(f"in the Datastream mapping {p}, table {name} names Datastream {key!r} "
                             "a second time")
        out[key] = dict(entry)
    return out


class DatastreamRegistry:
    """Datastreams learned from earlier messages, kept in a JSON file.

    The caller loads :meth:`get_all`, passes it to :func:`parse` merged
    with the configured mapping (``{**registry.get_all(), **configured}``)
    and stores ``parsed.learned_datastreams`` with :meth:`update`.  Writes
    are atomic (a temporary file in the same folder, fsync, ``os.replace``)
    and serialised between processes by a lock file beside it.
    """

    FORMAT = "scenic-twin SensorThings Datastreams 1"

    def __init__(self, path):
        self.path = Path(path)

    def get_all(self) -> dict[str, dict]:
        """Every stored entry by Datastream key; empty when the file does not
        exist yet.  Raises ``ValueError`` when the file is not a registry."""
        try:
            text = self.path.read_text(encoding="utf-8")
        except FileNotFoundError:
            return {}
        except (OSError, UnicodeDecodeError) as exc:
            raise ValueError(f"cannot read the Datastream registry {self.path}: {exc}") from None
        try:
            doc = json.loads(text)
        except ValueError as exc:
            raise ValueError(f"the Datastream registry {self.path} is not valid JSON ({exc}); move it "
                             "aside to start a new one") from None
        if (not isinstance(doc, dict) or doc.get("format") != self.FORMAT
                or not isinstance(doc.get("datastreams"), dict)):
            raise ValueError(f"{self.path} is not a Datastream registry (expected a JSON object with "
                             f"format {self.FORMAT!r} and a 'datastreams' object)")
        return {str(k): dict(v) for k, v in doc["datastreams"].items() if isinstance(v, dict)}

    def update(self, entries: Mapping[str, dict]) -> dict[str, dict]:
        """Add or replace ``entries`` (keys as :func:`datastream_key` reads
        them) and write the file; returns everything stored.  Raises
        ``ValueError`` for an unusable entry, naming its key and field."""
        clean: dict[str, dict] = {}
        for raw_key, entry in entries.items():
            key = datastream_key(raw_key)
            if key is None:
                raise ValueError(f"{raw_key!r} is not a Datastream id")
            problem = _check_entry(entry)
            if problem:
                raise ValueError(f"Datastream {key!r}, field '{problem[0]}': {problem[1]}")
            clean[key] = dict(entry)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with _Lock(self.path.with_name(self.path.name + ".lock")):
            current = self.get_all()
            merged = {**current, **clean}
            if merged != current or not self.path.exists():
                self._write(merged)
        return merged

    def _write(self, entries: dict[str, dict]) -> None:
        body = json.dumps({"format": self.FORMAT, "datastreams": entries}, ensure_ascii=False,
                          indent=1, sort_keys=True)
        fd, tmp = tempfile.mkstemp(dir=self.path.parent, prefix=self.path.name + ".", suffix=".tmp")
        try:
            with os.fdopen(fd, "w", encoding="utf-8") as f:
                f.write(body + "\n")
                f.flush()
                os.fsync(f.fileno())
            os.replace(tmp, self.path)
        except BaseException:
            try:
                os.unlink(tmp)
            except OSError:
                pass
            raise
        try:  # make the rename itself durable
            dfd = os.open(self.path.parent, os.O_RDONLY)
            try:
                os.fsync(dfd)
            finally:
                os.close(dfd)
        except OSError:
            pass


class _Lock:
    """An exclusive advisory lock on a file (a no-op where fcntl is missing)."""

    def __init__(self, path: Path):
        self.path, self.fd = path, None

    def __enter__(self):
        try:
            import fcntl
        except ImportError:  # pragma: no cover - not POSIX
            return self
        self.fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        fcntl.flock(self.fd, fcntl.LOCK_EX)
        return self

    def __exit__(self, *exc):
        if self.fd is not None:
            import fcntl
            fcntl.flock(self.fd, fcntl.LOCK_UN)
            os.close(self.fd)
        return False


# --- parsing ------------------------------------------------------------------

@dataclass(frozen=True)
class _Stream:
    """What every observation of one Datastream shares."""

    label: str  # for messages: "datastream 'Air temperature' of thing 'ws-1'"
    asset_id: str
    kind: str  # "weather" or "facility"
    column: str  # weather column or facility metric
    unit: str | None  # the unit symbol of the results, as sent
    target: str | None  # unit to convert into (see convert_unit), None for no conversion
    notes: tuple[str, ...] = ()  # written once a row of this stream is made
    problem: str | None = None  # why none of its observations can be loaded


def parse(data: bytes, source: str | None = None, *,
          datastreams: Mapping[str, dict] | None = None) -> Parsed:
    """Rows of one SensorThings payload.  ``datastreams`` maps Datastream
    keys (:func:`datastream_key`) to entries (see the module docstring) for
    Observations whose Datastream is only a link."""
    c = Collector(source or "sensorthings")
    ctx = _Reader(c, datastreams)
    doc = load_json(data, c)
    if doc is INVALID:
        return c.result()
    if isinstance(doc, dict) and isinstance(doc.get("value"), list):
        items = [(f"value[{i}]", x) for i, x in enumerate(doc["value"])]
        if doc.get("@iot.nextLink"):
            c.note("the collection is paged (@iot.nextLink); only this page was read")
        if not items:
            c.note("the collection is empty: nothing to ingest")
    elif isinstance(doc, dict):
        items = [("", doc)]
    elif isinstance(doc, list):
        items = [(f"[{i}]", x) for i, x in enumerate(doc)]
        if not items:
            c.note("the array is empty: nothing to ingest")
    else:
        c.reject(data, "the JSON is not a SensorThings entity or collection", "payload")
        return c.result()
    for where, item in items:
        ctx.entity(item, where)
    ctx.finish()
    parsed = c.result()
    parsed.learned_datastreams = dict(ctx.learned)
    return parsed


_SETS = {"Things": "Thing", "Locations": "Location", "HistoricalLocations": "HistoricalLocation",
         "Datastreams": "Datastream", "MultiDatastreams": "MultiDatastream", "Sensors": "Sensor",
         "ObservedProperties": "ObservedProperty", "Observations": "Observation",
         "FeaturesOfInterest": "FeatureOfInterest"}
_SELF = re.compile(r"(\w+)\(\s*(?:'(?:[^']|'')*'|[^()/']*)\s*\)\s*/?\s*\Z")
_OBSERVATION_KEYS = {"result", "resultQuality", "validTime", "parameters", "Datastream",
                     "Datastream@iot.navigationLink", "FeatureOfInterest", "MultiDatastream",
                     "FeatureOfInterest@iot.navigationLink"}
_DATASTREAM_KEYS = {"unitOfMeasurement", "observationType", "ObservedProperty", "Sensor",
                    "Observations", "observedArea", "Thing"}
_THING_KEYS = {"Datastreams", "Locations", "HistoricalLocations", "MultiDatastreams", "properties"}
_DESCRIBES = {  # entity type -> (plural, what one describes, what several describe)
    "Thing": ("Things", "a device", "devices"),
    "Sensor": ("Sensors", "a sensor", "sensors"),
    "Location": ("Locations", "a place", "places"),
    "HistoricalLocation": ("HistoricalLocations", "where a Thing was", "where Things were"),
    "ObservedProperty": ("ObservedProperties", "an observed quantity", "observed quantities"),
    "FeatureOfInterest": ("FeaturesOfInterest", "the feature observed", "the features observed"),
}
_ENCODED = {"Sensor": "metadata", "Location": "location", "FeatureOfInterest": "feature"}


def entity_type(item: dict) -> str | None:
    """The SensorThings entity type of a JSON object: from its
    ``@iot.selfLink`` when it names an entity set, else from the properties
    the standard gives each type; ``"unitOfMeasurement"`` for a lone unit
    object; ``None`` when nothing fits."""
    link = item.get("@iot.selfLink")
    if isinstance(link, str):
        m = _SELF.search(link.strip())
        if m and m.group(1) in _SETS:
            return _SETS[m.group(1)]
    keys = set(item)
    plain = {k for k in keys if not k.startswith("@iot.") and "@iot." not in k}
    if keys & {"unitOfMeasurements", "multiObservationDataTypes", "ObservedProperties"}:
        return "MultiDatastream"
    if "feature" in keys:
        return "FeatureOfInterest"
    if "location" in keys:
        return "Location"
    if "metadata" in keys:
        return "Sensor"
    if keys & _OBSERVATION_KEYS:
        return "Observation"
    if "time" in keys and (keys & {"Thing", "Locations"} or plain == {"time"}):
        return "HistoricalLocation"
    if keys & _DATASTREAM_KEYS:
        return "Datastream"
    if "phenomenonTime" in keys or "resultTime" in keys:
        return "Observation"
    if "symbol" in keys and "description" not in keys:
        return "unitOfMeasurement"
    if "definition" in keys:
        return "ObservedProperty"
    if keys & _THING_KEYS or (plain and plain <= {"name", "description"}):
        return "Thing"
    return None


def _dump(raw) -> str:
    return json.dumps(raw, ensure_ascii=False, default=repr)


def _join(where: str, part: str) -> str:
    return f"{where}.{part}" if where else part


def _called(what: str, where: str) -> str:
    """"observation value[3]" / "the observation"."""
    return f"{what} {where}" if where else f"the {what}"


def _text_id(v) -> str | None:
    if isinstance(v, (str, int)) and not isinstance(v, bool) and str(v).strip():
        return str(v)
    return None


def _thing_id(thing) -> tuple[str | None, str | None]:
    """(asset id, note to write when it is used) of a Thing."""
    if not isinstance(thing, dict):
        return None, None
    for key in ("@iot.id", "name"):
        v = _text_id(thing.get(key))
        if v is not None:
            return v, None
    desc = thing.get("description")
    if isinstance(desc, str) and desc.strip():
        return desc, (f"a Thing has neither @iot.id nor name; its description {desc!r} is the "
                      "asset id")
    return None, None


def _expanded(ds: dict) -> bool:
    """True when a Datastream object carries its own properties, not only a reference."""
    return any(not k.startswith("@iot.") and "@iot." not in k for k in ds)


class _Reader:
    """Walks one payload: rows, rejects, notes and learned Datastreams."""

    def __init__(self, c: Collector, mapping: Mapping[str, dict] | None):
        self.c = c
        self.weather: dict[tuple[str, datetime], dict] = {}
        self.mapping: dict[str, dict] = {}
        for k, v in (mapping or {}).items():
            key = datastream_key(k)
            if key is not None:
                self.mapping[key] = v
        self.learned: dict[str, dict] = {}
        self.pending: list[tuple[dict, str, str]] = []
        self.observed = 0  # observations met so far (rows, rejects or pending)

    # --- entities -------------------------------------------------------------

    def entity(self, item, where: str) -> None:
        c = self.c
        if not isinstance(item, dict):
            c.reject(repr(item), f"{where or 'the body'} is not a JSON object", where or "payload")
            return
        kind = entity_type(item)
        if kind == "Observation":
            self.observation(item, where, None)
        elif kind == "Datastream":
            self.datastream(item, None, None, where, top=True)
        elif kind == "Thing":
            self.thing(item, where)
        elif kind == "MultiDatastream":
            obs = item.get("Observations")
            n = len(obs) if isinstance(obs, list) else 0
            self.observed += n
            c.reject(_dump(item), f"{_called('MultiDatastream', where)} is not read: the twin takes one "
                     "quantity per Datastream and a MultiDatastream's results are arrays"
                     + (f"; its {plural(n, 'Observation')} are not loaded" if n else ""),
                     where or "payload")
        elif kind == "unitOfMeasurement":
            c.reject(_dump(item), f"{where or 'the body'} is a unitOfMeasurement (name, symbol, "
                     "definition), which is part of a Datastream, not a SensorThings entity; "
                     "nothing to ingest", where or "payload")
        elif kind in _DESCRIBES:
            self.described(item, kind, where)
        else:
            c.reject(_dump(item), f"{where or 'the body'} is not a SensorThings entity: it has none "
                     "of the properties of an Observation, Datastream, Thing, Sensor, Location, "
                     "ObservedProperty or FeatureOfInterest", where or "payload")

    def _describes(self, kind: str) -> None:
        many, one, several = _DESCRIBES[kind]
        self.c.count(f"describes:{kind}", lambda n: (
            f"1 SensorThings {kind}: it describes {one}, no observation to ingest" if n == 1 else
            f"{n} SensorThings {many}: they describe {several}, no observation to ingest"))

    def _encoding(self, item: dict, kind: str, where: str) -> bool:
        """Reject a Sensor, Location or FeatureOfInterest without encodingType."""
        enc = item.get("encodingType")
        if isinstance(enc, str) and enc.strip():
            return True
        self.c.reject(_dump(item), f"{_called('SensorThings ' + kind, where)} has no encodingType, "
                      f"which the standard requires of every {kind} (it says how its "
                      f"{_ENCODED[kind]} is encoded)", _join(where, "encodingType"))
        return False

    def described(self, item: dict, kind: str, where: str) -> None:
        ok = self._encoding(item, kind, where) if kind in _ENCODED else True
        before = self.observed
        if kind in ("Sensor", "ObservedProperty"):
            for j, ds in enumerate(item.get("Datastreams") or []
                                   if isinstance(item.get("Datastreams"), list) else []):
                self.datastream(ds, None, None, _join(where, f"Datastreams[{j}]"))
        elif kind == "FeatureOfInterest":
            obs = item.get("Observations")
            for k, o in enumerate(obs if isinstance(obs, list) else []):
                w = _join(where, f"Observations[{k}]")
                if isinstance(o, dict):
                    self.observation(o, w, None)
                else:
                    self.observed += 1
                    self.c.reject(repr(o), f"{w} is not a JSON object", w)
        elif kind == "Location":
            things = item.get("Things")
            for k, t in enumerate(things if isinstance(things, list) else []):
                if isinstance(t, dict):
                    self.thing(t, _join(where, f"Things[{k}]"))
        if ok and self.observed == before:
            self._describes(kind)

    def thing(self, thing: dict, where: str) -> None:
        c = self.c
        before = self.observed
        locations = thing.get("Locations")
        if isinstance(locations, list):
            for k, loc in enumerate(locations):
                if isinstance(loc, dict):
                    self._encoding(loc, "Location", _join(where, f"Locations[{k}]"))
        streams = thing.get("Datastreams")
        if streams is not None and not isinstance(streams, list):
            c.reject(_dump(thing), f"{_called('Thing', where)}: Datastreams is not an array",
                     _join(where, "Datastreams"))
            return
        asset_id, id_note = _thing_id(thing)
        for j, ds in enumerate(streams or []):
            w = _join(where, f"Datastreams[{j}]")
            if asset_id is None and isinstance(ds, dict) and isinstance(ds.get("Observations"), list) \
                    and ds["Observations"]:
                n = len(ds["Observations"])
                self.observed += n
                c.reject(_dump(thing), f"{_called('Thing', where)} has no @iot.id, name or description "
                         f"to use as asset id, so the {plural(n, 'Observation')} of {w} cannot be "
                         "loaded", where or "Thing")
                continue
            self.datastream(ds, asset_id, id_note, w)
        if self.observed == before:
            self._describes("Thing")

    def datastream(self, ds, asset_id: str | None, id_note: str | None, where: str,
                   top: bool = False) -> None:
        c = self.c
        if not isinstance(ds, dict):
            c.reject(repr(ds), f"{where or 'the body'} is not a JSON object", where or "payload")
            return
        sensor = ds.get("Sensor")
        if isinstance(sensor, dict) and _expanded(sensor):
            self._encoding(sensor, "Sensor", _join(where, "Sensor"))
        stream = self.stream_of(ds, asset_id, id_note)
        observations = ds.get("Observations")
        if not observations:
            if top:
                c.count("empty", lambda n: f"{plural(n, 'SensorThings Datastream')} came without "
                                           "Observations: nothing to ingest")
            return
        if not isinstance(observations, list):
            self.observed += 1
            c.reject(_dump(ds), f"{_called('Datastream', where)}: Observations is not an array",
                     _join(where, "Observations"))
            return
        if stream is None:
            key = datastream_key(ds.get("@iot.id"))
            stream = _Stream(f"the Datastream at {where or 'the body'}", "", "facility", "", None, None,
                             problem="it has neither an ObservedProperty name nor its own name"
                             + (" and is not in the Datastream mapping" if key else "")
                             + ", so its quantity is unknown")
        for k, obs in enumerate(observations):
            w = _join(where, f"Observations[{k}]")
            if isinstance(obs, dict):
                self.observation(obs, w, stream)
            else:
                self.observed += 1
                c.reject(repr(obs), f"{w} is not a JSON object", w)

    # --- Datastreams ----------------------------------------------------------

    def stream_of(self, ds: dict, asset_id: str | None, id_note: str | None) -> _Stream | None:
        """The stream of an expanded Datastream (a configured mapping entry
        wins), learning it when it has an id; None when its quantity is unknown."""
        key = datastream_key(ds.get("@iot.id")) or datastream_key(ds.get("@iot.selfLink"))
        entry = self.mapping.get(key) if key else None
        if entry is not None and not (isinstance(entry, Mapping) and entry.get("learned")):
            return self.stream_of_entry(key, entry)
        prop = ds.get("ObservedProperty") if isinstance(ds.get("ObservedProperty"), dict) else {}
        name = next((n for n in (prop.get("name"), ds.get("name")) if isinstance(n, str) and n.strip()),
                    None)
        if name is None:
            return self.lookup(key) if key else None
        notes = []
        if asset_id is None:
            asset_id, id_note = _thing_id(ds.get("Thing"))
            if asset_id is None:
                asset_id = _text_id(ds.get("@iot.id")) or _text_id(ds.get("name"))
                if asset_id is None:
                    return None
                id_note = (f"Datastream {asset_id!r} came without its Thing; the Datastream id is the "
                           "asset id")
        if id_note:
            notes.append(id_note)
        uom = ds.get("unitOfMeasurement")
        unit = None
        if isinstance(uom, dict):
            unit = next((u for u in (uom.get("symbol"), uom.get("name"))
                         if isinstance(u, str) and u.strip()), None)
        stream = _classify(name, asset_id, unit, f"datastream {name!r} of thing {asset_id!r}",
                           notes, uom=("missing" if "unitOfMeasurement" not in ds
                                       else "given" if unit else "no symbol"))
        if key is not None:
            self.learned[key] = {"thing": asset_id, "observed_property": name,
                                 **({"unit": unit} if unit else {}), "learned": True}
        return stream

    def stream_of_entry(self, key: str, entry) -> _Stream:
        """The stream of a mapping entry (configured or learned earlier)."""
        origin = ("learned from an earlier message" if isinstance(entry, Mapping) and entry.get("learned")
                  else "configured in the Datastream mapping")
        label = f"Datastream {key!r} ({origin})"
        problem = _check_entry(entry)
        if problem:
            return _Stream(label, "", "facility", "", None, None,
                           problem=f"its mapping entry is unusable: field '{problem[0]}': {problem[1]}")
        ident = next(entry[k] for k in ("asset", "station", "thing") if k in entry)
        unit = entry.get("unit")
        if "metric" in entry:
            metric = entry["metric"]
            if metric in WEATHER_COLUMNS and "asset" not in entry:
                return _Stream(label, ident, "weather", metric, unit, WEATHER_COLUMNS[metric])
            return _Stream(label, ident, "facility", metric, unit, METRIC_UNITS.get(metric))
        return _classify(entry["observed_property"], ident, unit, label, [], uom="configured")

    def lookup(self, key: str) -> _Stream | None:
        entry = self.mapping.get(key)
        if entry is not None and not (isinstance(entry, Mapping) and entry.get("learned")):
            return self.stream_of_entry(key, entry)
        if key in self.learned:
            return self.stream_of_entry(key, self.learned[key])
        return self.stream_of_entry(key, entry) if entry is not None else None

    # --- Observations ---------------------------------------------------------

    def observation(self, obs: dict, where: str, stream: _Stream | None) -> None:
        c = self.c
        self.observed += 1
        if stream is not None:
            self.read(obs, where, stream)
            return
        ds = obs.get("Datastream")
        key = None
        if isinstance(ds, dict):
            if _expanded(ds):
                stream = self.stream_of(ds, None, None)
                if stream is None:
                    c.reject(_dump(obs), f"{_called('observation', where)}: its expanded Datastream has "
                             "neither an ObservedProperty name nor its own name, nor an id in the "
                             "Datastream mapping, so its quantity is unknown (ask the server for "
                             "$expand=Datastream($expand=ObservedProperty,Thing))",
                             _join(where, "Datastream"))
                    return
                self.read(obs, where, stream)
                return
            key = datastream_key(ds.get("@iot.id")) or datastream_key(ds.get("@iot.selfLink"))
        elif ds is not None:
            key = datastream_key(ds)
        nav = obs.get("Datastream@iot.navigationLink")
        if key is None and isinstance(nav, str):
            key = datastream_key(nav)
        if key is None:
            if isinstance(nav, str) and nav.strip():
                why = (f"its Datastream is only the navigation link {nav!r}, which does not name the "
                       "Datastream; ask the server for $expand=Datastream (or "
                       "$expand=Datastream($select=id) with a Datastream mapping)")
            elif ds is not None:
                why = f"its Datastream {ds!r} is neither an expanded Datastream nor a reference to one"
            else:
                why = ("it names no Datastream, so its quantity and asset are unknown; send it with "
                       "its Datastream expanded or referenced ({\"Datastream\": {\"@iot.id\": …}})")
            c.reject(_dump(obs), f"{_called('observation', where)}: {why}", _join(where, "Datastream"))
            return
        stream = self.lookup(key)
        if stream is None:
            self.pending.append((obs, where, key))  # an expanded copy may come later in the payload
            return
        self.read(obs, where, stream)

    def finish(self) -> None:
        for obs, where, key in self.pending:
            stream = self.lookup(key)
            if stream is not None:
                self.read(obs, where, stream)
                continue
            self.c.reject(_dump(obs), f"{_called('observation', where)}: its Datastream {key!r} is a "
                          "link, not expanded, and is neither in the Datastream mapping nor learned "
                          f"from an earlier message; configure it by adding the table "
                          f'[datastreams."{key}"] to the Datastream mapping file (scenic-twin ingest --mapping FILE.toml), e.g. '
                          f'[datastreams."{key}"] {_TOML_EXAMPLE} (or have the server '
                          "$expand=Datastream($expand=ObservedProperty,Thing))",
                          _join(where, "Datastream"))
        self.pending = []
        for (station, t), columns in self.weather.items():
            self.c.row("weather", event_id=f"{station}@{iso(t)}", event_time=t, station_id=station,
                       **columns)
        self.weather = {}

    def read(self, obs: dict, where: str, s: _Stream) -> None:
        """One Observation of a known stream -> a row, or a located reject."""
        c = self.c
        raw = _dump(obs)
        who = _called("observation", where)
        if s.problem:
            c.reject(raw, f"{who} of {s.label}: {s.problem}", where or "payload")
            return
        text = obs.get("phenomenonTime")
        if text is None:
            c.reject(raw, f"{who} of {s.label} has no phenomenonTime, which SensorThings requires of "
                     "every Observation", _join(where, "phenomenonTime"))
            return
        start, end = parse_time_or_interval(text, c) if isinstance(text, str) else (None, None)
        t = end or start
        if t is None:
            c.reject(raw, f"{who}: phenomenonTime {text!r} of {s.label} is not an ISO 8601 time or "
                     "interval", _join(where, "phenomenonTime"))
            return
        if "result" not in obs:
            c.reject(raw, f"{who} of {s.label} has no result, which SensorThings requires of every "
                     "Observation", _join(where, "result"))
            return
        result = obs["result"]
        value = float(result) if isinstance(result, bool) else as_number(result)
        if value is None:
            c.reject(raw, f"{who}: result {result!r} of {s.label} is not a number",
                     _join(where, "result"))
            return
        if s.target is not None:
            converted = convert_unit(value, s.unit, s.target)
            if converted is None or not math.isfinite(converted):
                c.reject(raw, f"{who}: unit {s.unit!r} of {s.label} cannot be converted to "
                         f"{s.target}", _join(where, "result"))
                return
            value = converted
        for n in s.notes:
            c.note(n)
        if s.kind == "weather":
            if s.column == "rain_1h_mm":
                c.note("SensorThings precipitation is read as the last hour's rain (rain_1h_mm)")
            columns = self.weather.setdefault((s.asset_id, t), {})
            if s.column in columns and columns[s.column] != value:
                c.note(f"two {s.column} values for station {s.asset_id!r} at {iso(t)}; the first kept")
                return
            columns[s.column] = value
            return
        oid = _text_id(obs.get("@iot.id"))
        event_id = f"observation/{oid}" if oid is not None else f"{s.asset_id}/{s.column}@{iso(t)}"
        c.row("facility", event_id=event_id, event_time=t, asset_id=s.asset_id, asset_type=None,
              metric=s.column, value=value)


def _classify(name: str, asset_id: str, unit: str | None, label: str, notes: list[str], *,
              uom: str) -> _Stream:
    """Weather column or facility metric of an observed property name.  ``uom``
    says how the unit came: "given", "missing" (no unitOfMeasurement), "no
    symbol" (one without symbol or name) or "configured" (a mapping entry)."""
    def with_unit_note(target: str | None) -> tuple[str, ...]:
        if target is None or unit:
            return tuple(notes)
        if uom == "missing":
            return (*notes, f"{label} has no unitOfMeasurement, which SensorThings requires of "
                            f"every Datastream; {target} assumed")
        if uom == "no symbol":
            return (*notes, f"{label} states no unit symbol; {target} assumed")
        return tuple(notes)

    words = " ".join(snake(name).split("_"))
    if not _NOT_OUTDOOR_AIR.search(words):
        for column, pattern, target in WEATHER_QUANTITIES:
            if pattern.search(words):
                return _Stream(label, asset_id, "weather", column, unit, target, with_unit_note(target))
    metric = _SYNONYM.get(words)
    if metric is not None:
        target = METRIC_UNITS.get(metric)
        return _Stream(label, asset_id, "facility", metric, unit, target, with_unit_note(target))
    return _Stream(label, asset_id, "facility", snake(name), unit, None, tuple(notes),
                   problem=(f"it measures {name!r}" + (f" in {unit!r}" if unit else "")
                            + ", which is neither a weather quantity nor one of the twin's facility "
                            "metrics (FACILITY_METRICS), so it has nowhere to go; if it is one under "
                            "another name, map the Datastream's @iot.id to that metric in the "
                            "Datastream mapping"))
