"""Presenters (dashboard/views.py) without a browser: what the wall and the console show.

Real snapshots come from the real service fed by the simulator for a simulated
hour of National Day (alerts fire, cases open, a plan runs); edge cases are the
same snapshots changed with ``dataclasses.replace``.  Expectations are computed
from the snapshot itself, not with the presenters' own helpers.
"""
from __future__ import annotations

import json
import math
import re
from dataclasses import dataclass, replace
from datetime import datetime, timedelta, timezone
from zoneinfo import ZoneInfo

import pytest

from dashboard import views as V
from indicators.alerts.rationale import default_rationale
from dashboard.live import ViewCache
from dashboard.views import Names, alert_item, ops_view, rule_for, wall_view
from indicators.alerts import TIER_ZH
from indicators.alerts.compound import WarningSignal
from indicators.alerts.state import AlertState
from indicators.feeds.simulator import Faults, simulate
from indicators.pipeline import zone_indicator
from indicators.service import Service, ServiceConfig
from indicators.snapshot import FeedFreshness, feed_limit_s
from twin_assets import inventory as inv

START = datetime(2026, 10, 1, 11, 0, tzinfo=timezone(timedelta(hours=8)))   # National Day, late morning
SHANGHAI = ZoneInfo("Asia/Shanghai")
ORDER = ("none", "blue", "yellow", "orange", "red")     # tiers, lowest first (ours, not the presenters')
ZONE_FAMILIES = ("crowd", "walk")                       # the family prefixes that colour a zone
CJK = re.compile(r"[\u3000-\u303f\u3400-\u9fff\uff00-\uffef]")
CODE_PATTERNS = {
    "snake_case id": re.compile(r"[a-z]+_[a-z_]+"),
    "dotted id": re.compile(r"[a-z]+\.[a-z]"),
    "prefixed id": re.compile(r"[a-z]:[a-z]"),
    "id punctuation": re.compile(r"[=@|{}\[\]]"),
}
ENUMS = {"firing", "pending", "recovering", "resolved", "no_data", "error", "normal", "none", "nodata",
         "blue", "yellow", "orange", "red", "white", "open", "dispatched", "handling", "verifying", "verified",
         "closed", "urgent", "high", "low", "ok", "stale", "available", "true", "false", "null"}
SI_SYMBOLS = {"km/h", "m/s", "°C", "mm", "m", "%", "MPa", "W"}
TIME = re.compile(r"^(—|\d\d:\d\d|\d{4}-\d\d-\d\d \d\d:\d\d:\d\d)$")


def _close(parsed: float, x: float) -> bool:
    """``parsed`` is ``x`` as the sentence prints it (integers from 1,000, else 4 significant digits)."""
    return math.isclose(parsed, x, rel_tol=6e-4, abs_tol=0.5 if abs(x) >= 1000 else 5e-5)


# --------------------------------------------------------------------------- the world
@dataclass
class World:
    service: Service
    snap: object
    names: Names
    acked: AlertState          # a firing crowd alert acknowledged by 张三


def _feed(service: Service, start: datetime, minutes: int) -> None:
    for batch in simulate("national-day", start, timedelta(minutes=minutes), 7, faults=Faults.off()):
        service.sim_clock.set(batch.arrival)
        service.ingestor.submit(batch.kind, batch.payload, source="test")


@pytest.fixture(scope="module")
def world(tmp_path_factory) -> World:
    cfg = ServiceConfig(var=tmp_path_factory.mktemp("views"), scenario="national-day", speed=60, simulate=False,
                        alerts_warmup=timedelta(minutes=5))
    s = Service(cfg)
    s.sim_clock.set(START)
    for m in range(0, 60, 10):
        _feed(s, START + timedelta(minutes=m), 10)
        s.step()
    snap = s.snapshot
    crowd = [a for a in snap.alerts if a.status == "firing" and a.rule_id in snap.rules
             and snap.rules[a.rule_id].family.startswith("crowd.")]
    assert crowd, "a National Day hour fires crowd alerts"
    acked = s.acknowledge(crowd[0].alert_id, by="张三", comment="收到")
    s.report(request_id="r1", category="litter", by="patrol1", description="地面垃圾", zone_id="west_plaza")
    c2 = s.report(request_id="r2", category="medical", by="patrol1", description="游客不适", zone_id="tower_base")
    s.case_step(c2.case_id, "dispatch", by="op1")
    s.act("op1", "plan.activate", "plan", "crowd_core",
          lambda: s.alerts.activate_plan("crowd_core", "III", by="op1"))
    rt = s.alerts
    names = Names.build(s.inventory, inv.frame(), rt.case_cfg, rt.plan_defs,
                        classes=s.catalog.dims.classes, compound=rt.compound)
    yield World(s, s.snapshot, names, acked)
    s.alert_store.close()
    s.dead.close()
    if hasattr(s.feed_log, "close"):
        s.feed_log.close()


def _rules_of(snap, family_prefix: str, zone: str | None = None):
    return [r for r in snap.rules.values() if r.family.startswith(family_prefix)
            and (zone is None or dict(r.labels).get("zone") == zone)]


