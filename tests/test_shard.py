"""Large evaluations in shards (snncompile/targets/shard.py): the merged run equals the one-batch run,
and on Ray equals the serial sharded run."""

from __future__ import annotations

import numpy as np
import pytest
from conftest import mlp, without_timings

from snncompile.errors import InvalidModel
from snncompile.pipeline import CompileOptions, compile_model
from snncompile.targets.base import Run, RunRequest, get_target
from snncompile.targets.shard import merge_info, run_sharded, shard_bounds


def _same_run(a: Run, b: Run, exact: bool = True):
    eq = np.array_equal if exact else np.allclose
    assert np.array_equal(a.decisions, b.decisions) and eq(a.logits, b.logits)
    assert np.array_equal(a.input_spikes, b.input_spikes)
    if a.raw_logits is not None:
        assert np.array_equal(a.raw_logits, b.raw_logits)
    assert [la.name for la in a.layers] == [lb.name for lb in b.layers]
    for la, lb in zip(a.layers, b.layers):
        assert np.array_equal(la.spikes, lb.spikes) and eq(la.times, lb.times)
        for f in ("saturations", "wraps"):
            assert (getattr(la, f) is None) == (getattr(lb, f) is None)


def test_shard_bounds_cover_every_sample_once():
    assert shard_bounds(10, 4) == [(0, 4), (4, 8), (8, 10)]
    assert shard_bounds(0, 4) == []
    with pytest.raises(InvalidModel, match="shard size"):
        shard_bounds(5, 0)


def test_merge_info_rules():
    got = merge_info([{"t": 3, "a": np.arange(2), "m": 1.0, "d": {"x": 2.0}},
                      {"t": 3, "a": np.arange(3), "m": 4.0, "d": {"x": 2.0}}], [2, 3])
    assert got["t"] == 3 and got["a"].tolist() == [0, 1, 0, 1, 2] and got["m"] == pytest.approx(2.8)
    assert got["d"] == {"x": 2.0}


@pytest.fixture(scope="module")
def compiled():
    return compile_model(mlp((64, 16, 10)), CompileOptions(dataset="digits", targets=("reference", "fxsim"),
                                                           samples=150, progress=False))


@pytest.mark.parametrize("name", ["fxsim", "reference"])
def test_sharded_run_equals_one_batch(compiled, name):
    build_graph = compiled.graphs["model.q.nir" if name == "fxsim" else "model.nir"]
    from snncompile.targets.base import family_of

    req = RunRequest(build_graph, family_of(build_graph), None, compiled.inputs)
    whole = get_target(name).run(req)
    parts = run_sharded(name, req, shard_size=37)
    assert parts.info["shards"] == 5 and parts.samples == 150
    _same_run(whole, parts, exact=name == "fxsim")


def test_a_vendor_target_does_not_shard(compiled):
    req = RunRequest(compiled.graphs["model.q.nir"], "ttfs", None, compiled.inputs)
    with pytest.raises(InvalidModel, match="does not run shards"):
        run_sharded("lava", req, shard_size=10)


def test_ray_without_sweep_or_large_evaluation_is_an_error():
    with pytest.raises(InvalidModel, match="--ray distributes"):
        compile_model(mlp((64, 16, 10)), CompileOptions(dataset="digits", samples=50, ray=True, progress=False))


@pytest.mark.slow
def test_ray_sharded_compile_equals_serial():
    ray = pytest.importorskip("ray", reason="Ray is an optional extra (pip install 'ray==2.60.0')")
    opts = dict(dataset="digits", targets=("reference", "fxsim"), samples=300, progress=False)
    serial = compile_model(mlp((64, 16, 10)), CompileOptions(**opts))
    try:
        par = compile_model(mlp((64, 16, 10)), CompileOptions(**opts, ray=True, shard_min=200, shard_size=70))
    except Exception as exc:  # noqa: BLE001
        if "could not start a local Ray runtime" in str(exc):
            pytest.skip(f"Ray cannot start here: {exc}")
        raise
    assert not ray.is_initialized()
    assert par.runs["fxsim"].info["shards"] == 5
    _same_run(serial.runs["fxsim"], par.runs["fxsim"])
    _same_run(serial.runs["reference"], par.runs["reference"], exact=False)
    a, b = without_timings(serial.report.data), without_timings(par.report.data)
    for t in ("reference", "fxsim"):
        sa, sb = a["targets"].get(t, a.get(t)), b["targets"].get(t, b.get(t))
        for key in ("accuracy", "agreement_with_ann", "spikes_per_neuron"):
            if key in sa:
                assert sa[key] == sb[key], (t, key)
