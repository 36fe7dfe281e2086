"""Oracle: every indicator recomputed by a plain, separate implementation of docs/catalog.md.

The oracle reads the same recorded scenario (synthetic feeds that touch every
entity, 5.5 hours across local midnight - long enough for 1 h windows to
expire and 2 h / 4 h case deadlines to pass - at 30 s ticks) as pandas frames and
computes each family from its definition in ``families.toml`` with duckdb
window joins, per-tick pandas group-bys and numpy as-of look-ups - no
engine code.  The engine must agree at every tick: values within float
tolerance, qualities exactly.
"""
from __future__ import annotations

from datetime import datetime, timedelta, timezone
from zoneinfo import ZoneInfo

import duckdb
import numpy as np
import pandas as pd
import pyarrow as pa
import pytest

from indicators.catalog import load_catalog
from indicators.engine import Engine
from indicators.engine.synthetic import arrival_order, synthetic_feeds
from indicators.feeds.schemas import WARNING_COLOURS
from indicators.localtime import sun_times

START = datetime(2025, 10, 1, 11, 0, tzinfo=timezone.utc)       # 19:00 local
SECONDS = 330 * 60
TICK_MS = 30_000
LATENESS = timedelta(seconds=20)
OK, STALE, NO_DATA, IDLE = 0, 1, 2, 3
NEVER = -1
DAY_MS = 86_400_000
EPOCH = datetime(1970, 1, 1, tzinfo=timezone.utc)
LOCAL = ZoneInfo("Asia/Shanghai")
STAFF = ("available", "busy", "offline")


def q(x):
    """Values arrive rounded to 2^-16 of their unit (docs/catalog.md, "Feeds")."""
    return np.round(np.asarray(x, dtype=np.float64) * 65536.0) / 65536.0


# ------------------------------------------------------------- the run
@pytest.fixture(scope="module")
def scenario(inventory):
    cat = load_catalog(inventory=inventory)
    tables = synthetic_feeds(cat, START, SECONDS, seed=21, scale=0.3, max_delay_ms=5000)
    # the oracle orders equal times of one entity like the engine would not know how to: keep such data out
    keys = {"crowd": ["zone_id", "cell_id"], "facility": ["asset_id", "metric"], "station": ["station_id"],
            "traffic": ["segment_id"], "weather": ["station_id"], "staff": ["staff_id"], "warning": ["signal"],
            "case": ["case_id"]}
    for kind, cols in keys.items():
        df = tables[kind].select([*cols, "event_time"]).to_pandas()
        keep = ~df.duplicated(subset=[*cols, "event_time"], keep="first").to_numpy()
        tables[kind] = tables[kind].filter(pa.array(keep))
    eng = Engine(cat, tick=timedelta(milliseconds=TICK_MS), allowed_lateness=LATENESS,
                 start=START - timedelta(milliseconds=1))
    ticks = []
    for kind, t in arrival_order(tables, 10_000):
        eng.ingest(kind, t)
        ticks.extend(eng.ticks(START + timedelta(days=1)))
    end = START + timedelta(seconds=SECONDS)
    eng.heartbeat(end + LATENESS)
    ticks.extend(eng.ticks(end))
    assert sum(s["late"] for s in eng.stats.values()) == 0
    return cat, tables, ticks


@pytest.fixture(scope="module")
def oracle(scenario):
    cat, tables, ticks = scenario
    T = np.array([t.time_ms for t in ticks], dtype=np.int64)
    return Oracle(cat, tables, T).run()


def test_the_scenario_crosses_midnight_and_spans_more_than_an_hour(scenario):
    _, _, ticks = scenario
    days = {t.time.astimezone(LOCAL).date() for t in ticks}
    assert len(days) == 2 and len(ticks) >= 600


