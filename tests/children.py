"""Helpers for tests that start the command line as a child process."""

from __future__ import annotations

import signal


def default_sigint() -> None:
    """``preexec_fn`` for a child that must act on Ctrl-C as at a terminal. A test run started in the
    background (``pytest &``, CI) ignores SIGINT, and children inherit that: Python then installs no handler."""
    signal.signal(signal.SIGINT, signal.SIG_DFL)
