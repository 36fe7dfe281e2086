"""The patrol phone (`/patrol`) in a real browser at 390×844 with touch (issue 10): the layout,
a virtual roaming patrol of the whole route within 5 minutes and its coverage log, a report
that shows once on the wall and the console even when the phone sends it twice, a case moved
accept → arrive → handled from the phone and seen in the console, and taps on a hydrant,
a lamp pole and a checkpoint."""
from __future__ import annotations

import subprocess
import sys
import time

import pytest

from conftest import ROOT, login

pytestmark = pytest.mark.browser
PHONE = {"viewport": {"width": 390, "height": 844}, "has_touch": True, "is_mobile": True, "device_scale_factor": 2}
TIME_SCALE = 10          # the roaming clock runs 10x: 300 virtual seconds in 30


@pytest.fixture(scope="module")
def patrol_account(server, console):
    """A patrol officer whose account is their number in the staff positions feed: one the
    console can dispatch to now (the simulated shift decides who is on duty)."""
    ops, _ = console
    ops.wait_for_function("!!window.scenicWall.ops.staff && window.scenicWall.ops.staff.length > 0", timeout=120_000)
    user = ops.evaluate("window.scenicWall.ops.staff[0].id")
    out = subprocess.run([sys.executable, "-m", "dashboard.cli", "users", "add", user, "--role", "patrol",
                          "--store", server.stores.access], cwd=ROOT, capture_output=True, text=True,
                         check=True, timeout=120)
    return user, out.stdout.strip().splitlines()[-1]


@pytest.fixture(scope="module")
def phone(browser, server, patrol_account):
    ctx = browser.new_context(**PHONE)
    pg = ctx.new_page()
    errors: list[str] = []
    pg.on("pageerror", lambda e: errors.append(str(e)))
    user, password = patrol_account
    pg.goto(server + "/patrol")
    pg.fill("input[name=username]", user)
    pg.fill("input[name=password]", password)
    pg.click("button[type=submit]")
    pg.wait_for_url(server + "/patrol", timeout=30_000)
    pg.wait_for_function("!!(document.querySelector('#twin-deck') || {dataset: {}}).dataset.roam", timeout=90_000)
    pg.wait_for_function("window.scenicPatrol.live && window.scenicPatrol.live.checkpoints", timeout=90_000)
    pg.errors = errors
    yield pg
    ctx.close()


@pytest.fixture(scope="module")
def console(browser, server):
    ctx = browser.new_context(viewport={"width": 1920, "height": 1080})
    ops, wall = ctx.new_page(), ctx.new_page()
    login(ops, server, "/ops")
    wall.goto(server + "/wall")
    ops.wait_for_function("document.querySelectorAll('#ops-cases tr').length > 0", timeout=180_000)
    yield ops, wall
    ctx.close()


def patrol_log(server, patrol_id: str) -> dict:
    from indicators.patrols import PatrolStore
    from indicators.service import Service  # noqa: F401  (same route as the server builds)
    from indicators.patrols import route_from_inventory
    from twin_assets import inventory as inv
    log = PatrolStore(server.var / "patrols.sqlite", route_from_inventory(inv.load(), inv.frame()))
    try:
        rec = log.get(patrol_id)
        return rec.to_dict() if rec else {}
    finally:
        log.close()


def test_the_phone_layout_fits_and_the_scene_takes_half_the_screen(phone):
    m = phone.evaluate("""() => ({sw: document.documentElement.scrollWidth, cw: document.documentElement.clientWidth,
        bw: document.body.scrollWidth, scene: document.querySelector('.st-patrol-scene').getBoundingClientRect().height,
        h: window.innerHeight, play: document.querySelector('#roam-play').getBoundingClientRect(),
        title: document.querySelector('#app-title').getBoundingClientRect().height})""")
    assert m["sw"] <= m["cw"] and m["bw"] <= m["cw"], f"horizontal scroll: {m}"
    assert m["scene"] >= 0.5 * m["h"], f"the scene is {m['scene']:.0f} px of {m['h']} px"
    assert m["title"] < 40, "the title wraps"
    assert m["play"]["width"] >= 40 and m["play"]["height"] >= 40, "the play button is too small for a thumb"


