"""The device's own security.txt (RFC 9116): where to report a vulnerability in this camera.

Served at ``/.well-known/security.txt`` over HTTPS only, no login. Contact,
Policy and CSAF point to the vendor (the PSIRT that handles reports for this
firmware): the first Contact is the vendor's policy page, which a person can
open and which holds the report form (the intake API, POST only, is named on
that page, not here). Canonical is this device's configured public URL
(``--public-url``, by default its certificate's name ``cam-<serial>.local``),
never the request's Host header, which a client chooses. Expires is renewed
on every request (``now`` + 180 days, always under a year: RFC 9116 2.5.5).
The two flaw profiles ``no-security-txt`` and ``expired-security-txt`` change
exactly this code path.

Example::

    add_disclosure_routes(app, vendor_url="https://vendor.example",
                          public_url="https://cam-rc1a2b3c4d5e.local:8443", flaws=UnsafeFlaws())
"""

from __future__ import annotations

import importlib.resources
import json
from datetime import UTC, datetime, timedelta

from aiohttp import web

from common.flaws import UnsafeFlaws
from common.securitytxt import RENEW_AFTER, build_security_txt

from .access import requires
from .appkeys import CLOCK_KEY, HANDOFF_KEY

SECURITY_TXT_PATH = "/.well-known/security.txt"
EXPIRED_BY = timedelta(days=30)  # expired-security-txt: Expires this far in the past


def security_txt(*, vendor_url: str, device_url: str, now: datetime, expired: bool = False) -> str:
    base = vendor_url.rstrip("/")
    return build_security_txt(
        contacts=[f"{base}/security/policy"],  # a page with the report form: usable by a person
        expires=now - EXPIRED_BY if expired else now + RENEW_AFTER,
        policy_url=f"{base}/security/policy",
        canonical_urls=[f"{device_url.rstrip('/')}{SECURITY_TXT_PATH}"],
        csaf_url=f"{base}/.well-known/csaf/provider-metadata.json",
    )


def add_disclosure_routes(app: web.Application, *, vendor_url: str, public_url: str, flaws: UnsafeFlaws) -> None:
    """``public_url``: the https origin this device is reached at (configuration, not the request)."""
    if "no-security-txt" in flaws:
        return  # the flaw: nothing published (EN 303 645 5.2-1 not met)
    expired = "expired-security-txt" in flaws

    @requires("public")
    async def get_security_txt(request: web.Request) -> web.Response:
        """The device's RFC 9116 security.txt: vendor contact, policy and CSAF feed."""
        now = datetime.fromtimestamp(request.config_dict[CLOCK_KEY](), UTC)
        text = security_txt(vendor_url=vendor_url, device_url=public_url, now=now, expired=expired)
        return web.Response(text=text, content_type="text/plain", charset="utf-8")

    app.router.add_get(SECURITY_TXT_PATH, get_security_txt)


SBOM_RESOURCE = "sbom.cdx.json"  # packed into the payload by `refcam firmware build`


def with_image_digest(sbom: bytes, image_digest: str) -> bytes:
    """The packed SBOM as this device serves it: the firmware component (``metadata.component``)
    gains the image digest the bootloader measured, which the packed copy cannot contain."""
    doc = json.loads(sbom)
    component = doc["metadata"]["component"]
    component["hashes"] = [{"alg": "SHA-256", "content": image_digest}]
    component["properties"] = [p for p in component.get("properties", []) if p.get("name") != "refcam:image_digest"]
    return json.dumps(doc, indent=1).encode("utf-8")


def add_sbom_route(app: web.Application) -> None:
    """``GET /api/v1/sbom`` (admins): the CycloneDX SBOM of the running firmware.

    It is read from the verified payload the device booted, so it describes
    exactly the code that runs (EN 303 645 5.2-3 guidance, CRA Annex I).
    """

    @requires("admin")
    async def get_sbom(request: web.Request) -> web.Response:
        """The CycloneDX SBOM of the running firmware, with the image digest the bootloader measured."""
        resource = importlib.resources.files(__package__) / SBOM_RESOURCE
        if not resource.is_file():
            raise web.HTTPNotFound(
                text='{"error": "no_sbom", "message": "this firmware was built without an SBOM"}',
                content_type="application/json",
            )
        handoff = request.config_dict[HANDOFF_KEY]
        measured = [e.digest for e in handoff.measurements if e.stage == "firmware"]
        body = with_image_digest(resource.read_bytes(), measured[-1]) if measured else resource.read_bytes()
        return web.Response(body=body, content_type="application/vnd.cyclonedx+json")

    app.router.add_get("/api/v1/sbom", get_sbom)
