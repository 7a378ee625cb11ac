"""End-to-end searches with real Ray, real Optuna storage and real training (CPU, tiny)."""

from __future__ import annotations

import json
from pathlib import Path

import optuna
import pytest
from conftest import cli, make_run

from attnsearch import Architecture, profile
from attnsearch.cost import FlopsCost
from attnsearch.datasets import load_dataset
from attnsearch.flops.analytic import analytic_flops
from attnsearch.results import measurements, open_study
from attnsearch.rundir import FailKind, RunDir, TrialRecord
from attnsearch.search import run_search
from attnsearch.spaces import load_space

PLAIN_R18 = analytic_flops(Architecture.uniform("resnet18"))


def _dominated(a, b):
    """True if b dominates a (accuracy up, FLOPs down)."""
    return (
        b["accuracy"] >= a["accuracy"]
        and b["flops"] <= a["flops"]
        and (b["accuracy"] > a["accuracy"] or b["flops"] < a["flops"])
    )


@pytest.fixture(scope="module")
def finished_search(ray_local, tmp_path_factory):
    """A 6-trial search of the tiny space whose budget excludes some candidates, with both
    references (one over budget) and repeats."""
    results = tmp_path_factory.mktemp("results")
    space = load_space("tiny")
    data = load_dataset("synthetic", resolution=8, limit=160, seed=0)
    # plain ResNet-18 is the budget: anything costlier than it (RFA, CBAM, ...) is infeasible
    run = make_run(
        results,
        "e2e",
        PLAIN_R18,
        space="tiny",
        dataset="synthetic",
        trials=6,
        epochs=1,
        concurrency=2,
        width=0.25,
        batch_size=32,
        sampler="random",
        seed=3,
        references="all",  # RFA-ResNet-18 is over budget: trained as context only
        repeats=2,
    )
    summary = run_search(run, space=space, dataset=data)
    run_dir, settings = run.path, run.settings
    return run_dir, settings, summary


def test_front_is_feasible_nondominated_and_reprofiles(finished_search):
    run_dir, settings, summary = finished_search
    front = json.loads((run_dir / "pareto.json").read_text())
    assert front, "a finished search has a front"
    assert front == summary["members"]
    for m in front:
        assert set(m) >= {
            "trial",
            "architecture",
            "accuracy",
            "flops",
            "params",
            "macs_conv_linear",
        }
        assert 0.0 <= m["accuracy"] <= 1.0
        assert m["flops"] <= settings.budget.value
        p = profile(m["architecture"])  # traced, independent of the analytic table
        assert p["flops"] == m["flops"]
        assert p["params"] == m["params"] and p["macs_conv_linear"] == m["macs_conv_linear"]
        assert not any(_dominated(m, o) for o in front if o is not m)
    # every search trial (mean over its seeds) is dominated by or on the front
    study = open_study(run_dir, RunDir.open(run_dir.parent, run_dir.name).record.study_name)
    ms = measurements(study)
    assert len(ms.search) == settings.trials
    for t in ms.search:
        point = {"accuracy": t.mean, "flops": t.record.flops}
        assert any(
            _dominated(point, m) or (point["accuracy"], point["flops"]) == (
                m["accuracy"], m["flops"])
            for m in front
        )  # fmt: skip


def test_extras_not_counted_present_once_and_never_on_the_front(finished_search):
    """References (K seeds each, the over-budget one too) and repeats (K - 1 per front
    member) are stored trials, not counted towards --trials, and never front members."""
    run_dir, settings, summary = finished_search
    study = open_study(run_dir, RunDir.open(run_dir.parent, run_dir.name).record.study_name)
    records = {t.number: (t, TrialRecord.of(t)) for t in study.trials}
    refs = [n for n, (t, r) in records.items() if r.role == "reference"]
    reps = [n for n, (t, r) in records.items() if r.role == "repeat"]
    names = sorted(records[n][1].reference for n in refs)
    assert names == ["RFA-ResNet-18"] * 2 + ["ResNet-18"] * 2
    over = [n for n in refs if records[n][1].flops > settings.budget.value]
    assert len(over) == 2 and all(records[n][1].trained for n in over)
    front = {m["trial"] for m in summary["members"]}
    assert not front & (set(refs) | set(reps))
    assert summary["done"] == settings.trials
    repeated = sorted(records[n][1].repeat_of for n in reps)
    assert len(repeated) == len(set(repeated)), "one repeat per trial at --repeats 2"
    assert front <= set(repeated)
    for m in summary["members"]:
        assert len(m["accuracies"]) == 2 and m["accuracy"] == pytest.approx(
            sum(m["accuracies"]) / 2
        )
    fits = {r["name"]: r["fits"] for r in summary["references"]}
    assert fits == {"ResNet-18": True, "RFA-ResNet-18": False}
    assert summary["verdict"]["reference"] == "ResNet-18"


