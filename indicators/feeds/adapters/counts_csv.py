"""Hourly pedestrian counts in a hand-written or exported CSV -> ``gate``.

Many counting systems export their counts as a "wide" spreadsheet: one row
per date and hour, one column per sensor and direction, times in local time
(with daylight saving time where the zone has it).  A small TOML mapping
file says which columns hold what; :func:`load_mapping` reads it and
:func:`parse` turns a CSV into ``gate`` rows with it.

The mapping file
----------------
::

    # counts of the tower-base gates as the counting system exports them
    timezone = "Asia/Shanghai"      # IANA zone of the date and hour columns
    date_column = "Date"
    date_format = "%d/%m/%Y"        # strptime format of the date column
    hour_column = "Hour"
    interval = "1h"                 # each count covers [start, start + interval)

    [[gate]]
    gate_id = "gate-tower_base-0001"   # the inventory's gate id
    zone_id = "tower_base"             # the inventory's management zone
    entries = "Sensor 12 In"           # CSV column of people entering
    exits = "Sensor 12 Out"            # CSV column of people leaving

    [[gate]]
    gate_id = "gate-tower_base-0002"
    zone_id = "tower_base"
    entries = "Sensor 13 In"
    exits = "Sensor 13 Out"

Keys at the top:

* ``timezone`` (required): the IANA name of the zone the counting system
  keeps, e.g. ``"Asia/Shanghai"``, ``"Europe/Berlin"``, ``"UTC"``.  A zone
  abbreviation such as ``"CST"`` is not accepted (it names several zones).
* ``date_column`` (required): the header of the date column.
* ``date_format``: its ``strptime`` format; default ``"%Y-%m-%d"``.  It
  must give day, month and year.
* ``hour_column``: the header of the hour column.  A cell may be an hour
  ``0``-``23``, a time ``HH:MM`` (``HH:MM:SS`` with zero seconds), or a
  range ``HH:MM-HH:MM`` (``–`` and ``to`` work too) whose length must equal
  ``interval``.  Leave the key out when the date column holds the date and
  the time together; ``date_format`` must then contain ``%H``.
* ``hour_labels``: ``"start"`` (default) when an hour or time names the
  start of its counting interval (``7`` = 07:00-08:00), ``"end"`` when it
  names the end (hours numbered ``1``-``24``, ``24`` = 23:00-24:00).  A
  range always gives its start first.  A file read with ``"start"`` that
  contains hour ``24`` is refused as a whole: reading its other hours as
  starts would shift every count by one interval.
* ``interval``: the counting interval, ``"1h"`` by default; written like
  ``"15min"``, ``"30 min"``, ``"2h"``, ``"900s"``; whole minutes that divide
  a day (5 min, 15 min, 1 h, 24 h …).
* ``delimiter``: the field separator, e.g. ``";"`` or ``"tab"``.  Without
  it, the one of ``,`` ``;`` tab ``|`` that makes the header contain the
  mapped columns is used.
* ``encoding``: the text encoding, ``"utf-8"`` by default (a byte-order
  mark is fine); e.g. ``"gb18030"`` for files saved by a Chinese Excel.
* ``[[gate]]`` (at least one): one table per gate, all four keys required:
  ``gate_id``, ``zone_id``, ``entries``, ``exits``.  A gate counted in one
  direction only cannot be mapped: a gate row needs both directions, and
  writing 0 (or the other direction) for the missing one would state
  something the system never counted.

Nothing else is allowed: a misspelt key, a missing key, an unknown time
zone, a bad interval, a column named twice (two gates, or entries = exits,
or a count column that is also the date or hour column) or a gate mapped
twice makes :func:`load_mapping` raise ``ValueError`` with a sentence naming
the file and the key and saying what to write.

The CSV
-------
UTF-8 (or the mapping's ``encoding``), with or without a byte-order mark,
LF or CRLF line ends, quoted fields as spreadsheets write them.  The header
is the first row that contains the date column (rows before it — a title —
are skipped and noted); header names are compared with surrounding spaces
removed, otherwise exactly.  If a mapped column is missing, or appears
twice, the whole file is refused with one reject that lists the missing
columns and the columns found.  Columns the mapping does not name are not
read and are listed in one note.  Blank rows are skipped (noted).

Counts
------
A count is a whole number of people: ``16``, ``16.0`` and ``+16`` are 16.
``16.5``, ``-3``, ``abc`` and numbers with thousands separators (``1 234``,
``1.234``, ``1,234``) are refused — a separator cannot be told from a
decimal mark, and counts of one gate in one hour rarely reach a thousand,
so export plain digits.  An empty cell is "no count", never 0.  A refused
or empty cell refuses that gate's row for that hour (one reject naming the
row, the column, the value and what is wrong); the other gates of the row
are kept.

Time
----
``event_time`` is the END of the counting interval, in UTC (the ``gate``
schema's ``interval_s`` is the counting interval ending at ``event_time``),
and ``interval_s`` the interval in seconds.  Local times become UTC with
the mapping's zone (Python's ``zoneinfo``):

* a local time that does not exist (clocks went forward; e.g. 02:00 on
  2026-03-29 in Europe/Berlin) refuses the row with a reason: the counting
  system does not keep that zone's time, or wrote a placeholder;
* a local time that occurs twice (clocks went back; 02:00 on 2025-10-26 in
  Europe/Berlin) and is given twice in the file: the first row is the
  earlier instant (before the change), the second the later one.  Given
  once: the earlier instant is assumed and a note says so.  A third row
  for it is refused;
* any other local time given in two rows: the second row is refused.

A spring-forward day therefore gives 23 hourly rows per gate and a
fall-back day 25.  Rows are taken in file order for the repeated hour; a
file sorted newest first would need sorting before it is loaded.

``event_id`` is ``<gate_id>@<event_time in UTC ISO>``, e.g.
``gate-tower_base-0001@2026-03-28T23:00:00.000Z``: the same file ingested
again gives the same ids, so its rows are counted as duplicates, not added
a second time.  ``source`` is the given source, ``"counts-csv"`` by
default.

Bad data never raises: every data row ends up as rows, as rejects with a
sentence saying what is wrong and where (``row N`` is the row's line in the
file, as a spreadsheet numbers it), or in a note.
"""
from __future__ import annotations

