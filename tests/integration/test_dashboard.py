"""The operator dashboard in a real browser: headless Chromium, driven through Selenium and
Debian's chromedriver, against a real master with its admin process, real upstreams and
real traffic over loopback.

What is checked is what an operator sees: the page without the token shows the login
prompt and no data; signed in, every worker pid ``dakia-master status`` lists is on the
page, traffic moves the counts, a route named with HTML shows as text, and a rollback
made with the page's buttons changes the version ``status`` reports. A screenshot taken
under load is written to ``DAKIA_DASHBOARD_SCREENSHOT`` (or the test's temporary
directory); the README's picture is one of them.
"""
from __future__ import annotations

import http.client
import json
import os
import shutil
import threading
import time
from collections.abc import Iterator
from typing import Any

import pytest
from selenium import webdriver
from selenium.common.exceptions import StaleElementReferenceException
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.common.by import By
from selenium.webdriver.remote.webdriver import WebDriver

from .harness import Gateway, free_port, node, wait_until
from .test_admin import TOKEN, Admin, token_file  # noqa: F401 - token_file is a fixture
from .test_fleet import KEY, etcd, fleet, shared_document  # noqa: F401 - etcd, fleet too

HOSTILE = '<img src=x onerror="window.__dashboardInjected=1"><script>x</script>'
"""A name that would run code if the page ever wrote it as HTML. Router names are
restricted to ``[A-Za-z0-9_.-]``; upstream (and gateway) names are free text, so the
upstream of the route ``hostile`` carries it, and so do the route's rows."""
PAGE_TIMEOUT = 20.0


@pytest.fixture
def browser(tmp_path) -> Iterator[WebDriver]:
    chromium = shutil.which("chromium")
    driver_path = shutil.which("chromedriver")
    assert chromium and driver_path, (
        "the dashboard tests need Debian's chromium and chromium-driver packages "
        "(apt-get install chromium chromium-driver; .ci/run installs them)")
    options = webdriver.ChromeOptions()
    options.binary_location = chromium
    # As root in a container: no sandbox, and no background traffic to Google's hosts,
    # which this machine's closed network refuses.
    for flag in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-quic",
                 "--no-first-run", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync", "--disable-dev-shm-usage",
                 "--window-size=1500,1300", f"--user-data-dir={tmp_path / 'chromium'}"):
        options.add_argument(flag)
    driver = webdriver.Chrome(service=Service(driver_path), options=options)
    driver.set_page_load_timeout(PAGE_TIMEOUT)
    try:
        yield driver
    finally:
        driver.quit()


def _dashboard_gateway(gateways, upstreams, token_file: str, *,
                       gateway: dict[str, Any] | None = None) -> tuple[Gateway, Admin]:
    app = upstreams(name="app")
    other = upstreams(name="other")
    specs = [{"name": "app", "default": True, "upstream_nodes": [node(app.port)],
              "health_check": {"path": "/", "interval": 1, "healthy_threshold": 1}},
             {"name": HOSTILE, "upstream_nodes": [node(other.port)]}]
    admin_port = free_port()
    routes = gateway or {
        "filters": [{"name": "hostile", "path": {"$starts_with": "/hostile"}},
                    {"name": "limited", "path": {"$starts_with": "/limited"}}],
        "routers": [{"name": "api", "upstream": "app", "filter": "limited"},
                    {"name": "hostile", "upstream": HOSTILE, "filter": "hostile"},
                    {"name": "default", "upstream": "app"}],
        "interceptors": [{"name": "rate_limiter", "filter": "limited",
                          "config": {"capacity": 5, "refill_rate": 1,
                                     "refill_interval": 60000}}]}
    gw = gateways(specs, workers=2, gateway=routes,
                  extra={"admin": {"listen": f"127.0.0.1:{admin_port}",
                                   "token_file": token_file}})
    admin = Admin(admin_port)
    wait_until(lambda: admin.request("GET", "/ready", auth=False)[0] == 200, 15,
               "the gateway to be ready")
    return gw, admin