def test_storage_opens_with_optuna_and_matches_pareto_json(finished_search):
    run_dir, settings, _ = finished_search
    from optuna.storages import JournalStorage
    from optuna.storages.journal import JournalFileBackend

    storage = JournalStorage(JournalFileBackend(str(run_dir / "study.journal")))
    study_name = RunDir.open(run_dir.parent, run_dir.name).record.study_name
    study = optuna.load_study(study_name=study_name, storage=storage)
    front = json.loads((run_dir / "pareto.json").read_text())
    by_number = {t.number: t for t in study.trials}
    for m in front:  # each member is a stored search trial; its first seed is its own value
        t = by_number[m["trial"]]
        assert t.state == optuna.trial.TrialState.COMPLETE and "role" not in t.user_attrs
        assert m["accuracies"][0] == t.values[0]
    assert study.directions == [
        optuna.study.StudyDirection.MAXIMIZE,
        optuna.study.StudyDirection.MINIMIZE,
    ]


def test_over_budget_candidates_never_trained(finished_search):
    run_dir, settings, summary = finished_search
    study = open_study(run_dir, RunDir.open(run_dir.parent, run_dir.name).record.study_name)
    infeasible = {t.number for t in study.trials if t.user_attrs.get("trained") is False}
    trained = {t.number for t in study.trials if t.user_attrs.get("trained")}
    assert infeasible, "the budget should have excluded some candidates"
    for t in study.trials:
        if t.number in infeasible:
            assert t.user_attrs["flops"] > settings.budget.value
            constraint = t.system_attrs["constraints:flops_over_budget"]
            assert constraint > 0
    executions = [
        json.loads(line) for line in (run_dir / "executions.jsonl").read_text().splitlines()
    ]
    executed = {e["trial"] for e in executions}
    assert executed == trained
    assert not executed & infeasible
    assert summary["infeasible"] == len(infeasible)


