"""The HTTP ingest endpoint refuses callers without the configured token."""
from fastapi import FastAPI
from fastapi.testclient import TestClient

from dashboard.security import ingest_guard
from indicators.feeds.deadletter import DeadLetterStore
from indicators.feeds.http import make_ingest_router
from indicators.feeds.ingest import Ingestor
from indicators.feeds.log import FeedLog

LINE = (b'{"kind":"weather","event_id":"w1","event_time":"2026-10-01T06:00:00Z","source":"t",'
        b'"station_id":"s1","temperature_c":28.5}\n')


def client(tmp_path, monkeypatch, token):
    if token:
        monkeypatch.setenv("SCENIC_TWIN_INGEST_TOKEN", token)
    else:
        monkeypatch.delenv("SCENIC_TWIN_INGEST_TOKEN", raising=False)
    ing = Ingestor(FeedLog(tmp_path / "log"), DeadLetterStore(tmp_path / "dl.sqlite"))
    app = FastAPI()
    app.include_router(make_ingest_router(ing), dependencies=ingest_guard())
    return TestClient(app)


def test_token_required_when_configured(tmp_path, monkeypatch):
    c = client(tmp_path, monkeypatch, "s3cret")
    h = {"content-type": "application/x-ndjson"}
    assert c.post("/ingest", content=LINE, headers=h).status_code == 401
    assert c.post("/ingest", content=LINE, headers={**h, "authorization": "Bearer wrong"}).status_code == 401
    r = c.post("/ingest", content=LINE, headers={**h, "authorization": "Bearer s3cret"})
    assert r.status_code == 200 and r.json()["accepted"] == 1


def test_open_on_localhost_default_without_token(tmp_path, monkeypatch):
    c = client(tmp_path, monkeypatch, None)
    r = c.post("/ingest", content=LINE, headers={"content-type": "application/x-ndjson"})
    assert r.status_code == 200
