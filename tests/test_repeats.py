"""References and repeats: stored trials, enqueued from the storage, never counted twice.

Fast tests drive the Ray-free core (:class:`attnsearch.proposal.Proposer`) over a real
Optuna journal with made-up accuracies (no training); the slow one kills a real run.
"""

from __future__ import annotations

import json
import math

import optuna
import pytest
from conftest import make_run

from attnsearch import Architecture
from attnsearch.flops.analytic import analytic_flops
from attnsearch.proposal import ask
from attnsearch.references import references_for
from attnsearch.results import (
    ROLE_REFERENCE,
    ROLE_REPEAT,
    front_on_means,
    measurements,
    storage_for,
    verdict,
    welch,
    write_results,
)
from attnsearch.rundir import FailKind, TrialRecord
from attnsearch.search import Proposer, reconcile
from attnsearch.search._driver import done_count, enqueue_extras
from attnsearch.spaces import load_space

PLAIN_R18 = analytic_flops(Architecture.uniform("resnet18"))
K = 3  # seeds per reference and per re-evaluated trial


def _accuracy(arch_json: dict, number: int) -> float:
    """A made-up accuracy: a per-architecture level plus seed noise of ±0.01."""
    level = int(Architecture.from_json(arch_json).digest()[:6], 16) % 50 / 100 + 0.3
    return level + (0.01 if number % 2 else -0.01)


class Library:
    """A run whose study is built through the library (no Ray, no training)."""

    def __init__(self, tmp_path, references="all", trials=6):
        self.run = make_run(
            tmp_path, "lib", PLAIN_R18, space="tiny", dataset="synthetic", trials=trials,
            epochs=1, width=0.25, sampler="random", seed=2, repeats=K, references=references,
        )  # fmt: skip
        self.space = load_space("tiny")
        self.settings = self.run.settings
        self.refs = references_for(
            self.space, width=0.25, budget=PLAIN_R18, mode=self.settings.references
        )
        self.study = optuna.create_study(
            study_name=self.run.record.study_name,
            storage=storage_for(self.run.path),
            directions=["maximize", "minimize"],
            sampler=optuna.samplers.RandomSampler(seed=2),
            load_if_exists=True,
        )
        self.core = Proposer(self.study, self.space, self.space.options(0.25), PLAIN_R18)

    def extras(self) -> int:
        done = done_count(self.study) >= self.settings.trials
        return enqueue_extras(self.study, self.settings, self.space, self.refs, search_done=done)

    def waiting(self) -> int:
        states = (optuna.trial.TrialState.WAITING,)
        return len(self.study.get_trials(deepcopy=False, states=states))

    def train(self, n: int) -> None:
        """Ask and finish ``n`` trials as the Tune searcher does."""
        for _ in range(n):
            trial, config = ask(self.core)
            acc = _accuracy(config["architecture"], trial.number)
            self.core.finish(trial, {"accuracy": acc, "flops": config["flops"], "epoch": 1})

    def drive(self) -> None:
        """The driver's loop, without Ray."""
        while True:
            remaining = max(0, self.settings.trials - done_count(self.study))
            self.extras()
            if remaining + self.waiting() == 0:
                return
            self.train(remaining + self.waiting())

    def by_role(self, role):
        return [t for t in self.study.get_trials() if t.user_attrs.get("role") == role]


def test_references_enqueued_once_and_trained_even_over_budget(tmp_path):
    lib = Library(tmp_path)
    names = {r.name: r.fits for r in lib.refs}
    assert names == {"ResNet-18": True, "RFA-ResNet-18": False}
    assert lib.extras() == K * len(names)
    assert lib.extras() == 0, "enqueued references are counted: never asked twice"
    lib.train(lib.waiting())
    refs = lib.by_role(ROLE_REFERENCE)
    assert len(refs) == K * len(names)
    for t in refs:
        r = TrialRecord.of(t)
        assert t.state == optuna.trial.TrialState.COMPLETE and r.trained
        assert r.seed == t.number and r.fits == names[r.reference]
    assert done_count(lib.study) == 0, "references do not count towards --trials"
    assert lib.extras() == 0


