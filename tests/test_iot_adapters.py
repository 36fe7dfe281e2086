"""IoT adapters (SensorThings, NGSI-LD): every note and reject tells the truth,
linked Datastreams, parking and river water quality.

Real samples are read from shared/testdata (not copied here); small payloads
are written in the tests.  One test per rule.
"""
from __future__ import annotations

import json
import re
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pyarrow as pa
import pytest

from indicators.feeds.adapters import Parsed, Reject, parse
from indicators.feeds.adapters import ngsi_ld, sensorthings
from indicators.feeds.adapters.base import RAW_LIMIT
from indicators.feeds.adapters.sensorthings import (DatastreamRegistry, datastream_key,
                                                    entity_type, load_datastream_mapping)
from indicators.feeds.schemas import FACILITY_METRICS, SCHEMAS
from indicators.feeds.validate import validate

SDM = "iot/smart-data-models"
STA = "iot/sensorthings"
NOW = datetime(2030, 1, 1, tzinfo=timezone.utc)


def utc(*args) -> datetime:
    return datetime(*args, tzinfo=timezone.utc)


def checked(parsed: Parsed) -> Parsed:
    assert isinstance(parsed, Parsed)
    for kind, table in parsed.tables.items():
        assert table.schema.equals(SCHEMAS[kind]), kind
        assert table.num_rows > 0
    for r in parsed.rejects:
        assert isinstance(r, Reject) and r.reason and r.where
        assert len(r.raw) <= RAW_LIMIT
        assert "unexpectedly" not in r.reason, r.reason
    return parsed


def sta(body, **kw) -> Parsed:
    data = json.dumps(body).encode()
    if kw:
        return checked(sensorthings.parse(data, None, **kw))
    return checked(parse(data, "sensorthings"))


def ngsi(body) -> Parsed:
    return checked(parse(json.dumps(body).encode(), "ngsi-ld"))


def sample(td: Path, rel: str, fmt: str) -> Parsed:
    return checked(parse((td / rel).read_bytes(), fmt))


def rows(parsed: Parsed, kind: str = "facility") -> list[dict]:
    return parsed.tables[kind].to_pylist() if kind in parsed.tables else []


# --- SensorThings payloads written by hand ------------------------------------------

THING = {"@iot.id": 7, "name": "Hydrant W-03", "description": "Fire hydrant at the west gate",
         "properties": {"zone": "west"},
         "Locations": [{"name": "West gate", "description": "hydrant pit",
                        "encodingType": "application/geo+json",
                        "location": {"type": "Point", "coordinates": [113.318, 23.108]}}]}
SENSOR = {"@iot.id": 3, "name": "PT-100", "description": "Pressure transducer",
          "encodingType": "application/pdf", "metadata": "https://example.org/pt100.pdf"}
DATASTREAM = {"@iot.id": 5, "name": "Hydrant pressure W-03", "description": "pressure at the pit",
              "unitOfMeasurement": {"name": "kilopascal", "symbol": "kPa",
                                    "definition": "http://unitsofmeasure.org/ucum.html#kPa"},
              "observationType": "http://www.opengis.net/def/observationType/OGC-OM/2.0/OM_Measurement",
              "phenomenonTime": "2024-07-20T00:00:00Z/2024-07-20T02:00:00Z",
              "resultTime": "2024-07-20T00:00:00Z/2024-07-20T02:00:00Z",
              "Thing@iot.navigationLink": "Datastreams(5)/Thing"}
OBSERVED_PROPERTY = {"@iot.id": 2, "name": "Hydrant pressure",
                     "definition": "https://example.org/hydrant-pressure",
                     "description": "static water pressure in the hydrant"}
UOM = {"name": "kilopascal", "symbol": "kPa", "definition": "http://unitsofmeasure.org/ucum.html#kPa"}


def expanded_datastream(**over) -> dict:
    return {**DATASTREAM, "Thing": {"@iot.id": "hydrant_w_03", "name": "Hydrant W-03",
                                    "description": "hydrant"},
            "ObservedProperty": OBSERVED_PROPERTY, **over}


def obs(oid, result=350, t="2024-07-20T02:00:00Z", **datastream) -> dict:
    body = {"@iot.id": oid, "phenomenonTime": t, "resultTime": t, "result": result}
    body.update(datastream)
    return body


# --- truthful notes -----------------------------------------------------------------

_LOADED = re.compile(r"(?<!not )\bloaded\b")


