"""Alarm handling by root cause (issue 15): the alerts of one place and one cause are one incident.

A dark lamp circuit turns a zone's lamp availability and its lamp anomaly count red together: one
case, the second alert a note on it, one page.  A crowd surge in a zone raises its load rate,
inflow and crowd-video alerts: listed under one incident, one page, one case; an alert that raises
the incident's tier still pages.  Alerts of another cause or another zone are incidents of their own.
"""
from __future__ import annotations

import tomllib
from datetime import datetime, timedelta, timezone

import pytest

from indicators.alerts.cases import parse_case_config
from indicators.alerts.rules import RuleDefaults, build_rules
from indicators.alerts.runtime import DATA_DIR, AlertRuntime, ListNotifier, load_config
from indicators.alerts.store import AlertStore

T0 = datetime(2026, 4, 15, 11, 0, tzinfo=timezone.utc)        # 19:00 in Guangzhou
TIERS = {"yellow": 80, "orange": 90, "red": 100}


def rule_set():
    d = [
        RuleDefaults("facility.availability:zone=za,class=lamp@now", "below",
                     {"yellow": 95, "orange": 90, "red": 80}, family="facility.availability",
                     labels={"zone": "za", "class": "lamp"}),
        RuleDefaults("facility.anomalies:zone=za,class=lamp@now", "above", {"yellow": 1, "orange": 3, "red": 6},
                     family="facility.anomalies", labels={"zone": "za", "class": "lamp"}),
        RuleDefaults("facility.anomalies:zone=za,class=cover@now", "above", {"yellow": 1, "orange": 2, "red": 3},
                     family="facility.anomalies", labels={"zone": "za", "class": "cover"}),
        RuleDefaults("crowd.load_rate:zone=zb@now", "above", TIERS, family="crowd.load_rate", labels={"zone": "zb"}),
        RuleDefaults("crowd.inflow:zone=zb@5m", "above", {"yellow": 500, "orange": 800, "red": 1200},
                     family="crowd.inflow", labels={"zone": "zb"}),
        RuleDefaults("video.events:zone=zb,algorithm=crowd_gathering@15m", "above",
                     {"yellow": 2, "orange": 4, "red": 8}, family="video.events",
                     labels={"zone": "zb", "algorithm": "crowd_gathering"}),
        RuleDefaults("crowd.load_rate:zone=zc@now", "above", TIERS, family="crowd.load_rate", labels={"zone": "zc"}),
    ]
    return build_rules(d, {"override": {x.indicator_id: {"for": "0s"} for x in d}})


@pytest.fixture
def rt():
    cfg, problems = parse_case_config(tomllib.loads((DATA_DIR / "departments.toml").read_text(encoding="utf-8")))
    assert problems == []
    clock = type("Clock", (), {"t": T0, "__call__": lambda self: self.t})()
    r = AlertRuntime(AlertStore.open(":memory:"), rule_set(), [], {}, clock, ListNotifier(), cases=cfg)
    r.clock_ = clock
    return r


def tick(rt, minute: int, **values):
    rt.clock_.t = T0 + timedelta(minutes=minute)
    quiet = {"facility.availability:zone=za,class=lamp@now": 100.0, "facility.anomalies:zone=za,class=lamp@now": 0.0,
             "facility.anomalies:zone=za,class=cover@now": 0.0, "crowd.load_rate:zone=zb@now": 40.0,
             "crowd.inflow:zone=zb@5m": 100.0, "video.events:zone=zb,algorithm=crowd_gathering@15m": 0.0,
             "crowd.load_rate:zone=zc@now": 40.0}
    vals = {k: (values.get(k, v), "ok") for k, v in quiet.items()}
    return rt.on_tick(rt.clock_.t, vals)


def pages(res) -> list:
    return [m for m in res.messages if m.channel == "alert"]


def test_a_dark_lamp_circuit_opens_one_case(rt):
    res = tick(rt, 0, **{"facility.availability:zone=za,class=lamp@now": 70.0,
                         "facility.anomalies:zone=za,class=lamp@now": 9.0})
    assert sorted(e.kind for e in res.events) == ["firing", "firing"]
    assert len(pages(res)) == 1, [m.text_zh for m in res.messages]
    cases = list(rt.cases.values())
    assert len(cases) == 1, [c.case_id for c in cases]
    steps = [s["step"] for s in rt.store.case_steps(cases[0].case_id)]
    assert "merged" in steps, steps                                      # the second alert noted on it
    # the same zone's manhole covers are another cause: their own incident and case
    res = tick(rt, 1, **{"facility.availability:zone=za,class=lamp@now": 70.0,
                         "facility.anomalies:zone=za,class=lamp@now": 9.0,
                         "facility.anomalies:zone=za,class=cover@now": 5.0})
    assert len(pages(res)) == 1 and len(rt.cases) == 2
    incidents = {a["rule_id"]: a["incident"] for a in rt.active_alerts()}
    assert incidents["facility.anomalies:zone=za,class=lamp@now"] == "za/facility/lamp" \
        == incidents["facility.availability:zone=za,class=lamp@now"]
    assert incidents["facility.anomalies:zone=za,class=cover@now"] == "za/facility/cover"


