"""Latency tables (issue 13): measuring, JSON round trip, refusing mismatches, the CLI.

Everything runs on the ``tiny`` space (ResNet-18, stage granularity) at a 32×32 input with
one timed sample per entry, so the numbers are noisy by design: the tests pin structure and
arithmetic, never how fast this machine is.
"""

from __future__ import annotations

import json
import math
import os
import time
from pathlib import Path

import pytest
from conftest import synthetic_latency_table

from attnsearch.architecture import Architecture, SlotChoice
from attnsearch.budget import Budget, parse_cost_budget
from attnsearch.cli import main
from attnsearch.cost import LatencyCost
from attnsearch.latency import (
    LatencyError,
    LatencyTable,
    Settings,
    build_table,
    choice_key,
    load_or_build,
    random_architectures,
    validate,
)
from attnsearch.spaces import load_space

SMALL = Settings(input=(3, 32, 32), threads=1, warmup=1, repeats=1, min_sample_ms=0.2)


@pytest.fixture(scope="module")
def space():
    return load_space("tiny")


@pytest.fixture(scope="module")
def table(space):
    calls = []
    t = build_table(space, SMALL, calibrate=1, progress=lambda d, n, label: calls.append((d, n)))
    t.meta["progress_calls"] = calls
    return t


def _fastest(table, space, width=1.0):
    """The space's fastest architecture under ``table`` at ``width``, and its latency (ms)."""
    arch = LatencyCost(table).cheapest(space, space.options(width))
    return table.predict(arch), arch


def _written(table, tmp_path, **changes):
    data = table.to_json()
    data.update(changes)
    path = tmp_path / "table.json"
    path.write_text(json.dumps(data))
    return path


# --------------------------------------------------------------------------- building


def test_every_choice_of_the_space_is_in_every_slot(space, table):
    assert table.backbone == "resnet18" and len(table.slots) == 8
    options = space.options()
    for unit, per_type in zip(space.units, options, strict=True):
        wanted = {c for cs in per_type.values() for c in cs}
        for s in space.unit_slots(unit):
            assert set(table.slots[s]) == wanted
    assert all(ms > 0 and math.isfinite(ms) for t in table.slots for ms in t.values())
    assert table.stem_ms > 0 and table.head_ms > 0
    calls = table.meta["progress_calls"]
    assert calls[-1][0] == calls[-1][1] == len(calls)  # one call per measurement, ends at total


def test_slots_sharing_a_context_share_measurements(table):
    # resnet18's slots 0 and 1 both take 64 channels to 64 at stride 1 on the same map: one
    # context, measured once. Every other slot has its own (stride, width or map size), so
    # 7 contexts × 9 choices of tiny + stem + head.
    assert table.slots[0] == table.slots[1] and table.slots[0] is not table.slots[1]
    assert table.meta["measurements"] == 2 + 7 * 9


def test_provenance_is_recorded(table, space):
    m = table.meta
    assert m["device_kind"] == "cpu" and m["device_name"] and m["torch"]
    assert m["build_seconds"] > 0 and m["measured_at"].endswith("Z")
    cal = m["calibration"]
    assert cal["networks"] == 2  # the plain backbone + 1 random network
    ratios = [b / a for a, b in zip(cal["predicted_raw_ms"], cal["measured_ms"], strict=True)]
    assert table.scale == pytest.approx(sum(ratios) / 2, rel=1e-3)  # median of two; rounding
    assert table.space["name"] == "tiny" and len(table.space["digest"]) == 16


# --------------------------------------------------------------------------- predicting


def test_predicted_sum_equals_the_parts_exactly(space, table):
    for arch in random_architectures(space, 5, seed=3):
        expected = table.stem_ms
        for i, c in enumerate(arch.slots):
            expected += table.slots[i][c]
        expected += table.head_ms
        assert table.raw(arch) == expected
        assert sum(table.parts(arch)) == expected
        assert table.predict(arch) == table.scale * expected


def test_predict_is_cheap(space, table):
    archs = random_architectures(space, 50, seed=4)
    t0 = time.perf_counter()
    for _ in range(20):
        for a in archs:
            table.predict(a)
    per_call = (time.perf_counter() - t0) / 1000
    assert per_call < 1e-3  # microseconds in practice; a millisecond is a generous ceiling


