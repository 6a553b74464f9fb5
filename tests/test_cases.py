"""The cases of public-reports.md (C01-C14), each over a real loopback socket.

Where the exact bytes on the wire or their grouping into writes matter, the
client is a raw socket (``Wire``); elsewhere it is smtplib or aiosmtplib.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import smtplib
import socket
import subprocess
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import aiosmtplib
import pytest
from conftest import (
    BLOCKED,
    INSIDE,
    OUTSIDE,
    Connect,
    Reply,
    Wire,
    WireFactory,
    assert_reply,
    delivered,
    leftovers,
    open_wire,
    own_server,
    smtp_session,
)

from tech2u_mta.catalogue import Entry, R
from tech2u_mta.policy import Policies, load_folder
from tech2u_mta.store import MailStore, Spool
from tech2u_mta.testing import ThreadedServer

ALICE = "alice@tech2u.com.au"
MESSAGE = b"Subject: t\r\n\r\nbody\r\n"
# The trace fields the server puts before the message: Return-Path and a
# three-line Received field (RFC 5321 4.4).
TRACE_LINES = 4


# -- the raw client ----------------------------------------------------------


def start_data(wire: Wire, sender: str = "a@example.com", to: str = ALICE) -> None:
    assert_reply(wire.command(f"MAIL FROM:<{sender}>"), R.SENDER_OK)
    assert_reply(wire.command(f"RCPT TO:<{to}>"), R.RECIPIENT_OK)
    assert_reply(wire.command("DATA"), R.START_DATA)


def quit_and_expect_close(wire: Wire) -> None:
    """QUIT gets 221 as the very next reply and then the server closes, so
    no reply was left unread before it and none follows."""
    assert_reply(wire.command("QUIT"), R.BYE)
    assert wire.rest() == b""


# -- servers with settings or policies of their own ---------------------------


def policy_folder(folder: Path, **files: str) -> Policies:
    """Policies from files written into ``folder``; the demo domain is the
    default ``domains`` file."""
    folder.mkdir()
    files.setdefault("domains", "tech2u.com.au\n")
    for name, text in files.items():
        (folder / name).write_text(text)
    return load_folder(folder, None)


def body_of(stored: bytes) -> bytes:
    """The message as the client sent it, without the trace fields."""
    return stored.split(b"\r\n", TRACE_LINES)[TRACE_LINES]


def wait_for(condition: Callable[[], bool], what: str) -> None:
    """Wait for something the server does after its last reply."""
    deadline = time.monotonic() + 10
    while not condition():
        assert time.monotonic() < deadline, f"gave up waiting for {what}"
        time.sleep(0.01)


# -- C01 ---------------------------------------------------------------------

SMUGGLED = (
    b"MAIL FROM:<x@example.com>\r\nRCPT TO:<alice@tech2u.com.au>\r\n"
    b"DATA\r\nsecond\r\n.\r\n"
)


@pytest.mark.parametrize(
    "false_end",
    [b"\n.\r\n", b"\r.\r\n", b"\n.\n", b"\r\n.\n", b"\r\n.\r", b"\r.\r"],
    ids=["LF.CRLF", "CR.CRLF", "LF.LF", "CRLF.LF", "CRLF.CR", "CR.CR"],
)
def test_c01_only_crlf_dot_crlf_ends_data(
    raw: WireFactory, mail_store: Path, false_end: bytes
) -> None:
    """RFC 5321 4.1.1.4 and 2.3.8: only CRLF "." CRLF ends the data, so a
    dot between bare line endings is message text and the commands after it
    are never run.  Decided: a message with a bare CR or LF is read to its
    real end and refused with 554 5.6.0, not stored unchanged."""
    wire = raw()
    start_data(wire)
    wire.send(b"Subject: t\r\n\r\nbody" + false_end + SMUGGLED)
    assert_reply(wire.reply(), R.BARE_LINE_ENDING)
    quit_and_expect_close(wire)
    assert delivered(mail_store, ALICE) == []
    assert leftovers(mail_store) == []


@pytest.mark.parametrize("bare", [b"\n", b"\r"], ids=["LF", "CR"])
def test_c01_bare_line_ending_inside_a_line_is_refused(
    raw: WireFactory, mail_store: Path, bare: bytes
) -> None:
    """RFC 5321 2.3.8: CR and LF appear in the data only as CRLF."""
    wire = raw()
    start_data(wire)
    wire.send(b"Subject: t\r\n\r\none" + bare + b"two\r\n.\r\n")
    assert_reply(wire.reply(), R.BARE_LINE_ENDING)
    start_data(wire)
    wire.send(MESSAGE + b".\r\n")
    assert_reply(wire.reply(), R.ACCEPTED)
    assert [body_of(m) for m in delivered(mail_store, ALICE)] == [MESSAGE]


# -- C02 ---------------------------------------------------------------------


@pytest.mark.parametrize("byte_by_byte", [False, True])
def test_c02_dot_stuffing_is_undone(
    raw: WireFactory, mail_store: Path, byte_by_byte: bool
) -> None:
    """RFC 5321 4.5.2: the receiver drops the first dot of every line that
    starts with one, and only of those."""
    wire = raw()
    start_data(wire)
    data = b"..first\r\n..\r\n...x\r\nmid.dle\r\n.\r\n"
    if byte_by_byte:
        for octet in data:
            wire.send(bytes([octet]))
    else:
        wire.send(data)
    assert_reply(wire.reply(), R.ACCEPTED)
    [stored] = delivered(mail_store, ALICE)
    assert body_of(stored) == b".first\r\n.\r\n..x\r\nmid.dle\r\n"


# -- C03 ---------------------------------------------------------------------


def test_c03_long_data_line_is_refused_after_the_final_dot(
    raw: WireFactory, mail_store: Path
) -> None:
    """RFC 5321 4.5.3.1.6: a text line is at most 1000 octets with CRLF; the
    reply waits for the end of data (4.2.5), since any earlier reply would
    be read as the answer to a command."""
    wire = raw()
    start_data(wire)
    wire.send(b"Subject: t\r\n\r\n" + b"a" * 1200 + b"\r\nafter\r\n.\r\n")
    assert_reply(wire.reply(), R.DATA_LINE_TOO_LONG)
    quit_and_expect_close(wire)
    assert delivered(mail_store, ALICE) == []
    assert leftovers(mail_store) == []


def test_c03_longest_allowed_data_line_is_stored(
    raw: WireFactory, mail_store: Path
) -> None:
    """RFC 5321 4.5.3.1.6: 998 octets and CRLF is allowed, and so is the
    extra dot of a stuffed line of that length (4.5.2)."""
    wire = raw()
    start_data(wire)
    wire.send(b"x" * 998 + b"\r\n." + b"." * 998 + b"\r\n.\r\n")
    assert_reply(wire.reply(), R.ACCEPTED)
    [stored] = delivered(mail_store, ALICE)
    assert body_of(stored) == b"x" * 998 + b"\r\n" + b"." * 998 + b"\r\n"


@pytest.mark.parametrize("length", [600, 1100, 100_000])
def test_c03_long_command_line_gets_the_catalogue_500(
    raw: WireFactory, length: int
) -> None:
    """RFC 5321 4.5.3.1.4: a command line is at most 512 octets (MAIL gets
    more for its parameters); the 500 comes from the catalogue, with its
    enhanced code, and the session goes on."""
    wire = raw()
    padding = "x" * (length - len("RCPT TO:<@tech2u.com.au>"))
    assert len(f"RCPT TO:<{padding}@tech2u.com.au>") == length
    assert_reply(wire.command(f"RCPT TO:<{padding}@tech2u.com.au>"), R.LINE_TOO_LONG)
    assert_reply(
        wire.command(f"MAIL FROM:<{'y' * length}@example.com>"),
        R.LINE_TOO_LONG if length > 1000 else R.BAD_SENDER_SYNTAX,
    )
    assert_reply(wire.command("NOOP"), R.OK)


def _kib(field: str) -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    raise LookupError(field)


def peak_growth_kib(action: Callable[[], None]) -> int:
    """How far this process's peak resident size rose during ``action``.

    The server runs in a thread of this process, so its buffers count.  The
    peak is reset first where Linux allows it (clear_refs "5"); otherwise an
    earlier, higher peak can hide growth, which errs on the side of passing.
    """
    before = _kib("VmRSS")
    try:
        Path("/proc/self/clear_refs").write_text("5")
    except OSError:
        before = _kib("VmHWM")
    action()
    return _kib("VmHWM") - before


@pytest.mark.skipif(not Path("/proc/self/status").exists(), reason="needs /proc")
def test_c03_ten_megabytes_without_a_line_break(
    raw: WireFactory, mail_store: Path
) -> None:
    """RFC 5321 4.5.3.1.6 and 4.5.3.1.9, RFC 1870 6: over-long and
    oversized data is read on to its end, then refused with a 552; the
    server keeps no more than a line's worth of it in memory."""
    wire = raw()
    start_data(wire)
    chunk = b"z" * 65536

    def send_eleven_mebibytes() -> None:
        for _ in range(176):
            wire.send(chunk)
        wire.send(b"\r\n.\r\n")
        assert_reply(wire.reply(), R.MESSAGE_TOO_BIG)

    assert peak_growth_kib(send_eleven_mebibytes) < 4096
    quit_and_expect_close(wire)
    assert delivered(mail_store, ALICE) == []
    assert leftovers(mail_store) == []


