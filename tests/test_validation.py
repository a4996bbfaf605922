"""Input validation (snncompile/validation): every bad input a clean error naming what is wrong,
quantized graphs verified against their profile, foreign NIR time constants understood.

Hypothesis properties per loader (bounded: a few seconds each), then the classes of the fuzzing
issue one by one, the exporters' time conventions, and determinism.
"""

from __future__ import annotations

import copy
import json
import math

import nir
import numpy as np
import pytest
import torch
from click.testing import CliRunner
from conftest import cnn, mlp, without_timings
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from snncompile.cli import main
from snncompile.errors import DatasetError, InvalidModel, ProfileError, ProfileViolation
from snncompile.ir import get_meta, set_meta, write_nir
from snncompile.profile import load_profile, parse_profile
from snncompile.validation.nir_graph import validate_graph
from snncompile.validation.options import FLOAT_RULES, check_compile_options, check_out_folder, float_rule
from snncompile.validation.quantized import verify_quantized
from snncompile.validation.timeconst import check_time_constants, implied_dt

FAST = settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])


# ---- fixtures -------------------------------------------------------------------------------------

def _x(n=80, d=64, seed=0):
    return np.random.default_rng(seed).random((n, d))


@pytest.fixture(scope="module")
def ttfs_graphs():
    """A float TTFS graph of a 64-16-10 MLP and its loihi2 quantization (K = 8)."""
    from snncompile.quantize.ttfs import quantize_ttfs
    from snncompile.ttfs.convert import convert

    g = convert(mlp((64, 16, 10)), _x(), zeta=0.5)
    q, _ = quantize_ttfs(g, load_profile("loihi2"), 8, _x())
    return g, q


def lif_graph(tau=10.0, r=1.0, thr=1.0, n_in=64, seed=0, cuba=False, tau_syn=None):
    rng = np.random.default_rng(seed)

    def pop(n):
        if cuba:
            return nir.CubaLIF(tau_syn=np.full(n, tau_syn or tau / 2), tau_mem=np.full(n, tau), r=np.full(n, r),
                               v_leak=np.zeros(n), v_threshold=np.full(n, thr), v_reset=np.zeros(n), w_in=np.ones(n))
        return nir.LIF(tau=np.full(n, tau), r=np.full(n, r), v_leak=np.zeros(n), v_threshold=np.full(n, thr),
                       v_reset=np.zeros(n))

    return nir.NIRGraph(
        nodes={"input": nir.Input(input_type={"input": np.array([n_in])}),
               "fc1": nir.Affine(weight=rng.normal(0, 0.3, (24, n_in)), bias=np.zeros(24)), "lif1": pop(24),
               "fc2": nir.Affine(weight=rng.normal(0, 0.3, (10, 24)), bias=np.zeros(10)), "lif2": pop(10),
               "output": nir.Output(output_type={"output": np.array([10])})},
        edges=[("input", "fc1"), ("fc1", "lif1"), ("lif1", "fc2"), ("fc2", "lif2"), ("lif2", "output")],
        type_check=False)


def run_cli(args):
    res = CliRunner().invoke(main, [str(a) for a in args])
    assert res.exception is None or isinstance(res.exception, SystemExit), repr(res.exception)
    assert "Traceback" not in res.output
    return res


def fails(args, *needles):
    res = run_cli(args)
    assert res.exit_code != 0, res.output
    for n in needles:
        assert n in res.output, (n, res.output)
    return res.output


# ---- hypothesis: options ------------------------------------------------------------------------

@FAST
@given(name=st.sampled_from(sorted(FLOAT_RULES)), value=st.floats(allow_nan=True, allow_infinity=True))
def test_float_options_accept_exactly_the_finite_values_in_range(name, value):
    lo, hi, lo_open, _ = FLOAT_RULES[name]
    ok = math.isfinite(value) and (value > lo if lo_open else value >= lo) and value <= hi
    assert (float_rule(name, value) is None) == ok


@FAST
@given(seed=st.integers(-2**70, 2**70), steps=st.one_of(st.none(), st.integers(-10, 10**7)),
       sweep=st.lists(st.integers(-5, 10**6), max_size=3), dt=st.one_of(st.none(), st.floats()))