def test_no_note_says_loaded_for_what_is_rejected(td):
    """A rejected record is never described as loaded, in any sample or payload here."""
    payloads = [sample(td, f"{STA}/thing-complete-deep-insert.json", "sensorthings"),
                sample(td, f"{STA}/foi-deerfoot-trail-linestring.json", "sensorthings"),
                sta({"value": [obs(1, Datastream={"@iot.id": 99}),
                               obs(2, Datastream={**expanded_datastream(), "ObservedProperty":
                                                  {"name": "Air pressure"}})]})]
    payloads += [sample(td, str(p.relative_to(td)), "ngsi-ld")
                 for p in sorted((td / SDM).rglob("example*.json*"))]
    for p in payloads:
        for n in p.notes:
            assert not _LOADED.search(n), n
    deep = payloads[0]
    assert deep.tables == {} and len(deep.rejects) == 4  # luminous flux has no metric: rejected


def test_deep_insert_thing_reads_as_a_thing_with_its_observations(td):
    parsed = sample(td, f"{STA}/thing-complete-deep-insert.json", "sensorthings")
    assert entity_type(json.loads((td / STA / "thing-complete-deep-insert.json").read_text())) == "Thing"
    assert all(r.where.startswith("Datastreams[0].Observations[") for r in parsed.rejects)
    assert not any("Thing" in n and "no observation" in n for n in parsed.notes)  # it had some


def test_a_thing_without_observations_is_recognised_as_a_thing():
    parsed = sta(THING)
    assert parsed.tables == {} and parsed.rejects == []
    assert parsed.notes == ["1 SensorThings Thing: it describes a device, no observation to ingest"]
    two = sta({"value": [THING, dict(THING, **{"@iot.id": 8})]})
    assert two.notes == ["2 SensorThings Things: they describe devices, no observation to ingest"]


def test_a_sensor_is_recognised_as_a_sensor():
    parsed = sta(SENSOR)
    assert parsed.tables == {} and parsed.rejects == []
    assert parsed.notes == ["1 SensorThings Sensor: it describes a sensor, no observation to ingest"]


def test_a_datastream_with_a_phenomenon_time_is_not_taken_for_an_observation():
    parsed = sta(DATASTREAM)
    assert parsed.rejects == []
    assert parsed.notes == ["1 SensorThings Datastream came without Observations: nothing to ingest"]
    assert entity_type(DATASTREAM) == "Datastream"


def test_feature_of_interest_sample_is_recognised(td):
    parsed = sample(td, f"{STA}/foi-deerfoot-trail-linestring.json", "sensorthings")
    assert parsed.tables == {} and parsed.rejects == []
    assert parsed.notes == ["1 SensorThings FeatureOfInterest: it describes the feature observed, "
                            "no observation to ingest"]


def test_a_unit_of_measurement_is_not_called_an_observed_property():
    parsed = sta({"value": [UOM, OBSERVED_PROPERTY]})
    (r,) = parsed.rejects
    assert r.where == "value[0]" and "is a unitOfMeasurement" in r.reason
    assert "ObservedProperty" not in r.reason
    assert parsed.notes == ["1 SensorThings ObservedProperty: it describes an observed quantity, "
                            "no observation to ingest"]


@pytest.mark.parametrize("kind, body", [
    ("Sensor", SENSOR),
    ("FeatureOfInterest", {"name": "pit", "description": "hydrant pit", "encodingType": "application/geo+json",
                           "feature": {"type": "Point", "coordinates": [113.3, 23.1]}}),
    ("Location", THING["Locations"][0]),
])
def test_missing_encoding_type_is_reported_as_that(kind, body):
    bad = {k: v for k, v in body.items() if k != "encodingType"}
    parsed = sta({"value": [bad]})
    (r,) = parsed.rejects
    assert r.where == "value[0].encodingType"
    assert f"SensorThings {kind} value[0] has no encodingType" in r.reason
    assert not any(kind in n for n in parsed.notes)  # not also noted as a good entity


def test_missing_encoding_type_of_a_nested_location_is_located_and_the_rest_is_read():
    thing = {**THING, "Locations": [{k: v for k, v in THING["Locations"][0].items() if k != "encodingType"}],
             "Datastreams": [{**{k: v for k, v in DATASTREAM.items() if not k.endswith("navigationLink")},
                              "ObservedProperty": OBSERVED_PROPERTY, "Observations": [obs(1)]}]}
    parsed = sta(thing)
    (r,) = parsed.rejects
    assert r.where == "Locations[0].encodingType" and "has no encodingType" in r.reason
    (row,) = rows(parsed)
    assert (row["asset_id"], row["metric"], row["value"]) == ("7", "hydrant_pressure_mpa", pytest.approx(0.35))