def test_results_folder_layout(finished_search):
    run_dir, settings, _ = finished_search
    for name in (
        "run.yaml",
        "study.journal",
        "trials.csv",
        "pareto.csv",
        "pareto.json",
        "pareto.png",
        "summary.json",
    ):
        assert (run_dir / name).is_file(), name
    assert (run_dir / "tune").is_dir()
    rows = (run_dir / "trials.csv").read_text().splitlines()
    assert rows[0].startswith("trial,status,accuracy,flops")
    assert sum(",complete," in r and r.endswith(",search") for r in rows) == settings.trials
    assert (run_dir / "pareto.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    # checkpoints: every trained trial (references and repeats too) saved its final weights
    ckpts = list((run_dir / "tune").glob("*/checkpoint_*/state.pt"))
    assert len(ckpts) == sum(",complete," in r for r in rows)
    assert (run_dir / "summary.json").is_file()
    assert RunDir.open(run_dir.parent, "e2e").settings == settings


@pytest.mark.parametrize(
    ("args", "needle"),
    [
        (["--budget", "4GB"], "invalid budget '4GB'"),
        (["--budget", "1M", "--space", "tiny"], "below the cheapest architecture"),
        (["--budget", "4G", "--space", "nope"], "unknown space 'nope'"),
        (["--budget", "4G", "--dataset", "folder:/nonexistent"], "/nonexistent"),
        (["--budget", "4G", "--dataset", "imagenet"], "imagenet"),
        (["--budget", "4G", "--trials", "0"], "--trials"),
        (["--budget", "4G", "--sampler", "grid"], "--sampler"),
        (["--budget", "4G", "--name", "../x"], "--name"),
    ],
)
def test_run_rejects_bad_input_before_ray(tmp_path, args, needle):
    proc = cli("run", *args, cwd=tmp_path)
    assert proc.returncode == 2, proc.stderr
    assert "Traceback" not in proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and needle in lines[0], proc.stderr
    assert not (tmp_path / "results").exists() or not any((tmp_path / "results").iterdir())


def test_budget_minimum_is_named(tmp_path):
    proc = cli("run", "--budget", "1M", "--space", "tiny", cwd=tmp_path)
    space = load_space("tiny")
    cost = FlopsCost(space)
    cheapest = cost(cost.cheapest(space, space.options(0.5)))
    assert f"{cheapest:,}" in proc.stderr


def test_cli_run_end_to_end_and_pareto(tmp_path):
    """The real command: starts its own local Ray, trains, writes results, re-reads them."""
    proc = cli(
        "run",
        "--budget",
        "1.9G",
        "--space",
        "tiny",
        "--dataset",
        "synthetic",
        "--limit",
        "96",
        "--resolution",
        "8",
        "--trials",
        "2",
        "--epochs",
        "1",
        "--width",
        "0.25",
        "--name",
        "cli",
        "--references",
        "fit",  # under 1.9G: ResNet-18 fits, RFA-ResNet-18 (1.94G) does not
        cwd=tmp_path,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "Pareto front" in proc.stdout
    assert "References" in proc.stdout and "ResNet-18" in proc.stdout
    assert "verdict:" in proc.stdout and " ± " in proc.stdout
    said = " ".join(proc.stderr.split())  # notes: why a reference is not trained, what next
    assert "(flips off)" in said, said  # the augmentation the run chose, said at its start
    assert "references left out — over the budget: RFA-ResNet-18 1.94 GFLOPs" in said, said
    assert "attnsearch fidelity --space tiny --dataset synthetic --epochs 1 --width 0.25" in said
    run_dir = tmp_path / "results" / "cli"
    front = json.loads((run_dir / "pareto.json").read_text())
    again = cli("pareto", "cli", "--json", cwd=tmp_path)
    assert again.returncode == 0, again.stderr
    assert json.loads(again.stdout) == front  # the pareto.json contract (DESIGN §4, §6)
    summary = json.loads((run_dir / "summary.json").read_text())
    assert summary["members"] == front
    assert [r["name"] for r in summary["references"]] == ["ResNet-18"]
    table = cli("pareto", "cli", cwd=tmp_path)
    assert summary["verdict"]["text"].split(":")[0] in table.stdout and "References" in table.stdout
    # the run measures its own signal, and the table and the verdict come from one test
    assert summary["signal"]["text"] in " ".join(proc.stdout.split()).replace("─", "") or (
        "signal:" in proc.stdout
    )
    assert "signal:" in table.stdout
    v = summary["verdict"]
    if v.get("beyond_noise") is not None:
        best = next(m for m in front if m["trial"] == v["trial"])
        assert v["beyond_noise"] is ("ResNet-18" not in best["unseparated"])
        assert ("not separated" in v["text"]) is ("ResNet-18" in best["unseparated"])
    dup = cli("run", "--budget", "2G", "--space", "tiny", "--name", "cli", cwd=tmp_path)
    assert dup.returncode == 2 and "already exists" in dup.stderr
    missing = cli("pareto", "nope", cwd=tmp_path)
    assert missing.returncode == 2 and "no search named 'nope'" in missing.stderr
    assert Path(run_dir / "pareto.png").exists()


def test_proxy_export_with_weights_reproduces_trial_accuracy(finished_search, tmp_path):
    """`export NAME --trial N --proxy --weights`: the generated file, with the trial's
    saved weights, gives exactly the accuracy the trial reported, on the same split."""
    import importlib.util

    import torch

    from attnsearch.export import export_run
    from attnsearch.training import evaluate

    run_dir, settings, _ = finished_search
    best = max(json.loads((run_dir / "pareto.json").read_text()), key=lambda m: m["accuracy"])
    out = tmp_path / "model.py"
    export_run(
        run_dir.parent,
        "e2e",
        out,
        trial=best["trial"],
        best=False,
        max_flops=None,
        proxy=True,
        weights=True,
    )
    assert (tmp_path / "model.pt").is_file()
    spec = importlib.util.spec_from_file_location("exported_model", out)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    model = mod.build_model(pretrained=True)
    data = load_dataset("synthetic", resolution=8, limit=160, seed=0)  # as the fixture
    mean = torch.tensor(data.mean).view(1, -1, 1, 1)
    std = torch.tensor(data.std).view(1, -1, 1, 1)
    acc = evaluate(model, data.val_x, data.val_y, mean, std)
    assert acc == pytest.approx(best["accuracies"][0], abs=1e-9)  # the trial's own seed


def test_evaluate_reproduces_a_trial_from_its_seed(finished_search):
    """`evaluate` with the run's settings (RunDir) and a trial's number as the seed trains
    through run_trial exactly as the Tune trial did: same accuracy, same history."""
    from attnsearch.evaluation import evaluate_architecture

    run_dir, settings, summary = finished_search
    member = summary["members"][0]
    study = open_study(run_dir, RunDir.open(run_dir.parent, run_dir.name).record.study_name)
    trial = study.trials[member["trial"]]
    data = load_dataset("synthetic", resolution=8, limit=160, seed=0)  # as the fixture
    again = evaluate_architecture(
        Architecture.from_json(member["architecture"]),
        RunDir.open(run_dir.parent, run_dir.name).settings,
        data,
        [member["trial"]],
    )
    assert again.accuracies == [trial.values[0]]
    assert again.histories == [trial.user_attrs["history"]]


def test_trials_that_fail_by_themselves_are_recorded_and_the_search_goes_on(ray_local, tmp_path):
    """Every candidate's loss is non-finite (std 0 makes the inputs inf): each trial is
    recorded FAILED with its reason, new candidates keep coming, and the search stops
    after a bounded number of failures instead of looping or crashing."""
    import dataclasses

    space = load_space("tiny")
    data = load_dataset("synthetic", resolution=8, limit=40, seed=0)
    broken = dataclasses.replace(data, std=tuple(0.0 for _ in data.std))
    run = make_run(
        tmp_path,
        "nan",
        PLAIN_R18 * 2,
        space="tiny",
        dataset="synthetic",
        trials=2,
        epochs=1,
        concurrency=2,
        width=0.25,
        batch_size=16,
        sampler="random",
        repeats=1,  # failures only: no references, no repeats
        references="none",
    )
    settings = run.settings
    summary = run_search(run, space=space, dataset=broken)
    assert summary["done"] == 0
    study = open_study(run.path, run.record.study_name)
    failed = [t for t in study.trials if t.state == optuna.trial.TrialState.FAIL]
    assert len(failed) > settings.trials, "the search went on after the first failures"
    assert len(failed) <= 3 + settings.trials + settings.concurrency
    for t in failed:
        assert TrialRecord.of(t).fail_kind == FailKind.CANDIDATE
        assert "TrainingError" in t.user_attrs["fail_reason"]
        assert "training loss became" in t.user_attrs["fail_reason"]
    rows = (tmp_path / "nan" / "trials.csv").read_text()
    assert "training loss became" in rows


def test_early_stop_prunes_without_polluting_the_front(ray_local, tmp_path):
    """--early-stop (ASHA): stopped trials are PRUNED in the storage (their accuracy comes
    from fewer epochs and is not comparable), count as finished, and never reach the front."""
    space = load_space("tiny")
    data = load_dataset("synthetic", resolution=8, limit=80, seed=0)
    run = make_run(
        tmp_path,
        "asha",
        PLAIN_R18 * 2,
        space="tiny",
        dataset="synthetic",
        trials=6,
        epochs=3,
        concurrency=2,
        width=0.25,
        batch_size=16,
        sampler="random",
        seed=5,
        early_stop=True,
        repeats=1,  # pruning only: no references, no repeats
        references="none",
    )
    settings = run.settings
    summary = run_search(run, space=space, dataset=data)
    assert summary["done"] == settings.trials
    study = open_study(run.path, run.record.study_name)
    states = {t.number: t.state for t in study.trials if t.user_attrs.get("trained")}
    assert set(states.values()) <= {
        optuna.trial.TrialState.COMPLETE,
        optuna.trial.TrialState.PRUNED,
    }
    pruned = {n for n, s in states.items() if s == optuna.trial.TrialState.PRUNED}
    assert pruned, "ASHA stopped no trial: the test would not see pruning at all"
    for t in study.trials:
        if t.number in pruned:
            assert t.user_attrs["early_stopped"] and t.user_attrs["epoch"] < settings.epochs
    front = {m["trial"] for m in json.loads((tmp_path / "asha" / "pareto.json").read_text())}
    assert front and not front & pruned


def test_run_json_prints_the_summary_alone_on_stdout(tmp_path):
    proc = cli(
        "run", "--budget", "2G", "--space", "tiny", "--dataset", "synthetic", "--limit", "64",
        "--resolution", "8", "--trials", "1", "--epochs", "1", "--width", "0.25",
        "--references", "none", "--repeats", "1", "--name", "j", "--json",
        cwd=tmp_path,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-3000:]
    data = json.loads(proc.stdout)  # nothing but the JSON on stdout
    summary = json.loads((tmp_path / "results" / "j" / "summary.json").read_text())
    assert data["members"] == summary["members"] and data["signal"] == summary["signal"]
    assert data["run_dir"].endswith("j") and data["done"] == 1
    assert "trial 0: accuracy" in proc.stderr  # progress went to stderr
