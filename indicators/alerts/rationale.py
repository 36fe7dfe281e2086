"""Alarm rationalisation (ANSI/ISA-18.2 §10, EEMUA 191): what each alert means and how urgent it is.

``data/alerts/rationale.toml`` documents, per alerting indicator family (and
per tier or per label variant where the meaning differs), per compound rule
and for the runtime's zone forecast: the cause, the consequence if nobody
acts (a class: minor / major / severe), the operator's action (zh, en), the
time to act in minutes and the source of the judgement.  A judgement without
an operator action is ``log_only``: an event for the log, not an alert.

The priority is never written per rule: it is
``matrix[consequence][band(time_to_act)]`` from the same file (urgent / high
/ low).  Blue (IV级) stays an advisory (:data:`indicators.alerts.ADVISORY_TIERS`):
it has no priority whatever its judgement says.

Pure core over the parsed file (the loader is the one adapter):

* :func:`load_rationale` / :func:`parse_rationale` - read and check the file;
  :class:`RationaleError` lists every problem with its path
  (``family."crowd.load_rate".tier.red.consequence: …``);
* :func:`judgement` (rule id or family, tier) -> :class:`Judgement` or None
  (no entry); :func:`priority` -> ``"urgent" | "high" | "low" | None``
  (None: an advisory or a log-only event; a rule with no entry falls back to
  the tier, :data:`FALLBACK_PRIORITY`); :func:`is_log_only`;
  :func:`priority_of` (consequence, minutes) -> priority: the matrix alone;
* :func:`missing_entries` (the coverage check), :func:`describe_rule` (every
  tier of one rule, for the thresholds book) and :func:`distribution` (the
  priorities over a set of rules' tiers).

A rule id is an indicator id (``family:key=value,…@window``), a compound rule
(``compound:<id>``) or a zone forecast (``forecast:<rule id>``); a bare
family name works too (then no label variant applies).
"""
from __future__ import annotations

import tomllib
from collections import Counter
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Any, Iterable, Mapping

from . import ADVISORY_TIERS, DATA_DIR, TIERS
from .rules import Problem

RATIONALE_FILE = DATA_DIR / "rationale.toml"
PRIORITIES: tuple[str, ...] = ("urgent", "high", "low")
"""Alarm priorities, highest first (ANSI/ISA-18.2 style)."""
FALLBACK_PRIORITY: dict[str, str] = {"red": "urgent", "orange": "high", "yellow": "low"}
"""The priority of a rule with no rationale: by its tier, as before rationalisation."""
FIELDS = ("cause", "consequence", "action_zh", "action_en", "time_to_act_min", "source", "log_only")
ACTION_FIELDS = ("consequence", "action_zh", "action_en", "time_to_act_min")
_TOP = ("version", "standards", "consequence", "time_to_act", "matrix", "family", "compound", "forecast")


class RationaleError(ValueError):
    """The rationale file was refused; ``problems`` lists every error with its path."""

    def __init__(self, problems: Iterable[Problem], file: str = "rationale.toml"):
        self.problems = list(problems)
        self.file = file
        super().__init__(f"{file}: {len(self.problems)} problem(s):\n  " + "\n  ".join(map(str, self.problems)))


@dataclass(frozen=True)
class Judgement:
    """What one tier of one rule means (see the module docstring).

    ``priority``: urgent / high / low, None for an advisory (blue) or a
    log-only event; ``band``: the time-to-act band; ``entry``: the path of
    the table it comes from (``family."video.events".variant[0]``)."""

    tier: str
    cause: str
    source: str
    log_only: bool
    consequence: str | None = None
    action_zh: str | None = None
    action_en: str | None = None
    time_to_act_min: float | None = None
    band: str | None = None
    priority: str | None = None
    advisory: bool = False
    entry: str = ""

    def as_dict(self) -> dict[str, Any]:
        return {"tier": self.tier, "cause": self.cause, "consequence": self.consequence,
                "action_zh": self.action_zh, "action_en": self.action_en,
                "time_to_act_min": self.time_to_act_min, "band": self.band, "priority": self.priority,
                "advisory": self.advisory, "log_only": self.log_only, "source": self.source, "entry": self.entry}


