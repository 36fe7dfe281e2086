"""Synthetic feed tables that touch every entity of the catalog (for tests and the bench).

Not a simulator of the scenic area (that is :mod:`indicators.feeds.simulator`):
this makes plausible, seeded records of every feed kind, covering every
zone, gate, camera, facility asset class, route, stop, station, road,
warning signal, case category, department and checkpoint, so that every
indicator has input.  ``scale`` multiplies the high-volume feeds (video,
facility, crowd cells) for benchmarks.

Tables have exactly the columns of ``SCHEMAS[kind]`` plus ``arrival_time``
(event time + a random delay below ``max_delay``), like a recording.
"""
from __future__ import annotations

from datetime import datetime, timedelta, timezone

import numpy as np
import pyarrow as pa

from indicators.catalog.expand import Catalog
from indicators.feeds.schemas import (CASE_CATEGORIES, FACILITY_METRICS, SCHEMAS, VIDEO_ALGORITHMS,
                                      WARNING_COLOURS, WARNING_SIGNALS)

__all__ = ["synthetic_feeds", "to_table", "arrival_order"]

_EPOCH = datetime(1970, 1, 1, tzinfo=timezone.utc)


def to_table(kind: str, cols: dict, arrival_ms: np.ndarray | None = None) -> pa.Table:
    """A table of ``SCHEMAS[kind]`` from column lists/arrays (missing nullable columns are null)."""
    schema = SCHEMAS[kind]
    n = len(cols["event_id"])
    arrays = []
    for f in schema:
        v = cols.get(f.name)
        if v is None:
            arrays.append(pa.nulls(n, f.type))
        elif pa.types.is_timestamp(f.type):
            vals = v.tolist() if isinstance(v, np.ndarray) else list(v)
            arrays.append(pa.array(vals, pa.int64()).cast(f.type))
        else:
            arrays.append(pa.array(v.tolist() if isinstance(v, np.ndarray) and v.dtype == object else v, f.type))
    t = pa.Table.from_arrays(arrays, schema=schema)
    if arrival_ms is not None:
        t = t.append_column("arrival_time", pa.array(arrival_ms.astype(np.int64)).cast(pa.timestamp("ms", tz="UTC")))
    return t


