"""The policy data: TECH 2U domains, networks, blocklist, mailboxes, logins.

A policy folder holds five plain-text files.  Each has one fact per line;
``#`` starts a comment and blank lines are ignored.

``domains``
    One TECH 2U mail domain per line (``tech2u.com.au``).  Domains compare
    without regard to case and a trailing dot.
``networks``
    One address or CIDR network per line: the TECH 2U networks.  A sender at
    a TECH 2U domain must connect from one of them or log in (the 551 rule).
``blocklist``
    One address or CIDR network per line, IPv4 or IPv6, whose clients are
    refused with 554 at connection.
``mailboxes``
    ``ADDRESS STATUS [QUOTA]``: a mailbox at a TECH 2U domain, its status
    (``active``, ``disabled``, ``busy`` or ``full``) and its storage
    allocation (``50M``, ``1G``, ``unlimited``; the config's
    ``default_quota`` when left out).
``users``
    ``LOGIN PASSWORD``: credentials for SMTP AUTH.  These are test
    credentials and are stored in clear.

A network with host bits set (``203.0.113.5/24``) is refused, not
normalised: it is not clear whether its author meant the /24 or the one
host, and guessing wrong either blocks too much or too little.

Lookups are dictionary and set lookups, so they cost the same however long
the files are; the files are read once, at start-up or on reload.
"""

from __future__ import annotations

import gc
import ipaddress
import logging
import re
import threading
from collections.abc import Iterable, Iterator, Mapping
from copy import deepcopy
from dataclasses import dataclass, field
from enum import Enum
from importlib import resources
from pathlib import Path

from .addresses import AddressError, normalise_domain, parse_path
from .config import parse_size
from .errors import ConfigError
from .netset import NetSet

log = logging.getLogger("tech2u_mta.policy")

FILES = ("domains", "networks", "blocklist", "mailboxes", "users")

# A mailbox name becomes a folder of the mail store, so it is held to a
# narrow, path-safe alphabet: no "/", no leading dot, nothing to escape.
_SAFE_LOCAL = re.compile(r"[a-z0-9][a-z0-9_+-]*(\.[a-z0-9_+-]+)*")
# A lowercase address whose parts need no parsing: a safe local part and a
# domain that, if listed, is already in normal form.
_PLAIN_ADDRESS = re.compile(r"([a-z0-9][a-z0-9_+-]*(?:\.[a-z0-9_+-]+)*)@([a-z0-9.-]+)")


class Status(Enum):
    ACTIVE = "active"
    DISABLED = "disabled"
    BUSY = "busy"
    FULL = "full"


@dataclass(frozen=True, slots=True)
class MailboxPolicy:
    status: Status
    quota: int | None  # octets; None is unlimited


class Countdown:
    """A mailbox that answers with ``status`` for its next ``attempts``
    RCPTs, then as its policy says: "busy twice, then accept" lets a test
    check a client's retries.  Test servers set these; files cannot."""

    def __init__(self, status: Status, attempts: int) -> None:
        self.status = status
        self.left = attempts
        self._lock = threading.Lock()  # sessions of several threads may ask

    def take(self) -> Status | None:
        with self._lock:
            if self.left <= 0:
                return None
            self.left -= 1
            return self.status


@dataclass(frozen=True)
class Policies:
    """One consistent set of policies; a reload builds a new one."""

    domains: frozenset[str] = frozenset()
    networks: NetSet = field(default_factory=NetSet)
    blocklist: NetSet = field(default_factory=NetSet)
    mailboxes: Mapping[str, MailboxPolicy] = field(default_factory=dict)
    users: Mapping[str, str] = field(default_factory=dict)
    scenarios: Mapping[str, Countdown] = field(default_factory=dict)
    source: str = "(empty)"

    def counts(self) -> dict[str, int]:
        return {
            "domains": len(self.domains),
            "networks": len(self.networks),
            "blocklist": len(self.blocklist),
            "mailboxes": len(self.mailboxes),
            "users": len(self.users),
        }


def packaged_folder() -> Path:
    """The demo policies shipped inside the package."""
    return Path(str(resources.files("tech2u_mta") / "policies"))


def default_folder() -> Path:
    """``./policies`` when there is one, else the packaged demo policies."""
    local = Path("policies")
    return local if local.is_dir() else packaged_folder()


