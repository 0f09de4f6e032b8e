"""Error types. Every user-facing failure is a StreamDehazeError with a one-line message
that says what was received, what was expected and how to fix it."""

from __future__ import annotations


class StreamDehazeError(Exception):
    """Base class; the CLI prints ``str(err)`` on one line and exits non-zero."""

    exit_code = 1


class InputError(StreamDehazeError):
    """A bad argument or input file from the user (wrong path, unreadable image, bad option)."""

    exit_code = 2


class SourceError(StreamDehazeError):
    """A video source cannot be opened or was lost (missing file, unreachable URL, no webcam)."""


class DecodeError(SourceError):
    """A source was opened but its data cannot be decoded (corrupt or truncated file)."""


class SourceTimeout(SourceError):
    """A live source delivered nothing within the configured timeout."""


class ModelError(StreamDehazeError):
    """A model name, weight file or checkpoint is unknown, missing or does not fit the network."""


class EncodeError(StreamDehazeError):
    """The output cannot be written (unknown extension or codec, unwritable path)."""


class ClusterError(StreamDehazeError):
    """A Ray cluster cannot be used (Ray not installed, no cluster at the address, no worker could start)."""


class DataError(StreamDehazeError):
    """A dataset folder is empty, unpaired or unreadable."""


class TrainError(StreamDehazeError):
    """Training cannot start or resume (bad config, missing VGG weights, corrupt checkpoint)."""
