"""The supervisors' threshold page (``/config``): find a rule, see where each value comes from,
change it, backtest the change, save it with a reason, and read, compare and roll back versions.

* :func:`config_layout` is the page (Chinese first; the texts follow the language switch);
* :func:`register` adds its callbacks, every one through :func:`dashboard.auth.callback` with the
  role ``supervisor`` (and ``auth.require`` again inside each callback that reads or writes);
* the reads and writes are the service's (:meth:`indicators.service.Service.threshold_search`,
  ``threshold_describe``, ``save_threshold``, ``rollback_thresholds``, ``threshold_history``,
  ``backtest_threshold``); this module only turns them into words and components.

What reaches the screen is words, never ids or codes: an indicator reads as its name, what
distinguishes it (algorithm, class, category …), its place and its window; a source reads
"指标目录" / "出厂方案" / "第 3 版"; a version's changes read "西广场 · 客流承载率：红色触发值
100 → 95".  Rule ids travel only in component ids and ``data-rule`` attributes.  Reasons, names
and other stored text are passed to Dash components as text (React escapes it), never as HTML.

The list is paged (:data:`PAGE_SIZE` rows at a time) over the 1,373 rules; the search matches
every word typed against the indicator's words in both languages.
"""
from __future__ import annotations

import logging
import math
import re
from datetime import datetime
from types import SimpleNamespace
from typing import Any, Callable

from dash import ALL, Input, Output, State, ctx, dcc, html, no_update

from indicators import localtime
from indicators.units import unit_name

from . import auth, i18n, ids
from .views import FAMILY_NAMES, FEED_NAMES, TIER_NAMES, TIERS, Names, _place, _qualifier

log = logging.getLogger(__name__)

PAGE_SIZE = 40
"""Rows drawn at a time: the list never puts 1,373 rows into the page."""
CHANGES_SHOWN = 6
"""Changes listed per version before "and N more"."""
HOURS = (1, 3, 6, 12, 24)
"""Backtest windows offered; the service shortens a window that would not answer in seconds."""

# --------------------------------------------------------------------------- component ids
ROOT = "cfg-root"
SEARCH = "cfg-search"
F_FAMILY, F_ZONE, F_FEED, F_LEVEL, F_SIDE = "cfg-family", "cfg-zone", "cfg-feed", "cfg-level", "cfg-side"
COUNT, LIST_HEAD, LIST, RANGE, PREV, NEXT, PAGE_NO = ("cfg-count", "cfg-list-head", "cfg-list", "cfg-range",
                                                      "cfg-prev", "cfg-next", "cfg-page-no")
ROW = "cfg-row"                           # pattern-matching id type of a list row: {"type": ROW, "index": rule id}
SELECTED, LOADED = "cfg-selected", "cfg-loaded"
DETAIL, EDITOR, EDIT_TITLE, LOADED_NOTE, PROFILE = ("cfg-detail", "cfg-editor", "cfg-edit-title", "cfg-loaded-note",
                                                    "cfg-profile")
PENDING, KEEP = "cfg-pending", "cfg-keep-firing"
HOURS_IN, BACKTEST, BT_RESULT, GRAPH, GRAPH_BOX = "cfg-hours", "cfg-backtest", "cfg-bt-result", "cfg-graph", "cfg-graph-box"
REASON, SAVE, SAVE_RESULT, RELOAD, SAVED_REV = "cfg-reason", "cfg-save", "cfg-save-result", "cfg-reload", "cfg-saved-rev"
VERSIONS, VERSIONS_AT, RB, RB_REASON, RB_RESULT, RB_REV = ("cfg-versions", "cfg-versions-at", "cfg-rb", "cfg-rb-reason",
                                                           "cfg-rb-result", "cfg-rb-rev")
ERR_GENERAL = "cfg-err-general"
# a new calendar profile (a Golden Week, a night, a weekend) or dropping the chosen one
NEW_PROFILE = "+new"                      # the PROFILE choice "a new profile"
CUSTOM_CAL = "+custom"                    # the NEW_CAL choice "days of the week and hours"
NEW_BOX, NEW_NAME, NEW_CAL, CUSTOM_BOX, NEW_DAYS, NEW_HOURS = ("cfg-new-box", "cfg-new-name", "cfg-new-cal",
                                                               "cfg-custom-box", "cfg-new-days", "cfg-new-hours")
DROP_BOX, DROP, ENABLED = "cfg-drop-box", "cfg-drop", "cfg-enabled"
WEEKDAY_KEYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")   # indicators.alerts.rules.WEEKDAYS
SCALE = "cfg-scale"                       # the page's rem / 16 px, measured in the browser (for the chart's text)


def tier_input(tier: str, recover: bool = False) -> str:
    return f"cfg-{tier}" + ("-recover" if recover else "")


# The form's fields by the name a FieldProblem gives them (indicators.thresholds.edit).
FIELDS = [f"tiers.{t}{s}" for t in TIERS for s in ("", ".recover")] + ["pending", "keep_firing", "reason",
                                                                        "profile", "calendar"]


def err_id(field: str) -> str:
    return "cfg-err-" + field.replace(".", "-")


# Static texts of the page: (component id, property, i18n key).  Tier names come from views.TIER_NAMES.
STATIC: list[tuple[str, str, str]] = [
    ("cfg-l-title", "children", "config.title"), (SEARCH, "placeholder", "config.search"),
    (F_FAMILY, "placeholder", "config.family"), (F_ZONE, "placeholder", "config.zone"),
    (F_FEED, "placeholder", "config.feed"), (F_LEVEL, "placeholder", "config.level"),
    (F_SIDE, "placeholder", "config.side"), (PREV, "children", "config.prev"), (NEXT, "children", "config.next"),
    ("cfg-l-edit", "children", "config.edit"), ("cfg-l-profile", "children", "config.editing"),
    ("cfg-l-tier", "children", "config.tier_col"), ("cfg-l-threshold", "children", "config.threshold"),
    ("cfg-l-recover", "children", "config.recover"), ("cfg-l-pending", "children", "config.pending"),
    ("cfg-l-keep", "children", "config.keep_firing"), (PENDING, "placeholder", "config.duration_hint"),
    (KEEP, "placeholder", "config.duration_hint"), ("cfg-l-hours", "children", "config.hours"),
    (BACKTEST, "children", "config.backtest"), (REASON, "placeholder", "config.reason"),
    (SAVE, "children", "config.save"), (RELOAD, "children", "config.reload"),
    ("cfg-l-versions", "children", "config.versions"), (RB_REASON, "placeholder", "config.rollback_reason"),
    ("cfg-l-new-name", "children", "config.new_name"), (NEW_NAME, "placeholder", "config.new_name_hint"),
    ("cfg-l-new-cal", "children", "config.f.calendar"), ("cfg-l-new-days", "children", "config.new_days"),
    ("cfg-l-new-hours", "children", "config.new_hours"), (NEW_HOURS, "placeholder", "config.new_hours_hint"),
    *[(tier_input(t), "placeholder", "config.unset") for t in TIERS],
    *[(tier_input(t, True), "placeholder", "config.same") for t in TIERS],
]


def T(key: str, lang: str, **kw) -> str:
    text = i18n.t(key, lang)
    return text.format(**kw) if kw else text


# --------------------------------------------------------------------------- words
def num(v: Any) -> str:
    """A threshold as people write it: 7987.200000000001 -> 7987.2, 100.0 -> 100."""
    if v is None:
        return "—"
    if isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v):
        return str(v)
    return f"{v:.6g}"


def with_unit(v: Any, unit: str, lang: str) -> str:
    from indicators.units import with_unit as wu
    return wu(num(v), unit, lang)


def duration_words(seconds: float | None, lang: str) -> str:
    """90 -> "1分30秒" / "1m 30s"; 0 -> "无" / "none"."""
    if seconds is None:
        return "—"
    s = float(seconds)
    if s <= 0:
        return T("config.none", lang)
    h, rest = divmod(int(round(s)), 3600)
    m, sec = divmod(rest, 60)
    units = (("小时", "分钟", "秒") if lang == "zh" else ("h", "min", "s"))
    parts = [f"{v}{u}" if lang == "zh" else f"{v} {u}" for v, u in zip((h, m, sec), units) if v]
    return ("" if lang == "zh" else " ").join(parts)


def duration_input(seconds: float | None, lang: str) -> str:
    """A duration as the form shows it: "5分钟" / "5m" (read back by :func:`normalise_duration`)."""
    if seconds is None:
        return ""
    s = int(round(float(seconds)))
    if s == 0:
        return "0"
    h, rest = divmod(s, 3600)
    m, sec = divmod(rest, 60)
    units = ("小时", "分钟", "秒") if lang == "zh" else ("h", "m", "s")
    return "".join(f"{v}{u}" for v, u in zip((h, m, sec), units) if v)


_ZH_UNITS = (("小时", "h"), ("钟头", "h"), ("时", "h"), ("分钟", "m"), ("分", "m"), ("秒钟", "s"), ("秒", "s"))


