"""The web UI in a real browser against a real device.

A camera is provisioned into ``tmp_path`` (``refcam keys init``, ``refcam
firmware build``, ``refcam device provision``, in-process), then booted through
the whole chain by ``refcam device run`` in a subprocess, and driven by
Debian's chromium through Playwright (no browser download).

The browser trusts the device the way a user would: the manufacturer root
(``S/data/identity/manufacturer-root.pem``, what ``refcam device ca`` prints)
is imported into an NSS database in a private ``HOME``, which chromium on
Linux reads for locally trusted roots. Certificate errors are never ignored
(``ignore_https_errors=False``), so a device whose chain does not validate
for ``localhost`` fails this test.

Screenshots are saved under ``test-artifacts/`` (git-ignored): the dashboard,
the settings page, the audit log, the update panel after a real install and
the phone-width layout.

A second, deliberately flawed camera (``--flaw no-security-txt``, a fixed port
so the browser finds it again after its reboot) carries the flaw banner and a
real firmware update: uploaded in the browser, installed, rebooted into as a
trial and confirmed by the device.
"""

from __future__ import annotations

import contextlib
import io
import json
import os
import queue
import re
import shutil
import signal
import ssl
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from refcam import cli

pytestmark = pytest.mark.slow

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--headless=new",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
ARTIFACTS = Path(__file__).resolve().parents[2] / "test-artifacts"
FIRMWARE_VERSION = "1.4.2"
STRONG_PASSWORD = "violet tractor measures the quiet harbour"
WEAK_PASSWORD = "password"
MARKUP_NAME = '<img src=x onerror="window.__pwned=1">'
START_TIMEOUT = 60.0  # seconds for `refcam device run` to boot and listen
UI_TIMEOUT = 15_000  # milliseconds for a view to appear
UPDATE_TIMEOUT = 120_000  # milliseconds for a real install, reboot, trial and confirm
PHONE = {"width": 375, "height": 740}
_RED = "rgb(179, 38, 30)"  # --bad in app.css: errors only


@dataclass
class RunningDevice:
    url: str  # https://localhost:PORT/
    root_pem: Path  # manufacturer root the device's TLS chain ends at
    serial: str
    model: str
    label_password: str
    admin_password: str  # current admin password (changes in the first test)
    password_changed: bool = False
    output: list[str] = field(default_factory=list)  # the device's log lines
    keys: Path | None = None  # the signing keys its firmware was built with

    def tls_context(self) -> ssl.SSLContext:
        return ssl.create_default_context(cafile=str(self.root_pem))


def _run_cli(*argv: str) -> str:
    """``refcam ARGV`` in-process; its stdout, or a failure with its stderr."""
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        code = cli.main(list(argv))
    assert code == 0, f"refcam {' '.join(argv)} exited {code}: {err.getvalue().strip()}"
    return out.getvalue()


def _read_lines(stream: io.TextIOBase, lines: queue.Queue[str | None]) -> None:
    for line in stream:
        lines.put(line.rstrip("\n"))
    lines.put(None)


def _free_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.fixture(scope="module")
def device(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningDevice]:
    yield from _device(tmp_path_factory.mktemp("webui-device"), [])


@pytest.fixture(scope="module")
def flawed_device(
    tmp_path_factory: pytest.TempPathFactory, device: RunningDevice
) -> Iterator[RunningDevice]:
    """A camera with a flaw profile on, on a fixed port (it survives its reboot).
    Same vendor keys as ``device``, so the browser trusts the same manufacturer root."""
    yield from _device(
        tmp_path_factory.mktemp("webui-flawed"),
        ["--flaw", "no-security-txt", "--port", str(_free_port())],
        keys=device.keys,
    )


def _device(base: Path, run_args: list[str], keys: Path | None = None) -> Iterator[RunningDevice]:
    state, image = base / "state", base / "firmware.img"
    if keys is None:
        keys = base / "keys"
        _run_cli("keys", "init", "--dir", str(keys))
    _run_cli(
        "firmware", "build", "--keys", str(keys), "--version", FIRMWARE_VERSION,
        "--security-counter", "1", "-o", str(image),
    )  # fmt: skip
    _run_cli(
        "device", "provision", "--state", str(state), "--keys", str(keys), "--firmware", str(image)
    )
    label = _run_cli("device", "label", "--state", str(state))
    password = re.search(r"initial password:\s*(\S+)", label)
    serial = re.search(r"serial:\s*(\S+)", label)
    assert password and serial, f"unexpected label: {label!r}"
    identity = json.loads((state / "data" / "identity" / "device.json").read_text())

    env = dict(os.environ, PYTHONUNBUFFERED="1")
    if "--port" not in run_args:
        run_args = [*run_args, "--port", "0"]
    proc = subprocess.Popen(
        [sys.executable, "-m", "refcam.cli", "device", "run", "--state", str(state), *run_args],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env=env,
    )
    lines: queue.Queue[str | None] = queue.Queue()
    assert proc.stdout is not None
    threading.Thread(target=_read_lines, args=(proc.stdout, lines), daemon=True).start()
    output: list[str] = []
    port = None
    deadline = time.monotonic() + START_TIMEOUT
    while port is None:
        try:
            line = lines.get(timeout=max(0.0, deadline - time.monotonic()))
        except queue.Empty:
            proc.kill()
            pytest.fail(f"device did not print its serving line in {START_TIMEOUT} s: {output}")
        if line is None:
            proc.wait()
            pytest.fail(f"device exited with {proc.returncode} before serving: {output}")
        output.append(line)
        found = re.search(r"serving https://[^\s:]+:(\d+)", line)
        port = int(found.group(1)) if found else None
    running = RunningDevice(
        url=f"https://localhost:{port}/",
        root_pem=state / "data" / "identity" / "manufacturer-root.pem",
        serial=serial.group(1),
        model=identity["model"],
        label_password=password.group(1),
        admin_password=password.group(1),
        output=output,
        keys=keys,
    )
    # Keep reading its output (a reboot prints more), so the pipe never fills.
    threading.Thread(target=_drain, args=(lines, output), daemon=True).start()
    try:
        yield running
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def _api(
    device: RunningDevice,
    method: str,
    path: str,
    body: dict[str, Any] | None = None,
    token: str = "",
) -> tuple[int, Any]:
    """A JSON API call over verified TLS (bearer token: no CSRF header needed)."""
    request = urllib.request.Request(device.url.rstrip("/") + path, method=method)
    data = None
    if body is not None:
        data = json.dumps(body).encode()
        request.add_header("Content-Type", "application/json")
    if token:
        request.add_header("Authorization", f"Bearer {token}")
    try:
        with urllib.request.urlopen(
            request, data=data, context=device.tls_context(), timeout=30
        ) as r:
            raw = r.read()
            return r.status, json.loads(raw) if raw else None
    except urllib.error.HTTPError as e:
        raw = e.read()
        return e.code, json.loads(raw) if raw else None


