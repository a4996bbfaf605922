"""A spiking NIR graph as a trainable torch model (LIF fine-tuning, :mod:`.lif_finetune`).

:class:`LifNet` reads a LIF-family graph (our eRBP / BPTT chains, norse / snnTorch exports; the
same reader compile uses, :func:`snncompile.frontends.nir.read_spiking_graph`, after
:func:`~snncompile.frontends.nir.repair_graph`).  Every connection must be one Affine or Linear
node (optionally after a Flatten); its weight (out, in) and, for an Affine with a non-zero
bias, its bias are the trainable parameters (bias-free layers stay bias-free).  Neuron
parameters (tau, r, thresholds, v_leak) stay fixed.

Three forward passes over a batch of input rasters ``sb`` (B, T_in, n_in), T = T_in + depth steps,
the timing of :mod:`snncompile.lif.reference` (a connection delays by its ``delay`` steps, an
input spike of raster column t - 1 is emitted at step t):

* ``float``: NIR's float dynamics, :func:`snncompile.neurons.lif.float_step` itself (called with
  the threshold lifted to +inf, so it integrates and never fires), then the spike
  s = [v > v_threshold] with the fast-sigmoid surrogate of :class:`snncompile.train.bptt.SpikeFn`
  in x = v / v_threshold - 1 for its gradient, and the reset v <- v (1 - s) + v_reset s with s
  detached (as in BPTT).  Its forward equals the float reference (tested).
* ``loihi`` (fake quantization, :class:`LoihiQuant`): the integer step
  :func:`snncompile.neurons.lif.loihi_step` on exact int64 states (called with the threshold
  lifted, which returns v before the reset; then s = v > theta, v[s] = 0 as in that step), with
  the per-connection weight mantissas m = clip(round(W k / step) step, lo, hi) (k = the
  quantizer's g / unit);
  every rounded value is straight-through: its forward value is the integer one, its gradient
  that of the float expression (a = m x 2**e, u = u (1 - (du+1)/2**D) + a 2**act_shift,
  v = v (1 - dv/2**D) + u + bias).  Its forward equals fxsim bit for bit (tested).
* ``hil``: the float pass on the *dequantized* weights (the deployed integers in float units,
  straight-through to the float weights: after QAT at few bits the float weights behave unlike
  the deployed ones, measured), with every spiking population's spikes (and the readout scores)
  replaced by those a bit-accurate target returned for the batch:
  s = s_target + (s_float - s_float.detach()); the float reset uses s_target (subtractive,
  v - s_target v_threshold, for a target whose neuron subtracts, i.e. Xylo).

Xylo's fake-quant pass lives in :mod:`.xylo_torch`.
"""

from __future__ import annotations

import copy
import dataclasses

import nir
import numpy as np
import torch

from ..errors import InvalidModel, UnsupportedOperator
from ..ir import get_meta, set_meta
from ..neurons.lif import float_step, loihi_step
from .bptt import SpikeFn

SURROGATE_BETA = 5.0   # fast-sigmoid steepness (as BPTT's default)
TRAINABLE_KINDS = ("LIF", "CubaLIF", "IF", "LI", "CubaLI", "I")


def surrogate_spike(v, thr, exact, beta: float = SURROGATE_BETA):
    """Forward ``exact`` (0/1 or counts), gradient of the fast sigmoid in x = v / thr - 1."""
    sur = SpikeFn.apply(v / thr - 1.0, beta)
    return exact + (sur - sur.detach())


def ste(value, exact):
    """Forward ``exact``, gradient of ``value``."""
    return value + (exact - value).detach()


