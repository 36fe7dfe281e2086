"""Who is calling, and may they: enforced on the server, in one place.

* **Identity** comes from the ``st_session`` cookie (HttpOnly, SameSite=Strict),
  resolved by :class:`AccessMiddleware` for every HTTP request *and* for the
  WebSocket handshake.  Dash's WebSocket callbacks see no cookies (dash
  #3814), so the identity is bound when the socket connects: the middleware
  sets :data:`CURRENT` in the connection's context, which every callback of
  that connection inherits (Dash copies the context into each callback's
  task or worker thread).  Each WebSocket message re-checks the session
  (expired, revoked, disabled user -> the socket is closed with 4001).
* **Roles**: every HTTP route is in :data:`ROUTES` with the role it needs
  (anything else is 404: deny by default); every Dash callback is registered
  through :func:`callback` with the role it needs (a test fails for a
  callback without one).  The middleware checks the role of a callback
  before Dash runs it (HTTP: the ``output`` of the request body; WebSocket:
  the ``output`` of each message), and :func:`callback`'s wrapper checks it
  again inside (defence in depth).  Refusals are audited.
* **Cross-origin**: a state-changing request (POST) and the WebSocket
  handshake must come from the page's own origin (``Origin`` checked
  against the allowed hosts); the login form also carries a CSRF token
  (double submit: cookie + field).  The ``Host`` header must be one of the
  allowed host names (DNS rebinding).
"""
from __future__ import annotations

import contextvars
import hmac
import json
import os
import logging
import secrets
import time
from dataclasses import dataclass
from typing import Any, Callable, Iterable
from urllib.parse import urlparse

from indicators.access.roles import ROLES, allowed

log = logging.getLogger("scenic_twin.auth")

COOKIE = "st_session"
CSRF_COOKIE = "st_csrf"
MAX_CALLBACK_BODY = 1 << 20          # 1 MiB: the largest callback body the pages send is a few KB
MAX_FORM_BODY = 64 << 10             # 64 KiB: the login and password forms (the other writes have their own)
PUBLIC = "public"
ANY = "viewer"                       # every role holds viewer


@dataclass(frozen=True)
class Identity:
    username: str
    role: str
    display_name: str = ""
    kind: str = "password"           # password | device
    token_id: str = ""
    must_change_password: bool = False

    def can(self, role: str) -> bool:
        return role == PUBLIC or allowed(self.role, role)


CURRENT: contextvars.ContextVar[Identity | None] = contextvars.ContextVar("scenic_twin_identity", default=None)
CLIENT: contextvars.ContextVar[str] = contextvars.ContextVar("scenic_twin_client", default="")

# Every HTTP route and the role it needs: exact paths, then prefixes (longest first).
ROUTES: dict[str, str] = {
    "/": PUBLIC,                       # redirects to the page of the caller's role
    "/login": PUBLIC, "/logout": PUBLIC, "/password": ANY,
    "/healthz": PUBLIC, "/readyz": PUBLIC,     # a monitor needs no account; neither shows data
    "/wall": ANY, "/ops": "operator", "/config": "supervisor", "/patrol": "patrol",
    "/patrol/photo": "patrol",         # a photo upload from a patrol phone (POST)
    "/_dash-layout": PUBLIC, "/_dash-dependencies": PUBLIC,   # the page shell, no data
    "/_dash-update-component": ANY,    # then the callback's own role
    "/_dash-ws-callback": ANY,         # then each message's callback role
    "/_favicon.ico": PUBLIC, "/favicon.ico": PUBLIC, "/_reload-hash": PUBLIC,
}
PREFIXES: dict[str, str] = {
    "/_dash-component-suites/": PUBLIC, "/assets/": PUBLIC,
    "/twin/": ANY,
    "/photos/": ANY,                   # photos of reports and handled cases, by checksum
    "/ingest": "ingest",               # bearer token, checked by the ingest router
}

CALLBACK_ROLES: dict[str, str] = {}
"""Dash callback key (its output spec, as in ``app.callback_map``) -> role needed."""
CALLBACK_SHAPES: dict[str, dict[str, Any]] = {}
"""Dash callback key -> the request shape its registration declares (checked before Dash runs it)."""


