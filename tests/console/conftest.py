"""Fixtures of the console's browser tests: real `quiver serve` processes (started by
clients/testing), one headless Chromium driven by Selenium for the whole run, the
console's address, small API helpers, and the check that no test leaves an error in the
browser's console.

Run with ``scripts/clients/run -m pytest tests/console`` (``scripts/console/browser``
installs Chromium and its driver when they are missing). Environment:

``QUIVER_BIN``
    the server binary (default: the release build of this checkout).
``QUIVER_CONSOLE_ORIGIN``
    serve the page from another origin that proxies to the server, for developing the
    page without rebuilding the binary. The page is then opened as
    ``ORIGIN/console?upstream=SERVER_URL#...``, so the origin knows which test server
    to forward the API calls to. Unset (CI), the page is the server's own ``/console``.
``QUIVER_CONSOLE_SCREENSHOTS``
    folder for the pages' screenshots (default ``docs/console``).
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path

import pytest
from selenium import webdriver
from selenium.common.exceptions import StaleElementReferenceException, TimeoutException
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.common.by import By
from selenium.webdriver.support.ui import WebDriverWait

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO / "clients" / "testing"))

from quiver_testing import start_server  # noqa: E402

WAIT_S = 20
ORIGIN = os.environ.get("QUIVER_CONSOLE_ORIGIN", "").rstrip("/")
SHOTS = Path(os.environ.get("QUIVER_CONSOLE_SCREENSHOTS") or REPO / "docs" / "console")


def chromedriver_path() -> str:
    out = subprocess.run([str(REPO / "scripts" / "console" / "browser")], check=True,
                         stdout=subprocess.PIPE, text=True).stdout
    return out.strip().splitlines()[-1]


@pytest.fixture(scope="session")
def driver(tmp_path_factory):
    opts = webdriver.ChromeOptions()
    for arg in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage",
                "--window-size=1400,1000", "--hide-scrollbars", "--force-color-profile=srgb",
                "--lang=en-US"):
        opts.add_argument(arg)
    chromium = shutil.which("chromium") or shutil.which("chromium-browser")
    if chromium:
        opts.binary_location = chromium
    # Without it chromedriver keeps no browser console log for get_log("browser").
    opts.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    d = webdriver.Chrome(service=Service(executable_path=chromedriver_path()), options=opts)
    # The window size counts the browser's frame; the screenshots want 1400x1000 of page.
    w, hgt = d.execute_script("return [window.outerWidth - window.innerWidth, window.outerHeight - window.innerHeight]")
    d.set_window_size(1400 + w, 1000 + hgt)
    downloads = tmp_path_factory.mktemp("downloads")
    d.execute_cdp_cmd("Browser.setDownloadBehavior",
                      {"behavior": "allow", "downloadPath": str(downloads)})
    d.downloads = downloads
    yield d
    d.quit()


class HttpErrors:
    """The HTTP error statuses a test provokes on purpose. Chromium logs every failed
    API answer as a console error; those are allowed only when declared, and only for
    API paths, never for the console's own files."""

    def __init__(self) -> None:
        self.allowed: set[int] = set()

    def allow(self, *statuses: int) -> None:
        self.allowed.update(statuses)


@pytest.fixture
def http_errors() -> HttpErrors:
    return HttpErrors()


_NETWORK = re.compile(r"^(\S+) - Failed to load resource: the server responded with a status of (\d+)")


@pytest.fixture(autouse=True)
def no_console_errors(driver, http_errors):
    driver.get_log("browser")  # drop what earlier tests left
    yield
    bad = []
    for entry in driver.get_log("browser"):
        if entry["level"] != "SEVERE":
            continue
        m = _NETWORK.match(entry["message"])
        if (m and entry.get("source") == "network" and int(m.group(2)) in http_errors.allowed
                and "/console" not in urllib.parse.urlsplit(m.group(1)).path):
            continue
        bad.append(entry["message"])
    assert not bad, "browser console errors:\n" + "\n".join(bad)


