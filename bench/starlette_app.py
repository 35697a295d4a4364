"""The sse-starlette baseline: an in-memory broadcast on uvicorn.

A straightforward, idiomatic implementation: each ``GET /sse`` stream owns an
``asyncio.Queue``; ``POST /publish`` (body: the event's JSON envelope) puts
one ``ServerSentEvent`` into every queue, and sse-starlette's
``EventSourceResponse`` encodes and sends what each generator yields.

Run: ``uvicorn starlette_app:app --app-dir bench --port 8001``.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator

from sse_starlette import EventSourceResponse, ServerSentEvent
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

#: One queue per connected stream.
clients: set[asyncio.Queue[ServerSentEvent]] = set()


async def sse(request: Request) -> EventSourceResponse:
    queue: asyncio.Queue[ServerSentEvent] = asyncio.Queue()
    clients.add(queue)  # subscribed before the response starts: nothing missed

    async def events() -> AsyncIterator[ServerSentEvent]:
        try:
            while True:
                yield await queue.get()
        finally:
            clients.discard(queue)

    return EventSourceResponse(events(), ping=15)


async def publish(request: Request) -> JSONResponse:
    body = (await request.body()).decode("utf-8")
    envelope = json.loads(body)
    event = ServerSentEvent(data=body, id=str(envelope["id"]), event=envelope.get("topic"))
    for queue in clients:
        queue.put_nowait(event)
    return JSONResponse({"subscribers": len(clients)})


async def health(request: Request) -> JSONResponse:
    return JSONResponse({"ok": True, "subscribers": len(clients)})


app = Starlette(routes=[
    Route("/sse", sse),
    Route("/publish", publish, methods=["POST"]),
    Route("/healthz", health),
])
