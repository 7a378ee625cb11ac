"""The Ray-free ask → budget → tell core: repair, policies, storage honesty, samplers."""

from __future__ import annotations

import warnings

import optuna
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from attnsearch.cost import FlopsCost
from attnsearch.errors import InputError
from attnsearch.proposal import (
    CONSTRAINT,
    BudgetTooLowError,
    Proposer,
    make_sampler,
    repair,
    warm_start,
)
from attnsearch.spaces import load_space, space_names

optuna.logging.set_verbosity(optuna.logging.ERROR)
warnings.filterwarnings("ignore", category=optuna.exceptions.ExperimentalWarning)

G = 10**9
WIDTHS = (1.0, 0.5, 0.25)


_SETUP: dict = {}


def _setup(name: str, width: float):
    key = (name, width)
    if key not in _SETUP:
        space = load_space(name)
        options = space.options(width)
        cost = FlopsCost(space)
        cheapest_arch = cost.cheapest(space, options)
        cheapest = space.unit_choices(cheapest_arch, options)
        flat = [[c for cs in per.values() for c in cs] for per in options]
        dearest = max(cost(cost.dearest(space, options)), 1)
        _SETUP[key] = (space, options, cost, cheapest_arch, cheapest, flat, dearest)
    return _SETUP[key]


def _study(sampler=None):
    return optuna.create_study(
        directions=["maximize", "minimize"], sampler=sampler or optuna.samplers.RandomSampler(0)
    )


@settings(max_examples=60, deadline=None, suppress_health_check=list(HealthCheck))
@given(
    name=st.sampled_from(space_names()),
    width=st.sampled_from(WIDTHS),
    picks=st.lists(st.integers(0, 10**6), min_size=16, max_size=16),
    frac=st.floats(0.0, 1.0),
)
def test_repair_is_feasible_valid_and_in_space(name, width, picks, frac):
    space, options, cost, cheapest_arch, cheapest, flat, dearest = _setup(name, width)
    params = {}
    from attnsearch.architecture import Architecture, SlotChoice
    from attnsearch.backbones import BACKBONES

    slots = [SlotChoice("none", ())] * BACKBONES[space.backbone].num_slots
    for i, (unit, choices) in enumerate(zip(space.units, flat, strict=True)):
        c = choices[picks[i % len(picks)] % len(choices)]
        for s in space.unit_slots(unit):
            slots[s] = c
    arch = Architecture(space.backbone, tuple(slots), space.num_classes, space.input)
    lo = cost(cheapest_arch)
    budget = int(lo + frac * (max(dearest, cost(arch)) - lo))
    fixed = repair(space, arch, budget, cost, cheapest)
    assert cost(fixed) <= budget
    # valid: a fresh Architecture validates every slot; expressible at this width
    again = Architecture.from_json(fixed.to_json())
    assert again == fixed
    params = space.params(fixed, options)
    assert space.sample(optuna.trial.FixedTrial(params), options) == fixed
    if cost(arch) <= budget:
        assert fixed == arch  # nothing to repair: unchanged
    else:
        changed = [
            u
            for u in space.units
            if fixed.slots[space.unit_slots(u)[0]] != arch.slots[space.unit_slots(u)[0]]
        ]
        assert changed and all(
            fixed.slots[space.unit_slots(u)[0]] == cheapest[space.units.index(u)] for u in changed
        )


def test_budget_below_cheapest_is_input_error():
    space = load_space("resnet50")
    options = space.options(0.5)
    lo = Proposer(_study(), space, options, 4 * G).min_cost
    cost = FlopsCost(space)
    assert lo == cost(cost.cheapest(space, options))
    with pytest.raises(BudgetTooLowError, match="cheapest"):
        Proposer(_study(), space, options, lo - 1)
    assert issubclass(BudgetTooLowError, InputError)
    with pytest.raises(InputError, match="reject, repair, spread"):
        Proposer(_study(), space, options, 4 * G, policy="clip")


