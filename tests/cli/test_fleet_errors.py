"""A unit's failure is reported in one line, even when the exception cannot print itself."""

from __future__ import annotations

import zipfile
from pathlib import Path

from refcam.fleet import _one_line


def test_an_exception_whose_str_fails_is_named_by_its_class(tmp_path: Path) -> None:
    archive = tmp_path / "payload.zip"
    with zipfile.ZipFile(archive, "w") as z:
        z.writestr("device/webui/static/app.js", "")
    missing = zipfile.Path(archive) / "device" / "webui" / "static" / "favicon.svg"
    try:
        missing.read_bytes()  # what a firmware payload lacking a web asset raised at start
    except FileNotFoundError as exc:
        assert _one_line(exc)  # whatever str() does here, a line comes back
        error = exc

    class Unprintable(RuntimeError):
        def __str__(self) -> str:
            raise ValueError("no")

    assert _one_line(Unprintable()) == "Unprintable"
    assert _one_line(OSError("a\nb   c")) == "a b c"
    assert isinstance(error, FileNotFoundError)
