"""The alert lifecycle as a pure state machine (Grafana style).

``transition(previous, evaluation, rule, now) -> Transition`` returns the new
:class:`AlertState` and the list of :class:`Event` s that happened; it never
persists, notifies or reads a clock.  The runtime stores the events and the
state afterwards, then notifies.

States::

    normal ──cross──▶ pending ──held `for`──▶ firing(tier) ──clear──▶ recovering
       ▲                 │                     │  ▲  tier_up/tier_down  │  │
       │              cancelled                │  └──── refiring ◀──────┘  │
       └──────────────── resolved ◀────────────┴── keep_firing_for over ◀──┘
    no_data / error: entered by the rule's policies, left when data is back.
    idle (an indicator with nothing expected to work: lamps by day, a lift
    after closing time): no new evidence - the state stays as it is.

One active alert per (rule, scope): an episode gets ``alert_id`` when it
starts (pending, firing, no_data or error) and keeps it until *resolved* or
*cancelled*; a re-trigger while firing moves the tier up or down in the same
alert.  An unacknowledged firing alert escalates once when its tier's
deadline passes (``AUTO_ESCALATIONS``: the escalation goes to a named role,
who decides on more; an operator may escalate by hand up to
``rule.max_escalations``); a silence suppresses notifications and escalation
until it ends.

Every event carries who (``system`` or ``user:NAME``), when and why, and a key
``<alert_id>#<seq>`` that is the same when the same transition is computed
twice - the store uses it to make retried writes idempotent.

``explain(state, rule)`` says why an alert fired: tier, threshold, direction,
profile and the values over the pending period that crossed it.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from typing import Any, Mapping

from . import RANK, TIER_LEVEL, TIER_ZH, tier_of
from indicators.units import with_unit

from .rules import Rule

STATUSES = ("normal", "pending", "firing", "recovering", "resolved", "no_data", "error")
ACTIVE = frozenset({"pending", "firing", "recovering", "no_data", "error"})
"""Statuses in which an alert exists (is shown, can be acknowledged)."""
QUALITIES = ("ok", "stale", "no_data", "error", "idle")
SYSTEM = "system"
AUTO_ESCALATIONS = 1
CHATTER_WINDOW_S = 1800.0
"""An alert that fires again within this long after it ended is the same alert
again (chattering: EEMUA 191 / ANSI/ISA-18.2 count an alarm that returns within
minutes as one, not as a new one): it refires under its own id, pages nobody
unless its tier is higher than before, and from then on is held ``CHATTER_HOLD_S``
after its value is back before it ends."""
CHATTER_HOLD_S = 600.0
"""Levels an unacknowledged alert climbs on its own: once, to the named role
(alarm management: an escalation that repeats every period is a flood of its own)."""
EVIDENCE_MAX = 240
"""Points of the pending-period series kept as evidence (4 h of 1-minute values)."""


class AlertActionError(ValueError):
    """A user action that does not apply (e.g. acknowledging a normal alert)."""


@dataclass(frozen=True)
class Evaluation:
    """One evaluation of a rule: the indicator value at ``at`` and its quality
    (ok | stale | no_data | error | idle).  ``details`` travels into the events (a
    compound rule's matches, a forecast's lead time)."""

    at: datetime
    value: float | None
    quality: str = "ok"
    scope: str = ""
    error: str | None = None
    details: Mapping[str, Any] = field(default_factory=dict)

    @property
    def kind(self) -> str:
        """ok, nodata, error or idle: what the state machine does with it."""
        if self.quality == "error" or self.error:
            return "error"
        if self.quality == "idle":
            return "idle"
        if self.quality in ("no_data", "stale") or self.value is None:
            return "nodata"
        if not math.isfinite(self.value):
            return "error"
        return "ok"


@dataclass(frozen=True)
class AlertState:
    """The state of one (rule, scope).  A fresh state is ``normal`` with no id."""

    rule_id: str
    scope: str = ""
    alert_id: str = ""
    status: str = "normal"
    tier: str | None = None
    threshold: float | None = None
    direction: str = "above"
    profile: str = "default"
    started_at: datetime | None = None
    fired_at: datetime | None = None
    tier_since: datetime | None = None
    last_crossed_at: datetime | None = None
    status_since: datetime | None = None
    last_eval_at: datetime | None = None
    last_value: float | None = None
    evidence: tuple[tuple[datetime, float], ...] = ()
    acked_by: str | None = None
    acked_at: datetime | None = None
    ack_comment: str | None = None
    assignee: str | None = None
    escalation_level: int = 0
    silenced_until: datetime | None = None
    seq: int = 0
    details: Mapping[str, Any] = field(default_factory=dict)
    last_tier: str | None = None       # the highest tier it held and left (tier_down, resolved) in this episode:
                                       # a return to it (tier_up, chattering) is no news
    returns: int = 0                   # times it came back within CHATTER_WINDOW_S of ending

    @property
    def active(self) -> bool:
        return self.status in ACTIVE

    @property
    def rank(self) -> int:
        return RANK.get(self.tier or "", 0)

    def silenced(self, now: datetime) -> bool:
        return self.silenced_until is not None and now < self.silenced_until


@dataclass(frozen=True)
class Event:
    """Something that happened to an alert, with who, when and why."""

    key: str
    alert_id: str
    rule_id: str
    scope: str
    seq: int
    at: datetime
    kind: str
    actor: str
    reason: str
    from_status: str
    to_status: str
    from_tier: str | None = None
    to_tier: str | None = None
    value: float | None = None
    silenced: bool = False
    details: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Transition:
    """The result of one step: the state before, the state after, the events."""

    previous: AlertState | None
    state: AlertState
    events: tuple[Event, ...] = ()

    @property
    def changed(self) -> bool:
        return self.previous != self.state


# --------------------------------------------------------------------------- helpers
def alert_id(rule_id: str, scope: str, started_at: datetime) -> str:
    """Stable id of an episode: the same inputs always give the same id."""
    return f"{rule_id}|{scope}|{started_at.strftime('%Y%m%dT%H%M%S')}"


class _Builder:
    """Accumulates events while a transition is computed; numbers them."""

    def __init__(self, state: AlertState, now: datetime):
        self.state = state
        self.now = now
        self.events: list[Event] = []
        self.back: AlertState | None = None

    def emit(self, kind: str, new: AlertState, reason: str, *, actor: str = SYSTEM,
             value: float | None = None, details: Mapping[str, Any] | None = None) -> AlertState:
        old = self.state
        seq = old.seq + 1
        new = replace(new, seq=seq)
        if kind == "resolved" and old.tier:
            new = replace(new, last_tier=_peak(old.last_tier, old.tier))
        self.events.append(Event(
            key=f"{new.alert_id}#{seq}", alert_id=new.alert_id, rule_id=new.rule_id, scope=new.scope,
            seq=seq, at=self.now, kind=kind, actor=actor, reason=reason,
            from_status=old.status, to_status=new.status, from_tier=old.tier, to_tier=new.tier,
            value=value, silenced=new.silenced(self.now), details=dict(details or {})))
        self.state = new
        return new


def _fmt(x: float | None) -> str:
    if x is None:
        return "—"
    return f"{x:,.0f}" if abs(x) >= 1000 else f"{x:.4g}"


def _fmt_minutes(m: float) -> str:
    return f"{m:.0f}"


def _cross_reason(rule: Rule, tier, value: float, profile: str) -> str:
    op = "≥" if rule.direction == "above" else "≤"
    p = "" if profile == "default" else f" [{profile}]"
    return f"{_fmt(value)} {op} {tier.name} threshold {_fmt(tier.threshold)}{p}"


def _peak(a: str | None, b: str | None) -> str | None:
    """The higher of two tiers (None: none)."""
    return a if RANK.get(a or "", 0) >= RANK.get(b or "", 0) else b


def _new_episode(prev: AlertState, now: datetime) -> AlertState:
    """A state ready for a new alert (keeps nothing of an old episode)."""
    return AlertState(rule_id=prev.rule_id, scope=prev.scope, alert_id=alert_id(prev.rule_id, prev.scope, now),
                      started_at=now, status_since=now, direction=prev.direction)


def _evidence(ev: tuple, now: datetime, value: float) -> tuple:
    return (ev + ((now, value),))[-EVIDENCE_MAX:]


# --------------------------------------------------------------------------- the machine
def _may_return(st: AlertState, now: datetime) -> bool:
    """An alert that fired and ended less than CHATTER_WINDOW_S ago."""
    return st.status == "resolved" and st.fired_at is not None and st.status_since is not None \
        and (now - st.status_since).total_seconds() < CHATTER_WINDOW_S


def transition(previous: AlertState | None, evaluation: Evaluation, rule: Rule, now: datetime) -> Transition:
    """The next state of (rule, evaluation.scope) and what happened.  Pure.  An alert that
    ended less than CHATTER_WINDOW_S ago stays the state (resolved) while nothing happens, so
    that it comes back as itself if it crosses again."""
    tr = _transition(previous, evaluation, rule, now)
    if previous is not None and not tr.events and tr.state.status == "normal" and _may_return(previous, now):
        return Transition(previous, replace(previous, last_eval_at=now))
    return tr


def _transition(previous: AlertState | None, evaluation: Evaluation, rule: Rule, now: datetime) -> Transition:
    prev = previous or AlertState(rule_id=rule.id, scope=evaluation.scope, direction=rule.direction)
    b = _Builder(prev, now)
    st = prev
    back = prev if _may_return(prev, now) else None    # a recently ended alert this may continue
    if st.status == "resolved":          # a resolved episode is over: start clean
        st = b.state = AlertState(rule_id=rule.id, scope=prev.scope, direction=rule.direction, seq=0)
    b.back = back
    st = _unsilence(b, st)
    kind = evaluation.kind
    rank = None                          # None: decided by the policy below
    if kind == "idle":
        # Nothing is expected to work (closed hours, lamps by day): neither a
        # fault nor a recovery and not a data problem - whatever the rule's
        # no-data policy, the alert stays as it is until there is evidence again.
        st = replace(st, last_eval_at=now)
        b.state = st
        st = _escalate(b, st, rule)
        return Transition(previous, st, tuple(b.events))
    if kind != "ok":
        policy = rule.nodata if kind == "nodata" else rule.error
        if policy == "keep_last":
            st = replace(st, last_eval_at=now)
            b.state = st
            st = _escalate(b, st, rule)
            return Transition(previous, st, tuple(b.events))
        if policy in ("nodata", "error"):
            st = _enter_nodata(b, st, kind, evaluation, now)
            return Transition(previous, st, tuple(b.events))
        if policy == "ok":
            rank, tier, profile = 0, None, rule.active(now)[0]
        else:                            # alerting: hold the firing tier, or the lowest tier
            profile, tiers = rule.active(now)
            keep = st.rank if st.status in ("firing", "recovering") else 0
            tier = next((t for t in tiers if t.rank == keep), tiers[0] if tiers else None)
            rank = tier.rank if tier else 0
        value = None
        reason_extra = f" ({'no data' if kind == 'nodata' else 'error'}: policy {policy})"
    else:
        value = float(evaluation.value)
        holding = st.rank if st.status in ("firing", "recovering") else 0
        rank, tier, profile = rule.classify(value, holding, now)
        reason_extra = ""
    st = _step(b, st, rule, rank, tier, profile, value, now, reason_extra, evaluation)
    st = _escalate(b, st, rule)
    return Transition(previous, st, tuple(b.events))


def _step(b: _Builder, st: AlertState, rule: Rule, rank: int, tier, profile: str, value: float | None,
          now: datetime, why: str, ev: Evaluation) -> AlertState:
    details = dict(ev.details)
    base = replace(st, last_eval_at=now, last_value=value if value is not None else st.last_value,
                   details=details or st.details)
    s = st.status
    if s in ("normal", "no_data", "error"):
        if rank == 0:
            if s == "normal":
                b.state = base
                return base
            new = replace(base, status="resolved", status_since=now, tier=None)
            return b.emit("resolved", new, f"data back, value {_fmt(value)} is normal{why}", value=value)
        if s == "normal" and b.back is not None:
            return _come_back(b, base, rule, tier, profile, value, now, why, details)
        fresh = _new_episode(base, now) if s == "normal" else replace(base, started_at=now, status_since=now)
        fresh = replace(fresh, last_eval_at=now, last_value=value, details=details, profile=profile,
                        tier=tier.name, threshold=tier.threshold,
                        evidence=((now, value),) if value is not None else (), last_crossed_at=now)
        b.state = replace(fresh, seq=st.seq)
        if rule.pending_s <= 0:
            return _fire(b, b.state, rule, tier, profile, value, now, why)
        new = replace(b.state, status="pending")
        return b.emit("pending", new, _cross_reason(rule, tier, value, profile) + why if value is not None
                      else f"{tier.name}{why}", value=value, details=details)
    if s == "pending":
        if rank == 0:
            new = replace(base, status="resolved", status_since=now, tier=None)
            return b.emit("cancelled", new, f"value {_fmt(value)} back to normal before `for` "
                                            f"({rule.pending_s:g} s) elapsed{why}", value=value)
        ev_ = _evidence(base.evidence, now, value) if value is not None else base.evidence
        base = replace(base, tier=tier.name, threshold=tier.threshold, profile=profile, evidence=ev_,
                       last_crossed_at=now)
        b.state = base
        if (now - st.started_at).total_seconds() >= rule.pending_s:
            return _fire(b, base, rule, tier, profile, value, now, why)
        return base
    # firing or recovering
    if rank > 0:
        base = replace(base, last_crossed_at=now, profile=profile)
        if s == "recovering":
            new = replace(base, status="firing", status_since=now, tier=tier.name, threshold=tier.threshold)
            higher = rank > max(st.rank, RANK.get(st.last_tier or "", 0))
            if higher:
                new = replace(new, tier_since=now, acked_by=None, acked_at=None, ack_comment=None,
                              escalation_level=0)
            elif rank > st.rank:
                new = replace(new, tier_since=now)
            # back before it ended: news (a page) only at a higher tier than it held
            return b.emit("refiring", new, _cross_reason(rule, tier, value, profile) + why if value is not None
                          else f"{tier.name}{why}", value=value, details={**details, "higher": higher})
        if rank > st.rank:
            # back up to a tier it held in this episode (a value wavering on a tier boundary): the same
            # alert at a tier already paged and acknowledged - no news; above it: news, acknowledged anew
            higher = rank > RANK.get(st.last_tier or "", 0)
            new = replace(base, tier=tier.name, threshold=tier.threshold, tier_since=now)
            if higher:
                new = replace(new, acked_by=None, acked_at=None, ack_comment=None, escalation_level=0)
            return b.emit("tier_up", new, (_cross_reason(rule, tier, value, profile) if value is not None
                                           else tier.name) + why, value=value, details={**details, "higher": higher})
        if rank < st.rank:
            new = replace(base, tier=tier.name, threshold=tier.threshold, last_tier=_peak(st.last_tier, st.tier))
            old = rule.tier(st.tier, now)
            rec = f"below {st.tier} recovery {_fmt(old.recover)}" if old and value is not None else st.tier
            return b.emit("tier_down", new, f"{_fmt(value)} {rec}; still {tier.name}{why}", value=value,
                          details=details)
        b.state = base
        return base
    # condition cleared
    # keep_firing_for counts from the first evaluation that found it clear
    # (as Prometheus does), so a one-tick dip never resolves an alert early.
    keep = rule.keep_firing_s
    if st.returns:                       # chattering: held a while before it may end again
        keep = max(keep, CHATTER_HOLD_S)
    if s == "firing" and keep > 0:
        new = replace(base, status="recovering", status_since=now)
        return b.emit("recovering", new, f"value {_fmt(value)} back to normal; keep firing for "
                                         f"{keep:g} s{why}", value=value)
    if s == "recovering" and (now - st.status_since).total_seconds() < keep:
        b.state = base
        return base
    new = replace(base, status="resolved", status_since=now, tier=None)
    return b.emit("resolved", new, f"value {_fmt(value)} back to normal{why}", value=value)


def _come_back(b: _Builder, base: AlertState, rule: Rule, tier, profile: str, value: float | None,
               now: datetime, why: str, details: Mapping[str, Any]) -> AlertState:
    """The alert that ended less than CHATTER_WINDOW_S ago crosses again: the same alert
    refires (same id, its acknowledgement kept unless the tier is higher than it ended in)."""
    old = b.back
    b.state = old                        # events continue the old alert's numbering
    higher = tier.rank > RANK.get(old.last_tier or "", 0)
    ev = _evidence(old.evidence, now, value) if value is not None else old.evidence
    new = replace(old, status="firing", status_since=now, tier=tier.name, threshold=tier.threshold,
                  tier_since=now, profile=profile, evidence=ev, last_crossed_at=now, last_eval_at=now,
                  last_value=value if value is not None else old.last_value, details=details or old.details,
                  returns=old.returns + 1)
    if higher:
        new = replace(new, acked_by=None, acked_at=None, ack_comment=None, escalation_level=0)
    mins = (now - old.status_since).total_seconds() / 60
    reason = ((_cross_reason(rule, tier, value, profile) if value is not None else tier.name) + why +
              f"; back {mins:.0f} min after it ended (chattering: the same alert, held "
              f"{CHATTER_HOLD_S / 60:.0f} min before it ends again)")
    return b.emit("refiring", new, reason, value=value,
                  details={"chattering": True, "returns": new.returns, "higher": higher})


def _fire(b: _Builder, st: AlertState, rule: Rule, tier, profile: str, value: float | None, now: datetime,
          why: str) -> AlertState:
    ev = st.evidence if value is None or (st.evidence and st.evidence[-1][0] == now) \
        else _evidence(st.evidence, now, value)
    new = replace(st, status="firing", status_since=now, fired_at=now, tier_since=now, tier=tier.name,
                  threshold=tier.threshold, profile=profile, evidence=ev, last_crossed_at=now)
    held = "" if rule.pending_s <= 0 else f" for {(now - st.started_at).total_seconds():g} s"
    reason = (_cross_reason(rule, tier, value, profile) if value is not None else tier.name) + held + why
    return b.emit("firing", new, reason, value=value, details=st.details)


def _enter_nodata(b: _Builder, st: AlertState, kind: str, ev: Evaluation, now: datetime) -> AlertState:
    status = "no_data" if kind == "nodata" else "error"
    why = ev.error or (f"quality {ev.quality}" if ev.quality != "ok" else f"value {ev.value!r}")
    if st.status == status:
        b.state = replace(st, last_eval_at=now)
        return b.state
    if st.status == "normal":
        base = _new_episode(st, now)
        b.state = replace(base, seq=st.seq)
        st = b.state
    new = replace(st, status=status, status_since=now, last_eval_at=now)
    return b.emit(status, new, why)


def _escalate(b: _Builder, st: AlertState, rule: Rule) -> AlertState:
    """Escalate an unacknowledged, unsilenced firing alert whose deadline passed."""
    now = b.now
    if st.status != "firing" or st.acked_by or st.silenced(now) or st.tier_since is None:
        return st
    after = rule.escalate_after_s.get(st.tier or "")
    if not after or st.escalation_level >= min(rule.max_escalations, AUTO_ESCALATIONS):
        return st
    due = st.tier_since + timedelta(seconds=after * (st.escalation_level + 1))
    if now < due:
        return st
    level = st.escalation_level + 1
    new = replace(st, escalation_level=level)
    return b.emit("escalated", new, f"{st.tier} alert not acknowledged within {after * level:g} s; "
                                    f"escalated to level {level}")


def _unsilence(b: _Builder, st: AlertState) -> AlertState:
    if st.silenced_until is not None and b.now >= st.silenced_until and st.active:
        return b.emit("unsilenced", replace(st, silenced_until=None), "silence ended")
    if st.silenced_until is not None and b.now >= st.silenced_until:
        st = replace(st, silenced_until=None)
        b.state = st
    return st


# --------------------------------------------------------------------------- user actions
def _user(by: str) -> str:
    if not by or not by.strip():
        raise AlertActionError("an action needs the name of the person taking it")
    return f"user:{by.strip()}"


def _require_active(st: AlertState | None, what: str) -> AlertState:
    if st is None or not st.active:
        raise AlertActionError(f"cannot {what}: the alert is not active")
    return st


def acknowledge(state: AlertState | None, *, by: str, comment: str, now: datetime) -> Transition:
    """A person takes note of the alert (stops escalation).  A comment is required."""
    st = _require_active(state, "acknowledge")
    actor = _user(by)
    if not comment or not comment.strip():
        raise AlertActionError("an acknowledgement needs a comment")
    b = _Builder(st, now)
    b.emit("acknowledged", replace(st, acked_by=by, acked_at=now, ack_comment=comment), comment, actor=actor)
    return Transition(state, b.state, tuple(b.events))


def assign(state: AlertState | None, *, assignee: str, by: str, now: datetime, comment: str = "") -> Transition:
    """Give the alert to someone to follow up."""
    st = _require_active(state, "assign")
    actor = _user(by)
    if not assignee:
        raise AlertActionError("assign to whom?")
    b = _Builder(st, now)
    b.emit("assigned", replace(st, assignee=assignee), comment or f"assigned to {assignee}", actor=actor,
           details={"assignee": assignee})
    return Transition(state, b.state, tuple(b.events))


def escalate(state: AlertState | None, *, by: str, comment: str, now: datetime, max_level: int) -> Transition:
    """An operator hands the alert one level up by hand (it needs a decision
    above them), with the reason.  The level is the one the timer would have
    reached; the timer goes on from there for an unacknowledged alert."""
    st = _require_active(state, "escalate")
    actor = _user(by)
    if not comment or not comment.strip():
        raise AlertActionError("an escalation needs a reason")
    if st.escalation_level >= max_level:
        raise AlertActionError(f"the alert is already at the highest escalation level ({max_level})")
    level = st.escalation_level + 1
    b = _Builder(st, now)
    b.emit("escalated", replace(st, escalation_level=level), comment, actor=actor,
           details={"level": level, "manual": True})
    return Transition(state, b.state, tuple(b.events))


def silence(state: AlertState | None, *, until: datetime, by: str, comment: str, now: datetime) -> Transition:
    """Suppress notifications and escalation until ``until`` (the alert itself
    keeps being evaluated and recorded)."""
    st = _require_active(state, "silence")
    actor = _user(by)
    if until <= now:
        raise AlertActionError("a silence must end in the future")
    if not comment or not comment.strip():
        raise AlertActionError("a silence needs a comment")
    b = _Builder(st, now)
    b.emit("silenced", replace(st, silenced_until=until), comment, actor=actor,
           details={"until": until.isoformat()})
    return Transition(state, b.state, tuple(b.events))


def unsilence(state: AlertState | None, *, by: str, now: datetime, comment: str = "") -> Transition:
    st = _require_active(state, "unsilence")
    actor = _user(by)
    b = _Builder(st, now)
    b.emit("unsilenced", replace(st, silenced_until=None), comment or "silence lifted", actor=actor)
    return Transition(state, b.state, tuple(b.events))


# --------------------------------------------------------------------------- why
def explain(state: AlertState, rule: Rule | None = None) -> dict[str, Any]:
    """Why the alert fired: tier, threshold, direction, profile and the values
    over the pending period that crossed it, with a sentence in zh and en."""
    op = "≥" if state.direction == "above" else "≤"
    name_zh = (rule.name_zh if rule and rule.name_zh else state.rule_id)
    name_en = (rule.name_en if rule and rule.name_en else state.rule_id)
    unit = rule.unit if rule else ""
    vals = [v for _, v in state.evidence]
    out: dict[str, Any] = {
        "alert_id": state.alert_id, "rule_id": state.rule_id, "scope": state.scope,
        "status": state.status, "tier": state.tier, "level": TIER_LEVEL.get(state.tier or ""),
        "threshold": state.threshold, "direction": state.direction, "profile": state.profile,
        "values": [{"at": t.isoformat(), "value": v} for t, v in state.evidence],
        "last_value": state.last_value,
        "started_at": state.started_at.isoformat() if state.started_at else None,
        "fired_at": state.fired_at.isoformat() if state.fired_at else None,
        "details": dict(state.details),
    }
    if state.tier and state.threshold is not None:
        # the numbers of the sentence are the ones that decided: the value now
        # against the threshold of the tier it holds, and for how long it has held
        # The numbers are the ones that decided: the values over the pending
        # period when every one of them crosses the threshold of the tier now
        # held, else the value now (an alert that escalated keeps the evidence
        # of its first tier, which does not cross the higher threshold).
        crosses = (lambda v: v >= state.threshold) if state.direction == "above" else (lambda v: v <= state.threshold)
        now_v = state.last_value if state.last_value is not None else (vals[-1] if vals else None)
        if len(vals) > 1 and all(crosses(v) for v in vals):
            lo, hi = _fmt(min(vals)), _fmt(max(vals))
            shown = {lang: (with_unit(lo, unit, lang) if lo == hi else with_unit(f"{lo}–{hi}", unit, lang))
                     for lang in ("zh", "en")}
            lead = {"zh": "", "en": ""}
        else:
            shown = {lang: with_unit(_fmt(now_v), unit, lang) for lang in ("zh", "en")}
            lead = {"zh": "当前", "en": "now "}
        since = state.started_at or state.fired_at
        until = state.last_eval_at or (state.evidence[-1][0] if state.evidence else None)
        mins = (until - since).total_seconds() / 60 if since and until and until > since else 0.0
        held_zh = f"，持续约{_fmt_minutes(mins)}分钟" if mins >= 1 else ""
        held_en = f" for about {_fmt_minutes(mins)} min" if mins >= 1 else ""
        thr = {lang: with_unit(_fmt(state.threshold), unit, lang) for lang in ("zh", "en")}
        out["sentence_zh"] = (f"{name_zh}达到{TIER_ZH[state.tier]}（{TIER_LEVEL[state.tier]}级）阈值："
                              f"{lead['zh']}{shown['zh']} {op} {thr['zh']}{held_zh}")
        out["sentence_en"] = (f"{name_en} reached the {state.tier} (level {TIER_LEVEL[state.tier]}) threshold: "
                              f"{lead['en']}{shown['en']} {op} {thr['en']}{held_en}")
    elif state.status in ("no_data", "error"):
        out["sentence_zh"] = f"{name_zh}{'无数据' if state.status == 'no_data' else '计算出错'}"
        out["sentence_en"] = f"{name_en}: {'no data' if state.status == 'no_data' else 'error'}"
    return out


# --------------------------------------------------------------------------- (de)serialise
_DT_FIELDS = ("started_at", "fired_at", "tier_since", "last_crossed_at", "status_since", "last_eval_at",
              "acked_at", "silenced_until")


def state_to_dict(s: AlertState) -> dict[str, Any]:
    """JSON-able dict of a state (the store's snapshot)."""
    d = {k: getattr(s, k) for k in s.__dataclass_fields__}
    for k in _DT_FIELDS:
        d[k] = d[k].isoformat() if d[k] else None
    d["evidence"] = [[t.isoformat(), v] for t, v in s.evidence]
    d["details"] = dict(s.details)
    return d


def state_from_dict(d: Mapping[str, Any]) -> AlertState:
    d = dict(d)
    for k in _DT_FIELDS:
        d[k] = datetime.fromisoformat(d[k]) if d.get(k) else None
    d["evidence"] = tuple((datetime.fromisoformat(t), v) for t, v in d.get("evidence", []))
    known = AlertState.__dataclass_fields__
    return AlertState(**{k: v for k, v in d.items() if k in known})


def event_to_dict(e: Event) -> dict[str, Any]:
    d = {k: getattr(e, k) for k in e.__dataclass_fields__}
    d["at"] = e.at.isoformat()
    d["details"] = dict(e.details)
    return d


__all__ = ["ACTIVE", "AlertActionError", "AlertState", "Evaluation", "Event", "Transition", "acknowledge",
           "alert_id", "assign", "explain", "silence", "state_from_dict", "state_to_dict", "tier_of",
           "transition", "unsilence"]