def _drive(proposer, n, concurrency=1):
    out = []
    while len(out) < n:
        batch = [proposer.propose() for _ in range(concurrency)]
        for trial, arch, cost in batch:
            assert cost <= proposer.budget
            proposer.tell(trial, [sum(s.type != "none" for s in arch.slots) / 16, float(cost)])
            out.append((trial.number, arch, cost))
    return out


@pytest.mark.parametrize("policy", ["reject", "repair", "spread"])
def test_storage_holds_no_made_up_accuracy(tmp_path, policy):
    space = load_space("resnet50")
    options = space.options(0.5)
    path = tmp_path / "study.journal"
    storage = optuna.storages.JournalStorage(optuna.storages.journal.JournalFileBackend(str(path)))
    budget = int(4.1 * G)
    study = optuna.create_study(
        study_name="s",
        storage=storage,
        directions=["maximize", "minimize"],
        sampler=make_sampler("tpe-mv", 0, 16),
    )
    proposer = Proposer(study, space, options, budget, policy=policy, seed=1)
    trained = _drive(proposer, 12)
    assert proposer.over_budget > 0  # the check below has something to check
    loaded = optuna.load_study(study_name="s", storage=storage)
    trials = loaded.get_trials()
    numbers = {n for n, _, _ in trained}
    for t in trials:
        if t.number in numbers:
            assert t.state == optuna.trial.TrialState.COMPLETE and t.user_attrs["trained"]
            assert t.values is not None and t.constraints[CONSTRAINT] <= 0
        else:
            assert t.values is None, (t.number, t.state, t.values)
            assert t.user_attrs.get("trained") is False
            assert t.user_attrs.get("over_budget") or "invalid" in t.user_attrs
            if t.user_attrs.get("over_budget"):
                assert t.constraints[CONSTRAINT] > 0
    assert len(trials) == proposer.asked


@pytest.mark.parametrize("policy", ["repair", "spread"])
def test_repair_tells_the_repaired_parameters(policy):
    space = load_space("resnet50")
    options = space.options(0.5)
    study = _study()
    proposer = Proposer(study, space, options, 4 * G, policy=policy, seed=3)
    trained = _drive(proposer, 10)
    assert proposer.repaired == proposer.over_budget > 0
    by_number = {t.number: t for t in study.get_trials()}
    for number, arch, _ in trained:
        t = by_number[number]
        assert t.params == space.params(arch, options)  # what the sampler learns from
        origin = t.user_attrs.get("repaired_from")
        if origin is not None:
            source = by_number[origin]
            assert source.user_attrs["repaired_to"] == arch.digest()
            assert source.state == optuna.trial.TrialState.PRUNED
    # every trained trial was either feasible as sampled or repaired; nothing else is wasted
    assert proposer.asked == len(trained) + proposer.over_budget + proposer.invalid


def test_spread_targets_cover_the_feasible_range():
    space = load_space("resnet50")
    options = space.options(0.5)
    proposer = Proposer(_study(), space, options, 4 * G, policy="spread", seed=0)
    targets = [proposer.target(n) for n in range(200)]
    assert min(targets) >= proposer.min_cost and max(targets) <= 4 * G
    span = 4 * G - proposer.min_cost
    assert min(targets) < proposer.min_cost + 0.1 * span and max(targets) > 4 * G - 0.1 * span
    costs = [c for _, _, c in _drive(proposer, 20)]
    assert min(costs) < proposer.min_cost + 0.5 * span  # not all piled under the budget
    assert Proposer(_study(), space, options, 4 * G, policy="repair").target(5) == 4 * G


@pytest.mark.parametrize(
    ("sampler", "policy", "conc"),
    [("tpe-mv", "repair", 1), ("tpe", "spread", 2), ("nsga2", "reject", 1)],
)
def test_same_seed_same_trials(sampler, policy, conc):
    space = load_space("resnet50")
    options = space.options(0.5)
    budget = int(4.15 * G) if policy == "reject" else 4 * G

    def run():
        study = _study(make_sampler(sampler, 7, 12, conc))
        proposer = Proposer(study, space, options, budget, policy=policy, seed=7)
        _drive(proposer, 12, conc)
        return [(t.number, t.params, t.state) for t in study.get_trials()]

    first = run()
    assert first == run()
    study = _study(make_sampler(sampler, 8, 12, conc))
    _drive(Proposer(study, space, options, budget, policy=policy, seed=8), 12, conc)
    assert [t.params for t in study.get_trials()] != [p for _, p, _ in first]


