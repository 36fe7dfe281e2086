"""Validation of feed records against :data:`~indicators.feeds.schemas.SCHEMAS`.

``validate(kind, records, now=...)`` splits a batch into one Arrow table with
exactly ``SCHEMAS[kind]`` (the good records) and a list of :class:`BadRecord`
(one per bad record, with a sentence naming the field and the problem and a
short stable ``code``).  It never raises on bad data; it raises ``TypeError``
only when called with something that is neither an Arrow table/record batch
nor an iterable of records (a programmer error).

What is checked, per record, in this order (the first problem wins):

* required (non-nullable) fields present and not null, required strings not
  empty                                                     -> ``missing_field``
* values readable as the field's type                       -> ``bad_type``
* ``event_id`` 1-200 characters                             -> ``bad_id``
* finite floats and ranges (counts >= 0, confidence 0-1, lon/lat, percent
  0-100 except bus ``occupancy_pct`` 0-300 for crush load, facility values per
  metric, ``event_time`` in [2000-01-01, now + 1 day])     -> ``out_of_range``
* enumerations (VIDEO_ALGORITHMS, WARNING_SIGNALS, WARNING_COLOURS,
  FACILITY_METRICS keys, CASE_CATEGORIES, GTFS-RT occupancy status names and the
  ``a | b | c`` status words written in the schema docs)   -> ``bad_enum``
* unknown ``kind``: every record                            -> ``unknown_kind``

Type reading is the same for Arrow input and for Python dicts, so a record is
judged the same whichever way it arrives: integers accept integral numbers and
decimal strings, floats accept numbers and decimal strings, strings accept text
and integers, timestamps accept aware datetimes, integers (epoch ms), Arrow
timestamps with a time zone and ISO 8601 strings *with* a UTC offset.  Naive
times are refused: the area is at UTC+8 and a silent 8-hour shift is worse
than a rejection.

Arrow input is checked column-wise with ``pyarrow.compute`` masks; Python runs
per row only for rows that are bad (to write their reasons), so a million valid
rows cost a few tens of milliseconds.  Extra fields are ignored.
"""
from __future__ import annotations

import base64
import json
import math
import numbers
import re
from dataclasses import dataclass
from datetime import date, datetime, timedelta, timezone
from typing import Any, Callable, Iterable, Mapping

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from . import schemas as _schemas
from .schemas import FACILITY_METRICS, SCHEMAS

__all__ = [
    "BadRecord", "validate", "reason_code", "to_raw", "REASON_CODES",
    "MISSING_FIELD", "BAD_TYPE", "OUT_OF_RANGE", "BAD_ENUM", "BAD_ID",
    "PARSE_ERROR", "UNKNOWN_KIND", "LATE", "UNKNOWN_REFERENCE", "RAW_LIMIT", "EVENT_ID_MAX",
    "EARLIEST_EVENT_TIME", "FUTURE_SLACK", "RANGES", "ENUMS",
]

# --------------------------------------------------------------------------
# reason codes (stable: dashboards and the dead-letter store count by them)
MISSING_FIELD = "missing_field"
BAD_TYPE = "bad_type"
OUT_OF_RANGE = "out_of_range"
BAD_ENUM = "bad_enum"
BAD_ID = "bad_id"
PARSE_ERROR = "parse_error"
UNKNOWN_KIND = "unknown_kind"
LATE = "late"
UNKNOWN_REFERENCE = "unknown_reference"   # a zone, gate, camera, asset … id the inventory does not have
CONFLICTING_DUPLICATE = "conflicting_duplicate"   # an event id accepted before, sent again with other content
UNMAPPED = "unmapped"             # read well, but nothing says where in the twin it goes (configure a mapping)
EVALUATION_ERROR = "evaluation_error"   # accepted, but the alert evaluation failed on it (kept for a fix and a replay)
REASON_CODES: tuple[str, ...] = (
    MISSING_FIELD, BAD_TYPE, OUT_OF_RANGE, BAD_ENUM, BAD_ID, PARSE_ERROR,
    UNKNOWN_KIND, LATE, UNKNOWN_REFERENCE, CONFLICTING_DUPLICATE, UNMAPPED, EVALUATION_ERROR,
)

RAW_LIMIT = 4096                      # bytes of raw JSON kept per bad record
EVENT_ID_MAX = 200                    # characters
EARLIEST_EVENT_TIME = datetime(2000, 1, 1, tzinfo=timezone.utc)
FUTURE_SLACK = timedelta(days=1)      # event_time may be at most now + 1 day
_UTC = timezone.utc
_EPOCH = datetime(1970, 1, 1, tzinfo=_UTC)
_MS = timedelta(milliseconds=1)
_TS_NS = pa.timestamp("ns", tz="UTC")


