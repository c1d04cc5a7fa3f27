"""CycloneDX SBOM and VEX for a firmware release (cyclonedx-python-lib).

The SBOM lists what a firmware release is made of, *measured* at build time:

* every file of the payload zip (``device/...``, SHA-256);
* every third-party distribution the runtime loads: the payload is put on
  ``sys.path`` of a fresh interpreter (``python -I``) and each of its modules
  imported; every module then in ``sys.modules`` that was not there at
  start-up is mapped to its distribution, whose ``importlib.metadata`` gives
  the version, the licence (``License-Expression``, else ``License``), the
  supplier (maintainer, else author) and a hash (SHA-256 of its ``RECORD``,
  which lists the SHA-256 of every installed file); purl ``pkg:pypi/...``;
* the interpreter and the C libraries it links (CPython, OpenSSL, SQLite,
  zlib; the OpenSSL built into ``cryptography``), with CPEs, and the SHA-256
  of the shared objects the process mapped where there are any.

The firmware itself is ``metadata.component`` (purl and CPE). Its hash is the
*image digest*, the value the bootloader measures (image hash TLV, the
attestation's firmware measurement) when the SBOM is published beside the
image; the copy packed inside the payload cannot hold the digest of the image
that contains it, so the device adds its measured digest when it serves it
(:mod:`device.disclosure`).

:func:`build_vex` states, per release, which published CSAF advisories affect
it (CycloneDX 1.6 VEX: ``exploitable`` or ``resolved``).

Example::

    text = build_sbom(payload_zip, version="1.0.1", hardware_id="refcam-rc1080-v1",
                      model="RC-1080", image_digest=image_hash_hex)
    validate_sbom(text)
"""

from __future__ import annotations

import email.utils
import hashlib
import json
import re
import subprocess
import sys
import tempfile
import uuid
from collections.abc import Iterable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from cyclonedx.contrib.license.factories import LicenseFactory
from cyclonedx.model import HashAlgorithm, HashType, Property
from cyclonedx.model.bom import Bom, BomMetaData
from cyclonedx.model.component import Component, ComponentType
from cyclonedx.model.contact import OrganizationalContact, OrganizationalEntity
from cyclonedx.model.impact_analysis import ImpactAnalysisState
from cyclonedx.model.vulnerability import (
    BomTarget,
    Vulnerability,
    VulnerabilityAnalysis,
    VulnerabilitySource,
)
from cyclonedx.output.json import JsonV1Dot6
from cyclonedx.schema import SchemaVersion
from cyclonedx.validation.json import JsonStrictValidator
from packageurl import PackageURL

from bootloader.firmware import FirmwarePayload
from common.errors import FirmwarePayloadError
from update_server import csaf
from update_server.psirt.errors import SBOMError

SCHEMA_VERSION = SchemaVersion.V1_6
FIRST_PARTY = frozenset({"common", "device", "bootloader", "refcam", "update_server", "conformance"})
_SBOM_NAMESPACE = uuid.UUID("6f1c1a52-4f43-4b0e-9a0e-2f1c7a1b5e10")  # refcam SBOM serials
MEASURE_TIMEOUT = 120  # seconds for the measuring interpreter

# Run in a fresh interpreter: import every module of the payload, report what got loaded.
_MEASURE = r"""
import hashlib, importlib, importlib.metadata as md, json, os, platform, sqlite3, ssl, sys, zipfile, zlib
payload, first_party = sys.argv[1], set(sys.argv[2].split(","))
before = set(sys.modules)
sys.path.insert(0, payload)
modules = sorted(n[:-3].replace("/", ".").removesuffix(".__init__")
                 for n in zipfile.ZipFile(payload).namelist() if n.endswith(".py"))
for name in modules:
    module = importlib.import_module(name)
    if not (getattr(module, "__file__", "") or "").startswith(payload):
        raise SystemExit(f"{name} was imported from {module.__file__}, not from the payload")
loaded = {m.split(".")[0] for m in set(sys.modules) - before}
owners = md.packages_distributions()
def sha256(path):
    with open(path, "rb") as f:
        return hashlib.file_digest(f, "sha256").hexdigest()
dists = {}
for top in sorted(loaded - set(sys.stdlib_module_names) - first_party):
    for name in owners.get(top, []):
        dist = md.distribution(name)
        meta = dist.metadata
        record = dist.read_text("RECORD")
        dists[meta["Name"]] = {
            "version": dist.version,
            "license_expression": meta.get("License-Expression"),
            "license": meta.get("License"),
            "classifiers": [c for c in meta.get_all("Classifier") or [] if c.startswith("License ::")],
            "maintainer": meta.get("Maintainer"), "maintainer_email": meta.get("Maintainer-email"),
            "author": meta.get("Author"), "author_email": meta.get("Author-email"),
            "record_sha256": hashlib.sha256(record.encode()).hexdigest() if record else None,
        }
libs = {}
with open("/proc/self/maps") as maps:
    for line in maps:
        path = line.split()[-1]
        base = os.path.basename(path)
        for key in ("libssl.so", "libcrypto.so", "libsqlite3.so", "libz.so"):
            if base.startswith(key) and key not in libs and os.path.isfile(path):
                libs[key] = {"path": path, "sha256": sha256(path)}
bundled = None
if "cryptography" in sys.modules:
    from cryptography.hazmat.backends.openssl.backend import backend
    bundled = backend.openssl_version_text()
print(json.dumps({
    "python": {"implementation": platform.python_implementation(), "version": platform.python_version(),
               "executable_sha256": sha256(os.path.realpath(sys.executable))},
    "openssl": ssl.OPENSSL_VERSION, "sqlite": sqlite3.sqlite_version, "zlib": zlib.ZLIB_RUNTIME_VERSION,
    "cryptography_openssl": bundled, "libraries": libs, "distributions": dists,
    "modules": len(modules),
}))
"""