@dataclass(frozen=True)
class _Variant:
    labels: Mapping[str, frozenset[str]]
    base: Mapping[str, Any]
    tiers: Mapping[str, Mapping[str, Any]]
    path: str


@dataclass(frozen=True)
class _Entry:
    base: Mapping[str, Any]
    tiers: Mapping[str, Mapping[str, Any]]
    variants: tuple[_Variant, ...]
    path: str


@dataclass
class Rationale:
    """The checked rationale file."""

    standards: dict[str, str]
    consequences: dict[str, dict[str, str]]
    bands: tuple[tuple[str, float], ...]
    matrix: dict[str, dict[str, str]]
    families: dict[str, _Entry]
    compound: dict[str, _Entry]
    forecast: _Entry | None
    file: str = "rationale.toml"
    _cache: dict = field(default_factory=dict, repr=False, compare=False)

    # ------------------------------------------------------------------ lookups
    def band_of(self, minutes: float) -> str | None:
        """The time-to-act band of ``minutes`` (None: longer than every band - no alarm)."""
        for name, hi in self.bands:
            if minutes <= hi:
                return name
        return None

    def priority_of(self, consequence: str, minutes: float) -> str | None:
        """``matrix[consequence][band(minutes)]``; None when longer than every band."""
        band = self.band_of(minutes)
        return None if band is None else self.matrix[consequence][band]

    def judgement(self, rule_or_family: str, tier: str) -> Judgement | None:
        if tier not in TIERS:
            raise ValueError(f"unknown tier {tier!r} (one of {', '.join(TIERS)})")
        key = (str(rule_or_family), tier)
        if key not in self._cache:
            self._cache[key] = self._judge(*key)
        return self._cache[key]

    def _entry(self, rule_or_family: str) -> tuple[_Entry | None, dict[str, str]]:
        kind, name, labels = split_rule(rule_or_family)
        if kind == "forecast":
            return self.forecast, labels
        if kind == "compound":
            return self.compound.get(name), labels
        return self.families.get(name), labels

    def _judge(self, rule_or_family: str, tier: str) -> Judgement | None:
        entry, labels = self._entry(rule_or_family)
        if entry is None:
            return None
        fields, path = _resolve(entry, labels, tier)
        return self._make(fields, tier, path)

    def _make(self, f: Mapping[str, Any], tier: str, path: str) -> Judgement:
        log_only = bool(f.get("log_only", False))
        advisory = tier in ADVISORY_TIERS
        t = None if log_only else f.get("time_to_act_min")
        cons = None if log_only else f.get("consequence")
        band = None if t is None else self.band_of(float(t))
        prio = None if (log_only or advisory or cons is None or t is None) else self.priority_of(cons, float(t))
        return Judgement(tier=tier, cause=f.get("cause", ""), source=f.get("source", ""), log_only=log_only,
                         consequence=cons, action_zh=None if log_only else f.get("action_zh"),
                         action_en=None if log_only else f.get("action_en"),
                         time_to_act_min=None if t is None else float(t), band=band, priority=prio,
                         advisory=advisory, entry=path)

    def priority(self, rule_or_family: str, tier: str) -> str | None:
        j = self.judgement(rule_or_family, tier)
        if j is None:
            return None if tier in ADVISORY_TIERS else FALLBACK_PRIORITY.get(tier)
        return j.priority

    def is_log_only(self, rule_or_family: str, tier: str) -> bool:
        j = self.judgement(rule_or_family, tier)
        return bool(j and j.log_only)

    def documented(self, rule_or_family: str) -> bool:
        return self._entry(rule_or_family)[0] is not None


# --------------------------------------------------------------------------- rule ids
def split_rule(rule_or_family: str) -> tuple[str, str, dict[str, str]]:
    """(kind, name, labels) of a rule id or family: ``("family", "crowd.load_rate",
    {"zone": "west_plaza"})``, ``("compound", "rainstorm_red", {})``,
    ``("forecast", "crowd.load_rate", {"zone": …})``."""
    s = str(rule_or_family)
    if s.startswith("forecast:"):
        _, fam, labels = split_rule(s[len("forecast:"):])
        return "forecast", fam, labels
    if s.startswith("compound:"):
        return "compound", s[len("compound:"):], {}
    head = s.split("@", 1)[0]
    fam, _, scope = head.partition(":")
    labels = dict(kv.split("=", 1) for kv in scope.split(",") if "=" in kv)
    return "family", fam, labels


