"""The SSE streams against real cores (uvicorn) and a real Redis: events, ids, resumption with
``Last-Event-ID``, heartbeats, several API replicas, and what a slow client costs the server."""

from __future__ import annotations

import json
import socket
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest
import redis

from dsx_connect import keys
from dsx_connect.state.results import ResultStore
from shared.models import EventConnector, ScanResultEvent
from tests.dsx_connect.conftest import Core
from tests.support.procs import ServiceProcess, base_env, free_port, redis_server, uvicorn_argv

pytestmark = pytest.mark.integration

RETAIN = 500
QUEUE_SIZE = 8


def start_core(redis_url: str, logs_dir: Path, **env: str) -> Core:
    port = free_port()
    settings = {
        "DSXCONNECT_REDIS_URL": redis_url,
        "DSXCONNECT_SCANNER__SCAN_BINARY_URL": f"http://127.0.0.1:{free_port()}/scan/binary/v2",
        "DSXCONNECT_AUTH__ENABLED": "false",
        "DSXCONNECT_SSE__PING_S": "1",
        "DSXCONNECT_SSE__CLIENT_QUEUE_SIZE": str(QUEUE_SIZE),
        "DSXCONNECT_RESULTS_DB__RETAIN": str(RETAIN),
        **env,
    }
    proc = ServiceProcess(
        f"sse-core-{port}", uvicorn_argv("dsx_connect.app:app", port), base_env(**settings), logs_dir
    )
    proc.start().wait_healthy(f"http://127.0.0.1:{port}/healthz")
    return Core(
        url=f"http://127.0.0.1:{port}",
        redis=redis.Redis.from_url(redis_url, decode_responses=True),
        proc=proc,
    )


@pytest.fixture(scope="module")
def cores(tmp_path_factory: pytest.TempPathFactory, logs_dir: Path) -> Iterator[tuple[Core, Core]]:
    """Two API replicas on one Redis; the second drops a client that reads nothing for 1 s."""
    with redis_server(tmp_path_factory.mktemp("sse-redis")) as (url, _):
        first = start_core(url, logs_dir)
        second = start_core(url, logs_dir, DSXCONNECT_SSE__SEND_TIMEOUT_S="1")
        try:
            yield first, second
        finally:
            for core in (first, second):
                core.proc.stop()
                core.redis.close()


@pytest.fixture(scope="module")
def core(cores: tuple[Core, Core]) -> Core:
    return cores[0]


@pytest.fixture(scope="module")
def connector(core: Core) -> dict[str, str]:
    body = {"name": "fs", "uuid": str(uuid.uuid4()), "url": "http://127.0.0.1:9/fs", "status": "ready"}
    assert httpx.post(f"{core.api}/connectors/register", json=body).status_code == 201
    return body


# ---- a small SSE client (https://html.spec.whatwg.org/multipage/server-sent-events.html) ----------


@dataclass
class Message:
    event: str = "message"
    id: str | None = None
    data: list[str] = field(default_factory=list)
    comment: str | None = None

    def json(self) -> Any:
        return json.loads("\n".join(self.data))


class Stream:
    def __init__(self, response: httpx.Response) -> None:
        self.response = response
        self._lines = response.iter_lines()

    def __iter__(self) -> Iterator[Message]:
        current = Message()
        for line in self._lines:
            if line == "":
                if current.data or current.comment is not None:
                    yield current
                current = Message()
            elif line.startswith(":"):
                yield Message(comment=line[1:].strip())
            else:
                name, _, value = line.partition(":")
                value = value[1:] if value.startswith(" ") else value
                if name == "data":
                    current.data.append(value)
                elif name == "event":
                    current.event = value
                elif name == "id":
                    current.id = value

    def next(self, event: str, timeout: float = 10.0) -> Message:
        """The next message named ``event`` (comments and pings skipped)."""
        deadline = time.monotonic() + timeout
        for message in self:
            if message.comment is None and message.event == event:
                return message
            if time.monotonic() > deadline:
                break
        raise AssertionError(f"no {event!r} event within {timeout}s")

    def opened(self) -> Stream:
        """Wait for the stream's opening comment: from then on it is subscribed."""
        for message in self:
            if message.comment is not None and not message.comment.startswith("ping"):
                return self
        raise AssertionError("the stream closed before it opened")


