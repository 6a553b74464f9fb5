"""The benchmark's own SMTP load generator, on raw asyncio streams.

It sends one command at a time and waits for its reply (no pipelining), and
times each transaction from the moment MAIL is written to the moment the
reply to the final dot (or the refusal that ends the transaction) is read.
smtp-source, Postfix's C generator, is lighter but gives no per-transaction
latency; ``bench.py`` runs both.

Shapes of load (``--shape``):

``conn``
    one message per connection: greeting, EHLO, MAIL, RCPT, DATA, QUIT;
    here the time runs from the connect, so it includes the greeting and
    EHLO, and stops at the reply to the final dot.
``session``
    one connection per worker, carrying message after message.
``rejected``
    the all-refused mix, one kind per worker in turn: a client on
    127.0.0.2 (listed in the demo blocklist; 554 at connection, then
    QUIT), a TECH 2U sender from 127.0.0.3, outside the TECH 2U networks
    (551 at RCPT), and an outside sender to a mailbox that is unknown or
    disabled (550 at RCPT).  For a 554 the transaction is connect to
    greeting; for the others MAIL to the RCPT reply, then RSET.
``idle``
    open the sessions, say EHLO, and print ``ready``; then wait until
    standard input closes and QUIT them all.

Every shape stops at ``--messages`` transactions or after ``--seconds``,
whichever comes first.  The result is one JSON object on standard output.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import random
import signal
import sys
import time
from dataclasses import dataclass, field

DOMAIN = "tech2u.com.au"
SENDER = f"bench@{DOMAIN}"  # a TECH 2U sender: the network check runs
OUTSIDE_SENDER = "bench@example.org"
ACTIVE = 900_000  # see bigpolicy.py: <n>u@ is active for n below this
REFUSED = 100_000  # <n>d@ is disabled for n in 0, 3, 6, ...

BLOCKED_SOURCE = "127.0.0.2"  # in the demo blocklist
OUTSIDE_SOURCE = "127.0.0.3"  # neither blocked nor a TECH 2U network


def message(size: int = 1024) -> bytes:
    """A message of exactly ``size`` octets, CRLF line ends, final dot
    excluded; no line starts with a dot."""
    head = (
        f"From: <{SENDER}>\r\nTo: <undisclosed-recipients:;>\r\n"
        "Subject: tech2u-mta benchmark\r\nMessage-ID: <bench@bench.local>\r\n\r\n"
    ).encode()
    line = b"x" * 76 + b"\r\n"
    body = bytearray(head)
    while len(body) + len(line) <= size:
        body += line
    body += b"y" * (size - len(body) - 2) + b"\r\n"
    return bytes(body)


class Refused(Exception):
    """A reply other than the one the transaction needed."""

    def __init__(self, code: int) -> None:
        super().__init__(code)
        self.code = code


@dataclass
class Tally:
    """What all workers of one run add up."""

    messages: int
    deadline: float
    started: int = 0
    latencies: list[float] = field(default_factory=list)
    finished_at: list[float] = field(default_factory=list)
    codes: dict[str, int] = field(default_factory=dict)
    errors: int = 0

    def take(self) -> bool:
        """Claim the next transaction, if the run is not over."""
        if self.started >= self.messages or time.monotonic() >= self.deadline:
            return False
        self.started += 1
        return True

    def stop(self) -> None:
        """Start no more transactions; those under way finish."""
        self.deadline = 0.0

    def done(self, began: float, code: int) -> None:
        now = time.monotonic()
        self.latencies.append(now - began)
        self.finished_at.append(now)
        key = str(code)
        self.codes[key] = self.codes.get(key, 0) + 1


class Connection:
    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter):
        self.reader, self.writer = reader, writer

    @classmethod
    async def open(cls, host: str, port: int, source: str | None = None) -> Connection:
        local = (source, 0) if source else None
        reader, writer = await asyncio.open_connection(host, port, local_addr=local)
        return cls(reader, writer)

    async def reply(self) -> int:
        """Read one reply, all its lines; return its code."""
        while True:
            line = await self.reader.readline()
            if len(line) < 4:
                raise ConnectionError("connection closed")
            if line[3:4] != b"-":
                return int(line[:3])

    async def command(self, line: bytes, expect: int | None = None) -> int:
        self.writer.write(line)
        code = await self.reply()
        if expect is not None and code != expect:
            raise Refused(code)
        return code

    async def close(self) -> None:
        with contextlib.suppress(ConnectionError, Refused):
            await self.command(b"QUIT\r\n")
        self.writer.close()
        with contextlib.suppress(ConnectionError):
            await self.writer.wait_closed()


class Load:
    def __init__(self, args: argparse.Namespace) -> None:
        self.args = args
        self.tally = Tally(args.messages, time.monotonic() + args.seconds)
        self.body = message(args.size) + b".\r\n"
        self.rng = random.Random(args.seed)

    async def connect(self, source: str | None = None) -> Connection:
        conn = await Connection.open(self.args.host, self.args.port, source)
        greeting = await conn.reply()
        if greeting != 220:
            raise Refused(greeting)
        await conn.command(b"EHLO bench.local\r\n", 250)
        return conn

    def recipient(self) -> bytes:
        return f"{self.rng.randrange(ACTIVE)}u@{DOMAIN}".encode()

    async def transaction(self, conn: Connection, began: float | None = None) -> None:
        """MAIL, RCPT, DATA, the message; timed from ``began`` if given
        (the connect of a one-message connection), else from MAIL."""
        began = time.monotonic() if began is None else began
        try:
            await conn.command(b"MAIL FROM:<" + SENDER.encode() + b">\r\n", 250)
            await conn.command(b"RCPT TO:<" + self.recipient() + b">\r\n", 250)
            await conn.command(b"DATA\r\n", 354)
            code = await conn.command(self.body)
        except Refused as refused:
            await conn.command(b"RSET\r\n")
            code = refused.code
        if code != 250:
            self.tally.errors += 1
        self.tally.done(began, code)

    # -- shapes ---------------------------------------------------------------

    async def per_connection(self, worker: int) -> None:
        while self.tally.take():
            try:
                began = time.monotonic()
                conn = await self.connect()
                await self.transaction(conn, began)
                await conn.close()
            except (OSError, Refused):
                self.tally.errors += 1

    async def per_session(self, worker: int) -> None:
        while self.tally.take():
            try:
                conn = await self.connect()
                await self.transaction(conn)
                while self.tally.take():
                    await self.transaction(conn)
                await conn.close()
            except (OSError, Refused):
                self.tally.errors += 1

    async def rejected(self, worker: int) -> None:
        kind = worker % 3
        if kind == 0:
            while self.tally.take():
                await self.blocked()
            return
        source = OUTSIDE_SOURCE if kind == 1 else None
        sender = SENDER if kind == 1 else OUTSIDE_SENDER
        while self.tally.take():
            try:
                conn = await self.connect(source)
                await self.refused_rcpt(conn, sender)
                while self.tally.take():
                    await self.refused_rcpt(conn, sender)
                await conn.close()
            except (OSError, Refused):
                self.tally.errors += 1

    async def blocked(self) -> None:
        began = time.monotonic()
        try:
            conn = await Connection.open(
                self.args.host, self.args.port, BLOCKED_SOURCE
            )
            code = await conn.reply()
            self.tally.done(began, code)
            await conn.close()
        except OSError:
            self.tally.errors += 1

    async def refused_rcpt(self, conn: Connection, sender: str) -> None:
        n = self.rng.randrange(REFUSED // 3) * 3  # a disabled <n>d@ mailbox
        to = f"{n}d@{DOMAIN}" if self.rng.random() < 0.5 else f"x{n}@{DOMAIN}"
        began = time.monotonic()
        await conn.command(f"MAIL FROM:<{sender}>\r\n".encode())
        code = await conn.command(f"RCPT TO:<{to}>\r\n".encode())
        self.tally.done(began, code)
        await conn.command(b"RSET\r\n")

    async def idle(self) -> None:
        connections: list[Connection] = []
        for start in range(0, self.args.concurrency, 50):
            batch = range(start, min(start + 50, self.args.concurrency))
            connections += await asyncio.gather(*(self.connect() for _ in batch))
        print("ready", flush=True)
        await asyncio.get_running_loop().run_in_executor(None, sys.stdin.read)
        await asyncio.gather(*(c.close() for c in connections))

    async def run(self) -> dict[str, object]:
        shape = self.args.shape
        if shape == "idle":
            await self.idle()
            return {"sessions": self.args.concurrency}
        worker = {
            "conn": self.per_connection,
            "session": self.per_session,
            "rejected": self.rejected,
        }[shape]
        # SIGINT ends the run early but cleanly, with a summary.
        asyncio.get_running_loop().add_signal_handler(signal.SIGINT, self.tally.stop)
        began = time.monotonic()
        await asyncio.gather(*(worker(n) for n in range(self.args.concurrency)))
        return self.summary(began, time.monotonic())

    def summary(self, began: float, ended: float) -> dict[str, object]:
        tally = self.tally
        result: dict[str, object] = {
            "count": len(tally.latencies),
            "errors": tally.errors,
            "elapsed": ended - began,
            "codes": tally.codes,
            "p50": percentile(tally.latencies, 0.50),
            "p99": percentile(tally.latencies, 0.99),
        }
        if self.args.timeline:
            result["timeline"] = [
                [round(end, 6), round(lat, 6)]
                for end, lat in zip(tally.finished_at, tally.latencies, strict=True)
            ]
        return result


def percentile(values: list[float], share: float) -> float | None:
    """The nearest-rank percentile, in seconds; None for no values."""
    if not values:
        return None
    ordered = sorted(values)
    rank = max(0, min(len(ordered) - 1, round(share * len(ordered)) - 1))
    return ordered[rank]


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument(
        "--shape", choices=["conn", "session", "rejected", "idle"], required=True
    )
    parser.add_argument("--concurrency", type=int, default=20)
    parser.add_argument("--messages", type=int, default=10_000)
    parser.add_argument("--seconds", type=float, default=5.0)
    parser.add_argument("--size", type=int, default=1024)
    parser.add_argument("--seed", type=int, default=5)
    parser.add_argument("--timeline", action="store_true",
                        help="add [finished, latency] of every transaction")
    parser.add_argument("--uvloop", action="store_true",
                        help="run this client on uvloop when it is installed")
    return parser


def main() -> None:
    args = _parser().parse_args()
    if args.uvloop:
        try:
            import uvloop

            asyncio.set_event_loop_policy(uvloop.EventLoopPolicy())
        except ImportError:
            pass
    result = asyncio.run(Load(args).run())
    json.dump(result, sys.stdout)
    sys.stdout.write("\n")


if __name__ == "__main__":
    main()
