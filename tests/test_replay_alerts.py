"""``replay_alerts``: recordings through the engine AND the alert runtime, end to end.

* holiday-rainstorm: tiered crowd alerts in the core area, the
  holiday-crowd + rainstorm compound rule opening the ``rainstorm_crowd``
  plan, cases dispatched to the nearest staff member by walking distance,
  and the ``alerts`` / ``cases`` / ``plans`` CLI showing the store.
* light-show: the zone forecast fires before the zone's threshold alert does
  (the lead time is printed).
* bad input: a recording whose ``malformed.jsonl`` is not even JSON replays.

Each replay costs about 0.1 s per simulated minute here (the recording's
~200 arrival-ordered batches per minute go into the engine in runs, and the
1,373 values are evaluated only at the 4 ticks a minute the rules read), so
the windows are chosen to hold the episode and little else.
"""
from __future__ import annotations

import json
import subprocess
import sys
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest

from indicators.alerts import RANK
from indicators.alerts import rules as R
from indicators.replay_alerts import replay_alerts
from indicators.alerts.runtime import load_config
from indicators.alerts.store import open_store
from indicators.catalog import load_catalog
from indicators.feeds.simulator import Faults, simulate, write_recording
from indicators.pipeline import rule_defaults

ROOT = Path(__file__).resolve().parents[1]
SEED = 7
LOCAL = timezone(timedelta(hours=8))


def _record(tmp: Path, scenario: str, start: str, minutes: int) -> tuple[Path, dict]:
    out = tmp / f"{scenario}-rec"
    items = simulate(scenario, datetime.fromisoformat(start), timedelta(minutes=minutes), SEED, faults=Faults())
    man = write_recording(out, items, manifest={"scenario": scenario, "seed": SEED}, progress=False)
    return out, man


def _cli(*args: str):
    r = subprocess.run([sys.executable, "-m", "dashboard.cli", *args], cwd=ROOT, capture_output=True, text=True,
                       timeout=120)
    assert r.returncode == 0, r.stderr
    return json.loads(r.stdout)


def _at(s: str) -> datetime:
    return datetime.fromisoformat(s.replace("Z", "+00:00"))


# ----------------------------------------------------------------------------- holiday-rainstorm
def golden_week_thresholds(core: list[str]) -> dict:
    """The supervisors' Golden Week thresholds for the core-area load rates: a
    ``holiday`` profile (the one ``compound.toml``'s holiday crowd + rainstorm
    rule relies on) 20 points under the everyday 60/80/90/100 %, with the
    orange tier held down to 60 % (hysteresis) while a crowd drains."""
    return {
        "calendars": {"golden_week": {"dates": [f"2026-10-0{d}" for d in range(1, 8)]}},
        "override": {f"crowd.load_rate:zone={z}@now": {"profiles": [{
            "name": "holiday", "calendar": "golden_week",
            "tiers": {"blue": 40, "yellow": 60, "orange": {"threshold": 70, "recover": 60}, "red": 80}}]}
            for z in core},
    }


