"""GPUs per trial (issue 21, item 1): ``--gpus-per-trial auto`` by default, resolved against
the Ray cluster; never trains on the CPU after reserving a GPU, nor silently drops GPUs.

This machine has no CUDA: a Ray head started with ``--num-gpus 1`` schedules GPU shares
without a device, which is what a cluster with a broken driver or a CPU-only torch is.
"""

from __future__ import annotations

import subprocess
import sys

import pytest
import torch
from conftest import cli, ray_head, trial_rows

from attnsearch.errors import InputError
from attnsearch.search import _gpus
from attnsearch.search._gpus import auto_share, trial_device

CPU_TORCH = torch.version.cuda is None and getattr(torch.version, "hip", None) is None


# ---- the rule ---------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("gpus", "concurrency", "share"),
    [
        (0, 2, 0.0),  # no GPU: CPUs
        (1, 1, 1.0),
        (1, 2, 0.5),  # the default concurrency on one GPU: both at once
        (1, 3, 1 / 3),
        (1, 4, 0.25),
        (1, 16, 0.25),  # never more than 4 on one GPU (the most measured to gain)
        (8, 2, 1.0),  # fewer trials than GPUs: a whole GPU each
        (2, 8, 0.25),
        (4, 8, 0.5),
    ],
)
def test_auto_share_rule(gpus, concurrency, share):
    assert auto_share(gpus, concurrency) == share


def test_resolve_refuses_a_cpu_only_torch_when_trials_reserve_gpus(monkeypatch):
    monkeypatch.setattr(_gpus, "cluster_gpus", lambda: 1.0)
    monkeypatch.setattr(_gpus, "torch_cuda_problem", lambda: "torch 9+cpu is built without CUDA")
    share, _ = _gpus.resolve_gpus(None, 2)
    with pytest.raises(InputError, match=r"reserve 0\.5 GPU each .*built without CUDA"):
        _gpus.check_driver_torch(share)
    with pytest.raises(InputError, match="--gpus-per-trial 0"):
        _gpus.check_driver_torch(_gpus.resolve_gpus(0.25, 2)[0])
    _gpus.check_driver_torch(0.0)  # CPU trials: any torch
    share, line = _gpus.resolve_gpus(0.0, 2)  # explicit 0: CPUs, one warning line
    assert share == 0 and line.startswith("warning: --gpus-per-trial 0") and "\n" not in line
    monkeypatch.setattr(_gpus, "torch_cuda_problem", lambda: None)
    share, line = _gpus.resolve_gpus(None, 2)
    assert share == 0.5 and "auto" in line and "0.5 GPU per trial" in line
    monkeypatch.setattr(_gpus, "cluster_gpus", lambda: 0.0)
    assert _gpus.resolve_gpus(None, 2) == (0.0, None)  # no GPUs: nothing to say
    assert _gpus.resolve_gpus(0.0, 2) == (0.0, None)


@pytest.mark.skipif(not CPU_TORCH, reason="needs a torch built without CUDA")
def test_a_trial_that_reserved_a_gpu_does_not_fall_back_to_the_cpu():
    assert trial_device(0.0) == torch.device("cpu")
    with pytest.raises(
        RuntimeError, match=r"reserved 0\.5 GPU but cannot use CUDA: .*without CUDA"
    ):
        trial_device(0.5)


def test_run_option_takes_auto_and_shows_it_as_the_default(tmp_path):
    from click.testing import CliRunner

    from attnsearch.cli import cli
    from attnsearch.cli.run import _GpuShare
    from attnsearch.search import RunSettings

    out = CliRunner().invoke(cli, ["run", "--help"], terminal_width=200).output
    assert "--gpus-per-trial" in out and "[default: auto]" in out
    share = _GpuShare.of(RunSettings, "gpus_per_trial")
    assert share.convert("auto", None, None) is None and share.convert(" AUTO ", None, None) is None
    assert share.convert("0.25", None, None) == 0.25
    assert RunSettings().gpus_per_trial is None  # the settings' default is auto


