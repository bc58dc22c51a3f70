"""A deterministic, offline stand-in for downloading public-domain books.

Each book id seeds a small linear congruential generator that strings words from a
fixed vocabulary into sentences, so a book's text is the same on every run and
machine, with no network. One id (`MISSING_BOOK`) is deliberately absent, the way a
real mirror sometimes lacks a title: fetching it raises `BookNotFound`.
"""

from __future__ import annotations

import anyio

__all__ = ["BOOK_IDS", "MISSING_BOOK", "PREPOSITIONS", "BookNotFound", "fetch_book", "title_of"]

BOOK_IDS = [1342, 84, 11, 2701, 1661, 98, 1952, 174, 345, 5200, 76, 4300]
MISSING_BOOK = 1952

PREPOSITIONS = (
    "about", "above", "across", "after", "against", "among", "at", "before", "behind",
    "between", "by", "during", "for", "from", "in", "into", "of", "on", "over", "through",
    "to", "under", "upon", "with", "without",
)  # fmt: skip

_NOUNS = (
    "house", "sea", "letter", "garden", "captain", "river", "window", "road", "king",
    "sister", "storm", "lamp", "whale", "village", "door", "morning", "ship", "heart",
)  # fmt: skip
_VERBS = (
    "walked", "looked", "waited", "spoke", "ran", "slept", "turned", "wrote", "sailed",
    "listened", "laughed", "stood",
)  # fmt: skip
_TITLES = {
    1342: "A Polite Engagement", 84: "The Patchwork Creature", 11: "Down the Burrow",
    2701: "The Pale Leviathan", 1661: "Cases of a Consulting Detective",
    98: "Two Cities", 174: "The Portrait", 345: "The Count's Castle",
    5200: "The Transformation", 76: "River Raft Days", 4300: "One Day in Dublin",
}  # fmt: skip


class BookNotFound(LookupError):
    """The mirror has no book with this id."""


class _Lcg:
    """Numerical Recipes' 32-bit LCG: tiny, fast and the same everywhere."""

    def __init__(self, seed: int) -> None:
        self.state = seed & 0xFFFFFFFF

    def next(self, bound: int) -> int:
        self.state = (1664525 * self.state + 1013904223) & 0xFFFFFFFF
        return (self.state >> 8) % bound


def title_of(book_id: int) -> str:
    return _TITLES.get(book_id, f"book #{book_id}")


def _text(book_id: int, sentences: int) -> str:
    rng = _Lcg(book_id * 7919)
    out: list[str] = []
    for _ in range(sentences):
        words = ["the", _NOUNS[rng.next(len(_NOUNS))], _VERBS[rng.next(len(_VERBS))]]
        for _ in range(1 + rng.next(3)):
            words += [
                PREPOSITIONS[rng.next(len(PREPOSITIONS))],
                "the",
                _NOUNS[rng.next(len(_NOUNS))],
            ]
        out.append(" ".join(words).capitalize() + ".")
    return " ".join(out)


async def fetch_book(book_id: int) -> str:
    """The book's text after a short simulated download (1-8 ms, fixed per id)."""
    await anyio.sleep((book_id % 8 + 1) / 1000)
    if book_id == MISSING_BOOK or book_id not in _TITLES:
        raise BookNotFound(f"book {book_id} is not on the mirror")
    return _text(book_id, 200 + book_id % 150)
