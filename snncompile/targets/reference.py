"""The float reference target, for both neuron families (float64).

TTFS: exact B1 spike times in closed form (:mod:`snncompile.ttfs.reference`), times in window
units (inf = no spike), inputs = the float values (the continuous latency code t = 1 - x).
LIF: the discrete-time float simulation of the NIR graph (:mod:`snncompile.lif.reference`) on
the encoded input rasters, with time step ``options["dt"]`` (default: the graph's).
"""

from __future__ import annotations

import time

import numpy as np

from .base import LayerRun, Run, RunRequest, Target, decide


class ReferenceTarget(Target):
    name = "reference"
    families = ("ttfs", "lif")
    kinds = ("float",)
    shardable = True

    def run(self, request: RunRequest) -> Run:
        self.require(request.family, "float")
        inputs = request.evaluated
        t0 = time.perf_counter()
        run = self._ttfs(request.graph, inputs.x) if request.family == "ttfs" else \
            self._lif(request.graph, inputs.spikes, request.options)
        run.run_seconds = time.perf_counter() - t0
        return run

    def _ttfs(self, graph, x) -> Run:
        from ..ttfs.graph import parse_ttfs
        from ..ttfs.reference import simulate

        net = parse_ttfs(graph)
        res = simulate(net, x)
        layers = [LayerRun(layer.name, layer.role, layer.neurons, np.isfinite(res.times[layer.name]).sum(axis=1),
                           res.times[layer.name]) for layer in net.spiking]
        return Run(self.name, res.logits, decide(res.logits), layers, np.isfinite(res.input_times).sum(axis=1),
                   info={"time_unit": "window"})

    def _lif(self, graph, raster, opts) -> Run:
        from ..frontends.nir import read_spiking_graph
        from ..ir import get_meta
        from ..lif.reference import simulate

        if raster is None:
            from ..errors import InvalidModel

            raise InvalidModel("the LIF reference runs input spike rasters; none were given")
        dt = float(opts.get("dt") or get_meta(graph).get("dt") or 1.0)
        net = read_spiking_graph(graph, dt)
        raster = np.asarray(raster)
        res = simulate(net, raster, t_total=opts.get("t_total"))
        layers = [LayerRun(name, "output" if name == net.readout else "hidden", p.neurons, res.counts[name].sum(1),
                           res.first_step[name]) for name, p in net.populations.items() if p.spiking]
        return Run(self.name, res.scores, decide(res.scores), layers,
                   raster.reshape(len(raster), -1).sum(1).astype(np.int64),
                   info={"t_total": res.t_total, "time_unit": "step", "dt": dt, "readout": net.readout})