def test_repeats_front_on_means_and_contract(tmp_path):
    lib = Library(tmp_path)
    lib.drive()
    study, ms = lib.study, measurements(lib.study)
    assert done_count(study) == lib.settings.trials
    assert len(ms.search) == lib.settings.trials  # search trials only
    repeats = lib.by_role(ROLE_REPEAT)
    assert repeats
    seeds_of = {}
    for t in repeats:
        r = TrialRecord.of(t)
        assert r.seed == t.number and study.trials[r.repeat_of].params == t.params
        seeds_of[r.repeat_of] = seeds_of.get(r.repeat_of, 0) + 1
    assert set(seeds_of.values()) == {K - 1}, "each re-evaluated trial has exactly K seeds"
    summary = write_results(lib.run, study)
    members = json.loads((lib.run.path / "pareto.json").read_text())
    assert members == summary["members"] and members
    repeat_numbers = {t.number for t in repeats}
    ref_numbers = {t.number for t in lib.by_role(ROLE_REFERENCE)}
    for m in members:
        assert m["trial"] not in repeat_numbers | ref_numbers
        assert len(m["accuracies"]) == K and m["accuracy"] == pytest.approx(
            sum(m["accuracies"]) / K
        )
        assert m["accuracy_std"] == pytest.approx(0.01 * math.sqrt(K / (K - 1)), rel=0.2)
        assert m["flops"] <= PLAIN_R18
        lo, hi = m["interval95"]
        assert lo < m["accuracy"] < hi
    # the front is non-dominated on means, and every front member was repeated
    assert {m["trial"] for m in members} <= set(seeds_of)
    means = {m.trial: (m.mean, m.record.flops) for m in ms.search}
    for m in members:
        assert not any(
            a >= m["accuracy"] and f <= m["flops"] and (a, f) != (m["accuracy"], m["flops"])
            for a, f in means.values()
        )
    saved = json.loads((lib.run.path / "summary.json").read_text())
    refs = {r["name"]: r for r in saved["references"]}
    assert not refs["RFA-ResNet-18"]["fits"] and refs["ResNet-18"]["fits"]
    for r in refs.values():
        assert len(r["accuracies"]) == K and set(members[0]) - {"trial", "tune_trial_id"} <= set(
            r
        ) | {"unseparated"}
    assert saved["verdict"]["reference"] == "ResNet-18"
    assert saved["counts"]["complete"] == lib.settings.trials
    assert saved["counts"]["references"] == 2 * K
    assert saved["counts"]["repeats"] == len(repeats)


def test_interrupted_extras_are_asked_again_once_after_reconcile(tmp_path):
    """A repeat asked when the driver died (RUNNING in the storage, as after SIGKILL) and
    a repeat still WAITING: after reconcile the dead one is asked again, the waiting one
    is kept, and every re-evaluated trial ends with exactly K seeds."""
    lib = Library(tmp_path, references="fit")
    lib.extras()
    lib.train(lib.waiting())
    lib.train(lib.settings.trials)
    assert lib.extras() > 1
    dead, _ = ask(lib.core)  # asked, never finished: the driver was killed here
    waiting_before = lib.waiting()
    reruns = reconcile(lib.run, lib.study)
    assert [r.trial for r in reruns] == []  # never started (no execution recorded)
    frozen = lib.study.trials[dead.number]
    assert frozen.state == optuna.trial.TrialState.FAIL
    assert TrialRecord.of(frozen).fail_kind == FailKind.NEVER_STARTED
    assert lib.extras() == 1, "only the dead repeat is asked again"
    assert lib.waiting() == waiting_before + 1
    assert lib.extras() == 0
    lib.drive()
    ms = measurements(lib.study)
    front = front_on_means(ms.search)
    for m in front:
        assert len(m.accuracies) == K
    per = {}
    for t in lib.by_role(ROLE_REPEAT):
        if t.state == optuna.trial.TrialState.COMPLETE:
            per[t.user_attrs["repeat_of"]] = per.get(t.user_attrs["repeat_of"], 0) + 1
    assert set(per.values()) == {K - 1}
    assert len(lib.by_role(ROLE_REFERENCE)) == K  # ResNet-18 only (fit)
    assert done_count(lib.study) == lib.settings.trials


