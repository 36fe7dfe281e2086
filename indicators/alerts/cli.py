"""CLI of the alerts: ``alerts``, ``cases``, ``plans`` and ``bench forecast``.

Registered into ``scenic-twin`` by ``register(sub, bench_sub)``; also
runnable alone as ``python -m indicators.alerts.cli …``.  The listing
commands read the store at ``--store`` (a file path or a ``postgresql://`` URL
with ``--area``; default SCENIC_TWIN_STORE, else ``var/alerts.sqlite``, where
SCENIC_TWIN_VAR replaces ``var/``) and never create one.
"""
from __future__ import annotations

import json
import sys
import time
from datetime import date, datetime, timedelta, timezone
from pathlib import Path

from .store import default_store_path


def _open(args):
    from indicators import sqlstore

    from .store import AlertStore
    p, area = sqlstore.cli_target(args.store, default_store_path()), sqlstore.cli_area(args.area)
    if not sqlstore.exists(p, schema=f"area_{area}"):
        raise FileNotFoundError(f"no alert store at {sqlstore.describe(p)}"
                                + (f" for area {area}" if sqlstore.is_postgres(p) else "")
                                + " (the runtime creates it; --store PATH or URL to read another)")
    return AlertStore.open(p, area=area)


def _print(obj, as_json: bool, text_lines) -> None:
    if as_json:
        print(json.dumps(obj, ensure_ascii=False, indent=2, default=str))
    else:
        for line in text_lines:
            print(line)


def _cmd_alerts(args) -> int:
    from .state import explain
    with _open(args) as st:
        states = st.active_alerts()
        out = []
        for s in states:
            d = explain(s)
            evs = st.events(s.alert_id)
            last = next((e for e in reversed(evs) if e["kind"] in ("firing", "tier_up", "tier_down", "refiring",
                                                                   "pending", "no_data", "error")), None)
            d["reason"] = last["reason"] if last else None
            d["acknowledged_by"] = s.acked_by
            d["escalation_level"] = s.escalation_level
            d["silenced_until"] = s.silenced_until.isoformat() if s.silenced_until else None
            out.append(d)
    _print(out, args.json, [f"{d['status']:10s} {d['tier'] or '-':7s} {d['rule_id']}  {d.get('reason') or ''}"
                            for d in out] or ["no active alerts"])
    return 0


def _cmd_cases(args) -> int:
    from .cases import case_to_dict
    with _open(args) as st:
        cases = st.cases(status=args.status) if args.status else st.cases()
        out = []
        for c in cases:
            d = case_to_dict(c)
            d["steps"] = st.case_steps(c.case_id)
            out.append(d)
    _print(out, args.json, [f"{c['status']:10s} {c['priority']:7s} {c['case_id']}  {c['place_zh']} {c['category']}"
                            for c in out] or ["no cases"])
    return 0


def _cmd_plans(args) -> int:
    from .plans import instance_to_dict
    with _open(args) as st:
        out = []
        for p in st.plans(active_only=not args.all):
            d = instance_to_dict(p)
            d["events"] = st.plan_events(p.instance_id)
            out.append(d)
    _print(out, args.json, [f"{p['status']:7s} {p['plan_id']} level {p['level']}  opened {p['opened_at']}"
                            for p in out] or ["no plans"])
    return 0


# --------------------------------------------------------------------------- bench
def run_forecast_bench(train_days: int = 10, test_days: int = 3, seed: int = 1, scenario: str = "normal-weekday",
                       first_day: date = date(2026, 4, 6), progress=None) -> dict:
    """Simulate ``train_days + test_days`` whole days of the crowd and gate
    feeds, fit the forecast on the first ones, score it and persistence on
    the held-out ones, and time one evaluation of all zones."""
    import numpy as np
    from indicators.feeds.simulator import Faults, simulate
    from twin_assets import inventory as inv

    from .forecast import DaySeries, Profile, ZoneForecaster, day_from_feed, day_type, evaluate, fit_params

    zones = inv.zones(inv.load())
    zone_ids = list(zones["zone_id"])
    cap = zones["capacity_instantaneous"].to_numpy(float)
    tz = timezone(timedelta(hours=8))
    loads, ents, exts, dts = [], [], [], []
    t0 = time.perf_counter()
    for d in range(train_days + test_days):
        day = date.fromordinal(first_day.toordinal() + d)
        start = datetime(day.year, day.month, day.day, tzinfo=tz)
        items = simulate(scenario, start, timedelta(days=1), seed * 1000 + d, kinds=["crowd", "gate"],
                         faults=Faults.off())
        lo, en, ex = day_from_feed(items, zone_ids, cap, int(start.timestamp() * 1000))
        loads.append(lo)
        ents.append(en)
        exts.append(ex)
        dts.append(day_type(day))
        if progress:
            progress(f"simulated {day} ({d + 1}/{train_days + test_days})")
    sim_s = time.perf_counter() - t0
    series = DaySeries(np.stack(loads), np.stack(ents), np.stack(exts), np.array(dts))
    train, test = series[slice(0, train_days)], series[slice(train_days, None)]
    t0 = time.perf_counter()
    params = fit_params(train)
    fit_s = time.perf_counter() - t0
    profile = Profile.fit(train.load, train.day_types)
    result = evaluate(test, profile, params)
    # evaluation cost per tick: one update + one 30-minute path for all zones
    f = ZoneForecaster(len(zone_ids), params, profile)
    L, E, X = test.load[0], test.entries[0], test.exits[0]
    t0 = time.perf_counter()
    for t in range(1440):
        f.update(t, int(test.day_types[0]), L[:, t], E[:, t], X[:, t])
        f.path(30)
    tick_us = (time.perf_counter() - t0) / 1440 * 1e6
    return {
        "scenario": scenario, "train_days": train_days, "test_days": test_days, "zones": zone_ids,
        "params": params.__dict__, "simulate_s": round(sim_s, 2), "fit_s": round(fit_s, 3),
        "tick_us_all_zones": round(tick_us, 1),
        **{k: (round(v, 4) if isinstance(v, float) else v) for k, v in result.items()},
        "goal_15_min_30pct_lower": result["improvement_15"] >= 0.30,
    }


