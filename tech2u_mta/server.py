"""A running server: the listening socket, its sessions and their shutdown."""

from __future__ import annotations

import asyncio
import gc
import logging
import socket
import ssl
from pathlib import Path

from .config import Config
from .errors import ConfigError
from .policy import Policies, default_folder, load_folder
from .protocol import Context, PolicySMTP
from .store import MailStore

log = logging.getLogger("tech2u_mta.server")

# Connections the kernel queues before the server accepts them.
BACKLOG = 1024


def load_policies(config: Config) -> Policies:
    folder = config.policies or default_folder()
    return load_folder(folder, config.default_quota)


def tls_context(config: Config) -> ssl.SSLContext | None:
    """STARTTLS is offered when both a certificate and its key are set."""
    if config.tls_cert is None and config.tls_key is None:
        return None
    if config.tls_cert is None or config.tls_key is None:
        raise ConfigError(config.source, None, "set both tls_cert and tls_key", "tls")
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    try:
        context.load_cert_chain(config.tls_cert, config.tls_key)
    except (OSError, ssl.SSLError) as err:
        raise ConfigError(str(config.tls_cert), None, f"cannot load: {err}") from None
    return context


class Server:
    """One listening socket and the sessions it accepts."""

    def __init__(self, config: Config, policies: Policies | None = None) -> None:
        self.config = config
        self.context = Context(
            config=config,
            policies=policies if policies is not None else load_policies(config),
            store=_open_store(config.mail_store, config.hostname),
            tls=tls_context(config),
        )
        self._server: asyncio.Server | None = None

    @property
    def policies(self) -> Policies:
        return self.context.policies

    @policies.setter
    def policies(self, policies: Policies) -> None:
        """Swap the whole set at once; sessions already open keep theirs."""
        self.context.policies = policies
        _settle()

    @property
    def address(self) -> tuple[str, int]:
        """The address actually bound (the port may have been 0)."""
        assert self._server is not None
        host, port = self._server.sockets[0].getsockname()[:2]
        return host, port

    def clean_store(self) -> None:
        """Remove what a crash left half-written.  Run it before any
        process of this store starts accepting mail, never while one is."""
        removed = self.context.store.clean()
        if removed:
            log.warning("removed %d unfinished files from the mail store", removed)

    async def start(self, *, clean: bool = True, reuse_port: bool = False) -> None:
        _settle()
        """Listen.  ``reuse_port`` lets several worker processes share the
        port (SO_REUSEPORT: the kernel spreads connections among them)."""
        if clean:
            self.clean_store()
        loop = asyncio.get_running_loop()
        sock = _listen_socket(*self.config.listen, reuse_port=reuse_port)
        # create_server listens again on the socket it is given, with its
        # own backlog of 100 unless told: at a few hundred connecting
        # clients the kernel would drop SYNs and each would wait a second.
        self._server = await loop.create_server(
            lambda: PolicySMTP(self.context), sock=sock, backlog=BACKLOG
        )
        host, port = self.address
        log.info(
            "listening on %s port %d; policies from %s: %s; mail store %s",
            host,
            port,
            self.policies.source,
            self.policies.counts(),
            self.context.store.root,
        )

    async def stop(self) -> None:
        """Stop accepting; say 421 4.3.2 to every session, then close."""
        if self._server is None:
            return
        self._server.close()
        sessions = list(self.context.sessions)
        await asyncio.gather(*(s.shutdown() for s in sessions))
        await self._server.wait_closed()
        self._server = None
        self.context.delivery.shutdown(wait=True)
        log.info("stopped; sessions closed: %d", len(sessions))


def _settle() -> None:
    """Leave the policy tables, which live as long as the server, out of the
    cyclic collector's full scans: with a million entries each scan would
    pause every session for a fraction of a second."""
    gc.freeze()


def _open_store(root: Path, hostname: str) -> MailStore:
    try:
        return MailStore(root, hostname)
    except OSError as err:
        raise ConfigError(str(root), None, f"cannot use as mail store: {err}") from None


def _listen_socket(host: str, port: int, reuse_port: bool = False) -> socket.socket:
    """A listening socket; ``::`` takes IPv4 clients too (dual stack), which
    then appear as IPv4-mapped IPv6 addresses."""
    try:
        if host in ("", "::"):
            return socket.create_server(
                ("::", port),
                family=socket.AF_INET6,
                dualstack_ipv6=True,
                backlog=BACKLOG,
                reuse_port=reuse_port,
            )
        family = socket.AF_INET6 if ":" in host else socket.AF_INET
        return socket.create_server(
            (host, port), family=family, backlog=BACKLOG, reuse_port=reuse_port
        )
    except OSError as err:
        raise ConfigError(
            "listen", None, f"cannot listen on {host}:{port}: {err}"
        ) from None
