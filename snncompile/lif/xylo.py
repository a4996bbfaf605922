"""Quantized Xylo graphs run on fxsim (:func:`snncompile.neurons.xylo.simulate`) or on rockpool's
XyloSim, turned into a :class:`~snncompile.targets.base.Run` the same way.

The input raster (N, T_in, *input_shape) of spike counts is padded with silent steps to
T = T_in + depth (Xylo delays each hidden -> hidden and hidden -> output connection by one step;
input spikes act in their own step), so the readout sees every input.  Hidden populations are
the slices of Xylo's hidden pool recorded in the graph (``xylo_populations``); the readout is
the spike count of the output neurons, or for a non-spiking readout the mean of their v times
its LSB value.
"""

from __future__ import annotations

import numpy as np

from ..ir import get_meta
from ..neurons.lif import readout_scores
from ..spikes import first_spike_steps


def xylo_raster(graph, raster, t_total: int | None = None) -> np.ndarray:
    """(N, T, inputs) int64 input counts, padded with silent steps to ``t_total`` (default T_in + depth)."""
    raster = np.asarray(raster)
    n, t_in = raster.shape[0], raster.shape[1]
    T = t_in + int(get_meta(graph)["depth"]) if t_total is None else int(t_total)
    out = np.zeros((n, T, int(np.prod(raster.shape[2:]))), np.int64)
    k = min(T, t_in)
    out[:, :k] = raster.reshape(n, t_in, -1)[:, :k]
    return out


def to_run(name: str, graph, rec: dict, raster: np.ndarray, record: bool, run_cls, layer_cls, decide) -> object:
    """A Run from a Xylo recording (``simulate`` / ``run_xylosim`` arrays)."""
    meta = get_meta(graph)
    ro = meta["xylo_readout"]
    om = get_meta(graph.nodes["output"])
    layers, traces, spikes = [], {}, {}
    for pop, (a, b) in meta["xylo_populations"].items():
        s = rec["spikes"][:, :, a:b]
        layers.append(layer_cls(pop, "hidden", b - a, s.sum(axis=(1, 2)), first_spike_steps(s)))
        traces[pop], spikes[pop] = rec["vmem"][:, :, a:b], s
    so = rec["spikes_out"]
    if om.get("spiking", True):
        layers.append(layer_cls(ro, "output", so.shape[2], so.sum(axis=(1, 2)), first_spike_steps(so)))
    traces[ro], spikes[ro] = rec["vmem_out"], so
    T = so.shape[1]
    raw, scores = readout_scores(bool(om.get("spiking", True)), so.sum(axis=1), rec["vmem_out"].sum(axis=1),
                                 float(om.get("v_lsb", 1.0)), T)
    return run_cls(name, scores, decide(scores), layers, raster.reshape(len(raster), -1).sum(axis=1),
                   info={"t_total": T, "time_unit": "step", "readout": ro, "arithmetic": "xylo"},
                   raw_logits=raw, traces=traces if record else None, spikes=spikes if record else None)
