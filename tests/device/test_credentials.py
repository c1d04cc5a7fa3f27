"""Credentials: password policy profiles, Mirai defaults, throttling and lockout, no user enumeration."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from device_fixtures import INITIAL_PASSWORD, NEW_PASSWORD, RunningDevice, StartDevice

from device.blocklist import MIRAI_PAIRS, common_passwords
from device.config import ThrottleConfig
from device.credentials import (
    PolicyContext,
    account_retry_after,
    account_wait,
    check_password,
    password_problems,
    source_retry_after,
)
from device.errors import PasswordPolicyError

CTX = PolicyContext(username="admin", serial="RCTEST000001", model="RC-1080", vendor="refcam")


def test_mirai_table_has_62_pairs_61_distinct() -> None:
    assert len(MIRAI_PAIRS) == 62 and len(set(MIRAI_PAIRS)) == 61
    assert {("root", "xc3511"), ("root", "vizxv"), ("root", "hi3518"), ("admin", "admin"), ("support", "support")} <= set(MIRAI_PAIRS)


@pytest.mark.parametrize("policy", ["nist-800-63b", "kr-terminal"])
def test_no_mirai_password_can_be_set_under_any_profile(policy: str) -> None:
    for _, password in MIRAI_PAIRS:
        with pytest.raises(PasswordPolicyError):
            check_password(password, policy=policy, context=CTX)  # type: ignore[arg-type]
        # padding a Mirai password to length does not get it past the kr blocklist either way
    assert len(common_passwords()) >= 400


def test_nist_profile_wants_15_characters_and_no_composition_rules() -> None:
    assert password_problems("correct horse battery", policy="nist-800-63b", context=CTX) == []
    assert password_problems("a" * 14 + "b", policy="nist-800-63b", context=CTX) == [
        "password repeats one or two characters"
    ]
    assert password_problems("fourteen chars", policy="nist-800-63b", context=CTX) == [
        "password has 14 characters; at least 15 are required"
    ]
    assert password_problems("x" * 30 + "yz" + "w" * 97, policy="nist-800-63b", context=CTX) == [
        "password has 129 characters; at most 128 are allowed"
    ]


def test_context_words_are_refused_with_the_exact_reason() -> None:
    assert password_problems("my camera RCTEST000001 rocks", policy="nist-800-63b", context=CTX) == [
        "password contains the device serial number"
    ]
    assert password_problems("the RC-1080 is a nice box", policy="nist-800-63b", context=CTX) == [
        "password contains the device model"
    ]
    assert password_problems("Refcam rules the world!", policy="nist-800-63b", context=CTX) == [
        "password contains the vendor name"
    ]


def test_kr_terminal_profile_counts_character_classes() -> None:
    assert password_problems("Zq8#mT2v", policy="kr-terminal", context=CTX) == []  # 8 chars, 4 classes
    assert password_problems("kq7vrx3plm", policy="kr-terminal", context=CTX) == []  # 10 chars, 2 classes
    assert password_problems("abcdefgh3", policy="kr-terminal", context=CTX) == [
        "password has 9 characters from 2 character classes; "
        "at least 8 with 3 classes or 10 with 2 classes are required"
    ]
    assert "password is a known default or commonly used password" in password_problems(
        "password1", policy="kr-terminal", context=CTX
    )


def test_backoff_doubles_then_locks_out_up_to_15_minutes() -> None:
    cfg = ThrottleConfig()
    assert [account_wait(n, cfg) for n in range(1, 10)] == [1, 2, 4, 8, 60, 120, 240, 480, 900]
    assert account_wait(40, cfg) == 900
    assert account_retry_after(5, 1000.0, 1030.0, cfg) == 30.0
    assert source_retry_after([100.0 + i for i in range(20)], 125.0, cfg) == 35.0
    assert source_retry_after([100.0 + i for i in range(19)], 125.0, cfg) == 0.0


async def attempt(device: RunningDevice, username: str, password: str) -> tuple[int, dict[str, object]]:
    async with device.client() as s, s.post(
        device.url("/api/v1/session"), json={"username": username, "password": password}
    ) as r:
        return r.status, await r.json()


@pytest.mark.slow
async def test_mirai_spray_gets_zero_successes(device: RunningDevice) -> None:
    statuses = []
    for username, password in MIRAI_PAIRS:
        device.clock.advance(1000)  # past any lockout: every pair gets a real verdict
        status, body = await attempt(device, username, password)
        statuses.append(status)
        assert body == {"error": "invalid_credentials", "message": "invalid user name or password"}
    assert statuses == [401] * 62


async def test_unknown_user_and_wrong_password_answer_identically(device: RunningDevice) -> None:
    known = await attempt(device, "admin", "not the password at all")
    unknown = await attempt(device, "mallory", "not the password at all")
    assert known == unknown == (401, {"error": "invalid_credentials", "message": "invalid user name or password"})
    # throttling is the same too: both names now back off for 1 s
    assert await attempt(device, "admin", "x") == await attempt(device, "mallory", "x")
    status, body = await attempt(device, "mallory", "x")
    assert status == 429 and body["error"] == "throttled" and body["retry_after"] == 1


async def test_account_locks_after_five_failures_with_exponential_backoff(device: RunningDevice) -> None:
    waits = []
    for _ in range(6):
        status, _body = await attempt(device, "admin", "wrong wrong wrong wrong")
        assert status == 401
        status, body = await attempt(device, "admin", INITIAL_PASSWORD)  # even the right password waits
        assert status == 429 and body["error"] == "throttled"
        waits.append(body["retry_after"])
        device.clock.advance(float(body["retry_after"]))  # type: ignore[arg-type]
    assert waits == [1, 2, 4, 8, 60, 120]
    # the lockout is over: the right password works and resets the count
    status, body = await attempt(device, "admin", INITIAL_PASSWORD)
    assert status == 200
    status, _ = await attempt(device, "admin", "wrong wrong wrong wrong")
    device.clock.advance(1)
    status, _ = await attempt(device, "admin", INITIAL_PASSWORD)
    assert status == 200


async def test_one_source_is_throttled_after_20_failures_a_minute(start_device: StartDevice) -> None:
    device = await start_device()
    for i in range(20):
        status, _ = await attempt(device, f"user{i}", "guess guess guess")
        assert status == 401
        device.clock.advance(1)
    status, body = await attempt(device, "admin", INITIAL_PASSWORD)
    assert status == 429 and body["retry_after"] == 40  # the first failure leaves the 60 s window
    device.clock.advance(40)
    status, _ = await attempt(device, "admin", INITIAL_PASSWORD)
    assert status == 200


async def test_lockout_is_written_to_the_audit_log(device: RunningDevice) -> None:
    for _ in range(5):
        await attempt(device, "admin", "wrong wrong wrong wrong")
        device.clock.advance(100)
    token = await device.admin_token()
    async with device.client() as s, s.get(
        device.url("/api/v1/audit?limit=500"), headers={"Authorization": f"Bearer {token}"}
    ) as r:
        events = [e["event"] for e in (await r.json())["entries"]]
    assert events.count("login_failure") == 5 and events.count("lockout") == 1
    assert "password_change" in events and NEW_PASSWORD not in str(events)


async def test_factory_reset_brings_back_the_label_password_and_forced_change(
    start_device: StartDevice, capsys: pytest.CaptureFixture[str]
) -> None:
    from refcam.cli import main

    device = await start_device()
    token = await device.admin_token()
    async with device.client() as s, s.post(
        device.url("/api/v1/users"),
        json={"username": "olga", "role": "viewer", "password": "granite lantern orbit seven"},
        headers={"Authorization": f"Bearer {token}"},
    ) as r:
        assert r.status == 201
    await device.stop()
    assert main(["device", "factory-reset", "--state", str(device.handoff.state_dir)]) == 0
    assert "wiped" in capsys.readouterr().out
    device = await start_device()
    status, _ = await attempt(device, "olga", "granite lantern orbit seven")
    assert status == 401  # the data is gone
    device.clock.advance(5)
    status, _ = await attempt(device, "admin", NEW_PASSWORD)
    assert status == 401  # the changed password is gone
    device.clock.advance(5)
    first = await device.login()
    assert first["password_change_required"] is True
    async with device.client() as s, s.get(
        device.url("/api/v1/status"), headers={"Authorization": f"Bearer {token}"}
    ) as r:
        assert r.status == 401  # sessions from before the reset are gone too
    # the reset re-anchored the audit log: the new log verifies, with no boot notice about it
    from device.appkeys import AUDIT_KEY

    audit = device.app[AUDIT_KEY]
    assert audit.verify_chain() >= 1
    assert not any(e.event == "boot_notice" and "audit log" in str(e.detail) for e in audit.entries())


def test_factory_reset_refuses_a_directory_that_is_not_a_device(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from refcam.cli import main

    assert main(["device", "factory-reset", "--state", str(tmp_path)]) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("refcam: error:") and "not a provisioned device" in err[0]


def test_unknown_user_is_checked_against_the_dummy_hash(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """An unknown name costs one scrypt like a real one (same timing), against DUMMY_HASH."""
    import device.credentials as credentials
    from common.passwords import DUMMY_HASH, hash_password
    from device.errors import InvalidCredentials

    checked: list[str] = []
    real = credentials.verify_password

    def spy(password: str, encoded: str) -> None:
        checked.append(encoded)
        real(password, encoded)

    monkeypatch.setattr(credentials, "verify_password", spy)
    admin_hash = hash_password(INITIAL_PASSWORD)
    store = credentials.CredentialStore.open(
        tmp_path / "users.sqlite3", initial_hash=admin_hash, policy="nist-800-63b", context=CTX,
        throttle=ThrottleConfig(), now=1000.0,
    )
    for name in ("admin", "nobody"):
        with pytest.raises(InvalidCredentials) as info:
            store.authenticate(name, "wrong password here", source="127.0.0.1", now=1000.0)
        assert str(info.value) == "invalid user name or password" and info.value.failures == 1
    assert checked == [admin_hash, DUMMY_HASH]


async def test_flaw_profiles_weaken_exactly_their_code_path(start_device: StartDevice) -> None:
    """no-lockout, user-enumeration and shared-default-password: the probe must be able to see them."""
    from common.flaws import UnsafeFlaws

    secure = await start_device()
    async with secure.client() as s, s.get(secure.url("/api/v1/info")) as r:
        assert "unsafe_flaws" not in await r.json()
    await secure.stop()
    shutil.rmtree(secure.handoff.data_dir / "runtime")  # a fresh unit: the flaws act at first start

    flaws = UnsafeFlaws.parse(["no-lockout", "user-enumeration", "shared-default-password"], host="127.0.0.1")
    device = await start_device(flaws=flaws)
    async with device.client() as s, s.get(device.url("/api/v1/info")) as r:
        assert (await r.json())["unsafe_flaws"] == sorted(flaws)
    statuses = [(await attempt(device, "admin", "wrong password"))[0] for _ in range(8)]
    assert statuses == [401] * 8  # never throttled
    assert await attempt(device, "mallory", "x") == (404, {"error": "unknown_user", "message": "no such user"})
    status, body = await attempt(device, "admin", "admin")  # the shared default works, no forced change
    assert status == 200 and body["password_change_required"] is False


# -- issue 13 defect 4: guessable passwords (NIST SP 800-63B 3.1.1.2) -------------------

GUESSABLE_LONG = [
    "passwordpassword",
    "123456789012345",
    "xc3511xc3511xc3511",
    "qwertyuiopasdfgh",
    "abcdefghijklmnop",
    "iloveyouiloveyou",
    "Password12345678",
    "P-a-s-s-w-o-r-d-1-2-3",
    "administrator123",
    "zyxwvutsrqponmlk",
    "1111111111111111",
    "monkey1234567890",
    "welcomewelcome1!",
]


@pytest.mark.parametrize("password", GUESSABLE_LONG)
def test_guessable_passwords_of_15_or_more_characters_are_refused(password: str) -> None:
    reasons = password_problems(password, policy="nist-800-63b", context=CTX)
    assert reasons, f"{password!r} was accepted"
    assert all(r.startswith("password ") for r in reasons)


@pytest.mark.parametrize("password", ["Passw0rd!", "Welcome1!", "P@ssw0rd1", "Adm1n!234", "Qwerty123!"])
def test_kr_terminal_refuses_decorated_common_passwords(password: str) -> None:
    reasons = password_problems(password, policy="kr-terminal", context=CTX)
    assert reasons, f"{password!r} was accepted under kr-terminal"


def test_repeats_and_sequences_are_refused_with_the_reason() -> None:
    assert "password repeats 'password' 2 times" in password_problems(
        "passwordpassword", policy="nist-800-63b", context=CTX
    )
    assert "password repeats 'xc3511' 3 times" in password_problems(
        "xc3511xc3511xc3511", policy="nist-800-63b", context=CTX
    )
    assert "password is a sequence of consecutive characters" in password_problems(
        "123456789012345", policy="nist-800-63b", context=CTX
    )


def test_context_words_are_refused_after_normalisation() -> None:
    assert "password contains the vendor name" in password_problems(
        "R-E-F-C-A-M is great fun!", policy="nist-800-63b", context=CTX
    )
    assert "password contains the device serial number" in password_problems(
        "rctest-000001-forever", policy="nist-800-63b", context=CTX
    )
    assert "password contains the user name" in password_problems(
        "Adm1n-and-nothing-else", policy="nist-800-63b", context=CTX
    )


def test_strong_passwords_still_pass_both_profiles() -> None:
    for password in (NEW_PASSWORD, "granite lantern orbit seven", "correct horse battery"):
        assert password_problems(password, policy="nist-800-63b", context=CTX) == []
    assert password_problems("Zq8#mT2v", policy="kr-terminal", context=CTX) == []


LABEL_VARIANTS = [
    INITIAL_PASSWORD.upper(),
    INITIAL_PASSWORD.lower(),
    INITIAL_PASSWORD.replace("-", ""),
    INITIAL_PASSWORD + "!",
    INITIAL_PASSWORD.swapcase().replace("-", " ") + "1",
]


def test_label_password_variants_are_refused_by_the_store(tmp_path: Path) -> None:
    from common.passwords import hash_password, label_fold
    from device.credentials import CredentialStore

    store = CredentialStore.open(
        tmp_path / "users.sqlite3",
        initial_hash=hash_password(INITIAL_PASSWORD),
        label_fold_hash=hash_password(label_fold(INITIAL_PASSWORD)),
        policy="nist-800-63b",
        context=CTX,
        throttle=ThrottleConfig(),
        now=1000.0,
    )
    for variant in LABEL_VARIANTS:
        with pytest.raises(PasswordPolicyError) as info:
            store.create_user("olga", "viewer", variant, now=1000.0)
        assert any("initial (label) password" in r for r in info.value.reasons), variant
    store.create_user("olga", "viewer", NEW_PASSWORD, now=1000.0)


@pytest.mark.parametrize("variant", [LABEL_VARIANTS[0], LABEL_VARIANTS[3]])
async def test_forced_change_refuses_label_password_variants(device: RunningDevice, variant: str) -> None:
    status, body = await attempt(device, "admin", INITIAL_PASSWORD)
    assert status == 200 and body["password_change_required"] is True
    token = body["token"]
    async with device.client() as s, s.post(
        device.url("/api/v1/session/password"),
        json={"current_password": INITIAL_PASSWORD, "new_password": variant},
        headers={"Authorization": f"Bearer {token}"},
    ) as r:
        refused = await r.json()
        assert r.status == 400 and refused["error"] == "password_policy", refused
        assert any("initial (label) password" in reason for reason in refused["reasons"])


def test_a_user_name_with_digits_does_not_forbid_its_stem() -> None:
    ctx = PolicyContext(username="viewer1", serial="RCTEST000001", model="RC-1080", vendor="refcam")
    assert password_problems("a viewer password set by the admin", policy="nist-800-63b", context=ctx) == []
    assert "password contains the user name" in password_problems(
        "my name is Viewer1 indeed", policy="nist-800-63b", context=ctx
    )
