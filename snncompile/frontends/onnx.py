"""ONNX frontend (``.onnx`` -> :class:`AnnModel`) and ONNX export.

The graph must be one chain of data nodes from its single input to its single output.  Data
ops (:data:`SUPPORTED_OPS`) map to canonical layers:

=====================  ===================================================================
Gemm                   Linear: W = alpha*(B if transB else B^T), b = beta*C; transA=0 only
MatMul [+ Add]         Linear: W = B^T; a following Add of a constant becomes its bias
Conv                   Conv2d: 2-D, symmetric pads, dilations 1, group 1, auto_pad NOTSET/VALID
Relu                   ReLU
Flatten / Reshape      Flatten: Flatten needs axis=1; Reshape must give [N, prod(rest)]
AveragePool / MaxPool  AvgPool2d / MaxPool2d: pads 0, dilations 1, ceil_mode 0
BatchNormalization     folded into a neighbouring Linear/Conv2d (see ``canonical``)
Identity / Dropout     removed
=====================  ===================================================================

Weights come from initializers or ``Constant`` nodes.  The nodes that compute a Reshape's
target shape (Constant, Shape, Gather, Unsqueeze, Concat, Cast, Slice, Squeeze) are evaluated
with numpy for two batch sizes, to check that the Reshape is a per-sample flatten, and dropped.

Longer than 400 lines: one table of ONNX operators, each with its checks and its translation,
reads best in one place.
"""

from __future__ import annotations

import math
import os
import uuid
import warnings

import numpy as np
import onnx
import torch
from onnx import helper
from torch import nn

from ..errors import InvalidModel, UnsupportedOperator
from ..validation.onnx_model import attribute_value, tensor_array
from .canonical import AnnModel, canonicalize, check_canonical, run_layer

SUPPORTED_OPS = ["Gemm", "MatMul", "Add", "Conv", "Relu", "Flatten", "Reshape", "AveragePool", "MaxPool",
                 "BatchNormalization", "Identity", "Dropout"]
SHAPE_OPS = ["Constant", "Shape", "Gather", "Unsqueeze", "Concat", "Cast", "Slice", "Squeeze"]
_SUPPORTED_MSG = SUPPORTED_OPS + ["Constant", "Shape/Gather/Unsqueeze/Concat/Cast/Slice/Squeeze "
                                  "(only to compute a Reshape's shape)"]


def _attrs(node) -> dict:
    out = {}
    for a in node.attribute:
        v = attribute_value(a, node.name or node.op_type)
        out[a.name] = v.decode() if isinstance(v, bytes) else v
    return out


def _constant_value(node, name: str, path: str) -> np.ndarray:
    for a in node.attribute:
        if a.name == "value":
            return tensor_array(a.t, path, f"Constant node {name!r} value")
        if a.name in ("value_float", "value_floats"):
            return np.asarray(attribute_value(a, name, path), dtype=np.float32)
        if a.name in ("value_int", "value_ints"):
            return np.asarray(attribute_value(a, name, path), dtype=np.int64)
    raise InvalidModel(f"ONNX file '{path}': Constant node {name!r} has no dense value")


