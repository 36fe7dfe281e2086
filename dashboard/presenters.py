"""Plain functions that turn model data into what a view shows.  No Dash here."""
from __future__ import annotations

import json

from . import i18n
from .scene import FURNITURE_STYLE


# The attributes an operator reads in the details panel: (zh, en, how the value reads).
# The rest (placement chainage, spacing, rule numbers, line ids) is how the
# inventory was built, not what the asset is, and stays off the screen.
ATTRS: dict[str, tuple[str, str, str]] = {
    "species": ("树种", "Species", "text"),
    "size_mm": ("尺寸", "Size", "mm"),
    "lamp": ("灯具", "Lamp", "text"),
    "kind": ("型号", "Kind", "enum"),
    "network": ("管网", "Network", "enum"),
    "nominal_pressure_mpa": ("额定水压", "Nominal pressure", "MPa"),
    "fov_deg": ("视场角", "Field of view", "°"),
    "range_m": ("监控距离", "Range", "m"),
    "ai": ("AI 视频分析", "AI video analysis", "bool"),
    "fractions": ("分类", "Fractions", "enum"),
    "capacity": ("容量", "Capacity", "text"),
    "seats": ("座位", "Seats", "text"),
    "coverage_m": ("覆盖半径", "Coverage", "m"),
    "counts_flow": ("客流计数", "Counts visitors", "bool"),
    "length_m": ("长度", "Length", "m"),
    "width_m": ("宽度", "Width", "m"),
    "languages": ("语言", "Languages", "enum"),
    "area_m2": ("面积", "Area", "m²"),
    "effective_area_m2": ("有效游览面积", "Effective area", "m²"),
    "capacity_instantaneous": ("瞬时承载量", "Instantaneous capacity", "persons"),
    "capacity_daily": ("日承载量", "Daily capacity", "persons"),
    "space": ("空间类型", "Space", "enum"),
    "direction": ("通行方向", "Direction", "enum"),
    "capacity_persons": ("额定载客", "Rated load", "persons"),
    "speed_mps": ("速度", "Speed", "m/s"),
    "structure": ("结构", "Structure", "enum"),
    "main_span_m": ("主跨", "Main span", "m"),
    "deck_height_m": ("桥面高度", "Deck height", "m"),
    "main_height_m": ("主塔高度", "Main tower height", "m"),
    "mast_height_m": ("天线桅杆高度", "Mast height", "m"),
    "accessible": ("无障碍", "Accessible", "bool"),
    "stalls": ("厕位", "Stalls", "text"),
}
ENUMS: dict[str, tuple[str, str]] = {
    "outdoor_dn150": ("室外消火栓 DN150", "Outdoor hydrant DN150"),
    "outdoor_dn100": ("室外消火栓 DN100", "Outdoor hydrant DN100"),
    "anti-vehicle stone bollard": ("防撞石墩", "Anti-vehicle stone bollard"),
    "wayfinding": ("导向标识", "Wayfinding"), "traffic_sign": ("交通标志", "Traffic sign"),
    "ticket and security gate": ("检票安检口", "Ticket and security gate"),
    "security check and counter": ("安检及计数口", "Security check and counter"),
    "passenger counter": ("客流计数口", "Passenger counter"),
    "sewage": ("污水", "Sewage"), "storm": ("雨水", "Storm water"), "power": ("电力", "Power"),
    "telecom": ("通信", "Telecom"), "water": ("给水", "Water supply"), "gas": ("燃气", "Gas"),
    "recyclable/residual": ("可回收物 / 其他垃圾", "Recyclable / residual"),
    "zh/en": ("中文 / 英文", "Chinese / English"),
    "plaza": ("广场", "Plaza"), "attraction": ("景点", "Attraction"), "walkway": ("步道", "Walkway"),
    "bridge": ("桥梁", "Bridge"), "concourse": ("站厅", "Concourse"),
    "bidirectional": ("双向", "Both ways"),
    "arch": ("拱桥", "Arch"), "girder": ("梁桥", "Girder"), "suspension": ("悬索桥", "Suspension"),
}
UNITS = {"persons": ("人", "persons")}


def _attr_text(value, how: str, lang: str) -> str | None:
    zh = lang == "zh"
    if value is None:
        return None
    if how == "bool":
        return ("是" if value else "否") if zh else ("yes" if value else "no")
    if how == "enum":
        names = ENUMS.get(str(value))
        return None if names is None else names[0 if zh else 1]
    if how == "text":
        return str(value)
    if isinstance(value, (int, float)):
        unit = UNITS.get(how, (how, how))[0 if zh else 1]
        return f"{value:,g} {unit}"
    return None


def asset_details(row, lang: str, zone_names: dict[str, tuple[str, str]],
                  departments: dict[str, tuple[str, str]] | None = None) -> list[tuple[str, str]]:
    """(label, value) pairs for the details panel; values are plain text in
    ``lang``: the type, department and attributes by their names, never codes."""
    from twin_assets.build import TYPE_NAMES
    lang = i18n.pick_lang(lang)
    zh = lang == "zh"
    name = row["name_zh"] if zh else row["name_en"]
    zn = zone_names.get(row["zone_id"], ("—", "—"))
    tn = TYPE_NAMES.get(row["type"], ("设施", "Asset"))
    dept = (departments or {}).get(row["department"], ("—", "—"))
    c = row["geometry"].representative_point() if row["geometry"].geom_type != "Point" else row["geometry"]
    out = [
        (i18n.t("field.asset_id", lang), row["asset_id"]),
        (i18n.t("field.type", lang), tn[0] if zh else tn[1]),
        (i18n.t("field.name", lang), name),
        (i18n.t("field.zone", lang), zn[0] if zh else zn[1]),
        (i18n.t("field.department", lang), dept[0] if zh else dept[1]),
        (i18n.t("field.elevation", lang), f"{row['base_elevation_m']:.1f} m / {row['height_m']:.1f} m"),
        (i18n.t("field.position", lang), f"{c.y:.6f}, {c.x:.6f}"),
    ]
    for k, v in json.loads(row["attrs"]).items():
        if k not in ATTRS:
            continue
        label_zh, label_en, how = ATTRS[k]
        text = _attr_text(v, how, lang)
        if text is not None:
            out.append((label_zh if zh else label_en, text))
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
