"""Threshold rules as data: four tiers in one rule, validated with paths, versioned.

A :class:`Rule` watches one indicator.  It holds up to four tiers
(blue < yellow < orange < red) in ONE rule, a direction (``above``: a higher
value is worse, e.g. a load rate; ``below``: a lower value is worse, e.g. a
hydrant pressure), the pending period ``for`` (the condition must hold that
long before the alert fires), ``keep_firing_for`` (how long a firing alert
stays in *recovering* after the condition cleared, so that a flapping value
does not open and close alerts), a recovery threshold per tier (hysteresis:
an orange alert ends when the value falls below ``recover``, not the moment it
dips under the threshold), the no-data and error policies, escalation
deadlines per tier, and *profiles*: named tier sets (``holiday``) active by a
calendar of dates / weekdays / hours in Asia/Shanghai.

Where the numbers come from
    The catalog gives each indicator a :class:`RuleDefaults` (direction and
    four default thresholds).  Supervisors store *overrides* on top of the
    defaults as one JSON-able document::

        {"calendars": {"holiday": {"dates": ["2025-10-01", ...]}},
         "override": {"crowd.load_rate:zone=west_plaza@1m": {
             "tiers": {"yellow": 75, "orange": {"threshold": 90, "recover": 85}},
             "for": "2m", "keep_firing_for": "5m", "nodata": "nodata",
             "profiles": [{"name": "holiday", "calendar": "holiday",
                           "tiers": {"yellow": 70}}]}}}

    :func:`validate` reports EVERY problem of such a document with its path
    (``override[crowd.load_rate:zone=west_plaza@1m].tiers.orange: must be ≥
    yellow (80) for direction 'above'``), the way Prometheus' rulefmt does;
    :func:`build_rules` turns defaults plus a valid document into rules.
    Documents are versioned by the store; :func:`save` validates before
    storing, :func:`rollback` stores an old document as a new version and
    :func:`diff` lists the changed paths between two documents.
"""
from __future__ import annotations

import math
import re
from dataclasses import dataclass, field
from datetime import date, datetime
from typing import Any, Iterable, Mapping, Sequence
from zoneinfo import ZoneInfo

from . import RANK, TIERS

SHANGHAI = ZoneInfo("Asia/Shanghai")
DIRECTIONS = ("above", "below")
NODATA_POLICIES = ("nodata", "alerting", "ok", "keep_last")
ERROR_POLICIES = ("error", "alerting", "ok", "keep_last")
WEEKDAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")

DEFAULT_FOR_S = 60.0
"""Pending period when neither the catalog nor an override says: one tick of a
1-minute indicator must be confirmed by the next before anyone is paged."""
DEFAULT_ESCALATE_AFTER_S: dict[str, float] = {"red": 300.0, "orange": 600.0, "yellow": 900.0}
"""An unacknowledged firing alert escalates after this long (blue never does)."""
DEFAULT_MAX_ESCALATIONS = 2

_OVERRIDE_KEYS = ("direction", "tiers", "for", "keep_firing_for", "nodata", "error",
                  "escalate_after", "profiles", "enabled")
_DOC_KEYS = ("calendars", "override")
_CAL_KEYS = ("dates", "weekdays", "hours")
_PROFILE_KEYS = ("name", "calendar", "tiers")


# --------------------------------------------------------------------------- values
@dataclass(frozen=True)
class RuleDefaults:
    """What the catalog says about one indicator's thresholds.

    The catalog adapter fills one per indicator: ``tiers`` maps tier name ->
    default threshold (any subset of blue/yellow/orange/red), ``direction``
    says which side is bad, ``freshness_s`` how old a value may be.
    ``family`` and ``labels`` (e.g. ``crowd.load_rate`` and
    ``{"zone": "west_plaza"}``) let compound rules and the forecast select
    indicators without parsing ids.
    """

    indicator_id: str
    direction: str
    tiers: Mapping[str, float]
    freshness_s: float | None = None
    family: str = ""
    labels: Mapping[str, str] = field(default_factory=dict)
    name_zh: str = ""
    name_en: str = ""
    unit: str = ""
    nodata: str = "nodata"          # the no-data policy unless a threshold document sets one


