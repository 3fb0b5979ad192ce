"""Progress bars for long work (tqdm): how far, how fast, how long still.

Two kinds of work are long: a list of clips (encoding, or any answer over a list, through
:meth:`skavc._encoding.EncodingContext.map`; training epochs) counted in items, and one long
recording read a window at a time, counted in seconds of media, whose rate is then a multiple of
real time. Both go to stderr. On a terminal the bar is redrawn in place; elsewhere (a log file,
CI) tqdm prints a line at most every :data:`LOG_INTERVAL` seconds, so logs stay short.
"""

import contextlib
import sys
import time

from tqdm import tqdm

#: Seconds between progress lines when stderr is not a terminal.
LOG_INTERVAL = 30.0


def clock(seconds):
    """``m:ss`` (``h:mm:ss`` from an hour on) of a number of seconds."""
    seconds = int(round(seconds))
    return f"{seconds // 3600}:{seconds // 60 % 60:02d}:{seconds % 60:02d}" if seconds >= 3600 \
        else f"{seconds // 60}:{seconds % 60:02d}"


def progress_bar(iterable=None, *, total=None, desc=None, unit="clip", stream=None, enabled=True, **options):
    """A tqdm bar over ``iterable`` (or one to ``update`` by hand), or ``iterable`` itself when not ``enabled``.

    Parameters
    ----------
    iterable : iterable or None
    total : float or None
        Items (or seconds of media) to get through; None: ``len(iterable)`` where it has one.
    desc : str or None
        What is being done, first on the line.
    unit : str, default="clip"
    stream : file-like or None, default=None
        Where the bar goes; None means ``sys.stderr``.
    enabled : bool, default=True
    **options
        More of tqdm's parameters (``bar_format``, ...).

    Returns
    -------
    tqdm or iterable
    """
    if not enabled:
        return iterable
    stream = sys.stderr if stream is None else stream
    if bool(getattr(stream, "isatty", lambda: False)()):
        bar = tqdm(iterable, total=total, desc=desc, unit=unit, file=stream, dynamic_ncols=True, **options)
        bar.on_terminal = True
    else:
        bar = _LogBar(iterable, total=total, desc=desc, unit=unit, file=_Lines(stream), ncols=100, ascii=True,
                      mininterval=LOG_INTERVAL, delay=LOG_INTERVAL, **options)
        bar.on_terminal = False
    return bar


def written_beside(bar):
    """Context in which to print lines while ``bar`` is shown: on a terminal the bar is taken
    off while they are written and drawn again after (``tqdm.external_write_mode``); off a
    terminal the bar's lines are lines of their own already."""
    if not bar.on_terminal:
        return contextlib.nullcontext()
    return tqdm.external_write_mode()


class _LogBar(tqdm):
    """tqdm off a terminal: no line before :data:`LOG_INTERVAL` seconds have passed (``delay``),
    then one every as many, and the final state when closed after some work, whether or not a
    line came before (tqdm's own ``close`` prints only a bar it has shown; work that failed
    before its first step leaves its error alone)."""

    def close(self):
        if not self.disable and self.n and self.last_print_t < self.start_t + self.delay:  # never shown
            self.fp.write(self.format_meter(**self.format_dict))
        super().close()


class _Lines:
    """A stream for tqdm off a terminal: each state of the bar on a line of its own (tqdm redraws
    with carriage returns, which a log file would keep as one ever-growing line)."""

    def __init__(self, stream):
        self.stream = stream

    def write(self, text):
        text = text.replace("\r", "").rstrip()
        if text:
            self.stream.write(text + "\n")

    def flush(self):
        self.stream.flush()


class Progress:
    """A bar over ``total`` seconds of media: done, rate against real time, time left.

    Parameters
    ----------
    what : str
        What is being done ("sync clip.mp4", ...), first on the line.
    total : float or None
        Seconds of media to get through; None: no percentage or time left.
    stream : file-like or None, default=None
        Where the bar goes; None means ``sys.stderr``.

    Examples
    --------
    >>> import io
    >>> progress = Progress("sync", 60.0, stream=io.StringIO())
    >>> progress.update(30.0)
    >>> progress.close()
    """

    def __init__(self, what, total, *, stream=None):
        self.start = time.perf_counter()
        # media seconds per second of work: the rate against real time, in the postfix
        form = ("{l_bar}{bar}| {n:.0f}/{total:.0f} s of media [{elapsed}<{remaining}{postfix}]" if total
                else "{desc}: {n:.0f} s of media [{elapsed}{postfix}]")
        self.bar = progress_bar(total=total, desc=what, unit="s", stream=stream, bar_format=form)

    def update(self, done):
        """Record that ``done`` seconds of media are through, and show it."""
        rate = done / max(time.perf_counter() - self.start, 1e-9)
        self.bar.set_postfix_str(f"{rate:.1f}x real time", refresh=False)
        self.bar.update(float(done) - self.bar.n)

    def close(self):
        """End the bar (printing its last state) so what follows starts on its own line."""
        self.bar.close()
