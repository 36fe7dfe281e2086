"""The wall and console view models from a real snapshot, without a browser:
zone colour is the zone's alert tier, nothing on screen is a raw code, the
alert list is ordered and says why with its numbers, stale feeds are marked,
and a push carries only what changed."""
from __future__ import annotations

import json
import re
from dataclasses import replace
from datetime import datetime, timedelta, timezone

import pytest

from dashboard.views import Names, diff, ops_view, rule_for, wall_view
from indicators.alerts import RANK
from indicators.feeds.simulator import Faults, simulate
from indicators.service import Service, ServiceConfig
from indicators.snapshot import FeedFreshness

START = datetime(2026, 10, 1, 19, 0, tzinfo=timezone(timedelta(hours=8)))
CODE = re.compile(r"\b[a-z]+(?:_[a-z0-9]+)+\b|\b[a-z]+\.[a-z_]+[.:=@][\w.:=@-]*")


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    """A National Day evening: 40 simulated minutes through the real service (warm-up included)."""
    published = []
    cfg = ServiceConfig(var=tmp_path_factory.mktemp("var"), scenario="national-day", speed=60, simulate=False)
    s = Service(cfg, publish=published.append)
    s.sim_clock.set(START)
    for batch in simulate("national-day", START, timedelta(minutes=40), 3, faults=Faults.off()):
        s.sim_clock.set(batch.arrival)
        s.ingestor.submit(batch.kind, batch.payload, source="test")
        s.step()
    s.step()
    snap = published[-1]
    names = Names.build(s.inventory, __import__("twin_assets.inventory", fromlist=["frame"]).frame(),
                        s.alerts.case_cfg, s.alerts.plan_defs, classes=s.catalog.dims.classes,
                        compound=s.alerts.compound)
    yield s, snap, names
    s.alert_store.close()


def shown_texts(model, lang):
    """Every string a page puts on screen in ``lang`` (wall.js shows the *_zh / *_en fields, names, whys)."""
    out = []

    def walk(o, key=""):
        if isinstance(o, dict):
            for k, v in o.items():
                walk(v, k)
        elif isinstance(o, list):
            for v in o:
                walk(v, key)
        elif isinstance(o, str):
            if key == lang or key.endswith("_" + lang) or key in ("since", "asof", "now", "due", "opened", "headline"):
                out.append(o)
    walk(model)
    return out


def test_the_evening_raises_alerts_to_look_at(world):
    _, snap, _ = world
    assert any(a.status == "firing" for a in snap.alerts)


def test_zone_colour_is_the_zone_alert_tier(world):
    _, snap, names = world
    view = wall_view(snap, names)
    expected: dict[str, str] = {}
    for st in snap.alerts:                         # computed here from the alert states, independently
        if st.status not in ("firing", "recovering") or not st.tier:
            continue
        rule = snap.rules.get(st.rule_id)
        if rule is None or not rule.family.startswith(("crowd.", "walk.")):
            continue
        z = dict(rule.labels).get("zone")
        if z and RANK[st.tier] > RANK.get(expected.get(z, ""), 0):
            expected[z] = st.tier
    assert expected, "no zone alert on a National Day evening?"
    for zid, z in view["zones"].items():
        assert z["tier"] == expected.get(zid, "none"), zid


def test_an_acknowledged_alert_still_colours_its_zone_and_a_resolved_one_does_not(world):
    _, snap, names = world
    st = next(a for a in snap.alerts if a.status == "firing" and a.tier
              and snap.rules.get(a.rule_id) is not None and snap.rules[a.rule_id].family.startswith("crowd.")
              and dict(snap.rules[a.rule_id].labels).get("zone"))
    zone = dict(snap.rules[st.rule_id].labels)["zone"]
    others = tuple(a for a in snap.alerts if a is not st and not (
        snap.rules.get(a.rule_id) is not None and dict(snap.rules[a.rule_id].labels).get("zone") == zone))
    acked = replace(snap, alerts=others + (replace(st, acked_by="op1"),))
    assert wall_view(acked, names)["zones"][zone]["tier"] == st.tier
    resolved = replace(snap, alerts=others + (replace(st, status="resolved"),))
    assert wall_view(resolved, names)["zones"][zone]["tier"] == "none"


@pytest.mark.parametrize("lang", ["zh", "en"])
def test_no_raw_code_reaches_the_screen(world, lang):
    _, snap, names = world
    for view in (wall_view(snap, names), ops_view(snap, names)):
        texts = shown_texts(view, lang)
        assert len(texts) > 50
        codes = sorted({m for t in texts for m in CODE.findall(t)})
        assert codes == [], codes[:20]
        if lang == "en":
            cjk = [t for t in texts if re.search(r"[\u4e00-\u9fff]", t)]
            # place names and case places come from Chinese sources; everything else speaks English
            assert len(cjk) < len(texts) / 4, cjk[:10]


def test_alerts_red_first_with_the_numbers_that_fired(world):
    _, snap, names = world
    items = wall_view(snap, names)["alerts"]
    ranks = [RANK.get(a["tier"], 0) for a in items]
    assert ranks == sorted(ranks, reverse=True)
    by_id = {a.alert_id: a for a in snap.alerts}
    checked = 0
    for a in items:
        st = by_id[a["id"]]
        rule = rule_for(snap, st.rule_id, names)
        if st.threshold is None or getattr(rule, "family", "") == "compound" or st.rule_id.startswith("forecast:"):
            continue                # composite: no value; forecast: its value and threshold are tier ranks
        thr = f"{st.threshold:,.0f}" if abs(st.threshold) >= 1000 else f"{st.threshold:.4g}"
        assert thr in a["why_zh"], (a["why_zh"], st.threshold)
        assert a["since"] and re.fullmatch(r"\d\d:\d\d", a["since"])
        checked += 1
    assert checked > 0


def test_a_feed_past_its_limit_is_marked_stale_and_a_fresh_one_is_not(world):
    _, snap, names = world
    feeds = dict(snap.feeds)
    feeds["weather"] = FeedFreshness("weather", snap.now, snap.now, 1800.0, 4000.0)
    feeds["crowd"] = FeedFreshness("crowd", snap.now, snap.now, 180.0, 10.0)
    view = wall_view(replace(snap, feeds=feeds), names)
    kinds = {f["kind"] for f in view["stale_feeds"]}
    assert "weather" in kinds and "crowd" not in kinds


def test_case_board_counts_match_the_cases(world):
    _, snap, names = world
    board = wall_view(snap, names)["cases"]
    assert sum(s["count"] for s in board) == len(snap.cases)


def test_the_view_is_json_and_a_push_carries_only_what_changed(world):
    _, snap, names = world
    a = wall_view(snap, names)
    text = json.dumps(a, ensure_ascii=False)                  # what the push sends
    assert json.dumps(wall_view(snap, names), ensure_ascii=False) == text      # deterministic
    later = replace(snap, version=snap.version + 1, feeds={**snap.feeds, "weather": FeedFreshness(
        "weather", snap.now, snap.now, 1800.0, 99999.0)})
    changed = diff(a, wall_view(later, names))
    assert "stale_feeds" in changed and "zones" not in changed and "alerts" not in changed
