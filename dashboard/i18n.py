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
    "orderPaused": {"zh": "顺序已暂停：指针移开或静止 8 秒后恢复",
                    "en": "Order paused: resumes when the pointer leaves or rests 8 s"},
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
    "nav.wall": {"zh": "大屏", "en": "Wall"},
    "nav.ops": {"zh": "调度台", "en": "Console"},
    "nav.patrol": {"zh": "巡查", "en": "Patrol"},
    "patrols": {"zh": "近12小时巡查", "en": "Patrols, last 12 hours"},
    "patrol.hint": {"zh": "点按设施查看详情；长按场景任一处上报", "en": "Tap an asset for its details; long-press anywhere to report"},
    "patrol.play": {"zh": "开始/暂停虚拟巡查", "en": "Start/pause the virtual patrol"},
    "patrol.eye": {"zh": "人视角", "en": "Eye level"},
    "patrol.above": {"zh": "俯视", "en": "From above"},
    "patrol.tab.roam": {"zh": "巡查", "en": "Patrol"},
    "patrol.tab.mine": {"zh": "我的案件", "en": "My cases"},
    "patrol.tab.report": {"zh": "上报", "en": "Report"},
    "patrol.report.where": {"zh": "位置：当前巡查位置（长按场景可改）", "en": "Where: the patrol's position (long-press the scene to change)"},
    "patrol.report.type": {"zh": "类型", "en": "Type"},
    "patrol.report.note": {"zh": "说明", "en": "Note"},
    "patrol.report.photo": {"zh": "照片（可选）", "en": "Photo (optional)"},
    "patrol.report.send": {"zh": "上报", "en": "Send report"},
    "patrol.not_staff": {"zh": "此账号不是巡查员编号（如 patrol-07），没有派给它的案件", "en": "This account is not a patrol staff number (such as patrol-07): no cases are dispatched to it"},
    "nav.config": {"zh": "阈值配置", "en": "Thresholds"},
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
    # ---- the supervisors' threshold page (/config, dashboard/config_page.py)
    "config.title": {"zh": "告警阈值配置", "en": "Alert thresholds"},
    "config.search": {"zh": "搜索指标：名称、地点、类别", "en": "Search: name, place, family"},
    "config.family": {"zh": "全部类别", "en": "All families"},
    "config.zone": {"zh": "全部片区", "en": "All zones"},
    "config.feed": {"zh": "全部数据源", "en": "All feeds"},
    "config.level": {"zh": "全部层级", "en": "All levels"},
    "config.side": {"zh": "全部主体", "en": "All sides"},
    "config.all_of": {"zh": "（全部）", "en": " (all)"},
    "config.count": {"zh": "共 {n} 项指标", "en": "{n} indicators"},
    "config.count_of": {"zh": "共 {n} 项指标（全部 {total} 项）", "en": "{n} of {total} indicators"},
    "config.range": {"zh": "第 {a}–{b} 项", "en": "{a}–{b}"},
    "config.prev": {"zh": "上一页", "en": "Previous"},
    "config.next": {"zh": "下一页", "en": "Next"},
    "config.col.indicator": {"zh": "指标", "en": "Indicator"},
    "config.col.value": {"zh": "当前值", "en": "Now"},
    "config.col.tiers": {"zh": "阈值（蓝/黄/橙/红）", "en": "Thresholds (blue/yellow/orange/red)"},
    "config.col.direction": {"zh": "方向", "en": "Direction"},
    "config.col.pending": {"zh": "持续", "en": "Pending"},
    "config.col.hysteresis": {"zh": "回差（恢复值）", "en": "Hysteresis (recover at)"},
    "config.col.profiles": {"zh": "时段方案", "en": "Schedule / profiles"},
    "config.col.source": {"zh": "来源", "en": "From"},
    "config.dir.above": {"zh": "越高越严重", "en": "higher is worse"},
    "config.dir.below": {"zh": "越低越严重", "en": "lower is worse"},
    "config.none": {"zh": "无", "en": "none"},
    "config.disabled": {"zh": "已停用", "en": "disabled"},
    "config.pick": {"zh": "在列表中选择一项指标，查看其阈值及来源并修改", "en": "Pick an indicator in the list to see and change its thresholds"},
    "config.edit": {"zh": "修改", "en": "Change"},
    "config.editing": {"zh": "修改对象", "en": "Change"},
    "config.base_tiers": {"zh": "常规阈值", "en": "Everyday thresholds"},
    "config.tier_col": {"zh": "等级", "en": "Tier"},
    "config.threshold": {"zh": "触发值", "en": "Fires at"},
    "config.recover": {"zh": "恢复值", "en": "Recovers at"},
    "config.unset": {"zh": "未设置", "en": "not set"},
    "config.same": {"zh": "同触发值（无回差）", "en": "same as the threshold"},
    "config.pending": {"zh": "持续时间（达到阈值后多久告警）", "en": "Pending (how long before it fires)"},
    "config.keep_firing": {"zh": "恢复保持（低于阈值后继续告警多久）", "en": "Keep firing (after the value is back)"},
    "config.duration_hint": {"zh": "如 90秒、5分钟、1小时30分钟", "en": "e.g. 90s, 5m, 1h30m"},
    "config.hours": {"zh": "回测时长", "en": "Backtest over"},
    "config.hours_n": {"zh": "最近 {h} 小时", "en": "last {h} h"},
    "config.backtest": {"zh": "回测", "en": "Backtest"},
    "config.reason": {"zh": "修改原因（必填）", "en": "Reason (required)"},
    "config.save": {"zh": "保存为新版本", "en": "Save as a new version"},
    "config.reload": {"zh": "重新载入", "en": "Reload"},
    "config.loaded": {"zh": "基于第 {v} 版", "en": "based on version {v}"},
    "config.loaded0": {"zh": "基于出厂默认（尚无保存版本）", "en": "based on the shipped defaults (no saved version)"},
    "config.versions": {"zh": "版本记录", "en": "Versions"},
    "config.no_versions": {"zh": "尚无保存的版本：使用指标目录与出厂方案的默认阈值", "en": "No saved version: the catalog and shipped defaults apply"},
    "config.version": {"zh": "第 {v} 版", "en": "Version {v}"},
    "config.rollback": {"zh": "恢复到此版本", "en": "Restore this version"},
    "config.rollback0": {"zh": "恢复出厂默认", "en": "Restore the shipped defaults"},
    "config.v0": {"zh": "出厂默认：指标目录与出厂方案的阈值", "en": "Shipped defaults: the catalog's and the shipped thresholds"},
    "config.rollback_reason": {"zh": "恢复原因（必填）", "en": "Reason for restoring (required)"},
    "config.rolled_back": {"zh": "已将第 {to} 版的设置另存为第 {v} 版，下一次评估起生效", "en": "Saved the settings of version {to} as version {v}; in force from the next evaluation"},
    "config.saved": {"zh": "已保存为第 {v} 版，下一次评估（约 15 秒内）起生效", "en": "Saved as version {v}; in force from the next evaluation (within about 15 s)"},
    "config.nochange": {"zh": "没有改动：该指标已是这些设置，未保存新版本", "en": "Nothing changed: the rule already has these values; no version saved"},
    "config.refused": {"zh": "未保存，请按提示修改", "en": "Not saved: see the notes next to the fields"},
    "config.stale": {"zh": "未保存：您载入第 {e} 版之后，其他人已保存了新版本（当前为第 {l} 版）", "en": "Not saved: since you loaded version {e}, someone saved a newer one (now version {l})"},
    "config.stale_by": {"zh": "第 {v} 版 · {who} · {at} · 原因：", "en": "Version {v} · {who} · {at} · reason: "},
    "config.stale_what": {"zh": "他们改动了：", "en": "What they changed:"},
    "config.stale_hint": {"zh": "请点击“重新载入”查看最新设置，再重新修改并保存", "en": "Press Reload to see the latest settings, then make your change again and save"},
    "config.no_service": {"zh": "服务未运行：无法读取或保存阈值", "en": "The service is not running: thresholds cannot be read or saved"},
    "config.no_history": {"zh": "尚无历史数据可供回测（服务运行后每分钟写入一次）", "en": "No tick history to backtest yet (the service writes it every minute as it runs)"},
    "config.bt.summary": {"zh": "{a} 至 {b}（{h} 小时）：拟议阈值将产生 {p} 条告警（红色 {pr} 条），现行阈值产生 {c} 条（红色 {cr} 条）。",
                          "en": "{a} to {b} ({h} h): the proposed thresholds would have raised {p} alert(s) ({pr} red) where the current ones raised {c} ({cr} red)."},
    "config.bt.capped": {"zh": "为使回测在约 {s} 秒内完成，时长由 {r} 小时缩短为 {h} 小时。", "en": "Shortened from {r} h to {h} h so that it answers within about {s} s."},
    "config.bt.took": {"zh": "用时 {s} 秒，{n} 次评估（每 15 秒一次，与运行中的规则相同）", "en": "Took {s} s, {n} evaluations (every 15 s, as the running rules)"},
    "config.bt.tier": {"zh": "按最高等级统计", "en": "By highest tier"},
    "config.bt.total": {"zh": "合计", "en": "Total"},
    "config.current": {"zh": "现行", "en": "current"},
    "config.proposed": {"zh": "拟议", "en": "proposed"},
    "config.value": {"zh": "指标值", "en": "Value"},
    "config.src.catalog": {"zh": "指标目录", "en": "catalog"},
    "config.src.shipped": {"zh": "出厂方案", "en": "shipped"},
    "config.src.saved": {"zh": "已保存版本", "en": "saved"},
    "config.src.saved_v": {"zh": "第 {v} 版", "en": "version {v}"},
    "config.src.builtin": {"zh": "系统默认", "en": "built-in"},
    "config.src.catalog_s": {"zh": "目录", "en": "catalog"},
    "config.src.shipped_s": {"zh": "出厂", "en": "shipped"},
    "config.src.builtin_s": {"zh": "内置", "en": "built-in"},
    "config.src.inline": {"zh": "随方案设置", "en": "with the profile"},
    "config.f.name": {"zh": "指标", "en": "Indicator"},
    "config.f.place": {"zh": "地点", "en": "Place"},
    "config.f.feed": {"zh": "数据源", "en": "Feed"},
    "config.f.level": {"zh": "层级 / 主体", "en": "Level / side"},
    "config.f.value": {"zh": "当前值", "en": "Current value"},
    "config.f.direction": {"zh": "方向", "en": "Direction"},
    "config.f.pending": {"zh": "持续时间", "en": "Pending"},
    "config.f.keep_firing": {"zh": "恢复保持", "en": "Keep firing"},
    "config.f.nodata": {"zh": "无数据时", "en": "When no data"},
    "config.f.escalate": {"zh": "未确认升级", "en": "Escalate if unacknowledged"},
    "config.f.enabled": {"zh": "启用", "en": "Enabled"},
    "config.f.schedule": {"zh": "运行时段", "en": "Operating hours"},
    "config.f.profile": {"zh": "时段方案", "en": "Profile"},
    "config.f.calendar": {"zh": "日历", "en": "Calendar"},
    "config.yes": {"zh": "是", "en": "yes"},
    "config.no": {"zh": "否", "en": "no"},
    "config.always": {"zh": "全天", "en": "always"},
    "config.daily": {"zh": "每天 {a}–{b}", "en": "daily {a}–{b}"},
    "config.night": {"zh": "日落后 {a} 分钟至日出前 {b} 分钟", "en": "{a} min after sunset to {b} min before sunrise"},
    "config.dates": {"zh": "{n} 天：{a} … {b}", "en": "{n} days: {a} … {b}"},
    "config.nodata.nodata": {"zh": "标记为无数据", "en": "mark as no data"},
    "config.nodata.alerting": {"zh": "视为告警", "en": "treat as alerting"},
    "config.nodata.ok": {"zh": "视为正常", "en": "treat as normal"},
    "config.nodata.keep_last": {"zh": "保持原状态", "en": "keep the last state"},
    "config.level.scenic_area": {"zh": "景区级", "en": "Scenic area"},
    "config.level.district": {"zh": "区级", "en": "District"},
    "config.level.city": {"zh": "市级", "en": "City"},
    "config.side.government": {"zh": "政府", "en": "Government"},
    "config.side.enterprise": {"zh": "企业", "en": "Enterprise"},
    "config.side.society": {"zh": "社会", "en": "Society"},
    "config.win.now": {"zh": "实时", "en": "now"},
    "config.win.today": {"zh": "今日累计", "en": "today"},
    "config.win.trailing": {"zh": "近{d}", "en": "last {d}"},
    "config.win.ahead": {"zh": "{d}后预测", "en": "{d} ahead"},
    "config.profile.holiday": {"zh": "节假日方案", "en": "Holiday profile"},
    "config.new_profile": {"zh": "＋ 新建时段方案…", "en": "+ New profile…"},
    "config.new_name": {"zh": "方案名称", "en": "Profile name"},
    "config.new_name_hint": {"zh": "如 夜间、周末、春节", "en": "e.g. night, weekend, spring_festival"},
    "config.new_days": {"zh": "星期（不选为每天）", "en": "Days (none: every day)"},
    "config.new_hours": {"zh": "时段（不填为全天）", "en": "Hours (empty: all day)"},
    "config.new_hours_hint": {"zh": "如 22:00-06:00，多个用逗号分隔", "en": "e.g. 22:00-06:00, several with commas"},
    "config.custom_calendar": {"zh": "按星期和时段…", "en": "Days of the week and hours…"},
    "config.drop_profile": {"zh": "保存时删除此方案（恢复常规阈值）", "en": "Remove this profile when saving (everyday thresholds apply)"},
    "config.enabled_check": {"zh": "启用此告警规则（不启用时只记录数值，不告警）", "en": "Rule enabled (when off the value is kept, no alert is raised)"},
    "config.wd.mon": {"zh": "周一", "en": "Mon"}, "config.wd.tue": {"zh": "周二", "en": "Tue"},
    "config.wd.wed": {"zh": "周三", "en": "Wed"}, "config.wd.thu": {"zh": "周四", "en": "Thu"},
    "config.wd.fri": {"zh": "周五", "en": "Fri"}, "config.wd.sat": {"zh": "周六", "en": "Sat"},
    "config.wd.sun": {"zh": "周日", "en": "Sun"},
    "config.err.new_name": {"zh": "请为新方案命名", "en": "Give the new profile a name"},
    "config.err.name_chars": {"zh": "名称不能包含 . [ ] 引号 或以 + 开头", "en": "A name cannot contain . [ ] or quotes, nor start with +"},
    "config.err.name_taken": {"zh": "已有同名方案“{n}”：请在“修改对象”中选择它", "en": "There is already a profile “{n}”: pick it under Change"},
    "config.err.empty_calendar": {"zh": "请至少选择星期或填写时段", "en": "Pick days or give hours (or both)"},
    "config.err.pick_calendar": {"zh": "请选择一个日历", "en": "Pick a calendar"},
    "config.err.hours": {"zh": "“{v}”不是时段：请写成 22:00-06:00", "en": "“{v}” is not an hour range: write it like 22:00-06:00"},
    "config.calendar.golden_week": {"zh": "国庆黄金周", "en": "Golden Week"},
    "config.ch.added": {"zh": "{f}：设为 {n}", "en": "{f}: set to {n}"},
    "config.ch.removed": {"zh": "{f}：恢复默认（原为 {o}）", "en": "{f}: back to the default (was {o})"},
    "config.ch.changed": {"zh": "{f}：{o} → {n}", "en": "{f}: {o} → {n}"},
    "config.ch.tier_threshold": {"zh": "{t}触发值", "en": "{t} threshold"},
    "config.ch.tier_recover": {"zh": "{t}恢复值", "en": "{t} recover value"},
    "config.ch.all": {"zh": "全部设置", "en": "all settings"},
    "config.ch.other": {"zh": "其他设置", "en": "other settings"},
    "config.ch.profiles": {"zh": "时段方案", "en": "profiles"},
    "config.ch.calendar": {"zh": "日历", "en": "calendar"},
    "config.ch.more": {"zh": "另有 {n} 项改动", "en": "and {n} more changes"},
    "config.err.reason": {"zh": "请填写修改原因：原因随版本保存并记入审计日志", "en": "Give a reason: it is kept with the version and in the audit"},
    "config.err.number": {"zh": "请输入数字（收到：{v}）", "en": "Enter a number (got: {v})"},
    "config.err.negative": {"zh": "不能为负数，请输入 0 或更长的时长，如 90秒、5分钟", "en": "Must not be negative: give a duration ≥ 0 such as 90s or 5m"},
    "config.err.duration": {"zh": "无法识别的时长（收到：{v}），请写成 90秒、5分钟 或 1小时30分钟", "en": "Not a duration (got: {v}): write it like 90s, 5m or 1h30m"},
    "config.err.order": {"zh": "须{op}{t}阈值（{v}）：请填写{op} {v} 的值，或同时修改{t}阈值", "en": "Must be {op} the {t} threshold ({v}): give a value {op} {v}, or change {t} as well"},
    "config.err.recover": {"zh": "恢复值须{op}触发值（{v}）", "en": "The recover value must be {op} the threshold ({v})"},
    "config.err.missing": {"zh": "请先填写触发值", "en": "Give the threshold first"},
    "config.err.pick": {"zh": "请先在列表中选择一项指标", "en": "Pick an indicator first"},
    "config.err.failed": {"zh": "操作失败：{e}", "en": "Failed: {e}"},
}

