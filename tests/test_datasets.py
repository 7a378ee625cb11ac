"""Tests for :mod:`attnsearch.datasets`: every source, the split, and the errors.

CIFAR archives are written here in the exact "python version" layout, so nothing touches
the network (the one download test replaces ``urlopen``).
"""

from __future__ import annotations

import dataclasses
import hashlib
import io
import pickle
import tarfile
import urllib.error
from pathlib import Path

import pytest
import torch
from torch import nn

from attnsearch.datasets import Dataset, DatasetError, _cifar, _core, dataset_names, load_dataset

np = pytest.importorskip("numpy")  # the CIFAR pickles hold numpy arrays

# ---------------------------------------------------------------------------------------
# digits


def test_digits_native() -> None:
    ds = load_dataset("digits")
    assert ds.name == "digits"
    assert ds.num_classes == 10
    assert ds.classes == tuple("0123456789")
    assert ds.input_shape == (1, 8, 8)
    assert ds.train_x.dtype == ds.val_x.dtype == torch.uint8
    assert ds.train_y.dtype == ds.val_y.dtype == torch.int64
    assert ds.train_x.shape[1:] == ds.val_x.shape[1:] == (1, 8, 8)
    assert len(ds.train_x) == len(ds.train_y) and len(ds.val_x) == len(ds.val_y)
    assert len(ds.train_y) + len(ds.val_y) == 1797
    # 0..16 grey levels are scaled to the full uint8 range
    both = torch.cat([ds.train_x, ds.val_x])
    assert int(both.min()) == 0 and int(both.max()) == 255
    assert len(torch.unique(both)) == 17


def test_digits_split_is_stratified() -> None:
    ds = load_dataset("digits", val_fraction=0.2)
    per_class = torch.bincount(torch.cat([ds.train_y, ds.val_y]), minlength=10)
    val_counts = torch.bincount(ds.val_y, minlength=10)
    expected = torch.floor(per_class.double() * 0.2 + 0.5).long()
    assert torch.equal(val_counts, expected)
    assert bool((torch.bincount(ds.train_y, minlength=10) > 0).all())
    assert abs(len(ds.val_y) - 0.2 * 1797) < 10


def test_digits_resolution() -> None:
    ds = load_dataset("digits", resolution=16)
    assert ds.input_shape == (1, 16, 16)
    assert load_dataset("digits", resolution=4).input_shape == (1, 4, 4)  # antialiased
    assert ds.train_x.dtype == torch.uint8
    native = load_dataset("digits")
    # same split, and the upsampled images keep their brightness
    assert torch.equal(ds.train_y, native.train_y)
    assert ds.mean[0] == pytest.approx(native.mean[0], abs=0.01)


def test_digits_deterministic_split() -> None:
    a = load_dataset("digits", seed=3)
    b = load_dataset("digits", seed=3)
    c = load_dataset("digits", seed=4)
    assert torch.equal(a.train_x, b.train_x) and torch.equal(a.train_y, b.train_y)
    assert torch.equal(a.val_x, b.val_x) and torch.equal(a.val_y, b.val_y)
    assert a.mean == b.mean and a.std == b.std
    assert not torch.equal(a.val_x, c.val_x)


def test_mean_and_std_describe_train_x() -> None:
    ds = load_dataset("digits")
    x = ds.train_x.double() / 255
    assert ds.mean == pytest.approx(tuple(x.mean(dim=(0, 2, 3)).tolist()))
    assert ds.std == pytest.approx(tuple(x.std(dim=(0, 2, 3), unbiased=False).tolist()))
    z = ds.normalize(ds.train_x)
    assert z.dtype == torch.float32
    assert float(z.mean()) == pytest.approx(0.0, abs=1e-4)
    assert float(z.std()) == pytest.approx(1.0, abs=1e-3)


def test_constant_channel_gets_unit_std() -> None:
    x = torch.zeros(4, 2, 3, 3, dtype=torch.uint8)
    x[:, 1] = torch.arange(4, dtype=torch.uint8).view(4, 1, 1) * 85
    mean, std = _core._channel_stats(x)
    assert mean == pytest.approx((0.0, 0.5))
    assert std[0] == 1.0  # a constant channel: normalising must not divide by zero
    assert std[1] == pytest.approx(float((x[:, 1].double() / 255).std(unbiased=False)))