@pytest.fixture
def admin_password(device: RunningDevice) -> str:
    """The admin's own password; sets it through the API if the browser test did not."""
    return _own_password(device)


def _own_password(device: RunningDevice) -> str:
    if not device.password_changed:
        status, session = _api(
            device,
            "POST",
            "/api/v1/session",
            {"username": "admin", "password": device.admin_password},
        )
        assert status == 200, session
        status, body = _api(
            device, "POST", "/api/v1/session/password",
            {"current_password": device.admin_password, "new_password": STRONG_PASSWORD},
            token=session["token"],
        )  # fmt: skip
        assert status == 204, body
        device.admin_password, device.password_changed = STRONG_PASSWORD, True
    return device.admin_password


def _drain(lines: queue.Queue[str | None], output: list[str]) -> None:
    while (line := lines.get()) is not None:
        output.append(line)


@pytest.fixture(scope="module")
def browser(device: RunningDevice, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    if not CHROMIUM.exists():
        pytest.fail(
            f"{CHROMIUM} is missing: the web UI test drives Debian's chromium; "
            "install it with `make sysdeps` (apt-get install chromium libnss3-tools)"
        )
    certutil = shutil.which("certutil")
    if certutil is None:
        pytest.fail("certutil is missing: install Debian's libnss3-tools (make sysdeps)")
    from playwright.sync_api import sync_playwright

    # A private HOME whose NSS database trusts the manufacturer root as a CA
    # for TLS servers ("C,,"): what a user does after `refcam device ca`.
    home = tmp_path_factory.mktemp("chromium-home")
    nssdb = home / ".pki" / "nssdb"
    nssdb.mkdir(parents=True)
    subprocess.run([certutil, "-N", "-d", f"sql:{nssdb}", "--empty-password"], check=True)
    subprocess.run(
        [certutil, "-A", "-d", f"sql:{nssdb}", "-t", "C,,", "-n", "refcam manufacturer root",
         "-i", str(device.root_pem)],
        check=True,
    )  # fmt: skip
    env: dict[str, str | float | bool] = {
        k: v for k, v in os.environ.items() if k not in ("HOME", "XDG_CONFIG_HOME")
    }
    env["HOME"] = str(home)
    with sync_playwright() as p:
        chromium = p.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS, env=env)
        try:
            yield chromium
        finally:
            chromium.close()


@dataclass
class Watched:
    page: Any
    console: list[str]
    errors: list[str]

    def csp_violations(self) -> list[str]:
        reported = self.page.evaluate("window.__cspViolations")
        logged = [m for m in self.console if "Content Security Policy" in m]
        return [*reported, *logged]


# Runs before any page script (injected by the browser, outside the page's CSP):
# records every CSP violation the page meets.
_CSP_RECORDER = """
window.__cspViolations = [];
document.addEventListener("securitypolicyviolation", (e) => {
  window.__cspViolations.push(`${e.effectiveDirective} blocked ${e.blockedURI || "inline"}`);
});
"""


@pytest.fixture
def page(browser: Any) -> Iterator[Watched]:
    context = browser.new_context(
        ignore_https_errors=False, viewport={"width": 1200, "height": 900}
    )
    context.set_default_timeout(UI_TIMEOUT)
    context.add_init_script(_CSP_RECORDER)
    page = context.new_page()
    watched = Watched(page, [], [])
    page.on("console", lambda m: watched.console.append(f"{m.type}: {m.text}"))
    page.on("pageerror", lambda e: watched.errors.append(str(e)))
    try:
        yield watched
    finally:
        context.close()


def _login(page: Any, username: str, password: str) -> None:
    page.fill("#login-username", username)
    page.fill("#login-password", password)
    page.click("#login-form button[type=submit]")


def _open_as_admin(watched: Watched, device: RunningDevice, password: str) -> Any:
    from playwright.sync_api import expect

    page = watched.page
    page.goto(device.url)
    expect(page.locator("#view-login")).to_be_visible()
    _login(page, "admin", password)
    expect(page.locator("#view-dashboard")).to_be_visible()
    return page


