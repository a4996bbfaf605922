"""Validation: compare every target's run with the labels, the ANN and the float reference.

Conventions (DESIGN.md, "Report conventions"):
* ``accuracy``: share of evaluated samples whose decision (argmax of the readout) equals the label;
* ``agreement_with_X``: share of samples whose decision equals X's decision;
* ``spikes_per_neuron``: spikes of the network's own spiking populations (hidden and max-pool;
  the readout never spikes), summed, divided by their neuron count, averaged over samples;
  ``spikes_per_hidden_neuron`` counts the ReLU units only (the papers' figure);
* per layer: ``neurons``, ``spikes`` (mean per sample), and for fixed-point targets
  ``saturations`` and ``wraps`` (mean events per sample).
"""

from __future__ import annotations

import numpy as np

from .targets.base import Run


def _mean(x) -> float:
    return float(np.mean(x)) if len(x) else 0.0


def spikes_per_neuron(run: Run, roles=("hidden", "maxpool", "output")) -> float:
    """Spikes of the populations with these roles, summed, over their neuron count, averaged over
    samples (the one definition; ``roles=("hidden",)`` is the papers' spikes per hidden neuron)."""
    layers = [la for la in run.layers if la.role in roles]
    n = sum(la.neurons for la in layers)
    if not n:
        return 0.0
    return _mean(sum(la.spikes for la in layers) / n)


def summarize(run: Run, labels: np.ndarray | None, ann_decisions: np.ndarray | None = None,
              reference: Run | None = None) -> dict:
    out: dict = {"samples": int(len(run.decisions))}
    if labels is not None:
        out["accuracy"] = _mean(run.decisions == labels)
    if ann_decisions is not None:
        out["agreement_with_ann"] = _mean(run.decisions == ann_decisions)
    if reference is not None and reference is not run:
        out["agreement_with_reference"] = _mean(run.decisions == reference.decisions)
    spiking = list(run.layers)
    out["spikes_per_neuron"] = spikes_per_neuron(run)
    out["spikes_per_hidden_neuron"] = spikes_per_neuron(run, roles=("hidden",))
    out["input_spikes_per_sample"] = _mean(run.input_spikes)
    rows = []
    for la in spiking:
        row = {"name": la.name, "role": la.role, "neurons": int(la.neurons), "spikes": _mean(la.spikes),
               "spikes_per_neuron": _mean(la.spikes) / la.neurons if la.neurons else 0.0}
        if la.saturations is not None:
            row["saturations"] = _mean(la.saturations)
        if la.wraps is not None:
            row["wraps"] = _mean(la.wraps)
        rows.append(row)
    out["layers"] = rows
    return out


def ttfs_time_error(ref_run: Run, float_net, fx_run: Run, q_net) -> dict:
    """Spike-time error of a fixed-point TTFS run against the float reference, per hidden layer.

    The fixed-point spike at step ``s`` of a hidden layer stands for count c = t_in_end + K + 1 - s,
    i.e. the time t = t_max - c * Delta (window units); the reference time is exact.  Reports
    the mean and max |t_fx - t_ref| (window units and grid steps Delta) over neurons that fire in
    both, and the share of neurons whose fire/silent state agrees.
    """
    per_layer = []
    ref_layers = {la.name: la for la in ref_run.layers}
    fx_layers = {la.name: la for la in fx_run.layers}
    for fl, ql in zip(float_net.layers, q_net.layers):
        if fl.role != "hidden" or fl.name not in fx_layers:
            continue
        m = ql.meta
        K, delta = int(m["steps"]), float(m["delta_out"])
        t_ref = ref_layers[fl.name].times
        step = fx_layers[fl.name].times
        fire_ref, fire_fx = np.isfinite(t_ref), step >= 0
        c = np.where(fire_fx, m["t_in_end"] + K + 1 - step, 0)
        t_fx = fl.meta["t_max"] - c * delta
        both = fire_ref & fire_fx
        err = np.abs(t_fx - t_ref)[both]
        per_layer.append({
            "name": fl.name, "grid_step": delta,
            "mean": float(err.mean()) if err.size else 0.0, "max": float(err.max()) if err.size else 0.0,
            "mean_steps": float(err.mean() / delta) if err.size else 0.0,
            "fire_agreement": float(np.mean(fire_ref == fire_fx)),
        })
    return {"unit": "window", "layers": per_layer}


def conversion_exactness(model, graph, ref: Run, x) -> dict:
    """max |(t_max - t_i) - clipped ReLU activation| over all neurons and samples (window units), the
    largest logit error and the agreement with the clipped ANN."""
    from .ttfs.convert import clipped_ann
    from .ttfs.graph import parse_ttfs

    net = parse_ttfs(graph)
    bounds = [layer.meta["B"] for layer in net.layers if layer.role == "hidden"]
    logits, acts = clipped_ann(model, bounds, x)
    worst = 0.0
    for layer, a in zip(net.spiking, acts):
        t = next(la.times for la in ref.layers if la.name == layer.name)
        recovered = np.where(np.isfinite(t), layer.meta["t_max"] - t, 0.0)
        worst = max(worst, float(np.abs(recovered - a).max(initial=0.0)))
    return {"max_activation_error": worst,
            "max_logit_error": float(np.abs(ref.logits - logits).max(initial=0.0)),
            "agreement_with_clipped_ann": float(np.mean(ref.decisions == logits.argmax(1)))}
