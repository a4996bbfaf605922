"""A quantized graph (``model.q.nir``) verified against its hardware profile before any target runs it.

Nothing in a ``model.q.nir`` is trusted: every integer field must lie on the profile's grid and in
its range, and the graph's recorded bit widths must be the profile's.  Both families:

* TTFS (format ``snncompile-ttfs``, ``quantized: true``): weight mantissas on the weight grid of
  ``weight_bits`` (:func:`snncompile.arith.weight_grid`), ``weight_exp`` in the profile's range,
  biases β representable as mant << exp, thresholds θ = K r + r // 2 within the state range, the
  step numbers of every window ordered and inside ``t_total``;
* LIF (format ``snncompile-lif-q``): the same weight and bias rules, ``du``, ``dv`` in the decay
  register, ``vth_mant`` in its register and ``v_threshold = vth_mant << vth_shift``, delays >= 1.

A violation is a :class:`~snncompile.errors.ProfileViolation` naming node, field, value and limit.
"""

from __future__ import annotations

import math

import nir
import numpy as np

from ..arith import bias_split, weight_grid
from ..errors import InvalidModel, ProfileViolation
from .nir_graph import as_array, is_int, is_num, raw_meta

TTFS_FORMAT = "snncompile-ttfs"
LIF_FORMAT = "snncompile-lif-q"
T_MAX = 10**6


def is_quantized(meta: dict) -> bool:
    return bool(meta.get("quantized")) or meta.get("format") == LIF_FORMAT


class _V:
    def __init__(self, profile, where):
        self.profile, self.where = profile, where

    def fail(self, node, field, value, limit):
        loc = f"{self.where}: node {node}" if self.where else f"node {node}"
        raise ProfileViolation(loc, field, value, limit, self.profile.name)

    def int_in(self, node, field, value, lo, hi):
        if not is_int(value) or not lo <= value <= hi:
            self.fail(node, field, repr(value), f"an integer in {lo}..{hi}")
        return int(value)

    def equal(self, node, field, value, want):
        if value != want:
            self.fail(node, field, repr(value), f"{want!r} (the profile's)")

    def weights(self, name, node, bits, full_bits, sign_mode):
        w = as_array(getattr(node, "weight", None))
        if w is None or w.size == 0:
            self.fail(repr(name), "weight", "none", "an integer matrix")
        step, lo, hi = weight_grid(bits, full_bits, sign_mode)
        bad = ~np.isfinite(w) | (w != np.round(w)) | (w < lo) | (w > hi)
        if not np.any(bad):
            bad = (w.astype(np.int64) - lo) % step != 0
        if np.any(bad):
            v = w[bad].ravel()[0]
            self.fail(repr(name), "weight", f"{v:g}", f"multiples of {step} in [{lo}, {hi}] ({bits}-bit {sign_mode})")
        b = as_array(getattr(node, "bias", None))
        if b is not None and np.any(b != 0):
            self.fail(repr(name), "bias", f"{b[b != 0].ravel()[0]:g}", "0 (biases enter the neuron)")

    def biases(self, name, values, nspec):
        b = as_array(values)
        if b is None:
            return
        bad = ~np.isfinite(b) | (b != np.round(b))
        if np.any(bad):
            self.fail(repr(name), "v_leak (bias)", f"{b[bad].ravel()[0]}", "integers")
        bmax = ((1 << (nspec.bias_mant_bits - 1)) - 1) << ((1 << nspec.bias_exp_bits) - 1)
        if np.any(np.abs(b) > bmax):
            self.fail(repr(name), "v_leak (bias)", f"{b[np.abs(b) > bmax].ravel()[0]:.0f}", f"|bias| <= {bmax}")
        try:
            bias_split(b.astype(np.int64), nspec.bias_mant_bits, nspec.bias_exp_bits)
        except ValueError:
            self.fail(repr(name), "v_leak (bias)", "off grid",
                      f"mant << exp with a {nspec.bias_mant_bits}-bit mantissa, {nspec.bias_exp_bits}-bit exponent")


