"""The patrol officer's phone page (``/patrol``, role ``patrol``).

Three things on one screen made for a 360-430 px wide phone, one hand:

* the **virtual roaming patrol**: the scene's camera walks the riverside route
  (``assets/patrol.js``), stops at each checkpoint with what is around it live,
  calls out anything abnormal as it passes, and logs what it covered
  (:mod:`indicators.patrols`);
* **my cases**: the cases dispatched to me, nearest first by walking distance,
  moved accept → arrive → handled from the phone;
* **report**: a case from any point of the scene (long-press) or from where the
  roaming camera stands, with a type, a note and optionally a photo.

The server side here: the layout, the view model pushed to patrol phones (what
is near each checkpoint and along the route, shared by all phones; *my cases*,
per person) and the callbacks, each checked for the ``patrol`` role and, for
a case step, that the case is the caller's.  A patrol account is named by its
number in the staff positions feed (``patrol-07``): that is how the phone knows
which cases are *mine* and where *I* am.
"""
from __future__ import annotations

import math
from datetime import datetime
from typing import Any, Mapping

from dash import ClientsideFunction, Input, Output, State, dcc, html

from indicators.localtime import fmt_local

from . import auth, i18n, ids
from .views import Names, RANK, alert_item, by_incident, case_item, person, rule_for, zone_tiers

NEAR_CHECKPOINT_M = 80.0      # what the camera "sees" when it stops at a checkpoint
ALONG_ROUTE_M = 40.0          # an alerting asset this close to the route is called out as the camera passes
CASES_NEAR_M = 120.0
PATROL_STEPS = {"dispatched": ("accept",), "handling": ("arrive", "handle"), "verifying": (), "verified": ()}


def _near(p: tuple[float, float], q, r: float) -> bool:
    return q is not None and math.hypot(p[0] - q[0], p[1] - q[1]) <= r


_LINES: dict[str, Any] = {}


def _chainage(route, xy) -> tuple[float, float]:
    """(chainage of the nearest point of the route, distance to it) of a point."""
    from shapely.geometry import LineString, Point
    line = _LINES.get(route.route_id)
    if line is None:
        line = _LINES[route.route_id] = LineString(route.path)
    pt = Point(xy)
    return float(line.project(pt)), float(line.distance(pt))


def patrol_view(snap, names: Names, route) -> dict[str, Any]:
    """What every patrol phone is pushed: per checkpoint what is near it now, and the
    alerting things along the route (with their chainage) to call out while roaming."""
    now = snap.now
    tiers = zone_tiers(snap)
    active = [a for a in snap.alerts if a.status in ("firing", "recovering")]
    items = by_incident([i for a in active if not (i := alert_item(a, rule_for(snap, a.rule_id, names), names,
                                                                    now))["log_only"]], snap)
    cases = [c for c in snap.cases if c.status != "closed" and c.x is not None]
    video = [(e, names.assets.get(e.camera_id)) for e in snap.video_events]
    cps = {}
    for cp in route.checkpoints:
        p = (cp.x, cp.y)
        iid = f"crowd.load_rate:zone={cp.zone_id}@now"
        v, q = snap.values.get(iid, (None, "no_data"))
        near_alerts = [{"id": i["id"], "tier": i["tier"], "zh": i["title_zh"], "en": i["title_en"],
                        "why_zh": i["why_zh"], "why_en": i["why_en"]}
                       for i in items if i["xy"] is not None and _near(p, i["xy"], NEAR_CHECKPOINT_M)]
        near_cases = [case_item(c, names, now) for c in cases if _near(p, (c.x, c.y), CASES_NEAR_M)]
        near_video = [e for e, cam in video if cam is not None and _near(p, (cam[2], cam[3]), NEAR_CHECKPOINT_M)]
        cams = sum(1 for zh, en, x, y, t in names.assets.values()
                   if t == "cctv_camera" and _near(p, (x, y), NEAR_CHECKPOINT_M))
        zzh, zen = names.zone(cp.zone_id)
        cps[cp.id] = {
            "zone_zh": zzh, "zone_en": zen, "tier": tiers.get(cp.zone_id, "none"),
            "load": None if v is None else round(v, 1), "stale": q != "ok",
            "alerts": sorted(near_alerts, key=lambda a: -RANK.get(a["tier"], 0))[:6],
            "cases": [{"id": c["id"], "zh": c["zh"], "en": c["en"], "place_zh": c["place_zh"],
                       "place_en": c["place_en"], "stage": c["stage"]} for c in near_cases][:6],
            "case_count": len(near_cases), "video": len(near_video), "cameras": cams,
        }
    along = []
    for i in items:
        if i["xy"] is None or i["family"].startswith(("crowd.", "walk.")):
            continue
        s, d = _chainage(route, i["xy"])
        if d <= ALONG_ROUTE_M:
            along.append({"s": round(s, 1), "id": i["id"], "tier": i["tier"], "zh": i["title_zh"], "en": i["title_en"],
                          "place_zh": i["place_zh"], "place_en": i["place_en"]})
    along.sort(key=lambda a: a["s"])
    return {"v": snap.version, "now": fmt_local(now), "checkpoints": cps, "along": along[:100]}


