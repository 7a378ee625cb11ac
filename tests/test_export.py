"""``attnsearch export``: the generated file is standalone, and equals the package's network.

For many architectures (every registered type on resnet18 and resnet50, random mixed ones,
resnet34 and resnet101, and proxy-stem networks at reduced width) the generated file is run
in a fresh interpreter where attnsearch cannot be imported. There it must build, start from
the same weights as :func:`attnsearch.backbones.build_network` under the same seed, load
the package network's (perturbed) state dict with ``strict=True`` and give the same outputs
(within 1e-6) with the same parameter count. In this process the traced FLOPs of the
exported network must equal the package's, and ruff must accept the file.

The search-folder tests build a results folder with the package's own pieces (an Optuna
study in ``study.db`` whose trials carry the search's user attributes, ``run.yaml``,
``pareto.json`` written by :func:`attnsearch.results.pareto_members`, and a Tune-style trial
folder holding ``checkpoint_*/state.pt``) without running a search; an end-to-end test
through a real search lives with the search tests.
"""

from __future__ import annotations

import ast
import contextlib
import hashlib
import importlib.util
import io
import json
import random
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from attnsearch import modules
from attnsearch.architecture import Architecture, ArchitectureError, SlotChoice, check_choice
from attnsearch.backbones import build_network, slot_infos
from attnsearch.export import generate_code
from attnsearch.flops import count, count_params

RUFF = Path(sys.executable).with_name("ruff")
SITE_PACKAGES = str(Path(torch.__file__).resolve().parent.parent)


# ---- architectures ----------------------------------------------------------------------
def _valid(backbone: str, choice: SlotChoice, width: float) -> bool:
    try:
        for info in slot_infos(backbone, width):
            check_choice(choice, info)
    except ValueError:
        return False
    return True


def _uniform(backbone: str, kind: str, width: float = 1.0) -> Architecture:
    """Every slot ``kind``: its defaults, or the first small integer setting that fits."""
    hparams = modules.get(kind).hparams if kind != "none" else ()
    candidates = [{}] + [{h.name: v} for h in hparams for v in (1, 2, 4, 8, 16, 32)]
    for hp in candidates:
        try:
            choice = SlotChoice.make(kind, **hp)
            if _valid(backbone, choice, width):
                return Architecture(backbone, (choice,) * len(slot_infos(backbone)))
        except (ValueError, ArchitectureError):
            continue
    raise AssertionError(f"no setting of {kind} fits every slot of {backbone} at width {width}")


def _random_choice(rng: random.Random, kind: str) -> SlotChoice:
    if kind == "none":
        return SlotChoice.make("none")
    hp = {}
    for h in modules.get(kind).hparams:
        if h.choices is not None:
            hp[h.name] = rng.choice(h.choices)
        elif h.type is int and rng.random() < 0.5:
            pool = [v for v in (1, 2, 3, 4, 5, 8, 16) if h.low is None or v >= h.low]
            pool = [v for v in pool if not h.odd or v % 2] + ([None] if h.optional else [])
            hp[h.name] = rng.choice(pool)
    return SlotChoice.make(kind, **hp)


def _mixed(backbone: str, seed: int, width: float = 1.0) -> Architecture:
    """A random valid choice (type and hyperparameters) per slot, valid at ``width`` and 1."""
    rng = random.Random(seed)
    kinds = list(modules.REGISTRY)  # "none" (the plain block) included
    slots = []
    for info, full in zip(slot_infos(backbone, width), slot_infos(backbone), strict=True):
        while True:
            try:
                choice = _random_choice(rng, rng.choice(kinds))
                check_choice(choice, info)
                check_choice(choice, full)
            except ValueError:
                continue
            slots.append(choice)
            break
    return Architecture(backbone, tuple(slots))


DEPLOY = {"stem": "deploy", "width": 1.0}