def _graph_fields(v: _V, gm: dict):
    p = v.profile
    w, n = p.weights, p.neuron
    bits = v.int_in("(graph)", "weight_bits", gm.get("weight_bits"), 2, w.bits)
    v.equal("(graph)", "full_weight_bits", gm.get("full_weight_bits"), w.full_bits)
    v.equal("(graph)", "sign_mode", gm.get("sign_mode"), w.sign_mode)
    v.equal("(graph)", "state_bits", gm.get("state_bits"), n.state_bits)
    v.equal("(graph)", "act_shift", gm.get("act_shift"), n.act_shift)
    v.equal("(graph)", "bias_mant_bits", gm.get("bias_mant_bits"), n.bias_mant_bits)
    v.equal("(graph)", "bias_exp_bits", gm.get("bias_exp_bits"), n.bias_exp_bits)
    v.equal("(graph)", "arithmetic", gm.get("arithmetic"), p.arithmetic)
    return bits


def verify_ttfs(graph: nir.NIRGraph, gm: dict, v: _V) -> None:
    p = v.profile
    nspec, wspec = p.neuron, p.weights
    bits = _graph_fields(v, gm)
    K = v.int_in("(graph)", "steps", gm.get("steps"), 1, 1024)
    t_total = v.int_in("(graph)", "t_total", gm.get("t_total"), 1, T_MAX)
    vmax = (1 << (nspec.state_bits - 1)) - 1
    for name, node in graph.nodes.items():
        if isinstance(node, (nir.Affine, nir.Conv2d)):
            v.weights(name, node, bits, wspec.full_bits, wspec.sign_mode)
        elif isinstance(node, (nir.SumPool2d,)):
            pass
        elif isinstance(node, (nir.CubaLIF, nir.IF, nir.LIF)):
            m = raw_meta(node, f"node {name!r}", v.where)
            role = m.get("role")
            nm = repr(name)
            if role not in ("hidden", "readout", "maxpool"):
                raise InvalidModel(f"{v.where}: node {name!r}: metadata role {role!r} is not a TTFS role")
            v.int_in(nm, "steps", m.get("steps"), K, K)
            v.int_in(nm, "weight_exp", m.get("weight_exp"), wspec.exp_min if role != "maxpool" else 0,
                     wspec.exp_max if role != "maxpool" else 0)
            later = [m.get(k) for k in ("t_in_end", "fire_start")]  # arrival is named when it comes after them
            later = [x for x in later if isinstance(x, int) and not isinstance(x, bool) and 1 <= x <= t_total + 1]
            arrival = v.int_in(nm, "arrival", m.get("arrival"), 1, min([t_total, *later]))
            t_in_end = v.int_in(nm, "t_in_end", m.get("t_in_end"), arrival, t_total)
            fs = v.int_in(nm, "fire_start", m.get("fire_start"), arrival, t_total + 1)
            v.int_in(nm, "fire_end", m.get("fire_end"), min(fs, t_in_end), t_total + K + 1)
            thr = as_array(getattr(node, "v_threshold", None))
            if role == "hidden":
                r = v.int_in(nm, "slope", m.get("slope"), 1, vmax)
                theta = v.int_in(nm, "threshold", m.get("threshold"), 1, vmax)
                if theta != K * r + r // 2:
                    v.fail(nm, "threshold", theta, f"K*slope + slope//2 = {K * r + r // 2}")
                if thr is None or np.any(thr != theta):
                    v.fail(nm, "v_threshold", "differs from metadata", f"{theta}")
                if (K + 2) * r > vmax:
                    v.fail(nm, "slope ramp (K+2)*slope", (K + 2) * r, vmax)
            else:  # readout and maxpool: no ramp
                v.int_in(nm, "slope", m.get("slope"), 0, 0)
                v.int_in(nm, "threshold", m.get("threshold"), 0, 0)
            if role == "readout":
                if thr is not None and np.any(~np.isposinf(thr)):
                    v.fail(nm, "v_threshold", f"{thr[~np.isposinf(thr)].ravel()[0]:g}", "inf (the readout never fires)")
            elif role == "maxpool":
                if thr is not None and np.any(thr != 0):
                    v.fail(nm, "v_threshold", f"{thr[thr != 0].ravel()[0]:g}", "0 (fires at its first input)")
            if role != "maxpool":
                v.biases(name, getattr(node, "v_leak", None), nspec)
                for key in ("v_lsb", "weight_scale"):
                    if key in m and not (is_num(m[key]) and m[key] > 0):
                        v.fail(nm, key, repr(m[key]), "a positive finite number")


