"""Spiking NIR graphs compiled for Xylo: the quantizer, fxsim's Xylo arithmetic, the xylosim target
(bit-exact with fxsim at every step), the resource check."""

from __future__ import annotations

import json

import nir
import numpy as np
import pytest
from click.testing import CliRunner

from snncompile.cli import main
from snncompile.errors import UnsupportedOperator
from snncompile.frontends.nir import read_spiking_graph
from snncompile.profile import load_profile
from snncompile.quantize.lif_xylo import quantize_xylo, xylo_spec
from snncompile.targets import run_target


def lif_chain(n_in=4, h=12, o=3, seed=0, kind="LIF"):
    rng = np.random.default_rng(seed)

    def neurons(n):
        if kind == "CubaLIF":
            return nir.CubaLIF(tau_syn=np.full(n, 4.0), tau_mem=np.full(n, 8.0), r=np.full(n, 8.0),
                               v_leak=np.zeros(n), v_threshold=np.ones(n), v_reset=np.zeros(n), w_in=np.full(n, 4.0))
        return nir.LIF(tau=np.full(n, 8.0), r=np.full(n, 8.0), v_leak=np.zeros(n), v_threshold=np.ones(n),
                       v_reset=np.zeros(n))

    nodes = {"input": nir.Input(input_type={"input": np.array([n_in])}),
             "fc1": nir.Affine(weight=rng.normal(0, 0.8, (h, n_in)), bias=np.zeros(h)), "lif1": neurons(h),
             "fc2": nir.Affine(weight=rng.normal(0, 0.6, (o, h)), bias=np.zeros(o)), "lif2": neurons(o),
             "output": nir.Output(output_type={"output": np.array([o])})}
    edges = [("input", "fc1"), ("fc1", "lif1"), ("lif1", "fc2"), ("fc2", "lif2"), ("lif2", "output")]
    return nir.NIRGraph(nodes=nodes, edges=edges, type_check=False)


@pytest.mark.parametrize("kind", ["LIF", "CubaLIF"])
def test_quantized_graph_holds_a_xylo_spec(kind):
    g = lif_chain(kind=kind)
    net = read_spiking_graph(g, 1.0)
    prof = load_profile("xylo-audio2")
    calib = (np.random.default_rng(1).random((40, 20, 4)) < 0.3).astype(np.uint8)
    q, table = quantize_xylo(net, prof, calib)
    spec = xylo_spec(q)
    assert spec["weights_in"].shape == (4, 12) and spec["weights_out"].shape == (12, 3)
    assert np.abs(spec["weights_in"]).max() <= 127 and 0 <= spec["weight_shift_in"] <= 7
    assert not spec["weights_rec"].any()  # a feed-forward chain: no recurrent weights
    assert set(spec["dash_mem"]) == {3}    # round(log2(tau / dt)) = round(log2(8)) = 3
    assert set(spec["dash_syn"]) == ({1} if kind == "LIF" else {2})
    assert (spec["threshold"] > 0).all() and table[0]["population"] == "lif1"


def test_fxsim_runs_the_xylo_arithmetic_and_matches_xylosim():
    pytest.importorskip("xylosim")
    g = lif_chain(seed=3)
    net = read_spiking_graph(g, 1.0)
    rng = np.random.default_rng(2)
    q, _ = quantize_xylo(net, load_profile("xylo-audio2"), (rng.random((40, 20, 4)) < 0.3).astype(np.uint8))
    x = (rng.random((25, 20, 4)) < 0.3).astype(np.uint8)
    fx = run_target("fxsim", q, spikes=x, record=True)
    xs = run_target("xylosim", q, spikes=x)
    assert xs.info["bit_exact_with_fxsim"], xs.info["first_mismatch"]
    np.testing.assert_array_equal(fx.decisions, xs.decisions)
    for name in fx.spikes:
        np.testing.assert_array_equal(fx.spikes[name], xs.spikes[name])
        np.testing.assert_array_equal(fx.traces[name], xs.traces[name])
    assert sum(la.spikes.sum() for la in fx.layers) > 0  # not vacuous
    assert fx.info["t_total"] == 21  # T_in + one step of delay for the hidden -> output connection


def test_cli_compiles_for_xylo_and_checks_its_pools(tmp_path):
    pytest.importorskip("xylosim")
    nir.write(tmp_path / "snn.nir", lif_chain(seed=5))
    out = tmp_path / "b"
    res = CliRunner().invoke(main, ["compile", str(tmp_path / "snn.nir"), "--dataset", "yinyang", "--profile",
                                    "xylo-audio2", "--target", "fxsim", "--target", "xylosim", "--samples", "40",
                                    "--sim-steps", "16", "--out", str(out), "--quiet"])
    assert res.exit_code == 0, res.output
    rep = json.loads((out / "report.json").read_text())
    xs = rep["targets"]["xylosim"]
    assert xs["bit_exact_with_fxsim"] and xs["samples"] == 40
    assert rep["targets"]["fxsim"]["mapping"]["inputs"] == 4 and rep["targets"]["fxsim"]["mapping"]["hidden"] == 12
    assert "quantization (Xylo LIF)" in (out / "report.md").read_text()
    # 64 digit pixels do not fit Xylo Audio 2's 16 input channels: named layer, resource, need, limit
    g = lif_chain(n_in=64, o=10, seed=1)
    nir.write(tmp_path / "digits.nir", g)
    res = CliRunner().invoke(main, ["compile", str(tmp_path / "digits.nir"), "--dataset", "digits", "--profile",
                                    "xylo-audio2", "--target", "fxsim", "--samples", "10", "--out",
                                    str(tmp_path / "c"), "--quiet"])
    assert res.exit_code != 0 and "input channels needs 64, limit is 16" in res.output
    assert not (tmp_path / "c").exists()


