"""GTFS-Realtime FeedMessage -> ``bus`` and ``warning`` rows.

Buses serving the scenic area publish GTFS-Realtime.  A FeedMessage is read
in any of the three forms agencies publish: binary protobuf; protobuf text
format (``.asciipb``, the form of the specification's own examples); and
JSON, the protobuf JSON mapping that agencies' "debug" endpoints and
validators emit — camelCase (``tripUpdate``, ``stopTimeUpdate``) or the
proto's own snake_case names, 64-bit integers as strings or numbers.

Mapping
-------
* **VehiclePosition** -> one ``bus`` row: ``vehicle_id`` is the vehicle
  descriptor's id (else its label), route/trip from the trip descriptor,
  ``stop_id`` the current stop, position/bearing/speed as sent (GTFS-RT
  speed is already m/s), ``occupancy_status`` the enum *name*
  (``MANY_SEATS_AVAILABLE``), ``occupancy_pct`` from
  ``occupancy_percentage`` when present.  A position of exactly 0,0 is the
  usual "no fix" placeholder and is left empty.
* **TripUpdate** -> one ``bus`` row per trip update carrying ``delay_s``:
  the first stop-time update's arrival delay, else its departure delay,
  else the trip update's own ``delay``; ``stop_id`` is that first
  stop-time update's stop.  A trip update names a trip, not necessarily a
  vehicle; without a vehicle descriptor ``vehicle_id`` is ``trip:<trip_id>``
  (noted).  Cancelled trips carry no delay and are counted in a note.
* **Alert** -> one ``warning`` row, the generic warning (signal "other")
  that CAP warnings of no Guangdong signal type also give: ``headline`` from
  ``header_text`` (Chinese first, then English, else the first translation;
  ``language`` says which), ``headline_en`` the English one; ``event`` the
  effect and cause (``effect_detail`` text when sent, else e.g.
  ``DETOUR (CONSTRUCTION)``); ``area`` the informed entities in words
  (``route 219; stop 16230; route 100 at stop 16299``, route names from the
  static GTFS when loaded); ``severity``/``colour`` from ``severity_level``
  as CAP's severity gives them (SEVERE severe/orange, WARNING
  moderate/yellow, INFO minor/blue, else unknown).  The schema has no
  description column: ``description_text`` goes, with the headline, into
  ``texts`` as JSON ``{language: {headline, description}}`` for every
  language the alert has.
  The active period is the one that holds the feed timestamp, else the next
  to come, else the last one; an alert without active_period is active from
  the feed timestamp on.  ``expires`` is the period's end.  ``event_time``
  is the feed timestamp (the period's start only when the header has
  none), as CAP rows take ``sent``, not ``onset``: a start days ago would
  make every re-fetch "late" for the ingest, and one more than a day ahead
  is refused as a future event; an alert not active yet is noted.  An
  alert whose periods have all ended is loaded with ``status``
  "cancelled", the schema's ended state; others are "issued".
  ``event_id`` is ``alert/<entity id>@<period start>/<feed timestamp>``:
  each fetch restates the alerts in force (the same file twice is a
  duplicate), and every row carries the alert's identity in
  ``cap_message`` (``gtfs-rt:<source>,alert/<entity id>,<period start>``),
  so the warnings fold a restated alert into one.  An alert that has ended
  refers to it (``references``); one that a full-dataset message no longer
  carries has ended too: ``scenic-twin ingest`` remembers the alerts in
  force per source and adds the rows that end the vanished ones
  (:func:`ended_alerts`).
* ``event_time`` of bus rows is the entity's own timestamp, else the header
  timestamp; a record with neither is rejected.  ``event_id`` is
  ``vehicle/<entity id>@<epoch s>`` or ``trip_update/<entity id>@<epoch s>``
  — stable across re-fetches of the same feed, so duplicates drop.

Checks (all three forms)
------------------------
Each defect of an entity is one sentence of that entity's Reject, located
at the first (``entity 'x'.trip_update.trip.start_date``); the entity gives
no row.  These follow the GTFS-Realtime reference validator:

* latitude outside -90..90 or longitude outside -180..180;
* a timestamp above 1e11 "looks like milliseconds": GTFS-RT times are
  POSIX seconds.  In the feed header this refuses the whole payload;
* a trip ``start_date`` that is not YYYYMMDD or no calendar date, a
  ``start_time`` that is not HH:MM:SS;
* stop-time updates out of stop_sequence order, or whose absolute
  arrival/departure times go backwards along it (a departure before the
  arrival at the same stop, or an arrival before the previous stop's
  departure).  Equal times are accepted: predictions rounded to the
  minute give them, though the validator flags them too;
* with a static GTFS (:mod:`indicators.feeds.gtfs_static`): a trip_id,
  route_id or stop_id the schedule does not have — trips the feed marks
  ADDED, UNSCHEDULED or NEW are new and not looked up.  Without one, the
  ids are not checked and a note says so.
"""
from __future__ import annotations

