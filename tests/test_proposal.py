"""The Ray-free ask → budget → tell core: repair, policies, storage honesty, samplers."""

from __future__ import annotations

import warnings

import optuna
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from attnsearch.errors import InputError
from attnsearch.flops.analytic import cost_table
from attnsearch.proposal import (
    CONSTRAINT,
    BudgetTooLowError,
    Proposer,
    cheapest_choices,
    make_sampler,
    repair,
    warm_start,
)
from attnsearch.spaces import load_space, space_names

optuna.logging.set_verbosity(optuna.logging.ERROR)
warnings.filterwarnings("ignore", category=optuna.exceptions.ExperimentalWarning)

G = 10**9
WIDTHS = (1.0, 0.5, 0.25)


def _cost(space):
    table = cost_table(space.backbone, space.input, space.num_classes)
    return lambda a: table.total(a.slots)


_SETUP: dict = {}


def _setup(name: str, width: float):
    key = (name, width)
    if key not in _SETUP:
        space = load_space(name)
        options = space.options(width)
        cost = _cost(space)
        cheapest_arch, cheapest = cheapest_choices(space, options, cost)
        flat = [[c for cs in per.values() for c in cs] for per in options]
        dearest = max(
            cost(space.sample(optuna.trial.FixedTrial(_max_params(space, flat)), options)), 1
        )
        _SETUP[key] = (space, options, cost, cheapest_arch, cheapest, flat, dearest)
    return _SETUP[key]


def _max_params(space, flat):
    """Parameters of some expensive architecture: each unit's costliest choice."""
    from attnsearch.architecture import Architecture, SlotChoice
    from attnsearch.backbones import BACKBONES

    table = cost_table(space.backbone, space.input, space.num_classes)
    slots = [SlotChoice("none", ())] * BACKBONES[space.backbone].num_slots
    for unit, choices in zip(space.units, flat, strict=True):
        best = max(choices, key=lambda c: sum(table.slot(s, c) for s in space.unit_slots(unit)))
        for s in space.unit_slots(unit):
            slots[s] = best
    arch = Architecture(space.backbone, tuple(slots), space.num_classes, space.input)
    return space.params(arch, space.options(1.0))


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
    assert lo == space.cheapest(0.5)[0]
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
