"""attnsearch.fidelity and ``attnsearch fidelity``: every reported field, on a micro-panel."""

from __future__ import annotations

import json
import math

import pytest

from attnsearch.cli import main
from attnsearch.evaluation import ProxySettings
from attnsearch.fidelity import SCORES, build_panel, run_fidelity
from attnsearch.spaces import load_space

MICRO = ["--space", "tiny", "--dataset", "digits", "--limit", "60", "--epochs", "1",
         "--panel", "3", "--proxy-seeds", "2", "--reference-factor", "2",
         "--reference-seeds", "1"]  # fmt: skip
SUMMARY_KEYS = {
    "within_sd", "between_sd", "between_sd_corrected", "between_over_within",
    "reference_within_sd", "reference_between_sd", "kendall_tau", "kendall_tau_ci95",
    "spearman_rho", "spearman_rho_ci95", "top5_overlap", "kendall_tau_params",
    "kendall_tau_flops", "seconds_per_proxy_eval", "seconds_per_reference_eval", "scores",
    "best_score", "architectures", "failed_runs",
}  # fmt: skip


def _main(capsys, *args: str) -> tuple[int, str, str]:
    with pytest.raises(SystemExit) as info:
        main(list(args))
    out, err = capsys.readouterr()
    return (info.value.code or 0), out, err


def test_panel_is_seeded_and_spread():
    space = load_space("resnet50")
    panel = build_panel(space, 0.5, 24, seed=0)
    assert len(panel) == 24 and len({m.arch.digest() for m in panel}) == 24
    uniform = [m.name for m in panel if m.kind == "uniform"]
    assert uniform[0] == "uniform-none" and "uniform-se" in uniform and len(uniform) >= 8
    se = next(m for m in panel if m.name == "uniform-se")
    assert se.arch.slots[0].params == {"reduction": 16}  # the module's default
    rand = sorted(m.flops for m in panel if m.kind == "random")
    uni = sorted(m.flops for m in panel if m.kind == "uniform")
    assert rand[-1] - rand[0] > 0.6 * (uni[-1] - uni[0])  # spread, not a sliver
    gaps = [b - a for a, b in zip(rand, rand[1:], strict=False)]
    assert max(gaps) < 3 * (rand[-1] - rand[0]) / len(gaps)  # evenly
    plain = next(m.flops for m in panel if m.name == "uniform-none")
    again = build_panel(space, 0.5, 24, seed=0)
    assert [m.arch for m in again] == [m.arch for m in panel]
    assert [m.arch for m in build_panel(space, 0.5, 24, seed=1)] != [m.arch for m in panel]
    capped = build_panel(space, 0.5, 12, seed=0, budget=plain + 10**8)
    assert all(m.flops <= plain + 10**8 for m in capped)


def test_micro_panel_reports_every_field(capsys, tmp_path):
    out_file = tmp_path / "f.json"
    code, out, err = _main(capsys, "fidelity", *MICRO, "--json", "-o", str(out_file))
    assert code == 0, err
    data = json.loads(out)
    assert json.loads(out_file.read_text()) == data
    s = data["summary"]
    assert set(s) >= SUMMARY_KEYS, SUMMARY_KEYS - set(s)
    assert s["architectures"] == 3 and s["failed_runs"] == 0
    assert set(s["scores"]) == set(SCORES) and s["best_score"] in SCORES
    for sc in s["scores"].values():
        assert {"kendall_tau", "kendall_tau_ci95", "spearman_rho", "top5_overlap"} <= set(sc)
    assert s["within_sd"] >= 0 and s["seconds_per_proxy_eval"] > 0
    st = data["settings"]
    assert st["reference_steps"] == 2 * st["proxy_steps"] and st["reference_epochs"] == 2
    for m in data["panel"]:
        assert len(m["proxy"]) == 2 and len(m["reference"]) == 1
        assert all(len(r["history"]) == 1 for r in m["proxy"])
        assert all(len(r["history"]) == 2 == len(r["train_losses"]) for r in m["reference"])
        assert m["proxy_mean"] == pytest.approx(sum(r["accuracy"] for r in m["proxy"]) / 2)
        assert m["params"] > 0 and m["flops"] > 0
    means = [m["proxy_mean"] for m in data["panel"]]
    assert s["between_sd"] == pytest.approx(
        math.sqrt(sum((x - sum(means) / 3) ** 2 for x in means) / 2)
    )


def test_workers_give_the_same_numbers():
    space = load_space("tiny")
    settings = ProxySettings.defaults(dataset="digits", limit=40, epochs=1)
    kw = dict(panel=3, proxy_seeds=2, reference_factor=1, reference_seeds=1, device="cpu")
    one = run_fidelity(space, settings, workers=1, **kw)
    two = run_fidelity(space, settings, workers=2, **kw)
    acc = [[r["accuracy"] for r in m["proxy"]] for m in one["panel"]]
    assert acc == [[r["accuracy"] for r in m["proxy"]] for m in two["panel"]]


@pytest.mark.parametrize(
    "extra",
    [["--panel", "2"], ["--proxy-seeds", "1"], ["--reference-factor", "0"],
     ["--space", "nope"], ["--budget", "lots"], ["--workers", "0"]],
)  # fmt: skip
def test_bad_input_exits_2(capsys, extra):
    code, out, err = _main(capsys, "fidelity", *MICRO, *extra)
    assert code == 2, (out, err)
    assert "Traceback" not in err and err.strip().count("\n") == 0
