"""Unit tests of tech2u_mta.addresses: paths, parameters and domains."""

from __future__ import annotations

import string

import pytest
from hypothesis import assume, given
from hypothesis import strategies as st

from tech2u_mta.addresses import (
    MAX_PATH_OCTETS,
    AddressError,
    Mailbox,
    normalise_domain,
    parse_params,
    parse_path,
)

LONG_LOCAL = "x" * 70

# (arg, smtputf8, local, domain, rest)
VALID_PATHS = [
    ("<alice@tech2u.com.au>", False, "alice", "tech2u.com.au", ""),
    (" <alice@tech2u.com.au>", False, "alice", "tech2u.com.au", ""),
    ('<"odd user"@example.com>', False, "odd user", "example.com", ""),
    ('<"a@b"@example.com>', False, "a@b", "example.com", ""),
    ('<"a>b"@example.com>', False, "a>b", "example.com", ""),
    ('<"a\\"b"@example.com>', False, 'a"b', "example.com", ""),
    ("<first.last@example.com>", False, "first.last", "example.com", ""),
    ("<a+tag@example.com>", False, "a+tag", "example.com", ""),
    (f"<{LONG_LOCAL}@example.com>", False, LONG_LOCAL, "example.com", ""),
    ("<Alice@Example.COM.>", False, "Alice", "example.com", ""),
    ("<user@localhost>", False, "user", "localhost", ""),
    (
        "<SRS0=ab12=xy=example.org=mailer@example.com>",
        False,
        "SRS0=ab12=xy=example.org=mailer",
        "example.com",
        "",
    ),
    ("<@a.example,@b.example:user@d.example>", False, "user", "d.example", ""),
    ("<Postmaster>", False, "Postmaster", "", ""),
    ("<POSTMASTER>", False, "POSTMASTER", "", ""),
    ("<user@[192.0.2.1]>", False, "user", "[192.0.2.1]", ""),
    ("<user@[IPv6:2001:DB8::1]>", False, "user", "[ipv6:2001:db8::1]", ""),
    ("<user@[IPv6:::ffff:192.0.2.1]>", False, "user", "[ipv6:::ffff:192.0.2.1]", ""),
    ("<user@[x-tag:Some-Thing]>", False, "user", "[x-tag:some-thing]", ""),
    # Without its "IPv6:" tag, an IPv6 literal still fits General-address-literal.
    ("<user@[2001:db8::1]>", False, "user", "[2001:db8::1]", ""),
    ("<josé@münchen.de>", True, "josé", "xn--mnchen-3ya.de", ""),
    ('<"é x"@example.com>', True, "é x", "example.com", ""),
    ("<user@example.com> SIZE=10 BODY=8BITMIME", False, "user", "example.com",
     "SIZE=10 BODY=8BITMIME"),
    ("<user@example.com>   SIZE=10  ", False, "user", "example.com", "SIZE=10"),
]  # fmt: skip


@pytest.mark.parametrize(("arg", "smtputf8", "local", "domain", "rest"), VALID_PATHS)
def test_valid_path(
    arg: str, smtputf8: bool, local: str, domain: str, rest: str
) -> None:
    assert parse_path(arg, smtputf8=smtputf8) == (Mailbox(local, domain), rest)


@pytest.mark.parametrize(
    ("arg", "rest"),
    [("<>", ""), ("<> SIZE=10", "SIZE=10"), ("  <>", "")],
)
def test_null_path(arg: str, rest: str) -> None:
    assert parse_path(arg) == (None, rest)


