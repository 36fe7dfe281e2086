"""What every feed adapter returns, and the small helpers they share.

An adapter turns one payload in a standard format into Arrow tables that
conform exactly to :data:`indicators.feeds.schemas.SCHEMAS`.  Feeds are
written by others and are often wrong, so an adapter never raises on bad
data: every record ends up either as a row, as a :class:`Reject` that says
in a sentence what is wrong and where, or counted in a note (records of a
kind the twin has no table for).  Nothing is dropped silently.

The helpers here parse the time stamps and numbers the formats share
(ISO 8601 instants and intervals, epoch seconds, JSON numbers) with the same
rules everywhere, so that the same observation read from two formats gets
the same ``event_time``.
"""
from __future__ import annotations

import base64
import json
import math
import re
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timezone

import pyarrow as pa

from indicators.feeds.schemas import SCHEMAS

RAW_LIMIT = 4096  # characters of the offending fragment kept in a Reject


@dataclass(frozen=True)
class Reject:
    """A record (or a whole payload) that could not be turned into a row."""

    raw: str  # the offending raw fragment (decoded text, or base64 of bytes), truncated to 4 KiB
    reason: str  # a clear, human sentence: what is wrong and where
    where: str  # locator, e.g. "entity[3].peopleCount", "entity 'vehicle_12'", "line 4"


@dataclass
class Parsed:
    """The outcome of parsing one payload.

    ``tables`` holds one table per feed kind that received at least one row;
    a kind with no rows is absent rather than present and empty.
    ``learned_datastreams`` is filled by the SensorThings adapter only: what
    it learned from Datastreams expanded in this payload, for the caller to
    keep and pass back with later payloads (see ``sensorthings``).
    """

    tables: dict[str, pa.Table]
    rejects: list[Reject]
    notes: list[str]
    learned_datastreams: dict[str, dict] = field(default_factory=dict)


def raw_text(raw: bytes | str | None) -> str:
    """The fragment as it goes into :attr:`Reject.raw`: text if it decodes
    as UTF-8, else base64, cut to :data:`RAW_LIMIT` characters."""
    if raw is None:
        return ""
    if isinstance(raw, (bytes, bytearray, memoryview)):
        raw = bytes(raw[: RAW_LIMIT * 4])
        try:
            text = raw.decode("utf-8")
        except UnicodeDecodeError:
            text = base64.b64encode(raw[:3072]).decode("ascii")
    else:
        text = raw
    return text[:RAW_LIMIT]


class Collector:
    """Accumulates rows, rejects and notes while an adapter walks a payload.

    ``count`` gathers repeated conditions ("3 entities of type X skipped")
    so that they become one note each instead of one note per record: the
    key names the condition, ``render`` writes the note for a count.
    """

    def __init__(self, source: str):
        self.source = source
        self.rows: dict[str, list[dict]] = {}
        self.rejects: list[Reject] = []
        self.notes: list[str] = []
        self._counts: Counter[str] = Counter()
        self._render: dict[str, Callable[[int], str]] = {}

    def row(self, kind: str, **values) -> None:
        values.setdefault("source", self.source)
        self.rows.setdefault(kind, []).append(values)

    def reject(self, raw: bytes | str | None, reason: str, where: str) -> None:
        self.rejects.append(Reject(raw=raw_text(raw), reason=reason, where=where))

    def note(self, text: str) -> None:
        if text not in self.notes:
            self.notes.append(text)

    def count(self, key: str, render: Callable[[int], str]) -> None:
        self._counts[key] += 1
        self._render.setdefault(key, render)

    def result(self) -> Parsed:
        for key, n in self._counts.items():
            self.note(self._render[key](n))
        tables: dict[str, pa.Table] = {}
        for kind, rows in self.rows.items():
            table = self._table(kind, rows)
            if table.num_rows:
                tables[kind] = table
            ids = Counter(r["event_id"] for r in rows)
            dup = sum(c - 1 for c in ids.values() if c > 1)
            if dup:
                self.note(f"{dup} {kind} row(s) repeat an event_id already in this payload; "
                          "they will be dropped as duplicates downstream")
        return Parsed(tables=tables, rejects=self.rejects, notes=self.notes)

    def _table(self, kind: str, rows: list[dict]) -> pa.Table:
        schema = SCHEMAS[kind]
        try:
            return pa.Table.from_pylist(rows, schema=schema)
        except (pa.ArrowException, TypeError, ValueError, OverflowError):
            pass
        # One row does not fit the schema (a null in a required field, a
        # value out of range): find it rather than lose the whole batch.
        good = []
        for row in rows:
            try:
                pa.Table.from_pylist([row], schema=schema)
            except (pa.ArrowException, TypeError, ValueError, OverflowError) as exc:
                self.reject(repr(row), f"{kind} row {row.get('event_id')!r} does not fit "
                            f"the {kind} schema: {exc}", f"row {row.get('event_id')!r}")
            else:
                good.append(row)
        return pa.Table.from_pylist(good, schema=schema)


