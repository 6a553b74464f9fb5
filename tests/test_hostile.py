"""Hostile input over real sockets (issue 4).

Three promises, each held against a running server:

* no way of writing an address makes the server create or touch a file
  outside the Maildir of a mailbox it has accepted;
* nothing a client sends reaches a log line raw: every line stays one line,
  free of control characters, and a client cannot forge a field;
* every spelling that RFC 5321 and RFC 6531 allow for a mailbox or a domain
  meets the same check as the plain one, and postmaster stays reachable.
"""

from __future__ import annotations

import base64
import contextlib
import logging
import os
import re
import socket
import unicodedata
from collections.abc import Iterator
from pathlib import Path

import pytest
from conftest import (
    BLOCKED,
    INSIDE,
    OUTSIDE,
    POLICIES,
    Reply,
    Wire,
    WireFactory,
    assert_reply,
    open_wire,
    own_server,
)

from tech2u_mta import logs
from tech2u_mta.addresses import AddressError, parse_path
from tech2u_mta.catalogue import Entry, R
from tech2u_mta.policy import from_data, load_folder
from tech2u_mta.store import MailStore
from tech2u_mta.testing import ThreadedServer

DOMAIN = "tech2u.com.au"
MESSAGE = b"Subject: hostile input\r\n\r\nbody\r\n"


def send_message(wire: Wire, body: bytes = MESSAGE) -> Reply:
    """DATA, the message and its final dot; the reply to the dot."""
    assert_reply(wire.command("DATA"), R.START_DATA)
    wire.send(body + b".\r\n")
    return wire.reply()


def tree(root: Path) -> set[str]:
    """Every file and folder under ``root``, as paths relative to it."""
    return {path.relative_to(root).as_posix() for path in root.rglob("*")}


def stored_messages(store: Path, local: str) -> list[bytes]:
    return [p.read_bytes() for p in (store / DOMAIN / local / "new").iterdir()]


# -- the mail store ----------------------------------------------------------

# Paths that try to name a folder outside the Maildir of a mailbox.  The mail
# store is <tmp>/jail/mailstore, so "../../x" from the domain's folder is
# <tmp>/jail/x and "../../../x" is <tmp>/x; both are decoy files.  "{tmp}"
# stands for the test's own folder.
ESCAPES = {
    "dot-dot": "<../../x@tech2u.com.au>",
    "quoted dot-dot": '<"../../../x"@tech2u.com.au>',
    "quoted slash": '<"a/b"@tech2u.com.au>',
    "slash in an atom": "<a/b@tech2u.com.au>",
    "absolute atom": "<{tmp}/abs@tech2u.com.au>",
    "quoted absolute": '<"{tmp}/abs"@tech2u.com.au>',
    "mailbox then dot-dot": '<"alice/../../../x"@tech2u.com.au>',
    "into a Maildir": '<"alice/new"@tech2u.com.au>',
    "backslashes": '<"..\\\\..\\\\x"@tech2u.com.au>',
    "quoted-pair dots": '<"\\.\\./\\.\\./x"@tech2u.com.au>',
    "percent-encoded": "<%2e%2e%2f%2e%2e%2fx@tech2u.com.au>",
    "dot": '<"."@tech2u.com.au>',
    "dot-dot alone": '<".."@tech2u.com.au>',
    "lock file": '<".lock"@tech2u.com.au>',
    "NUL": "<a\x00b@tech2u.com.au>",
    "quoted NUL": '<"../\x00x"@tech2u.com.au>',
    "long local part": "<" + "a" * 240 + "@tech2u.com.au>",
    "long traversal": '<"' + "../" * 70 + 'x"@tech2u.com.au>',
    "over-long path": "<" + "a" * 300 + "@tech2u.com.au>",
    "one-dot leaders": "<\u2024\u2024/x@tech2u.com.au>",
    "fullwidth dots and solidus": "<\uff0e\uff0e\uff0fx@tech2u.com.au>",
    "division slashes": '<"..\u2215..\u2215x"@tech2u.com.au>',
    "fullwidth postmaster, dots": (
        "<ｐｏｓｔｍａｓｔｅｒ\uff0f\uff0e\uff0e@tech2u.com.au>"
    ),
    "postmaster then dot-dot": '<"postmaster/../../x"@tech2u.com.au>',
    "domain of dots": "<x@..>",
    "domain with a path": "<postmaster@tech2u.com.au/../../x>",
    "route of dots": "<@../..:x@tech2u.com.au>",
    "literal with a path": "<postmaster@[x:../../x]>",
    "tilde": "<~root@tech2u.com.au>",
}

