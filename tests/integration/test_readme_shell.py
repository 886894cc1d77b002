"""Every shell snippet of the README runs as written, against the real stack (issue 17).

``test_readme_snippets.py`` runs the Python snippets; this runs the ```sh and ```console ones:
each command is read from the README (continuation lines, quotes spanning lines and pipes
joined as a shell would), run by ``bash`` in the checkout with the test's ``TOKENBOARD_*``
variables (its own topic and key prefixes), and must exit 0 without a traceback. Where the
README shows what a command prints (the ``top`` tables, the history, the report, the
gateway's 207 answer) the output must match it.

The one rewrite is the address: the gateway (``tokenboard ingest --port 8081``, started from
the README's own line) and the API run on free ports, not 8081 and 8080, which another run
may hold. Commands that cannot run against a shared stack are skipped, each for a reason
(:func:`classify`); a command the test does not know fails it, so a new snippet cannot go
untested unnoticed.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import re
import shlex
import signal
import sys
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from streams.settings import Settings
from tests.integration.processes import WorkerProcess, free_port

ROOT = Path(__file__).resolve().parents[2]
README = ROOT / "README.md"
BLOCK = re.compile(r"```(sh|console)\n(.*?)```", re.DOTALL)
SEED_TOP3 = ["deepseek/deepseek-v4-flash", "tencent/hy3-preview", "anthropic/claude-sonnet-4.6"]
#: The seed week's top 3 by spend: its priced models are the four US leaders.
SPEND_TOP3 = ["anthropic/claude-sonnet-4.6", "openai/gpt-5.1", "google/gemini-3-flash"]

#: Commands that are not run, by their first words, and why.
SKIPPED = {
    "make": "builds the checkout and runs its own stack, or the whole suite",
    "tokenboard stack": "starts, stops or deletes the shared stack other test runs use",
    "tokenboard worker": "runs until stopped: the test's worker process stands for it",
    "tokenboard simulate": "a minute at 5000 events/s; test_simulate covers the simulator",
    "redis-cli": "reads the default key prefix tb:, not the test's own prefix",
}
#: Commands that run until stopped: started, checked, then stopped.
SERVERS = ("tokenboard ingest",)
FOLLOWERS = ("tokenboard watch", "curl -sN")


@dataclass(frozen=True)
class Command:
    """One command as the README writes it, and the output it shows (console blocks)."""

    text: str
    shown: tuple[str, ...] = ()

    @property
    def words(self) -> list[str]:
        """The command's words (comments dropped)."""
        return shlex.split(self.text, comments=True)


def complete(lines: list[str]) -> bool:
    """Whether these lines make a whole command: quotes closed, no trailing ``\\`` or ``|``."""
    text = "\n".join(lines).rstrip()
    if text.endswith(("\\", "|")):
        return False
    try:
        shlex.split(text, comments=True)
    except ValueError:
        return False
    return True


def commands() -> list[Command]:
    """The commands of the README's ```sh and ```console blocks, in order."""
    found: list[Command] = []
    for kind, body in BLOCK.findall(README.read_text()):
        if kind == "console":
            for chunk in re.split(r"^\$ ", body, flags=re.MULTILINE)[1:]:
                command, *shown = chunk.rstrip("\n").split("\n")
                found.append(Command(command, tuple(shown)))
            continue
        pending: list[str] = []
        for line in body.splitlines():
            if not pending and not line.strip():
                continue
            pending.append(line)
            if complete(pending):
                found.append(Command("\n".join(pending)))
                pending = []
        assert not pending, f"unfinished command in the README: {pending}"
    return found


def classify(command: Command) -> str:
    """``skip``, ``server``, ``follow`` or ``run``."""
    text = " ".join(command.words)
    if any(text == p or text.startswith(p + " ") for p in SKIPPED):
        return "skip"
    if text.startswith(SERVERS):
        return "server"
    if text.startswith(FOLLOWERS):
        return "follow"
    # `export`: the variables a user's own process reads (they must at least be valid shell).
    if command.words[0] in ("tokenboard", "curl", "printf", "export"):
        return "run"
    raise AssertionError(f"README command the doc test does not know: {command.text!r}")


def readme_block(after: str, language: str = "") -> str:
    """The text of the fenced block that follows ``after`` in the README."""
    match = re.search(re.escape(after) + r"\n```" + language + r"\n(.*?)```", README.read_text(),
                      re.DOTALL)  # fmt: skip
    assert match, f"no block after {after!r}"
    return match.group(1)


def in_order(shown: list[str], output: str) -> None:
    """Every shown line (but ``...`` elisions) is a line of ``output``, in the same order."""
    lines = output.splitlines()
    at = 0
    for line in shown:
        if line.strip() in ("...", ""):
            continue
        assert line in lines[at:], f"{line!r} missing from:\n{output}"
        at = lines.index(line, at) + 1


