"""User data sets in their real formats: CIFAR-10/100 python pickle batches and npz archives.

The fixtures are written here in exactly the distributed layouts (pickled dicts with b'data',
b'labels' / b'fine_labels', b'label_names' / b'fine_label_names'); nothing is downloaded.
"""

import pickle

import numpy as np
import pytest

from snncompile.data import DATASET_NAMES, load_dataset
from snncompile.errors import DatasetError


def _dump(path, obj):
    with open(path, "wb") as f:
        pickle.dump(obj, f, protocol=2)


def _batch(rng, n, n_classes, key=b"labels"):
    return {b"batch_label": b"fixture", key: [int(v) for v in rng.integers(0, n_classes, n)],
            b"data": rng.integers(0, 256, (n, 3072), dtype=np.uint8), b"filenames": [b"x.png"] * n}


def make_cifar10(folder, n=4, seed=0):
    rng = np.random.default_rng(seed)
    folder.mkdir(parents=True, exist_ok=True)
    batches = {}
    for name in [f"data_batch_{i}" for i in range(1, 6)] + ["test_batch"]:
        batches[name] = _batch(rng, n, 10)
        _dump(folder / name, batches[name])
    _dump(folder / "batches.meta", {b"label_names": [f"c{i}".encode() for i in range(10)],
                                    b"num_cases_per_batch": n, b"num_vis": 3072})
    return batches


def make_cifar100(folder, n=6, seed=0):
    rng = np.random.default_rng(seed)
    folder.mkdir(parents=True, exist_ok=True)
    batches = {}
    for name in ("train", "test"):
        b = _batch(rng, n, 100, key=b"fine_labels")
        b[b"coarse_labels"] = [int(v) for v in rng.integers(0, 20, n)]
        batches[name] = b
        _dump(folder / name, b)
    _dump(folder / "meta", {b"fine_label_names": [f"f{i}".encode() for i in range(100)],
                            b"coarse_label_names": [f"k{i}".encode() for i in range(20)]})
    return batches


def test_names_listed():
    assert {"cifar10:<folder>", "cifar100:<folder>", "npz:<file>"} <= set(DATASET_NAMES)


def test_cifar10_layout_order_and_scaling(tmp_path):
    batches = make_cifar10(tmp_path / "c10")
    ds = load_dataset(f"cifar10:{tmp_path / 'c10'}")
    assert ds.input_shape == (3, 32, 32) and ds.n_classes == 10
    assert ds.x_train.shape == (20, 3, 32, 32) and ds.x_test.shape == (4, 3, 32, 32)
    assert ds.x_train.dtype == np.float32 and ds.y_train.dtype == np.int64
    # file order data_batch_1..5; channel planes R, G, B of 1024 row-major values each
    first = batches["data_batch_1"][b"data"][1]
    np.testing.assert_array_equal(ds.x_train[1, 1, 0, :], first[1024:1024 + 32] / np.float32(255))
    np.testing.assert_array_equal(ds.x_train[1, 2, 31, 31], first[3071] / np.float32(255))
    np.testing.assert_array_equal(ds.y_train[4:8], batches["data_batch_2"][b"labels"])
    np.testing.assert_array_equal(ds.y_test, batches["test_batch"][b"labels"])
    assert 0.0 <= ds.x_train.min() and ds.x_train.max() <= 1.0
    # the extracted parent folder works too
    ds2 = load_dataset(f" cifar10:{tmp_path / 'c10'}/ ")
    np.testing.assert_array_equal(ds2.x_test, ds.x_test)


def test_cifar10_parent_folder(tmp_path):
    make_cifar10(tmp_path / "cifar-10-batches-py")
    assert load_dataset(f"cifar10:{tmp_path}").x_train.shape == (20, 3, 32, 32)


def test_cifar100_fine_labels(tmp_path):
    batches = make_cifar100(tmp_path / "c100")
    ds = load_dataset(f"cifar100:{tmp_path / 'c100'}")
    assert ds.n_classes == 100 and ds.x_train.shape == (6, 3, 32, 32)
    np.testing.assert_array_equal(ds.y_train, batches["train"][b"fine_labels"])
    np.testing.assert_array_equal(ds.y_test, batches["test"][b"fine_labels"])


