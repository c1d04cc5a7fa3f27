"""Errors of the vendor side (TUF repository, update server), one hierarchy.

``UpdateServerError`` is the base. ``RepositoryInputError`` means the input
given to the repository tooling is bad (a bad image, an unknown role or key);
``RepositoryStateError`` means the repository on disk or its key directory is
missing, incomplete or inconsistent; ``ServerConfigError`` is a server that
cannot start as configured.
"""

from __future__ import annotations

from common.errors import RefcamError


class UpdateServerError(RefcamError):
    """Base of every expected failure in :mod:`update_server`."""


class RepositoryInputError(UpdateServerError):
    """The file, role, key or option given to the repository tooling is not acceptable."""


class RepositoryStateError(UpdateServerError):
    """The repository directory or the key directory is missing, incomplete or inconsistent."""


class SigningError(RepositoryStateError):
    """New metadata could not be signed to its role's threshold with the available keys."""


class ServerConfigError(UpdateServerError):
    """The update server cannot start as configured (TLS material, paths, port)."""
