"""tech2u-mta's benchmark (issue 5): run with ``bench/run``.

It starts every server under test on loopback, drives each with the same
loads, and prints the medians of several rounds: tech2u-mta with a large
policy set (1,000,000 mailboxes, 100,000 blocklist networks), a bare
aiosmtpd server that accepts everything (the Python floor), and Postfix's
smtp-sink (a C sink, the practical ceiling).  The tables are written as
Markdown and JSON to ``bench/out/``.

Servers run on the first CPU and load generators on the second, so each
has a core of its own; see docs/benchmarks.md for what each row means.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import bigpolicy
import hotspots
import loads
import procs
import report
import servers
from loads import Cell, Load
from report import MB, Record, Table, fmt, median
from servers import REPO, Running, Spec

OUT = REPO / "bench" / "out"

LOADS = [
    Load("conn", 20),
    Load("conn", 200),
    Load("session", 20),
    Load("session", 200),
]
REJECTED = [Load("rejected", 20), Load("rejected", 200)]
SERIAL = Load("session", 1)  # Maildir with one session: does delivery overlap?
RELOAD = Load("session", 20)
PROFILED = [Load("session", 20), Load("conn", 20)]
WHAT_IF = [("no-decision-log",), ("inline-delivery",),
           ("no-decision-log", "inline-delivery")]


@dataclass(frozen=True)
class Plan:
    rounds: int
    seconds: float  # per measurement
    messages: int  # per measurement, at most
    load_rounds: int  # policy loading measurements
    idle_sessions: int
    profile_seconds: float  # 0: no profile


FULL = Plan(rounds=3, seconds=2.0, messages=200_000, load_rounds=3,
            idle_sessions=1000, profile_seconds=8)
QUICK = Plan(rounds=1, seconds=1.0, messages=20_000, load_rounds=1,
             idle_sessions=1000, profile_seconds=0)


def main() -> int:
    args = _parser().parse_args()
    plan = QUICK if args.quick else FULL
    if args.rounds:
        plan = Plan(**{**asdict(plan), "rounds": args.rounds})
    if args.seconds:
        plan = Plan(**{**asdict(plan), "seconds": args.seconds})
    if args.no_profile:
        plan = Plan(**{**asdict(plan), "profile_seconds": 0})
    if procs.CLIENT_CPUS is not None:
        os.sched_setaffinity(0, procs.CLIENT_CPUS)

    args.out = args.out.resolve()
    args.out.mkdir(parents=True, exist_ok=True)
    scratch = Path(tempfile.mkdtemp(prefix="tech2u-bench-", dir=_fast_tmp()))
    bench = Bench(plan, args.out, scratch)
    try:
        bench.run()
    finally:
        bench.stop()
        shutil.rmtree(scratch, ignore_errors=True)
        shutil.rmtree(args.out / "mailstore", ignore_errors=True)
    bench.write()
    return 0


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="bench/run", description=__doc__.split("\n\n")[0]
    )
    parser.add_argument("--quick", action="store_true",
                        help="one short round (about 3 minutes)")
    parser.add_argument("--rounds", type=int, help="rounds of measurements")
    parser.add_argument("--seconds", type=float,
                        help="length of each measurement (default 2, quick 1)")
    parser.add_argument("--no-profile", action="store_true",
                        help="skip the py-spy profiles and what-if runs")
    parser.add_argument("--out", type=Path, default=OUT,
                        help="where results.md and results.json go")
    return parser


def _fast_tmp() -> str | None:
    """Logs and the discarding store's folder go to memory when possible."""
    return "/dev/shm" if os.path.isdir("/dev/shm") else None


def say(text: str) -> None:
    print(text, file=sys.stderr, flush=True)


