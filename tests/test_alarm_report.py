"""The alarm report (``scenic-twin alarms report``): alarm-management figures of an alert run.

* the figures as a pure function over hand-made event lists: rates, the worst
  hour and 10 minutes, floods (> 10 in a 10-minute period, not >= 10) and
  manageable hours, tiers and priorities (the rationale's consequence x time
  to act; the tier for a rule it does not document), log-only events apart,
  the bad actors'
  order, chattering, standing and still-active alerts, cases / plans /
  messages / escalations in the window, the ``--from/--to`` window;
* end to end: a 1-hour ``normal-weekday`` recording from 18:00 through the
  CLI (engine + alert runtime, the service's 15-minute warm-up) into a kept
  store, and the JSON's numbers checked against that store.
"""
from __future__ import annotations

import json
import sqlite3
import subprocess
import sys
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest

from indicators.alerts.report import (PRIORITY, Names, alarm_report, parse_time_spec, render_text,
                                      resolve_window)

ROOT = Path(__file__).resolve().parents[1]
LOCAL = timezone(timedelta(hours=8))
T0 = datetime(2026, 4, 15, 18, 0, tzinfo=LOCAL)


def at(minutes: float, base: datetime = T0) -> datetime:
    return base + timedelta(minutes=minutes)


class Log:
    """Hand-made alert events, numbered per alert as the state machine numbers them."""

    def __init__(self) -> None:
        self.events: list[dict] = []
        self.seq: dict[str, int] = {}

    def add(self, aid: str, kind: str, t: datetime, tier: str | None = None, *, rule: str | None = None,
            status: str | None = None, actor: str = "system") -> "Log":
        self.seq[aid] = self.seq.get(aid, 0) + 1
        status = status or {"pending": "pending", "firing": "firing", "tier_up": "firing", "refiring": "firing",
                            "recovering": "recovering", "resolved": "resolved", "cancelled": "resolved",
                            "escalated": "firing"}[kind]
        self.events.append({"alert_id": aid, "rule_id": rule or aid.split("|")[0], "scope": "",
                            "seq": self.seq[aid], "at": t.astimezone(timezone.utc).isoformat(), "kind": kind,
                            "to_tier": tier, "to_status": status, "actor": actor})
        return self

    def fire(self, aid: str, t: datetime, tier: str = "yellow", **kw) -> "Log":
        return self.add(aid, "firing", t, tier, **kw)


# ----------------------------------------------------------------------------- rates and floods
def test_rates_floods_and_manageable_hours_count_episodes_not_events():
    log = Log()
    for k in range(12):                                   # 18:00-18:10: 12 alerts -> a flood
        log.fire(f"f{k:02d}|", at(1 + k * 0.5))
    for k in range(10):                                   # 18:30-18:40: exactly 10 -> NOT a flood (> 10)
        log.fire(f"g{k:02d}|", at(30 + k * 0.5))
    for k in range(3):                                    # 19:00-20:00: 3 -> a manageable hour
        log.fire(f"h{k}|", at(65 + k * 20))
    # more events of counted alerts are no new alerts
    log.add("f00|", "tier_up", at(2), "red").add("f01|", "recovering", at(3)).add("f01|", "refiring", at(4), "yellow")
    log.add("p|", "pending", at(50), "red").add("p|", "cancelled", at(51))            # never fired
    log.fire("before|", at(-1)).fire("after|", at(120.5))                              # outside the window
    log.add("before|", "recovering", at(5)).add("before|", "refiring", at(6), "yellow")  # still not in it
    log.add("older|", "refiring", at(7), "red")            # its firing is not in the list: not counted either
    r = alarm_report(log.events, start=T0, end=at(120))
    a = r["alerts"]
    assert a["total"] == 25 and a["per_hour_mean"] == 12.5
    assert a["worst_10_min"]["alerts"] == 12 and a["worst_10_min"]["from_local"] == "18:01:00"
    assert a["worst_hour"]["alerts"] == 22
    assert a["ten_minute_periods"] == {"complete": 12, "in_flood": 1, "flood_share": round(1 / 12, 4),
                                       "max_in_a_period": 12}
    assert a["hours_manageable"] == {"complete": 2, "manageable": 1, "share": 0.5}
    assert [(p["from_local"][11:], p["alerts"], p["complete"]) for p in a["per_clock_hour"]] == \
        [("18:00", 22, True), ("19:00", 3, True), ("20:00", 0, False)]
    assert a["activations"] == 28                          # 25 firings + 3 refirings