def test_missing_phenomenon_time_is_reported_as_that():
    body = obs(1, Datastream=expanded_datastream())
    del body["phenomenonTime"]
    parsed = sta({"value": [body]})
    assert parsed.tables == {}
    (r,) = parsed.rejects
    assert r.where == "value[0].phenomenonTime"
    assert "has no phenomenonTime, which SensorThings requires" in r.reason


def test_missing_result_is_reported_as_that():
    body = obs(1, Datastream=expanded_datastream())
    del body["result"]
    (r,) = sta(body).rejects
    assert r.where == "result" and "has no result" in r.reason


def test_a_property_with_no_metric_is_rejected_not_loaded():
    parsed = sta(obs(1, Datastream=expanded_datastream(ObservedProperty={"name": "Luminous Flux"},
                                                       unitOfMeasurement={"symbol": "lm"})))
    assert parsed.tables == {}
    (r,) = parsed.rejects
    assert "'Luminous Flux' in 'lm'" in r.reason and "FACILITY_METRICS" in r.reason


# --- linked Datastreams ---------------------------------------------------------------

def test_datastream_key_is_the_iot_id_as_text():
    assert datastream_key(5) == datastream_key("5") == datastream_key("Datastreams(5)") == "5"
    assert datastream_key("http://sta.example/v1.1/Datastreams('ds-a')") == "ds-a"
    assert datastream_key("Datastreams('it''s')") == "it's"
    assert datastream_key("http://sta.example/v1.0/Observations(7)/Datastream") is None
    assert datastream_key(True) is None and datastream_key("") is None


def test_an_unknown_linked_datastream_says_exactly_what_to_configure():
    parsed = sta({"value": [obs(11, Datastream={"@iot.id": 5})]})
    assert parsed.tables == {}
    (r,) = parsed.rejects
    assert r.where == "value[0].Datastream"
    assert "its Datastream '5' is a link" in r.reason
    assert '[datastreams."5"]' in r.reason and 'asset = "' in r.reason and 'metric = "' in r.reason


def test_a_navigation_link_that_names_no_datastream_says_so():
    body = obs(11, **{"Datastream@iot.navigationLink": "http://sta.example/v1.0/Observations(11)/Datastream"})
    (r,) = sta(body).rejects
    assert "does not name the Datastream" in r.reason and "$expand=Datastream" in r.reason


def test_a_linked_datastream_in_the_mapping_is_read(tmp_path):
    f = tmp_path / "datastreams.toml"
    f.write_text('[datastreams."5"]\nasset = "hydrant_w_03"\nmetric = "hydrant_pressure_mpa"\nunit = "kPa"\n\n'
                 '[datastreams."Datastreams(6)"]\nstation = "ws_tower"\nmetric = "temperature_c"\n',
                 encoding="utf-8")
    mapping = load_datastream_mapping(f)
    assert set(mapping) == {"5", "6"}
    body = {"value": [obs(11, 350, Datastream={"@iot.id": 5}),
                      obs(12, 31.5, **{"Datastream@iot.navigationLink":
                                       "http://sta.example/v1.0/Datastreams(6)"})]}
    parsed = sta(body, datastreams=mapping)
    assert parsed.rejects == []
    (row,) = rows(parsed)
    assert (row["asset_id"], row["metric"], row["event_id"]) == ("hydrant_w_03", "hydrant_pressure_mpa",
                                                                  "observation/11")
    assert row["value"] == pytest.approx(0.35)
    (w,) = rows(parsed, "weather")
    assert (w["station_id"], w["temperature_c"]) == ("ws_tower", pytest.approx(31.5))


def test_what_is_learned_from_one_message_reads_the_next():
    first = sta(obs(10, Datastream=expanded_datastream()))
    assert rows(first)[0]["asset_id"] == "hydrant_w_03"
    learned = first.learned_datastreams
    assert learned == {"5": {"thing": "hydrant_w_03", "observed_property": "Hydrant pressure",
                             "unit": "kPa", "learned": True}}
    later = json.dumps(obs(11, 420, Datastream={"@iot.id": 5})).encode()
    assert sensorthings.parse(later, None).rejects            # unknown without what was learned
    second = checked(sensorthings.parse(later, None, datastreams=learned))
    assert second.rejects == []
    (row,) = rows(second)
    assert (row["asset_id"], row["value"]) == ("hydrant_w_03", pytest.approx(0.42))