import codecs
import csv
import difflib
import io
import os
import re
import tomllib
from dataclasses import dataclass, field
from datetime import datetime, time, timedelta, timezone
from zoneinfo import ZoneInfo

from .base import Collector, Parsed, iso, plural

__all__ = ["CountsMapping", "GateColumns", "load_mapping", "loads_mapping", "parse", "DEFAULT_SOURCE"]

DEFAULT_SOURCE = "counts-csv"
_UTC = timezone.utc
_DAY_MIN = 24 * 60
_INT32_MAX = 2**31 - 1
_HEADER_SEARCH = 50          # rows searched for the header (title rows above it are skipped)
_DELIMITERS = (",", ";", "\t", "|")

_TOP_KEYS = ("timezone", "date_column", "date_format", "hour_column", "hour_labels", "interval",
             "delimiter", "encoding", "gate")
_GATE_KEYS = ("gate_id", "zone_id", "entries", "exits")
_HINT = {
    "timezone": 'timezone = "Asia/Shanghai" (the IANA name of the zone the counting system keeps)',
    "date_column": 'date_column = "Date" (the header of the date column)',
    "date_format": 'date_format = "%d/%m/%Y" (a strptime format giving day, month and year)',
    "hour_column": 'hour_column = "Hour" (the header of the hour column)',
    "hour_labels": 'hour_labels = "start" (hours name the start of their interval) or "end" '
                   '(hours 1-24 name its end)',
    "interval": 'interval = "1h" (or "15min", "30min", "2h", "900s": whole minutes that divide a day)',
    "delimiter": 'delimiter = ";" (one character, or "tab"), or leave it out to detect it',
    "encoding": 'encoding = "utf-8" (or e.g. "gb18030")',
    "gate": "one [[gate]] table per gate (double brackets), each with gate_id, zone_id, entries "
            "and exits",
    "gate_id": 'gate_id = "gate-tower_base-0001" (the inventory id of the gate)',
    "zone_id": 'zone_id = "tower_base" (the inventory id of the gate\'s management zone)',
    "entries": 'entries = "Sensor 12 In" (the CSV column of people entering)',
    "exits": 'exits = "Sensor 12 Out" (the CSV column of people leaving)',
}


# --- the mapping -------------------------------------------------------------

@dataclass(frozen=True)
class GateColumns:
    """One ``[[gate]]`` of the mapping: which columns count which gate."""

    gate_id: str
    zone_id: str
    entries: str   # CSV column of people entering
    exits: str     # CSV column of people leaving