def test_periods_cut_by_the_window_are_left_out_of_the_shares_but_their_alerts_count():
    log = Log()
    for k in range(11):                                   # 11 alerts 18:06-18:09 in the cut period 18:00-18:10
        log.fire(f"a{k}|", at(6 + k * 0.3))
    r = alarm_report(log.events, start=at(5), end=at(60))
    a = r["alerts"]
    assert a["total"] == 11 and a["worst_10_min"]["alerts"] == 11
    assert a["ten_minute_periods"]["complete"] == 5 and a["ten_minute_periods"]["in_flood"] == 0
    # a cut of less than one evaluation interval (15 s) still leaves the period complete
    r = alarm_report(log.events, start=at(0.2), end=at(59.9))
    assert r["alerts"]["ten_minute_periods"]["complete"] == 6
    assert r["alerts"]["ten_minute_periods"]["in_flood"] == 1
    assert r["alerts"]["hours_manageable"]["complete"] == 1


# ----------------------------------------------------------------------------- tiers and priorities
def test_tier_is_the_highest_reached_and_an_undocumented_rule_takes_its_priority_from_the_tier():
    assert PRIORITY == {"red": "urgent", "orange": "high", "yellow": "low"}
    log = Log()
    log.fire("a|", at(1), "orange").add("a|", "tier_up", at(2), "red").add("a|", "tier_down", at(3), "orange",
                                                                             status="firing")
    log.fire("b|", at(1), "orange").fire("c|", at(1), "yellow").fire("d|", at(1), "blue").fire("e|", at(1), "red")
    log.fire("f|", at(1), "blue").add("f|", "tier_up", at(70), "red")       # raised after the window: still blue
    log.fire("g|", at(5), "blue").add("g|", "tier_up", at(9), "yellow")      # left blue within it: an alarm
    r = alarm_report(log.events, start=T0, end=at(60))
    # blue episodes page nobody: advisories, counted apart and in no other figure
    assert r["advisories"]["total"] == 2 and r["advisories"]["per_hour_mean"] == 2.0
    assert r["alerts"]["total"] == 5
    assert r["by_tier"] == {"red": 2, "orange": 1, "yellow": 2, "blue": 0}
    assert r["by_priority"] == {"urgent": 2, "high": 1, "low": 2}
    assert r["priority_share"] == {"urgent": 0.4, "high": 0.2, "low": 0.4}
    assert r["red_share"] == 0.4
    assert r["priority_mapping"] == PRIORITY
    text = "\n".join(render_text(r))
    assert "consequence × time to act" in text and "advisories (blue" in text
    assert r["priority_rule"]["undocumented"] == 5 and r["log_events"]["total"] == 0


