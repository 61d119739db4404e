"""Stopping long-running commands cleanly on a signal.

A handler only sets a flag; each command checks it between steps, so a
batch in flight is finished or left unacknowledged (and sent again next
time), never half-written.
"""

from __future__ import annotations

import signal


class StopFlag:
    """Call it: True once one of the given signals has arrived (or ``set`` was assigned).

    Deliberately not truthy by itself: ``stop or default`` must not mistake a
    flag that has not fired yet for a missing one."""

    def __init__(self, *signals: signal.Signals) -> None:
        self.set = False
        for sig in signals:
            signal.signal(sig, self._on_signal)

    def _on_signal(self, *_: object) -> None:
        self.set = True

    def __call__(self) -> bool:
        return self.set
