"""Who may call what: every Dash callback and every HTTP route, as every kind of caller.

A Dash callback is an HTTP (and WebSocket) endpoint that anyone can call with a
hand-made request, so this test sends hand-made requests, never clicks:

* every callback of ``app.callback_map``, over ``POST /_dash-update-component``
  and as a ``callback_request`` message on the Dash WebSocket, as each caller
  (no session, a forged token, an expired / logged-out / disabled account's
  session, a wall device token, and one account per role);
* every GET route of the FastAPI app, as each caller;
* cross-origin requests, a foreign ``Host``, the login form's CSRF token, and
  ``scenic-twin run --host 0.0.0.0`` without an ingest token.

"Refused" is the access layer's answer (HTTP 401/403, a redirect to the
login page, 404 for an undeclared route, a closed socket).  Anything else
means the request got past it -- whatever the callback then made of our
dummy inputs (a 500 or "prevent update" still means it ran).

The expectations come from two places: the role each callback and route
*declares* (``auth.CALLBACK_ROLES``, ``auth.route_role``) is what the
middleware must enforce, and the declared roles must equal the ones pinned
in this file (so moving ``_act`` to "viewer" by mistake fails here too).
The matrices are printed (``pytest -s``).
"""
from __future__ import annotations

import ast
import json
import os
import re
import secrets
import socket
import subprocess
import sys
from datetime import datetime, timedelta, timezone
from pathlib import Path

import anyio
import pytest
from argon2 import PasswordHasher
from starlette.routing import WebSocketRoute
from starlette.testclient import TestClient
from starlette.websockets import WebSocketDisconnect

from conftest import unlimited

from dashboard import auth
from dashboard.app import create_app
from dashboard.live import SnapshotHub
from indicators.access.roles import ROLES, allowed
from indicators.access.store import AccessStore
from indicators.snapshot import EMPTY

ROOT = Path(__file__).resolve().parents[1]
HOST = "127.0.0.1:8050"                     # one of create_app's default host names
BASE = f"http://{HOST}"
WS_URL = f"ws://{HOST}/_dash-ws-callback"
EVIL = "http://evil.example"
PASSWORD = "correct horse battery staple 42"
WS_TIMEOUT = 15.0

# --------------------------------------------------------------------------- the pinned spec
# The role each callback must declare: server callbacks by function name, clientside ones by
# output.  A new callback fails test_declared_roles_are_the_pinned_ones until it is added here.
PINNED_CALLBACKS = {
    "_route": "viewer",              # page + who; /ops content is gated inside by the caller's role
    "_push": "viewer",               # the live push; the ops part only for operators (inside)
    "_ping": "viewer",
    "_resync": "viewer",             # the page lost a push: its next push carries every key
    "_show_details": "viewer",
    "_act": "operator",              # ack / assign / silence / cases / plans
    "_patrol_act": "patrol",         # a phone's report, case step (only the caller's cases) or patrol progress
    "clientside:patrol-acked.data": "patrol",
    # the threshold page (/config): read the rules, backtest, save, versions, rollback
    "_cfg_texts": "supervisor", "_cfg_list": "supervisor", "_cfg_pick": "supervisor", "_cfg_load": "supervisor",
    "_cfg_form": "supervisor", "_cfg_profile_boxes": "supervisor", "_cfg_submit": "supervisor", "_cfg_versions": "supervisor",
    "_cfg_rollback": "supervisor", "clientside:cfg-scale.data": "supervisor",
    "clientside:lang.value": "viewer",
    "clientside:lang-store.data": "viewer",
    "clientside:twin-mounted.data": "viewer",
    "clientside:live-applied.data": "viewer",
}
# The role each concrete GET path must have ("public" = no session needed, None = must not exist).
PINNED_ROUTES = {
    "/": "public", "/login": "public", "/logout": "public", "/healthz": "public", "/readyz": "public",
    "/wall": "viewer", "/ops": "operator", "/config": "supervisor", "/password": "viewer",
    "/patrol": "patrol", "/patrol/photo": "patrol", "/photos/x": "viewer",
    "/twin/scene.json": "viewer", "/twin/furniture.bin": "viewer", "/twin/tower.bin": "viewer",
    "/_dash-layout": "public", "/_dash-dependencies": "public", "/_reload-hash": "public",
    "/_favicon.ico": "public", "/assets/twin.css": "public",
    "/_dash-component-suites/dash/dash-renderer/build/dash_renderer.min.js": "public",
    # FastAPI's own pages and anything else: declared nowhere, refused for everyone
    "/docs": None, "/redoc": None, "/openapi.json": None, "/docs/oauth2-redirect": None,
    "/no-such-page": None, "/_dash-layout/": None, "/assets": None,
}