def _matches(v: _Variant, labels: Mapping[str, str]) -> bool:
    return all(labels.get(k) in vals for k, vals in v.labels.items())


def _resolve(entry: _Entry, labels: Mapping[str, str], tier: str) -> tuple[dict[str, Any], str]:
    """The fields of ``tier`` for ``labels``: the entry's own, then its tier table;
    or, when a variant matches, the entry's own, the variant's, the variant's tier table."""
    f = dict(entry.base)
    for v in entry.variants:
        if _matches(v, labels):
            return _layer(_layer(f, v.base), v.tiers.get(tier, {})), (
                f"{v.path}.tier.{tier}" if tier in v.tiers else v.path)
    return _layer(f, entry.tiers.get(tier, {})), f"{entry.path}.tier.{tier}" if tier in entry.tiers else entry.path


def _layer(under: Mapping[str, Any], over: Mapping[str, Any]) -> dict[str, Any]:
    out = dict(under)
    if over.get("log_only") is True:                  # a log-only layer drops the action it would inherit
        for k in ACTION_FIELDS:
            out.pop(k, None)
    elif "log_only" not in over and any(k in over for k in ACTION_FIELDS):
        out["log_only"] = False                       # a layer that names an action is an alarm
    out.update(over)
    return out


# --------------------------------------------------------------------------- parse and check
def _q(name: str) -> str:
    return f'"{name}"' if "." in name or not name.replace("_", "").isalnum() else name


