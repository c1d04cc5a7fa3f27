"""The probe's own checkers (no camera code) accept what a correct camera makes and
refuse what a broken one makes."""

from __future__ import annotations

import copy
import hashlib
from datetime import timedelta
from typing import Any

import pytest

from conformance.csafcheck import check_csaf
from conformance.errors import ProbeError
from conformance.mcuboot import flip_payload_byte, forge_image, read_header, strip_signature
from tests.update_server.test_csaf import BASE, PRODUCT, PUBLISHER, T0, fixed_report
from update_server import csaf


def test_a_vendor_advisory_and_provider_metadata_pass_the_probes_schema_check() -> None:
    advisory = csaf.build_advisory(fixed_report(), publisher=PUBLISHER, product=PRODUCT, now=T0 + timedelta(days=4))
    check_csaf(advisory, "csaf")  # the CVSS references resolve to the probe's own schema copies
    check_csaf(csaf.provider_metadata(base_url=BASE, publisher=PUBLISHER, last_updated=T0), "provider")


@pytest.mark.parametrize(
    ("mutate", "where"),
    [
        (lambda d: d["document"].pop("title"), "document"),
        (lambda d: d["vulnerabilities"][0]["scores"][0]["cvss_v3"].update(baseScore=11), "baseScore"),
        (lambda d: d.pop("vulnerabilities"), "needs product_tree and vulnerabilities"),
    ],
)
def test_a_broken_advisory_fails_the_probes_schema_check(mutate: Any, where: str) -> None:
    advisory = copy.deepcopy(
        csaf.build_advisory(fixed_report(), publisher=PUBLISHER, product=PRODUCT, now=T0 + timedelta(days=4))
    )
    mutate(advisory)
    with pytest.raises(ProbeError, match=where):
        check_csaf(advisory, "csaf")


def test_forged_images_are_mcuboot_images_the_camera_parser_reads_and_refuses_to_trust() -> None:
    from common.errors import ImageFormatError, ImageVerificationError
    from common.image import SignedImage, verify_image
    from common.keymanifest import KeyManifest

    forged = forge_image(b"\x00" * 4096, hardware_id="refcam-rc1080-v1", version="99.0.0", security_counter=250)
    image = SignedImage.parse(forged)  # the camera's strict parser agrees on every field
    assert (str(image.version), image.security_counter, image.hardware_id) == ("99.0.0", 250, "refcam-rc1080-v1")
    manifest = KeyManifest.parse(image.key_manifest or b"")
    assert manifest.counter == 250
    assert read_header(forged).version == "99.0.0"
    assert image.image_hash == hashlib.sha256(image.covered).digest()
    with pytest.raises(ImageFormatError, match="no KEYHASH or PUBKEY"):
        SignedImage.parse(strip_signature(forged))
    flipped = SignedImage.parse(flip_payload_byte(forged))
    with pytest.raises(ImageVerificationError, match="hash mismatch"):
        verify_image(flipped, public_key=manifest.find_key(flipped.key_hash))
