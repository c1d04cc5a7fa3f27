"""The documents are tests: their marked command blocks run as written.

``docrunner`` (next to this file) extracts the blocks marked
``<!-- doc-test -->`` and runs them step by step in a temporary directory
on loopback, with ``.venv/bin`` first on PATH (what ``. .venv/bin/activate``
gives a reader), checking each step's promised exit status and output. A
document whose commands or outputs drift from the code fails here.
"""

from __future__ import annotations

import os
import resource
import sys
import time
from pathlib import Path

import pytest

from tests.docs.docrunner import DocRun, Step, parse_steps

ROOT = Path(__file__).resolve().parents[2]
RUNNABLE_DOCS = ("README.md", "docs/WORKSHOP.md", "docs/LAB_GUIDE.md")
# What one document may cost. CPU seconds of every command and server it runs (the
# descendants' rusage): what "fast enough on 2 cores" means, whatever else the machine
# runs. The wall-clock limit only catches a run that hangs or waits on nothing.
CPU_BUDGET_S = 180.0
WALL_LIMIT_S = 600.0


def _env(home: Path) -> dict[str, str]:
    venv_bin = str(Path(sys.executable).parent)
    keep = {k: v for k, v in os.environ.items() if k in ("LANG", "LC_ALL", "TZ", "TMPDIR")}
    return {
        **keep,
        "PATH": f"{venv_bin}:/usr/local/bin:/usr/bin:/bin",
        "HOME": str(home),
        "PYTHONPATH": str(ROOT),
        "PYTHONUNBUFFERED": "1",
    }


def run_document(path: Path, workdir: Path) -> list[tuple[Step, str]]:
    steps = parse_steps(path)
    run = DocRun(workdir, _env(workdir))
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
    run_document(path, tmp_path)
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
