"""Hourly pedestrian counts from a wide CSV (date, hour, one column per sensor, local time with
DST) read with a TOML mapping file (indicators.feeds.adapters.counts_csv).

Every CSV and mapping file is written here, in tmp_path; the gate and zone ids are the
inventory's (data/inventory.parquet, type == "gate")."""
from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pytest

from indicators.feeds.adapters.counts_csv import CountsMapping, load_mapping, parse
from indicators.feeds.deadletter import DeadLetterStore
from indicators.feeds.ingest import Ingestor, references_from_inventory
from indicators.feeds.log import FeedLog
from indicators.feeds.validate import validate

UTC = timezone.utc
G1, G2, ZONE = "gate-tower_base-0001", "gate-tower_base-0002", "tower_base"
G3, ZONE3 = "gate-haixin_bridge-0001", "haixin_bridge"


def mapping_text(tz: str = "Asia/Shanghai", *, extra: str = "", date_format: str = "%d/%m/%Y",
                 hour: str = 'hour_column = "Hour"') -> str:
    return f'''# counts of the tower-base gates as the counting system exports them
timezone = "{tz}"
date_column = "Date"
date_format = "{date_format}"
{hour}
interval = "1h"
{extra}
[[gate]]
gate_id = "{G1}"
zone_id = "{ZONE}"
entries = "Sensor 12 In"
exits = "Sensor 12 Out"

[[gate]]
gate_id = "{G2}"
zone_id = "{ZONE}"
entries = "Sensor 13 In"
exits = "Sensor 13 Out"
'''


HEADER = "Date,Hour,Sensor 12 In,Sensor 12 Out,Sensor 13 In,Sensor 13 Out"


def write(tmp_path, name: str, text: str | bytes):
    p = tmp_path / name
    if isinstance(text, str):
        p.write_text(text, encoding="utf-8")
    else:
        p.write_bytes(text)
    return p


def mapping(tmp_path, tz: str = "Asia/Shanghai", **kw) -> CountsMapping:
    return load_mapping(write(tmp_path, "map.toml", mapping_text(tz, **kw)))


def day_csv(day: str, hours, *, counts=lambda i, h: (10 + i, 20 + i, 30 + i, 40 + i), header=HEADER,
            sep=",", eol="\n") -> str:
    """One row per hour label of ``day`` (dd/mm/yyyy); counts of row i from ``counts``."""
    lines = [header.replace(",", sep)]
    for i, h in enumerate(hours):
        lines.append(sep.join([day, str(h), *map(str, counts(i, h))]))
    return eol.join(lines) + eol


def gate_rows(parsed, gate_id: str) -> list[dict]:
    return [r for r in parsed.tables["gate"].to_pylist() if r["gate_id"] == gate_id]


def ends(parsed, gate_id: str) -> list[datetime]:
    return [r["event_time"] for r in gate_rows(parsed, gate_id)]


def hours_from(start: datetime, n: int) -> list[datetime]:
    return [start + timedelta(hours=k) for k in range(n)]


# --- a normal day, no DST -----------------------------------------------------------------------

def test_a_normal_day_in_shanghai_gives_24_rows_per_gate_ending_each_hour_in_utc(tmp_path):
    m = mapping(tmp_path)
    p = parse(day_csv("14/04/2026", range(24)).encode(), m, source="counts:north")
    assert p.rejects == [] and p.notes == []
    rows = gate_rows(p, G1)
    assert len(rows) == 24 and len(gate_rows(p, G2)) == 24
    # 00:00-01:00 Shanghai (UTC+8) ends at 17:00 UTC the day before
    assert ends(p, G1) == hours_from(datetime(2026, 4, 13, 17, tzinfo=UTC), 24)
    first = rows[0]
    assert first == {"event_id": f"{G1}@2026-04-13T17:00:00.000Z", "event_time": datetime(2026, 4, 13, 17, tzinfo=UTC),
                     "source": "counts:north", "gate_id": G1, "zone_id": ZONE, "entries": 10, "exits": 20,
                     "interval_s": 3600}
    assert [(r["entries"], r["exits"]) for r in gate_rows(p, G2)][:2] == [(30, 40), (31, 41)]


