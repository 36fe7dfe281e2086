"""Facility indicators that mean what they say: operating schedules and silent sensors.

An asset is judged only while it is expected to work (its class's schedule in
data/catalog/families.toml: lamps from sunset to sunrise, tower lifts and
toilets in opening hours, the metro's lifts and escalators in service hours)
and reporting (a reading since the schedule opened, no older than the class's
``silent_after_s``).  Everything here goes through the engine: a few facility
readings, then the tick the question is about.
"""
from __future__ import annotations

from datetime import datetime, timedelta, timezone

import numpy as np
import pytest

from indicators.alerts.rules import RuleDefaults, build_rules
from indicators.alerts.state import AlertState, Evaluation, transition
from indicators.catalog import CatalogError, load_catalog, parse_families
from indicators.catalog.model import default_families_path
from indicators.engine import IDLE, NO_DATA, OK, Engine
from indicators.engine.synthetic import to_table
from indicators.localtime import LOCAL, sun_times

TICK = timedelta(minutes=1)
LATE = timedelta(seconds=5)
EPOCH = datetime(1970, 1, 1, tzinfo=timezone.utc)
DAY = (2025, 10, 1)                                   # sunset ~18:14, sunrise next day ~06:18 (local)


def local(h: int, m: int = 0, day: tuple[int, int, int] = DAY) -> datetime:
    return datetime(*day, h, m, tzinfo=LOCAL)


def ms(t: datetime) -> int:
    return (t - EPOCH) // timedelta(milliseconds=1)


@pytest.fixture(scope="module")
def catalog(inventory):
    return load_catalog(inventory=inventory)


def assets(catalog, cls: str, zone: str) -> list[str]:
    d = catalog.dims
    return list(np.asarray(d.members["asset"], dtype=object)[d.class_assets(cls, zone)])


def of_type(catalog, ids: list[str], asset_type: str) -> list[str]:
    d = catalog.dims
    return [a for a in ids if d.asset_type[d.code("asset")[a]] == asset_type]


def engine_tick(catalog, kind: str, cols: dict, times: list[datetime], at: datetime, start: datetime):
    """The engine's tick at ``at`` after one batch of ``kind`` records (columns, event times)."""
    eng = Engine(catalog, tick=TICK, allowed_lateness=LATE, start=start)
    n = len(times)
    if n:
        eng.ingest(kind, to_table(kind, {"event_id": np.array([f"{kind}{i}" for i in range(n)], dtype=object),
                                         "event_time": [ms(t) for t in times],
                                         "source": np.array(["test"] * n, dtype=object), **cols}))
    eng.heartbeat(at + LATE)
    last = [t for t in eng.ticks(at)][-1]
    assert last.time == at
    return last


def tick_at(catalog, readings: list[tuple[str, str, float, datetime]], at: datetime):
    """The engine's tick at ``at`` after the facility readings (asset, metric, value, time)."""
    d = catalog.dims
    return engine_tick(catalog, "facility", {
        "asset_id": np.array([a for a, *_ in readings], dtype=object),
        "asset_type": np.array([d.asset_type[d.code("asset")[a]] for a, *_ in readings], dtype=object),
        "metric": np.array([m for _, m, *_ in readings], dtype=object),
        "value": [float(v) for _, _, v, _ in readings]},
        [t for *_, t in readings], at, start=min(t for *_, t in readings) - timedelta(minutes=1))


def read(catalog, tick, indicator: str) -> tuple[float, int]:
    i = catalog.index(indicator)
    return float(tick.values[i]), int(tick.quality[i])


def avail(zone: str, cls: str) -> str:
    return f"facility.availability:zone={zone},class={cls}@now"


def anomalies(zone: str, cls: str) -> str:
    return f"facility.anomalies:zone={zone},class={cls}@now"


# ------------------------------------------------------------------ lamps
def test_a_lamp_switched_off_by_day_is_not_a_fault(catalog):
    lamps = assets(catalog, "lamp", "haixin_bridge")
    off_at_noon = [(a, "lamp_on", 0.0, local(11, 57)) for a in lamps]
    t = tick_at(catalog, off_at_noon, local(12, 0))
    v, q = read(catalog, t, avail("haixin_bridge", "lamp"))
    assert np.isnan(v) and q == IDLE, "lamps are not expected to be lit at noon: nothing to judge"
    v, q = read(catalog, t, anomalies("haixin_bridge", "lamp"))
    assert np.isnan(v) and q == IDLE


