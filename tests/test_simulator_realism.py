"""The simulator behaves like the place (issue 15): each test checks one behaviour against
the published figure it is built on (the sources are in data/scenarios.toml).

- flow control: Haixin Bridge's timed reservations on statutory holidays, entries stopped at a
  zone's capacity, the light show cancelled past the safe load (27-28 Nov 2018);
- visitors leave with the last train (23:17) and the bridge's closing (23:00);
- everyday device outages: cameras >= 98 % working (NDRC 2015), lamps >= 96 % lit;
- typhoon winds within Typhoon Mangkhut's (2018) magnitudes, with GB 50009's height profile;
- road speeds like Guangzhou's published peak (Amap Q4 2019: index 1.758, 23.81 km/h), and
  weekend rush hours that are not the weekday's.

Each test simulates only the hours and feed kinds it needs (faults off).
"""
from __future__ import annotations

from datetime import date, datetime, timedelta

import numpy as np
import pandas as pd
import pytest

from indicators.feeds.scenarios import LOCAL, load
from indicators.feeds.simulator import Faults, _default_world, collect, simulate

CATALOG = load()
WORLD = _default_world()
C1 = dict(zip(WORLD.zone_ids, WORLD.c1))


def run(scenario: str, start: datetime, hours: float, kinds: tuple[str, ...], seed: int = 1):
    sim = simulate(CATALOG[scenario], start, timedelta(hours=hours), seed, faults=Faults.off(), kinds=kinds)
    tables, _ = collect(sim)
    return sim, {k: tables[k].to_pandas() for k in kinds}


def local(ts: pd.Series) -> pd.Series:
    return ts.dt.tz_convert("Asia/Shanghai")


def crowd_frame(df: pd.DataFrame) -> pd.DataFrame:
    df = df.copy()
    df["t"] = local(df.event_time).dt.floor("min")
    df["load"] = df["count"] / df.zone_id.map(C1)
    return df


# ------------------------------------------------------------------ flow control

def test_flow_control_holds_the_bridge_near_its_reservation_capacity_on_national_day():
    """National Day evening: the bridge's timed reservations (statutory holidays since Jul 2024,
    FACTS.md §2) hold the deck near the reservation capacity - not at 1.35-1.80 x its capacity as
    before - while the Saturday light show, no statutory holiday, has no reservations and its
    bridge fills to the entry stop at 100 %."""
    zp = CATALOG["national-day"].num("crowd.zones")["haixin_bridge"]
    reserved = zp["reservation_load"] * C1["haixin_bridge"]                    # 0.8 x 1,089 = 871
    _, t = run("national-day", datetime(2026, 10, 1, 18, 0, tzinfo=LOCAL), 4, ("crowd", "gate"))
    cr = crowd_frame(t["crowd"])
    bridge = cr[cr.zone_id == "haixin_bridge"].set_index("t")["count"]
    evening = bridge.between_time("19:00", "21:59")
    assert evening.max() <= reserved + 1e-9, evening.max()
    assert 0.93 * reserved <= evening.mean() <= reserved, (evening.mean(), reserved)
    assert evening.min() >= 0.85 * reserved, evening.min()
    # the gates admit only as many as leave (one in, one out) and their counts add up to the deck
    g = t["gate"][t["gate"].zone_id == "haixin_bridge"].copy()
    g["t"] = local(g.event_time).dt.floor("min")
    flows = g.groupby("t")[["entries", "exits"]].sum()
    net = (flows.entries - flows.exits).reindex(bridge.index)
    assert (bridge.diff().iloc[1:] == net.iloc[1:]).all()
    # not a statutory holiday: no reservations on the light-show Saturday, the entry stop at 100 %
    _, s = run("light-show", datetime(2026, 11, 21, 19, 30, tzinfo=LOCAL), 0.5, ("crowd",))
    sb = crowd_frame(s["crowd"]).query("zone_id == 'haixin_bridge'")["load"]
    assert sb.max() > 0.97 and sb.max() <= 1.0, sb.max()


