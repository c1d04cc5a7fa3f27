"""OpenPGP cleartext signatures for security.txt (RFC 9116 2.3; RFC 9580 7), through GnuPG.

python-gnupg drives the distribution's ``gpg`` (Debian: package ``gnupg``);
the signing key stays in a GnuPG home the operator controls, never in
refcam's files. The vendor server signs its security.txt when started with
``--openpgp-home DIR --openpgp-key FINGERPRINT``; the text changes only with
its Expires date, so a signature is made at most once an hour, not once per
request (a gpg process per anonymous request would be an easy way to load the
server).

Example::

    signer = OpenPGPSigner(gnupghome=Path("/etc/refcam/gnupg"), fingerprint="9C3F...")
    signed = signer.signed(lambda: security_txt_for(now, base_url=base))
    verify_clearsigned(signed, gnupghome=Path("/etc/refcam/gnupg"))   # -> the signer's fingerprint
"""

from __future__ import annotations

import re
import threading
import time
from collections.abc import Callable
from pathlib import Path

import gnupg

from common.errors import SecurityTxtError

RESIGN_AFTER = 3600.0  # seconds a signed security.txt is served before it is signed again
_FINGERPRINT = re.compile(r"[0-9A-F]{40}|[0-9A-F]{64}")


def _gpg(gnupghome: Path) -> gnupg.GPG:
    if not gnupghome.is_dir():
        raise SecurityTxtError(f"OpenPGP home {gnupghome} is not a directory")
    try:
        return gnupg.GPG(gnupghome=str(gnupghome))
    except (OSError, ValueError, RuntimeError) as exc:
        raise SecurityTxtError(f"cannot run gpg for {gnupghome}: {exc}") from exc


class OpenPGPSigner:
    """Clear-signs text with one secret key of a GnuPG home."""

    def __init__(self, *, gnupghome: Path, fingerprint: str) -> None:
        fingerprint = fingerprint.replace(" ", "").upper()
        if not _FINGERPRINT.fullmatch(fingerprint):
            raise SecurityTxtError(f"OpenPGP key {fingerprint[:70]!r} is not a full fingerprint (40 or 64 hex digits)")
        self._gpg = _gpg(gnupghome)
        secret = {k["fingerprint"] for k in self._gpg.list_keys(secret=True)}
        if fingerprint not in secret:
            raise SecurityTxtError(f"OpenPGP home {gnupghome} holds no secret key {fingerprint}")
        self.fingerprint = fingerprint
        self._lock = threading.Lock()
        self._cache: tuple[float, str] | None = None  # (signed at, monotonic seconds; signed text)

    def clearsign(self, text: str) -> str:
        """``text`` in an OpenPGP cleartext signature frame; raises SecurityTxtError."""
        result = self._gpg.sign(text, keyid=self.fingerprint, clearsign=True, detach=False)
        if not result or not result.data:
            raise SecurityTxtError(f"gpg could not sign with {self.fingerprint}: {result.status or result.stderr[-200:]}")
        signed: str = result.data.decode("utf-8")
        return signed

    def signed(self, make_text: Callable[[], str]) -> str:
        """The last signed text while younger than :data:`RESIGN_AFTER`, else ``make_text()`` signed
        afresh (security.txt's Expires is 180 days ahead: an hour-old copy is as good)."""
        with self._lock:
            now = time.monotonic()
            if self._cache is None or now - self._cache[0] >= RESIGN_AFTER:
                self._cache = (now, self.clearsign(make_text()))
            return self._cache[1]


def verify_clearsigned(text: str, *, gnupghome: Path) -> str:
    """The fingerprint of the valid signature on a cleartext-signed ``text``; raises SecurityTxtError."""
    verified = _gpg(gnupghome).verify(text)
    if not verified.valid or not verified.fingerprint:
        raise SecurityTxtError(f"the OpenPGP signature does not verify: {verified.status or 'no signature'}")
    fingerprint: str = verified.fingerprint
    return fingerprint
