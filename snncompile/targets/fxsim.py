"""fxsim: our batched bit-accurate fixed-point simulator.

For TTFS graphs it runs the integer neuron program of :mod:`snncompile.ttfs.fixed` with the
Loihi Dense rules (one step of delay per layer, weight exponent shifts, 24-bit wrap of u,
saturation of v), vectorized over samples, and counts spikes, wraps and saturations per
layer.  It also estimates energy per sample from the profile's per-operation figures.
"""

from __future__ import annotations

import numpy as np
from tqdm.auto import tqdm

from ..errors import InvalidModel
from ..quantize.rounding import encode_counts
from ..ttfs.fixed import arith_of, fixed_layers, run_network
from ..ttfs.graph import is_ttfs_graph, parse_ttfs
from .base import LayerRun, Run, decide


def energy_estimate(profile, synops: np.ndarray, updates: int, spikes: np.ndarray) -> dict:
    """Per-sample energy (nJ) = synops * E_synop + updates * E_update + spikes * E_spike (estimate)."""
    e = profile.energy
    total = synops * e.synop_pj + updates * e.neuron_update_pj + spikes * e.spike_pj
    return {"label": "estimate", "source": e.source, "nJ_per_sample_mean": float(np.mean(total) / 1e3),
            "synops_per_sample": float(np.mean(synops)), "neuron_updates_per_sample": int(updates),
            "spikes_per_sample": float(np.mean(spikes)),
            "pJ_per_op": {"synop": e.synop_pj, "neuron_update": e.neuron_update_pj, "spike": e.spike_pj}}


class FxsimTarget:
    name = "fxsim"

    def run(self, graph, inputs: np.ndarray, profile=None, batch_size: int = 2000, mode: str = "auto",
            record: bool = False, progress: bool = False, **options) -> Run:
        if not is_ttfs_graph(graph):
            return self._run_lif(graph, options.get("spikes"), record)
        net = parse_ttfs(graph)
        layers = fixed_layers(net)
        ar = arith_of(net)
        K, T = int(net.meta["steps"]), int(net.meta["t_total"])
        x = np.asarray(inputs, dtype=np.float64).reshape((-1, *net.input_shape))
        if x.size and (x.min() < 0 or x.max() > 1):
            raise InvalidModel("fxsim inputs must lie in [0, 1] (latency code)")
        chunks = []
        bar = tqdm(range(0, len(x), batch_size), desc="fxsim", disable=not progress, leave=False)
        for i in bar:
            c = encode_counts(x[i:i + batch_size], K)
            chunks.append((c, run_network(layers, ar, c, T, mode=mode, record=record)))
        counts_in = np.concatenate([c for c, _ in chunks])
        outs = [[o[k] for _, o in chunks] for k in range(len(layers))]
        cat = np.concatenate
        lruns, traces = [], {}
        spikes_total = (counts_in.reshape(len(x), -1) > 0).sum(1).astype(np.float64)
        synops = np.zeros(len(x))
        prev_fired = (counts_in.reshape(len(x), -1) > 0).astype(np.float64)
        for layer, parts in zip(layers, outs):
            synops += prev_fired @ layer.map.fanout().astype(np.float64)
            if record:
                traces[layer.name] = cat([p.v_trace for p in parts])
            if layer.role == "readout":
                z = cat([p.z for p in parts])
                continue
            step = cat([p.spike_step for p in parts])
            fired = step >= 0
            lruns.append(LayerRun(layer.name, layer.role, layer.neurons, fired.sum(1), step,
                                  cat([p.sats for p in parts]), cat([p.wraps for p in parts])))
            spikes_total += fired.sum(1)
            prev_fired = fired.astype(np.float64)
        ro = layers[-1]
        ro_sats = cat([p.sats for p in outs[-1]])
        ro_wraps = cat([p.wraps for p in outs[-1]])
        lsb = float(net.readout.meta.get("v_lsb", 1.0))
        info = {"steps": K, "t_total": T, "time_unit": "step", "readout_saturations": ro_sats,
                "readout_wraps": ro_wraps}
        if profile is not None:
            neurons = sum(la.neurons for la in layers)
            info["energy"] = energy_estimate(profile, synops, neurons * T, spikes_total)
        run = Run(self.name, z * lsb, decide(z), lruns, (counts_in.reshape(len(x), -1) > 0).sum(1),
                  info=info, raw_logits=z, traces=traces or None)
        run.info["readout"] = ro.name
        return run

    def _run_lif(self, graph, spikes, record: bool) -> Run:
        """A quantized LIF graph (model.q.nir of a spiking NIR input) on a spike raster ``spikes``."""
        from ..lif.fixed import read_qlif, simulate_fixed

        qnet = read_qlif(graph)
        if spikes is None:
            raise InvalidModel("quantized LIF graphs run on spike rasters: pass spikes=(N, T, *input_shape)")
        spikes = np.asarray(spikes)
        res = simulate_fixed(qnet, spikes, record=record)
        layers = [LayerRun(name, "output" if name == qnet.readout else "hidden", p.neurons, res.counts[name].sum(1),
                           res.first_step[name], res.sats[name], res.wraps[name])
                  for name, p in qnet.pops.items() if p.spiking]
        return Run(self.name, res.scores, decide(res.scores), layers, spikes.reshape(len(spikes), -1).sum(1),
                   info={"t_total": res.t_total, "time_unit": "step"}, traces=res.traces if record else None)
