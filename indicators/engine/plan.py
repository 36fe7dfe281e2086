"""Compile the catalog into shared states and grouped evaluators.

Families that read the same input share one state: every crowd family of a
zone reads one :class:`~.state.Latest` table of zone totals; all windowed
counts and sums of one feed with the same ring length live in one stacked
:class:`~.state.Windows` ring (one ``bincount`` per tick for all of them).

Evaluation fills two arrays over all 1,373 indicators - ``raw`` (the
statistic) and ``newest`` (the time of the input it rests on) - group by
group, and a group whose input did not change since the last tick is
skipped (its slots keep their values).  Then one vectorised pass for all
indicators applies each family's ``post`` steps (the linear ones folded into
one scale factor per indicator; ``headway`` and ``bins`` as a final step)
and the quality rule:

* ``IDLE`` (value NaN) when there is nothing to judge because nothing is
  expected to work: a facility family whose assets are all outside their
  class's operating schedule (lamps by day, lifts after closing time), or
  have had no time to report since it opened;
* ``NO_DATA`` (value NaN) when there is nothing to compute from;
* else ``STALE`` when the input is older than the family's freshness limit;
* else ``OK``.

Facility families judge an asset only while it is *expected to work* (its
class's schedule, :mod:`indicators.catalog.schedule`, and no open work order:
its latest ``maintenance`` reading is not 1) and *reporting* (a reading taken
since the schedule opened and since it came back from maintenance, no older
than the class's ``silent_after_s``); the others count neither as available
nor as failed (:class:`_FacilityView`).

"The input" is the newest reading in the scope for latest-value kinds
(latest, visits_today, change, forecast), and the newest event of the feed
for event kinds (window, today, distinct, case, warning, visit_age): a
quiet hour without a fall is a real zero, as long as the video feed is
alive.
"""
from __future__ import annotations

from collections import defaultdict
from typing import Any, Callable

import numpy as np

from indicators.catalog.expand import Catalog, Indicator
from indicators.catalog.model import STAFF_STATUSES, Family
from indicators.catalog.schedule import Schedule
from indicators.feeds.schemas import FACILITY_METRICS, SCHEMAS

from .encode import CLOSED, Encoder
from .kernels import Forecaster, compare
from .state import (Block, Cases, Distinct, Extremes, Latest, Series, TickCtx, Today, VisitAge, Visits, Warnings,
                    Windows)

__all__ = ["Plan", "OK", "STALE", "NO_DATA", "IDLE", "QUALITY_NAMES", "FEED_ORDER"]

OK, STALE, NO_DATA, IDLE = 0, 1, 2, 3
QUALITY_NAMES = ("ok", "stale", "no_data", "idle")
NEVER = -1
ALWAYS_SINCE = -(1 << 62)          # the opening of the "always" schedule (far past, no overflow in T - since)
FOREVER = np.iinfo(np.int64).max
FEED_ORDER = tuple(SCHEMAS)
ENTITY_BASIS = {"latest", "visits_today", "change", "forecast"}
_FILTERS = {"total": lambda b: b["total"]}


def _where_name(where: dict | None) -> str | None:
    if not where:
        return None
    if where != {"cell_id": "null"}:
        raise AssertionError(f"unsupported filter {where!r}")      # the feed model allows only this one
    return "total"


class _Scope:
    """A family's indicators: scope rows x windows -> positions, and the codes of each row."""

    def __init__(self, fam: Family, inds: list[Indicator], plan: "Plan") -> None:
        self.fam = fam
        self.windows = list(fam.windows)
        rows: dict[tuple, int] = {}
        for ind in inds:
            rows.setdefault(ind.id.scope, len(rows))
        self.scopes = list(rows)
        self.pos = np.full((len(self.scopes), len(self.windows)), -1, dtype=np.intp)
        for ind in inds:
            self.pos[rows[ind.id.scope], self.windows.index(ind.window)] = ind.index
        self.codes = {k: np.array([plan.code(k, dict(s)[k]) for s in self.scopes], dtype=np.intp) for k in fam.keys}

    def dense_rows(self, sizes: tuple[int, ...]) -> np.ndarray:
        row = np.zeros(len(self.scopes), dtype=np.intp)
        for key, size in zip(self.fam.keys, sizes):
            if key != "area":
                row = row * size + self.codes[key]
        return row


# --------------------------------------------------------------- groups
class _Group:
    """Fills ``plan.raw`` / ``plan.newest`` at its positions; skips when nothing changed."""

    def __init__(self, plan: "Plan") -> None:
        self.plan = plan
        self.first = True

    def fill(self, ctx: TickCtx) -> None:   # each subclass fills its own positions
        raise TypeError(f"{type(self).__name__} must define fill()")


class LatestValue(_Group):
    """Entity values as they are (all families reading one column of one table)."""

    def __init__(self, plan, table: Latest, col: int) -> None:
        super().__init__(plan)
        self.table, self.col = table, col
        self.ent: list[np.ndarray] = []
        self.pos: list[np.ndarray] = []
        self.seen = -1

    def add(self, ent: np.ndarray, pos: np.ndarray) -> None:
        self.ent.append(ent)
        self.pos.append(pos)

    def seal(self) -> None:
        self.ent, self.pos = np.concatenate(self.ent), np.concatenate(self.pos)

    def fill(self, ctx):
        if self.table.version == self.seen and not self.first:
            return
        self.seen, self.first = self.table.version, False
        self.plan.raw[self.pos] = self.table.value[self.ent, self.col]
        self.plan.newest[self.pos] = self.table.time[self.ent, self.col]


class _ScopeEntities:
    """Per table version, what every aggregate over the same entity -> row map needs:
    which entities have a reading, their rows, counts and the newest time per row
    (the area-wide aggregates of weather stations and staff; facility aggregates
    use :class:`_FacilityView`)."""

    def __init__(self, table: Latest, col: int, row_of_entity: Callable[[int], np.ndarray], R: int) -> None:
        self.table, self.col, self.row_of_entity, self.R = table, col, row_of_entity, R
        self.version = -1

    def get(self):
        lt = self.table
        if lt.version != self.version:
            n = lt.n
            r = self.row_of_entity(n)
            val, tm = lt.value[:n, self.col], lt.time[:n, self.col]
            has = (r >= 0) & ~np.isnan(val)
            idx = np.flatnonzero(has)
            rr = r[idx]
            cnt = np.bincount(rr, minlength=self.R)
            newest = np.full(self.R, NEVER, dtype=np.int64)
            np.maximum.at(newest, rr, tm[idx])
            self.cached = (val[idx], idx, rr, cnt, newest)
            self.version = lt.version
        return self.cached


