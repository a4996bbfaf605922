"""Xylo arithmetic (snncompile.neurons.xylo): analytic cases, and bit-exactness against rockpool's XyloSim."""

from __future__ import annotations

import json

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from snncompile.errors import TargetUnavailable
from snncompile.neurons import xylo
from snncompile.neurons.xylo import XyloParams, decay, deliver, normalize_spec, simulate, spike, xylo_step


def _one(v=0, isyn=0, dash_syn=15, dash_mem=15, th=32767, bias=0, limit=31, isyn2=None):
    """One hidden neuron, one sample: (isyn, vmem, spikes) after one step."""
    i = np.array([[[isyn, isyn2]]] if isyn2 is not None else [[isyn]], dtype=np.int64)
    ds = [[dash_syn, dash_syn]] if isyn2 is not None else [dash_syn]
    return xylo_step(i, np.array([[v]]), ds, [dash_mem], [th], [bias], limit)


@pytest.mark.parametrize("x,dash,dx", [
    (100, 4, 6),     # 100 >> 4
    (5, 4, 1),       # 5 >> 4 = 0: at least 1 while non-zero
    (-5, 4, -1),     # -5 >> 4 = -1 (arithmetic shift rounds toward -inf)
    (-100, 4, -7),   # floor(-6.25)
    (-1, 15, -1),    # -1 decays to 0 in one step
    (0, 3, 0),
    (32767, 0, 32767),
])
def test_decay_by_shift_with_unit_minimum(x, dash, dx):
    assert int(decay(x, dash)) == dx
    i, v, s = _one(v=x, dash_mem=dash)
    assert int(v[0, 0]) == x - dx and int(s[0, 0]) == 0
    i, v, s = _one(isyn=x, dash_syn=dash, dash_mem=0)
    assert int(i[0, 0]) == x - dx


def test_membrane_integrates_decayed_current_and_bias():
    # isyn 1000 decays by 1000 >> 3 = 125 -> 875; v 200 decays by 200 >> 2 = 50 -> 150; + 875 + 7
    i, v, s = _one(v=200, isyn=1000, dash_syn=3, dash_mem=2, bias=7)
    assert (int(i[0, 0]), int(v[0, 0]), int(s[0, 0])) == (875, 150 + 875 + 7, 0)


def test_int16_saturation_and_its_order():
    # dv = clip(-decay(v) + I1 + I2) first, then clip(dv + bias), then clip(v + dv):
    # I1 = I2 = 20000 decay by 1 -> 19999 each; clip(39998) = 32767; + bias -10000 -> 22767
    i, v, s = _one(v=0, isyn=20000, isyn2=20000, bias=-10000)
    assert int(v[0, 0]) == 22767
    i, v, s = _one(v=32000, isyn=2000, dash_syn=15, dash_mem=15)   # 31999 + 1999 saturates at 32767 ...
    assert (int(s[0, 0]), int(v[0, 0])) == (1, 0)                    # ... which reaches the 32767 threshold
    i, v, s = _one(v=-32000, isyn=-2000)
    assert int(v[0, 0]) == -32768
    # -decay(-32768, 0) = 32768 does not fit int16: C++ keeps -32768, so v stays at the floor
    i, v, s = _one(v=-32768, dash_mem=0)
    assert int(v[0, 0]) == -32768


def test_delivery_saturates_after_every_add_in_presynaptic_order():
    isyn = np.array([[32000]])
    w = np.array([[1000], [-1000]])
    assert int(deliver(isyn, np.array([[1, 1]]), w, 31)[0, 0]) == 31767   # clip at 32767, then -1000
    assert int(deliver(isyn, np.array([[0, 1]]), w, 31)[0, 0]) == 31000
    assert int(deliver(np.array([[0]]), np.array([[40, 0]]), w, 15)[0, 0]) == 15000  # count capped at 15
    assert int(deliver(np.array([[0]]), np.array([[40, 0]]), w, 31)[0, 0]) == 31000


@pytest.mark.parametrize("v,th,limit,n,rest", [
    (1050, 100, 31, 10, 50),    # several spikes per step, subtractive reset
    (5000, 100, 31, 31, 1900),  # capped at 31 per hidden neuron
    (250, 100, 1, 1, 150),      # an output neuron spikes at most once per step
    (99, 100, 31, 0, 99),
    (100, 100, 31, 1, 0),       # v >= threshold spikes
    (-5, 0, 31, 0, -5),
    (5, 0, 3, 3, 5),            # threshold 0: spikes up to the limit, v unchanged
])
def test_multi_spike_subtractive_reset(v, th, limit, n, rest):
    s, vo = spike(np.array([[v]]), [th], limit)
    assert (int(s[0, 0]), int(vo[0, 0])) == (n, rest)


def test_aliases_copy_spikes_and_use_up_the_limit():
    v = np.array([[250, 50, 3000]])
    th = [100, 100, 100]
    _, vo, s = xylo_step(np.zeros((1, 3)), v, [15] * 3, [15] * 3, th, [0] * 3, 31, aliases=[[1], [], [0]])
    # neuron 0: 249 -> 2 own spikes, copied to 1; neuron 2 (evolved later) adds its 29 to 0, capped at 31
    v_dec = 250 - 1, 50 - 1, 3000 - 1
    assert s[0, 1] == 2 and vo[0, 1] == v_dec[1]          # alias spikes only; own v untouched
    assert s[0, 2] == 29 and vo[0, 2] == v_dec[2] - 2900
    assert s[0, 0] == min(2 + 29, 31) and vo[0, 0] == v_dec[0] - 200