def test_make_sampler():
    assert isinstance(make_sampler("random", 0, 10), optuna.samplers.RandomSampler)
    assert isinstance(make_sampler("nsga2", 0, 60), optuna.samplers.NSGAIISampler)
    tpe = make_sampler("tpe", 0, 30, 4)
    assert isinstance(tpe, optuna.samplers.TPESampler)
    assert tpe._multivariate and tpe._group and tpe._constant_liar
    assert not make_sampler("tpe", 0, 30, 1)._constant_liar
    assert not make_sampler("tpe-mv", 0, 30, 1)._group
    with pytest.raises(InputError, match="unknown sampler"):
        make_sampler("cmaes", 0, 10)
    try:
        import scipy  # noqa: F401
    except ImportError:
        with pytest.raises(InputError, match="scipy"):
            make_sampler("gp", 0, 10)
    else:
        assert isinstance(make_sampler("gp", 0, 10), optuna.samplers.GPSampler)


def test_warm_start_copies_finished_trials():
    space = load_space("resnet50")
    options = space.options(0.5)
    source = _study()
    _drive(Proposer(source, space, options, 4 * G, policy="repair"), 6)
    target = _study(make_sampler("tpe-mv", 0, 10))
    n = warm_start(target, source, space, options)
    finished = [t for t in source.get_trials() if t.state.is_finished()]
    assert n == len(finished) == len(target.get_trials())
    for a, b in zip(finished, target.get_trials(), strict=True):
        assert (a.params, a.values, a.state, a.constraints) == (
            b.params,
            b.values,
            b.state,
            b.constraints,
        )
        assert b.user_attrs["warm_start_from"].endswith(f"#{a.number}")
    # the target goes on searching from the copied trials
    proposer = Proposer(target, space, options, 4 * G, policy="repair")
    _drive(proposer, 2)
    other = load_space("resnet50-stages")
    foreign = _study()
    _drive(Proposer(foreign, other, other.options(0.5), 4 * G, policy="repair"), 2)
    with pytest.raises(InputError, match="same space"):
        warm_start(_study(), foreign, space, options)


def test_genetic_sampler_leaves_its_first_generation_under_repair():
    """Repaired trials are fully fixed; they inherit the original's NSGA-II generation."""
    space = load_space("resnet50")
    options = space.options(0.5)
    study = _study(make_sampler("nsga2", 0, 24))  # population 8
    _drive(Proposer(study, space, options, 4 * G, policy="spread"), 30)
    key = "NSGAIISampler:generation"
    complete = study.get_trials(states=(optuna.trial.TrialState.COMPLETE,))
    assert all(key in t.system_attrs for t in complete)
    assert max(t.system_attrs[key] for t in complete) >= 2


# ---- the Ray Tune searcher: a thin adapter over the Proposer (driven without Ray) ---------
def _searcher(space, budget, *, sampler="tpe-mv", policy="spread", seed=0, **kw):
    from attnsearch.search._searcher import BudgetedOptunaSearch

    return BudgetedOptunaSearch(
        space,
        space.options(0.5),
        budget,
        policy=policy,
        seed=seed,
        sampler=make_sampler(sampler, seed, 12),
        **kw,
    )


def _train(searcher, n, *, start=0):
    """Suggest and complete ``n`` trials as Tune would; returns their configs."""
    configs = []
    for i in range(start, start + n):
        config = searcher.suggest(f"t{i}")
        assert isinstance(config, dict), config
        acc = sum(s["type"] != "none" for s in config["architecture"]["slots"]) / 16
        searcher.on_trial_complete(f"t{i}", {"accuracy": acc, "epoch": 1, **config})
        configs.append(config)
    return configs


