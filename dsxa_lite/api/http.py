"""uvicorn's httptools protocol with a bound on the request line and headers.

httptools (llhttp) has no such bound: it hands uvicorn every header however long, and both keep
them in memory (400 MB of headers on one connection were accepted, 477 MB RSS). uvicorn's h11
protocol has one (``h11_max_incomplete_event_size``), but served 4 KiB scans ~40 % slower here
(wrk, one core: ~3.9k against ~6.9k requests/s), so ``python -m dsxa_lite`` keeps httptools with
this guard: the bytes received while a request's headers are still incomplete are counted, and
past ``MAX_HEADER_BYTES`` the connection is answered ``431`` and closed. The count may run over
by one read of the socket (the one that starts the request is not counted), so memory stays
bounded by the limit plus one read per connection.

Under ``uvicorn dsxa_lite.app:app`` directly, pass
``--http dsxa_lite.api.http:BoundedHttpToolsProtocol`` (or ``--http h11``), or put a proxy that
bounds headers in front.
"""

from __future__ import annotations

import logging

from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

log = logging.getLogger("dsxa_lite")

# request line and headers of one request; DSXA's are small (X-Custom-Metadata carries a
# percent-encoded path, a few KiB at most)
MAX_HEADER_BYTES = 64 * 1024


class BoundedHttpToolsProtocol(HttpToolsProtocol):
    """:class:`HttpToolsProtocol` that answers 431 to a request whose headers exceed
    ``MAX_HEADER_BYTES`` (see the module docstring)."""

    _headers_pending = False  # a request has begun and its headers are not complete yet
    _pending_bytes = 0  # bytes received for them so far
    _began_in_read = False  # the request began in the read being parsed

    def data_received(self, data: bytes) -> None:
        self._began_in_read = False
        super().data_received(data)
        if not self._headers_pending or self._began_in_read or self.transport.is_closing():
            return
        self._pending_bytes += len(data)
        if self._pending_bytes > MAX_HEADER_BYTES:
            self._headers_pending = False
            log.warning(
                "request headers too large; connection closed",
                extra={"limit": MAX_HEADER_BYTES, "client": self.client},
            )
            message = b"Request Header Fields Too Large"
            self.transport.write(
                b"HTTP/1.1 431 Request Header Fields Too Large\r\n"
                b"content-type: text/plain; charset=utf-8\r\n"
                b"content-length: " + str(len(message)).encode() + b"\r\n"
                b"connection: close\r\n\r\n" + message
            )
            self.transport.close()

    def on_message_begin(self) -> None:
        super().on_message_begin()
        self._headers_pending = True
        self._pending_bytes = 0
        self._began_in_read = True

    def on_headers_complete(self) -> None:
        self._headers_pending = False
        super().on_headers_complete()
