"""A supervisor's change to one rule, applied to the saved document and validated field by field.

:class:`Change` is what ``scenic-twin thresholds set`` (or a form) asks for:
new tier thresholds and recover values (of the base tiers, or of a named
profile), pending period, keep-firing, direction, policies, escalation,
enabled; a profile can be created on a calendar, dropped, or all profiles
switched off; ``reset`` drops the saved override of the rule first.

:func:`apply_change` returns a NEW saved document (the old one is not
touched): only the supervisors' own changes go into it, the shipped baseline
stays beneath (:mod:`indicators.alerts.baseline`).  :func:`validate_change`
checks the change's own values first (unknown indicator or tier, negative or
malformed durations, non-numbers) and then the whole resulting rule set with
:func:`indicators.alerts.rules.validate`; every :class:`FieldProblem` names
the field (``tiers.red``, ``profiles.holiday.tiers.orange.recover``,
``pending``) and says what to do.
"""
from __future__ import annotations

import copy
import math
import re
from dataclasses import dataclass, field
from typing import Any, Mapping

from indicators.alerts import TIERS
from indicators.alerts.rules import DIRECTIONS, ERROR_POLICIES, NODATA_POLICIES, parse_duration, validate

from .book import Book, UnknownRule


@dataclass(frozen=True)
class FieldProblem:
    """One reason a change was refused: the field, the document path, what to do."""

    field: str
    path: str
    message: str

    def __str__(self) -> str:
        return f"{self.field}: {self.message}"

    def as_dict(self) -> dict[str, str]:
        return {"field": self.field, "path": self.path, "message": self.message}


class Refused(ValueError):
    """A threshold change or save was refused; ``problems`` says why, field by field."""

    def __init__(self, problems: list[FieldProblem]):
        self.problems = list(problems)
        super().__init__("refused: " + "; ".join(map(str, self.problems)))


class NoChange(Refused):
    """The change would leave the document as it is; nothing is saved."""


@dataclass
class Change:
    """The edit of one rule (None / empty: leave as it is).  Durations are
    ``"90s"``, ``"5m"``, ``"1h30m"`` or seconds."""

    tiers: dict[str, float] = field(default_factory=dict)
    recover: dict[str, float] = field(default_factory=dict)
    pending: Any = None
    keep_firing: Any = None
    direction: str | None = None
    nodata: str | None = None
    error: str | None = None
    enabled: bool | None = None
    escalate_after: dict[str, Any] = field(default_factory=dict)
    profile: str | None = None        # tiers / recover go to this profile (created when new)
    calendar: str | None = None       # the profile's calendar
    drop_profile: bool = False        # remove ``profile``
    no_profiles: bool = False         # switch every profile off (shipped ones too)
    reset: bool = False               # drop the saved override first

    def empty(self) -> bool:
        return self == Change()


# --------------------------------------------------------------------------- applying
def _tier_spec(threshold: float, recover: float | None) -> Any:
    return threshold if recover is None or recover == threshold else {"threshold": threshold, "recover": recover}


def _set_tiers(tiers: dict[str, Any], below: Mapping[str, Any], current: Mapping[str, float],
               change: Change) -> None:
    """Write the changed thresholds / recover values into ``tiers`` (a saved
    tiers table; ``below`` is the same table with the shipped one beneath).  A
    value the change leaves alone keeps its explicit setting, else the
    threshold in force (``current``)."""
    for name in [t for t in TIERS if t in change.tiers or t in change.recover]:
        old = below.get(name)
        old_thr = old.get("threshold") if isinstance(old, Mapping) else old
        old_rec = old.get("recover") if isinstance(old, Mapping) else None
        thr = change.tiers.get(name, old_thr if old_thr is not None else current.get(name))
        rec = change.recover.get(name, old_rec)
        tiers[name] = {"recover": rec} if thr is None else _tier_spec(thr, rec)