def test_first_login_forces_a_password_change_then_shows_the_dashboard(
    device: RunningDevice, page: Watched
) -> None:
    from playwright.sync_api import expect

    if device.password_changed:
        pytest.fail("this test must run first, on a device with its label password")
    p = page.page
    response = p.goto(device.url)
    assert response is not None and response.ok
    assert response.url.startswith("https://localhost:")
    assert "frame-ancestors 'none'" in response.headers["content-security-policy"]
    expect(p.locator("#view-login")).to_be_visible()

    _login(p, "admin", device.label_password)
    expect(p.locator("#view-change-password")).to_be_visible()
    expect(p.locator("#nav")).to_be_hidden()  # nothing else until the password is changed
    expect(p.locator("#policy-rules li").first).to_be_visible()

    # A weak password: the device's reasons are shown verbatim.
    p.fill("#pw-current", device.label_password)
    p.fill("#pw-new", WEAK_PASSWORD)
    p.fill("#pw-confirm", WEAK_PASSWORD)
    with p.expect_response("**/api/v1/session/password") as answer:
        p.click("#password-form button[type=submit]")
    assert answer.value.status == 400
    reasons = answer.value.json()["reasons"]
    assert any("at least 15" in r for r in reasons), reasons
    expect(p.locator("#password-reasons li")).to_have_text(reasons)
    expect(p.locator("#view-change-password")).to_be_visible()

    # A strong one: the dashboard with this device's model, firmware and slot.
    p.fill("#pw-new", STRONG_PASSWORD)
    p.fill("#pw-confirm", STRONG_PASSWORD)
    with p.expect_response("**/api/v1/session/password") as answer:
        p.click("#password-form button[type=submit]")
    assert answer.value.status == 204
    device.admin_password, device.password_changed = STRONG_PASSWORD, True
    expect(p.locator("#view-dashboard")).to_be_visible()
    expect(p.locator("#banner")).to_have_text(re.compile("Password changed"))
    device_card = p.locator("#dash-device")
    expect(device_card).to_contain_text(device.model)
    expect(device_card).to_contain_text(device.serial)
    expect(p.locator("#dash-firmware")).to_contain_text(FIRMWARE_VERSION)
    booted = p.locator("#dash-slots tbody tr", has_text="(booted)")
    expect(booted).to_have_count(1)
    expect(booted).to_contain_text("a (booted)")
    expect(booted).to_contain_text("valid")
    expect(p.locator("#dash-security")).to_contain_text("secured")
    expect(p.locator("#dash-fuses")).to_contain_text("Firmware")

    ARTIFACTS.mkdir(exist_ok=True)
    p.screenshot(path=str(ARTIFACTS / "webui-dashboard.png"), full_page=True)
    assert page.csp_violations() == []
    assert page.errors == []


def test_csp_blocks_inline_script_so_the_recorder_would_see_a_violation(
    device: RunningDevice, page: Watched
) -> None:
    p = page.page
    p.goto(device.url)
    p.locator("#view-login").wait_for()
    # Control for the CSP assertions above: an inline script is refused and reported.
    p.evaluate(
        """() => { const s = document.createElement("script");
                   s.textContent = "window.__inline = 1"; document.body.append(s); }"""
    )
    p.wait_for_function("window.__cspViolations.length > 0")
    assert p.evaluate("window.__inline") is None
    assert any(v.startswith("script-src") for v in page.csp_violations())


def test_session_cookie_is_httponly_secure_strict_and_nothing_is_stored(
    device: RunningDevice, page: Watched, admin_password: str
) -> None:
    p = _open_as_admin(page, device, admin_password)
    cookies = {c["name"]: c for c in p.context.cookies()}
    # the session, and the OWASP device cookie that lets this browser past a lockout others cause
    assert sorted(cookies) == ["refcam_device", "refcam_session"]
    for cookie in cookies.values():
        assert cookie["httpOnly"] and cookie["secure"] and cookie["sameSite"] == "Strict"
        assert cookie["value"] not in p.url
    assert cookies["refcam_device"]["path"] == "/api/v1/session"  # sent to the login only
    assert p.evaluate("document.cookie") == ""
    assert p.evaluate("localStorage.length + sessionStorage.length") == 0
    assert "csrf" not in p.url.lower()
    assert page.csp_violations() == []


def test_markup_in_audit_data_is_shown_as_text(
    device: RunningDevice, page: Watched, admin_password: str
) -> None:
    from playwright.sync_api import expect

    p = page.page
    p.goto(device.url)
    _login(p, MARKUP_NAME, "not the password")
    expect(p.locator("#login-error")).to_have_text("Wrong user name or password.")
    _login(p, "admin", admin_password)
    expect(p.locator("#view-dashboard")).to_be_visible()
    p.click("#nav a[data-view=audit]")
    row = p.locator("#audit-table tbody tr[data-event=login_failure]").first
    expect(row).to_be_visible()
    expect(row.locator("td").nth(3)).to_have_text(MARKUP_NAME)
    assert p.locator("#audit-table img").count() == 0
    assert p.evaluate("window.__pwned") is None
    assert page.csp_violations() == []
    assert page.errors == []


def test_admin_adds_and_deletes_a_user(
    device: RunningDevice, page: Watched, admin_password: str
) -> None:
    from playwright.sync_api import expect

    p = _open_as_admin(page, device, admin_password)
    p.click("#nav a[data-view=users]")
    expect(p.locator("#users-table tbody tr", has_text="admin")).to_have_count(1)
    # A weak password for the new user: the policy reasons are shown.
    p.fill("#user-name", "operator1")
    p.fill("#user-password", "short")
    p.select_option("#user-role", "operator")
    p.click("#user-add-form button[type=submit]")
    expect(p.locator("#users-error-reasons li").first).to_contain_text("at least 15")
    p.fill("#user-password", "an operator passphrase of some length")
    p.click("#user-add-form button[type=submit]")
    new_row = p.locator('#users-table tbody tr[data-username="operator1"]')
    expect(new_row).to_contain_text("operator")
    expect(p.locator("#users-error")).to_be_hidden()

    p.once("dialog", lambda dialog: dialog.accept())
    new_row.get_by_role("button", name="Delete").click()
    expect(new_row).to_have_count(0)
    status, session = _api(
        device, "POST", "/api/v1/session", {"username": "admin", "password": admin_password}
    )
    assert status == 200
    status, users = _api(device, "GET", "/api/v1/users", token=session["token"])
    assert status == 200 and [u["username"] for u in users["users"]] == ["admin"]
    assert page.csp_violations() == []


