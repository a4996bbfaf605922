"""NeuroBench metrics: analytic values on hand-made layers, and the same numbers as neurobench
2.3.0's own ``Benchmark`` on (a) a torch ReLU MLP and (b) an snnTorch LIF net (same model, same
data, same spikes)."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.sparse as sp
import torch
import torch.nn as nn

from snncompile.neurobench import (
    SynapseLayer,
    ann_metrics,
    as_neurobench,
    layer_breakdown,
    metrics,
    storage_bytes,
    ttfs_synapse_layers,
)
from snncompile.targets.base import LayerRun, Run

W = np.array([[1.0, 0.0, 2.0],
              [0.0, 3.0, 4.0]])  # 2 zeros of 6; column nnz: 1, 1, 2


def _run(layers, input_spikes, t_total=None, spikes=None, traces=None, n_out=2):
    n = len(input_spikes)
    info = {} if t_total is None else {"t_total": t_total}
    return Run("t", np.zeros((n, n_out)), np.zeros(n, dtype=int), layers, np.asarray(input_spikes), info=info,
               spikes=spikes, traces=traces)


def _pop(name, spikes_per_neuron, role="hidden", times=None):
    c = np.asarray(spikes_per_neuron)
    return LayerRun(name, role, c.shape[1], c.sum(axis=1), times)


# ---- analytic ---------------------------------------------------------------------------------

def test_connection_sparsity_and_parameters_of_a_2x3_matrix():
    run = _run([_pop("h", [[0, 0]])], [0])
    m = metrics([SynapseLayer("fc", "input", "h", W, bias=np.zeros(2))], run, 0.5)
    assert m["connection_sparsity"] == round(2 / 6, 4)
    assert m["parameter_count"] == 6 + 2
    assert m["footprint_bytes"] == 8 * 8  # float64 reference: 8 bytes per value
    assert m["classification_accuracy"] == 0.5


def test_effective_acs_count_nonzero_weights_of_the_spiking_inputs():
    # input spikes [1, 0, 1] -> nnz(column 0) + nnz(column 2) = 1 + 2 accumulates
    run = _run([_pop("h", [[0, 0]])], [2])
    m = metrics([SynapseLayer("fc", "input", "h", W)], run, input_counts=np.array([[1, 0, 1]]))
    assert m["synaptic_operations"]["effective_acs"] == 3
    assert m["synaptic_operations"]["effective_macs"] == 0
    assert m["synaptic_operations"]["dense"] == 6  # T = 1: every synapse once
    assert not m["approximations"] or "membrane" in m["approximations"][0]
    # the same through a scipy sparse matrix, over two samples and T = 4 steps
    run = _run([_pop("h", [[0, 0], [0, 0]])], [2, 3], t_total=4)
    m = metrics([SynapseLayer("fc", "input", "h", sp.csr_matrix(W))], run,
                input_counts=np.array([[1, 0, 1], [0, 3, 0]]))
    assert m["synaptic_operations"]["effective_acs"] == pytest.approx((3 + 3) / 2)
    assert m["synaptic_operations"]["dense"] == 4 * 6


def test_hidden_spikes_from_ttfs_times_drive_the_next_layer():
    # hidden neuron 1 fires (once), neuron 0 stays silent; readout weights [[1, 0], [5, 6]]
    times = np.array([[np.inf, 0.7]])
    run = _run([_pop("h", [[0, 1]], times=times)], [1])
    layers = [SynapseLayer("fc1", "input", "h", np.eye(2)),
              SynapseLayer("fc2", "h", "readout", np.array([[1.0, 0.0], [5.0, 6.0]]))]
    m = metrics(layers, run, input_counts=np.array([[0, 1]]))
    assert m["synaptic_operations"]["effective_acs"] == 1 + 1  # input 1 -> 1 synapse; hidden 1 -> 1 synapse
    assert m["activation_sparsity"] == 0.5  # T = 1: one of two neurons silent
    assert m["approximations"] == [m["approximations"][0]] and "membrane" in m["approximations"][0]
    rows = {r["name"]: r for r in layer_breakdown(m)}
    assert rows["h"]["synaptic_operations"] == 1 and rows["readout"]["synaptic_operations"] == 1


def test_without_per_neuron_counts_the_estimate_is_flagged():
    lif = LayerRun("h", "hidden", 2, np.array([5]), np.array([[1, 2]]))  # 5 spikes, first at steps 1, 2
    run = _run([lif], [2], t_total=10)
    m = metrics([SynapseLayer("fc1", "input", "h", W.T), SynapseLayer("fc2", "h", "r", W)], run,
                input_counts=np.array([[1, 1]]))
    assert any("mean fan-out" in note for note in m["approximations"])
    assert m["per_layer"][1]["effective_acs"] == pytest.approx(5 * 4 / 3)
    assert not m["per_layer"][1]["exact"] and m["per_layer"][0]["exact"]


def test_activation_sparsity_and_membrane_updates_follow_neurobench():
    # 1 sample, T = 3, 2 neurons; neuron 0 spikes at steps 1 and 3
    raster = np.array([[[1, 0], [0, 0], [1, 0]]], dtype=bool)
    v = np.array([[[0.5, 0.1], [0.5, 0.1], [0.2, 0.1]]])  # changes: step 1 all, step 2 none, step 3 one
    run = _run([LayerRun("h", "output", 2, np.array([2]))], [0], t_total=3, spikes={"h": raster},
               traces={"h": v})
    m = metrics([SynapseLayer("fc", "input", "h", np.ones((2, 1)))], run, input_counts=np.zeros((1, 1)))
    assert m["activation_sparsity"] == pytest.approx(1 - 2 / 6)
    assert m["membrane_updates"] == 2 + 0 + 1
    assert m["approximations"] == []


def test_inconsistent_counts_are_refused():
    run = _run([_pop("h", [[0, 0]])], [1])
    with pytest.raises(ValueError, match="input_counts"):
        metrics([SynapseLayer("fc", "input", "h", W)], run, input_counts=np.array([[1, 0, 1]]))
    with pytest.raises(ValueError, match="source 'x'"):
        metrics([SynapseLayer("fc", "x", "h", W)], run)


def test_fixed_point_footprint_widths():
    assert [storage_bytes(b) for b in (1, 8, 9, 16, 17, 24, 32, 33)] == [1, 1, 2, 2, 4, 4, 4, 8]
    run = _run([_pop("h", [[0, 0]])], [0])
    layer = SynapseLayer("fc", "input", "h", W, bias=np.zeros(2), constants={"threshold": 1, "du": (1, 12)})
    m = metrics([layer], run, weight_bits=4, bias_bits=16, state_bits=24)
    # 6 weights x 1 byte + 2 biases x 2 bytes + threshold (24 bit: 4 bytes) + du (12 bit: 2 bytes)
    assert m["footprint_bytes"] == 6 + 4 + 4 + 2
    assert m["footprint_bytes_packed"] == -(-(6 * 4 + 2 * 16 + 24 + 12) // 8)
    assert m["parameter_count"] == 8


def test_conv_kernel_counts_stored_parameters():
    conv = nn.Conv2d(1, 2, 3, padding=1, bias=False)
    with torch.no_grad():
        conv.weight[0, 0, 0, 0] = 0.0
    import nir

    from snncompile.nirops import composite_matrix  # the unrolled map, as the adapters build it

    node = nir.Conv2d(input_shape=(4, 4), weight=conv.weight.detach().double().numpy(), stride=1, padding=1,
                      dilation=1, groups=1, bias=np.zeros(2))
    Wc = composite_matrix([("c", node)], (1, 4, 4))
    run = _run([_pop("h", [[0] * 32])], [0])
    m = metrics([SynapseLayer("c", "input", "h", Wc, "conv", kernel=node.weight)], run,
                input_counts=np.zeros((1, 16)))
    assert m["parameter_count"] == 18
    assert m["connection_sparsity"] == round(1 / 18, 4)


def test_ttfs_adapter_on_a_converted_mlp(tiny_mlp, rng):
    from snncompile.targets import get_target
    from snncompile.targets.base import Inputs, RunRequest
    from snncompile.ttfs.convert import convert

    x = rng.random((20, 12))
    graph = convert(tiny_mlp, x)
    layers = ttfs_synapse_layers(graph)
    assert [(la.src, la.dst, la.kind) for la in layers] == [("input", "ttfs1", "linear"), ("ttfs1", "ttfs2", "linear"),
                                                           ("ttfs2", "readout", "linear")]
    ref = get_target("reference").run(RunRequest(graph, "ttfs", inputs=Inputs(x, "latency")))
    m = metrics(layers, ref, input_counts=(x > 0).astype(int))
    a = ann_metrics(tiny_mlp, x)
    assert m["parameter_count"] == a["parameter_count"]  # 12*16+16 + 16*10+10 + 10*5+5
    assert m["synaptic_operations"]["dense"] == a["synaptic_operations"]["dense"]
    # the exact mapping: a hidden neuron spikes iff its (clipped) ReLU activation is > 0
    assert m["activation_sparsity"] == pytest.approx(a["activation_sparsity"])
    assert m["synaptic_operations"]["effective_acs"] == pytest.approx(a["synaptic_operations"]["effective_macs"])


# ---- cross-check with neurobench 2.3.0 ------------------------------------------------------------

def _digits(n_test=200):
    from snncompile.data import load_dataset

    d = load_dataset("digits")
    return (np.asarray(d.x_train, np.float32).reshape(len(d.x_train), -1), np.asarray(d.y_train),
            np.asarray(d.x_test, np.float32).reshape(len(d.x_test), -1)[:n_test], np.asarray(d.y_test)[:n_test])


def _loader(x, y, batch):
    from torch.utils.data import DataLoader, TensorDataset

    return DataLoader(TensorDataset(torch.as_tensor(x), torch.as_tensor(y)), batch_size=batch, shuffle=False)


def _assert_same(ours: dict, theirs: dict):
    assert set(theirs) <= set(ours)
    for key, val in theirs.items():
        if isinstance(val, dict):
            for k, v in val.items():
                assert ours[key][k] == pytest.approx(v, rel=1e-12, abs=1e-12), (key, k)
        else:  # neurobench averages accuracy in float32 (torch.mean of a float tensor)
            rel = 1e-6 if key == "ClassificationAccuracy" else 1e-12
            assert ours[key] == pytest.approx(val, rel=rel, abs=1e-12), key


def test_ann_metrics_equal_neurobench_torch_model():
    pytest.importorskip("neurobench")
    from neurobench.benchmarks import Benchmark
    from neurobench.metrics.static import ConnectionSparsity, Footprint, ParameterCount
    from neurobench.metrics.workload import (
        ActivationSparsity,
        ClassificationAccuracy,
        MembraneUpdates,
        SynapticOperations,
    )
    from neurobench.models import TorchModel

    x_tr, y_tr, x_te, y_te = _digits()
    torch.manual_seed(0)
    net = nn.Sequential(nn.Linear(64, 32), nn.ReLU(), nn.Linear(32, 10))
    opt = torch.optim.Adam(net.parameters(), lr=1e-2)
    xt, yt = torch.as_tensor(x_tr[:600]), torch.as_tensor(y_tr[:600])
    for _ in range(30):  # a few full-batch steps: a net that classifies, quickly
        opt.zero_grad()
        nn.functional.cross_entropy(net(xt), yt).backward()
        opt.step()
    with torch.no_grad():  # prune: zero weights make connection sparsity and effective MACs non-trivial
        for lin in (net[0], net[2]):
            lin.weight[lin.weight.abs() < 0.05] = 0.0
    net.eval()
    with torch.no_grad():
        acc = float((net(torch.as_tensor(x_te)).argmax(1).numpy() == y_te).mean())
    ours = ann_metrics(net, x_te, acc, batch_size=64)

    bench = Benchmark(TorchModel(net), _loader(x_te, y_te, 64), [], [lambda out: out.argmax(1)],
                      [[Footprint, ConnectionSparsity, ParameterCount],
                       [ClassificationAccuracy, ActivationSparsity, SynapticOperations, MembraneUpdates]])
    theirs = bench.run(quiet=True)
    print("ANN ours:", as_neurobench(ours), "\nANN neurobench:", theirs)
    assert acc > 0.8
    assert 0 < ours["connection_sparsity"] < 1 and ours["synaptic_operations"]["effective_macs"] > 0
    _assert_same(as_neurobench(ours), theirs)


def test_lif_metrics_equal_neurobench_snntorch_model():
    pytest.importorskip("neurobench")
    snn = pytest.importorskip("snntorch")
    from neurobench.benchmarks import Benchmark
    from neurobench.metrics.static import ConnectionSparsity, Footprint, ParameterCount
    from neurobench.metrics.workload import (
        ActivationSparsity,
        ClassificationAccuracy,
        MembraneUpdates,
        SynapticOperations,
    )
    from neurobench.models import SNNTorchModel
    from neurobench.processors.postprocessors import ChooseMaxCount

    from snncompile.encode import encode

    _, _, x_te, y_te = _digits(100)
    T = 12
    raster = encode(x_te, T, "latency").astype(np.float32)  # (N, T, 64): each pixel > 0 spikes once
    torch.manual_seed(1)
    net = nn.Sequential(nn.Linear(64, 32), snn.Leaky(beta=1.0, init_hidden=True),
                        nn.Linear(32, 10), snn.Leaky(beta=1.0, init_hidden=True, output=True))
    with torch.no_grad():
        net[0].weight.mul_(3.0)
        net[2].weight.mul_(3.0)
        net[0].weight[:, ::5] = 0.0  # zero synapses: effective ACs differ from spikes x fan-in
        net[0].bias.zero_()  # no leak (beta = 1), no bias: a neuron without input keeps its v,
        net[2].bias.zero_()  # which neurobench does not count as a membrane update
    leaky = [net[1], net[3]]

    # our side: one pass over all samples, recording spikes and membranes of each population
    rec = {0: ([], []), 1: ([], [])}

    def hook(i):
        def fn(mod, inp, out):
            spk = out[0] if isinstance(out, tuple) else out
            rec[i][0].append(spk.detach().clone())
            rec[i][1].append(mod.mem.detach().clone())
        return fn

    handles = [m.register_forward_hook(hook(i)) for i, m in enumerate(leaky)]
    for m in leaky:
        m.mem = torch.zeros(0)
    with torch.no_grad():
        data = torch.as_tensor(raster)
        for t in range(T):
            net(data[:, t])
    for h in handles:
        h.remove()
    for m in leaky:
        m.mem = torch.zeros(0)  # neurobench's Footprint counts the mem buffer: leave it empty, as fresh
    spikes = {name: torch.stack(rec[i][0], 1).numpy().astype(bool) for i, name in enumerate(("lif1", "lif2"))}
    traces = {name: torch.stack(rec[i][1], 1).numpy() for i, name in enumerate(("lif1", "lif2"))}
    counts = spikes["lif2"].sum(1)
    decisions = counts.argmax(1)
    run = Run("snntorch", counts.astype(float), decisions,
              [LayerRun(n, role, s.shape[2], s.sum((1, 2))) for (n, s), role in zip(spikes.items(), ("hidden", "output"))],
              raster.sum((1, 2)), info={"t_total": T}, spikes={"input": raster, **spikes}, traces=traces)
    # snnTorch's Leaky stores beta, threshold, graded_spikes_factor (float32) and reset_mechanism_val (int64)
    consts = {"beta": 1, "threshold": 1, "graded_spikes_factor": 1, "reset_mechanism_val": (1, 64)}
    layers = [SynapseLayer("fc1", "input", "lif1", net[0].weight.detach().numpy(), bias=net[0].bias.detach().numpy(),
                           constants=consts),
              SynapseLayer("fc2", "lif1", "lif2", net[2].weight.detach().numpy(), bias=net[2].bias.detach().numpy(),
                           constants=consts)]
    acc = float((decisions == y_te).mean())
    ours = metrics(layers, run, acc, float_bytes=4)

    bench = Benchmark(SNNTorchModel(net), _loader(raster, y_te, 25), [], [ChooseMaxCount()],
                      [[Footprint, ConnectionSparsity, ParameterCount],
                       [ClassificationAccuracy, ActivationSparsity, SynapticOperations, MembraneUpdates]])
    theirs = bench.run(quiet=True)
    print("LIF ours:", as_neurobench(ours), "\nLIF neurobench:", theirs)
    assert ours["approximations"] == []
    assert spikes["lif1"].any() and spikes["lif2"].any() and not spikes["lif1"].all()
    assert 0 < ours["membrane_updates"] < T * 42  # neurobench's count, not the dense bound
    _assert_same(as_neurobench(ours), theirs)


def test_ttfs_adapter_on_a_cnn_and_its_quantized_graph(tiny_cnn, rng):
    from snncompile.profile import load_profile
    from snncompile.quantize.ttfs import quantize_ttfs
    from snncompile.ttfs.convert import convert

    x = rng.random((16, 1, 8, 8))
    graph = convert(tiny_cnn, x)
    layers = ttfs_synapse_layers(graph)
    kinds = [la.kind for la in layers]
    assert kinds == ["conv", "pool", "conv", "linear"]
    convs = [m for m in tiny_cnn.net if isinstance(m, (nn.Conv2d, nn.Linear))]
    assert [int(np.size(la.kernel)) for la in layers if la.kind != "pool"] == [m.weight.numel() for m in convs]
    # conv 1 (padding 1): 4 maps x 8x8 positions x 3x3 kernel, minus the taps that fall on the padding
    assert layers[0].structural_synapses() == 4 * (6 * 6 * 9 + 4 * 6 * 6 + 4 * 4)
    qgraph, _ = quantize_ttfs(graph, load_profile("loihi2"), 4, x)
    q = ttfs_synapse_layers(qgraph)
    assert [la.weight_bits for la in q if la.kind != "pool"] == [8, 8, 8]
    assert all(la.bias_bits == 16 for la in q if la.kind != "pool")


def test_lif_adapter_on_a_hand_made_nir_graph():
    import nir

    from snncompile.neurobench import lif_synapse_layers

    w1, w2 = np.arange(12.0).reshape(4, 3), np.ones((2, 4))
    graph = nir.NIRGraph(nodes={
        "in": nir.Input(input_type={"input": np.array([3])}),
        "fc1": nir.Affine(weight=w1, bias=np.ones(4)),
        "lif1": nir.LIF(tau=np.full(4, 10.0), r=np.ones(4), v_leak=np.zeros(4), v_threshold=np.arange(4.0),
                        v_reset=np.zeros(4)),
        "fc2": nir.Linear(weight=w2),
        "lif2": nir.LIF(tau=np.full(2, 10.0), r=np.ones(2), v_leak=np.zeros(2), v_threshold=np.ones(2),
                        v_reset=np.zeros(2)),
        "out": nir.Output(output_type={"output": np.array([2])}),
    }, edges=[("in", "fc1"), ("fc1", "lif1"), ("lif1", "fc2"), ("fc2", "lif2"), ("lif2", "out")])
    layers = lif_synapse_layers(graph)
    assert [(la.name, la.src, la.dst) for la in layers] == [("fc1", "input", "lif1"), ("fc2", "lif1", "lif2")]
    assert layers[0].constants == {"tau": 1, "r": 1, "v_leak": 1, "v_threshold": 4, "v_reset": 1}
    run = _run([_pop("lif1", [[1, 0, 0, 2]]), _pop("lif2", [[0, 1]], role="output")], [1], t_total=5)
    m = metrics(layers, run, input_counts=np.array([[0, 0, 1]]))
    assert m["parameter_count"] == 12 + 4 + 8
    assert m["connection_sparsity"] == round(1 / 20, 4)  # w1[0, 0] = 0
    assert m["synaptic_operations"]["effective_acs"] == 4 + (1 + 2) * 2
    assert m["synaptic_operations"]["dense"] == 5 * (12 + 8)


# ---- our own targets: the adapters on real runs ---------------------------------------------------

@pytest.mark.parametrize("which", ["mlp", "cnn"])
def test_fxsim_ttfs_metrics_match_its_own_synop_count(which, tiny_mlp, tiny_cnn, rng):
    from snncompile.encode import ttfs_counts
    from snncompile.profile import load_profile
    from snncompile.quantize.ttfs import quantize_ttfs
    from snncompile.targets import get_target
    from snncompile.targets.base import Inputs, RunRequest
    from snncompile.ttfs.convert import convert

    model = tiny_mlp if which == "mlp" else tiny_cnn
    x = rng.random((24, *model.input_shape))
    prof = load_profile("loihi2")
    qgraph, _ = quantize_ttfs(convert(model, x), prof, 4, x)
    counts = ttfs_counts(x, 4)
    run = get_target("fxsim").run(RunRequest(qgraph, "ttfs", prof, Inputs(x, "latency-4", counts, 4),
                                             options={"record": True}))
    m = metrics(ttfs_synapse_layers(qgraph), run, 0.5, input_counts=(counts.reshape(len(x), -1) > 0).astype(int))
    assert m["approximations"] == []  # per-neuron spikes from the TTFS times, v from the recorded traces
    assert m["synaptic_operations"]["effective_acs"] == pytest.approx(run.info["energy"]["synops_per_sample"])
    assert m["time_steps"] == run.info["t_total"]
    spiking = sum(la.neurons for la in run.layers)
    assert 0 < m["membrane_updates"] <= spiking * m["time_steps"]
    total_spikes = sum(la.spikes.sum() for la in run.layers)
    assert m["activation_sparsity"] == pytest.approx(1 - total_spikes / (len(x) * m["time_steps"] * spiking))


def test_lif_adapter_on_a_quantized_graph_and_fxsim():
    import nir

    from snncompile.encode import encode
    from snncompile.frontends.nir import read_spiking_graph
    from snncompile.neurobench import lif_synapse_layers
    from snncompile.profile import load_profile
    from snncompile.quantize.lif import quantize_lif
    from snncompile.targets import get_target
    from snncompile.targets.base import Inputs, RunRequest

    rng = np.random.default_rng(3)
    w1, w2 = rng.normal(0, 1.5, (6, 4)), rng.normal(0, 1.5, (3, 6))
    w1[0, :2] = 0.0
    graph = nir.NIRGraph(nodes={
        "in": nir.Input(input_type={"input": np.array([4])}),
        "fc1": nir.Affine(weight=w1, bias=np.full(6, 0.05)),
        "lif1": nir.LIF(tau=np.full(6, 3.0), r=np.full(6, 3.0), v_leak=np.zeros(6), v_threshold=np.ones(6)),
        "fc2": nir.Affine(weight=w2, bias=np.zeros(3)),
        "lif2": nir.LIF(tau=np.full(3, 3.0), r=np.full(3, 3.0), v_leak=np.zeros(3), v_threshold=np.ones(3)),
        "out": nir.Output(output_type={"output": np.array([3])}),
    }, edges=[("in", "fc1"), ("fc1", "lif1"), ("lif1", "fc2"), ("fc2", "lif2"), ("lif2", "out")])
    raster = encode(rng.random((16, 4)), 20, "regular")
    prof = load_profile("loihi2")
    q, _ = quantize_lif(read_spiking_graph(graph), prof, raster)
    layers = lif_synapse_layers(q)
    assert {(la.src, la.dst, la.kind) for la in layers} >= {("input", "lif1", "linear"), ("lif1", "lif2", "linear"),
                                                            ("bias", "lif1", "bias")}
    assert all(la.weight_bits == prof.weights.bits for la in layers)
    run = get_target("fxsim").run(RunRequest(q, "lif", prof, Inputs(raster, "regular", raster, 20),
                                             options={"record": True}))
    m = metrics(layers, run, 0.5, input_counts=raster.reshape(16, 20, -1).sum(1))
    assert m["approximations"] == []
    expect = 0.0
    for la in layers:
        if la.kind == "bias":
            continue
        src = raster.reshape(16, 20, -1).sum(1) if la.src == "input" else run.spikes[la.src].reshape(16, -1, 6).sum(1)
        expect += float((src @ (np.asarray(la.weight) != 0).sum(0)).mean())
    assert m["synaptic_operations"]["effective_acs"] == pytest.approx(expect)
    # weights 8 bit -> 1 byte; biases 13 + 3 bit -> 2 bytes; the bias source's weights are stored as weights
    n_w = sum(int(np.size(la.kernel)) for la in layers if la.kind != "bias")
    n_b = sum(int(np.size(la.bias)) for la in layers if la.bias is not None)
    n_bias_src = sum(int(np.size(la.kernel)) for la in layers if la.kind == "bias")
    assert m["parameter_count"] == n_w + n_b + n_bias_src
    # the float graph through the float reference: no rasters recorded, so hidden-layer operations are estimated
    ref = get_target("reference").run(RunRequest(graph, "lif", inputs=Inputs(raster, "regular", raster, 20)))
    mf = metrics(lif_synapse_layers(graph), ref, 0.5, input_counts=raster.reshape(16, 20, -1).sum(1))
    assert any("lif1 -> lif2" in note for note in mf["approximations"])
