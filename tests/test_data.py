"""Tests of snncompile.data: fixed splits, generated Yin-Yang data, IDX parsing, input reshaping."""

import gzip
import hashlib
import os
import time

import numpy as np
import pytest

from snncompile.data import DATASET_NAMES, Dataset, as_model_input, load_dataset
from snncompile.data.idx import FILES, read_idx, write_idx
from snncompile.data.mnist5k import load_mnist5k_arrays, mnist5k_path, read_mnist5k_csv
from snncompile.data.split import stratified_split
from snncompile.data.yinyang import generate_yinyang, load_yinyang_arrays, yinyang_class
from snncompile.errors import DatasetError, InvalidModel

EXPECTED = {  # name: (input_shape, n_classes, n_train, n_test, n_val)
    "digits": ((1, 8, 8), 10, 1437, 360, None),
    "mnist5k": ((1, 28, 28), 10, 4000, 1000, None),
    "yinyang": ((4,), 3, 5000, 1000, 1000),
}


# ---------------------------------------------------------------- built-in datasets


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_shapes_dtypes_ranges(name):
    ds = load_dataset(name)
    shape, n_classes, n_train, n_test, n_val = EXPECTED[name]
    assert isinstance(ds, Dataset) and ds.name == name
    assert ds.input_shape == shape and ds.n_classes == n_classes
    assert len(ds.description) > 40
    parts = [(ds.x_train, ds.y_train, n_train), (ds.x_test, ds.y_test, n_test)]
    if n_val is None:
        assert ds.x_val is None and ds.y_val is None
    else:
        parts.append((ds.x_val, ds.y_val, n_val))
    for x, y, n in parts:
        assert x.shape == (n, *shape) and x.dtype == np.float32
        assert y.shape == (n,) and y.dtype == np.int64
        assert 0.0 <= x.min() and x.max() <= 1.0
        assert set(np.unique(y).tolist()) == set(range(n_classes))


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_cached_and_read_only(name):
    ds = load_dataset(name)
    assert load_dataset(name) is ds
    for arr in (ds.x_train, ds.y_train, ds.x_test, ds.y_test):
        with pytest.raises(ValueError):
            arr[0] = 0


def test_loads_are_bit_identical_without_cache():
    from snncompile.data.digits import load_digits_arrays

    for load in (load_digits_arrays, load_mnist5k_arrays, load_yinyang_arrays):
        a, b = load(), load()
        for key, value in a.items():
            if isinstance(value, np.ndarray):
                assert np.array_equal(value, b[key]) and value.dtype == b[key].dtype, key


def test_digits_split_is_stratified():
    ds = load_dataset("digits")
    counts = np.bincount(ds.y_test, minlength=10)
    assert counts.sum() == 360 and counts.min() >= 35 and counts.max() <= 37
    assert np.allclose(ds.x_train * 16, np.round(ds.x_train * 16))  # grey levels 0..16 / 16


def test_mnist5k_split_balanced_and_uses_every_row_once():
    pixels, labels = read_mnist5k_csv(mnist5k_path())
    assert np.array_equal(labels, np.repeat(np.arange(10), 500))  # the file is sorted by label
    train_idx, test_idx = stratified_split(labels, 1000, 0)
    assert np.array_equal(np.sort(np.concatenate([train_idx, test_idx])), np.arange(5000))
    assert np.bincount(labels[test_idx], minlength=10).tolist() == [100] * 10
    assert np.bincount(labels[train_idx], minlength=10).tolist() == [400] * 10
    ds = load_dataset("mnist5k")
    assert np.bincount(ds.y_test, minlength=10).tolist() == [100] * 10
    assert np.array_equal(ds.y_test, labels[test_idx]) and np.array_equal(ds.y_train, labels[train_idx])
    assert np.array_equal(ds.x_test.reshape(1000, 784), pixels[test_idx] / np.float32(255))
    assert len(set(ds.y_test[:20].tolist())) > 3  # shuffled, not sorted


