"""The catalogue: every reply the server can give, as data.

The short texts of the 4xx and 5xx entries are the reply lines of the TECH 2U
page (``emailerrorcodes.txt``); the longer ``detail`` lines are the project's
own words.  Every entry names the commands it may answer, so that a test can
hold each one against the reply codes RFC 5321 4.3.2 allows for that command.

An error reply is rendered on several lines (RFC 5321 4.2.1)::

    550-5.2.1 Mailbox disabled
    550-5.2.1 <detail, if any>
    550 5.2.1 http://www.tech2u.com.au/member/emailerrorcodes.html#550

Entries marked ``support`` ask the sender to contact the support desk, so the
rendered reply carries a reference that the decision log line carries too.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from .ids import hex_id

DEFAULT_EXPLAINER = "http://www.tech2u.com.au/member/emailerrorcodes.html"

# The commands a reply can answer.  "CONNECT" is the greeting and anything the
# server says on its own before closing; "DATA" is the 354 and the reply after
# the final dot; "*" stands for any command (421 may answer anything,
# RFC 5321 3.8).
ANY = frozenset({"*"})

# RFC 5321 4.3.2 (with RFC 3207 for STARTTLS and RFC 4954 for AUTH): the
# codes each command may answer with.
VALID_CODES: dict[str, frozenset[int]] = {
    name: frozenset(codes)
    for name, codes in {
        "CONNECT": {220, 554},
        "EHLO": {250, 504, 550, 502},
        "HELO": {250, 504, 550, 502},
        "MAIL": {250, 552, 451, 452, 550, 553, 503, 455, 555},
        "RCPT": {250, 251, 550, 551, 552, 553, 450, 451, 452, 503, 455, 555},
        "DATA": {354, 250, 552, 554, 451, 452, 450, 550, 503},
        "RSET": {250},
        "VRFY": {250, 251, 252, 550, 551, 553, 502, 504},
        "EXPN": {250, 252, 550, 500, 502, 504},
        "HELP": {211, 214, 502, 504},
        "NOOP": {250},
        "QUIT": {221},
        "STARTTLS": {220, 454, 501},
        "AUTH": {235, 334, 432, 454, 500, 501, 503, 504, 530, 534, 535, 538},
        # Postfix's XCLIENT: a new greeting, or a refusal.
        "XCLIENT": {220, 554, 501, 503, 550},
    }.items()
}
# Any command may get these (RFC 5321 4.3.2 for 421, 500 and 501; 503 is
# what RFC 5321 3.1 asks for after a 554 greeting).  451 is the one liberty
# taken: an error of our own is a "local error in processing" whatever the
# command, and clients read an unexpected code by its first digit (4.2.1).
ANY_COMMAND_CODES = frozenset({421, 451, 500, 501, 503})


def valid_for(code: int, command: str) -> bool:
    """Whether ``code`` is a valid answer to ``command``."""
    if code in ANY_COMMAND_CODES:
        return True
    return code in VALID_CODES.get(command, frozenset())


@dataclass(frozen=True, slots=True)
class Entry:
    """One reply of the catalogue."""

    code: int
    enhanced: str | None
    text: str
    commands: frozenset[str]
    detail: tuple[str, ...] = ()
    support: bool = False
    name: str = field(default="", compare=False)

    def __set_name__(self, owner: type, name: str) -> None:
        # The attribute name in the catalogue class becomes the entry's name.
        object.__setattr__(self, "name", name)

    @property
    def is_error(self) -> bool:
        return self.code >= 400


class Reply(str):
    """A rendered reply, ready for the wire.

    It is a ``str`` so that aiosmtpd can push it unchanged; the protocol layer
    tells it apart from aiosmtpd's own texts by its type.
    """

    entry: Entry
    reference: str | None

    def __new__(cls, text: str, entry: Entry, reference: str | None) -> Reply:
        reply = super().__new__(cls, text)
        reply.entry = entry
        reply.reference = reference
        return reply


def _e(
    code: int,
    enhanced: str | None,
    text: str,
    commands: str,
    *detail: str,
    support: bool = False,
) -> Entry:
    return Entry(code, enhanced, text, frozenset(commands.split()), detail, support)


_SUPPORT_DESK = "Contact the TECH 2U Support Desk and quote reference {ref}."


# fmt: off
# Each class attribute is one entry; its name is the entry's name.
class R:
    """The catalogue.  Entries are read as ``R.MAILBOX_DISABLED`` and so on."""

    # Positive and intermediate replies.
    GREETING = _e(220, None, "{host} ESMTP tech2u-mta", "CONNECT XCLIENT")
    TLS_READY = _e(220, "2.0.0", "Ready to start TLS", "STARTTLS")
    BYE = _e(221, "2.0.0", "Service closing transmission channel", "QUIT")
    AUTH_OK = _e(235, "2.7.0", "Authentication successful", "AUTH")
    OK = _e(250, "2.0.0", "OK", "NOOP RSET")
    HELO_OK = _e(250, None, "{host}", "HELO")
    EHLO_OK = _e(250, None, "{host}", "EHLO")
    SENDER_OK = _e(250, "2.1.0", "Sender OK", "MAIL")
    RECIPIENT_OK = _e(250, "2.1.5", "Recipient OK", "RCPT")
    ACCEPTED = _e(250, "2.0.0", "Message accepted as {id}", "DATA")
    CANNOT_VRFY = _e(
        252, "2.5.0", "Cannot verify the address; send mail and we will try", "VRFY")
    HELP = _e(214, "2.0.0", "Supported commands: {commands}", "HELP")
    HELP_SYNTAX = _e(214, "2.0.0", "Syntax: {syntax}", "HELP")
    START_DATA = _e(354, None, "End data with <CR><LF>.<CR><LF>", "DATA")

    # 421: the page's line, with the reason in our own words.
    SHUTTING_DOWN = _e(
        421, "4.3.2", "Service not available, closing transmission channel", "*",
        "The server is shutting down; try again later.")
    TIMEOUT = _e(
        421, "4.4.2", "Service not available, closing transmission channel", "*",
        "Nothing was heard from you for too long.")
    SESSION_ERROR = _e(
        421, "4.3.0", "Service not available, closing transmission channel", "*",
        "An error of ours ended this session; try again later.",
        _SUPPORT_DESK, support=True)
    SESSION_TOO_LONG = _e(
        421, "4.4.2", "Service not available, closing transmission channel", "*",
        "This session has lasted too long; connect again to go on.")
    TOO_MANY_CONNECTIONS = _e(
        421, "4.7.0", "Service not available, closing transmission channel",
        "CONNECT",
        "Too many connections; try again later.")
    SPOKE_TOO_SOON = _e(
        421, "4.7.0", "Service not available, closing transmission channel",
        "CONNECT",
        "You sent before the greeting; wait for it (RFC 5321 3.1).")
    TOO_MANY_ERRORS = _e(
        421, "4.7.0", "Service not available, closing transmission channel", "*",
        "Too many bad commands in a row.")

    # 45x: try again later.
    MAILBOX_BUSY = _e(
        450, "4.2.1", "Requested mail action not taken: mailbox unavailable", "RCPT",
        "The mailbox is busy; try again later.")
    LOCAL_ERROR = _e(
        451, "4.3.0", "Requested action aborted: local error in processing",
        "MAIL RCPT DATA *",
        _SUPPORT_DESK, support=True)
    STORE_FULL = _e(
        452, "4.3.1", "Requested action not taken: insufficient system storage",
        "MAIL DATA",
        "The mail store is short of space; try again later.")
    TOO_MANY_RECIPIENTS = _e(
        452, "4.5.3", "Requested action not taken: insufficient system storage",
        "RCPT",
        "Too many recipients for one message; send the rest in another message.")

    TLS_NOT_AVAILABLE = _e(454, "4.7.0", "TLS not available", "STARTTLS",
                           "No certificate is configured on this server.")

    # 50x: the command itself is wrong.
    UNRECOGNIZED = _e(500, "5.5.2", "Syntax error, command unrecognized", "*")
    LINE_TOO_LONG = _e(
        500, "5.5.2", "Syntax error, command unrecognized", "*",
        "The command line is too long (RFC 5321 4.5.3.1.4).")
    NOT_ASCII = _e(
        500, "5.5.2", "Syntax error, command unrecognized", "*",
        "Commands are ASCII unless SMTPUTF8 is in use.")
    BAD_ARGUMENTS = _e(
        501, "5.5.4", "Syntax error in parameters or arguments",
        "HELO EHLO MAIL RCPT DATA RSET VRFY QUIT NOOP STARTTLS AUTH HELP XCLIENT")
    BAD_SIZE = _e(
        501, "5.5.4", "Syntax error in parameters or arguments", "MAIL",
        "SIZE takes a number of octets.")
    BAD_BASE64 = _e(
        501, "5.5.2", "Syntax error in parameters or arguments", "AUTH",
        "The answer is not valid base64.")
    AUTH_ABORTED = _e(501, "5.7.0", "Syntax error in parameters or arguments", "AUTH",
                      "Authentication was cancelled.")
    NOT_IMPLEMENTED = _e(502, "5.5.1", "Command not implemented", "EXPN")
    NEED_HELO = _e(503, "5.5.1", "Bad sequence of commands", "MAIL RCPT DATA AUTH",
                   "Say EHLO or HELO first.")
    NEED_MAIL = _e(503, "5.5.1", "Bad sequence of commands", "RCPT",
                   "Send MAIL FROM first.")
    NESTED_MAIL = _e(503, "5.5.1", "Bad sequence of commands", "MAIL",
                     "A transaction is already open; send RSET first.")
    NO_RECIPIENTS = _e(503, "5.5.1", "Bad sequence of commands", "DATA",
                       "No recipient was accepted.")
    XCLIENT_IN_TRANSACTION = _e(
        503, "5.5.1", "Bad sequence of commands", "XCLIENT",
        "XCLIENT is not allowed inside a mail transaction.")
    ALREADY_AUTHENTICATED = _e(503, "5.5.1", "Bad sequence of commands", "AUTH",
                               "This session is already authenticated.")
    REFUSED_SESSION = _e(503, "5.7.1", "Bad sequence of commands", "*",
                         "This session was refused at connection; send QUIT.")
    PARAMETER_NOT_IMPLEMENTED = _e(
        504, "5.5.4", "Command parameter not implemented", "AUTH HELP")

    # 53x: authentication (RFC 4954 6).
    AUTH_FAILED = _e(535, "5.7.8", "Authentication credentials invalid", "AUTH")
    ENCRYPTION_REQUIRED = _e(
        538, "5.7.11", "Encryption required for requested authentication mechanism",
        "AUTH")

    # 55x: permanent refusals.
    XCLIENT_DENIED = _e(
        550, "5.7.0", "Requested action not taken: not authorized", "XCLIENT",
        "XCLIENT is accepted only from the hosts the server is set to trust.")
    PROXY_DENIED = _e(
        421, "4.7.0", "Service not available, closing transmission channel",
        "CONNECT",
        "This port takes PROXY protocol connections from known proxies only.")
    UNKNOWN_MAILBOX = _e(
        550, "5.1.1", "Requested action not taken: mailbox unavailable", "RCPT",
        "There is no such mailbox here.")
    MAILBOX_DISABLED = _e(
        550, "5.2.1", "Mailbox disabled", "RCPT",
        "This mailbox is turned off and takes no mail; do not try again.")
    RELAY_DENIED = _e(
        550, "5.7.1", "Requested action not taken: mailbox unavailable", "RCPT",
        "This server takes mail only for TECH 2U domains; it does not relay.")
    FAKE_CUSTOMER = _e(
        551, "5.7.1", "Email not accepted from fake customer names", "RCPT",
        "A TECH 2U sender address must come from the TECH 2U network or log in.",
        _SUPPORT_DESK, support=True)
    MAILBOX_FULL = _e(
        552, "5.2.2", "Requested mail action aborted: exceeded storage allocation",
        "RCPT DATA",
        "The mailbox has no room for this message.")
    MESSAGE_TOO_BIG = _e(
        552, "5.3.4", "Requested mail action aborted: exceeded storage allocation",
        "MAIL DATA",
        "The message is larger than this server accepts (see SIZE in EHLO).")
    DATA_LINE_TOO_LONG = _e(
        552, "5.3.4", "Requested mail action aborted: exceeded storage allocation",
        "DATA",
        "A line of the message is longer than 1000 octets (RFC 5321 4.5.3.1.6).")
    BAD_RECIPIENT_SYNTAX = _e(
        553, "5.1.3", "Requested action not taken: mailbox name not allowed", "RCPT",
        "The address is not valid RFC 5321 syntax.")
    BAD_SENDER_SYNTAX = _e(
        553, "5.1.7", "Requested action not taken: mailbox name not allowed", "MAIL",
        "The address is not valid RFC 5321 syntax.")
    BLOCKLISTED = _e(
        554, "5.7.1", "We do not accept email sent from this ip address",
        "CONNECT XCLIENT",
        "Mail from this address has been seen as spam, so TECH 2U blocks it.",
        "If the spam has stopped, ask the TECH 2U Support Desk to lift the block,",
        "giving reference {ref}, the time of this reply and your email address.",
        support=True)
    BARE_LINE_ENDING = _e(
        554, "5.6.0", "Transaction failed", "DATA",
        "The message has a bare CR or LF; lines must end in CRLF (RFC 5321 2.3.8).")
    PARAMETER_UNRECOGNIZED = _e(
        555, "5.5.4", "MAIL FROM/RCPT TO parameters not recognized or not implemented",
        "MAIL RCPT")
# fmt: on


ENTRIES: dict[str, Entry] = {
    name: value for name, value in vars(R).items() if isinstance(value, Entry)
}


def new_reference() -> str:
    """A short reference the support desk can find in the log."""
    return hex_id(4)


def render(
    entry: Entry,
    *,
    explainer: str = DEFAULT_EXPLAINER,
    reference: str | None = None,
    more: tuple[str, ...] = (),
    **values: str,
) -> Reply:
    """The reply for ``entry``, filled in with ``values``.

    ``more`` adds lines as they are (the EHLO keywords).  Error replies end
    with the explainer URL for their code; entries that send the sender to
    the support desk get a reference when none is given.
    """
    if entry.support and reference is None:
        reference = new_reference()
    lines = [
        line.format(ref=reference, **values) for line in (entry.text, *entry.detail)
    ]
    lines += more
    if entry.is_error:
        lines.append(f"{explainer}#{entry.code}")
    return Reply(_join(entry, lines), entry, reference)


def _join(entry: Entry, lines: list[str]) -> str:
    prefix = f"{entry.enhanced} " if entry.enhanced else ""
    last = len(lines) - 1
    return "\r\n".join(
        f"{entry.code}{' ' if i == last else '-'}{prefix}{line}"
        for i, line in enumerate(lines)
    )
