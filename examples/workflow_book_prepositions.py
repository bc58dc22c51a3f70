"""Download and analyse twelve books in parallel, then rank prepositions.

    python examples/workflow_book_prepositions.py

ANALYSE is a split with one branch per book: each downloads its book from the
offline corpus (examples/_book_corpus.py) and counts prepositions into the shared
store. One book is missing from the mirror on purpose; `Percentage(0.75)` accepts
the run as long as 9 of the 12 branches succeed, so the failure is reported and the
workflow moves on. RANK combines the per-book counts.
"""

from __future__ import annotations

import enum
import re
import sys
from collections import Counter
from pathlib import Path

import anyio

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _book_corpus import BOOK_IDS, PREPOSITIONS, fetch_book, title_of

from cano_dsl import (
    JoinConfig,
    JoinStrategy,
    MemoryStore,
    Resources,
    TaskConfig,
    Workflow,
    WorkflowObserver,
    task,
)


class Step(enum.Enum):
    ANALYSE = enum.auto()
    RANK = enum.auto()
    DONE = enum.auto()


WORD = re.compile(r"[a-z]+")


@task
class AnalyseBook:
    def __init__(self, book_id: int) -> None:
        self.book_id = book_id

    def name(self) -> str:
        return f"book-{self.book_id}"

    def config(self) -> TaskConfig:
        return TaskConfig.minimal()

    async def run(self, res: Resources) -> Step:
        text = await fetch_book(self.book_id)
        words = WORD.findall(text.lower())
        counts = Counter(w for w in words if w in PREPOSITIONS)
        res.get("store", MemoryStore).put(f"counts:{self.book_id}", (len(words), counts))
        return Step.RANK


@task(config=TaskConfig.minimal())
async def rank(res: Resources) -> Step:
    store = res.get("store", MemoryStore)
    total: Counter[str] = Counter()
    analysed = 0
    for book_id in BOOK_IDS:
        key = f"counts:{book_id}"
        if key not in store:
            print(f"  {title_of(book_id):<32} (missing)")
            continue
        words, counts = store.get(key)
        analysed += 1
        top, n = counts.most_common(1)[0]
        print(f"  {title_of(book_id):<32} {words:>5} words, top preposition {top!r} x{n}")
        total.update(counts)
    print(f"ranking over {analysed} of {len(BOOK_IDS)} books:")
    for place, (word, n) in enumerate(total.most_common(5), 1):
        print(f"  {place}. {word:<8} {n}")
    return Step.DONE


class Failures(WorkflowObserver):
    def on_task_failure(self, task_id: str, error: BaseException) -> None:
        print(f"  branch {task_id} failed: {error}")


async def main() -> None:
    wf = (
        Workflow(Resources().insert("store", MemoryStore()))
        .register_split(
            Step.ANALYSE,
            [AnalyseBook(b) for b in BOOK_IDS],
            JoinConfig(JoinStrategy.percentage(0.75), Step.RANK),
        )
        .register(Step.RANK, rank)
        .add_exit_state(Step.DONE)
        .with_observer(Failures())
    )
    print(f"analysing {len(BOOK_IDS)} books in parallel (75% must succeed):")
    final = await wf.orchestrate(Step.ANALYSE)
    print(f"-> {final.name}")


if __name__ == "__main__":
    anyio.run(main)
