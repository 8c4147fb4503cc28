"""The web console at /ui, driven in real headless Chromium (Debian's package) by Playwright.

One browser for the module; each test opens its own context (its own cookies).
Every console answer the browser receives feeds the canary (no value in any
page but a reveal), every page is checked for the CSP header, and any request
to another origin fails the test. Screenshots of the main pages go to docs/.
"""

from __future__ import annotations

import base64
import json
import os
import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.conftest import CANARY, HTMX_SETTLED_JS, RunningServer, secretsd_executable, unique

CHROMIUM = "/usr/bin/chromium"
FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
DOCS = Path(__file__).resolve().parent.parent / "docs"
SHOTS = Path(tempfile.gettempdir()) / "secretsd-console-shots"


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    if shutil.which(CHROMIUM) is None:  # .ci/run installs it; in CI a skip fails the run
        pytest.skip(f"browser tests need {CHROMIUM} (apt-get install -y chromium)")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        launched = playwright.chromium.launch(executable_path=CHROMIUM, args=FLAGS)
        yield launched
        launched.close()


class Watch:
    """What one browser context did: remote requests, CSP reports, page answers."""

    def __init__(self, base: str) -> None:
        self.base = base
        self.remote: list[str] = []
        self.csp_errors: list[str] = []
        self.pages: list[tuple[str, dict[str, str]]] = []


@pytest.fixture
def page(browser: Any, console_server: RunningServer) -> Iterator[Any]:
    context = browser.new_context(viewport={"width": 1280, "height": 860}, accept_downloads=True)
    watch = Watch(console_server.url)

    def route(route: Any) -> None:
        if route.request.url.startswith((console_server.url, "data:")):
            route.continue_()
        else:
            watch.remote.append(route.request.url)
            route.abort()

    def on_response(response: Any) -> None:
        headers = response.headers
        kind = headers.get("content-type", "")
        try:
            body = response.text() if response.status != 303 else ""
        except Exception:
            body = ""
        CANARY.note_console_response(response.url, kind, body)
        if "text/html" in kind:
            watch.pages.append((response.url, headers))

    context.route("**/*", route)
    context.on("response", on_response)
    tab = context.new_page()
    tab.on(
        "console",
        lambda message: (
            watch.csp_errors.append(message.text)
            if "Content Security Policy" in message.text or "Refused" in message.text
            else None
        ),
    )
    tab.on("dialog", lambda dialog: dialog.accept())
    tab.watch = watch
    yield tab
    context.close()
    assert not watch.remote, f"pages tried to load remote assets: {watch.remote}"
    assert not watch.csp_errors, f"CSP violations: {watch.csp_errors}"


def sign_in(page: Any, server: RunningServer, token: str | None = None) -> None:
    page.goto(f"{server.url}/ui/login")
    page.fill("#token", token or server.token)
    page.click("#sign-in-token")
    page.wait_for_url("**/ui/secrets")


def shot(page: Any, name: str, full_page: bool = True) -> None:
    """Render the page to PNG; refresh ``docs/`` only when asked (``SECRETSD_SCREENSHOTS=1``),
    so that running the suite never changes tracked files."""
    target = DOCS if os.environ.get("SECRETSD_SCREENSHOTS") == "1" else SHOTS
    target.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(target / f"console-{name}.png"), full_page=full_page)


