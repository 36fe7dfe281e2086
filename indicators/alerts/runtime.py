"""The alert runtime: indicator ticks in, managed alerts, plans and cases out.

:class:`AlertRuntime` is the orchestration ring.  Each :meth:`~AlertRuntime.on_tick`

1. folds the tick's feed events (staff positions, weather warnings, AI-video
   events, gate counts, external cases) into its working memory;
2. runs every threshold rule whose indicator could have changed state
   (a vectorised pre-filter skips the thousands of quiet indicators) through
   the pure :func:`~.state.transition`;
3. turns firing alerts of mapped families into cases, evaluates the compound
   rules and opens or raises their plans, runs the forecast and its alerts,
   turns AI-video events into cases (with the nearest available staff by
   walking distance), checks case and plan deadlines;
4. writes EVERYTHING of the tick in ONE store transaction - states,
   transitions, cases and steps, plans and events, outgoing messages (an
   outbox), the tick time;
5. only then adopts the new state in memory and hands the messages to the
   injected notifier (at least once: an unsent message is retried at the
   next tick and after a restart; its key lets a receiver drop duplicates).

A tier the rationale (``data/alerts/rationale.toml``, :mod:`.rationale`)
judges ``log_only`` - nothing for an operator to do - is kept as an alert
state and its events are stored (the console's log and the reports read
them), but it pages nobody, escalates on no clock, opens no case and counts
for no compound rule (no plan is opened for what nobody has to act on).

A tick at or before the last stored tick is ignored, so an engine replaying
ticks after a crash changes nothing twice.  Restart = construct a new
runtime on the same store: active alerts, open cases and plans, warnings
and the last tick come back from it (Grafana style).  User actions
(acknowledge, silence, dispatch, close …) are methods that persist one
transaction each and return the new object.
"""
from __future__ import annotations

import copy
import logging
import threading
import tomllib
from collections import deque
from dataclasses import dataclass, field, replace
from datetime import date, datetime, timedelta
from pathlib import Path
from typing import Any, Callable, Mapping, Protocol, Sequence

import numpy as np

from . import ADVISORY_TIERS, DATA_DIR, RANK, TIER_LEVEL, TIERS
from . import cases as C
from . import plans as P
from .compound import AlertCondition, CompoundRule, watches, Context, WarningSignal, evaluate, fold_warnings, parse_compound, videos_from_rows
from .rationale import Rationale, default_rationale
from .forecast import ForecastParams, Profile, ZoneForecaster, crossings, day_type
from .rules import DEFAULT_MAX_ESCALATIONS, SHANGHAI, Problem, Rule, Tier
from .routing import Places, StaffPosition, suggest_staff
from .state import (CHATTER_WINDOW_S, AlertState, Evaluation, Event, Transition, acknowledge, assign, escalate, explain, silence,
                    transition, unsilence)
from .store import AlertStore, Batch, iso

log = logging.getLogger(__name__)

STAFF_FRESH_S = 900.0
"""A staff position older than this is not used for suggestions."""
FEEDS_USED = ("staff", "warning", "video", "gate", "case")
"""Feed kinds the runtime reads from a tick's events (others are ignored)."""


# --------------------------------------------------------------------------- notifications
@dataclass(frozen=True)
class Message:
    """One notification: to whom (department ids, ``staff:<id>``, ``public``),
    what (zh and en), how urgent.  ``key`` is unique and stable (receivers
    drop duplicates); a silenced message is recorded but not sent."""

    key: str
    created_at: datetime
    channel: str
    recipients: tuple[str, ...]
    text_zh: str
    text_en: str
    severity: str | None = None
    silenced: bool = False


class Notifier(Protocol):
    def send(self, message: Message) -> None: ...


class ListNotifier:
    """Keeps what it was given (tests, the dashboard's in-process feed).  ``keep``: only the
    newest that many (a service running for months must not hold every message it ever sent:
    the alert store's outbox is the record); ``count`` is how many were sent in all."""

    def __init__(self, keep: int | None = None) -> None:
        self.sent: list[Message] | deque[Message] = [] if keep is None else deque(maxlen=keep)
        self.count = 0

    def send(self, message: Message) -> None:
        self.sent.append(message)
        self.count += 1


# --------------------------------------------------------------------------- configuration
class ConfigError(ValueError):
    def __init__(self, problems: Sequence[Problem]):
        self.problems = list(problems)
        super().__init__(f"{len(self.problems)} problem(s) in data/alerts: " + "; ".join(map(str, self.problems)))


@dataclass
class AlertConfig:
    """The data of ``data/alerts``: plans, compound rules (+ zone groups), case routing."""

    plans: dict[str, P.PlanDef]
    compound: list[CompoundRule]
    groups: dict[str, tuple[str, ...]]
    cases: C.CaseConfig


def load_config(data_dir: Path | str = DATA_DIR, zones: Sequence[str] | None = None) -> AlertConfig:
    """Read and validate ``departments.toml``, ``plans.toml``, ``compound.toml``;
    raises :class:`ConfigError` with every problem of all three."""
    d = Path(data_dir)
    read = lambda n: tomllib.loads((d / n).read_text(encoding="utf-8"))  # noqa: E731
    cfg, p1 = C.parse_case_config(read("departments.toml"))
    plans, p2 = P.parse_plans(read("plans.toml"), list(cfg.departments))
    compound, groups, p3 = parse_compound(read("compound.toml"), plans, zones)
    problems = p1 + p2 + p3
    if problems:
        raise ConfigError(problems)
    return AlertConfig(plans, compound, groups, cfg)


@dataclass
class ForecastSetup:
    """Which indicator is each zone's load rate, and the fitted history."""

    zones: Sequence[str]
    indicator_ids: Sequence[str]
    profile: Profile | None = None
    params: ForecastParams = ForecastParams()
    holidays: frozenset[date] = frozenset()
    keep_firing_s: float = 300.0
    warmup_min: int = 10
    """Minutes of updates before forecast alerts may fire (the trend needs them)."""


@dataclass
class TickResult:
    tick: datetime
    skipped: bool = False
    events: list[Event] = field(default_factory=list)
    plan_events: list[P.PlanEvent] = field(default_factory=list)
    case_steps: list[C.CaseStep] = field(default_factory=list)
    messages: list[Message] = field(default_factory=list)


