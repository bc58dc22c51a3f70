"""`panic_on_attempt`: a task that fails its first attempts on purpose (REFERENCE §12).

Python has no panics: the port raises `TaskExecutionError` instead. With its default
config (`TaskConfig.minimal()`, one attempt) a failure ends the state at once, as a
panic does in the original; give it a retrying config with `with_config` to watch the
retry loop recover from the first ``n`` attempts.
"""

from __future__ import annotations

import enum
import threading
from typing import Any

from .._config import TaskConfig
from .._errors import ConfigurationError, TaskExecutionError
from ..tasks._base import Task

__all__ = ["PanicOnAttempt", "panic_on_attempt"]


class PanicOnAttempt(Task[Any]):
    """Fails attempts 1..n with ``"panic_on_attempt: forced panic on attempt {k}"``,
    then returns ``next_state``. Counts every attempt (`attempts()`), thread-safely."""

    def __init__(self, n: int, next_state: enum.Enum, config: TaskConfig | None = None) -> None:
        if isinstance(n, bool) or not isinstance(n, int) or n < 0:
            raise ConfigurationError(f"panic_on_attempt: n must be an int >= 0, got {n!r}")
        if not isinstance(next_state, enum.Enum):
            raise ConfigurationError(
                f"panic_on_attempt: next_state must be an Enum member, got {next_state!r}"
            )
        self._n = n
        self._next = next_state
        self._config = config if config is not None else TaskConfig.minimal()
        self._attempts = 0
        self._lock = threading.Lock()

    def config(self) -> TaskConfig:
        return self._config

    def name(self) -> str:
        return "PanicOnAttempt"

    def with_config(self, config: TaskConfig) -> PanicOnAttempt:
        """A fresh task (attempt count 0) with ``config``."""
        return PanicOnAttempt(self._n, self._next, config)

    def attempts(self) -> int:
        """How many attempts ran so far."""
        return self._attempts

    async def run_bare(self) -> Any:
        with self._lock:
            self._attempts += 1
            k = self._attempts
        if k <= self._n:
            raise TaskExecutionError(f"panic_on_attempt: forced panic on attempt {k}")
        return self._next

    def __repr__(self) -> str:
        return f"panic_on_attempt({self._n}, {self._next!r})"


def panic_on_attempt(n: int, next_state: enum.Enum) -> PanicOnAttempt:
    """A task that fails its first ``n`` attempts, then goes to ``next_state``."""
    return PanicOnAttempt(n, next_state)
