"""fxsim for TTFS graphs: the integer neuron program of :mod:`snncompile.neurons.ttfs` on whole
populations, batched over samples.

A population's input is the Dense output of the previous population's spikes, a = (W s) << e
(>> -e, floor, for e < 0): exactly Lava's PyDenseModelBitAcc (one step of delay per layer).
Inputs and hidden activations travel as spike counts c in {0..K}.

:func:`run_layer_closed` evaluates a population exactly whenever bounds prove that no u wraps
and no v saturates during integration: one product for e >= 0; for e < 0 (Lava floors every
step's sum) one sum of weight rows per (arrival step, sample) over only the inputs that arrive then
(matrix maps: the compiled integer kernel :func:`snncompile.ttfs.kernels.floored_step_sums`; conv
chains: one exact float pass per arrival step), the per-sample wrap bound from the same floored sums
unless the all-inputs bound already rules a wrap out; max-pool populations in closed form.
:func:`run_layer_stepped` runs :func:`snncompile.neurons.ttfs.integer_step` step by
step (exact for every input) and serves the samples whose bounds cannot rule a wrap out.  The batch
is split over a small thread pool with BLAS single-threaded inside (:func:`run_network`).

Longer than 400 lines: the exact linear maps, the three closed forms and the stepped program they
are checked against are one simulator and share their bounds.
"""

from __future__ import annotations

import functools
import os
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

import nir
import numpy as np
import scipy.sparse as sp
import torch

from ..arith import shift_exp
from ..errors import InvalidModel
from ..neurons.ttfs import TtfsParams, fire_closed, integer_step, output_counts
from ..nirops import apply_chain, composite_matrix
from .graph import TtfsLayer, TtfsNet
from .kernels import floored_step_sums

DENSE_COMPOSITE_LIMIT = 4_000_000  # a non-Affine chain runs as an (in x out) matrix up to this many entries
DENSE_COMPOSITE_DENSITY = 0.1       # ... when at least this fraction of them is nonzero
DENSE_COUNTS = 0.4                  # step_rows sorts every entry when more than this share of inputs spike
CHUNK_ELEMS = 1 << 20               # elements per work item of the closed-form firing (fits the cache)
BLAS_THREADS: int | None = 1        # BLAS threads inside run_network (None: leave BLAS as configured)


@functools.cache
def _workers() -> int:
    return max(1, min(2, os.cpu_count() or 1))


_POOL: ThreadPoolExecutor | None = None


def parallel_map(fn, items: list) -> list:
    """``[fn(i) for i in items]`` on a small thread pool (numpy, scipy and torch release the GIL in
    the products); one item runs inline."""
    global _POOL
    if len(items) <= 1 or _workers() == 1:
        return [fn(i) for i in items]
    if _POOL is None:
        _POOL = ThreadPoolExecutor(_workers(), thread_name_prefix="fxsim")
    return list(_POOL.map(fn, items))


def step_rows(flat: np.ndarray, steps: int) -> tuple[np.ndarray, np.ndarray]:
    """Inputs (n, in) counts -> the CSR structure (indptr, indices) of the (K*n, in) 0/1 matrix whose
    row k*n + i marks the inputs of sample i that spike at arrival step k (count K - k); both int32
    where that suffices, else int64."""
    n_rows, n_in = flat.shape
    small = np.ascontiguousarray(flat, dtype=np.uint8 if steps < 256 else np.int32).ravel()
    idx_t = np.int32 if max(steps * n_rows + 1, small.size + 1) < 2 ** 31 else np.int64
    nnz = np.count_nonzero(small)
    if nnz > DENSE_COUNTS * small.size:  # mostly spiking: sort every entry by its step (silent ones last)
        keys = small.dtype.type(steps) - small
        idx = np.argsort(keys, kind="stable")[:nnz]  # a radix sort on small ints, stable: samples ascending
        k = keys[idx]
    else:
        idx = np.flatnonzero(small)
        k = steps - small[idx]
        order = np.argsort(k, kind="stable")
        idx, k = idx[order], k[order]
    n, j = np.divmod(idx.astype(idx_t, copy=False), idx_t(n_in))
    rows = k.astype(idx_t) * idx_t(n_rows) + n
    indptr = np.zeros(steps * n_rows + 1, idx_t)
    np.cumsum(np.bincount(rows, minlength=steps * n_rows), out=indptr[1:])
    return indptr, j


