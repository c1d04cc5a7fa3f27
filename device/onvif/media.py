"""What the media services describe: the profiles the frame pipeline really produces.

:func:`media_profiles` is the one list of media profiles (ONVIF Media ver10
and Media2 ver20 both read it). Today the pipeline (``device.stream``) makes
MJPEG over HTTPS; when RTSP is switched on (``MediaDescription.rtsp_port``),
an H.264 profile is listed too with an ``rtsps://`` URI. Extending it is
adding one :class:`MediaProfile` here.

Example::

    profiles = media_profiles(MediaDescription(width=640, height=360, fps=15.0))
    assert profiles[0].encoding == "JPEG"
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

VIDEO_SOURCE_TOKEN = "video_source_0"  # noqa: S105 - an ONVIF reference token, not a secret
VIDEO_SOURCE_CONFIG_TOKEN = "video_source_config_0"  # noqa: S105 - an ONVIF reference token


@dataclass(frozen=True)
class MediaDescription:
    """The stream the firmware serves (from ``--source``), and whether RTSPS is on."""

    width: int = 640  # pixels
    height: int = 360  # pixels
    fps: float = 15.0  # frames a second
    jpeg_quality: int = 80  # 1..100
    mjpeg: bool = True  # the HTTPS MJPEG stream exists (``--source`` is not ``none``)
    rtsp_port: int | None = None  # RTSPS port when the RTSP service is on (device/rtsp)
    rtsp_path: str = "/stream/h264"


# The MJPEG stream for ONVIF clients: the web API's stream behind HTTP Digest (device.onvif.web).
MJPEG_PATH = "/onvif/stream.mjpeg"


@dataclass(frozen=True)
class MediaProfile:
    token: str
    name: str
    encoding: Literal["JPEG", "H264"]
    width: int
    height: int
    fps: float
    quality: float
    transport: Literal["HTTP", "RTSP"]
    path: str  # the stream's path on its server

    @property
    def encoder_token(self) -> str:
        return f"{self.token}_encoder"


def media_profiles(media: MediaDescription) -> list[MediaProfile]:
    """Every media profile this build serves, first the default (the one list to extend)."""
    profiles: list[MediaProfile] = []
    if media.rtsp_port is not None:
        profiles.append(
            MediaProfile(
                "h264_main", "H.264 over RTSPS", "H264", media.width, media.height, media.fps,
                float(media.jpeg_quality), "RTSP", media.rtsp_path,
            )
        )
    if media.mjpeg:
        profiles.append(
            MediaProfile(
                "mjpeg_main", "MJPEG over HTTPS", "JPEG", media.width, media.height, media.fps,
                float(media.jpeg_quality), "HTTP", MJPEG_PATH,
            )
        )
    return profiles
