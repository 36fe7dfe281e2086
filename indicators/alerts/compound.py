"""Compound-risk rules as data: several signals together raise a composite level
and open an emergency plan.

A rule (``data/alerts/compound.toml``) is a list of conditions that must ALL
hold, each one of three kinds:

* ``alert`` - threshold alerts of an indicator family (glob) with label
  filters (``zone = "haixin_bridge"``, a list, or ``"@core"`` for a group)
  firing at ``tier_at_least`` (``min_count`` of them);
* ``warning`` - an active weather warning signal of the listed types at
  ``colour_at_least`` (white < blue < yellow < orange < red);
* ``video`` - an AI-video event of the listed algorithms in the last
  ``window`` within ``within_m`` metres of a zone, positioned by its camera
  in the inventory (local metre frame), else by its own lon/lat.

A satisfied rule becomes an :class:`~.state.Evaluation` of value 1 for the
rule's synthetic :class:`~.rules.Rule` (one tier: the composite level), so a
composite alert has the same lifecycle as any other - pending, firing,
keep-firing, acknowledgement, escalation - and the runtime opens (or raises)
the rule's plan when it fires.  The evaluation's details list what matched,
which is the composite alert's "why".
"""
from __future__ import annotations

import fnmatch
import math
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, Iterable, Mapping, Sequence

from indicators.feeds.schemas import OTHER_WARNING, VIDEO_ALGORITHMS, WARNING_COLOURS, WARNING_SIGNALS

from . import RANK, TIERS
from .rules import Problem, Rule, Tier, parse_duration
from .state import AlertState, Evaluation

COLOUR_RANK = {c: i for i, c in enumerate(WARNING_COLOURS)}   # white 0 … red 4 (= tier ranks)


@dataclass(frozen=True)
class AlertCondition:
    family: str
    labels: Mapping[str, tuple[str, ...]]
    tier_at_least: str
    min_count: int = 1


@dataclass(frozen=True)
class WarningCondition:
    signals: tuple[str, ...]
    colour_at_least: str


@dataclass(frozen=True)
class VideoCondition:
    algorithms: tuple[str, ...]
    within_m: float | None
    of_zone: str | None
    window_s: float
    min_confidence: float = 0.0


Condition = AlertCondition | WarningCondition | VideoCondition


@dataclass(frozen=True)
class CompoundRule:
    id: str
    name_zh: str
    name_en: str
    level: str
    conditions: tuple[Condition, ...]
    plan: str | None = None
    plan_level: str | None = None
    pending_s: float = 0.0
    keep_firing_s: float = 600.0

    def as_rule(self) -> Rule:
        """The synthetic threshold rule the composite alert runs through: value 1
        (all conditions hold) reaches the single tier ``level``."""
        return Rule(id=f"compound:{self.id}", indicator_id=f"compound:{self.id}", direction="above",
                    tiers=(Tier(self.level, 1.0, 1.0),), pending_s=self.pending_s,
                    keep_firing_s=self.keep_firing_s, nodata="ok", error="ok", family="compound",
                    name_zh=self.name_zh, name_en=self.name_en)


@dataclass(frozen=True)
class WarningSignal:
    """An active weather warning (from the ``warning`` feed).  ``message`` is
    the ``sender,identifier`` of the CAP message it came from ("" for other
    sources), what a later Update or Cancel names in its references."""

    signal: str
    colour: str
    issued_at: datetime
    expires: datetime | None = None
    headline: str = ""
    event_id: str = ""
    message: str = ""
    event: str = ""


@dataclass(frozen=True)
class VideoEvent:
    """An AI-video event with its position in local metres (None when unknown)."""

    event_id: str
    at: datetime
    camera_id: str
    algorithm: str
    confidence: float
    x: float | None
    y: float | None
    zone_id: str | None = None


@dataclass
class Context:
    """What compound rules look at in one tick."""

    now: datetime
    alerts: Sequence[tuple[Rule, AlertState]] = ()
    warnings: Mapping[str, WarningSignal] = field(default_factory=dict)
    videos: Sequence[VideoEvent] = ()
    places: Any = None
    groups: Mapping[str, Sequence[str]] = field(default_factory=dict)


