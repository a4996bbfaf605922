"""The Lava target: bit-exact agreement with fxsim, the import fix, the export, missing Lava.

These tests run Lava for real (each network costs about 0.5 s to build plus 1 ms per step).
"""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest
import scipy.sparse as sp
import torch
from conftest import assert_runtime_copied
from torch import nn

from snncompile.arith import clip_truncate, shift_exp
from snncompile.encode import ttfs_counts
from snncompile.errors import InvalidModel, TargetUnavailable
from snncompile.frontends.canonical import AnnModel
from snncompile.ir import get_meta, set_meta
from snncompile.profile import load_profile
from snncompile.quantize.ttfs import quantize_ttfs
from snncompile.spikes import raster_from_steps
from snncompile.targets import get_target, run_target
from snncompile.targets.lava.compare import first_mismatch
from snncompile.targets.lava.parts import lava_parts
from snncompile.ttfs.convert import convert
from snncompile.ttfs.graph import parse_ttfs

PROFILE = load_profile("loihi2")


@pytest.fixture(scope="module")
def lava():
    pytest.importorskip("lava")
    from snncompile.targets.lava.compat import require_lava

    require_lava()
    return get_target("lava")


def quantized(net: nn.Sequential, input_shape: tuple, K: int, seed: int = 0, n: int = 40):
    rng = np.random.default_rng(seed)
    x = rng.random((n, *input_shape)).astype(np.float32)
    model = AnnModel(net.eval(), input_shape, [f"l{i}" for i in range(len(net))])
    q, _ = quantize_ttfs(convert(model, x), PROFILE, K, x)
    return q, x


def mlp(sizes, seed):
    torch.manual_seed(seed)
    return nn.Sequential(nn.Linear(sizes[0], sizes[1]), nn.ReLU(), nn.Linear(sizes[1], sizes[2]))


def fxsim(q, x):
    return run_target("fxsim", q, x, profile=PROFILE, mode="stepped", record=True)


def assert_same(lava_run, fx_run):
    """Every spike step, every integer v at every step, the readout and the decisions."""
    assert lava_run.info["bit_exact_with_fxsim"], lava_run.info["first_mismatch"]
    assert lava_run.info["first_mismatch"] is None
    assert set(lava_run.traces) == set(fx_run.traces)
    for name, tr in fx_run.traces.items():
        assert lava_run.traces[name].dtype == np.int64
        np.testing.assert_array_equal(lava_run.traces[name], tr, err_msg=name)
    for la, lf in zip(lava_run.layers, fx_run.layers, strict=True):
        assert la.name == lf.name
        np.testing.assert_array_equal(la.times, lf.times, err_msg=la.name)
        np.testing.assert_array_equal(la.spikes, lf.spikes)
    np.testing.assert_array_equal(lava_run.raw_logits, fx_run.raw_logits)
    np.testing.assert_array_equal(lava_run.decisions, fx_run.decisions)
    np.testing.assert_allclose(lava_run.logits, fx_run.logits)


def edit_layer(q, name, weight=None, weight_exp=None, bias=None, **meta_updates):
    """Overwrite a population's integer parameters in a quantized graph (in place)."""
    layer = next(la for la in parse_ttfs(q).layers if la.name == name)
    if weight is not None:
        affine = next(node for _, node in layer.ops if hasattr(node, "weight"))
        affine.weight = np.asarray(weight, dtype=np.int64)
    meta = get_meta(layer.node)
    if weight_exp is not None:
        meta["weight_exp"] = int(weight_exp)
    meta.update(meta_updates)
    set_meta(layer.node, meta)
    if bias is not None:
        layer.node.v_leak = np.broadcast_to(np.asarray(bias, np.float64), layer.out_shape).copy()


# --- the import fix ------------------------------------------------------------------------------


def test_compat_hook_makes_var_model_importable():
    pytest.importorskip("lava")
    code = ("import snncompile.targets.lava.compat as c; c.require_lava(); "
            "import lava.magma.compiler.var_model as vm; import dataclasses; "
            "a, b = vm.ChipEncoder(), vm.ChipEncoder(); assert a.x is not b.x; print('ok')")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0 and "ok" in done.stdout, done.stderr
    if sys.version_info >= (3, 11):  # and without the hook, lava 0.10.0 does not import on 3.11
        plain = subprocess.run([sys.executable, "-c", "import lava.magma.compiler.var_model"],
                               capture_output=True, text=True, timeout=120)
        assert plain.returncode != 0 and "default_factory" in plain.stderr


