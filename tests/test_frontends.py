"""Frontends: torch and ONNX models into canonical form, BatchNorm folding, ONNX round trip."""

import warnings

import numpy as np
import onnx
import pytest
import torch
import torch.nn.functional as F
from onnx import TensorProto, helper, numpy_helper
from torch import nn

from snncompile.errors import InvalidModel, UnsupportedOperator
from snncompile.frontends import AnnModel, load_model
from snncompile.frontends.canonical import CANONICAL_TYPES, check_canonical
from snncompile.frontends.onnx import export_onnx, from_onnx
from snncompile.frontends.torch import from_torch

TOL = 1e-5


def _randomize_bn(net: nn.Module, seed: int = 0) -> nn.Module:
    """Give every BatchNorm non-trivial running statistics and affine parameters."""
    g = torch.Generator().manual_seed(seed)
    for m in net.modules():
        if isinstance(m, (nn.BatchNorm1d, nn.BatchNorm2d)):
            c = m.num_features
            with torch.no_grad():
                m.running_mean.copy_(torch.randn(c, generator=g))
                m.running_var.copy_(torch.rand(c, generator=g) * 2 + 0.1)
                m.weight.copy_(torch.randn(c, generator=g))
                m.bias.copy_(torch.randn(c, generator=g))
    return net


def _max_diff(module: nn.Module, model: AnnModel, n: int = 16, seed: int = 1) -> float:
    x = torch.randn((n, *model.input_shape), generator=torch.Generator().manual_seed(seed))
    with torch.no_grad():
        return float((module.eval()(x) - model.net(x)).abs().max())


def _onnx_run(model: AnnModel, x: np.ndarray) -> np.ndarray:
    with torch.no_grad():
        return model.net(torch.from_numpy(x)).numpy()


def _export(module: nn.Module, shape: tuple, path, dynamic: bool = True) -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(module.eval(), (torch.zeros((1, *shape)),), str(path), input_names=["x"],
                          output_names=["y"], opset_version=17, dynamo=False,
                          dynamic_axes={"x": {0: "b"}, "y": {0: "b"}} if dynamic else None)


class SmallCNN(nn.Module):
    """Conv -> ReLU -> MaxPool -> Conv -> BN -> ReLU -> AvgPool -> flatten (functional) -> Linear."""

    def __init__(self, flatten: str = "torch.flatten"):
        super().__init__()
        self.flatten = flatten
        self.conv1 = nn.Conv2d(1, 4, 3, padding=1)
        self.pool1 = nn.MaxPool2d(2)
        self.conv2 = nn.Conv2d(4, 6, 3, stride=1, padding=1)
        self.bn2 = nn.BatchNorm2d(6)
        self.pool2 = nn.AvgPool2d(2)
        self.drop = nn.Dropout(0.3)
        self.fc = nn.Linear(6 * 2 * 2, 5)

    def forward(self, x):
        n = x.size(0)
        x = self.pool1(F.relu(self.conv1(x)))
        x = self.pool2(torch.relu(self.bn2(self.conv2(x))))
        if self.flatten == "early_size":
            x = x.view(n, -1)
        elif self.flatten == "torch.flatten":
            x = torch.flatten(x, 1)
        elif self.flatten == "view":
            x = x.view(x.size(0), -1)
        elif self.flatten == "reshape":
            x = x.reshape(x.shape[0], -1)
        else:
            x = x.flatten(1)
        return self.fc(self.drop(x))


# ------------------------------------------------------------------------------------ torch


def test_sequential_and_custom_module_agree():
    torch.manual_seed(0)
    seq = nn.Sequential(nn.Linear(6, 5), nn.ReLU(), nn.Sequential(nn.Linear(5, 4), nn.ReLU()), nn.Linear(4, 3))

    class Custom(nn.Module):
        def __init__(self):
            super().__init__()
            self.a, self.b, self.c = seq[0], seq[2][0], seq[3]

        def forward(self, x):
            return self.c(torch.relu(self.b(F.relu(self.a(torch.flatten(x, 1))))))

    m1, m2 = from_torch(seq, (6,)), from_torch(Custom(), (6,))
    assert m1.layer_names == ["0", "1", "2.0", "2.1", "3"]
    assert all(type(m) in CANONICAL_TYPES for m in m1.net)
    x = torch.randn(8, 6)
    with torch.no_grad():
        assert torch.equal(m1.net(x), m2.net(x))
        assert torch.equal(m1.net(x), seq(x))
    assert m1.input_shape == (6,)


