"""Paths and parameters of MAIL and RCPT, as RFC 5321 4.1.2 and RFC 6531 write them.

The protocol glue hands this module what follows ``FROM:`` or ``TO:``.  It gets
back a :class:`Mailbox` (or ``None`` for the null reverse-path ``<>``) and the
parameter string, which :func:`parse_params` turns into a dictionary.  Anything
the server cannot accept raises :class:`AddressError`, whose ``kind`` tells the
caller which reply of the catalogue fits; its text is for the log only.

Every policy lookup goes through :attr:`Mailbox.key`, so that the spellings of
one address that RFC 5321 treats as equal (quoting, domain case, a trailing
dot, a U-label or its A-label) find the same entry, and so do the spellings
of a local part that only SMTPUTF8 makes possible (fullwidth or other
compatibility forms, Unicode case, invisible characters).
"""

from __future__ import annotations

import ipaddress
import re
import unicodedata
from dataclasses import dataclass
from encodings import idna
from typing import Literal

ErrorKind = Literal["syntax", "params"]

# RFC 5321 4.5.3.1.3 counts the angle brackets in the 256 octets of a path;
# 4.5.3.1.2 allows 255 octets of domain, RFC 1035 2.3.4 63 octets of label.
# A local part has no limit of its own: 4.5.3.1.1 names 64 octets, but
# 4.5.3.1 asks servers to take longer objects where they can, and real
# senders (list and bounce addresses) use longer ones.  Only the path's 256
# octets bound it.
MAX_PATH_OCTETS = 256
MAX_DOMAIN_OCTETS = 255
MAX_LABEL_OCTETS = 63

# A path runs from "<" to the first ">" outside a quoted string, because a
# Quoted-string local part may itself hold ">" (RFC 5321 4.1.2).
_PATH = re.compile(r'<((?:[^">]|"(?:[^"\\]|\\.)*")*)>', re.DOTALL)
_QUOTED = re.compile(r'"((?:[^"\\]|\\.)*)"', re.DOTALL)
_QUOTED_PAIR = re.compile(r"\\(.)", re.DOTALL)

# atext of RFC 5322 3.2.3, which RFC 5321 4.1.2 uses for Atom; RFC 6531 3.3
# adds any non-ASCII character once SMTPUTF8 is in force.
_ATEXT = "A-Za-z0-9!#$%&'*+/=?^_`{|}~-"
_ATOM_ASCII = "[" + _ATEXT + "]+"
_ATOM_UTF8 = "[\x80-\U0010ffff" + _ATEXT + "]+"
_DOT_STRING_ASCII = re.compile(_ATOM_ASCII + r"(?:\." + _ATOM_ASCII + ")*")
_DOT_STRING_UTF8 = re.compile(_ATOM_UTF8 + r"(?:\." + _ATOM_UTF8 + ")*")

# Characters refused anywhere in a path, quoted or not: the ASCII and C1
# controls (RFC 5321 4.1.2 has no production that admits them), lone
# surrogates (not UTF-8 at all) and the Unicode line and paragraph
# separators, which would split a log line as surely as a newline.
_FORBIDDEN = re.compile("[\x00-\x1f\x7f-\x9f\ud800-\udfff\u2028\u2029]")

_LDH_LABEL = re.compile(r"[a-z0-9](?:[a-z0-9-]*[a-z0-9])?")
_STANDARDIZED_TAG = re.compile(r"[A-Za-z0-9-]*[A-Za-z0-9]")
_DCONTENT = re.compile(r"[\x21-\x5a\x5e-\x7e]+")

# The full stops that IDNA 2003 treats as label separators (RFC 3490 3.1);
# inside an SMTP domain they can only be a mistake or a disguise.
_IDEOGRAPHIC_DOTS = frozenset("\u3002\uff0e\uff61")

# Unicode's Default_Ignorable_Code_Point characters (DerivedCoreProperties.txt):
# invisible, so "old<ZWSP>user" looks like "olduser" and is folded to it.
_IGNORABLE = re.compile(
    "[\u00ad\u034f\u061c\u115f\u1160\u17b4\u17b5\u180b-\u180f"
    "\u200b-\u200f\u202a-\u202e\u2060-\u206f\u3164\ufe00-\ufe0f\ufeff"
    "\uffa0\ufff0-\ufff8\U0001bca0-\U0001bca3\U0001d173-\U0001d17a"
    "\U000e0000-\U000e0fff]"
)

