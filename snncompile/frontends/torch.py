"""PyTorch frontend: a feed-forward ``nn.Module`` -> :class:`AnnModel`.

The module is traced with ``torch.fx.symbolic_trace`` (nested ``nn.Sequential`` containers are
traced through, so their leaves appear with dotted paths such as ``features.0``).  The traced
graph must be one chain from the single input to the output, made of

* ``call_module`` nodes of a supported type (:data:`SUPPORTED`),
* ``torch.relu`` / ``F.relu`` / ``x.relu()``,
* flattens: ``torch.flatten(x, 1)``, ``x.flatten(1)``, ``x.view(x.size(0), -1)``,
  ``x.reshape(x.shape[0], -1)`` (and ``torch.reshape``); the ``size``/``shape`` lookups they use
  are dropped.

The user's module is deep-copied and never modified; the result is in eval mode.
"""

from __future__ import annotations

import copy
import operator

import torch
import torch.nn.functional as F
from torch import fx, nn

from ..errors import InvalidModel, UnsupportedOperator
from .canonical import SUPPORTED_MODULES, AnnModel, canonicalize

SUPPORTED = SUPPORTED_MODULES + ["torch.relu", "F.relu", "torch.flatten(x, 1)", "x.view(x.size(0), -1)",
                                 "x.reshape(x.shape[0], -1)", "x.flatten(1)"]
_MODULE_TYPES = tuple(getattr(nn, n) for n in SUPPORTED_MODULES)
_RELU_FUNCS = (torch.relu, F.relu, torch.relu_, F.relu_)


def _is_batch_size(node) -> bool:
    """True if ``node`` computes ``t.size(0)`` or ``t.shape[0]`` of a tensor ``t``.

    Every tensor on the chain has the same batch size, so ``t`` may be any of them (e.g.
    ``n = x.size(0)`` taken at the top of ``forward``).
    """
    if not isinstance(node, fx.Node):
        return False
    if node.op == "call_method" and node.target == "size" and len(node.args) >= 1:
        dim = node.args[1] if len(node.args) > 1 else node.kwargs.get("dim")
        return dim == 0
    if node.op == "call_function" and node.target is operator.getitem and node.args[1] == 0:
        base = node.args[0]
        if not isinstance(base, fx.Node):
            return False
        if base.op == "call_function" and base.target is getattr and base.args[1:] == ("shape",):
            return True
        return base.op == "call_method" and base.target == "size" and len(base.args) == 1 \
            and not base.kwargs
    return False


def _is_lookup(node: fx.Node) -> bool:
    """``t.size(...)``, ``t.shape`` or an index into one of them."""
    if node.op == "call_method" and node.target == "size":
        return True
    if node.op == "call_function" and node.target is getattr and node.args[1:] == ("shape",):
        return True
    return node.op == "call_function" and node.target is operator.getitem and \
        isinstance(node.args[0], fx.Node) and _is_lookup(node.args[0])


def _is_flatten(node: fx.Node, src: fx.Node) -> bool:
    """True if ``node`` flattens ``src`` to (N, -1) (the size lookups it uses are dropped)."""
    args, kw = list(node.args), dict(node.kwargs)
    if node.op == "call_function" and node.target is torch.flatten or \
            node.op == "call_method" and node.target == "flatten":
        start = args[1] if len(args) > 1 else kw.get("start_dim", 0)
        end = args[2] if len(args) > 2 else kw.get("end_dim", -1)
        return args[:1] == [src] and (start, end) == (1, -1)
    is_reshape = (node.op == "call_method" and node.target in ("view", "reshape")) or \
        (node.op == "call_function" and node.target is torch.reshape)
    if not is_reshape or args[:1] != [src]:
        return False
    dims = args[1:] if args[1:] else [kw.get("shape", kw.get("size"))]
    if len(dims) == 1 and isinstance(dims[0], (tuple, list)):
        dims = list(dims[0])
    return len(dims) == 2 and dims[1] == -1 and _is_batch_size(dims[0])