@contextmanager
def stream(
    core: Core, path: str, last_event_id: str | None = None, receive_buffer: int | None = None
) -> Iterator[Stream]:
    """An SSE stream; ``receive_buffer`` fixes the client socket's buffer (no autotuning), so a
    client that reads nothing stalls the server after the same few bytes on every machine."""
    headers = {"Accept": "text/event-stream"} | ({"Last-Event-ID": last_event_id} if last_event_id else {})
    options = [(socket.SOL_SOCKET, socket.SO_RCVBUF, receive_buffer)] if receive_buffer else None
    with (
        httpx.Client(
            timeout=httpx.Timeout(10.0), transport=httpx.HTTPTransport(socket_options=options)
        ) as client,
        client.stream("GET", core.api + path, headers=headers) as response,
    ):
        assert response.status_code == 200, response.read()
        assert response.headers["content-type"].startswith("text/event-stream")
        yield Stream(response)


# ---- producing events as the workers do ---------------------------------------------------------


def produce_results(
    core: Core, count: int, job_id: str = "sse-job", pad: int = 0, batch: int = 500
) -> list[str]:
    """Store ``count`` results (as the result worker) and publish each batch (as the notifier)."""
    store = ResultStore(core.redis, retain=RETAIN)
    ids = []
    for start in range(0, count, batch):
        events = [
            ScanResultEvent(
                scan_request_id=uuid.uuid4().hex, job_id=job_id, connector=EventConnector(name="fs", uuid="c1"),
                location=f"f{start + n}.txt", metainfo="m" * pad, verdict="Benign",
            )
            for n in range(min(batch, count - start))
        ]  # fmt: skip
        store.store_many(events)
        core.redis.publish(keys.CHANNEL_SCAN_RESULT, events[-1].model_dump_json())
        ids += [e.scan_request_id for e in events]
    return ids


def top_seq(core: Core) -> int:
    return int(core.redis.get(keys.RESULTS_SEQ) or 0)


def new_job(core: Core, connector: dict[str, str], count: int = 3) -> tuple[str, list[str]]:
    job_id = uuid.uuid4().hex
    requests = [
        {"connector": connector, "location": f"f{n}", "metainfo": f"f{n}", "scan_job_id": job_id, "job_item_id": str(n)}
        for n in range(count)
    ]  # fmt: skip
    response = httpx.post(f"{core.api}/scan/request_batch", json={"requests": requests})
    return job_id, response.json()["ids"]


def finish_items(core: Core, job_id: str, request_ids: list[str]) -> None:
    events = [
        ScanResultEvent(
            scan_request_id=rid,
            job_id=job_id,
            connector=EventConnector(uuid="c1"),
            location=rid,
            verdict="Benign",
        )
        for rid in request_ids
    ]
    ResultStore(core.redis, retain=RETAIN).store_many(events)
    core.redis.publish(keys.channel_job(job_id), "{}")


# ---- scan results -------------------------------------------------------------------------------


def test_each_stored_result_is_streamed_with_its_sequence_number_as_id(core: Core) -> None:
    with stream(core, "/subscribe/scan-result") as events:
        events.opened()
        before = top_seq(core)
        ids = produce_results(core, 5, batch=1)

        got = [events.next("scan_result") for _ in ids]

    assert [int(m.id or 0) for m in got] == list(range(before + 1, before + 6))
    assert [m.json()["scan_request_id"] for m in got] == ids
    assert got[0].json()["event_type"] == "scan_result" and got[0].json()["schema_version"] == 1


def test_a_dropped_scan_result_stream_resumes_after_its_last_event_id(core: Core) -> None:
    with stream(core, "/subscribe/scan-result") as events:
        events.opened()
        produce_results(core, 3)
        last = [events.next("scan_result") for _ in range(3)][-1]
    missed = produce_results(core, 4)  # while disconnected

    with stream(core, "/subscribe/scan-result", last_event_id=last.id) as events:
        resumed = [events.next("scan_result") for _ in range(4)]

    assert [m.json()["scan_request_id"] for m in resumed] == missed
    assert [int(m.id or 0) for m in resumed] == list(range(int(last.id or 0) + 1, int(last.id or 0) + 5))


