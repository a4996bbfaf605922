"""Map a spiking NIR graph onto Loihi's stock LIF (Lava PyLifModelBitAcc) and quantize it.

Loihi's neuron, per step:  u <- u (1 - du') + a;  v <- v (1 - dv') + u + bias;  spike if
v > vth << 6, then v <- 0  (du' = (du + 1) / 4096, dv' = dv / 4096; a = the Dense outputs).

Each NIR neuron is rewritten in that form (units of its threshold, after shifting v_reset to 0):

    LIF      du' = 1,         dv' = dt/tau,      a = (r/tau) q,                         bias = (dt/tau) v_leak
    CubaLIF  du' = dt/tau_syn, dv' = dt/tau_mem, a = (dt r/tau_mem)(w_in/tau_syn) q,    bias = (dt/tau_mem) v_leak
    IF       du' = 1,         dv' = 0,           a = r q
    LI, CubaLI, I: the same without spiking (threshold beyond the state range)
    Threshold du' = 1,         dv' = 1 (Lava's largest dv leaves v / 4096 behind), a = q / dt

Affine biases enter as weights from an always-on bias input (a source spiking every step), which
is exact for every neuron kind.  Per population, one v LSB is worth ``lambda`` threshold units,
chosen from a calibration run of the float reference so that |u| and |v| stay below
2**(state_bits - 1 - headroom_bits) and the threshold fits the 17-bit mantissa; each incoming
connection then gets the smallest weight exponent e whose mantissas (w * 2**(6 + e) * lambda =
the float weight) fit the weight grid.  Per-neuron thresholds are exact: a neuron's inputs, bias
and potential are divided by its own threshold.

Precision split (``split``: connection names ``{dst}_from_{src}``, or "all"; default the graph's
``weight_split`` metadata): a connection whose 8-bit mantissas are too coarse gets a second Dense
from the same source, ``{name}_lo``, that carries the rounding residual R = M - w unit at the
finest exponent R fits, with mantissas on multiples of 2**-e (e < 0), so that Dense's floor shift
of the summed mantissas is exact: for e < 0 the residual is resolved to lambda 2**act_shift (one
activation unit), about 8 + e_hi bits in all (one more synapse per weight; :func:`split_residual`).
"""

from __future__ import annotations

import math

import nir
import numpy as np

from ..arith import bias_round, weight_grid
from ..errors import InvalidModel, ProfileViolation, UnsupportedOperator
from ..frontends.nir import SpikingNet
from ..ir import set_meta
from ..lif.reference import simulate
from ..nirops import composite_matrix
from ..profile import HwProfile
from ..validation.timeconst import check_time_constants, gain_error

FORMAT_Q = "snncompile-lif-q"


def loihi_form(pop, dt: float) -> dict:
    """(du', dv', gain g per neuron, bias per neuron, threshold per neuron or None) in float units."""
    p, k = pop.params, pop.kind
    check_time_constants(pop.name, k, p, dt)  # tau < dt: one line naming tau, dt and the --dt to pass
    if np.any(p.get("v_reset", 0.0) != 0):
        raise UnsupportedOperator(f"{k} with v_reset != 0", pop.name,
                                  ["neurons that reset to 0 (Loihi's LIF resets v to 0)"])
    if k in ("LIF", "LI"):
        out = dict(du=1.0, dv=dt / p["tau"], g=p["r"] / p["tau"], bias=dt / p["tau"] * p["v_leak"])
    elif k in ("CubaLIF", "CubaLI"):
        out = dict(du=dt / p["tau_syn"], dv=dt / p["tau_mem"], g=dt * p["r"] / p["tau_mem"] * p["w_in"] / p["tau_syn"],
                   bias=dt / p["tau_mem"] * p["v_leak"], ugain=dt * p["r"] / p["tau_mem"])
    elif k in ("IF", "I"):
        out = dict(du=1.0, dv=0.0, g=p["r"], bias=np.zeros(pop.shape))
    else:  # Threshold
        out = dict(du=1.0, dv=1.0, g=np.full(pop.shape, 1.0 / dt), bias=np.zeros(pop.shape))
    for key in ("du", "dv"):
        vals = np.unique(np.broadcast_to(out[key], pop.shape))
        if len(vals) != 1:
            raise UnsupportedOperator(f"{k} with per-neuron time constants", pop.name,
                                      ["one time constant per population (Lava's du, dv are per process)"])
        out[key] = float(vals[0])
    if pop.spiking:
        thr = p["threshold"] if k == "Threshold" else p["v_threshold"]
        if np.any(thr <= 0) or not np.all(np.isfinite(thr)):
            raise UnsupportedOperator(f"{k} with threshold <= 0 or infinite", pop.name, ["positive finite thresholds"])
        out["threshold"] = thr
    else:
        out["threshold"] = None
    return out


