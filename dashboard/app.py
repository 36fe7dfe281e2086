"""The Dash app factory: the wall (/wall), the operator console (/ops), login.

``create_app()`` builds one Dash app on the FastAPI backend (the backend that
can push over WebSocket callbacks).  Pages are small: a layout and a few
callbacks whose bodies call a presenter (:mod:`dashboard.views`) or the
service.  Every callback is registered through :func:`dashboard.auth.callback`
with the role it needs; :class:`dashboard.auth.AccessMiddleware` checks
identity, host, origin and roles for every request and socket message.

Live data: one persistent WebSocket callback per browser pushes the changed
parts of the view model (built once per snapshot) into a store; the panels
are drawn in the browser from that store by ``assets/wall.js`` (text only,
never HTML), so an update costs no round trip back to the server.
"""
from __future__ import annotations

import html as htmlesc
import json
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from typing import Any

import dash
from dash import ClientsideFunction, Input, Output, State, ctx, dcc, html, set_props
from fastapi import Request
from fastapi.responses import HTMLResponse, JSONResponse, RedirectResponse, Response
from starlette.concurrency import run_in_threadpool

from indicators import localtime
from twin_assets import inventory as inv

from . import auth, config_page, i18n, ids, patrol_page
from .config_page import config_layout
from .live import SnapshotHub, ViewCache
from .presenters import asset_details, legend
from .scene import furniture_binary, furniture_rows, static_scene, tower_binary
from .views import Names, ops_view, wall_view

ASSETS = Path(__file__).parent / "assets"


@dataclass
class TwinData:
    """The inventory and the scene bytes, computed once per process."""
    gdf: object

    @cached_property
    def frame(self):
        return inv.frame()

    @cached_property
    def by_id(self):
        return self.gdf.set_index("asset_id", drop=False)

    @cached_property
    def furniture_ids(self) -> list[str]:
        return furniture_rows(self.gdf)["asset_id"].tolist()

    @cached_property
    def zone_names(self) -> dict[str, tuple[str, str]]:
        z = self.gdf[self.gdf["type"] == "management_zone"]
        return {r.zone_id: (r.name_zh, r.name_en) for r in z.itertuples()}

    @cached_property
    def scene_json(self) -> bytes:
        return json.dumps(static_scene(self.gdf, self.frame), ensure_ascii=False, separators=(",", ":")).encode()

    @cached_property
    def furniture_bin(self) -> bytes:
        return furniture_binary(self.gdf, self.frame)

    @cached_property
    def tower_bin(self) -> bytes:
        return tower_binary()

    def resolve(self, selection) -> str | None:
        """The asset id a click in the scene refers to (None when it is not valid)."""
        if not isinstance(selection, dict):
            return None
        if selection.get("kind") == "furniture":
            i = selection.get("index")
            if isinstance(i, int) and 0 <= i < len(self.furniture_ids):
                return self.furniture_ids[i]
            return None
        aid = selection.get("id")
        return aid if isinstance(aid, str) and aid in self.by_id.index else None


# --------------------------------------------------------------------------- layouts
def _shell():
    return html.Div(className="st-app", children=[
        dcc.Location(id=ids.URL),
        dcc.Store(id=ids.LANG_STORE, storage_type="local"),
        html.Header(className="st-header", children=[
            html.H1(id=ids.TITLE, **i18n.label("title", "zh")),
            html.Div(id=ids.BANNERS, className="st-banners"),
            html.Div(className="st-spacer"),
            html.Div(className="st-clock", children=[
                html.Span(id="asof-label", className="st-kpi-label", **i18n.label("asof", "zh")),
                html.Span("—", id=ids.ASOF, className="st-asof"),
                html.Span("", id="asof-state", className="st-provisional")]),
            html.Span("", id=ids.CONN, className="st-conn"),
            dcc.RadioItems(id=ids.LANG, className="st-lang", value=i18n.DEFAULT,
                           options=[{"label": "中文", "value": "zh"}, {"label": "English", "value": "en"}],
                           inline=True),
            html.Span(id=ids.WHO, className="st-who"),
            html.A(href="/logout", id=ids.LOGOUT, className="st-logout", **i18n.label("logout", "zh")),
        ]),
        html.Div(id=ids.PAGE, className="st-page"),
        dcc.Store(id=ids.LIVE),
        dcc.Store(id=ids.LIVE_APPLIED),
        dcc.Store(id=ids.PING),
        dcc.Store(id=ids.PONG),
        dcc.Store(id=ids.RESYNC),
        dcc.Store(id=ids.RESYNC_ACK),
        dcc.Store(id=ids.ACTION),
    ])


