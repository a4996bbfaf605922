"""Cross-check of NIR semantics with norse: run a float NIR graph through
``norse.torch.from_nir`` and compare its spikes with our reference.

Known differences, handled here and documented in docs/nir.md:

* norse <= 1.1 treats an input spike as a unit current held for one step (issue #411), so a
  spike through weight w moves v by dt * w / tau where NIR's Dirac spike moves it by w / tau:
  we divide Affine/Linear/Conv2d weights (not biases) by dt before loading.  At dt = 1 they agree.
* ``from_nir`` builds ``torch.nn.Flatten(start_dim, end_dim)`` from NIR's batch-free dims; with
  a batch dimension present that flattens the batch, so Flatten(0, -1) modules become Flatten(1, -1).
* norse has no synaptic delay; our runs delay every connection by one step, so a population at
  pipeline depth k fires k steps later: we compare against our reference run with
  ``aligned=True`` and shift its spike steps by k.
* TTFS graphs rely on the phase switch and fire-once of our metadata, which norse ignores (it
  sees non-leaking CUBA neurons): their agreement is reported, not expected to be high.
"""

from __future__ import annotations

import copy

import nir
import numpy as np
import torch

from ..errors import InvalidModel, TargetUnavailable
from .base import LayerRun, Run, RunRequest, Target, decide


def _load(graph: nir.NIRGraph, dt: float):
    try:
        import norse.torch as nt
    except ImportError:
        raise TargetUnavailable("norse is not installed: pip install --no-deps norse==1.1.0") from None
    g = copy.deepcopy(graph)
    for node in g.nodes.values():
        if isinstance(node, (nir.Affine, nir.Linear, nir.Conv2d)) and dt != 1.0:
            node.weight = np.asarray(node.weight, dtype=np.float64) / dt
    import logging

    logging.getLogger().setLevel(logging.ERROR)  # from_nir logs a warning per diverging parameter
    module = nt.from_nir(g, dt=dt, ignore_warnings=True)
    for _name, mod in list(module.named_modules()):
        if isinstance(mod, torch.nn.Flatten) and mod.start_dim == 0:
            mod.start_dim = 1
    return module.double()


def run_norse(graph: nir.NIRGraph, raster: np.ndarray, dt: float, populations: list[str]):
    """Run a graph in norse on a spike raster (N, T, *input_shape); returns spikes per population
    (N, T, neurons) and the per-step output (N, T, n_out)."""
    module = _load(graph, dt)
    captured = {name: [] for name in populations}
    hooks = []
    for name, mod in module.named_modules():
        if name in captured:
            hooks.append(mod.register_forward_hook(
                lambda m, i, o, name=name: captured[name].append((o[0] if isinstance(o, tuple) else o).detach())))
    x = torch.as_tensor(np.asarray(raster), dtype=torch.float64)
    outs = []
    state = None
    try:
        with torch.no_grad():
            for t in range(x.shape[1]):
                out, state = module(x[:, t], state)
                outs.append(out.reshape(len(x), -1))
    finally:
        for h in hooks:
            h.remove()
    spikes = {k: torch.stack(v, 1).reshape(len(x), x.shape[1], -1).numpy() for k, v in captured.items() if v}
    return spikes, torch.stack(outs, 1).numpy()


