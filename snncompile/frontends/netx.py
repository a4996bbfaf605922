"""Read a lava-dl netx ``.net`` HDF5 network (SLAYER's ``export_hdf5``, or our ``--emit netx``)
into our quantized LIF graph (format "snncompile-lif-q", the layout of
:func:`snncompile.quantize.lif.quantize_lif`), with the integer parameters netx's loader gives
Lava (``lava/lib/dl/netx/hdf5.py``, docs/netx.md):

    layer/<i>/neuron/iDecay   -> du = iDecay - 1   (iDecay 0, SLAYER's current_decay 0: du = -1, u holds exactly)
    layer/<i>/neuron/vDecay   -> dv = vDecay
    layer/<i>/neuron/vThMant  -> vth_mant = vThMant
    layer/<i>/bias            -> v_leak = int(bias) << 6   (netx: bias_mant = bias, bias_exp = 6)
    layer/<i>/weight (out, in) -> integer weights int(w) with weight_exp 0 and delay 1: netx
        truncates the stored floats with ``astype(int)`` and one spike through w adds w << 6 to u
        (its optimize_weight_bits + Lava's truncation are lossless on its range; replayed and
        checked by :func:`snncompile.targets.netx.write.netx_effective_weights`).

The graph records ``full_weight_bits = 8``, sign mode "mixed" and ``weight_bits = 8`` when every
stored weight is even (SLAYER's export; Lava's truncation keeps even integers, and the lava target
runs the graph too), else 9: Lava's truncation then keeps every integer in [-256, 255], the whole
range netx stores.  Either way fxsim runs the stored integers unchanged.  Supported: ``dense`` layers with CUBA (or LOIHI) neurons, an
``input`` layer that only gives a shape, ``flatten`` before the first dense layer.  Everything
else (conv, pool, recurrent ``dense_rec``, SDNN / RF neurons, graded spikes, synaptic delays)
raises UnsupportedOperator naming the layer.  Our own ``--emit netx`` files carry our metadata in
HDF5 attributes (population names, spiking flags, v LSBs, encoding, dt), which are read back.
"""

from __future__ import annotations

import json
from pathlib import Path

import nir
import numpy as np

from ..errors import InvalidModel, UnsupportedOperator
from ..ir import set_meta

FORMAT_Q = "snncompile-lif-q"  # quantize/lif.py FORMAT_Q (not imported: frontends sit below quantize)
SUPPORTED = ["dense (CUBA / LOIHI neurons)", "input (shape only)", "flatten (before the first dense layer)"]
NEURON_TYPES = ("CUBA", "LOIHI")
NETX_WEIGHT_BITS = 9   # with full_bits 8 and mixed sign: Lava truncates 8 - 9 + 1 = 0 bits
LOIHI2 = {"state_bits": 24, "act_shift": 6, "decay_bits": 12, "vth_shift": 6, "bias_mant_bits": 13,
          "bias_exp_bits": 3, "full_weight_bits": 8, "sign_mode": "mixed"}


def _text(ds) -> str:
    value = ds[()]
    if isinstance(value, np.ndarray):
        value = value.reshape(-1)[0]
    return value.decode("ascii") if isinstance(value, bytes) else str(value)


def _scalar(group, key: str, where: str) -> int:
    if key not in group:
        raise InvalidModel(f"{where}: neuron/{key} is missing")
    arr = np.asarray(group[key][()])
    vals = np.unique(arr)
    if vals.size != 1:
        raise UnsupportedOperator(f"per-neuron neuron/{key}", where, ["one value per layer (Lava's LIF du, dv, vth "
                                                                       "are per process)"])
    val = float(vals[0])
    if val != int(val):
        raise InvalidModel(f"{where}: neuron/{key} = {val} is not an integer")
    return int(val)


