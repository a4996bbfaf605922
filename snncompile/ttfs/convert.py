"""Exact mapping of a ReLU network to a TTFS spiking network, written as a NIR graph.

We implement the B1 form of Stanojevic et al. (2024) (DESIGN.md section 3).  Layer n has
the spike window [t_min^n, t_max^n], t_min^1 = 1 (inputs spike in [0, 1] at t = 1 - x),
t_min^{n+1} = t_max^n and t_max^n = t_min^n + B^n with B^n = (1 + zeta) * X^n, X^n the
largest activation of layer n on the calibration (training) data.

Neuron i of a hidden layer integrates, until t_min^n, its synaptic current
I_i(t) = sum_j W_ij H(t - t_j) and a constant drive b_i / t_min^n (its bias), so
V_i(t_min) = sum_j W_ij x_j + b_i with x_j = t_min^n - t_j.  From t_min^n on the inputs
are frozen and V rises with slope 1; the neuron fires once, when V reaches B^n, and only
inside its window, so t_max^n - t_i = clip(sum_j W_ij x_j + b_i, 0, B^n): the ReLU
activation clipped at B^n.  The readout layer never fires; its potential at t_min is the
logit vector.

Why B1 and not the J/alpha form (2023): B1 needs no normalization J = W / (1 - sum W)
(which diverges when a row of W sums to one) and lets neurons with zero activation stay
silent (< 1 spike per neuron), while J/alpha needs every neuron to fire.  The fixed-point
targets run the same B1 neuron in discrete time (docs/ttfs_neuron.md).

NIR expression (docs/nir.md): each layer is its linear nodes (Affine with bias 0, Conv2d
with bias 0, Flatten, AvgPool2d) followed by a non-leaking CubaLIF node
(tau_syn = tau_mem = r = w_in = HOLD, v_leak = HOLD * b / t_min, v_threshold = B);
max-pools are SumPool2d + IF(threshold 0.5) firing on the first input spike; the phase
switch, windows and fire-once live in metadata["snncompile"].
"""

from __future__ import annotations

import nir
import numpy as np
import torch
import torch.nn as nn

from ..errors import InvalidModel
from ..frontends.canonical import AnnModel, BiasMap
from ..ir import set_meta
from .structure import AFFINE_TYPES, AnnLayer, split_layers

HOLD = 1.0e6  # time constant (in window units) standing for "no leak" in CubaLIF nodes
FORMAT = "snncompile-ttfs"


def layer_activations(layers: list[AnnLayer], x: torch.Tensor) -> list[torch.Tensor]:
    """Post-ReLU activations of every hidden layer (before its max-pools), in the dtype of x."""
    acts = []
    for layer in layers:
        for op in layer.ops:
            x = op(x)
        if layer.relu:
            x = torch.relu(x)
            acts.append(x)
            for pool in layer.pools:
                x = pool(x)
    return acts


WORK_BYTES = 256 * 2**20  # working memory of one float64 batch (see auto_batch_size)


