"""Emergency plans (应急预案) as data, and the record of running one.

A plan (``data/alerts/plans.toml``) has levels - IV/III/II/I, tied to the
tiers blue/yellow/orange/red, e.g. the core-area crowd plan's 三级/二级/一级
预警预案 - and each level has checklist steps (what, which department, by
when after activation), the message to staff (「广州塔景区核心区域人流已突破
三级阀值，请启动三级预警预案」) and a public notice in zh and en.

Running a plan is a small pure state machine like the alerts': functions
take a :class:`PlanInstance` and return a :class:`PlanChange` (new instance +
events), and the runtime stores and notifies.  Activation, a raise to a
higher level (its steps are added), each step's completion, missed step
deadlines and the closure are events with who, when and a note; closing
needs a note.  One instance per plan is open at a time.
"""
from __future__ import annotations

from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from typing import Any, Mapping, Sequence

from . import LEVEL_TIER, RANK, TIER_LEVEL
from .rules import Problem, parse_duration

LEVELS = ("IV", "III", "II", "I")


class PlanError(ValueError):
    """A plan action that does not apply (unknown step, closing without a note …)."""


@dataclass(frozen=True)
class StepDef:
    id: str
    text_zh: str
    text_en: str
    department: str
    deadline_s: float


@dataclass(frozen=True)
class PlanLevel:
    level: str
    name_zh: str
    name_en: str
    message_zh: str
    message_en: str
    notice_zh: str
    notice_en: str
    steps: tuple[StepDef, ...]

    @property
    def rank(self) -> int:
        return RANK[LEVEL_TIER[self.level]]


@dataclass(frozen=True)
class PlanDef:
    id: str
    number: int
    name_zh: str
    name_en: str
    levels: Mapping[str, PlanLevel]


@dataclass(frozen=True)
class StepState:
    step_id: str
    level: str
    department: str
    text_zh: str
    text_en: str
    due_at: datetime
    done_at: datetime | None = None
    done_by: str | None = None
    note: str | None = None
    overdue_reported: bool = False


@dataclass(frozen=True)
class PlanInstance:
    instance_id: str
    plan_id: str
    level: str
    status: str                       # active | closed
    opened_at: datetime
    opened_by: str
    trigger: Mapping[str, Any] = field(default_factory=dict)
    steps: tuple[StepState, ...] = ()
    closed_at: datetime | None = None
    closed_by: str | None = None
    close_note: str | None = None
    seq: int = 0

    def step(self, step_id: str) -> StepState | None:
        return next((s for s in self.steps if s.step_id == step_id), None)


@dataclass(frozen=True)
class PlanEvent:
    key: str
    instance_id: str
    plan_id: str
    seq: int
    at: datetime
    kind: str                         # activated | level_raised | step_done | step_overdue | trigger_cleared | closed
    actor: str
    note: str
    level: str
    step_id: str | None = None
    details: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class PlanChange:
    instance: PlanInstance
    events: tuple[PlanEvent, ...] = ()


def _event(inst: PlanInstance, kind: str, actor: str, note: str, now: datetime, step_id: str | None = None,
           **details: Any) -> tuple[PlanInstance, PlanEvent]:
    seq = inst.seq + 1
    inst = replace(inst, seq=seq)
    return inst, PlanEvent(f"{inst.instance_id}#{seq}", inst.instance_id, inst.plan_id, seq, now, kind, actor,
                           note, inst.level, step_id, details)


def _steps(defn: PlanDef, level: str, now: datetime) -> tuple[StepState, ...]:
    return tuple(StepState(s.id, level, s.department, s.text_zh, s.text_en, now + timedelta(seconds=s.deadline_s))
                 for s in defn.levels[level].steps)


def _actor(by: str) -> str:
    if not by or not str(by).strip():
        raise PlanError("a plan action needs the name of who takes it")
    return by if by == "system" or by.startswith("user:") else f"user:{by}"


def activate(defn: PlanDef, level: str, *, by: str, now: datetime, trigger: Mapping[str, Any] | None = None,
             note: str = "") -> PlanChange:
    """Open an instance of ``defn`` at ``level`` with that level's steps."""
    if level not in defn.levels:
        raise PlanError(f"plan {defn.id} has no level {level!r} (has {', '.join(defn.levels)})")
    actor = _actor(by)
    iid = f"{defn.id}|{now.strftime('%Y%m%dT%H%M%S')}"
    inst = PlanInstance(iid, defn.id, level, "active", now, actor, dict(trigger or {}), _steps(defn, level, now))
    inst, ev = _event(inst, "activated", actor, note or defn.levels[level].message_zh, now,
                      trigger=dict(trigger or {}))
    return PlanChange(inst, (ev,))


