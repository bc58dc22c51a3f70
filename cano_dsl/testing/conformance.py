"""The checkpoint-store conformance suite: the `CheckpointStore` contract as checks.

Every store shipped with cano_dsl runs it, and so can yours. Two ways in:

* ``await run_conformance(make_store)`` runs every check (``make_store`` is called
  once per check and may be sync or async; a store with ``aclose()`` is closed after
  its check) and raises `AssertionError` naming the first check that fails.
* Subclass `CheckpointStoreConformance` in a pytest module named ``Test...`` and give it
  a ``make_store`` fixture returning such a factory: one pytest test per check, on
  every anyio backend your ``anyio_backend`` fixture lists.

Each check writes under fresh, random workflow ids, so a factory may hand back stores
that share one database.

Two checks feed a store values some databases cannot hold (a label with a lone surrogate
or a NUL, odd workflow ids). A store may hold them (and then must give them back
exactly) or refuse them with `CheckpointStoreError` or `ConfigurationError`; either way
the appends running at the same moment must all land. The suite does not demand that a
store refuse bad workflow ids: the engine checks every id before it reaches a store
(`Workflow.with_workflow_id`, `Workflow.resume_from`), and the shipped stores check
them again.

The `CLAIM_CHECKS` (the optional ``claim`` method: one owner
per run) run only for stores that have ``claim``.
"""

from __future__ import annotations

import inspect
import uuid
from collections.abc import Awaitable, Callable, Iterable
from typing import Any

import anyio

from .._errors import CheckpointStoreError, ConfigurationError, RunClaimedError
from ..stores._row import CheckpointRow, CheckpointStore, RowKind

__all__ = [
    "CHECKS",
    "CLAIM_CHECKS",
    "CheckpointStoreConformance",
    "StoreFactory",
    "can_claim",
    "run_check",
    "run_conformance",
]

StoreFactory = Callable[[], CheckpointStore | Awaitable[CheckpointStore]]
"""Makes the store under test: a function returning a `CheckpointStore` or an awaitable
of one (an ``async def``)."""
Check = Callable[[CheckpointStore, str], Awaitable[None]]


def _ids(prefix: str, n: int) -> list[str]:
    return [f"{prefix}-{i}" for i in range(n)]


def _seqs(rows: list[CheckpointRow]) -> list[int]:
    return [row.sequence for row in rows]


async def _expect_conflict(store: CheckpointStore, workflow_id: str, row: CheckpointRow) -> str:
    try:
        await store.append(workflow_id, row)
    except CheckpointStoreError as exc:
        assert "checkpoint conflict" in str(exc), f"conflict error should say so: {exc}"
        return str(exc)
    raise AssertionError(
        f"appending a second row at ({workflow_id!r}, {row.sequence}) did not raise "
        "CheckpointStoreError"
    )


async def check_append_then_load_in_order(store: CheckpointStore, prefix: str) -> None:
    wid = f"{prefix}-run"
    rows = [CheckpointRow(i, f"S{i}", f"task-{i}") for i in range(5)]
    for row in rows:
        await store.append(wid, row)
    assert await store.load_run(wid) == rows


async def check_out_of_order_appends_load_sorted(store: CheckpointStore, prefix: str) -> None:
    wid = f"{prefix}-run"
    for seq in (7, 2, 11, 0, 5, 1000, 3):
        await store.append(wid, CheckpointRow(seq, f"S{seq}", "t"))
    assert _seqs(await store.load_run(wid)) == [0, 2, 3, 5, 7, 11, 1000]


async def check_duplicate_rejected_first_row_kept(store: CheckpointStore, prefix: str) -> None:
    wid = f"{prefix}-run"
    first = CheckpointRow(0, "FIRST", "t1", b'{"a":1}')
    await store.append(wid, first)
    await store.append(wid, CheckpointRow(1, "NEXT", "t2"))
    message = await _expect_conflict(store, wid, CheckpointRow(0, "SECOND", "t9", b"x"))
    assert "sequence 0" in message, f"conflict error should name the sequence: {message}"
    loaded = await store.load_run(wid)
    assert loaded == [first, CheckpointRow(1, "NEXT", "t2")], loaded


