"""EventProp (snncompile/train/eventprop.py): exact spike times, gradients against finite
differences, the continuous model against a fine time grid, training, NIR and deployment."""

from __future__ import annotations

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
    evaluate_eventprop,
    eventprop_to_nir,
    first_spike_loss,
    input_times,
    network_times,
    spike_times_forward,
    train_eventprop,
)


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


def test_continuous_times_match_a_fine_time_grid():
    """The exact spike times against the first crossing of V on a 1e-4 grid (mixed signs)."""
    rng = np.random.default_rng(3)
    t_in = rng.uniform(0, 2, (12, 6))
    t_in[:, 5] = np.inf
    w = rng.normal(2.0, 3.0, (4, 6))
    got = spike_times_forward(torch.as_tensor(t_in), torch.as_tensor(w), 1.0).numpy()
    grid = np.arange(0, 12, 1e-4)
    fired = 0
    for b in range(12):
        for k in range(4):
            s = grid[:, None] - t_in[b][None, :]
            ok = np.isfinite(s) & (s > 0)
            ss = np.where(ok, s, 0.0)
            v = np.sum(np.where(ok, w[k] * (np.exp(-ss / 2) - np.exp(-ss)), 0.0), axis=1)
            above = np.nonzero(v > 1.0)[0]
            if len(above) == 0:
                assert math.isinf(got[b, k])
            else:
                fired += 1
                assert got[b, k] == pytest.approx(grid[above[0]], abs=2e-4)
    assert fired > 6


@pytest.fixture(scope="module")
def small_problem():
    rng = np.random.default_rng(0)
    x = rng.uniform(0, 1, (8, 4))
    y = torch.tensor([0, 1, 2, 0, 1, 2, 0, 1])
    g = torch.Generator().manual_seed(0)
    ws = [torch.randn(7, 5, dtype=torch.float64, generator=g) + 1.5,
          torch.randn(3, 8, dtype=torch.float64, generator=g) + 1.5]
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
        assert num.abs().max() > 1e-4
        np.testing.assert_allclose(w.grad.numpy(), num.numpy(), atol=1e-7, rtol=1e-5)


def test_input_time_gradients_match_finite_differences(small_problem):
    _, _, ws = small_problem
    rng = np.random.default_rng(1)
    t_in = torch.as_tensor(rng.uniform(0, 2, (5, 5))).requires_grad_()
    out = SpikeTimes.apply(t_in, ws[0], 1.0, 1e-12)
    mask = torch.isfinite(out)
    (torch.where(mask, out, torch.zeros_like(out)) * torch.arange(7.0, dtype=torch.float64)).sum().backward()
    eps = 1e-6
    with torch.no_grad():
        for idx in np.ndindex(*t_in.shape):
            tp, tm = t_in.clone(), t_in.clone()
            tp[idx] += eps
            tm[idx] -= eps
            fp = spike_times_forward(tp, ws[0], 1.0)
            fm = spike_times_forward(tm, ws[0], 1.0)
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
    graph = eventprop_to_nir(trained, (4,), "toy")
    meta = get_meta(graph)
    assert meta["trained_by"] == "eventprop" and meta["encoding"]["type"] == "latency"
    assert isinstance(graph.nodes["lif1"], nir.CubaLIF) and graph.nodes["fc1"].weight.shape == (12, 5)
    acc, spn, extra = evaluate_eventprop(trained, x, y, profile="loihi2")
    assert acc == trained.accuracy["train"] and 0 < spn <= 1
    assert set(extra) >= {"deployed_accuracy", "deployed_agreement"}
    assert 0 <= extra["deployed_agreement"] <= 1


def test_bad_arguments(toy):
    x, y = toy
    with pytest.raises(InvalidModel, match="first size"):
        train_eventprop(x, y, arch="5-3-2", epochs=1, progress=False)
    with pytest.raises(InvalidModel, match="unknown"):
        train_eventprop(x, y, arch="4-3-2", epochs=1, progress=False, bogus=1)
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
    assert get_meta(nir.read(out))["trained_by"] == "eventprop"