# --------------------------------------------------------------------------- callers
ACCOUNTS = ["viewer", "patrol", "operator", "supervisor", "admin"]
IDENTITIES = ["anonymous", "forged", "expired", "logged-out", "disabled", "device", *ACCOUNTS]
HOLDS = {"device": "viewer", **{r: r for r in ACCOUNTS}}
"""The role each caller really has; the others have none (the dead sessions were supervisors')."""
assert set(ACCOUNTS) == set(ROLES)


def may(identity: str, need: str) -> bool:
    if need == auth.PUBLIC:
        return True
    have = HOLDS.get(identity)
    return have is not None and allowed(have, need)


class Clock:
    def __init__(self):
        self.t = datetime.now(timezone.utc)

    def __call__(self):
        return self.t


def mint(store: AccessStore, clock: Clock, tag: str) -> dict[str, str | None]:
    """A fresh cookie value per caller (``tag`` keeps user names apart between sets)."""
    tokens: dict[str, str | None] = {"anonymous": None, "forged": secrets.token_urlsafe(32)}
    for role in ACCOUNTS:
        store.add_user(f"{role}.{tag}", role, by="test", password=PASSWORD)
        tokens[role] = store.login(f"{role}.{tag}", PASSWORD, client="test").token
    # the dead sessions belong to supervisors, who may do the most: if one slipped through, it would show
    for name in ("expired", "logged-out", "disabled"):
        store.add_user(f"{name}.{tag}", "supervisor", by="test", password=PASSWORD)
    clock.t -= timedelta(hours=13)                      # lifetime is 12 h
    tokens["expired"] = store.login(f"expired.{tag}", PASSWORD, client="test").token
    clock.t += timedelta(hours=13)
    tokens["logged-out"] = store.login(f"logged-out.{tag}", PASSWORD, client="test").token
    store.logout(tokens["logged-out"])
    tokens["disabled"] = store.login(f"disabled.{tag}", PASSWORD, client="test").token
    store.disable_user(f"disabled.{tag}", by="test")
    tokens["device"] = store.issue_device_token(f"wall-{tag}", by="test")
    for name in ("expired", "logged-out", "disabled", "forged"):
        assert store.session(tokens[name]) is None, name
    for name in ("device", *ACCOUNTS):
        assert store.session(tokens[name]) is not None, name
    return tokens


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    clock = Clock()
    fast = PasswordHasher(time_cost=1, memory_cost=1024, parallelism=1)   # the hashing is not under test
    store = AccessStore(tmp_path_factory.mktemp("access") / "access.sqlite", clock=clock, hasher=fast)
    hub = SnapshotHub()
    app = create_app(hub=hub, service=None, access=store, limiter=unlimited())
    with TestClient(app.server, base_url=BASE, raise_server_exceptions=False) as client:   # runs the lifespan
        yield {"app": app, "store": store, "clock": clock, "hub": hub, "client": client,
               "tokens": mint(store, clock, "a")}
    store.close()


# --------------------------------------------------------------------------- requests
def _headers(token, origin=BASE, **extra):
    h = {"origin": origin, **extra}
    if token:
        h["cookie"] = f"{auth.COOKIE}={token}"
    return {k: v for k, v in h.items() if v is not None}


def body_for(key: str, spec: dict) -> dict:
    """A minimal, well-formed callback request as dash-renderer sends it (values None)."""
    vals = lambda items: [{"id": i["id"], "property": i["property"], "value": None} for i in items]  # noqa: E731
    if spec.get("no_output"):
        outputs = []
    else:
        parts = key[2:-2].split("...") if key.startswith("..") else [key]
        outputs = [{"id": p.rsplit(".", 1)[0], "property": p.rsplit(".", 1)[1]} for p in parts]
        if not key.startswith(".."):
            outputs = outputs[0]
    changed = [f"{i['id']}.{i['property']}" for i in spec.get("inputs", [])][:1]
    return {"output": key, "outputs": outputs, "inputs": vals(spec.get("inputs", [])),
            "state": vals(spec.get("state", [])), "changedPropIds": changed, "parsedChangedPropsIds": changed}


def http_call(client, token, body, *, origin=BASE, host=None) -> int:
    client.cookies.clear()
    r = client.post("/_dash-update-component", content=json.dumps(body),
                    headers=_headers(token, origin, host=host, **{"content-type": "application/json"}),
                    follow_redirects=False)
    return r.status_code


def _receive(ws, timeout=WS_TIMEOUT):
    """The next message the server sent, or TimeoutError (TestClient's receive() waits forever)."""
    async def get():
        with anyio.fail_after(timeout):
            return await ws._send_rx.receive()
    return ws.portal.call(get)


