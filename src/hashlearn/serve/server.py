"""Run the service: uvicorn on a socket bound before it starts (so ``port=0`` gives the
real port at once), with the hardened protocol of :mod:`hashlearn.serve.protocol`.

>>> import numpy as np
>>> from hashlearn.index import FlatIndex
>>> index = FlatIndex(16)
>>> index.add(np.zeros((3, 2), dtype=np.uint8))
>>> server = make_server(index, "127.0.0.1", 0)      # bound, not serving yet
>>> server.url.startswith("http://127.0.0.1:")
True
>>> server.server_close()
"""

from __future__ import annotations

import ipaddress
import socket
import threading

from hashlearn.index.base import BinaryIndex
from hashlearn.serve.protocol import Limits, protocol_class
from hashlearn.serve.service import Budget, SearchService


def is_loopback(host: str) -> bool:
    """Whether every address ``host`` resolves to is a loopback address (127.0.0.0/8, ::1)."""
    try:
        infos = socket.getaddrinfo(host, None, type=socket.SOCK_STREAM)
    except socket.gaierror:
        return False
    return bool(infos) and all(ipaddress.ip_address(info[4][0].split("%")[0]).is_loopback for info in infos)


def bind_socket(host: str, port: int, backlog: int) -> socket.socket:
    """A listening TCP socket on ``host:port`` (``port=0``: a free port)."""
    if isinstance(port, bool) or not isinstance(port, int) or not 0 <= port <= 65535:
        raise ValueError(f"port must be an integer in 0..65535, got {port!r}.")
    try:
        family, kind, proto, _, address = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)[0]
    except socket.gaierror as error:
        raise ValueError(f"cannot resolve host {host!r}: {error.strerror}.") from None
    sock = socket.socket(family, kind, proto)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(address)
        sock.listen(backlog)
    except OSError as error:
        sock.close()
        raise ValueError(f"cannot listen on {host}:{port}: {error.strerror or error}.") from None
    sock.setblocking(False)
    return sock


class SearchServer:
    """A bound uvicorn server for one :class:`SearchService`.

    ``url`` and ``server_address`` are known as soon as it exists; ``serve_forever()``
    runs it in the calling thread until ``shutdown()`` (from another thread) or Ctrl-C.
    """

    def __init__(self, service: SearchService, sock: socket.socket, *, api_key: str | None, limits: Limits,
                 verbose: bool, backlog: int):
        import uvicorn

        from hashlearn.serve.app import create_app

        self.service = service
        self.limits = limits
        self.socket = sock
        self.app = create_app(service, api_key=api_key, max_body_bytes=limits.max_body_bytes)
        self.app.state.limits = limits
        config = uvicorn.Config(
            self.app, http=protocol_class(limits), ws="none", lifespan="off", loop="asyncio",
            log_level="info" if verbose else "warning", access_log=verbose, server_header=False,
            timeout_keep_alive=limits.keep_alive_timeout, backlog=backlog, timeout_graceful_shutdown=5,
        )
        self._server = uvicorn.Server(config)
        host, port = sock.getsockname()[:2]
        self.server_address = (host, port)
        self.url = f"http://[{host}]:{port}" if ":" in host else f"http://{host}:{port}"

    def serve_forever(self) -> None:
        self._server.run(sockets=[self.socket])

    def start(self) -> threading.Thread:
        """Serve on a daemon thread; returns once the server accepts requests."""
        thread = threading.Thread(target=self.serve_forever, name="hashlearn-serve", daemon=True)
        thread.start()
        while not self._server.started and thread.is_alive():
            thread.join(0.01)
        return thread

    def shutdown(self) -> None:
        """Ask the server to stop (it finishes the requests in flight)."""
        self._server.should_exit = True

    def server_close(self) -> None:
        self.socket.close()
        self.app.state.executor.shutdown(wait=False)


def make_server(index, host: str = "127.0.0.1", port: int = 8080, *, api_key: str | None = None,
                limits: Limits | None = None, budget: Budget | None = None, verbose: bool = False,
                backlog: int = 1024, **service_options) -> SearchServer:
    """A ready (bound, not yet serving) :class:`SearchServer` for ``index`` (a
    :class:`~hashlearn.index.base.BinaryIndex` or a :class:`SearchService`).

    Binding to anything but a loopback address needs ``api_key``; so does a writable
    service. ``port=0`` picks a free port (see ``server.url``).
    """
    if isinstance(index, SearchService):
        if budget is not None or service_options:
            raise TypeError("pass budget and service options to the SearchService, not to make_server, when giving one.")
        service = index
    elif isinstance(index, BinaryIndex):
        service = SearchService(index, budget=budget, **service_options)
    else:
        raise TypeError(f"index must be a hashlearn BinaryIndex or a SearchService, got {type(index).__name__}.")
    if not isinstance(host, str) or not host:
        raise TypeError(f"host must be a non-empty string, got {host!r}.")
    if api_key is None and not is_loopback(host):
        raise ValueError(f"serving on {host} (not a loopback address) needs an API key: pass --api-key KEY or set "
                         "HASHLEARN_API_KEY (or serve on 127.0.0.1).")
    if api_key is None and service.writable:
        raise ValueError("a writable server needs an API key (--api-key KEY or HASHLEARN_API_KEY): writes change the index file.")
    limits = limits or Limits()
    service.warm_up()
    sock = bind_socket(host, port, backlog)
    try:
        return SearchServer(service, sock, api_key=api_key, limits=limits, verbose=verbose, backlog=backlog)
    except BaseException:
        sock.close()
        raise
