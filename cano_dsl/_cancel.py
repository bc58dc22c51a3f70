"""`CancellationToken`: cooperative cancellation of a run (REFERENCE §1.6)."""

from __future__ import annotations

import threading
from typing import Any

import anyio
import anyio.from_thread
import anyio.lowlevel

__all__ = ["CancellationToken"]


class CancellationToken:
    """A one-way signal that ends a run with `WorkflowCancelled`.

    ``cancel()`` is idempotent and may be called before or during a run; a run checks
    the token at the top of each state and interrupts the in-flight dispatch at its
    next await point. Tasks never see the token. ``cancel()`` may be called from any
    thread: from outside the event loop's thread it hands the wake-up to the loop.
    """

    __slots__ = ("_cancelled", "_event", "_loop", "_scopes", "_thread")

    def __init__(self) -> None:
        self._cancelled = False
        self._event: anyio.Event | None = None
        self._scopes: set[anyio.CancelScope] = set()
        self._thread: int | None = None
        self._loop: Any = None

    @classmethod
    def disabled(cls) -> CancellationToken:
        """A token that never fires (``cancel()`` is a no-op); a run given one behaves
        exactly as a run given no token, with no racing cost."""
        return _DisabledToken()

    @property
    def is_disabled(self) -> bool:
        """Whether this is a `disabled()` token."""
        return False

    @property
    def is_cancelled(self) -> bool:
        """Whether `cancel()` has been called."""
        return self._cancelled

    def cancel(self) -> None:
        """Fire the token (idempotent)."""
        if self._cancelled:
            return
        self._cancelled = True
        if self._thread is not None and threading.get_ident() != self._thread:
            try:
                anyio.from_thread.run_sync(self._wake, token=self._loop)
            except RuntimeError:  # the loop has finished: nothing left to wake
                pass
            return
        self._wake()

    def _wake(self) -> None:
        for scope in list(self._scopes):
            scope.cancel()
        if self._event is not None:
            self._event.set()

    async def wait(self) -> None:
        """Wait until the token fires (returns at once if it already has)."""
        if self._cancelled:
            return
        self._bind()
        if self._event is None:
            self._event = anyio.Event()
        await self._event.wait()

    # engine side ---------------------------------------------------------------
    def _bind(self) -> None:
        """Remember the event loop this token is used on (for cross-thread cancel);
        the latest run's loop wins."""
        thread = threading.get_ident()
        if self._thread != thread:
            self._thread = thread
            self._loop = anyio.lowlevel.current_token()

    def _attach(self, scope: anyio.CancelScope) -> None:
        self._bind()
        self._scopes.add(scope)
        if self._cancelled:
            scope.cancel()

    def _detach(self, scope: anyio.CancelScope) -> None:
        self._scopes.discard(scope)

    def __repr__(self) -> str:
        return f"CancellationToken(cancelled={self._cancelled})"


class _DisabledToken(CancellationToken):
    __slots__ = ()

    @property
    def is_disabled(self) -> bool:
        return True

    def cancel(self) -> None:
        """A disabled token never fires."""

    def __repr__(self) -> str:
        return "CancellationToken.disabled()"
