"""The check pass: does a network fit a profile, and where does each layer land?

Per population: neurons, fan-in (largest number of synapses onto one neuron), synapses
(nonzero weights of its composite linear map) and the cores it needs under the profile's
mapping style.  Anything over a limit raises :class:`ProfileViolation` naming the layer,
the resource, what it needs and the limit.
"""

from __future__ import annotations

import math

import numpy as np

from .errors import ProfileViolation
from .nirops import composite_matrix
from .profile import HwProfile


def layer_resources(layer) -> dict:
    mat = composite_matrix(layer.ops, layer.in_shape)
    nnz_rows = np.diff(mat.indptr)
    kernel, stored = 0, 0
    for _, node in layer.ops:
        if hasattr(node, "weight"):
            stored += int(np.size(node.weight))
            if np.ndim(node.weight) == 4:
                kernel = max(kernel, int(max(node.weight.shape[2:])))
    return {"layer": layer.name, "role": layer.role, "neurons": layer.neurons,
            "inputs": int(np.prod(layer.in_shape)), "fan_in": int(nnz_rows.max(initial=0)),
            "synapses": int(mat.nnz), "stored_weights": stored or int(mat.nnz), "kernel": kernel}


def map_layers(layers, profile: HwProfile) -> dict:
    """Resource table and core assignment for TTFS ``layers`` (objects with name, role, ops,
    in_shape, neurons), or ProfileViolation."""
    rows = [layer_resources(layer) for layer in layers]
    for row in rows:
        row["neuron_model"] = "ttfs"
    return check_rows(rows, profile)


def check_rows(rows: list[dict], profile: HwProfile) -> dict:
    """Check resource rows (layer, neurons, fan_in, synapses, stored_weights, kernel, neuron_model)."""
    mp = profile.mapping
    for row in rows:
        model = row["neuron_model"]
        if model not in profile.neuron_models:
            raise ProfileViolation(row["layer"], "neuron model", model,
                                   " or ".join(profile.neuron_models) + " only", profile.name)
        if mp.fan_in_max and row["fan_in"] > mp.fan_in_max:
            raise ProfileViolation(row["layer"], "fan-in per neuron", row["fan_in"], mp.fan_in_max, profile.name)
    if mp.style == "cores":
        total = 0
        for row in rows:
            by_neurons = math.ceil(row["neurons"] / mp.neurons_per_core) if mp.neurons_per_core else 1
            by_syn = math.ceil(row["synapses"] / mp.synapses_per_core) if mp.synapses_per_core else 1
            row["cores"] = max(1, by_neurons, by_syn)
            row["core_limit"] = "synapses" if by_syn > by_neurons else "neurons"
            total += row["cores"]
        if mp.cores and total > mp.cores:
            worst = max(rows, key=lambda r: r["cores"])
            raise ProfileViolation(worst["layer"], "cores (whole network)", total, mp.cores, profile.name)
        return {"style": "cores", "layers": rows, "cores_used": total, "cores_available": mp.cores or None}
    if mp.style == "fixed":
        n_in = rows[0]["inputs"]
        hidden = sum(r["neurons"] for r in rows[:-1])
        outputs = rows[-1]["neurons"]
        if mp.inputs_max and n_in > mp.inputs_max:
            raise ProfileViolation(rows[0]["layer"], "input channels", n_in, mp.inputs_max, profile.name)
        if mp.hidden_max and hidden > mp.hidden_max:
            big = max(rows[:-1], key=lambda r: r["neurons"]) if len(rows) > 1 else rows[0]
            raise ProfileViolation(big["layer"], "hidden neurons (whole network)", hidden, mp.hidden_max, profile.name)
        if mp.outputs_max and outputs > mp.outputs_max:
            raise ProfileViolation(rows[-1]["layer"], "output neurons", outputs, mp.outputs_max, profile.name)
        return {"style": "fixed", "layers": rows, "inputs": n_in, "hidden": hidden, "outputs": outputs}
    # layer_per_core: each population takes one whole core, in order
    if len(rows) > len(mp.core_neurons):
        raise ProfileViolation(rows[len(mp.core_neurons)]["layer"], "cores (one per layer)", len(rows),
                               len(mp.core_neurons), profile.name)
    for i, row in enumerate(rows):
        row["core"] = i
        if row["neurons"] > mp.core_neurons[i]:
            raise ProfileViolation(row["layer"], f"neuron memory of core {i}", row["neurons"], mp.core_neurons[i], profile.name)
        if row["stored_weights"] > mp.core_weights[i]:  # convolution kernels are stored once (weight sharing)
            raise ProfileViolation(row["layer"], f"weight memory of core {i}", row["stored_weights"],
                                   mp.core_weights[i], profile.name)
        if mp.kernel_max and row["kernel"] > mp.kernel_max:
            raise ProfileViolation(row["layer"], "kernel size", row["kernel"], mp.kernel_max, profile.name)
    return {"style": "layer_per_core", "layers": rows, "cores_used": len(rows)}