def test_limit_is_stratified_and_keeps_validation() -> None:
    full = load_dataset("digits", seed=1)
    small = load_dataset("digits", seed=1, limit=105)
    assert len(small.train_y) == 105
    counts = torch.bincount(small.train_y, minlength=10)
    assert int(counts.min()) >= 9 and int(counts.max()) <= 12
    assert torch.equal(small.val_x, full.val_x) and torch.equal(small.val_y, full.val_y)
    # a limit above the training size changes nothing
    assert torch.equal(load_dataset("digits", seed=1, limit=10**6).train_x, full.train_x)


def test_summary_and_names() -> None:
    ds = load_dataset("digits", limit=50)
    summary = ds.summary()
    assert summary["name"] == "digits"
    assert summary["input_shape"] == [1, 8, 8]
    assert summary["train_size"] == 50
    assert dataset_names() == [
        "digits",
        "clutter",
        "mnist-clutter",
        "synthetic",
        "cifar10",
        "cifar100",
        "folder:PATH",
    ]


_NO_IO = {"data_dir": Path("data"), "download": False, "seed": 0}


def test_the_names_are_written_once_and_every_one_has_a_builder(monkeypatch) -> None:
    """dataset_specs holds the names and what each decides; the registry builds
    exactly those names; the help text, the error and dataset_names read the one table."""
    from attnsearch.datasets import _registry
    from attnsearch.settings import (
        DATASETS,
        RunSettings,
        dataset_forms,
        field_help,
        flips_by_default,
    )

    assert list(_registry._BUILDERS) == [d.name for d in DATASETS]
    assert field_help(RunSettings, "dataset") == dataset_forms(compact=True)
    assert "mnist-clutter[:P]" in dataset_forms(compact=True)
    assert "synthetic[:N]" in dataset_forms(compact=True) and "folder:PATH" in dataset_forms()
    with pytest.raises(DatasetError) as e:
        load_dataset("nope")
    assert str(e.value).endswith(f"valid: {dataset_forms()}")
    # every spelling the error offers reaches its builder (placeholders filled in); an
    # argument on a name that takes none is refused as unknown
    built = []
    fake = {d.name: (lambda spec, arg, *_, n=d.name: built.append((n, arg))) for d in DATASETS}
    monkeypatch.setattr(_registry, "_BUILDERS", fake)
    example = {"SIZE": "32", "P": "3", "N": "5", "PATH": "/some/folder"}
    for form in dataset_forms().split(", "):
        head, _, arg = form.partition(":")
        _registry._resolve(f"{head}:{example[arg]}" if arg else head, **_NO_IO)
    assert built == [
        ("digits", None), ("clutter", None), ("clutter", "32"), ("mnist-clutter", None),
        ("mnist-clutter", "3"), ("synthetic", None), ("synthetic", "5"), ("cifar10", None),
        ("cifar100", None), ("folder", "/some/folder"),
    ]  # fmt: skip
    with pytest.raises(DatasetError, match="unknown dataset 'digits:3'"):
        _registry._resolve("digits:3", **_NO_IO)
    assert dataset_names() == [f for f in dataset_forms().split(", ") if f.count(":") == 0] + [
        "folder:PATH"
    ]
    # what a name decides: flips for photographs only; the caveat on digits only
    assert [d.name for d in DATASETS if flips_by_default(d.name)] == [
        "cifar10", "cifar100", "folder"
    ]  # fmt: skip
    assert flips_by_default("folder:/some/photos") and flips_by_default("CIFAR10")
    assert not flips_by_default("mnist-clutter:3") and not flips_by_default("nope")


@pytest.mark.parametrize(
    ("kwargs", "fragment"),
    [
        ({"resolution": 0}, "resolution"),
        ({"resolution": 2.5}, "resolution"),
        ({"val_fraction": 0.0}, "val_fraction"),
        ({"val_fraction": 1.0}, "val_fraction"),
        ({"limit": 0}, "limit"),
        ({"limit": 5}, "limit=5"),
    ],
)
def test_bad_options(kwargs: dict, fragment: str) -> None:
    with pytest.raises(DatasetError, match=fragment):
        load_dataset("digits", **kwargs)


@pytest.mark.parametrize("spec", ["mnist", "cifar", "digits:3", "synthetic:1", "synthetic:x"])
def test_unknown_spec(spec: str) -> None:
    with pytest.raises(DatasetError) as info:
        load_dataset(spec)
    message = str(info.value)
    assert "\n" not in message
    if not spec.startswith("synthetic"):
        assert "digits" in message and "folder:PATH" in message


# ---------------------------------------------------------------------------------------
# synthetic