@dataclass(frozen=True, slots=True)
class BadRecord:
    """One rejected record.

    ``raw`` is the record as JSON (at most :data:`RAW_LIMIT` bytes, truncated
    with a marker), ``reason`` a sentence naming the field and the problem,
    ``index`` the record's position in the submitted batch (or the line number
    for JSON-lines bodies), ``code`` one of :data:`REASON_CODES` and ``where``
    an optional free-form location (e.g. ``"line 7"`` or an adapter's path).
    """

    kind: str
    raw: str
    reason: str
    index: int
    code: str = ""
    where: str = ""


# --------------------------------------------------------------------------
# rules

#: inclusive (low, high) per field name; ``None`` = unbounded on that side.
#: Ranges are physical plausibility limits, not operating thresholds.
RANGES: dict[str, tuple[float | None, float | None]] = {
    "count": (0, None),
    "entries": (0, None),
    "exits": (0, None),
    "object_count": (0, None),
    "platform_persons": (0, None),
    "interval_s": (1, 86_400),
    "confidence": (0, 1),
    "lon": (-180, 180),
    "lat": (-90, 90),
    "bearing": (0, 360),
    "speed_mps": (0, None),
    "speed_kmh": (0, None),
    "flow_vph": (0, None),
    "occupancy_pct": (0, 100),
    "humidity_pct": (0, 100),
    "rain_1h_mm": (0, None),
    "wind_speed_ms": (0, None),
    "gust_ms": (0, None),
    "visibility_m": (0, None),
    "temperature_c": (-60, 60),
    "control_level": (0, 3),
}
#: per-kind overrides of :data:`RANGES`
KIND_RANGES: dict[tuple[str, str], tuple[float | None, float | None]] = {
    # buses report crush load above 100 % of nominal capacity
    ("bus", "occupancy_pct"): (0, 300),
}
#: facility ``value`` range per ``metric`` (derived from FACILITY_METRICS units
#: where the unit says it; the rest are physical limits)
FACILITY_VALUE_RANGES: dict[str, tuple[float | None, float | None]] = {}
for _m, _unit in FACILITY_METRICS.items():
    if _unit.startswith("bool"):
        FACILITY_VALUE_RANGES[_m] = (0, 1)
    elif _unit.startswith("ratio 0-1"):
        FACILITY_VALUE_RANGES[_m] = (0, 1)
FACILITY_VALUE_RANGES.update({
    "lamp_power_w": (0, None),
    "hydrant_pressure_mpa": (0, None),
    "cover_tilt_deg": (0, 90),
    "cover_displacement_mm": (0, None),
    "parking_free_spaces": (0, None),
    "water_temperature_c": (-5, 50),
    "water_ph": (0, 14),
    "dissolved_oxygen_mg_l": (0, 30),
    "turbidity_ntu": (0, None),
    "water_conductivity_us_cm": (0, 200_000),
})
_BOOL_METRICS = frozenset(m for m, u in FACILITY_METRICS.items() if u.startswith("bool"))

#: GTFS-RT VehiclePosition.OccupancyStatus names (gtfs-realtime.proto)
GTFS_OCCUPANCY_STATUS: tuple[str, ...] = (
    "EMPTY", "MANY_SEATS_AVAILABLE", "FEW_SEATS_AVAILABLE", "STANDING_ROOM_ONLY",
    "CRUSHED_STANDING_ROOM_ONLY", "FULL", "NOT_ACCEPTING_PASSENGERS",
    "NO_DATA_AVAILABLE", "NOT_BOARDABLE",
)

_ONE_OF = re.compile(r"^one of ([A-Z_]+)$")
_WORDS = re.compile(r"^[a-z_]+(\s*\|\s*[a-z_]+)+$")


def _enum_from_doc(field: pa.Field) -> tuple[str, ...] | None:
    """Allowed values of a string field, read from its ``doc`` metadata.

    ``"one of NAME"`` refers to a constant of the schemas module (a tuple, or
    a dict whose keys are the values); ``"a | b | c"`` lists status words.
    """
    meta = field.metadata or {}
    doc = meta.get(b"doc", b"").decode()
    m = _ONE_OF.match(doc)
    if m:
        const = getattr(_schemas, m.group(1), None)
        if isinstance(const, dict):
            return tuple(const)
        if isinstance(const, (tuple, list)):
            return tuple(const)
        return None
    if _WORDS.match(doc):
        return tuple(w.strip() for w in doc.split("|"))
    if "OccupancyStatus" in doc:
        return GTFS_OCCUPANCY_STATUS
    return None


#: allowed values per (kind, field), derived from the schema docs
ENUMS: dict[tuple[str, str], tuple[str, ...]] = {}
for _kind, _schema in SCHEMAS.items():
    for _field in _schema:
        if pa.types.is_string(_field.type):
            _vals = _enum_from_doc(_field)
            if _vals:
                ENUMS[(_kind, _field.name)] = _vals