class _Graph:
    """Indexes of one ONNX graph: constants, tensor kinds, producers, node names."""

    def __init__(self, proto, path: str):
        self.path, self.g = path, proto.graph
        g = self.g
        self.consts = {t.name: tensor_array(t, path) for t in g.initializer}
        self.names = [n.name or f"#{i} {n.op_type}" for i, n in enumerate(g.node)]
        inputs = [i for i in g.input if i.name not in self.consts]
        if len(inputs) != 1 or len(g.output) != 1:
            raise InvalidModel(f"ONNX file '{path}': the graph needs exactly one input and one output, got "
                               f"inputs {[i.name for i in inputs]} and outputs {[o.name for o in g.output]}")
        self.input, self.output = inputs[0], g.output[0].name
        dims = self.input.type.tensor_type.shape.dim
        if len(dims) < 2 or any(not d.HasField("dim_value") or d.dim_value <= 0 for d in dims[1:]):
            shown = [d.dim_value if d.HasField("dim_value") else (d.dim_param or "?") for d in dims]
            raise InvalidModel(f"ONNX file '{path}': input {self.input.name!r} must have a batch dim and "
                               f"fixed positive sample dims, got shape {shown}")
        self.input_shape = tuple(d.dim_value for d in dims[1:])
        self.static_batch = dims[0].dim_value if dims[0].HasField("dim_value") else None
        self.kind = {self.input.name: "data", **{k: "const" for k in self.consts}}
        self.producer: dict[str, int] = {}
        self.data_nodes: list[int] = []
        self._classify()

    def fail(self, msg: str):
        raise InvalidModel(f"ONNX file '{self.path}': {msg}")

    def _classify(self) -> None:
        """Label each tensor 'data' (on the chain), 'const', 'shape' (shape arithmetic) or 'aux'."""
        for i, node in enumerate(self.g.node):
            op, nm = node.op_type, self.names[i]
            if node.domain not in ("", "ai.onnx"):
                raise UnsupportedOperator(f"{node.domain}::{op}", nm, _SUPPORTED_MSG, self.path)
            kinds = []
            for x in node.input:
                if x and x not in self.kind:
                    self.fail(f"node {nm!r} ({op}) reads tensor {x!r}, which no node produces")
                kinds.append(self.kind.get(x) if x else None)
            if "aux" in kinds:
                self.fail(f"node {nm!r} ({op}) reads a secondary output (mask/indices/statistics), "
                          "which is not supported")
            for o in node.output:
                self.producer[o] = i
            if op == "Constant":
                self.consts[node.output[0]] = _constant_value(node, nm, self.path)
                out_kind = "const"
            elif op == "Identity" and kinds == ["const"]:
                self.consts[node.output[0]] = self.consts[node.input[0]]
                out_kind = "const"
            elif "data" in kinds and op == "Shape":
                out_kind = "shape"
            elif "data" in kinds:
                if op not in SUPPORTED_OPS:
                    raise UnsupportedOperator(op, nm, _SUPPORTED_MSG, self.path)
                self.data_nodes.append(i)
                self.kind[node.output[0]] = "data"
                for o in node.output[1:]:
                    self.kind[o] = "aux"
                continue
            elif op in SHAPE_OPS:
                out_kind = "shape"
            else:
                raise UnsupportedOperator(op if op not in SUPPORTED_OPS else f"{op} on constants only",
                                          nm, _SUPPORTED_MSG, self.path)
            for o in node.output:
                self.kind[o] = out_kind

    def chain(self) -> list[int]:
        """The data nodes in order from the input to the output; InvalidModel if they branch."""
        consumer: dict[str, int] = {}
        for i in self.data_nodes:
            node, nm = self.g.node[i], self.names[i]
            data_in = [x for x in node.input if x and self.kind.get(x) == "data"]
            if len(data_in) != 1:
                self.fail(f"node {nm!r} ({node.op_type}) joins {len(data_in)} branches ({', '.join(data_in)}); "
                          "the graph must be a single chain")
            if data_in[0] in consumer:
                other = self.names[consumer[data_in[0]]]
                self.fail(f"the graph branches at tensor {data_in[0]!r}: it feeds nodes {other!r} and {nm!r}; "
                          "it must be a single chain")
            consumer[data_in[0]] = i
        order, cur = [], self.input.name
        while cur in consumer:
            order.append(consumer[cur])
            cur = self.g.node[consumer[cur]].output[0]
        if cur != self.output:
            self.fail(f"the chain from input {self.input.name!r} ends at tensor {cur!r}, "
                      f"not at the graph output {self.output!r}")
        return order

    def const(self, i: int, pos: int, what: str) -> np.ndarray | None:
        """Constant input ``pos`` of node ``i`` (None if absent)."""
        node = self.g.node[i]
        if pos >= len(node.input) or not node.input[pos]:
            return None
        x = node.input[pos]
        if x not in self.consts:
            self.fail(f"node {self.names[i]!r} ({node.op_type}): {what} {x!r} must be a constant "
                      "(initializer or Constant node)")
        return np.asarray(self.consts[x])

    def shape_value(self, name: str, batch: int, shapes: dict, memo: dict) -> np.ndarray:
        """Evaluate a shape-arithmetic tensor for a given batch size (numpy)."""
        if name in self.consts:
            return np.asarray(self.consts[name])
        if name in memo:
            return memo[name]
        i = self.producer[name]
        node, nm = self.g.node[i], self.names[i]
        a = _attrs(node)
        if node.op_type == "Shape":
            src = node.input[0]
            if src not in shapes:
                self.fail(f"node {nm!r} (Shape) reads {src!r}, whose shape is not known yet")
            v = np.array((batch, *shapes[src]), dtype=np.int64)[a.get("start", 0):a.get("end", None)]
        else:
            ins = [self.shape_value(x, batch, shapes, memo) if x else None for x in node.input]
            v = _eval_shape_op(node.op_type, ins, a)
        memo[name] = v
        return v


