"""Every Dash callback and every HTTP route × every kind of caller, over HTTP and
over the WebSocket: nobody gets what their role does not hold.

A Dash callback is an endpoint anyone can call with a hand-made request, so
the matrix sends hand-made requests, not clicks.  "Refused" is the access
layer's answer (401/403/redirect to login, a closed socket); anything else
means the request reached the callback, whatever the callback then made of
our dummy inputs.  The matrix is printed (``pytest -s``).
"""
from __future__ import annotations

import ast
import json
import secrets
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest
from starlette.testclient import TestClient
from starlette.websockets import WebSocketDisconnect

from dashboard import auth
from dashboard.app import create_app
from indicators.access.roles import ROLES, allowed
from indicators.access.store import AccessStore

ROOT = Path(__file__).resolve().parents[1]
HOST = "testserver"
ORIGIN = f"http://{HOST}"
PASSWORD = "correct horse battery staple 42"


class Clock:
    def __init__(self):
        self.t = datetime.now(timezone.utc)

    def __call__(self):
        return self.t


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    clock = Clock()
    store = AccessStore(tmp_path_factory.mktemp("access") / "access.sqlite", clock=clock)
    tokens: dict[str, str | None] = {"no session": None, "forged token": secrets.token_urlsafe(32)}
    for role in ROLES:
        store.add_user(f"u{role}", role, by="test", password=PASSWORD)
        tokens[role] = store.login(f"u{role}", PASSWORD, client="test").token
    # a session that has run out: made 13 hours ago
    store.add_user("ulate", "admin", by="test", password=PASSWORD)
    clock.t -= timedelta(hours=13)
    tokens["expired admin"] = store.login("ulate", PASSWORD, client="test").token
    clock.t += timedelta(hours=13)
    # a disabled account's session
    store.add_user("ugone", "admin", by="test", password=PASSWORD)
    tokens["disabled admin"] = store.login("ugone", PASSWORD, client="test").token
    store.disable_user("ugone", by="test")
    device = store.issue_device_token("wall-1", by="test")
    tokens["wall device"] = store.device_login(device, client="test")
    app = create_app(access=store, hosts=(HOST,))
    with TestClient(app.server, base_url=ORIGIN):
        pass                 # the server's start-up: Dash adds its page route (the catch-all) here
    return app, store, tokens


def role_of(identity: str) -> str | None:
    """The role an identity really holds (None: none at all)."""
    if identity in ROLES:
        return identity
    return {"wall device": "viewer"}.get(identity)


def holds(identity: str, need: str) -> bool:
    """What the role table grants (an admin manages accounts and does not dispatch)."""
    have = role_of(identity)
    return have is not None and allowed(have, need)


def body_for(key: str, spec: dict) -> dict:
    """A minimal, well-formed callback request for the callback ``key``."""
    def ids(items):
        return [{"id": i["id"], "property": i["property"], "value": None} for i in items]
    outputs = key.lstrip(".").split("...") if key.startswith("..") else [key]
    outs = [{"id": o.rsplit(".", 1)[0], "property": o.rsplit(".", 1)[-1]} for o in outputs if "." in o]
    return {"output": key, "outputs": outs if len(outs) != 1 else outs[0], "inputs": ids(spec.get("inputs", [])),
            "state": ids(spec.get("state", [])),
            "changedPropIds": [f"{i['id']}.{i['property']}" for i in spec.get("inputs", [])][:1]}


def client_for(app, token):
    c = TestClient(app.server, base_url=ORIGIN, raise_server_exceptions=False)
    if token:
        c.cookies.set(auth.COOKIE, token)
    return c


def http_outcome(app, token, key, spec) -> str:
    r = client_for(app, token).post("/_dash-update-component", json=body_for(key, spec), headers={"Origin": ORIGIN},
                                    follow_redirects=False)
    return "refused" if r.status_code in (401, 403, 303) else f"ran {r.status_code}"


def ws_outcome(app, token, key, spec) -> str:
    c = client_for(app, token)
    headers = {"origin": ORIGIN}
    if token:
        headers["cookie"] = f"{auth.COOKIE}={token}"
    try:
        with c.websocket_connect("/_dash-ws-callback", headers=headers) as ws:
            ws.send_json({"type": "callback_request", "requestId": "r1", "rendererId": "t",
                          "payload": body_for(key, spec)})
            msg = ws.receive()
            if msg["type"] == "websocket.close":
                return "refused"
            return "ran"
    except WebSocketDisconnect:
        return "refused"


IDENTITIES = ["no session", "forged token", "expired admin", "disabled admin", "wall device", *ROLES]


def print_matrix(title, rows, cols, cell):
    width = max(len(r) for r in rows) + 2
    print(f"\n{title}\n" + " " * width + " ".join(f"{c[:10]:>10}" for c in cols))
    for r in rows:
        print(f"{r:<{width}}" + " ".join(f"{cell(r, c):>10}" for c in cols))


def test_every_callback_declares_a_role_and_is_registered_through_auth(world):
    app, _, _ = world
    keys = list(app.callback_map)
    assert keys, "no callbacks?"
    missing = [k for k in keys if k not in auth.CALLBACK_ROLES]
    assert missing == [], f"callbacks without a declared role: {missing}"
    for path in (ROOT / "dashboard").glob("*.py"):
        if path.name == "auth.py":
            continue
        tree = ast.parse(path.read_text())
        for node in ast.walk(tree):
            if isinstance(node, ast.Attribute) and node.attr in ("callback", "clientside_callback"):
                base = node.value
                name = getattr(base, "id", None) or getattr(base, "attr", None)
                assert name == "auth", f"{path.name}:{node.lineno}: a callback registered outside auth.callback"