def raise_level(inst: PlanInstance, defn: PlanDef, level: str, *, by: str, now: datetime,
                trigger: Mapping[str, Any] | None = None, note: str = "") -> PlanChange:
    """Move an active instance up to a higher level; the new level's steps are
    added (the lower level's stay on the checklist).  A lower or equal level
    is no change."""
    if inst.status != "active":
        raise PlanError(f"plan instance {inst.instance_id} is {inst.status}")
    if level not in defn.levels:
        raise PlanError(f"plan {defn.id} has no level {level!r}")
    if defn.levels[level].rank <= defn.levels[inst.level].rank:
        return PlanChange(inst)
    actor = _actor(by)
    known = {s.step_id for s in inst.steps}
    extra = tuple(s for s in _steps(defn, level, now) if s.step_id not in known)
    inst = replace(inst, level=level, steps=inst.steps + extra)
    inst, ev = _event(inst, "level_raised", actor, note or defn.levels[level].message_zh, now,
                      trigger=dict(trigger or {}))
    return PlanChange(inst, (ev,))


def complete_step(inst: PlanInstance, step_id: str, *, by: str, now: datetime, note: str = "") -> PlanChange:
    """Record that a checklist step was done (who, when, note)."""
    if inst.status != "active":
        raise PlanError(f"plan instance {inst.instance_id} is {inst.status}")
    st = inst.step(step_id)
    if st is None:
        raise PlanError(f"plan instance {inst.instance_id} has no step {step_id!r}")
    if st.done_at is not None:
        raise PlanError(f"step {step_id} was already done by {st.done_by} at {st.done_at.isoformat()}")
    actor = _actor(by)
    steps = tuple(replace(s, done_at=now, done_by=actor, note=note) if s.step_id == step_id else s
                  for s in inst.steps)
    inst, ev = _event(replace(inst, steps=steps), "step_done", actor, note, now, step_id,
                      late=now > st.due_at)
    return PlanChange(inst, (ev,))


def check_overdue(inst: PlanInstance, now: datetime) -> PlanChange:
    """Report (once each) steps whose deadline passed undone."""
    if inst.status != "active":
        return PlanChange(inst)
    events = []
    for s in inst.steps:
        if s.done_at is None and not s.overdue_reported and now >= s.due_at:
            steps = tuple(replace(x, overdue_reported=True) if x.step_id == s.step_id else x for x in inst.steps)
            inst, ev = _event(replace(inst, steps=steps), "step_overdue", "system",
                              f"step {s.step_id} ({s.department}) not done by {s.due_at.isoformat()}", now,
                              s.step_id, department=s.department)
            events.append(ev)
    return PlanChange(inst, tuple(events))


def close(inst: PlanInstance, *, by: str, now: datetime, note: str) -> PlanChange:
    """Close the instance.  A note is required; steps still open are listed in
    the closing event."""
    if inst.status != "active":
        raise PlanError(f"plan instance {inst.instance_id} is already {inst.status}")
    if not note or not note.strip():
        raise PlanError("closing a plan needs a note")
    actor = _actor(by)
    open_steps = [s.step_id for s in inst.steps if s.done_at is None]
    inst = replace(inst, status="closed", closed_at=now, closed_by=actor, close_note=note)
    inst, ev = _event(inst, "closed", actor, note, now, open_steps=open_steps)
    return PlanChange(inst, (ev,))


def note(inst: PlanInstance, kind: str, *, by: str, now: datetime, text: str, **details: Any) -> PlanChange:
    """Record something that happened to a running plan without changing it
    (e.g. ``trigger_cleared`` when the compound alert that opened it resolved)."""
    inst, ev = _event(inst, kind, _actor(by), text, now, **details)
    return PlanChange(inst, (ev,))