def test_patch_source_rewrites_only_the_defaults():
    from snncompile.targets.lava.compat import patch_source

    src = ("from __future__ import annotations\nfrom dataclasses import dataclass\n@dataclass\nclass A:\n"
           "    x: ByteEncoder = ByteEncoder()\n    y: int = 0\n")
    out = patch_source(src)
    assert "x: ByteEncoder = field(default_factory=ByteEncoder)" in out and "y: int = 0" in out
    assert out.startswith("from __future__ import annotations\n") and "import field" in out
    compile(out, "<patched>", "exec")
    assert patch_source("x = 1\n") == "x = 1\n"


def test_missing_lava_raises_target_unavailable(monkeypatch):
    q, x = quantized(mlp((4, 5, 3), 0), (4,), 4)
    target = get_target("lava")  # importing the target module never imports lava
    for mod in [m for m in sys.modules if m == "lava" or m.startswith("lava.")]:
        monkeypatch.delitem(sys.modules, mod)
    monkeypatch.setitem(sys.modules, "lava", None)
    with pytest.raises(TargetUnavailable) as e:
        run_target(target, q, x[:2])
    assert "pip install --no-deps --ignore-requires-python lava-nc==0.10.0" in str(e.value)
    assert "asteval" in str(e.value) and "networkx" in str(e.value)
    from snncompile.targets.lava.compat import require_lava

    with pytest.raises(TargetUnavailable):
        require_lava()


# --- weights in Lava's terms (no Lava needed) ------------------------------------------------------


@pytest.mark.parametrize("bits", [8, 6, 3])
def test_lava_parts_are_exact_and_on_lavas_grid(bits):
    rng = np.random.default_rng(bits)
    for _ in range(200):
        e = int(rng.integers(-6, 8))
        scale = int(rng.choice([1, 2, 255, 256, 3000]))
        M = rng.integers(-scale, scale + 1, size=(6, 9)) * (rng.random((6, 9)) < 0.6)
        try:
            parts = lava_parts(sp.csr_matrix(M), e, bits)
        except InvalidModel:  # a low-bit odd matrix with a very negative exponent has no exact form
            assert bits < 8 and e < 0
            continue
        for w, _ in parts:
            W = w.toarray().astype(np.int64)
            np.testing.assert_array_equal(clip_truncate(W, bits, 8, "mixed"), W)  # Lava leaves it alone
        S = (rng.random((40, 9)) < 0.5).astype(np.int64)
        got = sum(shift_exp(S @ w.toarray().astype(np.int64).T, ee) for w, ee in parts)
        np.testing.assert_array_equal(got, shift_exp(S @ M.T, e))
    # the usual cases are one part: on-grid weights as they are, max-pool ones as 2s with e - 1
    (w, e), = lava_parts(np.array([[254, -256, 2]]), -3, 8)
    assert e == -3 and w.toarray().tolist() == [[254, -256, 2]]
    (w, e), = lava_parts(np.ones((2, 4)), 0, 8)
    assert e == -1 and set(w.data.tolist()) == {2}
    with pytest.raises(InvalidModel, match="cannot be written exactly"):
        lava_parts(np.array([[255, 1]]), -8, 6)


def test_first_mismatch_is_the_earliest():
    v = {"h": np.zeros((2, 5, 3), np.int64), "r": np.zeros((2, 5, 2), np.int64)}
    s = {"h": raster_from_steps(np.full((2, 3), -1), 5)}
    fv = {k: a.copy() for k, a in v.items()}
    fs = {"h": s["h"].copy()}
    assert first_mismatch(["h", "r"], v, s, fv, fs) is None
    fv["r"][1, 1, 0] = 7          # sample 1, step 2
    fv["h"][1, 3, 2] = 5          # sample 1, step 4
    fs["h"][1, 2, 2] = True       # sample 1: fxsim spikes at step 3, Lava never
    fv["h"][0, 4, 1] = 1          # sample 0, step 5: the earliest sample wins
    m = first_mismatch(["h", "r"], v, s, fv, fs, offset=10)
    assert m == {"sample": 10, "layer": "h", "neuron": 1, "step": 5, "what": "v", "lava": 0, "fxsim": 1}
    fv["h"][0] = 0
    m = first_mismatch(["h", "r"], v, s, fv, fs)
    assert (m["sample"], m["step"], m["layer"], m["what"]) == (1, 2, "r", "v")
    fv["r"][1, 1, 0] = 0
    m = first_mismatch(["h", "r"], v, s, fv, fs, target="netx")
    assert m == {"sample": 1, "layer": "h", "neuron": 2, "step": 3, "what": "spike", "netx": 0, "fxsim": 1}


# --- Lava vs fxsim, bit for bit ----------------------------------------------------------------------


