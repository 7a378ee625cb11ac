"""``attnsearch export``: write a chosen architecture as one standalone PyTorch file."""

from __future__ import annotations

import click

from attnsearch.budget import Budget
from attnsearch.cli._numbers import Number, budget_option
from attnsearch.rundir import RESULTS_DIR
from attnsearch.settings import MAX_SEED


@click.command("export")
@click.argument("name", required=False)
@click.option(
    "--trial",
    type=Number(0, MAX_SEED, integer=True),
    metavar="N",
    help="Export this trial (Optuna trial number).",
)
@click.option("--best", is_flag=True, help="Export the most accurate Pareto-front member.")
@click.option(
    "--max-flops",
    metavar="FLOPS",
    callback=budget_option,
    help="With --best: only front members with at most this many FLOPs (e.g. 2GFLOPs).",
)
@click.option(
    "--arch",
    "arch_file",
    metavar="ARCH.json",
    type=click.Path(dir_okay=False),
    help="Export this architecture file instead of a search's trial.",
)
@click.option(
    "-o",
    "--output",
    default="model.py",
    show_default=True,
    type=click.Path(dir_okay=False),
    help="The Python file to write.",
)
@click.option(
    "--proxy",
    is_flag=True,
    help="The network as trained in the trial (proxy stem, the run's width, its classes).",
)
@click.option(
    "--weights", is_flag=True, help="With --proxy: also write the weights beside it (<stem>.pt)."
)
@click.option("--force", is_flag=True, help="Overwrite existing output files.")
@click.option(
    "--results-dir",
    default=RESULTS_DIR,
    show_default=True,
    type=click.Path(file_okay=False),
    help="Parent folder of the search folders.",
)
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object.")
def command(
    name: str | None,
    trial: int | None,
    best: bool,
    max_flops: Budget | None,
    arch_file: str | None,
    output: str,
    proxy: bool,
    weights: bool,
    force: bool,
    results_dir: str,
    as_json: bool,
) -> None:
    """Write search NAME's chosen trial (or --arch ARCH.json) as a torch-only model.py.

    \b
    attnsearch export NAME --best [--max-flops 2GFLOPs] -o model.py
    attnsearch export NAME --trial 12 --proxy --weights -o out/model.py
    attnsearch export --arch arch.json -o model.py
    """
    from attnsearch.cli._terminal import term
    from attnsearch.export import ExportError

    if arch_file is not None:
        if name is not None:
            raise ExportError("give either a search NAME or --arch ARCH.json, not both")
        for flag, given in (
            ("--trial", trial is not None),
            ("--best", best),
            ("--max-flops", max_flops is not None),
            ("--proxy", proxy),
            ("--weights", weights),
        ):
            if given:
                raise ExportError(f"{flag} needs a search NAME (not --arch)")
    elif name is None:
        raise ExportError("give a search NAME (with --trial N or --best) or --arch ARCH.json")
    if weights and not proxy:
        raise ExportError("--weights needs --proxy (the weights are the proxy network's)")
    if name is not None and (trial is None) == (not best):
        raise ExportError("give exactly one of --trial N or --best")
    if max_flops is not None and not best:
        raise ExportError("--max-flops goes with --best")
    from attnsearch.cli._places import check_output_file

    check_output_file("-o", output)

    from attnsearch.architecture import Architecture
    from attnsearch.budget import format_flops
    from attnsearch.export import export_arch, export_run

    if arch_file is not None:
        arch = Architecture.from_file(arch_file)
        summary = export_arch(arch, output, force=force)
    else:
        limit = int(max_flops.value) if max_flops is not None else None
        summary = export_run(
            results_dir,
            name,
            output,
            trial=trial,
            best=best,
            max_flops=limit,
            proxy=proxy,
            weights=weights,
            force=force,
        )
    if as_json:
        term.json(summary)
        return
    arch = Architecture.from_json(summary["architecture"])
    where = f"trial {summary['trial']} of {summary['search']}" if "trial" in summary else "arch"
    acc = summary.get("accuracy")
    rows = [
        ["from", where if arch_file is None else str(arch_file)],
        ["architecture", f"{arch.backbone}: {arch.summary()}"],
        ["flops (deploy)", f"{summary['flops']:,}  ({format_flops(summary['flops'])})"],
        ["params (deploy)", f"{summary['params']:,}"],
    ]
    if acc is not None:
        rows.append(["accuracy (proxy)", f"{acc:.4f}"])
    if proxy:
        rows.append(
            [
                "network",
                f"proxy, width {summary['width']:g}, {summary['num_classes']} classes, "
                f"{summary['in_channels']} channel(s), {summary['proxy_params']:,} params",
            ]
        )
    rows.append(["code", summary["output"]])
    if summary.get("weights"):
        rows.append(["weights", summary["weights"]])
    term.table("export", ["", "value"], rows)
