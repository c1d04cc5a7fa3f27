"""Throttling symmetry: unknown names are throttled like existing ones (rows 6, 7; ASVS 4.0.3 V2.2.1, V3.2.x).

A device that counts failures only for accounts that exist gives an attacker
unlimited guesses at which names exist (every unknown name answers "wrong
password" for ever, every real one starts answering 429) and sprays freely
across invented names. The probe alternates wrong passwords for a fresh
account of its own and for a random name that does not exist, and compares
the two sequences: the same statuses, Retry-After values within a second, and
the same timing class for the answers that checked a password::

    judge_symmetry(known, unknown)  # a UnitResult for unit "a"
"""

from __future__ import annotations

import secrets
from collections.abc import Sequence
from dataclasses import dataclass

from ..case import ProbeContext, failed, inconclusive, passed, register
from ..http import Exchange
from ..i18n import msg
from ..model import Evidence, UnitResult
from ._accounts import throwaway
from ._answers import retry_after
from ._session import login, strong_password

ATTEMPTS = 3  # wrong passwords per name (the run must not exhaust the per-source limit)
RETRY_AFTER_SLACK = 1.0  # seconds two Retry-After values may differ by (they are rounded up)
TIME_BOUND = 0.5  # checked answers may differ by half the slower one...
TIME_FLOOR = 0.1  # ...or 100 ms, whichever is larger
CONFIRM_ROUNDS = 2  # fresh rounds that must show the same difference before it is a FAIL


@dataclass(frozen=True)
class Attempt:
    status: int
    retry_after: float | None
    elapsed: float  # seconds

    @classmethod
    def of(cls, ex: Exchange) -> Attempt:
        return cls(ex.status, retry_after(ex), ex.elapsed)


def judge_symmetry(known: Sequence[Attempt], unknown: Sequence[Attempt], *evidence: Evidence) -> list[UnitResult]:
    """Unit a: same throttling (429 and Retry-After); unit b: same timing class of checked answers."""
    broken = [a for a in (*known, *unknown) if a.status == 0 or a.status >= 500]
    if broken:
        reason = msg("{n_broken} attempts got no answer or a server error; throttling cannot be compared", n_broken=len(broken))
        return [inconclusive("a", reason, *evidence)]
    k_throttled = [a for a in known if a.status == 429]
    u_throttled = [a for a in unknown if a.status == 429]
    statuses = msg(
        "existing name {known}, unknown name {unknown}",
        known=[a.status for a in known], unknown=[a.status for a in unknown],
    )
    if bool(k_throttled) != bool(u_throttled):
        which = msg("the existing name only") if k_throttled else msg("the unknown name only")
        a = failed("a", msg("throttling reached {which}: {statuses}", which=which, statuses=statuses), *evidence)
    elif k_throttled and not _retry_after_alike(k_throttled[0], u_throttled[0]):
        a = failed("a", msg("Retry-After differs: {retry_after} vs {retry_after2} s", retry_after=k_throttled[0].retry_after, retry_after2=u_throttled[0].retry_after), *evidence)
    else:
        a = passed("a", msg("throttled alike: {statuses}", statuses=statuses), *evidence)
    k_checked = [a.elapsed for a in known if a.status != 429]
    u_checked = [a.elapsed for a in unknown if a.status != 429]
    if not k_checked or not u_checked:
        return [a, inconclusive("b", msg("no checked (non-429) answer for one of the names to time"))]
    return [a, judge_timing(k_checked, u_checked, *evidence)]


def timing_apart(k_checked: Sequence[float], u_checked: Sequence[float]) -> int:
    """-1 if the unknown name's checked answers are faster beyond the bound, 1 if slower, 0 if alike."""
    tk, tu = min(k_checked), min(u_checked)  # the fastest: least disturbed by a loaded machine
    if abs(tk - tu) <= max(TIME_FLOOR, TIME_BOUND * max(tk, tu)):
        return 0
    return -1 if tu < tk else 1


