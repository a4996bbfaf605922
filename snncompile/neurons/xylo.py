"""Xylo's LIF arithmetic (SynSense Xylo Audio 2, ``syns61201``), bit for bit as xylosim 0.1.3 runs it.

Sources (xylosim 0.1.3 sdist, ``src/v2/cpp/``; rockpool 3.1.0 ``devices/xylo/syns61201/xylo_sim.py``).
All states are int16 (``BITS_STATE``); ``clip`` saturates to [-2**15, 2**15 - 1] and ``wrap16``
is C++'s conversion to ``int16_t`` (modulo 2**16).  One time step t:

1. Delivery (``XyloLayer::evolve``, ``deliver_spikes``; ``XyloIAFNeuron::receiveSpike``).  Every
   presynaptic spike adds its weight to one synaptic current, one saturating add per spike::

       w16 = wrap16(w_int8 << weight_shift)                     # per matrix: in, rec, out
       I[j, syn] = clip(I[j, syn] + w16)                        # safe_add, once per spike

   in this order: input channels 0..Nin-1 with their counts of step t (each capped at 15,
   ``MAX_NUM_INP_SPIKES``), then hidden neurons 0..H-1 with their counts of step t-1 (capped at
   31, ``MAX_NUM_SPIKES``) through ``weights_rec``, then the same step-(t-1) hidden counts through
   ``weights_out`` to the output neurons.  Hence an input spike acts at step t, a hidden spike
   reaches the hidden layer *and the readout* one step later (t+1).  Saturation is applied after
   every add, so the order matters when a current saturates; :func:`deliver` reproduces it.
   ``weights_out`` (OEN, O) connects the *last* OEN hidden neurons; ``weights_in`` (Nin, IEN[, 2])
   the first IEN.  Hidden neurons have two synapses (``dash_syn``, ``dash_syn_2``; the last axis
   of ``weights_in``/``weights_rec``), output neurons one.
2. Neuron update (``XyloIAFNeuron::evolve``), for the hidden population, then the output one::

       decay(x, dash) = x >> dash (floor), or sign(x) if that is 0     # ``decay()``
       I_k  = I_k - decay(I_k, dash_syn_k)                              # every synapse k
       dv   = clip(wrap16(-decay(v, dash_mem)) + sum_k I_k)             # sum in ``long``
       dv   = clip(dv + bias)
       v    = clip(v + dv)
       while v >= threshold and n < max_spikes: n += 1; v = wrap16(v - threshold)

   ``n`` starts at the spikes this neuron already received as an alias target this step
   (``evolve_neurons``); after a hidden neuron evolves, its count n is added to each alias
   target's count, capped at 31.  Max spikes per step: 31 hidden, 1 output
   (``XyloIAFNeuron.h``).  Recorded states are those after the reset: Isyn, Isyn2, Vmem per
   hidden neuron, Isyn_out, Vmem_out per output neuron.  Note the decay of ``x < 0``: ``x >> dash``
   rounds toward -inf, so -1 decays to 0 in one step and negative currents decay slightly faster
   than positive ones.

numpy only; arrays are (N, neurons) int64, batched over samples.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

MAX_SPIKES_IN = 15   # XyloIAFNeuron.h MAX_NUM_INP_SPIKES
MAX_SPIKES = 31      # XyloIAFNeuron.h MAX_NUM_SPIKES (hidden)
MAX_SPIKES_OUT = 1   # XyloIAFNeuron.h MAX_NUM_OUT_SPIKES
STATE_BITS = 16      # XyloIAFNeuron.h BITS_STATE
WEIGHT_BITS = 8      # XyloIAFNeuron.h BITS_WEIGHT (XyloSynapse.weight is int8_t)

SPEC_KEYS = ("weights_in", "weights_rec", "weights_out", "dash_mem", "dash_mem_out", "dash_syn", "dash_syn_2",
             "dash_syn_out", "threshold", "threshold_out", "bias", "bias_out", "weight_shift_in",
             "weight_shift_rec", "weight_shift_out", "aliases", "dt")


def _bounds(bits: int):
    return -(1 << (bits - 1)), (1 << (bits - 1)) - 1


def clip(x, bits: int = STATE_BITS):
    """Saturate to a signed ``bits``-bit range (xylosim ``safe_add`` for an in-range operand)."""
    lo, hi = _bounds(bits)
    return np.clip(x, lo, hi)


def wrap(x, bits: int = STATE_BITS):
    """Two's-complement wrap to ``bits`` bits (C++ conversion to int16_t)."""
    m = np.int64(1) << bits
    h = np.int64(1) << (bits - 1)
    return ((np.asarray(x, dtype=np.int64) + h) % m) - h


