"""Feed adapters against real third-party samples and hand-made edge cases.

The samples live in ``shared/testdata`` beside the repository (they are
others' files and are not copied here).  Each test asserts the values the
sample contains, not only that it parses.
"""
from __future__ import annotations

import random
import socket
import urllib.request
from datetime import datetime, timezone
from pathlib import Path

import pytest
from google.protobuf import text_format
from google.transit import gtfs_realtime_pb2 as rt
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from indicators.feeds.adapters import FORMATS, Parsed, Reject, detect_format, parse
from indicators.feeds.adapters.base import RAW_LIMIT
from indicators.feeds.schemas import FACILITY_METRICS, SCHEMAS, WARNING_COLOURS, WARNING_SIGNALS


def utc(*args) -> datetime:
    return datetime(*args, tzinfo=timezone.utc)


def checked(parsed: Parsed) -> Parsed:
    """Every table conforms exactly to its schema; every reject is well formed."""
    assert isinstance(parsed, Parsed)
    for kind, table in parsed.tables.items():
        assert table.schema.equals(SCHEMAS[kind]), kind
        assert table.num_rows > 0, f"{kind}: empty tables are left out"
    for r in parsed.rejects:
        assert isinstance(r, Reject) and r.reason and r.where
        assert len(r.raw) <= RAW_LIMIT
        assert "unexpectedly" not in r.reason, r.reason
    return parsed


def load(td: Path, rel: str, fmt: str | None = None, **kw) -> Parsed:
    data = (td / rel).read_bytes()
    return checked(parse(data, fmt or detect_format(data, rel), **kw))


def rows(parsed: Parsed, kind: str) -> list[dict]:
    return parsed.tables[kind].to_pylist()


# --- format detection ----------------------------------------------------------

SAMPLES = {
    "gtfs-rt/bullrunner-vehicle-positions.pb": "gtfs-rt",
    "gtfs-rt/trip-updates-full.asciipb": "gtfs-rt",
    "gtfs-rt/alerts.asciipb": "gtfs-rt",
    "cap/thunderstorm.cap.xml": "cap",
    "cap/43b080713727.cap.xml": "cap",
    "invalid/cap-library-invalid.cap.xml": "cap",
    "invalid/cap-library-xee.cap.xml": "cap",
    "iot/sensorthings/thing-complete-deep-insert.json": "sensorthings",
    "iot/sensorthings/foi-deerfoot-trail-linestring.json": "sensorthings",
    "iot/smart-data-models/CrowdFlowObserved/example.json": "ngsi-ld",
    "iot/smart-data-models/CrowdFlowObserved/example-normalized.json": "ngsi-ld",
    "iot/smart-data-models/CrowdFlowObserved/example-normalized.jsonld": "ngsi-ld",
    "iot/smart-data-models/TrafficFlowObserved/example.json": "ngsi-ld",
    "iot/smart-data-models/TrafficFlowObserved/example-normalized.json": "ngsi-ld",
    "iot/smart-data-models/TrafficFlowObserved/example-normalized.jsonld": "ngsi-ld",
    "iot/smart-data-models/Streetlight/example.json": "ngsi-ld",
    "iot/smart-data-models/Streetlight/example-normalized.jsonld": "ngsi-ld",
    "iot/smart-data-models/WeatherObserved/example.json": "ngsi-ld",
    "iot/smart-data-models/WeatherObserved/example-normalized.jsonld": "ngsi-ld",
    "iot/smart-data-models/WaterQualityObserved/example.json": "ngsi-ld",
    "iot/smart-data-models/WaterQualityObserved/example-normalized-ld.jsonld": "ngsi-ld",
    "iot/smart-data-models/OffStreetParking/example.json": "ngsi-ld",
    "iot/smart-data-models/OffStreetParking/example-normalized.jsonld": "ngsi-ld",
}


def test_every_sample_file_is_listed(td):
    on_disk = {str(p.relative_to(td)) for p in td.rglob("*")
               if p.is_file() and p.suffix in (".pb", ".asciipb", ".xml", ".json", ".jsonld")}
    assert on_disk == set(SAMPLES)


@pytest.mark.parametrize("rel", sorted(SAMPLES))
def test_detect_format_by_name_and_by_content(td, rel):
    data = (td / rel).read_bytes()
    assert detect_format(data, rel) == SAMPLES[rel]
    assert detect_format(data) == SAMPLES[rel]