def test_a_choice_without_an_entry_is_named(table):
    arch = Architecture.uniform("resnet18", "se", reduction=8)  # tiny lists 4 and 16 only
    assert not table.covers(arch)
    with pytest.raises(LatencyError, match=r"se\(reduction=8\) in slot 0"):
        table.predict(arch)
    with pytest.raises(LatencyError, match="resnet18"):
        table.predict(Architecture.uniform("resnet50"))


def test_cheapest_is_the_per_slot_minimum(space, table):
    ms, arch = _fastest(table, space)
    assert ms == table.predict(arch)
    assert all(ms <= table.predict(a) for a in random_architectures(space, 30, seed=5))
    for unit in space.units:
        members = space.unit_slots(unit)
        best = min(sum(table.slots[s][c] for s in members) for c in table.slots[members[0]])
        assert sum(table.slots[s][arch.slots[s]] for s in members) == best
    with pytest.raises(LatencyError, match="no entry"):
        table.check_space(load_space("resnet18"))  # lists hyperparameters tiny does not


def test_load_or_build_reuses_checks_and_builds(space, table, tmp_path, monkeypatch):
    import attnsearch.latency as lat

    built = []
    monkeypatch.setattr(lat, "build_table", lambda *a, **k: built.append(1) or table)
    path = tmp_path / "t.json"
    first = load_or_build(path, space, SMALL)
    assert built == [1] and path.exists() and first is table
    again = load_or_build(path, space, SMALL)
    assert built == [1] and again.slots == table.slots
    with pytest.raises(LatencyError, match="batch 1, not 4"):
        load_or_build(path, space, Settings(input=(3, 32, 32), batch=4))
    assert load_or_build(path, space, Settings(input=(3, 32, 32), batch=4), force=True)
    with pytest.raises(LatencyError, match="no entry"):
        load_or_build(path, load_space("resnet18"), SMALL)


def test_random_architectures_are_seeded_and_valid(space):
    a = random_architectures(space, 10, seed=7)
    assert a == random_architectures(space, 10, seed=7)
    assert a != random_architectures(space, 10, seed=8)
    assert len({x.slots for x in a}) > 1
    for arch in a:  # stage granularity: one choice per stage
        for unit in space.units:
            assert len({arch.slots[s] for s in space.unit_slots(unit)}) == 1


def test_validate_reports_raw_and_corrected_errors(space, table):
    v = validate(table, space, 3, seed=11)
    s = v.summary()
    assert s["networks"] == 3 and s["seed"] == 11
    for key in ("raw_median_error", "raw_worst_error", "median_error", "worst_error"):
        assert s[key] >= 0 and math.isfinite(s[key])  # no bound: this machine may be loaded
    assert s["raw_worst_error"] >= s["raw_median_error"]
    errors = sorted(abs(r - m) / m for _, m, r, _ in v.rows)
    assert s["raw_median_error"] == errors[1] and s["raw_worst_error"] == errors[2]
    for _, measured, raw, pred in v.rows:
        assert measured > 0 and pred == pytest.approx(table.scale * raw)
    with pytest.raises(LatencyError):
        validate(table, space, 0)


# --------------------------------------------------------------------------- JSON


def test_round_trip_through_a_file(table, tmp_path):
    path = tmp_path / "t.json"
    table.save(path)
    back = LatencyTable.load(path, device="cpu", input=(3, 32, 32), batch=1, dtype="float32")
    assert back.slots == table.slots
    assert (back.stem_ms, back.head_ms, back.scale) == (table.stem_ms, table.head_ms, table.scale)
    assert back.settings == table.settings
    assert back.space == table.space and back.num_classes == table.num_classes
    assert back.to_json() == json.loads(path.read_text())
    keys = json.loads(path.read_text())["slots"][0]
    assert choice_key(SlotChoice("none", ())) in keys and '{"type":"none"}' in keys