async def check_workflow_ids_isolated(store: CheckpointStore, prefix: str) -> None:
    a, b, c = f"{prefix}-run", f"{prefix}-run-1", f"{prefix}-ru"  # prefixes of each other
    await store.append(a, CheckpointRow(0, "A0", "t"))
    await store.append(b, CheckpointRow(0, "B0", "t"))  # same sequence, other id: fine
    await store.append(b, CheckpointRow(1, "B1", "t"))
    await store.append(c, CheckpointRow(5, "C5", "t"))
    assert [r.state for r in await store.load_run(a)] == ["A0"]
    assert [r.state for r in await store.load_run(b)] == ["B0", "B1"]
    assert [r.state for r in await store.load_run(c)] == ["C5"]


async def check_clear_removes_only_that_id(store: CheckpointStore, prefix: str) -> None:
    a, b = f"{prefix}-a", f"{prefix}-b"
    for seq in range(3):
        await store.append(a, CheckpointRow(seq, "A", "t"))
        await store.append(b, CheckpointRow(seq, "B", "t"))
    await store.clear(a)
    assert await store.load_run(a) == []
    assert _seqs(await store.load_run(b)) == [0, 1, 2]


async def check_clear_unknown_id_is_fine(store: CheckpointStore, prefix: str) -> None:
    await store.clear(f"{prefix}-never-written")
    await store.clear(f"{prefix}-never-written")


async def check_append_after_clear_starts_over(store: CheckpointStore, prefix: str) -> None:
    wid = f"{prefix}-run"
    await store.append(wid, CheckpointRow(0, "OLD", "t"))
    await store.clear(wid)
    await store.append(wid, CheckpointRow(0, "NEW", "t"))
    assert [r.state for r in await store.load_run(wid)] == ["NEW"]


async def check_unknown_id_loads_empty(store: CheckpointStore, prefix: str) -> None:
    loaded = await store.load_run(f"{prefix}-never-written")
    assert loaded == [], loaded
    assert isinstance(loaded, list)


async def check_loaded_list_is_callers_own(store: CheckpointStore, prefix: str) -> None:
    wid = f"{prefix}-run"
    await store.append(wid, CheckpointRow(0, "A", "t"))
    loaded = await store.load_run(wid)
    loaded.clear()
    assert _seqs(await store.load_run(wid)) == [0]


async def check_blobs_round_trip(store: CheckpointStore, prefix: str) -> None:
    wid = f"{prefix}-run"
    blobs: list[bytes | None] = [
        None,
        b"",
        bytes(range(256)),
        b"\x00\x00\x00",
        '{"cursor": "é✓ 😀"}'.encode(),
        bytes(range(256)) * 4096,  # 1 MiB
    ]
    for seq, blob in enumerate(blobs):
        await store.append(wid, CheckpointRow(seq, "S", "t", output_blob=blob))
    loaded = [row.output_blob for row in await store.load_run(wid)]
    assert loaded == blobs, "blobs did not round-trip (None and b'' must stay distinct)"


async def check_fields_round_trip(store: CheckpointStore, prefix: str) -> None:
    wid = f"{prefix}-run-é ✓'\"%_"
    rows = [
        CheckpointRow(0, "START", "pkg.mod.Task", kind=RowKind.STATE_ENTRY),
        CheckpointRow(1, "SAGA", "pkg.Comp", b"{}", RowKind.COMPENSATION_COMPLETION, 1),
        CheckpointRow(2, "STEP", "pkg.Stepped", b"[1]", RowKind.STEP_CURSOR, 7),
        CheckpointRow(3, "", "", workflow_version=2**31 - 1),
        CheckpointRow(4, "ÉTAT ✓ 'q' \"dq\"", "tâche\n\t"),
        CheckpointRow(2**63 - 1, "LAST", "t", workflow_version=3),
    ]
    for row in rows:
        await store.append(wid, row)
    loaded = await store.load_run(wid)
    assert loaded == rows, loaded
    assert all(type(row.kind) is RowKind for row in loaded), "kind must load as RowKind"


