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
import os
import re
import time
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import IO, TypeVar

T = TypeVar("T")

_SIZE_IN_NAME = re.compile(r",S=(\d+)")


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

    def folder(self, key: str) -> Path:
        """The Maildir of mailbox ``key``; the policy loader admits only
        path-safe names, and this refuses anything else all the same."""
        local, _, domain = key.rpartition("@")
        for part in (local, domain):
            if not part or part.startswith(".") or "/" in part or "\0" in part:
                raise ValueError(f"unsafe mailbox name {key!r}")
        return self.root / domain / local

    def usage(self, key: str) -> int:
        folder = self.folder(key)
        return sum(_sizes(folder / "new")) + sum(_sizes(folder / "cur"))

    def free_space(self) -> int:
        stats = os.statvfs(self.root)
        return stats.f_bavail * stats.f_frsize

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
        decide: Callable[[int], T],
        accepted: Callable[[T], bool],
    ) -> T:
        """Deliver ``spool`` to every mailbox or to none.

        ``decide(size)`` runs while the mailboxes are locked, so a quota
        check and the delivery it allows are one step even with several
        server processes on one store.  Blocking: run it in a thread.
        """
        try:
            self._flush_spool(spool)
            folders = [self._maildir(self.folder(key)) for key in sorted(mailboxes)]
            with _locked(folders):
                decision = decide(spool.size)
                if accepted(decision):
                    self._commit(spool, folders, message_id)
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