def _cmd_bench_forecast(args) -> int:
    r = run_forecast_bench(args.train_days, args.test_days, args.seed, args.scenario,
                           progress=None if args.json else lambda s: print(s, file=sys.stderr))
    if args.json:
        print(json.dumps(r, ensure_ascii=False, indent=2))
        return 0
    print(f"forecast bench: {r['scenario']}, {r['train_days']} history days, {r['test_days']} held-out days, "
          f"{len(r['zones'])} zones (load rate in % of instantaneous capacity)")
    for h in (15, 30):
        print(f"  {h:2d} min  model MAE {r[f'mae_{h}']:.3f}  persistence MAE {r[f'persistence_mae_{h}']:.3f}  "
              f"-> {100 * r[f'improvement_{h}']:.1f} % lower")
    print(f"  params {r['params']}")
    print(f"  cost per tick (update + 30-min path, all zones): {r['tick_us_all_zones']:.1f} µs; "
          f"fit {r['fit_s']:.2f} s; simulation {r['simulate_s']:.1f} s")
    print(f"  goal (≥ 30 % lower at 15 min): {'met' if r['goal_15_min_30pct_lower'] else 'NOT met'}")
    return 0


# --------------------------------------------------------------------------- registration
def register(sub, bench_sub) -> None:
    """Add ``alerts``, ``cases``, ``plans`` and ``bench forecast`` to ``scenic-twin``."""
    store_help = ("alert store: a file path or postgresql://… (default SCENIC_TWIN_STORE, else var/alerts.sqlite; "
                  "SCENIC_TWIN_VAR replaces var/)")
    area_help = "on PostgreSQL: the scenic area (default SCENIC_TWIN_AREA or canton-tower)"
    a = sub.add_parser("alerts", help="active alerts with tier, reason and values",
                       description="List the active alerts of the alert store: tier, threshold, why they fired "
                                   "(the values over the pending period), acknowledgement and escalation.")
    a.add_argument("--json", action="store_true", help="print JSON")
    a.add_argument("--store", default=None, help=store_help)
    a.add_argument("--area", default=None, help=area_help)
    a.set_defaults(func=_cmd_alerts)
    c = sub.add_parser("cases", help="dispatched cases and their steps (立案→派遣→处置→核查→结案)",
                       description="List the cases of the alert store with every step (who, when, note).")
    c.add_argument("--json", action="store_true", help="print JSON")
    c.add_argument("--store", default=None, help=store_help)
    c.add_argument("--area", default=None, help=area_help)
    c.add_argument("--status", default=None, help="only cases in this status (open, dispatched, … closed)")
    c.set_defaults(func=_cmd_cases)
    p = sub.add_parser("plans", help="emergency plans that are running (or all with --all)",
                       description="List emergency plan instances: level, steps with departments and deadlines, "
                                   "activation, step completions and closure.")
    p.add_argument("--json", action="store_true", help="print JSON")
    p.add_argument("--store", default=None, help=store_help)
    p.add_argument("--area", default=None, help=area_help)
    p.add_argument("--all", action="store_true", help="closed plans too")
    p.set_defaults(func=_cmd_plans)
    b = bench_sub.add_parser("forecast", help="15/30-minute load forecast against persistence on held-out days",
                             description="Simulate days of crowd and gate feeds, fit the forecast on the first, "
                                         "report MAE at 15 and 30 minutes against persistence on the held-out "
                                         "days and the evaluation cost per tick for all zones.")
    b.add_argument("--train-days", type=int, default=10)
    b.add_argument("--test-days", type=int, default=3)
    b.add_argument("--seed", type=int, default=1)
    b.add_argument("--scenario", default="normal-weekday")
    b.add_argument("--json", action="store_true")
    b.set_defaults(func=_cmd_bench_forecast)
