"""A bounded fuzzer over every door data comes in by (issue 16): the ingest routes of every feed
kind (JSON lines, Arrow, garbage), every adapter's parser, the Dash callback route and its
WebSocket-message shape, the patrol phone's action, the photo upload and `assets import`.
Any 5xx, any exception out of a parser, any hang is a failure.

Bounded for CI by ``SCENIC_TWIN_FUZZ_EXAMPLES`` per target (default 60); `scripts/fuzz` runs it
longer.  The number of cases each target ran is printed (``pytest -s``)."""
from __future__ import annotations

import json
import os
import string
from datetime import datetime, timezone

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from conftest import unlimited

EXAMPLES = int(os.environ.get("SCENIC_TWIN_FUZZ_EXAMPLES", "60"))
FUZZ = settings(max_examples=EXAMPLES, deadline=None, database=None,
                suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
NOW = datetime(2026, 4, 15, 12, 0, tzinfo=timezone.utc)
COUNTS: dict[str, int] = {}

scalars = st.one_of(st.none(), st.booleans(), st.integers(-2**70, 2**70), st.floats(allow_nan=True),
                    st.text(max_size=40), st.sampled_from(["west_plaza", "2026-04-15T12:00:00Z", "1e309", "NaN",
                                                           "<script>alert(1)</script>", "\u0000", "𝔘𝔫𝔦"]))
json_values = st.recursive(scalars, lambda c: st.lists(c, max_size=4) | st.dictionaries(st.text(max_size=12), c,
                                                                                          max_size=5), max_leaves=12)


def _count(name: str) -> None:
    COUNTS[name] = COUNTS.get(name, 0) + 1


@pytest.fixture(scope="module", autouse=True)
def _report():
    yield
    print("\nfuzz cases run: " + ", ".join(f"{k} {v}" for k, v in sorted(COUNTS.items()))
          + f" (total {sum(COUNTS.values())})")


def _record(kind_fields):
    """A record that is mostly right, with any field replaced by anything."""
    return st.fixed_dictionaries({}, optional={f: json_values for f in kind_fields})


# --------------------------------------------------------------------------- ingest over HTTP
@pytest.fixture(scope="module")
def ingest_client(tmp_path_factory, inventory):
    from fastapi import FastAPI
    from starlette.testclient import TestClient

    from indicators.feeds.deadletter import DeadLetterStore
    from indicators.feeds.http import make_ingest_router
    from indicators.feeds.ingest import Ingestor, references_from_inventory
    from indicators.feeds.log import FeedLog
    d = tmp_path_factory.mktemp("fuzz-ingest")
    log, dead = FeedLog(d / "log"), DeadLetterStore(d / "dead.sqlite")
    app = FastAPI()
    app.include_router(make_ingest_router(Ingestor(log, dead, clock=lambda: NOW,
                                                   references=references_from_inventory(inventory)),
                                          max_body=1 << 20))
    with TestClient(app, raise_server_exceptions=False) as c:
        yield c
    log.close()
    dead.close()


def _kinds():
    from indicators.feeds.schemas import SCHEMAS
    return sorted(SCHEMAS)


@FUZZ
@given(data=st.data())
def test_ingest_routes_answer_every_body_with_a_4xx_or_a_receipt(ingest_client, data):
    from indicators.feeds.schemas import SCHEMAS
    kind = data.draw(st.sampled_from(_kinds() + ["nope", "../etc", "crowd%00"]))
    fields = [f.name for f in SCHEMAS.get(kind, SCHEMAS["crowd"])]
    how = data.draw(st.sampled_from(["lines", "bytes", "arrowish"]))
    if how == "lines":
        recs = data.draw(st.lists(st.one_of(_record(fields), json_values), max_size=6))
        body = "\n".join(json.dumps(r, default=str) for r in recs).encode()
        ctype = data.draw(st.sampled_from(["application/x-ndjson", "application/json", "text/plain", ""]))
    elif how == "bytes":
        body, ctype = data.draw(st.binary(max_size=400)), "application/x-ndjson"
    else:
        body = b"\xff\xff\xff\xff" + data.draw(st.binary(max_size=300))
        ctype = "application/vnd.apache.arrow.stream"
    path = data.draw(st.sampled_from([f"/ingest/{kind}", "/ingest"]))
    r = ingest_client.post(path, content=body, headers={"content-type": ctype} if ctype else {})
    _count("ingest")
    assert r.status_code < 500, (path, ctype, body[:200], r.status_code, r.text[:300])
    assert isinstance(r.json(), dict)


# --------------------------------------------------------------------------- adapters
@FUZZ
@given(fmt=st.sampled_from(["gtfs-rt", "cap", "sensorthings", "ngsi-ld"]),
       payload=st.one_of(st.binary(max_size=600),
                         json_values.map(lambda v: json.dumps(v, default=str).encode()),
                         st.text(string.printable, max_size=300).map(str.encode),
                         st.sampled_from([b"<?xml version='1.0'?><alert xmlns='urn:oasis:names:tc:emergency:cap:1.2'>"
                                          b"<msgType>Cancel</msgType><references/></alert>",
                                          b"header { gtfs_realtime_version: '2.0' } entity { id: 'x' }",
                                          b'{"@context": [], "type": "CrowdFlowObserved", "id": 5}',
                                          b'{"value": [{"result": null}]}'])))
def test_every_adapter_returns_rows_rejects_or_notes_never_an_exception(fmt, payload):
    from indicators.feeds.adapters import parse
    out = parse(payload, fmt, source="fuzz")
    _count(f"adapter:{fmt}")
    assert isinstance(out.rejects, list) and isinstance(out.notes, list)
    assert all(r.reason for r in out.rejects)


# --------------------------------------------------------------------------- the app's routes
@pytest.fixture(scope="module")
def app_client(tmp_path_factory):
    from argon2 import PasswordHasher
    from starlette.testclient import TestClient

    from dashboard import auth
    from dashboard.app import create_app
    from indicators.access.store import AccessStore
    d = tmp_path_factory.mktemp("fuzz-app")
    store = AccessStore(d / "access.sqlite", hasher=PasswordHasher(time_cost=1, memory_cost=1024, parallelism=1))
    from indicators.service import Service, ServiceConfig
    service = Service(ServiceConfig(var=d / "var", scenario="normal-weekday", speed=60, simulate=False))
    app = create_app(service=service, access=store, limiter=unlimited())
    cookies = {}
    for role in ("supervisor", "patrol"):
        store.add_user(f"fz-{role}", role, by="test", password="correct horse battery staple 42")
        cookies[role] = f"{auth.COOKIE}={store.login(f'fz-{role}', 'correct horse battery staple 42', client='t').token}"
    base = "http://127.0.0.1:8050"
    with TestClient(app.server, base_url=base, raise_server_exceptions=False) as c:
        yield c, app, cookies, base
    store.close()
    service.alert_store.close()
    service.feed_log.close()
    service.dead.close()


@FUZZ
@given(data=st.data())
def test_the_callback_route_answers_any_body_without_a_5xx(app_client, data):
    client, app, cookies, base = app_client
    keys = sorted(app.callback_map)
    key = data.draw(st.sampled_from(keys))
    spec = app.callback_map[key]
    shape = data.draw(st.sampled_from(["well-formed", "well-formed", "any-json", "bytes"]))
    if shape == "well-formed":
        vals = lambda items: [{"id": i["id"], "property": i["property"],  # noqa: E731
                               "value": data.draw(json_values)} for i in items]
        parts = [dict(zip(("id", "property"), p.rsplit(".", 1)))
                 for p in (key[2:-2].split("...") if key.startswith("..") else [key])]
        ins = vals(spec.get("inputs", []))
        body = json.dumps({"output": key, "outputs": parts if key.startswith("..") else parts[0],
                           "inputs": ins, "state": vals(spec.get("state", [])),
                           "changedPropIds": [f"{i['id']}.{i['property']}" for i in ins[:1]]},
                          default=str).encode()
    elif shape == "any-json":
        body = json.dumps(data.draw(json_values), default=str).encode()
    else:
        body = data.draw(st.binary(max_size=300))
    who = data.draw(st.sampled_from(["supervisor", "patrol", None]))
    headers = {"content-type": "application/json", "origin": base}
    if who:
        headers["cookie"] = cookies[who]
    r = client.post("/_dash-update-component", content=body, headers=headers)
    _count("callback")
    assert r.status_code < 500, (key, shape, body[:300], r.status_code, r.text[:300])


@FUZZ
@given(data=st.data())
def test_websocket_messages_get_an_answer_or_a_close_never_a_server_error(app_client, data):
    """Any message on the callback socket: a callback's answer, a close with a code, or nothing -
    never a server error in the answer, and the server goes on answering."""
    import anyio
    from starlette.websockets import WebSocketDisconnect
    client, app, cookies, base = app_client
    keys = sorted(app.callback_map)
    shape = data.draw(st.sampled_from(["callback", "callback", "any-json", "text", "bytes"]))
    if shape == "callback":
        key = data.draw(st.sampled_from(keys))
        spec = app.callback_map[key]
        vals = lambda items: [{"id": i["id"], "property": i["property"],  # noqa: E731
                               "value": data.draw(json_values)} for i in items]
        msg = json.dumps({"type": "callback_request", "requestId": data.draw(st.text(max_size=8)),
                          "rendererId": data.draw(st.text(max_size=8)),
                          "payload": data.draw(st.sampled_from([
                              {"output": key, "outputs": [], "inputs": vals(spec.get("inputs", [])),
                               "state": vals(spec.get("state", [])), "changedPropIds": []},
                              {"output": key, "inputs": data.draw(json_values)}]))}, default=str)
    elif shape == "any-json":
        msg = json.dumps(data.draw(json_values), default=str)
    elif shape == "text":
        msg = data.draw(st.text(max_size=300))
    else:
        msg = data.draw(st.binary(max_size=300))
    who = data.draw(st.sampled_from(["supervisor", "patrol"]))
    headers = {"origin": base, "cookie": cookies[who]}
    client.cookies.clear()
    try:
        with client.websocket_connect("ws://127.0.0.1:8050/_dash-ws-callback", headers=headers) as ws:
            ws.send_bytes(msg) if isinstance(msg, bytes) else ws.send_text(msg)

            async def get():
                with anyio.fail_after(1.0):
                    return await ws._send_rx.receive()
            try:
                got = ws.portal.call(get)
            except TimeoutError:
                got = None
            if got and got.get("type") == "websocket.send":
                answer = json.loads(got.get("text") or got.get("bytes") or "null")
                for m in answer if isinstance(answer, list) else [answer]:
                    status = (m.get("payload") or {}).get("status") if isinstance(m, dict) and \
                        isinstance(m.get("payload"), dict) else None
                    # Dash's answer to a callback that raised is status "error" (over HTTP: a 500)
                    assert status is None or (str(status).isdigit() and int(status) < 500), (shape, msg[:300], m)
    except WebSocketDisconnect:
        pass
    _count("websocket")
    assert client.get("/healthz").status_code == 200


@FUZZ
@given(action=json_values, body=st.binary(max_size=2000))
def test_the_patrol_action_and_the_photo_upload_refuse_junk_without_a_5xx(app_client, action, body):
    from dashboard.auth import Identity
    from dashboard.patrol_page import patrol_action
    client, app, cookies, base = app_client
    out = patrol_action(app_client_service(app), Identity("patrol-07", "patrol"), action, "zh")
    assert isinstance(out, dict) and out.get("message")
    r = client.post("/patrol/photo", content=body, headers={"cookie": cookies["patrol"], "origin": base})
    _count("patrol")
    assert r.status_code in (200, 400, 413, 415), (r.status_code, r.text[:200])


# --------------------------------------------------------------------------- assets import
@FUZZ
@given(features=st.lists(st.fixed_dictionaries(
    {"type": st.just("Feature"),
     "geometry": st.one_of(json_values, st.fixed_dictionaries({
         "type": st.sampled_from(["Point", "Polygon", "LineString", "Nope"]),
         "coordinates": st.one_of(json_values, st.lists(st.floats(-200, 200), min_size=2, max_size=3))})),
     "properties": st.one_of(json_values, st.fixed_dictionaries({}, optional={
         k: json_values for k in ("asset_id", "type", "name_zh", "name_en", "zone_id", "department",
                                  "base_elevation_m", "height_m", "attrs")}))}), max_size=4))
def test_assets_import_refuses_or_merges_any_file_and_never_half_writes(tmp_path_factory, inventory, features):
    import hashlib

    from twin_assets import inventory as inv
    from twin_assets.importer import ImportRefused, import_file
    d = tmp_path_factory.mktemp("fuzz-import")
    target = d / "inventory.parquet"
    inv.write(inventory, target)
    before = hashlib.sha256(target.read_bytes()).hexdigest()
    f = d / "survey.geojson"
    f.write_text(json.dumps({"type": "FeatureCollection", "features": features}, default=str))
    _count("import")
    try:
        import_file(f, out=target)
    except ImportRefused as e:
        assert e.problems and hashlib.sha256(target.read_bytes()).hexdigest() == before


def app_client_service(app):
    """The service behind the fuzzed app (its patrol action is called directly)."""
    return app._scenic_service