def test_priority_and_log_events_come_from_the_rationale():
    """Documented rules take the priority of their judgement at the episode's tier
    (data/alerts/rationale.toml); a tier without operator action is a log event."""
    from indicators.alerts.rationale import priority
    load = "crowd.load_rate:zone=west_plaza@now"
    fall = "video.events:zone=west_plaza,algorithm=fall@15m"
    litter = "video.events:zone=west_plaza,algorithm=exposed_litter@15m"
    peak = "crowd.load_rate_peak:zone=west_plaza@1h"               # log only: history, not the state now
    log = Log()
    log.fire("l1|", at(1), "yellow", rule=load).fire("l2|", at(2), "orange", rule=load)
    log.fire("l3|", at(3), "yellow", rule=load).add("l3|", "tier_up", at(4), "red")
    log.fire("f1|", at(5), "yellow", rule=fall).fire("t1|", at(6), "red", rule=litter)
    log.fire("p1|", at(7), "red", rule=peak).fire("p2|", at(8), "orange", rule=peak)
    log.fire("c1|", at(9), "red", rule="compound:core_crowd_level_i")
    r = alarm_report(log.events, start=T0, end=at(60))
    assert r["alerts"]["total"] == 6
    assert r["log_events"]["total"] == 2 and r["log_events"]["by_family"] == {"crowd.load_rate_peak": 2}
    assert [priority(load, t) for t in ("yellow", "orange", "red")] == ["low", "high", "urgent"]
    assert priority(fall, "yellow") == "high" and priority(litter, "red") == "low"
    assert r["by_priority"] == {"urgent": 2, "high": 2, "low": 2}
    assert r["by_tier_priority"] == {"red": {"urgent": 2, "low": 1}, "orange": {"high": 1},
                                     "yellow": {"high": 1, "low": 1}}
    assert r["priority_rule"]["undocumented"] == 0 and r["priority_rule"]["matrix"]["severe"]["immediate"] == "urgent"
    assert all(b["rule_id"] != peak for b in r["bad_actors"])


# ----------------------------------------------------------------------------- bad actors
def test_bad_actors_most_alerts_first_then_highest_tier_then_rule_id_with_names():
    log = Log()
    n = 0

    def episodes(rule: str, count: int, tier: str = "yellow") -> None:
        nonlocal n
        for k in range(count):
            n += 1
            log.fire(f"{rule}|{n}", at(n * 0.5), tier, rule=rule).add(f"{rule}|{n}", "resolved", at(n * 0.5 + 0.2))

    zone_rule = "crowd.load_rate:zone=west_plaza@now"
    episodes(zone_rule, 5)
    episodes("r02", 3, "blue")
    episodes("r03", 2, "blue")
    episodes("r03", 1, "red")
    for k in range(4, 13):
        episodes(f"r{k:02d}", 1)
    names = Names(rules={zone_rule: ("crowd.load_rate", {"zone": "west_plaza"}, "客流承载率", "Load rate")},
                  zones={"west_plaza": ("西广场", "West Plaza")})
    r = alarm_report(log.events, start=T0, end=at(60), names=names)
    bad = r["bad_actors"]
    # the blue episodes (r02, and two of r03) are advisories: no bad actors among the alarms
    assert [b["rule_id"] for b in bad] == [zone_rule, "r03"] + [f"r{k:02d}" for k in range(4, 12)]
    assert [b["alerts"] for b in bad] == [5, 1] + [1] * 8
    assert bad[1]["by_tier"] == {"red": 1}
    assert (bad[0]["family"], bad[0]["name_zh"], bad[0]["place_zh"], bad[0]["place_en"]) == \
        ("crowd.load_rate", "客流承载率", "西广场", "West Plaza")
    assert r["alerts"]["total"] == 15 and r["bad_actors_share"] == round(14 / 15, 4)
    assert r["advisories"]["total"] == 5


def test_names_describe_assets_qualifiers_and_forecasts():
    names = Names(rules={"facility.availability:zone=west_plaza,class=lamp@now":
                         ("facility.availability", {"zone": "west_plaza", "class": "lamp"}, "设施完好率",
                          "Facility availability"),
                         "traffic.flow:segment=road-x-0001@now":
                         ("traffic.flow", {"segment": "road-x-0001"}, "路段流量", "Segment flow")},
                  zones={"west_plaza": ("西广场", "West Plaza")},
                  assets={"road-x-0001": ("滨江东路", "Binjiang East Road", "west_plaza")},
                  qualifiers={("class", "lamp"): ("照明灯具", "Lamps")})
    d = names.describe("facility.availability:zone=west_plaza,class=lamp@now")
    assert (d["name_zh"], d["name_en"], d["place_zh"]) == ("设施完好率（照明灯具）", "Facility availability (Lamps)",
                                                          "西广场")
    d = names.describe("traffic.flow:segment=road-x-0001@now")
    assert (d["place_zh"], d["place_en"]) == ("滨江东路（西广场）", "Binjiang East Road (West Plaza)")
    d = names.describe("forecast:facility.availability:zone=west_plaza,class=lamp@now")
    assert d["family"] == "forecast" and d["name_zh"].startswith("设施完好率（预测）")


