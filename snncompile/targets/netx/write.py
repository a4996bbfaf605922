"""``--emit netx``: a quantized LIF graph as a lava-dl netx ``.net`` HDF5 file (Loihi 2 deployment format).

netx (lava-dl 0.6.0, ``lava/lib/dl/netx/hdf5.py``) rebuilds a network from a chain of layers
``/layer/<i>`` and runs it with stock Lava processes: each ``dense`` layer is a ``Dense`` synapse
(one step of delay) feeding a ``LIF`` (``CUBA`` neuron).  The mapping from our integer
parameters (docs/netx.md has the line references):

    du        -> neuron/iDecay  = du + 1          (netx: du = iDecay - 1)
    dv        -> neuron/vDecay  = dv              (netx: dv = vDecay)
    vth_mant  -> neuron/vThMant = vth_mant        (netx: vth = vThMant)
    bias b    -> bias = b >> 6                    (netx: bias_mant = bias, bias_exp = 6): b must be a multiple of 64
    weights   -> weight = W * 2**e  (e <= 0 needs W divisible by 2**-e)

netx stores no weight exponent: its loader derives ``weight_exp`` and ``num_weight_bits`` from
the stored integers (``netx/utils.py`` ``optimize_weight_bits``), so a stored weight w always adds
w << 6 to u.  :func:`netx_effective_weights` replays that derivation and Lava's clip/truncation;
the writer refuses a connection unless the replay gives back exactly our integer weights.  A
graph quantized with ``weight_exp`` fixed to 0 (:data:`NETX_PROFILE`) always fits.

What netx cannot express raises :class:`InvalidModel` naming the connection or population and
the rule: anything but a feed-forward chain input -> p0 -> p1 -> ... -> readout, delays other than
one step, the always-on bias input (Affine biases), a weight exponent that does not fold into
integer weights, biases off the 64-grid.  Our metadata (population names, spiking flags, v LSBs,
encoding) travels in HDF5 attributes, which netx ignores, so :mod:`snncompile.frontends.netx`
reads back the very graph that was written.
"""

from __future__ import annotations

import json
from pathlib import Path

import h5py
import numpy as np

from ...arith import clip_truncate
from ...errors import InvalidModel
from ...ir import get_meta
from ...lif.fixed import read_qlif
from ...quantize.lif import FORMAT_Q

NETX_PROFILE = "loihi2-netx"  # hw_profiles/loihi2-netx.toml: loihi2 with weight_exp fixed to 0
BIAS_EXP = 6          # netx hdf5.py get_neuron_params: 'bias_exp': 6
BIAS_MANT_MAX = 4095  # lava proc/lif/models.py: bias_mant LavaPyType(np.int16, precision=13), signed
NETX_ARITH = {"state_bits": 24, "act_shift": 6, "decay_bits": 12, "vth_shift": 6, "full_weight_bits": 8}
ATTR = "snncompile"   # HDF5 attribute holding our metadata (JSON); netx never reads attributes


def netx_optimize(w: np.ndarray):
    """numpy replay of netx's ``optimize_weight_bits`` (``lava/lib/dl/netx/utils.py``):
    (weights, num_weight_bits, weight_exponent, sign mode "mixed" | "exc" | "inh").
    Raises InvalidModel where netx would fail or clip (all-zero weights, values off its range)."""
    w = np.asarray(w, dtype=np.int64)
    hi, lo = int(w.max()), int(w.min())
    if hi == 0 and lo == 0:
        raise InvalidModel("all weights are 0: netx's optimize_weight_bits divides by the largest weight")
    if (hi > 254 and lo < 0) or (lo < -256 and hi > 0):
        raise InvalidModel(f"weights span [{lo}, {hi}]: netx clips mixed-sign weights to [-256, 254]")
    if hi < 0:
        mode, signed, scale = "inh", 0, -256 / lo
    elif lo >= 0:
        mode, signed, scale = "exc", 0, 255 / hi
    else:
        mode, signed = "mixed", 1
        scale = min(127 / hi if hi > 0 else np.inf, -128 / lo)
    scale_bits = int(np.floor(np.log2(scale))) + signed
    if scale_bits < 0:
        raise InvalidModel(f"weights span [{lo}, {hi}]: beyond netx's 8-bit {mode} range "
                           f"(its weight_exponent would be {-scale_bits} > 0, a negative left shift)")
    n = 8
    while n > 0 and np.any(w % (1 << n)):
        n -= 1
    n -= signed
    return w << scale_bits, 8 - scale_bits - n, -scale_bits, mode


def lava_sign_mode(w: np.ndarray) -> str:
    """Lava's ``determine_sign_mode`` (``lava/utils/weightutils.py``), which the Dense model applies."""
    return "exc" if w.min() >= 0 else ("inh" if w.max() <= 0 else "mixed")


