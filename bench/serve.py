"""Start one server under test in this process, the way the benchmark
needs it: ``bench.py`` runs this file as a subprocess, so that the CPU time
and memory it reads from ``/proc/<pid>`` are the server's alone.

``--kind bare``
    aiosmtpd 1.4.6 with a handler that accepts everything: the floor any
    server built on it stands on.
``--kind tech2u``
    tech2u-mta's own ``Server``, set up as ``tech2u-mta serve`` sets it up
    (same config file, same INFO decision log), with three things the CLI
    does not offer: a mail store that discards (``--store discard``), the
    uvloop event loop (``--loop uvloop``), and the start and end of each
    policy reload (SIGHUP) written to ``--status``.

The reload is the server's own (``tech2u_mta.reload.Reloader``, what
``serve`` runs on SIGHUP) where the package has one.  ``--what-if`` takes
one cost out of tech2u-mta (the decision log, the delivery thread) so that
the benchmark can show what that cost is.  SIGTERM or SIGINT stops either
kind; ``--profile FILE`` writes a cProfile of the whole run on the way out.
"""

from __future__ import annotations

import argparse
import asyncio
import cProfile
import json
import logging
import signal
import time
from dataclasses import replace
from pathlib import Path
from typing import Any

HOSTNAME = "bench.local"


def main() -> None:
    args = _parser().parse_args()
    if args.loop == "uvloop":
        import uvloop

        asyncio.set_event_loop_policy(uvloop.EventLoopPolicy())
    run = _run_bare if args.kind == "bare" else _run_tech2u
    if args.profile is None:
        asyncio.run(run(args))
        return
    profile = cProfile.Profile()
    profile.enable()
    try:
        asyncio.run(run(args))
    finally:
        profile.disable()
        profile.dump_stats(args.profile)


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--kind", choices=["bare", "tech2u"], required=True)
    parser.add_argument("--listen", required=True, help="HOST:PORT")
    parser.add_argument("--config", type=Path, help="tech2u-mta INI file")
    parser.add_argument("--store", choices=["maildir", "discard"], default="maildir")
    parser.add_argument("--loop", choices=["asyncio", "uvloop"], default="asyncio")
    parser.add_argument("--status", type=Path, help="JSON file for reload times")
    parser.add_argument("--profile", type=Path, help="write a cProfile here")
    parser.add_argument(
        "--what-if",
        action="append",
        default=[],
        choices=sorted(WHAT_IF),
        help="take one cost out of tech2u-mta, to measure what it costs",
    )
    return parser


def _listen(text: str) -> tuple[str, int]:
    host, _, port = text.rpartition(":")
    return host, int(port)


async def _until_stopped(reload: Any = None) -> None:
    """Wait for SIGTERM or SIGINT; run ``reload`` on each SIGHUP."""
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(signum, stop.set)
    if reload is not None:
        loop.add_signal_handler(signal.SIGHUP, lambda: loop.create_task(reload()))
    await stop.wait()


# -- bare aiosmtpd ------------------------------------------------------------


class AcceptAll:
    """Takes every sender, every recipient and every message, and keeps
    nothing: aiosmtpd's own MAIL and RCPT handling plus one DATA hook."""

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        return "250 OK"


async def _run_bare(args: argparse.Namespace) -> None:
    from aiosmtpd.smtp import SMTP

    loop = asyncio.get_running_loop()
    handler = AcceptAll()
    host, port = _listen(args.listen)

    # A fixed hostname, as tech2u-mta has one: without it aiosmtpd asks
    # socket.getfqdn() once per connection, which is not the floor.
    server = await loop.create_server(
        lambda: SMTP(handler, hostname=HOSTNAME, loop=loop),
        host,
        port,
        backlog=1024,
    )
    await _until_stopped()
    server.close()
    await server.wait_closed()


# -- tech2u-mta -----------------------------------------------------------------