def normalise_duration(text: str) -> str:
    """The form's duration in the rules' grammar: "1小时30分钟" -> "1h30m", "90" -> "90s"."""
    t = (text or "").strip().replace(" ", "").lower()
    for zh, u in _ZH_UNITS:
        t = t.replace(zh, u)
    t = t.replace("min", "m").replace("sec", "s")
    return t + "s" if re.fullmatch(r"\d+(\.\d+)?", t) and t != "0" else t


def window_words(indicator_id: str, lang: str) -> str:
    """The indicator's window in words: 实时, 今日累计, 近15分钟, 30分钟后预测."""
    from indicators.catalog import ids as grammar
    try:
        w = grammar.parse(indicator_id).window
    except grammar.IdError:
        return ""
    if w.kind in ("now", "today"):
        return T(f"config.win.{w.kind}", lang)
    return T(f"config.win.{w.kind}", lang, d=duration_words(w.seconds, lang))


def source_words(source: str | None, lang: str, short: bool = False) -> str:
    """Where a value comes from (indicators.thresholds.book) in words (``short``: for the list)."""
    s = source or ""
    sfx = "_s" if short else ""
    if s.startswith("catalog"):
        return T("config.src.catalog" + sfx, lang)
    if s.startswith("shipped"):
        return T("config.src.shipped" + sfx, lang)
    if s.startswith("saved"):
        m = re.search(r"version (\d+)", s)
        return T("config.src.saved_v", lang, v=m[1]) if m else T("config.src.saved", lang)
    if s == "inline":
        return T("config.src.inline", lang)
    return T("config.src.builtin" + sfx, lang)


def tier_name(tier: str, lang: str) -> str:
    return TIER_NAMES.get(tier, (tier, tier))[0 if lang == "zh" else 1]


def profile_words(name: str | None, lang: str) -> str:
    """A profile's name: the known ones in words, a supervisor's own name as they wrote it."""
    key = f"config.profile.{name}"
    return i18n.t(key, lang) if key in i18n.STRINGS else str(name or "")


def calendar_words(name: str | None, lang: str) -> str:
    key = f"config.calendar.{name}"
    return i18n.t(key, lang) if key in i18n.STRINGS else str(name or "")


def calendar_label(cal: dict[str, Any] | None, lang: str) -> str:
    """When a profile applies, in words: a named calendar by its name, one written with the
    profile by its days and hours ("周六、周日 · 22:00–06:00")."""
    cal = cal or {}
    if cal.get("name"):
        return calendar_words(cal["name"], lang)
    sep = "、" if lang == "zh" else ", "
    days = [T(f"config.wd.{d}", lang) for d in WEEKDAY_KEYS if d in {str(w).lower() for w in cal.get("weekdays") or []}]
    hours = [str(h).replace("-", "–") for h in cal.get("hours") or []]
    dates = [str(d) for d in cal.get("dates") or []]
    parts = [sep.join(days) if days else "", sep.join(hours) if hours else "",
             T("config.dates", lang, n=len(dates), a=dates[0], b=dates[-1]) if dates else ""]
    return " · ".join(x for x in parts if x) or T("config.always", lang)


def profile_option(p: dict[str, Any], lang: str) -> str:
    name, cal = profile_words(p["name"], lang), calendar_label(p.get("calendar"), lang)
    return f"{name}（{cal}）" if lang == "zh" else f"{name} ({cal})"


class Words:
    """The indicators in words, built once per app from the service's catalog rows and
    inventory; also what the search matches against."""

    def __init__(self, service, names: Names):
        self.service = service
        self.names = names
        self._rows: dict[str, dict[str, Any]] | None = None
        self._hay: dict[str, str] = {}
        self._assets: tuple[dict[str, int], dict[str, str]] | None = None

    # (the caches are built whole and then assigned: callbacks run in several threads at once)
    def rows(self) -> dict[str, dict[str, Any]]:
        """id -> the rule's catalog facts (names, family, labels, unit, feed, level, side)."""
        if self._rows is None:
            self._rows = {} if self.service is None else {r["id"]: r for r in self.service.threshold_search()}
        return self._rows

    def assets(self) -> tuple[dict[str, int], dict[str, str]]:
        """(asset id -> its number among the assets of its type in its zone, when there are
        several; asset id -> zone id).  179 cameras are all "视频监控": the list says
        "北岸 · 视频监控 10号"."""
        if self._assets is None:
            ordinal: dict[str, int] = {}
            zones: dict[str, str] = {}
            gdf = getattr(self.service, "inventory", None)
            if gdf is not None:
                df = gdf[["asset_id", "type", "zone_id"]].sort_values("asset_id")
                zones = dict(zip(df["asset_id"], df["zone_id"]))
                for _, g in df.groupby(["type", "zone_id"]):
                    if len(g) > 1:
                        ordinal.update({a: i + 1 for i, a in enumerate(g["asset_id"])})
            self._assets = (ordinal, zones)
        return self._assets

    def place(self, labels: dict[str, str], lang: str) -> str:
        """Where: the asset (with its zone, and its number when its name is shared), else the
        zone, route or the scenic area (views._place)."""
        zh = lang == "zh"
        pzh, pen, _ = _place(SimpleNamespace(labels=labels), self.names)
        text = pzh if zh else pen
        asset = next((labels[k] for k in ("asset", "camera", "gate", "station", "stop", "segment")
                      if labels.get(k) in self.names.assets), None)
        if asset is not None:
            ordinal, zones = self.assets()
            n = ordinal.get(asset)
            if n is not None and not re.search(r"\d", text):
                text += f" {n}号" if zh else f" {n}"
            if zones.get(asset):
                text = f"{self.names.zone(zones[asset])[0 if zh else 1]} · {text}"
        return text

    def title(self, row: dict[str, Any], lang: str) -> str:
        """The indicator's name and what distinguishes it: 视频AI事件数（人员跌倒）."""
        zh = lang == "zh"
        qzh, qen = _qualifier(SimpleNamespace(labels=row.get("labels") or {}), self.names)
        name = row.get("name_zh" if zh else "name_en") or ""
        q = qzh if zh else qen
        return name + ((f"（{q}）" if zh else f" ({q})") if q else "")

    def where(self, row: dict[str, Any], lang: str) -> str:
        """Place and window: 西广场 · 实时."""
        return " · ".join(x for x in (self.place(row.get("labels") or {}, lang), window_words(row["id"], lang)) if x)

    def full(self, rule_id: str, lang: str) -> str:
        row = self.rows().get(rule_id)
        if row is None:
            return T("config.ch.other", lang)
        return f"{self.where(row, lang)} · {self.title(row, lang)}"

    def haystack(self, rule_id: str) -> str:
        """Everything the search matches for one rule, both languages, case-folded."""
        h = self._hay.get(rule_id)
        if h is None:
            row = self.rows().get(rule_id, {"id": rule_id})
            group = FAMILY_NAMES.get(str(row.get("family", "")).split(".")[0], ("", ""))
            h = " ".join([*(self.title(row, lg) for lg in ("zh", "en")), *(self.where(row, lg) for lg in ("zh", "en")),
                          *group, str(row.get("family", "")), rule_id]).casefold()
            self._hay[rule_id] = h
        return h

    def matches(self, rule_id: str, text: str | None) -> bool:
        words = (text or "").casefold().split()
        return all(w in self.haystack(rule_id) for w in words)


# --------------------------------------------------------------------------- problems in words
_ORDER = re.compile(r"^must be ([≥≤]) (\w+) \(([^)]*)\)")
_RECOVER = re.compile(r"^must be ([≥≤]) the threshold \(([^)]*)\)")


def problem_text(problem, lang: str) -> str:
    """A FieldProblem's message in the page's language (the common ones; others as they are)."""
    msg = str(getattr(problem, "message", problem))
    field = getattr(problem, "field", "")
    if field == "reason":
        return T("config.err.reason", lang)
    if msg.startswith("must be a finite number, got "):
        return T("config.err.number", lang, v=msg.rsplit("got ", 1)[1].strip("'\""))
    if msg.startswith("must not be negative"):
        return T("config.err.negative", lang)
    if "is not a duration" in msg:
        return T("config.err.duration", lang, v=msg.split(" is not a duration", 1)[0].strip("'\""))
    m = _RECOVER.match(msg)
    if m:
        return T("config.err.recover", lang, op=m[1], v=m[2])
    m = _ORDER.match(msg)
    if m:
        return T("config.err.order", lang, op=m[1], t=tier_name(m[2], lang), v=m[3])
    if msg == "missing":
        return T("config.err.missing", lang)
    if msg.startswith("not an hour range"):
        return T("config.err.hours", lang, v=msg.split(": ", 1)[-1].strip("'\""))
    if msg.startswith("empty calendar"):
        return T("config.err.empty_calendar", lang)
    if msg.startswith("unknown calendar"):
        return T("config.err.pick_calendar", lang)
    return msg


def form_field(field: str, profile: str | None) -> str | None:
    """The form field a problem's field names (``profiles.holiday.tiers.red`` while editing the
    holiday profile -> ``tiers.red``); None: no field of the form (shown above the buttons)."""
    f = field or ""
    if profile and f.startswith(f"profiles.{profile}."):
        f = f[len(f"profiles.{profile}."):]
    if f.endswith(".threshold"):
        f = f[: -len(".threshold")]
    if f == "calendar" or f.startswith(("calendar.", "calendar[")):
        return "calendar"
    if f == "profiles" or (profile and f == f"profiles.{profile}"):
        return "profile"
    return f if f in FIELDS else None