# --------------------------------------------------------------------------- the runtime
class AlertRuntime:
    """See the module docstring.

    ``rules``: threshold rules by id (:func:`.rules.build_rules`);
    ``compound``: compound rules; ``plans``: plan definitions by id;
    ``clock``: returns the time of user actions; ``notifier``: has ``send``.
    Optional: ``cases`` (routing and deadlines; default: none -> no cases),
    ``places`` (inventory geometry: positions, walking distances, place
    names), ``forecast`` (zones to forecast).
    """

    def __init__(self, store: AlertStore, rules: Mapping[str, Rule], compound: Sequence[CompoundRule],
                 plans: Mapping[str, P.PlanDef], clock: Callable[[], datetime], notifier: Notifier, *,
                 cases: C.CaseConfig | None = None, places: Places | None = None,
                 forecast: ForecastSetup | None = None, rationale: Rationale | None = None):
        self.store = store
        self.rationale = rationale if rationale is not None else default_rationale()
        self.compound = list(compound)
        self.plan_defs = dict(plans)
        self.clock = clock
        self.notifier = notifier
        self.case_cfg = cases
        self.places = places
        self.fc_setup = forecast
        self._lock = threading.RLock()
        self.set_rules(rules)
        # state rebuilt from the store
        self.states: dict[tuple[str, str], AlertState] = {(s.rule_id, s.scope): s for s in store.active_alerts()}
        # alerts that ended less than state.CHATTER_WINDOW_S ago (not kept over a restart: after one, a
        # chattering input may raise one new alert before it is recognised again)
        self.recent: dict[tuple[str, str], AlertState] = {}
        self.cases: dict[str, C.Case] = {c.case_id: c for c in store.cases(open_only=True)}
        self.plans: dict[str, P.PlanInstance] = {p.plan_id: p for p in store.plans(active_only=True)}
        last = store.meta("last_tick")
        self.last_tick: datetime | None = datetime.fromisoformat(last.replace("Z", "+00:00")) if last else None
        self.warnings: dict[str, WarningSignal] = _warnings_from_meta(store.meta("warnings"))
        self.staff: dict[str, StaffPosition] = {}
        self.videos: list = []
        self._outbox: list[Message] = [_message_from_row(r) for r in store.unsent_messages()]
        self._forecaster = None
        self._fc_minute: int | None = None
        self._fc_updates = 0
        if forecast is not None:
            self._forecaster = ZoneForecaster(len(forecast.zones), forecast.params, forecast.profile)
        self._video_window_s = max([c.window_s for r in self.compound for c in r.conditions
                                    if hasattr(c, "window_s")] + [cases.dedupe_window_s if cases else 0.0, 60.0])

    # ------------------------------------------------------------------ rules
    def set_rules(self, rules: Mapping[str, Rule]) -> None:
        """Use a new rule set (after a threshold change); alert states are kept."""
        with self._lock:
            # a log-only tier escalates on no clock (there is nothing to do about it)
            self.rules = {k: self._no_log_escalation(r) for k, r in rules.items()}
            ids = list(self.rules)
            self._ids = ids
            sign = np.array([1.0 if self.rules[i].direction == "above" else -1.0 for i in ids])
            low = np.array([min((t.threshold * s for t in self.rules[i].tiers), default=np.inf)
                            for i, s in zip(ids, sign)])
            self._sign, self._low = sign, low
            self._always = np.array([bool(self.rules[i].profiles) or not self.rules[i].enabled for i in ids], bool)

    def log_only(self, rule_id: str, tier: str | None) -> bool:
        """True when ``tier`` of the rule is an event for the log, not a call to act."""
        return tier in TIERS and self.rationale.is_log_only(rule_id, tier)

    def handled_by_plan(self, rule: Rule) -> str | None:
        """The active emergency plan (if any) that was opened for alerts like this one: one of
        the compound rules that open it watches this alert's family and labels.  While it is
        active its steps are the action, and the alert pages nobody (``crowd.load_rate`` of
        a core zone under the crowd plan); it stays listed and still opens its case."""
        for plan_id in self.plans:
            for cr in self.compound:
                if cr.plan != plan_id:
                    continue
                for c in cr.conditions:
                    if isinstance(c, AlertCondition) and watches(c, rule):
                        return plan_id
        return None

    def never_acts(self, rule: Rule) -> bool:
        """True when every tier of the rule is log-only: its data problems (no data, an error)
        and their end are the feed's owner's matter (the feeds panel), not an operator's page."""
        names = [t.name for t in rule.tiers if t.name in TIERS]
        return bool(names) and all(self.log_only(rule.id, n) for n in names)

    def _no_log_escalation(self, rule: Rule) -> Rule:
        esc = {t: v for t, v in rule.escalate_after_s.items() if not self.log_only(rule.id, t)}
        return rule if len(esc) == len(rule.escalate_after_s) else replace(rule, escalate_after_s=esc)

    def _candidates(self, values: Mapping[str, Any]) -> list[str]:
        """Rules that may change state this tick: those with a state, with
        profiles, without a usable value, or past their lowest tier."""
        n = len(self._ids)
        v = np.full(n, np.nan)
        bad = np.zeros(n, bool)
        idle = np.zeros(n, bool)                # nothing expected to work: only a held state can move
        for k, rid in enumerate(self._ids):
            x = values.get(self.rules[rid].indicator_id)
            if x is None:
                bad[k] = True
                continue
            val, q = x
            if q == "idle":
                idle[k] = True
            elif q != "ok" or val is None:
                bad[k] = True
            else:
                v[k] = val
        with np.errstate(invalid="ignore"):
            crossing = (~np.isfinite(v) & ~idle) | (self._sign * v >= self._low)
        cand = crossing | bad | self._always
        out = [self._ids[k] for k in np.nonzero(cand)[0]]
        held = {r for r, _ in self.states if r in self.rules}
        return sorted(set(out) | held)

    # ------------------------------------------------------------------ tick
    def on_tick(self, tick_time: datetime, values: Mapping[str, tuple[float | None, str]],
                events: Mapping[str, Any] | None = None) -> TickResult:
        """Evaluate one engine tick (see the module docstring).  ``values`` maps
        indicator id -> (value, quality); ``events`` maps feed kind -> Arrow
        table (or list of dicts) of the records that arrived since the last tick."""
        with self._lock:
            if tick_time.tzinfo is None:
                raise ValueError("tick_time must be timezone-aware")
            if self.last_tick is not None and tick_time <= self.last_tick:
                return TickResult(tick_time, skipped=True)
            saved = self._begin()
            try:
                result = self._tick(tick_time, values, events)
            except BaseException:
                self._rollback(saved)
                raise
        self.flush_outbox()
        return result

    def _begin(self) -> tuple:
        """Before a tick: the state a tick changes in place (staff positions, recent video
        events, the forecaster) is copied, so a tick that raises leaves the runtime as it was."""
        saved = (self.staff, self.videos, self._forecaster, self._fc_minute, self._fc_updates)
        self.staff, self.videos = dict(self.staff), list(self.videos)
        if self._forecaster is not None:
            self._forecaster = self._forecaster.copy()
        return saved

    def _rollback(self, saved: tuple) -> None:
        self.staff, self.videos, self._forecaster, self._fc_minute, self._fc_updates = saved

    def rehearse(self, tick_time: datetime, values: Mapping[str, tuple[float | None, str]],
                 events: Mapping[str, Any] | None = None) -> Exception | None:
        """Evaluate a tick as :meth:`on_tick` would, on a copy that commits nothing, sends
        nothing and changes nothing here; returns the exception it raised (None: it would pass).
        The pipeline uses it to find the feed records a failed evaluation could not read."""
        with self._lock:
            shadow = copy.copy(self)
            shadow._lock = threading.RLock()
            shadow.store = _NoCommit(self.store)
            shadow.notifier = _Unsent()
            shadow._outbox = []
            try:
                shadow._begin()
                shadow._tick(tick_time, values, events)
            except Exception as exc:              # noqa: BLE001 - the answer is the exception
                return exc
        return None

    def _tick(self, tick_time: datetime, values: Mapping[str, tuple[float | None, str]],
              events: Mapping[str, Any] | None) -> TickResult:
        w = _Work(self)
        rows = {k: _rows(t) for k, t in (events or {}).items() if k in FEEDS_USED}
        self._fold_feeds(w, rows, tick_time)
        for rid in self._candidates(values):
            rule = self.rules[rid]
            if not rule.enabled:
                continue
            val, q = values.get(rule.indicator_id, (None, "no_data"))
            ev = Evaluation(tick_time, None if val is None else float(val), q)
            w.alert(transition(w.prev((rid, "")), ev, rule, tick_time), rule)
        self._alert_cases(w, tick_time)
        self._compound(w, tick_time)
        self._forecast(w, values, rows.get("gate", []), tick_time)
        self._video_cases(w, rows.get("video", []), tick_time)
        self._feed_cases(w, rows.get("case", []), tick_time)
        self._deadlines(w, tick_time)
        w.recent = {k: s for k, s in w.recent.items()
                    if (tick_time - s.status_since).total_seconds() < CHATTER_WINDOW_S}
        w.batch.meta["last_tick"] = iso(tick_time)
        if w.warnings_changed:
            w.batch.meta["warnings"] = _warnings_to_meta(w.warnings)
        self.store.apply(w.batch)
        self._adopt(w)
        self.last_tick = tick_time
        return TickResult(tick_time, False, list(w.batch.events), list(w.batch.plan_events),
                          list(w.batch.case_steps), list(w.batch.messages))

    def _adopt(self, w: "_Work") -> None:
        """After the commit: the working copy becomes the state."""
        self.states = {k: s for k, s in w.states.items() if s.active}
        self.recent = w.recent
        self.cases = {k: c for k, c in w.cases.items() if c.status != "closed"}
        self.plans = {k: p for k, p in w.plans.items() if p.status == "active"}
        self.warnings = w.warnings
        self._outbox.extend(w.batch.messages)

    def flush_outbox(self) -> int:
        """Hand unsent messages to the notifier; returns how many were sent."""
        with self._lock:
            pending, self._outbox = self._outbox, []
        sent, keep = [], []
        for m in pending:
            if m.silenced:
                sent.append(m.key)
                continue
            try:
                self.notifier.send(m)
                sent.append(m.key)
            except Exception:  # a notifier outage must not stop alerting
                log.exception("notifier failed for %s; will retry", m.key)
                keep.append(m)
        if sent:
            self.store.mark_sent(sent, self.clock())
        with self._lock:
            self._outbox = keep + self._outbox
        return len(sent) - sum(1 for m in pending if m.silenced)

    # ------------------------------------------------------------------ feeds
    def _fold_feeds(self, w: "_Work", rows: Mapping[str, list[dict]], now: datetime) -> None:
        for r in sorted(rows.get("staff", []), key=lambda r: r["event_time"]):
            if self.places is None or r.get("lon") is None:
                continue
            held = self.staff.get(r["staff_id"])
            if held is not None and held.at is not None and r["event_time"] < held.at:
                continue                      # sent before the position held, delivered after it
            x, y = self.places.to_xy(r["lon"], r["lat"])
            self.staff[r["staff_id"]] = StaffPosition(r["staff_id"], x, y, r.get("status") or "available",
                                                      r["event_time"])
        if rows.get("warning") or self.warnings:
            new = fold_warnings(self.warnings, rows.get("warning", []), now)
            w.warnings_changed = new != self.warnings
            w.warnings = new
        if rows.get("video"):
            self.videos.extend(videos_from_rows(rows["video"], self.places))
        cut = now - timedelta(seconds=self._video_window_s)
        self.videos = [v for v in self.videos if v.at > cut]

    def _staff_near(self, xy: tuple[float, float] | None, now: datetime, k: int = 3) -> list[dict]:
        if xy is None or self.places is None or not self.staff:
            return []
        fresh = [s for s in self.staff.values()
                 if s.at is None or (now - s.at).total_seconds() <= STAFF_FRESH_S]
        return [{"staff_id": s.staff_id, "walking_m": s.walking_m, "straight_m": s.straight_m}
                for s in suggest_staff(self.places.network, xy, fresh, k)]

    # ------------------------------------------------------------------ cases
    def _new_case(self, w: "_Work", now: datetime, *, case_id: str, category: str, source: str, source_ref: str,
                  xy: tuple[float, float] | None, zone_id: str | None, description: str, by: str = "system",
                  priority: str | None = None, departments: Sequence[str] | None = None,
                  auto_dispatch: bool | None = None, place: tuple[str, str] | None = None) -> C.Case | None:
        cfg = self.case_cfg
        if cfg is None or case_id in w.cases or self.store.case(case_id) is not None:
            return None
        if place is None:
            place = self.places.place(*xy, zone_id) if (self.places is not None and xy is not None) else ("", "")
        if zone_id is None and xy is not None and self.places is not None:
            zone_id = self.places.zone_at(*xy)
        ch = C.open_case(cfg, case_id=case_id, category=category, source=source, source_ref=source_ref, by=by,
                         now=now, priority=priority, zone_id=zone_id, xy=xy, place=place, description=description,
                         departments=departments, suggested=self._staff_near(xy, now))
        w.case(ch)
        if cfg.auto_dispatch if auto_dispatch is None else auto_dispatch:
            d = C.dispatch(ch.case, cfg, by="system", now=now)
            w.case(d)
            pos = self.staff.get(d.case.assignee or "")
            if pos is not None:            # busy until the staff feed says otherwise
                self.staff[pos.staff_id] = replace(pos, status="busy")
        return w.cases[case_id]

    def incident_of(self, rule_id: str) -> str | None:
        """The incident (``zone/group``, data/alerts/departments.toml [incidents]) an alert of
        ``rule_id`` belongs to; None: an alert of its own."""
        cache = self.__dict__.setdefault("_incident_cache", {})
        if rule_id not in cache:
            inc = None
            if self.case_cfg is not None:
                base = rule_id[len("forecast:"):] if rule_id.startswith("forecast:") else None
                rule = self.rules.get(base if base is not None else rule_id)
                if rule is not None:
                    inc = self.case_cfg.incident_of("forecast" if base is not None else rule.family, rule.labels)
            cache[rule_id] = inc
        return cache[rule_id]

    def _zone_point(self, zone_id: str | None) -> tuple[float, float] | None:
        if self.places is None or zone_id not in self.places.zones:
            return None
        p = self.places.zones[zone_id].polygon.representative_point()
        return float(p.x), float(p.y)

    def _alert_cases(self, w: "_Work", now: datetime) -> None:
        cfg = self.case_cfg
        if cfg is None:
            return
        need = RANK[cfg.alert_case_min_tier]
        # alerts that call for action first: a log-only one of the same tick is then noted on their case
        for e in sorted(w.batch.events, key=lambda e: self.log_only(e.rule_id, e.to_tier)):
            if e.kind not in ("firing", "tier_up", "refiring") or RANK.get(e.to_tier or "", 0) < need:
                continue
            rule = self.rules.get(e.rule_id)
            cat = cfg.category_for_alert(rule.family) if rule else None
            if cat is None:
                continue
            zone = rule.labels.get("zone")
            deps = None
            asset = rule.labels.get("asset")
            if asset and self.places is not None and self.places.asset_department.get(asset) in cfg.departments:
                deps = [self.places.asset_department[asset]]
            why = explain(w.states[(e.rule_id, e.scope)], rule).get("sentence_zh", e.reason)
            inc = self.incident_of(rule.id)
            if inc is not None:                   # one case per incident: a later alert joins its case
                case = next((c for c in w.cases.values() if c.source == "alert" and c.status != "closed"
                             and self.incident_of(c.source_ref.split("|", 1)[0]) == inc), None)
                if case is not None:
                    if case.case_id != f"alert:{e.alert_id}" and e.kind in ("firing", "tier_up"):
                        w.case(C.note(case, "merged", by="system", now=now, text=f"同一事件的告警：{why}",
                                      alert_id=e.alert_id, tier=e.to_tier))
                    continue
            if self.log_only(e.rule_id, e.to_tier):     # noted on its incident's case above; opens none
                continue
            xy = self._zone_point(zone)
            place = None
            if xy is not None:                    # a zone-wide alert is placed by the zone's name
                side_zh, side_en = self.places.side(*xy)
                z = self.places.zones[zone]
                place = (f"广州塔{side_zh}{z.name_zh}", f"{z.name_en}, {side_en} of Canton Tower")
            self._new_case(w, now, case_id=f"alert:{e.alert_id}", category=cat, source="alert",
                           source_ref=e.alert_id, xy=xy, zone_id=zone, description=why, departments=deps,
                           place=place)

    def _video_cases(self, w: "_Work", rows: list[dict], now: datetime) -> None:
        cfg = self.case_cfg
        if cfg is None or not rows:
            return
        for v in videos_from_rows(rows, self.places):
            cat = cfg.video_cases.get(v.algorithm)
            if cat is None or v.confidence < cfg.video_min_confidence:
                continue
            xy = (v.x, v.y) if v.x is not None else None
            dup = next((c for c in w.cases.values() if c.source == "video" and c.category == cat
                        and c.status != "closed" and (now - c.opened_at).total_seconds() <= cfg.dedupe_window_s
                        and xy is not None and c.x is not None
                        and np.hypot(c.x - xy[0], c.y - xy[1]) <= cfg.dedupe_radius_m), None)
            if dup is not None:
                w.case(C.note(dup, "merged", by="system", now=now, text=f"same {v.algorithm} seen again",
                              event_id=v.event_id, camera_id=v.camera_id))
                continue
            self._new_case(w, now, case_id=f"video:{v.event_id}", category=cat, source="video",
                           source_ref=v.event_id, xy=xy, zone_id=v.zone_id,
                           description=f"AI video {v.algorithm} ({v.confidence:.2f}) camera {v.camera_id}")

    def _feed_cases(self, w: "_Work", rows: list[dict], now: datetime) -> None:
        if self.case_cfg is None:
            return
        for r in sorted(rows, key=lambda r: r["event_time"]):
            if r.get("category") not in self.case_cfg.categories:
                continue
            cid = f"feed:{r['case_id']}"
            if r.get("status") == "open" or cid not in w.cases:
                if r.get("status") != "open" and self.store.case(cid) is not None:
                    continue                  # already past (closed): a late or repeated record
                xy = self.places.to_xy(r["lon"], r["lat"]) if (self.places is not None and r.get("lon") is not None
                                                              and r.get("lat") is not None) else None
                deps = [d for d in (r.get("departments") or []) if d in self.case_cfg.departments] or None
                self._new_case(w, now, case_id=cid, category=r["category"], source="feed",
                               source_ref=str(r["case_id"]), xy=xy, zone_id=r.get("zone_id"),
                               description=str(r.get("description") or "")[:500], departments=deps,
                               auto_dispatch=False)
            if r.get("status") != "open" and cid in w.cases:
                self._advance_feed_case(w, w.cases[cid], str(r.get("status")), now)

    # the stages a case passes, and the step that takes it from each to the next
    _FEED_ORDER = ("open", "dispatched", "handling", "verifying", "verified", "closed")

    def _advance_feed_case(self, w: "_Work", case, status: str, now: datetime) -> None:
        """Move a case the case feed reports further on through the steps it skipped
        (each stored with the feed as actor); a record behind the case changes nothing."""
        target = "verified" if status == "verified" else status
        if target not in self._FEED_ORDER:
            return
        by, cfg = "feed:case", self.case_cfg
        steps = {"open": lambda c: C.dispatch(c, cfg, by=by, now=now),
                 "dispatched": lambda c: C.accept(c, cfg, by=by, now=now),
                 "handling": lambda c: C.handle(c, cfg, by=by, now=now, note="处置完毕（案件系统报告）"),
                 "verifying": lambda c: C.verify(c, cfg, by=by, now=now, passed=True),
                 "verified": lambda c: C.close(c, cfg, by=by, now=now, note="结案（案件系统报告）")}
        while self._FEED_ORDER.index(case.status) < self._FEED_ORDER.index(target):
            try:
                ch = steps[case.status](case)
            except C.CaseError:
                log.warning("case feed: cannot move %s from %s towards %s", case.case_id, case.status, target)
                return
            w.case(ch)
            case = ch.case

    def _deadlines(self, w: "_Work", now: datetime) -> None:
        if self.case_cfg is not None:
            for c in list(w.cases.values()):
                ch = C.check_overdue(c, self.case_cfg, now)
                if ch.steps:
                    w.case(ch)
        for p in list(w.plans.values()):
            ch = P.check_overdue(p, now)
            if ch.events:
                w.plan(ch)

    # ------------------------------------------------------------------ compound + plans
    def _compound(self, w: "_Work", now: datetime) -> None:
        if not self.compound:
            return
        # the calls to act: a plan is opened for what someone must act on, not for a log-only tier
        # (a zone's 11 dark lamps among hundreds are the lamp availability's to judge)
        alerts = [(self.rules[r], s) for (r, _), s in w.states.items()
                  if r in self.rules and s.active and not self.log_only(r, s.tier)]
        ctx = Context(now, alerts, w.warnings, self.videos, self.places)
        wanted: dict[str, tuple[str, CompoundRule, str]] = {}
        for cr in self.compound:
            rule = cr.as_rule()
            tr = transition(w.prev((rule.id, "")), evaluate(cr, ctx), rule, now)
            w.alert(tr, rule)
            if cr.plan is None:
                continue
            for e in tr.events:
                if e.kind in ("firing", "refiring", "tier_up"):
                    lv = cr.plan_level
                    have = wanted.get(cr.plan)
                    if have is None or self.plan_defs[cr.plan].levels[lv].rank > \
                            self.plan_defs[cr.plan].levels[have[0]].rank:
                        wanted[cr.plan] = (lv, cr, e.alert_id)
                elif e.kind == "resolved" and cr.plan in w.plans:
                    inst = w.plans[cr.plan]
                    if inst.trigger.get("compound") == cr.id:
                        w.plan(P.note(inst, "trigger_cleared", by="system", now=now,
                                      text=f"{cr.name_zh}: conditions no longer hold", compound=cr.id))
        for plan_id, (level, cr, aid) in wanted.items():
            trigger = {"compound": cr.id, "alert_id": aid, "level": cr.level}
            defn = self.plan_defs[plan_id]
            inst = w.plans.get(plan_id)
            if inst is None:
                w.plan(P.activate(defn, level, by="system", now=now, trigger=trigger))
            else:
                ch = P.raise_level(inst, defn, level, by="system", now=now, trigger=trigger)
                if ch.events:
                    w.plan(ch)

    # ------------------------------------------------------------------ forecast
    def _forecast(self, w: "_Work", values: Mapping[str, Any], gate_rows: list[dict], now: datetime) -> None:
        fs, f = self.fc_setup, self._forecaster
        if fs is None or f is None:
            return
        local = now.astimezone(SHANGHAI)
        minute = local.hour * 60 + local.minute
        if minute == self._fc_minute:
            return
        self._fc_minute = minute
        z_n = len(fs.zones)
        load = np.array([_num(values.get(i)) for i in fs.indicator_ids])
        zi = {z: k for k, z in enumerate(fs.zones)}
        ent = np.full(z_n, np.nan)
        ext = np.full(z_n, np.nan)
        for r in gate_rows:
            k = zi.get(r.get("zone_id"))
            if k is not None:
                ent[k] = np.nan_to_num(ent[k]) + (r.get("entries") or 0)
                ext[k] = np.nan_to_num(ext[k]) + (r.get("exits") or 0)
        f.update(minute, day_type(local.date(), fs.holidays), load, ent, ext)
        self._fc_updates += 1
        if self._fc_updates < fs.warmup_min:
            return
        path = f.path(30)
        thr = np.full((z_n, len(TIERS)), np.nan)
        cur = np.zeros(z_n, int)
        for k, iid in enumerate(fs.indicator_ids):
            rule = self.rules.get(iid)
            if rule is None or rule.direction != "above":
                continue
            for t in rule.active(now)[1]:
                thr[k, RANK[t.name] - 1] = t.threshold
            st = w.states.get((iid, ""))
            cur[k] = st.rank if st is not None and st.status in ("firing", "recovering", "pending") else 0
        # a tier the zone is already at (alert or not yet) is no forecast
        with np.errstate(invalid="ignore"):
            cur = np.maximum(cur, (load[:, None] >= thr).sum(axis=1))
        hits = {c.zone: c for c in crossings(path, thr, cur)}
        for k, iid in enumerate(fs.indicator_ids):
            rule = self.rules.get(iid)
            if rule is None:
                continue
            frule = _forecast_rule(rule, fs.keep_firing_s)
            c = hits.get(k)
            if c is None and (frule.id, "") not in w.states:
                continue
            prev = w.prev((frule.id, ""))
            if c is None:
                ev = Evaluation(now, 0.0, "ok")
            else:
                zh, en = c.sentence()
                ev = Evaluation(now, float(RANK[c.tier]), "ok", details={
                    "zone": fs.zones[k], "tier": c.tier, "lead_min": c.lead_min, "threshold": c.threshold,
                    "predicted": round(c.predicted, 1), "sentence_zh": zh, "sentence_en": en,
                    "forecast_15": round(float(path[k, 14]), 1), "forecast_30": round(float(path[k, 29]), 1)})
            w.alert(transition(prev, ev, frule, now), frule)

    # ------------------------------------------------------------------ user actions
    def _user_batch(self, fn: Callable[["_Work"], Any]) -> Any:
        with self._lock:
            w = _Work(self)
            out = fn(w)
            self.store.apply(w.batch)
            self._adopt(w)
        self.flush_outbox()
        return out

    def _find(self, alert_id: str) -> tuple[tuple[str, str], AlertState]:
        for k, s in self.states.items():
            if s.alert_id == alert_id:
                return k, s
        from .state import AlertActionError
        raise AlertActionError(f"no active alert {alert_id!r}")

    def _alert_action(self, alert_id: str, fn: Callable[[AlertState, datetime], Transition]) -> AlertState:
        def run(w: _Work) -> AlertState:
            key, st = self._find(alert_id)
            rule = self.rules.get(key[0]) or _rule_stub(key[0])
            tr = fn(st, self.clock())
            w.alert(tr, rule)
            return tr.state
        return self._user_batch(run)

    def acknowledge(self, alert_id: str, *, by: str, comment: str) -> AlertState:
        return self._alert_action(alert_id, lambda s, now: acknowledge(s, by=by, comment=comment, now=now))

    def assign(self, alert_id: str, *, assignee: str, by: str, comment: str = "") -> AlertState:
        return self._alert_action(alert_id, lambda s, now: assign(s, assignee=assignee, by=by, now=now,
                                                                  comment=comment))

    def escalate(self, alert_id: str, *, by: str, comment: str) -> AlertState:
        def fn(s: AlertState, now: datetime) -> Transition:
            rule = self.rules.get(s.rule_id) if s is not None else None
            top = rule.max_escalations if rule is not None else DEFAULT_MAX_ESCALATIONS
            return escalate(s, by=by, comment=comment, now=now, max_level=top)
        return self._alert_action(alert_id, fn)

    def silence(self, alert_id: str, *, until: datetime, by: str, comment: str) -> AlertState:
        return self._alert_action(alert_id, lambda s, now: silence(s, until=until, by=by, comment=comment, now=now))

    def unsilence(self, alert_id: str, *, by: str, comment: str = "") -> AlertState:
        return self._alert_action(alert_id, lambda s, now: unsilence(s, by=by, now=now, comment=comment))

    def report(self, *, request_id: str, category: str, by: str, description: str = "",
               lonlat: tuple[float, float] | None = None, xy: tuple[float, float] | None = None,
               zone_id: str | None = None, priority: str | None = None, photos: Sequence[str] = ()) -> C.Case:
        """A manual report (e.g. from a patrol phone).  ``request_id`` is the
        client's idempotency key: sending the same report twice makes one case.
        ``photos``: checksums of stored photos (:mod:`indicators.photos`), one record each."""
        if self.case_cfg is None:
            raise C.CaseError("no case configuration")
        if xy is None and lonlat is not None and self.places is not None:
            xy = self.places.to_xy(*lonlat)
        case_id = f"manual:{request_id}"

        def run(w: _Work) -> C.Case:
            now = self.clock()
            made = self._new_case(w, now, case_id=case_id, category=category, source="manual",
                                  source_ref=request_id, xy=xy, zone_id=zone_id, description=description, by=by,
                                  priority=priority, auto_dispatch=False)
            if made is not None:
                for sha in photos:
                    ch = C.note(made, "photo", by=by, now=now, text="", sha256=sha)
                    w.case(ch)
                    made = ch.case
            return made or self.cases.get(case_id) or self.store.case(case_id)
        return self._user_batch(run)

    def _case_action(self, case_id: str, fn: Callable[[C.Case, datetime], C.CaseChange],
                     photos: Sequence[str] = (), by: str = "") -> C.Case:
        def run(w: _Work) -> C.Case:
            case = w.cases.get(case_id) or self.store.case(case_id)
            if case is None:
                raise C.CaseError(f"no case {case_id!r}")
            now = self.clock()
            ch = fn(case, now)
            w.case(ch)
            out = ch.case
            for sha in photos:                       # the photos the step was taken with, one record each
                ch = C.note(out, "photo", by=by, now=now, text="", sha256=sha)
                w.case(ch)
                out = ch.case
            return out
        return self._user_batch(run)

    def dispatch_case(self, case_id: str, *, by: str, to_staff: str | None = None,
                      departments: Sequence[str] | None = None, note: str = "") -> C.Case:
        return self._case_action(case_id, lambda c, now: C.dispatch(c, self.case_cfg, by=by, now=now,
                                                                    to_staff=to_staff, departments=departments,
                                                                    note=note))

    def accept_case(self, case_id: str, *, by: str, note: str = "") -> C.Case:
        return self._case_action(case_id, lambda c, now: C.accept(c, self.case_cfg, by=by, now=now, note=note))

    def arrive_case(self, case_id: str, *, by: str, note: str = "",
                    xy: tuple[float, float] | None = None) -> C.Case:
        return self._case_action(case_id, lambda c, now: C.arrive(c, self.case_cfg, by=by, now=now, note=note,
                                                                  xy=xy))

    def handle_case(self, case_id: str, *, by: str, note: str, photos: Sequence[str] = ()) -> C.Case:
        return self._case_action(case_id, lambda c, now: C.handle(c, self.case_cfg, by=by, now=now, note=note),
                                 photos=photos, by=by)

    def verify_case(self, case_id: str, *, by: str, passed: bool, note: str = "") -> C.Case:
        return self._case_action(case_id, lambda c, now: C.verify(c, self.case_cfg, by=by, now=now, passed=passed,
                                                                  note=note))

    def close_case(self, case_id: str, *, by: str, note: str) -> C.Case:
        return self._case_action(case_id, lambda c, now: C.close(c, self.case_cfg, by=by, now=now, note=note))

    def activate_plan(self, plan_id: str, level: str, *, by: str, note: str = "") -> P.PlanInstance:
        def run(w: _Work) -> P.PlanInstance:
            if plan_id not in self.plan_defs:
                raise P.PlanError(f"unknown plan {plan_id!r}")
            inst = w.plans.get(plan_id)
            now = self.clock()
            ch = (P.activate(self.plan_defs[plan_id], level, by=by, now=now, trigger={"manual": by}, note=note)
                  if inst is None else
                  P.raise_level(inst, self.plan_defs[plan_id], level, by=by, now=now, note=note))
            w.plan(ch)
            return ch.instance
        return self._user_batch(run)

    def _plan_action(self, instance_id: str, fn: Callable[[P.PlanInstance, datetime], P.PlanChange]
                     ) -> P.PlanInstance:
        def run(w: _Work) -> P.PlanInstance:
            inst = next((p for p in w.plans.values() if p.instance_id == instance_id), None)
            if inst is None:
                raise P.PlanError(f"no active plan instance {instance_id!r}")
            ch = fn(inst, self.clock())
            w.plan(ch)
            return ch.instance
        return self._user_batch(run)

    def complete_plan_step(self, instance_id: str, step_id: str, *, by: str, note: str = "") -> P.PlanInstance:
        return self._plan_action(instance_id, lambda i, now: P.complete_step(i, step_id, by=by, now=now, note=note))

    def close_plan(self, instance_id: str, *, by: str, note: str) -> P.PlanInstance:
        return self._plan_action(instance_id, lambda i, now: P.close(i, by=by, now=now, note=note))

    # ------------------------------------------------------------------ views
    def active_alerts(self) -> list[dict[str, Any]]:
        """Active alerts with tier, reason and values (newest first)."""
        out = []
        for (rid, _), s in self.states.items():
            out.append(explain(s, self.rules.get(rid)) | {"incident": self.incident_of(rid)})
        return sorted(out, key=lambda d: d.get("started_at") or "", reverse=True)