def ws_call(client, token, body, *, origin=BASE, host=None) -> str:
    """'refused <code>' (handshake refused or socket closed) or 'ran <what came back>'."""
    client.cookies.clear()
    url = WS_URL if host is None else f"ws://{host}/_dash-ws-callback"
    try:
        with client.websocket_connect(url, headers=_headers(token, origin)) as ws:
            ws.send_json({"type": "callback_request", "requestId": secrets.token_hex(4), "rendererId": "r1",
                          "payload": body})
            try:
                msg = _receive(ws)
            except TimeoutError:
                return "silent"
            if msg["type"] == "websocket.close":
                return f"refused {msg.get('code')}"
            got = json.loads(msg.get("text") or msg.get("bytes") or "null")
            first = got[0] if isinstance(got, list) and got else got
            kind = first.get("type") if isinstance(first, dict) else type(first).__name__
            status = ((first.get("payload") or {}).get("status") if isinstance(first, dict)
                      and isinstance(first.get("payload"), dict) else None)
            return f"ran {kind}" + (f":{status}" if status else "")
    except WebSocketDisconnect as e:
        return f"refused {e.code}"


def refused_http(status: int) -> bool:
    return status in (401, 403)


def refused_ws(outcome: str) -> bool:
    """Refused for who the caller is (4001 session ended, 4003 forbidden; a handshake refused the
    same way) - not a close for a malformed request (1007), which an allowed caller also gets."""
    return outcome in ("refused 4001", "refused 4003")


def label(key: str, spec: dict) -> str:
    fn = spec.get("callback")
    return getattr(fn, "__name__", None) or f"clientside:{key}"


def print_matrix(title: str, rows: list[str], cols: list[str], cell) -> None:
    w = max(len(r) for r in rows) + 1
    cw = max(max(len(c) for c in cols), 4) + 1
    lines = [f"\n{title}", " " * w + "".join(f"{c:>{cw}}" for c in cols)]
    for r in rows:
        lines.append(f"{r:<{w}}" + "".join(f"{cell(r, c):>{cw}}" for c in cols))
    print("\n".join(lines))


# --------------------------------------------------------------------------- 2. declarations
def test_every_callback_declares_a_role(world):
    app = world["app"]
    assert app.callback_map, "no callbacks?"
    missing = [k for k in app.callback_map if k not in auth.CALLBACK_ROLES]
    assert missing == [], f"callbacks without a declared role (register them with auth.callback): {missing}"


def test_declared_roles_are_the_pinned_ones(world):
    app = world["app"]
    declared = {label(k, s): auth.CALLBACK_ROLES.get(k) for k, s in app.callback_map.items()}
    assert declared == PINNED_CALLBACKS, (
        "a callback's role changed, or a callback was added/removed: check the role, then update "
        "PINNED_CALLBACKS")
    for path, role in PINNED_ROUTES.items():
        assert auth.route_role(path) == role, f"{path}: declared {auth.route_role(path)!r}, pinned {role!r}"


_DASH_REGISTRATION = re.compile(r"(?<![\w.])(?:\w+\.)?(?:clientside_)?callback\s*\(|@\s*callback\b")


def test_callbacks_are_registered_only_through_auth():
    """No ``app.callback(`` / ``@callback(`` / ``dash.callback`` / ``clientside_callback`` in dashboard/
    outside auth.py: a callback registered around auth.callback would have no role."""
    offenders = []
    for path in sorted((ROOT / "dashboard").glob("*.py")):
        if path.name == "auth.py":
            continue
        src = path.read_text(encoding="utf-8")
        tree = ast.parse(src)
        for node in ast.walk(tree):
            if isinstance(node, ast.Attribute) and node.attr in ("callback", "clientside_callback") \
                    and not (isinstance(node.value, ast.Name) and node.value.id == "auth"):
                offenders.append(f"{path.name}:{node.lineno}: {ast.unparse(node)}")
            if isinstance(node, ast.ImportFrom) and (node.module or "").split(".")[0] == "dash":
                for a in node.names:
                    if a.name in ("callback", "clientside_callback"):
                        offenders.append(f"{path.name}:{node.lineno}: from {node.module} import {a.name}")
        for n, line in enumerate(src.splitlines(), 1):        # the same as text, for what AST misses
            code = line.split("#", 1)[0]
            for m in _DASH_REGISTRATION.finditer(code):
                if not m.group(0).startswith("auth."):
                    offenders.append(f"{path.name}:{n}: {line.strip()}")
    assert offenders == [], "callbacks registered outside dashboard.auth:\n" + "\n".join(sorted(set(offenders)))


