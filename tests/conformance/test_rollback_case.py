"""UPD-08's pieces: the probe's MCUboot re-signer and its verdict rules (issue 12)."""

from __future__ import annotations

import json

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from bootloader.keys import init_keys, load_private_key
from common.image import SignedImage
from conformance.cases import rollback
from conformance.errors import ProbeError
from conformance.http import Exchange
from conformance.mcuboot import load_signing_key, resign_image
from conformance.model import Verdict
from tests.bootloader.conftest import KEYS_NOW, MAIN, make_builder


@pytest.fixture(scope="module")
def vendor(tmp_path_factory: pytest.TempPathFactory) -> tuple[bytes, Ed25519PrivateKey]:
    root = tmp_path_factory.mktemp("rollback")
    keyset = init_keys(root / "K", now=KEYS_NOW)
    source = root / "fw" / "device"
    source.mkdir(parents=True)
    (source / "__init__.py").write_text('"""tiny test firmware"""\n')
    (source / "main.py").write_text(MAIN)
    (root / "fw" / "common").mkdir()
    (root / "fw" / "common" / "__init__.py").write_text('"""tiny ground package"""\n')
    key = load_private_key(keyset.firmware_signing_key)
    assert isinstance(key, Ed25519PrivateKey)
    return make_builder(keyset, root / "fw" / "device")("1.0.0", 1), key


def test_resigning_with_the_same_version_and_counter_gives_the_vendor_image_back(
    vendor: tuple[bytes, Ed25519PrivateKey],
) -> None:
    image, key = vendor
    assert resign_image(image, key, version="1.0.0", security_counter=1) == image  # Ed25519 is deterministic


def test_an_older_image_sharing_the_counter_is_what_the_vendor_would_have_signed(
    vendor: tuple[bytes, Ed25519PrivateKey],
) -> None:
    image, key = vendor
    older = SignedImage.parse(resign_image(image, key, version="0.99.99", security_counter=1))
    original = SignedImage.parse(image)
    assert (str(older.version), older.security_counter) == ("0.99.99", 1)
    assert older.payload == original.payload and older.key_manifest == original.key_manifest
    assert older.hardware_id == original.hardware_id and older.key_hash == original.key_hash


def test_a_signing_key_that_is_not_ed25519_pem_is_one_clear_error() -> None:
    with pytest.raises(ProbeError, match="not an unencrypted PEM private key"):
        load_signing_key(b"not a key")
    from cryptography.hazmat.primitives.asymmetric import ec

    p256 = ec.generate_private_key(ec.SECP256R1()).private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    with pytest.raises(ProbeError, match="an Ed25519 key is needed"):
        load_signing_key(p256)


def _ex(status: int, headers: dict[str, str] | None = None, error: str | None = None) -> Exchange:
    return Exchange("POST", "/api/v1/update/upload", {}, None, status, headers or {},
                    json.dumps({"error": "x"}).encode(), 0.01, error=error)


@pytest.mark.parametrize(
    ("answer", "verdict"),
    [(_ex(400), Verdict.PASS), (_ex(409), Verdict.PASS), (_ex(202), Verdict.FAIL), (_ex(200), Verdict.FAIL),
     (_ex(401), Verdict.INCONCLUSIVE), (_ex(403), Verdict.INCONCLUSIVE),
     (_ex(429, {"Retry-After": "5"}), Verdict.INCONCLUSIVE), (_ex(500), Verdict.INCONCLUSIVE),
     (_ex(0, error="ConnectionResetError"), Verdict.INCONCLUSIVE), (_ex(0, error="TimeoutError"), Verdict.INCONCLUSIVE)],
)
def test_an_upload_counts_as_refused_only_when_the_image_was_read_and_refused(answer: Exchange, verdict: Verdict) -> None:
    assert rollback.judge_upload("a", "older image", answer).verdict is verdict


def test_versions_are_parsed_strictly() -> None:
    assert rollback.parse_version("1.2.3+4") == (1, 2, 3)
    with pytest.raises(ProbeError, match="is not MAJOR.MINOR.REVISION"):
        rollback.parse_version("1.2")