def _record_shape(app, key: str, clientside: bool = False) -> None:
    spec = app.callback_map.get(key, {})
    dep = lambda items: [(i["id"], i["property"]) for i in items]  # noqa: E731
    parts = key[2:-2].split("...") if key.startswith("..") else [key]
    CALLBACK_SHAPES[key] = {"multi": key.startswith(".."), "outputs": [tuple(p.rsplit(".", 1)) for p in parts],
                            "no_output": bool(spec.get("no_output")), "clientside": clientside,
                            "inputs": dep(spec.get("inputs", [])), "state": dep(spec.get("state", []))}


def malformed_callback(payload: Any, *, over_http: bool = True) -> str | None:
    """Why a callback request does not have the shape its callback declares (None: it does).
    Dash answers a mis-shaped request with a 500; this turns it into a 400 with the reason."""
    if not isinstance(payload, dict):
        return "the body is not a JSON object"
    shape = CALLBACK_SHAPES.get(payload.get("output") or "")
    if shape is None:
        return None                                   # unknown callbacks are refused by role
    if shape["clientside"]:
        # Dash has no server function for it: over HTTP it answers 500, over the socket it raises
        return "this callback runs in the browser; the server has nothing to run"
    outs = payload.get("outputs")
    if not shape["no_output"]:
        want = shape["outputs"]
        if shape["multi"]:
            if not isinstance(outs, list) or len(outs) != len(want):
                return f"'outputs' must be a list of {len(want)}"
        elif not isinstance(outs, dict):
            return "'outputs' must be an object"
        for (wid, wprop), o in zip(want, outs if shape["multi"] else [outs]):
            if wid.startswith("{"):
                items = o if isinstance(o, list) else [o]
                if not all(isinstance(x, dict) and x.get("property") == wprop for x in items):
                    return f"'outputs' entry for {wprop} must be its matches"
            elif not isinstance(o, dict) or o.get("id") != wid or o.get("property") != wprop:
                return f"'outputs' must name {wid}.{wprop} in its place"
    for part in ("inputs", "state"):
        want = shape[part]
        got = payload.get(part, [] if not want else None)
        if not isinstance(got, list) or len(got) != len(want):
            return f"'{part}' must be a list of {len(want)}"
        for (wid, wprop), g in zip(want, got):
            if wid.startswith("{"):                    # a pattern-matching id: a list of matches (or one)
                items = g if isinstance(g, list) else [g]
                if not all(isinstance(x, dict) and x.get("property") == wprop for x in items):
                    return f"'{part}' entry for {wprop} must be its matches"
            elif not isinstance(g, dict) or g.get("id") != wid or g.get("property") != wprop:
                return f"'{part}' must name {wid}.{wprop} in its place"
    changed = payload.get("changedPropIds", [])
    if not isinstance(changed, list) or not all(isinstance(c, str) for c in changed):
        return "'changedPropIds' must be a list of strings"
    return None


def route_role(path: str) -> str | None:
    if path in ROUTES:
        return ROUTES[path]
    for p in sorted(PREFIXES, key=len, reverse=True):
        if path.startswith(p):
            return PREFIXES[p]
    return None


def current() -> Identity | None:
    return CURRENT.get()


class Forbidden(PermissionError):
    pass


def require(role: str) -> Identity:
    """The caller, if they hold ``role``; else :class:`Forbidden`."""
    who = CURRENT.get()
    if who is None or not who.can(role):
        raise Forbidden(f"needs role {role}")
    return who