def test_sign_in_browse_reveal_audit_and_write(page: Any, console_server: RunningServer) -> None:
    password = unique("pw")
    with console_server.client() as admin:
        admin.put(
            "/v1/secrets/apps/web/db", json={"data": {"user": "webapp", "password": password}}
        )
        admin.put("/v1/secrets/apps/web/api", json={"data": {"key": unique("api")}})
        admin.put(
            "/v1/metadata/apps/web/db", json={"custom_metadata": {"imported-from": "vault-kv"}}
        )
    sign_in(page, console_server)
    page.click("#tree >> text=apps/")
    page.click("#tree >> text=web/")
    shot(page, "secrets")
    # Search below the folder.
    page.fill("#q", "db")
    page.wait_for_selector("#search-results >> text=apps/web/db")
    page.click("#search-results >> text=apps/web/db")
    page.wait_for_selector("#key-table")
    assert password not in page.content()
    assert "imported-from" in page.content()
    page.wait_for_function(HTMX_SETTLED_JS)  # the key table is swapped in, then bound
    page.click("button[aria-label='Reveal password']")
    revealed = page.wait_for_selector("code.revealed")
    assert revealed.text_content() == password
    assert password not in page.url and password not in page.title()
    shot(page, "secret")
    page.click("button.hide")
    page.wait_for_selector("code.revealed", state="detached")
    # Back from another page: the value is hidden again (no-store, nothing kept).
    page.click("button[aria-label='Reveal password']")
    page.wait_for_selector("code.revealed")
    page.goto(f"{console_server.url}/ui/policies")
    page.go_back()
    page.wait_for_selector("#key-table")
    assert password not in page.content()

    # The reveal is in the audit log, read by the console's session identity.
    page.goto(f"{console_server.url}/ui/audit?path_prefix=apps/web/db&action=read")
    rows = page.locator("#records tbody tr")
    assert rows.count() >= 1
    assert "console:" in rows.first.text_content()
    assert "intact" in page.text_content("#chain")
    assert "console:" in page.text_content("#top-readers")
    page.wait_for_selector("#audit-chart canvas")
    shot(page, "audit")

    # A new version through the form, with check-and-set on the current version.
    new_password = unique("pw2")
    page.goto(f"{console_server.url}/ui/secret/apps/web/db")
    form = page.locator("#write-h + form")
    form.locator("input[name=key_0]").fill("password")
    form.locator("textarea[name=value_0]").fill(new_password)
    form.locator("#write-submit").click()
    page.wait_for_selector("#written")
    assert "Wrote version 2" in page.text_content("#written")
    assert new_password not in page.content() and new_password not in page.url
    with console_server.client() as admin:
        data = admin.get("/v1/secrets/apps/web/db").json()["data"]
    assert data == {"user": "webapp", "password": new_password}

    # A stale check-and-set is refused with the API's message and writes nothing.
    form = page.locator("#write-h + form")
    form.locator("#write-cas").fill("1")
    form.locator("input[name=key_0]").fill("password")
    form.locator("textarea[name=value_0]").fill(unique("pw3"))
    form.locator("#write-submit").click()
    page.wait_for_selector("#flash .error")
    with console_server.client() as admin:
        assert admin.get("/v1/secrets/apps/web/db").json()["version"] == 2

    # Delete (confirmed) and undelete version 2.
    page.goto(f"{console_server.url}/ui/secret/apps/web/db")
    page.click("#versions tr:has-text('(current)') >> text=Delete")
    page.wait_for_selector("#versions >> text=deleted")
    page.click("#versions >> text=Undelete")
    page.wait_for_selector("#versions tr:has-text('(current)') >> text=live")


def test_binary_download(page: Any, console_server: RunningServer) -> None:
    blob = bytes(range(256))
    with console_server.client() as admin:
        admin.put(
            "/v1/secrets/apps/bin/keystore",
            json={"data": {"ks": base64.b64encode(blob).decode()}, "binary_keys": ["ks"]},
        )
    sign_in(page, console_server)
    page.goto(f"{console_server.url}/ui/secret/apps/bin/keystore")
    with page.expect_download() as download:
        page.click("#key-table >> text=Download")
    assert Path(download.value.path()).read_bytes() == blob


