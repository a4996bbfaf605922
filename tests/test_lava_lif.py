"""The Lava target on quantized LIF graphs: stock Lava processes vs fxsim (snncompile/lif/fixed.py),
bit for bit, with samples back to back; the boundary check; the standalone export; the corners
where Lava's int32 arithmetic and saturated thresholds show.

These tests run Lava for real (about 0.5-1 s per network build plus 1-2 ms per step).
"""

from __future__ import annotations

import subprocess
import sys

import nir
import numpy as np
import pytest
import torch
from conftest import assert_runtime_copied

from snncompile.errors import InvalidModel, TargetUnavailable
from snncompile.frontends.nir import read_spiking_graph, repair_graph
from snncompile.ir import get_meta, set_meta
from snncompile.lif.fixed import read_qlif, simulate_fixed
from snncompile.profile import load_profile
from snncompile.quantize.lif import quantize_lif
from snncompile.targets import get_target, run_target
from snncompile.targets.lava.lif_runtime import lif_dirty_starts, lif_schedule
from snncompile.targets.lava.plan import lif_plan

PROFILE = load_profile("loihi2")
A = np.array


@pytest.fixture(scope="module")
def lava():
    pytest.importorskip("lava")
    from snncompile.targets.lava.compat import require_lava

    require_lava()
    return get_target("lava")


def raster(n, T, shape, p=0.4, seed=0):
    return (np.random.default_rng(seed).random((n, T, *shape)) < p).astype(np.uint8)


def norse_chain(sizes=(8, 16, 4), seed=0, scale=6.0):
    """norse SequentialState(Linear, LIFBoxCell, Linear, LIFBoxCell) -> to_nir -> repair -> read."""
    nt = pytest.importorskip("norse.torch")
    torch.manual_seed(seed)
    p = nt.LIFBoxParameters(tau_mem_inv=torch.tensor(0.1), v_th=torch.tensor(0.5))
    model = nt.SequentialState(torch.nn.Linear(sizes[0], sizes[1]), nt.LIFBoxCell(p, dt=1.0),
                               torch.nn.Linear(sizes[1], sizes[2]), nt.LIFBoxCell(p, dt=1.0))
    with torch.no_grad():
        model[0].weight.mul_(scale)
        model[2].weight.mul_(scale)
    raw = nt.to_nir(model, torch.zeros(1, sizes[0]), dt=1.0)
    return read_spiking_graph(repair_graph(raw))


def quantized(net, T=20, seed=1):
    q, _ = quantize_lif(net, PROFILE, raster(40, T, net.input_shape, seed=seed))
    return q


def nir_graph(nodes: dict, edges: list) -> nir.NIRGraph:
    return nir.NIRGraph(nodes=nodes, edges=edges, type_check=False)


def cuba_if_graph(delay=None, seed=3):
    """input(6) -> Affine with bias -> CubaLIF with v_leak (a neuron bias) -> [Delay] -> Affine -> IF."""
    rng = np.random.default_rng(seed)
    nodes = {"input": nir.Input(input_type={"input": A([6])}),
             "fc1": nir.Affine(weight=rng.normal(0.3, 1.0, (8, 6)), bias=rng.normal(0, 0.3, 8)),
             "cuba": nir.CubaLIF(tau_syn=A([3.0] * 8), tau_mem=A([6.0] * 8), r=A([6.0] * 8),
                                 v_leak=np.linspace(-0.5, 0.9, 8), v_threshold=A([1.0] * 8), w_in=A([3.0] * 8)),
             "fc2": nir.Affine(weight=rng.normal(0.3, 1.0, (4, 8)), bias=np.zeros(4)),
             "if": nir.IF(r=A([1.0] * 4), v_threshold=A([1.5] * 4)),
             "output": nir.Output(output_type={"output": A([4])})}
    edges = [("input", "fc1"), ("fc1", "cuba"), ("cuba", "fc2"), ("fc2", "if"), ("if", "output")]
    if delay:
        nodes["delay"] = nir.Delay(delay=A([float(delay)] * 4))
        edges[-2:-1] = [("fc2", "delay"), ("delay", "if")]
    return read_spiking_graph(nir_graph(nodes, edges))


