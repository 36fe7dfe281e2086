"""Dispatched cases: the loop 立案 → 派遣 → 处置 → 核查 → 结案 (GB/T 30428).

An alert, an AI-video event or a manual report becomes a :class:`Case`.
Each step is a pure function returning a :class:`CaseChange` (the new case
and the step records, each with who, when, a note and a unique key); the
runtime stores and notifies.  Statuses::

    open ─dispatch─▶ dispatched ─accept─▶ handling ─handle─▶ verifying
      ▲                  ▲                                     │ verify
      │                  └────────── verify failed ◀───────────┤
      │                                                        ▼
      └ (立案)                                   verified ─close(note)─▶ closed

Deadlines per step come from data (``departments.toml``: per priority, with
per-category overrides).  :func:`check_overdue` escalates a case whose
current step is late - level 1 at the deadline, one more level for every
further deadline period, up to ``max_level``.  Closing needs a note and a
passed verification.  Joint-enforcement categories (联合执法) are dispatched
to several departments at once; each gets its own step record.

The dispatch message reads like the real platform's:
「广州塔东侧阅江西路有垃圾落地，请前往处理」 - place from :mod:`.routing`,
phrase from the category.
"""
from __future__ import annotations

import fnmatch
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from typing import Any, Mapping, Sequence

from indicators.feeds.schemas import CASE_CATEGORIES, VIDEO_ALGORITHMS

from . import TIERS
from .rules import Problem, parse_duration

STEPS = ("open", "dispatch", "handle", "verify", "close")
STEP_ZH = {"open": "立案", "dispatch": "派遣", "handle": "处置", "verify": "核查", "close": "结案"}
PRIORITIES = ("urgent", "high", "normal", "low")
STATUSES = ("open", "dispatched", "handling", "verifying", "verified", "closed")
NEXT_STEP = {"open": "dispatch", "dispatched": "handle", "handling": "handle", "verifying": "verify",
             "verified": "close"}
"""Which step's deadline runs in each status."""


class CaseError(ValueError):
    """A case action that does not apply (closing without a note, wrong order …)."""


# the account roles an escalation may name (indicators.access: the roles that see the console)
ESCALATION_ROLES = ("operator", "supervisor", "admin")

@dataclass(frozen=True)
class Department:
    id: str
    name_zh: str
    name_en: str
    joint_enforcement: bool = False


@dataclass(frozen=True)
class Category:
    id: str
    departments: tuple[str, ...]
    priority: str
    phrase_zh: str
    phrase_en: str
    deadlines_s: Mapping[str, float] = field(default_factory=dict)

    @property
    def joint(self) -> bool:
        return len(self.departments) > 1


@dataclass(frozen=True)
class CaseConfig:
    """Departments, categories, deadlines and the auto-case rules (departments.toml)."""

    departments: Mapping[str, Department]
    categories: Mapping[str, Category]
    deadlines_s: Mapping[str, Mapping[str, float]]
    video_cases: Mapping[str, str] = field(default_factory=dict)
    video_min_confidence: float = 0.6
    dedupe_window_s: float = 900.0
    dedupe_radius_m: float = 30.0
    alert_case_min_tier: str = "orange"
    alert_case_families: Mapping[str, str] = field(default_factory=dict)
    supervisor: str = "scenic_operations"
    max_level: int = 3
    auto_dispatch: bool = True
    incidents: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)   # [incidents.<group>]
    escalation_role: str = "supervisor"            # the named role an escalation goes to (an account role)
    escalation_role_zh: str = "值班主管"
    escalation_role_en: str = "duty supervisor"

    def deadline_s(self, category: str, priority: str, step: str) -> float:
        cat = self.categories.get(category)
        if cat and step in cat.deadlines_s:
            return cat.deadlines_s[step]
        return self.deadlines_s[priority][step]

    def incident_of(self, family: str, labels: Mapping[str, str]) -> str | None:
        """The incident an alert of ``family`` with ``labels`` belongs to: ``zone/group``
        (``zone/group/label`` with ``split_by``), or None (an alert of its own)."""
        zone = labels.get("zone")
        if not zone:
            return None
        algo = labels.get("algorithm")
        for group, spec in self.incidents.items():
            if any(fnmatch.fnmatchcase(family, p) for p in spec.get("families", ())) or \
                    (family.startswith("video.") and algo is not None and algo in spec.get("video_algorithms", ())):
                split = spec.get("split_by")
                return f"{zone}/{group}" + (f"/{labels.get(split, '')}" if split else "")
        return None

    def category_for_alert(self, family: str) -> str | None:
        return next((c for pat, c in self.alert_case_families.items() if fnmatch.fnmatchcase(family, pat)), None)


