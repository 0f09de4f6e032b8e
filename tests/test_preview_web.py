"""Browser preview server: routes, token and Host checks, controls, MJPEG streaming to several clients."""

from __future__ import annotations

import http.client
import json
import socket
import threading
import time
from contextlib import contextmanager
from fractions import Fraction

import cv2
import numpy as np
import pytest

from streamdehaze.errors import InputError
from streamdehaze.frames import Frame
from streamdehaze.preview.http import BOUNDARY
from streamdehaze.preview.hub import PreviewHub
from streamdehaze.preview.web import WebPreview, is_loopback, parse_address

RED, BLUE = (220, 30, 30), (30, 30, 220)


@contextmanager
def producer(hub: PreviewHub, fps: float = 100, size=(120, 160), noise: bool = False):
    """Publishes frames (original red, dehazed blue; or random noise) to ``hub`` in a thread."""
    stop = threading.Event()
    if noise:  # incompressible: large JPEGs that fill socket buffers quickly
        rng = np.random.default_rng(0)
        images = [rng.integers(0, 256, (*size, 3), dtype=np.uint8) for _ in range(4)]
    else:
        images = [np.full((*size, 3), RED, np.uint8), np.full((*size, 3), BLUE, np.uint8)]

    def run():
        i = 0
        while not stop.is_set():
            k = 2 * i % len(images)  # (original, dehazed) pairs
            orig, deh = images[k], images[k + 1]
            hub.publish(Frame(deh, i, Fraction(1, 30), i, {"original": orig}))
            i += 1
            time.sleep(1 / fps)

    t = threading.Thread(target=run, daemon=True)
    t.start()
    try:
        yield
    finally:
        stop.set()
        t.join(2)


@contextmanager
def serving(hub: PreviewHub, **kwargs):
    web = WebPreview(hub, **{"host": "127.0.0.1", "port": 0, **kwargs})
    web.start()
    try:
        yield web
    finally:
        web.stop()


def request(web, path, method="GET", body=None, headers=None, connect="127.0.0.1"):
    conn = http.client.HTTPConnection(connect, web.port, timeout=10)
    try:
        conn.request(method, path, body=body, headers=headers or {})
        resp = conn.getresponse()
        return resp.status, resp.getheader("Content-Type"), resp.read()
    finally:
        conn.close()


def read_parts(resp, n: int) -> list[bytes]:
    """The first ``n`` JPEGs of a multipart/x-mixed-replace response."""
    parts = []
    while len(parts) < n:
        line = resp.fp.readline()
        if line.strip() != f"--{BOUNDARY}".encode():
            continue
        headers = {}
        while (line := resp.fp.readline().strip()) != b"":
            key, _, value = line.decode().partition(":")
            headers[key.lower()] = value.strip()
        assert headers["content-type"] == "image/jpeg"
        parts.append(resp.fp.read(int(headers["content-length"])))
    return parts


def decode(jpeg: bytes) -> np.ndarray:
    return cv2.cvtColor(cv2.imdecode(np.frombuffer(jpeg, np.uint8), cv2.IMREAD_COLOR), cv2.COLOR_BGR2RGB)


# -- addresses ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "text, expected",
    [
        ("8080", ("127.0.0.1", 8080)),
        ("0.0.0.0:9000", ("0.0.0.0", 9000)),
        ("localhost:0", ("localhost", 0)),
        ("[::1]:8080", ("::1", 8080)),
        (":8080", ("127.0.0.1", 8080)),
    ],
)
def test_parse_address(text, expected):
    assert parse_address(text) == expected


@pytest.mark.parametrize("text", ["", "http", "host:", "1.2.3.4:70000", "::1:80"])
def test_parse_address_rejects_nonsense(text):
    with pytest.raises(InputError, match="--web"):
        parse_address(text)


@pytest.mark.parametrize(
    "host, loop",
    [("127.0.0.1", True), ("127.0.0.2", True), ("::1", True), ("localhost", True), ("0.0.0.0", False)]
    + [("::", False), ("192.0.2.7", False), ("10.1.2.3", False)],
)
def test_is_loopback(host, loop):
    assert is_loopback(host) is loop


# -- routes and security -----------------------------------------------------------------------