def test_a_crowd_incident_groups_its_alerts_and_pages_when_it_grows(rt):
    res = tick(rt, 0, **{"crowd.load_rate:zone=zb@now": 92.0})            # orange: the incident
    assert len(pages(res)) == 1 and len(rt.cases) == 1
    res = tick(rt, 1, **{"crowd.load_rate:zone=zb@now": 93.0, "crowd.inflow:zone=zb@5m": 900.0,
                         "video.events:zone=zb,algorithm=crowd_gathering@15m": 3.0})
    assert sorted(e.kind for e in res.events) == ["firing", "firing"]
    assert pages(res) == [] and len(rt.cases) == 1                      # consequences: listed, quiet, one case
    assert {a["incident"] for a in rt.active_alerts()} == {"zb/crowd"}
    res = tick(rt, 2, **{"crowd.load_rate:zone=zb@now": 93.0, "crowd.inflow:zone=zb@5m": 1500.0,
                         "video.events:zone=zb,algorithm=crowd_gathering@15m": 3.0})
    # red inflow: a log-only tier (data/alerts/rationale.toml: the load rate carries the crowd action)
    assert [e.kind for e in res.events] == ["tier_up"] and pages(res) == []
    res = tick(rt, 3, **{"crowd.load_rate:zone=zb@now": 93.0, "crowd.inflow:zone=zb@5m": 1500.0,
                         "video.events:zone=zb,algorithm=crowd_gathering@15m": 9.0})
    assert [e.kind for e in res.events] == ["tier_up"] and len(pages(res)) == 1   # red gathering: news
    # another zone is another incident
    res = tick(rt, 4, **{"crowd.load_rate:zone=zb@now": 93.0, "crowd.inflow:zone=zb@5m": 1500.0,
                         "video.events:zone=zb,algorithm=crowd_gathering@15m": 9.0,
                         "crowd.load_rate:zone=zc@now": 85.0})
    assert len(pages(res)) == 1 and len(rt.cases) == 1                   # yellow opens no case (min orange)


def test_the_console_lists_an_incident_with_its_alerts_under_its_first_one():
    from dashboard.views import by_incident
    from indicators.snapshot import Snapshot
    snap = Snapshot(version=1, now=T0, as_of=T0, incidents={"a": "zb/crowd", "b": "zb/crowd", "c": "zb/crowd",
                                                            "d": "zc/crowd"})
    # in severity order: b (red, 2 min), x (no incident), a (orange, 10 min: the first), d, c
    items = [{"id": i, "minutes": m} for i, m in (("b", 2), ("x", 30), ("a", 10), ("d", 5), ("c", 1))]
    out = [(i["id"], i["members"], i["head"]) for i in by_incident(items, snap)]
    assert out == [("a", 2, None), ("b", 0, "a"), ("c", 0, "a"), ("x", 0, None), ("d", 0, None)]
    # a log-only alert (no operator action) heads no incident that has a call to act
    items[2]["log_only"] = True
    out = [(i["id"], i["members"], i["head"]) for i in by_incident(items, snap)]
    assert out == [("b", 2, None), ("a", 0, "b"), ("c", 0, "b"), ("x", 0, None), ("d", 0, None)]


def test_a_log_only_tier_is_kept_but_pages_escalates_and_dispatches_nobody(rt):
    """Red inflow has no operator action of its own (data/alerts/rationale.toml: the load rate carries
    the crowd action): it is an alert state with its events, for the log and the compound rules, but
    it pages nobody, escalates on no clock and opens no case.  The load rate's red does all three."""
    inflow, load = "crowd.inflow:zone=zb@5m", "crowd.load_rate:zone=zb@now"
    assert rt.log_only(inflow, "red") and not rt.log_only(load, "red")
    kinds, messages = [], []
    for m in range(90):
        res = tick(rt, m, **{inflow: 1500.0})
        kinds += [e.kind for e in res.events]
        messages += res.messages
    st = rt.states[(inflow, "")]
    assert st.status == "firing" and st.tier == "red" and kinds == ["firing"]
    assert messages == [] and rt.cases == {} and st.escalation_level == 0
    assert [e["kind"] for e in rt.store.events(st.alert_id)] == ["firing"]          # in the log
    for m in range(90, 180):
        res = tick(rt, m, **{inflow: 1500.0, load: 105.0})
        messages += res.messages
    assert [x.channel for x in messages].count("alert") == 1 and len(rt.cases) == 1
    # the load rate's own escalation (the case's overdue escalation is the case's, not the alert's)
    assert len([x for x in messages if x.channel == "escalation" and "未确认告警" in x.text_zh]) == 1
    assert rt.states[(inflow, "")].escalation_level == 0


