"""The refcam command in English or Korean: one gettext catalogue, ``cli``.

English is the source language. Every user-facing string of the command (its
one-line errors, status and summary lines, help texts) is written in English
inside ``_("...")`` (or ``N_("...")`` where it must stay English until it is
shown, as in a module-level table) and extracted with Babel
(``scripts/i18n.py extract``) into ``locale/cli.pot``, together with the
strings of Python's own ``argparse`` (usage, "the following arguments are
required", ...), which argparse passes through :func:`gettext.gettext`.
Each other language has ``locale/<lang>/LC_MESSAGES/cli.po`` and its compiled
``cli.mo`` (``scripts/i18n.py compile``); ``tests/cli/test_cli_i18n.py`` fails
when a string has no translation, lost a placeholder, or the ``.mo`` is older
than its ``.po``.

The language is chosen the standard way, by :mod:`gettext` from the
environment: ``LANGUAGE``, ``LC_ALL``, ``LC_MESSAGES``, ``LANG`` (first one
set wins; ``ko_KR.UTF-8`` -> Korean; anything without a catalogue -> English).
``refcam --lang ko|en`` overrides it for one run (:func:`chosen_language`).
Machine-readable output never changes: JSON, CSV, exit statuses, case ids.
"""

from __future__ import annotations

import gettext
import os
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path

DOMAIN = "cli"
LOCALEDIR = Path(__file__).resolve().parent / "locale"
LANGUAGES = ("en", "ko")  # "en" is the source language: no catalogue
ENVIRONMENT = ("LANGUAGE", "LC_ALL", "LC_MESSAGES", "LANG")  # gettext's order

gettext.bindtextdomain(DOMAIN, str(LOCALEDIR))


def _(message: str) -> str:
    """``message`` in the user's language (the ``cli`` catalogue), else as written."""
    return gettext.dgettext(DOMAIN, message)


def N_(message: str) -> str:
    """Mark ``message`` for extraction only; translate it with :func:`_` where it is shown."""
    return message


def ngettext(singular: str, plural: str, n: int) -> str:
    return gettext.dngettext(DOMAIN, singular, plural, n)


def chosen_language(argv: Sequence[str]) -> str | None:
    """The language of a global ``--lang ko|en`` (or ``--lang=ko``) before the command group."""
    for index, arg in enumerate(argv):
        if not arg.startswith("-"):
            return None  # the command group: later options are the command's own
        if arg == "--lang" and index + 1 < len(argv):
            return argv[index + 1]
        if arg.startswith("--lang="):
            return arg.partition("=")[2]
    return None


@contextmanager
def speaking(language: str | None) -> Iterator[None]:
    """Route :mod:`gettext` (ours and argparse's) through the ``cli`` domain for one run.

    ``language`` (from ``--lang``) overrides the environment for this run and the
    processes it starts, by setting ``LANGUAGE`` as a user would; it is restored after.
    """
    previous_domain = gettext.textdomain()
    saved = os.environ.get("LANGUAGE")
    gettext.textdomain(DOMAIN)
    if language in LANGUAGES:
        os.environ["LANGUAGE"] = str(language)
    try:
        yield
    finally:
        gettext.textdomain(previous_domain)
        if saved is None:
            os.environ.pop("LANGUAGE", None)
        else:
            os.environ["LANGUAGE"] = saved