async def check_data_patch_round_trips(store: CheckpointStore, prefix: str) -> None:
    """``data_patch`` (run data, docs/run-data.md) comes back as given, on every row kind,
    None and b"" distinct, next to an ``output_blob``."""
    wid = f"{prefix}-run"
    patch = b'{"t":"dict","p":[["s",[],{"order":"\xc3\xa9"}]]}'
    rows = [
        CheckpointRow(0, "A", "t", data_patch=patch),
        CheckpointRow(1, "A", "t", data_patch=None),
        CheckpointRow(2, "B", "t", data_patch=b""),
        CheckpointRow(3, "C", "c", b"[1]", RowKind.COMPENSATION_COMPLETION, 2, b"{}"),
        CheckpointRow(4, "D", "s", b"7", RowKind.STEP_CURSOR, data_patch=bytes(range(256)) * 64),
    ]
    for row in rows:
        await store.append(wid, row)
    loaded = await store.load_run(wid)
    got = [row.data_patch for row in loaded]
    assert got == [r.data_patch for r in rows], (
        "data_patch did not round-trip: a store must keep CheckpointRow.data_patch (run "
        f"data) as given, None and b'' distinct; got {[g[:20] if g else g for g in got]}"
    )
    assert loaded == rows, loaded


async def check_concurrent_appends_all_land(store: CheckpointStore, prefix: str) -> None:
    ids = _ids(prefix, 4)

    async def writer(wid: str) -> None:
        for seq in range(16):
            await store.append(wid, CheckpointRow(seq, f"S{seq}", "t"))

    async with anyio.create_task_group() as tg:
        for wid in ids:
            tg.start_soon(writer, wid)
        for seq in range(16, 48):  # one id also gets concurrent appends of its own
            tg.start_soon(store.append, ids[0], CheckpointRow(seq, "X", "t"))
    assert _seqs(await store.load_run(ids[0])) == list(range(48))
    for wid in ids[1:]:
        assert _seqs(await store.load_run(wid)) == list(range(16))


async def check_racing_same_sequence_one_winner(store: CheckpointStore, prefix: str) -> None:
    wid = f"{prefix}-run"
    winners: list[int] = []
    losers: list[str] = []

    async def contender(i: int) -> None:
        try:
            await store.append(wid, CheckpointRow(0, f"C{i}", f"t{i}"))
        except CheckpointStoreError as exc:
            losers.append(str(exc))
        else:
            winners.append(i)

    async with anyio.create_task_group() as tg:
        for i in range(16):
            tg.start_soon(contender, i)
    assert len(winners) == 1, f"expected exactly one winner, got {winners}"
    assert len(losers) == 15 and all("checkpoint conflict" in m for m in losers), losers
    assert [r.state for r in await store.load_run(wid)] == [f"C{winners[0]}"]


_REFUSALS = (CheckpointStoreError, ConfigurationError)


async def _append_among_neighbours(
    store: CheckpointStore, prefix: str, odd: list[tuple[str, CheckpointRow]]
) -> dict[str, Exception | None]:
    """Append ``odd`` rows concurrently with good rows under other ids (so a store that
    commits in groups puts them in one batch); check every good row landed and return
    each odd append's outcome (``None`` or the refusal)."""
    good = [(f"{prefix}-good-{i}", CheckpointRow(0, f"G{i}", "t")) for i in range(6)]
    outcomes: dict[str, Exception | None] = {}

    async def put(wid: str, row: CheckpointRow) -> None:
        try:
            await store.append(wid, row)
        except Exception as exc:
            outcomes[wid] = exc
        else:
            outcomes[wid] = None

    async with anyio.create_task_group() as tg:
        for wid, row in good[:3]:
            tg.start_soon(put, wid, row)
        for wid, row in odd:
            tg.start_soon(put, wid, row)
        for wid, row in good[3:]:
            tg.start_soon(put, wid, row)
    for wid, row in good:
        assert outcomes[wid] is None, (
            f"an ordinary append ({wid!r}) running next to appends of unusual values "
            f"failed: {outcomes[wid]!r}; one bad op must fail alone"
        )
        assert await store.load_run(wid) == [row], (
            f"an ordinary append ({wid!r}) next to appends of unusual values returned "
            "but its row is not there: a bad op must not lose its neighbours"
        )
    for wid, row in odd:
        outcome = outcomes[wid]
        assert outcome is None or isinstance(outcome, _REFUSALS), (
            f"appending {row!r} under {wid!r} raised {outcome!r}; a store that cannot hold "
            "a value must refuse it with CheckpointStoreError (or ConfigurationError)"
        )
    # the store carries on as usual
    after = CheckpointRow(0, "AFTER", "t")
    await store.append(f"{prefix}-after", after)
    assert await store.load_run(f"{prefix}-after") == [after]
    return {wid: outcomes[wid] for wid, _ in odd}


