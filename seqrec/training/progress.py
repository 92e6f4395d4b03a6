"""Progress of an epoch: a tqdm bar on a terminal, plain lines elsewhere.

When the stream is not a terminal (a log file, CI, ``nohup``) a bar's carriage-return
updates pile up into one huge line, so :class:`Progress` prints a plain line at most
every ``every`` seconds instead (the loop logs one summary line per epoch).
"""

from __future__ import annotations

import sys
import time
from typing import TextIO

from tqdm.auto import tqdm

__all__ = ["Progress"]

PLAIN_EVERY_SECONDS = 60.0


class Progress:
    """One epoch's progress: ``update(n_events, loss)`` as events are trained."""

    def __init__(
        self,
        total: int,
        desc: str,
        enabled: bool = True,
        stream: TextIO | None = None,
        every: float | None = None,
    ) -> None:
        self.stream = stream if stream is not None else sys.stderr
        self.total, self.desc = total, desc
        self.every = PLAIN_EVERY_SECONDS if every is None else every
        self.enabled = enabled
        isatty = getattr(self.stream, "isatty", None)
        self.bar = None
        if enabled and callable(isatty) and isatty():
            self.bar = tqdm(
                total=total, desc=desc, unit="ev", leave=False, mininterval=0.5, file=self.stream
            )
        self.t0 = self.last = time.perf_counter()
        self.done = 0

    def update(self, n: int, loss: float) -> None:
        self.done += n
        if not self.enabled:
            return
        now = time.perf_counter()
        rate = self.done / max(now - self.t0, 1e-9)
        if self.bar is not None:
            self.bar.set_postfix(loss=f"{loss:.4f}", ev_s=f"{rate:,.0f}")
            self.bar.update(n)
        elif now - self.last >= self.every:
            self.last = now
            pct = 100.0 * self.done / max(self.total, 1)
            print(
                f"{self.desc}: {pct:.0f}% ({self.done:,}/{self.total:,} events, "
                f"{rate:,.0f} ev/s, loss {loss:.4f})",
                file=self.stream,
                flush=True,
            )

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()
