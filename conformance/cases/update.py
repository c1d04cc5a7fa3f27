"""Secure-update cases (KS X 3020 C1, C5; rows 18-25).

The probe plays the attacker with the attacker's own tooling: it signs images
with a fresh key (and a key manifest from a fresh "root of trust"), strips the
signature off an image, and flips one byte of the vendor's image
(``--image``), then uploads each through the device's manual update path. A
secure device rejects every one before touching flash; a flawed one may
install it, which is why these cases only run with ``--allow-destructive``.
"""

from __future__ import annotations

import secrets
import socket
import ssl
import time
from pathlib import Path
from typing import Any

from ..case import ProbeContext, failed, inconclusive, not_tested, passed, register, undone
from ..errors import ProbeError
from ..http import Exchange
from ..i18n import msg
from ..mcuboot import flip_payload_byte, forge_image, read_header, strip_signature
from ..model import Evidence, UnitResult
from ..verdicts import undecided
from ._session import admin, test_user

UPLOAD = "/api/v1/update/upload"
STATUS = "/api/v1/update/status"
ATTACK_PAYLOAD = 64 * 1024  # bytes of random payload in forged images


def _device(ctx: ProbeContext) -> dict[str, Any]:
    boss = admin(ctx)
    doc = ctx.http.request("GET", "/api/v1/info", token=boss.token).json()
    if not isinstance(doc, dict) or "firmware_version" not in doc:
        raise ValueError("device info does not give the firmware version")
    return doc


def attacker_image(hardware_id: str, *, version: str = "99.0.0", security_counter: int = 250) -> bytes:
    """A well-formed image for this model, signed by a key the vendor never certified."""
    return forge_image(
        secrets.token_bytes(ATTACK_PAYLOAD), hardware_id=hardware_id, version=version,
        security_counter=security_counter,
    )  # fmt: skip


def unsigned_image(signed: bytes) -> bytes:
    """The same covered bytes with an unprotected area holding only the SHA-256 TLV."""
    return strip_signature(signed)


def flipped_image(signed: bytes) -> bytes:
    return flip_payload_byte(signed)


REBOOT_DOWN_WAIT = 10.0  # seconds for an accepting device to go down for its reboot
REBOOT_UP_WAIT = 90.0  # seconds for it to boot through the chain and answer again
REBOOT_POLL = 1.0  # seconds between polls


def _upload(ctx: ProbeContext, data: bytes, token: str | None) -> Exchange:
    ex = ctx.http.request(
        "POST", UPLOAD, raw_body=data, headers={"Content-Type": "application/octet-stream"}, token=token
    )
    if 200 <= ex.status < 300:
        _await_reboot(ctx)  # an accepting device installs and reboots; wait before judging more
    return ex


def _await_reboot(ctx: ProbeContext) -> None:
    """Poll device info (bounded): first until it stops answering, then until it answers."""
    ctx.http.budget += int((REBOOT_DOWN_WAIT + REBOOT_UP_WAIT) / REBOOT_POLL) + 2
    deadline = time.monotonic() + REBOOT_DOWN_WAIT
    went_down = False
    while time.monotonic() < deadline:
        if ctx.http.request("GET", "/api/v1/info").status == 0:
            went_down = True
            break
        time.sleep(REBOOT_POLL)
    if not went_down:
        return
    deadline = time.monotonic() + REBOOT_UP_WAIT
    while time.monotonic() < deadline:
        time.sleep(REBOOT_POLL)
        if ctx.http.request("GET", "/api/v1/info").status == 200:
            return
    raise ProbeError(msg("the device did not come back within {reboot_up_wait:.0f} s after accepting an upload", reboot_up_wait=REBOOT_UP_WAIT))


