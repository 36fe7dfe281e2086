"""Cases (立案→派遣→处置→核查→结案), joint enforcement, AI-video cases, and the
compound rules that open emergency plans - through the runtime, with a fake
clock, the real data files and the real inventory."""
from __future__ import annotations

from datetime import datetime, timedelta, timezone

import numpy as np
import pyarrow as pa
import pytest

from indicators.alerts import cases as C
from indicators.alerts import plans as P
from indicators.alerts.routing import places_from_inventory
from indicators.alerts.rules import RuleDefaults, build_rules
from indicators.alerts.runtime import AlertRuntime, ListNotifier, load_config
from indicators.alerts.store import AlertStore
from indicators.feeds.schemas import SCHEMAS

T0 = datetime(2025, 10, 1, 11, 0, tzinfo=timezone.utc)       # 19:00 in Guangzhou, National Day
MIN = timedelta(minutes=1)


class FakeClock:
    def __init__(self, t: datetime):
        self.t = t

    def __call__(self) -> datetime:
        return self.t

    def advance(self, minutes: float) -> datetime:
        self.t += timedelta(minutes=minutes)
        return self.t


@pytest.fixture(scope="module")
def places(inventory, frame):
    return places_from_inventory(inventory, frame)


@pytest.fixture(scope="module")
def config(places):
    return load_config(zones=list(places.zones))


def crowd_rules(places):
    defaults = [RuleDefaults(f"crowd.load_rate:zone={z}@1m", "above", {"yellow": 80, "orange": 90, "red": 100},
                             family="crowd.load_rate", labels={"zone": z}, name_zh=f"{places.zones[z].name_zh}负荷率",
                             name_en=f"{places.zones[z].name_en} load rate", unit="%") for z in places.zones]
    return build_rules(defaults, {"override": {d.indicator_id: {"for": "0s"} for d in defaults}})


def crowd_values(places, **load):
    return {f"crowd.load_rate:zone={z}@1m": (float(load.get(z, 40.0)), "ok") for z in places.zones}


@pytest.fixture
def make(tmp_path, places, config):
    made = []

    def _make(rules=None):
        clock = FakeClock(T0)
        notifier = ListNotifier()
        store = AlertStore.open(tmp_path / f"alerts{len(made)}.sqlite")
        rt = AlertRuntime(store, rules or {}, config.compound, config.plans, clock, notifier, cases=config.cases,
                          places=places)
        made.append(store)
        return rt, clock, notifier, store

    yield _make
    for s in made:
        s.close()


def staff_table(places, at, *people):
    rows = []
    for sid, (x, y), status in people:
        lon, lat = places.to_lonlat(x, y)
        rows.append({"event_id": f"staff-{sid}-{at.timestamp()}", "event_time": at, "source": "test",
                     "staff_id": sid, "lon": lon, "lat": lat, "status": status})
    return pa.Table.from_pylist(rows, schema=SCHEMAS["staff"])


def video_table(places, at, *events):
    rows = []
    for eid, cam, algo in events:
        x, y = places.cameras[cam]
        lon, lat = places.to_lonlat(x, y)
        rows.append({"event_id": eid, "event_time": at, "source": "test", "camera_id": cam, "algorithm": algo,
                     "confidence": 0.9, "zone_id": None, "object_count": 1, "lon": lon, "lat": lat})
    return pa.Table.from_pylist(rows, schema=SCHEMAS["video"])


def on_yuejiang_east(places):
    yj = next(ln for ln in places.lines if ln.id == "road-road_yuejiang_west-0001")
    return tuple(np.mean(np.array(yj.xy[1:3]), axis=0))


# ====================================================================== data
def test_the_data_files_load_and_hold_what_the_brief_names(config):
    plans = config.plans
    assert {"crowd_core", "rainstorm", "typhoon", "facility_failure", "rainstorm_crowd",
            "bridge_storm_crowd"} <= set(plans)
    core = plans["crowd_core"]
    assert list(core.levels) == ["III", "II", "I"]
    assert core.levels["III"].message_zh == "广州塔景区核心区域人流已突破三级阀值，请启动三级预警预案"
    for p in plans.values():
        for lv in p.levels.values():
            assert lv.notice_zh and lv.notice_en and lv.steps
            assert all(s.department in config.cases.departments and s.deadline_s > 0 for s in lv.steps)
    ids = {r.id for r in config.compound}
    assert {"holiday_crowd_rainstorm", "haixin_bridge_storm_crowd", "core_crowd_level_iii"} <= ids
    deps = config.cases.departments
    assert all(deps[d].name_zh and deps[d].name_en for d in deps)
    assert {"haizhu_city_management", "public_security", "traffic_police", "market_regulation"} <= set(deps)