# RFC 5321 4.1.2 and RFC 6531 3.3: esmtp-keyword and esmtp-value.
_KEYWORD = re.compile(r"[A-Za-z0-9][A-Za-z0-9-]*")
_VALUE_ASCII = re.compile(r"[\x21-\x3c\x3e-\x7e]+")
_VALUE_UTF8 = re.compile(
    "[\x21-\x3c\x3e-\x7e\xa0-\u2027\u202a-\ud7ff\ue000-\U0010ffff]+"
)


class AddressError(ValueError):
    """A path or parameter the server cannot accept; .kind says which reply fits.

    ``kind`` is ``"syntax"`` for a bad path and ``"params"`` for a bad
    parameter.  ``str(err)`` is a short reason for the log, never for the wire.
    """

    def __init__(self, reason: str, kind: ErrorKind = "syntax") -> None:
        super().__init__(reason)
        self.kind: ErrorKind = kind


@dataclass(frozen=True, slots=True)
class Mailbox:
    """One mailbox of a path, its quoting resolved and its domain normalised.

    ``domain`` is empty only for the bare ``<Postmaster>`` of RFC 5321 4.1.1.3.
    """

    local: str
    domain: str

    @property
    def key(self) -> str:
        """The form every policy lookup uses: ``local@domain``, local folded.

        RFC 5321 2.4 leaves the meaning of a local part to the host that owns
        the mailbox.  This server treats local parts case-insensitively (see
        :func:`fold_local`), yet keeps ``local`` as written, since 2.4 asks
        that its case be preserved.
        """
        if not self.domain:
            return fold_local(self.local)

        return f"{fold_local(self.local)}@{self.domain}"

    def __str__(self) -> str:
        local = self.local
        if not _DOT_STRING_UTF8.fullmatch(local):
            local = _quote(local)

        if not self.domain:
            return local

        return f"{local}@{self.domain}"


def parse_path(
    arg: str, *, smtputf8: bool = False, reverse_path: bool = False
) -> tuple[Mailbox | None, str]:
    """Split what follows ``FROM:`` or ``TO:`` into a mailbox and its parameters.

    Returns ``(None, rest)`` for the null path ``<>``.  ``rest`` is the
    parameter string after the path, stripped of spaces.  ``reverse_path``
    is for MAIL FROM, which has no bare ``<Postmaster>`` (RFC 5321 4.1.2).
    """
    text = arg.lstrip(" ")
    if not text.startswith("<"):
        raise AddressError("path is not enclosed in angle brackets")

    match = _PATH.match(text)
    if match is None:
        raise AddressError("path has no closing '>'")

    # RFC 5321 4.1.1.2: parameters are separated from the path by a space.
    rest = text[match.end() :]
    if rest and not rest.startswith(" "):
        raise AddressError("no space between path and parameters")

    inner = match.group(1)
    _check_characters(inner, smtputf8)
    if len(match.group(0).encode("utf-8")) > MAX_PATH_OCTETS:
        raise AddressError("path longer than 256 octets")

    mailbox = _parse_inner(inner, smtputf8)
    # Only RCPT may name a mailbox without a domain.  A sender taken bare
    # would be read as the local postmaster by whoever gets the mail, though
    # no domain of it went through the sender checks.
    if reverse_path and mailbox is not None and not mailbox.domain:
        raise AddressError("reverse-path without a domain")

    return mailbox, rest.strip(" ")


def parse_params(rest: str, *, smtputf8: bool = False) -> dict[str, str | None]:
    """Turn ``SIZE=1000 body=8bitmime`` into ``{"SIZE": "1000", "BODY": "8bitmime"}``.

    Keywords are upper-cased, values kept as written, a keyword without ``=``
    maps to ``None``.  ``smtputf8`` admits UTF-8 in values (RFC 6531 3.3).
    """
    params: dict[str, str | None] = {}
    for word in rest.split(" "):
        if not word:
            continue

        keyword, value = _parse_param(word, smtputf8)
        if keyword in params:
            raise AddressError(f"parameter {keyword} given twice", kind="params")

        params[keyword] = value

    return params


