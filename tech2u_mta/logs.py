"""The two log streams.

``tech2u_mta.decision``
    One INFO line per decision (connect, MAIL, each RCPT, each end of data),
    as ``key=value`` fields: what was decided, by which check, and the
    reference or message id the client was given.
``tech2u_mta.trace``
    A DEBUG trace of every command and reply, each line with the session
    id; AUTH arguments are replaced by ``[redacted]``.

Every value is escaped, so what a client sends never reaches a log line raw:
no character that ends a line, moves the cursor, reorders text or cannot be
encoded, and no ``=`` or ``"`` that could pass for the start or end of a field.
A field found by ``grep 'ref=ABCD1234'`` is therefore always a real one.
"""

from __future__ import annotations

import logging
import re
import time
import unicodedata

decisions = logging.getLogger("tech2u_mta.decision")
trace = logging.getLogger("tech2u_mta.trace")
errors = logging.getLogger("tech2u_mta.error")

_PLAIN = re.compile(r"[A-Za-z0-9@._:/+\-\[\]<>,()#]*")
# In a quoted value: the ASCII controls, the quote and backslash that delimit
# and escape, and "=", so that only real fields have a "key=" in the line.
_UNSAFE_ASCII = re.compile(r'[\x00-\x1f\x7f"\\=]')
# Beyond ASCII, by Unicode category: controls (C1 ones such as NEL, U+0085),
# format characters (bidirectional overrides, zero-width ones), lone
# surrogates (bytes that were not UTF-8), private use and unassigned code
# points, the line and paragraph separators, and spaces other than U+0020.
_UNSAFE_CATEGORIES = frozenset({"Cc", "Cf", "Cs", "Co", "Cn", "Zl", "Zp", "Zs"})


def escape(value: object) -> str:
    r"""One log field value: bare when plain, else quoted with escapes.

    The escapes are ``\"``, ``\\`` and, by code point, ``\xNN``, ``\uNNNN``
    or ``\UNNNNNNNN``, so the value as received can always be read back.
    """
    text = str(value)
    if text and _PLAIN.fullmatch(text):
        return text
    if text.isascii():
        return '"' + _UNSAFE_ASCII.sub(_escape_match, text) + '"'
    return '"' + "".join(map(_escape_char, text)) + '"'


def _escape_match(match: re.Match[str]) -> str:
    return _escape_char(match.group())


def _escape_char(char: str) -> str:
    code = ord(char)
    if char in '"\\':
        return "\\" + char
    if code < 0x80:
        return f"\\x{code:02x}" if code < 0x20 or char in "\x7f=" else char
    if unicodedata.category(char) not in _UNSAFE_CATEGORIES:
        return char
    if code <= 0xFF:
        return f"\\x{code:02x}"
    if code <= 0xFFFF:
        return f"\\u{code:04x}"
    return f"\\U{code:08x}"


def fields(**values: object) -> str:
    """``key=value`` pairs in the order given; ``None`` values are left out."""
    return " ".join(f"{k}={escape(v)}" for k, v in values.items() if v is not None)


def decision(**values: object) -> None:
    if decisions.isEnabledFor(logging.INFO):
        decisions.info("%s", fields(time=_utc_now(), **values))


def _utc_now() -> str:
    """``2026-12-03T17:50:10.284Z``."""
    now = time.time()
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(now)) + (
        f".{int(now * 1000) % 1000:03d}Z"
    )


def setup(level: str = "info") -> None:
    """Logging to stderr, for the CLI.  ``debug`` adds the session trace."""
    handler = logging.StreamHandler()
    handler.setFormatter(
        logging.Formatter(
            "%(asctime)s [%(process)d] %(levelname)s %(name)s %(message)s"
        )
    )
    root = logging.getLogger()
    root.handlers[:] = [handler]
    # No line names its source file or thread, so do not look them up for
    # every record: the stack walk alone costs more than the line.
    logging._srcfile = None
    logging.logThreads = False
    logging.logMultiprocessing = False
    root.setLevel(level.upper())
    # aiosmtpd's own log repeats what the trace says, without session ids and
    # with AUTH payloads in it: keep only its warnings.
    logging.getLogger("mail.log").setLevel(logging.WARNING)
    # watchfiles says "N changes detected" at INFO; the reload line says more.
    logging.getLogger("watchfiles").setLevel(logging.WARNING)