def test_data_problems_are_reported_with_their_paths(config):
    doc = {"plan": [{"id": "x", "name_zh": "x", "name_en": "x",
                     "level": [{"level": "V", "step": []},
                               {"level": "II", "name_zh": "a", "name_en": "a", "message_zh": "m", "message_en": "m",
                                "notice_zh": "n", "notice_en": "n",
                                "step": [{"id": "s", "text_zh": "t", "text_en": "t", "department": "nobody",
                                          "deadline": "soon"}]}]}]}
    _, problems = P.parse_plans(doc, list(config.cases.departments))
    assert [str(p) for p in problems] == [
        "plans.toml: plan[0].level[0].level: must be one of IV, III, II, I, got 'V'",
        "plans.toml: plan[0].level[1].step[0].department: unknown department 'nobody'",
        "plans.toml: plan[0].level[1].step[0].deadline: not a duration (like '90s', '2m', '1h30m'): 'soon'"]


# ====================================================================== the loop
def test_the_full_loop_records_who_when_and_notes(make, places):
    rt, clock, notifier, store = make()
    xy = on_yuejiang_east(places)
    rt.on_tick(T0, {}, {"staff": staff_table(places, T0, ("p-near", (xy[0] - 120, xy[1] + 5), "available"),
                                            ("p-far", (xy[0] - 600, xy[1]), "available"),
                                            ("p-busy", (xy[0] + 3, xy[1]), "busy"))})
    case = rt.report(request_id="phone-0001", category="litter", by="patrol-3", xy=xy,
                     description="bags of rubbish by the kerb")
    assert (case.status, case.case_id, case.place_zh) == ("open", "manual:phone-0001", "广州塔东侧阅江西路")
    assert case.suggested[0]["staff_id"] == "p-near" and "p-busy" not in [s["staff_id"] for s in case.suggested]
    clock.advance(2)
    case = rt.dispatch_case(case.case_id, by="operator-li")
    assert (case.status, case.assignee) == ("dispatched", "p-near")
    msg = [m for m in notifier.sent if m.channel == "case"][-1]
    assert msg.text_zh == "广州塔东侧阅江西路有垃圾落地，请前往处理"
    assert msg.text_en == "Litter on the ground at Yuejiang West Road, east of Canton Tower; please go and handle it."
    assert set(msg.recipients) == {"sanitation", "staff:p-near"}
    clock.advance(3)
    rt.accept_case(case.case_id, by="p-near", note="on my way")
    clock.advance(10)
    with pytest.raises(C.CaseError):
        rt.handle_case(case.case_id, by="p-near", note="")                  # what was done?
    rt.handle_case(case.case_id, by="p-near", note="swept, 2 bags to the bin")
    with pytest.raises(C.CaseError):
        rt.close_case(case.case_id, by="operator-li", note="done")          # not verified yet
    clock.advance(5)
    rt.verify_case(case.case_id, by="inspector-zhao", passed=True, note="photo checked, clean")
    with pytest.raises(C.CaseError):
        rt.close_case(case.case_id, by="operator-li", note="   ")           # a note is required
    clock.advance(1)
    closed = rt.close_case(case.case_id, by="operator-li", note="closed: handled within deadline")
    assert (closed.status, closed.closed_by, closed.close_note) == ("closed", "user:operator-li",
                                                                    "closed: handled within deadline")
    steps = store.case_steps(case.case_id)
    assert [(s["step"], s["actor"]) for s in steps] == [
        ("open", "user:patrol-3"), ("dispatch", "user:operator-li"), ("accept", "user:p-near"),
        ("handle", "user:p-near"), ("verify", "user:inspector-zhao"), ("close", "user:operator-li")]
    assert [s["at"] for s in steps] == ["2025-10-01T11:00:00.000Z", "2025-10-01T11:02:00.000Z",
                                        "2025-10-01T11:05:00.000Z", "2025-10-01T11:15:00.000Z",
                                        "2025-10-01T11:20:00.000Z", "2025-10-01T11:21:00.000Z"]
    assert steps[3]["note"] == "swept, 2 bags to the bin"
    assert [s["status"] for s in steps] == ["open", "dispatched", "handling", "verifying", "verified", "closed"]
    assert store.case(case.case_id).status == "closed" and case.case_id not in rt.cases
    assert len([a for a in store.audit() if a["object_type"] == "case"]) == 6