def test_cifar_missing_file_named(tmp_path):
    make_cifar10(tmp_path / "c")
    (tmp_path / "c" / "data_batch_3").unlink()
    with pytest.raises(DatasetError, match="data_batch_3: missing"):
        load_dataset(f"cifar10:{tmp_path / 'c'}")
    with pytest.raises(DatasetError, match="folder not found"):
        load_dataset(f"cifar100:{tmp_path / 'nope'}")
    with pytest.raises(DatasetError, match="needs a folder"):
        load_dataset("cifar10:")


def test_cifar_corrupt_files_named(tmp_path):
    make_cifar10(tmp_path / "c")
    (tmp_path / "c" / "test_batch").write_bytes(b"\x80\x02garbage")
    with pytest.raises(DatasetError, match="test_batch: corrupt pickle"):
        load_dataset(f"cifar10:{tmp_path / 'c'}")
    make_cifar10(tmp_path / "d")
    b = _batch(np.random.default_rng(1), 3, 10)
    b[b"data"] = b[b"data"][:, :100]
    _dump(tmp_path / "d" / "data_batch_2", b)
    with pytest.raises(DatasetError, match=r"data_batch_2: b'data' has shape \(3, 100\)"):
        load_dataset(f"cifar10:{tmp_path / 'd'}")
    make_cifar100(tmp_path / "e")
    b = _batch(np.random.default_rng(1), 3, 10)  # b'labels' instead of b'fine_labels'
    _dump(tmp_path / "e" / "train", b)
    with pytest.raises(DatasetError, match="train: no b'fine_labels' entry"):
        load_dataset(f"cifar100:{tmp_path / 'e'}")
    make_cifar10(tmp_path / "f")
    b = _batch(np.random.default_rng(1), 3, 10)
    b[b"labels"] = [0, 1, 12]
    _dump(tmp_path / "f" / "data_batch_5", b)
    with pytest.raises(DatasetError, match="data_batch_5: labels span 0..12"):
        load_dataset(f"cifar10:{tmp_path / 'f'}")


def test_cifar_pickle_cannot_run_code(tmp_path):
    make_cifar10(tmp_path / "c")

    class Evil:
        def __reduce__(self):
            return (print, ("owned",))

    _dump(tmp_path / "c" / "batches.meta", Evil())
    with pytest.raises(DatasetError, match="batches.meta: corrupt pickle.*refusing"):
        load_dataset(f"cifar10:{tmp_path / 'c'}")


def test_npz_any_shape_and_scaling(tmp_path):
    rng = np.random.default_rng(0)
    p = tmp_path / "d.npz"
    x_tr = rng.integers(0, 256, (10, 3, 4, 5), dtype=np.uint8)
    np.savez(p, x_train=x_tr, y_train=np.arange(10) % 3, x_test=rng.random((4, 3, 4, 5)),
             y_test=np.array([0, 1, 2, 0]))
    ds = load_dataset(f"npz:{p}")
    assert ds.input_shape == (3, 4, 5) and ds.n_classes == 3 and ds.x_val is None
    np.testing.assert_array_equal(ds.x_train, x_tr / np.float32(255))
    assert ds.x_test.dtype == np.float32 and ds.y_test.dtype == np.int64
    q = tmp_path / "flat.npz"
    np.savez(q, x_train=rng.random((5, 7)), y_train=np.arange(5), x_test=rng.random((2, 7)), y_test=[0, 1],
             x_val=rng.random((3, 7)), y_val=[1, 2, 3])
    ds = load_dataset(f"npz:{q}")
    assert ds.input_shape == (7,) and ds.n_classes == 5 and ds.x_val.shape == (3, 7)


