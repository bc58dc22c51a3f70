"""Map-reduce on two levels: split/join inside each workflow, a reduce across flows.

    python examples/scheduler_mapreduce_books.py

Port of cano's ``scheduler_mapreduce_books`` example. Twelve books from the offline
corpus (examples/_book_corpus.py) are cut into three batches of four; each batch is a
manual flow of the scheduler running its own workflow:

    START -> DOWNLOAD_BATCH (split, All) -> ANALYZE_BATCH (split, Percentage 0.75)
          -> SUMMARIZE_BATCH -> COMPLETE

Level 1 (inside a workflow): four download branches run in parallel, then four
analysis branches, then the batch is summarised into a shared ``GlobalResults``.
Level 2 (across workflows): the script triggers the three flows together, waits for
the scheduler to report them settled, then reduces the three batch summaries into a
global ranking. One book of the second batch is missing from the corpus: its
download branch skips it, its analysis branch fails, and ``Percentage(0.75)`` (3 of
4) lets that batch go on with the other three.
"""

from __future__ import annotations

import enum
import re
import sys
import threading
from collections import Counter
from pathlib import Path

import anyio
import attrs

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _book_corpus import BOOK_IDS, PREPOSITIONS, BookNotFound, fetch_book, title_of

from cano_dsl import (
    FlowStatus,
    JoinConfig,
    JoinStrategy,
    MemoryStore,
    Resources,
    Scheduler,
    TaskConfig,
    Workflow,
    WorkflowObserver,
    task,
)


class Stage(enum.Enum):
    START = enum.auto()
    DOWNLOAD_BATCH = enum.auto()
    ANALYZE_BATCH = enum.auto()
    SUMMARIZE_BATCH = enum.auto()
    COMPLETE = enum.auto()
    ERROR = enum.auto()


WORD = re.compile(r"[a-z]+")
BATCHES = {
    "batch-a": BOOK_IDS[0:4],
    "batch-b": BOOK_IDS[4:8],
    "batch-c": BOOK_IDS[8:12],
}


@attrs.frozen
class BookAnalysis:
    book_id: int
    batch: str
    total_words: int
    occurrences: int
    distinct: frozenset[str]

    @property
    def per_thousand(self) -> float:
        return 1000 * self.occurrences / self.total_words


@attrs.frozen
class BatchSummary:
    batch: str
    books: tuple[BookAnalysis, ...]

    @property
    def mean_per_thousand(self) -> float:
        return sum(b.per_thousand for b in self.books) / len(self.books)