# --------------------------------------------------------------------------- the form -> a Change
def parse_number(text: Any) -> Any:
    """A typed threshold: a float, None for an empty field, or the text itself when it is not a
    number (the service then names the field and says what is wrong)."""
    if text is None:
        return None
    if isinstance(text, (int, float)) and not isinstance(text, bool):
        return float(text)
    t = str(text).strip().replace(",", "").replace("，", "")
    if not t:
        return None
    try:
        return float(t)
    except ValueError:
        return str(text).strip()


_HOUR_RANGE = re.compile(r"^(\d{1,2}):(\d{2})\s*[-–—~至到]\s*(\d{1,2}):(\d{2})$")


def hour_ranges(text: Any) -> list[str]:
    """The hours a supervisor typed ("22:00-06:00, 7:30–9:00") as the rules write them
    ("HH:MM-HH:MM"); anything else is passed on as typed for the rules to refuse by field."""
    out = []
    for part in re.split(r"[,，;；、\s]+(?=\d)", str(text or "").strip()):
        part = part.strip()
        if not part:
            continue
        m = _HOUR_RANGE.match(part)
        out.append(f"{int(m[1]):02d}:{m[2]}-{int(m[3]):02d}:{m[4]}" if m else part)
    return out


def new_profile(loaded: dict[str, Any], name: Any, calendar: Any, days: Any, hours: Any,
                lang: str) -> tuple[str | None, Any, dict[str, str]]:
    """A new profile's name and calendar from the form (a defined calendar's name, or a table of
    weekdays and hours), and the notes by field for what the rules cannot judge themselves."""
    errors: dict[str, str] = {}
    name = str(name or "").strip()
    if not name:
        errors["profile"] = T("config.err.new_name", lang)
    elif any(c in name for c in '.[]"\'') or any(ord(c) < 32 for c in name) or name.startswith("+"):
        errors["profile"] = T("config.err.name_chars", lang)
    elif name in (loaded.get("tiers") or {}):
        errors["profile"] = T("config.err.name_taken", lang, n=profile_words(name, lang))
    if calendar == CUSTOM_CAL:
        cal: Any = {k: v for k, v in (("weekdays", [d for d in WEEKDAY_KEYS if d in (days or [])]),
                                      ("hours", hour_ranges(hours))) if v}
        if not cal:
            errors["calendar"] = T("config.err.empty_calendar", lang)
    elif isinstance(calendar, str) and calendar in (loaded.get("calendars") or []):
        cal = calendar
    else:
        cal = None
        errors["calendar"] = T("config.err.pick_calendar", lang)
    return (name or None), cal, errors


def build_change(loaded: dict[str, Any], profile: str | None, values: dict[str, Any], pending: Any,
                 keep_firing: Any, *, new: tuple[str | None, Any] | None = None, drop: bool = False,
                 enabled: bool | None = None):
    """The Change the form asks for: only what differs from what was loaded.  ``new``: the
    (name, calendar) of a profile to create with the form's tiers; ``drop``: remove ``profile``;
    ``enabled``: the rule on or off."""
    from indicators.alerts.rules import parse_duration
    from indicators.thresholds import Change
    enabled_change = None if enabled is None or enabled == loaded.get("enabled", True) else bool(enabled)
    if new is not None:
        profile = None                       # the form shows the everyday tiers to start from
    if drop and profile:
        return Change(profile=profile, drop_profile=True, enabled=enabled_change)
    base = (loaded.get("tiers") or {}).get(profile or "", {})
    tiers, recover = {}, {}
    for t in TIERS:
        cur = base.get(t)
        thr = parse_number(values.get(f"tiers.{t}"))
        if thr is not None and (cur is None or thr != cur[0]):
            tiers[t] = thr
        # an empty recover field means "no hysteresis: recovers at the threshold" (the form shows
        # it empty when the two are equal); clearing it where there was one says so
        rec = parse_number(values.get(f"tiers.{t}.recover"))
        if rec is None and cur is not None and cur[1] != cur[0]:
            rec = thr if thr is not None else cur[0]
        if rec is not None and (cur is None or rec != cur[1]):
            recover[t] = rec

    def duration(text: Any, loaded_s: float | None) -> Any:
        t = normalise_duration(str(text or ""))
        if not t:
            return None
        try:
            if loaded_s is not None and parse_duration(t) == float(loaded_s):
                return None
        except ValueError:
            pass                             # the service says what is wrong with it, by field
        return t
    # the profile only when its tiers change: naming it copies the shipped profiles into the saved
    # document, which would then no longer follow the shipped file
    if new is not None:
        return Change(tiers=tiers, recover=recover, pending=duration(pending, loaded.get("pending_s")),
                      keep_firing=duration(keep_firing, loaded.get("keep_firing_s")), enabled=enabled_change,
                      profile=new[0], calendar=new[1])
    return Change(tiers=tiers, recover=recover, pending=duration(pending, loaded.get("pending_s")),
                  keep_firing=duration(keep_firing, loaded.get("keep_firing_s")), enabled=enabled_change,
                  profile=(profile or None) if tiers or recover else None)


# --------------------------------------------------------------------------- pieces of the page
def _field(label_id: str, input_component, field: str, label_key: str, lang: str):
    return html.Div(className="st-cfg-field", children=[
        html.Label(T(label_key, lang), id=label_id, htmlFor=input_component.id),
        input_component, html.Div(id=err_id(field), className="st-cfg-err", role="alert")])


def _tier_rows(lang: str):
    rows = [html.Div(className="st-cfg-tier-head", children=[
        html.Span(T("config.tier_col", lang), id="cfg-l-tier"),
        html.Span(T("config.threshold", lang), id="cfg-l-threshold"),
        html.Span(T("config.recover", lang), id="cfg-l-recover")])]
    for t in TIERS:
        rows.append(html.Div(className=f"st-cfg-tier-row st-cfg-tier-{t}", children=[
            html.Span(tier_name(t, lang), id=f"cfg-l-tier-{t}", className=f"st-badge st-bg-{t}"),
            html.Div(className="st-cfg-cell", children=[
                dcc.Input(id=tier_input(t), type="text", inputMode="decimal", className="st-cfg-input",
                          placeholder=T("config.unset", lang), autoComplete="off", debounce=False),
                html.Div(id=err_id(f"tiers.{t}"), className="st-cfg-err", role="alert")]),
            html.Div(className="st-cfg-cell", children=[
                dcc.Input(id=tier_input(t, True), type="text", inputMode="decimal", className="st-cfg-input",
                          placeholder=T("config.same", lang), autoComplete="off"),
                html.Div(id=err_id(f"tiers.{t}.recover"), className="st-cfg-err", role="alert")])]))
    return rows


def _weekday_options(lang: str) -> list[dict[str, str]]:
    return [{"label": T(f"config.wd.{d}", lang), "value": d} for d in WEEKDAY_KEYS]


def _one_option(key: str, lang: str) -> list[dict[str, str]]:
    return [{"label": T(key, lang), "value": "on"}]


