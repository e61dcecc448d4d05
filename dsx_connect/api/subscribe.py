"""Live streams over server-sent events (SSE, https://html.spec.whatwg.org/multipage/server-sent-events.html).

Every stream is fed by Redis pub/sub, so any number of API replicas serve them; each replica holds
one pub/sub connection (:class:`EventHub`, opened while it has a subscriber) and fans it out.

* ``/subscribe/scan-result``: one ``scan_result`` event per stored result (SPEC §7), ``id`` = the
  result's sequence number in the results index. The pub/sub message only wakes the stream, which
  then reads the index after the last id it sent: a stream resumes exactly after ``Last-Event-ID``,
  and reads only as fast as its client takes events (the socket's flow control holds it), so the
  server keeps at most one page of events per client. What retention dropped before a slow client
  read it is announced by one ``dropped`` event (``{"dropped", "from_seq", "to_seq"}``).
* ``/subscribe/job-summary/{job_id}``: ``job_summary`` events carrying the job view, ``id`` = the
  job's ``rev`` (grows with every visible change). The current state is sent at once on connect
  (unless ``Last-Event-ID`` already names it), then each change, at most ten a second: intermediate
  states may be merged, never the latest lost.
* ``/subscribe/jobs``: a ``job_summary`` event (the job view) after every change of any job, at most
  ten a second per job (intermediate states may be merged), and a ``resync`` event when some may
  have been missed (a slow client, the hub reconnected): the client then reads ``GET /scan/jobs``
  once. No snapshot on connect: the dashboard reads one when it loads and after a reconnect.
* ``/subscribe/connector-registered``: a ``connectors`` snapshot on connect, then ``connector``
  events (``{"event": registered|unregistered|expired, "connector"}``). Each client has a bounded
  queue (``DSXCONNECT_SSE__CLIENT_QUEUE_SIZE``); when it overflows the events are replaced by a
  ``dropped`` event and a fresh snapshot.

``DSX_LOG_SSE_EVENTS=1`` logs every event sent (``sse.event stream=… event=… id=… data=…``), as 1.x does.

Heartbeats are ``: ping`` comments every ``DSXCONNECT_SSE__PING_S``; a client that reads nothing for
``DSXCONNECT_SSE__SEND_TIMEOUT_S`` is disconnected (its browser reconnects and resumes).
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import time
from collections import defaultdict, deque
from collections.abc import AsyncIterator, Awaitable
from contextlib import asynccontextmanager
from typing import Annotated, Any, TypeVar

import anyio
import redis.asyncio as aredis
from fastapi import APIRouter, Depends, Header, HTTPException, Path, Request
from redis.exceptions import RedisError
from sse_starlette import EventSourceResponse, ServerSentEvent
from sse_starlette.sse import SendTimeoutError
from starlette.types import Receive, Scope, Send

from dsx_connect import keys
from dsx_connect.api.deps import SettingsDep
from dsx_connect.auth.middleware import bearer
from dsx_connect.redis_client import async_redis, get_redis
from dsx_connect.state.auth_operators import SESSION_COOKIE, OperatorAuth
from dsx_connect.state.connectors import async_connector_records
from dsx_connect.state.events import subscribe_events
from dsx_connect.state.jobs import async_job_exists, async_job_record, job_rev, job_view
from dsx_connect.state.results import async_result_seq, async_results_after

log = logging.getLogger(__name__)
T = TypeVar("T")

router = APIRouter(prefix="/subscribe", tags=["subscribe"])

RETRY_MS = 2000  # reconnection delay a browser is told to use
POLL_S = 5.0  # streams re-read their state this often even without a message (a missed wake-up)
COALESCE_S = 0.1  # at most ten reads a second per stream
PAGE = 256  # scan results read (and held) at a time per stream
LINGER_S = 10.0  # the hub keeps its subscription this long after its last stream ends


class Mailbox:
    """What the hub hands one stream: at most ``size`` payloads; when full the oldest is dropped."""

    def __init__(self, size: int) -> None:
        self._items: deque[str] = deque()
        self._size = size
        self._event = asyncio.Event()
        self.dropped = 0
        self.lost = False  # the hub lost its connection: messages may be missing

    def put(self, payload: str) -> None:
        if len(self._items) >= self._size:
            self._items.popleft()
            self.dropped += 1
        self._items.append(payload)
        self._event.set()

    def mark_lost(self) -> None:
        self.lost = True
        self._event.set()

    async def wait(self, timeout: float) -> None:
        """Until something arrives or ``timeout`` passes."""
        with anyio.move_on_after(timeout):
            await self._event.wait()
        self._event.clear()

    def take(self) -> tuple[list[str], int, bool]:
        """(payloads, how many were dropped, whether messages may be missing) since the last take."""
        items, dropped, lost = list(self._items), self.dropped, self.lost
        self._items.clear()
        self.dropped, self.lost = 0, False
        return items, dropped, lost


class EventHub:
    """One Redis pub/sub connection per API process, fanned out to its SSE streams."""

    def __init__(self, client: aredis.Redis) -> None:
        self.client = client
        self._boxes: dict[str, set[Mailbox]] = defaultdict(set)
        self._task: asyncio.Task[None] | None = None
        self._ready = asyncio.Event()

    @asynccontextmanager
    async def subscribe(self, channel: str, size: int = 1) -> AsyncIterator[Mailbox]:
        """A mailbox for ``channel`` while the block runs (subscribed once this returns, if Redis is up)."""
        box = Mailbox(size)
        self._boxes[channel].add(box)
        if self._task is None or self._task.done():
            self._ready = asyncio.Event()
            self._task = asyncio.create_task(self._read(), name="sse-event-hub")
        try:
            with anyio.move_on_after(5.0):
                await self._ready.wait()
            yield box
        finally:
            self._boxes[channel].discard(box)
            if not self._boxes[channel]:
                del self._boxes[channel]

    async def aclose(self) -> None:
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
        await self.client.aclose()

    async def _read(self) -> None:
        backoff, reconnected = 0.5, False
        while True:
            try:
                async with subscribe_events(self.client) as subscription:  # no message missed from here
                    self._ready.set()
                    if reconnected:
                        for boxes in self._boxes.values():
                            for box in boxes:
                                box.mark_lost()
                    backoff, idle_since = 0.5, None
                    while True:
                        message = await subscription.next(timeout=1.0)
                        if message is not None:
                            for box in self._boxes.get(message["channel"], ()):
                                box.put(message["data"])
                            for box in self._boxes.get(message.get("pattern") or "", ()):
                                box.put(message["data"])  # subscribers of every job's channel
                        if self._boxes:
                            idle_since = None
                        elif idle_since is None:
                            idle_since = time.monotonic()
                        elif time.monotonic() - idle_since > LINGER_S:
                            self._task = None  # the next subscriber starts a new reader
                            return
            except (RedisError, OSError) as exc:
                log.warning("SSE hub lost Redis pub/sub (%s); reconnecting in %.1fs", exc, backoff)
                self._ready.set()  # streams go on polling meanwhile
                reconnected = True
                await asyncio.sleep(backoff)
                backoff = min(backoff * 2, 10.0)


class EventStream(EventSourceResponse):
    """An SSE response that closes quietly when its client stops reading (``send_timeout``)."""

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        try:
            await super().__call__(scope, receive, send)
        except SendTimeoutError:
            log.warning("SSE client read nothing for %ss: stream closed", self.send_timeout)


def get_hub(request: Request) -> EventHub:
    return request.app.state.event_hub


HubDep = Annotated[EventHub, Depends(get_hub)]
LastEventId = Annotated[str | None, Header(alias="Last-Event-ID", max_length=64)]


def log_sse_events() -> bool:
    """``DSX_LOG_SSE_EVENTS=1`` (the 1.x switch): log every event sent."""
    return os.environ.get("DSX_LOG_SSE_EVENTS", "").strip().lower() in ("1", "true", "yes", "on")


async def _logged(events: AsyncIterator[ServerSentEvent], stream: str) -> AsyncIterator[ServerSentEvent]:
    async for event in events:
        if event.event or event.data:  # not the opening comment
            data = event.data if isinstance(event.data, str) else str(event.data)
            log.info("sse.event stream=%s event=%s id=%s data=%s", stream, event.event, event.id, data[:1000])
        yield event


def _stream(events: AsyncIterator[ServerSentEvent], settings: SettingsDep, request: Request) -> EventStream:
    if log_sse_events():
        events = _logged(events, getattr(events, "__name__", "sse").strip("_"))
    session = request.cookies.get(SESSION_COOKIE, "")
    by_key = request.headers.get("x-api-key") or bearer(dict(request.headers))
    if settings.auth.enabled and session and not by_key:
        events = _while_session_lasts(events, OperatorAuth(get_redis(), settings.auth), session)
    return EventStream(events, ping=settings.sse.ping_s, send_timeout=settings.sse.send_timeout_s)


async def _while_session_lasts(
    events: AsyncIterator[ServerSentEvent], operators: OperatorAuth, session: str
) -> AsyncIterator[ServerSentEvent]:
    """``events`` until the session that opened the stream ends (logout, expiry, its API key
    removed): access is checked when a stream opens, and a stream may stay open for days. The
    session is read again before an event once ``POLL_S`` has passed since the last read."""
    checked = time.monotonic()
    async for event in events:
        if time.monotonic() - checked >= POLL_S:
            if not await anyio.to_thread.run_sync(operators.session_ok, session):
                log.info("event stream closed: its session ended")
                return
            checked = time.monotonic()
        yield event


def _as_int(value: str | None) -> int | None:
    try:
        return int(value) if value is not None else None
    except ValueError:
        return None


def _dropped(first: int, last: int, reason: str) -> ServerSentEvent:
    body = {"dropped": last - first + 1, "from_seq": first, "to_seq": last, "reason": reason}
    return ServerSentEvent(json.dumps(body), event="dropped", id=str(last))


# ---- scan results ------------------------------------------------------------------------------


#: what the OpenAPI document says of a stream: server-sent events, not JSON
_EVENT_STREAM: dict[int | str, dict[str, Any]] = {
    200: {
        "description": "server-sent events",
        "content": {"text/event-stream": {"schema": {"type": "string"}}},
    }
}


@router.get("/scan-result", response_class=EventSourceResponse, responses=_EVENT_STREAM)
async def subscribe_scan_results(
    request: Request, hub: HubDep, settings: SettingsDep, last_event_id: LastEventId = None
) -> EventStream:
    """Each stored scan result as it lands (``scan_result`` events, id = sequence number)."""
    return _stream(_scan_results(hub, _as_int(last_event_id)), settings, request)


DROPPED_BY_RETENTION = "retention dropped these results before this client read them"


async def _scan_results(hub: EventHub, after: int | None) -> AsyncIterator[ServerSentEvent]:
    async with hub.subscribe(keys.CHANNEL_SCAN_RESULT) as box:
        while (last := await _redis_or_none(_start_seq(hub.client, after))) is None:
            await box.wait(POLL_S)
        yield ServerSentEvent(comment=f"scan results after seq {last}", retry=RETRY_MS)
        while True:
            page = await _redis_or_none(_read_results(hub.client, last))
            if page is not None:
                events, last, more = page
                for event in events:
                    yield event
                if more:
                    continue
            await box.wait(POLL_S)
            await anyio.sleep(COALESCE_S)


async def _redis_or_none(read: Awaitable[T]) -> T | None:
    """``await read``, or None (logged) while Redis is unreachable: a stream waits, it does not fail."""
    try:
        return await read
    except (RedisError, OSError) as exc:
        log.warning("SSE stream cannot read Redis (%s); retrying", exc)
        return None


async def _start_seq(r: aredis.Redis, after: int | None) -> int:
    top = await async_result_seq(r)
    return top if after is None or after > top else after  # a larger id is from an emptied store


async def _read_results(r: aredis.Redis, last: int) -> tuple[list[ServerSentEvent], int, bool]:
    """The events after sequence ``last`` (one page at most, with ``dropped`` markers for gaps), the
    new last sequence, and whether more may follow at once."""
    rows = await async_results_after(r, last, PAGE)
    if not rows:
        if await async_result_seq(r) < last:  # the store was emptied: start over
            return [], 0, True
        return [], last, False
    events: list[ServerSentEvent] = []
    gap_from = last + 1
    for seq, raw in rows:
        if raw is None:  # trimmed by retention between the two reads
            continue
        if seq > gap_from:
            events.append(_dropped(gap_from, seq - 1, DROPPED_BY_RETENTION))
        events.append(ServerSentEvent(raw, event="scan_result", id=str(seq)))
        gap_from = seq + 1
    last = rows[-1][0]
    if gap_from <= last:
        events.append(_dropped(gap_from, last, DROPPED_BY_RETENTION))
    return events, last, len(rows) == PAGE


# ---- job summaries -----------------------------------------------------------------------------


@router.get(
    "/job-summary/{job_id}",
    response_class=EventSourceResponse,
    responses={**_EVENT_STREAM, 404: {"description": "unknown job"}},
)
async def subscribe_job_summary(
    request: Request,
    job_id: Annotated[str, Path(max_length=128)],
    hub: HubDep,
    settings: SettingsDep,
    last_event_id: LastEventId = None,
) -> EventStream:
    """The job's state now, then after every change (``job_summary`` events, id = the job's rev)."""
    if not await async_job_exists(hub.client, job_id):
        raise HTTPException(404, f"job {job_id} not found")
    return _stream(_job_summaries(hub, job_id, _as_int(last_event_id)), settings, request)


async def _job_summaries(hub: EventHub, job_id: str, seen_rev: int | None) -> AsyncIterator[ServerSentEvent]:
    async with hub.subscribe(keys.channel_job(job_id)) as box:
        yield ServerSentEvent(comment=f"job {job_id}", retry=RETRY_MS)
        while True:
            data = await _redis_or_none(async_job_record(hub.client, job_id))
            if data and (rev := job_rev(data)) != seen_rev:
                yield ServerSentEvent(json.dumps(job_view(data)), event="job_summary", id=str(rev))
                seen_rev = rev
            await box.wait(POLL_S)
            await anyio.sleep(COALESCE_S)


@router.get("/jobs", response_class=EventSourceResponse, responses=_EVENT_STREAM)
async def subscribe_jobs(request: Request, hub: HubDep, settings: SettingsDep) -> EventStream:
    """Every job's changes (``job_summary``); ``resync`` when some may be missing (read ``/scan/jobs`` then)."""
    return _stream(_all_job_summaries(hub, settings.sse.client_queue_size), settings, request)