@pytest.mark.parametrize("rel", sorted(SAMPLES))
def test_every_sample_parses_into_exact_schemas(td, rel):
    parsed = load(td, rel, SAMPLES[rel])
    assert parsed.tables or parsed.rejects or parsed.notes, "nothing may vanish silently"


def test_detect_format_refuses_what_it_cannot_tell():
    with pytest.raises(ValueError):
        detect_format(b"<html><body>hi</body></html>")
    with pytest.raises(ValueError):
        detect_format(b'{"hello": "world"}')
    with pytest.raises(ValueError):
        detect_format(b"just some words")
    assert detect_format(b"\xff\xfe\x00garbage") == "gtfs-rt"  # the only binary format


def test_unknown_format_is_a_programming_error():
    with pytest.raises(ValueError, match="unknown feed format"):
        parse(b"{}", "geojson")


def test_source_is_written_into_rows(td):
    parsed = load(td, "gtfs-rt/bullrunner-vehicle-positions.pb", source="gtfs-rt:bullrunner")
    assert set(parsed.tables["bus"].column("source").to_pylist()) == {"gtfs-rt:bullrunner"}
    default = load(td, "gtfs-rt/bullrunner-vehicle-positions.pb")
    assert set(default.tables["bus"].column("source").to_pylist()) == {"gtfs-rt"}


# --- GTFS-Realtime -------------------------------------------------------------

def test_bullrunner_vehicle_positions(td):
    parsed = load(td, "gtfs-rt/bullrunner-vehicle-positions.pb")
    assert parsed.rejects == []
    bus = rows(parsed, "bus")
    assert len(bus) == 10
    assert [r["vehicle_id"] for r in bus] == ["1536", "1537", "1331", "2252", "3004", "1538",
                                              "3001", "3002", "1124", "9012"]
    first = bus[0]
    assert first["route_id"] == "F"
    assert first["lat"] == pytest.approx(28.0662212, abs=1e-6)
    assert first["lon"] == pytest.approx(-82.4176941, abs=1e-6)
    assert first["bearing"] == 180
    assert first["occupancy_status"] == "EMPTY"
    assert first["occupancy_pct"] is None and first["speed_mps"] is None
    assert first["delay_s"] is None and first["trip_id"] is None
    assert first["event_time"] == utc(2017, 9, 13, 14, 52, 55)  # header timestamp 1505314375
    assert first["event_id"] == "vehicle/1@1505314375"
    v1331 = next(r for r in bus if r["vehicle_id"] == "1331")
    assert (v1331["route_id"], v1331["occupancy_status"]) == ("B", "MANY_SEATS_AVAILABLE")
    statuses = [r["occupancy_status"] for r in bus]
    assert statuses.count("EMPTY") == 5 and statuses.count("MANY_SEATS_AVAILABLE") == 5
    assert len({r["event_id"] for r in bus}) == 10


def test_trip_updates_text_format(td):
    parsed = load(td, "gtfs-rt/trip-updates-full.asciipb")
    assert parsed.rejects == []
    bus = {r["trip_id"]: r for r in rows(parsed, "bus")}
    assert set(bus) == {"trip-1", "frequency-expanded-trip"}
    assert bus["trip-1"]["delay_s"] == 5  # first stop-time update: arrival delay 5 s
    assert bus["frequency-expanded-trip"]["delay_s"] == -2  # 2 s early
    assert bus["trip-1"]["vehicle_id"] == "trip:trip-1"
    assert bus["trip-1"]["event_time"] == utc(2010, 9, 14, 9, 44, 28)
    assert bus["trip-1"]["event_id"] == "trip_update/simple-trip@1284457468"
    assert any("without a vehicle descriptor" in n for n in parsed.notes)


def test_a_transit_service_alert_becomes_a_warning(td):
    parsed = load(td, "gtfs-rt/alerts.asciipb")
    assert parsed.rejects == [] and set(parsed.tables) == {"warning"}
    w = parsed.tables["warning"].to_pylist()
    assert len(w) == 1 and w[0]["signal"] == "other" and w[0]["headline"]


