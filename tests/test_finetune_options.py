"""Fine-tuning options: the defaults chosen from bits and K, learned step sizes, spike-time noise,
the adaptive and quantile windows (issue 15)."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from click.testing import CliRunner
from conftest import digits_ttfs

from snncompile.data import as_model_input, load_dataset
from snncompile.errors import InvalidModel
from snncompile.ir import get_meta
from snncompile.profile import load_profile
from snncompile.quantize.fake import fake_quant_counts, fake_quant_weights
from snncompile.quantize.scale_rule import auto_scale_policy
from snncompile.quantize.ttfs import quantize_ttfs
from snncompile.train.finetune import TtfsModule, finetune, latency_steps
from snncompile.train.finetune_auto import resolve_options
from snncompile.train.finetune_module import lsq_counts, lsq_weights
from snncompile.ttfs.convert import convert


@pytest.fixture(scope="module")
def digits():
    return digits_ttfs(epochs=6)


def test_the_rule_picks_low_precision_options_and_a_given_value_wins():
    low, chosen = resolve_options(2, 4, "qat")
    assert low == {"scale_policy": "mse", "lr": 1e-3, "epochs": 20, "schedule": "cosine", "learn_scales": True,
                   "learn_windows": True}
    assert set(chosen) == set(low)
    high, _ = resolve_options(8, 16, "qat")
    assert (high["scale_policy"], high["lr"], high["epochs"], high["learn_scales"]) == ("max", 1e-4, 5, False)
    assert resolve_options(8, 16, "qat", spike_penalty=1.0)[0]["lr"] == 1e-3  # a penalty needs larger steps
    hil, _ = resolve_options(2, 4, "hil")
    assert hil["lr"] == pytest.approx(1e-4) and not hil["learn_scales"]
    mine, chosen = resolve_options(2, 4, "qat", lr=5e-4, scale_policy="max", learn_windows=False)
    assert (mine["lr"], mine["scale_policy"], mine["learn_windows"]) == (5e-4, "max", False)
    assert "lr" not in chosen and "epochs" in chosen
    with pytest.raises(InvalidModel, match="--schedule"):
        resolve_options(8, 16, "qat", schedule="step")
    with pytest.raises(InvalidModel, match="HIL keeps"):
        resolve_options(8, 16, "hil", learn_scales=True)


def test_the_soft_spike_count_reaches_neurons_well_above_threshold():
    from snncompile.train.finetune_loop import soft_spike_count

    p = torch.tensor([[-1.0, 0.0, 2.0, 3.0, 5.0]], dtype=torch.float64, requires_grad=True)  # steps, K = 16
    soft_spike_count([p], 16).backward()
    assert p.grad.numpy()[0].tolist() == pytest.approx([0.0, 0.05, 0.05, 0.05, 0.0])  # ramp of 4 steps, mean of 5
    assert float(soft_spike_count([p.detach()], 4)) == pytest.approx((0 + 0.5 + 1 + 1 + 1) / 5)  # 1 step at K = 4


def test_weight_scale_rule():
    assert [auto_scale_policy(None, b) for b in (2, 3, 4, 5, 8)] == ["mse"] * 3 + ["max"] * 2
    assert auto_scale_policy("auto", 2) == "mse" and auto_scale_policy("max", 2) == "max"
    with pytest.raises(InvalidModel, match="--weight-scale"):
        auto_scale_policy("absmax", 8)


def test_learned_step_size_quantizers_round_like_the_fixed_ones():
    torch.manual_seed(0)
    w = torch.randn(20, 30, dtype=torch.float64, requires_grad=True)
    s = torch.tensor(0.004, dtype=torch.float64, requires_grad=True)
    q = lsq_weights(w, s, 2, 8, "mixed")
    assert torch.equal(q.detach(), fake_quant_weights(w, 0.004, 2, 8, "mixed").detach())
    q.pow(2).sum().backward()
    assert float(s.grad) != 0.0  # the scale learns
    z = torch.linspace(-3, 20, 200, dtype=torch.float64)
    B = torch.tensor(12.0, dtype=torch.float64, requires_grad=True)
    a = lsq_counts(z, B, 8)
    assert torch.equal(a.detach(), fake_quant_counts(z, 12.0 / 8, 8))
    a.sum().backward()
    assert float(B.grad) > 0  # values clipped at B pull the window up


def test_finetune_leaves_its_input_graph_alone(digits):
    g, x, y, xt, yt = digits
    before = {k: np.array(n.weight, copy=True) for k, n in g.nodes.items() if hasattr(n, "weight")}
    finetune(g, x[:300], y[:300], profile=load_profile("loihi2"), steps=8, x_monitor=xt[:100], y_monitor=yt[:100],
             epochs=1, lr=1e-2, progress=False)
    assert all(np.array_equal(g.nodes[k].weight, w) for k, w in before.items())


def test_learned_scales_and_windows_reach_the_quantizer(digits):
    g, x, y, xt, yt = digits
    prof = load_profile("loihi2").with_weight_bits(2)
    res = finetune(g, x, y, profile=prof, steps=4, x_monitor=xt, y_monitor=yt, epochs=2, progress=False)
    log = res.log
    assert log["learn_scales"] and log["learn_windows"] and log["scale_policy"] == "mse" and "lr" in log["auto"]
    start = TtfsModule(g)
    start.fix_scales(prof, "mse")
    assert log["weight_scales"] != start.scales  # the scales moved ...
    _, table = quantize_ttfs(res.graph, prof, 4, x[:200])
    stored = {r["layer"]: r["weight_scale"] for r in table if r["role"] != "maxpool"}
    assert sorted(stored.values()) == pytest.approx(sorted(log["weight_scales"].values()))  # ... and are used
    hidden = [la for la in get_meta(res.graph)["layers"] if la["role"] == "hidden"]
    assert [la["B"] for la in hidden] == pytest.approx(log["windows"])
    assert log["windows"] != [la["B"] for la in get_meta(g)["layers"] if la["role"] == "hidden"]


def test_time_noise_only_in_training(digits):
    g, x, _, _, _ = digits
    m = TtfsModule(g)
    prof = load_profile("loihi2")
    m.fix_scales(prof)
    m.time_noise = 1.0
    xb = torch.as_tensor(x[:50])
    m.eval()
    a, _, _ = m(xb, mode="qat", steps=8, profile=prof)
    b, _, _ = m(xb, mode="qat", steps=8, profile=prof)
    assert torch.equal(a, b)
    m.train()
    c, _, _ = m(xb, mode="qat", steps=8, profile=prof)
    assert not torch.equal(a, c)


def test_adaptive_windows_only_grow_and_cover_the_largest_activation(digits):
    g, x, y, xt, yt = digits
    B0 = [la["B"] for la in get_meta(g)["layers"] if la["role"] == "hidden"]
    res = finetune(g, x[:400], y[:400], profile=load_profile("loihi2"), steps=8, x_monitor=xt[:100],
                   y_monitor=yt[:100], epochs=1, adapt_window=10.0, progress=False)
    assert all(b >= b0 for b, b0 in zip(res.log["windows"], B0)) and res.log["windows"] != B0
    m = TtfsModule(res.graph)
    _, _, pre = m(torch.as_tensor(x[:400], dtype=torch.float64))
    assert float(pre[0].detach().max()) <= 1.0  # float pre-activations in units of B: nothing above the window


def test_quantile_windows_shrink_and_latency_counts_steps(digits):
    g, x, y, xt, yt = digits
    res = finetune(g, x[:300], y[:300], profile=load_profile("loihi2"), steps=8, x_monitor=xt[:100],
                   y_monitor=yt[:100], epochs=0, window_quantile=0.9, progress=False)
    m = TtfsModule(g)
    _, _, pre = m(torch.as_tensor(x[:300], dtype=torch.float64))  # the calibration samples: all 300
    z = (pre[0] * m.layers[0]["B"]).detach().numpy().ravel()
    assert res.log["windows"][0] == pytest.approx(np.quantile(z[z > 0], 0.9))
    assert res.log["windows"][0] < m.layers[0]["B"]
    assert latency_steps(g, 8) == res.log["latency_steps"] == 16  # input window + one hidden window
    with pytest.raises(InvalidModel, match="--window-quantile"):
        finetune(g, x[:10], y[:10], profile=load_profile("loihi2"), steps=8, window_quantile=1.5, progress=False)


@pytest.mark.slow
def test_cli_options_reach_the_log_and_compile_records_its_weight_scale(digits_onnx, tmp_path):
    from snncompile.cli import main
    from snncompile.ir import write_nir

    r = CliRunner()
    res = r.invoke(main, ["compile", str(digits_onnx), "--dataset", "digits", "--bits", "2", "--steps", "4",
                          "--target", "fxsim", "--samples", "50", "--out", str(tmp_path / "c"), "--quiet"])
    assert res.exit_code == 0, res.output
    assert json.loads((tmp_path / "c" / "report.json").read_text())["profile"]["weight_scale"] == "mse"
    write_nir(convert_digits(digits_onnx), tmp_path / "m.nir")
    res = r.invoke(main, ["finetune", str(tmp_path / "m.nir"), "--dataset", "digits", "--bits", "4", "--steps", "8",
                          "--epochs", "1", "--time-noise", "0.5", "--window-quantile", "0.99", "--adapt-window", "2",
                          "--schedule", "constant", "--no-learn-scales", "--quiet", "-o", str(tmp_path / "t.nir")])
    assert res.exit_code == 0, res.output
    log = json.loads((tmp_path / "t.log.json").read_text())
    assert (log["time_noise"], log["window_quantile"], log["adapt_window"], log["schedule"]) == (0.5, 0.99, 2.0,
                                                                                               "constant")
    assert log["learn_scales"] is False and "lr" in log["auto"] and "schedule" not in log["auto"]
    res = r.invoke(main, ["finetune", str(tmp_path / "m.nir"), "--dataset", "digits", "--window-quantile", "0",
                          "-o", str(tmp_path / "u.nir")])
    assert res.exit_code != 0 and "--window-quantile" in res.output


def convert_digits(onnx_path):
    from snncompile.frontends import load_model

    data = load_dataset("digits")
    ann = load_model(str(onnx_path))
    return convert(ann, as_model_input(data.x_train, ann.input_shape, data.name))