def _axes(ins: list, a: dict, pos: int = 1):
    if len(ins) > pos and ins[pos] is not None:
        return [int(x) for x in np.ravel(ins[pos])]
    return list(a["axes"]) if "axes" in a else None


def _eval_shape_op(op: str, ins: list, a: dict) -> np.ndarray:
    """numpy semantics of the shape-arithmetic ops (small int tensors)."""
    x = ins[0]
    if op == "Gather":
        return np.take(x, ins[1].astype(np.int64), axis=a.get("axis", 0))
    if op == "Unsqueeze":
        axes = sorted(ax % (x.ndim + len(_axes(ins, a))) for ax in _axes(ins, a))
        for ax in axes:
            x = np.expand_dims(x, ax)
        return x
    if op == "Squeeze":
        axes = _axes(ins, a)
        return np.squeeze(x) if axes is None else np.squeeze(x, axis=tuple(ax % x.ndim for ax in axes))
    if op == "Concat":
        return np.concatenate([np.atleast_1d(v) for v in ins], axis=a.get("axis", 0))
    if op == "Cast":
        return x.astype(helper.tensor_dtype_to_np_dtype(a["to"]))
    if op == "Slice":
        starts, ends = (ins[1], ins[2]) if len(ins) > 2 else (a["starts"], a["ends"])
        axes = _axes(ins, a, 3) or list(range(len(starts)))
        steps = ins[4] if len(ins) > 4 and ins[4] is not None else [1] * len(starts)
        idx = [slice(None)] * x.ndim
        for s, e, ax, st in zip(np.ravel(starts), np.ravel(ends), axes, np.ravel(steps)):
            idx[int(ax)] = slice(int(s), int(e), int(st))
        return x[tuple(idx)]
    raise ValueError(op)


def _reshape_target(target: np.ndarray, in_shape: tuple, allowzero: int) -> list[int]:
    """ONNX Reshape output shape for input ``in_shape`` (0 copies a dim, -1 is inferred)."""
    out = [in_shape[k] if (d == 0 and not allowzero) else int(d) for k, d in enumerate(np.ravel(target))]
    if out.count(-1) == 1:
        known = math.prod(d for d in out if d != -1)
        out[out.index(-1)] = math.prod(in_shape) // known if known else -1
    return out


def _pool_attrs(gr: _Graph, i: int) -> tuple[tuple, tuple]:
    node, nm, a = gr.g.node[i], gr.names[i], _attrs(gr.g.node[i])
    k = tuple(a.get("kernel_shape", ()))
    strides = tuple(a.get("strides", (1,) * len(k)))
    pads, dil = a.get("pads", [0] * 2 * len(k)), a.get("dilations", [1] * len(k))
    if len(k) != 2 or any(pads) or any(d != 1 for d in dil) or a.get("ceil_mode", 0) \
            or a.get("auto_pad", "NOTSET") not in ("NOTSET", "VALID"):
        raise UnsupportedOperator(f"{node.op_type}(kernel_shape={list(k)}, pads={list(pads)}, dilations="
                                  f"{list(dil)}, ceil_mode={a.get('ceil_mode', 0)}, auto_pad="
                                  f"{a.get('auto_pad', 'NOTSET')}); only 2-D, pads 0, dilations 1, ceil_mode 0",
                                  nm, _SUPPORTED_MSG, gr.path)
    return k, strides


def _linear(w: np.ndarray, b: np.ndarray | None) -> nn.Linear:
    lin = nn.Linear(w.shape[1], w.shape[0], bias=b is not None)
    with torch.no_grad():
        lin.weight.copy_(torch.from_numpy(np.ascontiguousarray(w, dtype=np.float32)))
        if b is not None:
            lin.bias.copy_(torch.from_numpy(np.ascontiguousarray(b, dtype=np.float32)))
    return lin


