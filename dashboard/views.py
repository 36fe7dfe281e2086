"""Snapshot -> what each screen shows (view models).  Plain functions, no Dash.

A view model is JSON-able and carries both languages where text is shown
(``zh`` / ``en``), so the browser switches language without asking the
server, and one model per snapshot serves every screen.  Nothing raw
reaches a screen: tiers, statuses, departments, categories, feed kinds,
plan steps and places are translated here; feed text (warning headlines,
case notes) is passed as plain text and rendered with ``textContent``.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Mapping

from indicators.alerts import RANK, TIER_LEVEL
from indicators.alerts.cases import STEP_ZH
from indicators.alerts.rationale import default_rationale
from indicators.kpis import KPIS
from indicators.localtime import fmt_local
from indicators.pipeline import zone_indicator
from indicators.snapshot import Snapshot

from . import i18n

TIERS = ("blue", "yellow", "orange", "red")
TIER_NAMES = {"blue": ("蓝色", "Blue"), "yellow": ("黄色", "Yellow"), "orange": ("橙色", "Orange"),
              "red": ("红色", "Red")}
STATUS_NAMES = {"pending": ("待确认", "pending"), "firing": ("告警中", "firing"), "recovering": ("恢复中", "recovering"),
                "no_data": ("无数据", "no data"), "error": ("计算出错", "error"), "resolved": ("已恢复", "resolved")}
FEED_NAMES = {"crowd": ("客流", "Crowd"), "gate": ("闸机", "Gates"), "video": ("视频AI", "AI video"),
              "facility": ("设施", "Facilities"), "bus": ("公交", "Buses"), "station": ("地铁", "Metro"),
              "traffic": ("交通", "Traffic"), "weather": ("气象", "Weather"), "warning": ("预警", "Warnings"),
              "case": ("案件", "Cases"), "staff": ("人员定位", "Staff positions")}
GROUP_NAMES = {"crowd": ("客流", "Visitors"), "facility": ("设施", "Facilities"), "traffic": ("交通", "Traffic"),
               "weather": ("气象", "Weather"), "video": ("视频AI", "AI video"), "cases": ("执法", "Enforcement")}
# The first part of a family id: what the operator filters alerts by.
FAMILY_NAMES = {"crowd": ("客流", "Visitors"), "walk": ("步行通道", "Walkways"), "gate": ("出入口", "Gates"),
                "facility": ("设施", "Facilities"), "bus": ("公交", "Buses"), "station": ("轨道站点", "Stations"),
                "traffic": ("道路交通", "Road traffic"), "weather": ("气象", "Weather"),
                "warning": ("预警信号", "Warnings"), "video": ("视频AI", "AI video"), "case": ("案件", "Cases"),
                "staff": ("人员", "Staff"), "patrol": ("巡查", "Patrol"), "forecast": ("预测", "Forecast")}
KPI_NAMES = {"present": ("在园人数", "Present"), "max_load": ("最高承载率", "Highest load"),
             "anomalies": ("设施异常", "Anomalies"), "cameras_offline": ("摄像机离线", "Cameras offline"),
             "area_speed": ("区域车速", "Area speed"), "congested": ("拥堵路段", "Congested roads"),
             "temperature": ("气温", "Temperature"), "rain_1h": ("小时雨量", "Rain, 1 h"),
             "video_events": ("近1小时事件", "Events, 1 h"), "cases_open": ("在办案件", "Open cases"),
             "cases_overdue": ("超时案件", "Overdue")}
CASE_STAGES = (("open", ("open",)), ("dispatch", ("dispatched",)), ("handle", ("handling",)),
               ("verify", ("verifying", "verified")), ("close", ("closed",)))
STAGE_EN = {"open": "Opened", "dispatch": "Dispatched", "handle": "Handling", "verify": "Verifying",
            "close": "Closed"}
SIGNAL_NAMES = {"typhoon": ("台风", "Typhoon"), "rainstorm": ("暴雨", "Rainstorm"),
                "thunderstorm_gale": ("雷雨大风", "Thunderstorm gale"), "high_temperature": ("高温", "High temperature"),
                "cold": ("寒冷", "Cold"), "fog": ("大雾", "Fog"), "haze": ("灰霾", "Haze"),
                "road_icing": ("道路结冰", "Road icing"), "hail": ("冰雹", "Hail"),
                "forest_fire": ("森林火险", "Forest fire"), "other": ("其他预警", "Other warning")}
COLOUR_NAMES = {"white": ("白色", "white"), "blue": ("蓝色", "blue"), "yellow": ("黄色", "yellow"),
                "orange": ("橙色", "orange"), "red": ("红色", "red")}
TIER_RGBA = {"none": [70, 130, 180, 60], "blue": [30, 120, 255, 120], "yellow": [250, 210, 30, 140],
             "orange": [255, 140, 0, 160], "red": [230, 30, 30, 180], "nodata": [120, 120, 120, 60]}
ZONE_FAMILIES = ("crowd.", "walk.")
ALERTS_SHOWN = 40
CASES_PER_STAGE = 6


@dataclass
class Names:
    """Everything a view needs to translate ids into words and places (built once)."""

    zones: dict[str, tuple[str, str]] = field(default_factory=dict)
    zone_xy: dict[str, tuple[float, float]] = field(default_factory=dict)
    assets: dict[str, tuple[str, str, float, float, str]] = field(default_factory=dict)  # zh, en, x, y, type
    departments: dict[str, tuple[str, str]] = field(default_factory=dict)
    categories: dict[str, tuple[str, str]] = field(default_factory=dict)
    plans: dict[str, tuple[str, str]] = field(default_factory=dict)
    staff: dict[str, str] = field(default_factory=dict)
    classes: dict[str, tuple[str, str]] = field(default_factory=dict)
    compound: dict[str, Any] = field(default_factory=dict)
    frame: Any = None

    def xy(self, lon: float, lat: float) -> tuple[float, float]:
        x, y = self.frame.to_xy(lon, lat)
        return round(float(x), 1), round(float(y), 1)

    @classmethod
    def build(cls, gdf, frame, case_cfg=None, plan_defs=None, classes=None, compound=()) -> "Names":
        n = cls()
        n.frame = frame
        n.classes = {k: (c.name_zh, c.name_en) for k, c in (classes or {}).items()}
        n.compound = {f"compound:{c.id}": c.as_rule() for c in compound}
        pts = gdf.geometry.representative_point()
        x, y = frame.to_xy(pts.x.to_numpy(), pts.y.to_numpy())
        for i, r in enumerate(gdf.itertuples()):
            n.assets[r.asset_id] = (r.name_zh, r.name_en, float(x[i]), float(y[i]), r.type)
            if r.type == "management_zone":
                n.zones[r.zone_id] = (r.name_zh, r.name_en)
                n.zone_xy[r.zone_id] = (float(x[i]), float(y[i]))
        if case_cfg is not None:
            n.departments = {k: (d.name_zh, d.name_en) for k, d in case_cfg.departments.items()}
            n.categories = {k: (c.phrase_zh, as_label(c.phrase_en)) for k, c in case_cfg.categories.items()}
        for k, p in (plan_defs or {}).items():
            n.plans[k] = (p.name_zh, p.name_en)
        return n

    def zone(self, zid: str | None) -> tuple[str, str]:
        if not zid:
            return ("景区", "Scenic area")
        return self.zones.get(zid, ("未知片区", "Unknown zone"))

    def dept(self, d: str | None) -> tuple[str, str]:
        return self.departments.get(d or "", ("未知部门", "Unknown department"))


def as_label(phrase: str) -> str:
    """An English phrase written for a sentence ("a crowd building up") as a label on its
    own ("Crowd building up"): no leading article, a capital first letter."""
    words = phrase.strip().split(" ", 1)
    if len(words) == 2 and words[0].lower() in ("a", "an", "the"):
        phrase = words[1]
    return phrase[:1].upper() + phrase[1:]


def _fmt_num(v: float | None, unit: str) -> str:
    if v is None or (isinstance(v, float) and math.isnan(v)):
        return "—"
    if unit in ("%",):
        return f"{v:.0f}%"
    if unit in ("°C", "km/h", "mm"):
        return f"{v:.1f}"
    return f"{v:,.0f}"


def _with_unit(v: float, unit: str, lang: str) -> str:
    """A number as the alert sentences print it (indicators.alerts.state.explain), with its unit."""
    from indicators.units import with_unit
    return with_unit(f"{v:,.0f}" if abs(v) >= 1000 else f"{v:.4g}", unit, lang)


def _by_severity(alerts, now: datetime) -> list:
    """Highest tier first, then the newest: whatever order the snapshot holds them in."""
    return sorted(alerts, key=lambda a: (-RANK.get(a.tier or "", 0), -(a.started_at or now).timestamp()))


def _place(rule, names: Names) -> tuple[str, str, tuple[float, float] | None]:
    """Where an alert is: the asset, camera or gate it is about, else its zone, else the area."""
    labels = dict(getattr(rule, "labels", {}) or {})
    for key in ("asset", "camera", "gate", "station", "stop", "segment"):
        aid = labels.get(key)
        if aid and aid in names.assets:
            zh, en, x, y, _ = names.assets[aid]
            return zh, en, (x, y)
    zid = labels.get("zone")
    if zid:
        zh, en = names.zone(zid)
        return zh, en, names.zone_xy.get(zid)
    if labels.get("route"):
        zh, en = i18n.route_name(str(labels["route"]))
        return zh, en, None
    return "景区", "Scenic area", None


def _qualifier(rule, names: Names) -> tuple[str, str]:
    """What distinguishes one alert of a family from its siblings at the same place:
    the case category, facility class, video algorithm or department, by name."""
    labels = dict(getattr(rule, "labels", {}) or {})
    if labels.get("category") in names.categories:
        return names.categories[labels["category"]]
    if labels.get("class") in names.classes:
        return names.classes[labels["class"]]
    if labels.get("algorithm") in i18n.ALGORITHMS:
        return i18n.ALGORITHMS[labels["algorithm"]]
    if labels.get("department") and labels["department"] in names.departments:
        return names.dept(labels["department"])
    if labels.get("signal") in SIGNAL_NAMES:
        return SIGNAL_NAMES[labels["signal"]]
    return "", ""


def rule_for(snap: Snapshot, rule_id: str, names: "Names | None" = None):
    """The rule of an alert; a forecast alert speaks with its indicator's rule (names, zone, unit)."""
    from dataclasses import replace
    rule = snap.rules.get(rule_id)
    if rule is None and names is not None and rule_id in names.compound:
        return names.compound[rule_id]
    if rule is None and ":" in rule_id:
        kind, _, base = rule_id.partition(":")
        r = snap.rules.get(base)
        if r is not None and kind == "forecast":
            return replace(r, id=rule_id, name_zh=f"{r.name_zh}（预测）", name_en=f"{r.name_en} (forecast)",
                           family="forecast.load_rate")
        return r
    return rule