def lif_mapping(qgraph, profile: HwProfile) -> dict:
    """Resource rows of a quantized LIF graph (neurons, fan-in, synapses per population), checked."""
    from .lif.fixed import read_qlif

    qn = read_qlif(qgraph)
    rows = []
    for name, p in qn.pops.items():
        mats = [c.weight.numpy() != 0 for c in qn.conns if c.dst == name]
        fan_in = int(sum(m.sum(axis=0) for m in mats).max(initial=0)) if mats else 0
        rows.append({"layer": name, "role": "lif", "neurons": p.neurons, "fan_in": fan_in,
                     "inputs": int(sum(m.shape[0] for m in mats)), "synapses": int(sum(m.sum() for m in mats)),
                     "stored_weights": int(sum(m.sum() for m in mats)), "kernel": 0, "neuron_model": "lif"})
    return check_rows(rows, profile)


def xylo_mapping(qgraph, profile: HwProfile) -> dict:
    """Xylo's fixed pools: input channels, hidden neurons (all hidden populations together), output
    neurons; fan-out of every input and hidden neuron; checked against the profile."""
    from .ir import get_meta
    from .quantize.lif_xylo import xylo_spec

    spec, meta = xylo_spec(qgraph), get_meta(qgraph)
    pops = meta["xylo_populations"]
    rows = []
    for name, (a, b) in pops.items():
        w_in = spec["weights_in"][:, a:b] if name == next(iter(pops)) else spec["weights_rec"][:, a:b]
        rows.append({"layer": name, "role": "hidden", "neurons": b - a, "inputs": int(spec["weights_in"].shape[0]),
                     "fan_in": int((w_in != 0).sum(axis=0).max(initial=0)), "synapses": int((w_in != 0).sum()),
                     "stored_weights": int(w_in.size), "kernel": 0, "neuron_model": "lif"})
    w_out = spec["weights_out"]
    rows.append({"layer": meta["xylo_readout"], "role": "output", "neurons": int(w_out.shape[1]),
                 "inputs": int(w_out.shape[0]), "fan_in": int((w_out != 0).sum(axis=0).max(initial=0)),
                 "synapses": int((w_out != 0).sum()), "stored_weights": int(w_out.size), "kernel": 0,
                 "neuron_model": "lif"})
    rows[0]["inputs"] = int(spec["weights_in"].shape[0])
    out = check_rows(rows, profile)
    # the documented fan-out figure is checked neither by rockpool's mapper nor by xylosim, and
    # XyloSim's own specification has dense (inputs x hidden) input weights: reported, not enforced
    fan_out = np.concatenate([(spec["weights_in"] != 0).sum(axis=1),
                              (spec["weights_rec"] != 0).sum(axis=1) + (w_out != 0).sum(axis=1)])
    out.update(max_fan_out=int(fan_out.max(initial=0)), fan_out_documented=profile.mapping.fan_out_max or None)
    return out
