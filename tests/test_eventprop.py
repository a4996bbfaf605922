"""EventProp (snncompile/train/eventprop.py, eventprop_deploy.py): exact spike times, gradients
against finite differences, the continuous model against a fine time grid, training, the deployed
graph against the continuous model at the grid points, and deployment through ``compile``."""

from __future__ import annotations

import dataclasses
import json
import math

import nir
import numpy as np
import pytest
import torch
from click.testing import CliRunner

from snncompile.cli import main
from snncompile.errors import InvalidModel
from snncompile.ir import get_meta
from snncompile.train.eventprop import (
    EventPropHyper,
    SpikeTimes,
    first_spike_loss,
    input_times,
    network_times,
    spike_times_forward,
    train_eventprop,
)
from snncompile.train.eventprop_deploy import evaluate_eventprop, eventprop_to_nir


def v_of(t, t_in, w):
    s = t - t_in
    return float(np.sum(np.where(s > 0, w * (np.exp(-np.maximum(s, 0) / 2) - np.exp(-np.maximum(s, 0))), 0.0)))


def test_single_input_spike_time_is_the_threshold_crossing():
    t_in = torch.tensor([[0.5]], dtype=torch.float64)
    t = float(spike_times_forward(t_in, torch.tensor([[5.0]], dtype=torch.float64), 1.0)[0, 0])
    # 5 (x - x^2) = 1 with x = exp(-(t - 0.5) / 2), the larger root (upward crossing)
    x = (1 + math.sqrt(1 - 4 / 5)) / 2
    assert t == pytest.approx(0.5 - 2 * math.log(x), abs=1e-12)
    assert v_of(t, np.array([0.5]), np.array([5.0])) == pytest.approx(1.0, abs=1e-12)


def test_below_threshold_never_fires_and_silent_inputs_are_ignored():
    # the peak of w (x - x^2) is w / 4: w = 3.9 stays below theta = 1
    t = spike_times_forward(torch.tensor([[0.0, math.inf]], dtype=torch.float64),
                            torch.tensor([[3.9, 100.0]], dtype=torch.float64), 1.0)
    assert math.isinf(float(t[0, 0]))


@pytest.mark.parametrize("with_bias", [False, True])
def test_continuous_times_match_a_fine_time_grid(with_bias):
    """The exact spike times against the first crossing of V on a 1e-4 grid (mixed signs; with
    membrane biases switched on at t0 = -0.05, some neurons fire on the bias alone)."""
    rng = np.random.default_rng(3)
    t_in = rng.uniform(0, 2, (12, 6))
    t_in[:, 5] = np.inf
    w = rng.normal(2.0, 3.0, (4, 6))
    b = rng.normal(0.5, 1.0, 4) if with_bias else np.zeros(4)
    t0 = -0.05
    got = spike_times_forward(torch.as_tensor(t_in), torch.as_tensor(w), 1.0, torch.as_tensor(b), t0).numpy()
    grid = np.arange(t0, 12, 1e-4)
    fired = 0
    for n in range(12):
        for k in range(4):
            s = grid[:, None] - t_in[n][None, :]
            ok = np.isfinite(s) & (s > 0)
            ss = np.where(ok, s, 0.0)
            v = np.sum(np.where(ok, w[k] * (np.exp(-ss / 2) - np.exp(-ss)), 0.0), axis=1)
            v = v + b[k] * (1 - np.exp(-(grid - t0) / 2))
            above = np.nonzero(v > 1.0)[0]
            if len(above) == 0:
                assert math.isinf(got[n, k])
            else:
                fired += 1
                assert got[n, k] == pytest.approx(grid[above[0]], abs=2e-4)
    assert fired > 6


@pytest.fixture(scope="module")
def small_problem():
    rng = np.random.default_rng(0)
    x = rng.uniform(0, 1, (8, 4))
    y = torch.tensor([0, 1, 2, 0, 1, 2, 0, 1])
    g = torch.Generator().manual_seed(0)
    # (out, in + 2): the inputs, the bias spike, the membrane bias
    ws = [torch.randn(7, 6, dtype=torch.float64, generator=g) + 1.5,
          torch.randn(3, 9, dtype=torch.float64, generator=g) + 1.5]
    return x, y, ws


