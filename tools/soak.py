"""Soak test: many concurrent sessions against a real ``tech2u-mta serve``.

Bounded in messages and in time, loopback only.  It mixes accepted mail
with 550, 551 and 554 refusals, then checks that every message acknowledged
with 250 is in its Maildir exactly once, that nothing is left half-written,
and that the server's memory came back down after the load.  It prints what
it checked and the figures; the exit status is 0 when every check held.

    .venv/bin/python tools/soak.py [--messages 20000] [--sessions 200] [--rounds 2]
"""

from __future__ import annotations

import argparse
import asyncio
import random
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
SERVE = [sys.executable, "-m", "tech2u_mta", "serve"]

# (client address, sender, recipient, expected reply code)
MIX = [
    ("127.0.0.1", "shop@example.com", "alice@tech2u.com.au", 250),
    ("127.0.0.1", "alice@tech2u.com.au", "bob@tech2u.com.au", 250),
    ("127.0.0.3", "<>", "postmaster@tech2u.com.au", 250),
    ("127.0.0.3", "shop@example.com", "olduser@tech2u.com.au", 550),
    ("127.0.0.3", "alice@tech2u.com.au", "bob@tech2u.com.au", 551),
    ("127.0.0.2", "shop@example.com", "alice@tech2u.com.au", 554),
]


