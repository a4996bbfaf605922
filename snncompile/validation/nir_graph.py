"""Structure and values of a NIR graph, checked right after reading it (before any pass).

* edges: pairs of existing node names, no duplicates (a repeated edge would silently double a
  connection), no dangling or unreachable nodes;
* values: every numeric parameter finite (NaN never; +inf only where it means "never": a
  threshold, a time constant), integer-valued sizes, positive input shapes of a sane size;
* per node: weight / bias / kernel / stride / padding / groups consistent, neuron parameters a
  scalar or one per neuron;
* shapes: propagated from every Input along every edge by the nodes' own rules (no tensors are
  allocated), so a shape that does not connect is named by its edge, not a torch traceback;
* ``metadata["snncompile"]``: an object whose known fields have the documented types (docs/nir.md),
  with the fields each TTFS neuron role needs.

Everything raises :class:`~snncompile.errors.InvalidModel` naming the file, node, field, value and rule.
"""

from __future__ import annotations

import math
import numbers

import nir
import numpy as np

from .. import METADATA_KEY
from ..errors import InvalidModel

SHAPE_DIM_MAX = 1 << 20          # one dimension of a sample
SHAPE_NUMEL_MAX = 1 << 24        # values per sample
INF_OK = {"v_threshold", "threshold", "tau", "tau_mem", "tau_syn"}  # +inf means "never fires" / "no leak"
NEURON_TYPES = (nir.LIF, nir.CubaLIF, nir.IF, nir.LI, nir.CubaLI, nir.I, nir.Threshold)
SPIKING_TYPES = (nir.LIF, nir.CubaLIF, nir.IF, nir.Threshold)
ROLES = ("hidden", "maxpool", "readout")
ROLE_FIELDS = {"hidden": ("t_min", "t_max", "B", "hold"), "readout": ("t_min", "hold"), "maxpool": ("t_min", "t_max")}
ENCODINGS = ("regular", "rate", "latency")


def _where(where: str) -> str:
    return f"{where}: " if where else ""


def as_array(v):
    """A parameter as a float64 numpy array (torch tensors, lists and scalars too); None stays None."""
    if v is None:
        return None
    if hasattr(v, "detach"):
        v = v.detach().cpu().numpy()
    try:
        return np.asarray(v, dtype=np.float64)
    except (TypeError, ValueError, OverflowError):
        return None


# ---- metadata ----------------------------------------------------------------------------------

def is_num(v) -> bool:
    return isinstance(v, numbers.Real) and not isinstance(v, bool) and math.isfinite(float(v))


def is_int(v) -> bool:
    return isinstance(v, numbers.Integral) and not isinstance(v, bool)


def raw_meta(obj, what: str, where: str = "") -> dict:
    """Our metadata of a node or graph as a dict; InvalidModel when it is not a JSON object."""
    from ..ir import get_meta

    try:
        meta = get_meta(obj)
    except InvalidModel as exc:
        raise InvalidModel(f"{_where(where)}{what}: {exc}") from None
    if not isinstance(meta, dict):
        raise InvalidModel(f"{_where(where)}{what}: metadata[{METADATA_KEY!r}] is a {type(meta).__name__}; "
                           "rule: it must be a JSON object")
    return meta