def _groups() -> dict[str, list[tuple[str, Architecture, dict]]]:
    """(id, architecture, network settings); one fresh interpreter per group."""
    uniform = []
    for backbone in ("resnet18", "resnet50"):
        for kind in modules.REGISTRY:
            uniform.append((f"{backbone}_{kind}", _uniform(backbone, kind), DEPLOY))
    mixed = [
        (f"mixed{i}_{b}", _mixed(b, seed=i), DEPLOY)
        for i, b in enumerate(("resnet18", "resnet18", "resnet50", "resnet50"))
    ]
    mixed.append(("mixed_resnet34", _mixed("resnet34", seed=34), DEPLOY))
    mixed.append(("mixed_resnet101", _mixed("resnet101", seed=101), DEPLOY))
    # the proxy networks as a search trains them: small-image stem, narrow, other datasets
    proxy18 = {"stem": "proxy", "width": 0.5, "num_classes": 10, "in_channels": 1}
    proxy50 = {"stem": "proxy", "width": 0.25, "num_classes": 7, "in_channels": 3}
    mixed.append(("proxy_resnet18", _mixed("resnet18", seed=7, width=0.5), proxy18))
    mixed.append(("proxy_resnet50", _mixed("resnet50", seed=8, width=0.25), proxy50))
    return {"uniform": uniform, "mixed": mixed}


GROUPS = _groups()


@pytest.fixture(autouse=True, scope="module")
def _one_thread():
    """One intra-op thread: small networks on a shared CPU run far faster without spinning."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


# ---- helpers ----------------------------------------------------------------------------
def _digest(state: dict) -> dict[str, str]:
    """sha256 of every 16th value of each tensor (initial weights come from one RNG stream)."""
    return {
        k: hashlib.sha256(v.detach().reshape(-1)[::16].contiguous().numpy().tobytes()).hexdigest()
        for k, v in state.items()
    }


def _perturb(net: torch.nn.Module, seed: int, shape: tuple[int, ...]) -> None:
    """Move the small parameters (biases, norms, gate weights) off their initial values, so
    that zero-initialised gates open up, then set the BN statistics from one batch so that
    activations stay of order one in eval mode."""
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in net.parameters():
            if p.dim() > 1 and p.numel() > 4096:  # large weights are random already
                continue
            p.add_(torch.randn(p.shape, generator=gen) * 0.1 * max(float(p.abs().mean()), 0.1))
        norms = [m for m in net.modules() if isinstance(m, torch.nn.BatchNorm2d)]
        momenta = [m.momentum for m in norms]
        for m in norms:
            m.reset_running_stats()
            m.momentum = None  # cumulative average: one batch sets the statistics
        net.train()
        net(torch.randn(2, *shape, generator=gen))
        for m, momentum in zip(norms, momenta, strict=True):
            m.momentum = momentum
    net.eval()


@contextlib.contextmanager
def _no_init():
    """Skip weight initialisation (torch.nn.init) while building a network to count it."""
    names = ("kaiming_normal_", "kaiming_uniform_", "uniform_", "normal_", "ones_", "zeros_")
    saved = {n: getattr(torch.nn.init, n) for n in names}
    for n in names:
        setattr(torch.nn.init, n, lambda tensor, *args, **kwargs: tensor)
    try:
        yield
    finally:
        for n, fn in saved.items():
            setattr(torch.nn.init, n, fn)


def _import(path: Path, name: str):
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


_CHECK_SCRIPT = r"""
import importlib.util, hashlib, json, sys
try:
    import attnsearch  # noqa: F401
except ImportError:
    pass
else:
    raise SystemExit("attnsearch is importable in the check interpreter")
import torch

manifest = json.load(open(sys.argv[1]))
results = {}
for case in manifest:
    spec = importlib.util.spec_from_file_location("exported_" + case["id"], case["file"])
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    torch.manual_seed(0)
    model = module.build_model(num_classes=case["num_classes"], in_channels=case["in_channels"])
    init = {
        k: hashlib.sha256(v.detach().reshape(-1)[::16].contiguous().numpy().tobytes()).hexdigest()
        for k, v in model.state_dict().items()
    }
    model.load_state_dict(torch.load(case["state"], weights_only=True), strict=True)
    model.eval()
    with torch.no_grad():
        out = model(torch.load(case["input"], weights_only=True))
    results[case["id"]] = {
        "out": out,
        "params": sum(p.numel() for p in model.parameters()),
        "init": init,
        "modules": sorted({m.split(".")[0] for m in sys.modules}),
    }
