"""End to end: the installed ``tech2u-mta`` command, driven with swaks."""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from conftest import delivered

from tech2u_mta.catalogue import R

COMMAND = Path(sys.executable).parent / "tech2u-mta"
# CI installs swaks, so there a missing swaks is a failure, not a skip.
needs_swaks = pytest.mark.skipif(
    shutil.which("swaks") is None and not os.environ.get("CI"), reason="no swaks"
)


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def wait_for_port(port: int, process: subprocess.Popen[str]) -> None:
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise AssertionError(process.communicate()[1])
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            return
        except OSError:
            time.sleep(0.05)
    raise AssertionError("server did not start")


@pytest.fixture
def served(tmp_path: Path) -> Iterator[tuple[int, Path, subprocess.Popen[str]]]:
    """``tech2u-mta serve`` on its defaults but the port, in an empty
    folder, so it uses the packaged policies and creates ./mailstore."""
    port = free_port()
    process = subprocess.Popen(
        [str(COMMAND), "serve", "--listen", f"127.0.0.1:{port}"],
        cwd=tmp_path,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        wait_for_port(port, process)
        yield port, tmp_path / "mailstore", process
    finally:
        if process.poll() is None:
            process.send_signal(signal.SIGTERM)
            process.wait(timeout=20)


def swaks(port: int, *args: str) -> str:
    result = subprocess.run(
        [
            "swaks",
            "--server",
            f"127.0.0.1:{port}",
            "--hide-informational",
            "--suppress-data",
            *args,
        ],
        capture_output=True,
        text=True,
        timeout=60,
    )
    return result.stdout + result.stderr


@needs_swaks
def test_swaks_delivers_to_alice(
    served: tuple[int, Path, subprocess.Popen[str]],
) -> None:
    port, store, _ = served
    out = swaks(port, "--from", "someone@example.com", "--to", "alice@tech2u.com.au")
    assert "<-  250 2.0.0 Message accepted as " in out
    [message] = delivered(store, "alice@tech2u.com.au")
    assert b"Return-Path: <someone@example.com>" in message


@needs_swaks
def test_swaks_sees_disabled_mailbox(
    served: tuple[int, Path, subprocess.Popen[str]],
) -> None:
    port, _, _ = served
    out = swaks(port, "--from", "someone@example.com", "--to", "olduser@tech2u.com.au")
    entry = R.MAILBOX_DISABLED
    assert f"<** {entry.code}-{entry.enhanced} {entry.text}" in out
    assert f"emailerrorcodes.html#{entry.code}" in out


@needs_swaks
def test_blocklisted_client_via_swaks(
    served: tuple[int, Path, subprocess.Popen[str]],
) -> None:
    port, _, _ = served
    out = swaks(port, "--local-interface", "127.0.0.2", "--to", "alice@tech2u.com.au")
    assert (
        f"<** {R.BLOCKLISTED.code}-{R.BLOCKLISTED.enhanced} {R.BLOCKLISTED.text}" in out
    )


def test_sigterm_says_421_to_connected_clients(
    served: tuple[int, Path, subprocess.Popen[str]],
) -> None:
    port, _, process = served
    with socket.create_connection(("127.0.0.1", port), timeout=10) as client:
        reader = client.makefile("rb")
        assert reader.readline().startswith(b"220 ")
        process.send_signal(signal.SIGTERM)
        lines = reader.read().decode().splitlines()
    assert lines[0].startswith(f"421-{R.SHUTTING_DOWN.enhanced} ")
    assert process.wait(timeout=20) == 0


@pytest.mark.parametrize(
    ("config", "expected"),
    [
        ("[server]\nlisten = 127.0.0.1:2525\nbogus = 1\n", ":3: bogus: unknown key"),
        ("[server]\npolicies = nowhere\n", "nowhere: policy folder not found"),
    ],
)
def test_bad_config_exits_2_with_one_line(
    tmp_path: Path, config: str, expected: str
) -> None:
    path = tmp_path / "bad.ini"
    path.write_text(config)
    result = subprocess.run(
        [str(COMMAND), "serve", "--config", str(path)],
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert result.returncode == 2
    assert "Traceback" not in result.stderr
    [line] = result.stderr.strip().splitlines()
    assert line.startswith("tech2u-mta: ") and expected in line


def test_bad_policy_file_exits_2(tmp_path: Path) -> None:
    policies = tmp_path / "policies"
    shutil.copytree(Path(__file__).resolve().parent.parent / "policies", policies)
    (policies / "blocklist").write_text("203.0.113.5/24\n")
    result = subprocess.run(
        [str(COMMAND), "serve"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert result.returncode == 2
    assert result.stderr.strip() == (
        "tech2u-mta: policies/blocklist:1: network: '203.0.113.5/24' has host "
        "bits set; write the network 203.0.113.0/24 or the single address 203.0.113.5"
    )


def test_python_dash_m_runs_the_same_cli() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "tech2u_mta", "serve", "--help"],
        capture_output=True,
        text=True,
        timeout=30,
        env={**os.environ},
    )
    assert result.returncode == 0 and "--listen" in result.stdout