# ----------------------------------------------------------------------------- chattering
def test_chattering_is_3_activations_in_10_minutes_or_5_in_an_hour():
    log = Log()
    # a: one episode firing, recovering, refiring x2 within 7 minutes -> 3 activations in 10 min
    log.fire("a|1", at(0)).add("a|1", "recovering", at(2)).add("a|1", "refiring", at(4), "yellow")
    log.add("a|1", "recovering", at(5)).add("a|1", "refiring", at(7), "yellow")
    # b: 5 episodes 13 minutes apart -> 5 in an hour, never 3 in 10 minutes
    for k in range(5):
        log.fire(f"b|{k}", at(k * 13)).add(f"b|{k}", "resolved", at(k * 13 + 1))
    # c: 4 episodes 15 minutes apart -> neither
    for k in range(4):
        log.fire(f"c|{k}", at(k * 15)).add(f"c|{k}", "resolved", at(k * 15 + 1))
    # d: 3 activations spanning exactly 10 minutes -> at most 2 in any 10 minutes
    for k in range(3):
        log.fire(f"d|{k}", at(k * 5)).add(f"d|{k}", "resolved", at(k * 5 + 1))
    r = alarm_report(log.events, start=T0, end=at(60))
    ch = {c["rule_id"]: c for c in r["chattering"]["list"]}
    assert set(ch) == {"a", "b"}
    assert (ch["a"]["activations"], ch["a"]["max_in_10_min"]) == (3, 3)
    assert (ch["b"]["activations"], ch["b"]["max_in_10_min"], ch["b"]["max_in_60_min"]) == (5, 1, 5)
    assert r["chattering"]["rules"] == 2 and r["chattering"]["activations"] == 8
    assert r["chattering"]["alerts_of_chattering_rules"] == 1 + 5


# ----------------------------------------------------------------------------- standing
def test_standing_over_24_hours_and_still_active_at_the_end():
    end = datetime(2026, 4, 16, 18, 0, tzinfo=LOCAL)
    start = end - timedelta(hours=48)
    h = lambda n: end - timedelta(hours=n)                      # noqa: E731
    log = Log()
    log.fire("s1|", h(30), "red")                                # standing and active at the end
    log.fire("s2|", h(26)).add("s2|", "resolved", h(1))          # standing (25 h), resolved before the end
    log.fire("s3|", h(2))                                        # active at the end, not standing
    log.fire("s4|", h(3)).add("s4|", "resolved", h(1))           # neither
    log.fire("s5|", h(50), "orange")                             # fired before the window, still active
    log.fire("s6|", h(60)).add("s6|", "resolved", h(49))         # over before the window: nothing
    log.fire("s7|", h(20)).add("s7|", "resolved", end + timedelta(hours=1))   # resolved after the end: active
    r = alarm_report(log.events, start=start, end=end)
    s = r["standing"]
    assert [x["alert_id"] for x in s["list"]] == ["s5|", "s1|", "s2|"]
    assert [x["active_h"] for x in s["list"]] == [50.0, 30.0, 25.0]
    assert s["count"] == 3
    ae = s["active_at_end"]
    assert [x["alert_id"] for x in ae["oldest"]] == ["s5|", "s1|", "s7|", "s3|"] and ae["count"] == 4
    assert ae["by_tier"] == {"orange": 1, "red": 1, "yellow": 2}
    assert r["alerts"]["total"] == 5                             # s1-s4, s7 fired in the window


