"""Engine ticks -> alert runtime: the one wiring the live service and the replay share.

    feed records ──offer()──> pending rows (staff, warnings, video, gates, cases)
    engine ticks ──on_tick()─> every ``cadence.every`` of event time, after
                               ``cadence.warmup``: values + pending rows
                               -> AlertRuntime.on_tick -> store, messages

What lives here and nowhere else:

* the rule defaults (the catalog's thresholds as alert rules) and which
  threshold version applies (the store's latest, or a document given for a
  backtest), layered over the shipped thresholds document
  (``data/alerts/thresholds.toml``: the Golden Week calendar and profiles,
  :mod:`indicators.alerts.baseline`);
* the evaluation cadence (15 s of event time) and the warm-up (15 min of
  event time after the first tick, so that slow feeds - hydrants and bins
  report every 15 minutes - have reported once before anything is judged);
* which feed rows the runtime can read (required fields present), and the
  guard that retries an evaluation without the feed rows when they make it
  fail, so bad input never stops alerting;
* the indicator ids the forecast watches, built with the catalog's id
  functions.

The live service (:mod:`indicators.service`) calls :meth:`Pipeline.offer` for
every accepted batch and :meth:`Pipeline.on_tick` for every engine tick; the
replay (:mod:`indicators.replay_alerts`) does exactly the same over a
recording, so both decide the same alerts for the same events.
"""
from __future__ import annotations

import logging
import math
import threading
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Callable, Iterator, Mapping

import pyarrow as pa
import pyarrow.compute as pc

from indicators.catalog.ids import NOW, IndicatorId, format as format_id

log = logging.getLogger(__name__)

_MISSING: Any = object()

# rows the runtime reads from each feed it uses, and the fields each row must have
REQUIRED_FIELDS: dict[str, tuple[str, ...]] = {
    "staff": ("staff_id", "event_time"),
    "warning": ("signal", "colour", "status", "event_time"),
    "video": ("event_id", "event_time", "camera_id", "algorithm", "confidence"),
    "gate": ("zone_id", "event_time"),
    "case": ("case_id", "event_time"),
}


def zone_indicator(family: str, zone: str) -> str:
    """The id of a zone's latest-state indicator, e.g. ``crowd.load_rate:zone=west_plaza@now``."""
    return format_id(IndicatorId.of(family, {"zone": zone}, NOW))


def rule_defaults(catalog) -> Iterator[Any]:
    """The catalog's default thresholds as alert-rule defaults."""
    from indicators.alerts.rules import RuleDefaults
    from indicators.snapshot import EVENT_DRIVEN
    for ind in catalog.indicators:
        f, th = ind.family, ind.thresholds
        tiers = {t: v for t, v in zip(("blue", "yellow", "orange", "red"), th.tiers()) if v is not None}
        # a family of an event-driven feed (warnings, cases, AI video) has no value until something
        # happens - no warning yet, nothing of a category closed today: that silence is normal, not
        # an alert state for the console
        yield RuleDefaults(ind.text, th.direction, tiers, f.freshness_s, f.id, dict(ind.scope),
                           f.name_zh, f.name_en, f.unit, nodata="ok" if f.feed in EVENT_DRIVEN else "nodata")


def usable_rows(kind: str, table: pa.Table) -> pa.Table | None:
    """The rows of ``table`` the alert runtime can read (required fields present), or None."""
    need = REQUIRED_FIELDS.get(kind)
    if need is None or table.num_rows == 0:
        return None
    if any(f not in table.schema.names for f in need):
        return None
    mask = None
    for f in need:
        m = pc.is_valid(table.column(f))
        mask = m if mask is None else pc.and_(mask, m)
    if kind == "video":
        conf = table.column("confidence").cast(pa.float64())
        mask = pc.and_(mask, pc.fill_null(pc.is_finite(conf), False))
    t = table.filter(mask)
    return t if t.num_rows else None


@dataclass(frozen=True)
class Cadence:
    """When the alert rules are evaluated, in event time."""

    every: timedelta = timedelta(seconds=15)
    warmup: timedelta = timedelta(minutes=15)


