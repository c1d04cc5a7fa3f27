"""RFC 7616 Digest core and the sealed protocol secrets it checks against.

The client side is ``requests.auth.HTTPDigestAuth`` (an implementation no one
here wrote), so a response it computes for a challenge of ours must verify, and
every way of tampering with it must not.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import requests.auth
from device_fixtures import INITIAL_PASSWORD, NEW_PASSWORD

from common.passwords import hash_password, label_fold
from common.sealedsecret import SealedSecretError, open_secret, seal_secret
from device.config import ThrottleConfig
from device.credentials import CredentialStore, PolicyContext
from device.digest import DigestAuthority, DigestCredentials, DigestError, parse_authorization
from device.errors import InvalidCredentials, StorageError, Throttled

NOW = 1_800_000_000.0
URI = "/onvif/device_service"
CTX = PolicyContext(username="", serial="RCTEST000001", model="RC-1080", vendor="refcam")


def client_answer(challenge: str, *, password: str, method: str = "POST", uri: str = URI, user: str = "admin") -> str:
    """What requests' HTTPDigestAuth sends for ``challenge`` (an independent Digest client)."""
    auth = requests.auth.HTTPDigestAuth(user, password)
    auth.init_per_thread_state()
    auth._thread_local.chal = requests.utils.parse_dict_header(challenge.removeprefix("Digest "))
    header = auth.build_digest_header(method, uri)
    assert header is not None
    return header


def authority(**kw: object) -> DigestAuthority:
    return DigestAuthority(os.urandom(32), realm="refcam RCTEST000001", **kw)  # type: ignore[arg-type]


def test_a_real_clients_sha256_answer_verifies_once() -> None:
    a = authority()
    (challenge,) = a.challenge(now=NOW)
    assert "algorithm=SHA-256" in challenge and 'qop="auth"' in challenge
    creds = parse_authorization(client_answer(challenge, password="pw-1"))
    assert creds.algorithm == "SHA-256" and creds.nc == 1
    a.check_fresh(creds, now=NOW + 1)
    a.check_uri(creds, URI)
    assert a.response_matches(creds, method="POST", password="pw-1")
    assert not a.response_matches(creds, method="POST", password="pw-2")
    assert not a.response_matches(creds, method="GET", password="pw-1")
    with pytest.raises(DigestError, match="replay"):
        a.check_fresh(creds, now=NOW + 2)  # the same nc again: a replay
    with pytest.raises(DigestError, match="uri"):
        a.check_uri(creds, URI + "x")


def test_md5_is_offered_only_when_declared() -> None:
    secure = authority()
    (challenge,) = secure.challenge(now=NOW)
    md5 = parse_authorization(client_answer(challenge.replace("SHA-256", "MD5"), password="pw"))
    with pytest.raises(DigestError, match="algorithm"):
        secure.check_fresh(md5, now=NOW)
    compat = authority(algorithms=("SHA-256", "MD5"))
    sha, weak = compat.challenge(now=NOW)
    assert "SHA-256" in sha and "MD5" in weak
    creds = parse_authorization(client_answer(weak, password="pw"))
    compat.check_fresh(creds, now=NOW)
    assert creds.algorithm == "MD5" and compat.response_matches(creds, method="POST", password="pw")


def test_stale_foreign_and_forged_nonces_are_refused() -> None:
    a = authority(nonce_lifetime=60)
    (challenge,) = a.challenge(now=NOW)
    creds = parse_authorization(client_answer(challenge, password="pw"))
    with pytest.raises(DigestError) as info:
        a.check_fresh(creds, now=NOW + 61)
    assert info.value.stale
    other = authority()  # another key: its nonces are not ours
    with pytest.raises(DigestError, match="not issued by this device") as info:
        other.check_fresh(
            DigestCredentials(**{**creds.__dict__, "realm": other.realm, "opaque": None}), now=NOW
        )
    assert not info.value.stale
    forged = creds.nonce[:-2] + ("AA" if creds.nonce[-2:] != "AA" else "BB")
    with pytest.raises(DigestError, match="not issued"):
        a.check_fresh(DigestCredentials(**{**creds.__dict__, "nonce": forged}), now=NOW)


def test_evicted_nonces_are_stale_not_replayable() -> None:
    a = authority(replay_memory=2)
    answers = []
    for i in range(3):
        (challenge,) = a.challenge(now=NOW + i)
        creds = parse_authorization(client_answer(challenge, password="pw"))
        a.check_fresh(creds, now=NOW + i)
        answers.append(creds)
    with pytest.raises(DigestError) as info:  # the first nonce was forgotten: replay it
        a.check_fresh(answers[0], now=NOW + 3)
    assert info.value.stale


@pytest.mark.parametrize(
    ("header", "reason"),
    [
        ("Basic YWRtaW46YWRtaW4=", "use Digest"),
        ('Digest username="a", realm="r"', "lacks"),
        ('Digest username="a", realm="r", nonce="n", uri="/", response="zz", qop=auth, nc=00000001, cnonce="c"', "hexadecimal"),
        ('Digest username="a", realm="r", nonce="n", uri="/", response="ab", qop=auth-int, nc=00000001, cnonce="c"', "qop"),
        ('Digest username="a", realm="r", nonce="n", uri="/", response="ab", qop=auth, nc=1, cnonce="c"', "nc"),
        ('Digest username="a", username="b", realm="r"', "twice"),
        ('Digest username="a', "unterminated"),
        ('Digest username="a", realm="r", nonce="n", uri="/", response="ab", qop=auth, nc=00000001, cnonce="c", userhash=true', "userhash"),
        ("Digest " + "a" * 5000, "longer"),
        ('Digest username="a\x00", realm="r"', "control"),
        ("Digest =x", "malformed"),
    ],
)
def test_malformed_authorization_gets_a_precise_error(header: str, reason: str) -> None:
    with pytest.raises(DigestError, match=reason):
        parse_authorization(header)


