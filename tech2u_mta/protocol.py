"""The SMTP session: aiosmtpd's protocol with the policy checks wired in.

aiosmtpd 1.4.6 supplies the connection plumbing, STARTTLS, AUTH and the
simple commands.  This module replaces what must behave differently:

* the command loop, so that every reply comes from the catalogue, a client
  that closes after the final dot still gets its message delivered, and a
  refused session only ever hears 503;
* MAIL, RCPT and DATA, which run the checks of ``checks`` and deliver;
* ``push``, which swaps each reply text aiosmtpd writes on its own for the
  catalogue entry in ``REWRITES``.  A test holds that table against
  aiosmtpd's source, so a release that changes a text fails it.
"""

from __future__ import annotations

import asyncio
import binascii
import contextlib
import ipaddress
import logging
import re
import secrets
import ssl
from base64 import b64decode, b64encode
from collections import Counter, defaultdict
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime
from functools import partial
from typing import Any

from aiosmtpd.proxy_protocol import get_proxy
from aiosmtpd.smtp import (
    MISSING,
    SMTP,
    AuthResult,
    Envelope,
    LoginPassword,
    _Missing,
    syntax,
)
from aiosmtpd.smtp import Session as BaseSession

from . import checks, logs
from .addresses import AddressError, Mailbox, parse_params, parse_path
from .catalogue import Entry, R, Reply, render, valid_for
from .config import Config
from .data import DataReader
from .ids import hex_id
from .netset import NetSet, client_address
from .policy import Policies
from .store import MailStore, Spool, is_disk_full
from .xclient import ADVERTISED as XCLIENT_KEYWORD
from .xclient import Override, XclientError
from .xclient import merge as merge_xclient
from .xclient import parse as parse_xclient

# RFC 5321 4.5.3.1.4 allows 512 octets for a command line; MAIL may carry
# SIZE, BODY, SMTPUTF8 and AUTH=, and RFC 4954 5 asks for 500 more for AUTH.
COMMAND_LIMIT = 512
MAIL_LIMIT = 512 + 500 + 26 + 14 + 9
# The longest command line read whole: MAIL's limit, plus CRLF.
READ_LIMIT = MAIL_LIMIT + 2
# RFC 4954 4 holds 12288 octets enough for a line of an AUTH exchange; a
# longer one fails the AUTH command with 500.
AUTH_LINE_LIMIT = 12288
# RFC 5321 4.5.3.1.6: 1000 octets with CRLF, plus a stuffed dot.
LINE_LIMIT = 1001
# How long a stopping server waits for a session to take its 421 and end
# before it drops the connection (a client that reads nothing never does).
CLOSE_GRACE = 5.0
# Deliveries (and their fsyncs) that may run at once.
DELIVERY_THREADS = 32
# How long a session the server ends waits for the client to close first.
LINGER = 2.0
# How long a PROXY header may take to arrive.
PROXY_TIMEOUT = 10.0
# A session refused at connection is closed after this many commands.
REFUSED_COMMANDS = 3
# Replies that say the client got the protocol wrong; max_errors of them in
# a row end the session with 421.
PROTOCOL_ERRORS = frozenset({500, 501, 502, 503, 504, 555})

# aiosmtpd's own reply texts and the catalogue entry that replaces each.
# Patterns are matched against the whole text; named groups fill the entry.
REWRITES: list[tuple[re.Pattern[str], Entry]] = [
    (re.compile(p), e)
    for p, e in [
        (r"250 OK", R.OK),
        (r"221 Bye", R.BYE),
        (r"501 Syntax: (HELO|EHLO) hostname", R.BAD_ARGUMENTS),
        (r"501 Syntax: (QUIT|RSET|STARTTLS|VRFY <address>)", R.BAD_ARGUMENTS),
        (r"503 Error: send (HELO|EHLO) first", R.NEED_HELO),
        (r"454 TLS not available", R.TLS_NOT_AVAILABLE),
        (r"220 Ready to start TLS", R.TLS_READY),
        (r"500 Error: command 'AUTH' not recognized", R.UNRECOGNIZED),
        (
            r"538 5\.7\.11 Encryption required for requested authentication "
            r"mechanism",
            R.ENCRYPTION_REQUIRED,
        ),
        (r"503 Already authenticated", R.ALREADY_AUTHENTICATED),
        (r"501 (Not enough value|Too many values)", R.BAD_ARGUMENTS),
        (r"504 5\.5\.4 Unrecognized authentication type", R.PARAMETER_NOT_IMPLEMENTED),
        (r"235 2\.7\.0 Authentication successful", R.AUTH_OK),
        (r"535 5\.7\.8 Authentication credentials invalid", R.AUTH_FAILED),
        (r"501 5\.5\.2 Can't decode base64", R.BAD_BASE64),
        (r"501 5\.5\.2 Can't split auth value", R.BAD_ARGUMENTS),
        (r"250 Syntax: (?P<syntax>.+)", R.HELP_SYNTAX),
        (r"250 Supported commands: (?P<commands>.+)", R.HELP),
        (r"501 Supported commands: .+", R.PARAMETER_NOT_IMPLEMENTED),
        (r"502 Could not VRFY .*", R.BAD_ARGUMENTS),
        (
            r"252 Cannot VRFY user, but will accept message and attempt delivery",
            R.CANNOT_VRFY,
        ),
        (r"502 EXPN not implemented", R.NOT_IMPLEMENTED),
    ]
]


