"""Memory checked before it is allocated (issue 18): a refusal in one line, not a machine
that swaps for an hour or a process the kernel kills.

The figures are lower bounds: a dataset's bytes at the resolution asked for (uint8, as
:func:`attnsearch.datasets.load_dataset` keeps it), and a training step's activations
(every layer's output of the plain backbone at the proxy width, float32, times the batch;
attention and the optimizer only add to it), so a refusal is never a false alarm.
"""

from __future__ import annotations

from attnsearch.errors import InputError

__all__ = ["activation_bytes", "available_bytes", "check_fits", "dataset_bytes"]


def available_bytes(device: str = "cpu") -> int | None:
    """Memory that can be allocated now without swapping: ``MemAvailable`` (Linux), or
    the free memory of the current CUDA device; None when unknown."""
    if device == "cuda":
        try:
            import torch

            return int(torch.cuda.mem_get_info()[0])
        except Exception:  # no CUDA, or a driver that cannot say
            return None
    try:
        with open("/proc/meminfo") as f:
            for line in f:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    return None


def _gb(n: int | float) -> str:
    return f"{n / 1e9:.1f} GB"


def check_fits(what: str, need: int, device: str = "cpu", advice: str = "") -> None:
    """Refuse ``what`` when it needs more than the memory available on ``device``.

    Raises:
        InputError: one line with both figures and ``advice``.
    """
    have = available_bytes(device)
    if have is not None and need > have:
        tail = f"; {advice}" if advice else ""
        raise InputError(
            f"{what} needs at least {_gb(need)} of {'GPU ' if device == 'cuda' else ''}"
            f"memory, more than the {_gb(have)} available{tail}"
        )


def dataset_bytes(images: int, channels: int, resolution: int) -> int:
    """Bytes of ``images`` uint8 images of ``channels × resolution × resolution``."""
    return images * channels * resolution * resolution


def activation_bytes(
    backbone: str, width: float, input_shape: tuple[int, int, int], batch: int, num_classes: int
) -> int:
    """Float32 bytes of every leaf layer's output in one training step of the plain
    ``backbone`` at proxy ``width`` (shapes only: traced on the meta device)."""
    import torch

    from attnsearch.architecture import Architecture
    from attnsearch.backbones import build_network

    with torch.device("meta"):
        net = build_network(
            Architecture.uniform(backbone),
            stem="proxy",
            width=width,
            num_classes=num_classes,
            in_channels=input_shape[0],
        )
    total = 0

    def hook(module, inputs, output) -> None:
        nonlocal total
        if isinstance(output, torch.Tensor):
            total += output.numel()

    net.eval()  # the same shapes; batch norm in training mode refuses a 1×1 batch of one
    handles = [m.register_forward_hook(hook) for m in net.modules() if not list(m.children())]
    try:
        with torch.no_grad():
            net(torch.empty(1, *input_shape, device="meta"))
    finally:
        for h in handles:
            h.remove()
    return total * 4 * batch