def test_logout_ends_the_session_on_the_device(
    device: RunningDevice, page: Watched, admin_password: str
) -> None:
    from playwright.sync_api import expect

    p = _open_as_admin(page, device, admin_password)
    cookie = p.context.cookies()[0]["value"]
    p.click("#logout")
    expect(p.locator("#view-login")).to_be_visible()
    expect(p.locator("#nav")).to_be_hidden()
    # A neutral message is not styled as an error.
    notice = p.locator("#login-notice")
    expect(notice).to_have_text("You are logged out.")
    expect(p.locator("#login-error")).to_be_hidden()
    assert notice.evaluate("n => getComputedStyle(n).color") != _RED
    # The old token is dead on the device, not just forgotten by the page.
    status, body = _api(device, "GET", "/api/v1/session", token=cookie)
    assert (status, body["error"]) == (401, "authentication_required")
    p.reload()
    expect(p.locator("#view-login")).to_be_visible()
    assert page.csp_violations() == []


def test_live_view_streams_and_closes_the_stream_on_leaving(
    device: RunningDevice, page: Watched, admin_password: str
) -> None:
    from playwright.sync_api import expect

    p = _open_as_admin(page, device, admin_password)
    p.click("#nav a[data-view=live]")
    expect(p.locator("#live-image")).to_be_visible()
    p.wait_for_function("document.getElementById('live-image').naturalWidth > 0")
    p.click("#nav a[data-view=dashboard]")
    expect(p.locator("#view-dashboard")).to_be_visible()
    expect(p.locator("#live-image")).to_be_hidden()
    # Leaving the live view closes the stream (the src goes, so the connection does).
    assert p.evaluate("document.getElementById('live-image').hasAttribute('src')") is False
    assert page.csp_violations() == []
    assert page.errors == []


def test_update_panel_shows_the_device_state_and_refuses_a_bad_image(
    device: RunningDevice, page: Watched, admin_password: str, tmp_path: Path
) -> None:
    from playwright.sync_api import expect

    p = _open_as_admin(page, device, admin_password)
    p.click("#nav a[data-view=update]")
    details = p.locator("#update-details")
    expect(details).to_contain_text(f"{FIRMWARE_VERSION} (slot a)")
    expect(details).to_contain_text("Fused security counter")
    expect(p.locator("#update-install")).to_be_hidden()  # nothing newer known
    junk = tmp_path / "not-firmware.img"
    junk.write_bytes(b"this is not a signed MCUboot image" * 8)
    p.set_input_files("#update-file", str(junk))
    p.click("#update-upload-form button[type=submit]")
    expect(p.locator("#update-status")).to_contain_text("not a valid firmware image")
    expect(details).to_contain_text("image_rejected")  # the status document's last error
    expect(details).to_contain_text(f"{FIRMWARE_VERSION} (slot a)")  # still running, no reboot
    assert page.csp_violations() == []
    assert page.errors == []


def test_update_progress_and_install_follow_the_status_document(
    device: RunningDevice, page: Watched, admin_password: str
) -> None:
    """The panel renders the device's own status document (fetched for real, then
    moved through the states an install passes), and Install posts the install route."""
    from playwright.sync_api import expect

    status, session = _api(
        device, "POST", "/api/v1/session", {"username": "admin", "password": admin_password}
    )
    assert status == 200
    status, real = _api(device, "GET", "/api/v1/update/status", token=session["token"])
    assert status == 200 and {"state", "progress", "available", "running"} <= set(real)
    offered = {"target": "x/rc-9.9.9.img", "version": "9.9.9", "security_counter": 9, "length": 4000}
    documents = [
        {**real, "state": "available", "available": offered},
        {**real, "state": "downloading", "available": offered, "progress": {"bytes": 3000, "total": 4000}},
    ]
    installs: list[str] = []

    def status_route(route: Any) -> None:
        route.fulfill(status=200, content_type="application/json", body=json.dumps(documents[0]))

    def install_route(route: Any) -> None:
        installs.append(route.request.method)
        documents.pop(0)  # the device is now downloading
        route.fulfill(
            status=202,
            content_type="application/json",
            body=json.dumps({"installed": {"version": "9.9.9"}, "slot": "b", "rebooting": True}),
        )

    p = page.page
    p.route("**/api/v1/update/status", status_route)
    p.route("**/api/v1/update/install", install_route)
    p = _open_as_admin(page, device, admin_password)
    p.click("#nav a[data-view=update]")
    install = p.locator("#update-install")
    expect(install).to_have_text("Install 9.9.9")
    install.click()
    expect(p.locator("#update-status")).to_contain_text("restarting into it as a trial")
    expect(p.locator("#update-percent")).to_have_text("75 % (3000 of 4000 bytes)")
    assert p.evaluate("document.getElementById('update-progress').value") == 75
    expect(install).to_be_hidden()  # no second install while one runs
    assert installs == ["POST"]
    assert page.csp_violations() == []
    assert page.errors == []