def config_layout(lang: str):
    """The /config page in ``lang``; the callbacks fill it (and re-word it on a language switch)."""
    lang = i18n.pick_lang(lang)
    t = lambda k: T(k, lang)  # noqa: E731
    dd = lambda i, k: dcc.Dropdown(id=i, placeholder=t(k), clearable=True, searchable=True,  # noqa: E731
                                   className="st-cfg-dd", options=[])
    return html.Main(className="st-config", id=ROOT, children=[
        # ---- the list
        html.Section(className="st-panel st-cfg-list", children=[
            html.Div(className="st-cfg-head", children=[
                html.H3(t("config.title"), id="cfg-l-title"), html.Span(id=COUNT, className="st-cfg-count")]),
            html.Div(className="st-cfg-filters", children=[
                dcc.Input(id=SEARCH, type="search", placeholder=t("config.search"), className="st-cfg-search",
                          debounce=0.4, autoComplete="off"),
                dd(F_FAMILY, "config.family"), dd(F_ZONE, "config.zone"), dd(F_FEED, "config.feed"),
                dd(F_LEVEL, "config.level"), dd(F_SIDE, "config.side")]),
            html.Div(className="st-cfg-table-wrap", children=[
                html.Table(className="st-table st-cfg-table", children=[
                    html.Thead(id=LIST_HEAD, children=_head(lang)), html.Tbody(id=LIST)])]),
            html.Div(className="st-cfg-pager", children=[
                html.Button(t("config.prev"), id=PREV, className="st-btn", n_clicks=0),
                html.Span(id=RANGE, className="st-cfg-range"),
                html.Button(t("config.next"), id=NEXT, className="st-btn", n_clicks=0)]),
        ]),
        # ---- the chosen rule: where each value comes from, the form, the backtest
        html.Section(className="st-panel st-cfg-rule", children=[
            html.Div(id=DETAIL, className="st-cfg-detail", children=html.P(t("config.pick"), className="st-hint")),
            html.Div(id=EDITOR, className="st-cfg-editor st-cfg-hidden", children=[
                html.Div(className="st-cfg-edit-head", children=[
                    html.H3(t("config.edit"), id="cfg-l-edit"), html.Span(id=EDIT_TITLE, className="st-cfg-edit-title"),
                    html.Span(id=LOADED_NOTE, className="st-cfg-loaded"),
                    html.Button(t("config.reload"), id=RELOAD, className="st-btn", n_clicks=0)]),
                html.Div(className="st-cfg-field st-cfg-profile", children=[
                    html.Label(t("config.editing"), id="cfg-l-profile", htmlFor=PROFILE),
                    dcc.Dropdown(id=PROFILE, clearable=False, searchable=False, className="st-cfg-dd", options=[]),
                    html.Div(id=err_id("profile"), className="st-cfg-err", role="alert")]),
                # a new profile: its name and when it applies (a defined calendar, or days and hours)
                html.Div(id=NEW_BOX, className="st-cfg-new st-cfg-hidden", children=[
                    html.Div(className="st-cfg-field", children=[
                        html.Label(t("config.new_name"), id="cfg-l-new-name", htmlFor=NEW_NAME),
                        dcc.Input(id=NEW_NAME, type="text", className="st-cfg-input", maxLength=40,
                                  placeholder=t("config.new_name_hint"), autoComplete="off")]),
                    html.Div(className="st-cfg-field", children=[
                        html.Label(t("config.f.calendar"), id="cfg-l-new-cal", htmlFor=NEW_CAL),
                        dcc.Dropdown(id=NEW_CAL, clearable=False, searchable=False, className="st-cfg-dd",
                                     options=[]),
                        html.Div(id=err_id("calendar"), className="st-cfg-err", role="alert")]),
                    html.Div(id=CUSTOM_BOX, className="st-cfg-custom st-cfg-hidden", children=[
                        html.Span(t("config.new_days"), id="cfg-l-new-days", className="st-cfg-sublabel"),
                        dcc.Checklist(id=NEW_DAYS, options=_weekday_options(lang), value=[], inline=True,
                                      className="st-cfg-days"),
                        html.Label(t("config.new_hours"), id="cfg-l-new-hours", htmlFor=NEW_HOURS,
                                   className="st-cfg-sublabel"),
                        dcc.Input(id=NEW_HOURS, type="text", className="st-cfg-input", maxLength=100,
                                  placeholder=t("config.new_hours_hint"), autoComplete="off")])]),
                html.Div(id=DROP_BOX, className="st-cfg-hidden", children=[
                    dcc.Checklist(id=DROP, options=_one_option("config.drop_profile", lang), value=[],
                                  className="st-cfg-check")]),
                html.Div(className="st-cfg-tiers", children=_tier_rows(lang)),
                html.Div(className="st-cfg-durations", children=[
                    _field("cfg-l-pending", dcc.Input(id=PENDING, type="text", className="st-cfg-input",
                                                      placeholder=t("config.duration_hint"), autoComplete="off"),
                           "pending", "config.pending", lang),
                    _field("cfg-l-keep", dcc.Input(id=KEEP, type="text", className="st-cfg-input",
                                                   placeholder=t("config.duration_hint"), autoComplete="off"),
                           "keep_firing", "config.keep_firing", lang)]),
                dcc.Checklist(id=ENABLED, options=_one_option("config.enabled_check", lang), value=["on"],
                              className="st-cfg-check"),
                html.Div(id=ERR_GENERAL, className="st-cfg-err st-cfg-err-general", role="alert"),
                html.Div(className="st-cfg-actions", children=[
                    html.Label(t("config.hours"), id="cfg-l-hours", htmlFor=HOURS_IN),
                    dcc.Dropdown(id=HOURS_IN, value=6, clearable=False, searchable=False,
                                 className="st-cfg-dd st-cfg-hours", options=_hours_options(lang)),
                    html.Button(t("config.backtest"), id=BACKTEST, className="st-btn st-cfg-primary", n_clicks=0)]),
                dcc.Loading(type="dot", color="#5fb3ff", children=[
                    html.Div(id=BT_RESULT, className="st-cfg-bt", role="status"),
                    # the chart is made with each result: plotly sizes a chart by its box when it is
                    # drawn, and a chart drawn while the form was still hidden kept a default 700x450
                    html.Div(id=GRAPH_BOX, className="st-cfg-graph-box")]),
                html.Div(className="st-cfg-save", children=[
                    html.Div(className="st-cfg-field", children=[
                        dcc.Textarea(id=REASON, className="st-cfg-reason", placeholder=t("config.reason"),
                                     maxLength=500),
                        html.Div(id=err_id("reason"), className="st-cfg-err", role="alert")]),
                    html.Button(t("config.save"), id=SAVE, className="st-btn st-cfg-primary", n_clicks=0)]),
                html.Div(id=SAVE_RESULT, className="st-cfg-result", role="status"),
            ]),
        ]),
        # ---- versions
        html.Section(className="st-panel st-cfg-versions", children=[
            html.H3(t("config.versions"), id="cfg-l-versions"),
            dcc.Input(id=RB_REASON, type="text", className="st-cfg-input st-cfg-rb-reason",
                      placeholder=t("config.rollback_reason"), maxLength=500, autoComplete="off"),
            html.Div(id=RB_RESULT, className="st-cfg-result", role="status"),
            html.Ol(id=VERSIONS, className="st-cfg-version-list"),
        ]),
        dcc.Store(id=PAGE_NO, data=0), dcc.Store(id=SELECTED), dcc.Store(id=LOADED),
        dcc.Store(id=SAVED_REV, data=0), dcc.Store(id=RB_REV, data=0), dcc.Store(id=VERSIONS_AT), dcc.Store(id=SCALE),
    ])


def _head(lang: str):
    keys = ("indicator", "value", "tiers", "direction", "pending", "hysteresis", "profiles", "source")
    return html.Tr([html.Th(T(f"config.col.{k}", lang), className=f"st-cfg-col-{k}") for k in keys])


def _hours_options(lang: str) -> list[dict[str, Any]]:
    return [{"label": T("config.hours_n", lang, h=h), "value": h} for h in HOURS]


def backtest_graph(figure: dict[str, Any]):
    return dcc.Graph(id=GRAPH, className="st-cfg-graph", figure=figure,
                     config={"displaylogo": False, "responsive": True, "modeBarButtonsToRemove": ["select2d", "lasso2d"]})


# --------------------------------------------------------------------------- the list
def _tier_chips(tiers: dict[str, dict[str, Any]], unit: str, lang: str):
    chips = []
    for t in TIERS:
        v = (tiers.get(t) or {}).get("threshold")
        chips.append(html.Span("—" if v is None else num(v), className=f"st-cfg-chip st-cfg-chip-{t}",
                               title=tier_name(t, lang)))
    u = unit_name(unit, lang)
    if u:
        chips.append(html.Span(u, className="st-cfg-unit"))
    return chips


def _hysteresis(tiers: dict[str, dict[str, Any]], lang: str) -> str:
    held = [f"{tier_name(t, lang)} {num(x['recover'])}" for t, x in tiers.items()
            if x.get("recover") is not None and x["recover"] != x.get("threshold")]
    return "，".join(held) if lang == "zh" and held else ", ".join(held) if held else T("config.none", lang)


def _profiles_short(d: dict[str, Any], lang: str) -> str:
    parts = [profile_option(p, lang) for p in d.get("profiles") or []]
    sched = d.get("schedule")
    if sched and sched.get("hours"):
        parts.append(schedule_words(sched, lang))
    return "；".join(parts) if lang == "zh" and parts else "; ".join(parts) if parts else T("config.none", lang)


def schedule_words(sched: dict[str, Any], lang: str) -> str:
    h = sched.get("hours")
    if not isinstance(h, dict):
        return T("config.always", lang)
    if h.get("kind") == "hours":
        hm = lambda m: "{:02d}:{:02d}".format(*divmod(int(m), 60))  # noqa: E731
        return T("config.daily", lang, a=hm(h.get("start_min", 0)), b=hm(h.get("end_min", 1440)))
    return T("config.night", lang, a=num(h.get("after_sunset_min", 0)), b=num(h.get("before_sunrise_min", 0)))


def _sources(d: dict[str, Any], lang: str) -> str:
    seen: list[str] = []
    for s in [*(x["source"] for x in d["tiers"].values()), d["pending"]["source"], d["keep_firing"]["source"],
              *(p["source"] for p in d.get("profiles") or [])]:
        w = source_words(s, lang, short=True)
        if w not in seen:
            seen.append(w)
    return " · ".join(seen)


def value_words(v: float | None, quality: str | None, unit: str, lang: str) -> str:
    text = i18n.value_text(v, unit, lang)
    if v is not None and quality not in (None, "ok"):
        text += " (" + i18n.t("idle" if quality == "idle" else "stale", lang) + ")"
    return text


