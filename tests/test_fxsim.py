"""fxsim: the integer TTFS neuron program, its closed form, and the target."""

from __future__ import annotations

import nir
import numpy as np
import pytest
from conftest import cnn, mlp
from hypothesis import given, settings
from hypothesis import strategies as st

from snncompile.encode import ttfs_counts
from snncompile.profile import load_profile
from snncompile.quantize.ttfs import quantize_ttfs
from snncompile.targets import run_target
from snncompile.ttfs.convert import convert
from snncompile.ttfs.fixed import Arith, FixedLayer, run_layer_closed, run_layer_stepped, run_network

AR = Arith(state_bits=24, act_shift=6)


def layer(w, *, K=4, e=0, r=10, bias=None, role="hidden", arrival=2):
    w = np.atleast_2d(np.asarray(w, dtype=np.int64))
    n_out, n_in = w.shape
    ops = [("fc", nir.Affine(weight=w, bias=np.zeros(n_out)))]
    t_in_end = arrival + K - 1
    fire = (t_in_end + 1, t_in_end + K) if role == "hidden" else (t_in_end + 1, t_in_end)
    return FixedLayer("pop", role, ops, (n_in,), (n_out,), K, e, r if role == "hidden" else 0,
                      K * r + r // 2 if role == "hidden" else 0,
                      np.zeros(n_out, np.int64) if bias is None else np.asarray(bias, np.int64),
                      arrival, t_in_end, fire[0], fire[1])


def test_dense_delay_and_integration():
    # one input with count c arrives at step A + K - c and is integrated for c steps
    L = layer([[3]], K=4, role="readout")
    out = run_layer_stepped(L, np.array([[2]]), AR, t_total=L.t_in_end, record=True)
    v = out.v_trace[0, :, 0]
    arrive = L.arrival + 4 - 2  # step 4
    assert v[: arrive - 1].tolist() == [0] * (arrive - 1)
    assert v[arrive - 1:].tolist() == [3 * 64 * k for k in (1, 2)]
    assert out.z[0, 0] == 3 * 64 * 2


@pytest.mark.parametrize("z,step_offset,count", [(20, 3, 2), (25, 3, 2), (26, 2, 3), (35, 2, 3), (0, -1, 0), (60, 1, 4)])
def test_fire_step_rounds_half_down(z, step_offset, count):
    # K=4, r=10, theta=45: fires at ramp step f, the first with z + f r > theta (strict)
    L = layer([[1]], K=4, r=10, bias=[z])
    out = run_layer_stepped(L, np.array([[0]]), AR, t_total=L.fire_end)
    expected = -1 if step_offset < 0 else L.t_in_end + step_offset
    assert out.spike_step[0, 0] == expected
    assert out.counts[0, 0] == count
    closed, valid = run_layer_closed(L, np.array([[0]]), AR)
    assert valid.all() and closed.spike_step[0, 0] == expected and closed.counts[0, 0] == count


def test_strict_threshold_does_not_fire_at_equality():
    L = layer([[1]], K=4, r=10, bias=[35])  # ramp step 1: v = 45 == theta: no spike yet
    out = run_layer_stepped(L, np.array([[0]]), AR, t_total=L.fire_end, record=True)
    assert out.v_trace[0, L.t_in_end, 0] == 45  # value at ramp step 1, still no spike
    assert out.spike_step[0, 0] == L.t_in_end + 2


def test_current_wraps_at_24_bits_single_pass():
    # five inputs arriving together add 5 * 255 << (7 + 6) to u = 10,444,800 > 2**23: wraps once
    L = layer([[255] * 5], K=2, e=7, role="readout")
    out = run_layer_stepped(L, np.full((1, 5), 2), AR, t_total=L.t_in_end, record=True)
    u = 5 * 255 * 2 ** 13
    assert u > 2 ** 23
    assert out.v_trace[0, L.arrival - 1, 0] == u - 2 ** 24
    assert out.wraps[0] == 1
    closed, valid = run_layer_closed(L, np.full((1, 5), 2), AR)
    assert not valid[0]  # the closed form knows it cannot vouch for this sample