def test_compile_options_are_checked_or_clean_errors(seed, steps, sweep, dt):
    from snncompile.passes.build import CompileOptions

    opts = CompileOptions(dataset="digits", seed=seed, steps=steps, sweep_steps=tuple(sweep), dt=dt)
    valid = (0 <= seed < 2**32 and (steps is None or 1 <= steps <= 1024) and all(1 <= s <= 1024 for s in sweep)
             and (dt is None or (math.isfinite(dt) and 0 < dt <= 1e6)))
    try:
        check_compile_options(opts)
        assert valid
    except InvalidModel as exc:
        assert not valid and str(exc).startswith("--")


# ---- hypothesis: NIR graphs ---------------------------------------------------------------------

MUTATIONS = ("dup_edge", "drop_edge", "nan", "neginf", "weight_cols", "bias_len", "input_shape", "threshold",
             "tau", "meta_list", "meta_type")


@FAST
@given(kind=st.sampled_from(MUTATIONS), pick=st.integers(0, 10**6),
       value=st.sampled_from([-1.0, 0.0, 64.5, 2.0**40, -(2.0**63)]))
def test_every_structural_mutation_of_a_graph_is_rejected_by_name(kind, pick, value):
    g = copy.deepcopy(lif_graph())
    names = list(g.nodes)
    if kind == "dup_edge":
        g.edges.append(g.edges[pick % len(g.edges)])
    elif kind == "drop_edge":
        g.edges.pop(pick % len(g.edges))
    elif kind in ("nan", "neginf"):
        n = ("fc1", "fc2", "lif1", "lif2")[pick % 4]
        k = "weight" if n.startswith("fc") else ("tau", "r", "v_leak", "v_threshold")[pick % 4]
        arr = np.array(getattr(g.nodes[n], k), dtype=np.float64)
        arr.flat[pick % arr.size] = np.nan if kind == "nan" else -np.inf
        setattr(g.nodes[n], k, arr)
    elif kind == "weight_cols":
        n = ("fc1", "fc2")[pick % 2]
        w = np.asarray(g.nodes[n].weight)
        g.nodes[n].weight = np.ones((w.shape[0], w.shape[1] + 1 + pick % 3))
    elif kind == "bias_len":
        n = ("fc1", "fc2")[pick % 2]
        g.nodes[n].bias = np.zeros(np.size(g.nodes[n].bias) + 1 + pick % 3)
    elif kind == "input_shape":
        if value == 64.0:
            value = 63.5
        g.nodes["input"].input_type = {"input": np.array([value])}
    elif kind == "threshold":
        g.nodes[("lif1", "lif2")[pick % 2]].v_threshold = np.full(24 if pick % 2 == 0 else 10, min(value, 0.0))
    elif kind == "tau":
        g.nodes[("lif1", "lif2")[pick % 2]].tau = np.full(24 if pick % 2 == 0 else 10, min(value, 0.0))
    elif kind == "meta_list":
        obj = g if pick % 2 else g.nodes[names[pick % len(names)]]
        obj.metadata = {"snncompile": json.dumps([1, 2])}
    else:
        set_meta(g, {"dt": ("x", -1, 0, None)[pick % 4], "encoding": {"type": "morse"}})
    with pytest.raises(InvalidModel) as exc:
        validate_graph(g, "g.nir")
    assert str(exc.value).startswith("g.nir: ")


@FAST
@given(scale=st.floats(1e-3, 1e3), seed=st.integers(0, 100))
def test_valid_graphs_pass(scale, seed):
    g = lif_graph(seed=seed)
    g.nodes["fc1"].weight = g.nodes["fc1"].weight * scale
    validate_graph(g, "g.nir")


# ---- hypothesis: quantized graphs against the profile ---------------------------------------------

@FAST
@given(value=st.one_of(st.integers(-2**63, 2**63 - 1), st.floats(allow_nan=True, allow_infinity=True)),
       pick=st.integers(0, 10**6))
def test_quantized_weights_must_lie_on_the_profile_grid(ttfs_graphs, value, pick):
    _, q = ttfs_graphs
    g = copy.deepcopy(q)
    name = [n for n, node in g.nodes.items() if isinstance(node, nir.Affine)][pick % 2]
    w = np.array(g.nodes[name].weight, dtype=np.float64)
    w.flat[pick % w.size] = float(value)
    g.nodes[name].weight = w
    prof = load_profile("loihi2")
    on_grid = math.isfinite(float(value)) and float(value) == round(float(value)) and -256 <= value <= 254 \
        and int(value) % 2 == 0
    if on_grid:
        verify_quantized(g, prof, "m.q.nir")
    else:
        with pytest.raises(ProfileViolation) as exc:
            verify_quantized(g, prof, "m.q.nir")
        assert f"node '{name}'" in str(exc.value) and "weight" in str(exc.value) and "[-256, 254]" in str(exc.value)


