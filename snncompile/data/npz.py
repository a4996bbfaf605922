"""``npz:<file>``: a NumPy ``.npz`` archive the user has, with four arrays.

* ``x_train``, ``x_test``: numbers of any shape ``(N, ...)`` (the per-sample shape is the model's
  input shape, e.g. (3, 32, 32) or (784,)).  Integer arrays (uint8 images) are divided by 255;
  float arrays must already lie in [0, 1].  Both must have the same per-sample shape.
* ``y_train``, ``y_test``: integer class labels ``(N,)`` from 0; n_classes = largest label + 1.

Optional ``x_val``, ``y_val`` become the validation split.  The archive is loaded with
``allow_pickle=False``.  Every problem raises DatasetError naming the file and the array.
"""

from __future__ import annotations

import os
import zipfile

import numpy as np

from ..errors import DatasetError

REQUIRED = ("x_train", "y_train", "x_test", "y_test")


def _images(path: str, key: str, a: np.ndarray) -> np.ndarray:
    if a.ndim < 2 or len(a) == 0:
        raise DatasetError(f"{path}: array {key!r} has shape {a.shape}, expected (N, ...) with N >= 1")
    if np.issubdtype(a.dtype, np.integer) or a.dtype == np.bool_:
        if a.min() < 0 or a.max() > 255:
            raise DatasetError(f"{path}: integer array {key!r} spans {a.min()}..{a.max()}, expected bytes 0..255")
        return (a.astype(np.float32) / np.float32(255.0))
    if not np.issubdtype(a.dtype, np.floating):
        raise DatasetError(f"{path}: array {key!r} has dtype {a.dtype}, expected numbers")
    if not np.isfinite(a).all():
        raise DatasetError(f"{path}: array {key!r} holds NaN or inf")
    lo, hi = float(a.min()), float(a.max())
    if lo < 0 or hi > 1:
        raise DatasetError(f"{path}: float array {key!r} spans [{lo:g}, {hi:g}], expected values in [0, 1] "
                           "(scale it, or store uint8 bytes)")
    return a.astype(np.float32)


def _labels(path: str, key: str, a: np.ndarray, n: int) -> np.ndarray:
    if a.ndim != 1 or len(a) != n:
        raise DatasetError(f"{path}: array {key!r} has shape {a.shape}, expected ({n},) (one label per sample)")
    if not np.issubdtype(a.dtype, np.integer):
        if np.issubdtype(a.dtype, np.floating) and np.all(np.isfinite(a)) and np.all(a == np.round(a)):
            a = a.astype(np.int64)
        else:
            raise DatasetError(f"{path}: array {key!r} has dtype {a.dtype}, expected integer labels")
    if a.min() < 0:
        raise DatasetError(f"{path}: array {key!r} holds a negative label {int(a.min())}")
    return a.astype(np.int64)


def load_npz_arrays(path: str) -> dict:
    """Arrays of the ``npz:<file>`` dataset (see module docstring)."""
    if not os.path.isfile(path):
        raise DatasetError(f"dataset 'npz:{path}': file not found: {path}")
    try:
        with np.load(path, allow_pickle=False) as z:
            arrays = {k: z[k] for k in z.files}
    except (OSError, ValueError, EOFError, zipfile.BadZipFile) as e:
        raise DatasetError(f"{path}: not a readable .npz archive: {e}") from e
    missing = [k for k in REQUIRED if k not in arrays]
    if missing:
        raise DatasetError(f"{path}: missing array(s) {', '.join(missing)} (an npz dataset holds "
                           f"{', '.join(REQUIRED)}; found {', '.join(sorted(arrays)) or 'none'})")
    out = {}
    for split in ("train", "test", "val"):
        if f"x_{split}" not in arrays:
            if f"y_{split}" in arrays:
                raise DatasetError(f"{path}: array 'y_{split}' without 'x_{split}'")
            continue
        if f"y_{split}" not in arrays:
            raise DatasetError(f"{path}: array 'x_{split}' without 'y_{split}'")
        x = _images(path, f"x_{split}", arrays[f"x_{split}"])
        out[f"x_{split}"], out[f"y_{split}"] = x, _labels(path, f"y_{split}", arrays[f"y_{split}"], len(x))
    shape = tuple(out["x_train"].shape[1:])
    for split in ("test", "val"):
        if f"x_{split}" in out and tuple(out[f"x_{split}"].shape[1:]) != shape:
            raise DatasetError(f"{path}: array 'x_{split}' has samples of shape {tuple(out[f'x_{split}'].shape[1:])}, "
                               f"'x_train' has {shape}")
    n_classes = int(out["y_train"].max()) + 1
    for split in ("test", "val"):
        if f"y_{split}" in out and int(out[f"y_{split}"].max()) >= n_classes:
            raise DatasetError(f"{path}: array 'y_{split}' holds label {int(out[f'y_{split}'].max())}, but "
                               f"'y_train' has labels 0..{n_classes - 1}")
    sizes = " / ".join(f"{len(out[f'y_{s}']):,} {s}" for s in ("train", "val", "test") if f"y_{s}" in out)
    return dict(name=f"npz:{path}", input_shape=shape, n_classes=n_classes,
                description=f"npz archive {path}: {sizes} (the file's own split, file order); samples of shape "
                            f"{shape}; {n_classes} classes.", **out)