def test_voltage_saturates():
    L = layer([[255] * 3], K=8, e=5, role="readout")  # u = 3*255*2**11 = 1.57 M per step, 8 steps
    out = run_layer_stepped(L, np.full((1, 3), 8), AR, t_total=L.t_in_end, record=True)
    assert out.z[0, 0] == 2 ** 23 - 1
    assert out.sats[0] > 0


def test_negative_exponent_floors_each_step():
    L = layer([[-3, 0]], K=2, e=-1, role="readout")
    out = run_layer_stepped(L, np.array([[2, 0]]), AR, t_total=L.t_in_end)
    assert out.z[0, 0] == (-3 >> 1) * 64 * 2  # floor(-1.5) = -2, integrated for 2 steps
    closed, valid = run_layer_closed(L, np.array([[2, 0]]), AR)
    assert valid[0] and closed.z[0, 0] == out.z[0, 0]


@settings(max_examples=15, deadline=None)
@given(seed=st.integers(0, 1000), K=st.sampled_from([2, 4, 8]), profile=st.sampled_from(["loihi2", "ideal"]))
def test_closed_form_equals_stepped_program(seed, K, profile):
    rng = np.random.default_rng(seed)
    model = mlp((10, 12, 8, 4), seed=seed)
    x = rng.random((30, 10))
    q, _ = quantize_ttfs(convert(model, x), load_profile(profile), K, x)
    from snncompile.ttfs.fixed import arith_of, fixed_layers
    from snncompile.ttfs.graph import parse_ttfs

    net = parse_ttfs(q)
    layers, ar, T = fixed_layers(net), arith_of(net), net.meta["t_total"]
    c = ttfs_counts(x, K)
    a = run_network(layers, ar, c, T, mode="auto")
    b = run_network(layers, ar, c, T, mode="stepped")
    for la, lb in zip(a, b):
        assert np.array_equal(la.z, lb.z)
        assert np.array_equal(la.counts, lb.counts)
        assert np.array_equal(la.sats, lb.sats) and np.array_equal(la.wraps, lb.wraps)


def test_auto_mode_falls_back_on_wrapping_samples():
    L = layer([[255] * 5, [1] * 5], K=2, e=7, role="readout")
    c = np.array([[2] * 5, [0, 0, 0, 0, 1]])
    auto = run_network([L], AR, c, L.t_in_end, mode="auto")[0]
    step = run_network([L], AR, c, L.t_in_end, mode="stepped")[0]
    assert np.array_equal(auto.z, step.z) and np.array_equal(auto.wraps, step.wraps)


def test_auto_mode_falls_back_on_wrapping_samples_with_floored_steps():
    """e < 0: the bound comes from the per-step floored sums; a sample whose u would wrap (a big positive
    sum at one step, a big negative one later) is re-run step by step, the others stay closed-form."""
    L = layer([[300_000, -300_000, 3], [1, 1, 1]], K=3, e=-1, role="readout")
    c = np.array([[3, 1, 2], [2, 0, 3], [0, 0, 3]])
    auto = run_network([L], AR, c, L.t_in_end, mode="auto")[0]
    step = run_network([L], AR, c, L.t_in_end, mode="stepped")[0]
    _, valid = run_layer_closed(L, c, AR)
    assert valid.tolist() == [False, False, True]
    assert step.wraps[0] > 0 and step.wraps[2] == 0
    assert np.array_equal(auto.z, step.z) and np.array_equal(auto.wraps, step.wraps)


def test_fxsim_target_tracks_reference(rng):
    model = cnn()
    x = rng.random((80, 1, 8, 8))
    g = convert(model, x)
    prof = load_profile("loihi2")
    q, table = quantize_ttfs(g, prof, 16, x)
    fx = run_target("fxsim", q, x, profile=prof)
    ref = run_target("reference", g, x)
    assert np.mean(fx.decisions == ref.decisions) >= 0.9
    assert [la.role for la in fx.layers] == ["hidden", "maxpool", "hidden"]
    assert fx.info["energy"]["label"] == "estimate" and fx.info["energy"]["nJ_per_sample_mean"] > 0
    for la in fx.layers:  # one spike at most per neuron, counted per sample
        assert np.array_equal(la.spikes, (la.times >= 0).sum(1))


