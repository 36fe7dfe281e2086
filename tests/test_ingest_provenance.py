"""Provenance, duplicates and lateness as the real world sends them (issue 11 §5): the sender is
on every row and every dead letter whatever the format; an event id sent again with other content
is kept aside with both payloads, not dropped; counts are whole numbers; one lateness rule, judged
once at ingestion; `scenic-twin ingest` says for every file what happened to its records."""
from __future__ import annotations

import json
import sqlite3
from datetime import datetime, timedelta, timezone

import pytest

from indicators.engine import DEFAULT_LATENESS as ENGINE_LATENESS
from indicators.feeds.deadletter import DeadLetterStore
from indicators.feeds.ingest import DEFAULT_LATENESS as INGEST_LATENESS
from indicators.feeds.ingest import Ingestor
from indicators.feeds.log import FeedLog
from indicators.feeds.schemas import ALLOWED_LATENESS
from indicators.feeds.validate import CONFLICTING_DUPLICATE

NOW = datetime(2026, 4, 15, 12, 0, tzinfo=timezone.utc)


@pytest.fixture
def ingest(tmp_path):
    log, dead = FeedLog(tmp_path / "log"), DeadLetterStore(tmp_path / "dead.sqlite")
    yield Ingestor(log, dead, clock=lambda: NOW), dead, tmp_path
    log.close()
    dead.close()


def crowd(eid, count, t=NOW, zone="west_plaza"):
    return {"event_id": eid, "event_time": t, "zone_id": zone, "count": count}


def test_a_repeated_event_id_with_other_content_is_kept_aside_with_both_payloads(ingest):
    ing, dead, _ = ingest
    r = ing.submit("crowd", [crowd("c1", 120), crowd("c2", 80)], source="signalling")
    assert r.accepted == 2
    # the same event again through another channel: a plain duplicate, whatever the sender
    r = ing.submit("crowd", [crowd("c1", 120)], source="http:gateway-2")
    assert (r.accepted, r.duplicates, r.conflicting, r.rejected) == (0, 1, 0, [])
    # c2 again with another count: the first stays, this one is set aside and counted
    r = ing.submit("crowd", [crowd("c2", 95), crowd("c3", 10)], source="http:gateway-2")
    assert (r.accepted, r.duplicates, r.conflicting) == (1, 0, 1)
    [b] = r.rejected
    assert b.code == CONFLICTING_DUPLICATE and "count: 80 -> 95" in b.reason and "new event_id" in b.reason
    [letter] = [x for x in dead.list() if x["code"] == CONFLICTING_DUPLICATE]
    both = json.loads(letter["raw"])
    assert (both["kept"]["count"], both["refused"]["count"]) == (80, 95)
    assert both["kept"]["source"] == "signalling" and letter["source"] == "http:gateway-2"
    # the log still holds the first c2 only
    logged = [row for _, _, t in ing.log.replay() for row in t.to_pylist() if row["event_id"] == "c2"]
    assert [row["count"] for row in logged] == [80]


def test_a_conflict_inside_one_batch_and_after_a_restart(ingest):
    ing, dead, tmp = ingest
    r = ing.submit("crowd", [crowd("x", 5), crowd("x", 5), crowd("x", 6)], source="s")
    assert (r.accepted, r.duplicates, r.conflicting) == (1, 1, 1)
    assert "sent earlier in this batch" in r.rejected[0].reason
    ing.log.close()
    log2 = FeedLog(tmp / "log")
    again = Ingestor(log2, dead, clock=lambda: NOW)          # the seen ids come back from the log
    r = again.submit("crowd", [crowd("x", 5), crowd("x", 7)], source="s")
    assert (r.accepted, r.duplicates, r.conflicting) == (0, 1, 1)
    assert "accepted before (feed log seq 1)" in r.rejected[0].reason and "count: 5 -> 7" in r.rejected[0].reason
    log2.close()
    ing.log = log2                                           # the fixture closes it again harmlessly


def test_counts_are_whole_numbers(ingest):
    ing, _, _ = ingest
    r = ing.submit("crowd", [crowd("a", 16.0), crowd("b", 16.5), crowd("c", "17")], source="s")
    assert r.accepted == 2
    [b] = r.rejected
    assert b.index == 1 and "16.5 cannot be read as an integer" in b.reason
    counts = sorted(row["count"] for _, _, t in ing.log.replay() for row in t.to_pylist())
    assert counts == [16, 17]