def test_a_failed_verification_sends_the_case_back(make, places):
    rt, clock, _, store = make()
    c = rt.report(request_id="r2", category="bike_misparking", by="p1", xy=on_yuejiang_east(places))
    rt.dispatch_case(c.case_id, by="op", to_staff="p1")
    rt.handle_case(c.case_id, by="p1", note="moved the bikes")
    with pytest.raises(C.CaseError):
        rt.verify_case(c.case_id, by="insp", passed=False, note="")
    back = rt.verify_case(c.case_id, by="insp", passed=False, note="three bikes still on the kerb")
    assert back.status == "dispatched"
    assert [s["step"] for s in store.case_steps(c.case_id)][-1] == "rework"


def test_a_missed_deadline_escalates_once_to_the_named_role(make, places, config):
    rt, clock, notifier, store = make()
    c = rt.report(request_id="r3", category="litter", by="p1", xy=on_yuejiang_east(places))
    due = config.cases.deadline_s("litter", "normal", "dispatch")
    assert due == 600                                                  # data: normal priority, 10 min
    levels = []
    for minutes in (9, 10, 15, 20, 30, 40, 60):
        clock.t = T0 + timedelta(minutes=minutes)
        rt.on_tick(clock.t, {})
        levels.append(rt.cases[c.case_id].escalation_level)
    assert levels == [0, 1, 1, 1, 1, 1, 1]                            # once, not every period
    esc = [m for m in notifier.sent if m.channel == "escalation"]
    assert len(esc) == 1 and {"scenic_operations", "role:supervisor"} <= set(esc[0].recipients)
    assert esc[0].text_zh.startswith("【超时升级至值班主管】案件manual:r3派遣超时")
    rt.dispatch_case(c.case_id, by="op")                               # the next step has its own clock
    d = rt.cases[c.case_id]
    assert d.escalation_level == 0 and d.due_step == "handle"
    assert (d.due_at - clock.t).total_seconds() == config.cases.deadline_s("litter", "normal", "handle") == 1800


def test_joint_enforcement_is_dispatched_to_several_departments(make, places):
    rt, clock, notifier, store = make()
    c = rt.report(request_id="r4", category="street_vendor", by="p2", xy=on_yuejiang_east(places),
                  description="three hawker carts")
    assert c.joint and c.priority == "high"
    rt.dispatch_case(c.case_id, by="op-chen", note="")
    got = {m.recipients[0] for m in notifier.sent if m.channel == "case"}
    assert got == {"haizhu_city_management", "market_regulation", "public_security"}
    steps = [s for s in store.case_steps(c.case_id) if s["step"] == "dispatch"]
    assert sorted(s["department"] for s in steps) == sorted(got)
    assert all(s["details"]["joint"] for s in steps)
    assert all(m.text_zh == "广州塔东侧阅江西路有流动摊贩占道经营，请前往处理" for m in notifier.sent
               if m.channel == "case")


def test_an_ai_video_event_becomes_a_case_for_the_nearest_available_patrol(make, places):
    rt, clock, notifier, store = make()
    cam = next(c for c, xy in places.cameras.items() if places.place(*xy)[0] == "广州塔东侧阅江西路")
    cx, cy = places.cameras[cam]
    rt.on_tick(T0, {}, {"staff": staff_table(places, T0, ("near", (cx + 80, cy), "available"),
                                            ("nearer-but-busy", (cx + 5, cy), "busy"),
                                            ("far", (cx + 700, cy), "available"))})
    t1 = T0 + MIN
    res = rt.on_tick(t1, {}, {"video": video_table(places, t1, ("v-1", cam, "exposed_litter"),
                                                   ("v-2", cam, "running"))})
    (case,) = [c for c in rt.cases.values() if c.source == "video"]
    assert (case.case_id, case.category, case.status, case.assignee) == ("video:v-1", "litter", "dispatched", "near")
    msgs = [m for m in res.messages if m.channel == "case"]
    assert [m.text_zh for m in msgs] == ["广州塔东侧阅江西路有垃圾落地，请前往处理"]
    assert msgs[0].recipients == ("sanitation", "staff:near")
    # the same litter seen again 3 minutes later joins the open case
    t2 = T0 + 4 * MIN
    rt.on_tick(t2, {}, {"video": video_table(places, t2, ("v-3", cam, "exposed_litter"))})
    assert len([c for c in rt.cases.values() if c.source == "video"]) == 1
    assert store.case_steps("video:v-1")[-1]["step"] == "merged"