def verify_lif(graph: nir.NIRGraph, gm: dict, v: _V) -> None:
    p = v.profile
    nspec, wspec = p.neuron, p.weights
    bits = _graph_fields(v, gm)
    v.equal("(graph)", "decay_bits", gm.get("decay_bits"), nspec.decay_bits)
    v.equal("(graph)", "vth_shift", gm.get("vth_shift"), nspec.vth_shift)
    dt = gm.get("dt")
    if not (is_num(dt) and dt > 0):
        v.fail("(graph)", "dt", repr(dt), "a positive finite number")
    for key in ("populations", "connections"):
        names = gm.get(key)
        if not isinstance(names, list) or not all(isinstance(x, str) and x in graph.nodes for x in names):
            v.fail("(graph)", key, "missing or naming absent nodes", "a list of the graph's node names")
    if gm.get("readout") not in gm["populations"]:
        v.fail("(graph)", "readout", repr(gm.get("readout")), "one of the populations")
    if not isinstance(gm.get("input_shape"), list) or not all(is_int(x) and x > 0 for x in gm["input_shape"]):
        v.fail("(graph)", "input_shape", repr(gm.get("input_shape")), "a list of positive integers")
    v.int_in("(graph)", "depth", gm.get("depth"), 0, T_MAX)
    dec = (1 << nspec.decay_bits) - 1
    for name in gm["populations"]:
        node, nm = graph.nodes[name], repr(name)
        if not isinstance(node, nir.CubaLIF):
            v.fail(nm, "node type", type(node).__name__, "CubaLIF (Loihi's LIF)")
        m = raw_meta(node, f"node {name!r}", v.where)
        v.int_in(nm, "du", m.get("du"), 0, dec)
        v.int_in(nm, "dv", m.get("dv"), 0, dec)
        mant = v.int_in(nm, "vth_mant", m.get("vth_mant"), 1, (1 << nspec.vth_mant_bits) - 1)
        if not isinstance(m.get("spiking"), bool):
            v.fail(nm, "spiking", repr(m.get("spiking")), "true or false")
        if not (is_num(m.get("v_lsb")) and m["v_lsb"] > 0):
            v.fail(nm, "v_lsb", repr(m.get("v_lsb")), "a positive finite number")
        thr = as_array(node.v_threshold)
        want = float(mant << nspec.vth_shift) if m["spiking"] else math.inf
        if thr is None or np.any(thr != want):
            v.fail(nm, "v_threshold", "differs from vth_mant", f"{want:g}")
        v.biases(name, node.v_leak, nspec)
    for name in gm["connections"]:
        node, nm = graph.nodes[name], repr(name)
        if not isinstance(node, nir.Affine):
            v.fail(nm, "node type", type(node).__name__, "Affine")
        m = raw_meta(node, f"node {name!r}", v.where)
        v.weights(name, node, bits, wspec.full_bits, wspec.sign_mode)
        v.int_in(nm, "weight_exp", m.get("weight_exp"), wspec.exp_min, wspec.exp_max)
        v.int_in(nm, "delay", m.get("delay"), 1, T_MAX)
        for key in ("src", "dst"):
            if not isinstance(m.get(key), str):
                v.fail(nm, key, repr(m.get(key)), "a population or input name")
        if m["dst"] not in gm["populations"]:
            v.fail(nm, "dst", repr(m["dst"]), "one of the populations")


