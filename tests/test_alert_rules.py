"""Threshold rules: validation reports every error with its path; versions, diff, rollback."""
from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pytest

from indicators.alerts.rules import (Calendar, RuleDefaults, RuleError, build_rules, diff, parse_duration, rollback,
                                     save, validate)
from indicators.alerts.store import AlertStore, VersionConflict

WEST = "crowd.load_rate:zone=west_plaza@1m"
BRIDGE = "crowd.load_rate:zone=haixin_bridge@1m"
HYDRANT = "facility.hydrant_pressure_mpa:asset=fire_hydrant-x-0001@5m"
T0 = datetime(2025, 5, 1, 2, 0, tzinfo=timezone.utc)

DEFAULTS = [
    RuleDefaults(WEST, "above", {"blue": 60, "yellow": 80, "orange": 90, "red": 100}, family="crowd.load_rate",
                 labels={"zone": "west_plaza"}),
    RuleDefaults(BRIDGE, "above", {"blue": 60, "yellow": 80, "orange": 90, "red": 100}, family="crowd.load_rate",
                 labels={"zone": "haixin_bridge"}),
    RuleDefaults(HYDRANT, "below", {"yellow": 0.2, "orange": 0.15, "red": 0.1}, family="facility.hydrant_pressure"),
]


def _paths(problems) -> list[str]:
    return [str(p) for p in problems]


def test_the_message_of_the_brief_word_for_word():
    problems = validate({"override": {WEST: {"tiers": {"orange": 70}}}}, DEFAULTS)
    assert _paths(problems) == [
        f"override[{WEST}].tiers.orange: must be ≥ yellow (80) for direction 'above'"]


def test_every_error_is_reported_with_its_path_not_only_the_first():
    doc = {
        "calendars": {"holiday": {"dates": ["2025-10-01", "2025-13-40"], "weekdays": ["mon", "funday"],
                                  "hours": ["18:00-22:00", "25pm"]},
                      "empty": {}},
        "override": {
            WEST: {"tiers": {"orange": 70, "purple": 3, "red": {"threshold": 110, "recover": 120}},
                   "for": "soon", "nodata": "panic", "escalate_after": {"red": "5m", "violet": "1m"},
                   "fro": "2m",
                   "profiles": [{"name": "holiday", "calendar": "holidy", "tiers": {"yellow": "high"}},
                                {"calendar": {"weekdays": ["sat"]}, "tiers": {"red": 50}}]},
            HYDRANT: {"tiers": {"orange": 0.25}, "error": "explode", "enabled": "yes"},
            "crowd.load_rate:zone=atlantis@1m": {"tiers": {"red": 1}},
        },
        "extra": 1,
    }
    got = _paths(validate(doc, DEFAULTS))
    W, H = f"override[{WEST}]", f"override[{HYDRANT}]"
    expected = [
        "extra: unknown key (known: calendars, override)",
        "calendars.holiday.dates[1]: not an ISO date (YYYY-MM-DD): '2025-13-40'",
        "calendars.holiday.weekdays[1]: unknown weekday 'funday' (one of mon, tue, wed, thu, fri, sat, sun)",
        "calendars.holiday.hours[1]: not an hour range 'HH:MM-HH:MM': '25pm'",
        "calendars.empty: empty calendar: give dates, weekdays or hours",
        "override[crowd.load_rate:zone=atlantis@1m]: unknown indicator (not in the catalog)",
        f"{W}.fro: unknown key (known: direction, tiers, for, keep_firing_for, nodata, error, escalate_after, "
        "profiles, enabled)",
        f"{W}.tiers.purple: unknown tier (one of blue, yellow, orange, red)",
        f"{W}.tiers.orange: must be ≥ yellow (80) for direction 'above'",
        f"{W}.tiers.red.recover: must be ≤ the threshold (110) for direction 'above'",
        f"{W}.for: not a duration (like '90s', '2m', '1h30m'): 'soon'",
        f"{W}.nodata: must be one of nodata, alerting, ok, keep_last, got 'panic'",
        f"{W}.escalate_after.violet: unknown tier (one of blue, yellow, orange, red)",
        f"{W}.profiles[0].calendar: unknown calendar 'holidy'",
        f"{W}.profiles[0].tiers.yellow: must be a finite number, got 'high'",
        f"{W}.profiles[1].name: missing (a profile needs a name, e.g. 'holiday')",
        f"{W}.profiles[1].tiers.red: must be ≥ orange (70) for direction 'above'",
        f"{H}.tiers.orange: must be ≤ yellow (0.2) for direction 'below'",
        f"{H}.error: must be one of error, alerting, ok, keep_last, got 'explode'",
        f"{H}.enabled: must be true or false, got 'yes'",
    ]
    assert sorted(got) == sorted(expected), "\n".join(sorted(set(got) ^ set(expected)))
    with pytest.raises(RuleError) as e:
        build_rules(DEFAULTS, doc)
    assert len(e.value.problems) == len(expected)