# What a hostile recipient may hear: a syntax refusal, no such mailbox, or
# no relaying.  Never 250.
REFUSED_RECIPIENT = {
    (entry.code, entry.enhanced)
    for entry in (R.BAD_RECIPIENT_SYNTAX, R.UNKNOWN_MAILBOX, R.RELAY_DENIED)
}


@pytest.mark.parametrize("stage", ["RCPT", "MAIL"])
@pytest.mark.parametrize("path", ESCAPES.values(), ids=ESCAPES.keys())
def test_address_cannot_leave_the_mail_store(
    tmp_path: Path, stage: str, path: str
) -> None:
    """The hostile path goes in beside alice, and a message is delivered:
    afterwards only alice's Maildir is new, and nothing around it moved."""
    path = path.replace("{tmp}", str(tmp_path))
    store = tmp_path / "jail" / "mailstore"
    store.mkdir(parents=True)
    decoys = {tmp_path / "x": b"outer decoy", tmp_path / "jail" / "x": b"decoy"}
    for decoy, content in decoys.items():
        decoy.write_bytes(content)
    neighbours = sorted(os.listdir(tmp_path.parent))

    with (
        own_server(store) as running,
        contextlib.closing(open_wire(running.address)) as wire,
    ):
        if stage == "RCPT":
            refuse_recipient_then_deliver(wire, path)
        else:
            send_as_sender(wire, path)

    [stored] = (store / DOMAIN / "alice" / "new").iterdir()
    maildir = f"jail/mailstore/{DOMAIN}/alice"
    assert tree(tmp_path) == {
        "x",
        "jail",
        "jail/x",
        "jail/mailstore",
        "jail/mailstore/.incoming",
        f"jail/mailstore/{DOMAIN}",
        maildir,
        *(f"{maildir}/{name}" for name in (".lock", ".usage", "tmp", "new", "cur")),
        f"{maildir}/new/{stored.name}",
    }
    assert {decoy: decoy.read_bytes() for decoy in decoys} == decoys
    assert sorted(os.listdir(tmp_path.parent)) == neighbours

    # A hostile sender that was taken is one Return-Path field, no more.
    lines = stored.read_bytes().split(b"\r\n")
    assert lines[0].startswith(b"Return-Path: <") and lines[0].endswith(b">")
    assert lines[1].startswith(b"Received: from ")


def refuse_recipient_then_deliver(wire: Wire, path: str) -> None:
    assert_reply(wire.command("MAIL FROM:<a@example.com> SMTPUTF8"), R.SENDER_OK)
    code, text = wire.command(f"RCPT TO:{path}".encode())
    assert (code, text[:5].decode()) in REFUSED_RECIPIENT, (code, text)
    assert_reply(wire.command(f"RCPT TO:<alice@{DOMAIN}>"), R.RECIPIENT_OK)
    assert_reply(send_message(wire), R.ACCEPTED)


def send_as_sender(wire: Wire, path: str) -> None:
    """A hostile sender is refused, or carried only in Return-Path."""
    reply = wire.command(f"MAIL FROM:{path} SMTPUTF8".encode())
    if reply[0] != R.SENDER_OK.code:
        assert_reply(reply, R.BAD_SENDER_SYNTAX)
        assert_reply(wire.command("MAIL FROM:<a@example.com>"), R.SENDER_OK)
    assert_reply(wire.command(f"RCPT TO:<alice@{DOMAIN}>"), R.RECIPIENT_OK)
    assert_reply(send_message(wire), R.ACCEPTED)


