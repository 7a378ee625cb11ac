"""The dataset names a run accepts and what each one decides, written once.

A leaf (it imports nothing of the package, and no torch), so that the settings (the
``--dataset`` help, the flip default) and :mod:`attnsearch.datasets` both read it.

:mod:`attnsearch.datasets` builds each name's images (its registry maps these names to
builders, and a test checks that the two hold the same names); everything a run needs to
know about a name without loading it lives here: how it is spelt (with or without an
argument), whether its proxy flips images by default, and what a search's ranking on it
measures where that is little (the ``caveat:`` line of a run).
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = [
    "DATASETS",
    "DatasetName",
    "dataset_spec",
    "dataset_caveat",
    "dataset_forms",
    "dataset_names",
    "flips_by_default",
]


@dataclass(frozen=True)
class DatasetName:
    """One dataset name.

    Attributes:
        name: the spec's head (``clutter`` in ``clutter:48``).
        arg: the placeholder of ``name:ARG`` where an argument is accepted.
        arg_required: the name is only valid with its argument (``folder:PATH``).
        flips: its proxy flips images horizontally unless told otherwise: natural images
            are mirror-symmetric in distribution; digits, text and the generated canvases
            are not (a flipped 2 is no 2).
        caveat: what a search's ranking on it measures, where that is little (one line).
    """

    name: str
    arg: str | None = None
    arg_required: bool = False
    flips: bool = False
    caveat: str | None = None


DATASETS: tuple[DatasetName, ...] = (
    DatasetName(
        "digits",
        caveat=(
            "on digits (8×8, saturated: a 20-epoch reference puts every network at "
            "98.2-99.4 %, benchmarks/RESULTS.md §8) this ranking measures how fast a network "
            "starts learning in a short proxy, not what attention adds"
        ),
    ),
    DatasetName("clutter", arg="SIZE"),
    DatasetName("mnist-clutter", arg="P"),
    DatasetName("synthetic", arg="N"),
    DatasetName("cifar10", flips=True),
    DatasetName("cifar100", flips=True),
    DatasetName("folder", arg="PATH", arg_required=True, flips=True),
)
_BY_NAME = {d.name: d for d in DATASETS}


def dataset_spec(spec: str) -> DatasetName | None:
    """The name entry of a spec (``clutter:48`` → ``clutter``; case-insensitive), or None."""
    return _BY_NAME.get(str(spec).strip().partition(":")[0].lower())


def dataset_names() -> list[str]:
    """The dataset specs a run accepts (``folder:PATH``: ``PATH`` is a placeholder)."""
    return [f"{d.name}:{d.arg}" if d.arg_required else d.name for d in DATASETS]


def dataset_forms(*, compact: bool = False) -> str:
    """Every spelling: ``digits, clutter, clutter:SIZE, …`` (for errors), or with
    ``compact`` ``digits | clutter[:SIZE] | …`` (for help texts)."""
    forms = []
    for d in DATASETS:
        if d.arg is None:
            forms.append(d.name)
        elif d.arg_required:
            forms.append(f"{d.name}:{d.arg}")
        elif compact:
            forms.append(f"{d.name}[:{d.arg}]")
        else:
            forms += [d.name, f"{d.name}:{d.arg}"]
    return (" | " if compact else ", ").join(forms)


def dataset_caveat(spec: str) -> str | None:
    """What a search's ranking on dataset ``spec`` measures, where that is little (one line;
    ``None`` for the others)."""
    entry = dataset_spec(spec)
    return entry.caveat if entry is not None else None


def flips_by_default(dataset: str) -> bool:
    """Whether a dataset's proxy flips images horizontally unless told
    (:attr:`DatasetName.flips`; an unknown name does not)."""
    entry = dataset_spec(dataset)
    return entry.flips if entry is not None else False
