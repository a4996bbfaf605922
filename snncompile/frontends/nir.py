"""Read spiking NIR graphs from other frameworks (norse, snnTorch, sinabs, eRBP output).

The result is a *view* of the NIR graph — populations (neuron nodes) and connections (the
chains of linear nodes between them) — not a second IR.  The reader

* accepts LIF, CubaLIF, IF, LI, CubaLI, I and Threshold neurons; Affine, Linear, Conv2d,
  Flatten, SumPool2d, AvgPool2d and Scale linear nodes; Delay; feed-forward and recurrent
  edges;
* broadcasts scalar parameters (norse and snnTorch write scalars) to the population's
  shape, which it infers from the Input node through the linear nodes;
* reads a Flatten whose ``start_dim`` counts the batch dimension (sinabs, nirtorch) as the
  full flatten its consumer expects;
* raises UnsupportedOperator / InvalidModel naming the node for anything else.

Timing (docs/nir.md): time advances in steps of ``dt``; every connection into a population
is a synapse with one step of delay (as Lava's Dense), plus ``round(delay / dt)`` steps for
each Delay node on the path.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass, field

import nir
import numpy as np
import torch

from ..errors import InvalidModel, UnsupportedOperator
from ..ir import get_meta
from ..nirops import LINEAR_NODES, apply_chain
from ..validation.nir_graph import validate_graph

NEURON_KINDS = {nir.LIF: "LIF", nir.CubaLIF: "CubaLIF", nir.IF: "IF", nir.LI: "LI", nir.CubaLI: "CubaLI",
                nir.I: "I", nir.Threshold: "Threshold"}
SPIKING_KINDS = ("LIF", "CubaLIF", "IF", "Threshold")
PARAMS = {
    "LIF": ("tau", "r", "v_leak", "v_threshold", "v_reset"),
    "CubaLIF": ("tau_syn", "tau_mem", "r", "v_leak", "v_threshold", "v_reset", "w_in"),
    "IF": ("r", "v_threshold", "v_reset"),
    "LI": ("tau", "r", "v_leak"),
    "CubaLI": ("tau_syn", "tau_mem", "r", "v_leak", "w_in"),
    "I": ("r",),
    "Threshold": ("threshold",),
}
SUPPORTED = sorted({*NEURON_KINDS.values(), *(t.__name__ for t in LINEAR_NODES), "Delay", "Input", "Output"})


@dataclass
class Population:
    name: str
    kind: str
    shape: tuple
    params: dict = field(default_factory=dict)  # float64 arrays of ``shape``

    @property
    def spiking(self) -> bool:
        return self.kind in SPIKING_KINDS

    @property
    def neurons(self) -> int:
        return int(np.prod(self.shape))


@dataclass
class Connection:
    src: str           # a population name, or the Input node's name
    dst: str
    ops: list          # [(name, node)] linear nodes in order (Flatten normalized)
    delay: int         # steps: 1 (the synapse) + Delay nodes
    src_shape: tuple
    from_input: bool = False
    bias: np.ndarray | None = None  # constant output of the chain for a zero input (Affine biases)


@dataclass
class SpikingNet:
    graph: nir.NIRGraph
    meta: dict
    dt: float
    input_name: str
    input_shape: tuple
    populations: dict
    connections: list
    readout: str
    depth: int

    @property
    def readout_kind(self) -> str:
        return "count" if self.populations[self.readout].spiking else "mean_v"

    def depth_of(self) -> dict:
        return depths(self.populations, self.connections, self.input_name)

    def incoming(self, name: str) -> list:
        return [c for c in self.connections if c.dst == name]


def _node_kind(name, node):
    if isinstance(node, tuple(NEURON_KINDS)):
        return "neuron"
    if isinstance(node, LINEAR_NODES):
        return "linear"
    if isinstance(node, nir.Delay):
        return "delay"
    if isinstance(node, nir.Input):
        return "input"
    if isinstance(node, nir.Output):
        return "output"
    raise UnsupportedOperator(type(node).__name__, name, SUPPORTED, where="NIR graph")


def _shape_of(v) -> tuple:
    return tuple(int(s) for s in np.ravel(np.asarray(v)))


def _apply_shape(ops, shape):
    with torch.no_grad():
        y = apply_chain(ops, torch.zeros((1, *shape), dtype=torch.float64), with_bias=False)
    return tuple(y.shape[1:])


def _normalize_flatten(name, node, shape, next_node):
    """Flatten with start_dim counting the batch (start_dim >= 1 on a sample of rank >= 2 whose
    consumer wants a flat vector) becomes the full flatten NIR means (start_dim 0)."""
    if int(node.start_dim) == 0 or len(shape) < 2:
        return node
    if isinstance(next_node, (nir.Affine, nir.Linear)):
        want = np.asarray(next_node.weight).shape[-1]
        if want == int(np.prod(shape)):
            out = copy.copy(node)
            out.start_dim, out.end_dim = 0, -1
            return out
    return node


def read_spiking_graph(graph: nir.NIRGraph, dt: float = 1.0) -> SpikingNet:
    """The populations and connections of a spiking NIR graph; errors name the node."""
    if not isinstance(graph, nir.NIRGraph):
        raise InvalidModel(f"expected a NIRGraph, got {type(graph).__name__}")
    if dt is None or not dt > 0:
        raise InvalidModel(f"--dt must be a positive time step, got {dt}")
    kinds = {name: _node_kind(name, node) for name, node in graph.nodes.items()}
    validate_graph(graph, thresholds=False)  # edges, values, shapes, metadata: one line naming the node
    succ: dict = {name: [] for name in graph.nodes}
    pred: dict = {name: [] for name in graph.nodes}
    for edge in graph.edges:
        if len(edge) != 2:
            raise InvalidModel(f"malformed edge {edge!r}")
        a, b = edge
        for end in (a, b):
            if end not in graph.nodes:
                raise InvalidModel(f"edge ({a!r}, {b!r}) refers to a missing node {end!r}")
        succ[a].append(b)
        pred[b].append(a)
    inputs = [n for n, k in kinds.items() if k == "input"]
    outputs = [n for n, k in kinds.items() if k == "output"]
    if len(inputs) != 1 or len(outputs) != 1:
        raise InvalidModel(f"expected one Input and one Output node, found {len(inputs)} and {len(outputs)}")
    for name, k in kinds.items():
        if k == "linear" and len(pred[name]) > 1:
            bias = getattr(graph.nodes[name], "bias", None)
            if bias is not None and np.any(np.asarray(bias) != 0):
                raise UnsupportedOperator(f"{type(graph.nodes[name]).__name__} with a bias and {len(pred[name])} inputs",
                                          name, ["linear nodes with one input, or bias-free ones"])
        if k in ("linear", "delay", "neuron", "input") and not succ[name]:
            raise InvalidModel(f"node {name!r} has no outgoing edge (dangling)")
        if k in ("linear", "delay", "neuron", "output") and not pred[name]:
            raise InvalidModel(f"node {name!r} has no incoming edge (unreachable)")
    input_name = inputs[0]
    in_type = graph.nodes[input_name].input_type.get("input") if graph.nodes[input_name].input_type else None
    if in_type is None or np.size(in_type) == 0:
        raise InvalidModel(f"Input node {input_name!r} has no shape")
    input_shape = _shape_of(in_type)
    input_shape = _strip_batch(input_shape, [graph.nodes[n] for n in succ[input_name]])

    # walk from every source through linear/delay nodes to the next population (or the Output)
    def paths_from(src):
        found = []
        stack = [(nxt, [], 0, (src,)) for nxt in succ[src]]
        while stack:
            node_name, ops, delay, seen = stack.pop()
            if node_name in seen and kinds[node_name] in ("linear", "delay"):
                raise InvalidModel(f"cycle through {node_name!r} without a neuron in it")
            k = kinds[node_name]
            if k in ("neuron", "output"):
                found.append((node_name, ops, delay))
                continue
            if k == "input":
                raise InvalidModel(f"edge into the Input node {node_name!r}")
            node = graph.nodes[node_name]
            if k == "delay":
                d = np.unique(np.asarray(node.delay, dtype=np.float64)) / dt
                if len(d) != 1 or abs(d[0] - round(d[0])) > 1e-6 or d[0] < 0:
                    raise UnsupportedOperator("Delay", node_name, ["one delay per node, a multiple of dt"])
                stack += [(n, ops, delay + int(round(d[0])), seen + (node_name,)) for n in succ[node_name]]
            else:
                stack += [(n, ops + [(node_name, node)], delay, seen + (node_name,)) for n in succ[node_name]]
        return found

    populations: dict = {}
    connections: list = []
    readout = None
    queue = [(input_name, input_shape)]
    done = set()
    pending: dict = {}
    while queue:
        src, shape = queue.pop(0)
        if src in done:
            continue
        done.add(src)
        for dst, ops, delay in paths_from(src):
            norm_ops = []
            cur = shape
            for i, (n, node) in enumerate(ops):
                if isinstance(node, nir.Flatten):
                    nxt = ops[i + 1][1] if i + 1 < len(ops) else None
                    node = _normalize_flatten(n, node, cur, nxt)
                norm_ops.append((n, node))
                try:
                    cur = _apply_shape([(n, node)], cur)
                except Exception as exc:  # a shape error names the node
                    msg = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
                    raise InvalidModel(f"node {n!r} ({type(node).__name__}) cannot take input shape {cur}: {msg}") \
                        from None
            if kinds[dst] == "output":
                if ops:
                    raise UnsupportedOperator("linear readout", ops[-1][0], ["Output fed directly by a neuron node"])
                if src == input_name:
                    raise InvalidModel("the Output node is fed by the Input node directly")
                readout = src
                continue
            with torch.no_grad():
                bias = apply_chain(norm_ops, torch.zeros((1, *shape), dtype=torch.float64)).reshape(-1).numpy()
            connections.append(Connection(src, dst, norm_ops, 1 + delay, shape, src == input_name,
                                          bias if np.any(bias != 0) else None))
            if dst in pending and pending[dst] != cur:
                raise InvalidModel(f"node {dst!r} receives inputs of different shapes {pending[dst]} and {cur}")
            pending[dst] = cur
            if dst not in populations:
                populations[dst] = _population(dst, graph.nodes[dst], cur)
                queue.append((dst, cur))
    unreached = [n for n, k in kinds.items() if k == "neuron" and n not in populations]
    if unreached:
        raise InvalidModel(f"neuron node(s) not reachable from the Input: {', '.join(unreached)}")
    if readout is None:
        raise InvalidModel("the Output node is not fed by a neuron node")
    depth = _depth(populations, connections, input_name)
    return SpikingNet(graph, get_meta(graph), float(dt), input_name, input_shape, populations, connections,
                      readout, depth)


def _strip_batch(shape: tuple, consumers: list) -> tuple:
    """norse's to_nir records the sample's batch dimension in the Input shape ((1, 64), (1, C, H, W));
    drop a leading 1 when the consumers show that it is one."""
    if len(shape) < 2 or shape[0] != 1:
        return shape
    rest = shape[1:]
    for node in consumers:
        if isinstance(node, (nir.Affine, nir.Linear)) and np.asarray(node.weight).shape[-1] == int(np.prod(rest)) \
                and len(rest) == 1:
            return rest
        if isinstance(node, nir.Conv2d) and len(rest) == 3 and np.asarray(node.weight).shape[1] == rest[0]:
            return rest
    return shape


def _population(name, node, shape) -> Population:
    kind = NEURON_KINDS[type(node)]
    params = {}
    for p in PARAMS[kind]:
        val = getattr(node, p, None)
        if val is None:
            val = 0.0 if p in ("v_reset", "v_leak") else 1.0
        arr = np.asarray(val.detach().cpu().numpy() if hasattr(val, "detach") else val, dtype=np.float64)
        try:
            arr = np.broadcast_to(arr.reshape(arr.shape) if arr.size != int(np.prod(shape)) else arr.reshape(shape),
                                  shape).copy()
        except ValueError:
            raise InvalidModel(f"node {name!r} ({kind}): parameter {p} has shape {arr.shape}, but the population "
                               f"has shape {shape}") from None
        if not np.all(np.isfinite(arr)) and not (p == "v_threshold" and np.all(np.isinf(arr) | np.isfinite(arr))):
            raise InvalidModel(f"node {name!r} ({kind}): parameter {p} is not finite")
        if p.startswith("tau") and np.any(arr <= 0):
            raise InvalidModel(f"node {name!r} ({kind}): {p} must be > 0")
        params[p] = arr
    return Population(name, kind, tuple(shape), params)


def _depth(populations, connections, input_name) -> int:
    """Longest delay path from the Input to any population over the forward edges (edges to a
    population discovered later in breadth-first order); recurrent edges are ignored."""
    return max(depths(populations, connections, input_name).values())


def depths(populations, connections, input_name) -> dict:
    """Per population: the longest delay path from the Input over the forward edges."""
    rank = {input_name: 0, **{name: i + 1 for i, name in enumerate(populations)}}
    best = {input_name: 0}
    for name in populations:  # breadth-first order is a topological order of the forward edges
        for c in connections:
            if c.dst == name and rank[c.src] < rank[name] and c.src in best:
                best[name] = max(best.get(name, 0), best[c.src] + c.delay)
    return best


def repair_graph(graph: nir.NIRGraph, dt: float = 1.0) -> nir.NIRGraph:
    """A copy of a spiking graph that ``nir.write`` accepts: torch tensors become numpy arrays and
    scalar neuron parameters are broadcast to the inferred population shape (the repair NIR issue
    #176 asks of norse/snnTorch users); node types are set from the inferred shapes."""
    g = copy.deepcopy(graph)
    for node in g.nodes.values():
        for key, val in list(vars(node).items()):
            if key not in ("metadata", "input_type", "output_type") and hasattr(val, "detach"):
                setattr(node, key, val.detach().cpu().numpy().astype(np.float64))
    net = read_spiking_graph(g, dt)
    g.nodes[net.input_name].input_type = {"input": np.array(net.input_shape)}
    g.nodes[net.input_name].output_type = {"output": np.array(net.input_shape)}
    out_name = next(n for n, node in g.nodes.items() if isinstance(node, nir.Output))
    ro_shape = np.array(net.populations[net.readout].shape)
    g.nodes[out_name].input_type = {"input": ro_shape}
    g.nodes[out_name].output_type = {"output": ro_shape}
    for name, pop in net.populations.items():
        node = g.nodes[name]
        for key, arr in pop.params.items():
            setattr(node, key, arr.copy())
        node.input_type = {"input": np.array(pop.shape)}
        node.output_type = {"output": np.array(pop.shape)}
    for c in net.connections:
        for n, node in c.ops:
            if isinstance(node, nir.Flatten):
                g.nodes[n].start_dim, g.nodes[n].end_dim = node.start_dim, node.end_dim
                g.nodes[n].input_type = {"input": np.array(c.src_shape)}
    for node in g.nodes.values():
        for key, val in list(vars(node).items()):
            if isinstance(val, np.ndarray) and val.ndim == 0 and key not in ("metadata",):
                setattr(node, key, val.reshape(1))
    return g