# -- C04 ---------------------------------------------------------------------

# Decided: no limit on the length of a local part.  RFC 5321 4.5.3.1.1 says
# 64 octets, but 4.5.3.1 asks servers to accept longer objects where they
# can, and real senders (bounce and list addresses) use longer ones; only
# the 256 octets of the whole path are enforced (4.5.3.1.3).
VALID_LOCAL_PARTS = ['"odd user"', '"a@b"', "a" * 70, '"a\\"b"', "first.last"]
INVALID_LOCAL_PARTS = ["user name", ".f", 'just"not"right', "a..b", "f.", '"a"b']


@pytest.mark.parametrize("local", VALID_LOCAL_PARTS)
def test_c04_valid_local_parts_reach_the_mailbox_check(
    connect: Connect, local: str
) -> None:
    """RFC 5321 4.1.2: Quoted-string and long Dot-string local parts are
    valid syntax, so they get the mailbox check, not a syntax error."""
    client = connect()
    assert_reply(client.docmd(f"MAIL FROM:<{local}@example.com>"), R.SENDER_OK)
    assert_reply(client.docmd(f"RCPT TO:<{local}@tech2u.com.au>"), R.UNKNOWN_MAILBOX)


@pytest.mark.parametrize("local", INVALID_LOCAL_PARTS)
def test_c04_invalid_local_parts_get_553(connect: Connect, local: str) -> None:
    """RFC 5321 4.1.2 and RFC 3463 3.2: a local part that is neither a
    Dot-string nor a Quoted-string gets 553 5.1.3 (5.1.7 for a sender)."""
    client = connect()
    assert_reply(client.docmd(f"MAIL FROM:<{local}@example.com>"), R.BAD_SENDER_SYNTAX)
    client.mail("a@example.com")
    reply = client.docmd(f"RCPT TO:<{local}@tech2u.com.au>")
    assert_reply(reply, R.BAD_RECIPIENT_SYNTAX)