import json
import re
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from google.protobuf import json_format, text_format
from google.transit import gtfs_realtime_pb2 as rt

from indicators.feeds.schemas import NO_COLOUR, OTHER_WARNING
from indicators.feeds.validate import (BAD_TYPE, MISSING_FIELD, OUT_OF_RANGE, PARSE_ERROR,
                                       UNKNOWN_REFERENCE)

from .base import Collector, Parsed, Reject, epoch_seconds, plural, raw_text

TEXT_START = re.compile(r"\A\s*(?:#[^\n]*\n\s*)*(?:header|entity)\s*[{:<]")
JSON_START = re.compile(r'\A\s*\{[\s\S]{0,65536}?"(?:gtfs_?[rR]ealtime_?[vV]ersion|entity)"\s*:')
MS_THRESHOLD = 100_000_000_000  # 1e11 s is the year 5138; 1e11 ms is March 1973
_Vehicle = rt.VehiclePosition
_StopTimeUpdate = rt.TripUpdate.StopTimeUpdate
_CANCELED = rt.TripDescriptor.CANCELED
_NEW_TRIPS = {rt.TripDescriptor.ADDED, rt.TripDescriptor.UNSCHEDULED, rt.TripDescriptor.NEW}
_NOT_TIMED = {_StopTimeUpdate.SKIPPED, _StopTimeUpdate.NO_DATA}
_START_TIME = re.compile(r"\A\d{1,3}:[0-5]\d:[0-5]\d\Z")
# GTFS-RT severity_level -> CAP severity word (whose colour CAP's generic warnings use)
SEVERITY = {rt.Alert.SEVERE: "Severe", rt.Alert.WARNING: "Moderate", rt.Alert.INFO: "Minor",
            rt.Alert.UNKNOWN_SEVERITY: "Unknown"}
SEVERITY_COLOUR = {"Severe": "orange", "Moderate": "yellow", "Minor": "blue"}  # as cap.SEVERITY_COLOUR


def looks_like_json(data: bytes) -> bool:
    """Whether a payload is the JSON form of a FeedMessage (cheap: the
    first 64 KiB hold a ``gtfsRealtimeVersion`` or a top-level-looking
    ``entity`` key)."""
    head = bytes(data[:70_000]).decode("utf-8-sig", errors="ignore")
    return bool(JSON_START.match(head))


