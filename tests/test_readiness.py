"""Health that tells the truth (issue 16): `/readyz` says per component why the service is not
ready - a disk without headroom, a simulator that died - and both recover without a restart; a
full disk answers an ingesting client 507 with what to do, not a bare 500."""
from __future__ import annotations

import errno
import time
from datetime import datetime, timedelta, timezone

import pytest

from indicators.service import Service, ServiceConfig

START = datetime(2026, 4, 15, 19, 0, tzinfo=timezone(timedelta(hours=8)))


def _until(check, timeout=30.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if check():
            return True
        time.sleep(0.1)
    raise AssertionError(f"not within {timeout} s")


@pytest.fixture
def service(tmp_path):
    cfg = ServiceConfig(var=tmp_path, scenario="normal-weekday", speed=60, simulate=True, start=START)
    s = Service(cfg)
    yield s
    s.stop_event.set()
    for th in s._threads.values():
        th.join(10)
    s.alert_store.close()


def test_ready_reports_the_disk_without_headroom_and_recovers_when_space_returns(service, monkeypatch):
    r = service.readiness()
    assert r["ready"] and r["components"]["disk"]["ok"] and r["components"]["alert_store"]["ok"]
    free = r["components"]["disk"]["free_mb"]
    monkeypatch.setattr(Service, "MIN_FREE_BYTES", int((free + 10_000) * 1e6))    # the disk "fills"
    r = service.readiness()
    assert not r["ready"] and not r["components"]["disk"]["ok"]
    assert "MB free" in r["components"]["disk"]["reason"] and "free space" in r["components"]["disk"]["reason"]
    monkeypatch.setattr(Service, "MIN_FREE_BYTES", 1)                              # space is back
    assert service.readiness()["ready"]


def test_a_simulator_that_dies_is_restarted_with_back_off_and_ready_says_so_meanwhile(service, monkeypatch):
    import indicators.feeds.simulator as sim
    real = sim.run_live
    calls = {"n": 0}

    def flaky(*a, **k):
        calls["n"] += 1
        if calls["n"] == 1:
            raise OSError(errno.ENOSPC, "No space left on device")
        return real(*a, **k)

    monkeypatch.setattr(sim, "run_live", flaky)
    monkeypatch.setattr(Service, "RESTART_BACKOFF_S", (1.5, 3.0))
    service.start()
    _until(lambda: service.health().get("simulator", {}).get("problem") == "restarting", 20)
    r = service.readiness()
    comp = r["components"]["simulator"]
    assert not r["ready"] and "No space left on device" in comp["reason"] and comp["restarts"] == 1
    _until(lambda: calls["n"] == 2 and service.health()["simulator"]["ok"], 20)
    _until(lambda: service.feed_log.last_seq is not None and service.feed_log.last_seq > 0, 30)
    assert service.readiness()["components"]["simulator"]["ok"]
    assert service._threads["simulator"].is_alive()


def test_a_full_disk_answers_the_ingesting_client_507_with_what_to_do(tmp_path, monkeypatch):
    from fastapi import FastAPI
    from starlette.testclient import TestClient

    from indicators.feeds.deadletter import DeadLetterStore
    from indicators.feeds.http import make_ingest_router
    from indicators.feeds.ingest import Ingestor
    from indicators.feeds.log import FeedLog

    log = FeedLog(tmp_path / "feeds")
    ing = Ingestor(log, DeadLetterStore(tmp_path / "dead.sqlite"))
    app = FastAPI()
    app.include_router(make_ingest_router(ing))
    line = (b'{"event_id": "c1", "event_time": "2026-04-15T11:00:00Z", "zone_id": "west_plaza", '
            b'"count": 120}\n')
    real = log.append

    def full(*a, **k):
        raise OSError(errno.ENOSPC, "No space left on device")

    with TestClient(app) as client:
        monkeypatch.setattr(log, "append", full)
        r = client.post("/ingest/crowd", content=line, headers={"content-type": "application/x-ndjson"})
        assert r.status_code == 507, r.text
        assert "disk" in r.json()["detail"] and "send it again" in r.json()["detail"] and r.json()["retry"]
        monkeypatch.setattr(log, "append", real)
        r = client.post("/ingest/crowd", content=line, headers={"content-type": "application/x-ndjson"})
        assert r.status_code == 200 and r.json()["accepted"] == 1, r.text           # the resend is taken


def test_a_broken_inventory_on_disk_still_lets_the_service_start_on_the_last_good_one(tmp_path, monkeypatch):
    import shutil

    from twin_assets import inventory as inv
    data = tmp_path / "data"
    data.mkdir()
    shutil.copyfile(inv.inventory_path(), data / "inventory.parquet")
    monkeypatch.setenv("SCENIC_TWIN_DATA", str(data))
    cfg = ServiceConfig(var=tmp_path / "var", scenario="normal-weekday", speed=60, simulate=False, start=START)
    first = Service(cfg)                                         # a good start keeps a copy
    n = len(first.inventory)
    first.alert_store.close()
    first.feed_log.close()
    first.dead.close()
    assert (cfg.var / Service.LAST_GOOD).exists()
    (data / "inventory.parquet").write_bytes(b"PAR1 this is no longer a parquet file")
    s = Service(cfg)
    try:
        assert len(s.inventory) == n and s.catalog.ids
        h = s.health()["inventory"]
        assert not h["ok"] and h["problem"] == "inventory_fallback" and "last good copy" in h["reason"]
        r = s.readiness()
        assert r["ready"] and not r["components"]["inventory"]["ok"]            # degraded, still taking data
    finally:
        s.alert_store.close()
        s.feed_log.close()
        s.dead.close()
