"""Fixtures for the vendor side: the helpers live next to the device update tests."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "device"))

from update_fixtures import Vendor, make_vendor


@pytest.fixture
def vendor(tmp_path: Path) -> Vendor:
    """Fresh keys (``refcam keys init`` layout) and an initialised, empty repository."""
    return make_vendor(tmp_path)
