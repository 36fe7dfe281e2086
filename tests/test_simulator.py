"""The feed simulator: realistic magnitudes per scenario, determinism, faults, recordings, live pacing.

Every scenario's check hour is simulated once (faults off) and measured with
``simulator.describe``; the ranges come from ``[scenarios.NAME.expect]`` in
data/scenarios.toml - the same numbers docs/feeds.md prints.  Nothing here
sleeps: live pacing runs on a fake clock.
"""
from __future__ import annotations

import json
import threading
import time
from collections import Counter
from datetime import datetime, timedelta

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pytest

from indicators.feeds import simulator as simmod
from indicators.feeds.deadletter import DeadLetterStore
from indicators.feeds.ingest import Ingestor
from indicators.feeds.log import FeedLog
from indicators.feeds.scenarios import LOCAL, ScenarioError, load
from indicators.feeds.schemas import (
    ALLOWED_LATENESS,
    CASE_CATEGORIES, FEED_KINDS, SCHEMAS, VIDEO_ALGORITHMS, WARNING_COLOURS,
)
from indicators.feeds.simulator import (
    MALFORMED, Faults, SimClock, collect, describe, read_recording, run_live, simulate, write_recording,
)

CATALOG = load()
BUSY_FAULTS = Faults(late=0.01, out_of_order=0.02, duplicate=0.01, missing=0.01, malformed=0.005)
_RUNS: dict[str, tuple[dict, list, float]] = {}


def flat(d: dict, prefix: str = ""):
    for k, v in d.items():
        if isinstance(v, dict):
            yield from flat(v, prefix + k + ".")
        else:
            yield prefix + k, v


def check_hour(name: str) -> tuple[dict, list, float]:
    """The scenario's check hour, simulated once per test session (faults off)."""
    if name not in _RUNS:
        sc = CATALOG[name]
        t0 = time.perf_counter()
        items = list(simulate(sc, sc.check_start, timedelta(hours=1), 11, faults=Faults.off()))
        secs = time.perf_counter() - t0
        _RUNS[name] = (collect(items)[0], items, secs)
    return _RUNS[name]


def ms(col) -> np.ndarray:
    return col.cast(pa.int64()).to_numpy()


# ------------------------------------------------------------------ scenario file

def test_scenario_file_loads_and_every_number_has_a_source():
    assert {"normal-weekday", "national-day", "light-show", "rainstorm-red", "typhoon", "facility-failures",
            "bus-bunching", "metro-control", "holiday-rainstorm"} <= set(CATALOG.names)
    for sc in CATALOG:
        assert sc.description and sc.start.tzinfo and sc.check_start.tzinfo
        assert sc.sources, sc.name
        assert all(src.strip() for src in sc.sources.values()), sc.name
        assert sc.expect, f"{sc.name} documents no expected ranges"


def test_a_bare_number_or_missing_source_is_refused_with_every_path(tmp_path):
    bad = tmp_path / "scenarios.toml"
    bad.write_text("""
[defaults.crowd]
daily_visitors = 165000
mean_stay_min = { value = 120 }
[scenarios.x]
description = "x"
start = "2026-04-15T08:00:00"
check_start = "2026-04-15T19:00:00+08:00"
base = "nope"
[[scenarios.x.warnings]]
at = "d0 25:00"
signal = "tsunami"
colour = "red"
status = "issued"
""", encoding="utf-8")
    with pytest.raises(ScenarioError) as e:
        load(bad)
    text = "\n".join(e.value.problems)
    assert "defaults.crowd.daily_visitors: the number 165000 has no source" in text
    assert "defaults.crowd.mean_stay_min: value 120 has no source" in text
    assert "scenarios.x.start" in text and "no UTC offset" in text
    assert "unknown scenario 'nope'" in text
    assert "'tsunami' is not one of" in text and "d0 25:00" in text
    assert len(e.value.problems) >= 6


# ------------------------------------------------------------------ per scenario

