"""The TTFS sweep: fxsim accuracy for every (profile, seed, weight bits, steps K) point and its
table (the report draws the heatmap, :func:`snncompile.plots.accuracy_heatmap`).

Every point is an independent job (:func:`sweep_point`: quantize, encode, run fxsim), run in
order by :func:`snncompile.scaleout.run_jobs`: serially by default, as Ray tasks with ``--ray``;
both give the same results in the same order (only ``run_seconds`` differs).

``--sweep-profiles`` sweeps hardware profiles (default: ``--profile``, else loihi2).
``--sweep-seeds``: each seed draws its calibration samples at random (without replacement,
``numpy.random.default_rng(seed)``) from the training split: ``--calib-samples`` of them, default
:data:`SEED_CALIB_SAMPLES` (all when fewer); without it every point calibrates on the compile's
calibration samples.
"""

from __future__ import annotations

import time

import numpy as np

from ..errors import SnnCompileError
from ..quantize.scale_rule import auto_scale_policy

SEED_CALIB_SAMPLES = 1000


def sweep_jobs(opts) -> list[dict]:
    """The sweep's points, in table order: profile, seed, bits, steps (innermost)."""
    from ..profile import load_profile

    profiles = list(opts.sweep_profiles) or [opts.profile or "loihi2"]
    seeds = list(opts.sweep_seeds) or [None]
    jobs = []
    for name in profiles:
        base = load_profile(name)
        bits = list(opts.sweep_bits) or [base.with_weight_bits(opts.bits).weights.bits]
        for seed in seeds:
            for b in bits:
                for k in list(opts.sweep_steps) or [opts.steps]:
                    jobs.append({"profile": name, "seed": seed, "bits": int(b), "steps": int(k)})
    return jobs


def calibration_draw(x_pool: np.ndarray, seed: int, n: int | None) -> np.ndarray:
    """``n`` (default SEED_CALIB_SAMPLES) samples of ``x_pool`` drawn without replacement with ``seed``."""
    n = min(len(x_pool), n or SEED_CALIB_SAMPLES)
    idx = np.sort(np.random.default_rng(seed).choice(len(x_pool), size=n, replace=False))
    return x_pool[idx]


def sweep_point(shared: dict, job: dict) -> dict:
    """One point: quantize the float graph for (profile, bits, K), run fxsim, score it.  A point that
    cannot be built (e.g. too few bits) gets accuracy None and the error."""
    from ..encode import ttfs_counts
    from ..profile import load_profile
    from ..quantize.ttfs import quantize_ttfs
    from ..targets.base import Inputs, RunRequest, get_target
    from ..validate import spikes_per_neuron

    opts, x_test, y_test = shared["opts"], shared["x_test"], shared["y_test"]
    b, k = job["bits"], job["steps"]
    row = {"bits": b, "steps": k}
    if shared["profiles"]:
        row["profile"] = job["profile"]
    if job["seed"] is not None:
        row["seed"] = job["seed"]
    t0 = time.perf_counter()
    try:
        x_cal = shared["x_cal"] if job["seed"] is None else calibration_draw(shared["x_pool"], job["seed"],
                                                                            opts.calib_samples)
        prof = load_profile(job["profile"]).with_weight_bits(b)
        q, _ = quantize_ttfs(shared["graph"], prof, k, x_cal, opts.headroom_bits,
                             auto_scale_policy(opts.weight_scale, prof.weights.bits))
        run = get_target("fxsim").run(RunRequest(q, "ttfs", prof, Inputs(x_test, f"latency-{k}",
                                                                         ttfs_counts(x_test, k), k)))
        row.update(accuracy=float(np.mean(run.decisions == y_test)), spikes_per_neuron=spikes_per_neuron(run))
    except SnnCompileError as exc:
        row.update(accuracy=None, error=str(exc))
    row["run_seconds"] = time.perf_counter() - t0
    return row


def _markdown(rows: list, bits: list, steps: list) -> list[str]:
    lines = ["| bits \\ steps | " + " | ".join(str(k) for k in steps) + " |", "|---" * (len(steps) + 1) + "|"]
    for b in bits:
        cells = []
        for k in steps:
            row = next((r for r in rows if r["bits"] == b and r["steps"] == k), None)
            cells.append("–" if row is None or row["accuracy"] is None else f"{100 * row['accuracy']:.2f} %")
        lines.append(f"| {b} | " + " | ".join(cells) + " |")
    return lines


def sweep(graph, opts, x_cal: np.ndarray, x_test: np.ndarray, y_test: np.ndarray,
          x_pool: np.ndarray | None = None) -> dict:
    """Every sweep point of ``opts`` on ``graph`` (float TTFS); ``x_pool``: the training inputs the
    seeds draw calibration samples from (default ``x_cal``)."""
    from ..scaleout import run_jobs

    jobs = sweep_jobs(opts)
    shared = {"graph": graph, "opts": opts, "x_cal": x_cal, "x_test": x_test, "y_test": y_test,
              "x_pool": x_cal if x_pool is None else x_pool, "profiles": bool(opts.sweep_profiles)}
    t0 = time.perf_counter()
    table = run_jobs(sweep_point, shared, jobs, use_ray=bool(getattr(opts, "ray", False)),
                     address=getattr(opts, "ray_address", None), progress=bool(opts.progress), desc="sweep")
    wall = time.perf_counter() - t0
    bits = list(dict.fromkeys(j["bits"] for j in jobs))
    steps = list(dict.fromkeys(j["steps"] for j in jobs))
    groups = list(dict.fromkeys((j["profile"], j["seed"]) for j in jobs))
    lines = []
    for name, seed in groups:
        rows = [r for r, j in zip(table, jobs) if (j["profile"], j["seed"]) == (name, seed)]
        if len(groups) > 1:
            lines += ["", f"profile {name}" + ("" if seed is None else f", seed {seed}") + ":", ""]
        lines += _markdown(rows, [b for b in bits if any(r["bits"] == b for r in rows)], steps)
    out = {"bits": bits, "steps": steps, "samples": int(len(y_test)), "results": table,
           "markdown": "\n".join(lines).strip("\n"), "jobs": len(jobs), "wall_seconds": wall}
    if opts.sweep_profiles:
        out["profiles"] = list(opts.sweep_profiles)
    if opts.sweep_seeds:
        out["seeds"] = list(opts.sweep_seeds)
    return out