def test_a_link_before_its_expanded_datastream_in_the_same_message_is_read():
    parsed = sta({"value": [obs(11, 300, Datastream={"@iot.id": 5}),
                            obs(12, 310, Datastream=expanded_datastream())]})
    assert parsed.rejects == []
    assert sorted(r["event_id"] for r in rows(parsed)) == ["observation/11", "observation/12"]


def test_a_configured_entry_wins_over_an_expanded_datastream():
    mapping = {"5": {"asset": "hydrant_w_03_inventory", "metric": "hydrant_pressure_mpa", "unit": "kPa"}}
    parsed = sta(obs(10, Datastream=expanded_datastream()), datastreams=mapping)
    assert rows(parsed)[0]["asset_id"] == "hydrant_w_03_inventory"
    learned_only = {"5": {"thing": "elsewhere", "observed_property": "Hydrant pressure", "learned": True}}
    fresh = sta(obs(10, Datastream=expanded_datastream()), datastreams=learned_only)
    assert rows(fresh)[0]["asset_id"] == "hydrant_w_03"   # the message is fresher than what was learned


@pytest.mark.parametrize("text, table, field", [
    ('[datastreams."5"]\nasset = "h"\nmetric = "luminous_flux"\n', '[datastreams."5"]', "metric"),
    ('[datastreams."5"]\nasset = "h"\nmetric = "hydrant_pressure_mpa"\nunit = "furlong"\n',
     '[datastreams."5"]', "unit"),
    ('[datastreams."9"]\nmetric = "bin_fill"\n', '[datastreams."9"]', "asset"),
    ('[datastreams."9"]\nasset = "b"\nmetric = "bin_fill"\ncolour = "red"\n', '[datastreams."9"]', "colour"),
])
def test_a_bad_mapping_file_names_file_table_and_field(tmp_path, text, table, field):
    f = tmp_path / "ds.toml"
    f.write_text(text, encoding="utf-8")
    with pytest.raises(ValueError) as err:
        load_datastream_mapping(f)
    msg = str(err.value)
    assert str(f) in msg and table in msg and f"field '{field}'" in msg


def test_an_unreadable_mapping_file_is_a_value_error(tmp_path):
    with pytest.raises(ValueError, match="cannot read the Datastream mapping"):
        load_datastream_mapping(tmp_path / "missing.toml")
    bad = tmp_path / "bad.toml"
    bad.write_text("[datastreams\n", encoding="utf-8")
    with pytest.raises(ValueError, match="not valid TOML"):
        load_datastream_mapping(bad)


def test_the_registry_keeps_learned_datastreams_atomically(tmp_path):
    path = tmp_path / "state" / "datastreams.json"
    reg = DatastreamRegistry(path)
    assert reg.get_all() == {}
    learned = sta(obs(10, Datastream=expanded_datastream())).learned_datastreams
    reg.update(learned)
    reg.update({"Datastreams(6)": {"station": "ws_tower", "metric": "temperature_c"}})
    again = DatastreamRegistry(path).get_all()
    assert set(again) == {"5", "6"} and again["5"]["learned"] is True
    assert sorted(p.name for p in path.parent.iterdir()) == ["datastreams.json", "datastreams.json.lock"]
    with pytest.raises(ValueError, match="field 'metric'"):
        reg.update({"7": {"asset": "x", "metric": "nope"}})
    assert set(DatastreamRegistry(path).get_all()) == {"5", "6"}   # a refused update wrote nothing
    path.write_text("{not json", encoding="utf-8")
    with pytest.raises(ValueError, match="not valid JSON"):
        reg.get_all()


def test_parse_keeps_its_positional_signature():
    body = json.dumps(obs(10, Datastream=expanded_datastream())).encode()
    assert rows(checked(sensorthings.parse(body, "sta:test")))[0]["source"] == "sta:test"
    assert parse(body, "sensorthings").learned_datastreams == {
        "5": {"thing": "hydrant_w_03", "observed_property": "Hydrant pressure", "unit": "kPa",
              "learned": True}}


