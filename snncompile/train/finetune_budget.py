"""``--spike-budget``: fine-tune under a budget of spikes per hidden neuron, searching the
spike-penalty weight itself in a bounded number of short runs on a validation split."""

from __future__ import annotations

import nir
import numpy as np

from ..errors import InvalidModel
from ..profile import HwProfile
from .finetune_loop import FinetuneResult, finetune


def finetune_spike_budget(graph: nir.NIRGraph, x_train: np.ndarray, y_train: np.ndarray, *, budget: float,
                          profile: HwProfile, steps: int, max_runs: int = 6, val_fraction: float = 0.1,
                          seed: int = 0, epochs: int | None = None, spike_penalty: float | None = None,
                          **options) -> FinetuneResult:
    """Fine-tune under a spike budget: at most ``budget`` spikes per hidden neuron on fxsim.

    A validation split (``val_fraction`` of the training data, a seeded permutation; at least one
    sample each side) is carved off; every run fine-tunes on the rest with :func:`finetune` and is
    judged on the split.  The spike-penalty weight is searched in at most ``max_runs`` runs (each
    with ``epochs``, default: finetune's own choice, 5 at 8 bits, and its other defaults, e.g.
    lr 1e-3 once a penalty is on: :mod:`.finetune_auto`):
    0 first (plain QAT), then 0.1, 1, 10, ... until the budget is met, then geometric bisection
    between the last weight that missed and the first that met it.  The result is the run that
    meets the budget with the best validation accuracy (else the one with the fewest spikes, and
    ``log["spike_budget"]["met"]`` is False); ``log["spike_budget"]`` lists every run and the
    validation accuracy kept relative to the untuned graph.
    """
    if not budget > 0:
        raise InvalidModel(f"--spike-budget must be > 0 spikes per hidden neuron, got {budget}")
    if max_runs < 1:
        raise InvalidModel(f"max_runs must be >= 1, got {max_runs}")
    if spike_penalty:
        raise InvalidModel("--spike-budget searches the spike penalty itself; do not give --spike-penalty")
    x_tr, y_tr = np.asarray(x_train, dtype=np.float64), np.asarray(y_train)
    if len(x_tr) < 2:
        raise InvalidModel("--spike-budget needs at least 2 training samples (one for validation)")
    order = np.random.default_rng(seed).permutation(len(x_tr))
    n_val = min(len(x_tr) - 1, max(1, int(round(val_fraction * len(x_tr)))))
    val, fit = order[:n_val], order[n_val:]
    runs: list[tuple[float, FinetuneResult]] = []

    def run(weight: float) -> FinetuneResult:
        res = finetune(graph, x_tr[fit], y_tr[fit], profile=profile, steps=steps, x_monitor=x_tr[val],
                       y_monitor=y_tr[val], monitor_name=f"validation ({n_val} training samples)", seed=seed,
                       epochs=epochs, spike_penalty=weight, **options)
        runs.append((weight, res))
        return res

    def meets(res: FinetuneResult) -> bool:
        return res.log["spikes_per_hidden_neuron"][-1] <= budget

    lo, hi = None, None  # largest weight that missed, smallest that met
    weight = 0.0
    while len(runs) < max_runs:
        res = run(weight)
        if meets(res):
            hi = weight if hi is None else min(hi, weight)
        else:
            lo = weight if lo is None else max(lo, weight)
        if hi is None:
            weight = 0.1 if weight == 0 else 10.0 * weight
        elif hi == 0.0 or (lo is not None and hi / max(lo, 1e-12) < 1.5):
            break
        else:
            weight = float(np.sqrt(max(lo, hi / 100.0) * hi)) if lo and lo > 0 else hi / 10.0
            if lo is None and weight < 1e-3:
                break
    ok = [(w, r) for w, r in runs if meets(r)]
    if ok:
        weight, best = max(ok, key=lambda wr: (wr[1].log["accuracy"][-1], -wr[0]))
    else:
        weight, best = min(runs, key=lambda wr: wr[1].log["spikes_per_hidden_neuron"][-1])
    base_acc, base_spn = best.log["accuracy"][0], best.log["spikes_per_hidden_neuron"][0]
    best.log["spike_budget"] = {
        "budget": budget, "met": bool(ok), "chosen_penalty": weight, "validation_samples": int(n_val),
        "max_runs": max_runs, "epochs_per_run": best.log["epochs"],
        "baseline_accuracy": base_acc, "baseline_spikes": base_spn,
        "chosen_accuracy": best.log["accuracy"][-1], "chosen_spikes": best.log["spikes_per_hidden_neuron"][-1],
        "accuracy_kept": best.log["accuracy"][-1] - base_acc,
        "runs": [{"penalty": w, "accuracy": r.log["accuracy"][-1], "spikes_per_hidden_neuron":
                  r.log["spikes_per_hidden_neuron"][-1]} for w, r in runs],
    }
    return best
