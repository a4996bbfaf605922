"""scikit-learn's 8x8 handwritten digits (1,797 images), split 1,437 train / 360 test."""

import numpy as np

from .split import stratified_split

TEST_SIZE = 360
SEED = 0


def load_digits_arrays() -> dict:
    """Arrays of the ``digits`` dataset.

    Images: float32, shape (N, 1, 8, 8), the original 0..16 grey levels divided by 16 (so in
    [0, 1]). Labels: int64 0..9. Split: :func:`stratified_split` with test_size 360, seed 0.
    """
    from sklearn.datasets import load_digits

    bunch = load_digits()
    x = (bunch.images.astype(np.float32) / np.float32(16.0)).reshape(-1, 1, 8, 8)
    y = bunch.target.astype(np.int64)
    train_idx, test_idx = stratified_split(y, TEST_SIZE, SEED)
    return dict(
        name="digits",
        x_train=x[train_idx],
        y_train=y[train_idx],
        x_test=x[test_idx],
        y_test=y[test_idx],
        input_shape=(1, 8, 8),
        n_classes=10,
        description=(
            f"scikit-learn load_digits: {len(y):,} 8x8 images (grey levels 0..16 scaled /16); "
            f"stratified shuffled split (sklearn train_test_split, random_state={SEED}): "
            f"{len(train_idx):,} train / {len(test_idx):,} test."
        ),
    )