GRAPH_FIELDS = {
    "format": (lambda v: isinstance(v, str), "a string"),
    "quantized": (lambda v: isinstance(v, bool), "true or false"),
    "steps": (lambda v: is_int(v) and 1 <= v <= 1024, "an integer in 1..1024"),
    "dt": (lambda v: is_num(v) and v > 0, "a positive finite number"),
    "profile": (lambda v: isinstance(v, str) and v != "", "a profile name"),
    "arithmetic": (lambda v: isinstance(v, str), "a string"),
    "zeta": (lambda v: is_num(v) and v >= 0, "a finite number >= 0"),
    "t_total": (lambda v: is_int(v) and 1 <= v <= 10**6, "an integer in 1..1000000"),
    "encoding": (lambda v: isinstance(v, dict), "an object"),
    "layers": (lambda v: isinstance(v, list), "a list"),
    "populations": (lambda v: isinstance(v, list) and all(isinstance(x, str) for x in v), "a list of names"),
    "connections": (lambda v: isinstance(v, list) and all(isinstance(x, str) for x in v), "a list of names"),
    "quantization": (lambda v: isinstance(v, list), "a list"),
    "weight_split": (lambda v: v == "all" or (isinstance(v, list) and all(isinstance(x, str) for x in v)),
                     '"all" or a list of connection names ({dst}_from_{src})'),
    "input_shape": (lambda v: isinstance(v, list) and all(is_int(x) and 0 < x <= SHAPE_DIM_MAX for x in v),
                    "a list of positive integers"),
    **{k: (lambda v: is_int(v) and 0 <= v <= 64, "an integer in 0..64") for k in (
        "weight_bits", "full_weight_bits", "state_bits", "act_shift", "bias_mant_bits", "bias_exp_bits",
        "headroom_bits", "decay_bits", "vth_shift")},
}
NODE_FIELDS = {
    "role": (lambda v: v in ROLES, f"one of {', '.join(ROLES)}"),
    **{k: (is_num, "a finite number") for k in ("t_min", "t_max", "X", "v_lsb", "pool_gain", "delta_in")},
    "B": (lambda v: is_num(v) and v > 0, "a positive finite number"),
    "hold": (lambda v: is_num(v) and v > 0, "a positive finite number"),
    "weight_scale": (lambda v: (is_num(v) and v > 0) or (isinstance(v, dict) and all(
        is_num(x) and x > 0 for x in v.values())), "a positive finite number or {bits: scale}"),
    "delta_out": (lambda v: v is None or is_num(v), "a finite number or null"),
    **{k: (is_int, "an integer") for k in ("weight_exp", "slope", "threshold", "arrival", "t_in_end",
                                            "fire_start", "fire_end", "steps", "du", "dv", "vth_mant", "delay")},
    "fire_once": (lambda v: isinstance(v, bool), "true or false"),
    "always_on": (lambda v: isinstance(v, bool), "true or false"),
}


def check_meta_fields(meta: dict, schema: dict, what: str, where: str = "") -> None:
    for key, (ok, rule) in schema.items():
        if key in meta and not ok(meta[key]):
            raise InvalidModel(f"{_where(where)}{what}: metadata field {key!r} = {meta[key]!r}; rule: {rule}")


def check_metadata(graph: nir.NIRGraph, where: str = "") -> dict:
    """The graph's metadata schema (types of the known fields; per TTFS role the fields it needs)."""
    gm = raw_meta(graph, "graph", where)
    check_meta_fields(gm, GRAPH_FIELDS, "graph", where)
    enc = gm.get("encoding")
    if isinstance(enc, dict) and gm.get("format") != "snncompile-ttfs":
        if "type" in enc and enc["type"] not in ENCODINGS:
            raise InvalidModel(f"{_where(where)}graph: metadata encoding.type = {enc['type']!r}; rule: one of "
                               f"{', '.join(ENCODINGS)}")
        if "steps" in enc and not (is_int(enc["steps"]) and 1 <= enc["steps"] <= 4096):
            raise InvalidModel(f"{_where(where)}graph: metadata encoding.steps = {enc['steps']!r}; rule: an "
                               "integer in 1..4096")
    ttfs = gm.get("format") == "snncompile-ttfs"
    for name, node in graph.nodes.items():
        meta = raw_meta(node, f"node {name!r}", where)
        check_meta_fields(meta, NODE_FIELDS, f"node {name!r}", where)
        if ttfs and isinstance(node, NEURON_TYPES):
            role = meta.get("role")
            if role not in ROLES:
                raise InvalidModel(f"{_where(where)}node {name!r} ({type(node).__name__}): metadata role = {role!r}; "
                                   f"rule: a TTFS neuron node has a role in {', '.join(ROLES)}")
            missing = [k for k in ROLE_FIELDS[role] if k not in meta]
            if missing:
                raise InvalidModel(f"{_where(where)}node {name!r}: metadata lacks {missing[0]!r}; rule: a {role} "
                                   f"TTFS node carries {', '.join(ROLE_FIELDS[role])}")
            if role == "hidden" and not meta["t_max"] > meta["t_min"]:
                raise InvalidModel(f"{_where(where)}node {name!r}: t_max = {meta['t_max']} <= t_min = "
                                   f"{meta['t_min']}; rule: a window has positive length")
    return gm


# ---- values ------------------------------------------------------------------------------------

def _params(node) -> dict:
    out = {}
    for key, val in vars(node).items():
        if key in ("metadata", "input_type", "output_type") or isinstance(val, (str, bool)) or val is None:
            continue
        arr = as_array(val)
        if arr is not None and arr.dtype.kind == "f":
            out[key] = arr
    return out


