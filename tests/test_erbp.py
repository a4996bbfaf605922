"""eRBP: the rule on single synapses (analytic), the deployed LIF chain, encoding, learning,
determinism, quantized learning, NIR export round trip and the CLI."""

from __future__ import annotations

import json

import nir
import numpy as np
import pytest
import torch
from click.testing import CliRunner

from snncompile.arith import weight_grid
from snncompile.cli import main
from snncompile.encode import encode, spike_counts
from snncompile.errors import InvalidModel
from snncompile.ir import get_meta, write_nir
from snncompile.train.erbp import (
    ErbpHyper,
    decisions,
    erbp_presentation,
    erbp_to_nir,
    erbp_update,
    evaluate_erbp,
    simulate_lif_chain,
    train_erbp,
)

# ------------------------------------------------------------------ helpers


def _separable(n, seed):
    """Two classes split by x0 > x1 with a margin; features [x0, x1, 1-x0, 1-x1] (Yin-Yang style)."""
    rng = np.random.default_rng(seed)
    p = rng.random((4 * n, 2))
    p = p[np.abs(p[:, 0] - p[:, 1]) > 0.2][:n]
    y = (p[:, 0] > p[:, 1]).astype(np.int64)
    return np.concatenate([p, 1 - p], axis=1).astype(np.float32), y


@pytest.fixture(scope="module")
def toy():
    return _separable(300, 0), _separable(300, 1)


@pytest.fixture(scope="module")
def trained(toy):
    (x, y), (xv, yv) = toy
    return train_erbp(x, y, arch=(4, 12, 2), epochs=3, batch_size=10, lr=None, seed=3, x_val=xv, y_val=yv,
                      progress=False)


@pytest.fixture(scope="module")
def trained_q(toy):
    (x, y), _ = toy
    return train_erbp(x, y, arch=(4, 12, 2), epochs=2, batch_size=10, lr=None, seed=3, profile="loihi2",
                      rounding="stochastic", progress=False)


ONE_SPIKE = np.ones((1, 1, 1), np.uint8)  # one input spike emitted at step 1 (T_in = 1)


# ------------------------------------------------------------------ the rule, analytically
# A 1 -> 1 chain, T_in = 1, L = 1: T = 2 steps.  Step 1: nothing arrives (one step of delay).
# Step 2: q = w arrives with the input spike, v = w, I = (1 - 1/tau_current) * 0 + w / tau_current,
# the label trace starts (t > L): e = (s_out - target_rate) / tau_error.  Change: -eta * e * [box].


def _single(w, spikes=ONE_SPIKE, **kw):
    hp = ErbpHyper(steps=spikes.shape[1], eta=1e-2, **kw)
    counts, changes = erbp_presentation([np.array([[w]])], spikes, [0], hp)
    return hp, int(counts[0, 0]), float(changes[0][0, 0])


def test_output_too_low_increases_the_weight():
    hp, count, dw = _single(0.5)  # v = 0.5: no output spike, error = -target_rate / tau_error < 0
    assert count == 0
    assert dw == pytest.approx(hp.eta * hp.target_rate / hp.tau_error, rel=1e-12) and dw > 0


def test_output_too_high_decreases_the_weight():
    hp, count, dw = _single(15.0)  # spikes at step 2: error = (1 - target_rate) / tau_error > 0; I = 0.75 in box
    assert count == 1
    assert dw == pytest.approx(-hp.eta * (1 - hp.target_rate) / hp.tau_error, rel=1e-12) and dw < 0


def test_no_update_outside_the_boxcar():
    _, count, dw = _single(25.0)  # I = 25 / 20 = 1.25 > b_high = 1
    assert count == 1 and dw == 0.0
    _, _, dw_low = _single(0.5, b_low=0.1)  # I = 0.025 < b_low
    assert dw_low == 0.0
    _, _, dw_in = _single(0.5, b_low=0.02)  # I = 0.025 inside again
    assert dw_in > 0


def test_no_update_without_presynaptic_spike():
    for w in (0.5, 15.0):
        _, count, dw = _single(w, spikes=np.zeros((1, 3, 1), np.uint8))
        assert count == 0 and dw == 0.0


def test_erbp_update_is_one_addition_per_event():
    pre = np.array([[1, 0, 1], [1, 1, 0]], dtype=np.float64)          # (B=2, n_in=3)
    dend = np.array([[0.5, -2.0], [0.25, 3.0]])                       # (B, n_out=2)
    cur = np.array([[0.0, 0.0], [5.0, 0.0]])                          # sample 1, neuron 0: gate closed
    got = erbp_update(pre, dend, cur, -1.0, 1.0)
    want = np.array([[0.5, 0.0, 0.5], [-2.0 + 3.0, 3.0, -2.0]])
    np.testing.assert_array_equal(got, want)
    t = erbp_update(torch.tensor(pre), torch.tensor(dend), torch.tensor(cur), -1.0, 1.0)
    np.testing.assert_array_equal(t.numpy(), want)


