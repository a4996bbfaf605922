"""lava-dl netx (Loihi 2 deployment format): --emit netx, the netx target (lava-dl's own loader on
Lava, bit-exact with fxsim), and the .net frontend (SLAYER exports).  Tests that run Lava are
marked slow; lava-dl is optional (importorskip)."""

from __future__ import annotations

import json

import h5py
import nir
import numpy as np
import pytest
from click.testing import CliRunner
from conftest import digits_lif_chain

from snncompile.cli import main
from snncompile.errors import InvalidModel, UnsupportedOperator
from snncompile.frontends.netx import read_netx
from snncompile.frontends.nir import read_spiking_graph
from snncompile.ir import get_meta, set_meta
from snncompile.lif.fixed import read_qlif, simulate_fixed
from snncompile.profile import load_profile
from snncompile.quantize.lif import quantize_lif
from snncompile.targets import run_target
from snncompile.targets.base import get_emitter, get_target
from snncompile.targets.netx.write import NETX_PROFILE, netx_optimize, write_netx

A = np.array


@pytest.fixture(scope="module")
def netx():
    pytest.importorskip("lava")
    from snncompile.targets.netx.compat import netx_available, require_netx

    if not netx_available():
        pytest.skip("lava-dl is not installed")
    return require_netx()


def raster(n, T, shape, p=0.4, seed=0):
    return (np.random.default_rng(seed).random((n, T, *shape)) < p).astype(np.uint8)


def chain(sizes=(10, 16, 12, 4), seed=0, mean=0.3, bias=False, kinds=("CubaLIF", "LIF")):
    """input -> (Affine -> CubaLIF / LIF)* : an eRBP-like feed-forward LIF chain with random weights."""
    rng = np.random.default_rng(seed)
    nodes, edges, prev = {"input": nir.Input(input_type={"input": A([sizes[0]])})}, [], "input"
    for i, (a, b) in enumerate(zip(sizes[:-1], sizes[1:])):
        nodes[f"fc{i}"] = nir.Affine(weight=rng.normal(mean, 1.0, (b, a)),
                                     bias=rng.normal(0, 0.3, b) if bias else np.zeros(b))
        if kinds[i % len(kinds)] == "CubaLIF":
            nodes[f"p{i}"] = nir.CubaLIF(tau_syn=A([3.0] * b), tau_mem=A([6.0] * b), r=A([6.0] * b),
                                         v_leak=A([0.0] * b), v_threshold=A([1.0] * b), w_in=A([3.0] * b))
        else:
            nodes[f"p{i}"] = nir.LIF(tau=A([4.0] * b), r=A([4.0] * b), v_leak=A([0.0] * b), v_threshold=A([1.0] * b))
        edges += [(prev, f"fc{i}"), (f"fc{i}", f"p{i}")]
        prev = f"p{i}"
    nodes["output"] = nir.Output(output_type={"output": A([sizes[-1]])})
    edges.append((prev, "output"))
    return read_spiking_graph(nir.NIRGraph(nodes=nodes, edges=edges, type_check=False))


def quantized(net, profile=NETX_PROFILE, T=20, seed=1):
    q, _ = quantize_lif(net, load_profile(profile), raster(40, T, net.input_shape, seed=seed))
    return q


def same_fxsim(g1, g2, spikes):
    a = simulate_fixed(read_qlif(g1), spikes, record=True)
    b = simulate_fixed(read_qlif(g2), spikes, record=True)
    assert set(a.traces) == set(b.traces)
    for k in a.traces:
        np.testing.assert_array_equal(a.traces[k], b.traces[k], err_msg=k)
        np.testing.assert_array_equal(a.spikes[k], b.spikes[k], err_msg=k)
    np.testing.assert_array_equal(a.scores, b.scores)
    return a


# --- no Lava needed ----------------------------------------------------------------------------------

def test_written_file_has_netx_layout_and_reads_back_to_the_same_integer_network(tmp_path):
    q = quantized(chain())
    path = write_netx(q, tmp_path / "m.net")
    qn = read_qlif(q)
    with h5py.File(path) as f:
        assert sorted(f["layer"].keys()) == ["0", "1", "2"]
        for i, name in enumerate(get_meta(q)["populations"]):
            g, p = f["layer"][str(i)], qn.pops[name]
            assert g["type"][()].tolist() == [b"dense"]
            assert g["shape"][()].tolist() == [p.neurons]
            n = g["neuron"]
            assert n["type"][()] == b"CUBA"
            assert int(n["iDecay"][()]) == p.params.du + 1        # netx: du = iDecay - 1
            assert int(n["vDecay"][()]) == p.params.dv            # netx: dv = vDecay
            assert int(n["vThMant"][()]) == p.params.vth_mant     # netx: vth = vThMant
            conn = next(c for c in qn.conns if c.dst == name)
            assert conn.exp == 0
            np.testing.assert_array_equal(g["weight"][()], conn.weight.numpy().T)
            assert "bias" not in g and "delay" not in g
    back = read_netx(path)
    assert get_meta(back)["populations"] == get_meta(q)["populations"]
    same_fxsim(q, back, raster(6, 20, (10,), seed=5))


