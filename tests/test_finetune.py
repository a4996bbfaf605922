"""QAT and hardware-in-the-loop fine-tuning."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from click.testing import CliRunner
from conftest import digits_ttfs

from snncompile.neurons.ttfs import TtfsParams, fire_closed
from snncompile.profile import load_profile
from snncompile.quantize.fake import fake_quant_counts
from snncompile.targets.fxsim import FxsimTarget
from snncompile.train.finetune import TtfsModule, evaluate_on_target, finetune, hw_forward
from snncompile.ttfs.graph import parse_ttfs
from snncompile.ttfs.reference import simulate


@pytest.fixture(scope="module")
def digits_graph():
    return digits_ttfs(epochs=8)


def test_float_module_is_the_reference(digits_graph):
    g, x, _, xt, _ = digits_graph
    logits, acts, _ = TtfsModule(g)(torch.as_tensor(xt, dtype=torch.float64))
    ref = simulate(parse_ttfs(g), xt)
    assert np.abs(logits.detach().numpy() - ref.logits).max() < 1e-9


def test_count_fake_quant_rounds_like_the_integer_neuron():
    K, r = 8, 10
    theta = K * r + r // 2
    z = np.arange(-15, 100)
    _, counts, _ = fire_closed(TtfsParams("hidden", K, 0, r, theta, 0, 0, 1, K), z[None, :], (1 << 23) - 1)
    fq = fake_quant_counts(torch.as_tensor(z, dtype=torch.float64), float(r), K).numpy() / r
    assert np.array_equal(fq, counts[0])


def test_hil_forward_uses_the_target_outputs(digits_graph):
    g, x, y, _, _ = digits_graph
    prof = load_profile("loihi2")
    module = TtfsModule(g)
    xb = x[:16]

    class Silent(FxsimTarget):  # a "chip" whose hidden layer never fires: the forward must show it
        def run(self, request):
            run = super().run(request)
            for la in run.layers:
                la.times = np.full_like(la.times, -1)
            run.raw_logits = run.raw_logits * 0 + np.arange(run.raw_logits.shape[1])
            return run

    hw = hw_forward(module, Silent(), prof, 8, x[:200], xb)
    logits, acts, _ = module(torch.as_tensor(xb, dtype=torch.float64), mode="hil", steps=8, profile=prof, hw=hw)
    assert np.array_equal(logits.detach().numpy(), hw["logits"])  # the target's readout, not the float one
    assert float(acts[0].detach().abs().sum()) == 0.0                        # the target's (silent) hidden layer
    float_logits, _, _ = module(torch.as_tensor(xb, dtype=torch.float64))
    assert not np.allclose(float_logits.detach().numpy(), logits.detach().numpy())
    loss = torch.nn.functional.cross_entropy(logits, torch.as_tensor(y[:16]))
    loss.backward()  # gradients still flow through the float model
    assert any(p.grad is not None and float(p.grad.abs().sum()) > 0 for p in module.parameters())


def test_qat_recovers_a_degraded_net(digits_graph):
    g, x, y, xt, yt = digits_graph
    prof = load_profile("loihi2").with_weight_bits(2)
    before, _ = evaluate_on_target(g, prof, 8, x[:500], xt, yt)
    res = finetune(g, x, y, profile=prof, steps=8, x_monitor=xt, y_monitor=yt, mode="qat", epochs=6, lr=3e-3,
                   scale_policy="mse", progress=False)
    after, _ = evaluate_on_target(res.graph, prof, 8, x[:500], xt, yt)
    assert after > before + 0.1, (before, after)
    assert res.log["accuracy"][-1] == pytest.approx(after, abs=1e-12) and len(res.log["accuracy"]) == 7
    # HIL continues from the QAT graph with the scales QAT stored (not max-abs ones that would collapse 2 bits)
    hil = finetune(res.graph, x[:400], y[:400], profile=prof, steps=8, x_monitor=xt, y_monitor=yt, mode="hil",
                   epochs=1, lr=1e-3, progress=False)
    from snncompile.ir import get_meta

    scales = [get_meta(n).get("weight_scale") for n in res.graph.nodes.values() if get_meta(n).get("weight_scale")]
    assert scales and scales == [get_meta(n).get("weight_scale") for n in hil.graph.nodes.values()
                                 if get_meta(n).get("weight_scale")]
    assert hil.log["accuracy"][-1] >= after - 0.1


def test_hil_fine_tuning_runs_and_keeps_accuracy(digits_graph):
    g, x, y, xt, yt = digits_graph
    prof = load_profile("loihi2").with_weight_bits(4)
    res = finetune(g, x[:600], y[:600], profile=prof, steps=8, x_monitor=xt, y_monitor=yt, mode="hil", epochs=1,
                   lr=1e-4, progress=False)
    assert res.log["accuracy"][-1] >= res.log["accuracy"][0] - 0.05


def test_spike_penalty_reduces_spikes(digits_graph):
    g, x, y, xt, yt = digits_graph
    prof = load_profile("loihi2")
    res = finetune(g, x, y, profile=prof, steps=8, x_monitor=xt, y_monitor=yt, mode="qat", epochs=3, lr=1e-3,
                   spike_penalty=2.0, progress=False)
    assert res.log["spikes_per_hidden_neuron"][-1] < res.log["spikes_per_hidden_neuron"][0]


def test_finetune_cli_writes_graph_and_log(digits_graph, tmp_path):
    from snncompile.cli import main
    from snncompile.ir import write_nir

    g = digits_graph[0]
    write_nir(g, tmp_path / "model.nir")
    out = tmp_path / "tuned.nir"
    res = CliRunner().invoke(main, ["finetune", str(tmp_path / "model.nir"), "--dataset", "digits", "--bits", "4",
                                    "--steps", "8", "--epochs", "1", "-o", str(out), "--quiet"])
    assert res.exit_code == 0, res.output
    assert out.is_file() and (tmp_path / "tuned.log.json").is_file() and (tmp_path / "tuned.log.png").is_file()
    res = CliRunner().invoke(main, ["compile", str(out), "--dataset", "digits", "--bits", "4", "--steps", "8",
                                    "--target", "reference", "--target", "fxsim", "--out", str(tmp_path / "b"),
                                    "--quiet"])
    assert res.exit_code == 0, res.output


def test_cli_spike_budget_searches_the_penalty_and_says_whether_it_is_met(tmp_path):
    from click.testing import CliRunner

    from snncompile.cli import main

    r = CliRunner()
    assert r.invoke(main, ["train", "--dataset", "digits", "--arch", "64-24-10", "--epochs", "3", "--seed", "0",
                           "-o", str(tmp_path / "a.onnx")]).exit_code == 0
    assert r.invoke(main, ["convert", str(tmp_path / "a.onnx"), "--dataset", "digits", "-o",
                           str(tmp_path / "m.nir")]).exit_code == 0
    res = r.invoke(main, ["finetune", str(tmp_path / "m.nir"), "--dataset", "digits", "--spike-budget", "0.3",
                          "--epochs", "1", "--steps", "8", "--quiet", "-o", str(tmp_path / "t.nir")])
    assert res.exit_code == 0, res.output
    assert "spike budget 0.3" in res.output and ("(met)" in res.output or "NOT met" in res.output)
    assert (tmp_path / "t.nir").is_file() and (tmp_path / "t.log.json").is_file()
