"""The default per-layer weight-scale policy for a weight width (``--weight-scale auto``).

Rule: MSE-optimal scales (:func:`snncompile.quantize.rounding.mse_scale`, which may clip the
largest weights) at 4 bits or fewer, max-abs scales (nothing clipped) above.  Measured on
MNIST-5k 784-340-10, loihi2, fxsim, 1,000 test samples (docs/finetune.md): at 2 bits max-abs
loses the network (7-11 %) while MSE keeps 86-93 %; at 3-4 bits MSE is 0-1 point better; at
5-8 bits the two are within 0.7 point of each other.
"""

from __future__ import annotations

from ..errors import InvalidModel

POLICIES = ("max", "mse")
AUTO = "auto"
MSE_MAX_BITS = 4  # MSE scales at this many weight bits or fewer


def auto_scale_policy(policy: str | None, bits: int) -> str:
    """The concrete policy ("max" or "mse") for ``policy`` (None or "auto": the rule above) at ``bits``."""
    if policy is None or policy == AUTO:
        return "mse" if bits <= MSE_MAX_BITS else "max"
    if policy not in POLICIES:
        raise InvalidModel(f"--weight-scale must be one of auto, {', '.join(POLICIES)}, got {policy!r}")
    return policy