def test_welch_and_verdict():
    a, b = [0.80, 0.82, 0.81], [0.70, 0.71, 0.69]
    t, df = welch(a, b)
    # by hand: means 0.81 / 0.70, sd 0.01 each, se = sqrt(2 * 0.0001 / 3)
    assert t == pytest.approx(0.11 / math.sqrt(2e-4 / 3)) and df == pytest.approx(4.0)
    member = {"trial": 3, "accuracy": 0.81, "accuracies": a}
    ref = {"name": "R", "fits": True, "accuracy": 0.70, "accuracies": b}
    over = {"name": "O", "fits": False, "accuracy": 0.99, "accuracies": [0.99, 0.98]}
    v = verdict([member], [ref, over])
    assert v["reference"] == "R" and v["beat"] and v["beyond_noise"]
    assert v["difference"] == pytest.approx(0.11) and "+11.00 points" in v["text"]
    close = verdict([member], [{**ref, "accuracy": 0.805, "accuracies": [0.78, 0.83]}])
    assert close["beyond_noise"] is False and "within noise" in close["text"]
    assert verdict([member], [over])["reference"] is None


def _storage_trials(run_dir):
    from attnsearch.results import open_study
    from attnsearch.rundir import RunDir

    try:
        name = RunDir.open(run_dir.parent, run_dir.name).record.study_name
        return open_study(run_dir, name).trials
    except Exception:
        return []


@pytest.mark.slow
def test_repeats_survive_sigkill_and_resume(tmp_path):
    """The driver is killed while a repeat trains; the resumed run asks it again, and in the
    end every reference and every re-evaluated trial has exactly K seeds: none lost, none
    doubled, none counted towards --trials."""
    import os
    import signal
    import subprocess
    import sys
    import time

    from conftest import cli

    args = [
        "--budget", "1.9G", "--space", "tiny", "--dataset", "synthetic", "--limit", "600",
        "--resolution", "8", "--width", "0.25", "--epochs", "2", "--concurrency", "2",
        "--sampler", "random", "--seed", "4", "--trials", "3", "--repeats", "2",
        "--references", "fit", "--name", "kill",
    ]  # fmt: skip
    proc = subprocess.Popen(
        [sys.executable, "-m", "attnsearch", "run", *args],
        cwd=tmp_path,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )
    run_dir = tmp_path / "results" / "kill"
    end = time.time() + 600
    while True:
        running = [
            t
            for t in _storage_trials(run_dir)
            if t.state == optuna.trial.TrialState.RUNNING and t.user_attrs.get("role") == "repeat"
        ]
        if running:
            break
        if proc.poll() is not None:
            pytest.fail(f"driver ended before a repeat ran ({proc.returncode}): {proc.stderr}")
        if time.time() > end:
            pytest.fail("timed out waiting for a repeat to run")
        time.sleep(0.3)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait(timeout=30)
    killed = {t.number for t in running}
    resumed = cli("run", "--name", "kill", "--resume", cwd=tmp_path)
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    trials = _storage_trials(run_dir)
    for n in killed:
        assert trials[n].state == optuna.trial.TrialState.FAIL
    complete = [t for t in trials if t.state == optuna.trial.TrialState.COMPLETE]
    search = [t for t in complete if t.user_attrs.get("trained") and "role" not in t.user_attrs]
    assert len(search) == 3
    refs = [t for t in complete if t.user_attrs.get("role") == ROLE_REFERENCE]
    assert sorted(t.user_attrs["reference"] for t in refs) == ["ResNet-18"] * 2
    per: dict[int, int] = {}
    for t in complete:
        if t.user_attrs.get("role") == ROLE_REPEAT:
            per[t.user_attrs["repeat_of"]] = per.get(t.user_attrs["repeat_of"], 0) + 1
    assert per and set(per.values()) == {1}, "exactly one repeat per trial at --repeats 2"
    assert {m["trial"] for m in json.loads((run_dir / "pareto.json").read_text())} <= set(per)