def test_a_lowered_lower_tier_is_reported_on_the_overridden_value():
    # only yellow is overridden (to 95, above the default orange 90): the path is yellow's
    got = _paths(validate({"override": {WEST: {"tiers": {"yellow": 95}}}}, DEFAULTS))
    assert got == [f"override[{WEST}].tiers.yellow: must be ≤ orange (90) for direction 'above'"]


def test_broken_catalog_defaults_are_reported_as_defaults():
    bad = [RuleDefaults("x@1m", "above", {"yellow": 90, "orange": 80})]
    assert _paths(validate(None, bad)) == ["defaults[x@1m].tiers.orange: must be ≥ yellow (90) for direction 'above'"]


def test_valid_overrides_build_rules_with_defaults_merged():
    doc = {"calendars": {"holiday": {"dates": ["2025-10-01"]}},
           "override": {WEST: {"tiers": {"yellow": 75, "orange": {"threshold": 90, "recover": 85}}, "for": "2m",
                               "keep_firing_for": "1h30m", "nodata": "keep_last",
                               "profiles": [{"name": "holiday", "calendar": "holiday", "tiers": {"yellow": 70}}]}}}
    assert validate(doc, DEFAULTS) == []
    rules = build_rules(DEFAULTS, doc)
    r = rules[WEST]
    assert [(t.name, t.threshold, t.recover) for t in r.tiers] == [
        ("blue", 60, 60), ("yellow", 75, 75), ("orange", 90, 85), ("red", 100, 100)]
    assert (r.pending_s, r.keep_firing_s, r.nodata, r.error) == (120, 5400, "keep_last", "error")
    assert r.labels == {"zone": "west_plaza"} and r.family == "crowd.load_rate"
    holiday = datetime(2025, 9, 30, 17, 0, tzinfo=timezone.utc)      # 2025-10-01 01:00 in Shanghai
    assert r.active(holiday)[0] == "holiday" and r.tier("yellow", holiday).threshold == 70
    assert r.active(holiday - timedelta(hours=2))[0] == "default"
    assert rules[BRIDGE].pending_s == 60                              # untouched: module default


def test_classify_applies_hysteresis_only_to_held_tiers():
    r = build_rules(DEFAULTS, {"override": {WEST: {"tiers": {"orange": {"threshold": 90, "recover": 85}}}}})[WEST]
    assert r.classify(87, 0, T0)[0] == 2        # not firing: 87 is yellow
    assert r.classify(87, 3, T0)[0] == 3        # firing orange: held above its recovery
    assert r.classify(84, 3, T0)[0] == 2
    hyd = build_rules(DEFAULTS)[HYDRANT]
    assert [hyd.classify(v, 0, T0)[0] for v in (0.3, 0.2, 0.12, 0.05)] == [0, 2, 3, 4]


def test_calendar_wraps_past_midnight_and_uses_shanghai_time():
    c = Calendar(minutes=((22 * 60, 2 * 60),))
    at = lambda h: datetime(2025, 5, 1, h, 30, tzinfo=timezone(timedelta(hours=8)))  # noqa: E731
    assert [c.contains(at(h)) for h in (21, 22, 23, 0, 1, 2)] == [False, True, True, True, True, False]
    # 16:30 UTC is 00:30 the next day in Shanghai
    assert Calendar(weekdays=frozenset({4})).contains(datetime(2025, 5, 1, 16, 30, tzinfo=timezone.utc))


def test_durations():
    assert [parse_duration(x) for x in ("90s", "2m", "1h30m", 45, "0")] == [90, 120, 5400, 45, 0]
    for bad in ("", "2 minutes", -1, True, "m"):
        with pytest.raises(ValueError):
            parse_duration(bad)


# ------------------------------------------------------------------ versions
@pytest.fixture
def store(tmp_path):
    s = AlertStore.open(tmp_path / "alerts.sqlite")
    yield s
    s.close()


