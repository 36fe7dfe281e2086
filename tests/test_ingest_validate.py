"""Table-driven tests of ``indicators.feeds.validate``.

Every case is checked twice: as a Python dict record and as an Arrow table
(the two paths must judge a record the same way).
"""
from __future__ import annotations

import copy
import json
from datetime import datetime, timedelta, timezone

import numpy as np
import pyarrow as pa
import pytest

from indicators.feeds import validate as V
from indicators.feeds.schemas import FEED_KINDS, SCHEMAS
from indicators.feeds.validate import BadRecord, reason_code, validate

UTC = timezone.utc
NOW = datetime(2025, 5, 1, 12, 0, tzinfo=UTC)
T = "2025-05-01T11:59:00Z"
CANTON = {"lon": 113.3245, "lat": 23.1066}

GOOD: dict[str, dict] = {
    "crowd": {"event_id": "crowd-1", "event_time": T, "source": "sim", "zone_id": "z-plaza", "cell_id": "c12",
              "count": 1200},
    "gate": {"event_id": "gate-1", "event_time": T, "source": "sim", "gate_id": "g-north", "zone_id": "z-plaza",
             "entries": 34, "exits": 12, "interval_s": 60},
    "video": {"event_id": "video-1", "event_time": T, "source": "vms", "camera_id": "cam-7",
              "algorithm": "crowd_gathering", "confidence": 0.93, "zone_id": "z-plaza", "object_count": 41,
              **CANTON},
    "facility": {"event_id": "fac-1", "event_time": T, "source": "iot", "asset_id": "lamp-3", "asset_type": "lamp",
                 "metric": "lamp_on", "value": 1},
    "bus": {"event_id": "bus-1", "event_time": T, "source": "gtfs-rt:gz", "vehicle_id": "v-88", "route_id": "r-19",
            "trip_id": "t-1", "stop_id": "s-canton-tower", **CANTON, "bearing": 271.5, "speed_mps": 8.2,
            "occupancy_status": "CRUSHED_STANDING_ROOM_ONLY", "occupancy_pct": 180, "delay_s": -45},
    "station": {"event_id": "st-1", "event_time": T, "source": "metro", "station_id": "apm-canton-tower",
                "entries": 310, "exits": 290, "interval_s": 300, "platform_persons": 850, "control_level": 2},
    "traffic": {"event_id": "tr-1", "event_time": T, "source": "amap", "segment_id": "seg-yuejiang-w",
                "speed_kmh": 23.5, "flow_vph": 1400, "occupancy_pct": 37},
    "weather": {"event_id": "wx-1", "event_time": T, "source": "cma", "station_id": "G1234", "temperature_c": 31.2,
                "rain_1h_mm": 12.5, "wind_speed_ms": 4.1, "gust_ms": 11.0, "humidity_pct": 88,
                "visibility_m": 8000},
    "warning": {"event_id": "warn-1", "event_time": T, "source": "cap", "signal": "rainstorm", "colour": "red",
                "status": "issued", "area": "海珠区", "headline": "广州市海珠区暴雨红色预警",
                "expires": "2025-05-01T20:00:00+08:00"},
    "case": {"event_id": "case-1", "event_time": T, "source": "12345", "case_id": "K-2025-1", "category": "litter",
             "status": "dispatched", "zone_id": "z-plaza", **CANTON, "description": "bottles near gate 3",
             "departments": ["sanitation", "security"]},
    "staff": {"event_id": "staff-1", "event_time": T, "source": "ptt", "staff_id": "p-17", **CANTON,
              "status": "available"},
}