@pytest.mark.parametrize("flatten", ["torch.flatten", "view", "reshape", "method", "early_size"])
def test_cnn_flatten_variants(flatten):
    torch.manual_seed(0)
    module = _randomize_bn(SmallCNN(flatten))
    model = from_torch(module, (1, 8, 8))
    assert [type(m).__name__ for m in model.net] == [
        "Conv2d", "ReLU", "MaxPool2d", "Conv2d", "ReLU", "AvgPool2d", "Flatten", "Linear"]
    assert model.layer_names[0] == "conv1" and model.layer_names[3] == "conv2"
    assert _max_diff(module, model) < TOL


def test_user_module_is_not_mutated():
    torch.manual_seed(0)
    module = _randomize_bn(nn.Sequential(nn.Linear(4, 3), nn.BatchNorm1d(3), nn.ReLU(), nn.Linear(3, 2)))
    module.train()
    before = {k: v.clone() for k, v in module.state_dict().items()}
    model = from_torch(module, (4,))
    assert module.training and not model.net.training
    assert all(torch.equal(before[k], v) for k, v in module.state_dict().items())
    assert len(model.net) == 3  # BN folded away


@pytest.mark.parametrize("case", ["bn1d_after_linear", "bn2d_after_conv", "bn2d_after_relu_flatten_linear",
                                  "bn2d_after_relu_unpadded_conv", "bn1d_after_relu", "bn_input", "two_bns"])
def test_batchnorm_folding_is_exact(case):
    torch.manual_seed(0)
    nets = {
        "bn1d_after_linear": (nn.Sequential(nn.Linear(5, 7), nn.BatchNorm1d(7), nn.ReLU(), nn.Linear(7, 3)), (5,)),
        "bn2d_after_conv": (nn.Sequential(nn.Conv2d(2, 3, 3, padding=1, bias=False), nn.BatchNorm2d(3), nn.ReLU(),
                                          nn.Flatten(), nn.Linear(3 * 5 * 5, 4)), (2, 5, 5)),
        "bn2d_after_relu_flatten_linear": (nn.Sequential(nn.Conv2d(2, 3, 3), nn.ReLU(), nn.BatchNorm2d(3),
                                                         nn.Dropout(), nn.Flatten(), nn.Identity(),
                                                         nn.Linear(3 * 3 * 3, 4)), (2, 5, 5)),
        "bn2d_after_relu_unpadded_conv": (nn.Sequential(nn.Conv2d(2, 3, 3, padding=1), nn.ReLU(), nn.BatchNorm2d(3),
                                                        nn.Conv2d(3, 4, 3, stride=2, bias=False), nn.ReLU(),
                                                        nn.Flatten(), nn.Linear(4 * 2 * 2, 2)), (2, 5, 5)),
        "bn1d_after_relu": (nn.Sequential(nn.Linear(5, 7), nn.ReLU(), nn.BatchNorm1d(7), nn.Linear(7, 3)), (5,)),
        "bn_input": (nn.Sequential(nn.BatchNorm1d(5), nn.Linear(5, 3)), (5,)),
        "two_bns": (nn.Sequential(nn.Linear(5, 7), nn.ReLU(), nn.BatchNorm1d(7), nn.BatchNorm1d(7),
                                  nn.Linear(7, 3)), (5,)),
    }
    module, shape = nets[case]
    module = _randomize_bn(module)
    model = from_torch(module, shape)
    assert not any(isinstance(m, (nn.BatchNorm1d, nn.BatchNorm2d, nn.Dropout, nn.Identity)) for m in model.net)
    assert _max_diff(module, model) < TOL