class LatestAgg(_Group):
    """An aggregate over the entities of each scope: sum, mean, min, max or count satisfying a test."""

    def __init__(self, plan, view: _ScopeEntities, agg: str, test, pos: np.ndarray) -> None:
        super().__init__(plan)
        self.view, self.agg, self.test, self.pos = view, agg, test, pos
        self.R = len(pos)
        self.seen = -1

    def fill(self, ctx):
        lt = self.view.table
        if lt.version == self.seen and not self.first:
            return
        self.seen, self.first = lt.version, False
        val, idx, rr, cnt, newest = self.view.get()
        R, agg = self.R, self.agg
        if agg in ("sum", "mean"):
            v = np.bincount(rr, weights=val, minlength=R)
            if agg == "mean":
                v = v / np.maximum(cnt, 1)
        elif agg in ("min", "max"):
            v = np.full(R, np.inf if agg == "min" else -np.inf)
            (np.minimum if agg == "min" else np.maximum).at(v, rr, val)
        else:
            v = np.bincount(rr, weights=self.test(val, idx), minlength=R)
        self.plan.raw[self.pos] = np.where(cnt > 0, v, np.nan)
        self.plan.newest[self.pos] = newest


class _Duty:
    """Which operating schedules are open at a tick, and since when.

    Schedule 0 is "always".  A schedule's window is computed once and reused
    while the tick stays inside it (``since <= T < until``), so the sun and
    the calendar are consulted a few times a day, not every tick.
    """

    def __init__(self, site: tuple[float, float]) -> None:
        self.lat, self.lon = site
        self.schedules: list[Schedule | None] = [None]
        self.open = np.ones(1, dtype=bool)
        self.since = np.full(1, ALWAYS_SINCE, dtype=np.int64)
        self.until = np.full(1, FOREVER, dtype=np.int64)

    def index(self, schedule: Schedule | None) -> int:
        if schedule is None:
            return 0
        if schedule not in self.schedules:
            self.schedules.append(schedule)
            self.open = np.append(self.open, False)
            self.since = np.append(self.since, FOREVER)          # outside: computed at the first tick
            self.until = np.append(self.until, FOREVER)
        return self.schedules.index(schedule)

    def at(self, T: int) -> tuple[np.ndarray, np.ndarray, int]:
        """(open per schedule, opening of the current window per schedule, next change after T)."""
        for i in np.flatnonzero((T < self.since) | (T >= self.until)):
            o, a, b = self.schedules[i].window(T, self.lat, self.lon)
            self.open[i], self.since[i], self.until[i] = o, a, b
        return self.open, self.since, int(self.until.min())


class _FacilityView:
    """Per tick, the facility entities each row (zone, class) of a family judges.

    An entity of the row is *judged* when its class's schedule is open and its
    latest reading was taken since the window opened and is no older than the
    class's ``silent_after_s``; *silent* when the schedule is open but it has
    no such reading although the window has been open that long; otherwise it
    is not expected (closed, or still waiting for its first reading).  Only
    judged entities count; a row with none is ``idle`` unless some are silent.
    ``facility.anomalies`` and ``facility.availability`` share one view.
    Recomputed when the table changes or a judged / waiting entity or a
    schedule window reaches its deadline.
    """

    def __init__(self, table: Latest, col: int, rows: np.ndarray, sched: np.ndarray, silent_ms: np.ndarray,
                 duty: _Duty, R: int, maint: np.ndarray) -> None:
        self.table, self.col, self.rows, self.sched, self.silent, self.duty, self.R = \
            table, col, rows, sched, silent_ms, duty, R
        self.maint = maint                             # entity -> its asset's maintenance entity
        self.version = -1
        self.span = (FOREVER, FOREVER)                 # [computed at, next due): the cache holds inside it
        self.stamp = 0

    def get(self, T: int):
        lt = self.table
        if lt.version == self.version and self.span[0] <= T < self.span[1]:
            return self.cached
        from .compiled import facility_judge
        n = lt.n
        dopen, dsince, dnext = self.duty.at(T)
        # one compiled pass (compiled.facility_judge) of what reads, in numpy terms: working = not
        # (maintenance reading >= 0.5); start = max(window opening, time back in service);
        # judged = row >= 0 & open & working & reading since start, at most `silent` old;
        # silent_now = the rest of those expected, open longer than `silent`; the others wait
        idx, cnt, newest, n_silent, due = facility_judge(self.rows[:n], self.sched[:n], self.silent[:n],
                                                         self.maint[:n], lt.value, lt.time, self.col, dopen,
                                                         dsince, T, self.R, dnext)
        val, rr = lt.value[idx, self.col], self.rows[idx]
        self.stamp += 1
        self.cached = (val, idx, rr, cnt, newest, n_silent, self.stamp)
        self.version, self.span = lt.version, (T, due)
        return self.cached


class FacilityAgg(_Group):
    """An aggregate over the judged facility entities of each (zone, class) row (see :class:`_FacilityView`):
    count or percent of them passing the class's test, or their sum, mean, min or max."""

    def __init__(self, plan, view: _FacilityView, agg: str, test, pos: np.ndarray) -> None:
        super().__init__(plan)
        self.view, self.agg, self.test, self.pos = view, agg, test, pos
        self.seen = -1

    def fill(self, ctx):
        val, idx, rr, cnt, newest, n_silent, stamp = self.view.get(ctx.T)
        if stamp == self.seen and not self.first:
            return
        self.seen, self.first = stamp, False
        R, agg = self.view.R, self.agg
        with np.errstate(divide="ignore", invalid="ignore"):
            if agg in ("sum", "mean"):
                v = np.bincount(rr, weights=val, minlength=R)
                if agg == "mean":
                    v = v / cnt
            elif agg in ("min", "max"):
                v = np.full(R, np.inf if agg == "min" else -np.inf)
                (np.minimum if agg == "min" else np.maximum).at(v, rr, val)
            else:
                v = np.bincount(rr, weights=self.test(val, idx), minlength=R)
                if agg == "percent_where":
                    v = 100.0 * v / cnt
        self.plan.raw[self.pos] = np.where(cnt > 0, v, np.nan)
        self.plan.newest[self.pos] = newest
        self.plan.idle[self.pos] = (cnt == 0) & (n_silent == 0)


