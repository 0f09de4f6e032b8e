"""Running a batch on a Ray cluster (``run DIR --ray ADDRESS``): Ray Core actors, one file per call.

* **Workers**: one actor per GPU (``num_gpus=1``) holding the model, or, on a cluster without
  GPUs, one CPU actor per node (``--ray-workers`` sets the number). Every actor reserves a
  fraction of a CPU only (:data:`ACTOR_CPUS`): actors that reserve whole CPUs starve the tasks
  Ray needs beside them on small nodes. A CPU actor sets torch's threads to its share of the
  node's cores itself (Ray would give it one).
* **Files**: each file is one actor call; each actor has :data:`DEPTH` calls queued so it starts
  the next file at once. The next segment of a recording goes to the actor that has its previous
  segment where possible (the engine and its smoothing state are reused there); elsewhere the
  actor warms a fresh engine up on the previous segment's last frames (:mod:`.worker`).
* **Failures**: a bad file comes back as a failed result. A worker that dies (killed, out of
  memory, a lost node) is restarted and its calls retried, ``retries`` times
  (``max_restarts``/``max_task_retries``); its partial output is a temporary file that the retry
  overwrites and the driver removes in any case.
* **Resume and manifest** as without Ray: the driver (this process) decides what to skip and
  writes every manifest line. Inputs and outputs must be on a filesystem every node sees at the
  same path.
"""

from __future__ import annotations

import math
import os
import re
import socket
import time
from typing import Any

from ..errors import ClusterError, ModelError
from .jobs import BatchObserver, FileResult, Job, RunSettings
from .runner import begin_batch

ACTOR_CPUS = 0.25  # fractional: leaves the node's CPUs to Ray's own tasks (see DESIGN.md, known traps)
DEPTH = 2  # calls queued per actor
START_TIMEOUT_S = 600.0  # for the actors to load the model (and for GPUs to be free)
WAIT_S = 0.5
INSTALL_HINT = "pip install 'streamdehaze[cluster]'"


def import_ray():
    """The ``ray`` module, or ClusterError saying how to install it."""
    try:
        import ray
    except ImportError:
        raise ClusterError(f"--ray needs Ray, which is not installed: {INSTALL_HINT}") from None
    return ray


class FileActor:
    """A Ray actor around a :class:`~.worker.FileWorker` (created with ``ray.remote(FileActor).options(...)``)."""

    def __init__(self, settings: RunSettings, device: str, threads: int | None, on_write=None) -> None:
        if threads:
            import torch

            torch.set_num_threads(threads)
        from .worker import FileWorker

        name = f"{socket.gethostname()}:{os.getpid()}" + (f" {device}" if device != "cpu" else "")
        self.worker = FileWorker(settings, device=device, name=name, on_write=on_write)

    def ready(self) -> str:
        return self.worker.name

    def process(self, job: Job) -> FileResult:
        return self.worker.process(job)


def check_settings(settings: RunSettings) -> None:
    """ModelError for a weight file that is not there (the workers read the same path)."""
    if settings.weights and not os.path.isfile(settings.weights):
        raise ModelError(
            f"weight file not found: {settings.weights} (pass an existing .pt/.pth/.pk file with --weights, "
            "at a path every Ray node sees)"
        )


def connect(ray, address: str) -> bool:
    """Join the cluster at ``address`` (``local``: start one here); True when this call started Ray."""
    if ray.is_initialized():
        return False
    try:
        if address == "local":
            ray.init(address="local", include_dashboard=False, log_to_driver=False)
        else:
            ray.init(address=address, log_to_driver=False)
    except (ConnectionError, RuntimeError, ValueError) as err:
        raise ClusterError(
            f"--ray {address}: cannot join the cluster ({str(err).splitlines()[0]}); give the head's address "
            "(auto, HOST:6379 or ray://HOST:10001), start one with `ray start --head`, or use --ray local"
        ) from None
    return True


def _alive_nodes(ray) -> list[dict[str, Any]]:
    return [n for n in ray.nodes() if n.get("Alive") and n.get("Resources", {}).get("CPU", 0) > 0]