def parse_rationale(doc: Mapping[str, Any], *, file: str = "rationale.toml") -> Rationale:
    """Check a parsed rationale document; :class:`RationaleError` lists every problem."""
    out: list[Problem] = []
    if not isinstance(doc, Mapping):
        raise RationaleError([Problem("(document)", "must be a table")], file)
    for k in doc:
        if k not in _TOP:
            out.append(Problem(k, f"unknown key (known: {', '.join(_TOP)})"))

    standards = doc.get("standards")
    if not isinstance(standards, Mapping) or not standards:
        out.append(Problem("standards", "missing: a table of standard name -> title"))
        standards = {}
    for k, v in standards.items():
        if not isinstance(v, str) or not v.strip():
            out.append(Problem(f"standards.{_q(k)}", "must be a non-empty string"))

    cons = doc.get("consequence")
    consequences: dict[str, dict[str, str]] = {}
    if not isinstance(cons, Mapping) or not cons:
        out.append(Problem("consequence", "missing: a table of classes (minor, major, severe) with zh, en, means"))
    else:
        for name, c in cons.items():
            p = f"consequence.{_q(name)}"
            if not isinstance(c, Mapping):
                out.append(Problem(p, "must be a table with zh, en, means"))
                continue
            for k in ("zh", "en", "means"):
                if not isinstance(c.get(k), str) or not c.get(k).strip():
                    out.append(Problem(f"{p}.{k}", "missing or not a string"))
            consequences[name] = {k: str(c.get(k, "")) for k in ("zh", "en", "means")}

    bands: list[tuple[str, float]] = []
    tta = doc.get("time_to_act")
    if not isinstance(tta, Mapping) or not isinstance(tta.get("bands"), list) or not tta.get("bands"):
        out.append(Problem("time_to_act.bands", "missing: a list of { name, max_min } in ascending order"))
    else:
        _check_source(tta.get("source"), "time_to_act.source", standards, out)
        for i, b in enumerate(tta["bands"]):
            p = f"time_to_act.bands[{i}]"
            if not isinstance(b, Mapping) or not isinstance(b.get("name"), str):
                out.append(Problem(p, "must be { name = TEXT, max_min = MINUTES }"))
                continue
            m = b.get("max_min")
            if isinstance(m, bool) or not isinstance(m, (int, float)) or m <= 0:
                out.append(Problem(f"{p}.max_min", f"must be a number of minutes > 0, got {m!r}"))
                continue
            if bands and m <= bands[-1][1]:
                out.append(Problem(f"{p}.max_min", f"must be greater than the band before ({bands[-1][1]:g})"))
            if any(n == b["name"] for n, _ in bands):
                out.append(Problem(f"{p}.name", f"band {b['name']!r} named twice"))
            bands.append((b["name"], float(m)))

    matrix: dict[str, dict[str, str]] = {}
    mx = doc.get("matrix")
    if not isinstance(mx, Mapping):
        out.append(Problem("matrix", "missing: consequence -> { band = priority }"))
    else:
        _check_source(mx.get("source"), "matrix.source", standards, out)
        for c in mx:
            if c != "source" and c not in consequences:
                out.append(Problem(f"matrix.{_q(c)}", f"unknown consequence (one of {', '.join(consequences)})"))
        for c in consequences:
            row = mx.get(c)
            if not isinstance(row, Mapping):
                out.append(Problem(f"matrix.{c}", "missing: a table band -> priority"))
                continue
            for b in row:
                if b not in dict(bands):
                    out.append(Problem(f"matrix.{c}.{_q(b)}", f"unknown band (one of {', '.join(n for n, _ in bands)})"))
            for b, _ in bands:
                v = row.get(b)
                if v not in PRIORITIES:
                    out.append(Problem(f"matrix.{c}.{b}", f"must be one of {', '.join(PRIORITIES)}, got {v!r}"))
            matrix[c] = {b: str(row.get(b)) for b, _ in bands}

    ctx = _Ctx(standards, consequences, bands, out)
    families: dict[str, _Entry] = {}
    fam = doc.get("family", {})
    if not isinstance(fam, Mapping):
        out.append(Problem("family", "must be a table keyed by indicator family"))
        fam = {}
    for name, node in fam.items():
        e = ctx.entry(node, f"family.{_q(name)}")
        if e is not None:
            families[name] = e
    compound: dict[str, _Entry] = {}
    comp = doc.get("compound", {})
    if not isinstance(comp, Mapping):
        out.append(Problem("compound", "must be a table keyed by compound rule id"))
        comp = {}
    for name, node in comp.items():
        e = ctx.entry(node, f"compound.{_q(name)}", variants=False)
        if e is not None:
            compound[name] = e
    forecast = ctx.entry(doc["forecast"], "forecast", variants=False) if "forecast" in doc else None
    if out:
        raise RationaleError(out, file)
    return Rationale(dict(standards), consequences, tuple(bands), matrix, families, compound, forecast, file)


def _check_source(v: Any, path: str, standards: Mapping[str, str], out: list[Problem]) -> None:
    if not isinstance(v, str) or not v.strip():
        out.append(Problem(path, "missing: name a standard of [standards] or write 'ASSUMPTION: why'"))
    elif not v.lstrip().startswith("ASSUMPTION:") and not any(k in v for k in standards):
        out.append(Problem(path, "names no standard of [standards] and is no 'ASSUMPTION: why': "
                                 f"{v[:60]!r}"))


