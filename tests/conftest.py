"""Shared fixtures: a real server on a free loopback port, real clients."""

from __future__ import annotations

import contextlib
import smtplib
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from tech2u_mta.catalogue import Entry
from tech2u_mta.policy import load_folder
from tech2u_mta.testing import ThreadedServer, make_config, threaded

ROOT = Path(__file__).resolve().parent.parent
POLICIES = ROOT / "policies"

# Loopback addresses that play the demo world's clients (Linux routes all of
# 127.0.0.0/8 to the loopback interface, so a client can bind to any).
INSIDE = "127.0.0.1"  # the TECH 2U network
BLOCKED = "127.0.0.2"  # on the blocklist
OUTSIDE = "127.0.0.3"  # anywhere else


@pytest.fixture
def mail_store(tmp_path: Path) -> Path:
    return tmp_path / "mailstore"


@pytest.fixture
def server(mail_store: Path) -> Iterator[ThreadedServer]:
    config = make_config(mail_store)
    with threaded(config, load_folder(POLICIES, config.default_quota)) as running:
        yield running


Connect = Callable[..., smtplib.SMTP]


@pytest.fixture
def connect(server: ThreadedServer) -> Iterator[Connect]:
    """``connect(source=OUTSIDE)``: an smtplib client from that address,
    with the greeting it got in ``client.greeting``."""
    clients: list[smtplib.SMTP] = []

    def make(source: str = INSIDE, ehlo: bool = True) -> smtplib.SMTP:
        client = smtplib.SMTP(timeout=10, source_address=(source, 0))
        clients.append(client)
        client.greeting = client.connect(*server.address)  # type: ignore[attr-defined]
        if ehlo and client.greeting[0] == 220:  # type: ignore[attr-defined]
            client.ehlo("client.example.com")
        return client

    yield make
    for client in clients:
        with contextlib.suppress(OSError):
            client.close()


def delivered(mail_store: Path, address: str) -> list[bytes]:
    """The messages in the ``new/`` folder of ``address``'s Maildir."""
    local, domain = address.split("@")
    folder = mail_store / domain / local / "new"
    if not folder.is_dir():
        return []
    return [p.read_bytes() for p in sorted(folder.iterdir())]


def leftovers(mail_store: Path) -> list[Path]:
    """Files in any ``tmp/`` or the spool: must be none between sessions."""
    return [
        *mail_store.glob("*/*/tmp/*"),
        *(mail_store / ".incoming").glob("*"),
    ]


def assert_reply(reply: tuple[int, bytes], entry: Entry) -> None:
    """The reply is the catalogue's ``entry``: code, enhanced code, text."""
    code, text = reply
    assert code == entry.code, (code, text)
    lines = text.decode().splitlines()
    if entry.enhanced:
        assert all(line.startswith(entry.enhanced + " ") for line in lines), lines
        lines = [line[len(entry.enhanced) + 1 :] for line in lines]
    if "{" not in entry.text:
        assert lines[0] == entry.text, lines
