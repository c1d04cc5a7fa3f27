"""The probe's languages: its own gettext catalogue (Babel), report times in the lab's zone.

The probe imports nothing else of refcam, so it has its own small i18n module
(the device's ``device/i18n.py`` follows the same conventions). English is the
source language. Every human-readable string the probe writes is English in
the code or in ``catalogue.toml``; ``scripts/i18n.py extract`` (domain
``probe``) collects them: every ``msg("template", ...)`` and ``N_("text")``
call in ``conformance/`` and every text of ``catalogue.toml`` (titles,
purposes, units, verdict rules, group names, the provenance note). Each other
language has ``conformance/locale/<lang>/LC_MESSAGES/probe.po``;
``tests/conformance/test_probe_i18n.py`` fails when a string has no
translation or a translation lost one of its ``{placeholders}``.

A case's reason is a :class:`Message`: it *is* the English text (logs, tests,
calibration rows see plain English), and it keeps its template and values so
the report says it in the chosen language::

    reason = msg("throttled after {n} wrong passwords", n=5)
    str(reason)                 # "throttled after 5 wrong passwords"
    translate(reason, "ko")     # the Korean template, formatted with n=5

Ids, verdict codes, scheme mappings, evidence and text the device sent stay as
they are (language-neutral). Times are stored in UTC and shown in the lab's
zone (:func:`format_time`, Babel's ``format_datetime`` with the locale).
"""

from __future__ import annotations

import functools
from collections.abc import Iterable, Mapping
from datetime import UTC, datetime
from importlib import resources
from types import MappingProxyType
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from babel.dates import format_datetime
from babel.messages.pofile import read_po

from .errors import UsageError

SOURCE_LANGUAGE = "en"
LANGUAGES: Mapping[str, str] = MappingProxyType({"en": "English", "ko": "한국어"})
DOMAIN = "probe"


class Message(str):
    """English text that keeps its template and values, so a report can say it in another language."""

    template: str
    values: Mapping[str, object]

    def __new__(cls, template: str, /, **values: object) -> Message:
        self = super().__new__(cls, template.format(**values) if values else template)
        self.template = template
        self.values = MappingProxyType(dict(values))
        return self


def msg(template: str, /, **values: object) -> Message:
    """A human-readable probe message in English (``str.format`` template); extracted by scripts/i18n.py."""
    return Message(template, **values)


class Items(tuple[str, ...]):
    """A list of texts a message shows joined (each item said in the report's language)."""

    separator: str

    def __new__(cls, items: Iterable[str], separator: str) -> Items:
        self = super().__new__(cls, tuple(items))
        self.separator = separator
        return self

    def __str__(self) -> str:
        return self.separator.join(str(item) for item in self)

    def __format__(self, spec: str) -> str:
        return format(str(self), spec)


def joined(items: Iterable[str], separator: str = "; ") -> Message:
    """Texts (each a :class:`Message` or language-neutral text) joined into one reason."""
    return msg("{items}", items=Items(items, separator))


def N_(text: str) -> str:
    """Mark a fixed English text for extraction; :func:`gettext` says it in a language."""
    return text


def said(exc: BaseException) -> str:
    """What an exception says, keeping its :class:`Message` (so a reason built from it translates)."""
    first = exc.args[0] if exc.args else None
    return first if isinstance(first, Message) and str(first) == str(exc) else str(exc)


def check_language(language: str) -> str:
    if language not in LANGUAGES:
        raise UsageError(f"--lang {language!r}: the probe speaks {', '.join(sorted(LANGUAGES))}")
    return language


def check_zone(name: str) -> ZoneInfo:
    """An IANA time zone (``Asia/Seoul``), or a usage error naming it."""
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError, OSError) as exc:
        raise UsageError(f"--tz {name!r}: not an IANA time zone (e.g. UTC, Asia/Seoul)") from exc


@functools.cache
def load_messages(language: str) -> Mapping[str, str]:
    """The catalogue of ``language`` as msgid -> translation (empty for English, the source)."""
    check_language(language)
    if language == SOURCE_LANGUAGE:
        return MappingProxyType({})
    resource = resources.files(__package__) / "locale" / language / "LC_MESSAGES" / f"{DOMAIN}.po"
    with resource.open("rb") as handle:
        catalog = read_po(handle, locale=language, domain=DOMAIN)
    return MappingProxyType(
        {str(m.id): str(m.string) for m in catalog if isinstance(m.id, str) and m.id and m.string and not m.fuzzy}
    )


def gettext(text: str, language: str) -> str:
    """A fixed text (catalogue.toml, report labels) in ``language``; English when it has no translation."""
    if isinstance(text, Message):
        return translate(text, language)
    if language == SOURCE_LANGUAGE:
        return str(text)
    return load_messages(language).get(str(text), str(text))


def translate(text: str, language: str) -> str:
    """``text`` in ``language``: a :class:`Message` through its template, a plain string as a fixed text."""
    if not isinstance(text, Message):
        return gettext(text, language)
    if language == SOURCE_LANGUAGE:
        return str(text)
    translated = load_messages(language).get(text.template)
    if translated is None:
        return str(text)
    values = {k: _value(v, language) for k, v in text.values.items()}
    try:
        return translated.format(**values)
    except (KeyError, IndexError, ValueError):  # a broken catalogue entry: the English text, never an error
        return str(text)


def _value(value: object, language: str) -> object:
    if isinstance(value, BaseException):
        value = said(value)
    if isinstance(value, Items):
        return value.separator.join(translate(item, language) for item in value)
    return translate(value, language) if isinstance(value, Message) else value


def parse_utc(stamp: str) -> datetime | None:
    """An ISO 8601 time from a report (UTC when it names no zone); None when it is not one."""
    try:
        moment = datetime.fromisoformat(stamp.replace("Z", "+00:00"))
    except ValueError:
        return None
    return moment if moment.tzinfo is not None else moment.replace(tzinfo=UTC)


def format_time(stamp: str, language: str, zone: ZoneInfo) -> str:
    """A stored UTC time as the lab reads it: in its zone and language, with the zone's name."""
    moment = parse_utc(stamp)
    if moment is None:
        return stamp
    local = moment.astimezone(zone)
    shown = format_datetime(local, "medium", tzinfo=zone, locale=language)
    return f"{shown} ({zone.key}, UTC{local.strftime('%z')[:3]}:{local.strftime('%z')[3:]})"
