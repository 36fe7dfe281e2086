"""The patrol route, the coverage log, patrol photos, and what a patrol phone may do
through the service (issue 10): without a browser."""
from __future__ import annotations

import io
import os
from datetime import date, datetime, timedelta, timezone

import pytest
from PIL import Image

from indicators.localtime import LOCAL
from indicators.patrols import PatrolError, PatrolStore, coverage, merge, route_from_inventory
from indicators.photos import MAX_BYTES, PhotoError, PhotoStore

T0 = datetime(2026, 4, 15, 12, 0, tzinfo=timezone.utc)          # 20:00 in Guangzhou


@pytest.fixture(scope="module")
def route(inventory, frame):
    return route_from_inventory(inventory, frame)


# --------------------------------------------------------------------------- the route
def test_the_route_is_the_articles_riverside_loop_with_its_nine_checkpoints_in_order(route):
    assert round(route.length_m) == 2943                      # "about 3,000 m"
    ids = [c.id for c in route.checkpoints]
    assert ids[0] == "cp_west_plaza" and ids[-1] == "cp_guangzhou_bridge" and len(ids) == 9
    s = [c.chainage_m for c in route.checkpoints]
    assert s == sorted(s) and s[0] == 0 and s[-1] == pytest.approx(route.length_m, abs=1)
    assert len(route.segments) == 8 and route.segments[0].id == "cp_west_plaza>cp_riverside_link"
    for c in route.checkpoints:                               # each drawn where its chainage says
        x, y, _ = route.at(c.chainage_m)
        assert abs(x - c.x) < 15 and abs(y - c.y) < 15, c.id
    assert len(route.cameras) > 20                            # cameras along the promenade


# --------------------------------------------------------------------------- coverage
def test_a_segment_counts_when_walked_end_to_end_and_a_checkpoint_when_stopped_at(route):
    a, b, c = route.segments[:3]
    cov = coverage(route, [[0, b.to_m - 1]], ["cp_west_plaza", "cp_grand_steps"])
    assert cov.segments == (a.id, b.id)                       # 1 m short is within the tolerance
    assert cov.checkpoints == ("cp_west_plaza", "cp_grand_steps")
    cov = coverage(route, [[0, c.from_m + (c.to_m - c.from_m) / 2]], [])
    assert c.id not in cov.segments and cov.checkpoints == ()
    # stopped at, but the walk never reached it (a phone that claims a stop it did not make)
    assert coverage(route, [[0, 100]], ["cp_pier"]).checkpoints == ()


def test_resent_overlapping_and_out_of_order_reports_give_the_same_union(route):
    assert merge([[500, 900], [0, 300], [290, 510], [2000, 2100]]) == [[0, 900], [2000, 2100]]
    whole = coverage(route, [[0, route.length_m]], [c.id for c in route.checkpoints])
    pieces = coverage(route, [[1500, route.length_m], [0, 800], [700, 1600], [0, 800]],
                      [c.id for c in reversed(route.checkpoints)] * 2)
    assert set(pieces.segments) == set(whole.segments) and set(pieces.checkpoints) == set(whole.checkpoints)
    assert pieces.walked_m == whole.walked_m


def test_the_log_keeps_the_union_survives_a_reopen_and_ignores_a_resent_last_report(tmp_path, route):
    path = tmp_path / "patrols.sqlite"
    log = PatrolStore(path, route)
    half = route.checkpoints[4].chainage_m
    log.progress("p-0000001", username="patrol-07", now=T0, intervals=[[0, half]],
                 checkpoints=[c.id for c in route.checkpoints[:5]])
    log.progress("p-0000001", username="patrol-07", now=T0 + timedelta(seconds=30), intervals=[[0, half]],
                 checkpoints=["cp_west_plaza"])                                       # a resend: nothing new
    log.close()
    log = PatrolStore(path, route)                                                     # a restart
    r = log.progress("p-0000001", username="patrol-07", now=T0 + timedelta(minutes=4),
                     intervals=[[0, half], [half, route.length_m]],
                     checkpoints=[c.id for c in route.checkpoints], anomalies=["a1", "a1", "a2"], ended=True)
    assert r.ended_at == T0 + timedelta(minutes=4) and r.started_at == T0
    assert len(r.coverage.segments) == 8 and len(r.coverage.checkpoints) == 9 and r.anomalies == ("a1", "a2")
    again = log.progress("p-0000001", username="patrol-07", now=T0 + timedelta(minutes=9), intervals=[[0, 1]],
                         checkpoints=[], ended=True)
    assert again.ended_at == r.ended_at and again.to_dict()["duration_s"] == 240.0
    assert log.gaps(date(2026, 4, 15)) == []
    assert [s.id for s in log.gaps(date(2026, 4, 16))] == [s.id for s in route.segments]    # nobody walked


