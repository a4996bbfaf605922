"""quantize_lif's precision split: a residual connection per split connection (quantize/lif.py)."""

from __future__ import annotations

import nir
import numpy as np
import pytest
from conftest import digits_lif_chain

from snncompile.errors import InvalidModel
from snncompile.frontends.nir import read_spiking_graph
from snncompile.ir import get_meta, set_meta
from snncompile.lif.fixed import read_qlif, simulate_fixed
from snncompile.lif.reference import simulate
from snncompile.profile import load_profile
from snncompile.quantize.lif import quantize_lif

A = np.array
PROFILE = load_profile("loihi2")


def wide_graph(seed=0, meta=None, thr=4.0):
    """input(4) -> Affine (one large weight per row, the rest small) -> IF(3) -> Affine -> IF(2)."""
    rng = np.random.default_rng(seed)
    w1 = rng.normal(0.0, 0.3, (3, 4))
    w1[:, 0] = 9.0
    nodes = {"input": nir.Input(input_type={"input": A([4])}),
             "fc1": nir.Affine(weight=w1, bias=np.zeros(3)),
             "if1": nir.IF(r=A([1.0] * 3), v_threshold=A([thr] * 3)),
             "fc2": nir.Affine(weight=rng.normal(1.0, 0.5, (2, 3)), bias=np.zeros(2)),
             "if2": nir.IF(r=A([1.0] * 2), v_threshold=A([2.0] * 2)),
             "output": nir.Output(output_type={"output": A([2])})}
    g = nir.NIRGraph(nodes=nodes, edges=[("input", "fc1"), ("fc1", "if1"), ("if1", "fc2"), ("fc2", "if2"),
                                         ("if2", "output")], type_check=False)
    if meta:
        set_meta(g, meta)
    return read_spiking_graph(g)


def raster(n, T, p=0.3, seed=1):
    return (np.random.default_rng(seed).random((n, T, 4)) < p).astype(np.uint8)


def v_error(net, q, thr):
    """Largest |v| difference (threshold units) between fxsim and the float weights on if1 after one
    input spike (IF keeps v; below threshold; every v LSB is lambda threshold units)."""
    x = np.zeros((4, 4, 4), np.uint8)
    x[np.arange(4), 0, np.arange(4)] = 1            # sample k: input k spikes once
    fx = simulate_fixed(read_qlif(q), x, record=True)
    v_fx = fx.traces["if1"][:, -1] * get_meta(q.nodes["if1"])["v_lsb"]
    v_ref = np.asarray(net.graph.nodes["fc1"].weight).T / thr
    assert np.all(np.abs(v_ref) < 1)
    return float(np.abs(v_fx - v_ref).max())


def test_split_resolves_the_residual_to_one_activation_unit():
    net = wide_graph()
    plain, t_plain = quantize_lif(net, PROFILE, raster(20, 10))
    split, t_split = quantize_lif(net, PROFILE, raster(20, 10), split=["if1_from_input"])
    row = t_split[0]["connections"][0]
    assert "split" not in t_plain[0]["connections"][0] and row["split"]["name"] == "if1_from_input_lo"
    lo = split.nodes["if1_from_input_lo"]
    e_lo = row["split"]["weight_exp"]
    assert e_lo < 0 and np.all(np.asarray(lo.weight) % max(2, 2 ** -e_lo) == 0)  # exact floor shift
    assert row["max_rounding_error"] <= row["split"]["resolution"] / 2 * (1 + 1e-9)
    assert row["max_rounding_error"] < t_plain[0]["connections"][0]["max_rounding_error"] / 8
    # and fxsim's potentials show it: the error of v after one input spike shrinks accordingly
    net = wide_graph(thr=40.0)
    plain, _ = quantize_lif(net, PROFILE, raster(20, 10))
    split, _ = quantize_lif(net, PROFILE, raster(20, 10), split=["if1_from_input"])
    assert v_error(net, split, 40.0) < v_error(net, plain, 40.0) / 8
    assert get_meta(split)["weight_split"] == ["if1_from_input"]


def test_split_from_metadata_all_and_unknown_names():
    net = wide_graph(meta={"weight_split": "all"})
    q, table = quantize_lif(net, PROFILE, raster(20, 10))
    assert {c["name"] for t in table for c in t["connections"] if "split" in c} <= {"if1_from_input", "if2_from_if1"}
    assert "if1_from_input_lo" in get_meta(q)["connections"]
    x = raster(30, 12, 0.5, seed=2)
    fx, ref = simulate_fixed(read_qlif(q), x), simulate(net, x)
    assert np.mean(fx.scores.argmax(1) == ref.scores.argmax(1)) >= 0.9
    with pytest.raises(InvalidModel, match="no connection if9_from_input.*if1_from_input"):
        quantize_lif(net, PROFILE, raster(20, 10), split=["if9_from_input"])


def _digits_graph(tmp_path, meta=None):
    """conftest's digits LIF chain, with ``meta``, written to m.nir."""
    from snncompile.ir import write_nir

    g = digits_lif_chain()
    if meta is not None:
        set_meta(g, meta)
    write_nir(g, tmp_path / "m.nir")
    return str(tmp_path / "m.nir")


def _compile(args):
    from click.testing import CliRunner

    from snncompile.cli import main

    return CliRunner().invoke(main, ["compile", *args, "--dataset", "digits", "--samples", "40", "--quiet"])


def test_cli_split_weights_option_and_metadata(tmp_path):
    import json

    from snncompile.ir import read_nir

    src = _digits_graph(tmp_path)
    res = _compile([src, "--target", "fxsim", "--split-weights", "lif0_from_input", "--out", str(tmp_path / "a")])
    assert res.exit_code == 0, res.output
    q = read_nir(tmp_path / "a" / "model.q.nir", type_check=False)
    assert "lif0_from_input_lo" in get_meta(q)["connections"]
    rep = json.loads((tmp_path / "a" / "report.json").read_text())
    assert rep["targets"]["fxsim"]["accuracy"] is not None
    assert "lif0_from_input: " in (tmp_path / "a" / "report.md").read_text() and \
        "(split)" in (tmp_path / "a" / "report.md").read_text()
    res = _compile([src, "--target", "fxsim", "--split-weights", "lif9_from_input", "--out", str(tmp_path / "b")])
    assert res.exit_code != 0 and "lif9_from_input" in res.output and "lif0_from_input" in res.output
    assert "Traceback" not in res.output and not (tmp_path / "b").exists()
    bad = _digits_graph(tmp_path, {"weight_split": 5})
    res = _compile([bad, "--target", "fxsim", "--out", str(tmp_path / "c")])
    assert res.exit_code != 0 and "weight_split" in res.output and "Traceback" not in res.output
