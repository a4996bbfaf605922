"""fxsim: our batched bit-accurate fixed-point simulator, for both neuron families.

TTFS graphs run the integer neuron program of :mod:`snncompile.neurons.ttfs` through
:mod:`snncompile.ttfs.fixed` (closed form where bounds allow, stepped otherwise); quantized LIF
graphs run :func:`snncompile.neurons.lif.loihi_step` through :mod:`snncompile.lif.fixed`.  Both
count spikes, wraps and saturations per population and, given a profile, estimate energy.

Options: ``record`` (every population's integer v and spikes at every step: ``Run.traces``,
``Run.spikes``), ``mode`` (TTFS: auto | closed | stepped), ``batch_size``, ``progress``,
``t_total`` (LIF: steps per sample, default T_in + depth).
"""

from __future__ import annotations

import time

import numpy as np
from tqdm.auto import tqdm

from ..errors import InvalidModel
from ..spikes import raster_from_steps
from .base import LayerRun, Run, RunRequest, Target, decide


def energy_estimate(profile, synops: np.ndarray, updates: int, spikes: np.ndarray) -> dict:
    """Per-sample energy (nJ) = synops * E_synop + updates * E_update + spikes * E_spike (estimate)."""
    e = profile.energy
    total = synops * e.synop_pj + updates * e.neuron_update_pj + spikes * e.spike_pj
    return {"label": "estimate", "source": e.source, "nJ_per_sample_mean": float(np.mean(total) / 1e3),
            "synops_per_sample": float(np.mean(synops)), "neuron_updates_per_sample": int(updates),
            "spikes_per_sample": float(np.mean(spikes)),
            "pJ_per_op": {"synop": e.synop_pj, "neuron_update": e.neuron_update_pj, "spike": e.spike_pj}}