def test_viewer_changes_the_admin_set_password_and_sees_no_admin_views(
    device: RunningDevice, page: Watched, admin_password: str
) -> None:
    from playwright.sync_api import expect

    status, session = _api(
        device, "POST", "/api/v1/session", {"username": "admin", "password": admin_password}
    )
    assert status == 200
    first = "a viewer password set by the admin"
    status, body = _api(
        device, "POST", "/api/v1/users",
        {"username": "viewer1", "role": "viewer", "password": first},
        token=session["token"],
    )  # fmt: skip
    assert status == 201, body
    try:
        p = page.page
        p.goto(device.url)
        _login(p, "viewer1", first)
        # A password set by an admin is also only temporary (EN 303 645 5.1-1).
        expect(p.locator("#view-change-password")).to_be_visible()
        p.fill("#pw-current", first)
        p.fill("#pw-new", "the viewer's very own passphrase")
        p.fill("#pw-confirm", "the viewer's very own passphrase")
        p.click("#password-form button[type=submit]")
        expect(p.locator("#view-dashboard")).to_be_visible()
        expect(p.locator("#whoami")).to_have_text("viewer1 (viewer)")
        for view in ("users", "audit", "update"):
            expect(p.locator(f"#nav a[data-view={view}]")).to_be_hidden()
        expect(p.locator("#nav a[data-view=live]")).to_be_visible()
        p.goto(device.url + "#/users")  # typed by hand: still only the dashboard
        expect(p.locator("#view-dashboard")).to_be_visible()
        expect(p.locator("#view-users")).to_be_hidden()
        assert page.csp_violations() == []
        assert page.errors == []
    finally:
        status, _ = _api(device, "DELETE", "/api/v1/users/viewer1", token=session["token"])
        assert status == 204


def _screenshot(p: Any, name: str, *, full_page: bool = True) -> None:
    ARTIFACTS.mkdir(exist_ok=True)
    p.screenshot(path=str(ARTIFACTS / name), full_page=full_page)


def _token(device: RunningDevice, password: str) -> str:
    status, session = _api(device, "POST", "/api/v1/session", {"username": "admin", "password": password})
    assert status == 200, session
    return str(session["token"])


def _open_settings(p: Any) -> None:
    """Open the settings view and wait until its form is loaded (editable)."""
    from playwright.sync_api import expect

    with p.expect_response(lambda r: r.url.endswith("/api/v1/settings") and r.request.method == "GET"):
        p.click("#nav a[data-view=settings]")
    expect(p.locator("#view-settings")).to_be_visible()
    expect(p.locator("#settings-form button[type=submit]")).to_be_enabled()


def _settings_patch(response: Any) -> bool:
    """The answer to the page's PATCH (not to the GET that loads the form)."""
    return bool(response.url.endswith("/api/v1/settings") and response.request.method == "PATCH")


def test_settings_page_sets_what_the_api_allows_with_its_checks_and_audit(
    device: RunningDevice, page: Watched, admin_password: str
) -> None:
    from playwright.sync_api import expect

    p = _open_as_admin(page, device, admin_password)
    _open_settings(p)
    expect(p.locator("#set-policy")).to_have_value("nist-800-63b")
    fixed = p.locator("#settings-fixed")
    expect(fixed).to_contain_text("TLS profile")
    expect(fixed).to_contain_text("intermediate")
    expect(fixed).to_contain_text("Automatic update checks")

    # The device's own validation: a plain-http source is refused with its message.
    p.fill("#set-update-url", "http://127.0.0.1:8443/repo")
    with p.expect_response(_settings_patch) as answer:
        p.click("#settings-form button[type=submit]")
    assert answer.value.status == 400
    expect(p.locator("#settings-error")).to_contain_text("must be an https:// URL")

    # A good change: saved, shown, and in the audit log.
    p.fill("#set-update-url", "https://127.0.0.1:8443/repo")
    p.select_option("#set-policy", "kr-terminal")
    with p.expect_response(_settings_patch) as answer:
        p.click("#settings-form button[type=submit]")
    assert answer.value.status == 200, answer.value.text()
    expect(p.locator("#banner")).to_contain_text("Settings saved")
    assert p.locator("#banner").evaluate("n => getComputedStyle(n).color") != _RED
    expect(p.locator("#settings-error")).to_be_hidden()
    token = _token(device, admin_password)
    status, settings = _api(device, "GET", "/api/v1/settings", token=token)
    assert status == 200
    assert settings == {"password_policy": "kr-terminal", "update_url": "https://127.0.0.1:8443/repo"}
    _screenshot(p, "webui-settings.png")

    p.click("#nav a[data-view=audit]")
    row = p.locator("#audit-table tbody tr[data-event=config_change]").first
    expect(row).to_contain_text("Settings changed")
    expect(row).to_contain_text("nist-800-63b \u2192 kr-terminal")

    # Back to the firmware's defaults, through the page again.
    _open_settings(p)
    expect(p.locator("#set-policy")).to_have_value("kr-terminal")
    p.select_option("#set-policy", "nist-800-63b")
    p.check("#set-update-default")
    expect(p.locator("#set-update-url")).to_be_disabled()
    with p.expect_response(_settings_patch) as answer:
        p.click("#settings-form button[type=submit]")
    assert answer.value.status == 200
    status, settings = _api(device, "GET", "/api/v1/settings", token=token)
    assert settings["password_policy"] == "nist-800-63b"
    assert settings["update_url"] != "https://127.0.0.1:8443/repo"
    assert page.csp_violations() == []
    assert page.errors == []


