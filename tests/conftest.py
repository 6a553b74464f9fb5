"""Shared fixtures: a real server on a free loopback port, real clients."""

from __future__ import annotations

import contextlib
import shutil
import smtplib
import socket
import subprocess
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import IO

import pytest

from tech2u_mta.catalogue import Entry, R
from tech2u_mta.policy import Policies, load_folder
from tech2u_mta.testing import ThreadedServer, make_config, threaded

Reply = tuple[int, bytes]

ROOT = Path(__file__).resolve().parent.parent
POLICIES = ROOT / "policies"

# Loopback addresses that play the demo world's clients (Linux routes all of
# 127.0.0.0/8 to the loopback interface, so a client can bind to any).
INSIDE = "127.0.0.1"  # the TECH 2U network
BLOCKED = "127.0.0.2"  # on the blocklist
OUTSIDE = "127.0.0.3"  # anywhere else


@pytest.fixture(autouse=True)
def replies_are_valid_for_their_commands(
    caplog: pytest.LogCaptureFixture,
) -> Iterator[None]:
    """Every test fails if the server gave a reply code RFC 5321 4.3.2 does
    not allow for the command it answered (the server logs each one)."""
    caplog.set_level("ERROR", logger="tech2u_mta.error")
    yield
    invalid = [
        r.getMessage() for r in caplog.records if "is not valid for" in r.getMessage()
    ]
    assert invalid == []


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


# -- a raw client and servers of a test's own ------------------------------


class Wire:
    """A client that sends exactly the bytes it is given and reads replies
    one at a time, shaped as smtplib returns them: (code, lines without the
    code, joined by LF)."""

    def __init__(self, address: tuple[str, int], source: str = INSIDE) -> None:
        self.sock = socket.create_connection(
            address, timeout=10, source_address=(source, 0)
        )
        self.file: IO[bytes] = self.sock.makefile("rb")

    def send(self, data: bytes) -> None:
        self.sock.sendall(data)

    def reply(self) -> Reply:
        texts = []
        while True:
            line = self.file.readline(2048)
            if not line.endswith(b"\r\n"):
                raise ConnectionError(f"connection ended inside a reply: {line!r}")
            texts.append(line[4:-2])
            if line[3:4] == b" ":
                return int(line[:3]), b"\n".join(texts)

    def command(self, line: str | bytes) -> Reply:
        self.send((line.encode() if isinstance(line, str) else line) + b"\r\n")
        return self.reply()

    def rest(self) -> bytes:
        """Everything the server still sends, up to its close."""
        return self.file.read()

    def close(self) -> None:
        self.file.close()
        self.sock.close()


WireFactory = Callable[..., Wire]


def open_wire(
    address: tuple[str, int], source: str = INSIDE, ehlo: bool = True
) -> Wire:
    wire = Wire(address, source)
    greeting = wire.reply()
    if ehlo and greeting[0] == 220:
        assert_reply(wire.command("EHLO client.example.com"), R.EHLO_OK)
    return wire


@contextlib.contextmanager
def own_server(
    mail_store: Path, policies: Policies | None = None, **settings: object
) -> Iterator[ThreadedServer]:
    """A server with ``settings``; the test may stop it early itself."""
    config = make_config(mail_store, **settings)
    if policies is None:
        policies = load_folder(POLICIES, config.default_quota)
    running = ThreadedServer(config, policies)
    running.start()
    try:
        yield running
    finally:
        if not running.loop.is_closed():
            running.stop()


@contextlib.contextmanager
def smtp_session(
    address: tuple[str, int], source: str = INSIDE
) -> Iterator[smtplib.SMTP]:
    """An smtplib client of ``address``, past EHLO, closed afterwards."""
    client = smtplib.SMTP(*address, timeout=10, source_address=(source, 0))
    try:
        client.ehlo("client.example.com")
        yield client
    finally:
        client.close()


@pytest.fixture
def certificate(tmp_path: Path) -> tuple[Path, Path]:
    """A self-signed certificate and key made by the openssl tool."""
    if shutil.which("openssl") is None:
        pytest.skip("no openssl tool to make a certificate")
    cert, key = tmp_path / "cert.pem", tmp_path / "key.pem"
    request = ["req", "-x509", "-nodes", "-days", "1", "-subj", "/CN=localhost"]
    files = ["-newkey", "rsa:2048", "-keyout", str(key), "-out", str(cert)]
    subprocess.run(["openssl", *request, *files], check=True, capture_output=True)
    return cert, key


@pytest.fixture
def raw(server: ThreadedServer) -> Iterator[WireFactory]:
    """``raw(source=OUTSIDE)``: a ``Wire`` to the test server, past EHLO."""
    wires: list[Wire] = []

    def make(source: str = INSIDE, ehlo: bool = True) -> Wire:
        wires.append(open_wire(server.address, source, ehlo))
        return wires[-1]

    yield make
    for wire in wires:
        with contextlib.suppress(OSError):
            wire.close()