def callback(app, role: str, *args, **kwargs) -> Callable:
    """``@callback(app, "operator", Output(...), Input(...))``: a Dash callback
    that only ``role`` (or a role granting it) may run.  The role is recorded
    under the callback's key so the middleware checks it before Dash runs
    it, and the wrapper checks it again."""
    if role not in ROLES and role != PUBLIC:
        raise ValueError(f"unknown role {role!r}")
    import functools
    import inspect

    from dash.exceptions import PreventUpdate

    def deco(fn):
        if inspect.iscoroutinefunction(fn):
            @functools.wraps(fn)
            async def wrapped(*a, **k):
                if not _allowed_now(role):
                    raise PreventUpdate
                return await fn(*a, **k)
        else:
            @functools.wraps(fn)
            def wrapped(*a, **k):
                if not _allowed_now(role):
                    raise PreventUpdate
                return fn(*a, **k)
        before = set(app.callback_map)
        app.callback(*args, **kwargs)(wrapped)
        for key in set(app.callback_map) - before:
            CALLBACK_ROLES[key] = role
            _record_shape(app, key)
        return wrapped
    return deco


def _allowed_now(role: str) -> bool:
    who = CURRENT.get()
    return role == PUBLIC or (who is not None and who.can(role))


def clientside_role(app, role: str, *args, **kwargs) -> None:
    """A clientside callback runs in the browser and reaches no server data;
    it is declared with a role too, so the access test sees every callback."""
    before = set(app.callback_map)
    app.clientside_callback(*args, **kwargs)
    for key in set(app.callback_map) - before:
        CALLBACK_ROLES[key] = role
        _record_shape(app, key, clientside=True)


