"""LIF fine-tuning (snncompile/train/lif_finetune*.py, xylo_torch.py): the float pass equals the
reference, the fake-quant passes equal fxsim bit for bit (Loihi and Xylo), hil uses the target's
values, a foreign norse graph recovers accuracy lost to 4-bit weights, the CLI round trip."""

from __future__ import annotations

import json

import nir
import numpy as np
import pytest
import torch
from click.testing import CliRunner

from snncompile.cli import main
from snncompile.encode import encode
from snncompile.ir import get_meta, read_nir, set_meta, write_nir
from snncompile.lif.reference import simulate
from snncompile.neurons import xylo as nx
from snncompile.profile import load_profile
from snncompile.targets import get_target, run_target
from snncompile.train.lif_finetune import finetune_lif, target_spikes
from snncompile.train.lif_finetune_model import LifNet, LoihiQuant
from snncompile.train.xylo_torch import XyloQuant, xylo_neuron, xylo_spikes


def chain(seed=0, sizes=(4, 12, 3), kinds=("LIF", "CubaLIF"), bias=True, enc=True) -> nir.NIRGraph:
    """input -> fc1 -> p1 -> fc2 -> p2 -> output with per-neuron thresholds, biases, two kinds."""
    rng = np.random.default_rng(seed)
    nodes, names = {"input": nir.Input(input_type={"input": np.array([sizes[0]])})}, ["input"]
    for i, (a, b) in enumerate(zip(sizes[:-1], sizes[1:]), start=1):
        nodes[f"fc{i}"] = nir.Affine(weight=rng.normal(0, 1.5 / np.sqrt(a), (b, a)),
                                     bias=rng.normal(0, 0.05, b) if bias else np.zeros(b))
        thr = rng.uniform(0.6, 1.4, b)
        if kinds[i - 1] == "LIF":
            nodes[f"p{i}"] = nir.LIF(tau=np.full(b, 8.0), r=np.full(b, 8.0), v_leak=np.zeros(b), v_threshold=thr,
                                     v_reset=np.zeros(b))
        else:
            nodes[f"p{i}"] = nir.CubaLIF(tau_syn=np.full(b, 4.0), tau_mem=np.full(b, 10.0), r=np.full(b, 10.0),
                                         v_leak=np.zeros(b), v_threshold=thr, v_reset=np.zeros(b), w_in=np.full(b, 4.0))
        names += [f"fc{i}", f"p{i}"]
    nodes["output"] = nir.Output(output_type={"output": np.array([sizes[-1]])})
    g = nir.NIRGraph(nodes=nodes, edges=list(zip(names, names[1:] + ["output"])), metadata={}, type_check=False)
    if enc:
        set_meta(g, {"dt": 1.0, "encoding": {"type": "regular", "steps": 12, "seed": 0}})
    return g


@pytest.fixture(scope="module")
def raster():
    return encode(np.random.default_rng(1).uniform(0, 1, (60, 4)), 12)


def test_xylo_torch_neuron_equals_neurons_xylo():
    rng = np.random.default_rng(0)
    n, k = 400, 9
    isyn = rng.integers(-2 ** 15, 2 ** 15, (n, k))
    vmem = rng.integers(-2 ** 15, 2 ** 15, (n, k))
    isyn[:20], vmem[:20] = rng.integers(-3, 4, (20, k)), rng.integers(-3, 4, (20, k))  # the +-1 minimum decay
    ds, dm = rng.integers(0, 16, k), rng.integers(0, 16, k)
    th, bias = rng.integers(1, 3000, k), rng.integers(-500, 500, k)
    for limit in (1, 31):
        i_ref, v_ref, n_ref = nx.xylo_step(isyn, vmem, ds, dm, th, bias, limit)
        i_t, v_pre = xylo_neuron(torch.as_tensor(isyn), torch.as_tensor(vmem), torch.as_tensor(ds),
                                 torch.as_tensor(dm), torch.as_tensor(bias))
        n_t, v_t = xylo_spikes(v_pre, th, limit)
        np.testing.assert_array_equal(i_t.numpy(), i_ref)
        np.testing.assert_array_equal(v_t.numpy(), v_ref)
        np.testing.assert_array_equal(n_t.numpy(), n_ref)
        assert n_ref.max() == limit  # the multi-spike cap is exercised


def test_float_forward_equals_the_reference(raster):
    m = LifNet(chain())
    with torch.no_grad():
        out = m(torch.from_numpy(raster))
    ref = simulate(m.net, raster)
    np.testing.assert_array_equal(out["scores"].numpy(), ref.scores)
    for k, c in ref.counts.items():
        np.testing.assert_array_equal(out["counts"][k].numpy(), c)


