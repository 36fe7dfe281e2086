"""Alarm rationalisation (data/alerts/rationale.toml, indicators/alerts/rationale.py).

* coverage: every indicator family with alert tiers, every compound rule and
  the zone forecast has a judgement; a new family without one fails, named;
* the consequence x time-to-act matrix gives the priorities the file
  documents; blue stays an advisory; an undocumented rule keeps its tier's
  priority;
* a malformed file is refused with every problem and its path;
* log-only tiers (no operator action) are reported;
* the priority distribution over the rules' tiers (printed: ``pytest -s``).
"""
from __future__ import annotations

import copy
import tomllib
from collections import Counter
from pathlib import Path

import pytest

from indicators.alerts import TIERS
from indicators.alerts.rationale import (FALLBACK_PRIORITY, RATIONALE_FILE, RationaleError, distribution,
                                         is_log_only, judgement, load_rationale, missing_entries,
                                         parse_rationale, priority, priority_of, split_rule)

ROOT = Path(__file__).resolve().parents[1]
LOAD = "crowd.load_rate:zone=west_plaza@now"


@pytest.fixture(scope="module")
def rationale():
    return load_rationale()


@pytest.fixture(scope="module")
def defaults():
    from indicators.catalog import load_catalog
    from indicators.pipeline import rule_defaults
    return list(rule_defaults(load_catalog()))


@pytest.fixture(scope="module")
def compound_ids():
    doc = tomllib.loads((ROOT / "data/alerts/compound.toml").read_text(encoding="utf-8"))
    return [(r["id"], r["level"]) for r in doc["rule"]]


def _doc() -> dict:
    return tomllib.loads(RATIONALE_FILE.read_text(encoding="utf-8"))


# ----------------------------------------------------------------------------- coverage
def test_every_family_with_tiers_and_every_compound_rule_has_a_rationale(rationale, defaults, compound_ids):
    families = sorted({d.family for d in defaults if d.tiers})
    assert len(families) == 76
    missing = missing_entries(families, [c for c, _ in compound_ids], rationale)
    assert not missing, f"no rationale in data/alerts/rationale.toml for: {', '.join(missing)}"
    stale = sorted(set(rationale.families) - set(families))
    assert not stale, f"rationale entries for families the catalog does not have: {', '.join(stale)}"
    stale = sorted(set(rationale.compound) - {c for c, _ in compound_ids})
    assert not stale, f"rationale entries for compound rules that do not exist: {', '.join(stale)}"
    assert rationale.forecast is not None


def test_a_new_family_without_a_rationale_is_named(rationale):
    assert missing_entries(["crowd.load_rate", "crowd.queue_minutes"], ["rainstorm_red", "new_rule"], rationale) \
        == ["crowd.queue_minutes", "compound:new_rule"]


def test_every_judgement_of_every_rule_is_whole(rationale, defaults):
    """Each tier of each rule (with its labels) resolves to a cause and a source,
    and, unless log-only, a consequence, an action in both languages and a time
    to act within the bands."""
    seen = 0
    for d in defaults:
        for t in d.tiers:
            j = judgement(d.indicator_id, t, rationale)
            assert j is not None and j.cause and j.source, (d.indicator_id, t)
            if not j.log_only:
                assert j.consequence in rationale.consequences and j.action_zh and j.action_en
                assert j.band is not None and j.time_to_act_min <= rationale.bands[-1][1]
            seen += 1
    assert seen == sum(len(d.tiers) for d in defaults)


# ----------------------------------------------------------------------------- the matrix
@pytest.mark.parametrize("consequence, minutes, expected", [
    ("severe", 5, "urgent"), ("severe", 15, "urgent"), ("severe", 30, "high"),
    ("major", 5, "high"), ("major", 15, "high"), ("major", 30, "low"),
    ("minor", 5, "high"), ("minor", 15, "low"), ("minor", 30, "low"),
    ("major", 5.5, "high"), ("severe", 15.5, "high"), ("minor", 1, "high"),
    ("severe", 31, None),                                   # past the last band: no alarm
])
def test_the_matrix_gives_the_documented_priorities(rationale, consequence, minutes, expected):
    assert priority_of(consequence, minutes, rationale) == expected
    assert [n for n, _ in rationale.bands] == ["immediate", "prompt", "soon"]