# --------------------------------------------------------------------------- the middleware
class AccessMiddleware:
    """Pure ASGI middleware: identity, host, origin, route and callback roles, body limit, headers."""

    def __init__(self, app, access, *, hosts: Iterable[str], audit: Callable[..., Any] | None = None,
                 csp: dict[str, str] | None = None, limiter=None):
        from .ratelimit import RateLimiter, limits_from_env
        self.app = app
        self.limiter = limiter if limiter is not None else RateLimiter(limits_from_env())
        self.access = access
        self.hosts = {h.lower() for h in hosts}
        self.audit = audit
        self.csp = csp if csp is not None else {}        # filled by create_app once every callback exists

    # --- helpers
    def _host_ok(self, headers: dict[str, str]) -> bool:
        host = headers.get("host", "")
        name = host.rsplit(":", 1)[0] if not host.startswith("[") else host.split("]")[0] + "]"
        return name.lower() in self.hosts

    def _origin_ok(self, headers: dict[str, str]) -> bool:
        origin = headers.get("origin")
        if origin is None:
            return True                 # same-origin GETs and non-browser clients send none
        o = urlparse(origin)
        return (o.hostname or "").lower() in self.hosts and o.netloc == headers.get("host", "")

    def _identity(self, headers: dict[str, str]) -> Identity | None:
        token = _cookie(headers.get("cookie", ""), COOKIE)
        if not token:
            return None
        s = self.access.session(token)
        if s is None:
            return None
        return Identity(s.username, s.role, s.display_name, s.kind, s.token_id, s.must_change_password)

    def _refuse(self, who: Identity | None, path: str, why: str) -> None:
        if self.audit is not None:
            try:
                self.audit(who.username if who else "anonymous", "access.refused", "route", path,
                           outcome="refused", client=CLIENT.get(), detail={"reason": why})
            except Exception:
                log.exception("audit failed")

    def _over_limit(self, cls: str, client: str, who: Identity | None, path: str) -> float:
        """Seconds to wait when ``client`` is past its limit of ``cls`` requests (audited once a
        minute per client), else 0."""
        wait = self.limiter.take(cls, client)
        if wait and self.limiter.should_audit(cls, client):
            lim = self.limiter.limits[cls]
            self._refuse(who, path, f"over the {cls} request limit ({lim.rate:g}/s, burst {lim.burst}) "
                                    f"for {client}; later refusals in this minute are not audited")
        return wait

    async def __call__(self, scope, receive, send):
        if scope["type"] not in ("http", "websocket"):
            return await self.app(scope, receive, send)
        headers = {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope.get("headers", [])}
        path = scope.get("path", "/")
        client = scope.get("client")
        CLIENT.set(f"{client[0]}" if client else "")
        if not self._host_ok(headers):
            return await _deny(scope, send, 421, "unknown host name: add it to SCENIC_TWIN_HOSTS")
        who = self._identity(headers)
        CURRENT.set(who)
        role = route_role(path)
        if role is None:
            return await _deny(scope, send, 404, "not found")
        if scope["type"] == "websocket":
            if not self._origin_ok(headers) or who is None or not who.can(role):
                self._refuse(who, path, "websocket without session or from a foreign origin")
                return await _deny(scope, send, 4003, "forbidden")
            return await self.app(scope, _ws_receive(receive, self, who, send), _ws_send(send, self, who))
        method = scope.get("method", "GET")
        if method not in ("GET", "HEAD", "OPTIONS") and not self._origin_ok(headers):
            self._refuse(who, path, "foreign origin")
            return await _deny(scope, send, 403, "cross-origin request refused")
        if method == "POST":
            from .ratelimit import client_key
            cls = {"ingest": "ingest"}.get(role) or {"/login": "login", "/patrol/photo": "photo",
                                                     "/_dash-update-component": "callback"}.get(path)
            if cls is not None:
                addr = CLIENT.get()
                key = client_key(None if cls in ("ingest", "login") else (who.username if who else None), addr,
                                 headers.get("authorization") if cls == "ingest" else None)
                wait = self._over_limit(cls, key, who, path)
                if wait:
                    return await _deny(scope, send, 429, f"too many requests from this client: at most "
                                       f"{self.limiter.limits[cls].rate:g} per second; retry after "
                                       f"{max(1, round(wait))} s", retry_after=max(1, round(wait + 0.49)))
        if method in ("POST", "PUT", "PATCH", "DELETE") and role != "ingest" and \
                path not in ("/_dash-update-component", "/patrol/photo"):
            # every other door with a body (login, password, logout) reads at most a form's worth;
            # ingest (32 MiB), photos (8 MB) and callbacks (1 MiB) bound their own
            body, err = await _read_body(receive, MAX_FORM_BODY)
            if err:
                return await _deny(scope, send, err[0], err[1])
            receive = _replay(body)
        if role == "ingest" or role == PUBLIC:
            return await self.app(scope, receive, _with_headers(send, self.csp))
        if who is None:
            if method == "GET" and path in ROUTES and not path.startswith("/_"):
                return await _redirect(send, "/login?next=" + path)
            return await _deny(scope, send, 401, "login needed")
        if not who.can(role):
            self._refuse(who, path, f"role {who.role} lacks {role}")
            if method == "GET" and path in PAGES:           # a person at a browser: a page, in words
                return await _denied_page(send, who)
            return await _deny(scope, send, 403, f"your role ({who.role}) may not open this")
        if path == "/_dash-update-component":
            body, err = await _read_body(receive, MAX_CALLBACK_BODY)
            if err:
                return await _deny(scope, send, err[0], err[1])
            try:
                payload = json.loads(body)
                output = payload.get("output") if isinstance(payload, dict) else None
            except (ValueError, UnicodeDecodeError):
                return await _deny(scope, send, 400, "callback body is not JSON")
            need = CALLBACK_ROLES.get(output or "")
            if need is None or not who.can(need):
                self._refuse(who, f"callback:{output}", f"role {who.role} lacks {need}")
                return await _deny(scope, send, 403, "this action needs another role")
            bad = malformed_callback(payload)
            if bad:
                return await _deny(scope, send, 400, f"malformed callback request: {bad}")
            return await self.app(scope, _replay(body), _with_headers(send, self.csp))
        return await self.app(scope, receive, _with_headers(send, self.csp))


PUSH_RECHECK_S = 2.0
"""How often a socket that only receives pushes re-checks its session."""


def _ws_send(send, mw: "AccessMiddleware", who: Identity):
    """Pushes go out only while the session lives: a logged-out, disabled, expired or
    revoked caller's socket is closed (4001) at the next push, not at its next request."""
    state = {"checked": time.monotonic(), "closed": False}

    async def checked(msg):
        if state["closed"]:
            return
        if msg.get("type") == "websocket.send" and time.monotonic() - state["checked"] >= PUSH_RECHECK_S:
            state["checked"] = time.monotonic()
            s = mw.access.session_by_id(who.token_id, touch=False) if who.token_id else None
            if s is None:
                state["closed"] = True
                mw._refuse(who, "websocket", "session ended while pushing")
                await send({"type": "websocket.close", "code": 4001, "reason": "session ended"})
                return
        await send(msg)
    return checked


