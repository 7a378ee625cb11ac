"""A trial's fixed costs cut (issue 21, item 2): the dataset kept by the worker across
trials, one validation shape, checkpoints on a time interval (the final weights always),
the worker's timers recorded on the trial."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from conftest import make_run

from attnsearch import Architecture
from attnsearch.backbones import build_network
from attnsearch.datasets import load_dataset
from attnsearch.settings import ProxyConfig
from attnsearch.training import _resident, validate


def _data():
    return load_dataset("synthetic", resolution=8, limit=96, seed=0)


def test_validation_pads_the_ragged_batch_and_counts_only_real_images():
    torch.manual_seed(0)
    data = _data()
    net = build_network(
        Architecture.uniform("resnet18"), stem="proxy", width=0.25,
        num_classes=data.num_classes, in_channels=data.train_x.shape[1],
    ).eval()  # fmt: skip
    mean = torch.tensor(data.mean).view(1, -1, 1, 1)
    std = torch.tensor(data.std).view(1, -1, 1, 1)
    x, y = data.val_x[:23], data.val_y[:23]
    with torch.no_grad():
        logits = net(((x.float() / 255.0) - mean) / std)
    acc = (logits.argmax(1) == y).sum().item() / len(y)
    loss = F.cross_entropy(logits, y).item()
    for batch in (5, 10, 23, 512):  # 23 = 4 x 5 + 3: the last batch padded with 2
        got_acc, got_loss = validate(net, x, y, mean, std, batch_size=batch)
        assert got_acc == acc
        assert abs(got_loss - loss) < 1e-5


def test_the_dataset_is_placed_once_per_process_and_one_at_a_time():
    data, other = _data(), _data()
    cpu = torch.device("cpu")
    first = _resident(data, cpu, None)
    assert _resident(data, cpu, None) is first  # the next trial: no copy
    resized = _resident(data, cpu, 4)
    assert resized is not first and resized[0].shape[-1] == 4
    again = _resident(other, cpu, None)  # another dataset replaces it
    assert again is not first and torch.equal(again[0], first[0])
    assert _resident(other, cpu, None) is again


def test_a_trial_records_the_time_of_each_part():
    from attnsearch.search._worker import run_trial

    reports = []
    out = run_trial(
        Architecture.uniform("resnet18"),
        ProxyConfig(epochs=2, batch_size=32, width=0.25),
        _data(),
        0,
        lambda metrics, payload: reports.append(metrics["timings"]),
    )
    assert out.failed is None
    assert set(out.timings) == {"data", "build", "steps", "validate", "report"}
    assert all(v >= 0 for v in out.timings.values()) and out.timings["steps"] > 0
    assert reports[0]["report"] == 0 and reports[1]["steps"] >= reports[0]["steps"]


def test_the_worker_fetches_the_dataset_once(ray_local):
    from attnsearch.search._worker import resident_dataset

    data = _data()
    handle = (ray_local.put(data),)
    first = resident_dataset(handle)
    assert resident_dataset(handle) is first and torch.equal(first.train_x, data.train_x)
    assert resident_dataset(data) is data  # a Dataset given as is


def test_checkpoints_follow_the_interval_and_the_final_weights_are_always_kept(ray_local, tmp_path):
    """Default interval (60 s) and 2-epoch trials of seconds: no intermediate checkpoint,
    only the final weights (Tune's checkpoint_000000 holds epoch 2, without optimizer)."""
    from attnsearch.rundir import load_checkpoint
    from attnsearch.search import run_search
    from attnsearch.spaces import load_space

    run = make_run(
        tmp_path, "ck", 10**15, space="tiny", dataset="synthetic", trials=2, epochs=2,
        concurrency=1, width=0.25, batch_size=32, sampler="random", references="none",
        repeats=1, resolution=8, limit=96,
    )  # fmt: skip
    assert run.settings.checkpoint_interval == 60
    run_search(run, space=load_space("tiny"), dataset=_data())
    ckpts = sorted(run.tune_dir.glob("*/checkpoint_*"))
    assert len(ckpts) == 2 and all(c.name == "checkpoint_000000" for c in ckpts), ckpts
    for c in ckpts:
        state = load_checkpoint(c)
        assert state["epoch"] == 2 and "optimizer" not in state
    from attnsearch.results import open_study

    study = open_study(run.path, run.record.study_name)
    timings = [t.user_attrs["timings"] for t in study.trials if t.user_attrs.get("trained")]
    assert len(timings) == 2
    for tm in timings:
        assert tm["sent"] >= tm["entered"] and tm["steps"] > 0 and tm["save_now"] > 0
