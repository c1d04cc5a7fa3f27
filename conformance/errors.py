"""Errors of the conformance probe.

The probe shares no code with the cameras it judges, not even their root
error: :class:`ProbeError` is its own, and the ``refcam`` command turns it into
one line and ``exit_code`` as it does the others' errors.
"""

from __future__ import annotations


class ProbeError(Exception):
    """Base of every expected probe failure."""

    exit_code: int = 1


class CatalogueError(ProbeError):
    """The test catalogue data is malformed."""


class ProbeBudgetExceeded(ProbeError):
    """A case tried to send more requests than its bound allows."""


class ReportError(ProbeError):
    """A report cannot be written or read."""


class UsageError(ProbeError):
    """An option the probe cannot use: unknown case id, unreadable or malformed file."""

    exit_code = 2


class DeclarationError(UsageError):
    """The device declaration (``--declaration``) is unreadable or does not follow its schema."""


class PreflightError(ProbeError):
    """The probe cannot start: the target does not resolve, connect, authenticate over TLS,
    or the given credentials do not log in. No case runs and no report is written."""

    exit_code = 2


class MissingOption(ProbeError):
    """A case needs an option the run was not given; its units are NOT TESTED."""

    def __init__(self, message: str, *needs: str) -> None:
        super().__init__(message)
        self.needs = needs
