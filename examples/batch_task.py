"""Three batch tasks chained: parse, fetch, summarise.

    python examples/batch_task.py

1. PARSE checks each URL (sequentially); an unsupported scheme lands as an `Err` in
   its slot and the batch carries on with the good ones.
2. FETCH "downloads" the parsed URLs four at a time with `item_retry`: flaky hosts
   succeed on a retry, one host is down for good and ends as an `Err`.
3. SUMMARISE requires at least half of the fetches to have worked (the partial-failure
   policy lives in `finish`) and reports.
"""

from __future__ import annotations

import enum
from typing import Any
from urllib.parse import urlparse

import anyio

from cano_dsl import (
    BatchTask,
    Err,
    MemoryStore,
    Ok,
    Resources,
    RetryMode,
    TaskConfig,
    Workflow,
    batch,
)


class Step(enum.Enum):
    PARSE = enum.auto()
    FETCH = enum.auto()
    SUMMARISE = enum.auto()
    DONE = enum.auto()
    DEGRADED = enum.auto()


URLS = [
    "https://example.org/a",
    "ftp://files.example.org/b",  # unsupported scheme
    "https://flaky.example.net/c",
    "http://example.com/d",
    "https://down.example.net/e",  # never answers
    "https://flaky.example.net/f",
    "https://example.org/g",
    "gopher://old.example/h",  # unsupported scheme
]


@batch(state=Step)
class ParseUrls:
    def config(self) -> TaskConfig:
        return TaskConfig.minimal()

    async def load(self, res: Resources) -> list[str]:
        return URLS

    async def process_item(self, item: str) -> str:
        url = urlparse(item)
        if url.scheme not in ("http", "https"):
            raise ValueError(f"unsupported scheme {url.scheme!r}")
        return item

    async def finish(self, res: Resources, outputs: list[Ok[str] | Err]) -> Step:
        good = [o.value for o in outputs if isinstance(o, Ok)]
        for url, o in zip(URLS, outputs, strict=True):
            if isinstance(o, Err):
                print(f"  parse: skip {url}: {o.error}")
        res.get("store", MemoryStore).put("urls", good)
        print(f"  parse: {len(good)} of {len(URLS)} URLs kept")
        return Step.FETCH


class FetchPages(BatchTask[Step, str, int]):
    """The base-class form; ``concurrency`` and ``item_retry`` as plain attributes."""

    concurrency = 4
    item_retry = RetryMode.fixed(2, 0.005)

    def __init__(self) -> None:
        self.attempts: dict[str, int] = {}
        self.live = 0
        self.peak = 0

    def config(self) -> TaskConfig:
        return TaskConfig.minimal()

    async def load(self, res: Resources) -> list[str]:
        return list(res.get("store", MemoryStore).get("urls"))

    async def process_item(self, item: str) -> int:
        self.attempts[item] = self.attempts.get(item, 0) + 1
        self.live += 1
        self.peak = max(self.peak, self.live)
        try:
            await anyio.sleep(0.01)
        finally:
            self.live -= 1
        host = urlparse(item).hostname or ""
        if host.startswith("down."):
            raise ConnectionError(f"{host} refused the connection")
        if host.startswith("flaky.") and self.attempts[item] < 2:
            raise TimeoutError(f"{host} timed out")
        return len(item) * 100  # page size in bytes

    async def finish(self, res: Resources, outputs: list[Any]) -> Step:
        sizes = {}
        urls = res.get("store", MemoryStore).get("urls")
        for url, o in zip(urls, outputs, strict=True):
            tries = self.attempts[url]
            if o.is_ok():
                sizes[url] = o.value
                print(f"  fetch: {url} -> {o.value} bytes ({tries} attempt(s))")
            else:
                print(f"  fetch: {url} FAILED after {tries} attempt(s): {o.error}")
        res.get("store", MemoryStore).put("sizes", sizes)
        print(f"  fetch: at most {self.peak} in flight (concurrency 4)")
        return Step.SUMMARISE


@batch(state=Step)
class Summarise:
    def config(self) -> TaskConfig:
        return TaskConfig.minimal()

    async def load(self, res: Resources) -> list[tuple[str, int]]:
        return list(res.get("store", MemoryStore).get("sizes").items())

    async def process_item(self, item: tuple[str, int]) -> int:
        return item[1]

    async def finish(self, res: Resources, outputs: list[Any]) -> Step:
        store = res.get("store", MemoryStore)
        fetched, wanted = len(outputs), len(store.get("urls"))
        total = sum(o.unwrap() for o in outputs)
        print(f"  summary: {fetched}/{wanted} pages, {total} bytes")
        return Step.DONE if fetched * 2 >= wanted else Step.DEGRADED


async def main() -> None:
    wf = (
        Workflow(Resources().insert("store", MemoryStore()))
        .register(Step.PARSE, ParseUrls())
        .register(Step.FETCH, FetchPages())
        .register(Step.SUMMARISE, Summarise())
        .add_exit_states([Step.DONE, Step.DEGRADED])
    )
    final = await wf.orchestrate(Step.PARSE)
    print(f"-> {final.name}")


if __name__ == "__main__":
    anyio.run(main)
