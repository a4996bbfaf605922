"""CIFAR-10 / CIFAR-100 from the python pickle batches as distributed (``cifar-10-python.tar.gz``).

``cifar10:<folder>``: ``data_batch_1`` .. ``data_batch_5`` (training, in that order), ``test_batch``
and ``batches.meta`` (``label_names``).  ``cifar100:<folder>``: ``train``, ``test`` and ``meta``
(``fine_label_names``); the 100 fine labels are used.  Each batch is a pickled dict with
``b'data'`` (uint8, (N, 3072): 1024 red, 1024 green, 1024 blue values, row-major 32x32) and
``b'labels'`` (CIFAR-10) or ``b'fine_labels'`` (CIFAR-100).  ``<folder>`` may also be the
parent holding the extracted ``cifar-10-batches-py`` / ``cifar-100-python`` folder.

Images: float32 (N, 3, 32, 32), bytes / 255.  Labels: int64.  Split: the files' own train/test
split, in file order.  Every problem raises DatasetError naming the exact file and what is wrong.
Pickles are read with ``encoding='bytes'`` and only plain containers are accepted (no classes are
instantiated), so a foreign pickle cannot run code.
"""

from __future__ import annotations

import os
import pickle

import numpy as np

from ..errors import DatasetError

PIXELS = 3 * 32 * 32
LAYOUT = {
    "cifar10": dict(train=[f"data_batch_{i}" for i in range(1, 6)], test=["test_batch"], meta="batches.meta",
                    labels=b"labels", names=b"label_names", n_classes=10, subdir="cifar-10-batches-py"),
    "cifar100": dict(train=["train"], test=["test"], meta="meta", labels=b"fine_labels",
                     names=b"fine_label_names", n_classes=100, subdir="cifar-100-python"),
}


class _SafeUnpickler(pickle.Unpickler):
    def find_class(self, module, name):  # only numpy's array reconstruction (and bytes) allowed
        if (module, name) in {("numpy.core.multiarray", "_reconstruct"), ("numpy", "ndarray"),
                              ("numpy", "dtype"), ("numpy._core.multiarray", "_reconstruct"),
                              ("_codecs", "encode")}:  # protocol-2 pickles of bytes written by Python 3
            return super().find_class(module, name)
        raise pickle.UnpicklingError(f"refusing to load {module}.{name}")


def read_batch(path: str) -> dict:
    """The dict in one pickle batch file; DatasetError naming the file if missing or corrupt."""
    if not os.path.isfile(path):
        raise DatasetError(f"{path}: missing")
    try:
        with open(path, "rb") as f:
            obj = _SafeUnpickler(f, encoding="bytes").load()
    except (pickle.UnpicklingError, EOFError, ValueError, TypeError, AttributeError, IndexError,
            ImportError, OSError) as e:
        raise DatasetError(f"{path}: corrupt pickle batch: {e}") from e
    if not isinstance(obj, dict):
        raise DatasetError(f"{path}: expected a pickled dict, found {type(obj).__name__}")
    return obj


def _images_labels(path: str, batch: dict, key: bytes, n_classes: int) -> tuple[np.ndarray, np.ndarray]:
    if b"data" not in batch:
        raise DatasetError(f"{path}: no b'data' entry (keys: {sorted(batch)})")
    if key not in batch:
        raise DatasetError(f"{path}: no {key!r} entry (keys: {sorted(batch)})")
    try:
        data = np.asarray(batch[b"data"])
        labels = np.asarray(batch[key], dtype=np.int64).reshape(-1)
    except (TypeError, ValueError) as e:
        raise DatasetError(f"{path}: b'data' or {key!r} is not numeric: {e}") from e
    if data.ndim != 2 or data.shape[1] != PIXELS:
        raise DatasetError(f"{path}: b'data' has shape {data.shape}, expected (N, {PIXELS}) (3x32x32 bytes per image)")
    if data.dtype != np.uint8:
        if not np.issubdtype(data.dtype, np.integer) or data.size and (data.min() < 0 or data.max() > 255):
            raise DatasetError(f"{path}: b'data' must hold bytes 0..255, found dtype {data.dtype}")
    if len(labels) != len(data):
        raise DatasetError(f"{path}: {len(data)} images but {len(labels)} labels in {key!r}")
    if len(labels) and (labels.min() < 0 or labels.max() >= n_classes):
        raise DatasetError(f"{path}: labels span {int(labels.min())}..{int(labels.max())}, expected 0..{n_classes - 1}")
    return data.astype(np.uint8, copy=False), labels


def cifar_folder(kind: str, folder: str) -> str:
    """The folder holding the batch files (``folder`` or its ``cifar-*`` subfolder)."""
    if not os.path.isdir(folder):
        raise DatasetError(f"dataset '{kind}:{folder}': folder not found: {folder}")
    sub = os.path.join(folder, LAYOUT[kind]["subdir"])
    if not os.path.exists(os.path.join(folder, LAYOUT[kind]["meta"])) and os.path.isdir(sub):
        return sub
    return folder


def cifar_files(kind: str, folder: str) -> list[str]:
    """Every file the dataset reads; DatasetError naming the first missing one."""
    lay = LAYOUT[kind]
    root = cifar_folder(kind, folder)
    paths = [os.path.join(root, n) for n in [*lay["train"], *lay["test"], lay["meta"]]]
    for p in paths:
        if not os.path.isfile(p):
            raise DatasetError(f"dataset '{kind}:{folder}': {p}: missing (a {kind} folder holds "
                               f"{', '.join(lay['train'] + lay['test'] + [lay['meta']])})")
    return paths


def load_cifar_arrays(kind: str, folder: str) -> dict:
    """Arrays of ``cifar10:<folder>`` or ``cifar100:<folder>`` (see module docstring)."""
    lay = LAYOUT[kind]
    root = cifar_folder(kind, folder)
    cifar_files(kind, folder)

    def part(names):
        xs, ys = [], []
        for n in names:
            p = os.path.join(root, n)
            x, y = _images_labels(p, read_batch(p), lay["labels"], lay["n_classes"])
            xs.append(x)
            ys.append(y)
        return np.concatenate(xs), np.concatenate(ys)

    x_tr, y_tr = part(lay["train"])
    x_te, y_te = part(lay["test"])
    meta_path = os.path.join(root, lay["meta"])
    meta = read_batch(meta_path)
    names = meta.get(lay["names"])
    if names is None or len(names) != lay["n_classes"]:
        raise DatasetError(f"{meta_path}: expected {lay['n_classes']} entries in {lay['names']!r}, "
                           f"found {None if names is None else len(names)}")

    def images(a):
        return (a.astype(np.float32) / np.float32(255.0)).reshape(-1, 3, 32, 32)

    label_names = [n.decode() if isinstance(n, bytes) else str(n) for n in names]
    return dict(
        name=f"{kind}:{folder}",
        x_train=images(x_tr), y_train=y_tr, x_test=images(x_te), y_test=y_te,
        input_shape=(3, 32, 32), n_classes=lay["n_classes"],
        description=(f"{kind.upper()} python batches from {root}: {len(y_tr):,} train / {len(y_te):,} test "
                     f"(the files' own split, file order); 3x32x32 images scaled /255; {lay['n_classes']} "
                     f"classes ({', '.join(label_names[:3])}, ...)."),
    )
