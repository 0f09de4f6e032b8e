"""The browser preview: an HTTP server with a page, an MJPEG stream, ``/stats`` JSON and controls.

Routes: ``GET /`` (the page), ``GET /stream.mjpg`` (multipart/x-mixed-replace JPEG stream of the
current view), ``GET /frame.jpg`` (the newest picture once), ``GET /stats`` (JSON: frames, fps,
dropped, model fps, latency, controls, clients), ``POST /control`` (JSON ``{"action": "pause"}``,
see :class:`~streamdehaze.preview.hub.Action`). Anything else is 404. Requests are served by
:class:`~streamdehaze.preview.http.PreviewHandler`.

Security: the server binds 127.0.0.1 unless told otherwise. On any other address (or whenever a
token is given) every request must carry ``?token=TOKEN`` (403 otherwise); a random token is made
when none is given. On a loopback bind, requests whose Host header is not a loopback name are
refused (DNS rebinding), and ``/control`` only accepts JSON from the page's own origin.

The pipeline never waits for a viewer: one encoder thread JPEG-encodes the newest picture, once
per frame whatever the number of clients, and only while some client is ready for it (at most
``max_fps`` a second and a quarter of one core); each client's thread sends the newest JPEG when its socket is ready and
simply skips the frames it was too slow for, so a client that stops reading costs nothing.
"""

from __future__ import annotations

import hmac
import ipaddress
import secrets
import socket
import threading
import time
from http.server import ThreadingHTTPServer
from typing import Any
from urllib.parse import urlsplit

import cv2

from ..errors import InputError
from .http import PreviewHandler
from .hub import PreviewHub

DEFAULT_HOST = "127.0.0.1"
MAX_CPU_SHARE = 0.25  # of one core, for JPEG encoding while clients watch


def parse_address(value: str) -> tuple[str, int]:
    """``(host, port)`` from ``PORT``, ``HOST:PORT`` or ``[IPv6]:PORT`` (host defaults to 127.0.0.1)."""
    text = str(value).strip()
    host, sep, port = text.rpartition(":")
    if not sep:
        host, port = "", text
    bracketed = host.startswith("[") and host.endswith("]")
    host = host[1:-1] if bracketed else host
    if not port.isdigit() or not 0 <= int(port) <= 65535 or ":" in host and not (bracketed and _is_ip(host)):
        raise InputError(
            f"--web {value!r}: expected PORT or HOST:PORT, e.g. 8080, 0.0.0.0:8080 or [::1]:8080 (port 0-65535)"
        )
    return host or DEFAULT_HOST, int(port)


def _is_ip(host: str) -> bool:
    try:
        ipaddress.ip_address(host)
        return True
    except ValueError:
        return False


def is_loopback(host: str) -> bool:
    """True when ``host`` only reaches this machine (127.0.0.0/8, ::1, localhost); 0.0.0.0 is not."""
    if host in ("", "0.0.0.0", "::"):
        return False
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        pass
    try:
        addrs = {info[4][0] for info in socket.getaddrinfo(host, None)}
    except OSError:
        return False
    return bool(addrs) and all(ipaddress.ip_address(a.split("%")[0]).is_loopback for a in addrs)


class _Server(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, address: tuple[str, int], web: WebPreview) -> None:
        self.web = web
        if ":" in address[0]:
            self.address_family = socket.AF_INET6
        super().__init__(address, PreviewHandler)