def parse(data: bytes, source: str | None = None, static=None) -> Parsed:
    """Rows of one FeedMessage.  ``static`` (a :class:`~indicators.feeds.
    gtfs_static.StaticGtfs`) turns on the id checks."""
    c = Collector(source or "gtfs-rt")
    feed = _decode(data, c)
    if feed is None:
        return c.result()
    if feed.header.timestamp > MS_THRESHOLD:
        c.reject(data, f"the feed header timestamp {feed.header.timestamp} looks like milliseconds, "
                 "GTFS-RT timestamps are POSIX seconds; nothing in the feed can be dated, so nothing "
                 "was loaded", "header.timestamp")
        return c.result()
    header_time = epoch_seconds(feed.header.timestamp)
    for i, entity in enumerate(feed.entity):
        where = f"entity '{entity.id}'" if entity.id else f"entity[{i}]"
        if entity.is_deleted:
            c.count("deleted", lambda n: f"{plural(n, 'entity', 'entities')} marked is_deleted skipped "
                                         "(incremental deletions are not applied to bus rows)")
            continue
        problems = _problems(entity, where, static)
        if problems:
            _reject(c, entity, where, problems)
            continue
        _entity(entity, where, header_time, static, c)
    if feed.entity and static is None:
        c.note("trip, route and stop ids were not checked: no static GTFS is loaded "
               "(scenic-twin gtfs load FILE.zip, or ingest --gtfs FILE.zip)")
    elif feed.entity:
        c.note(f"trip, route and stop ids checked against the static GTFS {static.source}")
    return c.result()


def _entity(entity: rt.FeedEntity, where: str, header_time, static, c: Collector) -> None:
    handled = False
    if entity.HasField("vehicle"):
        _vehicle(entity, where, header_time, c)
        handled = True
    if entity.HasField("trip_update"):
        _trip_update(entity, where, header_time, c)
        handled = True
    if entity.HasField("alert"):
        _alert(entity, where, header_time, static, c)
        handled = True
    if not handled:
        c.count("other", lambda n: f"{plural(n, 'entity', 'entities')} with neither vehicle, "
                                   "trip_update nor alert skipped")


# --------------------------------------------------------------------------- decoding
def _decode(data: bytes, c: Collector) -> rt.FeedMessage | None:
    """JSON when it looks like JSON; else binary first, text format second
    (one Reject naming both failures)."""
    try:
        text = bytes(data).decode("utf-8-sig")
    except UnicodeDecodeError:
        text = None
    if not data:
        c.reject(data, "the payload is empty, not a GTFS-Realtime FeedMessage", "payload")
        return None
    if text is not None and text.lstrip().startswith(("{", "[")):
        return _decode_json(text, c)
    errors = []
    if text is None or not TEXT_START.match(text):
        msg = rt.FeedMessage()
        try:
            msg.ParseFromString(bytes(data))
        except Exception as exc:  # DecodeError, or the C backend's own errors
            errors.append(f"as binary protobuf: {exc}")
        else:
            missing = msg.FindInitializationErrors()
            if not missing:
                return msg
            errors.append("as binary protobuf: missing required field(s) " + ", ".join(missing))
    if text is not None:
        msg = rt.FeedMessage()
        try:
            text_format.Parse(text, msg)
        except text_format.ParseError as exc:
            line = exc.GetLine()
            errors.append(f"as text format: {exc}")
            where = f"line {line}" if line else "payload"
            c.reject(data, "not a GTFS-Realtime FeedMessage — " + "; ".join(errors), where)
            return None
        return _complete(msg, text, "text", c)
    c.reject(data, "not a GTFS-Realtime FeedMessage — " + "; ".join(errors), "payload")
    return None


def _decode_json(text: str, c: Collector) -> rt.FeedMessage | None:
    """The protobuf JSON mapping; unknown fields (agency extensions) ignored."""
    try:
        doc = json.loads(text)
    except json.JSONDecodeError as exc:
        c.reject(text, f"not valid JSON: {exc.msg} at line {exc.lineno} column {exc.colno}",
                 f"line {exc.lineno}")
        return None
    except RecursionError:
        c.reject(text, "the JSON is nested too deeply to read", "payload")
        return None
    if not isinstance(doc, dict):
        c.reject(text, f"the JSON is a {type(doc).__name__}, not a GTFS-Realtime FeedMessage "
                 "(an object with header and entity)", "payload")
        return None
    msg = rt.FeedMessage()
    try:
        json_format.ParseDict(doc, msg, ignore_unknown_fields=True)
    except json_format.ParseError as exc:
        c.reject(text, f"the JSON is not a GTFS-Realtime FeedMessage: {exc}", _json_where(str(exc)))
        return None
    except (RecursionError, TypeError, ValueError) as exc:
        c.reject(text, f"the JSON is not a GTFS-Realtime FeedMessage: {exc}", "payload")
        return None
    return _complete(msg, text, "JSON", c)


