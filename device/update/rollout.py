"""Staged rollouts: which units a release is offered to, decided by signed metadata.

The vendor widens a release step by step (``refcam repo rollout R --version V
--percent P [--halt]``). The rule travels in the release's signed TUF target
``custom`` field, so neither the network nor the device can move a unit into
or out of the cohort::

    "rollout": {"salt": "<32 hex>", "basis_points": 1000, "halted": false}

(the share in basis points, 1/100 of a percent: canonical JSON has no floats)

A unit's place in the rollout is a keyed hash of its serial (the serial of its
provisioned identity): ``HMAC-SHA256(salt, serial)`` read as a number in
[0, 100). It is in the cohort when that point is below ``percent``; widening
keeps the salt, so every unit admitted at 10 % stays admitted at 50 %. A halted
rollout admits nobody new (units that installed keep what they run).

Example::

    rule = parse_rollout(target.custom, target.path)
    if rule is not None and not rule.admits(serial): ...
"""

from __future__ import annotations

import hashlib
import hmac
import re
from dataclasses import dataclass
from typing import Any

from .errors import UntrustedMetadata

ROLLOUT_FIELD = "rollout"
_SALT = re.compile(r"[0-9a-f]{32,128}")


def cohort_point(serial: str, salt: str) -> float:
    """The unit's place in [0, 100): HMAC-SHA256 keyed with the rollout salt, over the serial."""
    digest = hmac.new(bytes.fromhex(salt), serial.encode("utf-8"), hashlib.sha256).digest()
    return int.from_bytes(digest[:8], "big") * 100.0 / 2**64


@dataclass(frozen=True)
class Rollout:
    salt: str
    percent: float
    halted: bool = False

    def admits(self, serial: str) -> bool:
        return not self.halted and cohort_point(serial, self.salt) < self.percent

    def describe(self, serial: str) -> dict[str, Any]:
        return {
            "percent": self.percent,
            "halted": self.halted,
            "cohort_point": round(cohort_point(serial, self.salt), 4),
            "in_cohort": cohort_point(serial, self.salt) < self.percent,
            "admitted": self.admits(serial),
        }


def parse_rollout(custom: Any, path: str) -> Rollout | None:
    """The signed rule of a target (None: no staged rollout, offered to every unit)."""
    if not isinstance(custom, dict) or ROLLOUT_FIELD not in custom:
        return None
    rule = custom[ROLLOUT_FIELD]
    if not isinstance(rule, dict):
        raise UntrustedMetadata(f"target {path} has a malformed rollout rule")
    salt, points, halted = rule.get("salt"), rule.get("basis_points"), rule.get("halted", False)
    if not isinstance(salt, str) or not _SALT.fullmatch(salt):
        raise UntrustedMetadata(f"target {path}: rollout salt must be 32..128 lower-case hex digits")
    if not isinstance(points, int) or isinstance(points, bool) or not 0 <= points <= 10000:
        raise UntrustedMetadata(f"target {path}: rollout basis_points {points!r} is not in 0..10000")
    if not isinstance(halted, bool):
        raise UntrustedMetadata(f"target {path}: rollout halted must be true or false")
    return Rollout(salt=salt, percent=points / 100, halted=halted)