@FAST
@given(field=st.sampled_from(["weight_exp", "slope", "threshold", "steps", "arrival"]),
       value=st.one_of(st.integers(-10**6, 10**6), st.just("x"), st.just(1.5), st.none()))
def test_quantized_node_fields_are_verified(ttfs_graphs, field, value):
    _, q = ttfs_graphs
    g = copy.deepcopy(q)
    m = get_meta(g.nodes["ttfs1"])
    if m.get(field) == value:
        return
    is_int = isinstance(value, int)
    # in range for the profile (loihi2: weight_exp -8..7) and consistent with the window's step numbers
    valid = is_int and (field == "weight_exp" and -8 <= value <= 7
                        or field == "arrival" and 1 <= value <= min(m["t_in_end"], m["fire_start"]))
    m[field] = value
    set_meta(g.nodes["ttfs1"], m)
    if valid:
        verify_quantized(g, load_profile("loihi2"), "m.q.nir")
        return
    with pytest.raises((ProfileViolation, InvalidModel)) as exc:
        verify_quantized(g, load_profile("loihi2"), "m.q.nir")
    assert "ttfs1" in str(exc.value) and field in str(exc.value)


def test_arrival_after_the_integration_window_names_arrival(ttfs_graphs):
    _, q = ttfs_graphs
    g = copy.deepcopy(q)
    m = get_meta(g.nodes["ttfs1"])
    m["arrival"] = m["t_in_end"] + 1
    set_meta(g.nodes["ttfs1"], m)
    with pytest.raises((ProfileViolation, InvalidModel), match="ttfs1.*arrival"):
        verify_quantized(g, load_profile("loihi2"), "m.q.nir")


# ---- hypothesis: ONNX tensors, IDX headers, profiles ----------------------------------------------

@FAST
@given(dims=st.lists(st.integers(0, 2**40), min_size=1, max_size=4), n=st.integers(0, 50),
       value=st.floats(allow_nan=True, allow_infinity=True, width=32))
def test_onnx_tensors_match_their_dims_or_fail_cleanly(dims, n, value):
    from onnx import TensorProto

    from snncompile.validation.onnx_model import tensor_array

    t = TensorProto(name="w", data_type=TensorProto.FLOAT)
    t.dims.extend(dims)
    t.float_data.extend([value] * n)
    fits = math.prod(dims) == n
    try:
        arr = tensor_array(t, "m.onnx")
        assert fits and (n == 0 or math.isfinite(value))
        assert list(arr.shape) == dims
    except InvalidModel as exc:
        assert "m.onnx" in str(exc) and "'w'" in str(exc)


@FAST
@given(dims=st.lists(st.integers(0, 2**32 - 1), min_size=3, max_size=3), held=st.integers(0, 300))
def test_idx_headers_cannot_overflow(tmp_path, dims, held):
    from snncompile.data.idx import IMAGES_MAGIC, read_idx

    path = tmp_path / "imgs"
    path.write_bytes(IMAGES_MAGIC.to_bytes(4, "big") + b"".join(d.to_bytes(4, "big") for d in dims) + bytes(held))
    try:
        arr = read_idx(str(path), "images")
        assert arr.shape == tuple(dims) and math.prod(dims) == held
    except DatasetError as exc:
        assert str(path) in str(exc)


@FAST
@given(field=st.sampled_from(["synop_pj", "neuron_update_pj", "spike_pj"]),
       value=st.floats(allow_nan=True, allow_infinity=True))
def test_profile_energies_are_finite_and_sane(field, value):
    import tomllib

    from snncompile.profile import bundled_dir

    data = tomllib.loads((bundled_dir() / "loihi2.toml").read_text())
    data["energy"][field] = value
    try:
        p = parse_profile(data, "p.toml")
        assert 0 <= getattr(p.energy, field) <= 1e9
    except ProfileError as exc:
        assert f"[energy].{field}" in str(exc)
        assert not (0 <= value <= 1e9)


# ---- the issue's classes, one by one -------------------------------------------------------------