# ---------------------------------------------------------------- yinyang


def _original_generator(size, seed):
    """The authors' algorithm, step by step with numpy's global legacy RNG (slow, for checking)."""
    np.random.seed(seed)
    vals, labels = [], []
    for _ in range(size):
        goal = np.random.randint(3)
        while True:
            x, y = np.random.rand(2) * 2.0 * 0.5
            if np.sqrt((x - 0.5) ** 2 + (y - 0.5) ** 2) > 0.5:
                continue
            if int(yinyang_class(x, y)) == goal:
                break
        vals.append([x, y, 1.0 - x, 1.0 - y])
        labels.append(goal)
    return np.array(vals), np.array(labels)


def _sha(a, dtype):
    return hashlib.sha256(np.ascontiguousarray(a, dtype=dtype).tobytes()).hexdigest()


def test_yinyang_replays_the_original_generator():
    feats, labels = generate_yinyang(300, 7)
    ref_feats, ref_labels = _original_generator(300, 7)
    assert np.array_equal(feats, ref_feats) and np.array_equal(labels, ref_labels)


@pytest.mark.parametrize(
    "size,seed,feat_sha,label_sha",
    [  # sha256 of the authors' publication_data/{train,validation,test}_{samples,labels}.npy arrays
        (
            5000,
            42,
            "f5a4054d56f2a058f8250fba7ff9720458e1625db7af78a295e45701745b2228",
            "534d12acda4f9dbc7208a99d3646115a4aa7d74ca31d6d23f822079a568559b7",
        ),
        (
            1000,
            41,
            "5eac358bdf2122763dce3703a79f3005e56e46a4db25ec329a07333d0f7b8093",
            "5a4c2f605814a620f514c1091f10441ce562cd81e902ce701b3cf94ae7576f7d",
        ),
        (
            1000,
            40,
            "7bab3ed668ed4992679cff6339fe21bfe7d0c921ddc6187eaa3bc6ef34b888d7",
            "daa0f8f4e3b37b1ddec2afee22f09afb768f0e575f3f568e7469f1ebc6af73c1",
        ),
    ],
)
def test_yinyang_matches_publication_data(size, seed, feat_sha, label_sha):
    feats, labels = generate_yinyang(size, seed)
    assert _sha(feats, "<f8") == feat_sha and _sha(labels, "<i8") == label_sha


def test_yinyang_generation_is_fast():
    start = time.perf_counter()
    generate_yinyang(5000, 42)
    assert time.perf_counter() - start < 1.0


def test_yinyang_geometry_spot_checks():
    points = {  # (x, y): class
        (0.25, 0.5): 2,  # left dot centre
        (0.75, 0.5): 2,  # right dot centre
        (0.5, 0.9): 1,  # top of the big circle
        (0.5, 0.1): 0,  # bottom of the big circle
        (0.25, 0.7): 1,  # ring around the left dot
        (0.25, 0.3): 1,
        (0.75, 0.7): 0,  # ring around the right dot
        (0.75, 0.3): 0,
    }
    xy = np.array(list(points))
    assert yinyang_class(xy[:, 0], xy[:, 1]).tolist() == list(points.values())


def test_yinyang_data_consistent_and_balanced():
    ds = load_dataset("yinyang")
    for x, y in ((ds.x_train, ds.y_train), (ds.x_val, ds.y_val), (ds.x_test, ds.y_test)):
        x64 = x.astype(np.float64)
        assert np.allclose(x[:, 0] + x[:, 2], 1.0, atol=1e-6) and np.allclose(
            x[:, 1] + x[:, 3], 1.0, atol=1e-6
        )
        assert np.all(np.hypot(x64[:, 0] - 0.5, x64[:, 1] - 0.5) <= 0.5 + 1e-6)
        share = np.bincount(y, minlength=3) / len(y)
        assert np.all(np.abs(share - 1 / 3) < 0.03), share
    feats, labels = generate_yinyang(5000, 42)
    assert np.array_equal(yinyang_class(feats[:, 0], feats[:, 1]), labels)
    assert not np.array_equal(ds.x_train[:1000], ds.x_test)  # distinct seeds give distinct sets


