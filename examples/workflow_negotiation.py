"""A seller and a buyer haggle in a loop until they agree or the buyer walks away.

    python examples/workflow_negotiation.py [--seed N]

Port of cano's ``workflow_negotiation`` example. Two tasks take turns: SELL lowers
the asking price by a random 500-2000 (never below a floor of 100) and hands over to
EVALUATE; EVALUATE accepts when the offer fits the budget, walks away after ten
rounds, and otherwise sends the workflow back to SELL. A loop in a state machine is
just a task returning an earlier state. The negotiation state lives in the shared
`MemoryStore`; DEAL and NO_DEAL are the two exit states.

Two negotiations run: one with a budget of 1000 (a deal), one with 50, which the
floor price can never meet (no deal after ten rounds). cano's buyer only gives up
when the offer is still more than three times the budget, which never happens with
a floor of 100 and a budget of 50; here the buyer gives up after ten rounds whatever
the gap, so the second negotiation ends.
"""

from __future__ import annotations

import argparse
import enum
import random

import anyio
import attrs

from cano_dsl import MemoryStore, Resources, TaskConfig, Workflow, task


class Turn(enum.Enum):
    SELL = enum.auto()
    EVALUATE = enum.auto()
    DEAL = enum.auto()
    NO_DEAL = enum.auto()


ASKING_PRICE = 10_000
FLOOR_PRICE = 100
MAX_ROUNDS = 10


@attrs.frozen
class Negotiation:
    offer: int
    budget: int
    round: int = 1


@task(state=Turn, config=TaskConfig.minimal())
class Seller:
    def __init__(self, rng: random.Random) -> None:
        self.rng = rng

    async def run(self, res: Resources) -> Turn:
        store = res.get("store", MemoryStore)
        state = store.get("negotiation", Negotiation)
        if state.round == 1:
            print(f"  round 1: seller asks ${state.offer}")
        else:
            cut = self.rng.randint(500, 2000)
            offer = max(state.offer - cut, FLOOR_PRICE)
            note = " (final offer)" if offer == FLOOR_PRICE else ""
            print(f"  round {state.round}: seller cuts ${cut}, now asks ${offer}{note}")
            state = attrs.evolve(state, offer=offer)
        store.put("negotiation", state)
        return Turn.EVALUATE


@task(state=Turn, config=TaskConfig.minimal())
class Buyer:
    async def run(self, res: Resources) -> Turn:
        store = res.get("store", MemoryStore)
        state = store.get("negotiation", Negotiation)
        if state.offer <= state.budget:
            print(f"           buyer accepts ${state.offer} (budget ${state.budget})")
            store.put("result", state)
            return Turn.DEAL
        if state.round >= MAX_ROUNDS:
            ratio = state.offer / state.budget
            print(f"           buyer walks away: ${state.offer} is {ratio:.1f}x the budget")
            store.put("result", state)
            return Turn.NO_DEAL
        store.put("negotiation", attrs.evolve(state, round=state.round + 1))
        return Turn.SELL


async def negotiate(budget: int, rng: random.Random) -> None:
    store = MemoryStore()
    store.put("negotiation", Negotiation(offer=ASKING_PRICE, budget=budget))
    wf = (
        Workflow(Resources().insert("store", store))
        .register(Turn.SELL, Seller(rng))
        .register(Turn.EVALUATE, Buyer())
        .add_exit_states([Turn.DEAL, Turn.NO_DEAL])
    )
    print(f"asking ${ASKING_PRICE}, buyer budget ${budget}:")
    final = await wf.orchestrate(Turn.SELL)
    result = store.get("result", Negotiation)
    if final is Turn.DEAL:
        discount = (ASKING_PRICE - result.offer) / ASKING_PRICE * 100
        print(
            f"-> DEAL at ${result.offer} in round {result.round} "
            f"({discount:.1f}% below the asking price)\n"
        )
    else:
        print(f"-> NO_DEAL after {result.round} rounds, ${result.offer - result.budget} apart\n")


async def main(seed: int) -> None:
    rng = random.Random(seed)
    await negotiate(1000, rng)
    await negotiate(50, rng)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--seed", type=int, default=3)
    anyio.run(main, parser.parse_args().seed)
