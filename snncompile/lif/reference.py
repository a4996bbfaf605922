"""Float64 discrete-time simulation of a spiking NIR graph (the reference for LIF networks).

Time step dt; steps t = 1..T.  Population p receives the synaptic charge

    q_p(t) = sum_c L_c(x_src(t - d_c)) + dt * b_c

over its incoming connections c (linear chain L_c without bias, bias b_c, delay d_c >= 1),
where x_src is the source's spikes (0/1) or, for a non-spiking source (LI, CubaLI, I), its
potential times dt (a current integrated over the step).  Input spikes "emitted at step t"
(t = 1..T_in) reach the first populations at t + 1.  Each population then takes one
:func:`snncompile.neurons.lif.float_step` (the equations are there).  At dt = 1 these updates
are exactly norse's (LIFBox, and CubaLIF as norse's from_nir builds it with v_leak = 0).  The
readout is the spike count of the population feeding the Output node (argmax; ties go to the
lowest index) or, for a non-spiking one, the mean of its potential.

An Affine bias is a current from an always-on input: it crosses the synapse like a spike, so it
acts from step 1 + delay; a neuron's own v_leak drive acts from step 1 (Loihi's bias register).  Frameworks
without synaptic delays (norse) see a population at pipeline depth k exactly k steps earlier;
``aligned=True`` starts each population's constant drives at its depth + 1 so that the run is
norse's run shifted by k steps (used by the norse cross-check; not a hardware schedule).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from ..frontends.nir import SpikingNet
from ..neurons.lif import float_step
from ..nirops import apply_chain


@dataclass
class LifResult:
    scores: np.ndarray        # (N, n_out) readout: spike counts or mean potential
    counts: dict              # population -> (N, neurons) spike counts
    first_step: dict          # population -> (N, neurons) first spike step, -1 if none
    t_total: int
    traces: dict | None = None  # population -> (N, T, neurons) potentials, when recorded
    peaks: dict | None = None   # population -> {"v", "i", "q"}: largest |value| per neuron (calibration)


def run_steps(net: SpikingNet, t_in: int) -> int:
    """Run length: the input's steps plus the longest pipeline delay, so the last input step reaches
    every population."""
    return t_in + net.depth


def simulate(net: SpikingNet, spikes: np.ndarray, t_total: int | None = None, record: bool = False,
             batch_size: int = 500, aligned: bool = False) -> LifResult:
    """Simulate input spike rasters ``spikes`` (N, T_in, *input_shape) in {0, 1}."""
    spikes = np.asarray(spikes)
    T = run_steps(net, spikes.shape[1]) if t_total is None else t_total
    parts = [_simulate_batch(net, spikes[i:i + batch_size], T, record, aligned)
             for i in range(0, len(spikes), batch_size)]
    cat = np.concatenate
    peaks = {k: {q: np.max([p.peaks[k][q] for p in parts], axis=0) for q in ("v", "i", "q")} for k in net.populations}
    return LifResult(cat([p.scores for p in parts]),
                     {k: cat([p.counts[k] for p in parts]) for k in net.populations},
                     {k: cat([p.first_step[k] for p in parts]) for k in net.populations}, T,
                     {k: cat([p.traces[k] for p in parts]) for k in net.populations} if record else None, peaks)


def _t(a):
    return torch.as_tensor(a, dtype=torch.float64).reshape(1, -1)


def _simulate_batch(net: SpikingNet, spikes: np.ndarray, T: int, record: bool, aligned: bool) -> LifResult:
    N, T_in = spikes.shape[0], spikes.shape[1]
    dt = net.dt
    pops = net.populations
    raster = torch.as_tensor(spikes.reshape(N, T_in, -1), dtype=torch.float64)
    hist = {name: [] for name in pops}  # outputs per step (list index t-1)
    state = {}
    for name, p in pops.items():
        z = torch.zeros((N, p.neurons), dtype=torch.float64)
        state[name] = {"v": z.clone(), "i": z.clone()}
    counts = {name: torch.zeros((N, p.neurons), dtype=torch.float64) for name, p in pops.items()}
    first = {name: torch.full((N, p.neurons), -1, dtype=torch.int64) for name, p in pops.items()}
    traces = {name: [] for name in pops} if record else None
    vsum = torch.zeros((N, pops[net.readout].neurons), dtype=torch.float64)
    peaks = {name: {q: torch.zeros(p.neurons, dtype=torch.float64) for q in ("v", "i", "q")} for name, p in pops.items()}
    incoming = {name: net.incoming(name) for name in pops}
    consts = {name: {k: _t(v) for k, v in p.params.items()} for name, p in pops.items()}
    start = net.depth_of() if aligned else {}
    with torch.no_grad():
        for t in range(1, T + 1):
            outs = {}
            for name, p in pops.items():
                q = torch.zeros((N, p.neurons), dtype=torch.float64)
                for c in incoming[name]:
                    ts = t - c.delay
                    if c.from_input:
                        if not 1 <= ts <= T_in:
                            x = None
                        else:
                            x = raster[:, ts - 1]
                    else:
                        if ts < 1:
                            x = None
                        else:
                            x = hist[c.src][ts - 1]
                            if not pops[c.src].spiking:
                                x = x * dt
                    if x is not None and torch.any(x != 0):
                        q += apply_chain(c.ops, x.reshape((N, *c.src_shape)), with_bias=False).reshape(N, -1)
                    if c.bias is not None and t - c.delay >= 1 and t > start.get(name, 0):
                        q += dt * torch.as_tensor(c.bias, dtype=torch.float64)
                drive = t > start.get(name, 0)
                outs[name] = float_step(p.kind, state[name], consts[name], q, dt, drive)
                pk = peaks[name]
                pk["q"] = torch.maximum(pk["q"], q.abs().amax(0))
                pk["i"] = torch.maximum(pk["i"], state[name]["i"].abs().amax(0))
                pk["v"] = torch.maximum(pk["v"], state[name]["pre"].abs().amax(0))
            for name, p in pops.items():
                out = outs[name]
                hist[name].append(out)
                if p.spiking:
                    counts[name] += out
                    new = (out > 0) & (first[name] < 0)
                    first[name][new] = t
                if record:
                    traces[name].append(state[name]["v"].clone())
            if not pops[net.readout].spiking:
                vsum += state[net.readout]["v"]
    scores = counts[net.readout] if pops[net.readout].spiking else vsum / T
    return LifResult(scores.numpy(), {k: v.numpy() for k, v in counts.items()},
                     {k: v.numpy() for k, v in first.items()}, T,
                     {k: torch.stack(v, 1).numpy() for k, v in traces.items()} if record else None,
                     {k: {q: t.numpy() for q, t in d.items()} for k, d in peaks.items()})
