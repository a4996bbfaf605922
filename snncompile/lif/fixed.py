"""fxsim for quantized LIF graphs: Lava's PyLifModelBitAcc and PyDenseModelBitAcc rules
(:func:`snncompile.neurons.lif.loihi_step`), vectorized over samples.

Per step t every population reads the previous steps' spikes through its connections,
a = sum_c Dense_c(x_src(t - d_c)) with Dense = (W s) << e, or >> -e (floor), then takes one
integer step.  Input spikes emitted at step t (raster column t - 1) and the always-on bias
source reach their targets at t + 1.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from ..arith import clip_truncate, shift_exp
from ..errors import InvalidModel
from ..ir import get_meta
from ..neurons.lif import LifParams, loihi_step, readout_scores
from ..quantize.lif import FORMAT_Q


@dataclass
class QPop:
    name: str
    neurons: int
    params: LifParams
    bias: np.ndarray

    @property
    def spiking(self) -> bool:
        return self.params.spiking

    @property
    def v_lsb(self) -> float:
        return self.params.v_lsb


@dataclass
class QConn:
    name: str
    src: str
    dst: str
    weight: torch.Tensor  # (in, out) float, exact for integer sums below 2**24 (float32) / 2**53
    exp: int
    delay: int


@dataclass
class QNet:
    meta: dict
    pops: dict
    conns: list
    input_shape: tuple
    readout: str


def read_qlif(graph) -> QNet:
    meta = get_meta(graph)
    if meta.get("format") != FORMAT_Q:
        raise InvalidModel("not a quantized snncompile LIF graph (model.q.nir from a spiking NIR input)")
    pops, conns = {}, []
    for name in meta["populations"]:
        node, m = graph.nodes[name], get_meta(graph.nodes[name])
        pops[name] = QPop(name, int(np.size(node.v_leak)), LifParams.from_meta(m),
                          np.asarray(node.v_leak, dtype=np.float64).astype(np.int64))
    for name in meta["connections"]:
        node, m = graph.nodes[name], get_meta(graph.nodes[name])
        w = clip_truncate(np.asarray(node.weight), int(meta["weight_bits"]), int(meta["full_weight_bits"]),
                          meta["sign_mode"])  # what Lava's Dense does on its first step
        big = float(np.abs(w).sum(axis=1).max(initial=0))
        dtype = torch.float32 if big < 2 ** 24 else torch.float64
        conns.append(QConn(name, m["src"], m["dst"], torch.as_tensor(w.T.astype(np.float64), dtype=dtype),
                           int(m["weight_exp"]), int(m["delay"])))
    return QNet(meta, pops, conns, tuple(meta["input_shape"]), meta["readout"])


@dataclass
class QResult:
    scores: np.ndarray
    counts: dict
    first_step: dict
    wraps: dict
    sats: dict
    t_total: int
    traces: dict | None = None
    spikes: dict | None = None


def simulate_fixed(qnet: QNet, raster: np.ndarray, t_total: int | None = None, record: bool = False,
                   batch_size: int = 500) -> QResult:
    raster = np.asarray(raster)
    T = raster.shape[1] + int(qnet.meta["depth"]) if t_total is None else t_total
    parts = [_run(qnet, raster[i:i + batch_size], T, record) for i in range(0, len(raster), batch_size)]
    cat = np.concatenate

    def merge(key):
        return {k: cat([getattr(p, key)[k] for p in parts]) for k in qnet.pops}

    return QResult(cat([p.scores for p in parts]), merge("counts"), merge("first_step"), merge("wraps"),
                   merge("sats"), T, merge("traces") if record else None, merge("spikes") if record else None)


PRECOMPUTE_LIMIT = 64_000_000  # entries of an input connection's all-steps current computed in one product


def _input_currents(qnet: QNet, flat_in: np.ndarray) -> dict:
    """Connections from the input raster (all steps of all samples in one product) and from the bias
    source (constant); (N, T_in, out) resp. (1, out) int64, already shifted by the weight exponent."""
    N, T_in = flat_in.shape[:2]
    pre = {}
    for c in qnet.conns:
        if c.src == "bias":
            acc = c.weight.sum(dim=0, keepdim=True) if c.weight.shape[0] == 1 else \
                torch.ones((1, c.weight.shape[0]), dtype=c.weight.dtype) @ c.weight
            pre[c.name] = shift_exp(acc.numpy().astype(np.int64), c.exp)
        elif c.src not in qnet.pops and N * T_in * c.weight.shape[1] <= PRECOMPUTE_LIMIT:
            x = torch.as_tensor(flat_in.reshape(N * T_in, -1), dtype=c.weight.dtype)
            acc = (x @ c.weight).numpy().astype(np.int64)
            pre[c.name] = shift_exp(acc, c.exp).reshape(N, T_in, -1)
    return pre


def _run(qnet: QNet, raster: np.ndarray, T: int, record: bool) -> QResult:
    meta = qnet.meta
    bits, shift, dbits = int(meta["state_bits"]), int(meta["act_shift"]), int(meta["decay_bits"])
    vth_shift = int(meta["vth_shift"])
    N, T_in = raster.shape[0], raster.shape[1]
    flat_in = raster.reshape(N, T_in, -1)
    u = {k: np.zeros((N, p.neurons), np.int64) for k, p in qnet.pops.items()}
    v = {k: np.repeat(np.zeros((1, p.neurons), np.int64), N, 0) for k, p in qnet.pops.items()}
    hist = {k: [] for k in qnet.pops}
    counts = {k: np.zeros((N, p.neurons), np.int64) for k, p in qnet.pops.items()}
    first = {k: np.full((N, p.neurons), -1, np.int64) for k, p in qnet.pops.items()}
    wraps = {k: np.zeros(N, np.int64) for k in qnet.pops}
    sats = {k: np.zeros(N, np.int64) for k in qnet.pops}
    traces = {k: np.zeros((N, T, p.neurons), np.int64) for k, p in qnet.pops.items()} if record else None
    spk = {k: np.zeros((N, T, p.neurons), bool) for k, p in qnet.pops.items()} if record else None
    incoming = {k: [c for c in qnet.conns if c.dst == k] for k in qnet.pops}
    vsum = np.zeros((N, qnet.pops[qnet.readout].neurons), np.int64)
    ro = qnet.pops[qnet.readout]
    pre = _input_currents(qnet, flat_in)
    for t in range(1, T + 1):
        new = {}
        for name, p in qnet.pops.items():
            a = np.zeros((N, p.neurons), np.int64)
            for c in incoming[name]:
                ts = t - c.delay
                if c.name in pre:  # the input raster or the bias: every step's current computed up front
                    if c.src == "bias" and ts >= 1:
                        a += pre[c.name]
                    elif c.src != "bias" and 1 <= ts <= T_in:
                        a += pre[c.name][:, ts - 1]
                    continue
                if c.src == "bias":
                    x = np.ones((N, 1)) if ts >= 1 else None
                elif c.src in qnet.pops:
                    x = hist[c.src][ts - 1] if ts >= 1 else None
                else:
                    x = flat_in[:, ts - 1] if 1 <= ts <= T_in else None
                if x is None or not np.any(x):
                    continue
                acc = (torch.as_tensor(x, dtype=c.weight.dtype) @ c.weight).numpy().astype(np.int64)
                a += shift_exp(acc, c.exp)
            uu, vv, s = loihi_step(u[name], v[name], a, p.params, p.bias[None, :], bits, shift, dbits, vth_shift,
                                   wraps[name], sats[name])
            u[name], v[name] = uu, vv
            new[name] = s
            counts[name] += s
            fresh = s & (first[name] < 0)
            first[name][fresh] = t
            if record:
                traces[name][:, t - 1] = vv
                spk[name][:, t - 1] = s
        for name in qnet.pops:
            hist[name].append(new[name])
        if not ro.spiking:
            vsum += v[qnet.readout]
    _, scores = readout_scores(ro.spiking, counts[qnet.readout], vsum, ro.v_lsb, T)
    return QResult(scores, counts, first, wraps, sats, T, traces, spk)