# --------------------------------------------------------------------------- folding feeds
def message_key(reference: str) -> str:
    """``sender,identifier`` of a CAP ``sender,identifier,sent`` reference: the
    message it names (CAP forbids commas in sender and identifier, and the same
    message may be referred to with its sent time written differently)."""
    sender, _, rest = reference.partition(",")
    return f"{sender},{rest.partition(',')[0]}"


def _generic_key(message: str) -> str:
    return f"{OTHER_WARNING}:{message}"


def fold_warnings(current: Mapping[str, WarningSignal], rows: Iterable[Mapping[str, Any]], now: datetime
                  ) -> dict[str, WarningSignal]:
    """The active warnings after ``rows`` of the ``warning`` feed (in event-time
    order), keyed by signal (one active per Guangdong signal type) and, for a
    generic warning (signal "other"), by ``other:<its message>``.

    A row that references earlier CAP messages first removes the warnings they
    started: an Update then takes their place, a Cancel or all-clear
    (``cancelled``) just ends them.  A ``cancelled`` row without references ends
    the active warning of its signal (feeds without CAP lifecycle), as does
    one whose references match nothing when that warning's own message is
    unknown.  Issued/updated rows set the signal's colour; a past ``expires``
    ends it.  White typhoon signals are kept (they are below blue).  A row
    without references that is older than the message its signal holds (sent
    before it, delivered after it: another batch) changes nothing."""
    out = dict(current)
    for r in sorted(rows, key=lambda r: r["event_time"]):
        sig = r["signal"]
        message = message_key(r["cap_message"]) if r.get("cap_message") else ""
        ended = {message_key(ref) for ref in (r.get("references") or ())}
        ended_keys = {_generic_key(m) for m in ended}
        key = sig if sig in WARNING_SIGNALS else _generic_key(message or str(r.get("event_id") or ""))
        held = out.get(key)
        if not ended and held is not None and held.issued_at is not None and r["event_time"] < held.issued_at:
            continue                  # sent before the message its signal holds, delivered after it: not newer
        matched = [k for k, w in out.items() if (w.message and w.message in ended) or k in ended_keys]
        for k in matched:
            del out[k]
        if r["status"] == "cancelled":
            active = out.get(sig)
            if sig in WARNING_SIGNALS and not matched and (not ended or (active and not active.message)):
                out.pop(sig, None)
            continue
        out[key] = WarningSignal(sig, r["colour"], r["event_time"], r.get("expires"),
                                 str(r.get("headline") or "")[:200], str(r.get("event_id") or ""),
                                 message, str(r.get("event") or "")[:200])
    return {k: w for k, w in out.items() if w.expires is None or w.expires > now}


def videos_from_rows(rows: Iterable[Mapping[str, Any]], places) -> list[VideoEvent]:
    """Video events positioned by their camera in the inventory, else lon/lat."""
    out = []
    for r in rows:
        cam = r.get("camera_id") or ""
        xy = places.cameras.get(cam) if places is not None else None
        if xy is None and places is not None and r.get("lon") is not None and r.get("lat") is not None:
            xy = places.to_xy(r["lon"], r["lat"])
        zone = r.get("zone_id")
        if zone is None and xy is not None and places is not None:
            zone = places.zone_at(*xy)
        out.append(VideoEvent(str(r["event_id"]), r["event_time"], cam, r["algorithm"], float(r["confidence"]),
                              xy[0] if xy else None, xy[1] if xy else None, zone))
    return out


# --------------------------------------------------------------------------- evaluation
def watches(cond: "AlertCondition", rule: Rule) -> bool:
    """True when ``cond`` reads alerts of ``rule`` (its family glob and labels)."""
    return fnmatch.fnmatchcase(rule.family, cond.family) and _label_ok(rule, cond.labels)


def _label_ok(rule: Rule, labels: Mapping[str, tuple[str, ...]]) -> bool:
    return all(rule.labels.get(k) in allowed for k, allowed in labels.items())