def synapse_events(fired: np.ndarray, fanout: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per sample (row of ``fired`` (N, n), nonzero = fired): the number of fired neurons (int64) and
    the synapses they drive, the sum of ``fanout`` (n,) over them (float64)."""
    from ..ttfs.kernels import row_events

    fired = np.ascontiguousarray(np.asarray(fired).reshape(len(fired), -1))
    count, synops = np.empty(len(fired), np.int64), np.empty(len(fired), np.int64)
    row_events(fired, np.ascontiguousarray(fanout, dtype=np.int64), count, synops)
    return count, synops.astype(np.float64)


def in_range(counts: np.ndarray, top: int) -> bool:
    """Whether every entry of an integer array lies in 0..top (one pass: a negative entry read as
    unsigned is above ``top``)."""
    counts = np.asarray(counts)
    if not counts.size:
        return True
    if counts.dtype.kind == "i":
        return not bool((counts.view(counts.dtype.str.replace("i", "u")) > top).any())
    return bool(counts.min() >= 0 and counts.max() <= top)


class FxsimTarget(Target):
    name = "fxsim"
    families = ("ttfs", "lif")
    kinds = ("quantized",)
    shardable = True

    def run(self, request: RunRequest) -> Run:
        self.require(request.family, "quantized")
        inputs = request.evaluated
        if inputs.spikes is None:
            raise InvalidModel("fxsim runs encoded inputs (spike counts or rasters); none were given")
        t0 = time.perf_counter()
        if request.family == "ttfs":
            run = self._run_ttfs(request.graph, np.asarray(inputs.spikes), request.profile, request.options)
        else:
            run = self._run_lif(request.graph, np.asarray(inputs.spikes), request.options)
        run.run_seconds = time.perf_counter() - t0
        return run

    def _run_ttfs(self, graph, counts_all, profile, opts) -> Run:
        from ..ttfs.fixed import arith_of, fixed_layers, run_network
        from ..ttfs.graph import parse_ttfs

        net = parse_ttfs(graph)
        layers = fixed_layers(net)
        ar = arith_of(net)
        K, T = int(net.meta["steps"]), int(net.meta["t_total"])
        record = bool(opts.get("record"))
        mode = opts.get("mode", "auto")
        batch_size = int(opts.get("batch_size") or 2000)
        counts_all = counts_all.reshape((-1, *net.input_shape))
        if not in_range(counts_all, K):
            raise InvalidModel(f"fxsim: TTFS input counts must lie in 0..{K}")
        N = len(counts_all)
        chunks = []
        starts = range(0, N, batch_size)
        for i in tqdm(starts, desc="fxsim", leave=False) if opts.get("progress") else starts:
            c = counts_all[i:i + batch_size]
            chunks.append(run_network(layers, ar, c, T, mode=mode, record=record))
        outs = [[o[k] for o in chunks] for k in range(len(layers))]

        def cat(parts):  # one batch: no copy
            return parts[0] if len(parts) == 1 else np.concatenate(parts)

        lruns, traces, rasters = [], {}, {}
        # spikes per row and the synapses they drive, input first, then each population into the next
        in_spikes, synops = synapse_events(counts_all, layers[0].map.fanout())
        spikes_total = in_spikes.astype(np.float64)
        for i, (layer, parts) in enumerate(zip(layers, outs)):
            if record:
                traces[layer.name] = cat([p.v_trace for p in parts])
            if layer.role == "readout":
                z = cat([p.z for p in parts])
                continue
            step = cat([p.spike_step for p in parts])
            fired = step >= 0
            if record:
                rasters[layer.name] = raster_from_steps(step, T)
            spikes, events = synapse_events(fired, layers[i + 1].map.fanout())
            synops += events
            lruns.append(LayerRun(layer.name, layer.role, layer.neurons, spikes, step,
                                  cat([p.sats for p in parts]), cat([p.wraps for p in parts])))
            spikes_total += spikes
        ro = layers[-1]
        lsb = float(net.readout.meta.get("v_lsb", 1.0))
        info = {"steps": K, "t_total": T, "time_unit": "step", "readout": ro.name,
                "readout_saturations": cat([p.sats for p in outs[-1]]),
                "readout_wraps": cat([p.wraps for p in outs[-1]])}
        if profile is not None:
            neurons = sum(la.neurons for la in layers)
            info["energy"] = energy_estimate(profile, synops, neurons * T, spikes_total)
        return Run(self.name, z * lsb, decide(z), lruns, in_spikes, info=info, raw_logits=z,
                   traces=traces or None, spikes=rasters or None)

    def _run_lif(self, graph, raster, opts) -> Run:
        from ..lif.fixed import read_qlif, simulate_fixed
        from ..quantize.lif_xylo import is_xylo_graph

        if is_xylo_graph(graph):  # the profile's arithmetic: Xylo
            from threadpoolctl import threadpool_limits

            from ..lif.xylo import to_run, xylo_raster
            from ..neurons.xylo import simulate
            from ..quantize.lif_xylo import xylo_spec

            x = xylo_raster(graph, raster, opts.get("t_total"))
            with threadpool_limits(1):  # per-step (samples x 2H) products: BLAS threads cost more than they give
                rec = simulate(xylo_spec(graph), x)
            return to_run(self.name, graph, rec, x, bool(opts.get("record")), Run, LayerRun, decide)

        qnet = read_qlif(graph)
        record = bool(opts.get("record"))
        res = simulate_fixed(qnet, raster, t_total=opts.get("t_total"), record=record)
        layers = [LayerRun(name, "output" if name == qnet.readout else "hidden", p.neurons, res.counts[name].sum(1),
                           res.first_step[name], res.sats[name], res.wraps[name])
                  for name, p in qnet.pops.items() if p.spiking]
        return Run(self.name, res.scores, decide(res.scores), layers,
                   raster.reshape(len(raster), -1).sum(1).astype(np.int64),
                   info={"t_total": res.t_total, "time_unit": "step", "readout": qnet.readout},
                   traces=res.traces if record else None, spikes=res.spikes if record else None)