@pytest.fixture(scope="module")
def files(tmp_path_factory, ttfs_graphs):
    d = tmp_path_factory.mktemp("val")
    g, q = ttfs_graphs
    write_nir(g, d / "model.nir")
    write_nir(q, d / "model.q.nir")
    write_nir(lif_graph(), d / "lif.nir")
    return d


@pytest.mark.parametrize("opt,val,needle", [
    ("--bits", "1", "a mixed-sign weight needs a sign bit"), ("--seed", "-1", "--seed"),
    ("--seed", str(2**32), "--seed"), ("--zeta", "nan", "finite"), ("--zeta", "1e308", "--zeta"),
    ("--dt", "inf", "finite"), ("--sweep-steps", "0", "--sweep-steps"), ("--steps", "0", "--steps")])
def test_option_ranges(files, tmp_path, opt, val, needle):
    out = tmp_path / "o"
    fails(["compile", files / "model.nir", "--dataset", "digits", "--target", "fxsim", opt, val, "--out", out], needle)
    assert not out.exists()


def test_finetune_and_train_option_ranges(files, tmp_path):
    for opt, val in (("--lr", "nan"), ("--lr", "-1"), ("--spike-penalty", "nan"), ("--bits", "1"), ("--seed", "-1")):
        fails(["finetune", files / "model.nir", "--dataset", "digits", "--epochs", "0", opt, val,
               "-o", tmp_path / "f.nir"], opt if opt != "--bits" else "sign bit")
    fails(["train", "--dataset", "digits", "--arch", "64-99999999-10", "-o", tmp_path / "t.onnx"], "exceeds")
    assert not list(tmp_path.iterdir())


def test_output_paths_must_be_writable_folders(files, tmp_path):
    f = tmp_path / "afile"
    f.write_text("x")
    src = files / "model.nir"
    fails(["compile", src, "--dataset", "digits", "--out", ""], "give a folder name")
    fails(["compile", src, "--dataset", "digits", "--out", f], "is a file")
    fails(["compile", src, "--dataset", "digits", "--out", f / "sub"], "is a file, not a folder")
    fails(["compile", src, "--dataset", "digits", "--out", "/proc/snncompile_x"], "not writable")
    fails(["convert", tmp_path / "m.onnx", "--dataset", "digits", "-o", f / "m.nir"], "is a file")
    fails(["finetune", src, "--dataset", "digits", "-o", f / "m.nir"], "is a file")
    fails(["train", "--dataset", "digits", "--arch", "64-8-10", "-o", f / "m.onnx"], "is a file")
    fails(["train", "--dataset", "digits", "--arch", "64-8-10", "--method", "erbp", "-o", f / "m.nir"], "is a file")
    with pytest.raises(InvalidModel):
        check_out_folder(f)


def test_duplicate_edge_nan_weight_bad_threshold_and_fractional_shape_are_named(files, tmp_path):
    g = lif_graph()
    g.edges.append(("fc1", "lif1"))
    with pytest.raises(InvalidModel, match="'fc1', 'lif1'.*twice"):
        validate_graph(g)
    for thr in (0.0, -np.inf):
        g = lif_graph(thr=thr)
        with pytest.raises(InvalidModel, match="lif1.*v_threshold"):
            validate_graph(g)
    g = lif_graph()
    g.nodes["input"].input_type = {"input": np.array([64.5])}
    with pytest.raises(InvalidModel, match="64.5.*whole numbers"):
        validate_graph(g)
    g = lif_graph()
    g.nodes["fc2"].weight[0, 0] = np.nan
    write_nir(g, tmp_path / "nan.nir")
    fails(["compile", tmp_path / "nan.nir", "--dataset", "digits", "--out", tmp_path / "o"], "nan.nir", "'fc2'",
          "weight", "finite")


def test_metadata_schema(ttfs_graphs, tmp_path):
    g, _ = ttfs_graphs
    for mutate, needle in (
            (lambda x: x.metadata.update(snncompile="[1, 2]"), "JSON object"),
            (lambda x: x.nodes["ttfs1"].metadata.update(snncompile=json.dumps({"role": "hidden", "t_min": 1})),
             "lacks 't_max'"),
            (lambda x: set_meta(x.nodes["ttfs1"], {**get_meta(x.nodes["ttfs1"]), "B": "nan"}), "'B'")):
        h = copy.deepcopy(g)
        mutate(h)
        with pytest.raises(InvalidModel, match=needle):
            validate_graph(h, "m.nir")


