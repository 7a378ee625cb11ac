"""attnsearch.evaluation and ``attnsearch evaluate``: a trial's accuracy, reproduced."""

from __future__ import annotations

import json

import pytest
import torch

from attnsearch.architecture import Architecture
from attnsearch.cli import main
from attnsearch.datasets import load_dataset
from attnsearch.evaluation import (
    ProxySettings,
    evaluate_architecture,
    settings_from_options,
)
from attnsearch.settings import RunSettings, batch_size_for, field_default
from attnsearch.training import ProxyConfig, train_candidate

ARCH = {"backbone": "resnet18", "all": {"type": "se", "reduction": 4}}
SMALL = ["--dataset", "digits", "--limit", "60", "--epochs", "1"]


def _main(capsys, *args: str) -> tuple[int, str, str]:
    with pytest.raises(SystemExit) as info:
        main(list(args))
    out, err = capsys.readouterr()
    return (info.value.code or 0), out, err


@pytest.fixture
def arch_file(tmp_path):
    path = tmp_path / "arch.json"
    path.write_text(json.dumps(ARCH))
    return path


def _as_trainable(arch, data, proxy: dict, cpus_per_trial: float, number: int):
    """Train exactly as ``search.trainable`` does for trial ``number``."""
    before = torch.get_num_threads()
    torch.set_num_threads(max(1, int(cpus_per_trial)))
    try:
        return train_candidate(arch, data, ProxyConfig(**proxy), trial_seed=number)
    finally:
        torch.set_num_threads(before)


def test_evaluate_reproduces_a_trial_from_its_seed():
    arch = Architecture.from_json(ARCH)
    data = load_dataset("digits", seed=3, limit=60)
    # the proxy dict run_search hands every trial (search.py), for a run with seed 3
    proxy = {"epochs": 1, "batch_size": 16, "width": 0.5, "resolution": None, "flip": False,
             "seed": 3}  # fmt: skip
    trial = _as_trainable(arch, data, proxy, 1.0, number=5)
    settings, loaded = settings_from_options(
        dataset="digits", epochs=1, batch_size=16, seed=3, limit=60
    )
    assert loaded.train_x.equal(data.train_x)  # the run's split
    got = evaluate_architecture(arch, settings, data, [5])
    assert got.accuracies == [trial.accuracy]
    assert got.histories == [trial.history]
    assert got.val_losses == [trial.val_losses] and len(trial.train_losses) == 1
    other = evaluate_architecture(arch, settings, data, [6])
    assert other.histories[0] != trial.history or other.val_losses != got.val_losses


def test_defaults_are_runs():
    d = {n: field_default(ProxyConfig, n) for n in ("epochs", "width", "seed")}
    d.update({n: field_default(RunSettings, n) for n in ("dataset", "cpus_per_trial")})
    settings, data = settings_from_options()
    assert (settings.dataset, settings.epochs, settings.width, settings.seed) == (
        d["dataset"],
        d["epochs"],
        d["width"],
        d["seed"],
    )
    assert settings.cpus_per_trial == d["cpus_per_trial"]
    assert settings.batch_size == batch_size_for(len(data.train_x))
    assert batch_size_for(100) == 32 and batch_size_for(50_000) == 128
    # fidelity's flat options build the same settings (one rule, one proxy)
    flat = ProxySettings.defaults().run_settings(len(data.train_x))
    assert flat == settings


def test_evaluate_json_contract(capsys, arch_file):
    code, out, err = _main(capsys, "evaluate", str(arch_file), *SMALL, "--seeds", "2", "--json")
    assert code == 0, err
    data = json.loads(out)
    assert len(data["accuracies"]) == 2 and data["seeds"] == [0, 1]
    assert all(0 <= a <= 1 for a in data["accuracies"])
    assert data["accuracy"] == pytest.approx(sum(data["accuracies"]) / 2)
    a, b = data["accuracies"]
    assert data["accuracy_std"] == pytest.approx(abs(a - b) / 2**0.5)
    assert data["seconds"] > 0 and len(data["seconds_per_seed"]) == 2
    lo, hi = data["interval95"]
    assert lo <= data["accuracy"] <= hi
    assert data["proxy"]["batch_size"] == 32 and data["proxy"]["epochs"] == 1
    assert Architecture.from_json(data["architecture"]) == Architecture.from_json(ARCH)


