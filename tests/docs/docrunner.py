"""Run the documentation's command blocks as written, and check what they promise.

A block is runnable when the line before its opening fence is the marker
``<!-- doc-test -->``. Each line of such a block is one step, run by
``bash`` in one temporary directory shared by every block of the document
(a document is one story: later steps use the files earlier ones made).

What a step promises is written in its comment, after ``->``::

    refcam device label --state EX1          # the sticker -> "initial password: admin"
    refcam probe https://localhost:8444 ...  # -> exit 1, "FAIL"

``exit N`` is the exit status (default 0); each ``"text"`` must appear in the
step's output (stdout and stderr together). A step ending in ``&`` starts a
server in the background: the runner keeps its process group, waits until
its ``--port`` answers, and kills it when the document is done. Exported
variables (``export T=...``) carry over to the next steps.

The documents use fixed ports (8443 to 8463 for cameras, 9443 to 9446 for
vendor servers); the runner maps them to free ports of this machine, so runs
in parallel do not collide. 8443 to 8463 map to one contiguous block, so "the
management port + 1" (the plaintext-http flaw's listener) stays true after
mapping.
"""

from __future__ import annotations

import os
import random
import re
import shlex
import signal
import socket
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path

MARKER = "<!-- doc-test -->"
CAMERA_PORTS = range(8443, 8464)  # one contiguous block after mapping
DOC_PORTS = (*CAMERA_PORTS, *range(9443, 9447))
STEP_TIMEOUT = 120.0  # seconds for one foreground step
START_TIMEOUT = 60.0  # seconds for a background server to listen
_PROMISE = re.compile(r'exit\s+(\d+)|"([^"]*)"')


@dataclass(frozen=True)
class Step:
    doc: str
    line: int  # 1-based line in the document
    command: str
    exit_code: int = 0
    expect: tuple[str, ...] = ()
    background: bool = False


def _split_comment(text: str) -> tuple[str, str]:
    """``command  # comment`` -> (command, comment), respecting shell quoting."""
    quote = ""
    for i, ch in enumerate(text):
        if quote:
            if ch == quote:
                quote = ""
        elif ch in ("'", '"'):
            quote = ch
        elif ch == "#" and (i == 0 or text[i - 1].isspace()):
            return text[:i].rstrip(), text[i + 1 :].strip()
    return text.rstrip(), ""


def parse_steps(path: Path) -> list[Step]:
    """The steps of every marked block in ``path``, in order."""
    lines = path.read_text("utf-8").splitlines()
    steps: list[Step] = []
    i = 0
    while i < len(lines):
        if lines[i].strip() != MARKER:
            i += 1
            continue
        if i + 1 >= len(lines) or not lines[i + 1].startswith("```"):
            raise ValueError(f"{path}:{i + 1}: {MARKER} must be followed by a fenced block")
        i += 2
        while i < len(lines) and not lines[i].startswith("```"):
            raw = lines[i]
            command, comment = _split_comment(raw)
            if command:
                exit_code, expect = 0, []
                if "->" in comment:
                    for number, text in _PROMISE.findall(comment.split("->", 1)[1]):
                        if number:
                            exit_code = int(number)
                        else:
                            expect.append(text)
                background = command.endswith("&") and not command.endswith("&&")
                steps.append(
                    Step(
                        doc=path.name,
                        line=i + 1,
                        command=command[:-1].rstrip() if background else command,
                        exit_code=exit_code,
                        expect=tuple(expect),
                        background=background,
                    )
                )
            i += 1
        i += 1
    return steps


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _port_map() -> dict[int, int]:
    """Doc port -> free port; the camera ports keep their offsets (one free block)."""
    block = list(CAMERA_PORTS)
    rng = random.SystemRandom()
    for _ in range(200):
        # Below the kernel's ephemeral range (32768+), where outgoing connections
        # and other tests' port-0 listeners would take ports between check and use.
        base = rng.randrange(20000, 32000 - len(block))
        socks: list[socket.socket] = []
        try:
            for offset in range(len(block)):
                sock = socket.socket()
                socks.append(sock)
                sock.bind(("127.0.0.1", base + offset))
        except OSError:
            continue
        finally:
            for sock in socks:
                sock.close()
        mapping = {p: base + (p - 8443) for p in block}
        mapping.update({p: _free_port() for p in DOC_PORTS if p not in mapping})
        return mapping
    raise RuntimeError("no block of free ports on 127.0.0.1")