# --------------------------------------------------------------------------- the working copy of a tick
class _NoCommit:
    """A store for :meth:`AlertRuntime.rehearse`: reads go to the real store, the commit goes nowhere."""

    def __init__(self, store: AlertStore) -> None:
        self._store = store

    def apply(self, batch: Batch) -> None:
        pass

    def mark_sent(self, keys: Sequence[str], at: datetime) -> None:
        pass

    def __getattr__(self, name: str) -> Any:
        return getattr(self._store, name)


class _Unsent:
    """A notifier for :meth:`AlertRuntime.rehearse`: nobody is paged by a rehearsal."""

    def send(self, message: Message) -> None:
        pass


class _Work:
    """Copies of the runtime's state that one tick (or action) changes, and the
    batch that records the changes.  Adopted only after the commit."""

    def __init__(self, rt: AlertRuntime):
        self.rt = rt
        self.states = dict(rt.states)
        self.recent = dict(rt.recent)
        self.cases = dict(rt.cases)
        self.plans = dict(rt.plans)
        self.warnings = dict(rt.warnings)
        self.warnings_changed = False
        self.batch = Batch()

    def alert(self, tr: Transition, rule: Rule) -> None:
        st = tr.state
        key = (st.rule_id, st.scope)
        if st.active or tr.events:
            self.states[key] = st
        else:
            self.states.pop(key, None)
        if st.status == "resolved" and st.fired_at is not None:
            self.recent[key] = st            # may come back (chattering): state.CHATTER_WINDOW_S
        elif st.active:
            self.recent.pop(key, None)
        if st.alert_id and (tr.events or _material(tr.previous, st)):
            self.batch.alerts = [a for a in self.batch.alerts if a.alert_id != st.alert_id] + [st]
        self.batch.events.extend(tr.events)
        joined = self._joins_incident(key, st) if tr.events else False
        for e in tr.events:
            m = _alert_message(e, st, rule, self.rt)
            if m is not None and not (joined and e.kind in ("firing", "refiring", "tier_up")):
                self.batch.messages.append(m)

    def _joins_incident(self, key: tuple[str, str], st: AlertState) -> bool:
        """True when an alert of the same incident (place and cause) is already firing at this
        alert's tier or higher: this one is listed under it and pages nobody."""
        inc = self.rt.incident_of(st.rule_id)
        if inc is None or st.status not in ("firing", "recovering"):
            return False
        return any(k != key and o.status in ("firing", "recovering") and o.rank >= st.rank
                   and self.rt.incident_of(o.rule_id) == inc and not self.rt.log_only(o.rule_id, o.tier)
                   for k, o in self.states.items())

    def prev(self, key: tuple[str, str]) -> AlertState | None:
        """The state a transition starts from: the active one, else one that ended less than
        CHATTER_WINDOW_S ago (so that a chattering alert comes back as itself)."""
        return self.states.get(key) or self.recent.get(key)

    def case(self, ch: C.CaseChange) -> None:
        self.cases[ch.case.case_id] = ch.case
        self.batch.cases = [c for c in self.batch.cases if c.case_id != ch.case.case_id] + [ch.case]
        self.batch.case_steps.extend(ch.steps)
        for s in ch.steps:
            m = _case_message(s, ch.case, self.rt)
            if m is not None:
                self.batch.messages.append(m)

    def plan(self, ch: P.PlanChange) -> None:
        self.plans[ch.instance.plan_id] = ch.instance
        self.batch.plans = [p for p in self.batch.plans if p.instance_id != ch.instance.instance_id] + [ch.instance]
        self.batch.plan_events.extend(ch.events)
        for e in ch.events:
            self.batch.messages.extend(_plan_messages(e, ch.instance, self.rt))


