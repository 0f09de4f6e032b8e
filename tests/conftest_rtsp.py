"""Pytest fixtures running a real GStreamer RTSP server (tests/rtsp_server.py) on loopback.

Listed in ``tests/conftest.py``'s ``pytest_plugins``. The server runs under Debian's
``/usr/bin/python3`` (it needs ``gi``); tests using these fixtures are skipped with the reason
when that interpreter, ``gi``, GstRtspServer or a GStreamer element is missing.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest

SYSTEM_PYTHON = os.environ.get("STREAMDEHAZE_GST_PYTHON", "/usr/bin/python3")
SERVER_SCRIPT = Path(__file__).with_name("rtsp_server.py")
START_TIMEOUT = 15.0
_CHECK: list[str | None] = []  # cached skip reason (None = available)


def rtsp_unavailable_reason() -> str | None:
    """Why the GStreamer RTSP server cannot run here (None when it can). Checked once per session."""
    if not _CHECK:
        reason = None
        if not os.path.exists(SYSTEM_PYTHON):
            reason = f"{SYSTEM_PYTHON} not found (Debian python3 with gi runs the RTSP test server)"
        else:
            try:
                proc = subprocess.run(
                    [SYSTEM_PYTHON, str(SERVER_SCRIPT), "--check"], capture_output=True, text=True, timeout=30
                )
                if proc.returncode != 0:
                    last = (proc.stderr.strip().splitlines() or ["unknown error"])[-1]
                    reason = f"GStreamer RTSP server unavailable ({last}); see .ci/apt-packages.txt"
            except (OSError, subprocess.TimeoutExpired) as err:
                reason = f"GStreamer RTSP server check failed: {err}"
        _CHECK.append(reason)
    return _CHECK[0]


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class RtspServer:
    """One test server process on a fixed loopback port: start, kill, restart, pause (SIGSTOP)."""

    def __init__(self, port: int, path: str = "/test", size: str = "160x120", fps: int = 15) -> None:
        self.port, self.path, self.size, self.fps = port, path, size, fps
        self.url = f"rtsp://127.0.0.1:{port}{path}"
        self.proc: subprocess.Popen | None = None

    def start(self) -> RtspServer:
        assert self.proc is None, "server already running"
        cmd = [SYSTEM_PYTHON, str(SERVER_SCRIPT), "--port", str(self.port), "--path", self.path]
        cmd += ["--size", self.size, "--fps", str(self.fps)]
        # stderr to a file, not a pipe: a full pipe would block (stall) the server.
        self._log = tempfile.TemporaryFile(mode="w+")
        self.proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=self._log, text=True)
        line = self._wait_line(START_TIMEOUT)
        if not line.startswith("READY"):
            self.kill()
            self._log.seek(0)
            err = self._log.read()
            raise RuntimeError(f"RTSP test server did not start: {line!r} {err.strip()[-300:]}")
        return self

    def _wait_line(self, timeout: float) -> str:
        import selectors

        with selectors.DefaultSelector() as sel:
            sel.register(self.proc.stdout, selectors.EVENT_READ)
            if not sel.select(timeout):
                return ""
        return self.proc.stdout.readline().strip()

    def kill(self) -> None:
        """SIGKILL: the connection drops at once, as when a camera loses power."""
        proc, self.proc = self.proc, None
        if proc is None:
            return
        if proc.poll() is None:
            proc.send_signal(signal.SIGCONT)
            proc.kill()
        proc.wait(timeout=10)
        proc.stdout.close()

    def stop(self) -> None:
        """SIGTERM (clean shutdown), SIGKILL when that takes too long."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGCONT)
            self.proc.terminate()
            try:
                self.proc.wait(timeout=5)
            except subprocess.TimeoutExpired:
                pass
        self.kill()

    def pause(self) -> None:
        """SIGSTOP: the TCP connection stays open but nothing arrives (a stalled stream)."""
        self.proc.send_signal(signal.SIGSTOP)

    def resume(self) -> None:
        self.proc.send_signal(signal.SIGCONT)


@pytest.fixture(scope="session")
def rtsp_available() -> None:
    if sys.platform != "linux":
        pytest.skip("RTSP tests need Linux with Debian's GStreamer packages")
    reason = rtsp_unavailable_reason()
    if reason:
        pytest.skip(reason)


@pytest.fixture
def rtsp_server_factory(rtsp_available):
    """Makes RtspServer objects (not started) on free ports; stops them all at teardown."""
    servers: list[RtspServer] = []

    def make(**kwargs) -> RtspServer:
        server = RtspServer(free_port(), **kwargs)
        servers.append(server)
        return server

    yield make
    for server in servers:
        server.stop()


@pytest.fixture
def rtsp_server(rtsp_server_factory) -> RtspServer:
    """A started RTSP server streaming a 160x120 15 fps test pattern; ``.url`` to connect."""
    server = rtsp_server_factory().start()
    time.sleep(0.1)  # it accepts connections about 0.1 s after printing READY
    return server