@pytest.mark.parametrize("K", [4, 8])
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_random_mlps_are_bit_exact(lava, seed, K):
    q, x = quantized(mlp((12, 16, 5), seed), (12,), K, seed=seed)
    xs = x[:5]
    fx = fxsim(q, xs)
    run = run_target(lava, q, xs, profile=PROFILE)
    assert_same(run, fx)
    T = get_meta(q)["t_total"]
    assert run.info["t_total"] == T and run.info["sample_period"] == T and run.info["steps"] == K
    assert run.traces["readout"].shape == (5, T, 5)
    assert sum(la.spikes.sum() for la in run.layers) > 0  # the comparison is not vacuous


def test_chunks_and_self_run_fxsim_comparison(lava):
    """Chunked runs (3 Lava runs for 5 samples) compare against an fxsim run of their own when the
    given fxsim run has no traces (the pipeline's auto-mode run)."""
    q, x = quantized(mlp((12, 16, 5), 3), (12,), 4, seed=3)
    xs = x[:5]
    auto = run_target("fxsim", q, xs, profile=PROFILE)
    assert auto.traces is None
    run = run_target(lava, q, xs, profile=PROFILE, batch=2, period_margin=2)
    assert run.info["builds"] == 3
    assert run.info["sample_period"] == run.info["t_total"] + 2  # silent margin steps are dropped
    assert_same(run, fxsim(q, xs))


def test_tiny_cnn_with_maxpool_and_avgpool_is_bit_exact(lava):
    torch.manual_seed(1)
    net = nn.Sequential(nn.Conv2d(1, 3, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2), nn.Conv2d(3, 4, 2), nn.ReLU(),
                        nn.AvgPool2d(2), nn.Flatten(), nn.Linear(4, 3))
    q, x = quantized(net, (1, 6, 6), 8)
    roles = [la.role for la in parse_ttfs(q).layers]
    assert roles == ["hidden", "maxpool", "hidden", "readout"]
    xs = x[:4]
    fx = fxsim(q, xs)
    run = run_target(lava, q, xs)
    assert_same(run, fx)
    assert run.layers[1].spikes.sum() > 0  # the max-pool fired


def test_min_pool_channels_are_bit_exact(lava):
    """A BatchNorm with negative scale before a max-pool: those channels min-pool (fire on u once the
    window is complete); Lava's process runs the same integer_step rule."""
    from snncompile.frontends.torch import from_torch

    gen = torch.Generator().manual_seed(0)
    torch.manual_seed(0)
    bn = nn.BatchNorm2d(3)
    with torch.no_grad():
        bn.running_var.uniform_(0.5, 2.0, generator=gen)
        bn.weight.copy_(torch.tensor([0.8, -1.2, -0.6]))
    net = nn.Sequential(nn.Conv2d(1, 3, 3, padding=1), nn.ReLU(), bn.eval(), nn.MaxPool2d(2), nn.Conv2d(3, 4, 2),
                        nn.ReLU(), nn.Flatten(), nn.Linear(16, 3)).eval()
    x = np.random.default_rng(0).random((30, 1, 6, 6)).astype(np.float32)
    x[:3, :, :2] = 0.0  # windows that never complete
    q, _ = quantize_ttfs(convert(from_torch(net, (1, 6, 6)), x), PROFILE, 8, x)
    assert get_meta(q.nodes["maxpool1_1"])["min_channels"] == [1, 2]
    xs = x[:6]
    fx = fxsim(q, xs)
    run = run_target(lava, q, xs)
    assert_same(run, fx)
    assert run.layers[1].spikes.sum() > 0


def test_wrap_and_saturation_and_off_grid_weights_are_bit_exact(lava):
    """Weights of +-254 at exponent 7 wrap u (24 bits) and saturate v; odd (off-grid) readout weights
    need two Lava connection parts.  Lava still matches fxsim bit for bit."""
    q, x = quantized(mlp((12, 16, 5), 4), (12,), 4, seed=4)
    rng = np.random.default_rng(0)
    edit_layer(q, "ttfs1", weight=rng.choice([-254, 254], size=(16, 12)), weight_exp=7)
    edit_layer(q, "readout", weight=rng.choice([-255, -3, 1, 3, 255], size=(5, 16)), weight_exp=5)
    xs = x[:6]
    fx = fxsim(q, xs)
    assert fx.layers[0].wraps.sum() > 0 and fx.layers[0].saturations.sum() > 0
    assert fx.info["readout_saturations"].sum() > 0
    run = run_target(lava, q, xs)
    assert run.info["weight_parts"] == {"ttfs1": 1, "readout": 2}
    assert_same(run, fx)