def _material(prev: AlertState | None, st: AlertState) -> bool:
    """Worth a snapshot write: more changed than the last value and the times
    of the last evaluation and crossing (which no decision depends on)."""
    if prev is None:
        return st.active
    def key(a: AlertState) -> tuple:
        return (a.alert_id, a.status, a.tier, a.seq, a.profile, a.threshold, len(a.evidence), a.acked_by,
                a.assignee, a.escalation_level, a.silenced_until, a.started_at, a.status_since)
    return key(prev) != key(st)


# --------------------------------------------------------------------------- messages
_ALERT_NOTIFY = {"firing", "tier_up", "refiring", "escalated", "no_data", "error", "resolved"}


def _alert_message(e: Event, st: AlertState, rule: Rule, rt: AlertRuntime) -> Message | None:
    if e.kind not in _ALERT_NOTIFY:
        return None
    cfg = rt.case_cfg
    ops = cfg.supervisor if cfg else "scenic_operations"
    # an advisory (blue) pages nobody: neither when it fires nor when it ends; a tier_up
    # out of it, an escalation by hand and data problems still do
    if e.kind in ("firing", "refiring") and st.tier in ADVISORY_TIERS:
        return None
    # an alert back at a tier it held (before it ended, or chattering after) pages nobody again
    if e.kind in ("refiring", "tier_up") and e.details.get("higher") is False:
        return None
    if e.kind == "resolved" and e.from_tier in ADVISORY_TIERS:
        return None
    # a log-only tier (the rationale: no operator action) is stored, not paged; an operator's own
    # escalation and data problems still page
    tier = e.from_tier if e.kind == "resolved" else (e.to_tier or st.tier)
    if rt.log_only(rule.id, tier) and not (e.kind == "escalated" and e.actor.startswith("user:")) \
            and e.kind not in ("no_data", "error"):
        return None
    # a rule with nothing to act on at any tier: its missing data and the data's return page nobody
    # either (172 case counts "no data" before the day's first case, and back, on the normal weekday)
    if e.kind in ("no_data", "error", "resolved") and tier is None and rt.never_acts(rule):
        return None
    # an emergency plan opened for alerts like this one is active: its steps (and its raise to a
    # higher level, with its own message) are the action - suppression by state (ISA-18.2)
    if e.kind in ("firing", "refiring", "tier_up", "escalated", "resolved") and not e.actor.startswith("user:") \
            and rt.handled_by_plan(rule) is not None:
        return None
    if rule.id.startswith("forecast:"):
        d = st.details
        if e.kind not in ("firing", "tier_up"):   # a wobbling lead time must not page again
            return None
        name_zh, name_en = _zone_names(rt, d.get("zone"))
        zh = f"{name_zh}预测：{d.get('sentence_zh', '')}（预计负荷率{d.get('predicted')}%）"
        en = f"{name_en} forecast: {d.get('sentence_en', '')} (predicted load {d.get('predicted')} %)"
        return Message(f"msg:{e.key}", e.at, "forecast", (ops,), zh, en, d.get("tier"), e.silenced)
    why = explain(st, rule)
    if e.kind == "escalated" and e.actor.startswith("user:"):
        who = e.actor.split(":", 1)[1]
        zh = f"【升级{st.escalation_level}级】{who}上报：{why.get('sentence_zh', rule.id)}（原因：{e.reason}）"
        en = f"[escalation {st.escalation_level}] raised by {who}: {why.get('sentence_en', rule.id)} (reason: {e.reason})"
        return Message(f"msg:{e.key}", e.at, "escalation", (ops,), zh, en, st.tier, e.silenced)
    if e.kind == "escalated":                   # on its own clock, once: to the named role
        role = _escalation_role(cfg)
        zh = f"【升级至{role[1]}】未确认告警：{why.get('sentence_zh', rule.id)}"
        en = f"[escalated to the {role[2]}] unacknowledged alert: {why.get('sentence_en', rule.id)}"
        return Message(f"msg:{e.key}", e.at, "escalation", (ops, f"role:{role[0]}"), zh, en, st.tier, e.silenced)
    if e.kind == "resolved":
        zh, en = f"告警解除：{rule.name_zh or rule.id}", f"Resolved: {rule.name_en or rule.id}"
    elif e.kind in ("no_data", "error"):            # a data problem, routed apart from real alerts
        return Message(f"msg:{e.key}", e.at, "data_quality", (ops,), why.get("sentence_zh", rule.id),
                       why.get("sentence_en", rule.id), None, e.silenced)
    else:
        zh = why.get("sentence_zh", e.reason)
        en = why.get("sentence_en", e.reason)
    return Message(f"msg:{e.key}", e.at, "alert", (ops,), zh, en, st.tier, e.silenced)