def check_values(graph: nir.NIRGraph, where: str = "", foreign: bool = False) -> None:
    """Finite parameters (+inf only for thresholds and time constants), positive time constants and,
    in foreign (LIF-family) graphs, spiking thresholds > 0."""
    for name, node in graph.nodes.items():
        kind = type(node).__name__
        for key, arr in _params(node).items():
            if key in ("input_shape",):
                continue
            bad = np.isnan(arr) | (np.isinf(arr) & ((arr < 0) | (key not in INF_OK)))
            if np.any(bad):
                v = arr[bad].ravel()[0]
                raise InvalidModel(f"{_where(where)}node {name!r} ({kind}): {key} contains {v}; rule: parameters are "
                                   f"finite{' (+inf allowed: never)' if key in INF_OK else ''}")
            if key.startswith("tau") and np.any(arr <= 0):
                raise InvalidModel(f"{_where(where)}node {name!r} ({kind}): {key} = {arr[arr <= 0].ravel()[0]:g}; "
                                   "rule: time constants are > 0")
            if key in ("v_threshold", "threshold") and foreign and isinstance(node, SPIKING_TYPES) \
                    and np.any(arr <= 0):
                raise InvalidModel(f"{_where(where)}node {name!r} ({kind}): {key} = {arr[arr <= 0].ravel()[0]:g}; "
                                   "rule: a spiking neuron's threshold is > 0 (it would fire on every step)")


# ---- node structure and shapes -----------------------------------------------------------------

def _ints(v, name, field, where, lo, n=2):
    arr = as_array(v)
    if arr is None or arr.size == 0 or arr.size > n or np.any(~np.isfinite(arr)) or np.any(arr != np.round(arr)):
        raise InvalidModel(f"{_where(where)}node {name!r}: {field} = {v!r}; rule: {n == 2 and 'one or two ' or ''}"
                           f"integers >= {lo}")
    a = [int(x) for x in arr.ravel()]
    if any(x < lo for x in a) or any(x > SHAPE_DIM_MAX for x in a):
        raise InvalidModel(f"{_where(where)}node {name!r}: {field} = {a}; rule: integers in {lo}..{SHAPE_DIM_MAX}")
    return (a[0], a[0]) if len(a) == 1 else (a[0], a[1])


def shape_of(v, name: str, where: str = "", field: str = "input shape") -> tuple:
    arr = as_array(v)
    if arr is None or arr.ndim > 1 or arr.size == 0:
        raise InvalidModel(f"{_where(where)}node {name!r}: {field} {v!r}; rule: a list of positive integers")
    if np.any(~np.isfinite(arr)) or np.any(arr != np.round(arr)):
        raise InvalidModel(f"{_where(where)}node {name!r}: {field} {arr.tolist()}; rule: whole numbers (no fractions)")
    s = tuple(int(x) for x in arr)
    if any(x < 1 for x in s) or any(x > SHAPE_DIM_MAX for x in s) or math.prod(s) > SHAPE_NUMEL_MAX:
        raise InvalidModel(f"{_where(where)}node {name!r}: {field} {list(s)}; rule: dimensions in 1..{SHAPE_DIM_MAX}, "
                           f"at most {SHAPE_NUMEL_MAX} values per sample")
    return s


def _window(n_in, k, s, p, d, what):
    out = (n_in + 2 * p - d * (k - 1) - 1) // s + 1
    if out < 1:
        raise ValueError(f"{what}: input {n_in} with kernel {k}, padding {p}, dilation {d} leaves no output")
    return out