def test_engine_agrees_with_the_oracle_at_every_tick(scenario, oracle):
    cat, _, ticks = scenario
    V, Q = oracle
    EV = np.stack([t.values for t in ticks])
    EQ = np.stack([t.quality for t in ticks])
    bad = []
    for f in cat.families:
        idx = [i.index for i in cat.of_family(f.id)]
        ev, ov, eq, oq = EV[:, idx], V[:, idx], EQ[:, idx], Q[:, idx]
        close = np.isclose(ev, ov, rtol=1e-9, atol=1e-6) | (np.isnan(ev) & np.isnan(ov))
        wrong = ~close | (eq != oq)
        if wrong.any():
            k, j = np.argwhere(wrong)[0]
            bad.append(f"{cat.indicators[idx[j]].text} at tick {ticks[k].time}: engine {ev[k, j]!r} q{eq[k, j]}, "
                       f"oracle {ov[k, j]!r} q{oq[k, j]} ({int(wrong.sum())} mismatches in the family)")
    assert not bad, "\n".join(bad)


def test_the_scenario_exercises_every_indicator(scenario, oracle):
    cat, _, _ = scenario
    V, Q = oracle
    never_ok = [cat.indicators[i].text for i in np.flatnonzero(~(Q == OK).any(axis=0))]
    assert not never_ok, f"{len(never_ok)} indicators never had an ok value: {never_ok[:10]}"
    nonzero = [cat.indicators[i].text for i in np.flatnonzero(~(np.nan_to_num(V) != 0).any(axis=0))]
    assert len(nonzero) < 0.02 * len(cat), f"{len(nonzero)} indicators stayed 0: {nonzero[:10]}"


def test_the_scenario_exercises_operating_schedules_and_silent_sensors(scenario, oracle):
    """Tower lifts and toilets close at 22:30 and the metro's at midnight (idle), lamps are due all
    night, and the sparse synthetic readings leave sensors silent at times (no_data)."""
    cat, _, _ = scenario
    V, Q = oracle
    for fam in ("facility.availability", "facility.lift_running", "facility.escalator_running"):
        q = Q[:, [i.index for i in cat.of_family(fam)]]
        assert (q == IDLE).any() and (q == NO_DATA).any() and (q == OK).any(), fam
    lamp = [i.index for i in cat.of_family("facility.availability") if dict(i.id.scope)["class"] == "lamp"]
    assert not (Q[:, lamp] == IDLE).any(), "lamps are due from sunset to sunrise"