class GlobalResults:
    """What every batch workflow reports into; read by the reduce step."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._batches: list[BatchSummary] = []

    def add(self, summary: BatchSummary) -> None:
        with self._lock:
            self._batches.append(summary)

    def batches(self) -> list[BatchSummary]:
        with self._lock:
            return sorted(self._batches, key=lambda b: b.batch)


@task(state=Stage)
class InitBatch:
    def __init__(self, batch: str, books: list[int]) -> None:
        self.batch, self.books = batch, books

    async def run(self, res: Resources) -> Stage:
        print(f"  [{self.batch}] starting with books {self.books}")
        return Stage.DOWNLOAD_BATCH


@task(state=Stage)
class DownloadBook:
    def __init__(self, batch: str, book_id: int) -> None:
        self.batch, self.book_id = batch, book_id

    def name(self) -> str:
        return f"download-{self.book_id}"

    def config(self) -> TaskConfig:
        return TaskConfig.minimal()

    async def run(self, res: Resources) -> Stage:
        try:
            text = await fetch_book(self.book_id)
        except BookNotFound as exc:
            # Skipped, not failed: the All join at this state still succeeds, and the
            # missing book surfaces at the analysis join instead.
            print(f"  [{self.batch}] skipping a book: {exc}")
            return Stage.ANALYZE_BATCH
        res.get("store", MemoryStore).put(f"book:{self.book_id}", text)
        return Stage.ANALYZE_BATCH


@task(state=Stage)
class AnalyzeBook:
    def __init__(self, batch: str, book_id: int) -> None:
        self.batch, self.book_id = batch, book_id

    def name(self) -> str:
        return f"analyse-{self.book_id}"

    def config(self) -> TaskConfig:
        return TaskConfig.minimal()

    async def run(self, res: Resources) -> Stage:
        store = res.get("store", MemoryStore)
        text = store.get(f"book:{self.book_id}", str)  # KeyNotFound for the missing book
        words = WORD.findall(text.lower())
        hits = Counter(w for w in words if w in PREPOSITIONS)
        store.put(
            f"analysis:{self.book_id}",
            BookAnalysis(self.book_id, self.batch, len(words), sum(hits.values()), frozenset(hits)),
        )
        return Stage.SUMMARIZE_BATCH


@task(state=Stage)
class SummarizeBatch:
    def __init__(self, batch: str, books: list[int], results: GlobalResults) -> None:
        self.batch, self.books, self.results = batch, books, results

    async def run(self, res: Resources) -> Stage:
        store = res.get("store", MemoryStore)
        found = tuple(
            store.get(f"analysis:{b}", BookAnalysis) for b in self.books if f"analysis:{b}" in store
        )
        if not found:
            raise LookupError(f"{self.batch}: no book was analysed")
        summary = BatchSummary(self.batch, found)
        self.results.add(summary)
        print(
            f"  [{self.batch}] summarised {len(found)} of {len(self.books)} books, "
            f"{summary.mean_per_thousand:.1f} prepositions per 1000 words"
        )
        return Stage.COMPLETE


class BranchFailures(WorkflowObserver):
    def __init__(self, batch: str) -> None:
        self.batch = batch

    def on_task_failure(self, task_id: str, error: BaseException) -> None:
        print(f"  [{self.batch}] branch {task_id} failed: {type(error).__name__}")


def batch_workflow(batch: str, books: list[int], results: GlobalResults) -> Workflow[Stage]:
    return (
        Workflow(Resources().insert("store", MemoryStore()))
        .register(Stage.START, InitBatch(batch, books))
        .register_split(
            Stage.DOWNLOAD_BATCH,
            [DownloadBook(batch, b) for b in books],
            JoinConfig(JoinStrategy.all(), Stage.ANALYZE_BATCH).with_timeout(120),
        )
        .register_split(
            Stage.ANALYZE_BATCH,
            [AnalyzeBook(batch, b) for b in books],
            JoinConfig(JoinStrategy.percentage(0.75), Stage.SUMMARIZE_BATCH).with_timeout(60),
        )
        .register(Stage.SUMMARIZE_BATCH, SummarizeBatch(batch, books, results))
        .add_exit_states([Stage.COMPLETE, Stage.ERROR])
        .with_observer(BranchFailures(batch))
    )


def reduce(results: GlobalResults) -> None:
    batches = results.batches()
    books = sorted(
        (b for s in batches for b in s.books), key=lambda b: (-b.per_thousand, b.book_id)
    )
    if not books:
        raise LookupError("no batch completed")
    print("\nbatch summaries:")
    for s in batches:
        distinct = frozenset[str]().union(*(b.distinct for b in s.books))
        print(
            f"  {s.batch}: {len(s.books)} books, {s.mean_per_thousand:.1f} per 1000 words, "
            f"{len(distinct)} distinct prepositions"
        )
    print("\nglobal ranking (prepositions per 1000 words):")
    for place, b in enumerate(books, 1):
        print(f"  #{place:<2} {title_of(b.book_id):<32} [{b.batch}] {b.per_thousand:6.1f}")
    mean = sum(b.per_thousand for b in books) / len(books)
    print(f"\nbatches reduced: {len(batches)}, books analysed: {len(books)}, mean {mean:.1f}")
    print(f"densest: {title_of(books[0].book_id)}; sparsest: {title_of(books[-1].book_id)}")


async def main() -> None:
    results = GlobalResults()
    sched = Scheduler()
    for batch, books in BATCHES.items():
        sched = sched.manual(batch, batch_workflow(batch, books, results), Stage.START)
    print(f"map: {len(BATCHES)} batch flows, {sum(map(len, BATCHES.values()))} books\n")
    async with sched.start() as running:
        for batch in BATCHES:
            await running.trigger(batch)
        with anyio.fail_after(60):
            while any(info.status == FlowStatus.RUNNING for info in running.list()):
                await anyio.sleep(0.01)
        done = [i.id for i in running.list() if i.status == FlowStatus.COMPLETED]
        print(f"\nflows completed: {len(done)} of {len(BATCHES)} ({', '.join(done)})")
    reduce(results)


if __name__ == "__main__":
    anyio.run(main)
