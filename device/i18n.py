"""Languages of the web UI: gettext catalogues, Accept-Language, each user's choice.

English is the source language: every user-facing string of the web UI is
written in English in ``webui/static/index.html`` and ``app.js`` (through
``_("...")``) and extracted with Babel (``scripts/i18n.py extract``) into
``webui/locale/webui.pot``. Each other language has a catalogue
``webui/locale/<lang>/LC_MESSAGES/webui.po``; ``tests/device/test_i18n.py``
fails when a string has no translation (or a translation lost one of its
``{placeholders}``). The catalogues travel in the signed firmware payload and
are read with ``importlib.resources`` (disk or verified zip alike).

Pure cores: :func:`negotiate` (RFC 9110 ``Accept-Language`` with q-values,
through Babel's locale negotiation) and :func:`load_messages`. Adapter:
:class:`PreferenceStore`, each user's chosen language in SQLite, so the web UI
follows the account from one browser to the next.

The API's error messages are English :class:`Message` objects (``msg(template,
**values)``) that keep their template, so the error middleware says them in the
client's ``Accept-Language`` (:func:`translate`) from the ``api`` catalogue
(``locale/<lang>/LC_MESSAGES/api.po``); their machine-readable ``error`` codes
never change. Machine-readable parts stay language-neutral: API error codes,
audit event names, role and policy identifiers.
"""

from __future__ import annotations

import functools
import importlib.resources
import sqlite3
import threading
from collections.abc import Callable, Mapping
from pathlib import Path
from types import MappingProxyType

from babel.core import negotiate_locale
from babel.messages.pofile import read_po

from common.sqlitedb import open_database

from .errors import StorageError

SOURCE_LANGUAGE = "en"
# language tag -> its own name, as the language switch shows it
LANGUAGES: Mapping[str, str] = MappingProxyType({"en": "English", "ko": "한국어"})
DOMAIN = "webui"  # the web UI's catalogue; "api" holds the API's messages
DOMAINS = {"webui": ("webui", "locale"), "api": ("locale",)}  # where each catalogue sits in this package
MAX_ACCEPT_LANGUAGE = 1024  # characters of Accept-Language read at all

CommitHook = Callable[[], object]


def parse_accept_language(header: str | None) -> list[str]:
    """Language ranges of an ``Accept-Language`` value, best first (q=0 dropped, ties keep order)."""
    if not header:
        return []
    ranked: list[tuple[float, int, str]] = []
    for index, part in enumerate(header[:MAX_ACCEPT_LANGUAGE].split(",")):
        tag, _, params = part.strip().partition(";")
        tag = tag.strip()
        if not tag or len(tag) > 35 or not all(c.isascii() and (c.isalnum() or c in "-*") for c in tag):
            continue
        q = 1.0
        for param in params.split(";"):
            name, _, value = param.strip().partition("=")
            if name.strip().lower() == "q":
                try:
                    q = float(value)
                except ValueError:
                    q = 0.0
        if 0.0 < q <= 1.0:
            ranked.append((-q, index, tag))
    return [tag for _, _, tag in sorted(ranked)]


def negotiate(accept_language: str | None, *, preferred: str | None = None) -> str:
    """The UI language: the user's stored choice, else the best of ``Accept-Language``, else English."""
    if preferred in LANGUAGES:
        return str(preferred)
    wanted = [tag.replace("-", "_") for tag in parse_accept_language(accept_language) if tag != "*"]
    chosen = negotiate_locale(wanted, list(LANGUAGES), sep="_") if wanted else None
    if chosen is None:  # "ko-KR" against "ko": Babel matches exact tags, so try the primary subtags
        primaries = [tag.split("_")[0].lower() for tag in wanted]
        chosen = next((tag for tag in primaries if tag in LANGUAGES), None)
    return chosen or SOURCE_LANGUAGE