def _escalation_role(cfg: C.CaseConfig | None) -> tuple[str, str, str]:
    """(role, its Chinese name, its English name) an escalation goes to."""
    if cfg is None:
        return "supervisor", "值班主管", "duty supervisor"
    return cfg.escalation_role, cfg.escalation_role_zh, cfg.escalation_role_en


def _case_message(s: C.CaseStep, case: C.Case, rt: AlertRuntime) -> Message | None:
    cfg = rt.case_cfg
    if s.step == "dispatch":
        zh, en = C.message(case, cfg)
        to = (s.department,) + ((f"staff:{case.assignee}",) if case.assignee else ())
        return Message(f"msg:{s.key}", s.at, "case", tuple(x for x in to if x), zh, en, case.priority)
    if s.step == "escalate":
        step_zh = C.STEP_ZH[s.details["overdue_step"]]
        role = _escalation_role(cfg)
        zh = f"【超时升级至{role[1]}】案件{case.case_id}{step_zh}超时：{C.message(case, cfg)[0]}"
        en = (f"[overdue, escalated to the {role[2]}] case {case.case_id}: {s.details['overdue_step']} is late. "
              f"{C.message(case, cfg)[1]}")
        return Message(f"msg:{s.key}", s.at, "escalation",
                       (cfg.supervisor, f"role:{role[0]}") + tuple(case.departments), zh, en, case.priority)
    return None