def list_row(d: dict[str, Any], words: Words, lang: str, selected: str | None):
    """One rule in the list: in words, with its value, tiers, direction, pending period,
    hysteresis, profiles / schedule and where the values come from (its describe())."""
    rid = d["id"]
    row = {**words.rows().get(rid, {}), **{k: d[k] for k in ("id", "name_zh", "name_en", "labels", "family")}}
    cls = "st-cfg-row" + (" st-cfg-selected" if rid == selected else "") + \
        ("" if d["enabled"]["value"] else " st-cfg-off")
    return html.Tr(id={"type": ROW, "index": rid}, n_clicks=0, className=cls, **{"data-rule": rid}, children=[
        html.Td(className="st-cfg-col-indicator", children=[
            html.Div(words.title(row, lang), className="st-cfg-name"),
            html.Div(words.where(row, lang), className="st-cfg-where")]),
        html.Td(value_words(d.get("value"), d.get("quality"), d["unit"], lang), className="st-cfg-col-value"),
        html.Td(_tier_chips(d["tiers"], d["unit"], lang), className="st-cfg-col-tiers"),
        html.Td(T(f"config.dir.{d['direction']['value']}", lang) +
                ("" if d["enabled"]["value"] else f" · {T('config.disabled', lang)}"),
                className="st-cfg-col-direction"),
        html.Td(duration_words(d["pending"]["seconds"], lang), className="st-cfg-col-pending"),
        html.Td(_hysteresis(d["tiers"], lang), className="st-cfg-col-hysteresis"),
        html.Td(_profiles_short(d, lang), className="st-cfg-col-profiles"),
        html.Td(_sources(d, lang), className="st-cfg-col-source"),
    ])


def filter_options(words: Words, names: Names, lang: str) -> tuple[list, list, list, list, list]:
    """The options of the five filters, in words: family (groups, then each family), zone,
    feed, level, side."""
    zh = lang == "zh"
    rows = list(words.rows().values())
    fams: dict[str, tuple[str, str]] = {}
    for r in rows:
        fams.setdefault(r["family"], (r["name_zh"], r["name_en"]))
    family = []
    for g in sorted({f.split(".")[0] for f in fams}, key=lambda g: list(FAMILY_NAMES).index(g)
                    if g in FAMILY_NAMES else 99):
        gzh, gen = FAMILY_NAMES.get(g, ("其他", "Other"))
        family.append({"label": (gzh if zh else gen) + T("config.all_of", lang), "value": g})
        for f in sorted(x for x in fams if x.split(".")[0] == g):
            family.append({"label": f"{gzh if zh else gen} · {fams[f][0 if zh else 1]}", "value": f})
    zone = [{"label": n[0 if zh else 1], "value": z} for z, n in sorted(names.zones.items(), key=lambda kv: kv[1][0])]
    feeds = sorted({r["feed"] for r in rows if r.get("feed")})
    feed = [{"label": FEED_NAMES.get(f, ("其他", "Other"))[0 if zh else 1], "value": f} for f in feeds]
    level = [{"label": T(f"config.level.{x}", lang), "value": x} for x in ("scenic_area", "district", "city")]
    side = [{"label": T(f"config.side.{x}", lang), "value": x} for x in ("government", "enterprise", "society")]
    return family, zone, feed, level, side


# --------------------------------------------------------------------------- the chosen rule
def detail_panel(d: dict[str, Any], words: Words, names: Names, lang: str):
    """The rule as in force, each part with where it comes from (Book.describe)."""
    row = {**words.rows().get(d["id"], {}), **{k: d[k] for k in ("id", "name_zh", "name_en", "labels", "family")}}
    unit = d["unit"]
    u = lambda v: with_unit(v, unit, lang)  # noqa: E731
    feed = FEED_NAMES.get(d.get("feed"), ("—", "—"))[0 if lang == "zh" else 1]
    level = T(f"config.level.{d['level']}", lang) if f"config.level.{d['level']}" in i18n.STRINGS else "—"
    side = T(f"config.side.{d['side']}", lang) if f"config.side.{d['side']}" in i18n.STRINGS else "—"
    rows: list[tuple[str, str, str]] = [
        (T("config.f.name", lang), words.title(row, lang), ""),
        (T("config.f.place", lang), words.where(row, lang), ""),
        (T("config.f.feed", lang), feed, ""),
        (T("config.f.level", lang), f"{level} / {side}", ""),
        (T("config.f.value", lang), value_words(d.get("value"), d.get("quality"), unit, lang), ""),
        (T("config.f.direction", lang), T(f"config.dir.{d['direction']['value']}", lang),
         source_words(d["direction"]["source"], lang)),
    ]
    sep = "，" if lang == "zh" else ", "
    for t, x in d["tiers"].items():
        held = f"{sep}{T('config.recover', lang)} {u(x['recover'])}" if x["recover"] != x["threshold"] else ""
        rows.append((tier_name(t, lang), f"{T('config.threshold', lang)} {u(x['threshold'])}{held}",
                     source_words(x["source"], lang)))
    rows += [
        (T("config.f.pending", lang), duration_words(d["pending"]["seconds"], lang), source_words(d["pending"]["source"], lang)),
        (T("config.f.keep_firing", lang), duration_words(d["keep_firing"]["seconds"], lang),
         source_words(d["keep_firing"]["source"], lang)),
        (T("config.f.nodata", lang), T(f"config.nodata.{d['nodata']['value']}", lang)
         if f"config.nodata.{d['nodata']['value']}" in i18n.STRINGS else "—", source_words(d["nodata"]["source"], lang)),
        (T("config.f.escalate", lang), sep.join(f"{tier_name(t, lang)} {duration_words(s, lang)}"
                                               for t, s in d["escalate_after"]["seconds"].items()) or "—",
         source_words(d["escalate_after"]["source"], lang)),
        (T("config.f.enabled", lang), T("config.yes" if d["enabled"]["value"] else "config.no", lang),
         source_words(d["enabled"]["source"], lang)),
    ]
    sched = d.get("schedule")
    if sched:
        cls = names.classes.get(sched.get("class"), ("", ""))[0 if lang == "zh" else 1]
        rows.append((T("config.f.schedule", lang), " · ".join(x for x in (cls, schedule_words(sched, lang)) if x),
                     source_words(sched.get("source"), lang)))
    for p in d.get("profiles") or []:
        cal = p.get("calendar") or {}
        dates = cal.get("dates") or []
        when = T("config.dates", lang, n=len(dates), a=dates[0], b=dates[-1]) if dates and cal.get("name") else ""
        tiers = sep.join(f"{tier_name(t, lang)} {u(x['threshold'])}" + (
            f"↩{num(x['recover'])}" if x["recover"] != x["threshold"] else "") for t, x in p["tiers"].items())
        rows.append((T("config.f.profile", lang), f"{profile_words(p['name'], lang)}{'：' if lang == 'zh' else ': '}{tiers}",
                     source_words(p["source"], lang)))
        rows.append((T("config.f.calendar", lang), " · ".join(x for x in (calendar_label(cal, lang), when) if x),
                     source_words(cal.get("source"), lang)))
    return html.Div(children=[
        html.H3(words.full(d["id"], lang), className="st-cfg-detail-title"),
        html.Table(className="st-details st-cfg-details", **{"data-rule": d["id"]}, children=[html.Tbody([
            html.Tr([html.Td(k), html.Td(v), html.Td(s, className="st-cfg-src")]) for k, v, s in rows])])])


def loaded_data(d: dict[str, Any]) -> dict[str, Any]:
    """What the form was loaded from (kept in the page): the version a save names as
    ``expected_version``, and the values a Change is computed against."""
    tiers = {"": {t: [x["threshold"], x["recover"]] for t, x in d["tiers"].items()}}
    for p in d.get("profiles") or []:
        tiers[p["name"]] = {t: [x["threshold"], x["recover"]] for t, x in p["tiers"].items()}
    return {"rule": d["id"], "version": d["loaded_version"], "unit": d["unit"], "tiers": tiers,
            "pending_s": d["pending"]["seconds"], "keep_firing_s": d["keep_firing"]["seconds"],
            "enabled": bool(d["enabled"]["value"]), "calendars": list(d.get("calendars") or [])}


# --------------------------------------------------------------------------- versions and changes in words
_OVERRIDE = re.compile(r"^override\[(?P<id>[^\]]+)\](?:\.(?P<rest>.*))?$")


def field_words(rest: str | None, lang: str) -> str:
    """A path inside one rule's override in words: ``tiers.red.recover`` -> 红色恢复值."""
    if not rest:
        return T("config.ch.all", lang)
    m = re.match(r"^profiles(?:\[(\d+)\])?(?:\.(.*))?$", rest)
    prefix = ""
    if m:
        prefix = T("config.ch.profiles", lang) + (f" {int(m[1]) + 1}" if m[1] else "")
        rest = m[2] or ""
        if not rest:
            return prefix
        prefix += " · "
    m = re.match(r"^tiers\.(\w+)(?:\.(threshold|recover))?$", rest)
    if m:
        return prefix + T("config.ch.tier_recover" if m[2] == "recover" else "config.ch.tier_threshold", lang,
                          t=tier_name(m[1], lang))
    simple = {"for": "config.f.pending", "keep_firing_for": "config.f.keep_firing", "direction": "config.f.direction",
              "enabled": "config.f.enabled", "nodata": "config.f.nodata", "calendar": "config.f.calendar",
              "name": "config.f.profile", "tiers": "config.col.tiers"}
    if rest in simple:
        return prefix + T(simple[rest], lang)
    m = re.match(r"^escalate_after(?:\.(\w+))?$", rest)
    if m:
        return prefix + T("config.f.escalate", lang) + (f" · {tier_name(m[1], lang)}" if m[1] else "")
    return prefix + T("config.ch.other", lang)


