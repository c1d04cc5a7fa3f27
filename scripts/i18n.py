"""Extract the web UI's strings and keep the catalogues in step (Babel).

    python scripts/i18n.py extract   # write the templates (webui.pot, api.pot)
    python scripts/i18n.py update    # merge them into every <lang>/LC_MESSAGES/<domain>.po
    python scripts/i18n.py check     # exit 1 listing every string without a translation

Two catalogues (domains). ``api``: the device API's error messages, every
``msg("template", ...)`` call in ``device/`` (Babel's Python extractor), in
``device/locale/<lang>/LC_MESSAGES/api.po``. ``webui``:
``device/webui/static/app.js`` through Babel's JavaScript extractor
(``_``, ``N_`` and ``ngettext`` calls) and ``index.html`` through
:func:`extract_html`, which takes exactly what ``app.js``'s ``collectPageText``
translates at run time: text nodes and the placeholder, alt, aria-label and
title attributes, whitespace collapsed, outside ``translate="no"``, with at
least one letter. ``cli``: the refcam command's messages and help, every
``_``, ``N_`` and ``ngettext`` call in ``refcam/`` plus the strings of Python's
own ``argparse`` (which the command shows through gettext), in
``refcam/locale/<lang>/LC_MESSAGES/cli.po``, compiled to ``cli.mo`` (gettext
reads only compiled catalogues; ``compile`` writes them, ``update`` too).
``tests/device/test_i18n.py`` and ``tests/cli/test_cli_i18n.py`` run
:func:`missing` so ``make test`` fails on a string without a translation.

    python scripts/i18n.py compile   # write every cli.mo from its cli.po
    python scripts/i18n.py update cli  # one domain only (any command)

``probe``: the conformance probe's reports (it imports nothing of ours, so it
has its own catalogue, ``conformance/locale/<lang>/LC_MESSAGES/probe.po``):
every ``msg("template", ...)`` and ``N_("text")`` call in ``conformance/``
and every human text of ``conformance/catalogue.toml`` (:func:`extract_catalogue`:
titles, purposes, units, verdict rules, group names, the provenance note);
``tests/conformance/test_probe_i18n.py`` runs :func:`missing` for it.
"""

from __future__ import annotations

import argparse
import io
import re
import sys
import tomllib
from collections.abc import Iterator
from html.parser import HTMLParser
from pathlib import Path
from typing import IO, Any

from babel.messages.catalog import Catalog
from babel.messages.extract import extract, extract_javascript, extract_python
from babel.messages.mofile import write_mo
from babel.messages.pofile import read_po, write_po

ROOT = Path(__file__).resolve().parent.parent
WEBUI = ROOT / "device" / "webui"
STATIC = WEBUI / "static"
LOCALE = WEBUI / "locale"
POT = LOCALE / "webui.pot"
API_LOCALE = ROOT / "device" / "locale"
CLI_LOCALE = ROOT / "refcam" / "locale"
PROBE = ROOT / "conformance"
PROBE_LOCALE = PROBE / "locale"
DOMAINS = ("webui", "api", "cli", "probe")
PROBE_KEYWORDS: dict[str, Any] = {"msg": None, "N_": None}
LANGUAGES = ("ko",)  # English is the source language
JS_KEYWORDS: dict[str, Any] = {"_": None, "N_": None, "ngettext": (1, 2)}
CLI_KEYWORDS: dict[str, Any] = {"_": None, "N_": None, "ngettext": (1, 2)}  # argparse's too
ATTRIBUTES = ("placeholder", "alt", "aria-label", "title")
VOID = {"area", "base", "br", "col", "embed", "hr", "img", "input", "link", "meta", "source", "track", "wbr"}
_LETTER = re.compile(r"[^\W\d_]")


def _collapse(text: str) -> str:
    return " ".join(text.split())