def test_eventprop_gradients_match_finite_differences(small_problem):
    x, y, ws0 = small_problem
    hp = EventPropHyper(vdot_min=1e-12)
    ws = [w.clone().requires_grad_() for w in ws0]
    tin = input_times(x, hp)
    times = network_times(ws, tin, hp)
    assert all(torch.isfinite(t).float().mean() > 0.5 for t in times)
    first_spike_loss(times[-1], y, hp).backward()
    eps = 1e-6
    for w in ws:
        num = torch.zeros_like(w)
        with torch.no_grad():
            for idx in np.ndindex(*w.shape):
                w[idx] += eps
                lp = first_spike_loss(network_times(ws, tin, hp)[-1], y, hp)
                w[idx] -= 2 * eps
                lm = first_spike_loss(network_times(ws, tin, hp)[-1], y, hp)
                w[idx] += eps
                num[idx] = (lp - lm) / (2 * eps)
        assert num.abs().max() > 1e-4 and num[:, -2:].abs().max(0).values.min() > 1e-6  # both bias columns too
        np.testing.assert_allclose(w.grad.numpy(), num.numpy(), atol=1e-7, rtol=1e-5)


def test_input_time_gradients_match_finite_differences(small_problem):
    _, _, ws = small_problem
    rng = np.random.default_rng(1)
    t_in = torch.as_tensor(rng.uniform(0, 2, (5, 5))).requires_grad_()
    b = torch.full((7,), 0.3, dtype=torch.float64)
    w = ws[0][:, :5]
    out = SpikeTimes.apply(t_in, w, b, 1.0, 1e-12, -0.05)
    mask = torch.isfinite(out)
    (torch.where(mask, out, torch.zeros_like(out)) * torch.arange(7.0, dtype=torch.float64)).sum().backward()
    eps = 1e-6
    with torch.no_grad():
        for idx in np.ndindex(*t_in.shape):
            tp, tm = t_in.clone(), t_in.clone()
            tp[idx] += eps
            tm[idx] -= eps
            fp = spike_times_forward(tp, w, 1.0, b, -0.05)
            fm = spike_times_forward(tm, w, 1.0, b, -0.05)
            d = ((torch.where(mask, fp, torch.zeros_like(fp)) - torch.where(mask, fm, torch.zeros_like(fm)))
                 * torch.arange(7.0, dtype=torch.float64)).sum() / (2 * eps)
            assert float(t_in.grad[idx]) == pytest.approx(float(d), abs=1e-6)


@pytest.fixture(scope="module")
def toy():
    rng = np.random.default_rng(0)
    x = rng.uniform(0, 1, (160, 4))
    y = (x[:, 0] > x[:, 2]).astype(np.int64)
    return x, y


TOY_HYPER = {"lr": 5e-3, "tau0": 0.5, "init_mean": 1.5, "init_std": 1.0}  # a 12-neuron net: start spiking


@pytest.fixture(scope="module")
def trained(toy):
    x, y = toy
    return train_eventprop(x, y, arch="4-12-2", epochs=8, batch_size=16, seed=0, progress=False, **TOY_HYPER)


def test_training_learns_and_is_deterministic(toy, trained):
    x, y = toy
    assert trained.history["loss"][-1] < trained.history["loss"][0]
    assert trained.accuracy["train"] > 0.75
    again = train_eventprop(x, y, arch="4-12-2", epochs=8, batch_size=16, seed=0, progress=False, **TOY_HYPER)
    assert all(np.array_equal(a, b) for a, b in zip(trained.weights, again.weights))