def test_one_lateness_for_ingestion_and_engine(ingest):
    assert INGEST_LATENESS == ENGINE_LATENESS == ALLOWED_LATENESS
    ing, dead, _ = ingest
    ing.submit("crowd", [crowd("now", 1)], source="s")
    edge = NOW - ALLOWED_LATENESS
    r = ing.submit("crowd", [crowd("ok", 1, edge + timedelta(seconds=1)),
                             crowd("late", 1, edge - timedelta(seconds=1))], source="s")
    assert (r.accepted, r.late) == (1, 1)
    assert dead.late_ids("crowd") == {"late"}


def test_the_service_engine_trusts_the_ingestor(tmp_path):
    from indicators.service import Service, ServiceConfig
    svc = Service(ServiceConfig(var=tmp_path / "var", scenario="normal-weekday", speed=60, simulate=False))
    try:
        assert svc.engine.behind == "next_tick"
        assert svc.engine.lateness_ms == ALLOWED_LATENESS // timedelta(milliseconds=1)
    finally:
        svc.alert_store.close()
        svc.feed_log.close()
        svc.dead.close()


def _ingest_cli(capsys, *args):
    from dashboard.cli import main
    code = main(["ingest", *map(str, args)])
    out = capsys.readouterr()
    return code, out.out, out.err


@pytest.mark.parametrize("name, body, fmt", [
    ("counts.jsonl", b'{"kind": "crowd", "event_id": "j1", "event_time": "2026-04-15T12:00:00Z", '
                     b'"zone_id": "west_plaza", "count": 3}\n{"kind": "crowd", "event_id": "j2"}\n', "jsonl"),
    ("signal.cap.xml", None, "cap"),
    ("thing.json", None, "sensorthings"),
])
def test_every_row_and_every_dead_letter_names_its_sender(capsys, tmp_path, td, name, body, fmt):
    """--source, else file:<name>, on every accepted row and every dead letter, for every format."""
    src_file = tmp_path / name
    if body is None:
        sample = {"cap": td / "cap" / "thunderstorm.cap.xml",
                  "sensorthings": td / "iot" / "sensorthings" / "thing-complete-deep-insert.json"}[fmt]
        body = sample.read_bytes()
    src_file.write_bytes(body)
    for data, source, want in ((tmp_path / "d1", None, f"file:{name}"), (tmp_path / "d2", "gateway-7", "gateway-7")):
        args = [src_file, "--data", data, "--format", fmt] + (["--source", source] if source else [])
        code, out, err = _ingest_cli(capsys, *args)
        assert code in (0, 1), err
        log = FeedLog(data / "feeds" / "log")
        try:
            sources = {row["source"] for _, _, t in log.replay() for row in t.to_pylist()}
        finally:
            log.close()
        with sqlite3.connect(data / "feeds" / "dead-letters.sqlite") as db:
            dead_sources = {s for (s,) in db.execute("SELECT source FROM dead_letters")}
            dead_sources |= {s for (s,) in db.execute("SELECT source FROM late_events")}
        assert sources | dead_sources, f"{name}: nothing came out of the file"
        assert sources <= {want} and dead_sources <= {want}, (sources, dead_sources)


