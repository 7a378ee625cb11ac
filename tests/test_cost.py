"""The one cost model (issue 20): a contract every Cost passes, one definition of the
cheapest and the dearest architecture, one feasibility check per run.

The contract suite is parametrised over every implementation, like Optuna's
``optuna/testing`` suites over its samplers: a new Cost joins by adding a line to ``COSTS``.
The latency table is made up (FLOPs-proportional plus a per-type overhead, calibration
scale 1.1): no timing in these tests.
"""

from __future__ import annotations

import ast
import pickle
import re
from pathlib import Path

import pytest
from conftest import synthetic_latency_table

import attnsearch
from attnsearch.budget import Budget, format_flops
from attnsearch.cost import BudgetTooLowError, Cost, Feasible, FlopsCost, LatencyCost
from attnsearch.errors import InputError
from attnsearch.flops.analytic import analytic_flops
from attnsearch.latency import random_architectures
from attnsearch.spaces import load_space

PACKAGE = Path(attnsearch.__file__).parent


# every Cost implementation: name -> (space -> cost); `exact`: integer terms, no rounding
COSTS = {
    "flops": (FlopsCost, True),
    "latency": (lambda space: LatencyCost(synthetic_latency_table(space, scale=1.1)), False),
}
CASES = [
    (kind, name, width) for kind in COSTS for name in ("tiny", "resnet18") for width in (1.0, 0.25)
]
_MADE: dict = {}


@pytest.fixture(params=CASES, ids=lambda c: f"{c[0]}-{c[1]}-w{c[2]}")
def case(request):
    kind, name, width = request.param
    if request.param not in _MADE:
        space = load_space(name)
        make, exact = COSTS[kind]
        _MADE[request.param] = (make(space), space, space.options(width), width, exact)
    return _MADE[request.param]


def _samples(space, width, n=25):
    return random_architectures(space, n, seed=3, width=width)


def _with(space, arch, unit, choice):
    slots = list(arch.slots)
    for s in space.unit_slots(unit):
        slots[s] = choice
    return type(arch)(arch.backbone, tuple(slots), arch.num_classes, arch.input)


# ---- the contract -----------------------------------------------------------------------
def test_every_cost_is_a_cost(case):
    cost, *_ = case
    assert isinstance(cost, Cost) and cost.kind in ("flops", "latency")


def test_total_is_fixed_plus_the_slots(case):
    cost, space, _, width, exact = case
    for arch in _samples(space, width):
        parts = cost.fixed + sum(cost.slot(i, c) for i, c in enumerate(arch.slots))
        total = cost.total(arch)
        assert isinstance(total, int) and cost(arch) == total
        if exact:
            assert total == parts
        else:  # rounded to the unit (ns) from the table's own float sum
            assert abs(total - parts) <= 1


def test_a_cost_records_what_it_reads_back_and_tells_its_objective(case):
    """What a trial's record holds is the cost read back (so a resumed or warm-started trial
    is told the same objective), and the objective is the unit the record keeps."""
    cost, space, _, width, _ = case
    for arch in _samples(space, width, 5):
        value = cost.total(arch)
        attrs = {"flops": analytic_flops(arch), **cost.record(value)}
        assert cost.recorded(attrs) == value
        if cost.kind == "latency":
            assert set(cost.record(value)) == {"latency_ms"}
            assert cost.objective(value) == attrs["latency_ms"] == value / 1e6
        else:
            assert cost.record(value) == {} and cost.objective(value) == float(value)


def test_cheapest_and_dearest_bound_every_architecture(case):
    cost, space, options, width, _ = case
    lo, hi = cost.cheapest(space, options), cost.dearest(space, options)
    for arch in (lo, hi):  # architectures of the space, at these options
        assert space.unit_choices(arch, options) is not None
    assert cost(lo) <= cost(hi)
    for arch in _samples(space, width):
        assert cost(lo) <= cost(arch) <= cost(hi)


def test_cheapest_and_dearest_are_extreme_per_unit(case):
    """No single unit changed to any other allowed choice is cheaper (dearer): the
    extremes are exact, not merely bounds of the samples."""
    cost, space, options, _, exact = case
    slack = 0 if exact else 1  # rounding to whole ns
    lo, hi = cost.cheapest(space, options), cost.dearest(space, options)
    for unit, per_type in zip(space.units, options, strict=True):
        for choice in (c for cs in per_type.values() for c in cs):
            assert cost(_with(space, lo, unit, choice)) >= cost(lo) - slack
            assert cost(_with(space, hi, unit, choice)) <= cost(hi) + slack


