"""``attnsearch evaluate ARCH.json``: train one architecture for K seeds, as a trial would."""

from __future__ import annotations

import click

from attnsearch.cli._numbers import Number
from attnsearch.cli._proxy_options import given, proxy_options
from attnsearch.rundir import RESULTS_DIR
from attnsearch.settings import MAX_SEED


@click.command("evaluate")
@click.argument("arch_file", metavar="ARCH.json", type=click.Path(dir_okay=False))
@click.option("--run", "run_name", default=None, help="Use the proxy settings of this search.")
@click.option(
    "--results-dir", default=RESULTS_DIR, show_default=True, help="Parent folder of run folders."
)
@proxy_options()
@click.option(
    "--seeds",
    type=Number(1, 10_000, integer=True),
    default=3,
    show_default=True,
    help="Number of seeds K.",
)
@click.option(
    "--first-seed",
    type=Number(0, MAX_SEED, integer=True),
    default=0,
    show_default=True,
    help="Trial seeds are FIRST..FIRST+K-1 (a trial's seed is its trial number).",
)
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object.")
def command(arch_file: str, run_name, results_dir, seeds, first_seed, as_json, **opts) -> None:
    """Train ARCH.json with a run's (or run's default) proxy settings for K seeds.

    The same code path as a search trial: with --run NAME and --first-seed N --seeds 1
    it reproduces trial N's accuracy. Prints per-seed accuracies, mean and a 95 % interval.
    A seed whose training fails (a non-finite loss, ...) ends it with one error line and
    exit 1 (with --json, an object with "error" and the seeds done before it).
    """
    import dataclasses

    from attnsearch.architecture import Architecture
    from attnsearch.cli._terminal import term
    from attnsearch.errors import InputError
    from attnsearch.evaluation import evaluate_architecture, settings_from_options
    from attnsearch.training import TrainingError

    arch = Architecture.from_file(arch_file)
    overrides = given(opts)
    if run_name is not None:
        if overrides:
            flags = ", ".join("--" + k.replace("_", "-") for k in overrides)
            raise InputError(f"--run takes the proxy settings from the run; drop {flags}")
        from attnsearch.rundir import RunDir

        settings = RunDir.open(results_dir, run_name).settings
        dataset = settings.load_dataset()
    else:
        settings, dataset = settings_from_options(**overrides)
    proxy = settings.proxy
    seed_list = list(range(first_seed, first_seed + seeds))
    if not as_json:
        term.note(
            f"evaluating {arch.summary()} on {dataset.name} {tuple(dataset.input_shape)} "
            f"x{len(dataset.train_x)}: {proxy.epochs} epochs, batch {proxy.batch_size}, width "
            f"{proxy.width}, {settings.cpus_per_trial:g} thread(s), "
            f"seeds {seed_list[0]}..{seed_list[-1]}"
        )

    done: list[tuple[int, float]] = []

    def progress(seed: int, r) -> None:
        done.append((seed, r.accuracy))
        if not as_json:
            term.note(f"seed {seed}: accuracy {r.accuracy:.4f} ({r.train_seconds:.1f}s)")

    try:
        result = evaluate_architecture(arch, settings, dataset, seed_list, report=progress)
    except TrainingError as e:  # the candidate failed by itself: exit 1, one line, no traceback
        if as_json:
            term.json(
                {
                    "error": f"training failed: {e}",
                    "seeds": [s for s, _ in done],
                    "accuracies": [a for _, a in done],
                    "architecture": arch.to_json(),
                    "run": run_name,
                }
            )
        term.error(f"training failed: {e}")
        raise SystemExit(1) from None
    if as_json:
        data = result.to_json()
        data["architecture"] = arch.to_json()
        data["proxy"] = {
            **dataclasses.asdict(proxy),
            "dataset": settings.dataset,
            "data_dir": settings.data_dir,
            "limit": settings.limit,
            "threads": settings.cpus_per_trial,
        }
        data["run"] = run_name
        term.json(data)
        return
    rows = [
        [s, f"{a:.4f}", f"{t:.1f}s"]
        for s, a, t in zip(result.seeds, result.accuracies, result.seconds, strict=True)
    ]
    ci = result.interval
    rows.append(["mean", f"{result.accuracy:.4f}", f"{sum(result.seconds):.1f}s"])
    rows.append(["sd", f"{result.accuracy_std:.4f}", ""])
    rows.append(["95 % interval", f"{ci[0]:.4f} – {ci[1]:.4f}" if ci else "(one seed)", ""])
    term.table(arch_file, ["seed", "accuracy", "time"], rows)