class Message(str):
    """English text that keeps its template and values, so it can be said in another language.

    It *is* the English string (logs, tests and JSON see plain text); the error
    middleware looks its template up in the client's language (:func:`translate`).
    """

    template: str
    values: Mapping[str, object]

    def __new__(cls, template: str, /, **values: object) -> Message:
        self = super().__new__(cls, template.format(**values) if values else template)
        self.template = template
        self.values = MappingProxyType(dict(values))
        return self


def msg(template: str, /, **values: object) -> Message:
    """An API message in English (``str.format`` template); ``scripts/i18n.py`` extracts the template."""
    return Message(template, **values)


def translate(text: str, language: str) -> str:
    """``text`` in ``language`` when it is a :class:`Message` with a translation, else as it is."""
    if language == SOURCE_LANGUAGE or not isinstance(text, Message):
        return str(text)
    translated = load_messages(language, "api").get(text.template)
    if not isinstance(translated, str):
        return str(text)
    values = {k: translate(v, language) if isinstance(v, Message) else v for k, v in text.values.items()}
    try:
        return translated.format(**values)
    except (KeyError, IndexError, ValueError):  # a broken catalogue entry: the English text, never an error
        return str(text)


@functools.cache
def load_messages(language: str, domain: str = DOMAIN) -> Mapping[str, str | list[str]]:
    """The catalogue of ``language`` as msgid -> translation (empty for English, the source)."""
    if language not in LANGUAGES:
        raise KeyError(f"no language {language!r}; languages: {sorted(LANGUAGES)}")
    if language == SOURCE_LANGUAGE:
        return MappingProxyType({})
    resource = importlib.resources.files(__package__)
    for part in DOMAINS[domain]:
        resource = resource / part
    resource = resource / language / "LC_MESSAGES" / f"{domain}.po"
    with resource.open("rb") as handle:
        catalog = read_po(handle, locale=language, domain=domain)
    messages: dict[str, str | list[str]] = {}
    for message in catalog:
        if not message.id or message.fuzzy:
            continue
        if isinstance(message.id, str):
            if message.string:
                messages[message.id] = str(message.string)
        elif isinstance(message.string, (tuple, list)) and all(message.string):  # plural: keyed by the singular
            messages[str(message.id[0])] = [str(form) for form in message.string]
    return MappingProxyType(messages)


_SCHEMA = """
CREATE TABLE IF NOT EXISTS preferences (
    name TEXT NOT NULL,      -- user name
    key TEXT NOT NULL,       -- "language"
    value TEXT NOT NULL,
    PRIMARY KEY (name, key)
);
"""


class PreferenceStore:
    """Each user's UI preferences (the language), in one SQLite database."""

    def __init__(self, connection: sqlite3.Connection) -> None:
        self._db = connection
        self._lock = threading.Lock()

    @classmethod
    def open(cls, path: Path) -> PreferenceStore:
        try:
            return cls(open_database(path, schema=_SCHEMA))
        except (OSError, sqlite3.Error) as exc:
            raise StorageError(f"cannot open the preferences database {path}: {exc}") from exc

    def close(self) -> None:
        with self._lock:
            self._db.close()

    def language(self, name: str) -> str | None:
        with self._lock:
            row = self._db.execute(
                "SELECT value FROM preferences WHERE name = ? AND key = 'language'", (name,)
            ).fetchone()
        return str(row[0]) if row is not None and row[0] in LANGUAGES else None

    def set_language(self, name: str, language: str, *, commit_hook: CommitHook | None = None) -> None:
        """Remember ``language`` for ``name``; ``commit_hook`` (the audit record) runs before COMMIT."""
        if language not in LANGUAGES:
            raise KeyError(language)
        with self._lock:
            try:
                with self._db:
                    self._db.execute("BEGIN IMMEDIATE")
                    self._db.execute(
                        "INSERT OR REPLACE INTO preferences VALUES (?, 'language', ?)", (name, language)
                    )
                    if commit_hook is not None:
                        commit_hook()
            except sqlite3.Error as exc:
                raise StorageError(f"cannot write the preferences database: {exc}") from exc