# (arg, smtputf8), each refused as a syntax error.
INVALID_PATHS = {
    "bare address": ("alice@example.com", False),
    "no closing bracket": ("<alice@example.com", False),
    "leading tab": ("\t<alice@example.com>", False),
    "unquoted space": ("<user name@example.com>", False),
    "leading dot": ("<.f@example.com>", False),
    "trailing dot": ("<f.@example.com>", False),
    "double dot": ("<a..b@example.com>", False),
    "stray quotes": ('<just"not"right@example.com>', False),
    "quoted then dot": ('<"a".b@example.com>', False),
    "empty local part": ("<@example.com>", False),
    "empty quoted local part": ('<""@example.com>', False),
    "NUL": ("<a\x00b@example.com>", False),
    "NUL inside quotes": ('<"a\x00b"@example.com>', False),
    "tab inside quotes": ('<"a\tb"@example.com>', False),
    "DEL in domain": ("<a@exa\x7fmple.com>", False),
    "C1 control": ("<a\x85b@example.com>", True),
    "line separator": ("<a\u2028b@example.com>", True),
    "lone surrogate": ("<a\ud800b@example.com>", True),
    "non-ASCII local without SMTPUTF8": ("<josé@example.com>", False),
    "non-ASCII domain without SMTPUTF8": ("<user@münchen.de>", False),
    "quoted-pair of non-ASCII": ('<"a\\é"@example.com>', True),
    "no domain": ("<user@>", False),
    "no at sign": ("<user>", False),
    "two at signs": ("<a@b@example.com>", False),
    "Postmaster without domain after at": ("<Postmaster@>", False),
    "quoted Postmaster": ('<"Postmaster">', False),
    "bare Postmaster with route": ("<@a.example:Postmaster>", False),
    "route hop without at": ("<@a.example,b.example:user@d.example>", False),
    "route without colon": ("<@a.example user@d.example>", False),
    "bad route domain": ("<@a_b.example:user@d.example>", False),
    "leading hyphen label": ("<user@-example.com>", False),
    "trailing hyphen label": ("<user@example-.com>", False),
    "underscore in domain": ("<user@exa_mple.com>", False),
    "empty label": ("<user@example..com>", False),
    "label of 64 octets": (f"<user@{'a' * 64}.com>", False),
    "unbracketed IPv4": ("<user@192.0.2.1>", False),
    "IPv4 literal out of range": ("<user@[192.0.2.256]>", False),
    "IPv4 literal with leading zero": ("<user@[192.0.2.01]>", False),
    "bad IPv6 literal": ("<user@[IPv6:2001:db8::g]>", False),
    "IPv6 literal with zone": ("<user@[IPv6:fe80::1%eth0]>", False),
    "unclosed literal": ("<user@[192.0.2.1>", False),
    "empty literal": ("<user@[]>", False),
    "general literal without content": ("<user@[x-tag:]>", False),
    "general literal with bracket": ("<user@[x-tag:a[b]>", False),
    "ideographic full stop": ("<user@a\u3002example>", True),
    "U-label with trailing hyphen": ("<user@ü-.example>", True),
    "path of 257 octets": (f"<{'a' * 243}@example.com>", False),
    "parameters without space": ("<a@b.example>SIZE=1", False),
    "second closing bracket": ("<a@b.example>>", False),
}


@pytest.mark.parametrize(
    ("arg", "smtputf8"), INVALID_PATHS.values(), ids=INVALID_PATHS.keys()
)
def test_invalid_path(arg: str, smtputf8: bool) -> None:
    with pytest.raises(AddressError) as caught:
        parse_path(arg, smtputf8=smtputf8)

    assert caught.value.kind == "syntax"


def test_path_of_256_octets_is_accepted() -> None:
    arg = f"<{'a' * 242}@example.com>"
    assert len(arg) == MAX_PATH_OCTETS

    mailbox, _ = parse_path(arg)
    assert mailbox is not None


@pytest.mark.parametrize(
    ("arg", "smtputf8", "key"),
    [
        ('<"alice"@tech2u.com.au>', False, "alice@tech2u.com.au"),
        ('<"al\\ice"@TECH2U.COM.AU.>', False, "alice@tech2u.com.au"),
        ("<alice@tech2u.com.au>", False, "alice@tech2u.com.au"),
        ("<ALICE@Tech2U.com.au>", False, "alice@tech2u.com.au"),
        ("<user@MÜNCHEN.de>", True, "user@xn--mnchen-3ya.de"),
        ("<user@xn--mnchen-3ya.de>", False, "user@xn--mnchen-3ya.de"),
        ("<PostMaster>", False, "postmaster"),
        ("<Postmaster@Tech2U.com.au>", False, "postmaster@tech2u.com.au"),
    ],
)
def test_key(arg: str, smtputf8: bool, key: str) -> None:
    mailbox, _ = parse_path(arg, smtputf8=smtputf8)
    assert mailbox is not None
    assert mailbox.key == key


@pytest.mark.parametrize(
    ("local", "domain", "text"),
    [
        ("alice", "example.com", "alice@example.com"),
        ("first.last", "example.com", "first.last@example.com"),
        ("odd user", "example.com", '"odd user"@example.com'),
        ('a"b', "example.com", '"a\\"b"@example.com'),
        ("a\\b", "example.com", '"a\\\\b"@example.com'),
        ("a@b", "example.com", '"a@b"@example.com'),
        (".f", "example.com", '".f"@example.com'),
        ("josé", "example.com", "josé@example.com"),
        ("Postmaster", "", "Postmaster"),
    ],
)
def test_str_quotes_only_when_needed(local: str, domain: str, text: str) -> None:
    assert str(Mailbox(local, domain)) == text


VALID_PARAMS = [
    ("", False, {}),
    ("   ", False, {}),
    (
        "SIZE=1000 body=8bitmime AUTH=<>",
        False,
        {"SIZE": "1000", "BODY": "8bitmime", "AUTH": "<>"},
    ),
    ("SMTPUTF8", False, {"SMTPUTF8": None}),
    ("  SIZE=1   smtputf8 ", False, {"SIZE": "1", "SMTPUTF8": None}),
    ("X-Foo=a+2Bb", False, {"X-FOO": "a+2Bb"}),
    ("ORCPT=rfc822;a@example.com", False, {"ORCPT": "rfc822;a@example.com"}),
    ("X-NAME=josé", True, {"X-NAME": "josé"}),
]


@pytest.mark.parametrize(("rest", "smtputf8", "params"), VALID_PARAMS)
def test_valid_params(rest: str, smtputf8: bool, params: dict[str, str | None]) -> None:
    assert parse_params(rest, smtputf8=smtputf8) == params


