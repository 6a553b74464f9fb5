"""aiosmtpd's own reply texts against protocol.REWRITES.

PolicySMTP keeps some of aiosmtpd's commands and rewrites what they say into
catalogue entries.  The first tests read aiosmtpd's source, so that a release
that adds or changes a reply text fails here rather than on the wire; the
others trigger each rewrite over a socket and compare it with its entry.
"""

from __future__ import annotations

import ast
import inspect
import itertools
import re
import ssl
from base64 import b64encode
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import aiosmtpd.smtp
import pytest
from aiosmtpd.smtp import SMTP
from conftest import Reply, Wire, assert_reply, open_wire, own_server, smtp_session

from tech2u_mta.catalogue import Entry, R
from tech2u_mta.protocol import REWRITES, PolicySMTP
from tech2u_mta.testing import ThreadedServer

REPLY_TEXT = re.compile(r"^[2-5]\d\d[ -]")
# What stands for a part of a text computed at run time.
HOLE = "X"


@dataclass(frozen=True)
class Written:
    """A reply text in aiosmtpd's source, with each computed part as HOLE
    unless the function gives it a constant value."""

    owner: str  # the class, or "" at module level
    function: str  # the method or function, outermost
    text: str
    line: int

    @property
    def overridden(self) -> bool:
        ours = getattr(PolicySMTP, self.function, None)
        return self.owner == "SMTP" and ours is not getattr(SMTP, self.function)


class _TextFinder(ast.NodeVisitor):
    """Collects every text an expression of the source can build that looks
    like a reply: constants, f-strings, ``+`` and ``str.format``."""

    def __init__(self) -> None:
        self.found: list[Written] = []
        self.owner = ""
        self.function: ast.FunctionDef | ast.AsyncFunctionDef | None = None

    def visit_ClassDef(self, node: ast.ClassDef) -> None:
        outer, self.owner = self.owner, node.name
        self.generic_visit(node)
        self.owner = outer

    def visit_FunctionDef(self, node: ast.FunctionDef) -> None:
        self._enter(node)

    def visit_AsyncFunctionDef(self, node: ast.AsyncFunctionDef) -> None:
        self._enter(node)

    def _enter(self, node: ast.FunctionDef | ast.AsyncFunctionDef) -> None:
        if self.function is not None:  # a nested function counts as its outer one
            return self.generic_visit(node)
        self.function = node
        self.generic_visit(node)
        self.function = None

    def visit_Expr(self, node: ast.Expr) -> None:
        if not isinstance(node.value, ast.Constant):  # skip docstrings
            self.visit(node.value)

    def visit_Constant(self, node: ast.Constant) -> None:
        self._note(node)

    def visit_JoinedStr(self, node: ast.JoinedStr) -> None:
        self._note(node)

    def visit_BinOp(self, node: ast.BinOp) -> None:
        if self._is_text(node):
            return self._note(node)
        self.generic_visit(node)

    def visit_Call(self, node: ast.Call) -> None:
        if _format_template(node) is not None:
            self._note(node)
            for arg in node.args:
                self.visit(arg)
            return
        self.generic_visit(node)

    def _is_text(self, node: ast.expr) -> bool:
        if isinstance(node, ast.BinOp):
            return isinstance(node.op, ast.Add) and self._is_text(node.left)
        return isinstance(node, ast.Constant | ast.JoinedStr) or bool(
            isinstance(node, ast.Call) and _format_template(node) is not None
        )

    def _note(self, node: ast.expr) -> None:
        name = self.function.name if self.function else ""
        for text in self._texts(node):
            if REPLY_TEXT.match(text):
                self.found.append(Written(self.owner, name, text, node.lineno))

    def _texts(self, node: ast.expr) -> list[str]:
        """Every text ``node`` can be, as far as the source tells."""
        if isinstance(node, ast.Constant):
            value = node.value
            return [value.decode("latin-1") if isinstance(value, bytes) else str(value)]
        if isinstance(node, ast.JoinedStr):
            parts = [
                self._texts(v.value)
                if isinstance(v, ast.FormattedValue)
                else self._texts(v)
                for v in node.values
            ]
            return ["".join(p) for p in itertools.product(*parts)]
        if isinstance(node, ast.BinOp) and isinstance(node.op, ast.Add):
            pairs = itertools.product(self._texts(node.left), self._texts(node.right))
            return [a + b for a, b in pairs]
        if isinstance(node, ast.Call) and (template := _format_template(node)):
            args = itertools.product(*(self._texts(a) for a in node.args))
            return [template.replace("{}", "%s") % values for values in args]
        if isinstance(node, ast.Name):
            return self._values_of(node.id)
        return [HOLE]

    def _values_of(self, name: str) -> list[str]:
        """The constants a local name is given (defaults and assignments);
        HOLE too when it is ever given anything else."""
        if self.function is None:
            return [HOLE]
        values: list[str] = []
        arguments = self.function.args
        for arg, default in zip(
            arguments.args[::-1], arguments.defaults[::-1], strict=False
        ):
            if arg.arg == name and isinstance(default, ast.Constant):
                values.append(str(default.value))
        for node in ast.walk(self.function):
            if isinstance(node, ast.Assign | ast.AnnAssign) and _assigns(node, name):
                value = node.value
                if isinstance(value, ast.Constant):
                    values.append(str(value.value))
                else:
                    values.append(HOLE)
        return sorted(set(values)) or [HOLE]