def recurrent_graph(delay=None, seed=4):
    """input(5) -> Affine -> LIF, LIF -> Affine [-> Delay] -> the same LIF, LIF -> Affine -> LI readout."""
    rng = np.random.default_rng(seed)
    nodes = {"input": nir.Input(input_type={"input": A([5])}),
             "fc": nir.Affine(weight=rng.normal(0.4, 1.0, (6, 5)), bias=np.zeros(6)),
             "lif": nir.LIF(tau=A([4.0] * 6), r=A([4.0] * 6), v_leak=A([0.0] * 6), v_threshold=A([1.0] * 6)),
             "rec": nir.Affine(weight=rng.normal(0.1, 0.6, (6, 6)), bias=np.zeros(6)),
             "fc2": nir.Affine(weight=rng.normal(0.0, 1.0, (3, 6)), bias=np.zeros(3)),
             "li": nir.LI(tau=A([5.0] * 3), r=A([5.0] * 3), v_leak=A([0.0] * 3)),
             "output": nir.Output(output_type={"output": A([3])})}
    edges = [("input", "fc"), ("fc", "lif"), ("lif", "rec"), ("rec", "lif"), ("lif", "fc2"), ("fc2", "li"),
             ("li", "output")]
    if delay:
        nodes["delay"] = nir.Delay(delay=A([float(delay)] * 6))
        edges[3:4] = [("rec", "delay"), ("delay", "lif")]
    return read_spiking_graph(nir_graph(nodes, edges))


def single(pop, n_in=1):
    nodes = {"input": nir.Input(input_type={"input": A([n_in])}),
             "fc": nir.Affine(weight=np.ones((1, n_in)), bias=np.zeros(1)), "pop": pop,
             "output": nir.Output(output_type={"output": A([1])})}
    return read_spiking_graph(nir_graph(nodes, [("input", "fc"), ("fc", "pop"), ("pop", "output")]))


def edit(q, conn, weight=None, weight_exp=None):
    """Overwrite a connection's integer weights / exponent in a quantized LIF graph (in place)."""
    node = q.nodes[conn]
    if weight is not None:
        node.weight = np.asarray(weight, dtype=np.int64)
    if weight_exp is not None:
        meta = get_meta(node)
        meta["weight_exp"] = int(weight_exp)
        set_meta(node, meta)


def conn_from(q, src):
    return next(c for c in get_meta(q)["connections"] if get_meta(q.nodes[c])["src"] == src)


def assert_exact(run, q, spikes):
    """The target's own verdict, and an independent check against simulate_fixed: every v at every
    step, spike counts, first spike steps, logits and decisions."""
    assert run.info["bit_exact_with_fxsim"], run.info["first_mismatch"]
    assert run.info["first_mismatch"] is None
    fx = simulate_fixed(read_qlif(q), spikes, record=True)
    assert run.info["t_total"] == fx.t_total
    assert set(run.traces) == set(fx.traces)
    for name, tr in fx.traces.items():
        assert run.traces[name].dtype == np.int64
        np.testing.assert_array_equal(run.traces[name], tr, err_msg=name)
    qn = read_qlif(q)
    assert [la.name for la in run.layers] == [k for k, p in qn.pops.items() if p.spiking]
    for la in run.layers:
        np.testing.assert_array_equal(la.spikes, fx.counts[la.name].sum(1), err_msg=la.name)
        np.testing.assert_array_equal(la.times, fx.first_step[la.name], err_msg=la.name)
        assert la.saturations is None and la.wraps is None
    np.testing.assert_array_equal(run.logits, fx.scores)
    np.testing.assert_array_equal(run.decisions, fx.scores.argmax(1))
    np.testing.assert_array_equal(run.input_spikes, spikes.reshape(len(spikes), -1).sum(1))
    return fx


# --- no Lava needed ----------------------------------------------------------------------------------


def test_lif_graphs_need_spikes_and_binary_rasters():
    q = quantized(single(nir.IF(r=A([1.0]), v_threshold=A([2.0]))), T=4)
    target = get_target("lava")
    with pytest.raises(InvalidModel, match="spike rasters"):
        run_target(target, q)
    with pytest.raises(InvalidModel, match="0 or 1"):
        run_target(target, q, spikes=np.full((1, 4, 1), 2, np.uint8))
    with pytest.raises(InvalidModel, match="shape"):
        run_target(target, q, spikes=np.zeros((1, 4, 3), np.uint8))


