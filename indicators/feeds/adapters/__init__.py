"""Adapters from standard feed formats to the twin's feed tables.

A real deployment receives its data in published formats, not in the
twin's own schemas: GTFS-Realtime for buses, CAP 1.2 for weather warnings,
OGC SensorThings and FIWARE NGSI-LD for IoT sensors.  :func:`parse` turns
one payload into Arrow tables conforming to ``SCHEMAS``, plus the records
it refused (with a sentence saying why) and notes about what it skipped or
assumed.  It never raises on bad data.

>>> parsed = parse(open("vehicle-positions.pb", "rb").read(), "gtfs-rt")  # doctest: +SKIP
>>> parsed.tables["bus"].num_rows                                         # doctest: +SKIP
"""
from __future__ import annotations

import json
import re

from google.transit import gtfs_realtime_pb2

from . import cap, gtfs_rt, ngsi_ld, sensorthings
from .base import Parsed, Reject, raw_text

__all__ = ["FORMATS", "Parsed", "Reject", "detect_format", "parse"]

_ADAPTERS = {
    "gtfs-rt": gtfs_rt.parse,
    "cap": cap.parse,
    "sensorthings": sensorthings.parse,
    "ngsi-ld": ngsi_ld.parse,
}
FORMATS: tuple[str, ...] = tuple(_ADAPTERS)

_STA_KEYS = {"result", "phenomenonTime", "resultTime", "Datastreams", "Datastream", "Observations",
             "ObservedProperty", "unitOfMeasurement", "Locations", "HistoricalLocations",
             "feature", "encodingType", "Thing", "Sensor", "FeatureOfInterest",
             "properties", "definition", "metadata", "observationType"}
_STA_TEXT = re.compile(r'"(?:@iot\.\w+|Datastreams?|Observations|ObservedProperty|phenomenonTime|'
                       r'unitOfMeasurement|encodingType)"')
_NGSI_TEXT = re.compile(r'"urn:ngsi-ld:|"@context"|"type"\s*:\s*"(?:Property|GeoProperty|Relationship)"'
                        r'|"id"\s*:')
_CAP_TEXT = re.compile(r"urn:oasis:names:tc:emergency:cap|<(?:\w+:)?alert[\s>]")


def parse(data: bytes, fmt: str, *, source: str | None = None) -> Parsed:
    """Parse one payload of format ``fmt`` (one of :data:`FORMATS`).

    ``source`` goes into every row's ``source`` column; by default the
    format name.  Bad data gives rejects, never an exception; an unknown
    ``fmt`` is a programming error and raises ``ValueError``.
    """
    adapter = _ADAPTERS.get(fmt)
    if adapter is None:
        raise ValueError(f"unknown feed format {fmt!r}; expected one of {', '.join(FORMATS)}")
    if isinstance(data, str):
        data = data.encode("utf-8")
    try:
        return adapter(bytes(data), source)
    except Exception as exc:  # a bug here must not stop the feed: report it as a reject
        return Parsed(tables={}, notes=[], rejects=[Reject(
            raw=raw_text(bytes(data)), where="payload",
            reason=f"the {fmt} adapter failed unexpectedly ({type(exc).__name__}: {exc}); "
                   "this is a fault in scenic-twin, please report it with this payload")])


def detect_format(data: bytes, filename: str | None = None) -> str:
    """Which of :data:`FORMATS` a payload is in, from its name or its content.

    The file name decides when its extension is specific (``.pb``,
    ``.asciipb``, ``.cap``/``.cap.xml``); otherwise the content: CAP XML,
    JSON told apart by SensorThings keys (``result``, ``Datastreams``,
    ``@iot.id``…) versus NGSI ``id``/``type`` entities versus a GTFS-Realtime
    FeedMessage in its JSON form, protobuf text format,
    and finally binary protobuf — the only binary format, so bytes that are
    not text are taken as GTFS-Realtime.  Raises ``ValueError`` when the
    content matches none.
    """
    name = (filename or "").lower()
    if name.endswith((".pb", ".pbf", ".gtfsrt", ".asciipb", ".textproto", ".pbtxt")):
        return "gtfs-rt"
    if name.endswith((".cap", ".cap.xml")):
        return "cap"
    try:
        text = bytes(data).decode("utf-8-sig")
    except UnicodeDecodeError:
        return "gtfs-rt"
    head = text.lstrip()
    if head.startswith("<"):
        if _CAP_TEXT.search(text[:8192]):
            return "cap"
        raise ValueError("XML that is not a CAP alert")
    if head.startswith(("{", "[")):
        if gtfs_rt.looks_like_json(bytes(data)):      # GTFS-Realtime as JSON (header + entity)
            return "gtfs-rt"
        kind = _json_kind(text)
        if kind:
            return kind
        raise ValueError("JSON that looks neither like SensorThings nor like NGSI entities")
    if gtfs_rt.TEXT_START.match(text):
        return "gtfs-rt"
    try:
        gtfs_realtime_pb2.FeedMessage().ParseFromString(bytes(data))
    except Exception:
        raise ValueError("the payload is not CAP XML, SensorThings or NGSI JSON, "
                         "nor a GTFS-Realtime message") from None
    return "gtfs-rt"


def _json_kind(text: str) -> str | None:
    try:
        doc = json.loads(text)
    except (ValueError, RecursionError):
        # Truncated or broken JSON: judge by the keys that appear in it.
        if _STA_TEXT.search(text):
            return "sensorthings"
        return "ngsi-ld" if _NGSI_TEXT.search(text) else None
    if isinstance(doc, dict) and isinstance(doc.get("value"), list) and "id" not in doc:
        items = doc["value"]
    elif isinstance(doc, dict) and isinstance(doc.get("data"), list):
        return "ngsi-ld"
    elif isinstance(doc, dict) and doc.get("type") == "FeatureCollection":
        return "ngsi-ld"
    else:
        items = doc if isinstance(doc, list) else [doc]
    for item in items[:50]:
        if not isinstance(item, dict):
            continue
        if isinstance(item.get("id"), str) and isinstance(item.get("type"), str):
            return "ngsi-ld"
        if _STA_KEYS & set(item) or any(k.startswith("@iot.") or "@iot." in k for k in item):
            return "sensorthings"
    return None
