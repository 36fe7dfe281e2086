"""Usual levels per place and time of day (issue 15): AI-video counts judged against what is usual
for that zone, algorithm, hour and kind of day, learnt from history and saved as threshold
profiles by a supervisor (`scenic-twin thresholds learn`)."""
from __future__ import annotations

import json
from datetime import date, datetime, timedelta, timezone

import numpy as np
import pytest

from indicators.access.store import AccessStore
from indicators.alerts.rationale import default_rationale
from indicators.localtime import LOCAL
from indicators.thresholds import default_book, validate_doc
from indicators.thresholds import norms as N
from indicators.thresholds.cli import main as thresholds_main

LITTER = "video.events:zone=riverside_central,algorithm=exposed_litter@15m"       # a nuisance: minor
CROWD = "video.events:zone=west_plaza,algorithm=crowd_gathering@15m"             # an early sign: minor
FALL = "video.events:zone=riverside_central,algorithm=fall@15m"                   # harm: major at yellow
IDS = [LITTER, CROWD, FALL]
EPOCH = datetime(1970, 1, 1, tzinfo=timezone.utc)


class Tick:
    def __init__(self, t: datetime, values):
        self.time_ms = (t - EPOCH) // timedelta(milliseconds=1)
        self.values = np.asarray(values, dtype=float)
        self.quality = np.zeros(len(values), dtype=np.int8)


def history(days: list[date], busy_rest_evening: float = 6.0, seed: int = 3):
    """Five-minute ticks over ``days``: litter is busy on rest-day evenings (Poisson mean
    ``busy_rest_evening`` 17:00-22:00 on weekends and holidays), quiet otherwise; the crowd and
    fall counts stay near zero."""
    g = np.random.default_rng(seed)
    holidays = {date(2026, 10, 1)}
    for d in days:
        rest = d.weekday() >= 5 or d in holidays
        for m in range(0, 1440, 5):
            t = datetime(d.year, d.month, d.day, tzinfo=LOCAL) + timedelta(minutes=m)
            lam = busy_rest_evening if rest and 17 <= t.hour < 22 else 0.2
            yield Tick(t, [g.poisson(lam), g.poisson(0.1), g.poisson(0.02)])


@pytest.fixture(scope="module")
def book():
    return default_book()


@pytest.fixture(scope="module")
def four_weeks():
    days = [date(2026, 9, 7) + timedelta(days=k) for k in range(28)]      # Mon 7 Sep - Sun 4 Oct
    return N.learn(history(days), IDS, holidays={date(2026, 10, 1)})


def test_a_busy_place_starts_above_its_usual_level_only_where_and_when_it_is_busy(book, four_weeks):
    prop = N.propose(four_weeks, book.rules(None), None, eligible=N.learnable(default_rationale()))
    assert set(prop.changed) == {LITTER}, prop.changed
    ps = prop.changed[LITTER]
    assert {p["kind"] for p in ps} == {"restday"}                         # workdays keep the catalog's tiers
    hours = sorted(p["hours"] for p in ps)
    assert hours[0].startswith("16:00") or hours[0].startswith("17:00")  # pooled ±1 h: the edge hour too
    assert hours[-1].endswith("22:00") or hours[-1].endswith("23:00")
    evening = next(p for p in ps if int(p["hours"][:2]) <= 19 < int(p["hours"][6:8]))
    usual = four_weeks.slot(LITTER, "restday", 19)
    assert usual["mean"] == pytest.approx(6.0, abs=0.6)
    # yellow one above the usual high, the steps between tiers kept
    assert evening["tiers"]["yellow"] == int(np.ceil(usual["high"])) + 1
    assert evening["tiers"]["orange"] - evening["tiers"]["yellow"] == 2 and evening["shift"] > 0
    assert validate_doc(book, prop.doc) == []

    # the rules in force now judge a busy Saturday evening by its own level, a Tuesday's by the catalog
    rules = book.rules(prop.doc)
    sat = datetime(2026, 10, 3, 19, 30, tzinfo=LOCAL)
    tue = datetime(2026, 10, 6, 19, 30, tzinfo=LOCAL)
    holiday_thu = datetime(2026, 10, 1, 19, 30, tzinfo=LOCAL)           # Golden Week: a rest day
    rank = lambda t, v: rules[LITTER].classify(v, 0, t)[0]               # noqa: E731
    assert rank(sat, 9) < 2 and rank(tue, 9) >= 3                         # 9 litter events: usual / orange
    assert rank(holiday_thu, 9) < 2
    assert rank(sat, evening["tiers"]["red"]) == 4                         # far above usual still alerts


