"""The progress bar long work draws: tqdm's where installed, else a plain line on stderr."""

from __future__ import annotations

import sys
import time


class Bar:
    """A bar over ``total`` steps labelled ``what``; ``update_to`` moves it, ``close`` ends it."""

    def __init__(self, total: int, what: str) -> None:
        self._done = 0
        try:
            from tqdm.auto import tqdm
        except ImportError:
            self._tqdm = None
            self._total, self._what = total, what
            self._start = self._last = time.monotonic()
        else:
            self._tqdm = tqdm(total=total or None, desc=what)

    def update_to(self, done: int) -> None:
        step, self._done = done - self._done, done
        if self._tqdm is not None:
            self._tqdm.update(step)
            return
        now = time.monotonic()
        if now - self._last >= 0.5 or done == self._total:
            self._last = now
            rate = done / max(now - self._start, 1e-9)
            left = (self._total - done) / rate if self._total and rate > 0 else 0.0
            sys.stderr.write(
                f"\r{self._what}: {done}/{self._total} ({rate:.1f}/s, {left:.0f} s left)"
            )
            sys.stderr.flush()

    def close(self) -> None:
        if self._tqdm is not None:
            self._tqdm.close()
        else:
            sys.stderr.write("\n")
