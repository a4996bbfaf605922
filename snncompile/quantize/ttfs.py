"""The quantization pass for TTFS graphs: float model.nir -> integer model.q.nir.

Per layer n (DESIGN.md section 3 and docs/ttfs_neuron.md), with K steps per window,
Delta_{n-1} = B_{n-1} / K the activation per input count (Delta_0 = 1 / K for pixels) and
Delta_n = B_n / K:

* weights: per-layer scale s_w and integer mantissas w on the profile's grid
  (:mod:`.rounding`); average pools become integer sum pools and their 1/k**2 joins the
  layer gain g;
* one LSB of v is worth lambda = s_w * g * Delta_{n-1} / 2**(act_shift + e) activation
  units, so v(t_in_end) = beta + sum_j w_j c_j 2**(act_shift + e) approximates the
  pre-activation / lambda;
* bias beta = round(b / lambda) on the bias grid (mantissa << exponent), slope
  r = round(Delta_n / lambda), threshold theta = K r + floor(r / 2);
* e, the per-layer weight exponent, is the largest in the profile's range for which,
  on the calibration data, no u can wrap and no v can saturate during integration with
  ``headroom_bits`` to spare, the ramp cannot saturate ((K + 2) r <= v_max) and beta fits
  the bias registers.  No such e: ProfileViolation naming the layer.

Windows become step numbers: the first population receives its earliest input at step
A = 2; a hidden layer integrates until t_in_end = A + K - 1 and may fire in
[t_in_end + 1, t_in_end + K]; the next population's A is t_in_end + 2; a max-pool fires
in its own input window and adds one step; the readout's t_in_end is the run length T.
"""

from __future__ import annotations

import copy

import nir
import numpy as np

from ..arith import bias_round
from ..encode import ttfs_counts
from ..errors import InvalidModel, ProfileViolation
from ..ir import get_meta, set_meta
from ..profile import HwProfile
from ..ttfs.convert import FORMAT
from ..ttfs.fixed import Arith, FixedLayer, LinearMap, run_layer_closed, run_layer_stepped
from ..ttfs.graph import parse_ttfs
from ..ttfs.reference import drive
from .rounding import layer_scale, quantize_weights

FIRST_ARRIVAL = 2  # input spikes are sent at step K - c + 1 and reach the first layer one step later


def _affine(ops):
    found = [(i, name, node) for i, (name, node) in enumerate(ops) if isinstance(node, (nir.Affine, nir.Conv2d))]
    if len(found) != 1:
        raise InvalidModel(f"layer {ops[-1][0] if ops else '?'}: expected one Affine/Conv2d node, found {len(found)}")
    return found[0]


def _integer_ops(ops, w_int):
    """Copy of the layer's linear nodes with integer weights and sum pools; returns (ops, gain g)."""
    idx, _, _ = _affine(ops)
    out, gain = [], 1.0
    for i, (name, node) in enumerate(ops):
        if i == idx:
            node = copy.copy(node)
            node.weight = w_int.astype(np.int64)
            node.bias = np.zeros(w_int.shape[0], dtype=np.int64)
            node.metadata = dict(node.metadata)
        elif isinstance(node, nir.AvgPool2d):
            k = np.ravel(node.kernel_size)
            gain /= float(np.prod((np.concatenate([k, k]))[:2]))
            sp = nir.SumPool2d(kernel_size=node.kernel_size, stride=node.stride, padding=node.padding)
            set_meta(sp, {"from": "AvgPool2d", "gain": 1.0 / float(np.prod((np.concatenate([k, k]))[:2]))})
            node = sp
        out.append((name, node))
    return out, gain