def _rejected(letter: str, what: str, ex: Exchange) -> UnitResult:
    if undecided(ex):  # throttled, failed or dropped: the image was not judged (conformance.verdicts)
        return inconclusive(letter, msg("{what}: no definite answer (HTTP {value})", what=what, value=ex.status or ex.error), ex.evidence())
    if 400 <= ex.status < 500:
        return passed(letter, msg("{what} rejected: HTTP {status} {text}", what=what, status=ex.status, text=ex.text[:160]), ex.evidence())
    return failed(letter, msg("{what} not rejected: HTTP {status}", what=what, status=ex.status), ex.evidence())


def _unchanged(ctx: ProbeContext, letter: str, before: str) -> UnitResult:
    after = _device(ctx).get("firmware_version")
    status = ctx.http.request("GET", STATUS, token=admin(ctx).token)
    state = status.json().get("state") if isinstance(status.json(), dict) else None
    ev = status.evidence()
    if after != before:
        return failed(letter, msg("the firmware version changed from {before} to {after}", before=before, after=after), ev)
    if state not in (None, "idle", "failed", "error"):
        return failed(letter, msg("the update client is in state \"{state}\" after rejected uploads", state=state), ev)
    return passed(letter, msg("still running {before}; update state \"{state}\"", before=before, state=state), ev)


@register("UPD-01", budget=12, destructive=True, order=45, requires=("interface:refcam-api", "update:upload"))
def unsigned_and_tampered(ctx: ProbeContext) -> list[UnitResult]:
    info = _device(ctx)
    before = str(info["firmware_version"])
    token = admin(ctx).token
    forged = attacker_image(str(info.get("hardware_id", "unknown")))
    a = _rejected("a", msg("unsigned image"), _upload(ctx, unsigned_image(forged), token))
    if ctx.options.image is None:
        b = not_tested("b", msg("needs a vendor-signed image of this model to flip a byte in"), "--image")
    else:
        b = _rejected("b", msg("image with one flipped byte"), _upload(ctx, flipped_image(Path(ctx.options.image).read_bytes()), token))
    return [a, b, _unchanged(ctx, "c", before)]


@register("UPD-02", budget=8, destructive=True, order=46, requires=("interface:refcam-api", "update:upload"))
def unknown_key(ctx: ProbeContext) -> list[UnitResult]:
    info = _device(ctx)
    before = str(info["firmware_version"])
    forged = attacker_image(str(info.get("hardware_id", "unknown")))
    return [
        _rejected("a", msg("attacker-signed image"), _upload(ctx, forged, admin(ctx).token)),
        _unchanged(ctx, "b", before),
    ]


@register("UPD-03", budget=8, destructive=True, order=47, requires=("interface:refcam-api", "update:upload", "update:anti-rollback"))
def older_image(ctx: ProbeContext) -> list[UnitResult]:
    if ctx.options.older_image is None:
        return [not_tested("a", msg("no older signed image given"), "--older-image")]
    before = str(_device(ctx)["firmware_version"])
    data = Path(ctx.options.older_image).read_bytes()
    return [
        _rejected("a", msg("older image {version}", version=read_header(data).version), _upload(ctx, data, admin(ctx).token)),
        _unchanged(ctx, "b", before),
    ]


@register("UPD-04", budget=8, order=44, requires=("interface:refcam-api", "update:upload"))
def admin_only(ctx: ProbeContext) -> list[UnitResult]:
    junk = b"not an image"
    anon = _upload(ctx, junk, None)
    if undecided(anon):
        a = inconclusive("a", msg("anonymous upload: no definite answer (HTTP {value})", value=anon.status or anon.error), anon.evidence())
    elif anon.status == 401:
        a = passed("a", msg("anonymous upload refused (401)"), anon.evidence())
    else:
        a = failed("a", msg("anonymous upload answered {status}", status=anon.status), anon.evidence())
    try:
        viewer = test_user(ctx, "viewer")
    except Exception as exc:  # noqa: BLE001
        return [a, undone("b", exc)]
    v = _upload(ctx, junk, viewer.token)
    if undecided(v):
        b = inconclusive("b", msg("viewer upload: no definite answer (HTTP {value})", value=v.status or v.error), v.evidence())
    elif v.status == 403:
        b = passed("b", msg("viewer upload refused (403)"), v.evidence())
    else:
        b = failed("b", msg("viewer upload answered {status}", status=v.status), v.evidence())
    return [a, b]