class LifNet(torch.nn.Module):
    """Trainable view of a spiking NIR graph (module docstring)."""

    def __init__(self, graph: nir.NIRGraph, dt: float | None = None):
        from ..frontends.nir import read_spiking_graph, repair_graph

        super().__init__()
        meta = get_meta(graph)
        if meta.get("quantized"):
            raise InvalidModel("LIF fine-tuning starts from the float graph (model.nir), not a quantized model.q.nir")
        self.dt = float(dt or meta.get("dt", 1.0) or 1.0)
        self.graph = repair_graph(graph, self.dt)
        self.net = read_spiking_graph(self.graph, self.dt)
        self.weights = torch.nn.ParameterDict()
        self.biases = torch.nn.ParameterDict()
        self.conns = []
        seen = set()
        for c in self.net.connections:
            lin = [(n, node) for n, node in c.ops if not isinstance(node, nir.Flatten)]
            if len(lin) != 1 or not isinstance(lin[0][1], (nir.Affine, nir.Linear)):
                names = ", ".join(n for n, _ in c.ops) or "(none)"
                raise UnsupportedOperator(f"connection {c.src!r} -> {c.dst!r} through [{names}]", c.dst,
                                          ["one Affine or Linear node (optionally after a Flatten) per connection"],
                                          where="LIF fine-tuning")
            name, node = lin[0]
            if name in seen:
                raise UnsupportedOperator(f"node {name!r} shared by two connections", name,
                                          ["one connection per weight node"], where="LIF fine-tuning")
            seen.add(name)
            w = np.asarray(node.weight, dtype=np.float64)
            self.weights[name] = torch.nn.Parameter(torch.as_tensor(w.copy()))
            b = np.asarray(getattr(node, "bias", 0.0), dtype=np.float64).reshape(-1)
            if isinstance(node, nir.Affine) and np.any(b != 0):  # a bias-free layer stays bias-free
                b = np.broadcast_to(b, (w.shape[0],))
                self.biases[name] = torch.nn.Parameter(torch.as_tensor(b.copy()))
            self.conns.append({"node": name, "src": c.src, "dst": c.dst, "delay": int(c.delay),
                               "from_input": bool(c.from_input)})
        for name, pop in self.net.populations.items():
            if pop.kind not in TRAINABLE_KINDS:
                raise UnsupportedOperator(pop.kind, name, list(TRAINABLE_KINDS), where="LIF fine-tuning")
        self.consts = {name: {k: torch.as_tensor(v, dtype=torch.float64).reshape(1, -1) for k, v in p.params.items()}
                       for name, p in self.net.populations.items()}
        self.readout = self.net.readout
        self.spiking_readout = self.net.populations[self.readout].spiking

    # ------------------------------------------------------------------------------------------
    def incoming(self, pop: str) -> list:
        return [c for c in self.conns if c["dst"] == pop]

    def hidden_neurons(self) -> int:
        return sum(p.neurons for n, p in self.net.populations.items() if p.spiking and n != self.readout)

    def source(self, c, t, sb, hist, t_in):
        """The source's output for connection ``c`` at step t (None when silent)."""
        ts = t - c["delay"]
        if c["from_input"]:
            return sb[:, ts - 1] if 1 <= ts <= t_in else None
        if ts < 1:
            return None
        x = hist[c["src"]][ts - 1]
        return x if self.net.populations[c["src"]].spiking else x * self.dt

    def forward(self, sb: torch.Tensor, mode: str = "float", quant=None, hw: dict | None = None) -> dict:
        """``scores`` (B, n_out; the deployed readout), ``counts`` per population (B, n), ``T``.
        ``mode``: float | loihi (``quant``: a :class:`LoihiQuant`) | hil (``hw``: the target's spikes and
        scores).  With ``quant`` in float / hil mode the float dynamics run the dequantized weights
        (``quant.dequantized``: the deployed integers in float units, straight-through)."""
        if mode == "loihi":
            return quant.forward(self, sb)
        ws, bs = (self.weights, self.biases) if quant is None else quant.dequantized(self)
        sb = sb.reshape(sb.shape[0], sb.shape[1], -1).to(torch.float64)
        B, t_in = sb.shape[0], sb.shape[1]
        T = t_in + self.net.depth
        pops = self.net.populations
        state = {n: {"v": torch.zeros(B, p.neurons, dtype=torch.float64),
                     "i": torch.zeros(B, p.neurons, dtype=torch.float64)} for n, p in pops.items()}
        hist = {n: [] for n in pops}
        counts = {n: torch.zeros(B, p.neurons, dtype=torch.float64) for n, p in pops.items()}
        vsum = torch.zeros(B, pops[self.readout].neurons, dtype=torch.float64)
        subtract = bool(hw and hw.get("subtract"))
        for t in range(1, T + 1):
            outs = {}
            for name, p in pops.items():
                q = torch.zeros(B, p.neurons, dtype=torch.float64)
                for c in self.incoming(name):
                    x = self.source(c, t, sb, hist, t_in)
                    if x is not None:
                        q = q + x @ ws[c["node"]].T
                    if c["node"] in bs and t - c["delay"] >= 1:
                        q = q + self.dt * bs[c["node"]]
                cst = self.consts[name]
                if not p.spiking:
                    outs[name] = float_step(p.kind, state[name], cst, q, self.dt)
                    continue
                lifted = {**cst, "v_threshold": torch.full_like(cst["v_threshold"], float("inf"))}
                float_step(p.kind, state[name], lifted, q, self.dt)
                v, thr, reset = state[name]["v"], cst["v_threshold"], cst["v_reset"]
                if hw is not None:
                    exact = torch.as_tensor(hw["spikes"][name][:, t - 1], dtype=torch.float64)
                else:
                    exact = (v.detach() > thr).to(torch.float64)
                s = surrogate_spike(v, thr, exact)
                k = exact.detach()
                state[name]["v"] = v - k * thr if subtract else v * (1.0 - k) + reset * k
                outs[name] = s
                counts[name] = counts[name] + s
            for name in pops:
                hist[name].append(outs[name])
            if not self.spiking_readout:
                vsum = vsum + state[self.readout]["v"]
        scores = counts[self.readout] if self.spiking_readout else vsum / T
        if hw is not None and "scores" in hw:
            scores = ste(scores, torch.as_tensor(hw["scores"], dtype=torch.float64))
        return {"scores": scores, "counts": counts, "T": T}

    # ------------------------------------------------------------------------------------------
    def to_graph(self, extra_meta: dict | None = None) -> nir.NIRGraph:
        """The repaired input graph with the current weights and biases (metadata kept, plus
        ``extra_meta``)."""
        g = copy.deepcopy(self.graph)
        for name, w in self.weights.items():
            g.nodes[name].weight = w.detach().numpy().copy()
            if name in self.biases:
                g.nodes[name].bias = self.biases[name].detach().numpy().copy()
        meta = dict(get_meta(g))
        if extra_meta or "weight_split" in meta:
            meta.update(extra_meta or {})
            meta.pop("weight_split", None)  # tuned with one Dense per connection (LoihiQuant): deployed so
            set_meta(g, meta)
        return g

    def current_net(self):
        """The SpikingNet of the current parameters (what the quantizers read)."""
        from ..frontends.nir import read_spiking_graph

        return read_spiking_graph(self.to_graph(), self.dt)