@dataclass(frozen=True)
class CountsMapping:
    """A checked mapping file (see the module docstring)."""

    timezone: str
    date_column: str
    gates: tuple[GateColumns, ...]
    date_format: str = "%Y-%m-%d"
    hour_column: str | None = None
    hour_labels: str = "start"          # "start" | "end"
    interval_s: int = 3600
    delimiter: str | None = None        # None: detected
    encoding: str = "utf-8"
    origin: str = "<mapping>"           # the file it was read from, for messages
    zone: ZoneInfo = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "zone", ZoneInfo(self.timezone))

    def columns(self) -> list[str]:
        """Every CSV column the mapping reads, date and hour first."""
        cols = [self.date_column] + ([self.hour_column] if self.hour_column else [])
        for g in self.gates:
            cols += [g.entries, g.exits]
        return cols


def load_mapping(path: str | os.PathLike[str]) -> CountsMapping:
    """Read and check a TOML mapping file; ``ValueError`` with a sentence
    naming the file and the key when it is unreadable or wrong."""
    name = os.fspath(path)
    try:
        with open(name, "rb") as fh:
            data = fh.read()
    except OSError as exc:
        raise ValueError(f"{name}: the mapping file cannot be read ({exc.strerror or exc}); "
                         "give the path of a TOML mapping file") from exc
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise ValueError(f"{name}: the mapping file is not UTF-8 text (byte {exc.start}); "
                         "save it as UTF-8") from exc
    return loads_mapping(text, name)


def loads_mapping(text: str, origin: str = "<mapping>") -> CountsMapping:
    """:func:`load_mapping` of TOML text; ``origin`` names it in messages."""
    try:
        doc = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ValueError(f"{origin}: the mapping file is not valid TOML ({exc}); write "
                         'key = "value" lines and [[gate]] tables') from exc
    return _checked(doc, origin)


def _bad(origin: str, key: str, problem: str, where: str = "") -> ValueError:
    at = f" of {where}" if where else ""
    return ValueError(f"{origin}: key '{key}'{at} {problem}; write {_HINT[key]}.")


def _unknown_keys(origin: str, got, allowed: tuple[str, ...], where: str = "") -> None:
    for key in got:
        if key not in allowed:
            close = difflib.get_close_matches(str(key), allowed, n=1)
            hint = f"did you mean '{close[0]}'? " if close else ""
            raise ValueError(f"{origin}: unknown key '{key}'{' in ' + where if where else ''}; "
                             f"{hint}write one of the keys allowed "
                             f"{'in a [[gate]]' if where else 'at the top'} ({', '.join(allowed)}) "
                             "or remove it.")


def _text(doc: dict, origin: str, key: str, *, required: bool, default=None, where: str = ""):
    if key not in doc:
        if required:
            raise _bad(origin, key, "is missing", where)
        return default
    v = doc[key]
    if not isinstance(v, str):
        raise _bad(origin, key, f"must be text in double quotes, not {v!r}", where)
    if not v.strip():
        raise _bad(origin, key, "is empty", where)
    return v


_INTERVAL = re.compile(r"\s*(\d+)\s*(h|hr|hrs|hours?|m|min|mins|minutes?|s|sec|secs|seconds?)\s*\Z",
                       re.IGNORECASE)


