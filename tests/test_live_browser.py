"""The research screen in a real browser (Debian's chromium through /usr/bin/chromedriver, headless): a demo
recording that goes hypotensive shows its bed's alarm within 2 s of the server raising it, a bed whose stream
stops is shown stale, and every screen says it is research software, not a medical device.

Skipped, with the reason, where chromium or chromedriver is missing, unless ``HYPO_REQUIRE_BROWSER=1`` (CI), which
makes a missing browser a failure. ``HYPO_SCREENSHOTS=DIR`` keeps the screenshots (the docs' image comes from it).
"""

import os
import shutil
import threading
import time

import pytest

from live_helpers import demo_recording, events, start_server, stream, tracker_model

DRIVER, CHROMIUM = "/usr/bin/chromedriver", "/usr/bin/chromium"
pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def browser():
    missing = [p for p in (DRIVER, CHROMIUM) if not os.path.exists(p)]
    try:
        from selenium import webdriver
        from selenium.webdriver.chrome.options import Options
        from selenium.webdriver.chrome.service import Service
    except ImportError:
        missing.append("selenium (pip)")
    if missing:
        why = (f"no browser to drive: {', '.join(missing)} missing (apt-get install chromium chromium-driver; "
               "pip install selenium)")
        if os.environ.get("HYPO_REQUIRE_BROWSER") == "1":
            pytest.fail(why + ", and HYPO_REQUIRE_BROWSER=1 requires it", pytrace=False)
        pytest.skip(why)
    opts = Options()
    opts.binary_location = CHROMIUM
    for arg in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--window-size=1280,760",
                "--disable-gpu", "--no-first-run", "--disable-extensions"):
        opts.add_argument(arg)
    driver = webdriver.Chrome(service=Service(DRIVER), options=opts)  # no Selenium Manager: the system driver
    yield driver
    driver.quit()


def shot(driver, tmp_path, name):
    path = tmp_path / name
    driver.save_screenshot(str(path))
    keep = os.environ.get("HYPO_SCREENSHOTS")
    if keep:
        os.makedirs(keep, exist_ok=True)
        shutil.copy(path, os.path.join(keep, name))
    return path


def test_the_page_shows_an_alarm_within_2_s_and_a_silent_bed_as_stale(browser, tmp_path):
    from selenium.webdriver.common.by import By

    model = tracker_model(tmp_path)  # p(hypotension) follows the last cuff MAP: the alarm path, deterministic
    hypo_rec = demo_recording(tmp_path / "case2.vital", cid=2, seconds=1000)  # MAP below 65 at 641 s
    quiet_rec = demo_recording(tmp_path / "case5.vital", cid=5, seconds=1000)
    srv = start_server(model, tmp_path / "log", stale_after_s=3.0)
    try:
        browser.get(srv.url + "/")
        assert "not a medical device" in browser.find_element(By.CSS_SELECTOR, ".notice").text
        shown: dict = {}

        def feed():
            quiet = threading.Thread(target=stream, args=(quiet_rec, srv.url, "OR-5"),
                                     kwargs={"speed": 100, "first_s": 300, "stop_s": 600})
            quiet.start()
            stream(hypo_rec, srv.url, "OR-2", speed=20, first_s=420, stop_s=1000)
            quiet.join()

        feeder = threading.Thread(target=feed)
        feeder.start()
        t0 = time.monotonic()
        alarm, stale = 'tr[data-room="OR-2"][data-alarm="on"]', 'tr[data-room="OR-5"][data-stale="yes"]'
        while time.monotonic() - t0 < 120 and not ("alarm" in shown and "stale" in shown):
            if "alarm" not in shown and browser.find_elements(By.CSS_SELECTOR, alarm):
                shown["alarm"] = time.time()
                shot(browser, tmp_path, "live-overview.png")
            if "stale" not in shown and browser.find_elements(By.CSS_SELECTOR, stale):
                shown["stale"] = time.time()
            time.sleep(0.05)
        feeder.join(120)
        assert "alarm" in shown and "stale" in shown, shown
        ev = events(srv, "OR-2")
        raised = ev[ev["kind"] == "alarm_on"]["logged_at"].min()
        assert raised <= shown["alarm"] + 0.1 and shown["alarm"] - raised < 2.0, (shown["alarm"] - raised)
        five = events(srv, "OR-5")
        assert shown["stale"] > five["logged_at"].max() + 2.0  # stale once its stream had stopped, not before
        row = browser.find_element(By.CSS_SELECTOR, 'tr[data-room="OR-5"]')
        assert "STALE" in row.text
        shot(browser, tmp_path, "live-overview-stale.png")

        browser.get(srv.url + "/bed/OR-2")
        t0 = time.monotonic()
        while time.monotonic() - t0 < 20 and not browser.find_elements(By.CSS_SELECTOR, "#risk path[d^='M']"):
            time.sleep(0.1)
        assert browser.find_elements(By.CSS_SELECTOR, "#risk path[d^='M']")  # the risk line is drawn
        assert browser.find_elements(By.CSS_SELECTOR, "#bp circle")  # cuff readings
        assert "not a medical device" in browser.find_element(By.CSS_SELECTOR, ".notice").text
        assert browser.find_element(By.ID, "room").text == "OR-2"
        time.sleep(0.5)
        shot(browser, tmp_path, "live-bed.png")
    finally:
        srv.stop()
