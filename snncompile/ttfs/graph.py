"""Read a TTFS NIR graph (ours, float or quantized) back into its layers.

A TTFS graph is a chain Input -> (linear nodes -> neuron node)* -> Output whose neuron
nodes carry metadata["snncompile"]["role"] in {hidden, maxpool, readout}.  This is a
view of the NIR graph, not a second IR: the nodes are the graph's own objects.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import nir
import numpy as np

from ..errors import InvalidModel
from ..ir import get_meta
from ..nirops import LINEAR_NODES, chain_shape
from .convert import FORMAT

ROLES = ("hidden", "maxpool", "readout")


@dataclass
class TtfsLayer:
    """One neuron node and the linear nodes that feed it."""

    name: str
    role: str
    node: object
    meta: dict
    ops: list = field(default_factory=list)  # [(name, node)] in order
    in_shape: tuple = ()
    out_shape: tuple = ()

    @property
    def neurons(self) -> int:
        return int(np.prod(self.out_shape))


@dataclass
class TtfsNet:
    graph: nir.NIRGraph
    meta: dict
    input_shape: tuple
    layers: list

    @property
    def quantized(self) -> bool:
        return bool(self.meta.get("quantized"))

    @property
    def readout(self) -> TtfsLayer:
        return self.layers[-1]

    @property
    def spiking(self) -> list:
        return [layer for layer in self.layers if layer.role != "readout"]


def is_ttfs_graph(graph) -> bool:
    return get_meta(graph).get("format") == FORMAT


def chain_order(graph: nir.NIRGraph) -> list[str]:
    """Node names from the single Input to the single Output; InvalidModel if not a chain."""
    inputs = [k for k, n in graph.nodes.items() if isinstance(n, nir.Input)]
    if len(inputs) != 1:
        raise InvalidModel(f"expected one Input node, found {len(inputs)}")
    succ: dict = {}
    for a, b in graph.edges:
        for end in (a, b):
            if end not in graph.nodes:
                raise InvalidModel(f"edge ({a!r}, {b!r}) refers to a missing node {end!r}")
        succ.setdefault(a, []).append(b)
    order, cur = [], inputs[0]
    seen = set()
    while True:
        order.append(cur)
        seen.add(cur)
        nxt = succ.get(cur, [])
        if isinstance(graph.nodes[cur], nir.Output):
            break
        if len(nxt) != 1:
            raise InvalidModel(f"node {cur!r} has {len(nxt)} successors; a TTFS graph is a chain")
        cur = nxt[0]
        if cur in seen:
            raise InvalidModel(f"node {cur!r} closes a cycle; a TTFS graph is feed-forward")
    if len(order) != len(graph.nodes):
        stray = sorted(set(graph.nodes) - set(order))
        raise InvalidModel(f"nodes not on the Input->Output chain: {', '.join(stray)}")
    return order


def _check_min_channels(name: str, role: str, mins, out_shape: tuple) -> None:
    """``min_channels`` (min-pool channels of a max-pool population): distinct channel indices."""
    if mins is None:
        return
    n_ch = out_shape[0] if len(out_shape) == 3 else 0
    if role != "maxpool" or not isinstance(mins, list) or len(set(map(repr, mins))) != len(mins) or not all(
            isinstance(c, int) and not isinstance(c, bool) and 0 <= c < n_ch for c in mins):
        raise InvalidModel(f"node {name!r}: metadata min_channels={mins!r} must be a list of distinct channel "
                           f"indices in 0..{n_ch - 1} of a maxpool population (role {role!r})")


def parse_ttfs(graph: nir.NIRGraph) -> TtfsNet:
    meta = get_meta(graph)
    if meta.get("format") != FORMAT:
        raise InvalidModel("not a snncompile TTFS graph (graph metadata lacks format "
                           f"{FORMAT!r}); foreign NIR graphs are read by snncompile.frontends.nir")
    order = chain_order(graph)
    shape = tuple(int(s) for s in np.asarray(graph.nodes[order[0]].input_type["input"]).ravel())
    layers, ops = [], []
    in_shape = shape
    for name in order[1:-1]:
        node = graph.nodes[name]
        if isinstance(node, LINEAR_NODES):
            ops.append((name, node))
            continue
        role = get_meta(node).get("role")
        if role not in ROLES:
            raise InvalidModel(f"node {name!r} ({type(node).__name__}) is neither a linear node nor a TTFS "
                               f"neuron (metadata role {role!r})")
        out_shape = chain_shape(ops, in_shape)
        _check_min_channels(name, role, get_meta(node).get("min_channels"), out_shape)
        layers.append(TtfsLayer(name, role, node, get_meta(node), ops, in_shape, out_shape))
        ops, in_shape = [], out_shape
    if ops:
        raise InvalidModel(f"linear nodes after the readout: {', '.join(n for n, _ in ops)}")
    if not layers or layers[-1].role != "readout":
        raise InvalidModel("a TTFS graph must end with a readout neuron node")
    return TtfsNet(graph, meta, shape, layers)
