"""fxsim for TTFS graphs: the integer neuron program of :mod:`snncompile.neurons.ttfs` on whole
populations, batched over samples.

A population's input is the Dense output of the previous population's spikes, a = (W s) << e
(>> -e, floor, for e < 0): exactly Lava's PyDenseModelBitAcc (one step of delay per layer).
Inputs and hidden activations travel as spike counts c in {0..K}.

:func:`run_layer_closed` evaluates a population exactly in O(one matmul) whenever bounds prove
that no u wraps and no v saturates during integration; :func:`run_layer_stepped` runs
:func:`snncompile.neurons.ttfs.integer_step` step by step (exact for every input) and serves the
samples whose bounds cannot rule a wrap out.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import nir
import numpy as np
import torch

from ..arith import shift_exp
from ..errors import InvalidModel
from ..neurons.ttfs import TtfsParams, fire_closed, integer_step, output_counts
from ..nirops import apply_chain, composite_matrix
from .graph import TtfsLayer, TtfsNet


class LinearMap:
    """A population's integer input map (its chain of linear NIR nodes), evaluated exactly.

    Integer inputs times integer mantissas are exact in float32 while every partial sum stays
    below 2**24 (checked from the largest absolute row sum), else float64 (below 2**53).  A chain
    that is a single Affine (after flattens) is a matrix product; other chains (conv, pools) go
    through :func:`snncompile.nirops.apply_chain`.
    """

    def __init__(self, ops, in_shape: tuple, max_count: int):
        self.ops, self.in_shape = ops, tuple(in_shape)
        nodes = [n for _, n in ops]
        self.dense = all(isinstance(n, nir.Flatten) for n in nodes[:-1]) and isinstance(nodes[-1], nir.Affine) \
            if nodes else False
        ones = torch.ones((1, *self.in_shape), dtype=torch.float64)
        with torch.no_grad():
            self.absrow = float(apply_chain([(k, _signed_node(n, 0)) for k, n in ops], ones, with_bias=False).max())
        self.dtype = torch.float32 if self.absrow * max(max_count, 1) < 2 ** 24 else torch.float64
        if self.dense:
            self.wt = torch.as_tensor(np.asarray(nodes[-1].weight, dtype=np.float64).T.copy(), dtype=self.dtype)
        self._fanout = None

    def __call__(self, x) -> np.ndarray:
        """(N, *in_shape) integer array -> (N, out) int64."""
        x = torch.as_tensor(np.asarray(x), dtype=self.dtype)
        with torch.no_grad():
            if self.dense:
                y = x.reshape(len(x), -1) @ self.wt
            else:
                y = apply_chain(self.ops, x, with_bias=False).reshape(len(x), -1)
        return y.numpy().astype(np.int64)

    def absolute(self) -> LinearMap:
        """The same map with weights |w|."""
        return self.signed(0)

    def signed(self, sign: int) -> LinearMap:
        """The same map with weights max(w, 0) (sign +1), min(w, 0) (sign -1) or |w| (sign 0)."""
        out = LinearMap([(k, _signed_node(n, sign)) for k, n in self.ops], self.in_shape, 1)
        out.dtype = self.dtype
        if out.dense:
            out.wt = out.wt.to(self.dtype)
        return out

    def levels(self, counts: np.ndarray, steps: int, as_tensor: bool = False, level_major: bool = False):
        """Per-arrival-step input sums: slot k holds the sum over inputs with count K - k.

        (N, K, out) int64 numpy array; or (``as_tensor``) the exact float tensor in ``self.dtype``,
        (K, N, out) when ``level_major``."""
        N = len(counts)
        flat = counts.reshape(N, -1)
        n, j = np.nonzero(flat)
        k = (steps - flat[n, j]).astype(np.int8)
        if self.dense:
            order = np.argsort(k, kind="stable")  # radix sort on small ints; n stays ascending within a level
            rows = k[order].astype(np.int64) * N + n[order]
            crow = np.zeros(N * steps + 1, np.int64)
            crow[1:] = np.cumsum(np.bincount(rows, minlength=N * steps))
            ind = torch.sparse_csr_tensor(torch.as_tensor(crow), torch.as_tensor(j[order]),
                                          torch.ones(len(n), dtype=self.dtype), (N * steps, flat.shape[1]),
                                          check_invariants=False)
            with torch.no_grad():
                y = (ind @ self.wt).reshape(steps, N, -1)
        else:
            onehot = torch.zeros((steps, N, flat.shape[1]), dtype=self.dtype)
            onehot[k.astype(np.int64), n, j] = 1.0
            with torch.no_grad():
                y = apply_chain(self.ops, onehot.reshape((N * steps, *self.in_shape)), with_bias=False)
            y = y.reshape(steps, N, -1)
        if as_tensor:
            return y if level_major else y.transpose(0, 1)
        return y.transpose(0, 1).numpy().astype(np.int64)

    def fanout(self) -> np.ndarray:
        """Synapses leaving each input neuron (nonzero entries per column)."""
        if self._fanout is None:
            if self.dense:
                self._fanout = (self.wt.numpy() != 0).sum(axis=1)
            else:
                mat = composite_matrix([(k, _signed_node(n, 0)) for k, n in self.ops], self.in_shape)
                self._fanout = np.asarray((mat != 0).sum(axis=0)).ravel()
        return self._fanout


@dataclass
class FixedLayer:
    """Integer parameters of one population of a quantized TTFS graph."""

    name: str
    role: str
    ops: list
    in_shape: tuple
    out_shape: tuple
    steps: int
    weight_exp: int
    slope: int
    threshold: int
    bias: np.ndarray  # (neurons,) int64
    arrival: int      # A: step at which a count-K input arrives
    t_in_end: int
    fire_start: int
    fire_end: int
    _map: LinearMap | None = field(default=None, repr=False)

    @property
    def neurons(self) -> int:
        return int(np.prod(self.out_shape))

    @property
    def params(self) -> TtfsParams:
        return TtfsParams(self.role, self.steps, self.weight_exp, self.slope, self.threshold, self.arrival,
                          self.t_in_end, self.fire_start, self.fire_end)

    @property
    def map(self) -> LinearMap:
        if self._map is None:
            self._map = LinearMap(self.ops, self.in_shape, self.steps)
        return self._map

    @classmethod
    def from_layer(cls, layer: TtfsLayer, steps: int) -> FixedLayer:
        m = layer.meta
        try:
            bias = np.asarray(getattr(layer.node, "v_leak", np.zeros(layer.out_shape)), dtype=np.float64)
            return cls(layer.name, layer.role, layer.ops, layer.in_shape, layer.out_shape, steps,
                       int(m["weight_exp"]), int(m["slope"]), int(m["threshold"]),
                       np.broadcast_to(bias, layer.out_shape).reshape(-1).astype(np.int64),
                       int(m["arrival"]), int(m["t_in_end"]), int(m["fire_start"]), int(m["fire_end"]))
        except KeyError as exc:
            raise InvalidModel(f"node {layer.name!r}: quantized TTFS metadata lacks {exc.args[0]!r}") from None


@dataclass(frozen=True)
class Arith:
    state_bits: int
    act_shift: int

    @property
    def vmax(self) -> int:
        return (1 << (self.state_bits - 1)) - 1


def fixed_layers(net: TtfsNet) -> list[FixedLayer]:
    """The populations of a quantized graph.  Cached on the graph object (their linear maps are
    reused across runs) and keyed by the identity of every parameter array, so a copied or edited
    graph gets fresh populations."""
    if not net.quantized:
        raise InvalidModel("fxsim needs a quantized graph (model.q.nir); run the quantize pass first")
    key = tuple(id(v) for node in net.graph.nodes.values() for v in vars(node).values() if isinstance(v, np.ndarray))
    cached = getattr(net.graph, "_snncompile_fixed", None)
    if cached is None or cached[0] != key:
        cached = (key, [FixedLayer.from_layer(layer, int(net.meta["steps"])) for layer in net.layers])
        net.graph._snncompile_fixed = cached
    return cached[1]


def arith_of(net: TtfsNet) -> Arith:
    return Arith(int(net.meta["state_bits"]), int(net.meta["act_shift"]))


@dataclass
class LayerOut:
    """Result of one population for a batch: spike step (-1: none), counts, integer v at t_in_end."""

    spike_step: np.ndarray | None  # (N, neurons) int64
    counts: np.ndarray              # (N, *out_shape) int64 (readout: zeros)
    z: np.ndarray                   # (N, neurons) v at t_in_end
    wraps: np.ndarray               # (N,) wrap events
    sats: np.ndarray                # (N,) saturation events
    v_trace: np.ndarray | None = None   # (N, T, neurons) when recorded


def run_layer_closed(layer: FixedLayer, counts_in: np.ndarray, ar: Arith, chunk_elems: int = 8_000_000):
    """Closed form for one population; returns (LayerOut, valid (N,)).  Rows where integration
    might wrap u or saturate v are marked invalid and must be re-run with :func:`run_layer_stepped`.

    e >= 0: v(t_in_end) = beta + (W c) << (act_shift + e), one matrix product; u stays within
    [sum of fired negative weights, sum of fired positive weights] << shift.
    e < 0: Lava floors each step's sum, a_k = (W s_k) >> -e, so per-arrival-step sums are needed;
    v(t_in_end) = beta + sum_k (K - k) (a_k << act_shift) and u lies within the sums of the
    positive / negative a_k.
    """
    N = len(counts_in)
    K = layer.steps
    if layer.role == "maxpool":  # small populations: the program itself is cheap enough
        return run_layer_stepped(layer, counts_in, ar, layer.fire_end), np.ones(N, bool)
    e = layer.weight_exp
    m = 1 << (ar.state_bits - 1)
    bmax = int(np.abs(layer.bias).max(initial=0))
    if e >= 0:
        sh = ar.act_shift + e
        z = layer.bias[None, :] + (layer.map(counts_in) << sh)
        worst = layer.map.absrow * (1 << sh)
        if worst <= m - 1 and bmax + K * worst <= ar.vmax:
            valid = np.ones(N, bool)
        else:
            fired = (counts_in > 0).astype(np.float32)
            pos = layer.map.signed(+1)(fired) << sh
            neg = layer.map.signed(-1)(fired) << sh
            valid = ((pos <= m) & (neg > -m) & (bmax + K * np.maximum(pos, -neg) <= ar.vmax)).all(axis=1)
    else:
        d = 1 << (-e)
        rows = max(1, chunk_elems // max(1, K * layer.neurons))
        z = np.empty((N, layer.neurons), np.int64)
        exact32 = K * (layer.map.absrow / d + K) < 2 ** 24  # the weighted sum below is exact in float32
        for i in range(0, N, rows):
            lv = layer.map.levels(counts_in[i:i + rows], K, as_tensor=True, level_major=True)  # (K, n, out)
            a = torch.floor(lv / d)  # exact: |sums| < 2**24 in float32, < 2**53 in float64
            if not exact32:
                a = a.to(torch.float64)
            acc = torch.zeros(a.shape[1:], dtype=a.dtype)
            for k in range(K):  # slot k is integrated for K - k steps
                acc.add_(a[k], alpha=K - k)
            z[i:i + rows] = layer.bias[None, :] + (acc.numpy().astype(np.int64) << ar.act_shift)
        # |u| <= sum_k |a_k| <= (|W| fired) / d + K, all << act_shift; first the all-inputs bound
        worst = ((int(layer.map.absrow) >> (-e)) + K) << ar.act_shift
        if worst <= m - 1 and bmax + K * worst <= ar.vmax:
            valid = np.ones(N, bool)
        else:
            fired = (counts_in > 0).astype(np.float32)
            upk = ((layer.map.absolute()(fired) >> (-e)) + K) << ar.act_shift
            valid = ((upk <= m - 1) & (bmax + K * upk <= ar.vmax)).all(axis=1)
    zeros = np.zeros(N, dtype=np.int64)
    if layer.role == "readout":
        return LayerOut(None, np.zeros((N, *layer.out_shape), np.int64), z, zeros, zeros.copy()), valid
    step, counts, sats = fire_closed(layer.params, z, ar.vmax)
    return LayerOut(step, counts.reshape((N, *layer.out_shape)), z, zeros, sats), valid


def _signed_node(node, sign: int):
    """A copy of a linear node with weights |w| (sign 0), max(w, 0) (+1) or min(w, 0) (-1)."""
    import copy

    if not hasattr(node, "weight"):
        return node
    out = copy.copy(node)
    w = np.asarray(node.weight, dtype=np.float64)
    out.weight = np.abs(w) if sign == 0 else (np.maximum(w, 0) if sign > 0 else np.minimum(w, 0))
    return out


def run_layer_stepped(layer: FixedLayer, counts_in: np.ndarray, ar: Arith, t_total: int, record: bool = False):
    """The neuron program step by step (:func:`snncompile.neurons.ttfs.integer_step`); exact for every input."""
    N = len(counts_in)
    K, n = layer.steps, layer.neurons
    p = layer.params
    u = np.zeros((N, n), np.int64)
    v = np.repeat(layer.bias[None, :], N, axis=0).astype(np.int64)
    fired = np.zeros((N, n), bool)
    spike_step = np.full((N, n), -1, np.int64)
    wraps = np.zeros(N, np.int64)
    sats = np.zeros(N, np.int64)
    trace = np.zeros((N, t_total, n), np.int64) if record else None
    levels = layer.map.levels(counts_in, K)  # (N, K, n): Dense sums arriving at steps A .. A+K-1
    zero = np.zeros((N, n), np.int64)
    z = None
    for t in range(1, t_total + 1):
        k = t - layer.arrival
        a = shift_exp(levels[:, k], layer.weight_exp) if 0 <= k < K else zero
        u, v, fired, s = integer_step(u, v, fired, a, t, p, ar.state_bits, ar.act_shift, wraps, sats)
        spike_step[s] = t
        if t == layer.t_in_end:
            z = v.copy()
        if record:
            trace[:, t - 1] = v
    if layer.role == "readout":
        return LayerOut(None, np.zeros((N, *layer.out_shape), np.int64), z, wraps, sats, trace)
    counts = output_counts(p, spike_step).reshape((N, *layer.out_shape))
    return LayerOut(spike_step, counts, z, wraps, sats, trace)


def run_network(layers: list[FixedLayer], ar: Arith, counts_in: np.ndarray, t_total: int,
                mode: str = "auto", record: bool = False) -> list[LayerOut]:
    """Run every population on input counts (N, *input_shape); ``mode``: auto | closed | stepped."""
    outs = []
    c = counts_in
    for layer in layers:
        if mode == "stepped" or record:
            out = run_layer_stepped(layer, c, ar, t_total, record=record)
        else:
            out, valid = run_layer_closed(layer, c, ar)
            if mode == "closed" and (out is None or not valid.all()):
                raise InvalidModel(f"layer {layer.name!r}: the closed form does not apply (bounds or e < 0)")
            if out is None:
                out = run_layer_stepped(layer, c, ar, t_total)
            elif not valid.all():
                bad = np.flatnonzero(~valid)
                fix = run_layer_stepped(layer, c[bad], ar, t_total)
                for attr in ("spike_step", "counts", "z", "wraps", "sats"):
                    arr = getattr(out, attr)
                    if arr is not None:
                        arr[bad] = getattr(fix, attr)
        outs.append(out)
        c = out.counts
    return outs
