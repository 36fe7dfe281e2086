"""GTFS-Realtime as agencies publish it: the JSON form, the content checks,
service alerts as warnings, and the id checks against a static GTFS.

The real samples are read from ``shared/testdata`` (the ``td`` fixture);
defects are made by hand, one per test, and each is checked in the three
forms a feed comes in (binary, text format, JSON).
"""
from __future__ import annotations

import json
import sqlite3
from datetime import datetime, timezone

import pytest
from google.protobuf import json_format, text_format
from google.transit import gtfs_realtime_pb2 as rt

from dashboard.cli import main
from indicators.feeds.adapters import Parsed, detect_format, gtfs_rt, parse
from indicators.feeds.adapters.base import RAW_LIMIT
from indicators.feeds.gtfs_static import load_static
from indicators.feeds.schemas import SCHEMAS

T0 = 1_700_000_000  # 2023-11-14T22:13:20Z
FORMS = ("binary", "text", "json-camel", "json-snake")


def utc(*args) -> datetime:
    return datetime(*args, tzinfo=timezone.utc)


def checked(parsed: Parsed) -> Parsed:
    for kind, table in parsed.tables.items():
        assert table.schema.equals(SCHEMAS[kind]), kind
    for r in parsed.rejects:
        assert r.reason and r.where and len(r.raw) <= RAW_LIMIT
        assert "unexpectedly" not in r.reason, r.reason
    return parsed


def encode(msg: rt.FeedMessage, form: str) -> bytes:
    """The same FeedMessage as an agency would publish it in ``form``."""
    if form == "binary":
        return msg.SerializeToString()
    if form == "text":
        return text_format.MessageToString(msg).encode()
    snake = form == "json-snake"
    return json.dumps(json_format.MessageToDict(msg, preserving_proto_field_name=snake)).encode()


def feed() -> rt.FeedMessage:
    msg = rt.FeedMessage()
    msg.header.gtfs_realtime_version = "2.0"
    msg.header.timestamp = T0
    return msg


def trip_update(msg: rt.FeedMessage, entity_id: str = "tu1", trip_id: str = "1") -> rt.TripUpdate:
    tu = msg.entity.add(id=entity_id).trip_update
    tu.trip.trip_id = trip_id
    tu.vehicle.id = "bus-7"
    return tu


def bus(parsed: Parsed) -> list[dict]:
    return parsed.tables["bus"].to_pylist() if "bus" in parsed.tables else []


def gtfs_parse(data: bytes, static=None) -> Parsed:
    return checked(gtfs_rt.parse(data, None, static=static))


@pytest.fixture(scope="module")
def bullrunner(td):
    return load_static(td / "gtfs-rt/bullrunner-gtfs.zip")


# --- the JSON form ---------------------------------------------------------------

@pytest.mark.parametrize("sample", ["bullrunner-vehicle-positions.pb", "trip-updates-full.asciipb",
                                    "alerts.asciipb"])
def test_json_camel_and_snake_case_give_the_rows_of_the_binary_form(td, sample):
    data = (td / "gtfs-rt" / sample).read_bytes()
    msg = rt.FeedMessage()
    if sample.endswith(".pb"):
        msg.ParseFromString(data)
    else:
        text_format.Parse(data.decode(), msg)
    binary = checked(parse(msg.SerializeToString(), "gtfs-rt"))
    assert binary.tables and binary.rejects == []
    for form in ("json-camel", "json-snake"):
        payload = encode(msg, form)
        assert (b'"tripUpdate"' in payload or b'"gtfsRealtimeVersion"' in payload) == (form == "json-camel")
        parsed = checked(parse(payload, "gtfs-rt"))
        assert parsed.rejects == []
        assert parsed.tables.keys() == binary.tables.keys()
        for kind in binary.tables:
            assert parsed.tables[kind].equals(binary.tables[kind]), (form, kind)


