"""uvicorn's httptools protocol with the limits a public service needs.

uvicorn bounds the idle time between keep-alive requests (``timeout_keep_alive``) but
not the time a client may take to send a request, nor the size of its headers, nor the
number of open connections; and it answers a malformed request in plain text. This
subclass adds, per connection:

- an **idle timeout** from the moment a connection opens (uvicorn arms its keep-alive
  timer only after a first response, so a client that connects and says nothing is held
  forever otherwise);
- a **header timeout**: the request line and headers must arrive within
  ``header_timeout`` seconds of the request's first byte (slowloris), and within
  ``max_header_bytes``;
- a **body timeout** and a **body limit** that hold for every way of sending a body:
  ``Content-Length`` over the limit is refused before a byte of the body is read, and a
  chunked body is counted as it arrives (llhttp itself refuses negative, duplicate or
  non-numeric ``Content-Length`` and ``Content-Length`` with chunked encoding);
- a **connection limit** (new connections over it get 503 and are closed) and a
  **concurrency limit** (requests in flight over it get 503);
- ``TCP_NODELAY`` on every accepted socket (asyncio sets it too; set here explicitly
  so the service never depends on it: Nagle's algorithm delays keep-alive responses by
  ~40 ms);
- JSON error bodies ``{"error": "..."}`` for everything it answers itself.

Every refusal closes the connection (an unread body must never be taken for the next
request).
"""

from __future__ import annotations

import json
import socket
from dataclasses import asdict, dataclass

import httptools

from uvicorn.protocols.http.httptools_impl import STATUS_LINE, HttpToolsProtocol


@dataclass(frozen=True)
class Limits:
    """Connection-level limits (seconds, bytes, counts); see the module docstring."""

    max_body_bytes: int = 4 << 20
    max_header_bytes: int = 64 << 10
    header_timeout: float = 5.0
    body_timeout: float = 10.0
    keep_alive_timeout: float = 5.0
    max_connections: int = 1000
    max_concurrency: int = 128

    def __post_init__(self):
        for name, value in asdict(self).items():
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not value > 0:
                raise ValueError(f"Limits.{name} must be a positive number, got {value!r}.")


class _Refused(Exception):
    """Raised inside a parser callback to stop parsing after a refusal was sent."""


def json_response(status: int, message: str, extra_headers: bytes = b"") -> bytes:
    """A complete ``Connection: close`` HTTP/1.1 response with body ``{"error": message}``."""
    body = json.dumps({"error": message}).encode("utf-8")
    return b"".join([STATUS_LINE[status], b"content-type: application/json\r\n",
                     b"content-length: ", str(len(body)).encode("ascii"), b"\r\n", extra_headers,
                     b"connection: close\r\n\r\n", body])


class _CoalescingTransport:
    """Hands a response's head to the socket together with the first part of its body.

    uvicorn writes the status line and headers, then the body, as two writes -- two send
    system calls per response, the larger share of the server's time for small answers.
    ``100 Continue`` passes straight through; anything held is flushed on the next write,
    on close, and when the response completes.
    """

    __slots__ = ("_transport", "_held")

    def __init__(self, transport):
        self._transport = transport
        self._held = None

    def write(self, data) -> None:
        if self._held is not None:
            data, self._held = self._held + data, None
        elif data.startswith(b"HTTP/1.1 ") and not data.startswith(b"HTTP/1.1 100 "):
            self._held = bytes(data)
            return
        self._transport.write(data)

    def flush(self) -> None:
        if self._held is not None:
            data, self._held = self._held, None
            self._transport.write(data)

    def close(self) -> None:
        self.flush()
        self._transport.close()

    def __getattr__(self, name):
        return getattr(self._transport, name)