def test_sender_that_needs_quoting_is_stored_quoted(
    raw: WireFactory, mail_store: Path
) -> None:
    wire = raw()
    assert_reply(wire.command('MAIL FROM:<"../a b\\"c"@example.com>'), R.SENDER_OK)
    assert_reply(wire.command(f"RCPT TO:<alice@{DOMAIN}>"), R.RECIPIENT_OK)
    assert_reply(send_message(wire), R.ACCEPTED)

    [stored] = stored_messages(mail_store, "alice")
    assert stored.split(b"\r\n")[0] == b'Return-Path: <"../a b\\"c"@example.com>'


@pytest.mark.parametrize(
    "key",
    [
        "../x@tech2u.com.au",
        "x@..",
        "a/b@tech2u.com.au",
        "a@tech2u.com.au/..",
        ".@tech2u.com.au",
        "@tech2u.com.au",
        "a\x00@tech2u.com.au",
        "tech2u.com.au",
        "/etc/passwd@tech2u.com.au",
    ],
)
def test_mail_store_refuses_unsafe_mailbox_names(tmp_path: Path, key: str) -> None:
    """The last line of defence: whatever reaches the store as a mailbox
    name, it never names a folder but one of ``<root>/<domain>/<local>``."""
    store = MailStore(tmp_path / "mailstore")
    with pytest.raises(ValueError):
        store.folder(key)
    with pytest.raises(ValueError):
        store.usage(key)
    assert tree(tmp_path) == {"mailstore", "mailstore/.incoming"}


# -- the logs ----------------------------------------------------------------

# Text a client may slip into anything it sends.  A LF ends the command line
# where it stands, so what follows it arrives as a command of its own.
NASTIES = {
    "CR": b"\r",
    "CR and fields": b"\rstage=connect code=250 check=blocklist",
    "CRLF and fields": b"\r\nstage=connect code=250",
    "LF and fields": b"\nref=ABCD1234 code=554",
    "quote and fields": b'" code="250',
    "backslash escape": b"\\x0d\\n",
    "ESC sequences": b"\x1b[2J\x1b[31mred\x1b]0;title\x07",
    "NUL": b"\x00",
    "DEL": b"\x7f",
    "VT FF FS GS RS": b"\x0b\x0c\x1c\x1d\x1e",
    "NEL as UTF-8": "\u0085".encode(),
    "NEL as a byte": b"\x85",
    "line separator": "\u2028".encode(),
    "paragraph separator": "\u2029".encode(),
    "right-to-left override": "\u202e".encode(),
    "byte order mark": "\ufeff".encode(),
    "tag characters": "\U000e0041\U000e007f".encode(),
    "not UTF-8": b"\xff\xfe\xc3",
}

PASSWORD = "s3cret-pw"

# Controls, format characters, surrogates, private use, unassigned code
# points, line and paragraph separators, and spaces (of which only " " may
# appear in a log line).
UNSAFE_CATEGORIES = {"Cc", "Cf", "Cs", "Co", "Cn", "Zl", "Zp", "Zs"}

# The shape of a log line, as logs.escape and logs.fields write it.
BARE = r"[A-Za-z0-9@._:/+\-\[\]<>,()#]+"
QUOTED = r'"(?:[^"\\]|\\.)*"'
FIELD = re.compile(rf"([a-z_]+)=({BARE}|{QUOTED})")
DECISION = re.compile(rf"{FIELD.pattern}(?: {FIELD.pattern})*")
TRACE = re.compile(rf"session=[0-9a-f]+ (?:(?:>>|<<) (?:{BARE}|{QUOTED})|closed)")
ESCAPE = re.compile(r'\\(["\\]|x[0-9a-f]{2}|u[0-9a-f]{4}|U[0-9a-f]{8})')


def xtext(data: bytes) -> bytes:
    """RFC 3461 4 xtext, in which XCLIENT takes its values."""
    return b"".join(
        bytes([c]) if 0x21 <= c <= 0x7E and c not in b"+=" else b"+%02X" % c
        for c in data
    )