def test_json_as_agencies_write_it_by_hand():
    """Integers as strings or as numbers, enum names, unknown extension fields."""
    camel = {"header": {"gtfsRealtimeVersion": "2.0", "timestamp": str(T0), "incrementality": "FULL_DATASET"},
             "entity": [{"id": "v1", "vehicle": {
                 "trip": {"tripId": "t9", "routeId": "B12", "startDate": "20231114"},
                 "vehicle": {"id": "GZ-B12", "label": "B12 #3"},
                 "position": {"latitude": 23.1066, "longitude": 113.3245, "bearing": 90, "speed": 5.5},
                 "currentStatus": "IN_TRANSIT_TO", "stopId": "canton_tower_west",
                 "timestamp": str(T0 + 30), "occupancyStatus": "FEW_SEATS_AVAILABLE",
                 "agencyExtension": {"crowding": 3}}}]}
    snake = {"header": {"gtfs_realtime_version": "2.0", "timestamp": T0},
             "entity": [{"id": "v1", "vehicle": {
                 "trip": {"trip_id": "t9", "route_id": "B12", "start_date": "20231114"},
                 "vehicle": {"id": "GZ-B12", "label": "B12 #3"},
                 "position": {"latitude": 23.1066, "longitude": 113.3245, "bearing": 90, "speed": 5.5},
                 "current_status": 2, "stop_id": "canton_tower_west",
                 "timestamp": T0 + 30, "occupancy_status": 2}}]}
    rows = [bus(gtfs_parse(json.dumps(doc).encode())) for doc in (camel, snake)]
    assert rows[0] == rows[1]
    (row,) = rows[0]
    assert (row["vehicle_id"], row["trip_id"], row["route_id"]) == ("GZ-B12", "t9", "B12")
    assert row["stop_id"] == "canton_tower_west" and row["occupancy_status"] == "FEW_SEATS_AVAILABLE"
    assert row["event_time"] == utc(2023, 11, 14, 22, 13, 50)
    assert row["lat"] == pytest.approx(23.1066, abs=1e-5) and row["speed_mps"] == pytest.approx(5.5)


@pytest.mark.parametrize("doc, where, words", [
    ('{"header": {"gtfsRealtimeVersion": "2.0", "timestamp": "soon"}}', "header.timestamp", "timestamp"),
    ('{"header": {"gtfsRealtimeVersion": "2.0"}, "entity": [{"id": "1", "vehicle": '
     '{"position": {"latitude": "north"}}}]}', "entity[0].vehicle.position.latitude", "latitude"),
    ('{"type": "FeatureCollection", "features": []}', "header", "missing required field(s): header"),
    ('[{"id": "1"}]', "payload", "a list, not a GTFS-Realtime FeedMessage"),
    ('{"header": {"gtfsRealtimeVersion": "2.0", ', "line 1", "not valid JSON"),
])
def test_json_that_is_no_feed_message_is_one_located_reject(doc, where, words):
    parsed = gtfs_parse(doc.encode())
    assert parsed.tables == {}
    (r,) = parsed.rejects
    assert r.where == where and words in r.reason


def test_json_form_is_detected_and_ingested_as_gtfs_rt(capsys, td, tmp_path):
    msg = rt.FeedMessage()
    msg.ParseFromString((td / "gtfs-rt/bullrunner-vehicle-positions.pb").read_bytes())
    path = tmp_path / "vehicle-positions.json"
    path.write_bytes(encode(msg, "json-camel"))
    assert gtfs_rt.looks_like_json(path.read_bytes())
    assert detect_format(path.read_bytes()) == detect_format(path.read_bytes(), "feed.json") == "gtfs-rt"
    code, out = cli(capsys, "ingest", str(path), "--data", str(tmp_path / "var"), "--json")
    assert code == 0 and out["format"] == "gtfs-rt" and out["accepted"] == 10 and out["rejected_count"] == 0
    snake = tmp_path / "snake.json"
    snake.write_bytes(encode(msg, "json-snake"))
    code, out = cli(capsys, "ingest", str(snake), "--data", str(tmp_path / "var"), "--json")
    assert code == 0 and out["format"] == "gtfs-rt" and out["duplicates"] == 10  # the same feed again
    # SensorThings / NGSI-LD JSON are still told apart from it
    sta = td / "iot/sensorthings/thing-complete-deep-insert.json"
    assert not gtfs_rt.looks_like_json(sta.read_bytes()) and detect_format(sta.read_bytes()) == "sensorthings"


# --- checks of the contents, in every form -------------------------------------

@pytest.mark.parametrize("form", FORMS)
def test_latitude_out_of_range_is_rejected(form):
    msg = feed()
    v = msg.entity.add(id="far").vehicle
    v.vehicle.id = "bus-far"
    v.position.latitude, v.position.longitude = 123.0, 113.3
    parsed = gtfs_parse(encode(msg, form))
    (r,) = parsed.rejects
    assert r.where == "entity 'far'.vehicle.position"
    assert "lat 123" in r.reason and "outside WGS 84" in r.reason and bus(parsed) == []