def test_quoted_escapes_and_unicode_user_names_parse() -> None:
    creds = parse_authorization(
        'Digest username="\\"ö\\"", realm="r", nonce="n", uri="/a,b", response="AB", qop=auth, '
        'nc=0000000a, cnonce="c", algorithm=SHA-256'
    )
    assert creds.username == '"ö"' and creds.uri == "/a,b" and creds.nc == 10 and creds.response == "ab"


# -- sealed secrets and the store -------------------------------------------------


def test_sealed_secret_opens_only_for_its_user_and_key() -> None:
    key = os.urandom(32)
    blob = seal_secret(key, "admin", "s3cret ☃")
    assert open_secret(key, "admin", blob) == "s3cret ☃"
    assert b"s3cret" not in blob
    for bad_key, name, data in [
        (os.urandom(32), "admin", blob),
        (key, "olga", blob),
        (key, "admin", blob[:-1] + bytes([blob[-1] ^ 1])),
        (key, "admin", blob[:10]),
    ]:
        with pytest.raises(SealedSecretError):
            open_secret(bad_key, name, data)


def open_store(path: Path, key: bytes, **kw: object) -> CredentialStore:
    return CredentialStore.open(
        path,
        initial_hash=hash_password(INITIAL_PASSWORD),
        label_fold_hash=hash_password(label_fold(INITIAL_PASSWORD)),
        policy="nist-800-63b",
        context=CTX,
        throttle=ThrottleConfig(),
        now=NOW,
        sealing_key=key,
        initial_sealed=seal_secret(key, "admin", INITIAL_PASSWORD),
        **kw,  # type: ignore[arg-type]
    )


def test_every_password_write_seals_and_nothing_is_plaintext_at_rest(tmp_path: Path) -> None:
    key = os.urandom(32)
    store = open_store(tmp_path / "users.sqlite3", key)
    assert store.protocol_secret("admin") == INITIAL_PASSWORD
    store.change_password("admin", INITIAL_PASSWORD, NEW_PASSWORD, source="127.0.0.1", now=NOW)
    assert store.protocol_secret("admin") == NEW_PASSWORD
    store.create_user("olga", "viewer", "a viewer's own long passphrase", now=NOW)
    assert store.protocol_secret("olga") == "a viewer's own long passphrase"
    store.reset_password("olga", "a reset passphrase for the viewer", now=NOW)
    assert store.protocol_secret("olga") == "a reset passphrase for the viewer"
    store.delete_user("olga")
    assert store.protocol_secret("olga") is None
    store.close()
    raw = b"".join(p.read_bytes() for p in tmp_path.iterdir())
    for secret in (INITIAL_PASSWORD, NEW_PASSWORD, "a viewer's own long passphrase"):
        assert secret.encode() not in raw
    other_unit = open_store(tmp_path / "users.sqlite3", os.urandom(32))  # another unit's key
    with pytest.raises(StorageError, match="does not open"):
        other_unit.protocol_secret("admin")


def test_proof_logins_share_the_throttle_lockout_and_audit(tmp_path: Path) -> None:
    store = open_store(tmp_path / "users.sqlite3", os.urandom(32))
    events: list[tuple[str, dict[str, object]]] = []

    def audit(event: str, detail: dict[str, object]) -> None:
        events.append((event, detail))

    user = store.authenticate_proof(
        "admin", lambda s: s == INITIAL_PASSWORD, source="127.0.0.2", now=NOW, audit=audit, route="rtsp"
    )
    assert user.must_change  # the caller must refuse everything but the change
    seen: list[str] = []
    with pytest.raises(InvalidCredentials):  # unknown users do the same work on a dummy secret
        store.authenticate_proof("nobody", lambda s: seen.append(s) or False, source="127.0.0.2", now=NOW, route="rtsp")
    assert len(seen) == 1
    for i in range(5):
        with pytest.raises(InvalidCredentials):
            store.authenticate_proof("admin", lambda s: False, source="127.0.0.3", now=NOW + 100 * i, audit=audit, route="onvif")
    with pytest.raises(Throttled):
        store.authenticate_proof("admin", lambda s: True, source="127.0.0.4", now=NOW + 401, route="onvif")
    names = [e for e, _ in events]
    assert names.count("login_failure") == 5 and "lockout" in names
    assert {d["route"] for e, d in events if e == "login_failure"} == {"onvif"}


def test_a_store_without_a_sealing_key_has_no_protocol_secrets(tmp_path: Path) -> None:
    store = CredentialStore.open(
        tmp_path / "users.sqlite3", initial_hash=hash_password(INITIAL_PASSWORD), policy="nist-800-63b",
        context=CTX, throttle=ThrottleConfig(), now=NOW,
    )
    assert store.protocol_secret("admin") is None
    with pytest.raises(InvalidCredentials):
        store.authenticate_proof("admin", lambda s: True, source="127.0.0.1", now=NOW, route="rtsp")