def out_shape(name: str, node, s: tuple, where: str = "") -> tuple:
    """The shape ``node`` produces from input shape ``s`` (NIR's rules, batch excluded; lenient where
    the frontends repair foreign exports: a leading batch 1, a Flatten feeding an Affine)."""
    kind = type(node).__name__
    loc = f"{_where(where)}node {name!r} ({kind})"
    numel = math.prod(s)
    if isinstance(node, (nir.Affine, nir.Linear)):
        w = as_array(node.weight)
        if w is None or w.ndim != 2 or 0 in w.shape:
            raise InvalidModel(f"{loc}: weight has shape {None if w is None else w.shape}; rule: a non-empty 2-D matrix")
        if isinstance(node, nir.Affine) and node.bias is not None:
            b = as_array(node.bias)
            if b is None or b.size not in (1, w.shape[0]):
                raise InvalidModel(f"{loc}: bias has {None if b is None else b.size} values, weight has {w.shape[0]} "
                                   "rows; rule: one bias per output")
        if s[-1] == w.shape[1]:
            return s[:-1] + (w.shape[0],)
        if numel == w.shape[1]:
            return (w.shape[0],)
        raise InvalidModel(f"{loc}: takes {w.shape[1]} inputs, its source delivers shape {list(s)}")
    if isinstance(node, nir.Conv2d):
        w = as_array(node.weight)
        if w is None or w.ndim != 4 or 0 in w.shape:
            raise InvalidModel(f"{loc}: weight has shape {None if w is None else w.shape}; rule: (out, in/groups, kh, kw)")
        if isinstance(node.padding, str):
            from ..errors import UnsupportedOperator

            raise UnsupportedOperator(f"Conv2d(padding={node.padding!r})", name, ["Conv2d with integer padding"])
        st = _ints(node.stride, name, "stride", where, 1)
        pd = _ints(node.padding, name, "padding", where, 0)
        dl = _ints(node.dilation, name, "dilation", where, 1)
        g = _ints(node.groups, name, "groups", where, 1, n=1)[0]
        if w.shape[0] % g:
            raise InvalidModel(f"{loc}: {w.shape[0]} output channels are not divisible by groups = {g}")
        if node.bias is not None:
            b = as_array(node.bias)
            if b is None or b.size not in (1, w.shape[0]):
                raise InvalidModel(f"{loc}: bias has {None if b is None else b.size} values for {w.shape[0]} output "
                                   "channels; rule: one bias per output channel")
        ss = s[1:] if len(s) == 4 and s[0] == 1 else s
        if len(ss) != 3 or ss[0] != w.shape[1] * g:
            raise InvalidModel(f"{loc}: expects (C={w.shape[1] * g}, H, W) input, its source delivers shape {list(s)}")
        try:
            h = _window(ss[1], int(w.shape[2]), st[0], pd[0], dl[0], "height")
            wd = _window(ss[2], int(w.shape[3]), st[1], pd[1], dl[1], "width")
        except ValueError as exc:
            raise InvalidModel(f"{loc}: {exc}") from None
        return (int(w.shape[0]), h, wd)
    if isinstance(node, (nir.SumPool2d, nir.AvgPool2d)):
        k = _ints(node.kernel_size, name, "kernel_size", where, 1)
        st = _ints(node.stride, name, "stride", where, 1)
        pd = _ints(node.padding, name, "padding", where, 0)
        if pd[0] > k[0] // 2 or pd[1] > k[1] // 2:
            raise InvalidModel(f"{loc}: padding {list(pd)} exceeds half the kernel {list(k)}; rule: padding <= kernel/2")
        ss = s[1:] if len(s) == 4 and s[0] == 1 else s
        if len(ss) != 3:
            raise InvalidModel(f"{loc}: expects (C, H, W) input, its source delivers shape {list(s)}")
        try:
            return (ss[0], _window(ss[1], k[0], st[0], pd[0], 1, "height"), _window(ss[2], k[1], st[1], pd[1], 1, "width"))
        except ValueError as exc:
            raise InvalidModel(f"{loc}: {exc}") from None
    if isinstance(node, nir.Flatten):
        nd = len(s)
        try:
            a, b = int(node.start_dim), int(node.end_dim)
        except (TypeError, ValueError):
            raise InvalidModel(f"{loc}: start_dim/end_dim {node.start_dim!r}, {node.end_dim!r}; rule: integers") from None
        a, b = a + nd if a < 0 else a, b + nd if b < 0 else b
        if not (0 <= a < nd and 0 <= b < nd) or a > b:
            if nd >= 1 and 0 <= a <= nd:  # start_dim counting the batch (sinabs, nirtorch): the full flatten
                return (numel,)
            raise InvalidModel(f"{loc}: start_dim {node.start_dim}, end_dim {node.end_dim} on a {nd}-D input "
                               f"{list(s)}; rule: 0 <= start_dim <= end_dim < rank")
        return s[:a] + (math.prod(s[a:b + 1]),) + s[b + 1:]
    if isinstance(node, nir.Scale):
        sc = as_array(node.scale)
        if sc is None or sc.size not in (1, numel, s[-1]):
            raise InvalidModel(f"{loc}: scale has {None if sc is None else sc.size} values for input {list(s)}")
        return s
    if isinstance(node, NEURON_TYPES):
        for key, arr in _params(node).items():
            if arr.size not in (1, numel) and arr.shape != s:
                try:
                    np.broadcast_to(arr, s)
                except ValueError:
                    raise InvalidModel(f"{loc}: parameter {key} has shape {list(arr.shape)}, the population has shape "
                                       f"{list(s)}; rule: a scalar or one value per neuron") from None
        return s
    return s  # Delay, Output, and types the family loaders reject by name