@pytest.mark.parametrize(
    ("change", "check", "named"),
    [
        ({"device": "cuda"}, {"device": "cpu"}, "device kind cuda, not cpu"),
        ({"input": [3, 64, 64]}, {"input": (3, 32, 32)}, "input shape 3,64,64, not 3,32,32"),
        ({"batch": 8}, {"batch": 1}, "batch 8, not 1"),
        ({"dtype": "bfloat16"}, {"dtype": "float32"}, "dtype bfloat16, not float32"),
    ],
)
def test_refuses_a_table_measured_elsewhere_unless_forced(table, tmp_path, change, check, named):
    path = _written(table, tmp_path, **change)
    with pytest.raises(LatencyError, match=named) as e:
        LatencyTable.load(path, **check)
    assert "--force" in str(e.value) and "\n" not in str(e.value)
    forced = LatencyTable.load(path, force=True, **check)
    assert forced.slots == table.slots


@pytest.mark.parametrize(
    ("content", "named"),
    [
        ("not json", "not valid JSON"),
        ("[1, 2]", "not a latency table"),
        ('{"format": 99}', "unknown format"),
    ],
)
def test_malformed_files_are_input_errors(tmp_path, content, named):
    path = tmp_path / "bad.json"
    path.write_text(content)
    with pytest.raises(LatencyError, match=named):
        LatencyTable.load(path)


def test_bad_entries_are_named(table, tmp_path):
    data = table.to_json()
    data["slots"][2]['{"type":"none"}'] = -1
    path = tmp_path / "neg.json"
    path.write_text(json.dumps(data))
    with pytest.raises(LatencyError, match=r"slots\[2\]"):
        LatencyTable.load(path)
    data["slots"][2]['{"type":"none"}'] = 1.0
    del data["stem_ms"]
    path.write_text(json.dumps(data))
    with pytest.raises(LatencyError, match="stem_ms"):
        LatencyTable.load(path)
    with pytest.raises(LatencyError, match="cannot read"):
        LatencyTable.load(tmp_path / "missing.json")


def test_settings_are_validated():
    with pytest.raises(LatencyError, match="device"):
        Settings(device="tpu")
    with pytest.raises(LatencyError, match="dtype"):
        Settings(dtype="float16")
    with pytest.raises(LatencyError, match="batch"):
        Settings(batch=0)
    with pytest.raises(LatencyError, match="threads"):
        Settings(threads=0)
    with pytest.raises(LatencyError, match="estimator"):
        Settings(estimator="mean")


# --------------------------------------------------------------------------- CLI


def _run(capsys, *args):
    with pytest.raises(SystemExit) as info:
        main(list(args))
    out, err = capsys.readouterr()
    return (info.value.code or 0), out, err


FAST = ["--space", "tiny", "--input", "3,32,32", "--threads", "1", "--repeats", "1"]
FAST_MIN = [*FAST[:-1], "2", "--estimator", "min"]


def test_cli_builds_validates_and_writes(capsys, tmp_path):
    out_path = tmp_path / "lt.json"
    code, out, err = _run(
        capsys, "latency-table", *FAST_MIN, "--calibrate", "1", "--validate", "2",
        "-o", str(out_path), "--json",
    )  # fmt: skip
    assert code == 0, err
    info = json.loads(out)
    assert info["output"] == str(out_path) and info["threads"] == 1
    assert info["validation"]["networks"] == 2
    assert info["build_seconds"] > 0 and info["plain_ms"] > 0
    table = LatencyTable.load(out_path, device="cpu", input=(3, 32, 32))
    assert table.meta["validation"]["networks"] == 2
    assert table.settings.repeats == 2 and table.settings.estimator == "min"


def test_cli_prints_the_validation_table(capsys, tmp_path):
    code, out, err = _run(
        capsys, "latency-table", *FAST, "--calibrate", "0", "--validate", "2",
        "-o", str(tmp_path / "t.json"),
    )  # fmt: skip
    assert code == 0, err
    assert "median |error|" in out and "worst |error|" in out and "raw sum of parts" in out
    assert " s; scale 1.000" in out  # the time taken; no calibration networks -> scale 1
    assert "measuring:" in err  # plain progress lines when stderr is not a terminal


