"""`MockClock`: virtual time for the library clock, on asyncio and trio.

```python
import anyio
from cano_dsl import RateLimiter
from cano_dsl.testing import MockClock

async def main() -> None:
    with MockClock() as clock:
        limiter = RateLimiter.per_second(1)   # one token a second, starts full
        start = clock.now()
        for _ in range(4):
            await limiter.acquire()            # waits 3 virtual seconds in total
        assert clock.now() - start >= 3.0      # ...in next to no wall time

anyio.run(main)
```

How it works. ``now()`` returns a virtual reading that moves only when told:
`advance` jumps it by hand, and with ``autojump=True`` (the default) a task sleeping on
the clock jumps it for everyone. One sleeper at a time is the *driver*: it waits in
``anyio.wait_all_tasks_blocked()`` until every other task of the event loop is blocked,
then moves the clock to the earliest pending deadline and wakes the sleepers that are
due. When the driver leaves (woken or cancelled) it hands the role to another sleeper.
No helper task is needed, so installing the clock is a plain ``with`` block.

Limits (read before relying on it):

- Only sleeps through the library clock are virtual: the breaker's cool-down, limiter
  waits, the retry loop's backoff, anything calling ``cano_dsl._clock.sleep``. A bare
  ``anyio.sleep`` and anyio cancel-scope deadlines (``move_on_after``, ``fail_after``,
  the attempt timeout) still run on the backend's real clock.
- "Every task blocked" counts a task waiting on a worker thread
  (``anyio.to_thread.run_sync``) or on a real ``anyio.sleep`` as blocked, so virtual
  time may jump while that work is still going on.
- On asyncio, anyio's ``wait_all_tasks_blocked`` re-polls every 0.1 s of wall time while
  some task is runnable; a test whose tasks keep each other busy pays that cost (trio's
  version is exact and costs nothing).
- ``advance`` and sleeping must happen on the event loop's thread; ``now()`` may be read
  from any thread.
- Install the clock before building the primitives under test. The default starting
  reading is the system monotonic clock's, so objects built before installation keep a
  consistent view; leaving the block hands back the system clock, which may read
  earlier than the virtual time reached (limiters rebase on such a step back).
"""

from __future__ import annotations

import heapq
import itertools
import math
import threading
import time
from types import TracebackType

import anyio
import anyio.lowlevel

from .. import _clock
from .._errors import ConfigurationError

__all__ = ["MockClock"]


class _Sleeper:
    __slots__ = ("deadline", "done", "event")

    def __init__(self, deadline: float) -> None:
        self.deadline = deadline
        self.done = False
        self.event: anyio.Event | None = None

    def wake(self) -> None:
        self.done = True
        if self.event is not None:
            self.event.set()


class MockClock:
    """A virtual clock for the library; see the module docs for how and its limits.

    ``start``: the first reading (default: the system monotonic clock's reading now).
    ``autojump``: let sleepers move time forward once every task is blocked.
    """

    def __init__(self, start: float | None = None, *, autojump: bool = True) -> None:
        self._now = float(time.monotonic() if start is None else start)
        if math.isnan(self._now):
            raise ConfigurationError("MockClock start must be a number")
        self.autojump = autojump
        self._lock = threading.Lock()
        self._heap: list[tuple[float, int, _Sleeper]] = []
        self._seq = itertools.count()
        self._driver: _Sleeper | None = None
        self._previous: list[_clock.Clock] = []

    # -- the Clock protocol -----------------------------------------------------------

    def now(self) -> float:
        """The virtual reading, in seconds."""
        return self._now

    async def sleep(self, seconds: float) -> None:
        """Sleep until the virtual clock reaches ``now() + seconds``."""
        if not seconds > 0:  # also NaN
            await anyio.lowlevel.checkpoint()
            return
        with self._lock:
            deadline = self._now + seconds
            sleeper = _Sleeper(deadline)
            heapq.heappush(self._heap, (deadline, next(self._seq), sleeper))
        try:
            while not sleeper.done:
                if self.autojump and self._driver is None and await self._drive(sleeper):
                    continue
                event = sleeper.event = anyio.Event()
                if sleeper.done:
                    break
                await event.wait()
        finally:
            sleeper.done = True  # a cancelled sleeper is dropped lazily from the heap
            if self._driver is sleeper:
                self._driver = None
            if self._driver is None:
                self._kick()

    # -- manual control ---------------------------------------------------------------

    def advance(self, seconds: float) -> None:
        """Move the clock forward by ``seconds`` and wake every sleeper now due."""
        if not seconds >= 0:
            raise ConfigurationError(f"MockClock.advance needs seconds >= 0, got {seconds!r}")
        with self._lock:
            self._now += seconds
        self._wake_due()

    def jump_to(self, reading: float) -> None:
        """Move the clock forward to ``reading`` (no-op if it is not ahead)."""
        self.advance(max(reading - self._now, 0.0))

    @property
    def pending_sleepers(self) -> int:
        """How many tasks are sleeping on this clock."""
        return sum(1 for _, _, s in self._heap if not s.done)

    @property
    def next_deadline(self) -> float | None:
        """The earliest deadline of a pending sleeper, if any."""
        self._prune()
        return self._heap[0][0] if self._heap else None

    # -- installation -----------------------------------------------------------------

    def install(self) -> MockClock:
        """Make this the library clock (remembering the one it replaces)."""
        self._previous.append(_clock.set_clock(self))
        return self

    def uninstall(self) -> None:
        """Put back the clock `install` replaced."""
        if not self._previous:
            raise RuntimeError("MockClock.uninstall() without a matching install()")
        _clock.set_clock(self._previous.pop())

    def __enter__(self) -> MockClock:
        return self.install()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.uninstall()

    def __repr__(self) -> str:
        return f"MockClock(now={self._now!r}, autojump={self.autojump})"

    # -- internals --------------------------------------------------------------------

    def _prune(self) -> None:
        heap = self._heap
        while heap and heap[0][2].done:
            heapq.heappop(heap)

    def _wake_due(self) -> None:
        due: list[_Sleeper] = []
        with self._lock:
            heap = self._heap
            while heap and (heap[0][2].done or heap[0][0] <= self._now):
                sleeper = heapq.heappop(heap)[2]
                if not sleeper.done:
                    due.append(sleeper)
        for sleeper in due:
            sleeper.wake()

    async def _drive(self, sleeper: _Sleeper) -> bool:
        """Be the driver for one round; False if there was nothing to jump to (the
        caller then waits on its event like any other sleeper)."""
        self._driver = sleeper
        try:
            await anyio.wait_all_tasks_blocked()
        finally:
            if self._driver is sleeper:
                self._driver = None
        if sleeper.done:
            return True
        with self._lock:
            self._prune()
            if not self._heap or math.isinf(self._heap[0][0]):
                return False
            target = self._heap[0][0]
            if target > self._now:
                self._now = target
        self._wake_due()
        return True

    def _kick(self) -> None:
        """Hand the driver role on: wake one pending sleeper so it re-loops."""
        if not self.autojump:
            return
        for _, _, sleeper in self._heap:
            if not sleeper.done and sleeper.event is not None and not sleeper.event.is_set():
                sleeper.event.set()
                return
