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
    """TTFS activations: the pre-activation x clipped to the window [0, K delta] (gradient of the
    clip, like a clipped ReLU) and rounded to the grid of counts, delta * round(x / delta) with
    ties down as the integer neuron does (straight-through for the rounding)."""
    a = torch.clamp(x, 0.0, steps * delta)
    q = torch.clamp(torch.ceil(x.detach() / delta - 0.5), 0, steps) * delta
    return a + (q - a).detach()
