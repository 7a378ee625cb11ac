"""The CIFAR-10/100 "python version" archives: reading, checking and downloading them."""

from __future__ import annotations

import hashlib
import io
import logging
import pickle
import posixpath
import tarfile
import urllib.error
import urllib.request
import zlib
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import torch

from attnsearch.datasets._core import DatasetError, _in_memory, _one_line, _Source

log = logging.getLogger("attnsearch.datasets")


# ---------------------------------------------------------------------------------------
# CIFAR


@dataclass(frozen=True)
class _Archive:
    """One CIFAR "python version" archive.

    Attributes:
        name: the dataset spec.
        filename: the archive's file name on the server and in ``data_dir``.
        md5: its published checksum.
        folder: the folder it extracts to.
        train_files: the pickles with training images, in order.
        meta_file: the pickle with class names.
        label_key: the label key in the training pickles.
        names_key: the class-name key in the meta pickle.
        member_md5: published checksums of the extracted members we read (torchvision's).
    """

    name: str
    filename: str
    md5: str
    folder: str
    train_files: tuple[str, ...]
    meta_file: str
    label_key: bytes
    names_key: bytes
    member_md5: tuple[tuple[str, str], ...]

    @property
    def url(self) -> str:
        """Where to download it."""
        return CIFAR_URL + self.filename


CIFAR_URL = "https://www.cs.toronto.edu/~kriz/"  # Krizhevsky's page; the archives live here
DOWNLOAD_TIMEOUT_S = 60  # per network read; a stalled connection fails rather than hangs

_ARCHIVES: dict[str, _Archive] = {
    "cifar10": _Archive(
        name="cifar10",
        filename="cifar-10-python.tar.gz",
        md5="c58f30108f718f92721af3b95e74349a",
        folder="cifar-10-batches-py",
        train_files=tuple(f"data_batch_{i}" for i in range(1, 6)),
        meta_file="batches.meta",
        label_key=b"labels",
        names_key=b"label_names",
        member_md5=(
            ("data_batch_1", "c99cafc152244af753f735de768cd75f"),
            ("data_batch_2", "d4bba439e000b95fd0a9bffe97cbabec"),
            ("data_batch_3", "54ebc095f3ab1f0389bbae665268c751"),
            ("data_batch_4", "634d18415352ddfa80567beed471001a"),
            ("data_batch_5", "482c414d41f54cd18b22e5b47cb7c3cb"),
            ("batches.meta", "5ff9c542aee3614f3951f8cda6e48888"),
        ),
    ),
    "cifar100": _Archive(
        name="cifar100",
        filename="cifar-100-python.tar.gz",
        md5="eb9058c3a382ffc7106e4002c42a8d85",
        folder="cifar-100-python",
        train_files=("train",),
        meta_file="meta",
        label_key=b"fine_labels",
        names_key=b"fine_label_names",
        member_md5=(
            ("train", "16019d7e3df5f24257cddd939b257f8d"),
            ("meta", "7973b15100ade9c7d40fb424638fde48"),
        ),
    ),
}


def _cifar_source(archive: _Archive, data_dir: Path, download: bool) -> _Source:
    folder = data_dir / archive.folder
    tar_path = data_dir / archive.filename
    members = (*archive.train_files, archive.meta_file)
    if folder.is_dir() and all((folder / m).is_file() for m in members):
        blobs = {m: _read_file(folder / m) for m in members}
        expected = dict(archive.member_md5)
        for m, blob in blobs.items():
            _check_md5(archive, blob, expected[m], folder / m)
        place = f"{folder}/{{}}"
    else:
        if not tar_path.is_file():
            if folder.is_dir():
                missing = next(m for m in members if not (folder / m).is_file())
                hint = f"{folder / missing} is missing"
            else:
                hint = f"neither {tar_path} nor {folder} exists"
            if not download:
                raise DatasetError(
                    f"{archive.name}: {hint} and download is disabled; put {archive.filename} "
                    f"(from {archive.url}) in {data_dir}"
                )
            _download(archive, tar_path)
        else:  # an archive found in data_dir is checked like a downloaded one
            _check_md5(archive, _read_file(tar_path), archive.md5, tar_path)
        blobs = _read_tar(tar_path, archive.folder, members)
        place = f"{tar_path}:{archive.folder}/{{}}"
    return _decode_cifar(archive, blobs, place)


def _check_md5(archive: _Archive, blob: bytes, expected: str, path: Path) -> None:
    """Refuse a file that is not the published one: nothing else is ever unpickled."""
    digest = hashlib.md5(blob, usedforsecurity=False).hexdigest()
    if digest != expected:
        raise DatasetError(
            f"{archive.name}: {path} has md5 {digest}, expected {expected} (not the official "
            f"file, or damaged); delete it and put {archive.filename} from {archive.url} "
            f"in {path.parent if path.name == archive.filename else path.parent.parent}"
        )


def _read_file(path: Path) -> bytes:
    try:
        return path.read_bytes()
    except OSError as exc:
        raise DatasetError(f"cannot read {path}: {_one_line(exc)}") from exc