def decay(x, dash):
    """xylosim ``decay()``: x >> dash (arithmetic, floor), or sign(x) when that is 0."""
    x = np.asarray(x, dtype=np.int64)
    d = x >> np.asarray(dash, dtype=np.int64)
    return np.where(d == 0, np.sign(x), d)


def shifted_weights(w, shift: int, bits: int = STATE_BITS):
    """The int16 value one spike adds: wrap16(w << shift) (``receiveSpike(weight << shift)``)."""
    return wrap(np.asarray(w, dtype=np.int64) << int(shift), bits)


def split_weights(w16) -> np.ndarray:
    """(P, M) int16 values -> the (P, 2M) float64 matrix [max(w, 0) | min(w, 0)] :func:`deliver` multiplies."""
    wf = np.asarray(w16, dtype=np.float64)
    return np.ascontiguousarray(np.concatenate([np.maximum(wf, 0), np.minimum(wf, 0)], axis=1))


def deliver(isyn, counts, w16, limit: int, bits: int = STATE_BITS, split=None):
    """Add ``min(counts, limit)`` spikes of every presynaptic neuron through ``w16`` (P, M), in
    presynaptic order, saturating after every add; ``isyn`` (N, M), ``counts`` (N, P); ``split``:
    :func:`split_weights` of ``w16`` when the caller has it.

    Repeated adds of one weight saturate like one add of the multiple, so the exact result is
    the fold ``x = clip(x + c_p * w_p)`` over p.  Where no partial sum can leave the range (the
    sum of positive and of negative contributions both stay inside) this is ``x + counts @ w16``;
    the remaining (sample, neuron) pairs are folded one presynaptic neuron at a time.
    """
    lo, hi = _bounds(bits)
    c = np.minimum(np.asarray(counts, dtype=np.int64), limit)
    if not c.any():
        return isyn
    m = w16.shape[1]
    both = (c.astype(np.float64) @ (split_weights(w16) if split is None else split)).astype(np.int64)  # exact
    pos, neg = both[:, :m], both[:, m:]
    out = isyn + pos
    bad = out > hi
    out += neg
    bad |= (isyn + neg) < lo
    if bad.any():
        n_i, m_i = np.nonzero(bad)
        contrib = c[n_i] * w16[:, m_i].T  # (pairs, P)
        x = isyn[n_i, m_i].copy()
        for p in np.nonzero(contrib.any(axis=0))[0]:
            x += contrib[:, p]
            np.minimum(x, hi, out=x)
            np.maximum(x, lo, out=x)
        out[n_i, m_i] = x
    return out


