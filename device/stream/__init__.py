"""The camera's video stream: frame sources, the capture/encode pipeline, signed manifests.

Modules: :mod:`.sources` (the sensor, behind a tiny Protocol), :mod:`.masks`
(privacy masks applied before encoding), :mod:`.pipeline` (capture ->
encode once -> every viewer), :mod:`.signing` (segment manifest format and
signer), :mod:`.verify` (pure verifier and the recording container),
:mod:`.multipart` (MJPEG wire format), :mod:`.web` (HTTP routes).

``device.main`` wires it with two helpers::

    stream_options(parser)                       # --stream-source, --stream-mask, --stream-signing,
                                                 # --stream-frame-hash...
    args = parser.parse_args(argv)
    pipeline = build_pipeline(args, handoff)     # None for --stream-source none; StreamError if bad
    if pipeline is not None:
        extensions.append(lambda app: add_stream_routes(app, pipeline))   # from .web
"""

from __future__ import annotations

import argparse
from typing import TYPE_CHECKING

from .errors import StreamError
from .masks import parse_masks
from .pipeline import PipelineConfig, StreamPipeline
from .signing import ALGORITHMS, DEFAULT_FRAME_HASH, FRAME_HASHES, StreamSigner
from .sources import open_source, parse_source_spec

if TYPE_CHECKING:
    from common.handoff import BootHandoff

DEFAULT_SOURCE = "synthetic:640x360@15"  # what device.main used before; "none" turns streaming off


def stream_options(parser: argparse.ArgumentParser) -> None:
    """Add the stream options to the device's command line (``refcam device run``)."""
    group = parser.add_argument_group("video stream")
    group.add_argument(
        "--source",
        "--stream-source",
        dest="stream_source",
        default=DEFAULT_SOURCE,
        help="frame source: synthetic:WxH@FPS, file:PATH, device:INDEX, folder:DIR or none "
        f"(default {DEFAULT_SOURCE})",
    )
    group.add_argument(
        "--stream-mask",
        action="append",
        default=[],
        metavar="X,Y,W,H[:black|:pixelate[=BLOCK]]",
        help="privacy mask applied before encoding (repeatable)",
    )
    group.add_argument(
        "--stream-signing",
        choices=ALGORITHMS,
        default="ed25519",
        help="segment manifest signature algorithm; the key comes from the device identity",
    )
    group.add_argument(
        "--stream-frame-hash",
        choices=FRAME_HASHES,
        default=DEFAULT_FRAME_HASH,
        help="per-frame digest in the manifests: blake3 (default, signing < 3 %% of an encode) "
        "or sha256 (FIPS/KCMVP approved)",
    )
    group.add_argument("--stream-jpeg-quality", type=int, default=80, help="JPEG quality 1..100 (default 80)")
    group.add_argument(
        "--stream-segment-frames", type=int, default=30, help="frames per signed segment (default 30)"
    )


def build_pipeline(args: argparse.Namespace, handoff: BootHandoff) -> StreamPipeline | None:
    """The pipeline the options describe (None for ``--stream-source none``).

    It signs with the device's provisioned stream key. Nothing is opened or
    captured here: the source is opened when the first viewer connects.
    """
    if args.stream_source == "none":
        return None
    spec = parse_source_spec(args.stream_source)
    masks = parse_masks(args.stream_mask)
    if not 1 <= args.stream_jpeg_quality <= 100:
        raise StreamError(f"--stream-jpeg-quality {args.stream_jpeg_quality} is out of range (expected 1..100)")
    if not 1 <= args.stream_segment_frames <= 1000:
        raise StreamError(
            f"--stream-segment-frames {args.stream_segment_frames} is out of range (expected 1..1000)"
        )
    signer = StreamSigner.from_identity_dir(
        handoff.data_dir / "identity",
        algorithm=args.stream_signing,
        device=handoff.identity.serial,
        frame_hash=args.stream_frame_hash,
    )
    config = PipelineConfig(
        jpeg_quality=args.stream_jpeg_quality, frames_per_segment=args.stream_segment_frames, masks=masks
    )
    return StreamPipeline(lambda: open_source(spec), signer, config)