def _plan_messages(e: P.PlanEvent, inst: P.PlanInstance, rt: AlertRuntime) -> list[Message]:
    defn = rt.plan_defs.get(inst.plan_id)
    if defn is None:
        return []
    lv = defn.levels[inst.level]
    deps = tuple(sorted({s.department for s in inst.steps}))
    if e.kind in ("activated", "level_raised"):
        return [Message(f"msg:{e.key}", e.at, "plan", deps, lv.message_zh, lv.message_en, LEVEL_SEVERITY[lv.level]),
                Message(f"notice:{e.key}", e.at, "public_notice", ("public",), lv.notice_zh, lv.notice_en,
                        LEVEL_SEVERITY[lv.level])]
    if e.kind == "step_overdue":
        sup = rt.case_cfg.supervisor if rt.case_cfg else "scenic_operations"
        st = inst.step(e.step_id)
        return [Message(f"msg:{e.key}", e.at, "escalation", (st.department, sup),
                        f"【预案步骤超时】{defn.name_zh}（{lv.name_zh}）：{st.text_zh}",
                        f"[plan step late] {defn.name_en} ({lv.name_en}): {st.text_en}", LEVEL_SEVERITY[lv.level])]
    return []


LEVEL_SEVERITY = {lv: t for t, lv in TIER_LEVEL.items()}