def test_hidden_layer_update_follows_feedback_sign():
    """2-layer chain: the hidden change has the sign of -G * e (G = +1 vs -1)."""
    w = [np.array([[0.5]]), np.array([[0.5]])]
    x = np.ones((1, 4, 1), np.uint8)
    hp = ErbpHyper(steps=4, eta=1e-2)
    _, up = erbp_presentation(w, x, [0], hp, feedback=[np.array([[1.0]])])
    _, down = erbp_presentation(w, x, [0], hp, feedback=[np.array([[-1.0]])])
    assert up[0][0, 0] > 0 and down[0][0, 0] == -up[0][0, 0]  # output silent: e < 0, U = G e
    assert up[1][0, 0] == down[1][0, 0] > 0                   # output layer: G = identity


def test_margin_silences_the_error_once_the_label_leads():
    """margin > 0: no error (no update) while the label's output rate leads the others' by the
    margin; a label that never leads gets exactly the updates of the plain rule."""
    w = [np.array([[0.6, 0.6], [0.0, 0.0]])]   # output 0 fires on every step, output 1 never
    x = np.ones((1, 20, 2), np.uint8)
    plain, with_margin = ErbpHyper(), ErbpHyper(margin=0.2)
    _, c0 = erbp_presentation(w, x, [0], plain)
    _, cm = erbp_presentation(w, x, [0], with_margin)
    assert np.abs(c0[0]).sum() > 0 and np.abs(cm[0]).sum() < 0.5 * np.abs(c0[0]).sum()
    _, c1 = erbp_presentation(w, x, [1], plain)
    _, c1m = erbp_presentation(w, x, [1], with_margin)
    assert np.abs(c1[0]).sum() > 0
    np.testing.assert_array_equal(c1[0], c1m[0])
    with pytest.raises(InvalidModel, match="margin"):
        ErbpHyper(margin=-1).check()


def test_data_init_puts_every_firing_onset_on_a_training_sample(toy):
    """init="data": each first-layer neuron's current per step for the rate code of some training
    sample x_p is exactly its firing onset v_th / tau (its boxcar is open there, and its hyperplane
    crosses the data); the uniform init does not do that."""
    (x, y), _ = toy
    kw = dict(arch=(4, 16, 2), epochs=0, batch_size=10, lr=None, seed=1, progress=False)
    res = train_erbp(x, y, init="data", init_scale=8.0, **kw)
    onset = res.hyper.v_threshold / res.hyper.tau
    gap = np.abs(res.weights[0] @ x.astype(np.float64).T - onset).min(axis=1)
    assert gap.max() < 1e-5
    uni = train_erbp(x, y, **kw)
    assert np.abs(uni.weights[0] @ x.astype(np.float64).T - onset).min(axis=1).max() > 1e-3
    with pytest.raises(InvalidModel, match="init"):
        ErbpHyper(init="gauss").check()


def test_hidden_eta_scales_only_the_hidden_updates(toy):
    (x, y), _ = toy
    kw = dict(arch=(4, 8, 2), batch_size=10, lr=2e-3, seed=2, progress=False)
    start = train_erbp(x[:60], y[:60], epochs=0, **kw)
    frozen = train_erbp(x[:60], y[:60], epochs=1, hidden_eta=0.0, **kw)
    assert np.array_equal(frozen.weights[0], start.weights[0])
    assert not np.array_equal(frozen.weights[1], start.weights[1])
    with pytest.raises(InvalidModel, match="hidden_eta"):
        ErbpHyper(hidden_eta=-1.0).check()


def test_preset_for_applies_lr_and_margin_and_checks():
    from snncompile.train.erbp_job import PRESETS, preset_for

    eta, hyper = preset_for("yinyang")
    assert eta == PRESETS["yinyang"]["eta"] and "eta" not in hyper and hyper["init"] == "data"
    ErbpHyper(eta=eta, **hyper).check()
    assert preset_for("yinyang", lr=1e-3, margin=0.3)[0] == 1e-3
    assert preset_for("yinyang", lr=1e-3, margin=0.3)[1]["margin"] == 0.3
    assert preset_for("mnist5k") == (None, {}) and preset_for("", lr=1e-3, margin=0.2) == (1e-3, {"margin": 0.2})