def value_in_words(v: Any, rest: str | None, unit: str, lang: str) -> str:
    if v is None:
        return "—"
    if isinstance(v, bool):
        return T("config.yes" if v else "config.no", lang)
    if rest and (rest.endswith("for") or rest.startswith("escalate_after")) and isinstance(v, (str, int, float)):
        from indicators.alerts.rules import parse_duration
        try:
            return duration_words(parse_duration(v), lang)
        except ValueError:
            return str(v)
    if isinstance(v, (int, float)):
        return with_unit(v, unit, lang)
    if isinstance(v, dict):
        if "threshold" in v or "recover" in v:
            return " / ".join(f"{T('config.threshold' if k == 'threshold' else 'config.recover', lang)} "
                              f"{with_unit(x, unit, lang)}" for k, x in v.items() if k in ("threshold", "recover"))
        return T("config.ch.other", lang)
    if isinstance(v, list):
        return "、".join(profile_words(p.get("name"), lang) for p in v if isinstance(p, dict)) or T("config.none", lang)
    if v in ("above", "below"):
        return T(f"config.dir.{v}", lang)
    if f"config.nodata.{v}" in i18n.STRINGS:
        return T(f"config.nodata.{v}", lang)
    if rest and rest.endswith("calendar"):
        return calendar_words(str(v), lang)
    if rest and rest.endswith("name"):
        return profile_words(str(v), lang)
    return str(v)


def change_words(c: dict[str, Any], words: Words, lang: str) -> str:
    """One change of a version (path, kind, old, new) in words."""
    path = str(c.get("path", ""))
    m = _OVERRIDE.match(path)
    if m:
        rid, rest = m["id"], m["rest"]
        unit = (words.rows().get(rid) or {}).get("unit", "")
        what = f"{words.full(rid, lang)} · {field_words(rest, lang)}"
    else:
        rest, unit = path, ""
        what = T("config.ch.calendar", lang) if path.startswith("calendars") else T("config.ch.other", lang)
    # a side the document leaves unset is the catalog's or shipped value: say it when known
    old = c.get("old") if c.get("old") is not None else c.get("old_in_force")
    new = c.get("new") if c.get("new") is not None else c.get("new_in_force")
    kind = "changed" if old is not None and new is not None else "removed" if new is None else "added"
    o, n = value_in_words(old, rest, unit, lang), value_in_words(new, rest, unit, lang)
    return T(f"config.ch.{kind}", lang, f=what, o=o, n=n)


def changes_list(changes: list[dict[str, Any]], words: Words, lang: str):
    items = [html.Li(change_words(c, words, lang)) for c in changes[:CHANGES_SHOWN]]
    if len(changes) > CHANGES_SHOWN:
        items.append(html.Li(T("config.ch.more", lang, n=len(changes) - CHANGES_SHOWN), className="st-hint"))
    return html.Ul(items, className="st-cfg-changes")


def when(t: Any) -> str:
    if isinstance(t, str):
        try:
            t = datetime.fromisoformat(t.replace("Z", "+00:00"))
        except ValueError:
            return t
    return localtime.fmt_local(t, seconds=False)


def versions_list(history: list[dict[str, Any]], words: Words, lang: str):
    """Newest first: who, when, why (their text, as text), what changed, and restore."""
    items = []
    latest = history[-1]["version"] if history else 0
    for v in reversed(history):
        items.append(html.Li(className="st-cfg-version", **{"data-version": str(v["version"])}, children=[
            html.Div(className="st-cfg-version-head", children=[
                html.Span(T("config.version", lang, v=v["version"]), className="st-cfg-vno"),
                html.Span(v["author"], className="st-cfg-who"), html.Span(when(v["at"]), className="st-cfg-when"),
                *([] if v["version"] == latest else [
                    html.Button(T("config.rollback", lang), id={"type": RB, "index": v["version"]}, n_clicks=0,
                                className="st-btn st-cfg-rb")])]),
            html.Div(v["reason"], className="st-cfg-why"),
            changes_list(v["changes"], words, lang)]))
    if history:
        items.append(html.Li(className="st-cfg-version st-cfg-version-0", **{"data-version": "0"}, children=[
            html.Div(className="st-cfg-version-head", children=[
                html.Span(T("config.v0", lang), className="st-cfg-why"),
                html.Button(T("config.rollback0", lang), id={"type": RB, "index": 0}, n_clicks=0,
                            className="st-btn st-cfg-rb")])]))
    else:
        items.append(html.Li(T("config.no_versions", lang), className="st-hint"))
    return items


def stale_message(err, words: Words, lang: str):
    """A refused save from a stale version: who saved what since, and what to do."""
    return html.Div(className="st-cfg-stale", children=[
        html.P(T("config.stale", lang, e=err.expected, l=err.latest), className="st-cfg-err"),
        html.Ul([html.Li([html.Span(T("config.stale_by", lang, v=v.version, who=v.author, at=when(v.created_at))),
                          html.Span(v.comment, className="st-cfg-why")]) for v in err.saved]),
        html.P(T("config.stale_what", lang)), changes_list([_change_dict(c) for c in err.changes], words, lang),
        html.P(T("config.stale_hint", lang), className="st-hint")])


def _change_dict(c) -> dict[str, Any]:
    from indicators.thresholds.versions import change_dict
    return change_dict(c) if not isinstance(c, dict) else c


# --------------------------------------------------------------------------- the backtest
TIER_COLOURS = {"blue": "#1e78ff", "yellow": "#fad21e", "orange": "#ff8c00", "red": "#e61e1e"}


def backtest_figure(r: dict[str, Any], unit: str, lang: str, scale: float = 1.0) -> dict[str, Any]:
    """The indicator's value at each evaluation over the window, with the current (dotted) and
    proposed (solid) thresholds in force at each time.  ``scale``: the page's rem in units of
    16 px (plotly sizes its text in px; the 4K wall-size screens use 30 px text)."""
    k = min(max(float(scale or 1.0), 0.5), 4.0)
    xs = [localtime.fmt_local(datetime.fromisoformat(t.replace("Z", "+00:00"))) for t, _ in r["series"]]
    data = [{"type": "scatter", "mode": "lines", "x": xs, "y": [v for _, v in r["series"]],
             "name": T("config.value", lang), "line": {"color": "#d8e1ee", "width": 1.6 * k}}]
    for side, dash in (("current", "dot"), ("proposed", "solid")):
        for t in TIERS:
            ys = r["lines"][side].get(t)
            if ys:
                data.append({"type": "scatter", "mode": "lines", "x": xs, "y": ys,
                             "name": f"{tier_name(t, lang)} · {T(f'config.{side}', lang)}",
                             "line": {"color": TIER_COLOURS[t], "dash": dash, "shape": "hv",
                                      "width": (1.3 if dash == "dot" else 2.2) * k},
                             "opacity": 0.75 if dash == "dot" else 1.0, "hoverinfo": "y+name"})
    axis = {"gridcolor": "#1d2840", "zerolinecolor": "#2a3a58", "linecolor": "#33476b", "automargin": True}
    return {"data": data, "layout": {
        "paper_bgcolor": "rgba(0,0,0,0)", "plot_bgcolor": "#0d1420", "autosize": True,
        "font": {"color": "#c8d4e6", "family": "Noto Sans CJK SC, Source Han Sans SC, sans-serif", "size": 12 * k},
        "margin": {"l": 50 * k, "r": 10 * k, "t": 10 * k, "b": 30 * k}, "hovermode": "x unified",
        "legend": {"orientation": "h", "y": -0.18, "font": {"size": 11 * k}},
        # numeric dates only: plotly's own month names would be English on the Chinese page
        "xaxis": {**axis, "type": "date", "tickformat": "%m-%d %H:%M", "hoverformat": "%m-%d %H:%M:%S"},
        "yaxis": {**axis, "title": {"text": unit_name(unit, lang)}}}}


def backtest_summary(r: dict[str, Any], lang: str):
    w = r["window"]
    cur, new = r["current"], r["proposed"]
    text = T("config.bt.summary", lang, a=when(w["first"]), b=when(w["last"]), h=num(round(w["covered_hours"], 1)),
             p=new["alerts"], pr=new["by_max_tier"].get("red", 0), c=cur["alerts"], cr=cur["by_max_tier"].get("red", 0))
    notes = []
    if w["capped"]:
        notes.append(T("config.bt.capped", lang, s=num(r["budget_s"]), r=num(w["requested_hours"]),
                       h=num(round(w["hours"], 1))))
    notes.append(T("config.bt.took", lang, s=num(round(r["elapsed_s"], 1)), n=w["evaluations"]))
    head = html.Tr([html.Th(T("config.bt.tier", lang)), html.Th(T("config.current", lang)),
                    html.Th(T("config.proposed", lang))])
    body = [html.Tr([html.Td(html.Span(tier_name(t, lang), className=f"st-badge st-bg-{t}")),
                     html.Td(str(cur["by_max_tier"].get(t, 0))), html.Td(str(new["by_max_tier"].get(t, 0)))],
                    **{"data-tier": t}) for t in reversed(TIERS)]
    body.append(html.Tr([html.Td(T("config.bt.total", lang)), html.Td(str(cur["alerts"])), html.Td(str(new["alerts"]))],
                        **{"data-tier": "total"}))
    return html.Div(children=[html.P(text, className="st-cfg-bt-text"),
                              html.Table(className="st-table st-cfg-bt-table", children=[html.Thead(head), html.Tbody(body)]),
                              html.P(" ".join(notes), className="st-hint")])


