"""The limits of issue "holding up": connections, time, errors, manners.
Each over a real socket against a server with the limit set low."""

from __future__ import annotations

import socket
import time
from pathlib import Path

from conftest import INSIDE, OUTSIDE, Reply, Wire, assert_reply, open_wire, own_server

from tech2u_mta.catalogue import R

ALICE = "alice@tech2u.com.au"


def greeted(address: tuple[str, int], source: str = INSIDE) -> tuple[Wire, Reply]:
    """A new connection and the first reply it gets."""
    wire = Wire(address, source)
    return wire, wire.reply()


def admitted_again(address: tuple[str, int]) -> Wire:
    """A new connection greeted with 220, once the server has seen an
    earlier one close (it counts the close when it sees it)."""
    deadline = time.monotonic() + 5
    while True:
        wire, reply = greeted(address)
        if reply[0] == 220 or time.monotonic() > deadline:
            assert_reply(reply, R.GREETING)
            return wire
        wire.close()
        time.sleep(0.05)


def test_connections_per_client(mail_store: Path) -> None:
    with own_server(mail_store, max_connections_per_client=2) as running:
        (first, _), (second, _) = greeted(running.address), greeted(running.address)
        third, reply = greeted(running.address)
        assert_reply(reply, R.TOO_MANY_CONNECTIONS)
        assert third.rest() == b""
        assert_reply(greeted(running.address, OUTSIDE)[1], R.GREETING)
        first.command("QUIT")
        first.close()
        admitted_again(running.address).close()
        second.close()


def test_connections_in_total(mail_store: Path) -> None:
    with own_server(mail_store, max_connections=2) as running:
        kept = [greeted(running.address)[0], greeted(running.address, OUTSIDE)[0]]
        _, reply = greeted(running.address, "127.0.0.4")
        assert_reply(reply, R.TOO_MANY_CONNECTIONS)
        for wire in kept:
            wire.close()


def test_client_that_speaks_before_the_greeting(mail_store: Path) -> None:
    with own_server(mail_store, pregreet_wait=0.3) as running:
        sock = socket.create_connection(running.address, timeout=10)
        sock.sendall(b"EHLO hasty.example.com\r\n")
        wire = Wire.__new__(Wire)
        wire.sock, wire.file = sock, sock.makefile("rb")
        assert_reply(wire.reply(), R.SPOKE_TOO_SOON)
        assert wire.rest() == b""
        assert_reply(greeted(running.address)[1], R.GREETING)


def test_idle_client_gets_421_then_close(mail_store: Path) -> None:
    with own_server(mail_store, idle_timeout=0.4) as running:
        wire = open_wire(running.address)
        started = time.monotonic()
        assert_reply(wire.reply(), R.TIMEOUT)
        assert time.monotonic() - started >= 0.3
        assert wire.rest() == b""


def test_slow_data_is_not_cut_off_by_the_idle_timeout(mail_store: Path) -> None:
    """RFC 5321 4.5.3.2: the timeouts are per line; a client that keeps
    sending during DATA is not idle."""
    with own_server(mail_store, idle_timeout=0.4) as running:
        wire = open_wire(running.address)
        wire.command("MAIL FROM:<a@example.com>")
        wire.command(f"RCPT TO:<{ALICE}>")
        assert_reply(wire.command("DATA"), R.START_DATA)
        for number in range(8):  # 1.6 s in all, four idle timeouts
            wire.send(b"line %d\r\n" % number)
            time.sleep(0.2)
        wire.send(b".\r\n")
        assert wire.reply()[0] == R.ACCEPTED.code


def test_noop_only_client_hits_the_session_limit(mail_store: Path) -> None:
    with own_server(mail_store, idle_timeout=5, max_session_time=0.8) as running:
        wire = open_wire(running.address)
        replies = []
        for _ in range(20):
            reply = wire.command("NOOP")
            replies.append(reply[0])
            if reply[0] == 421:
                assert_reply(reply, R.SESSION_TOO_LONG)
                break
            time.sleep(0.1)
        assert replies[0] == 250 and replies[-1] == 421
        assert wire.rest() == b""


def test_bad_commands_in_a_row_end_the_session(mail_store: Path) -> None:
    with own_server(mail_store, max_errors=3) as running:
        wire = open_wire(running.address)
        assert_reply(wire.command("BOGUS"), R.UNRECOGNIZED)
        assert_reply(wire.command("MAIL TO:<x>"), R.BAD_ARGUMENTS)
        assert_reply(wire.command("NOOP"), R.OK)  # a good command resets the count
        assert_reply(wire.command("BOGUS"), R.UNRECOGNIZED)
        assert_reply(wire.command("RCPT TO:<a@b.c>"), R.NEED_MAIL)
        assert_reply(wire.command("BOGUS"), R.TOO_MANY_ERRORS)
        assert wire.rest() == b""


def test_refused_recipients_are_not_protocol_errors(mail_store: Path) -> None:
    """550s are answers about mailboxes, not bad commands: many in a row
    do not end the session."""
    with own_server(mail_store, max_errors=3) as running:
        wire = open_wire(running.address)
        wire.command("MAIL FROM:<a@example.com>")
        for _ in range(5):
            assert_reply(
                wire.command("RCPT TO:<olduser@tech2u.com.au>"), R.MAILBOX_DISABLED
            )
        assert_reply(wire.command(f"RCPT TO:<{ALICE}>"), R.RECIPIENT_OK)


def test_xclient_does_not_confuse_the_per_client_count(mail_store: Path) -> None:
    """A session counts against the address it was admitted as, even after
    XCLIENT names another client."""
    with own_server(mail_store, max_connections_per_client=1) as running:
        wire = open_wire(running.address)
        assert_reply(wire.command("XCLIENT ADDR=203.0.113.5"), R.GREETING)
        wire.command("QUIT")
        wire.close()
        again = admitted_again(running.address)
        again.close()
