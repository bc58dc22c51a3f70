"""@task on classes and functions, the base-class form, and decoration-time errors."""

from __future__ import annotations

import enum

import pytest

from cano_dsl import (
    BatchTask,
    ConfigurationError,
    Resources,
    Task,
    TaskConfig,
    TaskDefinitionError,
    TaskResult,
    Workflow,
    batch,
    router,
    task,
)


class Step(enum.Enum):
    A = 1
    B = 2
    DONE = 3


class Other(enum.Enum):
    X = 1


@task
async def bare_fn() -> Step:
    return Step.DONE


@task(config=TaskConfig.minimal(), name="custom")
async def res_fn(res: Resources) -> Step:
    assert isinstance(res, Resources)
    return Step.DONE


def test_function_task_shape() -> None:
    assert isinstance(bare_fn, Task)
    assert bare_fn.name() == f"{__name__}.bare_fn"
    assert bare_fn.config() == TaskConfig.default()
    assert res_fn.name() == "custom"
    assert res_fn.config() == TaskConfig.minimal()


@pytest.mark.anyio
async def test_function_tasks_run() -> None:
    assert await bare_fn.run(Resources()) == Step.DONE
    assert await bare_fn.run_bare() == Step.DONE
    assert await res_fn.run(Resources()) == Step.DONE
    assert await bare_fn() == Step.DONE


def test_class_task_stays_the_users_class() -> None:
    @task(state=Step)
    class Fetch:
        """Fetches."""

        def __init__(self, n: int) -> None:
            self.n = n

        async def run(self, res: Resources) -> Step:
            return Step.B

        def helper(self) -> int:
            return self.n

    t = Fetch(3)
    assert Fetch.__name__ == "Fetch" and Fetch.__doc__ == "Fetches."
    assert isinstance(t, Task)
    assert t.helper() == 3
    assert t.config() == TaskConfig.default()
    assert t.name() == f"{__name__}.{Fetch.__qualname__}"


def test_optional_members_as_attributes() -> None:
    @task
    class Named:
        name = "my-name"
        config = TaskConfig.minimal()

        async def run_bare(self) -> Step:
            return Step.DONE

    wf = Workflow.bare().register(Step.A, Named()).add_exit_state(Step.DONE)
    assert wf.run_sync(Step.A) == Step.DONE


def test_base_class_form() -> None:
    class Explicit(Task[Step]):
        async def run(self, res: Resources) -> TaskResult[Step]:
            return TaskResult.single(Step.DONE)

    wf = Workflow.bare().register(Step.A, Explicit()).add_exit_state(Step.DONE)
    assert wf.run_sync(Step.A, backend="trio") == Step.DONE


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ({}, "define exactly one of `run` or `run_bare`; neither found"),
        ({"run": "async", "run_bare": "async"}, "not both"),
        ({"run": "sync"}, "`run` must be `async def`"),
        ({"run": "async", "rnu_bare": "sync"}, "did you mean `run_bare`?"),
        ({"run": "async", "config": "async"}, "`config` must be a plain method"),
    ],
)
def test_task_definition_errors(body: dict[str, str], message: str) -> None:
    ns: dict[str, object] = {}
    for name, kind in body.items():
        if kind == "async":

            async def f(self: object, *a: object) -> Step:
                return Step.DONE

            ns[name] = f
        else:

            def g(self: object, *a: object) -> Step:
                return Step.DONE

            ns[name] = g
    cls = type("Broken", (), ns)
    with pytest.raises(TaskDefinitionError, match=message) as info:
        task(cls)
    assert "Broken" in str(info.value)
    assert info.value.category == "configuration"


def test_base_class_form_is_checked_at_definition() -> None:
    with pytest.raises(TaskDefinitionError, match="Incomplete"):

        class Incomplete(Task[Step]):
            pass

    with pytest.raises(TaskDefinitionError, match="did you mean `process_item`"):

        class Typo(BatchTask[Step, int, int]):
            async def load(self, res: Resources) -> list[int]:
                return []

            async def process_item(self, item: int) -> int:
                return item

            async def proces_item(self, item: int) -> int:
                return item

            async def finish(self, res: Resources, outputs: list[object]) -> Step:
                return Step.DONE


def test_function_task_errors() -> None:
    def sync_fn() -> Step:
        return Step.DONE

    with pytest.raises(TaskDefinitionError, match="must be `async def`"):
        task(sync_fn)

    async def three(a: object, b: object, c: object) -> Step:
        return Step.DONE

    # two parameters are the Resources and the run data (docs/run-data.md)
    with pytest.raises(TaskDefinitionError, match="takes 3"):
        task(three)
    with pytest.raises(TaskDefinitionError):
        task(state=42)  # type: ignore[call-overload]


def test_model_decorators_reject_functions_and_bad_state() -> None:
    async def f() -> None:
        pass

    with pytest.raises(TaskDefinitionError, match="use @task"):
        batch(f)  # type: ignore[type-var]
    with pytest.raises(TaskDefinitionError, match="Enum class"):
        router(state=int)  # type: ignore[arg-type]
    assert task.batch is batch and task.router is router


def test_registration_rejects_what_is_not_a_task() -> None:
    @task
    class T:
        async def run_bare(self) -> Step:
            return Step.DONE

    async def plain() -> Step:
        return Step.DONE

    wf = Workflow.bare()
    with pytest.raises(ConfigurationError, match=r"did you mean `.*T\(\)`"):
        wf.register(Step.A, T)
    with pytest.raises(ConfigurationError, match="decorate it with @task"):
        wf.register(Step.A, plain)
    with pytest.raises(ConfigurationError, match="not a task"):
        wf.register(Step.A, 42)
    with pytest.raises(ConfigurationError, match="Enum member"):
        wf.register("A", T())  # type: ignore[arg-type]
    mixed = wf.register(Step.A, T())
    with pytest.raises(ConfigurationError, match="not a member of this workflow's state Enum"):
        mixed.register(Other.X, T())  # type: ignore[arg-type]
    with pytest.raises(ConfigurationError, match="register_router"):
        wf.register_router(Step.A, T())

    @task(state=Other)
    class ForOther:
        async def run_bare(self) -> Other:
            return Other.X

    with pytest.raises(ConfigurationError, match="declared for states of Other"):
        wf.register(Step.A, ForOther())

    @batch
    class B:
        async def load(self, res: Resources) -> list[int]:
            return []

        async def process_item(self, item: int) -> int:
            return item

        async def finish(self, res: Resources, outputs: list[object]) -> Step:
            return Step.DONE

    with pytest.raises(ConfigurationError, match="expected a @stepped task, got a @batch"):
        wf.register_stepped(Step.A, B())
