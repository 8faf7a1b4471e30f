"""Progress for long commands: a tqdm bar on a terminal, plain timestamped lines anywhere else.

A bar redrawn with carriage returns turns into one unreadable line in a log file or a CI log, so when the stream
is not a terminal, `Progress` writes a line every `every_seconds` (and at the end) instead:

    2026-12-02 14:03:11 evaluate: 120/1892 pairs (6.3%), 1.52 pairs/s, ETA 0:19:26, model=magenta-mobile

Every long command (train, evaluate, optimize, data build, learn, video) uses this one helper; `quiet=True`
silences it. `ARBSTYLE_PROGRESS_SECONDS` sets the default interval between lines (e.g. 300 for a long run's log,
0 for a line per update).
"""
from __future__ import annotations

import os
import sys
import time
from collections.abc import Iterable, Iterator
from datetime import datetime, timedelta
from typing import IO, TypeVar

T = TypeVar("T")

DEFAULT_EVERY_SECONDS = 30.0


def _duration(seconds: float) -> str:
    return str(timedelta(seconds=int(round(seconds))))


def default_every_seconds() -> float:
    """$ARBSTYLE_PROGRESS_SECONDS when set (a number >= 0), else 30."""
    text = os.environ.get("ARBSTYLE_PROGRESS_SECONDS", "").strip()
    if not text:
        return DEFAULT_EVERY_SECONDS
    try:
        value = float(text)
    except ValueError:
        value = -1.0
    if not value >= 0:  # also rejects nan
        from arbstyle.cli import CLIError

        raise CLIError(f"ARBSTYLE_PROGRESS_SECONDS: expected a number of seconds >= 0, got {text!r}")
    return value


def is_terminal(stream: IO) -> bool:
    try:
        return bool(stream.isatty())
    except (AttributeError, ValueError):
        return False


class Progress:
    """A progress counter. Use as a context manager (or call close()); update(n) after each unit of work."""

    def __init__(self, total: int | None = None, desc: str = "", unit: str = "it", *, initial: int = 0,
                 quiet: bool = False, stream: IO | None = None, every_seconds: float | None = None,
                 leave: bool = True):
        self.total, self.desc, self.unit = total, desc, unit
        self.n = initial
        self.stream = sys.stderr if stream is None else stream
        self.every_seconds = default_every_seconds() if every_seconds is None else every_seconds
        self.quiet = quiet
        self.postfix: dict[str, str] = {}
        self._start_n = initial
        self._line_n: int | None = None  # the count the last line showed
        self._start = self._last_line = time.monotonic()
        self._closed = False
        self._bar = None
        if not quiet and is_terminal(self.stream):
            from tqdm import tqdm

            # leave=False: a short phase before the main one (e.g. checking inputs) erases its bar when done, so
            # the main bar is not preceded by a finished one; in a log its lines stay, as every line does
            self._bar = tqdm(total=total, initial=initial, desc=desc, unit=unit, file=self.stream,
                             dynamic_ncols=True, leave=leave)

    def __enter__(self) -> Progress:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def update(self, n: int = 1) -> None:
        self.n += n
        if self._bar is not None:
            self._bar.update(n)
        elif not self.quiet and time.monotonic() - self._last_line >= self.every_seconds:
            self._line()

    def set_postfix(self, **values) -> None:
        """Short key=value pairs shown after the count (floats with 4 significant digits)."""
        self.postfix = {k: (f"{v:.4g}" if isinstance(v, float) else str(v)) for k, v in values.items()}
        if self._bar is not None:
            self._bar.set_postfix(self.postfix, refresh=False)

    def write(self, message: str) -> None:
        """A message that does not break the bar (timestamped when not on a terminal)."""
        if self.quiet:
            return
        if self._bar is not None:
            self._bar.write(message, file=self.stream)
        else:
            print(f"{datetime.now():%Y-%m-%d %H:%M:%S} {message}", file=self.stream, flush=True)

    def rate(self) -> float:
        elapsed = time.monotonic() - self._start
        return (self.n - self._start_n) / elapsed if elapsed > 0 else 0.0

    def format_line(self) -> str:
        """'desc: n/total unit (pct), rate unit/s, ETA h:mm:ss, k=v' (the parts that are known)."""
        count = f"{self.n}/{self.total} {self.unit}" if self.total else f"{self.n} {self.unit}"
        parts = [count + (f" ({100.0 * self.n / self.total:.1f}%)" if self.total else "")]
        rate = self.rate()
        if rate > 0:
            parts.append(f"{rate:.3g} {self.unit}/s")
            if self.total and self.n < self.total:
                parts.append(f"ETA {_duration((self.total - self.n) / rate)}")
        else:
            parts.append(f"elapsed {_duration(time.monotonic() - self._start)}")
        parts.extend(f"{k}={v}" for k, v in self.postfix.items())
        return (f"{self.desc}: " if self.desc else "") + ", ".join(parts)

    def _line(self) -> None:
        self._last_line, self._line_n = time.monotonic(), self.n
        print(f"{datetime.now():%Y-%m-%d %H:%M:%S} {self.format_line()}", file=self.stream, flush=True)

    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        if self._bar is not None:
            self._bar.close()
        elif not self.quiet and self._line_n != self.n:  # the closing line, unless the last one said the same
            self._line()


def progress(iterable: Iterable[T], total: int | None = None, **kwargs) -> Iterator[T]:
    """Iterate with a Progress (total from len() when it has one)."""
    if total is None and hasattr(iterable, "__len__"):
        total = len(iterable)  # type: ignore[arg-type]
    with Progress(total, **kwargs) as bar:
        for item in iterable:
            yield item
            bar.update()
