"""Privacy masks: masked pixels never reach the encoded JPEG."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from device.stream.errors import MaskError
from device.stream.masks import MaskRect, apply_masks, parse_mask
from device.stream.pipeline import PipelineConfig, encode_frame
from device.stream.sources import Frame

W, H = 320, 240


def checkerboard(height: int, width: int, cell: int = 4) -> np.ndarray:
    ys, xs = np.indices((height, width))
    board = (((ys // cell) + (xs // cell)) % 2 * 255).astype(np.uint8)
    return np.dstack([board, board, board])


def scene_with_secret(secret_box: tuple[int, int, int, int]) -> np.ndarray:
    """A mid-grey scene with a distinctive high-contrast pattern only inside ``secret_box``."""
    image = np.full((H, W, 3), 128, np.uint8)
    x, y, w, h = secret_box
    image[y : y + h, x : x + w] = checkerboard(h, w)
    image.flags.writeable = False
    return image


def encode_and_decode(image: np.ndarray, masks: tuple[MaskRect, ...]) -> np.ndarray:
    config = PipelineConfig(masks=masks, overlay=False)
    jpeg, _, _ = encode_frame(Frame(0, 0, 0, image), config, config.jpeg_params())
    decoded = cv2.imdecode(np.frombuffer(jpeg, np.uint8), cv2.IMREAD_COLOR)
    assert decoded is not None
    return decoded


def local_contrast(region: np.ndarray) -> float:
    """Mean absolute difference between horizontal neighbours: high for the checkerboard."""
    grey = region.astype(np.int16).mean(axis=2)
    return float(np.abs(np.diff(grey, axis=1)).mean())


def test_black_mask_removes_the_pattern_from_the_jpeg() -> None:
    box = (96, 64, 64, 48)
    image = scene_with_secret(box)
    unmasked = encode_and_decode(image, ())
    assert local_contrast(unmasked[64:112, 96:160]) > 50  # the pattern survives plain encoding
    masked = encode_and_decode(image, (MaskRect(*box),))
    region = masked[64:112, 96:160]
    assert int(region.max()) <= 12  # black, up to JPEG ringing
    assert local_contrast(region[4:-4, 4:-4]) < 2
    # Outside the mask the frame is unchanged (up to JPEG noise).
    assert abs(float(masked[:, :80].mean()) - 128) < 3


def test_pixelate_mask_removes_detail_finer_than_a_block() -> None:
    box = (96, 64, 64, 48)
    image = scene_with_secret(box)
    masked = encode_and_decode(image, (MaskRect(*box, mode="pixelate", block=16),))
    region = masked[64:112, 96:160]
    assert local_contrast(region) < 6  # the 4-pixel checkerboard is gone
    assert local_contrast(encode_and_decode(image, ())[64:112, 96:160]) > 50
    # Each 16x16 cell is (nearly) flat: the average colour of the secret, nothing more.
    cell = region[16:32, 16:32].astype(np.int16)
    assert int(cell.max()) - int(cell.min()) < 16


def test_mask_past_the_frame_edge_is_clipped() -> None:
    image = np.full((H, W, 3), 200, np.uint8)
    out = apply_masks(image, (MaskRect(W - 10, H - 10, 100, 100),))
    assert int(out[H - 10 :, W - 10 :].max()) == 0
    assert int(out[: H - 10].min()) == 200
    assert int(image.min()) == 200  # the input is untouched
    outside = apply_masks(image, (MaskRect(W + 5, 0, 10, 10),))
    assert np.array_equal(outside, image)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("10,20,30,40", MaskRect(10, 20, 30, 40)),
        ("10,20,30,40:black", MaskRect(10, 20, 30, 40)),
        ("0,0,64,64:pixelate", MaskRect(0, 0, 64, 64, "pixelate", 16)),
        ("0,0,64,64:pixelate=8", MaskRect(0, 0, 64, 64, "pixelate", 8)),
    ],
)
def test_mask_spec_parser(text: str, expected: MaskRect) -> None:
    assert parse_mask(text) == expected


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("10,20,30", "is not X,Y,W,H"),
        ("10,20,30,40:blur", "is not X,Y,W,H"),
        ("-1,0,10,10", "is not X,Y,W,H"),
        ("0,0,0,10", "is not positive"),
        ("0,0,10,10:pixelate=1", "pixelation block 1 is out of range"),
    ],
)
def test_bad_mask_spec_is_refused(text: str, message: str) -> None:
    with pytest.raises(MaskError, match=message):
        parse_mask(text)
