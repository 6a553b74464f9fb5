"""The ``tech2u-mta`` command.  The only module that reads argv, sets up
logging and exits."""

from __future__ import annotations

import argparse
import asyncio
import json
import signal
import sys
from dataclasses import replace
from pathlib import Path

from . import dryrun, logs, workers
from .config import Config, load, parse_listen
from .dryrun import Request
from .errors import ConfigError
from .netset import client_address
from .policy import default_folder
from .reload import Reloader
from .server import Server, load_policies

EXIT_CONFIG = 2


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    try:
        if args.command == "check":
            return _check(args)
        return _serve(args)
    except BrokenPipeError:
        # The reader went away (``check ... | head``): nothing left to say.
        sys.stderr.close()
        return 1


def _octets(text: str) -> int:
    if not text.isdigit():
        raise argparse.ArgumentTypeError(f"{text!r} is not a number of octets")
    return int(text)


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="tech2u-mta",
        description="An SMTP server that answers as the TECH 2U mail policy says.",
    )
    commands = parser.add_subparsers(dest="command")
    serve = commands.add_parser("serve", help="run the server in the foreground")
    serve.add_argument("--config", type=Path, help="INI file (see config.example.ini)")
    serve.add_argument("--listen", help="HOST:PORT, overriding the config")
    serve.add_argument(
        "--workers",
        help="processes sharing the port: a number, or auto for one per core "
        "(default: the config's workers, 1)",
    )
    serve.add_argument(
        "--log-level",
        default="info",
        choices=["debug", "info", "warning", "error"],
        help="debug adds the per-session trace (default: info)",
    )
    check = commands.add_parser(
        "check",
        help="print the replies a session would get, without any network",
        description="Runs the policy checks stage by stage and prints each "
        "reply.  Exit status 0 when every recipient would be accepted, 1 "
        "otherwise, 2 for a bad config or policy file.",
    )
    check.add_argument("--config", type=Path, help="INI file (see config.example.ini)")
    check.add_argument("--client-ip", required=True, help="the client's address")
    check.add_argument("--helo", default="dry-run", help="the EHLO name")
    check.add_argument("--auth-user", help="act as if AUTH succeeded for USER")
    check.add_argument(
        "--from", dest="sender", required=True, help="MAIL FROM, '' for <>"
    )
    check.add_argument("--to", nargs="+", required=True, help="RCPT TO addresses")
    check.add_argument("--size", type=_octets, help="message size in octets")
    check.add_argument("--json", action="store_true", help="print JSON")
    parser.set_defaults(config=None, listen=None, log_level="info", workers=None)
    return parser


def _check(args: argparse.Namespace) -> int:
    request = Request(
        client_ip=args.client_ip,
        sender=args.sender,
        recipients=tuple(args.to),
        helo=args.helo,
        login=args.auth_user,
        size=args.size,
    )
    try:
        config = _config(args)
        policies = load_policies(config)
        client_address(request.client_ip)
    except ConfigError as err:
        print(f"tech2u-mta: {err}", file=sys.stderr)
        return EXIT_CONFIG
    except ValueError:
        print(
            f"tech2u-mta: --client-ip: {args.client_ip!r} is not an IP address",
            file=sys.stderr,
        )
        return EXIT_CONFIG
    steps = dryrun.run(config, policies, request)
    _print_steps(steps, args.json)
    return 0 if dryrun.accepted_by_all(steps, request) else 1


def _print_steps(steps: list[dryrun.Step], as_json: bool) -> None:
    if as_json:
        print(json.dumps([s.as_dict() for s in steps], indent=2))
        return
    for step in steps:
        decision = step.decision
        print(f"{step.stage:<8} {step.subject}")
        print(
            f"  check: {decision.check}"
            + (f" ({decision.reason})" if decision.reason else "")
        )
        for line in step.reply.split("\r\n"):
            print(f"  {line}")


def _serve(args: argparse.Namespace) -> int:
    logs.setup(args.log_level)
    try:
        config = _config(args)
        server = Server(config)
    except ConfigError as err:
        print(f"tech2u-mta: {err}", file=sys.stderr)
        return EXIT_CONFIG
    if config.workers == 1:
        return _serve_one(server, clean=True, reuse_port=False)
    if config.listen[1] == 0:
        print("tech2u-mta: --workers needs a fixed port, not 0", file=sys.stderr)
        return EXIT_CONFIG
    server.clean_store()
    return workers.run(
        config.workers,
        lambda index: _serve_one(server, clean=False, reuse_port=True),
    )


def _serve_one(server: Server, clean: bool, reuse_port: bool) -> int:
    try:
        asyncio.run(_run(server, clean, reuse_port))
    except ConfigError as err:
        print(f"tech2u-mta: {err}", file=sys.stderr)
        return EXIT_CONFIG
    return 0


def _config(args: argparse.Namespace) -> Config:
    config = load(args.config) if args.config else Config()
    if args.listen:
        try:
            config = replace(config, listen=parse_listen(args.listen))
        except ValueError as err:
            raise ConfigError("--listen", None, f"{args.listen!r}: {err}") from None
    if getattr(args, "workers", None):
        try:
            config = replace(config, workers=workers.count(args.workers))
        except ValueError as err:
            raise ConfigError("--workers", None, f"{args.workers!r}: {err}") from None
    return config


async def _run(server: Server, clean: bool = True, reuse_port: bool = False) -> None:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(signum, stop.set)
    reloader = Reloader(server, server.config.policies or default_folder())
    tasks: set[asyncio.Task[object]] = set()

    def on_sighup() -> None:
        task = loop.create_task(reloader.reload("SIGHUP"))
        tasks.add(task)
        task.add_done_callback(tasks.discard)

    loop.add_signal_handler(signal.SIGHUP, on_sighup)
    await server.start(clean=clean, reuse_port=reuse_port)
    watcher = (
        loop.create_task(reloader.watch()) if server.config.watch_policies else None
    )
    await stop.wait()
    if watcher is not None:
        watcher.cancel()
    await server.stop()