def test_c04_quoted_form_of_a_mailbox_is_the_mailbox(
    connect: Connect, mail_store: Path
) -> None:
    """RFC 5321 4.1.2: "alice" quoted is the same local part as alice."""
    client = connect()
    client.mail("a@example.com")
    assert_reply(client.docmd('RCPT TO:<"alice"@tech2u.com.au>'), R.RECIPIENT_OK)
    assert_reply(client.data(MESSAGE), R.ACCEPTED)
    assert len(delivered(mail_store, ALICE)) == 1


# -- C05 ---------------------------------------------------------------------


@pytest.mark.parametrize(
    "postmaster",
    ["Postmaster", "POSTMASTER@tech2u.com.au", "postmaster@TECH2U.com.au."],
)
def test_c05_postmaster_is_always_reachable(
    connect: Connect, mail_store: Path, postmaster: str
) -> None:
    """RFC 5321 4.5.1: mail to postmaster is accepted whatever else applies;
    here even a TECH 2U sender from outside, which would get 551."""
    client = connect(OUTSIDE)
    client.mail("alice@tech2u.com.au")
    assert_reply(client.docmd(f"RCPT TO:<{postmaster}>"), R.RECIPIENT_OK)
    assert_reply(client.data(MESSAGE), R.ACCEPTED)
    assert len(delivered(mail_store, "postmaster@tech2u.com.au")) == 1


def test_c05_postmaster_listed_as_disabled_is_still_reachable(
    mail_store: Path, tmp_path: Path
) -> None:
    """RFC 5321 4.5.1: no mailbox policy can turn postmaster off."""
    mailboxes = "postmaster@tech2u.com.au disabled\n"
    policies = policy_folder(tmp_path / "p", mailboxes=mailboxes)
    with (
        own_server(mail_store, policies) as running,
        smtp_session(running.address) as client,
    ):
        client.mail("a@example.com")
        assert_reply(client.docmd("RCPT TO:<Postmaster>"), R.RECIPIENT_OK)


