"""Declared transitions: ``to=`` and ``Literal`` return annotations, what `validate`
reports, the run-time check, and the graph's bold declared edges."""

from __future__ import annotations

import enum
from collections.abc import AsyncIterator
from typing import Any, Literal

import pytest

from cano_dsl import (
    CloseReason,
    ConfigurationError,
    JoinConfig,
    JoinStrategy,
    PollOutcome,
    Resources,
    StateFailure,
    StepOutcome,
    TaskConfig,
    TaskDefinitionError,
    TimerOutcome,
    WindowSignal,
    Workflow,
    WorkflowError,
    batch,
    compensatable,
    poll,
    router,
    stepped,
    stream,
    task,
    timer,
)
from cano_dsl.tasks import Task


class Step(enum.Enum):
    A = enum.auto()
    B = enum.auto()
    C = enum.auto()
    DONE = enum.auto()
    FAILED = enum.auto()


class Other(enum.Enum):
    X = enum.auto()


def declared(wf: Workflow[Any], state: Any) -> frozenset[Any] | None:
    to: frozenset[Any] | None = wf._entries[state].to
    return to


def problems(exc: pytest.ExceptionInfo[ConfigurationError]) -> list[str]:
    return [line[4:] for line in str(exc.value).splitlines() if line.startswith("  - ")]


# -- declaring ----------------------------------------------------------------------------


def test_to_declares_the_states_a_task_may_return() -> None:
    @task(to=(Step.B, Step.C))
    async def a() -> Step:
        return Step.B

    @task(to=Step.DONE)  # one state is fine too
    async def b() -> Step:
        return Step.DONE

    @task
    async def c() -> Step:
        return Step.DONE

    wf = Workflow().register(Step.A, a).register(Step.B, b).register(Step.C, c)
    assert declared(wf, Step.A) == {Step.B, Step.C}
    assert declared(wf, Step.B) == {Step.DONE}
    assert declared(wf, Step.C) is None


async def _b_or_c() -> Literal[Step.B, Step.C]:
    return Step.B


async def _union(res: Resources) -> Literal[Step.B] | Literal[Step.DONE]:
    return Step.B


def test_a_literal_return_annotation_is_the_same_declaration() -> None:
    wf = Workflow().register(Step.A, task(_b_or_c)).register(Step.B, task(_union))
    assert declared(wf, Step.A) == {Step.B, Step.C}
    assert declared(wf, Step.B) == {Step.B, Step.DONE}


def test_a_non_literal_annotation_declares_nothing() -> None:
    @task
    async def mixed() -> Literal[Step.B] | Step:
        return Step.B

    @task
    async def strings() -> Literal["B"]:  # type: ignore[empty-body]
        ...

    wf = Workflow().register(Step.A, mixed)
    assert declared(wf, Step.A) is None
    assert declared(Workflow().register(Step.A, strings), Step.A) is None  # type: ignore[arg-type]


def test_an_enum_local_to_a_function_resolves_at_registration() -> None:
    class Local(enum.Enum):
        GO = enum.auto()
        END = enum.auto()

    @task
    async def go() -> Literal[Local.END]:
        return Local.END

    wf = Workflow().register(Local.GO, go).add_exit_state(Local.END)
    assert declared(wf, Local.GO) == {Local.END}


def test_an_unresolvable_literal_annotation_is_an_error_at_registration() -> None:
    @task
    async def go() -> Literal[Missing.END]:  # type: ignore[name-defined]  # noqa: F821
        return Step.DONE

    with pytest.raises(
        ConfigurationError, match=r"cannot be resolved.*declare the states with to="
    ):
        Workflow().register(Step.A, go)


def test_an_unresolvable_annotation_without_literal_is_ignored() -> None:
    @task
    async def go() -> Missing:  # type: ignore[name-defined]  # noqa: F821
        return Step.DONE

    assert declared(Workflow().register(Step.A, go), Step.A) is None