def _in_force(book: Book, doc: Mapping[str, Any], rid: str, profile: str | None) -> dict[str, float]:
    """Tier thresholds of rule ``rid`` (or of its profile) under ``doc``; the
    catalog's when ``doc`` does not build."""
    from indicators.alerts.rules import RuleError
    try:
        rule = book.rules(doc)[rid]
    except RuleError:
        return dict(book.defaults[rid].tiers)
    tiers = next((p.tiers for p in rule.profiles if p.name == profile), rule.tiers)
    return {t.name: t.threshold for t in tiers}


def apply_change(book: Book, doc: Mapping[str, Any] | None, rid: str, change: Change) -> dict[str, Any]:
    """The saved document ``doc`` with ``change`` made to rule ``rid`` (a new dict)."""
    new = copy.deepcopy(dict(doc or {}))
    overrides = new.setdefault("override", {})
    if change.reset:
        overrides.pop(rid, None)
    ov = overrides.setdefault(rid, {})
    below = (book.effective(new).get("override") or {}).get(rid) or {}
    current = _in_force(book, new, rid, change.profile)
    for key, value in (("direction", change.direction), ("nodata", change.nodata), ("error", change.error),
                       ("enabled", change.enabled), ("for", change.pending),
                       ("keep_firing_for", change.keep_firing)):
        if value is not None:
            ov[key] = value
    if change.escalate_after:
        ov["escalate_after"] = {**(below.get("escalate_after") or {}), **change.escalate_after}
    if change.no_profiles:
        ov["profiles"] = []
    if change.profile:
        profiles = copy.deepcopy(list(below.get("profiles") or []))
        at = next((i for i, p in enumerate(profiles) if isinstance(p, Mapping) and p.get("name") == change.profile),
                  None)
        if change.drop_profile:
            if at is not None:
                profiles.pop(at)
        else:
            if at is None:
                profiles.append({"name": change.profile, "tiers": {}})
                at = len(profiles) - 1
            p = profiles[at]
            if change.calendar:
                p["calendar"] = change.calendar
            p["tiers"] = dict(p.get("tiers") or {})
            _set_tiers(p["tiers"], p["tiers"], current, change)
        ov["profiles"] = profiles
    elif change.tiers or change.recover:
        ov["tiers"] = dict(ov.get("tiers") or {})
        _set_tiers(ov["tiers"], below.get("tiers") or {}, current, change)
    if not ov:
        overrides.pop(rid)
    if not overrides:
        new.pop("override")
    return new


# --------------------------------------------------------------------------- validating
_FIELD = (("for", "pending"), ("keep_firing_for", "keep_firing"))


def field_of(path: str, rid: str, doc: Mapping[str, Any]) -> str:
    """The field a rules-module problem path means for rule ``rid``:
    ``override[ID].tiers.red`` -> ``tiers.red``, ``...profiles[0].tiers.red``
    -> ``profiles.holiday.tiers.red``, ``...for`` -> ``pending``."""
    for prefix in (f"override[{rid}].", f"defaults[{rid}]."):
        if path.startswith(prefix):
            rest = path[len(prefix):]
            break
    else:
        return path
    m = re.match(r"profiles\[(\d+)\](.*)", rest)
    if m:
        profiles = (((doc.get("override") or {}).get(rid) or {}).get("profiles")) or []
        i = int(m[1])
        name = profiles[i].get("name") if i < len(profiles) and isinstance(profiles[i], Mapping) else None
        rest = f"profiles.{name or i}{m[2]}"
    for key, name in _FIELD:
        if rest == key or rest.startswith(key + "."):
            rest = name + rest[len(key):]
    return rest