@dataclass(frozen=True)
class Tier:
    """One tier: fires when the value reaches ``threshold``; once firing at this
    tier (or higher) it holds until the value is back past ``recover``."""

    name: str
    threshold: float
    recover: float

    @property
    def rank(self) -> int:
        return RANK[self.name]


@dataclass(frozen=True)
class Calendar:
    """When a profile applies, in Asia/Shanghai local time.

    Day part: any listed date or weekday (none listed = every day).  Hour
    part: any listed ``[start, end)`` minute-of-day range, wrapping past
    midnight when start > end (none listed = all day).  Both must hold.
    """

    dates: frozenset[date] = frozenset()
    weekdays: frozenset[int] = frozenset()
    minutes: tuple[tuple[int, int], ...] = ()

    def contains(self, now: datetime) -> bool:
        local = now.astimezone(SHANGHAI)
        day_ok = (not self.dates and not self.weekdays) or local.date() in self.dates \
            or local.weekday() in self.weekdays
        if not day_ok:
            return False
        if not self.minutes:
            return True
        m = local.hour * 60 + local.minute
        return any((a <= m < b) if a <= b else (m >= a or m < b) for a, b in self.minutes)


@dataclass(frozen=True)
class Profile:
    """A named tier set (e.g. ``holiday``) that replaces the default tiers while
    its calendar holds."""

    name: str
    calendar: Calendar
    tiers: tuple[Tier, ...]


@dataclass(frozen=True)
class Rule:
    """A threshold rule on one indicator (see the module docstring).

    ``tiers`` is ordered from the lowest rank up.  Policies: ``nodata`` for a
    value of quality no_data/stale or a missing value, ``error`` for quality
    error or a non-finite value - each one of ``nodata``/``error`` (enter that
    state), ``alerting`` (treat as crossing), ``ok`` (treat as normal),
    ``keep_last`` (leave the state as it is).  Quality ``idle`` (nothing is
    expected to work: lamps by day, closed lifts) is no data problem and
    always leaves the state as it is.
    """

    id: str
    indicator_id: str
    direction: str
    tiers: tuple[Tier, ...]
    pending_s: float = DEFAULT_FOR_S
    keep_firing_s: float = 0.0
    nodata: str = "nodata"
    error: str = "error"
    escalate_after_s: Mapping[str, float] = field(default_factory=lambda: dict(DEFAULT_ESCALATE_AFTER_S))
    max_escalations: int = DEFAULT_MAX_ESCALATIONS
    profiles: tuple[Profile, ...] = ()
    freshness_s: float | None = None
    family: str = ""
    labels: Mapping[str, str] = field(default_factory=dict)
    name_zh: str = ""
    name_en: str = ""
    unit: str = ""
    enabled: bool = True

    def active(self, now: datetime) -> tuple[str, tuple[Tier, ...]]:
        """(profile name, tiers) in force at ``now``: the first profile whose
        calendar holds, else ``default``."""
        for p in self.profiles:
            if p.calendar.contains(now):
                return p.name, p.tiers
        return "default", self.tiers

    def classify(self, value: float, current_rank: int, now: datetime) -> tuple[int, Tier | None, str]:
        """The tier the value is in: (rank, tier, profile).

        Hysteresis: a tier at or below the current firing rank is held while
        the value is past its ``recover``; a higher tier needs its threshold.
        """
        profile, tiers = self.active(now)
        s = 1.0 if self.direction == "above" else -1.0
        best: Tier | None = None
        for t in tiers:
            limit = t.recover if t.rank <= current_rank else t.threshold
            if s * value >= s * limit:
                best = t
        return (best.rank if best else 0), best, profile

    def tier(self, name: str, now: datetime) -> Tier | None:
        return next((t for t in self.active(now)[1] if t.name == name), None)


# --------------------------------------------------------------------------- problems
@dataclass(frozen=True)
class Problem:
    """One validation error and where it is (a path into the document)."""

    path: str
    message: str

    def __str__(self) -> str:
        return f"{self.path}: {self.message}"