def test_the_source_scan_catches_the_usual_spellings():
    for bad in ("app.callback(Output('a', 'b'))", "@callback(Output('a', 'b'))", "dash.callback(x)",
                "app.clientside_callback('f', Output('a', 'b'))", "@app.callback(Output('a','b'))"):
        assert _DASH_REGISTRATION.search(bad), bad
    for good in ("auth.callback(app, 'viewer', Output('a', 'b'))", "auth.clientside_role(app, 'viewer', f)"):
        assert not [m for m in _DASH_REGISTRATION.finditer(good) if not m.group(0).startswith("auth.")], good


# --------------------------------------------------------------------------- 1. every callback
def test_every_callback_as_every_caller_over_http_and_websocket(world):
    app, client, tokens = world["app"], world["client"], world["tokens"]
    cells, wrong = {}, []
    for key, spec in app.callback_map.items():
        need = auth.CALLBACK_ROLES.get(key)
        assert need is not None, key
        row = f"{label(key, spec)} [{need}]"
        body = body_for(key, spec)
        for ident in IDENTITIES:
            h = http_call(client, tokens[ident], body)
            w = ws_call(client, tokens[ident], body)
            ok = may(ident, need)
            bad = []
            if not ok and not refused_http(h):
                bad.append(f"http {h}: unauthorised success")
            if ok and refused_http(h):
                bad.append(f"http {h}: refused although allowed")
            if not ok and not refused_ws(w):
                bad.append(f"ws {w}: unauthorised success")
            if ok and (refused_ws(w) or w == "silent"):
                bad.append(f"ws {w}: refused although allowed")
            wrong += [f"{row} as {ident}: {b}" for b in bad]
            cells[(row, ident)] = "ERR!" if bad else ("ok" if ok else "—")
    rows = sorted({r for r, _ in cells})
    print_matrix("CALLBACKS (HTTP and WebSocket)   ok = ran, — = refused, ERR! = wrong",
                 rows, IDENTITIES, lambda r, c: cells[(r, c)])
    print("\n".join(wrong) or "no discrepancies")
    assert wrong == []


def test_a_callback_nobody_declared_is_refused_to_everyone(world):
    """A request naming an output no callback has (or a callback registered around auth.callback)."""
    client, tokens = world["client"], world["tokens"]
    body = {"output": "nothing.here", "outputs": {"id": "nothing", "property": "here"}, "inputs": [],
            "state": [], "changedPropIds": []}
    for ident in ("supervisor", "admin"):
        assert refused_http(http_call(client, tokens[ident], body)), ident
        assert refused_ws(ws_call(client, tokens[ident], body)), ident


def test_an_operator_action_is_refused_to_a_viewer_even_with_an_allowed_output_first(world):
    """The WebSocket check looks at every message, not just the first one of a socket."""
    app, client, tokens = world["app"], world["client"], world["tokens"]
    ping = next(k for k, s in app.callback_map.items() if label(k, s) == "_ping")
    act = next(k for k, s in app.callback_map.items() if label(k, s) == "_act")
    client.cookies.clear()
    with client.websocket_connect(WS_URL, headers=_headers(tokens["viewer"])) as ws:
        ws.send_json({"type": "callback_request", "requestId": "1", "rendererId": "r",
                      "payload": body_for(ping, app.callback_map[ping])})
        first = _receive(ws)
        assert first["type"] == "websocket.send", first
        ws.send_json({"type": "callback_request", "requestId": "2", "rendererId": "r",
                      "payload": body_for(act, app.callback_map[act])})
        second = _receive(ws)
        assert second["type"] == "websocket.close" and second["code"] == 4003, second


@pytest.mark.parametrize("end", ["logout", "disable", "set_role", "idle", "lifetime", "revoke_device"])
def test_an_open_socket_is_closed_once_its_session_ends(world, end):
    """The role is bound when the socket opens; every later callback request re-checks the session."""
    app, store, clock, client = world["app"], world["store"], world["clock"], world["client"]
    name = f"sock.{end.replace('_', '-')}"
    if end == "revoke_device":
        token = store.issue_device_token(name.replace(".", "-"), by="test")
    else:
        store.add_user(name, "operator", by="test", password=PASSWORD)
        token = store.login(name, PASSWORD, client="test").token
    ping = next(k for k, s in app.callback_map.items() if label(k, s) == "_ping")
    msg = lambda i: {"type": "callback_request", "requestId": str(i), "rendererId": "r",  # noqa: E731
                     "payload": body_for(ping, app.callback_map[ping])}
    client.cookies.clear()
    shift = {"idle": timedelta(minutes=31), "lifetime": timedelta(hours=13)}.get(end, timedelta(0))
    try:
        with client.websocket_connect(WS_URL, headers=_headers(token)) as ws:
            ws.send_json(msg(1))
            assert _receive(ws)["type"] == "websocket.send"
            if end == "logout":
                store.logout(token)
            elif end == "disable":
                store.disable_user(name, by="test")
            elif end == "set_role":
                store.set_role(name, "viewer", by="test")
            elif end == "revoke_device":
                store.revoke_device_token(name.replace(".", "-"), by="test")
            clock.t += shift
            ws.send_json(msg(2))
            got = _receive(ws)
            assert got["type"] == "websocket.close" and got.get("code") == 4001, got
    finally:
        clock.t -= shift


