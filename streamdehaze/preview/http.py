"""The browser preview's HTTP request handler: routing, access checks and the MJPEG stream.

The server and its state (JPEG encoder, clients, token, host checks) are
:class:`~streamdehaze.preview.web.WebPreview`; this handler serves one request against it.
"""

from __future__ import annotations

import json
import socket
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qs, urlsplit

from .hub import Action
from .page import PAGE

if TYPE_CHECKING:
    from .web import _Server

BOUNDARY = "streamdehazeframe"
SEND_BUFFER = 256 * 1024  # bytes of socket send buffer per stream client (Linux doubles it)


class PreviewHandler(BaseHTTPRequestHandler):
    server: _Server
    protocol_version = "HTTP/1.1"
    server_version = "streamdehaze"

    def setup(self) -> None:
        self.timeout = self.server.web.write_timeout  # bounds every read and write on this socket
        super().setup()

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - the base class's name
        pass  # quiet: the terminal shows the pipeline's progress

    # -- plumbing ---------------------------------------------------------------------------
    def _route(self, method: str) -> None:
        web = self.server.web
        url = urlsplit(self.path)
        query = parse_qs(url.query)
        if not web.host_allowed(self.headers.get("Host")):
            return self._send_json(HTTPStatus.FORBIDDEN, {"error": "Host header is not a loopback address"})
        if not web.authorised(query):
            return self._send_json(HTTPStatus.FORBIDDEN, {"error": "missing or wrong ?token="})
        routes = {
            ("GET", "/"): self._page,
            ("GET", "/index.html"): self._page,
            ("GET", "/stream.mjpg"): self._stream,
            ("GET", "/frame.jpg"): self._frame,
            ("GET", "/stats"): self._stats,
            ("POST", "/control"): self._control,
        }
        handler = routes.get((method, url.path))
        if handler is not None:
            return handler()
        if any(path == url.path for _, path in routes):
            return self._send_json(HTTPStatus.METHOD_NOT_ALLOWED, {"error": f"{method} not allowed here"})
        return self._send_json(HTTPStatus.NOT_FOUND, {"error": f"no such page: {url.path}"})

    def do_GET(self) -> None:  # noqa: N802 - http.server's naming
        self._route("GET")

    def do_POST(self) -> None:  # noqa: N802
        self._route("POST")

    def _send(self, status: HTTPStatus, body: bytes, ctype: str) -> None:
        self.send_response(status)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(body)))
        self._common_headers()
        self.end_headers()
        self.wfile.write(body)

    def _common_headers(self) -> None:
        self.send_header("Cache-Control", "no-store")
        self.send_header("X-Content-Type-Options", "nosniff")
        self.send_header("Referrer-Policy", "no-referrer")  # the token is in the URL

    def _send_json(self, status: HTTPStatus, data: dict[str, Any]) -> None:
        self._send(status, json.dumps(data).encode(), "application/json")

    # -- routes -----------------------------------------------------------------------------
    def _page(self) -> None:
        self._send(HTTPStatus.OK, PAGE.encode(), "text/html; charset=utf-8")

    def _stats(self) -> None:
        web = self.server.web
        self._send_json(HTTPStatus.OK, {**web.hub.stats(), "clients": web.clients, "encoded": web.encoded})

    def _frame(self) -> None:
        data = self.server.web.frame_jpeg()
        if data is None:
            return self._send_json(HTTPStatus.SERVICE_UNAVAILABLE, {"error": "no frame yet"})
        self._send(HTTPStatus.OK, data, "image/jpeg")

    def _control(self) -> None:
        web = self.server.web
        origin = self.headers.get("Origin")
        if origin and urlsplit(origin).netloc != self.headers.get("Host"):
            return self._send_json(HTTPStatus.FORBIDDEN, {"error": "cross-origin control request"})
        if not (self.headers.get("Content-Type") or "").startswith("application/json"):
            return self._send_json(HTTPStatus.UNSUPPORTED_MEDIA_TYPE, {"error": 'send JSON: {"action": ...}'})
        try:
            length = min(int(self.headers.get("Content-Length") or 0), 4096)
            body = json.loads(self.rfile.read(length) or b"{}")
            action = Action(body.get("action"))
            value = body.get("value")
            value = None if value is None else float(value)
            changed = web.hub.apply(action, value)
        except (ValueError, TypeError, AttributeError):
            names = ", ".join(a.value for a in Action)
            error = f'expected {{"action": one of {names}}} (and "value": 0-1 for strength)'
            return self._send_json(HTTPStatus.BAD_REQUEST, {"error": error})
        self._send_json(HTTPStatus.OK, changed)

    def _stream(self) -> None:
        web = self.server.web
        self.send_response(HTTPStatus.OK)
        self.send_header("Content-Type", f"multipart/x-mixed-replace; boundary={BOUNDARY}")
        self.send_header("Connection", "close")
        self._common_headers()
        self.end_headers()
        self.close_connection = True
        # A small send buffer: a slow viewer gets fewer, fresher pictures instead of seconds of stale
        # ones queued in the kernel, and one that stops reading is noticed after a few frames.
        self.connection.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, SEND_BUFFER)
        web._client(+1, self.connection)
        version = -1
        try:
            while not web._stopping.is_set():
                data, version = web.next_jpeg(version, 0.5)
                if data is None:
                    continue
                head = f"--{BOUNDARY}\r\nContent-Type: image/jpeg\r\nContent-Length: {len(data)}\r\n\r\n"
                self.wfile.write(head.encode() + data + b"\r\n")
        except OSError:  # the client went away or stopped reading for write_timeout seconds
            pass
        finally:
            web._client(-1, self.connection)
