"""The supervisors' threshold configuration (``indicators.thresholds``, ``scenic-twin thresholds``).

* the Golden Week calendar and the core area's ``holiday`` profile ship by
  default (``data/alerts/thresholds.toml``) beneath the saved versions;
* a change is validated field by field, with what to do;
* a saved version changes what a replay raises (a stricter red: more red
  alerts), a rollback restores it, a second save from a stale version is
  refused with what changed;
* the backtest's numbers - one engine run for both rule sets, or no engine
  over a tick history - equal the replay's with the same thresholds;
* the CLI round-trips as JSON with its exit codes, and every save, refusal
  and rollback lands in the account store's audit with who, before and after.

Each replay of the 8-minute National Day recording costs a few seconds here.
"""
from __future__ import annotations

import json
import subprocess
import sys
from collections import Counter
from datetime import date, datetime, timedelta, timezone
from pathlib import Path

import pytest

from indicators.access.store import AccessStore
from indicators.alerts import baseline as B
from indicators.alerts.runtime import load_config
from indicators.alerts.store import AlertStore
from indicators.replay_alerts import drive, replay_alerts
from indicators.thresholds import (Change, NoChange, Refused, StaleVersion, backtest, default_book, describe,
                                   rollback, set_rule, validate_change)
from indicators.thresholds.cli import main as thresholds_main

ROOT = Path(__file__).resolve().parents[1]
LOCAL = timezone(timedelta(hours=8))
T0 = datetime(2026, 9, 28, 8, 0, tzinfo=timezone.utc)
LOAD = "crowd.load_rate:zone={}@now"
EAST = LOAD.format("riverside_east")          # ~72 % on National Day evening: blue with the everyday tiers
STRICT = Change(tiers={"blue": 50, "yellow": 55, "orange": 60, "red": 65})


@pytest.fixture(scope="module")
def book():
    return default_book()


@pytest.fixture(scope="module")
def rec(tmp_path_factory):
    from indicators.feeds.simulator import Faults, simulate, write_recording
    out = tmp_path_factory.mktemp("nd") / "national-day"
    start = datetime(2026, 10, 1, 19, 0, tzinfo=LOCAL)
    write_recording(out, simulate("national-day", start, timedelta(minutes=8), 3, faults=Faults.off()),
                    manifest={"scenario": "national-day", "seed": 3}, progress=False)
    return out


def fresh_copy(store: AlertStore, path: Path) -> Path:
    """A new store holding the same threshold versions (a replay needs one without ticks)."""
    with AlertStore.open(path) as new:
        for v in store.threshold_versions():
            new.save_threshold_version(v.content, author=v.author, comment=v.comment, at=v.created_at)
    return path


def counts(r: dict, rule: str) -> Counter:
    """New alerts of ``rule`` by tier in a replay summary."""
    return Counter(f["tier"] for f in r["alerts"]["fired"] if f["rule_id"] == rule and f["kind"] == "firing")


# ----------------------------------------------------------------------------- the shipped profile
def test_golden_week_profile_ships_with_its_source(book):
    from indicators.thresholds import validate_doc
    shipped = B.load_baseline()
    assert validate_doc(book, {}) == []                     # the shipped document is valid for the catalog
    dates = {date.fromisoformat(d) for d in shipped.doc["calendars"]["golden_week"]["dates"]}
    assert {date(2026, 10, d) for d in range(1, 8)} <= dates and date(2026, 10, 8) not in dates
    assert {date(2025, 10, d) for d in range(1, 9)} <= dates            # 2025: with Mid-Autumn, 8 days
    assert "国务院办公厅" in shipped.sources["calendars"]["golden_week"]
    assert "ASSUMPTION" in shipped.sources["profiles"]["holiday"]

    rules = book.rules(None)                                # no saved version: catalog + shipped
    for zone in load_config().groups["core"]:               # the zones of the holiday crowd + rainstorm rule
        rule = rules[LOAD.format(zone)]
        assert rule.active(datetime(2026, 10, 2, 14, 0, tzinfo=LOCAL))[0] == "holiday"
        assert rule.active(datetime(2026, 10, 8, 14, 0, tzinfo=LOCAL))[0] == "default"
        assert rule.tier("orange", datetime(2026, 10, 2, 14, 0, tzinfo=LOCAL)).recover == 60
    assert not rules[EAST].profiles                          # not a core zone

    d = describe(LOAD.format("west_plaza"), book=book)
    (p,) = d["profiles"]
    assert p["name"] == "holiday" and p["source"].startswith("shipped")
    assert p["calendar"]["name"] == "golden_week" and "国务院办公厅" in p["calendar"]["note"]
    assert d["tiers"]["red"] == {"threshold": 100.0, "recover": 100.0,
                                 "source": "catalog (data/catalog/families.toml, family crowd.load_rate)"}


