"""The alert state machine: pure, explainable, keyed for idempotent writes."""
from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pytest

from indicators.alerts.rules import RuleDefaults, build_rules
from indicators.alerts.state import (CHATTER_HOLD_S, CHATTER_WINDOW_S, AlertActionError, AlertState, Evaluation, acknowledge, assign, escalate, explain,
                                     silence, state_from_dict, state_to_dict, transition)

WEST = "crowd.load_rate:zone=west_plaza@1m"
T0 = datetime(2025, 5, 1, 11, 0, tzinfo=timezone.utc)
MIN = timedelta(minutes=1)


def rule(**override):
    d = RuleDefaults(WEST, "above", {"blue": 60, "yellow": 80, "orange": 90, "red": 100},
                     name_zh="西广场负荷率", name_en="West Plaza load rate", unit="%")
    return build_rules([d], {"override": {WEST: override}})[WEST]


def play(r, values, start=T0, state=None):
    events = []
    for i, v in enumerate(values):
        at = start + i * MIN
        tr = transition(state, Evaluation(at, v), r, at)
        state = tr.state
        events += tr.events
    return state, events


def test_why_it_fired_tier_threshold_direction_and_the_values_over_the_pending_period():
    st, ev = play(rule(**{"for": "3m"}), [50, 82, 84, 86, 88])
    assert [e.kind for e in ev] == ["pending", "firing"]
    why = explain(st, rule())
    assert (why["tier"], why["level"], why["threshold"], why["direction"], why["profile"]) == (
        "yellow", "III", 80, "above", "default")
    assert [v["value"] for v in why["values"]] == [82, 84, 86, 88]
    assert why["values"][0]["at"] == (T0 + MIN).isoformat()
    assert why["sentence_zh"] == "西广场负荷率达到黄色（III级）阈值：82–88% ≥ 80%，持续约3分钟"
    assert why["sentence_en"] == ("West Plaza load rate reached the yellow (level III) threshold: "
                                  "82–88% ≥ 80% for about 3 min")
    assert why["fired_at"] == (T0 + 4 * MIN).isoformat()


def test_an_escalated_alert_states_the_value_that_crossed_the_tier_it_holds():
    """The evidence of the first tier (82–88) does not cross the orange 90: the
    sentence says the value now, never "82–95 ≥ 90"."""
    st, _ = play(rule(**{"for": "3m"}), [50, 82, 84, 86, 88, 95, 96, 97, 98])
    assert st.tier == "orange"
    why = explain(st, rule())
    assert "≥ 90%" in why["sentence_zh"] and "当前98%" in why["sentence_zh"]
    assert "82" not in why["sentence_zh"]
    assert "now 98% ≥ 90%" in why["sentence_en"]
    assert "West Plaza load rate" in why["sentence_en"]


def test_transition_is_pure_and_deterministic():
    r = rule(**{"for": "0s"})
    prev, _ = play(r, [85])
    snapshot = state_to_dict(prev)
    ev = Evaluation(T0 + MIN, 95)
    a = transition(prev, ev, r, T0 + MIN)
    b = transition(prev, ev, r, T0 + MIN)
    assert a == b                                     # same inputs, same transition (and event keys)
    assert state_to_dict(prev) == snapshot            # the previous state is not touched
    assert [e.key for e in a.events] == [f"{prev.alert_id}#2"]


def test_one_alert_per_rule_and_scope_and_a_new_episode_gets_a_new_id():
    r = rule(**{"for": "0s"})
    st, ev = play(r, [85, 95, 85, 50])
    assert [e.kind for e in ev] == ["firing", "tier_up", "tier_down", "resolved"]
    assert len({e.alert_id for e in ev}) == 1 and [e.seq for e in ev] == [1, 2, 3, 4]
    # well after it ended (past the chattering window): a new alert, numbered from 1
    later = st.status_since + timedelta(seconds=CHATTER_WINDOW_S + 60)
    st2, ev2 = play(r, [85], start=later, state=st)
    assert [(e.kind, e.seq) for e in ev2] == [("firing", 1)] and ev2[0].alert_id != ev[0].alert_id
    assert len({e.key for e in ev + ev2}) == 5