def _interval_s(text: str, origin: str) -> int:
    m = _INTERVAL.match(text)
    if not m:
        raise _bad(origin, "interval", f"is {text!r}, which is not a number with a unit h, min or s")
    n, unit = int(m.group(1)), m.group(2).lower()
    seconds = n * (3600 if unit.startswith("h") else 60 if unit.startswith("m") else 1)
    if not 60 <= seconds <= 86_400 or seconds % 60 or (_DAY_MIN % (seconds // 60)):
        raise _bad(origin, "interval", f"is {text!r}: a counting interval must be whole minutes "
                                       "that divide a day, from 1 min to 24 h")
    return seconds


def _checked(doc: dict, origin: str) -> CountsMapping:
    _unknown_keys(origin, doc, _TOP_KEYS, "")
    tz = _text(doc, origin, "timezone", required=True).strip()
    try:
        ZoneInfo(tz)
    except Exception:  # ZoneInfoNotFoundError, ValueError (bad path), IsADirectoryError …
        raise _bad(origin, "timezone", f"names no time zone known here ({tz!r})") from None
    date_column = _text(doc, origin, "date_column", required=True).strip()
    date_format = _text(doc, origin, "date_format", required=False, default="%Y-%m-%d")
    hour_column = _text(doc, origin, "hour_column", required=False)
    hour_column = hour_column.strip() if hour_column else None
    sample = datetime(2026, 11, 28, 21, 45)
    try:
        back = datetime.strptime(sample.strftime(date_format), date_format)
    except ValueError:
        back = None
    if back is None or back.date() != sample.date():
        raise _bad(origin, "date_format", f"({date_format!r}) does not give the full date: day, "
                                          "month and year")
    if hour_column is None and back.hour != sample.hour:
        raise ValueError(f"{origin}: key 'hour_column' is missing and date_format ({date_format!r}) "
                         f"holds no hour; write {_HINT['hour_column']}, or put the time in "
                         'date_format, e.g. date_format = "%Y-%m-%d %H:%M".')
    labels = _text(doc, origin, "hour_labels", required=False, default="start").strip()
    if labels not in ("start", "end"):
        raise _bad(origin, "hour_labels", f"is {labels!r}, neither \"start\" nor \"end\"")
    interval = doc.get("interval", "1h")
    if not isinstance(interval, str):
        raise _bad(origin, "interval", f"must be text in double quotes with a unit, not {interval!r}")
    interval_s = _interval_s(interval, origin)
    delimiter = _text(doc, origin, "delimiter", required=False)
    if delimiter is not None:
        delimiter = {"tab": "\t", "\\t": "\t"}.get(delimiter.lower(), delimiter)
        if len(delimiter) != 1 or delimiter.isalnum() or delimiter in '"\r\n ':
            raise _bad(origin, "delimiter", f"is {delimiter!r}, not one separator character")
    encoding = _text(doc, origin, "encoding", required=False, default="utf-8").strip()
    try:
        codecs.lookup(encoding)
    except LookupError:
        raise _bad(origin, "encoding", f"names no text encoding known here ({encoding!r})") from None

    gates_doc = doc.get("gate")
    if gates_doc is None:
        raise _bad(origin, "gate", "is missing: no gate is mapped")
    if not isinstance(gates_doc, list) or not gates_doc or not all(isinstance(g, dict) for g in gates_doc):
        raise _bad(origin, "gate", "must be a list of tables")
    gates: list[GateColumns] = []
    used: dict[str, str] = {date_column: "'date_column'"}
    if hour_column:
        if hour_column == date_column:
            raise _bad(origin, "hour_column", f"names the date column ({hour_column!r}) again")
        used[hour_column] = "'hour_column'"
    seen_ids: dict[str, int] = {}
    for i, g in enumerate(gates_doc, 1):
        where = f"[[gate]] {i}"
        _unknown_keys(origin, g, _GATE_KEYS, where)
        if "entries" in g and "exits" not in g or "exits" in g and "entries" not in g:
            has, lacks = ("entries", "exits") if "entries" in g else ("exits", "entries")
            raise ValueError(
                f"{origin}: key '{lacks}' of {where} is missing (it has only {has}); a gate "
                "row needs both directions and the twin will not invent the one the system does "
                f"not count; write {_HINT[lacks]}, or leave a gate counted in one direction out "
                "of the mapping.")
        vals = {k: _text(g, origin, k, required=True, where=where).strip() for k in _GATE_KEYS}
        if vals["gate_id"] in seen_ids:
            raise ValueError(f"{origin}: key 'gate_id' of {where} maps gate {vals['gate_id']!r} a second "
                             f"time (first in [[gate]] {seen_ids[vals['gate_id']]}); write one "
                             "[[gate]] per gate.")
        seen_ids[vals["gate_id"]] = i
        for k in ("entries", "exits"):
            col = vals[k]
            if col in used:
                raise ValueError(f"{origin}: key '{k}' of {where} names the column {col!r}, which "
                                 f"key {used[col]} already names; every count column is read for one "
                                 "gate and one direction only: write the column of this gate's "
                                 f"{'people entering' if k == 'entries' else 'people leaving'}.")
            used[col] = f"'{k}' of {where}"
        gates.append(GateColumns(**vals))
    return CountsMapping(timezone=tz, date_column=date_column, gates=tuple(gates),
                         date_format=date_format, hour_column=hour_column, hour_labels=labels,
                         interval_s=interval_s, delimiter=delimiter, encoding=encoding, origin=origin)


# --- reading the CSV ---------------------------------------------------------

@dataclass
class _Record:
    line: int            # first line of the record in the file (1-based)
    raw: str             # its text
    cells: list[str]


class _Tape:
    """Lines for csv.reader that remembers the ones the current record used."""

    def __init__(self, text: str):
        self._lines = iter(io.StringIO(text, newline=""))
        self.taken: list[str] = []
        self.consumed = 0

    def __iter__(self):
        return self

    def __next__(self) -> str:
        line = next(self._lines)
        self.taken.append(line)
        self.consumed += 1
        return line


def _records(text: str, delimiter: str, c: Collector | None, limit: int | None = None):
    tape = _Tape(text)
    reader = csv.reader(tape, delimiter=delimiter)
    n = 0
    while limit is None or n < limit:
        try:
            cells = next(reader)
        except StopIteration:
            return
        except csv.Error as exc:
            first = tape.consumed - len(tape.taken) + 1
            if c is not None:
                c.reject("".join(tape.taken), f"row {first} cannot be read as CSV ({exc})", f"row {first}")
            tape.taken.clear()
            continue
        first = tape.consumed - len(tape.taken) + 1
        raw = "".join(tape.taken).rstrip("\r\n")
        tape.taken.clear()
        n += 1
        yield _Record(first, raw, cells)


def _blank(cells: list[str]) -> bool:
    return not any(x.strip() for x in cells)


def _pick_delimiter(text: str, wanted: set[str]) -> str:
    best, best_score = ",", (-1, -1)
    for d in _DELIMITERS:
        found, width = 0, 0
        for rec in _records(text, d, None, _HEADER_SEARCH):
            if _blank(rec.cells):
                continue
            names = {x.strip() for x in rec.cells}
            found = max(found, len(names & wanted))
            width = max(width, len(rec.cells))
        if (found, width) > best_score:
            best, best_score = d, (found, width)
    return best


# --- cells ---------------------------------------------------------------------

_INT = re.compile(r"\+?(\d+)(?:\.0*)?\Z")
_NEG = re.compile(r"[-\u2212]\s*\d+(?:[.,]\d*)?\Z")
_GROUPED = re.compile(r"\d{1,3}(?:[ \u00a0\u202f,.'\u2019]\d{3})+\Z")
_DECIMAL = re.compile(r"\d*[.,]\d+\Z")


def _count(text: str) -> tuple[int | None, str]:
    """(count, "") or (None, what is wrong)."""
    s = text.strip()
    if not s:
        return None, "the cell is empty: no count for this interval (an empty cell is not read as 0)"
    m = _INT.match(s)
    if m:
        n = int(m.group(1))
        if n > _INT32_MAX:
            return None, "the count is too large to be a number of people"
        return n, ""
    if _NEG.match(s):
        return None, "a count of people cannot be negative"
    if _GROUPED.match(s):
        return None, ("thousands separators (or a decimal mark) are not read: a count is a whole "
                      "number written in plain digits")
    if _DECIMAL.match(s):
        return None, "a count of people must be a whole number"
    return None, "this is not a number"


_HHMM = r"(\d{1,2}):(\d{2})(?::(\d{2}))?"
_HOUR_INT = re.compile(r"(\d{1,2})(?:\.0+)?\Z")
_HOUR_TIME = re.compile(_HHMM + r"\Z")
_HOUR_RANGE = re.compile(_HHMM + r"\s*(?:-|\u2013|\u2014|to)\s*" + _HHMM + r"\Z", re.IGNORECASE)


def _minutes(h: str, m: str, s: str | None) -> int | None:
    hh, mm = int(h), int(m)
    if mm > 59 or (s is not None and int(s) != 0) or hh > 24 or (hh == 24 and mm):
        return None
    return hh * 60 + mm


class _BadRow(Exception):
    def __init__(self, column: str | None, reason: str):
        super().__init__(reason)
        self.column, self.reason = column, reason


def _hour_start(cell: str, m: CountsMapping) -> int:
    """Minutes after local midnight of the start of the interval the hour
    cell names (negative when it starts the day before, end labels)."""
    col = m.hour_column
    s = cell.strip()
    step = m.interval_s // 60
    if not s:
        raise _BadRow(col, f"the hour cell (column {col!r}) is empty")
    r = _HOUR_RANGE.match(s)
    if r:
        a, b = _minutes(*r.group(1, 2, 3)), _minutes(*r.group(4, 5, 6))
        if a is None or b is None or a >= _DAY_MIN:
            raise _BadRow(col, f"the hour {s!r} (column {col!r}) is not a time range within a day")
        length = (b - a) % _DAY_MIN or _DAY_MIN
        if length != step:
            raise _BadRow(col, f"the hour range {s!r} (column {col!r}) lasts {length} min but the "
                               f"mapping's interval is {step} min")
        return a
    i = _HOUR_INT.match(s)
    t = _HOUR_TIME.match(s)
    if i:
        v = int(i.group(1)) * 60
        if v > _DAY_MIN:
            v = None
    elif t:
        v = _minutes(*t.group(1, 2, 3))
    else:
        raise _BadRow(col, f"the hour {s!r} (column {col!r}) is neither an hour 0-23, a time HH:MM "
                           "nor a range HH:MM-HH:MM")
    if v is None:
        raise _BadRow(col, f"the hour {s!r} (column {col!r}) is not a time of day")
    if m.hour_labels == "end":
        if v == 0:
            raise _BadRow(col, f"the hour {s!r} (column {col!r}) ends no interval of this date: "
                               "with hour_labels = \"end\" the interval ending at midnight is "
                               "written 24 (or 24:00)")
        return v - step
    return v  # 24 (start labels) is refused for the whole file before we get here


def _is_24(cell: str) -> bool:
    s = cell.strip()
    i, t = _HOUR_INT.match(s), _HOUR_TIME.match(s)
    return bool(i and int(i.group(1)) == 24) or bool(t and _minutes(*t.group(1, 2, 3)) == _DAY_MIN)


def _local_start(rec_cells: list[str], idx: dict[str, int], m: CountsMapping) -> datetime:
    dcell = rec_cells[idx[m.date_column]].strip()
    if not dcell:
        raise _BadRow(m.date_column, f"the date cell (column {m.date_column!r}) is empty")
    try:
        when = datetime.strptime(dcell, m.date_format)
    except ValueError:
        raise _BadRow(m.date_column, f"the date {dcell!r} (column {m.date_column!r}) does not match "
                                     f"date_format {m.date_format!r}") from None
    if m.hour_column is None:
        if m.hour_labels == "end":
            return when - timedelta(seconds=m.interval_s)
        return when
    if when.time() != time(0):
        raise _BadRow(m.date_column, f"the date {dcell!r} (column {m.date_column!r}) carries a time "
                                     f"of day ({when:%H:%M}) as well as the hour column")
    start = _hour_start(rec_cells[idx[m.hour_column]], m)
    return datetime.combine(when.date(), time(0)) + timedelta(minutes=start)


def _offset(t: datetime) -> str:
    off = t.utcoffset() or timedelta(0)
    sign = "-" if off < timedelta(0) else "+"
    minutes = abs(int(off.total_seconds())) // 60
    return f"{sign}{minutes // 60:02d}:{minutes % 60:02d}"


def _zone_label(t: datetime) -> str:
    name = t.tzname() or ""
    off = _offset(t)
    return off if name.replace(":", "") in (off, off.replace(":", ""), off[:3]) else f"{name} {off}"


# --- parse ---------------------------------------------------------------------

def parse(data: bytes | str, mapping: CountsMapping, source: str | None = None) -> Parsed:
    """Parse one counts CSV with ``mapping`` into ``gate`` rows.

    Never raises on bad data: what cannot be read becomes a reject, what is
    skipped or assumed a note (see the module docstring)."""
    c = Collector(source or DEFAULT_SOURCE)
    try:
        _parse(data, mapping, c)
    except Exception as exc:  # a bug here must not stop the feed: report it as a reject
        c.reject(data if isinstance(data, (bytes, str)) else repr(data),
                 f"the counts-csv adapter failed unexpectedly ({type(exc).__name__}: {exc}); "
                 "the file was not loaded", "payload")
        c.rows.clear()
    return c.result()


def _decode(data: bytes | str, m: CountsMapping, c: Collector) -> str | None:
    if isinstance(data, str):
        return data.lstrip("\ufeff")
    enc = codecs.lookup(m.encoding).name
    try:
        text = bytes(data).decode("utf-8-sig" if enc == "utf-8" else enc)
    except UnicodeDecodeError as exc:
        hint = (' (a file saved by a Chinese Excel is often GBK: write encoding = "gb18030" in the '
                "mapping)") if enc == "utf-8" else ""
        c.reject(data, f"the file is not {m.encoding} text (byte {exc.start}){hint}", "payload")
        return None
    return text.lstrip("\ufeff")


def _parse(data: bytes | str, m: CountsMapping, c: Collector) -> None:
    text = _decode(data, m, c)
    if text is None:
        return
    if not text.strip():
        c.reject(data, "the file is empty", "payload")
        return
    wanted = set(m.columns())
    delimiter = m.delimiter or _pick_delimiter(text, wanted)
    records = list(_records(text, delimiter, c))

    # the header: the first row naming the date column (a title above it is skipped)
    header_at = None
    for k, rec in enumerate(records[:_HEADER_SEARCH]):
        if m.date_column in (x.strip() for x in rec.cells):
            header_at = k
            break
    if header_at is None:
        header_at = next((k for k, r in enumerate(records) if not _blank(r.cells)), None)
        if header_at is None:
            c.reject(data, "the file holds no rows", "payload")
            return
    header = records[header_at]
    before = [r for r in records[:header_at] if not _blank(r.cells)]
    if before:
        c.note(f"{plural(len(before), 'row')} above the header (row {header.line}) skipped: "
               + "; ".join(repr(r.raw[:80]) for r in before[:3]) + (" …" if len(before) > 3 else ""))
    names = [x.strip() for x in header.cells]
    positions: dict[str, list[int]] = {}
    for p, name in enumerate(names):
        positions.setdefault(name, []).append(p)
    missing = [col for col in m.columns() if col not in positions]
    twice = [col for col in m.columns() if len(positions.get(col, ())) > 1]
    if missing or twice:
        problems = []
        if missing:
            hints = []
            for col in missing:
                close = difflib.get_close_matches(col, [n for n in names if n], n=1, cutoff=0.75)
                hints.append(f"{col!r}" + (f" (is it {close[0]!r}?)" if close else ""))
            problems.append(f"the header lacks the mapped column{'s' if len(missing) > 1 else ''} "
                            + ", ".join(hints))
        if twice:
            problems.append("the mapped column" + ("s " if len(twice) > 1 else " ")
                            + ", ".join(f"{col!r} (columns {', '.join(str(p + 1) for p in positions[col])})"
                                        for col in twice)
                            + (" appear" if len(twice) > 1 else " appears") + " more than once")
        found = ", ".join(repr(n) for n in names) or "none"
        delim = {"\t": "tab"}.get(delimiter, repr(delimiter))
        c.reject(header.raw, "the file was not loaded: " + "; ".join(problems)
                 + f". Columns found (separator {delim}): {found}. Mapped column names must match "
                 f"the header exactly (case and inner spaces included); fix the mapping "
                 f"({m.origin}) or the file", f"row {header.line} (header)")
        return
    idx = {name: ps[0] for name, ps in positions.items()}
    extra = [(p, n) for p, n in enumerate(names) if n not in wanted]
    width = len(names)
    while width and not names[width - 1]:     # trailing unnamed columns (a trailing separator)
        width -= 1
    named_extra = [n for p, n in extra if n]
    unnamed_extra = [p + 1 for p, n in extra if not n and p < width]
    if named_extra or unnamed_extra:
        listed = [repr(n) for n in named_extra] + [f"an unnamed column ({p})" for p in unnamed_extra]
        c.note(f"{plural(len(listed), 'column')} of the file not in the mapping "
               f"{'was' if len(listed) == 1 else 'were'} not read: " + ", ".join(listed))

    # pass 1: the local start of every data row
    rows: list[tuple[_Record, datetime]] = []
    blank = 0
    body = records[header_at + 1:]
    if m.hour_column and m.hour_labels == "start":
        hcol = idx[m.hour_column]
        late = next((r for r in body if len(r.cells) > hcol and _is_24(r.cells[hcol])), None)
        if late is not None:
            c.reject(late.raw, f"the file was not loaded: row {late.line} gives hour "
                     f"{late.cells[hcol].strip()!r} in column {m.hour_column!r}, so the counting "
                     "system names each interval by its end (hours 1-24) and reading the hours as "
                     f"starts would put every count one interval early; write hour_labels = \"end\" "
                     f"in the mapping ({m.origin})", f"row {late.line}, column {m.hour_column!r}")
            return
    for rec in body:
        if _blank(rec.cells):
            blank += 1
            continue
        cells = rec.cells
        if len(cells) > len(names) and not _blank(cells[len(names):]):
            c.reject(rec.raw, f"row {rec.line} has {len(cells)} fields but the header has "
                     f"{len(names)}, so its cells cannot be matched to columns safely", f"row {rec.line}")
            continue
        if len(cells) < width:
            c.reject(rec.raw, f"row {rec.line} has {len(cells)} fields but the header has "
                     f"{width}, so its cells cannot be matched to columns safely", f"row {rec.line}")
            continue
        cells = cells + [""] * (len(names) - len(cells))
        rec.cells = cells
        try:
            start = _local_start(cells, idx, m)
        except _BadRow as bad:
            c.reject(rec.raw, f"row {rec.line}: {bad.reason}", f"row {rec.line}, column {bad.column!r}")
            continue
        rows.append((rec, start))
    if blank:
        c.note(f"{plural(blank, 'blank row')} skipped")
    if not rows and not c.rejects:
        c.note("the file has a header but no data rows")

    # pass 2: local -> UTC (DST), then one gate row per gate
    zone, tzname = m.zone, m.timezone
    step = timedelta(seconds=m.interval_s)
    given: dict[datetime, list[int]] = {}
    for rec, start in rows:
        given.setdefault(start, []).append(rec.line)
    seen: dict[datetime, list[int]] = {}
    for rec, start in rows:
        unit = "hour" if start.minute == 0 else "time"
        label = f"row {rec.line} ({start:%Y-%m-%d %H:%M} {tzname})"
        where = f"row {rec.line}"
        early = start.replace(tzinfo=zone, fold=0)
        later = start.replace(tzinfo=zone, fold=1)
        u0, u1 = early.astimezone(_UTC), later.astimezone(_UTC)
        real0 = u0.astimezone(zone).replace(tzinfo=None) == start
        real1 = u1.astimezone(zone).replace(tzinfo=None) == start
        earlier = seen.setdefault(start, [])
        if not (real0 or real1):
            gap = abs(u0 - u1)
            c.reject(rec.raw, f"{label}: this local {unit} does not exist: clocks went forward by "
                     f"{_span(gap)} that day ({_zone_label(early)} to {_zone_label(later)}), so "
                     f"nobody can have been counted at this {unit} in {tzname} time; the counting "
                     "system keeps another time (check its clock setting, or the mapping's "
                     "timezone) or wrote a placeholder row", where)
            continue
        if u0 != u1:                       # occurs twice: clocks went back
            if len(earlier) >= 2:
                c.reject(rec.raw, f"{label}: this local {unit} occurs twice that day (clocks went "
                         f"back) and rows {earlier[0]} and {earlier[1]} already gave it; a third "
                         "row cannot be placed", where)
                continue
            first = not earlier
            earlier.append(rec.line)
            t0 = u0 if first else u1
            if first and len(given[start]) == 1:
                c.note(f"{label}: this local {unit} occurs twice (clocks went back from "
                       f"{_zone_label(early)} to {_zone_label(later)}) and the file gives it once; "
                       f"the first occurrence ({_zone_label(early)}, starting {iso(u0)}) was assumed")
        else:
            if earlier:
                c.reject(rec.raw, f"{label}: this local {unit} was already given in row "
                         f"{earlier[0]}; each interval is counted once, so this row was not read "
                         "(remove the repeated row)", where)
                continue
            earlier.append(rec.line)
            t0 = u0
        end = t0 + step
        for g in m.gates:
            values, problems = {}, []
            for k, col in (("entries", g.entries), ("exits", g.exits)):
                cell = rec.cells[idx[col]]
                n, why = _count(cell)
                if n is None:
                    problems.append((col, f"column {col!r} = {cell.strip()!r}: {why}"))
                values[k] = n
            if problems:
                c.reject(rec.raw, f"{label}, gate {g.gate_id}: " + "; ".join(p for _, p in problems)
                         + "; this gate's row for this interval was not loaded",
                         f"{where}, column{'s' if len(problems) > 1 else ''} "
                         + ", ".join(repr(col) for col, _ in problems))
                continue
            c.row("gate", event_id=f"{g.gate_id}@{iso(end)}", event_time=end, gate_id=g.gate_id,
                  zone_id=g.zone_id, entries=values["entries"], exits=values["exits"],
                  interval_s=m.interval_s)


def _span(d: timedelta) -> str:
    minutes = int(d.total_seconds()) // 60
    if minutes % 60 == 0:
        return plural(minutes // 60, "hour")
    return f"{minutes} min"