@pytest.mark.parametrize("stride", [1, 2])
def test_conv_fanout_by_transposed_pass_equals_the_matrix(stride):
    """Synapses per input of a conv population: one transposed pass gives the composite matrix's counts."""
    from snncompile.nirops import composite_matrix
    from snncompile.ttfs.fixed import LinearMap

    w = np.random.default_rng(stride).integers(-2, 3, (6, 3, 3, 3)).astype(float)
    ops = [("c", nir.Conv2d(input_shape=(7, 7), weight=w, stride=stride, padding=1, dilation=1, groups=1,
                            bias=np.zeros(6)))]
    m = LinearMap(ops, (3, 7, 7), 16)
    m.mat = None  # the conv path, as for maps too large for a matrix
    want = np.asarray((composite_matrix(ops, (3, 7, 7)) != 0).sum(axis=0)).ravel()
    assert np.array_equal(m.fanout(), want)


@pytest.mark.parametrize("density", [0.05, 0.3, 0.9])
def test_step_matrix_marks_each_input_at_its_arrival_step(density):
    """Row k*n + i of the step matrix holds the inputs of sample i with count K - k (both ways of
    building it: sparse inputs, and mostly-spiking ones)."""
    from snncompile.ttfs.fixed import step_matrix

    rng = np.random.default_rng(int(density * 100))
    K, n, m = 6, 7, 11
    c = np.where(rng.random((n, m)) < density, rng.integers(1, K + 1, (n, m)), 0)
    want = np.zeros((K * n, m))
    for i in range(n):
        for j in range(m):
            if c[i, j]:
                want[(K - c[i, j]) * n + i, j] = 1
    got = step_matrix(c, K)
    assert np.array_equal(got.toarray(), want)


@settings(max_examples=20, deadline=None)
@given(seed=st.integers(0, 10_000), K=st.sampled_from([1, 3, 16]), shift=st.integers(1, 9),
       wdt=st.sampled_from([np.int16, np.int32]), need_bound=st.booleans())
def test_floored_step_sums_kernel_equals_numpy(seed, K, shift, wdt, need_bound):
    """The compiled kernel: per sample, sum_k (K - k) ((sum of the rows arriving at step k) >> shift),
    shifted and biased, and the bound max_o sum_k |.|; checked against a plain numpy evaluation,
    negative sums (floor towards -inf) included."""
    from snncompile.ttfs.kernels import floored_step_sums

    rng = np.random.default_rng(seed)
    n, n_in, n_out = 9, 13, 5
    w = rng.integers(-300, 301, (n_in, n_out)).astype(wdt)
    c = np.where(rng.random((n, n_in)) < 0.5, rng.integers(1, K + 1, (n, n_in)), 0)
    bias = rng.integers(-50, 51, n_out)
    z, bound = np.empty((n, n_out), np.int64), np.zeros(n, np.int64)
    floored_step_sums(c, w, K, shift, 6, bias, np.empty((K, n_out), np.int32), z, bound, need_bound)
    for i in range(n):
        a = np.array([w[c[i] == K - k].astype(np.int64).sum(0) >> shift for k in range(K)])  # (K, out)
        assert np.array_equal(z[i], bias + ((np.arange(K, 0, -1)[:, None] * a).sum(0) << 6))
        assert bound[i] == (np.abs(a).sum(0).max() if need_bound else 0)


def test_closed_form_refuses_counts_outside_the_window():
    from snncompile.errors import InvalidModel

    L = layer([[1, 2]], K=2, e=-1, role="readout")
    with pytest.raises(InvalidModel, match="outside 0..steps"):
        run_layer_closed(L, np.array([[3, 0]]), AR)


def test_synapse_events_and_input_range():
    from snncompile.targets.fxsim import in_range, synapse_events

    fired = np.array([[True, False, True], [False, False, False], [True, True, True]])
    count, syn = synapse_events(fired, np.array([4, 0, 7]))
    assert count.tolist() == [2, 0, 3] and syn.tolist() == [11.0, 0.0, 11.0]
    count, syn = synapse_events(np.array([[0, 3], [2, 1]]), np.array([5, 1]))  # counts: nonzero = spiked
    assert count.tolist() == [1, 2] and syn.tolist() == [1.0, 6.0]
    assert in_range(np.array([[0, 4]]), 4) and not in_range(np.array([[0, 5]]), 4)
    assert not in_range(np.array([[-1, 0]]), 4) and not in_range(np.array([[-1.0]]), 4)
