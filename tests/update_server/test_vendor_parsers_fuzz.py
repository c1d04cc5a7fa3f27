"""Fuzzing the vendor side's parsers of outside input (issue 13): PSIRT submissions and
security.txt. Any input gives a value or PSIRTInputError / SecurityTxtError; bounded."""

from __future__ import annotations

import contextlib
from datetime import UTC, datetime

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from common.errors import SecurityTxtError
from common.securitytxt import parse_security_txt
from update_server.psirt.errors import PSIRTInputError
from update_server.psirt.model import parse_message, parse_submission

FUZZ = settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
NOW = datetime(2027, 1, 1, tzinfo=UTC)
FIELDS = ["title", "description", "product", "version", "reporter_contact", "cvss_vector", "attachments", "x"]

scalars = st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=30)
json_values = st.recursive(
    scalars,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=10), inner, max_size=3),
    max_leaves=10,
)
attachment = st.fixed_dictionaries(
    {}, optional={"filename": json_values | st.text(max_size=20), "content_type": json_values,
                  "data": json_values | st.text(alphabet="ABCDabcd0123+/=", max_size=40)},
)  # fmt: skip
submissions = st.dictionaries(
    st.sampled_from(FIELDS),
    json_values | st.text(max_size=60) | st.lists(attachment, max_size=2)
    | st.sampled_from(["1.0.0", "CVSS:3.1/AV:N/AC:L/PR:N/UI:N/S:U/C:H/I:H/A:H", "CVSS:3.1/AV:Q"]),
    max_size=8,
)


@FUZZ
@given(json_values | submissions)
def test_psirt_submission_bodies(body: object) -> None:
    with contextlib.suppress(PSIRTInputError):
        parse_submission(body)
    with contextlib.suppress(PSIRTInputError):
        parse_message(body)


LINES = st.sampled_from([
    "Contact: mailto:psirt@example.com", "Contact: https://vendor.example/psirt", "Contact: ftp://x",
    "Expires: 2027-06-01T00:00:00Z", "Expires: 2020-01-01T00:00:00Z", "Expires: tomorrow",
    "Policy: https://vendor.example/policy", "Preferred-Languages: en, ko", "Canonical: https://vendor.example/.well-known/security.txt",
    "# comment", "", "-----BEGIN PGP SIGNED MESSAGE-----", "Hash: SHA256", "Unknown-Field: x", "no colon here",
])  # fmt: skip


@FUZZ
@given(st.lists(LINES | st.text(max_size=40), max_size=10), st.booleans())
def test_security_txt_texts(lines: list[str], strict: bool) -> None:
    text = "\n".join(lines)
    for candidate in (text, text.encode("utf-8"), text.encode("utf-16")):
        with contextlib.suppress(SecurityTxtError):
            parse_security_txt(candidate, now=NOW, strict=strict)


@FUZZ
@given(st.binary(max_size=300))
def test_security_txt_arbitrary_bytes(data: bytes) -> None:
    with contextlib.suppress(SecurityTxtError):
        parse_security_txt(data, now=NOW)