# ------------------------------------------------------------ the oracle
class Oracle:
    def __init__(self, cat, tables, ticks_ms: np.ndarray) -> None:
        self.cat, self.T = cat, ticks_ms
        self.n = len(ticks_ms)
        self.dims = cat.dims
        self.db = duckdb.connect()
        self.db.register("ticks", pd.DataFrame({"tk": ticks_ms}))
        local = pd.to_datetime(ticks_ms, unit="ms", utc=True).tz_convert("Asia/Shanghai")
        self.day_start = np.array([(datetime(d.year, d.month, d.day, tzinfo=LOCAL) - EPOCH) // timedelta(milliseconds=1)
                                   for d in local], dtype=np.int64)
        self.db.register("days", pd.DataFrame({"tk": ticks_ms, "d0": self.day_start}))
        self.ev = {k: self._frame(k, t) for k, t in tables.items()}
        self.V = np.full((self.n, len(cat)), np.nan)
        self.Q = np.full((self.n, len(cat)), NO_DATA, dtype=np.int8)
        self.raw_of: dict[str, np.ndarray] = {}
        self._duty: dict[int, tuple[np.ndarray, np.ndarray]] = {}

    # ---------------------------------------------------------- inputs
    def _frame(self, kind: str, t: pa.Table) -> pd.DataFrame:
        df = t.drop_columns(["arrival_time"]).to_pandas()
        df["t"] = t.column("event_time").cast(pa.int64()).to_numpy()
        d = self.dims
        asset_zone = dict(zip(d.members["asset"], d.asset_zone))
        zones = set(d.members["zone"])
        for c in df.columns:
            if c not in ("t", "lon", "lat") and pd.api.types.is_numeric_dtype(df[c]) and c != "expires":
                df[c] = q(df[c])
        if kind == "gate":
            df["zone"] = [asset_zone.get(g) if g in asset_zone else z for g, z in zip(df.gate_id, df.zone_id)]
            df["net"] = df.entries - df.exits
        if kind == "video":
            df["zone"] = [z if z in zones else asset_zone.get(c) for z, c in zip(df.zone_id, df.camera_id)]
            df["events"] = 1.0
        if kind == "bus":
            df["events"] = 1.0
        if kind == "crowd":
            df["zone"] = df.zone_id
        if kind == "warning":
            df["level"] = [0.0 if s == "cancelled" else float(WARNING_COLOURS.index(c) + 1)
                           for s, c in zip(df.status, df.colour)]
            df["exp"] = [np.iinfo(np.int64).max if pd.isna(e) else int(pd.Timestamp(e).value // 1_000_000)
                         for e in df.expires]
        if kind == "case":
            names = {**{m: m for m in d.members["department"]}, **d.department_aliases}
            df["depts"] = [sorted({names[x] for x in (ds if ds is not None else []) if x in names}) for ds in df.departments]
            df["ndept"] = [0 if ds is None else len(ds) for ds in df.departments]
        return df

    def feed_last(self, kind: str) -> np.ndarray:
        t = np.sort(self.ev[kind].t.to_numpy())
        i = np.searchsorted(t, self.T, side="right") - 1
        return np.where(i >= 0, t[np.maximum(i, 0)], NEVER)

    def asof(self, df: pd.DataFrame, key: list[str], value: str, entities: list[tuple]) -> tuple[np.ndarray, np.ndarray]:
        """(n_ticks x entities) latest value and its time, per entity = tuple of key values."""
        vals = np.full((self.n, len(entities)), np.nan)
        times = np.full((self.n, len(entities)), NEVER, dtype=np.int64)
        d = df.dropna(subset=[value]).sort_values("t")
        groups = {k if isinstance(k, tuple) else (k,): g for k, g in d.groupby(key, sort=False)}
        for j, e in enumerate(entities):
            g = groups.get(e)
            if g is None:
                continue
            tt = g.t.to_numpy()
            i = np.searchsorted(tt, self.T, side="right") - 1
            has = i >= 0
            vals[has, j] = g[value].to_numpy()[i[has]]
            times[has, j] = tt[i[has]]
        return vals, times

    # ------------------------------------------------------------- run
    def run(self):
        fams = [f for f in self.cat.families if f.compute.kind != "forecast"]
        for f in fams + [f for f in self.cat.families if f.compute.kind == "forecast"]:
            inds = self.cat.of_family(f.id)
            scopes = list(dict.fromkeys(i.id.scope for i in inds))
            for w in f.windows:
                cols = [next(i.index for i in inds if i.id.scope == s and i.window == w) for s in scopes]
                raw, newest, *idle = getattr(self, f"k_{f.compute.kind}")(f, [dict(s) for s in scopes], w)
                idle = idle[0] if idle else np.zeros(raw.shape, dtype=bool)
                val = self.post(f, [dict(s) for s in scopes], w, raw)
                service = self.cat.file.route_service
                for j, s in enumerate(scopes):   # a bus route out of service, a stop none of whose routes runs: idle
                    s = dict(s)
                    routes = [s["route"]] if "route" in s else list(self.dims.stop_routes.get(s.get("stop"), ()))
                    if routes and all(r in service for r in routes):
                        off = ~np.logical_or.reduce([self.on_duty(service[r])[0] for r in routes])
                        val[off, j] = np.nan
                        idle = idle.copy()
                        idle[off, j] = True
                self.raw_of[(f.id, str(w))] = val
                fresh = f.freshness_s * 1000
                qual = np.where(np.isnan(val) | (newest == NEVER), np.where(idle, IDLE, NO_DATA),
                                np.where(self.T[:, None] - newest > fresh, STALE, OK))
                self.V[:, cols] = np.where(qual == NO_DATA, np.nan, val)
                self.Q[:, cols] = qual
        return self.V, self.Q

    def post(self, f, scopes, w, v):
        v = v.astype(np.float64).copy()
        attrs = self.dims.zone_attrs
        if f.compute.kind == "visits_today":
            v /= 3600.0 * np.array([float(attrs[s["zone"]][f.compute.get("stay")]) for s in scopes])
        for step in f.compute.get("post", []):
            (op, arg), = step.items()
            if op == "divide_by":
                v = v / np.array([float(attrs[s["zone"]][arg]) for s in scopes])
            elif op == "multiply":
                v = v * arg
            elif op == "per_minute":
                v = v / (w.seconds / 60.0)
            elif op == "headway":
                with np.errstate(divide="ignore"):
                    v = np.where(v > 0, (w.seconds / 60.0) / v, np.nan)
            elif op == "bins":
                v = np.where(np.isnan(v), np.nan, np.searchsorted(np.array(arg, float), v, side="right") + 1.0)
        return v

    # ---------------------------------------------------- the entities
    def _entity_frame(self, f):
        """(events, key columns, entity ids for the scopes) of a latest-kind family's entity."""
        c = f.compute
        ent, value = c.get("entity"), c.get("value")
        if ent == "zone":
            df = self.ev["crowd"]
            if c.get("where") == {"cell_id": "null"}:
                df = df[df.cell_id.isna()]
            return df, ["zone"], value
        if ent == "station":
            return self.ev["station"], ["station_id"], value
        if ent == "segment":
            return self.ev["traffic"], ["segment_id"], value
        if ent == "weather_station":
            return self.ev["weather"], ["station_id"], value
        if ent == "staff":
            df = self.ev["staff"].copy()
            df["status_code"] = [float(STAFF.index(s)) if s in STAFF else np.nan for s in df.status]
            return df, ["staff_id"], "status_code"
        return self.ev["facility"], ["asset_id", "metric"], "value"

    def k_latest(self, f, scopes, w):
        c = f.compute
        df, key, value = self._entity_frame(f)
        agg = c.get("agg", "value")
        d = self.dims
        if agg == "value":
            if key == ["asset_id", "metric"]:
                cls = d.classes[c.get("class")]
                k = "camera" if "camera" in scopes[0] else "asset"
                ents = [(s[k], c.get("metric", cls.metric)) for s in scopes]
                vals, times = self.asof(df, key, value, ents)
                if cls.schedule is None and not cls.zone_schedule:
                    return vals, times
                # a scheduled asset shows a reading taken since its schedule opened; none while closed
                # or, just after opening, until it has had silent_after_s to report
                zone_of = dict(zip(d.members["asset"], d.asset_zone))
                duty = [self.on_duty(cls.zone_schedule.get(zone_of[s[k]], cls.schedule)) for s in scopes]
                on = np.stack([x[0] for x in duty], axis=1)
                since = np.stack([x[1] for x in duty], axis=1)
                on, since = self.work_orders(df, key, value, [s[k] for s in scopes], on, since)
                seen = on & ~np.isnan(vals) & (times >= since)
                waiting = on & ~seen & (self.T[:, None] - since <= cls.silent_after_s * 1000)
                return (np.where(seen, vals, np.nan), np.where(seen, times, NEVER),
                        ~seen & (~on | waiting))
            k = {"zone": "zone", "station_id": "station", "segment_id": "segment"}[key[0]]
            ents = [(s[k],) for s in scopes]
            return self.asof(df, key, value, ents)
        # aggregates over the entities of each scope
        if key == ["asset_id", "metric"]:
            return self.facility_aggregate(f, scopes, df, key, value)
        ents = sorted({(k,) for k in df[key[0]].dropna().unique()})
        members = [(e, 0, None) for e in ents]
        vals, times = self.asof(df, key, value, ents)
        R = len(scopes)
        out = np.full((self.n, R), np.nan)
        newest = np.full((self.n, R), NEVER, dtype=np.int64)
        cond = c.get("cond")
        for r in range(R):
            cols = [j for j, m in enumerate(members) if m[1] == r]
            v, t = vals[:, cols], times[:, cols]
            has = ~np.isnan(v)
            n_has = has.sum(axis=1)
            newest[:, r] = np.where(has, t, NEVER).max(axis=1) if cols else NEVER
            with np.errstate(invalid="ignore", divide="ignore"):
                if agg == "sum":
                    x = np.nansum(v, axis=1)
                elif agg == "mean":
                    x = np.nansum(v, axis=1) / n_has
                elif agg == "min":
                    x = np.nanmin(np.where(has, v, np.inf), axis=1)
                elif agg == "max":
                    x = np.nanmax(np.where(has, v, -np.inf), axis=1)
                else:
                    x0 = cond["value"]
                    x0 = float(STAFF.index(x0)) if isinstance(x0, str) else float(x0)
                    if cond.get("scale"):       # a fraction of each segment's own figure
                        x0 = x0 * np.array([d.segments[members[j][0][0]].attr(cond["scale"]) for j in cols])
                    x = _cmp(v, cond["op"], x0).sum(axis=1).astype(float)
            out[:, r] = np.where(n_has > 0, x, np.nan)
        return out, newest

    def facility_aggregate(self, f, scopes, df, key, value):
        """Over the assets of each (zone, class) that are on duty and reporting at each tick: an asset
        counts when its class's schedule is open, its latest reading was taken since it opened and is
        at most silent_after_s old.  No such asset: no value - idle, unless an asset on duty has been
        silent longer than that (then no_data)."""
        c, d = f.compute, self.dims
        cond, agg = c.get("cond"), c.get("agg")
        asset_ids = np.asarray(d.members["asset"], dtype=object)
        R = len(scopes)
        out = np.full((self.n, R), np.nan)
        newest = np.full((self.n, R), NEVER, dtype=np.int64)
        idle = np.zeros((self.n, R), dtype=bool)
        for r, s in enumerate(scopes):
            cname = s.get("class") or c.get("class")
            cls = d.classes[cname]
            codes = d.class_assets(cname, s.get("zone"))
            v, t = self.asof(df, key, value, [(a, c.get("metric", cls.metric)) for a in asset_ids[codes]])
            duty = [self.on_duty(cls.zone_schedule.get(d.asset_zone[a], cls.schedule)) for a in codes]
            on = np.stack([x[0] for x in duty], axis=1)
            since = np.stack([x[1] for x in duty], axis=1)
            on, since = self.work_orders(df, key, value, list(asset_ids[codes]), on, since)
            age = self.T[:, None] - t
            limit = cls.silent_after_s * 1000
            reporting = ~np.isnan(v) & (t >= since) & (age <= limit)
            judged = on & reporting
            silent = on & ~reporting & (self.T[:, None] - since > limit)
            n = judged.sum(axis=1)
            if agg in ("count_where", "percent_where"):
                bad = _cmp(v, cls.anomaly_op, cls.anomaly_value)
                hit = judged & (bad if cond == "anomaly" else ~bad)
                x = hit.sum(axis=1).astype(float)
                if agg == "percent_where":
                    with np.errstate(invalid="ignore", divide="ignore"):
                        x = 100.0 * x / n
            else:
                raise AssertionError(f"the oracle knows no facility aggregate {agg!r}")
            out[:, r] = np.where(n > 0, x, np.nan)
            newest[:, r] = np.where(judged, t, NEVER).max(axis=1)
            idle[:, r] = (n == 0) & ~silent.any(axis=1)
        return out, newest, idle

    def work_orders(self, df, key, value, assets, on, since):
        """An asset whose latest maintenance reading is 1 is not on duty; after a 0 it counts again
        from that reading's time on (an older reading does not describe it)."""
        v, t = self.asof(df, key, value, [(a, "maintenance") for a in assets])
        known = ~np.isnan(v)
        return on & ~(known & (v >= 0.5)), np.maximum(since, np.where(known, t, NEVER))

    def on_duty(self, sched):
        """(on duty?, since when) per tick under an operating schedule; None = always."""
        if sched is None:
            return np.ones(self.n, dtype=bool), np.full(self.n, -(1 << 62), dtype=np.int64)
        key = id(sched)
        if key in self._duty:
            return self._duty[key]
        m = (self.T - self.day_start) / 60000.0                    # minutes after local midnight
        d0 = self.day_start

        def at(day0, minutes):                                     # local day start + minutes, as the ms
            return day0 + np.floor(np.round(np.asarray(minutes) * 60e6) / 1000.0).astype(np.int64)
        if sched.kind == "hours":
            a, b = sched.start_min, sched.end_min
            if a < b:
                on, since = (m >= a) & (m < b), at(d0, a)
            else:
                on = (m >= a) | (m < b)
                since = np.where(m >= a, at(d0, a), at(d0 - DAY_MS, a))
        else:
            local = pd.to_datetime(self.T, unit="ms", utc=True).tz_convert("Asia/Shanghai")
            yday = (local - pd.Timedelta(days=1)).day_of_year.to_numpy()
            rise, sset = sun_times(local.day_of_year.to_numpy(), *self.dims.site)
            _, sset_y = sun_times(yday, *self.dims.site)
            evening = sset + sched.after_sunset_min
            morning = rise - sched.before_sunrise_min
            on = (m >= evening) | (m < morning)
            since = np.where(m >= evening, at(d0, evening), at(d0 - DAY_MS, sset_y + sched.after_sunset_min))
        self._duty[key] = (on, since)
        return on, since

    # ----------------------------------------------- windows and days
    def _rows(self, f, scopes, df):
        """Each event's row among the family's scopes (-1: none)."""
        keys = f.keys
        col = {"zone": "zone", "gate": "gate_id", "camera": "camera_id", "algorithm": "algorithm",
               "route": "route_id", "stop": "stop_id", "station": "station_id", "segment": "segment_id",
               "signal": "signal", "category": "category"}
        pos = {tuple(s[k] for k in keys if k != "area"): r for r, s in enumerate(scopes)}
        ks = [k for k in keys if k != "area"]
        if not ks:
            return np.zeros(len(df), dtype=np.int64)
        tup = zip(*[df[col[k]] for k in ks])
        return np.array([pos.get(tuple(x), -1) for x in tup], dtype=np.int64)

    def _events(self, f, scopes):
        c = f.compute
        df = self.ev[f.feed]
        if c.get("where") == {"cell_id": "null"}:
            df = df[df.cell_id.isna()]
        df = df.assign(row=self._rows(f, scopes, df))
        value = c.get("value")
        if value and value != "events" and value in df:
            df = df[df[value].notna()]
        return df[df.row >= 0]

    def k_window(self, f, scopes, w):
        df = self._events(f, scopes)
        value = f.compute.get("value")
        self.db.register("ev", pd.DataFrame({"t": df.t.to_numpy(), "row": df.row.to_numpy(),
                                             "v": df[value].to_numpy(dtype=float)}))
        res = self.db.execute(
            "SELECT tk, row, count(*) AS c, sum(v) AS s, max(v) AS mx, min(v) AS mn "
            "FROM ticks JOIN ev ON ev.t > ticks.tk - ? AND ev.t <= ticks.tk GROUP BY tk, row",
            [w.seconds * 1000]).df()
        R = len(scopes)
        stat = f.compute.get("stat")
        base = 0.0 if stat in ("count", "sum") else np.nan
        out = np.full((self.n, R), base)
        ti = np.searchsorted(self.T, res["tk"].to_numpy())
        col = {"count": "c", "sum": "s", "mean": None, "max": "mx", "min": "mn"}[stat]
        v = res["s"].to_numpy() / res["c"].to_numpy() if stat == "mean" else res[col].to_numpy(dtype=float)
        out[ti, res["row"].to_numpy()] = v
        return self._feed(f, out)

    def _feed(self, f, out):
        last = self.feed_last(f.feed)
        out = np.where((last == NEVER)[:, None], np.nan, out)
        return out, np.repeat(last[:, None], out.shape[1], axis=1)

    def k_today(self, f, scopes, w):
        df = self._events(f, scopes)
        self.db.register("ev", pd.DataFrame({"t": df.t.to_numpy(), "row": df.row.to_numpy(),
                                             "v": df[f.compute.get("value")].to_numpy(dtype=float)}))
        res = self.db.execute("SELECT tk, row, sum(v) AS s FROM days JOIN ev ON ev.t >= days.d0 AND ev.t <= days.tk "
                              "GROUP BY tk, row").df()
        out = np.zeros((self.n, len(scopes)))
        out[np.searchsorted(self.T, res["tk"].to_numpy()), res["row"].to_numpy()] = res["s"].to_numpy()
        return self._feed(f, out)

    def k_distinct(self, f, scopes, w):
        df = self._events(f, scopes)
        self.db.register("ev", pd.DataFrame({"t": df.t.to_numpy(), "row": df.row.to_numpy(),
                                             "veh": df.vehicle_id.to_numpy()}))
        res = self.db.execute("SELECT tk, row, count(DISTINCT veh) AS n FROM ticks JOIN ev "
                              "ON ev.t > ticks.tk - ? AND ev.t <= ticks.tk GROUP BY tk, row", [w.seconds * 1000]).df()
        out = np.zeros((self.n, len(scopes)))
        out[np.searchsorted(self.T, res["tk"].to_numpy()), res["row"].to_numpy()] = res["n"].to_numpy()
        return self._feed(f, out)

    def k_visits_today(self, f, scopes, w):
        df, key, value = self._entity_frame(f)
        vals, times = self.asof(df, key, value, [(s["zone"],) for s in scopes])
        step = np.where(np.isnan(vals), 0.0, vals) * (TICK_MS / 1000.0)
        step[self.T <= self.day_start] = 0.0
        out = np.zeros_like(step)
        for day in np.unique(self.day_start):                # a running sum restarted every local day
            m = self.day_start == day
            out[m] = np.cumsum(step[m], axis=0)
        return out, times

    def k_change(self, f, scopes, w):
        df, key, value = self._entity_frame(f)
        vals, times = self.asof(df, key, value, [(s["zone"],) for s in scopes])
        lag = w.seconds * 1000 // TICK_MS
        before = np.full_like(vals, np.nan)
        before[lag:] = vals[:-lag]                         # ticks before the engine's first tick are unknown
        return vals - before, times

    def k_forecast(self, f, scopes, w):
        target = self.cat.families[[x.id for x in self.cat.families].index(f.compute.get("of"))]
        tin = [dict(i.id.scope) for i in self.cat.of_family(target.id)]
        series = self.raw_of[(target.id, "now")][:, [tin.index(s) for s in scopes]]
        L = f.compute.get("lookback_s") * 1000 // TICK_MS
        out = np.full((self.n, len(scopes)), np.nan)
        for k in range(self.n):
            lo = max(0, k - L + 1)
            x = (self.T[lo:k + 1] - self.T[k]) / 1000.0
            for r in range(len(scopes)):
                y = series[lo:k + 1, r]
                ok = ~np.isnan(y)
                if ok.sum() >= 2 and np.ptp(x[ok]) > 0:
                    slope, icept = np.polyfit(x[ok], y[ok], 1)
                    out[k, r] = max(0.0, icept + slope * w.seconds)
        df, key, value = self._entity_frame(target)
        _, times = self.asof(df, key, value, [(s["zone"],) for s in scopes])
        return out, times

    # -------------------------------------------------- cases, warnings
    def case_states(self) -> pd.DataFrame:
        """Long table: every (tick, case) known by then, with its opened time and current record."""
        if not hasattr(self, "_cases"):
            ev = self.ev["case"].sort_values("t")
            parts = []
            for k, T in enumerate(self.T):
                e = ev[ev.t <= T]
                if e.empty:
                    continue
                g = e.groupby("case_id")
                cur = g.tail(1).set_index("case_id")
                parts.append(cur.assign(opened=g.t.min(), k=k, T=T, D=self.day_start[k]).reset_index())
            st = pd.concat(parts, ignore_index=True)
            self._cases = st.assign(closed=st.status == "closed")
        return self._cases

    def k_case(self, f, scopes, w):
        c = f.compute
        stat, deadline, joint = c.get("stat"), c.get("deadline_s", 0) * 1000, bool(c.get("joint", False))
        key = next((k for k in ("category", "zone", "department") if k in f.keys), "area")
        st = self.case_states()
        if joint:
            st = st[st.ndept >= 2]
        if stat == "open":
            sel = st[~st.closed]
        elif stat == "overdue":
            sel = st[~st.closed & (st["T"] - st.opened > deadline)]
        elif stat == "opened":
            sel = st[st.opened >= st["D"]]
        elif stat == "close_rate":              # due: closed, or open past the deadline
            sel = st[(st.opened >= st["D"]) & (st.closed | (st["T"] - st.opened > deadline))]
            sel = sel.assign(closed=sel.closed & (sel.t - sel.opened <= deadline))     # closed on time
        else:
            sel = st[st.closed & (st.t >= st["D"])]
        if key == "department":
            sel = sel.explode("depts").rename(columns={"depts": "scope"})
        else:
            sel = sel.assign(scope={"area": None, "category": sel.category, "zone": sel.zone_id}[key]
                             if key != "area" else "all")
        names = ["all"] if key == "area" else [s[key] for s in scopes]
        sel = sel[sel.scope.isin(names)]
        col = {n: r for r, n in enumerate(names)}
        if stat == "close_rate":
            out = np.full((self.n, len(scopes)), np.nan)
            g = sel.groupby(["k", "scope"]).closed.agg(["sum", "count"]).reset_index()
            out[g.k.to_numpy(int), g.scope.map(col).to_numpy(int)] = 100.0 * g["sum"] / g["count"]
        elif stat == "time_to_close":
            out = np.full((self.n, len(scopes)), np.nan)
            g = sel.assign(m=(sel.t - sel.opened) / 60000.0).groupby(["k", "scope"]).m.mean().reset_index()
            out[g.k.to_numpy(int), g.scope.map(col).to_numpy(int)] = g.m.to_numpy()
        else:
            out = np.zeros((self.n, len(scopes)))
            g = sel.groupby(["k", "scope"]).size().reset_index(name="n")
            out[g.k.to_numpy(int), g.scope.map(col).to_numpy(int)] = g.n.to_numpy()
        return self._feed(f, out)

    def k_warning(self, f, scopes, w):
        ev = self.ev["warning"].sort_values("t")
        stat = f.compute.get("stat")
        out = np.zeros((self.n, len(scopes)))
        for k, T in enumerate(self.T):
            cur = ev[ev.t <= T].groupby("signal").tail(1)
            lv = dict(zip(cur.signal, np.where(cur.exp > T, cur.level, 0.0)))
            if stat == "level":
                out[k] = [lv.get(s["signal"], 0.0) for s in scopes]
            elif stat == "highest":
                out[k] = max(lv.values(), default=0.0)
            else:
                out[k] = float(sum(v > 0 for v in lv.values()))
        return self._feed(f, out)

    def k_visit_age(self, f, scopes, w):
        d = self.dims
        code = d.code("asset")
        a = np.array([code[s["asset"]] for s in scopes])
        lon, lat = d.asset_lon[a], d.asset_lat[a]
        kx, ky = 111_320.0 * np.cos(np.radians(lat.mean())), 110_540.0
        st = self.ev["staff"].dropna(subset=["lon", "lat"])
        dx = (st.lon.to_numpy()[:, None] - lon[None, :]) * kx
        dy = (st.lat.to_numpy()[:, None] - lat[None, :]) * ky
        near = dx * dx + dy * dy <= f.compute.get("radius_m") ** 2
        t = st.t.to_numpy()
        out = np.full((self.n, len(scopes)), np.nan)
        for r in range(len(scopes)):
            tv = np.sort(t[near[:, r]])
            i = np.searchsorted(tv, self.T, side="right") - 1
            out[:, r] = np.where(i >= 0, (self.T - tv[np.maximum(i, 0)]) / 60000.0, np.nan) if len(tv) else np.nan
        return self._feed(f, out)


def _cmp(v, op, x):
    with np.errstate(invalid="ignore"):
        return {"<": v < x, "<=": v <= x, ">": v > x, ">=": v >= x, "==": v == x, "!=": (v != x) & ~np.isnan(v)}[op]