def netx_effective_weights(w_file: np.ndarray) -> np.ndarray:
    """What one spike through each stored weight adds to ``a`` (before << 6) once netx has loaded
    it: netx's optimize_weight_bits, then Lava Dense's clip + truncation and its weight_exp shift.
    Equal to ``w_file`` where netx is lossless; raises InvalidModel where netx fails."""
    w, nbits, wexp, _ = netx_optimize(w_file)
    eff = clip_truncate(w, nbits, 8, lava_sign_mode(w))
    # one spike: (eff << 0) shifted by wexp <= 0 (floor); exact per synapse iff eff is on the 2**-wexp grid
    if np.any(eff % (1 << -wexp)):
        return np.floor_divide(eff, 1 << -wexp)  # not per-synapse additive; callers compare and refuse
    return eff >> -wexp


def netx_layers(graph) -> tuple[list, dict]:
    """The netx layers of a quantized LIF graph: [{name, neurons, weight (out, in) int, bias (int or
    None), iDecay, vDecay, vThMant, spiking, v_lsb}] in chain order, and our metadata for the file."""
    gm = get_meta(graph)
    if gm.get("format") != FORMAT_Q:
        raise InvalidModel("--emit netx writes quantized LIF graphs (format 'snncompile-lif-q', model.q.nir)")
    if gm.get("arithmetic") not in (None, "loihi"):
        raise InvalidModel(f"netx runs Lava's Loihi arithmetic; the graph was quantized for "
                           f"{gm.get('arithmetic')!r} (profile {gm.get('profile')!r})")
    for key, want in NETX_ARITH.items():
        if int(gm[key]) != want:
            raise InvalidModel(f"the graph has {key} = {gm[key]}; netx's Lava LIF / Dense use {want}")
    qn = read_qlif(graph)  # weights already clip-truncated as Lava's Dense would
    incoming = {name: [c for c in qn.conns if c.dst == name] for name in qn.pops}
    for c in qn.conns:
        if c.src == "bias":
            raise InvalidModel(f"connection {c.name!r}: comes from the always-on bias input (an Affine bias); "
                               "netx layers have no bias input (only a per-neuron bias_mant << 6 in v)")
        if c.delay != 1:
            raise InvalidModel(f"connection {c.name!r}: delay {c.delay} steps; --emit netx writes one-step "
                               "Dense layers only")
    order, prev = [], "input"
    while len(order) < len(qn.pops):
        nxt = [c for c in qn.conns if c.src == prev]
        if len(nxt) != 1:
            raise InvalidModel(f"{'the input' if prev == 'input' else f'population {prev!r}'} feeds "
                               f"{len(nxt)} connections ({', '.join(c.name for c in nxt) or 'none'}); netx "
                               "describes a feed-forward chain input -> layer 0 -> layer 1 -> ... (one each, "
                               "no recurrence, no skips)")
        c = nxt[0]
        if c.dst in order or len(incoming[c.dst]) != 1:
            raise InvalidModel(f"connection {c.name!r} into population {c.dst!r}: netx describes a feed-forward "
                               f"chain; {c.dst!r} has {len(incoming[c.dst])} incoming connections "
                               "(recurrent or converging edges cannot be written)")
        order.append(c.dst)
        prev = c.dst
    if order[-1] != qn.readout:
        raise InvalidModel(f"the readout {qn.readout!r} is not the last population of the chain ({order[-1]!r})")
    layers = []
    for name in order:
        p, c = qn.pops[name], incoming[name][0]
        W = np.asarray(c.weight.numpy(), dtype=np.float64).T.astype(np.int64)  # (out, in), Lava-truncated
        if c.exp >= 0:
            w_file = W << c.exp
        elif np.any(W % (1 << -c.exp)):
            raise InvalidModel(f"connection {c.name!r}: weight_exp {c.exp} with weights that are not multiples of "
                               f"2**{-c.exp}; netx stores integer weights of exponent 0 (its loader derives the "
                               "exponent from the values, netx/utils.py optimize_weight_bits), so the floor shift "
                               f"of the summed input cannot be written; quantize with --profile {NETX_PROFILE}")
        else:
            w_file = W >> -c.exp
        try:
            eff = netx_effective_weights(w_file)
        except InvalidModel as exc:
            raise InvalidModel(f"connection {c.name!r} (weight_exp {c.exp}): {exc}; quantize with weight_exp 0, "
                               f"e.g. --profile {NETX_PROFILE}") from None
        if not np.array_equal(eff, w_file):
            k = np.flatnonzero((eff != w_file).ravel())[0]
            raise InvalidModel(f"connection {c.name!r}: netx's loader would turn weight {int(w_file.ravel()[k])} into "
                               f"{int(eff.ravel()[k])} (netx optimize_weight_bits + Lava truncation)")
        if np.any(p.bias % (1 << BIAS_EXP)):
            raise InvalidModel(f"population {name!r}: bias {int(p.bias[p.bias % 64 != 0][0])} is not a multiple of 64; "
                               "netx sets bias_exp = 6 for every CUBA neuron (netx/hdf5.py get_neuron_params)")
        if np.any(np.abs(p.bias >> BIAS_EXP) > BIAS_MANT_MAX):
            raise InvalidModel(f"population {name!r}: bias mantissa {int(np.abs(p.bias >> BIAS_EXP).max())} beyond "
                               f"Lava's 13-bit bias_mant (|bias_mant| <= {BIAS_MANT_MAX}, bias_exp fixed to 6 by netx)")
        if not -1 <= p.params.du < 4096 or not 0 <= p.params.dv <= 4096:  # du = -1: iDecay 0, u holds
            raise InvalidModel(f"population {name!r}: du {p.params.du} / dv {p.params.dv} outside 12 bits")
        layers.append({"name": name, "neurons": p.neurons, "weight": w_file,
                       "bias": (p.bias >> BIAS_EXP) if np.any(p.bias) else None,
                       "iDecay": p.params.du + 1, "vDecay": p.params.dv, "vThMant": p.params.vth_mant,
                       "spiking": p.spiking, "v_lsb": p.v_lsb, "src_conn": c.name})
    keep = ("dt", "encoding", "readout_kind", "profile", "trained_by", "source")
    meta = {"format": "snncompile-netx", "input_shape": [int(s) for s in qn.input_shape], "readout": qn.readout,
            "populations": order, **{k: gm[k] for k in keep if k in gm}}
    return layers, meta