def test_describe_shows_the_operating_schedule_of_a_facility_class(book):
    lamp = describe("facility.anomalies:zone=haixin_bridge,class=lamp@now", book=book)["schedule"]
    assert lamp["class"] == "lamp" and lamp["hours"]["kind"] == "night" and lamp["source"].startswith("catalog")
    assert describe(EAST, book=book)["schedule"] is None


def test_a_saved_version_layers_over_the_shipped_document(book):
    west = LOAD.format("west_plaza")
    saved = {"override": {west: {"tiers": {"red": 95}}}}
    eff = B.effective(saved)
    assert eff["override"][west]["tiers"] == {"red": 95}
    assert eff["override"][west]["profiles"][0]["name"] == "holiday"            # the shipped profile stays
    off = book.rules({"override": {west: {"profiles": []}}})[west]              # … unless switched off
    assert off.profiles == ()
    d = describe(west, saved, version=4, book=book)
    assert d["tiers"]["red"]["source"] == "saved (threshold version 4)"
    assert d["profiles"][0]["source"].startswith("shipped")


# ----------------------------------------------------------------------------- validation
@pytest.mark.parametrize("rid,change,field,words", [
    (EAST, Change(tiers={"yellow": 95}), "tiers.yellow", ["≤ orange (90)", "for direction 'above'", "give a value"]),
    (EAST, Change(tiers={"red": 85}), "tiers.red", ["≥ orange (90)"]),
    ("bus.speed_mean:route=262@15m", Change(tiers={"red": 1000}), "tiers.red", ["≤", "for direction 'below'"]),
    (EAST, Change(recover={"orange": 95}), "tiers.orange.recover", ["≤ the threshold (90)"]),
    (EAST, Change(pending="-5m"), "pending", ["must not be negative", "'5m'"]),
    (EAST, Change(keep_firing=-30), "keep_firing", ["must not be negative"]),
    (EAST, Change(pending="soon"), "pending", ["not a duration", "'90s'"]),
    (EAST, Change(tiers={"purple": 3}), "tiers.purple", ["unknown tier", "blue, yellow, orange, red"]),
    (EAST, Change(tiers={"red": float("nan")}), "tiers.red", ["finite number"]),
    (EAST, Change(direction="sideways"), "direction", ["above, below"]),
    (EAST, Change(profile="night", tiers={"red": 95}), "profiles.night.calendar", ["--calendar NAME"]),
    (EAST, Change(profile="night", calendar="nights", tiers={"red": 95}), "profiles.night.calendar",
     ["unknown calendar 'nights'", "golden_week"]),
    ("crowd.load_rate:zone=nowhere@now", Change(tiers={"red": 95}), "id",
     ["unknown indicator", "did you mean", "--search"]),
])
def test_validation_names_the_field_and_says_what_to_do(book, rid, change, field, words):
    new, problems = validate_change(rid, change, {}, book=book)
    assert new is None
    hit = [p for p in problems if p.field == field]
    assert hit, [str(p) for p in problems]
    for w in words:
        assert w in hit[0].message, hit[0].message


def test_a_valid_change_keeps_the_saved_document_minimal(book):
    new, problems = validate_change(EAST, Change(tiers={"red": 95}, recover={"orange": 85}, pending="2m"), {},
                                    book=book)
    assert problems == []
    assert new == {"override": {EAST: {"for": "2m", "tiers": {"red": 95, "orange": {"threshold": 90.0,
                                                                                    "recover": 85}}}}}
    west = LOAD.format("west_plaza")                          # a shipped profile edited: the list is saved whole
    new, problems = validate_change(west, Change(profile="holiday", tiers={"red": 75}), {}, book=book)
    assert problems == []
    (p,) = new["override"][west]["profiles"]
    assert p["calendar"] == "golden_week" and p["tiers"]["red"] == 75 and p["tiers"]["orange"]["recover"] == 60