def split_residual(R, lam: float, act_shift: int, wspec) -> tuple:
    """(mantissas, exponent, unit, resolution) of the residual connection (module docstring): the exponent the
    largest |R| fits, mantissas rounded to multiples of max(step, 2**-e) (an exact floor shift)."""
    step, lo, hi = weight_grid(wspec.bits, wspec.full_bits, wspec.sign_mode)
    big = float(np.abs(R).max(initial=0.0))
    e = wspec.exp_min if big == 0 else math.ceil(math.log2(big / (hi * lam))) - act_shift
    e = int(min(wspec.exp_max, max(wspec.exp_min, e)))
    unit = lam * 2.0 ** (act_shift + e)
    grain = max(step, 2 ** -e if e < 0 else 1)
    return np.clip(np.round(R / (unit * grain)) * grain, lo, hi).astype(np.int64), e, unit, unit * grain


def _split_names(net: SpikingNet, split) -> set:
    """The connection names ``split`` names (None: the graph's ``weight_split`` metadata), checked."""
    split = net.meta.get("weight_split", ()) if split is None else split
    names = {f"{c.dst}_from_{c.src}" for c in net.connections}
    if split == "all" or (not isinstance(split, str) and "all" in split):
        return names
    split = {split} if isinstance(split, str) else set(split)
    unknown = sorted(split - names)
    if unknown:
        raise InvalidModel(f"weight split: no connection {', '.join(unknown)}; the graph's connections: "
                           f"{', '.join(sorted(names))}")
    return split