class Console:
    """The console of one server in the shared browser: navigation, waits, screenshots."""

    def __init__(self, driver, server) -> None:
        self.d = driver
        self.server = server

    def url(self, route: str = "/collections") -> str:
        if ORIGIN:
            up = urllib.parse.quote(self.server.url, safe="")
            return f"{ORIGIN}/console?upstream={up}#{route}"
        return f"{self.server.url}/console#{route}"

    def open(self, route: str = "/collections") -> None:
        # A blank page in between: every open is a fresh load, never a hash change of
        # the page before, so no state carries over from an earlier step.
        self.d.get("about:blank")
        self.d.get(self.url(route))

    def wait(self, cond, what: str, timeout: float = WAIT_S):
        try:
            # A page re-renders parts of itself; an element found a moment ago may be gone.
            return WebDriverWait(self.d, timeout, ignored_exceptions=(StaleElementReferenceException,)).until(
                lambda d: cond())
        except TimeoutException:
            raise AssertionError(f"timed out waiting for {what}; page shows:\n{self.page_text()}") from None

    def page_text(self) -> str:
        try:
            return self.d.find_element(By.TAG_NAME, "body").text
        except Exception as e:  # the page itself may be gone
            return f"(no page: {e})"

    def find(self, css: str):
        return self.d.find_element(By.CSS_SELECTOR, css)

    def all(self, css: str):
        return self.d.find_elements(By.CSS_SELECTOR, css)

    def visible(self, css: str):
        """Waits until `css` matches a displayed element; returns it."""
        def shown():
            els = [e for e in self.all(css) if e.is_displayed()]
            return els[0] if els else None
        return self.wait(shown, f"{css} to be shown")

    def text_in(self, css: str, text: str):
        """Waits until a displayed `css` element's text contains `text`; returns it."""
        def has():
            for e in self.all(css):
                if e.is_displayed() and text in e.text:
                    return e
            return None
        return self.wait(has, f"{text!r} in {css}")

    def attrs(self, css: str, name: str) -> list:
        """Attribute `name` of every `css` match, read at one instant."""
        return self.d.execute_script(
            "return [...document.querySelectorAll(arguments[0])].map(e => e.getAttribute(arguments[1]))",
            css, name)

    def click(self, css: str) -> None:
        for _ in range(3):
            try:
                return self.visible(css).click()
            except StaleElementReferenceException:
                continue  # re-rendered between the lookup and the click: look again
        self.visible(css).click()

    def fill(self, css: str, value: str) -> None:
        el = self.visible(css)
        el.clear()
        if value:
            el.send_keys(value)

    def set_value(self, css: str, value: str) -> None:
        """Sets a field (a select, or a long text) at once and fires its events."""
        self.d.execute_script(
            "const el = document.querySelector(arguments[0]); el.value = arguments[1];"
            "el.dispatchEvent(new Event('input', {bubbles: true}));"
            "el.dispatchEvent(new Event('change', {bubbles: true}));", css, value)

    def check(self, css: str, on: bool = True) -> None:
        el = self.visible(css)
        if el.is_selected() != on:
            el.click()

    def shot(self, name: str, css: str | None = None) -> Path:
        """Saves the viewport as docs/console/NAME.png, scrolled to `css` if given."""
        if css:
            self.d.execute_script("document.querySelector(arguments[0]).scrollIntoView({block: 'start'})", css)
        else:
            self.d.execute_script("window.scrollTo(0, 0)")
        SHOTS.mkdir(parents=True, exist_ok=True)
        path = SHOTS / f"{name}.png"
        assert self.d.save_screenshot(str(path)), f"screenshot {path} failed"
        return path


def call(server, method: str, path: str, body=None, key: str | None = None):
    """The API itself, for setting up and checking what the page did."""
    data = json.dumps(body).encode() if body is not None else None
    req = urllib.request.Request(server.url + path, data=data, method=method)
    if data is not None:
        req.add_header("Content-Type", "application/json")
    if key:
        req.add_header("Authorization", f"Bearer {key}")
    try:
        with urllib.request.urlopen(req, timeout=60) as r:
            raw = r.read()
            return r.status, (json.loads(raw) if raw else None)
    except urllib.error.HTTPError as e:
        return e.code, json.loads(e.read() or b"null")


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    s = start_server(tmp_path_factory.mktemp("server"), models=("bert", "qwen3-rerank"))
    yield s
    s.stop()


@pytest.fixture
def console(driver, server):
    return Console(driver, server)


@pytest.fixture(scope="session")
def api():
    """`api(server, method, path, body=None, key=None)` -> (status, JSON body)."""
    return call


@pytest.fixture
def keyed(driver, tmp_path):
    """A server that asks for an API key: (its Console, the server, the key)."""
    key = f"console-key-{os.getpid()}-{id(tmp_path):x}"
    s = start_server(tmp_path, api_key=key)
    yield Console(driver, s), s, key
    # Whatever origin the page ended on, no key stays behind for the next test.
    driver.execute_script("sessionStorage.clear()")
    s.stop()