def case_table(at, *rows):
    return pa.Table.from_pylist([{"event_id": f"c-{cid}-{status}-{at.timestamp()}", "event_time": at, "source": "test",
                                  "case_id": cid, "category": "litter", "status": status, "zone_id": None,
                                  "lon": None, "lat": None, "description": "垃圾", "departments": None}
                                 for cid, status in rows], schema=SCHEMAS["case"])


def test_the_case_feed_moves_its_cases_forward_and_a_late_record_changes_nothing(make, places):
    rt, _, _, store = make()
    rt.on_tick(T0, {}, {"case": case_table(T0, ("k1", "open"), ("k2", "open"))})
    assert {c.case_id: c.status for c in rt.cases.values()} == {"feed:k1": "open", "feed:k2": "open"}
    t1 = T0 + MIN
    rt.on_tick(t1, {}, {"case": case_table(t1, ("k1", "handling"), ("k2", "closed"))})
    assert rt.cases["feed:k1"].status == "handling"
    assert store.case("feed:k2").status == "closed"
    steps = [(s["step"], s["actor"]) for s in store.case_steps("feed:k2")]
    assert [st for st, _ in steps] == ["open", "dispatch", "accept", "handle", "verify", "close"]
    assert all(a == "feed:case" for _, a in steps[1:])
    # a late "dispatched" for k1, and a repeated "closed" for k2, change nothing
    t2 = T0 + 2 * MIN
    rt.on_tick(t2, {}, {"case": case_table(T0, ("k1", "dispatched"), ("k2", "closed"))})
    assert rt.cases["feed:k1"].status == "handling"
    assert len(store.case_steps("feed:k2")) == len(steps) and len(store.cases()) == 2


def test_a_manual_report_sent_twice_is_one_case(make, places):
    rt, _, _, store = make()
    a = rt.report(request_id="same", category="medical", by="p1", xy=on_yuejiang_east(places))
    b = rt.report(request_id="same", category="medical", by="p1", xy=on_yuejiang_east(places))
    assert a.case_id == b.case_id and len(store.cases()) == 1 and len(store.case_steps()) == 1
    assert a.priority == "urgent"


def test_a_phone_says_accepted_then_arrived_with_where_and_then_handled_with_its_photo(make, places):
    rt, clock, _, store = make()
    xy = on_yuejiang_east(places)
    case = rt.report(request_id="phone-0002", category="litter", by="patrol-07", xy=xy, photos=("a" * 64,))
    assert [s["step"] for s in store.case_steps(case.case_id)] == ["open", "photo"]
    rt.dispatch_case(case.case_id, by="operator-li", to_staff="patrol-07")
    with pytest.raises(C.CaseError, match="accept it before arriving"):
        rt.arrive_case(case.case_id, by="patrol-07")
    clock.advance(1)
    rt.accept_case(case.case_id, by="patrol-07")
    clock.advance(4)
    c = rt.arrive_case(case.case_id, by="patrol-07", xy=(xy[0] + 3, xy[1]))
    assert c.status == "handling" and c.arrived_at == clock.t
    with pytest.raises(C.CaseError, match="already recorded"):
        rt.arrive_case(case.case_id, by="patrol-07")
    clock.advance(6)
    c = rt.handle_case(case.case_id, by="patrol-07", note="swept", photos=("b" * 64,))
    steps = store.case_steps(case.case_id)
    assert [(s["step"], s["actor"]) for s in steps][3:] == [
        ("accept", "user:patrol-07"), ("arrive", "user:patrol-07"), ("handle", "user:patrol-07"),
        ("photo", "user:patrol-07")]
    assert steps[4]["at"] == "2025-10-01T11:05:00.000Z" and steps[4]["details"]["x"] == round(xy[0] + 3, 1)
    assert steps[-1]["details"]["sha256"] == "b" * 64 and steps[1]["details"]["sha256"] == "a" * 64
    assert store.case(case.case_id).arrived_at == T0 + timedelta(minutes=5)     # survives the store


