"""Separate scheduled workflows sharing one store: fetch books, then analyse and rank.

    python examples/scheduler_book_prepositions.py

Port of cano's ``scheduler_book_prepositions`` example. Three manual flows, one per
book, each run the one-state workflow DOWNLOAD that fetches its book from the offline
corpus (examples/_book_corpus.py) into a shared `MemoryStore`; a fourth manual flow,
``analyse``, runs ANALYZE -> RANK over whatever was fetched. The script triggers the
three downloads together, waits for the scheduler to report them settled, then
triggers the analysis.

One of the three books is missing from the corpus on purpose: its download task
catches the error and ends in COMPLETE instead of ANALYZE (two exit states), so the
flow still completes and the ranking covers the two books that arrived. For one
workflow doing the whole job with split/join, see ``workflow_book_prepositions.py``.
"""

from __future__ import annotations

import enum
import re
import sys
from pathlib import Path

import anyio
import attrs

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _book_corpus import MISSING_BOOK, PREPOSITIONS, BookNotFound, fetch_book, title_of

from cano_dsl import (
    FlowStatus,
    MemoryStore,
    Resources,
    RunningScheduler,
    Scheduler,
    TaskConfig,
    Workflow,
    task,
)


class Phase(enum.Enum):
    DOWNLOAD = enum.auto()
    ANALYZE = enum.auto()
    RANK = enum.auto()
    COMPLETE = enum.auto()


BOOKS = [1342, 11, MISSING_BOOK]
WORD = re.compile(r"[a-z]+")


@attrs.frozen
class Analysis:
    book_id: int
    title: str
    unique_prepositions: int
    total_words: int

    @property
    def density(self) -> float:
        return 100 * self.unique_prepositions / self.total_words if self.total_words else 0.0


@task(state=Phase)
class Download:
    def __init__(self, book_id: int) -> None:
        self.book_id = book_id

    def name(self) -> str:
        return f"download-{self.book_id}"

    def config(self) -> TaskConfig:
        return TaskConfig().with_fixed_retry(2, 0.05)

    async def run(self, res: Resources) -> Phase:
        try:
            text = await fetch_book(self.book_id)
        except BookNotFound as exc:
            print(f"  download {self.book_id}: skipped ({exc})")
            return Phase.COMPLETE
        res.get("store", MemoryStore).append("books", (self.book_id, text))
        print(f"  download {self.book_id}: {title_of(self.book_id)!r}, {len(text)} chars")
        return Phase.ANALYZE


@task(state=Phase)
class Analyze:
    async def run(self, res: Resources) -> Phase:
        store = res.get("store", MemoryStore)
        books: list[tuple[int, str]] = store.get("books", list) if "books" in store else []
        if not books:
            raise LookupError("no book was downloaded")
        analyses: list[Analysis] = []
        for book_id, text in books:
            words = WORD.findall(text.lower())
            found = {w for w in words if w in PREPOSITIONS}
            analyses.append(Analysis(book_id, title_of(book_id), len(found), len(words)))
        store.put("analyses", analyses)
        print(f"  analyse: {len(analyses)} book(s)")
        return Phase.RANK


@task(state=Phase)
class Rank:
    async def run(self, res: Resources) -> Phase:
        store = res.get("store", MemoryStore)
        ranked = sorted(
            store.get("analyses", list), key=lambda a: (-a.unique_prepositions, -a.density)
        )
        print("\nranking by preposition diversity (ties broken by density):")
        for place, a in enumerate(ranked, 1):
            print(
                f"  #{place} {a.title} (id {a.book_id}): {a.unique_prepositions} distinct "
                f"prepositions, {a.density:.2f}% density, {a.total_words} words"
            )
        return Phase.COMPLETE


async def run_and_wait(running: RunningScheduler, ids: list[str]) -> None:
    """Trigger the flows, then poll their status until none is running."""
    for flow_id in ids:
        await running.trigger(flow_id)
    with anyio.fail_after(30):
        while any(f.status == FlowStatus.RUNNING for f in running.list() if f.id in ids):
            await anyio.sleep(0.01)


async def main() -> None:
    res = Resources().insert("store", MemoryStore())
    sched = Scheduler()
    for book_id in BOOKS:
        downloads = (
            Workflow(res)
            .register(Phase.DOWNLOAD, Download(book_id))
            .add_exit_states([Phase.ANALYZE, Phase.COMPLETE])
        )
        sched = sched.manual(f"download-{book_id}", downloads, Phase.DOWNLOAD)
    analysis = (
        Workflow(res)
        .register(Phase.ANALYZE, Analyze())
        .register(Phase.RANK, Rank())
        .add_exit_state(Phase.COMPLETE)
    )
    sched = sched.manual("analyse", analysis, Phase.ANALYZE)
    print(f"registered flows: {sched.ids()}\n")

    async with sched.start() as running:
        print("fetching books:")
        await run_and_wait(running, [f"download-{b}" for b in BOOKS])
        await run_and_wait(running, ["analyse"])
        print("\nflow status:")
        for info in running.list():
            print(f"  {info.id:14} {info.status.name:10} runs={info.run_count}")


if __name__ == "__main__":
    anyio.run(main)