def _tiny_spec():
    return {"weights_in": np.array([[5]]), "weights_rec": np.array([[0]]), "weights_out": np.array([[3]]),
            "dash_mem": [15], "dash_syn": [15], "dash_syn_2": [15], "dash_mem_out": [15], "dash_syn_out": [15],
            "threshold": [8], "threshold_out": [1000], "weight_shift_in": 1, "weight_shift_out": 0}


def test_step_order_and_input_spike_limit():
    raster = np.zeros((1, 4, 1), np.int64)
    raster[0, 0, 0] = 20          # capped at 15 input spikes
    out = simulate(_tiny_spec(), raster)
    # step 1: I = 15 * (5 << 1) = 150, decays by 1 -> 149; v = 149 -> 18 spikes of 8, v = 5
    assert out["isyn"][0, 0, 0] == 149 and out["spikes"][0, 0, 0] == 18 and out["vmem"][0, 0, 0] == 5
    assert out["isyn_out"][0, 0, 0] == 0                    # hidden spikes reach the readout one step later
    assert out["isyn_out"][0, 1, 0] == 18 * 3 - 1
    assert out["isyn2"][0, :, 0].tolist() == [0, 0, 0, 0]


def test_params_meta_round_trip():
    net = normalize_spec({**_tiny_spec(), "aliases": [[0]]})
    p = net["params"]
    meta = json.loads(json.dumps(p.to_meta()))
    q = XyloParams.from_meta(meta)
    assert q.to_meta() == meta and q.max_spikes_in == 15 and q.max_spikes_hidden == 31 and q.max_spikes_out == 1


def test_require_xylosim_names_the_install(monkeypatch):
    from snncompile.targets.xylo import compat

    monkeypatch.setattr(compat.importlib.util, "find_spec", lambda name: None)
    with pytest.raises(TargetUnavailable, match="xylosim==0.1.3"):
        compat.require_xylosim()


def _random_spec(rng, n_in, h, o):
    spec = {
        "weights_in": rng.integers(-128, 128, (n_in, h, 2)) * (rng.random((n_in, h, 2)) < 0.7),
        "weights_rec": rng.integers(-128, 128, (h, h, 2)) * (rng.random((h, h, 2)) < 0.3),
        "weights_out": rng.integers(-128, 128, (h, o)),
        "dash_mem": rng.integers(0, 16, h), "dash_syn": rng.integers(0, 16, h), "dash_syn_2": rng.integers(0, 16, h),
        "dash_mem_out": rng.integers(0, 16, o), "dash_syn_out": rng.integers(0, 16, o),
        "threshold": rng.integers(1, 4000, h), "threshold_out": rng.integers(1, 4000, o),
        "bias": rng.integers(-200, 200, h), "bias_out": rng.integers(-200, 200, o),
        "weight_shift_in": int(rng.integers(0, 8)), "weight_shift_rec": int(rng.integers(0, 8)),
        "weight_shift_out": int(rng.integers(0, 8)), "dt": 1e-3,
    }
    kind = rng.integers(0, 5)
    if kind == 1:    # non-positive thresholds, extreme biases
        spec["threshold"] = rng.integers(-300, 300, h)
        spec["bias"] = rng.integers(-32768, 32768, h)
    elif kind == 2:  # aliases
        spec["aliases"] = [[int(rng.integers(0, h))] if rng.random() < 0.5 else [] for _ in range(h)]
    elif kind == 3:  # one synapse, inputs to the first hidden neurons, readout from the last ones
        spec["weights_in"] = spec["weights_in"][:, :max(1, h - 1), 0]
        spec["weights_out"] = spec["weights_out"][:max(1, h - 2)]
        spec["weights_rec"] = spec["weights_rec"][:, :, 0]
    return spec


@settings(max_examples=25, deadline=None)
@given(seed=st.integers(0, 2**32 - 1), n_in=st.integers(1, 6), h=st.integers(1, 12), o=st.integers(1, 4),
       rate=st.sampled_from([2, 4, 40]))
def test_simulate_matches_xylosim_at_every_step(seed, n_in, h, o, rate):
    pytest.importorskip("xylosim")
    pytest.importorskip("rockpool")
    from snncompile.targets.xylo.sim import compare, run_xylosim

    rng = np.random.default_rng(seed)
    spec = _random_spec(rng, n_in, h, o)
    raster = rng.integers(0, rate, (3, 30, n_in))
    theirs, ours = run_xylosim(spec, raster), simulate(spec, raster)
    assert compare(spec, raster, theirs, ours) is None
    for k in theirs:
        assert np.array_equal(theirs[k], ours[k]), k


def test_compare_reports_the_first_mismatch():
    pytest.importorskip("xylosim")
    from snncompile.targets.xylo.sim import compare, run_xylosim

    spec = _tiny_spec()
    raster = np.zeros((2, 4, 1), np.int64)
    raster[1, 1, 0] = 2
    theirs, ours = run_xylosim(spec, raster), simulate(spec, raster)
    assert compare(spec, raster, theirs, ours) is None
    ours["vmem"][1, 2, 0] += 1
    m = compare(spec, raster, theirs, ours)
    assert m == {"sample": 1, "layer": "hidden", "neuron": 0, "step": 3, "what": "vmem",
                 "xylosim": int(theirs["vmem"][1, 2, 0]), "fxsim": int(theirs["vmem"][1, 2, 0]) + 1}


def test_module_constants_follow_xylosim():
    assert (xylo.MAX_SPIKES_IN, xylo.MAX_SPIKES, xylo.MAX_SPIKES_OUT, xylo.STATE_BITS) == (15, 31, 1, 16)