class NorseTarget(Target):
    """Float graphs of both families in norse, compared with our reference (``request.reference``).
    Options: ``dt`` (LIF: the graph's time step; TTFS: the simulation step, default 1/16)."""

    name = "norse"
    families = ("ttfs", "lif")
    kinds = ("float",)
    install = "pip install --no-deps norse==1.1.0"

    def run(self, request: RunRequest) -> Run:
        import time

        self.require(request.family, "float")
        inputs = request.evaluated
        dt = request.options.get("dt")
        ref = None if request.reference is None else request.reference.head(len(inputs))
        t0 = time.perf_counter()
        if request.family == "ttfs":
            run = self._run_ttfs(request.graph, inputs.x, dt, ref)
        else:
            from ..ir import get_meta

            run = self._run_lif(request.graph, inputs.spikes, float(dt or get_meta(request.graph).get("dt") or 1.0))
        run.run_seconds = time.perf_counter() - t0
        return run

    def _run_lif(self, graph, spikes, dt) -> Run:
        from ..frontends.nir import read_spiking_graph
        from ..lif.reference import simulate

        net = read_spiking_graph(graph, dt)
        pops = list(net.populations)
        norse_spikes, _ = run_norse(graph, spikes, dt, pops)
        ours = simulate(net, spikes, aligned=True)
        depth = net.depth_of()
        layers, agree_first, agree_count, total = [], 0, 0, 0
        for name in pops:
            p = net.populations[name]
            if not p.spiking or name not in norse_spikes:
                continue
            s = norse_spikes[name] > 0
            counts = s.sum(1)
            first = np.where(s.any(1), s.argmax(1) + 1, -1)
            mine = np.where(ours.first_step[name] >= 0, ours.first_step[name] - depth[name], -1)
            both = (first >= 0) | (mine >= 0)
            ok = (np.abs(first - mine) <= 1) & (first >= 0) & (mine >= 0) | ((first < 0) & (mine < 0))
            agree_first += int((ok & both).sum())
            total += int(both.sum())
            agree_count += int((counts == ours.counts[name]).sum())
            layers.append(LayerRun(name, "output" if name == net.readout else "hidden", p.neurons, counts.sum(1), first))
        ro = net.readout
        scores = norse_spikes[ro].sum(1) if ro in norse_spikes else np.zeros((len(spikes), 1))
        info = {"summary": {
            "first_spike_agreement_within_one_step": agree_first / total if total else 1.0,
            "spike_count_agreement": agree_count / max(1, sum(la.neurons for la in layers) * len(spikes)),
            "dt": dt, "note": "norse has no synaptic delays: compared with our reference aligned per pipeline depth"}}
        return Run(self.name, scores.astype(np.float64), decide(scores), layers,
                   np.asarray(spikes).reshape(len(spikes), -1).sum(1), info=info)

    def _run_ttfs(self, graph, inputs, dt, reference: Run | None) -> Run:
        from ..ttfs.graph import parse_ttfs

        net = parse_ttfs(graph)
        mins = [la.name for la in net.layers if la.meta.get("min_channels")]
        if mins:
            raise InvalidModel(f"target 'norse': population {mins[0]!r} min-pools channels (a negative BatchNorm "
                               "scale before a max-pool); norse has no neuron that fires at its latest input")
        dt = dt or 1.0 / 16
        t_end = net.readout.meta["t_min"]
        T = int(np.ceil(t_end / dt)) + 1
        x = np.asarray(inputs, dtype=np.float64).reshape((len(inputs), -1))
        step = np.where(x > 0, np.round((1.0 - x) / dt).astype(int), -1)
        raster = np.zeros((len(x), T, x.shape[1]))
        n, j = np.nonzero(step >= 0)
        raster[n, step[n, j], j] = 1.0
        raster = raster.reshape((len(x), T, *net.input_shape))
        names = [la.name for la in net.spiking]
        spk, out = run_norse(graph, raster, dt, names)
        layers, agree, total = [], 0, 0
        for la in net.spiking:
            s = spk[la.name] > 0
            t_first = np.where(s.any(1), (s.argmax(1) + 1) * dt, np.inf)
            layers.append(LayerRun(la.name, la.role, la.neurons, s.sum(1).sum(1), t_first))
            if reference is not None:
                ref_t = next(r.times for r in reference.layers if r.name == la.name)
                both = np.isfinite(ref_t) | np.isfinite(t_first)
                ok = np.where(np.isfinite(ref_t) & np.isfinite(t_first), np.abs(ref_t - t_first) <= dt, False)
                agree += int(ok.sum())
                total += int(both.sum())
        # readout: norse's output is the readout population's spikes; the potential is what TTFS reads
        scores = out.sum(1)
        info = {"summary": {"first_spike_agreement_within_one_step": agree / total if total else None, "dt": dt,
                            "note": "TTFS graphs need the phase switch and fire-once in metadata['snncompile'], "
                                    "which norse ignores; see docs/nir.md"}}
        return Run(self.name, scores, decide(scores), layers, (raster.reshape(len(x), T, -1) > 0).sum((1, 2)), info=info)
