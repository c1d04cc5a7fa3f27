"""Errors of the conformance probe."""

from __future__ import annotations

from common.errors import RefcamError


class ProbeError(RefcamError):
    """Base of every expected probe failure."""


class CatalogueError(ProbeError):
    """The test catalogue data is malformed."""


class ProbeBudgetExceeded(ProbeError):
    """A case tried to send more requests than its bound allows."""


class ReportError(ProbeError):
    """A report cannot be written or read."""