def check_structure(graph: nir.NIRGraph, where: str = "") -> dict:
    """Edges, reachability and shapes; returns {node name: input shape} for the nodes reached."""
    if not isinstance(graph, nir.NIRGraph):
        raise InvalidModel(f"{_where(where)}expected a NIRGraph, got {type(graph).__name__}")
    if not isinstance(graph.nodes, dict) or not graph.nodes:
        raise InvalidModel(f"{_where(where)}the graph has no nodes")
    for name in graph.nodes:
        if not isinstance(name, str) or not name:
            raise InvalidModel(f"{_where(where)}node name {name!r}; rule: a non-empty string")
    seen, succ, pred = set(), {n: [] for n in graph.nodes}, {n: [] for n in graph.nodes}
    for edge in graph.edges:
        if not isinstance(edge, (tuple, list)) or len(edge) != 2:
            raise InvalidModel(f"{_where(where)}malformed edge {edge!r}; rule: (source, destination)")
        a, b = (str(e) if isinstance(e, (str, np.str_)) else e for e in edge)
        for end in (a, b):
            if not isinstance(end, str) or end not in graph.nodes:
                raise InvalidModel(f"{_where(where)}edge ({a!r}, {b!r}) refers to a missing node {end!r}")
        if (a, b) in seen:
            raise InvalidModel(f"{_where(where)}edge ({a!r}, {b!r}) appears twice; rule: each connection once "
                               "(a repeated edge would double it)")
        seen.add((a, b))
        succ[a].append(b)
        pred[b].append(a)
    inputs = [n for n, node in graph.nodes.items() if isinstance(node, nir.Input)]
    outputs = [n for n, node in graph.nodes.items() if isinstance(node, nir.Output)]
    if not inputs or not outputs:
        raise InvalidModel(f"{_where(where)}the graph needs an Input and an Output node (found {len(inputs)} and "
                           f"{len(outputs)})")
    for name, node in graph.nodes.items():
        if not isinstance(node, nir.Output) and not succ[name]:
            raise InvalidModel(f"{_where(where)}node {name!r} ({type(node).__name__}) has no outgoing edge (dangling)")
        if not isinstance(node, nir.Input) and not pred[name]:
            raise InvalidModel(f"{_where(where)}node {name!r} ({type(node).__name__}) has no incoming edge (unreachable)")
        if isinstance(node, nir.Input) and pred[name]:
            raise InvalidModel(f"{_where(where)}edge ({pred[name][0]!r}, {name!r}) leads into an Input node")
    shapes: dict = {}
    queue = []
    for name in inputs:
        it = graph.nodes[name].input_type
        val = (it or {}).get("input") if isinstance(it, dict) else None
        if val is None or np.size(val) == 0:
            if name == "input" or len(inputs) == 1:
                raise InvalidModel(f"{_where(where)}Input node {name!r} has no shape")
            continue
        s = shape_of(val, name, where)
        shapes[name] = s
        queue.append((name, s))
    while queue:
        src, s_in = queue.pop(0)
        s_out = out_shape(src, graph.nodes[src], s_in, where) if src not in inputs else s_in
        for dst in succ[src]:
            if dst in shapes:
                if math.prod(shapes[dst]) != math.prod(s_out) and not isinstance(graph.nodes[dst], nir.Input):
                    raise InvalidModel(f"{_where(where)}node {dst!r} receives shape {list(shapes[dst])} and, along "
                                       f"edge ({src!r}, {dst!r}), shape {list(s_out)}; rule: shapes agree along every edge")
                continue
            shapes[dst] = s_out
            queue.append((dst, s_out))
    return shapes


def validate_graph(graph: nir.NIRGraph, where: str = "", thresholds: bool = True) -> dict:
    """Every check of this module; returns the graph metadata (a dict).  ``thresholds``: also require a
    foreign spiking neuron's threshold > 0 (the compile inputs; library views of hand-made graphs skip it)."""
    check_structure(graph, where)
    gm = check_metadata(graph, where)
    foreign = gm.get("format") not in ("snncompile-ttfs", "snncompile-lif-q") and not gm.get("quantized")
    check_values(graph, where, foreign=foreign and thresholds)
    return gm