def _json_where(message: str) -> str:
    """``entity[0].vehicle.position.latitude`` from a json_format error."""
    m = re.search(r" at FeedMessage\.?([\w\[\].]*?)\.*$", message)
    if m and m.group(1):
        return m.group(1)
    fields = re.findall(r"Failed to parse (\w+) field", message)
    return ".".join(fields) or "payload"


def _complete(msg: rt.FeedMessage, text: str, form: str, c: Collector) -> rt.FeedMessage | None:
    missing = msg.FindInitializationErrors()
    if missing:
        c.reject(text, f"GTFS-Realtime {form} is missing required field(s): " + ", ".join(missing),
                 missing[0])
        return None
    return msg


def _fragment(entity: rt.FeedEntity) -> str:
    return text_format.MessageToString(entity, as_utf8=True)


def _vehicle(entity: rt.FeedEntity, where: str, header_time, c: Collector) -> None:
    vp = entity.vehicle
    vehicle_id = vp.vehicle.id or vp.vehicle.label
    if not vehicle_id:
        c.reject(_fragment(entity), f"{where}: vehicle position has no vehicle id or label, "
                 "so it cannot be followed from one update to the next", where + ".vehicle")
        return
    t = epoch_seconds(vp.timestamp) or header_time
    if t is None:
        c.reject(_fragment(entity), f"{where}: vehicle '{vehicle_id}' has no timestamp and the "
                 "feed header has none either", where + ".vehicle.timestamp")
        return
    lon = lat = bearing = speed = None
    if vp.HasField("position"):
        p = vp.position
        lat, lon = float(p.latitude), float(p.longitude)  # range checked in _problems
        if lat == 0 and lon == 0:
            lat = lon = None
            c.count("zero", lambda n: f"{plural(n, 'vehicle position')} at exactly 0,0 "
                                      "(no fix) loaded without coordinates")
        bearing = float(p.bearing) if p.HasField("bearing") else None
        speed = float(p.speed) if p.HasField("speed") else None
    c.row(
        "bus",
        event_id=f"vehicle/{entity.id}@{int(t.timestamp())}",
        event_time=t,
        vehicle_id=vehicle_id,
        route_id=vp.trip.route_id or None,
        trip_id=vp.trip.trip_id or None,
        stop_id=vp.stop_id or None,
        lon=lon,
        lat=lat,
        bearing=bearing,
        speed_mps=speed,
        occupancy_status=(_Vehicle.OccupancyStatus.Name(vp.occupancy_status)
                          if vp.HasField("occupancy_status") else None),
        occupancy_pct=(float(vp.occupancy_percentage)
                       if vp.HasField("occupancy_percentage") else None),
        delay_s=None,
    )


def _trip_update(entity: rt.FeedEntity, where: str, header_time, c: Collector) -> None:
    tu = entity.trip_update
    trip_id = tu.trip.trip_id or None
    if tu.trip.schedule_relationship == _CANCELED:
        c.count("canceled", lambda n: f"{plural(n, 'cancelled trip')} in trip updates "
                                      "(no delay to load)")
        return
    vehicle_id = tu.vehicle.id or tu.vehicle.label
    if not vehicle_id:
        if trip_id is None:
            c.reject(_fragment(entity), f"{where}: trip update names neither a vehicle nor a "
                     "trip_id", where + ".trip_update.trip")
            return
        vehicle_id = f"trip:{trip_id}"
        c.count("no-vehicle", lambda n: f"{plural(n, 'trip update')} without a vehicle "
                                        "descriptor: vehicle_id set to 'trip:<trip_id>'")
    t = epoch_seconds(tu.timestamp) or header_time
    if t is None:
        c.reject(_fragment(entity), f"{where}: trip update has no timestamp and the feed "
                 "header has none either", where + ".trip_update.timestamp")
        return
    delay, stop_id = _first_delay(tu)
    c.row(
        "bus",
        event_id=f"trip_update/{entity.id}@{int(t.timestamp())}",
        event_time=t,
        vehicle_id=vehicle_id,
        route_id=tu.trip.route_id or None,
        trip_id=trip_id,
        stop_id=stop_id,
        delay_s=delay,
    )


