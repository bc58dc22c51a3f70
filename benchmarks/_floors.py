"""What the checkpoint benchmarks share: the raw-driver floors' schema and statements,
and the interleaved best-of-N timer (variants alternate within a round so that
background load hits them alike)."""

from __future__ import annotations

import sqlite3
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

SQLITE_DDL = """CREATE TABLE IF NOT EXISTS t (
    workflow_id TEXT NOT NULL, sequence INTEGER NOT NULL, state TEXT NOT NULL,
    task_id TEXT NOT NULL, output_blob BLOB, kind SMALLINT NOT NULL DEFAULT 0,
    workflow_version INTEGER NOT NULL DEFAULT 0, PRIMARY KEY (workflow_id, sequence)
) WITHOUT ROWID"""
SQLITE_INSERT = "INSERT INTO t VALUES (?, ?, ?, ?, ?, ?, ?)"
PG_INSERT = (
    "INSERT INTO {t} (workflow_id, sequence, state, task_id, output_blob, kind, "
    "workflow_version) VALUES (%s, %s, %s, %s, %s, %s, %s)"
)


def params(wid: str, seq: int) -> tuple[Any, ...]:
    """One floor row's INSERT parameters."""
    return (wid, seq, "STATE", "bench.Task", None, 0, 0)


def raw_sqlite(path: Path, synchronous: str) -> sqlite3.Connection:
    """A raw connection like the store's: WAL, the given ``synchronous``."""
    conn = sqlite3.connect(path, check_same_thread=False)
    conn.execute("PRAGMA journal_mode=WAL")
    conn.execute(f"PRAGMA synchronous={synchronous}")
    conn.execute(SQLITE_DDL)
    conn.commit()
    return conn


async def best_interleaved(
    variants: dict[str, Callable[[], Awaitable[float]]], rounds: int
) -> dict[str, float]:
    """Best time of each variant over ``rounds`` rounds, interleaved within a round."""
    best = dict.fromkeys(variants, float("inf"))
    for _ in range(rounds):
        for name, measure in variants.items():
            best[name] = min(best[name], await measure())
    return best