def test_plan_names_what_stock_lava_cannot_run():
    q = quantized(single(nir.IF(r=A([1.0]), v_threshold=A([2.0]))), T=4)
    edit(q, "pop_from_input", weight_exp=0)
    meta = get_meta(q.nodes["pop_from_input"])
    meta["delay"] = 65
    set_meta(q.nodes["pop_from_input"], meta)
    with pytest.raises(InvalidModel, match="pop_from_input"):
        lif_plan(q)
    q = quantized(single(nir.IF(r=A([1.0]), v_threshold=A([2.0]))), T=4)
    q.nodes["pop"].v_leak = A([4095.0 * 2 ** 7 + 1])  # beyond a 13-bit mantissa << 3-bit exponent
    with pytest.raises(InvalidModel, match="population 'pop'"):
        lif_plan(q)


def test_missing_lava_raises_target_unavailable(monkeypatch):
    q = quantized(single(nir.IF(r=A([1.0]), v_threshold=A([2.0]))), T=4)
    target = get_target("lava")
    for mod in [m for m in sys.modules if m == "lava" or m.startswith("lava.")]:
        monkeypatch.delitem(sys.modules, mod)
    monkeypatch.setitem(sys.modules, "lava", None)
    with pytest.raises(TargetUnavailable, match="lava-nc==0.10.0"):
        run_target(target, q, spikes=np.zeros((1, 4, 1), np.uint8))


def test_dirty_starts_look_at_the_last_delay_steps_of_each_period():
    plan = {"pops": [{"name": "a", "out_delay": 2}, {"name": "r", "out_delay": 0}]}
    sched = {"period": 6}
    a = np.zeros((4, 6, 3), bool)
    r = np.ones((4, 6, 2), bool)      # the readout feeds nothing: its spikes never matter
    a[0, 3, 1] = True                  # step 4 of sample 0: delivered by step 6 (delay <= 2), clean
    a[1, 4, 0] = True                  # step 5 of sample 1: may arrive at step 1 of sample 2
    a[3, 5, 2] = True                  # the last sample's gap: nothing follows it
    assert lif_dirty_starts(plan, sched, [a, r]).tolist() == [False, False, True, False]


# --- Lava vs fxsim, bit for bit ----------------------------------------------------------------------


def test_norse_lif_chain_back_to_back_is_bit_exact(lava):
    """(a) A norse export, several samples back to back in one network: every v, every spike."""
    q = quantized(norse_chain())
    x = raster(6, 20, (8,), seed=2)
    run = run_target(lava, q, profile=PROFILE, spikes=x)
    assert_exact(run, q, x)
    info = run.info
    assert info["builds"] == 1 and info["rerun_samples"] == 0 and not info["quench"]  # falls silent by itself
    assert info["t_total"] == 20 + get_meta(q)["depth"] and info["sample_period"] == info["t_total"] + info["gap"]
    assert set(info["connections"].values()) == {"Dense"}
    assert all(la.spikes.sum() > 0 for la in run.layers)  # the comparison is not vacuous
    assert info["seconds"] > 0 and info["seconds_per_sample"] == info["seconds"] / 6


def test_conv_input_runs_as_sparse_and_is_bit_exact(lava):
    """A convolution from a (1, 8, 8) input: its 256 x 64 matrix is mostly zeros and runs as Sparse."""
    rng = np.random.default_rng(2)
    nodes = {"input": nir.Input(input_type={"input": A([1, 8, 8])}),
             "conv": nir.Conv2d(input_shape=(8, 8), weight=rng.normal(0.3, 1, (4, 1, 3, 3)), stride=1, padding=1,
                                dilation=1, groups=1, bias=np.zeros(4)),
             "lif1": nir.LIF(tau=A(3.0), r=A(3.0), v_leak=A(0.0), v_threshold=A(1.0)),
             "flat": nir.Flatten(input_type={"input": A([4, 8, 8])}, start_dim=0, end_dim=-1),
             "fc": nir.Affine(weight=rng.normal(0, 0.3, (5, 256)), bias=np.zeros(5)),
             "lif2": nir.LIF(tau=A(3.0), r=A(3.0), v_leak=A(0.0), v_threshold=A(1.0)),
             "output": nir.Output(output_type={"output": A([5])})}
    edges = [("input", "conv"), ("conv", "lif1"), ("lif1", "flat"), ("flat", "fc"), ("fc", "lif2"),
             ("lif2", "output")]
    q = quantized(read_spiking_graph(nir_graph(nodes, edges)), T=10)
    x = raster(3, 10, (1, 8, 8), seed=3)
    run = run_target(lava, q, spikes=x)
    assert run.info["connections"] == {"lif1_from_input": "Sparse", "lif2_from_lif1": "Dense"}
    assert_exact(run, q, x)
    assert all(la.spikes.sum() > 0 for la in run.layers)