def arrival_order(tables: dict[str, pa.Table], batch_ms: int = 1000):
    """Yield (kind, table) batches in arrival order: per ``batch_ms`` of arrival time, one batch per kind."""
    parts = []
    for kind, t in tables.items():
        if t.num_rows == 0:
            continue
        arr = t.column("arrival_time").cast(pa.int64()).to_numpy()
        parts.append((kind, t, arr // batch_ms))
    if not parts:
        return
    lo = min(int(a.min()) for _, _, a in parts)
    hi = max(int(a.max()) for _, _, a in parts)
    order = {k: np.argsort(a, kind="stable") for k, _, a in parts}
    sorted_b = {k: a[order[k]] for k, _, a in parts}
    tabs = {k: t.take(order[k]) for k, t, _ in parts}
    pos = {k: 0 for k in tabs}
    for b in range(lo, hi + 1):
        for k in tabs:
            end = int(np.searchsorted(sorted_b[k], b, side="right"))
            if end > pos[k]:
                yield k, tabs[k].slice(pos[k], end - pos[k])
                pos[k] = end


def synthetic_feeds(catalog: Catalog, start: datetime, seconds: int, *, seed: int = 1, scale: float = 1.0,
                    max_delay_ms: int = 0) -> dict[str, pa.Table]:
    """Records of every feed kind over ``[start, start + seconds)``; see the module docstring."""
    rng = np.random.default_rng(seed)
    d = catalog.dims
    t0 = (start - _EPOCH) // timedelta(milliseconds=1)
    span = seconds * 1000
    out: dict[str, dict] = {}

    def times(n: int) -> np.ndarray:
        return np.sort(t0 + rng.integers(0, span, n))

    def periodic(period_s: int, n_entities: int) -> tuple[np.ndarray, np.ndarray]:
        """Each entity reports every period (with a random phase): (times, entity index)."""
        phase = rng.integers(0, period_s * 1000, n_entities)
        k = np.arange(0, span // (period_s * 1000) + 1)
        tt = (t0 + phase[:, None] + k[None, :] * period_s * 1000).ravel()
        ee = np.repeat(np.arange(n_entities), len(k))
        keep = tt < t0 + span
        return tt[keep], ee[keep]

    zones = list(d.members["zone"])
    cap = np.array([d.zone_attrs[z]["capacity_instantaneous"] for z in zones], dtype=float)

    # crowd: zone totals every 30 s following a slow wave, plus cell records (filtered out by the families)
    tt, ee = periodic(30, len(zones))
    phase = rng.uniform(0, 2 * np.pi, len(zones))
    load = 0.55 + 0.35 * np.sin(phase[ee] + (tt - t0) / 1.8e6) + rng.normal(0, 0.03, len(tt))
    count = np.maximum(0, np.round(cap[ee] * load)).astype(np.int64)
    nc = int(len(tt) * scale)
    tc = times(nc)
    ec = rng.integers(0, len(zones), nc)
    out["crowd"] = {"event_time": np.concatenate([tt, tc]),
                    "zone_id": np.array(zones, dtype=object)[np.concatenate([ee, ec])],
                    "cell_id": np.array([None] * len(tt) + [f"c{i % 50}" for i in range(nc)], dtype=object),
                    "count": np.concatenate([count, rng.integers(0, 200, nc)])}

    gates = list(d.members["gate"])
    tt, ee = periodic(10, len(gates))
    out["gate"] = {"event_time": tt, "gate_id": np.array(gates, dtype=object)[ee],
                   "zone_id": d.asset_zone[[d.code("asset")[g] for g in np.array(gates)[ee]]] if len(ee) else [],
                   "entries": rng.poisson(4, len(tt)), "exits": rng.poisson(3, len(tt)),
                   "interval_s": np.full(len(tt), 10)}

    cams = np.array(d.members["camera"], dtype=object)
    cam_zone = d.asset_zone[[d.code("asset")[c] for c in cams]]
    nv = int(seconds * 0.5 * scale) + 200
    cv = rng.integers(0, len(cams), nv)
    zone_given = rng.random(nv) < 0.5
    out["video"] = {"event_time": times(nv), "camera_id": cams[cv],
                    "algorithm": np.array(VIDEO_ALGORITHMS, dtype=object)[rng.integers(0, 24, nv)],
                    "confidence": rng.uniform(0.5, 1, nv),
                    "zone_id": np.where(zone_given, cam_zone[cv], None).astype(object),
                    "object_count": rng.integers(1, 20, nv)}

    # facility: every class's assets report now and then; anomalies a few per cent of readings
    rows_a, rows_m, rows_v = [], [], []
    metrics = list(FACILITY_METRICS)
    normal = {"lamp_on": (1.0, 0.0), "hydrant_pressure_mpa": (0.15, 0.05), "cover_tilt_deg": (1.0, 12.0),
              "well_water_level_m": (1.5, 0.1), "camera_online": (1.0, 0.0), "lift_running": (1.0, 0.0),
              "escalator_running": (1.0, 0.0), "toilet_occupancy": (0.5, 0.95), "bin_fill": (0.4, 0.9),
              "lamp_power_w": (60.0, 0.0), "cover_displacement_mm": (0.0, 30.0)}
    for cname, cls in d.classes.items():
        assets = d.class_assets(cname)
        n = max(len(assets), int(len(assets) * seconds / 300 * scale))
        a = np.concatenate([assets, rng.choice(assets, n - len(assets))]) if n > len(assets) else assets
        ok, bad = normal[cls.metric]
        p_bad = 0.05 if len(assets) >= 20 else 0.25          # small classes still see a failure now and then
        v = np.where(rng.random(len(a)) < p_bad, bad, ok + rng.normal(0, 0.01, len(a)) * (ok != 1.0))
        rows_a.append(a)
        rows_m.append(np.full(len(a), metrics.index(cls.metric)))
        rows_v.append(v)
    # work orders: a few assets of each class go under maintenance, most come back before the end
    rows_t = [t0 + rng.integers(0, span, sum(len(x) for x in rows_a))]
    mm = metrics.index("maintenance")
    for cname in d.classes:
        assets = d.class_assets(cname)
        k = max(1, len(assets) // 50)
        w = rng.choice(assets, k, replace=False)
        begin = t0 + rng.integers(0, span // 2, k)
        back = rng.random(k) < 0.7
        end = begin + rng.integers(span // 20, span // 2, k)
        rows_a += [w, w[back]]
        rows_m += [np.full(k, mm), np.full(int(back.sum()), mm)]
        rows_v += [np.ones(k), np.zeros(int(back.sum()))]
        rows_t += [begin, end[back]]
    a = np.concatenate(rows_a)
    out["facility"] = {"event_time": np.concatenate(rows_t),
                       "asset_id": np.array(d.members["asset"], dtype=object)[a],
                       "asset_type": d.asset_type[a],
                       "metric": np.array(metrics, dtype=object)[np.concatenate(rows_m)],
                       "value": np.round(np.abs(np.concatenate(rows_v)), 4)}

    routes = list(d.members["route"])
    stop_of_route = {r: [s for s, rs in d.stop_routes.items() if r in rs] for r in routes}
    veh = [(r, f"bus-{r}-{i}") for r in routes for i in range(int(rng.integers(2, 6)))]
    tt, ee = periodic(20, len(veh))
    vr = np.array([r for r, _ in veh], dtype=object)[ee]
    stop = np.array([rng.choice(stop_of_route[r]) if rng.random() < 0.5 and stop_of_route[r] else None for r in vr],
                    dtype=object)
    out["bus"] = {"event_time": tt, "vehicle_id": np.array([v for _, v in veh], dtype=object)[ee], "route_id": vr,
                  "stop_id": stop, "speed_mps": rng.uniform(0, 12, len(tt)),
                  "occupancy_pct": rng.uniform(10, 130, len(tt)), "delay_s": rng.integers(-60, 900, len(tt))}

    stations = list(d.members["station"])
    tt, ee = periodic(30, len(stations))
    out["station"] = {"event_time": tt, "station_id": np.array(stations, dtype=object)[ee],
                      "entries": rng.poisson(120, len(tt)), "exits": rng.poisson(150, len(tt)),
                      "interval_s": np.full(len(tt), 30), "platform_persons": rng.integers(50, 1800, len(tt)),
                      "control_level": rng.integers(0, 4, len(tt))}

    segs = list(d.members["segment"])
    tt, ee = periodic(60, len(segs))
    out["traffic"] = {"event_time": tt, "segment_id": np.array(segs, dtype=object)[ee],
                      "speed_kmh": rng.uniform(3, 60, len(tt)), "flow_vph": rng.uniform(200, 2600, len(tt)),
                      "occupancy_pct": rng.uniform(5, 90, len(tt))}

    tt, ee = periodic(60, 2)
    out["weather"] = {"event_time": tt, "station_id": np.array(["gz-haizhu-01", "gz-tianhe-02"], dtype=object)[ee],
                      "temperature_c": rng.uniform(24, 38, len(tt)), "rain_1h_mm": rng.uniform(0, 60, len(tt)),
                      "wind_speed_ms": rng.uniform(0, 20, len(tt)), "gust_ms": rng.uniform(0, 30, len(tt)),
                      "humidity_pct": rng.uniform(50, 100, len(tt)), "visibility_m": rng.uniform(30, 10000, len(tt))}

    nw = max(30, seconds // 60)
    status = rng.choice(["issued", "updated", "cancelled"], nw, p=[0.5, 0.3, 0.2])
    exp = times(nw) + rng.integers(60_000, 3_600_000, nw)
    out["warning"] = {"event_time": times(nw), "signal": np.array(WARNING_SIGNALS, dtype=object)[np.arange(nw) % 10],
                      "colour": np.array(WARNING_COLOURS, dtype=object)[rng.integers(0, 5, nw)], "status": status,
                      "expires": np.where(rng.random(nw) < 0.5, exp, 0)}
    out["warning"]["expires"] = [int(x) if x else None for x in out["warning"]["expires"]]

    # cases: each opens, moves through the loop, some close; categories, zones, departments all covered
    depts = list(d.members["department"])
    ncase = max(60, seconds // 20)
    opened = times(ncase) - rng.integers(0, 6 * 3_600_000, ncase) * (rng.random(ncase) < 0.3)
    recs = {"event_time": [], "case_id": [], "category": [], "status": [], "zone_id": [], "departments": []}
    for i in range(ncase):
        steps = ["open", "dispatched", "handling", "verifying", "closed"][: int(rng.choice([1, 2, 3, 4, 5, 5, 5]))]
        nd = int(rng.integers(1, 4))
        dep = [depts[(i + j) % len(depts)] for j in range(nd)]
        t = int(opened[i])
        for s in steps:
            recs["event_time"].append(t)
            recs["case_id"].append(f"case-{seed}-{i}")
            recs["category"].append(CASE_CATEGORIES[i % len(CASE_CATEGORIES)])
            recs["status"].append(s)
            recs["zone_id"].append(zones[i % len(zones)] if i % 7 else None)
            recs["departments"].append(dep)
            t += int(rng.integers(30_000, 900_000))
    et = np.array(recs["event_time"], dtype=np.int64)
    keep = (et >= t0) & (et < t0 + span)
    out["case"] = {k: np.array(v, dtype=object)[keep] if k != "event_time" else et[keep] for k, v in recs.items()}

    cps = d.assets_of(["checkpoint"])
    nstaff = 12
    tt, ee = periodic(30, nstaff)
    near = rng.random(len(tt)) < 0.4
    cp = rng.choice(cps, len(tt))
    lon = np.where(near, d.asset_lon[cp] + rng.normal(0, 0.0001, len(tt)), 113.32 + rng.normal(0, 0.005, len(tt)))
    lat = np.where(near, d.asset_lat[cp] + rng.normal(0, 0.0001, len(tt)), 23.108 + rng.normal(0, 0.003, len(tt)))
    out["staff"] = {"event_time": tt, "staff_id": np.array([f"staff-{i:03d}" for i in range(nstaff)], dtype=object)[ee],
                    "lon": lon, "lat": lat,
                    "status": np.array(["available", "busy", "offline"], dtype=object)[rng.integers(0, 3, len(tt))]}

    tables = {}
    for kind, cols in out.items():
        n = len(cols["event_time"])
        cols["event_id"] = np.array([f"{kind}-{seed}-{i}" for i in range(n)], dtype=object)
        cols["source"] = np.full(n, "synthetic", dtype=object)
        et = np.asarray(cols["event_time"], dtype=np.int64)
        arr = et + (rng.integers(0, max_delay_ms, n) if max_delay_ms > 0 else 0)
        tables[kind] = to_table(kind, cols, arr)
    return tables