@pytest.mark.parametrize("name", CATALOG.names)
def test_check_hour_is_within_the_documented_ranges(name):
    sc = CATALOG[name]
    tables, _, _ = check_hour(name)
    got = describe(tables, sc)
    out = []
    for key, rng in flat(sc.expect):
        assert key in got, f"{name}: expect.{key} is not a measure of simulator.describe()"
        v = got[key]
        if not rng or isinstance(rng[0], str):
            if v != rng:
                out.append(f"{key} = {v}, expected {rng}")
        elif v is None or not rng[0] <= v <= rng[1]:
            out.append(f"{key} = {v}, expected {rng[0]}..{rng[1]}")
    assert not out, f"{name} {sc.check_start.isoformat()} +1h:\n  " + "\n  ".join(out)


@pytest.mark.parametrize("name", CATALOG.names)
def test_every_kind_conforms_to_its_schema_and_uses_inventory_ids(name, inventory):
    tables, items, secs = check_hour(name)
    assert secs < 6.0, f"1 simulated hour of {name} took {secs:.1f} s"
    ids = set(inventory["asset_id"])
    zones = set(inventory.loc[inventory["type"] == "management_zone", "zone_id"])
    for kind in FEED_KINDS:
        t = tables[kind]
        assert t.schema.equals(SCHEMAS[kind], check_metadata=True), kind
        eid = t.column("event_id").to_pylist()
        assert len(eid) == len(set(eid)), f"{name}/{kind}: duplicate event ids without faults"
    for kind, col in (("crowd", "zone_id"), ("gate", "zone_id"), ("video", "zone_id"), ("case", "zone_id")):
        assert set(tables[kind].column(col).drop_null().to_pylist()) <= zones, kind
    for kind, col in (("gate", "gate_id"), ("video", "camera_id"), ("facility", "asset_id"),
                      ("station", "station_id"), ("traffic", "segment_id")):
        assert set(tables[kind].column(col).to_pylist()) <= ids, kind
    assert set(tables["bus"].column("stop_id").drop_null().to_pylist()) <= ids
    assert set(tables["crowd"].column("zone_id").to_pylist()) == zones, "every zone every minute"
    # arrival order: batches are delivered in time order, rows inside a batch arrive in order
    delivered = np.array([b.arrival_ms[-1] for b in items])
    assert np.all(np.diff(delivered) >= 0)
    assert all(np.all(np.diff(b.arrival_ms) >= 0) for b in items)
    # and they are the simulated hour's minutes, one batch per kind and minute at most
    per_minute = Counter((b.kind, int(b.arrival_ms[-1]) // 60_000) for b in items)
    assert max(per_minute.values()) == 1
    assert not any(b.kind == MALFORMED for b in items)


def test_values_are_in_their_domains():
    tables, _, _ = check_hour("national-day")
    v = tables["video"]
    conf = v.column("confidence").to_numpy()
    assert conf.min() >= 0.5 and conf.max() <= 0.99
    assert set(v.column("algorithm").to_pylist()) <= set(VIDEO_ALGORITHMS)
    cams = simmod._default_world().cams
    cam_zone = {c: simmod._default_world().zone_ids[z] for c, z in zip(cams.ids, cams.zone)}
    assert all(cam_zone[c] == z for c, z in zip(v.column("camera_id").to_pylist(), v.column("zone_id").to_pylist()))
    assert set(tables["case"].column("category").to_pylist()) <= set(CASE_CATEGORIES)
    descs = tables["case"].column("description").to_pylist()
    assert any(d.endswith("请前往处理") or "阀值" in d for d in descs)
    assert all(any("\u4e00" <= ch <= "\u9fff" for ch in d) for d in descs), "descriptions in Chinese"
    assert pc.min(tables["crowd"].column("count")).as_py() >= 0
    st = tables["staff"]
    assert len(set(st.column("staff_id").to_pylist())) == 30
    assert set(st.column("status").to_pylist()) <= {"available", "busy", "offline"}


def test_gate_counts_are_the_zone_changes_and_turnstiles_the_station_flows():
    tables, _, _ = check_hour("normal-weekday")
    cr = tables["crowd"].to_pandas()
    cr["m"] = cr.event_time.dt.floor("min")
    g = tables["gate"].to_pandas()
    g["m"] = g.event_time.dt.floor("min")
    for zone in ("haixin_bridge", "tower_base"):        # counters cover every way in and out
        count = cr[cr.zone_id == zone].set_index("m")["count"].sort_index()
        flows = g[g.zone_id == zone].groupby("m")[["entries", "exits"]].sum()
        net = (flows.entries - flows.exits).reindex(count.index)
        assert (count.diff().iloc[1:] == net.iloc[1:]).all(), zone
        assert flows.entries.sum() > 100
    st = tables["station"].to_pandas()
    st["m"] = st.event_time.dt.floor("min")
    metro = st[st.station_id.str.startswith("metro_station")].groupby("m")[["entries", "exits"]].sum()
    turn = g[g.gate_id.str.startswith("turnstile")].groupby("m")[["entries", "exits"]].sum()
    assert (metro == turn.reindex(metro.index)).all().all()


def test_a_normal_day_has_165k_visitors_62k_metro_passengers_and_over_20_cases():
    sc = CATALOG["normal-weekday"]
    day = datetime.combine(sc.start.astimezone(LOCAL).date(), datetime.min.time(), LOCAL)
    sim = simulate(sc, day, timedelta(days=1), 3, faults=Faults.off(), kinds=("crowd", "station", "case"))
    tables, _ = collect(sim)
    cr = tables["crowd"].to_pandas()
    per_min = cr.groupby(cr.event_time.dt.floor("min"))["count"].sum()
    present = per_min.to_numpy().astype(float)
    # people leave after their stay: 2 h, but nobody's stay runs past the last train (23:17)
    mins = ((per_min.index - pd.Timestamp(0, tz="UTC")) // pd.Timedelta(minutes=1)).to_numpy()
    tau = sim.drv.area_stay(mins, 0.3 + 0.7 * sim.drv.weather_factor(mins))
    arrivals = present[0] / tau[0] + (present[1:] - present[:-1] * (1 - 1 / tau[1:])).sum()
    assert 150_000 <= arrivals <= 180_000, arrivals                       # FACTS.md: 165,000/day
    st = tables["station"].to_pandas()
    metro = st[st.station_id.str.startswith("metro_station")]
    total = int((metro.entries + metro.exits).sum())
    assert 60_000 <= total <= 66_000, total                               # FACTS.md: > 60,000/day
    opened = int((tables["case"].column("status").to_numpy(zero_copy_only=False) == "open").sum())
    assert opened >= 20, opened                                           # domain.md: > 20 a day


def test_typhoon_signal_escalates_white_to_red_then_is_cancelled():
    sc = CATALOG["typhoon"]
    tables, _ = collect(simulate(sc, datetime(2026, 9, 15, 7, 30, tzinfo=LOCAL), timedelta(hours=53), 0,
                                 faults=Faults.off(), kinds=("warning",)))
    w = tables["warning"].to_pandas()
    ty = w[w.signal == "typhoon"].sort_values("event_time")
    colours = list(ty.colour)
    assert colours[:5] == ["white", "blue", "yellow", "orange", "red"]
    ranks = [WARNING_COLOURS.index(c) for c in colours[:5]]
    assert ranks == sorted(ranks)
    assert list(ty.status)[0] == "issued" and list(ty.status)[-1] == "cancelled"
    assert all(h.startswith("广州市气象台") for h in w.headline)
    red = ty[ty.colour == "red"].iloc[0]
    assert red.headline == "广州市气象台将台风橙色预警信号升级为红色，请注意防御"


def test_an_episode_moves_to_the_date_of_a_run_far_from_it():
    sc = CATALOG["rainstorm-red"]
    start = datetime(2026, 7, 8, 14, 0, tzinfo=LOCAL)
    tables, _ = collect(simulate(sc, start, timedelta(hours=1), 0, faults=Faults.off(),
                                 kinds=("warning", "weather")))
    seq = describe(tables, sc)["warning_sequence"]
    assert seq == ["rainstorm:yellow:issued", "rainstorm:orange:updated", "rainstorm:red:updated"]
    assert pc.max(tables["weather"].column("rain_1h_mm")).as_py() > 50
    assert tables["warning"].column("event_time")[0].as_py().astimezone(LOCAL).date() == start.date()


def test_a_run_inside_a_storm_starts_with_the_signals_in_force():
    sc = CATALOG["typhoon"]
    tables, _ = collect(simulate(sc, sc.check_start, timedelta(minutes=5), 0, faults=Faults.off(),
                                 kinds=("warning",)))
    first = tables["warning"].to_pylist()
    assert {(r["signal"], r["colour"]) for r in first} == {("typhoon", "orange"), ("rainstorm", "yellow")}
    assert all(r["event_time"] == sc.check_start for r in first)


# ------------------------------------------------------------------ determinism

def _digest(items) -> list:
    out = []
    for b in items:
        payload = b.payload.to_pylist() if isinstance(b.payload, pa.Table) else b.payload
        out.append((b.kind, json.dumps(payload, default=str, sort_keys=True), b.arrival_ms.tolist()))
    return out


def test_same_seed_same_stream_other_seed_other_stream():
    sc = CATALOG["national-day"]
    run = lambda seed: _digest(simulate(sc, sc.check_start, timedelta(minutes=20), seed, faults=BUSY_FAULTS))
    a, b, c = run(5), run(5), run(6)
    assert a == b
    assert a != c
    # the fault injector has its own generator: faults do not change the events themselves
    clean = collect(simulate(sc, sc.check_start, timedelta(minutes=20), 5, faults=Faults.off()))[0]
    faulty = collect(simulate(sc, sc.check_start, timedelta(minutes=20), 5, faults=BUSY_FAULTS))[0]
    clean_rows = {r["event_id"]: r for r in clean["crowd"].to_pylist()}
    for r in faulty["crowd"].to_pylist():
        assert clean_rows[r["event_id"]] == r


def test_leaving_kinds_out_changes_none_of_the_kept_ones():
    sc = CATALOG["typhoon"]
    full = _digest(b for b in simulate(sc, sc.check_start, timedelta(minutes=15), 2, faults=BUSY_FAULTS)
                   if b.kind in ("crowd", "case") or (b.kind == MALFORMED and
                                                      all(r["kind"] in ("crowd", "case") for r in b.payload)))
    part = _digest(b for b in simulate(sc, sc.check_start, timedelta(minutes=15), 2, faults=BUSY_FAULTS,
                                       kinds=("crowd", "case")) if b.kind != MALFORMED)
    assert [x for x in full if x[0] != MALFORMED] == part


# ------------------------------------------------------------------ faults

@pytest.fixture(scope="module")
def faulty():
    sc = CATALOG["national-day"]
    sim = simulate(sc, sc.check_start, timedelta(minutes=30), 9, faults=BUSY_FAULTS)
    items = list(sim)
    return sim, items


def test_faults_give_duplicates_late_out_of_order_and_malformed_records(faulty):
    sim, items = faulty
    seen: Counter = Counter()
    late = ooo = 0
    newest: dict[str, int] = {}
    bad = []
    for b in items:
        if b.kind == MALFORMED:
            bad.extend(b.payload)
            continue
        et = ms(b.payload.column("event_time"))
        late += int((b.arrival_ms - et > 5 * 60_000).sum())
        for e in b.payload.column("event_id").to_pylist():
            seen[(b.kind, e)] += 1
        run_max = np.maximum.accumulate(np.concatenate([[newest.get(b.kind, 0)], et]))[:-1]
        ooo += int((et < run_max - 30_000).sum())
        newest[b.kind] = max(newest.get(b.kind, 0), int(et.max()))
    dups = sum(1 for n in seen.values() if n > 1)
    assert dups > 50 and late > 50 and ooo > 100
    assert len(bad) == sim.fault_counts["malformed"] > 20
    assert all(isinstance(r, dict) and r.get("kind") in SCHEMAS for r in bad)
    assert {r["_fault"] for r in bad} == {"wrong_type", "missing_field", "out_of_range", "garbage"}
    assert sim.fault_counts["missing"] > 50
    assert 0.5 < sim.fault_counts["duplicate"] / dups < 1.5


def test_an_ingestor_dead_letters_every_malformed_record_and_accepts_each_on_time_event_once(faulty, tmp_path):
    _, items = faulty
    clock = SimClock(items[0].arrival)
    log = FeedLog(tmp_path / "log", fsync=False)
    dead = DeadLetterStore(tmp_path / "dead.sqlite")
    ing = Ingestor(log, dead, clock=clock)
    lag: dict[tuple[str, str], int] = {}
    last_lag: dict[tuple[str, str], int] = {}
    n_bad = 0
    try:
        for b in items:
            clock.set(b.arrival)
            if b.kind == MALFORMED:
                n_bad += len(b.payload)
                by_kind: dict[str, list] = {}
                for r in b.payload:
                    by_kind.setdefault(r["kind"], []).append(r)
                for k, recs in by_kind.items():
                    rc = ing.submit(k, recs)
                    assert rc.accepted == 0 and len(rc.rejected) == len(recs)
                    assert all(x.reason and x.code for x in rc.rejected)
                continue
            et = ms(b.payload.column("event_time"))
            for e, d in zip(b.payload.column("event_id").to_pylist(), b.arrival_ms - et):
                lag.setdefault((b.kind, e), int(d))         # the first copy decides whether it is taken
                last_lag[(b.kind, e)] = int(d)              # a later copy may be late (late before duplicate)
            ing.submit(b.kind, b.payload)
        accepted = [(k, e) for _, k, t in log.replay(0) for e in t.column("event_id").to_pylist()]
        late_ids = {(k, e) for k in FEED_KINDS for e in dead.late_ids(k)}
        counts = dead.counts()
    finally:
        log.close()
        dead.close()
    assert len(accepted) == len(set(accepted)), "an event was accepted twice"
    acc = set(accepted)
    limit = ALLOWED_LATENESS // timedelta(milliseconds=1)   # arrived sooner after its time: never late
    on_time = {k for k, d in lag.items() if d < limit}
    assert on_time <= acc, "an on-time event was not accepted"
    assert late_ids and all(last_lag[k] >= limit for k in late_ids)
    assert acc | late_ids == set(lag), "events lost"
    # in both only when a re-sent copy came past the watermark (docs/feeds.md: late is judged first)
    assert all(last_lag[k] >= limit and lag[k] < last_lag[k] for k in acc & late_ids), "double-filed"
    assert sum(n for (k, code), n in counts.items() if code != "late") == n_bad


def test_fault_rates_parse_and_validate():
    assert Faults.parse("off") == Faults.off() and not Faults.off().any()
    f = Faults.parse("late=0.02,duplicate=1%")
    assert f.late == 0.02 and f.duplicate == 0.01 and f.missing == Faults().missing
    with pytest.raises(ValueError, match="late, out_of_order"):
        Faults.parse("lateness=0.1")
    with pytest.raises(ValueError):
        Faults(late=1.5)


# ------------------------------------------------------------------ recordings

def test_a_recording_reads_back_in_arrival_order(faulty, tmp_path):
    sim, items = faulty
    man = write_recording(tmp_path / "rec", iter(items), manifest={"scenario": "national-day", "seed": 9},
                          progress=False)
    assert {p.name for p in (tmp_path / "rec").iterdir()} == \
        {f"{k}.parquet" for k in FEED_KINDS} | {"malformed.jsonl", "manifest.json"}
    assert json.loads((tmp_path / "rec" / "manifest.json").read_text())["counts"] == man["counts"]
    back = list(read_recording(tmp_path / "rec"))
    arr = np.concatenate([b.arrival_ms for b in back])
    assert np.all(np.diff(arr) >= 0)
    orig_t, orig_bad = collect(items)
    back_t, back_bad = collect(back)
    for k in FEED_KINDS:
        assert back_t[k].schema.equals(SCHEMAS[k])
        assert back_t[k].equals(orig_t[k]), k
    assert back_bad == orig_bad
    assert sorted(arr.tolist()) == sorted(np.concatenate([b.arrival_ms for b in items]).tolist())


# ------------------------------------------------------------------ live

class FakeWall:
    def __init__(self) -> None:
        self.t = 1000.0
        self.slept = 0.0

    def clock(self) -> float:
        return self.t

    def sleep(self, s: float) -> None:
        self.t += s
        self.slept += s


def test_run_live_paces_by_wall_time_and_feeds_the_ingestor(tmp_path):
    start = datetime(2026, 10, 1, 19, 0, tzinfo=LOCAL)
    clock = SimClock(start)
    log = FeedLog(tmp_path / "log", fsync=False)
    dead = DeadLetterStore(tmp_path / "dead.sqlite")
    ing = Ingestor(log, dead, clock=clock)
    wall = FakeWall()
    t_wall0 = wall.t
    paced = []
    try:
        out = run_live(ing, "national-day", start=start, speed=60.0, seed=1, stop_event=threading.Event(),
                       clock=wall.clock, sleep=wall.sleep, duration=timedelta(minutes=10), sim_clock=clock,
                       faults=BUSY_FAULTS,
                       on_batch=lambda b, rc: paced.append((wall.t - t_wall0, (b.arrival - start).total_seconds())))
        stats = ing.stats()
    finally:
        log.close()
        dead.close()
    # every batch submitted when its last record is due: 1 simulated minute per wall second
    assert all(sim / 60 - 0.002 <= w <= sim / 60 + 1.0 for w, sim in paced)
    assert 9.0 <= wall.slept <= 40.0        # 10 simulated minutes, plus the late records' tail
    assert out["accepted"] > 8000 and out["rejected"] > 0 and out["minutes"] == 10
    assert stats["crowd"]["accepted"] >= 160
    assert clock() > start


def test_run_live_returns_when_stopped():
    stop = threading.Event()
    wall = FakeWall()
    seen = []

    class Recorder:
        def submit(self, kind, records, source=None):
            seen.append(kind)
            if len(seen) == 25:
                stop.set()
            from indicators.feeds.ingest import Receipt
            return Receipt(0, 0, 0, [], None)

    out = run_live(Recorder(), "normal-weekday", start=datetime(2026, 4, 15, 9, 0, tzinfo=LOCAL), speed=1.0,
                   seed=0, stop_event=stop, clock=wall.clock, sleep=wall.sleep, faults=Faults.off())
    assert len(seen) == 25 and out["batches"] == 25
    assert 60 <= wall.slept <= 300      # real time: 25 batches are the first two or three minutes


# ------------------------------------------------------------------ docs

def test_docs_print_the_same_ranges_and_schemas_as_the_code():
    import re
    from pathlib import Path
    from indicators.feeds.scenarios import expect_markdown, schema_markdown
    doc = (Path(__file__).resolve().parents[1] / "docs" / "feeds.md").read_text(encoding="utf-8")
    for name, body in (("expect", expect_markdown(CATALOG)), ("schemas", schema_markdown())):
        m = re.search(r"<!-- BEGIN generated: %s[^>]*-->\n(.*?)<!-- END generated: %s -->" % (name, name), doc, re.S)
        assert m, f"docs/feeds.md lost its generated {name} block"
        assert m.group(1) == body, (f"docs/feeds.md is out of date: paste `python -m indicators.feeds.scenarios "
                                    f"{name}` between its {name} markers")
    for name in CATALOG.names:
        assert f"`{name}`" in doc, f"scenario {name} is not described in docs/feeds.md"
    for kind in FEED_KINDS:
        assert f"### {kind} " in doc, f"feed kind {kind} has no section in docs/feeds.md"
