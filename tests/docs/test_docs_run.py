"""The documents are tests: their marked command blocks run as written.

``docrunner`` (next to this file) extracts the blocks marked
``<!-- doc-test -->`` and runs them step by step in a temporary directory
on loopback, with ``.venv/bin`` first on PATH (what ``. .venv/bin/activate``
gives a reader), checking each step's promised exit status and output. A
document whose commands or outputs drift from the code fails here.

The Korean documents (``docs/ko/``) run the English ones' commands, in a Korean
environment (``LANG=ko_KR.UTF-8``, as on a Korean lab's machine), so what they
promise is the refcam command's Korean output; the English ones run with
``LANGUAGE=en``. :func:`test_korean_doc_runs_the_english_commands` keeps the two
from drifting: same commands in the same order, same exit statuses, and every
promise either the same or the ``cli`` catalogue's Korean for the English one.
"""

from __future__ import annotations

import os
import re
import resource
import sys
import time
from pathlib import Path

import pytest

from tests.docs.docrunner import DocRun, Step, parse_steps

ROOT = Path(__file__).resolve().parents[2]
RUNNABLE_DOCS = ("README.md", "docs/WORKSHOP.md", "docs/LAB_GUIDE.md", "docs/ko/WORKSHOP.md", "docs/ko/LAB_GUIDE.md")
# Korean document -> the English one it translates
TRANSLATIONS = {"docs/ko/WORKSHOP.md": "docs/WORKSHOP.md", "docs/ko/LAB_GUIDE.md": "docs/LAB_GUIDE.md"}
# What one document may cost. CPU seconds of every command and server it runs (the
# descendants' rusage): what "fast enough on 2 cores" means, whatever else the machine
# runs. The wall-clock limit only catches a run that hangs or waits on nothing.
CPU_BUDGET_S = 180.0
WALL_LIMIT_S = 600.0


def _env(home: Path, language: str = "en") -> dict[str, str]:
    """The reader's environment: English (``LANGUAGE=en``) or Korean (``LANG=ko_KR.UTF-8``)."""
    venv_bin = str(Path(sys.executable).parent)
    keep = {k: v for k, v in os.environ.items() if k in ("LANG", "LC_ALL", "TZ", "TMPDIR")}
    if language == "ko":
        keep = {k: v for k, v in keep.items() if k not in ("LANG", "LC_ALL")}
        keep["LANG"] = "ko_KR.UTF-8"
    else:
        keep["LANGUAGE"] = "en"  # whatever the developer's locale: the English document's output
    return {
        **keep,
        "PATH": f"{venv_bin}:/usr/local/bin:/usr/bin:/bin",
        "HOME": str(home),
        "PYTHONPATH": str(ROOT),
        "PYTHONUNBUFFERED": "1",
    }


def run_document(path: Path, workdir: Path, language: str = "en") -> list[tuple[Step, str]]:
    steps = parse_steps(path)
    run = DocRun(workdir, _env(workdir, language))
    done: list[tuple[Step, str]] = []
    try:
        for step in steps:
            done.append((step, run.run(step)))
    finally:
        run.stop_servers()
    return done


@pytest.mark.slow
@pytest.mark.parametrize("doc", RUNNABLE_DOCS)
def test_document_runs_as_written(doc: str, tmp_path: Path) -> None:
    path = ROOT / doc
    assert parse_steps(path), f"{doc} has no block marked <!-- doc-test -->"
    started, before = time.monotonic(), _children_cpu()
    run_document(path, tmp_path, "ko" if doc in TRANSLATIONS else "en")
    cpu, wall = _children_cpu() - before, time.monotonic() - started
    print(f"{doc}: {cpu:.1f} CPU-s, {wall:.1f} s")
    assert cpu < CPU_BUDGET_S, f"{doc} costs {cpu:.0f} CPU-s, over the test-suite's {CPU_BUDGET_S:.0f}"
    assert wall < WALL_LIMIT_S, f"{doc} took {wall:.0f} s"


def _children_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def _write(tmp_path: Path, body: str) -> Path:
    doc = tmp_path / "doc.md"
    doc.write_text(f"# t\n\n<!-- doc-test -->\n```sh\n{body}```\n\nprose\n\n```\nnot run\n```\n")
    return doc