def test_to_and_the_annotation_must_agree() -> None:
    with pytest.raises(TaskDefinitionError, match=r"to=\{B, C\}.*Literal\{B\}"):

        @task(to=(Step.B, Step.C))
        async def a() -> Literal[Step.B]:
            return Step.B

    @task(to=(Step.B,))
    async def same() -> Literal[Step.B]:
        return Step.B

    assert declared(Workflow().register(Step.A, same), Step.A) == {Step.B}


@pytest.mark.parametrize(
    ("to", "message"),
    [
        (Step, "not the Enum class Step"),
        ((), "at least one state"),
        (("B",), "Enum members"),
        ("B", "Enum members"),
        ((Step.B, Other.X), "several Enums"),
    ],
)
def test_to_rejects_what_is_not_states(to: Any, message: str) -> None:
    with pytest.raises(TaskDefinitionError, match=message):

        @task(to=to)
        async def a() -> Step:
            return Step.B


def test_to_must_match_state_and_the_workflow() -> None:
    with pytest.raises(TaskDefinitionError, match="state=Step"):

        @task(state=Step, to=(Other.X,))
        async def a() -> Step:
            return Step.B

    @task(to=(Other.X,))
    async def b() -> Step:
        return Step.B

    with pytest.raises(ConfigurationError, match="not a member of this workflow's state Enum"):
        Workflow().register(Step.A, b)


def test_every_model_takes_to_and_reads_its_returning_method() -> None:
    @router(to=(Step.B, Step.C))
    class Route:
        async def route(self, res: Resources) -> Step:
            return Step.B

    @router
    class RouteAnnotated:
        async def route(self, res: Resources) -> Literal[Step.B]:
            return Step.B

    @poll(to=Step.DONE)
    class Ready:
        async def poll(self, res: Resources) -> PollOutcome[Step]:
            return PollOutcome.ready(Step.DONE)

    @timer
    class Later:
        async def wait(self, res: Resources) -> TimerOutcome:
            return TimerOutcome.duration(0)

        async def after_wait(self, res: Resources) -> Literal[Step.DONE]:
            return Step.DONE

    @stepped(to=[Step.DONE])
    class Pages:
        async def step(self, res: Resources, cursor: int | None) -> StepOutcome[int, Step]:
            return StepOutcome.done(Step.DONE)

    @batch
    class Squares:
        async def load(self, res: Resources) -> list[int]:
            return [1]

        async def process_item(self, item: int) -> int:
            return item

        async def finish(self, res: Resources, outputs: list[Any]) -> Literal[Step.C]:
            return Step.C

    @stream
    class Readings:
        async def open(self, res: Resources, cursor: int | None) -> AsyncIterator[int]:
            yield 1

        async def process_item(self, res: Resources, item: int) -> tuple[int, int]:
            return item, 1

        async def flush_window(self, res: Resources, outputs: list[int]) -> WindowSignal[Step]:
            return WindowSignal.continue_()

        async def on_close(self, res: Resources, reason: CloseReason) -> Literal[Step.DONE]:
            return Step.DONE

    @compensatable
    class Reserve:
        async def run(self, res: Resources) -> tuple[Literal[Step.B], int]:
            return Step.B, 1

        async def compensate(self, res: Resources, output: int) -> None:
            return None

    class Sub(Task[Step]):  # an undecorated subclass: read at registration
        async def run(self, res: Resources) -> Literal[Step.C]:
            return Step.C

    wf = Workflow()
    assert declared(wf.register_router(Step.A, Route()), Step.A) == {Step.B, Step.C}
    assert declared(wf.register_router(Step.A, RouteAnnotated()), Step.A) == {Step.B}
    assert declared(wf.register(Step.A, Ready()), Step.A) == {Step.DONE}
    assert declared(wf.register(Step.A, Later()), Step.A) == {Step.DONE}
    assert declared(wf.register_stepped(Step.A, Pages()), Step.A) == {Step.DONE}
    assert declared(wf.register(Step.A, Squares()), Step.A) == {Step.C}
    assert declared(wf.register_stream(Step.A, Readings()), Step.A) == {Step.DONE}
    assert declared(wf.register_with_compensation(Step.A, Reserve()), Step.A) == {Step.B}
    assert declared(wf.register(Step.A, Sub()), Step.A) == {Step.C}


