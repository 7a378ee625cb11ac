"""attnsearch.fidelity and ``attnsearch fidelity``: every reported field, on a micro-panel."""

from __future__ import annotations

import json
import math

import pytest

from attnsearch.cli import main
from attnsearch.evaluation import ProxySettings
from attnsearch.fidelity import (
    SCORES,
    FidelityError,
    build_panel,
    run_fidelity,
    stage_a,
    summarize,
)
from attnsearch.safeio import jsonable
from attnsearch.spaces import load_space

MICRO = ["--space", "tiny", "--dataset", "digits", "--limit", "60", "--epochs", "1",
         "--panel", "3", "--proxy-seeds", "2", "--reference-factor", "2",
         "--reference-seeds", "1"]  # fmt: skip
SUMMARY_KEYS = {
    "within_sd", "between_sd", "between_sd_corrected", "between_over_within",
    "reference_within_sd", "reference_between_sd", "kendall_tau", "kendall_tau_ci95",
    "spearman_rho", "spearman_rho_ci95", "top5_overlap", "kendall_tau_params",
    "kendall_tau_flops", "seconds_per_proxy_eval", "seconds_per_reference_eval", "scores",
    "best_score", "architectures", "failed_runs", "reference_seed_tau", "proxy_seed_tau",
    "by_kind",
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


def _run(seed: int, acc: float) -> dict:
    return {"seed": seed, "accuracy": acc, "history": [acc], "train_losses": [1 - acc],
            "val_losses": [1 - acc], "seconds": 1.0}  # fmt: skip


def _report(proxy: list[list[float]], reference: list[list[float]], kinds: list[str]) -> dict:
    return {
        "panel": [
            {
                "name": f"m{i}",
                "kind": kind,
                "flops": 10 + i,
                "params": 5 + i,
                "proxy": [_run(s, a) for s, a in enumerate(p)],
                "reference": [_run(100 + s, a) for s, a in enumerate(r)],
            }  # fmt: skip
            for i, (p, r, kind) in enumerate(zip(proxy, reference, kinds, strict=True))
        ]
    }


def test_summary_says_how_well_the_reference_agrees_with_itself():
    """Seed-vs-seed τ of the reference bounds what a proxy τ can show: a reference whose two
    seeds order the panel oppositely gets τ -1, one whose seeds agree gets 1."""
    kinds = ["uniform"] * 3 + ["random"] * 3
    proxy = [[0.1 * i, 0.1 * i + 0.01] for i in range(6)]
    agree = summarize(_report(proxy, [[0.5 + 0.05 * i, 0.5 + 0.05 * i] for i in range(6)], kinds))
    assert agree["reference_seed_tau"] == pytest.approx(1.0)
    assert agree["proxy_seed_tau"] == pytest.approx(1.0)
    assert agree["kendall_tau"] == pytest.approx(1.0)
    flipped = summarize(_report(proxy, [[0.5 + 0.05 * i, 0.8 - 0.05 * i] for i in range(6)], kinds))
    assert flipped["reference_seed_tau"] == pytest.approx(-1.0)
    one_seed = summarize(_report(proxy, [[0.5 + 0.05 * i] for i in range(6)], kinds))
    assert one_seed["reference_seed_tau"] is None
    assert one_seed["reference_within_sd"] is None  # one run per member: noise not measured
    # one failed reference run leaves the pair on the other 5 members, not nothing
    report = _report(proxy, [[0.5 + 0.05 * i, 0.8 - 0.05 * i] for i in range(6)], kinds)
    report["panel"][0]["reference"][1] = {"seed": 101, "failed": "loss became nan"}
    assert summarize(report)["reference_seed_tau"] == pytest.approx(-1.0)
    tied = summarize(_report(proxy, [[0.99, 0.99]] * 6, kinds))
    assert math.isnan(tied["reference_seed_tau"])  # a saturated reference ranks nothing


def test_summary_splits_the_figures_by_kind_of_member():
    """Uniform members that the proxy cannot train can carry the whole spread; the random
    (search-like) members get their own noise and τ."""
    kinds = ["uniform"] * 3 + ["random"] * 4
    # uniform: far apart and ranked right; random: close together and ranked backwards
    proxy = [[0.1, 0.12], [0.5, 0.52], [0.9, 0.92],
             [0.60, 0.64], [0.61, 0.65], [0.62, 0.66], [0.63, 0.67]]  # fmt: skip
    ref = [[0.2, 0.2], [0.5, 0.5], [0.95, 0.95],
           [0.90, 0.91], [0.89, 0.90], [0.88, 0.89], [0.87, 0.88]]  # fmt: skip
    s = summarize(_report(proxy, ref, kinds))
    assert set(s["by_kind"]) == {"uniform", "random"}
    u, r = s["by_kind"]["uniform"], s["by_kind"]["random"]
    assert (u["architectures"], r["architectures"]) == (3, 4)
    assert u["kendall_tau"] == pytest.approx(1.0) and r["kendall_tau"] == pytest.approx(-1.0)
    within = math.sqrt(0.02**2 / 2)  # two seeds 0.02 apart (uniform), 0.04 (random)
    assert r["within_sd"] == pytest.approx(math.sqrt(0.04**2 / 2))
    assert u["within_sd"] == pytest.approx(within)
    assert r["between_over_within"] < 1 < u["between_over_within"]
    assert r["reference_seed_tau"] == pytest.approx(1.0)
    assert s["between_over_within"] > r["between_over_within"]  # the uniform ones carry it


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


# ---- the journal: a panel is hours of training, so no finished run is trained twice ------
JOURNAL_KW = dict(panel=3, proxy_seeds=2, reference_factor=1, reference_seeds=1, device="cpu")


def _counting(monkeypatch):
    import attnsearch.fidelity._run as fid

    calls = []
    real = fid._run_job

    def run_job(job):
        calls.append((job["member"], job["schedule"], job["seed"]))
        return real(job)

    monkeypatch.setattr(fid, "_run_job", run_job)
    return calls


def _accuracies(report):
    return [
        [(r["schedule"], r["seed"], r["accuracy"]) for r in m["proxy"] + m["reference"]]
        for m in report["panel"]
    ]


def test_journal_resumes_without_training_again(tmp_path, monkeypatch):
    space = load_space("tiny")
    settings = ProxySettings.defaults(dataset="digits", limit=40, epochs=1)
    journal = tmp_path / "panel.jsonl"
    calls = _counting(monkeypatch)
    first = run_fidelity(space, settings, workers=1, journal=journal, **JOURNAL_KW)
    assert len(calls) == 9 and len(journal.read_text().splitlines()) == 1 + 9
    calls.clear()
    again = run_fidelity(space, settings, workers=1, journal=journal, **JOURNAL_KW)
    assert calls == [] and again["settings"]["runs_from_journal"] == 9
    assert _accuracies(again) == _accuracies(first)
    same = [json.dumps(jsonable(r["summary"]), sort_keys=True) for r in (first, again)]
    assert same[0] == same[1]  # every figure (NaN as null: NaN != NaN)

    # a crash: the last two runs never written, a third cut short mid-line
    lines = journal.read_text().splitlines(keepends=True)
    journal.write_text("".join(lines[:-3]) + lines[-3][: len(lines[-3]) // 2])
    lost = {(r["member"], r["schedule"], r["seed"]) for r in map(json.loads, lines[-3:])}
    third = run_fidelity(space, settings, workers=1, journal=journal, **JOURNAL_KW)
    assert set(calls) == lost and len(calls) == 3  # exactly the missing runs
    assert _accuracies(third) == _accuracies(first)  # seeded: the same numbers
    rows = [json.loads(x) for x in journal.read_text().splitlines()]
    assert len(rows) == 1 + 9  # the cut line was dropped, not kept beside its re-run


def test_proxy_stage_alone_gives_the_noise_then_the_reference_completes_it(tmp_path, monkeypatch):
    space = load_space("tiny")
    settings = ProxySettings.defaults(dataset="digits", limit=40, epochs=1)
    journal = tmp_path / "panel.jsonl"
    calls = _counting(monkeypatch)
    proxy = run_fidelity(
        space, settings, workers=1, journal=journal, stages=("proxy",), **JOURNAL_KW
    )
    assert {c[1] for c in calls} == {"proxy"} and len(calls) == 6
    s = proxy["summary"]
    assert s["within_sd"] >= 0 and s["between_sd"] >= 0 and "ranking_missing" in s
    assert "kendall_tau" not in s
    calls.clear()
    full = run_fidelity(
        space, settings, workers=1, journal=journal, stages=("reference",), **JOURNAL_KW
    )
    assert {c[1] for c in calls} == {"reference"} and len(calls) == 3
    assert "kendall_tau" in full["summary"] and "ranking_missing" not in full["summary"]
    assert full["summary"]["within_sd"] == s["within_sd"]


def test_journal_of_other_settings_or_not_a_journal_is_refused(tmp_path, capsys):
    from attnsearch.fidelity import FidelityError

    space = load_space("tiny")
    journal = tmp_path / "panel.jsonl"
    run_fidelity(
        space,
        ProxySettings.defaults(dataset="digits", limit=40, epochs=1),
        workers=1,
        journal=journal,
        stages=("proxy",),
        **JOURNAL_KW,
    )
    before = journal.read_bytes()
    with pytest.raises(FidelityError, match="another panel, dataset or proxy"):
        run_fidelity(
            space,
            ProxySettings.defaults(dataset="digits", limit=48, epochs=1),
            workers=1,
            journal=journal,
            **JOURNAL_KW,
        )
    assert journal.read_bytes() == before  # nothing already computed lost
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"fidelity_journal": 1, "key": "x"}\nnot json\n')
    for path, words in ((bad, "line 2 is not JSON"), (tmp_path, "is a folder")):
        code, out, err = _main(capsys, "fidelity", *MICRO, "--journal", str(path))
        assert code == 2 and words in err, err
        assert "Traceback" not in err and err.strip().count("\n") == 0


def test_stage_without_journal_or_report_over_journal_is_refused(tmp_path, capsys):
    journal = tmp_path / "j.jsonl"
    for extra, words in (
        (["--stage", "reference"], "needs --journal"),
        (["--journal", str(journal), "-o", str(journal)], "same file as --journal"),
    ):
        code, out, err = _main(capsys, "fidelity", *MICRO, *extra)
        assert code == 2 and words in err, err
        assert "Traceback" not in err and err.strip().count("\n") == 0
    assert not journal.exists()  # refused before anything was written


def test_an_existing_report_is_never_overwritten_without_force(tmp_path, capsys):
    report = tmp_path / "report.json"
    report.write_text("mine")
    code, out, err = _main(capsys, "fidelity", *MICRO, "-o", str(report))
    assert code == 2 and "exists; pass --force to overwrite it" in err, err
    assert "Traceback" not in err and err.strip().count("\n") == 0
    assert report.read_text() == "mine"


def test_journal_counts_a_run_once_and_tries_a_failed_run_again(tmp_path, monkeypatch):
    space = load_space("tiny")
    settings = ProxySettings.defaults(dataset="digits", limit=40, epochs=1)
    journal = tmp_path / "panel.jsonl"
    first = run_fidelity(space, settings, workers=1, journal=journal, **JOURNAL_KW)
    lines = journal.read_text().splitlines(keepends=True)
    runs = [json.loads(x) for x in lines[1:]]
    failed = {**{k: runs[0][k] for k in ("member", "schedule", "seed")}, "failed": "OOM"}
    # a second process trained run 1 again; run 0 had failed once before it succeeded
    journal.write_text(lines[0] + json.dumps(failed) + "\n" + "".join(lines[1:]) + lines[2])
    calls = _counting(monkeypatch)
    again = run_fidelity(space, settings, workers=1, journal=journal, **JOURNAL_KW)
    assert calls == [] and _accuracies(again) == _accuracies(first)
    assert again["summary"]["failed_runs"] == 0
    # only a failure on record: trained again, and the success then counts
    journal.write_text(lines[0] + json.dumps(failed) + "\n" + "".join(lines[2:]))
    third = run_fidelity(space, settings, workers=1, journal=journal, **JOURNAL_KW)
    assert calls == [(runs[0]["member"], runs[0]["schedule"], runs[0]["seed"])]
    assert _accuracies(third) == _accuracies(first)


@pytest.mark.parametrize(
    "over",
    [{}, {"dataset": "clutter:24", "epochs": 3, "width": 0.25, "limit": 500, "seed": 7},
     {"dataset": "folder:/data/my images", "resolution": 16, "data_dir": "/tmp/d d",
      "cpus_per_trial": 3.0}],
)  # fmt: skip
def test_run_names_the_fidelity_call_for_its_own_proxy(over):
    """The line a run ends with: a fidelity call the fidelity command parses, with the run's
    proxy settings (a path with a space survives the shell quoting)."""
    import shlex

    from attnsearch.budget import Budget
    from attnsearch.cli._run_impl import fidelity_command
    from attnsearch.cli.fidelity import command
    from attnsearch.search import RunSettings

    settings = RunSettings.make(Budget("flops", 4 * 10**9, "4G"), space="tiny", **over)
    argv = shlex.split(fidelity_command(settings))
    assert argv[:2] == ["attnsearch", "fidelity"]
    ctx = command.make_context("fidelity", argv[2:])  # parses and checks every value
    p = ctx.params
    assert p["space"] == "tiny" and p["dataset"] == settings.dataset
    assert (p["epochs"], p["width"]) == (settings.epochs, settings.width)
    assert p["batch_size"] == settings.batch_size and p["limit"] == settings.limit
    assert p["resolution"] == settings.resolution and (p["seed"] or 0) == settings.seed
    assert (p["data_dir"] or "data") == settings.data_dir
    assert (p["threads"] or 1) == int(settings.cpus_per_trial)
    assert p["budget"].value == 4 * 10**9  # the panel stays under the run's budget


def test_uniform_panel_holds_exactly_the_types_asked():
    space = load_space("resnet50")
    panel = build_panel(space, 0.5, uniform=["none", "se", "cbam", "ca", "epsa"])
    assert [m.name for m in panel] == [
        "uniform-none", "uniform-se", "uniform-cbam", "uniform-ca", "uniform-epsa",
    ]  # fmt: skip
    assert all(m.kind == "uniform" for m in panel)
    assert {s.type for s in panel[2].arch.slots} == {"cbam"}
    with pytest.raises(FidelityError, match="--uniform bogus"):
        build_panel(space, 0.5, uniform=["none", "se", "bogus"])
    with pytest.raises(FidelityError, match="3 or more different"):
        build_panel(space, 0.5, uniform=["none", "none", "se"])


def _named(report: dict) -> dict:
    for m, name in zip(
        report["panel"], ["uniform-none", "uniform-se", "uniform-cbam"], strict=True
    ):
        m["name"] = name
    return report


def test_stage_a_passes_only_when_all_four_checks_hold():
    kinds = ["uniform"] * 3
    # proxy: spread 10 points, seed sd ~0.7 point; reference: SE and CBAM beat plain clearly
    proxy = [[0.50, 0.51, 0.49], [0.60, 0.61, 0.59], [0.70, 0.71, 0.69]]
    ref = [[0.80, 0.81], [0.88, 0.89], [0.90, 0.91]]
    a = stage_a(_named(_report(proxy, ref, kinds))["panel"])
    assert a["pass"] is True, a
    assert a["checks"]["reference_separates_attention"]["value"] == ["uniform-se", "uniform-cbam"]
    assert a["runs"] == {"proxy": 9, "reference": 6}
    # the proxy ranks plain first where the reference separates it last: FAIL
    backwards = [[0.70, 0.71, 0.69], [0.60, 0.61, 0.59], [0.50, 0.51, 0.49]]
    a = stage_a(_named(_report(backwards, ref, kinds))["panel"])
    assert a["pass"] is False
    assert a["checks"]["proxy_agrees_on_separated_pairs"]["pass"] is False
    # a saturated reference (best ≥ 97 %) fails however well the proxy agrees
    sat = [[0.975, 0.976], [0.985, 0.986], [0.99, 0.991]]
    a = stage_a(_named(_report(proxy, sat, kinds))["panel"])
    assert a["checks"]["reference_not_saturated"]["pass"] is False and a["pass"] is False
    # seed noise as large as the spread: the proxy cannot separate the candidates
    noisy = [[0.50, 0.60, 0.40], [0.52, 0.62, 0.42], [0.54, 0.64, 0.44]]
    a = stage_a(_named(_report(noisy, ref, kinds))["panel"])
    assert a["checks"]["proxy_between_over_within"]["pass"] is False and a["pass"] is False
    # the reference separates no attention network from plain: FAIL
    flat = [[0.80, 0.85], [0.81, 0.86], [0.82, 0.84]]
    a = stage_a(_named(_report(proxy, flat, kinds))["panel"])
    assert a["checks"]["reference_separates_attention"]["pass"] is False
    # the proxy runs alone: not decided (but a failed proxy check already fails)
    alone = _named(_report(proxy, [[], [], []], kinds))
    assert stage_a(alone["panel"])["pass"] is None
    assert stage_a(_named(_report(noisy, [[], [], []], kinds))["panel"])["pass"] is False
    assert stage_a(_report(proxy, ref, kinds)["panel"]) is None  # no plain member
    # a reference under 10x the proxy: its checks are not decided, a proxy FAIL still fails
    short = stage_a(_named(_report(proxy, ref, kinds))["panel"], reference_factor=4)
    assert short["pass"] is None and "4x" in short["short_reference"]
    assert short["checks"]["reference_separates_attention"]["so_far"] is True
    assert short["checks"]["proxy_between_over_within"]["pass"] is True
    short = stage_a(_named(_report(noisy, ref, kinds))["panel"], reference_factor=4)
    assert short["pass"] is False
    ten = stage_a(_named(_report(proxy, ref, kinds))["panel"], reference_factor=10)
    assert ten["pass"] is True and "short_reference" not in ten


def test_stage_a_waits_for_every_planned_run():
    """With runs still to train, the checks that rest on them are not decided, however clear
    the runs so far look; what they say so far is kept apart, and so is what is missing."""
    kinds = ["uniform"] * 3
    proxy = [[0.50, 0.51, 0.49], [0.60, 0.61, 0.59], [0.70, 0.71, 0.69]]
    ref = [[0.80, 0.81], [0.88, 0.89], [0.90, 0.91]]
    planned = {"proxy": 3, "reference": 2}
    assert stage_a(_named(_report(proxy, ref, kinds))["panel"], planned)["pass"] is True
    partial = [[0.80, 0.81], [0.88, 0.89], [0.90]]  # one reference run of six to train
    a = stage_a(_named(_report(proxy, partial, kinds))["panel"], planned)
    assert stage_a(_named(_report(proxy, partial, kinds))["panel"])["pass"] is True  # unplanned
    assert a["pass"] is None
    c = a["checks"]
    assert c["proxy_between_over_within"]["pass"] is True  # its runs are all in
    for key in ("reference_not_saturated", "reference_separates_attention"):
        assert c[key]["pass"] is None and c[key]["so_far"] is True
    assert a["missing"].startswith("5 of 6 reference runs measured")
    # a proxy still short holds every check, a proxy failure included
    noisy = [[0.50, 0.60, 0.40], [0.52, 0.62, 0.42], [0.54, 0.64]]
    a = stage_a(_named(_report(noisy, ref, kinds))["panel"], planned)
    assert a["pass"] is None and all(c["pass"] is None for c in a["checks"].values())
    assert a["checks"]["proxy_between_over_within"]["so_far"] is False
    assert a["missing"].startswith("8 of 9 proxy runs measured")
    # summarize reads the plan from the report's settings
    report = _named(_report(proxy, partial, kinds))
    report["settings"] = {"proxy_seeds": 3, "reference_seeds": 2}
    assert summarize(report)["stage_a"]["pass"] is None


def test_uniform_cli_reports_stage_a(capsys):
    micro = [a for a in MICRO if a not in ("--panel", "3")]
    code, out, err = _main(capsys, "fidelity", *micro, "--uniform", "none,se,eca", "--json")
    assert code == 0, err
    data = json.loads(out)
    assert [m["name"] for m in data["panel"]] == ["uniform-none", "uniform-se", "uniform-eca"]
    assert data["settings"]["uniform"] == ["none", "se", "eca"]
    assert set(data["summary"]["stage_a"]["checks"]) == {
        "proxy_between_over_within", "reference_not_saturated",
        "reference_separates_attention", "proxy_agrees_on_separated_pairs",
    }  # fmt: skip
    code, out, err = _main(capsys, "fidelity", *micro, "--uniform", "none,se,nope")
    assert code == 2 and "--uniform nope" in err


def test_journal_key_keeps_its_value_when_flip_is_the_datasets_own():
    """``--flip/--no-flip`` came after journals were written: a flip equal to the dataset's
    default (or not given) leaves the key as it was, the other value changes it."""
    from types import SimpleNamespace

    from attnsearch.fidelity._journal import _journal_key
    from attnsearch.settings import ProxySettings

    space = SimpleNamespace(name="tiny")
    members = [SimpleNamespace(arch=SimpleNamespace(digest=lambda: "a"))]
    data = SimpleNamespace(digest=lambda: "d")

    def key(**kw):
        s = ProxySettings.defaults(dataset="mnist-clutter", **kw)
        return _journal_key(space, s, data, members, 10, None, "cpu")

    assert key() == key(flip=None) == key(flip=False) != key(flip=True)