def test_one_rule_picks_the_default_device(capsys, tmp_path, monkeypatch):
    """settings.default_device is where a trial trains, where a run prices its latency
    budget and what latency-table measures on by default (--device auto): the README's
    "measure a table, then run on it" works on a GPU machine as on a CPU one."""
    import torch

    from attnsearch.cli._feasible import _latency_settings
    from attnsearch.settings import default_device
    from attnsearch.training import _device_for_trial

    for visible, kind in ((True, "cuda"), (False, "cpu")):
        monkeypatch.setattr(torch.cuda, "is_available", lambda v=visible: v)
        assert default_device() == kind == _latency_settings().device
        assert _device_for_trial() == torch.device(kind)
    monkeypatch.chdir(tmp_path)
    code, out, err = _run(capsys, "latency-table", *FAST, "--calibrate", "0", "--json")
    assert code == 0, err
    info = json.loads(out)
    assert info["device"] == "cpu" and Path(info["output"]).name.startswith("latency-tiny-cpu-")


def _bad(capsys, tmp_path, *args):
    before = set(os.listdir(tmp_path))
    code, out, err = _run(capsys, "latency-table", *args)
    assert code == 2, err
    assert "Traceback" not in err and len(err.strip().splitlines()) == 1, err
    assert set(os.listdir(tmp_path)) == before  # nothing created
    return err


def test_cli_refuses_cuda_without_a_gpu(capsys, tmp_path):
    import torch

    if torch.cuda.is_available():
        pytest.skip("a GPU is visible")
    err = _bad(capsys, tmp_path, *FAST, "--device", "cuda", "-o", str(tmp_path / "t.json"))
    assert "no CUDA device" in err


def test_cli_refuses_bad_inputs(capsys, tmp_path):
    o = ["-o", str(tmp_path / "t.json")]
    too_many = str((os.cpu_count() or 1) + 1)
    assert "between 1 and" in _bad(capsys, tmp_path, "--space", "tiny", "--threads", too_many, *o)
    assert "between 1 and" in _bad(capsys, tmp_path, "--space", "tiny", "--threads", "0", *o)
    assert "does not exist" in _bad(
        capsys, tmp_path, "--space", "tiny", "-o", str(tmp_path / "no" / "t.json")
    )
    assert "unknown space" in _bad(capsys, tmp_path, "--space", "nope", *o)
    assert "C,H,W" in _bad(capsys, tmp_path, "--space", "tiny", "--input", "3,32", *o)
    _bad(capsys, tmp_path, "--space", "tiny", "--batch", "0", *o)
    _bad(capsys, tmp_path, "--space", "tiny", "--dtype", "float16", *o)
    (tmp_path / "t.json").write_text("{}")
    assert "--force" in _bad(capsys, tmp_path, "--space", "tiny", *o)
    (tmp_path / "t.json").unlink()
    (tmp_path / "d").mkdir()
    assert "directory" in _bad(capsys, tmp_path, "--space", "tiny", "-o", str(tmp_path / "d"))


@pytest.mark.skipif(os.geteuid() == 0, reason="root writes anywhere")
def test_cli_refuses_an_unwritable_folder(capsys, tmp_path):
    ro = tmp_path / "ro"
    ro.mkdir()
    ro.chmod(0o500)
    try:
        assert "cannot write in" in _bad(capsys, ro, "--space", "tiny", "-o", str(ro / "t.json"))
    finally:
        ro.chmod(0o700)


def test_bfloat16_table_builds(tmp_path) -> None:
    """A dtype copy of the parts (bf16 here, like cuda) must not meet inference tensors."""
    from attnsearch.latency import Settings, build_table
    from attnsearch.spaces import load_space

    settings = Settings(dtype="bfloat16", input=(3, 32, 32), warmup=1, repeats=1, min_sample_ms=0)
    table = build_table(load_space("tiny"), settings, calibrate=0)
    assert table.stem_ms > 0 and table.head_ms > 0