def test_reset_timing_is_analytic(lava):
    """One spike emitted at step 1 through weight w, exponent e reaches the IF neuron at step 2:
    v = w << (6 + e), then holds (dv = 0).  The next sample (no input) starts from v = 0 again."""
    q = quantized(single(nir.IF(r=A([1.0]), v_threshold=A([50.0]))), T=4)
    edit(q, "pop_from_input", weight=[[100]], weight_exp=0)
    x = np.zeros((2, 4, 1), np.uint8)
    x[0, 0, 0] = 1
    run = run_target(lava, q, spikes=x)
    assert_exact(run, q, x)
    assert run.traces["pop"][0, :, 0].tolist() == [0] + [100 << 6] * 4
    assert run.traces["pop"][1].sum() == 0


@pytest.mark.parametrize("delay", [None, 3])
def test_cuba_lif_with_bias_and_if_readout(lava, delay):
    """(b) CubaLIF (slow current) with a neuron bias and an Affine bias (the always-on bias input),
    into an IF readout; with a Delay node the connection runs as DelayDense."""
    q = quantized(cuba_if_graph(delay), T=15)
    assert get_meta(q)["bias_source"] and np.any(q.nodes["cuba"].v_leak != 0)
    x = raster(6, 15, (6,), seed=5)
    run = run_target(lava, q, spikes=x)
    assert_exact(run, q, x)
    assert run.info["quench"] and run.info["rerun_samples"] == 0 and run.info["builds"] == 1
    assert run.info["connections"]["if_from_cuba"] == ("DelayDense" if delay else "Dense")
    assert run.info["connections"]["cuba_bias"] == "Dense"
    assert all(la.spikes.sum() > 0 for la in run.layers)


def test_unquiet_boundaries_are_detected_and_rerun(lava, tmp_path):
    """Without the quench, the biased CubaLIF keeps firing in the gap: what is in flight at a sample
    boundary reaches the next sample's step 1.  The check flags exactly those samples (their traces
    differ from fxsim's); the target reruns them alone and is exact again."""
    from snncompile.targets.lava.lif_runtime import run_lif_chunk

    q = quantized(cuba_if_graph(), T=15)
    x = raster(4, 15, (6,), seed=6)
    plan = lif_plan(q, quench=False)
    sched = lif_schedule(plan, 15)
    out = run_lif_chunk(plan, sched, x.reshape(4, 15, -1), str(tmp_path))
    dirty = lif_dirty_starts(plan, sched, out["s"])
    assert dirty.any()
    fx = simulate_fixed(read_qlif(q), x, record=True)
    T = sched["t_total"]
    same = [all(np.array_equal(v[k, :T], fx.traces[p["name"]][k]) for p, v in zip(plan["pops"], out["v"]))
            for k in range(4)]
    assert all(same[k] for k in range(4) if not dirty[k]) and not all(same)
    run = run_target(lava, q, spikes=x, quench=False)
    assert run.info["rerun_samples"] == int(dirty.sum()) and run.info["builds"] == 1 + int(dirty.sum())
    assert_exact(run, q, x)


def test_plain_lif_one_build_per_sample_gives_the_same_arrays(lava):
    """reset="rebuild": stock LIF (PyLifModelBitAcc, no reset), one network per sample, equals the
    back-to-back LIFReset run: PyLifResetModelBitAcc's step is LIF's plus the reset."""
    q = quantized(cuba_if_graph(), T=15)
    x = raster(3, 15, (6,), seed=9)
    a = run_target(lava, q, spikes=x)
    b = run_target(lava, q, spikes=x, reset="rebuild")
    assert b.info["builds"] == 3 and b.info["reset"] == "rebuild"
    assert_exact(b, q, x)
    for name in a.traces:
        np.testing.assert_array_equal(a.traces[name], b.traces[name])


