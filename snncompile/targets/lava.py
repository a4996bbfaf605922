"""The Lava target: a quantized TTFS graph as stock Lava processes plus our TTFS neuron.

Network.  One ``io.source.RingBuffer`` holds the input spikes of all samples back to back;
each population is one or more stock connection processes carrying its integer matrix
(:func:`snncompile.nirops.composite_matrix`): ``Dense`` when the population's linear nodes are
Affine/Flatten only, ``Sparse`` when they contain a convolution or a pool (its bit-accurate
model, ``PySparseModelBitAcc``, applies the same clip / truncate / weight_exp rules as
``PyDenseModelBitAcc``), all with ``num_weight_bits`` = the graph's weight_bits and
``sign_mode=SignMode.MIXED``; then a :class:`~snncompile.targets.lava_ttfs.TtfsNeuron` that
runs the integer program of :mod:`snncompile.ttfs.fixed`.  Run with
``Loihi2SimCfg(select_tag="fixed_pt")`` (TtfsNeuron mapped to ``PyTtfsModelFixed`` explicitly).

Weights.  Lava zeroes the low ``k = 8 - num_weight_bits + 1`` bits of MIXED weights and clips
them to [-256, 255]; fxsim uses the graph's integers as they are.  :func:`lava_parts` writes
each matrix M with exponent e exactly in Lava's terms: as one part M / 2**s with exponent
e + s when that is on Lava's grid (the usual case: s = 0; max-pool matrices of ones become
2s with e - 1), because shift_exp(2**s * acc, e - s) == shift_exp(acc, e) for every integer
acc; otherwise as a sum of parts (signed base-2**(9-k) digits) whose higher parts are exact
integers, so that only the lowest one rounds and floor(int + x) = int + floor(x).

Timing (Lava steps vs fxsim steps).  Lava numbers its steps 1, 2, ... and sample k (0-based)
occupies global steps k*P + 1 .. k*P + P, P = the sample period (= T, the readout's t_in_end,
unless a margin is asked for).  Local step t = global step - k*P is fxsim's step t:

* a pixel with count c > 0 is sent by the RingBuffer at local step K - c + 1 (column
  k*P + K - c, :func:`~snncompile.targets.lava_ttfs.input_raster`);
* a Dense/Sparse process, at step t, first sends what it computed at step t - 1, then
  receives this step's spikes: a spike emitted at step t reaches the next neuron at t + 1.
  So the count-K pixel (step 1) arrives at step 2 = the first population's ``arrival`` A, a
  count-c pixel at A + K - c, as fxsim assumes; a hidden neuron firing at step
  t_in_end + f (count K + 1 - f) reaches the next population at t_in_end + 1 + f = A' + K - c;
  a max-pool fires on the step its first input arrives and its successor's A is one step
  later, as in the quantizer's schedule;
* each TtfsNeuron counts the steps of its sample itself (``t`` = local step, restarted every
  P steps) and, at local step 1, resets u = 0, v = bias, fired = False.

Why nothing leaks from one sample into the next: the last message of sample k that could
carry anything is sent by a connection at the first step of sample k + 1 and was computed
from spikes of local step P.  No population spikes at local step P = T: hidden layer n fires
at most at t_in_end(n) + K = t_in_end(n+1) - 1 <= T - 1, a max-pool at most at its own
t_in_end < T, the input at most at step K < T, and the readout never fires.  So that
message is zero, and the reset at local step 1 sees no input (fxsim's step 1 has none
either: every arrival is >= 2).  Extra margin steps (``period_margin``) keep all of this true:
they only append silent steps, which are dropped from the traces.

Recording.  Each TtfsNeuron model writes its own v and spikes after every step into numpy
files (``recorder="file"``, the default: no extra OS processes, one write per step).  Lava's
Monitor (``recorder="monitor"``) adds one OS process per probed Var and hands its data back
one element per message; both give the same arrays (tests/test_lava.py checks this).
"""