async def check_unstorable_row_fails_alone(store: CheckpointStore, prefix: str) -> None:
    odd = [
        (f"{prefix}-surrogate", CheckpointRow(0, "S\udcff", "t")),  # os.fsdecode's escape
        (f"{prefix}-nul", CheckpointRow(0, "S", "t\x00t")),
        (f"{prefix}-both", CheckpointRow(1, "\x00", "\udc80")),
    ]
    outcomes = await _append_among_neighbours(store, prefix, odd)
    for wid, row in odd:
        loaded = await store.load_run(wid)
        if outcomes[wid] is None:
            assert loaded == [row], f"{row!r} was accepted but loads back as {loaded!r}"
        else:
            assert loaded == [], f"{row!r} was refused but left {loaded!r} behind"


async def check_unusual_ids_fail_alone(store: CheckpointStore, prefix: str) -> None:
    row = CheckpointRow(0, "S", "t")
    odd = [
        (f"{prefix}-\udcff", row),
        (f"{prefix}-\x00", row),
        (f"{prefix}-" + "x" * 4096, row),
    ]
    outcomes = await _append_among_neighbours(store, prefix, odd)
    for wid, _ in odd:
        try:
            loaded = await store.load_run(wid)
        except _REFUSALS:
            assert outcomes[wid] is not None, f"id {wid[:40]!r}... accepted by append only"
            continue
        expected = [] if outcomes[wid] is not None else [row]
        assert loaded == expected, f"id {wid[:40]!r}...: loads {loaded!r}, expected {expected!r}"


CHECKS: dict[str, Check] = {
    "append_then_load_in_order": check_append_then_load_in_order,
    "out_of_order_appends_load_sorted": check_out_of_order_appends_load_sorted,
    "duplicate_rejected_first_row_kept": check_duplicate_rejected_first_row_kept,
    "workflow_ids_isolated": check_workflow_ids_isolated,
    "clear_removes_only_that_id": check_clear_removes_only_that_id,
    "clear_unknown_id_is_fine": check_clear_unknown_id_is_fine,
    "append_after_clear_starts_over": check_append_after_clear_starts_over,
    "unknown_id_loads_empty": check_unknown_id_loads_empty,
    "loaded_list_is_callers_own": check_loaded_list_is_callers_own,
    "blobs_round_trip": check_blobs_round_trip,
    "fields_round_trip": check_fields_round_trip,
    "data_patch_round_trips": check_data_patch_round_trips,
    "concurrent_appends_all_land": check_concurrent_appends_all_land,
    "racing_same_sequence_one_winner": check_racing_same_sequence_one_winner,
    "unstorable_row_fails_alone": check_unstorable_row_fails_alone,
    "unusual_ids_fail_alone": check_unusual_ids_fail_alone,
}
"""Every conformance check by name, in the order `run_conformance` runs them."""


async def _claim_of(store: Any, workflow_id: str) -> Any:
    try:
        held = await store.claim(workflow_id)
    except RunClaimedError as exc:
        raise AssertionError(f"claiming a free run {workflow_id!r} was refused: {exc}") from exc
    assert callable(getattr(held, "release", None)), (
        f"claim({workflow_id!r}) returned {held!r}, which has no release()"
    )
    return held