@pytest.mark.parametrize("form", FORMS)
def test_a_timestamp_in_milliseconds_is_rejected(form):
    msg = feed()
    ok = msg.entity.add(id="ok").vehicle
    ok.vehicle.id, ok.timestamp = "bus-1", T0
    ms = msg.entity.add(id="ms").vehicle
    ms.vehicle.id, ms.timestamp = "bus-2", T0 * 1000
    parsed = gtfs_parse(encode(msg, form))
    assert [r["vehicle_id"] for r in bus(parsed)] == ["bus-1"]
    (r,) = parsed.rejects
    assert r.where == "entity 'ms'.vehicle.timestamp"
    assert f"{T0 * 1000} looks like milliseconds, GTFS-RT timestamps are POSIX seconds" in r.reason


def test_a_header_timestamp_in_milliseconds_refuses_the_feed():
    msg = feed()
    msg.header.timestamp = T0 * 1000
    msg.entity.add(id="v").vehicle.vehicle.id = "bus-1"
    parsed = gtfs_parse(msg.SerializeToString())
    (r,) = parsed.rejects
    assert r.where == "header.timestamp" and "looks like milliseconds" in r.reason and parsed.tables == {}


@pytest.mark.parametrize("form", FORMS)
@pytest.mark.parametrize("value", ["2024-13-45", "20241345", "20230229"])
def test_a_start_date_that_is_no_date_is_rejected(form, value):
    msg = feed()
    tu = trip_update(msg, "late-trip")
    tu.trip.start_date = value
    tu.stop_time_update.add(stop_sequence=1, stop_id="101").arrival.delay = 60
    parsed = gtfs_parse(encode(msg, form))
    (r,) = parsed.rejects
    assert r.where == "entity 'late-trip'.trip_update.trip.start_date"
    assert r.reason.startswith("entity 'late-trip': ") and f"start_date '{value}'" in r.reason
    assert "YYYYMMDD" in r.reason


@pytest.mark.parametrize("form", FORMS)
def test_stop_times_going_backwards_are_rejected_naming_both_stops(form):
    msg = feed()
    tu = trip_update(msg, "back")
    for seq, stop, arr, dep in ((1, "101", T0 + 60, T0 + 90), (2, "102", T0 + 200, T0 + 210),
                                (3, "103", T0 + 150, T0 + 160)):
        stu = tu.stop_time_update.add(stop_sequence=seq, stop_id=stop)
        stu.arrival.time, stu.departure.time = arr, dep
    good = trip_update(msg, "fine", trip_id="2")
    for seq, stop, t in ((1, "101", T0 + 60), (2, "102", T0 + 60), (3, "103", T0 + 120)):  # equal is fine
        good.stop_time_update.add(stop_sequence=seq, stop_id=stop).arrival.time = t
    parsed = gtfs_parse(encode(msg, form))
    assert [r["trip_id"] for r in bus(parsed)] == ["2"]
    (r,) = parsed.rejects
    assert r.where == "entity 'back'.trip_update.stop_time_update[2].arrival.time"
    assert "go backwards from stop '102' (stop_sequence 2) to stop '103' (stop_sequence 3)" in r.reason


def test_departure_before_arrival_and_unsorted_stop_sequence_are_rejected():
    msg = feed()
    tu = trip_update(msg, "dwell")
    stu = tu.stop_time_update.add(stop_sequence=1, stop_id="101")
    stu.arrival.time, stu.departure.time = T0 + 100, T0 + 40
    tu = trip_update(msg, "order", trip_id="2")
    tu.stop_time_update.add(stop_sequence=5, stop_id="105")
    tu.stop_time_update.add(stop_sequence=3, stop_id="103")
    parsed = gtfs_parse(msg.SerializeToString())
    by_where = {r.where: r.reason for r in parsed.rejects}
    assert "departure" in by_where["entity 'dwell'.trip_update.stop_time_update[0].departure.time"]
    assert "before the arrival" in by_where["entity 'dwell'.trip_update.stop_time_update[0].departure.time"]
    assert "not sorted by stop_sequence" in by_where["entity 'order'.trip_update.stop_time_update[1].stop_sequence"]


# --- ids against the static GTFS -----------------------------------------------

@pytest.mark.parametrize("form", FORMS)
def test_unknown_trip_id_is_rejected_when_the_static_gtfs_is_loaded(form, bullrunner):
    msg = feed()
    known = trip_update(msg, "known", trip_id="1")
    known.trip.route_id = "A"
    known.stop_time_update.add(stop_sequence=1, stop_id="101").arrival.delay = 30
    trip_update(msg, "ghost", trip_id="no-such-trip")
    added = trip_update(msg, "extra", trip_id="extra-run-1")
    added.trip.schedule_relationship = rt.TripDescriptor.ADDED  # a new trip is not in the schedule
    data = encode(msg, form)
    parsed = gtfs_parse(data, bullrunner)
    assert sorted(r["trip_id"] for r in bus(parsed)) == ["1", "extra-run-1"]
    (r,) = parsed.rejects
    assert r.where == "entity 'ghost'.trip_update.trip.trip_id"
    assert "trip_id 'no-such-trip' is not in the static GTFS (trips.txt)" in r.reason
    assert r.code == "unknown_reference"
    assert any("checked against the static GTFS" in n for n in parsed.notes)
    # without a static GTFS nothing is checked, and a note says so once
    parsed = gtfs_parse(data)
    assert parsed.rejects == [] and len(bus(parsed)) == 3
    assert sum("ids were not checked" in n for n in parsed.notes) == 1