def test_synthetic_shapes_and_determinism() -> None:
    ds = load_dataset("synthetic")
    assert ds.name == "synthetic"
    assert ds.input_shape == (3, 16, 16)
    assert ds.num_classes == 10
    assert len(ds.train_y) + len(ds.val_y) == 2000
    assert torch.equal(ds.train_x, load_dataset("synthetic").train_x)
    assert not torch.equal(ds.train_x, load_dataset("synthetic", seed=1).train_x)
    four = load_dataset("synthetic:4", resolution=24)
    assert four.name == "synthetic:4"
    assert four.num_classes == 4 and len(four.classes) == 4
    assert four.input_shape == (3, 24, 24)
    assert len(four.train_y) + len(four.val_y) == 800


def test_synthetic_is_learnable() -> None:
    ds = load_dataset("synthetic", seed=0)
    torch.manual_seed(0)
    net = nn.Sequential(
        nn.Conv2d(3, 16, 3, padding=1),
        nn.BatchNorm2d(16),
        nn.ReLU(),
        nn.MaxPool2d(2),
        nn.Conv2d(16, 32, 3, padding=1),
        nn.BatchNorm2d(32),
        nn.ReLU(),
        nn.AdaptiveAvgPool2d(1),
        nn.Flatten(),
        nn.Linear(32, ds.num_classes),
    )
    opt = torch.optim.Adam(net.parameters(), lr=3e-3)
    x, y = ds.normalize(ds.train_x), ds.train_y
    g = torch.Generator().manual_seed(0)
    for _ in range(100):
        idx = torch.randint(0, len(y), (64,), generator=g)
        loss = nn.functional.cross_entropy(net(x[idx]), y[idx])
        opt.zero_grad()
        loss.backward()
        opt.step()
    net.eval()
    with torch.no_grad():
        accuracy = (net(ds.normalize(ds.val_x)).argmax(1) == ds.val_y).float().mean().item()
    assert accuracy > 0.6  # chance is 0.1; this reaches about 0.9


# ---------------------------------------------------------------------------------------
# CIFAR, written here in the standard layout


def _images(n: int, start: int) -> np.ndarray:
    """Unique uint8 rows of 3072 (R plane, G plane, B plane)."""
    rng = np.random.default_rng(start)
    data = rng.integers(0, 256, size=(n, 3072), dtype=np.uint8)
    data[:, 0] = np.arange(start, start + n) % 256  # distinct first bytes keep rows unique
    data[:, 1] = np.arange(start, start + n) // 256
    return data


def _pickle(obj: dict) -> bytes:
    return pickle.dumps(obj, protocol=2)


def _cifar10_files(per_batch: int = 6) -> tuple[dict[str, bytes], dict[bytes, int]]:
    """Member name → bytes, and image bytes (CHW) → label for every training image."""
    names = [b"airplane", b"automobile", b"bird", b"cat", b"deer"]
    names += [b"dog", b"frog", b"horse", b"ship", b"truck"]
    files = {"batches.meta": _pickle({b"label_names": names, b"num_vis": 3072})}
    truth: dict[bytes, int] = {}
    for b in range(1, 6):
        data = _images(per_batch, start=100 * b)
        labels = [(i + per_batch * (b - 1)) % 10 for i in range(per_batch)]
        if b == 1:  # one image with constant planes pins the channel order
            data[0] = np.repeat(np.array([10, 20, 30], dtype=np.uint8), 1024)
        files[f"data_batch_{b}"] = _pickle(
            {b"batch_label": b"training batch", b"labels": labels, b"data": data}
        )
        truth.update({row.tobytes(): y for row, y in zip(data, labels, strict=True)})
    test = np.full((10, 3072), 7, dtype=np.uint8)
    files["test_batch"] = _pickle({b"labels": list(range(10)), b"data": test})
    return files, truth


