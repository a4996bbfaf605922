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


def summarize(run: Run, labels: np.ndarray | None, ann_decisions: np.ndarray | None = None,
              reference: Run | None = None) -> dict:
    out: dict = {"samples": int(len(run.decisions))}
    if labels is not None:
        out["accuracy"] = _mean(run.decisions == labels)
    if ann_decisions is not None:
        out["agreement_with_ann"] = _mean(run.decisions == ann_decisions)
    if reference is not None and reference is not run:
        out["agreement_with_reference"] = _mean(run.decisions == reference.decisions)
    spiking = [la for la in run.layers]
    n_all = sum(la.neurons for la in spiking)
    n_hidden = sum(la.neurons for la in spiking if la.role == "hidden")
    total = sum(la.spikes for la in spiking) if spiking else np.zeros(len(run.decisions))
    hidden = sum(la.spikes for la in spiking if la.role == "hidden") if n_hidden else np.zeros(len(run.decisions))
    out["spikes_per_neuron"] = _mean(total / n_all) if n_all else 0.0
    out["spikes_per_hidden_neuron"] = _mean(hidden / n_hidden) if n_hidden else 0.0
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