def test_shanghai_has_no_dst_so_a_repeated_hour_is_a_repeat_not_a_fall_back(tmp_path):
    m = mapping(tmp_path)
    p = parse(day_csv("01/11/2026", [0, 1, 2, 2, 3]).encode(), m)
    assert ends(p, G1) == hours_from(datetime(2026, 10, 31, 17, tzinfo=UTC), 4)
    assert [r.where for r in p.rejects] == ["row 5"]
    assert "already given in row 4" in p.rejects[0].reason
    assert p.rejects[0].raw == "01/11/2026,2,13,23,33,43"


# --- DST: Europe/Berlin -------------------------------------------------------------------------

def test_a_spring_forward_day_gives_23_hourly_rows_per_gate_at_the_right_utc_times(tmp_path):
    # 2026-03-29: Berlin clocks go from 02:00 CET (+01) to 03:00 CEST (+02); a system keeping
    # local time writes no 02:00 row
    m = mapping(tmp_path, "Europe/Berlin")
    hours = [h for h in range(24) if h != 2]
    p = parse(day_csv("29/03/2026", hours, counts=lambda i, h: (h, 100 + h, 0, 0)).encode(), m)
    assert p.rejects == [] and p.notes == []
    assert len(gate_rows(p, G1)) == 23 and len(gate_rows(p, G2)) == 23
    # 00:00 CET = 23:00 UTC the day before, so the first interval ends at 00:00 UTC; the 23
    # intervals are consecutive UTC hours
    assert ends(p, G1) == hours_from(datetime(2026, 3, 29, 0, tzinfo=UTC), 23)
    by_hour = {r["entries"]: r["event_time"] for r in gate_rows(p, G1)}
    assert by_hour[1] == datetime(2026, 3, 29, 1, tzinfo=UTC)      # 01:00-02:00 CET = 00:00-01:00 UTC
    assert by_hour[3] == datetime(2026, 3, 29, 2, tzinfo=UTC)      # 03:00-04:00 CEST = 01:00-02:00 UTC
    assert by_hour[23] == datetime(2026, 3, 29, 22, tzinfo=UTC)


def test_a_count_at_the_local_hour_that_does_not_exist_is_a_located_reject(tmp_path):
    m = mapping(tmp_path, "Europe/Berlin")
    p = parse(day_csv("29/03/2026", range(24)).encode(), m)
    assert len(gate_rows(p, G1)) == 23
    assert len(p.rejects) == 1
    r = p.rejects[0]
    assert r.where == "row 4"
    assert r.reason.startswith("row 4 (2026-03-29 02:00 Europe/Berlin): this local hour does not exist: "
                               "clocks went forward by 1 hour that day (CET +01:00 to CEST +02:00)")
    assert r.raw == "29/03/2026,2,12,22,32,42"


def test_a_fall_back_day_gives_25_rows_per_gate_the_repeated_hour_first_before_then_after(tmp_path):
    # 2025-10-26: Berlin clocks go back from 03:00 CEST (+02) to 02:00 CET (+01); 02:00-03:00 twice
    m = mapping(tmp_path, "Europe/Berlin")
    hours = [0, 1, 2, 2, *range(3, 24)]
    p = parse(day_csv("26/10/2025", hours, counts=lambda i, h: (i, 0, 0, 0)).encode(), m)
    assert p.rejects == [] and p.notes == []
    assert len(gate_rows(p, G1)) == 25 and len(gate_rows(p, G2)) == 25
    assert ends(p, G1) == hours_from(datetime(2025, 10, 25, 23, tzinfo=UTC), 25)
    by_row = {r["entries"]: r["event_time"] for r in gate_rows(p, G1)}
    assert by_row[2] == datetime(2025, 10, 26, 1, tzinfo=UTC)   # first 02:00 is CEST: 00:00-01:00 UTC
    assert by_row[3] == datetime(2025, 10, 26, 2, tzinfo=UTC)   # second 02:00 is CET: 01:00-02:00 UTC
    assert by_row[4] == datetime(2025, 10, 26, 3, tzinfo=UTC)   # 03:00 CET = 02:00 UTC


