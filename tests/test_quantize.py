"""The quantizer: rounding rules (hypothesis properties) and the TTFS quantization pass."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
import torch
from conftest import mlp
from hypothesis import given
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from snncompile.arith import weight_grid
from snncompile.encode import ttfs_counts
from snncompile.errors import ProfileError, ProfileViolation
from snncompile.ir import get_meta, read_nir, write_nir
from snncompile.profile import load_profile
from snncompile.quantize.fake import fake_quant_weights
from snncompile.quantize.rounding import quantize_weights, weight_scale
from snncompile.quantize.ttfs import quantize_ttfs
from snncompile.ttfs.convert import convert
from snncompile.ttfs.graph import parse_ttfs

finite = st.floats(-10, 10, allow_nan=False, allow_infinity=False)


@given(arrays(np.float64, st.integers(1, 40), elements=finite), st.integers(2, 8))
def test_weights_stay_on_grid_with_half_step_error(w, bits):
    scale = weight_scale(np.abs(w).max(), bits, 8, "mixed")
    q, clipped = quantize_weights(w, scale, bits, 8, "mixed")
    step, lo, hi = weight_grid(bits, 8, "mixed")
    assert q.min() >= lo and q.max() <= hi
    assert np.all(q % step == 0)
    assert clipped == 0.0
    assert np.abs(w - scale * q).max() <= scale * step / 2 + 1e-12


@given(arrays(np.float64, st.integers(1, 50), elements=st.floats(0, 1)), st.integers(1, 64))
def test_counts_in_range_with_half_step_error(x, K):
    c = ttfs_counts(x, K)
    assert c.min() >= 0 and c.max() <= K
    assert np.abs(c / K - x).max() <= 0.5 / K + 1e-12


@given(arrays(np.float32, st.integers(1, 30), elements=st.floats(-3, 3, width=32)), st.integers(2, 8))
def test_fake_quant_forward_equals_quantizer(w, bits):
    scale = weight_scale(float(np.abs(w).max()), bits, 8, "mixed")
    q, _ = quantize_weights(w.astype(np.float64), scale, bits, 8, "mixed")
    t = torch.tensor(w, requires_grad=True)
    out = fake_quant_weights(t, scale, bits, 8, "mixed")
    assert np.allclose(out.detach().numpy(), scale * q, rtol=0, atol=1e-6 * max(1.0, scale * 256))
    out.sum().backward()  # straight-through: gradient 1 inside the range
    assert np.all(t.grad.numpy() == 1.0)


def test_quantize_pass_writes_integer_graph(tmp_path, rng):
    model = mlp()
    x = rng.random((40, 12))
    q, table = quantize_ttfs(convert(model, x), load_profile("loihi2"), 8, x)
    meta = get_meta(q)
    assert meta["quantized"] and meta["steps"] == 8 and meta["profile"] == "loihi2"
    net = parse_ttfs(q)
    for layer in net.layers:
        for _, node in layer.ops:
            if hasattr(node, "weight"):
                w = np.asarray(node.weight)
                assert np.array_equal(w, np.round(w)) and w.min() >= -256 and w.max() <= 254 and np.all(w % 2 == 0)
        assert layer.meta["weight_exp"] in range(-8, 8)
    assert [row["layer"] for row in table] == [la.name for la in net.layers]
    write_nir(q, tmp_path / "q.nir")
    back = read_nir(tmp_path / "q.nir", type_check=False)
    assert get_meta(back) == meta


def test_fewer_bits_coarser_grid(rng):
    model = mlp()
    x = rng.random((40, 12))
    g = convert(model, x)
    q4, _ = quantize_ttfs(g, load_profile("loihi2").with_weight_bits(4), 8, x)
    w = np.asarray(parse_ttfs(q4).layers[0].ops[0][1].weight)
    assert np.all(w % 32 == 0) and len(np.unique(w)) <= 16


def test_bits_above_profile_is_an_error():
    with pytest.raises(ProfileError, match="8-bit"):
        load_profile("loihi2").with_weight_bits(9)


def test_no_exponent_fits_raises_profile_violation(rng):
    model = mlp()
    x = rng.random((40, 12))
    prof = load_profile("loihi2")
    tiny = dataclasses.replace(prof, neuron=dataclasses.replace(prof.neuron, state_bits=10), weights=dataclasses.replace(
        prof.weights, exp_min=0, exp_max=0))
    with pytest.raises(ProfileViolation) as err:
        quantize_ttfs(convert(model, x), tiny, 16, x)
    assert "10-bit neuron state" in str(err.value) and err.value.layer.startswith("ttfs")