def test_a_log_only_alert_opens_no_emergency_plan():
    """Eleven dark lamps among a zone's hundreds at red (facility.anomalies, log-only for lamps: the
    lamp availability carries the action) open no facility-failure plan; a red count of open manhole
    covers, a call to act, does."""
    cfg = load_config()
    clock = type("Clock", (), {"t": T0, "__call__": lambda self: self.t})()
    r = AlertRuntime(AlertStore.open(":memory:"), rule_set(), cfg.compound, cfg.plans, clock, ListNotifier(),
                     cases=cfg.cases)
    r.clock_ = clock
    lamps, covers = "facility.anomalies:zone=za,class=lamp@now", "facility.anomalies:zone=za,class=cover@now"
    for m in range(5):
        tick(r, m, **{lamps: 11.0})
    assert r.states[(lamps, "")].tier == "red" and r.plans == {}
    for m in range(5, 8):
        tick(r, m, **{lamps: 11.0, covers: 4.0})
    assert list(r.plans) == ["facility_failure"] and r.plans["facility_failure"].level == "II"


def test_alerts_an_active_plan_was_opened_for_page_nobody_while_it_runs():
    """A core zone past 80 % opens the crowd plan (one page, one plan message); while the plan
    runs, a second core zone past 80 % is listed but pages nobody - the plan's steps are the action
    (suppression by state); a zone outside the core area still pages."""
    cfg = load_config()
    core = cfg.groups["core"]
    zones = [core[0], core[1], "streets_west"]
    assert "streets_west" not in core
    d = [RuleDefaults(f"crowd.load_rate:zone={z}@now", "above", TIERS, family="crowd.load_rate", labels={"zone": z})
         for z in zones]
    rules = build_rules(d, {"override": {x.indicator_id: {"for": "0s"} for x in d}})
    clock = type("Clock", (), {"t": T0, "__call__": lambda self: self.t})()
    r = AlertRuntime(AlertStore.open(":memory:"), rules, cfg.compound, cfg.plans, clock, ListNotifier(),
                     cases=cfg.cases)
    ids = [f"crowd.load_rate:zone={z}@now" for z in zones]

    def at(m, *loads):
        clock.t = T0 + timedelta(minutes=m)
        return r.on_tick(clock.t, {i: (v, "ok") for i, v in zip(ids, loads)})

    res = at(0, 85.0, 40.0, 40.0)
    assert [m.channel for m in res.messages].count("alert") >= 1 and "crowd_core" in r.plans
    assert r.handled_by_plan(r.rules[ids[1]]) == "crowd_core" and r.handled_by_plan(r.rules[ids[2]]) is None
    res = at(1, 85.0, 86.0, 40.0)
    assert [e.rule_id for e in res.events if e.kind == "firing"] == [ids[1]]
    assert [m for m in res.messages if m.channel == "alert"] == []
    res = at(2, 85.0, 86.0, 87.0)
    pages = [m for m in res.messages if m.channel == "alert"]
    assert len(pages) == 1 and "87" in pages[0].text_zh


def test_missing_data_of_a_rule_with_nothing_to_act_on_pages_nobody(rt):
    """Inflow is log-only at every tier: its missing data and the data's return are the feed owner's
    matter, not a page; the load rate's missing data still reaches the operator."""
    inflow, load = "crowd.inflow:zone=zb@5m", "crowd.load_rate:zone=zb@now"
    assert rt.never_acts(rt.rules[inflow]) and not rt.never_acts(rt.rules[load])
    rt.set_rules({k: v for k, v in rt.rules.items() if k in (inflow, load)})
    messages = []
    for m in range(20):
        rt.clock_.t = T0 + timedelta(minutes=m)
        quality = "no_data" if 2 <= m < 10 else "ok"
        res = rt.on_tick(rt.clock_.t, {inflow: (None if quality != "ok" else 100.0, quality),
                                       load: (None if quality != "ok" else 40.0, quality)})
        messages += res.messages
    kinds = sorted((e["rule_id"], e["kind"]) for e in rt.store.events())
    assert kinds == sorted([(r, k) for r in (inflow, load) for k in ("no_data", "resolved")])   # in the log
    # the load rate's missing data and its return reach the operator; the inflow's reach nobody
    assert [(m.channel, load in m.text_zh) for m in messages] == [("data_quality", True), ("alert", True)], \
        [(m.channel, m.text_zh) for m in messages]