def test_wraps_saturations_and_off_grid_weights_are_bit_exact(lava):
    """(c) Input weights of +-254 / 255 / odd values at exponent 7: u wraps (24 bits, single pass),
    v saturates, and Lava truncates the off-grid weights as fxsim's clip_truncate does."""
    q = quantized(norse_chain(seed=1))
    first = conn_from(q, "input")
    rng = np.random.default_rng(0)
    w = np.asarray(q.nodes[first].weight)
    edit(q, first, weight=rng.choice([-254, 254, 254, 255, -3, 7], size=w.shape), weight_exp=7)
    x = raster(5, 20, (8,), p=0.5, seed=3)
    fx = simulate_fixed(read_qlif(q), x)
    hidden = get_meta(q.nodes[first])["dst"]
    assert fx.wraps[hidden].sum() > 0 and fx.sats[hidden].sum() > 0
    run = run_target(lava, q, spikes=x)
    assert_exact(run, q, x)


@pytest.mark.parametrize("delay", [None, 2])
def test_precision_split_runs_two_dense_into_one_population(lava, delay):
    """Every connection split (quantize_lif split="all"): a residual Dense with a negative exponent
    beside each Dense, from the same source into the same population, including the recurrent one."""
    net = recurrent_graph(delay)
    q, table = quantize_lif(net, PROFILE, raster(40, 15, net.input_shape, seed=1), split="all")
    lo = [c["split"]["name"] for t in table for c in t["connections"] if "split" in c]
    assert {"lif_from_input_lo", "lif_from_lif_lo"} <= set(lo)
    x = raster(5, 15, (5,), seed=7)
    run = run_target(lava, q, spikes=x)
    assert_exact(run, q, x)
    assert run.info["connections"]["lif_from_lif_lo"] == ("DelayDense" if delay else "Dense")


@pytest.mark.parametrize("delay", [None, 2])
def test_recurrent_lif_with_li_readout(lava, delay):
    """(d) LIF -> Affine -> the same LIF (Dense, or DelayDense in the loop), read out by a
    non-spiking LI population: logits are the mean v times v_lsb, as simulate_fixed's scores."""
    q = quantized(recurrent_graph(delay), T=15)
    x = raster(5, 15, (5,), seed=7)
    run = run_target(lava, q, spikes=x)
    assert_exact(run, q, x)
    assert run.info["connections"]["lif_from_lif"] == ("DelayDense" if delay else "Dense")
    assert run.info["quench"]  # recurrence: quenched gap
    assert [la.name for la in run.layers] == ["lif"] and run.layers[0].spikes.sum() > 0
    assert run.raw_logits.dtype == np.int64 and run.traces["li"].any()


def test_monitor_recorder_agrees_with_file_recorder(lava):
    q = quantized(norse_chain(seed=2))
    x = raster(2, 20, (8,), seed=4)
    a = run_target(lava, q, spikes=x)
    b = run_target(lava, q, spikes=x, recorder="monitor")
    assert b.info["recorder"] == "monitor" and b.info["bit_exact_with_fxsim"]
    for name in a.traces:
        np.testing.assert_array_equal(a.traces[name], b.traces[name])


def test_exported_script_reproduces_the_spikes(lava, tmp_path):
    """(e) run_lava.py (lava-nc + numpy + scipy only) in a subprocess: every population's spikes and
    v at every step equal fxsim's."""
    from snncompile.targets.lava.export import export_lava

    q = quantized(cuba_if_graph(3), T=15)
    x = raster(3, 15, (6,), seed=8)
    folder = export_lava(q, tmp_path / "lava", spikes=x)
    assert_runtime_copied(folder)
    assert "DelayDense" in (folder / "snnrt/targets/lava/lif_runtime.py").read_text()
    assert "quantized LIF network" in (folder / "README.md").read_text()
    done = subprocess.run([sys.executable, str(folder / "run_lava.py")], capture_output=True, text=True,
                          timeout=300, cwd=tmp_path)
    assert done.returncode == 0, done.stderr[-3000:]
    assert "sample 2: decision" in done.stdout
    out = np.load(folder / "outputs.npz")
    fx = simulate_fixed(read_qlif(q), x, record=True)
    for name in fx.traces:
        np.testing.assert_array_equal(out[f"spikes_{name}"], fx.spikes[name], err_msg=name)
        np.testing.assert_array_equal(out[f"v_{name}"], fx.traces[name], err_msg=name)
    np.testing.assert_array_equal(out["scores"], fx.scores)
    np.testing.assert_array_equal(out["decisions"], fx.scores.argmax(1))
    export_lava(q, folder)  # again over the folder: replaced whole, no inputs.npz without spikes
    assert not (folder / "inputs.npz").exists() and (folder / "run_lava.py").exists()
    with pytest.raises(InvalidModel, match="spikes="):
        export_lava(q, folder, counts=np.zeros((1, 6)))


