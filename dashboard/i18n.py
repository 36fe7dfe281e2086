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
    "idle": {"zh": "非运行时段", "en": "off duty"},
    "reading_at": {"zh": "读数时间", "en": "read at"},
    "not_found": {"zh": "未找到该资产", "en": "Asset not found"},
    "alert": {"zh": "告警", "en": "Alert"},
    "plan": {"zh": "应急预案", "en": "Emergency plan"},
    "cases": {"zh": "案件处置", "en": "Cases"},
    "tier": {"zh": "告警等级", "en": "Alert tier"},
    "normal": {"zh": "正常", "en": "Normal"},
    "logout": {"zh": "退出", "en": "Log out"},
    "denied": {"zh": "您的角色无权访问此页面。", "en": "Your role may not open this page."},
    "no_service": {"zh": "服务未运行", "en": "The service is not running"},
    "bad_action": {"zh": "无法识别的操作", "en": "Unknown action"},
    "refused": {"zh": "操作未执行", "en": "Not done"},
    "action_done": {"zh": "已完成", "en": "Done"},
    "acked": {"zh": "已确认", "en": "acknowledged"},
    "done": {"zh": "已处理", "en": "done"},
    "username": {"zh": "用户名", "en": "User name"},
    "password": {"zh": "密码", "en": "Password"},
    "login": {"zh": "登录", "en": "Log in"},
    "device_login": {"zh": "值守大屏设备登录", "en": "Wall display device"},
    "device_token": {"zh": "设备令牌", "en": "Device token"},
    "csrf_failed": {"zh": "页面已过期，请重新登录", "en": "The form expired; please log in again"},
    "login_failed": {"zh": "用户名或密码错误", "en": "Wrong user name or password"},
    "login_disabled": {"zh": "该账号已停用", "en": "This account is disabled"},
    "login_rate_limited": {"zh": "尝试次数过多，请15分钟后再试", "en": "Too many attempts; try again in 15 minutes"},
}

ROLE_NAMES = {"viewer": ("值守大屏", "Wall viewer"), "patrol": ("巡查员", "Patrol officer"),
              "operator": ("调度员", "Operator"), "supervisor": ("值班主管", "Supervisor"),
              "admin": ("系统管理员", "Administrator")}


def role_name(role: str, lang: str) -> str:
    zh, en = ROLE_NAMES.get(role, ("用户", "User"))
    return zh if lang == "zh" else en


def t(key: str, lang: str) -> str:
    entry = STRINGS[key]
    return entry.get(lang) or entry[DEFAULT]


def pick_lang(value) -> str:
    return value if value in LANGS else DEFAULT


# Facility readings as the details panel shows them: name, and how a value reads.
METRICS: dict[str, tuple[str, str, str]] = {
    # metric -> (zh, en, kind): kind "onoff" reads 1/0 as on/off, "ratio" as a percentage, else "value unit"
    "lamp_on": ("路灯亮灯", "Lamp lit", "onoff"),
    "lamp_power_w": ("路灯功率", "Lamp power", "W"),
    "hydrant_pressure_mpa": ("消防栓水压", "Hydrant pressure", "MPa"),
    "cover_tilt_deg": ("井盖倾角", "Cover tilt", "°"),
    "cover_displacement_mm": ("井盖位移", "Cover displacement", "mm"),
    "well_water_level_m": ("井内水位（距井盖）", "Water below cover", "m"),
    "camera_online": ("摄像机在线", "Camera online", "onoff"),
    "lift_running": ("电梯运行", "Lift running", "onoff"),
    "escalator_running": ("扶梯运行", "Escalator running", "onoff"),
    "toilet_occupancy": ("厕位占用", "Toilet occupancy", "ratio"),
    "bin_fill": ("垃圾桶满溢度", "Bin fill", "ratio"),
}
ON_OFF = {"zh": ("是", "否"), "en": ("yes", "no")}