_MEASURED: dict[str, dict[str, Any]] = {}  # code digest -> measurement (one build makes two payloads)


def measure_runtime(payload_zip: bytes, code_files: dict[str, bytes]) -> dict[str, Any]:
    """Import the payload in a fresh interpreter; what it loads (see the module docstring)."""
    key = hashlib.sha256(
        b"".join(hashlib.sha256(n.encode() + b"\0" + d).digest() for n, d in sorted(code_files.items()))
    ).hexdigest()
    if key in _MEASURED:
        return _MEASURED[key]
    with tempfile.TemporaryDirectory(prefix="refcam-sbom-") as tmp:
        path = Path(tmp) / "payload.zip"
        path.write_bytes(payload_zip)
        try:
            done = subprocess.run(
                [sys.executable, "-I", "-c", _MEASURE, str(path), ",".join(sorted(FIRST_PARTY))],
                capture_output=True, text=True, timeout=MEASURE_TIMEOUT, check=False, cwd=tmp,
            )  # fmt: skip
        except subprocess.TimeoutExpired as exc:
            raise SBOMError(f"importing the firmware to measure it took over {MEASURE_TIMEOUT} s") from exc
    if done.returncode != 0:
        last = (done.stderr.strip().splitlines() or ["no output"])[-1]
        raise SBOMError(f"cannot measure the firmware: importing it failed: {last}")
    result: dict[str, Any] = json.loads(done.stdout)
    _MEASURED[key] = result
    return result


def _supplier(meta: dict[str, Any]) -> OrganizationalEntity | None:
    """Maintainer, else author: name and e-mail from the core metadata (``Name <mail>`` lists)."""
    for name_field, mail_field in (("maintainer", "maintainer_email"), ("author", "author_email")):
        name, mails = meta.get(name_field), meta.get(mail_field)
        addresses = [(n, a) for n, a in email.utils.getaddresses([mails]) if "@" in a] if mails else []
        if not name and addresses:
            name = addresses[0][0] or None
        if not name and mails and not addresses:
            name = mails.strip('" ')
        if name or addresses:
            contact = [OrganizationalContact(email=addresses[0][1])] if addresses else []
            return OrganizationalEntity(name=(name or addresses[0][1]).strip()[:200], contacts=contact)
    return None


def _licenses(meta: dict[str, Any]) -> list[Any]:
    factory = LicenseFactory()
    for text in (meta.get("license_expression"), meta.get("license")):
        if text and len(text) < 100 and "\n" not in text:
            return [factory.make_from_string(text.strip())]
    return [factory.make_with_name(c.rsplit(" :: ", 1)[-1]) for c in meta.get("classifiers", [])[:1]]


def _native(name: str, version: str, *, cpe_vendor: str, cpe_product: str, supplier: str,
            license_id: str, sha256: str | None, ref: str, description: str) -> Component:  # fmt: skip
    return Component(
        name=name, version=version, type=ComponentType.LIBRARY, bom_ref=ref,
        purl=PackageURL(type="generic", name=name.lower(), version=version),
        cpe=f"cpe:2.3:a:{cpe_vendor}:{cpe_product}:{version}:*:*:*:*:*:*:*",
        supplier=OrganizationalEntity(name=supplier), licenses=[LicenseFactory().make_from_string(license_id)],
        hashes=[HashType(alg=HashAlgorithm.SHA_256, content=sha256)] if sha256 else [],
        description=description,
    )  # fmt: skip


