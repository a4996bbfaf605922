"""The driver: passes per family, options a family has no use for, the target interface as the
driver uses it (no name branching: a target registered at run time just works)."""

from __future__ import annotations

import nir
import numpy as np
import pytest
from conftest import mlp

from snncompile.errors import InvalidModel
from snncompile.pipeline import PASSES, CompileOptions, compile_model
from snncompile.targets.base import REGISTRY, Run, Target, register


def lif_graph(n_in=64, h=16, o=10, seed=0):
    rng = np.random.default_rng(seed)
    nodes = {"input": nir.Input(input_type={"input": np.array([n_in])}),
             "fc1": nir.Affine(weight=rng.normal(0, 0.5, (h, n_in)), bias=np.zeros(h)),
             "lif1": nir.LIF(tau=np.full(h, 8.0), r=np.full(h, 8.0), v_leak=np.zeros(h), v_threshold=np.ones(h),
                             v_reset=np.zeros(h)),
             "fc2": nir.Affine(weight=rng.normal(0, 0.5, (o, h)), bias=np.zeros(o)),
             "lif2": nir.LIF(tau=np.full(o, 8.0), r=np.full(o, 8.0), v_leak=np.zeros(o), v_threshold=np.ones(o),
                             v_reset=np.zeros(o)),
             "output": nir.Output(output_type={"output": np.array([o])})}
    edges = [("input", "fc1"), ("fc1", "lif1"), ("lif1", "fc2"), ("fc2", "lif2"), ("lif2", "output")]
    return nir.NIRGraph(nodes=nodes, edges=edges, type_check=False)


def test_passes_are_named_per_family():
    for fam in ("ttfs", "lif"):
        names = [n for n, _ in PASSES[fam]]
        assert names[:2] == ["options", "convert"] and "quantize" in names and "run" in names
        assert names.index("encode") < names.index("run") < names.index("validate")


@pytest.mark.parametrize("opt, value", [("steps", 8), ("zeta", 0.3), ("weight_scale", "mse"), ("sweep_bits", (4,))])
def test_lif_graphs_reject_ttfs_options(tmp_path, opt, value):
    nir.write(tmp_path / "snn.nir", lif_graph())
    opts = CompileOptions(dataset="digits", targets=("reference",), samples=5, progress=False, **{opt: value})
    with pytest.raises(InvalidModel, match="TTFS"):
        compile_model(tmp_path / "snn.nir", opts)


@pytest.mark.parametrize("opt, value", [("encoding", "rate"), ("sim_steps", 10)])
def test_ttfs_networks_reject_lif_options(opt, value):
    model = mlp((64, 16, 10))
    opts = CompileOptions(dataset="digits", targets=("reference",), samples=5, progress=False, **{opt: value})
    with pytest.raises(InvalidModel, match="LIF"):
        compile_model(model, opts)


def test_bits_without_a_quantized_target_is_an_error():
    opts = CompileOptions(dataset="digits", targets=("reference",), samples=5, bits=4, progress=False)
    with pytest.raises(InvalidModel, match="--bits"):
        compile_model(mlp((64, 16, 10)), opts)


def test_a_registered_target_runs_without_driver_changes(monkeypatch):
    """A new target: one class plus one register line; the driver hands it the graph kind it declares."""
    seen = {}

    class Echo(Target):
        name = "echo"
        families = ("ttfs",)
        kinds = ("quantized",)

        def run(self, request):
            seen["family"], seen["n"] = request.family, len(request.evaluated)
            seen["quantized"] = bool(request.graph.metadata)
            k = len(request.evaluated)
            fired = (np.asarray(request.evaluated.spikes).reshape(k, -1) > 0).sum(1)
            return Run(self.name, np.zeros((k, 10)), np.zeros(k, int), [], fired, run_seconds=0.5)

    import sys
    import types

    mod = types.ModuleType("echo_target_for_tests")
    mod.Echo = Echo
    monkeypatch.setitem(sys.modules, "echo_target_for_tests", mod)
    monkeypatch.setitem(REGISTRY, "echo", ("echo_target_for_tests", "Echo"))
    res = compile_model(mlp((64, 16, 10)), CompileOptions(dataset="digits", targets=("echo",), samples=7,
                                                          progress=False))
    assert seen == {"family": "ttfs", "n": 7, "quantized": True}
    echo = res.report.data["targets"]["echo"]
    assert echo["samples"] == 7 and echo["run_seconds"] == 0.5 and "quantization" in echo
    assert callable(register)  # the public registration function the docs name


def test_a_target_refuses_a_family_or_kind_it_does_not_run():
    from snncompile.targets.base import get_target

    assert not get_target("xylosim").accepts("ttfs", "quantized") and get_target("fxsim").accepts("lif", "quantized")
    with pytest.raises(InvalidModel, match="float model.nir"):
        get_target("norse").require("lif", "quantized")
    with pytest.raises(InvalidModel, match="does not run TTFS"):
        get_target("xylosim").require("ttfs", "quantized")