def reading(metric: str, value: float, lang: str) -> tuple[str, str]:
    """(label, text) of one facility reading; an unknown metric keeps a neutral label."""
    zh, en, kind = METRICS.get(metric, ("设施读数", "Facility reading", ""))
    label = zh if lang == "zh" else en
    if kind == "onoff":
        yes, no = ON_OFF[lang]
        return label, yes if value >= 0.5 else no
    if kind == "ratio":
        return label, f"{value * 100:.0f} %"
    return label, f"{value:.4g} {kind}".strip()


from indicators.units import UNITS, unit_name  # noqa: E402  (one table for alerts and screens)

# Units whose numbers stand for states or levels
_STATES = {"1 online / 0 offline": (("在线", "离线"), ("online", "offline")),
           "1 running / 0 stopped": (("运行", "停止"), ("running", "stopped"))}


def value_text(v: float | None, unit: str, lang: str) -> str:
    """A live value with its unit, in words for states and levels."""
    if v is None:
        return "—"
    zh = lang == "zh"
    if unit in _STATES:
        on, off = _STATES[unit][0 if zh else 1]
        return on if v >= 0.5 else off
    if unit == "ratio 0-1":
        return f"{v * 100:.0f} %"
    if unit.startswith("level"):
        if "A-F" in unit:
            letter = "ABCDEF"[max(0, min(5, int(round(v)) - 1))]
            return f"{letter} 级" if zh else f"level {letter}"
        return f"{v:.0f} 级" if zh else f"level {v:.0f}"
    if unit == "%":
        return f"{v:.1f} %"
    num = f"{v:,.0f}" if abs(v) >= 100 else f"{v:.3g}" if abs(v) >= 0.01 else "0"
    return f"{num} {unit_name(unit, lang)}".strip()


# Bus routes serving the scenic area (FACTS.md §1 of the shared geodata: 262 and
# 468 serve 广州塔西, 旅游观光1号线, and the Guangzhou Sightseeing Bus night route).
ROUTES: dict[str, tuple[str, str]] = {
    "tourist_1": ("旅游观光1号线", "Tourist Line 1"),
    "sightseeing_night": ("观光巴士夜游线", "Sightseeing bus, night route"),
}


def route_name(route_id: str) -> tuple[str, str]:
    """A bus route as riders know it: numbered routes are "262路" / "Route 262"."""
    if route_id in ROUTES:
        return ROUTES[route_id]
    if route_id.isdigit():
        return f"{route_id}路", f"Route {route_id}"
    return "公交线路", "Bus route"


# The 24 AI-video algorithms (indicators.feeds.schemas.VIDEO_ALGORITHMS) by name.
ALGORITHMS: dict[str, tuple[str, str]] = {
    "crowd_gathering": ("人员聚集", "Crowd gathering"), "crowd_density_over_limit": ("人群密度超限", "Crowd density over limit"),
    "running": ("人员奔跑", "Running"), "wrong_way_flow": ("逆向人流", "Wrong-way flow"),
    "loitering": ("人员徘徊", "Loitering"), "queue_length": ("排队过长", "Long queue"),
    "fighting": ("打架斗殴", "Fighting"), "fall": ("人员跌倒", "Person fallen"), "sos_gesture": ("求救手势", "SOS gesture"),
    "fence_climbing": ("攀爬护栏", "Fence climbing"), "zone_intrusion": ("区域入侵", "Zone intrusion"),
    "person_near_water": ("临水靠近", "Person near water"), "smoke": ("烟雾", "Smoke"), "open_flame": ("明火", "Open flame"),
    "street_vendor": ("占道经营", "Street vendor"), "roaming_hawker": ("流动摊贩", "Roaming hawker"),
    "illegal_parking": ("违章停车", "Illegal parking"), "bike_misparking": ("单车乱停放", "Bike misparking"),
    "illegal_advertising": ("违规广告", "Illegal advertising"), "exposed_litter": ("暴露垃圾", "Exposed litter"),
    "overflowing_bin": ("垃圾满溢", "Overflowing bin"), "floating_debris": ("水面漂浮物", "Floating debris"),
    "standing_water": ("路面积水", "Standing water"), "camera_abnormal": ("摄像机异常", "Camera fault"),
}