from __future__ import annotations

import tempfile
import time

import numpy as np
from tqdm.auto import tqdm

from ..errors import InvalidModel, TargetUnavailable
from .base import LayerRun, Run, decide

SPARSE_NODES = ("Conv2d", "SumPool2d", "AvgPool2d")
MAX_STEPS_PER_CHUNK = 20000
MAX_INPUT_CELLS_PER_CHUNK = 20_000_000


def _valuation(x: np.ndarray) -> int:
    """The largest v such that every nonzero integer of x is a multiple of 2**v."""
    x = np.abs(x[x != 0]).astype(np.int64)
    v = 0
    while x.size and np.all((x >> v) & 1 == 0) and v < 62:
        v += 1
    return v


def lava_parts(mat, weight_exp: int, weight_bits: int, name: str = "?") -> list:
    """Write the integer matrix ``mat`` (scipy sparse or ndarray) with exponent ``weight_exp`` as Lava
    connection weights: a list of (weights CSR int32, exponent) such that the sum over the parts of
    shift_exp(W_i @ s, e_i) equals shift_exp(mat @ s, weight_exp) for every spike vector s, and every
    W_i is unchanged by Lava's clip_weights + truncate_weights (MIXED, ``weight_bits``)."""
    import scipy.sparse as sp

    m = sp.csr_matrix(mat, dtype=np.float64)
    m.sum_duplicates()
    data = m.data
    if data.size and (not np.all(np.isfinite(data)) or np.any(data != np.round(data))):
        raise InvalidModel(f"layer {name!r}: the quantized matrix has non-integer entries")
    m = sp.csr_matrix((data.astype(np.int64), m.indices, m.indptr), shape=m.shape)
    m.eliminate_zeros()
    k = 9 - int(weight_bits)  # MIXED: 8 - num_weight_bits + 1 low bits are zeroed
    if not 1 <= k <= 7:
        raise InvalidModel(f"layer {name!r}: Lava's MIXED weights need 2..8 weight bits, got {weight_bits}")
    lo, hi = -256, 256 - (1 << k)
    if m.nnz == 0:
        return [(m.astype(np.int32), int(weight_exp))]
    d = m.data
    val = _valuation(d)
    # one part: W = M / 2**s on the grid (multiple of 2**k, within [lo, hi])
    s_min = -64
    while s_min < 64 and not (_shift(d.max(), s_min) <= hi and _shift(d.min(), s_min) >= lo):
        s_min += 1
    s_max = val - k
    if s_min <= s_max:
        s = min(max(0, s_min), s_max)  # the valid s closest to 0
        w = m.copy()
        w.data = _exact_shift(d, s)
        return [(w.astype(np.int32), int(weight_exp + s))]
    # several parts: signed digits of c = 9 - k bits, r in [-2**(8-k), 2**(8-k) - 1], so r * 2**k
    # spans exactly Lava's MIXED range [-256, 256 - 2**k]
    c = 9 - k
    half = 1 << (c - 1)
    parts = []
    rest = d >> val
    b = val
    while np.any(rest != 0):
        digit = ((rest + half) & ((1 << c) - 1)) - half   # rest - digit is a multiple of 2**c
        if parts and weight_exp + b < 0:
            raise InvalidModel(f"layer {name!r}: its integer matrix (entries up to {int(np.abs(d).max())}) "
                               f"cannot be written exactly as Lava {weight_bits}-bit MIXED weights with "
                               f"weight_exp={weight_exp}")
        w = m.copy()
        w.data = digit << k
        w.eliminate_zeros()
        if w.nnz:
            parts.append((w.astype(np.int32), int(weight_exp + b - k)))
        rest = (rest - digit) >> c                         # |rest| shrinks: terminates (c >= 2)
        b += c
    return parts


def _shift(x, s: int) -> float:
    return float(x) / (2.0 ** s)


def _exact_shift(d: np.ndarray, s: int) -> np.ndarray:
    return d >> s if s >= 0 else d << (-s)


