"""The device's security.txt: Canonical from configuration, a Contact a person can use, valid to sectxt."""

from __future__ import annotations

import datetime as dt

import pytest
import sectxt
from device_fixtures import RunningDevice, StartDevice

from common.flaws import UnsafeFlaws
from device.disclosure import add_disclosure_routes, security_txt
from device.main import ConfigError, default_public_url, parse_args

PUBLIC = "https://cam-rctest000001.local:8443"
VENDOR = "https://vendor.example"
NOW = dt.datetime(2026, 3, 1, tzinfo=dt.UTC)


async def serving(start_device: StartDevice) -> RunningDevice:
    device: RunningDevice = await start_device(
        extensions=[lambda app: add_disclosure_routes(app, vendor_url=VENDOR, public_url=PUBLIC, flaws=UnsafeFlaws())]
    )
    return device


def sectxt_findings(text: str, url: str) -> tuple[list[str], list[str]]:
    """Errors and recommendations of sectxt (an independent RFC 9116 validator) for ``text`` found at ``url``."""
    parser = sectxt.Parser(text.encode("utf-8"), urls=url)
    return [e["code"] for e in parser.errors], [r["code"] for r in parser.recommendations]


async def test_canonical_is_the_configured_url_whatever_the_host_header(start_device: StartDevice) -> None:
    device = await serving(start_device)
    async with device.client() as s:
        for host in (None, "attacker.example", "bad host:x", "[::1", "a" * 300, "é.example"):
            headers = {"Host": host} if host is not None else {}
            async with s.get(device.url("/.well-known/security.txt"), headers=headers) as r:
                assert r.status in (200, 400), (host, r.status)  # never a 500
                if r.status == 200:
                    text = await r.text()
                    assert f"Canonical: {PUBLIC}/.well-known/security.txt\n" in text, host
                    assert "attacker" not in text


async def test_device_security_txt_passes_sectxt_and_its_first_contact_is_a_page(start_device: StartDevice) -> None:
    device = await serving(start_device)
    async with device.client() as s, s.get(device.url("/.well-known/security.txt")) as r:
        assert r.status == 200 and r.content_type == "text/plain" and r.charset == "utf-8"
        text = await r.text()
    errors, recommendations = sectxt_findings(text, f"{PUBLIC}/.well-known/security.txt")
    assert errors == [], text
    assert set(recommendations) <= {"not_signed"}, recommendations  # unsigned: see docs/DISCLOSURE
    contacts = [line.split(": ", 1)[1] for line in text.splitlines() if line.startswith("Contact: ")]
    assert contacts[0] == f"{VENDOR}/security/policy"  # the policy page with the report form (GET-able)
    assert not any("/api/" in c for c in contacts)


def test_sectxt_catches_a_canonical_that_is_not_where_the_file_is() -> None:
    """The check above is not vacuous: a Canonical naming another place is an error for sectxt."""
    text = security_txt(vendor_url=VENDOR, device_url="https://elsewhere.example", now=NOW)
    errors, _ = sectxt_findings(text, f"{PUBLIC}/.well-known/security.txt")
    assert "no_canonical_match" in errors


def test_public_url_is_configured_or_the_certificate_name() -> None:
    assert default_public_url("RC1A2B3C4D5E", 8443) == "https://cam-RC1A2B3C4D5E.local:8443"
    assert default_public_url("RC1A2B3C4D5E", 443) == "https://cam-RC1A2B3C4D5E.local"
    assert parse_args(["--public-url", "https://cam.example.org:9443/"]).public_url == "https://cam.example.org:9443"
    for bad in ("http://cam.example", "https://cam.example/path", "https://user@cam.example", "https://cam:x"):
        with pytest.raises(ConfigError, match="--public-url"):
            parse_args(["--public-url", bad])