def test_c05_blocklisted_client_never_reaches_postmaster(connect: Connect) -> None:
    """RFC 5321 3.1: after a 554 greeting every command but QUIT gets 503."""
    client = connect(BLOCKED)
    assert_reply(client.greeting, R.BLOCKLISTED)
    assert_reply(client.docmd("RCPT TO:<Postmaster>"), R.REFUSED_SESSION)


# -- C06 ---------------------------------------------------------------------


def test_c06_null_sender_is_accepted_and_recorded(
    connect: Connect, mail_store: Path
) -> None:
    """RFC 5321 4.5.5: the null reverse-path of a bounce is accepted; it
    has no domain, so it is never a TECH 2U sender (no 551 from outside)."""
    client = connect(OUTSIDE)
    assert_reply(client.mail("", ["SIZE=1000"]), R.SENDER_OK)
    assert_reply(client.rcpt(ALICE), R.RECIPIENT_OK)
    assert_reply(client.data(MESSAGE), R.ACCEPTED)
    [stored] = delivered(mail_store, ALICE)
    assert stored.startswith(b"Return-Path: <>\r\n")
    assert body_of(stored) == MESSAGE


# -- C07 ---------------------------------------------------------------------


async def _mail_with(address: tuple[str, int], *params: bytes) -> Reply:
    client = aiosmtplib.SMTP(
        hostname=address[0],
        port=address[1],
        local_hostname="client.example.com",
        start_tls=False,
        timeout=10,
    )
    await client.connect()
    try:
        await client.ehlo()
        assert client.supports_extension("auth")
        sent = await client.execute_command(b"MAIL", b"FROM:<a@example.com>", *params)
        return sent.code, sent.message.encode()
    finally:
        client.close()


@pytest.mark.parametrize(
    ("params", "entry"),
    [
        ((b"SIZE=1000", b"AUTH=<>"), R.SENDER_OK),
        ((b"AUTH=alice@tech2u.com.au",), R.SENDER_OK),
        ((b"BODY=8bitmime",), R.SENDER_OK),
        ((b"body=7BIT", b"smtputf8"), R.SENDER_OK),
        ((b"FOO=bar",), R.PARAMETER_UNRECOGNIZED),
        ((b"SIZE=10", b"FOO"), R.PARAMETER_UNRECOGNIZED),
    ],
)
async def test_c07_mail_parameters_of_real_clients(
    server: ThreadedServer, params: tuple[bytes, ...], entry: Entry
) -> None:
    """RFC 4954 5: with AUTH advertised, AUTH=<> is accepted (and ignored);
    RFC 1869 6: keywords are case-insensitive; RFC 5321 4.1.1.11: a
    parameter that was never advertised gets 555 5.5.4."""
    assert_reply(await _mail_with(server.address, *params), entry)


def test_c07_auth_parameter_without_auth_advertised_gets_555(
    mail_store: Path,
) -> None:
    """RFC 4954 5 and RFC 5321 4.1.1.11: without TLS and with
    auth_require_tls, AUTH is not advertised, so AUTH= is unknown."""
    with (
        own_server(mail_store, auth_require_tls=True) as running,
        smtp_session(running.address) as client,
    ):
        assert not client.has_extn("auth")
        reply = client.docmd("MAIL FROM:<a@example.com> AUTH=<>")
        assert_reply(reply, R.PARAMETER_UNRECOGNIZED)


# -- C08 ---------------------------------------------------------------------


@pytest.mark.parametrize(
    ("command", "entry"),
    [
        ("MAIL FROM:<SRS0=ab12=xy=example.org=mailer@example.com>", R.SENDER_OK),
        ("MAIL FROM:<a@example.com> SIZE=99999999999", R.MESSAGE_TOO_BIG),
        ("MAIL FROM:<a@example.com> SIZE=abc", R.BAD_SIZE),
        ("MAIL FROM:<a@example.com> SIZE=-5", R.BAD_SIZE),
        ("MAIL FROM:<a@example.com> SIZE=10485760", R.SENDER_OK),
    ],
)
def test_c08_size_declarations(connect: Connect, command: str, entry: Entry) -> None:
    """RFC 1870 6: a declared SIZE over the limit gets 552 5.3.4 at MAIL; a
    SIZE that is not a number is a syntax error; "=" inside the path is part
    of the address, not a parameter (RFC 5321 4.1.2)."""
    assert_reply(connect().docmd(command), entry)