def _op_name(node: fx.Node, gm: fx.GraphModule) -> str:
    if node.op == "call_module":
        return type(gm.get_submodule(node.target)).__name__
    if node.op == "call_function":
        return getattr(node.target, "__name__", str(node.target))
    return str(node.target)


def _chain(gm: fx.GraphModule, where: str) -> list[tuple[str, nn.Module]]:
    """Walk the traced graph as one chain; return the raw ``[(name, module)]`` list."""
    nodes = list(gm.graph.nodes)
    inputs = [n for n in nodes if n.op == "placeholder"]
    if len(inputs) != 1:
        raise InvalidModel(f"{where}: forward must take exactly one tensor input, "
                           f"got {len(inputs)} ({', '.join(n.name for n in inputs)})")
    layers: list[tuple[str, nn.Module]] = []
    used = {inputs[0]}
    cur = inputs[0]
    while True:
        main = [u for u in cur.users if u not in used and not _is_lookup(u)]
        if len(main) != 1:
            names = ", ".join(u.name for u in main) or "nothing"
            raise InvalidModel(f"{where}: the graph is not a single chain at node {cur.name!r} "
                               f"(its output feeds {names})")
        node = main[0]
        if node.op == "output":
            if node.args[0] is not cur:
                raise InvalidModel(f"{where}: forward must return one tensor (the logits), "
                                   f"got {node.args[0]!r}")
            used.add(node)
            break
        layers.append(_layer(gm, node, cur, where))
        used.add(node)
        cur = node
    left = [n.name for n in nodes if n not in used and not _is_lookup(n)]  # unused size() lookups are harmless
    if left:
        raise InvalidModel(f"{where}: the graph is not a single chain; nodes outside it: {', '.join(left)}")
    return layers


def _layer(gm, node: fx.Node, src: fx.Node, where: str) -> tuple[str, nn.Module]:
    """Translate one chain node fed by ``src`` into ``(name, module)``."""
    if node.op == "call_module":
        m = gm.get_submodule(node.target)
        if type(m) not in _MODULE_TYPES:
            raise UnsupportedOperator(type(m).__name__, node.target, SUPPORTED, where)
        if node.args != (src,) or node.kwargs:
            raise InvalidModel(f"{where}: module {node.target!r} must be called on the previous "
                               "layer's output alone")
        return node.target, m
    if node.op == "call_function" and node.target in _RELU_FUNCS or \
            node.op == "call_method" and node.target in ("relu", "relu_"):
        if node.args[:1] != (src,) or len(node.args) > 2:
            raise InvalidModel(f"{where}: relu at node {node.name!r} must take the previous output")
        return node.name, nn.ReLU()
    if node.op in ("call_function", "call_method") and _is_flatten(node, src):
        return node.name, nn.Flatten()
    raise UnsupportedOperator(_op_name(node, gm), node.name, SUPPORTED, where)


def from_torch(module: nn.Module, input_shape, name: str | None = None) -> AnnModel:
    """Convert a feed-forward ``module`` taking ``(N, *input_shape)`` to an :class:`AnnModel`.

    ``layer_names`` are module paths (``features.0``) or fx node names for functional ReLUs and
    flattens.  BatchNorm is folded, Dropout/Identity dropped (see ``canonical``).
    """
    if not isinstance(module, nn.Module):
        raise InvalidModel(f"from_torch needs an nn.Module, got {type(module).__name__}")
    where = f"module {type(module).__name__}"
    m = copy.deepcopy(module).eval()
    try:
        gm = fx.symbolic_trace(m)
    except Exception as e:  # tracing errors come from the user's forward
        msg = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        raise InvalidModel(f"{where}: cannot trace forward with torch.fx (it must be a plain "
                           f"feed-forward chain without data-dependent control flow): {msg}") from None
    layers = _chain(gm, where)
    if name is None:
        name = "ann" if type(module) is nn.Sequential else type(module).__name__
    return canonicalize(layers, input_shape, name, where)