# -- validate -----------------------------------------------------------------------------


def goto(*targets: Step, to: tuple[Step, ...] | None = None, name: str = "") -> Any:
    async def fn() -> Step:
        return targets[0]

    return task(config=TaskConfig.minimal(), name=name or f"to_{targets[0].name}", to=to)(fn)


def test_validate_lists_every_problem_in_one_error() -> None:
    wf = (
        Workflow()
        .register(Step.A, goto(Step.B, to=(Step.B, Step.C), name="a"))
        .register(Step.B, goto(Step.B, to=(Step.B,), name="b"))  # loops for ever
        .add_exit_state(Step.DONE)
    )
    with pytest.raises(ConfigurationError) as exc:
        wf.validate()
    assert problems(exc) == [
        "state A (task a) declares C, which is neither registered nor an exit state",
        "state A cannot reach an exit state (it may go to {B, C})",
        "state B cannot reach an exit state (it may go to {B})",
    ]
    assert "2 problem" not in str(exc.value) and "3 problem(s)" in str(exc.value)


def test_undeclared_tasks_may_go_anywhere_so_nothing_is_reported() -> None:
    wf = (
        Workflow()
        .register(Step.A, goto(Step.B))
        .register(Step.B, goto(Step.B, to=(Step.A,)))  # reaches an exit through A
        .register(Step.C, goto(Step.DONE))
        .add_exit_state(Step.DONE)
    )
    wf.validate()
    wf.validate_initial_state(Step.A)
    wf.validate_initial_state(Step.B)


def test_a_split_declares_its_join_state() -> None:
    @task
    async def branch() -> int:
        return 1

    join = JoinConfig(JoinStrategy.all(), Step.B)
    wf = (
        Workflow()
        .register_split(Step.A, [branch], join)
        .register(Step.B, goto(Step.A, to=(Step.A,)))
        .add_exit_state(Step.DONE)
    )
    with pytest.raises(ConfigurationError) as exc:
        wf.validate()
    assert problems(exc) == [
        "state A cannot reach an exit state (it may go to {B})",
        "state B cannot reach an exit state (it may go to {A})",
    ]


def test_validate_initial_state_reports_states_no_run_can_enter() -> None:
    wf = (
        Workflow()
        .register(Step.A, goto(Step.DONE, to=(Step.DONE,)))
        .register(Step.B, goto(Step.C, to=(Step.C,)))
        .register(Step.C, goto(Step.DONE, to=(Step.DONE,)))
        .add_exit_state(Step.DONE)
    )
    wf.validate()
    with pytest.raises(ConfigurationError, match=r"from initial state A no run can enter B, C"):
        wf.validate_initial_state(Step.A)
    with pytest.raises(ConfigurationError, match=r"from initial state B no run can enter A \("):
        wf.validate_initial_state(Step.B)
    wf.validate_initial_state(Step.DONE)  # an exit state: the run does nothing
    # orchestrate does not refuse: a workflow may be entered at several states
    assert wf.run_sync(Step.A) is Step.DONE
    assert wf.run_sync(Step.B) is Step.DONE


def test_an_exit_state_with_a_task_has_no_transitions() -> None:
    wf = (
        Workflow()
        .register(Step.A, goto(Step.DONE, to=(Step.DONE,)))
        .register(Step.DONE, goto(Step.C, to=(Step.C,)))  # never runs
        .add_exit_state(Step.DONE)
    )
    wf.validate()


# -- at run time --------------------------------------------------------------------------


@pytest.mark.anyio
async def test_returning_an_undeclared_state_fails_the_state_without_retrying() -> None:
    calls = []

    @task(config=TaskConfig().with_fixed_retry(3, 0), to=(Step.B, Step.DONE), name="a")
    async def a() -> Step:
        calls.append(1)
        return Step.FAILED

    wf = Workflow().register(Step.A, a).add_exit_states([Step.DONE, Step.FAILED])
    wf = wf.register(Step.B, goto(Step.DONE))
    with pytest.raises(StateFailure) as exc:
        await wf.orchestrate(Step.A)
    assert exc.value.state is Step.A
    cause = exc.value.error
    assert isinstance(cause, WorkflowError)
    assert "returned FAILED, which it does not declare" in str(cause)
    assert "declared targets: {B, DONE}" in str(cause)
    assert calls == [1]