def test_compile_cli_runs_lava_on_a_norse_export(lava, tmp_path):
    import json

    from click.testing import CliRunner

    from snncompile.cli import main

    nt = pytest.importorskip("norse.torch")
    torch.manual_seed(0)
    p = nt.LIFBoxParameters(tau_mem_inv=torch.tensor(0.1), v_th=torch.tensor(0.5))
    model = nt.SequentialState(torch.nn.Linear(64, 16), nt.LIFBoxCell(p, dt=1.0), torch.nn.Linear(16, 10),
                               nt.LIFBoxCell(p, dt=1.0))
    with torch.no_grad():
        model[0].weight.mul_(6)
        model[2].weight.mul_(6)
    nir.write(tmp_path / "m.nir", repair_graph(nt.to_nir(model, torch.zeros(1, 64), dt=1.0)))
    res = CliRunner().invoke(main, ["compile", str(tmp_path / "m.nir"), "--dataset", "digits", "--samples", "12",
                                    "--lava-samples", "4", "--target", "fxsim", "--target", "lava",
                                    "--sim-steps", "10", "--out", str(tmp_path / "o"), "--quiet"])
    assert res.exit_code == 0, res.output
    rep = json.loads((tmp_path / "o" / "report.json").read_text())["targets"]["lava"]
    assert rep["bit_exact_with_fxsim"] is True and rep["first_mismatch"] is None and rep["samples"] == 4


# --- corners where Lava's integer types show (fixed.py models them too) --------------------------------


def test_saturated_non_spiking_readout_fires_as_in_lava(lava):
    """A non-spiking population is a Lava LIF with vth = 2**17 - 1, i.e. a threshold of
    (2**17 - 1) << 6 = 8388544, while v saturates at 2**23 - 1 = 8388607: once v passes the
    threshold it fires and resets, in Lava and in fxsim.  Here an I readout (du = 4095, dv = 0)
    gets a << 6 = 254 << 13 = 2080768 per step."""
    q = quantized(single(nir.I(r=A([1.0]))), T=6)
    edit(q, "pop_from_input", weight=[[254]], weight_exp=7)
    x = np.ones((1, 6, 1), np.uint8)
    run = run_target(lava, q, spikes=x)
    assert run.info["bit_exact_with_fxsim"], run.info["first_mismatch"]
    fx = simulate_fixed(read_qlif(q), x, record=True)
    assert fx.traces["pop"][0, :, 0].tolist() == [0, 2080768, 4161536, 6242304, 8323072, 0, 2080768]
    assert run.traces["pop"][0, :, 0].tolist() == fx.traces["pop"][0, :, 0].tolist()


def test_int32_overflow_of_large_activations_as_in_lava(lava):
    """Lava's PyLifModelBitAcc shifts the activation (a << 6) and adds it to u in int32: 1100
    simultaneous spikes through weight 254 at exponent 7 give a = 35763200 and a << 6 = 2288844800
    > 2**31, which wraps negative (v saturates at -(2**23 - 1)); fxsim does the same."""
    n = 1100
    q = quantized(single(nir.IF(r=A([1.0]), v_threshold=A([1.0])), n_in=n), T=2)
    edit(q, "pop_from_input", weight=np.full((1, n), 254), weight_exp=7)
    x = np.ones((1, 2, n), np.uint8)
    run = run_target(lava, q, spikes=x)
    assert run.info["bit_exact_with_fxsim"], run.info["first_mismatch"]
    assert run.traces["pop"][0, 1, 0] == -(2 ** 23 - 1)