def hostile_commands(nasty: bytes) -> list[bytes]:
    """Every command that takes client text, with ``nasty`` inside it."""
    n = nasty
    login = f"alice@{DOMAIN}".encode() + n
    plain = base64.b64encode(b"\0" + login + b"\0" + PASSWORD.encode())
    return [
        b"EHLO a" + n + b"b",
        b"MAIL FROM:<a" + n + b"b@example.com> SMTPUTF8",
        b'MAIL FROM:<"a' + n + b'b"@example.com> SMTPUTF8',
        b"MAIL FROM:<a@example.com> X-JUNK=" + n,
        b"MAIL FROM:<a@example.com> SMTPUTF8",
        b"RCPT TO:<a" + n + b"b@tech2u.com.au>",
        b'RCPT TO:<"a' + n + b'b"@tech2u.com.au>',
        b"RCPT TO:<alice@tech2u.com.au> NOTIFY=" + n,
        b"RSET",
        n + b"FOO" + n,
        b"FOO " + n,
        b"VRFY a" + n + b"b",
        b"HELP a" + n + b"b",
        b"NOOP a" + n + b"b",
        b"AUTH PLAIN " + plain,
        b"AUTH LOGIN",
        base64.b64encode(login),
        base64.b64encode(PASSWORD.encode()),
        b"AUTH X" + n,
        b"AUTH PLAIN " + n,
        b"XCLIENT NAME=a" + n + b"b",
        b"XCLIENT HELO=" + xtext(b"a" + n + b"b"),
        b"XCLIENT LOGIN=" + xtext(b"a" + n + b"b"),
        b"XCLIENT ADDR=IPV6:fe80::1%" + xtext(n),
        b"HELO a" + n + b"b",
        b"MAIL FROM:<a@example.com>",
        b"RCPT TO:<nobody@tech2u.com.au>",
    ]


@pytest.fixture
def captured(caplog: pytest.LogCaptureFixture) -> pytest.LogCaptureFixture:
    """Both log streams at DEBUG, as the server in its thread writes them."""
    caplog.set_level(logging.DEBUG, logger="tech2u_mta.decision")
    caplog.set_level(logging.DEBUG, logger="tech2u_mta.trace")
    return caplog


def our_records(caplog: pytest.LogCaptureFixture) -> list[logging.LogRecord]:
    return [r for r in list(caplog.records) if r.name.startswith("tech2u_mta")]


def unescape(value: str) -> str:
    """A field value as the client sent it: logs.escape undone."""
    if not value.startswith('"'):
        return value
    return ESCAPE.sub(
        lambda m: m[1] if len(m[1]) == 1 else chr(int(m[1][1:], 16)), value[1:-1]
    )


def decision_fields(text: str) -> dict[str, str]:
    """The fields of a decision line, each named once; every ``=`` in the
    line starts a field, so a grep for ``code=550`` finds only real ones."""
    assert DECISION.fullmatch(text), text
    pairs = FIELD.findall(text)
    keys = [key for key, _ in pairs]
    assert len(keys) == len(set(keys)) == text.count("="), text
    return {key: unescape(value) for key, value in pairs}


def assert_clean(record: logging.LogRecord) -> None:
    """One line, nothing unsafe in it, and no error or traceback."""
    text = logging.Formatter("%(name)s %(levelname)s %(message)s").format(record)
    unsafe = {c for c in text if unicodedata.category(c) in UNSAFE_CATEGORIES}
    assert unsafe <= {" "}, text
    assert record.exc_info is None and record.levelno < logging.ERROR, text


