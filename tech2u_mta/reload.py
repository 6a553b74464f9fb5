"""Reloading the policy folder while the server runs.

A reload reads the whole folder into a new policy set and swaps it in at
once; a session already open keeps the set it started with.  A broken file
keeps the old set: the log names the file, line and error.
"""

from __future__ import annotations

import asyncio
import logging
from pathlib import Path

import watchfiles

from .errors import ConfigError
from .policy import FILES, Policies, load_folder
from .server import Server

log = logging.getLogger("tech2u_mta.reload")


class Reloader:
    def __init__(self, server: Server, folder: Path) -> None:
        self.server = server
        self.folder = folder
        self._lock = asyncio.Lock()

    async def reload(self, why: str) -> bool:
        """Load the folder again; True when the new set is in force."""
        async with self._lock:
            quota = self.server.config.default_quota
            old = self.server.policies
            try:
                # In a thread: a large folder takes seconds to read and to
                # compare, and the sessions must go on being answered.
                new, changes = await asyncio.to_thread(self._load, old, quota)
            except ConfigError as err:
                log.error("reload on %s failed, old policies kept: %s", why, err)
                return False
            self.server.policies = new
            log.info("policies reloaded on %s: %s", why, changes)
            return True

    def _load(self, old: Policies, quota: int | None) -> tuple[Policies, str]:
        new = load_folder(self.folder, quota)
        return new, describe_changes(old, new)

    async def watch(self) -> None:
        """Reload whenever a policy file of the folder changes (until
        cancelled); editors' temporary files do not count."""
        async for changes in watchfiles.awatch(
            self.folder, debounce=200, watch_filter=_policy_file
        ):
            names = sorted({Path(path).name for _, path in changes})
            await self.reload("change of " + ",".join(names))


def _policy_file(change: watchfiles.Change, path: str) -> bool:
    return Path(path).name in FILES


def describe_changes(old: Policies, new: Policies) -> str:
    """``mailboxes 5->6 (+1 -0)`` for each file, for the log."""
    parts = []
    before, after = old.counts(), new.counts()
    keyed = {
        "domains": (dict.fromkeys(old.domains), dict.fromkeys(new.domains)),
        "mailboxes": (old.mailboxes, new.mailboxes),
        "users": (old.users, new.users),
    }
    for name in after:
        part = f"{name} {before[name]}->{after[name]}"
        if name in keyed:
            was, now = keyed[name]
            added = sum(1 for key in now if key not in was)
            removed = sum(1 for key in was if key not in now)
            changed = sum(1 for key, v in now.items() if key in was and was[key] != v)
            part += f" (+{added} -{removed} ~{changed})"
        parts.append(part)
    return ", ".join(parts)