class Pipeline:
    """The alert side of the pipeline over one engine's ticks.

    ``store``: the alert store; ``clock``: time of user actions (event time in
    a replay, the service's clock live); ``notifier``: receives messages.
    ``thresholds``: an overrides document to use instead of the store's latest
    threshold version (a backtest or a what-if replay).  Either is layered
    over ``baseline`` (default: the shipped ``data/alerts/thresholds.toml``).
    """

    def __init__(self, catalog, inventory, store, clock: Callable[[], datetime], notifier, *,
                 cadence: Cadence = Cadence(), thresholds: Mapping[str, Any] | None = _MISSING,
                 baseline=None, reject: Callable[[list], Any] | None = None):
        from twin_assets import inventory as inv

        from indicators.alerts import routing
        from indicators.alerts.baseline import effective, load_baseline
        from indicators.alerts.rules import build_rules
        from indicators.alerts.runtime import AlertRuntime, ForecastSetup, load_config

        self.catalog = catalog
        self.store = store
        self.cadence = cadence
        self.ids: list[str] = list(catalog.ids)
        self.defaults = list(rule_defaults(catalog))
        self.places = routing.places_from_inventory(inventory, inv.frame())
        self.zones: list[str] = list(self.places.zones)
        self.config = load_config(zones=self.zones)
        if thresholds is _MISSING:
            doc = store.threshold_version()
            self.thresholds_version = doc.version if doc else None
            thresholds = doc.content if doc else None
        else:
            self.thresholds_version = None
        self.baseline = load_baseline() if baseline is None else baseline
        self.rules = build_rules(self.defaults, effective(thresholds, self.baseline))
        self.runtime = AlertRuntime(
            store, self.rules, self.config.compound, self.config.plans, clock, notifier,
            cases=self.config.cases, places=self.places,
            forecast=ForecastSetup(self.zones, [zone_indicator("crowd.load_rate", z) for z in self.zones]))
        self._lock = threading.Lock()
        self._pending: dict[str, list[pa.Table]] = {}
        self.first_tick: datetime | None = None
        self.last_eval: datetime | None = None
        self.evaluations = 0
        self.errors = 0
        self.unusable_rows = 0
        self.reject = reject
        """Receives the feed records an evaluation failed on (``BadRecord``, code
        ``evaluation_error``): the service's dead-letter store.  Without one they are logged."""
        self.set_aside = 0

    # ------------------------------------------------------------------ input
    def offer(self, kind: str, table: pa.Table) -> None:
        """Keep the rows of an accepted batch that the runtime reads, for the next evaluation."""
        if kind not in REQUIRED_FIELDS:
            return
        rows = usable_rows(kind, table)
        with self._lock:
            self.unusable_rows += table.num_rows - (rows.num_rows if rows is not None else 0)
            if rows is not None:
                self._pending.setdefault(kind, []).append(rows)

    def _take_pending(self) -> dict[str, pa.Table]:
        with self._lock:
            pending, self._pending = self._pending, {}
        return {k: (v[0] if len(v) == 1 else pa.concat_tables(v, promote_options="default"))
                for k, v in pending.items() if v}

    # ------------------------------------------------------------------ ticks
    def due(self, t: datetime) -> bool:
        """Whether the tick at ``t`` is evaluated (cadence and warm-up)."""
        if self.first_tick is None:
            self.first_tick = t
        if self.last_eval is None:
            return t - self.first_tick >= self.cadence.warmup
        return t - self.last_eval >= self.cadence.every

    def values(self, tick) -> dict[str, tuple[float | None, str]]:
        """indicator id -> (value or None, quality name) of an engine tick."""
        from indicators.engine.plan import QUALITY_NAMES
        return {i: (None if math.isnan(v) else float(v), QUALITY_NAMES[q])
                for i, v, q in zip(self.ids, tick.values.tolist(), tick.quality.tolist())}

    def on_tick(self, tick, *, force: bool = False):
        """Evaluate the rules on this tick if it is due (or ``force``); returns
        the runtime's result, or None when the tick was not evaluated."""
        if not (self.due(tick.time) or (force and self.first_tick is not None
                                         and tick.time - self.first_tick >= self.cadence.warmup)):
            return None
        values = self.values(tick)
        events = self._take_pending()
        try:
            res = self.runtime.on_tick(tick.time, values, events)
        except Exception:                       # feed records it cannot read must not stop alerting
            if not events:
                raise
            log.exception("alert evaluation at %s failed; looking for the feed records it could not read",
                          tick.time)
            self.errors += 1
            res = self._without_unreadable(tick.time, values, events)
        self.last_eval = tick.time
        if not res.skipped:
            self.evaluations += 1
        return res

    def _without_unreadable(self, t: datetime, values, events: dict[str, pa.Table]):
        """After a failed evaluation: find the records it failed on (rehearsals on halves of each
        kind's rows, which commit nothing), set them aside with the reason, and evaluate with the
        rest.  If that still fails, every record of the tick is set aside and the thresholds are
        evaluated alone.  Nothing is dropped in silence: the records go to ``reject``."""
        bad: list[tuple[str, pa.Table, str]] = []
        good: dict[str, pa.Table] = {}
        for kind, table in events.items():
            rows = self._unreadable(t, values, kind, table)
            if rows:
                bad += [(kind, table.slice(i, 1), why) for i, why in rows]
                skip = {i for i, _ in rows}
                table = table.take([i for i in range(table.num_rows) if i not in skip])
            if table.num_rows:
                good[kind] = table
        try:
            res = self.runtime.on_tick(t, values, good)
        except Exception as exc:
            log.exception("alert evaluation at %s failed without the records it could not read too; "
                          "evaluated without any feed record", t)
            why = f"the alert evaluation failed with this tick's records: {type(exc).__name__}: {exc}"
            bad += [(k, tb.slice(i, 1), why) for k, tb in good.items() for i in range(tb.num_rows)]
            res = self.runtime.on_tick(t, values, {})
        self._set_aside(bad, t)
        return res

    def _unreadable(self, t: datetime, values, kind: str, table: pa.Table, at: int = 0) -> list[tuple[int, str]]:
        """(row, reason) of the rows of ``table`` an evaluation fails on, by halving."""
        err = self.runtime.rehearse(t, values, {kind: table})
        if err is None:
            return []
        if table.num_rows == 1:
            return [(at, f"the alert evaluation failed on this record: {type(err).__name__}: {err}")]
        h = table.num_rows // 2
        return (self._unreadable(t, values, kind, table.slice(0, h), at)
                + self._unreadable(t, values, kind, table.slice(h), at + h))

    def _set_aside(self, bad: list[tuple[str, pa.Table, str]], t: datetime) -> None:
        from indicators.feeds.validate import EVALUATION_ERROR, BadRecord, to_raw
        if not bad:
            return
        self.set_aside += len(bad)
        records = []
        for k, row, why in bad:
            rec = row.to_pylist()[0]
            log.error("%s record %s set aside: %s", k, rec.get("event_id"), why)
            records.append(BadRecord(kind=k, raw=to_raw(rec), reason=why, index=0, code=EVALUATION_ERROR,
                                     where=f"alert evaluation at {t.isoformat()}"))
        if self.reject is not None:
            self.reject(records)

    # ------------------------------------------------------------------ thresholds
    def use_thresholds(self, doc: Mapping[str, Any] | None, version: int | None) -> None:
        """Apply an overrides document (already validated, layered over the
        baseline) from the next evaluation on."""
        from indicators.alerts.baseline import effective
        from indicators.alerts.rules import build_rules
        rules = build_rules(self.defaults, effective(doc, self.baseline))
        self.rules = rules
        self.thresholds_version = version
        self.runtime.set_rules(rules)

    def reload_thresholds(self) -> int | None:
        """Use the store's latest threshold version if it is newer; returns the version in use."""
        doc = self.store.threshold_version()
        if doc is not None and doc.version != self.thresholds_version:
            self.use_thresholds(doc.content, doc.version)
        return self.thresholds_version