# ----------------------------------------------------------------------------------------------
# Loihi fake quantization


class LoihiQuant:
    """The integer parameters of one quantization of a :class:`LifNet` (``quantize_lif`` of its
    current weights, calibrated as compile does); the fake-quant forward pass rounds the *current*
    float weights with these units and exponents (module docstring)."""

    def __init__(self, model: LifNet, profile, calib_raster: np.ndarray, headroom_bits: int = 1):
        from ..arith import weight_grid
        from ..lif.fixed import read_qlif
        from ..quantize.lif import loihi_form, quantize_lif

        net = model.current_net()
        self.qgraph, self.table = quantize_lif(net, profile, calib_raster, headroom_bits)
        qnet = read_qlif(self.qgraph)
        meta = qnet.meta
        self.meta = meta
        self.step, self.lo, self.hi = weight_grid(int(meta["weight_bits"]), int(meta["full_weight_bits"]),
                                                  meta["sign_mode"])
        self.pops = qnet.pops
        qconns = {c.name: c for c in qnet.conns}
        self.conns = []
        for c in model.conns:
            pop = net.populations[c["dst"]]
            form = loihi_form(pop, net.dt)
            norm = 1.0 / form["threshold"] if pop.spiking else np.ones(pop.shape)
            g = np.broadcast_to(form["g"] * norm, pop.shape).reshape(-1)
            qc = qconns[f"{c['dst']}_from_{c['src']}"]
            unit = float(get_meta(self.qgraph.nodes[qc.name])["scale"])
            entry = {**c, "k": torch.as_tensor(g / unit).reshape(-1, 1), "exp": qc.exp}
            if c["node"] in model.biases:
                qb = qconns[f"{c['dst']}_bias"]
                ub = float(get_meta(self.qgraph.nodes[qb.name])["scale"])
                entry.update(bias_k=torch.as_tensor(g * net.dt / ub), bias_exp=qb.exp)
            self.conns.append(entry)
        self.lifted = {n: dataclasses.replace(p.params, vth_mant=1 << 40) for n, p in self.pops.items()}

    def mantissa(self, real: torch.Tensor) -> torch.Tensor:
        exact = torch.clamp(torch.round(real.detach() / self.step) * self.step, self.lo, self.hi)
        return ste(real, exact)

    def dequantized(self, model: LifNet) -> tuple:
        """(weights, biases) per node: the deployed mantissas back in float units (m / k)."""
        ws, bs = {}, {}
        for c in self.conns:
            ws[c["node"]] = self.mantissa(model.weights[c["node"]] * c["k"]) / c["k"]
            if "bias_k" in c:
                bs[c["node"]] = self.mantissa(model.biases[c["node"]] * c["bias_k"]) / c["bias_k"]
        return ws, bs

    def forward(self, model: LifNet, sb: torch.Tensor) -> dict:
        from ..arith import shift_exp

        meta = self.meta
        bits, shift, dbits = int(meta["state_bits"]), int(meta["act_shift"]), int(meta["decay_bits"])
        vth_shift = int(meta["vth_shift"])
        sb = sb.reshape(sb.shape[0], sb.shape[1], -1).to(torch.float64)
        B, t_in = sb.shape[0], sb.shape[1]
        T = t_in + int(meta["depth"])
        ms, mb = {}, {}
        for c in self.conns:
            ms[c["node"]] = self.mantissa(model.weights[c["node"]] * c["k"])
            if "bias_k" in c:
                mb[c["node"]] = self.mantissa(model.biases[c["node"]] * c["bias_k"])
        pops = self.pops
        u_i = {n: np.zeros((B, p.neurons), np.int64) for n, p in pops.items()}
        v_i = {n: np.zeros((B, p.neurons), np.int64) for n, p in pops.items()}
        u_f = {n: torch.zeros(B, p.neurons, dtype=torch.float64) for n, p in pops.items()}
        v_f = {n: torch.zeros(B, p.neurons, dtype=torch.float64) for n, p in pops.items()}
        hist = {n: [] for n in pops}
        counts = {n: torch.zeros(B, p.neurons, dtype=torch.float64) for n, p in pops.items()}
        ro = model.readout
        vsum_i = np.zeros((B, pops[ro].neurons), np.int64)
        vsum_f = torch.zeros(B, pops[ro].neurons, dtype=torch.float64)
        dec = float(1 << dbits)
        for t in range(1, T + 1):
            outs = {}
            for name, p in pops.items():
                a_i = np.zeros((B, p.neurons), np.int64)
                a_f = torch.zeros(B, p.neurons, dtype=torch.float64)
                for c in self.conns:
                    if c["dst"] != name:
                        continue
                    x = model.source(c, t, sb, hist, t_in)
                    if x is not None:
                        m = ms[c["node"]]
                        acc = (x.detach() @ m.detach().T).numpy()
                        a_i += shift_exp(np.rint(acc).astype(np.int64), c["exp"])
                        a_f = a_f + (x @ m.T) * 2.0 ** c["exp"]
                    if c["node"] in mb and t - 1 >= 1:
                        bm = mb[c["node"]]
                        a_i += shift_exp(np.rint(bm.detach().numpy()).astype(np.int64), c["bias_exp"])[None, :]
                        a_f = a_f + bm * 2.0 ** c["bias_exp"]
                pp = p.params
                bias = p.bias[None, :]
                uu, vpre, _ = loihi_step(u_i[name], v_i[name], a_i, self.lifted[name], bias, bits, shift, dbits,
                                         vth_shift)
                a = ste(a_f, torch.from_numpy(a_i.astype(np.float64)))
                uf = ste(u_f[name] * (1.0 - (pp.du + 1) / dec) + a * float(1 << shift),
                         torch.from_numpy(uu.astype(np.float64)))
                vf = ste(v_f[name] * (1.0 - pp.dv / dec) + uf + torch.from_numpy(bias.astype(np.float64)),
                         torch.from_numpy(vpre.astype(np.float64)))
                u_i[name], u_f[name] = uu, uf
                if p.spiking:
                    theta = pp.theta(vth_shift)
                    s_i = vpre > theta
                    s = surrogate_spike(vf, float(theta), torch.from_numpy(s_i.astype(np.float64)))
                    v_i[name] = np.where(s_i, 0, vpre)
                    v_f[name] = vf * (1.0 - s.detach())
                    counts[name] = counts[name] + s
                    outs[name] = s
                else:
                    v_i[name], v_f[name] = vpre, vf
                    outs[name] = torch.zeros_like(vf)
            for name in pops:
                hist[name].append(outs[name])
            if not pops[ro].spiking:
                vsum_i += v_i[ro]
                vsum_f = vsum_f + v_f[ro]
        if pops[ro].spiking:
            scores = counts[ro]
        else:
            lsb = pops[ro].v_lsb
            scores = ste(vsum_f * lsb / T, torch.from_numpy(vsum_i * lsb / T))
        return {"scores": scores, "counts": counts, "T": T}


