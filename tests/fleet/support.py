"""Helpers shared by the fleet tests and their child processes."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]


def make_store(url: str) -> Any:
    """The checkpoint store a `store_url` names."""
    if url.startswith("sqlite:"):
        from cano_dsl.stores import SqliteCheckpointStore

        return SqliteCheckpointStore(url.removeprefix("sqlite:"))
    from cano_dsl.stores import PostgresCheckpointStore

    dsn, table = url.rsplit("#", 1)
    return PostgresCheckpointStore(dsn, table=table)


def child_env(**extra: str) -> dict[str, str]:
    """The environment for a child process: this repository on ``PYTHONPATH``."""
    env = dict(os.environ)
    env["PYTHONPATH"] = str(ROOT) + os.pathsep + env.get("PYTHONPATH", "")
    env.update(extra)
    return env
