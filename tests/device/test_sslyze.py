"""sslyze (in process) finds the device compliant with Mozilla's TLS profiles.

The scan runs every check the Mozilla checker needs (versions and suites,
groups, Heartbleed, CCS injection, ROBOT, fallback SCSV, compression,
renegotiation, extended master secret, certificate) against the real server
on 127.0.0.1, with the manufacturer root as the certificate trust store.
"""

from __future__ import annotations

import asyncio
import datetime as dt
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.x509.verification import PolicyBuilder, Store
from device_fixtures import PKI, StartDevice
from sslyze import (
    ScanCommandsExtraArguments,
    Scanner,
    ServerNetworkLocation,
    ServerScanRequest,
    ServerScanResult,
    ServerScanStatusEnum,
)
from sslyze.mozilla_tls_profile.tls_config_checker import (
    SCAN_COMMANDS_NEEDED_BY_MOZILLA_CHECKER,
    MozillaTlsConfiguration,
    TlsConfigurationEnum,
    check_server_against_tls_configuration,
)
from sslyze.plugins.certificate_info.implementation import CertificateInfoExtraArgument

pytestmark = pytest.mark.slow


def scan(port: int, root: Path) -> ServerScanResult:
    request = ServerScanRequest(
        server_location=ServerNetworkLocation("localhost", port, "127.0.0.1"),
        scan_commands=SCAN_COMMANDS_NEEDED_BY_MOZILLA_CHECKER,
        scan_commands_extra_arguments=ScanCommandsExtraArguments(
            certificate_info=CertificateInfoExtraArgument(custom_ca_file=root)
        ),
    )
    scanner = Scanner()
    scanner.queue_scans([request])
    (result,) = list(scanner.get_results())
    assert result.scan_status == ServerScanStatusEnum.COMPLETED, result.connectivity_error_trace
    return result


def curves(result: ServerScanResult) -> set[str]:
    assert result.scan_result is not None and result.scan_result.elliptic_curves.result is not None
    return {c.name for c in result.scan_result.elliptic_curves.result.supported_curves or []}


async def test_intermediate_profile_is_mozilla_compliant(
    start_device: StartDevice, device_pki: PKI, tmp_path: Path
) -> None:
    root = tmp_path / "root.pem"
    root.write_bytes(device_pki.root_pem)
    device = await start_device(profile="intermediate")
    result = await asyncio.to_thread(scan, device.port, root)
    check_server_against_tls_configuration(
        result, MozillaTlsConfiguration.get(TlsConfigurationEnum.MOZILLA_INTERMEDIATE)
    )
    assert curves(result) == {"X25519", "secp256r1", "secp384r1"}
    assert result.scan_result is not None
    tls12 = result.scan_result.tls_1_2_cipher_suites.result
    assert tls12 is not None and tls12.accepted_cipher_suites
    assert result.scan_result.tls_1_1_cipher_suites.result.accepted_cipher_suites == []  # type: ignore[union-attr]
    assert result.scan_result.tls_1_0_cipher_suites.result.accepted_cipher_suites == []  # type: ignore[union-attr]
    assert result.scan_result.ssl_3_0_cipher_suites.result.accepted_cipher_suites == []  # type: ignore[union-attr]

    # the chain the server sends validates to the manufacturer root (cryptography's WebPKI verifier)
    certinfo = result.scan_result.certificate_info.result
    assert certinfo is not None
    received = certinfo.certificate_deployments[0].received_certificate_chain
    assert len(received) == 2  # leaf + device CA; the root is the client's anchor
    verifier = (
        PolicyBuilder()
        .store(Store([x509.load_pem_x509_certificate(device_pki.root_pem)]))
        .time(dt.datetime.now(dt.UTC))
        .build_server_verifier(x509.DNSName("localhost"))
    )
    path = verifier.verify(received[0], received[1:])
    assert len(path) == 3


async def test_modern_profile_is_mozilla_compliant(
    start_device: StartDevice, device_pki: PKI, tmp_path: Path
) -> None:
    root = tmp_path / "root.pem"
    root.write_bytes(device_pki.root_pem)
    device_dir = tmp_path / "state" / "data" / "identity"
    (device_dir / "tls.pem").write_bytes(device_pki.chain90_pem)  # "modern" wants <= 90 days
    device = await start_device(profile="modern")
    result = await asyncio.to_thread(scan, device.port, root)
    check_server_against_tls_configuration(
        result, MozillaTlsConfiguration.get(TlsConfigurationEnum.MOZILLA_MODERN)
    )
    assert result.scan_result is not None
    assert result.scan_result.tls_1_2_cipher_suites.result.accepted_cipher_suites == []  # type: ignore[union-attr]
