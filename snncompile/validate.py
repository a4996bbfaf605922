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


def ttfs_spike_times(ref_run: Run, float_net, fx_run: Run, q_net) -> dict:
    """Per hidden layer of a fixed-point TTFS run: (t_ref, t_fx, Delta) in window units (inf = silent).

    The fixed-point spike at step ``s`` stands for the count c (:func:`snncompile.neurons.ttfs.output_counts`),
    i.e. the time t = t_max - c * Delta; the reference time is exact.  Both runs cut to their common samples."""
    from .neurons.ttfs import TtfsParams, output_counts

    out = {}
    ref = {la.name: la for la in ref_run.layers}
    fx = {la.name: la for la in fx_run.layers}
    for fl, ql in zip(float_net.layers, q_net.layers):
        if fl.role != "hidden" or fl.name not in fx:
            continue
        k = min(len(ref[fl.name].times), len(fx[fl.name].times))
        t_ref = np.asarray(ref[fl.name].times[:k], dtype=np.float64)
        step = np.asarray(fx[fl.name].times[:k])
        delta = float(ql.meta["delta_out"])
        c = output_counts(TtfsParams.from_meta(ql.meta, "hidden"), step)
        out[fl.name] = (t_ref, np.where(step >= 0, fl.meta["t_max"] - c * delta, np.inf), delta)
    return out


def ttfs_time_error(ref_run: Run, float_net, fx_run: Run, q_net) -> dict:
    """Spike-time error of a fixed-point TTFS run against the float reference, per hidden layer: the
    mean and max |t_fx - t_ref| (window units and grid steps Delta) over neurons that fire in both,
    and the share of neurons whose fire/silent state agrees (:func:`ttfs_spike_times`)."""
    per_layer = []
    for name, (t_ref, t_fx, delta) in ttfs_spike_times(ref_run, float_net, fx_run, q_net).items():
        fire_ref, fire_fx = np.isfinite(t_ref), np.isfinite(t_fx)
        both = fire_ref & fire_fx
        err = np.abs(t_fx[both] - t_ref[both])
        per_layer.append({
            "name": name, "grid_step": delta,
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
