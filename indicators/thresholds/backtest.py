"""Backtest: what the current and the proposed thresholds would have raised over the same history.

Both rule sets run through :class:`indicators.pipeline.Pipeline` - the
object the live service and ``replay --alerts`` drive - each with its own
in-memory alert store, on the SAME ticks, and their alert events are counted
by the replay's own :class:`indicators.replay_alerts.Collector`.  So the
numbers of a side are the numbers :func:`indicators.replay_alerts.replay_alerts`
reports for that rule set over the same history.

Two kinds of history:

* a **recording** (a directory written by ``scenic-twin simulate``): the
  engine runs ONCE (:func:`indicators.replay_alerts.drive`) and each tick and
  each feed batch goes to both pipelines, so compound rules, plans and the
  forecast are compared too.  The engine is the cost: about a minute of CPU
  per recorded hour on this machine.
* a **tick history** (the service's ``history/`` folder of hourly Parquet
  parts, :class:`indicators.engine.history.History`): the stored values are
  handed to both pipelines as ticks, no engine at all - seconds for hours of
  history.  Feed records are not in it, so only the threshold alerts are
  meaningful (compound rules that need warnings or video, and the forecast,
  see nothing).

``days``: only the last N days are judged.  For a recording the engine
still runs from its start (its windows need the lead-in) and evaluation
starts N days before the last event (the pipeline's warm-up; a replay with
``warmup=result["warmup_s"]`` gives the same numbers); for a tick history
only the ticks of those days are read.
"""
from __future__ import annotations

import itertools
import math
import time
from collections import Counter
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any, Iterator, Mapping, Sequence

import numpy as np

from indicators.alerts import RANK
from indicators.replay_alerts import Collector, drive, feed_ticks, force_last

_EPOCH = datetime(1970, 1, 1, tzinfo=timezone.utc)
SERIES_POINTS = 2000
"""At most this many (time, value) points of each focus indicator are returned (for a plot)."""


def _iso(t: datetime | None) -> str | None:
    return None if t is None else t.astimezone(timezone.utc).isoformat().replace("+00:00", "Z")


class _Quiet:
    """A notifier that drops messages (a backtest pages nobody)."""

    def send(self, message) -> None:
        pass


# --------------------------------------------------------------------------- tick history
class _Tick:
    """One stored tick, shaped like an engine tick for :meth:`Pipeline.on_tick`."""

    __slots__ = ("time_ms", "values", "quality")

    def __init__(self, time_ms: int, values: np.ndarray, quality: np.ndarray):
        self.time_ms, self.values, self.quality = time_ms, values, quality

    @property
    def time(self) -> datetime:
        return _EPOCH + timedelta(milliseconds=self.time_ms)


def _parts(root: Path) -> list[tuple[int, int, Path]]:
    from indicators.engine.history import parts
    return parts(root)


def history_ticks(root: str | Path, ids: Sequence[str], start_ms: int | None = None) -> Iterator[_Tick]:
    """The ticks stored under ``root`` from ``start_ms`` on, in time order, with
    values and quality codes in the order of ``ids`` (an id the history does
    not hold is no data)."""
    from indicators.engine.history import part_slices
    from indicators.engine.plan import QUALITY_NAMES
    pos = {i: k for k, i in enumerate(ids)}
    no_data = QUALITY_NAMES.index("no_data")
    n = len(ids)
    # the running service compacts minutes into hours and hours into days while this reads: a part
    # listed here may be gone when its turn comes; then list again and go on after the last tick given
    lo = start_ms
    replaced = 0
    while True:
        for first, last, f in _parts(Path(root)):
            if lo is not None and last < lo:
                continue
            # an hour of ticks at a time: a merged day of every indicator is ~1 GB as one matrix
            slices = part_slices(f, pos, n, no_data, start_ms=lo, ticks_per_slice=3600)
            try:
                head = next(slices)            # the part's rows are all read here, before the first slice
            except StopIteration:
                continue
            except FileNotFoundError:
                replaced += 1
                if replaced > 20:
                    raise
                break
            for times, values, quality in itertools.chain([head], slices):
                for k, tm in enumerate(times.tolist()):
                    yield _Tick(tm, values[k], quality[k])
                if len(times):
                    lo = int(times[-1]) + 1
        else:
            return


def _history_end(root: Path) -> int | None:
    parts = _parts(root)
    return max(p[1] for p in parts) if parts else None


