"""Liveness: each of the 1,373 indicators follows its own input.

A base recording (synthetic feeds for the last half hour, plus old open
joint-enforcement cases and one warning in force) is run up to the tick
before ``T_END``; the engine's state is kept.  Then, for every indicator in
turn, the state is restored, a few records that change *that indicator's*
input are sent at ``T_END`` - a crowd total for its zone, a video event of
its algorithm in its zone, a reading that flips one asset of its class in
its zone (for a zone's facility counts: readings that make every asset of the
class there report, all anomalous or all normal, since only reporting assets
count), a closing record for an overdue case of its category ... - and the
value at ``T_END`` must differ from the value without them.  A family whose
wiring is dead, or reads another scope's input, fails here.
"""
from __future__ import annotations

from collections import defaultdict
from datetime import datetime, timedelta, timezone

import numpy as np
import pyarrow as pa
import pytest

from indicators.catalog import load_catalog
from indicators.engine import Engine
from indicators.engine.synthetic import arrival_order, synthetic_feeds, to_table
from indicators.feeds.schemas import CASE_CATEGORIES

TICK = timedelta(seconds=10)
T_END = datetime(2025, 10, 1, 12, 0, tzinfo=timezone.utc)        # 20:00 local: the old cases are from today;
# lamps are due on (after sunset), the tower and the metro are open, so every facility asset is on duty
BASE = timedelta(minutes=30)
EPOCH = datetime(1970, 1, 1, tzinfo=timezone.utc)
T_MS = (T_END - EPOCH) // timedelta(milliseconds=1)


def ms(dt: datetime) -> int:
    return (dt - EPOCH) // timedelta(milliseconds=1)


class Feed:
    """Builds one-row-per-call tables of a feed kind at T_END (unique event ids)."""

    n = 0

    @classmethod
    def rows(cls, kind: str, rows: list[dict], t: int = T_MS) -> tuple[str, pa.Table]:
        cols: dict[str, list] = defaultdict(list)
        for r in rows:
            cls.n += 1
            r = {"event_id": f"live-{kind}-{cls.n}", "event_time": t, "source": "liveness", **r}
            for k, v in r.items():
                cols[k].append(v)
        keys = set().union(*rows) | {"event_id", "event_time", "source"}
        return kind, to_table(kind, {k: (np.array(cols[k], dtype=object) if k not in ("event_time",) else cols[k])
                                     for k in keys})


@pytest.fixture(scope="module")
def world(inventory):
    cat = load_catalog(inventory=inventory)
    d = cat.dims
    start = T_END - BASE
    tables = synthetic_feeds(cat, start, int(BASE.total_seconds()) - 10, seed=4, scale=0.2)
    tables.pop("warning")
    # old open joint cases: one per department (so per category and zone too), opened 5 h ago
    zones, depts = list(d.members["zone"]), list(d.members["department"])
    old = []
    for i, dep in enumerate(depts):
        old.append({"case_id": f"old-{i}", "category": CASE_CATEGORIES[i % 12], "status": "open",
                    "zone_id": zones[i % len(zones)], "departments": [dep, depts[(i + 1) % len(depts)]]})
    old_t = ms(T_END - timedelta(hours=5))
    warn = [{"signal": "rainstorm", "colour": "yellow", "status": "issued", "area": "Haizhu"}]
    eng = Engine(cat, tick=TICK, allowed_lateness=TICK, start=T_END - timedelta(hours=5, seconds=1))
    eng.ingest(*Feed.rows("case", old, old_t))
    eng.ingest(*Feed.rows("warning", warn, ms(T_END - timedelta(hours=1))))
    eng.heartbeat(start - timedelta(seconds=1) + TICK)
    eng.advance(start - timedelta(seconds=1))
    for kind, t in arrival_order(tables, 10_000):
        eng.ingest(kind, t)
        eng.advance(T_END - TICK)
    eng.heartbeat(T_END)
    eng.advance(T_END - TICK)
    assert eng.last_tick == T_END - TICK
    assert sum(s["late"] for s in eng.stats.values()) == 0
    snap = eng.snapshot()
    eng.heartbeat(T_END + TICK)
    base = eng.advance(T_END)
    return cat, eng, snap, base, tables, old