def test_binary_and_text_format_give_the_same_rows(td):
    binary = (td / "gtfs-rt/bullrunner-vehicle-positions.pb").read_bytes()
    msg = rt.FeedMessage()
    msg.ParseFromString(binary)
    as_text = text_format.MessageToString(msg).encode()
    assert checked(parse(as_text, "gtfs-rt")).tables["bus"].equals(
        checked(parse(binary, "gtfs-rt")).tables["bus"])
    text = (td / "gtfs-rt/trip-updates-full.asciipb").read_text()
    msg = text_format.Parse(text, rt.FeedMessage())
    assert checked(parse(msg.SerializeToString(), "gtfs-rt")).tables["bus"].equals(
        checked(parse(text.encode(), "gtfs-rt")).tables["bus"])


def _feed() -> rt.FeedMessage:
    msg = rt.FeedMessage()
    msg.header.gtfs_realtime_version = "2.0"
    msg.header.timestamp = 1_700_000_000
    return msg


def test_vehicle_fields_and_faults():
    msg = _feed()
    e = msg.entity.add(id="v1")
    e.vehicle.vehicle.id = "GZ-B12"
    e.vehicle.trip.trip_id, e.vehicle.trip.route_id = "t9", "B12"
    e.vehicle.stop_id = "canton_tower_west"
    e.vehicle.timestamp = 1_700_000_030
    e.vehicle.position.latitude, e.vehicle.position.longitude = 23.1066, 113.3245
    e.vehicle.position.speed = 5.5
    e.vehicle.occupancy_status = rt.VehiclePosition.STANDING_ROOM_ONLY
    e.vehicle.occupancy_percentage = 87
    anonymous = msg.entity.add(id="no-id").vehicle.position
    anonymous.latitude, anonymous.longitude = 23.1, 113.3
    far = msg.entity.add(id="far")
    far.vehicle.vehicle.label = "bus far"
    far.vehicle.position.latitude, far.vehicle.position.longitude = 123.0, 113.0
    msg.entity.add(id="empty")
    parsed = checked(parse(msg.SerializeToString(), "gtfs-rt"))
    (row,) = rows(parsed, "bus")
    assert row["vehicle_id"] == "GZ-B12" and row["stop_id"] == "canton_tower_west"
    assert row["trip_id"] == "t9" and row["route_id"] == "B12"
    assert row["speed_mps"] == pytest.approx(5.5)
    assert row["occupancy_status"] == "STANDING_ROOM_ONLY" and row["occupancy_pct"] == 87
    assert row["event_time"] == utc(2023, 11, 14, 22, 13, 50)  # vehicle's own timestamp wins
    assert {r.where for r in parsed.rejects} == {"entity 'no-id'.vehicle",
                                                "entity 'far'.vehicle.position"}
    assert any("no vehicle id or label" in r.reason for r in parsed.rejects)
    assert any("outside WGS 84" in r.reason for r in parsed.rejects)
    assert any("neither vehicle, trip_update nor alert" in n for n in parsed.notes)


def test_trip_update_delay_precedence_and_cancellations():
    msg = _feed()
    dep = msg.entity.add(id="dep").trip_update
    dep.trip.trip_id = "a"
    dep.vehicle.id = "bus-7"
    stu = dep.stop_time_update.add(stop_sequence=1, stop_id="s1")
    stu.departure.delay = 120
    whole = msg.entity.add(id="whole").trip_update
    whole.trip.trip_id = "b"
    whole.delay = -30
    whole.stop_time_update.add(stop_sequence=4)
    gone = msg.entity.add(id="gone").trip_update
    gone.trip.trip_id = "c"
    gone.trip.schedule_relationship = rt.TripDescriptor.CANCELED
    parsed = checked(parse(msg.SerializeToString(), "gtfs-rt"))
    by_trip = {r["trip_id"]: r for r in rows(parsed, "bus")}
    assert set(by_trip) == {"a", "b"}
    assert by_trip["a"]["delay_s"] == 120 and by_trip["a"]["stop_id"] == "s1"
    assert by_trip["a"]["vehicle_id"] == "bus-7"
    assert by_trip["b"]["delay_s"] == -30
    assert any("1 cancelled trip" in n for n in parsed.notes)


def test_no_timestamp_anywhere_is_rejected():
    msg = rt.FeedMessage()
    msg.header.gtfs_realtime_version = "2.0"
    msg.entity.add(id="x").vehicle.vehicle.id = "v"
    parsed = checked(parse(msg.SerializeToString(), "gtfs-rt"))
    assert parsed.tables == {}
    assert "no timestamp" in parsed.rejects[0].reason