def test_netx_weight_replay_is_lossless_on_its_range():
    rng = np.random.default_rng(0)
    for lo, hi in ((-256, 255), (0, 256), (-256, 1), (-3, 4), (-128, 128)):
        w = rng.integers(lo, hi, (7, 5))
        w[0, 0] = hi - 1 if hi - 1 != 0 else lo
        w2, nbits, wexp, mode = netx_optimize(w)
        assert wexp <= 0 and np.array_equal(w2 >> -wexp, w)
    with pytest.raises(InvalidModel, match="all weights are 0"):
        netx_optimize(np.zeros((2, 2)))
    with pytest.raises(InvalidModel, match=r"\[-256, 254\]"):
        netx_optimize(A([[300, -1]]))


def test_netx_weight_replay_matches_lava_dl(netx):
    from lava.lib.dl.netx.utils import optimize_weight_bits

    rng = np.random.default_rng(1)
    for lo, hi, step in ((-256, 255, 2), (0, 256, 1), (-256, 1, 4), (-3, 4, 1), (-40, 40, 8)):
        w = rng.integers(lo // step, hi // step, (6, 9)) * step
        w[0, 0] = (hi - 1) // step * step or lo
        ours = netx_optimize(w)
        theirs = optimize_weight_bits(w)
        np.testing.assert_array_equal(ours[0], theirs[0])
        assert ours[1:3] == theirs[1:3]


def test_what_netx_cannot_express_is_refused_by_name(tmp_path):
    # loihi2's quantizer picks weight_exp > 0: netx stores no exponent
    with pytest.raises(InvalidModel, match=r"connection 'p0_from_input'.*netx"):
        write_netx(quantized(chain(), "loihi2"), tmp_path / "a.net")
    # Affine biases come from the always-on bias input
    with pytest.raises(InvalidModel, match="bias input"):
        write_netx(quantized(chain(bias=True)), tmp_path / "b.net")
    # a skip connection: the input feeds two populations
    net = chain()
    q = quantized(net)
    m = get_meta(q.nodes["p1_from_p0"])
    m["src"] = "input"
    set_meta(q.nodes["p1_from_p0"], m)
    with pytest.raises(InvalidModel, match="feed-forward chain"):
        write_netx(q, tmp_path / "c.net")
    q = quantized(chain())
    m = get_meta(q.nodes["p1_from_p0"])
    m["delay"] = 3
    set_meta(q.nodes["p1_from_p0"], m)
    with pytest.raises(InvalidModel, match="'p1_from_p0': delay 3"):
        write_netx(q, tmp_path / "d.net")
    q = quantized(chain())
    q.nodes["p1"].v_leak = np.full(12, 65.0)
    with pytest.raises(InvalidModel, match="population 'p1': bias 65 is not a multiple of 64"):
        write_netx(q, tmp_path / "e.net")


def test_ttfs_is_refused_with_the_way_to_lava(tmp_path):
    with pytest.raises(InvalidModel, match="--emit lava"):
        get_emitter("netx")(None, tmp_path / "x", "ttfs", None)
    with pytest.raises(InvalidModel, match="--target lava"):
        get_target("netx").require("ttfs", "quantized")


def test_missing_lava_dl_names_the_install_command(monkeypatch):
    pytest.importorskip("lava")
    import sys

    from snncompile.errors import TargetUnavailable
    from snncompile.targets.netx.compat import require_netx

    monkeypatch.setitem(sys.modules, "lava.lib.dl.netx", None)  # import of it raises ImportError
    with pytest.raises(TargetUnavailable, match=r"lava-dl==0\.6\.0"):
        require_netx()


def _layer(f, i, kind=b"dense", n=3, n_in=4, neuron=b"CUBA"):
    g = f.create_group(f"layer/{i}")
    g.create_dataset("type", data=np.array([kind], dtype="S10"))
    g.create_dataset("shape", data=A([n]))
    g.create_dataset("weight", data=np.full((n, n_in), 4.0, np.float32))
    ng = g.create_group("neuron")
    ng.create_dataset("type", data=neuron)
    for key, val in (("iDecay", 1024), ("vDecay", 128), ("vThMant", 80), ("refDelay", 1)):
        ng.create_dataset(key, data=val)
    return g


@pytest.mark.parametrize("kind,neuron,match", [
    (b"conv", b"CUBA", "'conv' at node 'bad.net layer 1'"),
    (b"pool", b"CUBA", "'pool'"),
    (b"dense_rec", b"CUBA", "'dense_rec'"),
    (b"dense", b"SDNN", "'SDNN neuron'"),
])
def test_reader_names_unsupported_layers(tmp_path, kind, neuron, match):
    path = tmp_path / "bad.net"
    with h5py.File(path, "w") as f:
        _layer(f, 0)
        _layer(f, 1, kind, n_in=3, neuron=neuron)
    with pytest.raises(UnsupportedOperator, match=match):
        read_netx(path)


def test_reader_maps_netx_parameters(tmp_path):
    path = tmp_path / "ok.net"
    with h5py.File(path, "w") as f:
        g = _layer(f, 0)
        g.create_dataset("bias", data=A([1.0, -2.0, 0.0]))
        _layer(f, 1, n=2, n_in=3)
    q = read_netx(path)
    qn = read_qlif(q)
    p = qn.pops["layer0"]
    assert (p.params.du, p.params.dv, p.params.vth_mant) == (1023, 128, 80)
    np.testing.assert_array_equal(p.bias, [64, -128, 0])           # bias_exp = 6
    assert get_meta(q)["weight_bits"] == 8 and all(c.exp == 0 and c.delay == 1 for c in qn.conns)
    with pytest.raises(InvalidModel, match="not found"):
        read_netx(tmp_path / "missing.net")


def test_emit_netx_through_the_cli_loads_in_netx(tmp_path, netx):
    src = tmp_path / "lif.nir"
    nir.write(src, digits_lif_chain())
    out = tmp_path / "out"
    res = CliRunner().invoke(main, ["compile", str(src), "--dataset", "digits", "--target", "fxsim", "--profile",
                                    str(NETX_PROFILE), "--samples", "5", "--emit", "netx", "--seed", "0", "--quiet",
                                    "--out", str(out)])
    assert res.exit_code == 0, res.output
    assert (out / "netx" / "README.md").is_file() and (out / "netx" / "inputs.npz").is_file()
    net = netx.hdf5.Network(net_config=str(out / "netx" / "model.net"))
    assert len(net) == 2 and net.inp.shape == (64,) and net.out.shape == (10,)
    # loihi2 (weight_exp > 0) cannot be written: a clear error naming the connection
    res = CliRunner().invoke(main, ["compile", str(src), "--dataset", "digits", "--target", "fxsim", "--samples", "5",
                                    "--emit", "netx", "--seed", "0", "--quiet", "--out", str(tmp_path / "o2")])
    assert res.exit_code != 0 and "connection" in res.output and "weight_exp" in res.output


# --- Lava runs (slow) --------------------------------------------------------------------------------

@pytest.mark.slow
def test_netx_target_is_bit_exact_with_fxsim_on_24_samples(netx):
    q = quantized(chain())
    spikes = raster(24, 20, (10,), seed=7)
    run = run_target("netx", q, spikes=spikes)
    assert run.info["bit_exact_with_fxsim"], run.info["first_mismatch"]
    assert run.samples == 24 and run.info["builds"] == 1 and run.info["t_total"] == 23
    fx = simulate_fixed(read_qlif(q), spikes, record=True)
    for name, tr in fx.traces.items():
        np.testing.assert_array_equal(run.traces[name], tr, err_msg=name)
    assert sum(int(s.sum()) for s in run.spikes.values()) > 100  # the net is active: the comparison means something
    np.testing.assert_array_equal(run.logits, fx.scores)
    # one fresh network per sample gives the same rasters (the paused reset is exact)
    again = run_target("netx", q, spikes=spikes[:3], reset="rebuild")
    assert again.info["builds"] == 3 and again.info["bit_exact_with_fxsim"]
    for name in run.traces:
        np.testing.assert_array_equal(again.traces[name], run.traces[name][:3], err_msg=name)


@pytest.mark.slow
def test_a_broken_fxsim_agreement_is_reported(netx, monkeypatch):
    """The comparison can fail: change the integers netx loads for p1 and the first mismatch names p1."""
    import snncompile.targets.netx.target as tgt

    q = quantized(chain())
    spikes = raster(2, 20, (10,), seed=7)
    real = tgt.write_netx

    def tampered(graph, path):
        real(graph, path)
        with h5py.File(path, "r+") as f:
            f["layer/1/weight"][...] = f["layer/1/weight"][()] // 4 * 2  # p1's weights halved (rounded down)
        return path

    monkeypatch.setattr(tgt, "write_netx", tampered)
    run = run_target("netx", q, spikes=spikes)
    assert not run.info["bit_exact_with_fxsim"]
    assert run.info["first_mismatch"]["layer"] == "p1"


@pytest.mark.slow
def test_one_step_of_delay_per_layer(netx):
    """IF chain with weights far above threshold: one input spike at step 1 makes layer i fire first
    at step 2 + i in netx (and in fxsim)."""
    sizes = (3, 4, 4, 2)
    nodes, edges, prev = {"input": nir.Input(input_type={"input": A([3])})}, [], "input"
    for i, (a, b) in enumerate(zip(sizes[:-1], sizes[1:])):
        nodes[f"fc{i}"] = nir.Affine(weight=np.full((b, a), 3.0), bias=np.zeros(b))
        nodes[f"p{i}"] = nir.IF(r=A([1.0] * b), v_threshold=A([1.0] * b))
        edges += [(prev, f"fc{i}"), (f"fc{i}", f"p{i}")]
        prev = f"p{i}"
    nodes["output"] = nir.Output(output_type={"output": A([2])})
    edges.append((prev, "output"))
    q = quantized(read_spiking_graph(nir.NIRGraph(nodes=nodes, edges=edges, type_check=False)), T=4)
    spikes = np.zeros((1, 4, 3), np.uint8)
    spikes[0, 0, 0] = 1
    run = run_target("netx", q, spikes=spikes)
    assert run.info["bit_exact_with_fxsim"], run.info["first_mismatch"]
    assert [int(la.times[0].min()) for la in run.layers] == [2, 3, 4]


@pytest.mark.slow
def test_slayer_export_compiles_and_runs_bit_exact(tmp_path, netx):
    from snncompile.targets.netx.compat import export_slayer_dense

    path = export_slayer_dense(tmp_path / "slayer.net", (64, 32, 10), seed=0, steps=16, batch=2)
    q = read_netx(path)
    qn = read_qlif(q)
    assert [(p.params.du, p.params.dv, p.params.vth_mant) for p in qn.pops.values()] == [(1023, 123, 64)] * 2
    out = tmp_path / "out"
    res = CliRunner().invoke(main, ["compile", str(path), "--dataset", "digits", "--target", "fxsim", "--target",
                                    "netx", "--samples", "20", "--sim-steps", "16", "--seed", "0", "--quiet",
                                    "--out", str(out)])
    assert res.exit_code == 0, res.output
    rep = json.loads((out / "report.json").read_text())
    netx_rep = rep["targets"]["netx"]
    assert netx_rep["bit_exact_with_fxsim"] is True and netx_rep["samples"] == 20
    assert rep["targets"]["fxsim"]["samples"] == 20
    assert (out / "model.q.nir").is_file() and not (out / "model.nir").exists()
    res = CliRunner().invoke(main, ["inspect", str(path)])
    assert res.exit_code == 0 and "layer0" in res.output


@pytest.mark.slow
def test_hand_written_file_with_bias_and_holding_current_is_bit_exact(tmp_path, netx):
    """iDecay 0 (du = -1: u holds exactly), per-neuron biases (bias_exp 6), odd weights (9-bit graph)."""
    rng = np.random.default_rng(3)
    path = tmp_path / "hand.net"
    with h5py.File(path, "w") as f:
        g = _layer(f, 0, n=6, n_in=5)
        g["weight"][...] = rng.integers(-40, 60, (6, 5)).astype(np.float32)
        g["neuron/iDecay"][()] = 0
        g.create_dataset("bias", data=A([3.0, -2.0, 0.0, 5.0, 1.0, -1.0]))
        g = _layer(f, 1, n=3, n_in=6)
        g["weight"][...] = rng.integers(-100, 120, (3, 6)).astype(np.float32)
    q = read_netx(path)
    assert get_meta(q)["weight_bits"] == 9 and read_qlif(q).pops["layer0"].params.du == -1
    spikes = raster(4, 12, (5,), p=0.3, seed=2)
    run = run_target("netx", q, spikes=spikes)
    assert run.info["bit_exact_with_fxsim"], run.info["first_mismatch"]
    assert int(run.spikes["layer0"].sum()) > 0