def load_folder(folder: Path, default_quota: int | None) -> Policies:
    """Read every policy file of ``folder``; a missing file means no entries."""
    if not folder.is_dir():
        raise ConfigError(str(folder), None, "policy folder not found")
    # Reading a million lines makes millions of short-lived objects; the
    # cyclic collector would scan the growing tables again and again for
    # nothing (they hold no cycles), so it waits until the set is built.
    collecting = gc.isenabled()
    gc.disable()
    try:
        return _load_folder(folder, default_quota)
    finally:
        if collecting:
            gc.enable()


def _load_folder(folder: Path, default_quota: int | None) -> Policies:
    domains = frozenset(_domain(v, loc) for loc, v in _lines(folder / "domains"))
    return Policies(
        domains=domains,
        networks=_networks(folder / "networks"),
        blocklist=_networks(folder / "blocklist"),
        mailboxes=_mailboxes(folder / "mailboxes", domains, default_quota),
        users=_users(folder / "users"),
        source=str(folder),
    )


def from_data(
    domains: Iterable[str] = (),
    networks: Iterable[str] = (),
    blocklist: Iterable[str] = (),
    mailboxes: Mapping[str, str] | Iterable[str] = (),
    users: Mapping[str, str] | None = None,
    default_quota: int | None = 100 << 20,
) -> Policies:
    """Policies from plain Python data, checked as the files are.

    ``mailboxes`` maps an address to ``"STATUS [QUOTA]"``, or is a list of
    whole ``"ADDRESS STATUS [QUOTA]"`` lines.
    """
    if isinstance(mailboxes, Mapping):
        mailboxes = [f"{address} {rest}" for address, rest in mailboxes.items()]
    domain_set = frozenset(_domain(v, w) for w, v in _numbered("domains", domains))
    table: dict[str, MailboxPolicy] = {}
    for where, text in _numbered("mailboxes", mailboxes):
        key, policy = _mailbox(text, where, domain_set, default_quota)
        table[key] = policy
    return Policies(
        domains=domain_set,
        networks=_netset(_numbered("networks", networks)),
        blocklist=_netset(_numbered("blocklist", blocklist)),
        mailboxes=table,
        users=dict(users or {}),
        source="(data)",
    )


def parse_mailbox_line(
    line: str, policies: Policies, default_quota: int | None
) -> tuple[str, MailboxPolicy]:
    """One line of the mailboxes file, checked against ``policies``."""
    return _mailbox(line, _Where("<mailbox>", 1), policies.domains, default_quota)


def extend_netset(table: NetSet, network: str) -> NetSet:
    """A copy of ``table`` with ``network`` added (the original is in use)."""
    copy = deepcopy(table)
    copy.add(_network(network.strip(), _Where("<network>", 1)), value="<added>")
    return copy


def _numbered(name: str, items: Iterable[str]) -> Iterator[tuple[_Where, str]]:
    where = _Where(f"<{name}>", 0)
    for index, item in enumerate(items, start=1):
        where.line = index
        yield where, item.strip()


@dataclass(slots=True)
class _Where:
    """The file and line being read; one per file, moved along line by line,
    so that a million lines cost no million objects."""

    path: str
    line: int

    def error(self, problem: str, key: str | None = None) -> ConfigError:
        return ConfigError(self.path, self.line, problem, key)


def _lines(path: Path) -> Iterator[tuple[_Where, str]]:
    """(where, text) for each line that is not blank or a comment.  A
    missing file has no lines; the log says so, since a missing
    ``networks`` file, say, changes who gets 551."""
    if not path.exists():
        log.warning("%s: no such file; it counts as empty", path)
        return
    where = _Where(str(path), 0)
    try:
        with path.open("rb") as file:
            for number, data in enumerate(file, start=1):
                where.line = number
                raw = data.decode("utf-8")
                text = (raw.split("#", 1)[0] if "#" in raw else raw).strip()
                if text:
                    yield where, text
    except UnicodeDecodeError:
        raise where.error("not UTF-8 text") from None
    except OSError as err:
        raise ConfigError(str(path), None, f"cannot read: {err}") from None


def _domain(text: str, where: _Where) -> str:
    try:
        return normalise_domain(text)
    except AddressError:
        raise where.error(f"{text!r} is not a domain name", "domain") from None


def _networks(path: Path) -> NetSet:
    return _netset(_lines(path))


def _netset(lines: Iterable[tuple[_Where, str]]) -> NetSet:
    table = NetSet()
    names: dict[str, str] = {}
    for where, text in lines:
        name = names.get(where.path) or names.setdefault(
            where.path, Path(where.path).name
        )
        table.add(_network(text, where), value=f"{name}:{where.line}")
    return table