def _first_delay(tu: rt.TripUpdate) -> tuple[int | None, str | None]:
    """Delay (s, positive = late) and stop of the first stop-time update."""
    stop_id = None
    if tu.stop_time_update:
        first = tu.stop_time_update[0]
        stop_id = first.stop_id or None
        if first.schedule_relationship != _StopTimeUpdate.NO_DATA:
            for event in ("arrival", "departure"):
                if first.HasField(event) and getattr(first, event).HasField("delay"):
                    return getattr(first, event).delay, stop_id
    if tu.HasField("delay"):
        return tu.delay, stop_id
    return None, stop_id


# --------------------------------------------------------------------------- checks
@dataclass(frozen=True)
class CodedReject(Reject):
    """A Reject with the dead-letter reason code it belongs under (the
    ingestor otherwise guesses one from the sentence)."""

    code: str = PARSE_ERROR


Problem = tuple[str, str, str]  # (locator, sentence, reason code)


def _reject(c: Collector, entity: rt.FeedEntity, where: str, problems: list[Problem]) -> None:
    """One Reject for the entity listing every problem, located at the first."""
    reason = f"{where}: " + "; ".join(text for _, text, _ in problems)
    c.rejects.append(CodedReject(raw=raw_text(_fragment(entity)), reason=reason, where=problems[0][0],
                                 code=problems[0][2]))


def _problems(entity: rt.FeedEntity, where: str, static) -> list[Problem]:
    """(locator, sentence, code) of every defect of one entity; empty when sound."""
    out: list[Problem] = []
    if entity.HasField("vehicle"):
        vp, at = entity.vehicle, where + ".vehicle"
        out += _position(vp, at)
        out += _timestamp(vp.timestamp, at + ".timestamp")
        out += _trip(vp.trip, at + ".trip", static)
        out += _ids(static, at, stop_id=vp.stop_id)
    if entity.HasField("trip_update"):
        tu, at = entity.trip_update, where + ".trip_update"
        out += _timestamp(tu.timestamp, at + ".timestamp")
        out += _trip(tu.trip, at + ".trip", static)
        out += _stop_times(tu, at, static)
    if entity.HasField("alert"):
        out += _alert_problems(entity.alert, where + ".alert", static)
    return out


def _position(vp: rt.VehiclePosition, at: str) -> list[Problem]:
    if not vp.HasField("position"):
        return []
    lat, lon = vp.position.latitude, vp.position.longitude
    if -90 <= lat <= 90 and -180 <= lon <= 180:
        return []
    name = vp.vehicle.id or vp.vehicle.label
    return [(at + ".position", f"vehicle '{name}' position lat {lat:g}, lon {lon:g} is outside "
                               "WGS 84 range (latitude -90..90, longitude -180..180)", OUT_OF_RANGE)]


def _timestamp(value: int, at: str) -> list[Problem]:
    if value > MS_THRESHOLD:
        return [(at, f"{at.rpartition('.')[2]} {value} looks like milliseconds, "
                     "GTFS-RT timestamps are POSIX seconds", OUT_OF_RANGE)]
    return []


def _trip(trip: rt.TripDescriptor, at: str, static) -> list[Problem]:
    out = []
    if trip.HasField("start_date") and not _is_date(trip.start_date):
        out.append((at + ".start_date", f"trip start_date '{trip.start_date}' is not a calendar date "
                                        "written YYYYMMDD", BAD_TYPE))
    if trip.HasField("start_time") and not _START_TIME.match(trip.start_time):
        out.append((at + ".start_time", f"trip start_time '{trip.start_time}' is not HH:MM:SS", BAD_TYPE))
    new = trip.schedule_relationship in _NEW_TRIPS
    return out + _ids(static, at, trip_id=None if new else trip.trip_id, route_id=trip.route_id)