def _cifar100_files() -> tuple[dict[str, bytes], dict[bytes, int]]:
    fine = [f"class{i:02d}".encode() for i in range(100)]
    coarse = [f"super{i:02d}".encode() for i in range(20)]
    data = _images(200, start=0)
    fine_labels = [i % 100 for i in range(200)]
    coarse_labels = [(i % 100) // 5 for i in range(200)]
    files = {
        "meta": _pickle({b"fine_label_names": fine, b"coarse_label_names": coarse}),
        "train": _pickle(
            {b"data": data, b"fine_labels": fine_labels, b"coarse_labels": coarse_labels}
        ),
        "test": _pickle({b"data": np.full((5, 3072), 7, np.uint8), b"fine_labels": [0] * 5}),
    }
    truth = {row.tobytes(): y for row, y in zip(data, fine_labels, strict=True)}
    return files, truth


def _write_tar(path: Path, folder: str, files: dict[str, bytes]) -> Path:
    with tarfile.open(path, "w:gz") as tar:
        for name, blob in files.items():
            info = tarfile.TarInfo(f"{folder}/{name}")
            info.size = len(blob)
            tar.addfile(info, io.BytesIO(blob))
    return path


def _write_folder(root: Path, files: dict[str, bytes]) -> None:
    root.mkdir(parents=True)
    for name, blob in files.items():
        (root / name).write_bytes(blob)


def _trust(
    mp: pytest.MonkeyPatch, key: str, *, tar: Path | None = None, folder: Path | None = None
):
    """Make the loader accept these hand-made files as if they were the published ones."""
    archive = _cifar._ARCHIVES[key]
    md5 = archive.md5 if tar is None else hashlib.md5(tar.read_bytes()).hexdigest()
    members = archive.member_md5
    if folder is not None:
        members = tuple((m, hashlib.md5((folder / m).read_bytes()).hexdigest()) for m, _ in members)
    mp.setitem(_cifar._ARCHIVES, key, dataclasses.replace(archive, md5=md5, member_md5=members))


def _check_cifar(ds: Dataset, truth: dict[bytes, int]) -> None:
    assert ds.input_shape == (3, 32, 32)
    assert ds.train_x.dtype == torch.uint8
    assert len(ds.train_y) + len(ds.val_y) == len(truth)
    for x, y in ((ds.train_x, ds.train_y), (ds.val_x, ds.val_y)):
        for image, label in zip(x, y.tolist(), strict=True):
            # flattening (C, H, W) must give back the stored row: R plane, G, B
            assert truth[image.numpy().tobytes()] == label


def test_cifar10_from_archive(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    files, truth = _cifar10_files()
    tar = _write_tar(tmp_path / "cifar-10-python.tar.gz", "cifar-10-batches-py", files)
    _trust(monkeypatch, "cifar10", tar=tar)
    ds = load_dataset("cifar10", data_dir=tmp_path, download=False)
    assert ds.name == "cifar10"
    assert ds.num_classes == 10
    assert ds.classes[:3] == ("airplane", "automobile", "bird")
    assert len(ds.train_y) + len(ds.val_y) == 30  # the training batches only, no test_batch
    _check_cifar(ds, truth)
    constant = [x for x in torch.cat([ds.train_x, ds.val_x]) if int(x[0, 5, 5]) == 10]
    planes = [x for x in constant if bool((x[0] == 10).all() & (x[1] == 20).all())]
    assert len(planes) == 1 and bool((planes[0][2] == 30).all())


def test_cifar10_extracted_and_resized(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    files, truth = _cifar10_files()
    _write_folder(tmp_path / "cifar-10-batches-py", files)
    _trust(monkeypatch, "cifar10", folder=tmp_path / "cifar-10-batches-py")
    ds = load_dataset("cifar10", data_dir=tmp_path, download=False)
    _check_cifar(ds, truth)
    small = load_dataset("cifar10", data_dir=tmp_path, download=False, resolution=16)
    assert small.input_shape == (3, 16, 16)
    assert torch.equal(small.train_y, ds.train_y)


def test_cifar100_fine_labels(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    files, truth = _cifar100_files()
    tar = _write_tar(tmp_path / "cifar-100-python.tar.gz", "cifar-100-python", files)
    _trust(monkeypatch, "cifar100", tar=tar)
    ds = load_dataset("cifar100", data_dir=tmp_path, download=False)
    assert ds.num_classes == 100
    assert ds.classes[7] == "class07"
    assert len(ds.val_y) == 100 and len(ds.train_y) == 100  # 2 a class: one each way
    _check_cifar(ds, truth)


def test_cifar_missing_without_download(tmp_path: Path) -> None:
    with pytest.raises(DatasetError, match="cifar-10-python.tar.gz") as info:
        load_dataset("cifar10", data_dir=tmp_path, download=False)
    assert str(tmp_path) in str(info.value)


def test_cifar_garbage_archive(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "cifar-10-python.tar.gz"
    path.write_bytes(b"this is not a gzip file" * 100)
    _trust(monkeypatch, "cifar10", tar=path)  # past the md5 check: the reader must cope
    with pytest.raises(DatasetError, match="corrupted") as info:
        load_dataset("cifar10", data_dir=tmp_path, download=False)
    assert str(path) in str(info.value)


def test_cifar_truncated_archive(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    files, _ = _cifar10_files(per_batch=40)
    path = _write_tar(tmp_path / "cifar-10-python.tar.gz", "cifar-10-batches-py", files)
    path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])
    _trust(monkeypatch, "cifar10", tar=path)
    with pytest.raises(DatasetError) as info:
        load_dataset("cifar10", data_dir=tmp_path, download=False)
    assert str(path) in str(info.value)


def test_cifar_corrupted_pickle(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    files, _ = _cifar10_files()
    files["data_batch_3"] = b"\x80\x02 not a pickle"
    tar = _write_tar(tmp_path / "cifar-10-python.tar.gz", "cifar-10-batches-py", files)
    _trust(monkeypatch, "cifar10", tar=tar)
    with pytest.raises(DatasetError, match="data_batch_3"):
        load_dataset("cifar10", data_dir=tmp_path, download=False)


def test_cifar_wrong_data_shape(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    files, _ = _cifar10_files()
    files["data_batch_2"] = _pickle({b"labels": [0], b"data": np.zeros((1, 100), np.uint8)})
    _write_folder(tmp_path / "cifar-10-batches-py", files)
    _trust(monkeypatch, "cifar10", folder=tmp_path / "cifar-10-batches-py")
    with pytest.raises(DatasetError, match="data_batch_2"):
        load_dataset("cifar10", data_dir=tmp_path, download=False)


def test_cifar_archive_in_data_dir_is_md5_checked(tmp_path: Path) -> None:
    files, _ = _cifar10_files()
    path = _write_tar(tmp_path / "cifar-10-python.tar.gz", "cifar-10-batches-py", files)
    with pytest.raises(DatasetError, match="md5") as info:
        load_dataset("cifar10", data_dir=tmp_path, download=False)
    assert str(path) in str(info.value) and "c58f30108f718f92721af3b95e74349a" in str(info.value)


def test_cifar_extracted_files_are_md5_checked(tmp_path: Path) -> None:
    files, _ = _cifar10_files()
    _write_folder(tmp_path / "cifar-10-batches-py", files)
    with pytest.raises(DatasetError, match="md5"):
        load_dataset("cifar10", data_dir=tmp_path, download=False)


class _Boom:
    def __reduce__(self):
        return (Path.touch, (Path(_BOOM_MARK),))


_BOOM_MARK = "/tmp/attnsearch-test-pickle-ran-code"


def test_cifar_pickle_cannot_run_code(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    mark = Path(_BOOM_MARK)
    mark.unlink(missing_ok=True)
    files, _ = _cifar10_files()
    files["data_batch_1"] = pickle.dumps({b"labels": [0], b"data": _Boom()}, protocol=2)
    folder = tmp_path / "cifar-10-batches-py"
    _write_folder(folder, files)
    _trust(monkeypatch, "cifar10", folder=folder)  # even a file that passes the md5 check
    with pytest.raises(DatasetError, match="data_batch_1"):
        load_dataset("cifar10", data_dir=tmp_path, download=False)
    assert not mark.exists()


class _FakeResponse(io.BytesIO):
    """What ``urlopen`` returns, served from memory."""


def test_cifar_download(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    files, truth = _cifar10_files()
    blob = _write_tar(tmp_path / "source.tar.gz", "cifar-10-batches-py", files).read_bytes()
    archive = dataclasses.replace(_cifar._ARCHIVES["cifar10"], md5=hashlib.md5(blob).hexdigest())
    monkeypatch.setitem(_cifar._ARCHIVES, "cifar10", archive)
    urls: list[str] = []

    def fake_urlopen(url: str, timeout: float) -> _FakeResponse:
        urls.append(url)
        return _FakeResponse(blob)

    monkeypatch.setattr(_cifar.urllib.request, "urlopen", fake_urlopen)
    data_dir = tmp_path / "new"
    ds = load_dataset("cifar10", data_dir=data_dir)
    assert urls == ["https://www.cs.toronto.edu/~kriz/cifar-10-python.tar.gz"]
    assert (data_dir / "cifar-10-python.tar.gz").read_bytes() == blob
    _check_cifar(ds, truth)


def test_cifar_download_md5_mismatch(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(
        _cifar.urllib.request, "urlopen", lambda url, timeout: _FakeResponse(b"junk")
    )
    with pytest.raises(DatasetError, match="md5") as info:
        load_dataset("cifar100", data_dir=tmp_path)
    assert str(tmp_path) in str(info.value)
    assert list(tmp_path.iterdir()) == []  # nothing half-downloaded is left behind


def test_cifar_download_network_failure(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    def offline(url: str, timeout: float) -> _FakeResponse:
        raise urllib.error.URLError("no route to host")

    monkeypatch.setattr(_cifar.urllib.request, "urlopen", offline)
    with pytest.raises(DatasetError, match="failed") as info:
        load_dataset("cifar10", data_dir=tmp_path)
    assert "cifar-10-python.tar.gz" in str(info.value) and "\n" not in str(info.value)


# ---------------------------------------------------------------------------------------
# folder


_COLOURS = {"cat": (255, 0, 0), "dog": (0, 255, 0), "emu": (0, 0, 255)}


def _image_folder(root: Path, per_class: int = 4) -> Path:
    from PIL import Image

    for name, colour in _COLOURS.items():
        (root / name).mkdir(parents=True)
        for i in range(per_class):
            size = (20 + 7 * i, 12 + 5 * i)  # sizes differ, as in real folders
            Image.new("RGB", size, colour).save(root / name / f"{i}.png")
        (root / name / "notes.txt").write_text("not an image, ignored")
    Image.new("L", (9, 9), 128).save(root / "emu" / "grey.jpg")  # converted to RGB
    return root


def test_folder_loads(tmp_path: Path) -> None:
    root = _image_folder(tmp_path / "imgs")
    ds = load_dataset(f"folder:{root}", val_fraction=0.25)
    assert ds.name == f"folder:{root.resolve()}"
    assert ds.classes == ("cat", "dog", "emu")
    assert ds.num_classes == 3
    assert ds.input_shape == (3, 32, 32)  # the default for folders
    assert len(ds.train_y) + len(ds.val_y) == 13
    assert set(ds.val_y.tolist()) == {0, 1, 2}
    for x, y in zip(
        torch.cat([ds.train_x, ds.val_x]), torch.cat([ds.train_y, ds.val_y]), strict=True
    ):
        pixel = tuple(int(v) for v in x[:, 3, 3])
        assert pixel in (_COLOURS[ds.classes[y]], (128, 128, 128))
    small = load_dataset(f"folder:{root}", resolution=8)
    assert small.input_shape == (3, 8, 8)


def test_folder_missing(tmp_path: Path) -> None:
    missing = tmp_path / "nope"
    with pytest.raises(DatasetError, match="does not exist") as info:
        load_dataset(f"folder:{missing}")
    assert str(missing) in str(info.value)


def test_folder_not_a_directory(tmp_path: Path) -> None:
    path = tmp_path / "file.txt"
    path.write_text("x")
    with pytest.raises(DatasetError, match="not a directory") as info:
        load_dataset(f"folder:{path}")
    assert str(path) in str(info.value)


def test_folder_one_class(tmp_path: Path) -> None:
    from PIL import Image

    (tmp_path / "only").mkdir()
    for i in range(3):
        Image.new("RGB", (4, 4)).save(tmp_path / "only" / f"{i}.png")
    with pytest.raises(DatasetError, match="at least 2") as info:
        load_dataset(f"folder:{tmp_path}")
    assert str(tmp_path) in str(info.value)


def test_folder_empty_class(tmp_path: Path) -> None:
    root = _image_folder(tmp_path / "imgs")
    (root / "fox").mkdir()
    (root / "fox" / "readme.md").write_text("no images here")
    with pytest.raises(DatasetError, match="no images") as info:
        load_dataset(f"folder:{root}")
    assert str(root / "fox") in str(info.value)


def test_folder_unreadable_image(tmp_path: Path) -> None:
    root = _image_folder(tmp_path / "imgs")
    bad = root / "dog" / "broken.png"
    bad.write_bytes(b"definitely not a png")
    with pytest.raises(DatasetError, match="cannot read image") as info:
        load_dataset(f"folder:{root}")
    assert str(bad) in str(info.value)
    assert "\n" not in str(info.value)


def test_folder_class_too_small(tmp_path: Path) -> None:
    from PIL import Image

    root = _image_folder(tmp_path / "imgs")
    (root / "yak").mkdir()
    Image.new("RGB", (4, 4)).save(root / "yak" / "0.png")
    with pytest.raises(DatasetError, match="'yak'"):
        load_dataset(f"folder:{root}")