def _version_in(text: str | None) -> str | None:
    match = re.search(r"(\d+\.\d+\.\d+[a-z]?)", text or "")
    return match.group(1) if match else None


def runtime_components(measured: dict[str, Any]) -> list[Component]:
    """Components for the measured distributions, interpreter and C libraries."""
    components = []
    for name, meta in sorted(measured["distributions"].items(), key=lambda kv: kv[0].lower()):
        version = meta["version"]
        components.append(
            Component(
                name=name, version=version, type=ComponentType.LIBRARY, bom_ref=f"pypi:{name.lower()}@{version}",
                purl=PackageURL(type="pypi", name=name.lower().replace("_", "-"), version=version),
                supplier=_supplier(meta), licenses=_licenses(meta),
                hashes=[HashType(alg=HashAlgorithm.SHA_256, content=meta["record_sha256"])] if meta["record_sha256"] else [],
                properties=[Property(name="refcam:hash_of", value="RECORD of the installed distribution")],
            )
        )  # fmt: skip
    py, libs = measured["python"], measured["libraries"]
    components.append(
        Component(
            name="CPython", version=py["version"], type=ComponentType.PLATFORM, bom_ref=f"cpython@{py['version']}",
            purl=PackageURL(type="generic", name="cpython", version=py["version"]),
            cpe=f"cpe:2.3:a:python:python:{py['version']}:*:*:*:*:*:*:*",
            supplier=OrganizationalEntity(name="Python Software Foundation"),
            licenses=[LicenseFactory().make_from_string("PSF-2.0")],
            hashes=[HashType(alg=HashAlgorithm.SHA_256, content=py["executable_sha256"])],
        )
    )  # fmt: skip
    natives = [
        ("OpenSSL", _version_in(measured["openssl"]), "openssl", "openssl", "OpenSSL Software Foundation",
         "Apache-2.0", libs.get("libssl.so"), "openssl", "linked by CPython's ssl module"),
        ("SQLite", measured["sqlite"], "sqlite", "sqlite", "SQLite Consortium", "blessing",
         libs.get("libsqlite3.so"), "sqlite", "linked by CPython's sqlite3 module"),
        ("zlib", measured["zlib"], "zlib", "zlib", "Jean-loup Gailly and Mark Adler", "Zlib",
         libs.get("libz.so"), "zlib", "linked by CPython's zlib module"),
        ("OpenSSL", _version_in(measured.get("cryptography_openssl")), "openssl", "openssl",
         "OpenSSL Software Foundation", "Apache-2.0", None, "openssl-in-cryptography",
         "statically linked into the cryptography wheel"),
    ]  # fmt: skip
    for name, version, vendor, product, supplier, lic, lib, ref, description in natives:
        if version:
            components.append(
                _native(name, version, cpe_vendor=vendor, cpe_product=product, supplier=supplier, license_id=lic,
                        sha256=lib["sha256"] if lib else None, ref=f"{ref}@{version}", description=description)
            )  # fmt: skip
    return components


def firmware_component(
    *, model: str, version: str, hardware_id: str, image_digest: str | None, payload_digest: str,
    build_time: int, support_end: str,
) -> Component:  # fmt: skip
    slug = re.sub(r"[^a-z0-9]+", "_", model.lower()).strip("_")
    properties = [
        Property(name="refcam:hardware_id", value=hardware_id),
        Property(name="refcam:build_time", value=str(build_time)),
        Property(name="refcam:support_end", value=support_end),
        Property(name="refcam:payload_sha256", value=payload_digest),
    ]
    if image_digest is None:
        properties.append(
            Property(name="refcam:image_digest", value="measured at boot; served by the device, published beside the image")
        )
    return Component(
        name=model, type=ComponentType.FIRMWARE, version=version, bom_ref=f"firmware:{hardware_id}@{version}",
        supplier=OrganizationalEntity(name="refcam"),
        purl=PackageURL(type="generic", namespace="refcam", name=f"{slug}-firmware", version=version,
                        qualifiers={"hardware_id": hardware_id}),
        cpe=f"cpe:2.3:o:refcam:{slug}_firmware:{version}:*:*:*:*:*:*:*",
        hashes=[HashType(alg=HashAlgorithm.SHA_256, content=image_digest)] if image_digest else [],
        properties=properties,
    )  # fmt: skip