def _range_for(kind: str, name: str) -> tuple[float | None, float | None] | None:
    return KIND_RANGES.get((kind, name), RANGES.get(name))


# --------------------------------------------------------------------------
# raw text and value display


def _json_default(o: Any) -> Any:
    if isinstance(o, (datetime, date)):
        return o.isoformat()
    if isinstance(o, (bytes, bytearray, memoryview)):
        return "base64:" + base64.b64encode(bytes(o)).decode()
    if isinstance(o, np.generic):
        return o.item()
    if isinstance(o, (set, frozenset, tuple)):
        return list(o)
    return repr(o)


def to_raw(obj: Any, limit: int = RAW_LIMIT) -> str:
    """The JSON text of ``obj`` (bytes: decoded if UTF-8, else base64), cut to
    at most ``limit`` UTF-8 bytes with a visible ``…[truncated]`` marker."""
    if isinstance(obj, (bytes, bytearray, memoryview)):
        b = bytes(obj)
        try:
            s = b.decode("utf-8")
        except UnicodeDecodeError:
            s = "base64:" + base64.b64encode(b[: limit]).decode()
    elif isinstance(obj, str):
        s = obj
    else:
        try:
            s = json.dumps(obj, ensure_ascii=False, default=_json_default)
        except (TypeError, ValueError, RecursionError):
            s = repr(obj)
    enc = s.encode("utf-8", "backslashreplace")
    if len(enc) <= limit:
        return enc.decode("utf-8")
    marker = "…[truncated]"
    keep = limit - len(marker.encode())
    return enc[:keep].decode("utf-8", "ignore") + marker


def _show(v: Any, float32: bool = False) -> str:
    """Short display of a value inside a reason sentence."""
    if isinstance(v, str):
        return repr(v if len(v) <= 60 else v[:57] + "...")
    if isinstance(v, bool) or v is None:
        return json.dumps(v)
    if isinstance(v, float):
        return format(v, ".7g") if float32 else repr(v)
    if isinstance(v, datetime):
        if v.tzinfo is not None:
            return v.astimezone(_UTC).isoformat().replace("+00:00", "Z")
        return v.isoformat()
    s = to_raw(v, 80)
    return s


def _type_name(t: pa.DataType) -> str:
    if pa.types.is_timestamp(t):
        return "a UTC timestamp"
    if pa.types.is_list(t):
        return "a list of strings"
    if pa.types.is_string(t):
        return "a string"
    if pa.types.is_integer(t):
        return f"an integer ({t})"
    if pa.types.is_floating(t):
        return f"a number ({t})"
    return str(t)


# --------------------------------------------------------------------------
# reading values as the field type (shared by Arrow and dict input)

_INT_RE = r"^-?[0-9]+$"
_FLOAT_RE = r"^[+-]?([0-9]+\.?[0-9]*|\.[0-9]+)([eE][+-]?[0-9]+)?$|^[+-]?(?i:inf|infinity|nan)$"
_ISO_RE = (r"^[0-9]{4}-[0-9]{2}-[0-9]{2}[T ][0-9]{2}:[0-9]{2}(:[0-9]{2}(\.[0-9]{1,9})?)?"
           r"(Z|[+-][0-9]{2}(:?[0-9]{2})?)$")
_NAIVE_ISO = re.compile(r"^[0-9]{4}-[0-9]{2}-[0-9]{2}([T ][0-9]{2}:[0-9]{2}(:[0-9]{2}(\.[0-9]+)?)?)?$")

_CAST_ERRORS = (pa.ArrowInvalid, pa.ArrowNotImplementedError, pa.ArrowTypeError,
                OverflowError, ValueError, TypeError)


def _string_pattern(target: pa.DataType) -> str | None:
    if pa.types.is_integer(target):
        return _INT_RE
    if pa.types.is_floating(target):
        return _FLOAT_RE
    if pa.types.is_timestamp(target):
        return _ISO_RE
    return None


def _cast_once(arr: pa.Array, target: pa.DataType) -> pa.Array:
    """One Arrow cast with the project's options (raises on any failure)."""
    src = arr.type
    if pa.types.is_timestamp(target):
        if pa.types.is_string(src) or pa.types.is_large_string(src):
            try:
                return pc.cast(arr, target)
            except pa.ArrowInvalid:
                # sub-millisecond digits: parse at ns, then truncate to ms
                ns = pc.cast(arr, _TS_NS)
                return pc.cast(ns, options=pc.CastOptions(target_type=target, allow_time_truncate=True))
        return pc.cast(arr, options=pc.CastOptions(target_type=target, allow_time_truncate=True))
    if pa.types.is_floating(target):
        # int -> float may lose precision; Python's float(int) does the same
        return pc.cast(arr, options=pc.CastOptions(target_type=target, allow_float_truncate=True))
    return pc.cast(arr, target)