def _twin_config():
    from .tour import load_tour
    return dcc.Store(id=ids.TWIN_CONFIG, data={"container": ids.DECK, "scene_url": "/twin/scene.json",
                                               "furniture_url": "/twin/furniture.bin",
                                               "tower_url": "/twin/tower.bin", "tour": load_tour()})


def _patrol_config(route_page):
    return {"container": ids.DECK, "scene_url": "/twin/scene.json", "furniture_url": "/twin/furniture.bin",
            "tower_url": "/twin/tower.bin", "route": route_page}


def wall_layout(lang: str):
    t = lambda k: i18n.t(k, lang)  # noqa: E731
    lab = lambda k: i18n.label(k, lang)  # noqa: E731
    return html.Main(className="st-wall", children=[
        html.Div(className="st-scene", children=[
            html.Div(id=ids.DECK, className="st-deck"),
            html.Div(id=ids.TIER_LEGEND, className="st-tier-legend"),
            html.Div(className="st-details-pop", id=ids.DETAILS_BOX, children=[
                html.H3(id=ids.DETAILS_TITLE, **lab("details")),
                html.Div(t("hint"), id=ids.DETAILS, className="st-hint")]),
        ]),
        html.Aside(className="st-panels", children=[
            html.Section(id=ids.KPI_PANEL, className="st-kpi-grid"),
            html.Section(className="st-panel st-alerts-panel", children=[
                html.H3(id="alerts-title", **lab("alerts")), html.Div(id=ids.ALERT_COUNTS, className="st-counts"),
                html.Ol(id=ids.ALERT_LIST, className="st-alert-list")]),
            html.Section(className="st-panel", children=[
                html.H3(id="plan-title", **lab("plan")), html.Div(id=ids.PLAN_PANEL)]),
            html.Section(className="st-panel", children=[
                html.H3(id="cases-title", **lab("cases")), html.Div(id=ids.CASE_BOARD, className="st-case-board")]),
        ]),
        _twin_config(),
        dcc.Store(id=ids.SELECTED),
        dcc.Store(id=ids.TWIN_MOUNTED),
    ])


def ops_layout(lang: str):
    lab = lambda k: i18n.label(k, lang)  # noqa: E731
    return html.Main(className="st-ops", children=[
        html.Section(className="st-panel st-ops-alerts", children=[
            # the hint shows while the list holds still under the pointer (wall.js holdList); its
            # room is kept when hidden, so showing it moves no row
            html.H3([html.Span(**lab("alerts")), html.Span(id=ids.OPS_ALERTS_HELD, className="st-held-hint",
                                                           **lab("orderPaused"))]),
            html.Div(className="st-filters", children=[
                html.Select(id=ids.FILTER_TIER, className="st-select"),
                html.Select(id=ids.FILTER_FAMILY, className="st-select"),
                html.Select(id=ids.FILTER_ZONE, className="st-select")]),
            html.Table(className="st-table", children=[html.Tbody(id=ids.OPS_ALERTS)])]),
        html.Section(className="st-panel st-ops-cases", children=[
            html.H3(**lab("cases")), html.P(id=ids.OPS_CASES_MORE, className="st-hint"),
            html.Table(className="st-table", children=[html.Tbody(id=ids.OPS_CASES)])]),
        html.Section(className="st-panel st-ops-plans", children=[
            html.H3(**lab("plan")), html.Div(id=ids.OPS_PLANS)]),
        html.Section(className="st-panel st-ops-patrols", children=[
            html.H3(**lab("patrols")), html.Div(id=ids.OPS_PATROLS)]),
        html.Div(id=ids.ACTION_RESULT, className="st-toast", role="status"),
    ])