torch.save(results, sys.argv[2])
"""


def _run_isolated(tmp_path: Path, script: str, *args: str) -> subprocess.CompletedProcess:
    """Run ``script`` where only torch's site-packages is on the path (no .pth, no attnsearch)."""
    path = tmp_path / "check.py"
    path.write_text(script)
    env = {"PYTHONPATH": SITE_PACKAGES, "PATH": "/usr/bin:/bin", "OMP_NUM_THREADS": "1"}
    return subprocess.run(
        [sys.executable, "-S", "-s", str(path), *args],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )


# ---- generated code equals the package's network ------------------------------------------
def _settings(arch: Architecture, settings: dict) -> dict:
    return {
        "stem": settings["stem"],
        "width": settings["width"],
        "num_classes": settings.get("num_classes", arch.num_classes),
        "in_channels": settings.get("in_channels", arch.input[0]),
    }


@pytest.mark.parametrize("group", list(GROUPS))
def test_exported_network_matches(tmp_path: Path, group: str) -> None:
    """Fresh interpreter without attnsearch: same initial weights under the same seed,
    strict load of the package network's weights, outputs within 1e-6, same params and
    (traced, in this process) the same FLOPs."""
    manifest, expected = [], {}
    for case_id, arch, settings in GROUPS[group]:
        kwargs = _settings(arch, settings)
        file = tmp_path / f"{case_id}.py"
        file.write_text(generate_code(arch, meta={}, **kwargs))

        torch.manual_seed(0)
        net = build_network(arch, **kwargs)
        init = _digest(net.state_dict())
        size = 48 if settings["stem"] == "deploy" else 32  # deploy: 2×2 maps in layer4
        shape = (kwargs["in_channels"], size, size)
        _perturb(net, len(manifest), shape)
        x = torch.randn(2, *shape, generator=torch.Generator().manual_seed(1))
        # the file holds the reference form (the device form against it:
        # tests/modules/test_formulations.py)
        with torch.no_grad(), modules.formulation("reference"):
            out = net(x)
        # the legacy format skips the zip checksums: much faster for 100 MB state dicts
        torch.save(
            net.state_dict(), tmp_path / f"{case_id}.sd.pt", _use_new_zipfile_serialization=False
        )
        torch.save(x, tmp_path / f"{case_id}.x.pt")
        manifest.append(
            {
                "id": case_id,
                "file": str(file),
                "state": str(tmp_path / f"{case_id}.sd.pt"),
                "input": str(tmp_path / f"{case_id}.x.pt"),
                "num_classes": kwargs["num_classes"],
                "in_channels": kwargs["in_channels"],
            }
        )
        expected[case_id] = (out, count_params(net), init)

        module = _import(file, f"exported_{group}_{case_id}")
        with _no_init():  # FLOPs need shapes, not values
            exported = module.build_model(kwargs["num_classes"], kwargs["in_channels"])
        assert count(exported, shape).flops == count(net, shape).flops, case_id
        del net, exported

    (tmp_path / "manifest.json").write_text(json.dumps(manifest))
    proc = _run_isolated(tmp_path, _CHECK_SCRIPT, "manifest.json", "results.pt")
    assert proc.returncode == 0, proc.stderr[-3000:]
    results = torch.load(tmp_path / "results.pt", weights_only=False)
    for case_id, (out, params, init) in expected.items():
        got = results[case_id]
        assert "attnsearch" not in got["modules"]
        assert got["params"] == params, case_id
        assert got["init"] == init, f"{case_id}: initial weights differ under the same seed"
        torch.testing.assert_close(got["out"], out, rtol=0, atol=1e-6, msg=case_id)
        assert torch.isfinite(out).all() and out.std() > 1e-3, case_id  # not degenerate