# --------------------------------------------------------------------------- 3. every GET route
def _get_paths(app) -> list[str]:
    """Concrete paths for every GET route (and mount) of the server, path parameters filled in."""
    out = set()
    for r in app.server.routes:
        path = getattr(r, "path", None)
        methods = getattr(r, "methods", None)
        if path is None or isinstance(r, WebSocketRoute) or (methods is not None and "GET" not in methods):
            continue                                      # the socket is covered by the callback matrix
        if path == "/{path:path}" or path.endswith("{path:path}") and path.count("{") == 1:
            out |= {"/wall", "/ops", "/config", "/patrol", "/password", "/no-such-page"}  # Dash's catch-all page route
        elif path.startswith("/_dash-component-suites/"):
            out.add("/_dash-component-suites/dash/dash-renderer/build/dash_renderer.min.js")
        elif "{" in path:
            out.add(re.sub(r"\{[^}]+\}", "x", path))
        elif path == "/assets" and methods is None:                          # the static mount
            out |= {"/assets/twin.css", "/assets"}
        else:
            out.add(path)
    return sorted(out)


def test_every_get_route_as_every_caller(world):
    app, store, clock, client = world["app"], world["store"], world["clock"], world["client"]
    tokens = mint(store, clock, "r")                    # fresh sessions: /logout ends them
    paths = _get_paths(app)
    assert {"/wall", "/ops", "/healthz", "/twin/scene.json", "/docs"} <= set(paths), paths
    unpinned = [p for p in paths if p not in PINNED_ROUTES]
    assert unpinned == [], f"GET routes with no pinned role here (add them to PINNED_ROUTES): {unpinned}"
    order = [p for p in paths if p != "/logout"] + ["/logout"] * ("/logout" in paths)
    cells, wrong = {}, []
    for path in order:
        need = auth.route_role(path)
        for ident in IDENTITIES:
            client.cookies.clear()
            r = client.get(path, headers=_headers(tokens[ident], origin=None), follow_redirects=False)
            to_login = r.status_code in (302, 303, 307) and r.headers.get("location", "").startswith("/login")
            refused = r.status_code in (401, 403, 404) or to_login
            if need is None:                                   # deny by default
                if r.status_code != 404:
                    wrong.append(f"{path} as {ident}: {r.status_code}, but the route declares no role")
            elif need == auth.PUBLIC:                           # its own answer, whatever it is (/logout: 303)
                if r.status_code in (401, 403, 404):
                    wrong.append(f"{path} as {ident}: {r.status_code}, but it is public")
            elif may(ident, need) and refused:
                wrong.append(f"{path} as {ident}: {r.status_code}, refused although allowed ({need})")
            elif not may(ident, need) and not refused:
                wrong.append(f"{path} as {ident}: {r.status_code}, unauthorised success (needs {need})")
            cells[(path, ident)] = "—" if refused and need != auth.PUBLIC else str(r.status_code)
            if any(w.startswith(f"{path} as {ident}:") for w in wrong):
                cells[(path, ident)] = "ERR!"
    rows = [f"{p} [{auth.route_role(p) or 'none'}]" for p in paths]
    print_matrix("GET ROUTES   status = answered, — = refused (401/403/404/to login), ERR! = wrong",
                 rows, IDENTITIES, lambda r, c: cells[(r.rsplit(" [", 1)[0], c)])
    print("\n".join(wrong) or "no discrepancies")
    assert wrong == []