def test_policy_editor_validates_as_you_type(page: Any, console_server: RunningServer) -> None:
    sign_in(page, console_server)
    page.goto(f"{console_server.url}/ui/policies")
    page.fill("#new-name", "web-readers")
    page.click("#new-policy button")
    page.wait_for_url("**/ui/policies/web-readers")
    page.fill("#policy-text", "rules:\n  - path: apps/web/**\n    capabilities: [reed]\n")
    page.wait_for_selector("#verdict.error")
    message = page.text_content("#verdict")
    assert "unknown capability 'reed'" in message and "line 2" in message
    shot(page, "policy")
    page.click("#policy-save")  # saving an invalid policy stores nothing
    page.wait_for_selector("#verdict.error")
    with console_server.client() as admin:
        assert admin.get("/v1/policies/web-readers").status_code == 404
    page.fill("#policy-text", "rules:\n  - path: apps/web/**\n    capabilities: [read, list]\n")
    page.wait_for_selector("#verdict.ok")
    page.click("#policy-save")
    page.wait_for_selector("#saved")
    with console_server.client() as admin:
        rules = admin.get("/v1/policies/web-readers").json()["rules"]
    assert rules == [{"path": "apps/web/**", "capabilities": ["list", "read"]}]


def test_who_can_read(page: Any, console_server: RunningServer) -> None:
    with console_server.client() as admin:
        admin.put(
            "/v1/policies/db-readers",
            json={"rules": [{"path": "apps/shop/db", "capabilities": ["read"]}]},
        )
        admin.put(
            "/v1/policies/no-db",
            json={"rules": [{"path": "apps/shop/**", "capabilities": ["deny"]}]},
        )
        admin.post("/v1/auth/tokens", json={"policies": ["db-readers"], "display_name": "reader-1"})
        admin.post(
            "/v1/auth/tokens",
            json={"policies": ["db-readers", "no-db"], "display_name": "denied-1"},
        )
        admin.put("/v1/auth/approle/roles/shop-app", json={"policies": ["db-readers"]})
    sign_in(page, console_server)
    page.goto(f"{console_server.url}/ui/access")
    page.fill("#who-path", "apps/shop/db")
    page.click("form.search button")
    row = page.locator("#who-can tr[data-capability=read]")
    text = row.text_content()
    assert "db-readers" in text and "admin" in text
    assert "reader-1" in text and "shop-app" in text
    assert "denied-1" not in text  # its deny wins, as a request would be decided
    assert "no-db" in page.text_content("main")
    write_row = page.locator("#who-can tr[data-capability=write]").text_content()
    assert "reader-1" not in write_row and "db-readers" not in write_row
    shot(page, "who-can")


def test_sign_out_kills_the_session(page: Any, console_server: RunningServer) -> None:
    sign_in(page, console_server)
    cookie = next(c for c in page.context.cookies() if c["name"] == "secretsd_console")
    assert cookie["httpOnly"] and cookie["sameSite"] == "Strict" and cookie["path"] == "/ui"
    session_token = cookie["value"]
    CANARY.remember(session_token)
    assert session_token != console_server.token  # a minted child, not the admin's token
    with console_server.client(session_token) as session:
        me = session.get("/v1/auth/tokens/self").json()
    assert me["ttl"] <= 3600 and me["meta"]["console"] == "session"
    page.click("#sign-out")
    page.wait_for_url("**/ui/login")
    assert not [c for c in page.context.cookies() if c["name"] == "secretsd_console"]
    with console_server.client(session_token) as session:
        assert session.get("/v1/auth/tokens/self").status_code == 401
    with console_server.client() as admin:  # the admin's own token lives on
        assert admin.get("/v1/auth/tokens/self").status_code == 200
    # Replaying the dead cookie leads back to the sign-in page.
    page.context.add_cookies([{**cookie}])
    page.goto(f"{console_server.url}/ui/secrets")
    page.wait_for_url("**/ui/login")


def test_approle_sign_in(page: Any, console_server: RunningServer) -> None:
    with console_server.client() as admin:
        admin.put(
            "/v1/policies/ops",
            json={"rules": [{"path": "apps/**", "capabilities": ["read", "list"]}]},
        )
        admin.put("/v1/auth/approle/roles/ops-console", json={"policies": ["ops"]})
        role_id = admin.get("/v1/auth/approle/roles/ops-console").json()["role_id"]
        secret_id = admin.post("/v1/auth/approle/roles/ops-console/secret-ids", json={}).json()[
            "secret_id"
        ]
    page.goto(f"{console_server.url}/ui/login")
    shot(page, "login")
    page.fill("#role_id", role_id)
    page.fill("#secret_id", secret_id)
    page.click("#sign-in-approle")
    page.wait_for_url("**/ui/secrets")
    assert "apps/" in page.text_content("#tree")
    # ops may not read the audit log: the page says so instead of failing.
    page.goto(f"{console_server.url}/ui/audit")
    assert "not allowed" in page.text_content("main .error")


