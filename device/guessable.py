"""Is a new password guessable? Blocklists, context words, repeats and sequences (NIST SP 800-63B 3.1.1.2).

NIST SP 800-63B asks a verifier to compare every new password, whatever its
length, against "a blocklist that contains values known to be commonly used,
expected, or compromised", including context-specific words (the service
name, the user name) and repetitive or sequential characters. This module is
the pure core of that check; :mod:`device.credentials` adds the length and
class rules of each policy profile.

Three checks, each giving one reason a person can act on:

* **Blocklists**, after normalisation: the Mirai credential table and the
  shipped common-password list (:mod:`device.blocklist`), compared after
  case-folding, dropping separators (``-``, ``_``, ``.``, spaces), dropping
  trailing digits and punctuation (``Welcome1!`` -> ``welcome``) and folding
  leetspeak (``Passw0rd`` -> ``password``); and zxcvbn (PyPI ``zxcvbn``,
  Dropbox's estimator), whose dictionaries (30,000 common passwords from
  breaches, 30,000 English words, 33,855 names and film/TV words; 93,855
  entries) it matches with leetspeak, reversal, keyboard patterns, dates,
  repeats and sequences. A password zxcvbn estimates at fewer than
  ``10**MIN_GUESSES_LOG10`` guesses is refused with zxcvbn's own warning.
* **Context words** (user name, serial, model, vendor), normalised the same way;
  words shorter than :data:`CONTEXT_MIN_CHARS` only when they are the whole password.
* **Repeats and sequences** of the separator-free, case-folded password:
  ``passwordpassword``, ``xc3511xc3511xc3511``, ``123456789012345``, ``zyxwvu``.

The device's label password is known only as hashes, so its variants are
checked by :mod:`device.credentials` with ``refcam.passwords.label_fold``.

Example::

    assert guessable_problems("Passw0rd!", context_words=()) != []
    assert guessable_problems("violet tractor measures the quiet harbour", context_words=()) == []
"""

from __future__ import annotations

import functools
import itertools
import re
import unicodedata
from collections.abc import Iterable

from zxcvbn import zxcvbn

from common.passwords import label_fold

from .blocklist import common_passwords, mirai_passwords
from .i18n import msg

# zxcvbn's guess estimate below which a password is refused: 10**7 guesses. An online
# attacker throttled per account and per source (device.credentials) gets far fewer
# tries than that in a device's life, while every common-password pattern zxcvbn
# knows ("Passw0rd!" ~ 10**4, "Welcome1!" ~ 10**4.6) falls below it.
MIN_GUESSES_LOG10 = 7.0
ZXCVBN_MAX_CHARS = 72  # zxcvbn refuses longer input; its estimate is of the first 72 characters
CONTEXT_MIN_CHARS = 4  # shorter context words are only refused as the whole password
SEQUENCE_MIN_CHARS = 4  # an ascending or descending run this long or longer is a sequence

_SEPARATORS = re.compile(r"[\s\-_.,:;/\\|]+")
_TRAILING_DECORATION = re.compile(r"[\d\W_]+$")
_LEET = str.maketrans(
    {"0": "o", "1": "i", "3": "e", "4": "a", "5": "s", "7": "t", "8": "b", "9": "g",
     "@": "a", "$": "s", "!": "i", "+": "t", "|": "i", "€": "e"}
)  # fmt: skip
_REPEAT = re.compile(r"(.+?)\1+", re.DOTALL)


def _casefold(password: str) -> str:
    return unicodedata.normalize("NFKC", password).casefold()


def variants(password: str, *, strip_decoration: bool = True) -> frozenset[str]:
    """The normalised forms of ``password`` compared with blocklists and context words.

    Case-folded; without separators; without trailing digits and punctuation
    (unless ``strip_decoration`` is false, as for the context words themselves:
    user ``viewer1`` must not forbid every password holding "viewer"); each
    also with leetspeak folded. Empty forms are left out.
    """
    folded = _casefold(password)
    compact = _SEPARATORS.sub("", folded)
    forms = {folded, compact}
    if strip_decoration:
        forms.add(_TRAILING_DECORATION.sub("", compact))
    forms |= {form.translate(_LEET) for form in list(forms)}
    return frozenset(form for form in forms if form)


@functools.cache
def _folded_blocklist() -> frozenset[str]:
    words = common_passwords() | mirai_passwords()
    return frozenset(words | {w.translate(_LEET) for w in words} | {_SEPARATORS.sub("", w) for w in words})


def _is_sequence(text: str) -> bool:
    """An ascending or descending run of digits (mod 10) or letters: 1234567890123, zyxwv."""
    if len(text) < SEQUENCE_MIN_CHARS:
        return False
    if text.isdigit():
        steps = {(int(b) - int(a)) % 10 for a, b in itertools.pairwise(text)}
        return steps in ({1}, {9})
    if text.isascii() and text.isalpha():
        steps = {ord(b) - ord(a) for a, b in itertools.pairwise(text)}
        return steps in ({1}, {-1})
    return False


def repeat_or_sequence(password: str) -> str | None:
    """A reason if the separator-free, case-folded password is a repeat or a sequence."""
    compact = _SEPARATORS.sub("", _casefold(password))
    if not compact:
        return None
    repeat = _REPEAT.fullmatch(compact)
    if repeat is not None:
        unit = repeat.group(1)
        return msg("password repeats {unit!r} {times} times", unit=unit, times=len(compact) // len(unit))
    if _is_sequence(compact):
        return msg("password is a sequence of consecutive characters")
    if len(set(compact)) <= 2:
        return msg("password repeats one or two characters")
    return None


def _estimate(password: str, context_words: Iterable[str]) -> tuple[float, str]:
    inputs = [w for w in context_words if w]
    result = zxcvbn(password[:ZXCVBN_MAX_CHARS], user_inputs=inputs)
    warning = str(result["feedback"]["warning"] or "it follows a common pattern").rstrip(".")
    return float(result["guesses_log10"]), warning


def guessable_problems(
    password: str, *, context_words: Iterable[tuple[str, str]], estimate: bool = True
) -> list[str]:
    """Every reason ``password`` is guessable; ``context_words`` are (what, word) pairs
    such as ``("user name", "admin")``. zxcvbn's estimate is asked only if ``estimate``
    and nothing else is wrong (its warning would only repeat the other reasons)."""
    reasons: list[str] = []
    forms = variants(password)
    if forms & _folded_blocklist():
        reasons.append(msg("password is a known default or commonly used password"))
    words = [(what, word) for what, word in context_words if word]
    for what, word in words:
        word_forms = variants(word, strip_decoration=False) | {label_fold(word)}
        if any(
            form == w or (len(w) >= CONTEXT_MIN_CHARS and w in form)
            for form in forms | {label_fold(password)}
            for w in word_forms
        ):
            reasons.append(msg("password contains the {what}", what=what))
    pattern = repeat_or_sequence(password)
    if pattern is not None:
        reasons.append(pattern)
    if estimate and not reasons and password:
        guesses_log10, warning = _estimate(password, [word for _, word in words])
        if guesses_log10 < MIN_GUESSES_LOG10:
            reasons.append(msg(
                "password is easy to guess (about 10^{guesses:.0f} guesses, at least "
                "10^{minimum:.0f} are required): {warning}",
                guesses=guesses_log10, minimum=MIN_GUESSES_LOG10, warning=warning,
            ))
    return reasons
