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
from .policy import Policies
from .server import Server

T = TypeVar("T")


def make_config(mail_store: Path, **settings: object) -> Config:
    """Defaults for a test: loopback, a free port, the given mail store."""
    return replace(Config(), listen=("127.0.0.1", 0), mail_store=mail_store, **settings)  # type: ignore[arg-type]


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


@contextlib.contextmanager
def threaded(
    config: Config, policies: Policies | None = None
) -> Iterator[ThreadedServer]:
    """The server, running in a background thread until the block ends."""
    running = ThreadedServer(config, policies)
    running.start()
    try:
        yield running
    finally:
        running.stop()
