"""References and repeats: stored trials, enqueued from the storage, never counted twice.

Fast tests drive the Ray-free core (:class:`attnsearch.proposal.Proposer`) over a real
Optuna journal with made-up accuracies (no training); the slow one kills a real run.
"""

from __future__ import annotations

import json
import math
import statistics

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
    Noise,
    front_on_means,
    measurements,
    signal,
    storage_for,
    unseparated,
    verdict,
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


def _member(trial: int, accs: list[float]) -> dict:
    """A pareto.json member as results._keys writes it: the first seed selected it."""
    return {
        "trial": trial, "accuracy": sum(accs) / len(accs), "accuracies": accs,
        "selection_seed": trial, "fresh_seeds": list(range(100, 100 + len(accs) - 1)),
        "fresh_accuracies": accs[1:],
    }  # fmt: skip


def _ref(name: str, accs: list[float], fits: bool = True) -> dict:
    return {
        "name": name, "fits": fits, "accuracy": sum(accs) / len(accs), "accuracies": accs,
        "selection_seed": None, "fresh_seeds": list(range(len(accs))), "fresh_accuracies": accs,
    }  # fmt: skip


def test_verdict_uses_the_pooled_test_and_leaves_the_selection_seed_out():
    noise = Noise(0.01, 6)  # pooled seed sd 1 point on 6 df
    member = _member(3, [0.95, 0.81, 0.80])  # the lucky 0.95 put it on the front
    ref = _ref("R", [0.70, 0.71, 0.69])
    over = _ref("O", [0.99, 0.98], fits=False)
    v = verdict([member], [ref, over], noise)
    assert v["reference"] == "R" and v["beat"] and v["beyond_noise"]
    assert v["accuracy"] == pytest.approx(0.805)  # fresh seeds only, not 0.853
    assert v["difference"] == pytest.approx(0.105) and "+10.50 points" in v["text"]
    assert (
        v["selection_seed"] == 3 and v["seeds"] == [100, 101] and v["reference_seeds"] == [0, 1, 2]
    )
    # by hand: t = 0.105 / (0.01 * sqrt(1/2 + 1/3)), df 6
    assert v["t"] == pytest.approx(0.105 / (0.01 * math.sqrt(1 / 2 + 1 / 3))) and v["df"] == 6
    # the selection seed alone would "beat" R; the fresh seeds do not
    lucky = _member(4, [0.95, 0.70])
    v = verdict([lucky], [ref], noise)
    assert v["beyond_noise"] is False and "within noise" in v["text"]
    assert verdict([member], [over], noise)["reference"] is None
    only = verdict([_member(5, [0.99])], [ref], noise)
    assert only["beat"] is None and "not judged" in only["text"]
    unmeasured = verdict([member], [ref], Noise(None, 0))
    assert unmeasured["beyond_noise"] is None and "noise not measured" in unmeasured["text"]
    # one schema whatever the case (summary.json's readers index it without checks)
    from attnsearch.results._front import VERDICT_KEYS

    cases = [v, only, unmeasured, verdict([], [ref], noise), verdict([member], [over], noise)]
    assert all(tuple(c) == VERDICT_KEYS for c in cases)


def test_the_table_and_the_verdict_cannot_disagree_where_the_old_tests_did():
    """c78fd9f: the intervals used the pooled sd (≈ 5 points) and called the pair "not
    separated", the verdict used each arm's own two seeds (sd 1.2 points) and said "beyond
    noise". Now both come from one test."""
    noise = Noise(0.06, 4)
    member = _member(14, [0.88, 0.853, 0.836])  # fresh seeds agree closely
    ref = _ref("ResNet-50", [0.709, 0.726])
    v = verdict([member], [ref], noise)
    assert unseparated(member, ref, noise) and v["beyond_noise"] is False
    assert "not separated" in v["text"]


@pytest.mark.parametrize("seed", range(40))
def test_verdict_agrees_with_the_unseparated_mark(seed):
    import random

    rng = random.Random(seed)
    noise = Noise(rng.uniform(0.001, 0.08), rng.randint(1, 20))
    member = _member(1, [rng.uniform(0.3, 0.9) for _ in range(rng.randint(2, 4))])
    ref = _ref("R", [rng.uniform(0.3, 0.9) for _ in range(rng.randint(1, 4))])
    v = verdict([member], [ref], noise)
    assert v["beyond_noise"] is (not unseparated(member, ref, noise))


