"""The Lava target: quantized graphs run on Intel's Lava simulator, compared bit for bit with fxsim.

:meth:`LavaTarget.run` dispatches on the graph's format: ``"snncompile-ttfs"`` (a TTFS graph:
stock connection processes plus our TTFS neuron, this first part) or ``"snncompile-lif-q"`` (a
quantized LIF graph: stock processes only, the second part, "Quantized LIF graphs").

TTFS graphs
===========

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

Quantized LIF graphs
====================

The specification is :mod:`snncompile.lif.fixed` (``read_qlif`` / ``simulate_fixed``): Lava's
PyLifModelBitAcc and PyDenseModelBitAcc rules, fresh state per sample, one step of delay per
connection plus the graph's extra delays, an always-on "bias" input, raster column t - 1
emitted at step t.

Network (stock Lava processes only, :func:`run_lif_chunk`).  One ``lif.process.LIFReset`` per
population: its ``PyLifResetModelBitAcc`` is the integer step of LIF's ``PyLifModelBitAcc``
(same ``subthr_dynamics``, threshold and reset) preceded by a periodic zeroing of u and v (the
per-sample reset below).  du, dv and vth = vth_mant come from the graph (non-spiking readouts
get the largest mantissa, 2**17 - 1, as the quantizer assumes); the integer bias beta is split
with ``bias_split(beta, 13, 3)`` into bias_mant / bias_exp.  One connection process per graph
connection, carrying the graph's integer weights *as they are*: Lava's own clip_weights +
truncate_weights on the first step do what fxsim's ``clip_truncate`` does (so no
:func:`lava_parts` splitting here: the specification keeps Lava's truncation), with
``weight_exp``, ``num_weight_bits`` = the graph's weight_bits and the graph's sign mode
(``SignMode.MIXED``): ``Dense`` (``Sparse`` for a large, mostly-zero matrix; both bit-accurate
models apply the same rules) for delay 1; ``DelayDense(delays=d - 1)`` for delay d > 1.
DelayDense's bit-accurate model clips and truncates like Dense, computes W s per delay value,
shifts that sum by weight_exp and adds it to a buffer column that reaches the neuron d - 1
steps after Dense's would: with one delay per connection this is exactly Dense's rule, d steps
after the spike (``delays`` <= 63, so d <= 64).  ``io.source.RingBuffer`` sources: the input
raster, the always-on bias input and the quench input (below).

Timing.  Sample k (0-based) occupies global Lava steps kP + 1 .. kP + P, P = T + G (T =
T_in + depth, fxsim's t_total; G = the gap).  Local step t = global step - kP is fxsim's step t
for t <= T; steps T + 1 .. P are the silent gap, recorded but not compared.

* The input RingBuffer sends raster column t - 1 at local step t <= T_in (nothing after): a
  connection of delay d delivers it at t + d, as fxsim reads column t - d - 1 at step t.
* The bias RingBuffer spikes at local steps 1 .. T - d_b (d_b = the smallest bias delay), so a
  bias connection of delay d delivers at 1 + d .. T, as fxsim's ``t - d >= 1``.
* A Dense/Sparse process first sends what it computed on the previous step, then reads this
  step's spikes: a spike of step t reaches the neuron at t + 1; DelayDense at t + d.
* LIFReset(reset_interval=P, reset_offset=1) zeroes u and v when ``time_step % P == 1``, i.e.
  at local step 1 of every sample, *before* the step's input: u = 0 + (a << 6), v = 0 + u +
  bias.  fxsim's step 1 starts from u = v = 0 and has a = 0 (every arrival is at step >= 2), so
  local step 1 is fxsim's step 1 exactly when nothing arrives on it.

Exactness of back-to-back samples.  What crosses a sample boundary is u and v (zeroed by the
reset) and the messages in flight inside the connection processes: at step kP + 1 a Dense sends
what it computed from the spikes of step kP; a DelayDense holds what it computed from the last
d steps.  So sample k + 1 starts exactly as fxsim's fresh state iff no source of a connection of
delay d spiked in the last d steps of sample k's period.  The RingBuffers are silent there by
construction (the input stops at T_in, the bias at T - d_b, the quench at P - 1, and G >= every
delay).  The populations are not: stock processes cannot force a neuron to be silent whatever
its state (a positive bias, a slowly decaying current or recurrent excitation keep it firing,
and any inhibition added to u wraps modulo 2**24 for some u).  So silence is *checked*: every
population's spikes are recorded at every step, and a sample whose preceding boundary was not
silent (:func:`lif_dirty_starts`) is run again in a network of its own (a fresh build is a
fresh state).  The result is exact by construction; ``info["rerun_samples"]`` counts the
samples that needed a build of their own.  ``reset="rebuild"`` skips all of this: plain stock
``LIF`` neurons (``PyLifModelBitAcc``), one network build per sample (about 0.5 s each), no reset
involved; tests/test_lava_lif.py checks that both modes give the same arrays.

Quench.  To make silent boundaries the rule, every population with outgoing connections gets
an inhibitory Dense (weights -256, an exponent per population such that the accumulated
inhibition stays below 2**22 whatever du) from a quench RingBuffer that spikes at local steps
T + 1 .. P - 1, arriving at T + 2 .. P; then G = max delay + 1.  ``quench="auto"`` (default)
leaves it out, with G = max delay, when the network falls silent by itself once its inputs
stop: no recurrence, and every population with outgoing connections has du = 4095 (u keeps no
memory) and no bias (then v only decays).  ``gap`` adds silent steps to G.

Recording.  ``recorder="file"`` (default): the LIFReset model is the stock
``PyLifResetModelBitAcc`` subclassed only to write v and the spikes into numpy files after
each step (:func:`lif_recording_model`; the integer step is the stock one, untouched).
``recorder="monitor"``: the stock model with Lava Monitors on v and s_out (slower; one OS
process per probe); both give the same arrays (tests/test_lava_lif.py).

The functions from :func:`lif_schedule` to :func:`run_lif_network` use only numpy and Lava:
the standalone export (:mod:`snncompile.targets.lava_export`) embeds their source.
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


LIF_FORMAT = "snncompile-lif-q"
TTFS_FORMAT = "snncompile-ttfs"
# Lava's PyLifModelBitAcc / PyDenseModelBitAcc constants, which a graph must have been quantized with
LAVA_LIF_ARITH = {"state_bits": 24, "act_shift": 6, "decay_bits": 12, "vth_shift": 6, "full_weight_bits": 8}
SIGN_MODES = ("mixed", "exc", "inh")
MAX_DELAY = 64            # DelayDense: delays 0..63 (Loihi 2), i.e. graph delays 1..64
SPARSE_MIN_CELLS = 4096   # a connection matrix this large and
SPARSE_MAX_DENSITY = 0.2  # at most this dense runs as Sparse (delay 1 only)


def lif_plan(graph, quench="auto") -> dict:
    """Everything the stock-Lava network of a quantized LIF graph needs (no Lava import).

    Returns ``{"meta": {...}, "pops": [...], "conns": [...]}``: per population ``name``,
    ``neurons``, ``spiking``, ``du``, ``dv``, ``vth`` (mantissa), ``bias_mant``, ``bias_exp``
    (int arrays), ``v_lsb``, ``readout``, ``out_delay`` (largest delay of its outgoing
    connections, 0 if none); per connection ``name``, ``src`` ("input", "bias" or a population),
    ``dst``, ``delay``, ``weight_exp``, ``kind`` ("dense" | "sparse") and ``weights`` (out x in
    int32, as in the graph: Lava clips and truncates them itself).  ``quench``: "auto" | True |
    False (module docstring).  Raises InvalidModel naming the population or connection that
    stock Lava cannot run.
    """
    from ..arith import bias_split
    from ..lif.fixed import read_qlif
    from ..nirio import get_meta

    gm = get_meta(graph)
    if gm.get("format") != LIF_FORMAT:
        raise InvalidModel("the Lava target runs quantized LIF graphs (format 'snncompile-lif-q', model.q.nir)")
    qn = read_qlif(graph)
    if gm.get("arithmetic") not in (None, "loihi"):
        raise InvalidModel(f"the Lava target needs a graph quantized for Loihi arithmetic, got "
                           f"{gm.get('arithmetic')!r} (profile {gm.get('profile')!r})")
    for key, want in LAVA_LIF_ARITH.items():
        if int(gm[key]) != want:
            raise InvalidModel(f"the graph has {key} = {gm[key]}; Lava's bit-accurate LIF / Dense use {want}")
    bits, sign = int(gm["weight_bits"]), str(gm["sign_mode"])
    if not 1 <= bits <= 8 or sign not in SIGN_MODES:
        raise InvalidModel(f"Lava weights: weight_bits {bits} (1..8), sign mode {sign!r} ({', '.join(SIGN_MODES)})")
    pops, names = [], list(qn.pops)
    for name, p in qn.pops.items():
        m = get_meta(graph.nodes[name])
        vth = int(m["vth_mant"])
        if not 0 <= vth < 2 ** 17:
            raise InvalidModel(f"population {name!r}: threshold mantissa {vth} outside Lava's 17 bits")
        for key, val in (("du", p.du), ("dv", p.dv)):
            if not 0 <= val < 4096:
                raise InvalidModel(f"population {name!r}: {key} = {val} outside Lava's 12 bits")
        try:
            mant, exp = bias_split(p.bias, 13, 3)
        except ValueError as exc:
            raise InvalidModel(f"population {name!r}: its integer bias is not bias_mant << bias_exp with Lava's "
                               f"13-bit mantissa and 3-bit exponent ({exc})") from None
        pops.append({"name": name, "neurons": p.neurons, "spiking": p.spiking, "du": p.du, "dv": p.dv, "vth": vth,
                     "bias_mant": mant.astype(np.int64), "bias_exp": exp.astype(np.int64), "v_lsb": p.v_lsb,
                     "readout": name == qn.readout, "out_delay": 0})
    by_name = {p["name"]: p for p in pops}
    n_in = int(np.prod(qn.input_shape))
    conns = []
    for c in qn.conns:
        w = np.asarray(graph.nodes[c.name].weight, dtype=np.float64)
        src = c.src if c.src in by_name or c.src == "bias" else "input"
        n_src = by_name[src]["neurons"] if src in by_name else (1 if src == "bias" else n_in)
        if w.shape != (by_name[c.dst]["neurons"], n_src):
            raise InvalidModel(f"connection {c.name!r}: weights {w.shape}, expected "
                               f"({by_name[c.dst]['neurons']}, {n_src})")
        if not np.all(np.isfinite(w)) or np.any(w != np.round(w)):
            raise InvalidModel(f"connection {c.name!r}: the quantized weights are not integers")
        if not 1 <= c.delay <= MAX_DELAY:
            raise InvalidModel(f"connection {c.name!r}: delay {c.delay} steps; Lava's Dense delays by 1 and "
                               f"DelayDense by at most {MAX_DELAY} (delays 0..63)")
        # Lava clips to 8 bits itself; clipping to int32 first changes nothing it computes
        w = np.clip(w, -2 ** 31, 2 ** 31 - 1).astype(np.int32)
        sparse = c.delay == 1 and w.size >= SPARSE_MIN_CELLS and np.count_nonzero(w) <= SPARSE_MAX_DENSITY * w.size
        conns.append({"name": c.name, "src": src, "dst": c.dst, "delay": int(c.delay), "weight_exp": int(c.exp),
                      "kind": "sparse" if sparse else "dense", "weights": w})
        if src in by_name:
            by_name[src]["out_delay"] = max(by_name[src]["out_delay"], int(c.delay))
    natural = _falls_silent(pops, conns)
    if quench not in ("auto", True, False):
        raise InvalidModel(f"quench must be 'auto', True or False, got {quench!r}")
    meta = {"format": LIF_FORMAT, "input_shape": [int(s) for s in qn.input_shape], "n_in": n_in,
            "depth": int(gm["depth"]), "weight_bits": bits, "sign_mode": sign, "readout": qn.readout,
            "populations": names, "quench": (not natural) if quench == "auto" else bool(quench),
            "falls_silent": natural}
    return {"meta": meta, "pops": pops, "conns": conns}


def _falls_silent(pops: list, conns: list) -> bool:
    """No recurrence, and every population with outgoing connections has du = 4095 and no bias."""
    for p in pops:
        if p["out_delay"] and (p["du"] != 4095 or np.any(p["bias_mant"] != 0)):
            return False
    succ = {p["name"]: [c["dst"] for c in conns if c["src"] == p["name"]] for p in pops}
    state = {}

    def cyclic(n):
        state[n] = 1
        for m in succ[n]:
            if state.get(m) == 1 or (m not in state and cyclic(m)):
                return True
        state[n] = 2
        return False

    return not any(cyclic(n) for n in succ if n not in state)


def compare_lif(names: list, lava_v: dict, lava_s: dict, fx_v: dict, fx_s: dict, offset: int = 0):
    """Earliest difference between Lava and fxsim (sample, step, population order, spike before
    v, neuron), or None.  ``*_v``: name -> (N, T, n) integer v; ``*_s``: name -> (N, T, n) spikes."""
    best = None
    for li, name in enumerate(names):
        for wi, what, la, fx in ((0, "spike", lava_s[name], fx_s[name]), (1, "v", lava_v[name], fx_v[name])):
            if la.shape != fx.shape:
                raise InvalidModel(f"population {name!r}: Lava {what} {la.shape} vs fxsim {fx.shape}")
            diff = la != fx
            if not diff.any():
                continue
            n_i, t_i, j_i = np.nonzero(diff)
            k = np.lexsort((j_i, t_i, n_i))[0]
            key = (int(n_i[k]), int(t_i[k]), li, wi, int(j_i[k]))
            if best is None or key < best[0]:
                best = (key, name, what, int(la[n_i[k], t_i[k], j_i[k]]), int(fx[n_i[k], t_i[k], j_i[k]]))
    if best is None:
        return None
    (n, t, _, _, j), name, what, lv, fv = best
    return {"sample": n + offset, "layer": name, "neuron": j, "step": t + 1, "what": what, "lava": lv, "fxsim": fv}


class LavaTarget:
    name = "lava"

    def run(self, graph, inputs: np.ndarray, profile=None, progress: bool = False, fxsim_run=None,
            batch: int | None = None, period_margin: int = 0, recorder: str = "file",
            keep_traces: bool = True, **options) -> Run:
        """Run ``inputs`` (N, *input_shape) in [0, 1] on Lava; compare bit for bit with fxsim.

        A quantized LIF graph ("snncompile-lif-q") runs the spike raster ``spikes=`` (N, T_in,
        *input_shape) in {0, 1} instead (``inputs`` is then only checked for its length; fxsim is
        run here with ``record=True``, so ``fxsim_run`` is not used); its options are ``gap``,
        ``quench``, ``t_total`` and ``reset`` (:meth:`_run_lif`).  Otherwise:

        ``batch``: samples per Lava run (one network build each; default: about 20,000 steps);
        ``period_margin``: silent steps appended to every sample; ``recorder``: "file" | "monitor";
        ``keep_traces``: return every population's v at every step (else only the readout's at T).
        Options of other targets (``batch_size``, ``mode``, ``record``...) are ignored.
        """
        from ..nirio import get_meta

        if batch is None and options.get("batch_size"):
            batch = int(options["batch_size"])
        fmt = get_meta(graph).get("format")
        if fmt not in (TTFS_FORMAT, LIF_FORMAT):
            raise InvalidModel(f"the Lava target runs quantized graphs of format {TTFS_FORMAT!r} or {LIF_FORMAT!r} "
                               f"(model.q.nir), got format {fmt!r}")
        if fmt == LIF_FORMAT:
            return self._run_lif(graph, inputs, options.get("spikes"), progress=progress, batch=batch,
                                 recorder=recorder, keep_traces=keep_traces, gap=int(options.get("gap") or 0),
                                 quench=options.get("quench", "auto"), t_total=options.get("t_total"),
                                 reset=options.get("reset", "periodic"))
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


    def _run_lif(self, graph, inputs, spikes, progress: bool = False, batch: int | None = None,
                 recorder: str = "file", keep_traces: bool = True, gap: int = 0, quench="auto",
                 t_total: int | None = None, reset: str = "periodic") -> Run:
        """Run the raster ``spikes`` through the stock-Lava network of a quantized LIF graph (module
        docstring, "Quantized LIF graphs") and compare every population's spikes and integer v at
        every step with :func:`snncompile.lif.fixed.simulate_fixed` on the same samples.

        ``batch``: samples per Lava build (default: about 20,000 steps); ``gap``: extra silent steps
        per sample; ``quench``: "auto" | True | False; ``t_total``: steps per sample (default T_in +
        depth, as fxsim); ``reset``: "periodic" (LIFReset, samples back to back, the default) or
        "rebuild" (stock LIF, one network build per sample).  Logits are spike counts, or for a
        non-spiking readout the mean of v times its v_lsb, exactly as ``simulate_fixed``'s scores.
        """
        from ..lif.fixed import read_qlif, simulate_fixed
        from .lava_compat import require_lava

        if spikes is None:
            raise InvalidModel("quantized LIF graphs need spikes: pass spikes=(N, T_in, *input_shape), the input "
                               "spike raster the graph was run on (the Lava target runs LIF graphs from spikes)")
        if recorder not in ("file", "monitor"):
            raise InvalidModel(f"recorder must be 'file' or 'monitor', got {recorder!r}")
        if int(gap) < 0:
            raise InvalidModel(f"gap must be >= 0, got {gap}")
        if reset not in ("periodic", "rebuild"):
            raise InvalidModel(f"reset must be 'periodic' or 'rebuild', got {reset!r}")
        plan = lif_plan(graph, quench)
        meta = plan["meta"]
        raster = np.asarray(spikes)
        if raster.ndim < 2 or raster.shape[0] == 0 or raster.shape[1] == 0 \
                or int(np.prod(raster.shape[2:])) != meta["n_in"]:
            raise InvalidModel(f"lava: spikes must have shape (N, T_in, {', '.join(map(str, meta['input_shape']))}) "
                               f"with N, T_in >= 1, got {raster.shape}")
        if not np.isin(raster, (0, 1)).all():
            raise InvalidModel("lava: spikes must be 0 or 1 (Dense reads binary spikes)")
        if inputs is not None and len(inputs) != len(raster):
            raise InvalidModel(f"lava: {len(inputs)} inputs but {len(raster)} spike rasters")
        N, T_in = raster.shape[0], raster.shape[1]
        if t_total is not None and int(t_total) < 1:
            raise InvalidModel(f"t_total must be >= 1, got {t_total}")
        require_lava()
        sched = lif_schedule(plan, T_in, t_total, gap)
        T = sched["t_total"]
        flat = raster.reshape(N, T_in, -1)
        bar = tqdm(total=N, desc="lava", disable=not progress, leave=False, unit="sample")
        t_start = time.perf_counter()
        with tempfile.TemporaryDirectory(prefix="snncompile-lava-") as work:
            out = run_lif_network(plan, sched, flat, work, batch=batch or 0, recorder=recorder, progress=bar.update,
                                  reset=reset)
        seconds = time.perf_counter() - t_start
        bar.close()
        names = [p["name"] for p in plan["pops"]]
        t_cmp = time.perf_counter()
        qn = read_qlif(graph)
        mismatch = None
        for i in range(0, N, 256):
            fx = simulate_fixed(qn, raster[i:i + 256], t_total=T, record=True)
            mismatch = compare_lif(names, {k: v[i:i + 256] for k, v in out["v"].items()},
                                   {k: v[i:i + 256] for k, v in out["s"].items()}, fx.traces, fx.spikes, offset=i)
            if mismatch is not None:
                break
        compare_seconds = time.perf_counter() - t_cmp
        layers = []
        for p in plan["pops"]:
            s = out["s"][p["name"]]
            if p["spiking"]:
                layers.append(LayerRun(p["name"], "output" if p["readout"] else "hidden", p["neurons"],
                                       s.sum(axis=(1, 2)).astype(np.int64), spike_steps(s)))
        raw, scores = lif_readout_scores(plan, out, T)
        info = {"t_total": T, "t_in": T_in, "time_unit": "step", "sample_period": sched["period"],
                "gap": sched["gap"], "quench": sched["quench"], "seconds": seconds, "seconds_per_sample": seconds / N,
                "lava_seconds": out["seconds"], "builds": out["builds"], "batch": out["batch"],
                "rerun_samples": len(out["rerun"]), "reset": reset, "recorder": recorder, "readout": next(p["name"] for p in plan["pops"] if p["readout"]),
                "compare_seconds": compare_seconds, "bit_exact_with_fxsim": mismatch is None,
                "first_mismatch": mismatch, "connections": {c["name"]: ("DelayDense" if c["delay"] > 1 else
                                                                        c["kind"].capitalize()) for c in plan["conns"]}}
        traces = {k: v.astype(np.int64) for k, v in out["v"].items()} if keep_traces else None
        return Run(self.name, scores, decide(scores), layers, raster.reshape(N, -1).sum(axis=1).astype(np.int64),
                   info=info, raw_logits=raw, traces=traces)


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


__all__ = ["LavaTarget", "TargetUnavailable", "lava_parts", "network_plan", "compare_with_fxsim", "lif_plan",
           "compare_lif", "run_lif_network"]


# =================================================================================================
# Quantized LIF graphs on stock Lava.  Self-contained from here on (numpy and Lava only, Lava
# imported inside the functions): lava_export embeds this source in the standalone run_lava.py.


def lif_schedule(plan: dict, t_in: int, t_total=None, gap: int = 0) -> dict:
    """The sample period of a LIF plan for rasters of ``t_in`` steps (module docstring, "Timing"):
    T steps compared with fxsim, then G gap steps; where the input, bias and quench sources spike;
    the quench exponent of each population with outgoing connections."""
    meta, conns = plan["meta"], plan["conns"]
    T = int(t_in) + int(meta["depth"]) if t_total is None else int(t_total)
    if T < 1 or int(t_in) < 1 or int(gap) < 0:
        raise ValueError(f"need t_in >= 1, t_total >= 1, gap >= 0; got {t_in}, {T}, {gap}")
    quench = bool(meta["quench"])
    G = max([c["delay"] for c in conns] + [1]) + (1 if quench else 0) + int(gap)
    d_in = [c["delay"] for c in conns if c["src"] == "input"]
    d_bias = [c["delay"] for c in conns if c["src"] == "bias"]
    qexp = {}
    if quench:  # per-step inhibition 2**(14 + e) over at most min(G - 1, 4096 / (du + 1)) steps <= 2**22
        for p in plan["pops"]:
            if p["out_delay"]:
                m = min(G - 1, 4096.0 / (int(p["du"]) + 1))
                qexp[p["name"]] = int(min(7, max(-8, np.floor(8 - np.log2(m)))))
    return {"t_in": int(t_in), "t_total": T, "gap": G, "period": T + G, "quench": quench, "quench_exp": qexp,
            "input_last": max(0, min(int(t_in), T - min(d_in))) if d_in else 0,
            "bias_last": max(0, T - min(d_bias)) if d_bias else 0}


def lif_input_data(raster: np.ndarray, sched: dict) -> np.ndarray:
    """RingBuffer data (inputs, B * P) int32: column kP + t - 1 = raster column t - 1 of sample k
    (sent at local step t), for t <= input_last; zero elsewhere."""
    B, _, n_in = raster.shape
    P, L = sched["period"], sched["input_last"]
    data = np.zeros((B, P, n_in), np.int32)
    data[:, :L] = raster[:, :L]
    return np.ascontiguousarray(data.reshape(B * P, n_in).T)


def lif_clock(first: int, last: int, period: int) -> np.ndarray:
    """RingBuffer data (1, period): one spike at every local step first..last of every period."""
    data = np.zeros((1, period), np.int32)
    if last >= first:
        data[0, first - 1:last] = 1
    return data


def lif_recording_model(periodic_reset: bool = True):
    """The stock ``PyLifResetModelBitAcc`` (or, ``periodic_reset=False``, LIF's ``PyLifModelBitAcc``),
    subclassed only to write v and the spikes of every step into ``<record>.v.npy`` /
    ``<record>.s.npy`` (proc_params ``record``, ``record_steps``)."""
    from lava.proc.lif.models import PyLifModelBitAcc, PyLifResetModelBitAcc

    class PyLifModelRecorded(PyLifResetModelBitAcc if periodic_reset else PyLifModelBitAcc):
        def __init__(self, proc_params):
            super().__init__(proc_params)
            self._record = proc_params.get("record")
            self._record_steps = int(proc_params.get("record_steps") or 0)
            self._files = None
            self._spikes = None

        def spiking_activation(self):
            s = super().spiking_activation()
            self._spikes = s
            return s

        def run_spk(self):
            super().run_spk()  # the stock step, unchanged
            row = self.time_step - 1
            if not self._record or row >= self._record_steps:
                return
            if self._files is None:
                self._files = (np.load(self._record + ".v.npy", mmap_mode="r+"),
                               np.load(self._record + ".s.npy", mmap_mode="r+"))
            fv, fs = self._files
            fv[row] = self.v
            fs[row] = self._spikes
            if row == self._record_steps - 1:  # the last step of the run: hand the files over
                fv.flush()
                fs.flush()
                self._files = None

    return PyLifModelRecorded


def run_lif_chunk(plan: dict, sched: dict, raster: np.ndarray, workdir: str, recorder: str = "file",
                  periodic_reset: bool = True) -> dict:
    """Build the stock-Lava network of ``plan`` and run the B samples of ``raster`` (B, T_in, inputs)
    back to back, P = sched["period"] steps each.  Neurons are ``LIFReset`` (reset at local step 1 of
    every sample), or with ``periodic_reset=False`` plain ``LIF`` (then B must be 1).  Returns
    ``{"v": [(B, P, n) int32 per population], "s": [(B, P, n) bool], "seconds": {"build", "run",
    "read"}}`` (populations in plan order)."""
    import os
    import time

    import scipy.sparse as sp
    from lava.magma.core.run_conditions import RunSteps
    from lava.magma.core.run_configs import Loihi2SimCfg
    from lava.proc.dense.process import DelayDense, Dense
    from lava.proc.io.source import RingBuffer
    from lava.proc.lif.process import LIF, LIFReset
    from lava.proc.sparse.process import Sparse
    from lava.utils.weightutils import SignMode

    if recorder not in ("file", "monitor"):
        raise ValueError(f"recorder must be 'file' or 'monitor', got {recorder!r}")
    meta = plan["meta"]
    P, T = int(sched["period"]), int(sched["t_total"])
    B = len(raster)
    total = B * P
    if not periodic_reset and B != 1:
        raise ValueError("plain LIF neurons do not reset: one sample per build")
    mode = {"mixed": SignMode.MIXED, "exc": SignMode.EXCITATORY, "inh": SignMode.INHIBITORY}[meta["sign_mode"]]
    bits = int(meta["weight_bits"])
    t0 = time.perf_counter()
    sources = {"input": RingBuffer(data=lif_input_data(raster, sched))}
    if any(c["src"] == "bias" for c in plan["conns"]):
        sources["bias"] = RingBuffer(data=lif_clock(1, sched["bias_last"], P))
    lifs, files, monitors = {}, [], []
    for i, p in enumerate(plan["pops"]):
        n = int(p["neurons"])
        kw = {"shape": (n,), "du": int(p["du"]), "dv": int(p["dv"]), "vth": int(p["vth"]), "name": str(p["name"]),
              "bias_mant": np.asarray(p["bias_mant"], np.int64).reshape(n),
              "bias_exp": np.asarray(p["bias_exp"], np.int64).reshape(n)}
        lif = LIFReset(reset_interval=P, reset_offset=1, **kw) if periodic_reset else LIF(**kw)
        if recorder == "file":
            rec = os.path.join(workdir, f"lif{i}")
            for suffix, dtype in ((".v.npy", np.int32), (".s.npy", np.int8)):
                mm = np.lib.format.open_memmap(rec + suffix, mode="w+", dtype=dtype, shape=(total, n))
                del mm
            lif.proc_params["record"] = rec
            lif.proc_params["record_steps"] = total
            files.append(rec)
        else:
            from lava.proc.monitor.process import Monitor

            mv, ms = Monitor(), Monitor()
            mv.probe(lif.v, total)
            ms.probe(lif.s_out, total)
            monitors.append((mv, ms))
        lifs[p["name"]] = lif
    for c in plan["conns"]:
        w = np.asarray(c["weights"], np.int32)
        kw = {"weight_exp": int(c["weight_exp"]), "num_weight_bits": bits, "sign_mode": mode, "name": str(c["name"])}
        if int(c["delay"]) > 1:
            conn = DelayDense(weights=w, delays=np.full(w.shape, int(c["delay"]) - 1, dtype=int), **kw)
        elif c["kind"] == "sparse":
            conn = Sparse(weights=sp.csr_matrix(w), **kw)
        else:
            conn = Dense(weights=w, **kw)
        src = sources[c["src"]] if c["src"] in sources else lifs[c["src"]]
        src.s_out.connect(conn.s_in)
        conn.a_out.connect(lifs[c["dst"]].a_in)
    if sched["quench"] and sched["quench_exp"]:
        gate = RingBuffer(data=lif_clock(T + 1, P - 1, P))
        for p in plan["pops"]:
            if p["name"] in sched["quench_exp"]:
                conn = Dense(weights=np.full((int(p["neurons"]), 1), -256, np.int32),
                             weight_exp=int(sched["quench_exp"][p["name"]]), num_weight_bits=bits,
                             sign_mode=SignMode.MIXED, name=f"quench_{p['name']}")
                gate.s_out.connect(conn.s_in)
                conn.a_out.connect(lifs[p["name"]].a_in)
    if recorder == "file":
        model = lif_recording_model(periodic_reset)
        # keyed by instance: Lava then skips its ProcessModel discovery for these processes
        cfg = Loihi2SimCfg(select_tag="fixed_pt", exception_proc_model_map={lif: model for lif in lifs.values()})
    else:
        cfg = Loihi2SimCfg(select_tag="fixed_pt")
    first = next(iter(lifs.values()))
    times = {}
    try:
        first.create_runtime(run_cfg=cfg)
        t1 = time.perf_counter()
        times["build"] = t1 - t0
        first.run(condition=RunSteps(num_steps=total, blocking=True))
        t2 = time.perf_counter()
        times["run"] = t2 - t1
        vs, ss = [], []
        if recorder == "monitor":
            for lif, (mv, ms) in zip(lifs.values(), monitors):
                vs.append(np.asarray(mv.get_data()[lif.name]["v"]).astype(np.int32))
                ss.append(np.asarray(ms.get_data()[lif.name]["s_out"]) != 0)
    finally:
        try:
            first.stop()
        except Exception:  # noqa: BLE001 - never mask the run's own error
            pass
    if recorder == "file":
        vs = [np.load(rec + ".v.npy") for rec in files]
        ss = [np.load(rec + ".s.npy") != 0 for rec in files]
    times["read"] = time.perf_counter() - t2
    return {"v": [v.reshape(B, P, -1) for v in vs], "s": [s.reshape(B, P, -1) for s in ss], "seconds": times}


def lif_dirty_starts(plan: dict, sched: dict, spikes: list) -> np.ndarray:
    """(B,) bool: sample k started with something in flight from sample k - 1 (a population with
    outgoing connections of delay up to D spiked in the last D steps of sample k - 1's period).
    ``spikes``: (B, P, n) per population, in plan order.  Sample 0 of a build is always clean."""
    P = int(sched["period"])
    dirty = np.zeros(len(spikes[0]) if spikes else 0, bool)
    for p, s in zip(plan["pops"], spikes):
        D = int(p["out_delay"])
        if D:
            dirty[1:] |= s[:-1, P - D:, :].any(axis=(1, 2))
    return dirty


def run_lif_network(plan: dict, sched: dict, raster: np.ndarray, workdir: str, batch: int = 0,
                    recorder: str = "file", progress=None, reset: str = "periodic") -> dict:
    """Run every sample of ``raster`` (N, T_in, inputs) exactly as from fresh state.

    ``reset="periodic"``: LIFReset neurons, samples back to back in builds of ``batch`` samples
    (default: about 20,000 steps), then every sample whose start was not clean
    (:func:`lif_dirty_starts`) again in a build of its own.  ``reset="rebuild"``: plain stock LIF
    neurons, one build per sample (slow, no reset involved).  Returns ``{"v": {name: (N, T, n)
    int32}, "s": {name: (N, T, n) bool}, "seconds", "builds", "rerun" (sample indices), "batch"}``."""
    raster = np.asarray(raster)
    raster = raster.reshape(raster.shape[0], raster.shape[1], -1)
    N, n_in = raster.shape[0], raster.shape[2]
    P, T = int(sched["period"]), int(sched["t_total"])
    if reset not in ("periodic", "rebuild"):
        raise ValueError(f"reset must be 'periodic' or 'rebuild', got {reset!r}")
    periodic = reset == "periodic"
    if not periodic:
        batch = 1
    elif not batch:
        batch = max(1, min(20000 // P, 20_000_000 // max(1, n_in * P)))
    names = [p["name"] for p in plan["pops"]]
    v = {p["name"]: np.zeros((N, T, int(p["neurons"])), np.int32) for p in plan["pops"]}
    s = {p["name"]: np.zeros((N, T, int(p["neurons"])), bool) for p in plan["pops"]}
    secs = {"build": 0.0, "run": 0.0, "read": 0.0}
    builds, rerun = 0, []

    def put(start, out):
        for name, vv, ss in zip(names, out["v"], out["s"]):
            v[name][start:start + len(vv)] = vv[:, :T]
            s[name][start:start + len(ss)] = ss[:, :T]
        for key in secs:
            secs[key] += out["seconds"][key]

    for i in range(0, N, batch):
        out = run_lif_chunk(plan, sched, raster[i:i + batch], workdir, recorder, periodic)
        builds += 1
        put(i, out)
        rerun += [i + int(j) for j in np.flatnonzero(lif_dirty_starts(plan, sched, out["s"]))]
        if progress is not None:
            progress(len(out["v"][0]))
    for j in rerun:
        put(j, run_lif_chunk(plan, sched, raster[j:j + 1], workdir, recorder))
        builds += 1
    return {"v": v, "s": s, "seconds": secs, "builds": builds, "rerun": rerun, "batch": batch}


def lif_readout_scores(plan, out, T):
    """Readout of a LIF run: (integer raw scores, scores) -- spike counts, or for a non-spiking readout
    the summed integer v and its mean in float units (v_lsb / T), as fxsim's ``simulate_fixed``."""
    ro = next(p for p in plan["pops"] if p["readout"])
    if ro["spiking"]:
        raw = out["s"][ro["name"]].sum(axis=1).astype(np.int64)
        return raw, raw.astype(np.float64)
    raw = out["v"][ro["name"]].astype(np.int64).sum(axis=1)
    return raw, raw * ro["v_lsb"] / T


LIF_STANDALONE = (lif_readout_scores, lif_schedule, lif_input_data, lif_clock, lif_recording_model, run_lif_chunk, lif_dirty_starts,
                  run_lif_network)