# --- CAP -----------------------------------------------------------------------

def test_thunderstorm_warning(td):
    parsed = load(td, "cap/thunderstorm.cap.xml")
    assert parsed.rejects == []
    (w,) = rows(parsed, "warning")
    assert w["signal"] == "thunderstorm_gale"
    assert w["colour"] == "orange"  # severity Severe, no colour word
    assert w["status"] == "issued"
    assert w["event_time"] == utc(2003, 6, 17, 21, 57)
    assert w["expires"] == utc(2003, 6, 17, 23, 0)
    assert w["headline"] == "SEVERE THUNDERSTORM WARNING"
    assert w["area"].startswith("EXTREME NORTH CENTRAL TUOLUMNE COUNTY IN CALIFORNIA, EXTREME "
                                "NORTHEASTERN CALAVERAS COUNTY")
    assert "\n" not in w["area"]
    assert w["event_id"] == "KSTO@NWS.NOAA.GOV/KSTO1055887203#0"


def test_invalid_cap_lists_the_missing_element(td):
    parsed = load(td, "invalid/cap-library-invalid.cap.xml")
    assert parsed.tables == {}
    (r,) = parsed.rejects
    assert "alert '12345' is not valid CAP 1.2" in r.reason
    assert "missing required element(s): scope" in r.reason


def test_xxe_is_refused_and_nothing_is_fetched(td, monkeypatch):
    calls = []

    def no_network(*args, **kwargs):
        calls.append(args)
        raise AssertionError("the CAP adapter tried to reach the network")

    monkeypatch.setattr(socket.socket, "connect", no_network)
    monkeypatch.setattr(socket.socket, "connect_ex", no_network)
    monkeypatch.setattr(socket, "create_connection", no_network)
    monkeypatch.setattr(urllib.request, "urlopen", no_network)
    parsed = load(td, "invalid/cap-library-xee.cap.xml")
    assert calls == []
    assert parsed.tables == {}
    (r,) = parsed.rejects
    assert "declares a DTD" in r.reason and "refused" in r.reason
    assert "nothing was resolved or fetched" in r.reason
    assert "payload1.dtd" in r.raw  # the offending document is kept for the operator


def cap_doc(*, event="Typhoon", headline=None, severity="Severe", msg_type="Alert",
            status="Actual", params=(), extra_info="", omit=(), encoding="UTF-8") -> str:
    """A CAP 1.2 alert written for these tests (one info block)."""
    alert = {"identifier": "GZ-2024-001", "sender": "gz-meteo", "sent": "2024-07-20T10:00:00+08:00",
             "status": status, "msgType": msg_type, "scope": "Public"}
    info = {"category": "Met", "event": event, "urgency": "Immediate", "severity": severity,
            "certainty": "Likely"}
    head = "".join(f"<{k}>{v}</{k}>" for k, v in alert.items() if k not in omit)
    body = "".join(f"<{k}>{v}</{k}>" for k, v in info.items() if k not in omit)
    body += f"<headline>{headline}</headline>" if headline else ""
    body += "".join(f"<parameter><valueName>{n}</valueName><value>{v}</value></parameter>"
                    for n, v in params)
    return (f'<?xml version="1.0" encoding="{encoding}"?>'
            f'<alert xmlns="urn:oasis:names:tc:emergency:cap:1.2">{head}'
            f"<info>{body}{extra_info}<area><areaDesc>海珠区</areaDesc></area></info></alert>")


def one_warning(doc: str | bytes) -> dict:
    parsed = checked(parse(doc.encode() if isinstance(doc, str) else doc, "cap"))
    assert parsed.rejects == [], parsed.rejects
    (w,) = rows(parsed, "warning")
    return w


