"""Random and mutated command lines against a running server: it never
crashes, never leaks an exception, answers each line with a code valid for
the command, and keeps serving the next client."""

from __future__ import annotations

import re
import socket
from pathlib import Path

from conftest import Connect
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tech2u_mta.catalogue import valid_for
from tech2u_mta.testing import ThreadedServer

REPLY = re.compile(rb"^([2-5]\d\d)([ -])(.*)$")
VERBS = [
    "HELO",
    "EHLO",
    "MAIL FROM:",
    "RCPT TO:",
    "DATA",
    "RSET",
    "NOOP",
    "VRFY",
    "EXPN",
    "HELP",
    "AUTH",
    "STARTTLS",
    "XCLIENT",
    "QUIT",
    "BDAT",
]
ADDRESSES = [
    "<alice@tech2u.com.au>",
    "<>",
    "<Postmaster>",
    '<"a b"@tech2u.com.au>',
    "<../../etc/passwd@tech2u.com.au>",
    "<a@[127.0.0.1]>",
    "<a@b>",
    "<" + "x" * 300 + "@tech2u.com.au>",
    "alice@tech2u.com.au",
]

lines = st.one_of(
    st.binary(max_size=200).map(lambda b: b.replace(b"\n", b"")),
    st.builds(
        lambda verb, addr, tail: f"{verb}{addr}{tail}".encode("utf-8", "replace"),
        st.sampled_from(VERBS),
        st.sampled_from(ADDRESSES) | st.text(max_size=40),
        st.sampled_from(
            [
                "",
                " SIZE=10",
                " SIZE=x",
                " BODY=8BITMIME",
                " AUTH=<>",
                " FOO=bar",
                " SMTPUTF8",
                "\x00",
                " \r",
            ]
        ),
    ),
)


def read_reply(reader) -> list[tuple[int, bytes]]:  # type: ignore[no-untyped-def]
    replies = []
    while True:
        line = reader.readline()
        assert line.endswith(b"\r\n"), line
        match = REPLY.match(line[:-2])
        assert match, line
        replies.append((int(match.group(1)), match.group(3)))
        if match.group(2) == b" ":
            return replies


def verb_of(line: bytes) -> str:
    word = line.split(b" ", 1)[0].split(b":", 1)[0].upper()
    return word.decode("ascii", "replace")


@settings(
    max_examples=60,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)
@given(st.lists(lines, min_size=1, max_size=12))
def test_random_commands(
    server: ThreadedServer, connect: Connect, mail_store: Path, script: list[bytes]
) -> None:
    with socket.create_connection(server.address, timeout=10) as sock:
        reader = sock.makefile("rb")
        assert read_reply(reader)[0][0] == 220
        for line in script:
            if verb_of(line) in ("QUIT", "DATA"):
                continue  # both end the dialogue this test drives
            sock.sendall(line + b"\r\n")
            replies = read_reply(reader)
            codes = {code for code, _ in replies}
            assert len(codes) == 1, replies
            code = codes.pop()
            assert code != 451, f"an internal error for {line!r}"
            assert valid_for(code, verb_of(line)), (line, code)
            for _, text in replies:
                assert b"Error:" not in text and b"Traceback" not in text
            if code == 421:
                break
    # The server still serves the next client.
    client = connect()
    assert client.noop()[0] == 250
    assert not list(mail_store.glob("*/*/tmp/*"))