def _zone_names(rt: AlertRuntime, zone: str | None) -> tuple[str, str]:
    if rt.places is not None and zone in rt.places.zones:
        z = rt.places.zones[zone]
        return z.name_zh, z.name_en
    return zone or "", zone or ""


# --------------------------------------------------------------------------- helpers
def _forecast_rule(rule: Rule, keep_firing_s: float) -> Rule:
    """The synthetic rule of a zone's forecast alert: value = rank of the tier
    predicted to be reached (0 none); no escalation, short keep-firing so the
    alert does not flap as the lead time wobbles."""
    return Rule(id=f"forecast:{rule.id}", indicator_id=rule.indicator_id, direction="above",
                tiers=tuple(Tier(t.name, float(t.rank), float(t.rank)) for t in rule.tiers), pending_s=0.0,
                keep_firing_s=keep_firing_s, nodata="ok", error="ok", escalate_after_s={}, family="forecast",
                labels=dict(rule.labels), name_zh=f"{rule.name_zh}预测", name_en=f"{rule.name_en} forecast")


def _rule_stub(rule_id: str) -> Rule:
    return Rule(id=rule_id, indicator_id=rule_id, direction="above", tiers=())


def _num(x: Any) -> float:
    if x is None:
        return float("nan")
    v, q = x
    return float(v) if q == "ok" and v is not None else float("nan")


