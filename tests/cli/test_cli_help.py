"""``refcam --help`` and every subcommand's help read as plain text."""

from __future__ import annotations

import argparse
import re

from refcam.cli import build_parser

MARKUP = re.compile(r"``|:(?:mod|func|class|meth|data):`")


def _parsers(parser: argparse.ArgumentParser, path: str) -> list[tuple[str, argparse.ArgumentParser]]:
    found = [(path, parser)]
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for name, sub in action.choices.items():
                found += _parsers(sub, f"{path} {name}")
    return found


def test_no_help_text_carries_rst_markup() -> None:
    parsers = _parsers(build_parser(), "refcam")
    assert len(parsers) > 40  # every group and subcommand was walked
    marked = [
        f"{path}: {line.strip()}"
        for path, parser in parsers
        for line in parser.format_help().splitlines()
        if MARKUP.search(line)
    ]
    assert not marked, "\n".join(marked)