def test_batchnorm_after_relu_before_padded_conv_is_folded_exactly():
    """The authors' VGG block (conv -> ReLU -> BN -> padded conv): BN's shift does not pass the zero
    padding, so the fold is exact only with a position-dependent bias at the borders."""
    torch.manual_seed(0)
    module = nn.Sequential(nn.Conv2d(1, 2, 3), nn.ReLU(), nn.BatchNorm2d(2), nn.Conv2d(2, 2, 3, padding=1)).eval()
    with torch.no_grad():
        module[2].running_mean.uniform_(-1, 1)
        module[2].running_var.uniform_(0.5, 2)
        module[2].bias.uniform_(-1, 1)
    model = from_torch(module, (1, 6, 6))
    x = torch.rand(8, 1, 6, 6)
    with torch.no_grad():
        np.testing.assert_allclose(model.net(x).numpy(), module(x).numpy(), rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("layer, op", [(nn.Sigmoid(), "Sigmoid"), (nn.LSTM(4, 4), "LSTM"),
                                       (nn.Conv1d(1, 1, 1), "Conv1d")])
def test_unsupported_module(layer, op):
    module = nn.Sequential(nn.Linear(4, 4), nn.Sequential(nn.ReLU(), layer))
    with pytest.raises(UnsupportedOperator) as e:
        from_torch(module, (4,))
    assert e.value.op == op and e.value.node == "1.1"
    assert op in str(e.value) and "'1.1'" in str(e.value) and "Linear" in str(e.value)


def test_unsupported_function_and_branching():
    class Sig(nn.Module):
        def __init__(self):
            super().__init__()
            self.fc = nn.Linear(3, 3)

        def forward(self, x):
            return torch.sigmoid(self.fc(x))

    class Residual(Sig):
        def forward(self, x):
            return self.fc(x) + x

    with pytest.raises(UnsupportedOperator, match="sigmoid"):
        from_torch(Sig(), (3,))
    with pytest.raises(InvalidModel, match="single chain"):
        from_torch(Residual(), (3,))


def test_load_model_dispatch(tmp_path):
    with pytest.raises(InvalidModel, match="input_shape"):
        load_model(nn.Sequential(nn.Linear(2, 2)))
    with pytest.raises(InvalidModel, match="missing.onnx"):
        load_model(tmp_path / "missing.onnx")
    (tmp_path / "net.pt").write_bytes(b"x")
    with pytest.raises(InvalidModel, match="net.pt"):
        load_model(tmp_path / "net.pt")
    model = load_model(nn.Sequential(nn.Linear(2, 2)), input_shape=(2,))
    assert isinstance(model, AnnModel)


def test_check_canonical_names_the_layer():
    ok = AnnModel(nn.Sequential(nn.Linear(4, 2)), (4,), ["fc"])
    check_canonical(ok)
    bad_shape = AnnModel(nn.Sequential(nn.Linear(4, 2)), (1, 2, 2), ["fc"])
    with pytest.raises(InvalidModel, match="'fc'.*flat"):
        check_canonical(bad_shape)
    bad_type = AnnModel(nn.Sequential(nn.Linear(4, 2), nn.Tanh()), (4,), ["fc", "act"])
    with pytest.raises(UnsupportedOperator, match="Tanh.*'act'"):
        check_canonical(bad_type)
    bad_dtype = AnnModel(nn.Sequential(nn.Linear(4, 2).double()), (4,), ["fc"])
    with pytest.raises(InvalidModel, match="'fc'.*float64"):
        check_canonical(bad_dtype)
    bad_pool = AnnModel(nn.Sequential(nn.MaxPool2d(2, padding=1)), (1, 4, 4), ["pool"])
    with pytest.raises(InvalidModel, match="'pool'.*padding"):
        check_canonical(bad_pool)


# ------------------------------------------------------------------------------------- ONNX


def test_onnx_from_torch_export_mlp_and_cnn(tmp_path):
    torch.manual_seed(0)
    mlp = nn.Sequential(nn.Linear(10, 8), nn.ReLU(), nn.Dropout(), nn.Linear(8, 3))
    cnn = _randomize_bn(SmallCNN("view"))
    relu_bn = _randomize_bn(nn.Sequential(nn.Conv2d(1, 3, 3), nn.ReLU(), nn.BatchNorm2d(3), nn.Flatten(),
                                          nn.Linear(3 * 6 * 6, 4)))
    for i, (module, shape) in enumerate([(mlp, (10,)), (cnn, (1, 8, 8)), (relu_bn, (1, 8, 8))]):
        path = tmp_path / f"m{i}.onnx"
        _export(module, shape, path)
        model = from_onnx(path)
        assert model.input_shape == shape and model.name == f"m{i}"
        assert not any(isinstance(m, nn.BatchNorm2d) for m in model.net)
        assert _max_diff(module, model) < TOL


def test_onnx_static_batch_reshape(tmp_path):
    torch.manual_seed(0)
    module = SmallCNN("view")
    _export(module, (1, 8, 8), tmp_path / "static.onnx", dynamic=False)
    assert _max_diff(module, from_onnx(tmp_path / "static.onnx")) < TOL


def _save(tmp_path, nodes, inits, in_shape, out_dim, name="g.onnx"):
    graph = helper.make_graph(nodes, "g", [helper.make_tensor_value_info("x", TensorProto.FLOAT, in_shape)],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["N", out_dim])],
                              [numpy_helper.from_array(v.astype(np.float32), k) for k, v in inits.items()])
    path = tmp_path / name
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]), str(path))
    return path


