"""Helpers for tests that start the command line as a child process."""

from __future__ import annotations

import signal
import subprocess
from pathlib import Path

import pytest


def default_sigint() -> None:
    """``preexec_fn`` for a child that must act on Ctrl-C as at a terminal. A test run started in the
    background (``pytest &``, CI) ignores SIGINT, and children inherit that: Python then installs no handler."""
    signal.signal(signal.SIGINT, signal.SIG_DFL)


def faulthandler_env(env: dict[str, str]) -> dict[str, str]:
    """``env`` for a child whose threads' stacks :func:`communicate_or_dump` can print if it hangs."""
    return {**env, "PYTHONFAULTHANDLER": "1"}


def communicate_or_dump(proc: subprocess.Popen, timeout: float, stderr: Path) -> str:
    """``proc.communicate(timeout)``'s stdout; if the child has not exited by then, fail the test with every
    thread's stack (SIGABRT makes Python's faulthandler print them into ``stderr``, the file the child
    writes its stderr to: a file, not a pipe, which a chatty child could fill and block on). Start the
    child with :func:`faulthandler_env`."""
    try:
        return proc.communicate(timeout=timeout)[0]
    except subprocess.TimeoutExpired:
        proc.send_signal(signal.SIGABRT)
        out = proc.communicate(timeout=60)[0]
        err = stderr.read_text(errors="replace")[-6000:]
        pytest.fail(f"the child did not exit within {timeout} s; its threads:\n{err}\n{out or ''}")
