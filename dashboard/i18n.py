"""UI strings: Simplified Chinese first, English as a switch."""
from __future__ import annotations

LANGS = ("zh", "en")
DEFAULT = "zh"

STRINGS: dict[str, dict[str, str]] = {
    "title": {"zh": "广州塔景区数字孪生运营中心", "en": "Canton Tower Scenic Area — Digital Twin Operations"},
    "subtitle": {"zh": "景区体征 · 三维资产 · 告警处置", "en": "Vital signs · 3D assets · alerts and dispatch"},
    "details": {"zh": "资产详情", "en": "Asset details"},
    "hint": {"zh": "点击三维场景中的任一资产查看详情", "en": "Click any asset in the 3D scene to see its details"},
    "legend": {"zh": "图例", "en": "Legend"},
    "field.asset_id": {"zh": "资产编号", "en": "Asset id"},
    "field.type": {"zh": "类型", "en": "Type"},
    "field.name": {"zh": "名称", "en": "Name"},
    "field.zone": {"zh": "所属片区", "en": "Zone"},
    "field.department": {"zh": "权属部门", "en": "Owning department"},
    "field.elevation": {"zh": "基底高程 / 高度", "en": "Base elevation / height"},
    "field.position": {"zh": "位置 (WGS 84)", "en": "Position (WGS 84)"},
    "field.source": {"zh": "数据来源", "en": "Source"},
    "asof": {"zh": "数据时间", "en": "Data as of"},
    "present": {"zh": "景区在园人数", "en": "Visitors present"},
    "load": {"zh": "核心区承载率", "en": "Core-area load"},
    "alerts": {"zh": "活动告警", "en": "Active alerts"},
    "zones": {"zh": "片区承载", "en": "Zone load"},
    "waiting": {"zh": "等待实时数据…", "en": "Waiting for live data…"},
    "stale": {"zh": "数据延迟", "en": "stale"},
    "not_found": {"zh": "未找到该资产", "en": "Asset not found"},
}


def t(key: str, lang: str) -> str:
    entry = STRINGS[key]
    return entry.get(lang) or entry[DEFAULT]


def pick_lang(value) -> str:
    return value if value in LANGS else DEFAULT