def test_leaks_report(page: Any, console_server: RunningServer, tmp_path: Path) -> None:
    leaked = unique("ghp")
    report = {
        "findings": [
            {"rule": "github-pat", "path": "a.py", "line": 3, "secret": leaked, "match": leaked},
            {"rule": "aws-key", "path": "b.env", "line": 1, "severity": "high", "secret": leaked},
        ]
    }
    path = tmp_path / "report.json"
    path.write_text(json.dumps(report))
    sign_in(page, console_server)
    page.goto(f"{console_server.url}/ui/leaks")
    page.set_input_files("#report", str(path))
    page.click("#upload")
    page.wait_for_selector("#findings")
    assert page.locator("#findings tbody tr").count() == 2
    assert leaked not in page.content()
    page.select_option("select[data-facet=rule]", "aws-key")
    assert page.locator("#findings tbody tr:visible").count() == 1
    shot(page, "leaks")


def test_every_page_has_csp_and_no_remote_asset(page: Any, console_server: RunningServer) -> None:
    # Keyboard only: Tab from the skip link to the token field, type, Enter.
    page.goto(f"{console_server.url}/ui/login")
    page.keyboard.press("Tab")
    assert page.evaluate("document.activeElement.className") == "skip"
    page.keyboard.press("Tab")
    assert page.evaluate("document.activeElement.id") == "token"
    page.keyboard.type(console_server.token)
    page.keyboard.press("Enter")
    page.wait_for_url("**/ui/secrets")
    for where in ("/ui/secrets", "/ui/audit", "/ui/policies", "/ui/access", "/ui/leaks"):
        page.goto(console_server.url + where)
    pages = page.watch.pages
    assert len(pages) >= 6
    for url, headers in pages:
        csp = headers.get("content-security-policy", "")
        assert "script-src 'self'" in csp and "frame-ancestors 'none'" in csp, url
        assert headers.get("cache-control") == "no-store", url
    # An injected remote asset is blocked by the CSP before it leaves the browser.
    page.evaluate("() => { const i = new Image(); i.src = 'https://cdn.example/x.png'; }")
    page.wait_for_timeout(300)
    assert any("cdn.example" in e and "img-src" in e for e in page.watch.csp_errors)
    assert not page.watch.remote
    page.watch.csp_errors.clear()


def test_state_changes_need_the_csrf_token(console_server: RunningServer) -> None:
    with console_server.client() as admin:
        admin.put("/v1/secrets/apps/csrf/victim", json={"data": {"k": unique("v")}})
    with httpx.Client(base_url=console_server.url, follow_redirects=False) as browser:
        answer = browser.post("/ui/login", data={"method": "token", "token": console_server.token})
        assert answer.status_code == 303
        form = {"path": "apps/csrf/victim", "op": "destroy", "versions": "1"}
        forged = browser.post("/ui/secret-action", data=form)
        assert forged.status_code == 403
        wrong = browser.post("/ui/secret-action", data={**form, "csrf": "0" * 64})
        assert wrong.status_code == 403
        page = browser.get("/ui/secrets").text
        token = page.split('name="csrf" value="', 1)[1].split('"', 1)[0]
        cross_site = browser.post(
            "/ui/secret-action",
            data={**form, "csrf": token},
            headers={"Origin": "https://evil.example", "Sec-Fetch-Site": "cross-site"},
        )
        assert cross_site.status_code == 403
    with console_server.client() as admin:
        versions = admin.get("/v1/metadata/apps/csrf/victim").json()["versions"]
    assert not versions[0]["destroyed"]


