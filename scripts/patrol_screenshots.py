"""Screenshots of the patrol phone for the README: the roaming patrol stopped at a checkpoint,
and the case inbox with a case the console dispatched to the phone's officer.

    python scripts/patrol_screenshots.py BASE_URL PATROL_USER PATROL_PASSWORD SUPERVISOR SUP_PASSWORD

PATROL_USER must be a staff number on duty in the positions feed (e.g. patrol-07).  Writes
docs/patrol-checkpoint.png and docs/patrol-cases.png (390x844, device scale 2).
"""
import sys
import time

from playwright.sync_api import sync_playwright

FLAGS = ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking",
         "--disable-component-update", "--disable-sync", "--enable-unsafe-swiftshader"]


def login(pg, base, path, user, password):
    pg.goto(base + path)
    pg.fill("input[name=username]", user)
    pg.fill("input[name=password]", password)
    pg.click("button[type=submit]")
    pg.wait_for_url(base + path, timeout=60_000)


def main() -> None:
    base, user, pw, sup, sup_pw = sys.argv[1:6]
    with sync_playwright() as p:
        b = p.chromium.launch(executable_path="/usr/bin/chromium", args=FLAGS, headless=True)
        phone = b.new_context(viewport={"width": 390, "height": 844}, has_touch=True, is_mobile=True,
                              device_scale_factor=2, bypass_csp=True).new_page()   # probes are eval'd strings
        login(phone, base, "/patrol", user, pw)
        phone.wait_for_function("window.scenicPatrol && window.scenicPatrol.live.checkpoints", timeout=120_000)
        # a report from the phone, dispatched back to it by the console
        phone.locator("#tab-report").tap()
        phone.select_option("#report-type", "street_vendor")
        phone.fill("#report-note", "江边步道有流动摊贩")
        phone.locator("#report-send").tap()
        phone.wait_for_function("window.scenicPatrol.results.some(r => r.kind === 'report' && r.ok)", timeout=60_000)
        case = phone.evaluate("window.scenicPatrol.results.filter(r => r.kind === 'report').pop().case")
        ops = b.new_page(viewport={"width": 1920, "height": 1080}, bypass_csp=True)
        login(ops, base, "/ops", sup, sup_pw)
        row = f'#ops-cases tr[data-case="{case}"]'
        ops.wait_for_selector(f"{row} select", timeout=120_000)
        ops.select_option(f"{row} select", user)
        ops.locator(f"{row} button.st-step-dispatch").click()
        # roam to the third checkpoint and stop there
        phone.locator("#tab-roam").tap()
        phone.evaluate("window.scenicPatrol.timeScale = 8")
        phone.locator("#roam-play").tap()
        phone.wait_for_function("window.scenicPatrol.visited.length >= 3 && window.scenicPatrol.stopLeft > 3",
                                timeout=120_000)
        phone.locator("#roam-play").tap()
        time.sleep(3)
        phone.screenshot(path="docs/patrol-checkpoint.png")
        phone.locator("#tab-mine").tap()
        phone.wait_for_selector(f'#my-cases li[data-case="{case}"]', timeout=60_000)
        time.sleep(1)
        phone.screenshot(path="docs/patrol-cases.png")
        b.close()


if __name__ == "__main__":
    main()