# ----------------------------------------------------------------------------- versions
def test_set_saves_a_version_and_a_stale_second_save_is_refused_with_what_changed(book, tmp_path):
    with AlertStore.open(tmp_path / "alerts.sqlite") as st:
        with pytest.raises(Refused) as e:
            set_rule(st, EAST, Change(tiers={"red": 95}), author="li.na", reason="  ", book=book)
        assert e.value.problems[0].field == "reason" and st.threshold_version() is None

        v1 = set_rule(st, EAST, Change(tiers={"red": 95}), author="li.na", reason="before the light show",
                      expected_version=0, at=T0, book=book)
        assert (v1.version, v1.author, v1.comment) == (1, "li.na", "before the light show")
        with pytest.raises(NoChange):
            set_rule(st, EAST, Change(tiers={"red": 95}), author="li.na", reason="again", book=book)

        # wang.qiang opened the rule at v0 too and saves after li.na
        with pytest.raises(StaleVersion) as e:
            set_rule(st, EAST, Change(pending="5m"), author="wang.qiang", reason="slower", expected_version=0,
                     book=book)
        msg = str(e.value)
        assert "saved as v1 since v0" in msg and "li.na" in msg and "before the light show" in msg
        assert f"override[{EAST}].tiers.red = 95" in msg and "--expect-version 1" in msg
        assert [c.path for c in e.value.changes] == [f"override[{EAST}].tiers.red"]
        assert st.threshold_version().version == 1                   # nothing written

        v2 = set_rule(st, EAST, Change(pending="5m"), author="wang.qiang", reason="slower", expected_version=1,
                      book=book)
        assert v2.content["override"][EAST] == {"tiers": {"red": 95}, "for": "5m"}   # both changes kept

        v3 = rollback(st, 0, "li.na", "back to the defaults", book=book)
        assert v3.version == 3 and v3.content == {} and v3.comment == "rollback to v0: back to the defaults"
        assert [v.version for v in st.threshold_versions()] == [1, 2, 3]          # history is never rewritten
        with pytest.raises(Refused):
            rollback(st, 1, "li.na", "", book=book)                                 # a reason is required


def test_the_pipeline_uses_a_saved_version_at_its_next_evaluation(book, tmp_path):
    from twin_assets import inventory as inv

    from indicators.alerts.runtime import ListNotifier
    from indicators.catalog import load_catalog
    from indicators.pipeline import Pipeline
    inventory = inv.load()
    with AlertStore.open(tmp_path / "alerts.sqlite") as st:
        pipe = Pipeline(load_catalog(inventory=inventory), inventory, st, lambda: T0, ListNotifier())
        assert pipe.thresholds_version is None and pipe.rules[EAST].tier("red", T0).threshold == 100
        set_rule(st, EAST, Change(tiers={"red": 95}), author="li.na", reason="tighter", book=book)
        assert pipe.reload_thresholds() == 1                        # what the service calls after an evaluation
        assert pipe.rules[EAST].tier("red", T0).threshold == 95
        assert pipe.runtime.rules[EAST].tier("red", T0).threshold == 95


# ----------------------------------------------------------------------------- end to end, backtest = replay
@pytest.fixture(scope="module")
def replays(rec, book, tmp_path_factory):
    """Replays of the recording with the store's latest version: before, after a
    stricter save, after the rollback."""
    tmp = tmp_path_factory.mktemp("replays")
    out = {}
    with AlertStore.open(tmp / "thresholds.sqlite") as st:
        out["v0"] = replay_alerts(rec, fresh_copy(st, tmp / "r0.sqlite"), progress=False)
        v1 = set_rule(st, EAST, STRICT, author="li.na", reason="stricter", book=book)
        out["v1"] = replay_alerts(rec, fresh_copy(st, tmp / "r1.sqlite"), progress=False)
        v2 = rollback(st, 0, "li.na", "too many alerts", book=book)
        out["v2"] = replay_alerts(rec, fresh_copy(st, tmp / "r2.sqlite"), progress=False)
        out["docs"] = {"v0": {}, "v1": v1.content, "v2": v2.content}
    return out


def test_a_stricter_saved_red_raises_more_red_alerts_and_a_rollback_restores_them(replays):
    r0, r1, r2 = replays["v0"], replays["v1"], replays["v2"]
    assert (r0["thresholds_version"], r1["thresholds_version"], r2["thresholds_version"]) == (None, 1, 2)
    assert counts(r0, EAST) == {"blue": 1} and counts(r1, EAST) == {"red": 1}
    red = [r["alerts"]["threshold"]["new_by_tier"].get("red", 0) for r in (r0, r1, r2)]
    assert red[1] == red[0] + 1 and red[2] == red[0]
    assert r2["alerts"] == r0["alerts"]