def test_xylo_refuses_what_it_cannot_map():
    g = lif_chain()
    g.nodes["skip"] = nir.Affine(weight=np.ones((3, 4)), bias=np.zeros(3))  # input straight to the readout
    g.edges += [("input", "skip"), ("skip", "lif2")]
    net = read_spiking_graph(g, 1.0)
    with pytest.raises(UnsupportedOperator, match="Xylo mapping"):
        quantize_xylo(net, load_profile("xylo-audio2"), np.zeros((2, 5, 4), np.uint8))


def test_emitted_folder_runs_without_snncompile(tmp_path):
    """--emit xylo: the folder runs with rockpool + xylosim alone (snncompile blocked in the subprocess)
    and reproduces the compile's fxsim run on its samples, every state."""
    import subprocess
    import sys

    pytest.importorskip("xylosim")
    nir.write(tmp_path / "snn.nir", lif_chain(seed=7, kind="CubaLIF"))
    out = tmp_path / "b"
    res = CliRunner().invoke(main, ["compile", str(tmp_path / "snn.nir"), "--dataset", "yinyang", "--profile",
                                    "xylo-audio2", "--target", "fxsim", "--samples", "12", "--sim-steps", "16",
                                    "--emit", "xylo", "--out", str(out), "--quiet"])
    assert res.exit_code == 0, res.output
    folder = out / "xylo"
    assert {"spec.npz", "spec.json", "inputs.npz", "run_xylo.py", "README.md", "snnrt"} <= {p.name for p in folder.iterdir()}
    code = ("import sys, runpy; sys.modules['snncompile'] = None; sys.argv = ['run_xylo.py']; "
            f"runpy.run_path({str(folder / 'run_xylo.py')!r}, run_name='__main__')")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300, cwd=tmp_path)
    assert done.returncode == 0, done.stderr[-2000:]
    got = np.load(folder / "outputs.npz")
    q = out / "model.q.nir"
    from snncompile.ir import read_nir

    x = np.load(folder / "inputs.npz")["spikes"]
    fx = run_target("fxsim", read_nir(q, type_check=False), spikes=x, record=True, t_total=x.shape[1])
    np.testing.assert_array_equal(got["decisions"], fx.decisions)
    np.testing.assert_array_equal(got["spikes_out"], fx.spikes["lif2"])
    np.testing.assert_array_equal(got["vmem_out"], fx.traces["lif2"])
    np.testing.assert_array_equal(got["spikes"], fx.spikes["lif1"])  # lif1 is the whole hidden pool here
    np.testing.assert_array_equal(got["vmem"], fx.traces["lif1"])
    assert got["spikes"].sum() > 0


def test_a_norse_export_compiles_for_xylo_bit_exact():
    """A foreign graph (norse's to_nir, repaired) quantized for Xylo: fxsim and XyloSim agree at every step."""
    nt = pytest.importorskip("norse.torch")
    pytest.importorskip("xylosim")
    import torch

    from snncompile.frontends.nir import repair_graph

    torch.manual_seed(0)
    p = nt.LIFBoxParameters(tau_mem_inv=torch.tensor(0.1), v_th=torch.tensor(0.5))
    model = nt.SequentialState(torch.nn.Linear(4, 24), nt.LIFBoxCell(p, dt=1.0), torch.nn.Linear(24, 3),
                               nt.LIFBoxCell(p, dt=1.0))
    with torch.no_grad():
        model[0].weight.mul_(4)
    g = repair_graph(nt.to_nir(model, torch.zeros(1, 4), dt=1.0))
    net = read_spiking_graph(g, 1.0)
    rng = np.random.default_rng(4)
    q, _ = quantize_xylo(net, load_profile("xylo-audio2"), (rng.random((60, 20, 4)) < 0.4).astype(np.uint8))
    x = (rng.random((30, 20, 4)) < 0.4).astype(np.uint8)
    run = run_target("xylosim", q, spikes=x)
    assert run.info["bit_exact_with_fxsim"], run.info["first_mismatch"]
    assert run.layers[0].spikes.sum() > 0
    ref = run_target("reference", g, spikes=x, dt=1.0)
    # the float reference and Xylo read the same rate code: their decisions mostly agree
    assert np.mean(ref.decisions == run.decisions) >= 0.5
