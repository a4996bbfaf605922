"""MNIST-format IDX files (MNIST, Fashion-MNIST, ...) from a folder the user names.

IDX layout (big-endian): a 4-byte magic ``0x0000TTNN`` (TT = 0x08: unsigned bytes, NN = number
of dimensions), NN uint32 sizes, then the values in C order. Images are 0x00000803
(count, rows, cols); labels are 0x00000801 (count). Each file may be gzipped (name + ".gz").
Every problem raises DatasetError naming the exact file and what is wrong with it.
"""

import gzip
import math
import os
import zlib

import numpy as np

from ..errors import DatasetError

IMAGES_MAGIC = 0x00000803
LABELS_MAGIC = 0x00000801
FILES = {
    "train_images": "train-images-idx3-ubyte",
    "train_labels": "train-labels-idx1-ubyte",
    "test_images": "t10k-images-idx3-ubyte",
    "test_labels": "t10k-labels-idx1-ubyte",
}


def find_idx_file(folder: str, base: str) -> str:
    """``folder/base`` if it exists, else ``folder/base.gz``; DatasetError naming both if neither."""
    for path in (os.path.join(folder, base), os.path.join(folder, base + ".gz")):
        if os.path.isfile(path):
            return path
    raise DatasetError(f"{os.path.join(folder, base)}: missing (neither it nor {base}.gz exists)")


def _read_bytes(path: str) -> bytes:
    try:
        if path.endswith(".gz"):
            with gzip.open(path, "rb") as f:
                return f.read()
        with open(path, "rb") as f:
            return f.read()
    except FileNotFoundError as e:
        raise DatasetError(f"{path}: missing") from e
    except (EOFError, zlib.error, gzip.BadGzipFile) as e:
        raise DatasetError(f"{path}: corrupt gzip data: {e}") from e
    except OSError as e:
        raise DatasetError(f"{path}: cannot read: {e}") from e


def read_idx(path: str, kind: str) -> np.ndarray:
    """Read one IDX file of ``kind`` "images" (uint8, (N, rows, cols)) or "labels" (uint8, (N,)).

    Checks the magic number, that no size is zero, and that the file holds exactly the bytes
    its header declares.
    """
    magic_expected, ndim = (IMAGES_MAGIC, 3) if kind == "images" else (LABELS_MAGIC, 1)
    buf = _read_bytes(path)
    header = 4 + 4 * ndim
    if len(buf) < 4:
        raise DatasetError(f"{path}: truncated: {len(buf)} bytes, too short for the 4-byte IDX magic number")
    magic = int.from_bytes(buf[:4], "big")
    if magic != magic_expected:
        raise DatasetError(
            f"{path}: bad magic number 0x{magic:08X}, expected 0x{magic_expected:08X} "
            f"(IDX {kind}: unsigned bytes, {ndim} dimension{'s' if ndim > 1 else ''})"
        )
    if len(buf) < header:
        raise DatasetError(f"{path}: truncated: {len(buf)} bytes, the IDX header alone needs {header}")
    dims = tuple(int(d) for d in np.frombuffer(buf, dtype=">u4", count=ndim, offset=4))
    if 0 in dims:
        raise DatasetError(f"{path}: header declares an empty array of shape {dims}")
    need, held = math.prod(dims), len(buf) - header  # Python ints: a uint32 header must not overflow int64
    if held != need:
        what = "truncated" if held < need else "too long"
        if kind == "labels":
            raise DatasetError(f"{path}: {what}: header says {dims[0]} labels, file holds {held}")
        n, h, w = dims
        raise DatasetError(
            f"{path}: {what}: header says {n} images of {h}x{w} ({need} bytes), file holds {held} bytes "
            f"({held // (h * w)} whole images)"
        )
    return np.frombuffer(buf, dtype=np.uint8, offset=header).reshape(dims)


def write_idx(path: str, array: np.ndarray) -> None:
    """Write a uint8 array of 1 (labels) or 3 (images) dimensions as IDX; gzipped if path ends in .gz."""
    arr = np.ascontiguousarray(array, dtype=np.uint8)
    head = bytes([0, 0, 0x08, arr.ndim]) + np.asarray(arr.shape, dtype=">u4").tobytes()
    opener = gzip.open if path.endswith(".gz") else open
    with opener(path, "wb") as f:
        f.write(head + arr.tobytes())


def idx_files(folder: str) -> dict:
    """The four IDX paths in ``folder`` (keys as in :data:`FILES`); DatasetError if any is missing."""
    if not os.path.isdir(folder):
        raise DatasetError(f"dataset 'idx:{folder}': folder not found: {folder}")
    return {key: find_idx_file(folder, base) for key, base in FILES.items()}


def _read_pair(images_path: str, labels_path: str) -> tuple[np.ndarray, np.ndarray]:
    images, labels = read_idx(images_path, "images"), read_idx(labels_path, "labels")
    if len(images) != len(labels):
        raise DatasetError(
            f"{labels_path}: holds {len(labels)} labels but {images_path} holds {len(images)} images"
        )
    return images, labels


def load_idx_arrays(folder: str) -> dict:
    """Arrays of the ``idx:<folder>`` dataset: the files' own train/test split, in file order.

    Images: float32 (N, 1, rows, cols), bytes / 255. Labels: int64; n_classes = largest training
    label + 1, and a test label at or above it is an error naming the test labels file.
    """
    paths = idx_files(folder)
    x_tr, y_tr = _read_pair(paths["train_images"], paths["train_labels"])
    x_te, y_te = _read_pair(paths["test_images"], paths["test_labels"])
    if x_te.shape[1:] != x_tr.shape[1:]:
        raise DatasetError(
            f"{paths['test_images']}: images are {x_te.shape[1]}x{x_te.shape[2]} but "
            f"{paths['train_images']} holds {x_tr.shape[1]}x{x_tr.shape[2]}"
        )
    n_classes = int(y_tr.max()) + 1
    if int(y_te.max()) >= n_classes:
        raise DatasetError(
            f"{paths['test_labels']}: label {int(y_te.max())} out of range: training labels "
            f"({paths['train_labels']}) are 0..{n_classes - 1}"
        )
    h, w = x_tr.shape[1:]

    def images(a):
        return (a.astype(np.float32) / np.float32(255.0)).reshape(-1, 1, h, w)

    return dict(
        name=f"idx:{folder}",
        x_train=images(x_tr),
        y_train=y_tr.astype(np.int64),
        x_test=images(x_te),
        y_test=y_te.astype(np.int64),
        input_shape=(1, h, w),
        n_classes=n_classes,
        description=(
            f"IDX files from {folder}: {len(y_tr):,} train / {len(y_te):,} test (the files' own split, "
            f"file order); {h}x{w} images scaled /255, {n_classes} classes."
        ),
    )