def test_single_pass_wrap_leaving_u_out_of_range_is_bit_exact(lava):
    """16 inputs spiking together through weights 254 (or -256) at exponent 7 add more than 3 * 2**23
    to u in one step: Lava's single-pass wrap leaves u outside the 24-bit range, and the next
    steps (no input, a = 0) wrap it again.  fxsim and the Lava model must do the same."""
    q, x = quantized(mlp((16, 4, 3), 8), (16,), 4, seed=8)
    edit_layer(q, "ttfs1", weight=np.array([[254] * 16, [-256] * 16, [254] * 8 + [0] * 8, [2] * 16]), weight_exp=7)
    xs = np.vstack([np.ones((1, 16)), x[:2]])
    fx = fxsim(q, xs)
    u_step = 16 * 254 << (7 + 6)
    assert u_step > 3 * 2 ** 23 and fx.layers[0].wraps[0] > 0
    assert_same(run_target(lava, q, xs), fx)


def test_negative_bias_and_negative_exponent_are_bit_exact(lava):
    q, x = quantized(mlp((12, 16, 5), 5), (12,), 8, seed=5)
    rng = np.random.default_rng(1)
    edit_layer(q, "ttfs1", weight=2 * rng.integers(-127, 128, size=(16, 12)), weight_exp=-5,
               bias=rng.integers(-3000, 3000, size=16))
    xs = x[:4]
    fx = fxsim(q, xs)
    assert_same(run_target(lava, q, xs), fx)


def test_dense_delay_gives_the_analytic_spike_step(lava):
    """One input with count K spikes at step 1; the Dense delivers it at step 2 (= arrival A); the
    hidden neuron integrates u = w << (e + 6) for K steps and then ramps: it fires at
    t_in_end + f with f the first f >= 1 such that v(t_in_end) + f r > theta."""
    K = 4
    q, _ = quantized(mlp((3, 2, 2), 6), (3,), K)
    w, r = 64, 1000
    v_end = K * (w << 6)                     # 16384 after K integration steps
    theta = v_end + 2500                     # -> f = 3
    edit_layer(q, "ttfs1", weight=[[w, 0, 0], [0, 0, 0]], weight_exp=0, bias=0, slope=r, threshold=theta)
    edit_layer(q, "readout", weight=[[2, 0], [0, 0]], weight_exp=0, bias=0)
    meta = get_meta(parse_ttfs(q).layers[0].node)
    A, t_in_end = meta["arrival"], meta["t_in_end"]
    assert (A, t_in_end) == (2, A + K - 1)
    f = (theta - v_end) // r + 1
    expected = t_in_end + f
    x = np.array([[1.0, 0.0, 0.0]])
    run = run_target(lava, q, x)
    assert run.info["bit_exact_with_fxsim"], run.info["first_mismatch"]
    assert run.layers[0].times.tolist() == [[expected, -1]]
    v = run.traces["ttfs1"][0, :, 0]
    assert v[0] == 0 and v[1] == w << 6       # nothing at step 1, the input at step 2 (one step of delay)
    assert v[t_in_end - 1] == v_end
    ro = run.traces["readout"][0, :, 0]
    first = int(np.flatnonzero(ro)[0]) + 1   # the hidden spike reaches the readout one step later
    assert first == expected + 1


def test_monitor_recorder_agrees_with_in_model_recording(lava):
    q, x = quantized(mlp((12, 16, 5), 7), (12,), 4, seed=7)
    xs = x[:3]
    a = run_target(lava, q, xs)
    b = run_target(lava, q, xs, recorder="monitor")
    assert b.info["recorder"] == "monitor" and b.info["bit_exact_with_fxsim"]
    for name in a.traces:
        np.testing.assert_array_equal(a.traces[name], b.traces[name])


def test_exported_script_reproduces_the_target(lava, tmp_path):
    from snncompile.targets.lava.export import export_lava

    torch.manual_seed(2)
    net = nn.Sequential(nn.Conv2d(1, 2, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2), nn.Flatten(), nn.Linear(18, 3))
    q, x = quantized(net, (1, 6, 6), 4, seed=2)
    xs = x[:3]
    K = get_meta(q)["steps"]
    folder = export_lava(q, tmp_path / "lava", counts=ttfs_counts(xs, K))
    assert_runtime_copied(folder)
    done = subprocess.run([sys.executable, str(folder / "run_lava.py")], capture_output=True, text=True,
                          timeout=300, cwd=tmp_path)
    assert done.returncode == 0, done.stderr[-3000:]
    assert "sample 2: decision" in done.stdout
    out = np.load(folder / "outputs.npz")
    run = run_target(lava, q, xs)
    fx = fxsim(q, xs)
    np.testing.assert_array_equal(out["readout_v"], run.raw_logits)
    np.testing.assert_array_equal(out["readout_v"], fx.raw_logits)
    np.testing.assert_array_equal(out["decisions"], fx.decisions)
    for la in fx.layers:
        np.testing.assert_array_equal(out[f"spike_steps_{la.name}"], la.times, err_msg=la.name)
    # written again over an existing folder: replaced whole, no inputs.npz without counts
    export_lava(q, folder)
    assert not (folder / "inputs.npz").exists() and (folder / "run_lava.py").exists()