# --------------------------------------------------------------------------- in the search
def test_latency_is_a_proposer_cost_repair_keeps_it_under_the_budget(space):
    """The table's prediction (ns, additive per slot) is the Proposer's cost: spread/repair
    hand out only candidates under the latency budget, told as ms; FLOPs recorded too."""
    import optuna

    from attnsearch.flops.analytic import analytic_flops
    from attnsearch.proposal import BudgetTooLowError, Proposer, make_sampler

    optuna.logging.set_verbosity(optuna.logging.ERROR)
    lat = synthetic_latency_table(space)
    options = space.options(0.25)
    fastest, _ = _fastest(lat, space, 0.25)
    budget_ms = fastest * 1.15
    cost = LatencyCost(lat)

    study = optuna.create_study(
        directions=["maximize", "minimize"], sampler=make_sampler("random", 0, 8)
    )
    prop = Proposer(study, space, options, int(budget_ms * 1e6), cost, "spread", seed=2)
    assert prop.min_cost == cost(_fastest(lat, space, 0.25)[1])
    for _ in range(8):
        trial, arch, c = prop.propose()
        assert lat.predict(arch) <= budget_ms * (1 + 1e-9)
        assert trial.user_attrs["latency_ms"] == c / 1e6
        assert trial.user_attrs["flops"] == analytic_flops(arch)
        prop.finish(trial, {"accuracy": 0.5, "epoch": 1})
        assert study.trials[trial.number].values == [0.5, c / 1e6]
    assert prop.over_budget > 0 and prop.repaired == prop.over_budget
    with pytest.raises(BudgetTooLowError, match="below the fastest"):
        Proposer(study, space, options, int(fastest * 1e6) - 10, cost)


def test_pareto_members_carry_latency_and_flops(space, tmp_path):
    import optuna

    from attnsearch.proposal import Proposer, make_sampler
    from attnsearch.results import pareto_members, storage_for
    from attnsearch.search import RunSettings

    lat = synthetic_latency_table(space)
    run_dir = tmp_path / "run"
    run_dir.mkdir()
    study = optuna.create_study(
        study_name="s",
        storage=storage_for(run_dir),
        directions=["maximize", "minimize"],
        sampler=make_sampler("tpe-mv", 0, 6),
    )
    budget = int(_fastest(lat, space, 0.25)[0] * 1.3e6)
    prop = Proposer(study, space, space.options(0.25), budget, LatencyCost(lat), "spread")
    for i in range(5):
        trial, arch, _ = prop.propose()
        prop.finish(trial, {"accuracy": 0.1 * i, "epoch": 1})
    members = pareto_members(run_dir, study)
    assert members
    for m in members:
        t = study.trials[m["trial"]]
        assert m["latency_ms"] == t.user_attrs["latency_ms"] == t.values[1]
        assert m["flops"] == t.user_attrs["flops"] and isinstance(m["flops"], int)
    assert RunSettings().budget is None  # a budget is given, never a default


def test_run_refuses_a_latency_budget_below_the_fastest_before_anything(space, tmp_path):
    """Issue 13: a latency budget below the fastest architecture is refused before Ray
    starts (and before the dataset loads): one line, exit 2, no run folder."""
    import subprocess
    import sys

    lat = synthetic_latency_table(space)
    path = tmp_path / "lat.json"
    lat.save(path)
    fastest = _fastest(lat, space, 0.5)[0]

    def run(*args):
        return subprocess.run(
            [sys.executable, "-m", "attnsearch", "run", "--space", "tiny", *args],
            cwd=tmp_path,
            capture_output=True,
            text=True,
            timeout=120,
        )

    for args, needle in (
        (["--budget", f"{fastest * 0.9:.4f}ms", "--latency-table", str(path)], "fastest"),
        (["--budget", "4G", "--latency-table", str(path)], "goes with a latency budget"),
    ):
        proc = run(*args)
        assert proc.returncode == 2, proc.stderr
        lines = proc.stderr.strip().splitlines()
        assert len(lines) == 1 and needle in lines[0] and "Traceback" not in proc.stderr
        assert not (tmp_path / "results").exists()
    data = lat.to_json()
    data["device"] = "cuda"
    (tmp_path / "gpu.json").write_text(json.dumps(data))
    proc = run("--budget", "25ms", "--latency-table", str(tmp_path / "gpu.json"))
    if not __import__("torch").cuda.is_available():
        assert proc.returncode == 2 and "device kind cuda, not cpu" in proc.stderr
        assert not (tmp_path / "results").exists()