def _own_problems(book: Book, rid: str, change: Change) -> list[FieldProblem]:
    """Problems of the change's own values, before the document is built."""
    out: list[FieldProblem] = []
    p = f"override[{rid}]"
    for table, label in ((change.tiers, "tiers"), (change.recover, "recover")):
        for name, v in table.items():
            f = f"tiers.{name}" + (".recover" if label == "recover" else "")
            if name not in TIERS:
                out.append(FieldProblem(f, f"{p}.tiers.{name}", f"unknown tier {name!r}: use one of "
                                                                  f"{', '.join(TIERS)}"))
            elif isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v):
                out.append(FieldProblem(f, f"{p}.tiers.{name}", f"must be a finite number, got {v!r}"))
    for value, f, key in ((change.pending, "pending", "for"), (change.keep_firing, "keep_firing", "keep_firing_for"),
                          *((v, f"escalate_after.{t}", f"escalate_after.{t}")
                            for t, v in change.escalate_after.items())):
        if value is None:
            continue
        if (isinstance(value, (int, float)) and not isinstance(value, bool) and value < 0) or \
                (isinstance(value, str) and value.strip().startswith("-")):
            out.append(FieldProblem(f, f"{p}.{key}", f"must not be negative ({value!r}): give a duration ≥ 0 "
                                                    "such as '90s', '5m' or '1h30m'"))
            continue
        try:
            parse_duration(value)
        except ValueError:
            out.append(FieldProblem(f, f"{p}.{key}", f"{value!r} is not a duration: write it like '90s', '5m' "
                                                    "or '1h30m' (or a number of seconds)"))
    for t in change.escalate_after:
        if t not in TIERS:
            out.append(FieldProblem(f"escalate_after.{t}", f"{p}.escalate_after.{t}",
                                    f"unknown tier {t!r}: use one of {', '.join(TIERS)}"))
    for value, f, allowed in ((change.direction, "direction", DIRECTIONS), (change.nodata, "nodata", NODATA_POLICIES),
                              (change.error, "error", ERROR_POLICIES)):
        if value is not None and value not in allowed:
            out.append(FieldProblem(f, f"{p}.{f}", f"{value!r} is not allowed: use one of {', '.join(allowed)}"))
    if (change.drop_profile or change.calendar) and not change.profile:
        out.append(FieldProblem("profile", f"{p}.profiles", "name the profile (--profile NAME)"))
    return out


_ORDER = re.compile(r"^must be ([≥≤]) (\w+) \(([^)]*)\) for direction '(\w+)'$")


def _hint(message: str, doc: Mapping[str, Any]) -> str:
    m = _ORDER.match(message)
    if m:
        return f"{message}: give a value {m[1]} {m[3]}, or change {m[2]} in the same edit"
    if message.startswith("unknown calendar"):
        known = ", ".join(sorted((doc.get("calendars") or {}))) or "none yet"
        return f"{message}: use a defined calendar ({known}) or define it first"
    if message.startswith("missing (a calendar"):
        return "missing: a new profile needs a calendar (--calendar NAME, e.g. golden_week)"
    return message


def validate_doc(book: Book, doc: Mapping[str, Any] | None, rid: str | None = None) -> list[FieldProblem]:
    """Every problem of the rules built from ``doc`` over the baseline."""
    eff = book.effective(doc)
    return [FieldProblem(field_of(p.path, rid, eff) if rid else p.path, p.path, _hint(p.message, eff))
            for p in validate(eff, book.defaults)]


def validate_change(book: Book, doc: Mapping[str, Any] | None, rid: str, change: Change
                    ) -> tuple[dict[str, Any] | None, list[FieldProblem]]:
    """(the new saved document, []) or (None, the problems) for ``change`` to
    rule ``rid`` over the saved document ``doc``."""
    try:
        rid = book.resolve(rid)
    except UnknownRule as e:
        return None, [FieldProblem("id", f"override[{rid}]", str(e))]
    own = _own_problems(book, rid, change)
    if own:
        return None, own
    new = apply_change(book, doc, rid, change)
    problems = validate_doc(book, new, rid)
    return (None, problems) if problems else (new, [])


__all__ = ["Change", "FieldProblem", "NoChange", "Refused", "apply_change", "field_of", "validate_change", "validate_doc"]