def test_c08_oversized_message_without_size_is_refused_after_the_dot(
    mail_store: Path,
) -> None:
    """RFC 1870 6 and RFC 5321 4.2.5: a message over the limit that was
    not declared gets 552 5.3.4 after the final dot, and nothing is kept."""
    with (
        own_server(mail_store, max_message_size=4096) as running,
        smtp_session(running.address) as client,
    ):
        client.mail("a@example.com")
        client.rcpt(ALICE)
        assert_reply(client.data((b"x" * 900 + b"\r\n") * 5), R.MESSAGE_TOO_BIG)
        assert delivered(mail_store, ALICE) == []
        assert leftovers(mail_store) == []
        client.mail("a@example.com")
        client.rcpt(ALICE)
        assert_reply(client.data(MESSAGE), R.ACCEPTED)


# -- C09 ---------------------------------------------------------------------


@pytest.mark.parametrize("limit", [100, 5])
def test_c09_recipient_over_the_limit_gets_452(mail_store: Path, limit: int) -> None:
    """RFC 5321 4.5.3.1.10: a server refuses recipients over its limit with
    452 (4.5.3 of RFC 3463), not 552; each RCPT counts, repeated or not."""
    settings = {} if limit == 100 else {"max_recipients": limit}
    with (
        own_server(mail_store, **settings) as running,
        smtp_session(running.address) as client,
    ):
        client.mail("a@example.com")
        for _ in range(limit):
            assert_reply(client.rcpt(ALICE), R.RECIPIENT_OK)
        assert_reply(client.rcpt(ALICE), R.TOO_MANY_RECIPIENTS)
        assert_reply(client.data(MESSAGE), R.ACCEPTED)
    assert len(delivered(mail_store, ALICE)) == 1


def test_c09_over_the_limit_with_distinct_mailboxes(
    mail_store: Path, tmp_path: Path
) -> None:
    """RFC 5321 4.5.3.1.10: the first 100 mailboxes get the message, the
    101st got 452 and nothing."""
    addresses = [f"user{n:03}@tech2u.com.au" for n in range(101)]
    mailboxes = "".join(f"{a} active\n" for a in addresses)
    policies = policy_folder(tmp_path / "p", mailboxes=mailboxes)
    with (
        own_server(mail_store, policies) as running,
        smtp_session(running.address) as client,
    ):
        client.mail("a@example.com")
        for address in addresses[:100]:
            assert_reply(client.rcpt(address), R.RECIPIENT_OK)
        assert_reply(client.rcpt(addresses[100]), R.TOO_MANY_RECIPIENTS)
        assert_reply(client.data(MESSAGE), R.ACCEPTED)
    assert [len(delivered(mail_store, a)) for a in addresses] == [1] * 100 + [0]


def test_c09_full_mailboxes_get_552_5_2_2(mail_store: Path, tmp_path: Path) -> None:
    """RFC 3463 3.3: X.2.2 is a mailbox over its storage allocation; with
    SIZE declared it is known at RCPT (RFC 1870 6), else after the dot."""
    mailboxes = "tiny@tech2u.com.au active 1K\nfull@tech2u.com.au full\n"
    policies = policy_folder(tmp_path / "p", mailboxes=mailboxes)
    with (
        own_server(mail_store, policies) as running,
        smtp_session(running.address) as client,
    ):
        client.mail("a@example.com")
        assert_reply(client.rcpt("full@tech2u.com.au"), R.MAILBOX_FULL)
        client.rset()
        client.mail("a@example.com", ["SIZE=2000"])
        assert_reply(client.rcpt("tiny@tech2u.com.au"), R.MAILBOX_FULL)
        client.rset()
        client.mail("a@example.com")
        assert_reply(client.rcpt("tiny@tech2u.com.au"), R.RECIPIENT_OK)
        assert_reply(client.data((b"y" * 70 + b"\r\n") * 30), R.MAILBOX_FULL)
    assert delivered(mail_store, "tiny@tech2u.com.au") == []
    assert leftovers(mail_store) == []


def test_c09_354_has_no_enhanced_code(raw: WireFactory) -> None:
    """RFC 2034 3: enhanced codes go on 2xx, 4xx and 5xx replies only, so
    the 354 intermediate reply carries none."""
    wire = raw()
    wire.command("MAIL FROM:<a@example.com>")
    wire.command(f"RCPT TO:<{ALICE}>")
    code, text = wire.command("DATA")
    assert (code, text) == (R.START_DATA.code, R.START_DATA.text.encode())
    assert R.START_DATA.enhanced is None


# -- C10 ---------------------------------------------------------------------