# ---------------------------------------------------------------- idx


def _idx_bytes(magic, dims, payload):
    return magic.to_bytes(4, "big") + b"".join(int(d).to_bytes(4, "big") for d in dims) + payload


def _write(path, data):
    if str(path).endswith(".gz"):
        with gzip.open(path, "wb") as f:
            f.write(data)
    else:
        with open(path, "wb") as f:
            f.write(data)


def _make_idx_folder(folder, gz=False, n_train=12, n_test=5, h=4, w=3, seed=0):
    rng = np.random.default_rng(seed)
    arrays = {
        "train_images": rng.integers(0, 256, (n_train, h, w), dtype=np.uint8),
        "train_labels": (np.arange(n_train) % 10).astype(np.uint8),
        "test_images": rng.integers(0, 256, (n_test, h, w), dtype=np.uint8),
        "test_labels": (np.arange(n_test) % 10).astype(np.uint8),
    }
    paths = {}
    for key, arr in arrays.items():
        magic = 0x803 if arr.ndim == 3 else 0x801
        paths[key] = os.path.join(folder, FILES[key] + (".gz" if gz else ""))
        _write(paths[key], _idx_bytes(magic, arr.shape, arr.tobytes()))
    return arrays, paths


@pytest.mark.parametrize("gz", [False, True])
def test_idx_round_trip(tmp_path, gz):
    arrays, _ = _make_idx_folder(tmp_path, gz=gz)
    ds = load_dataset(f"idx:{tmp_path}")
    assert ds.name == f"idx:{tmp_path}" and ds.input_shape == (1, 4, 3) and ds.n_classes == 10
    assert ds.x_train.dtype == np.float32 and ds.y_train.dtype == np.int64
    assert np.array_equal(ds.x_train, arrays["train_images"][:, None] / np.float32(255))
    assert np.array_equal(ds.x_test, arrays["test_images"][:, None] / np.float32(255))
    assert np.array_equal(ds.y_train, arrays["train_labels"]) and np.array_equal(
        ds.y_test, arrays["test_labels"]
    )
    assert "12 train / 5 test" in ds.description
    assert load_dataset(f"idx:{tmp_path}") is ds


def test_idx_writer_reader_round_trip(tmp_path):
    images = np.arange(2 * 5 * 6, dtype=np.uint8).reshape(2, 5, 6)
    for name in ("a-idx3-ubyte", "a-idx3-ubyte.gz"):
        write_idx(str(tmp_path / name), images)
        assert np.array_equal(read_idx(str(tmp_path / name), "images"), images)


def test_idx_reloads_edited_files(tmp_path):
    _, paths = _make_idx_folder(tmp_path)
    first = load_dataset(f"idx:{tmp_path}")
    _make_idx_folder(tmp_path, seed=1)
    os.utime(paths["train_images"], ns=(1, 1))
    assert not np.array_equal(load_dataset(f"idx:{tmp_path}").x_train, first.x_train)


def _expect_error(folder, *needles):
    with pytest.raises(DatasetError) as info:
        load_dataset(f"idx:{folder}")
    for needle in needles:
        assert needle in str(info.value), str(info.value)
    return str(info.value)


@pytest.mark.parametrize("gz", [False, True])
def test_idx_truncated_labels(tmp_path, gz):
    _, paths = _make_idx_folder(tmp_path, gz=gz)
    _write(paths["train_labels"], _idx_bytes(0x801, [60000], bytes(1234)))
    _expect_error(tmp_path, paths["train_labels"], "truncated: header says 60000 labels, file holds 1234")