class RuleError(ValueError):
    """A rules document was refused; ``problems`` lists every error."""

    def __init__(self, problems: Sequence[Problem]):
        self.problems = list(problems)
        super().__init__(f"{len(self.problems)} problem(s): " + "; ".join(map(str, self.problems)))


_DUR = re.compile(r"^\s*(?:(\d+(?:\.\d+)?)h)?\s*(?:(\d+(?:\.\d+)?)m)?\s*(?:(\d+(?:\.\d+)?)s)?\s*$")


def parse_duration(v: Any) -> float:
    """Seconds of ``"90s"``, ``"2m"``, ``"1h30m"`` or a plain number of seconds."""
    if isinstance(v, bool):
        raise ValueError(f"not a duration: {v!r}")
    if isinstance(v, (int, float)):
        if not math.isfinite(v) or v < 0:
            raise ValueError(f"not a duration ≥ 0: {v!r}")
        return float(v)
    if isinstance(v, str):
        m = _DUR.match(v)
        if m and any(m.groups()):
            h, mi, s = (float(x) if x else 0.0 for x in m.groups())
            return h * 3600 + mi * 60 + s
        if v.strip() == "0":
            return 0.0
    raise ValueError(f"not a duration (like '90s', '2m', '1h30m'): {v!r}")


def _fmt(x: float) -> str:
    return f"{x:g}"


def _number(v: Any, path: str, out: list[Problem]) -> float | None:
    if isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v):
        out.append(Problem(path, f"must be a finite number, got {v!r}"))
        return None
    return float(v)


def _known_keys(d: Mapping, allowed: Sequence[str], path: str, out: list[Problem]) -> None:
    for k in d:
        if k not in allowed:
            out.append(Problem(f"{path}.{k}", f"unknown key (known: {', '.join(allowed)})"))


def _parse_calendar(c: Any, path: str, out: list[Problem]) -> Calendar | None:
    if not isinstance(c, Mapping):
        out.append(Problem(path, f"must be a table of dates/weekdays/hours, got {c!r}"))
        return None
    n = len(out)
    _known_keys(c, _CAL_KEYS, path, out)
    dates, weekdays, minutes = set(), set(), []
    for i, d in enumerate(c.get("dates", []) or []):
        try:
            dates.add(d if isinstance(d, date) else date.fromisoformat(str(d)))
        except ValueError:
            out.append(Problem(f"{path}.dates[{i}]", f"not an ISO date (YYYY-MM-DD): {d!r}"))
    for i, w in enumerate(c.get("weekdays", []) or []):
        if str(w).lower() not in WEEKDAYS:
            out.append(Problem(f"{path}.weekdays[{i}]", f"unknown weekday {w!r} (one of {', '.join(WEEKDAYS)})"))
        else:
            weekdays.add(WEEKDAYS.index(str(w).lower()))
    for i, h in enumerate(c.get("hours", []) or []):
        m = re.fullmatch(r"(\d\d):(\d\d)-(\d\d):(\d\d)", str(h))
        if not m or int(m[1]) > 24 or int(m[3]) > 24 or int(m[2]) > 59 or int(m[4]) > 59:
            out.append(Problem(f"{path}.hours[{i}]", f"not an hour range 'HH:MM-HH:MM': {h!r}"))
        else:
            minutes.append((int(m[1]) * 60 + int(m[2]), int(m[3]) * 60 + int(m[4])))
    if not (c.get("dates") or c.get("weekdays") or c.get("hours")) and len(out) == n:
        out.append(Problem(path, "empty calendar: give dates, weekdays or hours"))
    if len(out) > n:
        return None
    return Calendar(frozenset(dates), frozenset(weekdays), tuple(minutes))


