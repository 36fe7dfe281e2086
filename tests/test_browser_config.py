"""The supervisors' threshold page (`/config`) in a real browser, as a supervisor uses it.

One server of our own (`scenic-twin run`, National Day evening simulated at 60x, so that a tick
history builds up for the backtest), with a supervisor and a viewer account: the supervisor
searches an indicator, edits a tier, sees the note next to a bad value, runs a backtest (a plotly
chart appears), saves with a reason and sees the version listed; hostile reasons stay text; a
viewer is refused.  Screenshots at 1920x1080 and 3840x2160 go to /tmp/config-*.png.
"""
from __future__ import annotations

import re
import subprocess
import sys
import time

import pytest

from conftest import ROOT
from test_browser_wall import OwnServer, xss_payloads

pytestmark = pytest.mark.browser

RULE_SEARCH = "滨江东段 客流承载率 实时"          # crowd.load_rate:zone=riverside_east@now
RULE = "crowd.load_rate:zone=riverside_east@now"
CODES = re.compile(r"\b[a-z]+(?:_[a-z0-9]+)+\b|\b[a-z]+\.[a-z_]+(?:[.:=@][\w.=@:-]+)?\b|[a-z_]+-[a-z_]+-\d{4}")
INJECTED = ("script, img, svg, iframe, a, object, embed, input, details, video, audio, style, link, meta, form, "
            "math, marquee, body, select, textarea, table, template, noscript")


@pytest.fixture(scope="module")
def srv(tmp_path_factory):
    s = OwnServer(tmp_path_factory.mktemp("cfg"), "--scenario", "national-day", "--speed", "60",
                  "--start", "2026-10-01T18:00+08:00")
    made = subprocess.run([sys.executable, "-m", "dashboard.cli", "users", "add", "sup1", "--role", "supervisor",
                           "--store", s.stores.access], cwd=ROOT, env=s.env, capture_output=True,
                          text=True, check=True)
    s.sup_password = made.stdout.strip().splitlines()[-1]
    s.start()
    # a tick history to backtest over: the service writes a part per minute of ticks; wait for
    # half an hour of simulated evening (30 s here)
    deadline = time.monotonic() + 180
    while len(list((s.var / "history").glob("date=*/hour=*/part-*.parquet"))) < 30:
        assert time.monotonic() < deadline, "no tick history after 3 minutes"
        time.sleep(1)
    yield s
    s.close()


SETTLED = """() => { const c = (window.store && window.store.getState().callbacks) || {};
    return ['requested', 'prioritized', 'blocked', 'executing', 'executed', 'stored']
        .every(k => !c[k] || c[k].length === 0); }"""


def settle(page) -> None:
    """Wait until the page has no callback left to run (a save sets off a chain: the list, the
    versions, the rule and then the form are loaded again), twice in a row."""
    for _ in range(2):
        page.wait_for_function(SETTLED, timeout=30_000)
        page.wait_for_timeout(200)


def login(page, srv, user: str, password: str, path: str = "/config") -> None:
    page.goto(srv.base + path)
    page.fill("input[name=username]", user)
    page.fill("input[name=password]", password)
    page.click("button[type=submit]")
    page.wait_for_url(srv.base + path, timeout=30_000)


def open_config(page, srv) -> None:
    login(page, srv, "sup1", srv.sup_password)
    page.wait_for_function("document.querySelectorAll('#cfg-list tr').length > 0", timeout=60_000)


def pick(page, text: str = RULE_SEARCH) -> None:
    """Search, and open the one rule found."""
    page.fill("#cfg-search", text)
    page.wait_for_function("document.querySelectorAll('#cfg-list tr').length === 1", timeout=30_000)
    page.click("#cfg-list tr")
    page.wait_for_selector("#cfg-editor:not(.st-cfg-hidden)", timeout=30_000)
    page.wait_for_function("document.getElementById('cfg-red').value !== ''", timeout=30_000)
    settle(page)