def quantize_lif(net: SpikingNet, profile: HwProfile, calib_spikes: np.ndarray, headroom_bits: int = 1,
                 split=None):
    """Integer Loihi-LIF graph of ``net`` (model.q.nir) and the per-population table; ``split``:
    the connections that get a residual connection (module docstring)."""
    split = _split_names(net, split)
    nspec, wspec = profile.neuron, profile.weights
    dec = 1 << nspec.decay_bits
    limit = 2.0 ** (nspec.state_bits - 1 - headroom_bits)
    vth_max = ((1 << nspec.vth_mant_bits) - 1) << nspec.vth_shift
    peaks = simulate(net, calib_spikes).peaks
    step, lo, hi = weight_grid(wspec.bits, wspec.full_bits, wspec.sign_mode)
    nodes = {"input": nir.Input(input_type={"input": np.array(net.input_shape)})}
    edges, table, pops_meta, conns_meta = [], [], [], []
    need_bias_source = False
    for name, pop in net.populations.items():
        form = loihi_form(pop, net.dt)
        norm = 1.0 / form["threshold"] if pop.spiking else np.ones(pop.shape)
        g = (form["g"] * norm).reshape(-1)
        ugain = form.get("ugain", 1.0)
        # calibrated peaks in the normalized units of this population
        pk = peaks[name]
        if pop.kind in ("CubaLIF", "CubaLI"):
            u_peak = float(np.max(pk["i"] * np.abs(ugain * norm), initial=0.0))
        else:
            u_peak = float(np.max(np.abs(pk["q"].reshape(pop.shape) * form["g"] * norm), initial=0.0))
        v_peak = float(np.max(pk["v"].reshape(pop.shape) * norm, initial=0.0))
        mats = []
        for c in net.incoming(name):
            M = composite_matrix(c.ops, c.src_shape).toarray() * g[:, None] if c.ops else np.diag(g)
            mats.append((c, M))
            if c.bias is not None:
                need_bias_source = True
                mats.append(("bias", c, (g * net.dt * c.bias)[:, None]))
        wmax = max((float(np.abs(m[-1]).max(initial=0.0)) for m in mats), default=0.0)
        lam = max(u_peak, v_peak, 1.0 if pop.spiking else 0.0, 1e-300) / limit
        # weights must fit the largest exponent: lambda >= wmax / (hi * 2**(act_shift + exp_max))
        lam = max(lam, wmax / (hi * 2.0 ** (nspec.act_shift + wspec.exp_max)))
        theta = None
        if pop.spiking:
            vth_mant = int(round(1.0 / lam / (1 << nspec.vth_shift)))
            if vth_mant < 1:  # the cause in one line (often an exporter's time convention): validation.timeconst
                raise gain_error(name, pop.kind, pop.params, net.dt, max(u_peak, v_peak), nspec.state_bits)
            if (vth_mant << nspec.vth_shift) > vth_max:
                raise ProfileViolation(name, "threshold mantissa", vth_mant, (1 << nspec.vth_mant_bits) - 1, profile.name)
            theta = vth_mant << nspec.vth_shift
        else:
            vth_mant = (1 << nspec.vth_mant_bits) - 1  # never reached while |v| stays in its calibrated range
        bias_f = (form["bias"] * norm).reshape(-1) / lam
        bmax = ((1 << (nspec.bias_mant_bits - 1)) - 1) << ((1 << nspec.bias_exp_bits) - 1)
        if np.abs(bias_f).max(initial=0) > bmax:
            raise ProfileViolation(name, "bias register", f"{np.abs(bias_f).max():.0f}", bmax, profile.name)
        beta = bias_round(bias_f, nspec.bias_mant_bits, nspec.bias_exp_bits)
        du = int(min(dec - 1, max(0, round(dec * form["du"]) - 1)))
        dv = int(min(dec - 1, max(0, round(dec * form["dv"]))))
        flat = pop.neurons
        node = nir.CubaLIF(tau_syn=np.full(flat, net.dt * dec / (du + 1)),
                           tau_mem=np.full(flat, net.dt * dec / dv if dv else np.inf),
                           r=np.ones(flat), v_leak=beta.astype(np.float64),
                           v_threshold=np.full(flat, float(theta) if pop.spiking else np.inf), w_in=np.ones(flat))
        pmeta = {"kind": pop.kind, "spiking": pop.spiking, "shape": list(pop.shape), "du": du, "dv": dv,
                 "vth_mant": vth_mant, "v_lsb": lam, "source_node": name,
                 "readout": name == net.readout}
        set_meta(node, pmeta)
        nodes[name] = node
        pops_meta.append(name)
        rows = {"population": name, "kind": pop.kind, "neurons": flat, "du": du, "dv": dv, "vth_mant": vth_mant,
                "v_lsb": lam, "u_peak": u_peak, "v_peak": v_peak, "connections": []}
        for _k, entry in enumerate(mats):
            if entry[0] == "bias":
                _, c, M = entry
                src, delay, cname = "bias", 1, f"{name}_bias"
            else:
                c, M = entry
                src, delay, cname = c.src, c.delay, f"{name}_from_{c.src}"
            big = float(np.abs(M).max(initial=0.0))
            e = wspec.exp_min if big == 0 else math.ceil(math.log2(big / (hi * lam))) - nspec.act_shift
            e = int(min(wspec.exp_max, max(wspec.exp_min, e)))
            unit = lam * 2.0 ** (nspec.act_shift + e)
            w = np.clip(np.round(M / (unit * step)) * step, lo, hi).astype(np.int64)
            err = float(np.abs(M - w * unit).max(initial=0.0))
            parts = [(cname, w, e, unit)]
            if cname in split:
                w_lo, e_lo, unit_lo, res = split_residual(M - w * unit, lam, nspec.act_shift, wspec)
                if res < unit * step and np.any(w_lo != 0):  # finer than the connection's own grid
                    parts.append((f"{cname}_lo", w_lo, e_lo, unit_lo))
                    err = float(np.abs(M - w * unit - w_lo * unit_lo).max(initial=0.0))
            for pname, pw, pe, punit in parts:
                syn = nir.Affine(weight=pw, bias=np.zeros(pw.shape[0], dtype=np.int64))
                set_meta(syn, {"weight_exp": pe, "delay": delay, "src": src, "dst": name, "scale": punit})
                nodes[pname] = syn
            if src == net.input_name:
                src_node = "input"
            elif src == "bias":
                src_node = "bias"
            else:
                src_node = src
            for pname, *_ in parts:
                if len(c.src_shape) > 1 and src != "bias":
                    fname = f"{pname}_flatten"
                    nodes[fname] = nir.Flatten(input_type={"input": np.array(c.src_shape)}, start_dim=0, end_dim=-1)
                    edges += [(src_node, fname), (fname, pname)]
                else:
                    edges.append((src_node, pname))
                edges.append((pname, name))
                conns_meta.append(pname)
            row = {"name": cname, "src": src, "weight_exp": e, "max_rounding_error": err, "weight_scale": unit}
            if len(parts) > 1:  # the residual connection: its exponent and unit (one activation unit resolves it)
                row["split"] = {"name": parts[1][0], "weight_exp": parts[1][2], "weight_scale": parts[1][3],
                                "resolution": res}
            rows["connections"].append(row)
        table.append(rows)
    if need_bias_source:
        nodes["bias"] = nir.Input(input_type={"input": np.array([1])})
        set_meta(nodes["bias"], {"always_on": True})
    nodes["output"] = nir.Output(output_type={"output": np.array([net.populations[net.readout].neurons])})
    edges.append((net.readout, "output"))
    q = nir.NIRGraph(nodes=nodes, edges=edges, type_check=False)
    gmeta = dict(net.meta)
    gmeta.update(format=FORMAT_Q, quantized=True, profile=profile.name, arithmetic=profile.arithmetic, dt=net.dt,
                 state_bits=nspec.state_bits, act_shift=nspec.act_shift, decay_bits=nspec.decay_bits,
                 vth_shift=nspec.vth_shift, bias_mant_bits=nspec.bias_mant_bits,
                 bias_exp_bits=nspec.bias_exp_bits, weight_bits=wspec.bits, full_weight_bits=wspec.full_bits,
                 sign_mode=wspec.sign_mode, populations=pops_meta, connections=conns_meta, readout=net.readout,
                 readout_kind=net.readout_kind, depth=net.depth, input_shape=list(net.input_shape),
                 bias_source=need_bias_source, headroom_bits=headroom_bits, quantization=table,
                 weight_split=sorted(split))
    set_meta(q, gmeta)
    return q, table
