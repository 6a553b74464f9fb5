"""``serve --workers 2``: one port, two processes, quotas kept across them."""

from __future__ import annotations

import asyncio
import re
import shutil
import signal
import subprocess
from pathlib import Path

import aiosmtplib
from conftest import POLICIES
from test_cli import COMMAND, free_port, wait_for_port

from tech2u_mta.catalogue import R

QUOTA = 20 * 1024
BODY = b"\r\n".join([b"y" * 70] * 20)  # about 1.4 KB with the headers


async def send(port: int, number: int) -> str:
    message = b"Subject: %d\r\n\r\n%s\r\n" % (number, BODY)
    try:
        await aiosmtplib.send(
            message,
            sender="s@example.com",
            recipients=["tiny@tech2u.com.au"],
            hostname="127.0.0.1",
            port=port,
            timeout=20,
        )
    except aiosmtplib.SMTPRecipientsRefused as err:
        refused = err.recipients[0]  # refused at RCPT
        return f"{refused.code} {refused.message.split()[0]}"
    except aiosmtplib.SMTPResponseException as err:  # refused after the dot
        return f"{err.code} {err.message.split()[0]}"
    return "250"


def test_two_workers_share_the_port_and_the_quota(tmp_path: Path) -> None:
    policies = tmp_path / "policies"
    shutil.copytree(POLICIES, policies)
    with (policies / "mailboxes").open("a") as file:
        file.write(f"tiny@tech2u.com.au active {QUOTA}\n")
    port = free_port()
    process = subprocess.Popen(
        [str(COMMAND), "serve", "--workers", "2", "--listen", f"127.0.0.1:{port}"],
        cwd=tmp_path,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        wait_for_port(port, process)  # type: ignore[arg-type]

        async def load() -> list[str]:
            return await asyncio.gather(*(send(port, n) for n in range(60)))

        results = asyncio.run(load())
    finally:
        process.send_signal(signal.SIGTERM)
        _, log = process.communicate(timeout=30)
    assert process.returncode == 0

    new = tmp_path / "mailstore" / "tech2u.com.au" / "tiny" / "new"
    stored = list(new.iterdir())
    used = sum(path.stat().st_size for path in stored)
    accepted = results.count("250")
    refused = f"{R.MAILBOX_FULL.code} {R.MAILBOX_FULL.enhanced}"
    assert accepted == len(stored) > 0
    assert used <= QUOTA < used + stored[0].stat().st_size
    assert results.count(refused) == len(results) - accepted
    # Both workers answered: their pids stand in the decision lines.
    pids = set(re.findall(r"\[(\d+)\] INFO tech2u_mta.decision", log))
    assert len(pids) == 2