def test_the_ambiguous_hour_given_once_is_taken_as_the_first_and_a_note_says_so(tmp_path):
    m = mapping(tmp_path, "Europe/Berlin")
    p = parse(day_csv("26/10/2025", range(24), counts=lambda i, h: (h, 0, 0, 0)).encode(), m)
    assert p.rejects == []
    assert len(gate_rows(p, G1)) == 24
    assert {r["entries"]: r["event_time"] for r in gate_rows(p, G1)}[2] == datetime(2025, 10, 26, 1, tzinfo=UTC)
    assert len(p.notes) == 1
    note = p.notes[0]
    assert note.startswith("row 4 (2025-10-26 02:00 Europe/Berlin): this local hour occurs twice")
    assert "gives it once" in note and "the first occurrence (CEST +02:00, starting 2025-10-26T00:00:00.000Z) was assumed" in note


def test_a_third_row_for_the_repeated_hour_is_refused(tmp_path):
    m = mapping(tmp_path, "Europe/Berlin")
    p = parse(day_csv("26/10/2025", [1, 2, 2, 2, 3]).encode(), m)
    assert len(gate_rows(p, G1)) == 4
    assert [r.where for r in p.rejects] == ["row 5"]
    assert "rows 3 and 4 already gave it" in p.rejects[0].reason


# --- DST: Australia/Sydney, hours written as ranges ---------------------------------------------

def test_sydney_fall_back_with_hour_ranges(tmp_path):
    # 2026-04-05: Sydney clocks go back from 03:00 AEDT (+11) to 02:00 AEST (+10)
    m = mapping(tmp_path, "Australia/Sydney", date_format="%Y-%m-%d")
    hours = [f"{h:02d}:00-{(h + 1) % 24:02d}:00" for h in [0, 1, 2, 2, *range(3, 24)]]
    p = parse(day_csv("2026-04-05", hours, counts=lambda i, h: (i, i, i, i)).encode(), m)
    assert p.rejects == [] and p.notes == []
    assert len(gate_rows(p, G1)) == 25
    # 00:00 AEDT = 13:00 UTC the day before; the first interval ends at 14:00 UTC
    assert ends(p, G1) == hours_from(datetime(2026, 4, 4, 14, tzinfo=UTC), 25)
    by_row = {r["entries"]: r["event_time"] for r in gate_rows(p, G2)}
    assert by_row[2] == datetime(2026, 4, 4, 16, tzinfo=UTC)    # 02:00 AEDT = 15:00 UTC, ends 16:00
    assert by_row[3] == datetime(2026, 4, 4, 17, tzinfo=UTC)    # 02:00 AEST = 16:00 UTC, ends 17:00


def test_sydney_spring_forward(tmp_path):
    # 2025-10-05: 02:00 AEST (+10) becomes 03:00 AEDT (+11)
    m = mapping(tmp_path, "Australia/Sydney")
    p = parse(day_csv("05/10/2025", [h for h in range(24) if h != 2]).encode(), m)
    assert p.rejects == [] and len(gate_rows(p, G1)) == 23
    assert ends(p, G1) == hours_from(datetime(2025, 10, 4, 15, tzinfo=UTC), 23)


def test_a_range_that_does_not_match_the_interval_is_refused(tmp_path):
    m = mapping(tmp_path)
    p = parse(day_csv("14/04/2026", ["07:00-08:00", "08:00-08:15"]).encode(), m)
    assert len(gate_rows(p, G1)) == 1
    assert [r.where for r in p.rejects] == ["row 3, column 'Hour'"]
    assert "lasts 15 min but the mapping's interval is 60 min" in p.rejects[0].reason


# --- hour labels -----------------------------------------------------------------------------------