def test_a_page_the_role_may_not_open_says_so_in_words_with_the_pages_it_may(world):
    """A person who follows a link to a page of another role sees a page, not a JSON error: what
    happened in both languages and links to the pages the role may open (and none it may not)."""
    client, tokens = world["client"], world["tokens"]
    for role, page, may_open, may_not in (("supervisor", "/patrol", ["/wall", "/ops", "/config"], ["/patrol"]),
                                          ("patrol", "/ops", ["/wall", "/patrol"], ["/ops", "/config"]),
                                          ("viewer", "/config", ["/wall"], ["/ops", "/config", "/patrol"])):
        client.cookies.clear()
        r = client.get(page, headers=_headers(tokens[role], origin=None), follow_redirects=False)
        assert r.status_code == 403 and r.headers["content-type"].startswith("text/html"), (role, page, r.status_code)
        links = re.findall(r'href="(/[a-z]*)"', r.text)
        assert [p for p in links if p in ("/wall", "/ops", "/config", "/patrol")] == may_open, (role, links)
        assert not set(may_not) & set(links) and "/logout" in links
        assert "无权打开此页面" in r.text and "may not open this page" in r.text and '"error"' not in r.text
    # a request of the page's own code (here a photo upload) still gets the short JSON answer it reads
    client.cookies.clear()
    r = client.post("/patrol/photo", content=b"x", headers=_headers(tokens["supervisor"]))
    assert r.status_code == 403 and "may not open" in r.json()["error"]


def raw_request(client, app, method: str, path: str, headers: dict[str, str], body: bytes = b"",
                with_body: bool = False):
    """One request straight into the ASGI app, the path exactly as given (httpx would tidy it)."""
    scope = {"type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1", "method": method, "scheme": "http",
             "path": path, "raw_path": path.encode(), "query_string": b"", "root_path": "",
             "headers": [(k.lower().encode(), v.encode()) for k, v in {"host": HOST, **headers}.items()],
             "client": ("127.0.0.1", 50000), "server": ("127.0.0.1", 8050)}
    status, content = [], []

    async def go():
        chunks = [{"type": "http.request", "body": body, "more_body": False}]

        async def receive():
            return chunks.pop(0) if chunks else {"type": "http.disconnect"}

        async def send(msg):
            if msg["type"] == "http.response.start":
                status.append(msg["status"])
            elif msg["type"] == "http.response.body":
                content.append(msg.get("body", b""))
        await app.server(scope, receive, send)
    client.portal.call(go)
    return (status[0], b"".join(content)) if with_body else status[0]


def test_undeclared_paths_of_any_method_are_refused(world):
    app, client, tokens = world["app"], world["client"], world["tokens"]
    cookie = {"cookie": f"{auth.COOKIE}={tokens['supervisor']}", "origin": BASE}
    assert raw_request(client, app, "GET", "/_dash-layout", cookie) == 200                 # the control
    for method, path in (("POST", "/docs"), ("GET", "/openapi.json"), ("POST", "/_dash-update-component/"),
                         ("GET", "//_dash-layout"), ("GET", "/twin"), ("PUT", "/no-such-thing"),
                         ("GET", "/./ops"), ("GET", "/assets/../ops")):
        assert raw_request(client, app, method, path, cookie) == 404, (method, path)


def test_dot_segments_under_a_public_prefix_reach_no_protected_content(world):
    """The middleware judges the path as sent and Starlette does not remove dot segments, so
    /_dash-component-suites/../X is "public" and falls to Dash's catch-all page route: that must
    give at most the page shell (public anyway), never what X protects."""
    app, client, tokens = world["app"], world["client"], world["tokens"]
    sup = {"cookie": f"{auth.COOKIE}={tokens['supervisor']}", "origin": BASE}
    for target in ("/twin/scene.json", "/twin/furniture.bin", "/twin/tower.bin"):
        status, secret = raw_request(client, app, "GET", target, sup, with_body=True)
        assert status == 200 and len(secret) > 100, target
        for prefix in ("/_dash-component-suites/", "/assets/", "/_dash-component-suites/dash/"):
            for dots in (1, prefix.count("/") - 1):
                path = prefix + "../" * dots + target.lstrip("/")
                status, got = raw_request(client, app, "GET", path, {"origin": BASE}, with_body=True)
                assert secret not in got, f"{path} gave {target} to an anonymous caller ({status})"
    act = next(k for k, s in app.callback_map.items() if label(k, s) == "_act")
    body = json.dumps(body_for(act, app.callback_map[act])).encode()
    for path in ("/assets/../_dash-update-component", "/_dash-component-suites/../_dash-update-component"):
        status = raw_request(client, app, "POST", path, {"origin": BASE, "content-type": "application/json"}, body)
        assert status in (404, 405), (path, status)


def test_the_callback_body_is_judged_as_dash_reads_it(world):
    """Duplicate keys, a huge body, a body that is not JSON: refused, or judged by the output Dash runs."""
    app, client, tokens = world["app"], world["client"], world["tokens"]
    ping = next(k for k, s in app.callback_map.items() if label(k, s) == "_ping")
    act = next(k for k, s in app.callback_map.items() if label(k, s) == "_act")
    h = {"cookie": f"{auth.COOKIE}={tokens['viewer']}", "origin": BASE, "content-type": "application/json"}
    body = json.dumps(body_for(act, app.callback_map[act]))
    twice = '{"output": %s, %s' % (json.dumps(ping), body[1:])          # ping first, then the action (last wins)
    assert json.loads(twice)["output"] == act
    assert raw_request(client, app, "POST", "/_dash-update-component", h, twice.encode()) == 403
    assert raw_request(client, app, "POST", "/_dash-update-component", h, b"{not json") == 400
    big = json.dumps({**body_for(ping, app.callback_map[ping]), "pad": "x" * (auth.MAX_CALLBACK_BODY + 1)})
    assert raw_request(client, app, "POST", "/_dash-update-component", h, big.encode()) == 413


