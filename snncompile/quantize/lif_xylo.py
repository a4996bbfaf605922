"""Quantize a spiking NIR graph for SynSense Xylo (profile ``arithmetic = "xylo"``).

The same per-step form and calibration as the Loihi quantizer (:func:`.lif.loihi_form`: every
NIR neuron written as u <- u (1 - du') + g q; v <- v (1 - dv') + u + bias, in units of its own
threshold, peaks from a float reference run), mapped onto Xylo's neuron
(:mod:`snncompile.neurons.xylo`): I <- (I + w s)(1 - 2**-dash_syn); v <- v - v >> dash_mem + I + bias;
subtractive reset.

* decays: dash_syn = round(-log2 du'), dash_mem = round(-log2 dv') (= round(log2(tau/dt))),
  clipped to the profile's 0..2**decay_bits - 1.  A LIF without synaptic filter (du' = 1) cannot
  have dash_syn = 0 (Xylo decays the current before v reads it): it gets dash_syn = 1, which
  spreads each input's charge over the following steps but delivers all of it.  A non-leaking
  IF (dv' = 0) gets the slowest leak, dash_mem = 2**decay_bits - 1.
* units: one v LSB is lambda threshold units, one lambda for the hidden pool and one for the
  readout (Xylo's weight matrices and shifts are shared by all neurons they feed), chosen so the
  calibrated |I| and |v| stay below 2**(state_bits - 1 - headroom_bits) and the weights fit
  int8 << shift; thresholds theta = round(1 / lambda) (per-neuron NIR thresholds are folded into
  the weights).  Synaptic weights w = g / (1 - 2**-dash_syn) / lambda (so that the current v reads
  equals the float u), as int8 mantissas times 2**shift, one shift per matrix (in, rec, out).
* biases (Affine biases and v_leak) become Xylo's per-step bias on v: their steady-state
  per-step contribution, rounded to int16.
* structure: a chain input -> hidden populations -> readout.  The first hidden population reads
  the input (weights_in), later hidden populations are blocks of weights_rec (one step of delay
  each, as in Xylo), self-recurrence too; the readout reads the last hidden population
  (weights_out).  NIR v_reset != 0 is refused; Xylo's reset is subtractive where NIR's resets to
  v_reset = 0 -- the float reference and Xylo then differ after a spike that overshoots, which the
  report's agreement shows.

The result is a NIR graph (format "snncompile-lif-q", arithmetic "xylo"): input -> Affine
(weights_in) -> CubaLIF "hidden" (with an Affine "recurrent" edge) -> Affine (weights_out) ->
CubaLIF "output", integer parameters in the nodes and their metadata; :func:`xylo_spec` reads it
back as the argument dict of ``XyloSim.from_specification``.
"""

from __future__ import annotations

import math

import nir
import numpy as np

from ..errors import InvalidModel, ProfileViolation, UnsupportedOperator
from ..ir import get_meta, set_meta
from ..nirops import composite_matrix
from .lif import FORMAT_Q, loihi_form


def _dash(rate: float, dmax: int, floor: int = 0) -> int:
    if rate <= 0:
        return dmax
    return int(min(dmax, max(floor, round(-math.log2(rate)))))


def _chain(net):
    """Hidden populations in order (first reads the input), and the readout."""
    pops = list(net.populations)
    ro = net.readout
    hidden = [p for p in pops if p != ro]
    if not hidden:
        raise InvalidModel(f"Xylo needs at least one hidden population before the readout {ro!r}")
    for i, name in enumerate(hidden + [ro]):
        for c in net.incoming(name):
            ok_src = (c.from_input and i == 0) or (not c.from_input and c.src in (name, (hidden + [ro])[i - 1]
                                                                                   if i else None))
            if name == ro and not c.from_input and c.src == ro:
                ok_src = False
            if not ok_src:
                raise UnsupportedOperator(f"connection {c.src!r} -> {name!r}", name,
                                          ["input -> first hidden", "hidden -> next hidden", "hidden self-recurrence",
                                           "last hidden -> readout"], where="the Xylo mapping")
            if c.delay != 1:
                raise UnsupportedOperator(f"delay {c.delay}", name, ["delay 1 (no Delay nodes)"],
                                          where="the Xylo mapping")
    return hidden, ro


