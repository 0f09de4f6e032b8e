"""The training loop: Adam + cosine decay, AMP on CUDA, checkpoints, exact resume, validation.

One optimiser step takes a batch of ``batch_size`` crops per process, split into ``accum``
micro-batches (micro-batch ``j`` = samples ``j, j + accum, ...``: the same split DDP makes across
ranks, so one process with ``accum = N`` reproduces ``N`` ranks). FastDeconv's batch statistics
are per micro-batch, and its running statistics follow the first micro-batch only, as DDP's
buffer broadcast from rank 0 does.

Exact resume: data order and augmentation are functions of ``(seed, epoch, index)``
(:mod:`.data`), the model/optimizer/schedule/scaler/RNG states are restored, and the step
counter places the sampler inside its epoch; so N steps + resume + M steps equals N + M steps.
Ctrl-C (SIGINT) or SIGTERM finishes the current step, writes ``last.pt`` and returns.
"""

from __future__ import annotations

import math
import signal
import threading
import time
from collections.abc import Callable
from contextlib import nullcontext
from dataclasses import dataclass
from pathlib import Path

import torch

from ..devices import device_name
from ..errors import ModelError, TrainError
from ..nets.aecrnet import AECRNet
from ..ops.transfer_fit import fit_coefficients
from ..weights import apply_state_dict, read_weights, sha256
from . import distributed as D
from .checkpoint import read_checkpoint, rng_state, save_checkpoint, set_rng_state
from .config import RUNTIME_KEYS, TrainConfig, check_resume_compatible
from .data import EpochSampler, build_trainset, load_val_pairs, make_loader
from .log import CsvLog, TrainProgress
from .losses import ContrastiveLoss, DehazeLoss, build_encoder
from .validate import validate


class Cosine:
    """LR factor: linear warm-up, then ``0.5 · (1 + cos(π · progress))`` (picklable for the scheduler state)."""

    def __init__(self, total: int, warmup: int = 0) -> None:
        self.total, self.warmup = total, warmup

    def __call__(self, step: int) -> float:
        if step < self.warmup:
            return (step + 1) / self.warmup
        span = max(1, self.total - self.warmup)
        return 0.5 * (1.0 + math.cos(math.pi * min(1.0, (step - self.warmup) / span)))


@dataclass
class TrainResult:
    step: int
    last: Path
    best: Path | None
    best_psnr: float | None
    elapsed_s: float
    images_per_s: float
    interrupted: bool = False


def _through_fit(hazy: torch.Tensor, out: torch.Tensor) -> torch.Tensor:
    """What the working-size transfer's affine fit makes of a network's ``out`` for ``hazy`` (fp32)."""
    a, b = fit_coefficients(hazy.float(), out.float())
    return a * hazy.float() + b