class Bench:
    def __init__(self, plan: Plan, out: Path, scratch: Path) -> None:
        self.plan, self.out, self.scratch = plan, out, scratch
        self.started = time.monotonic()
        self.running: dict[str, Running] = {}
        self.records: list[Record] = []
        self.labels: dict[str, str] = {}
        self.facts: dict[str, object] = {}

    # -- the run ----------------------------------------------------------------

    def run(self) -> None:
        self.facts["machine"] = machine()
        policies = bigpolicy.build(
            bigpolicy.demo_folder(REPO), self.out / "policies"
        )
        self.facts["policies"] = str(policies)
        say(f"policies: {policies}")

        self.measure_loading(policies)
        self.start_servers(policies)
        self.measure_idle()
        for number in range(self.plan.rounds):
            self.round(number)
        if self.plan.profile_seconds:
            self.profile()
            self.what_if()
        self.measure_reload()  # last: memory may not come back after it
        self.facts["wall_seconds"] = time.monotonic() - self.started

    def measure_loading(self, policies: Path) -> None:
        say("loading the policy set in a fresh process ...")
        runs = loads.load_policies(policies, self.plan.load_rounds)
        self.facts["loading"] = runs
        say(f"  {median(r['seconds'] for r in runs):.2f} s, "
            f"peak {median(r['peak'] for r in runs) / MB:.0f} MB")

    def start_servers(self, policies: Path) -> None:
        mailstore = self.out / "mailstore"
        shutil.rmtree(mailstore, ignore_errors=True)
        discard = servers.write_config(
            self.scratch / "discard.ini", policies, self.scratch / "discarded"
        )
        disk = servers.write_config(self.scratch / "disk.ini", policies, mailstore)
        tmpfs = servers.write_config(
            self.scratch / "tmpfs.ini", policies, self.scratch / "tmpfs-store"
        )
        port = servers.free_port
        specs = [
            servers.bare(port()),
            servers.tech2u_discard(port(), discard, self.scratch / "reload.json"),
            servers.tech2u_cli(port(), disk, "maildir",
                               "tech2u-mta serve, Maildir on disk"),
        ]
        if os.access(servers.SMTP_SINK, os.X_OK):
            specs.append(servers.smtp_sink(port()))
        else:
            self.facts["no_sink"] = True
        if _has_uvloop():
            specs.append(servers.bare(port(), "uvloop"))
            specs.append(servers.tech2u_discard(
                port(), discard, self.scratch / "reload-uv.json", "uvloop"
            ))
        self.facts["workers"] = servers.has_workers_option()
        if self.facts["workers"]:
            specs.append(servers.tech2u_cli(
                port(), tmpfs, "workers",
                "tech2u-mta serve --workers 2, Maildir on tmpfs", workers=2,
            ))

        say("starting the servers ...")
        for spec in specs:
            self.labels[spec.key] = spec.label
            self.running[spec.key] = Running(spec, _port_of(spec),
                                             self.scratch / f"{spec.key}.log")
        for key, server in self.running.items():
            server.wait_ready(timeout=300)
            say(f"  {key}: ready after {server.ready_after:.1f} s, "
                f"RSS {procs.rss(server.pid) / MB:.0f} MB")
            loads.run_client(server, Load("session", 20), 0.5, 2000)  # warm up
        self.facts["startup"] = {
            k: s.ready_after for k, s in self.running.items()
        }

    def measure_idle(self) -> None:
        say(f"{self.plan.idle_sessions} idle sessions ...")
        idle = {}
        for key in ("bare", "tech2u", "sink"):
            if key in self.running:
                cell = loads.idle_sessions(self.running[key], self.plan.idle_sessions)
                if not cell.count:
                    say(f"  {key}: the idle sessions could not be opened")
                    continue
                grown = cell.extra["during"] - cell.extra["before"]  # type: ignore[operator]
                idle[key] = {"per_session": grown / cell.count, **cell.extra}
                say(f"  {key}: {grown / cell.count / 1024:.1f} KB per session")
        self.facts["idle"] = idle

    def round(self, number: int) -> None:
        say(f"round {number + 1} of {self.plan.rounds}")
        by_client = [k for k in self.running]
        by_source = [k for k in self.running if k != "maildir"]
        for load in LOADS:
            for key in _rotate(by_client, number):
                self.cell("client", load, key, number)
            for key in _rotate(by_source, number):
                self.cell("smtp-source", load, key, number)
        for load in REJECTED:
            for key in _rotate(["bare", "tech2u"], number):
                self.cell("client", load, key, number)
        for key in ("bare", "maildir"):
            self.cell("client", SERIAL, key, number)

    def cell(self, generator: str, load: Load, key: str, number: int,
             table: str | None = None) -> None:
        server = self.running[key]
        if generator == "smtp-source" and not _has_source():
            return
        plan = self.plan
        if generator == "client":
            cell = loads.run_client(server, load, plan.seconds, plan.messages)
        else:
            cell = loads.run_source(server, load, plan.seconds, plan.messages)
        self.records.append(Record(table or generator, load.label, key, number, cell))
        p99 = "" if cell.p99 is None else f", p99 {cell.p99 * 1000:.1f} ms"
        problems = f", {cell.errors} errors" if cell.errors else ""
        say(f"  {generator:11} {load.label:38} {key:14} "
            f"{cell.rate:7.0f} msg/s{p99}{problems}")
        time.sleep(0.3)  # let the last sessions close

    def measure_reload(self) -> None:
        server = self.running["tech2u"]
        loading = median(r["seconds"] for r in self.facts["loading"])  # type: ignore[attr-defined]
        limit = max(60.0, 6 * (loading or 10) + 10)
        say("policy reload (SIGHUP) under load ...")
        try:
            cell = loads.reload_under_load(server, RELOAD, limit)
        except RuntimeError as err:
            self.facts["reload"] = {"error": str(err)}
            say(f"  failed: {err}")
            return
        self.facts["reload"] = {
            "count": cell.count,
            "rate": cell.rate,
            "p50": cell.p50,
            "p99": cell.p99,
            "errors": cell.errors,
            "peak_rss": cell.peak_rss,
            "log_errors": cell.log_errors[:5],
            **cell.extra,
        }
        say(f"  reload took {cell.extra['reload_seconds']:.1f} s; p99 during "
            f"{fmt(cell.p99 and cell.p99 * 1000, '{:.1f}')} ms, longest gap "
            f"{fmt(cell.extra['gap'], '{:.3f}')} s")  # type: ignore[arg-type]

    def what_if(self) -> None:
        """tech2u-mta with one cost taken out at a time, against bare and
        the full tech2u-mta, with smtp-source: what each cost is worth."""
        if not _has_source():
            return
        config = self.scratch / "discard.ini"
        extra = [
            servers.tech2u_discard(servers.free_port(), config,
                                   self.scratch / "w.json", what_if=names)
            for names in WHAT_IF
        ]
        say("what-if servers (a cost taken out of tech2u-mta) ...")
        started = []
        for spec in extra:
            self.labels[spec.key] = spec.label
            started.append(Running(spec, _port_of(spec),
                                   self.scratch / f"{spec.key}.log"))
        try:
            for server in started:
                server.wait_ready(timeout=300)
                self.running[server.spec.key] = server
                loads.run_client(server, Load("session", 20), 0.5, 2000)
            keys = ["bare", "tech2u", *(s.spec.key for s in started)]
            for number in range(self.plan.rounds):
                for load in PROFILED:
                    for key in _rotate(keys, number):
                        self.cell("smtp-source", load, key, number, "what-if")
        finally:
            for server in started:
                server.stop()
                self.running.pop(server.spec.key, None)

    def profile(self) -> None:
        if hotspots.py_spy() is None or not _has_source():
            self.facts["profile"] = {"skipped": "py-spy or smtp-source missing"}
            return
        profiles = {}
        for key in ("tech2u", "bare"):
            for load in PROFILED:
                profiles[f"{key} | {load.label}"] = self.profile_one(key, load)
        self.facts["profile"] = profiles

    def profile_one(self, key: str, load: Load) -> dict[str, object]:
        say(f"profiling {key} under {load.label} ...")
        server = self.running[key]
        seconds = self.plan.profile_seconds
        raw = self.scratch / f"{key}-{load.shape}.spy"
        with _background(loads.run_source, server, load, seconds + 4, 10**6) as cell:
            time.sleep(1.0)
            hotspots.record(server.pid, seconds, raw)
        found = hotspots.read(raw)
        # CPU per message from the rounds, where no profiler slowed it down.
        measured = [r.cell for r in self.records if r.server == key
                    and r.generator == "smtp-source" and r.load == load.label]
        shares = {
            "samples": found.samples,
            "cpu_per_1k": median(c.cpu_per_1k for c in measured),
            "rate": median(c.rate for c in measured),
            "rate_profiled": cell().rate,
            "self": _shares(found.by_self, found.samples, 25),
            "total": _shares(found.by_total, found.samples, 40),
            "areas": _shares(found.by_area, found.samples, 20),
        }
        return shares

    def stop(self) -> None:
        for server in self.running.values():
            server.stop()

    # -- the results --------------------------------------------------------------

    def write(self) -> None:
        tables = [
            self.targets(),
            report.load_table(
                "smtp-source (C load generator): throughput", "smtp-source",
                self.records, self.labels,
            ),
            report.load_table(
                "Our asyncio client: throughput and latency per transaction",
                "client", self.records, self.labels,
            ),
            *self.other_tables(),
        ]
        if any(r.generator == "what-if" for r in self.records):
            tables.insert(3, report.load_table(
                "What-if: tech2u-mta with one cost taken out (smtp-source)",
                "what-if", self.records, self.labels,
            ))
        for table in tables:
            print(report.text(table))
            print()
        md = self.markdown(tables)
        (self.out / "results.md").write_text(md)
        (self.out / "results.json").write_text(json.dumps(
            {"facts": self.facts, "records": [_record_json(r) for r in self.records]},
            indent=1, default=str,
        ))
        print(f"written: {self.out / 'results.md'} and results.json")

    def markdown(self, tables: list[Table]) -> str:
        m = self.facts["machine"]
        assert isinstance(m, dict)
        lines = [
            "## Results",
            "",
            f"Run {m['date']} on {m['cpu']}, {m['cpus']} CPUs, "
            f"{m['memory']}, Linux {m['kernel']}; Python {m['python']}, "
            f"aiosmtpd {m['aiosmtpd']}, uvloop {m['uvloop']}, "
            f"Postfix {m['postfix']}; tech2u-mta at {m['commit']}.",
            f"Command: `{m['command']}`; {self.plan.rounds} round(s) of "
            f"{self.plan.seconds:g} s per measurement, medians; the whole run "
            f"took {self.facts['wall_seconds'] / 60:.1f} minutes.",  # type: ignore[operator]
        ]
        parts = ["\n".join(lines), *(report.markdown(t) for t in tables)]
        return "\n\n".join(parts) + "\n"

    def pair(self, generator: str, load: Load, a: str, b: str) -> float | None:
        """Median over rounds of rate(a) / rate(b)."""
        rates: dict[tuple[str, int], float] = {
            (r.server, r.round): r.cell.rate
            for r in self.records
            if r.generator == generator and r.load == load.label
        }
        ratios = [
            rates[(a, n)] / rates[(b, n)]
            for n in range(self.plan.rounds)
            if rates.get((a, n)) and rates.get((b, n))
        ]
        return median(ratios)

    def targets(self) -> Table:
        rows = [
            self.target_policy_path(),
            self.target_delivery(),
            self.target_loading(),
            self.target_reload(),
            self.target_idle(),
            self.target_workers(),
            self.target_sink(),
            self.target_uvloop(),
        ]
        headers = ["target", "measured", "goal", "verdict"]
        return Table("Targets", headers, rows, [], left=4)

    def _ratios(self, generator: str, a: str, b: str) -> list[tuple[str, float]]:
        found = []
        for load in LOADS:
            value = self.pair(generator, load, a, b)
            if value is not None:
                found.append((f"{load.shape}/{load.concurrency}", value))
        return found

    def target_policy_path(self) -> list[str]:
        source = self._ratios("smtp-source", "tech2u", "bare")
        own = self._ratios("client", "tech2u", "bare")
        worst = min((v for _, v in source or own), default=None)
        measured = _ratio_list("smtp-source", source) + "; " + _ratio_list(
            "client", own
        )
        if worst is None:
            verdict = "not measured"
        elif worst >= 0.9:
            verdict = "met"
        else:
            best = max(v for _, v in source or own)
            verdict = (f"missed: {worst:.2f}× to {best:.2f}×; the worst is "
                       f"{0.9 / worst:.1f}× short of 0.9×")
        return ["policy path vs bare aiosmtpd (msg/s)", measured, "≥ 0.9×", verdict]

    def target_delivery(self) -> list[str]:
        parts = []
        for load in LOADS:
            rates = [r.cell for r in self.records
                     if r.generator == "client" and r.load == load.label
                     and r.server == "maildir"]
            if rates:
                rate = median(c.rate for c in rates)
                p99 = median(c.p99 for c in rates)
                parts.append(f"{load.shape}/{load.concurrency}: {fmt(rate, '{:.0f}')}"
                             f" msg/s, p99 {fmt(p99 and p99 * 1000, '{:.0f}')} ms")
        serial = [r.cell for r in self.records
                  if r.server == "maildir" and r.load == SERIAL.label]
        twenty = [r.cell for r in self.records
                  if r.server == "maildir" and r.load == LOADS[2].label]
        verdict = "reported"
        if serial and twenty:
            rate = median(c.rate for c in twenty) or 0.0
            overlap = rate / (median(c.rate for c in serial) or 1.0)
            # CPU seconds a second: near 1, one core is the limit, not a lock.
            busy = rate * (median(c.cpu_per_1k for c in twenty) or 0.0) / 1000
            parts.append(f"20 sessions ÷ 1 session: {overlap:.1f}×, "
                         f"with the server at {busy:.0%} of a core")
            if overlap >= 2 or busy >= 0.85:
                verdict += ", deliveries overlap"
                verdict += " (the CPU is the limit)" if busy >= 0.85 else ""
            else:
                verdict += ", deliveries look serialised"
        return ["real Maildir delivery with fsync", "; ".join(parts),
                "report; no serialising", verdict]

    def target_loading(self) -> list[str]:
        runs = self.facts["loading"]
        seconds = median(r["seconds"] for r in runs)  # type: ignore[attr-defined]
        peak = median(r["peak"] for r in runs) / MB  # type: ignore[attr-defined,operator]
        misses = []
        if seconds and seconds >= 3:
            misses.append(f"time {seconds / 3:.1f}× over")
        if peak and peak >= 500:
            misses.append(f"memory {peak / 500:.1f}× over")
        verdict = "met" if not misses else "missed: " + ", ".join(misses)
        return ["load 1M mailboxes + 100k CIDRs",
                f"{seconds:.2f} s, peak RSS {peak:.0f} MB", "< 3 s, < 500 MB", verdict]

    def target_reload(self) -> list[str]:
        found = self.facts.get("reload", {})
        assert isinstance(found, dict)
        if "error" in found or not found:
            return ["reload under load", found.get("error", "not run"),
                    "replies go on", "not measured"]
        gap = found.get("gap")
        measured = (
            f"reload {fmt(found.get('reload_seconds'), '{:.1f}')} s "
            f"({found.get('how')}); during it {found['rate']:.0f} msg/s, "
            f"p50 {fmt(_ms(found['p50']), '{:.1f}')} ms, "
            f"p99 {fmt(_ms(found['p99']), '{:.1f}')} ms "
            f"(before: {found['before_rate']:.0f} msg/s, "
            f"p99 {fmt(_ms(found['before_p99']), '{:.1f}')} ms); "
            f"longest silence {fmt(gap, '{:.2f}')} s"
            + (f", {found['gaps'][-1][1]:.1f} s into the reload; " if gap else "; ")
            + f"peak RSS {found['peak_rss'] / MB:.0f} MB"
        )
        ok = found["count"] > 0 and gap is not None and gap < 1.0
        verdict = ("met (no silence of 1 s or more)" if ok
                   else "missed: replies stopped for a second or more")
        return ["reload under load, p99", measured, "replies go on", verdict]

    def target_idle(self) -> list[str]:
        idle = self.facts.get("idle", {})
        assert isinstance(idle, dict)
        parts = [f"{self.labels.get(k, k)}: {v['per_session'] / 1024:.1f} KB"
                 for k, v in idle.items()]
        mine = idle.get("tech2u", {}).get("per_session")
        if mine is None:
            verdict = "not measured"
        elif mine <= 64 * 1024:
            verdict = "met"
        else:
            verdict = f"missed: {mine / 65536:.1f}× the aim"
        return [f"{self.plan.idle_sessions} idle sessions, RSS per session",
                "; ".join(parts), "≤ 64 KB", verdict]

    def target_workers(self) -> list[str]:
        if not self.facts.get("workers"):
            return ["serve --workers N", "skipped: `tech2u-mta serve --help` "
                    "shows no --workers yet", "report", "skipped"]
        bare = self._ratios("smtp-source", "workers", "bare")
        mine = self._ratios("smtp-source", "workers", "tech2u")
        measured = (_ratio_list("÷ bare aiosmtpd", bare) + "; "
                    + _ratio_list("÷ tech2u-mta policy path, one process", mine)
                    + "; workers are not pinned and share both CPUs with the "
                    "load generator; their RSS sums each process's own, so "
                    "pages shared since the fork count twice")
        return ["serve --workers 2 (smtp-source msg/s)", measured, "report",
                "reported"]

    def target_sink(self) -> list[str]:
        source = self._ratios("smtp-source", "tech2u", "sink")
        best = max((v for _, v in source), default=None)
        verdict = "not measured" if best is None else (
            "met" if best >= 0.5 else f"missed: best {best:.2f}×, "
            f"{0.5 / best:.1f}× short of 0.5×")
        return ["tech2u-mta vs smtp-sink (msg/s)", _ratio_list("smtp-source", source),
                "0.5× (long-term aim)", verdict]

    def target_uvloop(self) -> list[str]:
        if "tech2u-uvloop" not in self.running:
            return ["uvloop", "uvloop is not installed", "report", "skipped"]
        mine = self._ratios("smtp-source", "tech2u-uvloop", "tech2u")
        bare = self._ratios("smtp-source", "bare-uvloop", "bare")
        vs_bare = self._ratios("smtp-source", "tech2u-uvloop", "bare")
        measured = (
            "tech2u-mta " + _ratio_list("with ÷ without", mine)
            + "; aiosmtpd " + _ratio_list("with ÷ without", bare)
            + "; tech2u-mta on uvloop " + _ratio_list("÷ bare asyncio", vs_bare)
        )
        gain = median(v for _, v in mine)
        verdict = "reported" if gain is None else f"tech2u-mta {gain:.2f}× with uvloop"
        return ["uvloop (smtp-source msg/s)", measured, "report", verdict]

    def other_tables(self) -> list[Table]:
        tables = []
        loading = self.facts["loading"]
        assert isinstance(loading, list)
        rows = [[str(n + 1), f"{r['seconds']:.2f}", f"{r['base'] / MB:.0f}",
                 f"{r['peak'] / MB:.0f}"] for n, r in enumerate(loading)]
        startup = self.facts.get("startup", {})
        assert isinstance(startup, dict)
        notes = [
            "startup to first greeting (all servers started at once, "
            "sharing the CPUs): "
            + ", ".join(f"{k} {v:.1f} s" for k, v in startup.items() if v)
        ]
        tables.append(Table(
            "Loading the policy set (load_folder, fresh process)",
            ["run", "seconds", "RSS before MB", "peak RSS MB"], rows, notes,
        ))
        profile = self.facts.get("profile")
        if isinstance(profile, dict) and "skipped" not in profile:
            tables += _profile_tables(profile)
        return tables


