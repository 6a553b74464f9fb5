"""Parsing XCLIENT arguments (the socket behaviour is in test_xclient.py)."""

from __future__ import annotations

import ipaddress

import pytest

from tech2u_mta.xclient import XclientError, parse


def test_all_attributes() -> None:
    override = parse("NAME=mx.example.net ADDR=192.0.2.7 HELO=mx PROTO=esmtp LOGIN=bob")
    assert override.addr == ipaddress.ip_address("192.0.2.7")
    assert (override.name, override.helo, override.proto, override.login) == (
        "mx.example.net",
        "mx",
        "ESMTP",
        "bob",
    )
    assert override.given == {"NAME", "ADDR", "HELO", "PROTO", "LOGIN"}


@pytest.mark.parametrize(
    ("arg", "address"),
    [
        ("ADDR=IPV6:2001:db8::1", "2001:db8::1"),
        ("addr=ipv6:2001:DB8::1", "2001:db8::1"),
        ("ADDR=::ffff:192.0.2.7", "192.0.2.7"),
        ("ADDR=203.0.113.4 PORT=2525", "203.0.113.4"),
    ],
)
def test_addresses(arg: str, address: str) -> None:
    assert parse(arg).addr == ipaddress.ip_address(address)


def test_xtext_is_decoded() -> None:
    assert parse("HELO=a+2Bb+3Dc").helo == "a+b=c"


@pytest.mark.parametrize("value", ["[UNAVAILABLE]", "[TEMPUNAVAIL]", "[unavailable]"])
def test_unavailable_values_clear(value: str) -> None:
    override = parse(f"NAME={value} LOGIN={value}")
    assert override.name is None and override.login is None
    assert override.given == {"NAME", "LOGIN"}


@pytest.mark.parametrize(
    "arg",
    [
        None,
        "",
        "FOO=1",
        "ADDR",
        "ADDR=not-an-ip",
        "ADDR=192.0.2.300",
        "HELO=a+0Db",  # a CR, hidden in xtext
        "HELO=a+zz",
        "PROTO=LMTP",
        "NAME=a=b",
    ],
)
def test_refused(arg: str | None) -> None:
    with pytest.raises(XclientError):
        parse(arg)
