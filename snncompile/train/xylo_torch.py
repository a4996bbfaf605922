"""Xylo's integer LIF in torch, with straight-through gradients: fake quantization for fine-tuning
a LIF network on Xylo's own dynamics (:mod:`.lif_finetune`).

The integer rules are those of :mod:`snncompile.neurons.xylo` (xylosim's ``XyloIAFNeuron``;
int16 states, ``clip`` saturates, ``wrap16`` is the conversion to int16_t), per population and
step, after delivery:

    decay(x, dash) = x >> dash (floor), or sign(x) where that is 0
    I  = I - decay(I, dash_syn)
    dv = clip(clip(wrap16(-decay(v, dash_mem)) + I) + bias);   v = clip(v + dv)
    n  = min(floor(v / theta), limit) where v >= theta (else 0);   v = v - n theta

(:func:`xylo_neuron`, :func:`xylo_spikes`, exact on int64 tensors; tested against
``neurons.xylo.xylo_step``).  Delivery (input counts capped at 15 per step, hidden counts at
31, a saturating add per spike) is :func:`snncompile.neurons.xylo.deliver` itself.  An input
spike acts in its own step; a hidden spike reaches the hidden pool and the readout one step
later; the run lasts T_in + (number of hidden populations) steps, as fxsim's.

Gradients (every integer value is straight-through, its gradient that of the float expression):
weights w16 = m 2**shift with m = clip(round(W k), -128, 127) (k = the quantizer's
g / (1 - 2**-dash_syn) / lambda / 2**shift), I = (I + counts w16)(1 - 2**-dash_syn),
v = v (1 - 2**-dash_mem) + I + bias, and the spike count n has the surrogate derivative

    dn/dv = 1 / (theta (1 + beta d)^2),   d = max(0, -x, x - (limit - 1)),   x = v / theta - 1,

which is BPTT's fast sigmoid below threshold, 1/theta (n ~ v / theta) over the multi-spike range
and decays above ``limit`` thresholds; the subtractive reset v - n theta uses n detached.
"""

from __future__ import annotations

import numpy as np
import torch

from ..ir import get_meta
from .lif_finetune_model import SURROGATE_BETA, ste

STATE_BITS = 16


def decay(x: torch.Tensor, dash) -> torch.Tensor:
    d = torch.bitwise_right_shift(x, torch.as_tensor(dash, dtype=torch.int64))
    return torch.where(d == 0, torch.sign(x), d)


def clip(x: torch.Tensor, bits: int = STATE_BITS) -> torch.Tensor:
    return torch.clamp(x, -(1 << (bits - 1)), (1 << (bits - 1)) - 1)


def wrap(x: torch.Tensor, bits: int = STATE_BITS) -> torch.Tensor:
    h = 1 << (bits - 1)
    return torch.remainder(x + h, 1 << bits) - h


def xylo_neuron(isyn, vmem, dash_syn, dash_mem, bias, bits: int = STATE_BITS):
    """Decay the current, integrate v (one synapse per neuron): (isyn, v before the spikes)."""
    isyn = isyn - decay(isyn, dash_syn)
    dv = clip(clip(wrap(-decay(vmem, dash_mem), bits) + isyn, bits) + bias, bits)
    return isyn, clip(vmem + dv, bits)


def xylo_spikes(v, threshold, limit: int):
    """Multi-spike subtractive reset (threshold > 0): (spike counts, v after the reset)."""
    th = torch.as_tensor(threshold, dtype=torch.int64)
    n = torch.where(v >= th, torch.minimum(torch.div(v, th, rounding_mode="floor"), torch.tensor(limit)),
                    torch.zeros_like(v))
    return n, v - n * th


class MultiSpike(torch.autograd.Function):
    """Forward the exact counts; backward the multi-spike surrogate (module docstring)."""

    @staticmethod
    def forward(ctx, v, exact, theta, limit: int, beta: float):
        ctx.save_for_backward(v, theta)
        ctx.limit, ctx.beta = limit, beta
        return exact.clone()

    @staticmethod
    def backward(ctx, grad):
        v, theta = ctx.saved_tensors
        x = v / theta - 1.0
        d = torch.clamp(torch.maximum(-x, x - (ctx.limit - 1)), min=0.0)
        return grad / (theta * (1.0 + ctx.beta * d) ** 2), None, None, None, None