# ----------------------------------------------------------------------------- cases, plans, messages
def test_cases_plans_messages_and_escalations_in_the_window():
    log = Log()
    log.fire("a|", at(1), "red").add("a|", "escalated", at(11), "red").add("a|", "escalated", at(21), "red")
    log.fire("b|", at(1), "orange").add("b|", "escalated", at(5), "orange", actor="user:li")
    log.add("a|", "escalated", at(61), "red")                                     # after the window
    cases = [{"case_id": "alert:x", "source": "alert", "category": "facility_damage", "opened_at": at(2)},
             {"case_id": "video:1", "source": "video", "category": "litter", "opened_at": at(3)},
             {"case_id": "video:2", "source": "video", "category": "litter", "opened_at": at(4).isoformat()},
             {"case_id": "feed:1", "source": "feed", "category": "litter", "opened_at": at(-5)}]
    plans = [{"plan_id": "crowd", "instance_id": "crowd#1", "kind": "activated", "level": "III", "at": at(10)},
             {"plan_id": "crowd", "instance_id": "crowd#1", "kind": "level_raised", "level": "II", "at": at(20)},
             {"plan_id": "crowd", "instance_id": "crowd#1", "kind": "step_overdue", "level": "II", "at": at(40)},
             {"plan_id": "rain", "instance_id": "rain#1", "kind": "activated", "level": "IV", "at": at(90)}]
    steps = [{"case_id": "alert:x", "step": "escalate", "at": at(30)}, {"case_id": "alert:x", "step": "open",
                                                                        "at": at(2)}]
    msgs = [{"channel": c, "created_at": at(m)} for c, m in
            [("alert", 1), ("alert", 1), ("escalation", 11), ("case", 2), ("plan", 10), ("public_notice", 10),
             ("alert", 70)]]
    names = Names(plans={"crowd": ("大客流应急预案", "Crowd plan")})
    r = alarm_report(log.events, start=T0, end=at(60), cases=cases, plan_events=plans, case_steps=steps,
                     messages=msgs, names=names)
    assert r["cases"] == {"opened": 3, "per_hour": 3.0, "by_source": {"video": 2, "alert": 1},
                          "by_category": {"litter": 2, "facility_damage": 1}}
    assert [(p["plan_id"], p["level"], p["at_local"], p["name_zh"]) for p in r["plans"]["opened"]] == \
        [("crowd", "III", "2026-04-15 18:10:00", "大客流应急预案")]
    assert [(p["plan_id"], p["level"]) for p in r["plans"]["raised"]] == [("crowd", "II")]
    assert r["messages"] == {"total": 6, "operator": 5, "operator_per_hour": 5.0,
                             "by_channel": {"alert": 2, "escalation": 1, "case": 1, "plan": 1, "public_notice": 1}}
    assert r["escalations"] == {"alert_escalations": 3, "by_hand": 1, "alerts_escalated": 2,
                                "by_tier": {"red": 2, "orange": 1}, "case_escalations": 1, "plan_steps_overdue": 1,
                                "of_log_events": 0}


# ----------------------------------------------------------------------------- the window
def test_window_from_to_in_local_time():
    anchor = datetime(2026, 4, 15, 17, 0, 0, 973000, tzinfo=LOCAL)      # the recording's first tick
    first, last = anchor + timedelta(minutes=15), anchor + timedelta(hours=24, seconds=-1)
    assert resolve_window(first, last, anchor=anchor) == (first, last)
    # --from at the recording's start means that day (clipped to the end of the warm-up), not the next one
    assert resolve_window(first, last, "17:00", "18:00", anchor=anchor) == \
        (first, datetime(2026, 4, 15, 18, 0, tzinfo=LOCAL))
    # across midnight
    assert resolve_window(first, last, "22:00", "02:00", anchor=anchor) == \
        (datetime(2026, 4, 15, 22, 0, tzinfo=LOCAL), datetime(2026, 4, 16, 2, 0, tzinfo=LOCAL))
    # --to past the end is clipped; ISO times work too
    assert resolve_window(first, last, "2026-04-16T10:00+08:00", "23:00", anchor=anchor) == \
        (datetime(2026, 4, 16, 10, 0, tzinfo=LOCAL), last)
    with pytest.raises(ValueError):
        resolve_window(first, last, "2026-04-17T10:00+08:00", anchor=anchor)
    with pytest.raises(ValueError):
        parse_time_spec("25:00")
    with pytest.raises(ValueError):
        parse_time_spec("2026-04-16T10:00")                             # no UTC offset