def read_netx(path) -> nir.NIRGraph:
    """The quantized LIF graph of the netx file at ``path`` (module docstring)."""
    import h5py

    from ..targets.netx.write import netx_effective_weights

    path = Path(path)
    if not path.is_file():
        raise InvalidModel(f"netx file '{path}' not found")
    try:
        f = h5py.File(path, "r")
    except OSError as exc:
        raise InvalidModel(f"netx file '{path}': not an HDF5 file ({exc})") from None
    with f:
        ours = json.loads(f.attrs["snncompile"]) if "snncompile" in f.attrs else {}
        if "layer" not in f:
            raise InvalidModel(f"netx file '{path}': no /layer group (not a netx network description)")
        keys = sorted(f["layer"].keys(), key=lambda k: int(k) if k.isdigit() else -1)
        if not keys or not all(k.isdigit() for k in keys):
            raise InvalidModel(f"netx file '{path}': /layer must hold groups 0, 1, 2, ... (got {keys})")
        input_shape = [int(s) for s in ours["input_shape"]] if "input_shape" in ours else None
        layers = []
        for k in keys:
            g, where = f["layer"][k], f"{path.name} layer {k}"
            kind = _text(g["type"]) if "type" in g else "?"
            if kind == "input":
                if "neuron" in g:
                    raise UnsupportedOperator("input layer with neurons", where, SUPPORTED, str(path))
                if layers:
                    raise InvalidModel(f"{where}: an input layer after layer 0")
                if "shape" in g and input_shape is None:
                    input_shape = [int(s) for s in np.asarray(g["shape"][()]).reshape(-1)]
                continue
            if kind == "flatten":
                if layers:
                    raise UnsupportedOperator("flatten between layers", where, SUPPORTED, str(path))
                continue
            if kind != "dense":
                raise UnsupportedOperator(kind, where, SUPPORTED, str(path))
            layers.append(_dense(g, where, k, path, netx_effective_weights))
    if not layers:
        raise InvalidModel(f"netx file '{path}': no dense layer")
    n_in = layers[0]["weight"].shape[1]
    if input_shape is None or int(np.prod(input_shape)) != n_in:
        input_shape = [n_in]
    for a, b in zip(layers, layers[1:]):
        if b["weight"].shape[1] != a["neurons"]:
            raise InvalidModel(f"{path.name} layer {b['key']}: weight {b['weight'].shape} does not take the "
                               f"{a['neurons']} outputs of layer {a['key']}")
    return _graph(layers, input_shape, ours, path)


def _dense(g, where, key, path, effective):
    if "weight" not in g:
        raise InvalidModel(f"{where}: dense layer without weight")
    if "weight_rec" in g or "weight/imag" in g:
        raise UnsupportedOperator("dense layer with recurrent or complex weights", where, SUPPORTED, str(path))
    shape = np.asarray(g["shape"][()]).reshape(-1) if "shape" in g else None
    w = np.asarray(g["weight"][()]).astype(int)  # netx NetDict: f[key][()].astype(int)
    neurons = int(np.prod(shape)) if shape is not None else w.shape[0]
    if w.ndim == 1:
        w = w.reshape(neurons, -1)
    if w.ndim != 2 or w.shape[0] != neurons:
        raise InvalidModel(f"{where}: weight of shape {w.shape} for {neurons} neurons")
    if "delay" in g and np.any(np.asarray(g["delay"][()]) != 0):
        raise UnsupportedOperator("dense layer with synaptic delays", where, SUPPORTED, str(path))
    if "neuron" not in g:
        raise UnsupportedOperator("dense layer without neuron (netx's default non-leaky integrator)", where,
                                  SUPPORTED, str(path))
    ng = g["neuron"]
    ntype = _text(ng["type"]) if "type" in ng else "?"
    if ntype not in NEURON_TYPES:
        raise UnsupportedOperator(f"{ntype} neuron", where, SUPPORTED, str(path))
    if "messageBits" in ng and int(np.asarray(ng["messageBits"][()])) != 0:
        raise UnsupportedOperator("graded spikes (messageBits > 0)", where, SUPPORTED, str(path))
    i_decay, v_decay, vth = (_scalar(ng, key, where) for key in ("iDecay", "vDecay", "vThMant"))
    if not 0 <= i_decay <= 4096 or not 0 <= v_decay <= 4096:
        raise InvalidModel(f"{where}: iDecay {i_decay} / vDecay {v_decay} outside 0..4096 (12-bit decays)")
    if not 0 <= vth < 2 ** 17:
        raise InvalidModel(f"{where}: vThMant {vth} outside Lava's 17-bit threshold mantissa")
    try:
        eff = effective(w)
    except InvalidModel as exc:
        raise InvalidModel(f"{where}: {exc}") from None
    if not np.array_equal(eff, w):
        raise InvalidModel(f"{where}: netx's loader changes these weights (optimize_weight_bits + Lava truncation); "
                           "the file cannot be represented exactly")
    bias = np.zeros(neurons, np.int64)
    if "bias" in g:
        b = np.asarray(g["bias"][()]).astype(int).reshape(-1)
        if b.size not in (1, neurons):
            raise InvalidModel(f"{where}: bias of size {b.size} for {neurons} neurons")
        if np.any(np.abs(b) > 4095):
            raise InvalidModel(f"{where}: bias {int(np.abs(b).max())} beyond Lava's 13-bit bias_mant")
        bias[:] = b << 6  # netx: bias_mant = bias, bias_exp = 6
    meta = json.loads(g.attrs["snncompile"]) if "snncompile" in g.attrs else {}
    return {"key": key, "name": str(meta.get("name") or f"layer{key}"), "neurons": neurons, "weight": w,
            "bias": bias, "du": i_decay - 1, "dv": v_decay, "vth_mant": vth,
            "spiking": bool(meta.get("spiking", True)),
            "v_lsb": float(meta.get("v_lsb") or 1.0 / (max(vth, 1) << 6))}


