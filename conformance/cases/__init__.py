"""The probe's case functions, one module per test group; importing registers them."""

from . import access, boot, credentials, disclosure, tls, update  # noqa: F401
