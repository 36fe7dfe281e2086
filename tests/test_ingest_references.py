"""Inputs refer to things that exist (issues 11 and 16): a feed record naming a zone, gate,
camera or asset the inventory does not have is dead-lettered with the reason, counted per
source, and located; the records beside it are taken."""
from __future__ import annotations

from datetime import datetime, timezone

import pytest

from indicators.feeds.deadletter import DeadLetterStore
from indicators.feeds.ingest import Ingestor, references_from_inventory
from indicators.feeds.log import FeedLog
from indicators.feeds.validate import UNKNOWN_REFERENCE

NOW = datetime(2026, 4, 15, 12, 0, tzinfo=timezone.utc)


@pytest.fixture
def ingest(tmp_path, inventory):
    log, dead = FeedLog(tmp_path / "log"), DeadLetterStore(tmp_path / "dead.sqlite")
    yield Ingestor(log, dead, clock=lambda: NOW, references=references_from_inventory(inventory)), dead
    log.close()
    dead.close()


def test_an_unknown_zone_is_dead_lettered_with_the_reason_and_its_neighbours_are_taken(ingest):
    ing, dead = ingest
    rows = [{"event_id": "c1", "event_time": NOW, "zone_id": "west_plaza", "count": 120},
            {"event_id": "c2", "event_time": NOW, "zone_id": "mars_base", "count": 77},
            {"event_id": "c3", "event_time": NOW, "zone_id": "<b>x</b>", "count": 1},
            {"event_id": "c4", "event_time": NOW, "zone_id": "haixin_bridge", "count": 300}]
    r = ing.submit("crowd", rows, source="evil-sender")
    assert r.accepted == 2
    assert [(b.index, b.code, b.where) for b in r.rejected] == [(1, UNKNOWN_REFERENCE, "zone_id"),
                                                                (2, UNKNOWN_REFERENCE, "zone_id")]
    assert "'mars_base' names nothing in the asset inventory" in r.rejected[0].reason
    assert dead.counts()[("crowd", UNKNOWN_REFERENCE)] == 2


@pytest.mark.parametrize("kind, row, col", [
    ("video", {"camera_id": "cctv_camera-nowhere-0001", "algorithm": "exposed_litter", "confidence": 0.9}, "camera_id"),
    ("facility", {"asset_id": "fire_hydrant-fake-0001", "metric": "hydrant_pressure_mpa", "value": 0.3}, "asset_id"),
    ("gate", {"gate_id": "gate-nowhere-0001", "zone_id": "west_plaza", "entries": 3, "exits": 1}, "gate_id"),
])
def test_unknown_cameras_assets_and_gates_are_refused_too(ingest, kind, row, col):
    ing, _ = ingest
    r = ing.submit(kind, [{"event_id": "x1", "event_time": NOW, **row}])
    assert r.accepted == 0 and [(b.code, b.where) for b in r.rejected] == [(UNKNOWN_REFERENCE, col)], r.rejected


def test_an_ingestor_without_references_takes_any_id(tmp_path):
    log, dead = FeedLog(tmp_path / "log"), DeadLetterStore(tmp_path / "dead.sqlite")
    try:
        r = Ingestor(log, dead, clock=lambda: NOW).submit(
            "crowd", [{"event_id": "c1", "event_time": NOW, "zone_id": "test_zone", "count": 1}])
        assert r.accepted == 1
    finally:
        log.close()
        dead.close()
