"""GTFS-Realtime FeedMessage -> ``bus`` rows.

Buses serving the scenic area publish GTFS-Realtime.  A FeedMessage is read
as binary protobuf, or — when the bytes are not a valid binary message and
are text — as protobuf text format (``.asciipb``, the form of the
specification's own examples).

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
* **Alert** -> a note with the count: the twin has no feed kind for
  transit service alerts.
* ``event_time`` is the entity's own timestamp, else the header timestamp;
  a record with neither is rejected.  ``event_id`` is
  ``vehicle/<entity id>@<epoch s>`` or ``trip_update/<entity id>@<epoch s>``
  — stable across re-fetches of the same feed, so duplicates drop.
"""
from __future__ import annotations

import re

from google.protobuf import text_format
from google.transit import gtfs_realtime_pb2 as rt

from .base import Collector, Parsed, epoch_seconds, plural

TEXT_START = re.compile(r"\A\s*(?:#[^\n]*\n\s*)*(?:header|entity)\s*[{:<]")
_Vehicle = rt.VehiclePosition
_StopTimeUpdate = rt.TripUpdate.StopTimeUpdate
_CANCELED = rt.TripDescriptor.CANCELED


def parse(data: bytes, source: str | None = None) -> Parsed:
    c = Collector(source or "gtfs-rt")
    feed = _decode(data, c)
    if feed is None:
        return c.result()
    header_time = epoch_seconds(feed.header.timestamp)
    alerts: list[str] = []
    for i, entity in enumerate(feed.entity):
        where = f"entity '{entity.id}'" if entity.id else f"entity[{i}]"
        if entity.is_deleted:
            c.count("deleted", lambda n: f"{plural(n, 'entity', 'entities')} marked is_deleted skipped "
                                         "(incremental deletions are not applied to bus rows)")
            continue
        handled = False
        if entity.HasField("vehicle"):
            _vehicle(entity, where, header_time, c)
            handled = True
        if entity.HasField("trip_update"):
            _trip_update(entity, where, header_time, c)
            handled = True
        if entity.HasField("alert"):
            effect = rt.Alert.Effect.Name(entity.alert.effect) if entity.alert.HasField("effect") else "?"
            alerts.append(f"'{entity.id}' ({effect})")
            handled = True
        if not handled:
            c.count("other", lambda n: f"{plural(n, 'entity', 'entities')} with neither vehicle, "
                                       "trip_update nor alert skipped")
    if alerts:
        c.note(f"{plural(len(alerts), 'service alert')} not loaded — the twin has no feed kind "
               f"for transit alerts: entity {', '.join(alerts[:20])}"
               + (" …" if len(alerts) > 20 else ""))
    return c.result()


def _decode(data: bytes, c: Collector) -> rt.FeedMessage | None:
    """Binary first, text format second; one Reject naming both failures."""
    try:
        text = bytes(data).decode("utf-8-sig")
    except UnicodeDecodeError:
        text = None
    if not data:
        c.reject(data, "the payload is empty, not a GTFS-Realtime FeedMessage", "payload")
        return None
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
        missing = msg.FindInitializationErrors()
        if missing:
            c.reject(data, "GTFS-Realtime text is missing required field(s): " + ", ".join(missing),
                     "payload")
            return None
        return msg
    c.reject(data, "not a GTFS-Realtime FeedMessage — " + "; ".join(errors), "payload")
    return None


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
        lat, lon = float(p.latitude), float(p.longitude)
        if not (-90 <= lat <= 90 and -180 <= lon <= 180):
            c.reject(_fragment(entity), f"{where}: vehicle '{vehicle_id}' position "
                     f"lat {lat}, lon {lon} is outside WGS 84 range", where + ".vehicle.position")
            return
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