def _format_template(node: ast.Call) -> str | None:
    function = node.func
    if (
        isinstance(function, ast.Attribute)
        and function.attr == "format"
        and isinstance(function.value, ast.Constant)
        and isinstance(function.value.value, str)
        and not node.keywords
    ):
        return function.value.value
    return None


def _assigns(node: ast.Assign | ast.AnnAssign, name: str) -> bool:
    targets = node.targets if isinstance(node, ast.Assign) else [node.target]
    return any(isinstance(t, ast.Name) and t.id == name for t in targets)


def aiosmtpd_texts() -> list[Written]:
    source = inspect.getsourcefile(aiosmtpd.smtp)
    assert source is not None
    finder = _TextFinder()
    finder.visit(ast.parse(Path(source).read_text(), source))
    return finder.found


# Texts that no client of this server can make aiosmtpd write, and why.
UNREACHABLE: dict[tuple[str, str], str] = {
    ("smtp_HELO", "250 X"): "Hooks.handle_HELO always returns its own reply",
    **{
        ("smtp_EHLO", text): "Hooks.handle_EHLO replaces aiosmtpd's EHLO lines"
        for text in [
            "250-X",
            "250-SIZE X",
            "250-8BITMIME",
            "250-SMTPUTF8",
            "250-STARTTLS",
            "250-AUTH X",
            "250 HELP",
        ]
    },
    ("check_auth_needed", "530 5.7.0 Authentication required"): (
        "auth_required is never set: mail from outside needs no login"
    ),
    ("handle_exception", "500 Error: (X) X"): (
        "only aiosmtpd's command loop calls it, and PolicySMTP has its own"
    ),
}


def _rewrite_for(text: str) -> re.Pattern[str] | None:
    for pattern, _ in REWRITES:
        if pattern.fullmatch(text):
            return pattern
    return None


def test_the_source_reader_finds_aiosmtpd_replies() -> None:
    """A guard for the tests below: a reader that found nothing would let
    everything pass."""
    found = {(w.function, w.text) for w in aiosmtpd_texts()}
    assert ("smtp_DATA", "354 End data with <CR><LF>.<CR><LF>") in found
    assert ("smtp_HELP", "501 Supported commands: X") in found
    assert ("check_helo_needed", "503 Error: send HELO first") in found
    assert ("challenge_auth", "334 X") in found
    assert len(found) > 40