def _is_date(text: str) -> bool:
    if len(text) != 8 or not text.isdigit():
        return False
    try:
        datetime.strptime(text, "%Y%m%d")
    except ValueError:
        return False
    return True


def _ids(static, at: str, *, trip_id=None, route_id=None, stop_id=None) -> list[Problem]:
    """Ids the static GTFS does not have (no check without one)."""
    if static is None:
        return []
    out = []
    for name, value, known, file in (("trip_id", trip_id, static.trip_ids, "trips.txt"),
                                     ("route_id", route_id, static.routes, "routes.txt"),
                                     ("stop_id", stop_id, static.stop_ids, "stops.txt")):
        if value and value not in known:
            out.append((f"{at}.{name}", f"{name} '{value}' is not in the static GTFS ({file})",
                        UNKNOWN_REFERENCE))
    return out


def _stop_times(tu: rt.TripUpdate, at: str, static) -> list[Problem]:
    """Timestamps, ids and order of the stop-time updates."""
    out = []
    previous = None  # (label, latest time, which event) of the previous timed stop
    last_seq = None
    for k, stu in enumerate(tu.stop_time_update):
        here = f"{at}.stop_time_update[{k}]"
        label = _stop_label(stu)
        out += _ids(static, here, stop_id=stu.stop_id)
        if stu.HasField("stop_sequence"):
            if last_seq is not None and stu.stop_sequence < last_seq:
                out.append((here + ".stop_sequence", f"stop-time updates are not sorted by stop_sequence: "
                                                     f"{label} comes after stop_sequence {last_seq}",
                            OUT_OF_RANGE))
                return out
            last_seq = stu.stop_sequence
        times = _event_times(stu, here, out)
        if stu.schedule_relationship in _NOT_TIMED or not times:
            continue
        if len(times) == 2 and times[1][1] < times[0][1]:
            out.append((here + ".departure.time", f"at {label} the departure {_hms(times[1][1])} is "
                                                  f"before the arrival {_hms(times[0][1])}", OUT_OF_RANGE))
        first = times[0]
        if previous is not None and first[1] < previous[1]:
            out.append((f"{here}.{first[0]}.time",
                        f"stop times go backwards from {previous[2]} to {label}: {first[0]} "
                        f"{_hms(first[1])} is before the {previous[0]} {_hms(previous[1])} at {previous[2]}",
                        OUT_OF_RANGE))
        latest = max(times, key=lambda t: t[1])
        previous = (latest[0], latest[1], label)
    return out


def _event_times(stu, here: str, out: list[Problem]) -> list[tuple[str, int]]:
    """[(arrival|departure, absolute time)] of one stop-time update; a time
    in milliseconds is reported into ``out`` and left out."""
    times = []
    for event in ("arrival", "departure"):
        if stu.HasField(event) and getattr(stu, event).HasField("time"):
            value = getattr(stu, event).time
            problem = _timestamp(value, f"{here}.{event}.time")
            out += problem
            if not problem and value:
                times.append((event, value))
    return times


def _stop_label(stu) -> str:
    seq = f"stop_sequence {stu.stop_sequence}" if stu.HasField("stop_sequence") else ""
    if stu.stop_id:
        return f"stop '{stu.stop_id}'" + (f" ({seq})" if seq else "")
    return seq or "a stop with neither stop_id nor stop_sequence"


def _hms(t: int) -> str:
    """POSIX seconds as ``2023-11-14T22:13:20Z (1700000000)``."""
    when = epoch_seconds(t)
    text = when.strftime("%Y-%m-%dT%H:%M:%SZ") if when else "?"
    return f"{text} ({t})"


