"""CycloneDX SBOM per firmware payload (requirement row 33)."""

from __future__ import annotations

import hashlib
import io
import json
import zipfile
from pathlib import Path

import pytest

from bootloader.firmware import build_payload
from update_server.psirt.errors import SBOMError
from update_server.sbom import build_sbom, validate_sbom

HWID, MODEL = "refcam-rc1080-v1", "RC-1080"


def payload(tmp_path: Path, version: str = "1.0.1") -> bytes:
    src = tmp_path / "device"
    (src / "webui").mkdir(parents=True, exist_ok=True)
    (src / "__init__.py").write_text("")
    (src / "main.py").write_text(
        "import json\nimport aiohttp\nfrom cryptography.hazmat.primitives import hashes\n"
        "from . import tls\n\ndef run(handoff, argv):\n    return 0\n"
    )
    (src / "tls.py").write_text("import ssl\nimport yarl\n")
    (src / "webui" / "index.html").write_text("<!doctype html><title>cam</title>")
    return build_payload(
        version=version,
        hardware_id=HWID,
        model=MODEL,
        build_time=1_772_000_000,
        support_end="2031-12-31",
        source_dir=src,
    )


def test_sbom_lists_every_payload_file_with_its_hash_and_the_imported_packages(
    tmp_path: Path,
) -> None:
    data = payload(tmp_path)
    text = build_sbom(data, version="1.0.1", hardware_id=HWID, model=MODEL)
    validate_sbom(text)
    doc = json.loads(text)
    assert doc["bomFormat"] == "CycloneDX" and doc["specVersion"] == "1.6"
    assert doc["serialNumber"].startswith("urn:uuid:")
    meta = doc["metadata"]["component"]
    assert (meta["type"], meta["name"], meta["version"]) == ("firmware", MODEL, "1.0.1")
    assert meta["hashes"] == [{"alg": "SHA-256", "content": hashlib.sha256(data).hexdigest()}]
    with zipfile.ZipFile(io.BytesIO(data)) as zf:
        files = {
            n: hashlib.sha256(zf.read(n)).hexdigest() for n in zf.namelist() if n != "manifest.json"
        }
    listed = {
        c["name"]: c["hashes"][0]["content"] for c in doc["components"] if c["type"] == "file"
    }
    assert listed == files
    libraries = {c["name"]: c for c in doc["components"] if c["type"] == "library"}
    assert set(libraries) == {"aiohttp", "cryptography", "yarl"}
    assert libraries["aiohttp"]["purl"].startswith("pkg:pypi/aiohttp@")
    assert "json" not in libraries and "ssl" not in libraries  # stdlib is not a component


def test_same_payload_gives_the_same_sbom(tmp_path: Path) -> None:
    data = payload(tmp_path)
    assert build_sbom(data, version="1.0.1", hardware_id=HWID, model=MODEL) == build_sbom(
        data, version="1.0.1", hardware_id=HWID, model=MODEL
    )


def test_payload_for_another_release_is_refused(tmp_path: Path) -> None:
    with pytest.raises(
        SBOMError, match="payload is firmware refcam-rc1080-v1 1.0.1, not refcam-rc1080-v1 2.0.0"
    ):
        build_sbom(payload(tmp_path), version="2.0.0", hardware_id=HWID, model=MODEL)


def test_corrupt_payload_is_refused(tmp_path: Path) -> None:
    with pytest.raises(SBOMError, match="cannot build an SBOM: payload is not a valid zip"):
        build_sbom(b"not a zip", version="1.0.1", hardware_id=HWID, model=MODEL)


def test_validator_rejects_a_broken_sbom(tmp_path: Path) -> None:
    doc = json.loads(build_sbom(payload(tmp_path), version="1.0.1", hardware_id=HWID, model=MODEL))
    doc["components"][0]["type"] = "gadget"
    with pytest.raises(SBOMError, match="not valid CycloneDX 1.6"):
        validate_sbom(json.dumps(doc))