def test_a_day_with_half_the_route_walked_shows_the_other_half_as_gaps(tmp_path, route):
    log = PatrolStore(tmp_path / "p.sqlite", route)
    upto = route.checkpoints[3].chainage_m
    log.progress("p-0000002", username="patrol-03", now=T0, intervals=[[0, upto]], checkpoints=[])
    assert [s.id for s in log.gaps(date(2026, 4, 15))] == [s.id for s in route.segments[3:]]
    assert [p.username for p in log.day(date(2026, 4, 15))] == ["patrol-03"]


@pytest.mark.parametrize("kw, says", [
    ({"intervals": [[0, 99999]]}, "off the route"),
    ({"intervals": [["a", 3]]}, "a pair of numbers"),
    ({"intervals": [[0, float("nan")]]}, "a pair of numbers"),
    ({"intervals": "0-100"}, "a list of at most"),
    ({"checkpoints": ["cp_moon"]}, "not on route"),
    ({"checkpoints": [3]}, "checkpoint ids"),
])
def test_a_report_that_makes_no_sense_is_refused_with_the_reason(tmp_path, route, kw, says):
    log = PatrolStore(tmp_path / "p.sqlite", route)
    args = {"intervals": [[0, 10]], "checkpoints": []} | kw
    with pytest.raises(PatrolError, match=says):
        log.progress("p-0000003", username="patrol-07", now=T0, **args)
    assert log.get("p-0000003") is None                       # nothing kept of it


def test_someone_elses_patrol_and_a_bad_patrol_id_are_refused(tmp_path, route):
    log = PatrolStore(tmp_path / "p.sqlite", route)
    log.progress("p-0000004", username="patrol-07", now=T0, intervals=[[0, 10]], checkpoints=[])
    with pytest.raises(PatrolError, match="patrol-07's"):
        log.progress("p-0000004", username="patrol-08", now=T0, intervals=[[0, 30]], checkpoints=[])
    with pytest.raises(PatrolError, match="patrol_id"):
        log.progress("x", username="patrol-07", now=T0, intervals=[], checkpoints=[])


# --------------------------------------------------------------------------- photos
def _image(fmt: str, size=(64, 48), **save) -> bytes:
    b = io.BytesIO()
    Image.new("RGB", size, (200, 40, 40)).save(b, fmt, **save)
    return b.getvalue()


@pytest.mark.parametrize("fmt", ["JPEG", "PNG", "WEBP"])
def test_a_photo_is_kept_as_pixels_only_under_its_checksum(tmp_path, fmt):
    store = PhotoStore(tmp_path)
    exif = Image.Exif()
    exif[0x010F] = "PhoneMaker"                                # camera make
    data = _image(fmt, exif=exif) if fmt != "PNG" else _image(fmt)
    sha = store.put(data)
    body = store.get(sha)
    with Image.open(io.BytesIO(body)) as im:
        assert im.format == "JPEG" and im.size == (64, 48) and not im.getexif()
    assert store.put(data) == sha and len(list(tmp_path.iterdir())) == 1     # the same photo twice: one file


@pytest.mark.parametrize("make_bad, says", [
    (lambda: b"", "empty"),
    (lambda: b"%PDF-1.7 not a photo" * 10, "only JPEG, PNG or WebP"),
    (lambda: b"<svg onload=alert(1)>", "only JPEG, PNG or WebP"),
    (lambda: _image("JPEG") + b"PK\x03\x04" + b"\x00" * 30 + b"evil.js", "after the image ends"),
    (lambda: _image("PNG") + b"<html><script>alert(1)</script></html>", "after the image ends"),
    (lambda: _image("JPEG", comment=b"<script>alert(1)</script>"), "markup or script"),
    (lambda: _image("JPEG")[:200], "cut short or damaged"),
    (lambda: b"\xff\xd8\xff" + os.urandom(MAX_BYTES), "at most 8 MB"),
])
def test_a_bad_upload_is_refused_with_a_clear_reason_and_nothing_is_written(tmp_path, make_bad, says):
    store = PhotoStore(tmp_path)
    with pytest.raises(PhotoError, match=says):
        store.put(make_bad())
    assert list(tmp_path.iterdir()) == []


def test_a_decompression_bomb_is_refused(tmp_path):
    bomb = _image("PNG", size=(10_000, 6_000))               # small file, 60 megapixels
    assert len(bomb) < MAX_BYTES
    with pytest.raises(PhotoError, match="pixels"):
        PhotoStore(tmp_path).put(bomb)
    assert list(tmp_path.iterdir()) == []


