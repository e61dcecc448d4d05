"""The control-plane client: error classification, retry, batching config, job flags."""

from __future__ import annotations

import httpx
import pytest

from shared.connector.core_client import BatchPlan, CoreClient, JobFlags, plan_from_config, retry
from shared.errors import NotFoundError, PermanentError, RetryableError
from shared.models import ConnectorInstance

pytestmark = [pytest.mark.unit, pytest.mark.anyio]


def client_answering(handler: httpx.MockTransport | None = None, **routes: httpx.Response) -> CoreClient:
    def answer(request: httpx.Request) -> httpx.Response:
        for suffix, response in routes.items():
            if request.url.path.endswith(suffix.replace("__", "/")):
                return response
        return httpx.Response(404, json={"detail": "Not Found"})

    return CoreClient("http://core", transport=handler or httpx.MockTransport(answer))


@pytest.mark.parametrize(
    ("code", "error"),
    [(500, RetryableError), (503, RetryableError), (429, RetryableError), (408, RetryableError),
     (404, NotFoundError), (400, PermanentError), (401, PermanentError), (422, PermanentError)],
)  # fmt: skip
async def test_http_errors_are_classified(code: int, error: type[Exception]) -> None:
    client = client_answering(request_batch=httpx.Response(code, json={"message": "why"}))
    with pytest.raises(error) as raised:
        await client.submit_batch([{"location": "a", "metainfo": "a"}])
    assert "why" in str(raised.value) and raised.value.status_code == code  # type: ignore[attr-defined]
    await client.aclose()


async def test_transport_failures_are_retryable() -> None:
    def refuse(request: httpx.Request) -> httpx.Response:
        raise httpx.ConnectError("refused", request=request)

    def slow(request: httpx.Request) -> httpx.Response:
        raise httpx.ReadTimeout("slow", request=request)

    for handler in (refuse, slow):
        client = CoreClient("http://core", transport=httpx.MockTransport(handler))
        with pytest.raises(RetryableError):
            await client.register(ConnectorInstance(uuid="u"))
        await client.aclose()