@dataclass
class Context:
    """What every session of one server shares."""

    config: Config
    policies: Policies
    store: MailStore
    tls: ssl.SSLContext | None = None
    sessions: set[PolicySMTP] = field(default_factory=set)
    # Threads for disk work: as many deliveries in flight as sessions may
    # want, not the default pool's few, so fsyncs overlap.
    delivery: ThreadPoolExecutor = field(
        default_factory=lambda: ThreadPoolExecutor(
            max_workers=DELIVERY_THREADS, thread_name_prefix="delivery"
        )
    )
    per_client: Counter[checks.IPAddress | None] = field(default_factory=Counter)
    limits: checks.Limits = field(init=False)
    xclient_hosts: NetSet = field(init=False)
    proxy_hosts: NetSet = field(init=False)

    def __post_init__(self) -> None:
        self.xclient_hosts = _netset(self.config.xclient_hosts)
        self.proxy_hosts = _netset(self.config.proxy_hosts)
        self.limits = checks.Limits(
            max_message_size=self.config.max_message_size,
            min_free_space=self.config.min_free_space,
            max_recipients=self.config.max_recipients,
        )


class Session(BaseSession):
    """aiosmtpd's session plus what the checks and the log need."""

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        super().__init__(loop)
        self.id = hex_id(4).lower()
        self.socket_address: checks.IPAddress | None = None
        self.proxy_address: checks.IPAddress | None = None
        self.xclient: Override | None = None
        self.policies = Policies()
        self.refused: Reply | None = None
        self.refusals = 0
        self.login: str | None = None
        self._legacy_login: Any = None

    # aiosmtpd sets this deprecated attribute on every AUTH and logs a
    # warning each time; keeping it quietly avoids a warning per login.
    @property
    def login_data(self) -> Any:
        return self._legacy_login

    @login_data.setter
    def login_data(self, value: Any) -> None:
        self._legacy_login = value

    @property
    def client(self) -> checks.IPAddress | None:
        """The client address every check and log line uses: what XCLIENT
        said, else what the PROXY header said, else the socket's peer.
        None when XCLIENT said the address is unknown."""
        if self.xclient is not None and "ADDR" in self.xclient.given:
            return self.xclient.addr
        if self.proxy_address is not None:
            return self.proxy_address
        return self.socket_address

    def carry_over(self, old: Session) -> None:
        """After STARTTLS aiosmtpd starts a new session (RFC 3207 4.2);
        who the client is and which policies it got stay the same."""
        self.id, self.policies = old.id, old.policies
        self.socket_address, self.proxy_address = old.socket_address, old.proxy_address
        self.xclient = old.xclient
        self.refused, self.refusals = old.refused, old.refusals


class Transaction(Envelope):
    """aiosmtpd's envelope plus the parsed sender and mailboxes."""

    def __init__(self) -> None:
        super().__init__()
        self.started = False  # MAIL was accepted; the sender may be <>
        self.sender: Mailbox | None = None
        self.declared_size: int | None = None
        self.mailboxes: list[str] = []  # distinct mailboxes to deliver to
        self.accepted = 0  # RCPTs accepted, duplicates included