def test_create_a_secret_with_the_new_secret_form(page: Any, console_server: RunningServer) -> None:
    first, second, third = unique("n1"), unique("n2"), unique("n3")
    sign_in(page, console_server)
    page.goto(f"{console_server.url}/ui/secrets?prefix=apps")
    page.click("#new-secret summary")
    form = page.locator("#new-secret form")
    assert form.locator("#write-path").input_value() == "apps/"
    form.locator("#write-path").fill("apps/new/svc")
    form.locator("input[name=key_0]").fill("a")
    form.locator("textarea[name=value_0]").fill(first)
    form.locator("input[name=key_1]").fill("b")
    form.locator("textarea[name=value_1]").fill(second)
    form.locator("[data-add-row]").click()  # console.js adds row 2
    form.locator("input[name=key_2]").fill("c")
    form.locator("textarea[name=value_2]").fill(third)
    form.locator("#write-submit").click()
    page.wait_for_url("**/ui/secret/apps/new/svc?written=1")
    with console_server.client() as admin:
        data = admin.get("/v1/secrets/apps/new/svc").json()["data"]
    assert data == {"a": first, "b": second, "c": third}
    # Check-and-set 0 means "only if new": a second create is refused, nothing written.
    page.goto(f"{console_server.url}/ui/secrets?prefix=apps")
    page.click("#new-secret summary")
    form = page.locator("#new-secret form")
    form.locator("#write-path").fill("apps/new/svc")
    form.locator("input[name=key_0]").fill("a")
    form.locator("textarea[name=value_0]").fill(unique("n4"))
    form.locator("#write-submit").click()
    page.wait_for_selector("#flash .error")
    with console_server.client() as admin:
        assert admin.get("/v1/secrets/apps/new/svc").json()["version"] == 1


def test_upload_a_binary_file_and_download_it_back(
    page: Any, console_server: RunningServer, tmp_path: Path
) -> None:
    kept = unique("kept")
    with console_server.client() as admin:
        admin.put("/v1/secrets/apps/files/tls", json={"data": {"note": kept}})
    blob = b"\xff\x00\xfe" + os.urandom(64 * 1024)  # never valid UTF-8
    source = tmp_path / "keystore.p12"
    source.write_bytes(blob)
    sign_in(page, console_server)
    page.goto(f"{console_server.url}/ui/secret/apps/files/tls")
    form = page.locator("form.upload")
    assert form.locator("#upload-cas").input_value() == "1"
    form.locator("#upload-key").fill("keystore")
    form.locator("#upload-file").set_input_files(str(source))
    form.locator("#upload-submit").click()
    page.wait_for_selector("#written")
    assert "Wrote version 2" in page.text_content("#written")
    assert "keystore" in page.text_content("#key-table") and "binary" in page.text_content(
        "#key-table"
    )
    with page.expect_download() as download:
        page.click("#key-table tr:has-text('keystore') >> text=Download")
    assert Path(download.value.path()).read_bytes() == blob
    with console_server.client() as admin:
        secret = admin.get("/v1/secrets/apps/files/tls").json()
        assert secret["binary_keys"] == ["keystore"] and secret["data"]["note"] == kept
        audit = admin.get(
            "/v1/audit", params={"path_prefix": "apps/files/tls", "action": "patch"}
        ).json()["records"]
    assert audit[-1]["display_name"].startswith("console:") and audit[-1]["version"] == 2
    # A stale check-and-set (the page still says version 1) writes nothing.
    page.goto(f"{console_server.url}/ui/secret/apps/files/tls?version=1")
    form = page.locator("form.upload")
    form.locator("#upload-cas").fill("1")
    form.locator("#upload-key").fill("keystore")
    form.locator("#upload-file").set_input_files(str(source))
    form.locator("#upload-submit").click()
    page.wait_for_selector("#flash .error")
    # A new secret from a file, on the tree page (check-and-set 0: only if new).
    page.goto(f"{console_server.url}/ui/secrets?prefix=apps/files")
    page.click("#new-secret summary")
    form = page.locator("#new-secret form.upload")
    form.locator("#upload-path").fill("apps/files/der")
    form.locator("#upload-key").fill("cert.der")
    form.locator("#upload-file").set_input_files(str(source))
    form.locator("#upload-submit").click()
    page.wait_for_url("**/ui/secret/apps/files/der?written=1")
    with page.expect_download() as download:
        page.click("#key-table >> text=Download")
    assert Path(download.value.path()).read_bytes() == blob
    with console_server.client() as admin:
        assert admin.get("/v1/secrets/apps/files/tls").json()["version"] == 2


