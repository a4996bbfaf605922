"""The neuron families' integer steps against hand-computed values."""

from __future__ import annotations

import numpy as np

from snncompile.neurons.lif import LifParams, float_step, loihi_step, readout_scores
from snncompile.neurons.ttfs import TtfsParams, fire_closed, float_spike_time, integer_step, output_counts

P = TtfsParams("hidden", steps=4, weight_exp=0, slope=10, threshold=45, arrival=2, t_in_end=5, fire_start=6,
               fire_end=9)


def run_ttfs(p, a_by_step, v0=0, bits=24, shift=6, T=10):
    u = np.zeros((1, 1), np.int64)
    v = np.full((1, 1), v0, np.int64)
    fired = np.zeros((1, 1), bool)
    steps = []
    for t in range(1, T + 1):
        a = np.full((1, 1), a_by_step.get(t, 0), np.int64)
        u, v, fired, s = integer_step(u, v, fired, a, t, p, bits, shift)
        if s.any():
            steps.append(t)
    return steps, v


def test_ttfs_integrates_ramps_and_fires_once():
    # one input a = 1 (<< 6 = 64) at step 3 stays in u: v(5) = 64 * 3 = 192 > theta, so the neuron fires at
    # the first ramp step; afterwards v is 0 and never fires again
    steps, v = run_ttfs(P, {3: 1})
    assert steps == [6] and v[0, 0] == 30  # 0 after the spike, then three ramp steps of 10
    # no input: v = 10 f at ramp step f; 10 f > 45 first at f = 5 > K: silent
    assert run_ttfs(P, {})[0] == []
    # v(5) = 20: 20 + 10 f > 45 at f = 3 -> step 8, count K + 1 - f = 2
    assert run_ttfs(P, {}, v0=20)[0] == [8]
    step, counts, _ = fire_closed(P, np.array([[20, 192, -5]]), (1 << 23) - 1)
    assert step.tolist() == [[8, 6, -1]] and counts.tolist() == [[2, 4, 0]]
    assert output_counts(P, np.array([8, 6, -1])).tolist() == [2, 4, 0]


def test_ttfs_wraps_u_and_saturates_v_like_lava():
    small = TtfsParams("readout", 4, 0, 0, 0, 2, 5, 6, 5)  # a readout: empty fire window
    # 8-bit state: a = 3 << 6 = 192 > 128 wraps to 192 - 256 = -64; v saturates at -127 after two steps
    steps, v = run_ttfs(small, {2: 3}, bits=8, T=5)
    assert steps == [] and v[0, 0] == -127


def test_ttfs_float_spike_time_is_the_clipped_relu():
    t = float_spike_time(np.array([-1.0, 0.25, 0.5, 2.0]), t_min=1.0, t_max=1.5)
    np.testing.assert_allclose(t, [np.inf, 1.25, 1.0, 1.0])  # activation t_max - t = clip(v, 0, B), B = 0.5


def test_loihi_lif_step_decays_toward_zero_and_resets():
    p = LifParams(spiking=True, du=4095, dv=2048, vth_mant=1, v_lsb=1.0)
    u = np.zeros((1, 1), np.int64)
    v = np.full((1, 1), -101, np.int64)
    u, v, s = loihi_step(u, v, np.zeros((1, 1), np.int64), p, 0, 24, 6, 12, 6)
    assert v[0, 0] == -50 and not s.any()  # trunc0(-101 * 2048 / 4096) = -50 (toward zero)
    u, v, s = loihi_step(u, v, np.full((1, 1), 2), p, 0, 24, 6, 12, 6)
    # u = 2 << 6 = 128 (du = 4095: no memory); v = -25 + 128 = 103 > 1 << 6 = 64: spike, v = 0
    assert u[0, 0] == 128 and s.all() and v[0, 0] == 0


def test_lif_float_step_and_readout():
    st = {"v": np.array([0.5]), "i": np.array([0.0])}
    s = float_step("LIF", st, {"tau": 2.0, "r": 2.0, "v_leak": 0.0, "v_threshold": 1.0, "v_reset": 0.0},
                   np.array([1.0]), dt=1.0)
    assert s.tolist() == [1.0] and st["v"].tolist() == [0.0] and st["pre"].tolist() == [1.25]
    raw, sc = readout_scores(False, v_sum=np.array([[10, 30]]), v_lsb=0.5, t_total=10)
    assert raw.tolist() == [[10, 30]] and sc.tolist() == [[0.5, 1.5]]
    raw, sc = readout_scores(True, counts=np.array([[2, 0]]))
    assert sc.tolist() == [[2.0, 0.0]]