def my_cases(snap, names: Names, staff_id: str, places=None) -> list[dict[str, Any]]:
    """The open cases assigned to ``staff_id``, nearest first by walking distance from
    where the staff feed last placed them (straight-line order when there is no position)."""
    now = snap.now
    mine = [c for c in snap.cases if c.assignee == staff_id and c.status != "closed"]
    me = next((s for s in snap.staff if s.staff_id == staff_id), None)
    dist: list[float | None] = [None] * len(mine)
    if me is not None and mine:
        targets = [(c.x, c.y) for c in mine if c.x is not None]
        walk = None
        if places is not None and targets:
            try:
                walk = list(places.network.walking_m((me.x, me.y), targets))
            except Exception:                        # no path graph: fall back to straight lines
                walk = None
        k = 0
        for n, c in enumerate(mine):
            if c.x is None:
                continue
            w = walk[k] if walk is not None else math.hypot(c.x - me.x, c.y - me.y)
            dist[n] = None if w is None or not math.isfinite(w) else round(float(w))
            k += 1
    out = []
    for c, d in zip(mine, dist):
        item = case_item(c, names, now)
        # what a person wrote (a report's note) is shown; a machine's description (an AI-video
        # detection's algorithm and camera id) is not for the phone: the category and place say it
        if c.source != "manual":
            item["note"] = ""
        item.update({"walk_m": d, "status": c.status, "arrived": c.arrived_at is not None,
                     "steps": [s for s in PATROL_STEPS.get(c.status, ())
                               if not (s == "arrive" and c.arrived_at is not None)],
                     "due": fmt_local(c.due_at, date=False, seconds=False) if c.due_at else ""})
        out.append(item)
    out.sort(key=lambda i: (i["walk_m"] is None, i["walk_m"] or 0, i["opened"]))
    return out


def patrols_view(service, route) -> dict[str, Any]:
    """For the console: the last 12 hours of patrols (who, how, how far) and the segments nobody covered."""
    if service is None or not hasattr(service, "patrols"):
        return {"patrols": [], "gaps": [], "segments": 0}
    day = service.patrols()
    names = {c.id: (c.name_zh, c.name_en) for c in route.checkpoints}

    def seg_names(sid: str) -> dict[str, str]:
        a, _, b = sid.partition(">")
        return {"id": sid, "zh": f"{names.get(a, (a, a))[0]} → {names.get(b, (b, b))[0]}",
                "en": f"{names.get(a, (a, a))[1]} → {names.get(b, (b, b))[1]}"}
    out = []
    for p in day["patrols"]:
        out.append({"id": p["patrol_id"], "who_zh": person(p["username"])[0], "who_en": person(p["username"])[1],
                    "mode": p["mode"], "start": fmt_local(datetime.fromisoformat(p["started_at"]), date=False,
                                                          seconds=False),
                    "ended": p["ended_at"] is not None, "minutes": round(p["duration_s"] / 60, 1),
                    "checkpoints": len(p["checkpoints"]), "of": len(route.checkpoints),
                    "segments": len(p["segments"]), "cameras": p["cameras_seen"],
                    "anomalies": len(p["anomalies_seen"]), "km": round(p["walked_m"] / 1000, 2)})
    return {"since": day["since"], "patrols": out[-20:], "count": len(out), "segments": len(day["segments"]),
            "gaps": [seg_names(g) for g in day["gaps"]]}


