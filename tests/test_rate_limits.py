"""Per-client request limits on the write routes (issue 16): one client past its budget gets 429
with Retry-After (a WebSocket callback message: close 1013), everyone else goes on; the refusal is
audited once a minute per client, not once per request."""
from __future__ import annotations

import json

import pytest
from argon2 import PasswordHasher
from starlette.testclient import TestClient

from dashboard import auth
from dashboard.app import create_app
from dashboard.ratelimit import DEFAULT_LIMITS, Limit, RateLimiter, limits_from_env
from indicators.access.store import AccessStore

BASE = "http://127.0.0.1:8050"
PASSWORD = "correct horse battery staple 42"


class Clock:
    def __init__(self):
        self.t = 1000.0

    def __call__(self):
        return self.t


def test_a_bucket_lets_a_burst_through_then_refills_at_its_rate():
    clock = Clock()
    lim = RateLimiter({"callback": Limit(2.0, 3)}, clock=clock)
    assert [lim.take("callback", "a") for _ in range(3)] == [0, 0, 0]
    wait = lim.take("callback", "a")
    assert wait == pytest.approx(0.5)                    # one token per 0.5 s at 2/s
    assert lim.take("callback", "b") == 0                # another client has its own bucket
    clock.t += 0.5
    assert lim.take("callback", "a") == 0 and lim.take("callback", "a") > 0
    clock.t += 60                                        # refills to the burst, not beyond
    assert [lim.take("callback", "a") for _ in range(4)].count(0) == 3
    assert lim.refused["callback"] == 3


def test_limits_are_set_by_environment_and_a_bad_one_says_what_to_write():
    got = limits_from_env({"SCENIC_TWIN_RATE_INGEST": "200/800"})
    assert got["ingest"] == Limit(200.0, 800) and got["callback"] == DEFAULT_LIMITS["callback"]
    with pytest.raises(ValueError, match=r"SCENIC_TWIN_RATE_PHOTO='fast'.*RATE/BURST, e.g. 0.5/6"):
        limits_from_env({"SCENIC_TWIN_RATE_PHOTO": "fast"})


@pytest.fixture
def world(tmp_path):
    clock = Clock()
    store = AccessStore(tmp_path / "access.sqlite",
                        hasher=PasswordHasher(time_cost=1, memory_cost=1024, parallelism=1))
    limiter = RateLimiter({**DEFAULT_LIMITS, "callback": Limit(1.0, 5), "photo": Limit(0.1, 2)}, clock=clock)
    app = create_app(service=None, access=store, limiter=limiter)
    cookies = {}
    for name, role in (("op.one", "operator"), ("op.two", "operator"), ("patrol-07", "patrol")):
        store.add_user(name, role, by="test", password=PASSWORD)
        cookies[name] = f"{auth.COOKIE}={store.login(name, PASSWORD, client='t').token}"
    with TestClient(app.server, base_url=BASE) as client:
        yield app, client, cookies, clock, store
    store.close()


def _ping(app):
    from dashboard import ids
    key = f"{ids.PONG}.data"
    spec = app.callback_map[key]
    vals = lambda items: [{"id": i["id"], "property": i["property"], "value": None} for i in items]  # noqa: E731
    parts = key[2:-2].split("...") if key.startswith("..") else [key]
    outputs = [{"id": p.rsplit(".", 1)[0], "property": p.rsplit(".", 1)[1]} for p in parts]
    return json.dumps({"output": key, "outputs": outputs if key.startswith("..") else outputs[0],
                       "inputs": vals(spec.get("inputs", [])), "state": vals(spec.get("state", [])),
                       "changedPropIds": []})


def test_one_account_past_its_budget_gets_429_and_the_others_go_on(world):
    app, client, cookies, clock, store = world
    body = _ping(app)

    def call(who):
        return client.post("/_dash-update-component", content=body, headers={
            "cookie": cookies[who], "origin": BASE, "content-type": "application/json"})

    statuses = [call("op.one").status_code for _ in range(8)]
    assert statuses == [200] * 5 + [429] * 3, statuses
    refused = call("op.one")
    assert refused.status_code == 429 and int(refused.headers["retry-after"]) >= 1
    assert "too many requests from this client" in refused.json()["error"]
    assert call("op.two").status_code != 429                       # another account is not slowed
    clock.t += 2.0                                                  # two tokens back at 1/s
    assert [call("op.one").status_code != 429 for _ in range(3)] == [True, True, False]
    # audited once for the whole flood, naming the limit
    rows = store.audit_rows(action="access.refused")
    assert len([r for r in rows if "over the callback request limit" in json.dumps(r["detail"])]) == 1


def test_photo_uploads_have_their_own_small_budget(world):
    app, client, cookies, clock, _ = world

    def post():
        return client.post("/patrol/photo", content=b"not an image", headers={
            "cookie": cookies["patrol-07"], "origin": BASE, "content-type": "application/octet-stream"})

    # (no photo store in this app: answered 503 while within budget)
    assert [post().status_code for _ in range(3)] == [503, 503, 429]   # answered, answered, refused unread
    clock.t += 10
    assert post().status_code == 503