@pytest.mark.parametrize("event, headline, severity, params, signal, colour", [
    ("暴雨", "广州市气象台发布暴雨橙色预警信号", "Severe", (), "rainstorm", "orange"),
    ("台风", "台风白色预警信号", "Minor", (), "typhoon", "white"),
    ("雷雨大风", "黄埔区雷雨大风黄色预警", "Moderate", (), "thunderstorm_gale", "yellow"),
    ("暴雨", "黄埔区暴雨黄色预警信号升级为橙色", "Severe", (), "rainstorm", "orange"),
    ("高温", "高温预警", "Moderate", (), "high_temperature", "yellow"),
    ("寒冷", None, "Minor", (), "cold", "blue"),
    ("大雾", "大雾红色预警信号", "Extreme", (), "fog", "red"),
    ("灰霾", None, "Moderate", (("级别", "黄色"),), "haze", "yellow"),
    ("道路结冰", None, "Extreme", (), "road_icing", "red"),
    ("冰雹", "冰雹橙色预警信号", "Severe", (), "hail", "orange"),
    ("森林火险", None, "Severe", (), "forest_fire", "orange"),
    ("Tropical Storm", "Tropical storm signal", "Moderate", (), "typhoon", "yellow"),
    ("Heavy Rain", "Amber? no: Red rainstorm warning", "Moderate", (), "rainstorm", "red"),
    ("Thunderstorm with strong winds", None, "Minor", (), "thunderstorm_gale", "blue"),
    ("Red Flag Warning", None, "Moderate", (), "forest_fire", "yellow"),
    ("Excessive Heat Warning", None, "Extreme", (), "high_temperature", "red"),
    ("Dense Fog Advisory", None, "Minor", (("COLOUR", "Orange"),), "fog", "orange"),
])
def test_signal_and_colour_mapping(event, headline, severity, params, signal, colour):
    w = one_warning(cap_doc(event=event, headline=headline, severity=severity, params=params))
    assert (w["signal"], w["colour"]) == (signal, colour)
    assert w["signal"] in WARNING_SIGNALS and w["colour"] in WARNING_COLOURS


@pytest.mark.parametrize("msg_type, status", [("Alert", "issued"), ("Update", "updated"),
                                              ("Cancel", "cancelled")])
def test_msg_type_gives_status(msg_type, status):
    assert one_warning(cap_doc(msg_type=msg_type))["status"] == status


def test_expires_and_sent_are_utc():
    w = one_warning(cap_doc(extra_info="<expires>2024-07-20T18:00:00+08:00</expires>"))
    assert w["event_time"] == utc(2024, 7, 20, 2, 0)
    assert w["expires"] == utc(2024, 7, 20, 10, 0)
    assert w["area"] == "海珠区"


def test_gb2312_encoded_cap_is_read():
    doc = cap_doc(event="暴雨", headline="暴雨黄色预警信号", encoding="GB2312").encode("gb2312")
    w = one_warning(doc)
    assert (w["signal"], w["colour"], w["headline"]) == ("rainstorm", "yellow", "暴雨黄色预警信号")


def test_plain_thunderstorm_is_a_generic_warning_not_a_guessed_gale():
    parsed = checked(parse(cap_doc(event="Thunderstorm", severity="Moderate").encode(), "cap"))
    assert parsed.rejects == []
    (row,) = parsed.tables["warning"].to_pylist()
    assert row["signal"] == "other" and row["event"] == "Thunderstorm"
    assert row["colour"] == "yellow"          # from its CAP severity, Moderate


def test_no_colour_and_unknown_severity_is_rejected():
    parsed = checked(parse(cap_doc(event="暴雨", severity="Unknown").encode(), "cap"))
    assert parsed.tables == {}
    assert "severity 'Unknown' gives none" in parsed.rejects[0].reason


def test_every_missing_element_is_listed():
    doc = cap_doc(omit=("identifier", "sent", "status", "msgType", "certainty"))
    parsed = checked(parse(doc.encode(), "cap"))
    (r,) = parsed.rejects
    for name in ("identifier", "sent", "status", "msgType", "info[0]/certainty"):
        assert name in r.reason


def test_exercises_and_acks_are_noted_not_loaded():
    for status in ("Exercise", "Test", "Draft", "System"):
        parsed = checked(parse(cap_doc(status=status).encode(), "cap"))
        assert parsed.tables == {} and parsed.rejects == []
        assert any(f"status '{status}'" in n for n in parsed.notes)
    parsed = checked(parse(cap_doc(msg_type="Ack").encode(), "cap"))
    assert parsed.tables == {} and any("Ack" in n for n in parsed.notes)