def test_onnx_matmul_add_and_gemm_match_numpy(tmp_path):
    rng = np.random.default_rng(0)
    w1, b1 = rng.normal(size=(6, 5)), rng.normal(size=5)
    w2, b2 = rng.normal(size=(5, 3)), rng.normal(size=(1, 3))
    w3 = rng.normal(size=(3, 2))
    nodes = [
        helper.make_node("MatMul", ["x", "w1"], ["h1"], name="mm1"),
        helper.make_node("Add", ["b1", "h1"], ["h2"], name="add1"),
        helper.make_node("Relu", ["h2"], ["h3"]),  # unnamed
        helper.make_node("Gemm", ["h3", "w2", "b2"], ["h4"], name="gemm", alpha=0.5, beta=2.0, transB=0),
        helper.make_node("Relu", ["h4"], ["h5"], name="relu2"),
        helper.make_node("Constant", [], ["w3"], value=numpy_helper.from_array(w3.astype(np.float32))),
        helper.make_node("MatMul", ["h5", "w3"], ["y"], name="mm_nobias"),
    ]
    path = _save(tmp_path, nodes, {"w1": w1, "b1": b1, "w2": w2, "b2": b2}, ["N", 6], 2)
    model = from_onnx(path)
    assert model.layer_names == ["mm1", "#2 Relu", "gemm", "relu2", "mm_nobias"]
    assert model.net[-1].bias is None
    x = rng.normal(size=(7, 6)).astype(np.float32)
    h = np.maximum(x @ w1 + b1, 0)
    h = np.maximum(0.5 * h @ w2 + 2.0 * b2, 0)
    np.testing.assert_allclose(_onnx_run(model, x), h @ w3, atol=TOL, rtol=0)


def test_onnx_batchnorm_conv_and_flatten_graph(tmp_path):
    rng = np.random.default_rng(1)
    w, b = rng.normal(size=(3, 2, 3, 3)), rng.normal(size=3)
    sc, bb, mu, var = rng.normal(size=3), rng.normal(size=3), rng.normal(size=3), rng.random(3) + 0.5
    wf = rng.normal(size=(4, 3 * 2 * 2))
    nodes = [
        helper.make_node("Conv", ["x", "w", "b"], ["c"], name="conv", pads=[1, 1, 1, 1], strides=[2, 2]),
        helper.make_node("BatchNormalization", ["c", "sc", "bb", "mu", "var"], ["n"], name="bn", epsilon=1e-3),
        helper.make_node("Relu", ["n"], ["r"], name="relu"),
        helper.make_node("MaxPool", ["r"], ["p"], name="pool", kernel_shape=[2, 2], strides=[2, 2]),
        helper.make_node("Flatten", ["p"], ["f"], name="flat", axis=1),
        helper.make_node("Gemm", ["f", "wf"], ["y"], name="fc", transB=1),
    ]
    path = _save(tmp_path, nodes, {"w": w, "b": b, "sc": sc, "bb": bb, "mu": mu, "var": var, "wf": wf},
                 ["N", 2, 7, 7], 4)
    model = from_onnx(path)
    assert model.layer_names == ["conv", "relu", "pool", "flat", "fc"]
    x = rng.normal(size=(5, 2, 7, 7)).astype(np.float32)
    xt = torch.from_numpy(x).double()
    c = F.conv2d(xt, torch.from_numpy(w), torch.from_numpy(b), stride=2, padding=1)
    s = torch.from_numpy(sc / np.sqrt(var + 1e-3)).view(1, 3, 1, 1)
    c = (c - torch.from_numpy(mu).view(1, 3, 1, 1)) * s + torch.from_numpy(bb).view(1, 3, 1, 1)
    ref = F.max_pool2d(F.relu(c), 2).flatten(1) @ torch.from_numpy(wf).T
    np.testing.assert_allclose(_onnx_run(model, x), ref.numpy(), atol=TOL, rtol=0)


