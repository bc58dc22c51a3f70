"""`SchedulerThreadHandle`: a running scheduler, for threads other than its event
loop's (REFERENCE §8.2: cano's handle is usable from any thread).

Commands and snapshots hop onto the scheduler's event loop through the
`anyio.from_thread.BlockingPortal` the scheduler keeps open while it runs; `wait`
blocks on a `threading.Event` set once the ``start()`` block has exited, so it needs
no event loop and works after the loop finished.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, TypeVar

from .._errors import WorkflowError
from ._running import _NOT_RUNNING
from ._status import FlowInfo

if TYPE_CHECKING:
    from ._running import RunningScheduler

__all__ = ["SchedulerThreadHandle"]

T = TypeVar("T")


class SchedulerThreadHandle:
    """A `RunningScheduler` for threads other than the event loop's: every method
    blocks the calling thread until the scheduler's event loop has done the work.

    Get one with ``running.from_thread()`` inside the ``start()`` block and hand it
    to the thread. It stays usable after the scheduler stopped and after the event
    loop that started it finished: commands then raise ``WorkflowError("Scheduler
    not running — call start() before trigger()")``, `stop` and `wait` return (or
    raise) the scheduler's final result, and the snapshots read the final state.
    Calling it from the event loop's own thread raises `RuntimeError` (it would
    block the loop it waits for): there, await the `RunningScheduler` methods."""

    __slots__ = ("_running",)

    def __init__(self, running: RunningScheduler) -> None:
        self._running = running

    def _call(self, func: Callable[..., Any], *args: Any) -> Any:
        running = self._running
        portal = running._portal
        if portal is None:
            raise _Closed
        if threading.get_ident() == running._loop_thread:
            raise RuntimeError(
                "SchedulerThreadHandle blocks its thread: call it from another thread, "
                "and await the RunningScheduler's methods on the event loop"
            )
        try:
            return portal.call(func, *args)
        except RuntimeError as exc:
            # the portal closed (the start() block has exited) or its loop is gone
            if running._portal is None or "not running" in str(exc):
                raise _Closed from None
            raise

    def _snapshot(self, func: Callable[[], T]) -> T:
        try:
            return self._call(func)  # type: ignore[no-any-return]
        except _Closed:
            return func()  # the loop is gone: nothing changes the flows any more

    def trigger(self, id: str) -> None:
        """`RunningScheduler.trigger`, from another thread."""
        self._command(self._running.trigger, id, "trigger")

    def reset_flow(self, id: str) -> None:
        """`RunningScheduler.reset_flow`, from another thread."""
        self._command(self._running.reset_flow, id, "reset_flow")

    def cancel_flow(self, id: str) -> None:
        """`RunningScheduler.cancel_flow`, from another thread."""
        self._command(self._running.cancel_flow, id, "cancel_flow")

    def _command(self, method: Callable[[str], Any], id: str, name: str) -> None:
        try:
            self._call(method, id)
        except _Closed:
            raise WorkflowError(_NOT_RUNNING.format(name)) from None

    def stop(self) -> None:
        """`RunningScheduler.stop`, from another thread: stop dispatching, cancel the
        in-flight runs and block until they settled (the ``start()`` block then
        tears resources down as it exits; `wait` waits for that too). After the
        scheduler stopped: its final result again."""
        try:
            self._call(self._running.stop)
        except _Closed:
            self._running._raise_end()

    def wait(self, timeout: float | None = None) -> None:
        """Block until the scheduler has shut down completely, as cano's ``wait``:
        stopped, its runs settled and its ``start()`` block exited (resources torn
        down). At most ``timeout`` seconds (then `TimeoutError`; None: for ever).
        Raises what `RunningScheduler.stop` raises."""
        running = self._running
        closed = running._closed
        if not closed.is_set() and threading.get_ident() == running._loop_thread:
            raise RuntimeError(
                "SchedulerThreadHandle.wait() on the event loop's thread would wait for "
                "ever: await RunningScheduler.wait() there"
            )
        if not closed.wait(timeout):
            raise TimeoutError(f"the scheduler did not shut down within {timeout} s")
        running._raise_end()

    def status(self, id: str) -> FlowInfo | None:
        """`RunningScheduler.status`, read on the event loop."""
        return self._snapshot(lambda: self._running.status(id))

    def list(self) -> list[FlowInfo]:
        """`RunningScheduler.list`, read on the event loop."""
        return self._snapshot(self._running.list)

    def has_running_flows(self) -> bool:
        """`RunningScheduler.has_running_flows`, read on the event loop."""
        return self._snapshot(self._running.has_running_flows)

    @property
    def is_running(self) -> bool:
        """True until the scheduler starts stopping."""
        return self._running.is_running

    def __repr__(self) -> str:
        return f"SchedulerThreadHandle({self._running!r})"


class _Closed(Exception):
    """Internal: the scheduler's event loop no longer takes calls from threads."""