def alert_item(st, rule, names: Names, now: datetime) -> dict[str, Any]:
    """One alert as the list shows it: tier, place, why in words, since when, who acknowledged."""
    from indicators.alerts.state import explain
    ex = explain(st, rule)
    pzh, pen, xy = _place(rule, names)
    qzh, qen = _qualifier(rule, names)
    name_zh = (getattr(rule, "name_zh", "") or "告警") + (f"（{qzh}）" if qzh else "")
    name_en = (getattr(rule, "name_en", "") or "Alert") + (f" ({qen})" if qen else "")
    why_zh = ex.get("sentence_zh") or f"{name_zh}：{STATUS_NAMES.get(st.status, ('', ''))[0]}"
    why_en = ex.get("sentence_en") or f"{name_en}: {STATUS_NAMES.get(st.status, ('', st.status))[1]}"
    since = st.fired_at or st.started_at
    d = dict(st.details or {})
    if str(st.rule_id).startswith("forecast:") and d.get("sentence_zh"):
        # a forecast alert's own value and threshold are tier ranks (0-4), not loads: say what the
        # forecast says, with the predicted load and the threshold it is heading for
        unit = getattr(rule, "unit", "")
        nums = d.get("predicted") is not None and d.get("threshold") is not None
        why_zh = f"{name_zh}：{d['sentence_zh']}" + (
            f"（预计{_with_unit(d['predicted'], unit, 'zh')}，阈值{_with_unit(d['threshold'], unit, 'zh')}）"
            if nums else "")
        why_en = f"{name_en}: {d.get('sentence_en', '')}" + (
            f" (predicted {_with_unit(d['predicted'], unit, 'en')}, threshold {_with_unit(d['threshold'], unit, 'en')})"
            if nums else "")
    if getattr(rule, "family", "") == "compound":
        # a composite rule has no value of its own: say that its conditions hold, and since when
        mins = None if since is None else int((now - since).total_seconds() // 60)
        why_zh = f"{name_zh}：各项条件均已满足" + (f"，持续约{mins}分钟" if mins else "")
        why_en = f"{name_en}: all its conditions hold" + (f" for about {mins} min" if mins else "")
    return {
        "id": st.alert_id, "tier": st.tier or "none", "level": TIER_LEVEL.get(st.tier or "", ""),
        # no operator action at this tier (data/alerts/rationale.toml): kept for the log, not a call to act
        "log_only": bool(st.tier in RANK and default_rationale().is_log_only(st.rule_id, st.tier)),
        "status": st.status, "status_zh": STATUS_NAMES.get(st.status, ("", ""))[0],
        "status_en": STATUS_NAMES.get(st.status, ("", st.status))[1],
        "title_zh": name_zh, "title_en": name_en, "place_zh": pzh, "place_en": pen,
        "why_zh": why_zh, "why_en": why_en,
        "since": fmt_local(since, date=False, seconds=False),
        "minutes": None if since is None else int((now - since).total_seconds() // 60),
        "acked_by": st.acked_by, "assignee": st.assignee, "assignee_zh": person(st.assignee)[0],
        "assignee_en": person(st.assignee)[1],
        "silenced": bool(st.silenced_until and now < st.silenced_until),
        "escalation": st.escalation_level, "family": getattr(rule, "family", ""), "xy": xy,
        "zone": dict(getattr(rule, "labels", {}) or {}).get("zone"),
        "asset": next((v for k, v in (getattr(rule, "labels", {}) or {}).items()
                       if k in ("asset", "camera", "gate") and v in names.assets), None),
    }


def by_incident(items: list[dict[str, Any]], snap: Snapshot) -> list[dict[str, Any]]:
    """The alerts with those of one incident (place and cause, data/alerts/departments.toml
    [incidents]) together: the incident's first alert (the likely root cause) where the most
    severe of them stands in ``items``' order, marked with how many joined it (``members``), and
    the others right under it (``head``: its id).  Alerts of no incident stay as they are."""
    inc = snap.incidents
    groups: dict[str, list[dict[str, Any]]] = {}
    for it in items:
        k = inc.get(it["id"])
        if k is not None:
            groups.setdefault(k, []).append(it)
    # the head: the first alert that calls for action (a log-only one heads only an incident of such)
    heads = {k: min(g, key=lambda i: (bool(i.get("log_only")), -(i["minutes"] if i["minutes"] is not None else -1),
                                      i["id"]))
             for k, g in groups.items() if len(g) > 1}
    out, done = [], set()
    for it in items:
        k = inc.get(it["id"])
        if k not in heads:
            out.append(it | {"members": 0, "head": None})
            continue
        if k in done:
            continue
        done.add(k)
        head = heads[k]            # placed where the incident's most severe (and newest) alert stands
        out.append(head | {"members": len(groups[k]) - 1, "head": None, "incident_tier": it.get("tier")})
        out.extend(m | {"members": 0, "head": head["id"]} for m in groups[k] if m is not head)
    return out


def zone_tiers(snap: Snapshot) -> dict[str, str]:
    """Zone colour = the highest tier of the zone's firing crowd alerts (the alert state,
    with its pending period and hysteresis, not a re-classification of the value)."""
    out: dict[str, str] = {}
    for st in snap.alerts:
        if st.status not in ("firing", "recovering") or not st.tier:
            continue
        rule = rule_for(snap, st.rule_id)
        if rule is None or not str(getattr(rule, "family", "")).startswith(ZONE_FAMILIES):
            continue
        z = dict(getattr(rule, "labels", {}) or {}).get("zone")
        if z and RANK.get(st.tier, 0) > RANK.get(out.get(z, ""), 0):
            out[z] = st.tier
    return out


def _kpis(snap: Snapshot) -> list[dict[str, Any]]:
    # the tiles' numbers belong to the values shown (provisional at first); the sparklines are final
    latest = {k: (pts[-1][1] if pts else None) for k, pts in snap.trends.items()} | dict(snap.kpis)
    groups = []
    for g, (zh, en) in GROUP_NAMES.items():
        items = []
        for k in KPIS:
            if k.group != g:
                continue
            pts = snap.trends.get(k.name, ())
            items.append({"key": k.name, "zh": KPI_NAMES[k.name][0], "en": KPI_NAMES[k.name][1],
                          "value": _fmt_num(latest.get(k.name), k.unit),
                          "unit_zh": "" if k.unit == "%" else i18n.unit_name(k.unit, "zh"),
                          "unit_en": "" if k.unit == "%" else i18n.unit_name(k.unit, "en"),
                          "trend": [None if v is None else round(v, 2) for _, v in pts[-120:]]})
        groups.append({"group": g, "zh": zh, "en": en, "items": items})
    return groups


def _plan_items(snap: Snapshot, names: Names) -> list[dict[str, Any]]:
    out = []
    for p in snap.plans:
        zh, en = names.plans.get(p.plan_id, ("应急预案", "Emergency plan"))
        steps = []
        for s in p.steps:
            dzh, den = names.dept(s.department)
            steps.append({"id": s.step_id, "zh": s.text_zh, "en": s.text_en, "dept_zh": dzh, "dept_en": den,
                          "due": fmt_local(s.due_at, date=False, seconds=False), "done": s.done_at is not None,
                          "done_by": s.done_by, "overdue": s.done_at is None and snap.now > s.due_at})
        out.append({"id": p.instance_id, "zh": zh, "en": en, "level": p.level,
                     "opened": fmt_local(p.opened_at, date=False, seconds=False), "steps": steps})
    return out


def case_item(c, names: Names, now: datetime) -> dict[str, Any]:
    czh, cen = names.categories.get(c.category, ("案件", "Case"))
    zzh, zen = (c.place_zh, c.place_en) if (c.place_zh or c.place_en) else names.zone(c.zone_id)
    stage = next((k for k, sts in CASE_STAGES if c.status in sts), "open")
    return {"id": c.case_id, "zh": czh, "en": cen, "place_zh": zzh, "place_en": zen, "stage": stage,
            "priority": c.priority, "assignee": c.assignee, "assignee_zh": person(c.assignee)[0],
            "assignee_en": person(c.assignee)[1], "note": c.description[:120],
            "opened": fmt_local(c.opened_at, date=False, seconds=False),
            "overdue": bool(c.due_at and c.status != "closed" and now > c.due_at),
            "escalation": c.escalation_level, "xy": None if c.x is None else [c.x, c.y],
            # what the person on it has said from their phone (accepted; arrived, and when)
            "accepted": c.status == "handling" or c.arrived_at is not None,
            "arrived": "" if c.arrived_at is None else fmt_local(c.arrived_at, date=False, seconds=False),
            "departments": [{"zh": names.dept(d)[0], "en": names.dept(d)[1]} for d in c.departments]}


def _moved(c) -> datetime:
    """When a case last moved: closed, its current step begun, or opened."""
    return c.closed_at or c.step_started_at or c.opened_at


def _cases(snap: Snapshot, names: Names) -> list[dict[str, Any]]:
    stages = []
    # per stage the board shows a few: the most recently moved (a case the dispatcher just handled
    # is on the wall at once, not behind a hundred older ones; the overdue count has its own tile)
    moved = {c.case_id: _moved(c) for c in snap.cases}
    items = sorted((case_item(c, names, snap.now) for c in snap.cases), key=lambda i: -moved[i["id"]].timestamp())
    for key, _ in CASE_STAGES:
        mine = [i for i in items if i["stage"] == key]
        stages.append({"key": key, "zh": STEP_ZH[key], "en": STAGE_EN[key], "count": len(mine),
                       "items": mine[:CASES_PER_STAGE]})
    return stages


def _warning(snap: Snapshot) -> dict[str, Any] | None:
    order = ("white", "blue", "yellow", "orange", "red")
    ws = list(snap.warnings.values())
    if not ws:
        return None
    best = max(ws, key=lambda w: order.index(w.colour) if w.colour in order else -1)
    szh, sen = SIGNAL_NAMES.get(best.signal, SIGNAL_NAMES["other"])
    czh, cen = COLOUR_NAMES.get(best.colour, ("", best.colour))
    return {"signal": best.signal, "colour": best.colour, "zh": f"{szh}{czh}预警信号生效中",
            "en": f"{sen} warning signal ({cen}) in force", "headline": best.headline[:200],
            "since": fmt_local(best.issued_at, date=False, seconds=False), "count": len(snap.warnings)}


def _buses(snap: Snapshot, names: Names) -> list[list]:
    """[x, y, lateness] per vehicle: 0 on time, 1 late > 5 min, 2 late > 10 min (positions to 1 m)."""
    if names.frame is None:
        return []
    out = []
    for b in snap.buses:
        late = 0 if not b.delay_s or b.delay_s < 300 else 1 if b.delay_s < 600 else 2
        out.append([*names.xy(b.lon, b.lat), late])
    return out


def _video(snap: Snapshot, names: Names) -> list[list]:
    """[x, y, minutes ago] per recent AI-video event, at its camera (or where it was reported)."""
    out = []
    for e in snap.video_events:
        cam = names.assets.get(e.camera_id)
        if cam is not None:
            x, y = round(cam[2], 1), round(cam[3], 1)
        elif e.lon is not None and e.lat is not None and names.frame is not None:
            x, y = names.xy(e.lon, e.lat)
        else:
            continue
        out.append([x, y, max(0, int((snap.now - e.at).total_seconds() // 60))])
    return out[-300:]


def wall_view(snap: Snapshot, names: Names) -> dict[str, Any]:
    """Everything the wall display shows, from one snapshot."""
    now = snap.now
    tiers = zone_tiers(snap)
    crowd = snap.feeds.get("crowd")
    crowd_stale = crowd is not None and crowd.stale      # the zone loads rest on the crowd feed
    zones = {}
    for zid in names.zones:
        zones[zid] = {"tier": tiers.get(zid, "none"), "color": TIER_RGBA[tiers.get(zid, "none")],
                      "p": [round(c, 1) for c in names.zone_xy.get(zid, (0.0, 0.0))]}
        iid = zone_indicator("crowd.load_rate", zid)
        v, q = snap.values.get(iid, (None, "no_data"))
        zones[zid]["load"] = None if v is None else round(v, 1)
        zones[zid]["stale"] = q != "ok" or crowd_stale
        if v is None:
            zones[zid]["color"] = TIER_RGBA["nodata"]
    firing = _by_severity([a for a in snap.alerts if a.status in ("firing", "recovering", "no_data", "error")], now)
    # the wall lists, counts and marks calls to act: log-only alerts stay in the console's log
    items = by_incident([i for a in firing if not (i := alert_item(a, rule_for(snap, a.rule_id, names), names,
                                                                     now))["log_only"]], snap)
    counts = {t: sum(1 for i in items if i["tier"] == t) for t in TIERS}
    markers = sorted(({"p": list(i["xy"]), "tier": i["tier"], "zh": i["title_zh"], "en": i["title_en"], "id": i["id"],
                       "asset": i["asset"]}
                      for i in items if i["xy"] is not None and i["tier"] in TIERS
                      and not i["family"].startswith(ZONE_FAMILIES)),
                     key=lambda m: (RANK.get(m["tier"], 0), m["id"]))     # most severe drawn last (on top)
    stale = [{"kind": k, "zh": FEED_NAMES.get(k, (k, k))[0], "en": FEED_NAMES.get(k, (k, k))[1],
              "minutes": None if f.age_s is None else int(f.age_s // 60)}
             for k, f in sorted(snap.feeds.items()) if f.stale]
    age = None if snap.as_of is None else max(0.0, (now - snap.as_of).total_seconds())
    return {
        "v": snap.version,
        "asof": fmt_local(snap.as_of), "age_s": None if age is None else round(age),
        # values of a tick whose allowed lateness has not passed: late events may still change them
        "provisional": snap.provisional, "final_asof": fmt_local(snap.final_as_of) if snap.provisional else "",
        "now": fmt_local(now),
        "stale_feeds": stale,
        "kpis": _kpis(snap),
        # the list: one line per incident (its members counted on it), then alerts of their own
        # (an incident's line in the colour of its most severe alert, the head's own tier kept as own_tier)
        "alerts": [i | {"tier": i.get("incident_tier", i["tier"]), "own_tier": i["tier"]}
                   for i in items if i["head"] is None][:ALERTS_SHOWN], "alert_total": len(items),
        "alert_counts": counts,
        "plans": _plan_items(snap, names),
        "cases": _cases(snap, names),
        "zones": zones,
        "markers": markers,
        "staff": [[round(s.x, 1), round(s.y, 1), s.status] for s in snap.staff],
        "buses": _buses(snap, names),
        "video": _video(snap, names),
        "warning": _warning(snap),
        "degraded": [_degraded(k, h) for k, h in sorted(snap.health.items()) if not h.get("ok", True)],
    }


STAFF_STATUS = {"available": ("空闲", "available"), "busy": ("处置中", "busy"), "offline": ("离线", "offline")}
COMPONENT_NAMES = {"engine": ("指标引擎", "The indicator engine"), "simulator": ("模拟数据源", "The simulated feeds"),
                   "inventory": ("资产台账", "The asset inventory")}
PROBLEMS = {"stopped": ("已停止，请重启服务（scenic-twin run）", "has stopped: restart the service (scenic-twin run)"),
            "step_failed": ("计算出错，正在重试（详见服务日志）", "failed a step and is retrying (see the service log)"),
            "inventory_fallback": ("无法使用，正以上一份完好的台账运行：请修正或重新导入台账后重启",
                                   "cannot be used; running on the last good copy: fix or re-import it and restart"),
            "restarting": ("异常停止，正在自动重启（详见服务日志和 /readyz）",
                           "stopped with an error and is being restarted (see the service log and /readyz)")}


def _degraded(component: str, h: Mapping[str, Any]) -> dict[str, str]:
    """A component in trouble, in words and with what to do (the exception text stays in the log)."""
    nzh, nen = COMPONENT_NAMES.get(component, ("系统组件", "A component"))
    pzh, pen = PROBLEMS.get(h.get("problem", ""), ("运行异常（详见服务日志）", "is not working (see the service log)"))
    return {"name": component, "zh": f"{nzh}{pzh}", "en": f"{nen} {pen}"}


def person(pid: str | None) -> tuple[str, str]:
    """A person as the screen names them: patrol staff of the staff feed by their number
    ("patrol-26" -> 巡查员 26 号), accounts by their user name."""
    if not pid:
        return "", ""
    head, _, num = pid.rpartition("-")
    if head == "patrol" and num.isdigit():
        return f"巡查员{int(num)}号", f"Patrol officer {int(num)}"
    return pid, pid


def ops_view(snap: Snapshot, names: Names) -> dict[str, Any]:
    """The operator console: every active alert (filterable in the page), open cases with their
    next steps, active plans with their steps, and the staff who can be dispatched."""
    now = snap.now
    # calls to act first, then the log-only alerts (data/alerts/rationale.toml), each in severity order
    items = by_incident(sorted((alert_item(a, rule_for(snap, a.rule_id, names), names, now)
                                for a in _by_severity(snap.alerts, now)), key=lambda i: i["log_only"]), snap)
    cases = [case_item(c, names, now) | {"actions": _case_actions(c.status)} for c in _ops_cases(snap)]
    return {
        "v": snap.version, "now": fmt_local(now), "asof": fmt_local(snap.as_of),
        "alerts": items, "cases": cases, "cases_open": sum(1 for c in snap.cases if c.status != "closed"),
        "cases_total": len(snap.cases), "plans": _plan_items(snap, names),
        "staff": [{"id": s.staff_id, "status": s.status, "zh": person(s.staff_id)[0], "en": person(s.staff_id)[1],
                   "status_zh": STAFF_STATUS.get(s.status, (s.status, s.status))[0],
                   "status_en": STAFF_STATUS.get(s.status, (s.status, s.status))[1]}
                  for s in sorted(snap.staff, key=lambda s: (s.status != "available", s.staff_id))],
        "zones": [{"id": z, "zh": n[0], "en": n[1]} for z, n in sorted(names.zones.items())],
        "families": [{"id": f, "zh": FAMILY_NAMES.get(f, ("其他", "Other"))[0],
                      "en": FAMILY_NAMES.get(f, ("其他", "Other"))[1]}
                     for f in sorted({i["family"].split(".")[0] for i in items if i["family"]})],
    }


OPS_CASES = 200          # the cases the console lists; it says how many more there are
RECENT_CASES = 50        # of them always the most recently moved (a report just in must be there to dispatch)
PRIORITY_RANK = {"urgent": 0, "high": 1, "normal": 2, "low": 3}


def _ops_cases(snap: Snapshot) -> list:
    """The console's cases, at most :data:`OPS_CASES`: the :data:`RECENT_CASES` most recently
    moved (what just came in or just changed), then as many more as fit in the order a
    dispatcher works them - the overdue first (the longest overdue first), then the open by
    priority, the newest first, then the recently closed - and all listed in that order.  A
    backlog of hundreds (a busy holiday; nobody closing cases in a soak) keeps the overdue and
    the new in view, and a push stays bounded."""
    now = snap.now

    def key(c):
        if c.status == "closed":
            return (2, 0, -(c.closed_at or c.opened_at).timestamp())
        if c.due_at is not None and now > c.due_at:
            return (0, 0, c.due_at.timestamp())
        return (1, PRIORITY_RANK.get(c.priority, len(PRIORITY_RANK)), -c.opened_at.timestamp())

    if len(snap.cases) <= OPS_CASES:
        return sorted(snap.cases, key=key)
    by_move = sorted(snap.cases, key=lambda c: -_moved(c).timestamp())
    recent = by_move[:RECENT_CASES]
    rest = sorted(by_move[RECENT_CASES:], key=key)[:OPS_CASES - len(recent)]
    return sorted(recent + rest, key=key)


CASE_ACTIONS = {"open": ("dispatch",), "dispatched": ("accept", "handle", "dispatch"), "handling": ("handle",),
                "verifying": ("verify", "rework"), "verified": ("close",), "closed": ()}
ACTION_NAMES = {"dispatch": ("派遣", "Dispatch"), "accept": ("接单", "Accept"), "handle": ("处置完成", "Handled"),
                "verify": ("核查通过", "Verified"), "rework": ("退回重办", "Rework"), "close": ("结案", "Close")}


def _case_actions(status: str) -> list[dict[str, str]]:
    return [{"step": a, "zh": ACTION_NAMES[a][0], "en": ACTION_NAMES[a][1]} for a in CASE_ACTIONS.get(status, ())]


def diff(old: Mapping[str, Any] | None, new: Mapping[str, Any]) -> dict[str, Any]:
    """The top-level keys of ``new`` that differ from ``old`` (what a push carries)."""
    if not old:
        return dict(new)
    return {k: v for k, v in new.items() if old.get(k) != v}