def _parse_tiers(spec: Any, base: Mapping[str, tuple[float, float, str]], path: str,
                 out: list[Problem]) -> dict[str, tuple[float, float, str]]:
    """Merge a tiers table over ``base``: {tier: (threshold, recover, where)}."""
    merged = dict(base)
    if spec is None:
        return merged
    if not isinstance(spec, Mapping):
        out.append(Problem(path, f"must be a table of tiers, got {spec!r}"))
        return merged
    for name, v in spec.items():
        p = f"{path}.{name}"
        if name not in TIERS:
            out.append(Problem(p, f"unknown tier (one of {', '.join(TIERS)})"))
            continue
        if isinstance(v, Mapping):
            _known_keys(v, ("threshold", "recover"), p, out)
            if "threshold" not in v:
                out.append(Problem(f"{p}.threshold", "missing"))
                continue
            thr = _number(v["threshold"], f"{p}.threshold", out)
            rec = _number(v["recover"], f"{p}.recover", out) if "recover" in v else thr
            if thr is not None and rec is not None:
                merged[name] = (thr, rec, p)
        else:
            thr = _number(v, p, out)
            if thr is not None:
                merged[name] = (thr, thr, p)
    return merged


def _check_order(tiers: Mapping[str, tuple[float, float, str]], direction: str, path: str,
                 out: list[Problem], scope: str = "") -> None:
    """Tier thresholds must rise with rank (fall for 'below'); recover must lie
    on the safe side of its threshold.  With ``scope`` (a profile's path) only
    problems involving a value set under that path are reported, so that a
    base-tier problem is not repeated once per profile."""
    if not tiers:
        out.append(Problem(path, "at least one tier is needed"))
        return
    names = [t for t in TIERS if t in tiers]
    above = direction == "above"
    for lo, hi in zip(names, names[1:]):
        (tl, _, wl), (th, _, wh) = tiers[lo], tiers[hi]
        if scope and not (wl.startswith(scope) or wh.startswith(scope)):
            continue
        if (th < tl) if above else (th > tl):
            # report on the value the user set: the higher tier's, unless only the lower one was overridden
            on_high = wh.startswith(scope) if scope else (wh.startswith("override") or not wl.startswith("override"))
            if on_high:
                out.append(Problem(wh, f"must be {'≥' if above else '≤'} {lo} ({_fmt(tl)}) "
                                       f"for direction '{direction}'"))
            else:
                out.append(Problem(wl, f"must be {'≤' if above else '≥'} {hi} ({_fmt(th)}) "
                                       f"for direction '{direction}'"))
    for name in names:
        thr, rec, w = tiers[name]
        if scope and not w.startswith(scope):
            continue
        if (rec > thr) if above else (rec < thr):
            rp = w if w.endswith(".recover") else f"{w}.recover"
            out.append(Problem(rp, f"must be {'≤' if above else '≥'} the threshold ({_fmt(thr)}) "
                                   f"for direction '{direction}'"))


def _to_tiers(m: Mapping[str, tuple[float, float, str]]) -> tuple[Tier, ...]:
    return tuple(Tier(n, m[n][0], m[n][1]) for n in TIERS if n in m)