def test_every_aiosmtpd_reply_is_overridden_rewritten_or_unreachable() -> None:
    """RFC 3463 and STYLE 1: every reply this server sends comes from the
    catalogue, so each text aiosmtpd can still write has a rewrite."""
    loose = [
        w
        for w in aiosmtpd_texts()
        if not w.overridden
        and _rewrite_for(w.text) is None
        and (w.function, w.text) not in UNREACHABLE
    ]
    assert loose == []


def test_every_rewrite_matches_a_text_aiosmtpd_still_writes() -> None:
    """A rewrite whose text is gone from aiosmtpd, or only in code that
    PolicySMTP replaces, is dead and hides a changed text."""
    live = [w.text for w in aiosmtpd_texts() if not w.overridden]
    dead = [p.pattern for p, _ in REWRITES if not any(map(p.fullmatch, live))]
    assert dead == []


def test_unreachable_table_names_texts_that_exist() -> None:
    """The table of unreachable texts goes stale when aiosmtpd changes."""
    found = {(w.function, w.text) for w in aiosmtpd_texts() if not w.overridden}
    assert set(UNREACHABLE) <= found


# -- each rewrite over a socket ---------------------------------------------

ENHANCED = re.compile(r"([245])\.\d{1,3}\.\d{1,3} ")
LOGIN = b64encode(b"\0alice@tech2u.com.au\0alice-password").decode()
WRONG = b64encode(b"\0alice@tech2u.com.au\0wrong").decode()
NO_NUL = b64encode(b"alice").decode()

# (what the client says first, the line whose reply is checked, the entry)
DIALOGUES: dict[str, tuple[list[str], str, Entry]] = {
    "HELP": ([], "HELP", R.HELP),
    "HELP NOOP": ([], "HELP NOOP", R.HELP_SYNTAX),
    "HELP BOGUS": ([], "HELP BOGUS", R.PARAMETER_NOT_IMPLEMENTED),
    "VRFY address": ([], "VRFY alice@tech2u.com.au", R.CANNOT_VRFY),
    "VRFY bad address": ([], "VRFY <<<", R.BAD_ARGUMENTS),
    "VRFY alone": ([], "VRFY", R.BAD_ARGUMENTS),
    "EXPN": ([], "EXPN staff", R.NOT_IMPLEMENTED),
    "STARTTLS without TLS": ([], "STARTTLS", R.TLS_NOT_AVAILABLE),
    "STARTTLS with arg": ([], "STARTTLS now", R.BAD_ARGUMENTS),
    "AUTH in HELO session": (["HELO client.example.com"], "AUTH PLAIN", R.UNRECOGNIZED),
    "AUTH before EHLO": ([], "AUTH PLAIN", R.NEED_HELO),
    "AUTH twice": (
        ["EHLO c", f"AUTH PLAIN {LOGIN}"],
        "AUTH LOGIN",
        R.ALREADY_AUTHENTICATED,
    ),
    "AUTH ok": (["EHLO c"], f"AUTH PLAIN {LOGIN}", R.AUTH_OK),
    "AUTH wrong": (["EHLO c"], f"AUTH PLAIN {WRONG}", R.AUTH_FAILED),
    "AUTH alone": (["EHLO c"], "AUTH", R.BAD_ARGUMENTS),
    "AUTH too many": (["EHLO c"], "AUTH PLAIN a b", R.BAD_ARGUMENTS),
    "AUTH BOGUS": (["EHLO c"], "AUTH BOGUS", R.PARAMETER_NOT_IMPLEMENTED),
    "AUTH bad base64": (["EHLO c"], "AUTH PLAIN !!!", R.BAD_BASE64),
    "AUTH unsplittable": (["EHLO c"], f"AUTH PLAIN {NO_NUL}", R.BAD_ARGUMENTS),
    "AUTH answer bad base64": (["EHLO c", "AUTH LOGIN"], "!!!", R.BAD_BASE64),
    "AUTH aborted": (["EHLO c", "AUTH LOGIN"], "*", R.AUTH_ABORTED),
    "AUTH answer too long": (["EHLO c", "AUTH PLAIN"], "A" * 13000, R.LINE_TOO_LONG),
    "QUIT with arg": ([], "QUIT now", R.BAD_ARGUMENTS),
    "RSET with arg": ([], "RSET now", R.BAD_ARGUMENTS),
    "HELO alone": ([], "HELO", R.BAD_ARGUMENTS),
    "EHLO alone": ([], "EHLO", R.BAD_ARGUMENTS),
    "MAIL before HELO": ([], "MAIL FROM:<a@example.com>", R.NEED_HELO),
}