def _get(port: int, path: str) -> int:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    try:
        conn.request("GET", path)
        response = conn.getresponse()
        response.read()
        return response.status
    finally:
        conn.close()


def _status_json(gw: Gateway) -> dict[str, Any]:
    done = gw.cli("status", "--json")
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout)


def _sign_in(driver: WebDriver, url: str, token: str = TOKEN) -> None:
    driver.get(url)
    _wait_visible(driver, "login")
    field = driver.find_element(By.ID, "token")
    field.send_keys(token)
    driver.find_element(By.CSS_SELECTOR, "#login-form button[type=submit]").click()


def _wait_visible(driver: WebDriver, element_id: str) -> None:
    wait_until(lambda: driver.find_element(By.ID, element_id).is_displayed(), PAGE_TIMEOUT,
               f"#{element_id} to be shown")


def _texts(driver: WebDriver, selector: str) -> list[str]:
    try:
        return [e.text for e in driver.find_elements(By.CSS_SELECTOR, selector)]
    except StaleElementReferenceException:       # redrawn between find and read
        return []


def _total_requests(driver: WebDriver) -> int:
    texts = _texts(driver, "#total-requests")
    return int(texts[0]) if texts and texts[0].isdigit() else -1


def test_without_the_token_the_page_shows_the_login_prompt_and_no_data(
        gateways, upstreams, token_file, browser):
    gw, admin = _dashboard_gateway(gateways, upstreams, token_file)
    status, headers, page = admin.request("GET", "/", auth=False)
    assert status == 200 and headers["content-type"].startswith("text/html")
    policy = headers["content-security-policy"]
    assert "frame-ancestors 'none'" in policy and "script-src 'self'" in policy
    assert "unsafe-inline" not in policy and headers["x-frame-options"] == "DENY"
    assert b"<script src=\"dashboard.js\"" in page and b"http" not in page.split(b"</head>")[0]
    # The data needs the token, whatever the page does.
    assert admin.request("GET", "/status", auth=False)[0] == 401

    browser.get(f"http://127.0.0.1:{admin.port}/")
    _wait_visible(browser, "login")
    assert not browser.find_element(By.ID, "data").is_displayed()
    assert _texts(browser, "td.pid") == [] and _texts(browser, "#total-requests") == []
    _sign_in(browser, f"http://127.0.0.1:{admin.port}/", token="not-the-token")
    wait_until(lambda: "refused" in browser.find_element(By.ID, "login-error").text,
               PAGE_TIMEOUT, "the wrong token to be refused")
    assert not browser.find_element(By.ID, "data").is_displayed()
    assert _texts(browser, "td.pid") == []
    # The token is nowhere in the address, and the one kept is gone once refused.
    assert "token" not in browser.current_url
    assert browser.execute_script("return sessionStorage.length") == 0


