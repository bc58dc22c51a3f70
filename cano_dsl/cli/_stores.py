"""Store URLs (``sqlite:PATH``, ``postgres:DSN``) and reading run logs for ``runs``."""

from __future__ import annotations

import importlib
import sqlite3
from pathlib import Path
from typing import Any

import attrs

from .._errors import CanoError
from ._load import CliError

__all__ = [
    "RunSummary",
    "StoreUrl",
    "has_fleet_tables",
    "list_runs",
    "open_store",
    "parse_store_url",
    "run_data_json",
]

_TABLE = "cano_checkpoints"
_FLEET_SQLITE = "cano_fleet_runs"


def _summary_sql(table: str) -> str:
    return f"""
SELECT c.workflow_id, agg.n, c.sequence, c.state, c.kind, c.workflow_version
FROM {table} c
JOIN (SELECT workflow_id, COUNT(*) AS n, MAX(sequence) AS last
      FROM {table} GROUP BY workflow_id) agg
  ON c.workflow_id = agg.workflow_id AND c.sequence = agg.last
ORDER BY c.workflow_id
"""


@attrs.frozen
class StoreUrl:
    kind: str
    """``sqlite`` or ``postgres``."""
    location: str
    """The file path or the libpq DSN."""
    text: str


@attrs.frozen
class RunSummary:
    workflow_id: str
    rows: int
    last_sequence: int
    last_state: str
    last_kind: int
    workflow_version: int


def parse_store_url(text: str) -> StoreUrl:
    """``sqlite:PATH`` (also ``sqlite:///abs/path``) or ``postgres:DSN`` (also a bare
    ``postgresql://`` / ``postgres://`` URI)."""
    if text.startswith(("postgresql://", "postgres://")):
        return StoreUrl("postgres", text, text)
    scheme, sep, rest = text.partition(":")
    if sep and scheme == "sqlite":
        path = rest[2:] if rest.startswith("//") else rest
        if path:
            return StoreUrl("sqlite", path, text)
    if sep and scheme in ("postgres", "postgresql") and rest:
        return StoreUrl("postgres", rest, text)
    raise CliError(
        f"bad store URL {text!r}: use sqlite:PATH (for example sqlite:runs.db) or "
        "postgres:DSN (for example postgres:postgresql://user@host/db)"
    )


def open_store(url: StoreUrl, *, must_exist: bool = False, table: str = _TABLE) -> Any:
    """A checkpoint store object for ``url`` (not yet connected); ``table`` names the
    PostgreSQL checkpoint table."""
    if url.kind == "sqlite":
        if must_exist and not Path(url.location).is_file():
            raise CliError(f"no such SQLite checkpoint file: {url.location}")
        from ..stores.sqlite import SqliteCheckpointStore

        return SqliteCheckpointStore(url.location)
    from ..stores.postgres import PostgresCheckpointStore

    try:
        return PostgresCheckpointStore(url.location, table=table)
    except CanoError as exc:
        raise CliError(str(exc)) from exc


def _summaries(rows: list[Any]) -> list[RunSummary]:
    return [
        RunSummary(str(w), int(n), int(seq), str(state), int(kind), int(version))
        for w, n, seq, state, kind, version in rows
    ]


def _list_sqlite(path: str) -> list[RunSummary]:
    if not Path(path).is_file():
        raise CliError(f"no such SQLite checkpoint file: {path}")
    try:
        conn = sqlite3.connect(path)
    except sqlite3.Error as exc:
        raise CliError(f"cannot open {path}: {exc}", 1) from exc
    try:
        tables = {r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type='table'")}
        if "cano_dsl_meta" not in tables or _TABLE not in tables:
            if not tables:
                return []
            raise CliError(f"{path} is not a cano_dsl checkpoint database", 1)
        return _summaries(conn.execute(_summary_sql(_TABLE)).fetchall())
    except sqlite3.DatabaseError as exc:
        raise CliError(f"{path} is not a readable cano_dsl checkpoint database: {exc}", 1) from exc
    finally:
        conn.close()


def _psycopg() -> Any:
    try:
        return importlib.import_module("psycopg")
    except ImportError as exc:
        raise CliError("postgres stores need psycopg 3: pip install 'cano-dsl[postgres]'") from exc


def _list_postgres(dsn: str, table: str) -> list[RunSummary]:
    pg = _psycopg()
    try:
        with pg.connect(dsn, connect_timeout=10) as conn, conn.cursor() as cur:
            cur.execute("SELECT to_regclass(%s)", (table,))
            if cur.fetchone()[0] is None:
                return []
            cur.execute(_summary_sql(table))
            return _summaries(cur.fetchall())
    except pg.Error as exc:
        raise CliError(f"postgres: {exc}", 1) from exc


def list_runs(url: StoreUrl, table: str = _TABLE) -> list[RunSummary]:
    """One summary per workflow id that has rows, by id (``table``: the PostgreSQL
    checkpoint table)."""
    if url.kind == "sqlite":
        return _list_sqlite(url.location)
    return _list_postgres(url.location, table)


def has_fleet_tables(url: StoreUrl, table: str = _TABLE) -> bool:
    """Whether the store's database holds a fleet's run table (``cano_fleet_runs`` on
    SQLite, ``<table>_runs`` on PostgreSQL): only a catalog look-up, nothing is created."""
    if url.kind == "sqlite":
        if not Path(url.location).is_file():
            return False
        try:
            conn = sqlite3.connect(f"{Path(url.location).resolve().as_uri()}?mode=ro", uri=True)
        except sqlite3.Error:
            return False
        try:
            found = conn.execute(
                "SELECT 1 FROM sqlite_master WHERE type='table' AND name=?", (_FLEET_SQLITE,)
            ).fetchone()
            return found is not None
        except sqlite3.DatabaseError:
            return False
        finally:
            conn.close()
    pg = _psycopg()
    try:
        with pg.connect(url.location, connect_timeout=10) as conn, conn.cursor() as cur:
            cur.execute("SELECT to_regclass(%s)", (f"{table}_runs",))
            return bool(cur.fetchone()[0] is not None)
    except pg.Error as exc:
        raise CliError(f"postgres: {exc}", 1) from exc


def run_data_json(rows: list[Any]) -> str | None:
    """The run data as of the last row of ``rows`` (their ``data_patch`` folded), as
    indented JSON; ``None`` when the log carries no run data."""
    import json

    from ..workflow._data import fold

    patches = [(r.sequence, r.data_patch) for r in rows if r.data_patch is not None]
    if not patches:
        return None
    try:
        _, tree = fold(patches)
    except CanoError as exc:
        return f"<unreadable: {exc}>"
    return json.dumps(tree, indent=2, ensure_ascii=False, sort_keys=True)