def _castable(src: pa.DataType, target: pa.DataType) -> bool:
    """Which source types may be read as ``target`` at all."""
    stringy = pa.types.is_string(src) or pa.types.is_large_string(src)
    if pa.types.is_null(src):
        return True
    if pa.types.is_string(target):
        return stringy or pa.types.is_integer(src)
    if pa.types.is_integer(target) or pa.types.is_floating(target):
        return (stringy or pa.types.is_integer(src) or pa.types.is_floating(src)
                or pa.types.is_boolean(src))
    if pa.types.is_timestamp(target):
        if pa.types.is_timestamp(src):
            return src.tz is not None
        return stringy or pa.types.is_integer(src)
    if pa.types.is_list(target):
        if pa.types.is_list(src) or pa.types.is_large_list(src):
            v = src.value_type
            return pa.types.is_string(v) or pa.types.is_large_string(v) or pa.types.is_null(v)
        return False
    return False


def _uncastable_reason(src: pa.DataType, target: pa.DataType) -> str:
    if pa.types.is_timestamp(src) and src.tz is None and pa.types.is_timestamp(target):
        return "is a timestamp without time zone (send UTC or an offset)"
    return f"is of type {src}, which cannot be read as {_type_name(target)}"


def _bisect_cast(arr: pa.Array, target: pa.DataType, failed: np.ndarray, offset: int) -> list[pa.Array]:
    """Cast ``arr``; on failure split it in halves until the failing elements
    are isolated.  Failing elements become nulls and are marked in ``failed``.
    Cost: one vectorised cast when all is well, O(bad * log n) casts else."""
    try:
        return [_cast_once(arr, target)]
    except _CAST_ERRORS:
        pass
    n = len(arr)
    if n <= 16:
        out = []
        for i in range(n):
            piece = arr.slice(i, 1)
            try:
                out.append(_cast_once(piece, target))
            except _CAST_ERRORS:
                failed[offset + i] = True
                out.append(pa.nulls(1, target))
        return out
    h = n // 2
    return (_bisect_cast(arr.slice(0, h), target, failed, offset)
            + _bisect_cast(arr.slice(h), target, failed, offset + h))


def _cast_column(col: pa.ChunkedArray | pa.Array, target: pa.DataType) -> tuple[pa.ChunkedArray | pa.Array, np.ndarray | None, str]:
    """Read a column as ``target``.

    Returns (values as ``target`` with nulls where unreadable, mask of the
    unreadable non-null rows or None, the reason fragment for those rows).
    """
    if col.type == target:
        return col, None, ""
    n = len(col)
    if pa.types.is_dictionary(col.type):
        try:
            col = pc.cast(col, col.type.value_type)
        except _CAST_ERRORS:
            return pa.nulls(n, target), _present(col), _uncastable_reason(col.type, target)
    src = col.type
    if not _castable(src, target):
        failed = _present(col)
        return pa.nulls(n, target), failed, _uncastable_reason(src, target)
    if pa.types.is_null(src):
        return pa.nulls(n, target), None, ""
    arr = col.combine_chunks() if isinstance(col, pa.ChunkedArray) else col
    pre_failed = None
    if pa.types.is_string(src) or pa.types.is_large_string(src):
        pattern = _string_pattern(target)
        if pattern is not None:
            ok = pc.match_substring_regex(arr, pattern)
            pre_failed = _np(pc.invert(ok))            # nulls stay False
            if pre_failed.any():
                # unreadable strings are nulled before the cast
                arr = pc.if_else(pa.array(pre_failed), pa.nulls(len(arr), src), arr)
    failed = np.zeros(n, dtype=bool)
    pieces = _bisect_cast(arr, target, failed, 0)
    out = pa.chunked_array(pieces, type=target) if len(pieces) > 1 else pieces[0]
    if pre_failed is not None:
        failed |= pre_failed
    if not failed.any():
        return out, None, ""
    return out, failed, f"cannot be read as {_type_name(target)}"


def _present(col: pa.ChunkedArray | pa.Array) -> np.ndarray:
    """Rows holding a value (not null); every row for types without nulls."""
    try:
        return _np(pc.is_valid(col))
    except _CAST_ERRORS:
        return np.ones(len(col), dtype=bool)


def _string_value_reason(v: str, target: pa.DataType) -> str:
    if pa.types.is_timestamp(target):
        if _NAIVE_ISO.match(v):
            return "has no UTC offset (send UTC with 'Z' or an offset such as '+08:00')"
        return "is not an ISO 8601 date-time with a UTC offset"
    return f"cannot be read as {_type_name(target)}"


