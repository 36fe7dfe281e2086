"""The pages under their Content-Security-Policy, enforced (issue 16): every page loads, draws and
takes a click with no violation reported, and the policy forbids what it should (eval, foreign
scripts and connections, being framed).  No Playwright string predicates here: those are eval'd
in the page, which is exactly what the policy refuses."""
from __future__ import annotations

import subprocess
import sys
import time
import urllib.request

import pytest

from conftest import ROOT

pytestmark = pytest.mark.browser
WATCH = """window.__csp = []; document.addEventListener('securitypolicyviolation',
  (e) => window.__csp.push(e.violatedDirective + ' ' + e.blockedURI + ' ' + (e.sample || '')));"""


def _until(pg, expr: str, timeout: float = 90.0):
    """Poll an expression with page.evaluate (the DevTools protocol, not page-side eval)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        v = pg.evaluate(expr)
        if v:
            return v
        time.sleep(0.5)
    raise AssertionError(f"{expr} stayed false for {timeout} s")


@pytest.fixture(scope="module")
def patrol_login(server):
    out = subprocess.run([sys.executable, "-m", "dashboard.cli", "users", "add", "patrol-30", "--role", "patrol",
                          "--store", server.stores.access], cwd=ROOT, capture_output=True, text=True,
                         check=True, timeout=120)
    return "patrol-30", out.stdout.strip().splitlines()[-1]


def _enforced(browser, **kw):
    ctx = browser._b.new_context(bypass_csp=False, **kw)      # the policy as a real browser applies it
    ctx.add_init_script(WATCH)
    return ctx


def _login(pg, server, path, user, password):
    pg.goto(server + path)
    pg.fill("input[name=username]", user)
    pg.fill("input[name=password]", password)
    pg.click("button[type=submit]")
    pg.wait_for_url(server + path, timeout=30_000)


def test_the_policy_is_sent_and_says_what_it_forbids(server):
    with urllib.request.urlopen(server + "/login") as r:
        csp = r.headers["content-security-policy"]
    d = dict(part.strip().split(" ", 1) for part in csp.split(";"))
    assert "'unsafe-eval'" not in d["script-src"] and "'unsafe-inline'" not in d["script-src"]
    assert d["frame-ancestors"] == "'none'" and d["connect-src"] == "'self'" and d["object-src"] == "'none'"
    assert all(s.startswith("'sha256-") for s in d["script-src"].split()[2:])     # Dash's inline scripts


def test_every_page_works_with_the_policy_enforced_and_reports_no_violation(server, browser, patrol_login):
    ctx = _enforced(browser, viewport={"width": 1280, "height": 800})
    pg = ctx.new_page()
    try:
        _login(pg, server, "/wall", server.user, server.password)
        _until(pg, "Number((document.getElementById('twin-deck') || {dataset: {}}).dataset.frames || 0) >= 1")
        _until(pg, "document.querySelectorAll('#kpi-panel .st-kpi-tile').length > 0")
        for path, ready in (("/ops", "document.querySelectorAll('#ops-alerts tr, #ops-cases tr').length > 0"),
                            ("/config", "document.querySelectorAll('#cfg-list tr').length > 0")):
            pg.goto(server + path)
            _until(pg, ready)
        violations = pg.evaluate("window.__csp")
        assert violations == [], violations
        # the policy holds: a string compiled as code on the page is refused and reported
        pg.evaluate("setTimeout('window.__ran = 1', 0)")
        _until(pg, "window.__csp.length > 0", timeout=10)
        assert pg.evaluate("window.__ran") is None
        assert pg.evaluate("window.__csp")[0].startswith("script-src")
    finally:
        ctx.close()
    phone = _enforced(browser, viewport={"width": 390, "height": 844}, has_touch=True, is_mobile=True)
    pg = phone.new_page()
    try:
        _login(pg, server, "/patrol", *patrol_login)
        _until(pg, "!!(document.getElementById('twin-deck') || {dataset: {}}).dataset.roam")
        pg.locator("#roam-play").tap()
        _until(pg, "window.scenicPatrol.s > 0")
        assert pg.evaluate("window.__csp") == []
    finally:
        phone.close()


def test_a_foreign_page_cannot_frame_the_wall(server, browser):
    ctx = _enforced(browser)
    pg = ctx.new_page()
    try:
        pg.set_content(f'<iframe id="f" src="{server}/login"></iframe>')
        time.sleep(3)
        frame = next((f for f in pg.frames if f.url.startswith(server)), None)
        # a refused frame stays empty (chrome-error page), never the login form
        assert frame is None or frame.evaluate("document.querySelector('form.st-login') === null")
    finally:
        ctx.close()
