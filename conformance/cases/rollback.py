"""Anti-rollback judged on the security counter and the version together (row 21; KS X 3020 C5).

A device that compares only security counters installs an older release
re-signed with the running counter (a vendor bumps the counter only for some
fixes, so old releases share it); one that compares only versions installs a
newer version whose counter is below the fused one. The probe builds both from
the vendor's own images with its own MCUboot writer, signed with the vendor's
firmware key (``--signing-key``): the older release (``--older-image``) with
the running counter, and the newer one (``--image``) with a counter below it.
Their payloads are the vendor's, unchanged, so nothing but their age is wrong
with them. Each is uploaded through the manual update path::

    judge_upload("a", "older release with the running counter", exchange)
"""

from __future__ import annotations

from pathlib import Path

from ..case import ProbeContext, failed, inconclusive, not_tested, passed, register
from ..errors import ProbeError
from ..http import Exchange
from ..i18n import msg
from ..mcuboot import load_signing_key, read_header, resign_image
from ..model import UnitResult
from ._answers import undecided
from ._session import admin
from .update import _device, _unchanged, _upload

STATUS = "/api/v1/status"


def parse_version(text: str) -> tuple[int, int, int]:
    parts = text.split("+", 1)[0].split(".")
    if len(parts) != 3 or not all(p.isascii() and p.isdigit() for p in parts):
        raise ProbeError(msg("firmware version “{text}” is not MAJOR.MINOR.REVISION", text=text))
    return int(parts[0]), int(parts[1]), int(parts[2])


def judge_upload(letter: str, what: str, ex: Exchange) -> UnitResult:
    """Refused: a 4xx other than 401/403/429 (the image was read and refused). Accepted: 2xx."""
    if 200 <= ex.status < 300:
        return failed(letter, msg("{what} was accepted for installation (HTTP {status})", what=what, status=ex.status), ex.evidence())
    if (why := undecided(ex)) is not None:
        return inconclusive(letter, why, ex.evidence())
    if ex.status in (401, 403):
        return inconclusive(letter, msg("the upload session was refused (HTTP {status}); the image was not judged", status=ex.status),
                            ex.evidence())
    if 400 <= ex.status < 500:
        return passed(letter, msg("{what} refused: HTTP {status} {text}", what=what, status=ex.status, text=ex.text[:160]), ex.evidence())
    return inconclusive(letter, msg("{what}: unexpected HTTP {status}", what=what, status=ex.status), ex.evidence())


@register("UPD-08", budget=12, destructive=True, order=95, requires=("interface:refcam-api", "update:upload", "update:anti-rollback"))  # last: an accepting device reboots into the old image
def counter_and_version(ctx: ProbeContext) -> list[UnitResult]:
    opts = ctx.options
    if opts.image is None or opts.older_image is None or opts.signing_key is None:
        missing = [name for name, value in (("--image", opts.image), ("--older-image", opts.older_image),
                                            ("--signing-key", opts.signing_key)) if value is None]
        return [not_tested("a", msg("needs the vendor's images (--image, --older-image) and signing key (--signing-key)"), *missing)]
    key = load_signing_key(Path(opts.signing_key).read_bytes())
    newer, older = Path(opts.image).read_bytes(), Path(opts.older_image).read_bytes()
    token = admin(ctx).token
    before = str(_device(ctx)["firmware_version"])
    status = ctx.http.request("GET", STATUS, token=token)
    doc = status.json()
    counter = doc.get("security_counter") if isinstance(doc, dict) else None
    if not isinstance(counter, int) or isinstance(counter, bool):
        return [inconclusive("a", msg("the device status gives no running security counter"), status.evidence())]
    running = parse_version(before)
    results: list[UnitResult] = []
    old_version = read_header(older).version
    if parse_version(old_version) >= running:
        results.append(inconclusive("a", msg("--older-image is {old_version}, not older than the running {before}", old_version=old_version, before=before)))
    else:
        image = resign_image(older, key, version=old_version, security_counter=counter)
        results.append(judge_upload("a", msg("older release {old_version} re-signed with the running counter {counter}", old_version=old_version, counter=counter),
                                    _upload(ctx, image, token)))
    new_version = read_header(newer).version
    if counter == 0:
        results.append(inconclusive("b", msg("the running counter is 0; no lower counter exists")))
    elif parse_version(new_version) <= running:
        results.append(inconclusive("b", msg("--image is {new_version}, not newer than the running {before}", new_version=new_version, before=before)))
    else:
        image = resign_image(newer, key, version=new_version, security_counter=counter - 1)
        results.append(judge_upload("b", msg("newer release {new_version} re-signed with counter {counter}, below the running {counter2}", new_version=new_version, counter=counter - 1, counter2=counter), _upload(ctx, image, token)))
    results.append(_unchanged(ctx, "c", before))
    return results