def test_versions_diff_and_rollback(store):
    v1 = save(store, DEFAULTS, {"override": {WEST: {"tiers": {"yellow": 75}}}}, author="zhang",
              comment="National Day: earlier warning", now=T0)
    v2 = save(store, DEFAULTS, {"override": {WEST: {"tiers": {"yellow": 70, "orange": 85}, "for": "2m"},
                                             BRIDGE: {"keep_firing_for": "5m"}}},
              author="li", comment="pandemic caps", now=T0 + timedelta(hours=1), expected_version=1)
    assert (v1.version, v2.version) == (1, 2)
    hist = store.threshold_versions()
    assert [(h.version, h.author, h.comment) for h in hist] == [
        (1, "zhang", "National Day: earlier warning"), (2, "li", "pandemic caps")]
    assert hist[1].created_at == T0 + timedelta(hours=1)
    changes = [str(c) for c in diff(hist[0].content, hist[1].content)]
    assert changes == [
        f"+ override[{BRIDGE}] = {{'keep_firing_for': '5m'}}",
        f"+ override[{WEST}].for = '2m'",
        f"+ override[{WEST}].tiers.orange = 85",
        f"~ override[{WEST}].tiers.yellow: 75 -> 70",
    ]
    v3 = rollback(store, DEFAULTS, 1, author="zhang", now=T0 + timedelta(hours=2), comment="caps lifted")
    assert v3.version == 3 and v3.content == hist[0].content
    assert store.threshold_version().comment == "rollback to v1: caps lifted"
    assert diff(store.threshold_version(3).content, store.threshold_version(1).content) == []
    assert len(store.threshold_versions()) == 3           # history is never rewritten
    audit = [a for a in store.audit() if a["action"] == "save_thresholds"]
    assert [a["actor"] for a in audit] == ["user:zhang", "user:li", "user:zhang"]


def test_an_invalid_document_is_refused_and_nothing_is_stored(store):
    with pytest.raises(RuleError) as e:
        save(store, DEFAULTS, {"override": {WEST: {"tiers": {"orange": 70}, "for": "x"}}}, author="zhang",
             comment="typo", now=T0)
    assert len(e.value.problems) == 2
    assert store.threshold_versions() == []


def test_a_stale_editor_cannot_overwrite_a_newer_version(store):
    save(store, DEFAULTS, {"override": {}}, author="a", comment="", now=T0)
    save(store, DEFAULTS, {"override": {WEST: {"for": "3m"}}}, author="b", comment="", now=T0, expected_version=1)
    with pytest.raises(VersionConflict):
        save(store, DEFAULTS, {"override": {WEST: {"for": "1m"}}}, author="c", comment="", now=T0,
             expected_version=1)
    assert [v.author for v in store.threshold_versions()] == ["a", "b"]


def test_rollback_is_validated_against_todays_catalog(store):
    save(store, DEFAULTS, {"override": {WEST: {"tiers": {"yellow": 85}}}}, author="a", comment="", now=T0)
    # the catalog later raised orange's default below 85: the old document is no longer valid
    newer = [RuleDefaults(WEST, "above", {"yellow": 70, "orange": 80})] + DEFAULTS[1:]
    with pytest.raises(RuleError) as e:
        rollback(store, newer, 1, author="a", now=T0)
    assert str(e.value.problems[0]) == f"override[{WEST}].tiers.yellow: must be ≤ orange (80) for direction 'above'"


def test_a_blue_alert_advises_without_paging_and_a_raise_to_yellow_pages():
    """Blue (IV级) is an advisory (indicators.alerts.ADVISORY_TIERS): listed and logged, no message;
    the same episode raised to yellow pages, and its end is then announced."""
    from datetime import timedelta

    from indicators.alerts.runtime import AlertRuntime, ListNotifier
    from indicators.alerts.store import AlertStore
    from test_alert_store_crash import T0, TickClock, world

    rules, compound, plans, cfg = world()
    clock = TickClock()
    store = AlertStore.open(":memory:")
    rt = AlertRuntime(store, rules, compound, plans, clock, ListNotifier(), cases=cfg)
    z0 = "crowd.load_rate:zone=z0@1m"

    def tick(k: int, load: float):
        clock.t = T0 + timedelta(minutes=k)
        quiet = {r.indicator_id: (10.0, "ok") for r in rules.values()}       # the other zones: normal
        return rt.on_tick(clock.t, {**quiet, z0: (load, "ok")})

    res = tick(0, 65.0)                                   # blue: fires, pages nobody
    assert [e.kind for e in res.events] == ["firing"] and res.messages == []
    (st,) = [s for s in rt.states.values() if s.rule_id == z0]
    assert (st.status, st.tier) == ("firing", "blue")
    res = tick(1, 40.0)                                   # ends: nobody was paged, nobody is told
    assert "resolved" in [e.kind for e in res.events] and res.messages == []
    res = tick(2, 65.0)                                   # back within minutes: the same alert, quiet
    assert [e.kind for e in res.events] == ["refiring"] and res.messages == []
    res = tick(3, 85.0)                                   # blue -> yellow in one episode: that pages
    assert [e.kind for e in res.events] == ["tier_up"] and len(res.messages) == 1
    res = tick(4, 40.0)                                   # it came back once: held 10 min before it ends
    assert [e.kind for e in res.events] == ["recovering"] and res.messages == []
    res = tick(15, 40.0)
    assert "resolved" in [e.kind for e in res.events] and len(res.messages) == 1


