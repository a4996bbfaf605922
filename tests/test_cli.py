"""The command line, end to end through click's CliRunner, and its handling of bad input."""

from __future__ import annotations

import json

import numpy as np
import onnx
from click.testing import CliRunner
from conftest import without_timings
from onnx import TensorProto, helper

from snncompile.cli import main


def _ok(res):
    assert res.exit_code == 0, res.output + repr(res.exception)
    return res


def _fails(res, *needles):
    assert res.exit_code != 0
    assert "Traceback" not in res.output
    err_lines = [ln for ln in res.output.splitlines() if ln.startswith("Error")]
    assert len(err_lines) == 1, res.output
    for n in needles:
        assert n in err_lines[0], res.output


def test_compile_reference_and_fxsim_writes_report(digits_onnx, tmp_path):
    out = tmp_path / "build"
    res = _ok(CliRunner().invoke(main, ["compile", str(digits_onnx), "--dataset", "digits", "--profile", "loihi2",
                                        "--target", "reference", "--target", "fxsim", "--steps", "16",
                                        "--out", str(out), "--quiet"]))
    assert "reference" in res.output and "fxsim" in res.output
    rep = json.loads((out / "report.json").read_text())
    assert rep["dataset"]["name"] == "digits" and rep["dataset"]["split"] == "test" and rep["dataset"]["samples"] == 360
    assert 0 <= rep["ann"]["accuracy"] <= 1
    ref = rep["reference"]
    assert ref["agreement_with_ann"] == 1.0 and ref["accuracy"] == rep["ann"]["accuracy"]
    assert ref["max_activation_error"] <= 1e-9
    assert {"name", "neurons", "spikes"} <= set(ref["layers"][0])
    fx = rep["targets"]["fxsim"]
    assert {"accuracy", "agreement_with_ann", "agreement_with_reference", "spikes_per_neuron", "layers", "steps",
            "quantization", "mapping", "energy"} <= set(fx)
    assert fx["energy"]["label"] == "estimate"
    for name in ("model.nir", "model.q.nir", "report.md", "spikes_per_layer.png"):
        assert (out / name).is_file()
    assert "| reference |" in (out / "report.md").read_text()


def test_samples_limits_evaluation_and_seed_is_deterministic(digits_onnx, tmp_path):
    args = ["compile", str(digits_onnx), "--dataset", "digits", "--target", "fxsim", "--samples", "50", "--quiet"]
    _ok(CliRunner().invoke(main, args + ["--out", str(tmp_path / "a")]))
    _ok(CliRunner().invoke(main, args + ["--out", str(tmp_path / "b")]))
    a = json.loads((tmp_path / "a" / "report.json").read_text())
    b = json.loads((tmp_path / "b" / "report.json").read_text())
    assert a["dataset"]["samples"] == 50 and without_timings(a) == without_timings(b)
    assert a["targets"]["fxsim"]["run_seconds"] > 0 and a["targets"]["fxsim"]["samples"] == 50


def test_sweep_writes_table_and_plot(digits_onnx, tmp_path):
    out = tmp_path / "sweep"
    res = _ok(CliRunner().invoke(main, ["compile", str(digits_onnx), "--dataset", "digits", "--target", "fxsim",
                                        "--sweep-bits", "3,8", "--sweep-steps", "4,16", "--out", str(out), "--quiet"]))
    assert "bits \\ steps" in res.output
    rep = json.loads((out / "report.json").read_text())
    assert len(rep["sweep"]["results"]) == 4 and (out / "sweep_heatmap.png").is_file()


def test_profiles_and_inspect(digits_onnx, tmp_path):
    res = _ok(CliRunner().invoke(main, ["profiles"]))
    assert "loihi2" in res.output and "xylo-audio2" in res.output
    out = tmp_path / "b"
    _ok(CliRunner().invoke(main, ["compile", str(digits_onnx), "--dataset", "digits", "--target", "fxsim",
                                  "--samples", "5", "--out", str(out), "--quiet"]))
    res = _ok(CliRunner().invoke(main, ["inspect", str(out / "model.q.nir")]))
    assert "ttfs1" in res.output and "quantized=True" in res.output
    info = json.loads(_ok(CliRunner().invoke(main, ["inspect", str(out / "model.q.nir"), "--json"])).output)
    assert info["snncompile"]["steps"] == 16


def test_truncated_onnx(digits_onnx, tmp_path):
    bad = tmp_path / "bad.onnx"
    data = digits_onnx.read_bytes()
    bad.write_bytes(data[: len(data) // 2])
    out = tmp_path / "out"
    _fails(CliRunner().invoke(main, ["compile", str(bad), "--dataset", "digits", "--out", str(out)]), "bad.onnx")
    assert not out.exists()


def test_unsupported_operator(tmp_path):
    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 64])
    y = helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 10])
    w = helper.make_tensor("w", TensorProto.FLOAT, [64, 10], np.zeros(640, np.float32))
    nodes = [helper.make_node("MatMul", ["x", "w"], ["h"], name="mm"),
             helper.make_node("Sigmoid", ["h"], ["y"], name="squash")]
    model = helper.make_model(helper.make_graph(nodes, "g", [x], [y], [w]))
    path = tmp_path / "sig.onnx"
    onnx.save(model, path)
    out = tmp_path / "out"
    _fails(CliRunner().invoke(main, ["compile", str(path), "--dataset", "digits", "--out", str(out)]),
           "Sigmoid", "squash")
    assert not out.exists()


def test_input_size_mismatch(digits_onnx, tmp_path):
    out = tmp_path / "out"
    _fails(CliRunner().invoke(main, ["compile", str(digits_onnx), "--dataset", "mnist5k", "--out", str(out)]),
           "784", "64")
    assert not out.exists()


def test_unknown_dataset(digits_onnx, tmp_path):
    out = tmp_path / "out"
    _fails(CliRunner().invoke(main, ["compile", str(digits_onnx), "--dataset", "cifar", "--out", str(out)]),
           "cifar", "mnist5k")
    assert not out.exists()


def test_profile_violation_is_a_clean_error(digits_onnx, tmp_path):
    out = tmp_path / "out"
    _fails(CliRunner().invoke(main, ["compile", str(digits_onnx), "--dataset", "digits", "--target", "fxsim",
                                     "--profile", "xylo-audio2", "--out", str(out)]), "xylo-audio2")
    assert not out.exists()


def test_bad_arch_spec(tmp_path):
    _fails(CliRunner().invoke(main, ["train", "--dataset", "digits", "--arch", "64-x-10", "-o",
                                     str(tmp_path / "m.onnx")]), "x")
