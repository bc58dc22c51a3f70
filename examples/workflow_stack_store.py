"""Tasks that talk only through a shared `MemoryStore`: request in, metrics, response out.

    python examples/workflow_stack_store.py

Port of cano's ``workflow_stack_store`` example. Each request gets a fresh store,
pre-filled with its id and body before the run. EXTRACT_METRICS reads the body and
writes revenue, customer and transaction count; BUILD_RESPONSE reads those and writes
the response; the caller reads the response from the store when the run ends. Three
requests (a purchase, a subscription, a query) take the same two steps with different
data.
"""

from __future__ import annotations

import enum

import anyio

from cano_dsl import MemoryStore, Resources, Workflow, task


class Req(enum.Enum):
    EXTRACT_METRICS = enum.auto()
    BUILD_RESPONSE = enum.auto()
    COMPLETE = enum.auto()


PRICES = {"purchase": (99.99, "cust_12345"), "subscription": (29.99, "cust_67890")}


@task(state=Req)
class ExtractMetrics:
    async def run(self, res: Resources) -> Req:
        store = res.get("store", MemoryStore)
        body = store.get("request_body", str)
        await anyio.sleep(0.02)  # pretend to parse
        kind = body.split(":", 1)[0].strip()
        revenue, customer = PRICES.get(kind, (0.0, "anonymous"))
        store.put("revenue", revenue)
        store.put("customer_id", customer)
        store.put("transactions", 1 if revenue else 0)
        store.put("processing_ms", 150 if revenue > 50 else 75)
        print(f"  metrics: kind={kind!r} revenue={revenue:.2f} customer={customer}")
        return Req.BUILD_RESPONSE


@task(state=Req)
class BuildResponse:
    async def run(self, res: Resources) -> Req:
        store = res.get("store", MemoryStore)
        revenue = store.get("revenue", float)
        customer = store.get("customer_id", str)
        count = store.get("transactions", int)
        ms = store.get("processing_ms", int)
        await anyio.sleep(0.01)
        if revenue > 0:
            message = (
                f"Transaction successful: customer {customer} made {count} transaction(s) "
                f"totalling ${revenue:.2f} ({ms} ms)"
            )
        else:
            message = f"No transactions processed for customer {customer} ({ms} ms)"
        store.put("response", message)
        store.put("status", 200)
        return Req.COMPLETE


def workflow(store: MemoryStore) -> Workflow[Req]:
    return (
        Workflow(Resources().insert("store", store))
        .register(Req.EXTRACT_METRICS, ExtractMetrics())
        .register(Req.BUILD_RESPONSE, BuildResponse())
        .add_exit_state(Req.COMPLETE)
    )


async def main() -> None:
    requests = [
        ("req_001", "purchase: laptop"),
        ("req_002", "subscription: premium plan"),
        ("req_003", "query: account balance"),
    ]
    for request_id, body in requests:
        store = MemoryStore()
        store.put("request_id", request_id)
        store.put("request_body", body)
        print(f"{request_id} ({body!r}):")
        final = await workflow(store).orchestrate(Req.EXTRACT_METRICS)
        print(f"  final state: {final.name}")
        print(f"  revenue: ${store.get('revenue', float):.2f}")
        print(f"  response [{store.get('status')}]: {store.get('response', str)}")
        print(f"  keys in the store: {sorted(store.keys(), key=str)}\n")


if __name__ == "__main__":
    anyio.run(main)