@pytest.mark.parametrize("nasty", NASTIES.values(), ids=NASTIES.keys())
def test_client_text_never_reaches_a_log_line_raw(
    raw: WireFactory, captured: pytest.LogCaptureFixture, nasty: bytes
) -> None:
    # One go, since a LF in ``nasty`` makes more commands; a NOOP after each
    # keeps the run of errors short of the limit that ends the session.
    wire = raw(ehlo=False)
    wire.send(b"".join(c + b"\r\nNOOP\r\n" for c in hostile_commands(nasty)))
    wire.send(b"QUIT\r\n")
    wire.rest()  # every reply, up to the close after QUIT
    wire.close()

    records = our_records(captured)
    for record in records:
        assert_clean(record)
    decisions = [r.getMessage() for r in records if r.name == logs.decisions.name]
    fields = [decision_fields(text) for text in decisions]
    assert [f["stage"] for f in fields].count("connect") == 1

    # A trace line has one field, its session, so that grepping for one
    # session's id finds only that session's lines.
    traced = [r.getMessage() for r in records if r.name == logs.trace.name]
    assert traced
    assert [t for t in traced if not TRACE.fullmatch(t) or t.count("=") != 1] == []
    assert [t for t in decisions + traced if PASSWORD in t] == []

    # The HELO name is logged, and reads back as it came.
    helo = (b"HELO a" + nasty + b"b").split(b"\n")[0].rstrip(b"\r")[5:].strip()
    rcpt = [f for f in fields if f["stage"] == "rcpt"]
    assert rcpt and rcpt[-1]["helo"] == helo.decode("utf-8", "surrogateescape")


ONE_LINE_NASTIES = {k: v for k, v in NASTIES.items() if b"\n" not in v}


@pytest.mark.parametrize(
    "nasty", ONE_LINE_NASTIES.values(), ids=ONE_LINE_NASTIES.keys()
)
def test_hostile_helo_stays_inside_the_received_field(
    raw: WireFactory, mail_store: Path, nasty: bytes
) -> None:
    wire = raw(ehlo=False)
    assert wire.command(b"EHLO a" + nasty + b"b")[0] == R.EHLO_OK.code
    assert_reply(wire.command("MAIL FROM:<a@example.com>"), R.SENDER_OK)
    assert_reply(wire.command(f"RCPT TO:<alice@{DOMAIN}>"), R.RECIPIENT_OK)
    assert_reply(send_message(wire), R.ACCEPTED)

    [stored] = stored_messages(mail_store, "alice")
    header = stored.decode("utf-8", "surrogateescape").split("\r\n")[:4]
    assert header[0].startswith("Return-Path: ")
    assert header[1].startswith("Received: from ")
    assert header[2].startswith("\tby ") and header[3].startswith("\t")
    text = "".join(header).replace("\t", " ")
    assert {c for c in text if unicodedata.category(c) in UNSAFE_CATEGORIES} <= {" "}
    assert stored.endswith(MESSAGE)


def test_xclient_address_with_a_zone_is_refused(raw: WireFactory) -> None:
    """A zone names an interface of the host that wrote it, never a client."""
    wire = raw()
    assert_reply(wire.command("XCLIENT ADDR=IPV6:fe80::1%+85+3Dx"), R.BAD_ARGUMENTS)


@pytest.mark.parametrize("value", ["a+85b", "a+C2+85b", "a+E2+80+A8b", "a+FFb"])
def test_xclient_value_with_a_control_is_refused(raw: WireFactory, value: str) -> None:
    wire = raw()
    assert_reply(wire.command(f"XCLIENT LOGIN={value}"), R.BAD_ARGUMENTS)


@pytest.mark.parametrize(
    ("value", "logged"),
    [
        ("alice@tech2u.com.au", "alice@tech2u.com.au"),
        ("from 127.0.0.3", '"from 127.0.0.3"'),
        ("", '""'),
        ("a\r\nstage=connect code=250", '"a\\x0d\\x0astage\\x3dconnect code\\x3d250"'),
        ('a" code="250', '"a\\" code\\x3d\\"250"'),
        ("a\\b", '"a\\\\b"'),
        ("\x1b[31m", '"\\x1b[31m"'),
        ("a\x85b\xa0c", '"a\\x85b\\xa0c"'),
        ("a\u2028b\u202ec", '"a\\u2028b\\u202ec"'),
        ("\udcff", '"\\udcff"'),
        ("\U000e0041", '"\\U000e0041"'),
        ("пример@почта.рф", '"пример@почта.рф"'),
    ],
)
def test_escape(value: str, logged: str) -> None:
    assert logs.escape(value) == logged
    assert unescape(logged) == value


