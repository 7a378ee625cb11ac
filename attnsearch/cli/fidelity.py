"""``attnsearch fidelity --space S --dataset D``: how far the proxy's ranking can be trusted."""

from __future__ import annotations

import click

from attnsearch.cli._numbers import Number, budget_option
from attnsearch.cli._proxy_options import given, proxy_options
from attnsearch.settings import MAX_SEED


@click.command("fidelity")
@click.option("--space", default="resnet50", show_default=True, help="Space name or .yaml file.")
@proxy_options()
@click.option(
    "--panel",
    type=Number(3, 100_000, integer=True),
    default=24,
    show_default=True,
    help="Architectures (>= 3).",
)
@click.option(
    "--panel-seed",
    type=Number(0, MAX_SEED, integer=True),
    default=0,
    show_default=True,
    help="Fixes the panel.",
)
@click.option(
    "--uniform",
    default=None,
    metavar="TYPES",
    help="A uniform-only panel of these types instead (comma-separated, e.g. "
    "none,se,cbam,ca,epsa): the staged go/no-go check of a task and proxy (stage A).",
)
@click.option(
    "--budget",
    default=None,
    callback=budget_option,
    help="Leave out architectures above this (e.g. 4G).",
)
@click.option(
    "--proxy-seeds",
    type=Number(1, 1000, integer=True),
    default=3,
    show_default=True,
    help="Seeds per proxy.",
)
@click.option(
    "--reference-factor",
    type=Number(1, 1000, integer=True),
    default=10,
    show_default=True,
    help="The reference trains this many times the proxy's epochs (and optimizer steps).",
)
@click.option(
    "--reference-seeds",
    type=Number(1, 1000, integer=True),
    default=2,
    show_default=True,
    help="Seeds per reference.",
)
@click.option(
    "--workers",
    type=Number(1, 1024, integer=True),
    default=1,
    show_default=True,
    help="Training processes.",
)
@click.option(
    "--device",
    type=click.Choice(["auto", "cpu", "cuda"]),
    default="auto",
    show_default=True,
    help="cuda trains in float32 (no bf16, no TF32) so figures transfer to CPU.",
)
@click.option(
    "--journal",
    default=None,
    help="JSON-lines file of finished runs: runs already in it are not trained again, new "
    "ones are appended as they finish (resume a cut-short panel, add seeds, or split the "
    "work over days or machines; one device kind per journal).",
)
@click.option(
    "--stage",
    type=click.Choice(["all", "proxy", "reference"]),
    default="all",
    show_default=True,
    help="Train only these runs (proxy alone gives the noise figures; the ranking needs both).",
)
@click.option("--json", "as_json", is_flag=True, help="Print the full report as JSON.")
@click.option("-o", "--output", default=None, help="Also write the full JSON report here.")
@click.option("--force", is_flag=True, help="Overwrite an existing -o file.")
def command(
    space,
    panel,
    panel_seed,
    uniform,
    budget,
    proxy_seeds,
    reference_factor,
    reference_seeds,
    workers,
    device,
    journal,
    stage,
    as_json,
    output,
    force,
    **opts,
) -> None:
    """Train a seeded panel of the space under the proxy and a >= 10x longer reference.

    Reports within- and between-architecture sd, Kendall tau and Spearman rho of proxy
    against reference (bootstrap 95 % intervals), tau of params and FLOPs, top-5 overlap,
    seconds per evaluation, and which proxy score ranks best. Run it on your data before
    trusting a long search.
    """
    from pathlib import Path

    from attnsearch.cli._places import check_output_file
    from attnsearch.cli._terminal import term
    from attnsearch.errors import InputError
    from attnsearch.evaluation import ProxySettings
    from attnsearch.fidelity import run_fidelity
    from attnsearch.safeio import jsonable
    from attnsearch.spaces import load_space

    if output:
        check_output_file("-o", output, force=force)  # before hours of training, not after
    if journal:
        check_output_file("--journal", journal)
        if output and Path(output).resolve() == Path(journal).resolve():
            raise InputError(f"-o {output}: the same file as --journal (it would be overwritten)")
    elif stage != "all":
        raise InputError(f"--stage {stage} needs --journal FILE (where the other stage's runs are)")
    sp = load_space(space)
    settings = ProxySettings.defaults(**given(opts))
    sp.check_width(settings.width)
    limit = int(budget.value) if budget is not None else None
    if device == "cuda":
        import torch

        if not torch.cuda.is_available():
            raise InputError("--device cuda: no CUDA device is visible")

    def progress(done: int, total: int, record: dict) -> None:
        if not as_json:
            acc = record.get("accuracy")
            what = f"{acc:.4f} in {record['seconds']:.1f}s" if acc is not None else "failed"
            term.note(
                f"[{done}/{total}] member {record['member']} {record['schedule']} "
                f"seed {record['seed']}: {what}"
            )

    report = run_fidelity(
        sp,
        settings,
        panel=panel,
        panel_seed=panel_seed,
        proxy_seeds=proxy_seeds,
        reference_factor=reference_factor,
        reference_seeds=reference_seeds,
        budget=limit,
        workers=workers,
        device=None if device == "auto" else device,
        progress=progress,
        journal=journal,
        stages=("proxy", "reference") if stage == "all" else (stage,),
        uniform=_types(uniform),
    )
    data = jsonable(report)
    if output:
        from attnsearch.safeio import json_dumps, write_atomic

        write_atomic(output, json_dumps(data, indent=1) + "\n")
    if as_json:
        term.json(data)
        return
    _print(term, report)
    if output:
        term.line(f"report: {output}")


