"""The ``tech2u-mta`` command.  The only module that reads argv, sets up
logging and exits."""

from __future__ import annotations

import argparse
import asyncio
import signal
import sys
from dataclasses import replace
from pathlib import Path

from . import logs
from .config import Config, load, parse_listen
from .errors import ConfigError
from .server import Server

EXIT_CONFIG = 2


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    if args.command in (None, "serve"):
        return _serve(args)
    raise AssertionError(args.command)


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
        "--log-level",
        default="info",
        choices=["debug", "info", "warning", "error"],
        help="debug adds the per-session trace (default: info)",
    )
    parser.set_defaults(config=None, listen=None, log_level="info")
    return parser


def _serve(args: argparse.Namespace) -> int:
    logs.setup(args.log_level)
    try:
        config = _config(args)
        server = Server(config)
    except ConfigError as err:
        print(f"tech2u-mta: {err}", file=sys.stderr)
        return EXIT_CONFIG
    try:
        asyncio.run(_run(server))
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
    return config


async def _run(server: Server) -> None:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(signum, stop.set)
    await server.start()
    await stop.wait()
    await server.stop()