def build_sbom(
    payload_zip: bytes, *, version: str, hardware_id: str, model: str, image_digest: str | None = None
) -> str:
    """The CycloneDX 1.6 JSON SBOM of one firmware payload (``image_digest``: hex SHA-256 the
    bootloader measures, when the SBOM is published beside the image)."""
    try:
        payload = FirmwarePayload.parse(payload_zip)
    except FirmwarePayloadError as exc:
        raise SBOMError(f"cannot build an SBOM: {exc}") from exc
    manifest = payload.manifest
    if (manifest.version, manifest.hardware_id) != (version, hardware_id):
        raise SBOMError(
            f"payload is firmware {manifest.hardware_id} {manifest.version}, "
            f"not {hardware_id} {version}"
        )
    if image_digest is not None and not re.fullmatch(r"[0-9a-f]{64}", image_digest):
        raise SBOMError("image digest must be 64 lowercase hex digits (SHA-256)")
    files = dict(payload.files)
    firmware = firmware_component(
        model=model, version=version, hardware_id=hardware_id, image_digest=image_digest,
        payload_digest=payload.digest, build_time=manifest.build_time, support_end=manifest.support_end,
    )  # fmt: skip
    components = [
        Component(
            name=name,
            type=ComponentType.FILE,
            bom_ref=f"file:{name}",
            hashes=[HashType(alg=HashAlgorithm.SHA_256, content=hashlib.sha256(data).hexdigest())],
        )
        for name, data in sorted(files.items())
    ]
    code = {n: d for n, d in files.items() if n.endswith(".py")}
    components += runtime_components(measure_runtime(payload_zip, code))
    bom = Bom(
        components=components,
        serial_number=uuid.uuid5(_SBOM_NAMESPACE, payload.digest + (image_digest or "")),
        metadata=BomMetaData(
            component=firmware,
            timestamp=datetime.fromtimestamp(manifest.build_time, tz=UTC),
            authors=[OrganizationalContact(name="refcam firmware build")],
            supplier=OrganizationalEntity(name="refcam"),
        ),
    )
    for component in components:
        bom.register_dependency(firmware, [component])
    return JsonV1Dot6(bom).output_as_string(indent=1)


def build_vex(
    advisories: Iterable[dict[str, Any]], *, hardware_id: str, version: str, model: str, now: datetime
) -> str:
    """CycloneDX 1.6 VEX for one release: each advisory about its hardware, ``exploitable`` if the
    release is affected, ``resolved`` if it has the fix."""
    firmware = firmware_component(
        model=model, version=version, hardware_id=hardware_id, image_digest=None, payload_digest="",
        build_time=int(now.timestamp()), support_end="",
    )  # fmt: skip
    docs = {d["document"]["tracking"]["id"]: d for d in advisories}
    vulnerabilities = []
    for advisory_id, verdict, fixed_in in csaf.advisories_affecting(hardware_id, version, docs.values()):
        doc = docs[advisory_id]
        url = next((r["url"] for r in doc["document"].get("references", []) if r.get("category") == "self"), None)
        cves = [v["cve"] for v in doc["vulnerabilities"] if v.get("cve")]
        state = ImpactAnalysisState.EXPLOITABLE if verdict == "affected" else ImpactAnalysisState.RESOLVED
        detail = (f"{model} firmware {version} is affected; fixed in {fixed_in}" if verdict == "affected"
                  else f"{model} firmware {version} includes the fix (from {fixed_in})")  # fmt: skip
        vulnerabilities.append(
            Vulnerability(
                bom_ref=f"vex:{advisory_id}", id=cves[0] if cves else advisory_id,
                source=VulnerabilitySource(name=doc["document"]["publisher"]["name"], url=url) if url else None,
                description=doc["document"]["title"], analysis=VulnerabilityAnalysis(state=state, detail=detail),
                affects=[BomTarget(ref=firmware.bom_ref.value or "")],
                properties=[Property(name="refcam:advisory", value=advisory_id)],
            )
        )  # fmt: skip
    bom = Bom(
        vulnerabilities=vulnerabilities,
        serial_number=uuid.uuid5(_SBOM_NAMESPACE, f"vex:{hardware_id}:{version}:{now.isoformat()}"),
        metadata=BomMetaData(component=firmware, timestamp=now),
    )
    return JsonV1Dot6(bom).output_as_string(indent=1)


def validate_sbom(text: str) -> None:
    """Raise SBOMError unless ``text`` is valid CycloneDX 1.6 JSON (bundled schema)."""
    error = JsonStrictValidator(SCHEMA_VERSION).validate_str(text)
    if error is not None:
        raise SBOMError(f"SBOM is not valid CycloneDX {SCHEMA_VERSION.to_version()}: {error}")
