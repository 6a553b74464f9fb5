"""The policy checks, one function per stage of a session.

Each check is a pure function of plain data that returns a ``Decision``: the
catalogue entry to answer with, the name of the rule that decided, and the
reason for the log.  The protocol layer only turns decisions into replies;
``tech2u-mta check`` runs the same functions without a network.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from .addresses import Mailbox
from .catalogue import Entry, R
from .policy import Policies, Status

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address


@dataclass(frozen=True, slots=True)
class Decision:
    entry: Entry
    check: str
    reason: str = ""
    mailbox: str | None = None  # for an accepted recipient: where it is delivered

    @property
    def accepted(self) -> bool:
        return self.entry.code < 400


@dataclass(frozen=True, slots=True)
class Limits:
    max_message_size: int
    min_free_space: int
    max_recipients: int


@dataclass(frozen=True, slots=True)
class Client:
    """What the checks know of the client."""

    address: IPAddress | None  # None: unknown (XCLIENT ADDR=[UNAVAILABLE])
    login: str | None = None  # the authenticated login, if any


Usage = Callable[[str], int]  # mailbox key -> octets its Maildir holds


def connect(policies: Policies, address: IPAddress | None) -> Decision:
    """The blocklist, checked once before the greeting (RFC 5321 3.1)."""
    rule = None if address is None else policies.blocklist.lookup(address)
    if rule is not None:
        return Decision(R.BLOCKLISTED, "blocklist", f"listed at {rule}")
    return Decision(R.GREETING, "blocklist")


def sender(limits: Limits, declared_size: int | None, free_space: int) -> Decision:
    """MAIL FROM: what can be refused before any recipient is known."""
    if declared_size is not None and declared_size > limits.max_message_size:
        # RFC 1870 6: refuse a declared SIZE over the limit at MAIL.
        reason = f"declared {declared_size} > {limits.max_message_size}"
        return Decision(R.MESSAGE_TOO_BIG, "size_limit", reason)
    if free_space < limits.min_free_space:
        reason = f"free {free_space} < {limits.min_free_space}"
        return Decision(R.STORE_FULL, "store_space", reason)
    return Decision(R.SENDER_OK, "sender")


def recipient(
    policies: Policies,
    limits: Limits,
    client: Client,
    from_: Mailbox | None,
    to: Mailbox,
    accepted: int,
    declared_size: int | None,
    usage: Usage,
) -> Decision:
    """RCPT TO: relay, fake customer names, then the mailbox itself."""
    if accepted >= limits.max_recipients:
        # RFC 5321 4.5.3.1.10: 452, not 552, for too many recipients.
        return Decision(R.TOO_MANY_RECIPIENTS, "max_recipients", f"{accepted}")
    postmaster = _postmaster(policies, to)
    if postmaster:
        # RFC 5321 4.5.1: postmaster is always reachable.
        return Decision(R.RECIPIENT_OK, "postmaster", mailbox=postmaster)
    if to.domain not in policies.domains:
        return Decision(R.RELAY_DENIED, "relay", f"domain {to.domain}")
    fake = fake_customer(policies, client, from_)
    if fake:
        return fake
    return mailbox(policies, to.key, declared_size or 0, usage)


def fake_customer(
    policies: Policies, client: Client, from_: Mailbox | None
) -> Decision | None:
    """551 for a TECH 2U sender from outside the network, not logged in.

    The null sender has no domain, so it is never a TECH 2U sender
    (RFC 5321 4.5.5: bounces must get through).
    """
    if from_ is None or from_.domain not in policies.domains:
        return None
    if client.login is not None:
        return None
    if client.address is not None and client.address in policies.networks:
        return None
    reason = f"sender {from_.domain} from {client.address}"
    return Decision(R.FAKE_CUSTOMER, "fake_customer", reason)


def mailbox(policies: Policies, key: str, size: int, usage: Usage) -> Decision:
    """The mailbox's status and storage allocation."""
    policy = policies.mailboxes.get(key)
    if policy is None:
        return Decision(R.UNKNOWN_MAILBOX, "mailbox_exists", key)
    status = policy.status
    scenario = policies.scenarios.get(key)
    if scenario is not None:
        status = scenario.take() or status
    if status is Status.DISABLED:
        return Decision(R.MAILBOX_DISABLED, "mailbox_status", "disabled")
    if status is Status.BUSY:
        return Decision(R.MAILBOX_BUSY, "mailbox_status", "busy")
    if status is Status.FULL:
        return Decision(R.MAILBOX_FULL, "mailbox_quota", "marked full")
    if policy.quota is not None:
        used = usage(key)
        if used >= policy.quota or used + size > policy.quota:
            reason = f"used {used} + {size} > {policy.quota}"
            return Decision(R.MAILBOX_FULL, "mailbox_quota", reason)
    return Decision(R.RECIPIENT_OK, "mailbox", mailbox=key)


def message(
    policies: Policies, mailboxes: Sequence[str], size: int, usage: Usage
) -> Decision:
    """End of data: the message must fit every mailbox, or none gets it.

    All or nothing, because the client gets one reply for the whole
    message: after a 552 it will resend to every recipient, so a partial
    delivery would give some of them two copies.
    """
    for key in mailboxes:
        policy = policies.mailboxes.get(key)
        if policy is None or policy.quota is None:
            continue  # postmaster and unlimited mailboxes
        used = usage(key)
        if used + size > policy.quota:
            reason = f"{key} used {used} + {size} > {policy.quota}"
            return Decision(R.MAILBOX_FULL, "mailbox_quota", reason)
    return Decision(R.ACCEPTED, "delivery")


def _postmaster(policies: Policies, to: Mailbox) -> str | None:
    """The mailbox key for postmaster, if ``to`` names it."""
    if to.key == "postmaster" and policies.domains:
        return f"postmaster@{min(policies.domains)}"
    local, _, domain = to.key.rpartition("@")
    if local == "postmaster" and domain in policies.domains:
        return to.key
    return None
