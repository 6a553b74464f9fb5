"""The large policy set of the benchmark: the demo policies grown to a
million mailboxes and a hundred thousand blocklist networks.

The mailbox names are chosen so that both load generators can reach them:

``<n>u@tech2u.com.au``
    active, for n below ``ACTIVE``; ``smtp-source -N -t u@tech2u.com.au``
    puts a message number before each recipient, so it spreads its mail
    over these mailboxes without knowing the file.
``<n>d@``, ``<n>b@``, ``<n>f@``
    disabled, busy and full, for the all-rejected load.

Half the active mailboxes have a quota written out (50M or 1G), a quarter
are unlimited and a quarter take the config's default, so the quota check
runs for three recipients in four.  The blocklist mixes IPv4 and IPv6 networks of every
prefix length a real list holds, which is the worst case for a lookup (one
dictionary probe per length present).  Nothing in it covers 127.0.0.0/8, so
the loopback clients of the benchmark are refused only where the demo's own
``127.0.0.2`` says so.  The output is the same for the same numbers, and is
written again only when they change.
"""

from __future__ import annotations

import ipaddress
import json
import random
import shutil
import sys
from pathlib import Path

DOMAIN = "tech2u.com.au"
MAILBOXES = 1_000_000
BLOCKLIST = 100_000
ACTIVE = 900_000  # <n>u@ mailboxes; the rest of the million are refused ones
SEED = 5  # the number; any fixed value keeps runs comparable

_QUOTAS = ("", " 50M", " unlimited", " 1G")
_REFUSED_KINDS = (("d", "disabled"), ("b", "busy"), ("f", "full"))
_V4_SHARE = 0.75
_V4_LENGTHS = list(range(8, 33))
_V4_WEIGHTS = [1 if n < 16 else 4 if n < 24 else 12 for n in _V4_LENGTHS]
_V6_LENGTHS = [*range(19, 65), 96, 112, 128]


def demo_folder(repo: Path) -> Path:
    """The demo policies: the repository's ``policies/`` if present, else
    the copy packaged with tech2u_mta."""
    local = repo / "policies"
    if local.is_dir():
        return local
    from tech2u_mta.policy import packaged_folder

    return packaged_folder()


def build(demo: Path, target: Path, mailboxes: int = MAILBOXES,
          blocklist: int = BLOCKLIST) -> Path:
    """Write the grown policy folder at ``target`` unless it is already
    there for the same sizes and the same demo files."""
    stamp = {
        "mailboxes": mailboxes,
        "blocklist": blocklist,
        "active": ACTIVE,
        "seed": SEED,
        "demo": {p.name: p.read_text() for p in sorted(demo.iterdir())},
    }
    stamp_file = target / ".stamp"
    if stamp_file.exists() and json.loads(stamp_file.read_text()) == stamp:
        return target

    if target.exists():
        shutil.rmtree(target)
    target.mkdir(parents=True)
    for path in demo.iterdir():
        if path.is_file():
            shutil.copyfile(path, target / path.name)

    rng = random.Random(SEED)
    _grow_mailboxes(target / "mailboxes", mailboxes)
    _grow_blocklist(target / "blocklist", blocklist, rng)
    stamp_file.write_text(json.dumps(stamp))
    return target


def _entries(path: Path) -> int:
    """How many lines of a policy file are entries, not comments."""
    lines = path.read_text().splitlines() if path.exists() else []
    return sum(1 for line in lines if line.split("#", 1)[0].strip())


def _grow_mailboxes(path: Path, total: int) -> None:
    missing = total - _entries(path)
    active = min(ACTIVE, missing)
    refused = missing - active
    with path.open("a") as out:
        out.write("# Grown by bench/bigpolicy.py\n")
        out.writelines(
            f"{n}u@{DOMAIN} active{_QUOTAS[n % 4]}\n" for n in range(active)
        )
        for n in range(refused):
            letter, status = _REFUSED_KINDS[n % 3]
            out.write(f"{n}{letter}@{DOMAIN} {status}\n")


def _grow_blocklist(path: Path, total: int, rng: random.Random) -> None:
    missing = total - _entries(path)
    v4_count = int(missing * _V4_SHARE)
    networks = _v4_networks(v4_count, rng) + _v6_networks(missing - v4_count, rng)
    with path.open("a") as out:
        out.write("# Grown by bench/bigpolicy.py\n")
        out.writelines(f"{net}\n" for net in networks)


def _v4_networks(count: int, rng: random.Random) -> list[str]:
    seen: set[tuple[int, int]] = set()
    out: list[str] = []
    while len(out) < count:
        length = rng.choices(_V4_LENGTHS, _V4_WEIGHTS)[0]
        mask = (0xFFFFFFFF << (32 - length)) & 0xFFFFFFFF
        number = rng.getrandbits(32) & mask
        # Keep loopback and 0.0.0.0/8 clear, and every network inside them.
        if (number >> 24) in (0, 127) or (number, length) in seen:
            continue
        seen.add((number, length))
        out.append(f"{ipaddress.IPv4Address(number)}/{length}")
    return out


def _v6_networks(count: int, rng: random.Random) -> list[str]:
    seen: set[tuple[int, int]] = set()
    out: list[str] = []
    while len(out) < count:
        length = rng.choice(_V6_LENGTHS)
        # Inside 2000::/3 (global unicast): never ::1 nor ::ffff:0:0/96.
        number = (0b001 << 125) | rng.getrandbits(125)
        number &= ((1 << 128) - 1) ^ ((1 << (128 - length)) - 1)
        if (number, length) in seen:
            continue
        seen.add((number, length))
        out.append(f"{ipaddress.IPv6Address(number)}/{length}")
    return out


if __name__ == "__main__":
    repo = Path(__file__).resolve().parent.parent
    folder = build(demo_folder(repo), Path(sys.argv[1]))
    print(folder)