def test_audit_log_reads_in_words_filters_by_event_and_user_and_exports(
    device: RunningDevice, page: Watched, admin_password: str, tmp_path: Path
) -> None:
    from playwright.sync_api import expect

    p = page.page
    p.goto(device.url)
    _login(p, "nobody-here", "not the password")
    expect(p.locator("#login-error")).to_have_text("Wrong user name or password.")
    _login(p, "admin", admin_password)
    expect(p.locator("#view-dashboard")).to_be_visible()
    p.click("#nav a[data-view=audit]")

    # Event names in words, details as fields.
    failure = p.locator("#audit-table tbody tr[data-event=login_failure]").first
    expect(failure).to_contain_text("Failed login")
    expect(failure.locator("td.details dl.fields dt").first).to_be_visible()
    expect(failure.locator("td.details")).to_contain_text("Failed attempts")
    assert "{" not in failure.locator("td.details").inner_text()  # no raw JSON

    # Filter by event.
    p.select_option("#audit-event", "login_failure")
    p.click("#audit-filter button[type=submit]")
    expect(p.locator("#audit-summary")).to_contain_text("match event \u201cFailed login\u201d")
    rows = p.locator("#audit-table tbody tr")
    expect(rows.first).to_be_visible()
    assert {r.get_attribute("data-event") for r in rows.all()} == {"login_failure"}

    # And by user.
    p.fill("#audit-user", "nobody-here")
    p.click("#audit-filter button[type=submit]")
    expect(p.locator("#audit-summary")).to_contain_text("user \u201cnobody-here\u201d")
    expect(rows).to_have_count(1)
    expect(rows.first.locator("td").nth(3)).to_have_text("nobody-here")
    _screenshot(p, "webui-audit-filtered.png")

    p.click("#audit-clear")
    expect(p.locator("#audit-summary")).to_have_text("")
    expect(p.locator("#audit-page")).to_contain_text("Entries")

    # Export: the whole chain as JSON lines, what the API exports.
    with p.expect_download() as download:
        p.click("#audit-export")
    assert download.value.suggested_filename == f"audit-{device.serial}.jsonl"
    saved = tmp_path / "audit.jsonl"
    download.value.save_as(saved)
    entries = [json.loads(line) for line in saved.read_text().splitlines()]
    assert [e["seq"] for e in entries] == list(range(1, len(entries) + 1))
    assert any(e["event"] == "login_failure" and e["actor"] == "nobody-here" for e in entries)
    assert page.csp_violations() == []
    assert page.errors == []


# The elements that stick out on the right, for the failure message.
_WIDEST = """() => Array.from(document.querySelectorAll("body *"))
  .filter((n) => n.getBoundingClientRect().right > window.innerWidth || n.scrollWidth > n.clientWidth + 1)
  .slice(-5).map((n) => `${n.tagName}#${n.id}.${n.className} ${Math.round(n.getBoundingClientRect().right)}`)"""


def test_phone_width_has_no_horizontal_overflow(
    device: RunningDevice, browser: Any, admin_password: str
) -> None:
    from playwright.sync_api import expect

    context = browser.new_context(ignore_https_errors=False, viewport=PHONE, is_mobile=True)
    context.set_default_timeout(UI_TIMEOUT)
    try:
        p = context.new_page()
        p.goto(device.url)
        _login(p, "admin", admin_password)
        expect(p.locator("#view-dashboard")).to_be_visible()
        expect(p.locator("#dash-slots tbody tr").first).to_be_visible()
        for view, table in (("dashboard", "#dash-slots"), ("audit", "#audit-table"), ("users", "#users-table"),
                            ("update", "#update-details"), ("settings", "#settings-form")):
            p.click(f"#nav a[data-view={view}]")
            expect(p.locator(f"#view-{view}")).to_be_visible()
            p.locator(table).first.wait_for()
            width = p.evaluate("document.documentElement.scrollWidth")
            assert width <= PHONE["width"], (
                f"{view}: page is {width} px wide at {PHONE['width']} px; widest: {p.evaluate(_WIDEST)}"
            )
            right = p.locator(table).evaluate("n => n.getBoundingClientRect().right")
            assert right <= PHONE["width"], f"{view}: {table} ends at {right} px"
            if view in ("dashboard", "audit"):
                _screenshot(p, f"webui-phone-{view}.png", full_page=view == "dashboard")
        # The stacked rows keep their column names.
        p.click("#nav a[data-view=dashboard]")
        cell = p.locator("#dash-slots tbody tr").first.locator("td").first
        expect(cell).to_have_attribute("data-label", "Slot")
    finally:
        context.close()


def test_update_panel_never_says_up_to_date_without_a_check(
    device: RunningDevice, page: Watched, admin_password: str
) -> None:
    from playwright.sync_api import expect

    status, real = _api(device, "GET", "/api/v1/update/status", token=_token(device, admin_password))
    assert status == 200
    p = _open_as_admin(page, device, admin_password)
    p.click("#nav a[data-view=update]")
    details = p.locator("#update-details")
    expect(details).to_contain_text("Last check")
    if real["last_check"] is None and real["state"] == "idle":
        expect(details).to_contain_text("never")
        expect(p.locator("#update-status")).to_have_text(re.compile("Not checked for updates yet"))
    # Whatever the device says, "Up to date" never stands next to "never".
    text = p.locator("#view-update").inner_text()
    assert not ("Up to date" in text and re.search(r"Last check\s+never", text)), text
    expect(p.locator("#update-history-empty")).to_be_visible()  # no installs on this camera
    assert page.errors == []


def _audit_entry(seq: int, time_s: float, event: str, actor: str, detail: dict[str, Any]) -> dict[str, Any]:
    return {"seq": seq, "time": time_s, "event": event, "actor": actor, "source": "device", "detail": detail}