def assert_enhanced(reply: Reply) -> None:
    """RFC 2034 4: each line of a 2xx, 4xx or 5xx reply starts with an
    enhanced code of the same class."""
    code, text = reply
    for line in text.decode().splitlines():
        match = ENHANCED.match(line)
        assert match and match.group(1) == str(code)[0], (code, line)


@pytest.fixture
def fresh(server: ThreadedServer) -> Iterator[Wire]:
    """A raw client of the test server that has said nothing yet."""
    wire = open_wire(server.address, ehlo=False)
    yield wire
    wire.close()


@pytest.mark.parametrize("name", DIALOGUES)
def test_rewritten_reply_over_a_socket(fresh: Wire, name: str) -> None:
    """RFC 3463 and RFC 2034: each text aiosmtpd writes reaches the client
    as its catalogue entry, enhanced code and all."""
    before, line, entry = DIALOGUES[name]
    for said in before:
        fresh.command(said)
    reply = fresh.command(line)
    assert_reply(reply, entry)
    assert_enhanced(reply)
    assert_reply(fresh.command("NOOP"), R.OK)


def test_help_lists_the_commands_this_server_has(fresh: Wire) -> None:
    """RFC 5321 4.1.1.8: HELP tells what the server takes, MAIL, RCPT and
    DATA (which PolicySMTP implements itself) included."""
    _, text = fresh.command("HELP")
    listed = set(text.decode().split(": ", 1)[1].split())
    assert {"EHLO", "HELO", "MAIL", "RCPT", "DATA", "RSET", "NOOP", "QUIT"} <= listed


def test_auth_challenge_passes_unchanged(fresh: Wire) -> None:
    """RFC 4954 4: a 334 challenge is part of the exchange, not a reply to
    rewrite; LOGIN's asks for the user name."""
    fresh.command("EHLO client.example.com")
    challenge = SMTP.AuthLoginUsernameChallenge.encode()
    assert fresh.command("AUTH LOGIN") == (334, b64encode(challenge))


def test_auth_needs_encryption_when_configured(mail_store: Path) -> None:
    """RFC 4954 6: 538 5.7.11 when the mechanism needs TLS and none is on."""
    with own_server(mail_store, auth_require_tls=True) as running:
        wire = open_wire(running.address)
        reply = wire.command(f"AUTH PLAIN {LOGIN}")
        assert_reply(reply, R.ENCRYPTION_REQUIRED)
        assert_enhanced(reply)
        wire.close()


def test_starttls_ready(mail_store: Path, certificate: tuple[Path, Path]) -> None:
    """RFC 3207 4: 220 before the handshake; the session then goes on over
    TLS with AUTH still offered."""
    cert, key = certificate
    with (
        own_server(mail_store, tls_cert=cert, tls_key=key) as running,
        smtp_session(running.address) as client,
    ):
        reply = client.starttls(context=ssl._create_unverified_context())
        assert_reply(reply, R.TLS_READY)
        assert_enhanced(reply)
        client.ehlo("client.example.com")
        assert client.has_extn("auth")
        assert_reply(client.noop(), R.OK)