def _check(cond: Condition, ctx: Context) -> list[dict[str, Any]]:
    """The matches of one condition (empty: it does not hold)."""
    if isinstance(cond, AlertCondition):
        need = RANK[cond.tier_at_least]
        hits = [{"kind": "alert", "alert_id": st.alert_id, "rule_id": r.id, "tier": st.tier,
                 "labels": dict(r.labels), "value": st.last_value}
                for r, st in ctx.alerts
                if st.status in ("firing", "recovering") and st.rank >= need
                and watches(cond, r)]
        return hits if len(hits) >= cond.min_count else []
    if isinstance(cond, WarningCondition):
        need = COLOUR_RANK[cond.colour_at_least]
        return [{"kind": "warning", "signal": w.signal, "colour": w.colour, "event_id": w.event_id}
                for w in ctx.warnings.values()
                if w.signal in cond.signals and COLOUR_RANK.get(w.colour, -1) >= need]
    since = ctx.now - timedelta(seconds=cond.window_s)
    hits = []
    for v in ctx.videos:
        if v.algorithm not in cond.algorithms or v.confidence < cond.min_confidence or not (since < v.at <= ctx.now):
            continue
        dist = None
        if cond.within_m is not None:
            if v.x is None or ctx.places is None:
                continue
            dist = ctx.places.distance_to_zone(v.x, v.y, cond.of_zone)
            if not dist <= cond.within_m:
                continue
        hits.append({"kind": "video", "event_id": v.event_id, "algorithm": v.algorithm, "camera_id": v.camera_id,
                     "distance_m": None if dist is None else round(dist, 1), "at": v.at.isoformat()})
    return hits


def evaluate(rule: CompoundRule, ctx: Context) -> Evaluation:
    """Evaluate one compound rule: value 1 when every condition holds, with the
    matches of each condition in ``details['matches']``."""
    matches = []
    ok = True
    for cond in rule.conditions:
        m = _check(cond, ctx)
        matches.append(m)
        ok = ok and bool(m)
    return Evaluation(ctx.now, 1.0 if ok else 0.0, "ok",
                      details={"matches": matches if ok else [], "compound": rule.id})


# --------------------------------------------------------------------------- data
def _listify(v: Any) -> tuple[str, ...]:
    return tuple(v) if isinstance(v, (list, tuple)) else (v,)