def test_hours_numbered_1_to_24_are_refused_as_starts_and_read_as_ends_when_the_mapping_says_so(tmp_path):
    csv_text = day_csv("14/04/2026", range(1, 25)).encode()
    as_start = parse(csv_text, mapping(tmp_path))
    assert as_start.tables == {}
    assert len(as_start.rejects) == 1
    assert "row 25 gives hour '24'" in as_start.rejects[0].reason
    assert 'write hour_labels = "end"' in as_start.rejects[0].reason
    as_end = parse(csv_text, mapping(tmp_path, extra='hour_labels = "end"'))
    assert as_end.rejects == []
    # hour 1 = 00:00-01:00 local, the same instants as hours 0-23 read as starts
    assert ends(as_end, G1) == hours_from(datetime(2026, 4, 13, 17, tzinfo=UTC), 24)


def test_date_and_time_in_one_column(tmp_path):
    m = mapping(tmp_path, date_format="%Y-%m-%d %H:%M", hour="")
    text = "Date,Sensor 12 In,Sensor 12 Out,Sensor 13 In,Sensor 13 Out\n2026-04-14 09:00,5,6,7,8\n"
    p = parse(text.encode(), m)
    assert p.rejects == []
    assert ends(p, G1) == [datetime(2026, 4, 14, 2, tzinfo=UTC)]


# --- counts ----------------------------------------------------------------------------------------

@pytest.mark.parametrize("cell, value", [("16", 16), ("16.0", 16), (" 16 ", 16), ("+16", 16), ("0", 0)])
def test_whole_numbers_are_counts(tmp_path, cell, value):
    p = parse(f"{HEADER}\n14/04/2026,9,{cell},1,2,3\n".encode(), mapping(tmp_path))
    assert p.rejects == []
    assert gate_rows(p, G1)[0]["entries"] == value


@pytest.mark.parametrize("cell, why", [
    ("16.5", "must be a whole number"),
    ("-3", "cannot be negative"),
    ("abc", "not a number"),
    ('"1 234"', "thousands separators"),
    ("", "the cell is empty: no count for this interval (an empty cell is not read as 0)"),
])
def test_a_bad_or_empty_count_refuses_that_gates_hour_and_says_where_and_why(tmp_path, cell, why):
    p = parse(f"{HEADER}\n14/04/2026,9,7,8,9,10\n14/04/2026,10,1,{cell},2,3\n".encode(), mapping(tmp_path))
    assert len(gate_rows(p, G1)) == 1                      # the good hour of the gate
    assert len(gate_rows(p, G2)) == 2                      # the other gate of the bad row is kept
    assert len(p.rejects) == 1
    r = p.rejects[0]
    shown = cell.strip('"')
    assert r.where == "row 3, column 'Sensor 12 Out'"
    assert r.reason.startswith(f"row 3 (2026-04-14 10:00 Asia/Shanghai), gate {G1}: "
                               f"column 'Sensor 12 Out' = {shown!r}: ")
    assert why in r.reason
    assert all(row["exits"] != 0 for row in gate_rows(p, G1))   # never filled with 0


# --- the file ------------------------------------------------------------------------------------

def test_bom_crlf_and_semicolons_are_read(tmp_path):
    text = day_csv("14/04/2026", range(24), sep=";", eol="\r\n")
    p = parse(b"\xef\xbb\xbf" + text.encode(), mapping(tmp_path))
    assert p.rejects == [] and p.notes == []
    assert len(gate_rows(p, G1)) == 24


def test_a_tab_separated_file_in_gb18030_with_chinese_headers(tmp_path):
    m = load_mapping(write(tmp_path, "cn.toml", f'''timezone = "Asia/Shanghai"
date_column = "日期"
date_format = "%Y/%m/%d"
hour_column = "时段"
delimiter = "tab"
encoding = "gb18030"
[[gate]]
gate_id = "{G3}"
zone_id = "{ZONE3}"
entries = "海心桥北 进"
exits = "海心桥北 出"
'''))
    text = "日期\t时段\t海心桥北 进\t海心桥北 出\n2026/04/14\t09:00-10:00\t812\t640\n"
    p = parse(text.encode("gb18030"), m)
    assert p.rejects == []
    assert gate_rows(p, G3) == [{"event_id": f"{G3}@2026-04-14T02:00:00.000Z",
                                 "event_time": datetime(2026, 4, 14, 2, tzinfo=UTC), "source": "counts-csv",
                                 "gate_id": G3, "zone_id": ZONE3, "entries": 812, "exits": 640, "interval_s": 3600}]
    # the same bytes read as UTF-8: one reject, with the hint
    p = parse(text.encode("gb18030"), mapping(tmp_path))
    assert p.tables == {} and len(p.rejects) == 1 and 'encoding = "gb18030"' in p.rejects[0].reason


