"""Unit tests of tech2u_mta.netset: client addresses and network sets."""

from __future__ import annotations

import ipaddress

import pytest
from hypothesis import given
from hypothesis import strategies as st

from tech2u_mta.netset import Address, NetSet, Network, client_address


def netset_of(*networks: str) -> NetSet:
    """A NetSet whose value for each network is the network as written."""
    netset = NetSet()
    for network in networks:
        netset.add(ipaddress.ip_network(network), network)

    return netset


LOOKUPS = {
    "host /32": (["192.0.2.1/32"], "192.0.2.1", "192.0.2.1/32"),
    "host /32 neighbour": (["192.0.2.1/32"], "192.0.2.2", None),
    "host /128": (["2001:db8::1/128"], "2001:db8::1", "2001:db8::1/128"),
    "host /128 neighbour": (["2001:db8::1/128"], "2001:db8::2", None),
    "/24": (["192.0.2.0/24"], "192.0.2.200", "192.0.2.0/24"),
    "outside /24": (["192.0.2.0/24"], "192.0.3.1", None),
    "/48": (["2001:db8:1::/48"], "2001:db8:1:ffff::1", "2001:db8:1::/48"),
    "outside /48": (["2001:db8:1::/48"], "2001:db8:2::1", None),
    "longest of three": (
        ["10.0.0.0/8", "10.1.0.0/16", "10.1.2.0/24"],
        "10.1.2.3",
        "10.1.2.0/24",
    ),
    "middle of three": (
        ["10.0.0.0/8", "10.1.0.0/16", "10.1.2.0/24"],
        "10.1.3.3",
        "10.1.0.0/16",
    ),
    "shortest of three": (
        ["10.0.0.0/8", "10.1.0.0/16", "10.1.2.0/24"],
        "10.2.0.1",
        "10.0.0.0/8",
    ),
    "longest wins whatever the order": (
        ["10.1.2.0/24", "10.0.0.0/8"],
        "10.1.2.3",
        "10.1.2.0/24",
    ),
    "longest IPv6": (
        ["2001:db8::/32", "2001:db8:1::/48"],
        "2001:db8:1::5",
        "2001:db8:1::/48",
    ),
    "mapped address matches IPv4": (
        ["203.0.113.0/24"],
        "::ffff:203.0.113.7",
        "203.0.113.0/24",
    ),
    "mapped network matches IPv4": (
        ["::ffff:192.0.2.0/120"],
        "192.0.2.9",
        "::ffff:192.0.2.0/120",
    ),
    "IPv6 never matches IPv4": (["0.0.0.0/0"], "2001:db8::c000:201", None),
    "IPv4-compatible is not mapped": (["0.0.0.0/0"], "::192.0.2.1", None),
    "IPv4 never matches IPv6": (["::/0"], "192.0.2.1", None),
    "empty set": ([], "192.0.2.1", None),
    "empty set IPv6": ([], "2001:db8::1", None),
    "everything IPv4": (["0.0.0.0/0"], "198.51.100.1", "0.0.0.0/0"),
    "everything IPv6": (["::/0"], "2001:db8::1", "::/0"),
}


@pytest.mark.parametrize(
    ("networks", "address", "expected"), LOOKUPS.values(), ids=LOOKUPS.keys()
)
def test_lookup(networks: list[str], address: str, expected: str | None) -> None:
    netset = netset_of(*networks)
    ip = ipaddress.ip_address(address)

    assert netset.lookup(ip) == expected
    assert (ip in netset) is (expected is not None)


def test_len_counts_distinct_networks() -> None:
    netset = netset_of("192.0.2.0/24", "2001:db8::/32", "192.0.2.0/24")
    assert len(netset) == 2
    assert len(NetSet()) == 0


def test_adding_again_replaces_the_value() -> None:
    netset = NetSet()
    netset.add(ipaddress.ip_network("192.0.2.0/24"), "old")
    netset.add(ipaddress.ip_network("192.0.2.0/24"), "new")

    assert netset.lookup(ipaddress.ip_address("192.0.2.1")) == "new"


def test_default_value_is_true() -> None:
    netset = NetSet()
    netset.add(ipaddress.ip_network("192.0.2.0/24"))

    assert netset.lookup(ipaddress.ip_address("192.0.2.1")) is True


def test_none_value_is_refused() -> None:
    with pytest.raises(ValueError):
        NetSet().add(ipaddress.ip_network("192.0.2.0/24"), None)


def test_many_networks() -> None:
    netset = NetSet()
    for number in range(100_000):
        netset.add(ipaddress.IPv4Network((number << 8, 24)), number)

    assert len(netset) == 100_000
    assert netset.lookup(ipaddress.IPv4Address((99_999 << 8) + 7)) == 99_999
    assert netset.lookup(ipaddress.IPv4Address(100_000 << 8)) is None


CLIENT_ADDRESSES = {
    "IPv4": ("192.0.2.1", "192.0.2.1"),
    "IPv6": ("2001:db8::1", "2001:db8::1"),
    "zone stripped": ("fe80::1%eth0", "fe80::1"),
    "numeric zone stripped": ("fe80::1%2", "fe80::1"),
    "mapped becomes IPv4": ("::ffff:203.0.113.7", "203.0.113.7"),
    "mapped in hex becomes IPv4": ("::ffff:cb00:7107", "203.0.113.7"),
    "loopback": ("::1", "::1"),
}


@pytest.mark.parametrize(
    ("text", "expected"), CLIENT_ADDRESSES.values(), ids=CLIENT_ADDRESSES.keys()
)
def test_client_address(text: str, expected: str) -> None:
    address = client_address(text)

    assert address == ipaddress.ip_address(expected)
    assert str(address) == expected


@pytest.mark.parametrize(
    "text",
    [
        "",
        "garbage",
        "256.0.0.1",
        " 192.0.2.1",
        "192.0.2.0/24",
        "192.0.2.1%eth0",
        "fe80::1%",
        "[::1]",
    ],
)
def test_client_address_refuses_garbage(text: str) -> None:
    with pytest.raises(ValueError):
        client_address(text)


# A small corner of the address space, so that random networks and
# addresses overlap often enough to test the longest match.
_addresses = st.integers(0, 1023).map(lambda n: ipaddress.IPv4Address(0x0A000000 + n))
_networks = st.builds(
    lambda address, prefixlen: ipaddress.IPv4Network(
        (int(address), prefixlen), strict=False
    ),
    _addresses,
    st.integers(20, 32),
)


def brute_force(networks: list[Network], address: Address) -> object | None:
    matching = [network for network in networks if address in network]
    if not matching:
        return None

    return str(max(matching, key=lambda network: network.prefixlen))


@given(networks=st.lists(_networks, max_size=30), address=_addresses)
def test_lookup_agrees_with_brute_force(
    networks: list[Network], address: Address
) -> None:
    netset = NetSet()
    for network in networks:
        netset.add(network, str(network))

    assert netset.lookup(address) == brute_force(networks, address)
    assert len(netset) == len(set(networks))