def network_plan(graph, period_margin: int = 0) -> dict:
    """Everything the Lava network needs, from a quantized TTFS graph (no Lava import).

    Returns ``{"meta": {...}, "pops": [...]}`` where each pop is a dict for
    :func:`snncompile.targets.lava_ttfs.run_populations` plus ``role``, ``out_shape``,
    ``weight_exp`` (the graph's) and ``v_lsb``.
    """
    from ..nirio import get_meta
    from ..nirops import composite_matrix
    from ..ttfs.fixed import fixed_layers
    from ..ttfs.graph import is_ttfs_graph, parse_ttfs

    if not is_ttfs_graph(graph):
        raise InvalidModel("the Lava target runs quantized TTFS graphs (model.q.nir)")
    net = parse_ttfs(graph)
    layers = fixed_layers(net)  # raises InvalidModel on a float graph
    gm = get_meta(graph)
    if gm.get("arithmetic") not in (None, "loihi"):
        raise InvalidModel(f"the Lava target needs a graph quantized for Loihi arithmetic, "
                           f"got {gm.get('arithmetic')!r} (profile {gm.get('profile')!r})")
    K, T = int(gm["steps"]), int(gm["t_total"])
    if period_margin < 0:
        raise InvalidModel(f"period_margin must be >= 0, got {period_margin}")
    bits = int(gm["weight_bits"])
    pops = []
    for layer, tl in zip(layers, net.layers):
        mat = composite_matrix(layer.ops, layer.in_shape)
        kind = "sparse" if any(type(node).__name__ in SPARSE_NODES for _, node in layer.ops) else "dense"
        parts = [(kind, w if kind == "sparse" else w.toarray(), e)
                 for w, e in lava_parts(mat, layer.weight_exp, bits, layer.name)]
        pops.append({"name": layer.name, "role": layer.role, "neurons": layer.neurons,
                     "out_shape": tuple(layer.out_shape), "bias": layer.bias.astype(np.int64),
                     "slope": int(layer.slope), "threshold": int(layer.threshold),
                     "t_in_end": int(layer.t_in_end), "fire_start": int(layer.fire_start),
                     "fire_end": int(layer.fire_end), "weight_exp": int(layer.weight_exp), "parts": parts,
                     "v_lsb": float(tl.meta.get("v_lsb") or 1.0)})
    for p in pops:
        if p["role"] == "readout" and p["fire_start"] <= p["fire_end"]:
            raise InvalidModel(f"readout {p['name']!r} has a fire window {p['fire_start']}..{p['fire_end']}; "
                               "the readout never fires")
    latest = max([p["fire_end"] for p in pops if p["role"] != "readout"] + [K])
    if latest >= T:  # the no-leak argument of the module docstring needs silence at step P
        raise InvalidModel(f"a population may fire at step {latest} >= T = {T}; the schedule is inconsistent")
    meta = {"steps": K, "t_total": T, "period": T + int(period_margin), "state_bits": int(gm["state_bits"]),
            "act_shift": int(gm["act_shift"]), "weight_bits": bits, "input_shape": tuple(net.input_shape),
            "sign_mode": "mixed"}
    return {"meta": meta, "pops": pops}


def spike_steps(s: np.ndarray) -> np.ndarray:
    """(N, P, n) spikes -> (N, n) first spike step (1-based, -1 = none)."""
    any_ = s.any(axis=1)
    return np.where(any_, s.argmax(axis=1) + 1, -1).astype(np.int64)