def backtest(page) -> None:
    page.click("#cfg-backtest")
    try:
        page.wait_for_selector("#cfg-bt-result table", timeout=60_000)
    except Exception as e:               # say what the page shows instead (an error? still running?)
        raise AssertionError(
            f"no backtest result after 60 s; result {page.locator('#cfg-bt-result').inner_text()!r}, "
            f"errors {page.locator('.st-cfg-err').all_inner_texts()!r}, callbacks "
            f"{page.evaluate('JSON.stringify(Object.fromEntries(Object.entries((window.store && window.store.getState().callbacks) || {}).map(([k, v]) => [k, Array.isArray(v) ? v.length : v])))')}") from e
    page.wait_for_function("document.querySelectorAll('#cfg-graph .scatterlayer .trace').length >= 3",
                           timeout=60_000)


def no_overflow(page) -> list[str]:
    """Elements whose content is wider than they are (cut or scrolling sideways), and page scrollbars."""
    return page.evaluate("""() => {
        const bad = [];
        const d = document.documentElement;
        if (d.scrollWidth > innerWidth || d.scrollHeight > innerHeight) bad.push('page scrolls');
        for (const sel of ['.st-cfg-table-wrap', '.st-cfg-rule', '.st-cfg-versions', '.st-cfg-filters', '.st-header'])
            for (const e of document.querySelectorAll(sel))
                if (e.scrollWidth > e.clientWidth + 1) bad.push(sel + ' ' + e.scrollWidth + '>' + e.clientWidth);
        return bad; }""")


def smallest_text(page) -> float:
    return page.evaluate("""() => Math.min(...Array.from(document.querySelectorAll(
        '#cfg-list td, .st-cfg-where, .st-cfg-details td, .st-cfg-field label, .st-cfg-version, .st-cfg-err'))
        .filter(e => e.offsetParent !== null && e.textContent.trim())
        .map(e => parseFloat(getComputedStyle(e).fontSize)))""")


def test_a_supervisor_searches_edits_backtests_and_saves(srv, browser):
    ctx = browser.new_context(viewport={"width": 1920, "height": 1080}, locale="zh-CN")
    page = ctx.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda e: errors.append(str(e)))
    try:
        open_config(page, srv)
        assert "1,373" in page.inner_text("#cfg-count")
        assert page.locator("#cfg-list tr").count() <= 40, "the list is paged"
        pick(page)
        assert page.locator("#cfg-list tr").get_attribute("data-rule") == RULE
        assert page.input_value("#cfg-red") == "100" and page.input_value("#cfg-orange") == "90"
        detail = page.inner_text("#cfg-detail")
        assert "指标目录" in detail and "客流承载率" in detail

        # a bad value: the note is next to the field, in words
        page.fill("#cfg-red", "50")
        page.click("#cfg-backtest")
        page.wait_for_function("document.getElementById('cfg-err-tiers-red').innerText.includes('橙色')",
                               timeout=30_000)
        assert page.inner_text("#cfg-bt-result").strip() == ""

        # a good one: the backtest plots the value and both threshold sets, and counts the alerts
        page.fill("#cfg-red", "95")
        started = time.monotonic()
        backtest(page)
        took = time.monotonic() - started
        assert page.inner_text("#cfg-err-tiers-red").strip() == ""
        result = page.inner_text("#cfg-bt-result")
        assert "拟议阈值将产生" in result and "现行阈值产生" in result and "次评估" in result
        names = page.evaluate("Array.from(document.querySelectorAll('#cfg-graph .legendtext')).map(e => e.textContent)")
        assert "指标值" in names and "红色 · 现行" in names and "红色 · 拟议" in names, names
        print(f"\nbacktest answered in {took:.1f} s: {result.splitlines()[0]}")
        assert took < 20, took
        page.locator("#cfg-graph").scroll_into_view_if_needed()
        page.wait_for_timeout(500)
        page.screenshot(path="/tmp/config-1920x1080.png")

        # save: first without a reason (refused, next to the reason), then with one
        page.click("#cfg-save")
        page.wait_for_function("document.getElementById('cfg-err-reason').innerText.trim() !== ''", timeout=30_000)
        assert page.locator("#cfg-versions li[data-version='1']").count() == 0
        page.fill("#cfg-reason", "国庆晚高峰：滨江东段红色阈值下调至95%")
        page.click("#cfg-save")
        page.wait_for_selector("#cfg-save-result .st-cfg-ok", timeout=30_000)
        assert "第 1 版" in page.inner_text("#cfg-save-result")
        v1 = page.locator("#cfg-versions li[data-version='1']")
        v1.wait_for(timeout=30_000)
        text = v1.inner_text()
        assert "sup1" in text and "国庆晚高峰" in text and "红色触发值" in text and "100% → 95%" in text, text
        # the form reloaded from the new version
        page.wait_for_function("document.getElementById('cfg-loaded-note').innerText.includes('第 1 版')",
                               timeout=30_000)
        assert page.input_value("#cfg-red") == "95"
        page.wait_for_function(f"document.querySelector('#cfg-list tr[data-rule=\"{RULE}\"]')"
                               ".innerText.includes('第 1 版')", timeout=30_000)

        # nothing on the page is a raw id or code
        shown = page.inner_text("#page")
        assert CODES.findall(shown) == [], CODES.findall(shown)[:10]
        assert RULE not in shown
        assert no_overflow(page) == [], no_overflow(page)
        assert smallest_text(page) >= 12, smallest_text(page)
        page.screenshot(path="/tmp/config-1920x1080-saved.png")
        # and in English
        page.get_by_text("English").click()
        page.wait_for_function("document.getElementById('cfg-l-title').innerText === 'Alert thresholds'",
                               timeout=30_000)
        page.wait_for_function("document.getElementById('cfg-detail').innerText.includes('Visitor load rate')",
                               timeout=30_000)
        shown = page.inner_text("#page")
        assert CODES.findall(shown) == [], CODES.findall(shown)[:10]
        page.screenshot(path="/tmp/config-en-1920x1080.png")
        page.get_by_text("中文").click()
        assert errors == []
    finally:
        ctx.close()