class _PageText(HTMLParser):
    """Text nodes and translatable attributes of index.html, as collectPageText sees them."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.found: list[tuple[int, str]] = []
        self._stack: list[tuple[str, bool]] = []  # (tag, skipped)

    def _skipped(self) -> bool:
        return bool(self._stack) and self._stack[-1][1]

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        values = dict(attrs)
        skipped = self._skipped() or values.get("translate") == "no" or tag in ("script", "style")
        if not skipped:
            for name in ATTRIBUTES:
                value = values.get(name)
                if value and _LETTER.search(value):
                    self.found.append((self.getpos()[0], _collapse(value)))
        if tag not in VOID:
            self._stack.append((tag, skipped))

    def handle_startendtag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.handle_starttag(tag, attrs)
        if tag not in VOID:
            self._stack.pop()

    def handle_endtag(self, tag: str) -> None:
        while self._stack:
            if self._stack.pop()[0] == tag:
                break

    def handle_data(self, data: str) -> None:
        text = _collapse(data)
        in_title = bool(self._stack) and self._stack[-1][0] == "title"
        if text and _LETTER.search(text) and (not self._skipped() or in_title):
            self.found.append((self.getpos()[0], text))


def extract_html(
    fileobj: IO[bytes], keywords: Any, comment_tags: Any, options: Any
) -> Iterator[tuple[int, str, str, list[str]]]:
    """A Babel extraction method for index.html."""
    parser = _PageText()
    parser.feed(fileobj.read().decode("utf-8"))
    for lineno, text in parser.found:
        yield lineno, "", text, []


def extract_catalogue(
    fileobj: IO[bytes], keywords: Any, comment_tags: Any, options: Any
) -> Iterator[tuple[int, str, str, list[str]]]:
    """A Babel extraction method for the probe's catalogue.toml: every text a report shows."""
    text = fileobj.read().decode("utf-8")
    doc = tomllib.loads(text)
    lines = text.splitlines()

    def line_of(value: str) -> int:
        needle = value[:40]
        return next((i + 1 for i, line in enumerate(lines) if needle in line), 0)

    texts = [str(doc.get("ks_provenance", ""))] + [str(v) for v in doc.get("groups", {}).values()]
    for case in doc.get("case", []):
        texts += [case["title"], case["purpose"], *case["units"], case["verdict_rule"]]
    for value in texts:
        if value:
            yield line_of(value), "", value, []


def _sources(domain: str) -> list[tuple[Path, Any]]:
    if domain == "probe":
        return [(path, extract_python) for path in sorted(PROBE.rglob("*.py"))] + [
            (PROBE / "catalogue.toml", extract_catalogue)
        ]
    if domain == "api":
        device = ROOT / "device"
        return [(path, extract_python) for path in sorted(device.rglob("*.py"))]
    if domain == "cli":
        refcam = [(path, extract_python) for path in sorted((ROOT / "refcam").rglob("*.py"))]
        return [*refcam, (Path(argparse.__file__), extract_python)]
    return [(STATIC / "index.html", extract_html), (STATIC / "app.js", extract_javascript)]


def build_template(domain: str = "webui") -> Catalog:
    catalog = Catalog(project=f"refcam {domain}", domain=domain, charset="utf-8")
    keywords = (
        {"msg": None} if domain == "api"
        else CLI_KEYWORDS if domain == "cli"
        else PROBE_KEYWORDS if domain == "probe"
        else JS_KEYWORDS
    )
    for path, method in _sources(domain):
        with path.open("rb") as handle:
            for lineno, message, comments, _context in extract(
                method, handle, keywords=keywords, options={"parse_template_string": "false"}
            ):
                where = str(path.relative_to(ROOT)) if path.is_relative_to(ROOT) else path.name
                catalog.add(message, locations=[(where, lineno)], auto_comments=comments)
    return catalog


def _base(domain: str) -> Path:
    return {"api": API_LOCALE, "cli": CLI_LOCALE, "probe": PROBE_LOCALE}.get(domain, LOCALE)


def po_path(language: str, domain: str = "webui") -> Path:
    return _base(domain) / language / "LC_MESSAGES" / f"{domain}.po"


def compiled(language: str, domain: str = "cli") -> bytes:
    """The ``.mo`` file gettext reads, compiled from ``language``'s ``.po``."""
    out = io.BytesIO()
    write_mo(out, read_catalog(language, domain), use_fuzzy=False)
    return out.getvalue()


def read_catalog(language: str, domain: str = "webui") -> Catalog:
    with po_path(language, domain).open("rb") as handle:
        return read_po(handle, locale=language, domain=domain)


_PLACEHOLDER = re.compile(r"\{(\w+)(?:![rsa])?(?::[^{}]*)?\}")
_PERCENT = re.compile(r"%(?:\(\w+\))?[-#0 +]*\d*(?:\.\d+)?[sdrfgx]")  # argparse's %-style


def _conversions(text: str, domain: str) -> list[str]:
    found = _PLACEHOLDER.findall(text)
    if domain == "cli":  # argparse formats its own strings with %
        found += _PERCENT.findall(text)
    return sorted(found)


