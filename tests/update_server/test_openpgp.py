"""security.txt signed with OpenPGP (python-gnupg + the distribution's gpg), checked by gpg and sectxt."""

from __future__ import annotations

import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import gnupg
import pytest
import sectxt
from aiohttp import web

from common.errors import SecurityTxtError
from common.securitytxt import parse_security_txt
from update_server.openpgp import OpenPGPSigner, verify_clearsigned
from update_server.psirt.policy import load_policy
from update_server.psirt.web import add_disclosure_routes

BASE = "https://vendor.example"


@pytest.fixture(scope="module")
def gnupghome() -> Iterator[tuple[Path, str]]:
    """A throw-away GnuPG home with one Ed25519 signing key (short path: gpg-agent's socket)."""
    home = Path(tempfile.mkdtemp(prefix="rcgpg-", dir="/tmp"))
    home.chmod(0o700)
    gpg = gnupg.GPG(gnupghome=str(home))
    spec = gpg.gen_key_input(
        key_type="EDDSA", key_curve="ed25519", key_usage="sign", name_real="refcam PSIRT test",
        name_email="psirt@vendor.example", expire_date="1d", no_protection=True,
    )  # fmt: skip
    key = gpg.gen_key(spec)
    assert key.fingerprint, key.stderr
    try:
        yield home, str(key.fingerprint)
    finally:
        subprocess.run(["gpgconf", "--homedir", str(home), "--kill", "gpg-agent"], check=False, capture_output=True)
        shutil.rmtree(home, ignore_errors=True)


async def test_signed_security_txt_verifies_and_satisfies_sectxt(aiohttp_client: Any, gnupghome: tuple[Path, str]) -> None:
    home, fingerprint = gnupghome
    signer = OpenPGPSigner(gnupghome=home, fingerprint=fingerprint)
    app = web.Application()
    now = datetime.now(UTC)
    add_disclosure_routes(app, policy=load_policy(), base_url=BASE, clock=lambda: now, signer=signer)
    client = await aiohttp_client(app)
    text = await (await client.get("/.well-known/security.txt")).text()
    assert text.startswith("-----BEGIN PGP SIGNED MESSAGE-----\n")
    assert verify_clearsigned(text, gnupghome=home) == fingerprint
    info = parse_security_txt(text, now=now, source_url=f"{BASE}/.well-known/security.txt")
    assert info.signed and info.contacts == (f"{BASE}/security/policy",)
    parser = sectxt.Parser(text.encode(), urls=f"{BASE}/.well-known/security.txt")
    assert parser.errors == [] and parser.recommendations == [], (parser.errors, parser.recommendations)
    assert await (await client.get("/.well-known/security.txt")).text() == text  # signed once, then cached
    tampered = text.replace("Expires: ", "Expires:  ", 1)
    with pytest.raises(SecurityTxtError, match="does not verify"):
        verify_clearsigned(tampered, gnupghome=home)


def test_signer_refuses_a_key_it_does_not_hold(gnupghome: tuple[Path, str]) -> None:
    home, _ = gnupghome
    with pytest.raises(SecurityTxtError, match="holds no secret key"):
        OpenPGPSigner(gnupghome=home, fingerprint="0" * 40)
    with pytest.raises(SecurityTxtError, match="not a full fingerprint"):
        OpenPGPSigner(gnupghome=home, fingerprint="ABCD")