def test_conv_and_pool_parameters(tmp_path):
    from snncompile.ttfs.convert import convert

    g = convert(cnn(), np.random.default_rng(0).random((20, 1, 8, 8)), zeta=0.5)
    validate_graph(g)
    conv = next(n for n, node in g.nodes.items() if isinstance(node, nir.Conv2d))
    pool = next(n for n, node in g.nodes.items() if isinstance(node, nir.SumPool2d))
    for name, attr, val, needle in ((conv, "stride", 0, "stride"), (conv, "groups", 3, "divisible"),
                                    (conv, "padding", -1, "padding"), (pool, "kernel_size", 0, "kernel_size"),
                                    (pool, "padding", 5, "padding")):
        h = copy.deepcopy(g)
        setattr(h.nodes[name], attr, val)
        with pytest.raises(InvalidModel, match=needle):
            validate_graph(h)


@pytest.mark.parametrize("edit,needle", [
    (lambda g: g.nodes["fc1"].weight.__setitem__((0, 0), 2.0**40), "weight"),
    (lambda g: g.nodes["fc1"].weight.__setitem__((0, 0), 3.0), "weight"),
    (lambda g: set_meta(g.nodes["ttfs1"], {**get_meta(g.nodes["ttfs1"]), "weight_exp": 99}), "weight_exp"),
    (lambda g: set_meta(g, {**get_meta(g), "steps": 0}), "steps"),
    (lambda g: setattr(g.nodes["ttfs1"], "v_threshold", -np.asarray(g.nodes["ttfs1"].v_threshold)), "threshold"),
])
def test_quantized_graph_off_its_profile_is_refused_before_any_target_runs(ttfs_graphs, tmp_path, edit, needle):
    _, q = ttfs_graphs
    g = copy.deepcopy(q)
    for n in g.nodes.values():
        if isinstance(n, nir.Affine):
            n.weight = np.array(n.weight, dtype=np.float64)
    edit(g)
    write_nir(g, tmp_path / "m.q.nir")
    out = fails(["compile", tmp_path / "m.q.nir", "--dataset", "digits", "--target", "fxsim", "--out", tmp_path / "o"],
                "m.q.nir", needle)
    assert "does not fit" in out or "rule" in out
    assert not (tmp_path / "o").exists()


def test_xylo_quantized_graph_is_verified():
    from snncompile.frontends.nir import read_spiking_graph
    from snncompile.quantize.lif_xylo import quantize_xylo

    net = read_spiking_graph(lif_graph(n_in=16, r=10.0))
    prof = load_profile("xylo-audio2")
    spikes = (np.random.default_rng(0).random((20, 16, 16)) < 0.3).astype(np.float64)
    q, _ = quantize_xylo(net, prof, spikes)
    verify_quantized(q, prof, "x.q.nir")
    q.nodes["weights_in"].weight = np.array(q.nodes["weights_in"].weight) * 0 + 300.0
    with pytest.raises(ProfileViolation, match="weights_in"):
        verify_quantized(q, prof, "x.q.nir")


def test_profile_with_huge_energy_and_one_bit_mixed_weights():
    import tomllib

    from snncompile.profile import bundled_dir

    data = tomllib.loads((bundled_dir() / "loihi2.toml").read_text())
    with pytest.raises(ProfileError, match="synop_pj"):
        parse_profile({**data, "energy": {**data["energy"], "synop_pj": 1e308}}, "p.toml")
    with pytest.raises(ProfileError, match="at least 2"):
        parse_profile({**data, "weights": {**data["weights"], "bits": 1}}, "p.toml")
    with pytest.raises(ProfileError, match="sign bit"):
        load_profile("loihi2").with_weight_bits(1)


def test_idx_header_overflowing_int64_is_a_clean_error(tmp_path):
    from snncompile.data.idx import IMAGES_MAGIC, read_idx

    path = tmp_path / "imgs"
    dims = (2**32 - 1, 2**32 - 1, 2**31 + 1)  # the product wraps in int64
    path.write_bytes(IMAGES_MAGIC.to_bytes(4, "big") + b"".join(d.to_bytes(4, "big") for d in dims) + bytes(64))
    with pytest.raises(DatasetError, match="truncated"):
        read_idx(str(path), "images")