@dataclass(frozen=True)
class Case:
    case_id: str
    category: str
    priority: str
    status: str
    source: str                       # alert | video | manual | feed
    source_ref: str
    opened_at: datetime
    opened_by: str
    zone_id: str | None = None
    x: float | None = None
    y: float | None = None
    place_zh: str = ""
    place_en: str = ""
    description: str = ""
    departments: tuple[str, ...] = ()
    suggested: tuple[Mapping[str, Any], ...] = ()
    assignee: str | None = None
    due_step: str | None = None
    due_at: datetime | None = None
    step_started_at: datetime | None = None
    escalation_level: int = 0
    closed_at: datetime | None = None
    closed_by: str | None = None
    arrived_at: datetime | None = None    # the person on the case reached the place (from their phone)
    close_note: str | None = None
    seq: int = 0

    @property
    def joint(self) -> bool:
        return len(self.departments) > 1


@dataclass(frozen=True)
class CaseStep:
    """One record of the case's history (a loop step, an escalation, a rework)."""

    key: str
    case_id: str
    seq: int
    step: str                         # open|dispatch|accept|arrive|handle|verify|close|escalate|rework|merged
    status: str                       # the case status after it
    at: datetime
    actor: str
    note: str = ""
    department: str | None = None
    details: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class CaseChange:
    case: Case
    steps: tuple[CaseStep, ...] = ()


# --------------------------------------------------------------------------- helpers
def _actor(by: str) -> str:
    if not by or not str(by).strip():
        raise CaseError("a case step needs the name of who takes it")
    return by if by == "system" or by.startswith(("user:", "feed:")) else f"user:{by}"


def _record(case: Case, step: str, actor: str, now: datetime, note: str = "", department: str | None = None,
            **details: Any) -> tuple[Case, CaseStep]:
    seq = case.seq + 1
    case = replace(case, seq=seq)
    return case, CaseStep(f"{case.case_id}#{seq}", case.case_id, seq, step, case.status, now, actor, note,
                          department, details)


def _due(case: Case, cfg: CaseConfig, now: datetime) -> Case:
    nxt = NEXT_STEP.get(case.status)
    if nxt is None:
        return replace(case, due_step=None, due_at=None, step_started_at=now, escalation_level=0)
    return replace(case, due_step=nxt, due_at=now + timedelta(seconds=cfg.deadline_s(case.category, case.priority,
                                                                                        nxt)),
                   step_started_at=now, escalation_level=0)


def message(case: Case, cfg: CaseConfig) -> tuple[str, str]:
    """The dispatch message: 「广州塔东侧阅江西路有垃圾落地，请前往处理」 and its English."""
    cat = cfg.categories.get(case.category)
    zh = cat.phrase_zh if cat else case.description
    en = cat.phrase_en if cat else case.description
    place_en = case.place_en or "the scenic area"
    return f"{case.place_zh}有{zh}，请前往处理", f"{en[:1].upper()}{en[1:]} at {place_en}; please go and handle it."


# --------------------------------------------------------------------------- the loop
def open_case(cfg: CaseConfig, *, case_id: str, category: str, source: str, source_ref: str, by: str,
              now: datetime, priority: str | None = None, zone_id: str | None = None,
              xy: tuple[float, float] | None = None, place: tuple[str, str] = ("", ""), description: str = "",
              departments: Sequence[str] | None = None, suggested: Sequence[Mapping[str, Any]] = ()) -> CaseChange:
    """立案: register a case.  ``case_id`` is derived from the source by the caller
    (e.g. ``video:<event_id>``), so a retried creation is the same case."""
    if category not in cfg.categories:
        raise CaseError(f"unknown case category {category!r} (one of {', '.join(cfg.categories)})")
    cat = cfg.categories[category]
    priority = priority or cat.priority
    if priority not in PRIORITIES:
        raise CaseError(f"unknown priority {priority!r} (one of {', '.join(PRIORITIES)})")
    deps = tuple(departments or cat.departments)
    for d in deps:
        if d not in cfg.departments:
            raise CaseError(f"unknown department {d!r}")
    actor = _actor(by)
    case = Case(case_id, category, priority, "open", source, source_ref, now, actor, zone_id,
                xy[0] if xy else None, xy[1] if xy else None, place[0], place[1], description[:500], deps,
                tuple(dict(s) for s in suggested))
    case = _due(case, cfg, now)
    case, st = _record(case, "open", actor, now, description[:500], suggested=[dict(s) for s in suggested])
    return CaseChange(case, (st,))


