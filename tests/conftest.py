"""Every async test runs on asyncio and on trio (anyio's pytest plugin).

Hypothesis: no per-example deadline (the machines are shared and noisy); under CI
(``CI=true``) the examples are derandomized so a landing never depends on a lucky draw.
Run ``HYPOTHESIS_PROFILE=explore pytest`` for a longer random search."""

from __future__ import annotations

import os

import pytest
from hypothesis import settings

settings.register_profile("default", deadline=None)
settings.register_profile("ci", deadline=None, derandomize=True, print_blob=True)
settings.register_profile("explore", deadline=None, max_examples=1000)
settings.load_profile(
    os.environ.get("HYPOTHESIS_PROFILE") or ("ci" if os.environ.get("CI") else "default")
)


@pytest.fixture(
    params=[
        pytest.param("asyncio", id="asyncio"),
        pytest.param("trio", id="trio"),
    ]
)
def anyio_backend(request: pytest.FixtureRequest) -> str:
    return str(request.param)