# (kind, field, bad value or DELETE, expected code, words expected in the reason)
DELETE = object()
CASES: list[tuple[str, str, object, str, str]] = [
    # missing fields
    ("crowd", "zone_id", DELETE, "missing_field", "'zone_id'"),
    ("crowd", "zone_id", "", "missing_field", "empty"),
    ("gate", "entries", None, "missing_field", "'entries'"),
    ("video", "confidence", DELETE, "missing_field", "'confidence'"),
    ("facility", "metric", DELETE, "missing_field", "'metric'"),
    ("bus", "vehicle_id", DELETE, "missing_field", "'vehicle_id'"),
    ("station", "exits", DELETE, "missing_field", "'exits'"),
    ("traffic", "speed_kmh", None, "missing_field", "'speed_kmh'"),
    ("weather", "station_id", DELETE, "missing_field", "'station_id'"),
    ("warning", "colour", DELETE, "missing_field", "'colour'"),
    ("case", "category", DELETE, "missing_field", "'category'"),
    ("staff", "lat", DELETE, "missing_field", "'lat'"),
    ("staff", "event_time", DELETE, "missing_field", "'event_time'"),
    ("crowd", "event_id", DELETE, "missing_field", "'event_id'"),
    # wrong types
    ("crowd", "count", "lots", "bad_type", "'count' = 'lots' cannot be read as an integer"),
    ("crowd", "count", 12.5, "bad_type", "'count'"),
    ("crowd", "count", 2 ** 40, "bad_type", "'count'"),
    ("gate", "interval_s", [60], "bad_type", "'interval_s'"),
    ("video", "confidence", "high", "bad_type", "'confidence'"),
    ("video", "camera_id", {"id": 7}, "bad_type", "'camera_id'"),
    ("video", "camera_id", True, "bad_type", "'camera_id'"),
    ("facility", "value", "on", "bad_type", "'value'"),
    ("bus", "lon", "113.3x", "bad_type", "'lon'"),
    ("station", "control_level", 1000, "bad_type", "'control_level'"),
    ("traffic", "flow_vph", {"v": 1}, "bad_type", "'flow_vph'"),
    ("weather", "temperature_c", "hot", "bad_type", "'temperature_c'"),
    ("warning", "expires", "tomorrow", "bad_type", "'expires'"),
    ("case", "departments", "sanitation", "bad_type", "'departments'"),
    ("case", "departments", ["ok", 3], "bad_type", "'departments'"),
    ("staff", "event_time", "yesterday", "bad_type", "ISO 8601"),
    ("staff", "event_time", "2025-05-01T11:59:00", "bad_type", "no UTC offset"),
    ("staff", "event_time", 1.5e12, "bad_type", "'event_time'"),
    # ids
    ("crowd", "event_id", "", "bad_id", "1-200 characters"),
    ("video", "event_id", "x" * 201, "bad_id", "1-200 characters"),
    # ranges
    ("crowd", "count", -1, "out_of_range", "'count' = -1 is outside [0, +inf)"),
    ("gate", "exits", -3, "out_of_range", "'exits'"),
    ("gate", "interval_s", 0, "out_of_range", "'interval_s'"),
    ("video", "confidence", 1.7, "out_of_range", "field 'confidence' = 1.7 is outside [0, 1]"),
    ("video", "confidence", float("nan"), "out_of_range", "not a finite number"),
    ("video", "object_count", -2, "out_of_range", "'object_count'"),
    ("video", "lon", 181.0, "out_of_range", "'lon' = 181.0 is outside [-180, 180]"),
    ("video", "lat", -90.5, "out_of_range", "'lat'"),
    ("facility", "value", 0.5, "out_of_range", "metric 'lamp_on'"),
    ("bus", "occupancy_pct", 301, "out_of_range", "[0, 300]"),
    ("bus", "bearing", 400, "out_of_range", "'bearing'"),
    ("bus", "speed_mps", -1, "out_of_range", "'speed_mps'"),
    ("station", "control_level", 4, "out_of_range", "'control_level'"),
    ("station", "platform_persons", -1, "out_of_range", "'platform_persons'"),
    ("traffic", "occupancy_pct", 101, "out_of_range", "[0, 100]"),
    ("traffic", "speed_kmh", -0.5, "out_of_range", "'speed_kmh'"),
    ("weather", "humidity_pct", 120, "out_of_range", "'humidity_pct'"),
    ("weather", "rain_1h_mm", -1, "out_of_range", "'rain_1h_mm'"),
    ("weather", "wind_speed_ms", float("inf"), "out_of_range", "not a finite number"),
    ("warning", "event_time", "1999-12-31T23:59:59Z", "out_of_range", "'event_time'"),
    ("warning", "expires", "1990-01-01T00:00:00Z", "out_of_range", "'expires'"),
    ("case", "lat", 95.0, "out_of_range", "'lat'"),
    ("staff", "lon", -200.0, "out_of_range", "'lon'"),
    ("staff", "event_time", "2025-05-02T12:00:01Z", "out_of_range", "now + 1 day"),
    # enums
    ("video", "algorithm", "jaywalking", "bad_enum", "'algorithm' = 'jaywalking' is not one of"),
    ("facility", "metric", "lamp_colour", "bad_enum", "'metric'"),
    ("bus", "occupancy_status", "SQUEEZED", "bad_enum", "'occupancy_status'"),
    ("warning", "signal", "tsunami", "bad_enum", "'signal'"),
    ("warning", "colour", "purple", "bad_enum", "'colour'"),
    ("warning", "status", "deleted", "bad_enum", "'status'"),
    ("case", "category", "graffiti", "bad_enum", "'category'"),
    ("case", "status", "lost", "bad_enum", "'status'"),
    ("staff", "status", "asleep", "bad_enum", "'status'"),
]


