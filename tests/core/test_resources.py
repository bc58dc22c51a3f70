"""Resources: lookup errors, lifecycle order, rollback, health, @resource,
@from_resources (REFERENCE §5)."""

from __future__ import annotations

import enum
from typing import Annotated

import attrs
import pytest

from cano_dsl import (
    HealthStatus,
    MemoryStore,
    Res,
    Resource,
    ResourceDuplicateKey,
    ResourceNotFound,
    Resources,
    ResourceTypeMismatch,
    TaskDefinitionError,
    from_resources,
    resource,
)


class Key(enum.Enum):
    STORE = 1
    DB = 2


class Tracked:
    def __init__(
        self, name: str, log: list[str], fail_setup: bool = False, fail_teardown: bool = False
    ) -> None:
        self.name, self.log = name, log
        self.fail_setup, self.fail_teardown = fail_setup, fail_teardown

    async def setup(self) -> None:
        self.log.append(f"setup {self.name}")
        if self.fail_setup:
            raise RuntimeError(f"setup {self.name} failed")

    async def teardown(self) -> None:
        self.log.append(f"teardown {self.name}")
        if self.fail_teardown:
            raise RuntimeError(f"teardown {self.name} failed")


def test_insert_get_and_errors() -> None:
    store = MemoryStore()
    res = Resources().insert("store", store).insert(Key.DB, 42)
    assert res.get("store") is store
    assert res.get("store", MemoryStore) is store
    assert res.get(Key.DB, int) == 42
    with pytest.raises(ResourceNotFound, match="requested type: MemoryStore"):
        res.get("missing", MemoryStore)
    with pytest.raises(ResourceTypeMismatch):
        res.get(Key.DB, MemoryStore)
    with pytest.raises(ResourceDuplicateKey):
        res.insert("store", MemoryStore())
    with pytest.raises(ResourceDuplicateKey):
        res.try_insert(Key.DB, 1)
    assert len(res) == 2 and "store" in res and Key.STORE not in res


def test_enum_and_string_keys_are_distinct() -> None:
    res = Resources().insert("STORE", 1).insert(Key.STORE, 2)
    assert res.get("STORE") == 1 and res.get(Key.STORE) == 2


@pytest.mark.anyio
async def test_setup_fifo_teardown_lifo() -> None:
    log: list[str] = []
    res = Resources()
    for n in "abc":
        res.insert(n, Tracked(n, log))
    await res.setup_all()
    await res.teardown_all()
    assert log == ["setup a", "setup b", "setup c", "teardown c", "teardown b", "teardown a"]


@pytest.mark.anyio
async def test_failed_setup_rolls_back_earlier_ones_in_reverse() -> None:
    log: list[str] = []
    res = Resources()
    res.insert("a", Tracked("a", log)).insert("b", Tracked("b", log))
    res.insert("c", Tracked("c", log, fail_setup=True)).insert("d", Tracked("d", log))
    with pytest.raises(RuntimeError, match="setup c failed"):
        await res.setup_all()
    assert log == ["setup a", "setup b", "setup c", "teardown b", "teardown a"]


@pytest.mark.anyio
async def test_teardown_never_aborts_and_never_raises() -> None:
    log: list[str] = []
    res = Resources()
    res.insert("a", Tracked("a", log)).insert("b", Tracked("b", log, fail_teardown=True))
    res.insert("c", Tracked("c", log))
    await res.teardown_all()
    assert log == ["teardown c", "teardown b", "teardown a"]


@pytest.mark.anyio
async def test_objects_without_hooks_are_fine() -> None:
    res = Resources().insert("n", 3).insert("s", "text")
    await res.setup_all()
    await res.teardown_all()
    assert await res.aggregate_health() == HealthStatus.healthy()


@pytest.mark.anyio
async def test_health_aggregation_worst_first_wins() -> None:
    class H:
        def __init__(self, status: HealthStatus) -> None:
            self.status = status

        async def health(self) -> HealthStatus:
            return self.status

    res = Resources()
    res.insert("ok", H(HealthStatus.healthy()))
    res.insert("d1", H(HealthStatus.degraded("slow")))
    res.insert("u1", H(HealthStatus.unhealthy("down")))
    res.insert("u2", H(HealthStatus.unhealthy("also down")))
    statuses = await res.check_all_health()
    assert list(statuses) == ["ok", "d1", "u1", "u2"]
    assert await res.aggregate_health() == HealthStatus.unhealthy("down")
    assert HealthStatus.degraded("x").is_healthy() is False
    assert await Resources().aggregate_health() == HealthStatus.healthy()


def test_resource_decorator_injects_defaults_and_checks_async() -> None:
    @resource
    class Db:
        async def setup(self) -> None:
            pass

    assert isinstance(Db(), Resource)
    assert hasattr(Db, "teardown") and hasattr(Db, "health")
    with pytest.raises(TaskDefinitionError, match="`teardown` must be `async def`"):

        @resource
        class Bad:
            def teardown(self) -> None:
                pass


def test_from_resources_builds_from_annotated_fields() -> None:
    @from_resources
    @attrs.define
    class Deps:
        store: Annotated[MemoryStore, Res("store")]
        db: Annotated[int, Res(Key.DB)]

    store = MemoryStore()
    deps = Deps.from_resources(Resources().insert("store", store).insert(Key.DB, 7))  # type: ignore[attr-defined]
    assert deps.store is store and deps.db == 7
    with pytest.raises(ResourceNotFound):
        Deps.from_resources(Resources().insert("store", store))  # type: ignore[attr-defined]
    with pytest.raises(ResourceTypeMismatch):
        Deps.from_resources(Resources().insert("store", 1).insert(Key.DB, 7))  # type: ignore[attr-defined]
    with pytest.raises(TaskDefinitionError):

        @from_resources
        @attrs.define
        class Empty:
            x: int