def test_backtest_runs_the_engine_once_and_agrees_with_the_replays(rec, replays):
    b = backtest(rec, replays["docs"]["v0"], replays["docs"]["v1"], focus=[EAST])
    assert b["engine_runs"] == 1 and b["kind"] == "recording"
    for side, r in (("current", replays["v0"]), ("proposed", replays["v1"])):
        for group in ("threshold", "compound", "forecast"):
            assert {k: b[side][group][k] for k in ("fired_by_tier", "new_by_tier")} == r["alerts"][group], group
        assert b[side]["per_rule"][EAST]["by_max_tier"] == dict(counts(r, EAST))
        assert b[side]["evaluations"] == r["evaluations"]
    assert b["current"]["per_rule"][EAST] == {"alerts": 1, "fired_by_tier": {"blue": 1}, "by_max_tier": {"blue": 1}}
    assert b["proposed"]["per_rule"][EAST]["by_max_tier"] == {"red": 1}
    assert b["proposed"]["by_max_tier"]["red"] == b["current"]["by_max_tier"]["red"] + 1
    pts = b["series"][EAST]
    assert len(pts) == b["evaluations"] and max(v for _, v in pts if v is not None) > 65


def test_backtest_over_a_tick_history_needs_no_engine_and_agrees_on_threshold_alerts(rec, replays, tmp_path):
    from twin_assets import inventory as inv

    from indicators.catalog import load_catalog
    from indicators.engine import Engine
    from indicators.engine.history import History
    from indicators.engine.replay import recording_span

    class Keep:                      # stores every tick the way the service does
        last_eval = None

        def offer(self, kind, table):
            pass

        def on_tick(self, tick, force=False):
            hist.append(tick)
            self.last_eval = tick.time

    inventory = inv.load()
    catalog = load_catalog(inventory=inventory)
    hist = History(tmp_path / "history", catalog.ids)
    lo, _ = recording_span(rec)
    engine = Engine(catalog, inventory, start=datetime(1970, 1, 1, tzinfo=timezone.utc) + timedelta(milliseconds=lo - 1))
    drive(rec, engine, [Keep()], {"t": None}, lambda i, r: None, Counter())
    hist.flush()

    b = backtest(tmp_path / "history", replays["docs"]["v0"], replays["docs"]["v1"], catalog=catalog,
                 inventory=inventory)
    assert b["kind"] == "history" and b["engine_runs"] == 0
    for side, r in (("current", replays["v0"]), ("proposed", replays["v1"])):
        assert {k: b[side]["threshold"][k] for k in ("fired_by_tier", "new_by_tier")} == r["alerts"]["threshold"]
    one = backtest(tmp_path / "history", replays["docs"]["v0"], replays["docs"]["v1"], catalog=catalog,
                   inventory=inventory, only=[EAST])                    # just the rule: its numbers are the same
    for side in ("current", "proposed"):
        assert one[side]["per_rule"] == {EAST: b[side]["per_rule"][EAST]}
    late = backtest(tmp_path / "history", {}, replays["docs"]["v1"], days=2 / 1440, catalog=catalog,
                    inventory=inventory)                                 # only the last 2 minutes
    assert 100 <= late["ticks"] <= 121 and late["evaluations"] < b["evaluations"]


# ----------------------------------------------------------------------------- CLI and audit
def run(capsys, *args: str) -> tuple[int, object, str]:
    code = thresholds_main(["thresholds", *args])
    out, err = capsys.readouterr()
    return code, (json.loads(out) if out.strip() and "--json" in args else out), err


