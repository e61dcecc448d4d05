"""A broker connection closed after its transport was detached (Redis killed with tasks in flight)
must not stop the worker: the close goes on, and the unacknowledged message is delivered again by
kombu's unacked sweep."""

from __future__ import annotations

import pytest
from kombu import Connection, Exchange, Queue

from dsx_connect.workers import broker_guard
from tests.support.procs import wait_for

pytestmark = pytest.mark.integration


def _deliver_unacked(url: str, name: str) -> Connection:
    """A connection holding one delivered, unacknowledged message of queue ``name``."""
    queue = Queue(name, Exchange(name), routing_key=name)
    conn = Connection(url, transport_options={"visibility_timeout": 1})
    with conn.Producer() as producer:
        producer.publish({"n": 1}, exchange=queue.exchange, routing_key=name, declare=[queue])
    message = queue(conn.default_channel).get(no_ack=False)
    assert message is not None and message.payload == {"n": 1}
    return conn


def _detach(conn: Connection) -> None:
    """What kombu's state looked like in the crash: the channel's pool gone, the transport detached."""
    conn.default_channel._pool = None
    conn.transport.client = None


def test_without_the_guard_the_close_raises_the_error_celery_calls_unrecoverable(
    redis_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(Connection, "maybe_close_channel", broker_guard._original)
    conn = _deliver_unacked(redis_url, "dsx-guard-before")
    _detach(conn)
    with pytest.raises(AttributeError, match="hostname"):
        conn.release()


def test_with_the_guard_the_close_goes_on_and_the_message_comes_back(redis_url: str) -> None:
    broker_guard.install()
    conn = _deliver_unacked(redis_url, "dsx-guard-after")
    _detach(conn)
    conn.release()  # no error: the worker reconnects instead of exiting

    with Connection(redis_url, transport_options={"visibility_timeout": 1}) as fresh:
        channel = fresh.default_channel
        assert channel.client.hlen(channel.unacked_key) >= 1  # kept in Redis, not lost
        queue = Queue("dsx-guard-after", Exchange("dsx-guard-after"), routing_key="dsx-guard-after")

        def delivered_again() -> object:
            channel.qos.restore_visible(start=0)  # the periodic sweep: past the visibility timeout
            return queue(channel).get(no_ack=True)

        again = wait_for(delivered_again, timeout=10, interval=0.1, what="the message delivered again")
        assert again.payload == {"n": 1}