def _denied(lang: str):
    return html.Main(className="st-denied", children=[html.P(i18n.t("denied", lang))])


# --------------------------------------------------------------------------- the app
PUSH_BACKLOG = 2
"""Pushes a screen may have queued and not yet taken; past it, pushes to it are skipped (drop to
the latest state): Dash's per-socket outbound queue has no bound, and one slow screen must not
hold memory or time for the others."""


def _screen(ws) -> int:
    """One browser connection, the same for each callback it runs (Dash gives every callback its
    own websocket object, all on the connection's one outbound queue)."""
    q = getattr(ws, "_outbound_queue", None)
    return id(q if q is not None else ws)


def _backlog(ws) -> int:
    """Messages queued on this socket and not yet sent (Dash keeps them in a janus queue)."""
    q = getattr(ws, "_outbound_queue", None)
    try:
        return q.sync_q.qsize() if q is not None else 0
    except Exception:                      # another Dash version: no backlog known, push as before
        return 0


def _now_ms() -> int:
    """When a push leaves (epoch ms): the page, and the load bench, see how late it arrives."""
    import time
    return int(time.time() * 1000)


def create_app(data: TwinData | None = None, hub: SnapshotHub | None = None, service=None, access=None,
               hosts: tuple[str, ...] = ("127.0.0.1", "localhost", "::1", "[::1]"), limiter=None) -> dash.Dash:
    """The app; ``hub`` is where the service publishes snapshots; ``service`` takes the writes;
    ``access`` is the account store (sessions, login, audit); ``limiter`` the per-client request
    limits of the write routes (default: :mod:`dashboard.ratelimit`'s, or SCENIC_TWIN_RATE_*)."""
    data = data or TwinData(inv.load())
    hub = hub or SnapshotHub()
    case_cfg = getattr(getattr(service, "alerts", None), "case_cfg", None)
    plan_defs = getattr(getattr(service, "alerts", None), "plan_defs", None)
    catalog = getattr(service, "catalog", None)
    names = Names.build(data.gdf, data.frame, case_cfg, plan_defs,
                        classes=getattr(getattr(catalog, "dims", None), "classes", None),
                        compound=getattr(getattr(service, "alerts", None), "compound", ()))
    route = getattr(service, "route", None)
    if route is None:
        from indicators.patrols import route_from_inventory
        route = route_from_inventory(data.gdf, data.frame)
    route_page = route.to_page()
    places = getattr(getattr(service, "alerts", None), "places", None)
    views = ViewCache({"wall": lambda s: wall_view(s, names), "ops": lambda s: ops_view(s, names),
                       "patrol": lambda s: patrol_page.patrol_view(s, names, route),
                       # the last 12 hours of patrols and the stretches nobody walked (read once per snapshot)
                       "patrols": lambda s: patrol_page.patrols_view(service, route)})
    app = dash.Dash(__name__, backend="fastapi", websocket_callbacks=True, compress=True,
                    assets_folder=str(ASSETS), title="广州塔景区数字孪生", update_title=None,
                    serve_locally=True, suppress_callback_exceptions=True,
                    websocket_inactivity_timeout=0)
    app.layout = _shell()
    app._scenic_service = service          # for tests that call an action directly
    app.validation_layout = html.Div([_shell(), wall_layout("zh"), ops_layout("zh"), config_layout("zh"),
                                      patrol_page.patrol_layout("zh", _patrol_config(route_page), {})])
    server = app.server
    audit = getattr(access, "record", None)
    csp: dict[str, str] = {}
    if access is not None:
        if limiter is None:
            from .ratelimit import RateLimiter, limits_from_env
            limiter = RateLimiter(limits_from_env())     # read now: a bad setting stops the start with its reason
        server.add_middleware(auth.AccessMiddleware, access=access, hosts=hosts, audit=audit, csp=csp,
                              limiter=limiter)
    cache = {"Cache-Control": "no-cache"}

    # ------------------------------------------------------------- plain HTTP routes
    @server.get("/twin/scene.json", include_in_schema=False)
    def _scene():
        return Response(data.scene_json, media_type="application/json", headers=cache)

    @server.get("/twin/furniture.bin", include_in_schema=False)
    def _furniture():
        return Response(data.furniture_bin, media_type="application/octet-stream", headers=cache)

    @server.get("/twin/tower.bin", include_in_schema=False)
    def _tower():
        return Response(data.tower_bin, media_type="application/octet-stream", headers=cache)

    @server.post("/patrol/photo", include_in_schema=False)
    async def _photo_upload(request: Request):
        """A photo from a patrol phone (the raw image as the body): checked, re-encoded, stored;
        answers its checksum, or 4xx with the reason (nothing is kept of a refused upload)."""
        from indicators.photos import MAX_BYTES, PhotoError
        who = auth.current()
        if who is None or not who.can("patrol"):        # the middleware checked; a second look costs nothing
            return JSONResponse({"ok": False, "error": "needs the patrol role"}, status_code=403)
        if service is None:
            return JSONResponse({"ok": False, "error": i18n.t("no_service", "zh")}, status_code=503)
        chunks, size = [], 0
        async for chunk in request.stream():
            size += len(chunk)
            if size > MAX_BYTES:
                return JSONResponse({"ok": False, "error": f"照片超过 {MAX_BYTES // (1024 * 1024)} MB / "
                                     f"the photo is larger than {MAX_BYTES // (1024 * 1024)} MB"}, status_code=413)
            chunks.append(chunk)
        try:
            sha = await run_in_threadpool(service.photos.put, b"".join(chunks))
        except PhotoError as e:
            return JSONResponse({"ok": False, "error": str(e)}, status_code=415)
        return JSONResponse({"ok": True, "sha256": sha})

    @server.get("/photos/{sha}", include_in_schema=False)
    def _photo(sha: str):
        from indicators.photos import PhotoError
        if service is None:
            return JSONResponse({"ok": False, "error": "no photos without the service"}, status_code=400)
        if not service.photos.valid_name(sha):
            return JSONResponse({"ok": False, "error": "a photo is named by its SHA-256 (64 hex digits)"},
                                status_code=400)
        try:
            body = service.photos.get(sha)
        except PhotoError as e:
            return JSONResponse({"ok": False, "error": str(e)}, status_code=404)
        # (nosniff and the other security headers come from the access middleware)
        return Response(body, media_type="image/jpeg", headers={"Cache-Control": "private, max-age=86400"})

    @server.get("/readyz", include_in_schema=False)
    def _ready():
        """Readiness for a monitor or a load balancer: 200 when the service can take and keep
        data, 503 with the reason per component when it cannot (a full disk, a dead or
        restarting simulator, a stalled engine, an alert store that takes no writes)."""
        if service is None or not hasattr(service, "readiness"):
            return JSONResponse({"ready": False, "components": {"service": {
                "ok": False, "reason": "no service behind this dashboard"}}}, status_code=503)
        r = service.readiness()
        return JSONResponse(r, status_code=200 if r["ready"] else 503)

    @server.get("/healthz", include_in_schema=False)
    def _health():
        """Liveness for a monitor: the service clock (simulated time in a
        simulation) and the age of the data the pages show."""
        snap = hub.snapshot
        return {"ok": True, "assets": int(len(data.gdf)), "snapshot": snap.version,
                "now": snap.now.isoformat() if snap.version else None,
                "as_of": snap.as_of.isoformat() if snap.as_of else None}

    if access is not None:
        _login_routes(server, access)

    # ------------------------------------------------------------- routing
    @auth.callback(app, "viewer", Output(ids.PAGE, "children"), Output(ids.WHO, "children"),
                   Input(ids.URL, "pathname"), State(ids.LANG_STORE, "data"))
    def _route(path, lang):
        lang = i18n.pick_lang(lang)
        path = path if isinstance(path, str) else "/wall"      # a hand-made request may send anything
        who = auth.current()
        label = "" if who is None else [f"{who.display_name or who.username} · ",
                                        html.Span(**i18n.role_label(who.role, lang))]
        if who is not None:
            # the pages this person may open, the current one marked (the server checks again on each)
            pages = [(p, k) for p, k, role in (("/wall", "nav.wall", "viewer"), ("/patrol", "nav.patrol", "patrol"),
                                               ("/ops", "nav.ops", "operator"),
                                               ("/config", "nav.config", "supervisor")) if who.can(role)]
            if len(pages) > 1:
                here = path if path in {p for p, _ in pages} else "/wall"
                label = [html.Nav(className="st-nav", children=[
                    html.A(href=p, className="st-nav-here" if p == here else "", **i18n.label(k, lang))
                    for p, k in pages]),
                    html.Span(label, className="st-who-name")]
        if path in ("/ops",):
            return (ops_layout(lang) if who is None or who.can("operator") else _denied(lang)), label
        if path == "/patrol":
            return (patrol_page.patrol_layout(lang, _patrol_config(route_page), names.categories)
                    if who is None or who.can("patrol") else _denied(lang)), label
        if path == "/config":
            return (config_layout(lang) if who is None or who.can("supervisor") else _denied(lang)), label
        return wall_layout(lang), label

    auth.clientside_role(app, "viewer", ClientsideFunction("st", "lang_init"),
                         Output(ids.LANG, "value"), Input(ids.URL, "pathname"), State(ids.LANG_STORE, "data"))
    auth.clientside_role(app, "viewer", ClientsideFunction("st", "lang_save"),
                         Output(ids.LANG_STORE, "data"), Input(ids.LANG, "value"), prevent_initial_call=True)
    auth.clientside_role(app, "viewer", ClientsideFunction("twin", "mount"),
                         Output(ids.TWIN_MOUNTED, "data"), Input(ids.TWIN_CONFIG, "data"))
    auth.clientside_role(app, "viewer", ClientsideFunction("st", "render"),
                         Output(ids.LIVE_APPLIED, "data"), Input(ids.LIVE, "data"), Input(ids.LANG, "value"))

    # ------------------------------------------------------------- live push
    resync_wanted: set[int] = set()       # screens whose next push carries everything (see _resync)

    @auth.callback(app, "viewer", persistent=True)
    async def _push():
        """One per browser connection: wait for a newer snapshot, push what changed of its views."""
        ws = ctx.websocket
        seq, sent = -1, {}
        screen = _screen(ws)
        prev = None              # the beat of the last push queued to this screen
        who = auth.current()
        want_ops = who is not None and who.can("operator")
        want_patrol = who is not None and who.can("patrol")
        while ws is not None and not ws.is_shutdown:
            seq, snap = await hub.wait_newer(seq, timeout=10.0)
            if _backlog(ws) >= PUSH_BACKLOG:
                # this screen has not taken the last pushes (a slow link, a frozen tab): queue nothing
                # more; the next push sends what changed since the last one queued - the latest state
                hub.skipped += 1
                continue
            full = screen in resync_wanted
            if full:
                # the page found a push missing (see _resync): everything again, not what changed
                resync_wanted.discard(screen)
                sent = {}
            if snap.version == 0:
                set_props(ids.LIVE, {"data": {"beat": seq, "at": _now_ms(), "prev": prev}})
                prev = seq
                continue
            model = {"wall": views.get("wall", snap)}
            if want_ops:
                model["ops"] = views.get("ops", snap)
                model["patrols"] = views.get("patrols", snap)
            if want_patrol:
                model["patrol"] = views.get("patrol", snap)
                known = any(s.staff_id == who.username for s in snap.staff)
                model["mine"] = {"staff": known, "items": patrol_page.my_cases(snap, names, who.username, places)}
            patch = {}
            for view, m in model.items():
                changed = {k: v for k, v in m.items() if sent.get(view, {}).get(k) != v}
                if changed:
                    patch[view] = changed
                    sent[view] = m
            # a beat every push keeps the page's watchdog quiet even when nothing changed
            # "prev" lets the page see a push it never took: Dash runs the render once with the newest
            # data when several pushes arrive together, and the changes the earlier ones carried
            # would be lost for good (the next push carries only what changed since)
            # (beat, at, built lead, in that order: the benches read them from the raw frames)
            set_props(ids.LIVE, {"data": {"beat": seq, "at": _now_ms(), "built": snap.built_ms,
                                          "prev": prev, "full": full, **patch}})
            prev = seq
        resync_wanted.discard(screen)

    @auth.callback(app, "viewer", Output(ids.RESYNC_ACK, "data"), Input(ids.RESYNC, "data"), prevent_initial_call=True)
    def _resync(n):
        """The page saw a gap in the pushes' beats: its connection's next push carries every key."""
        ws = ctx.websocket
        if ws is not None:
            resync_wanted.add(_screen(ws))
        return n if isinstance(n, int) else None

    @auth.callback(app, "viewer", Output(ids.PONG, "data"), Input(ids.PING, "data"), prevent_initial_call=True)
    def _ping(n):
        """The page's watchdog sends this after a silence: sending reopens a closed socket,
        and Dash restarts the push callback on reconnect."""
        return n

    # ------------------------------------------------------------- details of a picked thing
    @auth.callback(app, "viewer", Output(ids.DETAILS, "children"), Output(ids.DETAILS, "className"),
                   Input(ids.SELECTED, "data"), Input(ids.LANG, "value"), prevent_initial_call=True)
    def _show_details(selection, lang):
        lang = i18n.pick_lang(lang)
        if not selection:
            return i18n.t("hint", lang), "st-hint"
        if isinstance(selection, dict) and selection.get("kind") == "zone":
            return _zone_details(selection.get("id"), hub.snapshot, names, lang), "st-detail-box"
        aid = data.resolve(selection)
        if aid is None:
            return i18n.t("not_found", lang), "st-hint"
        pairs = asset_details(data.by_id.loc[aid], lang, data.zone_names, names.departments)
        snap = hub.snapshot
        live = _live_pairs(aid, snap, names, lang)
        shown = {k for k, _ in live}
        if service is not None and hasattr(service, "asset_readings"):
            for metric, (v, at) in sorted(service.asset_readings(aid).items()):
                label, text = i18n.reading(metric, v, lang)
                when = localtime.fmt_local(at, date=at.date() != snap.now.date())
                if label not in shown:
                    pairs.append((label, f"{text} ({i18n.t('reading_at', lang)} {when})"))
        pairs += live
        return _details_table(pairs), "st-detail-box"

    # ------------------------------------------------------------- operator actions
    @auth.callback(app, "operator", Output(ids.ACTION_RESULT, "children"), Input(ids.ACTION, "data"),
                   State(ids.LANG, "value"), prevent_initial_call=True)
    def _act(action, lang):
        lang = i18n.pick_lang(lang)
        who = auth.require("operator")
        if service is None:
            return i18n.t("no_service", lang)
        return _do_action(service, who, action, lang)

    config_page.register(app, service, names)
    patrol_page.register(app, service, names)

    _routes_first(server, {"/", "/login", "/logout", "/healthz", "/readyz", "/twin/scene.json", "/twin/furniture.bin",
                           "/twin/tower.bin", "/patrol/photo", "/photos/{sha}"})
    # Dash scans the assets folder and builds its script list in a before-request
    # hook; a first request answered by one of our own routes (the login page)
    # would leave the first index page without our scripts.  Do it now, once
    # every callback is registered.
    app._setup_server()
    # the CSP names Dash's inline scripts by hash: known only now that every callback exists
    csp["policy"] = auth.content_security_policy(app.csp_hashes())
    return app


