"""Live state reaches the page by server push over Dash's WebSocket: no reload, no polling."""
from __future__ import annotations

import threading

import pytest
import uvicorn

from dashboard.app import TwinData, create_app
from dashboard.live import LiveHub
from dashboard.scene import TIER_COLOURS

from conftest import free_port, wait_http

pytestmark = pytest.mark.browser


@pytest.fixture(scope="module")
def pushed(inventory):
    hub = LiveHub()
    app = create_app(TwinData(inventory), hub)
    port = free_port()
    server = uvicorn.Server(uvicorn.Config(app.server, host="127.0.0.1", port=port, log_level="warning"))
    t = threading.Thread(target=server.run, daemon=True)
    t.start()

    class _P:  # what wait_http needs of a process
        def poll(self):
            return None if t.is_alive() else 1
    wait_http(f"http://127.0.0.1:{port}/healthz", _P())
    yield f"http://127.0.0.1:{port}", hub
    server.should_exit = True
    t.join(10)


def zone(load, tier):
    return {"load": load, "tier": tier, "color": list(TIER_COLOURS[tier]), "quality": "ok"}


def test_pushed_zone_state_recolours_the_twin_without_polling(pushed, page):
    base, hub = pushed
    posts = []
    page.on("request", lambda r: posts.append(r.url) if r.method == "POST" else None)
    page.goto(base + "/")
    page.wait_for_function("Number(document.getElementById('twin-deck')?.dataset.frames || 0) >= 1", timeout=90_000)
    page.wait_for_function("document.querySelectorAll('#twin-legend li').length > 0", timeout=60_000)

    hub.publish({"as_of": "2026-10-01 14:00", "present": 23_456, "core_load": 71.0, "alerts": 0,
                 "zones": {"west_plaza": zone(71.0, "none")}})
    page.wait_for_function("document.querySelector('#zone-list [data-zone=west_plaza]') !== null", timeout=30_000)
    assert "71%" in page.locator("#zone-list [data-zone=west_plaza]").inner_text()
    assert page.locator("#kpi-present").inner_text() == "23,456"
    first = int(page.locator("#twin-deck").get_attribute("data-live-version"))

    hub.publish({"as_of": "2026-10-01 14:01", "zones": {"west_plaza": zone(93.0, "orange")}})
    page.wait_for_function("document.querySelector('#zone-list [data-zone=west_plaza]').innerText.includes('93%')",
                           timeout=30_000)
    assert "st-tier-orange" in page.locator("#zone-list [data-zone=west_plaza]").get_attribute("class")
    page.wait_for_function(f"Number(document.getElementById('twin-deck').dataset.liveVersion) > {first}")
    colour = page.evaluate("""() => {
        const z = window.scenicTwin.staticLayers.find(l => l.id === 'zones');
        return z.props.data.find(o => o.zone_id === 'west_plaza').color; }""")
    assert colour == list(TIER_COLOURS["orange"])
    assert page.locator("#kpi-asof").inner_text() == "2026-10-01 14:01"
    assert posts == [], f"the page polled over HTTP: {posts[:3]}"
    assert page.log.errors() == []
