"""Anti-rollback judged on the security counter and the version together (row 21; KS X 3020 C5).

A device that compares only the security counter installs an older release
that shares the running counter (a vendor bumps the counter only for some
fixes); one that compares only versions installs an image with the running
version and a lower counter. The probe builds both from the vendor's own
image (``--image``) with its own MCUboot writer, signed with the vendor's
firmware key (``--signing-key``), so the only thing wrong with them is their
age, and uploads each through the manual update path::

    older_version((1, 0, 0))  # (0, 99, 99)
"""

from __future__ import annotations

from pathlib import Path

from ..case import ProbeContext, failed, inconclusive, passed, register
from ..errors import ProbeError
from ..http import Exchange
from ..mcuboot import load_signing_key, resign_image
from ..model import UnitResult
from ._answers import undecided
from ._session import admin
from .update import _device, _unchanged, _upload

STATUS = "/api/v1/status"


def older_version(version: tuple[int, int, int]) -> tuple[int, int, int] | None:
    """The nearest lower version (rev, then minor, then major; 99 below a carry), None below 0.0.0."""
    major, minor, rev = version
    if rev > 0:
        return major, minor, rev - 1
    if minor > 0:
        return major, minor - 1, 99
    if major > 0:
        return major - 1, 99, 99
    return None


def parse_version(text: str) -> tuple[int, int, int]:
    parts = text.split("+", 1)[0].split(".")
    if len(parts) != 3 or not all(p.isascii() and p.isdigit() for p in parts):
        raise ProbeError(f"firmware version {text!r} is not MAJOR.MINOR.REVISION")
    return int(parts[0]), int(parts[1]), int(parts[2])


def judge_upload(letter: str, what: str, ex: Exchange) -> UnitResult:
    """Refused: a 4xx other than 401/403/429 (the image was read and refused). Accepted: 2xx."""
    if 200 <= ex.status < 300:
        return failed(letter, f"{what} was accepted for installation (HTTP {ex.status})", ex.evidence())
    if (why := undecided(ex)) is not None:
        return inconclusive(letter, why, ex.evidence())
    if ex.status in (401, 403):
        return inconclusive(letter, f"the upload session was refused (HTTP {ex.status}); the image was not judged",
                            ex.evidence())
    if 400 <= ex.status < 500:
        return passed(letter, f"{what} refused: HTTP {ex.status} {ex.text[:160]}", ex.evidence())
    return inconclusive(letter, f"{what}: unexpected HTTP {ex.status}", ex.evidence())


@register("UPD-08", budget=12, destructive=True, order=95)  # last: an accepting device reboots into the old image
def counter_and_version(ctx: ProbeContext) -> list[UnitResult]:
    if ctx.options.image is None or ctx.options.signing_key is None:
        return [inconclusive("a", "needs a vendor image (--image) and the vendor's signing key (--signing-key)")]
    key = load_signing_key(Path(ctx.options.signing_key).read_bytes())
    vendor_image = Path(ctx.options.image).read_bytes()
    token = admin(ctx).token
    before = str(_device(ctx)["firmware_version"])
    status = ctx.http.request("GET", STATUS, token=token).json()
    counter = status.get("security_counter") if isinstance(status, dict) else None
    if not isinstance(counter, int) or isinstance(counter, bool):
        return [inconclusive("a", "the device status gives no running security counter")]
    running = parse_version(before)
    lower = older_version(running)
    results: list[UnitResult] = []
    if lower is None:
        results.append(inconclusive("a", f"no version is older than the running {before}"))
    else:
        old = ".".join(map(str, lower))
        image = resign_image(vendor_image, key, version=old, security_counter=counter)
        results.append(judge_upload("a", f"older version {old} with the running counter {counter}",
                                    _upload(ctx, image, token)))
    if counter == 0:
        results.append(inconclusive("b", "the running counter is 0; no lower counter exists"))
    else:
        image = resign_image(vendor_image, key, version=before, security_counter=counter - 1)
        results.append(judge_upload("b", f"the running version {before} with counter {counter - 1}",
                                    _upload(ctx, image, token)))
    results.append(_unchanged(ctx, "c", before))
    return results