def _plain(setting: dict[str, object]) -> str:
    """A settings object as ``key=value`` pairs (no Python repr in a report)."""
    return ", ".join(f"{k}={str(v).lower() if isinstance(v, bool) else v}" for k, v in setting.items())


@register("UPD-06", budget=3, order=48, requires=("interface:refcam-api", "update:repository"))
def automatic_checks(ctx: ProbeContext) -> list[UnitResult]:
    ex = ctx.http.request("GET", STATUS, token=admin(ctx).token)
    doc = ex.json()
    setting = doc.get("automatic_checks") if isinstance(doc, dict) else None
    if ex.status == 200 and isinstance(setting, dict) and "enabled" in setting:
        return [passed("a", msg("automatic checks reported: {plain}", plain=_plain(setting)), ex.evidence())]
    return [failed("a", msg("the update status reports no automatic-check setting"), ex.evidence())]


@register("UPD-07", budget=6, destructive=True, order=49, requires=("interface:refcam-api", "update:upload"))
def interrupted_upload(ctx: ProbeContext) -> list[UnitResult]:
    info = _device(ctx)
    before = str(info["firmware_version"])
    token = admin(ctx).token
    data = attacker_image(str(info.get("hardware_id", "unknown")))
    head = (
        f"POST {UPLOAD} HTTP/1.1\r\nHost: {ctx.host}\r\nAuthorization: Bearer {token}\r\n"
        f"Content-Type: application/octet-stream\r\nContent-Length: {len(data)}\r\n\r\n"
    ).encode()
    tls = ssl.create_default_context(cafile=ctx.options.ca_file)
    try:
        with socket.create_connection((ctx.host, ctx.port), timeout=10) as raw, tls.wrap_socket(
            raw, server_hostname=ctx.host
        ) as conn:
            conn.sendall(head + data[: len(data) // 2])
        a = passed("a", msg("sent {n_data} of {n_data2} bytes, then cut the connection", n_data=len(data) // 2, n_data2=len(data)))
    except OSError as exc:
        a = passed("a", msg("the device dropped the truncated upload: {exc}", exc=exc))
    alive = ctx.http.request("GET", "/api/v1/info", token=token)
    if alive.status != 200:
        return [a, failed("b", msg("the device stopped answering after the cut (HTTP {status})", status=alive.status), alive.evidence())]
    unchanged = _unchanged(ctx, "b", before)
    return [a, unchanged if unchanged.verdict.value == "FAIL" else passed("b", unchanged.reason, alive.evidence())]


class RogueRepository:
    """A throw-away HTTPS server with a self-signed certificate, counting requests.

    A device that validates the chain never completes a request to it; a device
    that accepts any certificate sends HTTP requests, and each one is recorded.
    """

    def __init__(self, bind: str, name: str) -> None:
        import datetime as dt
        import http.server
        import ipaddress
        import tempfile
        import threading

        from cryptography import x509
        from cryptography.hazmat.primitives import hashes, serialization
        from cryptography.hazmat.primitives.asymmetric import ec
        from cryptography.x509.oid import NameOID

        key = ec.generate_private_key(ec.SECP256R1())
        subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, f"rogue {name}")])
        now = dt.datetime.now(dt.UTC)
        alt: list[x509.GeneralName] = [x509.DNSName("localhost")]
        try:
            alt.append(x509.IPAddress(ipaddress.ip_address(bind)))
        except ValueError:
            alt.append(x509.DNSName(bind))
        cert = (
            x509.CertificateBuilder().subject_name(subject).issuer_name(subject).public_key(key.public_key())
            .serial_number(x509.random_serial_number()).not_valid_before(now - dt.timedelta(minutes=5))
            .not_valid_after(now + dt.timedelta(days=1))
            .add_extension(x509.SubjectAlternativeName(alt), critical=False)
            .sign(key, hashes.SHA256())
        )
        self._dir = tempfile.TemporaryDirectory(prefix="refcam-rogue-")
        pem = Path(self._dir.name) / "rogue.pem"
        pem.write_bytes(
            cert.public_bytes(serialization.Encoding.PEM)
            + key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                serialization.NoEncryption())
        )
        self.requests: list[str] = []
        seen = self.requests

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                seen.append(self.path)
                self.send_response(404)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, format: str, *args: Any) -> None:
                return

        self._server = http.server.ThreadingHTTPServer((bind, 0), Handler)
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.load_cert_chain(pem)
        self._server.socket = context.wrap_socket(self._server.socket, server_side=True)
        self.port = int(self._server.server_address[1])
        host = f"[{bind}]" if ":" in bind else bind
        self.url = f"https://{'localhost' if bind in ('127.0.0.1', '::1') else host}:{self.port}"
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)
        self._thread.start()

    def close(self) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._dir.cleanup()