# --------------------------------------------------------------------------- layout
def patrol_layout(lang: str, twin_cfg: Mapping[str, Any], categories: Mapping[str, tuple[str, str]]):
    """The page; ``twin_cfg`` is the scene's configuration with the route to roam (``route``)."""
    route_page = twin_cfg.get("route") or {}
    t = lambda k: i18n.t(k, lang)  # noqa: E731
    lab = lambda k: i18n.label(k, lang)  # noqa: E731
    cats = [html.Option(value=k, **i18n.both(v[0], v[1], lang)) for k, v in categories.items()]
    return html.Main(className="st-patrol", children=[
        html.Div(className="st-patrol-scene", children=[
            html.Div(id=ids.DECK, className="st-deck"),
            html.Div(id=ids.PATROL_CALLOUT, className="st-callout", role="status"),
            html.Div(className="st-details-pop", id=ids.DETAILS_BOX, children=[
                html.H3(id=ids.DETAILS_TITLE, **lab("details")),
                html.Div(t("patrol.hint"), id=ids.DETAILS, className="st-hint")]),
        ]),
        html.Div(className="st-roam-bar", children=[
            html.Button("▶", id=ids.ROAM_PLAY, className="st-roam-play", title=t("patrol.play")),
            dcc.Input(id=ids.ROAM_SCRUB, type="range", min=0, max=route_page.get("length_m", 0), step=1,
                      value=0, className="st-roam-scrub"),
            html.Select(id=ids.ROAM_SPEED, className="st-select st-roam-speed", children=[
                html.Option("1×", value="1"), html.Option("2×", value="2"), html.Option("4×", value="4")]),
            html.Select(id=ids.ROAM_VIEW, className="st-select st-roam-view", children=[
                html.Option(value="eye", **lab("patrol.eye")), html.Option(value="above", **lab("patrol.above"))]),
        ]),
        html.Div(id=ids.ROAM_STATUS, className="st-roam-status"),
        html.Nav(className="st-tabs", role="tablist", children=[
            html.Button(id="tab-roam", className="st-tab st-tab-on", **{"data-tab": "roam"}, **lab("patrol.tab.roam")),
            html.Button(id="tab-mine", className="st-tab", **{"data-tab": "mine"}, **lab("patrol.tab.mine")),
            html.Button(id="tab-report", className="st-tab", **{"data-tab": "report"}, **lab("patrol.tab.report")),
        ]),
        html.Section(id=ids.CHECKPOINT_CARD, className="st-sheet st-sheet-roam"),
        html.Section(className="st-sheet st-sheet-mine", hidden=True, children=[
            html.Ol(id=ids.MY_CASES, className="st-my-cases")]),
        html.Section(className="st-sheet st-sheet-report", hidden=True, children=[
            html.P(t("patrol.report.where"), id=ids.REPORT_WHERE, className="st-report-where"),
            html.Label([html.Span(**lab("patrol.report.type")), html.Select(id=ids.REPORT_TYPE, className="st-select",
                                                             children=cats)]),
            html.Label([html.Span(**lab("patrol.report.note")), dcc.Textarea(id=ids.REPORT_NOTE, maxLength=500,
                                                              className="st-report-note")]),
            # the file picker is made by patrol.js (Dash has no plain file input); it uploads
            # to /patrol/photo, which checks and stores the image, and keeps its checksum
            html.Div(id=ids.REPORT_PHOTO_BOX, className="st-report-photo"),
            html.Button(id=ids.REPORT_SEND, className="st-report-send", **lab("patrol.report.send")),
            html.Div(id=ids.REPORT_QUEUE, className="st-report-queue", role="status"),
        ]),
        dcc.Store(id=ids.TWIN_CONFIG, data=dict(twin_cfg)),
        dcc.Store(id=ids.SELECTED),
        dcc.Store(id=ids.TWIN_MOUNTED),
        dcc.Store(id=ids.PATROL_ACTION),
        dcc.Store(id=ids.PATROL_RESULT),
        dcc.Store(id=ids.PATROL_ACKED),
    ])