def test_the_callback_wrapper_checks_the_role_again():
    """Defence in depth: a callback registered with auth.callback refuses a caller without its role
    even if the middleware let the request through."""
    import dash
    from dash import Input, Output
    from dash.exceptions import PreventUpdate
    mini = dash.Dash(__name__)
    fn = auth.callback(mini, "operator", Output("matrix-test-out", "children"), Input("matrix-test-in", "value"))(
        lambda v: f"ran {v}")
    assert auth.CALLBACK_ROLES.pop("matrix-test-out.children") == "operator"
    for who, runs in ((None, False), (auth.Identity("v", "viewer"), False), (auth.Identity("a", "admin"), False),
                      (auth.Identity("o", "operator"), True), (auth.Identity("s", "supervisor"), True)):
        t = auth.CURRENT.set(who)
        try:
            if runs:
                assert fn(1) == "ran 1"
            else:
                with pytest.raises(PreventUpdate):
                    fn(1)
        finally:
            auth.CURRENT.reset(t)


# --------------------------------------------------------------------------- 4. cross-origin
def test_foreign_origins_are_refused(world):
    app, client, tokens = world["app"], world["client"], world["tokens"]
    key = next(k for k, s in app.callback_map.items() if label(k, s) == "_ping")
    body = body_for(key, app.callback_map[key])
    admin = tokens["admin"]
    assert not refused_http(http_call(client, admin, body))                      # the control
    for origin in (EVIL, "null", "http://127.0.0.1:9999", "https://127.0.0.1:8050.evil.example"):
        assert http_call(client, admin, body, origin=origin) == 403, origin
        assert ws_call(client, admin, body, origin=origin).startswith("refused 4003"), origin
    assert ws_call(client, admin, body, origin=None).startswith("refused"), "a socket without Origin"


def _login_form(client) -> str:
    client.cookies.clear()
    r = client.get("/login")
    assert r.status_code == 200
    return re.search(r'name="csrf" value="([^"]+)"', r.text).group(1)


def test_the_login_form_needs_its_own_origin_and_the_csrf_token(world):
    client, store = world["client"], world["store"]
    store.add_user("login.test", "viewer", by="test", password=PASSWORD)
    form = {"username": "login.test", "password": PASSWORD, "next": "/wall"}

    def post(fields, csrf_cookie, origin=BASE):
        client.cookies.clear()
        cookie = f"{auth.CSRF_COOKIE}={csrf_cookie}" if csrf_cookie else None
        r = client.post("/login", data=fields, headers=_headers(None, origin, cookie=cookie), follow_redirects=False)
        return r.status_code, auth.COOKIE in r.headers.get("set-cookie", "")

    csrf = _login_form(client)
    assert post({**form, "csrf": csrf}, csrf, origin=EVIL) == (403, False)         # foreign origin
    csrf = _login_form(client)
    assert post(form, csrf) == (403, False)                                        # no csrf field
    assert post({**form, "csrf": csrf}, None) == (403, False)                      # no csrf cookie
    assert post({**form, "csrf": csrf}, _login_form(client)) == (403, False)       # cookie of another form
    assert post({**form, "csrf": ("A" if csrf[0] != "A" else "B") + csrf[1:]}, csrf) == (403, False)  # wrong
    csrf = _login_form(client)
    assert post({**form, "csrf": csrf}, csrf) == (303, True)                       # the control


def test_logout_ends_the_session_it_is_sent_with(world):
    app, store, client = world["app"], world["store"], world["client"]
    store.add_user("logout.test", "operator", by="test", password=PASSWORD)
    token = store.login("logout.test", PASSWORD, client="test").token
    act = next(k for k, s in app.callback_map.items() if label(k, s) == "_act")
    body = body_for(act, app.callback_map[act])
    assert not refused_http(http_call(client, token, body))                       # the control
    client.cookies.clear()
    r = client.get("/logout", headers=_headers(token, origin=None), follow_redirects=False)
    assert r.status_code == 303 and r.headers["location"].startswith("/login")
    assert f'{auth.COOKIE}=""' in r.headers.get("set-cookie", "")                   # the browser forgets it
    assert store.session(token) is None
    assert http_call(client, token, body) == 401
    assert ws_call(client, token, body).startswith("refused")