def _coerce_py(v: Any, t: pa.DataType) -> tuple[bool, Any]:
    """Read one Python value (not None, not a str destined to a non-string
    field) as Arrow type ``t``.  Returns (True, value) or (False, reason)."""
    if pa.types.is_string(t):
        if isinstance(v, bool):
            return False, f"cannot be read as {_type_name(t)}"
        if isinstance(v, str):
            try:
                v.encode("utf-8")
            except UnicodeEncodeError:
                return False, "is not valid UTF-8 text"
            return True, v
        if isinstance(v, numbers.Integral):
            return True, str(int(v))
        return False, f"cannot be read as {_type_name(t)}"
    if pa.types.is_integer(t):
        if isinstance(v, numbers.Integral):
            iv = int(v)
        elif isinstance(v, numbers.Real):
            fv = float(v)
            if not math.isfinite(fv) or not fv.is_integer():
                return False, f"cannot be read as {_type_name(t)}"
            iv = int(fv)
        else:
            return False, f"cannot be read as {_type_name(t)}"
        bits = t.bit_width
        lo, hi = -(1 << (bits - 1)), (1 << (bits - 1)) - 1
        if not lo <= iv <= hi:
            return False, f"cannot be read as {_type_name(t)} (does not fit)"
        return True, iv
    if pa.types.is_floating(t):
        if isinstance(v, numbers.Real):
            try:
                return True, float(v)
            except OverflowError:
                return False, f"cannot be read as {_type_name(t)} (too large)"
        return False, f"cannot be read as {_type_name(t)}"
    if pa.types.is_timestamp(t):
        if isinstance(v, datetime):
            if v.tzinfo is None or v.utcoffset() is None:
                return False, "is a datetime without time zone (send UTC or an offset)"
            ms = (v.astimezone(_UTC) - _EPOCH) // _MS
            return True, ms
        if isinstance(v, numbers.Integral) and not isinstance(v, bool):
            iv = int(v)
            if not -(1 << 63) <= iv < (1 << 63):
                return False, f"cannot be read as {_type_name(t)} (does not fit)"
            return True, iv
        return False, f"cannot be read as {_type_name(t)}"
    if pa.types.is_list(t):
        if isinstance(v, (list, tuple)):
            for e in v:
                if e is None:
                    continue
                if not isinstance(e, str):
                    return False, f"cannot be read as {_type_name(t)}"
                try:
                    e.encode("utf-8")
                except UnicodeEncodeError:
                    return False, "is not valid UTF-8 text"
            return True, list(v)
        return False, f"cannot be read as {_type_name(t)}"
    return False, f"cannot be read as {_type_name(t)}"


# --------------------------------------------------------------------------
# masks and problems


def _np(mask: pa.Array | pa.ChunkedArray) -> np.ndarray:
    """A boolean Arrow mask as numpy, nulls counted as False."""
    m = pc.fill_null(mask, False)
    if isinstance(m, pa.ChunkedArray):
        if m.num_chunks == 0:
            return np.zeros(0, dtype=bool)
        return np.asarray(m.to_numpy(), dtype=bool)
    return np.asarray(m.to_numpy(zero_copy_only=False), dtype=bool)


class _Problems:
    """First problem per row; Python runs only for rows newly found bad."""

    def __init__(self, n: int) -> None:
        self.bad = np.zeros(n, dtype=bool)
        self.found: dict[int, tuple[str, str]] = {}

    def add(self, mask: np.ndarray, code: str, describe: Callable[[int], str]) -> None:
        new = mask & ~self.bad
        idx = np.flatnonzero(new)
        if idx.size == 0:
            return
        for i in idx.tolist():
            self.found[i] = (code, _describe_row(describe, i))
        self.bad |= new

    def add_arrow(self, mask: pa.Array | pa.ChunkedArray, code: str, describe: Callable[[int], str]) -> None:
        if not pc.any(mask).as_py():
            return
        self.add(_np(mask), code, describe)


def _describe_row(describe: Callable[[int], str], i: int) -> str:
    """Write the reason of one bad row (the only per-row Python work)."""
    return describe(i)


# --------------------------------------------------------------------------
# the checks (on a table already typed as SCHEMAS[kind])