def test_c10_rset_and_noop_before_ehlo(connect: Connect) -> None:
    """RFC 5321 4.1.4: RSET and NOOP are allowed at any time."""
    client = connect(ehlo=False)
    assert_reply(client.docmd("RSET"), R.OK)
    assert_reply(client.docmd("NOOP"), R.OK)


def test_c10_nested_mail_gets_503(connect: Connect) -> None:
    """RFC 5321 4.1.4: MAIL inside an open transaction is out of sequence."""
    client = connect()
    client.mail("a@example.com")
    client.rcpt(ALICE)
    assert_reply(client.docmd("MAIL FROM:<b@example.com>"), R.NESTED_MAIL)


@pytest.mark.parametrize(
    ("greeting", "entry"), [("EHLO", R.EHLO_OK), ("HELO", R.HELO_OK)]
)
def test_c10_second_greeting_resets_the_transaction(
    connect: Connect, greeting: str, entry: Entry
) -> None:
    """RFC 5321 4.1.4: EHLO or HELO in a session clears the transaction as
    RSET does, so a RCPT after it has no MAIL."""
    client = connect()
    client.mail("a@example.com")
    assert_reply(client.rcpt(ALICE), R.RECIPIENT_OK)
    assert_reply(client.docmd(f"{greeting} client.example.com"), entry)
    assert_reply(client.docmd(f"RCPT TO:<{ALICE}>"), R.NEED_MAIL)
    assert_reply(client.docmd("DATA"), R.NEED_MAIL)


def test_c10_new_transaction_after_end_of_data(
    connect: Connect, mail_store: Path
) -> None:
    """RFC 5321 4.1.4: the 250 for the end of data closes the transaction;
    the next MAIL needs no RSET."""
    client = connect()
    for number in range(2):
        assert_reply(client.mail(f"s{number}@example.com"), R.SENDER_OK)
        assert_reply(client.rcpt(ALICE), R.RECIPIENT_OK)
        assert_reply(client.data(MESSAGE), R.ACCEPTED)
    assert len(delivered(mail_store, ALICE)) == 2


# -- C11 ---------------------------------------------------------------------


def test_c11_pipelined_mixed_recipients(raw: WireFactory, mail_store: Path) -> None:
    """RFC 2920 3.1: replies to a pipelined group come in the order of its
    commands; DATA gets 354 because one recipient was accepted."""
    wire = raw()
    wire.send(
        b"MAIL FROM:<a@example.com>\r\nRCPT TO:<olduser@tech2u.com.au>\r\n"
        b"RCPT TO:<alice@tech2u.com.au>\r\nDATA\r\n"
    )
    for entry in (R.SENDER_OK, R.MAILBOX_DISABLED, R.RECIPIENT_OK, R.START_DATA):
        assert_reply(wire.reply(), entry)
    wire.send(MESSAGE + b".\r\n")
    assert_reply(wire.reply(), R.ACCEPTED)
    quit_and_expect_close(wire)
    assert len(delivered(mail_store, ALICE)) == 1
    assert list(mail_store.glob("*/*/new/*")) == list(
        (mail_store / "tech2u.com.au" / "alice" / "new").iterdir()
    )


def test_c11_pipelined_with_every_recipient_refused(raw: WireFactory) -> None:
    """RFC 2920 3.1 and RFC 5321 3.3: with no recipient accepted, DATA gets
    503, never 354, so the client does not send the message."""
    wire = raw()
    wire.send(
        b"MAIL FROM:<a@example.com>\r\nRCPT TO:<olduser@tech2u.com.au>\r\n"
        b"RCPT TO:<nobody@tech2u.com.au>\r\nDATA\r\n"
    )
    for entry in (R.SENDER_OK, R.MAILBOX_DISABLED, R.UNKNOWN_MAILBOX):
        assert_reply(wire.reply(), entry)
    assert_reply(wire.reply(), R.NO_RECIPIENTS)
    quit_and_expect_close(wire)


# -- C12 ---------------------------------------------------------------------


def _has_dual_stack() -> bool:
    if not socket.has_dualstack_ipv6():
        return False
    try:
        socket.create_server(("::", 0), family=socket.AF_INET6).close()
    except OSError:
        return False
    return True


@pytest.fixture
def dual_stack(mail_store: Path) -> Iterator[tuple[str, int]]:
    """The IPv4 address of a server listening on ``::`` (dual stack)."""
    if not _has_dual_stack():
        pytest.skip("this machine has no IPv6")
    with own_server(mail_store, listen=("::", 0)) as running:
        assert running.address[0] == "::"
        yield "127.0.0.1", running.address[1]