async def _run_tech2u(args: argparse.Namespace) -> None:
    from tech2u_mta import logs
    from tech2u_mta.config import Config, load
    from tech2u_mta.server import Server, load_policies

    logs.setup("info")
    for name in args.what_if:
        WHAT_IF[name]()
    config = load(args.config) if args.config else Config()
    config = replace(config, listen=_listen(args.listen))
    server = Server(config)
    if args.store == "discard":
        server.context.store = _discard_store(config)

    async def reload() -> None:
        started = time.monotonic()
        _write_status(args.status, reload_started=started)
        reloader = _reloader(server, config)
        if reloader is not None:
            await reloader.reload("SIGHUP")
            how = "tech2u_mta.reload.Reloader, as serve does on SIGHUP"
        else:
            # What a reload has to do at least: read the folder away from
            # the event loop, then swap the whole set at once.
            server.policies = await asyncio.to_thread(load_policies, config)
            how = "load_policies() in a thread, then swap"
        _write_status(
            args.status,
            reload_started=started,
            reload_finished=time.monotonic(),
            how=how,
        )

    await server.start()
    await _until_stopped(reload)
    await server.stop()


def _reloader(server: Any, config: Any) -> Any:
    """The server's own reload, as ``tech2u-mta serve`` runs it on SIGHUP,
    where this version of tech2u_mta has one."""
    try:
        from tech2u_mta.policy import default_folder
        from tech2u_mta.reload import Reloader
    except ImportError:
        return None
    return Reloader(server, config.policies or default_folder())


def _no_decision_log() -> None:
    logging.getLogger("tech2u_mta.decision").setLevel(logging.WARNING)


def _inline_delivery() -> None:
    """Run what protocol.py hands to its delivery threads in the event loop
    instead; only sound with the discarding store, which never blocks.  The
    server's thread pool is made from ``protocol.ThreadPoolExecutor`` when
    the server starts, so an executor that runs each call at once stands in
    for it."""
    from concurrent.futures import Executor, Future

    import tech2u_mta.protocol as protocol

    class Inline(Executor):
        def __init__(self, *args: Any, **kwargs: Any) -> None:
            pass

        def submit(self, fn: Any, /, *args: Any, **kwargs: Any) -> Future[Any]:
            future: Future[Any] = Future()
            try:
                future.set_result(fn(*args, **kwargs))
            except BaseException as error:  # handed to the awaiting session
                future.set_exception(error)
            return future

    protocol.ThreadPoolExecutor = Inline  # type: ignore[misc,assignment]


# Costs that can be taken out of tech2u-mta for a measurement, to show what
# each one costs; never used for the main figures.
WHAT_IF = {
    "no-decision-log": _no_decision_log,
    "inline-delivery": _inline_delivery,
}


def _write_status(path: Path | None, **values: object) -> None:
    if path is not None:
        temporary = path.with_suffix(".tmp")
        temporary.write_text(json.dumps(values))
        temporary.replace(path)


def _discard_store(config: Any) -> Any:
    """tech2u-mta's mail store with the disk taken out: MAIL still asks for
    free space, RCPT and the final dot still ask each mailbox's usage and
    run the quota decision under ``deliver``, in a thread, as usual; only
    the spool file and the Maildir writes are gone."""
    from tech2u_mta.store import MailStore, Spool

    class _Sink:
        def write(self, data: bytes) -> int:
            return len(data)

        def close(self) -> None:
            pass

    class DiscardStore(MailStore):
        def open_spool(self, header: bytes) -> Spool:
            # The path never exists, so discarding the spool unlinks nothing.
            spool = Spool(self.incoming / "discarded", _Sink())  # type: ignore[arg-type]
            spool.write(header)
            return spool

        def deliver(  # type: ignore[override]
            self, spool: Spool, mailboxes: Any, message_id: str,
            decide: Any, accepted: Any,
        ) -> Any:
            try:
                return decide(spool.size, self.usage)
            finally:
                spool.discard()

    return DiscardStore(config.mail_store, config.hostname)


if __name__ == "__main__":
    main()