def test_unknown_route_and_stop_ids_are_named(bullrunner):
    msg = feed()
    v = msg.entity.add(id="v").vehicle
    v.vehicle.id, v.trip.route_id, v.stop_id = "1536", "Z", "999"
    tu = trip_update(msg, "t", trip_id="3")
    tu.stop_time_update.add(stop_sequence=1, stop_id="101")
    tu.stop_time_update.add(stop_sequence=2, stop_id="nowhere")
    parsed = gtfs_parse(msg.SerializeToString(), bullrunner)
    by_where = {r.where: r.reason for r in parsed.rejects}
    assert "route_id 'Z' is not in the static GTFS" in by_where["entity 'v'.vehicle.trip.route_id"]
    assert "stop_id '999'" in by_where["entity 'v'.vehicle.trip.route_id"]  # every problem in one reject
    assert "stop_id 'nowhere'" in by_where["entity 't'.trip_update.stop_time_update[1].stop_id"]


# --- service alerts --------------------------------------------------------------

def test_the_alerts_sample_becomes_a_warning_row_with_its_headline(td):
    parsed = checked(parse((td / "gtfs-rt/alerts.asciipb").read_bytes(), "gtfs-rt"))
    assert parsed.rejects == [] and "bus" not in parsed.tables
    assert not any("not loaded" in n for n in parsed.notes)
    (w,) = parsed.tables["warning"].to_pylist()
    assert w["signal"] == "other" and w["status"] == "issued" and w["colour"] == "unknown"
    assert w["headline"] == "Stop at Elm street is closed, temporary stop at Oak street"
    assert w["headline_en"] == w["headline"] and w["language"] == "en"
    assert w["event"] == "DETOUR (CONSTRUCTION)"
    assert w["area"] == "route 219; stop 16230; route 100 at stop 16299"
    assert w["event_time"] == utc(2010, 9, 14, 9, 44, 28)      # the feed timestamp = the period's start
    assert w["expires"] == utc(2010, 9, 14, 12, 41, 12)        # active_period end 1284468072
    assert w["event_id"] == "alert/0@1284457468/1284457468"               # period start / feed timestamp
    texts = json.loads(w["texts"])
    assert texts["en"]["description"].startswith("Due to construction at Elm street the stop is closed")


def _alert(msg, entity_id="a1") -> rt.Alert:
    al = msg.entity.add(id=entity_id).alert
    al.informed_entity.add(route_id="A")
    return al


def test_alert_languages_severity_periods_and_route_names(bullrunner):
    msg = feed()
    al = _alert(msg, "zh")
    al.header_text.translation.add(text="Route A detour", language="en")
    al.header_text.translation.add(text="A线绕行", language="zh-CN")
    al.description_text.translation.add(text="因施工绕行", language="zh-CN")
    al.severity_level = rt.Alert.SEVERE
    al.informed_entity.add(stop_id="101")
    old = _alert(msg, "old")
    old.header_text.translation.add(text="Closed yesterday")
    old.active_period.add(start=T0 - 86_400, end=T0 - 3_600)
    nxt = _alert(msg, "next")
    nxt.header_text.translation.add(text="Works tonight", language="en")
    nxt.active_period.add(start=T0 - 7_200, end=T0 - 3_600)
    nxt.active_period.add(start=T0 + 3_600, end=T0 + 7_200)
    parsed = gtfs_parse(msg.SerializeToString(), bullrunner)
    assert parsed.rejects == []
    w = {r["event_id"].split("@")[0]: r for r in parsed.tables["warning"].to_pylist()}
    assert w["alert/zh"]["headline"] == "A线绕行" and w["alert/zh"]["language"] == "zh-CN"
    assert w["alert/zh"]["headline_en"] == "Route A detour"
    assert (w["alert/zh"]["severity"], w["alert/zh"]["colour"]) == ("severe", "orange")
    assert w["alert/zh"]["area"] == "route A (Green Campus Loop); stop 101"
    assert w["alert/zh"]["event_time"] == utc(2023, 11, 14, 22, 13, 20) and w["alert/zh"]["expires"] is None
    assert w["alert/old"]["status"] == "cancelled"                               # ended: loaded as ended
    assert w["alert/old"]["expires"] == utc(2023, 11, 14, 21, 13, 20)
    assert w["alert/next"]["status"] == "issued"
    assert w["alert/next"]["expires"] == utc(2023, 11, 15, 0, 13, 20)          # the coming period's end
    assert w["alert/next"]["event_id"].startswith(f"alert/next@{T0 + 3_600}/")
    assert any("not active yet" in n for n in parsed.notes)
    assert any("active period has ended" in n for n in parsed.notes)


