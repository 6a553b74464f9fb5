"""Reloading policies in a running ``tech2u-mta serve``: on a file change,
on SIGHUP, and not at all when the new files are broken."""

from __future__ import annotations

import queue
import shutil
import signal
import smtplib
import subprocess
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from conftest import POLICIES, assert_reply
from test_cli import COMMAND, free_port, wait_for_port

from tech2u_mta.catalogue import R


class Served:
    """A server subprocess whose log lines can be waited for."""

    def __init__(self, folder: Path, watch: bool) -> None:
        self.port = free_port()
        self.policies = folder / "policies"
        shutil.copytree(POLICIES, self.policies)
        config = folder / "server.ini"
        config.write_text(
            f"[server]\nlisten = 127.0.0.1:{self.port}\npolicies = policies\n"
            f"mail_store = mail\nwatch_policies = {'yes' if watch else 'no'}\n"
        )
        self.process = subprocess.Popen(
            [str(COMMAND), "serve", "--config", str(config)],
            stderr=subprocess.PIPE,
            text=True,
        )
        self.lines: queue.Queue[str] = queue.Queue()
        threading.Thread(target=self._read, daemon=True).start()
        wait_for_port(self.port, self.process)

    def _read(self) -> None:
        assert self.process.stderr is not None
        for line in self.process.stderr:
            self.lines.put(line)

    def wait_for(self, text: str, timeout: float = 20) -> str:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                line = self.lines.get(timeout=0.2)
            except queue.Empty:
                continue
            if text in line:
                return line
        raise AssertionError(f"no log line with {text!r}")

    def client(self) -> smtplib.SMTP:
        client = smtplib.SMTP("127.0.0.1", self.port, timeout=10)
        client.ehlo("test")
        client.mail("someone@example.com")
        return client

    def stop(self) -> None:
        self.process.send_signal(signal.SIGTERM)
        self.process.wait(timeout=20)


@pytest.fixture
def watched(tmp_path: Path) -> Iterator[Served]:
    served = Served(tmp_path, watch=True)
    yield served
    served.stop()


@pytest.fixture
def unwatched(tmp_path: Path) -> Iterator[Served]:
    served = Served(tmp_path, watch=False)
    yield served
    served.stop()


def enable_olduser(policies: Path) -> None:
    path = policies / "mailboxes"
    path.write_text(
        path.read_text().replace(
            "olduser@tech2u.com.au   disabled", "olduser@tech2u.com.au   active"
        )
    )


def test_file_change_reloads_and_open_sessions_keep_theirs(watched: Served) -> None:
    before = watched.client()
    assert_reply(before.rcpt("olduser@tech2u.com.au"), R.MAILBOX_DISABLED)
    enable_olduser(watched.policies)
    line = watched.wait_for("policies reloaded on change of mailboxes")
    assert "mailboxes 5->5 (+0 -0 ~1)" in line
    assert_reply(watched.client().rcpt("olduser@tech2u.com.au"), R.RECIPIENT_OK)
    # The session opened before the reload still has the old policies.
    assert_reply(before.rcpt("olduser@tech2u.com.au"), R.MAILBOX_DISABLED)


def test_sighup_reloads(unwatched: Served) -> None:
    enable_olduser(unwatched.policies)
    time.sleep(0.3)
    assert_reply(unwatched.client().rcpt("olduser@tech2u.com.au"), R.MAILBOX_DISABLED)
    unwatched.process.send_signal(signal.SIGHUP)
    unwatched.wait_for("policies reloaded on SIGHUP")
    assert_reply(unwatched.client().rcpt("olduser@tech2u.com.au"), R.RECIPIENT_OK)


def test_broken_reload_keeps_the_old_policies(unwatched: Served) -> None:
    (unwatched.policies / "mailboxes").write_text("olduser@tech2u.com.au  sleeping\n")
    unwatched.process.send_signal(signal.SIGHUP)
    line = unwatched.wait_for("reload on SIGHUP failed")
    assert "mailboxes:1: status: 'sleeping'" in line
    assert_reply(unwatched.client().rcpt("olduser@tech2u.com.au"), R.MAILBOX_DISABLED)
    assert_reply(unwatched.client().rcpt("alice@tech2u.com.au"), R.RECIPIENT_OK)
