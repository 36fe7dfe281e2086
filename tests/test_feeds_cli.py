"""`scenic-twin simulate`, `ingest` and `bench ingest` as a user runs them.

The ingest tests read the real third-party samples in ``shared/testdata``
beside the repository (never copied here) and assert what each contains.
Every ingest writes its log and dead-letter store under ``tmp_path``.
"""
from __future__ import annotations

import json
import sqlite3
import subprocess
import sys
from pathlib import Path

import pyarrow as pa
import pytest

from dashboard.cli import main
from indicators.feeds.schemas import FEED_KINDS, SCHEMAS
from indicators.feeds.simulator import Faults, read_recording, simulate, write_recording

ROOT = Path(__file__).resolve().parents[1]




def cli(capsys, *args: str) -> tuple[int, str, str]:
    """Run `scenic-twin ARGS` in this process; (exit code, stdout, stderr)."""
    try:
        code = main(list(args))
    except SystemExit as e:
        code = e.code if isinstance(e.code, int) else 2
    out = capsys.readouterr()
    return code, out.out, out.err


def ingest(capsys, data: Path, path: Path, *extra: str) -> tuple[int, dict | None, str]:
    code, out, err = cli(capsys, "ingest", str(path), "--data", str(data), "--json", *extra)
    return code, (json.loads(out) if out.strip() else None), err


# ------------------------------------------------------------------ help

@pytest.mark.parametrize("cmd", [["simulate"], ["ingest"], ["bench", "ingest"]])
def test_help(capsys, cmd):
    code, out, _ = cli(capsys, *cmd, "--help")
    assert code == 0 and out.startswith(f"usage: scenic-twin {' '.join(cmd)}")


# ------------------------------------------------------------------ simulate

def test_simulate_writes_every_kind_and_a_manifest(tmp_path):
    out = tmp_path / "rec"
    r = subprocess.run([sys.executable, "-m", "dashboard.cli", "simulate", "--scenario", "national-day",
                        "--duration", "1h", "--out", str(out)], cwd=ROOT, capture_output=True, text=True,
                       timeout=120)
    assert r.returncode == 0, r.stderr
    summary = json.loads(r.stdout)
    assert "100.0%" in r.stderr and "60/60 min" in r.stderr                      # the progress bar
    files = {p.name for p in out.iterdir()}
    assert files == {f"{k}.parquet" for k in FEED_KINDS} | {"malformed.jsonl", "manifest.json"}
    man = json.loads((out / "manifest.json").read_text())
    assert man["scenario"] == "national-day" and man["seed"] == 0
    assert man["start_local"] == "2026-10-01T08:00:00+08:00"                     # the documented default
    assert man["duration"] == "1h" and man["generator"].startswith("scenic-twin-sim/")
    assert set(man["counts"]) == set(FEED_KINDS) and man["counts"]["crowd"] > 900
    assert man["fault_counts"]["malformed"] == man["malformed"] > 0
    assert summary["counts"] == man["counts"] and summary["records"] > 50_000
    # replay: every kind back, in arrival order, each table exactly its schema
    n = {k: 0 for k in FEED_KINDS}
    bad = 0
    last = 0
    for batch in read_recording(out):
        kind, payload = batch
        assert batch.arrival_ms[0] >= last
        last = int(batch.arrival_ms[-1])
        if kind == "malformed":
            bad += len(payload)
            assert all("kind" in r for r in payload)
        else:
            assert payload.schema.equals(SCHEMAS[kind])
            n[kind] += payload.num_rows
    assert n == man["counts"] and bad == man["malformed"]


def test_simulate_is_reproducible_and_lists_scenarios(capsys, tmp_path):
    code, out, _ = cli(capsys, "simulate", "--list")
    assert code == 0
    names = [line.split()[0] for line in out.splitlines()]
    assert {"normal-weekday", "national-day", "light-show", "rainstorm-red", "typhoon", "facility-failures",
            "bus-bunching", "metro-control", "holiday-rainstorm"} <= set(names)
    args = ["simulate", "--scenario", "rainstorm-red", "--start", "2026-05-20T14:00+08:00", "--duration", "10m",
            "--seed", "4", "--faults", "late=0.02,malformed=0.01", "--quiet"]
    a = cli(capsys, *args, "--out", str(tmp_path / "a"))
    b = cli(capsys, *args, "--out", str(tmp_path / "b"))
    assert a[0] == b[0] == 0
    for k in FEED_KINDS:
        ta = pa.parquet.read_table(tmp_path / "a" / f"{k}.parquet")
        tb = pa.parquet.read_table(tmp_path / "b" / f"{k}.parquet")
        assert ta.equals(tb), k
    assert (tmp_path / "a" / "malformed.jsonl").read_text() == (tmp_path / "b" / "malformed.jsonl").read_text()
    assert json.loads(a[1])["faults"]["late"] == 0.02