def test_searcher_drives_the_proposer_same_seed_same_trials():
    """The one ask → budget → tell core behind Tune: the same seed gives the same trials, a
    different one others; every config is under the budget and recorded as the trial's."""
    from attnsearch.rundir import TrialRecord

    space = load_space("resnet50")

    def run(seed):
        searcher = _searcher(space, 4 * G, seed=seed)
        configs = _train(searcher, 8)
        assert all(c["flops"] <= 4 * G for c in configs)
        assert searcher.core.repaired == searcher.core.over_budget > 0  # spread repaired them
        trials = searcher._ot_study.get_trials()
        for c in configs:
            t = trials[c["trial_number"]]
            assert TrialRecord.of(t).config == c and t.values == [
                sum(s["type"] != "none" for s in c["architecture"]["slots"]) / 16,
                float(c["flops"]),
            ]
        return [(t.number, t.params, t.state) for t in trials]

    first = run(5)
    assert first == run(5)
    assert [p for _, p, _ in run(6)] != [p for _, p, _ in first]


def test_searcher_reruns_an_interrupted_trial_first_and_early_stop_is_pruned():
    from attnsearch.search._resume import Rerun

    space = load_space("resnet50")
    searcher = _searcher(space, 4 * G, epochs=2)
    (first,) = _train(searcher, 1)  # epoch 1 of 2: stopped early by ASHA
    t0 = searcher._ot_study.get_trials()[first["trial_number"]]
    assert t0.state == optuna.trial.TrialState.PRUNED and t0.values is None
    assert t0.user_attrs["early_stopped"] and t0.user_attrs["trained"]
    params = dict(t0.params)
    searcher.core.pending_reruns = lambda: [Rerun(t0.number, params, "/ckpt/x")]
    again = searcher.suggest("t9")
    t = searcher._ot_study.get_trials()[again["trial_number"]]
    assert t.params == params and again["resume_checkpoint"] == "/ckpt/x"
    assert t.user_attrs["resumed_from"] == t0.number
    # after Ctrl-C, a trial stopped before its last epoch stays RUNNING (resumable)
    searcher.core.interrupted = True
    searcher.on_trial_complete("t9", {"accuracy": 0.5, "epoch": 1, **again})
    assert searcher._ot_study.get_trials()[t.number].state == optuna.trial.TrialState.RUNNING


def test_searcher_study_holds_no_made_up_accuracy(tmp_path):
    """Through the searcher, into a journal re-opened with optuna.load_study: only trained
    candidates carry values; over-budget and impossible ones carry none."""
    from attnsearch.search._searcher import BudgetedOptunaSearch

    space = load_space("resnet50")
    path = tmp_path / "study.journal"
    storage = optuna.storages.JournalStorage(optuna.storages.journal.JournalFileBackend(str(path)))
    searcher = BudgetedOptunaSearch(
        space,
        space.options(0.5),
        4 * G,
        policy="spread",
        sampler=make_sampler("random", 1, 12),
        study_name="s",
        storage=storage,
    )
    configs = _train(searcher, 6)
    assert searcher.core.over_budget > 0
    loaded = optuna.load_study(study_name="s", storage=storage)
    trained = {c["trial_number"] for c in configs}
    for t in loaded.get_trials():
        if t.number in trained:
            assert t.state == optuna.trial.TrialState.COMPLETE and t.values is not None
        else:
            assert t.values is None and t.user_attrs["trained"] is False
            assert t.state in (optuna.trial.TrialState.PRUNED, optuna.trial.TrialState.FAIL)


@pytest.mark.parametrize("policy", ["repair", "spread"])
def test_budget_just_above_the_cheapest_random_sampler_repairs_every_ask(policy):
    """Issue 12 #5: a budget a hair above the cheapest architecture, random sampler: with
    repair/spread each suggestion costs at most two asks and is feasible."""
    space = load_space("resnet50")
    lo = Proposer(_study(), space, space.options(0.5), 4 * G).min_cost
    searcher = _searcher(space, lo + 1000, sampler="random", policy=policy)
    configs = _train(searcher, 10)
    assert all(c["flops"] <= lo + 1000 for c in configs)
    assert searcher.core.asked <= 2 * len(configs)
    assert searcher.fatal is None


