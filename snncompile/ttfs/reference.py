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
    """Earliest spike in each pool window (the SumPool2d geometry of the layer's ops); on the layer's
    ``min_channels`` (min-pool, docs/ttfs_neuron.md) the latest one, inf if an input never spikes."""
    (_, pool), = layer.ops
    k = tuple(int(v) for v in np.ravel(pool.kernel_size))
    s = tuple(int(v) for v in np.ravel(pool.stride))
    k, s = (k * 2)[:2], (s * 2)[:2]
    out = -torch.nn.functional.max_pool2d(-times, k, s)
    mins = list(layer.meta.get("min_channels", ()))
    if mins:
        out[:, mins] = torch.nn.functional.max_pool2d(times[:, mins], k, s)
    return out


WORK_BYTES = 256 * 2**20  # default working-memory budget of one batch (float64 tensors in flight)


def auto_batch_size(net: TtfsNet, work_bytes: int = WORK_BYTES, cap: int = 2000) -> int:
    """Samples per batch so that one batch's float64 tensors stay near ``work_bytes``: about six
    arrays of the widest population (or input) are alive at a time (times, activations, the
    conv output and its temporaries)."""
    widest = max([int(np.prod(net.input_shape))] + [layer.neurons for layer in net.layers]
                 + [int(np.prod(layer.in_shape)) for layer in net.layers])
    return int(max(1, min(cap, work_bytes // (8 * 6 * widest))))


def simulate(net: TtfsNet, x: np.ndarray, batch_size: int | None = None, progress: bool = False,
             keep_times=True, work_bytes: int = WORK_BYTES) -> ReferenceResult:
    """Run the float TTFS network on inputs ``x`` of shape (N, *input_shape) in [0, 1].

    Memory: batches of ``batch_size`` samples (default :func:`auto_batch_size`, bounded by
    ``work_bytes``); results are written into preallocated arrays, so the peak is the kept
    results plus one batch.  ``keep_times``: True keeps every spiking layer's (N, neurons)
    float64 spike times (8 bytes per neuron and sample: 3.3 GB for 1,000 CIFAR samples through a
    VGG); False keeps none (``times`` then holds the per-sample spike counts, int32, under the
    same keys, and ``input_times`` the input spike counts, shape (N, 1)); a collection of layer
    names keeps those layers' times and counts the others.  ``progress`` shows a tqdm bar.
    """
    from tqdm.auto import tqdm

    N = len(x)
    if batch_size is None:
        batch_size = auto_batch_size(net, work_bytes)
    keep = ({layer.name for layer in net.spiking} if keep_times is True else set() if keep_times is False
            else set(keep_times))
    n_in = int(np.prod(net.input_shape))
    logits = np.empty((N, net.readout.neurons), dtype=np.float64)
    times_all = {layer.name: (np.empty((N, layer.neurons), dtype=np.float64) if layer.name in keep
                              else np.zeros((N,), dtype=np.int32)) for layer in net.spiking}
    inputs_all = np.empty((N, n_in), dtype=np.float64) if keep_times is True else np.zeros((N, 1), dtype=np.int32)
    bar = tqdm(total=N, desc="reference", unit="sample", disable=not progress, leave=False, mininterval=0.5)
    with torch.no_grad():
        for i in range(0, N, batch_size):
            xb = torch.tensor(np.asarray(x[i:i + batch_size], dtype=np.float64))
            n = len(xb)
            t = input_spike_times(xb)
            if keep_times is True:
                inputs_all[i:i + n] = t.reshape(n, -1).numpy()
            else:
                inputs_all[i:i + n, 0] = torch.isfinite(t).reshape(n, -1).sum(1).numpy()
            t_max_prev = 1.0
            for layer in net.layers:
                act = torch.where(torch.isfinite(t), t_max_prev - t, torch.zeros_like(t))
                if layer.role == "readout":
                    logits[i:i + n] = (apply_chain(layer.ops, act, with_bias=False) + drive(layer)).reshape(n, -1).numpy()
                    break
                t = hidden_times(layer, act) if layer.role == "hidden" else pool_times(layer, t)
                del act
                t_max_prev = layer.meta["t_max"]
                if layer.name in keep:
                    times_all[layer.name][i:i + n] = t.reshape(n, -1).numpy()
                else:
                    times_all[layer.name][i:i + n] = torch.isfinite(t).reshape(n, -1).sum(1).numpy()
            bar.update(n)
    bar.close()
    return ReferenceResult(logits, times_all, inputs_all)
