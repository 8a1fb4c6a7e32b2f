"""Streaming a response out of a replica, chunk by chunk, with plain actor calls.

    replica:  ASGI app ──send()──▶ ResponseStream ──head + first chunks──▶ handle_http's reply
                                        │ (held in the replica's StreamRegistry by stream id)
    proxy:    loop: replica.stream_next(stream_id) ──▶ (bytes so far, MORE | DONE | FAILED)
                    ──▶ client, as each arrives

    handle.options(stream=True).remote(...): the method's generator ──▶ ItemStream, pulled the
    same way (``stream_next`` gives the items so far); an exception the generator raises reaches
    the caller after the items before it.

``handle_http`` returns as soon as the app has either finished its response (the common case: one
round trip, nothing registered) or sent a body chunk with ``more_body=True``: then it returns the
head and the chunks so far, and the rest is pulled with ``stream_next``, each call returning every
chunk that arrived since the last (waiting for at least one). A stream nobody pulls from for
``IDLE_TIMEOUT_S`` (its client went away with the proxy) is cancelled by the replica's periodic
health check, so it cannot hold a request slot forever.
"""

from __future__ import annotations

import asyncio
import itertools
import time
from typing import Any

MORE, DONE, FAILED = "more", "done", "failed"
IDLE_TIMEOUT_S = 60.0
HEAD_GRACE_S = 0.05  # a head with no body after this long is streamed (sent on at once)


class ResponseStream:
    """One HTTP response as an ASGI app sends it: a head, then body chunks, then the end."""

    def __init__(self):
        self.status: int | None = None
        self.headers: list[tuple[bytes, bytes]] = []
        self.streaming = False   # a chunk came with more_body=True: not a one-piece response
        self.finished = False
        self.error: str | None = None
        self._chunks: list[bytes] = []
        self._changed = asyncio.Event()

    async def send(self, message: dict) -> None:
        """The ASGI ``send`` given to the app."""
        kind = message["type"]
        if self.finished:
            return  # after the end (or after a failure): ignored, as a server would
        if kind == "http.response.start":
            self.status = int(message["status"])
            self.headers = [(bytes(k), bytes(v)) for k, v in message.get("headers", ())]
        elif kind == "http.response.body":
            if self.status is None:
                raise RuntimeError("the ASGI app sent a response body before its start "
                                   "(http.response.start)")
            body = message.get("body", b"")
            if body:
                self._chunks.append(bytes(body))
            if message.get("more_body", False):
                self.streaming = True
            else:
                self.finished = True
        self._changed.set()

    def replace_with(self, status: int, headers: list, body: bytes) -> None:
        """Answer with this complete response instead (the app failed before its head)."""
        assert self.status is None or not self.streaming, "the head already went out"
        self.status, self.headers, self.streaming = status, list(headers), False
        self._chunks = [body]
        self.finished = True
        self._changed.set()

    def fail(self, error: str) -> None:
        """End the stream because the app raised or was cancelled after the head went out."""
        if not self.finished:
            self.error = error
            self.finished = True
            self._changed.set()

    @property
    def head_sent(self) -> bool:
        """Whether the client may already have the head: a streamed response's went out."""
        return self.status is not None and self.streaming

    async def wait_head(self, grace_s: float = HEAD_GRACE_S) -> None:
        """Wait until the response is complete, or is known to stream: it sent a chunk with
        more to come, or its head alone and nothing for ``grace_s`` (server-sent events that
        wait for their first event: the client gets the head now, the body as it comes)."""
        while not (self.finished or (self.status is not None and self.streaming)):
            self._changed.clear()
            if self.status is None:
                await self._changed.wait()
                continue
            try:
                await asyncio.wait_for(self._changed.wait(), grace_s)
            except asyncio.TimeoutError:
                self.streaming = True

    def take(self) -> bytes:
        """The body bytes sent since the last take."""
        chunks, self._chunks = self._chunks, []
        return b"".join(chunks)

    async def next_chunks(self) -> tuple[bytes, str]:
        """At least one new chunk (or the end): ``(bytes, MORE | DONE | FAILED)``."""
        while not self._chunks and not self.finished:
            self._changed.clear()
            await self._changed.wait()
        data = self.take()
        if not self.finished:
            return data, MORE
        return data, FAILED if self.error else DONE


class ItemStream:
    """The items a deployment's generator yields, for a streaming handle call."""

    def __init__(self):
        self.finished = False
        self.error: BaseException | None = None
        self._items: list = []
        self._changed = asyncio.Event()

    def put(self, item: Any) -> None:
        self._items.append(item)
        self._changed.set()

    def finish(self, error: BaseException | None = None) -> None:
        if not self.finished:
            self.error, self.finished = error, True
            self._changed.set()

    def fail(self, reason: str) -> None:
        self.finish(RuntimeError(f"the stream ended early: {reason}"))

    async def next_chunks(self) -> tuple[list, str]:
        """At least one new item (or the end): ``(items, MORE | DONE)``; after the last item
        of a generator that raised, its exception."""
        while not self._items and not self.finished:
            self._changed.clear()
            await self._changed.wait()
        items, self._items = self._items, []
        if not self.finished:
            return items, MORE
        if self.error is not None and not items:
            raise self.error
        return items, DONE if self.error is None else MORE


class _Entry:
    __slots__ = ("stream", "task", "last_poll", "polling")

    def __init__(self, stream: ResponseStream | ItemStream, task: asyncio.Task):
        self.stream = stream
        self.task = task
        self.last_poll = time.monotonic()
        self.polling = 0


class StreamRegistry:
    """The replica's open streams, by id."""

    def __init__(self):
        self._entries: dict[int, _Entry] = {}
        self._ids = itertools.count(1)

    def __len__(self) -> int:
        return len(self._entries)

    def add(self, stream: ResponseStream | ItemStream, task: asyncio.Task) -> int:
        stream_id = next(self._ids)
        self._entries[stream_id] = _Entry(stream, task)
        return stream_id

    async def next(self, stream_id: int) -> tuple[Any, str]:
        """What the stream produced since the last call (waiting for something); the stream is
        forgotten once it ends."""
        entry = self._entries.get(stream_id)
        if entry is None:
            raise KeyError(f"no open response stream {stream_id} on this replica (it ended, was "
                           f"cancelled, or sat unread for {IDLE_TIMEOUT_S:.0f} s)")
        entry.polling += 1
        try:
            data, state = await entry.stream.next_chunks()
        except BaseException:
            self._entries.pop(stream_id, None)
            raise
        finally:
            entry.polling -= 1
            entry.last_poll = time.monotonic()
        if state != MORE:
            self._entries.pop(stream_id, None)
        return data, state

    def cancel(self, stream_id: int) -> bool:
        """Stop producing a stream (its client went away); False if it was not open."""
        entry = self._entries.pop(stream_id, None)
        if entry is None:
            return False
        entry.task.cancel()
        entry.stream.fail("cancelled")
        return True

    def sweep(self, now: float | None = None, idle_timeout_s: float = IDLE_TIMEOUT_S) -> int:
        """Cancel streams nobody has pulled from for ``idle_timeout_s``; returns how many."""
        now = time.monotonic() if now is None else now
        stale = [stream_id for stream_id, entry in self._entries.items()
                 if not entry.polling and now - entry.last_poll > idle_timeout_s]
        for stream_id in stale:
            self.cancel(stream_id)
        return len(stale)

