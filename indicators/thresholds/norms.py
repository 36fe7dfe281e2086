"""Usual levels per place and time of day, learnt from history and proposed as threshold profiles.

A raw count means different things in different places and hours: five litter detections in 15
minutes on the grand steps on a Saturday evening are the usual, at the west plaza at 04:00 they
are not.  The catalog gives each AI-video count one ladder of tiers for every place and hour;
this module learns, from the area's own history, what is usual for each indicator (each zone and
algorithm) at each hour of a workday and of a rest day, and proposes tiers that start above it.

Method (:func:`learn`, :func:`propose`):

* **Slots**: (day kind, local hour); day kinds ``workday`` (Monday to Friday) and ``restday``
  (Saturday, Sunday and the holiday dates given, by default the threshold calendars' dates:
  Golden Week).  A make-up working day on a weekend (调休) counts as a rest day: not modelled.
* **Samples**: the indicator's good-quality values every ``every`` (5 min) of event time; each
  slot pools its own hour with the hours either side (``pool_hours``), over the days learnt.
* **Usual high** of a slot: mean + ``z`` standard deviations (default 2.33: the 99th percentile
  of a normal curve), the deviation at least the square root of the mean (the scatter of a count
  whose detections come one by one).  A slot seen on fewer than ``min_days`` days keeps the
  catalog's tiers (not enough to know).
* **Proposal**: where the usual high reaches the first tier that pages anyone (yellow; blue is a
  log entry), the whole ladder (every threshold and its recover) moves up by
  ``ceil(usual high) + 1 - yellow``, so that yellow is one above the usual high and the steps
  between tiers stay the catalog's.  Never down: a quiet place is not made more sensitive than
  the catalog says (a single detection is a case already).  Adjacent hours with the same shift
  are one profile ``usual-<day kind>-HH-HH`` whose calendar holds the weekdays (and holiday
  dates) and the hours; the rule's other profiles (a supervisor's, the shipped Golden Week ones)
  stay first and win where they apply.
* **Not learnt** (:func:`learnable`): a rule whose yellow already means major harm by the
  rationale (a fall, a fight, a person at the water, fire: each detection counts however usual
  it is there) and a rule whose every tier is for the log only.

The proposal is a threshold document like any other: ``scenic-twin thresholds learn`` prints it
and what changed, backtests it against the current one on a recording or the tick history, and
``--save`` stores it as a new version with its author and reason (audited): learnt thresholds
are approved by a supervisor, they never change by themselves.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta, timezone
from pathlib import Path
from typing import Any, Callable, Iterable, Mapping, Sequence

import numpy as np

from indicators.alerts import TIERS
from indicators.localtime import LOCAL

DAY_KINDS = ("workday", "restday")
DEFAULT_FAMILIES = ("video.events",)
PREFIX = "usual-"
_EPOCH = datetime(1970, 1, 1, tzinfo=timezone.utc)
_WEEKDAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")


def day_kind(d: date, holidays: frozenset[date] | set[date] = frozenset()) -> int:
    """0 workday, 1 rest day (weekend or a listed holiday)."""
    return 1 if d.weekday() >= 5 or d in holidays else 0


@dataclass
class Norms:
    """What :func:`learn` found: per indicator and (day kind, hour) slot, the mean and standard
    deviation of its samples (pooled with the hours either side), the usual high and the number
    of days the slot was seen on."""

    ids: list[str]
    mean: np.ndarray                  # [n, 2, 24] (nan: never seen)
    std: np.ndarray                   # [n, 2, 24]
    days: np.ndarray                  # [n, 2, 24] days with a good sample in the slot (its own hour)
    z: float                          # standard deviations above the mean that the usual high is
    first: datetime | None = None
    last: datetime | None = None
    samples: int = 0
    holidays: frozenset[date] = field(default_factory=frozenset)

    @property
    def high(self) -> np.ndarray:
        """[n, 2, 24] the usual high: mean + z standard deviations, the deviation at least the
        square root of the mean (a count's own scatter when detections come one by one)."""
        return self.mean + self.z * np.sqrt(np.maximum(self.std ** 2, np.maximum(self.mean, 0.0)))

    def slot(self, iid: str, kind: str, hour: int) -> dict[str, float | int]:
        k, j = self.ids.index(iid), DAY_KINDS.index(kind)
        return {"mean": float(self.mean[k, j, hour]), "std": float(self.std[k, j, hour]),
                "high": float(self.high[k, j, hour]), "days": int(self.days[k, j, hour])}


Z_99 = 2.326
"""The 99th percentile of a normal curve, in standard deviations: the default usual high."""


def learn(ticks: Iterable[Any], ids: Sequence[str], positions: Sequence[int] | None = None, *,
          z: float = Z_99, every: timedelta = timedelta(minutes=5), pool_hours: int = 1,
          holidays: Iterable[date] = (), ok_code: int = 0) -> Norms:
    """The usual levels of ``ids`` from ``ticks`` (objects with ``time_ms``, ``values``,
    ``quality``; ``positions``: where each id sits in a tick's arrays, default 0..n-1).  Only
    good-quality values (``quality == ok_code``) count; ticks are sampled every ``every`` of
    event time; each slot's mean and deviation pool the samples of ``pool_hours`` hours either
    side on the same kind of day (a few days of history give each hour a few dozen samples, and
    the usual level does not jump at the full hour)."""
    if not 0 < z <= 6:
        raise ValueError(f"z (standard deviations) must be in (0, 6], got {z}")
    pos = np.arange(len(ids)) if positions is None else np.asarray(positions, dtype=np.int64)
    n = len(ids)
    step = int(every / timedelta(milliseconds=1))
    hol = frozenset(holidays)
    s1 = np.zeros((n, 2, 24))
    s2 = np.zeros((n, 2, 24))
    cnt = np.zeros((n, 2, 24))
    days = np.zeros((n, 2, 24), dtype=np.int64)
    last_day = np.full((n, 2, 24), -1, dtype=np.int64)
    first = last = None
    n_samples = 0
    for t in ticks:
        tm = int(t.time_ms)
        if tm % step:
            continue
        v = np.asarray(t.values, dtype=float)[pos]
        good = (np.asarray(t.quality)[pos] == ok_code) & ~np.isnan(v)
        local = (_EPOCH + timedelta(milliseconds=tm)).astimezone(LOCAL)
        j, h, od = day_kind(local.date(), hol), local.hour, local.date().toordinal()
        x = np.where(good, v, 0.0)
        s1[:, j, h] += x
        s2[:, j, h] += x * x
        cnt[:, j, h] += good
        new = good & (last_day[:, j, h] != od)
        days[new, j, h] += 1
        last_day[new, j, h] = od
        first = tm if first is None else min(first, tm)
        last = tm if last is None else max(last, tm)
        n_samples += 1
    # pool each hour with its neighbours on the same kind of day (the day wraps at midnight)
    P1, P2, PC = (sum(np.roll(a, k, axis=2) for k in range(-pool_hours, pool_hours + 1)) for a in (s1, s2, cnt))
    with np.errstate(invalid="ignore", divide="ignore"):
        mean = np.where(PC > 0, P1 / PC, np.nan)
        var = np.where(PC > 1, (P2 - PC * mean ** 2) / np.maximum(PC - 1, 1), 0.0)
    std = np.sqrt(np.maximum(var, 0.0))
    dt = lambda ms: None if ms is None else _EPOCH + timedelta(milliseconds=ms)   # noqa: E731
    return Norms(list(ids), mean, std, days, z, dt(first), dt(last), n_samples, hol)


# --------------------------------------------------------------------------- proposal
def _hours(a: int, b: int) -> str:
    return f"{a:02d}:00-{b:02d}:00"


def _tier_spec(threshold: float, recover: float) -> Any:
    t, r = _num(threshold), _num(recover)
    return t if t == r else {"threshold": t, "recover": r}


def _num(x: float) -> float | int:
    return int(x) if float(x).is_integer() else round(float(x), 6)


@dataclass
class Proposal:
    """The proposed saved document and what it changes."""

    doc: dict[str, Any]
    changed: dict[str, list[dict[str, Any]]]          # indicator id -> its learnt profiles (name, kind, hours, shift)
    kept: list[str]                                   # ids learnt but left at the catalog's tiers (usual stays under)
    thin: list[str]                                   # ids with slots seen on too few days
    excluded: list[str] = field(default_factory=list)  # ids not ``eligible`` (safety detections, log-only)

    def summary(self) -> dict[str, Any]:
        shifts = [p["shift"] for ps in self.changed.values() for p in ps]
        return {"rules_changed": len(self.changed), "profiles": len(shifts), "rules_unchanged": len(self.kept),
                "rules_with_thin_slots": len(self.thin), "rules_not_learnt": len(self.excluded),
                "largest_shift": max(shifts, default=0)}


def learnable(rationale) -> Callable[[str], bool]:
    """Which rules a usual level may move, by the rationale (data/alerts/rationale.toml): those
    whose first paging tier is of minor consequence (nuisances, early signs of crowding) - never a
    rule where yellow already means major harm (a fall, a fight, a person at the water, fire: each
    detection counts however usual), nor one whose every tier is for the log only (no one is paged,
    nothing to gain)."""
    def ok(rule_id: str) -> bool:
        js = [rationale.judgement(rule_id, t) for t in ("yellow", "orange", "red")]
        if all(j is not None and j.log_only for j in js):
            return False
        first = next((j for j in js if j is not None and not j.log_only), None)
        return first is None or first.consequence in (None, "minor")
    return ok


def propose(norms: Norms, rules: Mapping[str, Any], saved: Mapping[str, Any] | None, *,
            min_days: int = 5, eligible: Callable[[str], bool] | None = None) -> Proposal:
    """``saved`` (the latest saved document, or None) with learnt ``usual-*`` profiles for the
    rules of ``norms.ids`` (``rules``: the rules in force, :meth:`Book.rules`) that ``eligible``
    allows (default: all; the command passes :func:`learnable`).  Learnt profiles from an earlier
    run are replaced; every other profile of the rule is kept, first."""
    doc = _copy(saved or {})
    over = doc.setdefault("override", {})
    changed: dict[str, list[dict[str, Any]]] = {}
    kept, thin, excluded = [], [], []
    hol = sorted(norms.holidays)
    high = norms.high
    for k, iid in enumerate(norms.ids):
        rule = rules.get(iid)
        if rule is None or rule.direction != "above" or not rule.tiers:
            continue
        if eligible is not None and not eligible(iid):
            excluded.append(iid)
            continue
        paging = [t.threshold for t in rule.tiers if t.name != "blue"] or [t.threshold for t in rule.tiers]
        first_tier = min(paging)
        mine = []
        for j, kind in enumerate(DAY_KINDS):
            shift = np.zeros(24, dtype=np.int64)
            for h in range(24):
                u, d = high[k, j, h], norms.days[k, j, h]
                if d < min_days or math.isnan(u):
                    if d and d < min_days:
                        thin.append(iid)
                    continue
                shift[h] = max(0, math.ceil(u) + 1 - first_tier)
            h = 0
            while h < 24:                                       # runs of equal, non-zero shift
                s = int(shift[h])
                e = h + 1
                while e < 24 and shift[e] == s:
                    e += 1
                if s > 0:
                    cal: dict[str, Any] = {"weekdays": list(_WEEKDAYS[:5] if j == 0 else _WEEKDAYS[5:]),
                                           "hours": [_hours(h, e)]}
                    if j == 1 and hol:
                        cal["dates"] = [d.isoformat() for d in hol]
                    tiers = {t.name: _tier_spec(t.threshold + s, t.recover + s) for t in rule.tiers}
                    mine.append({"name": f"{PREFIX}{kind}-{h:02d}-{e:02d}", "calendar": cal,
                                 "tiers": {n: tiers[n] for n in TIERS if n in tiers}, "_kind": kind,
                                 "_hours": (h, e), "_shift": s})
                h = e
        # rest-day profiles first: a holiday on a weekday is a rest day
        mine.sort(key=lambda p: (p["_kind"] != "restday", p["_hours"]))
        ov = over.get(iid) or {}
        others = [p for p in (ov.get("profiles") if "profiles" in ov else _shipped_profiles(rule)) or []
                  if not str(p.get("name", "")).startswith(PREFIX)]
        if not mine:
            if any(str(p.get("name", "")).startswith(PREFIX) for p in ov.get("profiles") or []):
                over[iid] = {**ov, "profiles": others}             # an earlier run's profiles no longer hold
            kept.append(iid)
            continue
        changed[iid] = [{"name": p["name"], "kind": p["_kind"], "hours": _hours(*p["_hours"]), "shift": p["_shift"],
                         "tiers": p["tiers"]} for p in mine]
        clean = [{k2: v for k2, v in p.items() if not k2.startswith("_")} for p in mine]
        over[iid] = {**ov, "profiles": others + clean}
    if not over:
        doc.pop("override", None)
    return Proposal(doc, changed, kept, sorted(set(thin)), excluded)


def _shipped_profiles(rule) -> list[dict[str, Any]]:
    """A rule's profiles in force when the saved document has none of its own (the shipped ones):
    as document entries, so that saving ``profiles`` (which replaces the list) keeps them."""
    out = []
    for p in rule.profiles:
        cal: dict[str, Any] = {}
        if p.calendar.dates:
            cal["dates"] = sorted(d.isoformat() for d in p.calendar.dates)
        if p.calendar.weekdays:
            cal["weekdays"] = [_WEEKDAYS[i] for i in sorted(p.calendar.weekdays)]
        if p.calendar.minutes:
            cal["hours"] = [f"{a // 60:02d}:{a % 60:02d}-{b // 60:02d}:{b % 60:02d}" for a, b in p.calendar.minutes]
        out.append({"name": p.name, "calendar": cal,
                    "tiers": {t.name: _tier_spec(t.threshold, t.recover) for t in p.tiers}})
    return out


def _copy(x: Any) -> Any:
    if isinstance(x, Mapping):
        return {k: _copy(v) for k, v in x.items()}
    if isinstance(x, list):
        return [_copy(v) for v in x]
    return x


# --------------------------------------------------------------------------- sources
def family_ids(catalog, families: Sequence[str]) -> list[str]:
    """The indicator ids of ``families`` (exact family ids), in catalog order."""
    want = set(families)
    fam = {f.id for f in catalog.families}
    unknown = sorted(want - fam)
    if unknown:
        raise KeyError(f"unknown indicator family {', '.join(unknown)} (the families are in "
                       "data/catalog/families.toml, e.g. video.events)")
    return [i.text for i in catalog.indicators if i.family.id in want]


def recording_ticks(directory: str | Path, catalog, families: Sequence[str], *,
                    every: timedelta = timedelta(minutes=5), progress=None):
    """The engine's ticks over a recording (``scenic-twin simulate``), fed only the feeds the
    families read - the other indicators are not learnt, their feeds cost nothing here - and
    evaluated every ``every`` of event time only (the states still take every event)."""
    import logging

    import pyarrow as pa

    from indicators.engine import Engine
    from indicators.engine.kernels import to_ms
    from indicators.engine.replay import read_batches
    from indicators.feeds.schemas import SCHEMAS

    kinds = {s for f in catalog.families if f.id in set(families) for s in f.source}
    step = int(every / timedelta(milliseconds=1))
    eng = Engine(catalog, tick=timedelta(minutes=1), allowed_lateness=timedelta(minutes=2))
    want = lambda T: T % step == 0                      # noqa: E731
    far = datetime(2200, 1, 1, tzinfo=timezone.utc)
    newest = None
    batches = 0
    for kind, payload in read_batches(directory):
        if kind not in kinds or kind not in SCHEMAS:
            continue
        table = payload if isinstance(payload, pa.Table) else pa.Table.from_batches([payload])
        if table.num_rows == 0:
            continue
        try:
            eng.ingest(kind, table)
            m = int(to_ms(table.column("event_time").drop_null()).max())
        except (ValueError, pa.ArrowException) as e:         # a batch the engine cannot read: said, skipped
            logging.getLogger(__name__).warning("skipping a %s batch of %s: %s", kind, directory, e)
            continue
        newest = m if newest is None else max(newest, m)
        batches += 1
        if progress is not None and batches % 200 == 0:
            progress(_EPOCH + timedelta(milliseconds=newest))
        yield from eng.ticks(far, want)
    if newest is not None:
        end = _EPOCH + timedelta(milliseconds=newest)
        eng.heartbeat(end + timedelta(minutes=2))
        yield from eng.ticks(end, want)


__all__ = ["DAY_KINDS", "DEFAULT_FAMILIES", "Norms", "Proposal", "day_kind", "family_ids", "learn", "learnable",
           "propose", "recording_ticks"]