def test_entries_stop_at_a_zones_capacity_and_the_crowd_walks_on_to_zones_with_room():
    """LB/T 034 practice (domain.md): 100 % = ticket sales / entries stopped.  On the National
    Day evening the riverside and plaza zones reach their capacity and stay there - never above
    it for hours as before (6-8 zones over capacity for 3.5-5 h) - and nobody is lost: the
    people turned back are in the zones with room (the streets, the other riverside sections)."""
    sim, t = run("national-day", datetime(2026, 10, 1, 17, 0, tzinfo=LOCAL), 5, ("crowd",))
    cr = crowd_frame(t["crowd"])
    managed = [z for z in WORLD.zone_ids
               if CATALOG["national-day"].num("crowd.zones").get(z, {}).get("entry_control", True)
               and z not in ("canton_tower_interior", "metro_concourse", "tram_platform")]
    m = cr[cr.zone_id.isin(managed)]
    assert m["load"].max() <= 1.0, m.loc[m["load"].idxmax()].to_dict()
    full = m[m["load"] >= 0.99].groupby("zone_id").t.nunique()
    assert 3 <= len(full) <= 10, full.to_dict()                       # the entry control acts
    assert full.max() >= 120, full.to_dict()                          # for hours at the peak
    # diverted, not lost: the zones' people add up to the area's people present
    total = cr.groupby("t")["count"].sum().to_numpy()
    mins = ((cr.groupby("t").size().index.tz_convert("UTC") - pd.Timestamp(0, tz="UTC"))
            // pd.Timedelta(minutes=1)).to_numpy()
    expected = sim.drv.chunk(int(mins[0]), len(mins))["P"]          # a fresh pass of the drivers
    assert np.abs(total / expected - 1).max() < 0.05
    streets = cr[cr.zone_id.str.startswith("streets")].groupby("t")["load"].max()
    assert streets.max() < 0.6                                        # room left where people go


def test_the_light_show_is_cancelled_when_its_viewing_zones_pass_the_safe_load():
    """As on 27-28 Nov 2018 (FACTS.md §4): when the crowd that wants to see the show stays
    above the viewing zones' capacity, the show is cancelled - one notice to the staff - and the
    evening surge ends: the riverside drains instead of filling until 22:00."""
    sim, t = run("light-show", datetime(2026, 11, 21, 17, 0, tzinfo=LOCAL), 5.5, ("crowd", "case"))
    assert len(sim.drv.show_cancelled) == 1
    cut = datetime.fromtimestamp(next(iter(sim.drv.show_cancelled.values())) * 60, LOCAL)
    assert datetime(2026, 11, 21, 19, 15, tzinfo=LOCAL) <= cut <= datetime(2026, 11, 21, 21, 0, tzinfo=LOCAL), cut
    cs = t["case"]
    notice = cs[cs.description.str.contains("灯光秀") & (cs.status == "open")]
    assert len(notice) == 1 and notice.category.iloc[0] == "crowd_safety"
    assert abs((notice.event_time.iloc[0] - pd.Timestamp(cut)).total_seconds()) < 60
    cr = crowd_frame(t["crowd"])
    show = CATALOG["light-show"].num("crowd.show")["zones"]
    viewing = cr[cr.zone_id.isin(show) & (cr.zone_id != "north_bank")]
    at_cut = viewing[viewing.t == pd.Timestamp(cut).floor("min")]
    later = viewing[viewing.t == pd.Timestamp(cut + timedelta(minutes=75)).floor("min")]
    assert (later["load"] >= 0.99).sum() < (at_cut["load"] >= 0.99).sum(), (at_cut, later)
    area = cr.groupby("t")["count"].sum()
    assert area.loc[pd.Timestamp(cut + timedelta(minutes=90)).floor("min")] < area.loc[pd.Timestamp(cut).floor("min")]


# ------------------------------------------------------------------ leaving at night

def test_visitors_leave_with_the_last_train_and_the_bridge_closing():
    """The last train leaves Canton Tower at 23:17 and Haixin Bridge closes at 23:00: at midnight
    far fewer people remain than the ~16,000 of before, at 04:00 almost nobody (before: ~2,400);
    the station sees nobody after its last trains."""
    _, t = run("normal-weekday", datetime(2026, 4, 15, 21, 30, tzinfo=LOCAL), 7, ("crowd", "station"))
    cr = crowd_frame(t["crowd"])
    area = cr.groupby("t")["count"].sum()
    at = lambda hhmm, day=16: int(area.loc[pd.Timestamp(f"2026-04-{day} {hhmm}", tz="Asia/Shanghai")])
    assert at("22:00", 15) > 20_000                                  # the evening crowd is there
    assert at("00:00") < 4_000, at("00:00")
    assert at("04:00") < 150, at("04:00")
    bridge = cr[(cr.zone_id == "haixin_bridge")].set_index("t")["count"]
    assert bridge.between_time("23:00", "06:59").max() == 0
    st = t["station"]
    metro = st[st.station_id.str.startswith("metro_station")].copy()
    metro["t"] = local(metro.event_time)
    late = metro.set_index("t").between_time("23:20", "05:59")
    assert int((late.entries + late.exits).sum()) == 0
    # the last hour before the last train is the station's busy hour of the night
    rush = metro.set_index("t").between_time("22:15", "23:15")
    assert int(rush.entries.sum()) > int(rush.exits.sum())


# ------------------------------------------------------------------ outages

def test_cameras_and_lamps_fail_at_realistic_rates_and_stay_out_for_hours():
    """NDRC 2015: >= 98 % of cameras working - 3-4 of the 179 down on a normal day, not 0;
    street lighting >= 96-98 % lit (domain.md).  An outage lasts hours (a repair crew), it
    does not flicker from minute to minute."""
    _, t = run("normal-weekday", datetime(2026, 4, 15, 19, 0, tzinfo=LOCAL), 8, ("facility",))
    f = t["facility"]
    cam = f[f.metric == "camera_online"]
    per_min = cam.groupby(cam.event_time.dt.floor("min")).value.agg(["sum", "size"])
    down = per_min["size"] - per_min["sum"]
    assert (per_min["size"] == 179).all()
    # one evening is one draw of the process (the long-run 98 % is the next test's): some down,
    # the fleet at the NDRC target give or take a few cameras
    assert down.min() >= 1 and down.max() <= 15, down.describe()
    assert 0.95 <= 1 - down.mean() / 179 <= 0.995, down.mean()
    # outages persist: few state changes, and each camera that failed stays down for long stretches
    piv = cam.assign(m=cam.event_time.dt.floor("min")).pivot(index="m", columns="asset_id", values="value")
    changes = int((piv.diff().abs() > 0.5).to_numpy().sum())
    assert changes <= 12, changes                                     # ~7 failures a day fleet-wide
    runs = []
    for col in piv.columns[(piv < 0.5).any()]:
        x = (piv[col] < 0.5).astype(int).to_numpy()
        edges = np.flatnonzero(np.diff(np.concatenate([[0], x, [0]])))
        runs += list(np.diff(edges)[::2])
    assert np.median(runs) >= 60, runs                                # minutes
    # lamps at night (from ~19:00 in April until dawn, all 8 h here are dark)
    lamp = f[f.metric == "lamp_on"]
    lamp = lamp[local(lamp.event_time).dt.hour.isin([20, 21, 22, 23, 0, 1, 2])]
    lit = lamp.value.mean()
    assert 0.96 <= lit <= 0.995, lit
    dark_ids = lamp[lamp.value < 0.5].asset_id.nunique()
    assert 8 <= dark_ids <= 40, dark_ids                              # 1,021 x 2 % = 20


def test_the_outage_rate_is_the_long_run_share():
    """The 2 % is a rate, not one draw: over 30 simulated days the outage process keeps
    179 x 2 % = 3.6 cameras and 1,021 x 2 % = 20 lamps down on average, with ~7 camera failures a
    day each repaired in ~12 h (lamps ~2 days); and a run starts from that state whatever the seed."""
    sim = simulate(CATALOG["normal-weekday"], datetime(2026, 4, 15, 20, 0, tzinfo=LOCAL),
                   timedelta(minutes=1), 3, faults=Faults.off(), kinds=("warning",))
    list(sim)
    cam, lamp = sim.outages["camera"], sim.outages["lamp"]
    down_c, down_l, fails, prev = [], [], 0, cam["down"].copy()
    for m in range(0, 30 * 1440, 10):                  # 10-minute steps: outages last hours
        sim._update_outages(sim.start_ms + m * 60_000)
        fails += int((cam["down"] & ~prev).sum())
        prev = cam["down"].copy()
        down_c.append(int(cam["down"].sum()))
        down_l.append(int(lamp["down"].sum()))
    assert 2.9 <= np.mean(down_c) <= 4.4, np.mean(down_c)
    assert 16 <= np.mean(down_l) <= 25, np.mean(down_l)
    assert 4 <= fails / 30 <= 11, fails / 30
    assert 8 <= np.mean(down_c) / (fails / 30) * 24 <= 17             # mean outage (h) = down / failure rate
    starts = []
    for seed in range(20):
        s = simulate(CATALOG["normal-weekday"], datetime(2026, 4, 15, 20, 0, tzinfo=LOCAL),
                     timedelta(minutes=1), seed, faults=Faults.off(), kinds=("warning",))
        list(s)
        starts.append(int(s.outages["camera"]["down"].sum()))
    assert 2.5 <= np.mean(starts) <= 4.8, starts


# ------------------------------------------------------------------ work orders

def _lift_day(k: int, every: int) -> date:
    """The first local day from 15 April 2026 when the inventory's lift ``k`` is maintained."""
    d0 = date(2026, 4, 15)
    return d0 + timedelta(days=(-((d0 - date(1970, 1, 1)).days + k)) % every)


def test_every_lift_and_escalator_gets_its_half_monthly_maintenance_once_per_period():
    """TSG T5002-2017: lifts and escalators are maintained at least every 15 days; the simulator
    staggers them (one lift of a group a day), each inside its group's window."""
    wo = CATALOG["normal-weekday"].num("facility.work_orders")
    every = int(wo["lift_every_days"])
    sim = simulate(CATALOG["normal-weekday"], datetime(2026, 4, 15, 0, 0, tzinfo=LOCAL), timedelta(minutes=1), 1,
                   faults=Faults.off(), kinds=("warning",))
    n0 = (date(2026, 4, 15) - date(1970, 1, 1)).days
    for key, n in (("lift", WORLD.lifts.n), ("escalator", WORLD.escalators.n)):
        a, b = (int(x[:2]) * 60 + int(x[3:]) for x in wo[f"{key}_window"])
        times = np.zeros(n, int)
        for day in range(n0, n0 + every):
            for mod in range(0, 1440, 15):
                times += sim._planned_maintenance({"mod": [mod], "day": [day]}, 0)[key]
        assert (times == (b - a) // 15).all(), (key, times)           # each one window per period


def test_a_lift_under_planned_maintenance_stops_and_is_no_fault():
    """The lift's work order opens at the window's start and closes at its end; meanwhile it is
    stopped, and the engine counts it neither available nor failed - without the work order the
    same stopped lift would be a fault."""
    from indicators.catalog import load_catalog
    from indicators.engine import OK, Engine

    wo = CATALOG["normal-weekday"].num("facility.work_orders")
    lift = WORLD.lifts.ids[0]
    zone = WORLD.zone_ids[WORLD.lifts.zone[0]]
    day = _lift_day(0, int(wo["lift_every_days"]))
    start = datetime(day.year, day.month, day.day, 9, 30, tzinfo=LOCAL)
    sim = simulate(CATALOG["normal-weekday"], start, timedelta(hours=3), 1, faults=Faults.off(), kinds=("facility",))
    table = collect(sim)[0]["facility"]
    f = table.to_pandas()
    mine = f[f.asset_id == lift].assign(t=lambda d: local(d.event_time).dt.strftime("%H:%M"))
    orders = mine[mine.metric == "maintenance"]
    assert list(zip(orders.t, orders.value)) == [(wo["lift_window"][0], 1.0), (wo["lift_window"][1], 0.0)]
    run_ = mine[mine.metric == "lift_running"].set_index("t").value
    assert run_["09:59"] == 1 and (run_["10:00":"11:59"] == 0).all() and run_["12:00"] == 1

    catalog = load_catalog()

    def at_eleven(tbl):
        eng = Engine(catalog, tick=timedelta(minutes=1), allowed_lateness=timedelta(seconds=5), start=start)
        eng.ingest("facility", tbl)
        at = start.replace(hour=11, minute=0)
        eng.heartbeat(at + timedelta(seconds=5))
        tick = [t for t in eng.ticks(at)][-1]
        return {k: (float(tick.values[catalog.index(f"facility.{k}:zone={zone},class=lift@now")]),
                    int(tick.quality[catalog.index(f"facility.{k}:zone={zone},class=lift@now")]))
                for k in ("availability", "anomalies")}
    assert at_eleven(table) == {"availability": (100.0, OK), "anomalies": (0.0, OK)}
    import pyarrow.compute as pc
    without = table.filter(pc.not_equal(table["metric"], "maintenance"))
    assert at_eleven(without)["anomalies"] == (1.0, OK)


def test_a_repair_is_a_work_order_at_the_end_of_an_outage():
    """A failed camera or lamp: the crew's work order opens no sooner than repair_h after the
    fault and closes when the asset works again; meanwhile it is down."""
    repair = timedelta(hours=float(CATALOG["normal-weekday"].num("facility.work_orders")["repair_h"]))
    _, t = run("normal-weekday", datetime(2026, 4, 15, 0, 0, tzinfo=LOCAL), 24, ("facility",))
    f = t["facility"]
    orders = f[f.metric == "maintenance"]
    repaired = 0
    for (asset, metric) in (("cctv_camera", "camera_online"), ("lamp_pole", "lamp_on")):
        ws = orders[orders.asset_type == asset]
        for a, o in ws.groupby("asset_id"):
            o = o.sort_values("event_time")
            state = f[(f.asset_id == a) & (f.metric == metric)].sort_values("event_time")
            assert list(o.value) in ([1.0, 0.0], [1.0]), (a, list(o.value))
            opened = o.event_time.iloc[0]
            closed = o.event_time.iloc[1] if len(o) == 2 else None
            before = state[state.event_time < opened]
            down_from = before[before.value > 0.5].event_time.max()          # its last good reading
            assert pd.isna(down_from) or opened - down_from >= repair - timedelta(minutes=5), (a, opened, down_from)
            during = state[state.event_time >= opened]
            if closed is not None:
                during = during[during.event_time < closed]
            if metric == "camera_online":
                assert (during.value == 0).all(), a
            if closed is not None:
                repaired += 1
                after = state[state.event_time >= closed].head(1)
                # back in service: online at once; a lamp lit at its next reading if it is night
                assert metric == "lamp_on" or after.value.iloc[0] == 1, (a, after)
    assert 10 <= repaired <= 60, repaired           # ~7 camera failures a day and ~10 lamps (2 % / 48 h)


# ------------------------------------------------------------------ typhoon winds

def test_typhoon_winds_stay_within_mangkhuts_recorded_magnitudes_with_a_height_profile():
    """Typhoon Mangkhut (16 Sep 2018): highest land gust in Guangzhou 31.9 m/s (Nansha), 42-48 m/s
    near the centre at landfall (CMA, domain.md).  Before: 45.9 m/s gusts at street level and 71
    at the top.  The tower's ~450 m station sees the same storm through GB 50009's terrain-C power
    law (alpha 0.22: x 2.31 the 10 m wind) with smaller gust factors aloft."""
    sc = CATALOG["typhoon"]
    _, t = run("typhoon", datetime(2026, 9, 16, 0, 0, tzinfo=LOCAL), 30, ("weather",), seed=0)   # d0 to the calm
    w = t["weather"]
    base = w[w.station_id.str.endswith("base")].sort_values("event_time").reset_index(drop=True)
    top = w[w.station_id.str.endswith("top")].sort_values("event_time").reset_index(drop=True)
    assert len(base) == len(top)                                      # one report each per 10 minutes
    assert 17.2 <= base.gust_ms.max() <= 31.9, base.gust_ms.max()   # a gale, below Guangzhou's record
    assert top.gust_ms.max() <= 48.0, top.gust_ms.max()              # not above the near-centre maximum
    alpha = sc.num("weather.wind_profile_alpha")
    z_top = sc.num("weather.station_height_m")[1]
    stormy = base.wind_speed_ms > 8
    ratio = top.wind_speed_ms[stormy].to_numpy() / base.wind_speed_ms[stormy].to_numpy()
    assert abs(np.median(ratio) / (z_top / 10) ** alpha - 1) < 0.08, np.median(ratio)
    gf_base = (base.gust_ms / base.wind_speed_ms)[stormy]
    gf_top = (top.gust_ms / top.wind_speed_ms)[stormy]
    assert 1.4 <= gf_base.median() <= 1.7 and gf_top.median() < gf_base.median() - 0.2
    # the peak comes with the red signal, in the afternoon of day 0
    peak = local(base.event_time).iloc[int(base.gust_ms.idxmax())]
    assert peak.date() == datetime(2026, 9, 16).date() and 13 <= peak.hour <= 19, peak


# ------------------------------------------------------------------ roads

def test_road_speeds_follow_guangzhous_published_peak_and_weekend_rush_hours_differ():
    """Amap, Guangzhou Q4 2019: peak-hour congestion delay index 1.758 (travel time over the
    free-flow time), 23.81 km/h peak-hour speed, 18:00 the most congested moment.  Before the
    evening was at ~1.25 and 29-31 km/h.  A Saturday has no morning rush."""
    _, wd = run("normal-weekday", datetime(2026, 4, 15, 2, 0, tzinfo=LOCAL), 17, ("traffic",))     # 02-19 h
    _, we = run("light-show", datetime(2026, 11, 21, 2, 0, tzinfo=LOCAL), 17, ("traffic",))

    def hourly(df: pd.DataFrame) -> pd.DataFrame:
        df = df.assign(h=local(df.event_time).dt.hour)
        free = df[df.h.isin([2, 3, 4])].groupby("segment_id").speed_kmh.mean()
        df = df.assign(index=df.segment_id.map(free) / df.speed_kmh)     # travel-time ratio
        return df.groupby("h")[["speed_kmh", "index"]].mean()

    a, b = hourly(wd["traffic"]), hourly(we["traffic"])
    peak = a.loc[[17, 18]]
    assert 19.0 <= peak.speed_kmh.mean() <= 28.5, peak                # 23.81 km/h +-20 %
    assert 1.45 <= peak["index"].mean() <= 2.05, peak                 # 1.758
    assert a.speed_kmh.idxmin() in (17, 18)                           # the evening rush is the worst
    assert a.loc[8, "speed_kmh"] < 0.8 * a.loc[3, "speed_kmh"]        # and a weekday has a morning one
    # the Saturday: no morning rush, its slowest hours in the afternoon-evening, milder than a weekday's
    assert b.loc[8, "speed_kmh"] > a.loc[8, "speed_kmh"] * 1.2, (a.loc[8], b.loc[8])
    assert 14 <= b.speed_kmh.idxmin() <= 19, b.speed_kmh.idxmin()
    assert b.loc[[17, 18], "index"].mean() < peak["index"].mean()