@pytest.mark.anyio
async def test_declared_returns_run_through_on_every_path() -> None:
    from cano_dsl.testing import RecordingObserver

    @task(to=(Step.B,))
    async def a() -> Step:
        return Step.B

    @task
    async def b() -> Literal[Step.DONE]:
        return Step.DONE

    wf = Workflow().register(Step.A, a).register(Step.B, b).add_exit_state(Step.DONE)
    assert await wf.orchestrate(Step.A) is Step.DONE  # the inline fast path
    observed = wf.with_observer(RecordingObserver())
    assert await observed.orchestrate(Step.A) is Step.DONE  # through dispatch


@pytest.mark.anyio
async def test_the_check_applies_to_every_model() -> None:
    @stepped(to=Step.B)
    class Pages:
        async def step(self, res: Resources, cursor: int | None) -> StepOutcome[int, Step]:
            return StepOutcome.done(Step.DONE)

    @router(to=Step.B)
    class Route:
        async def route(self, res: Resources) -> Step:
            return Step.C

    for wf in (
        Workflow().register_stepped(Step.A, Pages()),
        Workflow().register_router(Step.A, Route()),
    ):
        wf = wf.register(Step.B, goto(Step.DONE)).add_exit_state(Step.DONE)
        with pytest.raises(StateFailure, match="does not declare"):
            await wf.orchestrate(Step.A)


# -- the graph ------------------------------------------------------------------------------


def test_the_graph_draws_declared_edges_bold_and_inferred_ones_thin() -> None:
    from cano_dsl.cli._graph import build_graph, render_dot, render_mermaid

    @task(to=(Step.B,))
    async def a() -> Step:
        return Step.B if True else Step.C  # the source mentions C; the declaration wins

    @task
    async def b() -> Step:
        return Step.DONE

    wf = Workflow().register(Step.A, a).register(Step.B, b).add_exit_state(Step.DONE)
    graph = build_graph(wf)
    assert {(e.source, e.target, e.declared) for e in graph.edges} == {
        ("A", "B", True),
        ("B", "DONE", False),
    }
    mermaid = render_mermaid(graph)
    assert "    A ==> B" in mermaid.splitlines()
    assert "    B --> DONE" in mermaid.splitlines()
    dot = render_dot(graph)
    assert '    "A" -> "B" [style=bold];' in dot.splitlines()
    assert '    "B" -> "DONE";' in dot.splitlines()


def test_cano_dsl_validate_prints_every_problem(tmp_path: Any) -> None:
    import os
    import subprocess
    import sys
    from pathlib import Path

    (tmp_path / "declared_flow.py").write_text(
        "import enum\n"
        "from cano_dsl import Workflow, task\n"
        "class Step(enum.Enum):\n"
        "    A = 1\n"
        "    B = 2\n"
        "    C = 3\n"
        "    DONE = 4\n"
        "@task(to=(Step.B, Step.C))\n"
        "async def a() -> Step:\n"
        "    return Step.B\n"
        "@task(to=Step.B)\n"
        "async def b() -> Step:\n"
        "    return Step.B\n"
        "wf = Workflow().register(Step.A, a).register(Step.B, b).add_exit_state(Step.DONE)\n",
        encoding="utf-8",
    )
    root = Path(__file__).resolve().parents[2]
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(root), str(tmp_path)]))
    proc = subprocess.run(
        [sys.executable, "-m", "cano_dsl", "validate", "declared_flow:wf"],
        capture_output=True,
        text=True,
        timeout=120,
        env=env,
        cwd=tmp_path,
    )
    assert proc.returncode != 0
    assert "declares C, which is neither registered nor an exit state" in proc.stderr
    assert "state A cannot reach an exit state" in proc.stderr
    assert "state B cannot reach an exit state" in proc.stderr