def test_sensorthings_water_quality_and_parking_properties_map_to_the_new_metrics():
    def ds(i, name, symbol):
        return expanded_datastream(**{"@iot.id": i, "ObservedProperty": {"name": name},
                                      "unitOfMeasurement": {"symbol": symbol},
                                      "Thing": {"@iot.id": "pearl_river_probe_1"}})
    parsed = sta({"value": [obs(1, 6.8, Datastream=ds(21, "Dissolved oxygen", "mg/L")),
                            obs(2, 0.52, Datastream=ds(22, "Electrical conductivity", "mS/cm")),
                            obs(3, 24.0, Datastream=ds(23, "Water temperature", "°C")),
                            obs(4, 7.3, Datastream=ds(24, "pH", "pH")),
                            obs(5, 12, Datastream=ds(25, "Turbidity", "NTU")),
                            obs(6, 40, Datastream=ds(26, "Free parking spaces", "{spot}"))]})
    assert parsed.rejects == []
    got = {r["metric"]: r["value"] for r in rows(parsed)}
    assert got == {"dissolved_oxygen_mg_l": 6.8, "water_conductivity_us_cm": pytest.approx(520.0),
                   "water_temperature_c": 24.0, "water_ph": 7.3, "turbidity_ntu": 12.0,
                   "parking_free_spaces": 40.0}
    assert "weather" not in parsed.tables  # water temperature is not air temperature


# --- NGSI-LD parking and water quality ------------------------------------------------

@pytest.mark.parametrize("name", ["example.json", "example-normalized.jsonld"])
def test_off_street_parking_samples(td, name):
    parsed = sample(td, f"{SDM}/OffStreetParking/{name}", "ngsi-ld")
    assert parsed.rejects == []
    got = {r["metric"]: r for r in rows(parsed)}
    assert set(got) == {"parking_free_spaces", "parking_occupancy"}
    assert got["parking_free_spaces"]["value"] == 132
    # occupancy 0.68 (normalized) / percentageOccupancy 68.11 (key-values); 282 of 414 spots
    assert got["parking_occupancy"]["value"] == pytest.approx(282 / 414, abs=0.002)
    for r in got.values():
        assert r["asset_id"] == "porto-ParkingLot-23889" and r["asset_type"] == "parking"
        assert r["event_time"] == utc(2018, 9, 21, 12, 0)   # observedAt / occupancyModified
    assert not any("unsupported" in n for n in parsed.notes)


@pytest.mark.parametrize("name", ["example.json", "example-normalized-ld.jsonld"])
def test_water_quality_observed_samples(td, name):
    parsed = sample(td, f"{SDM}/WaterQualityObserved/{name}", "ngsi-ld")
    assert parsed.rejects == []
    got = {r["metric"]: r["value"] for r in rows(parsed)}
    assert got == {"water_temperature_c": 24.4, "water_ph": 7.4,
                   "water_conductivity_us_cm": pytest.approx(50.0)}   # 0.005 S/m
    assert {r["asset_id"] for r in rows(parsed)} == {"waterqualityobserved:Sevilla:D1"}
    assert {r["event_time"] for r in rows(parsed)} == {utc(2017, 1, 31, 6, 45)}
    notes = " | ".join(parsed.notes)
    assert "conductivity without unitCode read in the model's default unit S/m" in notes
    assert "NO3: no facility metric" in notes


def test_sample_rows_pass_validation(td):
    for rel in ("OffStreetParking/example.json", "WaterQualityObserved/example-normalized-ld.jsonld"):
        table = sample(td, f"{SDM}/{rel}", "ngsi-ld").tables["facility"]
        good, bad = validate("facility", table, now=NOW)
        assert bad == [] and good.num_rows == table.num_rows


def test_parking_spot_status():
    spots = [{"id": f"urn:ngsi-ld:ParkingSpot:p1:{i}", "type": "ParkingSpot",
              "status": {"type": "Property", "value": status, "observedAt": "2024-07-20T02:00:00Z"}}
             for i, status in enumerate(["occupied", "free", "closed"])]
    parsed = ngsi(spots)
    assert [(r["asset_id"], r["metric"], r["value"]) for r in rows(parsed)] == [
        ("p1:0", "parking_occupancy", 1.0), ("p1:1", "parking_occupancy", 0.0)]
    (r,) = parsed.rejects
    assert r.where == "entity[2].status" and "'closed' does not say whether a vehicle" in r.reason


def test_inconsistent_parking_numbers_are_rejected_at_the_attribute():
    lot = {"id": "tower_p1", "type": "OffStreetParking", "totalSpotNumber": 100,
           "availableSpotNumber": 130, "dateObserved": "2024-07-20T02:00:00Z"}
    parsed = ngsi(lot)
    assert parsed.tables == {}
    (r,) = parsed.rejects
    assert r.where == "entity[0].availableSpotNumber" and "more than totalSpotNumber 100" in r.reason
    derived = ngsi(dict(lot, availableSpotNumber=25))
    got = {r["metric"]: r["value"] for r in rows(derived)}
    assert got == {"parking_free_spaces": 25, "parking_occupancy": 0.75}
    assert any("parking_occupancy = (totalSpotNumber − availableSpotNumber)" in n for n in derived.notes)


