"""Screenshot of the twin page for the README: python scripts/screenshot.py URL OUT.png"""
import sys

from playwright.sync_api import sync_playwright

FLAGS = ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking",
         "--disable-component-update", "--disable-sync", "--enable-unsafe-swiftshader"]

with sync_playwright() as p:
    b = p.chromium.launch(executable_path="/usr/bin/chromium", args=FLAGS, headless=True)
    pg = b.new_page(viewport={"width": 1600, "height": 900})
    pg.goto(sys.argv[1])
    pg.wait_for_function("Number(document.getElementById('twin-deck')?.dataset.frames || 0) >= 1", timeout=90000)
    pg.wait_for_function("document.querySelectorAll('#twin-legend li').length > 0", timeout=60000)
    before = pg.evaluate("window.scenicTwin.frames")
    pg.wait_for_function(f"window.scenicTwin.frames > {before} || true")
    pg.screenshot(path=sys.argv[2])
    b.close()