def test_the_budget_check_refuses_below_the_cheapest_and_accepts_it(case):
    cost, space, options, _, _ = case
    cheapest = cost.cheapest(space, options)
    low = cost(cheapest)
    ok = cost.check_budget(low, space, options)
    assert ok == Feasible(cost, low, cheapest, low)
    with pytest.raises(BudgetTooLowError) as e:
        cost.check_budget(low - 1, space, options)
    text = str(e.value)
    assert isinstance(e.value, InputError) and "\n" not in text
    assert f"below the {cost.cheapest_word} architecture of space {space.name!r}" in text
    assert cost.show(low - 1) in text and cost.describe(low) in text


def test_the_budget_check_takes_a_parsed_budget_of_its_kind(case):
    cost, space, options, _, _ = case
    low = cost(cost.cheapest(space, options))
    value = low if cost.kind == "flops" else low / 1e6  # FLOPs, or ms
    assert cost.check_budget(Budget(cost.kind, value), space, options).budget == low
    other = Budget("latency", 25.0) if cost.kind == "flops" else Budget("flops", 4e9)
    with pytest.raises(InputError, match=f"not a {cost.kind}"):
        cost.check_budget(other, space, options)


def test_a_cost_pickles(case):
    """Ray Tune pickles the searcher that holds the cost."""
    cost, space, options, width, _ = case
    back = pickle.loads(pickle.dumps(cost))
    assert [back(a) for a in _samples(space, width, 5)] == [
        cost(a) for a in _samples(space, width, 5)
    ]


# ---- the implementations' own numbers ---------------------------------------------------
def test_flops_cost_is_the_analytic_count():
    space = load_space("tiny")
    cost = FlopsCost(space)
    for arch in [cost.cheapest(space, space.options()), *_samples(space, 1.0, 10)]:
        assert cost(arch) == analytic_flops(arch)
    low = cost(cost.cheapest(space, space.options()))
    with pytest.raises(BudgetTooLowError) as e:
        cost.check_budget(Budget("flops", 10**6), space, space.options())
    assert str(e.value) == (
        f"budget 1 MFLOPs is below the cheapest architecture of space 'tiny' "
        f"({format_flops(low)} = {low:,} FLOPs)"
    )


def test_latency_cost_is_the_tables_prediction():
    space = load_space("tiny")
    table = synthetic_latency_table(space, scale=1.1)
    cost = LatencyCost(table)
    for arch in _samples(space, 1.0, 10):
        assert cost(arch) == round(table.predict(arch) * 1e6)
    with pytest.raises(BudgetTooLowError, match=r"below the fastest .* predicted on cpu, batch 1"):
        cost.check_budget(Budget("latency", 0.01), space, space.options())


class _Flat(Cost):
    """Every choice costs the same: the ties decide."""

    kind = "flops"
    fixed = 10

    def slot(self, index, choice):
        return 1

    def show(self, value):
        return str(value)

    def limit(self, budget):
        return int(budget.value)

    def objective(self, value):
        return float(value)

    def record(self, value):
        return {"flat": value}

    def recorded(self, attrs):
        return int(attrs["flat"])


def test_ties_go_to_the_choice_listed_first():
    space = load_space("tiny")
    options = space.options()
    first = [next(iter(per.values()))[0] for per in options]
    for arch in (_Flat().cheapest(space, options), _Flat().dearest(space, options)):
        assert space.unit_choices(arch, options) == first


def test_an_implementation_must_give_every_part():
    class Partial(Cost):
        kind = "flops"

        def slot(self, index, choice):
            return 0

    with pytest.raises(TypeError):
        Partial()  # type: ignore[abstract]


# ---- one definition ---------------------------------------------------------------------
def _package_nodes():
    for path in sorted(PACKAGE.rglob("*.py")):
        rel = path.relative_to(PACKAGE).as_posix()
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            yield rel, node


def _docstrings(tree_nodes) -> set[int]:
    """ids of the docstring constants among ``tree_nodes``."""
    out = set()
    for _, node in tree_nodes:
        body = getattr(node, "body", None)
        if isinstance(node, (ast.Module, ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef)):
            first = body[0] if body else None
            if isinstance(first, ast.Expr) and isinstance(first.value, ast.Constant):
                out.add(id(first.value))
    return out


def test_one_definition_of_the_cheapest_and_the_dearest_architecture():
    """Only attnsearch/cost.py defines a function or class about the cheapest, fastest or
    dearest architecture, or a class of costs; only it raises BudgetTooLowError."""
    named = re.compile(r"cheapest|dearest|fastest|costliest", re.IGNORECASE)
    found, costs, raises = set(), set(), set()
    for rel, node in _package_nodes():
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            if named.search(node.name):
                found.add((rel, node.name))
            if isinstance(node, ast.ClassDef) and node.name.endswith("Cost"):
                costs.add((rel, node.name))
        if isinstance(node, ast.Raise) and "BudgetTooLowError" in ast.unparse(node):
            raises.add(rel)
    assert found == {("cost.py", "cheapest"), ("cost.py", "dearest")}
    assert costs == {("cost.py", "Cost"), ("cost.py", "FlopsCost"), ("cost.py", "LatencyCost")}
    assert raises == {"cost.py"}


