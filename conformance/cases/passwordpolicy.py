"""Password-policy boundaries (requirement row 4; OWASP ASVS 4.0.3 V2.1.1, V2.1.7; KS X 3020 C4).

The device names its policy profile in its info document; the probe knows the
published profiles' minimums (:data:`PROFILES`) and tries, as a throw-away
user changing its own password, exactly one character below each minimum, the
label password and its trivial variants, and passwords built from the unit's
own identity (serial, model, vendor from its info document and the subject of
its TLS certificate). Each must be refused with a reason (a 4xx that is not
401/403/429). A control at each minimum must be accepted, so a refusal below it
is shown to come from the length. Candidates are random where they can be and
checked with the probe's own estimator (zxcvbn), so nothing but the rule under
test can refuse them::

    below_minimum("nist-800-63b")  # [(14 random characters, 15 random characters)]
"""

from __future__ import annotations

import secrets
import socket
import string

from zxcvbn import zxcvbn

from ..case import ProbeContext, failed, inconclusive, passed, register
from ..errors import ProbeError
from ..http import Exchange, client_context
from ..i18n import joined, msg
from ..model import Evidence, UnitResult
from ._accounts import Throwaway, throwaway
from ._answers import accepted, patiently, stated_reason, undecided
from ._session import admin, change_password

# profile -> (minimum length, minimum character classes) rules; a password passes if it meets any
PROFILES: dict[str, tuple[tuple[int, int], ...]] = {
    "nist-800-63b": ((15, 1),),  # NIST SP 800-63B rev. 4, single-factor
    "kr-terminal": ((8, 3), (10, 2)),  # KISA terminal guidance: 8 with 3 classes or 10 with 2
}
CLASSES = (string.ascii_lowercase, string.ascii_uppercase, string.digits, "!#%*+=?@^~")
STRONG_GUESSES = 1e10  # a candidate must be this hard for zxcvbn, so only the rule under test refuses it
IDENTITY_MIN = 16  # characters: identity candidates are padded with identity parts to this length


def _random(length: int, classes: int) -> str:
    """A random password of ``length`` characters from the first ``classes`` classes, each present,
    with no run of 3 sequential or repeated characters, that zxcvbn finds hard."""
    alphabet = "".join(CLASSES[:classes])
    for _ in range(200):
        chars = [secrets.choice(CLASSES[i]) for i in range(classes)]
        chars += [secrets.choice(alphabet) for _ in range(length - classes)]
        order = list(range(length))
        secrets.SystemRandom().shuffle(order)
        candidate = "".join(chars[i] for i in order)
        if _plain(candidate) and float(zxcvbn(candidate)["guesses"]) >= min(STRONG_GUESSES, 10 ** (length - 1)):
            return candidate
    raise ProbeError(msg("cannot draw a random {length}-character password", length=length))  # pragma: no cover - odds ~0


def _plain(password: str) -> bool:
    """No three characters in a row that repeat or run in sequence (a device may refuse those)."""
    folded = password.lower()
    for a, b, c in zip(folded, folded[1:], folded[2:], strict=False):
        if a == b == c or ord(b) - ord(a) == ord(c) - ord(b) in (1, -1):
            return False
    return True


def below_minimum(profile: str) -> list[tuple[str, str, str]]:
    """(what, one below the minimum, at the minimum) for each rule of a known profile."""
    rules = PROFILES.get(profile)
    if rules is None:
        raise ProbeError(msg("unknown password policy profile “{profile}”; the probe knows {sorted}", profile=profile, sorted=', '.join(sorted(PROFILES))))
    return [
        (msg("{length} characters from {classes} classes (minimum {minimum})", length=length - 1, classes=classes,
             minimum=length),
         _random(length - 1, classes), _random(length, classes))
        for length, classes in rules
    ]  # fmt: skip


def label_variants(label: str) -> list[tuple[str, str]]:
    """(what, variant) of the label password a person would try first."""
    variants = [
        (msg("upper-cased"), label.upper()),
        (msg("separators dropped"), "".join(c for c in label if c.isalnum())),
        (msg("'!' appended"), label + "!"),
        (msg("'1' appended"), label + "1"),
    ]
    return [(what, v) for what, v in variants if v != label]


def identity_passwords(names: list[str]) -> list[tuple[str, str]]:
    """Passwords built only from the unit's identity: serial, model, vendor, certificate name."""
    parts = [n for n in dict.fromkeys(names) if len(n) >= 3]
    if not parts:
        return []
    out: list[tuple[str, str]] = []
    for i, first in enumerate(parts):
        rest = parts[i + 1 :] + parts[:i]
        candidate = first
        for extra in rest:
            if len(candidate) >= IDENTITY_MIN:
                break
            candidate += "-" + extra
        while len(candidate) < IDENTITY_MIN:
            candidate += "-" + first
        out.append((msg("built from “{name}”", name=first), candidate))
    return out


def _try(ctx: ProbeContext, account: Throwaway, candidate: str) -> Exchange:
    """Change the account's password to ``candidate``; an accepted change is recorded."""
    current = account.password
    ex = patiently(lambda: change_password(ctx.http, account.token, current, candidate))
    if accepted(ex):
        account.password = candidate
    return ex


