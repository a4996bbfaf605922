"""Input spike encodings for rate-coded spiking networks (the eRBP LIF chain, DESIGN.md section 4).

``encode(x, steps, kind, seed) -> spikes`` turns a batch of inputs ``x`` (N, *input_shape) with
values in [0, 1] into a spike raster (N, steps, *input_shape) of uint8 (0 or 1).  Index t - 1 of
the time axis holds the spikes "emitted at step t" (t = 1..steps); the deployed network sees them
one step later through its first Affine (one step of delay per connection).

Kinds:

``regular`` (default: deterministic, bit-reproducible, hardware-friendly)
    A deterministic rate code.  Each input keeps an accumulator that starts at a = 0.5; every step
    a += x, and when a >= 1 the input spikes and a -= 1.  Equivalently, the input spikes at step t
    exactly when floor(x t + 1/2) > floor(x (t - 1) + 1/2), which is how it is computed here
    (exact, no accumulated rounding error).  Over T steps an input emits floor(x T + 1/2) spikes
    (round half up), evenly spaced; x = 0 never spikes, x = 1 spikes on every step.
``rate``
    Bernoulli spikes: on each step, independently, a spike with probability x, drawn from
    ``numpy.random.default_rng(seed mod 2**64)`` in sample order (so a given seed gives the same raster).

Inputs are clipped to [0, 1] first (a pixel of 1.0000001 after float arithmetic is a 1).
"""

from __future__ import annotations

import numpy as np

from .errors import InvalidModel

KINDS = ("regular", "rate", "latency")


def _check(x, steps: int, kind: str) -> np.ndarray:
    if kind not in KINDS:
        raise InvalidModel(f"unknown spike encoding {kind!r}; known: {', '.join(KINDS)}")
    if int(steps) != steps or steps < 1:
        raise InvalidModel(f"spike encoding needs at least one step, got steps={steps!r}")
    x = np.asarray(x, dtype=np.float64)
    if x.ndim < 1:
        raise InvalidModel("spike encoding needs a batch of inputs (N, *input_shape), got a scalar")
    if np.isnan(x).any():
        raise InvalidModel("spike encoding: the inputs contain NaN")
    return np.clip(x, 0.0, 1.0)


def encode(x, steps: int, kind: str = "regular", seed: int = 0) -> np.ndarray:
    """Spike raster ``(N, steps, *input_shape)`` uint8 of inputs ``x`` ``(N, *input_shape)``.

    See the module docstring for the three kinds.  ``seed`` matters only for ``rate``.
    """
    x = _check(x, steps, kind)
    n, shape = x.shape[0], x.shape[1:]
    flat = x.reshape(n, 1, -1)
    if kind == "latency":
        step = np.round((1.0 - flat[:, 0]) * (steps - 1)).astype(np.int64)  # (n, inputs), 0-based
        out = np.zeros((n, steps, flat.shape[2]), dtype=np.uint8)
        i, j = np.nonzero(flat[:, 0] > 0)
        out[i, step[i, j], j] = 1
    elif kind == "regular":
        t = np.arange(steps + 1, dtype=np.float64).reshape(1, -1, 1)
        cum = np.floor(flat * t + 0.5)  # spikes emitted in steps 1..t (the accumulator, exactly)
        out = (cum[:, 1:] > cum[:, :-1]).astype(np.uint8)
    else:
        rng = np.random.default_rng(int(seed) % (1 << 64))
        out = np.empty((n, steps, flat.shape[2]), dtype=np.uint8)
        chunk = max(1, 2**22 // max(1, steps * flat.shape[2]))  # bound the float64 draw to ~32 MB
        for i in range(0, n, chunk):
            out[i:i + chunk] = rng.random((min(chunk, n - i), steps, flat.shape[2])) < flat[i:i + chunk]
    return out.reshape((n, steps, *shape))


def ttfs_counts(x, steps: int, window: float = 1.0) -> np.ndarray:
    """The TTFS latency code on a K-step grid (``latency-K``): a value x in [0, window] becomes the
    spike count c = floor(x K / window + 1/2) clipped to 0..K (int64); c = 0 is "no spike", a
    count c > 0 spikes once, at step K - c + 1.  Hidden TTFS activations in [0, B] use the same
    rule with window B (the quantizer's calibration)."""
    c = np.asarray(x, dtype=np.float64) * (steps / window)
    c += 0.5
    np.floor(c, out=c)
    return np.clip(c, 0, steps, out=c).astype(np.int64)


def spike_counts(x, steps: int) -> np.ndarray:
    """Spikes per input of the ``regular`` code over ``steps`` steps: floor(x steps + 1/2) (int64)."""
    x = _check(x, steps, "regular")
    return np.floor(x * steps + 0.5).astype(np.int64)


__all__ = ["KINDS", "encode", "spike_counts", "ttfs_counts"]