@pytest.mark.parametrize("bad, match", [
    (dict(x_test=None), r"missing array\(s\) x_test"),
    (dict(x_train=np.full((4, 2), 2.0)), r"'x_train' spans \[2, 2\]"),
    (dict(y_train=np.array([0, 1, 2])), r"'y_train' has shape \(3,\), expected \(4,\)"),
    (dict(y_test=np.array([0, 9])), r"'y_test' holds label 9"),
    (dict(x_test=np.zeros((2, 3))), r"'x_test' has samples of shape \(3,\)"),
    (dict(y_train=np.array([0.5, 1, 1, 0])), "expected integer labels"),
])
def test_npz_errors_name_file_and_array(tmp_path, bad, match):
    arrays = dict(x_train=np.zeros((4, 2)), y_train=np.array([0, 1, 1, 0]), x_test=np.zeros((2, 2)),
                  y_test=np.array([0, 1]))
    arrays.update(bad)
    p = tmp_path / "bad.npz"
    np.savez(p, **{k: v for k, v in arrays.items() if v is not None})
    with pytest.raises(DatasetError, match=match) as e:
        load_dataset(f"npz:{p}")
    assert "bad.npz" in str(e.value)


def test_npz_missing_and_corrupt(tmp_path):
    with pytest.raises(DatasetError, match="file not found"):
        load_dataset(f"npz:{tmp_path / 'none.npz'}")
    p = tmp_path / "junk.npz"
    p.write_bytes(b"not a zip")
    with pytest.raises(DatasetError, match="junk.npz: not a readable .npz"):
        load_dataset(f"npz:{p}")


def _image_folder(root, mode="RGB", size=(5, 4), classes=("cat", "dog"), per_class=3, seed=0):
    from PIL import Image

    rng = np.random.default_rng(seed)
    pixels = {}
    for split, n in (("train", per_class), ("test", 2)):
        for c in classes:
            (root / split / c).mkdir(parents=True, exist_ok=True)
            for i in range(n):
                shape = (size[1], size[0], 3) if mode == "RGB" else (size[1], size[0])
                a = rng.integers(0, 256, shape, dtype=np.uint8)
                Image.fromarray(a, mode).save(root / split / c / f"{i}.png")
                pixels[(split, c, i)] = a
    (root / "train" / "cat" / "notes.txt").write_text("not an image: ignored")
    return pixels


def test_imagefolder_layout_labels_and_scaling(tmp_path):
    pixels = _image_folder(tmp_path / "imgs")
    ds = load_dataset(f"imagefolder:{tmp_path / 'imgs'}")
    assert ds.input_shape == (3, 4, 5) and ds.n_classes == 2
    assert ds.y_train.tolist() == [0, 0, 0, 1, 1, 1] and ds.y_test.tolist() == [0, 0, 1, 1]
    np.testing.assert_array_equal(ds.x_train[4], pixels[("train", "dog", 1)].transpose(2, 0, 1) / np.float32(255))
    grey = _image_folder(tmp_path / "grey", mode="L")
    g = load_dataset(f"imagefolder:{tmp_path / 'grey'}")
    assert g.input_shape == (1, 4, 5)
    np.testing.assert_array_equal(g.x_test[3, 0], grey[("test", "dog", 1)] / np.float32(255))


def test_imagefolder_errors_name_the_file(tmp_path):
    from PIL import Image

    root = tmp_path / "imgs"
    with pytest.raises(DatasetError, match="folder not found"):
        load_dataset(f"imagefolder:{root}")
    _image_folder(root)
    Image.fromarray(np.zeros((9, 9, 3), np.uint8)).save(root / "test" / "dog" / "big.png")
    with pytest.raises(DatasetError, match=r"big\.png: image of shape \(3, 9, 9\)"):
        load_dataset(f"imagefolder:{root}")
    (root / "test" / "dog" / "big.png").write_bytes(b"not a png")
    with pytest.raises(DatasetError, match=r"big\.png: not a readable image"):
        load_dataset(f"imagefolder:{root}")
    (root / "test" / "dog" / "big.png").unlink()
    (root / "test" / "bird").mkdir()
    Image.fromarray(np.zeros((4, 5, 3), np.uint8)).save(root / "test" / "bird" / "0.png")
    with pytest.raises(DatasetError, match="bird do not exist under train"):
        load_dataset(f"imagefolder:{root}")
    other = tmp_path / "no_test"
    (other / "train" / "a").mkdir(parents=True)
    with pytest.raises(DatasetError, match="train: no image files"):
        load_dataset(f"imagefolder:{other}")
    Image.fromarray(np.zeros((4, 5), np.uint8)).save(other / "train" / "a" / "0.png")
    with pytest.raises(DatasetError, match="no 'test' subfolder"):
        load_dataset(f"imagefolder:{other}")
