"""The alarm report: alarm-management figures (ANSI/ISA-18.2, EEMUA 191) of what an alert run produced.

:func:`alarm_report` is a pure function over what the alert runtime emitted -
its alert events (the store's ``alert_events`` rows or the
:class:`~.state.Event` objects of the tick results), the cases, the plan
events, the case steps and the messages - and a counted window.  It reads no
clock, file or store.  ``scenic-twin alarms report RECORDING_DIR`` (the
application layer, :func:`indicators.cli.run_alarm_report`) runs a recording
through the engine and the alert runtime exactly as the live service does
(:class:`indicators.pipeline.Pipeline`, 15 s cadence, 15 min warm-up) and
hands what it produced to this function.  The priorities come from the
shipped rationale (``data/alerts/rationale.toml``, read once) unless a
:class:`~.rationale.Rationale` is passed.

What is counted, and how (the same definitions are in every report, key
``definitions``):

* **an alert** (an alarm) is an alert episode (one ``alert_id``: one rule x
  scope from pending to resolved) that reached *firing* at yellow or above;
  an episode that stayed blue is an **advisory** (it pages nobody,
  :data:`indicators.alerts.ADVISORY_TIERS`), counted apart and in no other
  figure; an alert is counted once, at its
  first ``firing`` event, whatever happens after (tier raises, recovering and
  refiring inside the same episode are not new alerts).  Threshold, compound
  and forecast rules all count: each pages the operator.  An alert belongs to
  the window when it first fired in it.
* its **tier** is the highest tier the episode reached within the window
  (``firing``, ``tier_up``, ``refiring`` events);
* **priority** is the rationalised one (:mod:`.rationale`,
  ``data/alerts/rationale.toml``): consequence x time to act of the rule's
  judgement at the episode's tier (urgent / high / low); a rule the file does
  not document falls back to its tier (:data:`PRIORITY`: red -> urgent,
  orange -> high, yellow -> low) and is counted as ``undocumented``;
* a **log event** is an episode whose rule, at its tier, has no operator
  action in the rationale (``log_only``): an event for the log, not an
  alarm; counted apart like the advisories, in no other figure;
* **rates**: mean = alerts / counted hours; worst hour and worst 10 minutes
  are the most alerts in any 60 or 10 minutes (sliding, starting at an
  alert); the shares are over the complete clock periods (local time,
  10-minute periods at :00, :10 …; hours at :00) that lie inside the counted
  window (a period cut by the window edge by more than ``edge_s`` is left
  out of the shares but its alerts still count in the totals).  A 10-minute
  period is in **flood** with more than :data:`FLOOD_PER_10_MIN` alerts; an
  hour is **manageable** with at most :data:`MANAGEABLE_PER_HOUR`;
* **bad actors**: rules (rule x place: every rule watches one indicator of
  one place) by alerts raised, most first (ties: higher tier, then rule id);
* **chattering**: a rule x scope *activated* at least
  :data:`CHATTER_10_MIN` times in some 10 minutes or at least
  :data:`CHATTER_60_MIN` times in some 60 minutes, within the window; an
  activation is an entry into firing (``firing`` or ``refiring``: both page);
* **standing**: an alert active (from its first firing until resolved, or
  until the window's end) for more than 24 h within the window; **still
  active at the end**: fired at or before the window's end and not resolved
  by then;
* **cases opened** by source (alert, video, feed, manual) and category;
  **plans** activated (plan, level, time) and raised; **messages** the
  runtime sent, by channel (kind) - operator messages are all but the
  ``public_notice`` channel; **escalations**: alert escalations (timer or by
  hand), case deadlines escalated, plan steps overdue.
"""
from __future__ import annotations

from collections import Counter, defaultdict
from dataclasses import dataclass, field
from datetime import datetime, time as dtime, timedelta, timezone
from typing import Any, Iterable, Mapping, Sequence

from indicators.localtime import to_local

from . import ADVISORY_TIERS, RANK, TIERS
from .rationale import FALLBACK_PRIORITY, PRIORITIES, Rationale, default_rationale

PRIORITY: dict[str, str] = dict(FALLBACK_PRIORITY)
"""Tier -> priority of a rule the rationale does not document (the priority before
rationalisation); every documented rule takes its priority from the rationale's
consequence x time-to-act matrix (:mod:`.rationale`).  Blue is an advisory."""
PRIORITY_ZH: dict[str, str] = {"urgent": "紧急", "high": "高", "low": "低"}
PRIORITY_TARGET: dict[str, float] = {"urgent": 0.05, "high": 0.15, "low": 0.80}
"""The usual target distribution of what fires (EEMUA 191 as summarised by vendors)."""

FLOOD_PER_10_MIN = 10
"""A 10-minute period with MORE than this many alerts is a flood."""
MANAGEABLE_PER_HOUR = 6
"""An hour with at most this many alerts is manageable."""
CHATTER_10_MIN = 3
CHATTER_60_MIN = 5
STANDING = timedelta(hours=24)
TOP_BAD_ACTORS = 10
OPERATOR_EXCLUDED_CHANNELS = frozenset({"public_notice"})

