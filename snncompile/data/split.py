"""The one fixed train/test split rule shared by the built-in image datasets."""

import numpy as np


def stratified_split(y: np.ndarray, test_size: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Indices ``(train_idx, test_idx)`` of a stratified, shuffled split of labels ``y``.

    scikit-learn ``train_test_split(np.arange(len(y)), stratify=y, random_state=seed,
    test_size=test_size)``: each class keeps its share in both parts, and both index arrays
    come in shuffled order (so data stored sorted by label is mixed). ``test_size`` is a
    sample count. The result depends only on ``y``, ``test_size`` and ``seed``.
    """
    from sklearn.model_selection import train_test_split

    idx = np.arange(len(y))
    train_idx, test_idx = train_test_split(idx, stratify=y, random_state=seed, test_size=test_size)
    return np.asarray(train_idx, dtype=np.int64), np.asarray(test_idx, dtype=np.int64)