def test_a_detection_of_harm_is_never_learnt_away(book):
    """Falls as common as litter: the fall rule keeps its tiers (yellow = major harm)."""
    days = [date(2026, 9, 7) + timedelta(days=k) for k in range(14)]
    g = np.random.default_rng(1)
    ticks = [Tick(datetime(d.year, d.month, d.day, tzinfo=LOCAL) + timedelta(minutes=m), [g.poisson(6.0)] * 3)
             for d in days for m in range(0, 1440, 5)]
    learnt = N.learn(ticks, IDS)
    ok = N.learnable(default_rationale())
    assert ok(LITTER) and ok(CROWD) and not ok(FALL)
    prop = N.propose(learnt, book.rules(None), None, eligible=ok)
    assert set(prop.changed) == {LITTER, CROWD} and prop.excluded == [FALL]
    assert FALL not in (prop.doc.get("override") or {})


def test_too_few_days_keep_the_catalogs_tiers(book):
    days = [date(2026, 9, 12), date(2026, 9, 13), date(2026, 9, 19)]      # three weekend days
    learnt = N.learn(history(days), IDS)
    prop = N.propose(learnt, book.rules(None), None, min_days=5)
    assert prop.changed == {} and LITTER in prop.thin
    assert N.propose(learnt, book.rules(None), None, min_days=3).changed  # enough when the supervisor says so


def test_learning_again_replaces_the_learnt_profiles_and_keeps_a_supervisors_own_first(book, four_weeks):
    own = {"name": "show", "calendar": {"dates": ["2026-10-03"]}, "tiers": {"yellow": 20, "orange": 30, "red": 40}}
    saved = {"override": {LITTER: {"profiles": [own], "for": "2m"}}}
    first = N.propose(four_weeks, book.rules(saved), saved)
    profiles = first.doc["override"][LITTER]["profiles"]
    assert profiles[0] == own and all(p["name"].startswith("usual-restday") for p in profiles[1:])
    assert first.doc["override"][LITTER]["for"] == "2m"
    # a quiet month later: the learnt profiles go, the supervisor's stays
    days = [date(2026, 11, 2) + timedelta(days=k) for k in range(28)]
    quiet = N.learn(history(days, busy_rest_evening=0.2), IDS)
    again = N.propose(quiet, book.rules(first.doc), first.doc)
    assert again.doc["override"][LITTER]["profiles"] == [own] and LITTER in again.kept
    assert validate_doc(book, again.doc) == []


def test_bad_settings_are_refused():
    with pytest.raises(ValueError, match="standard deviations"):
        N.learn([], IDS, z=0)
    from indicators.catalog import load_catalog
    with pytest.raises(KeyError, match="unknown indicator family video.nothing"):
        N.family_ids(load_catalog(), ["video.nothing"])


def test_learn_command_proposes_saves_with_a_reason_and_is_audited(tmp_path, capsys):
    """From a recording of a weekend of crowded evenings: the proposal is printed, refused
    without a reason, saved with one (a version, audited as thresholds.learn)."""
    from indicators.feeds.scenarios import load
    from indicators.feeds.simulator import Faults, simulate, write_recording
    rec = tmp_path / "rec"
    sim = simulate(load()["light-show"], datetime(2026, 11, 21, 0, 0, tzinfo=LOCAL), timedelta(days=2), 2,
                   faults=Faults.off(), kinds=("video",))
    write_recording(rec, sim, manifest={"scenario": "light-show"}, progress=False)
    var = ["--var", str(tmp_path)]
    AccessStore.open(tmp_path / "access.sqlite").close()
    code = thresholds_main(["thresholds", "learn", "--recording", str(rec), "--min-days", "2", "--json", *var])
    out = json.loads(capsys.readouterr().out)
    assert code == 0 and out["saved"] is False and 2 * 288 - 6 <= out["samples"] <= 2 * 288
    assert out["rules_changed"] >= 1 and out["rules_not_learnt"] > 0, out
    assert all(p["kind"] == "restday" for ps in out["changed"].values() for p in ps)      # a weekend
    assert all(not any(a in iid for a in ("fall", "fighting", "smoke")) for iid in out["changed"])
    code = thresholds_main(["thresholds", "learn", "--recording", str(rec), "--min-days", "2", "--save",
                            "--by", "li.na", "--json", *var])
    capsys.readouterr()
    assert code == 1                                                       # no reason
    code = thresholds_main(["thresholds", "learn", "--recording", str(rec), "--min-days", "2", "--save",
                            "--by", "li.na", "--reason", "video baselines from the show weekend", "--json", *var])
    saved = json.loads(capsys.readouterr().out)
    assert code == 0 and saved["saved"] and saved["version"] == 1
    with AccessStore.open(tmp_path / "access.sqlite") as st:
        rows = [r for r in st.audit_rows() if r["object_type"] == "thresholds"]
    assert [(r["actor"], r["action"], r["outcome"]) for r in rows] == [
        ("li.na", "thresholds.learn", "refused"), ("li.na", "thresholds.learn", "ok")]
    assert rows[1]["detail"]["rules_changed"] == out["rules_changed"]
    # the saved version is what `show` reports for a learnt rule
    iid = next(iter(out["changed"]))
    assert thresholds_main(["thresholds", "show", iid, "--json", *var]) == 0
    shown = json.loads(capsys.readouterr().out)
    assert shown["version"] == 1 and any(p["name"].startswith("usual-") for p in shown["profiles"])