def test_alert_defects_are_rejected(bullrunner):
    msg = feed()
    _alert(msg, "silent")                                         # no header_text
    ghost = _alert(msg, "ghost")
    ghost.header_text.translation.add(text="Route Q closed", language="en")
    ghost.informed_entity.add(route_id="Q")
    parsed = gtfs_parse(msg.SerializeToString(), bullrunner)
    by_where = {r.where: r.reason for r in parsed.rejects}
    assert "no header_text" in by_where["entity 'silent'.alert.header_text"]
    assert "route_id 'Q'" in by_where["entity 'ghost'.alert.informed_entity[1].route_id"]
    assert "warning" not in parsed.tables


# --- the command line ------------------------------------------------------------

def cli(capsys, *args: str) -> tuple[int, dict | None]:
    """`scenic-twin ARGS` in this process: (exit code, the --json output); stderr in ``cli.err``."""
    try:
        code = main(list(args))
    except SystemExit as e:
        code = e.code if isinstance(e.code, int) else 2
    out = capsys.readouterr()
    cli.err = out.err
    return code, (json.loads(out.out) if out.out.strip().startswith("{") else None)


def test_ingest_checks_ids_against_the_loaded_static_gtfs(capsys, td, tmp_path, monkeypatch):
    monkeypatch.setenv("SCENIC_TWIN_VAR", str(tmp_path / "var"))
    msg = feed()
    msg.header.timestamp = int(datetime.now(timezone.utc).timestamp())
    trip_update(msg, "ok", trip_id="1").delay = 60
    trip_update(msg, "ghost", trip_id="no-such-trip").delay = 60
    path = tmp_path / "trip-updates.json"
    path.write_bytes(encode(msg, "json-camel"))
    # no static GTFS yet: not checked, both accepted, and said
    code, out = cli(capsys, "ingest", str(path), "--data", str(tmp_path / "first"), "--json")
    assert code == 0 and out["accepted"] == 2 and any("not checked" in n for n in out["notes"])
    # --gtfs for one run
    code, out = cli(capsys, "ingest", str(path), "--data", str(tmp_path / "second"), "--json",
                    "--gtfs", str(td / "gtfs-rt/bullrunner-gtfs.zip"))
    assert code == 1 and out["accepted"] == 1
    (bad,) = out["rejected"]
    assert bad["code"] == "unknown_reference" and "no-such-trip" in bad["reason"]
    # the stored one: `gtfs load` into the var folder, then a plain ingest finds it
    code, summary = cli(capsys, "gtfs", "load", str(td / "gtfs-rt/bullrunner-gtfs.zip"), "--json")
    assert code == 0 and summary["stored"] == str(tmp_path / "var" / "feeds" / "gtfs_static.json")
    code, out = cli(capsys, "ingest", str(path), "--json")
    assert code == 1 and out["accepted"] == 1 and out["rejected"][0]["where"].endswith("trip.trip_id")
    with sqlite3.connect(tmp_path / "var" / "feeds" / "dead-letters.sqlite") as db:
        assert db.execute("SELECT count(*) FROM dead_letters WHERE reason LIKE '%no-such-trip%'").fetchone()[0] == 1


def test_ingest_refuses_an_unusable_gtfs_zip(capsys, tmp_path):
    path = tmp_path / "feed.json"
    msg = feed()
    msg.entity.add(id="v").vehicle.vehicle.id = "bus-1"
    path.write_bytes(encode(msg, "json-snake"))
    bad = tmp_path / "not-gtfs.zip"
    bad.write_bytes(b"PK\x03\x04 broken")
    code, _ = cli(capsys, "ingest", str(path), "--data", str(tmp_path), "--gtfs", str(bad))
    assert code == 2 and "--gtfs" in cli.err and "cannot be opened as a ZIP archive" in cli.err
    assert not (tmp_path / "feeds" / "log").exists()  # refused before anything was written