def test_a_missing_mapped_column_refuses_the_file_listing_missing_and_found_columns(tmp_path):
    header = "Date,Hour,Sensor 12 In,Sensor 12 Out,Sensor 13 In,Sensor 13 out"
    p = parse(day_csv("14/04/2026", range(3), header=header).encode(), mapping(tmp_path))
    assert p.tables == {}
    assert len(p.rejects) == 1
    r = p.rejects[0]
    assert r.where == "row 1 (header)"
    assert "the header lacks the mapped column 'Sensor 13 Out' (is it 'Sensor 13 out'?)" in r.reason
    assert ("Columns found (separator ','): 'Date', 'Hour', 'Sensor 12 In', 'Sensor 12 Out', "
            "'Sensor 13 In', 'Sensor 13 out'") in r.reason
    assert r.raw == header


def test_extra_columns_a_title_row_and_blank_rows_are_noted_not_silently_ignored(tmp_path):
    text = ("North gates hourly export\n\n" + HEADER + ",Total,\n"
            "14/04/2026,9,1,2,3,4,10,\n\n14/04/2026,10,1,2,3,4,10,\n")
    p = parse(text.encode(), mapping(tmp_path))
    assert p.rejects == []
    assert len(gate_rows(p, G1)) == 2
    assert p.notes == ["1 row above the header (row 3) skipped: 'North gates hourly export'",
                       "1 column of the file not in the mapping was not read: 'Total'",
                       "1 blank row skipped"]


def test_a_row_whose_fields_do_not_line_up_is_refused(tmp_path):
    p = parse(f"{HEADER}\n14/04/2026,9,1,2,3\n14/04/2026,10,1,2,3,4\n".encode(), mapping(tmp_path))
    assert len(gate_rows(p, G1)) == 1
    assert [r.where for r in p.rejects] == ["row 2"]
    assert "has 5 fields but the header has 6" in p.rejects[0].reason


def test_a_bad_date_is_a_located_reject(tmp_path):
    p = parse(f"{HEADER}\n2026-04-14,9,1,2,3,4\nTotal,,1,2,3,4\n".encode(), mapping(tmp_path))
    assert p.tables == {}
    assert [r.where for r in p.rejects] == ["row 2, column 'Date'", "row 3, column 'Date'"]
    assert "the date '2026-04-14' (column 'Date') does not match date_format '%d/%m/%Y'" in p.rejects[0].reason


@pytest.mark.parametrize("data", [b"", b"\xff\xfe\x00garbage", b"Date\n", b'"unterminated\n' * 3, "x" * 200_000])
def test_garbage_never_raises(tmp_path, data):
    p = parse(data if isinstance(data, bytes) else data.encode(), mapping(tmp_path))
    assert "gate" not in p.tables
    assert p.rejects or p.notes


# --- event ids and validation --------------------------------------------------------------------

def test_event_ids_are_stable_so_the_same_file_gives_the_same_ids(tmp_path):
    m = mapping(tmp_path, "Europe/Berlin")
    data = day_csv("26/10/2025", [0, 1, 2, 2, 3]).encode()
    a, b = parse(data, m, source="one"), parse(data, m, source="two")
    ids = a.tables["gate"].column("event_id").to_pylist()
    assert ids == b.tables["gate"].column("event_id").to_pylist()
    assert len(set(ids)) == len(ids) == 10
    assert f"{G1}@2025-10-26T01:00:00.000Z" in ids and f"{G1}@2025-10-26T02:00:00.000Z" in ids


