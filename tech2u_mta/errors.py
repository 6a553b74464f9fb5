"""Errors that stop start-up with one line naming the file, line and key."""

from __future__ import annotations


class ConfigError(Exception):
    """A config or policy file that cannot be used as it is.

    ``str(err)`` is the whole line the CLI prints: ``file:line: key: problem``.
    """

    def __init__(
        self, path: str, line: int | None, problem: str, key: str | None = None
    ) -> None:
        self.path = path
        self.line = line
        self.key = key
        self.problem = problem
        where = f"{path}:{line}" if line else path
        what = f"{key}: {problem}" if key else problem
        super().__init__(f"{where}: {what}")
