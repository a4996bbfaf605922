"""Surrogate-gradient BPTT (snncompile/train/bptt.py): surrogate, float forward = the deployed
reference, fake-quant forward = fxsim bit for bit, CLI train -> compile."""

from __future__ import annotations

import json

import nir
import numpy as np
import pytest
import torch
from click.testing import CliRunner

from snncompile.cli import main
from snncompile.encode import encode
from snncompile.errors import InvalidModel
from snncompile.ir import get_meta, write_nir
from snncompile.lif.fixed import read_qlif, simulate_fixed
from snncompile.train.bptt import (
    BpttHyper,
    SpikeFn,
    bptt_to_nir,
    decisions,
    evaluate_chain,
    forward,
    quant_params,
    train_bptt,
)
from snncompile.train.erbp import simulate_lif_chain


@pytest.fixture(scope="module")
def toy():
    rng = np.random.default_rng(0)
    x = rng.uniform(0, 1, (120, 4))
    y = (x[:, 0] + 0.5 * x[:, 1] > x[:, 2] + 0.5 * x[:, 3]).astype(np.int64) + (x[:, 0] > 0.8)
    return x, y


def test_fast_sigmoid_surrogate_values():
    x = torch.tensor([-1.0, 0.0, 0.5, 2.0], dtype=torch.float64, requires_grad=True)
    s = SpikeFn.apply(x, 5.0)
    assert s.tolist() == [0.0, 0.0, 1.0, 1.0]  # strict: v = theta does not fire
    s.sum().backward()
    np.testing.assert_allclose(x.grad.numpy(), 1.0 / (1.0 + 5.0 * np.abs([-1.0, 0.0, 0.5, 2.0])) ** 2)


def test_float_forward_equals_the_deployed_reference(toy):
    x, _ = toy
    rng = np.random.default_rng(1)
    ws = [rng.normal(0, 0.8, (6, 4)), rng.normal(0, 0.8, (3, 6))]
    hp = BpttHyper(steps=8, loss="count")
    xs = encode(x, 8)
    scores, counts = evaluate_chain(ws, xs, hp)
    ref = simulate_lif_chain(ws, xs, {"tau": hp.tau, "v_threshold": 1.0})
    np.testing.assert_array_equal(counts[-1], ref)
    np.testing.assert_array_equal(scores, ref)


def test_gradient_reaches_every_layer_and_reset_is_detached(toy):
    x, y = toy
    ws = [torch.full((5, 4), 0.3, dtype=torch.float64, requires_grad=True),
          torch.full((3, 5), 0.3, dtype=torch.float64, requires_grad=True)]
    sb = torch.from_numpy(encode(x[:8], 6).transpose(1, 0, 2).astype(np.float64))
    out = forward(ws, sb, BpttHyper(steps=6, loss="count"))
    torch.nn.functional.cross_entropy(out["counts"][-1], torch.from_numpy(y[:8])).backward()
    assert all(w.grad is not None and w.grad.abs().sum() > 0 for w in ws)


@pytest.fixture(scope="module", params=[("count", 0.0), ("readout", 0.0), ("count", 4.0)],
                ids=["count", "readout", "cuba-count"])
def trained_q(request, toy):
    x, y = toy
    loss, tau_syn = request.param
    res = train_bptt(x, y, arch="4-10-3", epochs=1, batch_size=32, seed=1, profile="loihi2", progress=False,
                     steps=8, loss=loss, tau_syn=tau_syn, dataset_name="toy")
    return res


def test_cuba_float_forward_equals_the_nir_reference(toy):
    """tau_syn > 0: CubaLIF layers, i = i (1 - 1/tau_syn) + q, v = v (1 - 1/tau) + i; the NIR graph the
    chain writes runs the same on the float reference target."""
    from snncompile.targets import run_target

    x, _ = toy
    rng = np.random.default_rng(2)
    ws = [rng.normal(0, 0.6, (6, 4)), rng.normal(0, 0.6, (3, 6))]
    hp = BpttHyper(steps=8, loss="count", tau_syn=5.0)
    xs = encode(x, 8)
    scores, counts = evaluate_chain(ws, xs, hp)
    from snncompile.train.bptt import chain_to_nir

    g = chain_to_nir(ws, hp, (4,), "toy", {}, "bptt", 0)
    assert type(g.nodes["lif1"]).__name__ == "CubaLIF"
    ref = run_target("reference", g, spikes=xs)
    np.testing.assert_array_equal(ref.decisions, decisions(scores))
    assert [int(la.spikes.sum()) for la in ref.layers] == [int(c.sum()) for c in counts]
    lif = evaluate_chain(ws, xs, BpttHyper(steps=8, loss="count"))[1]
    assert any(not np.array_equal(a, b) for a, b in zip(counts, lif))  # the synaptic state matters


def test_fake_quant_forward_equals_fxsim_bit_for_bit(toy, trained_q):
    x, _ = toy
    qp = trained_q.extra["quant"]
    xs = encode(x, 8)
    scores, counts = evaluate_chain(trained_q.weights, xs, trained_q.hyper, qp)
    fx = simulate_fixed(read_qlif(qp.qgraph), xs)
    for i, c in enumerate(counts):
        np.testing.assert_array_equal(c, fx.counts[f"lif{i + 1}"])
    np.testing.assert_array_equal(scores, fx.scores)
    np.testing.assert_array_equal(decisions(scores), fx.scores.argmax(1))
    assert "deployed_train" in trained_q.accuracy