def test_a_chattering_input_fires_once():
    """A value flapping across its threshold every minute for an hour: one alert that comes back
    as itself (no new id, no new page at the same tier), held 10 min after its last crossing."""
    from indicators.alerts.runtime import _alert_message  # noqa: F401  (the paging rule is tested in test_alert_rules)
    r = rule(**{"for": "0s"})
    st, ev = play(r, [85, 50] * 30 + [50] * 12)
    firing = [e for e in ev if e.kind == "firing"]
    assert len(firing) == 1 and len({e.alert_id for e in ev}) == 1
    back = [e for e in ev if e.kind == "refiring"]
    assert back and all(e.details.get("higher") is False for e in back)       # none pages again
    assert back[0].details.get("chattering")
    # after it first came back it no longer ends at each dip: held 10 min after the value is back
    resolved = [e for e in ev if e.kind == "resolved"]
    assert len(resolved) == 2, [(e.kind, e.at) for e in ev]
    assert resolved[-1].at == T0 + 59 * MIN + timedelta(seconds=CHATTER_HOLD_S)
    assert st.status == "resolved" and st.returns == 1
    # a return at a higher tier than it ended in is news: flagged, acknowledgement cleared
    st, ev = play(r, [85, 50, 50, 95], start=T0, state=None)
    (back,) = [e for e in ev if e.kind == "refiring"]
    assert back.details["higher"] is True and back.to_tier == "orange"


def test_a_value_wavering_on_a_tier_boundary_is_news_only_above_the_highest_tier_it_held():
    """80 % ± 1 for an hour (yellow <-> blue): one page when it first reaches yellow, then returns to
    yellow say nothing new and keep the acknowledgement; orange is news and wants a new one."""
    r = rule(**{"for": "0s"})
    st, ev = play(r, [81])
    st = acknowledge(st, by="li", comment="guides sent", now=T0).state
    st, ev = play(r, [79, 81] * 30, start=T0 + MIN, state=st)
    ups = [e for e in ev if e.kind == "tier_up"]
    assert len(ups) == 30 and all(e.details["higher"] is False for e in ups)
    assert st.acked_by == "li" and st.last_tier == "yellow"
    st, ev = play(r, [79, 91, 85], start=T0 + 61 * MIN, state=st)
    (up,) = [e for e in ev if e.kind == "tier_up"]
    assert up.to_tier == "orange" and up.details["higher"] is True and st.acked_by is None
    assert st.last_tier == "orange"       # back at yellow now; orange again would say nothing new


def test_scopes_are_separate_alerts():
    r = rule(**{"for": "0s"})
    a = transition(None, Evaluation(T0, 85, scope="gate-1"), r, T0).state
    b = transition(None, Evaluation(T0, 85, scope="gate-2"), r, T0).state
    assert a.alert_id != b.alert_id and (a.scope, b.scope) == ("gate-1", "gate-2")


def test_user_actions_say_who_and_why_and_refuse_what_makes_no_sense():
    r = rule(**{"for": "0s"})
    st, _ = play(r, [95])
    with pytest.raises(AlertActionError):
        acknowledge(st, by="li", comment="  ", now=T0)          # a comment is required
    with pytest.raises(AlertActionError):
        acknowledge(st, by="", comment="ok", now=T0)
    with pytest.raises(AlertActionError):
        acknowledge(AlertState(WEST), by="li", comment="ok", now=T0)   # nothing to acknowledge
    with pytest.raises(AlertActionError):
        silence(st, until=T0 - MIN, by="li", comment="x", now=T0)
    tr = acknowledge(st, by="li", comment="guides sent", now=T0 + MIN)
    (e,) = tr.events
    assert (e.kind, e.actor, e.reason, e.at) == ("acknowledged", "user:li", "guides sent", T0 + MIN)
    tr2 = assign(tr.state, assignee="patrol-07", by="li", now=T0 + 2 * MIN)
    assert tr2.state.assignee == "patrol-07" and tr2.events[0].details == {"assignee": "patrol-07"}
    assert tr2.state.acked_by == "li"


