"""Errors of the vulnerability-handling side (PSIRT, security.txt, CSAF, SBOM).

The base derives from :class:`update_server.errors.UpdateServerError`, so the
vendor side keeps one hierarchy rooted at ``common.errors.RefcamError``.
``PSIRTInputError`` and its children mean "the input is bad" (HTTP 400, CLI
exit 1); ``PSIRTStoreError`` means the storage failed. The web adapter maps
each class to one status code; pure modules never raise HTTP errors.
"""

from update_server.errors import UpdateServerError


class PSIRTError(UpdateServerError):
    """Base of every vulnerability-handling error (part of the update_server hierarchy)."""

    http_status = 400


class PSIRTInputError(PSIRTError):
    """A report, command argument or document is malformed (HTTP 400)."""


class CVSSVectorError(PSIRTInputError):
    """A CVSS vector string does not parse or is of an unsupported version."""


class TransitionError(PSIRTError):
    """A report cannot move to the requested state (HTTP 409)."""

    http_status = 409


class ReportNotFoundError(PSIRTError):
    """No report has the given tracking id (HTTP 404)."""

    http_status = 404


class ReporterAuthError(PSIRTError):
    """A reporter or operator token is missing or wrong (HTTP 401)."""

    http_status = 401


class PolicyError(PSIRTInputError):
    """An SLA policy file is malformed."""



class CSAFError(PSIRTError):
    """A CSAF document or provider metadata fails the OASIS schema or a CSAF rule."""

    http_status = 503


class SBOMError(PSIRTError):
    """An SBOM cannot be built from the given payload."""


class PSIRTStoreError(PSIRTError):
    """The PSIRT database failed or is inconsistent (storage, not input)."""

    http_status = 503