def test_a_photo_damaged_on_disk_is_not_served(tmp_path):
    store = PhotoStore(tmp_path)
    sha = store.put(_image("JPEG"))
    p = tmp_path / f"{sha}.jpg"
    p.write_bytes(p.read_bytes()[:-10] + b"0123456789")
    with pytest.raises(PhotoError, match="damaged"):
        store.get(sha)
    with pytest.raises(PhotoError, match="SHA-256"):
        store.get("../../etc/passwd")


# --------------------------------------------------------------------------- through the service
@pytest.fixture(scope="module")
def service(tmp_path_factory):
    from indicators.feeds.simulator import Faults, simulate
    from indicators.service import Service, ServiceConfig
    audit: list[tuple] = []
    cfg = ServiceConfig(var=tmp_path_factory.mktemp("var"), scenario="normal-weekday", speed=60, simulate=False,
                        alerts_warmup=timedelta(minutes=1))
    s = Service(cfg, audit=lambda actor, action, otype, oid, **kw: audit.append((actor, action, otype, oid, kw)))
    t = datetime(2026, 4, 15, 20, 0, tzinfo=timezone(timedelta(hours=8)))
    s.sim_clock.set(t)
    for _ in range(12):                       # the weather feed reports every 10 minutes; then the warm-up ends
        for batch in simulate("normal-weekday", t, timedelta(minutes=1), 3, faults=Faults.off()):
            s.sim_clock.set(batch.arrival)
            s.ingestor.submit(batch.kind, batch.payload, source="test")
        t += timedelta(minutes=1)
        s.step()
    s.audit_log = audit
    yield s
    s.alert_store.close()


def test_a_phone_moves_only_its_own_case_and_only_by_the_phones_steps(service):
    from indicators.service import ActionError
    x, y, _ = service.route.at(400)
    case = service.report(request_id="phone-r1", category="litter", by="patrol-07", xy=(x, y), description="bags")
    again = service.report(request_id="phone-r1", category="litter", by="patrol-07", xy=(x, y), description="bags")
    assert again.case_id == case.case_id and len([c for c in service.alert_store.cases()
                                                   if c.source_ref == "phone-r1"]) == 1
    staff = sorted(service.alerts.staff)
    assert "patrol-07" in staff and "patrol-08" in staff
    service.case_step(case.case_id, "dispatch", by="li.dispatcher", to_staff="patrol-07")
    with pytest.raises(ActionError, match="not assigned to patrol-08"):
        service.patrol_case_step(case.case_id, "accept", by="patrol-08", staff_id="patrol-08")
    with pytest.raises(ActionError, match="not 'close'"):
        service.patrol_case_step(case.case_id, "close", by="patrol-07", staff_id="patrol-07", note="x")
    for step in ("accept", "arrive", "handle"):
        service.patrol_case_step(case.case_id, step, by="patrol-07", staff_id="patrol-07", note="swept", xy=(x, y))
    c = service.case_state(case.case_id)
    assert c.status == "verifying" and c.arrived_at is not None
    done = [a[1] for a in service.audit_log if a[3] == case.case_id]
    assert done == ["case.report", "case.report", "case.dispatch", "case.accept", "case.arrive", "case.handle"]


def test_a_report_is_refused_off_the_map_with_an_unknown_type_or_an_unknown_photo(service):
    from indicators.service import ActionError
    with pytest.raises(ActionError, match="outside the scenic area"):
        service.report(request_id="phone-r2", category="litter", by="patrol-07", xy=(90_000.0, 0.0))
    with pytest.raises(ActionError, match="unknown case type"):
        service.report(request_id="phone-r3", category="alien", by="patrol-07", xy=(0.0, 0.0))
    with pytest.raises(ActionError, match="photo was not uploaded"):
        service.report(request_id="phone-r4", category="litter", by="patrol-07", xy=(0.0, 0.0), photo="f" * 64)
    sha = service.photos.put(_image("JPEG"))
    c = service.report(request_id="phone-r5", category="litter", by="patrol-07", xy=(0.0, 0.0), photo=sha)
    assert [s["details"].get("sha256") for s in service.alert_store.case_steps(c.case_id)] == [None, sha]


