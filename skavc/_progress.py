"""A progress line for long work: how far, how fast, how long still (no dependency)."""

import sys
import time


def clock(seconds):
    """``m:ss`` (``h:mm:ss`` from an hour on) of a number of seconds."""
    seconds = int(round(seconds))
    return f"{seconds // 3600}:{seconds // 60 % 60:02d}:{seconds % 60:02d}" if seconds >= 3600 \
        else f"{seconds // 60}:{seconds % 60:02d}"


class Progress:
    """``done/total`` of some work in media seconds, its rate against real time and the time left.

    On a terminal the line is rewritten in place; elsewhere (a log file, CI) a line is printed
    every ``every`` of the total, so logs stay short. ``total`` None: no percentage or time left.

    Parameters
    ----------
    what : str
        What is being done ("sync", "localize", ...), first on the line.
    total : float or None
        Seconds of media to get through.
    stream : file-like or None, default=None
        Where the line goes; None means ``sys.stderr``.
    every : float, default=0.1
        Off a terminal, a line every this share of ``total``.

    Examples
    --------
    >>> import io
    >>> progress = Progress("sync", 60.0, stream=io.StringIO())
    >>> progress.update(30.0)
    >>> progress.close()
    """

    def __init__(self, what, total, *, stream=None, every=0.1):
        self.what, self.total, self.every = what, total, every
        self.stream = sys.stderr if stream is None else stream
        self.tty = bool(getattr(self.stream, "isatty", lambda: False)())
        self.start = time.perf_counter()
        self.done = 0.0
        self._printed = -1.0

    def line(self):
        """The progress as one line of text."""
        elapsed = max(time.perf_counter() - self.start, 1e-9)
        rate = self.done / elapsed
        parts = [f"{self.what}: {self.done:.0f} s"]
        if self.total:
            fraction = min(self.done / self.total, 1.0)
            parts[0] += f" of {self.total:.0f} s of media ({100 * fraction:.0f} %)"
            if rate > 0:
                parts.append(f"time left {clock(max(self.total - self.done, 0.0) / rate)}")
        else:
            parts[0] += " of media"
        parts.append(f"{rate:.1f}x real time")
        parts.append(f"elapsed {clock(elapsed)}")
        return ", ".join(parts)

    def update(self, done):
        """Record that ``done`` seconds of media are through, and show it."""
        self.done = float(done)
        if self.tty:
            self.stream.write("\r" + self.line() + "\x1b[K")
            self.stream.flush()
            return
        mark = self.done / self.total if self.total else 0.0
        if self.total is None or mark - self._printed >= self.every or mark >= 1.0 > self._printed:
            self._printed = mark
            self.stream.write(self.line() + "\n")
            self.stream.flush()

    def close(self):
        """End the line (on a terminal) so what follows starts on its own."""
        if self.tty:
            self.stream.write("\n")
            self.stream.flush()