def choose(page, dropdown: str, option: str) -> None:
    """Pick ``option`` (its text) in a Dash dropdown, as a mouse does."""
    page.click(f"#{dropdown}")
    page.get_by_role("option", name=option, exact=True).click()


def test_a_supervisor_adds_a_weekend_night_profile_and_drops_it(srv, browser):
    """A calendar profile made on the page: a name, days and hours, its own red tier; then listed
    with the rule and in the versions, in words; then dropped again."""
    ctx = browser.new_context(viewport={"width": 1920, "height": 1080}, locale="zh-CN")
    page = ctx.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda e: errors.append(str(e)))
    try:
        open_config(page, srv)
        pick(page, "滨江西段 客流承载率 实时")
        assert page.locator("#cfg-new-box.st-cfg-hidden").count() == 1
        choose(page, "cfg-profile", "＋ 新建时段方案…")
        page.wait_for_selector("#cfg-new-box:not(.st-cfg-hidden)", timeout=30_000)
        settle(page)
        choose(page, "cfg-new-cal", "按星期和时段…")
        page.wait_for_selector("#cfg-custom-box:not(.st-cfg-hidden)", timeout=30_000)
        page.fill("#cfg-new-name", "周末夜间")
        page.locator("#cfg-new-days label", has_text="周六").click()
        page.locator("#cfg-new-days label", has_text="周日").click()
        page.fill("#cfg-new-hours", "22:00-06:00")
        page.fill("#cfg-red", "95")
        page.fill("#cfg-reason", "周末夜间游客少、照明弱，红色阈值下调")
        page.screenshot(path="/tmp/config-new-profile-1920x1080.png")
        page.click("#cfg-save")
        page.wait_for_selector("#cfg-save-result .st-cfg-ok", timeout=30_000)
        settle(page)
        detail = page.inner_text("#cfg-detail")
        assert "周末夜间" in detail and "周六、周日" in detail and "22:00–06:00" in detail, detail
        latest = page.locator("#cfg-versions li").first.inner_text()
        assert "周末夜间" in latest and "sup1" in latest, latest
        shown = page.inner_text("#page")
        assert CODES.findall(shown) == [], CODES.findall(shown)[:10]
        # dropped again
        choose(page, "cfg-profile", "周末夜间（周六、周日 · 22:00–06:00）")
        page.wait_for_selector("#cfg-drop-box:not(.st-cfg-hidden)", timeout=30_000)
        page.locator("#cfg-drop label").click()
        page.fill("#cfg-reason", "试行结束")
        before = page.inner_text("#cfg-save-result")
        page.click("#cfg-save")
        # (the first save's confirmation is still on the page: wait for this one's)
        page.wait_for_function("""(b) => { const r = document.getElementById('cfg-save-result');
            return !!r.querySelector('.st-cfg-ok') && r.innerText !== b; }""", arg=before, timeout=30_000)
        settle(page)
        page.wait_for_function("() => !document.getElementById('cfg-detail').innerText.includes('周末夜间')",
                               timeout=30_000)
        assert errors == []
    finally:
        ctx.close()