def test_quant_params_come_from_the_quantizer(toy, trained_q):
    x, _ = toy
    hp = trained_q.hyper
    qp = quant_params(trained_q.weights, hp, __import__("snncompile.profile", fromlist=["x"]).load_profile("loihi2"),
                      encode(x[:200], hp.steps), (4,), "toy")
    q = read_qlif(qp.qgraph)
    for i, lay in enumerate(qp.layers):
        pop = q.pops[f"lif{i + 1}"]
        assert lay["dv"] == pop.params.dv and lay["v_lsb"] == pop.params.v_lsb
        conn = next(c for c in q.conns if c.dst == f"lif{i + 1}" and c.src != "bias")
        m = np.clip(np.round(trained_q.weights[i] / lay["unit"] / lay["step"]) * lay["step"], lay["lo"], lay["hi"])
        np.testing.assert_array_equal(m.T, conn.weight.numpy())
        assert lay["exp"] == conn.exp


def test_same_seed_same_weights(toy):
    x, y = toy
    a = train_bptt(x, y, arch="4-6-3", epochs=1, seed=3, progress=False, steps=5)
    b = train_bptt(x, y, arch="4-6-3", epochs=1, seed=3, progress=False, steps=5)
    c = train_bptt(x, y, arch="4-6-3", epochs=1, seed=4, progress=False, steps=5)
    assert all(np.array_equal(p, q) for p, q in zip(a.weights, b.weights))
    assert not np.array_equal(a.weights[0], c.weights[0])


def test_training_lowers_the_loss(toy):
    x, y = toy
    res = train_bptt(x, y, arch="4-12-3", epochs=10, seed=0, progress=False, steps=8, loss="readout", batch_size=16,
                     lr=1e-2)
    assert res.history["loss"][-1] < 0.8 * res.history["loss"][0]
    assert res.accuracy["train"] > np.bincount(y).max() / len(y) + 0.1  # clearly above the majority class


def test_first_spike_loss_and_spike_reg_run(toy):
    x, y = toy
    a = train_bptt(x, y, arch="4-8-3", epochs=2, seed=0, progress=False, steps=6, loss="first-spike")
    b = train_bptt(x, y, arch="4-8-3", epochs=2, seed=0, progress=False, steps=6, loss="first-spike", spike_reg=1.0)
    assert b.history["hidden_rate"][-1] < a.history["hidden_rate"][-1]


@pytest.mark.parametrize("kw, needle", [
    ({"loss": "mse"}, "loss"),
    ({"steps": 0}, "steps"),
    ({"arch": "5-3-3"}, "inputs"),
    ({"bogus": 1}, "unknown"),
])
def test_bad_arguments(toy, kw, needle):
    x, y = toy
    args = {"arch": "4-3-3", "epochs": 1, "progress": False, **kw}
    with pytest.raises(InvalidModel, match=needle):
        train_bptt(x, y, **args)


def test_nir_metadata_and_readout_node(toy, trained_q, tmp_path):
    graph = bptt_to_nir(trained_q, (4,), "toy")
    back = nir.read(write_nir(graph, tmp_path / "m.nir"))
    meta = get_meta(back)
    assert meta["encoding"] == {"type": "regular", "steps": 8, "seed": 1} and meta["trained_by"] == "bptt"
    last = back.nodes["lif2"]
    if trained_q.hyper.loss == "readout":
        assert isinstance(last, nir.LI) and meta["readout"]["type"] == "mean_v"
    else:
        want = nir.CubaLIF if trained_q.hyper.tau_syn else nir.LIF
        assert isinstance(last, want) and meta["readout"]["type"] == "count"


@pytest.mark.slow
def test_cli_train_bptt_profile_then_compile_fxsim_reproduces(tmp_path):
    out = tmp_path / "y.nir"
    r = CliRunner().invoke(main, ["train", "--dataset", "digits", "--arch", "64-16-10", "--method", "bptt",
                                  "--epochs", "1", "--profile", "loihi2", "--loss", "readout", "-o", str(out)])
    assert r.exit_code == 0, r.output + repr(r.exception)
    log = json.loads((tmp_path / "y.train.json").read_text())
    r2 = CliRunner().invoke(main, ["compile", str(out), "--dataset", "digits", "--target", "reference",
                                   "--target", "fxsim", "--out", str(tmp_path / "c"), "--quiet"])
    assert r2.exit_code == 0, r2.output + repr(r2.exception)
    rep = json.loads((tmp_path / "c" / "report.json").read_text())
    acc = log["bptt"]["accuracy"]
    assert rep["targets"]["fxsim"]["accuracy"] == pytest.approx(acc["deployed_test"], abs=1e-12)
    assert rep["reference"]["accuracy"] == pytest.approx(acc["test"], abs=1e-12)


@pytest.mark.slow
def test_cli_train_bptt_float_writes_nir(tmp_path):
    out = tmp_path / "d.nir"
    r = CliRunner().invoke(main, ["train", "--dataset", "digits", "--arch", "64-8-10", "--method", "bptt",
                                  "--epochs", "1", "--loss", "count", "--spike-reg", "0.1", "-o", str(out)])
    assert r.exit_code == 0, r.output + repr(r.exception)
    assert "BPTT" in r.output and get_meta(nir.read(out))["trained_by"] == "bptt"


def test_cli_loss_rejected_for_erbp(tmp_path):
    r = CliRunner().invoke(main, ["train", "--dataset", "digits", "--arch", "64-8-10", "--method", "erbp",
                                  "--loss", "count", "-o", str(tmp_path / "d.nir")])
    assert r.exit_code != 0 and "Traceback" not in r.output and "--loss" in r.output