def _saved_plan(server: RunningServer, tmp_path: Path) -> tuple[Path, str]:
    """A plan saved by the real `secretsd migrate plan --out`, with a plaintext finding."""
    from tests.migrate.conftest import FIXTURES, vault_id_flags

    root = tmp_path / "ansible"
    shutil.copytree(FIXTURES / "ansible", root)
    plain = unique("Xq9!vR2#")
    (root / "group_vars" / "web.yml").write_text(f'app_port: 8080\ndb_password: "{plain}"\n')
    out = tmp_path / "plan.json"
    env = {k: v for k, v in os.environ.items() if not k.startswith("SECRETSD_")}
    env.update(
        SECRETSD_ADDR=server.url,
        SECRETSD_TOKEN=server.token,
        XDG_CONFIG_HOME=str(tmp_path / "config"),
        XDG_STATE_HOME=str(tmp_path / "state"),
    )
    args = ["migrate", "plan", "ansible", str(root), *vault_id_flags(), "--out", str(out)]
    done = subprocess.run(
        [secretsd_executable(), *args], env=env, capture_output=True, timeout=120, check=False
    )
    assert done.returncode == 0, done.stderr.decode(errors="replace")
    return out, plain


def test_migration_plan_page(page: Any, console_server: RunningServer, tmp_path: Path) -> None:
    plan_file, plain = _saved_plan(console_server, tmp_path)
    plan = json.loads(plan_file.read_text("utf-8"))
    sign_in(page, console_server)
    page.click("text=Migration plans")
    page.wait_for_url("**/ui/plans")
    page.set_input_files("#plan-file", str(plan_file))
    page.click("#open-plan")
    page.wait_for_selector("#plan-items")
    assert plan["plan_id"] in page.text_content("#plan-h")
    rows = page.locator("#plan-items tbody tr")
    assert rows.count() == len(plan["items"])
    assert "plaintext finding" in page.text_content("#plan-items")
    duplicates = page.text_content("#plan-duplicates")
    assert "keep secretsd://ansible/all/vault_tls_key#value" in duplicates
    assert page.locator("#plan-targets tbody tr").count() == len(plan["targets"])
    db_keys = [
        i for i in plan["items"] if i["target"].startswith("secretsd://ansible/frontends/db#")
    ]
    db = page.locator("#plan-targets tr:has-text('ansible/frontends/db')").first
    cells = db.locator("td").all_text_contents()
    assert cells == ["ansible/frontends/db", str(len(db_keys)), "absent (new secret)"]
    assert plain not in page.content() and "plan-dropped" not in page.content()
    # Browse by origin with the keyboard-usable filters.
    page.select_option("select[data-facet=origin]", "plaintext")
    plaintext = [i for i in plan["items"] if i["origin"] == "plaintext"]
    assert page.locator("#plan-items tbody tr:visible").count() == len(plaintext)
    page.select_option("select[data-facet=origin]", "")
    shot(page, "plans", full_page=False)
    # A file over the body limit is refused in the browser, before it is sent.
    most = int(page.get_attribute("#plan-file", "data-max-bytes") or 0)
    assert most == console_server.settings.max_body_bytes - 4096
    huge = tmp_path / "huge.json"
    huge.write_bytes(b" " * (most + 1))
    page.set_input_files("#plan-file", str(huge))
    assert "at most" in page.eval_on_selector("#plan-file", "e => e.validationMessage")
    # A plan someone put a value into: the field is dropped unread, the page says where.
    plan["items"][0]["value"] = plain
    plan_file.write_text(json.dumps(plan))
    page.set_input_files("#plan-file", str(plan_file))
    page.click("#open-plan")
    page.wait_for_selector("#plan-dropped")
    assert "items[0]: 1 field" in page.text_content("#plan-dropped")
    assert plain not in page.content()