def test_cli_json_round_trip_and_exit_codes(tmp_path, capsys):
    var = ["--var", str(tmp_path)]
    code, d, _ = run(capsys, "show", EAST, "--json", *var)
    assert code == 0 and d["tiers"]["red"]["threshold"] == 100 and d["version"] is None

    code, d, err = run(capsys, "set", EAST, "--tier", "red=95", "--json", *var)
    assert code == 1 and d["saved"] is False and d["problems"][0]["field"] == "reason" and "--reason" in err
    code, d, _ = run(capsys, "set", EAST, "--tier", "yellow=95", "--reason", "x", "--json", *var)
    assert code == 1 and d["problems"][0]["field"] == "tiers.yellow"
    code, d, _ = run(capsys, "set", "crowd.load_rate:zone=nowhere@now", "--tier", "red=95", "--reason", "x",
                     "--json", *var)
    assert code == 1 and d["problems"][0]["field"] == "id"

    code, d, _ = run(capsys, "set", EAST, "--tier", "red=95", "--pending", "2m", "--reason", "light show",
                     "--by", "li.na", "--expect-version", "0", "--json", *var)
    assert code == 0 and d["saved"] and d["version"] == 1 and d["author"] == "li.na"
    assert d["rule"]["tiers"]["red"] == {"threshold": 95.0, "recover": 95.0, "source": "saved (threshold version 1)"}
    assert d["rule"]["pending"]["seconds"] == 120
    code, d, err = run(capsys, "set", EAST, "--tier", "red=97", "--reason", "mine", "--by", "wang.qiang",
                       "--expect-version", "0", "--json", *var)
    assert code == 1 and d["conflict"]["latest_version"] == 1 and "li.na" in err
    assert d["conflict"]["changes"][0]["path"] == f"override[{EAST}].for"

    code, d, _ = run(capsys, "show", EAST, "--json", *var)
    assert d["version"] == 1 and d["tiers"]["red"]["threshold"] == 95
    code, d, _ = run(capsys, "show", "--family", "crowd.load_rate", "--zone", "riverside_east", "--json", *var)
    assert [r["id"] for r in d] == [EAST] and d[0]["overridden"] and d[0]["tiers"]["red"] == 95
    code, d, _ = run(capsys, "versions", "--json", *var)
    assert [(v["version"], v["author"], v["reason"]) for v in d] == [(1, "li.na", "light show")]
    code, d, _ = run(capsys, "diff", "0", "1", "--json", *var)
    assert {c["path"]: c["new"] for c in d["changes"]} == {f"override[{EAST}].for": "2m",
                                                          f"override[{EAST}].tiers.red": 95.0}
    code, d, _ = run(capsys, "rollback", "0", "--reason", "undo", "--by", "li.na", "--json", *var)
    assert code == 0 and d["version"] == 2 and d["reason"] == "rollback to v0: undo"
    code, d, _ = run(capsys, "show", EAST, "--version", "1", "--json", *var)
    assert d["tiers"]["red"]["threshold"] == 95                     # an old version stays readable
    code, d, _ = run(capsys, "show", EAST, "--json", *var)
    assert d["tiers"]["red"]["threshold"] == 100

    assert run(capsys, "diff", "7", "--json", *var)[0] == 2                      # no such version
    assert run(capsys, "set", EAST, "--tier", "red=96", "--reason", "x", "--expect-version", "9", *var)[0] == 2
    assert run(capsys, "show", "no.such:thing@now", *var)[0] == 2
    with pytest.raises(SystemExit) as e:
        thresholds_main(["thresholds", "set", EAST, "--tier", "red", "--reason", "x", *var])
    assert e.value.code == 2                                                     # usage
    capsys.readouterr()


def test_the_scenic_twin_command_has_thresholds(tmp_path):
    r = subprocess.run([sys.executable, "-m", "dashboard.cli", "thresholds", "versions", "--json", "--var",
                        str(tmp_path)], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert r.returncode == 0 and json.loads(r.stdout) == []


def test_saves_refusals_and_rollbacks_are_audited_with_before_and_after(tmp_path, capsys):
    var = ["--var", str(tmp_path)]
    access = tmp_path / "access.sqlite"
    AccessStore.open(access).close()                               # what `scenic-twin run` creates
    assert run(capsys, "set", EAST, "--tier", "red=95", "--reason", "light show", "--by", "li.na", *var)[0] == 0
    assert run(capsys, "set", EAST, "--tier", "yellow=99", "--reason", "oops", "--by", "li.na", *var)[0] == 1
    assert run(capsys, "rollback", "0", "--reason", "undo", "--by", "wang.qiang", *var)[0] == 0
    with AccessStore.open(access) as st:
        rows = [r for r in st.audit_rows() if r["object_type"] == "thresholds"]
    assert [(r["actor"], r["action"], r["outcome"]) for r in rows] == [
        ("li.na", "thresholds.save", "ok"), ("li.na", "thresholds.save", "refused"),
        ("wang.qiang", "thresholds.rollback", "ok")]
    save, refused, back = rows
    assert save["object_id"] == "v1" and save["client"] == "cli" and save["detail"]["reason"] == "light show"
    assert save["before"] == {"version": 0, "override": {EAST: None}}
    assert save["after"] == {"version": 1, "override": {EAST: {"tiers": {"red": 95.0}}}}
    assert save["detail"]["changes"] == [f"+ override[{EAST}].tiers.red = 95.0"] and save["detail"]["os_user"]
    assert refused["detail"]["refused"][0]["field"] == "tiers.yellow"
    assert back["before"]["override"][EAST] == {"tiers": {"red": 95.0}} and back["after"]["override"][EAST] is None
    assert back["detail"]["rollback_to"] == 0

    # an explicit --access-store is created if missing
    other = tmp_path / "elsewhere" / "access.sqlite"
    assert run(capsys, "set", EAST, "--pending", "3m", "--reason", "r", "--by", "li.na", "--access-store",
               str(other), *var)[0] == 0
    with AccessStore.open(other) as st:
        assert [r["action"] for r in st.audit_rows()] == ["thresholds.save"]