def test_internal_entity_declarations_are_refused():
    bomb = ('<?xml version="1.0"?><!DOCTYPE alert [<!ENTITY a "aaaaaaaaaa">'
            '<!ENTITY b "&a;&a;&a;&a;&a;&a;&a;&a;">]><alert>&b;</alert>')
    parsed = checked(parse(bomb.encode(), "cap"))
    assert parsed.tables == {} and "refused" in parsed.rejects[0].reason


# --- SensorThings --------------------------------------------------------------

def test_deep_insert_thing(td):
    # Luminous flux is neither weather nor a facility metric: each Observation is
    # rejected (the facility table only takes FACILITY_METRICS), none "loaded".
    parsed = load(td, "iot/sensorthings/thing-complete-deep-insert.json")
    assert parsed.tables == {}
    assert [r.where for r in parsed.rejects] == [f"Datastreams[0].Observations[{k}]" for k in range(4)]
    assert all("'Luminous Flux' in 'lm'" in r.reason and "FACILITY_METRICS" in r.reason
               for r in parsed.rejects)
    assert not any("description 'Office Building'" in n for n in parsed.notes)  # no row used it


def test_feature_of_interest_carries_nothing(td):
    parsed = load(td, "iot/sensorthings/foi-deerfoot-trail-linestring.json")
    assert parsed.tables == {} and parsed.rejects == []
    assert any("FeatureOfInterest" in n for n in parsed.notes)


def _sta_obs(oid, name, unit, result, t="2024-07-20T02:00:00Z", thing="ws-tower"):
    return {"@iot.id": oid, "phenomenonTime": t, "result": result,
            "Datastream": {"@iot.id": f"ds-{name}", "name": f"{name} of {thing}",
                           "unitOfMeasurement": {"name": unit, "symbol": unit},
                           "ObservedProperty": {"name": name},
                           "Thing": {"@iot.id": thing, "name": thing}}}


def test_observation_collection_to_weather_and_facility():
    import json
    body = {"value": [
        _sta_obs(1, "Air Temperature", "°F", 95.0),
        _sta_obs(2, "Relative Humidity", "%", 80),
        _sta_obs(3, "Wind Speed", "km/h", 36.0),
        _sta_obs(4, "Bin fill level", "%", 75, thing="bin-17"),
        _sta_obs(5, "Hydrant pressure", "kPa", 350, thing="hydrant-3"),
        _sta_obs(6, "Lamp state", "", True, thing="lamp-9"),
        _sta_obs(7, "Room temperature", "°C", 24.5, thing="ticket-hall"),
        _sta_obs(8, "Wind Speed", "furlongs/fortnight", 3),
        _sta_obs(9, "Bin fill level", "%", "full", thing="bin-18"),
        {"@iot.id": 10, "phenomenonTime": "2024-07-20T02:00:00Z", "result": 1},
    ]}
    parsed = checked(parse(json.dumps(body).encode(), "sensorthings"))
    (weather,) = rows(parsed, "weather")
    assert weather["station_id"] == "ws-tower"
    assert weather["temperature_c"] == pytest.approx(35.0)
    assert weather["humidity_pct"] == pytest.approx(80.0)
    assert weather["wind_speed_ms"] == pytest.approx(10.0)
    assert weather["event_id"] == "ws-tower@2024-07-20T02:00:00.000Z"
    facility = {r["asset_id"]: r for r in rows(parsed, "facility")}
    assert facility["bin-17"]["metric"] == "bin_fill" and facility["bin-17"]["value"] == 0.75
    assert facility["hydrant-3"]["metric"] == "hydrant_pressure_mpa"
    assert facility["hydrant-3"]["value"] == pytest.approx(0.35)
    assert facility["lamp-9"]["metric"] == "lamp_on" and facility["lamp-9"]["value"] == 1.0
    assert "ticket-hall" not in facility  # indoor: not weather, and no facility metric
    assert facility["bin-17"]["event_id"] == "observation/4"
    reasons = " | ".join(r.reason for r in parsed.rejects)
    assert len(parsed.rejects) == 4
    assert "'furlongs/fortnight'" in reasons
    assert "result 'full'" in reasons and "is not a number" in reasons
    assert "'Room temperature' in '°C', which is neither a weather quantity" in reasons
    assert "names no Datastream" in reasons


# --- NGSI-LD smart data models ---------------------------------------------------