def write_netx(graph, path) -> Path:
    """Write ``graph`` (quantized LIF) as a netx ``.net`` file; returns its path."""
    layers, meta = netx_layers(graph)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with h5py.File(path, "w") as f:
        f.attrs[ATTR] = json.dumps(meta)
        root = f.create_group("layer")
        for i, la in enumerate(layers):
            g = root.create_group(str(i))
            g.attrs[ATTR] = json.dumps({"name": la["name"], "spiking": bool(la["spiking"]), "v_lsb": la["v_lsb"],
                                        "connection": la["src_conn"]})
            g.create_dataset("type", data=np.array([b"dense"], dtype="S10"))   # as slayer writes it
            g.create_dataset("shape", data=np.array([la["neurons"]], dtype=np.int64))
            g.create_dataset("inFeatures", data=int(la["weight"].shape[1]))
            g.create_dataset("outFeatures", data=int(la["neurons"]))
            g.create_dataset("weight", data=la["weight"].astype(np.float32))     # exact: |w| <= 256
            if la["bias"] is not None:
                g.create_dataset("bias", data=la["bias"].astype(np.float32))
            n = g.create_group("neuron")
            n.create_dataset("type", data=b"CUBA")
            for key in ("iDecay", "vDecay", "vThMant"):
                n.create_dataset(key, data=int(la[key]))
            n.create_dataset("refDelay", data=1)
            n.create_dataset("gradedSpike", data=False)
    return path


def emit(qgraph, folder, family, inputs) -> Path:
    """``--emit netx``: ``folder/model.net`` (+ ``inputs.npz`` with the first samples' rasters, and a
    README).  TTFS graphs raise InvalidModel: netx has no programmable neuron."""
    if family == "ttfs":
        raise InvalidModel("--emit netx: netx describes stock CUBA LIF layers and has no programmable neuron, so "
                           "it cannot carry the TTFS neuron; use --emit lava / --target lava for TTFS networks")
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    path = write_netx(qgraph, folder / "model.net")
    if inputs is not None and inputs.spikes is not None:
        np.savez_compressed(folder / "inputs.npz", spikes=np.asarray(inputs.spikes, dtype=np.uint8))
    (folder / "README.md").write_text(README.format(layers=len(read_layers_count(path))))
    return folder


def read_layers_count(path) -> list:
    with h5py.File(path, "r") as f:
        return sorted(f["layer"].keys(), key=int)


README = """# netx model (written by snncompile --emit netx)

`model.net` is a lava-dl netx HDF5 network ({layers} dense CUBA layers).  Run it with lava-dl's own loader:

```python
import numpy as np
from lava.lib.dl import netx
from lava.magma.core.run_conditions import RunSteps
from lava.magma.core.run_configs import Loihi2SimCfg
from lava.proc import io

net = netx.hdf5.Network(net_config="model.net")
spikes = np.load("inputs.npz")["spikes"]        # (N, T_in, *input_shape)
x = spikes[0].reshape(spikes.shape[1], -1).T  # (inputs, T_in) for sample 0
T = x.shape[1] + len(net)                 # one step of delay per layer
x = np.pad(x, ((0, 0), (0, len(net))))
src = io.source.RingBuffer(data=x)
sink = io.sink.RingBuffer(shape=net.out.shape, buffer=T)
src.s_out.connect(net.inp)
net.out.connect(sink.a_in)
net.run(condition=RunSteps(num_steps=T), run_cfg=Loihi2SimCfg(select_tag="fixed_pt"))
out = sink.data.get()
net.stop()
```

On Python 3.11 import lava through `snncompile.targets.netx.compat.require_netx()` (Lava's 3.11 fix and
a stub for SLAYER's object_detection subpackage).  `snncompile compile ... --target netx` runs this file
and compares every layer's spikes and v with fxsim at every step.
"""