@pytest.mark.slow
def test_holiday_rainstorm_tiers_plan_and_dispatched_cases(tmp_path):
    """Window 13:45-15:00 local (75 simulated minutes, faults on): the holiday
    crowd builds to ~80 % of capacity in the core zones by 14:20; the
    rainstorm signal is yellow at 14:32 and orange at 14:50, by when the rain
    has thinned the crowd to ~70 %; at 15:00 the core alerts are still active,
    so the CLI shows them.

    Why a holiday profile: with the catalog's everyday tiers (80/90/100 %) the
    core area peaks at ~80 % at 14:25 and is down to ~69 % when the signal
    turns orange, so ``holiday_crowd_rainstorm`` (crowd >= orange AND
    rainstorm >= orange) cannot fire on this recording - its own comment says
    the holiday tiers come from the crowd rules' ``holiday`` profile, an
    overrides document the supervisors save in the store, which the replay
    reads like the service does."""
    rec, man = _record(tmp_path, "holiday-rainstorm", "2026-10-02T13:45:00+08:00", 75)
    store_path = tmp_path / "alerts.sqlite"
    core = list(load_config().groups["core"])
    with open_store(store_path) as st:
        R.save(st, list(rule_defaults(load_catalog())), golden_week_thresholds(core), author="ops-supervisor",
               comment="Golden Week tiers", now=datetime(2026, 9, 28, tzinfo=timezone.utc))

    r = replay_alerts(rec, store_path, progress=False)

    assert r["thresholds_version"] == 1 and r["ticks"] >= 74 * 60
    assert r["malformed_skipped"] == man["malformed"] > 0            # faults on: skipped, no crash
    assert r["alert_errors"] == 0 and r["rejected_batches"] == 0
    assert r["store_last_tick_before"] is None

    # --- tiered crowd alerts in the core area
    fired = [f for f in r["alerts"]["fired"] if f["rule_id"].startswith("crowd.load_rate:zone=")
             and f["rule_id"].split("=", 1)[1].split("@")[0] in core]
    tiers = {f["tier"] for f in fired}
    assert {"yellow", "orange"} <= tiers, tiers
    zones_orange = {f["rule_id"] for f in fired if RANK[f["tier"]] >= RANK["orange"]}
    assert len(zones_orange) >= 2, zones_orange

    # --- the compound rule opened the rainstorm-crowd plan
    compound = [f for f in r["alerts"]["fired"] if f["rule_id"] == "compound:holiday_crowd_rainstorm"]
    assert compound and compound[0]["tier"] == "orange"
    opened = [p for p in r["plans"] if p["plan_id"] == "rainstorm_crowd"]
    assert opened and opened[0]["event"] == "activated" and opened[0]["level"] == "II"
    assert opened[0]["compound"] == "holiday_crowd_rainstorm"
    assert opened[0]["trigger_alert"] == compound[0]["alert_id"]
    # the orange rainstorm signal (issued 14:50) reaches the runtime when it arrives; the ticks it is combined
    # with lag the arrivals by the engine's allowed lateness (2 min)
    assert _at(opened[0]["at"]).astimezone(LOCAL) >= datetime(2026, 10, 2, 14, 47, tzinfo=LOCAL)
    assert any(p["plan_id"] == "rainstorm" for p in r["plans"])

    # --- cases, dispatched to the nearest available staff member
    cases = r["cases"]["list"]
    dispatched = [c for c in cases if c["dispatches"]]
    assert r["cases"]["dispatched"] == len(dispatched) >= 10
    with_staff = [c for c in dispatched if c.get("assignee")]
    for c in with_staff:
        top = c["suggested"][0]
        assert c["assignee"] == top["staff_id"] == c["staff_id"], c["case_id"]
        assert top["walking_m"] > 0 and c["walking_m"] == top["walking_m"], c["case_id"]
        walks = [s["walking_m"] for s in c["suggested"]]
        assert walks == sorted(walks), c["case_id"]                    # the nearest first
        assert all(d["staff_id"] == c["assignee"] for d in c["dispatches"]), c["case_id"]
    crowd_cases = [c for c in dispatched if c["source"] == "alert" and c["category"] == "crowd_safety"]
    assert crowd_cases and all(c.get("assignee") for c in crowd_cases), crowd_cases
    # A case goes out without a person only when every patrol is busy: the first evaluations open dozens of
    # cases at once (facility alerts, see the report), more than the ~30 people on the shift.
    staff_ids = {s["staff_id"] for c in with_staff for s in c["suggested"]}
    for c in dispatched:
        if not c.get("assignee"):
            same_moment = [x for x in with_staff
                           if abs((_at(x["opened_at"]) - _at(c["opened_at"])).total_seconds()) <= 30]
            assert len(same_moment) >= min(20, len(staff_ids)), (c["case_id"], len(same_moment))
    assert len(with_staff) >= 0.8 * len(dispatched)

    # --- the CLI shows what the runtime stored
    alerts = _cli("alerts", "--json", "--store", str(store_path))
    by_id = {a["alert_id"]: a for a in alerts}
    core_active = [a for a in alerts if a["rule_id"].startswith("crowd.load_rate:zone=")
                   and a["rule_id"].split("=", 1)[1].split("@")[0] in core]
    assert core_active and all(a["profile"] == "holiday" for a in core_active), core_active
    assert any(f["alert_id"] in by_id for f in fired if RANK[f["tier"]] >= RANK["yellow"])
    assert compound[0]["alert_id"] in by_id
    plans = _cli("plans", "--json", "--store", str(store_path))
    rc = [p for p in plans if p["plan_id"] == "rainstorm_crowd"]
    assert len(rc) == 1 and rc[0]["status"] == "active" and rc[0]["level"] == "II"
    assert rc[0]["instance_id"] == opened[0]["instance_id"]
    assert rc[0]["trigger"]["compound"] == "holiday_crowd_rainstorm"
    assert [e["kind"] for e in rc[0]["events"]][0] == "activated"
    cli_cases = {c["case_id"]: c for c in _cli("cases", "--json", "--store", str(store_path))}
    assert set(cli_cases) == {c["case_id"] for c in cases}
    for c in with_staff:
        cc = cli_cases[c["case_id"]]
        # the case feed moves its own cases on (accepted, handled, closed); the runtime's stay dispatched
        moved_on = ("dispatched", "handling", "verifying", "verified", "closed")
        assert cc["status"] in (moved_on if c["source"] == "feed" else ("dispatched",)), (c["case_id"], cc["status"])
        assert cc["assignee"] == c["assignee"]
        assert cc["suggested"][0]["walking_m"] == c["walking_m"]
        steps = [s for s in cc["steps"] if s["step"] == "dispatch"]
        assert steps and all(s["details"].get("staff") == c["assignee"] for s in steps)
    print(f"\nholiday-rainstorm: {r['ticks']} ticks, {r['evaluations']} evaluations; core tiers {sorted(tiers)}; "
          f"rainstorm_crowd II at {_at(opened[0]['at']).astimezone(LOCAL):%H:%M:%S}; "
          f"{len(dispatched)} cases dispatched ({len(with_staff)} to a person, "
          f"median walk {sorted(c['walking_m'] for c in with_staff)[len(with_staff) // 2]} m)")