def test_a_slow_reader_costs_one_page_and_gets_told_what_retention_dropped(core: Core) -> None:
    """The stream reads the results index at its client's pace (the socket's flow control holds it),
    so the server holds at most one page for it; what retention dropped before the client got
    there comes as one ``dropped`` event, and every sequence number is accounted for."""
    with stream(core, "/subscribe/scan-result", receive_buffer=256 * 1024) as events:  # a fixed window
        events.opened()
        start = top_seq(core)
        produce_results(
            core, 10_000, pad=1500
        )  # ~20 MB while the client reads nothing: more than the sockets hold
        end = top_seq(core)
        delivered: list[int] = []
        dropped: list[tuple[int, int]] = []
        for message in events:
            if message.event == "scan_result" and message.comment is None:
                delivered.append(int(message.id or 0))
            elif message.event == "dropped":
                body = message.json()
                dropped.append((body["from_seq"], body["to_seq"]))
                assert body["dropped"] == body["to_seq"] - body["from_seq"] + 1
            if (delivered and delivered[-1] == end) or (dropped and dropped[-1][1] == end):
                break

    covered = sorted(delivered + [seq for first, last in dropped for seq in range(first, last + 1)])
    assert covered == list(range(start + 1, end + 1))  # every result either delivered or declared dropped
    assert dropped, "the reader was not slow enough to fall behind retention"
    assert delivered[-RETAIN:] == list(range(end - RETAIN + 1, end + 1))  # what was still kept arrived


def test_a_client_that_reads_nothing_is_disconnected_after_the_send_timeout(cores: tuple[Core, Core]) -> None:
    impatient = cores[1]  # DSXCONNECT_SSE__SEND_TIMEOUT_S=1
    closed = "SSE client read nothing for 1.0s: stream closed"
    before = impatient.proc.log_path.read_text(errors="replace").count(closed)
    seen: list[int] = []

    def gave_up() -> bool:
        return impatient.proc.log_path.read_text(errors="replace").count(closed) > before

    # a window above loopback's 64 KiB segments: a smaller one stalls the reads after the close
    with stream(impatient, "/subscribe/scan-result", receive_buffer=256 * 1024) as events:
        events.opened()
        # Results keep coming until the server gives up: a fixed count could fit in the socket
        # buffers of a roomier machine, or be mostly dropped by retention before the stream sent it.
        deadline = time.monotonic() + 60
        while not gave_up():
            assert time.monotonic() < deadline, "the server never gave up on a client that reads nothing"
            produce_results(impatient, 200, pad=1500)
        produce_results(impatient, 1)  # after the stream closed: it can never arrive
        end = top_seq(impatient)
        with pytest.raises(httpx.RemoteProtocolError):  # the body ends unterminated: the server hung up
            seen.extend(int(m.id or 0) for m in events if m.event == "scan_result" and m.comment is None)

    assert seen and seen[-1] < end


# ---- job summaries ------------------------------------------------------------------------------


def test_a_job_summary_stream_sends_the_current_state_then_each_change(
    core: Core, connector: dict[str, str]
) -> None:
    job_id, _ = new_job(core, connector)
    with stream(core, f"/subscribe/job-summary/{job_id}") as events:
        first = events.next("job_summary")
        httpx.post(f"{core.api}/scan/jobs/{job_id}/pause")
        paused = events.next("job_summary")

    assert first.json()["status"] == "running" and first.json()["enqueued"] == 3
    assert first.id == str(first.json()["rev"])
    assert paused.json()["status"] == "paused" and int(paused.id or 0) > int(first.id or 0)


def test_a_job_summary_stream_resumes_with_what_changed_meanwhile(
    core: Core, connector: dict[str, str]
) -> None:
    job_id, request_ids = new_job(core, connector)
    with stream(core, f"/subscribe/job-summary/{job_id}") as events:
        seen = events.next("job_summary")
    finish_items(core, job_id, request_ids[:2])  # progress while disconnected

    with stream(core, f"/subscribe/job-summary/{job_id}", last_event_id=seen.id) as events:
        resumed = events.next("job_summary")
    with stream(core, f"/subscribe/job-summary/{job_id}", last_event_id=resumed.id) as events:
        events.opened()
        httpx.post(f"{core.api}/scan/jobs/{job_id}/cancel")
        after_up_to_date = events.next("job_summary")

    assert resumed.json()["processed"] == 2 and int(resumed.id or 0) > int(seen.id or 0)
    assert (
        after_up_to_date.json()["status"] == "cancelled"
    )  # an up-to-date client is not sent the same state again


