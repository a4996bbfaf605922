"""The exact ReLU -> TTFS mapping (B1 form) and its float reference."""

from __future__ import annotations

import nir
import numpy as np
import pytest
import torch
import torch.nn as nn
from conftest import mlp
from hypothesis import given, settings
from hypothesis import strategies as st

from snncompile.errors import InvalidModel
from snncompile.frontends.canonical import AnnModel
from snncompile.ir import get_meta, read_nir, write_nir
from snncompile.ttfs.convert import clipped_ann, convert
from snncompile.ttfs.graph import parse_ttfs
from snncompile.ttfs.reference import simulate


def _single_neuron(w, b, out_w=1.0):
    net = nn.Sequential(nn.Linear(len(w), 1), nn.ReLU(), nn.Linear(1, 1)).double()
    with torch.no_grad():
        net[0].weight[:] = torch.tensor([w])
        net[0].bias[:] = b
        net[2].weight[:] = out_w
        net[2].bias[:] = 0.0
    return AnnModel(net.float(), (len(w),), ["fc", "relu", "out"])


def test_single_neuron_spike_time_is_analytic():
    # inputs x = (0.5, 0.25) spike at t = 0.5 and 0.75 (window [0, 1]); weights 0.75, -0.375; bias
    # 0.125 (exact in float32)
    model = _single_neuron([0.75, -0.375], 0.125)
    x_cal = np.array([[1.0, 0.0]])  # calibrates X_1 = 0.875 -> B = 1.3125, window [1, 2.3125]
    graph = convert(model, x_cal, zeta=0.5)
    net = parse_ttfs(graph)
    hidden = net.layers[0]
    assert hidden.meta["t_min"] == 1.0 and hidden.meta["B"] == 1.3125
    res = simulate(net, np.array([[0.5, 0.25]]))
    v_at_tmin = 0.75 * (1 - 0.5) + (-0.375) * (1 - 0.75) + 0.125  # integrated current + drive = 0.40625
    expected = 1.0 + 1.3125 - v_at_tmin  # then slope 1 up to the threshold B
    assert res.times[hidden.name][0, 0] == pytest.approx(expected, abs=1e-12)
    # the readout potential is the logit: w_out * (t_max - t_i)
    assert res.logits[0, 0] == pytest.approx(v_at_tmin, abs=1e-12)


def test_neuron_silent_below_zero_and_clipped_at_window():
    model = _single_neuron([1.0], -0.2)
    graph = convert(model, np.array([[1.0]]), zeta=0.5)  # X = 0.8, B = 1.2
    net = parse_ttfs(graph)
    res = simulate(net, np.array([[0.1], [1.0]]))
    t = res.times[net.layers[0].name][:, 0]
    assert np.isinf(t[0])  # 0.1 - 0.2 < 0: no spike at all
    assert t[1] == pytest.approx(1.0 + 1.2 - 0.8)


def test_input_above_window_is_clipped_to_first_step():
    model = _single_neuron([1.0], 0.0)
    graph = convert(model, np.array([[0.1]]), zeta=0.0)  # B = X = 0.1: a larger activation clips
    net = parse_ttfs(graph)
    res = simulate(net, np.array([[0.9]]))
    assert res.times[net.layers[0].name][0, 0] == pytest.approx(net.layers[0].meta["t_min"])


@settings(max_examples=25, deadline=None)
@given(seed=st.integers(0, 10_000), zeta=st.floats(0.0, 1.0), hidden=st.integers(1, 3))
def test_snn_equals_clipped_relu_net(seed, zeta, hidden):
    rng = np.random.default_rng(seed)
    sizes = (6,) + tuple(int(rng.integers(2, 9)) for _ in range(hidden)) + (3,)
    model = mlp(sizes, seed=seed)
    x = rng.random((40, 6))
    graph = convert(model, x[:20], zeta=zeta)
    net = parse_ttfs(graph)
    res = simulate(net, x)
    bounds = [la.meta["B"] for la in net.layers if la.role == "hidden"]
    logits, acts = clipped_ann(model, bounds, x)
    assert np.abs(res.logits - logits).max() <= 1e-9
    for layer, a in zip(net.spiking, acts):
        t = res.times[layer.name]
        recovered = np.where(np.isfinite(t), layer.meta["t_max"] - t, 0.0)
        assert np.abs(recovered - a).max() <= 1e-9
        assert np.all(np.isfinite(t) == (a > 0))  # silent exactly when the activation is 0


def test_cnn_with_max_and_average_pool_is_exact(tiny_cnn, rng):
    x = rng.random((60, 1, 8, 8))
    graph = convert(tiny_cnn, x[:30])
    net = parse_ttfs(graph)
    assert [la.role for la in net.layers] == ["hidden", "maxpool", "hidden", "readout"]
    res = simulate(net, x)
    bounds = [la.meta["B"] for la in net.layers if la.role == "hidden"]
    logits, acts = clipped_ann(tiny_cnn, bounds, x)
    assert np.abs(res.logits - logits).max() <= 1e-9
    for layer, a in zip(net.spiking, acts):
        t = res.times[layer.name]
        assert np.abs(np.where(np.isfinite(t), layer.meta["t_max"] - t, 0.0) - a).max() <= 1e-9


def test_windows_chain_and_thresholds(tiny_mlp, rng):
    graph = convert(tiny_mlp, rng.random((30, 12)), zeta=0.5)
    net = parse_ttfs(graph)
    hidden = [la for la in net.layers if la.role == "hidden"]
    assert hidden[0].meta["t_min"] == 1.0
    for a, b in zip(hidden, hidden[1:]):
        assert b.meta["t_min"] == a.meta["t_max"]
    for la in hidden:
        assert la.meta["t_max"] - la.meta["t_min"] == pytest.approx(1.5 * la.meta["X"])
        assert np.all(la.node.v_threshold == la.meta["B"])


def test_nir_round_trip_keeps_arrays_and_metadata(tiny_cnn, rng, tmp_path):
    graph = convert(tiny_cnn, rng.random((20, 1, 8, 8)))
    write_nir(graph, tmp_path / "m.nir")
    back = read_nir(tmp_path / "m.nir")
    assert get_meta(back) == get_meta(graph)
    assert set(back.nodes) == set(graph.nodes) and back.edges == graph.edges
    for name, node in graph.nodes.items():
        other = back.nodes[name]
        assert type(other) is type(node)
        assert get_meta(other) == get_meta(node)
        for key, val in vars(node).items():
            if isinstance(val, np.ndarray):
                assert np.array_equal(np.asarray(getattr(other, key)), val), (name, key)
    x = rng.random((10, 1, 8, 8))
    assert np.array_equal(simulate(parse_ttfs(back), x).logits, simulate(parse_ttfs(graph), x).logits)


def test_float_graph_uses_standard_nir_nodes(tiny_cnn, rng):
    graph = convert(tiny_cnn, rng.random((10, 1, 8, 8)))
    kinds = {type(n) for n in graph.nodes.values()}
    assert kinds <= {nir.Input, nir.Output, nir.Conv2d, nir.Affine, nir.Flatten, nir.AvgPool2d, nir.SumPool2d,
                     nir.CubaLIF, nir.IF}


def test_maxpool_on_input_is_rejected():
    net = nn.Sequential(nn.MaxPool2d(2), nn.Flatten(), nn.Linear(16, 3))
    model = AnnModel(net, (1, 8, 8), ["pool", "flat", "fc"])
    with pytest.raises(InvalidModel, match="pool"):
        convert(model, np.zeros((2, 1, 8, 8)))
