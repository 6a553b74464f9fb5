"""``serve --workers N``: N processes, each with its own event loop, sharing
one port through SO_REUSEPORT, the same policies and the same mail store.

The parent loads the policies and cleans the mail store once, then forks;
it forwards SIGTERM, SIGINT and SIGHUP to the workers and waits for them.
Delivery stays correct across workers because the store locks each Maildir
around its quota check and delivery.
"""

from __future__ import annotations

import contextlib
import logging
import os
import signal
from collections.abc import Callable
from types import FrameType

log = logging.getLogger("tech2u_mta.workers")

FORWARDED = (signal.SIGTERM, signal.SIGINT, signal.SIGHUP)


def count(text: str) -> int:
    """``auto`` (one per core) or a whole number of at least 1."""
    if text == "auto":
        return len(os.sched_getaffinity(0))
    number = int(text)
    if number < 1:
        raise ValueError("expected auto or a whole number of at least 1")
    return number


def run(workers: int, work: Callable[[int], int]) -> int:
    """Fork ``workers`` children running ``work(index)``; the worst exit
    status of theirs is the parent's."""
    children: list[int] = []
    for index in range(workers):
        pid = os.fork()
        if pid == 0:
            _child(work, index)
        children.append(pid)
    log.info("started %d workers: %s", workers, " ".join(map(str, children)))

    def forward(signum: int, frame: FrameType | None) -> None:
        for pid in children:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signum)

    for signum in FORWARDED:
        signal.signal(signum, forward)
    return _wait(children)


def _child(work: Callable[[int], int], index: int) -> None:
    for signum in FORWARDED:
        signal.signal(signum, signal.SIG_DFL)
    status = 1
    try:
        status = work(index)
    finally:
        os._exit(status)


def _wait(children: list[int]) -> int:
    worst = 0
    for pid in children:
        _, status = os.waitpid(pid, 0)
        code = os.waitstatus_to_exitcode(status)
        if code:
            log.error("worker %d ended with status %d", pid, code)
        worst = max(worst, abs(code))
    return worst