# ====================================================================== compound rules and plans
def test_core_crowd_opens_and_raises_the_three_level_crowd_plan(make, places):
    rt, clock, notifier, store = make(crowd_rules(places))
    rt.on_tick(T0, crowd_values(places))
    assert rt.plans == {}
    r1 = rt.on_tick(T0 + MIN, crowd_values(places, west_plaza=85))
    inst = rt.plans["crowd_core"]
    assert inst.level == "III" and inst.trigger["compound"] == "core_crowd_level_iii"
    plan_msgs = [m for m in r1.messages if m.channel == "plan"]
    assert [m.text_zh for m in plan_msgs] == ["广州塔景区核心区域人流已突破三级阀值，请启动三级预警预案"]
    assert {"scenic_operations", "scenic_security", "guangzhou_metro"} <= set(plan_msgs[0].recipients)
    assert [m.channel for m in r1.messages].count("public_notice") == 1
    # orange: the plan goes to level II, its steps are added; the alert becomes a crowd-safety case
    clock.t = T0 + 2 * MIN
    rt.on_tick(clock.t, crowd_values(places, west_plaza=93))
    inst = rt.plans["crowd_core"]
    assert inst.level == "II"
    assert {s.step_id for s in inst.steps} >= {"broadcast_busy", "entry_control", "police_standby"}
    alert_case = next(c for c in rt.cases.values() if c.source == "alert")
    assert alert_case.category == "crowd_safety" and alert_case.place_zh.endswith("西广场")
    assert alert_case.description.startswith("西广场负荷率达到橙色（II级）阈值")
    # steps done, closure needs a note
    clock.advance(3)
    rt.complete_plan_step(inst.instance_id, "broadcast_busy", by="ops-wang", note="broadcast on all 37 speakers")
    with pytest.raises(P.PlanError):
        rt.complete_plan_step(inst.instance_id, "broadcast_busy", by="ops-wang")
    with pytest.raises(P.PlanError):
        rt.close_plan(inst.instance_id, by="duty-manager", note="")
    clock.advance(30)
    closed = rt.close_plan(inst.instance_id, by="duty-manager", note="crowd back under 70 %")
    assert closed.status == "closed" and "crowd_core" not in rt.plans
    evs = store.plan_events(inst.instance_id)
    assert [(e["kind"], e["actor"]) for e in evs] == [
        ("activated", "system"), ("level_raised", "system"), ("step_done", "user:ops-wang"),
        ("closed", "user:duty-manager")]
    assert evs[2]["note"] == "broadcast on all 37 speakers" and evs[2]["at"] == "2025-10-01T11:05:00.000Z"
    assert "entry_control" in evs[3]["details"]["open_steps"]
    step = next(s for s in store.plan_steps(inst.instance_id) if s["step_id"] == "broadcast_busy")
    assert (step["done_by"], step["note"]) == ("user:ops-wang", "broadcast on all 37 speakers")
    assert store.plans()[0].status == "closed"


def _warning(at, signal, colour, status="issued"):
    return pa.Table.from_pylist([{"event_id": f"w-{signal}-{colour}-{at.timestamp()}", "event_time": at,
                                  "source": "test", "signal": signal, "colour": colour, "status": status,
                                  "area": "海珠区", "headline": f"{signal} {colour}", "expires": None}],
                                schema=SCHEMAS["warning"])


def test_holiday_crowd_with_a_rainstorm_opens_the_joint_plan(make, places):
    rt, clock, notifier, store = make(crowd_rules(places))
    rt.on_tick(T0, crowd_values(places), {"warning": _warning(T0, "rainstorm", "orange")})
    assert set(rt.plans) == {"rainstorm"}                        # rain alone: the rainstorm plan only
    assert rt.plans["rainstorm"].level == "II"
    t = T0 + MIN
    rt.on_tick(t, crowd_values(places, tower_base=95))
    assert rt.plans["rainstorm_crowd"].level == "II"
    assert rt.plans["rainstorm_crowd"].trigger["compound"] == "holiday_crowd_rainstorm"
    composite = rt.states[("compound:holiday_crowd_rainstorm", "")]
    kinds = [[m["kind"] for m in ms] for ms in composite.details["matches"]]
    assert kinds == [["alert"], ["warning"]]
    # the warning is cancelled: the composite alert recovers, the plan stays open until people close it
    t = T0 + 2 * MIN
    rt.on_tick(t, crowd_values(places, tower_base=95), {"warning": _warning(t, "rainstorm", "orange", "cancelled")})
    assert rt.states[("compound:holiday_crowd_rainstorm", "")].status == "recovering"
    assert "rainstorm_crowd" in rt.plans


