"""Errors of our own: the client gets a catalogue reply with a reference,
the log gets the error under the same reference, and nothing leaks."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from conftest import Connect, Wire, assert_reply, leftovers, open_wire

from tech2u_mta import checks
from tech2u_mta.catalogue import R
from tech2u_mta.testing import ThreadedServer

MESSAGE = b"Subject: t\r\n\r\nbody\r\n"


def reference_in(text: bytes) -> str:
    match = re.search(rb"reference ([0-9A-F]{8})", text)
    assert match, text
    return match.group(1).decode()


def test_delivery_failure_gets_451_with_a_reference_in_the_log(
    connect: Connect, mail_store: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """A real failure: alice's tmp/ is a file, so delivery cannot stage."""
    caplog.set_level("INFO")
    (mail_store / "tech2u.com.au" / "alice").mkdir(parents=True)
    (mail_store / "tech2u.com.au" / "alice" / "tmp").write_text("not a folder")
    client = connect()
    client.mail("a@example.com")
    client.rcpt("alice@tech2u.com.au")
    code, text = client.data(MESSAGE)
    assert_reply((code, text), R.LOCAL_ERROR)
    assert b"Error" not in text and b"Errno" not in text
    reference = reference_in(text)
    logged = [r for r in caplog.records if f"ref={reference}" in r.getMessage()]
    assert any(r.exc_info for r in logged), "the error is logged with its traceback"
    assert any("stage=data" in r.getMessage() for r in logged)
    assert leftovers(mail_store) == []
    # The session goes on.
    assert_reply(client.mail("a@example.com"), R.SENDER_OK)


def test_error_outside_a_command_ends_the_session_with_421(
    server: ThreadedServer,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """A bug in the connect-time check stands in for any error outside a
    command: the client is told, with a reference, instead of left hanging."""

    def broken(*args: object) -> checks.Decision:
        raise RuntimeError("secret internals")

    monkeypatch.setattr(checks, "connect", broken)
    caplog.set_level("INFO")
    wire = Wire(server.address)
    code, text = wire.reply()
    assert_reply((code, text), R.SESSION_ERROR)
    assert b"secret" not in text and b"RuntimeError" not in text
    reference = reference_in(text)
    assert any(
        f"ref={reference}" in r.getMessage() and r.exc_info for r in caplog.records
    )
    assert wire.rest() == b""


def test_error_in_a_command_gets_451(
    server: ThreadedServer,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    def broken(*args: object) -> checks.Decision:
        raise RuntimeError("secret internals")

    monkeypatch.setattr(checks, "recipient", broken)
    caplog.set_level("INFO")
    wire = open_wire(server.address)
    wire.command("MAIL FROM:<a@example.com>")
    code, text = wire.command("RCPT TO:<alice@tech2u.com.au>")
    assert_reply((code, text), R.LOCAL_ERROR)
    assert b"secret" not in text and b"RuntimeError" not in text
    reference = reference_in(text)
    assert any(
        f"ref={reference}" in r.getMessage() and r.exc_info for r in caplog.records
    )
    assert_reply(wire.command("NOOP"), R.OK)
