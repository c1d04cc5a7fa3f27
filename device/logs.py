"""The device's log: one line per event, rate-limited, so hostile clients cannot fill it.

A malformed request or an aborted upload is the client's doing: aiohttp and
asyncio log them with a traceback each, which an attacker can turn into
megabytes a second. :class:`QuietFilter` keeps at most ``burst`` records per
(logger, message template) in any ``window`` seconds and says how many it
dropped when the window ends; records from ``aiohttp``/``asyncio`` lose their
traceback and keep one line (exception type and message). The device's own
unexpected errors (``device.*``) keep their traceback, within the same limit.

:func:`install` puts one stderr handler with this filter on the root logger
(``main.run`` calls it; tests keep pytest's handlers).

Example::

    install(burst=5, window=60.0)
"""

from __future__ import annotations

import logging
import sys
import time
from collections.abc import Callable

CLIENT_NOISE = ("aiohttp", "asyncio")


class QuietFilter(logging.Filter):
    def __init__(self, *, burst: int = 5, window: float = 60.0, clock: Callable[[], float] = time.monotonic) -> None:
        super().__init__()
        self.burst, self.window, self.clock = burst, window, clock
        self._seen: dict[tuple[str, str], tuple[float, int]] = {}  # key -> (window start, count)

    def filter(self, record: logging.LogRecord) -> bool:
        key = (record.name, str(record.msg)[:200])  # the template: one key whatever the arguments
        if record.name.startswith(CLIENT_NOISE) and record.exc_info:
            exc = record.exc_info[1]
            record.msg = f"{record.getMessage()}: {type(exc).__name__}: {exc}"
            record.args = None
            record.exc_info = None
            record.exc_text = None
        now = self.clock()
        start, count = self._seen.get(key, (now, 0))
        if now - start >= self.window:
            if count > self.burst:
                record.msg = f"{record.msg} ({count - self.burst} similar messages suppressed in {self.window:.0f} s)"
            start, count = now, 0
        count += 1
        self._seen[key] = (start, count)
        if len(self._seen) > 1024:  # bounded memory: forget the oldest windows
            for old in sorted(self._seen, key=lambda k: self._seen[k][0])[:512]:
                del self._seen[old]
        return count <= self.burst


def install(*, burst: int = 5, window: float = 60.0, level: int = logging.WARNING) -> logging.Handler:
    """One rate-limited stderr handler on the root logger."""
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    handler.addFilter(QuietFilter(burst=burst, window=window))
    root = logging.getLogger()
    root.addHandler(handler)
    root.setLevel(level)
    logging.getLogger("aiohttp.access").setLevel(logging.WARNING)
    return handler