# -- helpers --------------------------------------------------------------------


def _port_of(spec: Spec) -> int:
    for arg in spec.argv:
        if arg.startswith("127.0.0.1:"):
            return int(arg.rsplit(":", 1)[1])
    raise ValueError(spec.argv)


def _rotate(keys: list[str], n: int) -> list[str]:
    """The servers in a different order each round, so that none always
    runs right after the same neighbour."""
    n %= len(keys)
    return keys[n:] + keys[:n]


def _has_uvloop() -> bool:
    try:
        import uvloop  # noqa: F401
    except ImportError:
        return False
    return True


def _has_source() -> bool:
    return os.access(loads.SMTP_SOURCE, os.X_OK)


def _ms(seconds: float | None) -> float | None:
    return None if seconds is None else seconds * 1000


def _ratio_list(name: str, values: list[tuple[str, float]]) -> str:
    if not values:
        return f"{name}: –"
    return f"{name}: " + ", ".join(f"{load} {v:.2f}×" for load, v in values)


def _shares(counter: dict[str, int], total: int, top: int) -> list[list[object]]:
    ranked = sorted(counter.items(), key=lambda item: -item[1])[:top]
    return [[name, count / total if total else 0.0] for name, count in ranked]


def _profile_tables(profile: dict[str, dict[str, object]]) -> list[Table]:
    tables = []
    for name, found in profile.items():
        cpu = found.get("cpu_per_1k") or 0.0
        per_msg_us = cpu * 1000  # CPU seconds per 1k msgs -> µs per msg
        rows = []
        for area, share in found["areas"]:  # type: ignore[attr-defined]
            rows.append([area, f"{share * 100:.1f}", f"{share * per_msg_us:.0f}"])
        tables.append(Table(
            f"Profile: {name} (py-spy, by part of the code)",
            ["where the innermost frame is", "% of samples", "µs per msg"],
            rows,
            [f"{found['samples']} samples at {fmt(found.get('rate'), '{:.0f}')} "
             f"msg/s; {per_msg_us:.0f} µs of CPU per message"],
        ))
        rows = [[fn, f"{share * 100:.1f}", f"{share * per_msg_us:.0f}"]
                for fn, share in found["self"][:15]]  # type: ignore[index]
        tables.append(Table(
            f"Profile: {name}, functions by own time",
            ["function", "% of samples", "µs per msg"], rows, [],
        ))
    return tables