def dispatch(case: Case, cfg: CaseConfig, *, by: str, now: datetime, to_staff: str | None = None,
             departments: Sequence[str] | None = None, note: str = "") -> CaseChange:
    """派遣: send the case to its departments (several for joint enforcement),
    and to a staff member (default: the nearest suggested)."""
    if case.status not in ("open", "dispatched"):
        raise CaseError(f"case {case.case_id} is {case.status}: dispatch is for open cases")
    actor = _actor(by)
    deps = tuple(departments or case.departments)
    for d in deps:
        if d not in cfg.departments:
            raise CaseError(f"unknown department {d!r}")
    staff = to_staff or (case.suggested[0]["staff_id"] if case.suggested else None)
    case = _due(replace(case, status="dispatched", departments=deps, assignee=staff), cfg, now)
    zh, en = message(case, cfg)
    out = []
    for d in deps:
        case, st = _record(case, "dispatch", actor, now, note or zh, d, staff=staff, message_en=en,
                           joint=len(deps) > 1)
        out.append(st)
    return CaseChange(case, tuple(out))


def accept(case: Case, cfg: CaseConfig, *, by: str, now: datetime, note: str = "") -> CaseChange:
    """The dispatched person is on it (处置 starts); the handle deadline keeps running."""
    if case.status != "dispatched":
        raise CaseError(f"case {case.case_id} is {case.status}: only a dispatched case can be accepted")
    actor = _actor(by)
    case = replace(case, status="handling")
    case, st = _record(case, "accept", actor, now, note)
    return CaseChange(case, (st,))


def arrive(case: Case, cfg: CaseConfig, *, by: str, now: datetime, note: str = "",
           xy: tuple[float, float] | None = None) -> CaseChange:
    """The person on the case is at the place (处置 under way; the handle deadline keeps
    running).  A record of its own, with where they were when they said so."""
    if case.status != "handling":
        raise CaseError(f"case {case.case_id} is {case.status}: accept it before arriving")
    if case.arrived_at is not None:
        raise CaseError(f"case {case.case_id}: arrival was already recorded")
    actor = _actor(by)
    case = replace(case, arrived_at=now)
    details = {"x": round(float(xy[0]), 1), "y": round(float(xy[1]), 1)} if xy is not None else {}
    case, st = _record(case, "arrive", actor, now, note, **details)
    return CaseChange(case, (st,))


def handle(case: Case, cfg: CaseConfig, *, by: str, now: datetime, note: str) -> CaseChange:
    """处置 done: what was done (note required); the case waits for 核查."""
    if case.status not in ("dispatched", "handling"):
        raise CaseError(f"case {case.case_id} is {case.status}: only a dispatched case can be handled")
    if not note or not note.strip():
        raise CaseError("handling a case needs a note of what was done")
    actor = _actor(by)
    case = _due(replace(case, status="verifying"), cfg, now)
    case, st = _record(case, "handle", actor, now, note)
    return CaseChange(case, (st,))


def verify(case: Case, cfg: CaseConfig, *, by: str, now: datetime, passed: bool, note: str = "") -> CaseChange:
    """核查: a second person checks the result.  Failed -> back to dispatched (rework)."""
    if case.status != "verifying":
        raise CaseError(f"case {case.case_id} is {case.status}: only a handled case can be verified")
    actor = _actor(by)
    if not passed and not note.strip():
        raise CaseError("a failed verification needs a note saying what is wrong")
    case = _due(replace(case, status="verified" if passed else "dispatched"), cfg, now)
    case, st = _record(case, "verify" if passed else "rework", actor, now, note, passed=passed)
    return CaseChange(case, (st,))


def close(case: Case, cfg: CaseConfig, *, by: str, now: datetime, note: str) -> CaseChange:
    """结案: needs a note and a passed verification."""
    if not note or not note.strip():
        raise CaseError("closing a case needs a note")
    if case.status != "verified":
        raise CaseError(f"case {case.case_id} is {case.status}: a case is closed after a passed verification")
    actor = _actor(by)
    case = _due(replace(case, status="closed", closed_at=now, closed_by=actor, close_note=note), cfg, now)
    case, st = _record(case, "close", actor, now, note)
    return CaseChange(case, (st,))