FIRED = "firing"
RAISING = ("firing", "tier_up", "refiring")
ACTIVATIONS = ("firing", "refiring")
ENDED = ("resolved", "cancelled")

TEN_MIN = timedelta(minutes=10)
HOUR = timedelta(hours=1)

DEFINITIONS: dict[str, str] = {
    "alert": "an alarm: an alert episode (one alert_id: a rule x scope from pending to resolved) that reached "
             "firing at yellow or above, counted once at its first 'firing' event; threshold, compound and "
             "forecast rules",
    "advisory": "an episode that fired and stayed blue (IV): it colours the wall and is logged but pages nobody; "
                "counted apart, in no other figure",
    "tier": "the highest tier the episode reached within the window",
    "priority": "the rationale's priority (data/alerts/rationale.toml): consequence x time to act of the rule's "
                "judgement at the episode's tier; a rule it does not document: red -> urgent, orange -> high, "
                "yellow -> low (priority_mapping), counted in priority_rule.undocumented",
    "log_event": "an episode whose rule has no operator action at its tier (log_only in the rationale): an event "
                 "for the log, not an alarm; counted apart (log_events), in no other figure",
    "per_hour_mean": "alerts / hours in the counted window",
    "worst": "most alerts in any 60 (10) minutes of the window, sliding",
    "flood": f"a complete 10-minute clock period (local time) with more than {FLOOD_PER_10_MIN} alerts",
    "manageable": f"a complete clock hour (local time) with at most {MANAGEABLE_PER_HOUR} alerts",
    "bad_actor": "a rule (rule x place) by alerts raised in the window",
    "chattering": f"a rule x scope activated (firing or refiring) >= {CHATTER_10_MIN} times in some 10 minutes "
                  f"or >= {CHATTER_60_MIN} times in some 60 minutes of the window",
    "standing": "an alert active (first firing until resolved, or the window's end) for more than 24 h "
                "within the window",
    "active_at_end": "an alert that fired at or before the window's end and was not resolved by then",
    "operator_messages": "messages the runtime sent on every channel but public_notice",
    "escalations": "alert escalations (events 'escalated'; of_log_events: those of log events, which the runtime "
                   "still escalates), case steps 'escalate', plan events 'step_overdue'",
}


# --------------------------------------------------------------------------- names
@dataclass
class Names:
    """Words for rules: family and place names from the catalog, the inventory and ``data/alerts``.

    ``rules``: rule id -> (family, labels, name_zh, name_en) - the family
    name of the catalog (a threshold rule's ``name_zh``/``name_en``);
    ``zones``, ``assets``: id -> (zh, en); ``qualifiers``: (scope key, value)
    -> (zh, en) for facility classes, case categories and departments.
    """

    rules: dict[str, tuple[str, Mapping[str, str], str, str]] = field(default_factory=dict)
    zones: dict[str, tuple[str, str]] = field(default_factory=dict)
    assets: dict[str, tuple[str, str, str]] = field(default_factory=dict)      # zh, en, zone id
    areas: dict[str, str] = field(default_factory=dict)                          # area -> asset id
    qualifiers: dict[tuple[str, str], tuple[str, str]] = field(default_factory=dict)
    plans: dict[str, tuple[str, str]] = field(default_factory=dict)

    @classmethod
    def build(cls, rules: Mapping[str, Any], *, inventory=None, catalog=None, config=None) -> "Names":
        """From the pipeline's rules (``Rule`` objects), the inventory GeoDataFrame,
        the catalog (facility classes, areas) and the alert configuration
        (compound rules, case categories and departments, plans)."""
        n = cls()
        for rid, r in rules.items():
            n.rules[rid] = (r.family, dict(r.labels), r.name_zh, r.name_en)
        if inventory is not None:
            for aid, t, zh, en, z in zip(inventory["asset_id"], inventory["type"], inventory["name_zh"],
                                         inventory["name_en"], inventory["zone_id"]):
                z = z if isinstance(z, str) else ""
                n.assets[aid] = (zh or aid, en or aid, z)
                if t == "management_zone" and z:
                    n.zones[z] = (zh or z, en or z)
        if catalog is not None:
            n.areas = dict(catalog.dims.areas)
            for k, c in catalog.dims.classes.items():
                n.qualifiers[("class", k)] = (c.name_zh, c.name_en)
        if config is not None:
            for cr in config.compound:
                r = cr.as_rule()
                n.rules[r.id] = ("compound", dict(r.labels), r.name_zh, r.name_en)
            for k, c in config.cases.categories.items():
                n.qualifiers[("category", k)] = (c.phrase_zh, c.phrase_en)
            for k, d in config.cases.departments.items():
                n.qualifiers[("department", k)] = (d.name_zh, d.name_en)
            for k, p in config.plans.items():
                n.plans[k] = (p.name_zh, p.name_en)
        return n

    def _asset(self, aid: str) -> tuple[str, str]:
        zh, en, z = self.assets.get(aid, (aid, aid, ""))
        if z and z in self.zones:
            zzh, zen = self.zones[z]
            return f"{zh}（{zzh}）", f"{en} ({zen})"
        return zh, en

    def describe(self, rule_id: str) -> dict[str, Any]:
        """``family``, ``name_zh``/``name_en`` (what: the family's name and a
        qualifier such as the facility class or video algorithm) and
        ``place_zh``/``place_en`` of a rule."""
        forecast = rule_id.startswith("forecast:")
        base = rule_id[len("forecast:"):] if forecast else rule_id
        family, labels, zh, en = self.rules.get(base, ("", {}, "", ""))
        if not family:
            family = "compound" if base.startswith("compound:") else base.split(":", 1)[0]
        zh, en = zh or base, en or base
        if forecast:
            family, zh, en = "forecast", f"{zh}（预测）", f"{en} (forecast)"
        quals = []
        for key in ("class", "algorithm", "category", "department", "signal"):
            v = labels.get(key)
            if v:
                quals.append(self.qualifiers.get((key, v), (v.replace("_", " "), v.replace("_", " "))))
        if quals:
            zh += "（" + "，".join(q[0] for q in quals) + "）"
            en += " (" + ", ".join(q[1] for q in quals) + ")"
        place = ("景区", "Scenic area")
        for key in ("asset", "camera", "gate", "station", "stop", "segment"):
            if labels.get(key):
                place = self._asset(labels[key])
                break
        else:
            if labels.get("zone"):
                place = self.zones.get(labels["zone"], (labels["zone"], labels["zone"]))
            elif labels.get("route"):
                r = str(labels["route"])
                place = (f"{r}路", f"Route {r}") if r.isdigit() else (r.replace("_", " "), r.replace("_", " "))
            elif labels.get("area"):
                aid = self.areas.get(labels["area"])
                place = self.assets.get(aid, (labels["area"], labels["area"], ""))[:2] if aid else place
        return {"family": family, "name_zh": zh, "name_en": en, "place_zh": place[0], "place_en": place[1]}