def test_hostile_reasons_stay_text(srv, browser):
    """Every payload of the wall's XSS list, as the reason of a saved version, is shown as the
    same text in the versions list: no dialog, no element made of it, nothing run."""
    payloads = xss_payloads()
    assert len(payloads) >= 50
    ctx = browser.new_context(viewport={"width": 1920, "height": 1080})
    page = ctx.new_page()
    dialogs: list[str] = []
    page.on("dialog", lambda d: (dialogs.append(d.message), d.dismiss()))
    try:
        open_config(page, srv)
        pick(page)
        # the reason field takes 500 characters: the payloads go in a few saves, one per line
        batches, cur = [], ""
        for p in payloads:
            if len(cur) + len(p) + 1 > 480:
                batches.append(cur)
                cur = ""
            cur += p + "\n"
        batches.append(cur)
        for i, reason in enumerate(batches):
            red = "94" if page.input_value("#cfg-red") != "94" else "93"
            page.fill("#cfg-red", red)
            page.fill("#cfg-reason", reason)
            page.click("#cfg-save")
            # the reason is emptied when (and only when) the save went through
            try:
                page.wait_for_function("document.getElementById('cfg-reason').value === ''", timeout=30_000)
            except Exception:
                raise AssertionError(f"batch {i} not saved: {page.inner_text('#cfg-editor')[-1500:]}") from None
            version = re.search(r"第 (\d+) 版", page.inner_text("#cfg-save-result"))[1]
            # the form is loaded again from the new version before the next change
            page.wait_for_function("(v) => document.getElementById('cfg-loaded-note').innerText.includes(v)",
                                   arg=f"第 {version} 版", timeout=30_000)
            page.wait_for_function("(r) => document.getElementById('cfg-red').value === r", arg=red, timeout=30_000)
            settle(page)
            newest = page.locator(f"#cfg-versions li[data-version='{version}']")
            newest.wait_for(timeout=30_000)
            assert newest.locator(".st-cfg-why").text_content() == reason.strip()
            injected = page.evaluate(f"document.querySelectorAll('#cfg-versions :is({INJECTED})').length")
            assert injected == 0, f"batch {i} became markup"
        page.wait_for_timeout(1500)                       # onerror / onload handlers fire asynchronously
        assert page.evaluate("window.__xss || 0") == 0 and dialogs == []
    finally:
        ctx.close()