def _alert_problems(al: rt.Alert, at: str, static) -> list[Problem]:
    out = []
    for k, period in enumerate(al.active_period):
        out += _timestamp(period.start, f"{at}.active_period[{k}].start")
        out += _timestamp(period.end, f"{at}.active_period[{k}].end")
        if period.start and period.end and period.end < period.start:
            out.append((f"{at}.active_period[{k}]", f"active_period ends ({_hms(period.end)}) before "
                                                    f"it starts ({_hms(period.start)})", OUT_OF_RANGE))
    for k, sel in enumerate(al.informed_entity):
        here = f"{at}.informed_entity[{k}]"
        out += _ids(static, here, route_id=sel.route_id, stop_id=sel.stop_id)
        if sel.HasField("trip"):
            out += _trip(sel.trip, here + ".trip", static)
    if not any(t.text.strip() for t in al.header_text.translation):
        out.append((at + ".header_text", "the alert has no header_text (required by GTFS-Realtime): "
                                         "there is nothing to show as its headline", MISSING_FIELD))
    return out


# --------------------------------------------------------------------------- alerts
def _alert(entity: rt.FeedEntity, where: str, header_time, static, c: Collector) -> None:
    al = entity.alert
    start, end = _active_period(al, header_time)
    t = header_time or start
    if t is None:
        c.reject(_fragment(entity), f"{where}: the alert has no active_period start and the feed "
                 "header has no timestamp, so it cannot be dated", where + ".alert.active_period")
        return
    ended = end is not None and header_time is not None and end <= header_time
    headlines = _translations(al.header_text)
    descriptions = dict(_translations(al.description_text))
    lang, headline = headlines[0]
    english = next((h for lg, h in headlines if lg.lower().startswith("en")), None)
    severity = SEVERITY.get(al.severity_level) if al.HasField("severity_level") else None
    texts = {lg or "und": {"headline": h, "description": descriptions.get(lg)} for lg, h in headlines}
    for lg, d in descriptions.items():
        texts.setdefault(lg or "und", {"headline": None, "description": d})
    area = _area(al, static)
    event, event_en = _event(al)
    since = int(start.timestamp()) if start else 0
    # the alert's identity as the warnings fold it (CAP's "sender,identifier,sent"): an alert that
    # ended, or that a later full feed no longer carries, ends the warning it started
    message = alert_message(c.source, entity.id, since)
    c.row(
        "warning",
        event_id=f"alert/{entity.id}@{since}/{int(t.timestamp())}",
        event_time=t,
        signal=OTHER_WARNING,
        colour=SEVERITY_COLOUR.get(severity or "", NO_COLOUR),
        status="cancelled" if ended else "issued",
        cap_message=None if ended else message,
        references=[message] if ended else None,
        area=area,
        headline=headline,
        expires=end,
        event=event,
        event_en=event_en,
        language=lang or None,
        headline_en=english,
        area_en=area,
        texts=json.dumps(texts, ensure_ascii=False, sort_keys=True),
        severity=severity.lower() if severity else None,
    )
    if start is not None and header_time is not None and start > header_time:
        c.count("coming", lambda n: f"{plural(n, 'service alert')} not active yet loaded as issued from "
                                    "the feed timestamp: the warning schema has no start time")
    if ended:
        c.count("ended", lambda n: f"{plural(n, 'service alert')} whose active period has ended "
                                   "loaded with status cancelled")


def alert_message(source: str, entity_id: str, since: int) -> str:
    """A service alert's identity in CAP's reference form: sender ``gtfs-rt:<source>``, identifier
    ``alert/<entity id>``, sent = its period's start (epoch s)."""
    return f"gtfs-rt:{source.replace(',', ' ')},alert/{entity_id.replace(',', ' ')},{since}"


def header(data: bytes) -> tuple[bool, Any]:
    """(whether the message is a full dataset, its header time or None) - None, None when
    the payload is no FeedMessage."""
    feed = _decode(data, Collector("header"))
    if feed is None or feed.header.timestamp > MS_THRESHOLD:
        return False, None
    full = feed.header.incrementality == rt.FeedHeader.FULL_DATASET
    return full, epoch_seconds(feed.header.timestamp) if feed.header.timestamp else None