def test_a_lamp_dark_at_night_is_a_fault(catalog):
    lamps = assets(catalog, "lamp", "haixin_bridge")
    night = [(a, "lamp_on", 0.0 if a == lamps[0] else 1.0, local(20, 57)) for a in lamps]
    t = tick_at(catalog, night, local(21, 0))
    v, q = read(catalog, t, anomalies("haixin_bridge", "lamp"))
    assert (v, q) == (1.0, OK)
    v, q = read(catalog, t, avail("haixin_bridge", "lamp"))
    assert q == OK and v == pytest.approx(100.0 * (len(lamps) - 1) / len(lamps))


def test_a_dark_lamp_under_a_work_order_is_not_a_fault_and_counts_again_once_back_in_service(catalog):
    lamps = assets(catalog, "lamp", "haixin_bridge")
    dark, rest = lamps[0], lamps[1:]
    lit = [(a, "lamp_on", 1.0, local(20, 57)) for a in rest]
    # the work order opened at 19:30 (the crew switched the lamp off to replace its driver)
    t = tick_at(catalog, lit + [(dark, "maintenance", 1.0, local(19, 30)), (dark, "lamp_on", 0.0, local(20, 57))],
                local(21, 0))
    assert read(catalog, t, anomalies("haixin_bridge", "lamp")) == (0.0, OK)
    assert read(catalog, t, avail("haixin_bridge", "lamp")) == (100.0, OK)      # of the lamps expected to work
    # closed at 20:40: the dark reading from before does not count, the one after it does
    back = [(dark, "maintenance", 1.0, local(19, 30)), (dark, "maintenance", 0.0, local(20, 40))]
    t = tick_at(catalog, lit + back + [(dark, "lamp_on", 0.0, local(20, 35))], local(21, 0))
    assert read(catalog, t, anomalies("haixin_bridge", "lamp")) == (0.0, OK)
    t = tick_at(catalog, lit + back + [(dark, "lamp_on", 0.0, local(20, 50))], local(21, 0))
    assert read(catalog, t, anomalies("haixin_bridge", "lamp")) == (1.0, OK)    # still dark after the repair


def test_lamps_are_expected_from_a_little_after_sunset_to_a_little_before_sunrise(catalog):
    lat, lon = catalog.dims.site
    rise, sset = sun_times(np.array([274, 275]), lat, lon)          # 1 and 2 October
    lamp = catalog.dims.classes["lamp"].schedule
    evening = local(0) + timedelta(minutes=float(sset[0]) + lamp.after_sunset_min)
    morning = local(0, day=(2025, 10, 2)) + timedelta(minutes=float(rise[1]) - lamp.before_sunrise_min)
    assert local(18, 0) < evening < local(19, 0) and local(5, 30, (2025, 10, 2)) < morning < local(6, 30, (2025, 10, 2))
    assert lamp.expected_at(ms(evening + timedelta(seconds=1)), lat, lon)
    assert not lamp.expected_at(ms(evening - timedelta(seconds=1)), lat, lon)
    assert lamp.expected_at(ms(morning - timedelta(seconds=1)), lat, lon)
    assert not lamp.expected_at(ms(morning + timedelta(seconds=1)), lat, lon)


def test_a_reading_from_before_the_lamps_were_due_on_is_no_verdict(catalog):
    lat, lon = catalog.dims.site
    _, sset = sun_times(274, lat, lon)
    dusk = local(0) + timedelta(minutes=float(sset))
    lamps = assets(catalog, "lamp", "haixin_bridge")
    before = [(a, "lamp_on", 0.0, dusk + timedelta(minutes=5)) for a in lamps]     # still light: legitimately off
    # just after the schedule opened, before the lamps had time to report lit: waiting, not failed
    t = tick_at(catalog, before, (dusk + timedelta(minutes=24)).replace(second=0, microsecond=0))
    v, q = read(catalog, t, avail("haixin_bridge", "lamp"))
    assert np.isnan(v) and q == IDLE
    # still nothing since the schedule opened, a silence limit later: the sensors are silent
    t = tick_at(catalog, before, (dusk + timedelta(minutes=40)).replace(second=0, microsecond=0))
    v, q = read(catalog, t, avail("haixin_bridge", "lamp"))
    assert np.isnan(v) and q == NO_DATA


