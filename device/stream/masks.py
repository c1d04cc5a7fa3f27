"""Privacy masks: rectangles blacked out or pixelated before a frame is encoded.

Masks are applied to the raw pixels in the processing step, before JPEG
encoding, so masked pixels never leave the device: not in the stream, not in
snapshots, not in the signed hashes. Pixelation averages each ``block`` x
``block`` cell (OpenCV ``INTER_AREA``), so detail finer than a cell is gone.

Mask specs (the ``--mask`` option, repeatable) are ``X,Y,W,H`` in pixels,
optionally followed by ``:black`` (default) or ``:pixelate`` or
``:pixelate=BLOCK``::

    masks = parse_masks(["0,0,320,200", "640,360,200,120:pixelate=16"])
    out = apply_masks(image, masks)   # a new array; ``image`` is untouched

A rectangle that reaches past the frame edge is clipped to the frame.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Literal

import cv2
import numpy as np

from .errors import MaskError
from .sources import Image

MaskMode = Literal["black", "pixelate"]
DEFAULT_BLOCK = 16  # pixels per pixelation cell (two JPEG 4:2:0 MCUs wide)
MAX_COORD = 100_000  # pixels
_SPEC = re.compile(
    r"(?P<x>[0-9]+),(?P<y>[0-9]+),(?P<w>[0-9]+),(?P<h>[0-9]+)"
    r"(?::(?P<mode>black|pixelate)(?:=(?P<block>[0-9]+))?)?"
)


@dataclass(frozen=True)
class MaskRect:
    x: int  # pixels from the left edge
    y: int  # pixels from the top edge
    width: int  # pixels
    height: int  # pixels
    mode: MaskMode = "black"
    block: int = DEFAULT_BLOCK  # pixels per pixelation cell

    def __post_init__(self) -> None:
        if min(self.x, self.y) < 0 or max(self.x, self.y) > MAX_COORD:
            raise MaskError(f"mask origin ({self.x},{self.y}) is out of range (expected 0..{MAX_COORD})")
        if not (0 < self.width <= MAX_COORD and 0 < self.height <= MAX_COORD):
            raise MaskError(f"mask size {self.width}x{self.height} is not positive (or above {MAX_COORD})")
        if self.mode not in ("black", "pixelate"):
            raise MaskError(f"mask mode {self.mode!r} is not 'black' or 'pixelate'")
        if not 2 <= self.block <= 256:
            raise MaskError(f"pixelation block {self.block} is out of range (expected 2..256 pixels)")


def parse_mask(text: str) -> MaskRect:
    """Parse one ``X,Y,W,H[:black|:pixelate[=BLOCK]]`` spec."""
    match = _SPEC.fullmatch(text.strip())
    if match is None:
        raise MaskError(f"mask {text!r} is not X,Y,W,H[:black|:pixelate[=BLOCK]] (e.g. 10,10,200,100:pixelate)")
    mode: MaskMode = "pixelate" if match["mode"] == "pixelate" else "black"
    block = int(match["block"]) if match["block"] else DEFAULT_BLOCK
    return MaskRect(int(match["x"]), int(match["y"]), int(match["w"]), int(match["h"]), mode, block)


def parse_masks(texts: Iterable[str]) -> tuple[MaskRect, ...]:
    return tuple(parse_mask(t) for t in texts)


def apply_masks_inplace(image: Image, masks: Iterable[MaskRect]) -> None:
    """Mask ``image`` (a writable H x W x 3 array) in place."""
    height, width = image.shape[:2]
    for mask in masks:
        x0, y0 = min(mask.x, width), min(mask.y, height)
        x1, y1 = min(mask.x + mask.width, width), min(mask.y + mask.height, height)
        if x1 <= x0 or y1 <= y0:
            continue  # entirely outside this frame: no pixel of it to hide
        region = image[y0:y1, x0:x1]
        if mask.mode == "black":
            region[:] = 0
            continue
        cells = (max(1, (x1 - x0) // mask.block), max(1, (y1 - y0) // mask.block))
        small = cv2.resize(region, cells, interpolation=cv2.INTER_AREA)
        region[:] = cv2.resize(small, (x1 - x0, y1 - y0), interpolation=cv2.INTER_NEAREST)


def apply_masks(image: Image, masks: Iterable[MaskRect]) -> Image:
    """A masked copy of ``image``."""
    out = np.array(image, dtype=np.uint8, copy=True)
    apply_masks_inplace(out, masks)
    return out