def spike(v, threshold, limit: int, start=None, bits: int = STATE_BITS):
    """The spike loop: ``while v >= th and n < limit: n += 1; v = wrap(v - th)``.

    Returns (n, v); ``start`` is the count already received as an alias target (default 0).
    """
    th = np.broadcast_to(np.asarray(threshold, dtype=np.int64), v.shape)
    n0 = np.zeros_like(v) if start is None else np.asarray(start, dtype=np.int64)
    pos = th > 0
    if start is None and pos.all():  # the usual case: only the neurons at or above threshold divide
        own = np.zeros_like(v)
        hit = v >= th
        if hit.any():
            own[hit] = np.minimum(v[hit] // th[hit], limit)
        return own, v - own * th
    room = np.maximum(limit - n0, 0)
    k = np.where(pos & (v >= th), v // np.where(pos, th, 1), 0)
    own = np.minimum(k, room)
    v_out = v - own * th
    if not pos.all():  # threshold <= 0: the loop literally (v - th may wrap)
        vv, nn = v.copy(), np.zeros_like(v)
        for _ in range(limit):
            m = (~pos) & (vv >= th) & (nn < room)
            if not m.any():
                break
            nn += m
            vv = np.where(m, wrap(vv - th, bits), vv)
        own = np.where(pos, own, nn)
        v_out = np.where(pos, v_out, vv)
    return n0 + own, v_out


def xylo_step(isyn, vmem, dash_syn, dash_mem, threshold, bias, max_spikes: int, aliases=None,
              bits: int = STATE_BITS):
    """**The** integer step of one Xylo population after delivery (``XyloIAFNeuron::evolve``).

    ``isyn``: (N, n, k) synaptic currents (k synapses per neuron; (N, n) is one synapse),
    ``vmem``: (N, n); ``dash_syn``: (n, k) or (n,); ``dash_mem``, ``threshold``, ``bias``: (n,).
    ``aliases``: None or a list, per neuron, of neurons that receive a copy of its spikes
    (hidden population only).  Returns (isyn, vmem, spikes), spikes (N, n) counts.
    """
    isyn = np.asarray(isyn, dtype=np.int64)
    one = isyn.ndim == 2
    i3 = isyn[..., None] if one else isyn
    ds = np.asarray(dash_syn, dtype=np.int64)
    ds = ds.reshape(ds.shape[0], -1)
    i3 = i3 - decay(i3, ds[None])
    total = i3[..., 0].copy()
    for k in range(1, i3.shape[2]):  # a loop over the 1-2 synapses: numpy's reduce over a tiny axis is slow
        total += i3[..., k]
    v = np.asarray(vmem, dtype=np.int64)
    dv = clip(wrap(-decay(v, np.asarray(dash_mem, dtype=np.int64)), bits) + total, bits)
    dv = clip(dv + np.asarray(bias, dtype=np.int64), bits)
    v = clip(v + dv, bits)
    n, v_out = spike(v, threshold, max_spikes, bits=bits)
    if aliases is not None and any(len(a) for a in aliases):
        n, v_out = _alias(v, np.asarray(threshold, dtype=np.int64), max_spikes, aliases, n, v_out, bits)
    return (i3[..., 0] if one else i3), v_out, n


def _alias(v, threshold, limit, aliases, n, v_out, bits):
    """Spikes with alias connections (``XyloLayer::evolve_neurons``): neurons that send or receive
    alias spikes are redone one by one in index order from their pre-spike ``v``; a neuron starts
    its count at the alias spikes already received, and its total (received + own) is added to
    each alias target's count, capped at ``limit``."""
    involved = sorted({i for i, a in enumerate(aliases) if len(a)} | {int(j) for a in aliases for j in a})
    n, v_out = n.copy(), v_out.copy()
    buf = np.zeros_like(n)
    for i in involved:
        ni, vi = spike(v[:, i], threshold[i], limit, start=buf[:, i], bits=bits)
        buf[:, i], v_out[:, i] = ni, vi
        for a in aliases[i]:
            buf[:, a] = np.minimum(buf[:, a] + ni, limit)
    n[:, involved] = buf[:, involved]
    return n, v_out


@dataclass
class XyloParams:
    """Every integer parameter of a Xylo network except the weights (the ``XyloSim.from_specification``
    arguments of the same names), plus the per-step spike limits and widths of the chip."""

    dash_mem: np.ndarray
    dash_syn: np.ndarray
    dash_syn_2: np.ndarray
    threshold: np.ndarray
    bias: np.ndarray
    dash_mem_out: np.ndarray
    dash_syn_out: np.ndarray
    threshold_out: np.ndarray
    bias_out: np.ndarray
    weight_shift_in: int = 0
    weight_shift_rec: int = 0
    weight_shift_out: int = 0
    aliases: list = field(default_factory=list)
    max_spikes_in: int = MAX_SPIKES_IN
    max_spikes_hidden: int = MAX_SPIKES
    max_spikes_out: int = MAX_SPIKES_OUT
    state_bits: int = STATE_BITS
    weight_bits: int = WEIGHT_BITS

    _ARRAYS = ("dash_mem", "dash_syn", "dash_syn_2", "threshold", "bias", "dash_mem_out", "dash_syn_out",
               "threshold_out", "bias_out")

    def to_meta(self) -> dict:
        """A JSON-able dict (lists and ints)."""
        out = {k: np.asarray(getattr(self, k), dtype=np.int64).tolist() for k in self._ARRAYS}
        for k in ("weight_shift_in", "weight_shift_rec", "weight_shift_out", "max_spikes_in",
                  "max_spikes_hidden", "max_spikes_out", "state_bits", "weight_bits"):
            out[k] = int(getattr(self, k))
        out["aliases"] = [[int(j) for j in a] for a in self.aliases]
        return out

    @classmethod
    def from_meta(cls, meta: dict) -> XyloParams:
        kw = {k: np.asarray(meta[k], dtype=np.int64) for k in cls._ARRAYS}
        for k in ("weight_shift_in", "weight_shift_rec", "weight_shift_out", "max_spikes_in",
                  "max_spikes_hidden", "max_spikes_out", "state_bits", "weight_bits"):
            if k in meta:
                kw[k] = int(meta[k])
        kw["aliases"] = [list(a) for a in meta.get("aliases", [])]
        return cls(**kw)


def _vec(spec, key, n):
    x = spec.get(key)
    return np.zeros(n, dtype=np.int64) if x is None else np.asarray(x, dtype=np.int64).reshape(n)


def normalize_spec(spec: dict) -> dict:
    """The spec with XyloSim's defaults filled in and full-size integer arrays:
    ``w_in`` (Nin, H, 2), ``w_rec`` (H, H, 2), ``w_out`` (H, O) (zero rows for the first H - OEN
    hidden neurons) and a :class:`XyloParams` under ``params``."""
    w_in = np.asarray(spec["weights_in"], dtype=np.int64)
    if w_in.ndim == 2:
        w_in = w_in[:, :, None]
    n_in, ien = w_in.shape[:2]
    w_rec = spec.get("weights_rec")
    h = ien if w_rec is None else np.asarray(w_rec).shape[0]
    w_rec = np.zeros((h, h, 2), np.int64) if w_rec is None else np.asarray(w_rec, dtype=np.int64)
    if w_rec.ndim == 2:
        w_rec = w_rec[:, :, None]
    w_out = np.asarray(spec["weights_out"], dtype=np.int64)
    oen, n_out = w_out.shape
    if oen > h or ien > h:
        raise ValueError(f"weights_out rows ({oen}) and weights_in columns ({ien}) must not exceed {h} hidden")
    full_in = np.zeros((n_in, h, 2), np.int64)
    full_in[:, :ien, :w_in.shape[2]] = w_in
    full_rec = np.zeros((h, h, 2), np.int64)
    full_rec[:, :, :w_rec.shape[2]] = w_rec
    full_out = np.zeros((h, n_out), np.int64)
    full_out[h - oen:] = w_out
    for key, w in (("weights_in", w_in), ("weights_rec", w_rec), ("weights_out", w_out)):
        if w.size and (w.min() < -(1 << (WEIGHT_BITS - 1)) or w.max() >= 1 << (WEIGHT_BITS - 1)):
            raise ValueError(f"{key}: Xylo weights are int8, found values in {w.min()}..{w.max()}")
    aliases = spec.get("aliases")
    params = XyloParams(
        dash_mem=_vec(spec, "dash_mem", h), dash_syn=_vec(spec, "dash_syn", h), dash_syn_2=_vec(spec, "dash_syn_2", h),
        threshold=_vec(spec, "threshold", h), bias=_vec(spec, "bias", h),
        dash_mem_out=_vec(spec, "dash_mem_out", n_out), dash_syn_out=_vec(spec, "dash_syn_out", n_out),
        threshold_out=_vec(spec, "threshold_out", n_out), bias_out=_vec(spec, "bias_out", n_out),
        weight_shift_in=int(spec.get("weight_shift_in", 0) or 0),
        weight_shift_rec=int(spec.get("weight_shift_rec", 0) or 0),
        weight_shift_out=int(spec.get("weight_shift_out", 0) or 0),
        aliases=[[] for _ in range(h)] if aliases is None else [[int(j) for j in a] for a in aliases],
    )
    for key in ("dash_mem", "dash_syn", "dash_syn_2", "dash_mem_out", "dash_syn_out"):
        d = getattr(params, key)
        if d.size and (d.min() < 0 or d.max() > 15):
            raise ValueError(f"{key}: Xylo decay shifts are 4-bit (0..15), found {d.min()}..{d.max()}")
    for key in ("weight_shift_in", "weight_shift_rec", "weight_shift_out"):
        if not 0 <= getattr(params, key) <= 15:
            raise ValueError(f"{key}: expected a left shift in 0..15, found {getattr(params, key)}")
    return {"w_in": full_in, "w_rec": full_rec, "w_out": full_out, "params": params,
            "n_in": n_in, "hidden": h, "outputs": n_out}


def simulate(spec: dict, raster) -> dict:
    """Run a Xylo network (a ``XyloSim.from_specification`` argument dict) on integer rasters
    (N, T, Nin) of input spike counts, every sample from the reset state.

    Returns (N, T, ·) int64 arrays: ``spikes``, ``isyn``, ``isyn2``, ``vmem`` (hidden) and
    ``spikes_out``, ``isyn_out``, ``vmem_out`` (output), as XyloSim records them at each step.
    """
    net = normalize_spec(spec)
    p: XyloParams = net["params"]
    bits = p.state_bits
    raster = np.asarray(raster, dtype=np.int64)
    if raster.ndim == 2:
        raster = raster[None]
    n, t_steps, n_in = raster.shape
    if n_in != net["n_in"]:
        raise ValueError(f"raster has {n_in} input channels, the network {net['n_in']}")
    h, o = net["hidden"], net["outputs"]
    # one presynaptic sequence for the hidden currents: inputs, then hidden (previous step).  When no
    # weight reaches the second synapse, it stays 0 at every step: only the first is simulated.
    k = 2 if (np.any(net["w_in"][..., 1]) or np.any(net["w_rec"][..., 1])) else 1
    w_hid = np.concatenate([shifted_weights(net["w_in"][..., :k], p.weight_shift_in, bits),
                            shifted_weights(net["w_rec"][..., :k], p.weight_shift_rec, bits)]).reshape(n_in + h, k * h)
    w_out = shifted_weights(net["w_out"], p.weight_shift_out, bits)
    split_hid, split_out = split_weights(w_hid), split_weights(w_out)
    aliases = p.aliases if any(len(a) for a in p.aliases) else None
    limits = np.concatenate([np.full(n_in, p.max_spikes_in), np.full(h, p.max_spikes_hidden)])
    dash_syn = np.stack([p.dash_syn, p.dash_syn_2], axis=1)[:, :k]
    isyn = np.zeros((n, h * k), np.int64)
    vmem = np.zeros((n, h), np.int64)
    isyn_o = np.zeros((n, o), np.int64)
    vmem_o = np.zeros((n, o), np.int64)
    prev = np.zeros((n, h), np.int64)
    # recorded step-major (contiguous writes), returned sample-major
    rec = {key: np.zeros((t_steps, n, h), np.int64) for key in ("spikes", "isyn", "isyn2", "vmem")}
    rec.update({key: np.zeros((t_steps, n, o), np.int64) for key in ("spikes_out", "isyn_out", "vmem_out")})
    for t in range(t_steps):
        counts = np.minimum(np.concatenate([raster[:, t], prev], axis=1), limits)
        isyn = deliver(isyn, counts, w_hid, max(p.max_spikes_in, p.max_spikes_hidden), bits, split_hid)
        isyn_o = deliver(isyn_o, prev, w_out, p.max_spikes_hidden, bits, split_out)
        i3, vmem, s = xylo_step(isyn.reshape(n, h, k), vmem, dash_syn, p.dash_mem, p.threshold, p.bias,
                                p.max_spikes_hidden, aliases, bits)
        isyn = i3.reshape(n, k * h)
        isyn_o, vmem_o, s_o = xylo_step(isyn_o, vmem_o, p.dash_syn_out, p.dash_mem_out, p.threshold_out,
                                        p.bias_out, p.max_spikes_out, None, bits)
        prev = s
        rec["spikes"][t], rec["isyn"][t], rec["vmem"][t] = s, i3[..., 0], vmem
        if k == 2:
            rec["isyn2"][t] = i3[..., 1]
        rec["spikes_out"][t], rec["isyn_out"][t], rec["vmem_out"][t] = s_o, isyn_o, vmem_o
    return {key: a.transpose(1, 0, 2) for key, a in rec.items()}
