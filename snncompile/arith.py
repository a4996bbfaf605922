"""Fixed-point rules of the Loihi family, as Lava 0.10.0 implements them (DESIGN.md section 8).

Every function works elementwise on int64 numpy arrays (or Python ints) and is used by
both the quantizer and fxsim; tests pin each rule with analytic cases.  Widths come from
the :class:`~snncompile.profile.HwProfile`, never from constants here.
"""

from __future__ import annotations

import numpy as np


def trunc_shift(x, shift: int):
    """sign(x) * (|x| >> shift): a right shift that rounds toward zero (Lava's decay)."""
    x = np.asarray(x, dtype=np.int64)
    return np.sign(x) * (np.abs(x) >> shift)


def decay(x, d: int, decay_bits: int, offset: int = 0):
    """Lava decay: trunc0(x * (2**decay_bits - (d + offset)) >> decay_bits).

    ``offset`` is Lava's ds_offset (1 for u: du = 0 still leaks 1/4096 per step) or
    dm_offset (0 for v: dv = 0 holds v exactly).
    """
    x = np.asarray(x, dtype=np.int64)
    return trunc_shift(x * ((1 << decay_bits) - (d + offset)), decay_bits)


def wrap(u, bits: int, count=None):
    """Lava's single-pass wrap of the current u to ``bits`` bits.

    With m = 2**(bits-1): u > m -> u - 2m; then, if that result is <= -m, the ORIGINAL
    value + 2m (Lava reuses the unwrapped value in the second test).  Returns the wrapped
    array and, if ``count`` is an int64 array, adds the number of wrapped elements per row.
    """
    u = np.asarray(u, dtype=np.int64)
    m = np.int64(1) << (bits - 1)
    first = np.where(u > m, u - 2 * m, u)
    out = np.where(first <= -m, u + 2 * m, first)
    if count is not None:
        changed = out != u
        count += changed.reshape(changed.shape[0], -1).sum(axis=1)
    return out


def wrap32(x):
    """Two's-complement int32 wrap: Lava's LIF shifts and adds activations in int32 arrays."""
    x = np.asarray(x, dtype=np.int64)
    return ((x + (1 << 31)) & ((1 << 32) - 1)) - (1 << 31)


def saturate(v, bits: int, count=None):
    """Clip v to [-(2**(bits-1) - 1), 2**(bits-1) - 1] (Lava saturates the voltage)."""
    v = np.asarray(v, dtype=np.int64)
    m = (np.int64(1) << (bits - 1)) - 1
    out = np.clip(v, -m, m)
    if count is not None:
        changed = out != v
        count += changed.reshape(changed.shape[0], -1).sum(axis=1)
    return out


def shift_exp(acc, exp: int):
    """Dense output: acc << exp for exp > 0, acc >> -exp (floor, numpy right shift) otherwise."""
    acc = np.asarray(acc, dtype=np.int64)
    return acc << exp if exp > 0 else acc >> (-exp)


def weight_grid(bits: int, full_bits: int, sign_mode: str):
    """(step, lo, hi) of the mantissa grid after Lava's clip_weights + truncate_weights.

    Lava truncates ``full_bits - bits + (sign_mode == 'mixed')`` low bits: 8-bit MIXED
    mantissas are even values in [-256, 254]; EXC in [0, 255]; INH in [-255, 0].
    """
    k = full_bits - bits + (1 if sign_mode == "mixed" else 0)
    step = 1 << k
    top = 1 << full_bits
    if sign_mode == "mixed":
        return step, -top, top - step
    if sign_mode == "exc":
        return step, 0, ((top - 1) >> k) << k
    return step, -(((top - 1) >> k) << k), 0


def clip_truncate(w, bits: int, full_bits: int, sign_mode: str):
    """What Lava's Dense does to weights on its first step: clip to the sign mode's range,
    then zero the low bits (an arithmetic right-then-left shift, i.e. floor to the grid)."""
    w = np.asarray(w, dtype=np.int64)
    k = full_bits - bits + (1 if sign_mode == "mixed" else 0)
    top = 1 << full_bits
    if sign_mode == "inh":
        w = -w
    lo = -top if sign_mode == "mixed" else 0
    w = np.clip(w, lo, top - 1)
    w = (w >> k) << k
    return -w if sign_mode == "inh" else w


def bias_split(beta, mant_bits: int, exp_bits: int):
    """Write integer biases as mant << exp with a signed ``mant_bits`` mantissa (Lava's bias_mant,
    bias_exp); returns (mant, exp) arrays.  Raises ValueError if a value cannot be represented."""
    beta = np.asarray(beta, dtype=np.int64)
    mmax = (1 << (mant_bits - 1)) - 1
    exp = np.zeros_like(beta)
    mag = np.abs(beta)
    for e in range(1 << exp_bits):
        need = (mag >> e) > mmax
        exp = np.where(need, e + 1, exp)
    if np.any(exp >= (1 << exp_bits)):
        raise ValueError("bias out of range")
    mant = beta >> exp
    if np.any((mant << exp) != beta):
        raise ValueError("bias not on the mantissa grid")
    return mant, exp


def bias_round(beta_float, mant_bits: int, exp_bits: int):
    """Round float biases to the nearest value representable as mant << exp (saturating)."""
    b = np.asarray(beta_float, dtype=np.float64)
    mmax = (1 << (mant_bits - 1)) - 1
    emax = (1 << exp_bits) - 1
    exp = np.clip(np.ceil(np.log2(np.maximum(np.abs(b), 1.0) / mmax)), 0, emax).astype(np.int64)
    mant = np.clip(np.round(b / (2.0 ** exp)), -mmax, mmax).astype(np.int64)
    return mant << exp