def test_budget_just_above_the_cheapest_reject_stops_with_one_line():
    """Issue 12 #5 with ``reject``: a bounded number of asks, then a clear stop (exit 1)
    through ``on_fatal``, not 10,000 rejected trials and an exception inside Tune."""
    from attnsearch.proposal import ProposalError
    from attnsearch.search._searcher import MAX_ASKS

    space = load_space("resnet50")
    lo = Proposer(_study(), space, space.options(0.5), 4 * G).min_cost
    stopped = []
    searcher = _searcher(
        space, lo + 1000, sampler="random", policy="reject", on_fatal=lambda: stopped.append(1)
    )
    from ray.tune.search import Searcher

    assert searcher.suggest("t0") == Searcher.FINISHED
    assert stopped == [1] and isinstance(searcher.fatal, ProposalError)
    assert searcher.fatal.exit_code == 1
    message = str(searcher.fatal)
    assert "\n" not in message and "--policy spread" in message
    assert len(searcher._ot_study.get_trials()) == searcher.core.asked == MAX_ASKS
    assert searcher.suggest("t1") == Searcher.FINISHED  # stays stopped
    assert len(searcher._ot_study.get_trials()) == MAX_ASKS


def test_tell_failure_stops_the_search_and_leaves_a_readable_journal(tmp_path, monkeypatch):
    """Issue 12 #3: an I/O error while telling is not swallowed: the searcher stops with a
    one-line StorageWriteError (exit 1); the journal still opens and the trial stays
    RUNNING, so a resume re-runs it."""
    from ray.tune.search import Searcher

    from attnsearch.proposal import StorageWriteError
    from attnsearch.search._searcher import BudgetedOptunaSearch

    space = load_space("resnet50")
    path = tmp_path / "study.journal"
    storage = optuna.storages.JournalStorage(optuna.storages.journal.JournalFileBackend(str(path)))
    stopped = []
    searcher = BudgetedOptunaSearch(
        space,
        space.options(0.5),
        4 * G,
        sampler=make_sampler("tpe-mv", 0, 12),
        study_name="s",
        storage=storage,
        on_fatal=lambda: stopped.append(1),
    )
    _train(searcher, 2)
    config = searcher.suggest("t2")

    def full_disk(*a, **k):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(storage, "set_trial_state_values", full_disk)
    searcher.on_trial_complete("t2", {"accuracy": 0.5, "epoch": 1, **config})
    assert stopped == [1] and isinstance(searcher.fatal, StorageWriteError)
    assert searcher.fatal.exit_code == 1
    assert "No space left on device" in str(searcher.fatal) and "\n" not in str(searcher.fatal)
    assert searcher.suggest("t3") == Searcher.FINISHED
    monkeypatch.undo()
    loaded = optuna.load_study(
        study_name="s",
        storage=optuna.storages.JournalStorage(
            optuna.storages.journal.JournalFileBackend(str(path))
        ),
    )
    t = loaded.get_trials()[config["trial_number"]]
    assert t.state == optuna.trial.TrialState.RUNNING and t.values is None


def test_proposer_tell_raises_storage_write_error():
    """Proposer.tell never swallows: a refused write becomes StorageWriteError; Optuna's own
    refusals (telling a finished trial again) pass through unchanged."""
    from attnsearch.proposal import StorageWriteError

    space = load_space("resnet50")
    study = _study()
    proposer = Proposer(study, space, space.options(0.5), 4 * G, policy="spread")
    trial, _, cost = proposer.propose()
    proposer.tell(trial, [0.5, float(cost)])
    with pytest.raises(RuntimeError):
        proposer.tell(trial, [0.5, float(cost)])
    trial, _, cost = proposer.propose()

    def read_only(*a, **k):
        raise PermissionError(13, "Permission denied")

    study._storage.set_trial_state_values = read_only
    with pytest.raises(StorageWriteError, match="Permission denied"):
        proposer.tell(trial, [0.5, float(cost)])