@dataclass
class DocRun:
    """One document's run: a directory, its environment and its servers."""

    workdir: Path
    env: dict[str, str]
    ports: dict[int, int] = field(default_factory=_port_map)
    servers: list[tuple[subprocess.Popen[bytes], Step]] = field(default_factory=list)

    def localize(self, command: str) -> str:
        """The doc's fixed ports -> this run's free ones."""
        return re.sub(
            r"(?<![\d.])(" + "|".join(str(p) for p in DOC_PORTS) + r")(?!\d)",
            lambda m: str(self.ports[int(m.group(1))]),
            command,
        )

    def _script(self, command: str) -> str:
        env_file = self.workdir / ".doc-env.sh"
        return (
            f"[ -f {shlex.quote(str(env_file))} ] && . {shlex.quote(str(env_file))}\n"
            f"{command}\n"
            "rc=$?\n"
            f"export -p > {shlex.quote(str(env_file))}\n"
            "exit $rc\n"
        )

    def run(self, step: Step) -> str:
        """Run one step; raises AssertionError naming the doc line when it breaks its promise."""
        command = self.localize(step.command)
        where = f"{step.doc}:{step.line}: {step.command}"
        if step.background:
            log = (self.workdir / f".server-{step.line}.log").open("wb")
            env_file = self.workdir / ".doc-env.sh"
            script = (f". {shlex.quote(str(env_file))}\n" if env_file.exists() else "") + f"exec {command}\n"
            proc = subprocess.Popen(
                ["bash", "-c", script], cwd=self.workdir, env=self.env, stdout=log,
                stderr=subprocess.STDOUT, start_new_session=True,
            )  # fmt: skip
            self.servers.append((proc, step))
            port = re.search(r"--port\s+(\d+)", command)
            if port:
                self._wait_for(int(port.group(1)), proc, where, self.workdir / f".server-{step.line}.log")
            return ""
        try:
            done = subprocess.run(
                ["bash", "-c", self._script(command)], cwd=self.workdir, env=self.env,
                capture_output=True, timeout=STEP_TIMEOUT, check=False,
            )  # fmt: skip
        except subprocess.TimeoutExpired as exc:
            raise AssertionError(f"{where}\n  did not finish in {STEP_TIMEOUT} s") from exc
        output = done.stdout.decode("utf-8", "replace") + done.stderr.decode("utf-8", "replace")
        if done.returncode != step.exit_code:
            raise AssertionError(
                f"{where}\n  exited {done.returncode}, the doc promises {step.exit_code}\n"
                f"  output:\n{_indent(output)}"
            )
        for text in step.expect:
            if text not in output:
                raise AssertionError(
                    f"{where}\n  the doc promises {text!r} in the output; it printed:\n{_indent(output)}"
                )
        return output

    def _wait_for(self, port: int, proc: subprocess.Popen[bytes], where: str, log: Path) -> None:
        deadline = time.monotonic() + START_TIMEOUT
        while time.monotonic() < deadline:
            if proc.poll() is not None:
                output = log.read_text("utf-8", "replace")
                raise AssertionError(
                    f"{where}\n  exited {proc.returncode} before listening; it printed:\n{_indent(output)}"
                )
            with socket.socket() as sock:
                sock.settimeout(0.5)
                if sock.connect_ex(("127.0.0.1", port)) == 0:
                    return
            time.sleep(0.2)
        raise AssertionError(f"{where}\n  not listening on {port} after {START_TIMEOUT} s")

    def stop_servers(self) -> None:
        """SIGTERM every server's process group, then SIGKILL what is left."""
        for proc, _ in self.servers:
            if proc.poll() is None:
                with _quiet():
                    os.killpg(proc.pid, signal.SIGTERM)
        for proc, _ in self.servers:
            try:
                proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                with _quiet():
                    os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()
        self.servers.clear()


class _quiet:
    """Suppress ProcessLookupError only: the group is already gone."""

    def __enter__(self) -> None:
        return None

    def __exit__(self, exc_type: object, exc: object, tb: object) -> bool:
        return exc_type is ProcessLookupError


def _indent(text: str) -> str:
    """The output as the failure shows it: long outputs keep their head and tail, and every
    line that names a FAIL or INCONCLUSIVE verdict in between (a probe table is long)."""
    lines = text.strip().splitlines()
    if len(lines) > 60:
        middle = [line for line in lines[20:-30] if " FAIL " in line or "INCONCLUSIVE" in line]
        lines = [*lines[:20], "...", *middle, "...", *lines[-30:]]
    return "\n".join("    " + line for line in lines)