def _conv(gr: _Graph, i: int) -> nn.Module:
    nm, a = gr.names[i], _attrs(gr.g.node[i])
    w, b = gr.const(i, 1, "weight"), gr.const(i, 2, "bias")
    pads = list(a.get("pads", [0, 0, 0, 0]))
    auto_pad = a.get("auto_pad", "NOTSET")
    if auto_pad == "VALID":
        pads = [0, 0, 0, 0]
    ok = w.ndim == 4 and a.get("group", 1) == 1 and all(d == 1 for d in a.get("dilations", [1, 1])) \
        and auto_pad in ("NOTSET", "VALID") and len(pads) == 4 and pads[:2] == pads[2:] \
        and list(a.get("kernel_shape", w.shape[2:])) == list(w.shape[2:])
    if not ok:
        raise UnsupportedOperator(f"Conv(weight {list(w.shape)}, group={a.get('group', 1)}, dilations="
                                  f"{a.get('dilations', [1, 1])}, pads={pads}, auto_pad={auto_pad}); only 2-D, "
                                  "group 1, dilations 1, symmetric pads", nm, _SUPPORTED_MSG, gr.path)
    conv = nn.Conv2d(w.shape[1], w.shape[0], tuple(w.shape[2:]), stride=tuple(a.get("strides", (1, 1))),
                     padding=tuple(pads[:2]), bias=b is not None)
    with torch.no_grad():
        conv.weight.copy_(torch.from_numpy(w.astype(np.float32)))
        if b is not None:
            conv.bias.copy_(torch.from_numpy(b.astype(np.float32).reshape(-1)))
    return conv


def _add_bias(gr: _Graph, i: int, layer: nn.Module | None, shape: tuple) -> None:
    """Fold ``Add(x, c)`` into the bias of ``layer`` (the affine layer that produced x)."""
    node, nm = gr.g.node[i], gr.names[i]
    pos = 1 if gr.kind.get(node.input[0]) == "data" else 0
    c = gr.const(i, pos, "addend")
    if layer is None:
        raise UnsupportedOperator("Add (only a constant bias right after MatMul/Gemm/Conv)", nm,
                                  _SUPPORTED_MSG, gr.path)
    n = layer.weight.shape[0]
    full = (1, *shape)
    cc = c.reshape((1,) * (len(full) - c.ndim) + c.shape) if c.ndim <= len(full) else None
    ok = cc is not None and cc.shape[0] == 1 and cc.shape[1] in (1, n) and all(d == 1 for d in cc.shape[2:])
    if not ok:
        raise UnsupportedOperator(f"Add of a constant of shape {list(c.shape)} (a bias must broadcast as "
                                  f"[{n}] per output channel)", nm, _SUPPORTED_MSG, gr.path)
    bias = torch.from_numpy(np.broadcast_to(cc.reshape(-1), (n,)).astype(np.float32).copy())
    if layer.bias is None:
        layer.bias = nn.Parameter(torch.zeros(n))
    with torch.no_grad():
        layer.bias.add_(bias)


def _layer(gr: _Graph, i: int, shape: tuple, shapes: dict) -> nn.Module:
    """Translate data node ``i`` (input per-sample ``shape``) to a raw torch layer."""
    node, nm, a = gr.g.node[i], gr.names[i], _attrs(gr.g.node[i])
    op = node.op_type
    if op in ("Gemm", "MatMul", "Conv", "Reshape") and gr.kind.get(node.input[0]) != "data":
        raise UnsupportedOperator(f"{op} with a constant first input (the data must come first)", nm,
                                  _SUPPORTED_MSG, gr.path)
    if op == "Gemm":
        if a.get("transA", 0):
            raise UnsupportedOperator("Gemm(transA=1)", nm, _SUPPORTED_MSG, gr.path)
        w, c = gr.const(i, 1, "weight B"), gr.const(i, 2, "bias C")
        w = a.get("alpha", 1.0) * (w if a.get("transB", 0) else w.T)
        if c is None:
            return _linear(w, None)
        c = c[0] if c.ndim == 2 and c.shape[0] == 1 else c
        if c.ndim > 1 or c.size not in (1, w.shape[0]):
            raise UnsupportedOperator(f"Gemm with bias C of shape {list(c.shape)} (need [{w.shape[0]}])",
                                      nm, _SUPPORTED_MSG, gr.path)
        return _linear(w, a.get("beta", 1.0) * np.broadcast_to(c, (w.shape[0],)))
    if op == "MatMul":
        w = gr.const(i, 1, "weight")
        if w.ndim != 2:
            raise UnsupportedOperator(f"MatMul with a {w.ndim}-D weight (need 2-D)", nm, _SUPPORTED_MSG, gr.path)
        return _linear(w.T, None)
    if op == "Conv":
        return _conv(gr, i)
    if op == "Relu":
        return nn.ReLU()
    if op == "Flatten":
        if a.get("axis", 1) != 1:
            raise UnsupportedOperator(f"Flatten(axis={a['axis']}) (only axis=1)", nm, _SUPPORTED_MSG, gr.path)
        return nn.Flatten()
    if op == "Reshape":
        batches = (gr.static_batch,) if gr.static_batch else (2, 3)
        for bsz in batches:
            target = gr.shape_value(node.input[1], bsz, shapes, {})
            out = _reshape_target(target, (bsz, *shape), a.get("allowzero", 0))
            if out != [bsz, math.prod(shape)]:
                raise UnsupportedOperator(f"Reshape to {out} for input {[bsz, *shape]} (only a flatten to "
                                          "[N, prod(rest)])", nm, _SUPPORTED_MSG, gr.path)
        return nn.Flatten()
    if op in ("AveragePool", "MaxPool"):
        k, s = _pool_attrs(gr, i)
        return nn.AvgPool2d(k, s) if op == "AveragePool" else nn.MaxPool2d(k, s)
    if op == "BatchNormalization":
        if a.get("training_mode", 0):
            raise UnsupportedOperator("BatchNormalization(training_mode=1)", nm, _SUPPORTED_MSG, gr.path)
        vals = [gr.const(i, p, w) for p, w in enumerate(["", "scale", "B", "mean", "var"]) if p]
        bn = (nn.BatchNorm1d if len(shape) == 1 else nn.BatchNorm2d)(vals[0].size, eps=a.get("epsilon", 1e-5))
        with torch.no_grad():
            for t, v in zip((bn.weight, bn.bias, bn.running_mean, bn.running_var), vals):
                t.copy_(torch.from_numpy(v.astype(np.float32).reshape(-1)))
        return bn.eval()
    if op in ("Identity", "Dropout"):
        return nn.Identity()
    raise UnsupportedOperator(op, nm, _SUPPORTED_MSG, gr.path)  # pragma: no cover - filtered earlier