@pytest.mark.skipif(not RUFF.exists(), reason="ruff is not installed beside python")
def test_generated_file_passes_ruff(tmp_path: Path) -> None:
    everything = Architecture(
        "resnet50",
        tuple(SlotChoice.make(k) for k in modules.REGISTRY)
        + (SlotChoice.make("none"),) * (16 - len(modules.REGISTRY)),
    )
    files = {
        "everything": generate_code(everything, meta={"flops": 10**9, "params": 10**7}),
        "plain": generate_code(Architecture.uniform("resnet18")),
        "proxy": generate_code(
            GROUPS["mixed"][-1][1],
            meta={"search": "demo", "trial": 3, "accuracy": 0.5, "weights": True, "epoch": 2},
            **GROUPS["mixed"][-1][2],
        ),
    }
    paths = []
    for name, code in files.items():
        (tmp_path / f"{name}.py").write_text(code)
        paths.append(str(tmp_path / f"{name}.py"))
    lint = subprocess.run(
        [str(RUFF), "check", "--isolated", "--line-length", "100", *paths],
        capture_output=True,
        text=True,
    )
    assert lint.returncode == 0, lint.stdout
    fmt = subprocess.run(
        [str(RUFF), "format", "--isolated", "--line-length", "100", "--check", "--diff", *paths],
        capture_output=True,
        text=True,
    )
    assert fmt.returncode == 0, fmt.stdout + fmt.stderr


def test_only_used_modules_are_included() -> None:
    arch = Architecture.uniform("resnet18", "eca")
    code = generate_code(arch)
    assert "class ECA(" in code and "import math" in code
    for other in ("SqueezeExcitation", "CBAM", "RFAConv", "PSAModule", "_SE"):
        assert f"class {other}(" not in code
    assert "OrderedDict" not in code
    assert "import attnsearch" not in code and "from attnsearch" not in code
    assert "check(" not in code  # the registry's checks are left out
    plain = generate_code(Architecture.uniform("resnet50", "none"))
    assert (
        "LAYERS = {}" in plain and "class Bottleneck" in plain and "class BasicBlock" not in plain
    )


# ---- from a search's results folder -----------------------------------------------------
WIDTH = 0.25
CLASSES, CHANNELS = 10, 1


def _proxy_net(arch: Architecture, seed: int) -> torch.nn.Module:
    torch.manual_seed(seed)
    net = build_network(arch, stem="proxy", width=WIDTH, num_classes=CLASSES, in_channels=CHANNELS)
    _perturb(net, seed, (CHANNELS, 16, 16))
    return net


