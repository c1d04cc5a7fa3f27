"""Flaw profiles are explicit, known by name, and never leave loopback."""

from __future__ import annotations

import pytest

from common.flaws import FLAWS, FlawProfileError, UnsafeFlaws


@pytest.mark.parametrize("host", ["0.0.0.0", "192.168.1.20", "::", "camera.example"])
def test_flaw_profile_refuses_a_non_loopback_address(host: str) -> None:
    with pytest.raises(FlawProfileError, match="refuse to listen on"):
        UnsafeFlaws.parse(["tls-legacy"], host=host)


@pytest.mark.parametrize("host", ["127.0.0.1", "::1", "localhost", "127.0.0.2"])
def test_flaw_profile_allows_loopback(host: str) -> None:
    flaws = UnsafeFlaws.parse(["tls-legacy", "no-lockout"], host=host)
    assert "tls-legacy" in flaws and "no-lockout" in flaws and "weak-ciphers" not in flaws
    assert "UNSAFE" in flaws.banner() and "no-lockout" in flaws.banner()


def test_secure_device_may_listen_anywhere_and_has_no_banner() -> None:
    flaws = UnsafeFlaws.parse([], host="0.0.0.0")
    assert not flaws and flaws.banner() == ""


def test_unknown_flaw_name_is_an_error_not_a_silent_no_op() -> None:
    with pytest.raises(FlawProfileError, match="unknown flaw 'tls-leagcy'"):
        UnsafeFlaws.parse(["tls-leagcy"], host="127.0.0.1")
    with pytest.raises(KeyError):
        _ = "tls-leagcy" in UnsafeFlaws()


def test_the_issue_list_of_flaws_is_complete() -> None:
    assert set(FLAWS) >= {
        "tls-legacy", "weak-ciphers", "self-signed-cert", "plaintext-http", "shared-default-password",
        "no-forced-change", "no-lockout", "user-enumeration", "unsigned-update-accepted",
        "rollback-accepted", "boot-skips-signature", "update-client-no-tls-validation",
        "no-security-txt", "expired-security-txt", "sla-breached",
    }


def test_the_issue_12_flaws_are_named_with_what_they_weaken() -> None:
    new = {
        "session-cookie-insecure", "session-no-idle-expiry", "session-survives-logout",
        "session-survives-password-change", "no-csrf-check", "viewer-can-change-settings",
        "operator-can-manage-users", "password-min-off-by-one", "label-variant-accepted",
        "identity-password-accepted", "throttle-known-names-only", "rollback-same-counter",
    }
    assert new <= set(FLAWS)
    assert all(FLAWS[name] for name in new)
