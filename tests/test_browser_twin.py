"""The twin page in a real headless Chromium: it draws, it answers clicks, it stays clean."""
from __future__ import annotations

import json

import numpy as np

from dashboard.scene import furniture_rows

from conftest import login

import pytest

pytestmark = pytest.mark.browser

FRAMES = "Number(document.getElementById('twin-deck')?.dataset.frames || 0)"


def open_twin(page, server):
    login(page, server, "/wall")
    page.wait_for_function(f"{FRAMES} >= 1", timeout=90_000)
    # the page shell comes from a server callback: once the panels are there, callbacks round-trip
    page.wait_for_function("document.querySelectorAll('#kpi-panel .st-kpi-tile').length > 0", timeout=90_000)
    page.evaluate("window.scenicTwin.tourPause && window.scenicTwin.tourPause()")   # as a touch would


def clear_spot_in_a_zone(inventory):
    """A management zone and a point inside it at least 12 m from any street furniture or place."""
    from shapely.geometry import Point
    zones = inventory[inventory["type"] == "management_zone"]
    points = inventory[inventory.geometry.geom_type == "Point"]
    xy = np.c_[points.geometry.x.to_numpy(), points.geometry.y.to_numpy()]
    for _, z in zones.iterrows():
        x0, y0, x1, y1 = z.geometry.bounds
        for fx in np.linspace(0.2, 0.8, 7):
            for fy in np.linspace(0.2, 0.8, 7):
                lon, lat = x0 + fx * (x1 - x0), y0 + fy * (y1 - y0)
                here = Point(lon, lat)
                if not z.geometry.contains(here) or any(
                        o.distance(here) * 1e5 < 10 for zid, o in zip(zones.zone_id, zones.geometry)
                        if zid != z.zone_id):
                    continue           # 10 m clear of every other zone (a concourse lies beside the plaza)
                d = np.hypot((xy[:, 0] - lon) * 102_000, (xy[:, 1] - lat) * 111_000).min()
                if d > 12:
                    return z, (lon, lat)
    raise AssertionError("no zone has a spot 12 m clear of furniture")


def click_world(page, lon, lat, z=0.0):
    """Click the screen point where deck.gl draws (lon, lat, z)."""
    x, y, *_ = page.evaluate("([lon, lat, z]) => window.scenicTwin.deck.getViewports()[0].project([lon, lat, z])",
                         [lon, lat, z])
    box = page.locator("#twin-deck canvas").bounding_box()
    # as a user does: move onto the asset (deck.gl hover-picks it), then click
    page.mouse.move(box["x"] + x, box["y"] + y)
    top = page.evaluate("([x, y]) => { const i = window.scenicTwin.deck.pickObject({x, y});"
                        " return i && [i.layer.id, i.index]; }", [x, y])
    page.mouse.click(box["x"] + x, box["y"] + y)
    return top


def fly_to(page, lon, lat, zoom, pitch=0):
    before = page.evaluate("""([lon, lat, zoom, pitch]) => {
        const t = window.scenicTwin;
        const before = t.frames;
        t.deck.setProps({initialViewState: {longitude: lon, latitude: lat, zoom, pitch, bearing: 0}});
        return before; }""", [lon, lat, zoom, pitch])
    page.wait_for_function(f"window.scenicTwin.frames > {before}", timeout=60_000)


def test_twin_draws_and_shows_details_of_a_clicked_asset(server, page, inventory):
    open_twin(page, server)
    assert page.locator("#twin-deck").get_attribute("data-assets") == str(len(furniture_rows(inventory)))
    assert "广州塔景区" in page.locator("#app-title").inner_text()

    # the tower: a big, unmistakable target
    fly_to(page, 113.31914, 23.10899, 17.5, pitch=0)
    click_world(page, 113.31914 + 0.00018, 23.10899, 0)   # on the base ellipse's lattice
    page.wait_for_function("window.scenicTwin.selections.length === 1", timeout=30_000)
    page.wait_for_function("document.querySelector('#twin-details table') !== null", timeout=30_000)
    text = page.locator("#twin-details").inner_text()
    assert "广州塔" in text or "Canton Tower" in text or "塔基广场" in text

    # street furniture from the binary layer: the click's index maps back to the asset on the
    # server, and the hydrant or lamp wins over the tree canopy or grate drawn around it
    for kind, name in (("fire_hydrant", "消防栓水压"), ("lamp_pole", "路灯亮灯")):
        asset = inventory[inventory["type"] == kind].iloc[10]
        fly_to(page, asset.geometry.x, asset.geometry.y, 21, pitch=0)
        before = page.evaluate("window.scenicTwin.selections.length")
        top = click_world(page, asset.geometry.x, asset.geometry.y, float(asset.base_elevation_m) + 0.3)
        page.wait_for_function(f"window.scenicTwin.selections.length > {before}", timeout=30_000)
        page.wait_for_function(f"document.querySelector('#twin-details').innerText.includes('{asset.asset_id}')",
                               timeout=30_000)
        text = page.locator("#twin-details").inner_text()
        assert name in text, f"{kind}: no live value named {name} in {text!r} (deck's top pick was {top})"

    # a checkpoint of the patrol route
    cp = inventory[inventory["type"] == "checkpoint"].iloc[2]
    fly_to(page, cp.geometry.x, cp.geometry.y, 20, pitch=0)
    click_world(page, cp.geometry.x, cp.geometry.y, float(cp.base_elevation_m) + 0.5)
    page.wait_for_function(f"document.querySelector('#twin-details').innerText.includes('{cp.name_zh}')",
                           timeout=30_000)

    # a zone, clicked where no street furniture stands: its live load
    zone, (lon, lat) = clear_spot_in_a_zone(inventory)
    fly_to(page, lon, lat, 19, pitch=0)
    click_world(page, lon, lat, 0)
    page.wait_for_function(f"document.querySelector('#twin-details').innerText.includes('{zone.name_zh}')",
                           timeout=30_000)
    assert "客流承载率" in page.locator("#twin-details").inner_text()

    # English switch: the same panel in English
    page.get_by_text("English").click()
    page.wait_for_function(f"document.querySelector('#twin-details').innerText.includes({zone.name_en!r})",
                           timeout=30_000)
    assert "Load rate" in page.locator("#twin-details").inner_text() or "load" in page.locator(
        "#twin-details").inner_text().lower()
    assert "Digital Twin" in page.locator("#app-title").inner_text()
    assert page.log.errors() == []


def test_first_frame_within_the_byte_budget_and_offline(server, page):
    requests = []
    page.on("request", lambda r: requests.append(r.url))
    open_twin(page, server)
    total = page.evaluate("""() => {
        const nav = performance.getEntriesByType('navigation')[0];
        let sum = nav ? nav.transferSize : 0;
        for (const r of performance.getEntriesByType('resource')) sum += r.transferSize;
        return sum; }""")
    print(f"\nbytes to first frame: {total} ({total / 1e6:.3f} MB)")
    assert all(u.startswith(server) for u in requests), [u for u in requests if not u.startswith(server)]
    assert 0 < total <= 1_000_000      # the goal: the full inventory in under 1 MB
    assert page.log.errors() == []