def test_the_ingest_command_counts_every_outcome_and_documents_its_exit_codes(capsys, tmp_path):
    f1 = tmp_path / "first.jsonl"
    # times relative to the real clock: the command uses it
    t = datetime.now(timezone.utc).replace(microsecond=0)
    rows = [{"event_id": "k1", "zone_id": "west_plaza", "count": 4, "event_time": t.isoformat()},
            {"event_id": "k2", "zone_id": "west_plaza", "count": 5, "event_time": t.isoformat()}]
    f1.write_text("\n".join(json.dumps({"kind": "crowd", **r}) for r in rows))
    code, out, _ = _ingest_cli(capsys, f1, "--data", tmp_path / "d")
    assert code == 0 and "accepted 2, updated 0, ended 0, duplicate 0, conflicting 0, late 0, rejected 0" in out
    old = (t - ALLOWED_LATENESS - timedelta(minutes=1)).isoformat()
    rows = [{"event_id": "k1", "zone_id": "west_plaza", "count": 4, "event_time": t.isoformat()},     # duplicate
            {"event_id": "k2", "zone_id": "west_plaza", "count": 9, "event_time": t.isoformat()},     # conflicting
            {"event_id": "k3", "zone_id": "west_plaza", "count": 1, "event_time": old},              # late
            {"event_id": "k4", "zone_id": "west_plaza", "count": 2.5, "event_time": t.isoformat()},   # rejected
            {"event_id": "k5", "zone_id": "west_plaza", "count": 7, "event_time": t.isoformat()}]     # accepted
    f2 = tmp_path / "second.jsonl"
    f2.write_text("\n".join(json.dumps({"kind": "crowd", **r}) for r in rows))
    code, out, err = _ingest_cli(capsys, f2, "--data", tmp_path / "d")
    assert code == 1, out
    assert "accepted 1, updated 0, ended 0, duplicate 1, conflicting 1, late 1, rejected 1" in out
    assert "[conflicting_duplicate]" in out and "count: 5 -> 9" in out
    code, out, _ = _ingest_cli(capsys, f2, "--data", tmp_path / "d", "--json")
    got = json.loads(out)
    assert (got["accepted"], got["duplicates"], got["conflicting"], got["late"]) == (0, 2, 1, 1)
    with pytest.raises(SystemExit):
        _ingest_cli(capsys, "--help")
    helptext = " ".join(capsys.readouterr().out.split())
    for words in ("Exit codes: 0", "1 some records were rejected or conflicting", "2 the file cannot be read",
                  "updated:", "ended:", "conflicting (", "late ("):
        assert words in helptext, words


def test_warning_updates_and_ends_are_counted(ingest):
    ing, _, _ = ingest
    base = {"event_time": NOW, "signal": "rainstorm", "colour": "yellow"}
    r = ing.submit("warning", [{**base, "event_id": "w1", "status": "issued"},
                               {**base, "event_id": "w2", "status": "updated", "colour": "orange"},
                               {**base, "event_id": "w3", "status": "cancelled"}], source="cap")
    assert (r.accepted, r.updated, r.ended) == (3, 1, 1)


def test_a_wide_csv_of_counts_is_ingested_with_its_mapping_and_refused_without(capsys, tmp_path):
    csv = tmp_path / "north-gates.csv"
    csv.write_text("Date,Hour,North In,North Out\n" + "".join(
        f"2026-03-{d:02d},{h},{10 + h},{h}\n" for d in (2, 3) for h in range(24)), encoding="utf-8")
    code, out, err = _ingest_cli(capsys, csv, "--data", tmp_path / "d")
    assert code == 2 and "--mapping FILE.toml" in err
    mapping = tmp_path / "north.toml"
    mapping.write_text('timezone = "Asia/Shanghai"\ndate_column = "Date"\nhour_column = "Hour"\n'
                       '[[gate]]\ngate_id = "gate-tower_base-0001"\nzone_id = "tower_base"\n'
                       'entries = "North In"\nexits = "North Out"\n', encoding="utf-8")
    code, out, err = _ingest_cli(capsys, csv, "--data", tmp_path / "d", "--mapping", mapping, "--json")
    got = json.loads(out)
    assert code == 0 and got["format"] == "counts-csv" and got["accepted"] == 48, err
    log = FeedLog(tmp_path / "d" / "feeds" / "log")
    try:
        rows = [r for _, k, t in log.replay() for r in t.to_pylist() if k == "gate"]
    finally:
        log.close()
    first = min(rows, key=lambda r: r["event_time"])
    # 00:00-01:00 local (UTC+8) on 2 March ends at 17:00 UTC on 1 March
    assert first["event_time"] == datetime(2026, 3, 1, 17, 0, tzinfo=timezone.utc)
    assert (first["entries"], first["exits"], first["interval_s"]) == (10, 0, 3600)
    assert {r["source"] for r in rows} == {"file:north-gates.csv"}
    bad = tmp_path / "bad.toml"
    bad.write_text('timezone = "Mars/Olympus"\n', encoding="utf-8")
    code, out, err = _ingest_cli(capsys, csv, "--data", tmp_path / "d", "--mapping", bad)
    assert code == 2 and "--mapping" in err and "timezone" in err