def _judge_refusals(
    letter: str, ctx: ProbeContext, account: Throwaway, candidates: list[tuple[str, str]], *, label: str
) -> UnitResult:
    """Each candidate must be refused with a reason; acceptance fails, 401/403/429/5xx decide nothing."""
    taken: list[Evidence] = []
    unsure: list[Evidence] = []
    reasons: list[str] = []
    for what, candidate in candidates:
        ex = _try(ctx, account, candidate)
        if accepted(ex):
            taken.append(ex.evidence(f"{what}: accepted"))
        elif (why := undecided(ex)) is not None or ex.status in (401, 403):
            unsure.append(ex.evidence(f"{what}: {why or 'the session was refused'}"))
        elif 400 <= ex.status < 500 and (reason := stated_reason(ex)):
            reasons.append(msg("{what}: {reason}", what=what, reason=reason))
        else:
            taken.append(ex.evidence(f"{what}: HTTP {ex.status} without a reason"))
    if taken:
        return failed(letter, msg("{n_taken} of {n_candidates} {label} were not refused with a reason", n_taken=len(taken), n_candidates=len(candidates), label=label), *taken)
    if unsure:
        return inconclusive(letter, msg("{n_unsure} of {n_candidates} {label} got no definite answer", n_unsure=len(unsure), n_candidates=len(candidates), label=label), *unsure)
    said = joined(reasons, " | ")
    return passed(letter, said if len(said) <= 1500 else said[:1500])


def _policy(ctx: ProbeContext) -> tuple[str, Exchange]:
    ex = ctx.http.request("GET", "/api/v1/info", token=admin(ctx).token)
    doc = ex.json()
    policy = doc.get("password_policy") if isinstance(doc, dict) else None
    if not isinstance(policy, str):
        raise ProbeError(msg("the info document names no password policy profile"))
    return policy, ex


@register("PWD-01", budget=32, order=37, requires=("interface:refcam-api", "user-management"))
def length_boundaries(ctx: ProbeContext) -> list[UnitResult]:
    policy, info = _policy(ctx)
    if policy not in PROFILES:
        return [inconclusive("a", msg("unknown password policy profile “{policy}”", policy=policy), info.evidence())]
    account = throwaway(ctx, "policy")
    below: list[tuple[str, str]] = []
    controls: list[Evidence] = []
    for what, short, at_minimum in below_minimum(policy):
        below.append((what, short))
        control = _try(ctx, account, at_minimum)
        if not accepted(control):
            return [inconclusive(
                "b", msg("{policy}: a random password at the minimum ({n_at_minimum} characters) was refused (HTTP {status}), so a refusal below it would not show the length rule", policy=policy, n_at_minimum=len(at_minimum), status=control.status),
                control.evidence())]  # fmt: skip
        controls.append(control.evidence(f"control at the minimum, {len(at_minimum)} characters: accepted"))
    a = _judge_refusals("a", ctx, account, below, label=msg("passwords one character below a {policy} minimum", policy=policy))
    return [a, passed("b", msg("random passwords exactly at each {policy} minimum are accepted", policy=policy), *controls)]


@register("PWD-02", budget=26, order=38, requires=("interface:refcam-api", "user-management"))
def label_password_reuse(ctx: ProbeContext) -> list[UnitResult]:
    label = ctx.options.label_password
    if label is None:
        return [inconclusive("a", msg("needs the label password (--label-password)"))]
    account = throwaway(ctx, "policy")
    a = _judge_refusals("a", ctx, account, [(msg("the label password"), label)], label=msg("label passwords"))
    b = _judge_refusals("b", ctx, account, label_variants(label), label=msg("trivial label variants"))
    return [a, b]


def certificate_names(ctx: ProbeContext) -> list[str]:
    """Serial number, common name and organisation from the unit's validated TLS certificate."""
    context = ctx.http.ssl_context or client_context(ctx.options.ca_file)
    with socket.create_connection((ctx.host, ctx.port), timeout=10) as raw, context.wrap_socket(
        raw, server_hostname=ctx.host
    ) as tls:
        cert = tls.getpeercert() or {}
    names = []
    for rdn in cert.get("subject", ()):
        for attribute in rdn:
            if len(attribute) == 2 and attribute[0] in ("serialNumber", "commonName", "organizationName"):
                names.append(str(attribute[1]))
    return names


def _identity(ctx: ProbeContext) -> tuple[list[str], Evidence]:
    ex = ctx.http.request("GET", "/api/v1/info", token=admin(ctx).token)
    doc = ex.json() if ex.status == 200 else None
    names = [str(doc[k]) for k in ("serial", "model", "vendor") if isinstance(doc, dict) and doc.get(k)]
    try:
        from_cert = certificate_names(ctx)
    except OSError as exc:
        from_cert = []
        names_note = f"certificate not read: {exc}"
    else:
        names_note = "from the info document and the TLS certificate subject"
    names += [n.removesuffix(".local") for n in from_cert]
    return list(dict.fromkeys(names)), Evidence("note", names_note, {"identity": names})


@register("PWD-03", budget=26, order=39, requires=("interface:refcam-api", "user-management"))
def identity_passwords_refused(ctx: ProbeContext) -> list[UnitResult]:
    names, note = _identity(ctx)
    candidates = identity_passwords(names)
    if not candidates:
        return [inconclusive("a", msg("the unit reveals no serial, model or vendor"), note)]
    account = throwaway(ctx, "policy")
    result = _judge_refusals("a", ctx, account, candidates, label=msg("passwords built from the unit's identity"))
    return [type(result)(result.unit, result.verdict, result.reason, (*result.evidence, note))]