def test_no_callback_answers_a_caller_without_its_role_over_http_or_websocket(world):
    app, _, tokens = world
    results = {}
    bad = []
    for key, spec in app.callback_map.items():
        need = auth.CALLBACK_ROLES[key]
        for ident in IDENTITIES:
            h = http_outcome(app, tokens[ident], key, spec)
            w = ws_outcome(app, tokens[ident], key, spec)
            results[(key, ident)] = (h, w)
            allowed = holds(ident, need)
            for via, got in (("http", h), ("ws", w)):
                if got != "refused" and not allowed:
                    bad.append((key, ident, via, got))
                if got == "refused" and allowed:
                    bad.append((key, ident, via, "refused although allowed"))
    short = {k: k.split(".")[0].strip(".")[:28] + f" [{auth.CALLBACK_ROLES[k]}]" for k in app.callback_map}

    def cell(row, col):
        key = next(k for k, s in short.items() if s == row)
        h, w = results[(key, col)]
        ok = holds(col, auth.CALLBACK_ROLES[key])
        mark = lambda g: ("ok" if g != "refused" else "—") if (g != "refused") == ok else "ERR!"
        return f"{mark(h)}/{mark(w)}"
    print_matrix("callbacks (http/ws): ok = ran, — = refused, ERR! = wrong", list(short.values()), IDENTITIES, cell)
    assert bad == [], bad


def test_every_http_route_has_a_role_and_refuses_callers_without_it(world):
    app, _, tokens = world
    # every GET route the server has, and the pages Dash serves from its catch-all;
    # /logout is checked on its own (it ends the session it is sent with)
    paths = sorted({r.path for r in app.server.routes if "GET" in (getattr(r, "methods", None) or ())}
                   | {"/wall", "/ops", "/config", "/patrol", "/no-such-page"})
    paths.remove("/logout")
    rows, bad = {}, []
    for p in paths:
        concrete = p.replace("{path:path}", "x").replace("{path}", "x")
        for part in ("{", "}"):
            if part in concrete:
                concrete = concrete.split("{")[0] + "x"
        need = auth.route_role(concrete)
        for ident in IDENTITIES:
            r = client_for(app, tokens[ident]).get(concrete, follow_redirects=False)
            refused = r.status_code in (401, 403, 404) or (r.status_code == 303 and "/login" in
                                                            r.headers.get("location", ""))
            rows[(p, ident)] = "—" if refused else str(r.status_code)
            if need is None:
                if not refused:
                    bad.append((p, ident, r.status_code, "route without a declared role answered"))
            elif need in (auth.PUBLIC, "ingest"):
                continue
            elif not holds(ident, need) and not refused:
                bad.append((p, ident, r.status_code))
    print_matrix("GET routes (status, — = refused)", paths, IDENTITIES, lambda r, c: rows[(r, c)])
    assert bad == [], bad


def test_foreign_origins_and_unknown_hosts_are_refused(world):
    app, _, tokens = world
    admin = client_for(app, tokens["admin"])
    key, spec = next(iter(app.callback_map.items()))
    r = admin.post("/_dash-update-component", json=body_for(key, spec), headers={"Origin": "http://evil.example"})
    assert r.status_code == 403
    with pytest.raises(WebSocketDisconnect):
        with admin.websocket_connect("/_dash-ws-callback", headers={
                "origin": "http://evil.example", "cookie": f"{auth.COOKIE}={tokens['admin']}"}) as ws:
            ws.receive_json()
    assert admin.get("/wall", headers={"host": "evil.example"}).status_code == 421
    # the login form: a foreign origin, or no CSRF token, is refused
    anon = client_for(app, None)
    r = anon.post("/login", data={"username": "uadmin", "password": PASSWORD}, headers={"Origin": "http://evil.example"},
                  follow_redirects=False)
    assert r.status_code == 403
    r = anon.post("/login", data={"username": "uadmin", "password": PASSWORD}, headers={"Origin": ORIGIN},
                  follow_redirects=False)
    assert r.status_code in (400, 403) and auth.COOKIE not in r.cookies


def test_logout_ends_the_session_it_is_sent_with(world):
    app, store, _ = world
    token = store.login("uoperator", PASSWORD, client="test").token
    c = client_for(app, token)
    assert c.post("/_dash-update-component", json=body_for(*next(iter(app.callback_map.items()))),
                  headers={"Origin": ORIGIN}).status_code not in (401, 403)
    r = c.get("/logout", follow_redirects=False)
    assert r.status_code == 303 and r.headers["location"].startswith("/login")
    assert store.session(token) is None



def test_listening_beyond_loopback_without_an_ingest_token_refuses_to_start(tmp_path):
    import os
    import subprocess
    import sys
    env = {k: v for k, v in os.environ.items() if k != "SCENIC_TWIN_INGEST_TOKEN"}
    r = subprocess.run([sys.executable, "-m", "dashboard.cli", "run", "--host", "0.0.0.0", "--port", "0",
                        "--var", str(tmp_path / "var")], cwd=ROOT, env=env, capture_output=True, text=True,
                       timeout=120)
    assert r.returncode == 2
    assert "SCENIC_TWIN_INGEST_TOKEN" in r.stderr and "SCENIC_TWIN_HOSTS" in r.stderr
    assert not (tmp_path / "var" / "access.sqlite").exists()      # refused before anything was created
