"""The server's settings: built-in defaults, overridden by an INI file.

The file has one section, ``[server]``; ``config.example.ini`` explains every
key.  Unknown keys and bad values stop start-up with the file, line and key.
"""

from __future__ import annotations

import configparser
import ipaddress
import math
import re
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from pathlib import Path

from .errors import ConfigError

SECTION = "server"

_SIZE = re.compile(r"(?i)^\s*(\d+)\s*([kmgt]?)i?b?\s*$")
_UNITS = {"": 1, "k": 1 << 10, "m": 1 << 20, "g": 1 << 30, "t": 1 << 40}


@dataclass(frozen=True)
class Config:
    """Settings of one server; every field has its built-in default."""

    listen: tuple[str, int] = ("127.0.0.1", 2525)
    hostname: str = "localhost"
    policies: Path | None = None  # None: ./policies, else the packaged copy
    mail_store: Path = Path("mailstore")
    explainer_url: str = "http://www.tech2u.com.au/member/emailerrorcodes.html"
    min_free_space: int = 50 << 20
    max_message_size: int = 10 << 20
    default_quota: int = 100 << 20
    max_recipients: int = 100
    idle_timeout: float = 300.0
    max_session_time: float = 1800.0
    max_connections: int = 2000
    max_connections_per_client: int = 500
    max_errors: int = 10
    pregreet_wait: float = 0.0
    shutdown_grace: float = 30.0
    auth_require_tls: bool = False
    watch_policies: bool = True
    workers: int = 1
    xclient_hosts: tuple[str, ...] = ("127.0.0.0/8", "::1")
    proxy_protocol: bool = False
    proxy_hosts: tuple[str, ...] = ("127.0.0.0/8", "::1")
    tls_cert: Path | None = None
    tls_key: Path | None = None
    source: str = field(default="(built-in defaults)", compare=False)


def parse_size(text: str) -> int:
    """``10M`` -> 10485760.  Suffixes K, M, G, T are powers of 1024."""
    match = _SIZE.match(text)
    if not match:
        raise ValueError("expected a size in octets such as 1048576, 512K or 10M")
    number, unit = match.groups()
    return int(number) * _UNITS[unit.lower()]


def parse_listen(text: str) -> tuple[str, int]:
    """``127.0.0.1:2525``, ``[::1]:2525`` or ``:2525`` (every address)."""
    host, sep, port = text.strip().rpartition(":")
    if not sep or not port.isdigit() or not 0 < int(port) < 65536:
        raise ValueError("expected HOST:PORT such as 127.0.0.1:2525 or [::]:2525")
    host = host.removeprefix("[").removesuffix("]")
    if host:
        try:
            ipaddress.ip_address(host)
        except ValueError:
            if host != "localhost":
                raise ValueError(
                    f"{host!r} is not an IP address; expected HOST:PORT"
                ) from None
    return host, int(port)


def _parse_bool(text: str) -> bool:
    value = text.strip().lower()
    if value in {"yes", "true", "on", "1"}:
        return True
    if value in {"no", "false", "off", "0"}:
        return False
    raise ValueError("expected yes or no")


def _parse_seconds(text: str) -> float:
    value = float(text)
    if not 0 < value < math.inf:
        raise ValueError("expected a number of seconds above zero")
    return value


def _positive(size: int) -> int:
    if size < 1:
        raise ValueError("expected a size above zero")
    return size


def _parse_wait(text: str) -> float:
    value = float(text)
    if not 0 <= value < math.inf:
        raise ValueError("expected a number of seconds, 0 or more")
    return value


def _parse_count(text: str) -> int:
    value = int(text)
    if value < 1:
        raise ValueError("expected a whole number of at least 1")
    return value


def _parse_networks(text: str) -> tuple[str, ...]:
    """Addresses or CIDR networks, separated by spaces or commas; ``none``
    for an empty list."""
    items = tuple(text.replace(",", " ").split())
    if items == ("none",):
        return ()
    for item in items:
        try:
            ipaddress.ip_network(item, strict=True)
        except ValueError:
            raise ValueError(
                f"{item!r} is not an address or a CIDR network (host bits clear)"
            ) from None
    return items