class PolicySMTP(SMTP):
    """One SMTP session under the TECH 2U policies."""

    session: Session
    envelope: Transaction
    # aiosmtpd sizes its stream reader by this; a data line longer than it is
    # what DataReader refuses.
    line_length_limit = LINE_LIMIT

    def __init__(self, context: Context) -> None:
        self.context = context
        self.command = "CONNECT"
        self.errors = 0
        self.ending = False  # the server ends the session after this reply
        self.greeted = False
        self.connected_at = 0.0
        self._armed_at = 0.0
        self.spoke_first = False  # the client sent before the greeting
        # Whether, and as which address, this session counts in
        # context.per_client (a later XCLIENT changes the session's client,
        # not the count it took).
        self.admitted = False
        self.admitted_as: checks.IPAddress | None = None
        self.in_data: asyncio.Event | None = None  # set when DATA ends
        self.delivering: asyncio.Future[Any] | None = None
        self.answering: asyncio.Future[None] | None = None
        # aiosmtpd keeps these limits in a class-wide dict and grows the MAIL
        # limit by 26 on every EHLO; each session gets its own, fixed ones.
        self.command_size_limits = defaultdict(lambda: COMMAND_LIMIT)
        config = context.config
        super().__init__(
            Hooks(),
            data_size_limit=config.max_message_size,
            enable_SMTPUTF8=True,
            hostname=config.hostname,
            ident="tech2u-mta",
            tls_context=context.tls,
            timeout=config.idle_timeout,
            auth_require_tls=config.auth_require_tls,
            authenticator=_authenticate,
            loop=asyncio.get_running_loop(),
        )
        self.command_size_limits["MAIL"] = MAIL_LIMIT

    # -- connection ---------------------------------------------------------

    def _create_session(self) -> Session:
        session = Session(self.loop)
        if isinstance(self.session, Session):
            session.carry_over(self.session)
        return session

    def _create_envelope(self) -> Transaction:
        return Transaction()

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        first = self.transport is None
        super().connection_made(transport)
        if first:
            self.context.sessions.add(self)
            peer = self.session.peer
            if isinstance(peer, tuple):
                self.session.socket_address = client_address(peer[0])
            self.session.policies = self.context.policies

    def _decide_connect(self, stage: str = "connect") -> Reply:
        """The greeting for the client as it now stands: 220, or 554 for a
        blocklisted address, after which the session only hears 503."""
        session = self.session
        decision = checks.connect(session.policies, session.client)
        reply = self.render(decision.entry, host=self.hostname)
        session.refused = None if decision.accepted else reply
        self.log_decision(stage, decision, reply)
        return reply

    def data_received(self, data: bytes) -> None:
        if not self.greeted:
            self.spoke_first = True
        super().data_received(data)

    def connection_lost(self, error: Exception | None) -> None:
        self.context.sessions.discard(self)
        if self.admitted:
            per_client = self.context.per_client
            per_client[self.admitted_as] -= 1
            if per_client[self.admitted_as] <= 0:
                del per_client[self.admitted_as]
        logs.trace.debug("session=%s closed", self.session.id)
        super().connection_lost(error)

    def eof_received(self) -> bool | None:
        # aiosmtpd cancels the session here, losing what the client sent just
        # before it closed, such as a final dot; let the loop read it first.
        return asyncio.StreamReaderProtocol.eof_received(self)

    def _timeout_cb(self) -> None:
        self.close_with(R.TIMEOUT)

    def close_with(self, entry: Entry, reply: Reply | None = None) -> None:
        """Say ``entry`` (a 421) and close, from outside the command loop.
        A session already ending has had its last word and just closes."""
        if self.transport is None or self.transport.is_closing():
            return
        if not self.ending:
            self.ending = True
            reply = reply or self.render(entry)
            self._trace("<<", reply)
            self.transport.write(reply.encode() + b"\r\n")  # type: ignore[attr-defined]
        self.transport.close()

    # -- the command loop ---------------------------------------------------

    async def _handle_client(self) -> None:
        try:
            if self.context.config.proxy_protocol and not await self._read_proxy():
                self.ending = True
            else:
                await self.push(await self._greeting())
            while not self.ending and self._open():
                line = await self._read_command()
                if line is None:
                    break
                await self._run(line)
            if self.ending and self._open():
                await self._linger()
        except ConnectionError:
            pass  # the client went away; connection_lost cleans up
        except Exception as error:
            # Outside any command (a command's own errors get 451): say so
            # with a reference and end the session, rather than leave the
            # client waiting on a session nobody serves.
            reply = self.render(R.SESSION_ERROR)
            logs.errors.error(
                "session=%s ref=%s session ended by an error",
                self.session.id,
                reply.reference,
                exc_info=error,
            )
            self.ending = False
            self.close_with(R.SESSION_ERROR, reply)
        if self.transport is not None:
            self.transport.close()

    async def _greeting(self) -> Reply:
        """The first reply: a refusal when the server is too busy or the
        client did not wait for its turn, else the connect decision."""
        self.connected_at = self.loop.time()
        config = self.context.config
        if config.pregreet_wait:
            await asyncio.sleep(config.pregreet_wait)
        self.greeted = True
        refusal = self._admission()
        if refusal is None:
            return self._decide_connect()
        self.ending = True
        decision = checks.Decision(refusal, "admission", "")
        reply = self.render(refusal)
        self.log_decision("connect", decision, reply)
        return reply

    def _admission(self) -> Entry | None:
        config, context, client = self.context.config, self.context, self.session.client
        if self.spoke_first:
            # RFC 5321 3.1: the client waits for the greeting; spam engines
            # that do not are told so and dropped.
            return R.SPOKE_TOO_SOON
        if len(context.sessions) > config.max_connections:
            return R.TOO_MANY_CONNECTIONS
        if context.per_client[client] >= config.max_connections_per_client:
            return R.TOO_MANY_CONNECTIONS
        context.per_client[client] += 1
        self.admitted, self.admitted_as = True, client
        return None

    def _open(self) -> bool:
        return self.transport is not None and not self.transport.is_closing()

    async def _linger(self) -> None:
        """End a session the server chose to end without losing its last
        reply: stop sending, then read and drop what the client still sends
        for a moment.  Closing with unread input makes TCP send a reset,
        which can destroy the reply before the client reads it."""
        assert isinstance(self.transport, asyncio.WriteTransport)
        if self.transport.can_write_eof():
            self.transport.write_eof()
        with contextlib.suppress(TimeoutError, ConnectionError):
            await asyncio.wait_for(self._discard_input(), LINGER)

    async def _discard_input(self) -> None:
        while await self._reader.read(65536):
            pass

    async def _read_proxy(self) -> bool:
        """The PROXY header (HAProxy protocol v1 or v2) a trusted proxy puts
        before the SMTP dialogue; False when the session was closed."""
        session = self.session
        if not _trusted(session.socket_address, self.context.proxy_hosts):
            logs.errors.warning(
                "session=%s PROXY refused from %s", session.id, session.socket_address
            )
            await self.push(self.render(R.PROXY_DENIED))
            return False
        try:
            data = await asyncio.wait_for(get_proxy(self._reader), PROXY_TIMEOUT)
        except (TimeoutError, asyncio.IncompleteReadError):
            data = None
        if not data:
            logs.errors.warning("session=%s no valid PROXY header", session.id)
            await self.push(self.render(R.PROXY_DENIED))
            return False
        if isinstance(data.src_addr, ipaddress.IPv4Address | ipaddress.IPv6Address):
            session.proxy_address = client_address(str(data.src_addr))
        # The header itself came before the greeting, as it must; only what
        # arrives after it counts as speaking too soon.
        self.spoke_first = False
        # A v2 LOCAL header (a health check) names no client: the socket's
        # address stands.
        return True

    async def _run(self, line: bytes) -> None:
        try:
            await self._dispatch(line)
        except (asyncio.CancelledError, ConnectionError):
            raise
        except Exception as error:  # the client gets 451 and a reference
            await self.push(self._internal_error(error))

    async def _read_line(self, limit: int) -> bytes | None:
        """The next line, LF included, if it has at most ``limit`` octets.

        A longer line is read to its end and dropped (``b""``), so that
        neither memory nor the meaning of what follows depends on where it
        was cut; None means the client closed.
        """
        kept: list[bytes] = []
        size = 0
        while True:
            try:
                piece = await self._reader.readuntil(b"\n")
            except asyncio.IncompleteReadError:
                return None
            except asyncio.LimitOverrunError as overrun:
                piece = await self._reader.read(overrun.consumed)
            size += len(piece)
            if size <= limit:
                kept.append(piece)
            if piece.endswith(b"\n"):
                return b"".join(kept) if size <= limit else b""

    async def _read_command(self) -> bytes | None:
        """The next command line, ``b""`` for one too long, None at EOF."""
        return await self._read_line(READ_LIMIT)

    async def _dispatch(self, line: bytes) -> None:
        self.command = "*"
        if not line:
            return await self._bad_command(R.LINE_TOO_LONG)
        line = line.rstrip(b"\r\n")
        word, _, arg_bytes = line.partition(b" ")
        try:
            name = word.decode("ascii").upper()
        except UnicodeDecodeError:
            return await self._bad_command(R.NOT_ASCII)
        self._trace(
            ">>",
            name + " [redacted]" if name == "AUTH" else line.decode("utf-8", "replace"),
        )
        if self.session.refused and name != "QUIT":
            return await self.push(self.render(R.REFUSED_SESSION))
        limit = self.command_size_limits[name] if self.session.extended_smtp else 512
        if len(line) > limit:
            return await self._bad_command(R.LINE_TOO_LONG)
        method = self._smtp_methods.get(name)
        if method is None:
            return await self._bad_command(R.UNRECOGNIZED)
        age = self.loop.time() - self.connected_at
        if age > self.context.config.max_session_time:
            # A client that only ever sends NOOP resets the idle timer
            # forever; this bounds a session whatever it sends.
            self.ending = True
            return await self.push(self.render(R.SESSION_TOO_LONG))
        self._reset_timeout()
        self.command = name
        arg = arg_bytes.strip().decode("utf-8", "surrogateescape") or None
        await method(arg)

    async def _bad_command(self, entry: Entry) -> None:
        await self.push(self.render(entry))

    # -- XCLIENT -------------------------------------------------------------

    def xclient_allowed(self) -> bool:
        """XCLIENT is for the hosts the config trusts, judged by the socket's
        peer: neither a PROXY header nor an earlier XCLIENT can lend trust."""
        return _trusted(self.session.socket_address, self.context.xclient_hosts)

    async def smtp_XCLIENT(self, arg: str | None) -> None:
        if not self.xclient_allowed():
            return await self.push(self.render(R.XCLIENT_DENIED))
        if self.envelope.started:
            return await self.push(self.render(R.XCLIENT_IN_TRANSACTION))
        try:
            override = parse_xclient(arg)
        except XclientError:
            return await self.push(self.render(R.BAD_ARGUMENTS))
        self._apply_xclient(override)
        # Like Postfix, answer with a fresh greeting: the session starts
        # again, as the client it names, and must say EHLO again.
        await self.push(self._decide_connect("xclient"))

    def _apply_xclient(self, override: Override) -> None:
        session = self.session
        earlier = session.xclient
        if earlier is not None:
            override = merge_xclient(earlier, override)
        session.xclient = override
        if "LOGIN" in override.given:
            session.login = override.login
            session.authenticated = override.login is not None
        session.host_name = None
        session.extended_smtp = False
        self._set_rset_state()  # type: ignore[no-untyped-call]

    # -- AUTH ---------------------------------------------------------------

    async def challenge_auth(
        self,
        challenge: str | bytes,
        encode_to_b64: bool = True,
        log_client_response: bool = False,
    ) -> _Missing | bytes:
        """One step of an AUTH exchange (RFC 4954 4): a 334 challenge and the
        client's base64 answer, or MISSING once the client has been told why
        there is none.  aiosmtpd reads the answer without a bound that it
        handles, so an over-long one would end as an internal error.  The
        answer holds credentials and is never logged."""
        if isinstance(challenge, str):
            challenge = challenge.encode()
        if encode_to_b64:
            challenge = b64encode(challenge)
        # A challenge is a step of the exchange, not a reply: it goes out as
        # it is, past the rewriting of push.
        self._trace("<<", "334 [challenge]")
        await SMTP.push(self, b"334 " + challenge)
        line = await self._read_line(AUTH_LINE_LIMIT)
        if line is None:
            raise ConnectionResetError("client closed during AUTH")
        self._reset_timeout()
        return await self._auth_answer(line)

    async def _auth_answer(self, line: bytes) -> _Missing | bytes:
        problem = None
        answer = line.strip()
        if not line:
            problem = R.LINE_TOO_LONG
        elif answer == b"*":
            problem = R.AUTH_ABORTED  # RFC 4954 4: the client cancels with "*"
        else:
            try:
                return b64decode(answer, validate=True)
            except binascii.Error:
                problem = R.BAD_BASE64
        await self.push(self.render(problem))
        return MISSING

    # -- replies ------------------------------------------------------------

    def render(self, entry: Entry, more: tuple[str, ...] = (), **values: str) -> Reply:
        explainer = self.context.config.explainer_url
        return render(entry, explainer=explainer, more=more, **values)

    async def push(self, status: Any) -> None:
        reply = status if isinstance(status, Reply) else self._rewrite(status)
        if self.session.refused:
            reply = self._refused_reply(reply)
        else:
            reply = self._count_errors(reply)
        if not valid_for(reply.entry.code, self.command):
            # RFC 5321 4.3.2 names the codes each command may get; a reply
            # outside them is a bug of ours, worth a line in the log.
            logs.errors.error(
                "session=%s reply %d (%s) is not valid for %s",
                self.session.id,
                reply.entry.code,
                reply.entry.name,
                self.command,
            )
        self._trace("<<", reply)
        await super().push(reply)
        if self.session.refused and self.session.refusals > REFUSED_COMMANDS:
            self.ending = True

    def _count_errors(self, reply: Reply) -> Reply:
        """Protocol errors in a row, counted here where every reply passes;
        the one that reaches max_errors becomes 421 and ends the session."""
        code = reply.entry.code
        if code not in PROTOCOL_ERRORS:
            if code < 400:
                self.errors = 0
            return reply
        self.errors += 1
        if self.errors < self.context.config.max_errors:
            return reply
        self.ending = True
        return self.render(R.TOO_MANY_ERRORS)

    def _refused_reply(self, reply: Reply) -> Reply:
        """In a session refused at connection, all but the greeting and the
        answer to QUIT is 503 (RFC 5321 3.1), and it ends after a few."""
        if reply is self.session.refused or reply.entry is R.BYE:
            return reply
        self.session.refusals += 1
        if self.session.refusals > REFUSED_COMMANDS:
            return self.render(R.TOO_MANY_ERRORS)
        return self.render(R.REFUSED_SESSION)

    def _rewrite(self, text: str | bytes) -> Reply:
        if isinstance(text, bytes):
            text = text.decode("utf-8", "replace")
        for pattern, entry in REWRITES:
            match = pattern.fullmatch(text)
            if match:
                return self.render(entry, (), **match.groupdict())
        logs.errors.error(
            "session=%s unmapped aiosmtpd reply %s", self.session.id, logs.escape(text)
        )
        return self.render(R.LOCAL_ERROR)

    def _internal_error(self, error: BaseException) -> Reply:
        reply = self.render(R.LOCAL_ERROR)
        logs.errors.error(
            "session=%s ref=%s command=%s error in processing",
            self.session.id,
            reply.reference,
            self.command,
            exc_info=error,
        )
        return reply

    def _trace(self, direction: str, text: str) -> None:
        if logs.trace.isEnabledFor(logging.DEBUG):
            first = text.split("\r\n", 1)[0]
            logs.trace.debug(
                "session=%s %s %s", self.session.id, direction, logs.escape(first)
            )

    def log_decision(
        self, stage: str, decision: checks.Decision, reply: Reply, **extra: object
    ) -> None:
        session, envelope = self.session, self.envelope
        values: dict[str, object] = {
            "stage": stage,
            "session": session.id,
            "ref": reply.reference,
            "client": session.client or "unknown",
            "peer": session.socket_address
            if session.socket_address != session.client
            else None,
            "helo": session.host_name,
            "login": session.login,
            "sender": _address(envelope.sender) if envelope.started else None,
        }
        values.update(extra)
        values.update(
            code=decision.entry.code,
            enhanced=decision.entry.enhanced,
            check=decision.check,
            reason=decision.reason or None,
        )
        logs.decision(**values)

    # -- MAIL ---------------------------------------------------------------

    # HELP lists and explains only commands that carry their syntax.
    @syntax("MAIL FROM: <address>", extended=" [SP <mail-parameters>]")
    async def smtp_MAIL(self, arg: str | None) -> None:
        problem = self._transaction_problem(arg, "FROM:", mail=True)
        if problem:
            return await self.push(self.render(problem))
        assert arg is not None
        try:
            sender, rest = parse_path(arg[5:], smtputf8=True, reverse_path=True)
        except AddressError:
            return await self.push(self.render(R.BAD_SENDER_SYNTAX))
        problem, size, utf8 = self._mail_params(rest)
        if problem:
            return await self.push(self.render(problem))
        if not utf8 and sender is not None and not str(sender).isascii():
            # RFC 6531 3.4: an address beyond ASCII needs SMTPUTF8 on MAIL.
            return await self.push(self.render(R.BAD_SENDER_SYNTAX))
        self.envelope.smtp_utf8 = utf8
        free = self.context.store.free_space()
        decision = checks.sender(self.context.limits, size, free)
        await self._answer_mail(decision, sender, size)

    async def _answer_mail(
        self, decision: checks.Decision, sender: Mailbox | None, size: int | None
    ) -> None:
        reply = self.render(decision.entry)
        if decision.accepted:
            envelope = self.envelope
            envelope.started, envelope.sender = True, sender
            envelope.mail_from = _address(sender)
            envelope.declared_size = size
        else:
            # An accepted sender is in every RCPT line that follows; only a
            # refusal at MAIL needs a line of its own.
            self.log_decision("mail", decision, reply, sender=_address(sender))
        await self.push(reply)

    def _transaction_problem(
        self, arg: str | None, keyword: str, mail: bool
    ) -> Entry | None:
        if not self.session.host_name:
            return R.NEED_HELO
        if mail and self.envelope.started:
            return R.NESTED_MAIL
        if not mail and not self.envelope.started:
            return R.NEED_MAIL
        if arg is None or arg[: len(keyword)].upper() != keyword:
            return R.BAD_ARGUMENTS
        return None

    def _mail_params(self, rest: str) -> tuple[Entry | None, int | None, bool]:
        """MAIL parameters: SIZE (RFC 1870), BODY (RFC 6152), SMTPUTF8
        (RFC 6531) and AUTH (RFC 4954 5); anything else was not advertised.
        Returns the problem if any, the declared size, and SMTPUTF8."""
        try:
            params = parse_params(rest, smtputf8="SMTPUTF8" in rest.upper())
        except AddressError:
            return R.BAD_ARGUMENTS, None, False
        if params and not self.session.extended_smtp:
            return R.PARAMETER_UNRECOGNIZED, None, False
        size = params.pop("SIZE", None)
        if size is not None and not size.isdigit():
            return R.BAD_SIZE, None, False
        body = params.pop("BODY", "7BIT")
        if body is None or body.upper() not in ("7BIT", "8BITMIME"):
            return R.PARAMETER_UNRECOGNIZED, None, False
        utf8 = "SMTPUTF8" in params
        if params.pop("SMTPUTF8", None) is not None:
            return R.BAD_ARGUMENTS, None, False
        if "AUTH" in params and self._auth_offered():
            # RFC 4954 5: a server that does not trust the client's claim
            # still accepts the parameter and ignores it.
            params.pop("AUTH")
        if params:
            return R.PARAMETER_UNRECOGNIZED, None, False
        return None, int(size) if size is not None else None, utf8

    def _auth_offered(self) -> bool:
        return (
            not self.context.config.auth_require_tls or self._tls_protocol is not None
        )

    # -- RCPT ---------------------------------------------------------------

    @syntax("RCPT TO: <address>")
    async def smtp_RCPT(self, arg: str | None) -> None:
        problem = self._transaction_problem(arg, "TO:", mail=False)
        if problem:
            return await self.push(self.render(problem))
        assert arg is not None
        try:
            # RFC 6531 3.4: beyond ASCII only in a transaction with SMTPUTF8.
            to, rest = parse_path(arg[3:], smtputf8=self.envelope.smtp_utf8)
        except AddressError as err:
            return await self._refuse_rcpt(R.BAD_RECIPIENT_SYNTAX, arg[3:], str(err))
        if to is None:
            return await self._refuse_rcpt(R.BAD_RECIPIENT_SYNTAX, "<>", "null path")
        if rest:
            # No RCPT parameter is advertised (no DSN).
            return await self.push(self.render(R.PARAMETER_UNRECOGNIZED))
        await self._answer_rcpt(to)

    async def _answer_rcpt(self, to: Mailbox) -> None:
        session, envelope = self.session, self.envelope
        client = checks.Client(session.client, session.login)
        decision = checks.recipient(
            session.policies,
            self.context.limits,
            client,
            envelope.sender,
            to,
            envelope.accepted,
            envelope.declared_size,
            self.context.store.usage,
        )
        reply = self.render(decision.entry)
        if decision.accepted and decision.mailbox:
            envelope.accepted += 1
            envelope.rcpt_tos.append(str(to))
            if decision.mailbox not in envelope.mailboxes:
                envelope.mailboxes.append(decision.mailbox)
        self.log_decision("rcpt", decision, reply, to=str(to))
        await self.push(reply)

    async def _refuse_rcpt(self, entry: Entry, to: str, reason: str) -> None:
        decision = checks.Decision(entry, "syntax", reason)
        reply = self.render(entry)
        self.log_decision("rcpt", decision, reply, to=to)
        await self.push(reply)

    # -- DATA ---------------------------------------------------------------

    @syntax("DATA")
    async def smtp_DATA(self, arg: str | None) -> None:
        problem = self._data_problem(arg)
        if problem:
            return await self.push(self.render(problem))
        message_id = hex_id(6)
        try:
            spool = self.context.store.open_spool(self._trace_header(message_id))
        except OSError as error:
            return await self.push(self._store_error(error))
        self.in_data = asyncio.Event()
        try:
            await self.push(self.render(R.START_DATA))
            refusal = await self._receive(spool)
        except BaseException:
            spool.discard()
            raise
        finally:
            self.in_data.set()
        # The final dot has arrived, so the message is ours (RFC 5321
        # 4.1.1.4).  Its delivery and reply run as a task of their own that
        # the client leaving cannot cancel and shutdown waits for, so the
        # message is stored once and its reply goes out before any 421.
        self.answering = asyncio.ensure_future(
            self._end_of_data(spool, refusal, message_id)
        )
        self.answering.add_done_callback(_consume_error)
        await asyncio.shield(self.answering)

    def _data_problem(self, arg: str | None) -> Entry | None:
        if not self.session.host_name:
            return R.NEED_HELO
        if not self.envelope.started:
            return R.NEED_MAIL
        if not self.envelope.mailboxes:
            return R.NO_RECIPIENTS
        if arg:
            return R.BAD_ARGUMENTS
        return None

    async def _receive(self, spool: Spool) -> Entry | None:
        """Read the message up to CRLF.CRLF into ``spool``; the refusal it
        earned, if any, comes after the final dot (see ``data``)."""
        reader = DataReader(self._reader, self.context.config.max_message_size)
        while True:
            line = await reader.next_line()
            self._still_active()
            if line is None:
                return reader.refusal()
            if line:
                spool.write(line)

    def _still_active(self) -> None:
        """Push the idle timeout back, at most once a second (or a quarter
        of the timeout, if that is shorter): re-arming a timer for every
        line of a message costs more than the line."""
        now = self.loop.time()
        if now - self._armed_at >= min(1.0, self._timeout_duration / 4):
            self._armed_at = now
            self._reset_timeout()

    async def _end_of_data(
        self, spool: Spool, refusal: Entry | None, message_id: str
    ) -> None:
        envelope = self.envelope
        if refusal is not None:
            spool.discard()
            decision = checks.Decision(refusal, "message_format")
            reply = self.render(refusal)
        else:
            decision, reply = await self._deliver(spool, message_id)
        self.log_decision(
            "data",
            decision,
            reply,
            to=",".join(envelope.mailboxes),
            size=spool.size,
            id=message_id if decision.accepted else None,
        )
        self._set_post_data_state()  # type: ignore[no-untyped-call]
        await self.push(reply)

    async def _deliver(
        self, spool: Spool, message_id: str
    ) -> tuple[checks.Decision, Reply]:
        store, policies = self.context.store, self.session.policies
        mailboxes = list(self.envelope.mailboxes)

        def decide(size: int, usage: checks.Usage) -> checks.Decision:
            return checks.message(policies, mailboxes, size, usage)

        # The delivery runs on in its thread even if this session is
        # cancelled (the client left): once the final dot has arrived the
        # message is stored whole or not at all, and shutdown waits for it.
        self.delivering = self.loop.run_in_executor(
            self.context.delivery,
            partial(store.deliver, spool, mailboxes, message_id, decide, _accepted),
        )
        try:
            decision = await asyncio.shield(self.delivering)
        except OSError as error:
            reply = self._store_error(error)
            return checks.Decision(reply.entry, "delivery", str(error)), reply
        return decision, self.render(decision.entry, id=message_id)

    def _store_error(self, error: OSError) -> Reply:
        if is_disk_full(error):
            logs.errors.warning(
                "session=%s mail store full: %s", self.session.id, error
            )
            return self.render(R.STORE_FULL)
        return self._internal_error(error)

    def _trace_header(self, message_id: str) -> bytes:
        """Return-Path and Received fields (RFC 5321 4.4) for the message."""
        session, envelope = self.session, self.envelope
        now = datetime.now(UTC).strftime("%a, %d %b %Y %H:%M:%S +0000")
        helo = logs.escape(session.host_name or "unknown")
        proto = (
            "ESMTPA" if session.login else "ESMTP" if session.extended_smtp else "SMTP"
        )
        return (
            f"Return-Path: <{_address(envelope.sender)}>\r\n"
            f"Received: from {helo} ([{session.client or 'unknown'}])\r\n"
            f"\tby {self.hostname} (tech2u-mta) with {proto} id {message_id};\r\n"
            f"\t{now}\r\n"
        ).encode("utf-8", "surrogateescape")

    # -- shutdown -----------------------------------------------------------

    async def shutdown(self) -> None:
        """Say 421 4.3.2 and close (RFC 5321 3.8), and return only once the
        session has ended, so that nothing it holds, such as a spool,
        outlives the server.

        A message still arriving gets ``shutdown_grace`` seconds to reach
        its final dot; one whose final dot has arrived is stored and
        answered, so that it is stored exactly once.  A client that reads
        nothing cannot take the 421; after a while it is cut off.
        """
        if self.in_data is not None:
            grace = self.context.config.shutdown_grace
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self.in_data.wait(), grace)
        if self.delivering is not None:
            await asyncio.wait([self.delivering])  # disk work; never abandoned
        if self.answering is not None:
            await asyncio.wait([self.answering], timeout=CLOSE_GRACE)
        self.close_with(R.SHUTTING_DOWN)
        handler = self._handler_coroutine
        if handler is None:
            return
        await asyncio.wait([handler], timeout=CLOSE_GRACE)
        if not handler.done():
            if isinstance(self.transport, asyncio.Transport):
                self.transport.abort()
            handler.cancel()
            await asyncio.wait([handler])


