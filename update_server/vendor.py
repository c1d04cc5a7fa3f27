"""The vendor server as one TLS service: update repository + PSIRT + disclosure.

``refcam update-server run`` serves, on one origin:

- ``/metadata/``, ``/targets/``: the TUF repository (``server.py``);
- ``/.well-known/security.txt``, ``/security/policy``: RFC 9116 and the
  disclosure policy (acknowledgement and status-update times from the SLA policy);
- ``/api/v1/reports``: report intake; ``/api/v1/psirt/...``: the PSIRT API
  (operator bearer token);
- ``/api/v1/sla``: the published SLA policy, figures and breaches;
- ``/.well-known/csaf/``: CSAF provider metadata and advisories.

The ``sla-breached`` flaw (test-lab calibration, loopback only) seeds a report
acknowledged ten days late through the real store and workflow, so the real
SLA engine computes the breach.
"""

from __future__ import annotations

import os
import secrets
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING

from aiohttp import web

from common.atomicfile import private_dir, write_atomic
from common.flaws import UnsafeFlaws

from .errors import ServerConfigError
from .psirt.model import acknowledge, parse_submission
from .psirt.policy import load_policy
from .psirt.store import PSIRTStore
from .psirt.web import disclosure_extension

if TYPE_CHECKING:
    from .openpgp import OpenPGPSigner

VENDOR_FLAWS = frozenset({"sla-breached"})
DEFAULT_PSIRT_DB = Path("vendor-data") / "psirt.db"
PSIRT_TOKEN_ENV = "REFCAM_PSIRT_TOKEN"  # noqa: S105 - the variable name, not a token
LATE_BY = timedelta(days=10)  # sla-breached: acknowledged this long after the deadline


def psirt_token(data_dir: Path) -> tuple[str, str]:
    """The operator token: ``$REFCAM_PSIRT_TOKEN``, else one generated once into a 0600 file."""
    from_env = os.environ.get(PSIRT_TOKEN_ENV)
    if from_env:
        return from_env, f"${PSIRT_TOKEN_ENV}"
    path = data_dir / "psirt-token"
    if not path.exists():
        # written whole or not at all: a crash never leaves a short token
        private_dir(data_dir)
        write_atomic(path, (secrets.token_urlsafe(32) + "\n").encode(), mode=0o600)
    token = path.read_text().strip()
    if not token:
        raise ServerConfigError(f"{path} holds no usable operator token; delete it to generate a new one")
    return token, str(path)


def seed_late_report(store: PSIRTStore, *, now: datetime, acknowledge_window: timedelta) -> str:
    """UNSAFE (flaw ``sla-breached``): a report acknowledged after its deadline."""
    received = now - acknowledge_window - LATE_BY - timedelta(days=1)
    submission = parse_submission(
        {
            "title": "Calibration report acknowledged late (flaw sla-breached)",
            "description": "Seeded by the sla-breached flaw profile to calibrate SLA checks.",
            "product": "RC-1080",
            "version": "1.0.0",
        }
    )
    report, _token = store.create_report(submission, now=received)
    store.update(
        report.report_id,
        lambda r: acknowledge(r, now=received + acknowledge_window + LATE_BY),
    )
    return report.report_id


def vendor_extensions(
    *,
    base_url: str,
    psirt_db: Path,
    clock: Callable[[], datetime],
    policy_file: Path | None = None,
    flaws: UnsafeFlaws | None = None,
    signer: OpenPGPSigner | None = None,
) -> tuple[list[Callable[[web.Application], None]], str]:
    """The PSIRT/disclosure extension for the vendor app; returns it and where the token is."""
    flaws = flaws or UnsafeFlaws()
    unknown = set(flaws) - VENDOR_FLAWS
    if unknown:
        raise ServerConfigError(f"flaw {sorted(unknown)[0]!r} is a device flaw; the vendor server knows {sorted(VENDOR_FLAWS)}")
    policy_text = None
    if policy_file is not None:
        try:
            policy_text = policy_file.read_text()
        except OSError as exc:
            raise ServerConfigError(f"cannot read the SLA policy {policy_file}: {exc.strerror}") from exc
    policy = load_policy(policy_text)
    store = PSIRTStore.open(psirt_db)
    if "sla-breached" in flaws and not any(
        r.submission.title.startswith("Calibration report") for r in store.all()
    ):
        seed_late_report(store, now=clock(), acknowledge_window=policy.acknowledge)
    token, where = psirt_token(psirt_db.parent)
    extension = disclosure_extension(
        store=store, policy=policy, clock=clock, psirt_token=token, base_url=base_url, signer=signer
    )
    from .metrics import metrics_extension

    return [extension, metrics_extension(token)], where


def utc_now() -> datetime:
    return datetime.now(UTC)
