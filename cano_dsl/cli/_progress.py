"""One progress line per state, printed as the run leaves it: the state, how it ended,
the attempts it took and the time spent in it (``run`` and ``runs resume``)."""

from __future__ import annotations

import time
from typing import TextIO

from .._errors import category_of
from .._observer import WorkflowObserver
from ..report._timeline import duration

__all__ = ["Progress"]


class Progress(WorkflowObserver):
    """Prints ``STATE  attempt N  ELAPSED`` (plus ``failed``, ``split xN``, ``exit``)
    on ``out`` when the run moves on from a state, and for the last state at `finish`."""

    def __init__(self, out: TextIO, exits: set[str], width: int = 0) -> None:
        self.out = out
        self.exits = exits
        self.width = width
        self.started = time.monotonic()
        self.state: str | None = None
        self.entered = 0.0
        self.attempts: dict[str, int] = {}
        self.failed = False
        self.cancelled = False

    def _line(self, now: float) -> None:
        state = self.state
        if state is None:
            return
        self.state = None
        label = state.ljust(self.width)
        if not self.attempts and state in self.exits:
            print(f"  {label}  exit      total {duration(now - self.started)}", file=self.out)
            self.out.flush()
            return
        attempt = max(self.attempts.values(), default=1)
        bits = []
        if len(self.attempts) > 1:
            bits.append(f"split x{len(self.attempts)}")
        if self.failed:
            bits.append("failed")
        elif self.cancelled:
            bits.append("interrupted")
        status = ", ".join(bits)
        text = f"  {label}  attempt {attempt}  {duration(now - self.entered)}"
        print(f"{text}  {status}".rstrip(), file=self.out)
        self.out.flush()

    def on_state_enter(self, state: str) -> None:
        now = time.monotonic()
        self._line(now)
        self.state, self.entered = state, now
        self.attempts, self.failed, self.cancelled = {}, False, False

    def on_task_start(self, task_id: str) -> None:
        self.attempts.setdefault(task_id, 1)

    def on_retry(self, task_id: str, attempt: int) -> None:
        self.attempts[task_id] = attempt + 1

    def on_task_failure(self, task_id: str, error: BaseException) -> None:
        if category_of(error) == "cancelled":
            self.cancelled = True
        else:
            self.failed = True

    def on_cancelled(self, state: str) -> None:
        self.cancelled = True

    def finish(self, *, failed: bool = False, interrupted: bool = False) -> None:
        """Print the line of the state the run ended in (``failed``: the run raised;
        ``interrupted``: Ctrl-C)."""
        if failed:
            self.failed = True
        elif interrupted and not self.failed:
            self.cancelled = True
        self._line(time.monotonic())
