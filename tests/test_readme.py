"""The README's examples print what the README says they print.

Each ``console`` block of the README runs in one bash, in a folder with the
demo policies and the project's ``.venv``, against a fresh ``tech2u-mta
serve``; references and message ids are masked.
"""

from __future__ import annotations

import re
import shutil
import signal
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest
from conftest import ROOT
from test_cli import COMMAND, free_port, needs_swaks, wait_for_port

README = ROOT / "README.md"
MARK = "@@next-command@@"
VARIABLE = re.compile(r"\b(?=[0-9A-F]*[0-9])[0-9A-F]{8}(?:[0-9A-F]{4})?\b")


def console_blocks() -> list[list[tuple[str, list[str]]]]:
    """[(command, expected lines), ...] for each console block."""
    blocks = []
    for body in re.findall(r"```console\n(.*?)```", README.read_text(), re.S):
        steps: list[tuple[str, list[str]]] = []
        for line in body.splitlines():
            if line.startswith("$ "):
                steps.append((line[2:], []))
            else:
                steps[-1][1].append(line)
        blocks.append(steps)
    return blocks


@pytest.fixture(scope="module")
def port(tmp_path_factory: pytest.TempPathFactory) -> Iterator[int]:
    folder = tmp_path_factory.mktemp("readme")
    (folder / "policies").symlink_to(ROOT / "policies")
    chosen = free_port()
    process = subprocess.Popen(
        [str(COMMAND), "serve", "--listen", f"127.0.0.1:{chosen}"],
        cwd=folder,
        stderr=subprocess.DEVNULL,
    )
    wait_for_port(chosen, process)
    yield chosen
    process.send_signal(signal.SIGTERM)
    process.wait(timeout=20)


def mask(text: str) -> str:
    return VARIABLE.sub("<VAR>", text)


@needs_swaks
@pytest.mark.parametrize("block", console_blocks())
def test_walkthrough_block(
    block: list[tuple[str, list[str]]], port: int, tmp_path: Path
) -> None:
    assert shutil.which("bash")
    (tmp_path / "policies").symlink_to(ROOT / "policies")
    (tmp_path / ".venv").symlink_to(ROOT / ".venv")
    script = "\n".join(
        f"echo {MARK}; {{ {command.replace('2525', str(port))}; }} </dev/null 2>&1"
        for command, _ in block
    )
    result = subprocess.run(
        ["bash", "-c", script],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=120,
    )
    outputs = result.stdout.split(MARK + "\n")[1:]
    assert len(outputs) == len(block)
    for (command, expected), output in zip(block, outputs, strict=True):
        assert mask(output).splitlines() == [mask(line) for line in expected], command


def test_the_pytest_example_runs(pytester: pytest.Pytester) -> None:
    """The Python blocks of "Testing your mail setup", pasted into one test
    file as a reader would, pass under a nested pytest."""
    text = README.read_text()
    section = text.split("## Testing your mail setup", 1)[1].split("\n## ", 1)[0]
    blocks = re.findall(r"```python\n(.*?)```", section, re.S)
    assert blocks
    pytester.makepyfile(test_mail="\n\n".join(blocks))
    result = pytester.runpytest_subprocess("-q", "-p", "no:cacheprovider")
    result.assert_outcomes(passed=4)
