"""The proxy trainer: train a candidate briefly on a small dataset kept resident on the device.

airbench-style: the whole dataset lives on the device as uint8 tensors (no DataLoader),
batches are gathered by index, augmentation (random translation, and horizontal flips for
natural images) runs on the device, one host sync per epoch. On CUDA: bf16 autocast,
channels_last and cudnn benchmark. Seeded per trial.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field

import torch
import torch.nn.functional as F
from torch import nn

from attnsearch.architecture import Architecture
from attnsearch.backbones import build_network
from attnsearch.settings import ProxyConfig, default_device

__all__ = [
    "ProxyConfig",
    "TrainingError",
    "TrainResult",
    "train_candidate",
    "evaluate",
    "validate",
]


class TrainingError(RuntimeError):
    """The candidate failed by itself (non-finite loss, ...); the message says why."""


@dataclass
class TrainResult:
    accuracy: float  # final validation accuracy (0-1)
    history: list[float]  # validation accuracy after each epoch
    train_seconds: float  # wall time spent training and evaluating
    epochs: int
    state_dict: dict  # final weights (CPU tensors)
    train_losses: list[float] = field(default_factory=list)  # mean training loss per epoch
    val_losses: list[float] = field(default_factory=list)  # validation cross-entropy per epoch
    # seconds spent per part (see train_candidate's ``timings``)
    timings: dict[str, float] = field(default_factory=dict)


def _device_for_trial() -> torch.device:
    return torch.device(default_device())


def _normalize(x: torch.Tensor, mean: torch.Tensor, std: torch.Tensor, dtype) -> torch.Tensor:
    return ((x.to(dtype) / 255.0) - mean) / std


def _augment(x: torch.Tensor, flip: bool, gen: torch.Generator) -> torch.Tensor:
    """Random translation (zero padding, per-sample offsets) and optional flips."""
    n, _, h, w = x.shape
    pad = max(1, h // 8)
    xp = F.pad(x, (pad, pad, pad, pad))
    dy = torch.randint(0, 2 * pad + 1, (n,), device=x.device, generator=gen)
    dx = torch.randint(0, 2 * pad + 1, (n,), device=x.device, generator=gen)
    rows = (dy[:, None] + torch.arange(h, device=x.device)[None, :])[:, None, :, None]
    cols = (dx[:, None] + torch.arange(w, device=x.device)[None, :])[:, None, None, :]
    batch = torch.arange(n, device=x.device)[:, None, None, None]
    chans = torch.arange(x.shape[1], device=x.device)[None, :, None, None]
    out = xp[batch, chans, rows, cols]
    if flip:
        mask = torch.rand(n, device=x.device, generator=gen) < 0.5
        out = torch.where(mask[:, None, None, None], out.flip(3), out)
    return out


def evaluate(
    model: nn.Module,
    x: torch.Tensor,
    y: torch.Tensor,
    mean: torch.Tensor,
    std: torch.Tensor,
    batch_size: int = 512,
    autocast: bool = False,
) -> float:
    """Accuracy of ``model`` on uint8 images ``x`` (batched, one host sync)."""
    return validate(model, x, y, mean, std, batch_size, autocast)[0]


@torch.no_grad()
def validate(
    model: nn.Module,
    x: torch.Tensor,
    y: torch.Tensor,
    mean: torch.Tensor,
    std: torch.Tensor,
    batch_size: int = 512,
    autocast: bool = False,
) -> tuple[float, float]:
    """Accuracy and mean cross-entropy (no label smoothing) of ``model`` on uint8 images."""
    model.eval()
    correct = torch.zeros((), device=x.device, dtype=torch.long)
    loss = torch.zeros((), device=x.device, dtype=torch.float64)
    mf = torch.channels_last if x.is_cuda else torch.contiguous_format
    batch_size = max(1, min(batch_size, len(x)))
    for i in range(0, len(x), batch_size):
        xb = x[i : i + batch_size]
        short = batch_size - len(xb)
        if short:  # the ragged last batch, padded: one input shape (one cuDNN plan set)
            xb = torch.cat([xb, xb.new_zeros((short, *xb.shape[1:]))])
        xb = _normalize(xb, mean, std, torch.float32)
        with torch.autocast(x.device.type, dtype=torch.bfloat16, enabled=autocast):
            logits = model(xb.contiguous(memory_format=mf))
        logits = logits[: batch_size - short]  # eval mode: per-sample, padding changes none
        yb = y[i : i + batch_size]
        correct += (logits.argmax(1) == yb).sum()
        loss += F.cross_entropy(logits.float(), yb, reduction="sum").double()
    n = max(1, len(x))
    return correct.item() / n, loss.item() / n


def train_candidate(
    arch: Architecture,
    data,
    cfg: ProxyConfig,
    *,
    trial_seed: int = 0,
    device: torch.device | None = None,
    report: Callable[[int, float, dict], None] | None = None,
    start_epoch: int = 0,
    start_state: dict | None = None,
    timings: dict[str, float] | None = None,
    keep_state: bool = True,
) -> TrainResult:
    """Train ``arch``'s proxy network on ``data`` and report validation accuracy each epoch.

    Args:
        arch: the candidate (its slot choices; FLOPs refer to its deploy network).
        data: a :class:`attnsearch.datasets.Dataset` (uint8 tensors).
        cfg: the proxy settings.
        trial_seed: added to ``cfg.seed``.
        device: where to train (default: CUDA if visible, else CPU).
        report: called after each epoch with ``(epoch, accuracy, state)`` where ``state``
            holds ``model`` and ``optimizer`` state dicts (for checkpoints).
        start_epoch: resume from this epoch (with ``start_state``).
        start_state: ``{"model": ..., "optimizer": ...}`` to resume from.
        timings: filled in place, as training goes, with the seconds spent so far on
            ``data`` (placing the dataset on the device), ``build`` (network, optimizer,
            resumed state), ``steps`` (the training steps, one host sync per epoch),
            ``validate`` and ``report`` (the ``report`` calls: checkpoints).
        keep_state: the result holds the final weights as CPU tensors (False: an empty
            dict, no device-to-host copy; a search trial has them from its checkpoint).

    Raises:
        TrainingError: the loss became NaN or infinite.
    """
    device = torch.device(device) if device is not None else _device_for_trial()
    timings = {} if timings is None else timings
    for part in ("data", "build", "steps", "validate", "report"):
        timings.setdefault(part, 0.0)
    tick = time.perf_counter()

    def lap(part: str) -> None:  # time since the last lap goes to ``part``
        nonlocal tick
        now = time.perf_counter()
        timings[part] += now - tick
        tick = now

    torch.manual_seed(cfg.seed + trial_seed)
    gen = torch.Generator(device=device)
    gen.manual_seed(cfg.seed + trial_seed)
    cuda = device.type == "cuda"
    if cuda:
        torch.backends.cudnn.benchmark = True
    bf16 = cuda and cfg.bf16
    model = build_network(
        arch,
        stem="proxy",
        width=cfg.width,
        num_classes=data.num_classes,
        in_channels=data.train_x.shape[1],
    ).to(device)
    if cfg.zero_init_residual:
        _zero_init_residual(model)
    if cuda:
        model = model.to(memory_format=torch.channels_last)
    lap("build")
    train_x, train_y, val_x, val_y, mean, std = _resident(data, device, cfg.resolution)
    lap("data")

    n = len(train_x)
    bs = min(cfg.batch_size, n)
    steps_per_epoch = max(1, n // bs)  # drop the ragged last batch: stable BN statistics
    total_steps = steps_per_epoch * cfg.epochs
    lr = cfg.lr * bs / 128
    decay, no_decay = [], []
    for p in model.parameters():
        (no_decay if p.ndim <= 1 else decay).append(p)
    groups = [
        {"params": decay, "weight_decay": cfg.weight_decay},
        {"params": no_decay, "weight_decay": 0.0},
    ]
    fused = cuda or None  # CUDA: one fused kernel per step; CPU: the default (foreach)
    if cfg.optimizer == "adamw":
        opt: torch.optim.Optimizer = torch.optim.AdamW(groups, lr=lr, fused=fused)
    else:
        opt = torch.optim.SGD(groups, lr=lr, momentum=cfg.momentum, nesterov=True, fused=fused)
    warm = max(1, int(total_steps * cfg.warmup))

    def lr_at(step: int) -> float:  # linear warm-up, then linear decay to zero
        if step < warm:
            return (step + 1) / warm
        return max(0.0, (total_steps - step) / max(1, total_steps - warm))

    sched = torch.optim.lr_scheduler.LambdaLR(opt, lr_at)
    if start_state is not None:
        model.load_state_dict(start_state["model"])
        if "optimizer" in start_state:  # the final checkpoint keeps the weights only
            opt.load_state_dict(start_state["optimizer"])
        for _ in range(min(start_epoch, cfg.epochs) * steps_per_epoch):
            sched.step()
    mf = torch.channels_last if cuda else torch.contiguous_format
    history: list[float] = []
    train_losses: list[float] = []
    val_losses: list[float] = []
    t0 = time.perf_counter()
    lap("build")
    acc = 0.0
    for epoch in range(start_epoch, cfg.epochs):
        model.train()
        perm = torch.randperm(n, device=device, generator=gen)
        loss_sum = torch.zeros((), device=device)
        for step in range(steps_per_epoch):
            idx = perm[step * bs : (step + 1) * bs]
            xb = train_x[idx]
            if cfg.augment:
                xb = _augment(xb, cfg.flip, gen)
            xb = _normalize(xb, mean, std, torch.float32).contiguous(memory_format=mf)
            with torch.autocast(device.type, dtype=torch.bfloat16, enabled=bf16):
                loss = F.cross_entropy(model(xb), train_y[idx], label_smoothing=cfg.label_smoothing)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            sched.step()
            loss_sum += loss.detach()
        mean_loss = loss_sum.item() / steps_per_epoch  # the one host sync per epoch
        if not math.isfinite(mean_loss):
            raise TrainingError(f"training loss became {mean_loss} in epoch {epoch + 1}")
        lap("steps")
        acc, val_loss = validate(model, val_x, val_y, mean, std, autocast=bf16)
        lap("validate")
        history.append(acc)
        train_losses.append(mean_loss)
        val_losses.append(val_loss)
        if report is not None:
            report(
                epoch + 1,
                acc,
                {"model": model.state_dict(), "optimizer": opt.state_dict(), "loss": mean_loss},
            )
            lap("report")
    if start_epoch >= cfg.epochs:  # resumed from the final checkpoint: evaluate, no training
        acc, val_loss = validate(model, val_x, val_y, mean, std, autocast=bf16)
        lap("validate")
        history.append(acc)
        val_losses.append(val_loss)
        if report is not None:
            report(cfg.epochs, acc, {"model": model.state_dict(), "optimizer": {}, "loss": 0.0})
            lap("report")
    seconds = time.perf_counter() - t0
    state = {k: v.detach().cpu() for k, v in model.state_dict().items()} if keep_state else {}
    return TrainResult(
        acc, history, seconds, cfg.epochs, state, train_losses, val_losses, dict(timings)
    )


# the dataset placed on a device, kept for the next trial of the same process (a reused
# Ray actor trains many trials on one dataset): (data, device, resolution) -> tensors
_RESIDENT: dict[tuple, tuple] = {}


def _resident(data, device: torch.device, resolution: int | None) -> tuple:
    """``(train_x, train_y, val_x, val_y, mean, std)`` of ``data`` on ``device`` (resized to
    ``resolution``): copied once per process and kept, for one dataset at a time."""
    key = (id(data), str(device), resolution)
    hit = _RESIDENT.get(key)
    if hit is not None and hit[0] is data:  # the same object (its id cannot be reused)
        return hit[1]
    _RESIDENT.clear()  # one dataset at a time: free the last one's device memory
    train_x = data.train_x.to(device, non_blocking=True)
    train_y = data.train_y.to(device, non_blocking=True)
    val_x = data.val_x.to(device, non_blocking=True)
    val_y = data.val_y.to(device, non_blocking=True)
    if resolution is not None and train_x.shape[-1] != resolution:
        train_x = _resize(train_x, resolution)
        val_x = _resize(val_x, resolution)
    mean = torch.tensor(data.mean, device=device).view(1, -1, 1, 1)
    std = torch.tensor(data.std, device=device).view(1, -1, 1, 1)
    if device.type == "cuda":
        torch.cuda.synchronize(device)  # the copies are asynchronous: time them here
    placed = (train_x, train_y, val_x, val_y, mean, std)
    _RESIDENT[key] = (data, placed)  # holds data: its id stays its own while cached
    return placed


def _zero_init_residual(model: nn.Module) -> None:
    from attnsearch.backbones import BasicBlock, Bottleneck

    for m in model.modules():
        if isinstance(m, Bottleneck):
            nn.init.zeros_(m.bn3.weight)
        elif isinstance(m, BasicBlock):
            nn.init.zeros_(m.bn2.weight)


def _resize(x: torch.Tensor, size: int) -> torch.Tensor:
    y = F.interpolate(x.float(), size=(size, size), mode="bilinear", antialias=True)
    return y.round().clamp(0, 255).to(torch.uint8)