def quantize_ttfs(graph: nir.NIRGraph, profile: HwProfile, steps: int, x_calib: np.ndarray,
                  headroom_bits: int = 1, scale_policy: str = "max") -> tuple[nir.NIRGraph, list[dict]]:
    """Quantize a float TTFS graph for ``profile`` with ``steps`` (K) steps per window.

    ``x_calib``: calibration inputs (N, *input_shape) in [0, 1] (training data).  Weight scales:
    a scale stored by fine-tuning in the affine node's metadata (``weight_scale[bits]``), else
    ``scale_policy`` "max" (max-abs: nothing clipped) or "mse" (least squared error).  Returns the
    quantized graph and the per-layer table (exponent, scale, clipped fraction, rounding error...).
    """
    if steps < 1:
        raise InvalidModel(f"--steps must be >= 1, got {steps}")
    net = parse_ttfs(graph)
    if net.quantized:
        raise InvalidModel("the graph is already quantized")
    K = steps
    wspec, nspec = profile.weights, profile.neuron
    ar = Arith(nspec.state_bits, nspec.act_shift)
    vmax = ar.vmax
    m = 1 << (nspec.state_bits - 1)
    limit = vmax >> headroom_bits
    bias_max = ((1 << (nspec.bias_mant_bits - 1)) - 1) << ((1 << nspec.bias_exp_bits) - 1)
    counts = ttfs_counts(np.asarray(x_calib, dtype=np.float64).reshape((-1, *net.input_shape)), K)
    delta_prev = 1.0 / K
    arrival = FIRST_ARRIVAL
    nodes = dict(graph.nodes)
    table = []
    for layer in net.layers:
        meta = dict(layer.meta)
        t_in_end = arrival + K - 1
        if layer.role == "maxpool":
            node = copy.copy(layer.node)
            node.metadata = {}
            node.v_threshold = np.zeros(layer.out_shape)
            node.v_reset = np.zeros(layer.out_shape)
            meta.update(weight_exp=0, slope=0, threshold=0, arrival=arrival, t_in_end=t_in_end,
                        fire_start=arrival, fire_end=t_in_end, steps=K, delta_in=delta_prev, delta_out=delta_prev)
            set_meta(node, meta)
            nodes[layer.name] = node
            fl = FixedLayer.from_layer(_with(layer, node, meta), K)
            counts = run_layer_closed(fl, counts, ar)[0].counts
            table.append({"layer": layer.name, "role": "maxpool", "weight_exp": 0, "weight_scale": 1.0,
                          "v_lsb": None, "slope": 0, "threshold": 0, "clipped_fraction": 0.0,
                          "max_rounding_error": 0.0, "u_peak": None, "limit": limit})
            arrival += 1
            continue
        idx, aname, anode = _affine(layer.ops)
        W = np.asarray(anode.weight, dtype=np.float64)
        stored = get_meta(anode).get("weight_scale", {}).get(str(wspec.bits)) if isinstance(
            get_meta(anode).get("weight_scale"), dict) else None
        s_w = layer_scale(W, wspec.bits, wspec.full_bits, wspec.sign_mode, scale_policy, stored)
        w_int, clipped = quantize_weights(W, s_w, wspec.bits, wspec.full_bits, wspec.sign_mode)
        err = float(np.abs(W - s_w * w_int).max()) if W.size else 0.0
        qops, gain = _integer_ops(layer.ops, w_int)
        b = drive(layer).numpy().reshape(-1)
        fired = (counts > 0).astype(np.float32)
        lmap = LinearMap(qops, layer.in_shape, K)
        pos = float(lmap.signed(+1)(fired).max(initial=0))
        neg = -float(lmap.signed(-1)(fired).min(initial=0))
        upeak_mant = max(pos, neg)
        hidden = layer.role == "hidden"
        delta_out = meta["B"] / K if hidden else None
        chosen = None
        reasons = []
        for e in range(wspec.exp_max, wspec.exp_min - 1, -1):
            unit = 2.0 ** (nspec.act_shift + e)
            lam = s_w * gain * delta_prev / unit
            beta_f = b / lam
            u_pk = upeak_mant * unit
            bmax = float(np.abs(beta_f).max(initial=0.0))
            r = int(round(delta_out / lam)) if hidden else 0
            why = []
            if u_pk > min(limit, m):
                why.append(f"current u peaks at {u_pk:.0f}")
            if bmax + K * u_pk > limit:
                why.append(f"voltage v may reach {bmax + K * u_pk:.0f}")
            if bmax > bias_max:
                why.append(f"bias {bmax:.0f} exceeds {bias_max}")
            if hidden and (K + 2) * r > vmax:
                why.append(f"ramp needs {(K + 2) * r}")
            if hidden and r < 1:
                why.append("slope rounds to 0")
            if not why:
                chosen = (e, lam, r)
                break
            reasons.append((e, why))
        if chosen is None:
            e, why = reasons[-1] if reasons else (wspec.exp_min, ["no exponent"])
            raise ProfileViolation(layer.name, f"{nspec.state_bits}-bit neuron state ({'; '.join(why)} at weight_exp={e})",
                                   "a weight exponent in range", f"{wspec.exp_min}..{wspec.exp_max}", profile.name)
        e, lam, r = chosen
        beta = bias_round(b / lam, nspec.bias_mant_bits, nspec.bias_exp_bits)
        theta = K * r + r // 2 if hidden else 0
        node = copy.copy(layer.node)
        node.metadata = {}
        node.v_leak = beta.reshape(layer.out_shape).astype(np.float64)
        node.v_threshold = np.full(layer.out_shape, float(theta) if hidden else np.inf)
        fire = (t_in_end + 1, t_in_end + K) if hidden else (t_in_end + 1, t_in_end)
        meta.update(weight_exp=e, weight_scale=s_w, pool_gain=gain, v_lsb=lam, slope=r, threshold=theta,
                    arrival=arrival, t_in_end=t_in_end, fire_start=fire[0], fire_end=fire[1], steps=K,
                    delta_in=delta_prev, delta_out=delta_out, bias_lsb_error=float(np.abs(beta - b / lam).max(initial=0)))
        set_meta(node, meta)
        nodes[layer.name] = node
        for name, qn in qops:
            nodes[name] = qn
        fl = FixedLayer.from_layer(_with(layer, node, meta, qops), K)
        out, valid = run_layer_closed(fl, counts, ar)
        if out is None or not valid.all():
            out = run_layer_stepped(fl, counts, ar, t_in_end + K + 1)
        table.append({"layer": layer.name, "role": layer.role, "affine": aname, "weight_exp": e,
                      "weight_scale": s_w, "v_lsb": lam, "slope": r, "threshold": theta,
                      "clipped_fraction": clipped, "max_rounding_error": err,
                      "max_rounding_error_steps": err / (s_w * (1 << (wspec.full_bits - wspec.bits + (wspec.sign_mode == 'mixed')))),
                      "u_peak": float(upeak_mant * 2.0 ** (nspec.act_shift + e)), "limit": limit,
                      "activation_clipped_fraction": float(np.mean(out.z >= theta + r // 2)) if hidden else None})
        if hidden:
            counts = out.counts
            delta_prev = delta_out
            arrival = t_in_end + 2
        else:
            t_total = t_in_end
    qgraph = nir.NIRGraph(nodes=nodes, edges=list(graph.edges), type_check=False)
    gmeta = dict(net.meta)
    gmeta.update(quantized=True, profile=profile.name, arithmetic=profile.arithmetic, steps=K,
                 weight_bits=wspec.bits, full_weight_bits=wspec.full_bits, sign_mode=wspec.sign_mode,
                 state_bits=nspec.state_bits, act_shift=nspec.act_shift, bias_mant_bits=nspec.bias_mant_bits,
                 bias_exp_bits=nspec.bias_exp_bits, t_total=t_total, headroom_bits=headroom_bits,
                 encoding={"type": "ttfs-count", "steps": K, "rule": "c = floor(x*K + 1/2); "
                           "a pixel with count c > 0 spikes once at step K - c + 1"},
                 quantization=table)
    set_meta(qgraph, gmeta)
    if get_meta(qgraph).get("format") != FORMAT:
        raise AssertionError("lost the format tag")
    return qgraph, table


def _with(layer, node, meta, ops=None):
    out = copy.copy(layer)
    out.node, out.meta = node, meta
    if ops is not None:
        out.ops = ops
    return out