def test_truncated_onnx_is_invalid_model(tmp_path):
    path = tmp_path / "mlp.onnx"
    _export(nn.Sequential(nn.Linear(50, 40), nn.ReLU(), nn.Linear(40, 3)), (50,), path)
    data = path.read_bytes()
    bad = tmp_path / "truncated.onnx"
    bad.write_bytes(data[: len(data) // 2])
    with pytest.raises(InvalidModel, match="cannot read ONNX file '.*truncated.onnx'") as e:
        load_model(bad)
    assert "\n" not in str(e.value)


def test_onnx_unsupported_op_and_branch(tmp_path):
    w = np.ones((3, 3))
    sig = [helper.make_node("MatMul", ["x", "w"], ["h"], name="mm"),
           helper.make_node("Sigmoid", ["h"], ["y"], name="act")]
    path = _save(tmp_path, sig, {"w": w}, ["N", 3], 3, "sig.onnx")
    with pytest.raises(UnsupportedOperator) as e:
        from_onnx(path)
    assert e.value.op == "Sigmoid" and e.value.node == "act" and "sig.onnx" in str(e.value)
    soft = [helper.make_node("Softmax", ["x"], ["y"])]
    with pytest.raises(UnsupportedOperator, match="'Softmax' at node '#0 Softmax'"):
        from_onnx(_save(tmp_path, soft, {}, ["N", 3], 3, "soft.onnx"))
    branch = [helper.make_node("MatMul", ["x", "w"], ["h"], name="mm"),
              helper.make_node("Relu", ["x"], ["r"], name="skip"),
              helper.make_node("Add", ["h", "r"], ["y"], name="join")]
    with pytest.raises(InvalidModel, match="branch.*single chain|single chain"):
        from_onnx(_save(tmp_path, branch, {"w": w}, ["N", 3], 3, "branch.onnx"))


def test_export_onnx_round_trip(tmp_path):
    torch.manual_seed(0)
    model = from_torch(_randomize_bn(SmallCNN("view")), (1, 8, 8))
    path = tmp_path / "out.onnx"
    export_onnx(model, path)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out.onnx"]
    graph = onnx.load(str(path)).graph
    assert [i.name for i in graph.input] == ["input"] and [o.name for o in graph.output] == ["logits"]
    back = from_onnx(path)
    assert back.input_shape == model.input_shape
    assert [type(m) for m in back.net] == [type(m) for m in model.net]
    x = np.random.default_rng(0).normal(size=(9, 1, 8, 8)).astype(np.float32)
    np.testing.assert_allclose(_onnx_run(back, x), _onnx_run(model, x), atol=TOL, rtol=0)


@pytest.mark.parametrize("target, ok", [([0, -1], True), ([-1, 12], True), ([0, 12], True),
                                        ([-1, 4, 3], False), ([1, -1], False), ([-1, 6], False)])
def test_onnx_reshape_must_be_a_flatten(tmp_path, target, ok):
    w = np.random.default_rng(0).normal(size=(12, 2))
    nodes = [helper.make_node("Reshape", ["x", "shape"], ["f"], name="reshape"),
             helper.make_node("MatMul", ["f", "w"], ["y"], name="fc")]
    graph = helper.make_graph(nodes, "g", [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", 3, 2, 2])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["N", 2])],
                              [numpy_helper.from_array(w.astype(np.float32), "w"),
                               numpy_helper.from_array(np.array(target, np.int64), "shape")])
    path = tmp_path / "r.onnx"
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]), str(path))
    if not ok:
        with pytest.raises(UnsupportedOperator, match="Reshape.*'reshape'"):
            from_onnx(path)
        return
    model = from_onnx(path)
    x = np.random.default_rng(1).normal(size=(4, 3, 2, 2)).astype(np.float32)
    np.testing.assert_allclose(_onnx_run(model, x), x.reshape(4, -1) @ w, atol=TOL, rtol=0)
