"""The mail store: one Maildir per mailbox, written so nothing is half there.

Layout: ``<root>/<domain>/<local part>/{tmp,new,cur}``.  A message is first
spooled to ``<root>/.incoming/`` while DATA arrives.  At the final dot the
spool is flushed to disk, hard-linked into each recipient's ``tmp/``, and
only then renamed into ``new/``; the folders are flushed too, so a message
acknowledged with 250 survives a crash, and one that was not acknowledged is
either complete in ``new/`` or nowhere a mail reader looks.

A mailbox's usage is what its ``new/`` and ``cur/`` hold.  File names carry
their size (``,S=<octets>``, the Maildir++ convention), so usage is one
directory listing, not a stat per message.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import math
import os
import re
import time
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import IO, TypeVar

T = TypeVar("T")
# The modification times of a Maildir's new/ and cur/.
Stamp = tuple[int, int]

_SIZE_IN_NAME = re.compile(r",S=(\d+)")
# How old a reading of the free space may be.
FREE_SPACE_AGE = 1.0


class Spool:
    """The message being received; kept on the mail store's filesystem."""

    def __init__(self, path: Path, file: IO[bytes]) -> None:
        self.path = path
        self.file = file
        self.size = 0
        self.error: OSError | None = None

    def write(self, data: bytes) -> None:
        """Append ``data``; after a failed write the rest is dropped, so
        that the session can read on to the final dot and then say why."""
        if self.error is not None:
            return
        try:
            self.file.write(data)
            self.size += len(data)
        except OSError as err:
            self.error = err

    def discard(self) -> None:
        with contextlib.suppress(OSError):
            self.file.close()
        with contextlib.suppress(FileNotFoundError):
            self.path.unlink()


class MailStore:
    def __init__(self, root: Path, hostname: str = "localhost") -> None:
        self.root = root
        self.hostname = hostname
        self.incoming = root / ".incoming"
        self.incoming.mkdir(parents=True, exist_ok=True)
        self._free, self._free_at = 0, -math.inf
        self._usage: dict[str, tuple[int, Stamp]] = {}
        self._folders: dict[str, Path] = {}  # key -> Maildir, made once

    def folder(self, key: str) -> Path:
        """The Maildir of mailbox ``key``; the policy loader admits only
        path-safe names, and this refuses anything else all the same."""
        folder = self._folders.get(key)
        if folder is None:
            local, _, domain = key.rpartition("@")
            for part in (local, domain):
                if not part or part.startswith(".") or "/" in part or "\0" in part:
                    raise ValueError(f"unsafe mailbox name {key!r}")
            folder = self._folders[key] = self.root / domain / local
        return folder

    def usage(self, key: str) -> int:
        """Octets in the mailbox's ``new/`` and ``cur/``.

        Each delivery records the mailbox's new usage in its ``.usage``
        file, with the folders' modification times as they were then.
        While the times still match, that record is the answer: one small
        read, however many messages the mailbox holds.  Once they differ (a
        mail reader moved or deleted something), the folders are listed.
        """
        folder = self.folder(key)
        if not os.path.isdir(folder):
            return 0  # nothing was ever delivered here
        stamp = _stamp(folder)
        remembered = self._usage.get(key)
        if remembered is not None and stamp is not None and remembered[1] == stamp:
            # What this process last read; good enough for RCPT, where the
            # answer only advises (delivery itself reads afresh, locked).
            return remembered[0]
        used = self._exact_usage(folder, stamp)
        if stamp is not None:
            self._usage[key] = (used, stamp)
        return used

    def _exact_usage(self, folder: Path, stamp: Stamp | None) -> int:
        recorded = _read_usage(folder)
        if recorded is not None and recorded[1] == stamp:
            return recorded[0]
        return sum(_sizes(folder / "new")) + sum(_sizes(folder / "cur"))

    def free_space(self) -> int:
        """Free octets on the store's filesystem, read at most once per
        FREE_SPACE_AGE seconds: MAIL asks for it every time."""
        now = time.monotonic()
        if now - self._free_at > FREE_SPACE_AGE:
            stats = os.statvfs(self.root)
            self._free, self._free_at = stats.f_bavail * stats.f_frsize, now
        return self._free

    def open_spool(self, header: bytes) -> Spool:
        name = f"{time.time_ns()}.{os.getpid()}.{os.urandom(4).hex()}"
        path = self.incoming / name
        spool = Spool(path, path.open("xb"))
        spool.write(header)
        return spool

    def deliver(
        self,
        spool: Spool,
        mailboxes: Sequence[str],
        message_id: str,
        decide: Callable[[int, Callable[[str], int]], T],
        accepted: Callable[[T], bool],
    ) -> T:
        """Deliver ``spool`` to every mailbox or to none.

        ``decide(size, usage)`` runs while the mailboxes are locked, with
        their usage read afresh, so a quota check and the delivery it allows
        are one step even with several server processes on one store.
        Blocking: run it in a thread.
        """
        try:
            self._flush_spool(spool)
            keys = sorted(mailboxes)
            folders = [self._maildir(self.folder(key)) for key in keys]
            with _locked(folders):
                used = [self._exact_usage(f, _stamp(f)) for f in folders]
                decision = decide(
                    spool.size, dict(zip(keys, used, strict=True)).__getitem__
                )
                if accepted(decision):
                    self._commit(spool, folders, message_id)
                    for folder, octets in zip(folders, used, strict=True):
                        _write_usage(folder, octets + spool.size)
            return decision
        finally:
            spool.discard()

    def clean(self) -> int:
        """Remove spools and ``tmp/`` files left by a crash; returns how many.

        Nothing there was ever acknowledged: a message is acknowledged only
        once it is in ``new/``.
        """
        removed = 0
        for path in [*self.incoming.iterdir(), *self.root.glob("*/*/tmp/*")]:
            with contextlib.suppress(FileNotFoundError):
                path.unlink()
                removed += 1
        return removed

    def _flush_spool(self, spool: Spool) -> None:
        if spool.error is not None:
            raise spool.error
        spool.file.flush()
        os.fsync(spool.file.fileno())
        spool.file.close()

    def _maildir(self, folder: Path) -> Path:
        for sub in ("tmp", "new", "cur"):
            (folder / sub).mkdir(parents=True, exist_ok=True)
        return folder

    def _commit(self, spool: Spool, folders: list[Path], message_id: str) -> None:
        name = f"{int(time.time())}.{message_id}.{self.hostname},S={spool.size}"
        staged: list[Path] = []
        done: list[Path] = []
        try:
            for folder in folders:
                staged.append(folder / "tmp" / name)
                os.link(spool.path, staged[-1])
            for folder, tmp in zip(folders, staged, strict=True):
                _fsync_dir(folder / "tmp")
                done.append(folder / "new" / name)
                os.rename(tmp, done[-1])
                _fsync_dir(folder / "new")
        except OSError:
            for path in staged + done:
                with contextlib.suppress(FileNotFoundError):
                    path.unlink()
            raise