class Hooks:
    """aiosmtpd's handler hooks for the commands we keep from it."""

    async def handle_HELO(
        self, server: PolicySMTP, session: Session, envelope: Transaction, host: str
    ) -> Reply:
        session.host_name = host
        return server.render(R.HELO_OK, host=server.hostname)

    async def handle_EHLO(
        self,
        server: PolicySMTP,
        session: Session,
        envelope: Transaction,
        host: str,
        responses: list[str],
    ) -> list[str]:
        session.host_name = host
        server.command_size_limits["MAIL"] = MAIL_LIMIT
        keywords = [
            "PIPELINING",
            f"SIZE {server.context.config.max_message_size}",
            "8BITMIME",
            "SMTPUTF8",
            "ENHANCEDSTATUSCODES",
        ]
        # aiosmtpd has decided whether STARTTLS and AUTH are on offer.
        keywords += [r[4:] for r in responses if r[4:].startswith(("STARTTLS", "AUTH"))]
        if server.xclient_allowed():
            keywords.append(XCLIENT_KEYWORD)
        return [server.render(R.EHLO_OK, host=server.hostname, more=tuple(keywords))]

    async def handle_NOOP(self, server: PolicySMTP, *_: Any) -> Reply:
        return server.render(R.OK)

    async def handle_RSET(self, server: PolicySMTP, *_: Any) -> Reply:
        return server.render(R.OK)

    async def handle_QUIT(self, server: PolicySMTP, *_: Any) -> Reply:
        return server.render(R.BYE)


def _authenticate(
    server: SMTP, session: BaseSession, envelope: Envelope, mechanism: str, data: Any
) -> AuthResult:
    assert isinstance(server, PolicySMTP) and isinstance(session, Session)
    if isinstance(data, LoginPassword):
        login = data.login.decode("utf-8", "replace")
        password = data.password.decode("utf-8", "replace")
        expected = session.policies.users.get(login)
        if expected is not None and secrets.compare_digest(expected, password):
            session.login = login
            return AuthResult(success=True, auth_data=login)
    return AuthResult(success=False, handled=False)


def _trusted(address: checks.IPAddress | None, hosts: NetSet) -> bool:
    return address is not None and address in hosts


def _netset(networks: tuple[str, ...]) -> NetSet:
    table = NetSet()
    for network in networks:
        table.add(ipaddress.ip_network(network))
    return table


def _consume_error(task: asyncio.Future[None]) -> None:
    """Mark the answer's error as seen: when the session was cancelled (the
    client left) nobody awaits it, and a push to a gone client fails."""
    if not task.cancelled():
        task.exception()


def _accepted(decision: checks.Decision) -> bool:
    return decision.accepted


def _address(mailbox: Mailbox | None) -> str:
    return "" if mailbox is None else str(mailbox)