def test_the_recent_patrols_and_gaps_and_their_start_and_end_in_the_audit(service):
    r = service.route
    service.patrol_progress("phone-patrol-1", by="patrol-07", intervals=[[0, r.checkpoints[2].chainage_m]],
                            checkpoints=["cp_west_plaza", "cp_riverside_link", "cp_grand_steps"])
    service.patrol_progress("phone-patrol-1", by="patrol-07", intervals=[[0, r.checkpoints[2].chainage_m]],
                            checkpoints=[], ended=True)
    day = service.patrols()
    assert day["hours"] == 12 and [p["username"] for p in day["patrols"]] == ["patrol-07"]
    assert day["patrols"][0]["checkpoints"] == ["cp_west_plaza", "cp_riverside_link", "cp_grand_steps"]
    assert day["gaps"] == [s.id for s in r.segments[2:]]
    assert [a[1] for a in service.audit_log if a[2] == "patrol"] == ["patrol.start", "patrol.end"]
    assert [p["username"] for p in service.patrols(date(2026, 4, 15))["patrols"]] == ["patrol-07"]


def test_a_night_patrol_stays_on_the_console_past_midnight_and_leaves_it_after_twelve_hours(service):
    """The console lists the last 12 hours, not the calendar day: a patrol walked at 23:50 is
    still there (and its stretches still covered) at 00:20, and gone by noon."""
    r, before = service.route, service.clock()
    try:
        service.sim_clock.set(datetime(2026, 4, 15, 23, 50, tzinfo=LOCAL))
        service.patrol_progress("phone-night-1", by="patrol-09", intervals=[[0, r.length_m]],
                                checkpoints=[c.id for c in r.checkpoints], ended=True)
        service.sim_clock.set(datetime(2026, 4, 16, 0, 20, tzinfo=LOCAL))
        now = service.patrols()
        assert "patrol-09" in [p["username"] for p in now["patrols"]] and now["gaps"] == [] and now["hours"] == 12
        assert service.patrols(date(2026, 4, 16))["patrols"] == []          # the calendar day has none
        service.sim_clock.set(datetime(2026, 4, 16, 12, 0, tzinfo=LOCAL))
        later = service.patrols()
        assert later["patrols"] == [] and len(later["gaps"]) == len(r.segments)
    finally:
        service.sim_clock.set(before)


# --------------------------------------------------------------------------- the upload route
def test_the_upload_route_keeps_a_photo_and_refuses_bad_ones_with_the_reason(tmp_path):
    from types import SimpleNamespace

    from argon2 import PasswordHasher
    from starlette.testclient import TestClient

    from dashboard import auth
    from dashboard.app import create_app
    from indicators.access.store import AccessStore

    store = AccessStore(tmp_path / "access.sqlite", hasher=PasswordHasher(time_cost=1, memory_cost=1024,
                                                                          parallelism=1))
    photos = PhotoStore(tmp_path / "photos")
    app = create_app(service=SimpleNamespace(photos=photos), access=store)
    base = "http://127.0.0.1:8050"
    for name, role in (("patrol-07", "patrol"), ("op", "operator")):
        store.add_user(name, role, by="test", password="correct horse battery staple 42")
    tokens = {n: store.login(n, "correct horse battery staple 42", client="t").token for n in ("patrol-07", "op")}

    def post(who, body):
        return client.post("/patrol/photo", content=body, headers={
            "origin": base, "cookie": f"{auth.COOKIE}={tokens[who]}", "content-type": "application/octet-stream"})

    with TestClient(app.server, base_url=base) as client:
        ok = post("patrol-07", _image("JPEG"))
        assert ok.status_code == 200 and PhotoStore.valid_name(ok.json()["sha256"])
        sha = ok.json()["sha256"]
        got = client.get(f"/photos/{sha}", headers={"cookie": f"{auth.COOKIE}={tokens['op']}"})
        assert got.status_code == 200 and got.headers["content-type"] == "image/jpeg"
        assert got.headers["x-content-type-options"] == "nosniff"
        cases = [(b"<html><script>alert(1)</script>", 415, "only JPEG, PNG or WebP"),
                 (_image("PNG") + b"PK\x03\x04zip", 415, "after the image ends"),
                 (b"\xff\xd8\xff" + b"\x00" * (MAX_BYTES + 10), 413, "larger than 8 MB")]
        for body, status, says in cases:
            r = post("patrol-07", body)
            assert r.status_code == status and says in r.json()["error"], (status, r.text[:200])
        assert post("op", _image("JPEG")).status_code == 403          # an operator takes no photos here
        assert client.post("/patrol/photo", content=_image("JPEG"),
                           headers={"origin": "http://evil.example",
                                    "cookie": f"{auth.COOKIE}={tokens['patrol-07']}"}).status_code == 403
    assert sorted(p.name for p in (tmp_path / "photos").iterdir()) == [f"{sha}.jpg"]   # nothing else written
    store.close()