def _network(text: str, where: _Where) -> ipaddress.IPv4Network | ipaddress.IPv6Network:
    try:
        return ipaddress.ip_network(text, strict=True)
    except ValueError as err:
        if "host bits set" in str(err):
            fixed = ipaddress.ip_network(text, strict=False)
            problem = (
                f"{text!r} has host bits set; write the network {fixed} "
                f"or the single address {text.split('/')[0]}"
            )
        else:
            problem = f"{text!r} is not an IP address or CIDR network"
        raise where.error(problem, "network") from None


def _mailboxes(
    path: Path, domains: frozenset[str], default_quota: int | None
) -> dict[str, MailboxPolicy]:
    table: dict[str, MailboxPolicy] = {}
    reader = _MailboxReader(domains, default_quota)
    plain, shared = _PLAIN_ADDRESS.fullmatch, reader.shared
    for where, text in _lines(path):
        # The common line, inline: this loop runs a million times.
        fields_ = text.split()
        if 2 <= len(fields_) <= 3:
            key = fields_[0].lower()
            match = plain(key)
            policy = shared.get((fields_[1], fields_[2] if len(fields_) == 3 else None))
            if match and policy and match.group(2) in domains and key not in table:
                table[key] = policy
                continue
        key, policy = reader.line(text, where)
        if key in table:
            raise where.error(f"{key} is listed twice", "address")
        table[key] = policy
    return table


def _mailbox(
    text: str, where: _Where, domains: frozenset[str], default_quota: int | None
) -> tuple[str, MailboxPolicy]:
    return _MailboxReader(domains, default_quota).line(text, where)


class _MailboxReader:
    """Reads lines of the mailboxes file.

    A real ISP lists millions of mailboxes, nearly all plain addresses with
    one of a few status and quota pairs.  Those take a fast path, and every
    mailbox with the same pair shares one policy object: loading stays
    quick, and the table holds a handful of objects for the garbage
    collector to scan, not millions.  Anything else goes through the full
    RFC 5321 parser, which also words the errors.
    """

    def __init__(self, domains: frozenset[str], default_quota: int | None) -> None:
        self.domains = domains
        self.default_quota = default_quota
        self.shared: dict[tuple[str, str | None], MailboxPolicy] = {}

    def line(self, text: str, where: _Where) -> tuple[str, MailboxPolicy]:
        fields_ = text.split()
        if len(fields_) not in (2, 3):
            raise where.error("expected ADDRESS STATUS [QUOTA]")
        quota = fields_[2] if len(fields_) == 3 else None
        return self.key(fields_[0], where), self.policy(fields_[1], quota, where)

    def key(self, text: str, where: _Where) -> str:
        lowered = text.lower()
        match = _PLAIN_ADDRESS.fullmatch(lowered)
        if match and match.group(2) in self.domains:
            return lowered  # what the full parser would make of it
        return _mailbox_key(text, where, self.domains)

    def policy(self, status: str, quota: str | None, where: _Where) -> MailboxPolicy:
        policy = self.shared.get((status, quota))
        if policy is None:
            octets = self.default_quota if quota is None else _quota(quota, where)
            policy = MailboxPolicy(_status(status, where), octets)
            self.shared[status, quota] = policy
        return policy


def _mailbox_key(text: str, where: _Where, domains: frozenset[str]) -> str:
    try:
        mailbox, _ = parse_path(f"<{text}>")
    except AddressError:
        mailbox = None
    if mailbox is None or not mailbox.domain:
        raise where.error(
            f"{text!r} is not an address like alice@example.com", "address"
        )
    local, domain = mailbox.key.rsplit("@", 1)
    if domain not in domains:
        raise where.error(f"{domain} is not listed in domains", "address")
    if not _SAFE_LOCAL.fullmatch(local):
        raise where.error(
            f"{local!r}: a mailbox name is letters, digits and . _ + - only",
            "address",
        )
    return mailbox.key


def _status(text: str, where: _Where) -> Status:
    try:
        return Status(text.lower())
    except ValueError:
        known = ", ".join(s.value for s in Status)
        raise where.error(f"{text!r}: expected one of {known}", "status") from None


def _quota(text: str, where: _Where) -> int | None:
    if text.lower() == "unlimited":
        return None
    try:
        return parse_size(text)
    except ValueError as err:
        raise where.error(f"{text!r}: {err}, or unlimited", "quota") from None


def _users(path: Path) -> dict[str, str]:
    table: dict[str, str] = {}
    for where, text in _lines(path):
        login, _, password = text.partition(" ")
        if not password.strip():
            raise where.error("expected LOGIN PASSWORD", "login")
        table[login] = password.strip()
    return table
