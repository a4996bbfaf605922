"""The quantizer's rounding as torch fake-quant (straight-through estimator), for QAT.

Forward: exactly :func:`snncompile.quantize.rounding.quantize_weights` times the scale.
Backward: gradient 1 (straight through) inside the representable range, 0 where clipped.
"""

from __future__ import annotations

import torch

from ..arith import weight_grid


def fake_quant_weights(w: torch.Tensor, scale: float, bits: int, full_bits: int, sign_mode: str) -> torch.Tensor:
    step, lo, hi = weight_grid(bits, full_bits, sign_mode)
    unit = scale * step
    q = torch.clamp(torch.round(w.detach().double() / unit) * step, lo, hi) * scale
    r = w.detach().double() / scale
    inside = (r >= lo - step / 2) & (r <= hi + step / 2)  # values that round into the range are not clipped
    return w + (q.to(w.dtype) - w).detach() - (~inside).to(w.dtype) * (w - w.detach())


def fake_quant_counts(x: torch.Tensor, delta: float, steps: int) -> torch.Tensor:
    """Activations on the TTFS grid: delta * clip(floor(x / delta + 1/2), 0, K), straight through."""
    q = torch.clamp(torch.floor(x.detach() / delta + 0.5), 0, steps) * delta
    return x + (q - x).detach()