def test_a_roaming_patrol_covers_every_checkpoint_within_five_minutes_and_logs_every_segment(phone, server,
                                                                                             console):
    phone.evaluate(f"window.scenicPatrol.timeScale = {TIME_SCALE}")
    phone.locator("#roam-play").tap()
    # a checkpoint card with the live state around it (what the README screenshot shows)
    phone.wait_for_function("window.scenicPatrol.visited.length >= 3", timeout=120_000)
    card = phone.locator("#checkpoint-card").inner_text()
    assert "人流负荷" in card and "附近告警" in card and "附近摄像头" in card, card
    # with the card's lines below, the status line still shows whole above the tabs (it shrank
    # to half a line under them)
    line = phone.evaluate("""() => { const e = document.getElementById('roam-status'), r = e.getBoundingClientRect(),
        t = document.querySelector('.st-tabs').getBoundingClientRect(); return [r.height, e.scrollHeight, r.bottom, t.top]; }""")
    assert line[0] >= line[1] > 8 and line[2] <= line[3] + 0.5, line
    phone.wait_for_function("document.querySelector('#twin-deck').dataset.roam === 'ended'",
                            timeout=300_000 // TIME_SCALE * 3)
    got = phone.evaluate("""() => ({elapsed: window.scenicPatrol.elapsed, visited: window.scenicPatrol.visited,
        id: window.scenicPatrol.patrolId, n: window.scenicPatrol.route.checkpoints.length})""")
    print(f"\nroaming patrol: {got['elapsed']:.1f} s on the roaming clock for 2,943 m and {got['n']} checkpoints")
    assert got["elapsed"] <= 300, got
    assert len(got["visited"]) == got["n"] == 9
    phone.wait_for_function("!window.scenicPatrol.queue.some(a => a.kind === 'progress')", timeout=60_000)
    log = patrol_log(server, got["id"])
    assert log["ended_at"] and log["username"].startswith("patrol-")
    assert len(log["segments"]) == 8 and len(log["checkpoints"]) == 9, log
    assert log["cameras_seen"] > 20
    assert "巡查完成" in phone.locator("#roam-status").inner_text()
    # the console's list of today's patrols shows it, and no stretch of the route is a gap any more
    ops, _ = console
    row = f"#ops-patrols tr[data-patrol=\"{got['id']}\"]"
    try:
        ops.wait_for_function(f"!!document.querySelector('{row}') && document.querySelector('{row}').innerText"
                              f".includes('9/9')", timeout=60_000)
    except Exception as e:
        # say why (this wait failed once in CI): what the console shows, whether its push link is up,
        # and what the server's patrol log holds
        shown = ops.evaluate("""() => ({list: document.getElementById('ops-patrols')?.innerText.slice(0, 600),
            conn: document.getElementById('conn')?.className, asof: document.getElementById('asof')?.textContent})""")
        raise AssertionError(f"the console never listed patrol {got['id']} as 9/9: page {shown}; "
                             f"server log of it {patrol_log(server, got['id'])}") from e
    # the route's last stretch is covered by the patrol's end report, which may reach the console a
    # push after the ninth checkpoint: no gap left within a few pushes
    ops.wait_for_function("document.querySelector('#ops-patrols .st-gaps')?.getAttribute('data-gaps') === '0'",
                          timeout=30_000)
    assert phone.errors == []


def _long_press(pg, x, y, hold_s=1.0):
    cdp = pg.context.new_cdp_session(pg)
    cdp.send("Input.dispatchTouchEvent", {"type": "touchStart", "touchPoints": [{"x": x, "y": y}]})
    time.sleep(hold_s)
    cdp.send("Input.dispatchTouchEvent", {"type": "touchEnd", "touchPoints": []})
    cdp.detach()


def test_a_report_sent_twice_shows_once_on_the_wall_and_the_console(phone, console):
    ops, wall = console
    # a long press on the scene picks the place of the report
    phone.locator("#tab-roam").tap()
    box = phone.locator("#twin-deck canvas").bounding_box()
    _long_press(phone, box["x"] + box["width"] / 2, box["y"] + box["height"] * 0.6)
    phone.wait_for_function("document.querySelector('.st-sheet-report').hidden === false", timeout=30_000)
    assert "长按" in phone.locator("#report-where").inner_text()
    pressed = phone.evaluate("window.scenicPatrol.reportXY")
    assert pressed and all(abs(v) < 5000 for v in pressed)
    phone.select_option("#report-type", "litter")
    phone.fill("#report-note", "测试：江边步道垃圾")
    sent = time.monotonic()
    phone.locator("#report-send").tap()
    phone.wait_for_function("window.scenicPatrol.results.some(r => r.kind === 'report' && r.ok)", timeout=60_000)
    res = phone.evaluate("window.scenicPatrol.results.filter(r => r.kind === 'report').pop()")
    case_id = res["case"]
    sent_xy = phone.evaluate("window.scenicPatrol.reportXY")
    assert sent_xy is None                                   # used once, then back to the patrol's position
    ops.wait_for_function(f"!!document.querySelector('#ops-cases tr[data-case=\"{case_id}\"]')", timeout=60_000)
    print(f"\nreport on the console {time.monotonic() - sent:.2f} s after the tap")
    # the phone lost the answer and sends the same report again (same key)
    phone.evaluate("""(key) => { const P = window.scenicPatrol;
        P.queue.push({kind: 'report', key, category: 'litter', note: '测试：江边步道垃圾', xy: P.at(400)});
        P.inflight = null; P.pump(); }""", res["key"])
    phone.wait_for_function(f"window.scenicPatrol.results.filter(r => r.key === '{res['key']}').length === 2",
                            timeout=60_000)
    again = phone.evaluate(f"window.scenicPatrol.results.filter(r => r.key === '{res['key']}')[1]")
    assert again["ok"] and again["case"] == case_id
    time.sleep(2)                                            # a push or two later
    assert ops.locator(f"#ops-cases tr[data-case=\"{case_id}\"]").count() == 1
    wall.wait_for_function(f"document.querySelectorAll('#case-board [data-case=\"{case_id}\"]').length === 1",
                           timeout=60_000)
    assert phone.errors == []


def test_an_assigned_case_moves_accept_arrive_handled_from_the_phone_and_the_console_sees_each_step(
        phone, console, patrol_account):
    ops, _ = console
    phone.locator("#tab-report").tap()
    phone.fill("#report-note", "测试：井盖松动")
    phone.select_option("#report-type", index=0)
    before = phone.evaluate("window.scenicPatrol.results.length")
    phone.locator("#report-send").tap()
    # the answer to this report (not one to an earlier report of the module's phone)
    phone.wait_for_function(f"window.scenicPatrol.results.slice({before}).some(r => r.kind === 'report' && r.ok)",
                            timeout=60_000)
    case_id = phone.evaluate(f"window.scenicPatrol.results.slice({before}).find(r => r.kind === 'report' && r.ok)"
                             ".case")
    row = f"#ops-cases tr[data-case=\"{case_id}\"]"
    ops.wait_for_selector(f"{row} select", timeout=60_000)
    ops.select_option(f"{row} select", patrol_account[0])
    ops.locator(f"{row} button.st-step-dispatch").click()
    ops.wait_for_function(f"document.querySelector('{row}').dataset.stage === 'dispatch'", timeout=60_000)

    phone.locator("#tab-mine").tap()
    item = f"#my-cases li[data-case=\"{case_id}\"]"
    phone.wait_for_selector(f"{item} button.st-step-accept", timeout=60_000)
    phone.locator(f"{item} button.st-step-accept").tap()
    ops.wait_for_function(f"document.querySelector('{row}').innerText.includes('已接单')", timeout=60_000)
    phone.wait_for_selector(f"{item} button.st-step-arrive", timeout=60_000)
    phone.locator(f"{item} button.st-step-arrive").tap()
    ops.wait_for_function(f"document.querySelector('{row}').innerText.includes('已到场')", timeout=60_000)
    phone.wait_for_selector(f"{item} button.st-step-handle", timeout=60_000)
    phone.locator(f"{item} button.st-step-handle").tap()               # without a note: asked for one
    assert phone.locator(f"{item} textarea").get_attribute("placeholder") == "请填写处置说明"
    # a push that changes the list redraws it: still asked for the note, and what is typed stays
    # (the redraw and the reading of its text run in one task of the page: a real push arriving
    # after it redraws the list again with the real walking distance)
    redraw = ("(n) => { const m = window.scenicPatrol.mine; window.scenicPatrol.apply({mine: Object.assign({}, m,"
              " {items: m.items.map((c) => Object.assign({}, c, {walk_m: n}))})});"
              f" return document.querySelector('{item} .st-my-meta').innerText; }}")
    assert "约 11 米" in phone.evaluate(redraw, 11)                                  # it was redrawn
    assert phone.locator(f"{item} textarea").get_attribute("placeholder") == "请填写处置说明"
    phone.fill(f"{item} textarea", "已紧固井盖")
    assert "约 12 米" in phone.evaluate(redraw, 12)                                  # it was redrawn
    assert phone.locator(f"{item} textarea").input_value() == "已紧固井盖"
    phone.locator(f"{item} button.st-step-handle").tap()
    ops.wait_for_function(f"document.querySelector('{row}').dataset.stage === 'verify'", timeout=60_000)
    phone.wait_for_function(f"!document.querySelector('{item} button')", timeout=60_000)
    assert phone.errors == []


def _tap_world(pg, lon, lat, z):
    x, y, *_ = pg.evaluate("([lon, lat, z]) => window.scenicTwin.deck.getViewports()[0].project([lon, lat, z])",
                           [lon, lat, z])
    box = pg.locator("#twin-deck canvas").bounding_box()
    # a finger taps what is on top there: a point off the scene (under the header, whose language
    # switch a stray tap once turned to English on a loaded CI machine) is not tapped at all
    on_scene = pg.evaluate("([x, y]) => document.getElementById('twin-deck').contains(document.elementFromPoint(x, y))",
                           [box["x"] + x, box["y"] + y])
    assert on_scene, f"the point to tap ({x:.0f}, {y:.0f}) is not on the scene (canvas {box})"
    picked = pg.evaluate("([x, y]) => { const i = window.scenicTwin.pickAt(x, y); return i && [i.layer.id, i.index]; }",
                         [x, y])
    # A finger's tap carries the times it touched and lifted (the OS stamps them): sent with its own
    # 60 ms stamps, a tap stays a tap however late a busy software-rendered page gets to handle it.
    cdp = pg.context.new_cdp_session(pg)
    t0 = pg.evaluate("Date.now() / 1000")
    point = {"x": box["x"] + x, "y": box["y"] + y}
    cdp.send("Input.dispatchTouchEvent", {"type": "touchStart", "touchPoints": [point], "timestamp": t0})
    cdp.send("Input.dispatchTouchEvent", {"type": "touchEnd", "touchPoints": [], "timestamp": t0 + 0.06})
    cdp.detach()
    return picked


def _wait_details(pg, text: str, what: str, picked) -> None:
    """Wait until the details show ``text``; else fail saying what the tap picked and selected."""
    try:
        pg.wait_for_function(f"document.querySelector('#twin-details').innerText.includes('{text}')",
                             timeout=30_000)
    except Exception as e:
        raise AssertionError(f"{what}: deck picked {picked}; selections "
                             f"{pg.evaluate('JSON.stringify(window.scenicTwin.selections.slice(-3))')}; "
                             f"taps {pg.evaluate('JSON.stringify(window.scenicTwin.taps)')}; "
                             f"details {pg.locator('#twin-details').inner_text()!r}") from e


def test_tapping_a_hydrant_a_lamp_pole_and_a_checkpoint_opens_their_details(phone, inventory):
    phone.evaluate("window.scenicPatrol.playing = false")
    for kind, text in (("fire_hydrant", "消防栓水压"), ("lamp_pole", "路灯亮灯"), ("checkpoint", None)):
        a = inventory[inventory["type"] == kind].iloc[2]

        def aim_and_tap(attempt: int = 0):
            # deck.gl resets the view only when initialViewState differs from the last one it was given:
            # a retry aims a hair closer (1e-6 of a zoom level), so the view is set (and drawn) anew
            # the scene at the top of the screen (its column scrolls: a long list of cases below it
            # left it scrolled away, and a tap at the scene's coordinates hit the header)
            phone.evaluate("document.getElementById('twin-deck').scrollIntoView({block: 'start'})")
            before = phone.evaluate("""([lon, lat, zoom]) => { const t = window.scenicTwin; const f = t.frames;
                t.deck.setProps({initialViewState: {longitude: lon, latitude: lat, zoom, pitch: 0, bearing: 0}});
                return f; }""", [a.geometry.x, a.geometry.y, 21 + attempt * 1e-6])
            phone.wait_for_function(f"window.scenicTwin.frames > {before}", timeout=60_000)
            # and the view drawn is the one aimed (a frame drawn for a live update just before the
            # new view was applied also counts above): the asset projects to the middle of the scene
            phone.wait_for_function("""([lon, lat]) => { const vp = window.scenicTwin.deck.getViewports()[0];
                const [x, y] = vp.project([lon, lat]);
                return Math.abs(x - vp.width / 2) < 2 && Math.abs(y - vp.height / 2) < 2; }""",
                                    arg=[a.geometry.x, a.geometry.y], timeout=60_000)
            return _tap_world(phone, a.geometry.x, a.geometry.y, float(a.base_elevation_m) + 0.3)

        picked = aim_and_tap()
        for attempt in (1, 2):
            # Under a loaded CI machine Chromium once reported our 60 ms tap as held 1.6 s (the page
            # then rightly took it for a long press).  Only that case is tapped again, after going back
            # to the scene and aiming anew (the long press may have moved the view); a wrong pick or
            # no selection still fails below.
            last = phone.evaluate("(window.scenicTwin.taps || []).slice(-1)[0] || null")
            if not last or last["ms"] <= phone.evaluate("window.scenicTwin.tapMaxMs || 1500"):
                break
            phone.locator("#tab-roam").tap()
            picked = aim_and_tap(attempt)
        _wait_details(phone, a.name_zh, kind, picked)
        shown = phone.locator("#twin-details").inner_text()
        assert text is None or text in shown, f"{kind}: {shown!r}"
        assert phone.locator("#details-box").is_visible()
    assert phone.errors == []


def test_in_the_eye_view_furniture_stands_at_its_height_and_a_standing_lamp_pole_is_tapped(phone, inventory):
    """Seen along the route, lamp poles, hydrants and trees stand up (a lamp pole as tall as the
    inventory says); seen from above they are discs again; a tap on a standing pole opens it."""
    from dashboard.scene import furniture_rows
    rows = furniture_rows(inventory).reset_index(drop=True)
    phone.locator("#tab-roam").tap()
    phone.evaluate("window.scenicPatrol.playing = false")
    phone.evaluate("document.getElementById('twin-deck').scrollIntoView({block: 'start'})")  # (see above)
    phone.select_option("#roam-view", "above")
    phone.wait_for_function("document.querySelector('#twin-deck').dataset.standing === 'flat'", timeout=60_000)
    assert phone.evaluate("window.scenicTwin.deck.props.layers.some(l => l.id === 'furniture')")
    phone.select_option("#roam-view", "eye")
    phone.wait_for_function("document.querySelector('#twin-deck').dataset.standing === '3d'", timeout=60_000)
    phone.wait_for_function("window.scenicTwin.deck.props.layers.some(l => l.id === 'furniture-columns')",
                            timeout=30_000)
    got = phone.evaluate("""() => { const t = window.scenicTwin, L = {};
        for (const l of t.deck.props.layers) L[l.id] = l;
        const f = t.furn, types = f.header.types, vp = t.deck.getViewports()[0], o = t.spec.origin;
        const cols = L['furniture-columns'].props.data, crowns = L['furniture-crowns'].props.data;
        const lonlat = (i) => [o[0] + f.positions[3 * i] / (111320 * Math.cos(o[1] * Math.PI / 180)),
                               o[1] + f.positions[3 * i + 1] / 110574];
        // lamp poles whose mid-height shows on the screen (not under the details a previous tap
        // opened), nearest the middle first; the one tapped is the first that a tap there takes for
        // itself (another standing piece in front of a pole rightly wins the tap there)
        const deck = document.getElementById('twin-deck'), box = deck.getBoundingClientRect();
        const seen = [];
        for (const i of cols) {
            if (types[f.codes[i]] !== 'lamp_pole') continue;
            const [x, y] = vp.project([...lonlat(i), f.positions[3 * i + 2] - 0.3 + f.heights[i] / 2]);
            if (x < 20 || y < 20 || x > vp.width - 20 || y > vp.height - 20) continue;
            if (!deck.contains(document.elementFromPoint(box.left + x, box.top + y))) continue;
            seen.push({i, x, y, d: Math.hypot(x - vp.width / 2, y - vp.height / 2)});
        }
        seen.sort((a, b) => a.d - b.d);
        let best = null, picks = [];
        for (const c of seen.slice(0, 12)) {
            const p = t.pickAt(c.x, c.y);
            picks.push(p && [p.layer.id, p.object]);
            if (p && p.layer.id === 'furniture-columns' && p.object === c.i) { best = c; break; }
        }
        return {cols: cols.length, crowns: crowns.length, flat: L['furniture-flat'].props.data.length,
                colTypes: [...new Set(cols.map(i => types[f.codes[i]]))],
                crownTypes: [...new Set(crowns.map(i => types[f.codes[i]]))],
                flatTypes: [...new Set(L['furniture-flat'].props.data.map(i => types[f.codes[i]]))],
                lamps: seen.length, picks, pole: best && best.i, poleHeight: best && f.heights[best.i]}; }""")
    assert got["cols"] > 50 and got["crowns"] > 10, got
    assert {"lamp_pole", "street_tree"} <= set(got["colTypes"]) and got["crownTypes"] == ["street_tree"], got
    assert "manhole_cover" in got["flatTypes"] and not {"lamp_pole", "street_tree"} & set(got["flatTypes"]), got
    assert got["pole"] is not None, f"no lamp pole in the eye view is picked when tapped: {got}"
    lamp = rows.iloc[got["pole"]]
    assert lamp["type"] == "lamp_pole" and got["poleHeight"] == pytest.approx(lamp["height_m"]), (got, lamp)
    tapped = _tap_world(phone, lamp.geometry.x, lamp.geometry.y,
                        float(lamp.base_elevation_m) + float(lamp.height_m) / 2)
    _wait_details(phone, lamp.asset_id, "standing lamp pole", tapped)
    assert "路灯亮灯" in phone.locator("#twin-details").inner_text()
    assert phone.errors == []


def test_a_report_that_could_not_be_sent_waits_on_the_phone_and_goes_once_after_a_reload(phone, console):
    ops, _ = console
    # the send goes nowhere (as on a phone that lost its network), and the page is closed
    phone.evaluate("""() => { window.__sent = 0; const sp = window.dash_clientside.set_props;
        window.dash_clientside.set_props = (id, v) => { if (id === 'patrol-action') { window.__sent++; return; }
                                                        return sp(id, v); }; }""")
    phone.locator("#tab-report").tap()
    phone.fill("#report-note", "测试：离线时上报")
    phone.locator("#report-send").tap()
    phone.wait_for_function("window.__sent >= 1", timeout=30_000)
    waiting = phone.evaluate("window.scenicPatrol.queue.filter(a => a.kind === 'report')")
    assert len(waiting) == 1 and phone.locator("#report-queue").get_attribute("data-waiting") == "1"
    key = waiting[0]["key"]
    stored = phone.evaluate("JSON.parse(localStorage.getItem('st-patrol-queue'))")
    assert [a["key"] for a in stored if a["kind"] == "report"] == [key]
    # the officer opens the page again: what waited is sent, once
    phone.reload()
    phone.wait_for_function(f"window.scenicPatrol.results.some(r => r.key === '{key}' && r.ok)", timeout=90_000)
    case_id = f"manual:{key}"
    ops.wait_for_function(f"document.querySelectorAll('#ops-cases tr[data-case=\"{case_id}\"]').length === 1",
                          timeout=60_000)
    assert phone.evaluate("JSON.parse(localStorage.getItem('st-patrol-queue')).filter(a => a.kind === 'report')") == []