def _types(text: str | None) -> list[str] | None:
    if text is None:
        return None
    return [t.strip().lower() for t in text.split(",") if t.strip()]


def _stage_a_lines(term, a: dict | None) -> None:
    """The go/no-go of stage A, one line per check and the outcome."""
    if a is None:
        return
    c = a["checks"]
    vs = c["reference_separates_attention"]["value"]
    agree = c["proxy_agrees_on_separated_pairs"]["value"]

    def mark(check: dict) -> str:
        if check["pass"] is None and check.get("so_far") is not None:
            return f"not decided ({'pass' if check['so_far'] else 'fail'} so far)"
        return {True: "pass", False: "FAIL", None: "not measured"}[check["pass"]]

    rows = [
        [
            "proxy between / within ≥ 2",
            _fmt(c["proxy_between_over_within"]["value"], 2),
            mark(c["proxy_between_over_within"]),
        ],
        [
            "reference best < 97 %",
            _fmt(c["reference_not_saturated"]["value"], 4),
            mark(c["reference_not_saturated"]),
        ],
        [
            "reference separates attention from plain",
            "n/a" if vs is None else (", ".join(vs) or "none"),
            mark(c["reference_separates_attention"]),
        ],
        [
            "proxy orders the separated pairs alike",
            "n/a"
            if agree is None
            else f"{len(agree['separated_pairs']) - len(agree['disagreeing'])}"
            f"/{len(agree['separated_pairs'])}",
            mark(c["proxy_agrees_on_separated_pairs"]),
        ],
    ]
    outcome = {True: "PASS", False: "FAIL", None: "not decided"}[a["pass"]]
    runs = a["runs"]
    term.table(
        f"stage A: {outcome} ({runs['proxy']} proxy and {runs['reference']} reference runs)",
        ["check", "value", ""],
        rows,
    )
    if a.get("missing"):
        term.note(a["missing"])
    if a.get("short_reference"):
        term.note(a["short_reference"])


def _fmt(v, digits: int = 3) -> str:
    if v is None or v != v:
        return "n/a"
    return f"{v:.{digits}f}"


