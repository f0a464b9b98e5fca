"""A small forward proxy on loopback, as a company network puts between a machine and the Hub.

It tunnels ``CONNECT host:port`` (what a client does for https) and forwards absolute-URI requests
(``GET http://host:port/path``, what a client does for plain http), and records each in ``forwarded``. ``hosts`` maps
names only the proxy can resolve to addresses, so a test can give the Hub a name the machine itself cannot reach.

    with forward_proxy(hosts={"hub.example.invalid": "127.0.0.1"}) as proxy:
        os.environ["HTTP_PROXY"] = proxy.url
"""

from __future__ import annotations

import contextlib
import http.client
import select
import socket
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Iterator
from urllib.parse import urlsplit

# Headers about one hop, never forwarded (RFC 9110 §7.6.1).
HOP_BY_HOP = {
    "connection",
    "keep-alive",
    "proxy-connection",
    "proxy-authorization",
    "proxy-authenticate",
    "te",
    "trailer",
    "transfer-encoding",
    "upgrade",
}
UPSTREAM_TIMEOUT = 30.0  # seconds


class _ProxyHandler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: _ProxyServer

    def log_message(self, format, *args):  # noqa: A002 - the base class's name
        pass

    def do_CONNECT(self):
        host, _, port = self.path.rpartition(":")
        self.server.owner.forwarded.append(("CONNECT", self.path))
        try:
            upstream = socket.create_connection((self.server.owner.address_of(host), int(port)), UPSTREAM_TIMEOUT)
        except OSError as e:
            return self._fail(502, f"cannot reach {self.path}: {e}")
        self.send_response(200, "Connection established")
        self.end_headers()
        self._pipe(self.connection, upstream)
        self.close_connection = True

    def _pipe(self, client: socket.socket, upstream: socket.socket):
        sockets = [client, upstream]
        try:
            while True:
                readable, _, broken = select.select(sockets, [], sockets, UPSTREAM_TIMEOUT)
                if broken or not readable:
                    return
                for source in readable:
                    data = source.recv(65536)
                    if not data:
                        return
                    (upstream if source is client else client).sendall(data)
        except OSError:
            return
        finally:
            upstream.close()

    def _forward(self):
        url = urlsplit(self.path)
        if url.scheme != "http" or not url.hostname:
            return self._fail(400, f"expected an absolute http:// URL, got {self.path}")
        self.server.owner.forwarded.append((self.command, self.path))
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length else None
        headers = {k: v for k, v in self.headers.items() if k.lower() not in HOP_BY_HOP}
        headers["Via"] = "1.1 hublike-proxy"
        target = f"{url.path or '/'}{'?' + url.query if url.query else ''}"
        try:
            upstream = http.client.HTTPConnection(
                self.server.owner.address_of(url.hostname), url.port or 80, timeout=UPSTREAM_TIMEOUT
            )
            upstream.request(self.command, target, body=body, headers=headers)
            response = upstream.getresponse()
            content = response.read()
            upstream.close()
        except OSError as e:
            return self._fail(502, f"cannot reach {url.hostname}:{url.port}: {e}")
        self.send_response(response.status, response.reason)
        for name, value in response.getheaders():
            if name.lower() not in HOP_BY_HOP and name.lower() != "content-length":
                self.send_header(name, value)
        # a HEAD answer keeps the upstream's length for the body it did not send
        self.send_header(
            "Content-Length", response.getheader("Content-Length", "0") if self.command == "HEAD" else str(len(content))
        )
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(content)

    do_GET = do_HEAD = do_POST = do_PUT = do_DELETE = do_OPTIONS = _forward

    def _fail(self, status: int, message: str):
        body = message.encode()
        self.send_response(status)
        self.send_header("Content-Type", "text/plain")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)


class _ProxyServer(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, address, owner: ForwardProxy):
        self.owner = owner
        super().__init__(address, _ProxyHandler)


class ForwardProxy:
    """The running proxy: ``url`` (for HTTP_PROXY / HTTPS_PROXY), ``forwarded`` ((method, target) of every request it
    passed on, CONNECT tunnels included), ``hosts`` (names it resolves itself) and ``close()``."""

    def __init__(self, hosts: dict[str, str] | None = None, host: str = "127.0.0.1"):
        self.hosts = dict(hosts or {})
        self.forwarded: list[tuple[str, str]] = []
        self._server = _ProxyServer((host, 0), self)
        self.url = f"http://{host}:{self._server.server_address[1]}"
        self._thread = threading.Thread(
            target=self._server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True, name="hublike-proxy"
        )
        self._thread.start()

    def address_of(self, hostname: str) -> str:
        return self.hosts.get(hostname.lower(), hostname)

    def close(self):
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=5)


@contextlib.contextmanager
def forward_proxy(hosts: dict[str, str] | None = None) -> Iterator[ForwardProxy]:
    """A running forward proxy on a free loopback port (see ``ForwardProxy``)."""
    proxy = ForwardProxy(hosts)
    try:
        yield proxy
    finally:
        proxy.close()
