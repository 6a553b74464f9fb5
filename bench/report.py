"""Turn the measurements of all rounds into tables: the median of each
figure, and for every server but the bare one its ratio to the bare
aiosmtpd run of the same load, generator and round (median of the
per-round ratios)."""

from __future__ import annotations

import statistics
from collections.abc import Callable, Iterable
from dataclasses import dataclass

from loads import Cell

MB = 1 << 20


@dataclass
class Record:
    generator: str  # "client" or "smtp-source"
    load: str  # Load.label
    server: str  # Spec.key
    round: int
    cell: Cell


@dataclass
class Table:
    title: str
    headers: list[str]
    rows: list[list[str]]
    notes: list[str]
    left: int = 2  # columns of text, aligned left; the rest are figures


def median(values: Iterable[float | None]) -> float | None:
    present = [v for v in values if v is not None]
    return statistics.median(present) if present else None


# What each column shows: a name, how to read it from a cell, how to print it.
FIGURES: list[tuple[str, Callable[[Cell], float | None], str]] = [
    ("msg/s", lambda c: c.rate, "{:.0f}"),
    ("p50 ms", lambda c: None if c.p50 is None else c.p50 * 1000, "{:.1f}"),
    ("p99 ms", lambda c: None if c.p99 is None else c.p99 * 1000, "{:.1f}"),
    ("CPU s/1k msg", lambda c: c.cpu_per_1k, "{:.3f}"),
    ("peak RSS MB", lambda c: c.peak_rss / MB, "{:.1f}"),
]


def figure(records: list[Record], index: int) -> float | None:
    read = FIGURES[index][1]
    return median(read(r.cell) for r in records)


def ratio(records: list[Record], base: list[Record], index: int) -> float | None:
    """Median over rounds of (this server's figure / bare's, same round)."""
    read = FIGURES[index][1]
    by_round = {r.round: read(r.cell) for r in base}
    ratios = []
    for record in records:
        mine, theirs = read(record.cell), by_round.get(record.round)
        if mine is not None and theirs:
            ratios.append(mine / theirs)
    return median(ratios)


def fmt(value: float | None, spec: str) -> str:
    return "–" if value is None else spec.format(value)


def load_table(title: str, generator: str, records: list[Record],
               labels: dict[str, str], base_key: str = "bare") -> Table:
    """One row per (load, server), each figure with its ratio to bare."""
    rows: list[list[str]] = []
    notes: list[str] = []
    loads = list(dict.fromkeys(r.load for r in records if r.generator == generator))
    for load in loads:
        mine = [r for r in records if r.generator == generator and r.load == load]
        base = [r for r in mine if r.server == base_key]
        for server in dict.fromkeys(r.server for r in mine):
            these = [r for r in mine if r.server == server]
            row = [load, labels.get(server, server)]
            for index, (_, _, spec) in enumerate(FIGURES):
                text = fmt(figure(these, index), spec)
                if server != base_key and base and text != "–":
                    text += f" ({fmt(ratio(these, base, index), '{:.2f}')}×)"
                row.append(text)
            rows.append(row)
            notes += _problems(these, labels.get(server, server), load)
    headers = ["load", "server", *(name for name, _, _ in FIGURES)]
    return Table(title, headers, rows, notes)


def _problems(records: list[Record], server: str, load: str) -> list[str]:
    notes = []
    errors = sum(r.cell.errors for r in records)
    if errors:
        codes = {}
        for r in records:
            for code, n in r.cell.codes.items():
                codes[code] = codes.get(code, 0) + n
        notes.append(f"{server}, {load}: {errors} failed transactions; codes {codes}")
    logged = [line for r in records for line in r.cell.log_errors]
    if logged:
        first = logged[0][:200]
        notes.append(f"{server}, {load}: {len(logged)} errors logged: {first}")
    return notes


def text(table: Table) -> str:
    """A plain table for the terminal."""
    widths = [
        max(len(row[i]) for row in [table.headers, *table.rows])
        for i in range(len(table.headers))
    ]
    lines = [table.title, ""]
    for n, row in enumerate([table.headers, *table.rows]):
        cells = [
            cell.ljust(w) if i < table.left else cell.rjust(w)
            for i, (cell, w) in enumerate(zip(row, widths, strict=True))
        ]
        lines.append("  ".join(cells).rstrip())
        if n == 0:
            lines.append("  ".join("-" * w for w in widths))
    lines += [f"  note: {note}" for note in table.notes]
    return "\n".join(lines)


def markdown(table: Table) -> str:
    lines = [f"### {table.title}", ""]
    lines.append("| " + " | ".join(table.headers) + " |")
    lines.append(
        "|"
        + "|".join(
            "---" if i < table.left else "---:" for i in range(len(table.headers))
        )
        + "|"
    )
    lines += ["| " + " | ".join(row) + " |" for row in table.rows]
    if table.notes:
        lines.append("")
        lines += [f"- {note}" for note in table.notes]
    return "\n".join(lines)
