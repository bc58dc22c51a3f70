"""Two improv actors build a story turn by turn, "Yes, and..." style.

    python examples/ai_workflow_yes_and.py [--seed N]            # offline partner
    python examples/ai_workflow_yes_and.py --ollama http://127.0.0.1:11434 --model gemma3

Counterpart of cano's ``ai_workflow_yes_and`` example, which needs an Ollama server
with a model pulled. What it shows about workflows carries over unchanged:

- the model client is a resource (``ImprovModel``) built once, set up before the
  first turn and torn down after the last, shared by both actor tasks;
- two tasks hand the turn back and forth (OPENING -> ACTOR2 -> ACTOR1 -> ACTOR2 ...)
  through the shared `MemoryStore`, which keeps the transcript and a turn counter;
- the loop ends at a fixed number of turns (the END exit state);
- a failing model call does not fail the run: the actor says a stock line, as cano's
  does when the model errors.

By default the lines come from ``ScriptedModel``, a deterministic offline stand-in
(no network, same story for the same seed), so the example runs anywhere. With
``--ollama URL`` the actors call a local Ollama server's ``/api/generate`` instead
(standard library HTTP, in a worker thread); if it cannot be reached, every turn
falls back to the stock line and the run still ends in END.
"""

from __future__ import annotations

import argparse
import enum
import json
import random
import re
import urllib.request
from typing import Protocol

import anyio
import anyio.to_thread

from cano_dsl import MemoryStore, Resources, TaskConfig, Workflow, task


class Scene(enum.Enum):
    OPENING = enum.auto()
    ACTOR2 = enum.auto()
    ACTOR1 = enum.auto()
    END = enum.auto()


MAX_TURNS = 8
RULES = (
    "Continue the story with the 'Yes, and...' improv rule: accept what was said "
    "without repeating it, add one new thing, start with 'Yes, and', 10 to 20 words."
)
SUBJECTS = ["cats", "coffee", "a lighthouse", "a chess club", "the weather", "a bakery"]
STOCK_LINE = "Yes, and suddenly everything changed in a way nobody had predicted."


class ImprovModel(Protocol):
    async def setup(self) -> None: ...
    async def teardown(self) -> None: ...
    async def complete(self, prompt: str) -> str: ...


class ScriptedModel:
    """An offline partner: strings stock phrases together, seeded, no network."""

    PEOPLE = ("a retired pilot", "two curious kids", "the night baker", "a talking parrot")
    TWISTS = (
        "found a map hidden under the floorboards",
        "realised the clocks were running backwards",
        "opened a door that had not been there yesterday",
        "heard the radio read out their names",
        "discovered the recipe was written in code",
        "watched the fog spell out a warning",
    )

    def __init__(self, seed: int) -> None:
        self.rng = random.Random(seed)
        self.calls = 0

    async def setup(self) -> None:
        print("model: scripted partner ready (offline)")

    async def teardown(self) -> None:
        print(f"model: scripted partner closed after {self.calls} calls")

    async def complete(self, prompt: str) -> str:
        self.calls += 1
        await anyio.sleep(0.01)  # a model takes a moment
        who, twist = self.rng.choice(self.PEOPLE), self.rng.choice(self.TWISTS)
        if prompt.startswith("Start a short story about "):
            subject = prompt.removeprefix("Start a short story about ").split(".")[0]
            return f"It all started with {subject}, when {who} {twist}."
        return f"<think>keep it short</think>Yes, and then {who} {twist}."


class OllamaModel:
    """A client for a local Ollama server (``POST /api/generate``)."""

    def __init__(self, url: str, model: str, timeout: float = 30.0) -> None:
        self.url = url.rstrip("/") + "/api/generate"
        self.model = model
        self.timeout = timeout

    async def setup(self) -> None:
        print(f"model: Ollama at {self.url} (model {self.model})")

    async def teardown(self) -> None:
        print("model: Ollama client closed")

    def _post(self, prompt: str) -> str:
        body = json.dumps(
            {"model": self.model, "prompt": prompt, "system": RULES, "stream": False}
        ).encode()
        request = urllib.request.Request(
            self.url, data=body, headers={"Content-Type": "application/json"}
        )
        with urllib.request.urlopen(request, timeout=self.timeout) as reply:
            return str(json.loads(reply.read())["response"])

    async def complete(self, prompt: str) -> str:
        return await anyio.to_thread.run_sync(self._post, prompt)