class FacilityValue(_Group):
    """Latest readings of single assets of classes with an operating schedule.

    While the asset's schedule is closed, or open for less than the class's
    ``silent_after_s`` without a reading since it opened, there is no value
    (idle): a closed lift reads "stopped" and means nothing by it.  Open with
    no reading since the window opened and past that grace: no_data.
    """

    def __init__(self, plan, table: Latest, col: int, ent: np.ndarray, sched: np.ndarray, silent_ms: np.ndarray,
                 duty: _Duty, pos: np.ndarray, maint: np.ndarray) -> None:
        super().__init__(plan)
        # per slot: its entity, schedule, position, its asset's maintenance entity and its grace - as
        # contiguous intp / int64, the types the compiled pass (compiled.facility_values) is loaded for
        self.table, self.col, self.duty = table, col, duty
        self.ent, self.sched, self.pos, self.maint = (np.ascontiguousarray(a, dtype=np.intp)
                                                      for a in (ent, sched, pos, maint))
        self.silent = np.ascontiguousarray(silent_ms, dtype=np.int64)
        self.version = -1
        self.span = (FOREVER, FOREVER)

    def fill(self, ctx):
        T = ctx.T
        if not self.first and self.table.version == self.version and self.span[0] <= T < self.span[1]:
            return
        from .compiled import facility_values
        self.first = False
        dopen, dsince, dnext = self.duty.at(T)
        # one compiled pass of: working = not (maintenance reading >= 0.5); start = max(window
        # opening, time back in service); seen = open & working & reading since start -> its value;
        # else no value, idle when not expected or still within the grace since start
        due = facility_values(self.ent, self.sched, self.silent, self.maint, self.table.value, self.table.time,
                              self.col, dopen, dsince, T, self.pos, self.plan.raw, self.plan.newest,
                              self.plan.idle, dnext)
        self.version, self.span = self.table.version, (T, due)


class WindowStat(_Group):
    """count / sum / mean of one window of a stacked ring, for all families reading it."""

    def __init__(self, plan, state: Windows, w: int) -> None:
        super().__init__(plan)
        self.state, self.w = state, w
        self.rows, self.pos, self.kind = [], [], []        # kind: 0 count, 1 sum, 2 mean
        self.seen = -1

    def add(self, rows, pos, stat: str) -> None:
        self.rows.append(rows)
        self.pos.append(pos)
        self.kind.append(np.full(len(rows), {"count": 0, "sum": 1, "mean": 2}[stat], dtype=np.int8))

    def seal(self) -> None:
        self.rows, self.pos, self.kind = (np.concatenate(x) for x in (self.rows, self.pos, self.kind))
        self.any_sum = bool((self.kind > 0).any())
        self.uniform = int(self.kind[0]) if (self.kind == self.kind[0]).all() else None

    def fill(self, ctx):
        seen = self.state.changes[self.w]
        if seen == self.seen and not self.first:        # unchanged since this group last read it
            return
        self.first, self.seen = False, seen
        c = self.state.run_cnt[self.w][self.rows]
        if self.uniform == 0:
            self.plan.raw[self.pos] = c
            return
        s = self.state.run_sum[self.w][self.rows]
        if self.uniform == 1:
            self.plan.raw[self.pos] = s
            return
        with np.errstate(divide="ignore", invalid="ignore"):
            mean = np.where(c > 0, s / c, np.nan)
        if self.uniform == 2:
            self.plan.raw[self.pos] = mean
        else:
            self.plan.raw[self.pos] = np.where(self.kind == 0, c, np.where(self.kind == 1, s, mean))


class WindowExtreme(_Group):
    def __init__(self, plan, state: Extremes, w: int, rows, pos) -> None:
        super().__init__(plan)
        self.state, self.w, self.rows, self.pos = state, w, rows, pos
        self.seen = -1

    def fill(self, ctx):
        if self.state.changes == self.seen and not self.first:
            return
        self.first, self.seen = False, self.state.changes
        self.plan.raw[self.pos] = self.state.get(self.w)[self.rows]


class TodaySum(_Group):
    def __init__(self, plan, state: Today) -> None:
        super().__init__(plan)
        self.state = state
        self.rows, self.pos = [], []
        self.seen = -1

    def add(self, rows, pos) -> None:
        self.rows.append(rows)
        self.pos.append(pos)

    def seal(self) -> None:
        self.rows, self.pos = np.concatenate(self.rows), np.concatenate(self.pos)

    def fill(self, ctx):
        if self.state.changes == self.seen and not self.first:
            return
        self.first, self.seen = False, self.state.changes
        self.plan.raw[self.pos] = self.state.acc[self.rows]


class VisitsToday(_Group):
    def __init__(self, plan, state: Visits, zone, pos) -> None:
        super().__init__(plan)
        self.state, self.zone, self.pos = state, zone, pos

    def fill(self, ctx):
        self.plan.raw[self.pos] = self.state.acc[self.zone]
        self.plan.newest[self.pos] = self.state.latest.time[self.zone, self.state.col]


class DistinctCount(_Group):
    def __init__(self, plan, state: Distinct, w_ms: int, rows, pos) -> None:
        super().__init__(plan)
        self.state, self.w_ms, self.rows, self.pos = state, w_ms, rows, pos

    def fill(self, ctx):
        self.plan.raw[self.pos] = self.state.count(ctx.T, self.w_ms)[self.rows]


class Change(_Group):
    """Value now minus the value ``lag`` ticks ago (both as of their ticks)."""

    def __init__(self, plan, series: Series, table: Latest, col: int, ent, lag: int, pos) -> None:
        super().__init__(plan)
        self.series, self.table, self.col, self.ent, self.lag, self.pos = series, table, col, ent, lag, pos

    def fill(self, ctx):
        self.plan.raw[self.pos] = self.series.at(ctx.k)[self.ent] - self.series.at(ctx.k - self.lag)[self.ent]
        self.plan.newest[self.pos] = self.table.time[self.ent, self.col]