INVALID_PARAMS = {
    "duplicate keyword": ("SIZE=1 size=2", False),
    "empty value": ("SIZE=", False),
    "empty keyword": ("=1", False),
    "keyword starting with hyphen": ("-SIZE=1", False),
    "underscore in keyword": ("SI_ZE=1", False),
    "non-ASCII keyword": ("SÏZE=1", True),
    "equals sign in value": ("SIZE=1=2", False),
    "non-ASCII value without SMTPUTF8": ("X-NAME=josé", False),
    "control in value": ("X=a\x00", False),
    "tab between parameters": ("SIZE=1\tBODY=7BIT", False),
    "DEL after keyword": ("SMTPUTF8\x7f", False),
    "line separator in value": ("X=a\u2028b", True),
}


@pytest.mark.parametrize(
    ("rest", "smtputf8"), INVALID_PARAMS.values(), ids=INVALID_PARAMS.keys()
)
def test_invalid_params(rest: str, smtputf8: bool) -> None:
    with pytest.raises(AddressError) as caught:
        parse_params(rest, smtputf8=smtputf8)

    assert caught.value.kind == "params"


DOMAIN_255 = ".".join(["a" * 63] * 4)


@pytest.mark.parametrize(
    ("domain", "normalised"),
    [
        ("TECH2U.com.au.", "tech2u.com.au"),
        ("tech2u.com.au", "tech2u.com.au"),
        ("MÜNCHEN.de", "xn--mnchen-3ya.de"),
        ("xn--mnchen-3ya.de", "xn--mnchen-3ya.de"),
        ("a-b.example", "a-b.example"),
        ("123.example.com", "123.example.com"),
        ("localhost", "localhost"),
        (DOMAIN_255, DOMAIN_255),
    ],
)
def test_normalise_domain(domain: str, normalised: str) -> None:
    assert normalise_domain(domain) == normalised


@pytest.mark.parametrize(
    "domain",
    [
        "",
        ".",
        "a..b",
        ".a",
        "a.b..",
        "-a.b",
        "a-.b",
        "a_b.c",
        "a b.c",
        "[192.0.2.1]",
        "192.0.2.1",
        f"{'a' * 64}.com",
        DOMAIN_255 + ".b",
        "ü-.de",
        "a\u3002b",
        "\ud800.com",
    ],
)
def test_invalid_domain(domain: str) -> None:
    with pytest.raises(AddressError) as caught:
        normalise_domain(domain)

    assert caught.value.kind == "syntax"


def test_error_text_is_a_reason() -> None:
    with pytest.raises(AddressError, match="angle brackets"):
        parse_path("alice@example.com")


# Text shaped like a mailbox, so that the property below reaches valid paths
# (and the corners near them) far more often than arbitrary text does.
_ATEXT = string.ascii_letters + string.digits + "!#$%&'*+-/=?^_`{|}~"
_atoms = st.text(alphabet=_ATEXT + "éß", min_size=1, max_size=8)
_dot_strings = st.lists(_atoms, min_size=1, max_size=4).map(".".join)
_quoted = st.text(
    alphabet=st.characters(min_codepoint=32, max_codepoint=0x2FF), max_size=12
).map(lambda text: '"' + text + '"')
_labels = st.text(alphabet=string.ascii_letters + string.digits + "-üÜ", min_size=1)
_names = st.lists(_labels, min_size=1, max_size=4).map(".".join)
_literals = st.one_of(
    st.ip_addresses(v=4).map(lambda ip: f"[{ip}]"),
    st.ip_addresses(v=6).map(lambda ip: f"[IPv6:{ip}]"),
)
_address_like = st.builds(
    "<{}@{}>".format, st.one_of(_dot_strings, _quoted), st.one_of(_names, _literals)
)


@given(arg=st.one_of(st.text(), _address_like), smtputf8=st.booleans())
def test_parse_path_fails_cleanly_and_round_trips(arg: str, smtputf8: bool) -> None:
    try:
        mailbox, _ = parse_path(arg, smtputf8=smtputf8)
    except AddressError as err:
        assert err.kind == "syntax"
        return

    if mailbox is None:
        return

    # An A-label can be longer than the U-label it came from.
    again = f"<{mailbox}>"
    assume(len(again.encode()) <= MAX_PATH_OCTETS)

    reparsed, rest = parse_path(again, smtputf8=smtputf8)
    assert reparsed is not None
    assert reparsed == mailbox
    assert reparsed.key == mailbox.key
    assert rest == ""


@given(rest=st.text(), smtputf8=st.booleans())
def test_parse_params_fails_cleanly(rest: str, smtputf8: bool) -> None:
    try:
        parse_params(rest, smtputf8=smtputf8)
    except AddressError as err:
        assert err.kind == "params"


@given(domain=st.one_of(st.text(), _names))
def test_normalise_domain_fails_cleanly_and_is_idempotent(domain: str) -> None:
    try:
        normalised = normalise_domain(domain)
    except AddressError:
        return

    assert normalise_domain(normalised) == normalised
