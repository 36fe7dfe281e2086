"""The Dash app factory.

``create_app()`` builds one Dash app on the FastAPI backend (the backend that
can push over WebSocket callbacks) with the twin page and the plain HTTP
routes that serve the scene's binary buffers.  Run it with uvicorn:
``uvicorn.run(create_app().server)`` — ``scenic-twin run`` does.
"""
from __future__ import annotations

import json
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path

import dash
from dash import ClientsideFunction, Input, Output, ctx, dcc, html, set_props
from fastapi import Response

from twin_assets import inventory as inv

from . import i18n, ids
from .live import LiveHub
from .presenters import asset_details, legend, present_live
from .scene import furniture_binary, furniture_rows, static_scene, tower_binary

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


def _layout(lang: str = i18n.DEFAULT):
    return html.Div(className="st-app", children=[
        html.Header(className="st-header", children=[
            html.H1(i18n.t("title", lang), id=ids.TITLE),
            html.Span(i18n.t("subtitle", lang), id=ids.SUBTITLE, className="st-sub"),
            html.Div(className="st-spacer"),
            html.Div(className="st-kpis", children=[
                _kpi(ids.KPI_ASOF, "asof", lang), _kpi(ids.KPI_PRESENT, "present", lang),
                _kpi(ids.KPI_LOAD, "load", lang), _kpi(ids.KPI_ALERTS, "alerts", lang)]),
            dcc.RadioItems(id=ids.LANG, className="st-lang", value=i18n.DEFAULT, persistence=True,
                           options=[{"label": "中文", "value": "zh"}, {"label": "English", "value": "en"}],
                           inline=True),
        ]),
        html.Main(className="st-main", children=[
            html.Div(id=ids.DECK, className="st-deck"),
            html.Aside(className="st-side", children=[
                html.H3(i18n.t("details", lang), id=ids.DETAILS_TITLE),
                html.Div(i18n.t("hint", lang), id=ids.DETAILS, className="st-hint"),
                html.H3(i18n.t("zones", lang), id="zones-title"),
                html.Ul(i18n.t("waiting", lang), id=ids.ZONE_LIST, className="st-zones"),
                html.H3(i18n.t("legend", lang), id="legend-title"),
                html.Ul(id=ids.LEGEND, className="st-legend"),
            ]),
        ]),
        dcc.Store(id=ids.TWIN_CONFIG, data={"container": ids.DECK, "scene_url": "/twin/scene.json",
                                            "furniture_url": "/twin/furniture.bin", "tower_url": "/twin/tower.bin"}),
        dcc.Store(id=ids.TWIN_MOUNTED),
        dcc.Store(id=ids.SELECTED),
        dcc.Store(id=ids.LIVE),
        dcc.Store(id=ids.LIVE_APPLIED),
    ])


def _kpi(id_: str, label: str, lang: str):
    return html.Div(className="st-kpi", children=[
        html.Span(i18n.t(label, lang), id=f"{id_}-label", className="st-kpi-label"),
        html.Span("—", id=id_, className="st-kpi-value")])


def _details_table(pairs):
    return html.Table(className="st-details", children=[
        html.Tbody([html.Tr([html.Td(k), html.Td(str(v))]) for k, v in pairs])])


def create_app(data: TwinData | None = None, hub: LiveHub | None = None) -> dash.Dash:
    """The app; ``hub`` is where the engine publishes live state (a quiet one by default)."""
    data = data or TwinData(inv.load())
    hub = hub or LiveHub()
    app = dash.Dash(__name__, backend="fastapi", websocket_callbacks=True, compress=True,
                    assets_folder=str(ASSETS), title="广州塔景区数字孪生", update_title=None,
                    serve_locally=True)
    app.layout = _layout()
    server = app.server
    cache = {"Cache-Control": "no-cache"}

    @server.get("/twin/scene.json", include_in_schema=False)
    def _scene():
        return Response(data.scene_json, media_type="application/json", headers=cache)

    @server.get("/twin/furniture.bin", include_in_schema=False)
    def _furniture():
        return Response(data.furniture_bin, media_type="application/octet-stream", headers=cache)

    @server.get("/twin/tower.bin", include_in_schema=False)
    def _tower():
        return Response(data.tower_bin, media_type="application/octet-stream", headers=cache)

    @server.get("/healthz", include_in_schema=False)
    def _health():
        return {"ok": True, "assets": int(len(data.gdf))}

    app.clientside_callback(ClientsideFunction("twin", "mount"),
                            Output(ids.TWIN_MOUNTED, "data"), Input(ids.TWIN_CONFIG, "data"))

    @app.callback(Output(ids.DETAILS, "children"), Output(ids.DETAILS, "className"),
                  Input(ids.SELECTED, "data"), Input(ids.LANG, "value"), prevent_initial_call=True)
    def _show_details(selection, lang):
        lang = i18n.pick_lang(lang)
        if not selection:
            return i18n.t("hint", lang), "st-hint"
        aid = data.resolve(selection)
        if aid is None:
            return i18n.t("not_found", lang), "st-hint"
        return _details_table(asset_details(data.by_id.loc[aid], lang, data.zone_names)), "st-detail-box"

    app.clientside_callback(ClientsideFunction("twin", "live"),
                            Output(ids.LIVE_APPLIED, "data"), Input(ids.LIVE, "data"))

    @app.callback(persistent=True)
    async def _push():
        """One per browser connection: wait for newer live state, push what changed."""
        ws = ctx.websocket
        version, state = -1, {}
        while ws is not None and not ws.is_shutdown:
            version, changed = await hub.wait_newer(version, timeout=10.0)
            if not changed:
                continue
            state.update(changed)
            set_props(ids.LIVE, {"data": state})

    @app.callback(Output(ids.KPI_ASOF, "children"), Output(ids.KPI_PRESENT, "children"),
                  Output(ids.KPI_LOAD, "children"), Output(ids.KPI_ALERTS, "children"),
                  Output(ids.ZONE_LIST, "children"), Input(ids.LIVE, "data"), Input(ids.LANG, "value"),
                  prevent_initial_call=True)
    def _live_texts(live, lang):
        lang = i18n.pick_lang(lang)
        return present_live(live or {}, lang, data.zone_names)

    @app.callback(Output(ids.TITLE, "children"), Output(ids.SUBTITLE, "children"),
                  Output(ids.DETAILS_TITLE, "children"), Output("legend-title", "children"),
                  Output(ids.LEGEND, "children"), Output("zones-title", "children"),
                  Output(f"{ids.KPI_ASOF}-label", "children"), Output(f"{ids.KPI_PRESENT}-label", "children"),
                  Output(f"{ids.KPI_LOAD}-label", "children"), Output(f"{ids.KPI_ALERTS}-label", "children"),
                  Input(ids.LANG, "value"))
    def _texts(lang):
        lang = i18n.pick_lang(lang)
        items = [html.Li([html.Span(className="st-swatch",
                                    style={"background": f"rgba({c[0]},{c[1]},{c[2]},{c[3] / 255:.2f})"}), name])
                 for name, c in legend(lang)]
        return (i18n.t("title", lang), i18n.t("subtitle", lang), i18n.t("details", lang),
                i18n.t("legend", lang), items, i18n.t("zones", lang), i18n.t("asof", lang),
                i18n.t("present", lang), i18n.t("load", lang), i18n.t("alerts", lang))

    return app
