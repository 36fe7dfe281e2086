"""Screenshots of the pages for the README, as a logged-in user sees them.

    python scripts/screenshot.py BASE_URL USER PASSWORD PATH WIDTHxHEIGHT OUT.png [--lang en] [--wait S]

e.g. `python scripts/screenshot.py http://127.0.0.1:8050 wall1 '…' /wall 3840x2160 docs/wall-4k.png`
"""
import argparse

from playwright.sync_api import sync_playwright

FLAGS = ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking",
         "--disable-component-update", "--disable-sync", "--enable-unsafe-swiftshader"]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("base"), ap.add_argument("user"), ap.add_argument("password"), ap.add_argument("path")
    ap.add_argument("size", help="WIDTHxHEIGHT, e.g. 3840x2160")
    ap.add_argument("out")
    ap.add_argument("--lang", choices=("zh", "en"), default="zh")
    ap.add_argument("--wait", type=float, default=20.0, help="seconds to let live data arrive after the first frame")
    a = ap.parse_args()
    w, h = (int(x) for x in a.size.lower().split("x"))
    with sync_playwright() as p:
        b = p.chromium.launch(executable_path="/usr/bin/chromium", args=FLAGS, headless=True)
        pg = b.new_page(viewport={"width": w, "height": h}, bypass_csp=True)   # its probes are eval'd strings
        pg.goto(a.base + a.path)
        pg.fill("input[name=username]", a.user)
        pg.fill("input[name=password]", a.password)
        pg.click("button[type=submit]")
        pg.wait_for_url(a.base + a.path, timeout=60_000)
        if a.path == "/wall":
            pg.wait_for_function("Number(document.getElementById('twin-deck')?.dataset.frames || 0) >= 1",
                                 timeout=120_000)
        pg.wait_for_function("document.querySelector('#kpi-panel .st-kpi-tile, #ops-alerts tr') !== null",
                             timeout=120_000)
        if a.lang == "en":
            pg.get_by_text("English").click()
        pg.wait_for_timeout(a.wait * 1000)
        pg.screenshot(path=a.out)
        b.close()


if __name__ == "__main__":
    main()