def verify_xylo(graph: nir.NIRGraph, gm: dict, v: _V) -> None:
    """Xylo (``arithmetic = "xylo"``, :mod:`snncompile.quantize.lif_xylo`): int8-style weights << a shift per
    matrix, dash decays in the decay register, thresholds and biases in the state range."""
    p = v.profile
    nspec = p.neuron
    v.equal("(graph)", "arithmetic", gm.get("arithmetic"), p.arithmetic)
    v.equal("(graph)", "state_bits", gm.get("state_bits"), nspec.state_bits)
    wbits = v.int_in("(graph)", "weight_bits", gm.get("weight_bits"), 2, p.weights.bits)
    dt = gm.get("dt")
    if not (is_num(dt) and dt > 0):
        v.fail("(graph)", "dt", repr(dt), "a positive finite number")
    wmax, smax = (1 << (wbits - 1)) - 1, int(p.weights.exp_max)
    state_max, dmax = (1 << (nspec.state_bits - 1)) - 1, (1 << nspec.decay_bits) - 1
    need = ("input", "weights_in", "hidden", "weights_rec", "weights_out", "output")
    missing = [n for n in need if n not in graph.nodes]
    if missing:
        v.fail(repr(missing[0]), "node", "missing", "the Xylo layout " + ", ".join(need))
    for name in ("weights_in", "weights_rec", "weights_out"):
        node = graph.nodes[name]
        w = as_array(getattr(node, "weight", None))
        if w is None or np.any(~np.isfinite(w)) or np.any(w != np.round(w)) or np.any((w < -wmax - 1) | (w > wmax)):
            v.fail(repr(name), "weight", "off the grid", f"integers in [{-wmax - 1}, {wmax}] ({wbits}-bit)")
        m = raw_meta(node, f"node {name!r}", v.where)
        v.int_in(repr(name), "weight_shift", m.get("weight_shift"), 0, smax)
    for name in ("hidden", "output"):
        node = graph.nodes[name]
        m = raw_meta(node, f"node {name!r}", v.where)
        for key in ("dash_syn", "dash_mem"):
            d = as_array(m.get(key))
            if d is None or d.size == 0 or np.any(~np.isfinite(d)) or np.any(d != np.round(d)) \
                    or np.any((d < 0) | (d > dmax)):
                v.fail(repr(name), key, repr(m.get(key)), f"integers in 0..{dmax}")
        thr = as_array(node.v_threshold)
        if thr is None or np.any(~np.isfinite(thr)) or np.any(thr != np.round(thr)) \
                or np.any((thr < 1) | (thr > state_max)):
            v.fail(repr(name), "v_threshold", "out of range", f"integers in 1..{state_max}")
        b = as_array(node.v_leak)
        if b is None or np.any(~np.isfinite(b)) or np.any(b != np.round(b)) or np.any(np.abs(b) > state_max):
            v.fail(repr(name), "v_leak (bias)", "out of range", f"integers with |bias| <= {state_max}")


def verify_quantized(graph: nir.NIRGraph, profile, where: str = "") -> None:
    """ProfileViolation (or InvalidModel for an unknown format) unless every field of the quantized
    ``graph`` is on ``profile``'s grid and in range."""
    gm = raw_meta(graph, "graph", where)
    v = _V(profile, where)
    fmt = gm.get("format")
    if fmt == TTFS_FORMAT:
        verify_ttfs(graph, gm, v)
    elif fmt == LIF_FORMAT and gm.get("arithmetic") == "xylo":
        verify_xylo(graph, gm, v)
    elif fmt == LIF_FORMAT:
        verify_lif(graph, gm, v)
    else:
        raise InvalidModel(f"{where}: a quantized graph of format {fmt!r}; rule: snncompile reads quantized graphs "
                           f"of format {TTFS_FORMAT!r} or {LIF_FORMAT!r} only (a foreign graph is quantized here)")


def profile_of(graph_meta: dict, given: str | None, where: str = ""):
    """The profile a quantized graph is checked against: ``--profile`` if given, else the one it names."""
    from ..profile import load_profile

    name = given or graph_meta.get("profile")
    if not isinstance(name, str) or not name:
        raise InvalidModel(f"{where}: a quantized graph without metadata field 'profile'; rule: model.q.nir names the "
                           "profile it was quantized for (or pass --profile)")
    prof = load_profile(name)
    bits = graph_meta.get("weight_bits")
    if is_int(bits) and 2 <= bits <= prof.weights.bits:
        prof = prof.with_weight_bits(bits)
    return prof