def _state(rule, status="firing", tier="orange", threshold=None, value=None, at=None, **kw) -> AlertState:
    at = at or datetime(2026, 10, 1, 3, 30, tzinfo=timezone.utc)
    t = rule.tier(tier, at) if tier else None
    thr = threshold if threshold is not None else (t.threshold if t else None)
    val = value if value is not None else (None if thr is None else thr * 1.07 + 1)
    return AlertState(rule_id=rule.id, alert_id=f"{rule.id}||test-{tier}-{status}", status=status, tier=tier,
                      threshold=thr, direction=rule.direction, started_at=at, fired_at=at + timedelta(minutes=2),
                      status_since=at, last_eval_at=at + timedelta(minutes=9), last_value=val,
                      evidence=((at + timedelta(minutes=9), val),) if val is not None else (), **kw)


def _forecast_state(snap, base, tier="yellow", predicted=None, lead_min=12) -> AlertState:
    """A forecast alert as the runtime makes it: its value and threshold are tier ranks (blue 1 …
    red 4), the load it predicts and the threshold it heads for are in its details."""
    rank = float(ORDER.index(tier))
    thr = base.tier(tier, snap.now).threshold
    predicted = thr + 2.5 if predicted is None else predicted
    zone = dict(base.labels)["zone"]
    at = snap.now - timedelta(minutes=4)
    return AlertState(rule_id=f"forecast:{base.id}", alert_id=f"forecast:{base.id}||t", status="firing", tier=tier,
                      threshold=rank, started_at=at, fired_at=at, last_eval_at=snap.now, last_value=rank,
                      evidence=((at, rank),),
                      details={"zone": zone, "tier": tier, "lead_min": lead_min, "threshold": thr,
                               "predicted": predicted, "sentence_zh": f"约{lead_min}分钟后达到{TIER_ZH[tier]}",
                               "sentence_en": f"{tier} in about {lead_min} minutes"})


# --------------------------------------------------------------------------- 1 zone colour
def expected_zone_tiers(snap) -> dict[str, str]:
    """Highest tier of the firing (or, by hysteresis, recovering) crowd/walk alerts per zone."""
    out: dict[str, str] = {}
    for st in snap.alerts:
        if st.status not in ("firing", "recovering") or st.tier not in ORDER:
            continue
        rule = snap.rules.get(st.rule_id)
        if rule is None or rule.family.split(".")[0] not in ZONE_FAMILIES:
            continue
        z = dict(rule.labels).get("zone")
        if z and ORDER.index(st.tier) > ORDER.index(out.get(z, "none")):
            out[z] = st.tier
    return out


def test_zone_colour_is_the_highest_tier_of_its_firing_crowd_alerts(world):
    snap, names = world.snap, world.names
    wall = wall_view(snap, names)
    expected = expected_zone_tiers(snap)
    assert set(wall["zones"]) == set(names.zones) and len(names.zones) == 17
    assert expected and set(names.zones) - set(expected), "the hour has zones with and without alerts"
    for zid, z in wall["zones"].items():
        tier = expected.get(zid, "none")
        assert z["tier"] == tier, zid
        if z["load"] is not None:
            assert z["color"] == V.TIER_RGBA[tier], zid
        assert (z["color"] != V.TIER_RGBA["none"]) == (tier != "none" or z["load"] is None), zid


def test_acknowledged_alert_still_colours_its_zone_resolved_or_pending_does_not(world):
    snap, names = world.snap, world.names
    zone = "west_plaza"
    rule = next(r for r in _rules_of(snap, "crowd.load_rate", zone) if r.family == "crowd.load_rate")
    other = next(r for r in _rules_of(snap, "walk.") if dict(r.labels).get("zone") not in (None, zone))
    cases = [
        ((_state(rule, tier="orange", acked_by="张三", acked_at=snap.now),), {zone: "orange"}),
        ((_state(rule, status="recovering", tier="yellow"),), {zone: "yellow"}),
        ((_state(rule, status="resolved", tier="red"),), {}),
        ((_state(rule, status="pending", tier="red"),), {}),
        ((_state(rule, status="firing", tier="blue"), _state(rule, status="firing", tier="red"),
          _state(other, status="firing", tier="yellow")), {zone: "red", dict(other.labels)["zone"]: "yellow"}),
    ]
    for alerts, want in cases:
        wall = wall_view(replace(snap, alerts=alerts), names)
        got = {z: v["tier"] for z, v in wall["zones"].items() if v["tier"] != "none"}
        assert got == want, [(a.status, a.tier, a.acked_by) for a in alerts]


def test_a_forecast_or_a_non_crowd_alert_with_a_zone_does_not_colour_it(world):
    snap, names = world.snap, world.names
    base = next(r for r in _rules_of(snap, "crowd.load_rate", "tower_base") if r.family == "crowd.load_rate")
    fc = _forecast_state(snap, base, tier="red")
    video = next(r for r in snap.rules.values() if r.family.startswith("video.") and dict(r.labels).get("zone"))
    wall = wall_view(replace(snap, alerts=(fc, _state(video, tier=video.tiers[-1].name))), names)
    assert all(z["tier"] == "none" for z in wall["zones"].values())