def _check_rules(kind: str, typed: pa.Table, problems: _Problems, now: datetime | None,
                 orig: Callable[[str, int], Any]) -> None:
    schema = SCHEMAS[kind]

    def shown(name: str, float32: bool = False) -> Callable[[int], str]:
        return lambda i: _show(orig(name, i), float32)

    for field in schema:
        name, t = field.name, field.type
        col = typed.column(name)
        if not field.nullable:
            problems.add_arrow(pc.is_null(col), MISSING_FIELD,
                               lambda i, name=name: f"field '{name}' is missing or null")
            if pa.types.is_string(t) and name != "event_id":
                problems.add_arrow(pc.equal(pc.utf8_length(col), 0), MISSING_FIELD,
                                   lambda i, name=name: f"field '{name}' is empty")
        if name == "event_id":
            ln = pc.utf8_length(col)
            bad = pc.or_(pc.less(ln, 1), pc.greater(ln, EVENT_ID_MAX))
            problems.add_arrow(bad, BAD_ID, lambda i, s=shown(name), ln=ln: (
                f"field 'event_id' = {s(i)} must be 1-{EVENT_ID_MAX} characters long "
                f"(it has {ln[i].as_py()})"))
        if pa.types.is_floating(t):
            f32 = t == pa.float32()
            problems.add_arrow(pc.and_(pc.is_valid(col), pc.invert(pc.is_finite(col))), OUT_OF_RANGE,
                               lambda i, name=name, s=shown(name, f32): f"field '{name}' = {s(i)} is not a finite number")
        rng = _range_for(kind, name)
        if rng is not None and (pa.types.is_integer(t) or pa.types.is_floating(t)):
            lo, hi = rng
            bad = None
            if lo is not None:
                bad = pc.less(col, pa.scalar(lo).cast(t) if pa.types.is_integer(t) else lo)
            if hi is not None:
                b2 = pc.greater(col, pa.scalar(hi).cast(t) if pa.types.is_integer(t) else hi)
                bad = b2 if bad is None else pc.or_(bad, b2)
            f32 = t == pa.float32()
            problems.add_arrow(bad, OUT_OF_RANGE, lambda i, name=name, s=shown(name, f32), lo=lo, hi=hi: (
                f"field '{name}' = {s(i)} is outside {_fmt_range(lo, hi)}"))
        allowed = ENUMS.get((kind, name))
        if allowed is not None:
            bad = pc.and_(pc.is_valid(col), pc.invert(pc.is_in(col, value_set=pa.array(allowed, pa.string()))))
            problems.add_arrow(bad, BAD_ENUM, lambda i, name=name, s=shown(name), allowed=allowed: (
                f"field '{name}' = {s(i)} is not one of {_fmt_enum(allowed)}"))
        if pa.types.is_timestamp(t):
            lo_s = pa.scalar(EARLIEST_EVENT_TIME, type=t)
            if name == "event_time" and now is not None:
                hi_dt = _aware(now) + FUTURE_SLACK
                bad = pc.or_(pc.less(col, lo_s), pc.greater(col, pa.scalar(hi_dt, type=t)))
                problems.add_arrow(bad, OUT_OF_RANGE, lambda i, name=name, hi_dt=hi_dt: (
                    f"field '{name}' = {_show(col[i].as_py())} is outside "
                    f"[{_show(EARLIEST_EVENT_TIME)}, {_show(hi_dt)}] (2000-01-01 to now + 1 day)"))
            else:
                bad = pc.less(col, lo_s)
                problems.add_arrow(bad, OUT_OF_RANGE, lambda i, name=name: (
                    f"field '{name}' = {_show(col[i].as_py())} is before {_show(EARLIEST_EVENT_TIME)}"))

    if kind == "facility":
        metric = typed.column("metric")
        value = typed.column("value")
        for m, (lo, hi) in FACILITY_VALUE_RANGES.items():
            is_m = pc.equal(metric, m)
            out = None
            if lo is not None:
                out = pc.less(value, lo)
            if hi is not None:
                o2 = pc.greater(value, hi)
                out = o2 if out is None else pc.or_(out, o2)
            if m in _BOOL_METRICS:
                o3 = pc.and_(pc.not_equal(value, 0), pc.not_equal(value, 1))
                out = o3 if out is None else pc.or_(out, o3)
            rule = (f"0 or 1" if m in _BOOL_METRICS else _fmt_range(lo, hi))
            problems.add_arrow(pc.and_(is_m, out), OUT_OF_RANGE, lambda i, m=m, rule=rule: (
                f"field 'value' = {_show(orig('value', i))} is outside {rule} for metric '{m}'"))


def _fmt_num(x: float) -> str:
    return str(int(x)) if float(x).is_integer() else str(x)


def _fmt_range(lo: float | None, hi: float | None) -> str:
    if hi is None:
        return f"[{_fmt_num(lo)}, +inf)"
    if lo is None:
        return f"(-inf, {_fmt_num(hi)}]"
    return f"[{_fmt_num(lo)}, {_fmt_num(hi)}]"


def _fmt_enum(allowed: tuple[str, ...]) -> str:
    if len(allowed) <= 12:
        return "{" + ", ".join(allowed) + "}"
    return "{" + ", ".join(allowed[:10]) + f", … ({len(allowed)} values)}}"


