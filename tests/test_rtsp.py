"""RtspSource against a real GStreamer RTSP server on loopback (fixtures in conftest_rtsp.py):
frames arrive, reconnection after the server is killed and restarted or stalls (SIGSTOP), a
reconnection budget that runs out, stall -> SourceTimeout when reconnecting is off, unreachable
URLs fail fast."""

from __future__ import annotations

import threading
import time

import numpy as np
import pytest

from streamdehaze.errors import SourceError, SourceTimeout
from streamdehaze.io.base import LIVE_TIME_BASE
from streamdehaze.io.sources import RtspSource, open_source

pytestmark = pytest.mark.rtsp


def read_n(source, n):
    return [source.read() for _ in range(n)]


def test_frames_arrive(rtsp_server):
    source = open_source(rtsp_server.url, timeout=3.0)
    assert isinstance(source, RtspSource) and source.is_live
    t0 = time.monotonic()
    info = source.open()
    frames = read_n(source, 20)
    elapsed = time.monotonic() - t0
    source.close()
    assert (info.width, info.height, info.is_live, info.time_base) == (160, 120, True, LIVE_TIME_BASE)
    assert info.frame_rate == 15
    assert [f.index for f in frames] == list(range(20))
    assert all(f.image.shape == (120, 160, 3) and f.image.std() > 20 for f in frames)  # a pattern, not a blank
    pts = np.array([f.pts for f in frames])
    assert pts[0] >= 0 and np.all(np.diff(pts) > 0)
    # Spaced by the server's 15 fps clock (6000 ticks of 1/90000), even where the first pts was None.
    assert np.median(np.diff(pts)) == 6000
    assert elapsed < 6.0  # ~1.3 s of stream at 15 fps after a sub-second open


def test_reconnects_after_server_restart(rtsp_server):
    source = open_source(rtsp_server.url, timeout=3.0, reconnect_attempts=6, backoff=0.25)
    source.open()
    before = read_n(source, 5)
    rtsp_server.kill()
    restarter = threading.Timer(0.5, rtsp_server.start)  # down for a while, back on the same port
    restarter.start()
    t0 = time.monotonic()
    after = read_n(source, 10)
    resumed = time.monotonic() - t0
    restarter.join()
    source.close()
    assert source.reconnects >= 1
    frames = before + after
    assert [f.index for f in frames] == list(range(15))  # the index keeps counting
    pts = [f.pts for f in frames]
    assert all(b > a for a, b in zip(pts, pts[1:]))  # monotonic across the reconnect
    assert frames[-1].meta["reconnects"] >= 1 and resumed < 10.0


def test_gives_up_after_reconnect_attempts(rtsp_server):
    source = open_source(rtsp_server.url, timeout=2.0, reconnect_attempts=2, backoff=0.2)
    source.open()
    read_n(source, 3)
    rtsp_server.kill()
    t0 = time.monotonic()
    with pytest.raises(SourceError, match="2 reconnect attempts") as err:
        while True:  # buffered frames first, then the disconnect
            source.read()
    elapsed = time.monotonic() - t0
    source.close()
    assert "\n" not in str(err.value) and elapsed < 0.2 + 0.4 + 2 * 2.0 + 1.0


@pytest.mark.parametrize("timeout", [1.0, 2.0])
def test_stall_raises_source_timeout_in_time_without_reconnecting(rtsp_server, timeout):
    source = open_source(rtsp_server.url, timeout=timeout, reconnect_for=0)
    source.open()
    read_n(source, 3)
    rtsp_server.pause()  # SIGSTOP: the connection stays open, nothing arrives
    t0 = time.monotonic()
    try:
        with pytest.raises(SourceTimeout, match="stalled"):
            while True:  # frames already buffered come first
                source.read()
        elapsed = time.monotonic() - t0
    finally:
        rtsp_server.resume()
        source.close()
    assert elapsed <= timeout + 0.75


def test_stall_reconnects_and_frames_continue(rtsp_server):
    source = open_source(rtsp_server.url, timeout=1.0)  # reconnects for ever by default
    source.open()
    before = read_n(source, 5)
    rtsp_server.pause()  # SIGSTOP: the connection stays open, nothing arrives
    resumer = threading.Timer(3.0, rtsp_server.resume)
    resumer.start()
    try:
        after = read_n(source, 30)  # the frames buffered before the stall, then the new connection's
    finally:
        resumer.join()
        source.close()
    frames = before + after
    assert [f.index for f in frames] == list(range(35))
    pts = [f.pts for f in frames]
    assert all(b > a for a, b in zip(pts, pts[1:]))  # no going back in time across the reconnect
    gaps = np.diff(pts) * float(LIVE_TIME_BASE)
    assert gaps.max() > 1.5  # the stall shows as a gap in time, frames after it
    assert source.reconnects >= 1 and frames[-1].meta["reconnects"] >= 1
    assert len(source.outages) == 1 and source.outages[0].ended is not None
    assert 1.5 < source.gap_s < 30.0


def test_reconnect_budget_runs_out_with_a_clear_error(rtsp_server):
    source = open_source(rtsp_server.url, timeout=1.0, reconnect_for=1.0, backoff=0.2)
    source.open()
    read_n(source, 3)
    rtsp_server.pause()  # for longer than timeout + reconnect_for
    t0 = time.monotonic()
    try:
        with pytest.raises(SourceError, match="gave up reconnecting") as err:
            while True:  # buffered frames first
                source.read()
        elapsed = time.monotonic() - t0
    finally:
        rtsp_server.resume()
        source.close()
    assert "\n" not in str(err.value) and "reconnect-for 1" in str(err.value)
    assert elapsed < 30.0  # bounded: stall detection + 1 s of attempts, each bounded by the timeout
    assert len(source.outages) == 1 and source.outages[0].ended is None


def test_unreachable_url_fails_fast():
    from conftest_rtsp import free_port

    t0 = time.monotonic()
    with pytest.raises(SourceError, match="connection refused|Connection refused") as err:
        open_source(f"rtsp://127.0.0.1:{free_port()}/none", timeout=5.0).open()
    assert time.monotonic() - t0 < 1.0
    assert "is the server running" in str(err.value)


def test_wrong_path_fails_fast(rtsp_server):
    t0 = time.monotonic()
    with pytest.raises(SourceError, match="cannot open"):
        open_source(rtsp_server.url.replace("/test", "/nothing-here"), timeout=5.0).open()
    assert time.monotonic() - t0 < 2.0


def test_close_from_another_thread_during_stall(rtsp_server):
    source = open_source(rtsp_server.url, timeout=2.0)
    source.open()
    rtsp_server.pause()
    outcome = []

    def reader():
        try:
            while source.read() is not None:
                pass
            outcome.append("end")
        except SourceTimeout:
            outcome.append("timeout")

    thread = threading.Thread(target=reader)
    thread.start()
    time.sleep(0.3)
    source.close()  # must not free the demuxer under the blocked read
    thread.join(timeout=5)
    rtsp_server.resume()
    assert not thread.is_alive() and outcome in (["end"], ["timeout"])
