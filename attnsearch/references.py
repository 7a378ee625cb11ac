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

from attnsearch import modules
from attnsearch.architecture import Architecture, SlotChoice
from attnsearch.errors import InputError
from attnsearch.resnet_layout import DEPLOY_CLASSES, DEPLOY_INPUT, get_backbone
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
_OFF = MODES[-1]  # no references

# type -> (title, arXiv id) of its paper, from the registry (``none``: the ResNet paper)
PAPERS: dict[str, tuple[str, str]] = {
    name: (spec.title, spec.arxiv) for name, spec in modules.REGISTRY.items()
}

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
    depths = get_backbone(backbone).depths
    return tuple(c for c, n in zip(choices, depths, strict=True) for _ in range(n))


def reference_networks(
    backbone: str,
    num_classes: int = DEPLOY_CLASSES,
    input: tuple[int, int, int] = DEPLOY_INPUT,
) -> list[tuple[str, str, Architecture]]:
    """``(name, type, architecture)`` of every reference released for ``backbone``; the
    type's paper is ``PAPERS[type]`` (the registry's)."""
    depth = backbone.removeprefix("resnet")
    n = get_backbone(backbone).num_slots

    def uniform(type_name: str, **hp: Any) -> tuple[SlotChoice, ...]:
        return (SlotChoice.make(type_name, **hp),) * n

    nets: list[tuple[str, str, tuple[SlotChoice, ...]]] = [
        (f"ResNet-{depth}", SlotChoice.plain().type, (SlotChoice.plain(),) * n)
    ]
    if get_backbone(backbone).block == "bottleneck":  # the papers' ResNet-50/101 releases
        eca = tuple(SlotChoice.make("eca", k_size=k) for k in _ECA_K[backbone])
        nets += [
            (f"SE-ResNet-{depth}", "se", uniform("se", reduction=16)),
            (f"ECA-Net{depth}", "eca", _per_stage(backbone, eca)),
            (f"CBAM-ResNet-{depth}", "cbam", uniform("cbam", reduction=16, kernel_size=7)),
            (f"SA-Net{depth}", "sa", uniform("sa", groups=64)),
            (f"CA-ResNet-{depth}", "ca", uniform("ca", reduction=32)),
            (f"EPSANet-{depth} (small)", "epsa", uniform("epsa", splits=4, reduction=16)),
        ]
    else:  # RFAConv's ResNet-18/34 releases
        nets += [
            (f"RFA-ResNet-{depth}", "rfaconv", uniform("rfaconv", kernel_size=3)),
            (f"RFCBAM-ResNet-{depth}", "rfcbamconv", uniform("rfcbamconv", kernel_size=3)),
            (f"RFCA-ResNet-{depth}", "rfcaconv", uniform("rfcaconv", kernel_size=3, reduction=32)),
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
    if mode == _OFF:
        return []
    return _plan(space, width, budget, mode, cost_fn)[0]


def references_left_out(
    space, *, width: float, budget: int, mode: str = "fit", cost_fn=None
) -> dict[str, list[tuple[str, int | None]]]:
    """The papers' networks for ``space.backbone`` that :func:`references_for` leaves out,
    by reason: ``"over_budget"`` (``fit`` only; with their cost), ``"proxy_width"`` (in the
    space, but a choice cannot be built at the proxy ``width``), ``"not_in_space"`` (a choice
    the space does not offer). Empty lists where nothing is left out; what a run tells its
    user, so an empty reference table is explained. Mode ``"none"``: nothing is left out
    (none were asked for)."""
    if mode not in MODES:
        raise ReferenceError(f"unknown references mode {mode!r}; valid: {', '.join(MODES)}")
    if mode == _OFF:
        return {"over_budget": [], "proxy_width": [], "not_in_space": []}
    return _plan(space, width, budget, mode, cost_fn)[1]


def _plan(space, width, budget, mode, cost_fn):
    if cost_fn is None:
        from attnsearch.cost import FlopsCost

        cost_fn = FlopsCost(space)
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
