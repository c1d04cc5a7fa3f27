"""Errors of the firmware runtime, one hierarchy.

``DeviceError`` is the base. Input refusals (``PasswordPolicyError``,
``InvalidCredentials``, ``Throttled``...) are apart from storage failures
(``StorageError``) and from audit-chain tamper (``AuditChainError``). The
server's error middleware (``device.server``) maps them to HTTP statuses and
JSON bodies; pure modules never raise HTTP exceptions.
"""

from __future__ import annotations

from common.errors import RefcamError


class DeviceError(RefcamError):
    """Base of every expected failure in the firmware runtime."""


class ConfigError(DeviceError):
    """The device configuration or command line is not valid."""


class StorageError(DeviceError):
    """A runtime database cannot be opened, read or written."""


class RequestError(DeviceError):
    """A request body or parameter is malformed (HTTP 400 / 413 / 415)."""

    def __init__(self, code: str, message: str, *, status: int = 400) -> None:
        super().__init__(message)
        self.code = code
        self.status = status


class InvalidCredentials(DeviceError):
    """Unknown user or wrong password; deliberately does not say which.

    ``failures`` and ``locked_for`` (seconds) are for the audit log only; the
    HTTP answer is the same whatever they are.
    """

    def __init__(self, message: str, *, failures: int = 0, locked_for: float = 0.0) -> None:
        super().__init__(message)
        self.failures = failures
        self.locked_for = locked_for


class UnsafeUnknownUser(InvalidCredentials):
    """The ``user-enumeration`` flaw: an unknown user is answered differently (never by default)."""


class Throttled(DeviceError):
    """Too many failed logins: the account or the source must wait."""

    def __init__(self, retry_after: int, scope: str) -> None:
        super().__init__(f"too many failed logins ({scope}); retry after {retry_after} s")
        self.retry_after = retry_after
        self.scope = scope  # "account" or "source"


class PasswordPolicyError(DeviceError):
    """A new password does not satisfy the selected policy profile."""

    def __init__(self, reasons: list[str]) -> None:
        super().__init__("password rejected: " + "; ".join(reasons))
        self.reasons = tuple(reasons)


class UserError(DeviceError):
    """A user-management request cannot be done (unknown user, duplicate, last admin)."""

    def __init__(self, code: str, message: str, *, status: int = 400) -> None:
        super().__init__(message)
        self.code = code
        self.status = status


class SessionError(DeviceError):
    """No session, or an expired, unknown or logged-out session token."""


class AuditChainError(DeviceError):
    """The audit log's hash chain is broken: an entry was edited, removed or inserted."""

    def __init__(self, seq: int, message: str) -> None:
        super().__init__(f"audit entry {seq}: {message}")
        self.seq = seq