# ----------------------------------------------------------------------------- end to end
def _store_rows(path: Path, sql: str, *args) -> list[tuple]:
    with sqlite3.connect(path) as db:
        return db.execute(sql, args).fetchall()


def _t(s: str) -> datetime:
    return datetime.fromisoformat(s.replace("Z", "+00:00"))


@pytest.mark.slow
def test_cli_on_an_hour_of_normal_weekday_agrees_with_the_store(tmp_path):
    """1 hour of ``normal-weekday`` from 18:00 (seed 1, faults on): 15 minutes
    of warm-up, then 45 minutes counted.  Every figure of the JSON is checked
    against the store the run kept (``--store``)."""
    from indicators.alerts.store import AlertStore
    from indicators.feeds.simulator import Faults, simulate, write_recording

    rec = tmp_path / "rec"
    items = simulate("normal-weekday", datetime(2026, 4, 15, 18, 0, tzinfo=LOCAL), timedelta(hours=1), 1,
                     faults=Faults())
    write_recording(rec, items, manifest={"scenario": "normal-weekday", "seed": 1}, progress=False)
    store = tmp_path / "alerts.sqlite"
    p = subprocess.run([sys.executable, "-m", "dashboard.cli", "alarms", "report", str(rec), "--json",
                        "--store", str(store)], cwd=ROOT, capture_output=True, text=True, timeout=900)
    assert p.returncode == 0, p.stderr
    assert "alarms report: simulated" in p.stderr and "alarms report: done" in p.stderr    # progress lines
    r = json.loads(p.stdout)
    assert (r["scenario"], r["seed"]) == ("normal-weekday", 1)
    span, w, a = r["span"], r["window"], r["alerts"]
    lo, hi = _t(w["from"]), _t(w["to"])

    # the service's cadence and warm-up
    warm = _t(span["first_evaluation"]) - _t(span["first_tick"])
    assert timedelta(minutes=15) <= warm < timedelta(minutes=15, seconds=2)
    assert (lo, hi) == (_t(span["first_evaluation"]), _t(span["last_evaluation"]))
    assert 170 <= span["evaluations"] <= 182                   # ~45 min / 15 s
    assert r["run"]["wall_s"] > 0 and span["simulated_h"] > 0.95

    # alerts = the store's episodes whose first firing is in the window and that reached yellow or above;
    # those that stayed blue are the advisories
    from indicators.alerts import RANK
    first_at, rule_of, top = {}, {}, {}
    for aid, rid, kind, tier, t in _store_rows(store, "SELECT alert_id, rule_id, kind, to_tier, occurred_at "
                                                      "FROM alert_events"):
        if _t(t) > hi:
            continue
        if kind == "firing":
            first_at[aid], rule_of[aid] = min(first_at.get(aid, _t(t)), _t(t)), rid
        if kind in ("firing", "tier_up", "refiring") and tier:
            top[aid] = max(top.get(aid, 0), RANK[tier])
    from indicators.alerts.rationale import is_log_only
    blue = {aid for aid, k in top.items() if k == RANK["blue"]}
    tier_name = {v: k for k, v in RANK.items()}
    logged = {aid for aid, k in top.items() if aid not in blue and aid in rule_of
              and is_log_only(rule_of[aid], tier_name[k])}
    assert r["log_events"]["total"] == sum(1 for aid in logged if lo <= first_at[aid] <= hi)
    blue |= logged                         # neither advisories nor log events are alarms
    firsts = [(aid, rule_of[aid], t.isoformat()) for aid, t in first_at.items() if aid not in blue]
    counted = [(aid, rid) for aid, rid, t in firsts if lo <= _t(t) <= hi]
    assert a["total"] == len(counted) > 0
    assert r["advisories"]["total"] == sum(1 for aid in blue - logged if lo <= first_at[aid] <= hi)
    assert sum(p["alerts"] for p in a["per_clock_hour"]) == a["total"]
    assert a["worst_10_min"]["alerts"] <= a["worst_hour"]["alerts"] <= a["total"]
    assert a["per_hour_mean"] == round(a["total"] / w["hours"], 2)
    assert sum(r["by_tier"].values()) == sum(r["by_priority"].values()) == a["total"]
    assert r["by_tier"]["blue"] == 0
    # the priorities are the rationale's for each counted episode's rule and tier
    from collections import Counter

    from indicators.alerts.rationale import priority
    want = Counter(priority(rule_of[aid], {v: k for k, v in RANK.items()}[top[aid]]) or "none" for aid, _ in counted)
    assert {k: v for k, v in r["by_priority"].items() if v} == dict(want)
    assert sum(a["by_group"].values()) == a["total"]
    # the bad actors' counts are the store's, most first
    per_rule: dict[str, int] = {}
    for _, rid in counted:
        per_rule[rid] = per_rule.get(rid, 0) + 1
    bad = r["bad_actors"]
    assert len(bad) == min(10, len(per_rule))
    assert [b["alerts"] for b in bad] == sorted(per_rule.values(), reverse=True)[:len(bad)]
    assert all(per_rule[b["rule_id"]] == b["alerts"] and b["place_zh"] and b["name_zh"] for b in bad)
    # activations, escalations, still active
    acts = _store_rows(store, "SELECT alert_id, occurred_at FROM alert_events WHERE kind IN ('firing', 'refiring')")
    assert a["activations"] == sum(1 for aid, t in acts if lo <= _t(t) <= hi and aid not in blue)
    esc = _store_rows(store, "SELECT occurred_at FROM alert_events WHERE kind = 'escalated'")
    assert r["escalations"]["alert_escalations"] == sum(1 for (t,) in esc if lo <= _t(t) <= hi)
    with AlertStore.open(store) as st:
        active_fired = [s for s in st.active_alerts() if s.fired_at is not None and s.alert_id not in blue]
        cases = [c for c in st.cases() if lo <= c.opened_at <= hi]
        plans = [p for p in st.plans() if lo <= p.opened_at <= hi]
        events = st.events(limit=10_000_000)
    assert r["standing"]["active_at_end"]["count"] == len(active_fired)
    assert r["standing"]["count"] == 0                            # an hour holds no 24-hour alert
    # cases, plans, messages
    assert r["cases"]["opened"] == len(cases) and sum(r["cases"]["by_source"].values()) == len(cases)
    assert len(r["plans"]["opened"]) == len(plans)
    out = _store_rows(store, "SELECT channel, created_at FROM outbox")
    by_channel: dict[str, int] = {}
    for ch, t in out:
        if lo <= _t(t) <= hi:
            by_channel[ch] = by_channel.get(ch, 0) + 1
    assert r["messages"]["by_channel"] == by_channel and r["messages"]["total"] == sum(by_channel.values())

    # a narrower window over the same events counts exactly the episodes first fired in it
    sub_lo, sub_hi = lo + timedelta(minutes=10), lo + timedelta(minutes=25)
    sub = alarm_report(events, start=sub_lo, end=sub_hi)
    assert sub["alerts"]["total"] == sum(1 for _, _, t in firsts if sub_lo <= _t(t) <= sub_hi)
    text = "\n".join(render_text(r))
    assert "Top" in text and "bad actors" in text and "consequence × time to act" in text
