"""`CancellationToken`: cooperative cancellation of a run (REFERENCE §1.6)."""

from __future__ import annotations

import anyio

__all__ = ["CancellationToken"]


class CancellationToken:
    """A one-way signal that ends a run with `WorkflowCancelled`.

    ``cancel()`` is idempotent and may be called before or during a run; a run checks
    the token at the top of each state and interrupts the in-flight dispatch at its
    next await point. Tasks never see the token. ``cancel()`` must be called from the
    event loop's thread; from another thread use ``anyio.from_thread.run_sync(token.cancel)``.
    """

    __slots__ = ("_cancelled", "_event", "_scopes")

    def __init__(self) -> None:
        self._cancelled = False
        self._event: anyio.Event | None = None
        self._scopes: set[anyio.CancelScope] = set()

    @property
    def is_cancelled(self) -> bool:
        return self._cancelled

    def cancel(self) -> None:
        """Fire the token (idempotent)."""
        if self._cancelled:
            return
        self._cancelled = True
        for scope in list(self._scopes):
            scope.cancel()
        if self._event is not None:
            self._event.set()

    async def wait(self) -> None:
        """Wait until the token fires (returns at once if it already has)."""
        if self._cancelled:
            return
        if self._event is None:
            self._event = anyio.Event()
        await self._event.wait()

    # engine side ---------------------------------------------------------------
    def _attach(self, scope: anyio.CancelScope) -> None:
        self._scopes.add(scope)
        if self._cancelled:
            scope.cancel()

    def _detach(self, scope: anyio.CancelScope) -> None:
        self._scopes.discard(scope)

    def __repr__(self) -> str:
        return f"CancellationToken(cancelled={self._cancelled})"