def test_runner_checks_exit_status_and_output(tmp_path: Path) -> None:
    doc = _write(tmp_path, 'export GREETING=hello   # -> exit 0\necho "$GREETING world"  # -> "hello world"\nfalse  # -> exit 1\n')
    steps = parse_steps(doc)
    assert [(s.line, s.exit_code, s.expect) for s in steps] == [
        (5, 0, ()), (6, 0, ("hello world",)), (7, 1, ()),
    ]  # fmt: skip
    work = tmp_path / "w"
    work.mkdir()
    run_document(doc, work)


def test_runner_fails_when_a_documented_output_drifts(tmp_path: Path) -> None:
    doc = _write(tmp_path, 'echo "hello world"  # -> "hello there"\n')
    work = tmp_path / "w"
    work.mkdir()
    with pytest.raises(AssertionError, match=r"(?s)doc.md:5: .*promises 'hello there'"):
        run_document(doc, work)


def test_runner_fails_when_a_documented_command_drifts(tmp_path: Path) -> None:
    doc = _write(tmp_path, "refcam device lable --state S  # the label\n")
    work = tmp_path / "w"
    work.mkdir()
    with pytest.raises(AssertionError, match=r"exited 2, the doc promises 0"):
        run_document(doc, work)


def test_runner_kills_its_background_servers(tmp_path: Path) -> None:
    doc = _write(tmp_path, "python -m http.server --bind 127.0.0.1 8447 &\necho up  # -> \"up\"\n")
    work = tmp_path / "w"
    work.mkdir()
    steps = parse_steps(doc)
    run = DocRun(work, _env(work))
    try:
        for step in steps:
            run.run(step)
        [(proc, _)] = run.servers
        assert proc.poll() is None
    finally:
        run.stop_servers()
    assert proc.poll() is not None
    assert run.localize("x 8447 18447 8447") == f"x {run.ports[8447]} 18447 {run.ports[8447]}"


def test_every_workshop_exercise_runs_its_flaw() -> None:
    """Each flaw of the workshop's exercise table is switched on by a step the runner runs
    (not only named in the table); every flaw name there is a real flaw profile. The
    flaws without an exercise are calibrated in docs/FLAWS.md and the lab guide."""
    import re

    from common.flaws import FLAWS

    workshop = ROOT / "docs" / "WORKSHOP.md"
    table = [line for line in workshop.read_text(encoding="utf-8").splitlines() if re.match(r"\| \d+ \|", line)]
    named = {name for line in table for name in re.findall(r"`([a-z0-9-]+)`", line.split("|")[2])}
    assert len(table) >= 14 and named, "docs/WORKSHOP.md lost its exercise table"
    assert named <= set(FLAWS), f"the workshop names flaws that do not exist: {sorted(named - set(FLAWS))}"
    commands = [step.command for step in parse_steps(workshop)]
    missing = [flaw for flaw in sorted(named) if not any(f"--flaw {flaw}" in command for command in commands)]
    assert not missing, f"docs/WORKSHOP.md runs no step with --flaw for {missing}"


def test_probe_steps_check_the_robust_parts_only() -> None:
    """A probe step promises its exit status and case ids / verdict words, never a whole
    table row: the probe's layout may change without the documents drifting."""
    for doc in RUNNABLE_DOCS:
        for step in parse_steps(ROOT / doc):
            if step.command.startswith("refcam probe "):
                for text in step.expect:
                    assert "  " not in text, f"{doc}:{step.line} promises a table row {text!r}"


# what the lead adds to the Korean documents' probe commands (the probe's report language
# and time zone): the only difference allowed between the two languages' commands
_PROBE_LOCALE = re.compile(r" --(?:lang|tz)(?:=| )\S+")
_HANGUL = re.compile(r"[\uac00-\ud7a3]")
_FIELD = re.compile(r"\{[^{}]*\}|%(?:\(\w+\))?[-#0 +]*\d*(?:\.\d+)?[sdrfgx]")


