"""Static edge inference and rendering of `cano-dsl graph`, in process."""

from __future__ import annotations

import enum
from typing import Any

from cano_dsl import (
    PollOutcome,
    Resources,
    StepOutcome,
    TaskConfig,
    Workflow,
    compensatable,
    poll,
    router,
    stepped,
    task,
)
from cano_dsl.cli._graph import build_graph, render_dot, render_mermaid


class Step(enum.Enum):
    A = enum.auto()
    B = enum.auto()
    C = enum.auto()
    UNDO = enum.auto()
    LOST = enum.auto()
    DONE = enum.auto()


def edges(wf: Workflow[Any]) -> set[tuple[str, str]]:
    return {(e.source, e.target) for e in build_graph(wf).edges}


def test_subscripts_helpers_and_inherited_methods_are_read() -> None:
    class Base:
        async def run(self, res: Resources) -> Step:
            return self._pick()

        def _pick(self) -> Step:
            return Step["C"]

    @task(state=Step)
    class Child(Base):
        pass

    wf = Workflow.bare().register(Step.A, Child()).add_exit_state(Step.C)
    assert edges(wf) == {("A", "C")}


def test_compensate_is_not_a_transition_but_run_is() -> None:
    @compensatable(state=Step)
    class Reserve:
        async def run(self, res: Resources) -> tuple[Step, int]:
            return Step.B, 1

        async def compensate(self, res: Resources, output: int) -> None:
            assert Step.UNDO

    wf = Workflow.bare().register_with_compensation(Step.A, Reserve()).add_exit_state(Step.B)
    assert edges(wf) == {("A", "B")}
    [node] = [n for n in build_graph(wf).nodes if n.name == "A"]
    assert (node.kind, node.detail) == ("compensatable", "compensatable")


def test_stepped_and_poll_outcomes_are_read() -> None:
    @stepped(state=Step)
    class Pages:
        async def step(self, res: Resources, cursor: Any) -> StepOutcome[Step, int]:
            if cursor is None:
                return StepOutcome.more(1)
            return StepOutcome.done(Step.B)

    @poll(state=Step)
    class Wait:
        async def poll(self, res: Resources) -> PollOutcome[Step]:
            return PollOutcome.ready(Step.DONE)

    wf = (
        Workflow.bare()
        .register_stepped(Step.A, Pages())
        .register(Step.B, Wait())
        .add_exit_state(Step.DONE)
    )
    assert edges(wf) == {("A", "B"), ("B", "DONE")}


def test_closures_and_attributes_name_states() -> None:
    def forward(to: Step) -> Any:
        @task(config=TaskConfig.minimal(), name=f"to-{to.name}")
        async def go() -> Step:
            return to

        return go

    @router(state=Step)
    class Choose:
        def __init__(self, options: dict[str, Step]) -> None:
            self.options = options

        async def route(self, res: Resources) -> Step:
            return next(iter(self.options.values()))

    wf = (
        Workflow.bare()
        .register(Step.A, forward(Step.B))
        .register_router(Step.B, Choose({"x": Step.C, "y": Step.DONE}))
        .register(Step.C, forward(Step.DONE))
        .add_exit_state(Step.DONE)
    )
    assert edges(wf) == {("A", "B"), ("B", "C"), ("B", "DONE"), ("C", "DONE")}


def test_a_referenced_unregistered_state_is_drawn_as_unknown() -> None:
    @task(config=TaskConfig.minimal(), name="maybe")
    async def maybe() -> Step:
        return Step.LOST if False else Step.DONE

    wf = Workflow.bare().register(Step.A, maybe).add_exit_state(Step.DONE)
    graph = build_graph(wf)
    assert {(n.name, n.kind) for n in graph.nodes} == {
        ("A", "single"),
        ("LOST", "unknown"),
        ("DONE", "exit"),
    }
    assert "class LOST unknown" in render_mermaid(graph)
    assert (
        '"LOST" [shape=box, style=dashed, color="#c62828", label="LOST\\n(not registered)"];'
        in render_dot(graph)
    )


def test_an_unreadable_source_becomes_a_note() -> None:
    namespace: dict[str, Any] = {"Step": Step, "task": task, "TaskConfig": TaskConfig}
    exec(
        "@task(config=TaskConfig.minimal(), name='hidden')\n"
        "async def hidden():\n"
        "    return Step.DONE\n",
        namespace,
    )
    wf = Workflow.bare().register(Step.A, namespace["hidden"]).add_exit_state(Step.DONE)
    graph = build_graph(wf)
    assert graph.edges == ()
    assert graph.notes == ("A: source of hidden not readable",)
    assert "%% A: source of hidden not readable" in render_mermaid(graph)
    assert "// A: source of hidden not readable" in render_dot(graph)


def test_an_enum_defined_in_a_function_is_matched_by_name() -> None:
    class Local(enum.Enum):
        GO = 1
        END = 2

    @task(config=TaskConfig.minimal(), name="go")
    async def go() -> Local:
        return Local.END

    wf = Workflow.bare().register(Local.GO, go).add_exit_state(Local.END)
    graph = build_graph(wf)
    assert {(e.source, e.target) for e in graph.edges} == {("GO", "END")}
    text = render_mermaid(graph)
    # `end` is a Mermaid keyword: such a node gets a safe id, its label is unchanged
    assert 'END_(["END"])' in text and "GO --> END_" in text


def test_an_exit_state_with_a_handler_is_marked_both_ways() -> None:
    @task(config=TaskConfig.minimal(), name="again")
    async def again() -> Step:
        return Step.A

    wf = Workflow.bare().register(Step.A, again).add_exit_state(Step.A)
    [node] = build_graph(wf).nodes
    assert (node.kind, node.detail) == ("single", "exit")
    assert "class A exit" in render_mermaid(build_graph(wf))
    assert "peripheries=2" in render_dot(build_graph(wf))
    assert edges(wf) == {("A", "A")}