def actor_plan(ray, workers: int | None) -> tuple[int, dict[str, Any], str, int | None]:
    """``(count, ray options, device, torch threads)`` of the actors for this cluster."""
    resources = ray.cluster_resources()
    gpus = int(resources.get("GPU", 0))
    if gpus:
        count = workers or gpus
        return count, {"num_gpus": 1, "num_cpus": ACTOR_CPUS}, "cuda", None
    nodes = _alive_nodes(ray)
    count = workers or max(1, len(nodes))
    per_node = math.ceil(count / max(1, len(nodes)))
    cpus = min((int(n["Resources"]["CPU"]) for n in nodes), default=os.cpu_count() or 1)
    return count, {"num_cpus": ACTOR_CPUS, "scheduling_strategy": "SPREAD"}, "cpu", max(1, cpus // per_node)


class _Pool:
    """The actors and what each has queued; picks the next job for an actor."""

    def __init__(self, ray, settings: RunSettings, workers: int | None, retries: int, on_write) -> None:
        self.ray = ray
        count, options, self.device, self.threads = actor_plan(ray, workers)
        self.cls = ray.remote(FileActor).options(max_restarts=retries, max_task_retries=retries, **options)
        self.settings, self.on_write = settings, on_write
        self.actors = [self._new() for _ in range(count)]
        self.queued = [0] * count
        self.last: list[str | None] = [None] * count  # the input last given to each actor

    def _new(self):
        return self.cls.remote(self.settings, self.device, self.threads, self.on_write)

    def wait_ready(self, timeout: float) -> list[str]:
        """Names of the actors that started; drops those that did not; ClusterError when none did."""
        refs = {a.ready.remote(): i for i, a in enumerate(self.actors)}
        done, _ = self.ray.wait(list(refs), num_returns=len(refs), timeout=timeout)
        names, keep, errors = [], [], []
        for ref in done:
            try:
                names.append(self.ray.get(ref))
                keep.append(refs[ref])
            except self.ray.exceptions.RayError as err:
                errors.append(_cause(err))
        for i in set(range(len(self.actors))) - set(keep):
            self.ray.kill(self.actors[i], no_restart=True)
        if not keep:
            why = errors[0] if errors else f"none started within {timeout:.0f} s ({self.ray.cluster_resources()})"
            raise ClusterError(f"no Ray worker could start: {why}")
        self.actors = [self.actors[i] for i in sorted(keep)]
        self.queued, self.last = [0] * len(keep), [None] * len(keep)
        return names

    def pick(self, index: int, pending: list[Job]) -> Job:
        """The next job for actor ``index``: its own recording's next segment, else one no other actor is on."""
        mine = self.last[index]
        others = {x for i, x in enumerate(self.last) if i != index and x is not None}
        for k, job in enumerate(pending):
            if mine is not None and job.previous == mine:
                return pending.pop(k)
        for k, job in enumerate(pending):
            if job.previous is None or job.previous not in others:
                return pending.pop(k)
        return pending.pop(0)

    def stop(self, timeout: float = 10.0) -> None:
        """Kill every actor and wait until they are gone (so none writes any more)."""
        for actor in self.actors:
            self.ray.kill(actor, no_restart=True)
        refs = [a.ready.remote() for a in self.actors]
        self.ray.wait(refs, num_returns=len(refs), timeout=timeout)  # dead actors answer at once, with an error

    def replace(self, index: int) -> None:
        self.ray.kill(self.actors[index], no_restart=True)
        self.actors[index], self.last[index] = self._new(), None


def _cause(err: BaseException) -> str:
    """The original error's message inside a Ray error (``module.SomeError: text`` → ``text``)."""
    inner = getattr(err, "cause", None)
    if isinstance(inner, BaseException) and inner is not err:
        return str(inner).splitlines()[0] if str(inner) else type(inner).__name__
    lines = [ln for ln in str(err).splitlines() if ln.strip() and not ln.startswith(" ")]
    errors = [ln for ln in lines if re.match(r"[\w.]+(Error|Exception): ", ln)]
    line = errors[0] if errors else (lines[-1] if lines else type(err).__name__)
    return re.sub(r"^[\w.]+(Error|Exception): ", "", line)


def _remove(path: str) -> None:
    try:
        os.remove(path)
    except FileNotFoundError:
        pass


def run_ray(
    jobs: list[Job],
    settings: RunSettings,
    output: str,
    address: str,
    *,
    overwrite: bool = False,
    workers: int | None = None,
    retries: int = 3,
    observer: BatchObserver | None = None,
    on_write=None,
) -> list[FileResult]:
    """Process ``jobs`` on the Ray cluster at ``address`` (``local``, ``auto``, ``HOST:PORT``, ``ray://HOST:PORT``).

    Same rules and results as :func:`~.runner.run_local`. A Ray session that was already started
    in this process is used as it is (and left running); one started here is shut down at the end.
    """
    ray = import_ray()
    check_settings(settings)  # the usual mistakes, said here once rather than by every worker
    observer = observer or BatchObserver()
    manifest, todo, results = begin_batch(jobs, output, overwrite, observer)
    if not todo:
        return results
    started = connect(ray, address)
    inflight: dict[Any, tuple[Job, int, Any]] = {}  # call -> (job, actor index, actor)
    pool = None
    try:
        pool = _Pool(ray, settings, workers, retries, on_write)
        names = pool.wait_ready(START_TIMEOUT_S)
        observer.note(f"{len(names)} Ray worker{'s' if len(names) != 1 else ''}: {', '.join(names)}")
        pending = list(todo)
        while pending or inflight:
            for i in range(len(pool.actors)):
                while pending and pool.queued[i] < DEPTH:
                    job = pool.pick(i, pending)
                    inflight[pool.actors[i].process.remote(job)] = (job, i, pool.actors[i])
                    pool.queued[i] += 1
                    pool.last[i] = job.input
                    observer.file_started(job)
            ready, _ = ray.wait(list(inflight), num_returns=1, timeout=WAIT_S)
            for ref in ready:
                job, i, actor = inflight.pop(ref)
                pool.queued[i] -= 1
                result = _collect(ray, ref, job, retries)
                if result.status == "failed":
                    _remove(job.temp_output)
                    if result.worker is None and pool.actors[i] is actor:  # gone for good: a new one takes over
                        pool.replace(i)
                manifest.add(result)
                observer.file_finished(job, result)
                results.append(result)
    finally:
        if pool is not None:
            pool.stop()
        if started:
            ray.shutdown()
        for job, _, _ in inflight.values():  # Ctrl-C or an error: the workers are gone, remove what they left
            _remove(job.temp_output)
    return results


def _collect(ray, ref, job: Job, retries: int) -> FileResult:
    t0 = time.perf_counter()
    try:
        return ray.get(ref)
    except ray.exceptions.RayActorError as err:
        reason = f"the Ray worker died {retries + 1} times while processing it (last: {_cause(err)})"
    except ray.exceptions.RayError as err:
        reason = f"Ray could not run it: {_cause(err)}"
    return FileResult(job.input, job.output, "failed", seconds=time.perf_counter() - t0, error=reason)