def quantize_xylo(net, profile, calib_spikes: np.ndarray, headroom_bits: int = 1):
    """Integer Xylo graph of ``net`` (model.q.nir) and its per-population table."""
    from ..lif.reference import simulate

    nspec = profile.neuron
    wbits = profile.weights.bits
    wmax = (1 << (wbits - 1)) - 1
    smax = int(profile.weights.exp_max)
    state_max = (1 << (nspec.state_bits - 1)) - 1
    limit = 2.0 ** (nspec.state_bits - 1 - headroom_bits)
    dmax = (1 << nspec.decay_bits) - 1
    hidden, ro = _chain(net)
    peaks = simulate(net, calib_spikes).peaks
    forms, mats, biases = {}, {}, {}
    offsets, start = {}, 0
    for name in hidden:
        offsets[name] = (start, start + net.populations[name].neurons)
        start += net.populations[name].neurons
    H = start
    for name in hidden + [ro]:
        pop = net.populations[name]
        f = loihi_form(pop, net.dt)
        norm = 1.0 / f["threshold"] if pop.spiking else np.ones(pop.shape)
        norm = np.broadcast_to(norm, pop.shape).reshape(-1)
        du, dv = float(f["du"]), float(f["dv"])
        ds = 1 if du >= 1 else _dash(du, dmax, floor=1)
        dm = _dash(dv, dmax)
        g = np.broadcast_to(f["g"], pop.shape).reshape(-1) * norm / (1.0 - 2.0 ** -ds)
        bias = np.broadcast_to(f["bias"], pop.shape).reshape(-1) * norm
        for c in net.incoming(name):
            M = composite_matrix(c.ops, c.src_shape).toarray() if c.ops else np.eye(pop.neurons)
            mats[(c.src if not c.from_input else "input", name)] = M * g[:, None]
            if c.bias is not None:  # an always-on current: its steady per-step charge into v
                bias = bias + np.broadcast_to(f["g"], pop.shape).reshape(-1) * norm * net.dt * \
                    np.asarray(c.bias, dtype=np.float64).reshape(-1) / min(1.0, max(du, 1e-12))
        pk = peaks[name]
        i_peak = float(np.max(np.abs(np.asarray(pk["q"]).reshape(-1)) * np.abs(g), initial=0.0))
        if pop.kind in ("CubaLIF", "CubaLI"):
            i_peak = max(i_peak, float(np.max(np.abs(pk["i"]).reshape(-1) * np.abs(f.get("ugain", 1.0)) *
                                              np.broadcast_to(norm, pop.shape).reshape(-1), initial=0.0)))
        v_peak = float(np.max(np.abs(np.asarray(pk["v"]).reshape(-1)) * norm, initial=0.0))
        forms[name] = {"ds": ds, "dm": dm, "i_peak": i_peak, "v_peak": v_peak, "spiking": pop.spiking,
                       "kind": pop.kind, "neurons": pop.neurons}
        biases[name] = bias

    def lam_of(names):
        lam = max([max(forms[n]["i_peak"], forms[n]["v_peak"] if not forms[n]["spiking"] else 0.0, 1.0 if forms[n]["spiking"] else 0.0)
                   for n in names] + [1e-300]) / limit
        big = max((float(np.abs(M).max(initial=0.0)) for (s, d), M in mats.items() if d in names), default=0.0)
        return max(lam, big / (wmax * 2.0 ** smax))  # the largest weight must fit int8 << shift_max

    lam_h, lam_o = lam_of(hidden), lam_of([ro])

    def matrix(pairs, rows: int, cols: int, lam: float, name: str):
        W = np.zeros((rows, cols))
        for (r0, r1), (c0, c1), M in pairs:
            W[r0:r1, c0:c1] = M.T / lam
        big = float(np.abs(W).max(initial=0.0))
        shift = 0 if big <= wmax else min(smax, math.ceil(math.log2(big / wmax)))
        w8 = np.clip(np.round(W / 2.0 ** shift), -wmax - 1, wmax).astype(np.int64)
        err = float(np.abs(W - w8 * 2.0 ** shift).max(initial=0.0))
        return w8, shift, err

    n_in = int(np.prod(net.input_shape))
    first = hidden[0]
    w_in, s_in, e_in = matrix([((0, n_in), offsets[first], mats[("input", first)])], n_in, H, lam_h, "in")
    rec_pairs = [(offsets[src], offsets[dst], M) for (src, dst), M in mats.items() if dst in hidden and src != "input"]
    w_rec, s_rec, e_rec = matrix(rec_pairs, H, H, lam_h, "rec")
    last = hidden[-1]
    n_out = net.populations[ro].neurons
    w_out, s_out, e_out = matrix([(offsets[last], (0, n_out), mats[(last, ro)])], H, n_out, lam_o, "out")
    if rec_pairs and not profile.mapping.recurrent:
        raise ProfileViolation(hidden[1] if len(hidden) > 1 else first, "recurrent weights", "yes", "none",
                               profile.name)

    def vec(names, key):
        return np.concatenate([np.full(forms[n]["neurons"], forms[n][key], np.int64) for n in names])

    def thresholds(names, lam):
        out = []
        for n in names:
            th = int(round(1.0 / lam)) if forms[n]["spiking"] else state_max
            if forms[n]["spiking"] and not 1 <= th <= state_max:
                raise ProfileViolation(n, "threshold", th, state_max, profile.name)
            out.append(np.full(forms[n]["neurons"], th, np.int64))
        return np.concatenate(out)

    def bias_int(names, lam):
        b = np.concatenate([biases[n] / lam for n in names])
        if np.abs(b).max(initial=0) > state_max:
            raise ProfileViolation(names[0], "bias", f"{np.abs(b).max():.0f}", state_max, profile.name)
        return np.round(b).astype(np.int64)

    spec_nodes = {
        "input": nir.Input(input_type={"input": np.array([n_in])}),
        "weights_in": nir.Linear(weight=w_in.T.astype(np.float64)),
        "hidden": nir.CubaLIF(tau_syn=net.dt * 2.0 ** vec(hidden, "ds"), tau_mem=net.dt * 2.0 ** vec(hidden, "dm"),
                              r=np.ones(H), v_leak=bias_int(hidden, lam_h).astype(np.float64),
                              v_threshold=thresholds(hidden, lam_h).astype(np.float64), w_in=np.ones(H)),
        "weights_rec": nir.Linear(weight=w_rec.T.astype(np.float64)),
        "weights_out": nir.Linear(weight=w_out.T.astype(np.float64)),
        "output": nir.CubaLIF(tau_syn=net.dt * 2.0 ** vec([ro], "ds"), tau_mem=net.dt * 2.0 ** vec([ro], "dm"),
                              r=np.ones(n_out), v_leak=bias_int([ro], lam_o).astype(np.float64),
                              v_threshold=thresholds([ro], lam_o).astype(np.float64), w_in=np.ones(n_out)),
        "readout": nir.Output(output_type={"output": np.array([n_out])}),
    }
    set_meta(spec_nodes["weights_in"], {"weight_shift": s_in})
    set_meta(spec_nodes["weights_rec"], {"weight_shift": s_rec})
    set_meta(spec_nodes["weights_out"], {"weight_shift": s_out})
    set_meta(spec_nodes["hidden"], {"dash_syn": vec(hidden, "ds"), "dash_mem": vec(hidden, "dm"), "v_lsb": lam_h})
    set_meta(spec_nodes["output"], {"dash_syn": vec([ro], "ds"), "dash_mem": vec([ro], "dm"), "v_lsb": lam_o,
                                    "spiking": forms[ro]["spiking"]})
    edges = [("input", "weights_in"), ("weights_in", "hidden"), ("hidden", "weights_rec"), ("weights_rec", "hidden"),
             ("hidden", "weights_out"), ("weights_out", "output"), ("output", "readout")]
    q = nir.NIRGraph(nodes=spec_nodes, edges=edges, type_check=False)
    table = [{"population": n, "kind": forms[n]["kind"], "neurons": forms[n]["neurons"], "dash_syn": forms[n]["ds"],
              "dash_mem": forms[n]["dm"], "v_lsb": lam_h if n != ro else lam_o,
              "threshold": int(round(1.0 / (lam_h if n != ro else lam_o))) if forms[n]["spiking"] else None,
              "i_peak": forms[n]["i_peak"], "v_peak": forms[n]["v_peak"]} for n in hidden + [ro]]
    table.append({"population": "weights", "shifts": {"in": s_in, "rec": s_rec, "out": s_out},
                  "max_rounding_error": {"in": e_in, "rec": e_rec, "out": e_out}})
    gmeta = dict(net.meta)
    gmeta.update(format=FORMAT_Q, quantized=True, profile=profile.name, arithmetic="xylo", dt=net.dt,
                 state_bits=nspec.state_bits, act_shift=0, weight_bits=wbits, input_shape=list(net.input_shape),
                 readout=ro, readout_kind=net.readout_kind, depth=len(hidden), headroom_bits=headroom_bits,
                 xylo_populations={n: list(offsets[n]) for n in hidden}, xylo_readout=ro,
                 max_spikes={"in": nspec.max_spikes_in, "hidden": nspec.max_spikes_hidden,
                             "out": nspec.max_spikes_out}, quantization=table)
    set_meta(q, gmeta)
    return q, table