def auto_batch_size(model: AnnModel, work_bytes: int = WORK_BYTES, cap: int = 2000) -> int:
    """Samples per float64 batch so that about six maps of the widest layer fit in ``work_bytes``
    (e.g. 85 for a VGG with 64x32x32 maps, 2000 for an MLP)."""
    widest = int(np.prod(model.input_shape))
    shape = tuple(model.input_shape)
    with torch.no_grad():
        for m in model.net:  # per module: convert() may have turned some modules float64
            p = next(m.parameters(), None)
            h = m(torch.zeros((1, *shape), dtype=p.dtype if p is not None else torch.float64))
            shape = tuple(h.shape[1:])
            widest = max(widest, int(h.numel()))
    return int(max(1, min(cap, work_bytes // (8 * 6 * widest))))


def calibrate(model: AnnModel, x_calib: np.ndarray, batch_size: int | None = None) -> list[float]:
    """X^n: the largest activation of each hidden layer over ``x_calib`` (N, *input_shape)."""
    batch_size = batch_size or auto_batch_size(model)
    layers = split_layers(model.net, model.layer_names)
    n_hidden = sum(layer.relu for layer in layers)
    xmax = [0.0] * n_hidden
    net = _float64(layers)
    with torch.no_grad():
        for i in range(0, len(x_calib), batch_size):
            xb = torch.tensor(np.asarray(x_calib[i:i + batch_size]), dtype=torch.float64)
            for k, a in enumerate(layer_activations(net, xb)):
                xmax[k] = max(xmax[k], float(a.max()))
    return xmax


def _float64(layers: list[AnnLayer]) -> list[AnnLayer]:
    import copy

    out = copy.deepcopy(layers)
    for layer in out:
        for op in layer.ops + layer.pools:
            op.double()
    return out


def _linear_nodes(layer: AnnLayer, index: int, in_shape: tuple, counters: dict):
    """NIR nodes for a layer's linear ops; returns (list of (name, node), bias, out_shape).

    Average pools are written as SumPool2d with their 1/k**2 folded into the layer's affine
    weights (exact: the chain is linear), so the graph uses only node types that NIR consumers
    such as norse's ``from_nir`` support.
    """
    nodes = []
    bias = None  # the layer's bias as a full map of the current shape (per neuron)
    affine_node = None
    gain = 1.0
    shape = tuple(in_shape)
    x = torch.zeros((1, *shape), dtype=torch.float64)
    for op, src in zip(layer.ops, layer.names):
        if isinstance(op, BiasMap):  # per-position bias of a folded BatchNorm: no node of its own
            if bias is None or tuple(op.bias.shape) != shape:
                raise InvalidModel(f"layer {src!r}: a BiasMap must directly follow a Conv2d of output shape "
                                   f"{tuple(op.bias.shape)}")
            bias = bias + op.bias.detach().double().numpy()
            continue
        if isinstance(op, nn.Linear):
            kind = "fc"
        elif isinstance(op, nn.Conv2d):
            kind = "conv"
        elif isinstance(op, nn.Flatten):
            kind = "flatten"
        else:
            kind = "sumpool"
        counters[kind] = counters.get(kind, 0) + 1
        name = f"{kind}{counters[kind]}"
        w = op.weight.detach().double().numpy().copy() if isinstance(op, AFFINE_TYPES) else None
        if isinstance(op, AFFINE_TYPES):
            if bias is not None:
                raise InvalidModel(f"layer {src!r}: two affine layers without a ReLU between them are not supported; "
                                   "merge them into one")
            b = op.bias.detach().double().numpy().copy() if op.bias is not None else np.zeros(w.shape[0])
        meta = {"source": src}
        if isinstance(op, nn.Linear):
            node = affine_node = nir.Affine(weight=w, bias=np.zeros(w.shape[0]))
        elif isinstance(op, nn.Conv2d):
            node = affine_node = nir.Conv2d(input_shape=tuple(shape[1:]), weight=w, stride=tuple(op.stride),
                                            padding=tuple(op.padding), dilation=tuple(op.dilation), groups=op.groups,
                                            bias=np.zeros(w.shape[0]))
        elif isinstance(op, nn.Flatten):
            node = nir.Flatten(input_type={"input": np.array(shape)}, start_dim=0, end_dim=-1)
        else:
            k = _pair(op.kernel_size)
            s = _pair(op.stride if op.stride is not None else op.kernel_size)
            node = nir.SumPool2d(kernel_size=np.array(k), stride=np.array(s), padding=np.array(_pair(op.padding)))
            gain /= k[0] * k[1]
            meta.update({"from": "AvgPool2d", "gain_folded_into_weights": 1.0 / (k[0] * k[1])})
        set_meta(node, meta)
        nodes.append((name, node))
        x = op.double()(x) if not isinstance(op, nn.Flatten) else torch.flatten(x, 1)
        new_shape = tuple(x.shape[1:])
        if isinstance(op, AFFINE_TYPES):  # per channel/feature: broadcast to every neuron of the output
            bias = np.broadcast_to(b.reshape((-1,) + (1,) * (len(new_shape) - 1)), new_shape).copy()
        elif bias is not None and isinstance(op, nn.Flatten):
            bias = bias.reshape(new_shape)
        elif bias is not None:  # an average pool after the affine map: it averages the bias map too
            bias = op.double()(torch.as_tensor(bias)[None])[0].numpy()
        shape = new_shape
    if affine_node is not None and gain != 1.0:
        affine_node.weight = affine_node.weight * gain
    return nodes, bias, shape


def _pair(v):
    return tuple(v) if isinstance(v, (tuple, list)) else (int(v), int(v))


def _cuba(shape, b, t_min, threshold):
    full = np.full(shape, HOLD)
    return nir.CubaLIF(tau_syn=full.copy(), tau_mem=full.copy(), r=full.copy(), w_in=full.copy(),
                       v_leak=HOLD * np.asarray(b, dtype=np.float64) / t_min,
                       v_threshold=np.broadcast_to(np.asarray(threshold, dtype=np.float64), shape).copy(),
                       v_reset=np.zeros(shape))


def convert(model: AnnModel, x_calib: np.ndarray, zeta: float = 0.5) -> nir.NIRGraph:
    """The float TTFS network of ``model`` as a NIR graph (the reference, model.nir)."""
    if zeta < 0:
        raise InvalidModel(f"zeta must be >= 0, got {zeta}")
    layers = split_layers(model.net, model.layer_names)
    xmax = calibrate(model, x_calib)
    nodes = {"input": nir.Input(input_type={"input": np.array(model.input_shape)})}
    edges = []
    prev = "input"
    shape = tuple(model.input_shape)
    t_min = 1.0
    counters: dict = {}
    layer_meta = []
    hidden = 0
    for index, layer in enumerate(layers):
        lin, bias, shape = _linear_nodes(layer, index, shape, counters)
        for name, node in lin:
            nodes[name] = node
            edges.append((prev, name))
            prev = name
        if layer.relu:
            X = xmax[hidden]
            hidden += 1
            B = (1.0 + zeta) * X if X > 0 else 1.0  # a dead layer still needs a window
            t_max = t_min + B
            name = f"ttfs{hidden}"
            node = _cuba(shape, bias, t_min, B)
            meta = {"role": "hidden", "form": "B1", "t_min": t_min, "t_max": t_max, "B": B, "X": X,
                    "hold": HOLD, "fire_once": True, "source": layer.name}
            set_meta(node, meta)
            nodes[name] = node
            edges.append((prev, name))
            prev = name
            layer_meta.append({"name": name, "role": "hidden", "t_min": t_min, "t_max": t_max, "B": B, "X": X})
            for p, (pool, src) in enumerate(zip(layer.pools, layer.pool_names)):
                k = _pair(pool.kernel_size)
                s = _pair(pool.stride if pool.stride is not None else pool.kernel_size)
                sum_name, mp_name = f"maxpool{hidden}_{p + 1}_sum", f"maxpool{hidden}_{p + 1}"
                nodes[sum_name] = nir.SumPool2d(kernel_size=np.array(k), stride=np.array(s), padding=np.array((0, 0)))
                shape = (shape[0], (shape[1] - k[0]) // s[0] + 1, (shape[2] - k[1]) // s[1] + 1)
                mp = nir.IF(r=np.ones(shape), v_threshold=np.full(shape, 0.5), v_reset=np.zeros(shape))
                pmeta = {"role": "maxpool", "t_min": t_min, "t_max": t_max, "fire_once": True, "source": src}
                if getattr(pool, "min_channels", ()):  # channels behind a negative BatchNorm scale: min-pool
                    pmeta["min_channels"] = [int(c) for c in pool.min_channels]
                set_meta(mp, pmeta)
                nodes[mp_name] = mp
                edges += [(prev, sum_name), (sum_name, mp_name)]
                prev = mp_name
                layer_meta.append({"name": mp_name, "role": "maxpool", "t_min": t_min, "t_max": t_max})
            t_min = t_max
        else:
            node = _cuba(shape, bias, t_min, np.inf)
            set_meta(node, {"role": "readout", "form": "B1", "t_min": t_min, "hold": HOLD, "source": layer.name})
            nodes["readout"] = node
            edges.append((prev, "readout"))
            prev = "readout"
            layer_meta.append({"name": "readout", "role": "readout", "t_min": t_min})
    nodes["output"] = nir.Output(output_type={"output": np.array(shape)})
    edges.append((prev, "output"))
    graph = nir.NIRGraph(nodes=nodes, edges=edges, type_check=True)
    set_meta(graph, {
        "format": FORMAT, "version": 1, "form": "B1", "quantized": False, "zeta": zeta,
        "encoding": {"type": "latency", "t_min": 0.0, "t_max": 1.0,
                     "rule": "x in [0, 1] spikes at t = 1 - x; x = 0 never spikes"},
        "layers": layer_meta, "source": model.name,
    })
    return graph


def clipped_ann(model: AnnModel, bounds: list[float], x: np.ndarray, batch_size: int | None = None):
    """The ReLU network with activations clipped at B^n, in float64: the function the TTFS
    network computes exactly.  Returns (logits, [activations of each hidden layer and max-pool,
    flattened (N, neurons)]) in the order of the TTFS graph's spiking layers."""
    batch_size = batch_size or auto_batch_size(model)
    layers = _float64(split_layers(model.net, model.layer_names))
    logits, acts = [], []
    with torch.no_grad():
        for i in range(0, len(x), batch_size):
            h = torch.tensor(np.asarray(x[i:i + batch_size]), dtype=torch.float64)
            k, batch_acts = 0, []
            for layer in layers:
                for op in layer.ops:
                    h = op(h)
                if layer.relu:
                    h = torch.clamp(h, 0.0, bounds[k])
                    k += 1
                    batch_acts.append(h.reshape(len(h), -1).numpy())
                    for pool in layer.pools:
                        h = pool(h)
                        batch_acts.append(h.reshape(len(h), -1).numpy())
            logits.append(h.reshape(len(h), -1).numpy())
            acts.append(batch_acts)
    return np.concatenate(logits), [np.concatenate([a[j] for a in acts]) for j in range(len(acts[0]))] if acts else []


def ann_logits(model: AnnModel, x: np.ndarray, batch_size: int | None = None) -> np.ndarray:
    """The (unclipped) ANN in float64, the arithmetic the reference uses."""
    batch_size = batch_size or auto_batch_size(model)
    layers = _float64(split_layers(model.net, model.layer_names))
    out = []
    with torch.no_grad():
        for i in range(0, len(x), batch_size):
            h = torch.tensor(np.asarray(x[i:i + batch_size]), dtype=torch.float64)
            for layer in layers:
                for op in layer.ops:
                    h = op(h)
                if layer.relu:
                    h = torch.relu(h)
                    for pool in layer.pools:
                        h = pool(h)
            out.append(h.reshape(len(h), -1).numpy())
    return np.concatenate(out)
