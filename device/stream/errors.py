"""Errors of the frame pipeline and the signed-stream formats, one hierarchy.

``StreamError`` derives from :class:`device.errors.DeviceError`, so the
server's error middleware and the ``refcam`` command line handle it like any
other firmware error. Input refusals (a bad ``--source`` spec, a bad mask, a
malformed recording or multipart body) are kept apart from I/O failures (a
camera that cannot be opened, a server that cannot be reached). The stream
verifier's verdict errors (``NotAuthentic``, ``Incomplete``) live with the
verifier, in ``refcam.streamverify``: verifying is a client's job.
"""

from __future__ import annotations

from ..errors import DeviceError


class StreamError(DeviceError):
    """Base of every expected failure in :mod:`device.stream`."""


class SourceSpecError(StreamError):
    """A ``--source`` spec string is not one of the accepted forms."""


class SourceError(StreamError):
    """A frame source (camera, video file, image folder) cannot be opened or read."""


class MaskError(StreamError):
    """A privacy-mask rectangle is not valid."""


class SigningKeyError(StreamError):
    """The stream signing key or its certificate chain cannot be loaded or do not match."""


class FormatError(StreamError):
    """Bytes from outside (a recording, a multipart body, a manifest) are malformed."""


class TransportError(StreamError):
    """The stream server cannot be reached or broke the connection."""