def test_priorities_of_rules_follow_their_judgement_and_blue_is_an_advisory(rationale):
    assert [priority(LOAD, t, rationale) for t in TIERS] == [None, "low", "high", "urgent"]
    j = judgement(LOAD, "red", rationale)
    assert (j.consequence, j.time_to_act_min, j.band, j.priority) == ("severe", 5.0, "immediate", "urgent")
    assert j.action_zh and j.action_en and "LB/T 034-2014" in j.source
    blue = judgement(LOAD, "blue", rationale)
    assert blue.advisory and blue.priority is None and not blue.log_only
    # label variants: a fall is not litter
    fall, litter = ("video.events:zone=west_plaza,algorithm=fall@15m",
                    "video.events:zone=west_plaza,algorithm=exposed_litter@15m")
    assert [priority(fall, t, rationale) for t in TIERS[1:]] == ["high", "high", "urgent"]
    assert [priority(litter, t, rationale) for t in TIERS[1:]] == ["low", "low", "low"]
    assert judgement(fall, "red", rationale).entry == 'family."video.events".variant[0].tier.red'
    # compound rules and the zone forecast
    assert priority("compound:core_crowd_level_i", "red", rationale) == "urgent"
    assert priority("compound:core_crowd_level_iii", "yellow", rationale) == "high"
    assert priority("compound:typhoon_blue", "blue", rationale) is None
    assert priority(f"forecast:{LOAD}", "red", rationale) == "high"
    # a bare family name works; a rule nobody documented keeps its tier's priority
    assert priority("crowd.load_rate", "orange", rationale) == "high"
    assert [priority("nosuch.family:zone=x@now", t, rationale) for t in TIERS] == \
        [None] + [FALLBACK_PRIORITY[t] for t in TIERS[1:]]
    assert not is_log_only("nosuch.family:zone=x@now", "yellow", rationale)
    with pytest.raises(ValueError):
        priority(LOAD, "purple", rationale)


def test_rule_ids_split_into_kind_family_and_labels():
    assert split_rule("facility.availability:zone=west_plaza,class=lamp@now") == \
        ("family", "facility.availability", {"zone": "west_plaza", "class": "lamp"})
    assert split_rule("compound:rainstorm_red") == ("compound", "rainstorm_red", {})
    assert split_rule(f"forecast:{LOAD}") == ("forecast", "crowd.load_rate", {"zone": "west_plaza"})
    assert split_rule("crowd.load_rate") == ("family", "crowd.load_rate", {})


# ----------------------------------------------------------------------------- malformed
def test_a_malformed_file_is_refused_with_every_problem_and_its_path():
    doc = _doc()
    bad = copy.deepcopy(doc)
    bad["matrix"]["major"].pop("soon")                                        # a missing cell
    bad["matrix"]["minor"]["prompt"] = "medium"                               # not a priority
    fam = bad["family"]
    fam["crowd.load_rate"]["tier"]["red"]["consequence"] = "catastrophic"     # unknown class
    fam["crowd.load_rate"]["tier"]["purple"] = {"log_only": True}             # unknown tier
    fam["walk.flow"]["time_to_act_min"] = 45                                  # longer than every band
    fam["crowd.count"]["action_en"] = "look"                                  # log-only with an action
    del fam["gate.exits"]["action_en"]                                        # action missing
    fam["bus.vehicles"]["source"] = "because I say so"                        # no standard, no ASSUMPTION
    fam["video.events"]["variant"][0]["labels"] = {}                          # a variant for nothing
    fam["staff.busy"]["colour"] = "grey"                                      # unknown key
    with pytest.raises(RationaleError) as e:
        parse_rationale(bad, file="rationale.toml")
    paths = {p.path: p.message for p in e.value.problems}
    expected = {
        "matrix.major.soon", "matrix.minor.prompt",
        'family."crowd.load_rate".tier.red.consequence', 'family."crowd.load_rate".tier.purple',
        'family."walk.flow".time_to_act_min',
        'family."crowd.count".action_en', 'family."gate.exits".action_en', 'family."bus.vehicles".source',
        'family."video.events".variant[0].labels', 'family."staff.busy".colour',
    }
    assert expected <= set(paths), sorted(set(paths))
    assert "longer than the last band" in paths['family."walk.flow".time_to_act_min']
    assert sum(p.path == 'family."walk.flow".time_to_act_min' for p in e.value.problems) == 1   # once, not per tier
    assert "log-only judgement has no operator action" in paths['family."crowd.count".action_en']
    assert "needed by tiers orange, red, which are not log_only" in paths['family."gate.exits".action_en']
    assert "rationale.toml" in str(e.value) and 'family."bus.vehicles".source' in str(e.value)