def test_full_bins_and_blind_cameras_are_no_facility_failure_but_a_dark_lamp_circuit_opens_the_plan():
    """The facility-failure plan is for safety equipment (data/alerts/compound.toml group `failing`):
    riverside bins filling up on an ordinary evening opened it before."""
    from datetime import datetime, timezone

    from indicators.alerts.rules import RuleDefaults, build_rules
    from indicators.alerts.runtime import AlertRuntime, ListNotifier, load_config
    from indicators.alerts.store import AlertStore

    zones = ["riverside_central", "riverside_east"]
    cfg = load_config(zones=zones + ["west_plaza", "tower_base", "canton_tower_interior", "waterfront_steps",
                                     "pier_plaza", "haixin_bridge"])
    defaults = [RuleDefaults(f"facility.availability:zone={z},class={c}@now", "below",
                             {"yellow": 95.0, "orange": 90.0, "red": 80.0}, family="facility.availability",
                             labels={"zone": z, "class": c}) for z in zones
                for c in ("bin", "toilet", "lamp", "camera")]
    rules = build_rules(defaults, {"override": {d.indicator_id: {"for": "0s"} for d in defaults}})
    t0 = datetime(2026, 4, 15, 11, 0, tzinfo=timezone.utc)
    clock = [t0]
    rt = AlertRuntime(AlertStore.open(":memory:"), rules, cfg.compound, cfg.plans, lambda: clock[0],
                      ListNotifier(), cases=cfg.cases)

    def tick(minute: int, **bad: float):
        clock[0] = t0 + timedelta(minutes=minute)
        vals = {r: (100.0, "ok") for r in rules}
        vals.update({f"facility.availability:zone=riverside_central,class={c}@now": (v, "ok") for c, v in bad.items()})
        return rt.on_tick(clock[0], vals)

    for k in range(5):                       # bins and toilets red, half the cameras blind, five minutes
        tick(k, bin=60.0, toilet=50.0, camera=50.0)
    assert rt.plans == {} or all(p.plan_id != "facility_failure" for p in rt.plans.values())
    for k in range(5, 10):                               # a lamp circuit goes dark
        tick(k, bin=60.0, toilet=50.0, lamp=40.0)
    assert any(p.plan_id == "facility_failure" for p in rt.plans.values())


def test_silence_of_an_event_driven_feed_is_no_alert_state_unless_a_supervisor_says_so():
    """Before any warning is received the warning signal levels have no value, and so do today's
    on-time ratios of a category nothing of which has closed yet: the console must not list those
    as "no data" states with action buttons.  A periodic feed's silence still is one."""
    from indicators.alerts.state import Evaluation, transition
    from indicators.catalog import load_catalog
    from indicators.pipeline import rule_defaults
    defaults = list(rule_defaults(load_catalog()))
    rules = build_rules(defaults)
    by_family: dict[str, set[str]] = {}
    for d in defaults:
        by_family.setdefault(d.family, set()).add(rules[d.indicator_id].nodata)
    assert by_family["warning.level"] == {"ok"}
    assert by_family["case.close_rate"] == {"ok"}
    assert by_family["crowd.load_rate"] == {"nodata"} and by_family["crowd.count"] == {"nodata"}
    now = datetime(2026, 10, 1, 20, 0, tzinfo=timezone.utc)
    quiet = Evaluation(now, None, "no_data")
    warn = next(d.indicator_id for d in defaults if d.family == "warning.level")
    crowd = next(d.indicator_id for d in defaults if d.family == "crowd.load_rate")
    assert transition(None, quiet, rules[warn], now).state.status == "normal"
    assert transition(None, quiet, rules[crowd], now).state.status == "no_data"
    # the supervisors' document still decides
    kept = build_rules(defaults, {"override": {warn: {"nodata": "nodata"}}})
    assert transition(None, quiet, kept[warn], now).state.status == "no_data"