def test_workers_traffic_and_a_hostile_route_name_as_an_operator_sees_them(
        gateways, upstreams, token_file, browser, tmp_path):
    gw, admin = _dashboard_gateway(gateways, upstreams, token_file)
    _sign_in(browser, f"http://127.0.0.1:{admin.port}/")
    _wait_visible(browser, "data")
    assert browser.execute_script("return sessionStorage.getItem('dakia.admin.token')") == TOKEN

    # Every worker pid that `dakia-master status` lists, and the master's.
    report = _status_json(gw)
    pids = {str(w["pid"]) for w in report["workers"]} | {str(report["master"]["pid"])}
    assert len(pids) == 3
    wait_until(lambda: pids <= set(_texts(browser, "#processes td.pid")), PAGE_TIMEOUT,
               f"the pids {sorted(pids)} on the page")
    # The health checker and the admin process are there too.
    helpers = {h["role"]: str(h["pid"]) for h in report["helpers"]}
    assert set(helpers) == {"health_checker", "admin"}, report["helpers"]
    assert set(helpers.values()) <= set(_texts(browser, "#processes td.pid"))

    # Traffic moves the counts.
    wait_until(lambda: _total_requests(browser) >= 0, PAGE_TIMEOUT, "the request count")
    before = _total_requests(browser)
    for _ in range(30):
        assert _get(gw.port, "/hostile/x") == 200
    wait_until(lambda: _total_requests(browser) >= before + 30, PAGE_TIMEOUT,
               "the request count to move by 30")
    # The upstream named with HTML is a cell that reads the name, as text: nothing ran.
    wait_until(lambda: "hostile" in _texts(browser, "#routes td.route"), PAGE_TIMEOUT,
               "the route to the upstream named with HTML to be listed")
    wait_until(lambda: HOSTILE in _texts(browser, "#nodes td.upstream"), PAGE_TIMEOUT,
               "the upstream named with HTML to be listed")
    assert browser.execute_script("return window.__dashboardInjected") is None
    assert browser.find_elements(By.CSS_SELECTOR, "main img, main script") == []

    # Rate limiting shows as rejections: 5 pass, the rest are refused.
    codes = [_get(gw.port, "/limited/x") for _ in range(12)]
    assert codes.count(429) == 7, codes
    wait_until(lambda: "7" in _texts(browser, "#limiters td.num"), PAGE_TIMEOUT,
               "7 rejections on the page")
    wait_until(lambda: "healthy" in _texts(browser, "#nodes td"), PAGE_TIMEOUT,
               "the checked node to show healthy")

    # Under load for a few polls, so that the charts have lines; then the screenshot.
    stop = threading.Event()

    def load() -> None:
        while not stop.is_set():
            for path in ("/", "/hostile/a", "/limited/b", "/nowhere"):
                try:
                    _get(gw.port, path)
                except OSError:
                    pass

    threads = [threading.Thread(target=load, daemon=True) for _ in range(4)]
    for thread in threads:
        thread.start()
    try:
        start = _total_requests(browser)
        wait_until(lambda: _total_requests(browser) > start + 200, 30, "load to show")
        wait_until(lambda: len(browser.find_elements(By.CSS_SELECTOR,
                                                     "#routes svg polyline")) >= 4,
                   PAGE_TIMEOUT, "the traffic charts to be drawn")
        time.sleep(4.5)                  # two more polls: the lines have several points
        shot = os.environ.get("DAKIA_DASHBOARD_SCREENSHOT") or str(tmp_path / "dashboard.png")
        # The whole page, not the window's first screen: a viewport as tall as it.
        height = browser.execute_script("return document.documentElement.scrollHeight")
        browser.execute_cdp_cmd("Emulation.setDeviceMetricsOverride", {
            "width": 1500, "height": int(height), "deviceScaleFactor": 1, "mobile": False})
        assert browser.save_screenshot(shot)
    finally:
        stop.set()
        for thread in threads:
            thread.join(10)
    with open(shot, "rb") as f:
        assert f.read(8) == b"\x89PNG\r\n\x1a\n"
    assert os.path.getsize(shot) > 20_000


def test_a_rollback_made_with_the_page_changes_the_version_status_reports(
        gateways, upstreams, token_file, browser):
    gw, admin = _dashboard_gateway(gateways, upstreams, token_file)
    document, version = admin.config()
    assert version == 1
    document["gateways"][0]["routers"][-1]["upstream"] = "hostile-free"
    document["gateways"][0]["upstreams"][1]["name"] = "hostile-free"
    document["gateways"][0]["routers"][1]["upstream"] = "hostile-free"
    status, _, answer = admin.json("PUT", "/config", document)
    assert status == 200 and answer["version"] == 2, answer
    wait_until(lambda: _status_json(gw)["master"]["config_version"] == 2, 10, "v2")

    _sign_in(browser, f"http://127.0.0.1:{admin.port}/")
    _wait_visible(browser, "data")
    # A readable diff of v1 to v2: the one line that changed.
    wait_until(lambda: len(browser.find_elements(By.CSS_SELECTOR, "#diff-from option")) == 2,
               PAGE_TIMEOUT, "both versions to be listed")
    browser.find_element(By.ID, "show-diff").click()
    wait_until(lambda: browser.find_element(By.ID, "diff").is_displayed(), PAGE_TIMEOUT,
               "the diff")
    deleted, added = _texts(browser, "#diff .del"), _texts(browser, "#diff .add")
    assert "-    upstream: app" in deleted and "+    upstream: hostile-free" in added
    assert len(deleted) == len(added) == 3, (deleted, added)

    button = browser.find_element(By.CSS_SELECTOR, "#versions tr[data-version='1'] button")
    button.click()                                   # asks to confirm first
    assert "Confirm" in button.text
    assert _status_json(gw)["master"]["config_version"] == 2
    button.click()
    wait_until(lambda: _status_json(gw)["master"]["config_version"] == 3, 15,
               "the rollback to publish v3")
    wait_until(lambda: "Published v3 (was v2)." in
               browser.find_element(By.ID, "action-result").text, PAGE_TIMEOUT,
               "the page to say what the rollback did")
    assert admin.config()[0]["gateways"][0]["routers"][-1]["upstream"] == "app"
    assert "POST /config/rollback/1: v2 -> v3" in gw.log_text()


