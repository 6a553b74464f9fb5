"""SIGKILL at any moment: every message is whole in new/ or nowhere a mail
reader looks, every acknowledged one is there, and a restart cleans up."""

from __future__ import annotations

import asyncio
import os
import re
import signal
import subprocess
from pathlib import Path

import aiosmtplib
import pytest
from conftest import ROOT, leftovers
from test_cli import COMMAND, free_port, wait_for_port

BODY = b"\r\n".join([b"x" * 76] * 300)  # about 23 KB


def start(folder: Path, port: int) -> subprocess.Popen[bytes]:
    process = subprocess.Popen(
        [str(COMMAND), "serve", "--listen", f"127.0.0.1:{port}"],
        cwd=folder,
        stderr=subprocess.DEVNULL,
    )
    wait_for_port(port, process)  # type: ignore[arg-type]
    return process


async def send_until_refused(port: int, worker: int, acknowledged: list[str]) -> None:
    """Send messages one after another until the server is gone."""
    for number in range(10_000):
        tag = f"end {worker}-{number}"
        message = b"Subject: m\r\n\r\n%s\r\n%s\r\n" % (BODY, tag.encode())
        try:
            await aiosmtplib.send(
                message,
                sender="s@example.com",
                recipients=["alice@tech2u.com.au"],
                hostname="127.0.0.1",
                port=port,
                timeout=10,
            )
        except (aiosmtplib.SMTPException, OSError):
            return
        acknowledged.append(tag)


@pytest.mark.parametrize("delay", [0.0, 0.13])
def test_sigkill_mid_load(tmp_path: Path, delay: float) -> None:
    (tmp_path / "policies").symlink_to(ROOT / "policies")
    port = free_port()
    process = start(tmp_path, port)
    acknowledged: list[str] = []

    async def run() -> None:
        load = asyncio.gather(
            *(send_until_refused(port, n, acknowledged) for n in range(8))
        )
        # Kill once deliveries are flowing, however slow the machine is,
        # then at a moment that differs between the two runs.
        for _ in range(400):
            if len(acknowledged) >= 10:
                break
            await asyncio.sleep(0.05)
        await asyncio.sleep(delay)
        os.kill(process.pid, signal.SIGKILL)
        await asyncio.wait_for(load, 30)

    asyncio.run(run())
    process.wait(timeout=10)
    new = tmp_path / "mailstore" / "tech2u.com.au" / "alice" / "new"
    stored = [p.read_bytes() for p in new.iterdir()] if new.is_dir() else []
    for path, message in zip(
        new.iterdir() if new.is_dir() else [], stored, strict=False
    ):
        size = int(re.search(r",S=(\d+)", path.name).group(1))  # type: ignore[union-attr]
        assert len(message) == size
        assert re.search(rb"\r\nend \d+-\d+\r\n$", message), "cut short"
    texts = {m.rsplit(b"\r\n", 2)[-2].decode() for m in stored}
    assert len(acknowledged) >= 10, "the kill came before any delivery"
    assert set(acknowledged) <= texts, "a message acknowledged with 250 is missing"

    restarted = start(tmp_path, port)
    try:
        assert leftovers(tmp_path / "mailstore") == []
    finally:
        restarted.send_signal(signal.SIGTERM)
        restarted.wait(timeout=20)