async def test_calls_go_under_the_api_prefix_with_the_request_id() -> None:
    seen: list[httpx.Request] = []

    def record(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return httpx.Response(201, json={"status": "success", "message": "ok"})

    from shared.logging import request_id_var

    token = request_id_var.set("rid-1")
    client = CoreClient("http://core:8586/", transport=httpx.MockTransport(record))
    try:
        assert await client.register(ConnectorInstance(uuid="u-1")) == 201
        await client.enqueue_done("job/1", 7)
    finally:
        request_id_var.reset(token)
        await client.aclose()
    assert seen[0].url.path == "/dsx-connect/api/v1/connectors/register"
    assert seen[0].headers["x-request-id"] == "rid-1"
    assert seen[1].url.raw_path == b"/dsx-connect/api/v1/scan/jobs/job%2F1/enqueue_done"
    assert seen[1].content == b'{"enqueued_total":7}'


async def test_retry_retries_transient_errors_then_succeeds() -> None:
    calls = 0

    async def flaky() -> str:
        nonlocal calls
        calls += 1
        if calls < 3:
            raise RetryableError("blip")
        return "ok"

    assert await retry(flaky, what="test", max_elapsed_s=5, base_s=0.001) == "ok"
    assert calls == 3


async def test_retry_gives_up_after_its_budget_and_never_retries_permanent_errors() -> None:
    calls = 0

    async def down() -> None:
        nonlocal calls
        calls += 1
        raise RetryableError("down")

    with pytest.raises(RetryableError):
        await retry(down, what="test", max_elapsed_s=0.05, base_s=0.01, cap_s=0.02)
    assert calls > 1

    calls = 0

    async def refused() -> None:
        nonlocal calls
        calls += 1
        raise PermanentError("no")

    with pytest.raises(PermanentError):
        await retry(refused, what="test", max_elapsed_s=5)
    assert calls == 1


def test_batch_plan_follows_the_core_config() -> None:
    workers = {"scan_request_batch_enabled": True, "scan_request_batch_default_size": 32,
               "scan_request_batch_max_size": 100}  # fmt: skip
    assert plan_from_config({"workers": workers}) == BatchPlan(True, 32)
    assert plan_from_config({"workers": workers}, override=500) == BatchPlan(True, 100)
    assert plan_from_config({"workers": workers}, override=8) == BatchPlan(True, 8)
    assert plan_from_config({"workers": {**workers, "scan_request_batch_enabled": "false"}}).enabled is False
    assert plan_from_config({}) == BatchPlan(True, 64)
    assert plan_from_config({"workers": {"scan_request_batch_default_size": "x"}}) == BatchPlan(True, 64)


async def test_batch_plan_falls_back_to_defaults_when_the_core_cannot_say() -> None:
    client = client_answering(config=httpx.Response(503))
    assert await client.batch_plan() == BatchPlan(True, 64)
    assert await client.batch_plan(override=10) == BatchPlan(True, 10)
    await client.aclose()


async def test_job_flags_are_read_leniently() -> None:
    client = client_answering(raw=httpx.Response(200, json={"data": {"paused": "1"}}))
    assert await client.job_flags("j") == JobFlags(paused=True, cancelled=False)
    client = client_answering(raw=httpx.Response(200, json={"data": {"cancel": "1", "status": "running"}}))
    assert await client.job_flags("j") == JobFlags(paused=False, cancelled=True)
    client = client_answering()  # the core does not know the job
    assert await client.job_flags("j") == JobFlags()


async def test_state_is_read_in_the_1x_shape_and_written_as_text() -> None:
    stored: dict[str, bytes] = {}

    def core(request: httpx.Request) -> httpx.Response:
        key = request.url.path.rsplit("/", 1)[-1]
        if request.method == "PUT":
            stored[key] = request.content
            return httpx.Response(204)
        if key == "plain":  # a core answering text, as before {"value": ...}
            return httpx.Response(200, text="old-cursor")
        if key not in stored:
            return httpx.Response(404, json={"detail": "no state"})
        return httpx.Response(200, json={"value": stored[key].decode()})

    client = CoreClient("http://core:8586", transport=httpx.MockTransport(core))
    try:
        assert await client.get_state("u-1", "graph", "delta") is None
        await client.put_state("u-1", "graph", "delta", "https://graph/delta?token=1")
        assert await client.get_state("u-1", "graph", "delta") == "https://graph/delta?token=1"
        assert await client.get_state("u-1", "graph", "plain") == "old-cursor"
    finally:
        await client.aclose()


async def test_a_submitted_batch_is_freed_without_the_cyclic_collector() -> None:
    """httpx responses are reference cycles; the client breaks them, so a full scan's request bodies
    are freed as each call returns instead of piling up until the (rarely run) cyclic collector."""
    import gc
    import weakref

    sent: list[weakref.ref[httpx.Request]] = []

    def accept(request: httpx.Request) -> httpx.Response:
        sent.append(weakref.ref(request))
        return httpx.Response(202, json={"status": "success", "message": "accepted"})

    client = CoreClient("http://core", transport=httpx.MockTransport(accept))
    gc.disable()
    try:
        for _ in range(3):
            await client.submit_batch([{"location": "a" * 1000, "metainfo": "a"}] * 50)
        await client.submit({"location": "b", "metainfo": "b"})
        assert len(sent) == 4 and all(ref() is None for ref in sent), "a request body outlived its call"
    finally:
        gc.enable()
        await client.aclose()


async def test_a_batch_goes_as_the_compact_utf8_json_httpx_would_send() -> None:
    """The batch body is encoded by pydantic-core: byte for byte what ``json=`` sent before."""
    seen: list[httpx.Request] = []

    def capture(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return httpx.Response(202, json={"status": "success", "message": "ok"})

    client = CoreClient("http://core", transport=httpx.MockTransport(capture))
    requests = [
        {"location": 'dossier/été "q"\n\u2028.txt', "metainfo": "", "size_in_bytes": 2**53 - 1},
        {"location": "b", "metainfo": "b", "connector": {"uuid": "c1"}, "item_version": None, "n": 1.5},
    ]
    await client.submit_batch(requests)
    await client.aclose()
    (request,) = seen
    assert request.headers["content-type"] == "application/json"
    assert request.content == httpx.Request("POST", "http://x", json={"requests": requests}).content