# --------------------------------------------------------------------------- 2 no raw codes on screen
def displayed(wall: dict, ops: dict):
    """(where, kind, text) of every view-model string wall.js puts on screen as text.

    kind: "zh"/"en" (a label in that language), "time", "num", "user" (a person's name as typed),
    "feed" (third-party text, shown as is), "unit_zh"/"unit_en" (a unit: words or an SI symbol).  Keys, ids, tiers and statuses used as classes or
    lookups (tier, status, stage key, family id, zone id, kind) are not text and are not listed.
    """
    out = []

    def pair(where, o, base=""):
        for lang in ("zh", "en"):
            out.append((f"{where}.{base}{lang}", lang, o.get(base + lang)))

    out.append(("wall.asof", "time", wall["asof"]))
    for i, f in enumerate(wall["stale_feeds"]):
        pair(f"wall.stale_feeds[{i}]", f)
    if wall["warning"]:
        pair("wall.warning", wall["warning"])
        out.append(("wall.warning.headline", "feed", wall["warning"]["headline"]))
    for i, g in enumerate(wall["kpis"]):
        pair(f"wall.kpis[{i}]", g)
        for j, it in enumerate(g["items"]):
            pair(f"wall.kpis[{i}].items[{j}]", it)
            out.append((f"wall.kpis[{i}].items[{j}].value", "num", it["value"]))
            for lang in ("zh", "en"):      # a unit may be empty (a percentage carries its own sign)
                if it[f"unit_{lang}"]:
                    out.append((f"wall.kpis[{i}].items[{j}].unit_{lang}", f"unit_{lang}", it[f"unit_{lang}"]))
    for view, items in (("wall", wall["alerts"]), ("ops", ops["alerts"])):
        for i, a in enumerate(items):
            w = f"{view}.alerts[{i}]<{a['id']}>"
            pair(w, a, "place_")
            pair(w, a, "why_")
            if view == "wall":
                pair(w, a, "title_")
                if a["status"] != "firing":
                    pair(w, a, "status_")
            out.append((f"{w}.since", "time", a["since"]))
            out.append((f"{w}.acked_by", "user", a["acked_by"]))
            if view == "ops":
                out.append((f"{w}.assignee", "user", a["assignee"]))
    for view, plans in (("wall", wall["plans"]), ("ops", ops["plans"])):
        for i, p in enumerate(plans):
            pair(f"{view}.plans[{i}]", p)
            for j, s in enumerate(p["steps"]):
                pair(f"{view}.plans[{i}].steps[{j}]", s)
                pair(f"{view}.plans[{i}].steps[{j}]", s, "dept_")
                out.append((f"{view}.plans[{i}].steps[{j}].due", "time", s["due"]))
    for i, st in enumerate(wall["cases"]):
        pair(f"wall.cases[{i}]", st)
        for j, c in enumerate(st["items"]):
            pair(f"wall.cases[{i}].items[{j}]", c)
            pair(f"wall.cases[{i}].items[{j}]", c, "place_")
    for i, c in enumerate(ops["cases"]):
        pair(f"ops.cases[{i}]", c)
        pair(f"ops.cases[{i}]", c, "place_")
        out.append((f"ops.cases[{i}].opened", "time", c["opened"]))
        out.append((f"ops.cases[{i}].assignee", "user", c["assignee"]))
        for j, a in enumerate(c["actions"]):
            pair(f"ops.cases[{i}].actions[{j}]", a)
    for i, m in enumerate(wall["markers"]):
        pair(f"wall.markers[{i}]", m)
    for key in ("families", "zones"):
        for i, f in enumerate(ops[key]):
            pair(f"ops.{key}[{i}]", f)
    return out


def _codes(world) -> set[str]:
    """Every internal identifier that could leak: rule and indicator ids, departments, categories,
    plans, zones, assets, feed kinds, KPI keys, family prefixes, stage and action keys."""
    snap, names = world.snap, world.names
    codes = set(snap.rules) | {r.indicator_id for r in snap.rules.values()} | {r.family for r in snap.rules.values()}
    codes |= set(names.departments) | set(names.categories) | set(names.plans) | set(names.zones)
    codes |= set(names.assets) | set(snap.feeds) | set(snap.trends) | {k for k, _ in V.CASE_STAGES}
    codes |= set(V.ACTION_NAMES) | set(V.FAMILY_NAMES) | set(V.SIGNAL_NAMES) | {a.alert_id for a in snap.alerts}
    return codes


def _rich(world):
    """The real snapshot plus what the hour did not bring: a weather warning, a compound alert,
    a forecast alert, a stale feed, an acknowledged and assigned alert."""
    snap, names = world.snap, world.names
    extra = []
    base = next(r for r in _rules_of(snap, "crowd.load_rate", "tower_base") if r.family == "crowd.load_rate")
    extra.append(replace(_forecast_state(snap, base, tier="orange"), assignee="李四"))
    if names.compound:
        cid = next(iter(names.compound))
        extra.append(AlertState(rule_id=cid, alert_id=f"{cid}||t", status="firing", tier="red",
                                started_at=snap.now - timedelta(minutes=12)))
    warning = WarningSignal(signal="rainstorm", colour="yellow", issued_at=snap.now - timedelta(minutes=30),
                            headline="广州市气象台发布暴雨黄色预警信号")
    feeds = dict(snap.feeds)
    feeds["weather"] = replace(feeds["weather"], age_s=3600.0)
    return replace(snap, alerts=tuple(extra) + tuple(snap.alerts), warnings={"rainstorm": warning}, feeds=feeds)


