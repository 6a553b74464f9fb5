"""The mail store on a real filesystem: usage, its cache, all-or-nothing."""

from __future__ import annotations

import os
import time
from pathlib import Path

import pytest

from tech2u_mta.store import MailStore

KEY = "alice@tech2u.com.au"


def deliver(store: MailStore, body: bytes, keys: list[str] = [KEY]) -> None:  # noqa: B006
    spool = store.open_spool(b"")
    spool.write(body)
    store.deliver(spool, keys, "ID", lambda size, usage: True, lambda ok: ok)


def age(folder: Path, seconds: float) -> None:
    """Make ``folder`` look untouched for ``seconds``."""
    then = time.time() - seconds
    os.utime(folder, (then, then))


def test_usage_counts_new_and_cur(tmp_path: Path) -> None:
    store = MailStore(tmp_path)
    assert store.usage(KEY) == 0
    deliver(store, b"x" * 100)
    deliver(store, b"y" * 50)
    maildir = store.folder(KEY)
    moved = next((maildir / "new").iterdir())
    moved.rename(maildir / "cur" / (moved.name + ":2,S"))
    (maildir / "cur" / "written-by-a-reader").write_bytes(b"z" * 7)  # no ,S=
    assert store.usage(KEY) == 157


def test_usage_record_answers_until_a_folder_changes(tmp_path: Path) -> None:
    store = MailStore(tmp_path)
    deliver(store, b"x" * 100)
    deliver(store, b"y" * 20)
    assert (store.folder(KEY) / ".usage").read_text().split()[0] == "120"
    new = store.folder(KEY) / "new"
    # A file slipped in while the folder's time stays put: the record is
    # what answers, which shows it is used ...
    stamp = new.stat().st_mtime_ns
    (new / "1.X.h,S=5").write_bytes(b"12345")
    os.utime(new, ns=(stamp, stamp))
    assert store.usage(KEY) == 120
    # ... and once the folder's time moves, the folders are listed again.
    age(new, 5)
    assert store.usage(KEY) == 125


def test_a_reader_deleting_mail_frees_the_space(tmp_path: Path) -> None:
    store = MailStore(tmp_path)
    deliver(store, b"x" * 100)
    deliver(store, b"y" * 20)
    first = sorted((store.folder(KEY) / "new").iterdir())[0]
    first.unlink()
    age(store.folder(KEY) / "new", 2)  # its time moves, as any delete's does
    assert store.usage(KEY) in (20, 100)
    assert store.usage(KEY) < 120


def test_delivery_is_all_or_nothing(tmp_path: Path) -> None:
    store = MailStore(tmp_path)
    (tmp_path / "tech2u.com.au" / "bob").mkdir(parents=True)
    (tmp_path / "tech2u.com.au" / "bob" / "new").write_text("not a folder")
    with pytest.raises(OSError):
        deliver(store, b"x", [KEY, "bob@tech2u.com.au"])
    assert list((store.folder(KEY) / "new").iterdir()) == []
    assert list(store.incoming.iterdir()) == []


@pytest.mark.parametrize(
    "key", ["../x@tech2u.com.au", "a@../..", ".x@d", "a/b@d", "a@"]
)
def test_unsafe_mailbox_names_are_refused(tmp_path: Path, key: str) -> None:
    with pytest.raises(ValueError):
        MailStore(tmp_path).folder(key)
