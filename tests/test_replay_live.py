"""The one-pass ``replay --alerts`` decides exactly what the live service decides for the same events.

The live side is :func:`indicators.bench_replay.live_loop`: the service's own
loop (``Service._on_batch`` then ``Service.step``: each batch into the engine
and the pipeline, every tick the watermark allows computed and handed to the
pipeline, the clock at the tick's time), one step after every batch.  The
replay side is :func:`indicators.replay_alerts.drive`, which ingests runs of
batches together and evaluates only the ticks the pipeline reads.  Both get
the same recording (faults on: late, out-of-order, duplicate and malformed
records) with a fresh engine, pipeline and in-memory store; a short warm-up
so that a 20-minute recording has ~70 evaluations.

Equal: every alert event, the final alert states (rule id, status, tier,
fired at), the values and qualities of every evaluated tick (bit for bit,
NaN included), the engine's ingest counts, cases and messages.
"""
from __future__ import annotations

from collections import Counter
from datetime import datetime, timedelta, timezone
from pathlib import Path

import numpy as np
import pytest

from indicators.alerts.store import AlertStore
from indicators.bench_replay import live_loop
from indicators.engine import DEFAULT_LATENESS, Engine
from indicators.engine.replay import recording_span
from indicators.feeds.simulator import Faults, simulate, write_recording
from indicators.pipeline import Cadence, Pipeline
from indicators.replay_alerts import drive

EPOCH = datetime(1970, 1, 1, tzinfo=timezone.utc)
CADENCE = Cadence(every=timedelta(seconds=15), warmup=timedelta(minutes=2))


@pytest.fixture(scope="module")
def world():
    from twin_assets import inventory as inv
    from indicators.catalog import load_catalog
    inventory = inv.load()
    return inventory, load_catalog(inventory=inventory)


def _run(directory: Path, world, side: str) -> dict:
    inventory, catalog = world
    lo, _ = recording_span(directory)
    start = EPOCH + timedelta(milliseconds=lo - 1)
    engine = Engine(catalog, inventory, allowed_lateness=DEFAULT_LATENESS, start=start)
    now = {"t": start}
    messages: list = []

    class Notifier:
        def send(self, m) -> None:
            messages.append((m.channel, m.created_at))

    out: dict = {"events": [], "ticks": []}
    with AlertStore.open(":memory:") as st:
        pipe = Pipeline(catalog, inventory, st, lambda: now["t"], Notifier(), cadence=CADENCE)
        evaluate = pipe.on_tick

        def on_tick(tick, **kw):                       # every evaluated tick's values, as the runtime got them
            res = evaluate(tick, **kw)
            if res is not None and not res.skipped:
                out["ticks"].append((tick.time_ms, tick.values.copy(), tick.quality.copy()))
            return res
        pipe.on_tick = on_tick

        def on_result(res) -> None:
            out["events"].extend((e.alert_id, e.rule_id, e.kind, e.at, e.from_status, e.to_status, e.to_tier,
                                  e.value) for e in res.events)
            out.setdefault("cases", []).extend((s.case_id, s.step, s.at) for s in res.case_steps)
            out.setdefault("plans", []).extend((p.plan_id, p.kind, p.at) for p in res.plan_events)

        if side == "live":
            out["work"] = live_loop(directory, engine, pipe, now, on_result)
        else:
            out["work"] = drive(directory, engine, [pipe], now, lambda _i, res: on_result(res), Counter())
        out["states"] = sorted((s.rule_id, s.alert_id, s.status, s.tier, s.fired_at)
                               for s in pipe.runtime.states.values())
        out["evaluations"] = pipe.evaluations
        out["unusable"] = pipe.unusable_rows
    out["stats"] = engine.stats
    out["messages"] = messages
    return out


@pytest.mark.parametrize("scenario,start,seed", [
    ("normal-weekday", "2026-04-15T19:50:00+08:00", 3),
    ("national-day", "2026-10-01T19:00:00+08:00", 11),
    ("holiday-rainstorm", "2026-10-02T14:20:00+08:00", 5),
])
def test_replay_alerts_equal_the_live_loop(tmp_path, world, scenario, start, seed):
    rec = tmp_path / "rec"
    items = simulate(scenario, datetime.fromisoformat(start), timedelta(minutes=20), seed, faults=Faults())
    write_recording(rec, items, manifest={"scenario": scenario, "seed": seed}, progress=False)

    live = _run(rec, world, "live")
    replay = _run(rec, world, "replay")

    # the replay did less work: batches in runs, ticks evaluated only when the rules are due
    w = replay["work"]
    assert w["runs"] > 0 and w["ingest_calls"] < w["batches"] == live["work"]["batches"], w
    assert w["ticks"] == live["work"]["ticks"] and w["evaluated"] < w["ticks"] / 5, w
    assert live["stats"] == replay["stats"]
    assert sum(s["late"] + s["duplicates"] for s in live["stats"].values()) > 0   # faults reached the engine

    assert replay["evaluations"] == live["evaluations"] > 50
    assert [t for t, _, _ in replay["ticks"]] == [t for t, _, _ in live["ticks"]]
    for (t, v1, q1), (_, v2, q2) in zip(live["ticks"], replay["ticks"]):
        assert np.array_equal(v1, v2, equal_nan=True) and np.array_equal(q1, q2), t
    assert live["events"] and replay["events"] == live["events"]
    assert replay["states"] == live["states"]
    assert replay.get("cases") == live.get("cases") and replay.get("plans") == live.get("plans")
    assert replay["messages"] == live["messages"] and replay["unusable"] == live["unusable"]


def test_bench_replay_command_prints_both_sides_and_the_work(tmp_path, capsys):
    """``scenic-twin bench replay REC`` on a 16-minute recording (past the 15-minute warm-up): both sides,
    the ratio and the work each did; exit 0 because both decided the same alerts.  No timing asserted."""
    import argparse

    from indicators import bench_replay
    rec = tmp_path / "rec"
    items = simulate("normal-weekday", datetime.fromisoformat("2026-04-15T20:00:00+08:00"), timedelta(minutes=16), 2,
                     faults=Faults())
    write_recording(rec, items, manifest={"scenario": "normal-weekday", "seed": 2}, progress=False)
    p = argparse.ArgumentParser()
    bench_replay.add_arguments(p)
    assert bench_replay.main(p.parse_args([str(rec)])) == 0
    out = capsys.readouterr()
    assert "live / replay:" in out.out and "same alert events and final alert states: yes" in out.out
    assert "ticks computed" in out.out and "alert evaluations" in out.out and "engine ingest calls" in out.out
    assert "bench replay: live side" in out.err
    assert bench_replay.main(p.parse_args([str(rec), "--json"])) == 0
    import json
    r = json.loads(capsys.readouterr().out)
    assert r["same_alerts"] and r["replay"]["work"]["evaluations"] == r["live"]["work"]["evaluations"] >= 2
    assert r["live"]["work"]["evaluated"] == r["live"]["work"]["ticks"] > r["replay"]["work"]["evaluated"]