def test_no_internal_code_reaches_the_screen_in_either_language(world):
    names = world.names
    codes = _codes(world)
    problems = []
    for snap in (world.snap, _rich(world)):
        texts = displayed(wall_view(snap, names), ops_view(snap, names))
        assert len(texts) > 500
        for where, kind, text in texts:
            if kind in ("user", "feed"):
                assert text is None or isinstance(text, str), where
                continue
            if kind == "time":
                if not TIME.match(text or ""):
                    problems.append((where, "not a time", text))
                continue
            if not isinstance(text, str) or not text.strip():
                problems.append((where, "empty", text))
                continue
            if kind == "num":
                if not re.fullmatch(r"—|-?[\d,]+(\.\d+)?%?", text):
                    problems.append((where, "not a number", text))
                continue
            if kind.startswith("unit_"):
                lang = kind[5:]
                if lang == "zh" and not (CJK.search(text) or text in SI_SYMBOLS):
                    problems.append((where, "unit neither Chinese nor a symbol", text))
                if lang == "en" and CJK.search(text):
                    problems.append((where, "Chinese in the English unit", text))
                continue
            for what, pat in CODE_PATTERNS.items():
                if pat.search(text):
                    problems.append((where, what, text))
            if text.strip() in codes or (kind == "zh" and text.strip().lower() in ENUMS):
                problems.append((where, "bare code", text))
            if kind == "en" and CJK.search(text):
                problems.append((where, "Chinese in the English text", text))
            if kind == "zh" and not CJK.search(text):
                problems.append((where, "no Chinese in the Chinese text", text))
            words = [w for w in re.findall(r"[A-Za-z]{3,}", text) if not re.fullmatch(r"[IVX]+", w)]
            if kind == "zh" and words:      # roman tier levels (III级) and unit symbols (m/s) are fine
                problems.append((where, "English words in the Chinese text", text))
    assert not problems, "\n".join(map(repr, problems[:30]))


def test_a_raw_code_planted_in_a_name_is_caught(world):
    """The check above can fail: a rule whose name is missing shows its id, and that is caught."""
    snap, names = world.snap, world.names
    shown = {i["id"] for i in wall_view(snap, names)["alerts"]}
    st = next(a for a in snap.alerts if a.status == "firing" and a.rule_id in snap.rules and a.alert_id in shown)
    rules = dict(snap.rules)
    rules[st.rule_id] = replace(rules[st.rule_id], name_en="", name_zh="")
    texts = displayed(wall_view(replace(snap, rules=rules), names), ops_view(snap, names))
    leaked = [t for w, k, t in texts if k in ("zh", "en") and CODE_PATTERNS["dotted id"].search(t or "")]
    assert leaked, "a nameless rule must show up as a leak (else the check above proves nothing)"


def test_a_degraded_component_is_named_in_words_of_both_languages(world):
    snap = replace(world.snap, health={"engine": {"ok": False, "reason": ""},
                                       "simulator": {"ok": False, "reason": "simulator thread stopped"}})
    degraded = wall_view(snap, world.names)["degraded"]
    assert len(degraded) == 2
    for d in degraded:
        assert CJK.search(d.get("zh", "")) and d.get("en") and not CODE_PATTERNS["snake_case id"].search(d["en"])


# --------------------------------------------------------------------------- 3 the alert list
def _profile_threshold(rule, st) -> float:
    tiers = next((p.tiers for p in rule.profiles if p.name == st.profile), rule.tiers)
    return next(t.threshold for t in tiers if t.name == st.tier)


NUM = r"(-?\d+(?:,\d{3})*(?:\.\d+)?)"


def _numbers(s: str) -> list[float]:
    return [float(x.replace(",", "")) for x in re.findall(NUM, s)]


