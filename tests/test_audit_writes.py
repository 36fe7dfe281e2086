"""Every write the service takes is audited with who, when, what, before and after (issue 9).

One service (its own var/, a simulated clock, no simulator thread) runs 20 minutes of a National
Day evening; then every write path of :class:`indicators.service.Service` is taken once, as the
console and the threshold page take them: alert acknowledge, assign, escalate, silence, unsilence;
a case from an alert, a reported case, every step of the case loop; a plan step and closing the
plan; a threshold save and a rollback.  Each must leave exactly one audit record naming the person,
the action and the object, with the state before and after (account changes and security events
are covered by tests/test_access_store.py, the account store's own trail).
"""
from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pytest

from indicators.feeds.simulator import Faults, simulate
from indicators.service import Service, ServiceConfig
from indicators.thresholds import Change

START = datetime(2026, 10, 1, 18, 0, tzinfo=timezone(timedelta(hours=8)))
WHO = "li.dispatcher"


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    audit: list[dict] = []

    def record(actor, action, object_type, object_id, *, before=None, after=None, detail=None, outcome="ok"):
        audit.append({"actor": actor, "action": action, "object": (object_type, object_id), "before": before,
                      "after": after, "detail": detail, "outcome": outcome})

    cfg = ServiceConfig(var=tmp_path_factory.mktemp("var"), scenario="national-day", speed=60, simulate=False,
                        alerts_warmup=timedelta(minutes=2))
    s = Service(cfg, audit=record)
    s.sim_clock.set(START)
    t = START
    for _ in range(20):
        for batch in simulate("national-day", t, timedelta(minutes=1), 7, faults=Faults.off()):
            s.sim_clock.set(batch.arrival)
            s.ingestor.submit(batch.kind, batch.payload, source="test")
        t += timedelta(minutes=1)
        s.step()
    yield s, audit
    s.alert_store.close()


def one_new(audit: list[dict], before: int, action: str, obj_type: str) -> dict:
    new = audit[before:]
    assert len(new) == 1, (action, new)
    (r,) = new
    assert (r["actor"], r["action"], r["object"][0], r["outcome"]) == (WHO, action, obj_type, "ok"), r
    assert r["object"][1] and r["after"] is not None, r
    return r


def test_every_write_path_is_audited_with_who_what_before_and_after(world):
    s, audit = world
    firing = [st for st in s.alerts.states.values() if st.status == "firing" and st.tier in ("yellow", "orange", "red")]
    assert len(firing) >= 2, "the evening must have alerts to act on"
    a, b = firing[0].alert_id, firing[1].alert_id

    def do(action: str, obj_type: str, fn) -> dict:
        n = len(audit)
        fn()
        return one_new(audit, n, action, obj_type)

    r = do("alert.acknowledge", "alert", lambda: s.acknowledge(a, by=WHO, comment="guides sent"))
    assert r["before"]["acked_by"] is None and r["after"]["acked_by"] == WHO
    r = do("alert.assign", "alert", lambda: s.assign(a, assignee=WHO, by=WHO))
    assert r["after"]["assignee"] == WHO
    r = do("alert.escalate", "alert", lambda: s.escalate(b, by=WHO, comment="needs the duty chief"))
    assert r["after"]["escalation_level"] == r["before"]["escalation_level"] + 1
    r = do("alert.silence", "alert", lambda: s.silence(b, minutes=30, by=WHO, comment="crew on site"))
    assert r["before"]["silenced_until"] is None and r["after"]["silenced_until"]
    r = do("alert.unsilence", "alert", lambda: s.unsilence(b, by=WHO, comment="back on watch"))
    assert r["after"]["silenced_until"] is None

    r = do("case.open", "case", lambda: s.case_from_alert(a, by=WHO, note="from the console"))
    case_id = r["object"][1]
    staff = sorted(s.alerts.staff)[0]
    for step in ("dispatch", "accept", "handle", "verify", "close"):
        r = do(f"case.{step}", "case", lambda step=step: s.case_step(case_id, step, by=WHO, note=f"{step} done",
                                                                    to_staff=staff if step == "dispatch" else None))
        assert r["before"]["status"] != r["after"]["status"], (step, r["before"]["status"])
    assert r["after"]["status"] == "closed"
    do("case.report", "case", lambda: s.report(request_id="phone-1", category="litter", by=WHO,
                                              description="bottles on the steps", zone_id="waterfront_steps"))

    plan = next(iter(s.alerts.plans.values()), None)
    assert plan is not None, "20 minutes of National Day evening open the crowd plan"
    step_id = plan.steps[0].step_id
    do("plan.step", "plan", lambda: s.plan_step(plan.instance_id, step_id, by=WHO, note="broadcast made"))
    do("plan.close", "plan", lambda: s.close_plan(plan.instance_id, by=WHO, note="crowd dispersed"))

    rid = "crowd.load_rate:zone=streets_east@now"
    version = s.threshold_history()[0]["version"] if s.threshold_history() else 0
    r = do("thresholds.save", "thresholds", lambda: s.save_threshold(
        rid, Change(tiers={"red": 99.0}), by=WHO, reason="trial", expected_version=version))
    do("thresholds.rollback", "thresholds", lambda: s.rollback_thresholds(
        version, by=WHO, reason="trial over", expected_version=version + 1))