def test_onnx_dims_mismatch_and_undefined_attribute(tmp_path):
    import onnx

    from snncompile.frontends import load_model
    from snncompile.frontends.onnx import export_onnx

    export_onnx(mlp((64, 16, 10)), tmp_path / "m.onnx")
    m = onnx.load(str(tmp_path / "m.onnx"))
    m.graph.initializer[0].dims[0] += 1
    onnx.save(m, str(tmp_path / "dims.onnx"))
    with pytest.raises(InvalidModel, match="dims.onnx.*does not match dims"):
        load_model(str(tmp_path / "dims.onnx"))
    m = onnx.load(str(tmp_path / "m.onnx"))
    node = next(n for n in m.graph.node if len(n.attribute))
    node.attribute[0].type = 0
    onnx.save(m, str(tmp_path / "undef.onnx"))
    with pytest.raises(InvalidModel, match="UNDEFINED"):
        load_model(str(tmp_path / "undef.onnx"))


def test_finetune_to_graph_on_a_cnn_keeps_maxpool_windows():
    """Regression: TtfsModule.to_graph on a CNN with a max-pool raised KeyError 't_min'."""
    from snncompile.train.finetune import TtfsModule
    from snncompile.ttfs.convert import convert

    g = convert(cnn(), np.random.default_rng(0).random((20, 1, 8, 8)), zeta=0.5)
    back = TtfsModule(g).to_graph()
    validate_graph(back)
    for name, node in g.nodes.items():
        if get_meta(node).get("role") == "maxpool":
            assert get_meta(back.nodes[name])["t_min"] == get_meta(node)["t_min"]
            assert get_meta(back.nodes[name])["t_max"] == get_meta(node)["t_max"]


# ---- foreign time constants ----------------------------------------------------------------------

def test_time_constant_shorter_than_dt_names_tau_dt_and_the_fix():
    with pytest.raises(InvalidModel) as exc:
        check_time_constants("lif1", "LIF", {"tau": np.full(3, 1e-3), "r": np.full(3, 10.0)}, 1.0, "m.nir")
    msg = str(exc.value)
    assert "\n" not in msg and "'lif1'" in msg and "tau = 0.001" in msg and "dt = 1" in msg
    assert "--dt 0.0001" in msg and "snnTorch" in msg and "norse" in msg and "rockpool" in msg
    check_time_constants("lif1", "LIF", {"tau": np.full(3, 1e-3), "r": np.full(3, 10.0)}, 1e-4)
    assert implied_dt("CubaLIF", {"tau_syn": 0.01, "tau_mem": 0.02, "r": 20.0})["snnTorch / rockpool (dt = tau/r)"] \
        == pytest.approx(1e-3)


def _one_line_error(res, *needles):
    assert res.exit_code != 0 and "Traceback" not in res.output
    line = res.output.strip().splitlines()[-1]
    for n in needles:
        assert n in line, (n, line)


@pytest.mark.parametrize("conv,dt", [("snntorch", 1e-4), ("rockpool", 1e-3)])
def test_snntorch_and_rockpool_conventions(tmp_path, conv, dt):
    """Written by hand: snnTorch (beta 0.9 at dt 1e-4: tau = 1e-3, r = 10) and rockpool (CubaLIF tau_mem 0.02,
    tau_syn 0.01, r = tau/dt at dt 1e-3).  Default dt: one line naming tau, dt and --dt; the right --dt runs the
    float reference; on fxsim it runs or the quantizer names the r = tau/dt convention (NIR spikes are pulses)."""
    g = lif_graph(tau=1e-3, r=10.0) if conv == "snntorch" else lif_graph(tau=0.02, tau_syn=0.01, r=20.0, cuba=True)
    write_nir(g, tmp_path / "m.nir")
    base = ["compile", tmp_path / "m.nir", "--dataset", "digits", "--samples", "10", "--sim-steps", "8", "--quiet"]
    _one_line_error(run_cli(base + ["--out", tmp_path / "a"]), "tau", "dt = 1 s", f"--dt {dt:g}")
    res = run_cli(base + ["--dt", dt, "--out", tmp_path / "b"])
    assert res.exit_code == 0, res.output
    res = run_cli(base + ["--dt", dt, "--target", "fxsim", "--out", tmp_path / "c"])
    if res.exit_code == 0:  # it fits the fixed-point state: the run is the result
        assert (tmp_path / "c" / "model.q.nir").exists()
    else:  # or one line naming the convention, tau and dt
        _one_line_error(res, "tau/dt", f"dt = {dt:g} s")
        assert not (tmp_path / "c").exists()
    assert not (tmp_path / "a").exists()
    info = run_cli(["inspect", tmp_path / "m.nir"]).output
    assert "implied dt" in info and f"{dt:g}" in info