def step_matrix(flat: np.ndarray, steps: int, dtype=np.float32) -> sp.csr_matrix:
    """:func:`step_rows` as a scipy CSR matrix of ones in ``dtype``."""
    indptr, indices = step_rows(flat, steps)
    return sp.csr_matrix((np.ones(len(indices), dtype), indices, indptr), shape=(len(indptr) - 1, flat.shape[1]))


class LinearMap:
    """A population's integer input map (its chain of linear NIR nodes), evaluated exactly.

    Integer inputs times integer mantissas are exact in float32 while every partial sum stays
    below 2**24 (checked from the largest absolute row sum), else float64 (below 2**53).  A chain
    that is a single Affine (after flattens), or whose composite matrix is small and dense enough
    (pool -> flatten -> Affine), runs as an (in x out) matrix; other chains (conv) go through
    :func:`snncompile.nirops.apply_chain`.
    """

    def __init__(self, ops, in_shape: tuple, max_count: int):
        self.ops, self.in_shape = ops, tuple(in_shape)
        nodes = [n for _, n in ops]
        self.dense = all(isinstance(n, nir.Flatten) for n in nodes[:-1]) and isinstance(nodes[-1], nir.Affine) \
            if nodes else False
        ones = torch.ones((1, *self.in_shape), dtype=torch.float64)
        with torch.no_grad():
            out = apply_chain([(k, _signed_node(n, 0)) for k, n in ops], ones, with_bias=False)
        self.absrow = float(out.max())
        self.n_out = int(out.numel())
        self.dtype = torch.float32 if self.absrow * max(max_count, 1) < 2 ** 24 else torch.float64
        self.np_dtype = np.float32 if self.dtype == torch.float32 else np.float64
        self.mat = None  # (in, out) numpy matrix in np_dtype, when the chain runs as one
        if self.dense:
            self.mat = np.ascontiguousarray(np.asarray(nodes[-1].weight, dtype=np.float64).T, dtype=self.np_dtype)
        elif ops and int(np.prod(self.in_shape)) * self.n_out <= DENSE_COMPOSITE_LIMIT:
            cm = composite_matrix(ops, self.in_shape)
            if cm.nnz >= DENSE_COMPOSITE_DENSITY * cm.shape[0] * cm.shape[1]:
                self.mat = np.ascontiguousarray(cm.T.toarray(), dtype=self.np_dtype)
        self._fanout = None
        self._mat_t = None
        self._int = None

    def int_weights(self) -> tuple[np.ndarray, type]:
        """The (in x out) matrix as integers in the narrowest of int16 / int32 / int64, and the
        accumulator dtype for sums of its rows (int32 while the largest absolute row sum fits), cached."""
        if self._int is None:
            m = self.mat
            if not np.array_equal(np.rint(m), m):
                raise InvalidModel("fxsim: a quantized weight matrix holds non-integer mantissas")
            top = float(np.abs(m).max(initial=0))
            wdt = np.int16 if top < 2 ** 15 else (np.int32 if top < 2 ** 31 else np.int64)
            self._int = (np.ascontiguousarray(m, dtype=wdt), np.int32 if self.absrow < 2 ** 31 else np.int64)
        return self._int

    @property
    def wt(self) -> torch.Tensor:
        if self._mat_t is None:
            self._mat_t = torch.from_numpy(self.mat)
        return self._mat_t

    def __call__(self, x) -> np.ndarray:
        """(N, *in_shape) integer array -> (N, out) int64."""
        x = np.asarray(x)
        if self.mat is not None:
            flat = x.reshape(len(x), -1)
            step = max(128, -(-len(x) // _workers()))
            parts = parallel_map(lambda i: (flat[i:i + step].astype(self.np_dtype) @ self.mat).astype(np.int64),
                                 list(range(0, len(x), step)))
            return np.concatenate(parts) if parts else np.zeros((0, self.n_out), np.int64)
        x = torch.as_tensor(x, dtype=self.dtype)
        with torch.no_grad():
            y = apply_chain(self.ops, x, with_bias=False).reshape(len(x), -1)
        return y.numpy().astype(np.int64)

    def signed(self, sign: int) -> LinearMap:
        """The same map with weights max(w, 0) (sign +1), min(w, 0) (sign -1) or |w| (sign 0)."""
        out = LinearMap.__new__(LinearMap)
        out.ops = [(k, _signed_node(n, sign)) for k, n in self.ops]
        out.in_shape, out.dense, out.absrow, out.n_out = self.in_shape, self.dense, self.absrow, self.n_out
        out.dtype, out.np_dtype = self.dtype, self.np_dtype
        out._fanout = out._mat_t = out._int = None
        out.mat = None
        if self.mat is not None:
            m = self.mat
            out.mat = np.abs(m) if sign == 0 else (np.maximum(m, 0) if sign > 0 else np.minimum(m, 0))
        return out

    def levels(self, counts: np.ndarray, steps: int, as_tensor: bool = False, level_major: bool = False):
        """Per-arrival-step input sums: slot k holds the sum over inputs with count K - k.

        (N, K, out) int64 numpy array; or (``as_tensor``) the exact float array in ``self.dtype``
        (numpy for matrix maps, torch otherwise), (K, N, out) when ``level_major``."""
        N = len(counts)
        flat = counts.reshape(N, -1)
        if self.mat is not None:
            y = (step_matrix(flat, steps, self.np_dtype) @ self.mat).reshape(steps, N, -1)
            if as_tensor:
                return y if level_major else y.transpose(1, 0, 2)
            return y.transpose(1, 0, 2).astype(np.int64)
        n, j = np.nonzero(flat)
        k = (steps - flat[n, j]).astype(np.int64)
        onehot = torch.zeros((steps, N, flat.shape[1]), dtype=self.dtype)
        onehot[k, n, j] = 1.0
        with torch.no_grad():
            y = apply_chain(self.ops, onehot.reshape((N * steps, *self.in_shape)), with_bias=False)
        y = y.reshape(steps, N, -1)
        if as_tensor:
            return y if level_major else y.transpose(0, 1)
        return y.transpose(0, 1).numpy().astype(np.int64)

    def fanout(self) -> np.ndarray:
        """Synapses leaving each input neuron (nonzero entries per column)."""
        if self._fanout is None:
            weighted = [n for _, n in self.ops if not isinstance(n, nir.Flatten)]
            if self.mat is not None:
                self._fanout = (self.mat != 0).sum(axis=1)
            elif len(weighted) == 1:  # one conv / pool: the column sums of its 0/1 mask, by one transposed pass
                ops = [(k, _mask_node(n)) for k, n in self.ops]
                x = torch.zeros((1, *self.in_shape), dtype=torch.float64, requires_grad=True)
                apply_chain(ops, x, with_bias=False).sum().backward()
                self._fanout = np.rint(x.grad.numpy().reshape(-1)).astype(np.int64)
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
    min_channels: tuple = ()  # max-pool populations: channels that min-pool (a negative BatchNorm scale)
    _map: LinearMap | None = field(default=None, repr=False)

    @property
    def neurons(self) -> int:
        return int(np.prod(self.out_shape))

    def u_threshold(self, act_shift: int) -> np.ndarray | None:
        """Per neuron, (k*k - 1) << act_shift for min-pool neurons (fire once the whole window has
        arrived), -1 for the others; None without min-pool channels
        (:func:`snncompile.neurons.ttfs.integer_step`)."""
        if not self.min_channels:
            return None
        (_, pool), = self.ops
        k = np.broadcast_to(np.asarray(pool.kernel_size, dtype=np.int64).ravel(), (2,))
        per_channel = np.full(self.out_shape[0], -1, np.int64)
        per_channel[list(self.min_channels)] = (int(k[0] * k[1]) - 1) << act_shift
        return np.repeat(per_channel, int(np.prod(self.out_shape[1:])))

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
                       int(m["arrival"]), int(m["t_in_end"]), int(m["fire_start"]), int(m["fire_end"]),
                       tuple(int(c) for c in m.get("min_channels", ())))
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
    e < 0: Lava floors each step's sum, a_k = (W s_k) >> -e, so per-arrival-step sums are needed:
    the rows of the inputs that spike at each step, summed per step (matrix maps: the compiled kernel
    :func:`snncompile.ttfs.kernels.floored_step_sums`; conv chains: one pass per step); v(t_in_end) = beta + sum_k (K - k) (a_k << act_shift) and u lies
    within the sums of the positive / negative a_k.
    Max-pool (a sum pool, threshold 0, no bias): :func:`maxpool_closed`.
    """
    N = len(counts_in)
    K = layer.steps
    if layer.role == "maxpool":
        out = maxpool_closed(layer, counts_in, ar)
        if out is not None:
            return out, np.ones(N, bool)
        return run_layer_stepped(layer, counts_in, ar, layer.fire_end), np.ones(N, bool)
    e = layer.weight_exp
    m = 1 << (ar.state_bits - 1)
    bmax = int(np.abs(layer.bias).max(initial=0))
    lmap = layer.map
    if e >= 0:
        sh = ar.act_shift + e
        z = layer.bias[None, :] + (lmap(counts_in) << sh)
        worst = lmap.absrow * (1 << sh)
        if worst <= m - 1 and bmax + K * worst <= ar.vmax:
            valid = np.ones(N, bool)
        else:
            fired = (counts_in > 0).astype(np.float32)
            pos = lmap.signed(+1)(fired) << sh
            neg = lmap.signed(-1)(fired) << sh
            valid = ((pos <= m) & (neg > -m) & (bmax + K * np.maximum(pos, -neg) <= ar.vmax)).all(axis=1)
    else:
        # |u| <= sum_k |a_k| << act_shift at every step, v <= bias + K max |u|; first the all-inputs
        # bound (|a_k| sums to at most |W| / d + K), else the per-sample sums of the floored steps
        worst = ((int(lmap.absrow) >> (-e)) + K) << ar.act_shift
        safe = worst <= m - 1 and bmax + K * worst <= ar.vmax
        z, upk = _integrate_floored(layer, counts_in, ar, chunk_elems, need_bound=not safe)
        if safe:
            valid = np.ones(N, bool)
        else:
            upk = upk << ar.act_shift
            valid = (upk <= m - 1) & (bmax + K * upk <= ar.vmax)
    zeros = np.zeros(N, dtype=np.int64)
    if layer.role == "readout":
        return LayerOut(None, np.zeros((N, *layer.out_shape), np.int64), z, zeros, zeros.copy()), valid
    step, counts, sats = fire_in_chunks(layer.params, z, ar.vmax)
    return LayerOut(step, counts.reshape((N, *layer.out_shape)), z, zeros, sats), valid


def fire_in_chunks(params: TtfsParams, z: np.ndarray, vmax: int):
    """:func:`snncompile.neurons.ttfs.fire_closed` over row chunks on the thread pool (small temporaries:
    no fresh pages per call)."""
    N, n = z.shape
    rows = max(1, min(CHUNK_ELEMS // (8 * max(n, 1)), -(-N // _workers())))
    if rows >= N:
        return fire_closed(params, z, vmax)
    step, counts, sats = np.empty_like(z), np.empty_like(z), np.empty(N, np.int64)

    def one(i):
        step[i:i + rows], counts[i:i + rows], sats[i:i + rows] = fire_closed(params, z[i:i + rows], vmax)

    parallel_map(one, list(range(0, N, rows)))
    return step, counts, sats


def _integrate_floored(layer: FixedLayer, counts_in: np.ndarray, ar: Arith, chunk_elems: int,
                       need_bound: bool = True):
    """For e < 0 (no wraps assumed): v(t_in_end) = beta + sum_k (K - k) floor(y_k / d) << act_shift,
    y_k the sum over the inputs that arrive at step k; (N, neurons) int64.  Also (``need_bound``; else
    zeros), per sample, the largest sum_k |floor(y_k / d)| over the neurons (N,) int64: the bound on
    |u| / 2**act_shift."""
    N, K, lmap = len(counts_in), layer.steps, layer.map
    z = np.empty((N, layer.neurons), np.int64)
    bound = np.zeros(N, np.int64)
    if lmap.mat is not None:  # the compiled kernel, rows split over our threads
        w, acc_dtype = lmap.int_weights()
        flat = counts_in.reshape(N, -1)
        rows = max(64, -(-N // _workers()))

        def run(i):
            acc = np.empty((K, layer.neurons), acc_dtype)
            floored_step_sums(flat[i:i + rows], w, K, -layer.weight_exp, ar.act_shift, layer.bias, acc,
                              z[i:i + rows], bound[i:i + rows], need_bound)

        try:
            parallel_map(run, list(range(0, N, rows)))
        except ValueError as exc:
            raise InvalidModel(f"layer {layer.name!r}: {exc} (0..{K})") from None
        return z, bound
    d = 1 << (-layer.weight_exp)
    # the weighted sum of floored step sums is exact in float32 when below 2**24
    exact32 = lmap.np_dtype == np.float32 and K * (lmap.absrow / d + K) < 2 ** 24
    wdt = np.float32 if exact32 else np.float64
    weights = torch.from_numpy(np.arange(K, 0, -1).astype(wdt))  # slot k is integrated for K - k steps
    rows = max(1, min(chunk_elems // max(1, K * layer.neurons), N))
    for i in range(0, N, rows):  # torch's own threads run the convolutions
        c = counts_in[i:i + rows]
        n = len(c)
        with torch.no_grad():
            lv = lmap.levels(c, K, as_tensor=True, level_major=True)  # (K, n, out)
            a = torch.floor(lv / d).reshape(K, -1).to(torch.float32 if exact32 else torch.float64)
            acc = torch.einsum("k,km->m", weights, a).numpy()
            if need_bound:
                bound[i:i + n] = a.abs_().sum(0).numpy().reshape(n, -1).max(axis=1, initial=0)
        z[i:i + n] = layer.bias[None, :] + (acc.reshape(n, -1).astype(np.int64) << ar.act_shift)
    return z, bound


def maxpool_closed(layer: FixedLayer, counts_in: np.ndarray, ar: Arith) -> LayerOut | None:
    """A max-pool population (one SumPool2d, weight exponent 0, threshold 0, slope 0, no bias) in
    closed form, or None when it is not of that form or its bounds cannot rule out a wrap or a
    saturation.

    u only grows (inputs are spike counts >= 0): the neuron fires at the step its window's first
    input arrives, so its count is the window's largest count c_max, and afterwards v integrates u
    from 0: v(t_in_end) = (sum of the window's counts - number of inputs with count c_max) << act_shift.
    """
    nodes = [n for _, n in layer.ops]
    if (len(nodes) != 1 or not isinstance(nodes[0], nir.SumPool2d) or layer.weight_exp != 0 or layer.slope != 0
            or layer.threshold != 0 or np.any(layer.bias != 0) or len(layer.in_shape) != 3
            or layer.fire_start != layer.arrival or layer.fire_end != layer.t_in_end
            or layer.t_in_end != layer.arrival + layer.steps - 1):
        return None
    node = nodes[0]
    k = tuple(int(v) for v in np.broadcast_to(np.asarray(node.kernel_size), (2,)))
    s = tuple(int(v) for v in np.broadcast_to(np.asarray(node.stride), (2,)))
    if np.any(np.asarray(node.padding) != 0):
        return None
    m = 1 << (ar.state_bits - 1)
    worst = (k[0] * k[1] * layer.steps) << ar.act_shift  # u <= pool size << act_shift; v <= K u
    if (k[0] * k[1]) << ar.act_shift > m - 1 or worst > ar.vmax:
        return None
    N, K = len(counts_in), layer.steps
    C, H, W = layer.in_shape
    x = np.asarray(counts_in).reshape(N, C, H, W).astype(np.int16 if K < 2 ** 15 else np.int64)
    oh, ow = (H - k[0]) // s[0] + 1, (W - k[1]) // s[1] + 1
    if C * oh * ow != layer.neurons:
        return None
    taps = [x[:, :, i:i + s[0] * (oh - 1) + 1:s[0], j:j + s[1] * (ow - 1) + 1:s[1]]
            for i in range(k[0]) for j in range(k[1])]  # each (N, C, oh, ow)
    cmax = taps[0].copy()
    total = taps[0].astype(np.int64)
    for t in taps[1:]:
        np.maximum(cmax, t, out=cmax)
        total += t
    nmax = sum((t == cmax) for t in taps).astype(np.int64).reshape(N, -1)
    total = total.reshape(N, -1)
    cmax = cmax.reshape(N, -1).astype(np.int64)
    fired = cmax > 0
    z = np.where(fired, total - nmax, 0)
    if layer.min_channels:
        # a min-pool neuron fires at its latest input (count c_min), when the window is complete; from
        # then v integrates the full window: v(t_in_end) = (c_min - 1) k*k; never complete: the sum of counts
        cmin = taps[0].copy()
        for t in taps[1:]:
            np.minimum(cmin, t, out=cmin)
        cmin = cmin.reshape(N, -1).astype(np.int64)
        is_min = layer.u_threshold(0) >= 0
        zmin = np.where(cmin > 0, (cmin - 1) * (k[0] * k[1]), total)
        z = np.where(is_min, zmin, z)
        cmax = np.where(is_min, cmin, cmax)
        fired = cmax > 0
    z = z << ar.act_shift
    step = np.where(fired, layer.arrival + K - cmax, -1)
    counts = output_counts(layer.params, step).reshape((N, *layer.out_shape))
    zeros = np.zeros(N, dtype=np.int64)
    return LayerOut(step, counts, z, zeros, zeros.copy())


def _mask_node(node):
    """A copy of a linear node with weights 1 where w != 0, else 0 (pools and flattens unchanged)."""
    import copy

    if not hasattr(node, "weight"):
        return node
    out = copy.copy(node)
    out.weight = (np.asarray(node.weight) != 0).astype(np.float64)
    return out


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
    ut = layer.u_threshold(ar.act_shift)
    for t in range(1, t_total + 1):
        k = t - layer.arrival
        a = shift_exp(levels[:, k], layer.weight_exp) if 0 <= k < K else zero
        u, v, fired, s = integer_step(u, v, fired, a, t, p, ar.state_bits, ar.act_shift, wraps, sats, ut)
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
    """Run every population on input counts (N, *input_shape); ``mode``: auto | closed | stepped.

    BLAS runs single-threaded inside (fxsim splits the batch over its own threads: a multi-threaded
    OpenBLAS on a busy machine makes the small products up to hundreds of times slower)."""
    if BLAS_THREADS is None:
        return _run_network(layers, ar, counts_in, t_total, mode, record)
    with _blas_controller().limit(limits=BLAS_THREADS, user_api="blas"):
        return _run_network(layers, ar, counts_in, t_total, mode, record)


_CONTROLLER = None


def _blas_controller():
    """threadpoolctl's controller, made once (making one scans every loaded library: tens of ms)."""
    global _CONTROLLER
    if _CONTROLLER is None:
        from threadpoolctl import ThreadpoolController

        _CONTROLLER = ThreadpoolController()
    return _CONTROLLER


def _run_network(layers, ar, counts_in, t_total, mode, record):
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