@pytest.mark.parametrize("args, message", [
    (["--scenario", "carnival", "--out", "x"], "unknown scenario 'carnival'"),
    (["--scenario", "typhoon", "--duration", "an hour", "--out", "x"], "cannot read duration"),
    (["--scenario", "typhoon", "--start", "2026-09-16T14:00", "--out", "x"], "has no UTC offset"),
    (["--scenario", "typhoon", "--faults", "lateness=1", "--out", "x"], "cannot read fault"),
    (["--scenario", "typhoon"], "give --out"),
])
def test_simulate_refuses_bad_arguments_with_a_reason(capsys, args, message):
    code, _, err = cli(capsys, "simulate", *args)
    assert code == 2 and message in err


# ------------------------------------------------------------------ ingest: real samples

def test_ingest_gtfs_rt_vehicle_positions(capsys, td, tmp_path):
    code, r, _ = ingest(capsys, tmp_path, td / "gtfs-rt/bullrunner-vehicle-positions.pb")
    assert code == 0 and r["format"] == "gtfs-rt"
    assert r["accepted"] == 10 and r["rejected_count"] == 0
    assert (tmp_path / "feeds" / "log").is_dir() and (tmp_path / "feeds" / "dead-letters.sqlite").is_file()
    # the same file again: all duplicates, still exit 0
    code, r, _ = ingest(capsys, tmp_path, td / "gtfs-rt/bullrunner-vehicle-positions.pb")
    assert code == 0 and r["accepted"] == 0 and r["duplicates"] == 10


def test_ingest_gtfs_rt_text_format_reports_the_adapters_notes(capsys, td, tmp_path):
    code, r, _ = ingest(capsys, tmp_path, td / "gtfs-rt/trip-updates-full.asciipb")
    assert code == 0 and r["accepted"] == 2
    assert any("without a vehicle descriptor" in n for n in r["notes"])
    code, r, _ = ingest(capsys, tmp_path, td / "gtfs-rt/alerts.asciipb")
    assert code == 0 and r["accepted"] == 1            # the service alert, as a warning


def test_ingest_cap_warning_and_a_cap_that_is_no_guangdong_signal(capsys, td, tmp_path):
    code, r, _ = ingest(capsys, tmp_path, td / "cap/thunderstorm.cap.xml")
    assert code == 0 and r["accepted"] == 1
    # an official alert of no Guangdong signal type is still a warning the wall shows
    # (into a log of its own: in the first one its 2003 event time is late)
    code, r, err = ingest(capsys, tmp_path / "other", td / "cap/43b080713727.cap.xml")
    assert code == 0 and r["accepted"] == 1 and r["rejected_count"] == 0


def test_ingest_sensorthings_and_ngsi_ld(capsys, td, tmp_path):
    code, r, _ = ingest(capsys, tmp_path, td / "iot/smart-data-models/CrowdFlowObserved/example-normalized.jsonld")
    # read, but its road segment is a Spanish city's, not a zone of the scenic area: a located
    # error, not a silent new zone
    assert code == 1 and r["format"] == "ngsi-ld" and r["accepted"] == 0
    assert [x["code"] for x in r["rejected"]] == ["unknown_reference"]
    assert "names nothing in the asset inventory" in r["rejected"][0]["reason"]
    assert any("CrowdFlowObserved" in n for n in r["notes"])
    code, r, _ = ingest(capsys, tmp_path, td / "iot/sensorthings/thing-complete-deep-insert.json")
    assert code == 1 and r["format"] == "sensorthings" and r["rejected_count"] == 4
    # read well, but luminous flux is no quantity of the twin: located, and says what to map
    assert all(x["code"] == "unmapped" and "Luminous Flux" in x["reason"] and "Datastream mapping" in x["reason"]
               for x in r["rejected"])


# ------------------------------------------------------------------ ingest: bad files

def test_ingest_invalid_cap_is_rejected_with_its_reason(capsys, td, tmp_path):
    code, r, _ = ingest(capsys, tmp_path, td / "invalid/cap-library-invalid.cap.xml")
    assert code == 1 and r["rejected"][0]["code"] == "missing_field"
    assert "scope" in r["rejected"][0]["reason"]


def test_ingest_refuses_an_xxe_attack_whole_and_keeps_it(capsys, td, tmp_path):
    code, r, err = ingest(capsys, tmp_path, td / "invalid/cap-library-xee.cap.xml")
    assert code == 2 and r["unreadable"] and "DTD" in err
    with sqlite3.connect(tmp_path / "feeds" / "dead-letters.sqlite") as db:
        assert db.execute("SELECT count(*) FROM dead_letters WHERE reason LIKE '%XXE%'").fetchone()[0] == 1


