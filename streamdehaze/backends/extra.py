"""The optional ``onnx`` extra: whether its packages are installed, and one clear error when not."""

from __future__ import annotations

import importlib
import importlib.util
import sys
from types import ModuleType

from ..errors import ModelError
from . import INSTALL_HINT

RUNTIME = ("onnxruntime",)
EXPORT = ("onnx", "onnxscript")


def _installed(name: str) -> bool:
    if name in sys.modules:  # None there means "known missing" (and is how tests simulate it)
        return sys.modules[name] is not None
    return importlib.util.find_spec(name) is not None


def missing(names: tuple[str, ...] = EXPORT + RUNTIME) -> list[str]:
    """The packages of ``names`` that cannot be imported (cheap: nothing is imported)."""
    return [n for n in names if not _installed(n)]


def onnx_available() -> bool:
    """Whether ``--backend onnxruntime`` can export and run a model here."""
    return not missing()


def require(names: tuple[str, ...], what: str) -> list[ModuleType]:
    """Import ``names`` for ``what`` (e.g. ``"--backend onnxruntime"``) or raise one :class:`ModelError` line."""
    modules, lacking = [], []
    for name in names:
        try:
            modules.append(importlib.import_module(name))
        except ImportError:
            lacking.append(name)
    if lacking:
        raise ModelError(
            f"{what} needs the optional packages {', '.join(names)} ({', '.join(lacking)} not installed); "
            f"install them with: {INSTALL_HINT}"
        )
    return modules
