"""Loihi fixed-point rules (DESIGN.md section 8), pinned with analytic values and against Lava."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from snncompile.arith import (
    bias_round,
    bias_split,
    clip_truncate,
    decay,
    saturate,
    shift_exp,
    trunc_shift,
    weight_grid,
    wrap,
)


def test_truncation_rounds_toward_zero():
    assert trunc_shift(np.array([4095, -4095, 4096, -4096, 8191, -8191]), 12).tolist() == [0, 0, 1, -1, 1, -1]


def test_decay_matches_lava_offsets():
    # du = 0 with Lava's ds_offset = 1 still leaks: 5000 * 4095 / 4096 = 4998.78 -> 4998
    assert decay(np.array([5000, -5000]), 0, 12, offset=1).tolist() == [4998, -4998]
    # dv = 0 with dm_offset = 0 holds exactly
    assert decay(np.array([5000, -5000]), 0, 12, offset=0).tolist() == [5000, -5000]
    # du = 4095 (+1) forgets everything
    assert decay(np.array([123456]), 4095, 12, offset=1).tolist() == [0]


def test_wrap_single_pass_24_bit():
    m = 2 ** 23
    got = wrap(np.array([m, m + 1, -m, -m + 1, 3 * m]), 24)
    # m stays (strict >), m+1 -> m+1-2m; -m -> -m+2m = m (<= -m wraps); 3m -> 3m-2m = m (one pass only)
    assert got.tolist() == [m, -m + 1, m, -m + 1, m]


def test_wrap_counts_per_sample():
    count = np.zeros(2, np.int64)
    wrap(np.array([[2 ** 23 + 5, 0], [1, 2]]), 24, count)
    assert count.tolist() == [1, 0]


def test_saturation_is_symmetric():
    m = 2 ** 23 - 1
    count = np.zeros(1, np.int64)
    assert saturate(np.array([[m + 10, -m - 10, 5]]), 24, count).tolist() == [[m, -m, 5]]
    assert count.tolist() == [2]


def test_dense_exponent_shift_floors():
    assert shift_exp(np.array([-3, 3, 5]), -1).tolist() == [-2, 1, 2]
    assert shift_exp(np.array([-3, 3]), 2).tolist() == [-12, 12]


def test_weight_grid_8_bit_mixed_is_even():
    assert weight_grid(8, 8, "mixed") == (2, -256, 254)
    assert weight_grid(4, 8, "mixed") == (32, -256, 224)
    assert weight_grid(8, 8, "exc") == (1, 0, 255)


@given(st.lists(st.integers(-400, 400), min_size=1, max_size=30), st.integers(1, 8),
       st.sampled_from(["mixed", "exc", "inh"]))
def test_clip_truncate_equals_lava(ws, bits, mode):
    weightutils = pytest.importorskip("lava.utils.weightutils")  # only numpy/scipy: no compat hook needed
    sm = {"mixed": weightutils.SignMode.MIXED, "exc": weightutils.SignMode.EXCITATORY,
          "inh": weightutils.SignMode.INHIBITORY}[mode]
    w = np.array(ws)
    lava = weightutils.truncate_weights(weightutils.clip_weights(w, sm, num_bits=8), sm, bits)
    assert clip_truncate(w, bits, 8, mode).tolist() == np.asarray(lava).tolist()


def test_bias_split_and_round():
    mant, exp = bias_split(np.array([5, 4095, 8192, -10000]), 13, 3)
    assert (mant << exp).tolist() == [5, 4095, 8192, -10000]
    assert np.all(np.abs(mant) <= 4095)
    r = bias_round(np.array([10001.0, -3.4, 600000.0]), 13, 3)
    assert r.tolist()[:2] == [10000, -3]
    assert r[2] == 4095 << 7  # saturates at the largest representable bias
