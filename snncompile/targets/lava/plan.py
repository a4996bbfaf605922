"""Plans: everything a Lava network needs, read from a quantized graph (no Lava import).

A plan is a dict ``{"meta": {...}, "pops": [...], "conns": [...]}`` of plain values and integer
arrays; :mod:`.params` writes it to ``params.npz`` and reads it back, and both the in-process
target and the standalone export run the plan they read from that file.
"""

from __future__ import annotations

import numpy as np

from ...arith import bias_split
from ...errors import InvalidModel
from ...ir import get_meta
from ...lif.fixed import read_qlif
from ...nirops import composite_matrix
from ...ttfs.fixed import fixed_layers
from ...ttfs.graph import is_ttfs_graph, parse_ttfs
from .parts import lava_parts

SPARSE_NODES = ("Conv2d", "SumPool2d", "AvgPool2d")
LIF_FORMAT = "snncompile-lif-q"
TTFS_FORMAT = "snncompile-ttfs"
# Lava's PyLifModelBitAcc / PyDenseModelBitAcc constants, which a graph must have been quantized with
LAVA_LIF_ARITH = {"state_bits": 24, "act_shift": 6, "decay_bits": 12, "vth_shift": 6, "full_weight_bits": 8}
SIGN_MODES = ("mixed", "exc", "inh")
MAX_DELAY = 64            # DelayDense: delays 0..63 (Loihi 2), i.e. graph delays 1..64
SPARSE_MIN_CELLS = 4096   # a connection matrix this large and
SPARSE_MAX_DENSITY = 0.2  # at most this dense runs as Sparse (delay 1 only)


def ttfs_plan(graph, period_margin: int = 0) -> dict:
    """Everything the Lava network needs, from a quantized TTFS graph (no Lava import).

    Returns ``{"meta": {...}, "pops": [...]}`` where each pop is a dict for
    :func:`snncompile.targets.lava_ttfs.run_populations` plus ``role``, ``out_shape``,
    ``weight_exp`` (the graph's) and ``v_lsb``.
    """

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
        ut = layer.u_threshold(int(gm["act_shift"]))
        if ut is not None:  # min-pool neurons (ttfs/fixed.py)
            pops[-1]["u_threshold"] = ut
    for p in pops:
        if p["role"] == "readout" and p["fire_start"] <= p["fire_end"]:
            raise InvalidModel(f"readout {p['name']!r} has a fire window {p['fire_start']}..{p['fire_end']}; "
                               "the readout never fires")
    latest = max([p["fire_end"] for p in pops if p["role"] != "readout"] + [K])
    if latest >= T:  # the no-leak argument of the module docstring needs silence at step P
        raise InvalidModel(f"a population may fire at step {latest} >= T = {T}; the schedule is inconsistent")
    meta = {"format": TTFS_FORMAT, "steps": K, "t_total": T, "period": T + int(period_margin), "state_bits": int(gm["state_bits"]),
            "act_shift": int(gm["act_shift"]), "weight_bits": bits, "input_shape": tuple(net.input_shape),
            "sign_mode": "mixed"}
    return {"meta": meta, "pops": pops}


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
        for key, val in (("du", p.params.du), ("dv", p.params.dv)):
            if not 0 <= val < 4096:
                raise InvalidModel(f"population {name!r}: {key} = {val} outside Lava's 12 bits")
        try:
            mant, exp = bias_split(p.bias, *bias_bits(gm))
        except ValueError as exc:
            raise InvalidModel(f"population {name!r}: its integer bias is not bias_mant << bias_exp with Lava's "
                               f"{bias_bits(gm)[0]}-bit mantissa and {bias_bits(gm)[1]}-bit exponent ({exc})") from None
        pops.append({"name": name, "neurons": p.neurons, "spiking": p.spiking, "du": p.params.du, "dv": p.params.dv, "vth": vth,
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
    natural = falls_silent(pops, conns)
    if quench not in ("auto", True, False):
        raise InvalidModel(f"quench must be 'auto', True or False, got {quench!r}")
    meta = {"format": LIF_FORMAT, "input_shape": [int(s) for s in qn.input_shape], "n_in": n_in,
            "depth": int(gm["depth"]), "weight_bits": bits, "sign_mode": sign, "readout": qn.readout,
            "populations": names, "quench": (not natural) if quench == "auto" else bool(quench),
            "falls_silent": natural}
    return {"meta": meta, "pops": pops, "conns": conns}


def bias_bits(gm: dict) -> tuple[int, int]:
    """(bias mantissa bits, bias exponent bits) of a quantized graph: its metadata, else its profile's."""
    if "bias_mant_bits" in gm and "bias_exp_bits" in gm:
        return int(gm["bias_mant_bits"]), int(gm["bias_exp_bits"])
    from ...profile import load_profile

    spec = load_profile(gm.get("profile") or "loihi2").neuron
    return spec.bias_mant_bits, spec.bias_exp_bits


def falls_silent(pops: list, conns: list) -> bool:
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