def test_alert_list_is_ordered_by_tier_then_newest_first(world):
    from indicators.alerts.rationale import default_rationale
    """One line per incident (it ranks by its most severe, then newest alert) or alert of its own,
    the worst first; the lines shown are the most severe ones."""
    snap, names = world.snap, world.names
    rank = {t: i for i, t in enumerate(ORDER)}
    severity = (lambda a: (-rank.get(a.tier or "none", 0), -a.started_at.timestamp()))
    # and a busier hour than the fixture's (its own alerts again under other ids: more lines than shown)
    busy = replace(snap, alerts=snap.alerts + tuple(replace(a, alert_id=f"{a.alert_id}~{k}") for k in range(12)
                                                    for a in snap.alerts if a.status == "firing"))
    cut = 0
    for s in (snap, replace(snap, alerts=tuple(reversed(snap.alerts))), busy):    # whatever order the snapshot has
        wanted = [a for a in s.alerts if a.status in ("firing", "recovering", "no_data", "error")
                  and not (a.tier in rank and a.status in ("firing", "recovering")
                           and default_rationale().is_log_only(a.rule_id, a.tier))]    # the log's, not the wall's
        groups: dict[str, list] = {}
        for a in wanted:
            groups.setdefault(s.incidents.get(a.alert_id) or a.alert_id, []).append(a)
        line_of = {a.alert_id: g for g in groups.values() for a in g}
        items = wall_view(s, names)["alerts"]
        assert len(items) == min(V.ALERTS_SHOWN, len(groups))
        cut += len(groups) > V.ALERTS_SHOWN
        keys = [min(map(severity, line_of[i["id"]])) for i in items]
        assert keys == sorted(keys), [(i["tier"], i["since"]) for i in items]
        for i in items:              # a line's colour is its incident's worst tier
            assert rank[i["tier"]] == max(rank.get(a.tier or "none", 0) for a in line_of[i["id"]]), i["id"]
            assert i["members"] == len(line_of[i["id"]]) - 1
        assert rank[items[0]["tier"]] == max(rank.get(a.tier or "none", 0) for a in wanted)      # the worst first
        top = sorted(min(map(severity, g)) for g in groups.values())
        # the most severe lines are the ones shown (lines of the same tier and start may stand in for each other)
        assert keys == top[:V.ALERTS_SHOWN]
    assert cut, "no snapshot had more lines than the wall shows"
    # an incident of a newer severe alert and an older milder one: one line, headed by the older (the
    # likely root cause), in the severe one's colour and where the severe one ranks
    # (one of the fixture's listed alerts made newer and orange: the others are blue and of one age)
    shown = wall_view(snap, names)["alerts"]
    a0 = next(a for a in snap.alerts if a.alert_id == shown[-1]["id"])
    later = timedelta(minutes=5)
    severe = replace(a0, tier="orange", started_at=a0.started_at + later, fired_at=(a0.fired_at or a0.started_at) + later,
                     tier_since=(a0.tier_since or a0.started_at) + later)
    base = replace(snap, alerts=tuple(severe if a is a0 else a for a in snap.alerts))
    items = wall_view(base, names)["alerts"]
    first = next(i for i in items if not i["members"])
    older = next(i for i in items[1:] if not i["members"] and rank[i["tier"]] < rank[first["tier"]]
                 and i["minutes"] > first["minutes"])
    s = replace(base, incidents={first["id"]: "x/crowd", older["id"]: "x/crowd"})
    got = wall_view(s, names)["alerts"]
    line = next(i for i in got if i["id"] == older["id"])
    assert got.index(line) == items.index(first) and first["id"] not in {i["id"] for i in got}
    assert (line["members"], line["tier"], line["own_tier"]) == (1, first["tier"], older["tier"])


def test_each_alert_says_where_why_with_its_numbers_since_when_and_who_acknowledged(world):
    snap, names = world.snap, world.names
    wall = wall_view(snap, names)
    items = {i["id"]: i for i in ops_view(snap, names)["alerts"]}
    checked = 0
    for st in snap.alerts:
        item = items[st.alert_id]
        rule = rule_for(snap, st.rule_id, names)
        # since when: local Guangzhou time of the firing (else the start)
        since = (st.fired_at or st.started_at).astimezone(SHANGHAI).strftime("%H:%M")
        assert item["since"] == since, st.alert_id
        assert item["acked_by"] == st.acked_by
        assert item["place_zh"] and item["place_en"]
        zone = dict(rule.labels).get("zone") if rule is not None else None
        if zone and not any(k in dict(rule.labels) for k in ("asset", "camera", "gate", "station", "stop", "segment")):
            assert (item["place_zh"], item["place_en"]) == names.zones[zone], st.alert_id
        if st.tier is None or st.threshold is None or rule is None:
            continue
        if rule.family == "compound":               # no value of its own: its conditions hold, since when
            assert "持续" in item["why_zh"] or "条件" in item["why_zh"], item["why_zh"]
            continue
        if st.rule_id.startswith("forecast:"):     # its numbers are the predicted load and its threshold
            d = st.details
            for lang in ("zh", "en"):
                nums = _numbers(item[f"why_{lang}"].split("：" if lang == "zh" else ": ", 1)[1])
                assert nums[0] == d["lead_min"] and _close(nums[1], d["predicted"]) \
                    and _close(nums[2], d["threshold"]), item[f"why_{lang}"]
            checked += 1
            continue
        # why: the numbers are the alert's own value(s) and the threshold of the tier that fired
        assert st.threshold == pytest.approx(_profile_threshold(rule, st)), (st, rule)
        vals = [v for _, v in st.evidence]
        for lang, words in (("zh", ("阈值", "当前")), ("en", ("threshold", "now "))):
            why = item[f"why_{lang}"]
            assert (rule.name_zh if lang == "zh" else rule.name_en) in why
            head, op, tail = re.split(r"\s*([≥≤])\s*", why.split("：" if lang == "zh" else ": ", 1)[1])[:3]
            assert op == ("≥" if st.direction == "above" else "≤")
            assert _close(_numbers(tail)[0], st.threshold), (why, st.threshold)
            shown = _numbers(head)
            if words[1] in head:                    # "now X": the value at the last evaluation
                assert len(shown) == 1 and _close(shown[0], st.last_value), (why, st.last_value)
            else:                                   # the values over the pending period, lo–hi
                assert _close(shown[0], min(vals)) and _close(shown[-1], max(vals)), (why, vals)
        checked += 1
    assert checked >= 20
    acked = items[world.acked.alert_id]        # the console lists every alert (the wall only the top ones)
    assert acked["acked_by"] == "张三"
    assert sum(1 for i in items.values() if i["acked_by"]) == 1