# --------------------------------------------------------------------------- one side
class _Side:
    """One rule set: a pipeline on a fresh in-memory store, its collector and
    the focus indicators' values at each evaluation."""

    def __init__(self, name: str, doc, catalog, inventory, clock, cadence, baseline, focus: Sequence[str],
                 only: Sequence[str] | None = None):
        from indicators.alerts.store import AlertStore
        from indicators.pipeline import Pipeline
        self.name = name
        self.store = AlertStore.open(":memory:")
        self.pipe = Pipeline(catalog, inventory, self.store, clock, _Quiet(), cadence=cadence,
                             thresholds=doc, baseline=baseline)
        ids = list(self.pipe.ids)
        self.focus = [(rid, ids.index(self.pipe.rules[rid].indicator_id)) for rid in focus]
        self.series: dict[str, list] = {rid: [] for rid in focus}
        self.keep: np.ndarray | None = None
        if only is not None:                   # threshold rules are independent: the others need not run
            subset = {rid: self.pipe.rules[rid] for rid in only}
            self.pipe.rules = subset
            self.pipe.runtime.set_rules(subset)
            # ... nor need the other indicators' values be handed over
            self.keep = np.array(sorted({ids.index(r.indicator_id) for r in subset.values()}), np.int64)
            self.pipe.ids = [ids[k] for k in self.keep]
        self.col = Collector()

    def add(self, res) -> None:
        self.col.add(res, self.pipe.runtime)

    def summary(self) -> dict[str, Any]:
        c = self.col
        per_rule: dict[str, dict[str, Any]] = {}
        # an alert raised = a "firing" event (as the replay's new_by_tier counts them); its tier is the
        # highest it reached (tier_up, refiring) before that alert fired anew
        raised: list[list[str]] = []                         # [rule, highest tier]
        current: dict[str, list[str]] = {}                   # alert id -> its latest raised entry
        for f in c.fired:
            r = per_rule.setdefault(f["rule_id"], {"alerts": 0, "fired_by_tier": Counter(),
                                                   "by_max_tier": Counter()})
            tier = f["tier"] or "none"
            r["fired_by_tier"][tier] += 1
            if f["kind"] == "firing":
                r["alerts"] += 1
                current[f["alert_id"]] = entry = [f["rule_id"], tier]
                raised.append(entry)
            elif f["alert_id"] in current and RANK.get(tier, 0) > RANK.get(current[f["alert_id"]][1], 0):
                current[f["alert_id"]][1] = tier
        for rule_id, tier in raised:
            per_rule[rule_id]["by_max_tier"][tier] += 1
        groups = {g: {"fired_by_tier": dict(c.by_tier[g]), "new_by_tier": dict(c.new_alerts[g])} for g in c.by_tier}
        threshold = [r for rid, r in per_rule.items() if not rid.startswith(("compound:", "forecast:"))]
        by_max: Counter = Counter()
        for r in threshold:
            by_max.update(r["by_max_tier"])
        return {
            "alerts": sum(r["alerts"] for r in threshold),
            "by_max_tier": dict(by_max),
            **groups,
            "plans": c.plans,
            "per_rule": {rid: {"alerts": r["alerts"], "fired_by_tier": dict(r["fired_by_tier"]),
                               "by_max_tier": dict(r["by_max_tier"])} for rid, r in sorted(per_rule.items())},
            "evaluations": self.pipe.evaluations,
        }


class _Tap:
    """Sits in front of a side's pipeline for the driver: records the focus
    indicators' values at each evaluation."""

    def __init__(self, side: _Side):
        self.side = side

    @property
    def last_eval(self):
        return self.side.pipe.last_eval

    def offer(self, kind, table) -> None:
        self.side.pipe.offer(kind, table)

    def on_tick(self, tick, *, force: bool = False):
        keep = self.side.keep
        res = self.side.pipe.on_tick(tick if keep is None else _Tick(tick.time_ms, tick.values[keep],
                                                                     tick.quality[keep]), force=force)
        if res is not None and not res.skipped:
            for rid, k in self.side.focus:
                v = float(tick.values[k])
                self.side.series[rid].append((tick.time_ms, None if math.isnan(v) else v))
        return res


# --------------------------------------------------------------------------- backtest
def source_kind(path: str | Path) -> str:
    """``recording`` or ``history`` (or FileNotFoundError)."""
    p = Path(path)
    if p.is_dir() and (any(p.glob("date=*/hour=*")) or any(p.glob("date=*/day")) or p.name == "history"):
        return "history"
    if p.is_dir() and ((p / "manifest.json").exists() or any(p.glob("*.parquet"))):
        return "recording"
    raise FileNotFoundError(f"no recording or tick history at {p} (a folder written by `scenic-twin simulate`, "
                            "or the service's history/ folder)")


