"""Where a server's time goes: py-spy samples of a running server, added up
by function and by part of the code.

``py-spy record --format raw`` writes one line per distinct stack,
``outer;...;inner COUNT``, each frame as ``function (file:line)``.  The
*self* share of a function is how often it was the innermost frame; the
*total* share is how often it was anywhere on the stack.  The parts
(``AREAS``) are judged by the innermost frame, so they add up to 100 %.
"""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

_FRAME = re.compile(r"^(?P<func>.*?) \((?P<file>[^:()]*)(?::\d+)?\)$")

# (part, pattern of the file path); the first match wins.
AREAS = [
    ("tech2u_mta: session loop and replies (protocol.py)", "tech2u_mta/protocol"),
    ("tech2u_mta: address parsing (addresses.py)", "tech2u_mta/addresses"),
    ("tech2u_mta: checks and policy lookups", "tech2u_mta/(checks|netset|policy)"),
    ("tech2u_mta: reply rendering (catalogue.py)", "tech2u_mta/catalogue"),
    ("tech2u_mta: decision log (logs.py)", "tech2u_mta/logs"),
    ("tech2u_mta: mail store (store.py)", "tech2u_mta/store"),
    ("tech2u_mta: other", "tech2u_mta/"),
    ("logging (stdlib)", "logging/"),
    ("aiosmtpd", "aiosmtpd/"),
    ("email header parser (aiosmtpd's MAIL and RCPT)", "email/"),
    ("asyncio streams and transports", "asyncio/(streams|selector_events|transports)"),
    ("asyncio event loop and tasks", "asyncio/"),
    ("threads (to_thread, executor)", "(threading|concurrent/|queue)"),
    (
        "other stdlib (inspect, re, enum, abc, typing, random)",
        "(inspect|re/|enum|dataclasses|functools|abc|typing|random)",
    ),
    ("uvloop", "uvloop"),
]


# Innermost frames of a thread that waits for work, which py-spy does not
# always tell from a running one: an idle thread of asyncio.to_thread's pool.
IDLE = {"_worker (futures/thread.py)"}


@dataclass
class Profile:
    samples: int
    by_self: Counter[str]
    by_total: Counter[str]
    by_area: Counter[str]


def py_spy() -> str | None:
    """The py-spy command, from the venv or the PATH."""
    local = Path(sys.executable).with_name("py-spy")
    return str(local) if local.exists() else shutil.which("py-spy")


def record(pid: int, seconds: float, out: Path) -> Path:
    """Sample ``pid`` for ``seconds`` at 200 Hz into ``out``."""
    command = py_spy()
    if command is None:
        raise RuntimeError("py-spy is not installed")
    subprocess.run(
        [command, "record", "--pid", str(pid), "--duration", str(int(seconds)),
         "--rate", "200", "--format", "raw", "--output", str(out)],
        check=True,
        capture_output=True,
        timeout=seconds + 60,
    )
    return out


def read(path: Path) -> Profile:
    by_self: Counter[str] = Counter()
    by_total: Counter[str] = Counter()
    by_area: Counter[str] = Counter()
    samples = 0
    for line in path.read_text().splitlines():
        stack, _, count = line.rpartition(" ")
        if not count.isdigit():
            continue
        n = int(count)
        frames = [_name(frame) for frame in stack.split(";")]
        if frames[-1][0] in IDLE:
            continue
        samples += n
        by_self[frames[-1][0]] += n
        for name in {name for name, _ in frames}:
            by_total[name] += n
        by_area[_area(frames[-1][1])] += n
    return Profile(samples, by_self, by_total, by_area)


def _name(frame: str) -> tuple[str, str]:
    """(``function (file)``, file) of one frame, its line number dropped."""
    match = _FRAME.match(frame.strip())
    if not match:
        return frame.strip(), ""
    file = match["file"]
    short = "/".join(file.split("/")[-2:])
    return f"{match['func']} ({short})", file


def _area(file: str) -> str:
    for area, pattern in AREAS:
        if re.search(pattern, file):
            return area
    return "other (C and the rest)"