def test_the_scan_finds_every_kind_of_snippet() -> None:
    """The parser joins continued lines and quotes spanning lines; every command is known."""
    found = commands()
    texts = [" ".join(c.words) for c in found]
    assert (
        "tokenboard top -n 5" in texts
        and "tokenboard replay tests/data/seed-2026-w47.json" in texts
    )
    batch = next(c for c in found if '"a3"' in c.text)
    assert batch.text.count("\n") == 2 and batch.words[0] == "curl"
    piped = next(c for c in found if c.text.startswith("printf"))
    assert "|" in piped.words and piped.words[-2:] == ["--data-binary", "@-"]
    top = next(c for c in found if c.text.startswith("tokenboard top -n 5"))
    assert top.shown[0] == "2026-W47 · top 5 models of 76 · total 28.9T"
    kinds = [classify(c) for c in found]
    assert kinds.count("run") >= 14 and "server" in kinds and "follow" in kinds


# Running them ---------------------------------------------------------------------------------
@dataclass
class Shell:
    """Runs README commands with the test's settings, the servers on free ports."""

    settings: Settings
    gateway_port: int
    api_port: int

    def env(self) -> dict[str, str]:
        """The environment: the test's TOKENBOARD_* variables, the checkout's tokenboard."""
        path = f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}"
        return {**os.environ, **self.settings.to_env(), "PATH": path}

    def rewrite(self, text: str) -> str:
        """The command with the servers' ports in place of 8081 and 8080 (nothing else)."""
        text = text.replace("localhost:8081", f"localhost:{self.gateway_port}")
        text = text.replace("--port 8081", f"--port {self.gateway_port}")
        return text.replace("127.0.0.1:8080", f"127.0.0.1:{self.api_port}")

    async def start(self, text: str) -> asyncio.subprocess.Process:
        """Start a command that runs until stopped, in its own process group."""
        return await asyncio.create_subprocess_exec(
            "bash", "-c", "exec " + self.rewrite(text), cwd=ROOT, env=self.env(),
            stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
            start_new_session=True,
        )  # fmt: skip

    async def run(self, text: str, timeout_s: float = 300) -> tuple[str, str]:
        """Run a command to its end; it must exit 0 without a traceback. Its stdout, stderr."""
        proc = await asyncio.create_subprocess_exec(
            "bash", "-c", self.rewrite(text), cwd=ROOT, env=self.env(),
            stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
            start_new_session=True,
        )  # fmt: skip
        try:
            out, err = await asyncio.wait_for(proc.communicate(), timeout_s)
        finally:
            stop(proc)
        assert proc.returncode == 0, (text, out.decode(), err.decode())
        assert b"Traceback" not in err, (text, err.decode())
        return out.decode(), err.decode()


def stop(proc: asyncio.subprocess.Process, sig: int = signal.SIGTERM) -> None:
    """Signal the process group this test started for one command (if it still runs)."""
    if proc.returncode is None:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, sig)


async def wait_ready(port: int, timeout_s: float = 60) -> None:
    """Until ``/readyz`` on ``port`` answers 200."""
    deadline = time.monotonic() + timeout_s
    async with aiohttp.ClientSession() as session:
        while True:
            with contextlib.suppress(aiohttp.ClientError):
                async with session.get(f"http://127.0.0.1:{port}/readyz") as response:
                    if response.status == 200:
                        return
            assert time.monotonic() < deadline, f"nothing ready on port {port}"
            await asyncio.sleep(0.2)


async def read_until(stream: asyncio.StreamReader | None, marker: str, timeout_s: float) -> str:
    """What ``stream`` printed up to and including the line holding ``marker``."""
    assert stream is not None
    seen = ""
    while marker not in seen:
        line = await asyncio.wait_for(stream.readline(), timeout_s)
        assert line, f"the stream ended before {marker!r}: {seen!r}"
        seen += line.decode()
    return seen


@contextlib.asynccontextmanager
async def api_server(shell: Shell) -> AsyncIterator[None]:
    """``tokenboard api`` (the README names it in the text) on the API port."""
    proc = await shell.start(f"tokenboard api --port {shell.api_port}")
    try:
        await wait_ready(shell.api_port)
        yield
    finally:
        stop(proc)
        await proc.wait()


