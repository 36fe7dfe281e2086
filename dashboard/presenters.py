"""Plain functions that turn model data into what a view shows.  No Dash here."""
from __future__ import annotations

import json

from . import i18n
from .scene import FURNITURE_STYLE


def asset_details(row, lang: str, zone_names: dict[str, tuple[str, str]]) -> list[tuple[str, str]]:
    """(label, value) pairs for the details panel; values are plain text."""
    lang = i18n.pick_lang(lang)
    name = row["name_zh"] if lang == "zh" else row["name_en"]
    zn = zone_names.get(row["zone_id"], (row["zone_id"], row["zone_id"]))
    c = row["geometry"].representative_point() if row["geometry"].geom_type != "Point" else row["geometry"]
    out = [
        (i18n.t("field.asset_id", lang), row["asset_id"]),
        (i18n.t("field.type", lang), row["type"]),
        (i18n.t("field.name", lang), name),
        (i18n.t("field.zone", lang), zn[0] if lang == "zh" else zn[1]),
        (i18n.t("field.department", lang), row["department"]),
        (i18n.t("field.elevation", lang), f"{row['base_elevation_m']:.1f} m / {row['height_m']:.1f} m"),
        (i18n.t("field.position", lang), f"{c.y:.6f}, {c.x:.6f}"),
    ]
    for k, v in sorted(json.loads(row["attrs"]).items()):
        if k in ("params_source",):
            continue
        out.append((k, v if isinstance(v, str) else json.dumps(v, ensure_ascii=False)))
    out.append((i18n.t("field.source", lang), row["source"]))
    return out


def legend(lang: str) -> list[tuple[str, tuple[int, int, int, int]]]:
    from twin_assets.build import TYPE_NAMES
    return [((TYPE_NAMES[t][0] if i18n.pick_lang(lang) == "zh" else TYPE_NAMES[t][1]), style[0])
            for t, style in FURNITURE_STYLE.items()]


def present_live(live: dict, lang: str, zone_names: dict[str, tuple[str, str]]):
    """KPI texts and the zone list from the pushed live state.

    ``live`` = {"as_of": ISO text, "present": int, "core_load": float (%),
    "alerts": int, "zones": {zone_id: {"load": %, "tier": name, "quality": q}}}.
    """
    from dash import html
    zones = live.get("zones", {})
    items = []
    for zid, z in sorted(zones.items(), key=lambda kv: -(kv[1].get("load") or 0)):
        zh, en = zone_names.get(zid, (zid, zid))
        load = z.get("load")
        text = "—" if load is None else f"{load:.0f}%"
        stale = z.get("quality") not in (None, "ok")
        items.append(html.Li(className=f"st-zone st-tier-{z.get('tier', 'none')}" + (" st-stale" if stale else ""),
                             children=[html.Span(zh if lang == "zh" else en), html.Span(text, className="st-zone-load")],
                             **{"data-zone": zid}))
    fmt = lambda v, f: "—" if v is None else f.format(v)
    return (live.get("as_of", "—"), fmt(live.get("present"), "{:,}"), fmt(live.get("core_load"), "{:.0f}%"),
            fmt(live.get("alerts"), "{:d}"), items or i18n.t("waiting", lang))