def _bad_record(kind: str, field: str, value: object) -> dict:
    rec = copy.deepcopy(GOOD[kind])
    if value is DELETE:
        del rec[field]
    else:
        rec[field] = value
    return rec


def _as_table(records: list[dict]) -> pa.Table:
    return pa.Table.from_pylist(records)


def test_every_kind_has_a_good_record_and_cases():
    assert set(GOOD) == set(FEED_KINDS)
    assert {c[0] for c in CASES} == set(FEED_KINDS)
    codes = {c[3] for c in CASES}
    assert codes == {"missing_field", "bad_type", "bad_id", "out_of_range", "bad_enum"}


@pytest.mark.parametrize("kind", FEED_KINDS)
def test_good_record_passes_dict_and_arrow(kind):
    for records in ([GOOD[kind]], _as_table([GOOD[kind]])):
        good, bad = validate(kind, records, now=NOW)
        assert bad == []
        assert good.num_rows == 1
        assert good.schema.equals(SCHEMAS[kind], check_metadata=True)
        row = good.to_pylist()[0]
        assert row["event_id"] == GOOD[kind]["event_id"]
        assert row["event_time"] == datetime(2025, 5, 1, 11, 59, tzinfo=UTC)


@pytest.mark.parametrize("kind", FEED_KINDS)
def test_table_with_exact_schema_passes_unchanged(kind):
    good1, _ = validate(kind, [GOOD[kind]], now=NOW)
    good2, bad = validate(kind, good1, now=NOW)
    assert bad == [] and good2.equals(good1)


@pytest.mark.parametrize("kind,field,value,code,words", CASES,
                         ids=[f"{c[0]}.{c[1]}={c[3]}:{i}" for i, c in enumerate(CASES)])
def test_one_bad_field_gives_the_exact_code(kind, field, value, code, words):
    bad_rec = _bad_record(kind, field, value)
    records = [GOOD[kind], bad_rec, GOOD[kind]]
    good, bad = validate(kind, records, now=NOW)
    assert [b.index for b in bad] == [1]
    b = bad[0]
    assert (b.kind, b.code) == (kind, code), b.reason
    assert words in b.reason
    assert f"'{field}'" in b.reason or field == "event_time" and "event_time" in b.reason
    assert good.num_rows == 2
    # the raw text is the record as JSON
    raw = json.loads(b.raw)
    assert raw.keys() == bad_rec.keys()
    assert raw.get("event_id") == bad_rec.get("event_id")


def _representable(case: tuple) -> bool:
    try:
        _as_table([_bad_record(*case[:3])])
        return True
    except (pa.ArrowInvalid, pa.ArrowTypeError, TypeError, OverflowError):
        return False


# a list mixing strings and numbers cannot exist in an Arrow column
ARROW_CASES = [c for c in CASES if _representable(c)]


def test_nearly_all_cases_exist_in_arrow_too():
    assert len(CASES) - len(ARROW_CASES) <= 1


@pytest.mark.parametrize("kind,field,value,code,words", ARROW_CASES,
                         ids=[f"{c[0]}.{c[1]}={c[3]}:{i}" for i, c in enumerate(ARROW_CASES)])
def test_arrow_path_judges_like_the_dict_path(kind, field, value, code, words):
    table = _as_table([_bad_record(kind, field, value)])
    good, bad = validate(kind, table, now=NOW)
    assert good.num_rows == 0
    assert len(bad) == 1
    assert bad[0].code == code, bad[0].reason
    assert f"'{field}'" in bad[0].reason


def test_unknown_kind_rejects_every_record():
    recs = [GOOD["crowd"], {"x": 1}, "garbage"]
    good, bad = validate("parking", recs, now=NOW)
    assert good.num_rows == 0
    assert [(b.index, b.code) for b in bad] == [(0, "unknown_kind"), (1, "unknown_kind"), (2, "unknown_kind")]
    good, bad = validate("parking", _as_table([GOOD["crowd"]] * 3), now=NOW)
    assert [b.code for b in bad] == ["unknown_kind"] * 3
    assert "parking" in bad[0].reason


