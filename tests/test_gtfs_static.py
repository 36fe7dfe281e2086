"""Static GTFS: the real sample zips load with the counts their files hold;
broken zips are refused with every problem listed; `scenic-twin gtfs load`
prints a summary and stores the ids where `ingest` finds them."""
from __future__ import annotations

import json
import zipfile
from datetime import date
from pathlib import Path

import pytest

from dashboard.cli import main
from indicators.feeds.gtfs_static import GtfsError, StaticGtfs, load_static, read_stored


def cli(capsys, *args: str) -> tuple[int, str, str]:
    try:
        code = main(list(args))
    except SystemExit as e:
        code = e.code if isinstance(e.code, int) else 2
    out = capsys.readouterr()
    return code, out.out, out.err


def rezip(src: Path, dest: Path, rename=lambda name: name, drop=()) -> Path:
    """A copy of a GTFS zip with its members renamed or left out."""
    with zipfile.ZipFile(src) as zin, zipfile.ZipFile(dest, "w") as zout:
        for name in zin.namelist():
            if name not in drop:
                zout.writestr(rename(name), zin.read(name))
    return dest


def test_bullrunner_gtfs_loads(td):
    s = load_static(td / "gtfs-rt/bullrunner-gtfs.zip")
    # routes.txt has 6 routes (A-F), trips.txt 15 trips, stops.txt 125 stops
    assert (len(s.routes), len(s.trip_ids), len(s.stop_ids)) == (6, 15, 125)
    assert s.agencies == ("USF Bull Runner",)
    assert s.routes["A"] == ("A", "Green Campus Loop") and s.route_label("A") == "route A (Green Campus Loop)"
    assert {"1", "15"} <= s.trip_ids and "101" in s.stop_ids
    assert (s.service_start, s.service_end) == (date(2015, 1, 1), date(2020, 12, 31))  # calendar.txt


def test_sample_feed_1_loads(td):
    s = load_static(td / "gtfs-rt/sample-feed-1.zip")
    # the GTFS reference's example feed: 5 routes, 11 trips, 9 stops; calendar and calendar_dates
    assert (len(s.routes), len(s.trip_ids), len(s.stop_ids)) == (5, 11, 9)
    assert s.agencies == ("Demo Transit Authority",)
    assert s.route_label("AB") == "route AB (10 Airport - Bullfrog)"
    assert "AAMV4" in s.trip_ids and "BEATTY_AIRPORT" in s.stop_ids
    assert (s.service_start, s.service_end) == (date(2007, 1, 1), date(2010, 12, 31))


def test_files_in_a_sub_folder_are_accepted(td, tmp_path):
    z = rezip(td / "gtfs-rt/sample-feed-1.zip", tmp_path / "nested.zip", rename=lambda n: "google_transit/" + n)
    assert len(load_static(z).trip_ids) == 11


def test_wrong_file_names_are_refused_listing_what_is_missing(td, tmp_path):
    z = rezip(td / "gtfs-rt/sample-feed-1.zip", tmp_path / "csv.zip", rename=lambda n: n.replace(".txt", ".csv"))
    with pytest.raises(GtfsError) as e:
        load_static(z)
    (problem,) = e.value.problems
    for name in ("agency.txt", "stops.txt", "routes.txt", "trips.txt", "stop_times.txt",
                 "calendar.txt or calendar_dates.txt"):
        assert name in problem
    z = rezip(td / "gtfs-rt/bullrunner-gtfs.zip", tmp_path / "partial.zip", drop=("calendar.txt", "trips.txt"))
    with pytest.raises(GtfsError, match=r"missing: trips\.txt, calendar\.txt or calendar_dates\.txt$"):
        load_static(z)


def test_every_problem_is_listed_at_once(td, tmp_path):
    with zipfile.ZipFile(tmp_path / "bad.zip", "w") as z:
        z.writestr("agency.txt", "agency_name\nDemo\n")
        z.writestr("stops.txt", "id,name\nS1,Stop\n")                  # no stop_id column
        z.writestr("routes.txt", "route_id,route_short_name\nR1,1\n")
        z.writestr("trips.txt", "route_id,service_id,trip_id\nR1,WK,T1\n")
        z.writestr("stop_times.txt", "trip_id,stop_id\nT1,S1\n")
        z.writestr("calendar_dates.txt", "service_id,date,exception_type\nWK,2024-01-05,1\n")
    with pytest.raises(GtfsError) as e:
        load_static(tmp_path / "bad.zip")
    assert e.value.problems == ["stops.txt has no column stop_id",
                                "calendar_dates.txt line 2 date '2024-01-05' is not a date written YYYYMMDD"]
    (tmp_path / "notzip.zip").write_text("agency_name\n")
    with pytest.raises(GtfsError, match="cannot be opened as a ZIP archive"):
        load_static(tmp_path / "notzip.zip")


def test_stored_form_round_trips(td, tmp_path):
    s = load_static(td / "gtfs-rt/sample-feed-1.zip")
    s.save(tmp_path / "feeds" / "gtfs_static.json")
    back = read_stored(tmp_path / "feeds" / "gtfs_static.json")
    assert isinstance(back, StaticGtfs) and back == s
    (tmp_path / "junk.json").write_text("[1, 2]")
    with pytest.raises(ValueError, match="cannot be read as a stored static GTFS|not a stored static GTFS"):
        read_stored(tmp_path / "junk.json")


def test_cli_gtfs_load_prints_a_summary_and_stores_the_ids(capsys, td, tmp_path, monkeypatch):
    monkeypatch.setenv("SCENIC_TWIN_VAR", str(tmp_path / "env"))
    code, out, _ = cli(capsys, "gtfs", "load", str(td / "gtfs-rt/bullrunner-gtfs.zip"))
    assert code == 0
    assert "USF Bull Runner: 6 routes, 15 trips, 125 stops; service 2015-01-01 to 2020-12-31" in out
    stored = tmp_path / "env" / "feeds" / "gtfs_static.json"
    assert len(json.loads(stored.read_text())["trip_ids"]) == 15
    code, out, _ = cli(capsys, "gtfs", "load", str(td / "gtfs-rt/sample-feed-1.zip"), "--var",
                       str(tmp_path / "other"), "--json")
    summary = json.loads(out)
    assert code == 0 and summary["agencies"] == ["Demo Transit Authority"]
    assert (summary["routes"], summary["trips"], summary["stops"]) == (5, 11, 9)
    assert summary["service_start"] == "2007-01-01" and summary["service_end"] == "2010-12-31"
    assert summary["stored"] == str(tmp_path / "other" / "feeds" / "gtfs_static.json")


def test_cli_gtfs_load_refuses_a_zip_missing_files(capsys, td, tmp_path):
    z = rezip(td / "gtfs-rt/sample-feed-1.zip", tmp_path / "x.zip", drop=("stops.txt",))
    code, out, err = cli(capsys, "gtfs", "load", str(z), "--var", str(tmp_path))
    assert code == 2 and out == "" and "required file(s) missing: stops.txt" in err
    assert not (tmp_path / "feeds" / "gtfs_static.json").exists()
