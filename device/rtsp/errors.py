"""The RTSP package's one error hierarchy: every error carries the RTSP status it maps to."""

from __future__ import annotations

from ..errors import DeviceError


class RtspError(DeviceError):
    """A request the server refuses: ``status`` and ``reason`` go on the RTSP status line."""

    def __init__(
        self, status: int, reason: str, detail: str = "", *, headers: list[tuple[str, str]] | None = None
    ) -> None:
        super().__init__(detail or reason)
        self.status = status
        self.reason = reason
        self.detail = detail or reason
        self.headers = list(headers or [])


class MediaError(DeviceError):
    """A media-plane failure: the encoder, a JPEG the RFC 2435 packetiser cannot carry, a bad H.264 stream."""