class CaseStats(_Group):
    """All case families: open, overdue, opened today, closure rate, time to close - by category, zone,
    department or the whole area."""

    def __init__(self, plan, cases: Cases) -> None:
        super().__init__(plan)
        self.cases = cases
        self.fams: list[dict] = []
        self.seen = -1
        self.day = None
        self.next_due = np.iinfo(np.int64).max

    def add(self, scope: _Scope) -> None:
        c = scope.fam.compute
        key = next((k for k in ("category", "zone", "department") if k in scope.fam.keys), "area")
        self.fams.append({"stat": c.get("stat"), "deadline": c.get("deadline_s", 0) * 1000,
                          "joint": bool(c.get("joint", False)), "key": key, "rows": scope.codes.get(key),
                          "pos": scope.pos[:, 0]})

    def fill(self, ctx):
        cs = self.cases
        if (not self.first and cs.version == self.seen and self.day == ctx.day_start and ctx.T <= self.next_due):
            return
        self.first, self.seen, self.day = False, cs.version, ctx.day_start
        c = cs.view()
        exists = c["time"] >= 0
        closed = exists & (c["status"] == CLOSED)
        open_ = exists & ~closed
        joint = c["ndept"] >= 2
        today = exists & (c["opened"] >= ctx.day_start)
        done = closed & (c["time"] >= ctx.day_start)
        D = len(self.plan.dims.members["department"])
        bits = None
        mins = (c["time"] - c["opened"]).astype(np.float64) / 60000.0
        age = ctx.T - c["opened"]
        raw = self.plan.raw
        due = []

        def count(f, m, w=None):
            nonlocal bits
            key = f["key"]
            if key == "area":
                return np.array([m.sum() if w is None else w[m].sum()], dtype=np.float64)
            if key == "department":
                if bits is None:
                    bits = ((c["depts"][:, None] >> np.arange(D, dtype=np.uint64)[None, :]) & np.uint64(1)).astype(bool)
                ww = m.astype(np.float64) if w is None else np.where(m, w, 0.0)
                return (bits * ww[:, None]).sum(axis=0)[f["rows"]]
            col = c[key]
            ok = m & (col >= 0)
            size = len(self.plan.dims.members[key])
            return np.bincount(col[ok], weights=None if w is None else w[ok], minlength=size)[f["rows"]].astype(
                np.float64)

        for f in self.fams:
            sel = joint if f["joint"] else exists
            st = f["stat"]
            if st == "open":
                v = count(f, open_ & sel)
            elif st == "overdue":
                v = count(f, open_ & sel & (age > f["deadline"]))
                pend = c["opened"][open_ & sel & (age <= f["deadline"])] + f["deadline"]
                if len(pend):
                    due.append(int(pend.min()))
            elif st == "opened":
                v = count(f, today & sel)
            elif st == "close_rate":
                # 按期结案率: of today's cases that are due (closed, or open past the deadline), the share
                # closed within it; a case still inside its deadline is not judged yet
                dl = f["deadline"]
                due_now = today & sel & (closed | (age > dl))
                den = count(f, due_now)
                with np.errstate(divide="ignore", invalid="ignore"):
                    v = np.where(den > 0, 100.0 * count(f, due_now & closed & (c["time"] - c["opened"] <= dl)) / den,
                                 np.nan)
                pend = c["opened"][today & sel & open_ & (age <= dl)] + dl
                if len(pend):
                    due.append(int(pend.min()))
            else:
                den = count(f, done & sel)
                with np.errstate(divide="ignore", invalid="ignore"):
                    v = np.where(den > 0, count(f, done & sel, mins) / den, np.nan)
            raw[f["pos"]] = v
        self.next_due = min(due) if due else np.iinfo(np.int64).max


class WarningStats(_Group):
    def __init__(self, plan, warnings: Warnings) -> None:
        super().__init__(plan)
        self.warnings = warnings
        self.fams: list[tuple[str, np.ndarray | None, np.ndarray]] = []
        self.seen = -1
        self.next_expiry = np.iinfo(np.int64).max

    def add(self, scope: _Scope) -> None:
        self.fams.append((scope.fam.compute.get("stat"), scope.codes.get("signal"), scope.pos[:, 0]))

    def fill(self, ctx):
        w = self.warnings
        if not self.first and w.version == self.seen and ctx.T < self.next_expiry:
            return
        self.first, self.seen = False, w.version
        lv = w.levels(ctx.T)
        future = w.expires[(w.expires > ctx.T) & (w.level > 0)]
        self.next_expiry = int(future.min()) if len(future) else np.iinfo(np.int64).max
        for stat, rows, pos in self.fams:
            if stat == "level":
                self.plan.raw[pos] = lv[rows]
            elif stat == "highest":
                self.plan.raw[pos] = lv.max()
            else:
                self.plan.raw[pos] = float((lv > 0).sum())


class VisitAges(_Group):
    def __init__(self, plan, state: VisitAge, pos) -> None:
        super().__init__(plan)
        self.state, self.pos = state, pos

    def fill(self, ctx):
        last = self.state.last
        self.plan.raw[self.pos] = np.where(last == NEVER, np.nan, (ctx.T - last) / 60000.0)


class Forecast:
    """A family's per-zone values ``horizon`` ahead, from the pluggable forecaster (after all others)."""

    def __init__(self, plan, scope: _Scope, target: _Scope, table: Latest, col: int, forecaster: Forecaster) -> None:
        fam = scope.fam
        self.plan = plan
        self.L = fam.compute.get("lookback_s") * 1000 // plan.tick_ms
        self.series = Series(self.L, len(scope.scopes))
        tpos = {s: i for i, s in enumerate(target.scopes)}
        self.target_pos = target.pos[[tpos[s] for s in scope.scopes], 0]
        self.pos = scope.pos                               # rows x horizons
        self.x_s = (np.arange(self.L) - (self.L - 1)) * (plan.tick_ms / 1000.0)
        self.h_s = np.array([w.seconds for w in scope.windows], dtype=np.float64)
        self.forecaster = forecaster
        self.table, self.col = table, col
        self.ent = scope.codes["zone"]

    def fill(self, ctx: TickCtx, v: np.ndarray) -> None:
        self.series.record(ctx.k, v[self.target_pos])
        pred = np.asarray(self.forecaster.predict(self.x_s, self.series.chronological(), self.h_s), dtype=np.float64)
        v[self.pos] = pred.T
        self.plan.newest[self.pos] = self.table.time[self.ent, self.col][:, None]