def _routes_first(server, paths: set[str]) -> None:
    """Our own routes before Dash's (FastAPI matches in order): Dash serves "/" and a
    catch-all page route itself, so ours are picked by being defined here, not by path."""
    here = __name__
    mine = [r for r in server.router.routes if getattr(r, "path", None) in paths
            and getattr(getattr(r, "endpoint", None), "__module__", None) == here]
    rest = [r for r in server.router.routes if r not in mine]
    server.router.routes[:] = mine + rest


def _details_table(pairs):
    return html.Table(className="st-details", children=[
        html.Tbody([html.Tr([html.Td(k), html.Td(str(v))]) for k, v in pairs])])


def _live_pairs(asset_id: str, snap, names: Names, lang: str) -> list[tuple[str, str]]:
    """The asset's live indicator values and its active alerts."""
    out = []
    zh = lang == "zh"
    for iid, (v, q) in snap.values.items():
        if f"={asset_id}@" not in iid and f"={asset_id}," not in iid:
            continue
        rule = snap.rules.get(iid)
        name = (getattr(rule, "name_zh", "") if zh else getattr(rule, "name_en", "")) or iid
        text = i18n.value_text(v, getattr(rule, "unit", ""), lang)
        if q != "ok":                      # idle: the asset is outside its operating hours
            text += " (" + i18n.t("idle" if q == "idle" else "stale", lang) + ")"
        out.append((name, text))
    for st in snap.alerts:
        rule = snap.rules.get(st.rule_id)
        labels = dict(getattr(rule, "labels", {}) or {})
        if asset_id in labels.values():
            from .views import alert_item
            a = alert_item(st, rule, names, snap.now)
            out.append((i18n.t("alert", lang), a["why_zh"] if zh else a["why_en"]))
    return out