def test_the_rows_validate_as_gate_records(tmp_path):
    m = mapping(tmp_path, "Europe/Berlin")
    p = parse(day_csv("26/10/2025", [0, 1, 2, 2, *range(3, 24)]).encode(), m)
    table = p.tables["gate"]
    good, bad = validate("gate", table, now=datetime(2025, 10, 27, tzinfo=UTC))
    assert bad == []
    assert good.num_rows == table.num_rows == 50


# --- mapping files -----------------------------------------------------------------------------

GATE = f'[[gate]]\ngate_id = "{G1}"\nzone_id = "{ZONE}"\nentries = "A"\nexits = "B"\n'
TOP = 'timezone = "Asia/Shanghai"\ndate_column = "Date"\nhour_column = "Hour"\n'


@pytest.mark.parametrize("text, words", [
    (TOP.replace("timezone", "timezon") + GATE,
     ["unknown key 'timezon'", "did you mean 'timezone'?"]),
    ('date_column = "Date"\nhour_column = "Hour"\n' + GATE,
     ["key 'timezone' is missing", 'write timezone = "Asia/Shanghai"']),
    (TOP.replace("Asia/Shanghai", "Mars/Olympus_Mons") + GATE,
     ["key 'timezone' names no time zone known here ('Mars/Olympus_Mons')", "IANA"]),
    (TOP.replace("Asia/Shanghai", "CST") + GATE, ["key 'timezone' names no time zone"]),
    (TOP + 'interval = "7min"\n' + GATE, ["key 'interval' is '7min'", "divide a day", 'interval = "1h"']),
    (TOP + 'interval = "0h"\n' + GATE, ["key 'interval' is '0h'"]),
    (TOP + 'interval = "1 day"\n' + GATE, ["key 'interval' is '1 day'"]),
    (TOP + "interval = 3600\n" + GATE, ["key 'interval' must be text"]),
    (TOP + GATE.replace('exits = "B"', 'exits = "A"'),
     ["key 'exits' of [[gate]] 1 names the column 'A', which key 'entries' of [[gate]] 1 already names"]),
    (TOP + GATE + GATE.replace(G1, G2),
     ["key 'entries' of [[gate]] 2 names the column 'A', which key 'entries' of [[gate]] 1 already names"]),
    (TOP + GATE.replace('"A"', '"Hour"'), ["names the column 'Hour', which key 'hour_column' already names"]),
    (TOP + GATE + GATE, ["key 'gate_id' of [[gate]] 2 maps gate", "a second time"]),
    (TOP + GATE.replace('exits = "B"\n', ""),
     ["key 'exits' of [[gate]] 1 is missing (it has only entries)", "will not invent",
      'write exits = "Sensor 12 Out"']),
    (TOP + GATE.replace('zone_id = "tower_base"\n', ""), ["key 'zone_id' of [[gate]] 1 is missing"]),
    (TOP + GATE.replace("entries =", "entrys ="), ["unknown key 'entrys' in [[gate]] 1", "did you mean 'entries'?"]),
    (TOP, ["key 'gate' is missing", "[[gate]]"]),
    (TOP + GATE.replace("[[gate]]", "[gate]"), ["key 'gate' must be a list of tables", "double brackets"]),
    (TOP + 'date_format = "%d/%m"\n' + GATE, ["key 'date_format' ('%d/%m') does not give the full date"]),
    (TOP.replace('hour_column = "Hour"\n', "") + GATE, ["key 'hour_column' is missing", "%H"]),
    (TOP + 'hour_labels = "middle"\n' + GATE, ["key 'hour_labels' is 'middle'"]),
    (TOP + 'delimiter = "::"\n' + GATE, ["key 'delimiter' is '::'"]),
    (TOP + 'encoding = "klingon"\n' + GATE, ["key 'encoding' names no text encoding"]),
    (TOP + "date_column = 3\n" + GATE, ["not valid TOML"]),
    (TOP.replace('"Date"', "3") + GATE, ["key 'date_column' must be text in double quotes, not 3"]),
])
def test_a_bad_mapping_file_says_which_file_which_key_and_what_to_write(tmp_path, text, words):
    path = write(tmp_path, "north-gates.toml", text)
    with pytest.raises(ValueError) as err:
        load_mapping(path)
    msg = str(err.value)
    assert msg.startswith(f"{path}: ")
    for w in words:
        assert w in msg, msg
    assert "write" in msg