def clean(text: str) -> str:
    """Drop ``<think>...</think>`` blocks and fold whitespace."""
    text = re.sub(r"(?is)<think>.*?(</think>|$)", "", text)
    return " ".join(text.split())


def yes_and(text: str) -> str:
    text = clean(text)
    if text.lower().startswith("yes, and"):
        return text
    return "Yes, and " + re.sub(r"^(and\s+)", "", text, flags=re.I)


async def take_turn(
    res: Resources, actor: str, prompt: str, fallback: str, opening: bool = False
) -> int:
    """Ask the model, record the line, return the new turn count."""
    store = res.get("store", MemoryStore)
    try:
        line = await res.get("model").complete(prompt)
    except Exception as exc:  # a model error is not a workflow failure here
        print(f"  ({actor}: model call failed: {type(exc).__name__}; using a stock line)")
        store.append("stock_lines", actor)
        line = fallback
    line = clean(line) if opening else yes_and(line)
    store.append("chat", f"{actor}: {line}")
    turns = (store.get("turns", int) if "turns" in store else 0) + 1
    store.put("turns", turns)
    print(f"{actor}: {line}")
    return turns


@task(state=Scene, config=TaskConfig.minimal())
class Actor1:
    def __init__(self, rng: random.Random) -> None:
        self.rng = rng

    async def run(self, res: Resources) -> Scene:
        store = res.get("store", MemoryStore)
        opening = "chat" not in store
        if opening:
            subject = self.rng.choice(SUBJECTS)
            prompt = f"Start a short story about {subject}. One sentence, leave room to build."
            fallback = f"Tell me a story about {subject}."
        else:
            chat: list[str] = store.get("chat", list)
            prompt, fallback = "\n".join(chat), STOCK_LINE
        turns = await take_turn(res, "actor1", prompt, fallback, opening)
        return Scene.END if turns >= MAX_TURNS else Scene.ACTOR2


@task(state=Scene, config=TaskConfig.minimal())
class Actor2:
    async def run(self, res: Resources) -> Scene:
        chat: list[str] = res.get("store", MemoryStore).get("chat", list)
        history = "\n".join(chat)
        turns = await take_turn(res, "actor2", history, STOCK_LINE)
        return Scene.END if turns >= MAX_TURNS else Scene.ACTOR1


async def main(model: ImprovModel, seed: int) -> None:
    store = MemoryStore()
    actor1 = Actor1(random.Random(seed))
    wf = (
        Workflow(Resources().insert("store", store).insert("model", model))
        .register(Scene.OPENING, actor1)
        .register(Scene.ACTOR1, actor1)
        .register(Scene.ACTOR2, Actor2())
        .add_exit_state(Scene.END)
    )
    final = await wf.orchestrate(Scene.OPENING)
    stock_lines: list[str] = store.get("stock_lines", list) if "stock_lines" in store else []
    stock = len(stock_lines)
    print(f"\nended in {final.name} after {store.get('turns', int)} turns")
    print(f"lines from the model: {store.get('turns', int) - stock}, stock lines: {stock}")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--seed", type=int, default=5)
    parser.add_argument("--ollama", metavar="URL", help="use a local Ollama server")
    parser.add_argument("--model", default="gemma3", help="Ollama model name")
    args = parser.parse_args()
    chosen: ImprovModel = (
        OllamaModel(args.ollama, args.model, timeout=10)
        if args.ollama
        else ScriptedModel(args.seed)
    )
    anyio.run(main, chosen, args.seed)
