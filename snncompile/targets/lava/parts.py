"""Integer matrices as Lava connection weights (MIXED sign mode), exactly."""

from __future__ import annotations

import numpy as np

from ...errors import InvalidModel


def _valuation(x: np.ndarray) -> int:
    """The largest v such that every nonzero integer of x is a multiple of 2**v."""
    x = np.abs(x[x != 0]).astype(np.int64)
    v = 0
    while x.size and np.all((x >> v) & 1 == 0) and v < 62:
        v += 1
    return v


def lava_parts(mat, weight_exp: int, weight_bits: int, name: str = "?") -> list:
    """Write the integer matrix ``mat`` (scipy sparse or ndarray) with exponent ``weight_exp`` as Lava
    connection weights: a list of (weights CSR int32, exponent) such that the sum over the parts of
    shift_exp(W_i @ s, e_i) equals shift_exp(mat @ s, weight_exp) for every spike vector s, and every
    W_i is unchanged by Lava's clip_weights + truncate_weights (MIXED, ``weight_bits``)."""
    import scipy.sparse as sp

    m = sp.csr_matrix(mat, dtype=np.float64)
    m.sum_duplicates()
    data = m.data
    if data.size and (not np.all(np.isfinite(data)) or np.any(data != np.round(data))):
        raise InvalidModel(f"layer {name!r}: the quantized matrix has non-integer entries")
    m = sp.csr_matrix((data.astype(np.int64), m.indices, m.indptr), shape=m.shape)
    m.eliminate_zeros()
    k = 9 - int(weight_bits)  # MIXED: 8 - num_weight_bits + 1 low bits are zeroed
    if not 1 <= k <= 7:
        raise InvalidModel(f"layer {name!r}: Lava's MIXED weights need 2..8 weight bits, got {weight_bits}")
    lo, hi = -256, 256 - (1 << k)
    if m.nnz == 0:
        return [(m.astype(np.int32), int(weight_exp))]
    d = m.data
    val = _valuation(d)
    # one part: W = M / 2**s on the grid (multiple of 2**k, within [lo, hi])
    s_min = -64
    while s_min < 64 and not (_shift(d.max(), s_min) <= hi and _shift(d.min(), s_min) >= lo):
        s_min += 1
    s_max = val - k
    if s_min <= s_max:
        s = min(max(0, s_min), s_max)  # the valid s closest to 0
        w = m.copy()
        w.data = _exact_shift(d, s)
        return [(w.astype(np.int32), int(weight_exp + s))]
    # several parts: signed digits of c = 9 - k bits, r in [-2**(8-k), 2**(8-k) - 1], so r * 2**k
    # spans exactly Lava's MIXED range [-256, 256 - 2**k]
    c = 9 - k
    half = 1 << (c - 1)
    parts = []
    rest = d >> val
    b = val
    while np.any(rest != 0):
        digit = ((rest + half) & ((1 << c) - 1)) - half   # rest - digit is a multiple of 2**c
        if parts and weight_exp + b < 0:
            raise InvalidModel(f"layer {name!r}: its integer matrix (entries up to {int(np.abs(d).max())}) "
                               f"cannot be written exactly as Lava {weight_bits}-bit MIXED weights with "
                               f"weight_exp={weight_exp}")
        w = m.copy()
        w.data = digit << k
        w.eliminate_zeros()
        if w.nnz:
            parts.append((w.astype(np.int32), int(weight_exp + b - k)))
        rest = (rest - digit) >> c                         # |rest| shrinks: terminates (c >= 2)
        b += c
    return parts


def _shift(x, s: int) -> float:
    return float(x) / (2.0 ** s)


def _exact_shift(d: np.ndarray, s: int) -> np.ndarray:
    return d >> s if s >= 0 else d << (-s)


