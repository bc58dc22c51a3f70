"""The split/join, router and batch examples run as scripts, exit 0 and print what
they demonstrate."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

EXAMPLES = Path(__file__).resolve().parent.parent / "examples"

EXPECTED = {
    "router_task.py": ["handled by the fast path", "handled by the careful path"],
    "join_strategies.py": ["Any", "#3 cancelled", "strategy: All; errors: task 1:"],
    "split_bulkhead.py": ["peak concurrency 2"],
    "workflow_split_join.py": ["'max': 100", "Split task timeout exceeded"],
    "workflow_partial_results.py": [
        "umbrella  cancelled",
        "Partial results condition not met: 4 completed successfully, 5 required",
    ],
    "workflow_ad_exchange.py": ["SERVED", "REJECTED", "fraud reported via email"],
    "batch_task.py": ["unsupported scheme 'ftp'", "FAILED after 3 attempt(s)", "-> DONE"],
    "workflow_book_prepositions.py": ["book 1952 is not on the mirror", "ranking over 11 of 12"],
}


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_example_runs(name: str) -> None:
    proc = subprocess.run(
        [sys.executable, str(EXAMPLES / name)], capture_output=True, text=True, timeout=60
    )
    assert proc.returncode == 0, proc.stderr
    for text in EXPECTED[name]:
        assert text in proc.stdout, f"{name}: {text!r} not in output:\n{proc.stdout}"


def test_book_corpus_is_deterministic_and_misses_one_book() -> None:
    sys.path.insert(0, str(EXAMPLES))
    try:
        import anyio
        from _book_corpus import BOOK_IDS, MISSING_BOOK, BookNotFound, fetch_book

        async def main() -> None:
            first = await fetch_book(BOOK_IDS[0])
            assert first == await fetch_book(BOOK_IDS[0])
            assert first != await fetch_book(BOOK_IDS[1])
            with pytest.raises(BookNotFound):
                await fetch_book(MISSING_BOOK)

        anyio.run(main)
    finally:
        sys.path.remove(str(EXAMPLES))