# -- one mailbox, one domain, however written --------------------------------

DISABLED = R.MAILBOX_DISABLED
SYNTAX = R.BAD_RECIPIENT_SYNTAX

# The disabled mailbox olduser@tech2u.com.au, written every way RFC 5321 and
# RFC 6531 allow, and in forms that only look like it, each with the reply
# it must get.  None is ever 250.
OLDUSER_FORMS: dict[str, tuple[str, Entry]] = {
    "plain": ("<olduser@tech2u.com.au>", DISABLED),
    "quoted": ('<"olduser"@tech2u.com.au>', DISABLED),
    "upper case": ("<OLDUSER@TECH2U.COM.AU>", DISABLED),
    "mixed case": ("<OldUser@Tech2U.Com.Au>", DISABLED),
    "trailing dot": ("<olduser@tech2u.com.au.>", DISABLED),
    "quoted-pair": ('<"old\\user"@tech2u.com.au>', DISABLED),
    "all quoted-pairs": ('<"\\o\\l\\d\\u\\s\\e\\r"@tech2u.com.au>', DISABLED),
    "quoted, upper case, trailing dot": ('<"OLDUSER"@TECH2U.com.au.>', DISABLED),
    "source route": ("<@relay.example:olduser@tech2u.com.au>", DISABLED),
    "two-hop route": ("<@a.example,@b.example:OldUser@tech2u.com.au.>", DISABLED),
    # RFC 5321 4.1.2: a route names domains (At-domain), never literals.
    "route through a literal": ("<@[192.0.2.1]:olduser@tech2u.com.au>", SYNTAX),
    "long s": ("<olduſer@tech2u.com.au>", DISABLED),
    "fullwidth local part": ("<ｏｌｄｕｓｅｒ@tech2u.com.au>", DISABLED),
    "fullwidth capitals": ("<ＯＬＤＵＳＥＲ@tech2u.com.au>", DISABLED),
    "mathematical bold": ("<𝐨𝐥𝐝𝐮𝐬𝐞𝐫@tech2u.com.au>", DISABLED),
    "zero-width space": ("<old\u200buser@tech2u.com.au>", DISABLED),
    "soft hyphen": ("<old\u00aduser@tech2u.com.au>", DISABLED),
    "quoted zero-width joiner": ('<"old\u200duser"@tech2u.com.au>', DISABLED),
    "fullwidth domain": ("<olduser@ｔｅｃｈ２ｕ.com.au>", DISABLED),
    "fullwidth capitals throughout": (
        "<ＯＬＤＵＳＥＲ@ＴＥＣＨ２Ｕ.ＣＯＭ.ＡＵ>",
        DISABLED,
    ),
    "soft hyphen in domain": ("<olduser@tech\u00ad2u.com.au>", DISABLED),
    "fullwidth full stops": ("<olduser@tech2u\uff0ecom\uff0eau>", SYNTAX),
    "ideographic full stop at the end": ("<olduser@tech2u.com.au\u3002>", SYNTAX),
    "two trailing dots": ("<olduser@tech2u.com.au..>", SYNTAX),
    "leading dot": ("<olduser@.tech2u.com.au>", SYNTAX),
    "A-label of nothing": ("<olduser@xn--tech2u-.com.au>", SYNTAX),
    "NUL": ("<olduser\x00@tech2u.com.au>", SYNTAX),
    "right-to-left override": ("<olduser@tech2u.com.au\u202e>", SYNTAX),
    "Cyrillic o: another mailbox": ("<\u043elduser@tech2u.com.au>", R.UNKNOWN_MAILBOX),
    "a dot: another mailbox": ("<old.user@tech2u.com.au>", R.UNKNOWN_MAILBOX),
    "address literal: not ours": ("<olduser@[127.0.0.1]>", R.RELAY_DENIED),
}


