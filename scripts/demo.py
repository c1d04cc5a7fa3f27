"""`make demo`: the whole refcam story end to end on embedded defaults, printing every step.

Everything lives under ./demo-out (recreated on each run): generated keys, the
vendor's TUF repository and PSIRT database, firmware images, device state,
probe reports. Servers listen on loopback only and are stopped at the end.

1. keys, firmware, secure boot (and a tampered slot refused)
2. the vendor server and the camera, TLS only
3. first login with the label password: everything refused until the change
4. attestation evidence, verified against the vendor's reference values
5. a signed video stream, recorded and verified
6. a vulnerability report against 1.0.0, triaged, fixed in 2.0.0, published through TUF
7. the update 1.0.0 -> 2.0.0 with trial boot and confirm; a rollback refused; the advisory
8. the conformance probe: the secure camera passes, a flawed one fails where expected
"""

from __future__ import annotations

import json
import os
import re
import secrets
import shutil
import socket
import ssl
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
OUT = ROOT / "demo-out"
BIN = Path(sys.executable).parent
REFCAM = str(BIN / "refcam")
NEW_PASSWORD = "demo-" + secrets.token_urlsafe(12)  # >= 15 characters: NIST 800-63B profile
SERVERS: list[subprocess.Popen[str]] = []


def banner(title: str) -> None:
    print(f"\n=== {title} " + "=" * max(0, 70 - len(title)), flush=True)


def say(text: str) -> None:
    print(f"# {text}", flush=True)


def run(*args: str, expect: int = 0, env: dict[str, str] | None = None, show: int = 40) -> str:
    shown = " ".join(a if " " not in a else repr(a) for a in args)
    print(f"$ {shown.replace(str(OUT) + '/', '')}", flush=True)
    proc = subprocess.run(
        [REFCAM if args[0] == "refcam" else args[0], *args[1:]],
        cwd=OUT, capture_output=True, text=True, check=False, env={**os.environ, **(env or {})},
    )
    lines = (proc.stdout + proc.stderr).rstrip().splitlines()
    for line in lines[:show]:
        print(f"  {line}")
    if len(lines) > show:
        print(f"  ... ({len(lines) - show} more lines)")
    if proc.returncode != expect:
        print(f"demo: expected exit {expect}, got {proc.returncode}", file=sys.stderr)
        raise SystemExit(1)
    return proc.stdout


def free_port(preferred: int) -> int:
    for port in (preferred, 0):
        with socket.socket() as s:
            try:
                s.bind(("127.0.0.1", port))
            except OSError:
                continue
            return int(s.getsockname()[1])
    raise SystemExit("demo: no free port")


def start(name: str, ready: str, *args: str) -> subprocess.Popen[str]:
    print(f"$ {' '.join(args).replace(str(OUT) + '/', '')} &", flush=True)
    log = open(OUT / f"{name}.log", "w")  # noqa: SIM115 - lives as long as the server
    proc = subprocess.Popen([REFCAM, *args[1:]], cwd=OUT, stdout=log, stderr=subprocess.STDOUT, text=True)
    SERVERS.append(proc)
    deadline = time.monotonic() + 90
    while time.monotonic() < deadline:
        text = (OUT / f"{name}.log").read_text()
        if ready in text:
            for line in text.splitlines():
                if "serving" in line or "UNSAFE" in line:
                    print(f"  {line}")
            return proc
        if proc.poll() is not None:
            print(text)
            raise SystemExit(f"demo: {name} exited")
        time.sleep(0.2)
    raise SystemExit(f"demo: {name} did not start; see {OUT / (name + '.log')}")