class WebPreview:
    """Serves ``hub`` over HTTP. ``start()`` binds and returns the URL (with the token); ``stop()`` ends it.

    ``port`` 0 picks a free port. ``token``: required on every request when given, or when
    ``host`` is not loopback (then a random one is generated). ``write_timeout``: seconds a client
    may leave a write pending before it is dropped. ``max_fps``: most JPEGs encoded per second
    (bounds the preview's CPU cost while the pipeline runs faster than anyone can watch);
    ``max_width``: wider pictures are scaled down before encoding.
    """

    def __init__(
        self,
        hub: PreviewHub,
        host: str = DEFAULT_HOST,
        port: int = 8080,
        token: str | None = None,
        quality: int = 80,
        write_timeout: float = 10.0,
        max_fps: float = 30.0,
        max_width: int = 1920,
    ) -> None:
        self.hub, self.host, self.port, self.quality, self.max_fps = hub, host, port, quality, max_fps
        self.max_width = max_width
        self.write_timeout = write_timeout
        self.loopback = is_loopback(host)
        self.token = token or (None if self.loopback else secrets.token_urlsafe(16))
        self.encoded = 0  # JPEGs encoded (once per frame, whatever the number of clients)
        self.clients = 0
        self._server: _Server | None = None
        self._threads: list[threading.Thread] = []
        self._stopping = threading.Event()
        self._cond = threading.Condition()
        self._jpeg: bytes | None = None
        self._jpeg_version = -1  # the hub version the JPEG shows
        self._want = 0  # /frame.jpg requests waiting for a fresh JPEG
        self._waiting = 0  # stream clients waiting for a newer JPEG (not stuck in a write)
        self._conns: set[socket.socket] = set()  # stream clients' sockets

    # -- lifecycle --------------------------------------------------------------------------
    def start(self) -> str:
        try:
            self._server = _Server((self.host, self.port), self)
        except OSError as err:
            raise InputError(
                f"--web {self.host}:{self.port}: cannot listen there ({err.strerror or err}); pick another port"
            ) from None
        self.port = self._server.server_address[1]
        for name, target in (("http", self._server.serve_forever), ("jpeg", self._encode_loop)):
            t = threading.Thread(target=target, name=f"streamdehaze-preview-{name}", daemon=True)
            t.start()
            self._threads.append(t)
        return self.url

    @property
    def url(self) -> str:
        host = self.host if self.host not in ("0.0.0.0", "::", "") else socket.gethostname()
        host = f"[{host}]" if ":" in host else host
        return f"http://{host}:{self.port}/" + (f"?token={self.token}" if self.token else "")

    def stop(self) -> None:
        """Stop serving and disconnect the stream clients (also those that stopped reading)."""
        self._stopping.set()
        with self._cond:
            self._cond.notify_all()
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
        with self._cond:
            conns = list(self._conns)
        for conn in conns:  # unblocks a client thread stuck writing to a viewer that stopped reading
            try:
                conn.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
        for t in self._threads:
            t.join(2.0)

    def __enter__(self) -> WebPreview:
        self.start()
        return self

    def __exit__(self, *exc: Any) -> None:
        self.stop()

    # -- JPEG encoding (one thread, once per frame) -----------------------------------------
    def _encode_loop(self) -> None:
        next_at = 0.0
        while not self._stopping.is_set():
            with self._cond:
                # Encode only for a client that waits for a picture: with nobody watching (or only
                # clients stuck in a write) this thread sleeps and the pipeline pays nothing.
                if not self._cond.wait_for(lambda: self._waiting or self._want or self._stopping.is_set(), 0.25):
                    continue
            version = self.hub.version
            if version == self._jpeg_version:
                self.hub.wait(version, 0.25)  # up to date: wait for the next frame
                continue
            gap = next_at - time.monotonic()
            if gap > 0:  # rate limit: see below
                self._stopping.wait(gap)
                continue
            t0 = time.monotonic()
            version, picture = self.hub.picture(self.max_width)  # a page needs no 3840-pixel side-by-side
            if picture is None:
                self.hub.wait(version, 0.25)
                continue
            bgr = cv2.cvtColor(picture, cv2.COLOR_RGB2BGR)
            ok, buf = cv2.imencode(".jpg", bgr, [cv2.IMWRITE_JPEG_QUALITY, self.quality])
            # at most max_fps pictures a second, and at most MAX_CPU_SHARE of one core (big frames)
            cost = time.monotonic() - t0
            next_at = t0 + max(1.0 / self.max_fps, cost / MAX_CPU_SHARE)
            if ok:
                with self._cond:
                    self._jpeg, self._jpeg_version = buf.tobytes(), version
                    self.encoded += 1
                    self._cond.notify_all()

    def next_jpeg(self, after: int, timeout: float) -> tuple[bytes | None, int]:
        """The newest JPEG once it is newer than version ``after`` (or ``(None, after)`` after ``timeout``)."""
        with self._cond:
            self._waiting += 1
            self._cond.notify_all()  # wakes the encoder
            try:
                self._cond.wait_for(lambda: self._jpeg_version != after or self._stopping.is_set(), timeout)
            finally:
                self._waiting -= 1
            if self._jpeg_version == after or self._jpeg is None:
                return None, after
            return self._jpeg, self._jpeg_version

    def _client(self, delta: int, conn: socket.socket) -> None:
        with self._cond:
            self.clients += delta
            (self._conns.add if delta > 0 else self._conns.discard)(conn)
            self._cond.notify_all()

    def frame_jpeg(self, timeout: float = 5.0) -> bytes | None:
        """The newest picture as JPEG (encoded now if no client keeps the encoder busy); None before a frame."""
        with self._cond:
            self._want += 1
            self._cond.notify_all()
            start = self.hub.version
        try:
            with self._cond:
                self._cond.wait_for(lambda: self._jpeg is not None and self._jpeg_version >= start, timeout)
                return self._jpeg
        finally:
            with self._cond:
                self._want -= 1

    # -- request checks ---------------------------------------------------------------------
    def authorised(self, query: dict[str, list[str]]) -> bool:
        if self.token is None:
            return True
        given = (query.get("token") or [""])[0]
        return hmac.compare_digest(given.encode(), self.token.encode())

    def host_allowed(self, host_header: str | None) -> bool:
        """On a loopback bind, only loopback Host headers (no DNS rebinding); anything otherwise."""
        if not self.loopback:
            return True
        if not host_header:
            return False
        name = urlsplit(f"//{host_header}").hostname or ""
        return name == "localhost" or (_is_ip(name) and ipaddress.ip_address(name).is_loopback)