def test_ground_lights_without_a_sensor_do_not_drag_availability_down(catalog):
    zone = "riverside_east"
    lamps = assets(catalog, "lamp", zone)
    poles, ground = of_type(catalog, lamps, "lamp_pole"), of_type(catalog, lamps, "ground_light")
    assert poles and ground, "the zone has both: poles with a sensor, ground lights without"
    t = tick_at(catalog, [(a, "lamp_on", 1.0, local(21, 58)) for a in poles], local(22, 0))
    assert read(catalog, t, avail(zone, "lamp")) == (100.0, OK)
    assert read(catalog, t, anomalies(zone, "lamp")) == (0.0, OK)


def test_availability_of_a_zone_whose_only_expected_assets_are_fine_is_100(catalog):
    # wells: only storm and sewage covers carry a level sensor; the others never report
    zone = "streets_central"
    covers = assets(catalog, "well", zone)
    reporting = covers[: len(covers) // 2]
    t = tick_at(catalog, [(a, "well_water_level_m", 1.8, local(14, 55)) for a in reporting], local(15, 0))
    assert read(catalog, t, avail(zone, "well")) == (100.0, OK)
    assert read(catalog, t, anomalies(zone, "well")) == (0.0, OK)


# ------------------------------------------------------------------ lifts
def test_a_closed_lift_is_not_a_fault(catalog):
    zone = "canton_tower_interior"
    lifts = assets(catalog, "lift", zone)
    t = tick_at(catalog, [(a, "lift_running", 0.0, local(2, 59)) for a in lifts], local(3, 0))
    for ind in (avail(zone, "lift"), anomalies(zone, "lift"), f"facility.lift_running:asset={lifts[0]}@now"):
        v, q = read(catalog, t, ind)
        assert np.isnan(v) and q == IDLE, ind


def test_a_stopped_lift_in_opening_hours_is_a_fault(catalog):
    zone = "canton_tower_interior"
    lifts = assets(catalog, "lift", zone)
    t = tick_at(catalog, [(a, "lift_running", 0.0 if a == lifts[0] else 1.0, local(10, 59)) for a in lifts],
                local(11, 0))
    assert read(catalog, t, anomalies(zone, "lift")) == (1.0, OK)
    v, q = read(catalog, t, avail(zone, "lift"))
    assert q == OK and v == pytest.approx(100.0 * (len(lifts) - 1) / len(lifts))
    assert read(catalog, t, f"facility.lift_running:asset={lifts[0]}@now") == (0.0, OK)


def test_the_metro_s_lifts_keep_the_metro_s_hours(catalog):
    zone = "metro_concourse"
    lifts = assets(catalog, "lift", zone)
    # 23:00: the tower is closed but the metro runs - a stopped station lift is a fault
    t = tick_at(catalog, [(a, "lift_running", 0.0, local(22, 59)) for a in lifts], local(23, 0))
    assert read(catalog, t, anomalies(zone, "lift")) == (float(len(lifts)), OK)
    tower = assets(catalog, "lift", "canton_tower_interior")
    t = tick_at(catalog, [(a, "lift_running", 0.0, local(22, 59)) for a in tower], local(23, 0))
    assert read(catalog, t, anomalies("canton_tower_interior", "lift"))[1] == IDLE


# ------------------------------------------------------------- silence
def test_a_silent_sensor_counts_neither_as_failed_nor_as_available(catalog):
    zone = "haixin_bridge"
    lamps = assets(catalog, "lamp", zone)
    silent_s = catalog.dims.classes["lamp"].silent_after_s
    quiet = lamps[0]
    readings = [(quiet, "lamp_on", 0.0, local(21, 0) - timedelta(seconds=silent_s + 120))]   # dark, then nothing
    readings += [(a, "lamp_on", 1.0, local(20, 58)) for a in lamps[1:]]
    t = tick_at(catalog, readings, local(21, 0))
    assert read(catalog, t, avail(zone, "lamp")) == (100.0, OK), "the silent lamp is not in the denominator"
    assert read(catalog, t, anomalies(zone, "lamp")) == (0.0, OK), "nor is its old 'dark' a fault"
    # with one more lamp dark the share is over the reporting lamps only
    readings[-1] = (lamps[-1], "lamp_on", 0.0, local(20, 58))
    t = tick_at(catalog, readings, local(21, 0))
    assert read(catalog, t, avail(zone, "lamp"))[0] == pytest.approx(100.0 * (len(lamps) - 2) / (len(lamps) - 1))


def test_a_zone_whose_expected_sensors_are_all_silent_has_no_data_not_a_fault(catalog):
    zone = "haixin_bridge"
    lamps = assets(catalog, "lamp", zone)
    t = tick_at(catalog, [(a, "lamp_on", 0.0, local(20, 0)) for a in lamps], local(21, 0))
    for ind in (avail(zone, "lamp"), anomalies(zone, "lamp")):
        v, q = read(catalog, t, ind)
        assert np.isnan(v) and q == NO_DATA, ind


# ------------------------------------------------------------- alerts
def _rule(catalog, indicator: str):
    ind = catalog.indicators[catalog.index(indicator)]
    th = ind.thresholds
    tiers = {k: v for k, v in zip(("blue", "yellow", "orange", "red"), th.tiers()) if v is not None}
    return build_rules([RuleDefaults(indicator, th.direction, tiers, ind.family.freshness_s)])[indicator]


def test_idle_raises_no_alert_and_leaves_a_standing_one_as_it_is(catalog):
    ind = avail("haixin_bridge", "lamp")
    rule = _rule(catalog, ind)
    at = datetime(2025, 10, 1, 4, 0, tzinfo=timezone.utc)
    idle = Evaluation(at, None, "idle")
    assert idle.kind == "idle"
    tr = transition(None, idle, rule, at)
    assert tr.state.status == "normal" and not tr.events
    # a dark circuit fired at night; the lamps are switched off at dawn: no resolve, no new alert
    st = transition(None, Evaluation(at, 50.0), rule, at).state
    st = transition(st, Evaluation(at + timedelta(minutes=5), 50.0), rule, at + timedelta(minutes=5)).state
    assert st.status == "firing"
    tr = transition(st, Evaluation(at + timedelta(minutes=6), None, "idle"), rule, at + timedelta(minutes=6))
    assert tr.state.status == "firing" and tr.state.tier == st.tier
    assert not [e for e in tr.events if e.kind not in ("escalated",)]


def test_a_silent_zone_is_a_data_quality_event_not_a_facility_alert(catalog):
    ind = anomalies("haixin_bridge", "lamp")
    rule = _rule(catalog, ind)
    at = datetime(2025, 10, 1, 13, 0, tzinfo=timezone.utc)
    tr = transition(None, Evaluation(at, None, "no_data"), rule, at)
    assert [e.kind for e in tr.events] == ["no_data"]


# ------------------------------------------------------------- the catalog
def test_every_schedule_and_silence_limit_says_where_it_comes_from(catalog):
    for cls in catalog.dims.classes.values():
        assert cls.silent_after_s > 0
        for s in [cls.schedule, *cls.zone_schedule.values()]:
            if s is not None:
                assert len(s.source) > 20, cls.name
    assert catalog.dims.classes["lamp"].schedule.kind == "night"
    assert catalog.dims.classes["lift"].zone_schedule["metro_concourse"].kind == "hours"


def test_schedule_mistakes_are_reported_with_their_path(inventory):
    text = default_families_path().read_text(encoding="utf-8")
    text = text.replace('hours = ["09:30", "22:30"], source = "the tower', 'hours = ["09:30", "25:00"], source = "the tower', 1)
    text = text.replace('zone_schedule.metro_concourse', 'zone_schedule.atlantis', 1)
    text = text.replace('kind = "night", after_sunset_min = 20', 'kind = "dusk", after_sunset_min = 20', 1)
    with pytest.raises(CatalogError) as e:
        load_catalog(parse_families(text), inventory)
    found = [str(p) for p in e.value.problems]
    assert any("classes.lift.schedule.hours[1]: '25:00' is not a local time" in p for p in found), found
    assert any("classes.lamp.schedule.kind: 'dusk' is not one of hours, night" in p for p in found), found
    text = default_families_path().read_text(encoding="utf-8").replace(
        'zone_schedule.metro_concourse', 'zone_schedule.atlantis', 1)
    with pytest.raises(CatalogError, match=r"classes.lift.zone_schedule.atlantis: 'atlantis' is no zone"):
        load_catalog(parse_families(text), inventory)


def test_the_simulator_switches_its_lamps_by_the_same_sun():
    from indicators.feeds import simulator
    assert simulator.sun_times is sun_times


# --------------------------------------------------------------------------- bus routes by timetable
def bus_tick(catalog, positions: list[tuple[str, str, datetime]], at: datetime, start: datetime):
    """The engine's tick at ``at`` after bus positions (vehicle, route, time)."""
    return engine_tick(catalog, "bus", {"vehicle_id": np.array([v for v, *_ in positions], dtype=object),
                                        "route_id": np.array([r for _, r, _ in positions], dtype=object)},
                       [t for *_, t in positions], at, start)


def test_a_bus_route_outside_its_service_hours_is_idle_and_a_running_route_without_buses_alerts(catalog):
    night = "bus.vehicles:route=sightseeing_night@15m"         # the night route runs 18:30-21:30
    trunk = "bus.vehicles:route=468@15m"                      # 06:00-23:00
    # 15:00: the night route is not running - no bus is no fault; the trunk route with none is
    # (a bus of another route keeps the feed fresh; 468's last bus left 30 min ago)
    t = bus_tick(catalog, [("v1", "468", local(14, 30)), ("x1", "262", local(14, 59))], local(15), start=local(14))
    assert read(catalog, t, night)[1] == IDLE
    v, q = read(catalog, t, trunk)
    assert (v, q) == (0.0, OK)
    # 19:00: two buses of the night route seen -> counted; none seen -> 0, and that alerts
    t = bus_tick(catalog, [("n1", "sightseeing_night", local(18, 50)), ("n2", "sightseeing_night", local(18, 55))],
                 local(19), start=local(18, 30))
    assert read(catalog, t, night) == (2.0, OK)
    t = bus_tick(catalog, [("v1", "468", local(18, 58))], local(19), start=local(18, 30))
    assert read(catalog, t, night) == (0.0, OK)
    d = next(x for x in _rule_defaults(catalog) if x.indicator_id == night)
    rule = build_rules([d])[night]
    st = None
    for k in range(12):                        # its pending period, at one evaluation a minute
        at = local(19) + k * TICK
        st = transition(st, Evaluation(at, 0.0), rule, at).state
    assert st.status == "firing" and st.tier == "orange"
    # idle leaves that alert as it is (neither a recovery nor a new fault)
    after = transition(st, Evaluation(local(22), None, quality="idle"), rule, local(22)).state
    assert (after.status, after.tier, after.alert_id) == ("firing", "orange", st.alert_id)
    # a stop is judged while any of its routes runs: Yuejiang Road West (468 and the night route)
    stop = "bus.stop_vehicles:stop=bus_stop-bus_yuejiang_west-0001@15m"
    t = bus_tick(catalog, [("x1", "262", local(14, 59))], local(15), start=local(14))
    assert read(catalog, t, stop) == (0.0, OK)
    # 23:30: the trunk route has ended too, and with it every route of that stop
    t = bus_tick(catalog, [("v1", "468", local(22, 50)), ("x1", "262", local(23, 29))], local(23, 30),
                 start=local(22, 30))
    assert read(catalog, t, trunk)[1] == IDLE and read(catalog, t, stop)[1] == IDLE


def _rule_defaults(catalog):
    from indicators.pipeline import rule_defaults
    return rule_defaults(catalog)


def test_a_route_service_for_an_unknown_route_is_refused_with_its_path(inventory):
    text = default_families_path().read_text(encoding="utf-8").replace("[routes.468]", "[routes.no_such_route]")
    with pytest.raises(CatalogError, match=r"routes\.no_such_route"):
        load_catalog(families=parse_families(text), inventory=inventory)


# --------------------------------------------------------------------------- on-time closure rate
def case_tick(catalog, records: list[tuple[str, str, datetime]], at: datetime):
    """The engine's tick at ``at`` after case records (case id, status, time), all litter in the West Plaza."""
    n = len(records)
    return engine_tick(catalog, "case", {"case_id": np.array([c for c, *_ in records], dtype=object),
                                         "category": np.array(["litter"] * n, dtype=object),
                                         "status": np.array([s for _, s, _ in records], dtype=object),
                                         "zone_id": np.array(["west_plaza"] * n, dtype=object)},
                       [t for *_, t in records], at, start=min(t for *_, t in records) - timedelta(minutes=1))


def test_the_closure_rate_judges_cases_when_they_are_due_not_when_they_open(catalog):
    rate = "case.close_rate:area=canton_tower,category=litter@today"
    early = [("a", "open", local(17)), ("a", "closed", local(17, 40)),       # closed in 40 min: on time
             ("b", "open", local(18, 5))]                                    # open, deadline 20:05
    # 18:30: only A is due - the fresh case B does not make the rate fall
    assert read(catalog, case_tick(catalog, early, local(18, 30)), rate) == (100.0, OK)
    # an evening of fresh open cases changes nothing
    fresh = early + [(f"n{i}", "open", local(18, 10 + i)) for i in range(10)]
    assert read(catalog, case_tick(catalog, fresh, local(18, 30)), rate) == (100.0, OK)
    # 20:10: B passed its 2-hour deadline open -> 1 of 2 due cases on time
    assert read(catalog, case_tick(catalog, early + [("x", "open", local(20, 9))], local(20, 10)), rate)[0] == 50.0
    # a case closed after its deadline is due and late
    late = early + [("b", "closed", local(20, 30))]
    assert read(catalog, case_tick(catalog, late, local(20, 40)), rate)[0] == 50.0


def _tier(th, value: float) -> str | None:
    worst = None
    for name, thr in zip(("blue", "yellow", "orange", "red"), th.tiers()):
        if thr is not None and value <= thr:
            worst = name
    return worst


def test_one_camera_down_in_a_small_zone_is_not_an_alarm_and_a_second_one_is(catalog):
    """min_failed (data/catalog/families.toml): a tier of a zone's camera availability needs 2 (yellow),
    3 (orange), 4 (red) cameras down; in a zone of many assets the written shares still rule."""
    def th(zone, cls="camera"):
        return next(i for i in catalog.of_family("facility.availability")
                    if i.scope == {"zone": zone, "class": cls}).thresholds
    n = len(assets(catalog, "camera", "huangpuchong_footbridge"))
    assert 3 <= n <= 8, n
    small = th("huangpuchong_footbridge")
    for down, want in ((0, None), (1, "blue"), (2, "yellow"), (3, "orange"), (4, "red")):
        if down <= n:
            assert _tier(small, 100.0 * (n - down) / n) == want, (down, n)
    lamps = th("riverside_central", "lamp")                # hundreds of lamps: the shares as written
    assert lamps.tiers() == (98.0, 95.0, 90.0, 80.0)


def test_min_failed_is_refused_where_it_has_no_meaning():
    text = default_families_path().read_text(encoding="utf-8")
    old = 'min_failed = { yellow = 2, orange = 3, red = 4 }'
    for bad, what in (('min_failed = { yellow = 3, orange = 2, red = 4 }', "min_failed.orange"),
                      ('min_failed = { yellow = 2, purple = 3 }', "min_failed.purple"),
                      ('min_failed = { yellow = 0 }', "min_failed.yellow")):
        with pytest.raises(CatalogError) as e:
            parse_families(text.replace(old, bad, 1))
        assert any(what in str(p) for p in e.value.problems), (bad, e.value.problems)
    crowd = 'thresholds = { direction = "above", blue = 60.0, yellow = 80.0, orange = 90.0, red = 100.0 }'
    assert crowd in text
    with pytest.raises(CatalogError) as e:
        parse_families(text.replace(crowd, crowd[:-2] + ', min_failed = { red = 2 } }', 1))
    assert any("min_failed" in str(p) for p in e.value.problems), e.value.problems