def test_update_panel_shows_installing_then_a_reverted_trial_from_status_and_audit(
    device: RunningDevice, page: Watched, admin_password: str
) -> None:
    """The steps and the outcome come from the status document and the audit log;
    here both are scripted so the rare states (a reverted trial) are shown too."""
    from playwright.sync_api import expect

    status, real = _api(device, "GET", "/api/v1/update/status", token=_token(device, admin_password))
    assert status == 200
    t0 = 1_800_000_000.0
    history = [
        _audit_entry(1, t0, "boot", "-", {"slot": "a", "version": "1.4.2", "trial": False}),
        _audit_entry(2, t0 + 60, "update_upload", "admin", {"version": "1.5.0", "slot": "b"}),
        _audit_entry(3, t0 + 62, "boot", "-", {"slot": "b", "version": "1.5.0", "trial": True}),
        _audit_entry(4, t0 + 63, "update_trial_failed", "firmware", {"version": "1.5.0", "error": "no model"}),
        _audit_entry(5, t0 + 65, "boot", "-", {"slot": "a", "version": "1.4.2", "trial": False}),
    ]
    documents = [{**real, "state": "installing", "progress": {"bytes": 4000, "total": 4000}}]

    def status_route(route: Any) -> None:
        route.fulfill(status=200, content_type="application/json", body=json.dumps(documents[-1]))

    def export_route(route: Any) -> None:
        body = "".join(json.dumps(e) + "\n" for e in history)
        route.fulfill(status=200, content_type="application/x-ndjson", body=body)

    p = page.page
    p.route("**/api/v1/update/status", status_route)
    p.route("**/api/v1/audit/export", export_route)
    p = _open_as_admin(page, device, admin_password)
    p.click("#nav a[data-view=update]")
    phases = p.locator("#update-phases li")
    expect(p.locator("#update-phases li[aria-current=step]")).to_have_text("Verify and install")
    expect(phases.first).to_have_class(re.compile("done"))

    documents.append({**real, "state": "idle", "progress": None})  # the reverted camera is back
    outcome = p.locator("#update-outcome")
    expect(outcome).to_contain_text("Update to 1.5.0 did not stick: health check failed: no model")
    expect(outcome).to_have_class(re.compile("bad"))
    expect(p.locator("#update-phases li[data-step=Reverted]")).to_contain_text("2027-01-15 08:01:03")
    row = p.locator("#update-history tbody tr").first
    expect(row).to_have_attribute("data-outcome", "reverted")
    expect(row).to_contain_text("Uploaded image")
    expect(row).to_contain_text("1.5.0")
    p.wait_for_timeout(2500)  # polls go on; the outcome stays
    expect(outcome).to_be_visible()
    assert page.errors == []


def test_flaw_banner_shows_on_every_page(
    flawed_device: RunningDevice, page: Watched
) -> None:
    from playwright.sync_api import expect

    password = _own_password(flawed_device)
    p = page.page
    p.goto(flawed_device.url)
    banner = p.locator("#flaw-banner")
    expect(p.locator("#view-login")).to_be_visible()
    expect(banner).to_be_visible()  # before logging in, too
    expect(banner).to_contain_text("no-security-txt")
    _login(p, "admin", password)
    for view in ("dashboard", "live", "update", "users", "audit", "settings"):
        p.click(f"#nav a[data-view={view}]")
        expect(p.locator(f"#view-{view}")).to_be_visible()
        expect(banner).to_be_visible()
        expect(banner).to_contain_text("UNSAFE test device")
    _screenshot(p, "webui-flaw-banner.png")


def test_real_update_uploaded_in_the_browser_is_installed_and_confirmed(
    flawed_device: RunningDevice, page: Watched, tmp_path: Path
) -> None:
    """Upload a newer signed image; the panel follows the install, the reboot and the
    trial, then keeps the success message and the history row."""
    from playwright.sync_api import expect

    assert flawed_device.keys is not None
    password = _own_password(flawed_device)
    image = tmp_path / "fw-1.4.3.img"
    _run_cli(
        "firmware", "build", "--keys", str(flawed_device.keys), "--version", "1.4.3",
        "--security-counter", "2", "-o", str(image),
    )  # fmt: skip
    p = _open_as_admin(page, flawed_device, password)
    p.click("#nav a[data-view=update]")
    expect(p.locator("#update-history-empty")).to_be_visible()
    p.set_input_files("#update-file", str(image))
    with p.expect_response("**/api/v1/update/upload") as answer:
        p.click("#update-upload-form button[type=submit]")
    assert answer.value.status == 202, answer.value.text()
    outcome = p.locator("#update-outcome")
    expect(outcome).to_contain_text("Update succeeded: firmware 1.4.3", timeout=UPDATE_TIMEOUT)
    expect(outcome).to_have_class(re.compile("ok"))
    assert outcome.evaluate("n => getComputedStyle(n).color") != _RED
    for step in ("Verify and install", "Restart", "Trial", "Confirmed"):
        expect(p.locator(f"#update-phases li[data-step='{step}']")).to_have_class(re.compile("done"))
    row = p.locator("#update-history tbody tr").first
    expect(row).to_have_attribute("data-outcome", "confirmed")
    expect(row).to_contain_text("Uploaded image")
    expect(p.locator("#update-details")).to_contain_text("1.4.3 (slot b)")
    p.wait_for_timeout(2500)  # the success message does not vanish with the next polls
    expect(outcome).to_contain_text("Update succeeded")
    _screenshot(p, "webui-update-confirmed.png")
    p.reload()  # and it is still there after a reload: it comes from the audit log
    expect(p.locator("#view-update")).to_be_visible()
    expect(p.locator("#update-outcome")).to_contain_text("Update succeeded: firmware 1.4.3")
    assert page.csp_violations() == []


