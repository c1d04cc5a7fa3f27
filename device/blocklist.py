"""Passwords a camera must never accept: Mirai's defaults and the most common passwords.

``MIRAI_PAIRS`` is the credential table of the Mirai botnet's telnet scanner
(``mirai/bot/scanner.c``, ``add_auth_entry`` calls, as published in
github.com/jgamblin/Mirai-Source-Code, 2016): 62 username/password pairs, 61
distinct (``guest``/``12345`` appears twice). The strings there are obfuscated
(XOR 0x22); the pairs below are the decoded bytes (two source comments are
wrong: the decoded passwords are ``admin``/``4321`` and
``Administrator``/``admin``). ``(none)`` is the empty password.

``common_passwords()`` is the top-500 list of SecLists
(``Passwords/Common-Credentials/10-million-password-list-top-500.txt``,
github.com/danielmiessler/SecLists, MIT licence; Mark Burnett's 10 million
password dump), shipped as ``common-passwords.txt`` in this package.

Example::

    assert is_blocklisted("xc3511")
    assert ("admin", "admin") in MIRAI_PAIRS
"""

from __future__ import annotations

import functools
from importlib import resources

MIRAI_PAIRS: tuple[tuple[str, str], ...] = (
    ("root", "xc3511"),
    ("root", "vizxv"),
    ("root", "admin"),
    ("admin", "admin"),
    ("root", "888888"),
    ("root", "xmhdipc"),
    ("root", "default"),
    ("root", "juantech"),
    ("root", "123456"),
    ("root", "54321"),
    ("support", "support"),
    ("root", ""),
    ("admin", "password"),
    ("root", "root"),
    ("root", "12345"),
    ("user", "user"),
    ("admin", ""),
    ("root", "pass"),
    ("admin", "admin1234"),
    ("root", "1111"),
    ("admin", "smcadmin"),
    ("admin", "1111"),
    ("root", "666666"),
    ("root", "password"),
    ("root", "1234"),
    ("root", "klv123"),
    ("Administrator", "admin"),
    ("service", "service"),
    ("supervisor", "supervisor"),
    ("guest", "guest"),
    ("guest", "12345"),
    ("guest", "12345"),
    ("admin1", "password"),
    ("administrator", "1234"),
    ("666666", "666666"),
    ("888888", "888888"),
    ("ubnt", "ubnt"),
    ("root", "klv1234"),
    ("root", "Zte521"),
    ("root", "hi3518"),
    ("root", "jvbzd"),
    ("root", "anko"),
    ("root", "zlxx."),
    ("root", "7ujMko0vizxv"),
    ("root", "7ujMko0admin"),
    ("root", "system"),
    ("root", "ikwb"),
    ("root", "dreambox"),
    ("root", "user"),
    ("root", "realtek"),
    ("root", "00000000"),
    ("admin", "1111111"),
    ("admin", "1234"),
    ("admin", "12345"),
    ("admin", "54321"),
    ("admin", "123456"),
    ("admin", "7ujMko0admin"),
    ("admin", "4321"),
    ("admin", "pass"),
    ("admin", "meinsm"),
    ("tech", "tech"),
    ("mother", "fucker"),
)
assert len(MIRAI_PAIRS) == 62 and len(set(MIRAI_PAIRS)) == 61

COMMON_PASSWORDS_FILE = "common-passwords.txt"


@functools.cache
def common_passwords() -> frozenset[str]:
    """The shipped common-password list, lower-cased (read once, from the package)."""
    text = resources.files(__package__).joinpath(COMMON_PASSWORDS_FILE).read_text("utf-8")
    return frozenset(line.strip().lower() for line in text.splitlines() if line.strip())


def mirai_passwords() -> frozenset[str]:
    return frozenset(password.lower() for _, password in MIRAI_PAIRS)


def is_blocklisted(password: str) -> bool:
    """True if ``password`` (case-insensitively) is a Mirai or common password."""
    folded = password.lower()
    return folded in mirai_passwords() or folded in common_passwords()