def compare_with_fxsim(names: list, lava_v: dict, lava_t: dict, fx_v: dict, fx_t: dict, offset: int = 0):
    """Earliest difference (sample, step, population order, neuron) between Lava and fxsim, or None.

    ``*_v``: name -> (N, T, n) integer v; ``*_t``: name -> (N, n) spike steps (-1 none) for the
    spiking populations.  ``offset`` is added to the reported sample index.
    """
    best = None
    for li, name in enumerate(names):
        lv, fv = lava_v[name], fx_v[name]
        if lv.shape != fv.shape:
            raise InvalidModel(f"layer {name!r}: Lava traces {lv.shape} vs fxsim {fv.shape}")
        cands = []
        diff = lv != fv
        if diff.any():
            n_i, t_i, j_i = np.nonzero(diff)
            order = np.lexsort((j_i, t_i, n_i))[0]
            cands.append((int(n_i[order]), int(t_i[order]) + 1, 1, int(j_i[order]), "v",
                          int(lv[n_i[order], t_i[order], j_i[order]]), int(fv[n_i[order], t_i[order], j_i[order]])))
        if name in lava_t:
            lt, ft = lava_t[name], fx_t[name]
            bad = lt != ft
            if bad.any():
                big = np.iinfo(np.int64).max
                step = np.minimum(np.where(lt < 0, big, lt), np.where(ft < 0, big, ft))
                step = np.where(bad, step, big)
                n_i, j_i = np.nonzero(bad)
                key = np.lexsort((j_i, step[n_i, j_i], n_i))[0]
                ni, ji = int(n_i[key]), int(j_i[key])
                cands.append((ni, int(step[ni, ji]), 0, ji, "spike", int(lt[ni, ji]), int(ft[ni, ji])))
        for c in cands:
            key = (c[0], c[1], li, c[2], c[3])
            if best is None or key < best[0]:
                best = (key, name, c)
    if best is None:
        return None
    _, name, c = best
    return {"sample": c[0] + offset, "layer": name, "neuron": c[3], "step": c[1], "what": c[4],
            "lava": c[5], "fxsim": c[6]}