async def _all_job_summaries(hub: EventHub, queue_size: int) -> AsyncIterator[ServerSentEvent]:
    async with hub.subscribe(keys.CHANNEL_JOBS_PATTERN, queue_size) as box:
        yield ServerSentEvent(comment="jobs", retry=RETRY_MS)
        while True:
            await box.wait(POLL_S)
            items, dropped, lost = box.take()
            if dropped or lost:
                reason = "client too slow" if dropped else "hub reconnected"
                yield ServerSentEvent(json.dumps({"dropped": dropped, "reason": reason}), event="resync")
                continue
            latest: dict[str, tuple[int, str]] = {}  # job id -> (rev, payload): the newest state of each
            for payload in items:
                try:
                    job = json.loads(payload)
                    job_id, rev = str(job["job_id"]), int(job.get("rev") or 0)
                except (ValueError, KeyError, TypeError):
                    continue
                if job_id not in latest or rev >= latest[job_id][0]:
                    latest[job_id] = (rev, payload)
            for _, payload in latest.values():
                yield ServerSentEvent(payload, event="job_summary")
            await anyio.sleep(COALESCE_S)


# ---- connectors --------------------------------------------------------------------------------


@router.get("/connector-registered", response_class=EventSourceResponse, responses=_EVENT_STREAM)
async def subscribe_connectors(request: Request, hub: HubDep, settings: SettingsDep) -> EventStream:
    """A ``connectors`` snapshot, then each registration, unregistration and expiry (``connector``)."""
    return _stream(
        _connector_events(hub, settings.sse.client_queue_size, settings.connectors.heartbeat_ttl_s),
        settings,
        request,
    )


