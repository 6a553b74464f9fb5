"""Each policy of the demo world, over a real socket with smtplib."""

from __future__ import annotations

import smtplib
from pathlib import Path

import pytest
from conftest import (
    BLOCKED,
    INSIDE,
    OUTSIDE,
    Connect,
    assert_reply,
    delivered,
    open_wire,
)

from tech2u_mta.catalogue import Entry, R
from tech2u_mta.testing import ThreadedServer

MESSAGE = b"Subject: hello\r\n\r\nHello.\r\n"


def test_accepted_mail_is_delivered_to_the_maildir(
    connect: Connect, mail_store: Path
) -> None:
    client = connect()
    assert_reply(client.mail("someone@example.com"), R.SENDER_OK)
    assert_reply(client.rcpt("alice@tech2u.com.au"), R.RECIPIENT_OK)
    code, text = client.data(MESSAGE)
    assert code == 250
    message_id = text.decode().split()[-1]
    [stored] = delivered(mail_store, "alice@tech2u.com.au")
    assert stored.endswith(MESSAGE)
    assert b"Return-Path: <someone@example.com>\r\n" in stored
    assert f"id {message_id};".encode() in stored


@pytest.mark.parametrize(
    ("recipient", "entry"),
    [
        ("nobody@tech2u.com.au", R.UNKNOWN_MAILBOX),
        ("olduser@tech2u.com.au", R.MAILBOX_DISABLED),
        ("busy@tech2u.com.au", R.MAILBOX_BUSY),
        ("full@tech2u.com.au", R.MAILBOX_FULL),
        ("someone@example.org", R.RELAY_DENIED),
        ("user name@tech2u.com.au", R.BAD_RECIPIENT_SYNTAX),
    ],
)
def test_recipient_policies(connect: Connect, recipient: str, entry: Entry) -> None:
    client = connect()
    client.mail("someone@example.com")
    assert_reply(client.docmd(f"RCPT TO:<{recipient}>"), entry)


def test_every_error_reply_points_to_its_explainer(connect: Connect) -> None:
    client = connect()
    client.mail("someone@example.com")
    code, text = client.rcpt("olduser@tech2u.com.au")
    last = text.decode().splitlines()[-1]
    assert last == "5.2.1 http://www.tech2u.com.au/member/emailerrorcodes.html#550"


def test_blocklisted_client_gets_554_then_only_503(connect: Connect) -> None:
    client = connect(BLOCKED)
    assert_reply(client.greeting, R.BLOCKLISTED)
    assert_reply(client.ehlo("x"), R.REFUSED_SESSION)
    assert_reply(client.docmd("MAIL FROM:<a@example.com>"), R.REFUSED_SESSION)
    assert_reply(client.docmd("QUIT"), R.BYE)


def test_blocklisted_session_ends_after_a_few_commands(connect: Connect) -> None:
    client = connect(BLOCKED)
    for _ in range(3):
        assert_reply(client.docmd("NOOP"), R.REFUSED_SESSION)
    assert_reply(client.docmd("NOOP"), R.TOO_MANY_ERRORS)
    with pytest.raises(smtplib.SMTPServerDisconnected):
        client.docmd("NOOP")


def test_fake_customer_from_outside_gets_551_with_reference(connect: Connect) -> None:
    client = connect(OUTSIDE)
    client.mail("alice@tech2u.com.au")
    code, text = client.rcpt("bob@tech2u.com.au")
    assert_reply((code, text), R.FAKE_CUSTOMER)
    assert b"quote reference " in text


def test_tech2u_sender_from_inside_is_accepted(connect: Connect) -> None:
    client = connect(INSIDE)
    client.mail("alice@tech2u.com.au")
    assert_reply(client.rcpt("bob@tech2u.com.au"), R.RECIPIENT_OK)


def test_tech2u_sender_from_outside_after_auth_is_accepted(connect: Connect) -> None:
    client = connect(OUTSIDE)
    client.login("alice@tech2u.com.au", "alice-password")
    client.mail("alice@tech2u.com.au")
    assert_reply(client.rcpt("bob@tech2u.com.au"), R.RECIPIENT_OK)


def test_wrong_password_is_refused(connect: Connect) -> None:
    client = connect(OUTSIDE)
    with pytest.raises(smtplib.SMTPAuthenticationError) as raised:
        client.login("alice@tech2u.com.au", "wrong")
    assert raised.value.smtp_code == R.AUTH_FAILED.code


def test_outside_sender_from_outside_is_accepted(connect: Connect) -> None:
    client = connect(OUTSIDE)
    client.mail("someone@example.com")
    assert_reply(client.rcpt("alice@tech2u.com.au"), R.RECIPIENT_OK)


def test_addresses_beyond_ascii_need_smtputf8(server: ThreadedServer) -> None:
    """RFC 6531 3.4: a UTF-8 address only in a transaction that said
    SMTPUTF8 on MAIL."""
    wire = open_wire(server.address)
    assert_reply(wire.command("MAIL FROM:<josé@example.com>"), R.BAD_SENDER_SYNTAX)
    assert_reply(wire.command("MAIL FROM:<a@example.com>"), R.SENDER_OK)
    assert_reply(wire.command("RCPT TO:<jösé@tech2u.com.au>"), R.BAD_RECIPIENT_SYNTAX)
    wire.command("RSET")
    assert_reply(wire.command("MAIL FROM:<josé@example.com> SMTPUTF8"), R.SENDER_OK)
    assert_reply(wire.command("RCPT TO:<jösé@tech2u.com.au>"), R.UNKNOWN_MAILBOX)