class XyloQuant:
    """One quantization of a :class:`~.lif_finetune_model.LifNet` for a Xylo profile
    (:func:`snncompile.quantize.lif_xylo.quantize_xylo` of its current weights) and the fake-quant
    forward pass that rounds the current weights with its shifts and LSBs."""

    def __init__(self, model, profile, calib_raster: np.ndarray, headroom_bits: int = 1):
        from ..quantize.lif import loihi_form
        from ..quantize.lif_xylo import quantize_xylo, xylo_spec

        net = model.current_net()
        self.qgraph, self.table = quantize_xylo(net, profile, calib_raster, headroom_bits)
        self.spec = spec = xylo_spec(self.qgraph)
        meta = get_meta(self.qgraph)
        self.depth = int(meta["depth"])
        self.offsets = {k: tuple(v) for k, v in meta["xylo_populations"].items()}
        self.readout = meta["xylo_readout"]
        self.n_in = spec["weights_in"].shape[0]
        self.H, self.O = spec["weights_out"].shape
        nspec = profile.neuron
        self.lim_in, self.lim_h, self.lim_o = nspec.max_spikes_in, nspec.max_spikes_hidden, nspec.max_spikes_out
        lam = {"hidden": float(get_meta(self.qgraph.nodes["hidden"])["v_lsb"]),
               "output": float(get_meta(self.qgraph.nodes["output"])["v_lsb"])}
        self.v_lsb_out = lam["output"]
        self.out_spiking = bool(get_meta(self.qgraph.nodes["output"]).get("spiking", True))
        shifts = {"in": spec["weight_shift_in"], "rec": spec["weight_shift_rec"], "out": spec["weight_shift_out"]}
        self.shifts = shifts
        self.blocks = []  # (matrix, rows slice, cols slice, weight node, k (dst,) tensor)
        bias_fixed = {"hidden": np.zeros(self.H), "output": np.zeros(self.O)}
        self.bias_terms = []  # (pool, cols slice, bias node, factor (dst,) tensor)
        for name, pop in net.populations.items():
            f = loihi_form(pop, net.dt)
            norm = (1.0 / f["threshold"] if pop.spiking else np.ones(pop.shape))
            norm = np.broadcast_to(norm, pop.shape).reshape(-1)
            pool = "output" if name == self.readout else "hidden"
            cols = slice(0, self.O) if pool == "output" else slice(*self.offsets[name])
            ds = (spec["dash_syn_out"] if pool == "output" else spec["dash_syn"])[cols].astype(np.float64)
            g0 = np.broadcast_to(f["g"], pop.shape).reshape(-1) * norm
            g = g0 / (1.0 - 2.0 ** -ds)
            bias_fixed[pool][cols] = np.broadcast_to(f["bias"], pop.shape).reshape(-1) * norm
            for c in model.incoming(name):
                mat = "out" if pool == "output" else ("in" if c["from_input"] else "rec")
                rows = slice(0, self.n_in) if c["from_input"] else slice(*self.offsets[c["src"]])
                k = torch.as_tensor(g / lam[pool] / 2.0 ** shifts[mat]).reshape(-1, 1)
                self.blocks.append((mat, rows, cols, c["node"], k))
                if c["node"] in model.biases:
                    fac = g0 * net.dt / min(1.0, max(float(f["du"]), 1e-12)) / lam[pool]
                    self.bias_terms.append((pool, cols, c["node"], torch.as_tensor(fac)))
        self.bias_fixed = {k: torch.as_tensor(v / lam[k]) for k, v in bias_fixed.items()}
        self.state_max = (1 << (nspec.state_bits - 1)) - 1

    def params(self, model) -> dict:
        """Straight-through integer weight matrices (int8 mantissas) and biases of the current weights."""
        mats = {"in": torch.zeros(self.n_in, self.H, dtype=torch.float64),
                "rec": torch.zeros(self.H, self.H, dtype=torch.float64),
                "out": torch.zeros(self.H, self.O, dtype=torch.float64)}
        for mat, rows, cols, node, k in self.blocks:
            real = (model.weights[node] * k).T
            exact = torch.clamp(torch.round(real.detach()), -128, 127)
            block = torch.zeros_like(mats[mat])
            block[rows, cols] = ste(real, exact)
            mats[mat] = mats[mat] + block
        biases = {k: v.clone() for k, v in self.bias_fixed.items()}
        for pool, cols, node, fac in self.bias_terms:
            add = torch.zeros_like(biases[pool])
            add[cols] = model.biases[node] * fac
            biases[pool] = biases[pool] + add
        biases = {k: ste(b, torch.clamp(torch.round(b.detach()), -self.state_max, self.state_max))
                  for k, b in biases.items()}
        return {"w": mats, "b": biases}

    def dequantized(self, model) -> tuple:
        """(weights, biases) per node: the int8 mantissas back in float units (m / k); biases stay
        float (Xylo's bias mixes the neuron's v_leak into one register)."""
        ws = {}
        for _mat, _rows, _cols, node, k in self.blocks:
            real = model.weights[node] * k
            ws[node] = ste(real, torch.clamp(torch.round(real.detach()), -128, 127)) / k
        return ws, dict(model.biases)

    def forward(self, model, sb: torch.Tensor) -> dict:
        from ..neurons.xylo import deliver, shifted_weights

        p = self.params(model)
        sp = self.spec
        w16 = {m: p["w"][m] * float(1 << self.shifts[m]) for m in p["w"]}
        ints = {m: np.rint(w.detach().numpy()).astype(np.int64) for m, w in p["w"].items()}
        w_hid_i = np.concatenate([shifted_weights(ints["in"], self.shifts["in"]),
                                  shifted_weights(ints["rec"], self.shifts["rec"])])
        w_out_i = shifted_weights(ints["out"], self.shifts["out"])
        bias_i = {k: torch.round(b.detach()).to(torch.int64) for k, b in p["b"].items()}
        sb = sb.reshape(sb.shape[0], sb.shape[1], -1).to(torch.float64)
        B, t_in = sb.shape[0], sb.shape[1]
        T = t_in + self.depth
        H, n_o = self.H, self.O
        z = torch.zeros
        ih, vh, io, vo = (z(B, H, dtype=torch.int64), z(B, H, dtype=torch.int64), z(B, n_o, dtype=torch.int64),
                          z(B, n_o, dtype=torch.int64))
        ihf, vhf, iof, vof = (z(B, H, dtype=torch.float64), z(B, H, dtype=torch.float64),
                              z(B, n_o, dtype=torch.float64), z(B, n_o, dtype=torch.float64))
        prev, prevf = np.zeros((B, H), np.int64), z(B, H, dtype=torch.float64)
        cnt_h, cnt_o = z(B, H, dtype=torch.float64), z(B, n_o, dtype=torch.float64)
        vsum_i, vsum_f = z(B, n_o, dtype=torch.int64), z(B, n_o, dtype=torch.float64)
        th_h = torch.as_tensor(sp["threshold"], dtype=torch.int64)
        th_o = torch.as_tensor(sp["threshold_out"], dtype=torch.int64)
        ds_h, dm_h = torch.as_tensor(sp["dash_syn"]), torch.as_tensor(sp["dash_mem"])
        ds_o, dm_o = torch.as_tensor(sp["dash_syn_out"]), torch.as_tensor(sp["dash_mem_out"])
        lims = np.concatenate([np.full(self.n_in, self.lim_in), np.full(H, self.lim_h)])
        for t in range(T):
            xin = torch.clamp(sb[:, t], max=self.lim_in) if t < t_in else z(B, self.n_in, dtype=torch.float64)
            counts = np.minimum(np.concatenate([np.rint(xin.detach().numpy()).astype(np.int64), prev], 1), lims)
            ih_d = torch.from_numpy(deliver(ih.numpy(), counts, w_hid_i, max(self.lim_in, self.lim_h)))
            io_d = torch.from_numpy(deliver(io.numpy(), prev, w_out_i, self.lim_h))
            ihf_d = ihf + xin @ w16["in"] + prevf @ w16["rec"]
            iof_d = iof + prevf @ w16["out"]
            ih, vpre_h = xylo_neuron(ih_d, vh, ds_h, dm_h, bias_i["hidden"])
            io, vpre_o = xylo_neuron(io_d, vo, ds_o, dm_o, bias_i["output"])
            n_h, vh = xylo_spikes(vpre_h, th_h, self.lim_h)
            n_o, vo = xylo_spikes(vpre_o, th_o, self.lim_o)
            ihf = ste(ihf_d * (1.0 - 2.0 ** -ds_h.double()), ih.double())
            iof = ste(iof_d * (1.0 - 2.0 ** -ds_o.double()), io.double())
            vpf_h = ste(vhf * (1.0 - 2.0 ** -dm_h.double()) + ihf + p["b"]["hidden"], vpre_h.double())
            vpf_o = ste(vof * (1.0 - 2.0 ** -dm_o.double()) + iof + p["b"]["output"], vpre_o.double())
            sh = MultiSpike.apply(vpf_h, n_h.double(), th_h.double(), self.lim_h, SURROGATE_BETA)
            so = MultiSpike.apply(vpf_o, n_o.double(), th_o.double(), self.lim_o, SURROGATE_BETA)
            vhf = vpf_h - sh.detach() * th_h.double()
            vof = vpf_o - so.detach() * th_o.double()
            cnt_h, cnt_o = cnt_h + sh, cnt_o + so
            prev, prevf = n_h.numpy(), sh
            vsum_i, vsum_f = vsum_i + vo, vsum_f + vof
        counts = {name: cnt_h[:, a:b] for name, (a, b) in self.offsets.items()}
        counts[self.readout] = cnt_o
        if self.out_spiking:
            scores = cnt_o
        else:
            scores = ste(vsum_f * self.v_lsb_out / T, torch.from_numpy(vsum_i.numpy() * self.v_lsb_out / T))
        return {"scores": scores, "counts": counts, "T": T}


def align_xylo_spikes(run_spikes: dict, t_float: int) -> dict:
    """A Xylo run's per-population spike counts (N, T_xylo, n) on the float model's step grid:
    Xylo's step t is the float model's step t + 1 (its input acts in its own step)."""
    out = {}
    for name, s in run_spikes.items():
        s = np.asarray(s)
        a = np.zeros((s.shape[0], t_float, s.shape[2]), dtype=np.float64)
        k = min(s.shape[1], t_float - 1)
        a[:, 1:k + 1] = s[:, :k]
        out[name] = a
    return out


__all__ = ["MultiSpike", "XyloQuant", "align_xylo_spikes", "clip", "decay", "wrap", "xylo_neuron", "xylo_spikes"]
