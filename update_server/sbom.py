"""CycloneDX SBOM for a firmware payload (cyclonedx-python-lib).

The SBOM lists what a firmware release is made of: every file of the
payload zip (``device/...``, SHA-256 from the verified manifest) and the
third-party Python distributions the runtime imports (found by reading the
payload's import statements with :mod:`ast`, versions from
:mod:`importlib.metadata` of the build environment). The firmware itself is
``metadata.component``. The serial number is derived from the payload digest
and the timestamp from the manifest ``build_time``, so the same payload gives
the same SBOM bytes.

Example::

    text = build_sbom(payload_zip, version="1.0.1", hardware_id="refcam-rc1080-v1",
                      model="RC-1080")
    validate_sbom(text)
"""

from __future__ import annotations

import ast
import hashlib
import importlib.metadata
import sys
import uuid
from datetime import UTC, datetime

from cyclonedx.model import HashAlgorithm, HashType, Property
from cyclonedx.model.bom import Bom, BomMetaData
from cyclonedx.model.component import Component, ComponentType
from cyclonedx.model.contact import OrganizationalEntity
from cyclonedx.output.json import JsonV1Dot6
from cyclonedx.schema import SchemaVersion
from cyclonedx.validation.json import JsonStrictValidator
from packageurl import PackageURL

from bootloader.firmware import FirmwarePayload
from common.errors import FirmwarePayloadError
from update_server.psirt.errors import SBOMError

SCHEMA_VERSION = SchemaVersion.V1_6
_FIRST_PARTY = frozenset({"device", "bootloader", "refcam", "update_server", "conformance"})
_SBOM_NAMESPACE = uuid.UUID("6f1c1a52-4f43-4b0e-9a0e-2f1c7a1b5e10")  # refcam SBOM serials


def _imported_top_level(files: dict[str, bytes]) -> set[str]:
    """Top-level names of absolute imports in the payload's Python files, less the
    payload's own packages (``device``, ``common``)."""
    names: set[str] = set()
    own = {name.split("/")[0] for name in files if "/" in name}
    for filename, data in files.items():
        if not filename.endswith(".py"):
            continue
        try:
            tree = ast.parse(data, filename=filename)
        except (SyntaxError, ValueError) as exc:
            raise SBOMError(f"payload file {filename} is not valid Python: {exc}") from exc
        for node in ast.walk(tree):
            if isinstance(node, ast.Import):
                names.update(alias.name.split(".")[0] for alias in node.names)
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                names.add(node.module.split(".")[0])
    return names - own


def third_party_distributions(modules: set[str]) -> dict[str, str]:
    """Map imported top-level modules to installed distributions: ``{name: version}``."""
    owners = importlib.metadata.packages_distributions()
    found: dict[str, str] = {}
    for module in sorted(modules - set(sys.stdlib_module_names) - _FIRST_PARTY):
        for dist in owners.get(module, []):
            try:
                found[dist] = importlib.metadata.version(dist)
            except importlib.metadata.PackageNotFoundError:
                continue
    return found


def build_sbom(payload_zip: bytes, *, version: str, hardware_id: str, model: str) -> str:
    """The CycloneDX 1.6 JSON SBOM of one firmware payload."""
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
    firmware = Component(
        name=model,
        type=ComponentType.FIRMWARE,
        version=version,
        bom_ref=f"firmware:{hardware_id}@{version}",
        supplier=OrganizationalEntity(name="refcam"),
        hashes=[HashType(alg=HashAlgorithm.SHA_256, content=payload.digest)],
        properties=[
            Property(name="refcam:hardware_id", value=hardware_id),
            Property(name="refcam:build_time", value=str(manifest.build_time)),
            Property(name="refcam:support_end", value=manifest.support_end),
        ],
    )
    components = [
        Component(
            name=name,
            type=ComponentType.FILE,
            bom_ref=f"file:{name}",
            hashes=[HashType(alg=HashAlgorithm.SHA_256, content=hashlib.sha256(data).hexdigest())],
        )
        for name, data in sorted(payload.files.items())
    ]
    deps = third_party_distributions(_imported_top_level(dict(payload.files)))
    components += [
        Component(
            name=dist,
            version=dist_version,
            type=ComponentType.LIBRARY,
            bom_ref=f"pypi:{dist}@{dist_version}",
            purl=PackageURL(type="pypi", name=dist.lower(), version=dist_version),
        )
        for dist, dist_version in sorted(deps.items())
    ]
    bom = Bom(
        components=components,
        serial_number=uuid.uuid5(_SBOM_NAMESPACE, payload.digest),
        metadata=BomMetaData(
            component=firmware,
            timestamp=datetime.fromtimestamp(manifest.build_time, tz=UTC),
        ),
    )
    for component in components:
        bom.register_dependency(firmware, [component])
    return JsonV1Dot6(bom).output_as_string(indent=1)


def validate_sbom(text: str) -> None:
    """Raise SBOMError unless ``text`` is valid CycloneDX 1.6 JSON (bundled schema)."""
    error = JsonStrictValidator(SCHEMA_VERSION).validate_str(text)
    if error is not None:
        raise SBOMError(f"SBOM is not valid CycloneDX {SCHEMA_VERSION.to_version()}: {error}")