def judge_timing(
    k_checked: Sequence[float], u_checked: Sequence[float], *evidence: Evidence,
    confirm: Sequence[tuple[Sequence[float], Sequence[float]]] = (),
) -> UnitResult:
    """Unit b: a timing class that tells the names apart, seen in the first round and in every
    confirmation round the same way. One slow answer on a loaded machine is noise; a device that
    skips the password hash for unknown names is faster for them every time."""
    tk, tu = min(k_checked), min(u_checked)
    first = timing_apart(k_checked, u_checked)
    if first == 0:
        return passed("b", msg("checked answers take {tk:.0f} ms vs {tu:.0f} ms", tk=tk * 1000, tu=tu * 1000), *evidence)
    if all(timing_apart(k, u) == first for k, u in confirm) and confirm:
        return failed("b", msg("timing tells the names apart: {tk:.0f} ms vs {tu:.0f} ms", tk=tk * 1000, tu=tu * 1000), *evidence)
    if not confirm:
        return inconclusive("b", msg("one round of checked answers differs ({tk:.0f} ms vs {tu:.0f} ms); not confirmed",
                                     tk=tk * 1000, tu=tu * 1000), *evidence)
    return passed("b", msg("checked answers differed once ({tk:.0f} ms vs {tu:.0f} ms), not when repeated",
                           tk=tk * 1000, tu=tu * 1000), *evidence)


def _retry_after_alike(k: Attempt, u: Attempt) -> bool:
    if k.retry_after is None or u.retry_after is None:
        return k.retry_after is None and u.retry_after is None
    return abs(k.retry_after - u.retry_after) <= RETRY_AFTER_SLACK


@register("THR-01", budget=2 * ATTEMPTS + 16 + CONFIRM_ROUNDS * 8, order=75, requires=("interface:refcam-api", "user-management"))
def throttling_symmetry(ctx: ProbeContext) -> list[UnitResult]:
    account = throwaway(ctx, "throttle")
    nobody = f"nobody-{secrets.token_hex(6)}"
    known: list[Exchange] = []
    unknown: list[Exchange] = []
    for _ in range(ATTEMPTS):  # interleaved, so both names see the same gaps between attempts
        known.append(login(ctx.http, account.username, "wrong-" + strong_password()))
        unknown.append(login(ctx.http, nobody, "wrong-" + strong_password()))
    table = Evidence("note", "wrong passwords, interleaved", {
        "existing": [{"status": e.status, "retry_after": e.header("Retry-After"), "ms": round(e.elapsed * 1000)}
                     for e in known],
        "unknown": [{"status": e.status, "retry_after": e.header("Retry-After"), "ms": round(e.elapsed * 1000)}
                    for e in unknown],
    })  # fmt: skip
    results = judge_symmetry(
        [Attempt.of(e) for e in known], [Attempt.of(e) for e in unknown],
        table, known[-1].evidence("existing name, last attempt"), unknown[-1].evidence("unknown name, last attempt"),
    )  # fmt: skip
    k_checked = [e.elapsed for e in known if e.status != 429]
    u_checked = [e.elapsed for e in unknown if e.status != 429]
    if len(results) == 2 and k_checked and u_checked and timing_apart(k_checked, u_checked):
        results[-1] = _confirm_timing(ctx, k_checked, u_checked, table)
    return results


def _confirm_timing(ctx: ProbeContext, k_checked: list[float], u_checked: list[float], table: Evidence) -> UnitResult:
    """Two more rounds, each on a fresh account and a fresh unknown name (no back-off yet, so
    each answer checks a password), interleaved like the first."""
    rounds: list[tuple[list[float], list[float]]] = []
    for i in range(CONFIRM_ROUNDS):
        fresh = throwaway(ctx, f"throttle-{i + 2}")
        k = login(ctx.http, fresh.username, "wrong-" + strong_password())
        u = login(ctx.http, f"nobody-{secrets.token_hex(6)}", "wrong-" + strong_password())
        if k.status in (0, 429) or k.status >= 500 or u.status in (0, 429) or u.status >= 500:
            return inconclusive("b", msg("a confirmation attempt got no checked answer (HTTP {known} / {unknown})",
                                         known=k.status, unknown=u.status), table)
        rounds.append(([k.elapsed], [u.elapsed]))
    confirmation = Evidence("note", "confirmation rounds (ms)", {
        "existing": [round(k[0] * 1000) for k, _ in rounds], "unknown": [round(u[0] * 1000) for _, u in rounds]})
    return judge_timing(k_checked, u_checked, table, confirmation, confirm=rounds)