def test_a_job_summary_of_an_unknown_job_is_404(core: Core) -> None:
    response = httpx.get(f"{core.api}/subscribe/job-summary/no-such-job")
    assert response.status_code == 404 and "no-such-job" in response.json()["message"]


def test_any_replica_streams_what_another_one_changed(
    cores: tuple[Core, Core], connector: dict[str, str]
) -> None:
    first, second = cores
    job_id, _ = new_job(first, connector)
    with stream(second, f"/subscribe/job-summary/{job_id}") as events:
        assert events.next("job_summary").json()["status"] == "running"
        assert httpx.post(f"{first.api}/scan/jobs/{job_id}/pause").status_code == 200
        assert events.next("job_summary").json()["status"] == "paused"


# ---- connectors and heartbeats ------------------------------------------------------------------


def test_the_connector_stream_sends_a_snapshot_then_registrations_and_unregistrations(core: Core) -> None:
    body = {
        "name": "live-one",
        "uuid": str(uuid.uuid4()),
        "url": "http://127.0.0.1:9/live",
        "status": "ready",
    }
    with stream(core, "/subscribe/connector-registered") as events:
        snapshot = events.next("connectors").json()["connectors"]
        httpx.post(f"{core.api}/connectors/register", json=body)
        registered = events.next("connector").json()
        httpx.delete(f"{core.api}/connectors/unregister/{body['uuid']}")
        unregistered = events.next("connector").json()

    assert body["uuid"] not in [c["uuid"] for c in snapshot]
    assert (registered["event"], registered["connector"]["uuid"]) == ("registered", body["uuid"])
    assert (unregistered["event"], unregistered["connector"]["name"]) == ("unregistered", "live-one")


def test_a_slow_connector_stream_reader_gets_a_dropped_event_and_a_fresh_snapshot(core: Core) -> None:
    published = 6000
    payload = {"event": "registered", "connector": {"name": "x" * 2000, "uuid": "flood"}}
    with stream(core, "/subscribe/connector-registered") as events:
        events.next("connectors")
        pipe = core.redis.pipeline(transaction=False)
        for n in range(published):
            pipe.publish(keys.CHANNEL_CONNECTORS, json.dumps(payload | {"n": n}))
        pipe.execute()
        delivered, dropped, snapshots = 0, 0, 0
        for message in events:
            if message.comment is not None:
                continue
            if message.event == "connector":
                delivered += 1
            elif message.event == "dropped":
                dropped += message.json()["dropped"]
            elif message.event == "connectors":
                snapshots += 1
            if delivered + dropped == published:
                break

    assert dropped > 0 and snapshots >= 1  # the bounded queue overflowed: the client resyncs from a snapshot
    assert delivered + dropped == published


def test_an_idle_stream_gets_heartbeat_comments(core: Core) -> None:
    with stream(core, "/subscribe/connector-registered") as events:
        events.next("connectors")
        pings = 0
        for message in events:
            if message.comment and message.comment.startswith("ping"):
                pings += 1
                if pings == 2:
                    break
    assert pings == 2


# ---- every job (/subscribe/jobs) -----------------------------------------------------------------


def test_the_jobs_stream_carries_the_changes_of_every_job(core: Core, connector: dict[str, str]) -> None:
    with stream(core, "/subscribe/jobs") as events:
        events.opened()
        first, _ = new_job(core, connector)
        second, _ = new_job(core, connector)
        httpx.post(f"{core.api}/scan/jobs/{first}/pause")
        httpx.post(f"{core.api}/scan/jobs/{second}/cancel")
        seen: dict[str, str] = {}
        while seen.get(first) != "paused" or seen.get(second) != "cancelled":
            job = events.next("job_summary").json()
            seen[job["job_id"]] = job["status"]
    assert "sse.event" not in core.proc.log_path.read_text()  # DSX_LOG_SSE_EVENTS is off here


def test_a_slow_jobs_stream_reader_is_told_to_resync(core: Core) -> None:
    published = 3000
    with stream(core, "/subscribe/jobs") as events:
        events.opened()
        pipe = core.redis.pipeline(transaction=False)
        for n in range(published):
            job = {"job_id": f"flood-{n % 40}", "status": "running", "rev": n, "pad": "x" * 2000}
            pipe.publish(keys.channel_job(job["job_id"]), json.dumps(job))
        pipe.execute()
        resync = events.next("resync", timeout=20)
    assert resync.json()["dropped"] > 0 and resync.json()["reason"] == "client too slow"