def _aware(dt: datetime) -> datetime:
    if not isinstance(dt, datetime):
        raise TypeError(f"now must be a datetime, not {type(dt).__name__}")
    return dt.replace(tzinfo=_UTC) if dt.tzinfo is None else dt.astimezone(_UTC)


# --------------------------------------------------------------------------
# entry point


def validate(kind: str, records: pa.Table | pa.RecordBatch | Iterable[Mapping[str, Any]],
             now: datetime | None = None) -> tuple[pa.Table, list[BadRecord]]:
    """Split ``records`` into (good records as one table with exactly
    ``SCHEMAS[kind]``, list of :class:`BadRecord` sorted by index).

    ``now`` is the reference time of the ``event_time`` upper bound (now + 1
    day); callers pass their clock's time.  ``None`` skips the upper bound (the
    lower bound 2000-01-01 always applies).  A naive ``now`` is taken as UTC.
    """
    if now is not None:
        now = _aware(now)
    if isinstance(records, pa.RecordBatch):
        records = pa.Table.from_batches([records])
    if isinstance(records, pa.Table):
        if kind not in SCHEMAS:
            raws = _rows_raw(records, list(range(records.num_rows)))
            return _empty(kind), [
                BadRecord(kind, raw, _unknown_kind(kind), i, UNKNOWN_KIND) for i, raw in enumerate(raws)]
        return _validate_table(kind, records, now)
    if isinstance(records, (str, bytes, bytearray, Mapping)) or not isinstance(records, Iterable):
        raise TypeError("records must be a pyarrow Table/RecordBatch or an iterable of dict records, "
                        f"not {type(records).__name__}")
    recs = list(records)
    if kind not in SCHEMAS:
        return _empty(kind), [
            BadRecord(kind, to_raw(r), _unknown_kind(kind), i, UNKNOWN_KIND) for i, r in enumerate(recs)]
    return _validate_dicts(kind, recs, now)


def _unknown_kind(kind: Any) -> str:
    return f"unknown feed kind {_show(kind) if isinstance(kind, str) else repr(kind)}; known kinds: {', '.join(SCHEMAS)}"


def _empty(kind: str) -> pa.Table:
    schema = SCHEMAS.get(kind) if isinstance(kind, str) else None
    return (schema or pa.schema([])).empty_table()


def _row_raw(t: pa.Table, i: int) -> str:
    try:
        return to_raw(t.slice(i, 1).to_pylist()[0])
    except Exception:  # exotic column types: the raw text is best effort
        return to_raw(repr(t.slice(i, 1)))


def _rows_raw(t: pa.Table, idx: list[int]) -> list[str]:
    """Raw JSON of the rows ``idx`` of ``t`` (one bulk conversion)."""
    try:
        return [to_raw(r) for r in t.take(pa.array(idx, pa.int64())).to_pylist()]
    except Exception:  # exotic column types: fall back to one row at a time
        return [_row_raw(t, i) for i in idx]


def _first_column(t: pa.Table, name: str) -> pa.ChunkedArray | None:
    idx = t.schema.get_all_field_indices(name)
    return t.column(idx[0]) if idx else None


def _validate_table(kind: str, t: pa.Table, now: datetime | None) -> tuple[pa.Table, list[BadRecord]]:
    schema = SCHEMAS[kind]
    n = t.num_rows
    problems = _Problems(n)
    cols: list[pa.ChunkedArray | pa.Array] = []
    originals: dict[str, pa.ChunkedArray] = {}
    for field in schema:
        name = field.name
        src = _first_column(t, name)
        if src is None:
            if not field.nullable and n:
                problems.add(np.ones(n, dtype=bool), MISSING_FIELD,
                             lambda i, name=name: f"field '{name}' is missing")
            cols.append(pa.nulls(n, field.type))
            continue
        originals[name] = src
        arr, failed, why = _cast_column(src, field.type)
        if failed is not None:
            is_str_src = pa.types.is_string(src.type) or pa.types.is_large_string(src.type)

            def describe(i: int, name: str = name, src: pa.ChunkedArray = src,
                         why: str = why, ftype: pa.DataType = field.type, is_str: bool = is_str_src) -> str:
                v = src[i].as_py()
                w = _string_value_reason(v, ftype) if is_str and isinstance(v, str) else why
                return f"field '{name}' = {_show(v)} {w}"
            problems.add(failed, BAD_TYPE, describe)
        cols.append(arr)
    typed = pa.Table.from_arrays(cols, schema=schema)

    def orig(name: str, i: int) -> Any:
        c = originals.get(name)
        return None if c is None else c[i].as_py()

    _check_rules(kind, typed, problems, now, orig)
    return _finish(kind, typed, problems, lambda idx: _rows_raw(t, idx))