# --------------------------------------------------------------------------- input
def _get(x: Any, key: str, default: Any = None) -> Any:
    if isinstance(x, Mapping):
        return x.get(key, default)
    return getattr(x, key, default)


def _time(v: Any) -> datetime | None:
    if v is None:
        return None
    if isinstance(v, datetime):
        t = v
    else:
        t = datetime.fromisoformat(str(v).replace("Z", "+00:00"))
    if t.tzinfo is None:
        raise ValueError(f"a naive time {v!r}: pass aware times (UTC inside the system)")
    return t.astimezone(timezone.utc)


def _iso(t: datetime | None) -> str | None:
    return None if t is None else t.astimezone(timezone.utc).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def _local(t: datetime | None, fmt: str = "%Y-%m-%d %H:%M:%S") -> str | None:
    return None if t is None else to_local(t).strftime(fmt)


@dataclass
class _Episode:
    alert_id: str
    rule_id: str
    scope: str
    fired_at: datetime | None = None
    ended_at: datetime | None = None
    tier: str | None = None
    status: str | None = None          # the status after its last event at or before the window's end


def _episodes(events: Iterable[Any], end: datetime) -> tuple[dict[str, _Episode], list[tuple[Any, datetime]]]:
    """Episodes (by alert id) from the events at or before ``end``, and the events with their times."""
    rows = []
    for e in events:
        t = _time(_get(e, "at"))
        if t is not None and t <= end:
            rows.append((e, t))
    rows.sort(key=lambda r: (r[1], str(_get(r[0], "alert_id")), _get(r[0], "seq") or 0))
    eps: dict[str, _Episode] = {}
    for e, t in rows:
        aid = _get(e, "alert_id")
        if not aid:
            continue
        ep = eps.get(aid)
        if ep is None:
            ep = eps[aid] = _Episode(aid, _get(e, "rule_id"), _get(e, "scope") or "")
        kind = _get(e, "kind")
        if kind == FIRED and ep.fired_at is None:
            ep.fired_at = t
        if kind in RAISING and ep.fired_at is not None:
            tier = _get(e, "to_tier")
            if tier and RANK.get(tier, 0) > RANK.get(ep.tier or "", 0):
                ep.tier = tier
        if kind in ENDED and ep.fired_at is not None and ep.ended_at is None:
            ep.ended_at = t
        elif kind == "refiring":             # a chattering alert back after it ended: the same episode again
            ep.ended_at = None
        ep.status = _get(e, "to_status") or ep.status
    return eps, rows