def test_the_core_imports_no_ray():
    import subprocess
    import sys

    code = "import sys, attnsearch.proposal; print('ray' in sys.modules)"
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert proc.stdout.strip() == "False", proc.stderr


# ---- --warm-start -------------------------------------------------------------------------
def test_warm_start_seeds_a_run_without_counting_or_fronting_its_trials(tmp_path):
    """seed_from copies an earlier run's finished trials, costed again against this run's
    budget; they are history for the sampler, not this run's trained trials or its front."""
    from conftest import make_run

    from attnsearch.results import pareto_members, storage_for
    from attnsearch.search._driver import done_count, seed_from

    space = load_space("resnet50")
    options = space.options(0.5)
    src = make_run(tmp_path, "src", 4 * G, space="resnet50", width=0.5)
    source = optuna.create_study(
        study_name=src.record.study_name,
        storage=storage_for(src.path),
        directions=["maximize", "minimize"],
    )
    _drive(Proposer(source, space, options, 4 * G, policy="spread", seed=4), 6)
    dst = make_run(tmp_path, "dst", int(3.9 * G), space="resnet50", width=0.5)
    target = optuna.create_study(
        study_name=dst.record.study_name,
        storage=storage_for(dst.path),
        directions=["maximize", "minimize"],
        sampler=make_sampler("tpe-mv", 0, 8),
    )
    proposer = Proposer(target, space, options, int(3.9 * G), policy="spread")
    n = seed_from(str(src.path), target, proposer)
    finished = [t for t in source.get_trials() if t.state.is_finished()]
    assert n == len(finished) == len(target.get_trials()) > 6
    assert done_count(target) == 0  # not counted toward --trials
    assert pareto_members(dst.path, target) == []  # never on this run's front
    for t in target.get_trials():
        flops = t.user_attrs["flops"]
        assert t.constraints[CONSTRAINT] == flops - int(3.9 * G)  # against this budget
    _drive(proposer, 2)
    assert done_count(target) == 2
    assert {m["trial"] for m in pareto_members(dst.path, target)} <= {
        t.number for t in target.get_trials() if "warm_start_from" not in t.user_attrs
    }


def test_warm_start_copies_are_never_this_runs_references_repeats_failures_or_reruns(tmp_path):
    """A source run's reference, repeat, failure and interrupted trial, copied by a warm
    start, are history for the sampler only: the new run trains its own references, finds no
    repeats, failures or re-runs of its own, and names them as copies in trials.csv."""
    from conftest import make_run

    from attnsearch.results import measurements, trial_rows
    from attnsearch.rundir import FailKind, TrialRecord
    from attnsearch.search._extras import fail_count
    from attnsearch.search._resume import pending_reruns

    space = load_space("resnet50")
    options = space.options(0.5)
    source = _study()
    _drive(Proposer(source, space, options, 4 * G, policy="repair"), 1)
    first, base = source.get_trials()[0], len(source.get_trials())
    params, dists = dict(first.params), first.distributions
    record = dict(first.user_attrs)
    done = optuna.trial.TrialState.COMPLETE
    fail = optuna.trial.TrialState.FAIL
    made = [
        (done, [0.5, 1.0], dict(role="reference", reference="ResNet-50", seed=1)),
        (done, [0.6, 1.0], dict(role="repeat", repeat_of=0, seed=2)),
        (fail, None, dict(fail_kind=FailKind.CANDIDATE, fail_reason="nan loss")),
        (fail, None, dict(fail_kind=FailKind.INTERRUPTED, config={"x": 1})),
    ]
    for state, values, attrs in made:
        source.add_trial(
            optuna.trial.create_trial(
                state=state, values=values, params=params, distributions=dists,
                user_attrs={**record, **TrialRecord.attrs(trained=True, **attrs)},
            )
        )  # fmt: skip
    own = measurements(source)
    assert own.references and own.planned_references == {"ResNet-50": 1}
    assert fail_count(source) == 1
    run = make_run(tmp_path, "dst", 4 * G, space="resnet50", width=0.5)
    assert [r.trial for r in pending_reruns(run, source)] == [base + 3]  # the source's own
    target = _study()
    n = warm_start(target, source, space, options)
    assert n == len([t for t in source.get_trials() if t.state.is_finished()]) >= 5
    ms = measurements(target)
    assert ms.references == {} and ms.planned_references == {} and ms.planned_repeats == {}
    assert ms.search == [] and ms.noise.runs == 0
    assert fail_count(target) == 0
    assert pending_reruns(run, target) == []
    roles = [row["role"] for row in trial_rows(target)]
    assert roles == [f"warm start from {source.study_name}#{k}" for k in range(n)]