def checks() -> dict[str, Callable[[Command, str], None]]:
    """What the README shows for some commands, by the command's start."""
    report = readme_block("text reads like an industry report:").splitlines()
    answer_207 = json.loads(readme_block("The second request above answers 207:", "json"))

    def same_table(command: Command, out: str) -> None:
        assert out.rstrip("\n").split("\n") == list(command.shown), out

    def shown_lines(command: Command, out: str) -> None:
        in_order(list(command.shown), out)

    def the_report(command: Command, out: str) -> None:
        in_order(report, out)

    def one_accepted(command: Command, out: str) -> None:
        assert json.loads(out)["accepted"] == 1 and json.loads(out)["rejected"] == 0, out

    def the_207(command: Command, out: str) -> None:
        assert json.loads(out) == answer_207

    def two_accepted(command: Command, out: str) -> None:
        assert (json.loads(out)["accepted"], json.loads(out)["rejected"]) == (2, 0), out

    def seed_top3(command: Command, out: str) -> None:
        assert [row["model"] for row in json.loads(out)["rows"]] == SEED_TOP3

    def spend_top3(command: Command, out: str) -> None:
        board = json.loads(out)
        assert board["by"] == "spend" and [r["model"] for r in board["rows"]] == SPEND_TOP3
        assert all(r["cost_micro_usd"] > 0 for r in board["rows"])

    def report_json(command: Command, out: str) -> None:
        body: dict[str, Any] = json.loads(out)
        assert body["week"] == "2026-W47" and body["models"][0]["model"] == SEED_TOP3[0]
        assert out.startswith('{\n    "week"')  # json.tool's indentation

    def dead_letters(command: Command, out: str) -> None:
        assert isinstance(json.loads(out)["dead_letters"], list)

    return {
        "tokenboard top -n 5": same_table,
        "tokenboard top --by country -n 3": same_table,
        "tokenboard top --dim app -n 3": same_table,
        "tokenboard top --by spend -n 5": same_table,
        "tokenboard history --model": shown_lines,
        "tokenboard report --week 2026-W47": the_report,
        "curl -X POST localhost:8081/v1/events -H 'Content-Type: application/json' \\\n  -d '{": (
            one_accepted
        ),
        "curl -X POST localhost:8081/v1/events -H 'Content-Type: application/json' \\\n  -d '[": (
            the_207
        ),
        "printf": two_accepted,
        # The longer prefix first: the spend board's curl would match the shorter one too.
        "curl -s 'http://127.0.0.1:8080/v1/leaderboard/model?week=2026-W47&by=spend": spend_top3,
        "curl -s 'http://127.0.0.1:8080/v1/leaderboard/model": seed_top3,
        "curl -s 'http://127.0.0.1:8080/v1/report": report_json,
        "curl -s 'http://127.0.0.1:8080/v1/dead-letters": dead_letters,
    }


@pytest.mark.slow
async def test_every_shell_snippet_runs_as_written(
    settings: Settings, start_worker: Callable[..., WorkerProcess]
) -> None:
    """With a worker up, the README's commands run in their order: topics, the seed replay,
    the report, dead letters, the gateway and its three curl examples, the terminal views
    (their tables as printed in the README), watch, and the API's curl examples. The ingest
    examples name seed models, so the tables hold whether or not their events are counted
    yet (a model outside the seed made it "top 5 models of 77")."""
    start_worker("w1")
    shell = Shell(settings, free_port(), free_port())
    expected = checks()
    servers: list[asyncio.subprocess.Process] = []
    ran: list[str] = []
    try:
        async with api_server(shell):
            for command in commands():
                kind = classify(command)
                if kind == "skip":
                    continue
                ran.append(command.text)
                if kind == "server":
                    servers.append(await shell.start(command.text))
                    await wait_ready(shell.gateway_port)
                elif kind == "follow":
                    await follow(shell, command)
                else:
                    out, _ = await shell.run(command.text)
                    start = next((p for p in expected if command.text.startswith(p)), None)
                    if start is not None:
                        expected.pop(start)(command, out)
    finally:
        for proc in servers:
            stop(proc)
            await proc.wait()
    assert not expected, f"README commands not found: {list(expected)}"
    assert len(ran) >= 17, ran


async def follow(shell: Shell, command: Command) -> None:
    """Start a command that follows a stream, see it start, stop it as a user would."""
    proc = await shell.start(command.text)
    try:
        if command.words[0] == "curl":
            await read_until(proc.stdout, "event: ready", 30)
            return
        header = await read_until(proc.stderr, "(Ctrl-C to stop)", 60)
        assert header.startswith(f"following {shell.settings.rankings_topic}, "), header
        stop(proc, signal.SIGINT)  # Ctrl-C
        _, err = await asyncio.wait_for(proc.communicate(), 30)
        assert proc.returncode in (0, 130) and b"Traceback" not in err, err.decode()
    finally:
        stop(proc)
        await proc.wait()