# -- Korean (device/i18n.py, device/webui/locale/ko) ---------------------------------

# Every English string of the UI, as the catalogue extracts it (scripts/i18n.py):
# none of them may be left on a page shown in Korean.
def _english_strings() -> set[str]:
    import importlib.util

    spec = importlib.util.spec_from_file_location("refcam_i18n_tool", Path(__file__).resolve().parents[2] / "scripts" / "i18n.py")
    assert spec is not None and spec.loader is not None
    tool = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(tool)
    found = set()
    for message in tool.build_template():
        ids = [message.id] if isinstance(message.id, str) else list(message.id)
        # the text around placeholders; identifiers shown as they are (roles, policy names) are excluded
        for text in ids:
            for part in re.split(r"\{\w+\}", text):
                part = part.strip(" :;,.()\u201c\u201d\"")
                if len(part) >= 4 and " " in part:
                    found.add(part)
    return found


_LEFT_IN_ENGLISH = """(english) => {
  const shown = [];
  const walker = document.createTreeWalker(document.body, NodeFilter.SHOW_TEXT);
  for (let n = walker.nextNode(); n; n = walker.nextNode()) {
    const el = n.parentElement;
    if (!el || el.closest('[translate="no"], script, style, [hidden]') || !el.checkVisibility()) continue;
    shown.push(n.nodeValue.replace(/\\s+/g, " "));
  }
  const text = shown.join("\\n");
  return english.filter((s) => text.includes(s));
}"""

_CLIPPED = """() => Array.from(document.querySelectorAll("button, th, nav a, label, .card h2"))
  .filter((n) => n.checkVisibility() && (n.scrollWidth > n.clientWidth + 1 || n.scrollHeight > n.clientHeight + 1)
    && getComputedStyle(n).overflow !== "visible")
  .map((n) => n.textContent.trim())"""


def test_korean_browser_gets_every_page_in_korean_and_the_account_keeps_the_choice(
    device: RunningDevice, browser: Any, admin_password: str
) -> None:
    from playwright.sync_api import expect

    english = sorted(_english_strings())
    assert len(english) > 50
    views = ("dashboard", "live", "update", "users", "audit", "settings")
    context = browser.new_context(ignore_https_errors=False, locale="ko-KR", viewport={"width": 1200, "height": 900})
    context.set_default_timeout(UI_TIMEOUT)
    try:
        p = context.new_page()
        errors: list[str] = []
        p.on("pageerror", lambda e: errors.append(str(e)))
        p.goto(device.url)
        expect(p.locator("#view-login h1")).to_have_text("로그인")  # Accept-Language: ko-KR
        assert p.evaluate("document.documentElement.lang") == "ko"
        assert p.evaluate(_LEFT_IN_ENGLISH, english) == []
        _screenshot(p, "webui-ko-login.png")
        _login(p, "admin", admin_password)
        expect(p.locator("#view-dashboard")).to_be_visible()
        for view in views:
            p.click(f"#nav a[data-view={view}]")
            expect(p.locator(f"#view-{view}")).to_be_visible()
            if view == "dashboard":
                expect(p.locator("#dash-slots tbody tr").first).to_be_visible()
                expect(p.locator("#dash-slots tbody tr").first.locator("td").first).to_have_attribute("data-label", "슬롯")
            if view == "audit":
                expect(p.locator("#audit-table tbody tr").first).to_be_visible()
            if view == "update":
                expect(p.locator("#update-details dt").first).to_be_visible()
            p.wait_for_load_state("networkidle")
            left = p.evaluate(_LEFT_IN_ENGLISH, english)
            assert left == [], f"{view}: English left on a Korean page: {left}"
            assert p.evaluate(_CLIPPED) == [], f"{view}: clipped Hangul"
            _screenshot(p, f"webui-ko-{view}.png")
        # The switch: English now, remembered by the account (PUT, audited)...
        with p.expect_response(lambda r: r.url.endswith("/api/v1/session/language") and r.request.method == "PUT") as put:
            p.select_option("#lang-switch", "en")
        assert put.value.status == 200
        expect(p.locator("#nav a[data-view=dashboard]")).to_have_text("Dashboard")
        assert p.evaluate("document.documentElement.lang") == "en"
        _screenshot(p, "webui-en-dashboard.png")
        token = _token(device, admin_password)
        status, first = _api(device, "GET", "/api/v1/audit?after=0&limit=1", token=token)
        assert status == 200
        status, audit = _api(device, "GET", f"/api/v1/audit?after={max(0, first['head']['seq'] - 50)}&limit=50", token=token)
        assert status == 200
        changes = [e["detail"] for e in audit["entries"] if e["event"] == "preference_change"]
        assert changes and changes[-1]["language"][1] == "en", changes
        # ...so another Korean browser logging in to this account gets English, and the way back.
        other = browser.new_context(ignore_https_errors=False, locale="ko-KR")
        other.set_default_timeout(UI_TIMEOUT)
        q = other.new_page()
        q.goto(device.url)
        expect(q.locator("#view-login h1")).to_have_text("로그인")
        _login(q, "admin", admin_password)
        expect(q.locator("#nav a[data-view=dashboard]")).to_have_text("Dashboard")
        q.select_option("#lang-switch", "ko")
        expect(q.locator("#nav a[data-view=dashboard]")).to_have_text("대시보드")
        expect(q.locator("#whoami")).to_have_text("admin (관리자)")
        other.close()
        assert errors == []
    finally:
        context.close()
        status, _ = _api(device, "PUT", "/api/v1/session/language", {"language": "en"}, token=_token(device, admin_password))
        assert status == 200