# --------------------------------------------------------------------------- periods
def _period_index(t: datetime, length: timedelta) -> int:
    """Index of the local clock period of ``length`` that holds ``t``."""
    loc = to_local(t)
    s = (loc.replace(tzinfo=None) - datetime(1970, 1, 1)).total_seconds()
    return int(s // length.total_seconds())


def _period_start(index: int, length: timedelta, like: datetime) -> datetime:
    """The start (aware, UTC) of local clock period ``index``."""
    naive = datetime(1970, 1, 1) + index * length
    off = to_local(like).utcoffset() or timedelta(0)
    return (naive - off).replace(tzinfo=timezone.utc)


def _periods(times: Sequence[datetime], start: datetime, end: datetime, length: timedelta,
             edge: timedelta) -> list[dict[str, Any]]:
    """Clock periods of ``length`` that meet [start, end]: start, alerts, and whether complete."""
    if end < start:
        return []
    first, last = _period_index(start, length), _period_index(end, length)
    counts = Counter(_period_index(t, length) for t in times)
    out = []
    for i in range(first, last + 1):
        ps = _period_start(i, length, start)
        pe = ps + length
        out.append({"from": ps, "to": pe, "alerts": counts.get(i, 0),
                    "complete": ps >= start - edge and pe <= end + edge})
    return out


def _worst(times: Sequence[datetime], length: timedelta) -> tuple[int, datetime | None]:
    """Most of the sorted ``times`` in any [t, t + length) that starts at one of them."""
    best, at = 0, None
    j = 0
    for i, t in enumerate(times):
        if j < i:
            j = i
        while j < len(times) and times[j] < t + length:
            j += 1
        if j - i > best:
            best, at = j - i, t
    return best, at


def _max_in(times: Sequence[datetime], length: timedelta) -> int:
    return _worst(times, length)[0]


def _share(n: int, d: int) -> float | None:
    return None if d == 0 else round(n / d, 4)


# --------------------------------------------------------------------------- the figures
def alarm_report(events: Iterable[Any], *, start: datetime, end: datetime, cases: Iterable[Any] = (),
                 plan_events: Iterable[Any] = (), case_steps: Iterable[Any] = (), messages: Iterable[Any] = (),
                 names: Names | None = None, edge_s: float = 15.0, top: int = TOP_BAD_ACTORS,
                 rationale: Rationale | None = None) -> dict[str, Any]:
    """The alarm-management figures of the window [``start``, ``end``] (see the module docstring).

    ``events``: alert events (mappings or objects with ``alert_id``,
    ``rule_id``, ``scope``, ``seq``, ``at``, ``kind``, ``to_tier``,
    ``to_status``, ``actor``) - all of the run, also those before the window
    (standing alerts need them); ``cases``: ``case_id``, ``source``,
    ``category``, ``priority``, ``opened_at``; ``plan_events``: ``plan_id``,
    ``instance_id``, ``kind``, ``level``, ``at``; ``case_steps``: ``case_id``,
    ``step``, ``at``; ``messages``: ``channel``, ``created_at``.  Times are
    aware datetimes or ISO 8601 strings.  ``edge_s``: how much of a clock
    period the window may cut off and the period still count as complete
    (the evaluation interval).  ``rationale``: the judgements that give the
    priorities and the log-only events (default: the shipped file).  Pure:
    same input, same output.
    """
    start, end = _time(start), _time(end)
    names = names or Names()
    edge = timedelta(seconds=edge_s)
    hours = max((end - start).total_seconds(), 0.0) / 3600.0
    eps, rows = _episodes(events, end)
    # advisories (blue: they page nobody) are counted apart; every figure below is of alarms
    advisory = {a for a, ep in eps.items() if ep.tier in ADVISORY_TIERS}
    advisories = [ep for a, ep in eps.items() if a in advisory and ep.fired_at is not None
                  and start <= ep.fired_at <= end]
    # log events (no operator action at that tier, data/alerts/rationale.toml) likewise
    rat = rationale or default_rationale()
    logged = {a for a, ep in eps.items() if a not in advisory and ep.tier and rat.is_log_only(ep.rule_id, ep.tier)}
    log_events = [ep for a, ep in eps.items() if a in logged and ep.fired_at is not None
                  and start <= ep.fired_at <= end]
    eps = {a: ep for a, ep in eps.items() if a not in advisory and a not in logged}
    rows = [(e, t) for e, t in rows if _get(e, "alert_id") not in advisory]
    # escalations count what the runtime did, log events included (until it stops escalating them)
    esc = [(e, t) for e, t in rows if _get(e, "kind") == "escalated" and start <= t <= end]
    esc_logged = sum(1 for e, _ in esc if _get(e, "alert_id") in logged)
    rows = [(e, t) for e, t in rows if _get(e, "alert_id") not in logged]

    # ---- alerts raised in the window
    raised = sorted((ep for ep in eps.values() if ep.fired_at is not None and start <= ep.fired_at <= end),
                    key=lambda ep: (ep.fired_at, ep.alert_id))
    times = [ep.fired_at for ep in raised]
    total = len(raised)
    worst_h, worst_h_at = _worst(times, HOUR)
    worst_10, worst_10_at = _worst(times, TEN_MIN)
    tens = _periods(times, start, end, TEN_MIN, edge)
    hrs = _periods(times, start, end, HOUR, edge)
    full10 = [p for p in tens if p["complete"]]
    full_h = [p for p in hrs if p["complete"]]
    flood = [p for p in full10 if p["alerts"] > FLOOD_PER_10_MIN]
    manageable = [p for p in full_h if p["alerts"] <= MANAGEABLE_PER_HOUR]

    by_tier = Counter(ep.tier or "none" for ep in raised)
    prio = {ep.alert_id: (rat.priority(ep.rule_id, ep.tier) if ep.tier else None) or "none" for ep in raised}
    by_priority = Counter(prio.values())
    tier_priority: dict[str, Counter] = defaultdict(Counter)
    for ep in raised:
        tier_priority[ep.tier or "none"][prio[ep.alert_id]] += 1
    undocumented = [ep for ep in raised if not rat.documented(ep.rule_id)]
    by_group = Counter(("forecast" if ep.rule_id.startswith("forecast:") else
                        "compound" if ep.rule_id.startswith("compound:") else "threshold") for ep in raised)
    by_family = Counter(names.describe(ep.rule_id)["family"] for ep in raised)

    # ---- bad actors
    per_rule: dict[str, list[_Episode]] = defaultdict(list)
    for ep in raised:
        per_rule[ep.rule_id].append(ep)
    def actor_key(item):
        rid, lst = item
        return (-len(lst), -max(RANK.get(e.tier or "", 0) for e in lst), rid)
    bad = []
    for rid, lst in sorted(per_rule.items(), key=actor_key)[:top]:
        d = names.describe(rid)
        bad.append({"rule_id": rid, **d, "alerts": len(lst),
                    "share": _share(len(lst), total),
                    "by_tier": {t: n for t in reversed(TIERS) if (n := sum(1 for e in lst if e.tier == t))}})

    # ---- chattering: activations per rule x scope in the window
    acts: dict[tuple[str, str], list[datetime]] = defaultdict(list)
    for e, t in rows:
        if _get(e, "kind") in ACTIVATIONS and start <= t <= end:
            acts[(_get(e, "rule_id"), _get(e, "scope") or "")].append(t)
    chatter = []
    for (rid, scope), ts in acts.items():
        ts.sort()
        m10, m60 = _max_in(ts, TEN_MIN), _max_in(ts, HOUR)
        if m10 >= CHATTER_10_MIN or m60 >= CHATTER_60_MIN:
            chatter.append({"rule_id": rid, "scope": scope, **names.describe(rid), "activations": len(ts),
                            "max_in_10_min": m10, "max_in_60_min": m60})
    chatter.sort(key=lambda c: (-c["activations"], -c["max_in_10_min"], c["rule_id"], c["scope"]))

    # ---- standing and still active at the end
    standing, active_end = [], []
    for ep in eps.values():
        if ep.fired_at is None or ep.fired_at > end or (ep.ended_at is not None and ep.ended_at < start):
            continue
        # (``eps`` holds the events up to the window's end: an alert resolved later has no end yet)
        age = (end if ep.ended_at is None else ep.ended_at) - ep.fired_at
        rec = {"alert_id": ep.alert_id, "rule_id": ep.rule_id, **names.describe(ep.rule_id), "tier": ep.tier,
               "fired_at": _iso(ep.fired_at), "fired_local": _local(ep.fired_at), "resolved_at": _iso(ep.ended_at),
               "active_h": round(age.total_seconds() / 3600.0, 2)}
        if age > STANDING:
            standing.append(rec)
        if ep.ended_at is None:
            active_end.append(rec | {"status": ep.status})
    standing.sort(key=lambda r: (-r["active_h"], r["alert_id"]))
    active_end.sort(key=lambda r: (-r["active_h"], r["alert_id"]))

    # ---- escalations
    esc_tier = Counter(_get(e, "to_tier") or "none" for e, _ in esc)
    by_hand = sum(1 for e, _ in esc if str(_get(e, "actor") or "").startswith("user:"))
    case_esc = [s for s in case_steps if _get(s, "step") == "escalate" and start <= _time(_get(s, "at")) <= end]
    plan_ev = [p for p in plan_events if start <= _time(_get(p, "at")) <= end]
    plan_overdue = [p for p in plan_ev if _get(p, "kind") == "step_overdue"]

    # ---- cases, plans, messages
    opened = [c for c in cases if start <= _time(_get(c, "opened_at")) <= end]
    plans_opened, plans_raised = [], []
    for p in sorted(plan_ev, key=lambda p: (_time(_get(p, "at")), str(_get(p, "instance_id")))):
        kind = _get(p, "kind")
        if kind not in ("activated", "level_raised"):
            continue
        pid = _get(p, "plan_id")
        at = _time(_get(p, "at"))
        zh, en = names.plans.get(pid, (pid, pid))
        rec = {"plan_id": pid, "instance_id": _get(p, "instance_id"), "level": _get(p, "level"), "name_zh": zh,
               "name_en": en, "at": _iso(at), "at_local": _local(at)}
        (plans_opened if kind == "activated" else plans_raised).append(rec)
    msgs = [m for m in messages if start <= _time(_get(m, "created_at")) <= end]
    by_channel = Counter(_get(m, "channel") for m in msgs)
    operator = sum(n for ch, n in by_channel.items() if ch not in OPERATOR_EXCLUDED_CHANNELS)

    def per_h(n: int) -> float | None:
        return None if hours <= 0 else round(n / hours, 2)

    def when(n: int, at: datetime | None, length: timedelta) -> dict[str, Any]:
        # the span [at, at + length) clipped to the window (a window shorter than ``length`` holds it whole)
        return {"alerts": n, "from": _iso(at), "from_local": _local(at, "%H:%M:%S"),
                "to_local": _local(min(at + length, end), "%H:%M:%S") if at else None,
                "window_shorter": end - start < length}

    def period(p: dict) -> dict[str, Any]:
        return {"from_local": _local(p["from"], "%Y-%m-%d %H:%M"), "alerts": p["alerts"], "complete": p["complete"]}

    return {
        "definitions": DEFINITIONS,
        "priority_mapping": dict(PRIORITY),
        "priority_rule": {"file": "data/alerts/rationale.toml", "matrix": rat.matrix,
                          "bands_max_min": {n: m for n, m in rat.bands}, "target": dict(PRIORITY_TARGET),
                          "undocumented": len(undocumented),
                          "undocumented_rules": sorted({ep.rule_id for ep in undocumented})[:top]},
        "log_events": {"total": len(log_events), "per_hour_mean": per_h(len(log_events)),
                       "by_family": dict(sorted(Counter(names.describe(ep.rule_id)["family"]
                                                        for ep in log_events).items(),
                                                key=lambda kv: (-kv[1], kv[0])))},
        "advisories": {"total": len(advisories), "per_hour_mean": per_h(len(advisories)),
                       "by_family": dict(sorted(Counter(names.describe(ep.rule_id)["family"]
                                                        for ep in advisories).items(),
                                                key=lambda kv: (-kv[1], kv[0])))},
        "window": {"from": _iso(start), "to": _iso(end), "from_local": _local(start), "to_local": _local(end),
                   "hours": round(hours, 4)},
        "alerts": {
            "total": total,
            "activations": sum(len(v) for v in acts.values()),
            "per_hour_mean": per_h(total),
            "worst_hour": when(worst_h, worst_h_at, HOUR),
            "worst_10_min": when(worst_10, worst_10_at, TEN_MIN),
            "ten_minute_periods": {"complete": len(full10), "in_flood": len(flood),
                                   "flood_share": _share(len(flood), len(full10)),
                                   "max_in_a_period": max((p["alerts"] for p in full10), default=0)},
            "hours_manageable": {"complete": len(full_h), "manageable": len(manageable),
                                 "share": _share(len(manageable), len(full_h))},
            "per_clock_hour": [period(p) for p in hrs],
            "per_10_min": [period(p) for p in tens],
            "by_group": dict(by_group),
            "by_family": dict(sorted(by_family.items(), key=lambda kv: (-kv[1], kv[0]))),
        },
        "by_tier": {t: by_tier.get(t, 0) for t in reversed(TIERS)} | ({"none": by_tier["none"]}
                                                                       if by_tier.get("none") else {}),
        "by_priority": {p: by_priority.get(p, 0) for p in PRIORITIES} | ({"none": by_priority["none"]}
                                                                         if by_priority.get("none") else {}),
        "priority_share": {p: _share(by_priority.get(p, 0), total) for p in PRIORITIES},
        "by_tier_priority": {t: {p: n for p in PRIORITIES + ("none",) if (n := tier_priority[t].get(p, 0))}
                             for t in list(reversed(TIERS)) + ["none"] if tier_priority.get(t)},
        "red_share": _share(by_tier.get("red", 0), total),
        "bad_actors": bad,
        "bad_actors_share": _share(sum(b["alerts"] for b in bad), total),
        "chattering": {"rules": len(chatter), "activations": sum(c["activations"] for c in chatter),
                       "alerts_of_chattering_rules": sum(len(per_rule.get(c["rule_id"], ())) for c in chatter),
                       "list": chatter[:top]},
        "standing": {"count": len(standing), "list": standing[:top],
                     "active_at_end": {"count": len(active_end),
                                       "by_tier": dict(Counter(r["tier"] or "none" for r in active_end)),
                                       "by_status": dict(Counter(r["status"] or "?" for r in active_end)),
                                       "oldest": active_end[:top]}},
        "cases": {"opened": len(opened), "per_hour": per_h(len(opened)),
                  "by_source": dict(Counter(_get(c, "source") for c in opened).most_common()),
                  "by_category": dict(Counter(_get(c, "category") for c in opened).most_common())},
        "plans": {"opened": plans_opened, "raised": plans_raised},
        "messages": {"total": len(msgs), "operator": operator, "operator_per_hour": per_h(operator),
                     "by_channel": dict(by_channel.most_common())},
        "escalations": {"alert_escalations": len(esc), "by_hand": by_hand,
                        "alerts_escalated": len({_get(e, "alert_id") for e, _ in esc}),
                        "by_tier": {t: esc_tier[t] for t in reversed(TIERS) if esc_tier.get(t)},
                        "case_escalations": len(case_esc), "plan_steps_overdue": len(plan_overdue),
                        "of_log_events": esc_logged},
    }


# --------------------------------------------------------------------------- the window
def parse_time_spec(spec: str | datetime) -> datetime | dtime:
    """``HH:MM`` (local clock time) -> a ``time``; an ISO 8601 time with its UTC
    offset (or an aware datetime) -> an aware UTC datetime; ValueError otherwise."""
    if isinstance(spec, datetime):
        return _time(spec)
    s = str(spec).strip()
    if len(s) <= 5 and ":" in s:
        hh, _, mm = s.partition(":")
        try:
            return dtime(int(hh), int(mm))
        except ValueError:
            raise ValueError(f"{s!r} is not a clock time HH:MM (00:00-23:59)") from None
    try:
        t = datetime.fromisoformat(s.replace("Z", "+00:00"))
    except ValueError:
        raise ValueError(f"{s!r}: give HH:MM (local time) or an ISO 8601 time with its UTC offset") from None
    if t.tzinfo is None:
        raise ValueError(f"{s!r}: give HH:MM (local time) or an ISO 8601 time with its UTC offset")
    return t.astimezone(timezone.utc)


def resolve_window(first: datetime, last: datetime, frm: str | datetime | None = None,
                   to: str | datetime | None = None, *, anchor: datetime | None = None) -> tuple[datetime, datetime]:
    """The counted window inside [``first``, ``last``] (the evaluated span).

    ``frm`` / ``to``: an aware datetime, an ISO 8601 time with its UTC offset,
    or ``HH:MM`` in local time (Asia/Shanghai).  ``HH:MM`` of ``frm`` is the
    first such minute at or after the minute of ``anchor`` (the recording's
    first tick; default ``first``), so ``--from 17:00`` on a recording that
    starts at 17:00 means that day, not the next; ``to`` the first after the
    window's start (``--from 22:00 --to 02:00`` spans midnight).  The result
    is clipped to [``first``, ``last``] (``--from`` before the end of the
    warm-up counts from the first evaluation); ValueError when it is empty."""
    first, last = _time(first), _time(last)
    anchor = first if anchor is None else _time(anchor)

    def at_or_after(spec, ref: datetime, strictly: bool) -> datetime:
        p = parse_time_spec(spec)
        if isinstance(p, datetime):
            return p
        loc = to_local(ref).replace(second=0, microsecond=0)
        cand = loc.replace(hour=p.hour, minute=p.minute)
        while cand < loc or (strictly and cand <= to_local(ref)):
            cand += timedelta(days=1)
        return cand.astimezone(timezone.utc)

    begin = first if frm is None else at_or_after(frm, anchor, False)
    end = last if to is None else min(last, at_or_after(to, begin, True))
    start = max(first, begin)
    if end <= start:
        raise ValueError(f"the window {_local(start)} – {_local(end)} (local) holds no evaluated time: the run "
                         f"evaluated {_local(first)} – {_local(last)}")
    return start, end


# --------------------------------------------------------------------------- text
def _pct(x: float | None) -> str:
    return "—" if x is None else f"{100 * x:.1f} %"


def render_text(r: Mapping[str, Any]) -> list[str]:
    """The report as lines of a readable table (the JSON has everything; this shows the figures)."""
    a, w = r["alerts"], r["window"]
    out = []
    run = r.get("run") or {}
    span = r.get("span") or {}
    head = f"Alarm report — {r.get('recording', '')}"
    if r.get("scenario"):
        head += f" ({r['scenario']}, seed {r.get('seed')})"
    out.append(head)
    if span:
        out.append(f"  simulated  {span.get('first_tick_local')} – {span.get('last_tick_local')} local "
                   f"({span.get('simulated_h')} h); rules evaluated every {span.get('alerts_every_s'):g} s from "
                   f"{span.get('first_evaluation_local')} ({span.get('warmup_min'):g} min warm-up)")
    out.append(f"  counted    {w['from_local']} – {w['to_local']} local ({w['hours']:.2f} h)"
               + (f"; thresholds: {r['thresholds']}" if r.get("thresholds") else ""))
    if run:
        out.append(f"  run took   {run.get('wall_s')} s wall clock ({run.get('speed_x')}× simulated time)")
    out.append("")
    out.append("Alarms raised (an alarm = an episode that reached firing at yellow or above, counted at its first "
               "firing; threshold, compound and forecast rules)")
    adv = r.get("advisories") or {}
    out.append(f"  advisories (blue, page nobody, not counted below): {adv.get('total', 0):,}"
               + (f", {adv['per_hour_mean']} per hour" if adv.get("per_hour_mean") is not None else ""))
    wh, w10 = a["worst_hour"], a["worst_10_min"]
    t10, hm = a["ten_minute_periods"], a["hours_manageable"]
    rows = [
        ("alerts", f"{a['total']:,}", f"{a['activations']:,} activations (firing + refiring)"),
        ("per hour, mean", f"{a['per_hour_mean']}" if a["per_hour_mean"] is not None else "—",
         f"target ≤ {MANAGEABLE_PER_HOUR}"),
        ("worst hour", f"{wh['alerts']:,}", f"{wh['from_local'] or ''}–{wh['to_local'] or ''}"),
        ("worst 10 min", f"{w10['alerts']:,}", f"{w10['from_local'] or ''}–{w10['to_local'] or ''}; "
                                              f"flood > {FLOOD_PER_10_MIN}"),
        ("10-min periods in flood", _pct(t10["flood_share"]), f"{t10['in_flood']} of {t10['complete']} complete "
                                                               f"periods (> {FLOOD_PER_10_MIN} alerts)"),
        ("hours manageable", _pct(hm["share"]), f"{hm['manageable']} of {hm['complete']} complete hours "
                                                f"(≤ {MANAGEABLE_PER_HOUR} alerts)"),
        ("by group", "", ", ".join(f"{k} {v}" for k, v in a["by_group"].items())),
    ]
    for k, v, note in rows:
        out.append(f"  {k:<24s} {v:>10s}  {note}")
    out.append("  per clock hour: " + ", ".join(f"{p['from_local'][11:]} {p['alerts']}{'' if p['complete'] else '*'}"
                                               for p in a["per_clock_hour"]) + "   (* incomplete hour)")
    out.append("")
    lg = r.get("log_events") or {}
    out.append(f"  log events (no operator action in the rationale, page nobody, not counted below): "
               f"{lg.get('total', 0):,}" + (f", {lg['per_hour_mean']} per hour" if lg.get("per_hour_mean") is not None
                                            else "")
               + (" — " + ", ".join(f"{k} {v}" for k, v in list(lg["by_family"].items())[:6]) if lg.get("by_family")
                  else ""))
    pr = r.get("priority_rule") or {}
    out.append("")
    out.append("Priority (consequence × time to act, data/alerts/rationale.toml; target ≈ 5 / 15 / 80 %)")
    btp = r.get("by_tier_priority") or {}
    for p in PRIORITIES:
        target = PRIORITY_TARGET[p]
        out.append(f"  {p:<7s} {PRIORITY_ZH[p]:<3s} {r['by_priority'].get(p, 0):>8,}  {_pct(r['priority_share'][p]):>8s}"
                   f"   (target {_pct(target)})  by tier: "
                   + ", ".join(f"{t} {btp[t][p]:,}" for t in btp if btp[t].get(p)))
    if pr.get("undocumented"):
        out.append(f"  undocumented rules (priority by tier): {pr['undocumented']} alerts — "
                   + ", ".join(pr.get("undocumented_rules") or []))
    out.append("")
    out.append(f"Top {len(r['bad_actors'])} bad actors (rule × place), {_pct(r['bad_actors_share'])} of all alerts")
    for i, b in enumerate(r["bad_actors"], 1):
        tiers = " ".join(f"{t} {n}" for t, n in b["by_tier"].items())
        out.append(f"  {i:>2d}. {b['alerts']:>5,}  {b['name_zh']} · {b['place_zh']}  |  {b['name_en']} · "
                   f"{b['place_en']}  [{tiers}]  {b['rule_id']}")
    c = r["chattering"]
    out.append("")
    out.append(f"Chattering (≥ {CHATTER_10_MIN} activations in 10 min or ≥ {CHATTER_60_MIN} in 60 min): "
               f"{c['rules']} rules, {c['activations']:,} activations, {c['alerts_of_chattering_rules']:,} alerts")
    for x in c["list"]:
        out.append(f"      {x['activations']:>5,}  max {x['max_in_10_min']}/10 min, {x['max_in_60_min']}/60 min  "
                   f"{x['name_zh']} · {x['place_zh']}  {x['rule_id']}")
    s = r["standing"]
    ae = s["active_at_end"]
    out.append(f"Standing (active > 24 h): {s['count']};  still active at the end: {ae['count']} "
               f"(" + ", ".join(f"{k} {v}" for k, v in ae["by_tier"].items()) + ")")
    for x in s["list"]:
        out.append(f"      {x['active_h']:>6.1f} h  {x['name_zh']} · {x['place_zh']}  {x['rule_id']}")
    out.append("")
    cs, m, e = r["cases"], r["messages"], r["escalations"]
    out.append(f"Cases opened: {cs['opened']:,} ({cs['per_hour']}/h) — by source "
               + ", ".join(f"{k} {v}" for k, v in cs["by_source"].items()))
    out.append(f"Plans opened: {len(r['plans']['opened'])}"
               + "".join(f"\n      {p['at_local']}  {p['plan_id']} level {p['level']}  {p['name_zh']}"
                         for p in r["plans"]["opened"])
               + (f"; raised: " + ", ".join(f"{p['plan_id']} → {p['level']} at {p['at_local'][11:]}"
                                             for p in r["plans"]["raised"]) if r["plans"]["raised"] else ""))
    out.append(f"Messages sent: {m['total']:,}; to operators {m['operator']:,} ({m['operator_per_hour']}/h) — "
               + ", ".join(f"{k} {v}" for k, v in m["by_channel"].items()))
    out.append(f"Escalations: {e['alert_escalations']:,} alert escalations of {e['alerts_escalated']:,} alerts "
               f"({e['by_hand']} by hand" + "".join(f", {k} {v}" for k, v in e["by_tier"].items())
               + f"), {e['case_escalations']} case deadlines, {e['plan_steps_overdue']} plan steps overdue"
               + (f"; {e['of_log_events']} of the alert escalations were of log events" if e.get("of_log_events")
                  else ""))
    return out


__all__ = ["ACTIVATIONS", "CHATTER_10_MIN", "CHATTER_60_MIN", "DEFINITIONS", "FLOOD_PER_10_MIN",
           "MANAGEABLE_PER_HOUR", "Names", "PRIORITY", "PRIORITIES", "alarm_report", "parse_time_spec",
           "render_text", "resolve_window"]
