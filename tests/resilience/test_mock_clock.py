"""MockClock: virtual time with autojump, on asyncio and trio."""

from __future__ import annotations

import math

import anyio
import pytest

from cano_dsl import _clock
from cano_dsl._errors import ConfigurationError
from cano_dsl.testing._clock import MockClock


def test_context_manager_installs_and_restores() -> None:
    before = _clock.get_clock()
    with MockClock(start=5.0) as clock:
        assert _clock.get_clock() is clock
        assert _clock.now() == 5.0
        assert _clock.now_fn() == 5.0
        with MockClock(start=1.0) as inner:
            assert _clock.now() == 1.0
            assert _clock.get_clock() is inner
        assert _clock.get_clock() is clock
    assert _clock.get_clock() is before
    assert _clock.now_fn() != 5.0


def test_default_start_continues_the_system_clock() -> None:
    reading = _clock.now()
    assert MockClock().now() >= reading


def test_advance_moves_time_forward_only() -> None:
    clock = MockClock(start=0.0)
    clock.advance(1.5)
    clock.jump_to(1.0)  # behind: no-op
    assert clock.now() == 1.5
    clock.jump_to(4.0)
    assert clock.now() == 4.0
    with pytest.raises(ConfigurationError):
        clock.advance(-1)
    with pytest.raises(ConfigurationError):
        clock.advance(math.nan)


def test_uninstall_without_install_is_an_error() -> None:
    with pytest.raises(RuntimeError):
        MockClock().uninstall()


@pytest.mark.anyio
async def test_autojump_wakes_a_lone_sleeper() -> None:
    with MockClock(start=0.0) as clock:
        await _clock.sleep(3600)
        assert clock.now() == 3600.0


@pytest.mark.anyio
async def test_zero_and_negative_sleeps_do_not_move_time() -> None:
    with MockClock(start=0.0) as clock:
        await _clock.sleep(0)
        await _clock.sleep(-1)
        assert clock.now() == 0.0


@pytest.mark.anyio
async def test_concurrent_sleepers_wake_in_deadline_order() -> None:
    with MockClock(start=0.0) as clock:
        woke: list[tuple[str, float]] = []

        async def nap(name: str, seconds: float) -> None:
            await _clock.sleep(seconds)
            woke.append((name, clock.now()))

        async with anyio.create_task_group() as tg:
            tg.start_soon(nap, "c", 30)
            tg.start_soon(nap, "a", 10)
            tg.start_soon(nap, "b", 20)
            tg.start_soon(nap, "a2", 10)
        assert [n for n, _ in woke][:2] in (["a", "a2"], ["a2", "a"])
        assert woke[2:] == [("b", 20.0), ("c", 30.0)]


@pytest.mark.anyio
async def test_autojump_waits_for_busy_tasks() -> None:
    with MockClock(start=0.0) as clock:
        steps: list[float] = []

        async def busy() -> None:
            for _ in range(20):
                await anyio.lowlevel.checkpoint()
            steps.append(clock.now())

        async with anyio.create_task_group() as tg:
            tg.start_soon(busy)
            await _clock.sleep(5)
        assert steps == [0.0]  # the busy task finished before time jumped
        assert clock.now() == 5.0


@pytest.mark.anyio
async def test_sleeper_blocked_on_an_event_lets_time_jump() -> None:
    with MockClock(start=0.0) as clock:
        event = anyio.Event()
        seen: list[float] = []

        async def setter() -> None:
            await _clock.sleep(7)
            event.set()

        async def waiter() -> None:
            await event.wait()
            seen.append(clock.now())

        async with anyio.create_task_group() as tg:
            tg.start_soon(waiter)
            tg.start_soon(setter)
        assert seen == [7.0]


@pytest.mark.anyio
async def test_manual_mode_only_moves_on_advance() -> None:
    with MockClock(start=0.0, autojump=False) as clock:
        done = anyio.Event()

        async def nap() -> None:
            await _clock.sleep(10)
            done.set()

        async with anyio.create_task_group() as tg:
            tg.start_soon(nap)
            await anyio.wait_all_tasks_blocked()
            assert clock.pending_sleepers == 1
            assert clock.next_deadline == 10.0
            clock.advance(9)
            await anyio.wait_all_tasks_blocked()
            assert not done.is_set()
            clock.advance(1)
            await done.wait()
        assert clock.pending_sleepers == 0


@pytest.mark.anyio
async def test_cancelling_a_driving_sleeper_does_not_strand_others() -> None:
    with MockClock(start=0.0) as clock:
        woke: list[float] = []

        async def victim(scope: anyio.CancelScope) -> None:
            with scope:
                await _clock.sleep(1000)

        async def sleeper() -> None:
            await _clock.sleep(20)
            woke.append(clock.now())

        async with anyio.create_task_group() as tg:
            scope = anyio.CancelScope()
            tg.start_soon(victim, scope)
            await anyio.lowlevel.checkpoint()  # victim registers and starts driving
            tg.start_soon(sleeper)
            await anyio.lowlevel.checkpoint()
            scope.cancel()
        assert woke == [20.0]
        assert clock.now() == 20.0


@pytest.mark.anyio
async def test_infinite_sleep_alone_does_not_jump_time() -> None:
    with MockClock(start=0.0) as clock:
        with anyio.move_on_after(0.05):
            await _clock.sleep(math.inf)
        assert clock.now() == 0.0


@pytest.mark.anyio
async def test_retry_style_backoff_sleeps_take_virtual_time() -> None:
    with MockClock(start=0.0) as clock:
        for delay in (0.1, 0.2, 0.4, 0.8, 1.6, 3.2, 6.4, 12.8, 25.6, 30.0):
            await _clock.sleep(delay)
        assert clock.now() == pytest.approx(81.1)
