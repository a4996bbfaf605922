"""Rounding rules shared by the NIR quantization pass and torch fake-quant.

Weights: a per-layer float scale s and integer mantissas on the profile's grid
(:func:`snncompile.arith.weight_grid`): w = clip(step * round(W / (s * step)), lo, hi).
The scale maps the largest |W| of the layer to the largest positive mantissa, so nothing
is clipped and the rounding error is at most s * step / 2.

Activations travel as TTFS spike counts: :func:`snncompile.encode.ttfs_counts`.
"""

from __future__ import annotations

import numpy as np

from ..arith import weight_grid
from ..errors import InvalidModel


def weight_scale(w_absmax: float, bits: int, full_bits: int, sign_mode: str) -> float:
    """Scale s such that the largest |W| maps onto the largest positive mantissa."""
    step, lo, hi = weight_grid(bits, full_bits, sign_mode)
    top = hi if sign_mode != "inh" else -lo
    if top <= 0:
        raise InvalidModel(f"{bits}-bit {sign_mode} weights: the grid holds no positive magnitude (values {lo}..{hi} "
                           f"in steps of {step}); rule: a {sign_mode} weight needs at least 2 bits")
    scale = float(w_absmax) / top
    # an all-zero (or subnormal) layer: any scale represents it; keep 1/scale finite
    return scale if scale > 0 and np.isfinite(1.0 / scale) and np.isfinite(1.0 / (scale * top)) else 1.0


def quantize_weights(w: np.ndarray, scale: float, bits: int, full_bits: int, sign_mode: str):
    """Integer mantissas of ``w`` on the grid; returns (mantissa int64, clipped fraction)."""
    step, lo, hi = weight_grid(bits, full_bits, sign_mode)
    q = np.round(np.asarray(w, dtype=np.float64) / (scale * step)) * step
    clipped = float(np.mean((q < lo) | (q > hi))) if q.size else 0.0
    return np.clip(q, lo, hi).astype(np.int64), clipped


def mse_scale(w: np.ndarray, bits: int, full_bits: int, sign_mode: str, candidates: int = 64) -> float:
    """The scale that minimizes the squared rounding error of ``w`` (clipping the largest weights
    when that pays off): a search over max-abs scales times factors in (0, 1]."""
    w = np.asarray(w, dtype=np.float64).ravel()
    top = weight_scale(np.abs(w).max(initial=0.0), bits, full_bits, sign_mode)
    best, best_err = top, np.inf
    for f in np.linspace(1.0 / candidates, 1.0, candidates):
        q, _ = quantize_weights(w, top * f, bits, full_bits, sign_mode)
        err = float(np.sum((w - top * f * q) ** 2))
        if err < best_err:
            best, best_err = top * f, err
    return best


def layer_scale(w: np.ndarray, bits: int, full_bits: int, sign_mode: str, policy: str = "max",
                stored: float | None = None) -> float:
    """Per-layer weight scale: ``stored`` (a scale fixed by fine-tuning, in the node metadata) if
    given, else max-abs (no clipping: the most precision without overflow) or MSE-optimal."""
    if stored is not None:
        return float(stored)
    if policy == "mse":
        return mse_scale(w, bits, full_bits, sign_mode)
    return weight_scale(np.abs(np.asarray(w)).max(initial=0.0), bits, full_bits, sign_mode)