def test_loopback_server_routes_without_token():
    hub = PreviewHub()
    with producer(hub), serving(hub) as web:
        assert web.token is None and web.url == f"http://127.0.0.1:{web.port}/"
        status, ctype, body = request(web, "/")
        assert status == 200 and ctype.startswith("text/html") and b"stream.mjpg" in body
        time.sleep(0.2)
        status, ctype, body = request(web, "/stats")
        stats = json.loads(body)
        assert status == 200 and ctype == "application/json"
        assert stats["frames"] > 0 and stats["fps"] > 0 and stats["clients"] == 0 and stats["view"] == "side"
        assert request(web, "/secret")[0] == 404
        assert request(web, "/../etc/passwd")[0] == 404
        assert request(web, "/stats", method="POST")[0] == 405
        # DNS rebinding: a page from another site reaching the loopback server by a name of its own
        assert request(web, "/stats", headers={"Host": f"evil.example:{web.port}"})[0] == 403
        assert request(web, "/stats", headers={"Host": f"localhost:{web.port}"})[0] == 200


def test_non_loopback_bind_requires_the_token():
    hub = PreviewHub()
    with producer(hub), serving(hub, host="0.0.0.0") as web:
        token = web.token
        assert token and len(token) >= 16 and f"?token={token}" in web.url
        for path in ("/", "/stats", "/stream.mjpg", "/frame.jpg", "/secret"):
            assert request(web, path)[0] == 403, path
            assert request(web, f"{path}?token=wrong")[0] == 403, path
            assert request(web, f"{path}?token={token[:-1]}")[0] == 403, path
        assert request(web, "/control", "POST", b'{"action": "pause"}', {"Content-Type": "application/json"})[0] == 403
        assert not hub.controls.paused
        assert request(web, f"/stats?token={token}")[0] == 200
        assert request(web, f"/?token={token}")[0] == 200
        assert request(web, f"/secret?token={token}")[0] == 404


def test_a_given_token_is_used_and_required_even_on_loopback():
    hub = PreviewHub()
    with serving(hub, token="s3cret") as web:
        assert web.url.endswith("?token=s3cret")
        assert request(web, "/stats")[0] == 403
        assert request(web, "/stats?token=s3cret")[0] == 200


def test_controls_take_json_from_the_page_only(tmp_path):
    hub = PreviewHub(snapshot_dir=tmp_path)
    json_headers = {"Content-Type": "application/json"}
    with producer(hub), serving(hub) as web:
        status, _, body = request(web, "/control", "POST", b'{"action": "pause"}', json_headers)
        assert status == 200 and json.loads(body) == {"paused": True} and hub.controls.paused
        status, _, body = request(web, "/control", "POST", b'{"action": "snapshot"}', json_headers)
        paths = json.loads(body)["snapshot"]
        assert status == 200 and len(paths) == 2 and all((tmp_path / p.split("/")[-1]).is_file() for p in paths)
        assert request(web, "/control", "POST", b"action=view", {"Content-Type": "text/plain"})[0] == 415
        assert request(web, "/control", "POST", b'{"action": "fly"}', json_headers)[0] == 400
        assert request(web, "/control", "POST", b"[1]", json_headers)[0] == 400
        status, _, body = request(web, "/control", "POST", b'{"action": "strength", "value": 0.35}', json_headers)
        assert status == 200 and json.loads(body) == {"strength": 0.35} and hub.controls.strength == 0.35
        assert request(web, "/control", "POST", b'{"action": "strength"}', json_headers)[0] == 400  # no value
        assert request(web, "/control", "POST", b'{"action": "strength", "value": "a"}', json_headers)[0] == 400
        cross = {**json_headers, "Origin": "http://evil.example"}
        assert request(web, "/control", "POST", b'{"action": "quit"}', cross)[0] == 403
        same = {**json_headers, "Origin": f"http://127.0.0.1:{web.port}"}
        assert request(web, "/control", "POST", b'{"action": "view"}', same)[0] == 200
        assert hub.controls.view == "split" and not hub.quit.is_set()


# -- pictures ----------------------------------------------------------------------------------


def test_no_jpeg_is_encoded_while_nobody_watches_and_frame_jpg_on_demand():
    hub = PreviewHub()
    with producer(hub), serving(hub) as web:
        time.sleep(0.5)
        assert hub.frames > 10 and web.encoded == 0
        status, ctype, body = request(web, "/frame.jpg")
        assert status == 200 and ctype == "image/jpeg"
        image = decode(body)
        assert image.shape == (120, 320, 3)
        assert np.abs(image[:, :160].astype(int) - RED).mean() < 6  # original left
        assert np.abs(image[:, 160:].astype(int) - BLUE).mean() < 6  # dehazed right
        assert 1 <= web.encoded <= 3


def test_frame_jpg_before_any_frame_is_503():
    hub = PreviewHub()
    with serving(hub) as web:
        web_frame = web.frame_jpeg
        web.frame_jpeg = lambda: web_frame(timeout=0.3)
        assert request(web, "/frame.jpg")[0] == 503


