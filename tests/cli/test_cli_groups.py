"""A command loads only its own group's registrars, and still has every subcommand."""

from __future__ import annotations

import argparse

from refcam.cli import SERVES, _group_of, build_parser


def _commands(parser: argparse.ArgumentParser, group: str) -> set[str]:
    top = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    sub = top.choices[group]
    actions = [a for a in sub._actions if isinstance(a, argparse._SubParsersAction)]
    return set(actions[0].choices) if actions else {group}


def test_each_group_alone_has_the_same_commands_as_the_full_parser() -> None:
    full = build_parser()
    for group in set().union(*SERVES.values()):
        alone = build_parser(group)
        assert _commands(alone, group) == _commands(full, group), group


def test_the_group_is_the_first_argument_only() -> None:
    assert _group_of(["device", "label", "--state", "S"]) == "device"
    assert _group_of(["probe", "https://x"]) == "probe"
    assert _group_of(["--version"]) is None
    assert _group_of([]) is None
    assert _group_of(["nosuchgroup"]) is None
    assert "update" in _commands(build_parser("device"), "device")