@pytest.mark.slow
def test_latency_budget_search_end_to_end_and_export(space, tmp_path, ray_local):
    """A real (tiny) search under a latency budget: the front is on predicted latency,
    members carry latency_ms and flops, and export records the latency and the device."""
    import optuna
    from conftest import make_run

    from attnsearch.datasets import load_dataset
    from attnsearch.export import export_run
    from attnsearch.search import run_search

    lat = synthetic_latency_table(space)
    path = tmp_path / "lat.json"
    lat.save(path)
    budget_ms = _fastest(lat, space, 0.25)[0] * 1.2
    run = make_run(
        tmp_path / "results", "lat", Budget("latency", budget_ms), space="tiny",
        dataset="synthetic", trials=3, epochs=1, concurrency=2, width=0.25, batch_size=32,
        sampler="random", seed=1, latency_table=str(path),
    )  # fmt: skip
    data = load_dataset("synthetic", resolution=8, limit=96, seed=0)
    summary = run_search(run, space=space, dataset=data)
    assert summary["done"] == 3
    front = json.loads((run.path / "pareto.json").read_text())
    assert front
    for m in front:
        assert 0 < m["latency_ms"] <= budget_ms * (1 + 1e-9) and isinstance(m["flops"], int)
        assert m["latency_ms"] == pytest.approx(
            lat.predict(Architecture.from_json(m["architecture"])), rel=1e-6
        )
    from attnsearch.results import open_study

    study = open_study(run.path, run.record.study_name)
    for t in study.get_trials(states=(optuna.trial.TrialState.COMPLETE,)):
        assert t.values[1] == t.user_attrs["latency_ms"]
    out = tmp_path / "model.py"
    export_run(tmp_path / "results", "lat", out, best=True)
    code = out.read_text()
    assert "ms predicted" in code and "predicted_latency_ms" in code
    assert "latency_device" in code and "cpu" in code


# ---- a latency run's budget is labelled in time, wherever it is shown --------------------
def _latency_results(tmp_path):
    """``results/lat``: a latency-budget run (25 ms) with one trained trial, made through the
    library (no Ray, no training)."""
    import optuna
    from conftest import make_run

    from attnsearch.results import storage_for

    arch = Architecture.uniform("resnet18", "se")
    run = make_run(
        tmp_path / "results", "lat", parse_cost_budget("25ms"), width=0.25,
        dataset="synthetic", limit=64, latency_table="latency_table.json",
    )  # fmt: skip
    study = optuna.create_study(
        study_name=run.record.study_name,
        storage=storage_for(run.path),
        directions=["maximize", "minimize"],
    )
    attrs = {"architecture": arch.to_json(), "digest": arch.digest(), "flops": 1000,
             "latency_ms": 20.0, "trained": True, "tune_trial_id": "abc"}  # fmt: skip
    study.add_trial(
        optuna.trial.create_trial(
            state=optuna.trial.TrialState.COMPLETE, values=[0.5, 20.0], user_attrs=attrs
        )
    )
    return run, study


def test_budget_label_names_the_unit():
    from attnsearch.results import budget_label

    assert budget_label(parse_cost_budget("25ms")) == "budget 25 ms predicted latency"
    assert budget_label(parse_cost_budget("800us")) == "budget 800 µs predicted latency"
    assert budget_label(parse_cost_budget("4G")) == "budget 4 GFLOPs"
    assert budget_label(parse_cost_budget("350M")) == "budget 0.35 GFLOPs"  # the axis is in G


def test_a_latency_runs_plot_and_pareto_say_ms(tmp_path, monkeypatch, capsys):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    run, study = _latency_results(tmp_path)
    figures = []
    close = plt.close
    monkeypatch.setattr(plt, "close", lambda fig=None: figures.append(fig))
    monkeypatch.chdir(tmp_path)
    with pytest.raises(SystemExit) as e:
        main(["pareto", "lat"])
    assert e.value.code in (0, None)
    out = capsys.readouterr().out
    heading = next(line for line in out.splitlines() if "Pareto front under" in line)
    assert "25 ms predicted latency" in heading and "FLOPs" not in heading
    assert "latency" in out and "20 ms" in out  # the members' predicted latency, a column
    (fig,) = figures
    texts = [fig.axes[0].get_title()] + [t.get_text() for t in fig.axes[0].get_legend().texts]
    close(fig)
    assert "budget 25 ms predicted latency" in texts
    assert not any("GFLOPs" in t and "budget" in t for t in texts)
    summary = json.loads((run.path / "summary.json").read_text())
    assert summary["budget"] == {"kind": "latency", "value": 25.0, "text": "25ms"}
    assert (run.path / "pareto.png").read_bytes()[:4] == b"\x89PNG"
    # the figure the run is ranked on is a column of trials.csv and pareto.csv
    import csv

    from attnsearch.results import trial_rows

    for name in ("trials.csv", "pareto.csv"):
        with (run.path / name).open() as f:
            (row,) = list(csv.DictReader(f))
        assert float(row["latency_ms"]) == 20.0 and row["flops"] == "1000", name
    assert "latency_ms" not in trial_rows(study)[0]  # a FLOPs run's trials.csv has none