def test_yinyang_preset_keeps_the_hidden_layer_from_drifting(toy):
    """The drift fix (train/erbp.py, "Yin-Yang"): with the preset (data init, hidden_eta,
    center_feedback) the hidden rows keep their norms and no hidden neuron falls silent; with the
    same eta, steps and margin but the plain rule they grow and some fall silent."""
    from snncompile.train.erbp_job import preset_for

    (x, y), _ = toy
    eta, fix = preset_for("yinyang")
    plain = {k: fix[k] for k in ("steps", "margin")}
    stats, fb = {}, {}
    for name, hyper in (("fix", fix), ("plain", plain)):
        kw = dict(arch=(4, 30, 2), batch_size=10, lr=eta, seed=0, progress=False, **hyper)
        w0 = train_erbp(x, y, epochs=0, **kw).weights[0]
        res = train_erbp(x, y, epochs=5, **kw)
        growth = np.linalg.norm(res.weights[0], axis=1) / np.linalg.norm(w0, axis=1)
        _, layers = simulate_lif_chain(res.weights, encode(x, res.hyper.steps), res.hyper, layer_counts=True)
        stats[name] = (float(np.median(growth)), float(growth.max()), float((layers[0].max(0) == 0).mean()))
        fb[name] = np.abs(res.feedback[0].mean(axis=1)).max()  # G's row means: the common-mode feedback
    assert stats["fix"][1] < 1.05 and stats["fix"][2] == 0.0, stats
    assert stats["plain"][0] > 1.2 and stats["plain"][2] > 0.1, stats
    assert fb["fix"] < 1e-6 < fb["plain"]


# ------------------------------------------------------------------ the deployed chain


def test_simulate_delays_and_leak():
    # w = 0.6 arrives on steps 2..11: v = 0.6, 1.17 (spike) , 0.6, 1.17 (spike) ...: 5 spikes
    hp = ErbpHyper()
    assert simulate_lif_chain([np.array([[0.6]])], np.ones((1, 10, 1), np.uint8), hp).tolist() == [[5]]
    # strict threshold: exactly v_th does not spike
    assert simulate_lif_chain([np.array([[1.0]])], np.ones((1, 1, 1), np.uint8), hp).tolist() == [[0]]
    # two layers: the spike emitted at step 1 reaches the output at step 3 = T_in + L, the last step
    two = [np.array([[2.0]]), np.array([[2.0]])]
    counts, layers = simulate_lif_chain(two, np.ones((1, 1, 1), np.uint8), hp, layer_counts=True)
    assert counts.tolist() == [[1]] and layers[0].tolist() == [[1]]


def test_decisions_ties_go_to_lowest_index():
    assert decisions(np.array([[0, 0, 0], [1, 3, 3], [2, 1, 2]])).tolist() == [0, 1, 0]


# ------------------------------------------------------------------ encoding


def test_encode_regular_counts_and_spacing():
    rng = np.random.default_rng(0)
    x = rng.random((50, 3, 4))
    for steps in (1, 7, 20, 33):
        spikes = encode(x, steps)
        assert spikes.shape == (50, steps, 3, 4) and spikes.dtype == np.uint8
        np.testing.assert_array_equal(spikes.sum(axis=1), np.floor(x * steps + 0.5))
        np.testing.assert_array_equal(spikes.sum(axis=1), spike_counts(x, steps))
    # the accumulator: a = 0.5, a += x, spike and a -= 1 when a >= 1
    assert encode(np.array([[0.5]]), 4)[0, :, 0].tolist() == [1, 0, 1, 0]
    assert encode(np.array([[0.25]]), 8)[0, :, 0].tolist() == [0, 1, 0, 0, 0, 1, 0, 0]
    assert encode(np.array([[0.0, 1.0]]), 5)[0].T.tolist() == [[0] * 5, [1] * 5]
    assert encode(np.array([[0.3]]), 10)[0].sum() == 3  # round(x T)


def test_encode_rate_is_seeded_bernoulli():
    x = np.full((20, 50), 0.3)
    a, b, c = encode(x, 40, "rate", seed=1), encode(x, 40, "rate", seed=1), encode(x, 40, "rate", seed=2)
    assert np.array_equal(a, b) and not np.array_equal(a, c)
    assert abs(a.mean() - 0.3) < 0.01
    assert encode(np.zeros((2, 3)), 9, "rate").sum() == 0 and encode(np.ones((2, 3)), 9, "rate").all()
    with pytest.raises(InvalidModel, match="unknown spike encoding"):
        encode(x, 4, "phase")


# ------------------------------------------------------------------ learning