def latest_readings(tables, kind, key):
    df = tables[kind].to_pandas().sort_values("event_time")
    return df.groupby(key).tail(1).set_index(key)


def perturbation(ind, cat, base, tables, old) -> list[tuple[str, pa.Table]]:
    """Records at T_END that change this indicator's input (see the module docstring)."""
    f = ind.family
    s = ind.scope
    d = cat.dims
    fid = f.id
    v0 = base.values[ind.index]
    zone = s.get("zone")
    if f.feed == "crowd":
        area = d.zone_attrs[zone]["effective_area_m2"]
        return [Feed.rows("crowd", [{"zone_id": zone, "cell_id": None, "count": int(5 * area) + 1000}])]
    if f.feed == "gate":
        gate = s.get("gate") or next(g for g in d.members["gate"] if d.asset_zone[d.code("asset")[g]] == zone)
        return [Feed.rows("gate", [{"gate_id": gate, "zone_id": zone or "", "entries": 500, "exits": 200,
                                    "interval_s": 10}])]
    if f.feed == "video":
        zone = zone or d.asset_zone[d.code("asset")[d.members["camera"][0]]]
        cam = next(c for c in d.members["camera"] if d.asset_zone[d.code("asset")[c]] == zone)
        return [Feed.rows("video", [{"camera_id": cam, "algorithm": s.get("algorithm", "fall"), "confidence": 0.9,
                                     "zone_id": zone, "object_count": 3}])]
    if f.feed == "facility":
        cname = s.get("class") or f.compute.get("class")
        cls = d.classes[cname]
        key = s.get("asset") or s.get("camera")
        assets = [key] if key else list(np.asarray(d.members["asset"], dtype=object)[d.class_assets(cname, zone)])
        last = latest_readings(tables, "facility", ["asset_id", "metric"])
        a = assets[0]
        cur = last["value"].get((a, cls.metric), np.nan)
        bad = cls.anomaly_value + (-0.05 if cls.anomaly_op == "<" else 1.0)
        good = cls.anomaly_value + (0.5 if cls.anomaly_op == "<" else -0.5)
        if f.compute.get("agg", "value") != "value":
            # only assets on duty and reporting count: let all of them report, all anomalous - or all
            # normal when they already are
            all_bad = v0 == (0.0 if fid == "facility.availability" else float(len(assets)))
            return [Feed.rows("facility", [{"asset_id": x, "asset_type": d.asset_type[d.code("asset")[x]],
                                            "metric": cls.metric, "value": float(good if all_bad else bad)}
                                           for x in assets])]
        if np.isnan(cur):
            new = bad
        else:
            new = (1.0 - cur) if cur in (0.0, 1.0) else cur + 0.05
        return [Feed.rows("facility", [{"asset_id": a, "asset_type": cls.asset_types[0], "metric": cls.metric,
                                        "value": float(new)}])]
    if f.feed == "bus":
        if "stop" in s:
            route = next(r for r in d.stop_routes[s["stop"]])
            return [Feed.rows("bus", [{"vehicle_id": "live-bus", "route_id": route, "stop_id": s["stop"],
                                       "speed_mps": 1.0, "occupancy_pct": 50.0, "delay_s": 0}])]
        return [Feed.rows("bus", [{"vehicle_id": "live-bus", "route_id": s["route"], "speed_mps": 29.0,
                                   "occupancy_pct": 290.0, "delay_s": 5000}])]
    if f.feed == "station":
        pp = (0 if np.isnan(v0) else v0) + 7
        lvl = 0 if v0 == 3 else 3
        return [Feed.rows("station", [{"station_id": s["station"], "entries": 900, "exits": 900, "interval_s": 30,
                                       "platform_persons": int(pp) if fid.endswith("platform_persons") else 10,
                                       "control_level": lvl}])]
    if f.feed == "traffic":
        speeds = {i.scope["segment"]: base.values[i.index] for i in cat.of_family("traffic.speed")}
        if fid == "traffic.congested_segments":
            seg = next((g for g, v in speeds.items() if v >= 20), next(iter(speeds)))
            new = 5.0 if speeds[seg] >= 20 else 50.0
        else:
            seg = s.get("segment") or next(iter(speeds))
            new = 99.0
        return [Feed.rows("traffic", [{"segment_id": seg, "speed_kmh": new, "flow_vph": 2999.0,
                                       "occupancy_pct": 99.0}])]
    if f.feed == "weather":
        x = 0.0 if np.isnan(v0) else v0
        vals = {"temperature_c": x + 10, "rain_1h_mm": x + 10, "wind_speed_ms": x + 10, "gust_ms": x + 10,
                "humidity_pct": min(100.0, x + 10) if x < 95 else 50.0, "visibility_m": x / 2}
        return [Feed.rows("weather", [{"station_id": "gz-haizhu-01", **vals}])]
    if f.feed == "warning":
        sig = s.get("signal", "typhoon")
        colour = "red" if v0 != 5 else "blue"
        return [Feed.rows("warning", [{"signal": sig, "colour": colour, "status": "issued", "area": "Haizhu"}])]
    if f.feed == "staff":
        if fid == "patrol.visit_age":
            a = d.code("asset")[s["asset"]]
            return [Feed.rows("staff", [{"staff_id": "live-staff", "lon": float(d.asset_lon[a]),
                                         "lat": float(d.asset_lat[a]), "status": "busy"}])]
        return [Feed.rows("staff", [{"staff_id": "live-staff", "lon": 113.3, "lat": 23.1,
                                     "status": fid.split(".")[1]}])]
    if f.feed == "case":
        return case_perturbation(ind, cat, v0, old)
    raise AssertionError(f"no perturbation for {fid}")