def _compile(doc: Mapping[str, Any] | None, defaults: Mapping[str, RuleDefaults]
             ) -> tuple[dict[str, Rule], list[Problem]]:
    """Validate and build in one pass, so the two can never disagree."""
    out: list[Problem] = []
    doc = doc or {}
    if not isinstance(doc, Mapping):
        return {}, [Problem("(document)", "must be a table with 'calendars' and 'override'")]
    for k in doc:
        if k not in _DOC_KEYS:
            out.append(Problem(k, f"unknown key (known: {', '.join(_DOC_KEYS)})"))
    calendars: dict[str, Calendar] = {}
    for name, c in (doc.get("calendars") or {}).items():
        cal = _parse_calendar(c, f"calendars.{name}", out)
        if cal is not None:
            calendars[name] = cal
    overrides = doc.get("override") or {}
    if not isinstance(overrides, Mapping):
        out.append(Problem("override", "must be a table keyed by indicator id"))
        overrides = {}
    for iid in overrides:
        if iid not in defaults:
            out.append(Problem(f"override[{iid}]", "unknown indicator (not in the catalog)"))
    rules: dict[str, Rule] = {}
    for iid, d in defaults.items():
        ov = overrides.get(iid) or {}
        path = f"override[{iid}]"
        where = path if iid in overrides else f"defaults[{iid}]"
        if not isinstance(ov, Mapping):
            out.append(Problem(path, f"must be a table, got {ov!r}"))
            continue
        _known_keys(ov, _OVERRIDE_KEYS, path, out)
        direction = ov.get("direction", d.direction)
        if direction not in DIRECTIONS:
            out.append(Problem(f"{path}.direction" if "direction" in ov else f"defaults[{iid}].direction",
                               f"must be one of {', '.join(DIRECTIONS)}, got {direction!r}"))
            direction = "above"
        base = {n: (float(v), float(v), f"defaults[{iid}].tiers.{n}") for n, v in d.tiers.items() if n in TIERS}
        for n in d.tiers:
            if n not in TIERS:
                out.append(Problem(f"defaults[{iid}].tiers.{n}", f"unknown tier (one of {', '.join(TIERS)})"))
        merged = _parse_tiers(ov.get("tiers"), base, f"{path}.tiers", out)
        _check_order(merged, direction, f"{where}.tiers", out)

        def dur(key: str, default: float) -> float:
            if key not in ov:
                return default
            try:
                return parse_duration(ov[key])
            except ValueError as e:
                out.append(Problem(f"{path}.{key}", str(e)))
                return default

        pending_s, keep_s = dur("for", DEFAULT_FOR_S), dur("keep_firing_for", 0.0)
        policies = {}
        for key, allowed in (("nodata", NODATA_POLICIES), ("error", ERROR_POLICIES)):
            policies[key] = ov.get(key, d.nodata if key == "nodata" else allowed[0])
            if policies[key] not in allowed:
                out.append(Problem(f"{path}.{key}", f"must be one of {', '.join(allowed)}, got {policies[key]!r}"))
        escalate = dict(DEFAULT_ESCALATE_AFTER_S)
        esc = ov.get("escalate_after") or {}
        if not isinstance(esc, Mapping):
            out.append(Problem(f"{path}.escalate_after", "must be a table of tier = duration"))
            esc = {}
        for n, v in esc.items():
            if n not in TIERS:
                out.append(Problem(f"{path}.escalate_after.{n}", f"unknown tier (one of {', '.join(TIERS)})"))
                continue
            try:
                escalate[n] = parse_duration(v)
            except ValueError as e:
                out.append(Problem(f"{path}.escalate_after.{n}", str(e)))
        enabled = ov.get("enabled", True)
        if not isinstance(enabled, bool):
            out.append(Problem(f"{path}.enabled", f"must be true or false, got {enabled!r}"))
            enabled = True
        profiles = []
        for i, p in enumerate(ov.get("profiles") or []):
            pp = f"{path}.profiles[{i}]"
            if not isinstance(p, Mapping):
                out.append(Problem(pp, "must be a table with name, calendar, tiers"))
                continue
            _known_keys(p, _PROFILE_KEYS, pp, out)
            name = p.get("name")
            if not isinstance(name, str) or not name:
                out.append(Problem(f"{pp}.name", "missing (a profile needs a name, e.g. 'holiday')"))
            cal_spec, cal = p.get("calendar"), None
            if isinstance(cal_spec, str):
                cal = calendars.get(cal_spec)
                if cal is None and cal_spec not in (doc.get("calendars") or {}):
                    out.append(Problem(f"{pp}.calendar", f"unknown calendar {cal_spec!r}"))
            elif cal_spec is None:
                out.append(Problem(f"{pp}.calendar", "missing (a calendar name or a table)"))
            else:
                cal = _parse_calendar(cal_spec, f"{pp}.calendar", out)
            ptiers = _parse_tiers(p.get("tiers"), merged, f"{pp}.tiers", out)
            _check_order(ptiers, direction, f"{pp}.tiers", out, scope=pp)
            if cal is not None and isinstance(name, str) and name:
                profiles.append(Profile(name, cal, _to_tiers(ptiers)))
        rules[iid] = Rule(
            id=iid, indicator_id=iid, direction=direction, tiers=_to_tiers(merged),
            pending_s=pending_s, keep_firing_s=keep_s, nodata=policies["nodata"], error=policies["error"],
            escalate_after_s=escalate, profiles=tuple(profiles), freshness_s=d.freshness_s,
            family=d.family, labels=dict(d.labels), name_zh=d.name_zh, name_en=d.name_en, unit=d.unit,
            enabled=enabled)
    return rules, out