@pytest.mark.parametrize("bits", [8, 4])
def test_loihi_fake_quant_forward_equals_fxsim(raster, bits):
    m = LifNet(chain(2))
    prof = load_profile("loihi2").with_weight_bits(bits)
    q = LoihiQuant(m, prof, raster[:30])
    out = q.forward(m, torch.from_numpy(raster))
    run = run_target("fxsim", q.qgraph, spikes=raster, profile=prof, record=True)
    np.testing.assert_array_equal(out["scores"].detach().numpy(), run.logits)
    for k, s in run.spikes.items():
        np.testing.assert_array_equal(out["counts"][k].detach().numpy(), s.sum(1))
    assert sum(int(s.sum()) for s in run.spikes.values()) > 0
    torch.nn.functional.cross_entropy(out["scores"], torch.zeros(len(raster), dtype=torch.long)).backward()
    assert all(w.grad is not None and w.grad.abs().sum() > 0 for w in m.weights.values())


def test_xylo_fake_quant_forward_equals_fxsim(raster):
    m = LifNet(chain(3, sizes=(4, 16, 3)))
    prof = load_profile("xylo-audio2")
    q = XyloQuant(m, prof, raster[:30])
    p = q.params(m)  # the fake-quant integers are the quantizer's
    for mat, key in (("in", "weights_in"), ("rec", "weights_rec"), ("out", "weights_out")):
        np.testing.assert_array_equal(np.rint(p["w"][mat].detach().numpy()), q.spec[key])
    np.testing.assert_array_equal(np.rint(p["b"]["hidden"].detach().numpy()), q.spec["bias"])
    out = q.forward(m, torch.from_numpy(raster))
    run = run_target("fxsim", q.qgraph, spikes=raster, profile=prof, record=True)
    np.testing.assert_array_equal(out["scores"].detach().numpy(), run.logits)
    np.testing.assert_array_equal(out["counts"]["p1"].detach().numpy(), run.spikes["p1"].sum(1))
    assert run.spikes["p1"].max() > 1  # Xylo's multi-spike steps occur
    torch.nn.functional.cross_entropy(out["scores"] * 0.5, torch.zeros(len(raster), dtype=torch.long)).backward()
    assert all(w.grad is not None and w.grad.abs().sum() > 0 for w in m.weights.values())


def test_hil_forward_takes_the_targets_values(raster):
    m = LifNet(chain(4))
    prof = load_profile("loihi2").with_weight_bits(4)
    q = LoihiQuant(m, prof, raster[:30])
    hw = target_spikes(m, q, get_target("fxsim"), raster, prof)
    run = run_target("fxsim", q.qgraph, spikes=raster, profile=prof)  # what fxsim returns, independently
    out = m(torch.from_numpy(raster), mode="hil", hw=hw)
    np.testing.assert_array_equal(out["scores"].detach().numpy(), run.logits)
    for la in run.layers:
        np.testing.assert_array_equal(out["counts"][la.name].detach().numpy().sum(1), la.spikes)
    # and they differ from the float model's own forward (4-bit weights), so the substitution matters
    with torch.no_grad():
        own = m(torch.from_numpy(raster))
    assert not np.array_equal(own["scores"].numpy(), run.logits)
    torch.nn.functional.cross_entropy(out["scores"], torch.zeros(len(raster), dtype=torch.long)).backward()
    assert all(w.grad is not None and w.grad.abs().sum() > 0 for w in m.weights.values())


@pytest.fixture(scope="module")
def lava():
    pytest.importorskip("lava")
    from snncompile.targets.lava.compat import require_lava

    require_lava()
    return get_target("lava")


def test_hil_on_lava_takes_lavas_values_and_they_are_fxsims(raster, lava):
    m = LifNet(chain(7))
    prof = load_profile("loihi2").with_weight_bits(4)
    q = LoihiQuant(m, prof, raster[:30])
    hw = target_spikes(m, q, lava, raster[:6], prof)
    assert hw["bit_exact_with_fxsim"] is True
    out = m(torch.from_numpy(raster[:6]), mode="hil", quant=q, hw=hw)
    fx = q.forward(m, torch.from_numpy(raster[:6]))  # the fake-quant pass: fxsim bit for bit
    np.testing.assert_array_equal(out["scores"].detach().numpy(), fx["scores"].detach().numpy())
    for k, c in fx["counts"].items():
        np.testing.assert_array_equal(out["counts"][k].detach().numpy(), c.detach().numpy())