class _Ctx:
    def __init__(self, standards, consequences, bands, out):
        self.standards, self.consequences, self.bands, self.out = standards, consequences, bands, out

    def fields(self, node: Any, path: str, allowed: tuple[str, ...]) -> dict[str, Any] | None:
        out = self.out
        if not isinstance(node, Mapping):
            out.append(Problem(path, f"must be a table, got {node!r}"))
            return None
        f: dict[str, Any] = {}
        for k, v in node.items():
            p = f"{path}.{_q(k)}"
            if k not in allowed:
                out.append(Problem(p, f"unknown key (known: {', '.join(allowed)})"))
            elif k in ("tier", "variant", "labels"):
                continue
            elif k == "log_only":
                if not isinstance(v, bool):
                    out.append(Problem(p, f"must be true or false, got {v!r}"))
                f[k] = bool(v)
            elif k == "time_to_act_min":
                if isinstance(v, bool) or not isinstance(v, (int, float)) or v <= 0:
                    out.append(Problem(p, f"must be a number of minutes > 0, got {v!r}"))
                else:
                    f[k] = float(v)
            elif k == "consequence":
                if v not in self.consequences:
                    out.append(Problem(p, f"unknown consequence {v!r} (one of {', '.join(self.consequences)})"))
                else:
                    f[k] = v
            elif k == "source":
                _check_source(v, p, self.standards, out)
                f[k] = v
            elif not isinstance(v, str) or not v.strip():
                out.append(Problem(p, f"must be a non-empty string, got {v!r}"))
            else:
                f[k] = v
        if f.get("log_only") is True:
            for k in ACTION_FIELDS:
                if k in f:
                    out.append(Problem(f"{path}.{k}", "a log-only judgement has no operator action: drop it "
                                                      "or set log_only = false"))
        return f

    def tiers(self, node: Any, path: str) -> dict[str, dict[str, Any]]:
        if node is None:
            return {}
        if not isinstance(node, Mapping):
            self.out.append(Problem(path, "must be a table of tiers (blue, yellow, orange, red)"))
            return {}
        res = {}
        for t, sub in node.items():
            if t not in TIERS:
                self.out.append(Problem(f"{path}.{_q(t)}", f"unknown tier (one of {', '.join(TIERS)})"))
                continue
            f = self.fields(sub, f"{path}.{t}", FIELDS)
            if f is not None:
                res[t] = f
        return res

    def entry(self, node: Any, path: str, *, variants: bool = True) -> _Entry | None:
        allowed = FIELDS + (("tier", "variant") if variants else ("tier",))
        base = self.fields(node, path, allowed)
        if base is None:
            return None
        tiers = self.tiers(node.get("tier"), f"{path}.tier")
        vs: list[_Variant] = []
        raw = node.get("variant", []) if variants else []
        if not isinstance(raw, list):
            self.out.append(Problem(f"{path}.variant", "must be an array of tables ([[…variant]])"))
            raw = []
        for i, v in enumerate(raw):
            vp = f"{path}.variant[{i}]"
            vb = self.fields(v, vp, FIELDS + ("labels", "tier"))
            if vb is None:
                continue
            labels = v.get("labels")
            lab: dict[str, frozenset[str]] = {}
            if not isinstance(labels, Mapping) or not labels:
                self.out.append(Problem(f"{vp}.labels", "missing: { label = [values] } the variant applies to"))
            else:
                for k, vals in labels.items():
                    vals = [vals] if isinstance(vals, str) else vals
                    if not isinstance(vals, list) or not vals or not all(isinstance(x, str) for x in vals):
                        self.out.append(Problem(f"{vp}.labels.{_q(k)}", "must be a value or a list of values"))
                        continue
                    lab[k] = frozenset(vals)
            vs.append(_Variant(lab, vb, self.tiers(v.get("tier"), f"{vp}.tier"), vp))
        e = _Entry(base, tiers, tuple(vs), path)
        self.complete(e)
        return e

    def complete(self, e: _Entry) -> None:
        """Every tier of the entry and of each variant resolves to a whole judgement."""
        holders = [(e.path, None)] + [(v.path, v) for v in e.variants]
        last = self.bands[-1] if self.bands else None
        for path, v in holders:
            missing: dict[str, list[str]] = {}
            for t in TIERS:
                if v is None:
                    f = _layer(dict(e.base), e.tiers.get(t, {}))
                    where = f"{path}.tier.{t}" if t in e.tiers else path
                else:
                    f = _layer(_layer(dict(e.base), v.base), v.tiers.get(t, {}))
                    where = f"{path}.tier.{t}" if t in v.tiers else path
                need = ("cause", "source") if f.get("log_only") else ("cause", "source") + ACTION_FIELDS
                for k in need:
                    if k not in f:
                        missing.setdefault(k, []).append(t)
                tta = f.get("time_to_act_min")
                long = Problem(f"{where}.time_to_act_min", "")
                if (not f.get("log_only") and tta is not None and last is not None and tta > last[1]
                        and not any(p.path == long.path for p in self.out)):      # once per table
                    self.out.append(Problem(f"{where}.time_to_act_min",
                                            f"{tta:g} min is longer than the last band ({last[0]}, {last[1]:g} "
                                            "min): what needs no timely response is no alarm (ANSI/ISA-18.2) - "
                                            "shorten it or set log_only = true"))
            for k, ts in missing.items():
                self.out.append(Problem(f"{path}.{k}", f"missing (needed by tier{'s' if len(ts) > 1 else ''} "
                                                       f"{', '.join(ts)}" + (", which are not log_only)"
                                                                             if k in ACTION_FIELDS else ")")))