ROLE_NAMES = {"viewer": ("值守大屏", "Wall viewer"), "patrol": ("巡查员", "Patrol officer"),
              "operator": ("调度员", "Operator"), "supervisor": ("值班主管", "Supervisor"),
              "admin": ("系统管理员", "Administrator")}


def role_label(role: str, lang: str) -> dict[str, str]:
    """A role's name as :func:`label` props."""
    return both(*ROLE_NAMES.get(role, ("用户", "User")), lang)


def t(key: str, lang: str) -> str:
    entry = STRINGS[key]
    return entry.get(lang) or entry[DEFAULT]


def label(key: str, lang: str) -> dict[str, str]:
    """A fixed label's props: its text in ``lang`` and both languages as ``data-zh`` /
    ``data-en``, from which the page relabels itself when the language is switched (wall.js):
    ``html.H3(**label("alerts", lang))``.  Only for an element whose text nothing else sets."""
    entry = STRINGS[key]
    return both(entry[DEFAULT], entry.get("en") or entry[DEFAULT], lang)


def both(zh: str, en: str, lang: str) -> dict[str, str]:
    """:func:`label` of a text given in both languages."""
    return {"children": en if lang == "en" else zh, "data-zh": zh, "data-en": en}


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
    "parking_free_spaces": ("停车场余位", "Free parking spaces", "spaces"),
    "parking_occupancy": ("停车场占用率", "Parking occupancy", "ratio"),
    "water_temperature_c": ("水温", "Water temperature", "°C"),
    "water_ph": ("pH值", "pH", ""),
    "dissolved_oxygen_mg_l": ("溶解氧", "Dissolved oxygen", "mg/L"),
    "turbidity_ntu": ("浊度", "Turbidity", "NTU"),
    "water_conductivity_us_cm": ("电导率", "Conductivity", "µS/cm"),
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