def backtest(source: str | Path, current: Mapping[str, Any] | None, proposed: Mapping[str, Any] | None, *,
             focus: Sequence[str] = (), days: float | None = None, catalog=None, inventory=None,
             alerts_every: timedelta = timedelta(seconds=15), warmup: timedelta = timedelta(0),
             tick: timedelta = timedelta(seconds=1), lateness: timedelta | None = None,
             only: Sequence[str] | None = None, baseline=None, progress: bool = False) -> dict[str, Any]:
    """Alerts the saved documents ``current`` and ``proposed`` (each layered over
    the shipped baseline, like the service does) would have raised over the
    recording or tick history at ``source``.

    Per side: ``alerts`` (new threshold alerts), ``by_max_tier`` (those alerts
    by the highest tier they reached), ``threshold`` / ``compound`` /
    ``forecast`` with ``fired_by_tier`` and ``new_by_tier`` exactly as
    ``replay_alerts`` counts them, ``per_rule`` and ``plans``.  ``focus``:
    rule ids whose values at each evaluation are returned (``series``, for a
    plot).  ``only``: evaluate just these threshold rules on both sides - a
    threshold rule's alerts depend on its own values only, so its numbers are
    exact, while totals, compound rules and the forecast then see only these
    rules and their indicators (the fast way to try one rule over days of
    tick history).  Also
    ``engine_runs`` (1 for a recording, 0 for a tick history), the window,
    the warm-up used and the elapsed seconds."""
    from twin_assets import inventory as inv

    from indicators.alerts.baseline import load_baseline
    from indicators.catalog import load_catalog
    from indicators.pipeline import Cadence

    t0 = time.perf_counter()
    kind = source_kind(source)
    src = Path(source)
    inventory = inv.load() if inventory is None else inventory
    catalog = load_catalog(inventory=inventory) if catalog is None else catalog
    baseline = load_baseline() if baseline is None else baseline
    now = {"t": _EPOCH}
    clock = lambda: now["t"]                                        # noqa: E731 - event time of the tick
    counters: Counter = Counter()
    state: dict[str, Any] = {"ticks": 0, "first": None, "last": None}

    if kind == "recording":
        from indicators.engine import DEFAULT_LATENESS, Engine
        from indicators.engine.replay import Progress, recording_span
        lo, hi = recording_span(src)
        start = None if lo is None else _EPOCH + timedelta(milliseconds=lo - 1)
        if days is not None and lo is not None and hi is not None:
            judged = _EPOCH + timedelta(milliseconds=hi) - timedelta(days=days)
            warmup = max(warmup, judged - start)
        now["t"] = start or _EPOCH
        cadence = Cadence(every=alerts_every, warmup=warmup)
        sides = [_Side(n, d, catalog, inventory, clock, cadence, baseline, focus, only)
                 for n, d in (("current", current), ("proposed", proposed))]
        engine = Engine(catalog, inventory, tick=tick, allowed_lateness=lateness or DEFAULT_LATENESS, start=start)
        bar = Progress(lo, hi, enabled=progress)
        state = drive(src, engine, [_Tap(s) for s in sides], now, lambda i, res: sides[i].add(res), counters, bar)
        engine_runs = 1
    else:
        end = _history_end(src)
        start_ms = None if days is None or end is None else end - int(days * 86_400_000)
        cadence = Cadence(every=alerts_every, warmup=warmup)
        sides = [_Side(n, d, catalog, inventory, clock, cadence, baseline, focus, only)
                 for n, d in (("current", current), ("proposed", proposed))]
        taps = [_Tap(s) for s in sides]
        final = None

        def ticks():
            nonlocal final
            for t in history_ticks(src, catalog.ids, start_ms):
                final = t
                yield t
        feed_ticks(ticks(), taps, now, lambda i, res: sides[i].add(res), state)
        if final is not None:
            force_last(final, taps, now, lambda i, res: sides[i].add(res))
        engine_runs = 0

    out = {
        "source": str(src), "kind": kind, "engine_runs": engine_runs, "ticks": state["ticks"],
        "only": None if only is None else list(only),
        "first_tick": _iso(state["first"]), "last_tick": _iso(state["last"]), "days": days,
        "warmup_s": warmup.total_seconds(), "alerts_every_s": alerts_every.total_seconds(),
        "evaluations": sides[0].pipe.evaluations,
        "current": sides[0].summary(), "proposed": sides[1].summary(),
        "series": {rid: _thin([(_iso(_EPOCH + timedelta(milliseconds=ms)), v) for ms, v in sides[0].series[rid]])
                   for rid in focus},
        "malformed_skipped": counters["malformed"], "rejected_batches": counters["rejected_batches"],
    }
    for s in sides:
        s.store.close()
    out["elapsed_s"] = round(time.perf_counter() - t0, 3)
    return out


def _thin(points: list, limit: int = SERIES_POINTS) -> list:
    if len(points) <= limit:
        return points
    step = math.ceil(len(points) / limit)
    return points[::step]


__all__ = ["backtest", "history_ticks", "source_kind"]