# --------------------------------------------------------------------------- callbacks
def register(app, service, names: Names) -> dict[str, Callable]:
    """Add the page's callbacks to ``app``; every one needs the supervisor role (declared here,
    checked by the access middleware and again inside).  Returns them by name (for tests)."""
    words = Words(service, names)
    cb: dict[str, Callable] = {}
    sup = "supervisor"
    tier_ids = [(t, r) for t in TIERS for r in (False, True)]

    def no_service(lang):
        return html.P(T("config.no_service", lang), className="st-cfg-err")

    # ---- texts and filter options follow the language
    @auth.callback(app, sup, [Output(i, p) for i, p, _ in STATIC] +
                   [Output(f"cfg-l-tier-{t}", "children") for t in TIERS] +
                   [Output(LIST_HEAD, "children"), Output(HOURS_IN, "options"), Output(NEW_DAYS, "options"),
                    Output(DROP, "options"), Output(ENABLED, "options")] +
                   [Output(i, "options") for i in (F_FAMILY, F_ZONE, F_FEED, F_LEVEL, F_SIDE)],
                   Input(ids.LANG, "value"))
    def _cfg_texts(lang):
        auth.require(sup)
        lang = i18n.pick_lang(lang)
        opts = filter_options(words, names, lang) if service is not None else ([],) * 5
        return ([T(k, lang) for _, _, k in STATIC] + [tier_name(t, lang) for t in TIERS] +
                [_head(lang), _hours_options(lang), _weekday_options(lang),
                 _one_option("config.drop_profile", lang), _one_option("config.enabled_check", lang)] + list(opts))
    cb["_cfg_texts"] = _cfg_texts

    # the chart's text follows the page's text size (twin.css: 30 px from 3000 px wide); measured in
    # the browser, which reaches no server data (declared with the page's role like every callback)
    auth.clientside_role(app, sup, "function(_) { return parseFloat(getComputedStyle(document.documentElement)"
                                   ".fontSize) / 16 || 1; }", Output(SCALE, "data"), Input(ids.LANG, "value"))

    # ---- the list: filters, search, pages
    @auth.callback(app, sup, Output(LIST, "children"), Output(COUNT, "children"), Output(RANGE, "children"),
                   Output(PAGE_NO, "data"), Output(PREV, "disabled"), Output(NEXT, "disabled"),
                   Input(SEARCH, "value"), Input(F_FAMILY, "value"), Input(F_ZONE, "value"), Input(F_FEED, "value"),
                   Input(F_LEVEL, "value"), Input(F_SIDE, "value"), Input(PREV, "n_clicks"), Input(NEXT, "n_clicks"),
                   Input(SELECTED, "data"), Input(SAVED_REV, "data"), Input(RB_REV, "data"), Input(ids.LANG, "value"),
                   State(PAGE_NO, "data"))
    def _cfg_list(text, family, zone, feed, level, side, _prev, _next, selected, _s, _r, lang, page):
        auth.require(sup)
        lang = i18n.pick_lang(lang)
        if service is None:
            return [], T("config.no_service", lang), "", 0, True, True
        text_ = lambda v: v if isinstance(v, str) and v else None  # noqa: E731  (a hand-made request sends anything)
        rows = service.threshold_search(family=text_(family), zone=text_(zone), feed=text_(feed), level=text_(level),
                                        side=text_(side))
        hits = [r for r in rows if words.matches(r["id"], text if isinstance(text, str) else None)]
        page = page if isinstance(page, int) and page >= 0 else 0
        trig = ctx.triggered_id
        if trig == NEXT:
            page += 1
        elif trig == PREV:
            page -= 1
        elif trig in (SEARCH, F_FAMILY, F_ZONE, F_FEED, F_LEVEL, F_SIDE):
            page = 0                                   # a new question starts at its first page
        last = max(0, (len(hits) - 1) // PAGE_SIZE)
        page = min(max(page, 0), last)
        shown = hits[page * PAGE_SIZE:(page + 1) * PAGE_SIZE]
        sel = selected if isinstance(selected, str) else None
        body = [list_row(service.threshold_describe(r["id"]) | {"value": r["value"], "quality": r["quality"]},
                         words, lang, sel) for r in shown]
        total = len(words.rows())
        count = T("config.count", lang, n=f"{len(hits):,}") if len(hits) == total else \
            T("config.count_of", lang, n=f"{len(hits):,}", total=f"{total:,}")
        rng = T("config.range", lang, a=page * PAGE_SIZE + 1, b=page * PAGE_SIZE + len(shown)) if shown else ""
        return body, count, rng, page, page == 0, page >= last
    cb["_cfg_list"] = _cfg_list

    @auth.callback(app, sup, Output(SELECTED, "data"), Input({"type": ROW, "index": ALL}, "n_clicks"),
                   prevent_initial_call=True)
    def _cfg_pick(clicks):
        auth.require(sup)
        trig = ctx.triggered_id
        # rows drawn anew (another page, a refresh) arrive with n_clicks 0: only a click selects
        if not isinstance(trig, dict) or not any(t.get("value") for t in ctx.triggered):
            return no_update
        rid = trig.get("index")
        return rid if isinstance(rid, str) and rid in words.rows() else no_update
    cb["_cfg_pick"] = _cfg_pick

    # ---- the chosen rule
    @auth.callback(app, sup, Output(DETAIL, "children"), Output(EDITOR, "className"), Output(EDIT_TITLE, "children"),
                   Output(LOADED_NOTE, "children"), Output(PROFILE, "options"), Output(PROFILE, "value"),
                   Output(LOADED, "data"), Output(NEW_CAL, "options"),
                   Input(SELECTED, "data"), Input(RELOAD, "n_clicks"), Input(SAVED_REV, "data"), Input(RB_REV, "data"),
                   Input(ids.LANG, "value"), State(PROFILE, "value"), State(LOADED, "data"))
    def _cfg_load(selected, _reload, _s, _r, lang, profile, loaded):
        auth.require(sup)
        lang = i18n.pick_lang(lang)
        profile = profile if isinstance(profile, str) else None  # a dropdown sends a name or nothing
        hidden = "st-cfg-editor st-cfg-hidden"
        if service is None:
            return no_service(lang), hidden, "", "", [], None, None, []
        if not isinstance(selected, str) or selected not in words.rows():
            return html.P(T("config.pick", lang), className="st-hint"), hidden, "", "", [], None, None, []
        d = service.threshold_describe(selected)
        calendars = [{"label": calendar_words(c, lang), "value": c} for c in d.get("calendars") or []] + [
            {"label": T("config.custom_calendar", lang), "value": CUSTOM_CAL}]
        options = [{"label": T("config.base_tiers", lang), "value": ""}] + [
            {"label": profile_option(p, lang), "value": p["name"]} for p in d.get("profiles") or []] + [
            {"label": T("config.new_profile", lang), "value": NEW_PROFILE}]
        note = T("config.loaded", lang, v=d["loaded_version"]) if d["loaded_version"] else T("config.loaded0", lang)
        only_words = ctx.triggered_id == ids.LANG and isinstance(loaded, dict) and loaded.get("rule") == selected
        if only_words:                          # a language switch keeps what is typed in the form
            return (detail_panel(d, words, names, lang), "st-cfg-editor", words.full(selected, lang), note,
                    options, no_update, no_update, calendars)
        # the same rule reloaded keeps the profile being changed (a new one, once saved, is in the list)
        keep = profile if profile in {o["value"] for o in options} - {NEW_PROFILE} and isinstance(loaded, dict) \
            and loaded.get("rule") == selected else ""
        return (detail_panel(d, words, names, lang), "st-cfg-editor", words.full(selected, lang), note, options,
                keep, loaded_data(d), calendars)
    cb["_cfg_load"] = _cfg_load

    err_outputs = [Output(err_id(f), "children") for f in FIELDS] + [Output(ERR_GENERAL, "children")]

    @auth.callback(app, sup, [Output(tier_input(t, r), "value") for t, r in tier_ids] +
                   [Output(PENDING, "value"), Output(KEEP, "value")] +
                   [Output(o.component_id, o.component_property, allow_duplicate=True) for o in err_outputs] +
                   [Output(BT_RESULT, "children", allow_duplicate=True),
                    Output(GRAPH_BOX, "children", allow_duplicate=True),
                    Output(ENABLED, "value"), Output(DROP, "value"), Output(NEW_NAME, "value"),
                    Output(NEW_CAL, "value"), Output(NEW_DAYS, "value"), Output(NEW_HOURS, "value")],
                   Input(LOADED, "data"), Input(PROFILE, "value"), State(ids.LANG, "value"),
                   prevent_initial_call=True)
    def _cfg_form(loaded, profile, lang):
        """Fill the form with the loaded rule (or the chosen profile of it; a new profile starts
        from the everyday tiers); clear old notes."""
        auth.require(sup)
        lang = i18n.pick_lang(lang)
        profile = profile if isinstance(profile, str) else None
        if not isinstance(loaded, dict):
            return [""] * len(tier_ids) + ["", ""] + [""] * len(err_outputs) + ["", [], ["on"], [], "", None, [], ""]
        cals = loaded.get("calendars") or []
        rest = [["on"] if loaded.get("enabled", True) else [], [], "", cals[0] if cals else CUSTOM_CAL, [], ""]
        tiers = (loaded.get("tiers") or {}).get("" if profile == NEW_PROFILE else profile or "", {})
        values = []
        for t, rec in tier_ids:
            x = tiers.get(t)
            # a recover value equal to the threshold (no hysteresis) shows as empty: "same as the threshold"
            values.append("" if x is None or (rec and x[1] == x[0]) else num(x[1] if rec else x[0]))
        return (values + [duration_input(loaded.get("pending_s"), lang), duration_input(loaded.get("keep_firing_s"), lang)]
                + [""] * len(err_outputs) + ["", []] + rest)
    cb["_cfg_form"] = _cfg_form

    @auth.callback(app, sup, Output(NEW_BOX, "className"), Output(CUSTOM_BOX, "className"),
                   Output(DROP_BOX, "className"), Input(PROFILE, "value"), Input(NEW_CAL, "value"))
    def _cfg_profile_boxes(profile, calendar):
        """A new profile asks for its name and calendar (days and hours when no defined calendar
        fits); an existing profile may be dropped."""
        auth.require(sup)
        shown = lambda on, cls: cls if on else f"{cls} st-cfg-hidden"  # noqa: E731
        new = profile == NEW_PROFILE
        return (shown(new, "st-cfg-new"), shown(new and calendar == CUSTOM_CAL, "st-cfg-custom"),
                shown(isinstance(profile, str) and bool(profile) and not new, "st-cfg-drop"))
    cb["_cfg_profile_boxes"] = _cfg_profile_boxes

    # ---- backtest and save: the same form, the same notes by field
    @auth.callback(app, sup, err_outputs +
                   [Output(BT_RESULT, "children"), Output(GRAPH_BOX, "children"),
                    Output(SAVE_RESULT, "children"), Output(SAVED_REV, "data"), Output(REASON, "value")],
                   Input(BACKTEST, "n_clicks"), Input(SAVE, "n_clicks"),
                   [State(tier_input(t, r), "value") for t, r in tier_ids] +
                   [State(PENDING, "value"), State(KEEP, "value"), State(PROFILE, "value"), State(HOURS_IN, "value"),
                    State(REASON, "value"), State(LOADED, "data"), State(SAVED_REV, "data"), State(ids.LANG, "value"),
                    State(SCALE, "data"), State(NEW_NAME, "value"), State(NEW_CAL, "value"), State(NEW_DAYS, "value"),
                    State(NEW_HOURS, "value"), State(DROP, "value"), State(ENABLED, "value")],
                   prevent_initial_call=True)
    def _cfg_submit(_bt, _save, *state):
        from indicators.service import ActionError
        from indicators.thresholds import NoChange, Refused, StaleVersion
        who = auth.require(sup)
        tier_values = state[:len(tier_ids)]
        (pending, keep, profile, hours, reason, loaded, rev, lang, scale, new_name, new_cal, new_days, new_hours,
         drop, enabled) = state[len(tier_ids):]
        lang = i18n.pick_lang(lang)
        action = "save" if ctx.triggered_id == SAVE else "backtest"
        errors = {f: "" for f in FIELDS}
        general = ""
        bt, fig, saved, new_rev, reason_out = no_update, no_update, "", no_update, no_update

        def out():
            return [errors[f] for f in FIELDS] + [general] + [bt, fig, saved, new_rev, reason_out]

        if service is None:
            general = T("config.no_service", lang)
            return out()
        if not isinstance(loaded, dict) or not isinstance(loaded.get("rule"), str):
            general = T("config.err.pick", lang)
            return out()
        values = {f"tiers.{t}" + (".recover" if r else ""): v for (t, r), v in zip(tier_ids, tier_values)}
        new = None
        if profile == NEW_PROFILE:
            name, cal, problems = new_profile(loaded, new_name, new_cal, new_days, new_hours, lang)
            if problems:
                errors.update(problems)
                if action == "save":
                    saved = html.P(T("config.refused", lang), className="st-cfg-err")
                return out()
            new = (name, cal)
        change = build_change(loaded, profile if isinstance(profile, str) else None, values, pending, keep, new=new,
                              drop=bool(drop) and profile != NEW_PROFILE,
                              enabled=bool(enabled) if isinstance(enabled, list) else None)

        def show(problems):
            nonlocal general
            rest = []
            for p in problems:
                f = form_field(p.field, change.profile)
                text = problem_text(p, lang)
                if f is None:
                    rest.append(text)
                else:
                    errors[f] = (errors[f] + " " + text).strip()
            general = " ".join(rest)

        try:
            if action == "backtest":
                h = hours if isinstance(hours, (int, float)) and not isinstance(hours, bool) else 6
                r = service.backtest_threshold(loaded["rule"], change, hours=h)
                bt = backtest_summary(r, lang)
                fig = [backtest_graph(backtest_figure(r, loaded.get("unit", ""), lang,
                                                      scale if isinstance(scale, (int, float)) else 1.0))]
            else:
                v = service.save_threshold(loaded["rule"], change, by=who.username, reason=str(reason or ""),
                                           expected_version=int(loaded.get("version") or 0))
                saved = html.P(T("config.saved", lang, v=v.version), className="st-cfg-ok")
                new_rev = (rev if isinstance(rev, int) else 0) + 1
                reason_out = ""
        except NoChange:
            saved = html.P(T("config.nochange", lang), className="st-hint")
        except Refused as e:
            show(e.problems)
            if action == "save":
                saved = html.P(T("config.refused", lang), className="st-cfg-err")
        except StaleVersion as e:
            saved = stale_message(e, words, lang)
        except ActionError as e:
            text = str(e)
            general = T("config.no_history", lang) if text.startswith("no tick history") else \
                T("config.err.failed", lang, e=text)
        except Exception as e:                 # a fault of ours: the supervisor sees that it failed, the log why
            log.exception("%s of rule %s failed", action, loaded.get("rule"))
            general = T("config.err.failed", lang, e=type(e).__name__)
        return out()
    cb["_cfg_submit"] = _cfg_submit

    # ---- versions and rollback
    @auth.callback(app, sup, Output(VERSIONS, "children"), Output(VERSIONS_AT, "data"),
                   Input(SAVED_REV, "data"), Input(RB_REV, "data"), Input(ids.LANG, "value"))
    def _cfg_versions(_s, _r, lang):
        auth.require(sup)
        lang = i18n.pick_lang(lang)
        if service is None:
            return [html.Li(T("config.no_service", lang), className="st-hint")], None
        hist = service.threshold_history()
        return versions_list(hist, words, lang), (hist[-1]["version"] if hist else 0)
    cb["_cfg_versions"] = _cfg_versions

    @auth.callback(app, sup, Output(RB_RESULT, "children"), Output(RB_REV, "data"), Output(RB_REASON, "value"),
                   Input({"type": RB, "index": ALL}, "n_clicks"),
                   State(RB_REASON, "value"), State(VERSIONS_AT, "data"), State(RB_REV, "data"),
                   State(ids.LANG, "value"), prevent_initial_call=True)
    def _cfg_rollback(_clicks, reason, at, rev, lang):
        from indicators.service import ActionError
        from indicators.thresholds import Refused, StaleVersion
        who = auth.require(sup)
        lang = i18n.pick_lang(lang)
        trig = ctx.triggered_id
        if not isinstance(trig, dict) or not any(t.get("value") for t in ctx.triggered):
            return no_update, no_update, no_update
        to = trig.get("index")
        if service is None or not isinstance(to, int) or isinstance(to, bool):
            return T("config.no_service", lang), no_update, no_update
        try:
            v = service.rollback_thresholds(to, by=who.username, reason=str(reason or ""),
                                            expected_version=int(at or 0))
        except Refused as e:
            return html.P(" ".join(problem_text(p, lang) for p in e.problems), className="st-cfg-err"), no_update, no_update
        except StaleVersion as e:
            return stale_message(e, words, lang), (rev if isinstance(rev, int) else 0) + 1, no_update
        except ActionError as e:
            return html.P(T("config.err.failed", lang, e=str(e)), className="st-cfg-err"), no_update, no_update
        return (html.P(T("config.rolled_back", lang, to=to, v=v.version), className="st-cfg-ok"),
                (rev if isinstance(rev, int) else 0) + 1, "")
    cb["_cfg_rollback"] = _cfg_rollback
    return cb


__all__ = ["PAGE_SIZE", "Words", "build_change", "change_words", "config_layout", "problem_text", "register"]