def test_a_file_that_is_no_toml_is_refused_with_its_path(tmp_path):
    p = tmp_path / "rationale.toml"
    p.write_text("[family\n", encoding="utf-8")
    with pytest.raises(RationaleError) as e:
        load_rationale(p)
    assert str(p) in str(e.value) and e.value.problems[0].path == "(toml)"


# ----------------------------------------------------------------------------- log only
def test_log_only_tiers_are_reported(rationale, defaults):
    assert is_log_only("crowd.count:zone=west_plaza@now", "red", rationale)           # duplicate of the load rate
    assert is_log_only("crowd.day_load_rate:zone=west_plaza@today", "orange", rationale)
    assert not is_log_only("crowd.day_load_rate:zone=west_plaza@today", "red", rationale)
    assert is_log_only("video.events:zone=west_plaza,algorithm=camera_abnormal@15m", "red", rationale)
    assert is_log_only(f"forecast:{LOAD}", "yellow", rationale)
    assert not is_log_only(LOAD, "yellow", rationale)
    j = judgement("bus.delay_mean:route=262@now", "red", rationale)
    assert j.log_only and j.priority is None and j.action_en is None and j.source
    by_family: dict[str, set[str]] = {}
    for d in defaults:
        for t in d.tiers:
            if t != "blue" and is_log_only(d.indicator_id, t, rationale):
                by_family.setdefault(d.family, set()).add(t)
    print("\nlog-only (family: tiers, blue apart - an advisory anyway):")
    for f, ts in sorted(by_family.items()):
        print(f"  {f}: {', '.join(t for t in TIERS if t in ts)}")
    assert "crowd.load_rate" not in by_family and "case.open" in by_family


# ----------------------------------------------------------------------------- distribution
def test_priority_distribution_over_the_rules_tiers(rationale, defaults, compound_ids):
    rules = [(d.indicator_id, list(d.tiers)) for d in defaults]
    rules += [(f"compound:{c}", [level]) for c, level in compound_ids]
    load_rules = [d for d in defaults if d.family == "crowd.load_rate"]
    rules += [(f"forecast:{d.indicator_id}", list(d.tiers)) for d in load_rules]
    dist = distribution(rules, rationale)
    assert sum(dist.values()) == sum(len(t) for _, t in rules)
    assert "none" not in dist                                       # every rule is documented
    alarms = sum(dist[p] for p in ("urgent", "high", "low"))
    shares = {p: round(dist[p] / alarms, 3) for p in ("urgent", "high", "low")}
    print(f"\npriority distribution over {len(rules)} rules' {sum(dist.values())} tiers: {dist}")
    print(f"  of the {alarms} alarm tiers: " + ", ".join(f"{p} {100 * s:.1f} %" for p, s in shares.items())
          + "  (target of what fires: urgent 5 %, high 15 %, low 80 %)")
    assert dist["urgent"] < dist["high"] < dist["low"]
    assert dist["advisory"] == sum(1 for _, ts in rules for t in ts if t == "blue")
    # by family: each family's tiers, for the record
    per = Counter()
    for rid, ts in rules:
        for t in ts:
            per[(split_rule(rid)[1], priority(rid, t, rationale) or ("log" if is_log_only(rid, t, rationale)
                                                                     else "advisory"))] += 1
    assert per[("crowd.load_rate", "urgent")] == len(load_rules)
