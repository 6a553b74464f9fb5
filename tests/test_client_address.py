"""The client address the policies see: XCLIENT, PROXY v1 and v2, and the
socket, decided in one place and used by every check and log line."""

from __future__ import annotations

import ipaddress
import shutil
import ssl
import struct
import subprocess
from pathlib import Path

import pytest
from conftest import INSIDE, OUTSIDE, Wire, assert_reply, open_wire, own_server

from tech2u_mta.catalogue import R
from tech2u_mta.testing import ThreadedServer

FAKE = ("MAIL FROM:<alice@tech2u.com.au>", "RCPT TO:<bob@tech2u.com.au>")


def fake_customer_reply(wire: Wire) -> tuple[int, bytes]:
    """EHLO, then a TECH 2U sender: 551 from outside, 250 from inside."""
    wire.command("EHLO client.example.com")
    assert_reply(wire.command(FAKE[0]), R.SENDER_OK)
    return wire.command(FAKE[1])


# -- XCLIENT -----------------------------------------------------------------


def test_xclient_is_advertised_to_trusted_hosts(server: ThreadedServer) -> None:
    wire = open_wire(server.address, INSIDE, ehlo=False)
    code, text = wire.command("EHLO client.example.com")
    assert b"XCLIENT NAME ADDR PROTO HELO LOGIN" in text


def test_xclient_addr_outside_gets_551(server: ThreadedServer) -> None:
    wire = open_wire(server.address, INSIDE)
    assert_reply(
        wire.command("XCLIENT ADDR=203.0.113.5 HELO=mx.example.net"), R.GREETING
    )
    assert_reply(fake_customer_reply(wire), R.FAKE_CUSTOMER)


def test_xclient_addr_inside_lifts_551(server: ThreadedServer) -> None:
    wire = open_wire(server.address, OUTSIDE)
    assert_reply(wire.command("XCLIENT ADDR=127.0.0.1"), R.GREETING)
    assert_reply(fake_customer_reply(wire), R.RECIPIENT_OK)


@pytest.mark.parametrize(
    "addr", ["192.0.2.9", "IPV6:2001:db8:bad::1", "::ffff:192.0.2.1"]
)
def test_xclient_blocklisted_addr_gets_554_then_503(
    server: ThreadedServer, addr: str
) -> None:
    wire = open_wire(server.address, INSIDE)
    assert_reply(wire.command(f"XCLIENT ADDR={addr}"), R.BLOCKLISTED)
    assert_reply(wire.command("EHLO client.example.com"), R.REFUSED_SESSION)


def test_xclient_login_counts_as_authenticated(server: ThreadedServer) -> None:
    wire = open_wire(server.address, INSIDE)
    assert_reply(wire.command("XCLIENT ADDR=203.0.113.5 LOGIN=alice"), R.GREETING)
    assert_reply(fake_customer_reply(wire), R.RECIPIENT_OK)


def test_xclient_resets_the_session(server: ThreadedServer) -> None:
    wire = open_wire(server.address, INSIDE)
    assert_reply(wire.command("XCLIENT NAME=mx.example.net"), R.GREETING)
    assert_reply(wire.command("MAIL FROM:<a@example.com>"), R.NEED_HELO)


def test_xclient_inside_a_transaction_is_refused(server: ThreadedServer) -> None:
    wire = open_wire(server.address, INSIDE)
    wire.command("MAIL FROM:<a@example.com>")
    assert_reply(wire.command("XCLIENT ADDR=203.0.113.5"), R.XCLIENT_IN_TRANSACTION)


@pytest.mark.parametrize("arg", ["", "FOO=1", "ADDR=nowhere", "HELO=a+0Db"])
def test_xclient_bad_arguments(server: ThreadedServer, arg: str) -> None:
    wire = open_wire(server.address, INSIDE)
    assert_reply(wire.command(f"XCLIENT {arg}".strip()), R.BAD_ARGUMENTS)


def test_xclient_from_an_untrusted_host_is_refused(mail_store: Path) -> None:
    with own_server(mail_store, xclient_hosts=("127.0.0.1",)) as running:
        wire = open_wire(running.address, OUTSIDE, ehlo=False)
        code, text = wire.command("EHLO client.example.com")
        assert b"XCLIENT" not in text
        assert_reply(wire.command("XCLIENT ADDR=127.0.0.1"), R.XCLIENT_DENIED)
        # The address it tried to claim did not stick.
        assert_reply(fake_customer_reply(wire), R.FAKE_CUSTOMER)


