"""Session ids, message ids and support references.

None of them guards anything, so they come from a fast generator seeded
from the system's randomness rather than from ``secrets``, which costs a
system call each time.  Each worker process reseeds after the fork, so two
workers never hand out the same ids.
"""

from __future__ import annotations

import os
import random

_random = random.Random(os.urandom(16))


def _reseed() -> None:
    _random.seed(os.urandom(16))


os.register_at_fork(after_in_child=_reseed)


def hex_id(octets: int) -> str:
    """``octets`` random octets as upper-case hex."""
    return f"{_random.getrandbits(octets * 8):0{octets * 2}X}"