def _zone_details(zid, snap, names: Names, lang: str):
    from indicators.pipeline import zone_indicator
    from .views import zone_tiers, TIER_NAMES
    if zid not in names.zones:
        return i18n.t("not_found", lang)
    zh = lang == "zh"
    pairs = [(i18n.t("field.zone", lang), names.zones[zid][0 if zh else 1])]
    for fam in ("crowd.count", "crowd.load_rate", "crowd.density"):
        iid = zone_indicator(fam, zid)
        v, q = snap.values.get(iid, (None, "no_data"))
        rule = snap.rules.get(iid)
        name = (getattr(rule, "name_zh", "") if zh else getattr(rule, "name_en", "")) or fam
        text = i18n.value_text(v, getattr(rule, "unit", ""), lang)
        if q != "ok":
            text += " (" + i18n.t("stale", lang) + ")"
        pairs.append((name, text))
    tier = zone_tiers(snap).get(zid)
    pairs.append((i18n.t("tier", lang), TIER_NAMES[tier][0 if zh else 1] if tier else i18n.t("normal", lang)))
    return _details_table(pairs)


def _do_action(service, who, action: Any, lang: str) -> str:
    """Run one console action; returns a message for the operator (never raises)."""
    from indicators.service import ActionError
    if not isinstance(action, dict) or not isinstance(action.get("kind"), str):
        return i18n.t("bad_action", lang)
    kind = action["kind"]
    target = str(action.get("id") or "")[:300]
    note = str(action.get("note") or "")[:500]
    by = who.username
    try:
        if kind == "ack":
            service.acknowledge(target, by=by, comment=note or i18n.t("acked", lang))
        elif kind == "assign":
            service.assign(target, assignee=str(action.get("to") or by)[:64], by=by, comment=note)
        elif kind == "escalate":
            service.escalate(target, by=by, comment=note)
        elif kind == "silence":
            service.silence(target, minutes=float(action.get("minutes") or 30), by=by, comment=note)
        elif kind == "case":
            service.case_from_alert(target, by=by, note=note)
        elif kind == "case_step":
            service.case_step(target, str(action.get("step") or ""), by=by, note=note or i18n.t("done", lang),
                              to_staff=str(action.get("to") or "")[:64] or None)
        elif kind == "plan_step":
            service.plan_step(target, str(action.get("step") or ""), by=by, note=note)
        else:
            return i18n.t("bad_action", lang)
    except (ActionError, ValueError, TypeError) as e:
        return f"{i18n.t('refused', lang)}: {e}"
    return i18n.t("action_done", lang)