def _parse_workers(text: str) -> int:
    from .workers import count

    return count(text.strip())


def _parse_hostname(text: str) -> str:
    name = text.strip()
    if not re.fullmatch(r"[A-Za-z0-9]([A-Za-z0-9.-]*[A-Za-z0-9])?", name):
        raise ValueError("expected a host name such as mx.example.net")
    return name


def _parse_url(text: str) -> str:
    url = text.strip()
    if not re.fullmatch(r"https?://\S+", url):
        raise ValueError("expected an http:// or https:// URL")
    return url


_PARSERS: dict[str, Callable[[str], object]] = {
    "listen": parse_listen,
    "hostname": _parse_hostname,
    "policies": Path,
    "mail_store": Path,
    "explainer_url": _parse_url,
    "min_free_space": parse_size,
    "max_message_size": lambda text: _positive(parse_size(text)),
    "default_quota": parse_size,
    "max_recipients": _parse_count,
    "idle_timeout": _parse_seconds,
    "max_session_time": _parse_seconds,
    "max_connections": _parse_count,
    "max_connections_per_client": _parse_count,
    "max_errors": _parse_count,
    "pregreet_wait": _parse_wait,
    "shutdown_grace": _parse_wait,
    "auth_require_tls": _parse_bool,
    "watch_policies": _parse_bool,
    "workers": _parse_workers,
    "xclient_hosts": _parse_networks,
    "proxy_protocol": _parse_bool,
    "proxy_hosts": _parse_networks,
    "tls_cert": Path,
    "tls_key": Path,
}


def load(path: Path) -> Config:
    """Read ``path`` over the defaults; relative paths in it are taken from
    the file's own folder, so a config works from any working directory."""
    text = _read(path)
    parser = configparser.ConfigParser(interpolation=None, strict=True)
    try:
        parser.read_string(text, source=str(path))
    except configparser.Error as err:
        raise ConfigError(
            str(path), getattr(err, "lineno", None), _short(err)
        ) from None
    _check_sections(path, parser, text)
    values = {}
    for key, raw in parser.items(SECTION) if parser.has_section(SECTION) else []:
        value = _parse_value(path, text, key, raw)
        if isinstance(value, Path) and not value.is_absolute():
            value = path.parent / value
        values[key] = value
    return replace(Config(source=str(path)), **values)  # type: ignore[arg-type]


def _read(path: Path) -> str:
    try:
        data = path.read_bytes()
    except OSError as err:
        raise ConfigError(str(path), None, f"cannot read: {err}") from None
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as err:
        line = data[: err.start].count(b"\n") + 1
        raise ConfigError(str(path), line, "not UTF-8 text") from None


def _short(err: configparser.Error) -> str:
    if isinstance(err, configparser.MissingSectionHeaderError):
        return f"expected the section header [{SECTION}] before any key"
    if isinstance(err, configparser.DuplicateOptionError):
        return f"{err.option}: set twice"
    if isinstance(err, configparser.DuplicateSectionError):
        return f"[{err.section}] appears twice"
    return str(err).splitlines()[0]


def _check_sections(path: Path, parser: configparser.ConfigParser, text: str) -> None:
    for section in parser.sections():
        if section != SECTION:
            line = _line_of(text, rf"\[\s*{re.escape(section)}\s*\]")
            raise ConfigError(
                str(path), line, f"unknown section [{section}]; expected [{SECTION}]"
            )


def _parse_value(path: Path, text: str, key: str, raw: str) -> object:
    line = _line_of(text, rf"{re.escape(key)}\s*[=:]")
    parse = _PARSERS.get(key)
    if parse is None:
        known = ", ".join(sorted(_PARSERS))
        raise ConfigError(str(path), line, f"unknown key; expected one of {known}", key)
    try:
        return parse(raw)
    except ValueError as err:
        raise ConfigError(str(path), line, f"{raw!r}: {err}", key) from None


def _line_of(text: str, pattern: str) -> int | None:
    """The line on which ``pattern`` starts a line (configparser keeps none)."""
    regex = re.compile(rf"^\s*{pattern}", re.IGNORECASE)
    for number, line in enumerate(text.splitlines(), start=1):
        if regex.match(line):
            return number
    return None
