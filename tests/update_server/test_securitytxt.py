"""RFC 9116 field rules for security.txt (requirement row 30)."""

from __future__ import annotations

import contextlib
from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given
from hypothesis import strategies as st

from common.errors import SecurityTxtError
from common.securitytxt import (
    RENEW_AFTER,
    build_security_txt,
    parse_security_txt,
    security_txt_for,
)

NOW = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)
BASE = "https://vendor.example"


def _txt(*lines: str) -> str:
    return "\n".join(lines) + "\n"


def _expires(delta: timedelta) -> str:
    return f"Expires: {(NOW + delta).strftime('%Y-%m-%dT%H:%M:%SZ')}"


def test_generated_file_round_trips_with_all_fields() -> None:
    text = build_security_txt(
        contacts=["mailto:psirt@vendor.example", "https://vendor.example/report"],
        expires=NOW + timedelta(days=30),
        policy_url=f"{BASE}/security/policy",
        preferred_languages=["en", "ko"],
        canonical_urls=[f"{BASE}/.well-known/security.txt"],
        csaf_url=f"{BASE}/.well-known/csaf/provider-metadata.json",
        encryption=f"{BASE}/pgp-key.txt",
        acknowledgments=f"{BASE}/thanks",
    )
    info = parse_security_txt(text, now=NOW, source_url=f"{BASE}/.well-known/security.txt")
    assert info.contacts == ("mailto:psirt@vendor.example", "https://vendor.example/report")
    assert info.expires == NOW + timedelta(days=30)
    assert info.policy == (f"{BASE}/security/policy",)
    assert info.csaf == (f"{BASE}/.well-known/csaf/provider-metadata.json",)
    assert info.preferred_languages == ("en", "ko")
    assert info.encryption == (f"{BASE}/pgp-key.txt",)
    assert info.warnings == ()


def test_security_txt_for_renews_expires_under_a_year() -> None:
    for now in (NOW, NOW + timedelta(days=400), NOW + timedelta(days=3650)):
        info = parse_security_txt(security_txt_for(now, base_url=BASE), now=now)
        assert info.expires == now + RENEW_AFTER
        assert timedelta(0) < info.expires - now < timedelta(days=365)
        assert info.policy == (f"{BASE}/security/policy",)
        assert info.csaf == (f"{BASE}/.well-known/csaf/provider-metadata.json",)


def test_missing_contact_is_rejected() -> None:
    with pytest.raises(SecurityTxtError, match=r"no Contact field; RFC 9116 2\.5\.3"):
        parse_security_txt(_txt(_expires(timedelta(days=10))), now=NOW)


def test_missing_expires_is_rejected() -> None:
    with pytest.raises(SecurityTxtError, match="has 0 Expires fields"):
        parse_security_txt(_txt("Contact: mailto:a@b.example"), now=NOW)


def test_two_expires_fields_are_rejected() -> None:
    text = _txt(
        "Contact: mailto:a@b.example", _expires(timedelta(days=1)), _expires(timedelta(days=2))
    )
    with pytest.raises(
        SecurityTxtError, match="has 2 Expires fields; RFC 9116 2.5.5 requires exactly one"
    ):
        parse_security_txt(text, now=NOW)


@pytest.mark.parametrize(
    ("delta", "ok"),
    [
        (timedelta(seconds=-1), False),
        (timedelta(0), False),  # expiring now is stale
        (timedelta(seconds=1), True),
        (timedelta(days=366), True),
        (timedelta(days=366, seconds=1), False),
    ],
)
def test_expires_must_be_in_the_future_and_under_a_year(delta: timedelta, ok: bool) -> None:
    text = _txt("Contact: mailto:a@b.example", _expires(delta))
    if ok:
        assert parse_security_txt(text, now=NOW).expires == NOW + delta
    else:
        with pytest.raises(SecurityTxtError, match="expired|recommends less than a year"):
            parse_security_txt(text, now=NOW)


