"""The two log streams.

``tech2u_mta.decision``
    One INFO line per decision (connect, MAIL, each RCPT, each end of data),
    as ``key=value`` fields: what was decided, by which check, and the
    reference or message id the client was given.
``tech2u_mta.trace``
    A DEBUG trace of every command and reply, each line with the session
    id; AUTH arguments are replaced by ``[redacted]``.

Every value is escaped, so CR, LF and other control characters sent by a
client never reach a log line raw.
"""

from __future__ import annotations

import logging
import re
from datetime import UTC, datetime

decisions = logging.getLogger("tech2u_mta.decision")
trace = logging.getLogger("tech2u_mta.trace")
errors = logging.getLogger("tech2u_mta.error")

_PLAIN = re.compile(r"[A-Za-z0-9@._:/+\-\[\]<>,()#]*")
_UNSAFE = re.compile(r"[\x00-\x1f\x7f-\x9f\"\\]")


def escape(value: object) -> str:
    """One log field value: bare when plain, else quoted with escapes."""
    text = str(value)
    if _PLAIN.fullmatch(text) and text:
        return text
    return '"' + _UNSAFE.sub(_escape_char, text) + '"'


def _escape_char(match: re.Match[str]) -> str:
    char = match.group()
    if char in '"\\':
        return "\\" + char
    return f"\\x{ord(char):02x}"


def fields(**values: object) -> str:
    """``key=value`` pairs in the order given; ``None`` values are left out."""
    return " ".join(f"{k}={escape(v)}" for k, v in values.items() if v is not None)


def decision(**values: object) -> None:
    if decisions.isEnabledFor(logging.INFO):
        now = datetime.now(UTC).isoformat(timespec="milliseconds")
        decisions.info("%s", fields(time=now.replace("+00:00", "Z"), **values))


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
    root.setLevel(level.upper())
    # aiosmtpd's own log repeats what the trace says, without session ids and
    # with AUTH payloads in it: keep only its warnings.
    logging.getLogger("mail.log").setLevel(logging.WARNING)