def note(case: Case, step: str, *, by: str, now: datetime, text: str, **details: Any) -> CaseChange:
    """Record something about a case without moving it along the loop (e.g.
    ``merged``: the same AI-video event was seen again)."""
    case, st = _record(case, step, _actor(by), now, text, **details)
    return CaseChange(case, (st,))


def check_overdue(case: Case, cfg: CaseConfig, now: datetime) -> CaseChange:
    """Escalate when the current step is late: level = 1 + whole deadline periods
    past the due time, capped at ``cfg.max_level``; one record per new level."""
    if case.status == "closed" or case.due_at is None or now < case.due_at:
        return CaseChange(case)
    period = max(cfg.deadline_s(case.category, case.priority, case.due_step), 1.0)
    level = min(cfg.max_level, 1 + int((now - case.due_at).total_seconds() // period))
    if level <= case.escalation_level:
        return CaseChange(case)
    case = replace(case, escalation_level=level)
    case, st = _record(case, "escalate", "system", now,
                       f"{STEP_ZH[case.due_step]} ({case.due_step}) overdue since {case.due_at.isoformat()}; "
                       f"escalated to level {level}", cfg.supervisor, level=level, overdue_step=case.due_step)
    return CaseChange(case, (st,))


# --------------------------------------------------------------------------- data
def parse_case_config(doc: Mapping[str, Any], where: str = "departments.toml") -> tuple[CaseConfig, list[Problem]]:
    """The case configuration of a ``departments.toml`` document, and every problem."""
    out: list[Problem] = []
    deps = {}
    for k, d in (doc.get("departments") or {}).items():
        for key in ("name_zh", "name_en"):
            if not d.get(key):
                out.append(Problem(f"{where}: departments.{k}.{key}", "missing"))
        deps[k] = Department(k, d.get("name_zh", k), d.get("name_en", k), bool(d.get("joint_enforcement", False)))
    deadlines: dict[str, dict[str, float]] = {}
    for p in PRIORITIES:
        spec = (doc.get("deadlines") or {}).get(p)
        if spec is None:
            out.append(Problem(f"{where}: deadlines.{p}", "missing"))
            continue
        deadlines[p] = {}
        for s in STEPS[1:]:
            try:
                deadlines[p][s] = parse_duration(spec[s])
            except KeyError:
                out.append(Problem(f"{where}: deadlines.{p}.{s}", "missing"))
            except ValueError as e:
                out.append(Problem(f"{where}: deadlines.{p}.{s}", str(e)))
    cats = {}
    for k, c in (doc.get("categories") or {}).items():
        cp = f"{where}: categories.{k}"
        if k not in CASE_CATEGORIES:
            out.append(Problem(cp, f"unknown case category (one of {', '.join(CASE_CATEGORIES)})"))
        cd = tuple(c.get("departments", ()))
        if not cd:
            out.append(Problem(f"{cp}.departments", "missing"))
        for i, d in enumerate(cd):
            if d not in deps:
                out.append(Problem(f"{cp}.departments[{i}]", f"unknown department {d!r}"))
        pr = c.get("priority", "normal")
        if pr not in PRIORITIES:
            out.append(Problem(f"{cp}.priority", f"must be one of {', '.join(PRIORITIES)}"))
        for key in ("phrase_zh", "phrase_en"):
            if not c.get(key):
                out.append(Problem(f"{cp}.{key}", "missing"))
        cdl = {}
        for s, v in (c.get("deadlines") or {}).items():
            if s not in STEPS[1:]:
                out.append(Problem(f"{cp}.deadlines.{s}", f"unknown step (one of {', '.join(STEPS[1:])})"))
                continue
            try:
                cdl[s] = parse_duration(v)
            except ValueError as e:
                out.append(Problem(f"{cp}.deadlines.{s}", str(e)))
        cats[k] = Category(k, cd, pr, c.get("phrase_zh", ""), c.get("phrase_en", ""), cdl)
    for k in CASE_CATEGORIES:
        if k not in cats:
            out.append(Problem(f"{where}: categories.{k}", "missing (every case category needs routing)"))
    vc = doc.get("video_cases") or {}
    video = {}
    for a, c in (vc.get("algorithms") or {}).items():
        if a not in VIDEO_ALGORITHMS:
            out.append(Problem(f"{where}: video_cases.algorithms.{a}", "unknown video algorithm"))
        if c not in CASE_CATEGORIES:
            out.append(Problem(f"{where}: video_cases.algorithms.{a}", f"unknown case category {c!r}"))
        video[a] = c
    ac = doc.get("alert_cases") or {}
    if ac.get("min_tier", "orange") not in TIERS:
        out.append(Problem(f"{where}: alert_cases.min_tier", f"must be one of {', '.join(TIERS)}"))
    for pat, c in (ac.get("families") or {}).items():
        if c not in CASE_CATEGORIES:
            out.append(Problem(f"{where}: alert_cases.families.{pat}", f"unknown case category {c!r}"))
    esc = doc.get("escalation") or {}
    if esc.get("supervisor", "scenic_operations") not in deps:
        out.append(Problem(f"{where}: escalation.supervisor", "unknown department"))
    if esc.get("role", "supervisor") not in ESCALATION_ROLES:
        out.append(Problem(f"{where}: escalation.role", f"must be one of {', '.join(ESCALATION_ROLES)}"))
    if not isinstance(esc.get("max_level", 3), int) or esc.get("max_level", 3) < 1:
        out.append(Problem(f"{where}: escalation.max_level", "must be a whole number >= 1"))
    incidents: dict[str, dict[str, Any]] = {}
    for group, spec in (doc.get("incidents") or {}).items():
        p = f"{where}: incidents.{group}"
        if not isinstance(spec, Mapping):
            out.append(Problem(p, "must be a table with families / video_algorithms / split_by"))
            continue
        for k in spec:
            if k not in ("families", "video_algorithms", "split_by"):
                out.append(Problem(f"{p}.{k}", "unknown key (families, video_algorithms, split_by)"))
        fams = spec.get("families", [])
        algos = spec.get("video_algorithms", [])
        if not isinstance(fams, list) or not all(isinstance(f, str) for f in fams):
            out.append(Problem(f"{p}.families", "must be a list of family patterns"))
            fams = []
        if not isinstance(algos, list) or any(a not in VIDEO_ALGORITHMS for a in algos):
            out.append(Problem(f"{p}.video_algorithms", f"must be a list of video algorithms ({', '.join(VIDEO_ALGORITHMS)})"))
            algos = []
        split = spec.get("split_by")
        if split is not None and not isinstance(split, str):
            out.append(Problem(f"{p}.split_by", "must be a label name"))
            split = None
        incidents[group] = {"families": tuple(fams), "video_algorithms": tuple(algos), "split_by": split}
    durs = {}
    for key, default in (("dedupe_window", 900.0),):
        try:
            durs[key] = parse_duration(vc.get(key, default))
        except ValueError as e:
            out.append(Problem(f"{where}: video_cases.{key}", str(e)))
            durs[key] = default
    cfg = CaseConfig(deps, cats, deadlines, video, float(vc.get("min_confidence", 0.6)), durs["dedupe_window"],
                     float(vc.get("dedupe_radius_m", 30.0)), ac.get("min_tier", "orange"),
                     dict(ac.get("families") or {}), esc.get("supervisor", "scenic_operations"),
                     int(esc.get("max_level", 3)), bool((doc.get("dispatch") or {}).get("auto", True)),
                     incidents, str(esc.get("role", "supervisor")), str(esc.get("role_zh", "值班主管")),
                     str(esc.get("role_en", "duty supervisor")))
    return cfg, out


# --------------------------------------------------------------------------- (de)serialise
_DT = ("opened_at", "due_at", "step_started_at", "closed_at", "arrived_at")


def case_to_dict(c: Case) -> dict[str, Any]:
    d = {k: getattr(c, k) for k in c.__dataclass_fields__}
    for k in _DT:
        d[k] = d[k].isoformat() if d[k] else None
    d["departments"] = list(c.departments)
    d["suggested"] = [dict(s) for s in c.suggested]
    return d


def case_from_dict(d: Mapping[str, Any]) -> Case:
    d = dict(d)
    for k in _DT:
        d[k] = datetime.fromisoformat(d[k]) if d.get(k) else None
    d["departments"] = tuple(d.get("departments") or ())
    d["suggested"] = tuple(d.get("suggested") or ())
    return Case(**{k: v for k, v in d.items() if k in Case.__dataclass_fields__})


__all__ = ["Case", "CaseChange", "CaseConfig", "CaseError", "CaseStep", "Category", "Department", "STEPS",
           "STEP_ZH", "accept", "arrive", "case_from_dict", "case_to_dict", "check_overdue", "close", "dispatch", "handle",
           "message", "note", "open_case", "parse_case_config", "verify"]
