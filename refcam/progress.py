"""Progress of long CLI work: a bar on a terminal, plain lines otherwise.

On a TTY the bar is redrawn in place (``\\r``), at most every
``redraw_s`` seconds; when the output is a pipe or a file (CI logs,
scripts) a plain line is written at each tenth of a known total, or every
``line_s`` seconds when the total is unknown, so logs stay short and
readable. Progress goes to stderr: stdout keeps the command's result.

:func:`render_bar` is the pure formatter; :class:`Progress` the adapter that
decides when to write. Time is an argument (``clock``) so tests drive it::

    with Progress("recording", total=50, unit="frames") as progress:
        for frame in frames:
            progress.advance()
"""

from __future__ import annotations

import sys
import time
from collections.abc import Callable
from types import TracebackType
from typing import TextIO

BAR_WIDTH = 28
REDRAW_S = 0.1  # seconds between redraws of the bar on a terminal
LINE_S = 5.0  # seconds between plain lines when the total is unknown
LINE_STEPS = 10  # plain lines at each tenth of a known total


def _amount(done: int, total: int | None, unit: str) -> str:
    if unit == "bytes":
        def size(n: int) -> str:
            for step, name in ((1 << 30, "GiB"), (1 << 20, "MiB"), (1 << 10, "KiB")):
                if n >= step:
                    return f"{n / step:.1f} {name}"
            return f"{n} B"

        return size(done) if total is None else f"{size(done)} of {size(total)}"
    text = str(done) if total is None else f"{done}/{total}"
    return f"{text} {unit}".rstrip()


def render_bar(label: str, done: int, total: int | None, unit: str = "", *, width: int = BAR_WIDTH) -> str:
    """One line: ``label [#####.....]  45% 9/20 frames`` (no bar when the total is unknown)."""
    if total is None or total <= 0:
        return f"{label}: {_amount(done, None, unit)}"
    fraction = min(1.0, max(0.0, done / total))
    filled = int(fraction * width)
    bar = "#" * filled + "." * (width - filled)
    return f"{label} [{bar}] {int(fraction * 100):3d}% {_amount(done, total, unit)}"


def render_line(label: str, done: int, total: int | None, unit: str = "") -> str:
    """The plain form for logs: ``label: 45% (9/20 frames)``."""
    if total is None or total <= 0:
        return f"{label}: {_amount(done, None, unit)}"
    percent = int(100 * min(1.0, max(0.0, done / total)))
    return f"{label}: {percent}% ({_amount(done, total, unit)})"


class Progress:
    """Report ``done`` out of ``total`` (``None``: unknown) while work runs."""

    def __init__(
        self,
        label: str,
        total: int | None = None,
        *,
        unit: str = "",
        stream: TextIO | None = None,
        tty: bool | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.label = label
        self.total = total
        self.unit = unit
        self.stream = stream if stream is not None else sys.stderr
        self.tty = self.stream.isatty() if tty is None else tty
        self.clock = clock
        self.done = 0
        self._last_write = -float("inf")
        self._last_step = 0  # tenths of the total already reported as lines
        self._drawn = False
        self._finished = False
        self._started = False  # nothing is written for work that never began

    def __enter__(self) -> Progress:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.finish("stopped" if exc_type is not None else "done")

    def advance(self, amount: int = 1) -> None:
        self.update(self.done + amount)

    def update(self, done: int) -> None:
        self.done = done
        self._started = True
        now = self.clock()
        if self.tty:
            if now - self._last_write >= REDRAW_S:
                self._draw()
                self._last_write = now
            return
        if self.total is not None and self.total > 0:
            step = min(LINE_STEPS, int(LINE_STEPS * done / self.total))
            if step > self._last_step:
                self._last_step = step
                self._line(render_line(self.label, done, self.total, self.unit))
        elif now - self._last_write >= LINE_S:
            self._line(render_line(self.label, done, None, self.unit))
            self._last_write = now

    def note(self, message: str) -> None:
        """A step of the work in words (``verifying the image``)."""
        if self.tty and self._drawn:
            self.stream.write("\r\x1b[K")
            self._drawn = False
        self._line(f"{self.label}: {message}")

    def finish(self, message: str = "done") -> None:
        """The last line; nothing when no progress was ever reported (a refusal
        before any work stays the one-line error it is)."""
        if self._finished or not self._started:
            self._finished = True
            return
        self._finished = True
        if self.tty:
            self._draw()
            self.stream.write(f" {message}\n")
            self.stream.flush()
            return
        if self._last_step == LINE_STEPS:  # the 100 % line is already there
            self._line(f"{self.label}: {message}")
        else:
            self._line(f"{render_line(self.label, self.done, self.total, self.unit)}, {message}")

    def _draw(self) -> None:
        self.stream.write("\r\x1b[K" + render_bar(self.label, self.done, self.total, self.unit))
        self.stream.flush()
        self._drawn = True

    def _line(self, text: str) -> None:
        self.stream.write(text + "\n")
        self.stream.flush()