class HardenedHttpToolsProtocol(HttpToolsProtocol):
    """See the module docstring; ``limits`` is set on the subclass :func:`protocol_class` makes."""

    limits: Limits = Limits()

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.limit_concurrency = None  # uvicorn's own check answers in plain text; ours is in on_headers_complete
        self._deadline = None  # the timer of the current phase (idle / headers / body)
        self._header_bytes = 0
        self._body_bytes = 0
        self._in_headers = False
        self._closed_by_us = False

    # --- connection ---------------------------------------------------------------
    def connection_made(self, transport) -> None:
        super().connection_made(transport)
        sock = transport.get_extra_info("socket")
        if sock is not None and sock.family in (socket.AF_INET, socket.AF_INET6):
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        if len(self.connections) > self.limits.max_connections:
            self._refuse(503, f"too many open connections (limit {self.limits.max_connections}); retry later.",
                         extra_headers=b"retry-after: 1\r\n")
            return
        # uvicorn arms its keep-alive timer only after a response: a silent new connection is idle too
        self.timeout_keep_alive_task = self.loop.call_later(self.limits.keep_alive_timeout, self.timeout_keep_alive_handler)

    def connection_lost(self, exc) -> None:
        self._cancel_deadline()
        super().connection_lost(exc)

    def data_received(self, data: bytes) -> None:
        if self._closed_by_us:
            return
        in_headers_before = self._in_headers
        self._unset_keepalive_if_required()
        try:
            self.parser.feed_data(data)
        except _Refused:
            return
        except httptools.HttpParserUpgrade:
            self._refuse(400, "protocol upgrades (WebSocket, h2c) are not supported.")
            return
        except httptools.HttpParserError as error:  # also wraps an exception raised in a callback
            if not isinstance(error.__context__, _Refused):
                self._refuse(400, f"invalid HTTP request: {error}.")
            return
        if self._in_headers:  # still inside a request's headers after this chunk: count it
            self._header_bytes = self._header_bytes + len(data) if in_headers_before else len(data)
            if self._header_bytes > self.limits.max_header_bytes:
                self._refuse(431, f"request headers exceed {self.limits.max_header_bytes} bytes.")

    # --- parser callbacks -------------------------------------------------------------
    def on_message_begin(self) -> None:
        super().on_message_begin()
        self._in_headers = True
        self._header_bytes = 0
        self._body_bytes = 0
        self._arm(self.limits.header_timeout, 408, f"request headers not received within {self.limits.header_timeout:g} s.")

    def on_headers_complete(self) -> None:
        self._in_headers = False
        self._cancel_deadline()
        length = None
        for name, value in self.headers:
            if name == b"content-length":  # llhttp refused duplicates and non-digits already
                length = int(value)
        if length is not None and length > self.limits.max_body_bytes:
            self._refuse(413, f"request body of {length} bytes exceeds the {self.limits.max_body_bytes}-byte limit.")
            raise _Refused
        if len(self.tasks) >= self.limits.max_concurrency:
            self._refuse(503, f"too many requests in flight (limit {self.limits.max_concurrency}); retry later.",
                         extra_headers=b"retry-after: 1\r\n")
            raise _Refused
        self._arm(self.limits.body_timeout, 408, f"request body not received within {self.limits.body_timeout:g} s.")
        super().on_headers_complete()
        if self.cycle is not None:
            self.cycle.transport = _CoalescingTransport(self.transport)

    def on_body(self, body: bytes) -> None:
        self._body_bytes += len(body)
        if self._body_bytes > self.limits.max_body_bytes:
            self._refuse(413, f"request body exceeds the {self.limits.max_body_bytes}-byte limit.")
            raise _Refused
        super().on_body(body)

    def on_message_complete(self) -> None:
        self._cancel_deadline()
        super().on_message_complete()

    def on_response_complete(self) -> None:
        cycle = self.cycle
        if cycle is not None and isinstance(cycle.transport, _CoalescingTransport):
            cycle.transport.flush()  # a HEAD response has no body write to carry its head
        super().on_response_complete()

    # --- helpers ----------------------------------------------------------------------
    def _arm(self, seconds: float, status: int, message: str) -> None:
        self._cancel_deadline()
        self._deadline = self.loop.call_later(seconds, self._refuse, status, message)

    def _cancel_deadline(self) -> None:
        if self._deadline is not None:
            self._deadline.cancel()
            self._deadline = None

    def _refuse(self, status: int, message: str, extra_headers: bytes = b"") -> None:
        """Answer ``status`` with a JSON error unless a response already started, then close."""
        self._cancel_deadline()
        self._unset_keepalive_if_required()
        if self._closed_by_us or self.transport is None or self.transport.is_closing():
            return
        self._closed_by_us = True
        cycle = self.cycle
        if cycle is not None and not cycle.response_complete:
            started = cycle.response_started
            cycle.disconnected = True  # the application's pending receive() now ends; its send() writes nothing
            cycle.message_event.set()
            if started:  # part of a response is on the wire: nothing valid can follow it
                self.transport.close()
                return
        self.transport.write(json_response(status, message, extra_headers))
        self.transport.close()


def protocol_class(limits: Limits) -> type[HardenedHttpToolsProtocol]:
    """A :class:`HardenedHttpToolsProtocol` subclass bound to ``limits`` (uvicorn's ``http=``)."""
    if not isinstance(limits, Limits):
        raise TypeError(f"limits must be a hashlearn.serve.protocol.Limits, got {type(limits).__name__}.")
    return type("HashlearnHttpProtocol", (HardenedHttpToolsProtocol,), {"limits": limits})