def test_sensorthings_observations_that_only_link_their_datastream(capsys, tmp_path):
    """Unknown link: a located reject saying what to configure; with --mapping: taken, in the
    mapping's unit converted; the sender on the rows."""
    t = datetime.now(timezone.utc).replace(microsecond=0).isoformat().replace("+00:00", "Z")
    obs = tmp_path / "obs.json"
    obs.write_text(json.dumps({"value": [{"@iot.id": 901, "phenomenonTime": t, "result": 312,
                                          "Datastream@iot.navigationLink": "Datastreams(5)"}]}), encoding="utf-8")
    code, out, err = _ingest_cli(capsys, obs, "--data", tmp_path / "d", "--format", "sensorthings", "--json")
    got = json.loads(out)
    assert code == 1 and got["accepted"] == 0
    [reject] = got["rejected"]
    assert '[datastreams."5"]' in reject["reason"] and reject["code"] == "unmapped"
    mapping = tmp_path / "streams.toml"
    mapping.write_text('[datastreams."5"]\nasset = "fire_hydrant-road_yuejiang_west-0001"\n'
                       'metric = "hydrant_pressure_mpa"\nunit = "kPa"\n', encoding="utf-8")
    obs.write_text(obs.read_text().replace('"@iot.id": 901', '"@iot.id": 902'), encoding="utf-8")
    code, out, err = _ingest_cli(capsys, obs, "--data", tmp_path / "d", "--format", "sensorthings",
                                 "--mapping", mapping, "--json")
    got = json.loads(out)
    assert code == 0 and got["accepted"] == 1, (out, err)
    log = FeedLog(tmp_path / "d" / "feeds" / "log")
    try:
        [row] = [r for _, k, tb in log.replay() for r in tb.to_pylist() if k == "facility"]
    finally:
        log.close()
    assert row["asset_id"] == "fire_hydrant-road_yuejiang_west-0001" and row["metric"] == "hydrant_pressure_mpa"
    assert row["value"] == pytest.approx(0.312) and row["source"] == "file:obs.json"


def test_a_service_alert_a_full_feed_no_longer_carries_ends_its_warning(capsys, tmp_path):
    """GTFS-Realtime lists every alert in force in a full dataset: the one that vanished has ended,
    even without an active period end; the one still there stays."""
    from google.transit import gtfs_realtime_pb2 as rt

    from indicators.alerts.compound import fold_warnings

    def message(at: datetime, alerts: list[str]) -> bytes:
        m = rt.FeedMessage()
        m.header.gtfs_realtime_version = "2.0"
        m.header.incrementality = rt.FeedHeader.FULL_DATASET
        m.header.timestamp = int(at.timestamp())
        for a in alerts:
            e = m.entity.add()
            e.id = a
            e.alert.header_text.translation.add(text=f"{a}: detour", language="en")
            e.alert.informed_entity.add(route_id="262")
        return m.SerializeToString()

    t0 = datetime.now(timezone.utc).replace(microsecond=0) - timedelta(seconds=30)
    first, second = tmp_path / "alerts-1.pb", tmp_path / "alerts-2.pb"
    first.write_bytes(message(t0, ["detour-a", "detour-b"]))
    second.write_bytes(message(t0 + timedelta(seconds=20), ["detour-a"]))
    data = tmp_path / "d"
    code, out, err = _ingest_cli(capsys, first, "--data", data, "--source", "gz-bus", "--json")
    assert code == 0 and json.loads(out)["accepted"] == 2, err
    code, out, err = _ingest_cli(capsys, second, "--data", data, "--source", "gz-bus", "--json")
    got = json.loads(out)
    assert code == 0 and (got["accepted"], got["ended"], got["duplicates"]) == (2, 1, 0), got   # a restated, b ended
    log = FeedLog(data / "feeds" / "log")
    try:
        rows = [r for _, k, t in log.replay() for r in t.to_pylist() if k == "warning"]
    finally:
        log.close()
    active = fold_warnings({}, rows, t0 + timedelta(minutes=1))
    assert sorted(w.headline for w in active.values()) == ["detour-a: detour"]
