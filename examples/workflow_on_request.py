"""One workflow run per HTTP request, each with resources of its own.

    python examples/workflow_on_request.py            # serve, send 3 requests, stop
    python examples/workflow_on_request.py --serve    # keep serving on 127.0.0.1:4001

Port of cano's ``workflow_on_request`` example (an axum server there). A tiny HTTP
server on anyio answers ``POST /process`` with a JSON body ``{"text": ...}``. For each
request the handler builds a fresh `MemoryStore` and `Resources` holding the request
(so concurrent requests never see each other's data), builds the workflow
PARSE -> TRANSFORM -> DONE (cheap: a workflow is an immutable description) and runs
it; the response is read from the store afterwards. An empty text fails PARSE, and
the handler turns the `StateFailure` into a 422 response.

By default the script starts the server on a free port, sends three requests at the
same time with its own client, prints the responses and exits. With ``--serve`` it
keeps serving; try::

    curl -X POST http://127.0.0.1:4001/process -d '{"text": "Hello World From Cano"}'
"""

from __future__ import annotations

import argparse
import enum
import json
from typing import Any, cast

import anyio
import anyio.abc
import attrs

from cano_dsl import MemoryStore, Resources, StateFailure, TaskConfig, Workflow, task


class Text(enum.Enum):
    PARSE = enum.auto()
    TRANSFORM = enum.auto()
    DONE = enum.auto()


@attrs.frozen
class RequestParams:
    text: str


@task(state=Text, config=TaskConfig.minimal())
class Parse:
    async def run(self, res: Resources) -> Text:
        params = res.get("request", RequestParams)
        if not params.text.strip():
            raise ValueError("input text is empty")
        res.get("store", MemoryStore).put("validated_text", params.text)
        return Text.TRANSFORM


@task(state=Text, config=TaskConfig.minimal())
class Transform:
    async def run(self, res: Resources) -> Text:
        store = res.get("store", MemoryStore)
        text = store.get("validated_text", str)
        await anyio.sleep(0.05)  # some work, so concurrent requests really overlap
        store.put("word_count", len(text.split()))
        store.put("uppercased", text.upper())
        return Text.DONE


def build_workflow(res: Resources) -> Workflow[Text]:
    return (
        Workflow(res)
        .register(Text.PARSE, Parse())
        .register(Text.TRANSFORM, Transform())
        .add_exit_state(Text.DONE)
        .with_total_timeout(5)
    )


async def process(payload: dict[str, Any]) -> tuple[int, dict[str, Any]]:
    """The handler: one isolated workflow run per request."""
    text = payload.get("text")
    if not isinstance(text, str):
        return 400, {"error": 'the body must be {"text": "..."}'}
    store = MemoryStore()
    res = Resources().insert("store", store).insert("request", RequestParams(text))
    try:
        await build_workflow(res).orchestrate(Text.PARSE)
    except StateFailure as exc:
        return 422, {"error": str(exc.error), "state": exc.state.name}
    return 200, {
        "original": text,
        "word_count": store.get("word_count", int),
        "uppercased": store.get("uppercased", str),
    }


# -- a minimal HTTP/1.1 server and client (one request per connection) ---------------

REASONS = {200: "OK", 400: "Bad Request", 404: "Not Found", 422: "Unprocessable Entity"}


async def read_message(stream: anyio.abc.ByteStream) -> tuple[str, bytes]:
    """The head (request or status line plus headers) and the body of one message."""
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = await stream.receive()
        data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    length = 0
    for line in lines[1:]:
        name, _, value = line.partition(":")
        if name.strip().lower() == "content-length":
            length = int(value.strip())
    while len(body) < length:
        body += await stream.receive()
    return lines[0], body[:length]


async def handle(stream: anyio.abc.SocketStream) -> None:
    async with stream:
        try:
            first_line, body = await read_message(stream)
        except (anyio.EndOfStream, anyio.BrokenResourceError, ValueError):
            return  # the client went away, or sent something that is not HTTP
        method, path, *_ = [*first_line.split(" "), "", ""]
        if (method, path) != ("POST", "/process"):
            status, reply = 404, {"error": "only POST /process is served"}
        else:
            try:
                payload = json.loads(body or b"null")
            except json.JSONDecodeError:
                payload = None
            if isinstance(payload, dict):
                status, reply = await process(cast(dict[str, Any], payload))
            else:
                status, reply = 400, {"error": "the body must be a JSON object"}
        data = json.dumps(reply).encode()
        head = (
            f"HTTP/1.1 {status} {REASONS[status]}\r\nContent-Type: application/json\r\n"
            f"Content-Length: {len(data)}\r\nConnection: close\r\n\r\n"
        )
        await stream.send(head.encode() + data)


async def post(port: int, payload: dict[str, Any]) -> tuple[int, dict[str, Any]]:
    body = json.dumps(payload).encode()
    async with await anyio.connect_tcp("127.0.0.1", port) as stream:
        await stream.send(
            b"POST /process HTTP/1.1\r\nHost: localhost\r\nContent-Type: application/json\r\n"
            + f"Content-Length: {len(body)}\r\n\r\n".encode()
            + body
        )
        status_line, reply = await read_message(stream)
    return int(status_line.split(" ")[1]), json.loads(reply)


async def demo() -> None:
    texts = ["Hello World From Cano", "state machines on anyio", "   "]
    listener = await anyio.create_tcp_listener(local_host="127.0.0.1", local_port=0)
    port = listener.extra(anyio.abc.SocketAttribute.local_port)
    print(f"serving on http://127.0.0.1:{port}/process; sending {len(texts)} requests at once")
    results: dict[int, tuple[int, dict[str, Any]]] = {}

    async def send(i: int, text: str) -> None:
        results[i] = await post(port, {"text": text})

    async with anyio.create_task_group() as tg:
        tg.start_soon(listener.serve, handle)
        async with anyio.create_task_group() as clients:
            for i, text in enumerate(texts):
                clients.start_soon(send, i, text)
        tg.cancel_scope.cancel()
    for i, text in enumerate(texts):
        status, reply = results[i]
        print(f"  {text!r} -> {status} {json.dumps(reply)}")


async def serve(port: int) -> None:
    listener = await anyio.create_tcp_listener(local_host="127.0.0.1", local_port=port)
    print(f"listening on http://127.0.0.1:{port}/process (Ctrl-C to stop)")
    await listener.serve(handle)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--serve", action="store_true", help="keep serving until Ctrl-C")
    parser.add_argument("--port", type=int, default=4001, help="port for --serve")
    args = parser.parse_args()
    if not args.serve:
        anyio.run(demo)
    else:
        try:
            anyio.run(serve, args.port)
        except KeyboardInterrupt:
            pass
