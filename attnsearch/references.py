"""The papers' hand-designed networks, as named architectures (DESIGN.md §5, references).

Each entry is the network as released by its authors' official code, with that code's
hyperparameters: SE-ResNet (r = 16), ECA-Net (hand-picked k per stage: 3,5,5,7 for
ResNet-50, 3,3,5,7 for ResNet-101, as in the ECANet README), CBAM-ResNet (r = 16, 7×7),
SA-Net (G = 64), CA-ResNet (r = 32), EPSANet "small" (S = 4, r = 16) on ResNet-50/101;
RFA/RFCBAM/RFCA-ResNet (3×3; RFCA r = 32) on ResNet-18/34, and the plain ResNets.

:func:`references_for` keeps those a search space can express at a proxy width (every
slot's choice among ``space.options(width)``) and says which fit the budget.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from attnsearch.architecture import Architecture, SlotChoice
from attnsearch.errors import InputError
from attnsearch.settings import REFERENCE_MODES

__all__ = [
    "MODES",
    "PAPERS",
    "Reference",
    "reference_networks",
    "references_for",
    "references_left_out",
]

MODES = REFERENCE_MODES  # fit | all | none, defined with the settings (torch-free, for the CLI)

# name -> (title, arXiv id)
PAPERS: dict[str, tuple[str, str]] = {
    "resnet": ("Deep Residual Learning for Image Recognition", "1512.03385"),
    "se": ("Squeeze-and-Excitation Networks", "1709.01507"),
    "eca": (
        "ECA-Net: Efficient Channel Attention for Deep Convolutional Neural Networks",
        "1910.03151",
    ),
    "cbam": ("CBAM: Convolutional Block Attention Module", "1807.06521"),
    "sa": ("SA-Net: Shuffle Attention for Deep Convolutional Neural Networks", "2102.00240"),
    "ca": ("Coordinate Attention for Efficient Mobile Network Design", "2103.02907"),
    "epsa": (
        "EPSANet: An Efficient Pyramid Squeeze Attention Block on Convolutional Neural Network",
        "2105.14447",
    ),
    "rfa": (
        "RFAConv: Innovating Spatial Attention and Standard Convolutional Operation",
        "2304.03198",
    ),
}

_DEPTHS = {"resnet18": (2, 2, 2, 2), "resnet34": (3, 4, 6, 3), "resnet50": (3, 4, 6, 3),
           "resnet101": (3, 4, 23, 3)}  # fmt: skip
_ECA_K = {"resnet50": (3, 5, 5, 7), "resnet101": (3, 3, 5, 7)}  # ECANet README: k3557, k3357


class ReferenceError(InputError):
    """A bad ``--references`` mode."""


@dataclass(frozen=True)
class Reference:
    """A paper's network, placed in a space.

    Attributes:
        name: e.g. ``SE-ResNet-50``.
        paper: the paper's title.
        arxiv: its arXiv id.
        architecture: the network as an :class:`Architecture` (the space's deploy shape).
        flops: its cost (analytic deploy FLOPs, or the given cost function).
        fits: ``flops <= budget``.
    """

    name: str
    paper: str
    arxiv: str
    architecture: Architecture
    flops: int
    fits: bool

    def to_json(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "paper": self.paper,
            "arxiv": self.arxiv,
            "architecture": self.architecture.to_json(),
            "flops": self.flops,
            "fits": self.fits,
        }


def _per_stage(backbone: str, choices: tuple[SlotChoice, ...]) -> tuple[SlotChoice, ...]:
    return tuple(c for c, n in zip(choices, _DEPTHS[backbone], strict=True) for _ in range(n))


def reference_networks(
    backbone: str, num_classes: int = 1000, input: tuple[int, int, int] = (3, 224, 224)
) -> list[tuple[str, str, Architecture]]:
    """``(name, paper key, architecture)`` of every reference released for ``backbone``."""
    depth = backbone.removeprefix("resnet")
    n = sum(_DEPTHS[backbone])

    def uniform(type_name: str, **hp: Any) -> tuple[SlotChoice, ...]:
        return (SlotChoice.make(type_name, **hp),) * n

    nets: list[tuple[str, str, tuple[SlotChoice, ...]]] = [
        (f"ResNet-{depth}", "resnet", uniform("none"))
    ]
    if backbone in ("resnet50", "resnet101"):
        eca = tuple(SlotChoice.make("eca", k_size=k) for k in _ECA_K[backbone])
        nets += [
            (f"SE-ResNet-{depth}", "se", uniform("se", reduction=16)),
            (f"ECA-Net{depth}", "eca", _per_stage(backbone, eca)),
            (f"CBAM-ResNet-{depth}", "cbam", uniform("cbam", reduction=16, kernel_size=7)),
            (f"SA-Net{depth}", "sa", uniform("sa", groups=64)),
            (f"CA-ResNet-{depth}", "ca", uniform("ca", reduction=32)),
            (f"EPSANet-{depth} (small)", "epsa", uniform("epsa", splits=4, reduction=16)),
        ]
    else:
        nets += [
            (f"RFA-ResNet-{depth}", "rfa", uniform("rfaconv", kernel_size=3)),
            (f"RFCBAM-ResNet-{depth}", "rfa", uniform("rfcbamconv", kernel_size=3)),
            (f"RFCA-ResNet-{depth}", "rfa", uniform("rfcaconv", kernel_size=3, reduction=32)),
        ]
    return [
        (name, key, Architecture(backbone, slots, num_classes, input)) for name, key, slots in nets
    ]


def references_for(
    space, *, width: float, budget: int, mode: str = "fit", cost_fn=None
) -> list[Reference]:
    """The references ``space`` can express at proxy ``width``.

    Args:
        space: a :class:`~attnsearch.spaces.SearchSpace`.
        width: the proxy width (a choice the proxy cannot build is not expressible).
        budget: the cost limit; each reference records whether it ``fits``.
        mode: ``"fit"`` those under the budget, ``"all"`` also over-budget ones (as
            context), ``"none"`` none.
        cost_fn: cost of an architecture; analytic deploy FLOPs when ``None``.

    Raises:
        ReferenceError: unknown mode.
    """
    if mode not in MODES:
        raise ReferenceError(f"unknown references mode {mode!r}; valid: {', '.join(MODES)}")
    if mode == "none":
        return []
    return _plan(space, width, budget, mode, cost_fn)[0]


def references_left_out(
    space, *, width: float, budget: int, mode: str = "fit", cost_fn=None
) -> dict[str, list[tuple[str, int | None]]]:
    """The papers' networks for ``space.backbone`` that :func:`references_for` leaves out,
    by reason: ``"over_budget"`` (``fit`` only; with their cost), ``"proxy_width"`` (in the
    space, but a choice cannot be built at the proxy ``width``), ``"not_in_space"`` (a choice
    the space does not offer). Empty lists where nothing is left out; what a run tells its
    user, so an empty reference table is explained."""
    if mode not in MODES:
        raise ReferenceError(f"unknown references mode {mode!r}; valid: {', '.join(MODES)}")
    return _plan(space, width, budget, mode, cost_fn)[1]


def _plan(space, width, budget, mode, cost_fn):
    if cost_fn is None:
        from attnsearch.flops.analytic import cost_table

        table = cost_table(space.backbone, space.input, space.num_classes)
        cost_fn = lambda a: table.total(a.slots)  # noqa: E731
    options = space.options(width)
    full = space.options(1.0)
    out: list[Reference] = []
    left: dict[str, list[tuple[str, int | None]]] = {
        "over_budget": [],
        "proxy_width": [],
        "not_in_space": [],
    }
    for name, key, arch in reference_networks(space.backbone, space.num_classes, space.input):
        if space.unit_choices(arch, options) is None:
            buildable_wide = space.unit_choices(arch, full) is not None
            left["proxy_width" if buildable_wide else "not_in_space"].append((name, None))
            continue
        flops = int(cost_fn(arch))
        fits = flops <= budget
        if fits or mode == "all":
            title, arxiv = PAPERS[key]
            out.append(Reference(name, title, arxiv, arch, flops, fits))
        else:
            left["over_budget"].append((name, flops))
    return out, left