class Trainer:
    """Builds everything (all checks happen here, before any step) and runs the loop."""

    def __init__(
        self,
        config: TrainConfig,
        resume: str | Path | None = None,
        progress: bool = True,
        info: D.DistInfo | None = None,
    ) -> None:
        self.cfg = cfg = config.validate()
        self.info = info or D.DistInfo()
        if cfg.threads:
            torch.set_num_threads(cfg.threads)
        self.ckpt = read_checkpoint(resume) if resume else None
        if self.ckpt:
            saved = TrainConfig.from_dict(self.ckpt["config"])
            diff = {k: v for k, v in cfg.to_dict().items() if k not in RUNTIME_KEYS}
            check_resume_compatible(saved, diff)
        self.dataset = build_trainset(
            cfg.data,
            cfg.crop,
            cfg.seed,
            work_side=cfg.work_side,
            rehaze=cfg.rehaze,
            augment=cfg.augment,
            recolour=cfg.recolour,
            light=cfg.light,
            identity=cfg.identity,
            camera=cfg.camera,
        )
        self.val = load_val_pairs(cfg.val, cfg.val_limit, cfg.val_crop) if cfg.val and self.info.is_main else []
        self.encoder_info: dict = {"kind": "none"}
        cr = None
        if cfg.cr_weight > 0:
            encoder, self.encoder_info = build_encoder(cfg.cr_encoder, cfg.vgg_weights)
            self._check_encoder()
            cr = ContrastiveLoss(encoder.to(self.info.device), extra_negatives=cfg.cr_negatives)
        self.loss = DehazeLoss(cr, cfg.cr_weight, cfg.rec_loss, cfg.shadow_weight, cfg.colour_weight)
        self._build_model()
        self.teacher = self._load_teacher(cfg.teacher) if cfg.teacher else None
        self.teacher_sha256 = sha256(cfg.teacher) if cfg.teacher else None  # named on the exported card
        self.out = Path(cfg.out)
        self.stop_requested = False
        self.progress_enabled = progress and self.info.is_main

    def _check_encoder(self) -> None:
        if not self.ckpt:
            return
        old = self.ckpt["encoder"]
        key = "sha256" if old.get("kind") == "imagenet" else "fingerprint"
        if old.get("kind") != self.encoder_info["kind"] or old.get(key) != self.encoder_info.get(key):
            raise TrainError(f"the checkpoint was trained with CR encoder {old}; resuming needs the same VGG19 weights")

    def _build_model(self) -> None:
        cfg, dev = self.cfg, self.info.device
        torch.manual_seed(cfg.seed)  # same initial weights on every rank and run
        self.net = AECRNet(ngf=cfg.ngf).to(dev).train()
        self.amp = cfg.amp and dev.type == "cuda"
        if self.amp:
            _fp32_forward(self.net.deconv)  # Newton–Schulz whitening is not safe in fp16
        self.opt = torch.optim.Adam(self.net.parameters(), lr=cfg.lr, betas=cfg.betas)
        self.sched = torch.optim.lr_scheduler.LambdaLR(self.opt, Cosine(cfg.steps, cfg.warmup))
        self.scaler = torch.amp.GradScaler(dev.type, enabled=self.amp)
        self.step, self.elapsed0, self.best = 0, 0.0, {"psnr": None, "ssim": None, "step": None}
        if cfg.init and not self.ckpt:  # a resumed run already holds (and continues) these weights
            try:
                apply_state_dict(self.net, read_weights(cfg.init).state_dict, source=cfg.init)
            except ModelError as exc:
                raise TrainError(f"--init: {exc}") from None
        if self.ckpt:
            try:
                apply_state_dict(self.net, self.ckpt["model"], source=self.ckpt["path"])
                self.opt.load_state_dict(self.ckpt["optimizer"])
                self.sched.load_state_dict(self.ckpt["scheduler"])
                if self.ckpt.get("scaler"):
                    self.scaler.load_state_dict(self.ckpt["scaler"])
            except (ModelError, ValueError, KeyError, RuntimeError) as exc:
                raise TrainError(f"cannot resume from {self.ckpt['path']}: {str(exc).splitlines()[0][:200]}") from None
            self.step = int(self.ckpt["step"])
            self.elapsed0 = float(self.ckpt.get("elapsed_s", 0.0))
            self.best = dict(self.ckpt.get("best") or self.best)
        self.model = D.wrap(self.net, self.info)

    def _load_teacher(self, path: str) -> torch.nn.Module:
        """The teacher's network as inference runs it (eval mode, folded), frozen, on the training device."""
        from ..nets.registry import load_model

        if not Path(path).is_file():
            raise TrainError(f"--teacher {path}: no such weight file")
        try:
            teacher = load_model("aecrnet", weights=path, device=self.info.device)
        except ModelError as exc:
            raise TrainError(f"--teacher: {exc}") from None
        return teacher.requires_grad_(False)

    # ---- state -------------------------------------------------------------------------
    def state(self) -> dict:
        return {
            "step": self.step,
            "epoch": self.step // max(1, self.steps_per_epoch),
            "images_seen": self.step * self.global_batch,
            "elapsed_s": self.elapsed0 + (time.perf_counter() - self.t0),
            "model": {k: v.detach().cpu() for k, v in self.net.state_dict().items()},
            "optimizer": self.opt.state_dict(),
            "scheduler": self.sched.state_dict(),
            "scaler": self.scaler.state_dict() if self.amp else {},
            "rng": rng_state(),
            "config": self.cfg.to_dict(),
            "encoder": self.encoder_info,
            "teacher_sha256": self.teacher_sha256,
            "best": self.best,
            "hardware": f"{self.info.world_size}× {device_name(self.info.device)}",
            "world_size": self.info.world_size,
            "torch": str(torch.__version__),
        }

    def save(self, name: str = "last.pt") -> Path:
        path = self.out / name
        if self.info.is_main:
            save_checkpoint(path, self.state())
        return path

    def request_stop(self, *_: object) -> None:
        """Finish the current step, checkpoint, return (what Ctrl-C does)."""
        self.stop_requested = True

    # ---- one step ----------------------------------------------------------------------
    def train_step(self, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        """One optimiser step; returns detached ``[loss, l1, cr, grad_norm]``."""
        dev, k = self.info.device, self.cfg.accum
        hazy = batch["hazy"].to(dev, non_blocking=True)
        clear = batch["clear"].to(dev, non_blocking=True)
        if self.teacher is not None:  # distillation: the target is what the teacher makes of the same input
            with torch.no_grad(), torch.autocast(dev.type, enabled=False):
                clear = self.teacher(hazy.float())
                if self.cfg.fit_loss:  # both through the transfer's fit: the student matches what inference delivers
                    clear = _through_fit(hazy, clear)
        self.opt.zero_grad(set_to_none=True)
        sums = torch.zeros(3, device=dev)
        for j in range(k):
            sync = self.model.no_sync() if self.info.distributed and j < k - 1 else nullcontext()
            saved = [b.clone() for b in self.net.buffers()] if j > 0 else None
            with sync:
                with torch.autocast(dev.type, dtype=torch.float16, enabled=self.amp):
                    out = self.model(hazy[j::k])
                    if self.cfg.fit_loss:  # what the working-size transfer makes of the output (fp32 sums)
                        with torch.autocast(dev.type, enabled=False):
                            out = _through_fit(hazy[j::k], out)
                    terms = self.loss(out.float(), clear[j::k], hazy[j::k])
                if saved is not None:  # running statistics follow micro-batch 0 (see module doc)
                    with torch.no_grad():
                        for b, s in zip(self.net.buffers(), saved, strict=True):
                            b.copy_(s)
                self.scaler.scale(terms.total / k).backward()
            sums += torch.stack([terms.total.detach(), terms.l1, terms.cr]) / k
        self.scaler.unscale_(self.opt)
        limit = self.cfg.clip_grad if self.cfg.clip_grad > 0 else float("inf")
        gnorm = torch.nn.utils.clip_grad_norm_(self.net.parameters(), limit)
        self.scaler.step(self.opt)
        self.scaler.update()
        self.sched.step()
        self.step += 1
        return torch.cat([sums, gnorm.detach().reshape(1).to(dev)])

    # ---- the loop ----------------------------------------------------------------------
    def run(self, stop_after: int | None = None, on_step: Callable[[Trainer], None] | None = None) -> TrainResult:
        """Train to ``cfg.steps`` (or ``stop_after`` steps of this session, or Ctrl-C)."""
        cfg, info = self.cfg, self.info
        self.t0 = time.perf_counter()
        per_rank = EpochSampler(self.dataset, info.world_size, info.rank, cfg.seed)
        self.steps_per_epoch = len(per_rank) // cfg.batch_size
        self.global_batch = cfg.batch_size * info.world_size
        if self.steps_per_epoch < 1:
            raise TrainError(
                f"the training set has {len(self.dataset)} samples, fewer than one global batch of "
                f"{self.global_batch}; add data, weight it up (DIR@4) or lower --batch-size"
            )
        if info.is_main:
            self.out.mkdir(parents=True, exist_ok=True)
            (self.out / "config.json").write_text(_json(cfg.to_dict()))
        log = CsvLog(self.out / "log.csv", self.step if self.ckpt else None) if info.is_main else None
        loader = make_loader(self.dataset, per_rank, cfg.batch_size, cfg.workers, info.device.type == "cuda")
        if self.ckpt:
            set_rng_state(self.ckpt["rng"])
        end = cfg.steps if stop_after is None else min(cfg.steps, self.step + stop_after)
        start_step, handlers = self.step, self._install_signals()
        self._acc, self._mark, self._stats = None, (time.perf_counter(), self.step), ""
        halted = False
        try:
            with TrainProgress(cfg.steps, self.step, self.progress_enabled) as bar:
                while self.step < end and not halted:
                    epoch, pos = divmod(self.step, self.steps_per_epoch)
                    per_rank.set_position(epoch, pos * cfg.batch_size)
                    for batch in loader:
                        vals = self.train_step(batch)
                        self._acc = vals if self._acc is None else self._acc + vals
                        if on_step:
                            on_step(self)
                        # Collective: every rank stops at the same step, whichever got the signal.
                        halted = D.any_rank(self.stop_requested, info)
                        self._after_step(log, bar, last=halted or self.step >= end)
                        if halted or self.step >= end:
                            break
        finally:
            self._restore_signals(handlers)
        elapsed = self.elapsed0 + time.perf_counter() - self.t0
        done = self.step - start_step
        rate = done * self.global_batch / max(time.perf_counter() - self.t0, 1e-9)
        best_path = self.out / "best.pt" if (self.out / "best.pt").is_file() else None
        interrupted = halted and self.step < end
        return TrainResult(self.step, self.out / "last.pt", best_path, self.best["psnr"], elapsed, rate, interrupted)

    def _after_step(self, log: CsvLog | None, bar: TrainProgress, last: bool) -> None:
        """Log, checkpoint and validate as scheduled (always log and checkpoint on the last step)."""
        cfg = self.cfg
        if self.step % cfg.log_every == 0 or last:
            now = time.perf_counter()
            t_mark, n_mark = self._mark
            self._stats = self._log(log, self._acc / (self.step - n_mark), (self.step - n_mark) / (now - t_mark))
            self._acc, self._mark = None, (now, self.step)
        if self.step % cfg.ckpt_every == 0 or last:
            self.save()
        if cfg.val and self.step % cfg.val_every == 0:
            t = time.perf_counter()
            if self.val:
                self._validate(log, bar)
            D.barrier(self.info)  # the other ranks wait for rank 0's validation
            # images/s counts training time only
            self._mark = (self._mark[0] + time.perf_counter() - t, self._mark[1])
        bar.advance(self._stats)

    def _log(self, log: CsvLog | None, mean: torch.Tensor, steps_per_s: float) -> str:
        mean = D.all_sum(mean, self.info) / self.info.world_size
        loss, l1, cr, gnorm = (float(v) for v in mean.cpu())
        if not math.isfinite(loss):
            raise TrainError(
                f"the loss became {loss} at step {self.step}; lower --lr or set --clip-grad "
                f"(last good checkpoint: {self.out / 'last.pt'})"
            )
        ips = steps_per_s * self.global_batch
        lr = self.sched.get_last_lr()[0]
        if log is not None:
            elapsed = self.elapsed0 + time.perf_counter() - self.t0
            epoch = self.step // self.steps_per_epoch
            log.write(step=self.step, epoch=epoch, lr=lr, loss=loss, l1=l1, cr=cr, grad_norm=gnorm,
                      images_per_s=ips, elapsed_s=elapsed)  # fmt: skip
        return f"loss {loss:.4f} l1 {l1:.4f} cr {cr:.4f} lr {lr:.2e} {ips:.1f} img/s"

    def _validate(self, log: CsvLog | None, bar: TrainProgress) -> None:
        p, s = validate(self.net, self.val, self.info.device, self.cfg.val_work_size)
        if log is not None:
            log.write(step=self.step, val_psnr=p, val_ssim=s)
        better = self.best["psnr"] is None or p > self.best["psnr"]
        if better:
            self.best = {"psnr": p, "ssim": s, "step": self.step}
            self.save("best.pt")
        bar.print(f"step {self.step}: validation PSNR {p:.2f} dB, SSIM {s:.4f}{' (best)' if better else ''}")

    def _install_signals(self) -> dict:
        if threading.current_thread() is not threading.main_thread():
            return {}
        old = {}
        for sig in (signal.SIGINT, signal.SIGTERM):
            old[sig] = signal.getsignal(sig)

            def handler(signum, frame, _sig=sig):
                self.request_stop()
                signal.signal(_sig, old[_sig])  # a second Ctrl-C aborts at once

            signal.signal(sig, handler)
        return old

    def _restore_signals(self, old: dict) -> None:
        for sig, h in old.items():
            signal.signal(sig, h)


def _fp32_forward(module: torch.nn.Module) -> None:
    """Run ``module`` outside autocast, in float32 (instance-level: the state dict is unchanged)."""
    inner = module.forward

    def forward(x: torch.Tensor) -> torch.Tensor:
        with torch.autocast(x.device.type, enabled=False):
            return inner(x.float())

    module.forward = forward


def _json(d: dict) -> str:
    import json

    return json.dumps(d, indent=2) + "\n"


def train(
    config: TrainConfig,
    resume: str | Path | None = None,
    progress: bool = True,
    stop_after: int | None = None,
    on_step: Callable[[Trainer], None] | None = None,
) -> TrainResult:
    """Train AECR-Net as ``config`` says (in a torchrun process group if launched by torchrun)."""
    info = D.setup(config.device)
    try:
        trainer = Trainer(config, resume, progress, info)
        return trainer.run(stop_after, on_step)
    finally:
        D.teardown(info)
