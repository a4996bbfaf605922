"""The TTFS sweep: fxsim accuracy for every (weight bits, steps K) pair and its table (the report
draws the heatmap, :func:`snncompile.plots.accuracy_heatmap`)."""

from __future__ import annotations

import numpy as np

from ..errors import SnnCompileError


def sweep(graph, opts, x_cal: np.ndarray, x_test: np.ndarray, y_test: np.ndarray) -> dict:
    from ..encode import ttfs_counts
    from ..profile import load_profile
    from ..quantize.ttfs import quantize_ttfs
    from ..targets.base import Inputs, RunRequest, get_target
    from ..validate import spikes_per_neuron

    base = load_profile(opts.profile or "loihi2")
    bits = list(opts.sweep_bits) or [base.with_weight_bits(opts.bits).weights.bits]
    steps = list(opts.sweep_steps) or [opts.steps]
    fx = get_target("fxsim")
    table = []
    for b in bits:
        for k in steps:
            try:
                prof = base.with_weight_bits(b)
                q, _ = quantize_ttfs(graph, prof, k, x_cal, opts.headroom_bits, opts.weight_scale)
                run = fx.run(RunRequest(q, "ttfs", prof, Inputs(x_test, f"latency-{k}", ttfs_counts(x_test, k), k)))
                table.append({"bits": b, "steps": k, "accuracy": float(np.mean(run.decisions == y_test)),
                              "spikes_per_neuron": spikes_per_neuron(run)})
            except SnnCompileError as exc:
                table.append({"bits": b, "steps": k, "accuracy": None, "error": str(exc)})
    head = "| bits \\ steps | " + " | ".join(str(k) for k in steps) + " |"
    lines = [head, "|---" * (len(steps) + 1) + "|"]
    for b in bits:
        cells = []
        for k in steps:
            row = next(r for r in table if r["bits"] == b and r["steps"] == k)
            cells.append("–" if row["accuracy"] is None else f"{100 * row['accuracy']:.2f} %")
        lines.append(f"| {b} | " + " | ".join(cells) + " |")
    return {"bits": bits, "steps": steps, "samples": int(len(y_test)), "results": table, "markdown": "\n".join(lines)}