# --------------------------------------------------------------------------- callbacks
def register(app, service, names: Names) -> None:
    """The patrol phone's one write callback: reports, case steps and patrol progress,
    each refused unless the caller holds the patrol role (and, for a case, is its assignee)."""

    @auth.callback(app, "patrol", Output(ids.PATROL_RESULT, "data"), Input(ids.PATROL_ACTION, "data"),
                   State(ids.LANG, "value"), prevent_initial_call=True)
    def _patrol_act(action, lang):
        lang = i18n.pick_lang(lang)
        who = auth.require("patrol")
        return patrol_action(service, who, action, lang)

    auth.clientside_role(app, "patrol", ClientsideFunction("patrol", "result"),
                         Output(ids.PATROL_ACKED, "data"), Input(ids.PATROL_RESULT, "data"), prevent_initial_call=True)


def _xy(v) -> tuple[float, float] | None:
    if (isinstance(v, (list, tuple)) and len(v) == 2
            and all(isinstance(c, (int, float)) and not isinstance(c, bool) and math.isfinite(c) for c in v)):
        return float(v[0]), float(v[1])
    return None


def patrol_action(service, who, action: Any, lang: str) -> dict[str, Any]:
    """Run one phone action; the answer names the action (``key``) so the phone can drop
    it from its queue of unsent ones.  Never raises."""
    from indicators.service import ActionError
    if not isinstance(action, dict) or not isinstance(action.get("kind"), str):
        return {"ok": False, "key": None, "message": i18n.t("bad_action", lang)}
    kind = action["kind"]
    key = str(action.get("key") or "")[:100]
    by = who.username
    out = {"kind": kind, "key": key, "t": action.get("t")}
    if service is None:
        return out | {"ok": False, "message": i18n.t("no_service", lang)}
    try:
        if kind == "report":
            case = service.report(request_id=key, category=str(action.get("category") or ""), by=by,
                                  description=str(action.get("note") or "")[:500], xy=_xy(action.get("xy")),
                                  photo=action.get("photo") or None)
            out["case"] = case.case_id
        elif kind == "case_step":
            service.patrol_case_step(str(action.get("id") or "")[:200], str(action.get("step") or ""), by=by,
                                     staff_id=by, note=str(action.get("note") or "")[:500] or
                                     i18n.t("done", lang), xy=_xy(action.get("xy")),
                                     photo=action.get("photo") or None)
        elif kind == "progress":
            rec = service.patrol_progress(key, by=by, intervals=action.get("intervals"),
                                          checkpoints=action.get("checkpoints"),
                                          anomalies=action.get("anomalies") or [], ended=bool(action.get("ended")))
            out["coverage"] = {"segments": len(rec.coverage.segments), "checkpoints": len(rec.coverage.checkpoints)}
        else:
            return out | {"ok": False, "message": i18n.t("bad_action", lang)}
    except (ActionError, ValueError, TypeError) as e:
        return out | {"ok": False, "message": f"{i18n.t('refused', lang)}: {e}"}
    return out | {"ok": True, "message": i18n.t("action_done", lang)}