def _local_address_towards(host: str) -> str:
    """The probe host's address on the route to the camera (loopback stays loopback)."""
    import ipaddress

    try:
        if ipaddress.ip_address(host).is_loopback:
            return "127.0.0.1"
    except ValueError:
        if host == "localhost":
            return "127.0.0.1"
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.connect((host, 9))  # no packet is sent for a UDP connect
        return str(s.getsockname()[0])


@register("UPD-05", budget=10, order=50, requires=("interface:refcam-api", "update:repository"))
def rogue_repository(ctx: ProbeContext) -> list[UnitResult]:
    boss = admin(ctx)
    settings = ctx.http.request("GET", "/api/v1/settings", token=boss.token)
    doc = settings.json()
    if settings.status != 200 or not isinstance(doc, dict) or "update_url" not in doc:
        return [inconclusive("a", msg("the device exposes no update-source setting"), settings.evidence())]
    original = doc["update_url"]
    before = str(_device(ctx)["firmware_version"])
    rogue = RogueRepository(_local_address_towards(ctx.host), ctx.host)
    try:
        moved = ctx.http.request("PATCH", "/api/v1/settings", json_body={"update_url": rogue.url}, token=boss.token)
        if moved.status != 200:
            return [inconclusive("a", msg("cannot set the update source: HTTP {status}", status=moved.status), moved.evidence())]

        def restore() -> None:
            back = ctx.http.request("PATCH", "/api/v1/settings", json_body={"update_url": original}, token=boss.token)
            if back.status != 200:
                raise ValueError(f"restoring the update source answered HTTP {back.status}")

        ctx.cleanups.append(("restore the update source", restore))
        check = ctx.http.request("POST", "/api/v1/update/check", json_body={}, token=boss.token)
    finally:
        rogue.close()
    contacted = Evidence("note", "requests the rogue repository received", {"paths": rogue.requests[:20]})
    if rogue.requests:
        a = failed("a", msg("the device completed TLS with a self-signed server and sent {n_requests} requests", n_requests=len(rogue.requests)),
                   check.evidence(), contacted)
    elif 200 <= check.status < 300:
        a = failed("a", msg("the update check succeeded against a rogue repository"), check.evidence(), contacted)
    else:
        a = passed("a", msg("the check failed before any request reached the rogue server (HTTP {status})", status=check.status),
                   check.evidence(), contacted)
    ctx.cleanups.pop()[1]()  # restore now, so later cases see the real source
    after = ctx.http.request("GET", "/api/v1/settings", token=boss.token)
    restored = isinstance(after.json(), dict) and after.json().get("update_url") == original
    unchanged = _unchanged(ctx, "b", before)
    if not restored:
        return [a, failed("b", msg("the update source was not restored to {original}", original=original), after.evidence())]
    return [a, unchanged if unchanged.verdict.value == "FAIL" else passed(
        "b", msg("update source restored to {original}; still running {before}", original=original, before=before), after.evidence())]
