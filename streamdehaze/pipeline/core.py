"""The engine's stateless core: the network and the transfer's fit, pure functions of their input batch.

Everything here maps a batch to a batch with no memory of earlier calls, so it is safe to capture
in a CUDA graph or to ``torch.compile``: the stateful stages (:mod:`.stages`) run between and after
these calls, never inside them. The functions, all on the device, ``(B, 3, ·, ·)`` float in [0, 1]:

* :meth:`Core.plain`: the network at full resolution, ``x → y``;
* :meth:`Core.coefficients`: the guided transfer's core, ``low → (a, b)``: the network at the working
  size and the affine fit ``y ≈ a · low + b`` (:func:`~streamdehaze.ops.transfer_fit.fit_coefficients`),
  then the guard rails of ``guard`` (:func:`~streamdehaze.ops.guard.guard`);
* for networks with a global airlight (the dark channel prior, :attr:`~streamdehaze.nets.dehazer.Dehazer.has_airlight`)
  the same split in two: :meth:`Core.airlight` (``x → (B, 3)``), then, after a stateful stage has
  smoothed the airlight, :meth:`Core.plain_with` / :meth:`Core.coefficients_with`.

With CUDA graphs or compilation (or a test's stand-in ``graph``), every call is padded to its batch
bucket (:func:`~.tuning.bucket`: 1, 2, 4, 8, ...), so a partial batch or a new keyframe count reuses
a captured shape, and the outputs are copied out of the graph's static buffers before anything
stateful sees them. Eager calls run unpadded (bit-identical to the plain network).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch

from ..choices import DEFAULT_GUARD
from ..errors import ModelError
from ..ops.transfer_fit import DEFAULT_TRANSFER_FIT, TRANSFER_FITS, default_radius, guarded_fit
from .tuning import EngineOptions, FixedShapes, GraphedModel, model_runner

Tensor = torch.Tensor
Wrapper = Callable[[Callable[..., Any]], Callable[..., Any]]


def _clone(out: Any) -> Any:
    return out.clone() if isinstance(out, torch.Tensor) else tuple(o.clone() for o in out)


class _Fixed:
    """A graphed or compiled function behind :class:`~.tuning.FixedShapes`, its outputs copied out."""

    def __init__(self, fn: Callable[..., Any], mark_step: bool) -> None:
        self.fn = FixedShapes(fn)
        self.mark_step = mark_step

    def __call__(self, *xs: Tensor) -> Any:
        if self.mark_step:  # compile's own CUDA graphs: a new step, the last one's outputs are copied already
            torch.compiler.cudagraph_mark_step_begin()
        return _clone(self.fn(*xs))


def _keep_opaque(model: Any) -> None:
    """Modules that ``torch.compile`` must call, not trace (``compile_opaque``: the onnxruntime runner)."""
    for module in model.modules() if isinstance(model, torch.nn.Module) else ():
        if getattr(module, "compile_opaque", False):
            module.forward = torch.compiler.disable(module.forward)


class Core:
    """The stateless core for ``model`` on ``device`` (see the module docstring).

    ``fit``/``radius``/``eps``/``shared_gain``: the transfer's fit (None: ``fit``'s preset).
    ``graph``: wraps each core function (default: :class:`~.tuning.GraphedModel` with
    ``options.cuda_graphs``, ``torch.compile`` with ``options.compile``); tests pass a counting fake.
    """

    def __init__(
        self,
        model: Callable[[Tensor], Tensor],
        device: torch.device,
        precision: str = "fp32",
        options: EngineOptions | None = None,
        fit: str = DEFAULT_TRANSFER_FIT,
        radius: int | None = None,
        eps: float = 1e-4,
        shared_gain: bool | None = None,
        graph: Wrapper | None = None,
        guard: str = DEFAULT_GUARD,
    ) -> None:
        options = options or EngineOptions().resolved(device)
        self.model, self.device, self.precision = model, device, precision
        self.fit, self.radius, self.eps, self.guard = fit, radius, eps, guard
        self.shared_gain = TRANSFER_FITS[fit].shared_gain if shared_gain is None else shared_gain
        self.has_airlight = bool(getattr(model, "has_airlight", False))
        if options.compile:
            _keep_opaque(model)
        self._net = model_runner(model, device, precision, options)
        self.graphs: list[Any] = []  # the graph (or compiled) objects made, one per core function (counts, tests)
        wrap = self._wrapper(options, graph, self.graphs)
        self._plain, self._coefficients = wrap(self._plain_fn), wrap(self._coefficients_fn)
        if self.has_airlight:
            self._airlight = wrap(self._airlight_fn)
            self._plain_with, self._coefficients_with = wrap(self._plain_with_fn), wrap(self._coefficients_with_fn)

    @staticmethod
    def _wrapper(options: EngineOptions, graph: Wrapper | None, made: list[Any]) -> Wrapper:
        mark_step = False
        if graph is None and options.compile:
            mode = "reduce-overhead" if options.cuda_graphs else None  # reduce-overhead = compile's own CUDA graphs
            mark_step = options.cuda_graphs

            def graph(fn):
                return torch.compile(fn, dynamic=False, mode=mode)

        elif graph is None and options.cuda_graphs:
            pool = torch.cuda.graph_pool_handle()  # one memory pool for every shape and function of the core

            def graph(fn):
                return GraphedModel(fn, pool=pool)

        if graph is None:
            return lambda fn: fn

        def wrap(fn: Callable[..., Any]) -> Callable[..., Any]:
            made.append(graph(fn))
            return _Fixed(made[-1], mark_step)

        return wrap

    # ---------------------------------------------------------------- the pure functions

    def _fit(self, low: Tensor, y: Tensor) -> tuple[Tensor, Tensor]:
        with torch.autocast(low.device.type, enabled=False):
            r = self.radius if self.radius is not None else default_radius(*low.shape[-2:], self.fit)
            return guarded_fit(low, y.float(), r, self.eps, self.shared_gain, self.guard)

    def _plain_fn(self, x: Tensor) -> Tensor:
        return self._net(x)

    def _coefficients_fn(self, low: Tensor) -> tuple[Tensor, Tensor]:
        return self._fit(low, self._net(low))

    def _airlight_fn(self, x: Tensor) -> Tensor:
        return self._net(x, fn=self.model.airlight)

    def _plain_with_fn(self, x: Tensor, airlight: Tensor) -> Tensor:
        return self._net(x, airlight, fn=self.model.dehaze_with)

    def _coefficients_with_fn(self, low: Tensor, airlight: Tensor) -> tuple[Tensor, Tensor]:
        return self._fit(low, self._net(low, airlight, fn=self.model.dehaze_with))

    # ---------------------------------------------------------------- calls

    def plain(self, x: Tensor) -> Tensor:
        """``x`` ``(B, 3, H, W)`` → the network's ``(B, 3, H, W)`` in [0, 1]."""
        return self._call(self._plain, x)

    def coefficients(self, low: Tensor) -> tuple[Tensor, Tensor]:
        """``low`` ``(k, 3, h, w)`` float32 → ``(a, b)``, each ``(k, 3, h, w)`` float32."""
        return self._call(self._coefficients, low)

    def airlight(self, x: Tensor) -> Tensor:
        """``x`` ``(B, 3, H, W)`` → the network's global airlight ``(B, 3)`` float32."""
        return self._call(self._airlight, x)

    def plain_with(self, x: Tensor, airlight: Tensor) -> Tensor:
        return self._call(self._plain_with, x, airlight)

    def coefficients_with(self, low: Tensor, airlight: Tensor) -> tuple[Tensor, Tensor]:
        return self._call(self._coefficients_with, low, airlight)

    def _call(self, fn: Callable[..., Any], *xs: Tensor) -> Any:
        """``fn(*xs)`` with a clear error for an op the chosen precision has no kernel for."""
        try:
            return fn(*xs)
        except (RuntimeError, NotImplementedError) as err:
            if self.precision != "fp32" and "not implemented for" in str(err):
                raise ModelError(
                    f"{getattr(self.model, 'name', 'the model')} cannot run in {self.precision} on "
                    f"{self.device.type}: {str(err).splitlines()[0]}; use --precision fp32"
                ) from err
            raise