# --------------------------------------------------------------------------- login
_LOGIN_HTML = """<!doctype html><html lang="{lang}"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1"><title>{title}</title>
<link rel="stylesheet" href="/assets/twin.css"></head><body class="st-login-body">
<form class="st-login" method="post" action="/login">
<h1>{title}</h1><p class="st-error" role="alert">{error}</p>
<input type="hidden" name="csrf" value="{csrf}"><input type="hidden" name="next" value="{next}">
<label>{user}<input name="username" autocomplete="username" autofocus></label>
<label>{pw}<input name="password" type="password" autocomplete="current-password"></label>
<button type="submit">{login}</button>
<details><summary>{device}</summary><label>{token}<input name="device_token" autocomplete="off"></label></details>
</form></body></html>"""


def _login_routes(server, access) -> None:
    from indicators.access.store import LoginRefused

    def page(request: Request, error: str = "", status: int = 200) -> Response:
        lang = "zh"
        token = auth.csrf_token()
        nxt = request.query_params.get("next", "/wall")
        body = _LOGIN_HTML.format(
            lang="zh-CN", title=htmlesc.escape(i18n.t("title", lang)), error=htmlesc.escape(error),
            csrf=token, next=htmlesc.escape(nxt if nxt.startswith("/") and not nxt.startswith("//") else "/wall"),
            user=i18n.t("username", lang), pw=i18n.t("password", lang), login=i18n.t("login", lang),
            device=i18n.t("device_login", lang), token=i18n.t("device_token", lang))
        r = HTMLResponse(body, status_code=status)
        r.set_cookie(auth.CSRF_COOKIE, token, httponly=True, samesite="strict")
        return r

    @server.get("/login", include_in_schema=False)
    def _login_form(request: Request):
        return page(request)

    @server.post("/login", include_in_schema=False)
    async def _login(request: Request):
        body = await request.body()
        if len(body) > 8192:
            return page(request, i18n.t("login_failed", "zh"), 413)
        from urllib.parse import parse_qs
        form = {k: v[0] for k, v in parse_qs(body.decode("utf-8", "replace"), max_num_fields=10).items()}
        if not auth.csrf_ok(request.cookies.get(auth.CSRF_COOKIE), form.get("csrf")):
            return page(request, i18n.t("csrf_failed", "zh"), 403)
        client = auth.CLIENT.get() or (request.client.host if request.client else "")
        try:
            if form.get("device_token"):
                token = access.device_login(str(form.get("device_token")), client=client)
            else:
                s = access.login(str(form.get("username", ""))[:64], str(form.get("password", ""))[:256],
                                 client=client)
                token = s.token
        except LoginRefused as e:
            key = {"rate_limited": "login_rate_limited", "disabled": "login_disabled"}.get(e.reason, "login_failed")
            return page(request, i18n.t(key, "zh"), 429 if e.reason == "rate_limited" else 401)
        nxt = str(form.get("next") or "/wall")
        if not nxt.startswith("/") or nxt.startswith("//"):
            nxt = "/wall"
        r = RedirectResponse(nxt, status_code=303)
        r.set_cookie(auth.COOKIE, token, httponly=True, samesite="strict", path="/")
        return r

    @server.get("/logout", include_in_schema=False)
    def _logout(request: Request):
        token = request.cookies.get(auth.COOKIE)
        if token:
            access.logout(token)
        r = RedirectResponse("/login", status_code=303)
        r.delete_cookie(auth.COOKIE, path="/")
        return r

    @server.get("/", include_in_schema=False)
    def _root():
        who = auth.current()
        if who is None:
            return RedirectResponse("/login", status_code=303)
        return RedirectResponse("/ops" if who.can("operator") else "/patrol" if who.can("patrol") else "/wall",
                                status_code=303)