# --------------------------------------------------------------------------- 5. Host
def test_a_host_name_not_allowed_gets_421(world):
    app, client, tokens = world["app"], world["client"], world["tokens"]
    client.cookies.clear()
    assert client.get("/healthz").status_code == 200                              # the control
    for host in ("evil.example", "evil.example:8050", "127.0.0.1.evil.example", "", "localhost@evil.example"):
        r = client.get("/healthz", headers={"host": host})
        assert r.status_code == 421, (host, r.status_code)
    key = next(k for k, s in app.callback_map.items() if label(k, s) == "_act")
    r = client.post("/_dash-update-component", json=body_for(key, app.callback_map[key]),
                    headers=_headers(tokens["supervisor"], origin="http://evil.example", host="evil.example"))
    assert r.status_code == 421
    assert ws_call(client, tokens["supervisor"], body_for(key, app.callback_map[key]), origin="http://evil.example",
                   host="evil.example").startswith("refused")


# --------------------------------------------------------------------------- known gaps (see the report)
def test_the_live_push_stops_when_the_session_ends(world):
    """A disabled, logged-out or expired caller's open socket is closed at the next push."""
    app, store, clock, client, hub = world["app"], world["store"], world["clock"], world["client"], world["hub"]
    store.add_user("push.test", "operator", by="test", password=PASSWORD)
    token = store.login("push.test", PASSWORD, client="test").token
    key = next(k for k, s in app.callback_map.items() if label(k, s) == "_push")
    client.cookies.clear()
    with client.websocket_connect(WS_URL, headers=_headers(token)) as ws:
        ws.send_json({"type": "callback_request", "requestId": "p", "rendererId": "r",
                      "payload": body_for(key, app.callback_map[key])})
        assert _receive(ws)["type"] == "websocket.send"                           # the first beat
        store.disable_user("push.test", by="test")
        assert store.session(token) is None
        deadline = datetime.now(timezone.utc) + timedelta(seconds=6)      # room for a re-check every few s
        while True:
            hub.publish(EMPTY)                                             # something new to push
            got = _receive(ws, timeout=3)
            if got["type"] == "websocket.close":
                assert got.get("code") == 4001, got
                break
            assert datetime.now(timezone.utc) < deadline, f"still pushing after the session ended: {got}"


def test_login_redirects_only_to_this_site(world):
    client, store = world["client"], world["store"]
    store.add_user("next.test", "viewer", by="test", password=PASSWORD)
    for nxt, want in (("/ops", "/ops"), ("//evil.example/", "/wall"), ("https://evil.example/", "/wall"),
                      ("/\\evil.example/", None), ("/%2F%2Fevil.example", None)):
        csrf = _login_form(client)
        client.cookies.clear()
        r = client.post("/login", data={"username": "next.test", "password": PASSWORD, "csrf": csrf, "next": nxt},
                        headers=_headers(None, cookie=f"{auth.CSRF_COOKIE}={csrf}"), follow_redirects=False)
        where = r.headers.get("location", "")
        assert r.status_code == 303, (nxt, r.status_code)
        # a path on this site: not //host, and no backslash (browsers read /\ as //)
        assert where.startswith("/") and not where.startswith("//") and "\\" not in where, (nxt, where)
        if want is not None:
            assert where == want, (nxt, where)


def test_the_root_sends_each_caller_to_their_page(world):
    client, tokens = world["client"], world["tokens"]
    for ident, where in (("anonymous", "/login"), ("viewer", "/wall"), ("operator", "/ops"), ("admin", "/wall")):
        client.cookies.clear()
        r = client.get("/", headers=_headers(tokens[ident], origin=None), follow_redirects=False)
        assert (r.status_code, r.headers.get("location")) == (303, where), ident


# --------------------------------------------------------------------------- 6. run on 0.0.0.0
def test_run_on_all_interfaces_without_an_ingest_token_is_refused(tmp_path):
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    env = {k: v for k, v in os.environ.items() if k != "SCENIC_TWIN_INGEST_TOKEN"}
    p = subprocess.run([sys.executable, "-m", "dashboard.cli", "run", "--host", "0.0.0.0", "--port", str(port),
                        "--var", str(tmp_path / "var")], cwd=ROOT, env=env, capture_output=True, text=True,
                       timeout=60)
    assert p.returncode == 2, (p.returncode, p.stderr[-2000:])
    assert "SCENIC_TWIN_INGEST_TOKEN" in p.stderr and "SCENIC_TWIN_HOSTS" in p.stderr
    assert not (tmp_path / "var" / "access.sqlite").exists(), "it got as far as creating accounts"