def case_perturbation(ind, cat, v0, old):
    f, s = ind.family, ind.scope
    st = f.compute.get("stat")
    cat_ = s.get("category", "litter")
    zone = s.get("zone", "west_plaza")
    dep = s.get("department", "sanitation")
    if st == "overdue" or (st == "time_to_close"):
        # close an old open (overdue) case of this scope
        match = [c for c in old if c["category"] == cat_ and ("category" in s or "zone" not in s and "department" not in s)
                 or ("zone" in s and c["zone_id"] == zone) or ("department" in s and dep in c["departments"])]
        c = match[0] if match else old[0]
        return [Feed.rows("case", [{**c, "status": "closed"}])]
    joint = bool(f.compute.get("joint", False))
    depts = [dep, "roads" if dep != "roads" else "sanitation"] if joint or "department" in s else [dep]
    status = "open"
    if st == "close_rate":
        # a case closed at once is due and on time: the on-time rate moves unless it is already 100 %
        # (a new open case is not due yet and leaves it as it is)
        status = "closed"
    return [Feed.rows("case", [{"case_id": f"new-{ind.index}", "category": cat_, "status": status, "zone_id": zone,
                                "departments": depts}])]


def test_the_base_gives_almost_every_indicator_a_value(world):
    cat, _, _, base, _, _ = world
    assert np.mean(~np.isnan(base.values)) > 0.97


def test_every_indicator_follows_its_input(world):
    cat, eng, snap, base, tables, old = world
    dead = []
    for ind in cat.indicators:
        eng.load_snapshot(snap)
        for kind, table in perturbation(ind, cat, base, tables, old):
            r = eng.ingest(kind, table)
            assert r.accepted == table.num_rows, (ind.text, r)
        eng.heartbeat(T_END + TICK)
        tick = eng.advance(T_END)
        a, b = base.values[ind.index], tick.values[ind.index]
        if a == b or (np.isnan(a) and np.isnan(b)):
            dead.append(f"{ind.text}: {a!r} -> {b!r}")
    assert not dead, f"{len(dead)} indicators did not follow their input:\n  " + "\n  ".join(dead[:40])


def test_a_perturbation_moves_only_its_own_scope(world):
    """The crowd record of one zone changes that zone's crowd indicators and no other zone's."""
    cat, eng, snap, base, _, _ = world
    eng.load_snapshot(snap)
    eng.ingest(*Feed.rows("crowd", [{"zone_id": "west_plaza", "cell_id": None, "count": 99999}]))
    eng.heartbeat(T_END + TICK)
    tick = eng.advance(T_END)
    moved = {cat.indicators[i].text for i in np.flatnonzero(~np.isclose(tick.values, base.values, equal_nan=True))}
    assert "crowd.load_rate:zone=west_plaza@now" in moved
    assert all("zone=west_plaza" in m for m in moved), sorted(m for m in moved if "zone=west_plaza" not in m)