def test_one_bad_water_attribute_is_rejected_alone():
    doc = {"id": "urn:ngsi-ld:WaterQualityObserved:zhujiang_1", "type": "WaterQualityObserved",
           "dateObserved": "2024-07-20T02:00:00Z", "refPointOfInterest": "urn:ngsi-ld:PointOfInterest:river_w",
           "conductivity": 520, "O2": {"type": "Property", "value": 6.5, "unitCode": "M1"},
           "turbidity": {"type": "Property", "value": 14, "unitCode": "NTU"}}
    parsed = ngsi(doc)
    got = {r["metric"]: (r["asset_id"], r["value"]) for r in rows(parsed)}
    assert got == {"dissolved_oxygen_mg_l": ("river_w", 6.5), "turbidity_ntu": ("river_w", 14.0)}
    (r,) = parsed.rejects
    assert r.where == "entity[0].conductivity" and "probably µS/cm" in r.reason
    with_unit = ngsi(dict(doc, conductivity={"type": "Property", "value": 520, "unitCode": "G42"}))
    assert with_unit.rejects == []
    assert {r["metric"]: r["value"] for r in rows(with_unit)}["water_conductivity_us_cm"] == 520


def test_a_rejected_entity_leaves_no_note_about_how_it_was_read():
    traffic = {"id": "seg", "type": "TrafficFlowObserved", "averageVehicleSpeed": 30, "intensity": 10}
    parsed = ngsi(traffic)   # no time at all: rejected
    assert parsed.tables == {} and len(parsed.rejects) == 1
    assert not any("flow_vph left empty" in n for n in parsed.notes)
    crowd = {"id": "zone", "type": "CrowdFlowObserved", "peopleCount": 5}
    parsed = ngsi(crowd)
    assert parsed.rejects and not any("crowd.count" in n for n in parsed.notes)


# --- the new metrics through validation and the engine --------------------------------

def test_new_metric_ranges_are_enforced():
    base = {"event_time": "2024-07-20T02:00:00Z", "source": "t", "asset_id": "a", "asset_type": None}
    recs = [dict(base, event_id=f"e{i}", metric=m, value=v) for i, (m, v) in enumerate([
        ("water_ph", 7.2), ("parking_occupancy", 0.4), ("water_ph", 15), ("parking_occupancy", 1.3),
        ("dissolved_oxygen_mg_l", -1), ("water_conductivity_us_cm", 5_200_000)])]
    good, bad = validate("facility", recs, now=NOW)
    assert good.num_rows == 2
    assert [b.index for b in bad] == [2, 3, 4, 5] and all(b.code == "out_of_range" for b in bad)


def test_engine_ingests_facility_rows_with_the_new_metrics(inventory, td):
    from indicators.catalog import load_catalog
    from indicators.engine import Engine
    catalog = load_catalog(inventory=inventory)
    assert len(catalog) == 1373
    known = str(inventory["asset_id"].iloc[0])
    start = datetime(2025, 10, 1, 2, 0, tzinfo=timezone.utc)
    metrics = ["parking_free_spaces", "parking_occupancy", "water_temperature_c", "water_ph",
               "dissolved_oxygen_mg_l", "turbidity_ntu", "water_conductivity_us_cm"]
    assert all(m in FACILITY_METRICS for m in metrics)
    table = pa.Table.from_pylist([
        {"event_id": f"e{i}", "event_time": start + timedelta(seconds=i + 1), "source": "t",
         "asset_id": known if i % 2 else "porto-ParkingLot-23889", "asset_type": None,
         "metric": m, "value": 0.5} for i, m in enumerate(metrics)], schema=SCHEMAS["facility"])
    eng = Engine(catalog, tick=timedelta(seconds=1), allowed_lateness=timedelta(0), start=start)
    result = eng.ingest("facility", table)
    assert (result.accepted, result.late, result.unknown) == (len(metrics), 0, 4)
    parsed = sample(td, f"{SDM}/WaterQualityObserved/example.json", "ngsi-ld")
    eng.ingest("facility", parsed.tables["facility"])   # a foreign asset: counted, no exception
    eng.heartbeat(start + timedelta(minutes=1))
    assert list(eng.ticks(start + timedelta(seconds=30)))