@pytest.fixture(scope="module")
def results(tmp_path_factory) -> dict:
    """results/demo with trials: 0 trained (checkpoint), 1 over budget, 2 trained (no
    checkpoint), 3 failed, 4 a warm start's copy. Trial 2 is more accurate and costlier than trial 0."""
    import optuna
    from conftest import make_run

    from attnsearch.flops.analytic import analytic_flops
    from attnsearch.results import pareto_members

    root = tmp_path_factory.mktemp("export_results") / "results"
    a0 = Architecture.from_json(
        {
            "backbone": "resnet18",
            "slots": ["se", "none", "eca", "none", "cbam", "none", "ca", "none"],
        }
    )
    a1 = Architecture.uniform("resnet18", "rfcaconv")
    a2 = Architecture.from_json(
        {"backbone": "resnet18", "slots": ["rfaconv", "se", "eca", "eca", "epsa", "se", "se", "ca"]}
    )
    flops = {i: analytic_flops(a) for i, a in enumerate((a0, a1, a2))}
    budget = max(flops[0], flops[2]) + 1
    assert flops[1] > budget and flops[2] > flops[0]
    rundir = make_run(root, "demo", budget, width=WIDTH, dataset="digits", epochs=2)
    run_dir = rundir.path
    run = {"study_name": rundir.record.study_name}

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    storage = optuna.storages.RDBStorage(f"sqlite:///{run_dir / 'study.db'}")
    study = optuna.create_study(
        study_name=run["study_name"], storage=storage, directions=["maximize", "minimize"]
    )
    COMPLETE, FAIL = optuna.trial.TrialState.COMPLETE, optuna.trial.TrialState.FAIL

    def attrs(arch: Architecture, i: int, trained: bool, tune_id: str | None) -> dict:
        out = {"architecture": arch.to_json(), "digest": arch.digest(), "flops": flops[i]}
        out["trained"] = trained
        if tune_id:
            out["tune_trial_id"] = tune_id
        return out

    trials = [
        optuna.trial.create_trial(
            state=COMPLETE, values=[0.61, flops[0]], user_attrs=attrs(a0, 0, True, "ab12c_00000")
        ),
        optuna.trial.create_trial(
            state=COMPLETE, values=[0.0, flops[1]], user_attrs=attrs(a1, 1, False, None)
        ),
        optuna.trial.create_trial(
            state=COMPLETE, values=[0.72, flops[2]], user_attrs=attrs(a2, 2, True, "ab12c_00001")
        ),
        optuna.trial.create_trial(state=FAIL, user_attrs={"fail_reason": "boom"}),
        optuna.trial.create_trial(
            state=COMPLETE,
            values=[0.99, flops[0]],
            user_attrs={**attrs(a0, 0, True, None), "warm_start_from": "other#0"},
        ),  # copied by a warm start: another run's, never exported as this one's
    ]
    for t in trials:
        study.add_trial(t)
    members = pareto_members(run_dir, study)
    assert {m["trial"] for m in members} == {0, 2}
    (run_dir / "pareto.json").write_text(json.dumps(members, indent=2))

    # Tune's trial folder for trial 0: an intermediate and a final checkpoint
    trial_dir = run_dir / "tune" / "trainable_ab12c_00000_0_2025-01-01_00-00-00"
    early, final = _proxy_net(a0, seed=1), _proxy_net(a0, seed=2)
    (trial_dir / "checkpoint_000000").mkdir(parents=True)
    (trial_dir / "checkpoint_000001").mkdir()
    torch.save(
        {"epoch": 1, "model": early.state_dict(), "optimizer": {}},
        trial_dir / "checkpoint_000000" / "state.pt",
    )
    torch.save(
        {"epoch": 2, "model": final.state_dict()}, trial_dir / "checkpoint_000001" / "state.pt"
    )
    (trial_dir / "params.json").write_text(json.dumps({"trial_number": 0}))
    (run_dir / "tune" / "trainable_ab12c_00001_1_2025-01-01_00-00-01").mkdir()
    return {"root": root, "archs": (a0, a1, a2), "flops": flops, "final": final}


def _cli(*args: str) -> tuple[int, str, str]:
    """Run ``attnsearch export ARGS`` in this process; (exit code, stdout, stderr)."""
    from attnsearch.cli import main

    out, err = io.StringIO(), io.StringIO()
    code = 0
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        try:
            main(["export", *args])
        except SystemExit as e:
            code = e.code if isinstance(e.code, int) else 1
    return code, out.getvalue(), err.getvalue()