def test_expires_over_a_year_is_only_a_warning_when_not_strict() -> None:
    text = _txt("Contact: mailto:a@b.example", _expires(timedelta(days=500)))
    info = parse_security_txt(text, now=NOW, strict=False)
    assert any("recommends less than a year" in w for w in info.warnings)


def test_expires_must_be_rfc3339() -> None:
    text = _txt("Contact: mailto:a@b.example", "Expires: 2026-12-31")
    with pytest.raises(SecurityTxtError, match="not an RFC 3339 date-time"):
        parse_security_txt(text, now=NOW)


@pytest.mark.parametrize("field", ["Contact", "Policy", "Canonical", "CSAF", "Encryption"])
def test_plain_http_uris_are_rejected(field: str) -> None:
    lines = ["Contact: mailto:a@b.example", _expires(timedelta(days=5))]
    if field == "Contact":
        lines = ["Contact: http://vendor.example/report", _expires(timedelta(days=5))]
    else:
        lines.append(f"{field}: http://vendor.example/x")
    with pytest.raises(SecurityTxtError, match="uses http://"):
        parse_security_txt(_txt(*lines), now=NOW)


def test_crlf_comments_case_and_unknown_fields() -> None:
    text = (
        "# a comment\r\n\r\ncontact: mailto:a@b.example\r\n"
        f"EXPIRES: {(NOW + timedelta(days=3)).strftime('%Y-%m-%dT%H:%M:%SZ')}\r\n"
        "X-Custom: something\r\n"
    )
    info = parse_security_txt(text, now=NOW)
    assert info.contacts == ("mailto:a@b.example",)
    assert info.unknown_fields == {"x-custom": ("something",)}
    assert "no Policy field (RFC 9116 2.5.7 recommends one)" in info.warnings


def test_garbage_line_is_rejected_with_its_number() -> None:
    text = _txt("Contact: mailto:a@b.example", "this is not a field", _expires(timedelta(days=5)))
    with pytest.raises(SecurityTxtError, match="line 2 is neither a field"):
        parse_security_txt(text, now=NOW)


def test_canonical_must_include_the_url_it_was_fetched_from() -> None:
    text = security_txt_for(NOW, base_url=BASE)
    with pytest.raises(SecurityTxtError, match="lists other Canonical URIs"):
        parse_security_txt(
            text, now=NOW, source_url="https://evil.example/.well-known/security.txt"
        )


def test_preferred_languages_only_once() -> None:
    text = _txt(
        "Contact: mailto:a@b.example",
        _expires(timedelta(days=5)),
        "Preferred-Languages: en",
        "Preferred-Languages: ko",
    )
    with pytest.raises(SecurityTxtError, match="Preferred-Languages appears more than once"):
        parse_security_txt(text, now=NOW)


def test_cleartext_signed_frame_is_recognised_but_not_claimed_verified() -> None:
    body = security_txt_for(NOW, base_url=BASE)
    signed = (
        "-----BEGIN PGP SIGNED MESSAGE-----\nHash: SHA512\n\n"
        + body
        + "-----BEGIN PGP SIGNATURE-----\n\nAAAA\n-----END PGP SIGNATURE-----\n"
    )
    info = parse_security_txt(signed, now=NOW)
    assert info.signed is True
    assert info.contacts == (f"{BASE}/security/policy",)


def test_builder_refuses_no_contact_and_http_policy() -> None:
    with pytest.raises(SecurityTxtError, match="at least one Contact"):
        build_security_txt(contacts=[], expires=NOW, policy_url=None)
    with pytest.raises(SecurityTxtError, match="must be an https:// URL|uses http://"):
        build_security_txt(
            contacts=["mailto:a@b.example"], expires=NOW, policy_url="http://vendor.example/policy"
        )


@given(st.text(max_size=400))
def test_parser_never_fails_with_anything_but_security_txt_error(text: str) -> None:
    with contextlib.suppress(SecurityTxtError):
        parse_security_txt(text, now=NOW)