def test_learns_a_linearly_separable_problem(toy):
    (x, y), (xv, yv) = toy
    res = train_erbp(x, y, arch=(4, 2), epochs=8, batch_size=10, lr=None, seed=0, progress=False)
    acc, _ = evaluate_erbp(res, xv, yv)
    assert res.accuracy["train"] > 0.95 and acc > 0.95
    assert res.train_time_s < 10


def test_same_seed_is_bit_identical_and_other_seed_differs(toy, trained):
    (x, y), (xv, yv) = toy
    again = train_erbp(x, y, arch=(4, 12, 2), epochs=3, batch_size=10, lr=None, seed=3, x_val=xv, y_val=yv,
                       progress=False)
    assert all(np.array_equal(a, b) for a, b in zip(trained.weights, again.weights))
    assert all(np.array_equal(a, b) for a, b in zip(trained.feedback, again.feedback))
    other = train_erbp(x, y, arch=(4, 12, 2), epochs=3, batch_size=10, lr=None, seed=4, progress=False)
    assert not np.array_equal(trained.weights[0], other.weights[0])
    state = torch.get_rng_state()
    train_erbp(x[:20], y[:20], arch=(4, 2), epochs=1, batch_size=10, lr=None, seed=0, progress=False)
    assert torch.equal(state, torch.get_rng_state())  # torch's global RNG untouched


@pytest.mark.parametrize("rounding", ["deterministic", "stochastic"])
def test_quantized_weights_stay_on_the_grid(toy, trained_q, rounding):
    (x, y), _ = toy
    res = trained_q if rounding == "stochastic" else train_erbp(
        x, y, arch=(4, 12, 2), epochs=2, batch_size=10, lr=None, seed=3, profile="loihi2", progress=False)
    q = res.quant
    step, lo, hi = weight_grid(8, 8, "mixed")
    assert (q["bits"], q["step"], q["lo"], q["hi"], q["rounding"]) == (8, step, lo, hi, rounding)
    for w, m, s in zip(res.weights, q["mantissas"], q["scales"]):
        assert m.dtype == np.int64 and np.all(m % step == 0) and m.min() >= lo and m.max() <= hi
        np.testing.assert_array_equal(w, m.astype(np.float64) * s)
    assert any(len(np.unique(m)) > 10 for m in q["mantissas"])  # it learned on the grid
    assert res.accuracy["train"] > 0.7  # chance is 0.5; 2 epochs only


def test_bad_arguments():
    x, y = _separable(20, 0)
    with pytest.raises(InvalidModel, match="MLP"):
        train_erbp(x, y, arch="1x2x2-c2k1-2", epochs=1, batch_size=4, lr=None, seed=0, progress=False)
    with pytest.raises(InvalidModel, match="takes 5 inputs"):
        train_erbp(x, y, arch=(5, 2), epochs=1, batch_size=4, lr=None, seed=0, progress=False)
    with pytest.raises(InvalidModel, match="unknown eRBP hyper"):
        train_erbp(x, y, arch=(4, 2), epochs=1, batch_size=4, lr=None, seed=0, progress=False, bogus=1)
    with pytest.raises(InvalidModel, match="b_low < b_high"):
        train_erbp(x, y, arch=(4, 2), epochs=1, batch_size=4, lr=None, seed=0, progress=False, b_low=2.0)
    with pytest.raises(InvalidModel, match="rounding"):
        train_erbp(x, y, arch=(4, 2), epochs=1, batch_size=4, lr=None, seed=0, progress=False, profile="loihi2",
                   rounding="up")


# ------------------------------------------------------------------ NIR export