def test_several_clients_get_the_stream_and_each_jpeg_is_encoded_once():
    hub = PreviewHub()
    with producer(hub, fps=50), serving(hub) as web:
        conns, results = [], {}
        for _ in range(3):
            conn = http.client.HTTPConnection("127.0.0.1", web.port, timeout=10)
            conn.request("GET", "/stream.mjpg")
            resp = conn.getresponse()
            assert resp.status == 200 and resp.getheader("Content-Type").startswith("multipart/x-mixed-replace")
            conns.append((conn, resp))

        def read(k, resp):
            results[k] = read_parts(resp, 8)

        threads = [threading.Thread(target=read, args=(k, r)) for k, (_, r) in enumerate(conns)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(20)
        assert sorted(results) == [0, 1, 2]
        assert web.clients == 3
        versions = hub.version
        for parts in results.values():
            image = decode(parts[-1])
            assert np.abs(image[:, :160].astype(int) - RED).mean() < 6
            assert np.abs(image[:, 160:].astype(int) - BLUE).mean() < 6
        # three clients with 8+ pictures each, yet at most one encoding per frame
        assert 8 <= web.encoded <= versions
        for conn, resp in conns:
            resp.close()
            conn.close()
        deadline = time.monotonic() + 5
        while web.clients and time.monotonic() < deadline:
            time.sleep(0.05)
        assert web.clients == 0


def test_a_client_that_never_reads_neither_blocks_others_nor_stays_forever():
    hub = PreviewHub()
    with producer(hub, fps=60, size=(480, 640), noise=True), serving(hub, write_timeout=2.0) as web:
        stalled = socket.socket()
        stalled.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        stalled.connect(("127.0.0.1", web.port))
        stalled.sendall(f"GET /stream.mjpg HTTP/1.1\r\nHost: 127.0.0.1:{web.port}\r\n\r\n".encode())
        time.sleep(0.7)  # its socket buffers (4 MB at most) are full by now: each JPEG of noise is ~800 kB
        encoded, published = web.encoded, hub.frames
        time.sleep(0.3)
        assert web.encoded == encoded > 0  # nothing is encoded for a client stuck in a write
        assert hub.frames > published
        conn = http.client.HTTPConnection("127.0.0.1", web.port, timeout=10)
        conn.request("GET", "/stream.mjpg")
        t0 = time.monotonic()
        resp = conn.getresponse()
        parts = read_parts(resp, 10)
        assert len(parts) == 10 and time.monotonic() - t0 < 5
        assert hub.frames > published  # the producer kept publishing
        resp.close()
        conn.close()
        deadline = time.monotonic() + 8  # the stalled client is dropped after write_timeout
        while web.clients and time.monotonic() < deadline:
            time.sleep(0.1)
        assert web.clients == 0
        stalled.close()


def test_stop_ends_streaming_clients_promptly_even_stalled_ones():
    hub = PreviewHub()
    with producer(hub, fps=60, size=(480, 640), noise=True):
        web = WebPreview(hub, port=0)  # default write_timeout: 10 s
        web.start()
        stalled = socket.create_connection(("127.0.0.1", web.port))
        stalled.sendall(f"GET /stream.mjpg HTTP/1.1\r\nHost: 127.0.0.1:{web.port}\r\n\r\n".encode())
        conn = http.client.HTTPConnection("127.0.0.1", web.port, timeout=10)
        conn.request("GET", "/stream.mjpg")
        read_parts(conn.getresponse(), 1)
        time.sleep(0.5)  # the stalled client's socket fills up
        t0 = time.monotonic()
        web.stop()
        deadline = time.monotonic() + 3
        while web.clients and time.monotonic() < deadline:
            time.sleep(0.05)
        assert web.clients == 0 and time.monotonic() - t0 < 3
        conn.close()
        stalled.close()


def test_a_busy_port_is_a_clear_error():
    hub = PreviewHub()
    with serving(hub) as web:
        with pytest.raises(InputError, match="cannot listen"):
            WebPreview(hub, port=web.port).start()


def test_encoding_is_capped_at_max_fps_however_fast_frames_come():
    hub = PreviewHub()
    with producer(hub, fps=200), serving(hub, max_fps=10) as web:
        conn = http.client.HTTPConnection("127.0.0.1", web.port, timeout=10)
        conn.request("GET", "/stream.mjpg")
        resp = conn.getresponse()
        t0 = time.monotonic()
        read_parts(resp, 6)
        elapsed = time.monotonic() - t0
        assert elapsed > 0.45  # 6 pictures at 10 a second (the first may come at once)
        assert hub.frames > 3 * web.encoded
        resp.close()
        conn.close()