def _read_tar(path: Path, folder: str, members: Sequence[str]) -> dict[str, bytes]:
    """Read the named members of ``folder`` from a tar.gz without extracting anything."""
    wanted = {posixpath.join(folder, m): m for m in members}
    blobs: dict[str, bytes] = {}
    try:
        with tarfile.open(path, "r:gz") as tar:
            for info in tar:
                key = posixpath.normpath(info.name)
                if key in wanted and info.isfile():
                    f = tar.extractfile(info)
                    if f is None:  # pragma: no cover - isfile() members always have data
                        continue
                    blobs[wanted[key]] = f.read()
                    if len(blobs) == len(wanted):
                        break
    except (tarfile.TarError, EOFError, OSError, zlib.error) as exc:
        raise DatasetError(
            f"corrupted or truncated archive {path} ({_one_line(exc)}); delete it and "
            "download it again"
        ) from exc
    missing = [m for m in members if m not in blobs]
    if missing:
        raise DatasetError(
            f"archive {path} lacks {posixpath.join(folder, missing[0])}; it is truncated "
            "or not the expected archive"
        )
    return blobs


class _ArrayUnpickler(pickle.Unpickler):
    """Unpickles plain containers and numpy arrays only: a pickle cannot run code here."""

    _ALLOWED = {
        ("_codecs", "encode"),  # bytes in protocol-2 pickles written by Python 3
        ("numpy", "ndarray"),
        ("numpy", "dtype"),
        ("numpy.core.multiarray", "_reconstruct"),
        ("numpy._core.multiarray", "_reconstruct"),
        ("numpy.core.multiarray", "scalar"),
        ("numpy._core.multiarray", "scalar"),
    }

    def find_class(self, module: str, name: str):
        if (module, name) in self._ALLOWED:
            return super().find_class(module, name)
        raise pickle.UnpicklingError(f"refusing to load {module}.{name}")


def _unpickle(blob: bytes, where: str) -> dict:
    try:
        # the standard CIFAR format; checked against its md5 before, and restricted anyway
        obj = _ArrayUnpickler(io.BytesIO(blob), encoding="bytes").load()
    except ModuleNotFoundError as exc:
        raise DatasetError(f"reading {where} needs the {exc.name!r} package") from exc
    except Exception as exc:  # any unpickling failure means a damaged file
        raise DatasetError(f"corrupted CIFAR file {where} ({_one_line(exc)})") from exc
    if not isinstance(obj, dict):
        raise DatasetError(f"corrupted CIFAR file {where} (not a dict)")
    return obj


def _decode_cifar(archive: _Archive, blobs: dict[str, bytes], place: str) -> _Source:
    """Unpickle the members; ``place.format(member)`` names one in error messages."""
    label = place.format
    meta = _unpickle(blobs[archive.meta_file], label(archive.meta_file))
    try:
        classes = tuple(
            n.decode() if isinstance(n, bytes) else str(n) for n in meta[archive.names_key]
        )
    except (KeyError, TypeError, UnicodeDecodeError) as exc:
        raise DatasetError(
            f"corrupted CIFAR file {label(archive.meta_file)} (no {archive.names_key!r})"
        ) from exc
    images, labels = [], []
    for member in archive.train_files:
        where_m = label(member)
        batch = _unpickle(blobs[member], where_m)
        try:
            data = torch.as_tensor(batch[b"data"])
            y = torch.as_tensor(batch[archive.label_key], dtype=torch.int64).flatten()
        except (KeyError, TypeError, ValueError, RuntimeError) as exc:
            raise DatasetError(f"corrupted CIFAR file {where_m} ({_one_line(exc)})") from exc
        if data.dtype != torch.uint8 or data.ndim != 2 or data.shape[1] != 3 * 32 * 32:
            raise DatasetError(
                f"corrupted CIFAR file {where_m} (data is {data.dtype} "
                f"{tuple(data.shape)}, expected uint8 (N, 3072))"
            )
        if y.numel() != data.shape[0]:
            raise DatasetError(
                f"corrupted CIFAR file {where_m} ({y.numel()} labels for {data.shape[0]} images)"
            )
        if y.numel() and (int(y.min()) < 0 or int(y.max()) >= len(classes)):
            raise DatasetError(
                f"corrupted CIFAR file {where_m} (labels outside 0..{len(classes) - 1})"
            )
        images.append(data.reshape(-1, 3, 32, 32))  # each row: R plane, G plane, B plane
        labels.append(y)
    return _in_memory(archive.name, torch.cat(images), torch.cat(labels), classes)


def _download(archive: _Archive, dest: Path) -> None:
    """Download ``archive`` to ``dest`` through a ``.part`` file, checking its md5."""
    part = dest.with_name(dest.name + ".part")
    advice = f"download {archive.url} yourself and put it in {dest.parent}"
    try:
        dest.parent.mkdir(parents=True, exist_ok=True)
        log.info("downloading %s to %s", archive.url, dest)
        digest = hashlib.md5(usedforsecurity=False)
        with (
            urllib.request.urlopen(archive.url, timeout=DOWNLOAD_TIMEOUT_S) as response,
            open(part, "wb") as f,
        ):
            while chunk := response.read(1 << 20):
                digest.update(chunk)
                f.write(chunk)
    except (urllib.error.URLError, OSError, ValueError) as exc:
        part.unlink(missing_ok=True)
        raise DatasetError(
            f"{archive.name}: downloading {archive.url} failed ({_one_line(exc)}); {advice}"
        ) from exc
    if digest.hexdigest() != archive.md5:
        part.unlink(missing_ok=True)
        raise DatasetError(
            f"{archive.name}: the download of {archive.url} has md5 {digest.hexdigest()}, "
            f"expected {archive.md5}; {advice}"
        )
    part.replace(dest)