def fold_local(local: str) -> str:
    """The local part as policy lookups compare it.

    ASCII is lowercased.  Beyond ASCII the fold is Unicode's NFKC_Casefold
    (UAX #44): compatibility forms become their plain letters ("ｏｌｄ" is
    "old"), case is folded fully ("ſ" is "s", "K" with the Kelvin sign is
    "k") and invisible characters are dropped.  Every mailbox that policies
    name is ASCII, so a look-alike either finds the mailbox it imitates, and
    meets its checks, or finds none; it never reaches another mailbox.
    """
    if local.isascii():
        return local.lower()

    text = _IGNORABLE.sub("", unicodedata.normalize("NFKC", local))
    return unicodedata.normalize("NFKC", text.casefold())


def normalise_domain(domain: str) -> str:
    """Lowercase, drop one trailing dot, and turn U-labels into A-labels.

    ``TECH2U.com.au.`` and ``tech2u.com.au`` both give ``tech2u.com.au``.
    Address literals are not domains here; :func:`parse_path` handles them.
    """
    name = domain[:-1] if domain.endswith(".") else domain
    labels = [_a_label(label) for label in name.split(".")]

    # RFC 1123 2.1: a host name never looks like a dotted IPv4 address,
    # because the top-level label is never all digits.  An address written
    # without its brackets is refused rather than looked up as a name.
    if labels[-1].isdigit():
        raise AddressError(f"domain {name[:60]!r} ends in a numeric label")

    normalised = ".".join(labels)
    if len(normalised) > MAX_DOMAIN_OCTETS:
        raise AddressError("domain longer than 255 octets")

    return normalised


def _check_characters(text: str, smtputf8: bool) -> None:
    if _FORBIDDEN.search(text):
        raise AddressError("control character in path")

    # RFC 6531 3.3: UTF-8 in a path needs the SMTPUTF8 extension.
    if not smtputf8 and not text.isascii():
        raise AddressError("non-ASCII path without SMTPUTF8")


def _parse_inner(inner: str, smtputf8: bool) -> Mailbox | None:
    if not inner:
        return None

    mailbox = _drop_source_route(inner)

    # RFC 5321 4.1.1.3: "<Postmaster>" without a domain must be accepted.
    if mailbox.isascii() and mailbox.lower() == "postmaster":
        if mailbox != inner:
            raise AddressError("bare Postmaster with a source route")
        return Mailbox(mailbox, "")

    local, domain = _split_mailbox(mailbox, smtputf8)
    return Mailbox(local, _parse_domain(domain))


def _drop_source_route(inner: str) -> str:
    """Check and remove an A-d-l source route (RFC 5321 4.1.2, appendix C).

    RFC 5321 4.1.1.3 tells a server to accept a route and then ignore it; it
    is still checked, so that a malformed one is not silently passed over.
    """
    if not inner.startswith("@"):
        return inner

    route, colon, mailbox = inner.partition(":")
    if not colon:
        raise AddressError("source route without ':'")

    for hop in route.split(","):
        if not hop.startswith("@"):
            raise AddressError("source route hop without '@'")
        normalise_domain(hop[1:])

    return mailbox


def _split_mailbox(mailbox: str, smtputf8: bool) -> tuple[str, str]:
    """Return the unquoted local part and the domain as written."""
    quoted = _QUOTED.match(mailbox)
    if quoted is not None:
        local = _unquote(quoted.group(1))
        after = mailbox[quoted.end() :]
    else:
        written, at, domain = mailbox.partition("@")
        local, after = written, at + domain
        dot_string = _DOT_STRING_UTF8 if smtputf8 else _DOT_STRING_ASCII
        if not dot_string.fullmatch(local):
            raise AddressError(f"local part {local[:60]!r} is not a Dot-string")

    if not after.startswith("@"):
        raise AddressError("no '@' after the local part")

    # An empty quoted string is a valid Quoted-string, but no mailbox here
    # has an empty name, and an empty key would match nothing sensible; nor
    # does a local part of invisible characters only.
    if not fold_local(local):
        raise AddressError("empty local part")

    return local, after[1:]