# ---- a foreign (norse) graph: 4-bit loss, recovered ----------------------------------------------

@pytest.fixture(scope="module")
def norse_yinyang():
    """A norse-built LIF net 4-32-3 (norse's to_nir: scalar parameters, r = 1, tau = 10, biases),
    trained briefly (3 epochs of surrogate-gradient BPTT on the float NIR dynamics, 16 regular
    steps, recorded as the graph's encoder).  Yin-Yang's 4 inputs make every weight count: 4-bit
    weights cost it about 13 points."""
    import dataclasses

    from snncompile.data import load_dataset
    from snncompile.train.lif_finetune_model import norse_example_graph

    data = load_dataset("yinyang")
    graph = norse_example_graph(data.x_train, data.y_train, seed=0)
    return dataclasses.replace(data, x_val=data.x_val[:500], y_val=data.y_val[:500]), graph


@pytest.mark.slow
def test_norse_graph_recovers_4bit_accuracy_with_qat_and_hil(norse_yinyang):
    data, graph = norse_yinyang
    prof = load_profile("loihi2").with_weight_bits(4)
    qat = finetune_lif(graph, data, profile=prof, mode="qat", epochs=2, lr=1e-3, progress=False)
    log = qat.log
    assert log["monitor"] == "val" and len(log["accuracy"]) == 3
    before, after = log["accuracy"][0], log["accuracy"][-1]
    assert before < log["float_accuracy"][0] - 0.05  # 4-bit weights lose accuracy on this net ...
    assert after >= before + 0.08  # ... and QAT wins it back
    hil = finetune_lif(qat.graph, data, profile=prof, mode="hil", target="fxsim", epochs=1, lr=1e-5,
                       max_batches=20, progress=False)
    assert hil.log["accuracy"][0] == after  # the QAT graph, re-quantized: the same deployed network
    assert hil.log["accuracy"][-1] >= after - 0.02
    alone = finetune_lif(graph, data, profile=prof, mode="hil", target="fxsim", epochs=1, lr=1e-3, progress=False)
    assert alone.log["accuracy"][0] == before and alone.log["accuracy"][-1] >= before + 0.04  # hil alone helps too


# ---- command line ----------------------------------------------------------------------------------

def test_cli_finetune_lif_writes_a_graph_compile_deploys(tmp_path):
    g = chain(5, sizes=(64, 16, 10), kinds=("LIF", "LIF"), bias=False)
    write_nir(g, tmp_path / "m.nir")
    out = tmp_path / "t.nir"
    r = CliRunner().invoke(main, ["finetune", str(tmp_path / "m.nir"), "--dataset", "digits", "--bits", "4",
                                  "--mode", "qat", "--epochs", "1", "--lr", "1e-3", "--quiet", "-o", str(out)])
    assert r.exit_code == 0, r.output + repr(r.exception)
    assert "LIF qat" in r.output
    log = json.loads((tmp_path / "t.log.json").read_text())
    assert (tmp_path / "t.log.png").is_file()
    tuned = read_nir(out)
    meta = get_meta(tuned)
    assert meta["dt"] == 1.0 and meta["encoding"]["steps"] == 12 and meta["finetuned"]["mode"] == "qat"
    assert not np.array_equal(tuned.nodes["fc1"].weight, g.nodes["fc1"].weight)
    assert np.all(tuned.nodes["fc1"].bias == 0)  # a bias-free layer stays bias-free
    r2 = CliRunner().invoke(main, ["compile", str(out), "--dataset", "digits", "--bits", "4", "--target", "fxsim",
                                   "--out", str(tmp_path / "c"), "--quiet"])
    assert r2.exit_code == 0, r2.output + repr(r2.exception)
    rep = json.loads((tmp_path / "c" / "report.json").read_text())
    assert rep["targets"]["fxsim"]["accuracy"] == log["accuracy"][-1]  # same calibration, same deployed net


def test_cli_finetune_lif_rejects_ttfs_options_and_mismatched_targets(tmp_path):
    write_nir(chain(6, sizes=(64, 8, 10)), tmp_path / "m.nir")
    base = ["finetune", str(tmp_path / "m.nir"), "--dataset", "digits", "--quiet", "-o", str(tmp_path / "t.nir")]
    r = CliRunner().invoke(main, base + ["--window-scale", "0.5"])
    assert r.exit_code == 1 and "--window-scale" in r.output and "LIF" in r.output
    r = CliRunner().invoke(main, base + ["--mode", "hil", "--target", "xylosim"])
    assert r.exit_code == 1 and "xylosim" in r.output and "loihi2" in r.output