def test_norse_default_to_nir_graph(tmp_path):
    """norse (`norse.torch.to_nir` at its default dt = 1e-3) writes tau = dt/tau_inv = 1e-5."""
    nt = pytest.importorskip("norse.torch")
    from snncompile.frontends.nir import repair_graph

    torch.manual_seed(0)
    model = nt.SequentialState(torch.nn.Linear(64, 24), nt.LIFBoxCell(), torch.nn.Linear(24, 10), nt.LIFBoxCell())
    raw = nt.to_nir(model, torch.zeros(1, 64))
    assert float(np.ravel(np.asarray(raw.nodes["1"].tau))[0]) == pytest.approx(1e-5)
    write_nir(repair_graph(raw, 1e-5), tmp_path / "n.nir")
    base = ["compile", tmp_path / "n.nir", "--dataset", "digits", "--samples", "10", "--sim-steps", "8", "--quiet"]
    _one_line_error(run_cli(base + ["--out", tmp_path / "a"]), "'1'", "tau = 1e-05", "dt = 1 s", "--dt 1e-05")
    res = run_cli(base + ["--dt", "1e-5", "--out", tmp_path / "b"])
    assert res.exit_code == 0, res.output


# ---- determinism -----------------------------------------------------------------------------------

def test_same_seed_same_report_and_nir_bytes(files, tmp_path):
    args = ["compile", files / "lif.nir", "--dataset", "digits", "--samples", "20", "--target", "fxsim",
            "--encoding", "rate", "--sim-steps", "10", "--quiet"]
    for d in ("a", "b"):
        assert run_cli(args + ["--seed", "7", "--out", tmp_path / d]).exit_code == 0
    ra, rb = (without_timings(json.loads((tmp_path / d / "report.json").read_text())) for d in "ab")
    assert ra == rb
    for f in ("model.nir", "model.q.nir"):
        assert (tmp_path / "a" / f).read_bytes() == (tmp_path / "b" / f).read_bytes()
    assert run_cli(args + ["--seed", "8", "--out", tmp_path / "c"]).exit_code == 0
    rc = without_timings(json.loads((tmp_path / "c" / "report.json").read_text()))
    assert rc != ra  # the seed reaches the rate code


def test_report_with_non_finite_energy_renders(files, tmp_path, monkeypatch):
    """Regression: an energy that overflows to inf became null in the JSON and crashed the Markdown report.
    Profiles now cap energies (0..1e9 pJ); the report still renders a non-finite number as a word."""
    import dataclasses

    import snncompile.profile as prof
    from snncompile.pipeline import CompileOptions, compile_model

    orig = prof.load_profile

    def huge(name):
        p = orig(name)
        return dataclasses.replace(p, energy=dataclasses.replace(p.energy, synop_pj=1e308, spike_pj=1e308))

    monkeypatch.setattr(prof, "load_profile", huge)
    compile_model(str(files / "model.nir"), CompileOptions(dataset="digits", targets=("fxsim",), samples=5,
                                                           calib_samples=50, progress=False), out=tmp_path / "o")
    md = (tmp_path / "o" / "report.md").read_text()
    assert "energy (**estimate**): – nJ per sample" in md


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(cut=st.integers(0, 10**6), flips=st.lists(st.tuples(st.integers(0, 10**6), st.integers(0, 255)), max_size=20))
def test_corrupt_nir_bytes_are_clean_errors(files, tmp_path, cut, flips):
    """Regression (fuzz): a corrupt HDF5 heap made h5py raise RuntimeError out of read_nir."""
    from snncompile.ir import read_nir

    raw = bytearray((files / "model.nir").read_bytes())
    for pos, byte in flips:
        raw[pos % len(raw)] = byte
    if cut % 3 == 0:
        raw = raw[: cut % len(raw)]
    path = tmp_path / f"c{cut}.nir"
    path.write_bytes(bytes(raw))
    try:
        validate_graph(read_nir(path, type_check=False), str(path))
    except InvalidModel as exc:
        assert str(path) in str(exc) or "node" in str(exc) or "edge" in str(exc)