def _unquote(content: str) -> str:
    """Resolve the quoted-pairs of a Quoted-string's content."""
    return _QUOTED_PAIR.sub(_resolve_pair, content)


def _resolve_pair(match: re.Match[str]) -> str:
    # RFC 5321 4.1.2: a quoted-pair escapes printable ASCII only; RFC 6531
    # 3.3 widens qtextSMTP to UTF-8 but leaves quoted-pairSMTP alone.
    char = match.group(1)
    if not " " <= char <= "~":
        raise AddressError("quoted-pair escapes a non-ASCII character")

    return char


def _quote(local: str) -> str:
    escaped = local.replace("\\", "\\\\").replace('"', '\\"')
    return f'"{escaped}"'


def _parse_domain(domain: str) -> str:
    if not domain:
        raise AddressError("no domain after '@'")

    if domain.startswith("["):
        return _address_literal(domain)

    return normalise_domain(domain)


def _address_literal(literal: str) -> str:
    """Check an address-literal (RFC 5321 4.1.3) and return it lowercased."""
    if not literal.endswith("]") or not literal.isascii():
        raise AddressError("malformed address literal")

    body = literal[1:-1]
    tag, colon, address = body.partition(":")
    if not colon:
        _check_ip(ipaddress.IPv4Address, body)
    elif tag.lower() == "ipv6":
        # ipaddress accepts a "%zone" suffix, which RFC 5321 has no room for.
        if "%" in address:
            raise AddressError("zone in IPv6 address literal")
        _check_ip(ipaddress.IPv6Address, address)
    elif not (_STANDARDIZED_TAG.fullmatch(tag) and _DCONTENT.fullmatch(address)):
        raise AddressError("malformed General-address-literal")

    return literal.lower()


def _check_ip(
    kind: type[ipaddress.IPv4Address] | type[ipaddress.IPv6Address], text: str
) -> None:
    try:
        kind(text)
    except ValueError as exc:
        raise AddressError(f"bad address literal {text[:60]!r}") from exc


def _a_label(label: str) -> str:
    if not label:
        raise AddressError("empty label in domain")

    ascii_label = label.lower() if label.isascii() else _u_label_to_ascii(label)

    if len(ascii_label) > MAX_LABEL_OCTETS:
        raise AddressError("domain label longer than 63 octets")

    if not _LDH_LABEL.fullmatch(ascii_label):
        raise AddressError(f"domain label {label[:60]!r} is not letters-digits-hyphen")

    return ascii_label


def _u_label_to_ascii(label: str) -> str:
    """Convert a U-label with the standard library's IDNA codec.

    That codec follows IDNA 2003 (RFC 3490), where RFC 6531 means IDNA 2008
    (RFC 5891).  The two agree on almost every name; where they differ
    (IDNA 2003 maps "ß" to "ss") the name still normalises the same way every
    time, which is what the policy lookups need.
    """
    # RFC 5891 4.2.3.1: no leading or trailing hyphen in a U-label either.
    if label.startswith("-") or label.endswith("-"):
        raise AddressError(f"domain label {label[:60]!r} starts or ends with '-'")

    if _IDEOGRAPHIC_DOTS.intersection(label):
        raise AddressError("ideographic full stop in domain")

    try:
        return idna.ToASCII(label).decode("ascii").lower()
    except UnicodeError as exc:
        raise AddressError(f"domain label {label[:60]!r} is not valid IDNA") from exc


def _parse_param(word: str, smtputf8: bool) -> tuple[str, str | None]:
    keyword, equals, value = word.partition("=")
    if not _KEYWORD.fullmatch(keyword):
        raise AddressError(f"bad parameter keyword {keyword[:40]!r}", kind="params")

    if not equals:
        return keyword.upper(), None

    pattern = _VALUE_UTF8 if smtputf8 else _VALUE_ASCII
    if not pattern.fullmatch(value):
        raise AddressError(f"bad value for parameter {keyword[:40]}", kind="params")

    return keyword.upper(), value