def test_nir_graph_and_deployed_evaluation(toy, trained):
    x, y = toy
    with pytest.raises(InvalidModel, match="x_calib"):
        eventprop_to_nir(trained, (4,), "toy")  # the inhibition needs calibration samples
    graph = eventprop_to_nir(trained, (4,), "toy", x_calib=x)
    meta = get_meta(graph)
    assert meta["trained_by"] == "eventprop" and meta["encoding"] == {"type": "latency", "steps": EventPropHyper().steps,
                                                                        "seed": 0}
    assert isinstance(graph.nodes["lif1"], nir.CubaLIF) and graph.nodes["fc1"].weight.shape == (12, 4)
    assert graph.nodes["input"].input_type["input"].tolist() == [4]  # the data only: no bias channel
    assert np.all(np.diag(graph.nodes["inh1"].weight) < 0)  # hidden: self-inhibition only
    assert np.count_nonzero(graph.nodes["inh1"].weight - np.diag(np.diag(graph.nodes["inh1"].weight))) == 0
    inh2 = graph.nodes["inh2"].weight  # output: lateral inhibition only
    assert np.all(np.diag(inh2) == 0) and np.all(inh2[~np.eye(2, dtype=bool)] < 0)
    np.testing.assert_array_equal(graph.nodes["bias1"].weight[:, 0], trained.weights[0][:, -2])
    np.testing.assert_array_equal(graph.nodes["lif1"].v_leak, trained.weights[0][:, -1])
    acc, spn, extra = evaluate_eventprop(trained, x, y, profile="loihi2")
    assert acc == trained.accuracy["train"] and 0 < spn <= 1
    assert set(extra) >= {"deployed_accuracy", "deployed_agreement", "reference_accuracy", "window_accuracy"}
    assert 0 <= extra["deployed_agreement"] <= 1
    assert extra["reference_hidden_max_spikes"] == 1 and extra["deployed_hidden_max_spikes"] == 1


def test_deployed_graph_is_the_continuous_model_at_the_grid_points():
    """One neuron, one input spike, no bias: the NIR reference's potential at step n equals
    w kappa((n - 1) dt - t_i) (exact decays, not 1 - dt/tau), and a neuron fed above threshold
    spikes at step ceil(t / dt) + 1 of its continuous crossing time t."""
    from snncompile.frontends.nir import read_spiking_graph, repair_graph
    from snncompile.lif.reference import simulate
    from snncompile.train.eventprop import EventPropResult

    hp = EventPropHyper()
    x = np.array([[0.7]])
    k = int(np.round(0.3 * (hp.steps - 1)))
    raster = np.zeros((1, hp.steps, 1), np.uint8)
    raster[0, k, 0] = 1
    t_i = float(input_times(x, hp)[0, 0])
    assert t_i == pytest.approx(k * hp.dt)
    runs = []
    for w in (3.9, 6.0):  # (out, in + bias): 3.9 peaks below theta, 6 crosses
        res = EventPropResult((1, 1), [np.array([[w, 0.0, 0.0]])], hp, 0, 0, 1, {}, {}, 0.0)
        net = read_spiking_graph(repair_graph(eventprop_to_nir(res, (1,), "", x_calib=x), hp.dt), hp.dt)
        runs.append(simulate(net, raster, t_total=80, record=True))
    n = np.arange(1, 81)
    s = (n - 1) * hp.dt - t_i
    want = np.where(s > 0, 3.9 * (np.exp(-np.maximum(s, 0) / 2) - np.exp(-np.maximum(s, 0))), 0.0)
    np.testing.assert_allclose(runs[0].traces["lif1"][0, :, 0], want, atol=1e-12)
    assert runs[0].counts["lif1"][0, 0] == 0
    t_cross = float(spike_times_forward(torch.tensor([[t_i]], dtype=torch.float64),
                                        torch.tensor([[6.0]], dtype=torch.float64), 1.0)[0, 0])
    assert runs[1].first_step["lif1"][0, 0] == math.ceil(t_cross / hp.dt) + 1
    assert runs[1].counts["clock"][0, 0] == 1 and runs[1].first_step["clock"][0, 0] == 1  # the bias spike source


def test_hidden_neurons_fire_once_on_the_deployed_graph():
    """A hidden neuron driven far above threshold fires again after Loihi's reset (v <- 0, the
    current stays) without its self-inhibition, and once with it."""
    from snncompile.frontends.nir import read_spiking_graph, repair_graph
    from snncompile.lif.reference import simulate
    from snncompile.train.eventprop import EventPropResult

    hp = EventPropHyper()
    x = np.array([[0.9]])
    ws = [np.array([[12.0, 0.0, 0.0]]), np.array([[0.5, 0.0, 0.0]])]
    res = EventPropResult((1, 1, 1), ws, hp, 0, 0, 1, {}, {}, 0.0)
    graph = eventprop_to_nir(res, (1,), "", x_calib=x)
    raster = np.zeros((1, hp.steps, 1), np.uint8)
    raster[0, 4, 0] = 1
    counts = []
    for keep in (True, False):
        if not keep:
            graph.nodes["inh1"].weight = np.zeros((1, 1))
        net = read_spiking_graph(repair_graph(graph, hp.dt), hp.dt)
        counts.append(int(simulate(net, raster).counts["lif1"][0, 0]))
    assert counts[0] == 1 and counts[1] > 1