async def _expect_claimed(store: Any, workflow_id: str) -> None:
    try:
        extra = await store.claim(workflow_id)
    except RunClaimedError as exc:
        assert exc.workflow_id == workflow_id, f"RunClaimedError names {exc.workflow_id!r}"
        return
    await extra.release()
    raise AssertionError(
        f"a second claim of {workflow_id!r} while the first is held did not raise RunClaimedError"
    )


async def check_second_claim_refused(store: Any, prefix: str) -> None:
    wid = f"{prefix}-run"
    held = await _claim_of(store, wid)
    try:
        await _expect_claimed(store, wid)
        await _expect_claimed(store, wid)  # refused again: a refusal takes nothing
    finally:
        await held.release()


async def check_released_claim_can_be_taken_again(store: Any, prefix: str) -> None:
    wid = f"{prefix}-run"
    for _ in range(3):
        held = await _claim_of(store, wid)
        await held.release()
    held = await _claim_of(store, wid)
    await held.release()
    await held.release()  # idempotent
    again = await _claim_of(store, wid)  # a second release did not free someone else's
    try:
        await _expect_claimed(store, wid)
    finally:
        await again.release()


async def check_claims_of_different_ids_independent(store: Any, prefix: str) -> None:
    a, b, c = f"{prefix}-run", f"{prefix}-run-1", f"{prefix}-ru"
    held = [await _claim_of(store, wid) for wid in (a, b, c)]
    try:
        await _expect_claimed(store, b)
        await held[1].release()
        held[1] = await _claim_of(store, b)  # b is free again, a and c still held
        await _expect_claimed(store, a)
        await _expect_claimed(store, c)
    finally:
        for h in held:
            await h.release()


CLAIM_CHECKS: dict[str, Check] = {
    "second_claim_refused": check_second_claim_refused,
    "released_claim_can_be_taken_again": check_released_claim_can_be_taken_again,
    "claims_of_different_ids_independent": check_claims_of_different_ids_independent,
}
"""The checks of the optional ``claim`` method, run for stores that have one."""


async def _make(make_store: StoreFactory) -> CheckpointStore:
    store = make_store()
    if inspect.isawaitable(store):
        store = await store
    if not isinstance(store, CheckpointStore):
        raise TypeError(f"make_store() returned {store!r}, which is not a CheckpointStore")
    return store


async def _aclose(store: Any) -> None:
    aclose = getattr(store, "aclose", None)
    if aclose is not None:
        await aclose()


def can_claim(store: Any) -> bool:
    """Whether ``store`` has the optional ``claim`` method (the `CLAIM_CHECKS` apply)."""
    return callable(getattr(store, "claim", None))


async def run_check(name: str, make_store: StoreFactory) -> None:
    """Run the check called ``name`` (from `CHECKS` or `CLAIM_CHECKS`) against a fresh
    store from ``make_store``. A claim check of a store without ``claim`` raises
    `AssertionError`: ask `can_claim` first."""
    check = CHECKS[name] if name in CHECKS else CLAIM_CHECKS[name]
    store = await _make(make_store)
    if name in CLAIM_CHECKS and not can_claim(store):
        await _aclose(store)
        raise AssertionError(
            f"checkpoint store conformance check {name!r}: {store!r} has no claim method"
        )
    try:
        await check(store, f"conformance-{name}-{uuid.uuid4().hex[:12]}")
    except AssertionError as exc:
        raise AssertionError(f"checkpoint store conformance check {name!r} failed: {exc}") from exc
    finally:
        await _aclose(store)


async def run_conformance(make_store: StoreFactory, *, skip: Iterable[str] = ()) -> list[str]:
    """Run every check in `CHECKS`, and the `CLAIM_CHECKS` when the store has
    ``claim`` (except those named in ``skip``), and return the names that ran; the
    first failure raises `AssertionError` naming its check."""
    skipped = set(skip)
    unknown = skipped - CHECKS.keys() - CLAIM_CHECKS.keys()
    if unknown:
        raise ValueError(f"unknown conformance checks: {sorted(unknown)}")
    ran = []
    for name in CHECKS:
        if name not in skipped:
            await run_check(name, make_store)
            ran.append(name)
    probe = await _make(make_store)
    claims = can_claim(probe)
    await _aclose(probe)
    if claims:
        for name in CLAIM_CHECKS:
            if name not in skipped:
                await run_check(name, make_store)
                ran.append(name)
    return ran


