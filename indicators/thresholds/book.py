"""What a supervisor reads about a threshold rule: the effective rule and where each part comes from.

A :class:`Book` knows the catalog's rule defaults (with each family's feed,
level and side) and the shipped baseline document.  Given the content of a
saved threshold version (or a proposed one) it answers

* :meth:`Book.describe` - one rule as it is in force: tiers (threshold and
  recover), direction, pending period, keep-firing, no-data and error
  policies, escalation, enabled, profiles with their calendars, and for each
  part its source: ``catalog`` (``data/catalog/families.toml``), ``shipped``
  (``data/alerts/thresholds.toml``), ``saved`` (the threshold version) or
  ``built-in`` (the rules module's default); and the rule's rationale per
  tier (cause, consequence, operator action, time to act, priority, source:
  ``data/alerts/rationale.toml``, :mod:`indicators.alerts.rationale`);
* :meth:`Book.search` - the rules matching a text, family, zone, feed, level
  or side, one line each.
"""
from __future__ import annotations

import dataclasses
import difflib
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Any, Iterable, Mapping

from indicators.alerts.baseline import Baseline, effective, load_baseline
from indicators.alerts.rules import DEFAULT_ESCALATE_AFTER_S, DEFAULT_FOR_S, RuleDefaults, build_rules

CATALOG_FILE = "data/catalog/families.toml"
SHIPPED_FILE = "data/alerts/thresholds.toml"


class UnknownRule(KeyError):
    """An id that is no threshold rule; the message suggests close ids."""

    def __str__(self) -> str:
        return str(self.args[0])


@dataclass(frozen=True)
class FamilyInfo:
    feed: str = ""
    level: str = ""
    side: str = ""
    scope: str = ""