def test_nir_round_trip_and_simulation_reproduces_training_counts(toy, trained, tmp_path):
    trained.accuracy["test"] = 0.5
    graph = erbp_to_nir(trained, (4,), "toy")
    assert list(graph.nodes) == ["input", "fc1", "lif1", "fc2", "lif2", "output"]
    path = write_nir(graph, tmp_path / "toy.nir")
    back = nir.read(path)
    assert sorted(back.edges) == sorted(graph.edges)
    for name in ("fc1", "fc2"):
        assert isinstance(back.nodes[name], nir.Affine)
        np.testing.assert_array_equal(back.nodes[name].weight, graph.nodes[name].weight)
        assert back.nodes[name].weight.dtype == np.float64
        assert not back.nodes[name].bias.any()
    lif = back.nodes["lif1"]
    assert isinstance(lif, nir.LIF) and lif.tau.shape == (12,) and lif.tau.dtype == np.float64
    assert np.all(lif.r == lif.tau) and not lif.v_leak.any() and not lif.v_reset.any()
    assert np.all(lif.v_threshold == 1.0)
    meta = get_meta(back)
    assert meta == get_meta(graph)
    assert meta["format"] == "snncompile-lif" and meta["version"] == 1 and meta["dt"] == 1.0
    assert meta["encoding"] == {"type": "regular", "steps": trained.hyper.steps, "seed": 3}
    assert meta["readout"]["type"] == "count" and meta["trained_by"] == "erbp" and meta["dataset"] == "toy"
    assert meta["accuracy"]["test"] == 0.5 and meta["accuracy"]["train"] == trained.accuracy["train"]
    assert meta["erbp"]["eta"] == trained.hyper.eta and "variant" in meta["erbp"]
    # the deployed forward pass on the weights read back gives the counts behind the train accuracy
    (x, y), _ = toy
    weights = [back.nodes[f"fc{i}"].weight for i in (1, 2)]
    counts = simulate_lif_chain(weights, encode(x, meta["encoding"]["steps"]), meta["erbp"])
    np.testing.assert_array_equal(counts, trained.train_counts)
    assert float((decisions(counts) == y).mean()) == meta["accuracy"]["train"]


def test_nir_export_rejects_wrong_input_shape(trained):
    with pytest.raises(InvalidModel, match="features"):
        erbp_to_nir(trained, (5,), "toy")


def test_quantized_export_keeps_grid(trained_q):
    meta = get_meta(erbp_to_nir(trained_q, (2, 2), "toy"))
    assert meta["erbp"]["quantized"]["profile"] == "loihi2" and meta["data_shape"] == [2, 2]
    assert "mantissas" not in meta["erbp"]["quantized"]


# ------------------------------------------------------------------ CLI


def test_cli_train_erbp_writes_nir_and_log(tmp_path):
    out = tmp_path / "d.nir"
    res = CliRunner().invoke(main, ["train", "--dataset", "digits", "--arch", "64-32-10", "--method", "erbp",
                                    "--epochs", "1", "--batch-size", "32", "-o", str(out)])
    assert res.exit_code == 0, res.output + repr(res.exception)
    assert "eRBP" in res.output and "ANN baseline" in res.output
    graph = nir.read(out)
    meta = get_meta(graph)
    assert meta["dataset"] == "digits" and set(meta["accuracy"]) >= {"train", "test"}
    log = json.loads((tmp_path / "d.train.json").read_text())
    assert log["erbp"]["accuracy"]["test"] == meta["accuracy"]["test"]
    assert 0 <= log["ann_baseline"]["accuracy"]["test"] <= 1 and len(log["erbp"]["history"]["epoch"]) == 1


def test_cli_margin_reaches_the_rule_and_only_erbp(tmp_path):
    out = tmp_path / "m.nir"
    res = CliRunner().invoke(main, ["train", "--dataset", "digits", "--arch", "64-16-10", "--method", "erbp",
                                    "--epochs", "1", "--margin", "0.2", "-o", str(out)])
    assert res.exit_code == 0, res.output + repr(res.exception)
    assert json.loads((tmp_path / "m.train.json").read_text())["erbp"]["hyper"]["margin"] == 0.2
    bad = CliRunner().invoke(main, ["train", "--dataset", "digits", "--arch", "64-16-10", "--margin", "0.2",
                                    "-o", str(tmp_path / "a.onnx")])
    assert bad.exit_code != 0 and "--margin and --no-preset apply to --method erbp" in bad.output
    bad = CliRunner().invoke(main, ["train", "--dataset", "digits", "--arch", "64-16-10", "--no-preset",
                                    "-o", str(tmp_path / "a.onnx")])
    assert bad.exit_code != 0 and "--no-preset apply to --method erbp" in bad.output


@pytest.mark.parametrize("arch, output, needle", [
    ("64-32-10", "m.onnx", ".nir"),
    ("1x8x8-c4k3-10", "m.nir", "fully connected"),
])
def test_cli_train_erbp_bad_input(tmp_path, arch, output, needle):
    res = CliRunner().invoke(main, ["train", "--dataset", "digits", "--arch", arch, "--method", "erbp",
                                    "--epochs", "1", "-o", str(tmp_path / output)])
    assert res.exit_code != 0 and "Traceback" not in res.output
    assert needle in res.output


def test_latency_code_fires_once_earlier_for_larger_values():
    from snncompile.encode import encode

    s = encode(np.array([[1.0, 0.5, 0.0, 0.25]]), 5, "latency")[0]
    assert s.sum(axis=0).tolist() == [1, 1, 0, 1]
    assert [int(np.argmax(s[:, j])) + 1 for j in (0, 1, 3)] == [1, 3, 4]