def missing(language: str, domain: str = "webui") -> list[str]:
    """Every problem with ``language``'s catalogue: untranslated, fuzzy, placeholders lost, stale."""
    template = build_template(domain)
    catalog = read_catalog(language, domain)
    problems = []
    wanted = {m.id if isinstance(m.id, str) else m.id[0] for m in template if m.id}
    for message in template:
        if not message.id:
            continue
        found = catalog.get(message.id)
        key = message.id if isinstance(message.id, str) else message.id[0]
        if found is None or found.fuzzy:
            problems.append(f"no {language} translation of {key!r}")
            continue
        forms = [found.string] if isinstance(found.string, str) else list(found.string)
        ids = [message.id] if isinstance(message.id, str) else list(message.id)
        if not all(forms):
            problems.append(f"no {language} translation of {key!r}")
            continue
        need = set().union(*(set(_conversions(i, domain)) for i in ids))
        for form in forms:
            if set(_conversions(form, domain)) != need:
                problems.append(f"{language} translation of {key!r} does not use the placeholders {sorted(need)}")
            elif form.endswith("\n") != ids[0].endswith("\n"):
                problems.append(f"{language} translation of {key!r} does not end like it with a newline")
    for message in catalog:
        key = message.id if isinstance(message.id, str) else (message.id[0] if message.id else "")
        if key and key not in wanted:
            problems.append(f"{language} catalogue has a string no longer in the UI: {key!r}")
    if domain == "cli":
        mo = po_path(language, domain).with_suffix(".mo")
        if not mo.exists() or mo.read_bytes() != compiled(language, domain):
            problems.append(f"{language}/LC_MESSAGES/{mo.name} is not compiled from its .po: run scripts/i18n.py compile")
    return problems


def compile_all() -> None:
    for language in LANGUAGES:
        po_path(language, "cli").with_suffix(".mo").write_bytes(compiled(language, "cli"))


class _ReportText(HTMLParser):
    """The text a reader sees in a report page, without evidence, code and style."""

    SKIP = ("details", "pre", "style", "script", "code")

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.texts: list[str] = []
        self._skipping: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag in self.SKIP:
            self._skipping.append(tag)

    def handle_endtag(self, tag: str) -> None:
        if self._skipping and self._skipping[-1] == tag:
            self._skipping.pop()

    def handle_data(self, data: str) -> None:
        if not self._skipping and data.strip():
            self.texts.append(_collapse(data))


_ENGLISH_WORD = re.compile(r"\b[a-z]{2,}\b")


def untranslated_in_page(page: str, language: str, domain: str = "probe") -> list[str]:
    """English left in a page rendered in ``language``: every piece of a msgid between its
    placeholders with two or more English words that shows up in the page's text (evidence,
    code and pieces a translation keeps verbatim, such as ``max-age``, are not counted)."""
    parser = _ReportText()
    parser.feed(page)
    text = "\n".join(parser.texts)
    catalog = read_catalog(language, domain)
    kept = "\n".join(str(m.string) for m in catalog if m.id and isinstance(m.string, str))
    found = []
    for message in build_template(domain):
        if not isinstance(message.id, str) or not message.id:
            continue
        for piece in _PLACEHOLDER.sub("\0", message.id).split("\0"):
            piece = piece.strip(" ,.;:()")
            if len(_ENGLISH_WORD.findall(piece)) >= 2 and piece not in kept and piece in text:
                found.append(piece)
    return sorted(set(found))


def main(argv: list[str]) -> int:
    command = argv[0] if argv else "check"
    domains = tuple(argv[1:]) or DOMAINS  # e.g. "update cli": only that catalogue
    if command == "extract":
        for domain in domains:
            pot = _base(domain) / f"{domain}.pot"
            with pot.open("wb") as handle:
                write_po(handle, build_template(domain), omit_header=False, sort_output=False, width=100)
        return 0
    if command == "update":
        for domain in domains:
            template = build_template(domain)
            for language in LANGUAGES:
                path = po_path(language, domain)
                catalog = read_catalog(language, domain) if path.exists() else Catalog(locale=language, domain=domain)
                catalog.update(template, no_fuzzy_matching=True)
                path.parent.mkdir(parents=True, exist_ok=True)
                with path.open("wb") as handle:
                    write_po(handle, catalog, width=100, ignore_obsolete=True)
        compile_all()
        return 0
    if command == "compile":
        compile_all()
        return 0
    if command == "check":
        problems = [p for domain in domains for language in LANGUAGES for p in missing(language, domain)]
        for problem in problems:
            print(problem)
        return 1 if problems else 0
    print(f"unknown command {command!r}; use extract, update, compile or check", file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