def _sender_check(address: tuple[str, int], source: str) -> Reply:
    with smtp_session(address, source) as client:
        client.mail(ALICE)
        return client.rcpt("bob@tech2u.com.au")


def test_c12_blocklist_matches_ipv4_clients_of_a_dual_stack_socket(
    dual_stack: tuple[str, int],
) -> None:
    """RFC 4291 2.5.5.2: an IPv4 client of an IPv6 socket appears as
    ::ffff:a.b.c.d; an IPv4 blocklist entry still matches it (554 5.7.1)."""
    client = smtplib.SMTP(timeout=10, source_address=(BLOCKED, 0))
    assert_reply(client.connect(*dual_stack), R.BLOCKLISTED)
    client.close()


@pytest.mark.parametrize(
    ("source", "entry"), [(INSIDE, R.RECIPIENT_OK), (OUTSIDE, R.FAKE_CUSTOMER)]
)
def test_c12_inside_network_matches_ipv4_clients_of_a_dual_stack_socket(
    dual_stack: tuple[str, int], source: str, entry: Entry
) -> None:
    """RFC 4291 2.5.5.2: the 551 check normalises a mapped address as the
    blocklist does, so 127.0.0.1/32 covers ::ffff:127.0.0.1."""
    assert_reply(_sender_check(dual_stack, source), entry)


def test_c12_ipv6_client_of_a_dual_stack_socket(
    dual_stack: tuple[str, int],
) -> None:
    """RFC 4291 2.5.5.2 does not touch real IPv6 clients: ::1 is inside
    the TECH 2U network as listed (::1/128)."""
    reply = _sender_check(("::1", dual_stack[1]), "::1")
    assert_reply(reply, R.RECIPIENT_OK)


def test_c12_mapped_policy_entries_match_ipv4_clients(
    mail_store: Path, tmp_path: Path
) -> None:
    """RFC 4291 2.5.5.2: an entry written as a mapped IPv6 network stands
    for the IPv4 network, on an IPv4 listener too."""
    policies = policy_folder(
        tmp_path / "p",
        blocklist="::ffff:127.0.0.4/128\n",
        networks="::ffff:127.0.0.5/128\n",
        mailboxes="bob@tech2u.com.au active\n",
    )
    with own_server(mail_store, policies) as running:
        client = smtplib.SMTP(timeout=10, source_address=("127.0.0.4", 0))
        assert_reply(client.connect(*running.address), R.BLOCKLISTED)
        client.close()
        assert_reply(_sender_check(running.address, "127.0.0.5"), R.RECIPIENT_OK)


# -- C13 ---------------------------------------------------------------------


def assert_store_untouched(mail_store: Path) -> None:
    """Nothing in any ``new/``, ``tmp/`` or the spool: no quota charged."""
    assert list(mail_store.glob("*/*/new/*")) == []
    assert leftovers(mail_store) == []


def test_c13_server_stopped_during_data(mail_store: Path) -> None:
    """RFC 5321 3.8: a server that must shut down says 421 (4.3.2) first;
    a transaction unfinished after the grace period leaves nothing behind."""
    with own_server(mail_store, shutdown_grace=0.3) as running:
        wire = open_wire(running.address)
        start_data(wire)
        wire.send(b"Subject: t\r\n\r\nhalf a message\r\n")
        assert list((mail_store / ".incoming").iterdir()) != []
        stopping = threading.Thread(target=running.stop)
        stopping.start()
        assert_reply(wire.reply(), R.SHUTTING_DOWN)
        stopping.join(timeout=30)
        assert not stopping.is_alive()
        assert wire.rest() == b""
        wire.close()
    assert_store_untouched(mail_store)


def test_c13_data_finished_within_the_grace_period_is_stored(
    mail_store: Path,
) -> None:
    """A stopping server lets a message still arriving reach its final dot
    within shutdown_grace: it gets its 250, then the 421."""
    with own_server(mail_store, shutdown_grace=10) as running:
        wire = open_wire(running.address)
        start_data(wire)
        wire.send(b"Subject: t\r\n\r\nfirst half\r\n")
        stopping = threading.Thread(target=running.stop)
        stopping.start()
        time.sleep(0.3)
        wire.send(b"second half\r\n.\r\n")
        assert wire.reply()[0] == R.ACCEPTED.code
        assert_reply(wire.reply(), R.SHUTTING_DOWN)
        stopping.join(timeout=30)
        wire.close()
    [stored] = delivered(mail_store, ALICE)
    assert stored.endswith(b"first half\r\nsecond half\r\n")
    assert leftovers(mail_store) == []