def _glob_contains(template: str, fragment: str) -> bool:
    """Can ``fragment`` be part of a line ``template`` prints (its fields filled in any way)?

    A glob match with each ``{field}`` a wildcard, starting and ending anywhere, that
    matches at least three of the template's own characters (or all of a shorter fragment).
    """
    tokens: list[str | None] = []  # a character, or None for a field
    position = 0
    for match in _FIELD.finditer(template):
        tokens.extend(template[position : match.start()])
        tokens.append(None)
        position = match.end()
    tokens.extend(template[position:])
    # states: (token index, literal characters matched so far, capped)
    need = min(3, len(fragment))

    def closure(states: set[tuple[int, int]]) -> set[tuple[int, int]]:
        out = set(states)
        for index, count in states:
            while index < len(tokens) and tokens[index] is None:
                index += 1
                out.add((index, count))
        return out

    states = closure({(i, 0) for i in range(len(tokens) + 1)})
    for char in fragment:
        nxt: set[tuple[int, int]] = set()
        for index, count in states:
            if index < len(tokens):
                token = tokens[index]
                if token is None:
                    nxt.add((index, count))  # the field takes this character
                elif token == char:
                    nxt.add((index + 1, min(count + 1, need)))
        states = closure(nxt)
        if not states:
            return False
    return any(count >= need for _, count in states)


def _catalogue_says(english: str, korean: str, catalogue: dict[str, str]) -> bool:
    """Is ``korean`` the refcam command's Korean (``cli`` catalogue) for the output ``english`` promises?"""
    return bool(_HANGUL.search(korean)) and any(
        _glob_contains(msgid, english) and _glob_contains(msgstr, korean) for msgid, msgstr in catalogue.items()
    )


@pytest.mark.parametrize("korean", sorted(TRANSLATIONS))
def test_korean_doc_runs_the_english_commands(korean: str) -> None:
    """A Korean document is the English one's story: the same commands in the same order,
    the same exit statuses and background servers, as many promises, each the same text
    or the Korean the ``cli`` catalogue gives for it. Only the prose and comments differ
    (and the probe's ``--lang``/``--tz``, once the probe has them)."""
    from babel.messages.mofile import read_mo

    from refcam.i18n import LOCALEDIR

    with (LOCALEDIR / "ko" / "LC_MESSAGES" / "cli.mo").open("rb") as handle:
        catalogue = {str(m.id): str(m.string) for m in read_mo(handle) if isinstance(m.id, str) and m.id}
    english, translated = parse_steps(ROOT / TRANSLATIONS[korean]), parse_steps(ROOT / korean)
    en_commands = [_PROBE_LOCALE.sub("", step.command) for step in english]
    ko_commands = [_PROBE_LOCALE.sub("", step.command) for step in translated]
    assert ko_commands == en_commands, f"{korean} does not run the commands of {TRANSLATIONS[korean]}"
    for en, ko in zip(english, translated, strict=True):
        where = f"{korean}:{ko.line} (English line {en.line})"
        assert (ko.exit_code, ko.background) == (en.exit_code, en.background), where
        assert len(ko.expect) == len(en.expect), f"{where}: promises {ko.expect}, the English {en.expect}"
        for en_text, ko_text in zip(en.expect, ko.expect, strict=True):
            assert en_text == ko_text or _catalogue_says(en_text, ko_text, catalogue), (
                f"{where}: promises {ko_text!r} where the English promises {en_text!r}, "
                "and the cli catalogue does not translate the one to the other"
            )


def test_korean_promise_check_tells_translations_apart() -> None:
    catalogue = {"provisioned {serial} in {state_dir}": "{serial}을(를) {state_dir}에 프로비저닝했습니다",
                 "initial password: {initial_password}": "초기 비밀번호: {initial_password}"}  # fmt: skip
    assert _catalogue_says("provisioned", "프로비저닝했습니다", catalogue)
    assert _catalogue_says("initial password: admin", "초기 비밀번호: admin", catalogue)
    assert not _catalogue_says("provisioned", "초기 비밀번호:", catalogue)  # another message's Korean
    assert not _catalogue_says("provisioned", "provisioned", catalogue)  # not Korean
    assert not _glob_contains("wrote {path}", "nothing like it")


def test_english_and_korean_docs_link_each_other() -> None:
    for korean, english in TRANSLATIONS.items():
        assert f"(ko/{Path(english).name})" in (ROOT / english).read_text("utf-8"), f"{english} does not link {korean}"
        assert f"(../{Path(english).name})" in (ROOT / korean).read_text("utf-8"), f"{korean} does not link {english}"