class Client:
    """One SMTP session over asyncio streams, sending messages in turn."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter):
        self.reader, self.writer = reader, writer

    async def reply(self) -> int:
        while True:
            line = await self.reader.readline()
            if not line:
                raise ConnectionError("closed")
            if line[3:4] != b"-":
                return int(line[:3])

    async def command(self, text: str) -> int:
        self.writer.write(text.encode() + b"\r\n")
        return await self.reply()

    async def send(self, sender: str, recipient: str, tag: str) -> int:
        sender = "" if sender == "<>" else sender
        if (code := await self.command(f"MAIL FROM:<{sender}>")) != 250:
            return code
        if (code := await self.command(f"RCPT TO:<{recipient}>")) != 250:
            await self.command("RSET")
            return code
        if (code := await self.command("DATA")) != 354:
            return code
        body = "\r\n".join(f"line {n} of the soak message" for n in range(30))
        self.writer.write(
            f"X-Soak-Id: {tag}\r\nSubject: soak\r\n\r\n{body}\r\n.\r\n".encode()
        )
        return await self.reply()


async def session(
    port: int,
    plan: list[tuple[int, tuple[str, str, str, int]]],
    results: Counter[str],
    acknowledged: set[str],
    deadline: float,
) -> None:
    source = plan[0][1][0]
    reader, writer = await asyncio.open_connection(
        "127.0.0.1", port, local_addr=(source, 0)
    )
    client = Client(reader, writer)
    try:
        if await client.reply() != 220:
            results["554 greeting"] += 1
            await client.command("QUIT")
            return
        await client.command("EHLO soak.example")
        for number, (_, sender, recipient, expected) in plan:
            if time.monotonic() > deadline:
                break
            code = await client.send(sender, recipient, f"m{number}")
            results[
                f"{code} {'as expected' if code == expected else 'UNEXPECTED'}"
            ] += 1
            if code == 250:
                acknowledged.add(f"m{number}")
        await client.command("QUIT")
    finally:
        writer.close()


def rss_kib(pid: int) -> int:
    status = Path(f"/proc/{pid}/status").read_text()
    return int(re.search(r"VmRSS:\s+(\d+)", status).group(1))  # type: ignore[union-attr]


async def drive(port: int, pid: int, args: argparse.Namespace) -> dict[str, object]:
    rng = random.Random(7)
    deadline = time.monotonic() + args.seconds
    plans: list[list[tuple[int, tuple[str, str, str, int]]]] = []
    number = 0
    while number < args.messages:
        kind = rng.choice(MIX)
        batch = min(rng.randint(1, 20), args.messages - number)
        plans.append([(number + i, kind) for i in range(batch)])
        number += batch
    results: Counter[str] = Counter()
    acknowledged: set[str] = set()
    peak = 0
    limit = asyncio.Semaphore(args.sessions)

    async def limited(plan: list[tuple[int, tuple[str, str, str, int]]]) -> None:
        async with limit:
            try:
                await session(port, plan, results, acknowledged, deadline)
            except (ConnectionError, OSError) as err:
                results[f"connection error {type(err).__name__}"] += 1

    started = time.monotonic()
    load = asyncio.ensure_future(asyncio.gather(*(limited(p) for p in plans)))
    while not load.done():
        peak = max(peak, rss_kib(pid))
        await asyncio.sleep(0.2)
    await load
    return {
        "results": results,
        "acknowledged": acknowledged,
        "peak_kib": peak,
        "seconds": time.monotonic() - started,
    }


def stored_tags(store: Path) -> Counter[str]:
    tags: Counter[str] = Counter()
    for path in store.glob("*/*/new/*"):
        match = re.search(rb"X-Soak-Id: (m\d+)", path.read_bytes())
        if match:
            tags[match.group(1).decode()] += 1
    return tags


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--messages", type=int, default=20_000)
    parser.add_argument("--sessions", type=int, default=200)
    parser.add_argument(
        "--seconds", type=float, default=120, help="time bound of each round"
    )
    parser.add_argument("--rounds", type=int, default=2)
    args = parser.parse_args()

    folder = Path(tempfile.mkdtemp(prefix="tech2u-soak-"))
    shutil.copytree(ROOT / "policies", folder / "policies")
    mailboxes = folder / "policies" / "mailboxes"
    mailboxes.write_text(mailboxes.read_text().replace("10M", "unlimited"))
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    server = subprocess.Popen(
        [*SERVE, "--listen", f"127.0.0.1:{port}", "--log-level", "warning"],
        cwd=folder,
    )
    try:
        for _ in range(100):
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
                break
            except OSError:
                time.sleep(0.1)
        baseline = rss_kib(server.pid)
        rounds = []
        for _ in range(args.rounds):
            rounds.append(asyncio.run(drive(port, server.pid, args)))
            time.sleep(2)
            rounds[-1]["after_kib"] = rss_kib(server.pid)
    finally:
        server.send_signal(signal.SIGTERM)
        server.wait(timeout=60)
    return report(folder, args, baseline, rounds)


def report(
    folder: Path,
    args: argparse.Namespace,
    baseline: int,
    rounds: list[dict[str, object]],
) -> int:
    """Each round sends the same messages again (same tags), so the store
    is checked against the acknowledgements of every round together."""
    store = folder / "mailstore"
    acknowledged: Counter[str] = Counter()
    results: Counter[str] = Counter()
    for figures in rounds:
        acknowledged.update(figures["acknowledged"])  # type: ignore[arg-type]
        results.update(figures["results"])  # type: ignore[arg-type]
    tags = stored_tags(store)
    peaks = [int(f["peak_kib"]) for f in rounds]  # type: ignore[call-overload]
    afters = [int(f["after_kib"]) for f in rounds]  # type: ignore[call-overload]
    seconds = sum(float(f["seconds"]) for f in rounds)  # type: ignore[arg-type]
    sent = sum(results.values())
    checks = {
        "every reply was the expected one": not any(
            "UNEXPECTED" in k or "error" in k for k in results
        ),
        "every 250 is stored exactly once": all(
            tags[t] == n for t, n in acknowledged.items()
        ),
        "nothing stored without a 250": set(tags) <= set(acknowledged),
        "nothing left in tmp/ or .incoming/": not [
            *store.glob("*/*/tmp/*"),
            *(store / ".incoming").glob("*"),
        ],
        # Python keeps freed memory for reuse rather than giving it back, so
        # the test is that a second round of the same load needs no more.
        "memory settles: no growth from one round to the next (2 MiB slack)": len(
            afters
        )
        < 2
        or afters[-1] <= afters[0] + 2048,
    }
    print(
        f"soak: {sent} transactions in {seconds:.1f} s ({sent / seconds:.0f}/s), "
        f"{args.sessions} concurrent sessions at most"
    )
    for key, count in sorted(results.items()):
        print(f"  {count:>7}  {key}")
    print(
        f"  stored {sum(tags.values())} messages, "
        f"{sum(acknowledged.values())} acknowledged"
    )
    print(f"  server RSS: {baseline / 1024:.1f} MiB before the load")
    for number, (peak, after) in enumerate(zip(peaks, afters, strict=True), 1):
        print(
            f"    round {number}: peak {peak / 1024:.1f} MiB, "
            f"{after / 1024:.1f} MiB after it"
        )
    for name, held in checks.items():
        print(f"  [{'ok' if held else 'FAILED'}] {name}")
    shutil.rmtree(folder)
    return 0 if all(checks.values()) else 1


if __name__ == "__main__":
    sys.exit(main())