def test_training_on_a_grid_keeps_the_weights_on_it(toy, trained):
    """quant_steps: the forward pass (and the result) use weights rounded to the grid (none for a
    step of 0), and learning still moves them (straight-through gradient)."""
    x, y = toy
    steps = [np.r_[np.full(4, 0.05), 0.02, 0.0], np.r_[np.full(12, 0.01), 0.004, 0.0]]
    res = train_eventprop(x, y, arch="4-12-2", epochs=1, batch_size=16, seed=0, progress=False,
                          init_weights=trained.weights, quant_steps=steps, **TOY_HYPER)
    for w, w0, q in zip(res.weights, trained.weights, steps):
        for j, qj in enumerate(q):
            if qj:
                np.testing.assert_allclose(w[:, j] / abs(qj), np.round(w[:, j] / abs(qj)), atol=1e-9)
        start = np.where(q > 0, np.round(w0 / np.where(q > 0, q, 1)) * q, w0)
        assert not np.allclose(w[:, q > 0], start[:, q > 0])  # it learned


def test_finetune_on_the_deployed_grid(toy, trained):
    from snncompile.train.eventprop_deploy import deployed_steps, finetune_on_grid

    x, y = toy
    trained.extra.pop("inhibition", None)
    steps = deployed_steps(trained, "loihi2", x)
    assert [q.shape for q in steps] == [(6,), (14,)] and all(q[-1] == 0 and np.all(q[:-1] > 0) for q in steps)
    tuned = finetune_on_grid(trained, x, y, "loihi2", epochs=1)
    assert tuned.accuracy["float_train"] == trained.accuracy["train"] and "train" in tuned.accuracy
    assert set(tuned.history) == {"float", "on_grid"} and tuned.profile == "loihi2"
    assert not all(np.array_equal(a, b) for a, b in zip(tuned.weights, trained.weights))
    assert len(tuned.extra["grid_steps"]) == 2 and tuned.extra["grid_epochs"] == 1
    # compile deploys exactly these weights into layer 1: its quantizer's rounding error there ~ 0
    from snncompile.encode import encode
    from snncompile.frontends.nir import read_spiking_graph, repair_graph
    from snncompile.profile import load_profile
    from snncompile.quantize.lif import quantize_lif

    hp = tuned.hyper
    net = read_spiking_graph(repair_graph(eventprop_to_nir(tuned, (4,), ""), hp.dt), hp.dt)
    _, table = quantize_lif(net, load_profile("loihi2"), encode(x[:200], hp.steps, "latency", 0), 1)
    errs = {c["name"]: c["max_rounding_error"] / c["weight_scale"] for row in table for c in row["connections"]}
    assert max(errs[k] for k in ("lif1_from_input", "lif1_from_clock")) < 0.05


def test_bad_arguments(toy):
    x, y = toy
    with pytest.raises(InvalidModel, match="first size"):
        train_eventprop(x, y, arch="5-3-2", epochs=1, progress=False)
    with pytest.raises(InvalidModel, match="unknown"):
        train_eventprop(x, y, arch="4-3-2", epochs=1, progress=False, bogus=1)
    with pytest.raises(InvalidModel, match="restarts"):
        train_eventprop(x, y, arch="4-3-2", epochs=1, progress=False, restarts=0)
    with pytest.raises(InvalidModel, match=r"\[0, 1\]"):
        train_eventprop(x * 2, y, arch="4-3-2", epochs=1, progress=False)


@pytest.mark.slow
def test_cli_train_eventprop_writes_nir(tmp_path):
    out = tmp_path / "e.nir"
    r = CliRunner().invoke(main, ["train", "--dataset", "yinyang", "--arch", "4-8-3", "--method", "eventprop",
                                  "--epochs", "1", "-o", str(out)])
    assert r.exit_code == 0, r.output + repr(r.exception)
    assert "EventProp" in r.output
    log = json.loads((tmp_path / "e.train.json").read_text())
    assert 0 <= log["eventprop"]["accuracy"]["test"] <= 1
    starts = log["eventprop"]["restarts"]  # every start's validation accuracy, and the kept one's seed
    assert len(starts["restart_val"]) > 1 and isinstance(starts["train_seed"], int)
    assert get_meta(nir.read(out))["trained_by"] == "eventprop"