class LavaTarget:
    name = "lava"

    def run(self, graph, inputs: np.ndarray, profile=None, progress: bool = False, fxsim_run=None,
            batch: int | None = None, period_margin: int = 0, recorder: str = "file",
            keep_traces: bool = True, **options) -> Run:
        """Run ``inputs`` (N, *input_shape) in [0, 1] on Lava; compare bit for bit with fxsim.

        ``batch``: samples per Lava run (one network build each; default: about 20,000 steps);
        ``period_margin``: silent steps appended to every sample; ``recorder``: "file" | "monitor";
        ``keep_traces``: return every population's v at every step (else only the readout's at T).
        Options of other targets (``batch_size``, ``mode``, ``record``...) are ignored.
        """
        if batch is None and options.get("batch_size"):
            batch = int(options["batch_size"])
        from ..quantize.rounding import encode_counts
        from .lava_compat import require_lava

        require_lava()
        from . import lava_ttfs

        plan = network_plan(graph, period_margin)
        meta, pops = plan["meta"], plan["pops"]
        K, T, P = meta["steps"], meta["t_total"], meta["period"]
        x = np.asarray(inputs, dtype=np.float64).reshape((-1, *meta["input_shape"]))
        if x.size and (x.min() < 0 or x.max() > 1):
            raise InvalidModel("lava inputs must lie in [0, 1] (latency code)")
        N = len(x)
        if N == 0:
            raise InvalidModel("lava: no input samples")
        counts = encode_counts(x, K).reshape(N, -1)
        n_in = counts.shape[1]
        if batch is None:
            batch = max(1, min(MAX_STEPS_PER_CHUNK // P, MAX_INPUT_CELLS_PER_CHUNK // max(1, n_in * P)))
        batch = max(1, int(batch))
        names = [p["name"] for p in pops]
        spiking = [p["name"] for p in pops if p["role"] != "readout"]
        fx_full = _usable_fxsim(fxsim_run, N, T, names)
        traces = {nm: [] for nm in names}
        times = {nm: [] for nm in spiking}
        mismatch = None
        secs = {"build": 0.0, "run": 0.0, "read": 0.0}
        compare_seconds = 0.0
        t_start = time.perf_counter()
        starts = range(0, N, batch)
        bar = tqdm(starts, desc="lava", disable=not progress, leave=False, unit="chunk")
        with tempfile.TemporaryDirectory(prefix="snncompile-lava-") as work:
            for i in bar:
                c = counts[i:i + batch]
                out = lava_ttfs.run_populations(pops, c, K, P, meta["state_bits"], meta["act_shift"],
                                                meta["weight_bits"], work, recorder=recorder)
                for key in secs:
                    secs[key] += out["seconds"][key]
                lv = {nm: v[:, :T] for nm, v in zip(names, out["v"])}
                lt = {}
                for nm, s in zip(names, out["s"]):
                    if nm in times:
                        if (s.sum(axis=1) > 1).any():
                            raise AssertionError(f"lava: a neuron of {nm!r} fired twice (fire-once violated)")
                        lt[nm] = spike_steps(s[:, :T])
                        times[nm].append(lt[nm])
                        if s[:, T:].any():
                            raise AssertionError(f"lava: {nm!r} fired in the margin of a sample")
                if mismatch is None:
                    t_cmp = time.perf_counter()
                    fv, ft = _fxsim_chunk(graph, x[i:i + batch], fx_full, i, len(c), names, spiking)
                    mismatch = compare_with_fxsim(names, lv, lt, fv, ft, offset=i)
                    compare_seconds += time.perf_counter() - t_cmp
                for nm in names:
                    traces[nm].append(lv[nm] if keep_traces else lv[nm][:, T - 1:T])
        seconds = time.perf_counter() - t_start - compare_seconds  # Lava's own time
        cat = np.concatenate
        ro = pops[-1]
        raw = cat(traces[ro["name"]])[:, -1, :]
        layers = []
        for p in pops:
            if p["role"] == "readout":
                continue
            st = cat(times[p["name"]])
            layers.append(LayerRun(p["name"], p["role"], p["neurons"], (st >= 0).sum(1), st))
        info = {"steps": K, "t_total": T, "sample_period": P, "time_unit": "step", "seconds": seconds,
                "seconds_per_sample": seconds / N, "lava_seconds": secs, "chunks": len(starts),
                "batch": batch, "recorder": recorder, "readout": ro["name"], "compare_seconds": compare_seconds,
                "bit_exact_with_fxsim": mismatch is None, "first_mismatch": mismatch,
                "weight_parts": {p["name"]: len(p["parts"]) for p in pops}}
        return Run(self.name, raw * ro["v_lsb"], decide(raw), layers, (counts > 0).sum(1), info=info,
                   raw_logits=raw, traces={nm: cat(v) for nm, v in traces.items()} if keep_traces else None)


def _usable_fxsim(fxsim_run, N: int, T: int, names: list):
    """fxsim's traces and spike steps for the first N samples, if ``fxsim_run`` recorded them."""
    if fxsim_run is None or not getattr(fxsim_run, "traces", None):
        return None
    tr = fxsim_run.traces
    if any(nm not in tr or tr[nm].shape[0] < N or tr[nm].shape[1] != T for nm in names):
        return None
    steps = {lr.name: lr.times for lr in fxsim_run.layers}
    if any(lr.times is None or len(lr.times) < N for lr in fxsim_run.layers):
        return None
    return {nm: tr[nm][:N] for nm in names}, {nm: st[:N] for nm, st in steps.items()}


def _fxsim_chunk(graph, x, fx_full, start: int, n: int, names: list, spiking: list):
    if fx_full is not None:
        fv, ft = fx_full
        return ({nm: fv[nm][start:start + n] for nm in names},
                {nm: ft[nm][start:start + n] for nm in spiking})
    from .fxsim import FxsimTarget

    run = FxsimTarget().run(graph, x, mode="stepped", record=True)
    return run.traces, {lr.name: lr.times for lr in run.layers}


__all__ = ["LavaTarget", "TargetUnavailable", "lava_parts", "network_plan", "compare_with_fxsim"]