def is_xylo_graph(graph) -> bool:
    meta = get_meta(graph)
    return meta.get("format") == FORMAT_Q and meta.get("arithmetic") == "xylo"


def xylo_spec(graph) -> dict:
    """The ``XyloSim.from_specification`` argument dict of a quantized Xylo graph."""
    if not is_xylo_graph(graph):
        raise InvalidModel("not a graph quantized for Xylo (model.q.nir with arithmetic 'xylo')")
    meta = get_meta(graph)
    n = graph.nodes

    def ints(a):
        return np.asarray(a, dtype=np.float64).astype(np.int64)

    hm, om = get_meta(n["hidden"]), get_meta(n["output"])
    H = int(np.size(n["hidden"].v_leak))
    return {
        "weights_in": ints(n["weights_in"].weight).T, "weights_rec": ints(n["weights_rec"].weight).T,
        "weights_out": ints(n["weights_out"].weight).T,
        "dash_syn": ints(hm["dash_syn"]), "dash_syn_2": np.zeros(H, np.int64), "dash_mem": ints(hm["dash_mem"]),
        "threshold": ints(n["hidden"].v_threshold), "bias": ints(n["hidden"].v_leak),
        "dash_syn_out": ints(om["dash_syn"]), "dash_mem_out": ints(om["dash_mem"]),
        "threshold_out": ints(n["output"].v_threshold), "bias_out": ints(n["output"].v_leak),
        "weight_shift_in": int(get_meta(n["weights_in"])["weight_shift"]),
        "weight_shift_rec": int(get_meta(n["weights_rec"])["weight_shift"]),
        "weight_shift_out": int(get_meta(n["weights_out"])["weight_shift"]),
        "aliases": None, "dt": float(meta.get("dt", 1e-3)),
    }