@pytest.mark.slow
def test_compile_runs_the_trained_graph_and_matches_the_evaluation(tmp_path):
    """``snncompile compile --target reference --target fxsim`` runs the written graph as it is
    (no extra input channel) and reports what :func:`evaluate_eventprop` measured, sample for sample."""
    from snncompile.data import load_dataset

    data = load_dataset("yinyang")
    x = np.asarray(data.x_train, dtype=np.float64)
    res = train_eventprop(x, data.y_train, arch="4-16-3", epochs=2, seed=0, progress=False)
    nir.write(tmp_path / "e.nir", eventprop_to_nir(res, (4,), "yinyang", x_calib=x))
    r = CliRunner().invoke(main, ["compile", str(tmp_path / "e.nir"), "--dataset", "yinyang", "--target",
                                  "reference", "--target", "fxsim", "--samples", "300", "--out",
                                  str(tmp_path / "out"), "--quiet"])
    assert r.exit_code == 0, r.output + repr(r.exception)
    rep = json.loads((tmp_path / "out" / "report.json").read_text())
    _, _, extra = evaluate_eventprop(res, data.x_test[:300], data.y_test[:300], profile="loihi2", x_calib=x)
    for run, key in ((rep["reference"], "reference"), (rep["targets"]["fxsim"], "deployed")):
        assert run["accuracy"] == pytest.approx(extra[f"{key}_accuracy"])
        assert run["spikes_per_neuron"] == pytest.approx(extra[f"{key}_spikes_per_neuron"])


def test_spike_times_on_the_deployment_grid():
    """on_grid: ceil(t / dt) dt (the step the deployed neuron fires at), inf stays inf, the gradient
    passes straight through; the grid model's decisions are the NIR reference's (count readout)."""
    from snncompile.train.eventprop import on_grid

    t = torch.tensor([[0.01, 0.025, 0.0251, math.inf]], dtype=torch.float64, requires_grad=True)
    g = on_grid(t, 0.025)
    assert g.detach().tolist() == [[0.025, 0.025, 0.05, math.inf]]
    g[:, :3].sum().backward()
    assert t.grad.tolist() == [[1.0, 1.0, 1.0, 0.0]]


def test_grid_model_is_the_deployed_reference(toy, trained):
    """predict_continuous(grid=True) decides sample by sample as the NIR reference of the deployed
    graph (count readout), closer than the continuous model does."""
    from snncompile.encode import encode
    from snncompile.frontends.nir import read_spiking_graph, repair_graph
    from snncompile.lif.reference import simulate
    from snncompile.train.eventprop import predict_continuous

    x, _ = toy
    hp = trained.hyper
    net = read_spiking_graph(repair_graph(eventprop_to_nir(trained, (4,), "", x_calib=x), hp.dt), hp.dt)
    ref = simulate(net, encode(x, hp.steps, "latency", 0)).scores.argmax(1)
    grid = predict_continuous(trained.weights, x, hp, window=True, grid=True)
    cont = predict_continuous(trained.weights, x, hp, window=True)
    assert np.mean(grid == ref) >= max(0.99, np.mean(cont == ref))


