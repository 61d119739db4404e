"""The progress line of long jobs (replay, backfill, rebuild): bar, share, counts, rate, ETA.

One self-overwriting line on stderr, redrawn at most twice a second, so a
job moving a million events does not spend its time printing.
"""

from __future__ import annotations

import sys
import time
from typing import TextIO

REDRAW_S = 0.5
WIDTH = 30


class ProgressLine:
    def __init__(self, stream: TextIO | None = None) -> None:
        self.stream = stream or sys.stderr
        self.started = time.monotonic()
        self.last = 0.0

    @property
    def elapsed_s(self) -> float:
        return max(time.monotonic() - self.started, 1e-6)

    def show(self, share: float, detail: str, final: bool = False) -> None:
        """Redraw with ``share`` (0..1) of the job done; ``detail`` says of what."""
        now = time.monotonic()
        if not final and now - self.last < REDRAW_S:
            return
        self.last = now
        share = min(max(share, 0.0), 1.0)
        elapsed = self.elapsed_s
        eta = elapsed / share - elapsed if share > 0 else float("inf")
        self.stream.write(
            f"\r[{'#' * int(share * WIDTH):<{WIDTH}}] {share:6.1%}  {detail}  ETA {eta:,.0f} s   "
            + ("\n" if final else "")
        )
        self.stream.flush()