def test_signal_line_against_a_hand_computation(tmp_path):
    """Three search trials (one repeated) and a reference with two seeds: the between sd
    from one unselected run per architecture, the seed sd pooled over the two groups."""
    lib = Library(tmp_path, references="fit", trials=3)
    lib.extras()
    lib.drive()
    ms = measurements(lib.study)
    firsts = [m.accuracies[0] for m in [*ms.search, *ms.references.values()]]
    groups = [m.accuracies for m in [*ms.search, *ms.references.values()] if len(m.accuracies) > 1]
    ss = sum((len(g) - 1) * statistics.variance(g) for g in groups)
    df = sum(len(g) - 1 for g in groups)
    within = math.sqrt(ss / df)
    between = math.sqrt(max(0.0, statistics.variance(firsts) - within**2))
    sig = signal(ms)
    assert sig["seed_sd"] == pytest.approx(within) and sig["seed_df"] == df
    assert sig["between_sd"] == pytest.approx(between)
    assert sig["architectures"] == len(firsts) and sig["seed_runs"] == sum(map(len, groups))
    assert sig["ratio"] == pytest.approx(between / within)
    assert f"{100 * between:.2f} points" in sig["text"] and f"df {df}" in sig["text"]
    assert ("cannot separate" in sig["text"]) is (between / within < 2)
    saved = write_results(lib.run, lib.study)
    assert saved["signal"] == sig and saved["noise"]["runs"] == sum(map(len, groups))
    # a reference names the members it is not separated from, as the members name it
    for ref in saved["references"]:
        for m in saved["members"]:
            if ref["name"] in m["unseparated"]:
                assert f"trial {m['trial']}" in ref["unseparated"]
        named = {int(x.split()[1]) for x in ref["unseparated"]}
        assert named <= {m["trial"] for m in saved["members"]}


def test_signal_says_plainly_when_the_proxy_cannot_separate():
    from attnsearch.results import Measured, Measurements

    rec = TrialRecord()
    search = [Measured(i, rec, [a], [i], [i], True) for i, a in enumerate([0.50, 0.51, 0.49])]
    ref = Measured(9, rec, [0.50, 0.53], [9, 10], [9, 10])
    ms = Measurements(search, {"R": ref}, Noise(0.0212, 1, 1, 2), {}, {})
    sig = signal(ms)
    assert sig["separates"] is False and "cannot separate these candidates" in sig["text"]
    assert "not measured" in signal(Measurements(search, {}, Noise(None, 0), {}, {}))["text"]


def test_signal_with_no_seed_noise_is_strict_json_and_says_why():
    """Repeats that agree to the digit (seed sd 0): with spread the ratio is unbounded, with
    none it is undefined; either way summary.json stays strict JSON (null, not Infinity or
    NaN) and the text names the case."""
    import json

    from attnsearch.results import Measured, Measurements
    from attnsearch.safeio import json_dumps

    rec = TrialRecord()
    ref = Measured(9, rec, [0.50, 0.50], [9, 10], [9, 10])
    for accs, shown, separates in (
        ([0.40, 0.60, 0.80], "ratio unbounded (seed sd 0)", True),
        ([0.50, 0.50, 0.50], "ratio undefined (no spread, seed sd 0)", False),
    ):
        search = [Measured(i, rec, [a], [i], [i], True) for i, a in enumerate(accs)]
        sig = signal(Measurements(search, {"R": ref}, Noise(0.0, 1, 1, 2), {}, {}))
        assert shown in sig["text"] and sig["separates"] is separates
        assert ("cannot separate" in sig["text"]) is (not separates)
        assert json.loads(json_dumps(sig))["ratio"] is None
    with pytest.raises(ValueError):
        json.dumps(float("inf"), allow_nan=False)  # what json_dumps relies on
    assert json_dumps({"a": [float("nan"), 1.0, (float("-inf"),)]}) == '{"a": [null, 1.0, [null]]}'


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


def test_zero_seed_noise_gives_strict_json():
    """Identical seeds (pooled sd 0) separate any two different means; the infinite t is
    written as null, so summary.json stays strict JSON."""
    v = verdict([_member(1, [0.9, 0.8])], [_ref("R", [0.7, 0.7])], Noise(0.0, 2))
    assert v["beyond_noise"] is True and v["t"] is None
    json.dumps(v, allow_nan=False)