def test_records_that_are_not_objects():
    good, bad = validate("crowd", [GOOD["crowd"], "x", 7, None, [1, 2]], now=NOW)
    assert good.num_rows == 1
    assert [(b.index, b.code) for b in bad] == [(1, "bad_type"), (2, "bad_type"), (3, "bad_type"), (4, "bad_type")]
    assert all("not a JSON object" in b.reason for b in bad)


def test_programmer_errors_raise():
    with pytest.raises(TypeError):
        validate("crowd", 42, now=NOW)  # type: ignore[arg-type]
    with pytest.raises(TypeError):
        validate("crowd", "{}", now=NOW)  # type: ignore[arg-type]


def test_now_is_a_parameter_not_the_wall_clock():
    rec = dict(GOOD["crowd"], event_time="2030-01-01T00:00:00Z")
    assert validate("crowd", [rec], now=datetime(2029, 12, 31, 1, tzinfo=UTC))[1] == []
    bad = validate("crowd", [rec], now=datetime(2029, 12, 30, 23, tzinfo=UTC))[1]
    assert [b.code for b in bad] == ["out_of_range"]
    # without now only the 2000-01-01 lower bound applies
    assert validate("crowd", [rec])[1] == []
    assert validate("crowd", [dict(rec, event_time="1999-01-01T00:00:00Z")])[1][0].code == "out_of_range"


def test_time_representations():
    recs = [
        dict(GOOD["crowd"], event_id="a", event_time="2025-05-01T19:59:00+08:00"),
        dict(GOOD["crowd"], event_id="b", event_time=datetime(2025, 5, 1, 11, 59, tzinfo=UTC)),
        dict(GOOD["crowd"], event_id="c", event_time=int(datetime(2025, 5, 1, 11, 59, tzinfo=UTC).timestamp() * 1000)),
        dict(GOOD["crowd"], event_id="d", event_time="2025-05-01T11:59:00.000123Z"),
        dict(GOOD["crowd"], event_id="e", event_time=datetime(2025, 5, 1, 11, 59)),   # naive: refused
    ]
    good, bad = validate("crowd", recs, now=NOW)
    assert [b.index for b in bad] == [4] and bad[0].code == "bad_type"
    assert set(good.column("event_time").to_pylist()) == {datetime(2025, 5, 1, 11, 59, tzinfo=UTC)}
    naive = pa.table({"event_id": ["x"], "event_time": pa.array([0], pa.timestamp("ms")), "zone_id": ["z"],
                      "count": [1]})
    assert validate("crowd", naive, now=NOW)[1][0].code == "bad_type"


def test_lenient_numeric_and_id_reading_is_the_same_for_both_paths():
    rec = dict(GOOD["crowd"], count="42", zone_id=7)
    for records in ([rec], _as_table([rec])):
        good, bad = validate("crowd", records, now=NOW)
        assert bad == []
        assert good.column("count").to_pylist() == [42]
        assert good.column("zone_id").to_pylist() == ["7"]


def test_facility_values_per_metric():
    ok = [("lamp_on", 0), ("bin_fill", 0.8), ("toilet_occupancy", 1), ("lamp_power_w", 120.5),
          ("well_water_level_m", -0.4), ("cover_tilt_deg", 12)]
    bad = [("lamp_on", 2), ("camera_online", -1), ("bin_fill", 1.2), ("lamp_power_w", -5),
           ("hydrant_pressure_mpa", -0.1), ("cover_tilt_deg", 95)]
    recs = [dict(GOOD["facility"], event_id=f"f{i}", metric=m, value=v) for i, (m, v) in enumerate(ok + bad)]
    good, rej = validate("facility", recs, now=NOW)
    assert good.num_rows == len(ok)
    assert [b.index for b in rej] == list(range(len(ok), len(ok) + len(bad)))
    assert all(b.code == "out_of_range" and "metric" in b.reason for b in rej)


def test_raw_is_capped_at_4_kib_and_first_problem_wins():
    rec = dict(GOOD["case"], description="长" * 10_000, count=-1, category="nope", zone_id=None)
    del rec["case_id"]
    good, bad = validate("case", [rec], now=NOW)
    assert len(bad) == 1
    assert len(bad[0].raw.encode("utf-8")) <= 4096
    assert bad[0].raw.endswith("…[truncated]")
    assert bad[0].code == "missing_field" and "'case_id'" in bad[0].reason


def test_duplicate_columns_and_extra_columns_are_tolerated():
    t = _as_table([dict(GOOD["crowd"], extra="x", another=3)])
    good, bad = validate("crowd", t, now=NOW)
    assert bad == [] and good.schema.equals(SCHEMAS["crowd"], check_metadata=True)