def ended_alerts(source: str, before: dict[str, str], parsed: Parsed, header_time) -> tuple[list[dict], dict[str, str]]:
    """Service alerts a FULL_DATASET feed no longer carries have ended (GTFS-Realtime: a full
    dataset lists every alert in force).  ``before``: alert message -> event id of the alerts in
    force after the previous message of ``source``.  Returns the ``cancelled`` warning rows that
    end the vanished ones, and the alerts in force now."""
    table = parsed.tables.get("warning")
    now: dict[str, str] = {}
    if table is not None:
        for r in table.select(["event_id", "status", "cap_message"]).to_pylist():
            if r["status"] != "cancelled" and (r["cap_message"] or "").startswith("gtfs-rt:"):
                now[r["cap_message"]] = r["event_id"]
    rows = []
    if header_time is not None:
        for message, eid in before.items():
            if message not in now:
                rows.append({"event_id": f"{eid}/gone@{int(header_time.timestamp())}", "event_time": header_time,
                             "source": source, "signal": OTHER_WARNING, "colour": NO_COLOUR,
                             "status": "cancelled", "references": [message],
                             "headline": "no longer in the feed"})
    return rows, now


def _active_period(al: rt.Alert, now) -> tuple:
    """(start, end) of the period holding ``now``, else the next, else the
    last; (None, None) without periods (active from the feed timestamp)."""
    periods = [(epoch_seconds(p.start), epoch_seconds(p.end)) for p in al.active_period]
    if not periods:
        return None, None
    if now is None:
        return periods[0]
    for start, end in periods:
        if (start is None or start <= now) and (end is None or now < end):
            return start, end
    coming = sorted((p for p in periods if p[0] is not None and p[0] > now), key=lambda p: p[0])
    if coming:
        return coming[0]
    return max(periods, key=lambda p: p[1] or now)


def _translations(ts: rt.TranslatedString) -> list[Problem]:
    """(language, text) with Chinese first, then English, then the rest in
    feed order; one text per language."""
    seen: dict[str, str] = {}
    for tr in ts.translation:
        if tr.text.strip() and tr.language not in seen:
            seen[tr.language] = tr.text.strip()
    rank = lambda lg: 0 if lg.lower().startswith("zh") else 1 if lg.lower().startswith("en") else 2  # noqa: E731
    return sorted(seen.items(), key=lambda kv: rank(kv[0]))


def _event(al: rt.Alert) -> tuple[str | None, str | None]:
    """The alert's effect and cause, and its English text: ``effect_detail``
    when sent, else the enum names (``DETOUR (CONSTRUCTION)``)."""
    detail = _translations(al.effect_detail)
    if detail:
        return detail[0][1], next((d for lg, d in detail if lg.lower().startswith("en")), None)
    text = _enum_event(al)
    return text, text


def _enum_event(al: rt.Alert) -> str | None:
    effect = rt.Alert.Effect.Name(al.effect) if al.HasField("effect") else None
    cause = rt.Alert.Cause.Name(al.cause) if al.HasField("cause") and al.cause != rt.Alert.UNKNOWN_CAUSE else None
    if effect and cause:
        return f"{effect} ({cause})"
    return effect or cause


def _area(al: rt.Alert, static) -> str | None:
    """The informed entities in words: ``route 219; stop 16230; route 100 at stop 16299``."""
    parts: list[str] = []
    for sel in al.informed_entity:
        words = []
        if sel.agency_id:
            words.append(f"agency {sel.agency_id}")
        if sel.route_id:
            words.append(static.route_label(sel.route_id) if static else f"route {sel.route_id}")
        if sel.HasField("route_type"):
            words.append(f"route type {sel.route_type}")
        if sel.HasField("direction_id"):
            words.append(f"direction {sel.direction_id}")
        if sel.trip.trip_id:
            words.append(f"trip {sel.trip.trip_id}")
        text = " ".join(words)
        if sel.stop_id:
            text = f"{text} at stop {sel.stop_id}" if text else f"stop {sel.stop_id}"
        if text and text not in parts:
            parts.append(text)
    if len(parts) > 50:
        parts = parts[:50] + [f"and {len(parts) - 50} more"]
    return "; ".join(parts) or None