def load_rationale(path: str | Path = RATIONALE_FILE) -> Rationale:
    """Read and check ``data/alerts/rationale.toml`` (or ``path``)."""
    path = Path(path)
    try:
        doc = tomllib.loads(path.read_text(encoding="utf-8"))
    except tomllib.TOMLDecodeError as e:
        raise RationaleError([Problem("(toml)", str(e))], str(path)) from None
    return parse_rationale(doc, file=str(path))


@lru_cache(maxsize=1)
def default_rationale() -> Rationale:
    """The shipped rationale (loaded once)."""
    return load_rationale()


# --------------------------------------------------------------------------- the functions the runtime calls
def judgement(rule_or_family: str, tier: str, rationale: Rationale | None = None) -> Judgement | None:
    """The judgement of ``tier`` of a rule id or family (None: no entry in the file)."""
    return (rationale or default_rationale()).judgement(rule_or_family, tier)


def priority(rule_or_family: str, tier: str, rationale: Rationale | None = None) -> str | None:
    """``"urgent"``, ``"high"`` or ``"low"`` from consequence x time to act; None for
    an advisory (blue) or a log-only event.  A rule with no entry gets
    :data:`FALLBACK_PRIORITY` of its tier (it still pages: nobody has judged it)."""
    return (rationale or default_rationale()).priority(rule_or_family, tier)


def is_log_only(rule_or_family: str, tier: str, rationale: Rationale | None = None) -> bool:
    """True when ``tier`` of the rule has no operator action: an event for the log,
    not an alert (False for a rule with no entry)."""
    return (rationale or default_rationale()).is_log_only(rule_or_family, tier)


def priority_of(consequence: str, time_to_act_min: float, rationale: Rationale | None = None) -> str | None:
    """The matrix alone: priority of a consequence class and a time to act (None: no alarm)."""
    return (rationale or default_rationale()).priority_of(consequence, time_to_act_min)


def describe_rule(rule_or_family: str, tiers: Iterable[str] = TIERS,
                  rationale: Rationale | None = None) -> dict[str, Any] | None:
    """Every tier's judgement of one rule, for display (None: no entry)."""
    r = rationale or default_rationale()
    out = {t: j.as_dict() for t in tiers if (j := r.judgement(rule_or_family, t)) is not None}
    if not out:
        return None
    return {"file": "data/alerts/rationale.toml", "tiers": out}


def missing_entries(families: Iterable[str], compound: Iterable[str] = (),
                    rationale: Rationale | None = None) -> list[str]:
    """The alerting families and compound rule ids that have no entry (coverage check)."""
    r = rationale or default_rationale()
    return ([f for f in families if f not in r.families]
            + [f"compound:{c}" for c in compound if c not in r.compound])


def distribution(rule_tiers: Iterable[tuple[str, Iterable[str]]],
                 rationale: Rationale | None = None) -> dict[str, int]:
    """How the tiers of the given rules divide into priorities, advisories and log-only events:
    ``{"urgent": n, "high": n, "low": n, "advisory": n, "log_only": n}``."""
    r = rationale or default_rationale()
    c: Counter[str] = Counter()
    for rid, tiers in rule_tiers:
        for t in tiers:
            if t in ADVISORY_TIERS:
                c["advisory"] += 1
            elif r.is_log_only(rid, t):
                c["log_only"] += 1
            else:
                c[r.priority(rid, t) or "none"] += 1
    keys = PRIORITIES + ("advisory", "log_only")
    return {k: c.get(k, 0) for k in keys} | ({"none": c["none"]} if c.get("none") else {})


__all__ = ["FALLBACK_PRIORITY", "Judgement", "PRIORITIES", "RATIONALE_FILE", "Rationale", "RationaleError",
           "default_rationale", "describe_rule", "distribution", "is_log_only", "judgement", "load_rationale",
           "missing_entries", "parse_rationale", "priority", "priority_of", "split_rule"]