# ---- against a Ray head with one (device-less) GPU ------------------------------------------
@pytest.fixture(scope="module")
def gpu_head():
    """``ray start --head --num-gpus 1 --num-cpus 2`` on loopback, in a temp dir of its own;
    yields (address, env). Stops only this head's processes (its session folder)."""
    with ray_head("--num-gpus=1", "--num-cpus=2", timeout=180) as (address, env, _):
        yield address, env


def _run_args(address: str, name: str, *extra: str) -> list[str]:
    return [
        "run", "--budget", "2G", "--space", "tiny", "--dataset", "synthetic",
        "--resolution", "8", "--width", "0.25", "--limit", "64", "--epochs", "1",
        "--trials", "1", "--repeats", "1", "--references", "none",
        "--address", address, "--name", name, *extra,
    ]  # fmt: skip


@pytest.mark.skipif(not CPU_TORCH, reason="needs a torch built without CUDA")
def test_default_on_a_gpu_cluster_with_cpu_only_torch_is_refused_before_any_trial(
    gpu_head, tmp_path
):
    address, env = gpu_head
    proc = cli(*_run_args(address, "auto"), cwd=tmp_path, env=env, timeout=300)
    assert proc.returncode == 2, proc.stderr[-3000:]
    assert "Traceback" not in proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert lines[-1].startswith("attnsearch: error: "), lines
    assert "reserve 0.5 GPU each" in lines[-1] and "built without CUDA" in lines[-1], lines
    assert "--gpus-per-trial 0" in lines[-1]
    assert not (tmp_path / "results" / "auto").exists(), "refused before any trial: no folder"


@pytest.mark.skipif(not CPU_TORCH, reason="needs a torch built without CUDA")
def test_trials_that_reserved_a_gpu_without_cuda_fail_with_the_reason(gpu_head, tmp_path):
    """The driver believes its torch has CUDA (patched in the driver only); the workers'
    torch has none: every trial fails with the reason, recorded and shown; exit 1; no
    trial trains on the CPU."""
    address, env = gpu_head
    code = (
        "import sys; import attnsearch.search._gpus as g; "
        "g.torch_cuda_problem = lambda: None; "
        "from attnsearch.cli import main; main(sys.argv[1:])"
    )
    proc = subprocess.run(
        [sys.executable, "-c", code, *_run_args(address, "nocuda")],
        cwd=tmp_path, env=env, capture_output=True, text=True, timeout=600,
    )  # fmt: skip
    assert proc.returncode == 1, proc.stderr[-3000:]
    assert "0.5 GPU per trial (--gpus-per-trial auto" in proc.stderr
    assert "failed — reserved 0.5 GPU but cannot use CUDA" in proc.stderr + proc.stdout
    rows = trial_rows(tmp_path / "results" / "nocuda")
    assert rows and all(r["status"] == "fail" for r in rows), rows
    assert all("reserved 0.5 GPU but cannot use CUDA" in r["reason"] for r in rows), rows
    log = tmp_path / "results" / "nocuda" / "executions.jsonl"
    assert not log.exists() or not log.read_text().strip(), "no training started"


def test_explicit_zero_on_a_gpu_cluster_warns_and_trains_on_cpus(gpu_head, tmp_path):
    address, env = gpu_head
    proc = cli(*_run_args(address, "cpu", "--gpus-per-trial", "0"), cwd=tmp_path, env=env)
    assert proc.returncode == 0, proc.stderr[-3000:]
    warnings = [x for x in proc.stderr.splitlines() if "warning: --gpus-per-trial 0" in x]
    assert len(warnings) == 1 and "1 GPU(s)" in warnings[0], proc.stderr
    rows = trial_rows(tmp_path / "results" / "cpu")
    assert [r["status"] for r in rows] == ["complete"], rows
