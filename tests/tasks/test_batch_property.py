"""Property: for any items, concurrency, failing subset and per-item completion delays,
``finish`` gets exactly one slot per item, in input order, with the right Ok/Err, and
no more than ``max(concurrency, 1)`` items are ever in flight. Delays are scheduling
points, not wall-clock time; every example runs on asyncio and trio."""

from __future__ import annotations

from typing import Any

import anyio
import anyio.lowlevel
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from cano_dsl import Err, Ok, Resources, RetryMode, batch


@batch
class Probe:
    def __init__(
        self, items: list[int], conc: int, failing: set[int], delays: list[int], retries: int
    ) -> None:
        self.items = items
        self.conc = conc
        self.failing = failing
        self.delays = delays
        self.retries = retries
        self.live = 0
        self.peak = 0
        self.calls = [0] * len(items)
        self.outputs: list[Any] | None = None

    def concurrency(self) -> int:
        return self.conc

    def item_retry(self) -> RetryMode:
        return RetryMode.fixed(self.retries, 0)

    async def load(self, res: Resources) -> list[int]:
        return list(range(len(self.items)))

    async def process_item(self, item: int) -> int:
        self.calls[item] += 1
        self.live += 1
        self.peak = max(self.peak, self.live)
        try:
            for _ in range(self.delays[item]):
                await anyio.lowlevel.checkpoint()
        finally:
            self.live -= 1
        if item in self.failing:
            raise ValueError(f"item {item} attempt {self.calls[item]}")
        return self.items[item] * 2

    async def finish(self, res: Resources, outputs: list[Any]) -> str:
        assert self.outputs is None, "finish called twice"
        self.outputs = list(outputs)
        return "done"


@st.composite
def batches(draw: st.DrawFn) -> Probe:
    items = draw(st.lists(st.integers(-1000, 1000), max_size=40))
    n = len(items)
    conc = draw(st.integers(-3, 64))
    failing = draw(st.sets(st.integers(0, max(n - 1, 0)), max_size=n)) if n else set()
    delays = draw(st.lists(st.integers(0, 6), min_size=n, max_size=n))
    retries = draw(st.integers(0, 2))
    return Probe(items, conc, failing, delays, retries)


@pytest.mark.parametrize("backend", ["asyncio", "trio"])
@settings(max_examples=60, deadline=None)
@given(probe=batches())
def test_finish_gets_one_slot_per_item_in_input_order(backend: str, probe: Probe) -> None:
    assert anyio.run(probe.run, Resources(), backend=backend) == "done"
    outputs = probe.outputs
    assert outputs is not None
    assert len(outputs) == len(probe.items)
    for i, (slot, item) in enumerate(zip(outputs, probe.items, strict=True)):
        if i in probe.failing:
            assert isinstance(slot, Err)
            # the raw error of the last attempt, not a RetryExhausted
            assert str(slot.error) == f"item {i} attempt {probe.retries + 1}"
            assert probe.calls[i] == probe.retries + 1
        else:
            assert slot == Ok(item * 2)
            assert probe.calls[i] == 1
    assert probe.peak <= max(probe.conc, 1)
    assert probe.live == 0
