"""NeuroBench metrics of every target, computed from our own runs (no second simulation).

The definitions are those of neurobench 2.3.0 (``neurobench/metrics/static/*.py``,
``neurobench/metrics/workload/*.py``, ``neurobench/metrics/utils/layers/*.py``), restated here
for the objects we have: a list of connections (:class:`SynapseLayer`) and a target's
:class:`~snncompile.targets.base.Run`.  neurobench itself is a test/dev dependency only
(``tests/test_neurobench.py`` runs its ``Benchmark`` on the same models and data and checks
that the numbers agree); this module imports numpy only, and torch inside :func:`ann_metrics`.
Longer than 400 lines: each metric's definition, its per-layer form and the adapters from our two
graph families are checked against neurobench together and read best side by side.

Notation: N samples, T time steps per sample (``run.info["t_total"]`` for clock-driven runs; 1
for an event-driven float run such as the TTFS reference, which -- like an ANN forward -- is
one pass), a connection c with effective (out, in) matrix W_c from population src(c) to dst(c),
e_j(n) the spikes of source neuron j in sample n (input neurons included), and for each
spiking population p (the ``run.layers``: hidden, max-pool and spiking output populations;
a non-spiking readout is a plain linear layer in neurobench's sense) its n_p neurons.

Static metrics (neurobench: computed on the model's ``parameters()`` and ``buffers()``)

* ``parameter_count`` = sum over connections of (stored weights + stored biases).  Stored
  weights: the kernel tensor of a conv (or the affine weight behind a folded pool), else all
  out*in entries of W including zeros (neurobench counts ``p.numel()``).  Pool connections
  (``kind="pool"``: max/sum-pool routing with fixed unit weights) store no parameters, like
  ``nn.MaxPool2d``.  Neuron constants (thresholds, decays) are not parameters: in snnTorch they
  are buffers, which ``ParameterCount`` does not count.
* ``footprint_bytes`` = sum of numel * bytes over weights, biases and neuron constants
  (neurobench: ``numel * element_size()`` over parameters and buffers).  Bytes per value:
  float runs use the float width the run computes in (``float_bytes``: 8 for our float64
  reference, 4 for a float32 torch model); fixed-point values of b bits take the smallest
  power-of-two byte width that holds them (1, 2, 4 or 8 bytes: the torch integer dtype whose
  ``element_size()`` neurobench would count: 8-bit weights -> 1 byte, 16-bit biases -> 2,
  24-bit state -> 4).  ``footprint_bytes_packed`` = ceil(sum of numel * b / 8): the same
  values densely bit-packed (what a chip's synapse memory holds; not a neurobench number).
* ``connection_sparsity`` = zeros / entries over the stored weight tensors of linear and conv
  connections (biases and pools excluded), rounded to 4 decimals as neurobench rounds it.

Workload metrics (neurobench: per-sample means over the evaluated samples)

* ``synaptic_operations``: neurobench binarizes a connection layer's input and weights and
  counts, per forward call, the (nonzero input, nonzero weight) pairs; bias is excluded.  An
  input that is all 0/+-1 (spikes) makes them accumulates (``effective_acs``), otherwise
  multiply-accumulates (``effective_macs``).  Here every source of a run is a spike source, so
      effective_acs = (1/N) sum_n sum_c sum_j e_j(n) * nnz(W_c[:, j])       (operations per sample)
  (one accumulate per spike and nonzero outgoing synapse), effective_macs = 0, and
      dense = T * sum_c S_c                                                (operations per sample)
  with S_c the synapses of c that exist structurally (all out*in entries of a linear map; the
  kernel positions inside the input map of a conv, zero kernel weights included): what
  neurobench's ``Dense`` counts when every connection layer is called on every step.
* ``activation_sparsity`` = 1 - (sum_p spikes_p) / (N * T * sum_p n_p): the share of
  (neuron, step) activations that are zero over every spiking population (neurobench counts
  ``count_nonzero`` of every activation output of every step; a neuron spikes at most once per
  step on our targets, so spikes = nonzero activations; with a recorded raster the raster is
  counted).  For the float TTFS reference (T = 1) this is the share of silent neurons -- the
  share of zero ReLU activations of the ANN it was converted from.
* ``membrane_updates`` = (1/N) sum_p [ n_p N + sum_{t=2..T} #{(n, i): v_t != v_(t-1)} ] when the
  run recorded membrane traces (``run.traces``): neurobench's rule (every neuron counts as
  updated on the first step, afterwards only neurons whose potential changed).  Without traces
  every neuron counts on every step: sum_p n_p T, an upper bound (noted in ``approximations``).
  ReLU networks have no membrane: 0.
* ``classification_accuracy``: passed through (share of samples whose decision equals the label).

Per-neuron spike counts e_j come from, in order: the ``counts`` / ``input_counts`` arguments,
``run.spikes`` rasters, or first-spike ``times`` when every firing neuron fired exactly once
(TTFS: checked against the per-sample totals).  Where none is available the operations are
estimated from the spike totals and the mean fan-out, and ``approximations`` says so.

Units: bytes; operations and updates per sample (per inference); sparsities and accuracy are
fractions in [0, 1].  The result also holds ``samples``, ``time_steps``, ``per_layer`` (per
connection) and ``per_population`` (input, populations, readout; :func:`layer_breakdown`) breakdowns.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

DEFINITIONS = "neurobench 2.3.0"
KINDS = ("linear", "conv", "pool", "bias")


@dataclass
class SynapseLayer:
    """One connection as a map from source neurons to destination neurons.

    ``src``: ``"input"`` or a population name; ``dst``: a population name (the readout too).
    ``weight``: the *effective* (out, in) matrix (numpy or scipy sparse) from the source's
    flattened neurons to the destination's; its nonzero entries are the synapses a spike uses.
    ``kind``: "linear", "conv" (``kernel`` = the conv weight tensor), "pool" (fixed routing, no
    parameters) or "bias" (an always-on bias input: counted as bias parameters only).
    ``kernel``: the stored weight tensor when it differs from ``weight`` (a conv kernel, an
    affine weight behind a folded sum/avg pool).  ``bias``: stored biases of the connection (or
    of its destination population; attach them to one connection per population).
    ``synapses``: structurally existing synapses (neurobench's ``Dense`` counts these);
    default out*in for linear maps, the nonzero entries of ``weight`` otherwise.
    ``constants``: stored neuron constants of the destination (thresholds, decays...),
    name -> count or (count, bits); attach them to one connection per population.
    ``weight_bits`` / ``bias_bits``: fixed-point widths (None: as :func:`metrics` is told).
    """

    name: str
    src: str
    dst: str
    weight: object
    kind: str = "linear"
    kernel: np.ndarray | None = None
    bias: np.ndarray | None = None
    synapses: int | None = None
    constants: dict = field(default_factory=dict)
    weight_bits: int | None = None
    bias_bits: int | None = None

    def __post_init__(self):
        if self.kind not in KINDS:
            raise ValueError(f"SynapseLayer {self.name!r}: kind must be one of {', '.join(KINDS)}, got {self.kind!r}")

    @property
    def shape(self) -> tuple:
        return tuple(int(s) for s in self.weight.shape)

    def fanout(self) -> np.ndarray:
        """Nonzero outgoing synapses per source neuron: nnz of each column of ``weight`` (in,)."""
        w = self.weight
        if hasattr(w, "tocsc"):
            c = w.tocsc(copy=True)
            c.eliminate_zeros()
            return np.diff(c.indptr).astype(np.int64)
        return (np.asarray(w) != 0).sum(axis=0).astype(np.int64)

    def nonzeros(self) -> int:
        w = self.weight
        if hasattr(w, "count_nonzero"):
            return int(w.count_nonzero())
        return int(np.count_nonzero(np.asarray(w)))

    def structural_synapses(self) -> int:
        if self.synapses is not None:
            return int(self.synapses)
        if self.kind == "linear":
            out, inp = self.shape
            return out * inp
        return self.nonzeros()

    def stored_weights(self) -> tuple[int, int]:
        """(entries, zeros) of the stored weight tensor; (0, 0) for pools."""
        if self.kind == "pool":
            return 0, 0
        if self.kernel is not None:
            k = np.asarray(self.kernel)
            return int(k.size), int(k.size - np.count_nonzero(k))
        out, inp = self.shape
        return out * inp, out * inp - self.nonzeros()


# ---- fixed-point storage widths --------------------------------------------------------------

def storage_bytes(bits: int) -> int:
    """Bytes of the smallest power-of-two integer type holding ``bits`` (1, 2, 4 or 8)."""
    for b in (8, 16, 32, 64):
        if bits <= b:
            return b // 8
    raise ValueError(f"no integer storage type holds {bits} bits")


def _width(bits: int | None, float_bytes: int) -> tuple[int, int]:
    """(bytes as stored, bits when packed) of one value."""
    if bits is None:
        return float_bytes, 8 * float_bytes
    return storage_bytes(int(bits)), int(bits)


# ---- per-neuron spike counts -----------------------------------------------------------------

def _fired_once(times: np.ndarray) -> np.ndarray:
    t = np.asarray(times, dtype=np.float64)
    return np.isfinite(t) & (t >= 0)


def _population_counts(run, counts: dict | None) -> tuple[dict, dict]:
    """Per population: (N, n) spike counts where known; and its (neuron, step) activations total."""
    out, nonzero = {}, {}
    N = len(run.decisions)
    for la in run.layers:
        c = None
        if counts is not None and la.name in counts:
            c = np.asarray(counts[la.name]).reshape(N, -1)
        elif run.spikes is not None and la.name in run.spikes:
            r = np.asarray(run.spikes[la.name]).reshape(N, -1, la.neurons)
            c = r.astype(np.int64).sum(axis=1)
            nonzero[la.name] = int(np.count_nonzero(r))
        elif la.times is not None:
            fired = _fired_once(la.times).reshape(N, -1)
            if np.array_equal(fired.sum(axis=1), np.asarray(la.spikes)):
                c = fired.astype(np.int64)  # every firing neuron fired exactly once (TTFS)
        if c is not None:
            if c.shape[1] != la.neurons:
                raise ValueError(f"spike counts of {la.name!r} have {c.shape[1]} neurons, the run has {la.neurons}")
            if not np.array_equal(c.sum(axis=1), np.asarray(la.spikes)):
                raise ValueError(f"spike counts of {la.name!r} disagree with the run's spikes per sample")
            out[la.name] = c
        nonzero.setdefault(la.name, int(np.sum(la.spikes)))
    return out, nonzero


def _time_steps(run, time_steps: int | None) -> int:
    if time_steps is not None:
        return int(time_steps)
    t = run.info.get("t_total") if run.info else None
    return int(t) if t else 1


def metrics(layers: list[SynapseLayer], run, accuracy: float | None = None, *, weight_bits: int | None = None,
            bias_bits: int | None = None, state_bits: int | None = None, float_bytes: int = 8,
            input_counts: np.ndarray | None = None, counts: dict | None = None,
            time_steps: int | None = None) -> dict:
    """NeuroBench metrics of one target run (module docstring for the definitions).

    ``layers``: the network's connections (:func:`ttfs_synapse_layers`, :func:`lif_synapse_layers`).
    ``run``: the target's :class:`~snncompile.targets.base.Run`.  ``accuracy``: its accuracy.
    ``weight_bits``, ``bias_bits``, ``state_bits``: fixed-point widths (None: float values of
    ``float_bytes`` bytes); a layer's own ``weight_bits``/``bias_bits`` take precedence;
    ``bias_bits`` defaults to ``state_bits`` and neuron constants use ``state_bits``.
    ``input_counts``: (N, n_in) spikes of each input neuron per sample (TTFS fixed point:
    ``counts > 0``; float reference: ``x > 0``; LIF: the input raster summed over time).
    ``counts``: population -> (N, n) spike counts, overriding what the run records.
    ``time_steps``: T (default ``run.info["t_total"]``, else 1).
    """
    N = len(run.decisions)
    T = _time_steps(run, time_steps)
    notes: list[str] = []
    pop_counts, pop_nonzero = _population_counts(run, counts)
    pops = {la.name: la for la in run.layers}
    if input_counts is None and run.spikes is not None and "input" in run.spikes:
        r = np.asarray(run.spikes["input"])
        input_counts = r.reshape(N, r.shape[1], -1).astype(np.int64).sum(axis=1)
    if input_counts is not None:
        input_counts = np.asarray(input_counts).reshape(N, -1)
        if not np.array_equal(input_counts.sum(axis=1), np.asarray(run.input_spikes)):
            raise ValueError("input_counts disagree with the run's input spikes per sample")

    # static
    b_state, bits_state = _width(state_bits, float_bytes)
    params = 0
    footprint = 0
    packed_bits = 0
    w_entries = w_zeros = 0
    for layer in layers:
        wb, wbits = _width(layer.weight_bits if layer.weight_bits is not None else weight_bits, float_bytes)
        bb_bits = next((b for b in (layer.bias_bits, bias_bits, state_bits) if b is not None), None)
        bb, bbits = _width(bb_bits, float_bytes)
        n_w, z_w = layer.stored_weights()
        if layer.kind == "bias":
            n_b = n_w + (0 if layer.bias is None else int(np.size(layer.bias)))
            n_w = 0
            bb, bbits = wb, wbits  # an always-on input's weights are stored as weights
        else:
            n_b = 0 if layer.bias is None else int(np.size(layer.bias))
        if layer.kind in ("linear", "conv"):
            w_entries += n_w
            w_zeros += z_w
        params += n_w + n_b
        footprint += n_w * wb + n_b * bb
        packed_bits += n_w * wbits + n_b * bbits
        for spec in layer.constants.values():
            n_c, cbits = (spec if isinstance(spec, tuple) else (spec, None))
            cb, cpb = _width(cbits, float_bytes) if cbits is not None else (b_state, bits_state)
            footprint += int(n_c) * cb
            packed_bits += int(n_c) * cpb

    # synaptic operations
    per_layer = []
    acs_total = 0.0
    dense_total = 0
    syn_to = {}
    dst_neurons = {}
    for layer in layers:
        if layer.kind == "bias":
            continue
        dense = T * layer.structural_synapses()
        fan = layer.fanout()
        if layer.src == "input":
            e, total = input_counts, np.asarray(run.input_spikes, dtype=np.float64)
        elif layer.src in pops:
            e, total = pop_counts.get(layer.src), np.asarray(pops[layer.src].spikes, dtype=np.float64)
        else:
            raise ValueError(f"connection {layer.name!r}: source {layer.src!r} is neither 'input' nor a population "
                             f"of the run ({', '.join(pops) or 'none'})")
        if e is not None:
            if e.shape[1] != fan.shape[0]:
                raise ValueError(f"connection {layer.name!r}: {fan.shape[0]} source neurons, spike counts for "
                                 f"{e.shape[1]}")
            ops = e.astype(np.float64) @ fan.astype(np.float64)
            exact = True
        else:
            ops = total * (fan.mean() if fan.size else 0.0)
            exact = False
            notes.append(f"synaptic operations of {layer.name} ({layer.src} -> {layer.dst}): spike totals times "
                         "the mean fan-out (no per-neuron spike counts recorded)")
        acs = float(ops.mean()) if N else 0.0
        acs_total += acs
        dense_total += dense
        syn_to[layer.dst] = syn_to.get(layer.dst, 0.0) + acs
        dst_neurons[layer.dst] = layer.shape[0]
        per_layer.append({"name": layer.name, "src": layer.src, "dst": layer.dst, "kind": layer.kind,
                          "synapses": layer.structural_synapses(), "effective_acs": acs, "dense": dense,
                          "exact": exact})

    # activation sparsity and membrane updates
    n_all = sum(la.neurons for la in run.layers)
    active = sum(pop_nonzero[la.name] for la in run.layers)
    activation_sparsity = float((N * T * n_all - active) / (N * T * n_all)) if N and n_all else 0.0
    updates_total = 0.0
    per_pop = [{"name": "input", "role": "input", "neurons": None, "membrane_updates": 0.0,
                "spikes": float(np.mean(run.input_spikes)) if N else 0.0, "synaptic_operations": 0.0}]
    dense_updates = []
    for la in run.layers:
        tr = None if run.traces is None else run.traces.get(la.name)
        if tr is not None:
            v = np.asarray(tr).reshape(N, -1, la.neurons)
            u = N * la.neurons + int(np.count_nonzero(v[:, 1:] != v[:, :-1]))
            upd = u / N if N else 0.0
        else:
            upd = float(la.neurons * T)
            dense_updates.append(la.name)
        updates_total += upd
        per_pop.append({"name": la.name, "role": la.role, "neurons": int(la.neurons),
                        "spikes": float(np.mean(la.spikes)) if N else 0.0, "membrane_updates": upd,
                        "synaptic_operations": syn_to.get(la.name, 0.0)})
    for dst, ops in syn_to.items():
        if dst not in pops:  # a non-spiking readout
            per_pop.append({"name": dst, "role": "readout", "neurons": dst_neurons[dst], "spikes": 0.0,
                            "membrane_updates": float(dst_neurons[dst] * T), "synaptic_operations": ops,
                            "in_neurobench_total": False})
    if dense_updates:
        notes.append(f"membrane updates of {', '.join(dense_updates)}: every neuron on every step "
                     f"(T = {T}; no membrane traces recorded), an upper bound")

    return {
        "definitions": DEFINITIONS,
        "footprint_bytes": int(footprint),
        "footprint_bytes_packed": int(math.ceil(packed_bits / 8)),
        "parameter_count": int(params),
        "connection_sparsity": round(w_zeros / w_entries, 4) if w_entries else None,
        "activation_sparsity": activation_sparsity,
        "synaptic_operations": {"effective_macs": 0.0, "effective_acs": acs_total, "dense": float(dense_total)},
        "membrane_updates": float(updates_total),
        "classification_accuracy": None if accuracy is None else float(accuracy),
        "samples": int(N),
        "time_steps": int(T),
        "per_layer": per_layer,
        "per_population": per_pop,
        "approximations": notes,
    }


# ---- the ReLU ANN ----------------------------------------------------------------------------

def ann_metrics(model, x: np.ndarray, accuracy: float | None = None, batch_size: int | None = None) -> dict:
    """NeuroBench metrics of a torch ANN (``nn.Sequential`` of Linear/Conv/ReLU/pool/Flatten, or
    an object with such a ``.net``), from one forward pass over ``x`` with hooks, as neurobench's
    ``TorchModel`` + ``Benchmark`` compute them.

    Footprint and parameter count read the module's parameters and buffers as neurobench does
    (``numel * element_size``); connection sparsity: zero weights of Linear/Conv layers;
    activation sparsity: zero outputs of every ReLU/Sigmoid module; synaptic operations: per
    Linear/Conv call, (nonzero input, nonzero weight) pairs without bias, MACs unless the call's
    input is all 0/+-1 (then ACs); Dense: every (input, weight) pair of the layer.  ``batch_size``
    matters only for that per-call spike test (neurobench tests each batch); None: one batch.
    Counts are summed in float64 (neurobench sums in the layer's dtype).
    """
    import torch
    import torch.nn as nn
    import torch.nn.functional as F

    net = getattr(model, "net", model)
    conn_types = (nn.Linear, nn.Conv1d, nn.Conv2d, nn.Conv3d)
    act_types = (nn.ReLU, nn.Sigmoid)

    def find(module, types):
        found = []
        for child in module.children():
            if isinstance(child, types):
                found.append(child)
            elif list(child.children()):
                found.extend(find(child, types))
        return found

    conns, acts = find(net, conn_types), find(net, act_types)
    params = list(net.parameters())
    footprint = sum(p.numel() * p.element_size() for p in params) + sum(
        b.numel() * b.element_size() for b in net.buffers())
    zeros = sum(int((m.weight == 0).sum()) for m in conns)
    entries = sum(int(m.weight.numel()) for m in conns)

    def layer_ops(layer, inp, ones):
        w = torch.ones_like(layer.weight, dtype=torch.float64) if ones else (layer.weight != 0).double()
        xb = torch.ones_like(inp, dtype=torch.float64) if ones else (inp != 0).double()
        if isinstance(layer, nn.Linear):
            return float(F.linear(xb, w).sum())
        conv = {nn.Conv1d: F.conv1d, nn.Conv2d: F.conv2d, nn.Conv3d: F.conv3d}[type(layer)]
        if layer.padding_mode != "zeros":
            raise ValueError(f"ann_metrics: {type(layer).__name__} padding_mode {layer.padding_mode!r} is not supported")
        return float(conv(xb, w, None, layer.stride, layer.padding, layer.dilation, layer.groups).sum())

    state = {"mac": 0.0, "ac": 0.0, "dense": 0.0, "nonzero": 0, "numel": 0}

    def pre_hook(layer, inputs):
        inp = inputs[0].detach()
        spiking = bool(torch.all((inp == 0) | (inp == 1) | (inp == -1)))
        ops = layer_ops(layer, inp, False)
        state["ac" if spiking else "mac"] += ops
        state["dense"] += layer_ops(layer, inp, True)

    def act_hook(layer, inputs, output):
        state["nonzero"] += int(torch.count_nonzero(output))
        state["numel"] += int(output.numel())

    handles = [m.register_forward_pre_hook(pre_hook) for m in conns]
    handles += [m.register_forward_hook(act_hook) for m in acts]
    dtype = params[0].dtype if params else torch.float32
    x = np.asarray(x)
    n = len(x)
    bs = n if batch_size is None else int(batch_size)
    was_training = net.training
    net.eval()
    try:
        with torch.no_grad():
            for i in range(0, n, max(1, bs)):
                net(torch.as_tensor(x[i:i + bs], dtype=dtype))
    finally:
        for h in handles:
            h.remove()
        net.train(was_training)

    def per(v):
        return v / n if n else 0.0

    return {
        "definitions": DEFINITIONS,
        "footprint_bytes": int(footprint),
        "footprint_bytes_packed": int(footprint),
        "parameter_count": int(sum(p.numel() for p in params)),
        "connection_sparsity": round(zeros / entries, 4) if entries else None,
        "activation_sparsity": (state["numel"] - state["nonzero"]) / state["numel"] if state["numel"] else 0.0,
        "synaptic_operations": {"effective_macs": per(state["mac"]), "effective_acs": per(state["ac"]),
                                "dense": per(state["dense"])},
        "membrane_updates": 0.0,
        "classification_accuracy": None if accuracy is None else float(accuracy),
        "samples": int(n),
        "time_steps": 1,
        "per_layer": [],
        "per_population": [],
        "approximations": [],
    }


def as_neurobench(m: dict) -> dict:
    """Our metrics under neurobench's result names (what ``Benchmark.run()`` returns)."""
    s = m["synaptic_operations"]
    return {"Footprint": m["footprint_bytes"], "ConnectionSparsity": m["connection_sparsity"],
            "ParameterCount": m["parameter_count"], "ActivationSparsity": m["activation_sparsity"],
            "SynapticOperations": {"Effective_MACs": s["effective_macs"], "Effective_ACs": s["effective_acs"],
                                   "Dense": s["dense"]},
            "MembraneUpdates": m["membrane_updates"], "ClassificationAccuracy": m["classification_accuracy"]}


def layer_breakdown(m: dict) -> list[dict]:
    """Per population (the input first, in network order, a non-spiking readout last): neurons,
    spikes, membrane updates and the synaptic operations that land on it, all per sample -- the
    rows of the energy plot.  The input row carries the input spikes; a non-spiking readout's
    updates are every neuron on every step (a clock-driven chip updates it; neurobench's
    ``membrane_updates`` total leaves it out: ``in_neurobench_total`` False)."""
    return [dict(row) for row in m.get("per_population", [])]


# ---- adapters from our NIR graphs ------------------------------------------------------------

def _uniform_count(arr) -> int:
    """Stored values of a neuron parameter: 1 if every neuron shares it, else one per neuron."""
    a = np.asarray(arr)
    if a.size <= 1:
        return 1
    flat = a.reshape(-1)
    return 1 if np.all(flat == flat[0]) or np.all(np.isnan(flat)) else int(a.size)


def _ones_ops(ops):
    """The chain with every weight set to one (the structurally existing synapses)."""
    import copy

    out = []
    for name, node in ops:
        if hasattr(node, "weight"):
            node = copy.copy(node)
            node.weight = np.ones_like(np.asarray(node.weight, dtype=np.float64))
        elif hasattr(node, "scale"):
            node = copy.copy(node)
            node.scale = np.ones_like(np.asarray(node.scale, dtype=np.float64))
        out.append((name, node))
    return out


def _weight_node(ops):
    found = [node for _, node in ops if hasattr(node, "weight")]
    return found[0] if len(found) == 1 else None


def ttfs_synapse_layers(graph) -> list[SynapseLayer]:
    """The connections of one of our TTFS NIR graphs (float model.nir or quantized model.q.nir).

    One :class:`SynapseLayer` per neuron node: its chain of linear nodes as the effective matrix
    (``composite_matrix``), the Affine/Conv2d weight as the stored tensor, the neuron node's
    ``v_leak`` as its per-neuron bias; hidden populations store a threshold and a slope (and a
    weight exponent when quantized); max-pools are ``kind="pool"``.  Quantized graphs carry
    their widths: weights ``weight_bits``, biases ``bias_mant_bits + bias_exp_bits``, threshold
    and slope ``state_bits``, weight exponent 8 bits -- so :func:`metrics` needs no widths.
    """
    import nir

    from .nirops import composite_matrix
    from .ttfs.graph import parse_ttfs

    net = parse_ttfs(graph)
    q = net.quantized
    wbits = int(net.meta["weight_bits"]) if q else None
    bbits = int(net.meta["bias_mant_bits"]) + int(net.meta["bias_exp_bits"]) if q else None
    sbits = int(net.meta["state_bits"]) if q else None
    out, prev = [], "input"
    for layer in net.layers:
        W = composite_matrix(layer.ops, layer.in_shape)
        S = composite_matrix(_ones_ops(layer.ops), layer.in_shape).count_nonzero()
        wnode = _weight_node(layer.ops)
        if layer.role == "maxpool":
            out.append(SynapseLayer(layer.name, prev, layer.name, W, "pool", synapses=S,
                                    constants={"threshold": (1, sbits) if q else 1}))
        else:
            conv = any(isinstance(node, nir.Conv2d) for _, node in layer.ops)
            consts = {"threshold": 1, "slope": 1} if layer.role == "hidden" else {}
            if q:
                consts = {k: (1, sbits) for k in consts}
                consts["weight_exp"] = (1, 8)
            out.append(SynapseLayer(layer.name, prev, layer.name, W, "conv" if conv else "linear",
                                    kernel=None if wnode is None else np.asarray(wnode.weight),
                                    bias=np.asarray(layer.node.v_leak, dtype=np.float64).reshape(-1), synapses=S,
                                    constants=consts, weight_bits=wbits, bias_bits=bbits))
        prev = layer.name
    return out


def lif_synapse_layers(graph, dt: float = 1.0) -> list[SynapseLayer]:
    """The connections of a spiking (LIF-family) NIR graph: a foreign/float one
    (``read_spiking_graph``: one SynapseLayer per connection, its linear chain as the effective
    matrix, the Affine/Linear/Conv2d weight as the stored tensor, the chain's constant output as
    bias, every neuron parameter of the destination as constants -- one value if the population
    shares it, else one per neuron), or our quantized model.q.nir (``read_qlif``: integer
    weights of ``weight_bits``, biases of ``bias_mant_bits + bias_exp_bits``, du/dv of
    ``decay_bits``, the threshold mantissa of ``state_bits``; an always-on bias input becomes a
    ``kind="bias"`` layer).  Source names: ``"input"`` for the graph's Input, else the population."""
    import nir

    from .frontends.nir import read_spiking_graph
    from .ir import get_meta
    from .lif.fixed import read_qlif
    from .nirops import composite_matrix
    from .quantize.lif import FORMAT_Q

    meta = get_meta(graph)
    out = []
    if meta.get("format") == FORMAT_Q and meta.get("arithmetic") == "xylo":
        return _xylo_synapse_layers(graph, meta)
    if meta.get("format") == FORMAT_Q:
        qnet = read_qlif(graph)
        wbits = int(meta["weight_bits"])
        bbits = int(meta["bias_mant_bits"]) + int(meta["bias_exp_bits"])
        dbits = int(meta.get("decay_bits", 12))
        sbits = int(meta["state_bits"])
        seen = set()
        for c in qnet.conns:
            W = np.asarray(c.weight.numpy()).T  # (out, in), as Lava's Dense uses it
            stored = np.asarray(graph.nodes[c.name].weight)
            if c.src == "bias":
                out.append(SynapseLayer(c.name, "bias", c.dst, W, "bias", kernel=stored, weight_bits=wbits))
                continue
            pop = qnet.pops[c.dst]
            first = c.dst not in seen
            seen.add(c.dst)
            out.append(SynapseLayer(
                c.name, c.src if c.src in qnet.pops else "input", c.dst, W, "linear", kernel=stored,
                bias=pop.bias if first else None,
                constants={"du": (1, dbits), "dv": (1, dbits), "vth_mant": (1, sbits)} if first else {},
                weight_bits=wbits, bias_bits=bbits))
        return out
    net = read_spiking_graph(graph, dt)
    seen = set()
    for i, c in enumerate(net.connections):
        W = composite_matrix(c.ops, c.src_shape)
        S = composite_matrix(_ones_ops(c.ops), c.src_shape).count_nonzero()
        wnode = _weight_node(c.ops)
        conv = any(isinstance(node, nir.Conv2d) for _, node in c.ops)
        kind = "conv" if conv else ("linear" if wnode is not None else "pool")
        pop = net.populations[c.dst]
        first = c.dst not in seen
        seen.add(c.dst)
        consts = {p: _uniform_count(v) for p, v in pop.params.items()} if first else {}
        name = next((n for n, node in c.ops if hasattr(node, "weight")), None) or f"{c.src}->{c.dst}#{i}"
        out.append(SynapseLayer(name, "input" if c.from_input else c.src, c.dst, W, kind,
                                kernel=None if wnode is None else np.asarray(wnode.weight), bias=c.bias,
                                synapses=S, constants=consts))
    return out


def _xylo_synapse_layers(graph, meta) -> list[SynapseLayer]:
    """A Xylo graph's input, recurrent (hidden -> hidden) and output matrices, split by population."""
    from .quantize.lif_xylo import xylo_spec

    spec = xylo_spec(graph)
    wbits, sbits = int(meta["weight_bits"]), int(meta["state_bits"])
    pops = list(meta["xylo_populations"].items())
    ro = meta["xylo_readout"]
    consts = {"dash_syn": (1, 4), "dash_mem": (1, 4), "threshold": (1, sbits)}
    out = []
    for i, (name, (a, b)) in enumerate(pops):
        W = spec["weights_in"][:, a:b].T if i == 0 else spec["weights_rec"][pops[i - 1][1][0]:pops[i - 1][1][1], a:b].T
        out.append(SynapseLayer(f"{name}_in", "input" if i == 0 else pops[i - 1][0], name, W, "linear",
                                bias=spec["bias"][a:b], constants=consts, weight_bits=wbits, bias_bits=sbits))
        self_w = spec["weights_rec"][a:b, a:b].T
        if np.any(self_w):
            out.append(SynapseLayer(f"{name}_rec", name, name, self_w, "linear", weight_bits=wbits))
    name, (a, b) = pops[-1]
    out.append(SynapseLayer(f"{ro}_in", name, ro, spec["weights_out"][a:b].T, "linear", bias=spec["bias_out"],
                            constants=consts, weight_bits=wbits, bias_bits=sbits))
    return out