def test_warm_start_refuses_another_space_or_width(tmp_path):
    """``run --warm-start NAME`` on another space or width: one line, exit 2, nothing made."""
    from conftest import cli, make_run

    make_run(tmp_path / "results", "src", 4 * G, space="tiny", width=0.25)
    cases = [
        (["--space", "resnet18", "--width", "0.25"], "another space"),
        (["--space", "tiny", "--width", "0.5"], "proxy width"),
    ]
    for args, needle in cases:
        proc = cli("run", "--budget", "4G", *args, "--warm-start", "src", cwd=tmp_path)
        assert proc.returncode == 2, proc.stderr
        lines = proc.stderr.strip().splitlines()
        assert len(lines) == 1 and needle in lines[0] and "Traceback" not in proc.stderr
    proc = cli("run", "--budget", "4G", "--space", "tiny", "--warm-start", "nope", cwd=tmp_path)
    assert proc.returncode == 2 and "nope" in proc.stderr
    assert [p.name for p in (tmp_path / "results").iterdir()] == ["src"]


@pytest.mark.slow
def test_cli_reject_on_a_needle_budget_stops_with_exit_1(tmp_path):
    """Issue 12 #5 through the real command: ``--policy reject`` with a budget just above the
    cheapest architecture ends with exit 1 and one error line, not 10,000 trials and a
    traceback from inside Tune."""
    from conftest import cli

    proc = cli(
        "run", "--budget", "3.7G", "--space", "resnet50", "--dataset", "synthetic", "--limit",
        "64", "--resolution", "8", "--trials", "2", "--sampler", "random", "--policy", "reject",
        "--name", "needle", cwd=tmp_path,
    )  # fmt: skip
    assert proc.returncode == 1, proc.stderr
    assert "Traceback" not in proc.stderr
    errors = [line for line in proc.stderr.splitlines() if "error" in line]
    assert len(errors) == 1 and "--policy spread" in errors[0], proc.stderr


@pytest.mark.slow
def test_storage_failure_during_a_real_search_stops_it(tmp_path, ray_local, monkeypatch):
    """Issue 12 #3 end to end: the first trained result cannot be told (full disk): the search
    stops promptly with StorageWriteError (exit 1) instead of training on; the journal still
    opens, and the trial stays resumable (RUNNING)."""
    from conftest import make_run

    from attnsearch.datasets import load_dataset
    from attnsearch.proposal import StorageWriteError
    from attnsearch.results import open_study
    from attnsearch.search import run_search

    run = make_run(
        tmp_path, "full", 4 * G, space="tiny", dataset="synthetic", trials=4, epochs=1,
        concurrency=1, width=0.25, batch_size=32, seed=0,
    )  # fmt: skip
    real = optuna.storages.JournalStorage.set_trial_state_values

    def full_disk(self, trial_id, state, values=None):
        if values is not None:
            raise OSError(28, "No space left on device")
        return real(self, trial_id, state, values)

    monkeypatch.setattr(optuna.storages.JournalStorage, "set_trial_state_values", full_disk)
    data = load_dataset("synthetic", resolution=8, limit=64, seed=0)
    with pytest.raises(StorageWriteError, match="No space left on device"):
        run_search(run, space=load_space("tiny"), dataset=data)
    monkeypatch.undo()
    study = open_study(run.path, run.record.study_name)
    states = [t.state for t in study.get_trials()]
    assert optuna.trial.TrialState.COMPLETE not in states
    assert states.count(optuna.trial.TrialState.RUNNING) == 1  # the one that trained