# ---- a given latency table travels with its run; a resume cannot swap it ---------------
def test_a_given_table_is_copied_into_the_run_and_a_resume_cannot_swap_it(
    space, tmp_path, monkeypatch, capsys
):
    """``run --latency-table FILE`` copies the table into the run folder (run.yaml names
    the copy, provenance the source), so a moved folder keeps pricing its budget with it;
    ``--resume --latency-table`` with another table, or ``--warm-start`` on a run that
    started without one, is refused (exit 2, one line), never ignored."""
    import shutil

    from conftest import make_run

    import attnsearch.search
    from attnsearch.rundir import RunDir

    def interrupted(rundir, **kwargs):  # stands in for the search: its study, no training
        import optuna

        from attnsearch.results import storage_for

        optuna.create_study(
            study_name=rundir.record.study_name, storage=storage_for(rundir.path),
            directions=["maximize", "minimize"], load_if_exists=True,
        )  # fmt: skip
        raise KeyboardInterrupt

    monkeypatch.setattr(attnsearch.search, "run_search", interrupted)
    monkeypatch.chdir(tmp_path)
    lat = synthetic_latency_table(space)
    lat.save(tmp_path / "lat.json")
    other = synthetic_latency_table(space, scale=1.5)
    other.save(tmp_path / "other.json")
    budget = f"{_fastest(lat, space, 0.25)[0] * 1.5:.4f}ms"
    args = ["run", "--space", "tiny", "--dataset", "synthetic", "--limit", "64", "--width",
            "0.25", "--budget", budget, "--name", "lat"]  # fmt: skip

    def call(*extra):
        with pytest.raises(SystemExit) as e:
            main([*args, *extra])
        return e.value.code, capsys.readouterr().err

    code, err = call("--latency-table", "lat.json")
    assert code == 130, err
    run = RunDir.open(tmp_path / "results", "lat")
    assert run.settings.latency_table == "latency_table.json"
    assert json.loads(run.latency_table.read_text()) == json.loads(
        (tmp_path / "lat.json").read_text()
    )
    assert run.record.provenance["latency_table_from"] == str((tmp_path / "lat.json").resolve())
    (tmp_path / "lat.json").unlink()  # the source may go: the run has its copy
    shutil.move(tmp_path / "results", tmp_path / "moved")
    before = {p.name: p.read_bytes() for p in (tmp_path / "moved" / "lat").iterdir() if p.is_file()}
    moved = ["--results-dir", "moved", "--resume"]
    for extra, needle in (
        (["--latency-table", "other.json"], "not the table the search being resumed"),
        (["--warm-start", "src"], "started with no warm start"),
    ):
        if extra[0] == "--warm-start":
            make_run(tmp_path / "moved", "src", 10**9, space="tiny", width=0.25)
        code, err = call(*moved, *extra)
        assert code == 2, err
        lines = err.strip().splitlines()
        assert len(lines) == 1 and needle in lines[0] and "Traceback" not in err
        after = {
            p.name: p.read_bytes() for p in (tmp_path / "moved" / "lat").iterdir() if p.is_file()
        }
        assert after == before  # nothing written
    from attnsearch.cli._resume import _same_start

    lat.save(tmp_path / "same.json")  # the same table under another name: accepted
    run = RunDir.open(tmp_path / "moved", "lat")
    _same_start({"latency_table": "same.json"}, {"latency_table"}, run.settings, run)