def parse_compound(doc: Mapping[str, Any], plans: Mapping[str, Any] | None = None,
                   zones: Sequence[str] | None = None, where: str = "compound.toml"
                   ) -> tuple[list[CompoundRule], dict[str, tuple[str, ...]], list[Problem]]:
    """Rules and groups of a ``compound.toml`` document, and every problem with its path."""
    out: list[Problem] = []
    # groups name zones (``zone = "@core"``) or other label values (``class = "@failing"``):
    # a group's members are checked where a zone condition uses it
    groups = {k: tuple(v) for k, v in (doc.get("groups") or {}).items()}
    zone_groups: set[str] = {str(v)[1:] for r in doc.get("rule", []) if isinstance(r, dict)
                             for c in (r.get("when") or []) if isinstance(c, dict)
                             for v in _listify(c.get("zone", [])) if isinstance(v, str) and v.startswith("@")}
    for g, members in groups.items():
        for i, z in enumerate(members):
            if g in zone_groups and zones is not None and z not in zones:
                out.append(Problem(f"{where}: groups.{g}[{i}]", f"unknown zone {z!r}"))
    rules: list[CompoundRule] = []
    seen = set()
    for i, r in enumerate(doc.get("rule", [])):
        rp = f"{where}: rule[{i}]"
        rid = r.get("id")
        if not rid:
            out.append(Problem(f"{rp}.id", "missing"))
        elif rid in seen:
            out.append(Problem(f"{rp}.id", f"duplicate rule id {rid!r}"))
        seen.add(rid)
        level = r.get("level")
        if level not in TIERS:
            out.append(Problem(f"{rp}.level", f"must be one of {', '.join(TIERS)}, got {level!r}"))
        plan, plan_level = r.get("plan"), r.get("plan_level")
        if plan is not None and plans is not None:
            if plan not in plans:
                out.append(Problem(f"{rp}.plan", f"unknown plan {plan!r}"))
            elif plan_level not in plans[plan].levels:
                out.append(Problem(f"{rp}.plan_level", f"plan {plan!r} has no level {plan_level!r}"))
        durs = {}
        for key, default in (("for", 0.0), ("keep_firing_for", 600.0)):
            try:
                durs[key] = parse_duration(r.get(key, default))
            except ValueError as e:
                out.append(Problem(f"{rp}.{key}", str(e)))
                durs[key] = default
        conds: list[Condition] = []
        for j, c in enumerate(r.get("when", [])):
            cp = f"{rp}.when[{j}]"
            kinds = [k for k in ("alert", "warning", "video") if k in c]
            if len(kinds) != 1:
                out.append(Problem(cp, "needs exactly one of alert, warning, video"))
                continue
            k = kinds[0]
            if k == "alert":
                tier = c.get("tier_at_least", "blue")
                if tier not in TIERS:
                    out.append(Problem(f"{cp}.tier_at_least", f"must be one of {', '.join(TIERS)}, got {tier!r}"))
                    continue
                labels = {}
                for lk, lv in c.items():
                    if lk in ("alert", "tier_at_least", "min_count"):
                        continue
                    vals = []
                    for v in _listify(lv):
                        if isinstance(v, str) and v.startswith("@"):
                            if v[1:] not in groups:
                                out.append(Problem(f"{cp}.{lk}", f"unknown group {v!r}"))
                            vals += groups.get(v[1:], ())
                        else:
                            if lk == "zone" and zones is not None and v not in zones:
                                out.append(Problem(f"{cp}.{lk}", f"unknown zone {v!r}"))
                            vals.append(v)
                    labels[lk] = tuple(vals)
                conds.append(AlertCondition(c["alert"], labels, tier, int(c.get("min_count", 1))))
            elif k == "warning":
                sigs = _listify(c["warning"])
                for s in sigs:
                    if s not in WARNING_SIGNALS:
                        out.append(Problem(f"{cp}.warning", f"unknown warning signal {s!r}"))
                colour = c.get("colour_at_least", "yellow")
                if colour not in COLOUR_RANK:
                    out.append(Problem(f"{cp}.colour_at_least", f"must be one of {', '.join(WARNING_COLOURS)}"))
                    continue
                conds.append(WarningCondition(sigs, colour))
            else:
                algos = _listify(c["video"])
                for a in algos:
                    if a not in VIDEO_ALGORITHMS:
                        out.append(Problem(f"{cp}.video", f"unknown video algorithm {a!r}"))
                zone = c.get("of_zone")
                if c.get("within_m") is not None and not zone:
                    out.append(Problem(f"{cp}.of_zone", "within_m needs of_zone"))
                if zone and zones is not None and zone not in zones:
                    out.append(Problem(f"{cp}.of_zone", f"unknown zone {zone!r}"))
                try:
                    window = parse_duration(c.get("window", "10m"))
                except ValueError as e:
                    out.append(Problem(f"{cp}.window", str(e)))
                    window = 600.0
                within = c.get("within_m")
                if within is not None and (not isinstance(within, (int, float)) or not math.isfinite(within)
                                           or within < 0):
                    out.append(Problem(f"{cp}.within_m", f"must be a distance ≥ 0, got {within!r}"))
                    within = None
                conds.append(VideoCondition(algos, None if within is None else float(within), zone, window,
                                            float(c.get("min_confidence", 0.0))))
        if not conds:
            out.append(Problem(f"{rp}.when", "a compound rule needs at least one condition"))
        if rid and level in TIERS:
            rules.append(CompoundRule(rid, r.get("name_zh", rid), r.get("name_en", rid), level, tuple(conds),
                                      plan, plan_level, durs["for"], durs["keep_firing_for"]))
    return rules, groups, out


__all__ = ["AlertCondition", "CompoundRule", "Context", "VideoCondition", "VideoEvent", "WarningCondition",
           "WarningSignal", "evaluate", "fold_warnings", "message_key", "parse_compound", "videos_from_rows"]