@pytest.mark.parametrize(
    ("path", "entry"), OLDUSER_FORMS.values(), ids=OLDUSER_FORMS.keys()
)
def test_every_form_of_a_disabled_mailbox_meets_its_check(
    raw: WireFactory, path: str, entry: Entry
) -> None:
    wire = raw()
    assert_reply(wire.command("MAIL FROM:<a@example.com> SMTPUTF8"), R.SENDER_OK)
    assert_reply(wire.command(f"RCPT TO:{path}".encode()), entry)


# A TECH 2U sender, written every way, from a client outside the TECH 2U
# network: RCPT gets 551, whatever the local part.
FAKE_SENDER_FORMS = {
    "plain": "<alice@tech2u.com.au>",
    "upper-case domain": "<alice@TECH2U.COM.AU>",
    "trailing dot": "<alice@tech2u.com.au.>",
    "quoted": '<"alice"@tech2u.com.au>',
    "quoted-pair, mixed case, trailing dot": '<"al\\ice"@Tech2U.com.au.>',
    "source route": "<@relay.example:alice@tech2u.com.au>",
    "fullwidth domain": "<alice@ｔｅｃｈ２ｕ.com.au>",
    "fullwidth capitals": "<alice@ＴＥＣＨ２Ｕ.ＣＯＭ.ＡＵ>",
    "soft hyphen in domain": "<alice@tech\u00ad2u.com.au>",
    "fullwidth local part": "<ａｌｉｃｅ@tech2u.com.au>",
    "no such mailbox": "<nobody@tech2u.com.au>",
    "disabled mailbox": "<olduser@tech2u.com.au>",
    "postmaster": "<postmaster@tech2u.com.au>",
    "hostile local part": '<"../../x"@tech2u.com.au>',
}
# ... and forms that are no domain at all, which MAIL refuses outright.
FAKE_SENDER_REFUSED = {
    "fullwidth full stops": "<alice@tech2u\uff0ecom\uff0eau>",
    "ideographic full stop at the end": "<alice@tech2u.com.au\u3002>",
    "two trailing dots": "<alice@tech2u.com.au..>",
    "A-label of nothing": "<alice@xn--tech2u-.com.au>",
}


@pytest.mark.parametrize("path", FAKE_SENDER_FORMS.values(), ids=FAKE_SENDER_FORMS)
def test_every_form_of_a_tech2u_sender_from_outside_gets_551(
    raw: WireFactory, path: str
) -> None:
    wire = raw(OUTSIDE)
    assert_reply(wire.command(f"MAIL FROM:{path} SMTPUTF8".encode()), R.SENDER_OK)
    assert_reply(wire.command(f"RCPT TO:<bob@{DOMAIN}>"), R.FAKE_CUSTOMER)


@pytest.mark.parametrize("path", FAKE_SENDER_REFUSED.values(), ids=FAKE_SENDER_REFUSED)
def test_malformed_forms_of_a_tech2u_sender_are_refused(
    raw: WireFactory, path: str
) -> None:
    wire = raw(OUTSIDE)
    reply = wire.command(f"MAIL FROM:{path} SMTPUTF8".encode())
    assert_reply(reply, R.BAD_SENDER_SYNTAX)


@pytest.mark.parametrize("path", ["<Postmaster>", "<postmaster>"])
def test_bare_postmaster_is_no_sender(raw: WireFactory, path: str) -> None:
    """RFC 5321 4.1.2: a reverse-path has a domain.  Taken bare, mail from
    outside would go out as from the local postmaster, past the 551 rule."""
    wire = raw(OUTSIDE)
    assert_reply(wire.command(f"MAIL FROM:{path}"), R.BAD_SENDER_SYNTAX)


@pytest.mark.parametrize("path", ["<Postmaster>", "<POSTMASTER>", "<postmaster>"])
def test_bare_postmaster_is_a_forward_path_only(path: str) -> None:
    mailbox, _ = parse_path(path)
    assert mailbox is not None and mailbox.key == "postmaster"
    with pytest.raises(AddressError):
        parse_path(path, reverse_path=True)