def _record_json(record: Record) -> dict[str, object]:
    cell = asdict(record.cell)
    cell.pop("extra", None)
    return {"generator": record.generator, "load": record.load,
            "server": record.server, "round": record.round, **cell}


@contextlib.contextmanager
def _background(function, *args):  # type: ignore[no-untyped-def]
    """Run ``function(*args)`` in a thread; yield a getter of its result."""
    import threading

    result: list[Cell] = []
    thread = threading.Thread(target=lambda: result.append(function(*args)))
    thread.start()
    try:
        yield lambda: result[0]
    finally:
        thread.join()


def machine() -> dict[str, object]:
    def run(*argv: str) -> str:
        try:
            return subprocess.run(argv, capture_output=True, text=True,
                                  cwd=REPO, timeout=30).stdout.strip()
        except (OSError, subprocess.SubprocessError):
            return "?"

    cpu = "?"
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    memory = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    commit = run("git", "rev-parse", "--short", "HEAD")
    if run("git", "status", "--porcelain", "--", "tech2u_mta"):
        commit += " (with uncommitted changes)"
    versions = {}
    for name in ("aiosmtpd", "uvloop"):
        try:
            from importlib.metadata import version

            versions[name] = version(name)
        except Exception:
            versions[name] = "not installed"
    return {
        "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
        "cpu": cpu,
        "cpus": os.cpu_count(),
        "memory": f"{memory / (1 << 30):.0f} GB RAM",
        "kernel": platform.release(),
        "python": platform.python_version(),
        "postfix": run("dpkg-query", "-W", "-f=${Version}", "postfix") or "?",
        "commit": commit,
        "command": " ".join(["bench/run", *sys.argv[1:]]),
        **versions,
    }


if __name__ == "__main__":
    sys.exit(main())