# --- time --------------------------------------------------------------------

_NAIVE_NOTE = ("a time stamp without a UTC offset was read as UTC")


def parse_instant(text: str, c: Collector | None = None) -> datetime | None:
    """An ISO 8601 instant (``Z`` or an offset) as an aware UTC datetime.

    A time without an offset is read as UTC and, when a collector is given,
    noted: the formats ask for UTC, but examples written by hand omit it.
    Returns ``None`` when the text is not a date-time.
    """
    if not isinstance(text, str):
        return None
    text = text.strip()
    if not text:
        return None
    try:
        t = datetime.fromisoformat(text)
    except ValueError:
        return None
    if t.tzinfo is None:
        t = t.replace(tzinfo=timezone.utc)
        if c is not None:
            c.note(_NAIVE_NOTE)
    return t.astimezone(timezone.utc)


def parse_time_or_interval(text: str, c: Collector | None = None
                           ) -> tuple[datetime | None, datetime | None]:
    """``(start, end)`` of an instant or an ISO 8601 ``start/end`` interval.

    For an instant both are the same.  Intervals given as a duration
    (``start/PT5M``) are not used by the feeds we read and give ``None``.
    """
    if not isinstance(text, str):
        return None, None
    if "/" in text:
        a, _, b = text.partition("/")
        return parse_instant(a, c), parse_instant(b, c)
    t = parse_instant(text, c)
    return t, t


def epoch_seconds(value: int) -> datetime | None:
    """POSIX seconds as an aware UTC datetime; ``None`` for 0 (unset)."""
    if not value:
        return None
    try:
        return datetime.fromtimestamp(int(value), tz=timezone.utc)
    except (OverflowError, OSError, ValueError):
        return None


def iso(t: datetime) -> str:
    """The canonical text of an instant used inside event ids."""
    return t.astimezone(timezone.utc).isoformat(timespec="milliseconds").replace("+00:00", "Z")


# --- numbers and names -------------------------------------------------------

