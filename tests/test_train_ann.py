"""Architecture specs, building and deterministic training of ReLU ANNs."""

import numpy as np
import pytest
import torch
from torch import nn

from snncompile.errors import InvalidModel
from snncompile.frontends.canonical import check_canonical
from snncompile.train.ann import ann_activations, build_ann, evaluate_ann, parse_arch, train_ann


def test_parse_arch_good():
    assert parse_arch("784-340-10") == ((784,), [("linear", 340), ("linear", 10)])
    shape, tokens = parse_arch("1x28x28-c8k5p2-m2-c16k5-a2-64-10")
    assert shape == (1, 28, 28)
    assert tokens == [("conv", 8, 5, 1, 2), ("maxpool", 2), ("conv", 16, 5, 1, 0), ("avgpool", 2),
                      ("linear", 64), ("linear", 10)]
    assert parse_arch("3x9x9-c4k3s2p1-10")[1] == [("conv", 4, 3, 2, 1), ("linear", 10)]


@pytest.mark.parametrize("spec, token", [
    ("784-340-c8k3", "c8k3"),      # last token must be the class count
    ("784", "784"),                # no layers
    ("28x28-10", "28x28"),         # input must be N or CxHxW
    ("784-c8k3-10", "c8k3"),       # conv on a flat input
    ("1x8x8-q3-10", "q3"),         # unknown token
    ("1x4x4-c2k5-10", "c2k5"),     # kernel larger than the map
    ("1x8x8-m0-10", "m0"),
    ("784-0-10", "0"),
    ("784--10", ""),
])
def test_parse_arch_bad(spec, token):
    with pytest.raises(InvalidModel) as e:
        parse_arch(spec)
    assert f"token {token!r}" in str(e.value) and "Grammar" in str(e.value)


@pytest.mark.parametrize("spec, shapes", [
    ("784-340-10", [(340,), (340,), (10,)]),
    ("1x28x28-c8k5p2-m2-c16k5-a2-64-10",
     [(8, 28, 28), (8, 28, 28), (8, 14, 14), (16, 10, 10), (16, 10, 10), (16, 5, 5), (400,), (64,), (64,), (10,)]),
    ("1x8x8-c8k3p1-m2-32-10", [(8, 8, 8), (8, 8, 8), (8, 4, 4), (128,), (32,), (32,), (10,)]),
])
def test_build_ann_shapes(spec, shapes):
    model = build_ann(spec, seed=0)
    check_canonical(model)
    assert model.input_shape == parse_arch(spec)[0] and len(model.layer_names) == len(model.net)
    h = torch.zeros((2, *model.input_shape))
    got = []
    for m in model.net:
        h = m(h)
        got.append(tuple(h.shape[1:]))
    assert got == shapes
    assert not isinstance(model.net[-1], nn.ReLU)
    assert all(torch.equal(a, b) for a, b in zip(model.net.parameters(), build_ann(spec, seed=0).net.parameters()))


def _blobs(n=400, seed=0):
    """Two well separated Gaussian blobs in 2x4x4 'images' (flattened for the MLP)."""
    rng = np.random.default_rng(seed)
    y = rng.integers(0, 2, n)
    x = rng.normal(size=(n, 2, 4, 4)).astype(np.float32) * 0.5
    x[:, 0] += np.where(y == 1, 1.0, -1.0)[:, None, None]
    return x.astype(np.float32), y


def test_training_reaches_high_accuracy():
    x, y = _blobs()
    model = build_ann("32-16-2", seed=0)
    hist = train_ann(model, x.reshape(len(x), -1), y, epochs=3, batch_size=32, lr=1e-2, progress=False,
                     x_val=x.reshape(len(x), -1), y_val=y)
    assert hist["epoch"] == [1, 2, 3] and len(hist["train_loss"]) == 3
    assert hist["val_acc"][-1] > 0.95
    assert not model.net.training
    assert (evaluate_ann(model, x.reshape(len(x), -1)).argmax(1) == y).mean() > 0.95


def test_training_is_deterministic_and_activations():
    x, y = _blobs(200)
    state = torch.random.get_rng_state()
    runs = []
    for _ in range(2):
        model = build_ann("2x4x4-c4k3p1-m2-8-2", seed=3)
        hist = train_ann(model, x, y, epochs=2, batch_size=16, seed=7, progress=False)
        runs.append((model, hist))
    assert torch.equal(state, torch.random.get_rng_state())  # global RNG untouched
    (m1, h1), (m2, h2) = runs
    assert h1 == h2 and h1["val_acc"] == [None, None]
    s1, s2 = m1.net.state_dict(), m2.net.state_dict()
    assert all(torch.equal(s1[k], s2[k]) for k in s1)
    other = build_ann("2x4x4-c4k3p1-m2-8-2", seed=3)
    train_ann(other, x, y, epochs=2, batch_size=16, seed=8, progress=False)
    assert not torch.equal(other.net.state_dict()["conv1.weight"], s1["conv1.weight"])

    logits = evaluate_ann(m1, x, batch_size=64)
    assert logits.shape == (200, 2) and logits.dtype == np.float64
    acts = ann_activations(m1, x, batch_size=64)
    assert [a.shape for a in acts] == [(200, 4, 4, 4), (200, 8)]
    assert all((a >= 0).all() for a in acts)
    with torch.no_grad():
        ref = m1.net[:2](torch.from_numpy(x)).numpy()
    np.testing.assert_allclose(acts[0], ref, atol=1e-6)


def test_training_data_mismatch_is_clear():
    model = build_ann("16-4-3")
    with pytest.raises(InvalidModel, match=r"\(16,\).*\(8,\)"):
        train_ann(model, np.zeros((4, 8), np.float32), np.zeros(4, int), epochs=1, progress=False)
    with pytest.raises(InvalidModel, match="labels.*3 outputs"):
        train_ann(model, np.zeros((4, 16), np.float32), np.array([0, 1, 2, 5]), epochs=1, progress=False)