def _ws_receive(receive, mw: AccessMiddleware, who: Identity, send):
    """Check every WebSocket message: the session still valid, the callback's role held."""
    async def checked():
        msg = await receive()
        if msg["type"] != "websocket.receive":
            return msg
        text = msg.get("text") or (msg.get("bytes") or b"").decode("utf-8", "replace")
        if len(text) > MAX_CALLBACK_BODY:
            return {"type": "websocket.disconnect", "code": 1009}
        try:
            m = json.loads(text)
        except ValueError:
            return {"type": "websocket.disconnect", "code": 1007}
        if not isinstance(m, dict):
            return {"type": "websocket.disconnect", "code": 1007}
        if m.get("type") == "callback_request":
            from .ratelimit import client_key
            if mw._over_limit("callback", client_key(who.username, CLIENT.get()), who, "websocket"):
                await send({"type": "websocket.close", "code": 1013, "reason": "too many requests: try again later"})
                return {"type": "websocket.disconnect", "code": 1013}
            s = mw.access.session_by_id(who.token_id) if who.token_id else None
            if s is None:
                mw._refuse(who, "websocket", "session ended")
                await send({"type": "websocket.close", "code": 4001, "reason": "session ended"})
                return {"type": "websocket.disconnect", "code": 4001}
            payload = m.get("payload") if isinstance(m.get("payload"), dict) else {}
            output = payload.get("output")
            need = CALLBACK_ROLES.get(output or "")
            if need is None or not who.can(need):
                mw._refuse(who, f"callback:{output}", f"role {who.role} lacks {need}")
                await send({"type": "websocket.close", "code": 4003, "reason": "forbidden"})
                return {"type": "websocket.disconnect", "code": 4003}
            bad = malformed_callback(payload, over_http=False)
            if bad:
                await send({"type": "websocket.close", "code": 1007, "reason": f"malformed callback request: {bad}"[:120]})
                return {"type": "websocket.disconnect", "code": 1007}
        return msg
    return checked


def _cookie(header: str, name: str) -> str | None:
    for part in header.split(";"):
        k, _, v = part.strip().partition("=")
        if k == name:
            return v
    return None


SECURITY_HEADERS = [
    (b"x-content-type-options", b"nosniff"),
    # same-origin, not no-referrer: with no-referrer browsers send "Origin: null" on the page's own
    # POSTs, and the origin check needs the real one; nothing leaks to other sites either way
    (b"referrer-policy", b"same-origin"),
    (b"x-frame-options", b"DENY"),
]


def content_security_policy(script_hashes: Iterable[str], frame_ancestors: str | None = None) -> str:
    """The pages' CSP: scripts only from this server plus Dash's own inline scripts by hash (no
    ``unsafe-eval``, no other inline script; WebAssembly may compile), styles from this server (inline ones too: React and
    the dropdowns set them), images from here and data:/blob: (deck.gl's textures), connections
    to this origin only (the WebSocket included), no framing (``SCENIC_TWIN_FRAME_ANCESTORS``
    names a kiosk wrapper that may frame the wall), no plugins, no foreign form targets."""
    ancestors = frame_ancestors if frame_ancestors is not None else os.environ.get(
        "SCENIC_TWIN_FRAME_ANCESTORS", "'none'")
    parts = {
        "default-src": "'self'",
        # 'wasm-unsafe-eval' lets the page compile WebAssembly (a bundled component does); it
        # allows no JavaScript eval
        "script-src": " ".join(["'self'", "'wasm-unsafe-eval'", *script_hashes]),
        "style-src": "'self' 'unsafe-inline'",
        "img-src": "'self' data: blob:",
        "font-src": "'self' data:",
        "connect-src": "'self'",
        "worker-src": "'self' blob:",
        "frame-ancestors": ancestors or "'none'",
        "base-uri": "'none'",
        "object-src": "'none'",
        "form-action": "'self'",
    }
    return "; ".join(f"{k} {v}" for k, v in parts.items())


