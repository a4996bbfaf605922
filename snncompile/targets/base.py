"""The target interface and registry.

A target has a ``name`` and ``run(graph, inputs, profile, **options) -> Run``.  ``graph``
is a NIR graph (float for the reference and norse, quantized for fxsim and lava),
``inputs`` a float array (N, *input_shape) in [0, 1].
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass, field
from typing import Protocol

import numpy as np

from ..errors import SnnCompileError, TargetUnavailable

_REGISTRY = {
    "reference": ("snncompile.targets.reference", "ReferenceTarget"),
    "fxsim": ("snncompile.targets.fxsim", "FxsimTarget"),
    "lava": ("snncompile.targets.lava", "LavaTarget"),
    "norse": ("snncompile.targets.norse", "NorseTarget"),
}


@dataclass
class LayerRun:
    """Per-population result.  ``times``: first-spike time per sample and neuron in the target's
    own unit (reference: window units, inf = none; fixed-point: step number, -1 = none)."""

    name: str
    role: str
    neurons: int
    spikes: np.ndarray                 # (N,) spikes per sample
    times: np.ndarray | None = None    # (N, neurons)
    saturations: np.ndarray | None = None  # (N,) saturation events per sample (fixed point)
    wraps: np.ndarray | None = None        # (N,) wrap events per sample (fixed point)


@dataclass
class Run:
    target: str
    logits: np.ndarray       # (N, n_out), float (fixed point: integer v times its LSB value)
    decisions: np.ndarray    # (N,) argmax of the readout
    layers: list             # [LayerRun]
    input_spikes: np.ndarray  # (N,) input spikes per sample
    info: dict = field(default_factory=dict)
    raw_logits: np.ndarray | None = None  # fixed point: the integer readout potentials
    traces: dict | None = None  # optional: layer -> (N, T, neurons) integer v (bit-exact comparisons)


class Target(Protocol):
    name: str

    def run(self, graph, inputs: np.ndarray, profile=None, **options) -> Run: ...


def available_targets() -> list[str]:
    return list(_REGISTRY)


def get_target(name: str) -> Target:
    if name not in _REGISTRY:
        raise SnnCompileError(f"unknown target {name!r}; available: {', '.join(_REGISTRY)}")
    module, cls = _REGISTRY[name]
    try:
        mod = importlib.import_module(module)
    except ImportError as exc:
        raise TargetUnavailable(f"target {name!r} cannot be imported: {exc}") from None
    return getattr(mod, cls)()


def decide(logits: np.ndarray) -> np.ndarray:
    """Decision = argmax of the readout (ties go to the lowest index, as numpy and Lava do)."""
    return np.asarray(logits).argmax(axis=1)