def _rows(t: Any) -> list[dict]:
    if t is None:
        return []
    if hasattr(t, "to_pylist"):
        return t.to_pylist()
    return list(t)


def _message_from_row(r: Mapping[str, Any]) -> Message:
    return Message(r["key"], datetime.fromisoformat(r["created_at"].replace("Z", "+00:00")), r["channel"],
                   tuple(r["recipients"]), r["text_zh"], r["text_en"], r["severity"], r["silenced"])


def _warnings_to_meta(ws: Mapping[str, WarningSignal]) -> str:
    import json
    return json.dumps({k: {"signal": w.signal, "colour": w.colour, "issued_at": iso(w.issued_at),
                           "expires": iso(w.expires), "headline": w.headline, "event_id": w.event_id}
                       for k, w in ws.items()}, ensure_ascii=False, sort_keys=True)


def _warnings_from_meta(text: str | None) -> dict[str, WarningSignal]:
    import json
    if not text:
        return {}
    dt = lambda s: datetime.fromisoformat(s.replace("Z", "+00:00")) if s else None  # noqa: E731
    return {k: WarningSignal(v["signal"], v["colour"], dt(v["issued_at"]), dt(v["expires"]), v["headline"],
                             v["event_id"]) for k, v in json.loads(text).items()}


__all__ = ["AlertConfig", "AlertRuntime", "ConfigError", "ForecastSetup", "ListNotifier", "Message", "Notifier",
           "TickResult", "load_config"]