def test_a_mapping_file_that_is_not_there(tmp_path):
    with pytest.raises(ValueError, match="nowhere.toml: the mapping file cannot be read"):
        load_mapping(tmp_path / "nowhere.toml")


def test_the_documented_example_mapping_loads(tmp_path):
    m = mapping(tmp_path)
    assert (m.timezone, m.date_column, m.date_format, m.hour_column, m.interval_s, m.hour_labels) == \
        ("Asia/Shanghai", "Date", "%d/%m/%Y", "Hour", 3600, "start")
    assert [g.gate_id for g in m.gates] == [G1, G2]
    assert m.gates[0].entries == "Sensor 12 In" and m.gates[0].exits == "Sensor 12 Out"


# --- end to end: the ingestor ------------------------------------------------------------------

def test_ingesting_the_same_file_twice_gives_duplicates_and_rejects_go_to_the_dead_letters(tmp_path, inventory):
    m = mapping(tmp_path, "Europe/Berlin")
    # a fall-back day (25 hours) with one empty cell: gate 2 at 05:00
    data = day_csv("26/10/2025", [0, 1, 2, 2, *range(3, 24)],
                   counts=lambda i, h: (i, i + 1, i + 2, "" if h == 5 else i + 3)).encode()
    source = "counts-csv:tower-base"
    now = datetime(2025, 10, 27, 9, 0, tzinfo=UTC)
    log, dead = FeedLog(tmp_path / "log"), DeadLetterStore(tmp_path / "dead.sqlite")
    try:
        ing = Ingestor(log, dead, clock=lambda: now, allowed_lateness=timedelta(days=7),
                       references=references_from_inventory(inventory))
        first = ing.submit_parsed(parse(data, m, source=source), source=source)
        assert (first.accepted, first.duplicates, first.late) == (49, 0, 0)
        assert [(b.kind, b.where) for b in first.rejected] == [("gate", "row 8, column 'Sensor 13 Out'")]
        second = ing.submit_parsed(parse(data, m, source=source), source=source)
        assert (second.accepted, second.duplicates, second.late) == (0, 49, 0)
        letters = dead.list("gate")
        assert len(letters) == 2                              # the empty cell, once per ingestion
        assert {(d["source"], d["where"]) for d in letters} == {(source, "row 8, column 'Sensor 13 Out'")}
        assert all("an empty cell is not read as 0" in d["reason"] for d in letters)
        logged = [t for _, kind, t in log.replay(0) if kind == "gate"]
        assert sum(t.num_rows for t in logged) == 49
        assert set(logged[0].column("source").to_pylist()) == {source}
    finally:
        log.close()
        dead.close()


def test_a_file_refused_as_a_whole_is_dead_lettered_with_its_source(tmp_path):
    m = mapping(tmp_path)
    data = day_csv("14/04/2026", range(3), header=HEADER.replace("Sensor 13 Out", "S13 Out")).encode()
    log, dead = FeedLog(tmp_path / "log"), DeadLetterStore(tmp_path / "dead.sqlite")
    try:
        ing = Ingestor(log, dead, clock=lambda: datetime(2026, 4, 15, tzinfo=UTC))
        r = ing.submit_parsed(parse(data, m, source="counts-csv:x"), source="counts-csv:x")
        assert r.accepted == 0 and len(r.rejected) == 1
        [letter] = dead.list()
        assert letter["source"] == "counts-csv:x" and letter["where"] == "row 1 (header)"
        assert "'Sensor 13 Out'" in letter["reason"]
    finally:
        log.close()
        dead.close()
