"""``attnsearch latency-table --space S``: measure a per-slot latency table on this machine."""

from __future__ import annotations

import click

from attnsearch.cli.profile import _parse_input


@click.command("latency-table")
@click.option("--space", required=True, help="Space name (see `attnsearch spaces`) or YAML path.")
@click.option(
    "--device",
    type=click.Choice(["auto", "cpu", "cuda"]),
    default="auto",
    show_default=True,
    help="Device to measure on (auto: CUDA when torch sees a GPU, else the CPU, as a run "
    "prices its latency budget; cuda: channels_last, synchronised timing).",
)
@click.option("--batch", type=click.IntRange(min=1), default=1, show_default=True)
@click.option(
    "--dtype", type=click.Choice(["float32", "bfloat16"]), default="float32", show_default=True
)
@click.option(
    "--threads", type=int, default=None, help="Torch CPU threads (default: torch's own choice)."
)
@click.option(
    "--input",
    "input_shape",
    callback=_parse_input,
    metavar="C,H,W",
    help="Input shape (default: the space's deploy shape).",
)
@click.option(
    "--validate",
    "n_validate",
    type=click.IntRange(min=0),
    default=20,
    show_default=True,
    help="Random networks timed end to end against the prediction (0: skip).",
)
@click.option(
    "--calibrate",
    type=click.IntRange(min=0),
    default=4,
    show_default=True,
    help="Random networks (plus the plain backbone) that fit the table's scale (0: none).",
)
@click.option("--repeats", type=click.IntRange(min=1), default=7, show_default=True)
@click.option(
    "--estimator",
    type=click.Choice(["median", "min"]),
    default="median",
    show_default=True,
    help="Of the repeated samples (min: a shared machine, where contention only adds time).",
)
@click.option(
    "-o",
    "--output",
    type=click.Path(dir_okay=False),
    default=None,
    help="Table file (default: latency-SPACE-DEVICE-DTYPE-bBATCH.json here).",
)
@click.option("--force", is_flag=True, help="Overwrite an existing output file.")
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object.")
def command(
    space: str,
    device: str,
    batch: int,
    dtype: str,
    threads: int | None,
    input_shape,
    n_validate: int,
    calibrate: int,
    repeats: int,
    estimator: str,
    output: str | None,
    force: bool,
    as_json: bool,
) -> None:
    """Measure every choice of a space in every slot (plus stem and head) on this device.

    The table predicts an architecture's latency as stem + Σ slots + head, scaled by a
    factor fitted on a few calibration networks; --validate N reports the error on N
    other random networks. Use it with `run --budget 25ms --latency-table FILE`.
    """
    import os
    import time
    from pathlib import Path

    from attnsearch.cli._places import check_output_file
    from attnsearch.cli._terminal import term
    from attnsearch.errors import InputError
    from attnsearch.settings import default_device
    from attnsearch.spaces import load_space

    sp = load_space(space)
    device = default_device() if device == "auto" else device
    cpus = os.cpu_count() or 1
    if threads is not None and not 1 <= threads <= cpus:
        raise InputError(
            f"--threads must be between 1 and this machine's {cpus} CPUs, got {threads}"
        )
    path = Path(output or f"latency-{sp.name}-{device}-{dtype}-b{batch}.json")
    check_output_file("-o", path, force=force)

    import torch

    from attnsearch.latency import Settings, build_table, validate

    if device == "cuda" and not torch.cuda.is_available():
        raise InputError("--device cuda: no CUDA device is visible to torch")
    settings = Settings(
        device=device,
        dtype=dtype,
        batch=batch,
        input=tuple(input_shape) if input_shape else sp.input,
        threads=threads,
        repeats=repeats,
        estimator=estimator,
    )
    started = time.perf_counter()
    with _progress(term, not as_json) as progress:
        table = build_table(sp, settings, calibrate=calibrate, progress=progress("measuring"))
        built = time.perf_counter() - started
        result = None
        if n_validate:
            result = validate(table, sp, n_validate, progress=progress("validating")).summary()
    if result is not None:
        table.meta["validation"] = result
    table.save(path)
    c, h, w = settings.input
    info = {
        "output": str(path),
        "space": sp.name,
        "backbone": sp.backbone,
        "device": device,
        "device_name": table.meta["device_name"],
        "dtype": dtype,
        "batch": batch,
        "input": list(settings.input),
        "threads": threads if threads is not None else torch.get_num_threads(),
        "measurements": table.meta["measurements"],
        "build_seconds": round(built, 1),
        "scale": table.scale,
        "plain_ms": table.predict(_plain(sp)),
        "validation": result,
    }
    if as_json:
        term.json(info)
        return
    term.line(
        f"{sp.name}: {info['measurements']} measurements on {device} ({info['device_name']}), "
        f"{dtype}, batch {batch}, input {c}×{h}×{w}, {info['threads']} threads, "
        f"in {built:.1f} s; scale {table.scale:.3f}"
    )
    term.line(f"plain {sp.backbone}: {info['plain_ms']:.3g} ms predicted")
    if result is not None:
        pct = "{:.1%}".format
        term.table(
            f"validation: predicted vs measured on {result['networks']} random networks "
            f"(seed {result['seed']})",
            ["", "median |error|", "worst |error|"],
            [
                [
                    "raw sum of parts",
                    pct(result["raw_median_error"]),
                    pct(result["raw_worst_error"]),
                ],
                [
                    f"calibrated (×{table.scale:.3f})",
                    pct(result["median_error"]),
                    pct(result["worst_error"]),
                ],
            ],
        )
    term.line(f"wrote {path}")


def _plain(sp):
    from attnsearch.architecture import Architecture

    slots = Architecture.uniform(sp.backbone).slots
    return Architecture(sp.backbone, slots, sp.num_classes, sp.input)


class _progress:
    """A rich progress bar on a terminal, plain lines otherwise; nothing with --json."""

    def __init__(self, term, show: bool):
        self.term = term
        self.show = show
        self.bar = None

    def __enter__(self):
        if self.show and self.term.err.is_terminal:
            from rich.progress import BarColumn, MofNCompleteColumn, Progress, TimeElapsedColumn

            self.bar = Progress(
                "[progress.description]{task.description}",
                BarColumn(),
                MofNCompleteColumn(),
                TimeElapsedColumn(),
                console=self.term.err,
                transient=True,
            )
            self.bar.__enter__()
        return self

    def __exit__(self, *exc) -> None:
        if self.bar is not None:
            self.bar.__exit__(*exc)

    def __call__(self, phase: str):
        if not self.show:
            return None
        if self.bar is not None:
            task = self.bar.add_task(phase, total=None)

            def update(done: int, total: int, label: str) -> None:
                self.bar.update(task, completed=done, total=total, description=f"{phase}: {label}")

            return update
        step = {"next": 0}

        def plain(done: int, total: int, label: str) -> None:
            # about ten lines per phase
            if done >= step["next"] or done == total:
                self.term.note(f"{phase}: {done}/{total} ({label})")
                step["next"] = done + max(1, total // 10)

        return plain