def _print(term, report: dict) -> None:
    st, s = report["settings"], report["summary"]
    rows = [
        [
            m["name"],
            m["summary"][:40],
            f"{m['flops'] / 1e9:.2f}G",
            f"{_fmt(m['proxy_mean'])} ± {_fmt(m['proxy_sd'])}",
            f"{_fmt(m['reference_mean'])} ± {_fmt(m['reference_sd'])}",
        ]
        for m in report["panel"]
    ]
    term.table(
        f"panel: {st['space']} on {st['dataset']}, proxy {st['epochs']} epochs "
        f"({st['proxy_steps']} steps) x{st['proxy_seeds']} seeds, reference "
        f"{st['reference_epochs']} epochs x{st['reference_seeds']}",
        ["member", "architecture", "FLOPs", "proxy", "reference"],
        rows,
    )
    if "error" in s:
        term.error(s["error"])
        return
    if "ranking_missing" in s:
        term.table(
            "proxy noise",
            ["", "value"],
            [
                ["within-architecture sd", _fmt(s["within_sd"], 4)],
                ["between-architecture sd", _fmt(s["between_sd"], 4)],
                ["between / within", _fmt(s["between_over_within"], 2)],
                ["s per proxy eval", f"{s['seconds_per_proxy_eval']:.1f}"],
            ],
        )
        _stage_a_lines(term, s.get("stage_a"))
        term.note(s["ranking_missing"])
        return
    ci = s["kendall_tau_ci95"]
    rci = s["spearman_rho_ci95"]
    lines = [
        ["within-architecture sd", _fmt(s["within_sd"], 4)],
        ["between-architecture sd", _fmt(s["between_sd"], 4)],
        ["between / within", _fmt(s["between_over_within"], 2)],
        [
            "Kendall τ (proxy vs reference)",
            f"{_fmt(s['kendall_tau'])} [{_fmt(ci[0])}, {_fmt(ci[1])}]",
        ],
        ["Spearman ρ", f"{_fmt(s['spearman_rho'])} [{_fmt(rci[0])}, {_fmt(rci[1])}]"],
        [
            "reference sd within / between",
            f"{_fmt(s['reference_within_sd'], 4)} / {_fmt(s['reference_between_sd'], 4)}",
        ],
        [
            "τ seed vs seed: reference / proxy",
            f"{_fmt(s['reference_seed_tau'])} / {_fmt(s['proxy_seed_tau'])}",
        ],
        [
            "τ of params / FLOPs",
            f"{_fmt(s['kendall_tau_params'])} / {_fmt(s['kendall_tau_flops'])}",
        ],
        ["top-5 overlap", str(s["top5_overlap"])],
        [
            "s per proxy / reference eval",
            f"{s['seconds_per_proxy_eval']:.1f} / {s['seconds_per_reference_eval']:.1f}",
        ],
    ]
    for name, sc in s["scores"].items():
        lines.append([f"τ of score {name}", f"{_fmt(sc['kendall_tau'])}"])
    lines.append(["best score", s["best_score"]])
    for kind, k in s["by_kind"].items():
        kci = k["kendall_tau_ci95"]
        lines.append(
            [
                f"{kind} members only ({k['architectures']})",
                f"between/within {_fmt(k['between_over_within'], 2)}, τ {_fmt(k['kendall_tau'])} "
                f"[{_fmt(kci[0])}, {_fmt(kci[1])}], reference seed τ "
                f"{_fmt(k['reference_seed_tau'])}",
            ]
        )
    term.table("proxy fidelity", ["", "value"], lines)
    _stage_a_lines(term, s.get("stage_a"))
    self_tau = s["reference_seed_tau"]
    if self_tau is not None and not self_tau >= 0.5:  # NaN too: every seed pair tied
        term.note(
            f"the reference agrees with itself only at τ = {_fmt(self_tau)} (seed against "
            "seed): it barely ranks these architectures, so a proxy τ against it says little; "
            "a longer reference, more reference seeds or harder data are needed"
        )