def test_the_controller_serves_the_dashboard_on_a_gateway_route(
        gateways, upstreams, token_file, browser):
    routes = {"filters": [{"name": "controller", "path": {"$starts_with": "/controller"}}],
              "interceptors": [{"name": "controller", "filter": "controller",
                                "config": {"strip_prefix": "/controller"}}]}
    gw, _admin = _dashboard_gateway(gateways, upstreams, token_file, gateway=routes)
    # /controller/dashboard -> the admin API's /dashboard, which adds the slash.
    conn = http.client.HTTPConnection("127.0.0.1", gw.port, timeout=10)
    try:
        conn.request("GET", "/controller/dashboard")
        response = conn.getresponse()
        response.read()
        assert response.status == 301 and response.getheader("location") == "dashboard/"
    finally:
        conn.close()
    _sign_in(browser, f"{gw.url}/controller/dashboard")
    _wait_visible(browser, "data")
    assert browser.current_url == f"{gw.url}/controller/dashboard/"
    pids = {str(w["pid"]) for w in _status_json(gw)["workers"]}
    wait_until(lambda: pids <= set(_texts(browser, "#processes td.pid")), PAGE_TIMEOUT,
               "the workers on the page served through the gateway")
    # Its API calls went through the gateway too, the token in a header, in no log.
    with open(gw.config["access_log"]) as f:
        access = f.read()
    assert "/controller/status" in access and "/controller/metrics" in access
    assert TOKEN not in access and TOKEN not in gw.log_text()


def test_a_fleet_node_shows_the_revision_every_node_serves(fleet, etcd, upstreams,
                                                            browser):
    app, other = upstreams(name="one"), upstreams(name="two")
    port = free_port()
    a, b = fleet(shared_document(port, app))
    # Loopback admin listeners without a token: the page needs no sign-in.
    browser.get(f"http://{a.host}:{a.admin_port}/")
    _wait_visible(browser, "fleet")

    def rows() -> list[list[str]]:
        try:
            return [[td.text for td in tr.find_elements(By.TAG_NAME, "td")]
                    for tr in browser.find_elements(By.CSS_SELECTOR, "#fleet-nodes tbody tr")]
        except StaleElementReferenceException:
            return []

    revision = etcd.get(KEY)[1]
    wait_until(lambda: sorted((r[2], r[5]) for r in rows() if len(r) == 8) == sorted(
        (str(made.master_pid), str(revision)) for made in (a, b)), PAGE_TIMEOUT,
        "both nodes and their revision on node A's page")
    assert [r[0] for r in rows() if r[0].endswith("(this node)")] == [
        f"{os.uname().nodename}-{a.master_pid} (this node)"]
    status, _headers, body = b.admin("PUT", "/config", shared_document(port, other))
    assert status == 200, body
    wait_until(lambda: {r[5] for r in rows() if len(r) == 8} == {str(body["etcd_revision"])},
               PAGE_TIMEOUT, "both nodes on the new revision")
    assert f"serves etcd revision {body['etcd_revision']} of key {KEY}" in \
        browser.find_element(By.ID, "fleet-summary").text