def _with_headers(send, csp: dict[str, str] | None = None):
    async def wrapped(message):
        if message["type"] == "http.response.start":
            message = dict(message)
            extra = SECURITY_HEADERS
            policy = (csp or {}).get("policy")
            if policy:
                extra = extra + [(b"content-security-policy", policy.encode())]
            message["headers"] = list(message.get("headers", [])) + extra
        await send(message)
    return wrapped


async def _read_body(receive, limit: int) -> tuple[bytes, tuple[int, str] | None]:
    chunks, size = [], 0
    while True:
        msg = await receive()
        if msg["type"] == "http.disconnect":
            return b"", (400, "client went away")
        chunk = msg.get("body", b"")
        size += len(chunk)
        if size > limit:
            return b"", (413, f"request body over {limit} bytes")
        chunks.append(chunk)
        if not msg.get("more_body"):
            return b"".join(chunks), None


def _replay(body: bytes):
    sent = False

    async def receive():
        nonlocal sent
        if not sent:
            sent = True
            return {"type": "http.request", "body": body, "more_body": False}
        return {"type": "http.disconnect"}
    return receive


async def _deny(scope, send, status: int, reason: str, retry_after: int | None = None) -> None:
    if scope["type"] == "websocket":
        await send({"type": "websocket.close", "code": status if status >= 4000 else 4003, "reason": reason})
        return
    body = json.dumps({"error": reason}).encode()
    extra = [(b"retry-after", str(retry_after).encode())] if retry_after else []
    await send({"type": "http.response.start", "status": status,
                "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]
                + extra + SECURITY_HEADERS})
    await send({"type": "http.response.body", "body": body})


PAGES = ("/wall", "/ops", "/config", "/patrol")
"""The pages a person opens in a browser (each a route of ROUTES); their names are the nav's."""

_DENIED_HTML = """<!doctype html><html lang="zh-CN"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1"><title>{title}</title>
<link rel="stylesheet" href="/assets/twin.css"></head><body class="st-login-body">
<main class="st-login st-denied-page"><h1>{title}</h1><p>{zh}</p><p lang="en">{en}</p>
<nav class="st-nav">{links}</nav><a href="/logout">退出 · Log out</a></main></body></html>"""


async def _denied_page(send, who: "Identity") -> None:
    """403 as a page for a person whose role may not open the page asked for: what happened, in both
    languages, and the pages the role may open (a JSON error in a browser is a raw code on screen)."""
    from html import escape
    from . import i18n
    role_zh, role_en = i18n.ROLE_NAMES.get(who.role, ("用户", "User"))
    links = "".join(f'<a href="{p}">{escape(i18n.t("nav." + p[1:], "zh"))} · {escape(i18n.t("nav." + p[1:], "en"))}</a>'
                    for p in PAGES if who.can(ROUTES[p]))
    body = _DENIED_HTML.format(title="无权访问 · Not allowed", links=links,
                               zh=escape(f"您的角色（{role_zh}）无权打开此页面。可以打开："),
                               en=escape(f"Your role ({role_en}) may not open this page. Pages you may open:")).encode()
    await send({"type": "http.response.start", "status": 403,
                "headers": [(b"content-type", b"text/html; charset=utf-8"), (b"content-length", str(len(body)).encode())]
                + SECURITY_HEADERS})
    await send({"type": "http.response.body", "body": body})


async def _redirect(send, location: str) -> None:
    await send({"type": "http.response.start", "status": 303,
                "headers": [(b"location", location.encode()), (b"content-length", b"0")] + SECURITY_HEADERS})
    await send({"type": "http.response.body", "body": b""})


def csrf_token() -> str:
    return secrets.token_urlsafe(24)


def csrf_ok(cookie_value: str | None, form_value: str | None) -> bool:
    return bool(cookie_value and form_value and hmac.compare_digest(cookie_value, form_value))