def test_haixin_bridge_needs_crowd_gale_and_a_fall_within_200_m(make, places):
    rt, clock, notifier, store = make(crowd_rules(places))
    near = next(c for c, (x, y) in places.cameras.items() if places.distance_to_zone(x, y, "haixin_bridge") == 0)
    far = next(c for c, (x, y) in places.cameras.items() if places.distance_to_zone(x, y, "haixin_bridge") > 1000)
    t = T0
    rt.on_tick(t, crowd_values(places, haixin_bridge=84), {"warning": _warning(t, "thunderstorm_gale", "yellow"),
                                                           "video": video_table(places, t, ("f-far", far, "fall"))})
    assert "bridge_storm_crowd" not in rt.plans                   # the fall is far from the bridge
    t = T0 + MIN
    res = rt.on_tick(t, crowd_values(places, haixin_bridge=84),
                     {"video": video_table(places, t, ("f-near", near, "fall"))})
    inst = rt.plans["bridge_storm_crowd"]
    assert inst.level == "II"
    st = rt.states[("compound:haixin_bridge_storm_crowd", "")]
    assert (st.status, st.tier) == ("firing", "orange")
    video = st.details["matches"][2]
    assert [m["event_id"] for m in video] == ["f-near"] and video[0]["distance_m"] <= 200
    assert any(e.kind == "activated" and e.plan_id == "bridge_storm_crowd" for e in res.plan_events)


def test_a_late_plan_step_is_escalated_once(make, places):
    rt, clock, notifier, store = make(crowd_rules(places))
    rt.on_tick(T0, crowd_values(places, west_plaza=85))
    inst = rt.plans["crowd_core"]
    first_due = min(s.due_at for s in inst.steps)
    rt.on_tick(first_due + MIN, crowd_values(places, west_plaza=85))
    rt.on_tick(first_due + 2 * MIN, crowd_values(places, west_plaza=85))
    late = [e for e in store.plan_events(inst.instance_id) if e["kind"] == "step_overdue"]
    assert [e["step_id"] for e in late] == ["broadcast_busy"]
    assert any(m.text_zh.startswith("【预案步骤超时】") for m in notifier.sent)


# ====================================================================== CLI
def test_the_cli_lists_alerts_cases_and_plans_from_the_store(make, places, tmp_path, capsys, monkeypatch):
    import json

    from dashboard.cli import main

    rt, clock, notifier, store = make(crowd_rules(places))
    rt.on_tick(T0, crowd_values(places, west_plaza=93))
    rt.report(request_id="cli-1", category="litter", by="p1", xy=on_yuejiang_east(places))
    db = tmp_path / "alerts0.sqlite"       # what make() opened (on PostgreSQL: its schema)
    assert main(["alerts", "--json", "--store", str(db)]) == 0
    alerts = json.loads(capsys.readouterr().out)
    west = next(a for a in alerts if a["rule_id"] == "crowd.load_rate:zone=west_plaza@1m")
    assert (west["tier"], west["threshold"], west["reason"]) == ("orange", 90, "93 ≥ orange threshold 90")
    assert [v["value"] for v in west["values"]] == [93]
    assert any(a["rule_id"] == "compound:core_crowd_level_ii" for a in alerts)
    assert main(["cases", "--json", "--store", str(db)]) == 0
    cases = json.loads(capsys.readouterr().out)
    assert {c["case_id"] for c in cases} >= {"manual:cli-1"}
    assert all(c["steps"] and c["steps"][0]["step"] == "open" for c in cases)
    assert main(["plans", "--json", "--store", str(db)]) == 0
    plans = json.loads(capsys.readouterr().out)
    assert [(p["plan_id"], p["level"]) for p in plans] == [("crowd_core", "II")]
    assert plans[0]["events"][0]["kind"] == "activated"
    # default path: $SCENIC_TWIN_VAR/alerts.sqlite; a missing store is an error, not a new file
    monkeypatch.setenv("SCENIC_TWIN_VAR", str(tmp_path / "nowhere"))
    assert main(["alerts", "--json"]) == 2
    assert "no alert store at" in capsys.readouterr().err
    assert not (tmp_path / "nowhere").exists()