# ----------------------------------------------------------------------------- light-show
def forecast_leads(events: list[dict]) -> list[dict]:
    """For every (zone, tier) a forecast alert predicted: the first forecast event
    predicting it, the first threshold alert event reaching it (or higher) in
    that zone afterwards, and the lead = the difference in minutes."""
    out = []
    first_fc: dict[tuple[str, str], dict] = {}
    for e in events:
        if e["rule_id"].startswith("forecast:crowd.load_rate:") and e["kind"] in ("firing", "tier_up", "refiring"):
            tier = (e["details"] or {}).get("tier") or e["to_tier"]
            first_fc.setdefault((e["rule_id"][len("forecast:"):], tier), e)
    for (iid, tier), fe in first_fc.items():
        reached = [e for e in events if e["rule_id"] == iid and e["kind"] in ("firing", "tier_up", "refiring")
                   and RANK.get(e["to_tier"] or "", 0) >= RANK[tier]]
        before = [e for e in reached if _at(e["at"]) <= _at(fe["at"])]
        after = [e for e in reached if _at(e["at"]) > _at(fe["at"])]
        if before or not after:                      # already there, or never got there in the window
            continue
        lead = (_at(after[0]["at"]) - _at(fe["at"])).total_seconds() / 60.0
        out.append({"indicator": iid, "tier": tier, "forecast_at": fe["at"], "alert_at": after[0]["at"],
                    "lead_min": round(lead, 2), "predicted_lead_min": fe["details"].get("lead_min"),
                    "value_at_alert": after[0]["value"]})
    return sorted(out, key=lambda x: x["forecast_at"])


@pytest.mark.slow
def test_light_show_forecast_fires_before_the_zone_crosses(tmp_path):
    """Window 18:35-19:35 local (60 simulated minutes, faults on): the riverside
    zones sit at ~60 % until the show boost at 19:00, then cross 80 % (yellow)
    at ~19:09 and 90 % (orange) at ~19:20.  The forecast needs 10 minutes of
    updates before it may alert (from ~18:46), so the window starts early
    enough for the trend to be warm and ends after the orange crossings."""
    rec, _ = _record(tmp_path, "light-show", "2026-11-21T18:35:00+08:00", 60)
    store_path = tmp_path / "alerts.sqlite"
    r = replay_alerts(rec, store_path, progress=False)
    assert r["alerts"]["forecast"]["fired_by_tier"], r["alerts"]["forecast"]

    with open_store(store_path) as st:
        events = st.events()
    leads = forecast_leads(events)
    print("\nforecast lead times (threshold alert firing minus forecast firing):")
    for x in leads:
        print(f"  {x['indicator']:45s} {x['tier']:7s} forecast {_at(x['forecast_at']).astimezone(LOCAL):%H:%M:%S} "
              f"(said ~{x['predicted_lead_min']} min)  alert {_at(x['alert_at']).astimezone(LOCAL):%H:%M:%S}  "
              f"lead {x['lead_min']:.2f} min")
    ahead = [x for x in leads if x["lead_min"] > 0 and RANK[x["tier"]] >= RANK["yellow"]]
    assert ahead, leads
    best = max(ahead, key=lambda x: x["lead_min"])
    print(f"best: {best['indicator']} {best['tier']} {best['lead_min']:.2f} min ahead")
    # the summary computes the same leads from the tick results
    summ = {(f["indicator_id"], f["tier"], f["at"]): f for f in r["forecasts"]}
    assert any(f["actual_lead_min"] and f["actual_lead_min"] > 0 for f in summ.values())


# ----------------------------------------------------------------------------- bad input
def test_unreadable_malformed_file_and_bad_rows_are_skipped(tmp_path):
    """A recording whose malformed.jsonl is not JSON at all still replays (its
    lines count as malformed), and the result is the one without the file."""
    rec, man = _record(tmp_path, "normal-weekday", "2026-04-08T19:00:00+08:00", 4)
    bad = rec / "malformed.jsonl"
    lines = bad.read_text(encoding="utf-8").splitlines()
    bad.write_text("\n".join(lines + ["{this is not json", "\x00\x01garbage"]) + "\n", encoding="utf-8")
    r = replay_alerts(rec, tmp_path / "a.sqlite", progress=False)
    assert r["malformed_skipped"] == len(lines) + 2
    assert r["ticks"] > 0 and r["evaluations"] > 0 and r["alert_errors"] == 0
    bad.unlink()
    clean = replay_alerts(rec, tmp_path / "b.sqlite", progress=False)
    assert clean["ticks"] == r["ticks"] and clean["stats"] == r["stats"]
    assert clean["alerts"]["threshold"] == r["alerts"]["threshold"]