def norse_example_graph(x_train, y_train, seed: int = 0, hidden: int = 32, epochs: int = 3):
    """A foreign LIF graph for the fine-tuning benchmark and tests: norse's ``to_nir`` of a
    ``n_in-hidden-n_out`` LIFBox chain (scalar tau_mem_inv 0.1, threshold 1, weights and biases x20), trained
    ``epochs`` epochs by surrogate-gradient BPTT on the float NIR dynamics (:class:`LifNet`, 16 regular
    steps, recorded as the graph's encoder).  Seeded; norse-built, not norse-trained."""
    import norse.torch as nt

    from ..encode import encode
    from ..frontends.nir import repair_graph
    from ..ir import set_meta

    torch.manual_seed(seed)
    n_in, n_out = int(np.asarray(x_train).shape[1]), int(np.max(y_train)) + 1
    p = nt.LIFBoxParameters(tau_mem_inv=torch.tensor(0.1), v_th=torch.tensor(1.0))
    model = nt.SequentialState(torch.nn.Linear(n_in, hidden), nt.LIFBoxCell(p, dt=1.0),
                               torch.nn.Linear(hidden, n_out), nt.LIFBoxCell(p, dt=1.0))
    with torch.no_grad():
        for layer in (model[0], model[2]):
            layer.weight.mul_(20)
            layer.bias.mul_(20)
    graph = repair_graph(nt.to_nir(model, torch.zeros(1, n_in), dt=1.0))
    set_meta(graph, {"encoding": {"type": "regular", "steps": 16}})
    net = LifNet(graph)
    xs = torch.from_numpy(encode(x_train, 16).astype(np.float64))
    ys = torch.from_numpy(np.asarray(y_train))
    opt = torch.optim.Adam(net.parameters(), lr=1e-2)
    gen = torch.Generator().manual_seed(seed)
    for _ in range(epochs):
        perm = torch.randperm(len(ys), generator=gen)
        for s in range(0, len(ys), 64):
            idx = perm[s:s + 64]
            loss = torch.nn.functional.cross_entropy(net(xs[idx])["scores"] * 10 / 16, ys[idx])
            opt.zero_grad()
            loss.backward()
            opt.step()
    return net.to_graph()


__all__ = ["LifNet", "LoihiQuant", "SURROGATE_BETA", "norse_example_graph", "ste", "surrogate_spike"]
