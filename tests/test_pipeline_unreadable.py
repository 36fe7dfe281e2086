"""A feed record the alert evaluation fails on is set aside with the reason; the rest of the tick is kept.

The alert runtime reads warnings, video events, cases, staff positions and gate counts from each
evaluation's feed records.  Before, one record it could not read made the pipeline evaluate the
tick again *without any* feed record: a new warning or case arriving in the same 15 s was lost,
logged only.  Now the pipeline finds the records the evaluation fails on (rehearsals that commit
nothing), dead-letters them with the reason, and evaluates with the others; and a failed
evaluation leaves the runtime as it was (the video events it had folded are not counted twice).
Also here: a record older than the one the runtime holds (a staff position) does not replace it.
"""
from __future__ import annotations

from datetime import datetime, timedelta, timezone
from types import SimpleNamespace

import numpy as np
import pyarrow as pa
import pytest

from indicators.alerts import runtime as rt
from indicators.alerts.runtime import ListNotifier
from indicators.alerts.store import AlertStore
from indicators.engine.plan import QUALITY_NAMES
from indicators.feeds.deadletter import DeadLetterStore
from indicators.feeds.validate import EVALUATION_ERROR
from indicators.pipeline import Cadence, Pipeline

T0 = datetime(2026, 7, 1, 2, 0, tzinfo=timezone.utc)


@pytest.fixture(scope="module")
def world():
    from twin_assets import inventory as inv
    from indicators.catalog import load_catalog
    inventory = inv.load()
    return inventory, load_catalog(inventory=inventory)


def _tick(catalog, t: datetime):
    n = len(catalog.ids)
    return SimpleNamespace(time=t, values=np.full(n, np.nan), quality=np.full(n, QUALITY_NAMES.index("no_data")))


def _warnings(*rows: tuple[str, str, str]) -> pa.Table:
    return pa.Table.from_pylist([
        {"event_id": eid, "event_time": T0 - timedelta(seconds=5), "signal": sig, "colour": colour,
         "status": "issued", "headline": f"{sig} {colour}"} for eid, sig, colour in rows])


def _videos(camera: str, n: int) -> pa.Table:
    return pa.Table.from_pylist([
        {"event_id": f"v{i}", "event_time": T0 - timedelta(seconds=3), "camera_id": camera,
         "algorithm": "crowd_gathering", "confidence": 0.9} for i in range(n)])


@pytest.fixture()
def pipe(world, monkeypatch):
    """A pipeline whose evaluation cannot read the warning record ``w-bad`` (a stand-in for a
    record a future feed sends that the code has not met), its set-aside records kept in a
    dead-letter store."""
    inventory, catalog = world
    real = rt.fold_warnings

    def fold(current, rows, now):
        rows = list(rows)
        if any(r.get("event_id") == "w-bad" for r in rows):
            raise KeyError("references")
        return real(current, rows, now)

    monkeypatch.setattr(rt, "fold_warnings", fold)
    store = AlertStore.open(":memory:")
    dead = DeadLetterStore(":memory:")
    p = Pipeline(catalog, inventory, store, lambda: T0, ListNotifier(),
                 cadence=Cadence(every=timedelta(seconds=15), warmup=timedelta(0)),
                 reject=lambda records: dead.put(records, received_at=T0))
    yield SimpleNamespace(pipe=p, dead=dead, catalog=catalog, camera=next(iter(p.places.cameras)))
    store.close()
    dead.close()


