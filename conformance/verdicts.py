"""The one rule for reading a device's answer to a credential or access attempt.

A probe that reads "refused" from an answer that refused nothing invents a
PASS (a throttled unit that would accept ``admin/admin``) or a FAIL (a dropped
connection read as an open door). Every case judges its attempts here:

- an answer the target adapter recognises as a session or as content is
  :attr:`Reading.ACCEPTED`;
- only a definite refusal (401/403 in the form the device uses for refusals,
  the adapter decides) is :attr:`Reading.REFUSED`;
- 429 is never a refusal: :func:`attempt` waits out ``Retry-After`` when it
  fits in the case's time budget and asks again, else the attempt is
  :attr:`Reading.UNDECIDED` with the reason;
- 5xx, resets, timeouts and anything else are :attr:`Reading.UNDECIDED`.

``judge`` is pure; ``attempt`` adds the retry loop around a send function::

    j = attempt(lambda: login(http, "admin", "admin"), accepted=has_session,
                refusal=is_refusal, clock=http.clock, sleep=http.sleep, deadline=deadline)
    if j.reading is Reading.UNDECIDED: ...  # INCONCLUSIVE with j.reason
"""

from __future__ import annotations

import enum
from collections.abc import Callable
from dataclasses import dataclass

from .http import Exchange
from .i18n import msg

MAX_RETRIES = 3  # 429s waited out per attempt


class Reading(enum.Enum):
    ACCEPTED = "accepted"
    REFUSED = "refused"
    UNDECIDED = "undecided"


@dataclass(frozen=True)
class Judgement:
    reading: Reading
    reason: str
    exchange: Exchange
    retries: int = 0  # 429s waited out before this answer


def retry_after(ex: Exchange) -> float | None:
    """Seconds from a ``Retry-After: N`` header (RFC 9110 10.2.3, delay-seconds form), else None."""
    value = ex.header("Retry-After")
    if value is None or not value.strip().isdigit():
        return None
    return float(value.strip())


def undecided(ex: Exchange) -> bool:
    """No answer, throttled, or a server error: such an answer shows neither access nor refusal."""
    return ex.status == 0 or ex.status == 429 or ex.status >= 500


def judge(ex: Exchange, *, accepted: Callable[[Exchange], bool], refusal: Callable[[Exchange], bool]) -> Judgement:
    """Read one answer (no retry); 429 is UNDECIDED here, :func:`attempt` retries it."""
    if ex.status == 0:
        return Judgement(Reading.UNDECIDED, msg("no answer ({error}); a dropped request refuses nothing", error=ex.error), ex)
    if ex.status == 429:
        wait = retry_after(ex)
        after = msg(", Retry-After {wait:.0f} s", wait=wait) if wait is not None else msg(", no Retry-After")
        return Judgement(Reading.UNDECIDED, msg("throttled (HTTP 429{after}); a throttled answer refuses nothing", after=after), ex)
    if ex.status >= 500:
        return Judgement(Reading.UNDECIDED, msg("server error HTTP {status}; an error is not a refusal", status=ex.status), ex)
    if accepted(ex):
        return Judgement(Reading.ACCEPTED, msg("accepted (HTTP {status})", status=ex.status), ex)
    if ex.status in (400, 401, 403) and refusal(ex):  # 400: a SOAP 1.2 Sender fault (ONVIF NotAuthorized)
        return Judgement(Reading.REFUSED, msg("refused (HTTP {status})", status=ex.status), ex)
    if ex.status in (401, 403):
        return Judgement(
            Reading.UNDECIDED, msg("HTTP {status} without the device's refusal body; not read as a refusal", status=ex.status), ex
        )
    return Judgement(Reading.UNDECIDED, msg("HTTP {status} is neither a session nor a refusal", status=ex.status), ex)


def attempt(
    send: Callable[[], Exchange],
    *,
    accepted: Callable[[Exchange], bool],
    refusal: Callable[[Exchange], bool],
    clock: Callable[[], float],
    sleep: Callable[[float], None],
    deadline: float,
) -> Judgement:
    """Send, judge, and wait out 429 ``Retry-After`` while it ends before ``deadline`` (clock time)."""
    retries = 0
    while True:
        ex = send()
        judgement = judge(ex, accepted=accepted, refusal=refusal)
        if ex.status != 429:
            return Judgement(judgement.reading, judgement.reason, ex, retries)
        wait = retry_after(ex)
        if wait is None:
            return Judgement(judgement.reading, judgement.reason, ex, retries)
        if retries >= MAX_RETRIES or clock() + wait > deadline:
            left = max(0.0, deadline - clock())
            return Judgement(
                Reading.UNDECIDED,
                msg("throttled (HTTP 429, Retry-After {wait:.0f} s) and the case's budget has {left:.0f} s left", wait=wait, left=left),
                ex,
                retries,
            )
        sleep(wait)
        retries += 1