class Client:
    """HTTPS with validated chain and host name; prints each exchange briefly."""

    def __init__(self, base: str, ca: Path) -> None:
        self.base = base
        self.context = ssl.create_default_context(cafile=str(ca))

    def __call__(self, method: str, path: str, *, token: str | None = None, body: Any = None,
                 raw: bytes | None = None, quiet: bool = False) -> tuple[int, Any]:
        data = raw if raw is not None else (json.dumps(body).encode() if body is not None else None)
        request = urllib.request.Request(self.base + path, data=data, method=method)  # noqa: S310 - https base
        request.add_header("Content-Type", "application/octet-stream" if raw is not None else "application/json")
        if token:
            request.add_header("Authorization", f"Bearer {token}")
        try:
            with urllib.request.urlopen(request, context=self.context, timeout=120) as response:  # noqa: S310
                status, text = response.status, response.read()
        except urllib.error.HTTPError as exc:
            status, text = exc.code, exc.read()
        try:
            doc = json.loads(text) if text else None
        except ValueError:
            doc = text.decode("utf-8", "replace")
        if not quiet:
            shown_body = {k: ("<redacted>" if "password" in k else v) for k, v in body.items()} if isinstance(body, dict) else (f"<{len(raw)} bytes>" if raw else "")
            print(f"> {method} {path} {json.dumps(shown_body) if shown_body else ''}".rstrip())
            summary = json.dumps(doc) if not isinstance(doc, str) else doc
            print(f"< {status} {summary[:300]}{'...' if len(summary) > 300 else ''}")
        return status, doc


def wait_until(check: Any, what: str, timeout: float = 120.0) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            value = check()
            if value:
                return value
        except OSError:
            pass
        time.sleep(0.5)
    raise SystemExit(f"demo: timed out waiting for {what}")


def flip_byte(src: Path, dst: Path, offset: int) -> None:
    data = bytearray(src.read_bytes())
    data[offset] ^= 0x01
    dst.write_bytes(bytes(data))


def label_password(state: str) -> str:
    match = re.search(r"(?im)^\s*(?:initial )?password\s*[:=]\s*(\S+)", (OUT / state / "label.txt").read_text())
    assert match
    return match.group(1)


def main() -> int:
    if OUT.exists():
        shutil.rmtree(OUT)
    OUT.mkdir()
    try:
        story()
    finally:
        for proc in SERVERS:
            proc.terminate()
        for proc in SERVERS:
            try:
                proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                proc.kill()
    return 0