def _anyio_marks() -> list[Any]:
    try:
        import pytest
    except ImportError:  # pragma: no cover - run_conformance still works
        return []
    return [pytest.mark.anyio]


class CheckpointStoreConformance:
    """Pytest base class: one test per conformance check.

    Subclass it as ``class TestMyStore(CheckpointStoreConformance)`` and define a
    ``make_store`` fixture returning a store factory (sync or async callable).
    """

    pytestmark = _anyio_marks()

    async def test_append_then_load_in_order(self, make_store: StoreFactory) -> None:
        await run_check("append_then_load_in_order", make_store)

    async def test_out_of_order_appends_load_sorted(self, make_store: StoreFactory) -> None:
        await run_check("out_of_order_appends_load_sorted", make_store)

    async def test_duplicate_rejected_first_row_kept(self, make_store: StoreFactory) -> None:
        await run_check("duplicate_rejected_first_row_kept", make_store)

    async def test_workflow_ids_isolated(self, make_store: StoreFactory) -> None:
        await run_check("workflow_ids_isolated", make_store)

    async def test_clear_removes_only_that_id(self, make_store: StoreFactory) -> None:
        await run_check("clear_removes_only_that_id", make_store)

    async def test_clear_unknown_id_is_fine(self, make_store: StoreFactory) -> None:
        await run_check("clear_unknown_id_is_fine", make_store)

    async def test_append_after_clear_starts_over(self, make_store: StoreFactory) -> None:
        await run_check("append_after_clear_starts_over", make_store)

    async def test_unknown_id_loads_empty(self, make_store: StoreFactory) -> None:
        await run_check("unknown_id_loads_empty", make_store)

    async def test_loaded_list_is_callers_own(self, make_store: StoreFactory) -> None:
        await run_check("loaded_list_is_callers_own", make_store)

    async def test_blobs_round_trip(self, make_store: StoreFactory) -> None:
        await run_check("blobs_round_trip", make_store)

    async def test_fields_round_trip(self, make_store: StoreFactory) -> None:
        await run_check("fields_round_trip", make_store)

    async def test_data_patch_round_trips(self, make_store: StoreFactory) -> None:
        await run_check("data_patch_round_trips", make_store)

    async def test_concurrent_appends_all_land(self, make_store: StoreFactory) -> None:
        await run_check("concurrent_appends_all_land", make_store)

    async def test_racing_same_sequence_one_winner(self, make_store: StoreFactory) -> None:
        await run_check("racing_same_sequence_one_winner", make_store)

    async def test_unstorable_row_fails_alone(self, make_store: StoreFactory) -> None:
        await run_check("unstorable_row_fails_alone", make_store)

    async def test_unusual_ids_fail_alone(self, make_store: StoreFactory) -> None:
        await run_check("unusual_ids_fail_alone", make_store)

    # -- claims: skipped for a store without ``claim`` -----------------------------------

    async def _run_claim_check(self, name: str, make_store: StoreFactory) -> None:
        probe = await _make(make_store)
        claims = can_claim(probe)
        await _aclose(probe)
        if not claims:
            import pytest

            pytest.skip("the store has no claim method (claims are optional)")
        await run_check(name, make_store)

    async def test_second_claim_refused(self, make_store: StoreFactory) -> None:
        await self._run_claim_check("second_claim_refused", make_store)

    async def test_released_claim_can_be_taken_again(self, make_store: StoreFactory) -> None:
        await self._run_claim_check("released_claim_can_be_taken_again", make_store)

    async def test_claims_of_different_ids_independent(self, make_store: StoreFactory) -> None:
        await self._run_claim_check("claims_of_different_ids_independent", make_store)