# --------------------------------------------------------------------------- data
def parse_plans(doc: Mapping[str, Any], departments: Sequence[str] | None = None, where: str = "plans.toml"
                ) -> tuple[dict[str, PlanDef], list[Problem]]:
    """Plans of a ``plans.toml`` document, and every problem with its path."""
    out: list[Problem] = []
    plans: dict[str, PlanDef] = {}
    for i, p in enumerate(doc.get("plan", [])):
        pp = f"{where}: plan[{i}]"
        pid = p.get("id")
        if not pid:
            out.append(Problem(f"{pp}.id", "missing"))
            continue
        if pid in plans:
            out.append(Problem(f"{pp}.id", f"duplicate plan id {pid!r}"))
        for k in ("name_zh", "name_en"):
            if not p.get(k):
                out.append(Problem(f"{pp}.{k}", "missing"))
        levels: dict[str, PlanLevel] = {}
        for j, lv in enumerate(p.get("level", [])):
            lp = f"{pp}.level[{j}]"
            name = lv.get("level")
            if name not in LEVELS:
                out.append(Problem(f"{lp}.level", f"must be one of {', '.join(LEVELS)}, got {name!r}"))
                continue
            for k in ("name_zh", "name_en", "message_zh", "message_en", "notice_zh", "notice_en"):
                if not lv.get(k):
                    out.append(Problem(f"{lp}.{k}", "missing"))
            steps, ids = [], set()
            for k, s in enumerate(lv.get("step", [])):
                sp = f"{lp}.step[{k}]"
                for key in ("id", "text_zh", "text_en", "department", "deadline"):
                    if not s.get(key):
                        out.append(Problem(f"{sp}.{key}", "missing"))
                if s.get("id") in ids:
                    out.append(Problem(f"{sp}.id", f"duplicate step id {s.get('id')!r}"))
                ids.add(s.get("id"))
                if departments is not None and s.get("department") and s["department"] not in departments:
                    out.append(Problem(f"{sp}.department", f"unknown department {s['department']!r}"))
                try:
                    dl = parse_duration(s.get("deadline", 0))
                except ValueError as e:
                    out.append(Problem(f"{sp}.deadline", str(e)))
                    dl = 0.0
                steps.append(StepDef(str(s.get("id")), s.get("text_zh", ""), s.get("text_en", ""),
                                     s.get("department", ""), dl))
            if not steps:
                out.append(Problem(f"{lp}.step", "a level needs at least one step"))
            levels[name] = PlanLevel(name, lv.get("name_zh", ""), lv.get("name_en", ""), lv.get("message_zh", ""),
                                     lv.get("message_en", ""), lv.get("notice_zh", ""), lv.get("notice_en", ""),
                                     tuple(steps))
        if not levels:
            out.append(Problem(f"{pp}.level", "a plan needs at least one level"))
        plans[pid] = PlanDef(pid, int(p.get("number", i + 1)), p.get("name_zh", ""), p.get("name_en", ""), levels)
    return plans, out


def level_for_tier(tier: str) -> str:
    return TIER_LEVEL[tier]


# --------------------------------------------------------------------------- (de)serialise
def instance_to_dict(inst: PlanInstance) -> dict[str, Any]:
    def iso(d):
        return d.isoformat() if d else None
    return {"instance_id": inst.instance_id, "plan_id": inst.plan_id, "level": inst.level, "status": inst.status,
            "opened_at": iso(inst.opened_at), "opened_by": inst.opened_by, "trigger": dict(inst.trigger),
            "closed_at": iso(inst.closed_at), "closed_by": inst.closed_by, "close_note": inst.close_note,
            "seq": inst.seq,
            "steps": [{"step_id": s.step_id, "level": s.level, "department": s.department, "text_zh": s.text_zh,
                       "text_en": s.text_en, "due_at": iso(s.due_at), "done_at": iso(s.done_at),
                       "done_by": s.done_by, "note": s.note, "overdue_reported": s.overdue_reported}
                      for s in inst.steps]}


def instance_from_dict(d: Mapping[str, Any]) -> PlanInstance:
    def dt(v):
        return datetime.fromisoformat(v) if v else None
    steps = tuple(StepState(s["step_id"], s["level"], s["department"], s["text_zh"], s["text_en"], dt(s["due_at"]),
                            dt(s["done_at"]), s["done_by"], s["note"], s["overdue_reported"]) for s in d["steps"])
    return PlanInstance(d["instance_id"], d["plan_id"], d["level"], d["status"], dt(d["opened_at"]),
                        d["opened_by"], d.get("trigger") or {}, steps, dt(d["closed_at"]), d["closed_by"],
                        d["close_note"], d["seq"])


__all__ = ["LEVELS", "PlanChange", "PlanDef", "PlanError", "PlanEvent", "PlanInstance", "PlanLevel", "StepDef",
           "StepState", "activate", "check_overdue", "close", "complete_step", "instance_from_dict",
           "instance_to_dict", "note", "parse_plans", "raise_level"]