def _validate_dicts(kind: str, recs: list[Any], now: datetime | None) -> tuple[pa.Table, list[BadRecord]]:
    schema = SCHEMAS[kind]
    n = len(recs)
    problems = _Problems(n)
    not_obj = np.array([not isinstance(r, Mapping) for r in recs], dtype=bool)
    problems.add(not_obj, BAD_TYPE, lambda i: f"record is not a JSON object (got {type(recs[i]).__name__})")
    cols = []
    for field in schema:
        name, t = field.name, field.type
        values: list[Any] = [None] * n
        failed: dict[int, str] = {}
        str_idx: list[int] = []
        strs: list[str] = []
        target_is_str = pa.types.is_string(t)
        for i, r in enumerate(recs):
            if not_obj[i]:
                continue
            v = r.get(name)
            if v is None:
                continue
            if isinstance(v, str) and not target_is_str:
                try:
                    v.encode("utf-8")
                except UnicodeEncodeError:
                    failed[i] = "is not valid UTF-8 text"
                    continue
                str_idx.append(i)
                strs.append(v)
                continue
            ok, out = _coerce_py(v, t)
            if ok:
                values[i] = out
            else:
                failed[i] = out
        if strs:
            # strings go through the very same Arrow reading as Arrow input
            arr, fmask, _ = _cast_column(pa.array(strs, pa.string()), t)
            if pa.types.is_timestamp(t):
                arr = pc.cast(arr, pa.int64())      # epoch ms, as the other values
            parsed = arr.to_pylist()
            for j, i in enumerate(str_idx):
                if fmask is not None and fmask[j]:
                    failed[i] = _string_value_reason(strs[j], t)
                else:
                    values[i] = parsed[j]
        if failed:
            mask = np.zeros(n, dtype=bool)
            mask[list(failed)] = True
            problems.add(mask, BAD_TYPE,
                         lambda i, name=name, failed=failed: f"field '{name}' = {_show(recs[i].get(name))} {failed[i]}")
        try:
            cols.append(pa.array(values, type=t))
        except _CAST_ERRORS:
            # last line of defence: find the values Arrow still refuses
            good_vals = []
            mask = np.zeros(n, dtype=bool)
            for i, v in enumerate(values):
                try:
                    pa.array([v], type=t)
                    good_vals.append(v)
                except _CAST_ERRORS:
                    mask[i] = True
                    good_vals.append(None)
            problems.add(mask, BAD_TYPE, lambda i, name=name, t=t: (
                f"field '{name}' = {_show(recs[i].get(name))} cannot be read as {_type_name(t)}"))
            cols.append(pa.array(good_vals, type=t))
    typed = pa.Table.from_arrays(cols, schema=schema)

    def orig(name: str, i: int) -> Any:
        r = recs[i]
        return r.get(name) if isinstance(r, Mapping) else None

    _check_rules(kind, typed, problems, now, orig)
    return _finish(kind, typed, problems, lambda idx: [to_raw(recs[i]) for i in idx])


def _finish(kind: str, typed: pa.Table, problems: _Problems,
            raws: Callable[[list[int]], list[str]]) -> tuple[pa.Table, list[BadRecord]]:
    found = sorted(problems.found.items())
    texts = raws([i for i, _ in found]) if found else []
    bads = [BadRecord(kind, text, reason, i, code) for (i, (code, reason)), text in zip(found, texts)]
    if problems.bad.any():
        typed = typed.filter(pa.array(~problems.bad))
    return typed, bads


# --------------------------------------------------------------------------
# reason codes for reasons written elsewhere (adapters' rejects)

_CODE_PATTERNS: tuple[tuple[re.Pattern[str], str], ...] = (
    (re.compile(r"nowhere to go|Datastream mapping", re.I), UNMAPPED),
    (re.compile(r"unknown (feed )?kind", re.I), UNKNOWN_KIND),
    (re.compile(r"watermark|\blate\b", re.I), LATE),
    (re.compile(r"'event_id'.*characters", re.I), BAD_ID),
    (re.compile(r"is missing|is null|is empty|missing (required )?field|required", re.I), MISSING_FIELD),
    (re.compile(r"is not one of|not a valid (enum|value)|unknown value", re.I), BAD_ENUM),
    (re.compile(r"is outside|out of range|not a finite|is before|is after", re.I), OUT_OF_RANGE),
    (re.compile(r"cannot be read as|wrong type|not an? (integer|number|string)|without time zone|no UTC offset|"
                r"not an ISO 8601|not valid UTF-8|not a JSON object", re.I), BAD_TYPE),
)


def reason_code(reason: str, default: str = PARSE_ERROR) -> str:
    """Short stable code of a reason sentence (used for rejects that come
    without a code, e.g. from feed adapters); ``default`` when nothing fits."""
    for pat, code in _CODE_PATTERNS:
        if pat.search(reason or ""):
            return code
    return default