def test_weird_arrow_types_are_bad_type_not_errors():
    n = 2
    t = pa.table({
        "event_id": ["a", "b"], "event_time": ["2025-05-01T11:00:00Z"] * n,
        "zone_id": pa.array([{"x": 1}, {"x": 2}]),                       # struct
        "count": pa.array([b"\x00", b"\x01"]),                           # binary
    })
    good, bad = validate("crowd", t, now=NOW)
    assert good.num_rows == 0 and [b.code for b in bad] == ["bad_type", "bad_type"]
    d = pa.table({"event_id": pa.array(["a", "b"]).dictionary_encode(), "event_time": ["2025-05-01T11:00:00Z"] * 2,
                  "zone_id": pa.array(["z", "z"]).dictionary_encode(), "count": pa.array([1, 2], pa.int8())})
    good, bad = validate("crowd", d, now=NOW)
    assert bad == [] and good.num_rows == 2


def _big_video(n: int) -> pa.Table:
    rng = np.random.default_rng(1)
    return pa.table({
        "event_id": pa.array(np.char.add("v", np.arange(n).astype(str)).astype(object), pa.string()),
        "event_time": pa.array(np.full(n, "2025-05-01T11:00:00.250Z", dtype=object), pa.string()),
        "camera_id": pa.array(np.full(n, "cam", dtype=object), pa.string()),
        "algorithm": pa.array(np.full(n, "smoke", dtype=object), pa.string()),
        "confidence": pa.array(rng.random(n)),                            # float64, to be cast
        "object_count": pa.array(rng.integers(0, 9, n)),                  # int64, to be cast
        "lon": pa.array(113 + rng.random(n)), "lat": pa.array(23 + rng.random(n)),
    })


def test_arrow_validation_is_vectorised(monkeypatch):
    """Valid rows never reach per-row Python; bad rows are found exactly."""
    calls: list[int] = []
    real = V._describe_row
    monkeypatch.setattr(V, "_describe_row", lambda describe, i: calls.append(i) or real(describe, i))
    n = 300_000
    t = _big_video(n)
    good, bad = validate("video", t, now=NOW)
    assert bad == [] and calls == [] and good.num_rows == n
    assert good.schema.equals(SCHEMAS["video"], check_metadata=True)
    # a few bad values among many good ones: found by index, nothing else touched
    oc = t.column("object_count").to_numpy().copy()
    oc[[7, 150_001]] = [2 ** 40, -3]
    et = t.column("event_time").to_pylist()
    et[299_998] = "not a time"
    t2 = t.set_column(t.schema.get_field_index("object_count"), "object_count", pa.array(oc))
    t2 = t2.set_column(t2.schema.get_field_index("event_time"), "event_time", pa.array(et))
    good, bad = validate("video", t2, now=NOW)
    assert [(b.index, b.code) for b in bad] == [(7, "bad_type"), (150_001, "out_of_range"), (299_998, "bad_type")]
    assert sorted(calls) == [7, 150_001, 299_998]
    assert good.num_rows == n - 3


def test_reason_code_classifies_foreign_reasons():
    assert reason_code("field 'x' is missing") == "missing_field"
    assert reason_code("value out of range") == "out_of_range"
    assert reason_code("protobuf decode error") == "parse_error"
    assert reason_code("whatever", default="bad_type") == "bad_type"
    # our own sentences map back to their codes
    for kind, field, value, code, _ in CASES:
        b = validate(kind, [_bad_record(kind, field, value)], now=NOW)[1][0]
        assert reason_code(b.reason) == b.code, b.reason


def test_badrecord_is_a_plain_value():
    b = BadRecord("crowd", "{}", "field 'count' is missing or null", 3, "missing_field")
    assert b.where == "" and b.index == 3
    with pytest.raises(AttributeError):
        b.index = 4  # type: ignore[misc]


def test_now_naive_is_utc_and_future_slack_is_one_day():
    naive_now = datetime(2025, 5, 1, 12, 0)
    edge = (NOW + timedelta(days=1)).isoformat()
    assert validate("crowd", [dict(GOOD["crowd"], event_time=edge)], now=naive_now)[1] == []
    over = (NOW + timedelta(days=1, milliseconds=1)).isoformat()
    assert validate("crowd", [dict(GOOD["crowd"], event_time=over)], now=naive_now)[1][0].code == "out_of_range"
