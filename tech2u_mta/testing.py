"""Run a server inside a test: in a background thread, or in the test's own
event loop.  Each server gets the port the system picks and its own mail
store, so tests never share one by accident."""

from __future__ import annotations

import asyncio
import contextlib
import threading
from collections.abc import AsyncIterator, Coroutine, Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any, TypeVar

from .config import Config
from .policy import (
    Countdown,
    Policies,
    Status,
    extend_netset,
    parse_mailbox_line,
)
from .server import Server

T = TypeVar("T")


def make_config(mail_store: Path, **settings: Any) -> Config:
    """Defaults for a test: loopback, a free port, the given mail store;
    ``settings`` override any field."""
    values: dict[str, Any] = {"listen": ("127.0.0.1", 0), "mail_store": mail_store}
    return replace(Config(), **{**values, **settings})


@contextlib.asynccontextmanager
async def serving(
    config: Config, policies: Policies | None = None
) -> AsyncIterator[Server]:
    """The server, started in the running event loop and stopped after."""
    server = Server(config, policies)
    await server.start()
    try:
        yield server
    finally:
        await server.stop()


class ThreadedServer:
    """A server in a thread of its own, for synchronous tests."""

    def __init__(self, config: Config, policies: Policies | None = None) -> None:
        self.server = Server(config, policies)
        self.loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self.loop.run_forever, daemon=True)

    @property
    def address(self) -> tuple[str, int]:
        return self.server.address

    def call(self, coroutine: Coroutine[Any, Any, T]) -> T:
        """Run ``coroutine`` in the server's loop and wait for its result."""
        future = asyncio.run_coroutine_threadsafe(coroutine, self.loop)
        return future.result(timeout=30)

    def start(self) -> None:
        self._thread.start()
        self.call(self.server.start())

    def stop(self) -> None:
        try:
            self.call(self.server.stop())
        finally:
            self.loop.call_soon_threadsafe(self.loop.stop)
            self._thread.join(timeout=30)
            self.loop.close()


class TestServer(ThreadedServer):
    """A threaded server with the knobs an integration test needs.

    Each change swaps in a new policy set: sessions already open keep the
    policies they started with, as they would on a reload.
    """

    __test__ = False  # not a test class, whatever pytest thinks of the name

    @property
    def host(self) -> str:
        return self.address[0]

    @property
    def port(self) -> int:
        return self.address[1]

    @property
    def mail_store(self) -> Path:
        return self.server.context.store.root

    def set_mailbox(self, address: str, status: str, quota: str | None = None) -> None:
        """Add or change a mailbox: ``set_mailbox("carol@tech2u.com.au",
        "active", "1M")``; the status is one of the mailboxes file's."""
        line = f"{address} {status} {quota or ''}"
        key, policy = parse_mailbox_line(line, self.server.policies, self.default_quota)
        mailboxes = {**self.server.policies.mailboxes, key: policy}
        self.server.policies = replace(self.server.policies, mailboxes=mailboxes)

    def disable(self, address: str) -> None:
        """The mailbox refuses mail from now on: 550 5.2.1."""
        self.set_mailbox(address, "disabled")

    def fill(self, address: str) -> None:
        """The mailbox has no room left: 552 5.2.2."""
        self.set_mailbox(address, "full")

    def activate(self, address: str, quota: str | None = None) -> None:
        self.set_mailbox(address, "active", quota)

    def busy(self, address: str, attempts: int | None = None) -> None:
        """450 4.2.1 for the mailbox: for its next ``attempts`` RCPTs and
        then its own status again, or from now on when ``attempts`` is
        None.  "Busy twice, then accept" checks a client's retries."""
        if attempts is None:
            self.set_mailbox(address, "busy")
            return
        key, _ = parse_mailbox_line(
            f"{address} busy", self.server.policies, self.default_quota
        )
        policies = self.server.policies
        scenarios = {**policies.scenarios, key: Countdown(Status.BUSY, attempts)}
        self.server.policies = replace(policies, scenarios=scenarios)

    def block(self, network: str) -> None:
        """Refuse clients from ``network`` with 554 from their next session."""
        policies = self.server.policies
        blocklist = extend_netset(policies.blocklist, network)
        self.server.policies = replace(policies, blocklist=blocklist)

    def store_full(self, full: bool = True) -> None:
        """Make MAIL get 452 4.3.1, as if the mail store were short of space."""
        context = self.server.context
        config = self.server.config
        threshold = (1 << 62) if full else config.min_free_space
        context.limits = replace(context.limits, min_free_space=threshold)

    def messages(self, address: str) -> list[bytes]:
        """The messages delivered to ``address``, oldest first, as stored."""
        local, _, domain = address.lower().rpartition("@")
        folder = self.mail_store / domain / local / "new"
        if not folder.is_dir():
            return []
        paths = sorted(folder.iterdir(), key=lambda p: p.stat().st_mtime_ns)
        return [path.read_bytes() for path in paths]

    @property
    def default_quota(self) -> int:
        return self.server.config.default_quota


@contextlib.contextmanager
def threaded(config: Config, policies: Policies | None = None) -> Iterator[TestServer]:
    """The server, running in a background thread until the block ends."""
    running = TestServer(config, policies)
    running.start()
    try:
        yield running
    finally:
        running.stop()
