"""Sets of IP networks whose lookup cost does not grow with their size.

A policy list of an ISP can hold a hundred thousand CIDR blocks.  Testing an
address against each in turn would make every connection pay for the whole
list, so a :class:`NetSet` groups its networks by prefix length instead: a
lookup masks the address once per prefix length present (at most 33 for IPv4,
129 for IPv6) and asks a dictionary whether the result is one of the networks.

Everything inside works on integers; an ``ipaddress`` object is only read on
the way in.
"""

from __future__ import annotations

import ipaddress

Address = ipaddress.IPv4Address | ipaddress.IPv6Address
Network = ipaddress.IPv4Network | ipaddress.IPv6Network

# RFC 4291 2.5.5.2: ::ffff:0:0/96 holds the IPv4-mapped addresses, which is
# how a dual-stack socket shows an IPv4 client.
_MAPPED_HIGH_BITS = 0xFFFF
_IPV4_BITS = 0xFFFFFFFF


def client_address(text: str) -> Address:
    """Parse a client address as a socket gives it.

    An IPv6 zone (``%eth0``) is dropped, and an IPv4-mapped IPv6 address comes
    back as the IPv4 address, so that IPv4 rules match clients seen through a
    dual-stack socket.  Raises ValueError for anything else that is not an
    address.
    """
    host, percent, zone = text.partition("%")
    if percent and (not zone or ":" not in host):
        raise ValueError(f"bad zone in client address {text[:60]!r}")

    address = ipaddress.ip_address(host)
    if isinstance(address, ipaddress.IPv6Address):
        mapped = address.ipv4_mapped
        if mapped is not None:
            return mapped

    return address


class _Table:
    """The networks of one address family, keyed by prefix length."""

    __slots__ = ("_all_ones", "_by_length", "_search")

    def __init__(self, bits: int) -> None:
        self._all_ones = (1 << bits) - 1
        self._by_length: dict[int, dict[int, object]] = {}

        # (mask, networks) for each prefix length present, longest first, so
        # that the first hit of a lookup is the most specific network.
        self._search: list[tuple[int, dict[int, object]]] = []

    def add(self, network: int, prefixlen: int, value: object) -> bool:
        """Store value for network/prefixlen; True if the network is new."""
        networks = self._by_length.get(prefixlen)
        if networks is None:
            networks = self._by_length[prefixlen] = {}
            self._rebuild_search()

        is_new = network not in networks
        networks[network] = value
        return is_new

    def lookup(self, address: int) -> object | None:
        # Values are never None (NetSet.add refuses it), so None means absent.
        for mask, networks in self._search:
            value = networks.get(address & mask)
            if value is not None:
                return value

        return None

    def _rebuild_search(self) -> None:
        lengths = sorted(self._by_length, reverse=True)
        self._search = [
            (self._all_ones ^ (self._all_ones >> length), self._by_length[length])
            for length in lengths
        ]


class NetSet:
    """IP networks, each with a value; a lookup finds the longest match.

    IPv4 and IPv6 networks live in separate tables.  An IPv4-mapped IPv6
    address is looked up as the IPv4 address it carries, and an IPv6 network
    inside ::ffff:0:0/96 is stored as the IPv4 network it stands for, so the
    two spellings of an IPv4 client always meet.
    """

    __slots__ = ("_count", "_v4", "_v6")

    def __init__(self) -> None:
        self._v4 = _Table(32)
        self._v6 = _Table(128)
        self._count = 0

    def add(self, network: Network, value: object = True) -> None:
        """Add network with value; adding a network again replaces its value."""
        # None is what lookup returns for "no match", so it cannot be a value.
        if value is None:
            raise ValueError("a NetSet value cannot be None")

        number = int(network.network_address)
        prefixlen = network.prefixlen
        if isinstance(network, ipaddress.IPv4Network):
            is_new = self._v4.add(number, prefixlen, value)
        elif prefixlen >= 96 and number >> 32 == _MAPPED_HIGH_BITS:
            is_new = self._v4.add(number & _IPV4_BITS, prefixlen - 96, value)
        else:
            is_new = self._v6.add(number, prefixlen, value)

        if is_new:
            self._count += 1

    def lookup(self, address: Address) -> object | None:
        """The value of the longest network containing address, else None."""
        number = int(address)
        if isinstance(address, ipaddress.IPv4Address):
            return self._v4.lookup(number)

        if number >> 32 == _MAPPED_HIGH_BITS:
            return self._v4.lookup(number & _IPV4_BITS)

        return self._v6.lookup(number)

    def __contains__(self, address: Address) -> bool:
        return self.lookup(address) is not None

    def __len__(self) -> int:
        return self._count

    def __repr__(self) -> str:
        return f"<NetSet of {self._count} networks>"
