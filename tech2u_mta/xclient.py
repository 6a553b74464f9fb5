"""Postfix's XCLIENT command: a trusted client names the client it speaks for.

``XCLIENT ADDR=192.0.2.7 HELO=mx.example.net`` lets a test, or a proxy,
give the server a client address that a test on one machine could not have;
the server then greets again and applies its connect-time policy to that
address.  Values are xtext (RFC 3461 4: ``+XX`` for a byte in hex);
``[UNAVAILABLE]`` and ``[TEMPUNAVAIL]`` mean "not known".
"""

from __future__ import annotations

import ipaddress
import re
import unicodedata
from dataclasses import dataclass

ATTRIBUTES = ("NAME", "ADDR", "PORT", "PROTO", "HELO", "LOGIN", "DESTADDR", "DESTPORT")
ADVERTISED = "XCLIENT NAME ADDR PROTO HELO LOGIN"
UNKNOWN = ("[UNAVAILABLE]", "[TEMPUNAVAIL]")

_XTEXT = re.compile(r"(?:[\x21-\x2a\x2c-\x3c\x3e-\x7e]|\+[0-9A-F]{2})*")


class XclientError(ValueError):
    """An XCLIENT argument the server cannot use (the reply is 501)."""


@dataclass(frozen=True, slots=True)
class Override:
    """What the XCLIENT command says of the client; None where unsaid or
    unknown (which clears any value an earlier XCLIENT gave)."""

    given: frozenset[str]
    addr: ipaddress.IPv4Address | ipaddress.IPv6Address | None = None
    name: str | None = None
    helo: str | None = None
    login: str | None = None
    proto: str | None = None


def parse(arg: str | None) -> Override:
    """``NAME=x ADDR=y ...`` -> Override; raises XclientError."""
    if not arg:
        raise XclientError("XCLIENT needs at least one attribute")
    values: dict[str, str | None] = {}
    for item in arg.split():
        key, sep, raw = item.partition("=")
        key = key.upper()
        if not sep or key not in ATTRIBUTES:
            raise XclientError(f"unknown XCLIENT attribute {key!r}")
        values[key] = _decode(raw)
    return Override(
        given=frozenset(values),
        addr=_address(values.get("ADDR")),
        name=values.get("NAME"),
        helo=values.get("HELO"),
        login=values.get("LOGIN"),
        proto=_proto(values.get("PROTO")),
    )


def merge(earlier: Override, later: Override) -> Override:
    """A second XCLIENT changes only the attributes it names."""
    pick = {
        name: later if name in later.given else earlier
        for name in ("ADDR", "NAME", "HELO", "LOGIN", "PROTO")
    }
    return Override(
        given=earlier.given | later.given,
        addr=pick["ADDR"].addr,
        name=pick["NAME"].name,
        helo=pick["HELO"].helo,
        login=pick["LOGIN"].login,
        proto=pick["PROTO"].proto,
    )


def _decode(raw: str) -> str | None:
    if raw.upper() in UNKNOWN:
        return None
    if not _XTEXT.fullmatch(raw):
        raise XclientError(f"{raw!r} is not xtext")
    # xtext encodes octets; the value they spell is UTF-8 (RFC 3461 4).
    octets = re.sub(
        rb"\+([0-9A-F]{2})", lambda m: bytes([int(m.group(1), 16)]), raw.encode()
    )
    try:
        text = octets.decode("utf-8")
    except UnicodeDecodeError:
        raise XclientError("the value is not UTF-8") from None
    # Controls, invisible format characters and line separators would reach
    # the Received field of stored mail.
    if any(unicodedata.category(c) in ("Cc", "Cf", "Zl", "Zp") for c in text):
        raise XclientError("control characters are not allowed")
    return text


def _address(value: str | None) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
    if value is None:
        return None
    if value.upper().startswith("IPV6:"):
        value = value[5:]
    if "%" in value:
        raise XclientError("a zone index is not a client address")
    try:
        address = ipaddress.ip_address(value)
    except ValueError:
        raise XclientError(f"ADDR {value!r} is not an IP address") from None
    mapped = getattr(address, "ipv4_mapped", None)
    return mapped or address


def _proto(value: str | None) -> str | None:
    if value is not None and value.upper() not in ("SMTP", "ESMTP"):
        raise XclientError(f"PROTO {value!r}: expected SMTP or ESMTP")
    return value.upper() if value else None