def test_finer_exponent_on_the_grid(toy, trained):
    """deployed_grid with clip_share: one weight exponent finer (half the step) where few weights
    clip, and after fine-tuning with it compile picks that exponent and deploys the weights as they are."""
    from snncompile.encode import encode
    from snncompile.frontends.nir import read_spiking_graph, repair_graph
    from snncompile.profile import load_profile
    from snncompile.quantize.lif import quantize_lif
    from snncompile.train.eventprop_deploy import deployed_grid, finetune_on_grid

    x, y = toy
    trained = dataclasses.replace(trained, hyper=dataclasses.replace(trained.hyper, split=False), extra={})
    q0, b0 = deployed_grid(trained, "loihi2", x)
    q1, b1 = deployed_grid(trained, "loihi2", x, clip_share=1.0)
    assert all(np.all(np.isinf(b)) for b in b0)
    np.testing.assert_allclose(q1[0][:4], q0[0][:4] / 2)
    assert np.all(np.isfinite(b1[0][:4])) and np.isinf(b1[0][-1])

    def exps(res):
        hp = res.hyper
        net = read_spiking_graph(repair_graph(eventprop_to_nir(res, (4,), ""), hp.dt), hp.dt)
        _, table = quantize_lif(net, load_profile("loihi2"), encode(x[:200], hp.steps, "latency", 0), 1)
        return {c["name"]: (c["weight_exp"], c["max_rounding_error"] / c["weight_scale"])
                for row in table for c in row["connections"]}

    plain = exps(finetune_on_grid(trained, x, y, "loihi2", epochs=1, clip_share=0.0))
    finer = exps(finetune_on_grid(trained, x, y, "loihi2", epochs=1, clip_share=1.0))
    assert finer["lif1_from_input"][0] == plain["lif1_from_input"][0] - 1
    assert finer["lif1_from_input"][1] < 0.05


def test_split_connections_make_the_deployed_grid_fine(toy, trained):
    """The graph asks compile to split its trained connections (weight_split); the quantizer adds the
    residual Dense, and the weight grid fine-tuning sees is >= 8x finer on the input layer."""
    from snncompile.encode import encode
    from snncompile.frontends.nir import read_spiking_graph, repair_graph
    from snncompile.profile import load_profile
    from snncompile.quantize.lif import quantize_lif
    from snncompile.train.eventprop_deploy import deployed_steps

    x, _ = toy
    split = dataclasses.replace(trained, extra={})
    plain = dataclasses.replace(trained, hyper=dataclasses.replace(trained.hyper, split=False), extra={})
    g = eventprop_to_nir(split, (4,), "", x_calib=x)
    assert get_meta(g)["weight_split"] == ["lif1_from_input", "lif1_from_clock", "lif2_from_lif1", "lif2_from_clock"]
    assert "weight_split" not in get_meta(eventprop_to_nir(plain, (4,), "", x_calib=x))
    hp = split.hyper
    net = read_spiking_graph(repair_graph(g, hp.dt), hp.dt)
    qg, table = quantize_lif(net, load_profile("loihi2"), encode(x[:200], hp.steps, "latency", 0), 1)
    done = {c["name"] for r in table for c in r["connections"] if "split" in c}
    assert {"lif1_from_input", "lif1_from_clock"} <= done <= set(get_meta(g)["weight_split"])  # where finer
    assert "lif1_from_input_lo" in get_meta(qg)["connections"]
    fine, coarse = deployed_steps(split, "loihi2", x), deployed_steps(plain, "loihi2", x)
    assert np.all(fine[0][:4] <= coarse[0][:4] / 8)


def test_finetuning_keeps_the_training_record_and_can_keep_the_start(toy, trained):
    """finetune_on_grid keeps what training recorded (the restarts), and with validation data
    epoch 0 (the trained weights, rounded as compile deploys them) is a candidate."""
    from snncompile.train.eventprop_deploy import finetune_on_grid

    x, y = toy
    start = dataclasses.replace(trained, extra={"restart_val": [0.5, 0.6], "train_seed": 1003})
    out = finetune_on_grid(start, x, y, "loihi2", epochs=1, x_val=x[:80], y_val=y[:80])
    assert out.extra["restart_val"] == [0.5, 0.6] and out.extra["train_seed"] == 1003
    grid = out.history["on_grid"]
    vals = [grid["start_val_acc"], *grid["val_acc"]]
    assert grid["best_epoch"] == vals.index(max(vals))   # the best on validation, the earliest on ties


def test_restarts_keep_the_best_validation_run(toy):
    x, y = toy
    kw = dict(arch="4-12-2", epochs=2, batch_size=16, progress=False, x_val=x[:60], y_val=y[:60], **TOY_HYPER)
    res = train_eventprop(x, y, seed=3, restarts=2, **kw)
    singles = [train_eventprop(x, y, seed=s, restarts=1, **kw) for s in (3, 1003)]
    vals = [max(r.history["val_acc"]) for r in singles]
    assert res.extra["restart_val"] == vals and res.seed == 3
    pick = singles[int(np.argmax(vals))]
    assert res.extra["train_seed"] == pick.seed
    assert all(np.array_equal(a, b) for a, b in zip(res.weights, pick.weights))
