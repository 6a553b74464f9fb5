"""One measurement ("cell"): one load generator against one running server
for a bounded count and time, with the server's CPU time and peak memory
read around it."""

from __future__ import annotations

import json
import shutil
import signal
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

import client
import procs
from servers import BENCH, Running

SMTP_SOURCE = "/usr/sbin/smtp-source"


@dataclass(frozen=True)
class Load:
    shape: str  # conn, session or rejected (see client.py)
    concurrency: int

    @property
    def label(self) -> str:
        what = {
            "conn": "1 msg/connection",
            "session": "many msgs/session",
            "rejected": "all rejected (554/551/550)",
        }[self.shape]
        plural = "s" if self.concurrency != 1 else ""
        return f"{what}, {self.concurrency} session{plural}"


@dataclass
class Cell:
    """The figures of one measurement; ``rate`` is transactions a second."""

    count: int
    elapsed: float
    cpu: float  # server CPU seconds during the run
    peak_rss: int  # octets
    p50: float | None = None  # seconds
    p99: float | None = None
    errors: int = 0
    codes: dict[str, int] = field(default_factory=dict)
    log_errors: list[str] = field(default_factory=list)
    extra: dict[str, object] = field(default_factory=dict)

    @property
    def rate(self) -> float:
        return self.count / self.elapsed if self.elapsed > 0 else 0.0

    @property
    def cpu_per_1k(self) -> float | None:
        return self.cpu / self.count * 1000 if self.count else None


def taskset(
    argv: list[str], cpus: frozenset[int] | None = procs.CLIENT_CPUS
) -> list[str]:
    """``argv`` on the given CPUs (the load generators' by default)."""
    if cpus is None or not shutil.which("taskset"):
        return argv
    return ["taskset", "-c", ",".join(map(str, sorted(cpus))), *argv]


def run_client(server: Running, load: Load, seconds: float, messages: int) -> Cell:
    """Our client (client.py), on uvloop when it is installed."""
    argv = [sys.executable, str(BENCH / "client.py"), "--uvloop"]
    argv += ["--port", str(server.port), "--shape", load.shape]
    argv += ["--concurrency", str(load.concurrency), "--messages", str(messages)]
    argv += ["--seconds", str(seconds)]
    procs.reset_peak(server.pid)
    cpu_before = procs.cpu_seconds(server.pid)
    result = subprocess.run(
        taskset(argv), capture_output=True, text=True, timeout=seconds + 60
    )
    cpu = procs.cpu_seconds(server.pid) - cpu_before
    if result.returncode != 0:
        raise RuntimeError(f"client failed: {result.stderr[-2000:]}")
    data = json.loads(result.stdout)
    return Cell(
        count=data["count"],
        elapsed=data["elapsed"],
        cpu=cpu,
        peak_rss=procs.peak_rss(server.pid),
        p50=data["p50"],
        p99=data["p99"],
        errors=data["errors"],
        codes=data["codes"],
        log_errors=server.take_log_errors(),
    )


def run_source(server: Running, load: Load, seconds: float, messages: int) -> Cell:
    """smtp-source, stopped at ``messages`` or after ``seconds``.  Its ``-c``
    counter (one number per completed DATA) is read as it runs, so a run
    cut short by the clock still has an exact count."""
    argv = [SMTP_SOURCE, "-c", "-s", str(load.concurrency), "-l", "1024"]
    if load.shape == "session":
        argv.append("-d")
    # -N puts the message number before the recipient: <n>u@, an active
    # mailbox of the large policy set for n below client.ACTIVE.
    argv += ["-m", str(min(messages, client.ACTIVE - 1)), "-N"]
    argv += ["-f", client.SENDER, "-t", f"u@{client.DOMAIN}", "-M", "bench.local"]
    argv.append(f"127.0.0.1:{server.port}")

    procs.reset_peak(server.pid)
    cpu_before = procs.cpu_seconds(server.pid)
    started = time.monotonic()
    proc = subprocess.Popen(
        taskset(argv), stdout=subprocess.PIPE, stderr=subprocess.PIPE
    )
    counter = _Counter(proc)
    try:
        proc.wait(timeout=seconds)
        ended = time.monotonic()
    except subprocess.TimeoutExpired:
        ended = time.monotonic()
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=30)
    cpu = procs.cpu_seconds(server.pid) - cpu_before
    counter.join()
    stderr = proc.stderr.read().decode(errors="replace") if proc.stderr else ""
    failed = proc.returncode not in (0, -signal.SIGTERM)
    return Cell(
        count=counter.count,
        elapsed=ended - started,
        cpu=cpu,
        peak_rss=procs.peak_rss(server.pid),
        errors=1 if failed else 0,
        log_errors=server.take_log_errors()
        + ([f"smtp-source: {stderr.strip()[-300:]}"] if failed else []),
    )


class _Counter(threading.Thread):
    """Reads smtp-source's running counter ("1\\r2\\r3\\r...")."""

    def __init__(self, proc: subprocess.Popen[bytes]) -> None:
        super().__init__(daemon=True)
        self.proc, self.count = proc, 0
        self.start()

    def run(self) -> None:
        assert self.proc.stdout is not None
        tail = b""
        while chunk := self.proc.stdout.read1(65536):
            parts = (tail + chunk).split(b"\r")
            tail = parts.pop()
            for part in reversed(parts):
                if part.strip().isdigit():
                    self.count = int(part)
                    break
        if tail.strip().isdigit():
            self.count = int(tail)