def _graph(layers, input_shape, ours, path) -> nir.NIRGraph:
    nodes = {"input": nir.Input(input_type={"input": np.array(input_shape)})}
    edges, pops, conns, prev, prev_shape = [], [], [], "input", input_shape
    for la in layers:
        name, n = la["name"], la["neurons"]
        if name in nodes or name in ("bias", "output"):
            raise InvalidModel(f"{path.name}: layer name {name!r} is used twice")
        node = nir.CubaLIF(tau_syn=np.full(n, np.inf if la["du"] < 0 else 4096.0 / (la["du"] + 1)),
                           tau_mem=np.full(n, 4096.0 / la["dv"] if la["dv"] else np.inf), r=np.ones(n),
                           v_leak=la["bias"].astype(np.float64),
                           v_threshold=np.full(n, float(la["vth_mant"] << 6) if la["spiking"] else np.inf),
                           w_in=np.ones(n))
        set_meta(node, {"kind": "CubaLIF", "spiking": la["spiking"], "shape": [n], "du": la["du"], "dv": la["dv"],
                        "vth_mant": la["vth_mant"], "v_lsb": la["v_lsb"], "source_node": f"layer/{la['key']}",
                        "readout": la is layers[-1]})
        cname = f"{name}_from_{prev}"
        syn = nir.Affine(weight=la["weight"].astype(np.int64), bias=np.zeros(n, dtype=np.int64))
        set_meta(syn, {"weight_exp": 0, "delay": 1, "src": prev, "dst": name, "scale": la["v_lsb"] * 64.0})
        nodes[name], nodes[cname] = node, syn
        if len(prev_shape) > 1:
            nodes[f"{cname}_flatten"] = nir.Flatten(input_type={"input": np.array(prev_shape)}, start_dim=0,
                                                    end_dim=-1)
            edges += [(prev, f"{cname}_flatten"), (f"{cname}_flatten", cname)]
        else:
            edges.append((prev, cname))
        edges.append((cname, name))
        pops.append(name)
        conns.append(cname)
        prev, prev_shape = name, [n]
    ro = layers[-1]
    nodes["output"] = nir.Output(output_type={"output": np.array([ro["neurons"]])})
    edges.append((ro["name"], "output"))
    g = nir.NIRGraph(nodes=nodes, edges=edges, type_check=False)
    # 8-bit mixed keeps even integers in [-256, 254] (SLAYER writes those; stock Lava runs them too), 9 keeps all
    bits = 8 if all(np.all(la["weight"] % 2 == 0) for la in layers) else NETX_WEIGHT_BITS
    meta = {"format": FORMAT_Q, "quantized": True, "profile": "loihi2", "arithmetic": "loihi",
            "dt": float(ours.get("dt", 1.0)), **LOIHI2, "weight_bits": bits, "populations": pops, "connections": conns,
            "readout": ro["name"], "readout_kind": "count" if ro["spiking"] else "mean_v", "depth": len(layers),
            "input_shape": [int(s) for s in input_shape], "bias_source": False, "headroom_bits": 0,
            "source": str(path), "source_format": "netx", "quantization": []}
    if ours.get("profile"):
        meta["quantized_with_profile"] = ours["profile"]
    if isinstance(ours.get("encoding"), dict):
        meta["encoding"] = ours["encoding"]
    set_meta(g, meta)
    return g