async def _live_connectors(r: aredis.Redis, ttl_s: float) -> list[dict[str, Any]]:
    now = time.time()
    records = await async_connector_records(r)
    live = [c for c in records if now - c.last_heartbeat_ts <= ttl_s]
    return [c.model_dump(mode="json") for c in sorted(live, key=lambda c: (c.name, c.uuid))]


async def _connector_events(hub: EventHub, queue_size: int, ttl_s: float) -> AsyncIterator[ServerSentEvent]:
    async with hub.subscribe(keys.CHANNEL_CONNECTORS, queue_size) as box:
        yield ServerSentEvent(comment="connectors", retry=RETRY_MS)
        connectors: list[dict[str, Any]] | None = None
        resync = True
        while True:
            if resync or connectors is None:
                connectors = await _redis_or_none(_live_connectors(hub.client, ttl_s))
                if connectors is not None:
                    yield ServerSentEvent(json.dumps({"connectors": connectors}), event="connectors")
            await box.wait(POLL_S)
            items, dropped, lost = box.take()
            resync = bool(dropped or lost)
            if resync:  # what is left is older than the snapshot that follows: send that instead
                reason = "client too slow" if dropped else "hub reconnected"
                yield ServerSentEvent(
                    json.dumps({"dropped": dropped + len(items), "reason": reason}), event="dropped"
                )
            elif connectors is not None:  # (else the next snapshot covers them)
                for payload in items:
                    yield ServerSentEvent(payload, event="connector")


@asynccontextmanager
async def event_hub(redis_url: str) -> AsyncIterator[EventHub]:
    """The process's hub, with its own async Redis client, for the app's lifespan."""
    hub = EventHub(async_redis(redis_url))  # Sentinel-aware
    try:
        yield hub
    finally:
        await hub.aclose()
