"""The servers under test: how each is started, when it is ready, and how
it is stopped.  Each runs as a process of its own, so that ``procs`` can
read its CPU time and memory; its log goes to a file that is checked for
errors and emptied after every measurement."""

from __future__ import annotations

import dataclasses
import os
import random
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import procs

BENCH = Path(__file__).resolve().parent
REPO = BENCH.parent
SMTP_SINK = "/usr/sbin/smtp-sink"


@dataclass
class Spec:
    key: str
    label: str
    argv: list[str]
    tech2u: bool = False
    cpus: frozenset[int] | None = procs.SERVER_CPUS  # None: wherever it likes
    status: Path | None = None  # the reload status file of bench/serve.py


def free_port() -> int:
    """A free port below the ephemeral range (32768 and up on Linux), so
    that no client socket of the benchmark can be holding it when a slow
    server finally binds it."""
    while True:
        port = random.randrange(20000, 32000)
        with socket.socket() as sock:
            try:
                sock.bind(("127.0.0.1", port))
            except OSError:
                continue
        return port


# Every client of the benchmark comes from 127.0.0.1, so the per-client
# limit must allow the 1,000 idle sessions; set only where the version of
# tech2u-mta under test has the key (an unknown key stops it at start).
LIMITS = {"max_connections_per_client": "2000"}


def write_config(path: Path, policies: Path, mail_store: Path) -> Path:
    from tech2u_mta.config import Config

    known = {f.name for f in dataclasses.fields(Config)}
    limits = "".join(f"{k} = {v}\n" for k, v in LIMITS.items() if k in known)
    path.write_text(
        "[server]\n"
        "hostname = bench.local\n"
        f"policies = {policies}\n"
        f"mail_store = {mail_store}\n" + limits
    )
    return path


def bare(port: int, loop: str = "asyncio") -> Spec:
    argv = [sys.executable, str(BENCH / "serve.py"), "--kind", "bare"]
    argv += ["--listen", f"127.0.0.1:{port}", "--loop", loop]
    label = "aiosmtpd, accept all" + (" (uvloop)" if loop == "uvloop" else "")
    return Spec("bare" if loop == "asyncio" else "bare-uvloop", label, argv)


def tech2u_discard(
    port: int,
    config: Path,
    status: Path,
    loop: str = "asyncio",
    what_if: tuple[str, ...] = (),
) -> Spec:
    argv = [sys.executable, str(BENCH / "serve.py"), "--kind", "tech2u"]
    argv += ["--listen", f"127.0.0.1:{port}", "--config", str(config)]
    argv += ["--store", "discard", "--status", str(status), "--loop", loop]
    for name in what_if:
        argv += ["--what-if", name]
    key = "tech2u" if loop == "asyncio" else "tech2u-uvloop"
    label = "tech2u-mta, policy path" + (" (uvloop)" if loop == "uvloop" else "")
    if what_if:
        key += "-" + "+".join(what_if)
        label += ", without " + " and ".join(
            name.removeprefix("no-").replace("inline-", "threaded ")
            for name in what_if
        )
    return Spec(key, label, argv, tech2u=True, status=status)


def tech2u_cli(port: int, config: Path, key: str, label: str,
               workers: int | None = None) -> Spec:
    argv = [sys.executable, "-m", "tech2u_mta", "serve", "--config", str(config)]
    argv += ["--listen", f"127.0.0.1:{port}"]
    if workers is None:
        return Spec(key, label, argv, tech2u=True)
    argv += ["--workers", str(workers)]
    return Spec(key, label, argv, tech2u=True, cpus=None)


def smtp_sink(port: int) -> Spec:
    argv = [SMTP_SINK]
    if os.geteuid() == 0:
        argv += ["-u", "nobody"]  # smtp-sink refuses to run as root without it
    argv += ["-m", "1200", f"127.0.0.1:{port}", "1024"]
    return Spec("sink", "Postfix smtp-sink (C)", argv)


def has_workers_option() -> bool:
    """Whether ``tech2u-mta serve --help`` offers ``--workers``."""
    result = subprocess.run(
        [sys.executable, "-m", "tech2u_mta", "serve", "--help"],
        capture_output=True,
        text=True,
        cwd=REPO,
        timeout=60,
    )
    return "--workers" in result.stdout


class Running:
    """One started server."""

    def __init__(self, spec: Spec, port: int, log: Path) -> None:
        self.spec, self.port, self.log = spec, port, log
        self.started_at = time.monotonic()
        with log.open("ab") as out:
            self.proc = subprocess.Popen(
                spec.argv,
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=out,
                cwd=REPO,
            )
        self.ready_after: float | None = None

    @property
    def pid(self) -> int:
        return self.proc.pid

    def wait_ready(self, timeout: float) -> None:
        """Until the server greets on its port; then put it on its CPUs."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"{self.spec.label} exited:\n{self.log_tail()}")
            if _greets(self.port):
                self.ready_after = time.monotonic() - self.started_at
                if self.spec.cpus is not None:
                    procs.pin(self.pid, self.spec.cpus)
                return
            time.sleep(0.2)
        raise RuntimeError(f"{self.spec.label} not ready in {timeout:.0f} s")

    def log_tail(self, lines: int = 15) -> str:
        text = self.log.read_text(errors="replace").splitlines()
        return "\n".join(text[-lines:])

    def take_log_errors(self) -> list[str]:
        """ERROR lines and tracebacks logged since the last call; the log is
        emptied, so a long run does not fill the disk."""
        with self.log.open("rb") as file:
            text = file.read()
        os.truncate(self.log, 0)
        found = [
            line.decode(errors="replace")
            for line in text.splitlines()
            if b" ERROR " in line or line.startswith(b"Traceback")
        ]
        return found

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


def _greets(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=2) as sock:
            sock.settimeout(2)
            ok = sock.recv(512).startswith(b"220")
            sock.sendall(b"QUIT\r\n")
            return ok
    except OSError:
        return False