def as_number(value) -> float | None:
    """A finite JSON number (booleans excluded) as float, else ``None``."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    value = float(value)
    return value if math.isfinite(value) else None


def snake(name: str) -> str:
    """``"Luminous Flux"`` / ``"luminousFlux"`` -> ``"luminous_flux"``."""
    name = re.sub(r"([a-z0-9])([A-Z])", r"\1_\2", name.strip())
    return re.sub(r"[^0-9a-zA-Z]+", "_", name).strip("_").lower()


def squash(text: str | None) -> str | None:
    """Whitespace runs (line breaks in XML text) collapsed to one space."""
    if text is None:
        return None
    text = " ".join(text.split())
    return text or None


def plural(n: int, one: str, many: str | None = None) -> str:
    return f"{n} {one if n == 1 else (many or one + 's')}"


# --- JSON --------------------------------------------------------------------

INVALID = object()  # what load_json returns after it has rejected the payload


def load_json(data: bytes, c: Collector):
    """The decoded JSON document, or :data:`INVALID` after one Reject."""
    try:
        text = bytes(data).decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        c.reject(data, f"the payload is not UTF-8 text (byte {exc.start}), so not JSON", "payload")
        return INVALID
    if not text.strip():
        c.reject(data, "the payload is empty", "payload")
        return INVALID
    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:
        c.reject(text, f"not valid JSON: {exc.msg} at line {exc.lineno} column {exc.colno}",
                 f"line {exc.lineno}")
    except RecursionError:
        c.reject(text, "the JSON is nested too deeply to read", "payload")
    return INVALID


# --- units -------------------------------------------------------------------
# Units as feeds spell them (SensorThings unitOfMeasurement symbols, lower
# case) or as UN/CEFACT codes (NGSI-LD unitCode), per quantity, with the
# conversion to the unit the schema uses.

def _scale(k: float) -> Callable[[float], float]:
    return lambda v: v * k


_SAME = _scale(1.0)
UNITS: dict[str, dict[str, Callable[[float], float]]] = {
    "celsius": {**dict.fromkeys(["°c", "degc", "cel", "c", "℃", "celsius", "degree celsius"], _SAME),
                **dict.fromkeys(["k", "kel", "kelvin"], lambda v: v - 273.15),
                **dict.fromkeys(["°f", "degf", "fah", "f", "fahrenheit"], lambda v: (v - 32) * 5 / 9)},
    "m/s": {**dict.fromkeys(["m/s", "m s-1", "m·s-1", "m.s-1", "mps", "mts", "meter per second"], _SAME),
            **dict.fromkeys(["km/h", "kmh", "kph", "km h-1"], _scale(1 / 3.6)),
            **dict.fromkeys(["kn", "kt", "knot", "knots", "knt"], _scale(1852 / 3600)),
            **dict.fromkeys(["mph", "hm"], _scale(0.44704))},
    "km/h": {**dict.fromkeys(["km/h", "kmh", "kph", "km h-1"], _SAME),
             **dict.fromkeys(["m/s", "m s-1", "mps", "mts"], _scale(3.6)),
             **dict.fromkeys(["mph", "hm"], _scale(1.609344))},
    "mm": {**dict.fromkeys(["mm", "mmt", "millimetre", "millimeter", "l/m2", "l/m²"], _SAME),
           **dict.fromkeys(["cm", "cmt"], _scale(10.0)),
           **dict.fromkeys(["m", "mtr"], _scale(1000.0)),
           **dict.fromkeys(["in", "inh"], _scale(25.4))},
    "m": {**dict.fromkeys(["m", "mtr", "metre", "meter"], _SAME),
          **dict.fromkeys(["km", "ktm"], _scale(1000.0)),
          **dict.fromkeys(["cm", "cmt"], _scale(0.01)),
          **dict.fromkeys(["mm", "mmt"], _scale(0.001))},
    "%": {**dict.fromkeys(["%", "percent", "pct", "%rh", "rh", "p1"], _SAME)},
    "ratio": {**dict.fromkeys(["1", "ratio", "fraction", "c62"], _SAME),
              **dict.fromkeys(["%", "percent", "pct", "p1"], _scale(0.01))},
    "MPa": {**dict.fromkeys(["mpa"], _SAME), "kpa": _scale(1e-3), "bar": _scale(0.1),
            "pa": _scale(1e-6), "psi": _scale(0.00689476)},
    "degree": {**dict.fromkeys(["°", "deg", "degree", "degrees", "dd"], _SAME), "rad": math.degrees},
    "W": {**dict.fromkeys(["w", "watt"], _SAME), "kw": _scale(1000.0)},
}
UNIT_CODES = {"KMH": "km/h", "MTS": "m/s", "KNT": "kn", "HM": "mph", "CEL": "°c", "FAH": "°f",
              "KEL": "k", "MMT": "mm", "CMT": "cm", "MTR": "m", "KTM": "km", "P1": "%",
              "C62": "1", "MPA": "mpa", "KPA": "kpa", "BAR": "bar", "WTT": "w", "KWT": "kw",
              "DD": "°"}


def convert(value: float, unit: str | None, target: str) -> float | None:
    """``value`` given in ``unit`` expressed in ``target`` (a key of
    :data:`UNITS`); ``None`` when the unit is not one we know for it.  An
    absent unit means the target unit: callers note that assumption."""
    if not unit:
        return value
    fn = UNITS[target].get(unit.strip().lower())
    return None if fn is None else fn(value)