def from_onnx(path) -> AnnModel:
    """Read an ONNX ReLU network into canonical form.

    ``input_shape`` is the graph input's shape without its batch dim (symbolic or fixed);
    ``layer_names`` are ONNX node names (``"#<index> <op>"`` for unnamed nodes).
    """
    path = os.fspath(path)
    try:
        proto = onnx.load(path)
        proto = onnx.shape_inference.infer_shapes(proto)
    except Exception as e:  # protobuf/IO errors have many types
        reason = " ".join(str(e).split()) or type(e).__name__
        raise InvalidModel(f"cannot read ONNX file '{path}': {reason}") from None
    gr = _Graph(proto, path)
    shapes = {gr.input.name: gr.input_shape}
    layers: list[tuple[str, nn.Module]] = []
    prev_affine = None  # the affine layer made by the previous data node, for Add fusion
    for i in gr.chain():
        node, nm = gr.g.node[i], gr.names[i]
        shape = shapes[next(x for x in node.input if gr.kind.get(x) == "data")]
        if node.op_type == "Add":
            _add_bias(gr, i, prev_affine, shape)
            shapes[node.output[0]] = shape
            continue
        layer = _layer(gr, i, shape, shapes)
        shapes[node.output[0]] = run_layer(nm, layer, shape, path)
        layers.append((nm, layer))
        prev_affine = layer if isinstance(layer, (nn.Linear, nn.Conv2d)) else None
    name = os.path.splitext(os.path.basename(path))[0]
    return canonicalize(layers, gr.input_shape, name, where=path)


def export_onnx(model: AnnModel, path, canonical: bool = True) -> None:
    """Write ``model`` as ONNX (opset 17): input ``"input"`` (N, *input_shape), output ``"logits"``.

    The batch axis is dynamic.  The file is written to a temporary file in the same folder and
    moved into place, so a failure never leaves a half-written file.  ``canonical=False`` writes a
    trained network that still holds its BatchNorms (eval mode; the ONNX frontend folds them when
    the model is loaded).
    """
    if canonical:
        check_canonical(model)
    path = os.fspath(path)
    folder = os.path.dirname(os.path.abspath(path))
    os.makedirs(folder, exist_ok=True)
    net = model.net
    was_training = net.training
    tmp = os.path.join(folder, f".{os.path.basename(path)}.{uuid.uuid4().hex}.tmp")
    try:
        net.eval()
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            torch.onnx.export(net, (torch.zeros((1, *model.input_shape)),), tmp, input_names=["input"],
                              output_names=["logits"], opset_version=17, dynamo=False,
                              dynamic_axes={"input": {0: "batch"}, "logits": {0: "batch"}})
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.remove(tmp)
        raise
    finally:
        net.train(was_training)
