"""The one place that knows how to ask for the ``otel`` extra."""

from __future__ import annotations

import importlib
from types import ModuleType

__all__ = ["OTEL_HINT", "require"]

OTEL_HINT = "pip install 'cano-dsl[otel]'"
"""The install command named by the `ImportError` of an OpenTelemetry adapter."""


def require(module: str, what: str) -> ModuleType:
    """Import ``module`` (an ``opentelemetry`` module) or raise an `ImportError` that
    says which extra to install."""
    try:
        return importlib.import_module(module)
    except ImportError as exc:
        raise ImportError(
            f"{what} needs the OpenTelemetry API ({module} is missing): {OTEL_HINT}",
            name=exc.name,
        ) from exc