def _sizes(folder: Path) -> Iterator[int]:
    try:
        entries = list(os.scandir(folder))
    except FileNotFoundError:
        return
    for entry in entries:
        match = _SIZE_IN_NAME.search(entry.name)
        if match:
            yield int(match.group(1))
        else:
            with contextlib.suppress(FileNotFoundError):
                yield entry.stat().st_size


def _stamp(folder: Path) -> Stamp | None:
    """The modification times of ``new/`` and ``cur/``."""
    try:
        return (
            os.stat(folder / "new").st_mtime_ns,
            os.stat(folder / "cur").st_mtime_ns,
        )
    except FileNotFoundError:
        return None


def _read_usage(folder: Path) -> tuple[int, Stamp] | None:
    """The ``.usage`` record: ``OCTETS NEW-MTIME CUR-MTIME``."""
    try:
        octets, new, cur = (folder / ".usage").read_text().split()
        return int(octets), (int(new), int(cur))
    except (OSError, ValueError):
        return None


def _write_usage(folder: Path, octets: int) -> None:
    """Record ``octets`` with the folders' times, under the delivery lock.
    Written whole by a rename, so a reader never sees half of it; it is
    derived data, so it is not flushed: after a crash the times differ and
    the folders are listed again."""
    stamp = _stamp(folder)
    if stamp is None:
        return
    temporary = folder / ".usage.tmp"
    temporary.write_text(f"{octets} {stamp[0]} {stamp[1]}\n")
    os.replace(temporary, folder / ".usage")


def _fsync_dir(folder: Path) -> None:
    fd = os.open(folder, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


@contextlib.contextmanager
def _locked(folders: list[Path]) -> Iterator[None]:
    """Hold an exclusive lock on each Maildir, taken in sorted order so that
    two deliveries to overlapping mailboxes cannot deadlock."""
    with contextlib.ExitStack() as stack:
        for folder in folders:
            fd = os.open(folder / ".lock", os.O_RDWR | os.O_CREAT, 0o600)
            stack.callback(os.close, fd)
            fcntl.flock(fd, fcntl.LOCK_EX)
        yield


def is_disk_full(err: OSError) -> bool:
    return err.errno in (errno.ENOSPC, errno.EDQUOT)