def test_escalation_deadline_is_per_tier_and_escalates_once_on_its_own():
    r = rule(**{"for": "0s", "escalate_after": {"yellow": "20m", "red": "2m"}})
    st, ev = play(r, [85] * 12)
    assert [e.kind for e in ev] == ["firing"]                  # yellow: 20 min not reached
    st, ev = play(r, [105] * 12)
    # once, at 2 min, to the named role - not again at 4, 6 ... min: further levels are a person's call
    assert [e.kind for e in ev] == ["firing", "escalated"]
    assert st.escalation_level == 1
    assert ev[1].at == T0 + 2 * MIN


def test_an_operator_escalates_by_hand_with_a_reason_up_to_the_highest_level():
    r = rule(**{"for": "0s"})
    st, _ = play(r, [95])
    with pytest.raises(AlertActionError, match="reason"):
        escalate(st, by="li", comment=" ", now=T0, max_level=2)
    tr = escalate(st, by="li", comment="needs the duty chief", now=T0 + MIN, max_level=2)
    (e,) = tr.events
    assert (e.kind, e.actor, e.reason, tr.state.escalation_level) == ("escalated", "user:li", "needs the duty chief", 1)
    top = escalate(tr.state, by="li", comment="still growing", now=T0 + 2 * MIN, max_level=2).state
    assert top.escalation_level == 2
    with pytest.raises(AlertActionError, match="highest"):
        escalate(top, by="li", comment="again", now=T0 + 3 * MIN, max_level=2)
    # the timer goes on from the level reached by hand: no second "escalated" for the same level
    r2 = rule(**{"for": "0s", "escalate_after": {"orange": "2m"}})
    st2, _ = play(r2, [95])
    st2 = escalate(st2, by="li", comment="now", now=T0, max_level=3).state
    _, ev = play(r2, [95] * 8, start=T0 + MIN, state=st2)
    assert [x.kind for x in ev] == []                 # escalated by hand already: the timer adds nothing


def test_state_round_trips_through_its_dict():
    st, _ = play(rule(**{"for": "2m"}), [85, 86, 87])
    assert state_from_dict(state_to_dict(st)) == st


def test_stale_counts_as_no_data_and_a_non_finite_ok_value_as_error():
    assert Evaluation(T0, 1.0, "stale").kind == "nodata"
    assert Evaluation(T0, None, "ok").kind == "nodata"
    assert Evaluation(T0, float("inf"), "ok").kind == "error"
    assert Evaluation(T0, 1.0, "error").kind == "error"
    assert Evaluation(T0, 1.0, "ok").kind == "ok"


def test_the_core_reads_no_clock_and_imports_no_adapter():
    """rules/state/compound/plans/cases/routing/forecast: time and data are parameters."""
    import ast
    from pathlib import Path

    core = ("rules", "state", "compound", "plans", "cases", "routing", "forecast")
    root = Path(__file__).resolve().parents[1] / "indicators" / "alerts"
    for name in core:
        src = (root / f"{name}.py").read_text(encoding="utf-8")
        for bad in ("datetime.now(", "datetime.utcnow(", "time.time(", "date.today(", "open("):
            assert bad not in src, f"{name}.py uses {bad}"
        for node in ast.walk(ast.parse(src)):
            if isinstance(node, ast.ImportFrom):
                mod = node.module or ""
                assert mod.split(".")[-1] not in ("store", "runtime", "cli") and "dashboard" not in mod, \
                    f"{name}.py imports {mod}"