def test_xclient_address_is_the_one_logged(
    server: ThreadedServer, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level("INFO", logger="tech2u_mta.decision")
    wire = open_wire(server.address, INSIDE)
    wire.command("XCLIENT ADDR=203.0.113.5")
    fake_customer_reply(wire)
    [line] = [r.getMessage() for r in caplog.records if "stage=rcpt" in r.getMessage()]
    assert "client=203.0.113.5 peer=127.0.0.1" in line


@pytest.mark.skipif(shutil.which("swaks") is None, reason="no swaks")
def test_swaks_xclient_addr(server: ThreadedServer) -> None:
    host, port = server.address
    result = subprocess.run(
        [
            "swaks",
            "--server",
            f"{host}:{port}",
            "--silent",
            "2",
            "--xclient-addr",
            "192.0.2.7",
            "--to",
            "alice@tech2u.com.au",
        ],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert f"{R.BLOCKLISTED.code}-{R.BLOCKLISTED.enhanced} {R.BLOCKLISTED.text}" in (
        result.stdout
    )


# -- PROXY protocol ----------------------------------------------------------


def proxy_v1(source: str) -> bytes:
    family = "TCP6" if ":" in source else "TCP4"
    target = "::1" if ":" in source else "127.0.0.1"
    return f"PROXY {family} {source} {target} 40000 25\r\n".encode()


def proxy_v2(source: str) -> bytes:
    """A binary v2 header for a TCP connection from ``source``."""
    address = ipaddress.ip_address(source)
    if address.version == 4:
        family, target = 0x11, ipaddress.ip_address("127.0.0.1")
    else:
        family, target = 0x21, ipaddress.ip_address("::1")
    body = address.packed + target.packed + struct.pack("!HH", 40000, 25)
    signature = b"\r\n\r\n\x00\r\nQUIT\n"
    return signature + bytes([0x21, family]) + struct.pack("!H", len(body)) + body


def proxied(address: tuple[str, int], header: bytes, source: str = INSIDE) -> Wire:
    wire = Wire(address, source)
    wire.send(header)
    return wire


@pytest.mark.parametrize("header", [proxy_v1, proxy_v2])
def test_proxy_header_names_the_client(mail_store: Path, header) -> None:  # type: ignore[no-untyped-def]
    with own_server(mail_store, proxy_protocol=True) as running:
        blocked = proxied(running.address, header("192.0.2.7"))
        assert_reply(blocked.reply(), R.BLOCKLISTED)
        blocked6 = proxied(running.address, header("2001:db8:bad::7"))
        assert_reply(blocked6.reply(), R.BLOCKLISTED)
        outside = proxied(running.address, header("203.0.113.5"))
        assert_reply(outside.reply(), R.GREETING)
        assert_reply(fake_customer_reply(outside), R.FAKE_CUSTOMER)


def test_proxy_from_an_untrusted_host_is_refused(mail_store: Path) -> None:
    with own_server(
        mail_store, proxy_protocol=True, proxy_hosts=("127.0.0.1",)
    ) as running:
        wire = proxied(running.address, proxy_v1("127.0.0.1"), source=OUTSIDE)
        assert_reply(wire.reply(), R.PROXY_DENIED)
        assert wire.rest() == b""


def test_missing_proxy_header_is_refused(mail_store: Path) -> None:
    with own_server(mail_store, proxy_protocol=True) as running:
        wire = proxied(running.address, b"EHLO client.example.com\r\n")
        assert_reply(wire.reply(), R.PROXY_DENIED)


def test_proxy_address_survives_starttls(
    mail_store: Path, certificate: tuple[Path, Path]
) -> None:
    cert, key = certificate
    with own_server(
        mail_store, proxy_protocol=True, tls_cert=cert, tls_key=key
    ) as running:
        wire = proxied(running.address, proxy_v1("203.0.113.5"))
        assert_reply(wire.reply(), R.GREETING)
        wire.command("EHLO client.example.com")
        assert_reply(wire.command("STARTTLS"), R.TLS_READY)
        context = ssl._create_unverified_context()
        wire.sock = context.wrap_socket(wire.sock, server_hostname="localhost")
        wire.file = wire.sock.makefile("rb")
        assert_reply(fake_customer_reply(wire), R.FAKE_CUSTOMER)
        wire.close()
