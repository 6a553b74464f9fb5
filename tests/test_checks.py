"""The policy checks on plain data, without a socket."""

from __future__ import annotations

import ipaddress

import pytest

from tech2u_mta import checks
from tech2u_mta.addresses import parse_path
from tech2u_mta.catalogue import Entry, R
from tech2u_mta.policy import from_data

POLICIES = from_data(
    domains=["tech2u.com.au"],
    networks=["127.0.0.1/32", "::1/128", "10.20.0.0/16"],
    blocklist=["127.0.0.2", "192.0.2.0/24", "2001:db8:bad::/48"],
    mailboxes={
        "alice@tech2u.com.au": "active",
        "bob@tech2u.com.au": "active 1000",
        "olduser@tech2u.com.au": "disabled",
        "busy@tech2u.com.au": "busy",
        "full@tech2u.com.au": "full",
    },
)
LIMITS = checks.Limits(max_message_size=5000, min_free_space=100, max_recipients=3)
USAGE = {"bob@tech2u.com.au": 600}


def ip(text: str) -> checks.IPAddress:
    return ipaddress.ip_address(text)


def mailbox(text: str):  # type: ignore[no-untyped-def]
    return parse_path(f"<{text}>")[0]


@pytest.mark.parametrize(
    ("client", "entry"),
    [
        ("127.0.0.2", R.BLOCKLISTED),
        ("192.0.2.200", R.BLOCKLISTED),
        ("2001:db8:bad:1::5", R.BLOCKLISTED),
        ("2001:db8:bae::5", R.GREETING),
        ("127.0.0.3", R.GREETING),
        ("203.0.113.9", R.GREETING),
    ],
)
def test_connect(client: str, entry: Entry) -> None:
    assert checks.connect(POLICIES, ip(client)).entry is entry


@pytest.mark.parametrize(
    ("size", "free", "entry"),
    [
        (None, 10_000, R.SENDER_OK),
        (5000, 10_000, R.SENDER_OK),
        (5001, 10_000, R.MESSAGE_TOO_BIG),
        (None, 99, R.STORE_FULL),
        (1000, 100, R.SENDER_OK),
    ],
)
def test_sender(size: int | None, free: int, entry: Entry) -> None:
    assert checks.sender(LIMITS, size, free).entry is entry


@pytest.mark.parametrize(
    ("client", "login", "sender", "to", "entry"),
    [
        ("127.0.0.3", None, "x@example.com", "alice@tech2u.com.au", R.RECIPIENT_OK),
        ("127.0.0.3", None, "x@example.com", "ALICE@Tech2U.com.au.", R.RECIPIENT_OK),
        ("127.0.0.3", None, "x@example.com", '"alice"@tech2u.com.au', R.RECIPIENT_OK),
        ("127.0.0.3", None, "x@example.com", "nobody@tech2u.com.au", R.UNKNOWN_MAILBOX),
        (
            "127.0.0.3",
            None,
            "x@example.com",
            "olduser@tech2u.com.au",
            R.MAILBOX_DISABLED,
        ),
        ("127.0.0.3", None, "x@example.com", "busy@tech2u.com.au", R.MAILBOX_BUSY),
        ("127.0.0.3", None, "x@example.com", "full@tech2u.com.au", R.MAILBOX_FULL),
        ("127.0.0.3", None, "x@example.com", "x@example.org", R.RELAY_DENIED),
        ("127.0.0.3", None, "a@tech2u.com.au", "bob@tech2u.com.au", R.FAKE_CUSTOMER),
        ("127.0.0.3", None, "a@TECH2U.COM.AU.", "bob@tech2u.com.au", R.FAKE_CUSTOMER),
        ("127.0.0.3", "alice", "a@tech2u.com.au", "bob@tech2u.com.au", R.RECIPIENT_OK),
        ("127.0.0.1", None, "a@tech2u.com.au", "bob@tech2u.com.au", R.RECIPIENT_OK),
        ("10.20.3.4", None, "a@tech2u.com.au", "bob@tech2u.com.au", R.RECIPIENT_OK),
        (
            "::ffff:10.20.3.4",
            None,
            "a@tech2u.com.au",
            "bob@tech2u.com.au",
            R.RECIPIENT_OK,
        ),
        ("::1", None, "a@tech2u.com.au", "bob@tech2u.com.au", R.RECIPIENT_OK),
        ("127.0.0.3", None, None, "bob@tech2u.com.au", R.RECIPIENT_OK),
        # Postmaster is reachable whatever the sender or mailbox policies say.
        ("127.0.0.3", None, "a@tech2u.com.au", "Postmaster", R.RECIPIENT_OK),
        (
            "127.0.0.3",
            None,
            "a@tech2u.com.au",
            "POSTMASTER@tech2u.com.au",
            R.RECIPIENT_OK,
        ),
        ("127.0.0.3", None, "x@example.com", "postmaster@example.org", R.RELAY_DENIED),
    ],
)
def test_recipient(
    client: str, login: str | None, sender: str | None, to: str, entry: Entry
) -> None:
    from_ = mailbox(sender) if sender else None
    decision = checks.recipient(
        POLICIES,
        LIMITS,
        checks.Client(ip(client), login),
        from_,
        mailbox(to),
        0,
        None,
        lambda key: USAGE.get(key, 0),
    )
    assert decision.entry is entry, decision


def test_postmaster_without_domain_goes_to_the_first_domain() -> None:
    decision = checks.recipient(
        POLICIES,
        LIMITS,
        checks.Client(ip("127.0.0.3")),
        None,
        mailbox("Postmaster"),
        0,
        None,
        lambda key: 0,
    )
    assert decision.mailbox == "postmaster@tech2u.com.au"


@pytest.mark.parametrize(
    ("accepted", "size", "entry"),
    [
        (0, None, R.RECIPIENT_OK),
        (2, None, R.RECIPIENT_OK),
        (3, None, R.TOO_MANY_RECIPIENTS),
        (0, 400, R.RECIPIENT_OK),
        (0, 401, R.MAILBOX_FULL),  # 600 used + 401 declared > 1000
    ],
)
def test_recipient_limits_and_declared_size(
    accepted: int, size: int | None, entry: Entry
) -> None:
    decision = checks.recipient(
        POLICIES,
        LIMITS,
        checks.Client(ip("127.0.0.1")),
        None,
        mailbox("bob@tech2u.com.au"),
        accepted,
        size,
        lambda key: USAGE.get(key, 0),
    )
    assert decision.entry is entry


@pytest.mark.parametrize(
    ("mailboxes", "size", "entry"),
    [
        (["alice@tech2u.com.au", "bob@tech2u.com.au"], 400, R.ACCEPTED),
        (["alice@tech2u.com.au", "bob@tech2u.com.au"], 401, R.MAILBOX_FULL),
        (["postmaster@tech2u.com.au"], 10**9, R.ACCEPTED),
    ],
)
def test_message_is_all_or_nothing(
    mailboxes: list[str], size: int, entry: Entry
) -> None:
    decision = checks.message(POLICIES, mailboxes, size, lambda k: USAGE.get(k, 0))
    assert decision.entry is entry