def idle_sessions(server: Running, sessions: int, hold: float = 1.0) -> Cell:
    """RSS of ``sessions`` open sessions that each said EHLO and wait."""
    argv = [sys.executable, str(BENCH / "client.py"), "--port", str(server.port)]
    argv += ["--shape", "idle", "--concurrency", str(sessions)]
    before = procs.rss(server.pid)
    proc = subprocess.Popen(
        taskset(argv), stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True
    )
    assert proc.stdout is not None and proc.stdin is not None
    line = proc.stdout.readline()
    time.sleep(hold)
    during = procs.rss(server.pid)
    proc.stdin.close()
    proc.wait(timeout=60)
    ok = line.strip() == "ready"
    return Cell(
        count=sessions if ok else 0,
        elapsed=hold,
        cpu=0.0,
        peak_rss=during,
        errors=0 if ok else 1,
        log_errors=server.take_log_errors(),
        extra={"before": before, "during": during},
    )


def load_policies(folder: Path, rounds: int) -> list[dict[str, float]]:
    """Time and peak memory of reading the policy folder, each round in a
    fresh process (the way a starting server reads it)."""
    code = (
        "import json, resource, sys, time\n"
        "from pathlib import Path\n"
        "from tech2u_mta.policy import load_folder\n"
        "base = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss\n"
        "t = time.perf_counter()\n"
        "p = load_folder(Path(sys.argv[1]), 100 << 20)\n"
        "t = time.perf_counter() - t\n"
        "peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss\n"
        "print(json.dumps({'seconds': t, 'peak': peak * 1024,"
        " 'base': base * 1024, 'counts': p.counts()}))\n"
    )
    out = []
    for _ in range(rounds):
        argv = taskset([sys.executable, "-c", code, str(folder)], procs.SERVER_CPUS)
        result = subprocess.run(argv, capture_output=True, text=True, timeout=300)
        if result.returncode != 0:
            raise RuntimeError(f"policy load failed: {result.stderr[-2000:]}")
        out.append(json.loads(result.stdout))
    return out


def reload_under_load(server: Running, load: Load, limit: float) -> Cell:
    """Send the server SIGHUP (a policy reload, see serve.py) a second into
    a run of ``load``, and end the run a second after the reload is done.

    The figures compare the transactions that finished during the reload
    with those before it; ``gap`` is the longest time in the reload during
    which no reply at all came back.
    """
    status = server.spec.status
    assert status is not None
    status.unlink(missing_ok=True)
    argv = [sys.executable, str(BENCH / "client.py"), "--uvloop", "--timeline"]
    argv += ["--port", str(server.port), "--shape", load.shape]
    argv += ["--concurrency", str(load.concurrency), "--messages", "10000000"]
    argv += ["--seconds", str(limit)]
    proc = subprocess.Popen(taskset(argv), stdout=subprocess.PIPE, text=True)
    time.sleep(1.0)
    procs.reset_peak(server.pid)
    cpu_before = procs.cpu_seconds(server.pid)
    server.proc.send_signal(signal.SIGHUP)
    reload = _wait_reload(status, limit - 3)
    time.sleep(1.0)
    cpu = procs.cpu_seconds(server.pid) - cpu_before
    peak = procs.peak_rss(server.pid)
    proc.send_signal(signal.SIGINT)
    out, _ = proc.communicate(timeout=60)
    data = json.loads(out)

    began, ended = reload["reload_started"], reload.get("reload_finished", 0.0)
    timeline = data["timeline"]
    before = [lat for end, lat in timeline if end < began]
    during = [lat for end, lat in timeline if began <= end <= ended]
    finished = [began] + [end for end, _ in timeline if began <= end <= ended]
    gaps = sorted(
        (b - a, a - began)
        for a, b in zip(finished, [*finished[1:], ended], strict=True)
    )
    return Cell(
        count=len(during),
        elapsed=max(ended - began, 1e-9),
        cpu=cpu,
        peak_rss=peak,
        p50=client.percentile(during, 0.50),
        p99=client.percentile(during, 0.99),
        errors=data["errors"],
        codes=data["codes"],
        log_errors=server.take_log_errors(),
        extra={
            "reload_seconds": ended - began if ended else None,
            "how": reload.get("how"),
            "before_p50": client.percentile(before, 0.50),
            "before_p99": client.percentile(before, 0.99),
            "before_rate": len(before) / max(began - timeline[0][0], 1e-9)
            if before
            else 0.0,
            "gap": gaps[-1][0] if ended else None,
            # The longest silences and when they began, from the reload's start.
            "gaps": [[round(g, 3), round(at, 2)] for g, at in gaps[-4:]],
        },
    )


def _wait_reload(status: Path, limit: float) -> dict[str, object]:
    deadline = time.monotonic() + limit
    found: dict[str, object] = {}
    while time.monotonic() < deadline:
        if status.exists():
            found = json.loads(status.read_text())
            if "reload_finished" in found:
                return found
        time.sleep(0.1)
    if not found:
        raise RuntimeError("the server never started a reload on SIGHUP")
    return found