def test_no_other_module_words_the_refusal():
    """The "budget below the cheapest" message exists once (cost.py builds it)."""
    below = re.compile(r"below the (cheapest|fastest)")
    nodes = list(_package_nodes())
    docs = _docstrings(nodes)
    texts = [
        (rel, node.value)
        for rel, node in nodes
        if isinstance(node, ast.Constant) and isinstance(node.value, str) and id(node) not in docs
    ]
    assert not [(rel, t) for rel, t in texts if below.search(t)]


def test_one_conversion_between_milliseconds_and_nanoseconds():
    """Latency costs compare in integer ns, people read ms: the factor is written once
    (attnsearch/budget.py's NS_PER_MS, ms_to_ns, ns_to_ms); the modules that handle costs
    call those instead of writing 1e6 themselves."""
    factors = {1e6, 1e-6}  # 1_000_000 == 1e6: found too
    users = ("cost.py", "proposal.py", "samplers.py", "search/", "results/", "latency/")
    found = {
        rel
        for rel, node in _package_nodes()
        if isinstance(node, ast.Constant)
        and type(node.value) in (int, float)
        and node.value in factors
        and rel.startswith(users)
    }
    assert not found


# ---- one check per run ------------------------------------------------------------------
@pytest.fixture
def counted(monkeypatch):
    """Every call of Cost.check_budget, as (cost kind, budget)."""
    calls = []
    real = Cost.check_budget

    def check(self, budget, space, options):
        calls.append((self.kind, budget))
        return real(self, budget, space, options)

    monkeypatch.setattr(Cost, "check_budget", check)
    return calls


def test_a_proposer_given_the_check_does_not_check_again(counted):
    import optuna

    from attnsearch.proposal import Proposer

    space = load_space("tiny")
    options = space.options(0.5)
    cost = FlopsCost(space)
    study = optuna.create_study(directions=["maximize", "minimize"])
    checked = cost.check_budget(4 * 10**9, space, options)
    prop = Proposer(study, space, options, 4 * 10**9, cost, checked=checked)
    assert len(counted) == 1 and prop.min_cost == checked.min_cost
    assert prop.cheapest == space.unit_choices(checked.cheapest, options)
    Proposer(study, space, options, 4 * 10**9, cost)  # a caller of its own: checked here
    assert len(counted) == 2
    with pytest.raises(ValueError, match="another cost or budget"):
        Proposer(study, space, options, 3 * 10**9, cost, checked=checked)


def test_a_new_run_checks_once_before_anything_is_created(counted, monkeypatch, tmp_path, capsys):
    import attnsearch.search
    from attnsearch.cli import main

    handed = []

    def run_search(run, *, checked=None, **kwargs):
        handed.append(checked)
        raise InputError("stop here")  # the CLI discards the new folder

    monkeypatch.setattr(attnsearch.search, "run_search", run_search, raising=False)
    monkeypatch.chdir(tmp_path)
    base = ["run", "--space", "tiny", "--dataset", "synthetic", "--limit", "64"]
    with pytest.raises(SystemExit):
        main([*base, "--budget", "2G"])
    assert counted == [("flops", Budget("flops", 2e9))]
    assert handed and handed[0].budget == 2 * 10**9 and isinstance(handed[0].cost, FlopsCost)
    counted.clear()
    with pytest.raises(SystemExit) as e:
        main([*base, "--budget", "1M"])
    assert e.value.code == 2 and len(counted) == 1 and len(handed) == 1
    assert "below the cheapest architecture of space 'tiny'" in capsys.readouterr().err
    assert not (tmp_path / "results").exists() or not any((tmp_path / "results").iterdir())


def test_a_resume_checks_once_before_the_storage_is_touched(counted, tmp_path):
    """run_search without the CLI's check (a resume) makes it, before any study exists."""
    from conftest import make_run

    from attnsearch.search import run_search

    run = make_run(tmp_path / "results", "r", 10**6, space="tiny", dataset="synthetic", width=0.5)
    before = sorted(p.name for p in run.path.iterdir())
    with pytest.raises(BudgetTooLowError, match="below the cheapest"):
        run_search(run, space=load_space("tiny"))
    assert len(counted) == 1
    assert sorted(p.name for p in run.path.iterdir()) == before  # no storage, no Ray folder
