"""The one console command, ``refcam``, and its subcommand groups.

Each command group lives in its own ``refcam/cli_<group>.py`` (the probe's in
``conformance/cli.py``), exposing ``register(groups)``; this module only builds
the group parsers and turns domain errors into one line on stderr and a
non-zero exit status. Help texts are plain text, as a terminal shows them.
"""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Callable, Sequence

from common.errors import RefcamError
from conformance.errors import ProbeError
from refcam import __version__
from refcam.i18n import LANGUAGES, N_, _, chosen_language, speaking
from refcam.progress import Progress

# group name -> help text
GROUPS: dict[str, str] = {
    "keys": N_("create and inspect key material"),
    "firmware": N_("build, verify and inspect signed firmware images"),
    "device": N_("provision, boot, run and service a simulated camera"),
    "attest": N_("verify attestation evidence"),
    "repo": N_("vendor TUF repository tooling"),
    "update-server": N_("serve the TUF repository over TLS"),
    "psirt": N_("vulnerability handling and SLA figures"),
    "stream": N_("record and verify signed video streams"),
    "fleet": N_("provision and run many cameras on loopback addresses"),
}

# modules exposing register(groups: dict[str, argparse._SubParsersAction]) -> None
REGISTRARS: tuple[str, ...] = (
    "refcam.cli_keys",  # keys init, firmware build/verify/inspect
    "refcam.cli_device",  # device provision/boot/flash
    "refcam.cli_attest",  # attest verify / reference values
    "refcam.cli_device_runtime",  # device run/ca/label/factory-reset/renew-cert
    "refcam.cli_repo",  # repo *, update-server run, tuf-client
    "refcam.cli_psirt",  # psirt *
    "refcam.cli_stream",  # stream record/verify
    "refcam.cli_fleet",  # fleet provision/run/status/labels
    "conformance.cli",  # probe
    "refcam.cli_update",  # device update (upload/install on a running camera, with progress)
)

# The command groups each registrar fills. A command imports only the registrars of its
# group (a CLI start costs a third of the full import); a registrar not listed here is
# always imported, so a new one never goes missing.
SERVES: dict[str, frozenset[str]] = {
    "refcam.cli_keys": frozenset({"keys", "firmware"}),
    "refcam.cli_device": frozenset({"device"}),
    "refcam.cli_attest": frozenset({"attest"}),
    "refcam.cli_device_runtime": frozenset({"device"}),
    "refcam.cli_repo": frozenset({"repo", "update-server", "tuf-client"}),
    "refcam.cli_psirt": frozenset({"psirt"}),
    "refcam.cli_stream": frozenset({"stream"}),
    "conformance.cli": frozenset({"probe"}),
    "refcam.cli_update": frozenset({"device"}),
}

Handler = Callable[[argparse.Namespace], int]


def _group_of(argv: Sequence[str]) -> str | None:
    """The command group named first in ``argv``, if it is one a registrar serves."""
    known = set().union(*SERVES.values())
    return argv[0] if argv and argv[0] in known else None


def build_parser(group: str | None = None) -> argparse.ArgumentParser:
    """Every command, or (``group``) only what that group needs: the others are left out."""
    parser = argparse.ArgumentParser(
        prog="refcam",
        description=_(
            "refcam: a reference secure network camera you can run, and a conformance "
            "probe for any camera (KS X 3020, EN 303 645, CLS)."
        ),
    )
    parser.add_argument(
        "--version", action="version", version=f"refcam {__version__}", help=_("show the version and exit")
    )
    parser.add_argument(
        "--lang",
        dest="cli_lang",  # the probe has a --lang of its own (its reports' language)
        choices=LANGUAGES,
        help=_("language of messages and help (default: from LANGUAGE, LC_ALL, LC_MESSAGES, LANG)"),
    )
    # Long-running commands report progress through this factory (stderr: a bar on a
    # terminal, plain lines in a log); mounted commands from other packages use it too.
    parser.set_defaults(progress=Progress)
    top = parser.add_subparsers(dest="group", metavar="COMMAND")
    top.required = True
    groups: dict[str, argparse._SubParsersAction[argparse.ArgumentParser]] = {"": top}
    for name, help_text in GROUPS.items():
        group_parser = top.add_parser(name, help=_(help_text))
        sub = group_parser.add_subparsers(dest="command", metavar="SUBCOMMAND")
        sub.required = True
        groups[name] = sub
    for module_name in REGISTRARS:
        if group is not None and module_name in SERVES and group not in SERVES[module_name]:
            continue
        try:
            module = importlib.import_module(module_name)
        except ModuleNotFoundError as exc:
            if exc.name == module_name:
                continue  # that part of refcam is not built yet
            raise
        module.register(groups)
    # Drop groups nobody filled, so --help shows only working commands.
    for name in list(GROUPS):
        if not groups[name].choices:
            top._name_parser_map.pop(name, None)
            top._choices_actions = [a for a in top._choices_actions if a.dest != name]
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    words = list(sys.argv[1:] if argv is None else argv)
    language = chosen_language(words)
    with speaking(language):
        return _run(words)


def _run(words: list[str]) -> int:
    parser = build_parser(_group_of(_without_lang(words)))
    args = parser.parse_args(words)
    handler: Handler = args.handler
    try:
        return handler(args)
    except (RefcamError, ProbeError) as exc:
        print(_("refcam: error: {message}").format(message=exc), file=sys.stderr)
        return exc.exit_code
    except KeyboardInterrupt:
        return 130


def _without_lang(words: list[str]) -> list[str]:
    """``words`` without a leading global ``--lang X`` / ``--lang=X`` (to find the command group)."""
    rest = list(words)
    while rest and rest[0].startswith("--lang"):
        del rest[: 1 if "=" in rest[0] else 2]
    return rest


if __name__ == "__main__":
    sys.exit(main())