# ------------------------------------------------------------------- plan
class Plan:
    """States by feed and evaluation groups, built from a catalog (see the module docstring)."""

    def __init__(self, catalog: Catalog, encoder: Encoder, tick_ms: int, forecaster: Forecaster) -> None:
        self.catalog = catalog
        self.dims = catalog.dims
        self.encoder = encoder
        self.tick_ms = tick_ms
        n = len(catalog)
        self.n = n
        self.raw = np.full(n, np.nan)
        self.newest = np.full(n, NEVER, dtype=np.int64)
        self.idle = np.zeros(n, dtype=bool)             # no value because nothing is expected to work
        self.duty = _Duty(self.dims.site)
        self.scale = np.ones(n)
        self.fresh = np.zeros(n, dtype=np.int64)
        feed_of: list[tuple[int, int]] = []                 # (position, feed index) of feed-basis indicators
        self.headway: list[tuple[np.ndarray, np.ndarray]] = []
        self.bins: list[tuple[np.ndarray, np.ndarray]] = []
        self.feed_last: dict[str, int] = {}
        self.states: dict[str, Any] = {}
        self.by_feed: dict[str, list[Any]] = {f: [] for f in FEED_ORDER}
        self.afters: list[Visits] = []
        self.series_latest: list[tuple[Series, Latest, int]] = []
        self.groups: list[_Group] = []
        self.forecasts: list[Forecast] = []
        self._views: dict[tuple, tuple] = {}
        self._groups_by_key: dict[Any, _Group] = {}

        by_fam: dict[str, list[Indicator]] = defaultdict(list)
        for ind in catalog.indicators:
            by_fam[ind.family.id].append(ind)
        self._prepare_facility(catalog)
        scopes = {f.id: _Scope(f, by_fam[f.id], self) for f in catalog.families}
        self._plan_rings(catalog, scopes)
        for fam in catalog.families:
            sc = scopes[fam.id]
            self.fresh[sc.pos] = fam.freshness_s * 1000
            self._post(sc)
            if fam.compute.kind not in ENTITY_BASIS:
                feed_of.extend((int(p), FEED_ORDER.index(fam.feed)) for p in sc.pos.ravel())
            if fam.compute.kind != "forecast":
                self._compile(fam, sc)
        for fam in catalog.families:
            if fam.compute.kind == "forecast":
                target = scopes[fam.compute.get("of")]
                table, col = self._latest(target.fam)
                if any(op in s for s in target.fam.compute.get("post", []) for op in ("headway", "bins")):
                    raise ValueError(f"{fam.id}: forecasts extend families with linear post steps only")
                self.forecasts.append(Forecast(self, scopes[fam.id], target, table, col, forecaster))
                self.states[f"forecast:{fam.id}"] = self.forecasts[-1].series
        for g in self.groups:
            if hasattr(g, "seal"):
                g.seal()
        # bus routes run to a timetable: outside a route's service hours its indicators are idle
        # (no bus is expected, so "0 vehicles" is neither a fault nor a recovery); a stop is idle
        # while none of the routes serving it runs
        self.route_duty: tuple[np.ndarray, np.ndarray] | None = None
        service = getattr(catalog.file, "route_service", {}) or {}
        if service:
            on: list[tuple[int, list[int]]] = []
            for ind in catalog.indicators:
                sc = ind.scope
                routes = ([sc["route"]] if "route" in sc else
                          list(self.dims.stop_routes.get(sc["stop"], ())) if "stop" in sc else [])
                if routes and all(r in service for r in routes):
                    on.append((ind.index, [self.duty.index(service[r]) for r in routes]))
            if on:
                member = np.zeros((len(on), len(self.duty.schedules)), dtype=bool)
                for row, (_, ks) in enumerate(on):
                    member[row, ks] = True
                self.route_duty = (np.array([p for p, _ in on], dtype=np.intp), member)
        fo = np.array(feed_of, dtype=np.intp).reshape(-1, 2)
        self.feed_pos, self.feed_code = fo[:, 0], fo[:, 1]
        self._forecast_inputs = self._groups_writing(
            np.concatenate([fc.target_pos for fc in self.forecasts]) if self.forecasts else np.zeros(0, np.intp))

    def _groups_writing(self, positions: np.ndarray) -> list[_Group] | None:
        """The groups that write ``positions`` of ``raw`` (None when some position has no such group)."""
        out, covered = [], np.zeros(self.n, dtype=bool)
        for g in self.groups:
            pos = getattr(g, "pos", None)
            if isinstance(pos, np.ndarray) and np.isin(pos, positions).any():
                out.append(g)
                covered[pos] = True
        return out if covered[positions].all() else None

    # ---------------------------------------------------------- helpers
    def code(self, key: str, value: str) -> int:
        return 0 if key == "area" else self.dims.code(key)[value]

    def sizes(self, keys: tuple[str, ...]) -> tuple[int, ...]:
        return tuple(1 if k == "area" else len(self.dims.members[k]) for k in keys)

    def _add_state(self, name: str, feed: str, st: Any) -> Any:
        self.states[name] = st
        if hasattr(st, "update"):
            self.by_feed[feed].append(st)
        return st

    def _group(self, key: Any, make: Callable[[], _Group]) -> _Group:
        g = self._groups_by_key.get(key)
        if g is None:
            g = self._groups_by_key[key] = make()
            self.groups.append(g)
        return g

    def _post(self, sc: _Scope) -> None:
        """Fold the linear post steps into ``scale``; record a final headway / bins step."""
        fam = sc.fam
        steps = fam.compute.get("post", [])
        zones = [dict(s).get("zone") for s in sc.scopes]
        for j, w in enumerate(sc.windows):
            f = np.ones(len(sc.scopes))
            w_min = w.seconds / 60.0
            if fam.compute.kind == "visits_today":          # person-seconds -> visits: / 3600 / average stay
                f /= 3600.0 * np.array([float(self.dims.zone_attrs[z][fam.compute.get("stay")]) for z in zones])
            for i, step in enumerate(steps):
                (op, arg), = step.items()
                if op in ("headway", "bins") and i != len(steps) - 1:
                    raise ValueError(f"{fam.id}: {op} must be the last post step")
                if op == "divide_by":
                    f /= np.array([float(self.dims.zone_attrs[z][arg]) for z in zones])
                elif op == "multiply":
                    f *= float(arg)
                elif op == "per_minute":
                    f /= w_min
                elif op == "headway":
                    self.headway.append((sc.pos[:, j], np.full(len(sc.scopes), w_min)))
                elif op == "bins":
                    self.bins.append((sc.pos[:, j], np.asarray(arg, dtype=np.float64)))
            self.scale[sc.pos[:, j]] = f

    def _prepare_facility(self, catalog: Catalog) -> None:
        """The (asset, metric) entities the facility families need, and a dense (asset, metric) lookup."""
        metrics = list(FACILITY_METRICS)
        pairs: dict[tuple[int, int], int] = {}
        for fam in catalog.families:
            if fam.compute.get("entity") != "asset_metric":
                continue
            classes = [fam.compute.get("class")] if fam.compute.get("class") else (
                list(self.dims.classes) if fam.expand.get("class") == "all" else list(fam.expand["class"]))
            for cname in classes:
                cls = self.dims.classes[cname]
                m = metrics.index(fam.compute.get("metric", cls.metric))
                for a in self.dims.class_assets(cname):
                    pairs.setdefault((int(a), m), len(pairs))
        # every judged asset's work orders: one more entity per asset, its maintenance reading
        mm = metrics.index("maintenance")
        for a in sorted({a for a, _ in pairs}):
            pairs.setdefault((a, mm), len(pairs))
        lut = np.full((len(self.dims.members["asset"]) + 1, len(metrics) + 1), -1, dtype=np.intp)
        for (a, m), e in pairs.items():
            lut[a, m] = e
        self._facility_lut = lut                       # code -1 indexes the trailing row/column of -1
        self._facility_pairs = list(pairs)
        self._maint_of = np.array([pairs[(a, mm)] for a, _ in pairs], dtype=np.intp)

    def _latest(self, fam: Family) -> tuple[Latest, int]:
        """The shared latest table of a family's feed and entity, and the column of its value."""
        c = fam.compute
        feed, ent, value = fam.feed, c.get("entity"), c.get("value")
        where = _where_name(c.get("where"))
        name = f"latest:{feed}:{ent}:{where}"
        st = self.states.get(name)
        if st is None:
            if ent == "zone":
                st = Latest(len(self.dims.members["zone"]), lambda b: b["zone"], [value],
                            _FILTERS[where] if where else None)
            elif ent in ("station", "segment"):
                st = Latest(len(self.dims.members[ent]), lambda b, e=ent: b[e], [value])
            elif ent in ("weather_station", "staff"):
                col = "wstation" if ent == "weather_station" else "staff"
                st = Latest(0, lambda b, col=col: b[col], [value])
            elif ent == "asset_metric":
                st = Latest(len(self._facility_pairs), lambda b: b["fent"], ["value"])
            else:
                raise AssertionError(f"unknown entity {ent!r}")
            st.name = name
            self._add_state(name, feed, st)
        return st, st.col(value)

    def _plan_rings(self, catalog: Catalog, scopes: dict[str, _Scope]) -> None:
        """Stack the window blocks of each feed into rings by length, and the day sums by feed."""
        ring_blocks: dict[tuple[str, tuple, str, str | None], set[int]] = defaultdict(set)
        day_blocks: dict[str, list[tuple]] = defaultdict(list)
        for fam in catalog.families:
            c = fam.compute
            key = (fam.feed, fam.keys, c.get("value"), _where_name(c.get("where")))
            if c.kind == "window" and c.get("stat") in ("count", "sum", "mean"):
                ring_blocks[key] |= {w.seconds * 1000 // self.tick_ms for w in fam.windows}
            elif c.kind == "today" and key not in day_blocks[fam.feed]:
                day_blocks[fam.feed].append(key)
        by_ring: dict[tuple[str, int], list[tuple]] = defaultdict(list)
        for key, ws in ring_blocks.items():
            by_ring[(key[0], max(ws))].append((key, ws))
        self._ring_of: dict[tuple, tuple[Windows, int]] = {}
        for (feed, N), items in sorted(by_ring.items()):
            blocks, off, windows = [], 0, set()
            for key, ws in items:
                rows = int(np.prod(self.sizes(key[1])))
                blocks.append(Block(key[1], key[2], key[3], off, rows))
                off += rows
                windows |= ws
            st = self._add_state(f"ring:{feed}:{N}", feed, Windows(blocks, sorted(windows), _FILTERS))
            for key, _ in items:
                self._ring_of[key] = (st, next(b.offset for b in blocks if (b.keys, b.value, b.where) == key[1:]))
        self._day_of: dict[tuple, tuple[Today, int]] = {}
        for feed, keys in day_blocks.items():
            blocks, off = [], 0
            for key in keys:
                rows = int(np.prod(self.sizes(key[1])))
                blocks.append(Block(key[1], key[2], key[3], off, rows))
                off += rows
            st = self._add_state(f"today:{feed}", feed, Today(blocks, _FILTERS))
            for key, b in zip(keys, blocks):
                self._day_of[key] = (st, b.offset)

    # ---------------------------------------------------------- compile
    def _compile(self, fam: Family, sc: _Scope) -> None:
        c = fam.compute
        kind = c.kind
        sizes = self.sizes(fam.keys)
        key = (fam.feed, fam.keys, c.get("value"), _where_name(c.get("where")))
        if kind == "latest":
            self._compile_latest(fam, sc)
        elif kind == "window" and c.get("stat") in ("count", "sum", "mean"):
            st, off = self._ring_of[key]
            rows = sc.dense_rows(sizes) + off
            for j, w in enumerate(sc.windows):
                wt = w.seconds * 1000 // self.tick_ms
                g = self._group(("ring", id(st), wt), lambda: WindowStat(self, st, wt))   # id: within this plan
                g.add(rows, sc.pos[:, j], c.get("stat"))
        elif kind == "window":
            wts = [w.seconds * 1000 // self.tick_ms for w in sc.windows]
            block = Block(fam.keys, c.get("value"), _where_name(c.get("where")), 0, int(np.prod(sizes)))
            st = self._add_state(f"extreme:{fam.id}", fam.feed, Extremes(block, wts, c.get("stat") == "max", _FILTERS))
            for j, wt in enumerate(wts):
                self.groups.append(WindowExtreme(self, st, wt, sc.dense_rows(sizes), sc.pos[:, j]))
        elif kind == "today":
            st, off = self._day_of[key]
            g = self._group(("today", id(st)), lambda: TodaySum(self, st))
            g.add(sc.dense_rows(sizes) + off, sc.pos[:, 0])
        elif kind == "visits_today":
            table, col = self._latest(fam)
            name = f"visits:{table.name}:{col}"
            if name not in self.states:
                self.states[name] = Visits(table, col)
                self.afters.append(self.states[name])
            self.groups.append(VisitsToday(self, self.states[name], sc.codes["zone"], sc.pos[:, 0]))
        elif kind == "distinct":
            name = f"distinct:{fam.keys}"
            st = self.states.get(name) or self._add_state(name, fam.feed, Distinct(int(np.prod(sizes)),
                                                                                   self._row_fn(fam.keys)))
            for j, w in enumerate(sc.windows):
                self.groups.append(DistinctCount(self, st, w.seconds * 1000, sc.dense_rows(sizes), sc.pos[:, j]))
        elif kind == "change":
            table, col = self._latest(fam)
            name = f"series:{table.name}:{col}"
            lag_max = max(w.seconds for w in fam.windows) * 1000 // self.tick_ms
            if name not in self.states:
                self.states[name] = Series(lag_max + 1, len(table.value))
                self.series_latest.append((self.states[name], table, col))
            for j, w in enumerate(sc.windows):
                self.groups.append(Change(self, self.states[name], table, col, sc.codes["zone"],
                                          w.seconds * 1000 // self.tick_ms, sc.pos[:, j]))
        elif kind == "case":
            st = self.states.get("cases") or self._add_state("cases", "case", Cases(self.encoder.codecs["case"]))
            self._group("cases", lambda: CaseStats(self, st)).add(sc)
        elif kind == "warning":
            st = self.states.get("warnings") or self._add_state("warnings", "warning",
                                                                Warnings(len(self.dims.members["signal"])))
            self._group("warnings", lambda: WarningStats(self, st)).add(sc)
        elif kind == "visit_age":
            a = sc.codes["asset"]
            st = self._add_state(f"visit_age:{fam.id}", fam.feed,
                                 VisitAge(self.dims.asset_lon[a], self.dims.asset_lat[a], float(c.get("radius_m"))))
            self.groups.append(VisitAges(self, st, sc.pos[:, 0]))
        else:
            raise AssertionError(f"unknown kind {kind!r}")

    def _row_fn(self, keys: tuple[str, ...]) -> Callable[[dict], np.ndarray]:
        sizes = self.sizes(keys)

        def rows(b: dict) -> np.ndarray:
            r = np.zeros(len(b["t"]), dtype=np.intp)
            ok = np.ones(len(b["t"]), dtype=bool)
            for k, s in zip(keys, sizes):
                if k != "area":
                    ok &= b[k] >= 0
                    r = r * s + b[k]
            return np.where(ok, r, -1)
        return rows

    def _compile_latest(self, fam: Family, sc: _Scope) -> None:
        c = fam.compute
        table, col = self._latest(fam)
        ent = c.get("entity")
        agg = c.get("agg", "value")
        metrics = list(FACILITY_METRICS)
        cond = c.get("cond")
        if agg == "value":
            if ent == "asset_metric":
                cls = self.dims.classes[c.get("class")]
                m = metrics.index(c.get("metric", cls.metric))
                key = next(k for k in ("camera", "asset") if k in fam.keys)
                assets = np.array([self.dims.code("asset")[dict(s)[key]] for s in sc.scopes], dtype=np.intp)
                e = self._facility_lut[assets, m]
                if cls.schedule is not None or cls.zone_schedule:
                    sched = np.array([self.duty.index(cls.schedule_for(self.dims.asset_zone[a] or None))
                                      for a in assets], dtype=np.intp)
                    silent = np.full(len(assets), cls.silent_after_s * 1000, dtype=np.int64)
                    self.groups.append(FacilityValue(self, table, col, e, sched, silent, self.duty, sc.pos[:, 0],
                                                     self._maint_of[e]))
                    return
            else:
                e = sc.codes[{"zone": "zone", "station": "station", "segment": "segment"}[ent]]
            self._group(("latest", id(table), col), lambda: LatestValue(self, table, col)).add(e, sc.pos[:, 0])
            return
        test = None
        if ent == "asset_metric":
            key = (tuple(sc.scopes), c.get("class"), c.get("metric"))
            if key not in self._views:
                rows, thr, sign, strict, sched, silent = self._facility_rows(fam, sc)
                self._views[key] = (_FacilityView(table, col, rows, sched, silent, self.duty, len(sc.scopes),
                                                  self._maint_of),
                                    thr, sign, strict)
            view, thr, sign, strict = self._views[key]
            if cond in ("anomaly", "normal"):
                lax = ~strict                   # <= / >=: equality is an anomaly too

                def class_test(v, e, thr=thr, sign=sign, lax=lax, normal=cond == "normal"):
                    d = sign[e] * (v - thr[e])  # negative: on the anomalous side of the threshold
                    an = (d < 0) | (lax[e] & (d == 0)) if lax.any() else d < 0
                    return (~an if normal else an).astype(np.float64)
                test = class_test
        else:
            if fam.keys != ("area",):
                raise AssertionError(f"{fam.id}: aggregates of {ent} are over the whole area")
            key = (table.name, col, "area")
            if key not in self._views:
                self._views[key] = (_ScopeEntities(table, col, lambda n: np.zeros(n, dtype=np.intp), 1),)
            view = self._views[key][0]
        if isinstance(cond, dict):
            x = cond["value"]
            x = float(STAFF_STATUSES.index(x)) if isinstance(x, str) else float(x)
            if cond.get("scale"):               # a fraction of each segment's own figure (its free-flow speed)
                segs = self.dims.members["segment"]
                x = x * np.array([self.dims.segments[s].attr(cond["scale"]) for s in segs], dtype=np.float64)
            test = (lambda v, e, op=cond["op"], x=x: compare(v, op, x if np.ndim(x) == 0 else x[e]).astype(np.float64))
        if ent == "asset_metric":
            self.groups.append(FacilityAgg(self, view, agg, test, sc.pos[:, 0]))
        else:
            self.groups.append(LatestAgg(self, view, agg, test, sc.pos[:, 0]))

    def _facility_rows(self, fam: Family, sc: _Scope):
        """Per facility entity: its row (zone, class) in this family (-1 none), its class's anomaly test,
        operating schedule (a :class:`_Duty` index) and silence limit (ms)."""
        metrics = list(FACILITY_METRICS)
        pairs = self._facility_pairs
        pa_ = np.array([a for a, _ in pairs], dtype=np.intp)
        pm_ = np.array([m for _, m in pairs], dtype=np.intp)
        zone_code = self.dims.code("zone")
        zones = self.dims.members["zone"]
        scope_row = {s: i for i, s in enumerate(sc.scopes)}
        rows = np.full(len(pairs), -1, dtype=np.intp)
        thr = np.full(len(pairs), np.nan)
        sign = np.ones(len(pairs))                     # +1: anomaly below the threshold, -1: above
        strict = np.ones(len(pairs), dtype=bool)
        sched = np.zeros(len(pairs), dtype=np.intp)
        silent = np.zeros(len(pairs), dtype=np.int64)
        only = fam.compute.get("class")
        for cname, cls in self.dims.classes.items():
            if only is not None and cname != only:
                continue
            m = metrics.index(fam.compute.get("metric", cls.metric))
            for e in np.flatnonzero(np.isin(self.dims.asset_type[pa_], cls.asset_types) & (pm_ == m)):
                z = zone_code.get(self.dims.asset_zone[pa_[e]])
                scope = tuple((k, v) for k, v in (("zone", zones[z] if z is not None else None), ("class", cname))
                              if k in fam.keys)
                if scope in scope_row:
                    rows[e] = scope_row[scope]
                    thr[e] = cls.anomaly_value
                    sign[e] = 1.0 if cls.anomaly_op in ("<", "<=") else -1.0
                    strict[e] = cls.anomaly_op in ("<", ">")
                    sched[e] = self.duty.index(cls.schedule_for(self.dims.asset_zone[pa_[e]] or None))
                    silent[e] = cls.silent_after_s * 1000
        return rows, thr, sign, strict, sched, silent

    def prepare(self, kind: str, b: dict[str, np.ndarray]) -> None:
        """Per-event columns the states need, computed once at ingest rather than at every tick:
        ``tie`` (the id-hash bits that order equal times) and, for facility readings, the
        code of the (asset, metric) entity."""
        b["tie"] = (b["h"] >> np.uint64(23)).astype(np.int64)
        del b["h"]                                       # de-duplication is done: no state reads it
        if kind == "facility":
            # one flat gather (a 2-D fancy index costs ~2.5x as much); code -1 still lands on the
            # trailing row or column of -1: a negative flat index counts from the end
            lut = self._facility_lut
            b["fent"] = lut.ravel().take(b["asset"] * lut.shape[1] + b["metric"])
            del b["asset"], b["metric"]

    def reset(self) -> None:
        """After loading state: every group recomputes at the next tick."""
        for g in self.groups:
            g.first = True
            if hasattr(g, "seen"):
                g.seen = -1

    # --------------------------------------------------------- evaluate
    def skip(self, ctx: TickCtx, values: np.ndarray, quality: np.ndarray) -> None:
        """A tick whose values nobody reads (a replay evaluates only the ticks its
        alert rules are due at): keep only what later ticks depend on - each
        forecast's per-tick sample of its target.  Every other group is a
        function of the states and the tick time, and re-reads a state that
        changed since it last ran (version, change count or due time), so the
        next :meth:`evaluate` gives exactly what evaluating every tick gives.
        Forecasters must be pure (``predict`` keeps no state)."""
        if not self.forecasts:
            return
        if self._forecast_inputs is None:                # cannot tell which groups feed them: do it all
            self.evaluate(ctx, values, quality)
            return
        for g in self._forecast_inputs:
            g.fill(ctx)
        for fc in self.forecasts:                        # targets have linear post steps only (checked)
            fc.series.record(ctx.k, self.raw[fc.target_pos] * self.scale[fc.target_pos])

    def evaluate(self, ctx: TickCtx, values: np.ndarray, quality: np.ndarray) -> None:
        """All indicators at tick ``ctx`` into ``values`` / ``quality``."""
        for g in self.groups:
            g.fill(ctx)
        v = self.raw * self.scale
        with np.errstate(divide="ignore", invalid="ignore"):
            for pos, w_min in self.headway:
                x = v[pos]
                v[pos] = np.where(x > 0, w_min / x, np.nan)
        for pos, bins in self.bins:
            x = v[pos]
            v[pos] = np.where(np.isnan(x), np.nan, np.searchsorted(bins, x, side="right") + 1.0)
        for fc in self.forecasts:
            fc.fill(ctx, v)
        if self.route_duty is not None:
            pos, member = self.route_duty
            is_open = self.duty.at(ctx.T)[0]
            off = ~(member & is_open[None, :member.shape[1]]).any(axis=1)
            v[pos[off]] = np.nan
            self.idle[pos] = off
        fl = np.array([self.feed_last.get(f, NEVER) for f in FEED_ORDER], dtype=np.int64)
        newest = self.newest
        newest[self.feed_pos] = fl[self.feed_code]
        nodata = np.isnan(v) | (newest == NEVER)
        quality[:] = np.where(nodata, np.where(self.idle, IDLE, NO_DATA),
                              np.where(ctx.T - newest > self.fresh, STALE, OK))
        values[:] = np.where(nodata, np.nan, v)
