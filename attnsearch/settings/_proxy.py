"""How a candidate trains: :class:`ProxyConfig` (run.yaml's ``proxy:``), the optimizers'
defaults, the batch-size rule and which datasets flip. Imports only the config machinery
(:mod:`attnsearch.settings._config`); :mod:`attnsearch.settings` re-exports every name."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

from attnsearch.settings._config import (
    ConfigError,
    bounded,
    check_bounds,
    config_from_dict,
    setting,
)

MAX_SEED = 2**31 - 1  # numpy and torch take it; larger ones are not seeds
OPTIMIZERS = ("sgd", "adamw")  # ProxyConfig.optimizer
# lr and weight decay an optimizer gets when the user sets neither (RunSettings.make)
OPTIMIZER_DEFAULTS: dict[str, dict[str, float]] = {
    "sgd": {},  # ProxyConfig's field defaults
    "adamw": {"lr": 0.002, "weight_decay": 0.05},  # stage A pilot, benchmarks/RESULTS.md §16
}
SMALL_DATASET = 10_000  # fewer training images than this: smaller batches, more steps


# ---- how a candidate trains ---------------------------------------------------------------
@dataclass(frozen=True)
class ProxyConfig:
    """How a candidate is trained. Recorded in run.yaml (as ``proxy:``)."""

    # enough to rank candidates on the proxy
    epochs: int = bounded(2, 1, 10_000, help="Proxy training epochs per candidate.")
    # fits a laptop CPU and fills a GPU slice (run: None picks it from the data, batch_size_for)
    batch_size: int = bounded(
        128,
        1,
        65_536,
        help="Proxy batch size (default: 32 under 10,000 training images, else 128).",
    )
    lr: float = bounded(0.2, 0, 100, lo_open=True)  # peak SGD lr for batch 128 (scaled)
    momentum: float = bounded(0.9, 0, 1)  # Nesterov momentum
    weight_decay: float = bounded(5e-4, 0, 1)  # the usual ResNet value
    warmup: float = bounded(0.2, 0, 1)  # fraction of steps spent warming the lr up
    label_smoothing: float = bounded(0.1, 0, 0.99)  # steadier ranking, short schedules
    # channel multiplier of the proxy: half width ranks like full width at a quarter the cost
    width: float = bounded(0.5, 0, 16, lo_open=True, help="Proxy channel multiplier.")
    # proxy image size; None: the dataset's own
    resolution: int | None = bounded(
        None, 4, 4096, help="Proxy image size (default: the dataset's own)."
    )
    augment: bool = True  # random translation by up to 1/8 of the image, on the device
    # horizontal flips: set from the dataset (flips_by_default) unless --flip/--no-flip
    flip: bool = setting(
        False,
        help="Horizontal flips in the proxy's augmentation (default: on for cifar10/100 and "
        "folder datasets, off for digits and the generated canvases; --no-flip for a folder "
        "of digits or text).",
    )
    # base seed; each trial adds its trial number (it also splits the data)
    seed: int = bounded(0, 0, MAX_SEED, help="Sampler and training seed (it also splits the data).")
    zero_init_residual: bool = True  # last BN of each block starts at 0: deep nets train fast
    bf16: bool = True  # bf16 autocast on CUDA (CPU is always float32); False: numbers as on CPU
    # sgd (Nesterov, lr and weight_decay as above) | adamw (lr and weight_decay taken as
    # AdamW's: e.g. 0.002 and 0.05); the gates' ~0.5 scale slows SGD, not Adam (MEASURED.md)
    optimizer: str = setting(
        "sgd",
        help="Proxy optimizer: sgd (Nesterov, lr 0.2 per batch 128) or adamw (lr 0.002 per "
        "batch 128, weight decay 0.05; the gates' ~0.5 scale does not slow it, "
        "benchmarks/RESULTS.md §16).",
    )

    def __post_init__(self) -> None:
        check_bounds(self, "proxy")
        if self.optimizer not in OPTIMIZERS:
            raise ConfigError(
                f"proxy.optimizer: {self.optimizer!r} is not one of {', '.join(OPTIMIZERS)}"
            )

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: Any, where: str = "proxy") -> ProxyConfig:
        return config_from_dict(cls, data, where)


def batch_size_for(train_size: int) -> int:
    """The proxy batch size when none is given: 32 under 10,000 training images, else 128.

    The one place for this rule (``run`` and ``evaluate`` apply it after loading the data).
    """
    return 32 if train_size < SMALL_DATASET else 128