POSTMASTER_FORMS = [
    "<postmaster@tech2u.com.au>",
    "<POSTMASTER@TECH2U.COM.AU>",
    "<PostMaster@Tech2U.com.au.>",
    '<"postmaster"@tech2u.com.au>',
    '<"Post\\master"@tech2u.com.au>',
    "<@relay.example:postmaster@tech2u.com.au>",
    "<Postmaster>",
    "<POSTMASTER>",
    "<pOsTmAsTeR>",
    "<postmaster@ｔｅｃｈ２ｕ.com.au>",
    "<ｐｏｓｔｍａｓｔｅｒ@tech2u.com.au>",
    "<poſtmaſter@tech2u.com.au>",
]


@pytest.mark.parametrize("source", [INSIDE, OUTSIDE])
@pytest.mark.parametrize(
    "sender", ["<olduser@tech2u.com.au>", "<OLDUSER@TECH2U.COM.AU.>", "<>"]
)
def test_postmaster_is_reachable_in_every_form(
    raw: WireFactory, mail_store: Path, source: str, sender: str
) -> None:
    """RFC 5321 4.5.1: every form reaches postmaster, even from a sender
    that looks disabled or fake, and all reach the one Maildir."""
    wire = raw(source)
    assert_reply(wire.command(f"MAIL FROM:{sender} SMTPUTF8"), R.SENDER_OK)
    for path in POSTMASTER_FORMS:
        assert_reply(wire.command(f"RCPT TO:{path}".encode()), R.RECIPIENT_OK)
    assert_reply(send_message(wire), R.ACCEPTED)

    assert {p.name for p in mail_store.iterdir()} == {".incoming", DOMAIN}
    assert {p.name for p in (mail_store / DOMAIN).iterdir()} == {"postmaster"}
    assert len(stored_messages(mail_store, "postmaster")) == 1


# -- the blocklist, through a dual-stack socket -------------------------------


@contextlib.contextmanager
def dual_stack(mail_store: Path, blocklist: list[str]) -> Iterator[ThreadedServer]:
    """A server on "::" that takes IPv4 clients too; its socket shows them
    as IPv4-mapped IPv6 addresses (::ffff:127.0.0.2)."""
    if not socket.has_dualstack_ipv6():
        pytest.skip("no dual-stack IPv6 sockets here")
    policies = from_data(
        domains=load_folder(POLICIES, None).domains,
        networks=[f"{INSIDE}/32"],
        blocklist=blocklist,
        mailboxes=[f"alice@{DOMAIN} active"],
    )
    with own_server(mail_store, policies, listen=("::", 0)) as running:
        yield running


def greeting(port: int, source: str) -> Reply:
    """The greeting a client from ``source`` gets from 127.0.0.1, over IPv4
    or, for a mapped ``source``, over IPv6 to ::ffff:127.0.0.1."""
    target = "::ffff:127.0.0.1" if ":" in source else "127.0.0.1"
    wire = Wire((target, port), source)
    try:
        return wire.reply()
    finally:
        wire.close()


@pytest.mark.parametrize("listed", [BLOCKED, "::ffff:" + BLOCKED])
@pytest.mark.parametrize(
    ("source", "entry"),
    [
        (BLOCKED, R.BLOCKLISTED),
        (OUTSIDE, R.GREETING),
        ("::ffff:" + BLOCKED, R.BLOCKLISTED),
        ("::ffff:" + OUTSIDE, R.GREETING),
    ],
)
def test_blocklist_matches_ipv4_clients_of_a_dual_stack_socket(
    mail_store: Path,
    captured: pytest.LogCaptureFixture,
    listed: str,
    source: str,
    entry: Entry,
) -> None:
    """The entry, written as IPv4 or IPv4-mapped, meets the client however
    its socket shows it; the log names the client in IPv4."""
    with dual_stack(mail_store, [listed]) as running:
        assert_reply(greeting(running.address[1], source), entry)

    [connect] = [
        decision_fields(r.getMessage())
        for r in our_records(captured)
        if r.name == logs.decisions.name
    ]
    assert connect["client"] == source.removeprefix("::ffff:")