@pytest.mark.parametrize("as_json", [False, True])
def test_evaluate_a_failing_seed_is_one_line_and_exit_1(capsys, arch_file, monkeypatch, as_json):
    """A seed whose training fails by itself (here the second: run_trial reports a
    non-finite loss) ends evaluate with exit 1 and one error line, no traceback; --json
    still prints one object, with the seeds done before the failure."""
    import attnsearch.search

    real = attnsearch.search.run_trial

    def run_trial(arch, proxy, dataset, seed, **kw):
        out = real(arch, proxy, dataset, seed, **kw)
        if seed == 1:
            return attnsearch.search.TrialOutcome(None, failed="non-finite loss at epoch 1")
        return out

    monkeypatch.setattr(attnsearch.search, "run_trial", run_trial)
    flags = ["--json"] if as_json else []
    code, out, err = _main(capsys, "evaluate", str(arch_file), *SMALL, "--seeds", "3", *flags)
    assert code == 1, (out, err)
    lines = err.strip().splitlines()
    assert "Traceback" not in err and [x for x in lines if "error" in x] == lines[-1:]
    assert lines[-1] == "error: training failed: seed 1: non-finite loss at epoch 1"
    if as_json:
        data = json.loads(out)
        assert data["seeds"] == [0] and len(data["accuracies"]) == 1
        assert data["error"] == "training failed: seed 1: non-finite loss at epoch 1"


def test_evaluate_table(capsys, arch_file):
    code, out, err = _main(capsys, "evaluate", str(arch_file), *SMALL, "--seeds", "1")
    assert code == 0, err
    assert "mean" in out and "95 % interval" in out and "(one seed)" in out


def test_evaluate_with_run_uses_its_settings(capsys, arch_file, tmp_path):
    from conftest import make_run

    make_run(tmp_path, "r", 10**10, dataset="digits", epochs=1, batch_size=16, limit=60, seed=2)
    args = ["evaluate", str(arch_file), "--run", "r", "--results-dir", str(tmp_path)]
    code, out, err = _main(capsys, *args, "--first-seed", "4", "--seeds", "1", "--json")
    assert code == 0, err
    data = json.loads(out)
    proxy = {"epochs": 1, "batch_size": 16, "width": 0.5, "resolution": None, "flip": False,
             "seed": 2}  # fmt: skip
    trial = _as_trainable(
        Architecture.from_json(ARCH), load_dataset("digits", seed=2, limit=60), proxy, 1.0, 4
    )
    assert data["accuracies"] == [trial.accuracy]
    assert data["proxy"]["batch_size"] == 16 and data["proxy"]["seed"] == 2


@pytest.mark.parametrize(
    "extra",
    [
        ["--seeds", "0"],
        ["--first-seed", "-1"],
        ["--epochs", "0"],
        ["--dataset", "nope"],
        ["--run", "missing"],
        ["--run", "missing", "--epochs", "2"],
    ],
)
def test_evaluate_bad_input_exits_2(capsys, arch_file, tmp_path, extra):
    code, out, err = _main(
        capsys, "evaluate", str(arch_file), "--results-dir", str(tmp_path), *extra
    )
    assert code == 2, (out, err)
    assert "Traceback" not in err and err.strip().count("\n") == 0


def test_evaluate_bad_architecture_exits_2(capsys, tmp_path):
    code, _, err = _main(capsys, "evaluate", str(tmp_path / "none.json"))
    assert code == 2 and "no such file" in err
    bad = tmp_path / "bad.json"
    bad.write_text('{"backbone": "resnet7"}')
    code, _, err = _main(capsys, "evaluate", str(bad))
    assert code == 2 and "bad.json" in err


def test_optimizer_option_reaches_the_trainer_with_its_defaults():
    """--optimizer adamw gives AdamW its own lr and weight decay (not SGD's 0.2), in
    evaluate's and fidelity's settings as in a run's; an unknown one is refused."""
    from attnsearch.evaluation import ProxySettings
    from attnsearch.search import RunSettings
    from attnsearch.settings import OPTIMIZER_DEFAULTS

    adamw = ProxySettings.defaults(dataset="digits", optimizer="adamw").run_settings()
    assert adamw.proxy.optimizer == "adamw"
    assert adamw.proxy.lr == OPTIMIZER_DEFAULTS["adamw"]["lr"] == 0.002
    assert adamw.proxy.weight_decay == 0.05
    sgd = ProxySettings.defaults(dataset="digits").run_settings()
    assert (sgd.proxy.optimizer, sgd.proxy.lr) == ("sgd", 0.2)
    with pytest.raises(Exception, match="optimizer"):
        RunSettings.make(optimizer="lamb")


def test_adamw_trains_with_adamw(monkeypatch):
    import torch

    from attnsearch import Architecture
    from attnsearch.evaluation import ProxySettings, evaluate_architecture

    used = []
    real = torch.optim.AdamW

    def spy(*args, **kwargs):
        used.append(kwargs.get("lr"))
        return real(*args, **kwargs)

    monkeypatch.setattr(torch.optim, "AdamW", spy)
    settings = ProxySettings.defaults(
        dataset="synthetic", limit=40, epochs=1, resolution=8, width=0.25, optimizer="adamw"
    ).run_settings(40)
    result = evaluate_architecture(
        Architecture.uniform("resnet18"), settings, settings.load_dataset(), [0]
    )
    assert used and 0 < used[0] < 0.01 and 0 <= result.accuracy <= 1
