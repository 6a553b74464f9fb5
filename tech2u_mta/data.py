"""The message text of DATA, read line by line from the session's stream.

Only CRLF ends a line (RFC 5321 2.3.8), so only CRLF "." CRLF ends the data
(4.1.1.4); a bare CR or LF is noted and the message refused after its real
end, which keeps "LF . CRLF" smuggling out.  A line over the stream's limit
is read on in pieces and dropped, so memory holds one line at most; the
refusal for it, or for a message over the size limit, comes after the
final dot (4.5.3.1.6, 4.2.5).
"""

from __future__ import annotations

import asyncio

from .catalogue import Entry, R


class DataReader:
    """Splits the DATA stream into lines and notes what is wrong with it."""

    def __init__(self, reader: asyncio.StreamReader, max_size: int) -> None:
        self.reader = reader
        self.max_size = max_size
        self.size = 0
        self.bare_ending = self.too_long = self.too_big = False
        self.line_start = True  # the previous line ended with CRLF
        self.partial_cr = False  # a long line's last piece ended with CR

    async def next_line(self) -> bytes | None:
        """The next line, dot-unstuffed; ``b""`` for one to drop, None at the
        end of data."""
        try:
            piece = await self.reader.readuntil(b"\n")
        except asyncio.LimitOverrunError as overrun:
            piece = await self.reader.read(overrun.consumed)
            self.too_long, self.line_start = True, False
            self.partial_cr = piece.endswith(b"\r")
            return self._count(piece)
        except asyncio.IncompleteReadError as eof:
            raise ConnectionResetError("client closed during DATA") from eof
        if self.line_start and piece == b".\r\n":
            return None
        return self._count(self._complete(piece))

    def _complete(self, piece: bytes) -> bytes:
        crlf = piece.endswith(b"\r\n") or (piece == b"\n" and self.partial_cr)
        body = piece[:-2] if piece.endswith(b"\r\n") else piece[:-1]
        if not crlf or b"\r" in body:
            self.bare_ending = True
        stuffed = self.line_start and piece.startswith(b".")
        self.line_start, self.partial_cr = crlf, False
        return piece[1:] if stuffed else piece  # RFC 5321 4.5.2

    def _count(self, line: bytes) -> bytes:
        self.size += len(line)
        if self.size > self.max_size:
            self.too_big = True
        return b"" if self.too_big or self.too_long else line

    def refusal(self) -> Entry | None:
        if self.too_big:
            return R.MESSAGE_TOO_BIG
        if self.too_long:
            return R.DATA_LINE_TOO_LONG
        if self.bare_ending:
            return R.BARE_LINE_ENDING
        return None