def test_idx_truncated_images_and_header(tmp_path):
    _, paths = _make_idx_folder(tmp_path)
    _write(paths["test_images"], _idx_bytes(0x803, [5, 4, 3], bytes(30)))
    _expect_error(tmp_path, paths["test_images"], "truncated", "5 images of 4x3", "2 whole images")
    _write(paths["test_images"], _idx_bytes(0x803, [5, 4], b""))
    _expect_error(tmp_path, paths["test_images"], "truncated")
    _write(paths["test_images"], b"\x00\x00")
    _expect_error(tmp_path, paths["test_images"], "truncated")


def test_idx_too_long(tmp_path):
    _, paths = _make_idx_folder(tmp_path)
    _write(paths["train_labels"], _idx_bytes(0x801, [12], bytes(13)))
    _expect_error(tmp_path, paths["train_labels"], "too long")


def test_idx_bad_magic(tmp_path):
    _, paths = _make_idx_folder(tmp_path)
    _write(paths["train_images"], _idx_bytes(0x801, [12], bytes(12)))  # a labels file in its place
    _expect_error(tmp_path, paths["train_images"], "bad magic number 0x00000801, expected 0x00000803")


def test_idx_missing_file_and_folder(tmp_path):
    _, paths = _make_idx_folder(tmp_path)
    os.remove(paths["test_labels"])
    _expect_error(tmp_path, paths["test_labels"], "missing")
    _expect_error(tmp_path / "nowhere", str(tmp_path / "nowhere"), "not found")
    with pytest.raises(DatasetError, match="folder"):
        load_dataset("idx:")


def test_idx_count_mismatch(tmp_path):
    _, paths = _make_idx_folder(tmp_path)
    _write(paths["train_labels"], _idx_bytes(0x801, [11], bytes(11)))
    _expect_error(tmp_path, paths["train_labels"], paths["train_images"], "11 labels", "12 images")


def test_idx_test_label_out_of_range(tmp_path):
    _, paths = _make_idx_folder(tmp_path)
    _write(paths["test_labels"], _idx_bytes(0x801, [5], bytes([0, 1, 2, 3, 10])))
    _expect_error(tmp_path, paths["test_labels"], "label 10 out of range")


def test_idx_image_size_mismatch(tmp_path):
    _, paths = _make_idx_folder(tmp_path)
    _write(paths["test_images"], _idx_bytes(0x803, [5, 3, 4], bytes(60)))
    _expect_error(tmp_path, paths["test_images"], "3x4", "4x3")


def test_idx_corrupt_gzip(tmp_path):
    _, paths = _make_idx_folder(tmp_path, gz=True)
    data = open(paths["train_images"], "rb").read()
    with open(paths["train_images"], "wb") as f:
        f.write(data[: len(data) // 2])  # cut the gzip stream
    _expect_error(tmp_path, paths["train_images"], "corrupt gzip")
    with open(paths["train_images"], "wb") as f:
        f.write(b"not gzip at all")
    _expect_error(tmp_path, paths["train_images"], "corrupt gzip")


# ---------------------------------------------------------------- names and shapes


def test_unknown_name_lists_known_names():
    with pytest.raises(DatasetError) as info:
        load_dataset("cifar10")
    message = str(info.value)
    assert "cifar10" in message and all(name in message for name in DATASET_NAMES)


def test_as_model_input_reshapes_matching_sizes():
    x = load_dataset("mnist5k").x_test[:7]
    flat = as_model_input(x, (784,), "mnist5k")
    assert flat.shape == (7, 784) and np.array_equal(flat, x.reshape(7, 784))
    assert as_model_input(x, (1, 28, 28)) is x
    assert as_model_input(flat, [1, 28, 28]).shape == (7, 1, 28, 28)


def test_as_model_input_rejects_other_sizes():
    x = np.zeros((3, 1, 8, 8), dtype=np.float32)
    with pytest.raises(InvalidModel) as info:
        as_model_input(x, (784,), "digits")
    message = str(info.value)
    assert "\n" not in message
    for needle in ("'digits'", "(1, 8, 8)", "64 features", "(784,)", "784 features"):
        assert needle in message, message