def test_a_viewer_is_refused_the_config_page(srv, browser):
    ctx = browser.new_context(viewport={"width": 1280, "height": 800})
    page = ctx.new_page()
    try:
        # straight to /config: the server refuses it (the page is never sent)
        page.goto(srv.base + "/config")
        page.fill("input[name=username]", "wall1")
        page.fill("input[name=password]", srv.password)
        with page.expect_response(lambda r: r.url.endswith("/config")) as resp:
            page.click("button[type=submit]")
        assert resp.value.status == 403
        assert "may not open" in page.inner_text("body")
        assert page.locator("#cfg-root").count() == 0
        # from the wall, moving to /config inside the app: the denied page, no config
        page.goto(srv.base + "/wall")
        page.wait_for_selector("#twin-deck", timeout=60_000)
        page.evaluate("history.pushState({}, '', '/config'); window.dispatchEvent(new CustomEvent('_dashprivate_pushstate'))")
        page.wait_for_selector(".st-denied", timeout=30_000)
        assert "无权访问" in page.inner_text(".st-denied")
        assert page.locator("#cfg-root, #cfg-list").count() == 0
    finally:
        ctx.close()


def test_the_page_at_4k_is_readable_and_fits(srv, browser):
    ctx = browser.new_context(viewport={"width": 3840, "height": 2160}, locale="zh-CN")
    page = ctx.new_page()
    try:
        open_config(page, srv)
        pick(page)
        backtest(page)
        page.fill("#cfg-search", "")                      # the whole list again, the rule still open
        page.wait_for_function("document.querySelectorAll('#cfg-list tr').length === 40", timeout=30_000)
        page.locator("#cfg-graph").scroll_into_view_if_needed()
        page.wait_for_timeout(1000)
        assert no_overflow(page) == [], no_overflow(page)
        # readable at distance: nothing of the page under 22 px at 4K
        assert smallest_text(page) >= 22, smallest_text(page)
        box = page.locator("#cfg-red").bounding_box()
        assert box["height"] >= 40, box                   # the inputs grew with the text
        tick = page.evaluate("parseFloat(getComputedStyle(document.querySelector('#cfg-graph .xtick text')).fontSize)")
        assert tick >= 20, tick                           # and so did the chart's
        page.screenshot(path="/tmp/config-3840x2160.png")
    finally:
        ctx.close()


def test_the_page_fits_a_phone(srv, browser):
    """A supervisor checks a threshold on a phone (390×844): the page scrolls down, never
    sideways; each rule of the list is a card with its name, value and tiers on screen; the
    rule picked opens below the list with its form on screen."""
    ctx = browser.new_context(viewport={"width": 390, "height": 844}, is_mobile=True, has_touch=True)
    page = ctx.new_page()
    try:
        open_config(page, srv)
        for lang in ("English", "中文"):
            page.get_by_text(lang, exact=True).click()
            settle(page)
            assert page.evaluate("document.documentElement.scrollWidth") <= 390, lang
            assert page.locator("#cfg-list tr").count() == 40
            card = page.locator("#cfg-list tr").first
            # the name reads on a line (the table squeezed it one character a line); the tiers side by side
            assert card.locator(".st-cfg-col-indicator").bounding_box()["width"] >= 300, lang
            chips = [card.locator(".st-cfg-chip").nth(i).bounding_box()["y"] for i in range(card.locator(".st-cfg-chip").count())]
            assert len(chips) >= 2 and max(chips) - min(chips) < 4, (lang, chips)
            for part in (".st-cfg-col-indicator", ".st-cfg-col-value", ".st-cfg-col-tiers"):
                box = card.locator(part).bounding_box()
                assert box and box["x"] >= 0 and box["x"] + box["width"] <= 390, (lang, part, box)
            assert card.locator(".st-cfg-col-tiers").bounding_box()["y"] < 844, lang
            assert page.locator("#cfg-list .st-cfg-col-source").first.is_visible() is False   # in the rule's panel
        pick(page)
        page.locator("#cfg-red").scroll_into_view_if_needed()
        for sel in ("#cfg-red", "#cfg-backtest", ".st-cfg-edit-title"):
            box = page.locator(sel).bounding_box()
            assert box and box["x"] >= 0 and box["x"] + box["width"] <= 390, (sel, box)
        assert page.locator(".st-cfg-edit-title").bounding_box()["width"] > 200     # not one word a line
        assert page.evaluate("document.documentElement.scrollWidth") <= 390
        page.screenshot(path="/tmp/config-390x844.png", full_page=True)
    finally:
        ctx.close()
