"""Strict parsing of outside text: ASCII-digit integers and encodable Unicode strings.

Python's own helpers are too lenient for input from the network:
``"²".isdigit()`` is true yet ``int("²")`` raises, ``int("١٢")`` is 12,
``int(" 5")`` and ``int("1_0")`` succeed, and ``json.loads`` accepts a lone
UTF-16 surrogate (``"\\ud800"``) that no UTF-8 encoder, SQLite or scrypt will
take later. These pure functions are used *before* any effect, so such input
is a 4xx and never a 500 halfway through an action.

Example::

    assert ascii_int("42") == 42 and ascii_int("²") is None
    first_unencodable({"a": ["ok", "\\ud800"]})  # -> "\\ud800"
"""

from __future__ import annotations

import re
from typing import Any

_DIGITS = re.compile(r"[0-9]{1,19}")  # at most 19 digits: fits an int64, never a huge int


def ascii_int(text: str | None) -> int | None:
    """``text`` as a non-negative integer if it is 1..19 ASCII digits, else None."""
    if text is None or not _DIGITS.fullmatch(text):
        return None
    return int(text)


def is_encodable(text: str) -> bool:
    """True if ``text`` is valid Unicode (no lone surrogates), i.e. encodes as UTF-8."""
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def first_unencodable(value: Any) -> str | None:
    """The first string (key or value) in a parsed JSON ``value`` that is not valid Unicode."""
    stack: list[Any] = [value]
    while stack:
        item = stack.pop()
        if isinstance(item, str):
            if not is_encodable(item):
                return item
        elif isinstance(item, dict):
            stack.extend(item.keys())
            stack.extend(item.values())
        elif isinstance(item, list):
            stack.extend(item)
    return None