def test_export_trial_proxy_with_weights(tmp_path: Path, results: dict) -> None:
    out = tmp_path / "pkg" / "model.py"
    out.parent.mkdir()  # -o into a missing folder is refused (test_bad_input)
    code, stdout, stderr = _cli(
        "demo",
        "--trial",
        "0",
        "--proxy",
        "--weights",
        "-o",
        str(out),
        "--results-dir",
        str(results["root"]),
        "--json",
    )
    assert code == 0, stderr
    summary = json.loads(stdout)
    assert summary["trial"] == 0 and summary["accuracy"] == pytest.approx(0.61)
    assert summary["checkpoint"].endswith("checkpoint_000001/state.pt")
    assert (out.parent / "model.pt").is_file() and summary["weights"] == str(
        out.parent / "model.pt"
    )
    provenance = _import(out, "proxy_with_weights").PROVENANCE
    assert provenance["search"] == "demo" and provenance["trial"] == 0
    assert provenance["proxy_accuracy"] == pytest.approx(0.61)
    assert provenance["deploy_flops"] == results["flops"][0]
    assert f"{results['flops'][0]:,}" in out.read_text()

    final = results["final"].eval()
    x = torch.randn(3, CHANNELS, 16, 16, generator=torch.Generator().manual_seed(3))
    with torch.no_grad():
        expected = final(x)
    torch.save(x, tmp_path / "x.pt")
    script = (
        "import sys, importlib.util, torch\n"
        "try:\n    import attnsearch\nexcept ImportError:\n    pass\n"
        "else:\n    raise SystemExit('attnsearch importable')\n"
        f"spec = importlib.util.spec_from_file_location('m', {str(out)!r})\n"
        "m = importlib.util.module_from_spec(spec); spec.loader.exec_module(m)\n"
        "model = m.build_model(pretrained=True).eval()\n"
        "with torch.no_grad():\n"
        "    torch.save(model(torch.load('x.pt')), 'y.pt')\n"
    )
    proc = _run_isolated(tmp_path, script)
    assert proc.returncode == 0, proc.stderr[-3000:]
    torch.testing.assert_close(torch.load(tmp_path / "y.pt"), expected, rtol=0, atol=1e-6)


def test_export_proxy_without_weights(tmp_path: Path, results: dict) -> None:
    out = tmp_path / "proxy.py"
    code, _, stderr = _cli(
        "demo", "--trial", "0", "--proxy", "-o", str(out), "--results-dir", str(results["root"])
    )
    assert code == 0, stderr
    assert not (tmp_path / "model.pt").exists() and "pretrained" not in out.read_text()
    module = _import(out, "proxy_no_weights")
    assert (module.STEM, module.NUM_CLASSES, module.IN_CHANNELS) == ("proxy", CLASSES, CHANNELS)
    shapes = {k: v.shape for k, v in results["final"].state_dict().items()}
    assert {k: v.shape for k, v in module.build_model().state_dict().items()} == shapes


def test_export_best_and_max_flops(tmp_path: Path, results: dict) -> None:
    root = str(results["root"])
    a0, _, a2 = results["archs"]
    code, _, stderr = _cli("demo", "--best", "-o", str(tmp_path / "best.py"), "--results-dir", root)
    assert code == 0, stderr
    assert a2.to_json() == _import(tmp_path / "best.py", "best").ARCHITECTURE
    limit = str(results["flops"][0] + 1)
    code, _, stderr = _cli(
        "demo",
        "--best",
        "--max-flops",
        limit,
        "-o",
        str(tmp_path / "cheap.py"),
        "--results-dir",
        root,
    )
    assert code == 0, stderr
    assert a0.to_json() == _import(tmp_path / "cheap.py", "cheap").ARCHITECTURE


def test_export_arch_file(tmp_path: Path) -> None:
    arch = _mixed("resnet18", seed=3)
    (tmp_path / "arch.json").write_text(arch.dumps(indent=2))
    code, _, stderr = _cli("--arch", str(tmp_path / "arch.json"), "-o", str(tmp_path / "m.py"))
    assert code == 0, stderr
    module = _import(tmp_path / "m.py", "from_arch")
    assert arch.to_json() == module.ARCHITECTURE
    assert count_params(module.build_model()) == count_params(build_network(arch))


@pytest.mark.parametrize(
    "args, message",
    [
        (["nosuch", "--trial", "0"], "no search named 'nosuch'"),
        (["demo", "--trial", "99"], "has no trial 99"),
        (["demo", "--trial", "1"], "over the FLOPs budget"),
        (["demo", "--trial", "3"], "fail"),
        (["demo", "--trial", "4"], "a copy of trial other#0 of another run"),
        (["demo", "--trial", "0", "--best"], "exactly one of --trial N or --best"),
        (["demo"], "exactly one of --trial N or --best"),
        (["demo", "--trial", "0", "--weights"], "--weights needs --proxy"),
        (["demo", "--trial", "2", "--proxy"], "no checkpoint of trial 2"),
        (["demo", "--best", "--max-flops", "1k"], "no Pareto-front member"),
        (["demo", "--best", "--max-flops", "lots"], "invalid budget"),
        (["demo", "--trial", "0", "--max-flops", "1G"], "--max-flops goes with --best"),
        (["demo", "--arch", "a.json"], "not both"),
        ([], "give a search NAME"),
    ],
)
def test_export_errors_are_one_line(tmp_path: Path, results: dict, args, message) -> None:
    target = tmp_path / "model.py"
    code, _, stderr = _cli(*args, "-o", str(target), "--results-dir", str(results["root"]))
    assert code == 2
    lines = stderr.strip().splitlines()
    assert len(lines) == 1 and message in lines[0], stderr
    assert not target.exists()