def test_hand_made_alert_reads_value_against_threshold(world):
    snap, names = world.snap, world.names
    rule = next(r for r in _rules_of(snap, "crowd.load_rate", "haixin_bridge") if r.family == "crowd.load_rate")
    at = datetime(2026, 10, 1, 16, 5, tzinfo=timezone.utc)       # 00:05 on 2 October in Guangzhou
    st = _state(rule, tier="red", threshold=93.5, value=97.25, at=at, acked_by="王五")
    item = alert_item(st, rule, names, at + timedelta(minutes=30))
    assert item["since"] == "00:07"                              # fired two minutes after it started
    assert item["acked_by"] == "王五" and item["tier"] == "red" and item["level"] == "I"
    assert (item["place_zh"], item["place_en"]) == names.zones["haixin_bridge"]
    assert "97.25" in item["why_en"] and "93.5" in item["why_en"] and "≥" in item["why_en"]
    assert "97.25" in item["why_zh"] and "93.5" in item["why_zh"] and "红色" in item["why_zh"]
    assert item["minutes"] == 28


# --------------------------------------------------------------------------- 4 stale feeds
def test_a_feed_older_than_its_limit_is_marked_stale_and_so_are_its_values(world):
    snap, names = world.snap, world.names
    wall = wall_view(snap, names)
    assert wall["stale_feeds"] == [] and not any(z["stale"] for z in wall["zones"].values()), \
        "in the running hour every feed is fresh"
    feeds = dict(snap.feeds)
    limit = feed_limit_s("crowd")
    feeds["crowd"] = replace(feeds["crowd"], age_s=limit + 1)              # just past its limit
    feeds["weather"] = replace(feeds["weather"], age_s=feed_limit_s("weather") - 1)   # just within
    feeds["video"] = replace(feeds["video"], age_s=86_400.0)                # event-driven: never stale
    feeds["bus"] = FeedFreshness("bus", None, None, feed_limit_s("bus"), None)   # never heard from
    wall = wall_view(replace(snap, feeds=feeds), names)
    stale = {f["kind"]: f for f in wall["stale_feeds"]}
    assert set(stale) == {"crowd", "bus"}
    assert stale["crowd"]["minutes"] == int((limit + 1) // 60) and stale["bus"]["minutes"] is None
    assert CJK.search(stale["crowd"]["zh"]) and stale["crowd"]["en"] == "Crowd"
    # the zone loads come from the crowd feed: all of them are marked stale (grey label)
    assert all(z["stale"] for z in wall["zones"].values() if z["load"] is not None)
    assert any(z["load"] is not None for z in wall["zones"].values())


def test_a_stale_value_is_marked_even_when_its_feed_is_fresh(world):
    snap, names = world.snap, world.names
    iid = zone_indicator("crowd.load_rate", "west_plaza")
    values = dict(snap.values)
    values[iid] = (values[iid][0], "stale")
    zones = wall_view(replace(snap, values=values), names)["zones"]
    assert zones["west_plaza"]["stale"] and not zones["tower_base"]["stale"]
    values[iid] = (None, "no_data")
    zones = wall_view(replace(snap, values=values), names)["zones"]
    assert zones["west_plaza"]["load"] is None and zones["west_plaza"]["color"] == V.TIER_RGBA["nodata"]


# --------------------------------------------------------------------------- 5 the case board
STAGE_OF = {"open": "open", "dispatched": "dispatch", "handling": "handle", "verifying": "verify",
            "verified": "verify", "closed": "close"}


def test_case_board_groups_cases_by_stage_with_true_counts(world):
    snap, names = world.snap, world.names
    assert snap.cases
    base = snap.cases[0]
    made = [replace(base, case_id=f"t-{status}-{i}", status=status)
            for status, n in (("handling", 2), ("verifying", 1), ("verified", 2), ("closed", 9), ("open", 7))
            for i in range(n)]
    for s in (snap, replace(snap, cases=snap.cases + tuple(made))):
        board = wall_view(s, names)["cases"]
        assert [st["key"] for st in board] == ["open", "dispatch", "handle", "verify", "close"]
        assert [st["zh"] for st in board] == ["立案", "派遣", "处置", "核查", "结案"]
        for st in board:
            mine = [c for c in s.cases if STAGE_OF[c.status] == st["key"]]
            assert st["count"] == len(mine), st["key"]
            # the most recently moved first (what the dispatcher just did shows at once)
            moved = sorted(mine, key=lambda c: -(c.closed_at or c.step_started_at or c.opened_at).timestamp())
            assert [i["id"] for i in st["items"]] == [c.case_id for c in moved[:V.CASES_PER_STAGE]], st["key"]
        assert sum(st["count"] for st in board) == len(s.cases)
    ops = ops_view(replace(snap, cases=tuple(made)), names)
    assert sorted(c["id"] for c in ops["cases"]) == sorted(c.case_id for c in made)
    assert [c["stage"] for c in ops["cases"]][-9:] == ["close"] * 9            # the recently closed last
    assert all(c["actions"] == [] for c in ops["cases"] if c["stage"] == "close")
    assert ops["cases_total"] == len(made) and ops["cases_open"] == len(made) - 9


def test_a_case_type_reads_as_a_label_in_english(world):
    """The case categories' English phrases are written for sentences ("a crowd building up");
    a case row, an alert's qualifier and the patrol's report form show them as labels."""
    snap, names = world.snap, world.names
    assert len(names.categories) >= 5
    for key, (zh, en) in names.categories.items():
        assert zh and en[:1].isupper() and not re.match(r"(a|an|the) ", en, re.I), (key, en)
    crowd = replace(snap.cases[0], case_id="t-crowd", category="crowd_safety")
    item = next(c for c in ops_view(replace(snap, cases=(crowd,)), names)["cases"] if c["id"] == "t-crowd")
    assert (item["zh"], item["en"]) == ("人员聚集", "Crowd building up")


def test_the_console_lists_a_backlog_overdue_first_and_says_how_many_it_leaves_out(world):
    """Hundreds of open cases (a busy holiday; nobody closing them in a soak): the console lists
    200 - the 50 most recently moved always (a report just in must be there to dispatch), every
    overdue one (the longest overdue first), then the open ones by priority, newest first, the
    closed last - and says how many it does not list."""
    snap, names = world.snap, world.names
    base, now = snap.cases[0], snap.now
    m = timedelta(minutes=1)

    def case(cid, status, opened, **kw):
        return replace(base, case_id=cid, status=status, opened_at=opened, step_started_at=opened, **kw)
    made = ([case(f"late-{i}", "dispatched", now - 90 * m, due_at=now - (i + 1) * m) for i in range(30)]
            + [case(f"new-urgent-{i}", "open", now - (i + 1) * m, priority="urgent", due_at=now + 60 * m)
               for i in range(200)]
            + [case(f"new-normal-{i}", "open", now - (i + 1.5) * m, priority="normal", due_at=now + 60 * m)
               for i in range(200)]
            + [case(f"done-{i}", "closed", now - 600 * m, closed_at=now - 500 * m) for i in range(5)])
    ops = ops_view(replace(snap, cases=tuple(made)), names)
    got = [c["id"] for c in ops["cases"]]
    assert len(got) == V.OPS_CASES == 200
    assert got[:30] == [f"late-{i}" for i in range(29, -1, -1)]                # every overdue one, longest first
    assert all(c["overdue"] for c in ops["cases"][:30])
    # the 50 most recently moved (25 urgent, 25 normal), and the rest filled up by priority
    assert got[30:175] == [f"new-urgent-{i}" for i in range(145)]
    assert got[175:] == [f"new-normal-{i}" for i in range(25)]
    assert ops["cases_total"] == 435 and ops["cases_open"] == 430
    small = ops_view(replace(snap, cases=tuple(made[:30] + made[-5:])), names)
    assert [c["id"] for c in small["cases"]] == [f"late-{i}" for i in range(29, -1, -1)] + [f"done-{i}" for i in range(5)]


# --------------------------------------------------------------------------- 6 forecast alerts
def test_a_forecast_alert_speaks_with_its_base_rule(world):
    snap, names = world.snap, world.names
    base = next(r for r in _rules_of(snap, "crowd.load_rate", "riverside_central") if r.family == "crowd.load_rate")
    rid = f"forecast:{base.id}"
    assert rid not in snap.rules
    r = rule_for(snap, rid, names)
    assert r is not None and r.id == rid and r.unit == base.unit and dict(r.labels) == dict(base.labels)
    assert r.name_zh.startswith(base.name_zh) and "预测" in r.name_zh
    assert r.name_en.startswith(base.name_en) and "forecast" in r.name_en
    st = _forecast_state(snap, base, tier="yellow", predicted=81.25, lead_min=9)
    thr = base.tier("yellow", snap.now).threshold
    # a yellow forecast is log-only (data/alerts/rationale.toml): in the console, not on the wall
    assert not wall_view(replace(snap, alerts=(st,)), names)["alerts"]
    item = next(i for i in ops_view(replace(snap, alerts=(st,)), names)["alerts"] if i["id"] == st.alert_id)
    assert item["log_only"]
    orange = _forecast_state(snap, base, tier="orange", lead_min=9)
    assert [i["id"] for i in wall_view(replace(snap, alerts=(orange,)), names)["alerts"]] == [orange.alert_id]
    assert (item["place_zh"], item["place_en"]) == names.zones["riverside_central"]
    assert item["title_zh"] == r.name_zh and item["title_en"] == r.name_en and item["tier"] == "yellow"
    # why: when, and the predicted load against the threshold - not the tier ranks the alert runs on
    assert item["why_en"].startswith(r.name_en + ": yellow in about 9 minutes"), item["why_en"]
    assert "约9分钟后达到黄色" in item["why_zh"], item["why_zh"]
    for lang in ("zh", "en"):
        nums = _numbers(item[f"why_{lang}"].split("：" if lang == "zh" else ": ", 1)[1])
        assert nums == [9, 81.25, thr], item[f"why_{lang}"]
    assert rule_for(snap, "forecast:no.such_rule", names) is None
    real = [a for a in snap.alerts if a.rule_id.startswith("forecast:")]
    for a in real:                                     # the hour's own forecast alerts read the same way
        it = alert_item(a, rule_for(snap, a.rule_id, names), names, snap.now)
        assert "预测" in it["title_zh"] and "forecast" in it["title_en"]


# --------------------------------------------------------------------------- 7 JSON, determinism, the push
def test_view_models_are_json_and_deterministic(world):
    snap, names = world.snap, world.names
    rich = _rich(world)
    for s in (snap, rich):
        for build in (wall_view, ops_view):
            a = json.dumps(build(s, names), ensure_ascii=False, allow_nan=False, sort_keys=True)
            b = json.dumps(build(s, names), ensure_ascii=False, allow_nan=False, sort_keys=True)
            assert a == b
            assert json.loads(a) == json.loads(json.dumps(build(s, names)))   # no tuples-vs-lists surprise


def _zone_alert(snap, shown=None):
    """A firing, unacknowledged, below-red zone alert (one the wall lists, when ``shown`` is given)."""
    return next(a for a in snap.alerts if a.status == "firing" and a.tier != "red" and a.acked_by is None
                and a.rule_id in snap.rules and snap.rules[a.rule_id].family.split(".")[0] in ZONE_FAMILIES
                and (shown is None or a.alert_id in shown))


def test_one_change_pushes_only_the_keys_it_affects(world):
    snap, names = world.snap, world.names
    w0, o0 = wall_view(snap, names), ops_view(snap, names)
    assert V.diff(None, w0) == w0 and V.diff(w0, wall_view(snap, names)) == {}

    # one zone's load moves: the wall's zones and nothing else
    iid = zone_indicator("crowd.load_rate", "west_plaza")
    values = dict(snap.values)
    values[iid] = (values[iid][0] + 3.0, values[iid][1])
    s1 = replace(snap, values=values)
    assert set(V.diff(w0, wall_view(s1, names))) == {"zones"}
    assert V.diff(o0, ops_view(s1, names)) == {}

    # one alert acknowledged: the console's list (and the wall's, when it is among the top ones it shows)
    a = _zone_alert(snap)
    s2 = replace(snap, alerts=tuple(replace(x, acked_by="赵六") if x is a else x for x in snap.alerts))
    on_wall = a.alert_id in {x["id"] for x in w0["alerts"]}
    assert set(V.diff(w0, wall_view(s2, names))) == ({"alerts"} if on_wall else set())
    assert set(V.diff(o0, ops_view(s2, names))) == {"alerts"}

    # one zone alert raised to red: the list, the counts and the zone colour (and the total, when
    # at its tier the alert was for the log only and at red it calls for action)
    s3 = replace(snap, alerts=tuple(replace(x, tier="red") if x is a else x for x in snap.alerts))
    log_only_before = default_rationale().is_log_only(a.rule_id, a.tier)
    assert set(V.diff(w0, wall_view(s3, names))) == {"alerts", "alert_counts", "zones"} | (
        {"alert_total"} if log_only_before else set())

    # a newer snapshot a few seconds later: its version and clock, besides what changed (the step
    # stays short of the next whole minute of any AI-video event's age, which the wall shows)
    ages = [(snap.now - e.at).total_seconds() for e in snap.video_events]
    step = min([5.0] + [(60 - a % 60) / 2 for a in ages])
    s4 = replace(s1, version=snap.version + 1, now=snap.now + timedelta(seconds=step))
    assert set(V.diff(w0, wall_view(s4, names))) == {"v", "now", "age_s", "zones"}
    # a minute later, the events' ages move too
    s5 = replace(s1, version=snap.version + 1, now=snap.now + timedelta(minutes=1))
    assert set(V.diff(w0, wall_view(s5, names))) >= {"v", "now", "age_s", "zones"} | ({"video"} if ages else set())


def test_view_cache_builds_once_per_version(world):
    snap, names = world.snap, world.names
    calls = []
    cache = ViewCache({"wall": lambda s: calls.append(s.version) or wall_view(s, names)}, keep=2)
    m = cache.get("wall", snap)
    assert cache.get("wall", snap) is m and calls == [snap.version]
    newer = replace(snap, version=snap.version + 1)
    assert cache.get("wall", newer) is not m and calls == [snap.version, snap.version + 1]
    cache.get("wall", replace(snap, version=snap.version + 2))
    cache.get("wall", snap)                              # evicted (keep=2): built again
    assert calls == [snap.version, snap.version + 1, snap.version + 2, snap.version]


def test_presenters_do_not_import_dash():
    import ast
    import dashboard.views as mod
    tree = ast.parse(open(mod.__file__, encoding="utf-8").read())
    imported = {n.module for n in ast.walk(tree) if isinstance(n, ast.ImportFrom) and n.module}
    imported |= {a.name for n in ast.walk(tree) if isinstance(n, ast.Import) for a in n.names}
    assert not any(m == "dash" or m.startswith(("dash.", "dash_", "plotly")) for m in imported), imported