def story() -> None:
    banner("1. keys, signed firmware, secure boot")
    run("refcam", "keys", "init", "--dir", "keys", show=4)
    say("the vendor's TUF repository: its root is embedded in every firmware image")
    run("refcam", "repo", "init", "--dir", "repo", "--keys", "keys")
    for version, counter in (("0.9.0", "0"), ("1.0.0", "1"), ("2.0.0", "2")):
        run("refcam", "firmware", "build", "--keys", "keys", "--version", version, "--security-counter", counter,
            "--tuf-root", "repo/metadata/1.root.json", "-o", f"fw-{version}.img")
    run("refcam", "firmware", "verify", "fw-1.0.0.img", "--keys", "keys")
    if (BIN / "imgtool").exists():
        say("MCUboot's own tool agrees")
        run(str(BIN / "imgtool"), "verify", "-k", "keys/firmware-signing.pub.pem", "fw-1.0.0.img")
    run("refcam", "firmware", "inspect", "fw-2.0.0.img", show=14)
    run("refcam", "device", "provision", "--state", "camera", "--keys", "keys", "--firmware", "fw-1.0.0.img")
    run("refcam", "device", "boot", "--state", "camera")
    say("flip one byte of v2 and write it to slot B, as someone with physical access could")
    size = (OUT / "fw-2.0.0.img").stat().st_size
    flip_byte(OUT / "fw-2.0.0.img", OUT / "fw-2.0.0-tampered.img", size // 2)
    run("refcam", "firmware", "verify", "fw-2.0.0-tampered.img", "--keys", "keys", expect=1)
    run("refcam", "device", "flash", "--state", "camera", "--slot", "b", "fw-2.0.0-tampered.img")
    run("refcam", "device", "boot", "--state", "camera")

    banner("2. the vendor server and the camera (TLS only)")
    vport, dport = free_port(9443), free_port(8443)
    vendor_url, device_url = f"https://localhost:{vport}", f"https://localhost:{dport}"
    start("vendor", "serving", "refcam", "update-server", "run", "--repo", "repo", "--keys", "keys",
          "--port", str(vport))
    start("camera", "refcam device serving", "refcam", "device", "run", "--state", "camera", "--port", str(dport),
          "--vendor-url", vendor_url, "--update-url", vendor_url)
    (OUT / "root.pem").write_text(run("refcam", "device", "ca", "--state", "camera", show=1))
    say(f"root.pem is the manufacturer root; curl --cacert root.pem {device_url}/api/v1/info")
    camera = Client(device_url, OUT / "root.pem")
    vendor = Client(vendor_url, OUT / "keys" / "vendor" / "root-ca.pem")
    camera("GET", "/api/v1/info")
    camera("GET", "/api/v1/status")

    banner("3. first login: the label password only opens the password change")
    run("refcam", "device", "label", "--state", "camera")
    label = label_password("camera")
    _, doc = camera("POST", "/api/v1/session", body={"username": "admin", "password": label})
    first = doc["token"]
    camera("GET", "/api/v1/status", token=first)
    camera("POST", "/api/v1/session/password", token=first,
           body={"current_password": label, "new_password": "admin123"})
    camera("POST", "/api/v1/session/password", token=first,
           body={"current_password": label, "new_password": NEW_PASSWORD})
    _, doc = camera("POST", "/api/v1/session", body={"username": "admin", "password": NEW_PASSWORD})
    token = doc["token"]
    camera("GET", "/api/v1/status", token=token)

    banner("4. attestation: fresh evidence, checked against the vendor's reference values")
    run("refcam", "firmware", "sign-bootloader", "--keys", "keys", "--version", "1.0.0", "--security-counter", "1",
        "-o", "bootloader.img")
    run("refcam", "attest", "reference", "--bootloader", "bootloader.img", "--firmware", "fw-1.0.0.img",
        "--firmware", "fw-2.0.0.img", "-o", "reference-values.json")
    nonce = secrets.token_hex(32)
    _, doc = camera("POST", "/api/v1/attestation", token=token, body={"nonce": nonce})
    import base64

    (OUT / "evidence.jws").write_bytes(base64.b64decode(doc["evidence"]))
    run("refcam", "attest", "verify", "evidence.jws", "--ca", "root.pem", "--reference", "reference-values.json",
        "--nonce", nonce)

    banner("5. a signed video stream, recorded and verified")
    env = {"REFCAM_TOKEN": token}
    run("refcam", "stream", "record", device_url, "--ca", "root.pem", "--token-env", "REFCAM_TOKEN",
        "--frames", "45", "--out", "stream.rec", env=env)
    run("refcam", "stream", "verify", "stream.rec", "--ca", "root.pem")

    banner("6. a vulnerability report against 1.0.0, triaged and fixed in 2.0.0")
    vendor("GET", "/.well-known/security.txt")
    _, doc = vendor("POST", "/api/v1/reports", body={
        "title": "Stored XSS in the camera's user list",
        "description": "A user name with a script tag ran in the admin's browser.",
        "product": "RC-1080", "version": "1.0.0", "reporter_contact": "mailto:researcher@example.org"})
    report = doc["tracking_id"]
    advisory = "REFCAM-SA-" + report.removeprefix("R-")
    run("refcam", "psirt", "ack", report)
    run("refcam", "psirt", "triage", report, "--cvss", "CVSS:3.1/AV:N/AC:L/PR:N/UI:R/S:C/C:H/I:H/A:H")
    run("refcam", "psirt", "start-fix", report)
    run("refcam", "psirt", "fixed", report, "--release", "refcam-rc1080-v1:2.0.0")
    say(f"the release is published through TUF with its SBOM, and names the advisory it fixes ({advisory})")
    run("refcam", "repo", "publish", "repo", "fw-2.0.0.img", "--keys", "keys", "--fixes", advisory)

    banner("7. update 1.0.0 -> 2.0.0 through TUF, trial boot, confirm; rollback refused")
    camera("POST", "/api/v1/update/check", token=token, body={})
    _, doc = camera("GET", "/api/v1/update/status", token=token, quiet=True)
    print(f"  advisories affecting the running firmware: {doc['advisories']}")
    camera("POST", "/api/v1/update/install", token=token, body={})
    say("the camera reboots through ROM and bootloader, boots 2.0.0 as a trial, checks itself, confirms")

    def confirmed() -> Any:
        status, doc = camera("GET", "/api/v1/update/status", token=token, quiet=True)
        running = doc.get("running", {}) if isinstance(doc, dict) else {}
        return doc if status == 200 and running.get("version") == "2.0.0" and not running.get("trial") else None

    status_doc = wait_until(confirmed, "the confirmed 2.0.0")
    for line in (OUT / "camera.log").read_text().splitlines():
        if "trial" in line or "booting slot" in line:
            print(f"  {line}")
    print(f"  running {status_doc['running']}, fused counter {status_doc['fused_counter']}")
    say("a genuinely signed but older image is refused by the anti-rollback counter")
    camera("POST", "/api/v1/update/upload", token=token, raw=(OUT / "fw-1.0.0.img").read_bytes())
    say("the advisory is published (CSAF 2.0), and the SLA report shows the deadlines met")
    run("refcam", "psirt", "publish", report, "--base-url", vendor_url, show=8)
    vendor("GET", "/.well-known/csaf/white/index.txt")
    run("refcam", "psirt", "sla", "--format", "table")

    banner("8. the conformance probe: a fresh secure unit, then a flawed one")
    say("two more units from the same production line: one secure, one with two flaws switched on")
    run("refcam", "device", "provision", "--state", "golden", "--keys", "keys", "--firmware", "fw-1.0.0.img")
    run("refcam", "device", "provision", "--state", "flawed", "--keys", "keys", "--firmware", "fw-1.0.0.img")
    gport, fport = free_port(8445), free_port(8444)
    start("golden", "refcam device serving", "refcam", "device", "run", "--state", "golden", "--port", str(gport),
          "--vendor-url", vendor_url, "--update-url", vendor_url)
    start("flawed", "refcam device serving", "refcam", "device", "run", "--state", "flawed", "--port", str(fport),
          "--vendor-url", vendor_url, "--update-url", vendor_url, "--flaw", "tls-legacy", "--flaw", "no-lockout")
    common = ["--ca", "root.pem", "--vendor", vendor_url, "--vendor-ca", "keys/vendor/root-ca.pem",
              "--reference", "reference-values.json", "--image", "fw-2.0.0.img", "--older-image", "fw-0.9.0.img",
              "--allow-destructive"]
    say("the secure unit: every case passes (exit 0)")
    run("refcam", "probe", f"https://localhost:{gport}", "--label-password", label_password("golden"),
        "--peer", device_url, *common, "--report", "reports/secure", show=60)
    say("the flawed unit: the probe fails exactly the cases of the two flaws (exit 1)")
    run("refcam", "probe", f"https://localhost:{fport}", "--label-password", label_password("flawed"),
        "--peer", device_url, *common, "--report", "reports/flawed", expect=1, show=60)

    banner("done")
    print(f"HTML reports: {OUT / 'reports' / 'secure' / 'report.html'}")
    print(f"              {OUT / 'reports' / 'flawed' / 'report.html'}")
    print(f"everything the demo made is in {OUT}")


if __name__ == "__main__":
    sys.exit(main())
