"""How a case reads an answer: a definite refusal, an acceptance, or nothing it may judge.

A refusal is only a definite 401 or 403. A 429 is the device asking for time,
a 5xx is the device failing, and a reset or timeout is no answer at all: none
of them says the device refused (or allowed) anything, so a case waits out a
429's ``Retry-After`` within :data:`RETRY_AFTER_MAX` and asks again, and
otherwise reports INCONCLUSIVE with :func:`undecided`'s reason::

    ex = patiently(lambda: ctx.http.request("GET", "/api/v1/session", token=old))
    if (why := undecided(ex)) is not None:
        return inconclusive("b", why, ex.evidence())
"""

from __future__ import annotations

import time
from collections.abc import Callable

from ..http import Exchange

REFUSALS = frozenset({401, 403})
RETRY_AFTER_MAX = 3.0  # seconds one request may wait out 429s in total (the run stays short)


def retry_after(ex: Exchange) -> float | None:
    """Seconds from a ``Retry-After`` header (delta-seconds only), else None."""
    value = (ex.header("Retry-After") or "").strip()
    if not value.isascii() or not value.isdigit():
        return None
    return float(int(value))


def undecided(ex: Exchange) -> str | None:
    """Why ``ex`` can be neither a refusal nor an acceptance, or None if it can be judged."""
    if ex.status == 0:
        return f"no answer to {ex.method} {ex.path}: {ex.error}"
    if ex.status == 429:
        wait = retry_after(ex)
        return f"{ex.method} {ex.path} was throttled (HTTP 429, Retry-After {wait if wait is not None else 'absent'})"
    if ex.status >= 500:
        return f"{ex.method} {ex.path} failed on the device (HTTP {ex.status})"
    return None


def refused(ex: Exchange) -> bool:
    """A definite refusal: 401 or 403 (nothing else counts as one)."""
    return ex.status in REFUSALS


def accepted(ex: Exchange) -> bool:
    return 200 <= ex.status < 300


def patiently(
    send: Callable[[], Exchange], *, max_wait: float = RETRY_AFTER_MAX, sleep: Callable[[float], None] = time.sleep
) -> Exchange:
    """``send()``, repeated after each 429 whose Retry-After still fits in ``max_wait`` seconds."""
    ex = send()
    waited = 0.0
    while ex.status == 429:
        wait = retry_after(ex)
        if wait is None or waited + wait > max_wait:
            return ex
        sleep(wait)
        waited += wait
        ex = send()
    return ex


def stated_reason(ex: Exchange) -> str | None:
    """The reason a JSON refusal gives: its ``reasons`` list joined, else its ``message``."""
    doc = ex.json()
    if not isinstance(doc, dict):
        return None
    reasons = doc.get("reasons")
    if isinstance(reasons, list) and reasons:
        return "; ".join(str(r) for r in reasons)
    message = doc.get("message")
    return str(message) if message else None
