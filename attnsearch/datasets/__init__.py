"""Datasets as resident uint8 tensors for the proxy trainer.

Like airbench's CIFAR-10 loader, a dataset here is a handful of tensors that the trainer
moves to the device once and slices into batches itself: no ``DataLoader``, no per-sample
Python. :func:`load_dataset` turns a spec string into a :class:`Dataset`:

* ``digits`` — the UCI ML hand-written digits (Alpaydin & Kaynak 1998; 1797 images, 8×8,
  17 grey levels, 10 classes), embedded as ``attnsearch/data/digits.csv.gz`` (the copy that
  scikit-learn ships; see ``attnsearch/data/DIGITS_LICENSE.txt``). The default: it needs no
  download and trains in seconds on a CPU.
* ``clutter`` / ``clutter:SIZE`` — translated, cluttered digits in the manner of the
  cluttered-MNIST task of the recurrent-attention and spatial-transformer papers (Mnih et
  al. 2014, arXiv:1406.6247; Jaderberg et al. 2015, arXiv:1506.02025), derived from the
  embedded digits and generated in memory from the seed: each digit, enlarged to 16×16, is
  placed at a random position on a SIZE×SIZE canvas (default 32) with
  :data:`CLUTTER_PIECES as CLUTTER_PIECES` 8×8 fragments cut from other digits; :data:`CLUTTER_VARIANTS as CLUTTER_VARIANTS`
  images per digit. The split keeps all images of one source digit on the same side, so
  validation measures unseen handwriting, not unseen placements of a training digit.
* ``mnist-clutter`` / ``mnist-clutter:P`` — 5,000 real MNIST digits (embedded) placed at
  random on 40×40 canvases among P fragments of other digits (default 3); 8,000 training
  and 5,000 validation canvases of held-out digits (:mod:`attnsearch.mnist_clutter`).
* ``synthetic`` / ``synthetic:N`` — generated oriented gratings in N classes (default 10),
  3×16×16, 200 images a class, deterministic from the seed.
* ``cifar10`` / ``cifar100`` — the "python version" archives of Krizhevsky (2009),
  https://www.cs.toronto.edu/~kriz/cifar.html, read from ``data_dir`` (archive or
  extracted), downloaded there when absent. Only the training batches are read; CIFAR-100
  uses its 100 fine labels.
* ``folder:PATH`` — one sub-folder of images per class, like torchvision's
  ``ImageFolder``.

Every dataset is split here into train and validation, stratified by class and reproducible
from ``seed`` alone (Python's :class:`random.Random`, so the same on every machine). The
validation images always come from the training data, never from a test split, so a search
never looks at the test set.

Images stay uint8 ``(N, C, H, W)``; the trainer divides by 255 and normalises with
:attr:`Dataset.mean` / :attr:`Dataset.std` on the device (:meth:`Dataset.normalize`).
"""

from __future__ import annotations

from attnsearch.dataset_specs import dataset_caveat, dataset_names
from attnsearch.datasets._core import Dataset, DatasetError
from attnsearch.datasets._registry import load_dataset

__all__ = ["Dataset", "DatasetError", "dataset_caveat", "dataset_names", "load_dataset"]