CROWD = ["example.json", "example-normalized.json", "example-normalized.jsonld"]


@pytest.mark.parametrize("name", CROWD)
def test_crowd_flow_observed(td, name):
    parsed = load(td, f"iot/smart-data-models/CrowdFlowObserved/{name}")
    assert parsed.rejects == []
    (row,) = rows(parsed, "crowd")
    assert row["count"] == 100  # peopleCount
    assert row["zone_id"] == "Valladolid_1"
    assert row["cell_id"] is None
    assert row["event_time"] == utc(2018, 8, 7, 11, 15)  # end of the 5-minute period
    assert any("gives a flow" in n and "300 s" in n for n in parsed.notes)


@pytest.mark.parametrize("name", CROWD)
def test_traffic_flow_observed(td, name):
    parsed = load(td, f"iot/smart-data-models/TrafficFlowObserved/{name}")
    assert parsed.rejects == []
    (row,) = rows(parsed, "traffic")
    assert row["speed_kmh"] == pytest.approx(52.6)
    assert row["flow_vph"] == pytest.approx(197 * 12)  # 197 vehicles in 5 minutes
    assert row["occupancy_pct"] == pytest.approx(76.0)
    assert row["segment_id"] == "TrafficFlowObserved-Valladolid-osm-60821110"
    assert row["event_time"] == utc(2016, 12, 7, 11, 15)


@pytest.mark.parametrize("name, station", [("example.json", "device-0A3478"),
                                           ("example-normalized.jsonld", "2422")])
def test_weather_observed(td, name, station):
    parsed = load(td, f"iot/smart-data-models/WeatherObserved/{name}")
    assert parsed.rejects == []
    (row,) = rows(parsed, "weather")
    assert row["station_id"] == station
    assert row["temperature_c"] == pytest.approx(3.3)
    assert row["humidity_pct"] == pytest.approx(100.0)  # relativeHumidity 1 is a 0-1 ratio
    assert row["wind_speed_ms"] == pytest.approx(2.0)
    assert row["rain_1h_mm"] == 0.0
    assert row["gust_ms"] is None and row["visibility_m"] is None
    assert row["event_time"] == utc(2016, 11, 30, 7, 0)


@pytest.mark.parametrize("name", ["example.json", "example-normalized.jsonld"])
def test_streetlight(td, name):
    parsed = load(td, f"iot/smart-data-models/Streetlight/{name}")
    assert parsed.rejects == []
    (row,) = rows(parsed, "facility")
    assert row["asset_id"] == "streetlight:guadalajara:4567"
    assert (row["metric"], row["value"]) == ("lamp_on", 0.0)  # powerState "off"
    assert row["metric"] in FACILITY_METRICS
    assert row["asset_type"] == "streetlight"
    assert row["event_time"] == utc(2021, 1, 11, 10, 21, 2)  # 15:51:02+05:30


def test_unsupported_types_are_noted():
    import json
    doc = {"id": "urn:ngsi-ld:Beehive:b1", "type": "Beehive", "temperature": 30}
    parsed = checked(parse(json.dumps(doc).encode(), "ngsi-ld"))
    assert parsed.tables == {} and parsed.rejects == []
    assert "1 entity of unsupported type 'Beehive' skipped" in parsed.notes[0]


def test_array_with_a_bad_entity(td):
    import json
    base = "iot/smart-data-models/"
    parking = json.loads((td / base / "OffStreetParking/example.json").read_text())
    crowd = json.loads((td / base / "CrowdFlowObserved/example-normalized.jsonld").read_text())
    bad = dict(crowd, id="urn:ngsi-ld:CrowdFlowObserved:x",
               peopleCount={"type": "Property", "value": "many"})
    light = json.loads((td / base / "Streetlight/example.json").read_text())
    lit = dict(light, id="lamp-on", powerState="on")
    booting = dict(light, id="lamp-boot", powerState="bootingUp")
    beehive = {"id": "hive-1", "type": "Beehive"}
    payload = [beehive, beehive, crowd, bad, beehive, lit, booting]
    parsed = checked(parse(json.dumps(payload).encode(), "ngsi-ld"))
    assert rows(parsed, "crowd")[0]["count"] == 100
    assert [(r["asset_id"], r["value"]) for r in rows(parsed, "facility")] == [("lamp-on", 1.0)]
    first, second = parsed.rejects
    assert first.reason == ("entity 3 (urn:ngsi-ld:CrowdFlowObserved:x): attribute "
                            "'peopleCount' is not a number ('many')")
    assert first.where == "entity[3].peopleCount"
    assert second.where == "entity[6].powerState"
    assert "'bootingUp' does not say whether the lamp is lit" in second.reason
    assert "3 entities of unsupported type 'Beehive' skipped" in " ".join(parsed.notes)
    assert parking["type"] == "OffStreetParking"  # parking now has rows: see test_iot_adapters