def test_existing_files_need_force_and_weights_follow_the_stem(tmp_path: Path, results: dict):
    """No file is overwritten without --force; the weights are ``<stem>.pt`` beside the code."""
    root = str(results["root"])
    out = tmp_path / "net.py"
    args = ["demo", "--trial", "0", "--proxy", "--weights", "-o", str(out), "--results-dir", root]
    (tmp_path / "net.pt").write_bytes(b"keep")
    code, _, stderr = _cli(*args)
    assert code == 2 and "net.pt exists; give --force" in stderr
    assert not out.exists() and (tmp_path / "net.pt").read_bytes() == b"keep"
    code, _, stderr = _cli(*args, "--force")
    assert code == 0, stderr
    assert _import(out, "net_weights").WEIGHTS_FILE == "net.pt"
    assert torch.load(tmp_path / "net.pt", weights_only=True).keys() == (
        results["final"].state_dict().keys()
    )
    assert not (tmp_path / "model.pt").exists()
    out.write_text("# mine\n")
    code, _, stderr = _cli("--arch", str(tmp_path / "missing.json"), "-o", str(out))
    assert code == 2
    arch = tmp_path / "arch.json"
    arch.write_text(Architecture.uniform("resnet18").dumps())
    code, _, stderr = _cli("--arch", str(arch), "-o", str(out))
    assert code == 2 and "exists; give --force" in stderr and out.read_text() == "# mine\n"
    assert _cli("--arch", str(arch), "-o", str(out), "--force")[0] == 0


@pytest.mark.parametrize(
    "search", ['x"""\nimport os; os.system("echo pwned")\n"""', "it's \\ odd\r\x00"]
)
def test_provenance_is_data_not_code(tmp_path: Path, search: str) -> None:
    """Text from a results folder lands in PROVENANCE as a literal that reads back equal."""
    meta = {"search": search, "trial": 1, "accuracy": 0.25, "flops": 10, "params": 5}
    code = generate_code(Architecture.uniform("resnet18"), meta=meta)
    docstring = ast.get_docstring(ast.parse(code))
    assert search not in docstring
    (tmp_path / "m.py").write_text(code)
    provenance = _import(tmp_path / "m.py", "provenance_case").PROVENANCE
    assert provenance["search"] == search and provenance["trial"] == 1
    with pytest.raises(Exception, match="cannot write|expected"):
        generate_code(Architecture.uniform("resnet18"), meta={"accuracy": float("nan")})
    with pytest.raises(Exception, match="expected int"):
        generate_code(Architecture.uniform("resnet18"), meta={"trial": "1; import os"})


def test_weights_checkpoint_must_match(tmp_path: Path, results: dict) -> None:
    """A checkpoint whose shapes are not the trial's network is refused (one line)."""
    root = tmp_path / "results"
    shutil.copytree(results["root"], root)
    ckpt = next((root / "demo" / "tune").glob("*00000*/checkpoint_000001/state.pt"))
    state = torch.load(ckpt, weights_only=False)
    state["model"]["fc.bias"] = torch.zeros(3)
    torch.save(state, ckpt)
    code, _, stderr = _cli(
        "demo", "--trial", "0", "--proxy", "-o", str(tmp_path / "m.py"), "--results-dir", str(root)
    )
    assert code == 2 and "does not match" in stderr