def test_c13_server_stopped_between_commands(mail_store: Path) -> None:
    """RFC 5321 3.8: 421 4.3.2 also to a session waiting for a command."""
    with own_server(mail_store) as running:
        wire = open_wire(running.address)
        assert_reply(wire.command("MAIL FROM:<a@example.com>"), R.SENDER_OK)
        running.stop()
        assert_reply(wire.reply(), R.SHUTTING_DOWN)
        wire.close()
    assert_store_untouched(mail_store)


def test_c13_client_closes_right_after_the_final_dot(mail_store: Path) -> None:
    """RFC 5321 4.1.1.4: once the final dot has arrived the message is the
    server's; it is stored exactly once even if nobody reads the 250."""
    with own_server(mail_store) as running:
        wire = open_wire(running.address)
        start_data(wire)
        wire.send(MESSAGE + b".\r\n")
        wire.close()
        wait_for(lambda: delivered(mail_store, ALICE) != [], "the delivery")
        running.stop()
    assert [body_of(m) for m in delivered(mail_store, ALICE)] == [MESSAGE]
    assert leftovers(mail_store) == []


@pytest.mark.parametrize("cut", [b"", b"\r\n", b"\r\n.", b"\r"])
def test_c13_client_closes_before_the_final_dot(
    server: ThreadedServer, mail_store: Path, cut: bytes
) -> None:
    """RFC 5321 4.1.1.4: without CRLF.CRLF there is no message; the spool
    is removed and no mailbox is charged."""
    wire = open_wire(server.address)
    start_data(wire)
    wire.send(b"Subject: t\r\n\r\nunfinished" + cut)
    wire.sock.shutdown(socket.SHUT_WR)
    # The server closes without a word, and only after removing the spool.
    assert wire.rest() == b""
    wire.close()
    assert_store_untouched(mail_store)


# -- C14 ---------------------------------------------------------------------


@contextlib.contextmanager
def small_tmpfs(folder: Path, size: str) -> Iterator[Path]:
    """A tmpfs of ``size`` at ``folder``, for root only; skips otherwise."""
    if os.geteuid() != 0 or shutil.which("mount") is None:
        pytest.skip("mounting a tmpfs needs root")
    folder.mkdir()
    mounted = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(folder)],
        capture_output=True,
    )
    if mounted.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs: {mounted.stderr.decode().strip()}")
    try:
        yield folder
    finally:
        subprocess.run(["umount", str(folder)], check=True)


def _send(address: tuple[str, int], message: bytes) -> Reply:
    with smtp_session(address) as client:
        client.mail("a@example.com")
        client.rcpt(ALICE)
        return client.data(message)


def _files(root: Path) -> list[Path]:
    return [p for p in root.rglob("*") if p.is_file() and p.name != ".lock"]


def test_c14_disk_full_on_a_real_filesystem(tmp_path: Path) -> None:
    """RFC 5321 4.3.2 and RFC 3463 3.4: a mail store out of space answers
    the end of data with 452 4.3.1, keeps no partial file, and takes the
    next message once there is room again."""
    store = tmp_path / "store"
    with (
        small_tmpfs(store, "512k"),
        own_server(store, min_free_space=64 << 10) as running,
    ):
        big = (b"w" * 998 + b"\r\n") * 1024
        assert_reply(_send(running.address, big), R.STORE_FULL)
        assert _files(store) == []
        assert_reply(_send(running.address, MESSAGE), R.ACCEPTED)
        assert len(delivered(store, ALICE)) == 1
        assert leftovers(store) == []


def test_c14_disk_full_on_a_full_device(
    server: ThreadedServer, mail_store: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """RFC 5321 4.3.2: as above without root too: the spool's writes go to
    /dev/full, where the kernel fails every write with ENOSPC."""
    if not Path("/dev/full").exists():
        pytest.skip("no /dev/full")
    store: MailStore = server.server.context.store
    real_open = store.open_spool

    def open_on_a_full_device(header: bytes) -> Spool:
        spool = real_open(b"")
        spool.file.close()
        spool.file = open("/dev/full", "wb")  # noqa: SIM115 - the spool owns it
        spool.write(header)
        return spool

    monkeypatch.setattr(store, "open_spool", open_on_a_full_device)
    assert_reply(_send(server.address, MESSAGE * 1000), R.STORE_FULL)
    assert _files(mail_store) == []
    monkeypatch.undo()
    assert_reply(_send(server.address, MESSAGE), R.ACCEPTED)
    assert leftovers(mail_store) == []