def test_crowd_with_only_occupancy_is_rejected_with_why():
    doc = {"id": "urn:ngsi-ld:CrowdFlowObserved:bridge", "type": "CrowdFlowObserved",
           "occupancy": 0.4, "dateObserved": "2024-07-20T02:00:00Z"}
    import json
    parsed = checked(parse(json.dumps(doc).encode(), "ngsi-ld"))
    assert parsed.tables == {}
    assert "gives no number of persons" in parsed.rejects[0].reason


def test_ngsi_ld_observed_at_and_unit_code():
    import json
    doc = {"id": "urn:ngsi-ld:TrafficFlowObserved:yuejiang_w", "type": "TrafficFlowObserved",
           "refRoadSegment": {"type": "Relationship", "object": "urn:ngsi-ld:RoadSegment:yuejiang_w"},
           "averageVehicleSpeed": {"type": "Property", "value": 10, "unitCode": "MTS",
                                   "observedAt": "2024-07-20T10:00:00+08:00"},
           "intensity": {"type": "Property", "value": 30}}
    parsed = checked(parse(json.dumps(doc).encode(), "ngsi-ld"))
    (row,) = rows(parsed, "traffic")
    assert row["segment_id"] == "yuejiang_w"
    assert row["speed_kmh"] == pytest.approx(36.0)
    assert row["event_time"] == utc(2024, 7, 20, 2, 0)
    assert row["flow_vph"] is None
    assert any("flow_vph left empty" in n for n in parsed.notes)


# --- garbage and truncation never raise ------------------------------------------

def _truncations(td: Path) -> list[tuple[str, str, bytes]]:
    cases = []
    for rel, fmt in SAMPLES.items():
        if "invalid/" in rel:
            continue
        data = (td / rel).read_bytes()
        cases.append((rel, fmt, data[: len(data) // 2]))
    return cases


def test_truncated_samples_give_rejects(td):
    for rel, fmt, data in _truncations(td):
        parsed = checked(parse(data, fmt))
        if rel.endswith(".pb"):
            # protobuf cut between two entities is a valid, shorter message;
            # cut inside one it is not — the half of this file is inside one.
            assert parsed.rejects, rel
        else:
            assert parsed.rejects and parsed.tables == {}, rel


@pytest.mark.parametrize("fmt", FORMATS)
@pytest.mark.parametrize("payload", [b"", b"\x00\x01\x02\xff\xfe", b"null", b"[1, 2, 3]",
                                     b"<alert>", b"\x89PNG\r\n\x1a\n", "中文".encode("gbk"),
                                     b'{"id": 1, "type": []}', b"header { timestamp: x }"])
def test_garbage_gives_rejects(fmt, payload):
    parsed = checked(parse(payload, fmt))
    assert parsed.tables == {}
    assert parsed.rejects


@pytest.mark.parametrize("fmt", FORMATS)
@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow,
                                                                  HealthCheck.function_scoped_fixture])
@given(data=st.binary(max_size=300))
def test_random_bytes_never_raise(fmt, data):
    checked(parse(data, fmt))


def test_every_cut_of_every_sample_is_handled(td):
    rnd = random.Random(20240720)
    for rel, fmt in SAMPLES.items():
        data = (td / rel).read_bytes()
        for n in rnd.sample(range(len(data)), k=min(40, len(data))):
            checked(parse(data[:n], fmt))


def test_reject_raw_is_capped():
    big = b'{"id": "x", "type": "CrowdFlowObserved", "peopleCount": "' + b"9" * 10_000 + b'"}'
    parsed = checked(parse(big, "ngsi-ld"))
    assert len(parsed.rejects[0].raw) == RAW_LIMIT
    with pytest.raises(AttributeError):
        parsed.rejects[0].reason = "changed"  # frozen
