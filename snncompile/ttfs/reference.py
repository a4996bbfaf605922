"""Float64 reference of the B1 TTFS network: exact spike times in closed form.

For a hidden layer n with window [t_min, t_max] and inputs j that fired at t_j (in the
previous window), the potential at the end of integration is

    V_i(t_min) = sum_j W_ij (t_min - t_j) + b_i          (integrated current + drive)

and from t_min on V rises with slope 1, so the first (and only) threshold crossing of
V = B is at

    t_i = t_min + B - V_i(t_min),   clipped to t_min from below;  no spike if t_i >= t_max.

A max-pool neuron fires at the earliest spike time in its pool window.  The readout
potential at its t_min, V_i(t_min), is the logit vector.  All times are in window units
(the input window is [0, 1]).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from ..neurons.ttfs import NO_SPIKE, float_spike_time
from ..nirops import apply_chain
from .graph import TtfsLayer, TtfsNet


@dataclass
class ReferenceResult:
    logits: np.ndarray           # (N, n_out) readout potentials at t_min of the readout
    times: dict                  # layer name -> (N, neurons) spike times, inf = no spike
    input_times: np.ndarray      # (N, n_in) input spike times, inf = no spike


def input_spike_times(x: torch.Tensor) -> torch.Tensor:
    """Latency code: x in [0, 1] fires at t = 1 - x; x = 0 never fires."""
    return torch.where(x > 0, 1.0 - x, torch.full_like(x, NO_SPIKE))


def drive(layer: TtfsLayer) -> torch.Tensor:
    """b_i: the bias integrated until t_min (v_leak / hold * t_min)."""
    node, meta = layer.node, layer.meta
    return torch.as_tensor(np.asarray(node.v_leak, dtype=np.float64) / meta["hold"] * meta["t_min"])


def hidden_times(layer: TtfsLayer, act: torch.Tensor) -> torch.Tensor:
    meta = layer.meta
    t_min, t_max = meta["t_min"], meta["t_max"]
    v = apply_chain(layer.ops, act, with_bias=False) + drive(layer)
    return torch.as_tensor(float_spike_time(v.numpy(), t_min, t_max, meta["B"]))


def pool_times(layer: TtfsLayer, times: torch.Tensor) -> torch.Tensor:
    """Earliest spike in each pool window (the SumPool2d geometry of the layer's ops)."""
    (_, pool), = layer.ops
    k = tuple(int(v) for v in np.ravel(pool.kernel_size))
    s = tuple(int(v) for v in np.ravel(pool.stride))
    k, s = (k * 2)[:2], (s * 2)[:2]
    return -torch.nn.functional.max_pool2d(-times, k, s)


def simulate(net: TtfsNet, x: np.ndarray, batch_size: int = 2000) -> ReferenceResult:
    """Run the float TTFS network on inputs ``x`` of shape (N, *input_shape) in [0, 1]."""
    logits, times_all, inputs_all = [], {layer.name: [] for layer in net.spiking}, []
    with torch.no_grad():
        for i in range(0, len(x), batch_size):
            xb = torch.tensor(np.asarray(x[i:i + batch_size], dtype=np.float64))
            t = input_spike_times(xb)
            inputs_all.append(t.reshape(len(xb), -1).numpy())
            t_max_prev = 1.0
            for layer in net.layers:
                act = torch.where(torch.isfinite(t), t_max_prev - t, torch.zeros_like(t))
                if layer.role == "readout":
                    logits.append((apply_chain(layer.ops, act, with_bias=False) + drive(layer)).reshape(len(xb), -1).numpy())
                    break
                t = hidden_times(layer, act) if layer.role == "hidden" else pool_times(layer, t)
                t_max_prev = layer.meta["t_max"]
                times_all[layer.name].append(t.reshape(len(xb), -1).numpy())
    cat = np.concatenate
    return ReferenceResult(cat(logits), {k: cat(v) for k, v in times_all.items()}, cat(inputs_all))
