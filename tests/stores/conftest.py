"""Fixtures shared by the checkpoint-store tests."""

from __future__ import annotations

import os

import pytest

PG_ENV = "CANO_DSL_TEST_POSTGRES_DSN"


@pytest.fixture
def postgres_dsn() -> str:
    dsn = os.environ.get(PG_ENV)
    if not dsn:
        pytest.skip(
            f"no PostgreSQL server: set {PG_ENV}, e.g. by running .ci/postgres.sh "
            "(`source .ci/postgres.sh`)"
        )
    return dsn