@dataclass
class Book:
    """The catalog defaults (by indicator id), family facts and the baseline."""

    defaults: dict[str, RuleDefaults]
    families: dict[str, FamilyInfo] = field(default_factory=dict)
    baseline: Baseline = field(default_factory=load_baseline)
    classes: Mapping[str, Any] = field(default_factory=dict)     # facility classes (operating schedules)
    rationale: Any = None                                        # a Rationale; None: the shipped one

    @classmethod
    def from_catalog(cls, catalog=None, inventory=None, baseline: Baseline | None = None) -> "Book":
        from indicators.catalog import load_catalog
        from indicators.pipeline import rule_defaults
        catalog = load_catalog(inventory=inventory) if catalog is None else catalog
        fams = {f.id: FamilyInfo(f.feed, f.level, f.side, f.scope) for f in catalog.families}
        return cls({d.indicator_id: d for d in rule_defaults(catalog)}, fams,
                   load_baseline() if baseline is None else baseline, dict(getattr(catalog.file, "classes", {})))

    # ------------------------------------------------------------------ ids
    def resolve(self, rid: str) -> str:
        """The indicator id ``rid`` names (exact, or the only id that starts with
        it); raises :class:`UnknownRule` with suggestions otherwise."""
        if rid in self.defaults:
            return rid
        starts = [i for i in self.defaults if i.startswith(rid)]
        if len(starts) == 1:
            return starts[0]
        near = starts[:8] or difflib.get_close_matches(rid, list(self.defaults), n=5, cutoff=0.6)
        hint = f"; did you mean {', '.join(near)}?" if near else ""
        raise UnknownRule(f"unknown indicator {rid!r}: no threshold rule has this id{hint} "
                          "(`scenic-twin thresholds show --search TEXT` lists the ids)")

    def effective(self, doc: Mapping[str, Any] | None) -> dict[str, Any]:
        return effective(doc, self.baseline)

    def rules(self, doc: Mapping[str, Any] | None):
        return build_rules(self.defaults, self.effective(doc))

    # ------------------------------------------------------------------ describe
    def describe(self, rid: str, doc: Mapping[str, Any] | None = None, *, version: int | None = None,
                 rules=None) -> dict[str, Any]:
        """The rule of indicator ``rid`` in force under the saved document ``doc``
        (see the module docstring); ``version`` labels the saved parts."""
        rid = self.resolve(rid)
        d = self.defaults[rid]
        rule = (rules or self.rules(doc))[rid]
        saved = ((doc or {}).get("override") or {}).get(rid) or {}
        shipped = (self.baseline.doc.get("override") or {}).get(rid) or {}
        eff = (self.effective(doc).get("override") or {}).get(rid) or {}
        catalog = f"catalog ({CATALOG_FILE}, family {d.family})"
        saved_label = f"saved (threshold version {version})" if version else "saved"

        def src(*path: str, fallback: str = "built-in") -> str:
            if _has(saved, path):
                return saved_label
            if _has(shipped, path):
                return f"shipped ({SHIPPED_FILE})"
            return catalog if fallback == "catalog" else "built-in"

        tiers = {t.name: {"threshold": t.threshold, "recover": t.recover,
                          "source": src("tiers", t.name, fallback="catalog")} for t in rule.tiers}
        profiles = []
        for spec, p in zip(eff.get("profiles") or [], rule.profiles):
            cal = spec.get("calendar")
            profiles.append({
                "name": p.name, "source": src("profiles"),
                "calendar": self._calendar(cal, doc),
                "tiers": {t.name: {"threshold": t.threshold, "recover": t.recover} for t in p.tiers}})
        fam = self.families.get(d.family, FamilyInfo())
        return {
            "id": rule.id, "indicator_id": rule.indicator_id, "name_zh": d.name_zh, "name_en": d.name_en,
            "unit": d.unit, "family": d.family, "labels": dict(d.labels), "feed": fam.feed, "level": fam.level,
            "side": fam.side, "version": version,
            "direction": {"value": rule.direction, "source": src("direction", fallback="catalog")},
            "enabled": {"value": rule.enabled, "source": src("enabled")},
            "tiers": tiers,
            "pending": {"seconds": rule.pending_s, "source": src("for"),
                        "default_s": DEFAULT_FOR_S},
            "keep_firing": {"seconds": rule.keep_firing_s, "source": src("keep_firing_for")},
            # an event-driven family's "ok" comes from the catalog (its feed), the others' "nodata" is built in
            "nodata": {"value": rule.nodata, "source": src("nodata", fallback="catalog" if d.nodata != "nodata"
                                                            else "built-in")},
            "error": {"value": rule.error, "source": src("error")},
            "escalate_after": {"seconds": dict(rule.escalate_after_s), "source": src("escalate_after"),
                               "default_s": dict(DEFAULT_ESCALATE_AFTER_S)},
            "freshness_s": rule.freshness_s,
            "profiles": profiles,
            "schedule": self._schedule(d),
            "catalog_default": {"direction": d.direction, "tiers": dict(d.tiers)},
            "rationale": self._rationale(rule.id, [t.name for t in rule.tiers]),
        }

    def _rationale(self, rule_id: str, tiers: list[str]) -> dict[str, Any] | None:
        """What each tier of the rule means and how urgent it is (None: the
        rationale file has no entry for it)."""
        from indicators.alerts.rationale import default_rationale, describe_rule
        return describe_rule(rule_id, tiers, self.rationale or default_rationale())

    def _schedule(self, d: RuleDefaults) -> dict[str, Any] | None:
        """When the assets behind a facility-class indicator are expected to work
        (outside it their values are ``idle`` and the rule holds its state);
        None: not a class indicator.  ``hours`` None: always expected."""
        name = d.labels.get("class")
        cls = self.classes.get(name) if name else None
        if cls is None:
            return None
        zone = d.labels.get("zone")
        sched = cls.schedule_for(zone)
        where = f"catalog ({CATALOG_FILE}, classes.{name}" + (f".zone_schedule.{zone})" if zone in cls.zone_schedule
                                                               else ")")
        return {"class": name, "hours": None if sched is None else dataclasses.asdict(sched), "source": where}

    def _calendar(self, cal: Any, doc: Mapping[str, Any] | None) -> dict[str, Any]:
        if not isinstance(cal, str):
            return {"name": None, **(cal or {}), "source": "inline"}
        saved = ((doc or {}).get("calendars") or {}).get(cal)
        spec = self.effective(doc).get("calendars", {}).get(cal, {})
        where = "saved" if saved is not None else f"shipped ({SHIPPED_FILE})"
        note = (self.baseline.sources.get("calendars") or {}).get(cal) if saved is None else None
        return {"name": cal, **spec, "source": where, "note": note}

    # ------------------------------------------------------------------ search
    def search(self, doc: Mapping[str, Any] | None = None, *, text: str | None = None,
               family: str | None = None, zone: str | None = None, feed: str | None = None,
               level: str | None = None, side: str | None = None, limit: int | None = None
               ) -> list[dict[str, Any]]:
        """One line per matching rule: id, names, family, labels, direction,
        tiers, pending, profiles and whether anything overrides the catalog."""
        rules = self.rules(doc)
        eff = self.effective(doc).get("override") or {}
        needle = (text or "").casefold()
        out = []
        for iid, d in self.defaults.items():
            fam = self.families.get(d.family, FamilyInfo())
            if family and not (d.family == family or d.family.startswith(family.rstrip("*").rstrip(".") + ".")):
                continue
            if zone and d.labels.get("zone") != zone:
                continue
            if (feed and fam.feed != feed) or (level and fam.level != level) or (side and fam.side != side):
                continue
            if needle and not any(needle in s.casefold() for s in (iid, d.name_zh, d.name_en, d.family)):
                continue
            r = rules[iid]
            out.append({"id": iid, "name_zh": d.name_zh, "name_en": d.name_en, "unit": d.unit,
                        "family": d.family, "labels": dict(d.labels), "feed": fam.feed, "level": fam.level,
                        "side": fam.side, "direction": r.direction, "enabled": r.enabled,
                        "tiers": {t.name: t.threshold for t in r.tiers}, "pending_s": r.pending_s,
                        "profiles": [p.name for p in r.profiles], "overridden": iid in eff})
            if limit and len(out) >= limit:
                break
        return out


def _has(node: Mapping[str, Any], path: Iterable[str]) -> bool:
    for k in path:
        if not isinstance(node, Mapping) or k not in node:
            return False
        node = node[k]
    return True


@lru_cache(maxsize=1)
def default_book() -> Book:
    """The book of the committed catalog and inventory (loaded once)."""
    return Book.from_catalog()


__all__ = ["Book", "CATALOG_FILE", "FamilyInfo", "SHIPPED_FILE", "UnknownRule", "default_book"]