def test_the_record_it_cannot_read_is_set_aside_and_the_others_are_evaluated(pipe):
    p = pipe.pipe
    p.offer("warning", _warnings(("w-1", "rainstorm", "yellow"), ("w-bad", "typhoon", "blue"),
                                 ("w-2", "high_temperature", "orange")))
    p.offer("video", _videos(pipe.camera, 2))
    res = p.on_tick(_tick(pipe.catalog, T0))

    assert res is not None and not res.skipped
    # the two readable warnings are active (before: none, the whole tick's records were dropped)
    assert {k: w.colour for k, w in p.runtime.warnings.items()} == {"rainstorm": "yellow", "high_temperature": "orange"}
    # the unreadable one is in the dead-letter store, with the reason and where it failed
    kept = pipe.dead.list("warning", code=EVALUATION_ERROR)
    assert len(kept) == 1 and p.set_aside == 1 and p.errors == 1
    assert '"w-bad"' in kept[0]["raw"]
    assert "KeyError" in kept[0]["reason"] and "alert evaluation" in kept[0]["reason"]
    # the failed attempt had folded the video events already: they are counted once, not twice
    assert sorted(v.event_id for v in p.runtime.videos) == ["v0", "v1"]
    # the state was committed: the warnings survive a restart of the runtime from the store
    again = rt.AlertRuntime(p.store, p.rules, p.config.compound, p.config.plans, lambda: T0, ListNotifier(),
                            cases=p.config.cases, places=p.places)
    assert set(again.warnings) == {"rainstorm", "high_temperature"}


def test_a_failed_rehearsal_changes_nothing(pipe):
    p = pipe.pipe
    before = (dict(p.runtime.warnings), list(p.runtime.videos), p.runtime.last_tick)
    err = p.runtime.rehearse(T0, p.values(_tick(pipe.catalog, T0)),
                             {"warning": _warnings(("w-bad", "typhoon", "blue")), "video": _videos(pipe.camera, 3)})
    assert isinstance(err, KeyError)
    assert (dict(p.runtime.warnings), list(p.runtime.videos), p.runtime.last_tick) == before
    ok = p.runtime.rehearse(T0, p.values(_tick(pipe.catalog, T0)), {"warning": _warnings(("w-3", "fog", "yellow"))})
    assert ok is None and p.runtime.warnings == before[0] and p.store.meta("last_tick") is None


def test_when_even_the_readable_records_fail_together_all_are_set_aside_and_thresholds_still_run(pipe, monkeypatch):
    p = pipe.pipe
    real = rt.fold_warnings

    def pair(current, rows, now):                 # fails only when both records come together
        rows = list(rows)
        if {"w-a", "w-b"} <= {r.get("event_id") for r in rows}:
            raise ValueError("two messages reference each other")
        return real(current, rows, now)

    monkeypatch.setattr(rt, "fold_warnings", pair)
    p.offer("warning", _warnings(("w-a", "rainstorm", "red"), ("w-b", "rainstorm", "orange")))
    res = p.on_tick(_tick(pipe.catalog, T0))
    assert res is not None and not res.skipped and p.runtime.last_tick == T0
    kept = pipe.dead.list("warning", code=EVALUATION_ERROR)
    assert sorted(r["raw"].count('"w-a"') + 2 * r["raw"].count('"w-b"') for r in kept) == [1, 2]
    assert all("ValueError" in r["reason"] for r in kept)


def test_a_staff_position_sent_before_the_one_held_is_not_taken(pipe):
    """Phones resend positions after a dead spot: one from a minute ago, delivered after the current
    one, must not move the officer back (the nearest-staff suggestion would send the wrong person)."""
    p = pipe.pipe
    lon, lat = 113.3245, 23.1064

    def position(eid, seconds, dlon):
        return pa.Table.from_pylist([{"event_id": eid, "event_time": T0 - timedelta(seconds=seconds),
                                      "staff_id": "p-01", "lon": lon + dlon, "lat": lat, "status": "available"}])

    p.offer("staff", position("s-new", 5, 0.0))
    p.on_tick(_tick(pipe.catalog, T0))
    here = (p.runtime.staff["p-01"].x, p.runtime.staff["p-01"].y)
    p.offer("staff", position("s-old", 60, 0.004))                # 400 m away, a minute older
    p.on_tick(_tick(pipe.catalog, T0 + timedelta(seconds=15)))
    assert (p.runtime.staff["p-01"].x, p.runtime.staff["p-01"].y) == here
    p.offer("staff", position("s-next", -10, 0.004))               # newer: taken
    p.on_tick(_tick(pipe.catalog, T0 + timedelta(seconds=30)))
    assert p.runtime.staff["p-01"].x != here[0]
