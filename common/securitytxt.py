"""security.txt (RFC 9116): build and strictly parse, pure.

The file tells researchers where to report vulnerabilities. RFC 9116 rules
enforced by :func:`parse_security_txt` (section numbers of the RFC):

* 2.5.3 ``Contact``: at least one; each a URI (``mailto:``, ``tel:`` or
  ``https://`` -- 2.5.3 says web URIs MUST be https).
* 2.5.5 ``Expires``: exactly one, an RFC 3339 date-time, not in the past.
  The RFC only RECOMMENDS less than a year ahead; refcam's conformance row 30
  requires it, so more than 366 days ahead is an error when ``strict`` (the
  default) and a warning otherwise.
* 2.5.2 ``Canonical``, 2.5.7 ``Policy``, 2.5.4 ``Encryption``, 2.5.1
  ``Acknowledgments``, 2.5.6 ``Hiring``: web URIs must be https.
* 2.5.8 ``Preferred-Languages``: at most once, comma-separated language tags.
* ``CSAF`` (IANA registry, CSAF 2.0 7.1.8): https URL of provider-metadata.json.
* 2.4/2.5: field names are case-insensitive; unknown fields are kept aside
  and ignored; ``#`` starts a comment; lines end in LF or CRLF (ABNF ``eol``).
* 2.3: an OpenPGP cleartext signature frame is recognised and removed
  (dash-escaping undone); the signature itself is NOT verified here (no
  well-kept pure-Python OpenPGP library is part of refcam) and the result says
  so in ``signed``.

Example::

    text = security_txt_for(now, base_url="https://vendor.example")
    info = parse_security_txt(text, now=now)
    assert info.expires - now < timedelta(days=365)
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

from common.errors import SecurityTxtError

RENEW_AFTER = timedelta(days=180)  # security_txt_for(): Expires = now + 180 days
MAX_AHEAD = timedelta(days=366)  # RFC 9116 2.5.5: "less than a year" (a leap year has 366)
MAX_SIZE = 32 * 2**10  # bytes; a security.txt is a few hundred bytes

_KNOWN = {
    "acknowledgments": "Acknowledgments",
    "canonical": "Canonical",
    "contact": "Contact",
    "encryption": "Encryption",
    "expires": "Expires",
    "hiring": "Hiring",
    "policy": "Policy",
    "preferred-languages": "Preferred-Languages",
    "csaf": "CSAF",
}
_FIELD_RE = re.compile(r"^([A-Za-z0-9!#$%&'*+.^_`|~-]+):[ \t]*(.*?)[ \t]*$")
_RFC3339_RE = re.compile(r"^\d{4}-\d{2}-\d{2}[Tt]\d{2}:\d{2}:\d{2}(\.\d+)?([Zz]|[+-]\d{2}:\d{2})$")
_LANG_RE = re.compile(r"^[A-Za-z]{1,8}(-[A-Za-z0-9]{1,8})*$")
_URI_RE = re.compile(r"^[A-Za-z][A-Za-z0-9+.-]*:\S+$")
_PGP_HEADER = "-----BEGIN PGP SIGNED MESSAGE-----"
_PGP_SIG = "-----BEGIN PGP SIGNATURE-----"


@dataclass(frozen=True)
class SecurityTxt:
    contacts: tuple[str, ...]
    expires: datetime
    policy: tuple[str, ...] = ()
    encryption: tuple[str, ...] = ()
    acknowledgments: tuple[str, ...] = ()
    canonical: tuple[str, ...] = ()
    hiring: tuple[str, ...] = ()
    csaf: tuple[str, ...] = ()
    preferred_languages: tuple[str, ...] = ()
    unknown_fields: Mapping[str, tuple[str, ...]] = field(default_factory=dict)
    signed: bool = False  # an OpenPGP frame was present (signature not verified)
    warnings: tuple[str, ...] = ()


def _format_expires(expires: datetime) -> str:
    if expires.tzinfo is None:
        raise SecurityTxtError("Expires must be timezone-aware")
    return expires.astimezone(UTC).replace(microsecond=0).strftime("%Y-%m-%dT%H:%M:%SZ")


def _check_uri(name: str, value: str, *, web_only: bool = False) -> str:
    if not _URI_RE.fullmatch(value):
        raise SecurityTxtError(f"{name} value {value[:80]!r} is not a URI")
    scheme = value.split(":", 1)[0].lower()
    if scheme == "http":
        raise SecurityTxtError(
            f"{name} value {value[:80]!r} uses http://; RFC 9116 requires https:// for web URIs"
        )
    if web_only and scheme != "https":
        raise SecurityTxtError(f"{name} value {value[:80]!r} must be an https:// URL")
    if name == "Contact" and scheme not in ("https", "mailto", "tel"):
        raise SecurityTxtError(
            f"Contact value {value[:80]!r} has scheme {scheme!r}; expected https, mailto or tel"
        )
    return value


def build_security_txt(
    *,
    contacts: Sequence[str],
    expires: datetime,
    policy_url: str | None,
    preferred_languages: Sequence[str] = ("en",),
    canonical_urls: Sequence[str] = (),
    csaf_url: str | None = None,
    encryption: str | None = None,
    acknowledgments: str | None = None,
) -> str:
    """Render a security.txt; every value is checked as the parser would."""
    if not contacts:
        raise SecurityTxtError("security.txt needs at least one Contact (RFC 9116 2.5.3)")
    lines = ["# Security contact for this vendor (RFC 9116).", ""]
    lines += [f"Contact: {_check_uri('Contact', c)}" for c in contacts]
    lines.append(f"Expires: {_format_expires(expires)}")
    if encryption:
        lines.append(f"Encryption: {_check_uri('Encryption', encryption)}")
    if acknowledgments:
        lines.append(f"Acknowledgments: {_check_uri('Acknowledgments', acknowledgments)}")
    if preferred_languages:
        for tag in preferred_languages:
            if not _LANG_RE.fullmatch(tag):
                raise SecurityTxtError(f"Preferred-Languages tag {tag!r} is not a language tag")
        lines.append(f"Preferred-Languages: {', '.join(preferred_languages)}")
    lines += [f"Canonical: {_check_uri('Canonical', u, web_only=True)}" for u in canonical_urls]
    if policy_url:
        lines.append(f"Policy: {_check_uri('Policy', policy_url, web_only=True)}")
    if csaf_url:
        lines.append(f"CSAF: {_check_uri('CSAF', csaf_url, web_only=True)}")
    return "\n".join(lines) + "\n"


def security_txt_for(
    now: datetime,
    *,
    base_url: str,
    contacts: Sequence[str] | None = None,
    preferred_languages: Sequence[str] = ("en",),
) -> str:
    """The vendor's security.txt at ``now``: Expires always ``now + 180 days`` (< 1 year).

    ``base_url`` is the https origin the file is served from; Policy, Canonical
    and CSAF point into it, and the report-intake API is the default Contact.
    """
    base = base_url.rstrip("/")
    return build_security_txt(
        contacts=list(contacts) if contacts else [f"{base}/security/policy"],
        expires=now + RENEW_AFTER,
        policy_url=f"{base}/security/policy",
        preferred_languages=preferred_languages,
        canonical_urls=[f"{base}/.well-known/security.txt"],
        csaf_url=f"{base}/.well-known/csaf/provider-metadata.json",
    )


def _strip_signature(lines: list[str]) -> tuple[list[str], bool]:
    """Remove an OpenPGP cleartext frame (RFC 9580 7) if present; undo dash-escaping."""
    if not lines or lines[0].strip() != _PGP_HEADER:
        if any(line.strip() == _PGP_SIG for line in lines):
            raise SecurityTxtError("security.txt has an OpenPGP signature without a signed header")
        return lines, False
    try:
        blank = lines.index("", 1)  # armor headers ("Hash: ...") end at the first empty line
        end = lines.index(_PGP_SIG)
    except ValueError as exc:
        raise SecurityTxtError("security.txt has a malformed OpenPGP cleartext frame") from exc
    body = [line[2:] if line.startswith("- ") else line for line in lines[blank + 1 : end]]
    return body, True


def parse_security_txt(
    text: str | bytes,
    *,
    now: datetime,
    strict: bool = True,
    source_url: str | None = None,
) -> SecurityTxt:
    """Parse and check a security.txt; raise SecurityTxtError naming the broken rule."""
    if now.tzinfo is None:
        raise ValueError("now must be timezone-aware")
    if isinstance(text, bytes):
        if len(text) > MAX_SIZE:
            raise SecurityTxtError(
                f"security.txt is {len(text)} bytes, at most {MAX_SIZE} expected"
            )
        try:
            text = text.decode("utf-8")  # RFC 9116 3: UTF-8
        except UnicodeDecodeError as exc:
            raise SecurityTxtError(f"security.txt is not UTF-8: {exc}") from exc
    if len(text) > MAX_SIZE:
        raise SecurityTxtError(f"security.txt is {len(text)} characters, at most {MAX_SIZE}")
    raw_lines = [line.removesuffix("\r") for line in text.split("\n")]
    lines, signed = _strip_signature(raw_lines)
    fields: dict[str, list[str]] = {}
    unknown: dict[str, list[str]] = {}
    for number, line in enumerate(lines, 1):
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        match = _FIELD_RE.match(line)
        if match is None:
            raise SecurityTxtError(
                f"line {number} is neither a field, a comment nor blank: {line[:60]!r}"
            )
        name, value = match.group(1).lower(), match.group(2)
        if not value:
            raise SecurityTxtError(f"line {number}: field {match.group(1)} has an empty value")
        (fields if name in _KNOWN else unknown).setdefault(name, []).append(value)
    warnings: list[str] = []
    contacts = fields.get("contact", [])
    if not contacts:
        raise SecurityTxtError("security.txt has no Contact field; RFC 9116 2.5.3 requires one")
    for c in contacts:
        _check_uri("Contact", c)
    expires_values = fields.get("expires", [])
    if len(expires_values) != 1:
        raise SecurityTxtError(
            f"security.txt has {len(expires_values)} Expires fields; RFC 9116 2.5.5 requires "
            "exactly one"
        )
    expires_text = expires_values[0]
    if not _RFC3339_RE.fullmatch(expires_text):
        raise SecurityTxtError(
            f"Expires {expires_text[:40]!r} is not an RFC 3339 date-time such as "
            "2026-12-31T23:59:59Z"
        )
    expires = datetime.fromisoformat(expires_text.upper().replace("Z", "+00:00"))
    if expires <= now:
        raise SecurityTxtError(
            f"security.txt expired at {expires.isoformat()} (now {now.isoformat()}); "
            "RFC 9116 2.5.5 says stale files must not be used"
        )
    if expires - now > MAX_AHEAD:
        message = (
            f"Expires {expires.isoformat()} is {(expires - now).days} days ahead; "
            "RFC 9116 2.5.5 recommends less than a year"
        )
        if strict:
            raise SecurityTxtError(message)
        warnings.append(message)
    for key in ("policy", "canonical", "encryption", "acknowledgments", "hiring", "csaf"):
        for value in fields.get(key, []):
            _check_uri(_KNOWN[key], value, web_only=key in ("policy", "canonical", "csaf"))
    languages: list[str] = []
    pref = fields.get("preferred-languages", [])
    if len(pref) > 1:
        raise SecurityTxtError("Preferred-Languages appears more than once (RFC 9116 2.5.8)")
    if pref:
        languages = [t.strip() for t in pref[0].split(",")]
        for tag in languages:
            if not _LANG_RE.fullmatch(tag):
                raise SecurityTxtError(f"Preferred-Languages tag {tag!r} is not a language tag")
    canonical = fields.get("canonical", [])
    if source_url is not None and canonical and source_url not in canonical:
        raise SecurityTxtError(
            f"security.txt fetched from {source_url} lists other Canonical URIs "
            f"{', '.join(canonical)} (RFC 9116 2.5.2)"
        )
    if "policy" not in fields:
        warnings.append("no Policy field (RFC 9116 2.5.7 recommends one)")
    return SecurityTxt(
        contacts=tuple(contacts),
        expires=expires,
        policy=tuple(fields.get("policy", [])),
        encryption=tuple(fields.get("encryption", [])),
        acknowledgments=tuple(fields.get("acknowledgments", [])),
        canonical=tuple(canonical),
        hiring=tuple(fields.get("hiring", [])),
        csaf=tuple(fields.get("csaf", [])),
        preferred_languages=tuple(languages),
        unknown_fields={k: tuple(v) for k, v in unknown.items()},
        signed=signed,
        warnings=tuple(warnings),
    )
