"""`scenic-twin run` end to end: simulator -> engine -> push -> the twin page changes by itself."""
from __future__ import annotations

import pytest

pytestmark = pytest.mark.browser

ZONES = "Array.from(document.querySelectorAll('#zone-list [data-zone]')).map(e => e.innerText).join('|')"


def test_zone_values_change_live_without_reload_or_polling(server, page):
    posts = []
    page.on("request", lambda r: posts.append(r.url) if r.method == "POST" else None)
    page.goto(server + "/")
    page.wait_for_function("Number(document.getElementById('twin-deck')?.dataset.frames || 0) >= 1", timeout=90_000)
    page.evaluate("window.__navigations = performance.getEntriesByType('navigation').length")
    page.wait_for_function("document.querySelectorAll('#zone-list [data-zone]').length >= 10", timeout=120_000)
    first_asof = page.locator("#kpi-asof").inner_text()
    first = page.evaluate(ZONES)
    # the simulator runs at 120x: a simulated minute every half second of wall time
    page.wait_for_function(f"{ZONES} !== {first!r}", timeout=120_000)
    page.wait_for_function(f"document.querySelector('#kpi-asof').innerText !== {first_asof!r}", timeout=60_000)
    assert page.evaluate("Number(document.getElementById('twin-deck').dataset.liveVersion || 0)") >= 1
    assert page.evaluate("performance.getEntriesByType('navigation').length") == page.evaluate("window.__navigations")
    assert posts == [], f"the page polled over HTTP: {posts[:3]}"
    assert page.log.errors() == []