def test_ingest_unreadable_files_exit_2_saying_what_to_do(capsys, td, tmp_path):
    code, r, err = ingest(capsys, tmp_path, td / "gtfs-rt/sample-feed-1.zip")
    assert code == 2 and r is None and "ZIP archive" in err and "unpack" in err
    junk = tmp_path / "junk.parquet"
    junk.write_bytes(b"this is not parquet at all")
    code, _, err = ingest(capsys, tmp_path, junk)
    assert code == 2 and "not a readable Parquet file" in err
    code, _, err = ingest(capsys, tmp_path, tmp_path / "missing.pb")
    assert code == 2 and "cannot read" in err and "Check the path" in err
    blob = tmp_path / "blob.bin"
    blob.write_bytes(b'{"hello": "world"}')
    code, _, err = ingest(capsys, tmp_path, blob)
    assert code == 2 and "give --format" in err


def test_ingest_jsonl_rejects_bad_lines_with_line_numbers(capsys, tmp_path):
    f = tmp_path / "mixed.jsonl"
    f.write_text("\n".join([
        '{"kind":"crowd","event_id":"c1","event_time":"2026-10-01T11:00:00Z","zone_id":"west_plaza","count":812}',
        '{"kind":"crowd","event_id":"c2","event_time":"2026-10-01T11:00:00Z","zone_id":"west_plaza","count":-3}',
        '{"kind":"lemonade","event_id":"x"}',
        'not json',
        '{"kind":"crowd","event_id":"c3","event_time":"2026-10-01 11:00:00","zone_id":"tower_base","count":5}',
    ]) + "\n", encoding="utf-8")
    code, r, _ = ingest(capsys, tmp_path, f)
    assert code == 1 and r["accepted"] == 1 and r["rejected_count"] == 4
    by_line = {x["where"]: x for x in r["rejected"]}
    assert by_line["line 2"]["code"] == "out_of_range" and "count" in by_line["line 2"]["reason"]
    assert by_line["line 3"]["code"] == "unknown_kind"
    assert by_line["line 4"]["code"] == "parse_error"
    assert by_line["line 5"]["code"] == "bad_type" and "UTC offset" in by_line["line 5"]["reason"]


def test_ingest_a_recording_and_its_malformed_records(capsys, tmp_path):
    sc_items = simulate("national-day", None, __import__("datetime").timedelta(minutes=10), 2,
                        faults=Faults(malformed=0.02, missing=0, late=0, out_of_order=0, duplicate=0))
    man = write_recording(tmp_path / "rec", sc_items, manifest={"scenario": "national-day"}, progress=False)
    data = tmp_path / "var"
    code, r, _ = ingest(capsys, data, tmp_path / "rec" / "crowd.parquet")
    assert code == 0 and r["format"] == "parquet" and r["accepted"] == man["counts"]["crowd"]
    assert any("arrival_time" in n for n in r["notes"])
    code, r, _ = ingest(capsys, data, tmp_path / "rec" / "malformed.jsonl")
    assert code == 1 and r["accepted"] == 0 and r["rejected_count"] == man["malformed"] > 0
    # an Arrow IPC stream named after its kind
    t = pa.parquet.read_table(tmp_path / "rec" / "gate.parquet").replace_schema_metadata(None)
    ipc = tmp_path / "gate-feed.arrows"
    with pa.ipc.new_stream(ipc, t.schema) as w:
        w.write_table(t)
    code, r, _ = ingest(capsys, data, ipc)
    assert code == 0 and r["format"] == "arrow" and r["accepted"] == man["counts"]["gate"]


def test_ingest_uses_scenic_twin_var_by_default(capsys, td, tmp_path, monkeypatch):
    monkeypatch.setenv("SCENIC_TWIN_VAR", str(tmp_path / "envvar"))
    code, out, _ = cli(capsys, "ingest", str(td / "cap/thunderstorm.cap.xml"))
    assert code == 0 and "accepted 1" in out
    assert (tmp_path / "envvar" / "feeds" / "log").is_dir()


# ------------------------------------------------------------------ bench

def test_bench_ingest_reports_arrow_jsonl_and_gtfs_rt_against_the_floor(capsys):
    code, out, err = cli(capsys, "bench", "ingest", "--events", "3000", "--gtfs-events", "1000", "--batch-rows", "1000")
    assert code == 0, err
    rows = {line.split()[0]: line.split() for line in out.splitlines() if line.startswith("  ") and len(line.split()) == 4}
    assert {"floor", "arrow_ipc", "jsonl", "gtfs_rt"} <= set(rows)
    for case in ("arrow_ipc", "jsonl", "gtfs_rt"):
        eps = float(rows[case][2].replace(",", ""))
        ratio = float(rows[case][3])
        assert eps > 0 and ratio >= 1.0, rows[case]
    assert "[bench]" in err and "GTFS-RT FeedMessage of 1,000" in err
