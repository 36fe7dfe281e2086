"""Web workers (issue 12): a worker that runs no service shows the front's snapshots and forwards
writes to it over NATS; what comes over the bus cannot run code."""
from __future__ import annotations

import os
import pickle
import time
import zlib
from datetime import datetime, timedelta, timezone

import pytest

from dashboard.live import SnapshotHub
from indicators.bus import names
from indicators.bus.jetstream import Bus
from indicators.bus.remote import RefusedMessage, RemoteService, ServiceHost, dumps, loads
from indicators.feeds.simulator import simulate

START = datetime(2026, 4, 15, 19, 0, tzinfo=timezone(timedelta(hours=8)))


@pytest.fixture(scope="module")
def front(nats, tmp_path_factory):
    """A front for one area with 30 simulated minutes of an evening, and its host on the bus."""
    from indicators.service import Service, ServiceConfig
    svc = Service(ServiceConfig(var=tmp_path_factory.mktemp("front"), simulate=False, start=START,
                                bus=nats.url, area="canton-tower-copy-171", alerts_warmup=timedelta(0)))
    host = ServiceHost(svc, svc.bus, svc.cfg.area)
    hub = SnapshotHub()
    svc.publish = lambda s: (hub.publish(s), host.publish(s))
    for b in simulate("normal-weekday", START, timedelta(minutes=30), 4):
        if b.kind != "malformed":
            svc.sim_clock.set(b.arrival)
            svc.ingestor.submit(b.kind, b.payload)
            svc.step()
    yield svc, host, hub
    host.close()
    svc.stop()


def wait_for(cond, timeout=20.0):
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if cond():
            return True
        time.sleep(0.05)
    return False


def test_a_web_worker_shows_the_fronts_snapshots_and_its_writes_land_in_the_front(front, nats):
    from indicators.service import ActionError
    svc, host, front_hub = front
    with Bus(nats.url) as bus:
        hub = SnapshotHub()
        remote = RemoteService(bus, svc.cfg.area, hub.publish, inventory=svc.inventory)
        remote.start()
        assert hub.snapshot.version == front_hub.snapshot.version > 0      # the current one at start
        active = [a for a in hub.snapshot.alerts if a.status == "firing" and not a.acked_by]
        assert active, "an evening with no alert to act on"
        target = active[0]
        remote.acknowledge(target.alert_id, by="op-remote", comment="seen on the wall")
        assert svc.alert_state(target.alert_id).acked_by == "op-remote"    # written by the front
        svc.step()                                                           # the front's next push
        assert wait_for(lambda: (a := hub.snapshot.alert(target.alert_id)) is not None
                        and a.acked_by == "op-remote")
        assert wait_for(lambda: hub.snapshot.version == front_hub.snapshot.version)
        with pytest.raises(ActionError):
            remote.acknowledge("no-such-alert", by="op-remote", comment="x")
        with pytest.raises(AttributeError):
            remote.stop_everything                                           # not forwarded
        assert remote.readiness()["components"]["front_link"]["ok"]
        sha = remote.photos.put(_jpeg())
        assert remote.photos.valid_name(sha) and remote.photos.get(sha)[:2] == b"\xff\xd8"
        remote.stop()


def _jpeg() -> bytes:
    import io

    from PIL import Image
    buf = io.BytesIO()
    Image.new("RGB", (64, 48), (200, 30, 30)).save(buf, "JPEG")
    return buf.getvalue()


class Boom:
    def __reduce__(self):
        return (os.system, ("touch /tmp/scenic-twin-pwned",))


def test_a_message_that_would_run_code_is_refused(front, nats, tmp_path):
    svc, host, _ = front
    evil = zlib.compress(pickle.dumps(Boom()))
    with pytest.raises(RefusedMessage):
        loads(evil)
    # a project class that is not a plain record (it opens files) is refused too
    from indicators.feeds.deadletter import DeadLetterStore
    with pytest.raises(RefusedMessage):
        loads(zlib.compress(pickle.dumps((DeadLetterStore, (str(tmp_path / "x.sqlite"),)))))
    # sent to the front as a call: answered with an error, nothing run
    with Bus(nats.url) as bus:
        for payload in (evil, dumps(("stop", (), {})), b"garbage"):
            msg = bus.call(bus.nc.request(names.service_subject(svc.cfg.area), payload, timeout=10))
            answer = loads(msg.data)
            assert answer[0] == "error"
    assert not os.path.exists("/tmp/scenic-twin-pwned")
    assert not svc.stop_event.is_set()
    assert loads(dumps(svc.snapshot)).version == svc.snapshot.version   # a real snapshot goes through


def test_a_login_on_one_worker_holds_on_the_others_and_a_logout_ends_it_everywhere(front, nats, tmp_path):
    """Sessions are rows in the shared store: a screen moved to another worker by the load balancer
    stays logged in; logging out anywhere ends the session on every worker."""
    import re

    from argon2 import PasswordHasher
    from starlette.testclient import TestClient

    from conftest import unlimited
    from dashboard import auth
    from dashboard.app import create_app
    from indicators.access.store import AccessStore
    svc, _, _ = front
    fast = PasswordHasher(time_cost=1, memory_cost=1024, parallelism=1)
    shared = tmp_path / "access.sqlite"               # PostgreSQL in a deployment; one file here
    stores = [AccessStore(shared, hasher=fast), AccessStore(shared, hasher=fast)]
    stores[0].add_user("op.shared", "operator", by="test", password="correct horse battery staple 42")
    with Bus(nats.url) as bus:
        hubs = [SnapshotHub(), SnapshotHub()]
        workers = [RemoteService(bus, svc.cfg.area, hubs[i].publish, inventory=svc.inventory) for i in (0, 1)]
        apps = [create_app(hub=hubs[i], service=workers[i], access=stores[i], limiter=unlimited()) for i in (0, 1)]
        base = "http://127.0.0.1:8050"
        with TestClient(apps[0].server, base_url=base) as one, TestClient(apps[1].server, base_url=base) as two:
            csrf = re.search(r'name="csrf" value="([^"]+)"', one.get("/login").text).group(1)
            r = one.post("/login", data={"username": "op.shared", "password": "correct horse battery staple 42",
                                         "csrf": csrf, "next": "/ops"},
                         headers={"origin": base, "cookie": f"{auth.CSRF_COOKIE}={csrf}"}, follow_redirects=False)
            assert r.status_code == 303
            token = r.cookies.get(auth.COOKIE) or re.search(f"{auth.COOKIE}=([^;]+)", r.headers["set-cookie"]).group(1)
            cookie = {"cookie": f"{auth.COOKIE}={token}"}
            two.cookies.clear()
            assert two.get("/ops", headers=cookie, follow_redirects=False).status_code == 200   # the other worker
            one.get("/logout", headers=cookie, follow_redirects=False)
            r = two.get("/ops", headers=cookie, follow_redirects=False)
            assert r.status_code in (302, 303, 307) and r.headers["location"].startswith("/login")