def _index(defaults: Mapping[str, RuleDefaults] | Iterable[RuleDefaults]) -> dict[str, RuleDefaults]:
    return dict(defaults) if isinstance(defaults, Mapping) else {d.indicator_id: d for d in defaults}


def validate(doc: Mapping[str, Any] | None, defaults: Mapping[str, RuleDefaults] | Iterable[RuleDefaults]
             ) -> list[Problem]:
    """Every problem of an overrides document against the catalog defaults."""
    return _compile(doc, _index(defaults))[1]


def build_rules(defaults: Mapping[str, RuleDefaults] | Iterable[RuleDefaults],
                doc: Mapping[str, Any] | None = None) -> dict[str, Rule]:
    """Rules of every indicator: catalog defaults plus the overrides document.
    Raises :class:`RuleError` with every problem when the document is invalid."""
    rules, problems = _compile(doc, _index(defaults))
    if problems:
        raise RuleError(problems)
    return rules


# --------------------------------------------------------------------------- versions
@dataclass(frozen=True)
class Change:
    """One difference between two documents: ``kind`` added | removed | changed."""

    path: str
    kind: str
    old: Any = None
    new: Any = None

    def __str__(self) -> str:
        if self.kind == "added":
            return f"+ {self.path} = {self.new!r}"
        if self.kind == "removed":
            return f"- {self.path} (was {self.old!r})"
        return f"~ {self.path}: {self.old!r} -> {self.new!r}"


def diff(old: Mapping[str, Any] | None, new: Mapping[str, Any] | None) -> list[Change]:
    """Changed leaves between two overrides documents, with the same paths that
    validation uses (``override[ID].tiers.orange``)."""
    out: list[Change] = []

    def key_path(base: str, k: str) -> str:
        if base == "override":
            return f"override[{k}]"
        return f"{base}.{k}" if base else str(k)

    def walk(a: Any, b: Any, path: str) -> None:
        if isinstance(a, Mapping) and isinstance(b, Mapping):
            for k in sorted(set(a) | set(b), key=str):
                p = key_path(path, k)
                if k not in a:
                    out.append(Change(p, "added", None, b[k]))
                elif k not in b:
                    out.append(Change(p, "removed", a[k], None))
                else:
                    walk(a[k], b[k], p)
        elif isinstance(a, list) and isinstance(b, list) and all(isinstance(x, Mapping) for x in a + b):
            for i in range(max(len(a), len(b))):
                p = f"{path}[{i}]"
                if i >= len(a):
                    out.append(Change(p, "added", None, b[i]))
                elif i >= len(b):
                    out.append(Change(p, "removed", a[i], None))
                else:
                    walk(a[i], b[i], p)
        elif a != b:
            out.append(Change(path, "changed", a, b))

    walk(old or {}, new or {}, "")
    return out


def save(store, defaults, doc: Mapping[str, Any], *, author: str, comment: str, now: datetime,
         expected_version: int | None = None):
    """Validate ``doc`` and store it as the next version (returns the version
    record).  ``expected_version`` is the version the editor started from: if
    someone saved in between, the store refuses (``VersionConflict``) rather
    than silently overwriting their change."""
    problems = validate(doc, defaults)
    if problems:
        raise RuleError(problems)
    if not author:
        raise RuleError([Problem("author", "who saves a threshold change must be named")])
    return store.save_threshold_version(doc, author=author, comment=comment, at=now,
                                        expected_version=expected_version)


def rollback(store, defaults, to_version: int, *, author: str, now: datetime, comment: str = ""):
    """Store the document of ``to_version`` again as a NEW version (history is
    never rewritten).  It is validated against today's catalog defaults."""
    old = store.threshold_version(to_version)
    if old is None:
        raise RuleError([Problem("version", f"no threshold version {to_version}")])
    note = f"rollback to v{to_version}" + (f": {comment}" if comment else "")
    return save(store, defaults, old.content, author=author, comment=note, now=now)
